//! Legacy JSON and dual storage modes, with real files.

use std::path::Path;
use std::process::{Command, Stdio};

use tickrec::config::{Backend, FlagOverrides, Options};
use tickrec::legacy_json;
use tickrec::tick::Timestamp;

use super::util::*;

fn options(dir: &Path, backend: Backend) -> Options {
    let mut o = Options::load(
        None,
        &|_| None,
        &FlagOverrides {
            db_path: Some(dir.join("db")),
        },
    )
    .unwrap();
    o.backend = backend;
    o.json_path = dir.join("json");
    o
}

fn read_json(path: &Path) -> Vec<String> {
    let mut out = Vec::new();
    legacy_json::read_file(path, legacy_json::MAX_RECORD_BYTES, &mut |_, r| {
        let t = r.unwrap();
        out.push(format!("{} {}", t.ts_event, t.bid.unwrap()));
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    out
}

/// What could go wrong: in dual mode one broken backend (a full disk, a bad folder) stops the
/// pipeline or hides behind the healthy one's counters.
#[test]
fn dual_mode_writes_both_and_a_failing_json_tree_does_not_stop_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), Backend::Dual);
    // A regular file where GBPUSD's folder must go: every JSON write for it fails for real.
    std::fs::create_dir_all(&opts.json_path).unwrap();
    std::fs::write(opts.json_path.join("GBPUSD"), b"in the way").unwrap();
    let rec = tickrec::service::start_recorder(&opts).unwrap();
    let t0 = ts("2026-11-23T10:00:00Z");
    for i in 0..100 {
        let symbol = if i % 4 == 0 { "GBPUSD" } else { "EURUSD" };
        rec.store_tick(tick(
            &rec,
            symbol,
            Timestamp(t0.0 + i),
            &format!("1.{i:05}"),
            "2",
        ))
        .unwrap();
    }
    let stats = rec.shutdown();
    let sqlite = &stats.backends[0];
    let json = &stats.backends[1];
    assert_eq!(
        (sqlite.name.as_str(), json.name.as_str()),
        ("sqlite", "json")
    );
    assert_eq!(sqlite.ticks_stored, 100);
    assert_eq!(sqlite.write_errors, 0);
    assert_eq!(json.ticks_stored, 75);
    assert_eq!(json.write_errors, 25);
    assert_eq!(json.ticks_spilled, 25, "{json:?}");
    assert_eq!(json.ticks_lost, 0);
    for b in &stats.backends {
        assert_eq!(
            b.ticks_stored + b.dead_lettered + b.ticks_spilled + b.ticks_lost,
            stats.ticks_accepted,
            "every accepted tick accounted for by {}",
            b.name
        );
    }
    assert!(!stats.healthy);
    assert_eq!(all_rows(&opts.db_path, "GBPUSD").len(), 25);
    let eur = read_json(&legacy_json::file_path(&opts.json_path, "EURUSD", t0.day()));
    assert_eq!(eur.len(), 75);
    assert_eq!(eur[0], "2026-11-23T10:00:00.000000001Z 1.00001");
    let spill = tickrec::store::layout::spill_path(&opts.json_path.join("deadletter"), t0.day());
    let letters = std::fs::read_to_string(spill).unwrap();
    assert_eq!(letters.lines().count(), 25);
}

#[test]
fn json_mode_appends_after_a_torn_line_and_the_reader_skips_it() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), Backend::Json);
    let t0 = ts("2026-11-23T10:00:00Z");
    let file = legacy_json::file_path(&opts.json_path, "EURUSD", t0.day());
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(
        &file,
        "{\"symbol\":\"EURUSD\",\"bid\":1.1,\"ask\":1.2,\"lp\":\"LP1\",\"timestamp\":\"2026-11-23T09:00:00Z\"}\n{\"symbol\":\"EUR",
    )
    .unwrap();
    let rec = tickrec::service::start_recorder(&opts).unwrap();
    rec.store_tick(tick(&rec, "EURUSD", t0, "1.08502", "1.08510"))
        .unwrap();
    let stats = rec.shutdown();
    assert_eq!(stats.backends.len(), 1);
    assert_eq!(stats.ticks_stored, 1);
    assert!(!opts.db_path.exists(), "json mode writes no SQLite");
    let mut good = Vec::new();
    let mut bad = Vec::new();
    legacy_json::read_file(&file, legacy_json::MAX_RECORD_BYTES, &mut |at, r| {
        match r {
            Ok(t) => good.push(t.bid.unwrap().to_string()),
            Err(e) => bad.push((at.line, e.to_string())),
        }
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(good, ["1.1", "1.08502"]);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0].0, 2);
}

#[test]
fn the_storage_backend_comes_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tickrec"))
        .args(["--db", dir.path().join("db").to_str().unwrap(), "ingest"])
        .env("TICK_STORAGE_BACKEND", "dual")
        .env("TICK_JSON_PATH", &json)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        b"{\"symbol\":\"../../etc/EURUSD\",\"bid\":1.5,\"source\":\"LP\",\"ts_event\":\"2026-11-23T10:00:00Z\"}\n",
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    let day = ts("2026-11-23").day();
    let file = legacy_json::file_path(&json, "../../etc/EURUSD", day);
    assert!(
        file.starts_with(&json) && file.exists(),
        "{}",
        file.display()
    );
    assert_eq!(read_json(&file), ["2026-11-23T10:00:00.000000000Z 1.5"]);
    assert_eq!(
        all_rows(&dir.path().join("db"), "../../etc/EURUSD").len(),
        1
    );
}
