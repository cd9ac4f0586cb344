//! Reading when files or the file system are not as they should be: broken day files, a
//! full disk, a read-only file system.

use super::*;

/// Five days of EURUSD, 4000 ticks each, from 2026-11-20; returns the base folder's day paths.
fn five_days(db: &Path) -> Vec<PathBuf> {
    let day0: i64 = 1_795_132_800_000_000_000; // 2026-11-20T00:00:00Z
    let mut input = String::new();
    for d in 0..5i64 {
        for i in 0..4000i64 {
            input.push_str(&format!(
                "{{\"symbol\":\"EURUSD\",\"bid\":\"1.{:05}\",\"ask\":2,\"ts_event\":{}}}\n",
                i,
                day0 + d * 86_400_000_000_000 + 36_000_000_000_000 + i * 1_000_000
            ));
        }
    }
    // Without symbol blocks: the queries below read the rows these tests damage, not the
    // blocks' copies of them (`check` compares the two; see `store::blocks`).
    std::fs::create_dir_all(db).unwrap();
    let config = db.join("no-blocks.toml");
    std::fs::write(&config, "[writer]\nsymbol_blocks = false\n").unwrap();
    let config = config.to_str().unwrap();
    let out = super::cli::tickrec(db, &["ingest", "--config", config, "-"], Some(&input));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let days = layout::list_days(db).unwrap();
    assert_eq!(days.len(), 5);
    days.into_iter().map(|d| d.path).collect()
}

/// `query recent EURUSD` for every tick of the five days, which must exit 1 (some day is
/// broken): (stdout, stderr).
fn every_eurusd_with_broken_days(db: &Path) -> (String, String) {
    let out = super::cli::tickrec(
        db,
        &[
            "query", "recent", "EURUSD", "-n", "100000", "--format", "jsonl",
        ],
        None,
    );
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{se}");
    (so, se)
}

