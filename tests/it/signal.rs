//! SIGINT and SIGTERM to a real child process while it ingests under load.

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::util::*;

/// What could go wrong: ticks accepted into the channel but not yet committed when the signal
/// arrives are lost, or the process dies without checkpointing. The child reports how many it
/// accepted; the database must hold exactly those, and they must be the first ones sent.
///
/// (Long on purpose: one scenario end to end, its steps sharing what it builds.)
fn signal_under_load_stores_every_accepted_tick(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tickrec"))
        .args(["--db", dir.path().to_str().unwrap(), "ingest", "-"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let t0 = 1_795_428_000_000_000_000i64; // 2026-11-23T10:00:00Z
    let feeder = std::thread::spawn(move || {
        let mut sent = 0u64;
        let started = Instant::now();
        let mut buf = String::new();
        // Until the child stops reading (broken pipe) or 60 s pass.
        while started.elapsed() < Duration::from_secs(60) {
            buf.clear();
            for _ in 0..100 {
                buf.push_str(&format!(
                    "{{\"symbol\":\"EURUSD\",\"bid\":\"1.{:05}\",\"ask\":2,\"ts_event\":{}}}\n",
                    sent % 100_000,
                    t0 + sent as i64
                ));
                sent += 1;
            }
            if stdin.write_all(buf.as_bytes()).is_err() {
                break;
            }
        }
        sent
    });
    // Under load (ticks committed, the feeder still writing), then the signal.
    let db = tickrec::store::layout::day_path(dir.path(), tickrec::tick::Timestamp(t0).day());
    wait_until(
        Duration::from_secs(30),
        "ingest to commit under load",
        || committed_ticks(&db) >= 2_000,
    );
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let sent = feeder.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    let field = |name: &str| -> u64 {
        let line = stdout
            .lines()
            .find(|l| l.starts_with("ticks:"))
            .expect("stats line");
        let mut words = line.split_whitespace();
        words.find(|w| *w == name).expect(name);
        words.next().unwrap().parse().unwrap()
    };
    let accepted = field("accepted");
    assert!(accepted > 1_000, "under load: {accepted} accepted");
    assert!(accepted < sent, "the signal came before the input ended");
    assert_eq!(field("stored"), accepted);

    let rows = all_rows(dir.path(), "EURUSD");
    assert_eq!(rows.len() as u64, accepted);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(
            r.ts_event.0,
            t0 + i as i64,
            "exactly the first {accepted} lines, in order"
        );
    }
    // The WAL was checkpointed on close: the main file alone holds everything.
    let db = tickrec::store::layout::day_path(dir.path(), rows[0].ts_event.day());
    let wal = std::fs::metadata(format!("{}-wal", db.display()))
        .map(|m| m.len())
        .unwrap_or(0);
    assert_eq!(wal, 0, "WAL truncated at shutdown");
    let _ = out.stderr.lines();
}

#[test]
fn sigint_under_load_stores_every_accepted_tick() {
    signal_under_load_stores_every_accepted_tick("-INT");
}

#[test]
fn sigterm_under_load_stores_every_accepted_tick() {
    signal_under_load_stores_every_accepted_tick("-TERM");
}
