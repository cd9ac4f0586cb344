//! `tickrec check`: every day file and archive against SQLite's integrity check and the
//! invariants the writer keeps; `--repair` moves a broken day file aside and salvages into a
//! fresh day file what SQLite can still read.
//!
//! Invariants checked (each is kept by `store::writer`): the file holds the day its name says;
//! `seq` runs 1, 2, 3, … with no gap (so `max(seq)` is the tick count); every tick names a
//! symbol and a source of the file's own tables; every `ts_event` falls inside the day; the
//! per-transaction directory tiles the ticks and names each one's symbol (`store::directory`);
//! an archive holds exactly the tick count its summary says.
//!
//! Repair never deletes: the broken file (with its WAL) is renamed `<name>.broken-<time>`
//! under the day's exclusive lock, and stays for forensics. Salvaged ticks are renumbered
//! from one. The session and import marks are copied only when every tick was salvaged: a mark that
//! claims ticks the new file lacks would make a resumed feed or migration skip them.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

use super::daylock::DayLock;
use super::layout::{self, DayFile};
use super::reader::describe;
use super::{archive, schema, SqliteOptions, StoreError};
use crate::fsutil::{self, with_suffix};
use crate::tick::NANOS_PER_DAY;

/// The verdict on one day.
#[derive(Debug, Clone, Serialize)]
pub struct DayCheck {
    pub day: NaiveDate,
    pub file: PathBuf,
    pub archived: bool,
    pub ticks: Option<u64>,
    /// What is wrong with the file; empty when the day is sound.
    pub problems: Vec<String>,
    /// Why the file could not be checked here and now (a full disk, a permission, a lock, a
    /// schema version to upgrade), when it could not: that says nothing against the file,
    /// and `repair_day` leaves it alone.
    pub unchecked: Option<String>,
}

impl DayCheck {
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.unchecked.is_none()
    }

    /// Files a failure: a problem of the file when the error shows damage, otherwise why it
    /// could not be checked.
    fn failed(&mut self, path: &Path, err: &StoreError) {
        if err.is_damage() {
            self.problems.push(describe(path, err));
        } else {
            self.unchecked = Some(describe(path, err));
        }
    }
}

/// What `repair_day` did.
#[derive(Debug, Clone, Serialize)]
pub struct Repair {
    pub moved_to: PathBuf,
    /// Ticks read back into the fresh day file.
    pub salvaged: u64,
    /// Ticks the broken file claimed (its highest `seq`), when it could say.
    pub claimed: Option<u64>,
    /// The marks (FIX session, migration) were carried over (only when nothing was lost).
    pub marks_kept: bool,
}

/// Checks one day (plain or archived) of the store at `base`. Never changes anything; an
/// archive is decompressed to a scratch file beside it (in the temporary folder when it is on
/// a read-only file system). A day archived or restored after it was listed is checked in its
/// new form ([`layout::relisted`]): the verdict and the file it names are that form's.
pub fn check_day(base: &Path, day: &DayFile, opts: &SqliteOptions) -> (DayFile, DayCheck) {
    // A verdict other than sound is the "error" that looks for the day's new form.
    let checked = |d: &DayFile| {
        let c = check_listed_day(base, d, opts);
        if c.ok() {
            Ok((d.clone(), c))
        } else {
            Err(Box::new((d.clone(), c)))
        }
    };
    layout::as_listed_now(base, day, checked, |_| true).unwrap_or_else(|verdict| *verdict)
}

