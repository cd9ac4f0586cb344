//! The SQLite backend: one transaction per batch into the day file of each tick's `ts_event`.
//!
//! Per batch: consecutive ticks of one UTC day become one `BEGIN IMMEDIATE … COMMIT` with a
//! cached prepared insert; `seq` continues the file's sequence with no gap (a rolled-back
//! attempt gives its numbers back). Failure ladder, so that nothing is dropped silently:
//! 1. a failed commit is retried `commit_retries` times with doubling backoff (transient errors);
//! 2. then the batch is split in halves, each half tried once, down to single ticks;
//! 3. a single tick that still fails is appended to `ticks_<day>.deadletter.jsonl` beside the
//!    day file (re-ingestable with `tickrec ingest`), counted and logged; if even that fails, the
//!    whole tick is logged at error level and counted in `dead_letter_failures`.
//!
//! Rotation: the newest day seen is "today"; a tick of a later day rotates (counted), a tick of
//! an earlier day is late (counted) and goes to its own day's file, kept open in a small LRU.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior};

use super::checkpoint::Checkpointer;
use super::{archive, layout, schema, StoreError, WriterOptions};
use crate::intern::Names;
use crate::pipeline::{Sink, SinkStats};
use crate::tick::{Tick, NANOS_PER_DAY};

const INSERT: &str =
    "INSERT INTO ticks (seq, sym, ts_event, ts_recv, bid, ask, bid_size, ask_size, src) \
                      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
const MARK_IMPORT: &str = "INSERT INTO imports (file, ticks) VALUES (?1, ?2) \
                           ON CONFLICT (file) DO UPDATE SET ticks = ticks + excluded.ticks";
const MARK_SESSION: &str =
    "INSERT INTO fix_sessions (src, next_inbound_seq, updated_recv_ns) VALUES (?1, ?2, ?3) \
     ON CONFLICT (src) DO UPDATE SET next_inbound_seq = excluded.next_inbound_seq, \
     updated_recv_ns = excluded.updated_recv_ns";

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
    /// Per batch: (file source id, next inbound MsgSeqNum, ts_recv) of FIX sessions (reused).
    session_marks: Vec<(i64, i64, i64)>,
    /// Shared flock on the database file, held while open (see `store::archive`).
    _lock: std::fs::File,
}

/// The SQLite storage backend (see the module doc).
pub struct SqliteSink {
    base: PathBuf,
    names: Arc<Names>,
    opts: WriterOptions,
    stats: Arc<SinkStats>,
    /// Open day files, least recently used first.
    open: Vec<OpenDay>,
    newest_day: Option<NaiveDate>,
    /// Background WAL checkpoints of the newest day (started with the first day file).
    checkpointer: Option<Checkpointer>,
}

