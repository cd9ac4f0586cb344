//! The zstd archiver: old days compressed, queries unchanged, writers respected.

use std::path::Path;
use std::time::Duration;

use tickrec::store::archive::{self, ArchiveFormat, Outcome};
use tickrec::store::{layout, SqliteOptions};
use tickrec::tick::Timestamp;

use super::cli::tickrec;
use super::util::*;

/// Ticks on three days: two old ones and today.
fn fill(db: &Path) {
    let today = chrono::Utc::now().date_naive();
    let mut input = String::new();
    for (k, day) in [
        today - chrono::Days::new(10),
        today - chrono::Days::new(9),
        today,
    ]
    .iter()
    .enumerate()
    {
        for i in 0..300 {
            let sym = ["EURUSD", "USDJPY", "GBPUSD"][i % 3];
            input.push_str(&format!(
                "{{\"symbol\":\"{sym}\",\"bid\":\"1.{:05}\",\"ask\":\"1.{:05}\",\"bid_size\":1000000,\"source\":\"LP{k}\",\"ts_event\":\"{day}T{:02}:{:02}:00.123456789Z\"}}\n",
                i * 7 % 100_000,
                i * 7 % 100_000 + 3,
                i / 60,
                i % 60
            ));
        }
    }
    let out = tickrec(db, &["ingest"], Some(&input));
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn queries(db: &Path) -> Vec<String> {
    let today = chrono::Utc::now().date_naive();
    let mut outs = Vec::new();
    for args in [
        vec!["query", "recent", "EURUSD", "-n", "150", "--format", "csv"],
        vec![
            "query", "recent", "USDJPY", "-n", "1000", "--format", "jsonl",
        ],
    ] {
        outs.push(text(&tickrec(db, &args, None).stdout));
    }
    let from = (today - chrono::Days::new(11)).to_string();
    let to = (today + chrono::Days::new(1)).to_string();
    outs.push(text(
        &tickrec(
            db,
            &[
                "query", "range", "GBPUSD", "--from", &from, "--to", &to, "--format", "csv",
            ],
            None,
        )
        .stdout,
    ));
    outs
}

/// (day, ticks, symbols, first, last) of `stats --json`: what must not change.
fn stats(db: &Path) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_slice(&tickrec(db, &["stats", "--json"], None).stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{} {} {} {} {}",
                d["day"], d["ticks"], d["symbols"], d["first_ts_event"], d["last_ts_event"]
            )
        })
        .collect()
}