/// [`check_day`] of the day's file as listed.
fn check_listed_day(base: &Path, day: &DayFile, opts: &SqliteOptions) -> DayCheck {
    let mut out = DayCheck {
        day: day.day,
        file: day.path.clone(),
        archived: day.archived,
        ticks: None,
        problems: Vec::new(),
        unchecked: None,
    };
    if std::fs::symlink_metadata(&day.path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
    {
        out.unchecked = Some("gone since its folder was listed (deleted meanwhile)".into());
        return out;
    }
    if !day.path.is_file() {
        out.problems.push(if day.path.is_dir() {
            "is a directory, not a day file".into()
        } else {
            "is not a regular file".into()
        });
        return out;
    }
    if day.form == layout::Form::Parquet {
        check_parquet(day, &mut out);
    } else if day.archived {
        let summary = match archive::read_summary(&day.path) {
            Ok(s) => s,
            Err(e) => {
                out.failed(&day.path, &e);
                return out;
            }
        };
        // Beside the archive, or in the temporary folder when it is on a read-only file
        // system (a backup mounted read-only).
        let scratch = if crate::fsutil::read_only_fs(&day.path) {
            std::env::temp_dir().join(format!(
                "tickrec-check-{}-{}.db",
                std::process::id(),
                day.day
            ))
        } else {
            with_suffix(&day.path, ".check.tmp")
        };
        match archive::decompress(&day.path, &scratch) {
            Ok(()) => {
                check_db(&scratch, day.day, opts, &mut out);
                if out.ticks.is_some_and(|n| n != summary.ticks) {
                    out.problems.push(format!(
                        "holds {} ticks, its summary says {}",
                        out.ticks.unwrap_or(0),
                        summary.ticks
                    ));
                }
            }
            Err(e) if e.is_damage() => out
                .problems
                .push(format!("cannot decompress: {}", describe(&day.path, &e))),
            Err(e) => out.failed(&day.path, &e),
        }
        let _ = std::fs::remove_file(&scratch);
    } else {
        match super::reader::open_day_conn(base, day, &day.path, opts) {
            Ok((conn, _lock)) => check_conn(&conn, &day.path, day.day, &mut out),
            Err(e) => out.failed(&day.path, &e),
        }
    }
    out
}

/// A Parquet archive: its metadata (opening checks the symbol index against the row groups
/// and the summary), then every row: seq runs 1..=ticks with no gap or repeat, every event
/// time inside the day, every decimal as given (decoding checks it).
fn check_parquet(day: &DayFile, out: &mut DayCheck) {
    let pq = match super::columnar::ParquetDay::open(&day.path) {
        Ok(p) => p,
        Err(e) => {
            out.problems.push(describe(&day.path, &e));
            return;
        }
    };
    let ticks = pq.summary().ticks;
    let Ok(len) = usize::try_from(ticks) else {
        out.problems
            .push(format!("its summary claims {ticks} ticks"));
        return;
    };
    let start = crate::tick::Timestamp::start_of_day(day.day).0;
    let mut seen = vec![false; len];
    let (mut rows, mut bad_seq, mut outside) = (0u64, 0u64, 0u64);
    let mut digest = super::columnar::Digest::default();
    let scanned = pq.scan(&mut |r| {
        rows += 1;
        digest.add(r);
        match r
            .seq
            .and_then(|s| usize::try_from(s).ok())
            .and_then(|s| s.checked_sub(1))
            .and_then(|i| seen.get_mut(i))
        {
            Some(slot) if !*slot => *slot = true,
            _ => bad_seq += 1,
        }
        let t = r.ts_event.0.wrapping_sub(start);
        if !(0..NANOS_PER_DAY).contains(&t) {
            outside += 1;
        }
        Ok(())
    });
    if let Err(e) = scanned {
        out.problems.push(match e {
            super::reader::ReadError::Store(e) => describe(&day.path, &e),
            e => e.to_string(),
        });
        return;
    }
    out.ticks = Some(rows);
    if rows != ticks {
        out.problems
            .push(format!("holds {rows} ticks, its summary says {ticks}"));
    }
    if bad_seq > 0 || seen.iter().any(|s| !s) {
        out.problems.push(format!(
            "seq is not 1..={ticks} exactly once each ({bad_seq} repeated or out of range)"
        ));
    }
    if outside > 0 {
        out.problems
            .push(format!("{outside} ticks have event times outside the day"));
    }
    if pq.summary().row_digest.is_some_and(|d| d != digest.sum) {
        out.problems.push(
            "its rows differ from what was archived (row digest mismatch): restore it from a backup"
                .into(),
        );
    }
}

fn check_db(db: &Path, day: NaiveDate, opts: &SqliteOptions, out: &mut DayCheck) {
    match schema::open_for_read(db, opts) {
        Ok(conn) => check_conn(&conn, db, day, out),
        Err(e) => out.failed(db, &e),
    }
}

/// The integrity check and the invariants, on an open day file.
fn check_conn(conn: &Connection, db: &Path, day: NaiveDate, out: &mut DayCheck) {
    let sqlite = |e| StoreError::Sqlite {
        path: db.to_owned(),
        source: e,
    };
    let q = |sql: &str| -> rusqlite::Result<i64> { conn.query_row(sql, [], |r| r.get(0)) };
    let integrity = (|| -> rusqlite::Result<Vec<String>> {
        let mut stmt = conn.prepare("PRAGMA integrity_check(20)")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect()
    })();
    match integrity {
        Ok(lines) if lines == ["ok"] => {}
        Ok(lines) => out
            .problems
            .push(format!("integrity check: {}", lines.join("; "))),
        Err(e) => {
            out.failed(db, &sqlite(e));
            return;
        }
    }
    let checks = (|| -> rusqlite::Result<Vec<String>> {
        let mut p = Vec::new();
        let named: String =
            conn.query_row("SELECT day FROM file_info WHERE id = 1", [], |r| r.get(0))?;
        if named != day.to_string() {
            p.push(format!("holds day {named}, its name says {day}"));
        }
        let (count, min, max): (i64, i64, i64) = conn.query_row(
            "SELECT count(*), coalesce(min(seq), 1), coalesce(max(seq), 0) FROM ticks",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        out.ticks = u64::try_from(count).ok();
        if count > 0 && (min != 1 || max != count) {
            p.push(format!(
                "seq is not 1..={count} without gaps (min {min}, max {max})"
            ));
        }
        let orphans = q(
            "SELECT count(*) FROM ticks WHERE sym NOT IN (SELECT id FROM symbols) \
                         OR src NOT IN (SELECT id FROM sources)",
        )?;
        if orphans > 0 {
            p.push(format!(
                "{orphans} ticks name a symbol or source the file does not have"
            ));
        }
        let outside = conn.query_row(
            "SELECT count(*) FROM ticks WHERE ts_event < 0 OR ts_event >= ?1",
            [NANOS_PER_DAY],
            |r| r.get::<_, i64>(0),
        )?;
        if outside > 0 {
            p.push(format!(
                "{outside} ticks have an event time outside the day"
            ));
        }
        if super::directory::present(conn) {
            if let Some(why) = directory_problem(conn, count)? {
                p.push(format!("directory: {why}"));
            } else if let Some(why) = blocks_problem(conn, db)? {
                p.push(format!("blocks: {why}"));
            }
        }
        Ok(p)
    })();
    match checks {
        Ok(p) => out.problems.extend(p),
        Err(e) => out.failed(db, &sqlite(e)),
    }
}

/// Moves a broken plain day file aside and salvages what it can (see the module doc). Refuses
/// while a writer holds the day, and for archives (unarchive first, or keep the archive).
pub fn repair_day(
    base: &Path,
    day: &DayFile,
    opts: &SqliteOptions,
    stamp: &str,
) -> Result<Repair, StoreError> {
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| StoreError::Io { path: p, source }
    };
    if day.archived {
        return Err(StoreError::Io {
            path: day.path.clone(),
            source: std::io::Error::other("an archive is not repaired in place; `tickrec unarchive` it, or restore it from a backup"),
        });
    }
    let lock_path = layout::lock_path(base, day.day);
    let Some(_lock) = DayLock::try_exclusive(base, day.day).map_err(io(&lock_path))? else {
        return Err(StoreError::Io {
            path: day.path.clone(),
            source: std::io::Error::other("a writer holds this day; stop it first"),
        });
    };
    let db = layout::day_path(base, day.day);
    let moved = with_suffix(&db, &format!(".broken-{stamp}"));
    // The database first, then its WAL and shared memory under the matching names, so that
    // SQLite still finds the WAL of the moved file.
    fsutil::rename_durably(&db, &moved).map_err(io(&db))?;
    for suffix in ["-wal", "-shm"] {
        let from = with_suffix(&db, suffix);
        if from.exists() {
            fsutil::rename_durably(&from, &with_suffix(&moved, suffix)).map_err(io(&from))?;
        }
    }
    // The symbol block files describe the moved file's directory, not the salvaged one's.
    super::blockfile::remove(&db).map_err(io(&db))?;
    let (salvaged, claimed, marks_kept) = if moved.is_file() {
        salvage(&moved, &db, day.day, opts)?
    } else {
        (0, None, false)
    };
    Ok(Repair {
        moved_to: moved,
        salvaged,
        claimed,
        marks_kept,
    })
}

/// A name table's rows: `(id, name)`.
type NameRows = [(i64, String)];

/// Rows read per step of the salvage.
const CHUNK: i64 = 10_000;

/// The symbol blocks against the ticks (see `store::blocks`): every block is keyed by the
/// first `seq` of one symbol's runs in one directory row and decodes to exactly those ticks. A
/// missing block is no fault (readers read the rows); a block that says otherwise than the
/// rows is. Blocks are looked for in the day's block files (`store::blockfile`) and in its
/// blocks table (versions that kept them there). Call once the directory is found sound. One
/// pass over the ticks.
fn blocks_problem(conn: &Connection, db: &Path) -> rusqlite::Result<Option<String>> {
    use super::blocks;
    let file = super::blockfile::BlockFile::open(db, super::blockfile::tail_seed(conn)?);
    let entries: std::collections::HashMap<i64, super::blockfile::Entry> = match &file {
        None => Default::default(),
        Some(f) => match f.entries() {
            Ok(e) => e.into_iter().map(|e| (e.key, e)).collect(),
            Err(e) => return Ok(Some(format!("block files not read: {e}"))),
        },
    };
    let has = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'blocks'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if !has && file.is_none() {
        return Ok(None);
    }
    let mut rows =
        conn.prepare("SELECT first_seq, last_seq, dir FROM batches ORDER BY first_seq")?;
    let mut ticks = conn.prepare(
        "SELECT seq, sym, ts_event, ts_recv, bid, ask, bid_size, ask_size, src FROM ticks \
         WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq",
    )?;
    let mut block = match has {
        true => Some(conn.prepare("SELECT data FROM blocks WHERE seq = ?1")?),
        false => None,
    };
    let mut spans = rows.query([])?;
    let (mut seen, mut seen_in_file, mut decoded) = (0i64, 0usize, Vec::new());
    while let Some(b) = spans.next()? {
        let (first, last): (i64, i64) = (b.get(0)?, b.get(1)?);
        let Some(dir) = b.get_ref(2)?.as_blob_or_null()? else {
            continue;
        };
        let Ok(runs) = super::directory::runs(first, dir) else {
            continue;
        };
        // Per symbol: its block's key and its ticks, in seq order; and its runs.
        let mut by_sym: Vec<(i64, i64, Vec<blocks::Row>)> = Vec::new();
        let mut sym_runs: Vec<Vec<(i64, i64)>> = Vec::new();
        let mut at = std::collections::HashMap::new();
        for &(sym, a, n) in &runs {
            let i = *at.entry(sym).or_insert_with(|| {
                by_sym.push((sym, a, Vec::new()));
                sym_runs.push(Vec::new());
                by_sym.len() - 1
            });
            if n > 0 {
                sym_runs[i].push((a, n));
            }
        }
        let mut t = ticks.query([first, last])?;
        while let Some(r) = t.next()? {
            let sym: i64 = r.get(1)?;
            if let Some(x) = at.get(&sym).and_then(|&i| by_sym.get_mut(i)) {
                x.2.push(blocks::Row {
                    ts_event: r.get(2)?,
                    ts_recv: r.get(3)?,
                    bid: r.get(4)?,
                    ask: r.get(5)?,
                    bid_size: r.get(6)?,
                    ask_size: r.get(7)?,
                    src: r.get(8)?,
                });
            }
        }
        for ((sym, key, want), sym_runs) in by_sym.iter().zip(&sym_runs) {
            let in_table = match &mut block {
                Some(b) => b.query_row([key], |r| r.get::<_, Vec<u8>>(0)).optional()?,
                None => None,
            };
            let (data, seed) = match (in_table, entries.get(key), &file) {
                (Some(data), _, _) => {
                    seen += 1;
                    (data, *key as u64)
                }
                (None, Some(e), Some(f)) => {
                    seen_in_file += 1;
                    match f.read(e) {
                        Ok(data) => (data, blocks::runs_seed(sym_runs)),
                        Err(err) => {
                            return Ok(Some(format!(
                                "block {key} (symbol id {sym}) not read from the block file: {err}"
                            )))
                        }
                    }
                }
                _ => continue,
            };
            if blocks::decode_seeded(seed, &data, &mut decoded).is_err() {
                return Ok(Some(format!(
                    "block {key} (symbol id {sym}) does not decode or fails its check"
                )));
            }
            if decoded != *want {
                return Ok(Some(format!(
                    "block {key} (symbol id {sym}) differs from its {} ticks in the rows",
                    want.len()
                )));
            }
        }
    }
    // Entries past what the directory covers are a power cut's leftovers: never read (no row
    // names their keys), and cut back by the next writer of the day.
    let covered: i64 =
        conn.query_row("SELECT coalesce(max(last_seq), 0) FROM batches", [], |r| {
            r.get(0)
        })?;
    let within = entries.keys().filter(|&&k| k <= covered).count();
    if seen_in_file != within {
        return Ok(Some(format!(
            "{} entries of the block files are keyed where no directory row starts a symbol's runs",
            within.saturating_sub(seen_in_file)
        )));
    }
    let all: i64 = match has {
        true => conn.query_row("SELECT count(*) FROM blocks", [], |r| r.get(0))?,
        false => 0,
    };
    if all != seen {
        return Ok(Some(format!(
            "{} blocks are keyed where no directory row starts a symbol's runs",
            all - seen
        )));
    }
    Ok(None)
}

/// Reads what it can of `broken` into a fresh day file at `db`.
fn salvage(
    broken: &Path,
    db: &Path,
    day: NaiveDate,
    opts: &SqliteOptions,
) -> Result<(u64, Option<u64>, bool), StoreError> {
    let Ok(old) = Connection::open_with_flags(broken, OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return Ok((0, None, false));
    };
    let names = |table: &str| -> Vec<(i64, String)> {
        old.prepare(&format!("SELECT id, name FROM {table}"))
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap_or_default()
    };
    let (symbols, sources) = (names("symbols"), names("sources"));
    if symbols.is_empty() || sources.is_empty() {
        // Not a tickrec file, or its name tables are gone: no tick can be read back with a name.
        return Ok((0, None, false));
    }
    let claimed: Option<i64> = old
        .query_row("SELECT max(seq) FROM ticks", [], |r| r.get(0))
        .ok()
        .flatten();
    let mut new = schema::open_for_write(db, day, opts)?;
    let sq = StoreError::sqlite(db);
    let tx = new.transaction().map_err(sq)?;
    for (table, rows) in [("symbols", &symbols), ("sources", &sources)] {
        let mut ins = tx
            .prepare(&format!("INSERT INTO {table} (id, name) VALUES (?1, ?2)"))
            .map_err(StoreError::sqlite(db))?;
        for (id, name) in rows {
            ins.execute(rusqlite::params![id, name])
                .map_err(StoreError::sqlite(db))?;
        }
    }
    let mut ins = tx
        .prepare(super::writer::INSERT)
        .map_err(StoreError::sqlite(db))?;
    let limit = claimed.unwrap_or(i64::MAX);
    let written = copy_readable(&old, &mut ins, db, (&symbols, &sources), limit)?;
    drop(ins);
    // Salvaged rows are one span that readers scan (see `store::directory`).
    tx.execute(
        "INSERT INTO batches (first_seq, last_seq, ts_min, ts_max, cummax, lag) \
         SELECT min(seq), max(seq), min(ts_event), max(ts_event), max(ts_event), 0 FROM ticks \
         HAVING count(*) > 0",
        [],
    )
    .map_err(StoreError::sqlite(db))?;
    let complete = claimed.is_some_and(|c| c == written);
    if complete {
        for table in ["fix_sessions", "imports"] {
            let _ = copy_table(&old, &tx, table);
        }
    }
    tx.commit().map_err(StoreError::sqlite(db))?;
    Ok((
        u64::try_from(written).unwrap_or(0),
        claimed.and_then(|c| u64::try_from(c).ok()),
        complete,
    ))
}

/// Copies the rows of `old` with `seq <= limit` that read back whole, with known names and a
/// time in the day, through `ins`, renumbered from 1 in `seq` order; returns how many. Reads in
/// chunks of [`CHUNK`]; past a stretch that does not read it probes further ahead each time
/// (at most 64 times).
fn copy_readable(
    old: &Connection,
    ins: &mut rusqlite::Statement<'_>,
    db: &Path,
    (symbols, sources): (&NameRows, &NameRows),
    limit: i64,
) -> Result<i64, StoreError> {
    let known = |id: i64, rows: &NameRows| rows.iter().any(|r| r.0 == id);
    let (mut next, mut step, mut written) = (1i64, 1i64, 0i64);
    let mut failures = 0u32;
    while next <= limit && failures < 64 {
        let mut stmt = match old.prepare(
            "SELECT seq, sym, ts_event, ts_recv, bid, ask, bid_size, ask_size, src FROM ticks \
             WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
        ) {
            Ok(s) => s,
            Err(_) => break,
        };
        let mut rows = match stmt.query([next, CHUNK]) {
            Ok(r) => r,
            Err(_) => break,
        };
        let mut got = 0;
        let ended = loop {
            match rows.next() {
                Ok(Some(r)) => {
                    let get = |i| r.get::<_, Option<i64>>(i).ok().flatten();
                    let (Some(seq), Some(sym), Some(ts), Some(recv), Some(src)) =
                        (get(0), get(1), get(2), get(3), get(8))
                    else {
                        continue;
                    };
                    next = seq.saturating_add(1);
                    got += 1;
                    if !known(sym, symbols)
                        || !known(src, sources)
                        || !(0..NANOS_PER_DAY).contains(&ts)
                    {
                        continue;
                    }
                    written += 1;
                    ins.execute(rusqlite::params![
                        written,
                        sym,
                        ts,
                        recv,
                        get(4),
                        get(5),
                        get(6),
                        get(7),
                        src
                    ])
                    .map_err(StoreError::sqlite(db))?;
                }
                // The end of what is there (a short chunk), or a full chunk: go on.
                Ok(None) => break got < CHUNK,
                // A corrupt stretch: keep what was read, then probe past it.
                Err(_) => break false,
            }
        };
        if ended {
            break;
        }
        if got == 0 {
            // An unreadable stretch: jump ahead, further each time.
            failures += 1;
            next = next.saturating_add(step);
            step = step.saturating_mul(2);
        } else {
            step = 1;
        }
    }
    Ok(written)
}

fn copy_table(old: &Connection, new: &Connection, table: &str) -> rusqlite::Result<()> {
    let mut stmt = old.prepare(&format!("SELECT * FROM {table}"))?;
    let cols = stmt.column_count();
    let marks = vec!["?"; cols].join(", ");
    let mut ins = new.prepare(&format!("INSERT INTO {table} VALUES ({marks})"))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let vals: Vec<rusqlite::types::Value> = (0..cols)
            .map(|i| r.get(i))
            .collect::<rusqlite::Result<_>>()?;
        ins.execute(rusqlite::params_from_iter(vals))?;
    }
    Ok(())
}
/// The directory against the ticks (see `store::directory`): its rows tile `seq` 1..=k in
/// order (k at most the tick count: the writer's last commits may have no row yet), each tick
/// lies within its row's `ts_event` bounds and running bounds, and a row's directory names,
/// run by run, the symbol of every tick in it. One pass over the ticks.
fn directory_problem(conn: &Connection, count: i64) -> rusqlite::Result<Option<String>> {
    let mut rows = conn.prepare(
        "SELECT first_seq, last_seq, ts_min, ts_max, dir, cummax, lag FROM batches \
         ORDER BY first_seq",
    )?;
    let mut ticks = conn.prepare("SELECT seq, sym, ts_event FROM ticks ORDER BY seq")?;
    let mut ticks = ticks.query([])?;
    let mut spans = rows.query([])?;
    let mut expect = 1i64;
    let (mut cummax, mut lag) = (i64::MIN, 0i64);
    while let Some(b) = spans.next()? {
        let (first, last, lo, hi): (i64, i64, i64, i64) =
            (b.get(0)?, b.get(1)?, b.get(2)?, b.get(3)?);
        let dir: Option<Vec<u8>> = b.get(4)?;
        if first != expect || last < first {
            return Ok(Some(format!(
                "row {first}..={last} where seq {expect} was due"
            )));
        }
        // The running bounds the time search relies on.
        lag = lag.max(cummax.saturating_sub(lo));
        cummax = cummax.max(hi);
        if (b.get::<_, i64>(5)?, b.get::<_, i64>(6)?) != (cummax, lag) {
            return Ok(Some(format!("row {first}: running max or lag is wrong")));
        }
        let runs = match &dir {
            Some(d) => match super::directory::runs(first, d) {
                Ok(r) => Some(r),
                Err(_) => return Ok(Some(format!("row {first}: directory does not decode"))),
            },
            None => None,
        };
        if let Some(r) = &runs {
            if r.iter().map(|x| x.2).sum::<i64>() != last - first + 1 {
                return Ok(Some(format!(
                    "row {first}: directory counts differ from its length"
                )));
            }
        }
        let mut named = runs
            .iter()
            .flatten()
            .flat_map(|&(sym, _, k)| std::iter::repeat_n(sym, k as usize));
        for seq in first..=last {
            let Some(t) = ticks.next()? else {
                return Ok(Some(format!(
                    "row {first}..={last} runs past the last tick"
                )));
            };
            let (s, sym, ts): (i64, i64, i64) = (t.get(0)?, t.get(1)?, t.get(2)?);
            if s != seq || ts < lo || ts > hi {
                return Ok(Some(format!("seq {s} does not fit row {first}..={last}")));
            }
            if runs.is_some() && named.next() != Some(sym) {
                return Ok(Some(format!("seq {s}: the directory names another symbol")));
            }
        }
        expect = last + 1;
    }
    if expect > count + 1 {
        return Ok(Some(format!("rows end at seq {} of {count}", expect - 1)));
    }
    Ok(None)
}
