//! The wall clock, injectable so that tests cross UTC midnight without waiting for it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::tick::Timestamp;

/// Source of "now" for receive stamps and day boundaries.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The system's UTC clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        // Before 1970 or after 2262 the system clock is broken; pin to the epoch rather than panic.
        // (Straight from SystemTime: through chrono's calendar it was a tenth of the
        // simulator's time per message.)
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_nanos()).ok())
            .map_or(Timestamp(0), Timestamp)
    }
}

/// A clock that only moves when told to (tests, replays).
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(start.0)))
    }

    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }

    pub fn advance_nanos(&self, nanos: i64) {
        self.0.fetch_add(nanos, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}