/// What could go wrong: one corrupt, foreign, truncated or misplaced day file used to abort
/// `stats` for every day, break `query recent` for every symbol and any range spanning it.
/// Now each command finishes every other day, names the broken ones and why, and exits 1;
/// `check` finds each, and `check --repair` moves them aside and salvages what can be read.
///
/// (Long on purpose: one scenario end to end, its steps sharing what it builds.)
#[test]
fn broken_day_files_are_named_and_skipped_and_check_repair_salvages_what_it_can() {
    use std::io::{Seek, SeekFrom};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let paths = five_days(&db);
    // 2026-11-21: a stretch of pages overwritten in the middle.
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&paths[1])
            .unwrap();
        let len = f.metadata().unwrap().len();
        f.seek(SeekFrom::Start(len / 2 / 4096 * 4096)).unwrap();
        f.write_all(&[0x55; 8192]).unwrap();
    }
    // 2026-11-22: somebody else's file under the name.
    std::fs::write(&paths[2], b"date,price\n2026-11-22,1.1\n".repeat(200)).unwrap();
    // 2026-11-23: a folder where the file should be.
    std::fs::remove_file(&paths[3]).unwrap();
    std::fs::create_dir(&paths[3]).unwrap();
    // 2026-11-24: cut short.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&paths[4])
        .unwrap();
    f.set_len(f.metadata().unwrap().len() / 2).unwrap();
    drop(f);

    let out = super::cli::tickrec(&db, &["stats"], None);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{so}{se}");
    assert!(
        so.contains("2026-11-20") && so.contains("4000"),
        "the good day is reported: {so}"
    );
    assert!(se.contains("2026-11-22: not a SQLite file"), "{se}");
    assert!(se.contains("2026-11-23: is a directory"), "{se}");

    let (so, se) = every_eurusd_with_broken_days(&db);
    assert!(so.lines().count() >= 4000, "every readable day answers");
    assert!(
        se.contains("2026-11-22") && se.contains("2026-11-23"),
        "{se}"
    );

    let out = super::cli::tickrec(
        &db,
        &[
            "query",
            "range",
            "EURUSD",
            "--from",
            "2026-11-20",
            "--to",
            "2026-11-25",
            "--format",
            "jsonl",
        ],
        None,
    );
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{se}");
    assert!(
        so.lines().filter(|l| l.contains("2026-11-20T")).count() == 4000,
        "{se}"
    );
    assert!(
        se.contains("2026-11-22: not a SQLite file") && se.contains("2026-11-23: is a directory"),
        "{se}"
    );

    // seal and archive finish every good day, name each broken one, and exit 1.
    for cmd in [
        &["seal", "--older-than", "1d"][..],
        &["archive", "--older-than", "1d"],
    ] {
        let out = super::cli::tickrec(&db, cmd, None);
        let (so, se) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(1), "{cmd:?}: {so}{se}");
        assert!(
            se.contains("skipped 2026-11-22: not a SQLite file"),
            "{cmd:?}: {se}"
        );
        assert!(
            se.contains("skipped 2026-11-23: is a directory"),
            "{cmd:?}: {se}"
        );
    }
    assert!(
        layout::existing_archive(&db, chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap())
            .is_some(),
        "the good day was archived"
    );

    let out = super::cli::tickrec(&db, &["check"], None);
    let so = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{so}");
    assert!(so.contains("2026-11-20: ok (archive), 4000 ticks"), "{so}");
    for d in ["2026-11-21", "2026-11-22", "2026-11-23", "2026-11-24"] {
        assert!(so.contains(&format!("{d}: BROKEN")), "{d}: {so}");
    }

    let out = super::cli::tickrec(&db, &["check", "--repair"], None);
    let so = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "ticks were lost, so not all recovered: {so}"
    );
    assert!(so.contains("moved to"), "{so}");
    let aside = std::fs::read_dir(paths[1].parent().unwrap())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".broken-")
        })
        .count();
    assert!(
        aside >= 4,
        "broken files kept aside, never deleted ({aside})"
    );
    // The salvaged days are sound, and the good day is untouched.
    let out = super::cli::tickrec(&db, &["check"], None);
    let so = text(&out.stdout);
    assert!(out.status.success(), "{so}");
    let salvaged_21 = all_rows(&db, "EURUSD")
        .iter()
        .filter(|r| r.ts_event.day().to_string() == "2026-11-21")
        .count();
    assert!(
        salvaged_21 > 0 && salvaged_21 < 4000,
        "part of the corrupt day salvaged: {salvaged_21}"
    );
    let out = super::cli::tickrec(&db, &["stats"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Fills the tmpfs at `fs` to its last byte.
fn fill(fs: &Tmpfs) {
    let mut f = std::fs::File::create(fs.path().join("filler")).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    while f.write_all(&block[..1]).is_ok() {}
    let _ = f.sync_all();
}

/// What could go wrong: on a full disk SQLite cannot make the `-shm` of a day file nobody has
/// open, so every query of the day failed, `check` called the file broken and `check --repair`
/// moved a sound file aside (its day vanished from every query). On a full disk queries,
/// `stats` and `check` must read the day as ever; where they truly cannot (ticks still in a
/// write-ahead log), they must say so without calling the file damaged, and `--repair` must
/// leave it where it is.
#[test]
fn a_full_disk_never_makes_a_sound_day_file_look_broken_and_repair_never_moves_one() {
    use super::cli::tickrec;
    let (scratch, made) = busy_day_store(20_000);
    let rel = Path::new(BUSY_DAY);
    let before = day_answers(&made);
    let live_kib = std::fs::metadata(made.join(rel)).unwrap().len() / 1024;

    let fs = Tmpfs::mount(live_kib + 1024, false);
    let db = fs.path().join("db");
    copy_busy_day(&made, &db);
    fill(&fs);
    assert!(
        day_answers(&db) == before,
        "queries on a full disk answer as ever"
    );
    let stats = String::from_utf8_lossy(&succeeds(&db, &["stats"])).into_owned();
    assert!(stats.contains("20000"), "{stats}");
    let said = String::from_utf8_lossy(&succeeds(&db, &["check", "--repair"])).into_owned();
    assert!(said.contains("2026-11-02: ok, 20000 ticks"), "{said}");
    assert!(db.join(rel).exists(), "the day file stays where it is");

    // Ticks still in the write-ahead log of a writer that died: the file alone is not the
    // day, so it cannot be read on a full disk, and that is all anyone may say.
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(tickrec::fsutil::with_suffix(&db.join(rel), suffix));
    }
    let src = made.join(rel);
    let conn = rusqlite::Connection::open(&src).unwrap();
    conn.execute_batch(
        "PRAGMA wal_autocheckpoint = 0; BEGIN; UPDATE file_info SET id = id; COMMIT;",
    )
    .unwrap();
    std::fs::copy(&src, db.join(rel)).unwrap();
    let wal = tickrec::fsutil::with_suffix(&db.join(rel), "-wal");
    std::fs::copy(tickrec::fsutil::with_suffix(&src, "-wal"), &wal).unwrap();
    drop(conn);
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
    fill(&fs);
    let out = tickrec(&db, &["query", "recent", "USDJPY"], None);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "a day it cannot read fails the query"
    );
    assert!(
        err.contains("could not be read here and now")
            && !err.contains("repair")
            && !err.contains("no such symbol"),
        "says what it is, not damage, not an unknown symbol: {err}"
    );
    let out = tickrec(&db, &["check", "--repair"], None);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success());
    assert!(
        said.contains("NOT CHECKED") && !said.contains("BROKEN"),
        "{said}"
    );
    assert!(
        db.join(rel).exists() && wal.exists(),
        "nothing moved: {said}"
    );
    let tree = scratch.path().join("export");
    let export = [
        "export",
        "--from",
        "2026-11-02",
        "--to",
        "2026-11-03",
        "--format",
        "csv",
        "--out",
    ];
    let tree_arg = tree.to_str().unwrap();
    let out = tickrec(&db, &[&export[..], &[tree_arg]].concat(), None);
    assert!(!out.status.success(), "an export missing a day fails");
    let partition = tree.join("date=2026-11-02/part-0.csv");
    assert!(
        !partition.exists(),
        "no partition short of its day (a rerun would skip it)"
    );
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    assert!(
        day_answers(&db) == before,
        "with room again, the day answers as ever"
    );
    succeeds(&db, &["check"]);
    succeeds(&db, &[&export[..], &[tree_arg]].concat());
    assert!(partition.exists());
}

