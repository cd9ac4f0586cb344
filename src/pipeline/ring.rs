//! Per-symbol ring buffers of the most recent ticks, answering `recent()` while recording.
//!
//! Full-buffer policy: overwrite the oldest tick. The ring never blocks a producer and never
//! allocates after the symbol's first tick: its storage is allocated at full capacity and
//! written once when the ring is made, so that no later push faults a page in (first-touch
//! faults of the rings' memory were most of `store_tick`'s p99.9 in the first seconds of a
//! feed: 160 per symbol at the default capacity).
//!
//! Rings made together (a feed's symbols, before its first tick: [`Ring::many`]) share one
//! allocation (`Arena`), which on Linux is asked for transparent huge pages when it spans at
//! least one. A push touches a line of its ring a few hundred ticks of other symbols after the
//! last one; over 82 MB of rings in 4 KB pages that line's page translation was likely gone
//! from the TLB too (the figures below fit that; no counter here shows TLB misses).
//! `bench --only publish --e2e-seconds 5`, three stages a side, alternating, medians of five
//! runs each: `store_tick` p99 without subscribers 491, 530, 581 ns → 310, 400, 390; p99.9 881,
//! 931, 1,072 → 581, 721, 741 (with eight subscribers 561, 581, 671 → 350, 470, 440 and 961,
//! 1,032, 1,242 → 671, 821, 791). Making 128 rings of 10,000: 11 ms (82 ms the first time in
//! a process), against 49 ms one by one.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::tick::{MsgRef, SourceId, SymbolId, Tick, Timestamp};

/// The last `capacity` ticks of one symbol plus its throttle state (per source).
///
/// Invariants: `len <= buf.len()` ticks are held; once `len == buf.len()`, `head` is the
/// index of the oldest tick and the next one to be overwritten; before that, `head == len`.
///
/// Its state fits one cache line beside its lock (`RingLine`), and each slot is one line: a
/// push writes two lines, and [`Ring::push`]'s prefetch covers the second. (With 72-byte ring
/// entries and slots at any 8-byte offset, a push wrote three or four. `bench --only publish
/// --e2e-seconds 5`, two runs a side, alternating, medians of five: `store_tick` p99 without
/// subscribers 440 and 420 ns → 380 and 390, p99.9 811 and 801 → 731 and 781; with eight,
/// 510 and 500 → 460 and 480, p99.9 931 and 951 → 861 and 871.)
#[derive(Debug)]
pub struct Ring {
    buf: Slots,
    len: usize,
    head: usize,
    /// The throttle's state: of each source of the symbol, the `ts_recv` of its last tick let
    /// through (boxed, so that the state stays one cache line; `None` while the throttle is
    /// off). Per source: two liquidity providers quoting a symbol are each thinned to one tick
    /// an interval, where one reference for both let the busier one's ticks keep the other's
    /// out.
    throttled: Option<Box<Throttled>>,
}

/// Of each source, the `ts_recv` of its last tick the throttle let through (sources are few,
/// bounded by the recorder's names).
#[derive(Debug, Default)]
struct Throttled(Vec<(SourceId, i64)>);

/// One tick on a cache line of its own (a `Tick` is 64 bytes).
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Slot(Tick);

/// A ring and its lock on one cache line of their own, and on the next line the address of the
/// slot its next tick will take (null until its first push), which a feed reads without the
/// lock to ask for that slot's line before it stores the tick ([`Ring::next_slot`],
/// `Recorder::prefetch_ring`).
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub(crate) struct RingLine(
    pub(crate) std::sync::OnceLock<std::sync::Mutex<Ring>>,
    pub(crate) std::sync::atomic::AtomicPtr<u8>,
);

/// What the slots hold before a tick is written there.
const EMPTY: Slot = Slot(Tick {
    symbol: SymbolId(0),
    source: SourceId(0),
    ts_event: Timestamp(0),
    ts_recv: Timestamp(0),
    bid: None,
    ask: None,
    bid_size: None,
    ask_size: None,
    msg: MsgRef::NONE,
});

/// A tick with no prices from `source` at `recv` (event and receive time): for tests.
#[cfg(test)]
pub(crate) fn blank_tick(source: u32, recv: i64) -> Tick {
    Tick {
        source: SourceId(source),
        ts_event: Timestamp(recv),
        ts_recv: Timestamp(recv),
        ..EMPTY.0
    }
}

impl Ring {
    /// One ring of `capacity` ticks (at least 1) in an allocation of its own.
    pub fn new(capacity: usize) -> Ring {
        let mut one = Ring::many(1, capacity);
        one.pop()
            .expect("`Arena::carve` makes one piece per ring asked for")
    }

