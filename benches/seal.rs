//! Sealing a day from before the directory, measured against the alternatives: bytes per tick
//! and the whole `tickrec query` process for one symbol over one hour and for its newest 100
//! (median of 21 runs), on the same generated day (128 symbols, random nanosecond times).
//!
//! `cargo bench --bench seal` (TICKS=2000000 SYMBOLS=128 RUNS=21 by default; KEEP=1 keeps the
//! files and prints where). The figures are
//! quoted in the header of schema/seal.sql.
//!
//! The day is written by this version's writer, then turned into what version 4 wrote: rows
//! in arrival order (by event time), renumbered, the ask as its own code, no directory. Each
//! form is a copy of that file:
//! - as written by this version (the directory, for reference),
//! - the old day as it is (scanned),
//! - sealed by this version (`tickrec seal`: packed directory rows, asks as distances),
//! - the two slim indexes of schema/seal.sql (what the previous version's seal built),
//! - the covering index older versions built;
//!
//! then, in one process, the sealed day through `Store` against the slim indexes and a table
//! clustered by (symbol, time) `WITHOUT ROWID`, through SQL.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use tickrec::store::layout;
use tickrec::tick::Timestamp;

mod common;
use common::env;

/// What version 4 wrote, made of a day this version wrote (see the module doc).
const TO_VERSION_4: &str = include_str!("../tests/it/to_version_4.sql");

const COVERING: &str = "CREATE INDEX ticks_by_symbol ON ticks (sym);
    CREATE INDEX ticks_by_symbol_time ON ticks
        (sym, ts_event, seq, ts_recv, bid, ask, bid_size, ask_size, src);";

/// Median wall time in ms of `tickrec --db base args...`, `runs` times.
fn whole_process_ms(base: &Path, args: &[&str], runs: usize) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let out = Command::new(env!("CARGO_BIN_EXE_tickrec"))
                .arg("--db")
                .arg(base)
                .args(args)
                .output()
                .expect("run tickrec");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn copy_base(from: &Path, to: &Path, day: &Path) -> std::io::Result<PathBuf> {
    let rel = day.strip_prefix(from).expect("day under base");
    let dest = to.join(rel);
    std::fs::create_dir_all(dest.parent().expect("parent"))?;
    std::fs::copy(day, &dest)?;
    Ok(dest)
}

/// The day clustered by (symbol, time) in a `WITHOUT ROWID` table, `seq` kept as a column.
const CLUSTERED: &str = "
    DROP VIEW IF EXISTS ticks_v;
    CREATE TABLE clustered (seq INTEGER NOT NULL, sym INTEGER NOT NULL, ts_event INTEGER NOT NULL,
        ts_recv INTEGER NOT NULL, bid INTEGER, ask INTEGER, bid_size INTEGER, ask_size INTEGER,
        src INTEGER NOT NULL, PRIMARY KEY (sym, ts_event, seq)) WITHOUT ROWID;
    INSERT INTO clustered SELECT seq, sym, ts_event, ts_recv, bid, ask, bid_size, ask_size, src
        FROM ticks ORDER BY sym, ts_event, seq;
    DROP TABLE ticks;
    VACUUM;";

