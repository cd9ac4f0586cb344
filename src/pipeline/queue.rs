//! The bounded queue from producers (`store_tick`) to the writer thread: many producers, one
//! consumer, fixed capacity, no allocation after it is made.
//!
//! Why not a channel crate: a producer asks for the line its next tick will be written to
//! before it writes it ([`Producer::prefetch`], from `Recorder::prefetch_channel` as a
//! message is decoded), as it does for the ring's slot, and the slots are made as the rings'
//! are, in huge pages. In end to end the queue stands full, and a producer waits for a quarter of it to be
//! free, then writes slots the writer emptied up to a quarter of a lap (4 MB of ticks)
//! earlier, out of its core's cache by then: the send was most of `store_tick`'s p99.9
//! (`data/performance-log.md`, "Measured after run 64"). With this queue, `bench --only
//! publish`, alternating: `store_tick` p99 50 → 40 ns and p99.9 170–185 → 140–165 ns beside
//! eight subscribers; end to end against its ceiling 0.728 → 0.758 × ("Taken after run 64").
//! One consumer also spares the writer a compare-and-swap a tick, and the doorbell, not the
//! queue, does the waking.
//!
//! The algorithm is the array queue of Dmitry Vyukov as `crossbeam` builds it: every slot has
//! a stamp, `lap | index`; a producer claims the slot at `tail` by moving `tail` on (CAS) when
//! the slot's stamp equals `tail`, writes the tick, then stores `tail + 1` into the stamp; the
//! consumer takes the slot at `head` when its stamp is `head + 1`, then stores `head + one
//! lap`, which frees it for the producer of the next lap. Laps are a power of two at least
//! twice the capacity, so a stamp never confuses two laps; the bit below the lap (`mark`) is
//! set in `tail` when either side goes away, and no push succeeds after it (the CAS sees it).
//!
//! Invariants:
//! - a slot's tick is written only by the producer that moved `tail` past it, and read only by
//!   the consumer after it saw the stamp that producer stored (Release/Acquire), so no tick is
//!   read torn or twice, and none is overwritten before it is read;
//! - one consumer: [`Consumer::try_pop`] takes `&mut self`, and `Consumer` is not `Clone`;
//! - [`Consumer::try_pop`] reports [`Pop::Disconnected`] only when the queue is empty and the
//!   producer is gone, so the writer's final drain sees every accepted tick.
//!
//! Tests: the unit tests below, including several producers against the consumer with every
//! tick checked for order and count.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use super::ring::{prefetch_for_write, Slots};
use crate::tick::Tick;

/// Why a push failed.
#[derive(Debug)]
pub(crate) enum Push {
    /// No room; the tick is handed back.
    Full(Tick),
    /// The consumer is gone.
    Disconnected,
}

/// Why a pop found nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pop {
    Empty,
    Disconnected,
}

struct Shared {
    /// The next slot a producer claims, with `mark` set once either side has gone away.
    tail: CachePadded<AtomicUsize>,
    /// The next slot the consumer takes (stored by it after each pop, for `len`).
    head: CachePadded<AtomicUsize>,
    stamps: Box<[AtomicUsize]>,
    slots: Slots,
    cap: usize,
    /// A power of two above the largest index: the bit that marks a closed `tail`.
    mark: usize,
    /// `2 * mark`: the stamp's lap unit.
    one_lap: usize,
}

/// The producers' end (shared by reference between threads).
pub(crate) struct Producer(Arc<Shared>);
/// The consumer's end (one thread).
pub(crate) struct Consumer {
    q: Arc<Shared>,
    head: usize,
}

/// A queue of `capacity` ticks (at least 1).
pub(crate) fn bounded(capacity: usize) -> (Producer, Consumer) {
    let cap = capacity.max(1);
    let mark = cap
        .checked_add(1)
        .and_then(usize::checked_next_power_of_two)
        .expect("channel capacity overflows the address space");
    let one_lap = mark
        .checked_mul(2)
        .expect("channel capacity overflows the address space");
    let shared = Arc::new(Shared {
        tail: CachePadded::new(AtomicUsize::new(0)),
        head: CachePadded::new(AtomicUsize::new(0)),
        stamps: (0..cap).map(AtomicUsize::new).collect(),
        slots: super::ring::slots(cap),
        cap,
        mark,
        one_lap,
    });
    (Producer(shared.clone()), Consumer { q: shared, head: 0 })
}

