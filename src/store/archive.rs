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

use std::sync::Arc;

use super::columnar::{Digest, Grouping, Levels, ParquetDay, Shapes, TickFileWriter};
use super::daylock::DayLock;
use super::layout::{self, DayFile, Form};
use super::{schema, SqliteOptions, StoreError};
use crate::fsutil::{self, with_suffix};
use crate::tick::{Decimal, TickRow, Timestamp};

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
    /// The migration ledger (`imports` table): source file → ticks imported. Parquet
    /// archives carry it here; a `.db.zst` keeps its table.
    #[serde(default)]
    pub imports: std::collections::BTreeMap<String, i64>,
    /// Parquet archives: each symbol's rows, sorted by time, are sorted by seq as well.
    #[serde(default)]
    pub seq_sorted_per_symbol: bool,
    /// Parquet archives: the order-independent digest of every row written (see
    /// `columnar::Digest`), which `tickrec check` recomputes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_digest: Option<u64>,
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

/// Removes a day file with its WAL, shared memory and symbol block files, then makes the
/// removal durable.
fn remove_day_file(db: &Path) -> Result<(), StoreError> {
    super::blockfile::remove(db).map_err(io(db))?;
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
/// Drops them again, and the symbol blocks, and compacts (on the copy that goes into an archive).
const UNSEAL_SQL: &str = "DROP INDEX IF EXISTS ticks_by_symbol; \
     DROP INDEX IF EXISTS ticks_by_symbol_time; DELETE FROM blocks; VACUUM;";

/// Whether sealing happened, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sealed {
    Done {
        ticks: u64,
        /// Ticks the directory did not name and now does (a file from before the directory,
        /// rows salvaged by `check --repair`): packed rows were built for them.
        covered: u64,
        /// A day from before the directory too small for one to pay (under 16,384 ticks): left
        /// in its version, read by scanning.
        scanned: bool,
        /// Database plus WAL before and after.
        bytes_before: u64,
        bytes_after: u64,
    },
    Skipped {
        why: String,
    },
}

/// zstd level of the packed directory rows that sealing builds (`directory::cover`). The
/// 2M-tick day of `cargo bench --bench seal` (128 equally busy symbols in arrival order, close
/// to incompressible past their 7 bits): levels 1, 3, 9 and 19 packed its directory into
/// 0.913, 0.910, 0.909 and 0.909 bytes a tick, in 34, 37, 44 and 99 ms.
const COVER_LEVEL: i32 = 3;

/// Rows per chunk handed from the day file's reader to the Parquet encoder.
const PIPE_ROWS: usize = 4096;
/// Chunks in flight between them: a few MB at most.
const PIPE_CHUNKS: usize = 4;

/// zstd level of a `.db.zst` unless told otherwise.
pub const SQLITE_ZST_LEVEL: i32 = 9;

