//! The writer thread: size-or-deadline batching from the channel into the storage backends.
//!
//! A batch closes when it holds `batch_size` ticks or when its first tick has waited
//! `batch_timeout`, whichever comes first: that bounds both the transaction rate and how long
//! an accepted tick can sit in memory before it is durable (plus at most `IDLE_POLL`, the
//! longest an idle writer sleeps before it sees the first tick). The batch buffer is
//! allocated once.
//!
//! The writer waits by sleeping, never by being woken (see `MIN_POLL`): no producer makes a
//! syscall for it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::queue::{Consumer, Pop};

use super::{Sink, Stats};
use crate::shutdown::Shutdown;
use crate::tick::{OriginId, Tick};

/// How the writer groups ticks into transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    pub batch_size: usize,
    pub batch_timeout: Duration,
}

impl Default for BatchPolicy {
    fn default() -> BatchPolicy {
        BatchPolicy {
            batch_size: 500,
            batch_timeout: Duration::from_millis(100),
        }
    }
}

/// Longest wait for the remaining ticks of a message whose first ticks closed a batch.
const MESSAGE_TAIL_WAIT: Duration = Duration::from_secs(1);

/// The writer waits by sleeping, never by being woken: a producer that had to wake it would
/// make a syscall inside `store_tick` (once per batch, and once per tick at moderate rates,
/// where the writer outruns the feed; that was the whole p99.9 of `store_tick`). Shortest
/// sleep, and the longest an idle writer sleeps (the most a tick can wait before its batch
/// starts, on top of `batch_timeout`).
const MIN_POLL: Duration = Duration::from_micros(50);

/// A filling batch's sleep: `rest`, at least [`MIN_POLL`], at most `left` to its deadline.
/// (Not `clamp`: it panics when the deadline is nearer than `MIN_POLL`, which took the writer
/// thread down under load.)
fn nap(rest: Duration, left: Duration) -> Duration {
    rest.max(MIN_POLL).min(left)
}
const IDLE_POLL: Duration = Duration::from_millis(5);

/// An idle writer's sleeps: doubling from [`MIN_POLL`] up to [`IDLE_POLL`].
#[derive(Default)]
struct Backoff(u32);

impl Backoff {
    fn next(&mut self) -> Duration {
        let d = MIN_POLL.saturating_mul(1 << self.0.min(16)).min(IDLE_POLL);
        self.0 = self.0.saturating_add(1);
        d
    }
}

/// What the writer thread shares with its recorder.
pub(crate) struct WriterControl {
    /// Set once no producer can send any more: drain, then close.
    pub stop: Arc<AtomicBool>,
    /// Set when shutdown gives up on a stalled store (passed to the sinks).
    pub abort: Shutdown,
    pub stats: Arc<Stats>,
    /// Rung by the writer when it has taken a batch (producers wait on it on a full channel).
    pub room: Arc<super::doorbell::Doorbell>,
}

/// Messages with ticks in the batch but not yet their last one, by origin (a handful of
/// sessions at most: a linear scan beats a map).
#[derive(Default)]
struct OpenMessages(Vec<OriginId>);

impl OpenMessages {
    fn note(&mut self, t: &Tick) {
        let origin = t.msg.origin();
        if origin == OriginId::NONE {
            return;
        }
        let at = self.0.iter().position(|o| *o == origin);
        match (t.msg.more_follow(), at) {
            (true, None) => self.0.push(origin),
            (false, Some(i)) => {
                self.0.swap_remove(i);
            }
            _ => {}
        }
    }

    fn any(&self) -> bool {
        !self.0.is_empty()
    }
}