/// What could go wrong: a day file that SQLite reads without complaint can still hold numbers
/// no tickrec wrote (a bit flipped on disk, a hand edit). An event time past what 64 bits hold
/// made the reader's sum overflow: a panic, or a wrapped time passed on as if true. Each such
/// row now makes its day a broken one, named with the row and the column, and the rest
/// answers. (A receive time is stored as a wrapping distance from the event time, so that
/// any receive time reads back as written: an extreme one is a time, not an error.)
#[test]
fn a_row_with_numbers_out_of_range_names_its_day_and_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let paths = five_days(&db);
    for (path, column, value) in [
        (&paths[1], "ts_event", i64::MAX),
        (&paths[2], "ts_recv", i64::MAX),
        (&paths[3], "sym", 1 << 40),
        (&paths[4], "bid", -1),
    ] {
        let conn = rusqlite::Connection::open(path).unwrap();
        let sql = format!("UPDATE ticks SET {column} = ?1 WHERE seq = 4000");
        assert_eq!(conn.execute(&sql, [value]).unwrap(), 1);
    }
    let (so, se) = every_eurusd_with_broken_days(&db);
    assert!(!se.contains("panicked"), "{se}");
    assert_eq!(
        so.lines().count(),
        8000,
        "the sound days answer whole: {se}"
    );
    assert!(!se.contains("2026-11-22"), "{se}");
    for said in [
        "2026-11-21: corrupt row: seq 4000: ts_event 9223372036854775807 is out of range",
        "2026-11-23: corrupt row: seq 4000: unknown symbol id 1099511627776",
        "2026-11-24: corrupt row: seq 4000: bid code -1 is not a packed decimal",
    ] {
        assert!(se.contains(said), "{said}: {se}");
    }
}

