//! The SQLite backend: one transaction per batch into the day file of each tick's `ts_event`.
//!
//! Per batch: consecutive ticks of one UTC day become one `BEGIN IMMEDIATE … COMMIT` with a
//! cached prepared insert; `seq` continues the file's sequence with no gap (a rolled-back
//! attempt gives its numbers back). A failed commit is handled by what failed ([`Fault`]):
//! - **storage** (disk full, I/O error, read-only, locked): the run is held and retried, first
//!   `commit_retries` times quickly, then with backoff capped at `stall_retry_max` for as long
//!   as it takes. That is a *stall*: reported once per change of state (`store: stalled (…)`),
//!   unhealthy, and the writer takes nothing more, so intake waits. Only a bounded shutdown
//!   ends it early: then the run, and every later one, is spilled (`spill::Kind::Spill`).
//! - **data** (the database refuses these rows: a constraint, a type): the run is split in
//!   halves at message boundaries, down to single ticks, and a single refused tick is
//!   dead-lettered (`spill::Kind::DeadLetter`).
//! - **file** (this day's file is unusable: not ours, corrupt, a folder): the run is
//!   dead-lettered whole; other days go on.
//!
//! A tick set aside where no location takes it is counted lost and logged with every reason.
//!
//! Day files are opened under the day's shared lock (`store::daylock`), held while open; a
//! tick for an archived day restores the day first, under the exclusive lock.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior};

use super::checkpoint::{Checkpointer, Passing};
use super::daylock::DayLock;
use super::{archive, layout, schema, StoreError, WriterOptions};
use crate::intern::Names;
use crate::pipeline::{Sink, SinkStats};
use crate::shutdown::Shutdown;
use crate::spill::{Kind, SetAside};
use crate::tick::{Decimal, OriginId, Tick, NANOS_PER_DAY};

/// The one place the `ticks` columns are named for an insert.
macro_rules! insert_into_ticks {
    () => {
        "INSERT INTO ticks (seq, sym, ts_event, ts_recv, bid, ask, bid_size, ask_size, src) VALUES "
    };
}
/// The `INSERT` of one `ticks` row (also the archive's rebuild and `check --repair`).
pub(super) const INSERT: &str =
    concat!(insert_into_ticks!(), "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
/// Rows one `INSERT` statement takes ([`insert_rows`]): the statement's own cost (opening the
/// table's cursor, seeking the end, the step and the reset) is paid once for all of them. A
/// loop of 500-row transactions over 3M rows took 601–620 ns of its thread's CPU a row at 100
/// rows a statement, 731–799 at one, 604–697 at 25 and 50 (three rounds, alternating).
pub const ROWS_PER_INSERT: usize = 100;
/// Columns of one `ticks` row in an `INSERT`.
const COLUMNS: usize = 9;
/// The `INSERT` of [`ROWS_PER_INSERT`] rows.
static INSERT_MANY: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| insert_rows(ROWS_PER_INSERT));

/// The `INSERT` of `rows` rows of `ticks` at once (`?` numbered in order, row after row).
pub fn insert_rows(rows: usize) -> String {
    let mut sql = String::from(insert_into_ticks!());
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,?,?,?,?,?)");
    }
    sql
}
const BATCH: &str = "INSERT INTO batches (first_seq, last_seq, ts_min, ts_max, cummax, lag, dir) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const MARK_IMPORT: &str = "INSERT INTO imports (file, ticks) VALUES (?1, ?2) \
                           ON CONFLICT (file) DO UPDATE SET ticks = ticks + excluded.ticks";
const MARK_ORIGIN: &str = "INSERT INTO marks (origin, next, updated_ns) VALUES (?1, ?2, ?3) \
     ON CONFLICT (origin) DO UPDATE SET next = excluded.next, updated_ns = excluded.updated_ns";

/// One open day file and what the writer caches about it.
struct OpenDay {
    day: NaiveDate,
    day_start_ns: i64,
    conn: Connection,
    /// Next `seq` to assign; `max(seq) + 1` of the committed file.
    next_seq: i64,
    /// Process symbol id → this file's symbol id (`-1`: not looked up yet).
    sym_ids: Vec<i64>,
    src_ids: Vec<i64>,
    /// Per transaction: (origin, next position) of the messages it completes (reused).
    marks: Vec<(OriginId, i64)>,
    /// Per transaction: (file symbol id, index in the batch), sorted to write the batch
    /// grouped by symbol (reused).
    order: Vec<(i64, u32)>,
    /// Per transaction: room for [`group_by_symbol`] (reused).
    scratch: Vec<(i64, u32)>,
    /// Per transaction: its directory entries, `(symbol, count)` in `seq` order (reused).
    entries: Vec<(i64, u64)>,
    /// Commits not yet recorded in a directory row (see `store::directory`).
    pending: super::directory::Pending,
    /// Keeps its WAL under the bound.
    wal: WalBound,
    /// The day's block files and their builder (`WriterOptions::symbol_blocks`, when this
    /// writer owns them: `store::blockfile`).
    spool: Option<super::blockfile::Spool>,
    path: PathBuf,
    /// The day's shared lock, held while open (see `store::daylock`).
    _lock: DayLock,
}

/// How long the restarting checkpoint may wait, past half the bound, for a reader on an old
/// snapshot or the background checkpointer. A restart that met the checkpointer's pass used to
/// be busy at once and put off (SQLite calls no busy handler when another checkpoint holds the
/// file); tried again until this deadline instead (`bench --only writer --ticks 3000000
/// --e2e-seconds 5`, seven runs a side, alternating), the largest WAL went from 42.0 MiB in
/// every run to 33.6 MiB, the writer's median 699K → 776K ticks/s with the ceiling's (which
/// restarts the same way) 814K → 883K, and end to end 566–740K → 566–649K (medians 629K and
/// 618K: no change the noise lets show). Not waiting at all was measured against it
/// (`bench --only tails`, three runs a side, alternating): beside four tails, restarts went
/// from ~18 done and ~3 put off per 10M ticks to ~9 and ~37, the WAL grew to 64–128 MiB
/// against 32–48, and the writer kept the same share of its speed alone (beside tails at
/// nice 19, median of nine rounds 0.97 × either way).
const WAL_RESTART_BUSY: std::time::Duration = std::time::Duration::from_millis(100);

/// How long it may wait past the whole bound for a reader on an old snapshot. A pass of the
/// background checkpointer on the file is waited out however long it takes (its copy on a slow
/// disk), and the time it holds the file does not count against this wait: a pass ends, a
/// reader may not. (This wait once started again after every pass it met. When passes grew long
/// enough to be seen at most looks, in a form of the checkpointer that synced the database
/// inside them, a restart beside a reader on an old snapshot waited on from pass to pass:
/// `faults::intake::a_reader_holding_an_old_snapshot_…` took 16 s in CI, where its own waits
/// come to 7.)
/// A restart that met a pass used to be put off at once (SQLite calls no busy handler when
/// another checkpoint holds the file), and a WAL with no reader beside it reached 72 MiB
/// against 64 (`tickrec bench`, the bare loop of its ceiling).
const WAL_OVER_BUSY: std::time::Duration = std::time::Duration::from_secs(1);