/// Closes a day file for good: the WAL folded into the file, and the per-transaction
/// directory (`store::directory`) naming every tick, so that it alone answers the day's
/// queries and no per-tick index is needed. A day the directory covered from its first tick
/// gains nothing (indexes an earlier version's seal left are dropped and the space given
/// back); a day from before the directory (or upgraded to it with ticks already in it) gets
/// packed directory rows for its arrival-ordered ticks, and its asks that are still stored as
/// their own code are stored as their distance from bid, as this version writes them (the
/// same values; 1.4 bytes a tick less), then the file is compacted; one of fewer than
/// 16,384 ticks stays as it is (read by scanning). Either way a day never comes out
/// bigger than it went in (`archive::sealing_never_grows_a_day_and_changes_no_answer`,
/// `archive::a_small_day_from_before_the_directory_is_sealed_as_it_is`).
/// Needs free space of about twice the day file while it compacts. Skips a file a writer
/// holds. Idempotent.
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
    let (blocks, block_index) = super::blockfile::paths(&db);
    let bytes = || size(&db) + size(&with_suffix(&db, "-wal")) + size(&blocks) + size(&block_index);
    let bytes_before = bytes();
    if let Some(ticks) = small_old_day(&db, opts)? {
        return Ok(Sealed::Done {
            ticks,
            covered: 0,
            scanned: true,
            bytes_before,
            bytes_after: bytes(),
        });
    }
    let conn = schema::open_for_write(&db, day, opts)?;
    let sq = StoreError::sqlite(&db);
    let (ticks, covered) = (|| -> rusqlite::Result<(i64, u64)> {
        let ticks: i64 = conn.query_row("SELECT count(*) FROM ticks", [], |r| r.get(0))?;
        let tx = conn.unchecked_transaction()?;
        // Rows from before schema version 6 keep the ask's own code: the distance reads the
        // same (schema/ticks.sql). Only ticks the directory does not name can be such rows; a
        // row already stored as a distance has 0 in its low bits.
        for (a, b, _) in super::directory::uncovered(&tx)? {
            tx.execute(
                "UPDATE ticks SET ask = ((ask >> 4) - (bid >> 4)) << 4 \
                 WHERE seq BETWEEN ?1 AND ?2 AND ask & 15 != 0 AND ask & 15 = bid & 15",
                [a, b],
            )?;
        }
        let covered = super::directory::cover(&tx, COVER_LEVEL)?;
        // The live day's second copy goes: a closed day is queried through its directory, at
        // its compact size (store::blocks; the compaction below gives the pages back).
        tx.execute("DELETE FROM blocks", [])?;
        drop_seal_indexes(&tx)?;
        tx.commit()?;
        compact_if_owed(&conn)?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok((ticks, covered))
    })()
    .map_err(sq)?;
    drop(conn);
    // The block files go with the blocks: the closed day answers from its directory.
    super::blockfile::remove(&db).map_err(io(&db))?;
    Ok(Sealed::Done {
        ticks: ticks as u64,
        covered,
        scanned: false,
        bytes_before,
        bytes_after: bytes(),
    })
}

/// A day from before the directory (schema version 4 or older) with fewer ticks than this is
/// sealed as it is, read by scanning (a few thousand rows: well under a millisecond): the
/// upgrade's two directory pages would outweigh what covering saves. Measured on such days
/// (3 symbols), file bytes before -> after a seal that upgrades and covers: 300 ticks 69,632 ->
/// 73,728; 3,000 ticks 147,456 -> 151,552; 10,000 ticks 352,256 -> 344,064.
const SMALL_OLD_DAY: u64 = 16_384;

/// Seals a day from before the directory with fewer than [`SMALL_OLD_DAY`] ticks where it
/// stands (the WAL folded in; indexes an earlier version's seal left dropped and their space
/// given back) and returns its ticks; `None` for any other day.
fn small_old_day(db: &Path, opts: &SqliteOptions) -> Result<Option<u64>, StoreError> {
    let ticks = {
        let conn = schema::open_for_read(db, opts)?;
        if schema::version(&conn).map_err(StoreError::sqlite(db))? >= 5 {
            return Ok(None);
        }
        let ticks: i64 = conn
            .query_row("SELECT count(*) FROM ticks", [], |r| r.get(0))
            .map_err(StoreError::sqlite(db))?;
        match u64::try_from(ticks) {
            Ok(n) if n < SMALL_OLD_DAY => n,
            _ => return Ok(None),
        }
    };
    (|| -> rusqlite::Result<()> {
        let conn = Connection::open(db)?;
        conn.busy_timeout(opts.busy_timeout)?;
        drop_seal_indexes(&conn)?;
        compact_if_owed(&conn)?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
    })()
    .map_err(StoreError::sqlite(db))?;
    Ok(Some(ticks))
}

/// Drops the indexes of schema/seal.sql (an earlier version's seal): their pages become free.
fn drop_seal_indexes(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "DROP INDEX IF EXISTS ticks_by_symbol; DROP INDEX IF EXISTS ticks_by_symbol_time;",
    )
}

/// Share of page bytes left unused past which a sealed day is compacted. Measured (2M-tick
/// days, `dbstat`): as the writer leaves a day 0.7 %, a version-4 day 0.6 %, a compacted
/// sealed day 0.8 %; its asks rewritten as distances, before compaction, 6.6 %.
const UNUSED_PAST: f64 = 0.03;

