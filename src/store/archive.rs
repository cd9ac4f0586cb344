//! Archived days: a closed day file compressed into `ticks_<day>.db.zst`, restored on demand,
//! and read through a bounded on-disk cache.
//!
//! Archive format (`.db.zst`): a zstd skippable frame (magic `0x184D2A50`, little-endian
//! length, then JSON [`ArchiveSummary`]: day, ticks, symbols, first and last event time,
//! sizes), followed by one zstd frame holding the SQLite file compacted by `VACUUM INTO`,
//! without the query indexes (they cost more than they save in an archive; reads rebuild them).
//! Standard `zstd -d` skips the summary and yields a plain SQLite database.
//!
//! Crash safety of [`archive_day`]: the archive is written as `<name>.tmp`, fsynced, read back
//! (decompressed, `PRAGMA integrity_check`, same tick count) and only then renamed into place
//! and the folder fsynced; the original is deleted after that. At every point either the
//! original or a checked archive exists; a failed fsync stops the step before anything is
//! deleted. Every function here that looks at, creates, renames or removes a day's files holds
//! the day's exclusive lock (`store::daylock`): a day a writer holds is skipped, never archived.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::NaiveDate;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use super::daylock::DayLock;
use super::layout::{self, DayFile};
use super::{schema, SqliteOptions, StoreError};
use crate::fsutil::{self, with_suffix};
use crate::tick::Timestamp;

const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;

/// What an archive says about the day inside it (readable without decompressing the day).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveSummary {
    pub day: NaiveDate,
    pub ticks: u64,
    pub symbols: u64,
    pub first_ts_event: Option<i64>,
    pub last_ts_event: Option<i64>,
    /// Database plus WAL before archiving.
    pub raw_bytes: u64,
    /// The compacted database that was compressed.
    pub compact_bytes: u64,
    /// The day's committed stream positions (`marks` table): origin → (next, updated_ns), so
    /// that recovery reads them without decompressing the day. Absent in older archives.
    #[serde(default)]
    pub marks: std::collections::BTreeMap<String, (i64, i64)>,
}

/// The result for one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Archived {
        summary: ArchiveSummary,
        archive_bytes: u64,
    },
    Skipped {
        day: NaiveDate,
        why: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// The day's exclusive lock without waiting; `None` when a writer holds the day.
fn try_lock(base: &Path, day: NaiveDate) -> Result<Option<DayLock>, StoreError> {
    DayLock::try_exclusive(base, day).map_err(io(&layout::lock_path(base, day)))
}

/// Removes a day file with its WAL and shared memory, then makes the removal durable.
fn remove_day_file(db: &Path) -> Result<(), StoreError> {
    for p in [
        db.to_owned(),
        with_suffix(db, "-wal"),
        with_suffix(db, "-shm"),
    ] {
        fsutil::remove_if_exists(&p).map_err(io(&p))?;
    }
    fsutil::sync_parent(db).map_err(io(db))
}

/// The sealing indexes (schema/seal.sql).
pub const SEAL_SQL: &str = include_str!("../../schema/seal.sql");
/// Drops them again and compacts (on the copy that goes into an archive).
const UNSEAL_SQL: &str =
    "DROP INDEX IF EXISTS ticks_by_symbol; DROP INDEX IF EXISTS ticks_by_symbol_time; VACUUM;";

/// Whether sealing happened, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sealed {
    /// Indexes built now (or already there).
    Done {
        ticks: u64,
    },
    Skipped {
        why: String,
    },
}

/// Adds the per-symbol indexes to a closed day file (see schema/seal.sql). Skips a file a
/// writer holds. Idempotent.
pub fn seal_day(base: &Path, day: NaiveDate, opts: &SqliteOptions) -> Result<Sealed, StoreError> {
    let db = layout::day_path(base, day);
    let Some(_lock) = try_lock(base, day)? else {
        return Ok(Sealed::Skipped {
            why: "in use by a writer".into(),
        });
    };
    if db.is_dir() {
        return Err(StoreError::Foreign {
            path: db,
            why: "it is a directory".into(),
        });
    }
    if !db.is_file() {
        return Ok(Sealed::Skipped {
            why: "no day file".into(),
        });
    }
    let conn = schema::open_for_write(&db, day, opts)?;
    let ticks: i64 = conn
        .execute_batch(SEAL_SQL)
        .and_then(|_| conn.query_row("SELECT count(*) FROM ticks", [], |r| r.get(0)))
        .map_err(StoreError::sqlite(&db))?;
    Ok(Sealed::Done {
        ticks: ticks as u64,
    })
}