/// How often a waiting WAL restart tries again. SQLite's own busy handler sleeps 1, 2, 5, 10,
/// 15, 20, 25… ms between tries, so a restart oversleeps the end of the snapshot it waits for:
/// beside four `tail`s at nice 19 (`bench --only tails`, six runs a side) restarts took 1.3–1.8 s
/// of the writer's run with it and 1.0–1.2 s polling every 100 µs (the writer 0.80–0.87 × its
/// speed alone, then 0.83–0.93 ×, median 0.84 and 0.89); alone, 0.67–0.95 s and 0.61–0.69 s.
const RESTART_POLL: std::time::Duration = std::time::Duration::from_micros(100);

thread_local! {
    /// How long the WAL restart under way on this thread may still wait.
    static RESTART: std::cell::RefCell<Option<Waiting>> = const { std::cell::RefCell::new(None) };
}

/// A WAL restart's wait (see [`poll_until_deadline`]).
struct Waiting {
    deadline: Instant,
    /// When the restart last looked (the time since, if a pass is on, moves the deadline).
    looked: Instant,
    /// The background checkpointer's passes, and the file restarted: set when the restart
    /// waits out a pass on it.
    pass: Option<(Arc<Passing>, PathBuf)>,
}

/// The busy handler of a WAL restart: tries again every [`RESTART_POLL`] until the deadline the
/// restart set, which a pass of the checkpointer on the file pushes back by the time it is seen
/// on (SQLite passes only the number of tries; a plain `fn` cannot hold the deadline).
fn poll_until_deadline(_tries: i32) -> bool {
    let waiting = RESTART.with_borrow_mut(|w| {
        let Some(w) = w else {
            return false;
        };
        let now = Instant::now();
        if w.pass.as_ref().is_some_and(|(p, path)| p.on(path)) {
            w.deadline += now.saturating_duration_since(w.looked);
        }
        w.looked = now;
        now < w.deadline
    });
    if waiting {
        std::thread::sleep(RESTART_POLL);
    }
    waiting
}

/// Checkpoints `conn`'s WAL whole and cuts it to zero (TRUNCATE), waiting at most `wait` for
/// readers on older snapshots and for another checkpoint of the file, looking again every
/// [`RESTART_POLL`]; with `pass`, the time a pass of the background checkpointer on the file is
/// seen on does not count. SQLite's first column: 0 done, 1 still busy.
/// Leaves `conn`'s busy handler cleared (the caller restores its timeout if it goes on using
/// it).
fn truncate_wal_within(
    conn: &Connection,
    wait: std::time::Duration,
    pass: Option<(Arc<Passing>, PathBuf)>,
) -> rusqlite::Result<i64> {
    let now = Instant::now();
    RESTART.set(Some(Waiting {
        deadline: now + wait,
        looked: now,
        pass,
    }));
    let done = conn
        .busy_handler(Some(poll_until_deadline))
        .and_then(|_| loop {
            let busy = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            })?;
            // Busy at once when another checkpoint holds the file: SQLite calls no busy handler
            // for that.
            if busy == 0 || !poll_until_deadline(0) {
                return Ok(busy);
            }
        });
    RESTART.set(None);
    done
}

/// Keeps one day file's WAL under `max_bytes`. The background checkpointer's PASSIVE checkpoints
/// copy pages behind the writer but, under sustained writes, never catch up with it, and SQLite
/// restarts a WAL only once everything in it is copied: the WAL grows without end (180 MiB in a
/// 10M-tick run before this). After each commit the writer looks at the WAL's size (one `stat`,
/// about a microsecond against a commit's hundreds); past half the bound it runs, between two
/// commits so that no writer contends, a TRUNCATE checkpoint: it copies the few pages PASSIVE had
/// not and cuts the WAL to zero. It waits at most `WAL_RESTART_BUSY` (100 ms) for the background
/// checkpointer or a reader on an old snapshot; once the next commit (as large as the larger of
/// the last two) would pass the whole bound, it waits out any pass of the checkpointer on the
/// file, then up to `WAL_OVER_BUSY` (1 s) for readers (the writer stalls, the queue takes the
/// feed: a bench run on a slow disk saw 82 MiB against 64 with only the short wait). When a
/// reader holds its snapshot longer, the next try waits until the WAL has grown by another
/// eighth of the bound (a long wait: another half): a stuck
/// reader costs the feed a pause per stretch of WAL, not one per commit (waiting at every commit
/// took 100 ms of each: `faults::intake::a_reader_holding_an_old_snapshot_…`). While it waits it
/// looks again every 100 µs (`RESTART_POLL`, `poll_until_deadline`).
///
/// Restarting the WAL in place instead (RESTART: the file keeps its length and is written over;
/// the size counted in frames by SQLite's WAL hook, `journal_size_limit` cutting a file a stuck
/// reader let grow) was measured against this in full `tickrec bench` runs, two a side,
/// alternating: the bare-loop ceiling 1.53–1.65M → 1.79–1.82M ticks/s, the writer alone
/// 1.43–1.48M → 1.59–1.61M, but end to end unchanged (1.28–1.30M → 1.30–1.33M) and commit p99
/// under that load 0.58 ms → 2.1–2.2 ms. The live path gains nothing and its commits get
/// slower: the WAL is truncated.
#[derive(Debug)]
pub struct WalBound {
    max_bytes: u64,
    /// The background checkpointer's passes, when one checkpoints the file.
    passing: Option<Arc<Passing>>,
    /// `WAL_OVER_BUSY`.
    over_busy: std::time::Duration,
    /// The WAL size from which the next try is made, and the next long wait.
    next_try: u64,
    next_long: u64,
    /// The WAL's size after the last commit, and what the last two commits added to it.
    last_bytes: u64,
    grew: [u64; 2],
}

impl WalBound {
    /// `passing`: the passes of the background checkpointer of the file, if it has one.
    pub fn new(max_bytes: u64, passing: Option<Arc<Passing>>) -> WalBound {
        WalBound {
            max_bytes,
            passing,
            over_busy: WAL_OVER_BUSY,
            next_try: 0,
            next_long: 0,
            last_bytes: 0,
            grew: [0; 2],
        }
    }

    /// After a commit on `conn`, writing `path`; `busy` is the connection's usual timeout.
    pub fn after_commit(
        &mut self,
        conn: &Connection,
        path: &Path,
        busy: std::time::Duration,
    ) -> WalSeen {
        let wal =
            std::fs::metadata(crate::fsutil::with_suffix(path, "-wal")).map_or(0, |m| m.len());
        // Over the bound already, or would be after a commit like the last two: waiting only
        // once past it let the WAL reach 64.01 MiB against 64 beside four tails (one run of
        // `tickrec bench`).
        self.grew = [self.grew[1], wal.saturating_sub(self.last_bytes)];
        self.last_bytes = wal;
        let next = wal.saturating_add(self.grew[0].max(self.grew[1]));
        let over = next > self.max_bytes && wal >= self.next_long;
        if wal <= self.max_bytes / 2 || (!over && wal < self.next_try) {
            return WalSeen {
                bytes: wal,
                restart: None,
            };
        }
        let (wait, pass) = if over {
            let pass = self
                .passing
                .as_ref()
                .map(|p| (Arc::clone(p), path.to_owned()));
            (self.over_busy, pass)
        } else {
            (WAL_RESTART_BUSY, None)
        };
        let started = Instant::now();
        let restarted = truncate_wal_within(conn, wait, pass);
        let took = started.elapsed();
        if let Err(e) = conn.busy_timeout(busy) {
            tracing::warn!(file = %path.display(), error = %e, "restoring the busy timeout failed");
        }
        if matches!(restarted, Ok(0)) {
            (self.next_try, self.next_long, self.last_bytes) = (0, 0, 0);
            return WalSeen {
                bytes: 0,
                restart: Some(Restart { done: true, took }),
            };
        }
        self.next_try = wal.saturating_add(self.max_bytes / 8);
        if over {
            self.next_long = wal.saturating_add(self.max_bytes / 2);
            tracing::warn!(
                file = %path.display(),
                wal,
                max_bytes = self.max_bytes,
                "WAL over its bound: a reader holds an old snapshot; restart postponed"
            );
        } else {
            tracing::debug!(file = %path.display(), wal, "WAL restart postponed (busy)");
        }
        WalSeen {
            bytes: wal,
            restart: Some(Restart { done: false, took }),
        }
    }
}