/// Compacts the file (WAL folded in, then VACUUM) when it has free pages (indexes dropped) or
/// pages left part-empty (asks rewritten shorter): what this seal did, or what a seal killed
/// before it compacted left. Judged from the file as it is, so an interrupted seal's next run
/// finishes the job; a compact file costs one pass over its pages (`dbstat`: 0.04 s for a
/// 2M-tick day).
fn compact_if_owed(conn: &Connection) -> rusqlite::Result<()> {
    let (free, unused, total): (i64, Option<f64>, Option<f64>) = conn.query_row(
        "SELECT (SELECT freelist_count FROM pragma_freelist_count), sum(unused), sum(pgsize) \
         FROM dbstat('main', 1)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let part_empty =
        matches!((unused, total), (Some(u), Some(t)) if t > 0.0 && u / t > UNUSED_PAST);
    if free > 0 || part_empty {
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        conn.execute_batch("VACUUM;")?;
    }
    Ok(())
}

/// The form an archived day takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum ArchiveFormat {
    /// `ticks_<day>.parquet`: columnar, read in place by tickrec and by research engines.
    #[default]
    Parquet,
    /// `ticks_<day>.db.zst`: the SQLite file compressed whole (decompressed to query).
    SqliteZst,
}

impl ArchiveFormat {
    /// The form of a day archived in this format.
    pub fn form(self) -> Form {
        match self {
            ArchiveFormat::Parquet => Form::Parquet,
            ArchiveFormat::SqliteZst => Form::SqliteZst,
        }
    }
}

