//! Queries across day files: the most recent ticks of a symbol, a time range of a symbol, and
//! per-day statistics.
//!
//! This module picks the days a query reads, each day's form (a live or sealed SQLite file, a
//! `.db.zst` through the archive cache, a Parquet file read in place) and the kept reader it
//! runs on, in one read transaction; the statements run on one SQLite day file are all in
//! `reader/day.rs`.
//!
//! Rows are streamed to a callback one at a time, so memory does not grow with the result.
//! Every file is opened read-only; a query never creates or changes a day file.
//!
//! One broken day file never hides the others: a day that cannot be opened or read is skipped
//! and returned as a [`BrokenDay`] (which day, which file, why in plain words) beside the rows
//! of every other day; the caller reports it and fails at the end.
//!
//! A day is not broken for having been archived or restored between the folder's listing and
//! the file's opening, nor for being archived and restored back to back as it was opened (its
//! `-wal` and `-shm` gone from under the opening): it is listed again and read in its form now
//! (`layout::as_listed_now`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use serde::Serialize;

use super::archive::{self, ArchiveCache};
use super::columnar::ParquetDay;
use super::layout::{self, DayFile, Form};
use super::{schema, SqliteOptions, StoreError};
use crate::tick::{TickRow, Timestamp};

mod day;

use day::{day_stats, reader_options, DayReader, OpenReaders, Reach};
pub(crate) use day::{
    open_day_conn, read_mark, read_marks, scan_by_symbol, scan_decimals, scan_file,
};

/// A query failed reading a file, or writing its output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing output: {0}")]
    Output(#[source] std::io::Error),
    /// A reader's cursor names a position the store does not hold (see `tail::Tail::new`).
    #[error("{0}")]
    CursorAhead(String),
}

/// Read access to the day files under one base folder.
#[derive(Debug, Clone)]
pub struct Store {
    base: PathBuf,
    opts: SqliteOptions,
    /// Decompressed archived days (see `archive::ArchiveCache`).
    cache: ArchiveCache,
    readers: Arc<OpenReaders>,
    /// The folders as `recent` last listed them.
    listings: Arc<layout::Listings>,
}

/// Default bound of the archive cache.
pub const DEFAULT_ARCHIVE_CACHE_BYTES: u64 = 2 << 30;

/// A day file a query had to skip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenDay {
    pub day: NaiveDate,
    pub file: PathBuf,
    pub why: String,
    /// The file's contents are wrong ([`StoreError::is_damage`]); otherwise it could not be
    /// read here and now (a full disk, a permission) and nothing is wrong with it.
    pub damaged: bool,
}

impl std::fmt::Display for BrokenDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({})", self.day, self.why, self.file.display())
    }
}

impl BrokenDay {
    fn new(day: &DayFile, err: &StoreError) -> BrokenDay {
        BrokenDay {
            day: day.day,
            file: day.path.clone(),
            why: describe(&day.path, err),
            damaged: err.is_damage(),
        }
    }
}

/// What is wrong with a day file, in plain words.
pub fn describe(path: &Path, err: &StoreError) -> String {
    use rusqlite::ErrorCode;
    if path.is_dir() {
        return "is a directory, not a day file".into();
    }
    match err {
        StoreError::Sqlite { source, .. } => match source.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => "not a SQLite file".into(),
            Some(ErrorCode::DatabaseCorrupt) => {
                "corrupt: SQLite says the database disk image is malformed".into()
            }
            _ if schema::is_shm_failure(err) => format!(
                "{source}: its shared-memory index ({}-shm) could not be made{}",
                path.file_name().map_or("".into(), |n| n.to_string_lossy()),
                if crate::fsutil::disk_full(path) {
                    ": the disk is full"
                } else {
                    ""
                }
            ),
            _ => source.to_string(),
        },
        StoreError::Io { source, .. } => source.to_string(),
        StoreError::Foreign { why, .. } => format!("not a tickrec day file: {why}"),
        other => {
            // The other variants name the path first; the day and file are said already.
            let text = other.to_string();
            let prefix = format!("{}: ", path.display());
            text.strip_prefix(&prefix)
                .map(str::to_owned)
                .unwrap_or(text)
        }
    }
}