impl Shared {
    /// The position after `pos`: the next index, or index 0 of the next lap.
    #[inline]
    fn next(&self, pos: usize) -> usize {
        let index = pos & (self.mark - 1);
        if index + 1 < self.cap {
            pos + 1
        } else {
            (pos & !(self.one_lap - 1)).wrapping_add(self.one_lap)
        }
    }

    fn len(&self) -> usize {
        loop {
            let tail = self.tail.load(Ordering::SeqCst);
            let head = self.head.load(Ordering::SeqCst);
            if self.tail.load(Ordering::SeqCst) == tail {
                let hix = head & (self.mark - 1);
                let tix = tail & (self.mark - 1);
                return if hix < tix {
                    tix - hix
                } else if hix > tix {
                    self.cap - hix + tix
                } else if tail & !self.mark == head {
                    0
                } else {
                    self.cap
                };
            }
        }
    }

    fn close(&self) {
        self.tail.fetch_or(self.mark, Ordering::SeqCst);
    }
}

impl Producer {
    /// Queues `tick`, or hands it back when the queue is full or the consumer is gone.
    #[inline]
    pub fn try_push(&self, tick: Tick) -> Result<(), Push> {
        let q = &*self.0;
        let mut tail = q.tail.load(Ordering::Relaxed);
        loop {
            if tail & q.mark != 0 {
                return Err(Push::Disconnected);
            }
            let index = tail & (q.mark - 1);
            let stamp = q.stamps[index].load(Ordering::Acquire);
            if stamp == tail {
                match q.tail.compare_exchange_weak(
                    tail,
                    q.next(tail),
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: the CAS gave this producer the slot (invariant 1): nobody
                        // else writes it, and the consumer reads it only after the stamp below.
                        unsafe { q.slots.as_ptr().add(index).write(tick) };
                        q.stamps[index].store(tail + 1, Ordering::Release);
                        return Ok(());
                    }
                    Err(t) => tail = t,
                }
            } else if stamp.wrapping_add(q.one_lap) == tail + 1 {
                // The slot still holds the previous lap's tick: full (or the consumer is
                // taking it this instant, which the caller's retry covers).
                return Err(Push::Full(tick));
            } else {
                // Another producer claimed this slot; try the next.
                std::hint::spin_loop();
                tail = q.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Asks for the lines the next push will write (its slot and stamp). A hint: with
    /// several producers another may take that slot first.
    #[inline]
    pub fn prefetch(&self) {
        let q = &*self.0;
        let index = q.tail.load(Ordering::Relaxed) & (q.mark - 1);
        if index < q.cap {
            // The pointers are only prefetched, never read or written through.
            prefetch_for_write(q.slots.as_ptr().wrapping_add(index).cast_const().cast());
            prefetch_for_write(std::ptr::from_ref(&q.stamps[index]).cast());
        }
    }

    /// Ticks queued now (a snapshot).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn capacity(&self) -> usize {
        self.0.cap
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Consumer {
    /// Takes the oldest tick; [`Pop::Disconnected`] only when none is left and the producer
    /// is gone.
    #[inline]
    pub fn try_pop(&mut self) -> Result<Tick, Pop> {
        let q = &*self.q;
        let head = self.head;
        let index = head & (q.mark - 1);
        let mut stamp = q.stamps[index].load(Ordering::Acquire);
        if stamp != head + 1 {
            // Empty, or a producer is between its claim and its stamp.
            if q.tail.load(Ordering::SeqCst) & q.mark == 0 {
                return Err(Pop::Empty);
            }
            // Closed: the producer's last stamps were stored before the mark was set.
            stamp = q.stamps[index].load(Ordering::Acquire);
            if stamp != head + 1 {
                return Err(Pop::Disconnected);
            }
        }
        // SAFETY: the stamp says a producer wrote this slot and no one writes it again
        // before the stamp below frees it (invariant 1).
        let tick = unsafe { q.slots.as_ptr().add(index).read() };
        q.stamps[index].store(head.wrapping_add(q.one_lap), Ordering::Release);
        self.head = q.next(head);
        q.head.store(self.head, Ordering::Release);
        Ok(tick)
    }

    /// Ticks queued now (a snapshot).
    pub fn len(&self) -> usize {
        self.q.len()
    }

    pub fn capacity(&self) -> usize {
        self.q.cap
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.q.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::ring::blank_tick as tick;

    #[test]
    fn first_in_first_out_over_many_laps_of_an_odd_capacity() {
        let (tx, mut rx) = bounded(3);
        let mut next_in = 0;
        let mut next_out = 0;
        for round in 0..50 {
            // Fill to the brim, then take back a varying number.
            while tx.try_push(tick(0, next_in)).is_ok() {
                next_in += 1;
            }
            assert_eq!(tx.len(), 3, "round {round}");
            assert!(matches!(tx.try_push(tick(0, -1)), Err(Push::Full(_))));
            for _ in 0..=(round % 3) {
                let t = rx.try_pop().expect("a queued tick");
                assert_eq!(t.ts_recv.0, next_out);
                next_out += 1;
            }
            assert_eq!(rx.len(), (next_in - next_out) as usize);
        }
        while let Ok(t) = rx.try_pop() {
            assert_eq!(t.ts_recv.0, next_out);
            next_out += 1;
        }
        assert_eq!(next_out, next_in);
        assert_eq!(rx.try_pop(), Err(Pop::Empty));
        assert_eq!(rx.len(), 0);
    }

    #[test]
    fn a_gone_producer_leaves_its_ticks_to_be_drained_then_disconnects() {
        let (tx, mut rx) = bounded(8);
        for n in 0..5 {
            tx.try_push(tick(0, n)).expect("room");
        }
        drop(tx);
        for n in 0..5 {
            assert_eq!(rx.try_pop().map(|t| t.ts_recv.0), Ok(n));
        }
        assert_eq!(rx.try_pop(), Err(Pop::Disconnected));
    }

    #[test]
    fn a_gone_consumer_refuses_every_push() {
        let (tx, rx) = bounded(8);
        tx.try_push(tick(0, 0)).expect("room");
        drop(rx);
        assert!(matches!(tx.try_push(tick(0, 1)), Err(Push::Disconnected)));
    }

    #[test]
    fn the_prefetched_slot_is_the_one_the_next_push_writes() {
        let (tx, mut rx) = bounded(5);
        for n in 0..23 {
            let index = tx.0.tail.load(Ordering::Relaxed) & (tx.0.mark - 1);
            tx.prefetch();
            tx.try_push(tick(0, n)).expect("room");
            // SAFETY: read after the push's stamp, on this thread; nothing writes meanwhile.
            let written = unsafe { tx.0.slots.as_ptr().add(index).read() };
            assert_eq!(written.ts_recv.0, n);
            assert_eq!(rx.try_pop().map(|t| t.ts_recv.0), Ok(n));
        }
    }

    #[test]
    fn several_producers_lose_nothing_duplicate_nothing_and_keep_their_order() {
        const PRODUCERS: u32 = 4;
        const EACH: i64 = 200_000;
        let (tx, mut rx) = bounded(1_000);
        let tx = Arc::new(tx);
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for n in 0..EACH {
                        let mut t = tick(p, n);
                        loop {
                            match tx.try_push(t) {
                                Ok(()) => break,
                                Err(Push::Full(back)) => {
                                    t = back;
                                    std::thread::yield_now();
                                }
                                Err(Push::Disconnected) => panic!("consumer gone"),
                            }
                        }
                    }
                })
            })
            .collect();
        let mut next = [0i64; PRODUCERS as usize];
        let mut taken = 0i64;
        let consumer = std::thread::spawn(move || {
            loop {
                match rx.try_pop() {
                    Ok(t) => {
                        let p = t.source.0 as usize;
                        assert_eq!(t.ts_recv.0, next[p], "producer {p}'s order");
                        next[p] += 1;
                        taken += 1;
                    }
                    Err(Pop::Empty) => std::thread::yield_now(),
                    Err(Pop::Disconnected) => break,
                }
            }
            (taken, next)
        });
        for p in producers {
            p.join().expect("producer");
        }
        drop(tx); // the last Arc: the producer end goes away
        let (taken, next) = consumer.join().expect("consumer");
        assert_eq!(taken, i64::from(PRODUCERS) * EACH);
        assert!(next.iter().all(|&n| n == EACH));
    }
}