#[test]
fn archived_days_answer_queries_exactly_as_before_and_today_is_never_archived() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    fill(&db);
    let (before_q, before_s) = (queries(&db), stats(&db));
    assert_eq!(
        before_q[2].lines().count(),
        301,
        "header + 300 GBPUSD rows: {}",
        before_q[2]
    );

    let out = tickrec(&db, &["archive", "--older-than", "1d"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert_eq!(
        report.matches("archived 20").count(),
        2,
        "a line per day archived: {report}"
    );
    assert!(
        report.contains("2 archived, 0 skipped, 0 failed"),
        "{report}"
    );
    let days = layout::list_days(&db).unwrap();
    assert_eq!(
        days.iter().map(|d| d.archived).collect::<Vec<_>>(),
        [true, true, false]
    );
    assert!(
        !layout::day_path(&db, days[0].day).exists(),
        "the original is gone"
    );

    assert_eq!(queries(&db), before_q);
    assert_eq!(stats(&db), before_s);
    // Idempotent: a second run finds nothing to do.
    let again = text(&tickrec(&db, &["archive", "--older-than", "1d"], None).stdout);
    assert!(again.contains("0 archived, 0 skipped, 0 failed"), "{again}");

    // unarchive brings the plain file back, same content.
    let day = days[0].day.to_string();
    let out = tickrec(&db, &["unarchive", &day], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!layout::list_days(&db).unwrap()[0].archived);
    assert_eq!(
        files_of_day(&db, days[0].day),
        [format!("ticks_{day}.db"), format!("ticks_{day}.lock")],
        "unarchive leaves the day file and its lock, nothing of its work"
    );
    assert_eq!(queries(&db), before_q);

    // The same round trip through the older form.
    let day = days[1].day.to_string();
    let out = tickrec(&db, &["unarchive", &day], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let args = ["archive", "--older-than", "1d", "--format", "sqlite-zst"];
    let out = tickrec(&db, &args, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(layout::archive_path(&db, days[1].day).exists());
    let out = tickrec(&db, &["unarchive", &day], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        files_of_day(&db, days[1].day),
        [format!("ticks_{day}.db"), format!("ticks_{day}.lock")]
    );
    assert_eq!(queries(&db), before_q);
}

/// The names in `day`'s month folder that belong to `day`, sorted.
/// Archives `day` (zstd level 3: quick) with the default SQLite options.
fn archive_at_3(base: &Path, day: chrono::NaiveDate, format: ArchiveFormat) -> Outcome {
    archive::archive_day(base, day, format, Some(3), &SqliteOptions::default(), false).unwrap()
}

fn files_of_day(base: &Path, day: chrono::NaiveDate) -> Vec<String> {
    let folder = layout::day_path(base, day);
    let folder = folder.parent().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(&day.to_string()))
        .collect();
    names.sort();
    names
}

/// What could go wrong: archiving a file a writer still appends to loses what it writes after
/// the copy, or corrupts the file under it.
#[test]
fn a_day_file_a_writer_holds_is_never_archived_and_a_late_tick_restores_an_archived_day() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    let old = ts("2026-10-01T10:00:00Z");
    let rec = default_recorder(base);
    rec.store_tick(tick(&rec, "EURUSD", old, "1.1", "1.2"))
        .unwrap();
    // Committed: the writer holds the file.
    let db = layout::day_path(base, old.day());
    wait_until(Duration::from_secs(10), "the tick committed", || {
        committed_ticks(&db) == 1
    });
    let outcome = archive_at_3(base, old.day(), ArchiveFormat::Parquet);
    assert!(
        matches!(&outcome, Outcome::Skipped { why, .. } if why.contains("writer")),
        "{outcome:?}"
    );
    rec.shutdown();

    // The writer has let go of the day. (A child process another test forks at that moment
    // holds a copy of the lock's descriptor until it execs: hence a wait, not one attempt.)
    let mut outcome = None;
    wait_until(Duration::from_secs(10), "the day archived", || {
        let o = archive_at_3(base, old.day(), ArchiveFormat::Parquet);
        let done = matches!(o, Outcome::Archived { .. });
        outcome = Some(o);
        done
    });
    let Some(Outcome::Archived {
        summary,
        archive_bytes,
    }) = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(summary.ticks, 1);
    assert!(archive_bytes > 0 && archive_bytes < summary.raw_bytes);

    // A late tick for that day: the day file comes back, then takes the tick.
    let rec = default_recorder(base);
    rec.store_tick(tick(&rec, "EURUSD", Timestamp(old.0 + 1), "1.3", "1.4"))
        .unwrap();
    let stats = rec.shutdown();
    assert_eq!(stats.ticks_stored, 1);
    assert!(layout::day_path(base, old.day()).exists());
    assert!(!layout::parquet_path(base, old.day()).exists());
    assert_eq!(seqs(&layout::day_path(base, old.day())), [1, 2]);
}

#[test]
fn leftovers_of_an_interrupted_archive_run_do_no_harm() {
    for format in [ArchiveFormat::Parquet, ArchiveFormat::SqliteZst] {
        leftovers_of_an_interrupted_run(format);
    }
}

fn leftovers_of_an_interrupted_run(format: ArchiveFormat) {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    let old = ts("2026-10-01T10:00:00Z");
    let rec = default_recorder(base);
    rec.store_tick(tick(&rec, "EURUSD", old, "1.1", "1.2"))
        .unwrap();
    rec.shutdown();
    // A crash mid-run left a half-written archive and a compacted copy: the original rules.
    let zst = match format {
        ArchiveFormat::Parquet => layout::parquet_path(base, old.day()),
        ArchiveFormat::SqliteZst => layout::archive_path(base, old.day()),
    };
    let tmp = format!("{}.tmp", zst.display());
    std::fs::write(&tmp, b"half an archive").unwrap();
    assert!(!layout::list_days(base).unwrap()[0].archived);
    assert_eq!(all_rows(base, "EURUSD").len(), 1);
    let outcome = archive_at_3(base, old.day(), format);
    assert!(matches!(outcome, Outcome::Archived { .. }));
    assert!(
        !Path::new(&tmp).exists(),
        "the stale temporary was replaced"
    );
    assert_eq!(all_rows(base, "EURUSD").len(), 1);
}

#[test]
fn retention_deletes_only_with_confirmation() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    fill(&db);
    let out = tickrec(
        &db,
        &[
            "archive",
            "--older-than",
            "30d",
            "--delete-older-than",
            "5d",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "no terminal, no --yes: refuse");
    assert_says(&out.stderr, "--yes");
    assert_eq!(layout::list_days(&db).unwrap().len(), 3);
    let out = tickrec(
        &db,
        &[
            "archive",
            "--older-than",
            "30d",
            "--delete-older-than",
            "5d",
            "--yes",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).matches("deleted ").count(), 2);
    assert_eq!(layout::list_days(&db).unwrap().len(), 1);
}

#[test]
fn the_nightly_job_archives_logs_a_line_per_day_is_idempotent_and_reports_by_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    fill(&db);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/nightly-archive.sh");
    let lock = dir.path().join("archive.lock");
    let run = || {
        std::process::Command::new("bash")
            .arg(&script)
            .env("TICKREC_BIN", env!("CARGO_BIN_EXE_tickrec"))
            .env("TICK_DB_PATH", &db)
            .env("OLDER_THAN", "1d")
            .env("LOCK_FILE", &lock)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = run();
    let log = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{log}{}", text(&out.stderr));
    assert_eq!(
        log.matches("tickrec-archive: archived 20").count(),
        2,
        "{log}"
    );
    assert!(log.contains("done: exit 0"), "{log}");
    let again = run();
    assert_eq!(again.status.code(), Some(0));
    assert_says(&again.stdout, "0 archived");
    // An overlapping run backs off with 75.
    let held = std::fs::File::create(&lock).unwrap();
    held.lock().unwrap();
    assert_eq!(run().status.code(), Some(75));
    drop(held);
    // A missing binary is a configuration error.
    let out = std::process::Command::new("bash")
        .arg(&script)
        .env("TICKREC_BIN", "/nonexistent/tickrec")
        .env("LOCK_FILE", &lock)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn sealing_never_grows_a_day_and_changes_no_answer() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    fill(&db);
    let before = queries(&db);
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let days = layout::list_days(&db).unwrap();
    let wal = |p: &Path| tickrec::fsutil::with_suffix(p, "-wal");
    let sizes_before: Vec<u64> = days
        .iter()
        .map(|d| size(&d.path) + size(&wal(&d.path)))
        .collect();
    let out = tickrec(&db, &["seal", "--older-than", "1d"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert_eq!(
        report.matches("sealed ").count(),
        2,
        "old days only: {report}"
    );
    assert!(report.contains("the query directory serves it"), "{report}");
    assert_eq!(queries(&db), before);
    for (d, was) in days.iter().zip(&sizes_before).take(2) {
        let now = size(&d.path) + size(&wal(&d.path));
        assert!(now <= *was, "{}: {was} -> {now} bytes", d.day);
    }
    // A day sealed with indexes by an earlier version gets them dropped, and its space back.
    let old = &days[0].path;
    let conn = rusqlite::Connection::open(old).unwrap();
    conn.execute_batch(archive::SEAL_SQL).unwrap();
    drop(conn);
    let indexed = size(old);
    let out = tickrec(&db, &["seal", "--older-than", "1d"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(size(old) < indexed, "{} -> {}", indexed, size(old));
    let n = sql_int(
        old,
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'ticks_by_%'",
    );
    assert_eq!(n, 0);
    assert_eq!(queries(&db), before);

    // A day from before the directory: rows in arrival order, the ask as its own code, as
    // version 4 wrote them, then upgraded (what this version keeps live of it) and sealed by an
    // earlier version (a covering time index). Sealing now builds packed directory rows in
    // place of the index, stores the asks as distances, and leaves the day no bigger than it
    // was live, answering alike.
    let conn = rusqlite::Connection::open(old).unwrap();
    conn.execute_batch(TO_VERSION_4).unwrap();
    drop(conn);
    // (Version 4 wrote no symbol block files either.)
    tickrec::store::blockfile::remove(old).unwrap();
    let out = tickrec(&db, &["upgrade"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rusqlite_size = |p: &Path| {
        let c = rusqlite::Connection::open(p).unwrap();
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        drop(c);
        size(p) + size(&wal(p))
    };
    let live = rusqlite_size(old);
    let before = queries(&db);
    let own_code = sql_int(old, "SELECT count(*) FROM ticks WHERE ask & 15 != 0");
    assert!(own_code > 0, "the old day's asks are their own codes");
    let conn = rusqlite::Connection::open(old).unwrap();
    conn.execute_batch(
        "CREATE INDEX ticks_by_symbol ON ticks (sym); \
         CREATE INDEX ticks_by_symbol_time ON ticks \
             (sym, ts_event, seq, ts_recv, bid, ask, bid_size, ask_size, src);",
    )
    .unwrap();
    drop(conn);
    let covering = size(old) + size(&wal(old));
    assert_eq!(queries(&db), before, "the covering index answers alike");
    let out = tickrec(&db, &["seal", "--older-than", "1d"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_says(&out.stdout, "the query directory now names 300 ticks");
    let now = size(old) + size(&wal(old));
    assert!(now < covering, "{covering} -> {now}");
    assert!(now <= live, "live {live} -> sealed {now}");
    let n = sql_int(
        old,
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'ticks_by_%'",
    );
    assert_eq!(n, 0, "no per-tick index");
    let packed = sql_int(
        old,
        "SELECT count(*) FROM batches WHERE substr(dir, 1, 1) = x'00'",
    );
    assert!(packed > 0, "packed directory rows");
    assert_eq!(
        sql_int(old, "SELECT count(*) FROM ticks WHERE ask & 15 != 0"),
        0,
        "every ask a distance (one symbol, one number of places)"
    );
    assert_eq!(queries(&db), before, "the directory answers alike");
    let out = tickrec(&db, &["check"], None);
    assert!(out.status.success(), "check: {}", text(&out.stdout));
    // A late tick for the sealed day lands after its packed rows and is found like the rest.
    let late = format!(
        "{{\"symbol\":\"GBPUSD\",\"bid\":\"1.20000\",\"ask\":\"1.20004\",\"source\":\"LATE\",\"ts_event\":\"{}T23:59:59.5Z\"}}\n",
        days[0].day
    );
    let out = tickrec(&db, &["ingest"], Some(&late));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let after = queries(&db);
    assert_eq!(after[..2], before[..2], "recent of other symbols unchanged");
    assert!(
        after[2].contains("1.20004,"),
        "the late tick is in the range: {}",
        after[2]
    );
    assert_eq!(after[2].lines().count(), before[2].lines().count() + 1);
    let out = tickrec(&db, &["check"], None);
    assert!(out.status.success(), "check: {}", text(&out.stdout));
}

/// A day from before the directory too small for one to pay is sealed where it stands: its
/// version kept, an earlier seal's index dropped, never bigger, every answer the same.
#[test]
fn a_small_day_from_before_the_directory_is_sealed_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    fill(&db);
    let days = layout::list_days(&db).unwrap();
    let old = &days[0].path;
    let conn = rusqlite::Connection::open(old).unwrap();
    conn.execute_batch(TO_VERSION_4).unwrap();
    drop(conn);
    // (Version 4 wrote no symbol block files either.)
    tickrec::store::blockfile::remove(old).unwrap();
    let live = std::fs::metadata(old).unwrap().len();
    let before = queries(&db);
    let conn = rusqlite::Connection::open(old).unwrap();
    conn.execute_batch(archive::SEAL_SQL).unwrap();
    drop(conn);
    let out = tickrec(&db, &["seal", "--older-than", "1d"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_says(&out.stdout, "too small for one to pay");
    let size = std::fs::metadata(old).unwrap().len();
    assert!(size <= live, "live {live} -> sealed {size}");
    assert_eq!(
        sql_int(old, "SELECT user_version FROM pragma_user_version"),
        4
    );
    assert_eq!(
        sql_int(
            old,
            "SELECT count(*) FROM sqlite_master WHERE name LIKE 'ticks_by_%'"
        ),
        0
    );
    assert_eq!(queries(&db), before);
    let out = tickrec(&db, &["check"], None);
    assert!(out.status.success(), "check: {}", text(&out.stdout));
}

/// What version 4 wrote, made of a day this version wrote (to_version_4.sql).
pub(crate) const TO_VERSION_4: &str = include_str!("to_version_4.sql");

/// What could go wrong: the cache of decompressed archived days grows past its bound; or it
/// evicts a copy another reader has just made and not yet opened; or the scratch file of a
/// process killed while decompressing a day stays there for good, hundreds of megabytes each.
#[test]
fn the_read_cache_stays_within_its_bound_but_for_the_copies_just_used() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    let rec = default_recorder(base);
    for day in ["2026-10-01", "2026-10-02"] {
        rec.store_tick(tick(
            &rec,
            "EURUSD",
            ts(&format!("{day}T10:00:00Z")),
            "1.1",
            "1.2",
        ))
        .unwrap();
    }
    rec.shutdown();
    for day in ["2026-10-01", "2026-10-02"] {
        archive_at_3(base, ts(day).day(), ArchiveFormat::SqliteZst);
    }
    // A bound smaller than one day: a copy used in the last 10 s stays (its reader, here or in
    // another process, may not have opened it yet); an older one goes as the next is made.
    let store =
        tickrec::store::reader::Store::new(base, SqliteOptions::default()).with_archive_cache(1);
    let copies = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(base.join(".archive-cache"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "db"))
            .collect()
    };
    let mut n = 0;
    store
        .recent("EURUSD", 10, &mut |_| {
            n += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(n, 2, "both archived days answer");
    assert_eq!(copies().len(), 2, "both just used: kept");
    let a_minute_ago = std::time::SystemTime::now() - Duration::from_secs(60);
    for copy in copies() {
        let f = std::fs::File::options().write(true).open(&copy).unwrap();
        f.set_modified(a_minute_ago).unwrap();
    }
    let of = |day: &str| {
        copies()
            .into_iter()
            .filter(|c| c.file_name().unwrap().to_string_lossy().starts_with(day))
            .collect::<Vec<_>>()
    };
    let days = layout::list_days(base).unwrap();
    // Scratch files of copies being made: by a process that ended (killed while making it) and
    // by this one (still making it, as far as anyone can tell).
    let ended = std::process::Command::new("true").spawn().unwrap();
    let ended_pid = ended.id();
    let mut ended = ended;
    ended.wait().unwrap();
    let scratch = |pid: u32, n: u32| base.join(format!(".archive-cache/.2026-10-01-{pid}-{n}.tmp"));
    // (Last written two minutes ago, but for the ended process's second: as if a process of
    // another PID namespace, which looks ended from here, were still writing it.)
    let two_minutes_ago = std::time::SystemTime::now() - Duration::from_secs(120);
    for (pid, n) in [(ended_pid, 7), (std::process::id(), 7), (ended_pid, 8)] {
        std::fs::write(scratch(pid, n), b"half a copy").unwrap();
        if n == 7 {
            let f = std::fs::File::options()
                .write(true)
                .open(scratch(pid, n))
                .unwrap();
            f.set_modified(two_minutes_ago).unwrap();
        }
    }
    // The second day's copy made again: the first's, last used a minute ago, goes, and so does
    // the scratch file of the process that ended.
    std::fs::remove_file(&of("2026-10-02")[0]).unwrap();
    store.scan_day(&days[1], &mut |_| Ok(())).unwrap();
    assert_eq!(of("2026-10-01").len(), 0, "{:?}", copies());
    assert_eq!(of("2026-10-02").len(), 1, "{:?}", copies());
    assert!(!scratch(ended_pid, 7).exists());
    for (pid, n) in [(std::process::id(), 7), (ended_pid, 8)] {
        assert!(scratch(pid, n).exists());
        std::fs::remove_file(scratch(pid, n)).unwrap();
    }
    // The first day's made again: the second's, just made, stays beside it.
    store.scan_day(&days[0], &mut |_| Ok(())).unwrap();
    assert_eq!(copies().len(), 2, "{:?}", copies());
}

/// What could go wrong: a `Store` keeps its day readers open between queries; one that kept
/// answering from what it loaded first would miss new symbols and sources, take the scan path
/// on a day sealed since, or read a file renamed away by the archiver. Each step compares the
/// kept store with a fresh one.
///
/// (Long on purpose: one scenario end to end, its steps sharing what it builds.)
#[test]
fn a_store_kept_open_follows_its_day_through_new_names_sealing_archiving_and_late_ticks() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    let old = ts("2026-10-01T10:00:00Z");
    let write = |n: i64, symbols: &[&str], source: &str, from: i64| {
        let rec = default_recorder(base);
        for i in 0..n {
            let mut t = tick(
                &rec,
                symbols[i as usize % symbols.len()],
                Timestamp(old.0 + from + i),
                "1.1",
                "1.2",
            );
            t.source = rec.names().source(source).unwrap();
            rec.store_tick(t).unwrap();
        }
        assert_eq!(rec.shutdown().ticks_stored, n as u64);
    };
    let answers = |s: &tickrec::store::reader::Store| {
        let mut rows = Vec::new();
        for sym in ["EURUSD", "GBPUSD"] {
            let read = s
                .range(sym, Timestamp(0), Timestamp(i64::MAX), &mut |r| {
                    rows.push(r.clone());
                    Ok(())
                })
                .unwrap();
            assert!(read.broken.is_empty(), "{:?}", read.broken);
            let read = s
                .recent(sym, 1000, &mut |r| {
                    rows.push(r.clone());
                    Ok(())
                })
                .unwrap();
            assert!(read.broken.is_empty(), "{:?}", read.broken);
        }
        rows
    };
    write(100, &["EURUSD"], "LP1", 0);
    let kept = store(base);
    assert_eq!(answers(&kept).len(), 200);
    let mut expected = 200;
    let mut step = |label: &str, added: usize| {
        expected += added;
        let (k, f) = (answers(&kept), answers(&store(base)));
        assert_eq!(k.len(), expected, "{label}");
        assert_eq!(k, f, "{label}: the kept store answers as a fresh one");
    };
    write(300, &["EURUSD", "GBPUSD"], "LP2", 1_000);
    step("a new symbol and a new source", 600);
    let opts = SqliteOptions::default();
    assert!(matches!(
        archive::seal_day(base, old.day(), &opts).unwrap(),
        archive::Sealed::Done { .. }
    ));
    step("sealed", 0);
    // The day lock is an flock: a child another test forks in this process holds the lock's
    // file until it execs, so "in use by a writer" may last a moment after our writer is gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let outcome = loop {
        let outcome = archive_at_3(base, old.day(), ArchiveFormat::Parquet);
        match &outcome {
            Outcome::Skipped { why, .. }
                if why.contains("writer") && std::time::Instant::now() < deadline =>
            {
                std::thread::yield_now()
            }
            _ => break outcome,
        }
    };
    assert!(matches!(outcome, Outcome::Archived { .. }), "{outcome:?}");
    step("archived", 0);
    write(1, &["GBPUSD"], "LP1", 5_000);
    assert!(
        layout::day_path(base, old.day()).exists(),
        "the late tick brought the day back"
    );
    step("a late tick", 2);
}

/// What could go wrong: a Parquet archive damaged on disk (a flipped byte in its pages, a cut
/// tail) answers queries with wrong ticks, panics the reader, or passes `check`.
#[test]
fn a_damaged_parquet_archive_is_reported_by_check_and_queries_never_pass_it_off() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    fill(&db);
    let out = tickrec(&db, &["archive", "--older-than", "1d"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let days = layout::list_days(&db).unwrap();
    let (a, b) = (&days[0], &days[1]);
    assert!(a.path.extension().is_some_and(|e| e == "parquet"), "{a:?}");
    let out = tickrec(&db, &["check"], None);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    // Flip one byte in each column chunk region of the first archive: somewhere a value changes.
    let mut bytes = std::fs::read(&a.path).unwrap();
    let n = bytes.len();
    for at in (n / 10..n / 2).step_by(97) {
        bytes[at] ^= 0x10;
    }
    std::fs::write(&a.path, &bytes).unwrap();
    // Cut the second one's footer off.
    let len = std::fs::metadata(&b.path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&b.path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let out = tickrec(&db, &["check"], None);
    let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{report}");
    for d in [a, b] {
        assert!(
            report.contains(&d.path.file_name().unwrap().to_string_lossy().to_string()),
            "check names {}: {report}",
            d.path.display()
        );
    }
    // Today's ticks still answer; the damaged days are named, the exit code says so.
    let today = chrono::Utc::now().date_naive();
    let from = (today - chrono::Days::new(11)).to_string();
    let to = (today + chrono::Days::new(1)).to_string();
    let out = tickrec(
        &db,
        &[
            "query", "range", "EURUSD", "--from", &from, "--to", &to, "--format", "csv",
        ],
        None,
    );
    assert_ne!(out.status.code(), Some(0));
    assert_says(
        &out.stderr,
        b.path.file_name().unwrap().to_string_lossy().as_ref(),
    );
    assert!(
        text(&out.stdout).lines().count() > 1,
        "today's rows still come"
    );
}

/// What could go wrong: a reader lists a day, then archiving (or `unarchive`) renames the day
/// into its other form before the reader opens the file. Reads of the day as listed failed
/// ("unable to open database file"), and `check` called it "not a regular file", BROKEN, which
/// `--repair` acts on. Each must answer from the day's new form, the same rows; a day deleted
/// meanwhile is an error of the read and a day `check` could not check, never a broken one.
#[test]
fn a_day_archived_or_restored_after_it_was_listed_is_read_and_checked_in_its_new_form() {
    use tickrec::store::check;
    use tickrec::store::layout::Form;
    use tickrec::store::reader::{AfterSeqBuffers, Store, Symbols};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    fill(&db);
    let day = chrono::Utc::now().date_naive() - chrono::Days::new(10);
    let listed = || {
        layout::list_days(&db)
            .unwrap()
            .into_iter()
            .find(|d| d.day == day)
            .unwrap()
    };
    let store = Store::new(&db, Default::default());
    let scan = |d: &layout::DayFile| {
        let mut rows = Vec::new();
        store
            .scan_day(d, &mut |r| {
                rows.push(r.clone());
                Ok(())
            })
            .map(|_| rows)
    };
    let plain = listed();
    assert_eq!(plain.form, Form::Live);
    let want = scan(&plain).unwrap();
    assert_eq!(want.len(), 300);
    let opts = SqliteOptions::default();
    // Each step renames the day listed before it into another form.
    let steps = [
        ("archived to Parquet", Some(ArchiveFormat::Parquet)),
        ("restored", None),
        ("archived to .db.zst", Some(ArchiveFormat::SqliteZst)),
    ];
    for (what, archived_as) in steps {
        let form = archived_as.map_or(Form::Live, ArchiveFormat::form);
        let stale = listed();
        match archived_as {
            None => {
                archive::restore_day(&db, day, &opts).unwrap();
            }
            Some(format) => {
                // No writer holds the day, but for a moment another process may: a child that
                // another test of this process forks between two steps holds a copy of every
                // descriptor until it runs its program, the restore's lock among them (once in
                // CI: "in use by a writer"). Archiving skips a day it cannot lock at once, so
                // it is tried again until it can, or a deadline.
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                let outcome = loop {
                    let outcome = archive_at_3(&db, day, format);
                    match &outcome {
                        Outcome::Skipped { why, .. }
                            if why == "in use by a writer"
                                && std::time::Instant::now() < deadline =>
                        {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        _ => break outcome,
                    }
                };
                assert!(
                    matches!(outcome, Outcome::Archived { .. }),
                    "{what}: {outcome:?}"
                );
            }
        }
        assert!(!stale.path.exists(), "{what}: the listed file is gone");
        assert_eq!(scan(&stale).unwrap(), want, "{what}: scan");
        assert_eq!(store.max_seq(&stale).unwrap(), 300, "{what}: max_seq");
        let mut seqs = Vec::new();
        let got = store
            .after_seq(
                &stale,
                &Symbols::All,
                (100, 4096),
                false,
                &mut AfterSeqBuffers::default(),
                &mut |r| {
                    seqs.push(r.seq.unwrap());
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!(seqs, (101..=300).collect::<Vec<i64>>(), "{what}: after_seq");
        assert_eq!(got.last, 300, "{what}");
        let (checked, verdict) = check::check_day(&db, &stale, &opts);
        assert!(verdict.ok(), "{what}: {verdict:?}");
        assert_eq!((checked.form, verdict.archived), (form, form != Form::Live));
        assert_eq!(
            verdict.file,
            listed().path,
            "{what}: the file checked is named"
        );
    }
    let stale = listed();
    assert!(archive::delete_day(&db, day).unwrap());
    assert!(scan(&stale).is_err(), "a deleted day is an error, not rows");
    let (_, verdict) = check::check_day(&db, &stale, &opts);
    assert!(
        verdict.problems.is_empty() && verdict.unchecked.is_some(),
        "a deleted day is not checked, not broken: {verdict:?}"
    );
}

/// What could go wrong: readers of archived days whose copies do not fit the cache together,
/// in two processes (or two stores): each copy made evicts the others, and a copy evicted
/// between its making and its opening failed the read ("unable to open database file"), and
/// with it a query or a following tail, though the archive is whole.
#[test]
fn readers_whose_archived_copies_evict_each_other_still_read_every_day() {
    use std::time::Instant;
    use tickrec::store::reader::Store;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    fill(&db);
    let today = chrono::Utc::now().date_naive();
    for back in [10, 9] {
        archive_at_3(
            &db,
            today - chrono::Days::new(back),
            ArchiveFormat::SqliteZst,
        );
    }
    let days: Vec<layout::DayFile> = layout::list_days(&db)
        .unwrap()
        .into_iter()
        .filter(|d| d.archived)
        .collect();
    assert_eq!(days.len(), 2);
    let deadline = Instant::now() + Duration::from_secs(3);
    let reads: Vec<u32> = std::thread::scope(|s| {
        let readers: Vec<_> = (0..2)
            .map(|k| {
                let (db, days) = (&db, &days);
                s.spawn(move || {
                    // A cache of one byte: every copy made evicts every other.
                    let store = Store::new(db, Default::default()).with_archive_cache(1);
                    let mut reads = 0u32;
                    while Instant::now() < deadline {
                        let day = &days[(reads as usize + k) % 2];
                        let mut rows = 0;
                        store
                            .scan_day(day, &mut |_| {
                                rows += 1;
                                Ok(())
                            })
                            .unwrap_or_else(|e| panic!("read {reads} of {}: {e}", day.day));
                        assert_eq!(rows, 300);
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        readers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert!(
        reads.iter().all(|&n| n >= 20),
        "the race ran: {reads:?} reads"
    );
}