/// Compresses `day`'s file into its archive (see the module doc). `dry_run` only checks
/// whether it could.
pub fn archive_day(
    base: &Path,
    day: NaiveDate,
    level: i32,
    opts: &SqliteOptions,
    dry_run: bool,
) -> Result<Outcome, StoreError> {
    let db = layout::day_path(base, day);
    let zst = layout::archive_path(base, day);
    let skipped = |why: &str| {
        Ok(Outcome::Skipped {
            day,
            why: why.into(),
        })
    };
    // Lock first, then look: the exclusive lock fails while a writer holds the day.
    let Some(lock) = try_lock(base, day)? else {
        return skipped("in use by a writer");
    };
    if !db.exists() {
        return skipped(if zst.exists() {
            "already archived"
        } else {
            "no day file"
        });
    }
    if db.is_dir() {
        return Err(StoreError::Foreign {
            path: db,
            why: "it is a directory".into(),
        });
    }
    if zst.exists() {
        // Both forms: an earlier run stopped between its rename and the removal, or something
        // else put an archive there. Never rename over it; finish only when it is that day.
        return finish_interrupted(&db, &zst, opts).map(|summary| Outcome::Archived {
            archive_bytes: size(&zst),
            summary,
        });
    }
    if dry_run {
        return skipped("dry run: would archive");
    }
    let raw_bytes = size(&db) + size(&with_suffix(&db, "-wal"));
    let compact = with_suffix(&db, ".compact.tmp");
    let _ = std::fs::remove_file(&compact);
    let summary = {
        let conn = schema::open_for_write(&db, day, opts)?;
        let sq = StoreError::sqlite(&db);
        (|| -> rusqlite::Result<ArchiveSummary> {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            let ticks: i64 = conn.query_row("SELECT count(*) FROM ticks", [], |r| r.get(0))?;
            let symbols: i64 = conn.query_row("SELECT count(*) FROM symbols", [], |r| r.get(0))?;
            let start = schema::day_start_ns(&conn)?;
            let (first, last): (Option<i64>, Option<i64>) =
                conn.query_row("SELECT min(ts_event), max(ts_event) FROM ticks", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            let marks = super::reader::read_marks(&conn)?;
            conn.execute("VACUUM INTO ?1", [compact.to_string_lossy()])?;
            Ok(ArchiveSummary {
                marks,
                day,
                ticks: ticks as u64,
                symbols: symbols as u64,
                first_ts_event: first.map(|t| t + start),
                last_ts_event: last.map(|t| t + start),
                raw_bytes,
                compact_bytes: 0,
            })
        })()
        .map_err(sq)?
    };
    // Archives are for size: the query indexes go (the cache rebuilds them on first read).
    Connection::open(&compact)
        .and_then(|c| c.execute_batch(UNSEAL_SQL))
        .map_err(StoreError::sqlite(&compact))?;
    let summary = ArchiveSummary {
        compact_bytes: size(&compact),
        ..summary
    };
    let tmp = with_suffix(&zst, ".tmp");
    let result = (|| {
        write_archive(&compact, &tmp, &summary, level)?;
        check_archive(&tmp, summary.ticks, opts)?;
        // A durable rename, or the original stays (a failed folder fsync is an error here).
        fsutil::rename_durably(&tmp, &zst).map_err(io(&zst))
    })();
    let _ = std::fs::remove_file(&compact);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // The checked archive is in place and durable: now the original may go.
    remove_day_file(&db)?;
    drop(lock);
    Ok(Outcome::Archived {
        archive_bytes: size(&zst),
        summary,
    })
}

fn write_archive(
    compact: &Path,
    dest: &Path,
    summary: &ArchiveSummary,
    level: i32,
) -> Result<(), StoreError> {
    let json = serde_json::to_vec(summary).map_err(|e| io(dest)(std::io::Error::other(e)))?;
    let out = File::create(dest).map_err(io(dest))?;
    let mut out = BufWriter::new(out);
    out.write_all(&SKIPPABLE_MAGIC.to_le_bytes())
        .and_then(|_| out.write_all(&(json.len() as u32).to_le_bytes()))
        .and_then(|_| out.write_all(&json))
        .map_err(io(dest))?;
    let mut input = BufReader::new(File::open(compact).map_err(io(compact))?);
    let mut enc = zstd::Encoder::new(out, level).map_err(io(dest))?;
    std::io::copy(&mut input, &mut enc).map_err(io(dest))?;
    let out = enc.finish().map_err(io(dest))?;
    let file = out.into_inner().map_err(|e| io(dest)(e.into_error()))?;
    file.sync_all().map_err(io(dest))
}

/// Reads the summary at the head of an archive without decompressing the day.
pub fn read_summary(zst: &Path) -> Result<ArchiveSummary, StoreError> {
    let mut f = File::open(zst).map_err(io(zst))?;
    let mut head = [0u8; 8];
    f.read_exact(&mut head).map_err(io(zst))?;
    let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
    if magic != SKIPPABLE_MAGIC || len > 1 << 20 {
        return Err(StoreError::Corrupt {
            path: zst.to_owned(),
            why: "no tickrec archive summary at its head".into(),
        });
    }
    let mut json = vec![0u8; len];
    f.read_exact(&mut json).map_err(io(zst))?;
    serde_json::from_slice(&json).map_err(|e| StoreError::Corrupt {
        path: zst.to_owned(),
        why: format!("archive summary: {e}"),
    })
}

/// Decompresses an archive to `dest` (the SQLite file).
pub(crate) fn decompress(zst: &Path, dest: &Path) -> Result<(), StoreError> {
    let input = BufReader::new(File::open(zst).map_err(io(zst))?);
    let mut dec = zstd::Decoder::new(input).map_err(io(zst))?;
    let mut out = BufWriter::new(File::create(dest).map_err(io(dest))?);
    std::io::copy(&mut dec, &mut out).map_err(io(zst))?;
    let file = out.into_inner().map_err(|e| io(dest)(e.into_error()))?;
    file.sync_all().map_err(io(dest))
}

/// Decompresses `zst` to a scratch file and checks it: integrity and tick count.
fn check_archive(zst: &Path, ticks: u64, opts: &SqliteOptions) -> Result<(), StoreError> {
    let scratch = with_suffix(zst, ".check");
    let result = (|| {
        decompress(zst, &scratch)?;
        check_db(&scratch, ticks, opts)
    })();
    let _ = std::fs::remove_file(&scratch);
    result
}

fn check_db(db: &Path, ticks: u64, opts: &SqliteOptions) -> Result<(), StoreError> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(StoreError::sqlite(db))?;
    conn.busy_timeout(opts.busy_timeout)
        .map_err(StoreError::sqlite(db))?;
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(StoreError::sqlite(db))?;
    let count: i64 = conn
        .query_row("SELECT count(*) FROM ticks", [], |r| r.get(0))
        .map_err(StoreError::sqlite(db))?;
    if integrity != "ok" || count as u64 != ticks {
        return Err(StoreError::Corrupt {
            path: db.to_owned(),
            why: format!(
                "read-back check failed: integrity {integrity:?}, {count} ticks of {ticks}"
            ),
        });
    }
    Ok(())
}