/// Compresses `day`'s file into its archive (see the module doc). `dry_run` only checks
/// whether it could.
///
/// Long (~90 lines) on purpose: the crash-safe sequence (lock, write, read back, rename, sync,
/// remove) in its order, in one place.
pub fn archive_day(
    base: &Path,
    day: NaiveDate,
    format: ArchiveFormat,
    level: Option<i32>,
    opts: &SqliteOptions,
    dry_run: bool,
) -> Result<Outcome, StoreError> {
    let db = layout::day_path(base, day);
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
    let existing = layout::existing_archive(base, day);
    if !db.exists() {
        return skipped(if existing.is_some() {
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
    if let Some((form, archive)) = existing {
        // Both forms: an earlier run stopped between its rename and the removal, or something
        // else put an archive there. Never rename over it; finish only when it is that day.
        return finish_interrupted(&db, form, &archive, opts).map(|summary| Outcome::Archived {
            archive_bytes: size(&archive),
            summary,
        });
    }
    if dry_run {
        return skipped("dry run: would archive");
    }
    if format == ArchiveFormat::Parquet {
        let summary = archive_parquet(base, day, Levels::given(level), opts)?;
        drop(lock);
        return Ok(Outcome::Archived {
            archive_bytes: size(&layout::parquet_path(base, day)),
            summary,
        });
    }
    let zst = layout::path_of(base, day, format.form());
    let raw_bytes = size(&db) + size(&with_suffix(&db, "-wal"));
    let compact = with_suffix(&db, ".compact.tmp");
    let _ = std::fs::remove_file(&compact);
    let summary = {
        let conn = schema::open_for_write(&db, day, opts)?;
        let summary = day_summary(&conn, &db, day, raw_bytes)?;
        conn.execute("VACUUM INTO ?1", [compact.to_string_lossy()])
            .map_err(StoreError::sqlite(&db))?;
        summary
    };
    // Archives are for size: the query indexes go (the cache rebuilds them on first read).
    Connection::open(&compact)
        .and_then(|c| c.execute_batch(UNSEAL_SQL))
        .map_err(StoreError::sqlite(&compact))?;
    let summary = ArchiveSummary {
        compact_bytes: size(&compact),
        ..summary
    };
    // A durable rename of a checked archive, or the original stays.
    let result = fsutil::write_atomic_checked(
        &zst,
        |f| {
            write_archive(
                &compact,
                f,
                &zst,
                &summary,
                level.unwrap_or(SQLITE_ZST_LEVEL),
            )
        },
        |tmp| check_archive(tmp, summary.ticks, opts),
        |p, e| io(p)(e),
    );
    let _ = std::fs::remove_file(&compact);
    result?;
    // The checked archive is in place and durable: now the original may go.
    remove_day_file(&db)?;
    drop(lock);
    Ok(Outcome::Archived {
        archive_bytes: size(&zst),
        summary,
    })
}

/// The summary of a closed day file (checkpointed first, so its size is the file's).
fn day_summary(
    conn: &Connection,
    db: &Path,
    day: NaiveDate,
    raw_bytes: u64,
) -> Result<ArchiveSummary, StoreError> {
    (|| -> rusqlite::Result<ArchiveSummary> {
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        let ticks: i64 = conn.query_row("SELECT count(*) FROM ticks", [], |r| r.get(0))?;
        let symbols: i64 = conn.query_row("SELECT count(*) FROM symbols", [], |r| r.get(0))?;
        let start = schema::day_start_ns(conn)?;
        let (first, last): (Option<i64>, Option<i64>) =
            conn.query_row("SELECT min(ts_event), max(ts_event) FROM ticks", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        let imports = if schema::version(conn)? >= 3 {
            let mut stmt = conn.prepare("SELECT file, ticks FROM imports")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        } else {
            Default::default()
        };
        Ok(ArchiveSummary {
            marks: super::reader::read_marks(conn)?,
            imports,
            seq_sorted_per_symbol: false,
            row_digest: None,
            day,
            ticks: ticks as u64,
            symbols: symbols as u64,
            first_ts_event: first.map(|t| t + start),
            last_ts_event: last.map(|t| t + start),
            raw_bytes,
            compact_bytes: 0,
        })
    })()
    .map_err(StoreError::sqlite(db))
}

/// Writes `day`'s closed file as its Parquet archive (under the caller's exclusive lock):
/// rows by (symbol, ts_event, seq) into `<name>.tmp`, fsynced, opened and read back whole
/// (same rows, compared by digest), renamed into place, the folder fsynced; only then is the
/// day file removed.
fn archive_parquet(
    base: &Path,
    day: NaiveDate,
    levels: Levels,
    opts: &SqliteOptions,
) -> Result<ArchiveSummary, StoreError> {
    let db = layout::day_path(base, day);
    let dest = layout::parquet_path(base, day);
    let raw_bytes = size(&db) + size(&with_suffix(&db, "-wal"));
    let mut summary = {
        let conn = schema::open_for_write(&db, day, opts)?;
        // Ticks the directory does not name (a day from before it, never sealed) get rows
        // first: the archive reads the day one symbol at a time, and each symbol would scan
        // them whole. (Under the exclusive lock: the day file is sealed for good either way.)
        (|| -> rusqlite::Result<()> {
            let tx = conn.unchecked_transaction()?;
            super::directory::cover(&tx, COVER_LEVEL)?;
            tx.commit()
        })()
        .map_err(StoreError::sqlite(&db))?;
        day_summary(&conn, &db, day, raw_bytes)?
    };
    let mut shapes = Shapes::default();
    super::reader::scan_decimals(&db, opts, &mut |d| shapes.observe_decimals(d))?;
    let written = std::cell::Cell::new(Digest::default());
    fsutil::write_atomic_checked(
        &dest,
        |f| {
            let mut digest = Digest::default();
            let w = TickFileWriter::new(BufWriter::new(f), &shapes, Grouping::BySymbol, levels)
                .map_err(io(&dest))?;
            let mut sorted = true;
            let mut last: Option<(Arc<str>, i64)> = None;
            // Two threads: this one reads the day file (and digests), the other encodes and
            // compresses the rows. Archiving the bench's 2M-tick random-ns day: 4.8 -> 3.6 s;
            // its 10M-tick day, where reading by symbol is most of the time: 24.7 -> 24.0 s
            // (three runs each way).
            let (rows_tx, rows_rx) = crossbeam_channel::bounded::<Vec<TickRow>>(PIPE_CHUNKS);
            let (read, w) = std::thread::scope(|s| {
                let encoder = s.spawn(move || -> std::io::Result<_> {
                    let mut w = w;
                    for chunk in rows_rx {
                        for r in &chunk {
                            w.push(r)?;
                        }
                    }
                    Ok(w)
                });
                let mut chunk = Vec::with_capacity(PIPE_ROWS);
                let mut read = super::reader::scan_by_symbol(&db, opts, &mut |r| {
                    let seq = r.seq.unwrap_or(0);
                    if let Some((sym, s)) = &last {
                        if Arc::ptr_eq(sym, &r.symbol) && *s > seq {
                            sorted = false;
                        }
                    }
                    last = Some((r.symbol.clone(), seq));
                    digest.add(r);
                    chunk.push(r.clone());
                    if chunk.len() == PIPE_ROWS {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(PIPE_ROWS));
                        // Refused only when the encoder stopped: its error is the one told.
                        rows_tx
                            .send(full)
                            .map_err(|_| std::io::Error::other("the Parquet encoder stopped"))?;
                    }
                    Ok(())
                });
                if read.is_ok() && !chunk.is_empty() && rows_tx.send(chunk).is_err() {
                    read = Err(super::reader::ReadError::Output(std::io::Error::other(
                        "the Parquet encoder stopped",
                    )));
                }
                drop(rows_tx);
                let w = encoder
                    .join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("the Parquet encoder panicked")));
                (read, w)
            });
            written.set(digest);
            let w = w.map_err(io(&dest))?;
            match read {
                Ok(_) => {}
                Err(super::reader::ReadError::Store(e)) => return Err(e),
                Err(e) => return Err(io(&dest)(std::io::Error::other(e.to_string()))),
            }
            summary.seq_sorted_per_symbol = sorted;
            summary.row_digest = Some(digest.sum);
            summary.compact_bytes = 0;
            let (out, rows) = w.finish(Some(&summary)).map_err(io(&dest))?;
            out.into_inner().map_err(|e| io(&dest)(e.into_error()))?;
            if rows != summary.ticks || digest.rows != summary.ticks {
                return Err(StoreError::Corrupt {
                    path: dest.clone(),
                    why: format!("wrote {rows} rows of the day's {} ticks", summary.ticks),
                });
            }
            Ok(())
        },
        |tmp| check_parquet(tmp, written.get()),
        |p, e| io(p)(e),
    )?;
    remove_day_file(&db)?;
    Ok(summary)
}

/// Opens a Parquet archive and reads every row back; its digest must be `expected`.
fn check_parquet(path: &Path, expected: Digest) -> Result<(), StoreError> {
    let day = ParquetDay::open(path)?;
    let mut read = Digest::default();
    day.scan(&mut |r| {
        read.add(r);
        Ok(())
    })
    .map_err(read_error(path))?;
    if read != expected {
        return Err(StoreError::Corrupt {
            path: path.to_owned(),
            why: format!(
                "read-back check failed: {} rows read of {} written, or their content differs",
                read.rows, expected.rows
            ),
        });
    }
    Ok(())
}

/// The `.db.zst` of `compact` into `out` (the temporary file of `dest`).
fn write_archive(
    compact: &Path,
    out: &mut File,
    dest: &Path,
    summary: &ArchiveSummary,
    level: i32,
) -> Result<(), StoreError> {
    let json = serde_json::to_vec(summary).map_err(|e| io(dest)(std::io::Error::other(e)))?;
    let mut out = BufWriter::new(out);
    out.write_all(&SKIPPABLE_MAGIC.to_le_bytes())
        .and_then(|_| out.write_all(&(json.len() as u32).to_le_bytes()))
        .and_then(|_| out.write_all(&json))
        .map_err(io(dest))?;
    let mut input = BufReader::new(File::open(compact).map_err(io(compact))?);
    let mut enc = zstd::Encoder::new(out, level).map_err(io(dest))?;
    std::io::copy(&mut input, &mut enc).map_err(io(dest))?;
    let out = enc.finish().map_err(io(dest))?;
    out.into_inner().map_err(|e| io(dest)(e.into_error()))?;
    Ok(())
}

/// Reads the summary of an archive (either form) without decompressing the day.
pub fn read_summary(zst: &Path) -> Result<ArchiveSummary, StoreError> {
    if zst.extension().is_some_and(|e| e == "parquet") {
        return ParquetDay::open(zst).map(|d| d.summary().clone());
    }
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
    form: Form,
    archive: &Path,
    opts: &SqliteOptions,
) -> Result<ArchiveSummary, StoreError> {
    let summary = read_summary(archive)?;
    let live: i64 = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .and_then(|c| {
            c.busy_timeout(opts.busy_timeout)?;
            c.query_row("SELECT count(*) FROM ticks", [], |r| r.get(0))
        })
        .map_err(StoreError::sqlite(db))?;
    if u64::try_from(live).ok() != Some(summary.ticks) {
        return Err(StoreError::Corrupt {
            path: archive.to_owned(),
            why: format!(
                "an archive of {} ticks exists beside a day file of {live}; both kept, resolve by hand (unarchive to compare)",
                summary.ticks
            ),
        });
    }
    match form {
        Form::Parquet => {
            let mut digest = Digest::default();
            super::reader::scan_file(db, opts, &mut |r| {
                digest.add(r);
                Ok(())
            })
            .map_err(read_error(db))?;
            check_parquet(archive, digest)?;
        }
        _ => check_archive(archive, summary.ticks, opts)?,
    }
    remove_day_file(db)?;
    Ok(summary)
}

fn read_error(path: &Path) -> impl FnOnce(super::reader::ReadError) -> StoreError + '_ {
    move |e| match e {
        super::reader::ReadError::Store(e) => e,
        e => io(path)(std::io::Error::other(e.to_string())),
    }
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
    if db.exists() {
        return Err(StoreError::Io {
            path: db,
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the day file exists; nothing to restore",
            ),
        });
    }
    // Block files left beside an archived day (a seal cut short) are no longer needed.
    super::blockfile::remove(&db).map_err(io(&db))?;
    let Some((form, archive)) = layout::existing_archive(base, day) else {
        return Err(StoreError::Io {
            path: layout::parquet_path(base, day),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no archive of this day"),
        });
    };
    let summary = read_summary(&archive)?;
    let tmp = with_suffix(&db, ".restore.tmp");
    let result = match form {
        Form::Parquet => rebuild_day(&archive, &tmp, day, opts),
        _ => decompress(&archive, &tmp).and_then(|_| check_db(&tmp, summary.ticks, opts)),
    };
    if let Err(e) = result.and_then(|()| close_out(&tmp)) {
        remove_day_file(&tmp).ok();
        return Err(e);
    }
    fsutil::rename_durably(&tmp, &db).map_err(io(&db))?;
    fsutil::remove_if_exists(&archive).map_err(io(&archive))?;
    fsutil::sync_parent(&archive).map_err(io(&archive))?;
    Ok(summary)
}