/// Runs until `stop` is set and the channel is empty (or every sender is gone), then closes
/// the sinks. Precondition for `stop`: no producer can send any more (see
/// `Recorder::shutdown`), so "empty" is final and every accepted tick reaches a sink.
///
/// Long (~90 lines) on purpose: the writer thread's loop; the stall and retry state it carries
/// stays local to it.
pub(crate) fn run_writer(
    mut rx: Consumer,
    mut sinks: Vec<Box<dyn Sink>>,
    policy: BatchPolicy,
    ctl: WriterControl,
) {
    let stop = &ctl.stop;
    let batch_size = policy.batch_size.max(1);
    let capacity = rx.capacity().max(1);
    let mut batch: Vec<Tick> = Vec::with_capacity(batch_size);
    let mut open = OpenMessages::default();
    let mut idle = Backoff::default();
    ctl.stats
        .writer_tid
        .store(crate::procstat::thread_id(), Ordering::Release);
    'outer: loop {
        // Wait for the batch's first tick: polled, so that no producer has a writer to wake.
        match rx.try_pop() {
            Ok(t) => {
                idle = Backoff::default();
                take(&mut batch, &mut open, t);
            }
            Err(Pop::Empty) => {
                if stop.load(Ordering::Acquire) {
                    break 'outer;
                }
                std::thread::sleep(idle.next());
                continue;
            }
            Err(Pop::Disconnected) => break 'outer,
        }
        let started = Instant::now();
        let deadline = started + policy.batch_timeout;
        while batch.len() < batch_size {
            // Take what is already queued; only then wait.
            match rx.try_pop() {
                Ok(t) => {
                    take(&mut batch, &mut open, t);
                    continue;
                }
                Err(Pop::Disconnected) => break,
                Err(Pop::Empty) => {}
            }
            let now = Instant::now();
            if stop.load(Ordering::Acquire) || now >= deadline {
                break;
            }
            // Producers waiting for room (a channel smaller than a batch) fill it meanwhile.
            ctl.room.ring_if(|| capacity.saturating_sub(rx.len()));
            // Sleep for as long as the rest of the batch should take at the rate the batch
            // has filled so far, but no longer than the channel takes to fill (producers
            // would wait); at least MIN_POLL, at most to the deadline.
            let per_tick = now.duration_since(started) / batch.len().max(1) as u32;
            let rest = (batch_size - batch.len()).min(capacity);
            let rest = per_tick.saturating_mul(u32::try_from(rest).unwrap_or(u32::MAX));
            std::thread::sleep(nap(rest, deadline - now));
        }
        // The batch is out of the channel: producers waiting for room may go on.
        ctl.room.ring_if(|| capacity.saturating_sub(rx.len()));
        // Never split one FIX message's ticks across transactions, whatever the mix of
        // sessions: its durable sequence mark must cover all of them or none. The rest of a
        // message is microseconds behind.
        let tail_deadline = Instant::now() + MESSAGE_TAIL_WAIT;
        while open.any() {
            match rx.try_pop() {
                Ok(t) => take(&mut batch, &mut open, t),
                Err(Pop::Empty) if Instant::now() < tail_deadline => {
                    std::thread::sleep(MIN_POLL);
                }
                Err(_) => break,
            }
        }
        write_all(&mut sinks, &batch, &ctl);
        batch.clear();
    }
    // Drain: nothing more can arrive, so write whatever is still queued.
    loop {
        while batch.len() < batch_size || open.any() {
            match rx.try_pop() {
                Ok(t) => take(&mut batch, &mut open, t),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            break;
        }
        write_all(&mut sinks, &batch, &ctl);
        batch.clear();
    }
    for sink in &mut sinks {
        sink.close();
    }
    note_cpu(&ctl.stats);
    // Kept for snapshots after the thread has gone (the wait is read before the id is let go).
    let wait = ctl.stats.writer_cpu_wait();
    let ns = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
    ctl.stats.writer_wait_ns.store(ns, Ordering::Release);
    ctl.stats.writer_tid.store(0, Ordering::Release);
}

fn take(batch: &mut Vec<Tick>, open: &mut OpenMessages, t: Tick) {
    open.note(&t);
    batch.push(t);
}

fn write_all(sinks: &mut [Box<dyn Sink>], batch: &[Tick], ctl: &WriterControl) {
    ctl.stats.open_batch(batch.len());
    // Each backend handles its own failures (retries, dead letters, stalls); a stalled one
    // holds the batch, and with it the writer: that is the backpressure.
    for sink in sinks.iter_mut() {
        sink.write_batch(batch, &ctl.abort);
    }
    ctl.stats.open_batch(0);
    note_cpu(&ctl.stats);
}

/// Records the writer thread's CPU time so far: one system call a batch (the thread's CPU
/// clock has no fast path: 0.72–0.79 µs a call here), under 2 ns a tick of a 500-tick batch,
/// a tenth of a percent of the writer thread's time.
fn note_cpu(stats: &Stats) {
    if let Some(cpu) = crate::procstat::thread_cpu() {
        let ns = u64::try_from(cpu.as_nanos()).unwrap_or(u64::MAX);
        stats.writer_cpu_ns.store(ns, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_sleeps_at_least_min_poll_and_never_past_its_deadline() {
        let us = Duration::from_micros;
        assert_eq!(nap(us(10), us(1_000)), MIN_POLL);
        assert_eq!(nap(us(300), us(1_000)), us(300));
        assert_eq!(nap(us(5_000), us(1_000)), us(1_000));
        // A deadline nearer than MIN_POLL: no panic, the deadline wins.
        assert_eq!(nap(us(300), us(20)), us(20));
        assert_eq!(nap(us(0), us(0)), us(0));
    }
}