/// What could go wrong: SQLite cannot make a day file's `-shm` on a read-only file system (a
/// backup or a snapshot mounted read-only), so no query could read any day of it, `check`
/// would call every day broken, and an archived `.db.zst` day had nowhere to be decompressed
/// (its cache lived in the store). Queries, `stats` and `check` must read each form as ever.
#[test]
fn days_on_a_read_only_file_system_answer_as_ever() {
    let (scratch, made) = busy_day_store(20_000);
    let before = day_answers(&made);
    let zst = scratch.path().join("zst");
    copy_busy_day(&made, &zst);
    let args = ["archive", "--older-than", "1d", "--format", "sqlite-zst"];
    succeeds(&zst, &args);
    let archived = Path::new(BUSY_DAY).with_extension("db.zst");
    for form in ["plain", "sqlite-zst"] {
        let fs = Tmpfs::mount(64 << 10, false);
        let db = fs.path().join("db");
        if form == "plain" {
            copy_busy_day(&made, &db);
        } else {
            std::fs::create_dir_all(db.join("2026/11")).unwrap();
            std::fs::copy(zst.join(&archived), db.join(&archived)).unwrap();
        }
        fs.make_read_only();
        assert!(day_answers(&db) == before, "{form}: queries answer as ever");
        let stats = String::from_utf8_lossy(&succeeds(&db, &["stats"])).into_owned();
        assert!(stats.contains("20000"), "{form}: {stats}");
        let said = String::from_utf8_lossy(&succeeds(&db, &["check"])).into_owned();
        assert!(said.contains("2026-11-02: ok"), "{form}: {said}");
        // The archived day was read through a copy in the temporary folder; this test's
        // store is gone after it, so is its copy.
        let cache = tickrec::store::archive::ArchiveCache::new(&db, 0);
        let cache = cache.dir();
        assert_eq!(cache.exists(), form == "sqlite-zst", "{}", cache.display());
        if form == "sqlite-zst" {
            assert!(
                cache.starts_with(std::env::temp_dir()),
                "{}",
                cache.display()
            );
            std::fs::remove_dir_all(cache).unwrap();
        }
    }
}

/// A scratch folder, its base folder of day files, a names table and writer options with
/// symbol blocks, for the tests that drive a `SqliteSink` directly.
fn blocks_sink_setup() -> (
    tempfile::TempDir,
    PathBuf,
    Arc<tickrec::intern::Names>,
    WriterOptions,
) {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("db");
    let names = Arc::new(tickrec::intern::Names::new(16));
    let opts = WriterOptions {
        symbol_blocks: true,
        ..WriterOptions::default()
    };
    (dir, base, names, opts)
}