/// Leaves `db` a file on its own: the read-only checks of a restored copy leave its `-wal`
/// (empty) and `-shm` behind, which a rename of the file alone would strand. The last
/// read-write connection to close checkpoints and removes them; a `-wal` that survives with
/// frames in it is an error (renaming the file without them would lose ticks).
fn close_out(db: &Path) -> Result<(), StoreError> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(StoreError::sqlite(db))?;
    conn.close().map_err(|(_, e)| StoreError::sqlite(db)(e))?;
    let wal = with_suffix(db, "-wal");
    match std::fs::metadata(&wal) {
        Ok(m) if m.len() > 0 => Err(StoreError::Corrupt {
            path: wal,
            why: "frames left in the write-ahead log of a restored copy".into(),
        }),
        _ => {
            for p in [wal, with_suffix(db, "-shm")] {
                fsutil::remove_if_exists(&p).map_err(io(&p))?;
            }
            Ok(())
        }
    }
}

/// Writes the ticks of a Parquet archive into a new SQLite day file `dest` (sealed: its rows
/// have no per-transaction directory), with the archive's marks and migration ledger, and
/// checks it: integrity, and every row read back equal (by digest).
///
/// Long (~110 lines) on purpose: one transaction from the first row to the read-back check; in
/// pieces, the transaction and its statements would travel through every one.
fn rebuild_day(
    archive: &Path,
    dest: &Path,
    day: NaiveDate,
    opts: &SqliteOptions,
) -> Result<(), StoreError> {
    let pq = ParquetDay::open(archive)?;
    let summary = pq.summary().clone();
    remove_day_file(dest)?;
    let mut written = Digest::default();
    {
        let conn = schema::open_for_write(dest, day, opts)?;
        let start = schema::day_start_ns(&conn).map_err(StoreError::sqlite(dest))?;
        let mut ids: [std::collections::HashMap<Arc<str>, i64>; 2] = Default::default();
        conn.execute_batch("BEGIN")
            .map_err(StoreError::sqlite(dest))?;
        let mut failed: Option<rusqlite::Error> = None;
        let mut in_tx = 0usize;
        let scanned = pq.scan(&mut |r| {
            let step = (|| -> rusqlite::Result<()> {
                let mut id_of = |k: usize, name: &Arc<str>| -> rusqlite::Result<i64> {
                    if let Some(&id) = ids[k].get(name) {
                        return Ok(id);
                    }
                    let id = ids[k].len() as i64;
                    let table = if k == 0 { "symbols" } else { "sources" };
                    conn.prepare_cached(&format!(
                        "INSERT INTO {table} (id, name) VALUES (?1, ?2)"
                    ))?
                    .execute(rusqlite::params![id, &**name])?;
                    ids[k].insert(name.clone(), id);
                    Ok(id)
                };
                let sym = id_of(0, &r.symbol)?;
                let src = id_of(1, &r.source)?;
                let code = |d: Option<Decimal>| d.map(|d| d.code() as i64);
                conn.prepare_cached(super::writer::INSERT)?
                    .execute(rusqlite::params![
                        r.seq,
                        sym,
                        r.ts_event.0.wrapping_sub(start),
                        r.ts_recv.0.wrapping_sub(r.ts_event.0),
                        code(r.bid),
                        Decimal::stored_ask(r.bid, r.ask),
                        code(r.bid_size),
                        code(r.ask_size),
                        src
                    ])?;
                in_tx += 1;
                if in_tx >= 100_000 {
                    in_tx = 0;
                    conn.execute_batch("COMMIT; BEGIN")?;
                }
                Ok(())
            })();
            if let Err(e) = step {
                let msg = e.to_string();
                failed = Some(e);
                return Err(std::io::Error::other(msg));
            }
            written.add(r);
            Ok(())
        });
        if let Some(e) = failed {
            return Err(StoreError::sqlite(dest)(e));
        }
        scanned.map_err(read_error(archive))?;
        conn.execute_batch("COMMIT")
            .map_err(StoreError::sqlite(dest))?;
        let mut conn = conn;
        let finish = (|| -> rusqlite::Result<()> {
            let t = conn.transaction()?;
            for (origin, (next, at)) in &summary.marks {
                t.execute(
                    "INSERT OR REPLACE INTO marks (origin, next, updated_ns) VALUES (?1, ?2, ?3)",
                    rusqlite::params![origin, next, at],
                )?;
            }
            for (file, n) in &summary.imports {
                t.execute(
                    "INSERT OR REPLACE INTO imports (file, ticks) VALUES (?1, ?2)",
                    rusqlite::params![file, n],
                )?;
            }
            // Sealed as `seal` leaves a day: the directory names every tick (the rows went
            // in by symbol, not by seq: compacted after).
            super::directory::cover(&t, COVER_LEVEL)?;
            t.commit()?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            conn.execute_batch("VACUUM;")?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        })();
        finish.map_err(StoreError::sqlite(dest))?;
    }
    check_db(dest, summary.ticks, opts)?;
    let mut read = Digest::default();
    super::reader::scan_file(dest, opts, &mut |r| {
        read.add(r);
        Ok(())
    })
    .map_err(read_error(dest))?;
    if read != written || written.rows != summary.ticks {
        return Err(StoreError::Corrupt {
            path: dest.to_owned(),
            why: format!(
                "read-back check failed: {} rows rebuilt of the archive's {}",
                read.rows, summary.ticks
            ),
        });
    }
    Ok(())
}