/// What [`WalBound::after_commit`] saw and did: the WAL's size after it, and the restart it
/// tried, if it tried one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalSeen {
    pub bytes: u64,
    pub restart: Option<Restart>,
}

/// One try at restarting the WAL: done, or put off because a reader held an old snapshot past
/// the wait; `took` includes the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restart {
    pub done: bool,
    pub took: std::time::Duration,
}

impl WalSeen {
    /// Into a backend's counters (`SinkStats`'s `wal_*`).
    pub fn record(self, stats: &SinkStats) {
        stats.wal_bytes.set(self.bytes);
        if let Some(Restart { done, took }) = self.restart {
            if done {
                stats.wal_restarts.incr();
            } else {
                stats.wal_restarts_postponed.incr();
            }
            let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
            stats.wal_restart_ns.add(ns);
        }
    }
}

/// The SQLite storage backend (see the module doc).
pub struct SqliteSink {
    base: PathBuf,
    names: Arc<Names>,
    opts: WriterOptions,
    stats: Arc<SinkStats>,
    /// Open day files, least recently used first.
    open: Vec<OpenDay>,
    /// The latest day written so far: only for counting rotations and late ticks.
    newest_day: Option<NaiveDate>,
    /// Background WAL checkpoints of the open day files (started with the first one).
    checkpointer: Option<Checkpointer>,
    set_aside: SetAside,
    /// Set when a bounded shutdown gave up on a stalled store: every later run is spilled
    /// without another attempt.
    given_up: Option<String>,
    /// Spill files written, each reported once.
    spilled_to: Vec<PathBuf>,
    /// Told of every commit (the publisher of `record --publish`).
    observer: Option<Arc<dyn CommitObserver>>,
}

/// What a failed write says about where the fault is (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Storage,
    Data,
    File,
}

/// Sorts a write error into storage, data or file (see the module doc).
pub fn classify(err: &StoreError) -> Fault {
    match err {
        StoreError::Sqlite { source, .. } => match source {
            rusqlite::Error::SqliteFailure(e, _) => match e.code {
                ErrorCode::ConstraintViolation
                | ErrorCode::TypeMismatch
                | ErrorCode::TooBig
                | ErrorCode::ParameterOutOfRange => Fault::Data,
                ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => Fault::File,
                _ => Fault::Storage,
            },
            // Binding or naming failures: about these rows, not the disk.
            _ => Fault::Data,
        },
        StoreError::Io { .. } => Fault::Storage,
        StoreError::Foreign { .. }
        | StoreError::WrongDay { .. }
        | StoreError::TooNew { .. }
        | StoreError::TooOld { .. }
        | StoreError::Corrupt { .. } => Fault::File,
    }
}

/// `<what failed>, <file>`: the reason in a stall report.
fn reason(err: &StoreError) -> String {
    match err {
        StoreError::Sqlite { path, .. } => {
            format!("{}, {}", super::reader::describe(path, err), path.display())
        }
        StoreError::Io { path, source } => format!("{source}, {}", path.display()),
        other => other.to_string(),
    }
}

