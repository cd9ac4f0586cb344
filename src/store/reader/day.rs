//! One SQLite day file opened for reading: its name tables, the query structure its schema
//! version has (the directory, symbol blocks, block files, or the seal's indexes), and the
//! statements each kind of read runs on it. Queries across days ([`super::Store`]) pick the
//! day, its form and the kept reader; this module reads one file and never opens another.
//!
//! A reader never writes: every connection is read-only, or immutable under the day's lock
//! (see [`open_day_conn`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension};

use super::{AfterSeqBuffers, DayStats, ReadError};
use crate::store::daylock::DayLock;
use crate::store::layout::{self, DayFile};
use crate::store::{schema, SqliteOptions, StoreError};
use crate::tick::{Decimal, TickRow, Timestamp, NANOS_PER_DAY};

/// One day file opened for reading, with its name tables.
pub(super) struct DayReader {
    path: PathBuf,
    conn: Connection,
    /// What was read from the file when it was last loaded: whether a kept reader still
    /// describes it (see [`DayReader::refresh`]).
    seen: Seen,
    day_start_ns: i64,
    /// Names by file id (ids are dense from 0).
    symbols: Vec<Option<Arc<str>>>,
    sources: Vec<Option<Arc<str>>>,
    /// Queried through its per-transaction directory (version 5 and later, unless it has the
    /// indexes below).
    directory: bool,
    /// Has a blocks table (version 8 and later, with a directory).
    blocks_table: bool,
    /// Its blocks table holds blocks (written by versions that kept them in the day file).
    table_blocks: bool,
    /// The day's block files (`store::blockfile`), when it has them.
    block_file: Option<crate::store::blockfile::BlockFile>,
    /// Has symbol blocks: queries of a few symbols read them where they are whole
    /// (`store::blocks`); without any, they take the directory's own path.
    blocks: bool,
    /// Has the indexes of schema/seal.sql (a day an earlier version sealed): they serve its
    /// queries.
    indexed: bool,
    /// How the file was opened (see [`open_day_conn`]); a reader of an immutable one is
    /// never kept.
    access: Access,
}

/// How a day file was opened for reading.
#[derive(Debug)]
pub(crate) enum Access {
    /// As usual: SQLite's own locks and `-shm` keep the reader's snapshot whole.
    Shared,
    /// Immutable, the file read on its own: under the day's exclusive lock (held until the
    /// reader is dropped), or with no lock on a read-only file system (where nothing can
    /// change it).
    Immutable { _lock: Option<DayLock> },
}

/// The file (`layout::FileId`), its schema cookie and its largest name ids: a file replaced
/// by rename, re-indexed or vacuumed, or given new names changes one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    file: layout::FileId,
    schema_version: i64,
    max_ids: (Option<i64>, Option<i64>),
    /// `file_info.created_ns`: another file put in its place (even over the same inode) is
    /// another file, and seeds its tail records' checks (`blockfile::tail_seed`).
    created_ns: Option<i64>,
}

impl Seen {
    /// What seeds the file's tail records' checks (as `blockfile::tail_seed` reads it).
    fn tail_seed(&self) -> u64 {
        self.created_ns.unwrap_or(0) as u64
    }

    fn read(path: &Path, conn: &Connection) -> Result<Seen, StoreError> {
        let file = layout::file_identity(path).map_err(StoreError::io(path))?;
        let (schema_version, max_ids, created_ns) = conn
            .prepare_cached(
                "SELECT (SELECT schema_version FROM pragma_schema_version), \
                        (SELECT max(id) FROM symbols), (SELECT max(id) FROM sources), \
                        (SELECT created_ns FROM file_info)",
            )
            .and_then(|mut s| {
                s.query_row([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?), r.get(3)?)))
            })
            .map_err(StoreError::sqlite(path))?;
        Ok(Seen {
            file,
            schema_version,
            max_ids,
            created_ns,
        })
    }
}

/// Day readers kept open between queries, most recently used first: a query of a day read
/// moments ago skips opening the file and parsing its schema (~450 µs of a 100-row `recent`).
/// A day has one kept reader per [`Reach`].
#[derive(Default)]
pub(super) struct OpenReaders(std::sync::Mutex<Vec<(Reach, DayReader)>>);

/// Readers kept open by one [`Store`](super::Store) (and its clones), at most: both reaches
/// of today and of yesterday, and two more.
const OPEN_READERS: usize = 6;

/// How much of a day a query reads, which picks the kept reader it runs on.
///
/// The first query of a connection after a commit pays for every page the connection's
/// previous query touched: SQLite then empties its page cache (and unmaps its memory map). A
/// `recent 100` after an hour's range (about a thousand pages) spent 28 % of its CPU in
/// `munmap` while the writer ran (`perf`, `tickrec bench --only queries`). Queries of a few
/// pages keep a reader of their own, so they pay only for their own few pages. Its own reader
/// took that `recent` from 0.91-1.19 ms to 0.71 ms; with the rest of what that profile found
/// (schema/ticks.sql, "LIVE-DAY QUERY STRUCTURE") it takes 0.45-0.47 ms.
///
/// No reader maps the file: it reads pages into its cache instead. A map is set up and torn
/// down anew at every snapshot of a growing file, and each change to the process's mappings
/// interrupts the other CPU, where the writer runs, to flush its TLB (`perf` of the reader
/// thread: `smp_call_function_many_cond`). A `recent` paid less
/// without the map first (0.56-0.62 ms against 0.61-0.67, two runs a side); then the ranges
/// too: `bench --only queries --ticks 3000000`, three runs a side, alternating, the writer
/// beside the live-day reader 0.80-0.90 × its ceiling with the map, 0.91-0.96 × without; the
/// live hour meanwhile 0.93-1.18M ticks/s against 1.38-1.73M, first row 0.77-0.82 ms against
/// 0.53-0.59; alone, 2.0-2.6M against 2.7-3.7M ticks/s. The writer keeps its map
/// (`sqlite.mmap_size_mib`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reach {
    /// A few pages: the newest ticks, a cursor's next chunk, a seq bound.
    Few,
    /// Many pages: a time range, a whole day.
    Many,
}

/// The settings a query reader opens with: `opts` without the memory map (see [`Reach`]).
pub(super) fn reader_options(opts: &SqliteOptions) -> SqliteOptions {
    SqliteOptions {
        mmap_size: 0,
        ..opts.clone()
    }
}

impl std::fmt::Debug for OpenReaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map_or(0, |v| v.len());
        write!(f, "OpenReaders({n})")
    }
}

impl OpenReaders {
    /// The kept reader of `path` for `reach`, taken out (so no lock is held while it is used).
    pub(super) fn take(&self, path: &Path, reach: Reach) -> Option<DayReader> {
        let mut v = self.0.lock().ok()?;
        let i = v.iter().position(|(k, r)| *k == reach && r.path == path)?;
        Some(v.remove(i).1)
    }

    pub(super) fn put(&self, reach: Reach, reader: DayReader) {
        if let Ok(mut v) = self.0.lock() {
            v.insert(0, (reach, reader));
            v.truncate(OPEN_READERS);
        }
    }
}

/// The file id of a name.
fn find_id(names: &[Option<Arc<str>>], name: &str) -> Option<i64> {
    names
        .iter()
        .position(|n| n.as_deref() == Some(name))
        .map(|i| i as i64)
}

const COLUMNS: &str = "seq, sym, ts_event, ts_recv, bid, ask, bid_size, ask_size, src";
/// A range through the directory is read in time slices of about this many ticks (a bound on
/// what one statement sorts: see [`DayReader::range_by_directory`]).
const SLICE_TICKS: i64 = 1 << 16;