/// Decompressed copies of archived days for queries, in `<base>/.archive-cache/` (see
/// [`ArchiveCache::new`] for a store on a read-only file system), at most `max_bytes` in all
/// (least recently used evicted first, none used in the last 10 s). Each copy is covered
/// by the directory as `seal` covers a day when it is made (a day written with the directory
/// needs nothing).
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

/// A scratch file is left for good only when its process is gone and it has not been written
/// for this long: a process of another PID namespace (another container sharing the store)
/// looks gone from here while it writes its copy.
const SCRATCH_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// The process that makes the cache's scratch file `name` (`.<day>-<pid>-<n>.tmp`), if it is one.
fn scratch_owner(name: &str) -> Option<libc::pid_t> {
    let inner = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let mut parts = inner.rsplitn(3, '-');
    let (_n, pid) = (parts.next()?, parts.next()?);
    NaiveDate::parse_from_str(parts.next()?, "%Y-%m-%d").ok()?;
    pid.parse().ok().filter(|&p| p > 0)
}

/// A copy made or found within this long is not evicted: its reader (in this process or
/// another) opens it right after [`ArchiveCache::materialize`] returns, and a copy removed
/// before that failed the read, though the archive is whole. Once open, an evicted copy reads
/// on (its file is removed from the folder, not from under the connection). So the cache may
/// hold more than its bound for as long as this, while readers of more days than it holds
/// start at once.
const JUST_USED: std::time::Duration = std::time::Duration::from_secs(10);

