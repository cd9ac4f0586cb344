//! `tickrec migrate` and `tickrec verify` on real trees of legacy JSON files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::cli::tickrec;
use super::util::*;

fn run(db: &Path, args: &[&str]) -> Output {
    tickrec(db, args, None)
}

fn line(symbol: &str, bid: &str, ts: &str) -> String {
    format!("{{\"symbol\":\"{symbol}\",\"bid\":{bid},\"ask\":2.0,\"spread\":0.1,\"lp\":\"LP1\",\"timestamp\":{ts}}}")
}

/// A small history: JSON Lines and array files, a bad record in each, a file spanning two days.
fn history(root: &Path) {
    std::fs::create_dir_all(root.join("EURUSD")).unwrap();
    std::fs::create_dir_all(root.join("USDJPY")).unwrap();
    let eur = [
        line("EURUSD", "1.08500", "\"2026-11-22T10:00:00.000000001Z\""),
        line("EURUSD", "\"abc\"", "\"2026-11-22T10:00:01Z\""),
        line("EURUSD", "1.08502", "1795341602000"),
        line("EURUSD", "1.08503", "\"2026-11-23T00:00:00.5Z\""),
    ];
    std::fs::write(root.join("EURUSD/2026-11-22.json"), eur.join("\n") + "\n").unwrap();
    let jpy = format!(
        "[\n{},\n{{\"symbol\":\"USDJPY\",\"timestamp\":\"soon\"}},\n{}\n]\n",
        line("USDJPY", "151.230", "\"2026-11-22T12:00:00Z\""),
        line("USDJPY", "151.240", "1795348800000000000"),
    );
    std::fs::write(root.join("USDJPY/2026-11-22.json"), jpy).unwrap();
}

/// A scratch folder holding the small history under `json/`, and where `db/` goes.
fn with_history() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (input, db) = (dir.path().join("json"), dir.path().join("db"));
    history(&input);
    (dir, input, db)
}

/// No symbol-day differs (records the JSON reader rejected are reported apart: they cannot be
/// in the store, and make `verify` exit 1).
fn verifies(db: &Path, input: &Path) -> bool {
    let out = run(db, &["verify", "--json-dir", input.to_str().unwrap()]);
    text(&out.stdout).contains(": 0 differ;")
}

fn tree_hashes(root: &Path) -> Vec<(String, String)> {
    tickrec::migrate::input_files(root)
        .unwrap()
        .into_iter()
        .map(|(p, rel)| (rel, tickrec::migrate::hash_file(&p).unwrap().1))
        .collect()
}

