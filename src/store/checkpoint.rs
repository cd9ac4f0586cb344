//! The WAL checkpointer, off the writer's path.
//!
//! With SQLite's automatic checkpoint, the commit that crosses the threshold copies the WAL
//! into the database itself, and that commit takes milliseconds instead of a fraction of one.
//! Instead the writer's connections never checkpoint (`wal_autocheckpoint = 0`) and this thread
//! runs `PRAGMA wal_checkpoint(PASSIVE)` at a fixed interval on every day file the writer has
//! open (the writer adds and removes them; which files those are depends on what was written,
//! never on the newest `ts_event` seen). PASSIVE never waits for the writer.
//!
//! After each pass it syncs the database file itself (`flush_copied`), so that the writer's WAL
//! restart finds little left to write.
//!
//! PASSIVE alone does not bound the WAL: under sustained writes it never catches up with the
//! writer, so the WAL is never restarted and grows. The writer bounds it itself, between
//! commits (`store::writer`, `WalBound`); a checkpoint from this thread that tried would have
//! to win the write lock against a writer that takes it back-to-back. Files the writer closes
//! are checkpointed (TRUNCATE) by the writer at close, waiting at most 100 ms for readers; a WAL
//! a reader still holds stays for the next opening or `seal` (`store::writer::close_day`).
//!
//! While a pass runs, the file it is on is known (`Passing`). A restart of the writer's that
//! meets it is busy at once (SQLite calls no busy handler when another checkpoint holds the
//! file) and tries again until its deadline; one past the bound waits the pass out, however
//! long, rather than give up as it would on a reader.
//!
//! Failures are logged once per change of state, not once per attempt.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use crate::shutdown::Shutdown;

/// A running checkpointer thread; stops when dropped.
#[derive(Debug)]
pub struct Checkpointer {
    targets: Arc<Mutex<Vec<PathBuf>>>,
    passing: Arc<Passing>,
    stop: Shutdown,
    handle: Option<JoinHandle<()>>,
}

/// The file a checkpointer's pass is on, while it is on one. A WAL restart that would
/// otherwise give up waits out such a pass, which ends, where it gives up on a reader, who may
/// not (`store::writer::WalBound`).
#[derive(Debug, Default)]
pub struct Passing(Mutex<Option<PathBuf>>);

impl Passing {
    /// A pass on `path` is under way.
    pub fn on(&self, path: &Path) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).as_deref() == Some(path)
    }

    fn set(&self, path: Option<&Path>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = path.map(Path::to_owned);
    }
}

impl Checkpointer {
    pub fn start(interval: Duration, busy_timeout: Duration) -> std::io::Result<Checkpointer> {
        let targets: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
        let passing: Arc<Passing> = Arc::default();
        let stop = Shutdown::new();
        let handle = {
            let (targets, passing, stop) = (targets.clone(), passing.clone(), stop.clone());
            std::thread::Builder::new()
                .name("tickrec-checkpoint".into())
                .spawn(move || run(&targets, &passing, &stop, interval, busy_timeout))?
        };
        Ok(Checkpointer {
            targets,
            passing,
            stop,
            handle: Some(handle),
        })
    }

    /// Where its passes are.
    pub fn passing(&self) -> Arc<Passing> {
        Arc::clone(&self.passing)
    }

    /// Keeps `path` checkpointed from now on (the writer opened it).
    pub fn add(&self, path: PathBuf) {
        let mut t = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        if !t.contains(&path) {
            t.push(path);
        }
    }

    /// Stops checkpointing `path` (the writer closed it).
    pub fn remove(&self, path: &Path) {
        let mut t = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        t.retain(|p| p != path);
    }
}

fn run(
    targets: &Mutex<Vec<PathBuf>>,
    passing: &Passing,
    stop: &Shutdown,
    interval: Duration,
    busy: Duration,
) {
    let mut conns: Vec<(PathBuf, Connection, Option<std::fs::File>)> = Vec::new();
    let mut failing: Vec<PathBuf> = Vec::new();
    while !stop.wait_timeout(interval) {
        let want = targets.lock().unwrap_or_else(|e| e.into_inner()).clone();
        conns.retain(|(p, _, _)| want.contains(p));
        failing.retain(|p| want.contains(p));
        for path in want {
            let i = match conns.iter().position(|(p, _, _)| *p == path) {
                Some(i) => i,
                None => match Connection::open(&path).and_then(|c| c.busy_timeout(busy).map(|_| c))
                {
                    Ok(c) => {
                        conns.push((path.clone(), c, std::fs::File::open(&path).ok()));
                        conns.len() - 1
                    }
                    Err(e) => {
                        report(&mut failing, &path, Some(&e));
                        continue;
                    }
                },
            };
            let (_, c, file) = &mut conns[i];
            passing.set(Some(&path));
            let passed = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            passing.set(None);
            match passed {
                Ok(()) => {
                    report(&mut failing, &path, None);
                    flush_copied(file, &path);
                }
                Err(e) => {
                    report(&mut failing, &path, Some(&e));
                    conns.remove(i);
                }
            }
        }
    }
}

/// Writes the pages a pass copied into the database file to disk, here rather than in the
/// writer's next WAL restart. A pass that does not reach the WAL's end (under sustained writes,
/// none does) leaves them in the page cache, and the restart's `fsync` of the database wrote
/// them all while the writer waited: 0.85–1.26 s of each 10M-tick writer run in `bench` (run
/// 55), 18 or 19 restarts. `bench --only writer --rounds 3`, two runs a side, alternating: the
/// restarts of a 10M-tick run took 0.82–1.26 s (median 0.89) before, 0.66–0.86 s (median 0.72)
/// after; the writer 1.08M–1.40M ticks/s (median 1.34M) against 1.22M–1.56M (1.42M), the
/// ceiling's loop, which keeps the same checkpointer, 1.28M–1.49M (1.44M) against 1.46M–1.61M
/// (1.55M); end to end 1.02M–1.27M against 0.96M–1.25M (medians 1.09M and 1.11M). One more
/// `fsync` of a file SQLite syncs anyway adds no durability and takes none away (Linux reports
/// a failed write-back to every descriptor open on the file, SQLite's included), so a failure
/// here is logged, not acted on: SQLite's own sync reports it to the writer.
fn flush_copied(file: &mut Option<std::fs::File>, path: &Path) {
    if let Some(f) = file.as_ref() {
        if let Err(e) = f.sync_data() {
            tracing::warn!(file = %path.display(), error = %e, "checkpointer: syncing the database file failed");
            *file = None;
        }
    }
}

/// Logs a checkpoint failure when a file starts failing, and its recovery.
fn report(failing: &mut Vec<PathBuf>, path: &Path, err: Option<&rusqlite::Error>) {
    let was = failing.iter().position(|p| p == path);
    match (err, was) {
        (Some(e), None) => {
            tracing::warn!(file = %path.display(), error = %e, "background checkpoint failing; retrying quietly");
            failing.push(path.to_owned());
        }
        (None, Some(i)) => {
            tracing::info!(file = %path.display(), "background checkpoint working again");
            failing.swap_remove(i);
        }
        _ => {}
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.request();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