impl SqliteSink {
    pub fn new(base: impl Into<PathBuf>, names: Arc<Names>, opts: WriterOptions) -> SqliteSink {
        SqliteSink {
            base: base.into(),
            names,
            opts,
            stats: Arc::new(SinkStats::default()),
            open: Vec::new(),
            newest_day: None,
            checkpointer: None,
        }
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// How many ticks of the source file `file` are already committed in `day`'s file
    /// (`tickrec migrate` resumes from there). A day without a file has none.
    pub fn imported(&mut self, day: NaiveDate, file: &str) -> Result<u64, StoreError> {
        if !layout::day_path(&self.base, day).exists() {
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
                Err(e) if attempt < self.opts.commit_retries && is_transient(&e) => {
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

    /// Writes consecutive same-day runs of `batch`, each through the failure ladder.
    fn write_runs(&mut self, batch: &[Tick]) {
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
            self.write_with_retries(day, run);
            rest = tail;
        }
    }

    fn note_day(&mut self, day: NaiveDate, n: usize) {
        match self.newest_day {
            Some(newest) if day > newest => {
                self.stats.db_rotations.incr();
                tracing::info!(%day, previous = %newest, "rotated to a new day file");
                self.newest_day = Some(day);
                self.checkpoint_newest(day);
            }
            Some(newest) if day < newest => self.stats.late_ticks.add(n as u64),
            Some(_) => {}
            None => {
                self.newest_day = Some(day);
                self.checkpoint_newest(day);
            }
        }
    }

    /// Points the background checkpointer (started on first use) at `day`'s file.
    fn checkpoint_newest(&mut self, day: NaiveDate) {
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
            c.set_target(layout::day_path(&self.base, day));
        }
    }

    /// Step 1 of the ladder, then step 2 on failure.
    fn write_with_retries(&mut self, day: NaiveDate, ticks: &[Tick]) {
        let mut delay = self.opts.retry_backoff;
        let mut attempt = 0;
        loop {
            let err = match self.commit(day, ticks) {
                Ok(()) => return,
                Err(e) => e,
            };
            self.stats.write_errors.incr();
            if attempt >= self.opts.commit_retries || !is_transient(&err) {
                tracing::warn!(%day, ticks = ticks.len(), error = %err, "batch failed; splitting it");
                self.split(day, ticks, &err);
                return;
            }
            attempt += 1;
            self.stats.commit_retries.incr();
            tracing::warn!(%day, attempt, error = %err, "commit failed; retrying");
            std::thread::sleep(delay);
            delay = delay.saturating_mul(2).min(Duration::from_secs(2));
        }
    }

    /// Steps 2 and 3: halves are tried once each, recursively; single ticks are dead-lettered.
    fn split(&mut self, day: NaiveDate, ticks: &[Tick], err: &StoreError) {
        if let [tick] = ticks {
            self.dead_letter(day, tick, err);
            return;
        }
        let (a, b) = ticks.split_at(ticks.len() / 2);
        for half in [a, b] {
            if let Err(e) = self.commit(day, half) {
                self.stats.write_errors.incr();
                self.split(day, half, &e);
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
        let path = layout::day_path(&self.base, day);
        let result = insert_all(od, names, ticks, import_file);
        match result {
            Ok(next_seq) => {
                od.next_seq = next_seq;
                self.stats.ticks_stored.add(ticks.len() as u64);
                self.stats.batches_committed.incr();
                self.stats
                    .commit_latency
                    .record_ns(started.elapsed().as_nanos() as u64);
                Ok(())
            }
            Err(e) => {
                self.open.remove(idx);
                Err(StoreError::Sqlite { path, source: e })
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
            close_day(od);
        }
        let path = layout::day_path(&self.base, day);
        if !path.exists() && layout::archive_path(&self.base, day).exists() {
            tracing::warn!(%day, "a tick for an archived day: restoring its day file");
            archive::restore_day(&self.base, day, &self.opts.sqlite)?;
        }
        let conn = schema::open_for_write(&path, day, &self.opts.sqlite)?;
        if self.opts.background_checkpoint.is_some() && self.checkpointer.is_some() {
            // The checkpointer thread does it, outside commits.
            conn.pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(StoreError::sqlite(&path))?;
        }
        // A shared flock for as long as the file is open: the archiver never takes a day file
        // a writer holds, and a writer never writes into one being archived.
        let lock = std::fs::File::open(&path).map_err(StoreError::io(&path))?;
        if let Err(e) = lock.try_lock_shared() {
            let source = match e {
                std::fs::TryLockError::WouldBlock => std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    "the day file is being archived",
                ),
                std::fs::TryLockError::Error(e) => e,
            };
            return Err(StoreError::Io { path, source });
        }
        let (day_start_ns, max_seq) = (|| -> rusqlite::Result<(i64, i64)> {
            Ok((
                schema::day_start_ns(&conn)?,
                conn.query_row("SELECT coalesce(max(seq), 0) FROM ticks", [], |r| r.get(0))?,
            ))
        })()
        .map_err(StoreError::sqlite(&path))?;
        self.open.push(OpenDay {
            day,
            day_start_ns,
            conn,
            next_seq: max_seq + 1,
            sym_ids: Vec::new(),
            src_ids: Vec::new(),
            session_marks: Vec::new(),
            _lock: lock,
        });
        Ok(self.open.len() - 1)
    }

    fn dead_letter(&mut self, day: NaiveDate, tick: &Tick, err: &StoreError) {
        let path = layout::dead_letter_path(&self.base, day);
        crate::dead_letter::dead_letter(&path, &self.names, tick, err, &self.stats);
    }
}

/// Inserts `ticks` in one IMMEDIATE transaction; returns the next free `seq` on commit.
fn insert_all(
    od: &mut OpenDay,
    names: &Names,
    ticks: &[Tick],
    import_file: Option<&str>,
) -> rusqlite::Result<i64> {
    let tx = od
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut seq = od.next_seq;
    od.session_marks.clear();
    {
        let mut stmt = tx.prepare_cached(INSERT)?;
        for t in ticks {
            let sym = file_id(&tx, &mut od.sym_ids, t.symbol.0, "symbols", || {
                names.symbol_name(t.symbol)
            })?;
            let src = file_id(&tx, &mut od.src_ids, t.source.0, "sources", || {
                names.source_name(t.source)
            })?;
            let code = |d: Option<crate::tick::Decimal>| d.map(|d| d.code() as i64);
            stmt.raw_bind_parameter(1, seq)?;
            stmt.raw_bind_parameter(2, sym)?;
            stmt.raw_bind_parameter(3, t.ts_event.0 - od.day_start_ns)?;
            stmt.raw_bind_parameter(4, t.ts_recv.0.wrapping_sub(t.ts_event.0))?;
            stmt.raw_bind_parameter(5, code(t.bid))?;
            stmt.raw_bind_parameter(6, code(t.ask))?;
            stmt.raw_bind_parameter(7, code(t.bid_size))?;
            stmt.raw_bind_parameter(8, code(t.ask_size))?;
            stmt.raw_bind_parameter(9, src)?;
            stmt.raw_execute()?;
            seq += 1;
            if t.msg.seq() > 0 && !t.msg.more_follow() {
                // The last tick of a message completes it. Ticks of one session arrive in
                // MsgSeqNum order: the last complete message wins.
                let next = i64::try_from(t.msg.seq()).unwrap_or(i64::MAX - 1) + 1;
                match od.session_marks.iter_mut().find(|m| m.0 == src) {
                    Some(m) => *m = (src, next, t.ts_recv.0),
                    None => od.session_marks.push((src, next, t.ts_recv.0)),
                }
            }
        }
    }
    if !od.session_marks.is_empty() {
        let mut mark = tx.prepare_cached(MARK_SESSION)?;
        for &(src, next, recv) in &od.session_marks {
            mark.execute(rusqlite::params![src, next, recv])?;
        }
    }
    if let Some(file) = import_file {
        tx.prepare_cached(MARK_IMPORT)?
            .execute(rusqlite::params![file, ticks.len() as i64])?;
    }
    tx.commit()?;
    Ok(seq)
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

fn close_day(od: OpenDay) {
    // TRUNCATE: leave no WAL behind a file that is done for now.
    if let Err(e) = od
        .conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
    {
        tracing::warn!(day = %od.day, error = %e, "WAL checkpoint at close failed; SQLite will replay the WAL on next open");
    }
    if let Err((_, e)) = od.conn.close() {
        tracing::warn!(day = %od.day, error = %e, "closing day file failed");
    }
}

/// Errors worth retrying: another process holds the lock, or the disk/OS hiccuped.
fn is_transient(err: &StoreError) -> bool {
    match err {
        StoreError::Sqlite {
            source: rusqlite::Error::SqliteFailure(e, _),
            ..
        } => matches!(
            e.code,
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
                | ErrorCode::CannotOpen
                | ErrorCode::FileLockingProtocolFailed
                | ErrorCode::OutOfMemory
        ),
        StoreError::Io { .. } => true,
        _ => false,
    }
}

impl Sink for SqliteSink {
    fn name(&self) -> &str {
        "sqlite"
    }

    fn stats(&self) -> Arc<SinkStats> {
        self.stats.clone()
    }

    fn write_batch(&mut self, batch: &[Tick]) {
        self.write_runs(batch);
    }

    fn close(&mut self) {
        for od in self.open.drain(..) {
            close_day(od);
        }
    }
}

impl Drop for SqliteSink {
    fn drop(&mut self) {
        Sink::close(self);
    }
}
