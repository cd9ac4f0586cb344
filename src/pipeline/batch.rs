//! The writer thread: size-or-deadline batching from the channel into the storage backends.
//!
//! A batch closes when it holds `batch_size` ticks or when its first tick has waited
//! `batch_timeout`, whichever comes first: that bounds both the transaction rate and how long
//! an accepted tick can sit in memory before it is durable. The batch buffer is allocated once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

use super::Sink;
use crate::tick::Tick;

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

/// Runs until `stop` is set and the channel is empty (or every sender is gone), then closes
/// the sinks. Precondition for `stop`: no producer can send any more (see
/// `Recorder::shutdown`), so "empty" is final and every accepted tick reaches a sink.
pub(crate) fn run_writer(
    rx: Receiver<Tick>,
    mut sinks: Vec<Box<dyn Sink>>,
    policy: BatchPolicy,
    stop: Arc<AtomicBool>,
) {
    let batch_size = policy.batch_size.max(1);
    let mut batch: Vec<Tick> = Vec::with_capacity(batch_size);
    'outer: loop {
        // Wait for the batch's first tick.
        match rx.recv_timeout(IDLE_POLL) {
            Ok(t) => batch.push(t),
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
                    batch.push(t);
                    continue;
                }
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {}
            }
            if stop.load(Ordering::Acquire) {
                break;
            }
            match rx.recv_deadline(deadline) {
                Ok(t) => batch.push(t),
                Err(_) => break,
            }
        }
        // Never split one FIX message's ticks across transactions: its durable sequence mark
        // must cover all of them or none. The rest of the message is microseconds behind.
        while batch.last().is_some_and(|t| t.msg.more_follow()) {
            match rx.recv_timeout(MESSAGE_TAIL_WAIT) {
                Ok(t) => batch.push(t),
                Err(_) => break,
            }
        }
        write_all(&mut sinks, &batch);
        batch.clear();
    }
    // Drain: nothing more can arrive, so write whatever is still queued.
    loop {
        while batch.len() < batch_size || batch.last().is_some_and(|t| t.msg.more_follow()) {
            match rx.try_recv() {
                Ok(t) => batch.push(t),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            break;
        }
        write_all(&mut sinks, &batch);
        batch.clear();
    }
    for sink in &mut sinks {
        sink.close();
    }
}

fn write_all(sinks: &mut [Box<dyn Sink>], batch: &[Tick]) {
    // Each backend handles its own failures (retries, dead letters), so one backend's trouble
    // never keeps a batch from the others.
    for sink in sinks.iter_mut() {
        sink.write_batch(batch);
    }
}
