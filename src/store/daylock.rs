//! The per-day lock: an `flock` on `ticks_<day>.lock`, a file that is never deleted.
//!
//! Protocol (the one place it is written down in code; ARCHITECTURE.md points here):
//! - Lock first, then look. Nothing checks, creates, opens for writing, renames or removes a
//!   day's database or archive without holding the day's lock.
//! - Writers hold it *shared* for as long as they keep the day file open, so several writer
//!   processes can append to one day (SQLite serialises them) while no archiver can take it.
//! - Archive, restore, seal and delete take it *exclusive*; they never wait for a writer
//!   (`try_exclusive`: the day is skipped), while a writer waits a bounded time for them.
//! - A writer that finds only an archive drops its shared lock, takes the exclusive one,
//!   looks again and restores, then starts over: it never creates a plain file for a day
//!   that has an archive.
//!
//! The lock is on a file of its own, not on the database: a lock on an inode that the archiver
//! is about to unlink guards nothing once a new file takes the name.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::NaiveDate;

use super::layout;

/// A held day lock; released when dropped.
#[derive(Debug)]
pub struct DayLock {
    _file: File,
    path: PathBuf,
    exclusive: bool,
}

/// How long to wait between attempts on a lock someone else holds.
const POLL: Duration = Duration::from_millis(5);

impl DayLock {
    fn open(base: &Path, day: NaiveDate) -> std::io::Result<(File, PathBuf)> {
        let path = layout::lock_path(base, day);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        Ok((file, path))
    }

    /// The shared (writer) lock, waiting up to `timeout` for an archiver to finish.
    pub fn shared(base: &Path, day: NaiveDate, timeout: Duration) -> std::io::Result<DayLock> {
        Self::acquire(base, day, false, timeout)
    }

    /// The exclusive lock, waiting up to `timeout`.
    pub fn exclusive(base: &Path, day: NaiveDate, timeout: Duration) -> std::io::Result<DayLock> {
        Self::acquire(base, day, true, timeout)
    }

    /// The exclusive lock if nobody holds the day; `None` when a writer does.
    pub fn try_exclusive(base: &Path, day: NaiveDate) -> std::io::Result<Option<DayLock>> {
        let (file, path) = Self::open(base, day)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(DayLock {
                _file: file,
                path,
                exclusive: true,
            })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn acquire(
        base: &Path,
        day: NaiveDate,
        exclusive: bool,
        timeout: Duration,
    ) -> std::io::Result<DayLock> {
        let (file, path) = Self::open(base, day)?;
        let deadline = Instant::now() + timeout;
        loop {
            let tried = if exclusive {
                file.try_lock()
            } else {
                file.try_lock_shared()
            };
            match tried {
                Ok(()) => {
                    return Ok(DayLock {
                        _file: file,
                        path,
                        exclusive,
                    })
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() >= deadline => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::WouldBlock,
                        format!(
                            "{}: the day is locked by another process (archive, restore or seal)",
                            path.display()
                        ),
                    ))
                }
                Err(std::fs::TryLockError::WouldBlock) => std::thread::sleep(POLL),
            }
        }
    }

    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_share_a_day_and_an_exclusive_holder_keeps_them_out() {
        let dir = tempfile::tempdir().unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let a = DayLock::shared(dir.path(), day, Duration::ZERO).unwrap();
        let b = DayLock::shared(dir.path(), day, Duration::ZERO).unwrap();
        assert!(DayLock::try_exclusive(dir.path(), day).unwrap().is_none());
        drop((a, b));
        let x = DayLock::try_exclusive(dir.path(), day).unwrap().unwrap();
        assert!(x.is_exclusive());
        let err = DayLock::shared(dir.path(), day, Duration::from_millis(20)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
        drop(x);
        DayLock::shared(dir.path(), day, Duration::ZERO).unwrap();
        assert!(layout::lock_path(dir.path(), day).exists(), "never deleted");
    }
}