impl SqliteSink {
    pub fn new(base: impl Into<PathBuf>, names: Arc<Names>, opts: WriterOptions) -> SqliteSink {
        let base = base.into();
        let stats = SinkStats::default();
        stats.wal_bound_bytes.set(opts.wal_max_bytes);
        SqliteSink {
            set_aside: SetAside::new(&opts.dead_letter_dirs, &base),
            base,
            names,
            opts,
            stats: Arc::new(stats),
            open: Vec::new(),
            newest_day: None,
            checkpointer: None,
            given_up: None,
            spilled_to: Vec::new(),
            observer: None,
        }
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Tells `observer` of every commit (see [`CommitObserver`]).
    pub fn with_observer(mut self, observer: Arc<dyn CommitObserver>) -> SqliteSink {
        self.observer = Some(observer);
        self
    }

    /// How many ticks of the source file `file` are already committed in `day`'s file
    /// (`tickrec migrate` resumes from there). A day without a file has none.
    pub fn imported(&mut self, day: NaiveDate, file: &str) -> Result<u64, StoreError> {
        if !layout::day_path(&self.base, day).exists()
            && layout::existing_archive(&self.base, day).is_none()
        {
            return Ok(0);
        }
        let idx = self.open_day(day)?;
        let path = layout::day_path(&self.base, day);
        self.open[idx]
            .conn
            .query_row("SELECT ticks FROM imports WHERE file = ?1", [file], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .map(|n| n.unwrap_or(0).max(0) as u64)
            .map_err(StoreError::sqlite(path))
    }

    /// Commits `ticks` (all of `day`) as part of importing the source file `file`: one
    /// transaction holding the ticks and the file's import counter. Transient failures are
    /// retried; anything else is returned, and nothing of the batch is committed.
    pub fn import_batch(
        &mut self,
        day: NaiveDate,
        ticks: &[Tick],
        file: &str,
    ) -> Result<(), StoreError> {
        let mut delay = self.opts.retry_backoff;
        let mut attempt = 0;
        loop {
            match self.commit_marked(day, ticks, Some(file)) {
                Ok(()) => return Ok(()),
                Err(e) if attempt < self.opts.commit_retries && classify(&e) == Fault::Storage => {
                    attempt += 1;
                    self.stats.commit_retries.incr();
                    std::thread::sleep(delay);
                    delay = delay.saturating_mul(2);
                }
                Err(e) => {
                    self.stats.write_errors.incr();
                    return Err(e);
                }
            }
        }
    }

    /// Writes consecutive same-day runs of `batch`, each by [`Self::write_run`].
    fn write_runs(&mut self, batch: &[Tick], abort: &Shutdown) {
        let mut rest = batch;
        while let Some(first) = rest.first() {
            let day = first.ts_event.day();
            let start = crate::tick::Timestamp::start_of_day(day).0;
            let len = rest
                .iter()
                .position(|t| t.ts_event.0 < start || t.ts_event.0 - start >= NANOS_PER_DAY)
                .unwrap_or(rest.len());
            let (run, tail) = rest.split_at(len);
            self.note_day(day, run.len());
            self.write_run(day, run, abort);
            rest = tail;
        }
    }

    fn note_day(&mut self, day: NaiveDate, n: usize) {
        match self.newest_day {
            Some(newest) if day > newest => {
                self.stats.db_rotations.incr();
                tracing::info!(%day, previous = %newest, "rotated to a new day file");
                self.newest_day = Some(day);
            }
            Some(newest) if day < newest => self.stats.late_ticks.add(n as u64),
            Some(_) => {}
            None => self.newest_day = Some(day),
        }
    }

    /// Starts the background checkpointer on first use, and has it watch `path`.
    fn checkpoint(&mut self, path: &Path) {
        let Some(interval) = self.opts.background_checkpoint else {
            return;
        };
        if self.checkpointer.is_none() {
            match Checkpointer::start(interval, self.opts.sqlite.busy_timeout) {
                Ok(c) => self.checkpointer = Some(c),
                Err(e) => tracing::error!(error = %e, "cannot start the checkpointer thread"),
            }
        }
        if let Some(c) = &self.checkpointer {
            c.add(path.to_owned());
        }
    }

    /// Commits one same-day run, however long the store needs (see the module doc).
    fn write_run(&mut self, day: NaiveDate, ticks: &[Tick], abort: &Shutdown) {
        let mut delay = self.opts.retry_backoff;
        let mut attempt = 0u32;
        loop {
            if let Some(why) = self.given_up.clone() {
                self.put_aside(Kind::Spill, day, ticks, &why);
                return;
            }
            let err = match self.commit(day, ticks) {
                Ok(()) => {
                    if let Some(d) = self.stats.stall.clear() {
                        tracing::warn!(%day, "store: resumed after {:.1}s stalled", d.as_secs_f64());
                    }
                    return;
                }
                Err(e) => e,
            };
            self.stats.write_errors.incr();
            match classify(&err) {
                Fault::Data => {
                    tracing::warn!(%day, ticks = ticks.len(), error = %err, "the database refused the batch; splitting it");
                    self.split(day, ticks, &err, abort);
                    return;
                }
                Fault::File => {
                    tracing::error!(%day, ticks = ticks.len(), error = %err, "the day file is unusable; setting its ticks aside");
                    self.put_aside(Kind::DeadLetter, day, ticks, &err.to_string());
                    return;
                }
                Fault::Storage => {}
            }
            if abort.is_requested() {
                tracing::error!(%day, error = %err, "store: giving up at shutdown; spilling what is held");
                self.given_up = Some(format!("store unwritable at shutdown: {}", reason(&err)));
                continue;
            }
            attempt += 1;
            if attempt > self.opts.commit_retries {
                let why = reason(&err);
                if self.stats.stall.set(&why) {
                    tracing::error!(%day, held = ticks.len(), "store: stalled ({why}); holding the batch and retrying, intake waits");
                }
            } else {
                self.stats.commit_retries.incr();
                tracing::warn!(%day, attempt, error = %err, "commit failed; retrying");
            }
            abort.wait_timeout(delay);
            delay = delay.saturating_mul(2).min(self.opts.stall_retry_max);
        }
    }

    /// Data refusals: halves at message boundaries are tried once each, recursively; a single
    /// refused tick is dead-lettered. A half that meets a storage fault goes back to
    /// [`Self::write_run`] (and may stall there).
    fn split(&mut self, day: NaiveDate, ticks: &[Tick], err: &StoreError, abort: &Shutdown) {
        // A single tick, or a single message refused: it goes aside whole, so that no part of a
        // message is ever committed without the rest (its position mark would not cover it).
        if ticks.len() == 1 || is_one_message(ticks) {
            self.put_aside(Kind::DeadLetter, day, ticks, &err.to_string());
            return;
        }
        let (a, b) = ticks.split_at(message_boundary(ticks));
        for half in [a, b] {
            if let Err(e) = self.commit(day, half) {
                self.stats.write_errors.incr();
                match classify(&e) {
                    Fault::Data => self.split(day, half, &e, abort),
                    Fault::File => self.put_aside(Kind::DeadLetter, day, half, &e.to_string()),
                    Fault::Storage => self.write_run(day, half, abort),
                }
            }
        }
    }

    /// Writes `ticks` to a dead-letter or spill file, or counts them lost.
    fn put_aside(&mut self, kind: Kind, day: NaiveDate, ticks: &[Tick], why: &str) {
        let n = ticks.len() as u64;
        match self.set_aside.write(kind, day, &self.names, ticks, why) {
            Ok(path) => match kind {
                Kind::DeadLetter => {
                    self.stats.dead_lettered.add(n);
                    tracing::error!(file = %path.display(), ticks = n, error = why, "ticks refused; written to the dead-letter file");
                }
                Kind::Spill => {
                    self.stats.ticks_spilled.add(n);
                    if !self.spilled_to.contains(&path) {
                        tracing::error!(file = %path.display(), reason = why, "spilling uncommitted ticks (re-ingest with `tickrec ingest FILE`)");
                        self.spilled_to.push(path);
                    }
                }
            },
            Err(e) => {
                self.stats.ticks_lost.add(n);
                tracing::error!(%day, ticks = n, reason = why, tried = %e, "ticks LOST: no location could take them");
            }
        }
    }

    /// One transaction with all of `ticks` (all of `day`). On failure the file is closed, so the
    /// next attempt starts from a fresh connection and re-reads `seq` and the id tables.
    fn commit(&mut self, day: NaiveDate, ticks: &[Tick]) -> Result<(), StoreError> {
        self.commit_marked(day, ticks, None)
    }

    /// [`Self::commit`], also adding `ticks.len()` to the import counter of `import_file`
    /// in the same transaction.
    fn commit_marked(
        &mut self,
        day: NaiveDate,
        ticks: &[Tick],
        import_file: Option<&str>,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let idx = self.open_day(day)?;
        let names = &self.names;
        let od = &mut self.open[idx];
        let result = insert_all(od, names, ticks, import_file);
        match result {
            Ok(next_seq) => {
                let first = od.next_seq;
                od.next_seq = next_seq;
                if let Some(o) = &self.observer {
                    o.committed(day, first, ticks, &od.order);
                }
                self.stats.ticks_stored.add(ticks.len() as u64);
                self.stats.batches_committed.incr();
                self.stats
                    .commit_latency
                    .record_ns(started.elapsed().as_nanos() as u64);
                od.wal
                    .after_commit(&od.conn, &od.path, self.opts.sqlite.busy_timeout)
                    .record(&self.stats);
                Ok(())
            }
            Err(e) => {
                let od = self.open.remove(idx);
                if let Some(c) = &self.checkpointer {
                    c.remove(&od.path);
                }
                Err(StoreError::Sqlite {
                    path: od.path.clone(),
                    source: e,
                })
            }
        }
    }

    /// Index in `self.open` of `day`'s file, opening it (and evicting the LRU) if needed.
    fn open_day(&mut self, day: NaiveDate) -> Result<usize, StoreError> {
        if let Some(i) = self.open.iter().position(|o| o.day == day) {
            let od = self.open.remove(i);
            self.open.push(od);
            return Ok(self.open.len() - 1);
        }
        while self.open.len() >= self.opts.max_open_days.max(1) {
            let od = self.open.remove(0);
            self.close_day(od);
        }
        let path = layout::day_path(&self.base, day);
        let lock = self.lock_for_write(day)?;
        if path.is_dir() {
            return Err(StoreError::Foreign {
                path,
                why: "it is a directory".into(),
            });
        }
        let conn = schema::open_for_write(&path, day, &self.opts.sqlite)?;
        if self.opts.background_checkpoint.is_some() {
            // The checkpointer thread does it, outside commits.
            conn.pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(StoreError::sqlite(&path))?;
        }
        let (day_start_ns, max_seq, covered, seed) =
            (|| -> rusqlite::Result<(i64, i64, i64, u64)> {
                // What the directory rows cover before anything is added: the symbol blocks
                // beside the file are cut back to it (store::blockfile).
                let covered = conn
                    .query_row(
                        "SELECT last_seq FROM batches ORDER BY first_seq DESC LIMIT 1",
                        [],
                        |r| r.get(0),
                    )
                    .optional()?
                    .unwrap_or(0);
                // Ticks a crash left without their directory row become a span to scan, so that
                // this writer's own commits get rows of their own.
                let tx = conn.unchecked_transaction()?;
                record_directory(&tx, &super::directory::Pending::default())?;
                tx.commit()?;
                Ok((
                    schema::day_start_ns(&conn)?,
                    conn.query_row("SELECT coalesce(max(seq), 0) FROM ticks", [], |r| r.get(0))?,
                    covered,
                    super::blockfile::tail_seed(&conn)?,
                ))
            })()
            .map_err(StoreError::sqlite(&path))?;
        let spool = match self.opts.symbol_blocks {
            false => None,
            true => match super::blockfile::Spool::open(&path, covered, seed) {
                Ok(Some(spool)) => Some(spool),
                Ok(None) => {
                    tracing::info!(%day, "another writer owns this day's symbol blocks: this one writes none");
                    None
                }
                Err(e) => {
                    tracing::warn!(%day, error = %e, "symbol block files not opened: this day's queries read its rows");
                    None
                }
            },
        };
        self.checkpoint(&path);
        self.open.push(OpenDay {
            day,
            day_start_ns,
            conn,
            next_seq: max_seq + 1,
            sym_ids: Vec::new(),
            src_ids: Vec::new(),
            marks: Vec::new(),
            order: Vec::new(),
            scratch: Vec::new(),
            entries: Vec::new(),
            pending: super::directory::Pending::default(),
            wal: WalBound::new(
                self.opts.wal_max_bytes,
                self.checkpointer.as_ref().map(Checkpointer::passing),
            ),
            spool,
            path,
            _lock: lock,
        });
        Ok(self.open.len() - 1)
    }

    /// The day's shared lock, with the day file present or free to create: an archived day
    /// is restored first under the exclusive lock (see `store::daylock`).
    fn lock_for_write(&self, day: NaiveDate) -> Result<DayLock, StoreError> {
        let wait = self.opts.sqlite.busy_timeout;
        let lock_err = |e| StoreError::Io {
            path: layout::lock_path(&self.base, day),
            source: e,
        };
        let db = layout::day_path(&self.base, day);
        let archived = || layout::existing_archive(&self.base, day).is_some();
        loop {
            let shared = DayLock::shared(&self.base, day, wait).map_err(lock_err)?;
            if db.exists() || !archived() {
                return Ok(shared);
            }
            drop(shared);
            let exclusive = DayLock::exclusive(&self.base, day, wait).map_err(lock_err)?;
            if !db.exists() && archived() {
                tracing::warn!(%day, "a tick for an archived day: restoring its day file");
                archive::restore_locked(&self.base, day, &self.opts.sqlite, &exclusive)?;
            }
        }
    }

    fn close_day(&self, od: OpenDay) {
        if let Some(c) = &self.checkpointer {
            c.remove(&od.path);
        }
        close_day(od);
    }
}

/// Told of every commit, on the writer thread, right after it: what it holds and the `seq` each
/// tick got. `order` lists `(file symbol id, index into ticks)` in `seq` order, from
/// `first_seq`. Must return quickly (the writer waits for it).
pub trait CommitObserver: Send + Sync {
    fn committed(&self, day: NaiveDate, first_seq: i64, ticks: &[Tick], order: &[(i64, u32)]);
}

/// True when `ticks` are the ticks of one message (of one origin), and nothing else.
fn is_one_message(ticks: &[Tick]) -> bool {
    let Some(last) = ticks.last() else {
        return false;
    };
    let origin = last.msg.origin();
    origin != OriginId::NONE
        && ticks
            .iter()
            .all(|t| t.msg.origin() == origin && t.msg.seq() == last.msg.seq())
}

/// Where to cut `ticks` in two: the message boundary nearest the middle, so that a message's
/// ticks stay together (see [`is_one_message`] for a run that is one message).
fn message_boundary(ticks: &[Tick]) -> usize {
    let mid = ticks.len() / 2;
    let ends_message = |i: usize| !ticks[i - 1].msg.more_follow();
    (mid..ticks.len())
        .find(|&i| ends_message(i))
        .or_else(|| (1..mid).rev().find(|&i| ends_message(i)))
        .unwrap_or(mid.max(1))
}

/// Commits stream positions that no tick carries: a FIX session's final inbound number after
/// a clean stop, moved on by admin messages alone (the counterparty's Logout), so that the
/// next start asks for nothing it already has. Written into the newest plain day file, under
/// the day's shared lock, stamped with the wall clock so that it wins recovery. Precondition:
/// every tick of these streams up to the positions is committed (the caller checks the
/// accounting) and no position moves backwards (the caller compares with
/// `Store::next_position`). Returns false when there is no day file to hold them.
pub fn commit_positions(
    base: &Path,
    opts: &WriterOptions,
    positions: &[(String, u64)],
) -> Result<bool, StoreError> {
    if positions.is_empty() {
        return Ok(false);
    }
    let days = layout::list_days(base).map_err(StoreError::io(base))?;
    let Some(day) = days.iter().rev().find(|d| !d.archived) else {
        return Ok(false);
    };
    let _lock =
        DayLock::shared(base, day.day, opts.sqlite.busy_timeout).map_err(|e| StoreError::Io {
            path: layout::lock_path(base, day.day),
            source: e,
        })?;
    let mut conn = schema::open_for_write(&day.path, day.day, &opts.sqlite)?;
    let now = crate::clock::Clock::now(&crate::clock::SystemClock).0;
    let sq = StoreError::sqlite(&day.path);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::sqlite(&day.path))?;
    for (origin, next) in positions {
        let next = i64::try_from(*next).unwrap_or(i64::MAX);
        tx.execute(MARK_ORIGIN, rusqlite::params![origin, next, now])
            .map_err(StoreError::sqlite(&day.path))?;
    }
    tx.commit().map_err(sq)?;
    Ok(true)
}

/// Writes `ticks` to the day file in one IMMEDIATE transaction, grouped by symbol (each
/// symbol's ticks keep their arrival order), so that one symbol's ticks of this commit are one
/// contiguous `seq` range; the commit joins the pending ones of the file's directory, which get
/// a `batches` row every few commits (see `store::directory`). Stream positions (`marks`) are
/// taken in arrival order, before the grouping. Returns the next free `seq` on commit.
///
/// Long (~100 lines) on purpose: everything one commit holds (ticks, marks, directory entry) in one
/// place, so the transaction invariant of ARCHITECTURE.md reads at once.
fn insert_all(
    od: &mut OpenDay,
    names: &Names,
    ticks: &[Tick],
    import_file: Option<&str>,
) -> rusqlite::Result<i64> {
    let tx = od
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    let first = od.next_seq;
    let mut seq = first;
    od.marks.clear();
    od.order.clear();
    for (i, t) in ticks.iter().enumerate() {
        let sym = file_id(&tx, &mut od.sym_ids, t.symbol.0, "symbols", || {
            names.symbol_name(t.symbol)
        })?;
        od.order.push((sym, i as u32));
        let origin = t.msg.origin();
        if origin != OriginId::NONE && !t.msg.more_follow() {
            // The last tick of a message completes it. Ticks of one origin arrive in
            // position order: the last complete message wins. (48-bit positions: +1 fits.)
            let next = t.msg.seq() as i64 + 1;
            match od.marks.iter_mut().find(|m| m.0 == origin) {
                Some(m) => m.1 = next,
                None => od.marks.push((origin, next)),
            }
        }
    }
    group_by_symbol(&mut od.order, &mut od.scratch);
    if let Some(spool) = &mut od.spool {
        spool.begin();
    }
    // When another writer's commits came between, the pending ones get their row first.
    // (On any error the caller drops this OpenDay, and its spool with it: the next opening
    // covers what has no row, and cuts the block files back.)
    if od.pending.commits > 0 && od.pending.last_seq + 1 != first {
        let row = record_directory(&tx, &od.pending)?;
        od.pending.clear();
        if let (Some(spool), Some((a, b, whole))) = (&mut od.spool, row) {
            spool.row(a, b, whole);
        }
    }
    od.entries.clear();
    let (mut ts_min, mut ts_max) = (i64::MAX, i64::MIN);
    {
        // Whole statements of ROWS_PER_INSERT rows first, then the rest one row at a time.
        let mut many = tx.prepare_cached(&INSERT_MANY)?;
        let mut one = tx.prepare_cached(INSERT)?;
        let whole = od.order.len() - od.order.len() % ROWS_PER_INSERT;
        for (n, &(sym, i)) in od.order.iter().enumerate() {
            let t = &ticks[i as usize];
            let src = file_id(&tx, &mut od.src_ids, t.source.0, "sources", || {
                names.source_name(t.source)
            })?;
            let code = |d: Option<Decimal>| d.map(|d| d.code() as i64);
            let row = super::blocks::Row {
                ts_event: t.ts_event.0 - od.day_start_ns,
                ts_recv: t.ts_recv.0.wrapping_sub(t.ts_event.0),
                bid: code(t.bid),
                ask: Decimal::stored_ask(t.bid, t.ask),
                bid_size: code(t.bid_size),
                ask_size: code(t.ask_size),
                src,
            };
            (ts_min, ts_max) = (ts_min.min(row.ts_event), ts_max.max(row.ts_event));
            let (stmt, at) = if n < whole {
                (&mut many, (n % ROWS_PER_INSERT) * COLUMNS)
            } else {
                (&mut one, 0)
            };
            stmt.raw_bind_parameter(at + 1, seq)?;
            stmt.raw_bind_parameter(at + 2, sym)?;
            stmt.raw_bind_parameter(at + 3, row.ts_event)?;
            stmt.raw_bind_parameter(at + 4, row.ts_recv)?;
            stmt.raw_bind_parameter(at + 5, row.bid)?;
            stmt.raw_bind_parameter(at + 6, row.ask)?;
            stmt.raw_bind_parameter(at + 7, row.bid_size)?;
            stmt.raw_bind_parameter(at + 8, row.ask_size)?;
            stmt.raw_bind_parameter(at + 9, row.src)?;
            if n >= whole || n % ROWS_PER_INSERT == ROWS_PER_INSERT - 1 {
                stmt.raw_execute()?;
            }
            if let Some(spool) = &mut od.spool {
                spool.push(sym, seq, &row);
            }
            seq += 1;
            match od.entries.last_mut() {
                Some(e) if e.0 == sym => e.1 += 1,
                _ => od.entries.push((sym, 1)),
            }
        }
    }
    if let Some(spool) = &mut od.spool {
        spool.ticks_done();
    }
    // The directory: this commit joins the pending ones; every few commits they get a row.
    let pending = &mut od.pending;
    if seq > first {
        if pending.commits == 0 {
            pending.first_seq = first;
            (pending.ts_min, pending.ts_max) = (ts_min, ts_max);
        }
        pending.last_seq = seq - 1;
        pending.ts_min = pending.ts_min.min(ts_min);
        pending.ts_max = pending.ts_max.max(ts_max);
        pending.commits += 1;
        super::directory::push_commit(&mut pending.dir, &od.entries);
        if pending.full() {
            let row = record_directory(&tx, pending)?;
            pending.clear();
            if let (Some(spool), Some((a, b, whole))) = (&mut od.spool, row) {
                spool.row(a, b, whole);
            }
        }
    }
    if !od.marks.is_empty() {
        let now = crate::clock::Clock::now(&crate::clock::SystemClock).0;
        let mut mark = tx.prepare_cached(MARK_ORIGIN)?;
        for &(origin, next) in &od.marks {
            let name = names.origin_name(origin).ok_or_else(|| {
                rusqlite::Error::InvalidParameterName(format!("origin id {} has no name", origin.0))
            })?;
            mark.execute(rusqlite::params![&*name, next, now])?;
        }
    }
    if let Some(file) = import_file {
        tx.prepare_cached(MARK_IMPORT)?
            .execute(rusqlite::params![file, ticks.len() as i64])?;
    }
    tx.commit()?;
    if let Some(spool) = &mut od.spool {
        spool.committed();
    }
    Ok(seq)
}

/// Orders `order` by (symbol, arrival): one symbol's ticks stay in arrival order. A counting
/// sort by file symbol id (dense from 0) when the ids are few beside the batch (the usual
/// case), else a comparison sort: the sort was 3% of the writer's time, the counting one is
/// a fifth of that.
fn group_by_symbol(order: &mut Vec<(i64, u32)>, scratch: &mut Vec<(i64, u32)>) {
    let max = order.iter().map(|&(s, _)| s).max().unwrap_or(0);
    let Some(ids) = usize::try_from(max)
        .ok()
        .and_then(|m| m.checked_add(1))
        .filter(|&ids| ids <= order.len().saturating_mul(4).max(256))
    else {
        // The pairs are unique: the unstable sort gives the stable order.
        order.sort_unstable();
        return;
    };
    if order.iter().any(|&(s, _)| s < 0) {
        order.sort_unstable();
        return;
    }
    let mut starts = vec![0u32; ids + 1];
    for &(s, _) in order.iter() {
        starts[s as usize + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    scratch.clear();
    scratch.resize(order.len(), (0, 0));
    for &(s, i) in order.iter() {
        let at = &mut starts[s as usize];
        scratch[*at as usize] = (s, i);
        *at += 1;
    }
    std::mem::swap(order, scratch);
}

/// Records `pending` (commits this writer made) in a directory row, inside the caller's
/// transaction, keeping the rows a gap-free tiling of `seq` 1..=k: a row starts right after
/// the last one. When that is where `pending` starts, the row holds its directory; when ticks
/// without a row come first (another writer's pending commits, a crash's leftovers), one row
/// to scan covers them and `pending` together; what is already covered is left alone. With an
/// empty `pending`, covers any such ticks with a row to scan. Returns the row written, as
/// `(first, last, whether it holds pending's directory)`.
pub(super) fn record_directory(
    tx: &Connection,
    pending: &super::directory::Pending,
) -> rusqlite::Result<Option<(i64, i64, bool)>> {
    let (covered, cummax, lag): (i64, i64, i64) = tx
        .prepare_cached(
            "SELECT last_seq, cummax, lag FROM batches ORDER BY first_seq DESC LIMIT 1",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?
        .unwrap_or((0, i64::MIN, 0));
    let start = covered + 1;
    let (last, ts_min, ts_max, dir) = if pending.commits > 0 && start == pending.first_seq {
        (
            pending.last_seq,
            pending.ts_min,
            pending.ts_max,
            Some(&pending.dir[..]),
        )
    } else {
        let last = if pending.commits > 0 {
            pending.last_seq
        } else {
            tx.query_row("SELECT coalesce(max(seq), 0) FROM ticks", [], |r| r.get(0))?
        };
        if last < start {
            return Ok(None);
        }
        let (lo, hi): (i64, i64) = tx.query_row(
            "SELECT min(ts_event), max(ts_event) FROM ticks WHERE seq BETWEEN ?1 AND ?2",
            [start, last],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        (last, lo, hi, None)
    };
    let (cummax, lag) = super::directory::running(cummax, lag, ts_min, ts_max);
    tx.prepare_cached(BATCH)?.execute(rusqlite::params![
        start, last, ts_min, ts_max, cummax, lag, dir
    ])?;
    Ok(Some((start, last, dir.is_some())))
}

/// Records the commits still pending in a directory row (at close; a failure leaves them to
/// be read by scanning, and covered when the file is next opened for writing).
fn flush_directory(od: &mut OpenDay) -> rusqlite::Result<()> {
    if od.pending.commits == 0 {
        return Ok(());
    }
    let tx = od
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    let row = record_directory(&tx, &od.pending)?;
    tx.commit()?;
    od.pending.clear();
    if let (Some(spool), Some((a, b, whole))) = (&mut od.spool, row) {
        spool.row(a, b, whole);
        spool.committed();
    }
    Ok(())
}

/// This file's id for a process-wide name id, inserting the name on first use. Ids are dense
/// from 0 so that the first two names cost no payload byte per tick.
fn file_id(
    tx: &Connection,
    cache: &mut Vec<i64>,
    global: u32,
    table: &'static str,
    name: impl FnOnce() -> Option<Arc<str>>,
) -> rusqlite::Result<i64> {
    let g = global as usize;
    if let Some(&id) = cache.get(g) {
        if id >= 0 {
            return Ok(id);
        }
    }
    let name = name().ok_or(rusqlite::Error::InvalidParameterName(format!(
        "{table} id {global} has no name"
    )))?;
    let found: Option<i64> = tx
        .prepare_cached(&format!("SELECT id FROM {table} WHERE name = ?1"))?
        .query_row([&*name], |r| r.get(0))
        .optional()?;
    let id = match found {
        Some(id) => id,
        None => {
            tx.prepare_cached(&format!(
                "INSERT INTO {table} (id, name) SELECT coalesce(max(id) + 1, 0), ?1 FROM {table}"
            ))?
            .execute([&*name])?;
            tx.last_insert_rowid()
        }
    };
    if cache.len() <= g {
        cache.resize(g + 1, -1);
    }
    cache[g] = id;
    Ok(id)
}

fn close_day(mut od: OpenDay) {
    if let Err(e) = flush_directory(&mut od) {
        tracing::warn!(day = %od.day, error = %e, "directory row not written at close; its ticks are read by scanning until the file is next written");
    }
    // TRUNCATE: leave no WAL behind a file that is done for now, but wait for readers no
    // longer than a restart does: this runs on the writer's thread (at shutdown, and when the
    // writer lets go of a day) and the other days' ticks queue behind it. With SQLite's busy
    // handler (the 5 s busy timeout, sleeping up to 100 ms between tries) four tails reading
    // the day kept a close waiting until shutdown gave up on the store (`bench --only tails`;
    // `faults::intake::a_reader_on_a_day_never_holds_up_the_writer_closing_it`). A WAL left
    // behind is read like any other and folded in by the next opening or by `seal`.
    match truncate_wal_within(&od.conn, WAL_RESTART_BUSY, None) {
        Ok(0) => {}
        Ok(_) => {
            tracing::info!(day = %od.day, "WAL left beside the closed day file: a reader held an older snapshot; the next opening or `seal` folds it in");
        }
        Err(e) => {
            tracing::warn!(day = %od.day, error = %e, "WAL checkpoint at close failed; SQLite will replay the WAL on next open");
        }
    }
    if let Err((_, e)) = od.conn.close() {
        tracing::warn!(day = %od.day, error = %e, "closing day file failed");
    }
}

impl Sink for SqliteSink {
    fn name(&self) -> &str {
        "sqlite"
    }

    fn stats(&self) -> Arc<SinkStats> {
        self.stats.clone()
    }

    fn write_batch(&mut self, batch: &[Tick], abort: &Shutdown) {
        self.write_runs(batch, abort);
    }

    fn close(&mut self) {
        for od in std::mem::take(&mut self.open) {
            self.close_day(od);
        }
        self.checkpointer = None;
        if !self.spilled_to.is_empty() {
            let files = std::mem::take(&mut self.spilled_to);
            tracing::error!(
                ticks = self.stats.ticks_spilled.get(),
                ?files,
                "ticks spilled; re-ingest them with `tickrec ingest FILE` once the store can write"
            );
        }
    }
}

impl Drop for SqliteSink {
    fn drop(&mut self) {
        Sink::close(self);
    }
}

#[cfg(test)]
mod tests {
    use super::group_by_symbol;

    /// A WAL restart's busy handler waits only while its restart's deadline lies ahead, and
    /// never when none is set (a handler left installed cannot wait for ever).
    #[test]
    fn a_restart_polls_until_its_deadline_and_never_without_one() {
        use super::{poll_until_deadline, Waiting, RESTART};
        use std::time::{Duration, Instant};
        let until = |deadline| {
            RESTART.set(Some(Waiting {
                deadline,
                looked: Instant::now(),
                pass: None,
            }))
        };
        RESTART.set(None);
        assert!(!poll_until_deadline(0));
        until(Instant::now() + Duration::from_secs(60));
        assert!(poll_until_deadline(0));
        assert!(poll_until_deadline(1_000));
        until(Instant::now());
        assert!(!poll_until_deadline(1));
        RESTART.set(None);
    }

    /// What could go wrong: a restart that started its wait for readers again after each pass
    /// of the checkpointer it saw waited on from pass to pass beside a reader that never lets
    /// go (passes come every 200 ms). The time a pass is seen on moves the deadline by that
    /// time, no more; without a pass, nothing moves it.
    #[test]
    fn a_checkpointers_pass_moves_a_restarts_deadline_by_its_own_time_only() {
        use super::super::checkpoint::Passing;
        use super::{poll_until_deadline, Waiting, RESTART};
        use std::path::PathBuf;
        use std::sync::Arc;
        use std::time::{Duration, Instant};
        let (passing, path) = (Arc::new(Passing::default()), PathBuf::from("day.db"));
        let deadline_now = || RESTART.with_borrow(|w| w.as_ref().map(|w| w.deadline));
        let now = Instant::now();
        let deadline = now + Duration::from_secs(3);
        // Seen on a pass 10 ms after the last look: the deadline moves by those 10 ms and the
        // time to the look, not to a fresh wait.
        passing.set(Some(&path));
        RESTART.set(Some(Waiting {
            deadline,
            looked: now - Duration::from_millis(10),
            pass: Some((Arc::clone(&passing), path.clone())),
        }));
        assert!(poll_until_deadline(0));
        let moved = deadline_now().map(|d| d - deadline);
        assert!(
            moved.is_some_and(|m| m >= Duration::from_millis(10) && m < Duration::from_secs(1)),
            "{moved:?}"
        );
        // The pass over: the next looks leave the deadline where it is.
        passing.set(None);
        let before = deadline_now();
        assert!(poll_until_deadline(0));
        assert!(poll_until_deadline(1));
        assert_eq!(deadline_now(), before);
        RESTART.set(None);
    }

    /// What could go wrong: a restart that meets the background checkpointer's pass is busy at
    /// once (SQLite calls no busy handler when another checkpoint holds the file), or gives up
    /// when the pass (its copy, then its `fsync` on a slow disk) outlasts its wait; it is put
    /// off as if a reader held an old snapshot, and the WAL passes its bound. The restart must
    /// wait the pass out, then restart.
    #[test]
    fn a_restart_past_the_bound_waits_out_the_checkpointers_pass() {
        use super::super::checkpoint::Checkpointer;
        use super::WalBound;
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("day.db");
        let wal = crate::fsutil::with_suffix(&path, "-wal");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; \
             CREATE TABLE t (b BLOB);",
        )
        .unwrap();
        // A WAL of ~48 MiB: the checkpointer's first pass copies all of it.
        for _ in 0..12 {
            conn.execute_batch(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) \
                 INSERT INTO t SELECT randomblob(4000) FROM n",
            )
            .unwrap();
        }
        let before = std::fs::metadata(&wal).unwrap().len();
        assert!(before > 40 << 20, "WAL {before} bytes");
        let db_len = || std::fs::metadata(&path).map_or(0, |m| m.len());
        let db_before = db_len();
        let checkpointer = Checkpointer::start(Duration::from_millis(1), Duration::ZERO).unwrap();
        let passing = checkpointer.passing();
        checkpointer.add(path.clone());
        // Until the pass copies pages into the file: it holds the file's checkpoint lock.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(passing.on(&path) && db_len() > db_before) {
            assert!(
                Instant::now() < deadline,
                "no checkpoint pass began within 30 s"
            );
            std::thread::yield_now();
        }
        let mut bound = WalBound::new(1 << 20, Some(passing));
        bound.over_busy = Duration::from_millis(1);
        let seen = bound.after_commit(&conn, &path, Duration::ZERO);
        let restart = seen.restart.expect("a restart was tried");
        assert!(restart.done, "the restart was put off: {seen:?}");
        assert_eq!(seen.bytes, 0);
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
        assert!(
            restart.took > bound.over_busy,
            "it waited past its own wait ({:?}): the pass held the file",
            restart.took
        );
    }

    /// Commits of every size around [`super::ROWS_PER_INSERT`] (whole statements of it, then
    /// one row a statement) store each tick once, with its own values, `seq` gap-free, each
    /// symbol's ticks in arrival order.
    #[test]
    fn commits_of_whole_statements_and_single_rows_store_every_tick_once() {
        use crate::pipeline::Sink;
        use crate::tick::{Decimal, MsgRef, Tick, Timestamp};
        let dir = tempfile::tempdir().unwrap();
        let names = std::sync::Arc::new(crate::intern::Names::new(8));
        let syms: Vec<_> = ["EURUSD", "GBPUSD", "USDJPY"]
            .iter()
            .map(|n| names.symbol(n).unwrap())
            .collect();
        let source = names.source("LP1").unwrap();
        let mut sink = super::SqliteSink::new(
            dir.path(),
            names.clone(),
            super::super::WriterOptions::default(),
        );
        let day0 =
            1_795_000_000_000_000_000 / crate::tick::NANOS_PER_DAY * crate::tick::NANOS_PER_DAY;
        let mut k = 0u64;
        let mut want = Vec::new();
        let abort = crate::shutdown::Shutdown::new();
        for size in [1usize, 99, 100, 101, 250, 300, 500, 7] {
            let batch: Vec<Tick> = (0..size)
                .map(|_| {
                    k += 1;
                    let symbol = syms[(k * 7 % 3) as usize];
                    let ts = Timestamp(day0 + k as i64 * 1_000_000);
                    want.push((names.symbol_name(symbol).unwrap().to_string(), ts.0, k));
                    Tick {
                        symbol,
                        source,
                        ts_event: ts,
                        ts_recv: Timestamp(ts.0 + 5_000),
                        bid: Some(Decimal::from_parts(k, 5)),
                        ask: Some(Decimal::from_parts(k + 2, 5)),
                        bid_size: Some(Decimal::from_parts(k % 1000 + 1, 0)),
                        ask_size: None,
                        msg: MsgRef::NONE,
                    }
                })
                .collect();
            sink.write_batch(&batch, &abort);
        }
        sink.close();
        let stats = sink.stats();
        assert_eq!(stats.ticks_stored.get(), k);
        // Each batch in one commit, none failed and split (a split would store a bad
        // statement's rows one at a time and hide it).
        assert_eq!(stats.batches_committed.get(), 8);
        assert_eq!(stats.write_errors.get() + stats.commit_retries.get(), 0);
        let day = Timestamp(day0).day();
        let conn = rusqlite::Connection::open(super::layout::day_path(dir.path(), day)).unwrap();
        let mut stmt = conn
            .prepare("SELECT seq, symbol, ts_event_ns, bid, ask, bid_size, ask_size FROM ticks_v ORDER BY seq")
            .unwrap();
        let mut got: Vec<(String, i64, u64)> = Vec::new();
        let mut seqs = Vec::new();
        for row in stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, f64>(3)?,
                    r.get::<_, f64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                ))
            })
            .unwrap()
        {
            let (seq, symbol, ts, bid, ask, bid_size, ask_size) = row.unwrap();
            let k = ((ts - day0) / 1_000_000) as u64;
            assert_eq!((bid * 1e5).round() as u64, k, "seq {seq}");
            assert_eq!((ask * 1e5).round() as u64, k + 2, "seq {seq}");
            assert_eq!(bid_size as u64, k % 1000 + 1, "seq {seq}");
            assert_eq!(ask_size, None, "seq {seq}");
            seqs.push(seq);
            got.push((symbol, ts, k));
        }
        assert_eq!(seqs, (1..=k as i64).collect::<Vec<_>>());
        // Each symbol's ticks in arrival order; all of them, once.
        for s in ["EURUSD", "GBPUSD", "USDJPY"] {
            let of = |v: &[(String, i64, u64)]| {
                v.iter()
                    .filter(|r| r.0 == s)
                    .map(|r| r.2)
                    .collect::<Vec<_>>()
            };
            assert_eq!(of(&got), of(&want), "{s}");
        }
        got.sort_by_key(|r| r.2);
        assert_eq!(got, want);
    }

    proptest::proptest! {
        #[test]
        fn grouping_by_symbol_keeps_arrival_order_within_a_symbol(
            syms in proptest::prop_oneof![
                proptest::collection::vec(0i64..200, 0..600),
                proptest::collection::vec(-5i64..5, 0..600),
                proptest::collection::vec(0i64..1_000_000, 0..600),
            ],
        ) {
            let mut order: Vec<(i64, u32)> =
                syms.iter().enumerate().map(|(i, &s)| (s, i as u32)).collect();
            let mut want = order.clone();
            want.sort_by_key(|&(s, _)| s);
            group_by_symbol(&mut order, &mut Vec::new());
            proptest::prop_assert_eq!(order, want);
        }
    }
}
