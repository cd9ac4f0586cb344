//! Maintenance meeting faults: `seal`, `archive`, `unarchive`, `export` and `migrate` on a
//! full disk or killed midway, and late ticks racing `archive` and `unarchive`.

use super::*;

/// What could go wrong: a late tick landing between the archiver's unlink and the writer's
/// open used to create a fresh, tiny day file that queries preferred and the next `archive`
/// renamed over the good archive: a whole day lost. Ingests of late ticks for one day run in a
/// loop while `archive` and `unarchive` of that day run in a loop; at the end the day holds
/// every tick every ingest stored, each once.
#[test]
fn late_ticks_racing_archive_and_unarchive_of_their_day_are_all_kept_exactly_once() {
    let secs: u64 = std::env::var("TICKREC_RACE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let day = "2026-01-05";
    let day_t0: i64 = 1_767_571_200_000_000_000; // 2026-01-05T00:00:00Z
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let archiver = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut archived, mut restored) = (0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                let out = super::cli::tickrec(&db, &["archive", "--older-than", "1d"], None);
                let text = String::from_utf8_lossy(&out.stdout);
                assert!(
                    out.status.success(),
                    "{text}{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                archived += u32::from(text.contains(&format!("archived {day}:")));
                let out = super::cli::tickrec(&db, &["unarchive", day], None);
                restored += u32::from(out.status.success());
            }
            (archived, restored)
        })
    };
    let started = Instant::now();
    let mut stored = 0u64;
    let mut runs = 0u64;
    while started.elapsed() < Duration::from_secs(secs) {
        let mut input = String::new();
        for i in 0..200u64 {
            let n = runs * 200 + i;
            input.push_str(&format!(
                "{{\"symbol\":\"EURUSD\",\"bid\":1.1,\"ask\":1.2,\"ts_event\":{}}}\n",
                day_t0 + n as i64 * 1_000_000
            ));
        }
        let out = super::cli::tickrec(&db, &["ingest", "-"], Some(&input));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("accounted: accepted 200 = stored 200"),
            "{text}"
        );
        stored += 200;
        runs += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let (archived, restored) = archiver.join().unwrap();
    assert!(
        archived > 0 && restored > 0 && runs > 10,
        "the race ran: {archived} archives, {restored} restores, {runs} ingests"
    );
    let rows = all_rows(&db, "EURUSD");
    assert_eq!(
        rows.len() as u64,
        stored,
        "{archived} archives, {restored} restores"
    );
    let mut ts: Vec<i64> = rows.iter().map(|r| r.ts_event.0).collect();
    ts.sort_unstable();
    ts.dedup();
    assert_eq!(ts.len() as u64, stored, "each tick once");
    let days = tickrec::store::layout::list_days(&db).unwrap();
    assert_eq!(days.len(), 1, "one day, in one form: {days:?}");
}

/// What could go wrong: sealing a day from before the directory rewrites its rows (asks as
/// distances) and compacts the file, which needs room; on a disk without it the seal must fail
/// naming the day, leave the day exactly as it was (every answer, `check` clean), and succeed
/// once room is made.
#[test]
fn sealing_an_old_day_on_a_full_disk_fails_cleanly_and_succeeds_once_there_is_room() {
    use super::cli::tickrec;
    let scratch = tempfile::tempdir().unwrap();
    let made = scratch.path().join("db");
    let mut input = String::new();
    for i in 0..60_000u32 {
        let sym = ["EURUSD", "GBPUSD", "USDJPY", "AUDUSD"][(i * 7 % 11 % 4) as usize];
        input.push_str(&format!(
            "{{\"symbol\":\"{sym}\",\"bid\":\"1.{:05}\",\"ask\":\"1.{:05}\",\"bid_size\":1000000,\"ts_event\":\"2026-11-02T{:02}:{:02}:{:02}.{:09}Z\"}}\n",
            i % 90_000,
            i % 90_000 + 7,
            i / 3600 % 24,
            i / 60 % 60,
            i % 60,
            i * 7_919 % 1_000_000_000
        ));
    }
    let out = tickrec(&made, &["ingest"], Some(&input));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rel = Path::new("2026/11/ticks_2026-11-02.db");
    let conn = rusqlite::Connection::open(made.join(rel)).unwrap();
    conn.execute_batch(super::archive::TO_VERSION_4).unwrap();
    drop(conn);
    // (Version 4 wrote no symbol block files either.)
    tickrec::store::blockfile::remove(&made.join(rel)).unwrap();
    let live = std::fs::metadata(made.join(rel)).unwrap().len();
    // A disk with room for the day and a little more: not for a second copy of its rows.
    let fs = Tmpfs::mount(live / 1024 + 512, false);
    let db = fs.path().join("db");
    std::fs::create_dir_all(db.join("2026/11")).unwrap();
    std::fs::copy(made.join(rel), db.join(rel)).unwrap();
    let before = day_answers(&db);
    let out = tickrec(&db, &["seal", "--older-than", "1d"], None);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "a seal without room must fail");
    assert!(said.contains("2026-11-02"), "names the day: {said}");
    assert!(day_answers(&db) == before, "the day answers as before");
    succeeds(&db, &["check"]);
    fs.grow(live / 1024 * 3 + 1024);
    succeeds(&db, &["seal", "--older-than", "1d"]);
    assert!(
        day_answers(&db) == before,
        "sealed, the day answers as before"
    );
    let sealed = std::fs::metadata(db.join(rel)).unwrap().len();
    assert!(sealed <= live, "live {live} -> sealed {sealed}");
    succeeds(&db, &["check"]);
}