/// An archive and a plain file of the same day, found under the exclusive lock: when the
/// archive holds every tick of the plain file (same count, checked), the plain file goes;
/// otherwise both stay and the error says why.
fn finish_interrupted(
    db: &Path,
    zst: &Path,
    opts: &SqliteOptions,
) -> Result<ArchiveSummary, StoreError> {
    let summary = read_summary(zst)?;
    let live: i64 = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .and_then(|c| {
            c.busy_timeout(opts.busy_timeout)?;
            c.query_row("SELECT count(*) FROM ticks", [], |r| r.get(0))
        })
        .map_err(StoreError::sqlite(db))?;
    if u64::try_from(live).ok() != Some(summary.ticks) {
        return Err(StoreError::Corrupt {
            path: zst.to_owned(),
            why: format!(
                "an archive of {} ticks exists beside a day file of {live}; both kept, resolve by hand (unarchive to compare)",
                summary.ticks
            ),
        });
    }
    check_archive(zst, summary.ticks, opts)?;
    remove_day_file(db)?;
    Ok(summary)
}

/// Restores an archived day to a plain day file (checked), then removes the archive. Takes
/// the day's exclusive lock, waiting up to the busy timeout for a writer to let go.
pub fn restore_day(
    base: &Path,
    day: NaiveDate,
    opts: &SqliteOptions,
) -> Result<ArchiveSummary, StoreError> {
    let lock = DayLock::exclusive(base, day, opts.busy_timeout)
        .map_err(io(&layout::lock_path(base, day)))?;
    restore_locked(base, day, opts, &lock)
}