/// Whether block files hold any entry.
fn has_entries(f: &crate::store::blockfile::BlockFile) -> bool {
    f.is_empty().is_ok_and(|e| !e)
}

/// Whether the file holds any symbol block (its blocks table exists).
fn any_block(conn: &Connection) -> bool {
    conn.prepare_cached("SELECT 1 FROM blocks LIMIT 1")
        .and_then(|mut s| s.exists([]))
        .unwrap_or(false)
}

/// The time slices `[from, to)` a range over `[lo, hi)` holding about `ticks` ticks is read in
/// (one slice when they are few; the first and last take whatever lies outside the day).
fn time_slices(lo: i64, hi: i64, ticks: i64) -> Vec<(i64, i64)> {
    let (a, b) = (lo.max(0), hi.min(NANOS_PER_DAY));
    let slices = (ticks / SLICE_TICKS + 1).min((b - a).max(1));
    if slices <= 1 {
        return vec![(lo, hi)];
    }
    let step = (b - a) / slices;
    (0..slices)
        .map(|k| {
            let from = if k == 0 { lo } else { a + k * step };
            let to = if k + 1 == slices {
                hi
            } else {
                a + (k + 1) * step
            };
            (from, to)
        })
        .collect()
}

/// `[lo, hi)` read in the time slices of [`time_slices`] (one when they hold few ticks): `list`
/// gives what a window holds (the directory's spans or pieces), `ticks` counts each, and `read`
/// reads one window from its list. Returns the ticks read.
fn in_slices<P>(
    (lo, hi): (i64, i64),
    list: impl Fn(i64, i64) -> Result<Vec<P>, ReadError>,
    ticks: impl Fn(&P) -> i64,
    mut read: impl FnMut(Vec<P>, i64, i64) -> Result<u64, ReadError>,
) -> Result<u64, ReadError> {
    let whole = list(lo, hi)?;
    let slices = time_slices(lo, hi, whole.iter().map(ticks).fold(0, i64::saturating_add));
    if slices.len() <= 1 {
        return read(whole, lo, hi);
    }
    let mut n = 0;
    for (from, to) in slices {
        n += read(list(from, to)?, from, to)?;
    }
    Ok(n)
}

/// File symbol ids as the value of an `rarray(?)` parameter.
fn ids_value(ids: &[i64]) -> std::rc::Rc<Vec<rusqlite::types::Value>> {
    std::rc::Rc::new(
        ids.iter()
            .map(|&i| rusqlite::types::Value::Integer(i))
            .collect(),
    )
}

/// A read-only connection to `day`'s file at `path`, and how it was opened.
///
/// SQLite cannot make the `-shm` of a file nobody has open on a full disk, nor any file on a
/// read-only file system (a backup or snapshot mounted read-only), and no query of that day
/// could run. Then the file is read on its own, immutable, provided its write-ahead log is
/// empty (every tick is in the file itself): on a read-only file system as it is (nothing
/// can change it), otherwise under the day's exclusive lock (no writer, archiver or seal can
/// start on it meanwhile; a writer that wants it waits its bounded time). Otherwise the error
/// stands, and says why.
pub(crate) fn open_day_conn(
    base: &Path,
    day: &DayFile,
    path: &Path,
    opts: &SqliteOptions,
) -> Result<(Connection, Access), StoreError> {
    let read_only = || crate::fsutil::read_only_fs(path);
    let err = match schema::open_for_read(path, opts) {
        Ok(conn) => return Ok((conn, Access::Shared)),
        Err(e) if !day.archived && (schema::is_shm_failure(&e) || read_only()) => e,
        Err(e) => return Err(e),
    };
    let wal = crate::fsutil::with_suffix(path, "-wal");
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        return Err(err);
    }
    let lock = if read_only() {
        None
    } else {
        match DayLock::try_exclusive(base, day.day) {
            Ok(Some(lock)) => Some(lock),
            _ => return Err(err),
        }
    };
    Ok((
        schema::open_immutable(path, opts)?,
        Access::Immutable { _lock: lock },
    ))
}

impl DayReader {
    /// Starts a read transaction, so that every statement until [`DayReader::end`] sees one
    /// snapshot, and reloads what the file says of itself if it changed since it was last
    /// read. On an error the reader is dropped: closing the connection ends its transaction.
    pub(super) fn begin(self) -> Result<DayReader, StoreError> {
        self.conn
            .prepare_cached("BEGIN")
            .and_then(|mut s| s.execute([]))
            .map_err(StoreError::sqlite(&self.path))?;
        self.refresh()
    }