/// What could go wrong: `seal` of a day from before the directory rewrites rows, then compacts
/// the file; killed (SIGKILL) in either step, the day must answer exactly as before and pass
/// `check`, and the next seal must finish the job (compacting what a killed one left
/// part-empty), leaving the day no bigger than it was.
#[test]
fn a_seal_killed_while_rewriting_or_compacting_changes_no_answer_and_the_next_one_finishes() {
    let (_dir, db) = busy_day_store(600_000);
    let day = db.join(BUSY_DAY);
    assert_eq!(sql_int(&day, "SELECT count(*) FROM ticks"), 600_000);
    let conn = rusqlite::Connection::open(&day).unwrap();
    conn.execute_batch(super::archive::TO_VERSION_4).unwrap();
    drop(conn);
    // (Version 4 wrote no symbol block files either.)
    tickrec::store::blockfile::remove(&day).unwrap();
    let live = std::fs::metadata(&day).unwrap().len();
    let before = day_answers(&db);
    let wal = tickrec::fsutil::with_suffix(&day, "-wal");
    let wal_len = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    // Kill points, each a condition on the WAL: growing with the rewrite; then, after the
    // checkpoint that empties it, growing again with the compaction.
    for phase in ["rewriting", "compacting"] {
        let mut stage = 0;
        let ended = kill_when(&db, &["seal", "--older-than", "1d"], || {
            let n = wal_len();
            stage = match (phase, stage) {
                (_, 0) if n > 2 << 20 => 1,
                ("compacting", 1) if n < 1 << 16 => 2,
                ("compacting", 2) if n > 2 << 20 => 3,
                (_, s) => s,
            };
            (phase == "rewriting" && stage == 1) || stage == 3
        });
        assert!(
            ended.is_none(),
            "{phase}: the seal ended before its kill point: {ended:?}"
        );
        assert!(
            day_answers(&db) == before,
            "killed while {phase}: another answer"
        );
        succeeds(&db, &["check"]);
    }
    succeeds(&db, &["seal", "--older-than", "1d"]);
    assert!(day_answers(&db) == before, "sealed: another answer");
    let sealed = std::fs::metadata(&day).unwrap().len();
    assert!(sealed <= live, "live {live} -> sealed {sealed}");
    assert_eq!(
        sql_int(&day, "SELECT count(*) FROM batches WHERE dir IS NULL"),
        0
    );
    succeeds(&db, &["check"]);
}

/// Runs `tickrec --db db args…` and kills it (SIGKILL) as soon as `due` holds, polling;
/// `None` when it was killed, its exit status when it ended first.
fn kill_when(
    db: &Path,
    args: &[&str],
    mut due: impl FnMut() -> bool,
) -> Option<std::process::ExitStatus> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tickrec"))
        .arg("--db")
        .arg(db)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        assert!(
            Instant::now() < deadline,
            "{args:?} neither ended nor was killed"
        );
        if due() {
            child.kill().unwrap();
            child.wait().unwrap();
            return None;
        }
        std::thread::yield_now();
    }
}