    /// `n` rings of `capacity` ticks each (at least 1), carved from one allocation (see the
    /// module doc).
    pub fn many(n: usize, capacity: usize) -> Vec<Ring> {
        Arena::carve(n, capacity.max(1))
            .into_iter()
            .map(Ring::on)
            .collect()
    }

    fn on(buf: Slots) -> Ring {
        Ring {
            buf,
            len: 0,
            head: 0,
            throttled: None,
        }
    }

    /// Throttle check: true when `tick` comes at least `min_interval_ns` after the last kept
    /// tick of its source (always true when the interval is 0). A kept tick becomes its
    /// source's new reference.
    pub fn admit(&mut self, tick: &Tick, min_interval_ns: i64) -> bool {
        if min_interval_ns <= 0 {
            return true;
        }
        let recv = tick.ts_recv.0;
        let kept = &mut self.throttled.get_or_insert_with(Box::default).0;
        match kept.iter_mut().find(|(source, _)| *source == tick.source) {
            Some((_, last)) if recv.saturating_sub(*last) < min_interval_ns => return false,
            Some((_, last)) => *last = recv,
            None => kept.push((tick.source, recv)),
        }
        true
    }

    /// Writes `tick` over the oldest one.
    pub fn push(&mut self, tick: Tick) {
        self.buf[self.head] = Slot(tick);
        self.head = (self.head + 1) % self.buf.len();
        self.len = (self.len + 1).min(self.buf.len());
        // The next slot, into the cache now: this symbol's next tick comes a few hundred
        // ticks of other symbols later, and its slot was last written a full ring ago (the
        // rings of 128 symbols hold 82 MB, past any cache), so each push wrote a line missing
        // from every cache, and the mutex's release waited for it. With the prefetch,
        // `bench --only publish --e2e-seconds 5`, five runs a side, alternating: store_tick p99
        // under end to end 491–621 ns (median 551) → 441–521 (461), p99.9 median 972 → 861 ns.
        prefetch_for_write(std::ptr::from_ref(&self.buf[self.head]).cast());
    }

    /// Where the next tick will be written: a hint for a prefetch, never read or written
    /// through.
    pub(crate) fn next_slot(&mut self) -> *mut u8 {
        std::ptr::from_mut(&mut self.buf[self.head]).cast()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Up to `n` ticks, newest first.
    pub fn newest(&self, n: usize) -> impl Iterator<Item = &Tick> + '_ {
        self.newest_after(0, n)
    }

    /// Up to `n` ticks, newest first, past the `skip` newest.
    pub fn newest_after(&self, skip: usize, n: usize) -> impl Iterator<Item = &Tick> + '_ {
        let cap = self.buf.len();
        let end = skip.saturating_add(n).min(self.len);
        // The newest tick sits just before `head` (cyclically).
        (skip.min(end)..end).map(move |i| &self.buf[(self.head + cap - 1 - i) % cap].0)
    }

    /// Bytes this ring's slots take.
    pub fn footprint_bytes(capacity: usize) -> usize {
        capacity * std::mem::size_of::<Slot>()
    }
}

/// The size of a transparent huge page on x86_64 and aarch64 (4 KB base pages).
const HUGE_PAGE: usize = 2 << 20;

/// One allocation of ring slots, every one written with [`EMPTY`] when it is made (so no push
/// faults a page in), aligned to and asked for in huge pages when it spans at least one.
///
/// Invariant: the arena is only ever handed out as disjoint [`Slots`] pieces, each to one ring
/// (`carve`), and lives until the last of them is dropped.
#[derive(Debug)]
struct Arena {
    ptr: NonNull<Slot>,
    layout: Layout,
}

// SAFETY: the arena is plain memory; who may touch which part of it is the business of the
// `Slots` pieces, each of which owns its part exclusively.
unsafe impl Send for Arena {}
// SAFETY: as above; through `&Arena` nothing reads or writes the slots.
unsafe impl Sync for Arena {}