#[test]
fn migration_imports_every_valid_record_once_names_bad_ones_and_never_touches_the_input() {
    let (_dir, input, db) = with_history();
    let before = tree_hashes(&input);
    let input_arg = input.to_str().unwrap();

    let out = run(
        &db,
        &["migrate", "--input-dir", input_arg, "--batch-size", "2"],
    );
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "rejects make the exit code non-zero: {err}"
    );
    assert!(
        err.contains("EURUSD/2026-11-22.json: line 2") && err.contains("bid"),
        "{err}"
    );
    assert!(
        err.contains("USDJPY/2026-11-22.json: line 3") && err.contains("timestamp"),
        "{err}"
    );
    let summary = text(&out.stdout);
    assert!(
        summary.contains("ticks imported 5, already present 0, rejected 2"),
        "{summary}"
    );
    assert!(
        summary.contains("2026-11-22: 4 ticks") && summary.contains("2026-11-23: 1 ticks"),
        "{summary}"
    );

    let eur: Vec<String> = all_rows(&db, "EURUSD")
        .iter()
        .map(|r| r.bid.unwrap().to_string())
        .collect();
    assert_eq!(
        eur,
        ["1.08500", "1.08502", "1.08503"],
        "exact text, millisecond timestamps read"
    );
    assert_eq!(all_rows(&db, "USDJPY").len(), 2);
    assert_eq!(&*all_rows(&db, "USDJPY")[0].source, "LP1");

    let out = run(&db, &["verify", "--json-dir", input_arg]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "records the reader rejected are not in the store: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout)
            .contains("compared 3 symbol-days (those in the JSON tree): 0 differ; 2 JSON records"),
        "{}",
        text(&out.stdout)
    );

    // Again: nothing twice, nothing even parsed.
    let out = run(&db, &["migrate", "--input-dir", input_arg]);
    assert!(
        text(&out.stdout)
            .contains("files 2 (2 unchanged since their import, 0 not imported), ticks imported 0"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(all_rows(&db, "EURUSD").len(), 3);
    assert_eq!(tree_hashes(&input), before, "the input is never modified");
}

#[test]
fn a_file_that_grew_since_its_import_brings_only_its_new_ticks() {
    let (_dir, input, db) = with_history();
    let input_arg = input.to_str().unwrap();
    run(&db, &["migrate", "--input-dir", input_arg]);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(input.join("EURUSD/2026-11-22.json"))
        .unwrap();
    std::io::Write::write_all(
        &mut f,
        (line("EURUSD", "1.08600", "\"2026-11-22T23:00:00Z\"") + "\n").as_bytes(),
    )
    .unwrap();
    let out = run(&db, &["migrate", "--input-dir", input_arg]);
    let s = text(&out.stdout);
    assert!(s.contains("ticks imported 1, already present 3"), "{s}");
    assert_eq!(all_rows(&db, "EURUSD").len(), 4);
    assert!(verifies(&db, &input));
}

#[test]
fn a_dry_run_writes_nothing() {
    let (_dir, input, db) = with_history();
    let out = run(
        &db,
        &[
            "migrate",
            "--input-dir",
            input.to_str().unwrap(),
            "--dry-run",
        ],
    );
    assert!(
        text(&out.stdout).starts_with("dry run: files 2"),
        "{}",
        text(&out.stdout)
    );
    assert_says(&out.stdout, "would import 5 ticks");
    assert!(!db.exists());
}

#[test]
fn verify_names_the_symbol_and_day_that_differ_and_fails() {
    let (_dir, input, db) = with_history();
    let input_arg = input.to_str().unwrap();
    run(&db, &["migrate", "--input-dir", input_arg]);
    let conn = rusqlite::Connection::open(db.join("2026/11/ticks_2026-11-22.db")).unwrap();
    conn.execute("UPDATE ticks SET bid = bid + 16 WHERE seq = 1", [])
        .unwrap();
    drop(conn);
    let out = run(&db, &["verify", "--json-dir", input_arg]);
    assert_eq!(out.status.code(), Some(1));
    let s = text(&out.stdout);
    assert!(s.contains("2026-11-22 EURUSD: json 2 ticks"), "{s}");
    assert!(s.contains("1 differ"), "{s}");
}

/// What could go wrong: `kill -9` in the middle of a long import, then a re-run, stores some
/// ticks twice (the batch committed but the ledger not yet written) or loses the rest.
#[test]
fn a_migration_killed_midway_resumes_exactly_where_its_commits_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (input, db) = (dir.path().join("json"), dir.path().join("db"));
    std::fs::create_dir_all(input.join("EURUSD")).unwrap();
    let mut body = String::new();
    let t0 = 1_795_392_000_000_000_000i64; // 2026-11-23T00:00:00Z
    for i in 0..300_000i64 {
        body.push_str(&line(
            "EURUSD",
            &format!("1.{:05}", i % 100_000),
            &(t0 + i * 100_000).to_string(),
        ));
        body.push('\n');
    }
    std::fs::write(input.join("EURUSD/2026-11-23.json"), body).unwrap();
    let input_arg = input.to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tickrec"))
        .args([
            "--db",
            db.to_str().unwrap(),
            "migrate",
            "--input-dir",
            input_arg,
            "--batch-size",
            "500",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let day_file = db.join("2026/11/ticks_2026-11-23.db");
    wait_until(
        std::time::Duration::from_secs(60),
        "migrate to commit 20,000 ticks",
        || committed_ticks(&day_file) > 20_000,
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = committed_ticks(&day_file);
    assert!(partial > 0 && partial < 300_000, "killed midway: {partial}");
    let out = run(
        &db,
        &["migrate", "--input-dir", input_arg, "--batch-size", "500"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains(&format!("already present {partial}")), "{s}");
    assert_eq!(committed_ticks(&day_file), 300_000);
    assert_eq!(seqs(&day_file).len(), 300_000);
    assert!(verifies(&db, &input));
}

#[test]
fn archive_json_packs_the_tree_after_verification_and_only_then_removes_it() {
    let (dir, input, db) = with_history();
    let before = tree_hashes(&input);
    let out = run(
        &db,
        &[
            "migrate",
            "--input-dir",
            input.to_str().unwrap(),
            "--archive-json",
            "--allow-rejects",
        ],
    );
    let s = text(&out.stdout);
    assert!(
        s.contains("archived with --allow-rejects: 2 rejected records"),
        "{s}"
    );
    assert!(
        s.contains("archived 2 files into"),
        "{s}{}",
        text(&out.stderr)
    );
    assert!(
        tickrec::migrate::input_files(&input).unwrap().is_empty(),
        "originals removed"
    );
    // The archive holds exactly the original files.
    let archive = dir.path().join("json.tar.zst");
    let restored = dir.path().join("restored");
    let mut a =
        tar::Archive::new(zstd::Decoder::new(std::fs::File::open(&archive).unwrap()).unwrap());
    a.unpack(&restored).unwrap();
    assert_eq!(tree_hashes(&restored), before);
}

#[test]
fn archive_json_refuses_when_verification_fails() {
    let (dir, input, db) = with_history();
    // The database already holds a tick the JSON does not: verification must fail.
    let extra = "{\"symbol\":\"EURUSD\",\"bid\":9,\"source\":\"LP1\",\"ts_event\":\"2026-11-22T11:00:00Z\"}\n";
    assert!(tickrec(&db, &["ingest"], Some(extra)).status.success());
    let out = run(
        &db,
        &[
            "migrate",
            "--input-dir",
            input.to_str().unwrap(),
            "--archive-json",
            "--allow-rejects",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_says(&out.stderr, "not archiving");
    assert_eq!(
        tickrec::migrate::input_files(&input).unwrap().len(),
        2,
        "originals untouched"
    );
    assert!(!dir.path().join("json.tar.zst").exists());
}

/// The `i`-th of a few EURUSD records on 2026-11-22 (bid 1.1i, one second apart).
fn rec(i: u32) -> String {
    line(
        "EURUSD",
        &format!("1.1{i}"),
        &format!("\"2026-11-22T10:00:0{i}Z\""),
    )
}

fn ticks_of(db: &Path, symbol: &str) -> Vec<(i64, String, String)> {
    let mut v: Vec<_> = all_rows(db, symbol)
        .iter()
        .map(|r| {
            (
                r.ts_event.0,
                r.bid.unwrap().to_string(),
                r.source.to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// What could go wrong: a second LP's history with the same `<SYMBOL>/<day>.json` layout had
/// its first ticks skipped as "already present" (the identity was the relative path). The
/// identity is the canonical path: both trees import fully and independently.
#[test]
fn two_trees_with_the_same_layout_import_fully_and_independently() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    for (lp, bid) in [("LP1", "1.1"), ("LP2", "1.2")] {
        let root = dir.path().join(lp.to_lowercase());
        std::fs::create_dir_all(root.join("EURUSD")).unwrap();
        let lines: Vec<String> = (0..3)
            .map(|i| {
                format!(
                    "{{\"symbol\":\"EURUSD\",\"bid\":{bid}{i},\"ask\":2,\"lp\":\"{lp}\",\"timestamp\":\"2026-11-22T10:00:0{i}Z\"}}"
                )
            })
            .collect();
        std::fs::write(root.join("EURUSD/2026-11-22.json"), lines.join("\n") + "\n").unwrap();
        let out = run(&db, &["migrate", "--input-dir", root.to_str().unwrap()]);
        let s = text(&out.stdout);
        assert!(out.status.success(), "{s}{}", text(&out.stderr));
        assert!(
            s.contains("ticks imported 3, already present 0"),
            "{lp}: {s}"
        );
    }
    let t = ticks_of(&db, "EURUSD");
    assert_eq!(t.len(), 6, "{t:?}");
    assert_eq!(t.iter().filter(|r| r.2 == "LP2").count(), 3);
}

/// What could go wrong: a UTF-8 byte-order mark before a JSON array made the whole file one
/// rejected record, which `verify` could not see either and `--archive-json` then removed.
#[test]
fn a_byte_order_mark_is_not_content_for_arrays_or_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (input, db) = (dir.path().join("json"), dir.path().join("db"));
    std::fs::create_dir_all(input.join("EURUSD")).unwrap();
    std::fs::write(
        input.join("EURUSD/array.json"),
        format!("\u{feff}[{},{}]", rec(0), rec(1)),
    )
    .unwrap();
    std::fs::write(
        input.join("EURUSD/lines.jsonl"),
        format!("\u{feff}{}\n{}\n", rec(2), rec(3)),
    )
    .unwrap();
    let out = run(&db, &["migrate", "--input-dir", input.to_str().unwrap()]);
    let s = text(&out.stdout);
    assert!(out.status.success(), "{s}{}", text(&out.stderr));
    assert!(
        s.contains("ticks imported 4, already present 0, rejected 0"),
        "{s}"
    );
    let out = run(&db, &["verify", "--json-dir", input.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stdout));
}

/// What could go wrong: symlinked files and folders were passed over without a word; a file
/// that is not JSON at all read as a "torn last line"; `--archive-json` then removed originals
/// that were never imported. Links inside the folder are followed (each file read once), links
/// leaving it or looping are reported and counted, a non-JSON file is one named rejection, and
/// the originals stay unless `--allow-rejects` says otherwise.
#[test]
fn symlinks_and_odd_files_are_followed_or_reported_and_block_archiving() {
    let dir = tempfile::tempdir().unwrap();
    let (input, db) = (dir.path().join("json"), dir.path().join("db"));
    let outside = dir.path().join("elsewhere");
    std::fs::create_dir_all(input.join("real")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(
        input.join("real/a.json"),
        format!("{}\n{}\n", rec(0), rec(1)),
    )
    .unwrap();
    std::fs::write(outside.join("b.json"), rec(2) + "\n").unwrap();
    std::fs::write(input.join("notes.json"), "date,price\n2026-11-22,1.1\n").unwrap();
    std::os::unix::fs::symlink(input.join("real"), input.join("alias")).unwrap();
    std::os::unix::fs::symlink(outside.join("b.json"), input.join("b.json")).unwrap();
    std::os::unix::fs::symlink(&input, input.join("real/up")).unwrap();

    let args = [
        "migrate",
        "--input-dir",
        input.to_str().unwrap(),
        "--archive-json",
    ];
    let out = run(&db, &args);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "archiving refused: {so}{se}");
    assert!(
        so.contains("skipped b.json: symlink to") && so.contains("outside the input folder"),
        "{so}"
    );
    assert!(so.contains("skipped real/up: symlink loop"), "{so}");
    assert!(
        se.contains("notes.json: line 1 (byte 0): not JSON: it starts with `d`"),
        "one named rejection for a file that is not JSON: {se}"
    );
    assert_eq!(se.matches("notes.json").count(), 1, "{se}");
    assert!(
        so.contains("ticks imported 2,"),
        "the aliased file once: {so}"
    );
    // real/up, and alias/up reached through the followed alias.
    assert!(so.contains("skipped alias/up: symlink loop"), "{so}");
    assert!(
        se.contains("not archiving") && se.contains("1 records rejected and 3 paths not imported"),
        "{se}"
    );
    assert!(input.join("real/a.json").exists(), "originals untouched");
    assert_eq!(ticks_of(&db, "EURUSD").len(), 2);
}

/// What could go wrong: a file replaced by another under the same path after its import was
/// resumed as if it were the same file: its first N ticks silently skipped. (A file that only
/// grew resumes: `a_file_that_grew_since_its_import_brings_only_its_new_ticks`.)
#[test]
fn a_file_whose_imported_head_changed_is_reported_not_resumed() {
    let (_dir, input, db) = with_history();
    let input_arg = input.to_str().unwrap();
    run(&db, &["migrate", "--input-dir", input_arg]);
    std::fs::write(
        input.join("EURUSD/2026-11-22.json"),
        line("EURUSD", "9.99999", "\"2026-11-22T15:00:00Z\"") + "\n",
    )
    .unwrap();
    let out = run(&db, &["migrate", "--input-dir", input_arg]);
    let s = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{s}");
    assert!(
        s.contains(
            "not imported EURUSD/2026-11-22.json: it no longer starts with what was imported"
        ),
        "{s}"
    );
    assert!(ticks_of(&db, "EURUSD").iter().all(|t| t.1 != "9.99999"));
}

/// What could go wrong: `verify` compared the whole store, so a store that also held live days
/// (README's own example) reported every one of them as a difference.
#[test]
fn verify_is_scoped_to_the_json_tree_unless_asked_for_all() {
    let (_dir, input, db) = with_history();
    let input_arg = input.to_str().unwrap();
    run(&db, &["migrate", "--input-dir", input_arg]);
    let live =
        "{\"symbol\":\"GBPUSD\",\"bid\":1.2,\"ask\":1.3,\"ts_event\":\"2026-11-25T10:00:00Z\"}\n";
    assert!(tickrec(&db, &["ingest"], Some(live)).status.success());
    let out = run(&db, &["verify", "--json-dir", input_arg]);
    assert_says(&out.stdout, ": 0 differ;");
    let out = run(&db, &["verify", "--json-dir", input_arg, "--all"]);
    assert_says(&out.stdout, "(all): 1 differ;");
}

/// Peak memory of a `migrate` or `verify` run, from its summary.
fn peak_mib(stdout: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("peak memory"))
        .unwrap_or_else(|| panic!("no peak memory line: {stdout}"));
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// What could go wrong: a 1 GiB file without a newline, or a 1 GiB single array element, was
/// read whole into memory (peak RSS over 1 GB). Records over the limit are streamed past and
/// rejected; memory stays bounded.
#[test]
fn a_gigabyte_record_is_rejected_in_bounded_memory() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let (input, db) = (dir.path().join("json"), dir.path().join("db"));
    std::fs::create_dir_all(&input).unwrap();
    let chunk = vec![b'a'; 1 << 20];
    for (name, head, tail) in [
        ("line.jsonl", &b"{\"symbol\":\""[..], &b"\"}"[..]),
        ("array.json", &b"[{\"symbol\":\""[..], &b"\"}]"[..]),
    ] {
        let mut f = std::io::BufWriter::new(std::fs::File::create(input.join(name)).unwrap());
        f.write_all(head).unwrap();
        for _ in 0..1024 {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(tail).unwrap();
        f.flush().unwrap();
    }
    for args in [
        &["migrate", "--input-dir", input.to_str().unwrap()][..],
        &["verify", "--json-dir", input.to_str().unwrap()],
    ] {
        let out = run(&db, args);
        let (so, se) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {so}{se}");
        assert_eq!(
            se.matches("longer than 1048576 bytes").count(),
            2,
            "{args:?}: {se}"
        );
        let peak = peak_mib(&so);
        assert!(peak < 64.0, "{args:?}: peak {peak} MiB");
    }
}
