//! The WAL checkpointer, off the writer's path.
//!
//! With SQLite's automatic checkpoint, the commit that crosses the threshold copies the WAL
//! into the database itself, and that commit takes milliseconds instead of a fraction of one.
//! Instead the writer's connections never checkpoint (`wal_autocheckpoint = 0`) and this thread
//! runs `PRAGMA wal_checkpoint(PASSIVE)` at a fixed interval on every day file the writer has
//! open (the writer adds and removes them; which files those are depends on what was written,
//! never on the newest `ts_event` seen). PASSIVE never waits for the writer.
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
//! SQLite syncs the database at the end of a checkpoint only when the checkpoint reached the
//! WAL's end, which a PASSIVE pass under sustained writes never does: the pages it copied would
//! stay dirty in the kernel until the writer's restart had to `fsync` them all, asleep. So after
//! each pass that copied something new, this thread syncs the database itself, through the file
//! handle of its own SQLite connection (`sync_database`; a descriptor opened outside SQLite would
//! drop the process's POSIX locks on the file when closed). A restart then finds little to flush.
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

    pub(super) fn set(&self, path: Option<&Path>) {
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
    // Each file's connection, and the frames its WAL had backfilled when it was last synced.
    let mut conns: Vec<(PathBuf, Connection, i64)> = Vec::new();
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
                        conns.push((path.clone(), c, 0));
                        conns.len() - 1
                    }
                    Err(e) => {
                        report(&mut failing, &path, Some(&e));
                        continue;
                    }
                },
            };
            let (_, c, synced) = &mut conns[i];
            passing.set(Some(&path));
            // (busy, frames in the WAL, frames of it backfilled so far); -1s when not in WAL
            // mode or when another checkpoint holds the file.
            let pass = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(2));
            passing.set(None);
            // The sync holds no SQLite lock: it comes after the pass, which a restart waits
            // out (`Passing`), so that no restart waits for it. Nothing newly backfilled (a
            // reader on an old snapshot holds the copy back, say), no sync.
            let passed = pass.and_then(|backfilled| {
                if backfilled > 0 && backfilled != *synced {
                    sync_database(c)?;
                    *synced = backfilled;
                }
                Ok(())
            });
            match passed {
                Ok(()) => report(&mut failing, &path, None),
                Err(e) => {
                    report(&mut failing, &path, Some(&e));
                    conns.remove(i);
                }
            }
        }
    }
}

/// `fsync`s `conn`'s main database file through SQLite's own handle of it (`xSync` of the
/// `sqlite3_file` that `SQLITE_FCNTL_FILE_POINTER` yields): what SQLite would do at the end of
/// a checkpoint that reached the WAL's end, done after one that did not.
fn sync_database(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::ffi;
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: `conn.handle()` is this live connection's; the file control writes one pointer
    // to `file`, which is valid for the connection's life, and this thread is the only user of
    // the connection while the call runs.
    let rc = unsafe {
        ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_FILE_POINTER,
            (&raw mut file).cast(),
        )
    };
    if rc != ffi::SQLITE_OK {
        return Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None));
    }
    // SAFETY: a non-null `file` with non-null methods is the open main database file; `xSync`
    // is the VFS's sync of it, which SQLite calls in the same way.
    let rc = unsafe {
        match file
            .as_ref()
            .and_then(|f| f.pMethods.as_ref())
            .and_then(|m| m.xSync)
        {
            Some(sync) => sync(file, ffi::SQLITE_SYNC_NORMAL),
            None => ffi::SQLITE_OK,
        }
    };
    match rc {
        ffi::SQLITE_OK => Ok(()),
        rc => Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None)),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The sync goes through SQLite's handle and leaves the connection, and the writer's, working.
    #[test]
    fn sync_database_syncs_a_wal_database_and_writing_goes_on(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("d.db");
        let w = Connection::open(&path)?;
        w.pragma_update(None, "journal_mode", "WAL")?;
        w.pragma_update(None, "wal_autocheckpoint", 0)?;
        w.execute_batch("CREATE TABLE t (x INTEGER)")?;
        let c = Connection::open(&path)?;
        for i in 0..3 {
            w.execute("INSERT INTO t VALUES (?1)", [i])?;
            let copied: i64 = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(2))?;
            assert!(copied > 0);
            sync_database(&c)?;
        }
        let n: i64 = c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?;
        assert_eq!(n, 3);
        // An in-memory database has no file to sync: nothing happens, no error.
        sync_database(&Connection::open_in_memory()?)?;
        Ok(())
    }
}