/// What could go wrong: a power cut takes back the day file's last commits (WAL, `synchronous
/// = NORMAL`) but not the symbol block files written after them, and the same seqs are then
/// written again with other ticks. The writer that opens the day next cuts the block files
/// back to what the day file's directory covers, so no query answers from a lost tick's block.
/// One symbol and batches of exactly 500 make the rewritten rows' block keys and counts those
/// of the lost ones: a stale block would pass every check a reader makes.
#[test]
fn block_files_ahead_of_their_day_file_after_a_power_cut_are_cut_back_and_never_answer() {
    use tickrec::pipeline::Sink;
    use tickrec::store::blockfile::paths;
    use tickrec::store::writer::SqliteSink;
    use tickrec::tick::{MsgRef, Tick};
    let (dir, base, names, opts) = blocks_sink_setup();
    let (sym, src) = (
        names.symbol("EURUSD").unwrap(),
        names.source("LP1").unwrap(),
    );
    let day0 = ts("2026-11-19T00:00:00Z").0;
    // Ticks from..from+n, 0.1 s apart; the bid's digits depend on `step`.
    let ticks = |from: i64, n: i64, step: i64| -> Vec<Tick> {
        (from..from + n)
            .map(|i| Tick {
                symbol: sym,
                source: src,
                ts_event: Timestamp(day0 + i * 100_000_000),
                ts_recv: Timestamp(day0 + i * 100_000_000 + 40_000),
                bid: dec(&format!("1.{:05}", (i * step) % 90_000 + 10_000)),
                ask: dec(&format!("1.{:05}", (i * step) % 90_000 + 10_003)),
                bid_size: dec("1000000"),
                ask_size: None,
                msg: MsgRef::NONE,
            })
            .collect()
    };
    let write = |ticks: Vec<Tick>| {
        let mut sink = SqliteSink::new(&base, names.clone(), opts.clone());
        let stop = tickrec::shutdown::Shutdown::new();
        for batch in ticks.chunks(500) {
            sink.write_batch(batch, &stop);
        }
        sink.close();
    };
    write(ticks(0, 40_000, 1));
    let db = layout::day_path(
        &base,
        chrono::NaiveDate::from_ymd_opt(2026, 11, 19).unwrap(),
    );
    let wal = db.with_extension("db-wal");
    assert!(!wal.exists(), "the WAL is folded in at close");
    let snap = dir.path().join("snap.db");
    std::fs::copy(&db, &snap).unwrap();
    let (blocks, index) = paths(&db);
    write(ticks(40_000, 40_000, 1));
    let before = block_file(&db).unwrap().entries().unwrap().len();
    // The power cut: the day file as it was, the block files as they are.
    std::fs::copy(&snap, &db).unwrap();
    let _ = std::fs::remove_file(&wal);
    let _ = std::fs::remove_file(db.with_extension("db-shm"));
    let lost_index = std::fs::metadata(&index).unwrap().len();
    write(ticks(40_000, 40_000, 7));
    let after = block_file(&db).unwrap().entries().unwrap().len();
    assert_eq!(after, before, "the rewritten rows have as many blocks");
    assert_eq!(std::fs::metadata(&index).unwrap().len(), lost_index);
    let ask = |args: &[&str]| {
        let out = super::cli::tickrec(&base, args, None);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let range = [
        "query",
        "range",
        "EURUSD",
        "--from",
        "2026-11-19T01:00:00Z",
        "--to",
        "2026-11-19T02:00:00Z",
        "--format",
        "csv",
    ];
    let recent = [
        "query", "recent", "EURUSD", "-n", "20000", "--format", "csv",
    ];
    let live = (ask(&range), ask(&recent));
    // Every row's bid is the one last written at its seq (seq i + 1 is tick i).
    let written = |answer: &str| -> usize {
        let mut n = 0;
        for line in answer.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            let i: i64 = f[0].parse::<i64>().unwrap() - 1;
            let step = if i < 40_000 { 1 } else { 7 };
            let want = format!("1.{:05}", (i * step) % 90_000 + 10_000);
            assert_eq!(f[5], want, "seq {}: {line}", i + 1);
            n += 1;
        }
        n
    };
    assert_eq!(written(&live.0), 36_000);
    assert_eq!(written(&live.1), 20_000);
    assert!(ask(&["check"]).contains("ok"), "the cut-back files check");
    ask(&["seal", "--older-than", "1d"]);
    assert!(!blocks.exists() && !index.exists(), "seal removes them");
    assert_eq!(
        (ask(&range), ask(&recent)),
        live,
        "live answers are the rows'"
    );
}

