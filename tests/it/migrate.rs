//! `tickrec migrate` and `tickrec verify` on real trees of legacy JSON files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::cli::tickrec;
use super::util::*;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

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

fn verifies(db: &Path, input: &Path) -> bool {
    run(db, &["verify", "--json-dir", input.to_str().unwrap()])
        .status
        .success()
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
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("compared 3 symbol-days: 0 differ; 2 JSON records"),
        "{}",
        text(&out.stdout)
    );

    // Again: nothing twice, nothing even parsed.
    let out = run(&db, &["migrate", "--input-dir", input_arg]);
    assert!(
        text(&out.stdout).contains("files 2 (2 unchanged since their import), ticks imported 0"),
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
    let committed = || -> i64 {
        rusqlite::Connection::open_with_flags(&day_file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row("SELECT count(*) FROM ticks", [], |r| r.get(0)))
            .unwrap_or(0)
    };
    for _ in 0..1000 {
        if committed() > 20_000 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = committed();
    assert!(partial > 0 && partial < 300_000, "killed midway: {partial}");
    let out = run(
        &db,
        &["migrate", "--input-dir", input_arg, "--batch-size", "500"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains(&format!("already present {partial}")), "{s}");
    assert_eq!(committed(), 300_000);
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
        ],
    );
    let s = text(&out.stdout);
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
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not archiving"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        tickrec::migrate::input_files(&input).unwrap().len(),
        2,
        "originals untouched"
    );
    assert!(!dir.path().join("json.tar.zst").exists());
}
