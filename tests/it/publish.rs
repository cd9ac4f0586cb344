//! `record --publish`: subscribers over real TCP beside a real FIX session (the simulator):
//! snapshot then live ticks of the symbols asked, a stalled subscriber cut off without
//! holding anyone else up, and a subscriber with a cursor handed from the day files to live
//! ticks with no gap and no duplicate.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::util::{free_port, Reaped};

const BIN: &str = env!("CARGO_BIN_EXE_tickrec");

fn connect(port: u16) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => return s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("nothing listens on {port}: {e}"),
        }
    }
}

/// Subscribes with `request` and returns the reader of its lines.
fn subscribe(port: u16, request: &str) -> BufReader<TcpStream> {
    let mut s = connect(port);
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    s.write_all(b"\n").unwrap();
    BufReader::new(s)
}

fn next_json(r: &mut BufReader<TcpStream>) -> serde_json::Value {
    let mut line = String::new();
    let n = r.read_line(&mut line).expect("a line before the timeout");
    assert!(n > 0, "the publisher closed the connection");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

fn record(db: &Path, fix: u16, publish: u16, metrics: u16, config: &Path, log: &Path) -> Reaped {
    Reaped(
        Command::new(BIN)
            .arg("--db")
            .arg(db)
            .arg("--config")
            .arg(config)
            .args([
                "record",
                "--connect",
                &format!("127.0.0.1:{fix}"),
                "--sender-comp-id",
                "REC",
                "--target-comp-id",
                "SIM",
                "--symbols",
                "EURUSD,GBPUSD,USDJPY",
                "--publish",
                &format!("127.0.0.1:{publish}"),
                "--metrics-listen",
                &format!("127.0.0.1:{metrics}"),
            ])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// What could go wrong: a subscriber that gets other symbols, misses the snapshot, sees a tick
/// twice or skips one at the handover from the day files, or a stalled subscriber that is
/// never cut off (its queue growing without bound) or that holds up the others.
///
/// (Long on purpose: one scenario end to end, its steps sharing what it builds.)
#[test]
fn subscribers_get_a_snapshot_then_live_ticks_a_stalled_one_is_cut_off_and_a_cursor_hands_over_exactly(
) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let config = dir.path().join("tickrec.toml");
    // A queue counts every symbol's ticks: 100,000 is five seconds of this feed, so a
    // subscriber that reads is not cut off when the machine is busy, while one that never
    // reads is, by its blocked write (two seconds) once the socket buffers are full.
    std::fs::write(&config, "[publish]\nqueue_ticks = 100000\n").unwrap();
    let log = dir.path().join("record.log");
    let (fix, publish, metrics) = (free_port(), free_port(), free_port());
    let _sim = Reaped(
        Command::new(BIN)
            .args([
                "simulate",
                "--port",
                &fix.to_string(),
                "--symbols",
                "3",
                "--rate",
                "20000",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _rec = record(&db, fix, publish, metrics, &config, &log);

    // One symbol: the snapshot, then only its ticks, seq rising.
    let mut one = subscribe(publish, r#"{"symbols": ["EURUSD"]}"#);
    assert_eq!(next_json(&mut one)["event"], "subscribed");
    let mut snapshot = 0;
    loop {
        let v = next_json(&mut one);
        if v["event"] == "snapshot_end" {
            break;
        }
        assert_eq!(v["symbol"], "EURUSD", "{v}");
        assert!(v["seq"].is_null(), "snapshot rows come from the rings: {v}");
        snapshot += 1;
    }
    assert!(snapshot <= 1);

    // A subscriber that never reads: cut off, and the others go on.
    let stalled = subscribe(publish, r#"{"symbols": ["*"]}"#);
    let stalled_peer = stalled.get_ref().local_addr().unwrap().to_string();

    let mut last_seq = 0;
    for _ in 0..300 {
        let v = next_json(&mut one);
        assert_eq!(v["symbol"], "EURUSD", "{v}");
        let seq = v["seq"].as_i64().unwrap();
        assert!(seq > last_seq, "{seq} after {last_seq}");
        last_seq = seq;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut looked = Instant::now();
    loop {
        if looked.elapsed() >= Duration::from_millis(50) {
            looked = Instant::now();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let cut_off =
                |line: &&str| line.contains("fell behind") && line.contains(&stalled_peer);
            if text.lines().any(|line| cut_off(&line)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the stalled subscriber was never cut off:\n{text}"
            );
        }
        // The other subscriber keeps getting ticks meanwhile.
        let v = next_json(&mut one);
        assert_eq!(v["symbol"], "EURUSD", "{v}");
    }
    // Its connection ends (after what the kernel had buffered).
    let mut rest = Vec::new();
    let mut s = stalled.into_inner();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.read_to_end(&mut rest)
        .expect("the stalled connection is closed");

    // A cursor 500 ticks back: the committed ticks from the day file, then live ones, every
    // seq once and in order.
    let v = next_json(&mut one);
    let day = v["ts_event"].as_str().unwrap()[..10].to_owned();
    let from = (v["seq"].as_i64().unwrap() - 500).max(0);
    let mut resumed = subscribe(
        publish,
        &format!(r#"{{"symbols": ["*"], "from": "{day}:{from}"}}"#),
    );
    assert_eq!(next_json(&mut resumed)["event"], "subscribed");
    let mut expect = from + 1;
    let mut phase = "replay";
    let mut live = 0;
    while live < 2000 {
        let v = next_json(&mut resumed);
        match v["event"].as_str() {
            Some("replayed") => phase = "snapshot",
            Some("snapshot_end") => phase = "live",
            Some(other) => panic!("{other}: {v}"),
            None if phase == "snapshot" => assert!(v["seq"].is_null()),
            None => {
                assert_eq!(&v["ts_event"].as_str().unwrap()[..10], day, "{v}");
                assert_eq!(v["seq"].as_i64().unwrap(), expect, "{phase}: {v}");
                expect += 1;
                if phase == "live" {
                    live += 1;
                }
            }
        }
    }
    assert!(expect - from > 2000);
}