/// What could go wrong: `recent` on a live day reads the newest ticks, which no directory row
/// covers yet, through the writer's tail records (the runs of each commit) instead of
/// scanning them; a record missing, torn, not yet written, or well-formed but describing other
/// rows (a day file replaced behind them) must never change an answer. The writer stays open
/// (its last commits uncovered) while the answers are compared with the rows'.
#[test]
fn recent_through_the_tail_records_answers_as_the_rows_do_and_a_torn_record_changes_nothing() {
    use tickrec::pipeline::Sink;
    use tickrec::store::blockfile::tail_path;
    use tickrec::store::writer::SqliteSink;
    use tickrec::tick::{MsgRef, Tick};
    let syms = ["A", "B", "C", "D"];
    let day0 = ts("2026-11-19T00:00:00Z").0;
    let stop = tickrec::shutdown::Shutdown::new();
    // 41 commits of 500 (`pick` gives tick i's symbol): two directory rows of 16 commits,
    // then 9 commits no row covers.
    let write_day = |pick: &dyn Fn(i64) -> usize| {
        let (dir, base, names, opts) = blocks_sink_setup();
        let ids: Vec<_> = syms.iter().map(|s| names.symbol(s).unwrap()).collect();
        let src = names.source("LP1").unwrap();
        let mut sink = SqliteSink::new(&base, names.clone(), opts);
        let mut i = 0i64;
        for _ in 0..41 {
            let batch: Vec<Tick> = (0..500)
                .map(|_| {
                    i += 1;
                    Tick {
                        symbol: ids[pick(i)],
                        source: src,
                        ts_event: Timestamp(day0 + i * 1_000_000),
                        ts_recv: Timestamp(day0 + i * 1_000_000 + 1_000),
                        bid: dec(&format!("1.{:05}", i % 90_000 + 10_000)),
                        ask: dec(&format!("1.{:05}", i % 90_000 + 10_002)),
                        bid_size: None,
                        ask_size: None,
                        msg: MsgRef::NONE,
                    }
                })
                .collect();
            sink.write_batch(&batch, &stop);
        }
        (dir, base, sink)
    };
    // D stops early, so its recent ticks lie in the rows and the blocks.
    let (_dir, base, mut sink) = write_day(&|i| {
        if i < 12_000 {
            (i * 7 % 4) as usize
        } else {
            (i * 7 % 3) as usize
        }
    });
    let db = layout::day_path(
        &base,
        chrono::NaiveDate::from_ymd_opt(2026, 11, 19).unwrap(),
    );
    let covered = sql_int(&db, "SELECT max(last_seq) FROM batches");
    let last = sql_int(&db, "SELECT max(seq) FROM ticks");
    assert_eq!((covered, last), (16_000, 20_500));
    // The writer appends each commit's record before `write_batch` returns: no wait.
    let file = block_file(&db).unwrap();
    assert_eq!(
        file.tail_runs(&[0], (covered + 1, last), (i64::MIN, i64::MAX))
            .1,
        last,
        "the records cover every commit as soon as it is made"
    );
    // The seqs the rows give, read by SQL.
    let rows_seqs = |sql: &str, params: &[i64]| -> Vec<i64> {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map(rusqlite::params_from_iter(params), |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    // (The lists are long: the first difference is what tells.)
    let same = |got: &[i64], want: &[i64], what: &str| {
        let at = got.iter().zip(want).position(|(g, w)| g != w);
        assert!(
            got == want,
            "{what}: {} seqs, the rows' {}; first difference at {at:?}",
            got.len(),
            want.len()
        );
    };
    let answers = |label: &str| {
        let store = store(&base);
        for (k, s) in syms.iter().enumerate() {
            let id = sql_int(&db, &format!("SELECT id FROM symbols WHERE name = '{s}'"));
            for n in [1, 100, 1_200, 3_000] {
                let mut got = Vec::new();
                store
                    .recent(s, n, &mut |r| {
                        got.push(r.seq.unwrap());
                        Ok(())
                    })
                    .unwrap();
                let want = rows_seqs(
                    "SELECT seq FROM ticks WHERE sym = ?1 ORDER BY seq DESC LIMIT ?2",
                    &[id, n as i64],
                );
                same(
                    &got,
                    &want,
                    &format!("{label}: recent {n} of {s} (symbol {k})"),
                );
            }
            // Windows in ms of the day: the whole of it, around the last row's end, inside
            // the uncovered commits, and past the end.
            for (from, to) in [
                (0, 86_400_000),
                (15_000, 17_000),
                (18_000, 19_000),
                (20_400, 30_000),
            ] {
                let mut got = Vec::new();
                store
                    .range(
                        s,
                        Timestamp(day0 + from * 1_000_000),
                        Timestamp(day0 + to * 1_000_000),
                        &mut |r| {
                            got.push(r.seq.unwrap());
                            Ok(())
                        },
                    )
                    .unwrap();
                let want = rows_seqs(
                    "SELECT seq FROM ticks WHERE sym = ?1 AND ts_event >= ?2 AND ts_event < ?3 \
                     ORDER BY ts_event, seq",
                    &[id, from * 1_000_000, to * 1_000_000],
                );
                same(
                    &got,
                    &want,
                    &format!("{label}: range {from}..{to} ms of {s}"),
                );
            }
        }
    };
    answers("through the tail records");
    // A torn record in the middle: the runs no longer tile the tail, which is scanned.
    let tail = tail_path(&db);
    let mut image = std::fs::read(&tail).unwrap();
    // (41 records of about the same size: this one is among the newest nine.)
    let mid = image.len() - image.len() / 41 * 4;
    image[mid] ^= 0x55;
    std::fs::write(&tail, &image).unwrap();
    assert!(
        file.tail_runs(&[0], (covered + 1, last), (i64::MIN, i64::MAX))
            .1
            < last
    );
    answers("with a torn record");
    // Cut short: only the newest commits lack records, and only they are scanned.
    std::fs::write(&tail, &image[..mid]).unwrap();
    answers("cut short");
    // Well-formed records of another day file with the same commits and other symbols (a
    // file put in this one's place, its records left behind): they tile the tail, but they
    // name a subset of some symbols' ticks, which a check of the rows they name passes
    // (`recent 1200 of A` missed ticks so). Their checks are seeded with their own file's
    // creation time, so they fail here and the tail is scanned.
    let (_other_dir, other_base, mut other) = write_day(&|i| (i * 5 % 4) as usize);
    let other_db = layout::day_path(
        &other_base,
        chrono::NaiveDate::from_ymd_opt(2026, 11, 19).unwrap(),
    );
    let other_file = block_file(&other_db).unwrap();
    assert_eq!(
        other_file
            .tail_runs(&[0], (covered + 1, last), (i64::MIN, i64::MAX))
            .1,
        last
    );
    other.close();
    std::fs::copy(tail_path(&other_db), &tail).unwrap();
    assert!(
        file.tail_runs(&[0], (covered + 1, last), (i64::MIN, i64::MAX))
            .1
            < last
    );
    answers("with another day's records");
    sink.close();
    answers("closed");
}

/// What could go wrong: `tail --out` into a file on a disk that fills keeps going with rows
/// lost, or stops without saying which file, or leaves a partial row and a cursor that the
/// next run appends after: ticks skipped or twice once room is made.
#[test]
fn a_tail_into_a_file_on_a_full_disk_stops_naming_it_and_resumes_exactly_once_room_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let day0: i64 = 1_795_132_800_000_000_000; // 2026-11-20T00:00:00Z
    let n = 60_000i64;
    let input: String = (0..n)
        .map(|i| {
            format!(
                "{{\"symbol\":\"EURUSD\",\"bid\":\"1.{:05}\",\"ask\":2,\"ts_event\":{}}}\n",
                i % 100_000,
                day0 + 36_000_000_000_000 + i * 1_000_000
            )
        })
        .collect();
    let ingested = super::cli::tickrec(&db, &["ingest", "-"], Some(&input));
    assert!(ingested.status.success(), "{}", text(&ingested.stderr));

    // Room for about a sixth of the rows (each about 200 bytes as JSON Lines: 12 MB in all).
    let disk = Tmpfs::mount(2048, false);
    let out = disk.path().join("ticks.jsonl");
    let cursor = disk.path().join("ticks.cursor");
    let (o, c) = (out.to_str().unwrap(), cursor.to_str().unwrap());
    let args = [
        "tail",
        "--priority",
        "normal",
        "--out",
        o,
        "--cursor-file",
        c,
    ];
    let full = super::cli::tickrec(&db, &args, None);
    assert!(!full.status.success(), "a tail into a full disk succeeded");
    let said = text(&full.stderr);
    assert!(
        said.contains("No space left on device")
            && (said.contains(&format!("--out {o}"))
                || said.contains(&format!("--cursor-file {c}"))),
        "{said}"
    );

    disk.grow(64 * 1024);
    let rest = super::cli::tickrec(&db, &args, None);
    assert!(rest.status.success(), "{}", text(&rest.stderr));
    let seqs: Vec<i64> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| {
            let row: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("a broken line {l}: {e}"));
            row["seq"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
}
