//! Per-symbol ring buffers of the most recent ticks, answering `recent()` while recording.
//!
//! Full-buffer policy: overwrite the oldest tick. The ring never blocks a producer and never
//! allocates after the symbol's first tick: its storage is allocated at full capacity and
//! written once when the ring is made, so that no later push faults a page in (first-touch
//! faults of the rings' memory were most of `store_tick`'s p99.9 in the first seconds of a
//! feed: 160 per symbol at the default capacity).

use crate::tick::{MsgRef, SourceId, SymbolId, Tick, Timestamp};

/// The last `capacity` ticks of one symbol plus its throttle state.
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
    buf: Box<[Slot]>,
    len: usize,
    head: usize,
    /// `ts_recv` of the last tick let through the throttle (`i64::MIN` before the first).
    last_kept_recv_ns: i64,
}

/// One tick on a cache line of its own (a `Tick` is 64 bytes).
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Slot(Tick);

/// A ring and its lock on one cache line of their own.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub(crate) struct RingLine(pub(crate) std::sync::OnceLock<std::sync::Mutex<Ring>>);

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

impl Ring {
    /// `capacity` must be at least 1.
    pub fn new(capacity: usize) -> Ring {
        Ring {
            buf: vec![EMPTY; capacity.max(1)].into_boxed_slice(),
            len: 0,
            head: 0,
            last_kept_recv_ns: i64::MIN,
        }
    }

    /// Throttle check: true when `tick` comes at least `min_interval_ns` after the last kept
    /// tick (always true when the interval is 0). A kept tick becomes the new reference.
    pub fn admit(&mut self, tick: &Tick, min_interval_ns: i64) -> bool {
        if min_interval_ns > 0
            && self.last_kept_recv_ns != i64::MIN
            && tick.ts_recv.0.saturating_sub(self.last_kept_recv_ns) < min_interval_ns
        {
            return false;
        }
        self.last_kept_recv_ns = tick.ts_recv.0;
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

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Up to `n` ticks, newest first.
    pub fn newest(&self, n: usize) -> impl Iterator<Item = &Tick> + '_ {
        let cap = self.buf.len();
        // The newest tick sits just before `head` (cyclically).
        (0..n.min(self.len)).map(move |i| &self.buf[(self.head + cap - 1 - i) % cap].0)
    }

    /// Bytes this ring's slots take.
    pub fn footprint_bytes(capacity: usize) -> usize {
        capacity * std::mem::size_of::<Slot>()
    }
}

/// Asks for the cache line at `p` ahead of a write to it.
#[inline]
fn prefetch_for_write(p: *const i8) {
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
    use crate::tick::{MsgRef, SourceId, SymbolId, Timestamp};

    fn tick(recv: i64) -> Tick {
        Tick {
            symbol: SymbolId(0),
            source: SourceId(0),
            ts_event: Timestamp(recv),
            ts_recv: Timestamp(recv),
            bid: None,
            ask: None,
            bid_size: None,
            ask_size: None,
            msg: MsgRef::NONE,
        }
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

    /// A slot and a ring's state with its lock are one cache line each (Linux's lock is a
    /// futex word; elsewhere the entry may take two).
    #[test]
    fn a_slot_and_a_rings_state_are_one_cache_line_each() {
        assert_eq!(std::mem::size_of::<Slot>(), 64, "a Tick is 64 bytes");
        let ring = Ring::new(3);
        assert_eq!(ring.buf.as_ptr() as usize % 64, 0);
        #[cfg(target_os = "linux")]
        assert_eq!(std::mem::size_of::<RingLine>(), 64);
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
}