/// The rows a query streamed, and the days it had to skip.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Read {
    pub rows: u64,
    pub broken: Vec<BrokenDay>,
    /// The days it searched.
    pub days: Vec<NaiveDate>,
    /// Named symbols that none of those days knows (only when every day that could hold
    /// them was searched).
    pub unknown: Vec<String>,
}

/// What [`Store::after_seq`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterSeq {
    /// Rows passed on.
    pub passed: u64,
    /// The highest `seq` looked at (`after` when none).
    pub last: i64,
    /// With `blocks_only`: how many `seq`s past `last` were left unread (no block holds
    /// them yet); 0 otherwise.
    pub unread: i64,
}

/// Buffers [`Store::after_seq`] reuses from one call to the next: a tail of every symbol
/// passes ~8,000 rows a call, and buffers allocated afresh each time were faulted in afresh
/// (a third of its time went to page faults).
#[derive(Debug, Default)]
pub struct AfterSeqBuffers {
    rows: Vec<TickRow>,
    slots: Vec<Option<(i64, super::blocks::Row)>>,
    decoded: Vec<super::blocks::Row>,
}

/// Which symbols a query reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Symbols {
    /// Every symbol.
    All,
    /// These names (case-sensitive), at least one.
    Named(Vec<String>),
}

impl Symbols {
    pub fn one(name: &str) -> Symbols {
        Symbols::Named(vec![name.to_owned()])
    }

    /// `all` or `*`, else a comma-separated list of names (duplicates dropped).
    pub fn parse(text: &str) -> Result<Symbols, String> {
        let text = text.trim();
        if text == "all" || text == "*" {
            return Ok(Symbols::All);
        }
        let mut names: Vec<String> = Vec::new();
        for n in text.split(',').map(str::trim) {
            if n.is_empty() {
                return Err(format!("empty symbol name in {text:?}"));
            }
            if !names.iter().any(|m| m == n) {
                names.push(n.to_owned());
            }
        }
        Ok(Symbols::Named(names))
    }

    /// What `lookup` finds of each name (marking those found), or `None` for every symbol.
    fn resolve<'a, T>(
        &'a self,
        found: &mut [bool],
        lookup: impl Fn(&'a str) -> Option<T>,
    ) -> Option<Vec<T>> {
        match self {
            Symbols::All => None,
            Symbols::Named(names) => Some(
                names
                    .iter()
                    .enumerate()
                    .filter_map(|(i, n)| {
                        let v = lookup(n)?;
                        found[i] = true;
                        Some(v)
                    })
                    .collect(),
            ),
        }
    }

    /// This file's ids of the names (those it knows), or `None` for every symbol.
    fn ids(&self, reader: &DayReader, found: &mut [bool]) -> Option<Vec<i64>> {
        self.resolve(found, |n| reader.symbol_id(n))
    }

    /// The names a Parquet day holds (marking them found), or `None` for every symbol.
    fn in_parquet<'a>(&'a self, day: &ParquetDay, found: &mut [bool]) -> Option<Vec<&'a str>> {
        self.resolve(found, |n| day.has_symbol(n).then_some(n))
    }

    fn unknown(&self, found: &[bool]) -> Vec<String> {
        match self {
            Symbols::All => Vec::new(),
            Symbols::Named(names) => names
                .iter()
                .zip(found)
                .filter(|(_, f)| !**f)
                .map(|(n, _)| n.clone())
                .collect(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Symbols::All => 0,
            Symbols::Named(n) => n.len(),
        }
    }
}

/// `tickrec stats`: the days that could be read, and those that could not.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DayStatsReport {
    pub days: Vec<DayStats>,
    pub broken: Vec<BrokenDay>,
}

