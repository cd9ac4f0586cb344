//! The shutdown signal: SIGINT/SIGTERM (or a caller) asks the process to stop; loops poll it
//! or wait on it. Installing the OS handler happens once, in the binary.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A latch that is set once and then stays set. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    wake: Arc<(Mutex<()>, Condvar)>,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Sets the latch on SIGINT and SIGTERM. Call at most once per process.
    pub fn install_signal_handler(&self) -> Result<(), ctrlc::Error> {
        let me = self.clone();
        ctrlc::set_handler(move || {
            if me.is_requested() {
                tracing::warn!("second signal: still draining; kill -9 would lose queued ticks");
            }
            me.request();
        })
    }

    pub fn request(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _guard = self.wake.0.lock().unwrap_or_else(|e| e.into_inner());
        self.wake.1.notify_all();
    }

    pub fn is_requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// The flag itself, for loops that check it between records.
    pub fn flag(&self) -> &AtomicBool {
        &self.flag
    }

    /// Waits up to `timeout`; true when shutdown was requested.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let guard = self.wake.0.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_requested() {
            return true;
        }
        let _ = self
            .wake
            .1
            .wait_timeout(guard, timeout)
            .unwrap_or_else(|e| e.into_inner());
        self.is_requested()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_wakes_a_waiter() {
        let s = Shutdown::new();
        let s2 = s.clone();
        let waiter = std::thread::spawn(move || s2.wait_timeout(Duration::from_secs(30)));
        // Either order must wake it; the pause only makes "already waiting" the likely one.
        std::thread::sleep(Duration::from_millis(20));
        s.request();
        assert!(waiter.join().unwrap());
        assert!(s.wait_timeout(Duration::ZERO));
    }
}