/// The forms no `tickrec query` reads, against the ones it does, in one process: a fresh
/// connection (or `Store`) per run, then one symbol's hour, median of `runs` (SQL reads the
/// nine stored integers of each row; `Store` decodes them into ticks besides). The clustered
/// table needs an index on `seq` besides, for `tail` cursors and `recent`, measured apart.
fn in_process(
    dir: &Path,
    old_dir: &Path,
    old: &Path,
    runs: usize,
    per_tick: impl Fn(&Path) -> f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let (lo, hi) = (10 * 3_600_000_000_000i64, 11 * 3_600_000_000_000i64);
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let sql_ms = |file: &Path, sql: &str| -> Result<(f64, usize), Box<dyn std::error::Error>> {
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..runs {
            let t = Instant::now();
            let conn = rusqlite::Connection::open(file)?;
            let sym: i64 =
                conn.query_row("SELECT id FROM symbols WHERE name = 'EURUSD'", [], |r| {
                    r.get(0)
                })?;
            let mut stmt = conn.prepare(sql)?;
            let mut q = stmt.query([sym, lo, hi])?;
            rows = 0;
            while let Some(r) = q.next()? {
                for c in 0..9 {
                    let _: Option<i64> = r.get(c)?;
                }
                rows += 1;
            }
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        Ok((median(times), rows))
    };
    println!("\nin one process, a fresh connection per run, 1 h of one symbol, median of {runs}:");
    println!("bytes/tick  1 h (ms)  form");
    let sealed = dir.join("form0");
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let store = tickrec::store::reader::Store::new(&sealed, Default::default());
        store.range(
            "EURUSD",
            Timestamp(common::DAY0 + lo),
            Timestamp(common::DAY0 + hi),
            &mut |_| Ok(()),
        )?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let packed = copy_base(
        &sealed,
        &dir.join("packed-copy"),
        &sealed.join(old.strip_prefix(old_dir)?),
    )?;
    println!(
        "{:>10.1}  {:>8.2}  sealed by this version, through `Store` (packed directory rows)",
        per_tick(&packed),
        median(times)
    );
    let slim = dir.join("form1").join(old.strip_prefix(old_dir)?);
    let (ms, _) = sql_ms(
        &slim,
        "SELECT * FROM ticks INDEXED BY ticks_by_symbol_time \
         WHERE sym = ?1 AND ts_event >= ?2 AND ts_event < ?3 ORDER BY ts_event, seq",
    )?;
    println!(
        "{:>10.1}  {ms:>8.2}  the two slim indexes, SQL",
        per_tick(&slim)
    );
    let clustered = copy_base(old_dir, &dir.join("clustered"), old)?;
    rusqlite::Connection::open(&clustered)?.execute_batch(CLUSTERED)?;
    let (ms, _) = sql_ms(
        &clustered,
        "SELECT * FROM clustered WHERE sym = ?1 AND ts_event >= ?2 AND ts_event < ?3 \
         ORDER BY ts_event, seq",
    )?;
    let bare = per_tick(&clustered);
    rusqlite::Connection::open(&clustered)?
        .execute_batch("CREATE INDEX clustered_by_seq ON clustered (seq); VACUUM;")?;
    println!(
        "{bare:>10.1}  {ms:>8.2}  clustered WITHOUT ROWID (sym, ts_event, seq), SQL; {:.1} bytes/tick with the index on seq",
        per_tick(&clustered)
    );
    Ok(())
}

/// Long on purpose: one benchmark from input to figures.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n = env("TICKS", 2_000_000);
    let symbols = env("SYMBOLS", 128);
    let runs = env("RUNS", 21);
    let dir = tempfile::tempdir()?;
    let written = dir.path().join("written");
    common::write_day(&written, n, symbols, true)?;
    let day0 = common::DAY0;
    let day = Timestamp(day0).day();
    let day_file = layout::day_path(&written, day);
    rusqlite::Connection::open(&day_file)?.query_row(
        "PRAGMA wal_checkpoint(TRUNCATE)",
        [],
        |_| Ok(()),
    )?;
    let old_dir = dir.path().join("old");
    let old = copy_base(&written, &old_dir, &day_file)?;
    rusqlite::Connection::open(&old)?.execute_batch(TO_VERSION_4)?;
    let per_tick = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len()) as f64 / n as f64;
    let old_bytes = per_tick(&old);

    let from = "2026-11-20T10:00:00Z";
    let to = "2026-11-20T11:00:00Z";
    let sym = "EURUSD";
    let answer = |base: &Path| -> Vec<u8> {
        let out = Command::new(env!("CARGO_BIN_EXE_tickrec"))
            .arg("--db")
            .arg(base)
            .args([
                "query", "range", sym, "--from", from, "--to", to, "--format", "csv",
            ])
            .output()
            .expect("run tickrec");
        out.stdout
    };
    let expected = answer(&old_dir);
    let measure = |label: &str, base: &Path, file: &Path, secs: Option<f64>| {
        // (The day as written has other `seq`s: the old day's rows were renumbered.)
        assert!(
            base == written || answer(base) == expected,
            "{label}: another answer"
        );
        let range = whole_process_ms(
            base,
            &[
                "query", "range", sym, "--from", from, "--to", to, "--format", "csv",
            ],
            runs,
        );
        let recent = whole_process_ms(
            base,
            &["query", "recent", sym, "-n", "100", "--format", "csv"],
            runs,
        );
        let made = secs.map_or(String::new(), |s| format!("  (made in {s:.1} s)"));
        println!(
            "{:>10.1}  {range:>8.1}  {recent:>8.1}  {label}{made}",
            per_tick(file)
        );
    };
    println!(
        "{n} ticks, {symbols} symbols, random ns times; whole `tickrec query` process, median of {runs}"
    );
    println!("bytes/tick  1 h (ms)  recent 100 (ms)  form");
    let start = whole_process_ms(&written, &["--version"], runs);
    measure(
        "written by this version (directory)",
        &written,
        &day_file,
        None,
    );
    measure("version 4 day, as it is (scanned)", &old_dir, &old, None);
    for (label, how) in [
        ("sealed by this version (packed directory rows)", 0),
        ("the two slim indexes (schema/seal.sql)", 1),
        ("covering (sym, ts_event, every column) + (sym)", 2),
    ] {
        let base = dir.path().join(format!("form{how}"));
        let file = copy_base(&old_dir, &base, &old)?;
        let t = Instant::now();
        match how {
            0 => {
                let out = Command::new(env!("CARGO_BIN_EXE_tickrec"))
                    .arg("--db")
                    .arg(&base)
                    .args(["seal", "--older-than", "1d"])
                    .output()?;
                assert!(out.status.success());
            }
            1 => rusqlite::Connection::open(&file)?
                .execute_batch(tickrec::store::archive::SEAL_SQL)?,
            _ => rusqlite::Connection::open(&file)?.execute_batch(COVERING)?,
        }
        measure(label, &base, &file, Some(t.elapsed().as_secs_f64()));
    }
    println!("(the version 4 day was {old_bytes:.1} bytes/tick; `tickrec --version` alone {start:.1} ms)");
    in_process(dir.path(), &old_dir, &old, runs, per_tick)?;
    if std::env::var_os("KEEP").is_some() {
        println!("files kept in {}", dir.keep().display());
    }
    Ok(())
}