/// Per-day figures for `tickrec stats`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DayStats {
    pub day: NaiveDate,
    pub file: PathBuf,
    pub ticks: u64,
    pub symbols: u64,
    /// Database plus WAL, bytes.
    pub bytes: u64,
    pub first_ts_event: Option<Timestamp>,
    pub last_ts_event: Option<Timestamp>,
    /// The day is stored as a compressed archive (`file` is the `.db.zst`).
    pub archived: bool,
}

/// Copies of an archived day made, in all, for one read, when other readers' copies evict them
/// before they are opened (see `Store::with_day` and `archive::JUST_USED`).
const EVICTED_ATTEMPTS: u32 = 4;

impl Store {
    pub fn new(base: impl Into<PathBuf>, opts: SqliteOptions) -> Store {
        let base = base.into();
        Store {
            cache: ArchiveCache::new(&base, DEFAULT_ARCHIVE_CACHE_BYTES),
            base,
            opts,
            readers: Arc::default(),
            listings: Arc::default(),
        }
    }

    /// Bounds the on-disk cache of decompressed archived days.
    pub fn with_archive_cache(mut self, max_bytes: u64) -> Store {
        self.cache = ArchiveCache::new(&self.base, max_bytes);
        self
    }

    /// [`layout::as_listed_now`] in this store.
    fn as_listed_now<T, E>(
        &self,
        day: &DayFile,
        read: impl FnMut(&DayFile) -> Result<T, E>,
        retry: impl Fn(&E) -> bool,
    ) -> Result<T, E> {
        layout::as_listed_now(&self.base, day, read, retry)
    }

    /// [`Store::as_listed_now`] for a read that passes rows to `f`: read again only when it
    /// failed on the store before passing on a row (a row passed twice would be a duplicate).
    fn rows_as_listed_now<T>(
        &self,
        day: &DayFile,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
        mut read: impl FnMut(
            &DayFile,
            &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
        ) -> Result<T, ReadError>,
    ) -> Result<T, ReadError> {
        let passed = std::cell::Cell::new(false);
        self.as_listed_now(
            day,
            |d| {
                read(d, &mut |r| {
                    passed.set(true);
                    f(r)
                })
            },
            |e| matches!(e, ReadError::Store(_)) && !passed.get(),
        )
    }

