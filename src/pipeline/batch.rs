//! The writer thread: size-or-deadline batching from the channel into the storage backends.
//!
//! A batch closes when it holds `batch_size` ticks or when its first tick has waited
//! `batch_timeout`, whichever comes first: that bounds both the transaction rate and how long
//! an accepted tick can sit in memory before it is durable. The batch buffer is allocated once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

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

/// How often an idle writer looks at the stop flag.
const IDLE_POLL: Duration = Duration::from_millis(20);

/// What the writer thread shares with its recorder.
pub(crate) struct WriterControl {
    /// Set once no producer can send any more: drain, then close.
    pub stop: Arc<AtomicBool>,
    /// Set when shutdown gives up on a stalled store (passed to the sinks).
    pub abort: Shutdown,
    pub stats: Arc<Stats>,
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
pub(crate) fn run_writer(
    rx: Receiver<Tick>,
    mut sinks: Vec<Box<dyn Sink>>,
    policy: BatchPolicy,
    ctl: WriterControl,
) {
    let stop = &ctl.stop;
    let batch_size = policy.batch_size.max(1);
    let mut batch: Vec<Tick> = Vec::with_capacity(batch_size);
    let mut open = OpenMessages::default();
    'outer: loop {
        // Wait for the batch's first tick.
        match rx.recv_timeout(IDLE_POLL) {
            Ok(t) => take(&mut batch, &mut open, t),
            Err(RecvTimeoutError::Timeout) => {
                if stop.load(Ordering::Acquire) {
                    break 'outer;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break 'outer,
        }
        let deadline = Instant::now() + policy.batch_timeout;
        while batch.len() < batch_size {
            // Take what is already queued without a syscall; only then wait.
            match rx.try_recv() {
                Ok(t) => {
                    take(&mut batch, &mut open, t);
                    continue;
                }
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {}
            }
            if stop.load(Ordering::Acquire) {
                break;
            }
            match rx.recv_deadline(deadline) {
                Ok(t) => take(&mut batch, &mut open, t),
                Err(_) => break,
            }
        }
        // Never split one FIX message's ticks across transactions, whatever the mix of
        // sessions: its durable sequence mark must cover all of them or none. The rest of a
        // message is microseconds behind.
        while open.any() {
            match rx.recv_timeout(MESSAGE_TAIL_WAIT) {
                Ok(t) => take(&mut batch, &mut open, t),
                Err(_) => break,
            }
        }
        write_all(&mut sinks, &batch, &ctl);
        batch.clear();
    }
    // Drain: nothing more can arrive, so write whatever is still queued.
    loop {
        while batch.len() < batch_size || open.any() {
            match rx.try_recv() {
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
}

fn take(batch: &mut Vec<Tick>, open: &mut OpenMessages, t: Tick) {
    open.note(&t);
    batch.push(t);
}

fn write_all(sinks: &mut [Box<dyn Sink>], batch: &[Tick], ctl: &WriterControl) {
    ctl.stats
        .in_writer
        .store(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
    // Each backend handles its own failures (retries, dead letters, stalls); a stalled one
    // holds the batch, and with it the writer: that is the backpressure.
    for sink in sinks.iter_mut() {
        sink.write_batch(batch, &ctl.abort);
    }
    ctl.stats
        .in_writer
        .store(0, std::sync::atomic::Ordering::Relaxed);
}