    /// Ends the read transaction [`DayReader::begin`] started.
    pub(super) fn end(&self) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("ROLLBACK")
            .and_then(|mut s| s.execute([]))
            .map(drop)
            .map_err(StoreError::sqlite(&self.path))
    }

    /// Whether this reader is of the file now at `path` (not of one renamed over it since).
    pub(super) fn is_of(&self, path: &Path) -> bool {
        layout::file_identity(path).is_ok_and(|id| id == self.seen.file)
    }

    /// Whether this reader may be kept for later queries: one of an immutable file is not (it
    /// would miss what a writer adds later, and holds the day's lock).
    pub(super) fn keepable(&self) -> bool {
        matches!(self.access, Access::Shared)
    }

    /// The newest `left` ticks of `ids` (`None`: every symbol), newest first.
    pub(super) fn recent(
        &self,
        ids: Option<&[i64]>,
        left: u64,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<u64, ReadError> {
        let limit = i64::try_from(left).unwrap_or(i64::MAX);
        match ids {
            None => self.stream(
                &format!("SELECT {COLUMNS} FROM ticks ORDER BY seq DESC LIMIT ?1"),
                &[&limit],
                f,
            ),
            Some([]) => Ok(0),
            Some(&[sym]) => self.recent_one(sym, left, f),
            Some(ids) => {
                let mut rows = Vec::new();
                for &sym in ids {
                    self.recent_one(sym, left, &mut |r| {
                        rows.push(r.clone());
                        Ok(())
                    })?;
                }
                rows.sort_by_key(|r| std::cmp::Reverse(r.seq));
                rows.truncate(left as usize);
                for r in &rows {
                    f(r).map_err(ReadError::Output)?;
                }
                Ok(rows.len() as u64)
            }
        }
    }

    /// Every tick of `ids` (`None`: every symbol), in `seq` order.
    pub(super) fn scan(
        &self,
        ids: Option<&[i64]>,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<u64, ReadError> {
        match ids {
            None => self.stream(&format!("SELECT {COLUMNS} FROM ticks ORDER BY seq"), &[], f),
            Some(ids) => self.stream(
                &format!("SELECT {COLUMNS} FROM ticks WHERE sym IN rarray(?1) ORDER BY seq"),
                &[&ids_value(ids)],
                f,
            ),
        }
    }

    /// Ticks of `ids` (`None`: every symbol) with `seq > after`, in `seq` order, kept in
    /// `bufs.rows` (see `Store::after_seq`): from the symbol blocks where every wanted
    /// symbol's block is whole, else from the rows, up to `after + limit`. Returns the highest
    /// seq looked at when it is not the last row's, and the seqs left unread (`blocks_only`:
    /// those the blocks do not hold yet).
    pub(super) fn after_seq(
        &self,
        ids: Option<&[i64]>,
        (after, limit): (i64, i64),
        blocks_only: bool,
        bufs: &mut AfterSeqBuffers,
    ) -> Result<(Option<i64>, i64), ReadError> {
        let wanted = ids.is_none_or(|ids| !ids.is_empty());
        if self.blocks && wanted {
            if let Some(last) = self.after_by_blocks(ids, after, limit, bufs)? {
                return Ok((Some(last), 0));
            }
            bufs.rows.clear();
            if blocks_only {
                return Ok((Some(after), self.max_seq()?.saturating_sub(after).max(0)));
            }
        }
        let mut keep = |r| {
            bufs.rows.push(r);
            Ok(())
        };
        let Some(ids) = ids else {
            self.each_row(
                &format!("SELECT {COLUMNS} FROM ticks WHERE seq > ?1 ORDER BY seq LIMIT ?2"),
                &[&after, &limit],
                &mut keep,
            )?;
            return Ok((None, 0));
        };
        // The same stretch of seqs as a tail of every symbol reads, up to this snapshot's
        // end: `tail --symbols EURUSD` over a 6.9M-tick day of 128 symbols, 3.2 s → 0.75 s.
        let upto = self.max_seq()?.min(after.saturating_add(limit)).max(after);
        if !ids.is_empty() {
            self.each_row(
                &format!(
                    "SELECT {COLUMNS} FROM ticks WHERE seq > ?1 AND seq <= ?2 \
                     AND sym IN rarray(?3) ORDER BY seq"
                ),
                &[&after, &upto, &ids_value(ids)],
                &mut keep,
            )?;
        }
        Ok((Some(upto), 0))
    }

    /// Ticks of `ids` (`None`: every symbol) with `from <= ts_event < to`, in `(ts_event, seq)`
    /// order: through the directory, or the seal's time index, or SQLite's sorter (which
    /// spills to temporary files past the page cache, so memory stays bounded).
    pub(super) fn range(
        &self,
        ids: Option<&[i64]>,
        from: Timestamp,
        to: Timestamp,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<u64, ReadError> {
        if ids == Some(&[]) {
            return Ok(0);
        }
        // Bounds relative to the file's midnight, clamped to the day.
        let lo = from.0.saturating_sub(self.day_start_ns).max(0);
        let hi = to.0.saturating_sub(self.day_start_ns).min(NANOS_PER_DAY);
        if self.directory {
            return self.range_by_directory(ids, lo, hi, f);
        }
        let order = "ORDER BY ts_event, seq";
        // The time index walks the symbols' rows in order (schema/seal.sql).
        let ticks = if self.indexed {
            "ticks INDEXED BY ticks_by_symbol_time"
        } else {
            "ticks"
        };
        match ids {
            Some(&[sym]) => self.stream(
                &format!(
                    "SELECT {COLUMNS} FROM {ticks} WHERE sym = ?1 AND ts_event >= ?2 \
                     AND ts_event < ?3 {order}"
                ),
                &[&sym, &lo, &hi],
                f,
            ),
            Some(ids) => self.stream(
                &format!(
                    "SELECT {COLUMNS} FROM {ticks} WHERE sym IN rarray(?1) \
                     AND ts_event >= ?2 AND ts_event < ?3 {order}"
                ),
                &[&ids_value(ids), &lo, &hi],
                f,
            ),
            None => self.stream(
                &format!(
                    "SELECT {COLUMNS} FROM ticks WHERE ts_event >= ?1 AND ts_event < ?2 {order}"
                ),
                &[&lo, &hi],
                f,
            ),
        }
    }

    /// Version 2 and 3 files: `(next_inbound_seq, updated_recv_ns)` of the FIX session keyed
    /// by its `source` name, if the file has one.
    pub(super) fn legacy_session_mark(
        &self,
        source: &str,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        let Some(src) = find_id(&self.sources, source) else {
            return Ok(None);
        };
        let sq = StoreError::sqlite(&self.path);
        if schema::version(&self.conn).map_err(sq)? < 2 {
            return Ok(None);
        }
        self.conn
            .query_row(
                "SELECT next_inbound_seq, updated_recv_ns FROM fix_sessions WHERE src = ?1",
                [src],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(StoreError::sqlite(&self.path))
    }

    fn open(path: &Path, opts: &SqliteOptions) -> Result<DayReader, StoreError> {
        let conn = schema::open_for_read(path, opts)?;
        DayReader::load(path, conn)
    }

    /// Reads the file's names, midnight and query structure.
    fn load(path: &Path, conn: Connection) -> Result<DayReader, StoreError> {
        let load = |table: &str| -> rusqlite::Result<Vec<Option<Arc<str>>>> {
            let mut stmt = conn.prepare(&format!("SELECT id, name FROM {table}"))?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get::<_, i64>(0)?, Arc::from(r.get::<_, String>(1)?)))
            })?;
            let mut names = Vec::new();
            for row in rows {
                let (id, name) = row?;
                // Ids come from this file's own tables; a wild one is skipped, and rows that
                // name it are reported as corrupt when read.
                let Ok(i) = usize::try_from(id) else { continue };
                if i >= 1 << 24 {
                    continue;
                }
                if names.len() <= i {
                    names.resize(i + 1, None);
                }
                names[i] = Some(name);
            }
            Ok(names)
        };
        let seen = Seen::read(path, &conn)?;
        let (day_start_ns, symbols, sources) = (|| {
            Ok::<_, rusqlite::Error>((
                schema::day_start_ns(&conn)?,
                load("symbols")?,
                load("sources")?,
            ))
        })()
        .map_err(StoreError::sqlite(path))?;
        let sealed = conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'ticks_by_symbol_time'",
                [],
                |_| Ok(()),
            )
            .is_ok();
        let rarray = rusqlite::vtab::array::load_module(&conn).is_ok();
        let directory = !sealed && rarray && crate::store::directory::present(&conn);
        let blocks_table = directory
            && conn
                .query_row(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'blocks'",
                    [],
                    |_| Ok(()),
                )
                .is_ok();
        let table_blocks = blocks_table && any_block(&conn);
        let block_file = directory
            .then(|| crate::store::blockfile::BlockFile::open(path, seen.tail_seed()))
            .flatten();
        let blocks = table_blocks || block_file.as_ref().is_some_and(has_entries);
        Ok(DayReader {
            path: path.to_owned(),
            conn,
            seen,
            day_start_ns,
            symbols,
            sources,
            directory,
            blocks_table,
            table_blocks,
            block_file,
            blocks,
            indexed: sealed,
            access: Access::Shared,
        })
    }

    /// A reader of `day`'s file at `path` (its own, or the cache's copy of an archived day),
    /// opened by [`open_day_conn`].
    pub(super) fn open_day(
        base: &Path,
        day: &DayFile,
        path: &Path,
        opts: &SqliteOptions,
    ) -> Result<DayReader, StoreError> {
        let (conn, access) = open_day_conn(base, day, path, opts)?;
        let mut reader = DayReader::load(path, conn)?;
        reader.access = access;
        Ok(reader)
    }

    /// Inside the query's snapshot: this reader as the file now is (loaded again if its
    /// schema or names changed since it was loaded; a file replaced under the same name needs
    /// a new connection, see [`Store::with_day`](super::Store::with_day)).
    fn refresh(mut self) -> Result<DayReader, StoreError> {
        if Seen::read(&self.path, &self.conn)? == self.seen {
            // A writer that writes blocks adds its first ones a few commits into the day.
            if !self.blocks {
                if self.directory && self.block_file.is_none() {
                    self.block_file =
                        crate::store::blockfile::BlockFile::open(&self.path, self.seen.tail_seed());
                }
                self.table_blocks = self.blocks_table && any_block(&self.conn);
                self.blocks =
                    self.table_blocks || self.block_file.as_ref().is_some_and(has_entries);
            }
            return Ok(self);
        }
        let DayReader { path, conn, .. } = self;
        DayReader::load(&path, conn)
    }

    /// `syms`' ticks (every symbol's for `None`) with `lo <= ts_event < hi` (day-relative), in
    /// `(ts_event, seq)` order, through the directory. A window whose spans hold more than
    /// [`SLICE_TICKS`] ticks (several symbols, every symbol, a long range) is read as that many
    /// consecutive time slices, each sorted on its own: memory, and SQLite's temporary files,
    /// stay bounded by a slice however many rows the window holds (one statement over a
    /// 10M-tick day's every symbol sorted the whole day, spilling it to temporary files).
    fn range_by_directory(
        &self,
        syms: Option<&[i64]>,
        lo: i64,
        hi: i64,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<u64, ReadError> {
        use crate::store::directory::Span;
        let want = match syms {
            Some(ids) => crate::store::directory::Want::Ids(ids),
            None => crate::store::directory::Want::All,
        };
        let sq = |source| {
            ReadError::Store(StoreError::Sqlite {
                path: self.path.clone(),
                source,
            })
        };
        if let (Some(ids), true) = (syms, self.blocks) {
            return self.range_by_pieces(ids, lo, hi, f);
        }
        in_slices(
            (lo, hi),
            |from, to| crate::store::directory::spans_in(&self.conn, want, from, to).map_err(sq),
            |s| match *s {
                Span::Exact(a, b) | Span::Scan(a, b) => b.saturating_sub(a).saturating_add(1),
            },
            |spans, from, to| self.slice_by_directory(syms, spans, from, to, f),
        )
    }

    /// [`DayReader::range_by_directory`] of symbols `ids` in a file with blocks: the same
    /// slices, each read from the symbols' blocks where they are whole, else from the rows.
    fn range_by_pieces(
        &self,
        ids: &[i64],
        lo: i64,
        hi: i64,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<u64, ReadError> {
        let sq = |source| {
            ReadError::Store(StoreError::Sqlite {
                path: self.path.clone(),
                source,
            })
        };
        in_slices(
            (lo, hi),
            |from, to| crate::store::directory::pieces_in(&self.conn, ids, from, to).map_err(sq),
            crate::store::directory::Piece::ticks,
            |pieces, from, to| self.slice_by_pieces(ids, pieces, from, to, f),
        )
    }

    /// One slice of [`DayReader::range_by_pieces`]: each piece's block in one statement; what
    /// has no whole block (no blocks table, older rows, the tail, a damaged block) is read from
    /// the rows; the lot is sorted by `(ts_event, seq)`.
    fn slice_by_pieces(
        &self,
        ids: &[i64],
        pieces: Vec<crate::store::directory::Piece>,
        lo: i64,
        hi: i64,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<u64, ReadError> {
        use crate::store::directory::{Piece, Span};
        let mut keyed: Vec<(i64, usize)> = pieces
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p {
                Piece::Runs { runs, .. } => runs.first().map(|r| (r.0, i)),
                Piece::Span(_) => None,
            })
            .collect();
        keyed.sort_unstable();
        let mut whole = vec![false; pieces.len()];
        let mut found = Vec::new();
        if self.blocks && !keyed.is_empty() {
            let keys: Vec<i64> = keyed.iter().map(|k| k.0).collect();
            let (mut decoded, mut failed) = (Vec::new(), None);
            self.fetch_blocks(&keys, &mut |k, data, in_file| {
                let (key, i) = keyed[k];
                let Piece::Runs { sym, runs } = &pieces[i] else {
                    return;
                };
                if failed.is_some()
                    || !self.block_rows((key, data, in_file), &pieces[i], &mut decoded)
                {
                    return;
                }
                let seqs = runs.iter().flat_map(|&(a, n)| a..a.saturating_add(n));
                for (row, seq) in decoded.iter().zip(seqs) {
                    if row.ts_event >= lo && row.ts_event < hi {
                        match self.tick_row(seq, *sym, row) {
                            Ok(r) => found.push(r),
                            Err(e) => failed = Some(e),
                        }
                    }
                }
                whole[i] = true;
            })?;
            if let Some(e) = failed {
                return Err(e.into());
            }
        }
        let mut spans: Vec<Span> = Vec::new();
        let count = pieces.len();
        for (k, (piece, whole)) in pieces.into_iter().zip(&whole).enumerate() {
            match piece {
                _ if *whole => {}
                Piece::Span(Span::Scan(a, b)) if k + 1 == count && self.block_file.is_some() => {
                    // The tail (the last piece): the block builder's records give the
                    // symbols' runs in the commits that meet the window; only the newest
                    // ticks past them, if any, are scanned.
                    let (runs, upto) = self.tail_runs(ids, (a, b), (lo, hi))?;
                    for (_, a, n) in runs {
                        spans.push(Span::Exact(a, a.saturating_add(n - 1)));
                    }
                    if upto < b {
                        spans.push(Span::Scan(upto.saturating_add(1).max(a), b));
                    }
                }
                Piece::Runs { runs, .. } => {
                    for (a, n) in runs {
                        // Adjacent runs (neighbouring symbols of one commit) as one span.
                        match spans.last_mut() {
                            Some(Span::Exact(_, b)) if b.saturating_add(1) == a => {
                                *b = a.saturating_add(n - 1);
                            }
                            _ => spans.push(Span::Exact(a, a.saturating_add(n - 1))),
                        }
                    }
                }
                Piece::Span(span) => spans.push(span),
            }
        }
        if !whole.contains(&true) {
            // No blocks (the writer writes none, or not yet): the rows, sorted by SQLite.
            return self.slice_by_directory(Some(ids), spans, lo, hi, f);
        }
        if !spans.is_empty() {
            self.slice_by_directory(Some(ids), spans, lo, hi, &mut |r| {
                found.push(r.clone());
                Ok(())
            })?;
        }
        found.sort_unstable_by_key(|r| (r.ts_event, r.seq));
        for r in &found {
            f(r).map_err(ReadError::Output)?;
        }
        Ok(found.len() as u64)
    }

    /// Calls `f(i, data, in_file)` for each `keys[i]` (rising) that has a block: from the
    /// block files (`in_file`: its check is seeded with its runs), then, for a file that kept
    /// blocks in its blocks table, from there (seeded with its key). A block file that cannot
    /// be read is passed over (the rows answer).
    fn fetch_blocks(
        &self,
        keys: &[i64],
        f: &mut dyn FnMut(usize, &[u8], bool),
    ) -> Result<(), StoreError> {
        let mut found = vec![false; keys.len()];
        if let Some(file) = &self.block_file {
            let read = file.find(keys, &mut |i, data| {
                found[i] = true;
                f(i, data, true);
            });
            if let Err(e) = read {
                tracing::warn!(path = %self.path.display(), error = %e, "symbol block files not read: the rows answer");
            }
        }
        if !self.table_blocks || !found.contains(&false) {
            return Ok(());
        }
        let sq = |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        };
        let missing: Vec<rusqlite::types::Value> = keys
            .iter()
            .zip(&found)
            .filter(|k| !k.1)
            .map(|k| rusqlite::types::Value::Integer(*k.0))
            .collect();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, data FROM blocks WHERE seq IN rarray(?1) ORDER BY seq")
            .map_err(sq)?;
        let mut rows = stmt.query([std::rc::Rc::new(missing)]).map_err(sq)?;
        while let Some(r) = rows.next().map_err(sq)? {
            let (Ok(key), Ok(data)) = (
                r.get::<_, i64>(0),
                r.get_ref(1).and_then(|v| Ok(v.as_blob()?)),
            ) else {
                continue;
            };
            if let Ok(i) = keys.binary_search(&key) {
                f(i, data, false);
            }
        }
        Ok(())
    }

    /// [`Store::after_seq`](super::Store::after_seq) from symbol blocks: the ticks of `ids`
    /// (every symbol's for `None`) with `seq > after`, in `seq` order, from the directory rows
    /// that follow `after` (at least one, then while fewer than `limit` seqs were looked at) as
    /// long as every wanted symbol's block of a row is whole, appended to `bufs.rows`. Returns
    /// the last `seq` of the last row read, `None` when the first has no whole blocks (nor any
    /// row follows `after`): the rows answer.
    ///
    /// A tail of every symbol reads 128 blocks a row instead of ~8,000 rows: 394–398 ns of CPU
    /// per tick it passes on against 680–691 (`tail_cpu_ns_per_tick`, `bench --only tails`).
    fn after_by_blocks(
        &self,
        ids: Option<&[i64]>,
        after: i64,
        limit: i64,
        bufs: &mut AfterSeqBuffers,
    ) -> Result<Option<i64>, ReadError> {
        let sq = |source| {
            ReadError::Store(StoreError::Sqlite {
                path: self.path.clone(),
                source,
            })
        };
        // The row holding `after + 1` (rows tile the covered seqs) and those after it.
        let mut dirs: Vec<(i64, i64, Option<Vec<u8>>)> = Vec::new();
        {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT first_seq, last_seq, dir FROM batches WHERE first_seq >= coalesce( \
                     (SELECT first_seq FROM batches WHERE first_seq <= ?1 ORDER BY first_seq DESC \
                      LIMIT 1), 1) ORDER BY first_seq LIMIT 16",
                )
                .map_err(sq)?;
            let mut rows = stmt.query([after.saturating_add(1)]).map_err(sq)?;
            while let Some(r) = rows.next().map_err(sq)? {
                let dir = r
                    .get_ref(2)
                    .and_then(|v| Ok(v.as_blob_or_null()?.map(<[u8]>::to_vec)))
                    .map_err(sq)?;
                dirs.push((r.get(0).map_err(sq)?, r.get(1).map_err(sq)?, dir));
            }
        }
        // Blocks from the block file alone need no snapshot: the directory rows are read, and
        // the reader lets go of its snapshot while it decodes them, so that a reader the
        // scheduler puts aside mid-read (a `tail` at `SCHED_IDLE`) does not hold the writer's
        // WAL restart back for as long (see `store::writer::WalBound`). Beside four tails
        // (`bench --only tails --ticks 2000000`, three runs a side, alternating) the writer's
        // restarts took 0.21–0.24 s → 0.19–0.21 s; alone, 0.17–0.19 s either way.
        if self.table_blocks || self.block_file.is_none() {
            return self.after_in_blocks(ids, after, limit, &dirs, bufs);
        }
        self.outside_snapshot(|| self.after_in_blocks(ids, after, limit, &dirs, bufs))?
    }

    /// [`DayReader::after_by_blocks`] over the directory rows `dirs` it read.
    fn after_in_blocks(
        &self,
        ids: Option<&[i64]>,
        after: i64,
        limit: i64,
        dirs: &[(i64, i64, Option<Vec<u8>>)],
        bufs: &mut AfterSeqBuffers,
    ) -> Result<Option<i64>, ReadError> {
        use crate::store::directory::Piece;
        let AfterSeqBuffers {
            rows: out,
            slots,
            decoded,
        } = bufs;
        let (mut reached, mut pieces) = (None, Vec::new());
        let want = match ids {
            Some(ids) => crate::store::directory::Want::Ids(ids),
            None => crate::store::directory::Want::All,
        };
        for &(first, last, ref dir) in dirs {
            // The file's numbers are not trusted: a span no writer writes ends the block path.
            let Some(span) = last
                .checked_sub(first)
                .and_then(|d| usize::try_from(d).ok())
                .filter(|d| *d < 1 << 20)
                .map(|d| d + 1)
            else {
                break;
            };
            if last <= after {
                continue;
            }
            pieces.clear();
            crate::store::directory::pieces_of(first, last, dir.as_deref(), want, &mut pieces);
            // (A row without a directory, or one that does not decode, is a span: the rows.)
            let keys: Option<Vec<i64>> = pieces
                .iter()
                .map(|p| match p {
                    Piece::Runs { runs, .. } => runs.first().map(|r| r.0),
                    Piece::Span(_) => None,
                })
                .collect();
            let Some(keys) = keys else {
                break;
            };
            slots.clear();
            slots.resize(span, None);
            let mut whole = 0usize;
            self.fetch_blocks(&keys, &mut |i, data, in_file| {
                let piece = &pieces[i];
                let Piece::Runs { sym, runs } = piece else {
                    return;
                };
                if !self.block_rows((keys[i], data, in_file), piece, decoded) {
                    return;
                }
                let seqs = runs.iter().flat_map(|&(a, n)| a..a.saturating_add(n));
                for (row, seq) in decoded.iter().zip(seqs) {
                    let at = seq.checked_sub(first).and_then(|k| usize::try_from(k).ok());
                    match at.and_then(|k| slots.get_mut(k)) {
                        Some(slot) => *slot = Some((*sym, *row)),
                        // A run outside its row: the rows answer.
                        None => return,
                    }
                }
                whole += 1;
            })?;
            // Every symbol: the row's runs must fill its span.
            if whole < pieces.len() || (ids.is_none() && slots.contains(&None)) {
                break;
            }
            for (seq, slot) in (first..).zip(slots.iter()) {
                if let (true, Some((sym, row))) = (seq > after, slot) {
                    out.push(self.tick_row(seq, *sym, row)?);
                }
            }
            reached = Some(last);
            if last.saturating_sub(after) >= limit {
                break;
            }
        }
        Ok(reached)
    }

    /// [`BlockFile::tail_runs`](crate::store::blockfile::BlockFile::tail_runs) of the tail `a..=b`,
    /// once the rows agree: every `seq` they name holds one of the symbols `ids`. Records that
    /// describe other rows (a day file replaced or renumbered behind them) are passed over,
    /// and the tail is scanned.
    fn tail_runs(
        &self,
        ids: &[i64],
        (a, b): (i64, i64),
        window: (i64, i64),
    ) -> Result<crate::store::blockfile::TailRuns, StoreError> {
        let none = (Vec::new(), a - 1);
        let Some(file) = &self.block_file else {
            return Ok(none);
        };
        let (runs, upto) = file.tail_runs(ids, (a, b), window);
        if runs.is_empty() {
            return Ok((runs, upto));
        }
        let seqs: Vec<rusqlite::types::Value> = runs
            .iter()
            .flat_map(|&(_, a, n)| a..a.saturating_add(n))
            .map(rusqlite::types::Value::Integer)
            .collect();
        let want = seqs.len() as i64;
        let held: i64 = self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM ticks WHERE seq IN rarray(?1) AND sym IN rarray(?2)",
            )
            .and_then(|mut stmt| {
                stmt.query_row(
                    rusqlite::params![std::rc::Rc::new(seqs), ids_value(ids)],
                    |r| r.get(0),
                )
            })
            .map_err(|source| StoreError::Sqlite {
                path: self.path.clone(),
                source,
            })?;
        if held != want {
            tracing::warn!(path = %self.path.display(), "the symbol block tail records do not match the rows: the tail is scanned (run `tickrec check`)");
            return Ok(none);
        }
        Ok((runs, upto))
    }

    /// Decodes `data`, the block keyed `key` (from a block file when `in_file`), into `out`;
    /// false (read the rows instead) unless its check holds and it has exactly as many ticks
    /// as `piece` names.
    fn block_rows(
        &self,
        (key, data, in_file): (i64, &[u8], bool),
        piece: &crate::store::directory::Piece,
        out: &mut Vec<crate::store::blocks::Row>,
    ) -> bool {
        let decoded = match piece {
            crate::store::directory::Piece::Runs { runs, .. } if in_file => {
                crate::store::blocks::decode_seeded(
                    crate::store::blocks::runs_seed(runs),
                    data,
                    out,
                )
            }
            _ => crate::store::blocks::decode(key, data, out),
        };
        let whole = decoded.is_ok() && i64::try_from(out.len()).is_ok_and(|n| n == piece.ticks());
        if !whole {
            tracing::warn!(path = %self.path.display(), "a symbol block does not match its directory row: its ticks are read from the rows (run `tickrec check`)");
        }
        whole
    }

    /// One slice of [`DayReader::range_by_directory`]: the batches that meet the window give
    /// the symbols' `seq`s (`spans`), read by rowid; spans without a directory (the tail, rows
    /// from before it) are read by rowid too and filtered by symbol. One statement reads both
    /// and orders them.
    fn slice_by_directory(
        &self,
        syms: Option<&[i64]>,
        spans: Vec<crate::store::directory::Span>,
        lo: i64,
        hi: i64,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<u64, ReadError> {
        use crate::store::directory::Span;
        // Each span as one value, `first << 12 | (length - 1)` (longer spans cut in pieces):
        // the statement walks them as rowid ranges, one seek per span.
        let (mut exact, mut scans) = (Vec::new(), Vec::new());
        for span in spans {
            let (into, a, b) = match span {
                Span::Exact(a, b) => (&mut exact, a, b),
                Span::Scan(a, b) => (&mut scans, a, b),
            };
            let mut at = a;
            while at <= b {
                let len = (b - at + 1).min(1 << 12);
                into.push(rusqlite::types::Value::Integer((at << 12) | (len - 1)));
                at += len;
            }
        }
        let columns = COLUMNS
            .split(", ")
            .map(|c| format!("t.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let by_seq = |spans: &str| {
            format!(
                "SELECT {columns} FROM rarray({spans}) r CROSS JOIN ticks t \
                 ON t.seq BETWEEN r.value >> 12 AND (r.value >> 12) + (r.value & 4095) \
                 WHERE t.ts_event >= ?2 AND t.ts_event < ?3"
            )
        };
        let exact = std::rc::Rc::new(exact);
        if scans.is_empty() {
            let sql = format!("{} ORDER BY t.ts_event, t.seq", by_seq("?1"));
            return self.stream(&sql, &[&exact, &lo, &hi], f);
        }
        // (Only a set of symbols has spans to scan: for every symbol all spans are exact.)
        let ids = ids_value(syms.unwrap_or_default());
        let sql = format!(
            "{} UNION ALL {} AND t.sym IN rarray(?5) ORDER BY 3, 1",
            by_seq("?1"),
            by_seq("?4")
        );
        let scans = std::rc::Rc::new(scans);
        self.stream(&sql, &[&exact, &lo, &hi, &scans, &ids], f)
    }

    /// The newest `n` ticks of `sym`, newest first, through the directory: the tail (scanned),
    /// then the symbol's pieces of the newest rows, each from its block where the file has a
    /// whole one, else from its rows by `seq`.
    fn recent_by_directory(
        &self,
        sym: i64,
        n: u64,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<u64, ReadError> {
        use crate::store::directory::{Piece, Span};
        let sq = |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        };
        let mut parts = Vec::new();
        let mut covered = 0u64;
        crate::store::directory::pieces_newest_first(&self.conn, sym, &mut |piece| {
            // A span to scan holds an unknown number of the symbol's ticks: the walk goes on.
            if let Piece::Runs { .. } | Piece::Span(Span::Exact(..)) = piece {
                covered = covered.saturating_add(u64::try_from(piece.ticks()).unwrap_or(0));
            }
            parts.push(piece);
            Ok(covered < n)
        })
        .map_err(sq)?;
        // Pieces read by `seq` gather into one statement until a block or a scan comes between.
        let (mut done, mut seqs, mut decoded) = (0u64, Vec::new(), Vec::new());
        for (i, piece) in parts.into_iter().enumerate() {
            let newest = i == 0;
            if done.saturating_add(seqs.len() as u64) >= n {
                break;
            }
            let whole = match &piece {
                Piece::Runs { runs, .. } if self.blocks => {
                    let key = runs.first().map_or(0, |r| r.0);
                    let mut whole = false;
                    self.fetch_blocks(&[key], &mut |_, data, in_file| {
                        whole = self.block_rows((key, data, in_file), &piece, &mut decoded);
                    })?;
                    whole
                }
                _ => false,
            };
            match piece {
                Piece::Runs { runs, .. } if !whole => seqs.extend(
                    runs.iter()
                        .flat_map(|&(a, n)| a..a.saturating_add(n))
                        .map(rusqlite::types::Value::Integer),
                ),
                Piece::Span(Span::Exact(a, b)) => {
                    seqs.extend((a..=b).map(rusqlite::types::Value::Integer));
                }
                Piece::Runs { sym, runs } => {
                    done += self.by_seqs(&mut seqs, n - done, f)?;
                    let seqs = runs
                        .iter()
                        .rev()
                        .flat_map(|&(a, n)| (a..a.saturating_add(n)).rev());
                    let left = usize::try_from(n.saturating_sub(done)).unwrap_or(usize::MAX);
                    for (row, seq) in decoded.iter().rev().zip(seqs).take(left) {
                        f(&self.tick_row(seq, sym, row)?).map_err(ReadError::Output)?;
                        done += 1;
                    }
                }
                Piece::Span(Span::Scan(a, b)) => {
                    done += self.by_seqs(&mut seqs, n - done, f)?;
                    // The tail (the newest piece): the block builder's records give the
                    // symbol's runs in the commits they cover; only the newest ticks past
                    // them, if any, are scanned.
                    let (runs, upto) = match (newest, &self.block_file) {
                        (true, Some(file)) => file.tail_runs(&[sym], (a, b), (i64::MIN, i64::MAX)),
                        _ => (Vec::new(), a - 1),
                    };
                    let past = upto.saturating_add(1).max(a);
                    done += self.scan_newest(sym, (past, b), n.saturating_sub(done), f)?;
                    done +=
                        self.recent_of_runs(sym, &runs, (a, upto), n.saturating_sub(done), f)?;
                }
            }
        }
        done += self.by_seqs(&mut seqs, n.saturating_sub(done), f)?;
        Ok(done)
    }

    /// The newest `left` ticks of `sym` among `a..=b`, by scanning, newest first.
    fn scan_newest(
        &self,
        sym: i64,
        (a, b): (i64, i64),
        left: u64,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<u64, ReadError> {
        if a > b || left == 0 {
            return Ok(0);
        }
        let limit = i64::try_from(left).unwrap_or(i64::MAX);
        self.stream(
            &format!(
                "SELECT {COLUMNS} FROM ticks WHERE seq BETWEEN ?1 AND ?2 \
                 AND sym = ?3 ORDER BY seq DESC LIMIT ?4"
            ),
            &[&a, &b, &sym, &limit],
            f,
        )
    }

    /// The newest `left` ticks of `sym` in the tail `a..=upto`, read by `seq` from the tail
    /// records' `runs`, newest first. The rows are checked as they are read, before any is
    /// passed on: each `seq` wanted must come back, of `sym` (a record that describes other
    /// rows, a day file replaced or renumbered behind it, fails that). If they do not, the
    /// span is scanned instead. (Checking with a count beforehand read every row twice: a
    /// fifth of a `recent 100` while the writer ran.)
    fn recent_of_runs(
        &self,
        sym: i64,
        runs: &[(i64, i64, i64)],
        (a, upto): (i64, i64),
        left: u64,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<u64, ReadError> {
        if runs.is_empty() || left == 0 {
            return Ok(0);
        }
        let take = usize::try_from(left).unwrap_or(usize::MAX);
        let wanted: Vec<i64> = runs
            .iter()
            .rev()
            .flat_map(|&(_, a, n)| (a..a.saturating_add(n)).rev())
            .take(take)
            .collect();
        let seqs: Vec<rusqlite::types::Value> = wanted
            .iter()
            .map(|&q| rusqlite::types::Value::Integer(q))
            .collect();
        let mut rows = Vec::with_capacity(wanted.len());
        self.each_row(
            &format!(
                "SELECT {COLUMNS} FROM ticks WHERE seq IN rarray(?1) AND sym = ?2 \
                 ORDER BY seq DESC"
            ),
            &[&std::rc::Rc::new(seqs), &sym],
            &mut |row| {
                rows.push(row);
                Ok(())
            },
        )?;
        if !rows
            .iter()
            .map(|r| r.seq)
            .eq(wanted.iter().map(|&q| Some(q)))
        {
            tracing::warn!(path = %self.path.display(), "the symbol block tail records do not match the rows: the tail is scanned (run `tickrec check`)");
            return self.scan_newest(sym, (a, upto), left, f);
        }
        for row in &rows {
            f(row).map_err(ReadError::Output)?;
        }
        Ok(rows.len() as u64)
    }

    /// The newest `left` of the ticks at `seqs` (taken), newest first.
    fn by_seqs(
        &self,
        seqs: &mut Vec<rusqlite::types::Value>,
        left: u64,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<u64, ReadError> {
        if seqs.is_empty() || left == 0 {
            seqs.clear();
            return Ok(0);
        }
        let limit = i64::try_from(left).unwrap_or(i64::MAX);
        self.stream(
            &format!(
                "SELECT {COLUMNS} FROM ticks WHERE seq IN rarray(?1) ORDER BY seq DESC LIMIT ?2"
            ),
            &[&std::rc::Rc::new(std::mem::take(seqs)), &limit],
            f,
        )
    }

    /// The newest `n` ticks of `sym`, newest first.
    fn recent_one(
        &self,
        sym: i64,
        n: u64,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<u64, ReadError> {
        if self.directory {
            return self.recent_by_directory(sym, n, f);
        }
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        self.stream(
            &format!("SELECT {COLUMNS} FROM ticks WHERE sym = ?1 ORDER BY seq DESC LIMIT ?2"),
            &[&sym, &limit],
            f,
        )
    }

    pub(super) fn symbol_id(&self, name: &str) -> Option<i64> {
        find_id(&self.symbols, name)
    }

    pub(super) fn source_id(&self, name: &str) -> Option<i64> {
        find_id(&self.sources, name)
    }

    /// Runs `f` outside any snapshot: ends the reader's read transaction, runs `f` (which must
    /// not read the file through `conn`), then begins another, whose snapshot the next read
    /// takes (`Store::with_day` ends it).
    fn outside_snapshot<T>(&self, f: impl FnOnce() -> T) -> Result<T, ReadError> {
        let run = |sql| {
            self.conn
                .prepare_cached(sql)
                .and_then(|mut s| s.execute([]))
                .map_err(|e| ReadError::Store(StoreError::sqlite(&self.path)(e)))
        };
        run("ROLLBACK")?;
        let out = f();
        run("BEGIN")?;
        Ok(out)
    }

    /// The highest seq in this reader's snapshot (0: no tick).
    pub(super) fn max_seq(&self) -> Result<i64, ReadError> {
        self.conn
            .prepare_cached("SELECT coalesce(max(seq), 0) FROM ticks")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(|e| ReadError::Store(StoreError::sqlite(&self.path)(e)))
    }

    /// [`Store::seq_before_time`](super::Store::seq_before_time) through the directory, in the
    /// caller's snapshot; `None` without one. The rows' running max (`cummax`) never decreases
    /// along `seq`, so the first row whose running max reaches `t` is the first whose `ts_max`
    /// does: every tick of the rows before it is earlier than `t`, and it holds the first tick
    /// at or after `t`. Without such a row, that tick is in the tail no row covers yet, or
    /// nowhere. A 10.7M-tick live day: 2.3–2.6 s scanned (`tail --from-time`, whole process),
    /// 0.01 s through the directory.
    pub(super) fn seq_before_time_by_directory(
        &self,
        t: Timestamp,
    ) -> Result<Option<i64>, ReadError> {
        if !self.directory {
            return Ok(None);
        }
        let sq = |e| ReadError::Store(StoreError::sqlite(&self.path)(e));
        let at = t.0.saturating_sub(self.day_start_ns);
        let row: Option<(i64, i64)> = self
            .conn
            .prepare_cached(
                "SELECT first_seq, last_seq FROM batches WHERE first_seq = \
                 (SELECT min(first_seq) FROM batches WHERE cummax >= ?1)",
            )
            .and_then(|mut s| s.query_row([at], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .map_err(sq)?;
        let (from, to) = match row {
            Some(span) => span,
            None => {
                let covered: i64 = self
                    .conn
                    .prepare_cached(
                        "SELECT coalesce((SELECT last_seq FROM batches \
                         ORDER BY first_seq DESC LIMIT 1), 0)",
                    )
                    .and_then(|mut s| s.query_row([], |r| r.get(0)))
                    .map_err(sq)?;
                (covered.saturating_add(1), i64::MAX)
            }
        };
        let first: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT min(seq) FROM ticks WHERE seq BETWEEN ?1 AND ?2 AND ts_event >= ?3",
            )
            .and_then(|mut s| s.query_row([from, to, at], |r| r.get(0)))
            .map_err(sq)?;
        match first {
            Some(f) => Ok(Some(f.saturating_sub(1))),
            None => self.max_seq().map(Some),
        }
    }

    /// Runs `sql` (selecting [`COLUMNS`]) and feeds each decoded row to `f`; returns the count.
    fn stream(
        &self,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<u64, ReadError> {
        self.each_row(sql, params, &mut |row| f(&row))
    }

    /// [`DayReader::stream`] handing over each row (kept without a copy).
    fn each_row(
        &self,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
        f: &mut dyn FnMut(TickRow) -> std::io::Result<()>,
    ) -> Result<u64, ReadError> {
        // Errors map lazily: no allocation per row on the good path.
        let sq = |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        };
        let mut stmt = self.conn.prepare_cached(sql).map_err(sq)?;
        let mut rows = stmt.query(params).map_err(sq)?;
        let mut n = 0;
        while let Some(r) = rows.next().map_err(sq)? {
            let row = self.decode(r).map_err(ReadError::Store)?;
            f(row).map_err(ReadError::Output)?;
            n += 1;
        }
        Ok(n)
    }

    fn decode(&self, r: &rusqlite::Row<'_>) -> Result<TickRow, StoreError> {
        let sq = |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        };
        let row = crate::store::blocks::Row {
            ts_event: r.get(2).map_err(sq)?,
            ts_recv: r.get(3).map_err(sq)?,
            bid: r.get(4).map_err(sq)?,
            ask: r.get(5).map_err(sq)?,
            bid_size: r.get(6).map_err(sq)?,
            ask_size: r.get(7).map_err(sq)?,
            src: r.get(8).map_err(sq)?,
        };
        self.tick_row(r.get(0).map_err(sq)?, r.get(1).map_err(sq)?, &row)
    }

    /// The tick stored as `row` at `seq`, of symbol id `sym`.
    fn tick_row(
        &self,
        seq: i64,
        sym: i64,
        row: &crate::store::blocks::Row,
    ) -> Result<TickRow, StoreError> {
        let corrupt = |why: String| StoreError::Corrupt {
            path: self.path.clone(),
            why: format!("seq {seq}: {why}"),
        };
        let name = |map: &[Option<Arc<str>>], id: i64, what: &str| {
            usize::try_from(id)
                .ok()
                .and_then(|i| map.get(i))
                .and_then(Option::clone)
                .ok_or_else(|| corrupt(format!("unknown {what} id {id}")))
        };
        let dec = |code: Option<i64>, what: &str| -> Result<Option<Decimal>, StoreError> {
            code.map(|c| {
                u64::try_from(c)
                    .ok()
                    .and_then(Decimal::from_code)
                    .ok_or_else(|| corrupt(format!("{what} code {c} is not a packed decimal")))
            })
            .transpose()
        };
        // The file's numbers are not trusted: a sum out of range is a corrupt row.
        let (event, recv) = (row.ts_event, row.ts_recv);
        let ts_event = self
            .day_start_ns
            .checked_add(event)
            .ok_or_else(|| corrupt(format!("ts_event {event} is out of range")))?;
        // The inverse of the writer's wrapping difference: any receive time reads back as
        // written, however far from the event time.
        let ts_recv = ts_event.wrapping_add(recv);
        let bid = dec(row.bid, "bid")?;
        let ask = row
            .ask
            .map(|c| {
                Decimal::from_stored_ask(bid, c)
                    .ok_or_else(|| corrupt(format!("ask {c} is not an ask beside bid {bid:?}")))
            })
            .transpose()?;
        Ok(TickRow {
            seq: Some(seq),
            symbol: name(&self.symbols, sym, "symbol")?,
            source: name(&self.sources, row.src, "source")?,
            ts_event: Timestamp(ts_event),
            ts_recv: Timestamp(ts_recv),
            bid,
            ask,
            bid_size: dec(row.bid_size, "bid_size")?,
            ask_size: dec(row.ask_size, "ask_size")?,
        })
    }
}

/// `(next, updated_ns)` of `origin` in one day file (none before schema version 4).
pub(crate) fn read_mark(conn: &Connection, origin: &str) -> rusqlite::Result<Option<(i64, i64)>> {
    if schema::version(conn)? < 4 {
        return Ok(None);
    }
    conn.query_row(
        "SELECT next, updated_ns FROM marks WHERE origin = ?1",
        [origin],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// Every mark of one day file: origin → (next, updated_ns).
pub(crate) fn read_marks(
    conn: &Connection,
) -> rusqlite::Result<std::collections::BTreeMap<String, (i64, i64)>> {
    if schema::version(conn)? < 4 {
        return Ok(Default::default());
    }
    let mut stmt = conn.prepare("SELECT origin, next, updated_ns FROM marks")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
    rows.collect()
}

pub(super) fn day_stats(
    base: &Path,
    day: &DayFile,
    opts: &SqliteOptions,
) -> Result<DayStats, StoreError> {
    let reader = DayReader::open_day(base, day, &day.path, opts)?;
    let sq = StoreError::sqlite(&day.path);
    // seq is gap-free from 1, so max(seq) is the tick count without a scan.
    let (ticks, range): (i64, (Option<i64>, Option<i64>)) = (|| {
        Ok::<_, rusqlite::Error>((
            reader
                .conn
                .query_row("SELECT coalesce(max(seq), 0) FROM ticks", [], |r| r.get(0))?,
            reader
                .conn
                .query_row("SELECT min(ts_event), max(ts_event) FROM ticks", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?
                .unwrap_or((None, None)),
        ))
    })()
    .map_err(sq)?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut wal = day.path.clone().into_os_string();
    wal.push("-wal");
    let start = reader.day_start_ns;
    Ok(DayStats {
        day: day.day,
        file: day.path.clone(),
        ticks: ticks as u64,
        symbols: reader.symbols.iter().flatten().count() as u64,
        bytes: size(&day.path) + size(Path::new(&wal)),
        first_ts_event: range.0.map(|t| Timestamp(start + t)),
        last_ts_event: range.1.map(|t| Timestamp(start + t)),
        archived: false,
    })
}

/// Every tick of one SQLite day file, in `seq` order.
pub(crate) fn scan_file(
    path: &Path,
    opts: &SqliteOptions,
    f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
) -> Result<u64, ReadError> {
    let reader = DayReader::open(path, opts)?;
    reader.stream(&format!("SELECT {COLUMNS} FROM ticks ORDER BY seq"), &[], f)
}

/// Every tick of one closed SQLite day file in (symbol, ts_event, seq) order, symbols by
/// name: each symbol through the directory, or the indexes of schema/seal.sql (the caller
/// covers what the directory does not name first: `directory::cover`).
pub(crate) fn scan_by_symbol(
    path: &Path,
    opts: &SqliteOptions,
    f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
) -> Result<u64, ReadError> {
    let reader = DayReader::open(path, opts)?;
    let mut names: Vec<(Arc<str>, i64)> = reader
        .symbols
        .iter()
        .enumerate()
        .filter_map(|(i, n)| Some((n.clone()?, i as i64)))
        .collect();
    names.sort();
    let mut n = 0;
    for (_, id) in names {
        n += if reader.directory {
            reader.range_by_directory(Some(&[id]), i64::MIN, i64::MAX, f)?
        } else {
            reader.stream(
                &format!("SELECT {COLUMNS} FROM ticks WHERE sym = ?1 ORDER BY ts_event, seq"),
                &[&id],
                f,
            )?
        };
    }
    Ok(n)
}

/// The decimals `[bid, ask, bid_size, ask_size]` of every tick of one SQLite day file.
pub(crate) fn scan_decimals(
    path: &Path,
    opts: &SqliteOptions,
    f: &mut dyn FnMut([Option<Decimal>; 4]),
) -> Result<(), StoreError> {
    let conn = schema::open_for_read(path, opts)?;
    let sq = StoreError::sqlite(path);
    let mut stmt = conn
        .prepare("SELECT bid, ask, bid_size, ask_size FROM ticks")
        .map_err(StoreError::sqlite(path))?;
    let mut rows = stmt.query([]).map_err(StoreError::sqlite(path))?;
    loop {
        let r = match rows.next() {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(e) => return Err(sq(e)),
        };
        let mut d = [None; 4];
        for i in 0..4 {
            let code: Option<i64> = r.get(i).map_err(StoreError::sqlite(path))?;
            d[i] = match i {
                1 => code.and_then(|c| Decimal::from_stored_ask(d[0], c)),
                _ => code
                    .and_then(|c| u64::try_from(c).ok())
                    .and_then(Decimal::from_code),
            };
        }
        f(d);
    }
}