/// What could go wrong: `archive` killed (SIGKILL) while it writes the Parquet file, or right
/// after it renamed it into place, must leave the day answering exactly as before (from the
/// day file, or from the archive once it is whole), `check` clean, and the next run must
/// finish the archive.
#[test]
fn an_archive_killed_while_writing_or_after_its_rename_changes_no_answer_and_the_next_finishes() {
    let (_dir, db) = busy_day_store(600_000);
    let day = db.join(BUSY_DAY);
    let parquet = db.join("2026/11/ticks_2026-11-02.parquet");
    let tmp = tickrec::fsutil::with_suffix(&parquet, ".tmp");
    let before = day_answers(&db);
    for phase in ["writing", "renamed"] {
        let ended = kill_when(&db, &["archive", "--older-than", "1d"], || match phase {
            "writing" => std::fs::metadata(&tmp).is_ok_and(|m| m.len() > 0),
            _ => parquet.exists(),
        });
        if phase == "writing" {
            assert!(
                ended.is_none(),
                "the archive ended before its kill point: {ended:?}"
            );
            assert!(day.exists() && !parquet.exists(), "the day file stays");
        }
        // (Killed right after the rename, or a moment later: either way nothing changes.)
        assert!(
            day_answers(&db) == before,
            "killed while {phase}: another answer"
        );
        succeeds(&db, &["check"]);
    }
    succeeds(&db, &["archive", "--older-than", "1d"]);
    assert!(
        parquet.exists() && !day.exists() && !tmp.exists(),
        "archived whole"
    );
    assert!(day_answers(&db) == before, "archived: another answer");
    succeeds(&db, &["check"]);
}

