//! Wake-ups between producers and the writer: one per batch or less, not one per tick.
//!
//! The channel's own blocking calls wake a waiting writer on every tick sent, and a producer
//! waiting for room on every tick taken: when the writer is faster than the feed it sleeps
//! and wakes once per tick while it fills a batch (two syscalls and a context switch per
//! tick, on the producer's `store_tick` path), and when the feed is faster the two ping-pong
//! per tick on a full channel. A [`Doorbell`] is rung only when its waiter's condition holds:
//! the writer asks to be woken when the rest of its batch is queued, a producer when a quarter
//! of the channel (at least a batch) is free.
//!
//! Invariant (no lost wake-up): the waiter publishes what it waits for, then checks the
//! condition, under the doorbell's lock; the other side changes the condition, then reads what
//! is waited for. A `SeqCst` fence on each side between the two steps means at least one of
//! them sees the other. Every wait is bounded as well (a deadline, or a poll for shutdown).

use std::sync::atomic::{fence, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

#[derive(Debug, Default)]
pub(crate) struct Doorbell {
    /// Threads waiting now.
    waiters: AtomicUsize,
    /// What they wait for (a count; its meaning is the caller's): the smallest asked.
    want: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Doorbell {
    /// Sleeps until the doorbell is rung, `ready()` holds on entry, or `deadline`. `want`
    /// (at least 1) is what [`Doorbell::ring_if`] compares with.
    pub fn wait(&self, want: usize, ready: impl Fn() -> bool, deadline: Instant) {
        let guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.waiters.fetch_add(1, Ordering::SeqCst) == 0 {
            self.want.store(want.max(1), Ordering::SeqCst);
        } else {
            self.want.fetch_min(want.max(1), Ordering::SeqCst);
        }
        fence(Ordering::SeqCst);
        let guard = if ready() {
            guard
        } else {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.cv.wait_timeout(guard, left) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            }
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        drop(guard);
    }

    /// Rings when a waiter waits for at most `have` (`have` read after the change that may
    /// satisfy it). One fence and one load when nobody waits.
    #[inline]
    pub fn ring_if(&self, have: impl FnOnce() -> usize) {
        fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::Relaxed) != 0 && have() >= self.want.load(Ordering::Relaxed)
        {
            self.ring();
        }
    }

    /// Wakes every waiter.
    pub fn ring(&self) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_waiter_wakes_when_its_count_is_reached_not_before() {
        let bell = Arc::new(Doorbell::default());
        let level = Arc::new(AtomicUsize::new(0));
        let waiter = {
            let (bell, level) = (bell.clone(), level.clone());
            std::thread::spawn(move || {
                let t = Instant::now();
                let deadline = t + Duration::from_secs(30);
                while level.load(Ordering::SeqCst) < 100 {
                    bell.wait(100, || level.load(Ordering::SeqCst) >= 100, deadline);
                }
                t.elapsed()
            })
        };
        for _ in 0..100 {
            level.fetch_add(1, Ordering::SeqCst);
            bell.ring_if(|| level.load(Ordering::SeqCst));
        }
        let waited = waiter.join().unwrap();
        assert!(waited < Duration::from_secs(30), "woken, not timed out");
    }

    #[test]
    fn a_wait_ends_at_its_deadline() {
        let bell = Doorbell::default();
        let t = Instant::now();
        bell.wait(5, || false, t + Duration::from_millis(30));
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert_eq!(bell.waiters.load(Ordering::SeqCst), 0, "nobody waits after");
    }
}