impl Arena {
    /// `n` disjoint pieces of `capacity` slots from one new arena (none if either is 0).
    fn carve(n: usize, capacity: usize) -> Vec<Slots> {
        let Some(total) = n.checked_mul(capacity).filter(|&t| t > 0) else {
            return Vec::new();
        };
        let bytes = total
            .checked_mul(std::mem::size_of::<Slot>())
            .expect("ring capacity × symbols overflows the address space");
        let huge = cfg!(target_os = "linux") && bytes >= HUGE_PAGE;
        let layout = if huge {
            Layout::from_size_align(bytes.next_multiple_of(HUGE_PAGE), HUGE_PAGE)
        } else {
            Layout::array::<Slot>(total)
        }
        .expect("ring capacity × symbols overflows the address space");
        // SAFETY: the layout's size is at least one slot's (> 0).
        let raw = unsafe { std::alloc::alloc(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<Slot>()) else {
            std::alloc::handle_alloc_error(layout);
        };
        #[cfg(target_os = "linux")]
        if huge {
            // Best effort: a kernel without transparent huge pages says no, and the rings
            // stay in base pages. SAFETY: the range is this allocation, page-aligned.
            let _ = unsafe { libc::madvise(raw.cast(), layout.size(), libc::MADV_HUGEPAGE) };
        }
        for i in 0..total {
            // SAFETY: `i < total`, within the allocation; slots are written before any read.
            unsafe { ptr.add(i).write(EMPTY) };
        }
        let arena = Arc::new(Arena { ptr, layout });
        (0..n)
            .map(|i| Slots {
                // SAFETY: `i * capacity + capacity <= total`: in bounds, and no two pieces overlap.
                ptr: unsafe { ptr.add(i * capacity) },
                len: capacity,
                _arena: arena.clone(),
            })
            .collect()
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: allocated in `carve` with this layout; no piece is left (they hold the Arc).
        unsafe { std::alloc::dealloc(self.ptr.as_ptr().cast(), self.layout) };
    }
}

/// `capacity` tick slots (at least 1) in an allocation of their own, made as the rings' are
/// (written once, in huge pages when they span one): the writer's queue's.
pub(crate) fn slots(capacity: usize) -> Slots {
    Arena::carve(1, capacity.max(1))
        .pop()
        .expect("`Arena::carve` makes one piece per ring asked for")
}

/// One ring's slots: a piece of an [`Arena`] that no other piece overlaps.
#[derive(Debug)]
pub(crate) struct Slots {
    ptr: NonNull<Slot>,
    len: usize,
    _arena: Arc<Arena>,
}

// SAFETY: a piece owns its slots exclusively (`Arena`'s invariant), as a `Box<[Slot]>` would.
unsafe impl Send for Slots {}
// SAFETY: shared access gives `&[Slot]`, or the raw pointer of `as_ptr`, through which only the
// writer's queue writes, each slot by one thread at a time under its stamps (`queue.rs`,
// invariant 1), never making a reference into them.
unsafe impl Sync for Slots {}

impl Slots {
    /// The first slot's tick, for a user that never makes references into the slots (the
    /// writer's queue: its producers write while its consumer reads).
    pub(crate) fn as_ptr(&self) -> *mut Tick {
        self.ptr.as_ptr().cast()
    }
}

impl std::ops::Deref for Slots {
    type Target = [Slot];
    fn deref(&self) -> &[Slot] {
        // SAFETY: `len` initialised slots at `ptr`, alive while `_arena` is, owned by this piece.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for Slots {
    fn deref_mut(&mut self) -> &mut [Slot] {
        // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

/// Asks for the cache line at `p` ahead of a write to it.
#[inline]
pub(crate) fn prefetch_for_write(p: *const i8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of the x86_64 baseline, and a prefetch never faults.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_ET0 }>(p)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tick::Timestamp;

    #[test]
    fn the_next_slot_is_the_one_the_next_push_writes_round_and_round() {
        let mut ring = Ring::new(3);
        for i in 0..7 {
            let hint = ring.next_slot() as usize;
            ring.push(tick(i));
            let written = std::ptr::from_ref(&ring.buf[i as usize % 3]) as usize;
            assert_eq!(hint, written, "push {i}");
            assert_eq!(ring.newest(1).next().map(|t| t.ts_recv), Some(Timestamp(i)));
        }
    }

    fn tick(recv: i64) -> Tick {
        blank_tick(0, recv)
    }

    #[test]
    fn newest_comes_first_and_the_oldest_is_overwritten() {
        let mut ring = Ring::new(3);
        for t in 1..=5 {
            ring.push(tick(t));
        }
        let got: Vec<i64> = ring.newest(10).map(|t| t.ts_recv.0).collect();
        assert_eq!(got, vec![5, 4, 3]);
        assert_eq!(ring.newest(2).count(), 2);
        let past: Vec<i64> = ring.newest_after(1, 10).map(|t| t.ts_recv.0).collect();
        assert_eq!(past, vec![4, 3]);
        assert_eq!(ring.newest_after(3, 10).count(), 0);
        assert_eq!(ring.newest_after(usize::MAX, usize::MAX).count(), 0);
    }

    #[test]
    fn a_partly_filled_ring_returns_what_it_has() {
        let mut ring = Ring::new(10);
        ring.push(tick(1));
        ring.push(tick(2));
        let got: Vec<i64> = ring.newest(5).map(|t| t.ts_recv.0).collect();
        assert_eq!(got, vec![2, 1]);
    }

    #[test]
    fn ring_never_grows_past_its_capacity() {
        let mut ring = Ring::new(4);
        let at = ring.buf.as_ptr();
        for t in 0..100 {
            ring.push(tick(t));
        }
        assert_eq!(ring.len(), 4);
        assert_eq!(
            (ring.buf.as_ptr(), ring.buf.len()),
            (at, 4),
            "no reallocation"
        );
    }

    /// A slot and a ring's state with its lock are one cache line each, the next slot's
    /// address the line after the state (Linux's lock is a futex word; elsewhere the state may
    /// take two).
    #[test]
    fn a_slot_and_a_rings_state_are_one_cache_line_each() {
        assert_eq!(std::mem::size_of::<Slot>(), 64, "a Tick is 64 bytes");
        let ring = Ring::new(3);
        assert_eq!(ring.buf.as_ptr() as usize % 64, 0);
        #[cfg(target_os = "linux")]
        {
            let line = RingLine::default();
            let (at, hint) = (
                std::ptr::from_ref(&line) as usize,
                std::ptr::from_ref(&line.1) as usize,
            );
            assert_eq!(std::mem::size_of::<RingLine>(), 128);
            assert_eq!(hint - at, 64, "the state fills the first line");
        }
    }

    /// Rings carved from one arena keep to their own slots, and an arena spanning a huge
    /// page starts on one (Linux).
    #[test]
    fn rings_made_together_share_an_arena_without_sharing_a_slot() {
        let capacity = 5_000; // 320 KB a ring: eight of them span a huge page
        let mut rings = Ring::many(8, capacity);
        assert_eq!(rings.len(), 8);
        let starts: Vec<usize> = rings.iter().map(|r| r.buf.as_ptr() as usize).collect();
        for w in starts.windows(2) {
            assert_eq!(w[1] - w[0], capacity * 64, "contiguous, one after another");
        }
        #[cfg(target_os = "linux")]
        assert_eq!(starts[0] % HUGE_PAGE, 0);
        for (i, ring) in rings.iter_mut().enumerate() {
            for t in 0..(capacity as i64 + 7) {
                ring.push(tick(i as i64 * 1_000_000 + t));
            }
        }
        for (i, ring) in rings.iter().enumerate() {
            let base = i as i64 * 1_000_000;
            let got: Vec<i64> = ring.newest(capacity + 1).map(|t| t.ts_recv.0).collect();
            let want: Vec<i64> = (7..capacity as i64 + 7).rev().map(|t| base + t).collect();
            assert_eq!(got, want, "ring {i}");
        }
        // The arena outlives the rings dropped first.
        let last = rings.pop();
        drop(rings);
        assert_eq!(last.map(|r| r.newest(1).count()), Some(1));
        assert!(Ring::many(0, capacity).is_empty());
    }

    proptest::proptest! {
        /// Whatever the capacity and however many pushes, the ring answers as a list that
        /// keeps the last `capacity` ticks.
        #[test]
        fn a_ring_answers_as_the_last_capacity_ticks(
            capacity in 1usize..100,
            pushes in 0i64..400,
            n in 0usize..120,
        ) {
            let mut ring = Ring::new(capacity);
            for t in 0..pushes {
                ring.push(tick(t));
            }
            let kept = (pushes as usize).min(capacity);
            let want: Vec<i64> = (0..pushes).rev().take(kept.min(n)).collect();
            let got: Vec<i64> = ring.newest(n).map(|t| t.ts_recv.0).collect();
            proptest::prop_assert_eq!(got, want);
            proptest::prop_assert_eq!(ring.len(), kept);
        }
    }

    #[test]
    fn throttle_keeps_one_tick_per_interval() {
        let mut ring = Ring::new(4);
        let kept: Vec<i64> = [0, 5, 10, 12, 25, 29, 30]
            .into_iter()
            .filter(|&t| ring.admit(&tick(t), 10))
            .collect();
        assert_eq!(kept, vec![0, 10, 25]);
        assert!(ring.admit(&tick(1), 0), "interval 0 means no throttle");
    }

    /// What could go wrong: one liquidity provider's ticks keep another's out of the store
    /// when the throttle is on (one reference for the symbol, whichever source set it).
    #[test]
    fn throttle_thins_each_source_apart() {
        let mut ring = Ring::new(4);
        let (lp1, lp2) = (|t| blank_tick(0, t), |t| blank_tick(1, t));
        let kept: Vec<(u32, i64)> = [lp1(0), lp2(1), lp1(4), lp2(6), lp1(10), lp2(11), lp2(12)]
            .into_iter()
            .filter(|t| ring.admit(t, 10))
            .map(|t| (t.source.0, t.ts_recv.0))
            .collect();
        assert_eq!(kept, [(0, 0), (1, 1), (0, 10), (1, 11)]);
    }
}