    /// Runs `f` on a reader of `day` (an archived day through the cache) inside one read
    /// transaction: every statement of `f` sees one snapshot. The reader is kept open for the
    /// next query of the day (see [`OpenReaders`]).
    fn with_day<T>(
        &self,
        day: &DayFile,
        reach: Reach,
        f: impl FnOnce(&DayReader) -> Result<T, ReadError>,
    ) -> Result<T, ReadError> {
        let mut path = if day.archived {
            self.cache.materialize(day)?
        } else {
            day.path.clone()
        };
        // The same file, not one renamed over it since.
        let kept = self.readers.take(&path, reach).filter(|r| r.is_of(&path));
        let reader = match kept {
            Some(r) => r,
            None => {
                let opts = reader_options(&self.opts);
                let mut attempts = 1;
                loop {
                    match DayReader::open_day(&self.base, day, &path, &opts) {
                        // Evicted between its making and its opening by another reader's
                        // copy (the cache holds less than both; a copy is kept for
                        // `JUST_USED` after its last use, but an eviction that read its time
                        // just before this reader's use may still remove it): made again.
                        Err(_) if day.archived && !path.exists() && attempts < EVICTED_ATTEMPTS => {
                            attempts += 1;
                            path = self.cache.materialize(day)?;
                        }
                        opened => break opened?,
                    }
                }
            }
        };
        let reader = reader.begin()?;
        let out = f(&reader);
        let ended = reader.end();
        // A reader whose file turned out broken is not kept; a failed output is not its fault.
        // One that may not be kept (see `DayReader::keepable`) lets go of the day's lock now.
        if reader.keepable() && ended.is_ok() && matches!(out, Ok(_) | Err(ReadError::Output(_))) {
            self.readers.put(reach, reader);
        }
        let out = out?;
        ended?;
        Ok(out)
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    pub fn days(&self) -> Result<Vec<DayFile>, StoreError> {
        layout::list_days(&self.base).map_err(StoreError::io(&self.base))
    }

    /// The day files of `first..=last`, oldest first (only those months' folders are listed).
    pub fn days_between(
        &self,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<Vec<DayFile>, StoreError> {
        layout::list_days_between(&self.base, first, last).map_err(StoreError::io(&self.base))
    }

    /// The `n` most recently recorded ticks of `symbol`, newest first: the newest day file
    /// first, and within a day by descending `seq` (recording order).
    pub fn recent(
        &self,
        symbol: &str,
        n: usize,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<Read, ReadError> {
        self.recent_of(&Symbols::one(symbol), n, f)
    }

    /// The `n` most recently recorded ticks of any of `symbols`, newest first (see
    /// [`Store::recent`]). Several names: each one's newest `n` of a day are read and merged
    /// by `seq` (memory: `n` rows per name).
    pub fn recent_of(
        &self,
        symbols: &Symbols,
        n: usize,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<Read, ReadError> {
        let mut left = n as u64;
        let mut read = Read::default();
        let mut found = vec![false; symbols.len()];
        let days = self
            .listings
            .days_newest_first(&self.base)
            .map_err(StoreError::io(&self.base))?;
        let mut searched_all = true;
        for day in days {
            if left == 0 {
                searched_all = false;
                break;
            }
            let day = &day.map_err(StoreError::io(&self.base))?;
            read.days.push(day.day);
            let streamed = self.rows_as_listed_now(day, f, |day, f| {
                if day.form == Form::Parquet {
                    return parquet_query(day, symbols, &mut found, |pq, names| {
                        pq.recent(names, left as usize, f)
                    });
                }
                self.with_day(day, Reach::Few, |reader| {
                    reader.recent(symbols.ids(reader, &mut found).as_deref(), left, f)
                })
            });
            match streamed {
                Ok(k) => left -= k,
                Err(ReadError::Store(e)) => read.broken.push(BrokenDay::new(day, &e)),
                Err(e) => return Err(e),
            }
        }
        read.rows = n as u64 - left;
        read.days.reverse();
        // A day that could not be read may know the symbol: nobody can say it has none.
        if searched_all && read.broken.is_empty() {
            read.unknown = symbols.unknown(&found);
        }
        Ok(read)
    }

    /// Every tick of one day file, in `seq` order (a Parquet day whose time order differs
    /// from its seq order is sorted in memory).
    pub fn scan_day(
        &self,
        day: &DayFile,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<u64, ReadError> {
        self.scan_day_of(day, &Symbols::All, f)
    }

    /// [`Store::scan_day`] of `symbols`: a Parquet day reads only their runs, SQLite skips the
    /// others' rows undecoded.
    fn scan_day_of(
        &self,
        day: &DayFile,
        symbols: &Symbols,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<u64, ReadError> {
        self.rows_as_listed_now(day, f, |day, f| self.scan_listed_day(day, symbols, f))
    }

    /// [`Store::scan_day_of`] of the day's file as listed.
    fn scan_listed_day(
        &self,
        day: &DayFile,
        symbols: &Symbols,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<u64, ReadError> {
        let mut found = vec![false; symbols.len()];
        if day.form == Form::Parquet {
            let pq = ParquetDay::open_for_queries(&day.path)?;
            let names = symbols.in_parquet(&pq, &mut found);
            if pq.scans_in_seq_order() {
                return pq.scan_symbols(names.as_deref(), f);
            }
            // Rows whose time order is not their seq order: sorted here (memory: the day).
            let mut rows = Vec::new();
            pq.scan_symbols(names.as_deref(), &mut |r| {
                rows.push(r.clone());
                Ok(())
            })?;
            rows.sort_by_key(|r| r.seq);
            for r in &rows {
                f(r).map_err(ReadError::Output)?;
            }
            return Ok(rows.len() as u64);
        }
        self.with_day(day, Reach::Many, |reader| {
            reader.scan(symbols.ids(reader, &mut found).as_deref(), f)
        })
    }

    /// Ticks of one day file with `seq > after`, in `seq` order (recording order): of a SQLite
    /// day, those of one snapshot, from the symbol blocks of the directory rows that follow
    /// `after` while every wanted symbol's block of a row is whole (a row or a few, at least
    /// `limit` seqs), else from the rows, up to `after + limit` (every symbol: at most `limit`
    /// rows; named symbols: SQLite skips the others' rows without decoding them); of an
    /// archived one, all of them (only the named symbols' rows read).
    ///
    /// `blocks_only`: read only what blocks hold (a following tail leaves the newest ticks,
    /// whose blocks the builder has not written yet, for a later look, and reads them from the
    /// rows once it has waited long enough: see `tail::HOLD`). A day without blocks is read
    /// from its rows either way.
    pub fn after_seq(
        &self,
        day: &DayFile,
        symbols: &Symbols,
        (after, limit): (i64, usize),
        blocks_only: bool,
        bufs: &mut AfterSeqBuffers,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<AfterSeq, ReadError> {
        let ask = (symbols, after, limit, blocks_only);
        self.rows_as_listed_now(day, f, |day, f| self.after_seq_of_listed(day, ask, bufs, f))
    }

    /// [`Store::after_seq`] of the day's file as listed (`symbols, after, limit, blocks_only`).
    fn after_seq_of_listed(
        &self,
        day: &DayFile,
        (symbols, after, limit, blocks_only): (&Symbols, i64, usize, bool),
        bufs: &mut AfterSeqBuffers,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<AfterSeq, ReadError> {
        if day.archived {
            let (mut passed, mut last) = (0u64, after);
            self.scan_listed_day(day, symbols, &mut |r| {
                let seq = r.seq.unwrap_or(0);
                if seq <= after {
                    return Ok(());
                }
                last = last.max(seq);
                passed += 1;
                f(r)
            })?;
            // Named symbols: the cursor moves to the day's end, as over a SQLite day's rows.
            if let Symbols::Named(_) = symbols {
                last = last.max(self.max_seq(day)?);
            }
            return Ok(AfterSeq {
                passed,
                last,
                unread: 0,
            });
        }
        // Rows are collected inside the snapshot and passed on after it ends: a slow consumer
        // never holds a read transaction open (one would keep the writer's WAL from being
        // reset, see `store::writer::WalBound`).
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        bufs.rows.clear();
        // (the highest seq looked at when it is not the last row's, seqs left unread)
        let (upto, unread) = self.with_day(day, Reach::Few, |reader| {
            let mut found = vec![false; symbols.len()];
            let ids = symbols.ids(reader, &mut found);
            reader.after_seq(ids.as_deref(), (after, limit), blocks_only, bufs)
        })?;
        // Every symbol from the rows: they end at the highest seq read; otherwise at the
        // stretch's end.
        let rows = &bufs.rows;
        let last = upto.unwrap_or_else(|| rows.last().and_then(|r| r.seq).unwrap_or(after));
        for r in rows {
            f(r).map_err(ReadError::Output)?;
        }
        Ok(AfterSeq {
            passed: rows.len() as u64,
            last,
            unread,
        })
    }

    /// The named symbols of which `day` holds no tick (names are case-sensitive); none when
    /// `symbols` is every symbol.
    pub fn unknown_symbols(
        &self,
        day: &DayFile,
        symbols: &Symbols,
    ) -> Result<Vec<String>, ReadError> {
        let mut found = vec![false; symbols.len()];
        if day.form == Form::Parquet {
            let pq = ParquetDay::open_for_queries(&day.path)?;
            symbols.in_parquet(&pq, &mut found);
        } else {
            self.with_day(day, Reach::Few, |reader| {
                symbols.ids(reader, &mut found);
                Ok(())
            })?;
        }
        Ok(symbols.unknown(&found))
    }

    /// Of the sources `names`, those that `day` names for none of its ticks: of a SQLite day,
    /// those it does not list; of a Parquet day, those its row groups' statistics rule out
    /// (`ParquetDay::lacks_source`: a name between a group's lowest and highest source is taken
    /// as there).
    pub fn unknown_sources(
        &self,
        day: &DayFile,
        names: &[String],
    ) -> Result<Vec<String>, ReadError> {
        if day.form == Form::Parquet {
            let pq = ParquetDay::open_for_queries(&day.path)?;
            return Ok(names
                .iter()
                .filter(|n| pq.lacks_source(n))
                .cloned()
                .collect());
        }
        self.with_day(day, Reach::Few, |reader| {
            Ok(names
                .iter()
                .filter(|n| reader.source_id(n).is_none())
                .cloned()
                .collect())
        })
    }

    /// The highest seq of one day file (its tick count).
    pub fn max_seq(&self, day: &DayFile) -> Result<i64, ReadError> {
        self.as_listed_now(
            day,
            |day| {
                if day.archived {
                    let s = archive::read_summary(&day.path)?;
                    return Ok(i64::try_from(s.ticks).unwrap_or(i64::MAX));
                }
                self.with_day(day, Reach::Few, DayReader::max_seq)
            },
            |e| matches!(e, ReadError::Store(_)),
        )
    }

    /// The seq just before the first tick (in recording order) of one day file whose event
    /// time is at or after `t`; the highest seq when there is none. A SQLite day with a
    /// directory answers from it (`DayReader::seq_before_time_by_directory`); others are
    /// scanned.
    pub fn seq_before_time(&self, day: &DayFile, t: Timestamp) -> Result<i64, ReadError> {
        let by_directory = self.as_listed_now(
            day,
            |day| match day.form {
                Form::Live => self.with_day(day, Reach::Few, |r| r.seq_before_time_by_directory(t)),
                _ => Ok(None),
            },
            |e| matches!(e, ReadError::Store(_)),
        )?;
        if let Some(seq) = by_directory {
            return Ok(seq);
        }
        let mut first: Option<i64> = None;
        let mut last = 0i64;
        self.scan_day(day, &mut |r| {
            let seq = r.seq.unwrap_or(0);
            last = last.max(seq);
            if r.ts_event >= t {
                first = Some(first.map_or(seq, |f| f.min(seq)));
            }
            Ok(())
        })?;
        Ok(first.map_or(last, |f| f - 1))
    }

    /// Ticks of `symbol` with `from <= ts_event < to`, in `(ts_event, seq)` order.
    pub fn range(
        &self,
        symbol: &str,
        from: Timestamp,
        to: Timestamp,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<Read, ReadError> {
        self.range_of(&Symbols::one(symbol), from, to, f)
    }

    /// Ticks of `symbols` with `from <= ts_event < to`, in `(ts_event, seq)` order across
    /// symbols and days. Days follow each other (a day file holds its day's event times); in
    /// a day SQLite orders the symbols' rows (its sorter spills to temporary files past the
    /// page cache, so memory stays bounded however many rows a range has).
    pub fn range_of(
        &self,
        symbols: &Symbols,
        from: Timestamp,
        to: Timestamp,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<Read, ReadError> {
        let mut read = Read::default();
        if from >= to {
            return Ok(read);
        }
        let mut found = vec![false; symbols.len()];
        let (first, last) = (from.day(), Timestamp(to.0.saturating_sub(1)).day());
        for day in self.days_between(first, last)? {
            read.days.push(day.day);
            let streamed = self.rows_as_listed_now(&day, f, |day, f| {
                if day.form == Form::Parquet {
                    return parquet_query(day, symbols, &mut found, |pq, names| {
                        pq.range(names, from.0, to.0, f)
                    });
                }
                self.with_day(day, Reach::Many, |reader| {
                    reader.range(symbols.ids(reader, &mut found).as_deref(), from, to, f)
                })
            });
            match streamed {
                Ok(k) => read.rows += k,
                Err(ReadError::Store(e)) => read.broken.push(BrokenDay::new(&day, &e)),
                Err(e) => return Err(e),
            }
        }
        if read.broken.is_empty() {
            read.unknown = symbols.unknown(&found);
        }
        Ok(read)
    }

    /// The committed next position of `origin` (a FIX session's next inbound MsgSeqNum, an
    /// ingested file's first uncommitted line): the mark with the newest commit time across
    /// every day file, plain or archived (an archive carries its marks in its summary). No
    /// limit on days, and no dependence on which day is newest.
    pub fn next_position(&self, origin: &str) -> Result<Option<u64>, StoreError> {
        let mut best: Option<(i64, i64)> = None; // (updated_ns, next)
        let mut consider = |m: Option<(i64, i64)>| {
            if let Some((next, at)) = m {
                if best.is_none_or(|b| at > b.0) {
                    best = Some((at, next));
                }
            }
        };
        for day in self.days()? {
            let mark = self.as_listed_now(
                &day,
                |day| {
                    if day.archived {
                        let summary = archive::read_summary(&day.path)?;
                        return Ok(summary.marks.get(origin).copied());
                    }
                    let (conn, _access) = open_day_conn(&self.base, day, &day.path, &self.opts)?;
                    read_mark(&conn, origin).map_err(StoreError::sqlite(&day.path))
                },
                |_| true,
            )?;
            consider(mark);
        }
        Ok(best.and_then(|(_, next)| u64::try_from(next).ok()))
    }

    /// Version 2 and 3 files: the inbound MsgSeqNum committed for a FIX session keyed by its
    /// `source` name (the newest by receive time across plain day files). Read only when a
    /// session has no mark yet, after an upgrade.
    pub fn legacy_session_next_inbound(&self, source: &str) -> Result<Option<u64>, StoreError> {
        let mut best: Option<(i64, i64)> = None;
        for day in self.days()?.iter().filter(|d| !d.archived) {
            let reader = DayReader::open_day(&self.base, day, &day.path, &self.opts)?;
            let mark = reader.legacy_session_mark(source)?;
            if let Some((next, at)) = mark {
                if best.is_none_or(|b| at > b.1) {
                    best = Some((next, at));
                }
            }
        }
        Ok(best.and_then(|(next, _)| u64::try_from(next).ok()))
    }

    /// Figures for each day file, oldest first; days that cannot be read are listed apart.
    pub fn day_stats(&self) -> Result<DayStatsReport, StoreError> {
        let mut report = DayStatsReport::default();
        for d in self.days()? {
            match self.as_listed_now(&d, |d| self.one_day_stats(d), |_| true) {
                Ok(s) => report.days.push(s),
                Err(e) => report.broken.push(BrokenDay::new(&d, &e)),
            }
        }
        Ok(report)
    }

    fn one_day_stats(&self, day: &DayFile) -> Result<DayStats, StoreError> {
        if day.archived {
            // The archive's own summary: no decompression needed.
            let s = archive::read_summary(&day.path)?;
            let (first, last) = archive::summary_times(&s);
            return Ok(DayStats {
                day: day.day,
                file: day.path.clone(),
                ticks: s.ticks,
                symbols: s.symbols,
                bytes: std::fs::metadata(&day.path).map(|m| m.len()).unwrap_or(0),
                first_ts_event: first,
                last_ts_event: last,
                archived: true,
            });
        }
        day_stats(&self.base, day, &self.opts)
    }
}

/// `query` on a Parquet day with the names of `symbols` it holds (`None`: every symbol),
/// marking them found; nothing when it holds none of them.
fn parquet_query(
    day: &DayFile,
    symbols: &Symbols,
    found: &mut [bool],
    query: impl FnOnce(&ParquetDay, Option<&[&str]>) -> Result<u64, ReadError>,
) -> Result<u64, ReadError> {
    let pq = ParquetDay::open_for_queries(&day.path)?;
    match symbols.in_parquet(&pq, found) {
        Some(names) if names.is_empty() => Ok(0),
        names => query(&pq, names.as_deref()),
    }
}