/// [`restore_day`] for a caller that holds the day's exclusive lock.
pub fn restore_locked(
    base: &Path,
    day: NaiveDate,
    opts: &SqliteOptions,
    lock: &DayLock,
) -> Result<ArchiveSummary, StoreError> {
    debug_assert!(lock.is_exclusive());
    let db = layout::day_path(base, day);
    let zst = layout::archive_path(base, day);
    if db.exists() {
        return Err(StoreError::Io {
            path: db,
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the day file exists; nothing to restore",
            ),
        });
    }
    let summary = read_summary(&zst)?;
    let tmp = with_suffix(&db, ".restore.tmp");
    let result = decompress(&zst, &tmp).and_then(|_| check_db(&tmp, summary.ticks, opts));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    fsutil::rename_durably(&tmp, &db).map_err(io(&db))?;
    fsutil::remove_if_exists(&zst).map_err(io(&zst))?;
    fsutil::sync_parent(&zst).map_err(io(&zst))?;
    Ok(summary)
}

/// Decompressed copies of archived days for queries, in `<base>/.archive-cache/`, at most
/// `max_bytes` in all (least recently used evicted first). Each copy is sealed (the query
/// indexes of schema/seal.sql) when it is made: archives leave the indexes out for size.
///
/// On disk rather than in memory: a decompressed day can be hundreds of megabytes, SQLite pages
/// through a file without holding it, and a repeated query of the same old day then costs one
/// decompression, not one per query.
#[derive(Debug, Clone)]
pub struct ArchiveCache {
    dir: PathBuf,
    max_bytes: u64,
}

static SCRATCH: AtomicU64 = AtomicU64::new(0);

impl ArchiveCache {
    pub fn new(base: &Path, max_bytes: u64) -> ArchiveCache {
        ArchiveCache {
            dir: base.join(".archive-cache"),
            max_bytes,
        }
    }

    /// A readable SQLite file with the content of `archive`.
    pub fn materialize(&self, archive: &DayFile) -> Result<PathBuf, StoreError> {
        let meta = std::fs::metadata(&archive.path).map_err(io(&archive.path))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        // The archive's size and time are in the name: a replaced archive never hits a stale copy.
        let cached = self
            .dir
            .join(format!("{}-{}-{mtime}.db", archive.day, meta.len()));
        if cached.exists() {
            if let Ok(f) = File::options().write(true).open(&cached) {
                let _ = f.set_modified(std::time::SystemTime::now());
            }
            return Ok(cached);
        }
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let tmp = self.dir.join(format!(
            ".{}-{}-{}.tmp",
            archive.day,
            std::process::id(),
            SCRATCH.fetch_add(1, Ordering::Relaxed)
        ));
        // Decompress, then seal the copy: queries of an archived day seek like a sealed day's.
        let made = decompress(&archive.path, &tmp).and_then(|_| {
            Connection::open(&tmp)
                .and_then(|c| c.execute_batch(SEAL_SQL))
                .map_err(StoreError::sqlite(&tmp))
        });
        if let Err(e) = made {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &cached).map_err(io(&cached))?;
        self.evict(&cached);
        Ok(cached)
    }

    fn evict(&self, keep: &Path) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "db"))
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.path()))
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort();
        for (_, len, path) in files {
            if total <= self.max_bytes {
                break;
            }
            if path != keep && std::fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }
}

/// Days whose files (plain or archived) are older than `keep_days` before `today`.
pub fn expired(days: &[DayFile], today: NaiveDate, keep_days: u32) -> Vec<DayFile> {
    days.iter()
        .filter(|d| (today - d.day).num_days() > i64::from(keep_days))
        .cloned()
        .collect()
}

/// Deletes a day entirely: database, WAL, shared memory, archive, dead letters and spills
/// (not its lock file). Skipped (`Ok(false)`) while a writer holds the day.
pub fn delete_day(base: &Path, day: NaiveDate) -> Result<bool, StoreError> {
    let Some(_lock) = try_lock(base, day)? else {
        return Ok(false);
    };
    let db = layout::day_path(base, day);
    for p in [
        with_suffix(&db, "-wal"),
        with_suffix(&db, "-shm"),
        db.clone(),
        layout::archive_path(base, day),
        layout::dead_letter_path(base, day),
        layout::spill_path(base, day),
    ] {
        fsutil::remove_if_exists(&p).map_err(io(&p))?;
    }
    fsutil::sync_parent(&db).map_err(io(&db))?;
    Ok(true)
}

/// The summary's event times as timestamps.
pub fn summary_times(s: &ArchiveSummary) -> (Option<Timestamp>, Option<Timestamp>) {
    (
        s.first_ts_event.map(Timestamp),
        s.last_ts_event.map(Timestamp),
    )
}
