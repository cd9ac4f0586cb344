//! The WAL checkpointer, off the writer's path.
//!
//! With SQLite's automatic checkpoint, the commit that crosses the threshold copies the WAL
//! into the database itself, and that commit takes milliseconds instead of a fraction of one.
//! Instead the writer's connection never checkpoints (`wal_autocheckpoint = 0`) and this thread
//! runs `PRAGMA wal_checkpoint(PASSIVE)` on the newest day file at a fixed interval from its own
//! connection: PASSIVE never waits for the writer, and the writer never waits for it. Files
//! the writer closes are checkpointed (TRUNCATE) by the writer at close.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

/// A running checkpointer thread; stops when dropped.
#[derive(Debug)]
pub struct Checkpointer {
    target: Arc<Mutex<Option<PathBuf>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub fn start(interval: Duration, busy_timeout: Duration) -> std::io::Result<Checkpointer> {
        let target: Arc<Mutex<Option<PathBuf>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let (target, stop) = (target.clone(), stop.clone());
            std::thread::Builder::new()
                .name("tickrec-checkpoint".into())
                .spawn(move || run(&target, &stop, interval, busy_timeout))?
        };
        Ok(Checkpointer {
            target,
            stop,
            handle: Some(handle),
        })
    }

    /// The file to keep checkpointing from now on (the newest day).
    pub fn set_target(&self, path: PathBuf) {
        *self.target.lock().unwrap_or_else(|e| e.into_inner()) = Some(path);
    }
}

fn run(target: &Mutex<Option<PathBuf>>, stop: &AtomicBool, interval: Duration, busy: Duration) {
    let mut conn: Option<(PathBuf, Connection)> = None;
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(interval);
        let want = target.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(want) = want else { continue };
        if conn.as_ref().is_none_or(|(p, _)| *p != want) {
            conn = Connection::open(&want)
                .and_then(|c| c.busy_timeout(busy).map(|_| c))
                .map(|c| (want.clone(), c))
                .map_err(|e| tracing::warn!(file = %want.display(), error = %e, "checkpointer cannot open the day file"))
                .ok();
        }
        if let Some((path, c)) = &conn {
            if let Err(e) = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(file = %path.display(), error = %e, "background checkpoint failed; will retry");
                conn = None;
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