impl ArchiveCache {
    /// The cache of the store at `base`: its `.archive-cache/`, or, when the store is on a
    /// read-only file system (a backup or a snapshot mounted read-only), a folder of its own
    /// in the temporary folder (`$TMPDIR/tickrec-archive-cache-<hash of the store's path>`).
    pub fn new(base: &Path, max_bytes: u64) -> ArchiveCache {
        let dir = if crate::fsutil::read_only_fs(base) {
            use std::os::unix::ffi::OsStrExt;
            let canonical = base.canonicalize().unwrap_or_else(|_| base.to_owned());
            let hash = blake3::hash(canonical.as_os_str().as_bytes()).to_hex();
            std::env::temp_dir().join(format!("tickrec-archive-cache-{}", &hash[..16]))
        } else {
            base.join(".archive-cache")
        };
        ArchiveCache { dir, max_bytes }
    }

    /// The folder the copies are made in.
    pub fn dir(&self) -> &Path {
        &self.dir
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
        // Decompress, then cover the copy as `seal` covers a day (a no-op for a day the
        // directory already names whole): queries of an archived day go through its directory
        // like a sealed day's. (The indexes of schema/seal.sql, built here before, took most of
        // a first query's time and doubled the copy.)
        let made = decompress(&archive.path, &tmp).and_then(|_| {
            let conn = schema::open_for_write(&tmp, archive.day, &SqliteOptions::default())?;
            (|| -> rusqlite::Result<()> {
                let tx = conn.unchecked_transaction()?;
                super::directory::cover(&tx, COVER_LEVEL)?;
                tx.commit()?;
                // Back out of WAL mode: a copy read and evicted leaves no -wal or -shm behind.
                conn.query_row("PRAGMA journal_mode=DELETE", [], |_| Ok(()))
            })()
            .map_err(StoreError::sqlite(&tmp))
        });
        if let Err(e) = made {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        // A cache entry: renamed into place but not fsynced (`fsutil::rename_durably` is for
        // data); a copy lost to a crash is made again from the archive.
        std::fs::rename(&tmp, &cached).map_err(io(&cached))?;
        self.evict(&cached);
        Ok(cached)
    }

    /// Evicts copies, least recently used first, until the cache is within its bound (but for
    /// `keep` and the copies used within [`JUST_USED`]), and removes the scratch files of
    /// processes that ended while making a copy (a crash, a kill: nothing else ever would),
    /// once they have not been written for [`SCRATCH_IDLE`].
    fn evict(&self, keep: &Path) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let entries: Vec<std::fs::DirEntry> = entries.flatten().collect();
        let idle_since = std::time::SystemTime::now()
            .checked_sub(SCRATCH_IDLE)
            .unwrap_or(std::time::UNIX_EPOCH);
        for e in &entries {
            let Some(pid) = scratch_owner(&e.file_name().to_string_lossy()) else {
                continue;
            };
            // SAFETY: kill with signal 0 sends nothing; it only asks whether `pid` exists.
            let gone = unsafe { libc::kill(pid, 0) } != 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
            let idle = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < idle_since);
            if gone && idle {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
            .iter()
            .filter(|e| e.path().extension().is_some_and(|x| x == "db"))
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.path()))
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort();
        let fresh = std::time::SystemTime::now()
            .checked_sub(JUST_USED)
            .unwrap_or(std::time::UNIX_EPOCH);
        for (used, len, path) in files {
            if total <= self.max_bytes || used >= fresh {
                break;
            }
            if path != keep && std::fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }
}

/// The plain day files (not archived) of days before `today` and at least `days` old: what
/// `archive --older-than` and `seal --older-than` work on. Today's is never among them.
pub fn closed_days_at_least(all: &[DayFile], today: NaiveDate, days: u32) -> Vec<DayFile> {
    all.iter()
        .filter(|d| !d.archived && d.day < today && (today - d.day).num_days() >= i64::from(days))
        .cloned()
        .collect()
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
        layout::parquet_path(base, day),
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