/// Every file under `root`, relative, sorted.
fn files_under(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// Space in use on the tmpfs at `path`, KiB.
fn used_kib(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=used", "-k"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().nth(1).unwrap().trim().parse().unwrap()
}

/// What could go wrong: `archive`, `unarchive` or `export` meets a full disk and leaves a
/// half-written file that later reads as whole (an archive short of ticks, an export partition
/// a rerun skips), or removes the form it was copying from. Each must fail naming the day,
/// change no answer, leave nothing but the files it started with, and succeed once there is
/// room.
///
/// (Long on purpose: one disk, filled and grown three times, one step after another.)
#[test]
fn archive_unarchive_and_export_on_a_full_disk_fail_cleanly_and_succeed_once_there_is_room() {
    use super::cli::tickrec;
    let (scratch, made) = busy_day_store(200_000);
    let rel = Path::new(BUSY_DAY);
    let live_kib = std::fs::metadata(made.join(rel)).unwrap().len() / 1024;
    let fails = |db: &Path, args: &[&str]| {
        let out = tickrec(db, args, None);
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{args:?} without room must fail");
        assert!(
            said.contains("2026-11-02") && said.contains("full"),
            "{args:?} names the day and the cause: {said}"
        );
    };
    // How big its smaller archive is, learnt on a copy.
    let trial = scratch.path().join("trial");
    copy_busy_day(&made, &trial);
    succeeds(&trial, &["archive", "--older-than", "1d"]);
    let archive_kib = std::fs::metadata(trial.join("2026/11/ticks_2026-11-02.parquet"))
        .unwrap()
        .len()
        / 1024;
    // Room for the day file, not for an archive of it beside it.
    let fs = Tmpfs::mount(live_kib + archive_kib / 2, false);
    let db = fs.path().join("db");
    copy_busy_day(&made, &db);
    let before = day_answers(&made);
    assert!(day_answers(&db) == before);
    let files = files_under(fs.path());
    for format in ["parquet", "sqlite-zst"] {
        fails(&db, &["archive", "--older-than", "1d", "--format", format]);
        assert_eq!(
            files_under(fs.path()),
            files,
            "{format}: nothing left behind"
        );
        assert!(
            day_answers(&db) == before,
            "{format}: the day answers as before"
        );
    }
    succeeds(&db, &["check"]);
    fs.grow(live_kib * 3);
    succeeds(&db, &["archive", "--older-than", "1d"]);
    assert!(
        day_answers(&db) == before,
        "archived, the day answers as before"
    );
    assert!(!db.join(rel).exists(), "the day is in its archive alone");

    // Room for the archive, not for the day file it would restore.
    let files = files_under(fs.path());
    fs.grow(used_kib(fs.path()) + live_kib / 2);
    fails(&db, &["unarchive", "2026-11-02"]);
    assert_eq!(
        files_under(fs.path()),
        files,
        "unarchive: nothing left behind"
    );
    assert!(day_answers(&db) == before, "the archive answers as before");
    succeeds(&db, &["check"]);
    fs.grow(used_kib(fs.path()) + live_kib * 3);
    succeeds(&db, &["unarchive", "2026-11-02"]);
    assert!(
        day_answers(&db) == before,
        "unarchived, the day answers as before"
    );

    // An export into what is left: a partition is whole or absent, and a rerun completes it.
    let tree = fs.path().join("export");
    let export = |extra: &[&str]| {
        let mut args = vec!["export", "--from", "2026-11-02", "--to", "2026-11-03"];
        args.extend(["--symbols", "all", "--out", tree.to_str().unwrap()]);
        args.extend(extra);
        tickrec(&db, &args, None)
    };
    fs.grow(used_kib(fs.path()) + 1024);
    let out = export(&["--format", "csv"]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "an export without room must fail");
    assert!(
        said.contains("2026-11-02") && said.contains("No space left on device"),
        "{said}"
    );
    assert_eq!(
        said.matches("No space left").count(),
        1,
        "said once: {said}"
    );
    // The record of what the partition is to hold is written before it (`export.rs`), and
    // names no file an engine reads.
    let left: Vec<String> = files_under(fs.path())
        .into_iter()
        .filter(|f| f.starts_with("export") && f != "export/_tickrec_export.json")
        .collect();
    assert!(left.is_empty(), "no partition, whole or half: {left:?}");
    fs.grow(used_kib(fs.path()) + live_kib * 4);
    let out = export(&["--format", "csv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported = std::fs::read(tree.join("date=2026-11-02/part-0.csv")).unwrap();
    let whole_day = &before[..exported.len().min(before.len())];
    assert!(
        exported == whole_day,
        "the partition is the day's ticks, as queried"
    );
}

/// What could go wrong: `migrate` meets a full disk midway and the ticks it had read are
/// dropped, or the rerun imports again what was committed. It must stop saying why, and the
/// rerun, given room, must import exactly the rest: every record once.
#[test]
fn a_migration_that_fills_the_disk_stops_and_its_rerun_imports_exactly_the_rest() {
    use super::cli::tickrec;
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("json");
    std::fs::create_dir_all(input.join("EURUSD")).unwrap();
    let t0 = 1_795_392_000_000_000_000i64; // 2026-11-23T00:00:00Z
    let mut body = String::new();
    for i in 0..200_000i64 {
        body.push_str(&format!(
            "{{\"symbol\":\"EURUSD\",\"bid\":\"1.{:05}\",\"ask\":\"1.{:05}\",\"lp\":\"LP1\",\"timestamp\":{}}}\n",
            i % 90_000,
            i % 90_000 + 5,
            t0 + i * 400_000_000
        ));
    }
    std::fs::write(input.join("EURUSD/2026-11-23.json"), body).unwrap();
    let fs = Tmpfs::mount(3 * 1024, false);
    let db = fs.path().join("db");
    let args = ["migrate", "--input-dir", input.to_str().unwrap()];
    let out = tickrec(&db, &args, None);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "a migration without room fails");
    assert!(said.contains("full"), "says why: {said}");
    let day = db.join("2026/11/ticks_2026-11-23.db");
    let partial = committed_ticks(&day);
    assert!(
        partial > 0 && partial < 200_000,
        "stopped midway: {partial}"
    );
    fs.grow(64 * 1024);
    let out = succeeds(&db, &args);
    let report = String::from_utf8_lossy(&out).into_owned();
    assert!(
        report.contains(&format!("ticks imported {}", 200_000 - partial))
            && report.contains(&format!("already present {partial}")),
        "{report}"
    );
    assert_eq!(committed_ticks(&day), 200_000);
    let rows = all_rows(&db, "EURUSD");
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(
            r.ts_event.0,
            t0 + i as i64 * 400_000_000,
            "each record once, in order"
        );
    }
    succeeds(&db, &["check"]);
}
