//! `record --publish`: subscribers over real TCP beside a real FIX session (the simulator):
//! snapshot then live ticks of the symbols asked, a stalled subscriber cut off without
//! holding anyone else up, and a subscriber with a cursor handed from the day files to live
//! ticks with no gap and no duplicate; a quiet subscription kept alive by heartbeats whose
//! cursor resumes exactly, and told when the FIX session goes down; a subscriber changing its
//! symbols, or starting over from a cursor, on the same connection; a conflated subscription,
//! each symbol's latest tick at most once an interval, never left on an older one; a second
//! liquidity provider's quotes of the same symbols in snapshots, conflated screens and the
//! status page.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::util::{free_port, record_command, sample, simulator, wait_for, Reaped};

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

/// A subscription of `request` that has said `subscribed` and passed its snapshot: the next
/// line is a live tick (or a later event).
fn subscribed_live(port: u16, request: &str) -> BufReader<TcpStream> {
    let mut sub = subscribe(port, request);
    assert_eq!(next_json(&mut sub)["event"], "subscribed");
    while next_json(&mut sub)["event"] != "snapshot_end" {}
    sub
}

/// The next line, heartbeats included.
fn next_line(r: &mut BufReader<TcpStream>) -> serde_json::Value {
    let mut line = String::new();
    let n = r.read_line(&mut line).expect("a line before the timeout");
    assert!(n > 0, "the publisher closed the connection");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

/// The next line that is neither a heartbeat (one comes whenever the machine held the stream
/// up for a second) nor a FIX session's state.
fn next_json(r: &mut BufReader<TcpStream>) -> serde_json::Value {
    loop {
        let v = next_line(r);
        if v["event"] != "heartbeat" && v["event"] != "session" {
            return v;
        }
    }
}

/// A simulated feed of three symbols and a `record` of it that publishes (stopped, and its
/// directory removed, when dropped: the processes first).
struct Feed {
    _rec: Reaped,
    sim: Reaped,
    publish: u16,
    metrics: u16,
    log: PathBuf,
    db: PathBuf,
    _dir: tempfile::TempDir,
}

/// [`Feed`] at `rate` messages a second, `config` the text of `record`'s configuration file.
fn feed(config: &str, rate: u32) -> Feed {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("tickrec.toml");
    std::fs::write(&config_path, config).unwrap();
    let log = dir.path().join("record.log");
    let (fix, publish, metrics) = (free_port(), free_port(), free_port());
    let sim = simulator(fix, 3, rate);
    let rec = Reaped::new(
        record_command(&dir.path().join("db"), fix, "EURUSD,GBPUSD,USDJPY")
            .arg("--config")
            .arg(&config_path)
            .args(["--publish", &format!("127.0.0.1:{publish}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    Feed {
        _rec: rec,
        sim,
        publish,
        metrics,
        log,
        db: dir.path().join("db"),
        _dir: dir,
    }
}

/// What could go wrong: a subscriber that gets other symbols, misses the snapshot, sees a tick
/// twice or skips one at the handover from the day files, or a stalled subscriber that is
/// never cut off (its queue growing without bound) or that holds up the others.
///
/// (Long on purpose: one scenario end to end, its steps sharing what it builds.)
#[test]
fn subscribers_get_a_snapshot_then_live_ticks_a_stalled_one_is_cut_off_and_a_cursor_hands_over_exactly(
) {
    // A queue counts every symbol's ticks: 100,000 is five seconds of this feed, so a
    // subscriber that reads is not cut off when the machine is busy, while one that never
    // reads is, by its blocked write (two seconds) once the socket buffers are full.
    let feed = feed("[publish]\nqueue_ticks = 100000\n", 20_000);
    let (publish, metrics, log) = (feed.publish, feed.metrics, &feed.log);

    // One symbol: the snapshot, then only its ticks, seq rising.
    let mut one = subscribe(publish, r#"{"symbols": ["EURUSD"]}"#);
    let subscribed = next_json(&mut one);
    assert_eq!(subscribed["event"], "subscribed");
    assert_eq!(subscribed["unknown"], serde_json::json!([]), "{subscribed}");
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
    // The most ticks /metrics showed waiting for a subscriber before the cut-off: the stalled
    // one falling behind shows while it does (it is cut off 2 s after its socket is full).
    let mut furthest_behind = 0.0f64;
    loop {
        if looked.elapsed() >= Duration::from_millis(50) {
            looked = Instant::now();
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let cut_off =
                |line: &&str| line.contains("fell behind") && line.contains(&stalled_peer);
            if text.lines().any(|line| cut_off(&line)) {
                break;
            }
            if let Some((200, m)) = super::util::get(&format!("http://127.0.0.1:{metrics}/metrics"))
            {
                assert_eq!(sample(&m, "tickrec_publish_queue_ticks_bound "), 100_000.0);
                furthest_behind =
                    furthest_behind.max(sample(&m, "tickrec_publish_queued_ticks_max "));
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
    assert!(
        furthest_behind >= 1000.0,
        "the stalled subscriber never showed falling behind: {furthest_behind}"
    );
    // The status page's data counts both: one subscriber connected, one cut off (once); and lists
    // the one connected, with its symbols and the ticks sent to it.
    let one_peer = one.get_ref().local_addr().unwrap().to_string();
    wait_for(
        &format!("http://127.0.0.1:{metrics}/status.json"),
        30,
        |code, body| {
            let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            let listed = v["subscriber_list"].as_array().is_some_and(|list| {
                list.iter().any(|c| {
                    c["peer"] == one_peer.as_str()
                        && c["symbols"] == serde_json::json!(["EURUSD"])
                        && c["ticks_sent"].as_u64() >= Some(300)
                })
            });
            // The stalled one gone, counted once however its last write ended.
            code == 200
                && v["subscribers"].as_u64() == Some(1)
                && v["subscribers_cut_off"].as_u64() == Some(1)
                && listed
        },
    );
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

    // A cursor past every commit (a store restored from an older copy, another store's
    // cursor) is refused, naming where the store ends, rather than skipping what comes next.
    let ahead = expect + 50_000_000;
    let mut refused = subscribe(
        publish,
        &format!(r#"{{"symbols": ["*"], "from": "{day}:{ahead}"}}"#),
    );
    let v = next_line(&mut refused);
    assert_eq!(v["event"], "error", "{v}");
    let why = v["reason"].as_str().unwrap();
    assert!(why.contains("is past what the store holds"), "{why}");
    assert!(
        why.contains(&format!("last tick of {day} is {day}:")),
        "{why}"
    );
    let mut rest = String::new();
    refused.read_to_string(&mut rest).unwrap();
    assert!(rest.is_empty(), "{rest}");
}

/// The next heartbeat's newest (day, seq) of its cursor (one day, unless the test runs across
/// UTC midnight; `None` before any commit passed the subscriber), noting the FIX session's
/// lines on the way in `ups`.
fn next_heartbeat(r: &mut BufReader<TcpStream>, ups: &mut Vec<bool>) -> Option<(String, i64)> {
    let v = loop {
        let v = next_line(r);
        if v["event"] != "session" {
            break v;
        }
        assert_eq!(v["session"], "REC->SIM", "{v}");
        assert_eq!(
            v["symbols"],
            serde_json::json!(["EURUSD", "GBPUSD", "USDJPY"])
        );
        ups.push(v["up"].as_bool().unwrap());
    };
    assert_eq!(v["event"], "heartbeat", "{v}");
    assert!(v["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{v}");
    let newest = v["cursor"].as_str()?.rsplit(',').next()?;
    let (day, seq) = newest.split_once(':')?;
    Some((day.to_owned(), seq.parse().ok()?))
}

/// What could go wrong: a subscription to a symbol that does not trade hears nothing at all (a
/// dead recorder, a dead feed and a quiet market look the same), or a heartbeat's cursor is not
/// the last commit the subscriber was given, so that a consumer restarted from it skips ticks
/// or gets some twice; a subscriber never told its session went down, or told of sessions that
/// record none of its symbols.
///
/// (Long on purpose: one scenario end to end, the feed stopping half way.)
#[test]
fn a_quiet_subscription_gets_heartbeats_with_the_last_commit_given_and_the_session_going_down() {
    let feed = feed("[publish]\nheartbeat_secs = 1\n", 2_000);
    let (publish, log) = (feed.publish, &feed.log);
    // Whether the session was up, in each of its lines on the quiet stream.
    let mut ups: Vec<bool> = Vec::new();

    // A symbol the feed never quotes (told so at once): no snapshot row, no tick, no line of a
    // session (none records it), heartbeats whose cursor the others' commits move on.
    let mut quiet = subscribe(publish, r#"{"symbols": ["XAUUSD"]}"#);
    let subscribed = next_line(&mut quiet);
    assert_eq!(subscribed["event"], "subscribed");
    assert_eq!(
        subscribed["unknown"],
        serde_json::json!(["XAUUSD"]),
        "{subscribed}"
    );
    assert_eq!(next_line(&mut quiet)["event"], "snapshot_end");
    let mut cursors: Vec<(String, i64)> = Vec::new();
    while cursors.len() < 2 || cursors[cursors.len() - 2] == cursors[cursors.len() - 1] {
        assert!(cursors.len() < 60, "the cursor does not move: {cursors:?}");
        match next_heartbeat(&mut quiet, &mut ups) {
            Some(at) => {
                assert!(
                    cursors.last().is_none_or(|prev| at >= *prev),
                    "{at:?} after {cursors:?}"
                );
                cursors.push(at);
            }
            None => assert!(cursors.is_empty(), "a heartbeat lost its cursor"),
        }
    }

    // A quiet subscriber that goes away without a word: its heartbeats find the connection
    // gone within seconds (without them, only its queue running over would, ~100 s here).
    let mut gone = subscribe(publish, r#"{"symbols": ["XAUUSD"]}"#);
    assert_eq!(next_line(&mut gone)["event"], "subscribed");
    // (The session is known by now; its line is not for this subscriber.)
    let end = next_line(&mut gone);
    assert_eq!(end["event"], "snapshot_end", "{end}");
    let gone_peer = gone.get_ref().local_addr().unwrap().to_string();
    drop(gone);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text
            .lines()
            .any(|l| l.contains("subscriber left") && l.contains(&gone_peer))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a closed subscriber was never let go:\n{text}"
        );
        // The quiet subscriber's heartbeats pace the wait.
        next_heartbeat(&mut quiet, &mut ups);
    }

    // Every symbol, and one the session records, then the feed stops: once its last commit is
    // out, the heartbeats name it, on these streams and on the quiet one.
    let mut all = subscribe(publish, r#"{"symbols": ["*"]}"#);
    let mut one = subscribe(publish, r#"{"symbols": ["GBPUSD"]}"#);
    // The snapshots: the session's line as of joining, up.
    for stream in [&mut all, &mut one] {
        assert_eq!(next_line(stream)["event"], "subscribed");
        let mut joined = Vec::new();
        loop {
            let v = next_line(stream);
            match v["event"].as_str() {
                Some("snapshot_end") => break,
                Some("session") => joined.push(v["up"].clone()),
                _ => assert!(v["seq"].is_null(), "a snapshot row has no seq: {v}"),
            }
        }
        assert_eq!(joined, [true], "the session's lines before snapshot_end");
    }
    // (seq, ts_event) of the live rows.
    let mut rows: Vec<(i64, String)> = Vec::new();
    while rows.len() < 200 {
        let v = next_json(&mut all);
        if let Some(seq) = v["seq"].as_i64() {
            rows.push((seq, v["ts_event"].as_str().unwrap().to_owned()));
        }
    }
    drop(feed.sim);
    // Until two heartbeats in a row: the feed has stopped, not just been held up.
    let (mut last_row, mut beats, mut down) = (None, 0, false);
    let deadline = Instant::now() + Duration::from_secs(60);
    while beats < 2 || !down {
        assert!(
            Instant::now() < deadline,
            "the session's going down never came"
        );
        let v = next_line(&mut all);
        if v["event"] == "heartbeat" {
            let given = v["cursor"]
                .as_str()
                .and_then(|c| c.rsplit(',').next())
                .map(str::to_owned);
            let seen = last_row
                .as_ref()
                .map(|(day, seq): &(String, i64)| format!("{day}:{seq}"));
            assert_eq!(
                given, seen,
                "the heartbeat's cursor is not the last tick given"
            );
            beats += 1;
        } else if v["event"] == "session" {
            // (A line may repeat a state: one that came as this subscriber joined.)
            down |= v["up"] == false;
        } else if let Some(seq) = v["seq"].as_i64() {
            last_row = Some((v["ts_event"].as_str().unwrap()[..10].to_owned(), seq));
            beats = 0;
        }
    }
    assert!(last_row.is_some(), "no tick after the 200th");
    // The GBPUSD stream hears of it too.
    let deadline = Instant::now() + Duration::from_secs(30);
    while next_line(&mut one)["up"] != false {
        assert!(
            Instant::now() < deadline,
            "GBPUSD's session going down never came"
        );
    }
    // The quiet stream: its heartbeats reach the last commit, and it heard of no session.
    loop {
        let at = next_heartbeat(&mut quiet, &mut ups);
        if at == last_row {
            break;
        }
        assert!(at <= last_row, "{at:?} past the last commit {last_row:?}");
        assert!(
            Instant::now() < deadline,
            "the quiet stream stays at {at:?}"
        );
    }
    assert!(
        ups.is_empty(),
        "session lines for a symbol no session records: {ups:?}"
    );

    // From a time: the replay starts at the first tick of that time or later (in recording
    // order), then every seq once up to the last commit.
    let (mark_seq, mark_time) = rows[100].clone();
    let request = format!(r#"{{"symbols": ["*"], "from_time": "{mark_time}"}}"#);
    let mut timed = subscribe(publish, &request);
    assert_eq!(next_line(&mut timed)["event"], "subscribed");
    let first = next_json(&mut timed);
    let mut seq = first["seq"].as_i64().expect("a replayed row first");
    assert!(
        seq <= mark_seq,
        "{first} after the tick at {mark_time}, seq {mark_seq}"
    );
    assert!(
        first["ts_event"].as_str().unwrap() >= mark_time.as_str(),
        "{first}"
    );
    let replayed = loop {
        let v = next_json(&mut timed);
        match v["seq"].as_i64() {
            Some(next) => assert_eq!(next, seq + 1, "{v}"),
            None => break v,
        }
        seq += 1;
    };
    assert_eq!(replayed["event"], "replayed", "{replayed}");
    assert_eq!(Some(seq), last_row.as_ref().map(|r| r.1));
    // A request that asks for both is refused, naming why.
    let mut both = subscribe(
        publish,
        &format!(
            r#"{{"symbols": ["*"], "from": "{}:1", "from_time": "{mark_time}"}}"#,
            &mark_time[..10]
        ),
    );
    let refused = next_line(&mut both);
    assert_eq!(refused["event"], "error", "{refused}");
    assert!(
        refused["reason"].as_str().unwrap().contains("not both"),
        "{refused}"
    );
}

/// What could go wrong: `demo --publish` (what README offers a newcomer to try subscribing
/// with) that does not publish, or publishes names its own sessions do not record.
#[test]
fn the_demo_publishes_with_publish() {
    let dir = tempfile::tempdir().unwrap();
    let publish = free_port();
    let _demo = Reaped::new(
        Command::new(BIN)
            .arg("--db")
            .arg(dir.path().join("db"))
            .args([
                "demo",
                "--seconds",
                "60",
                "--symbols",
                "4",
                "--rate",
                "2000",
                "--publish",
                &format!("127.0.0.1:{publish}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut all = subscribe(publish, r#"{"symbols": ["*"]}"#);
    let subscribed = next_line(&mut all);
    assert_eq!(subscribed["event"], "subscribed", "{subscribed}");
    assert_eq!(subscribed["unknown"], serde_json::json!([]), "{subscribed}");
    let row = loop {
        let v = next_json(&mut all);
        if v["seq"].is_i64() {
            break v;
        }
    };
    assert!(row["symbol"].is_string() && row["bid"].is_number(), "{row}");
}

/// What could go wrong: a recorder taking subscribers from other hosts without a word, when
/// neither its subscribers' port nor its metrics listener authenticates a peer or encrypts a
/// stream; or a listener on every address that loopback cannot reach.
#[test]
fn listeners_beyond_loopback_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let (publish, http, log) = (free_port(), free_port(), dir.path().join("demo.log"));
    let _demo = Reaped::new(
        Command::new(BIN)
            .arg("--db")
            .arg(dir.path().join("db"))
            .args(["demo", "--seconds", "60", "--symbols", "2", "--rate", "200"])
            .arg("--publish")
            .arg(format!("0.0.0.0:{publish}"))
            .arg("--metrics-listen")
            .arg(format!("0.0.0.0:{http}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut all = subscribe(publish, r#"{"symbols": ["*"]}"#);
    assert_eq!(next_line(&mut all)["event"], "subscribed");
    // Served on loopback too (an answer of either kind).
    wait_for(&format!("http://127.0.0.1:{http}/health"), 20, |_, _| true);
    let warned = |what: &str, port: u16| {
        std::fs::read_to_string(&log).is_ok_and(|t| {
            t.lines().any(|l| {
                l.contains("WARN")
                    && l.contains(&format!("{what}: listening beyond loopback"))
                    && l.contains(&format!("0.0.0.0:{port}"))
            })
        })
    };
    super::util::wait_until(Duration::from_secs(20), "both warnings in the log", || {
        warned("live subscribers (publish)", publish)
            && warned("metrics, health and status page", http)
    });
}

/// `line` sent on the subscriber's connection.
fn send(r: &mut BufReader<TcpStream>, line: &str) {
    r.get_mut()
        .write_all(format!("{line}\n").as_bytes())
        .unwrap();
}

/// What could go wrong: a change of symbols that a subscriber's stream does not take (it would
/// need a new connection), that loses or repeats ticks of a symbol it keeps,
/// that sends no snapshot of the symbols added or one of those it had, or a bad change line
/// that ends a stream which was fine.
#[test]
fn a_subscriber_changes_its_symbols_on_the_same_connection() {
    // Commits of ten ticks, every half millisecond: a change nearly always comes with
    // commits waiting for the subscriber, whose ticks must not be lost or sent twice.
    let feed = feed("[writer]\nbatch_size = 10\n", 20_000);
    let mut sub = subscribed_live(feed.publish, r#"{"symbols": ["EURUSD"]}"#);
    // Every EURUSD seq the stream gives, across the changes.
    let mut eurusd: Vec<i64> = Vec::new();
    let mut day = String::new();
    while eurusd.len() < 20 {
        let v = next_json(&mut sub);
        assert_eq!(v["symbol"], "EURUSD", "{v}");
        eurusd.push(v["seq"].as_i64().unwrap());
        day = v["ts_event"].as_str().unwrap()[..10].to_owned();
    }

    // EURUSD and GBPUSD: rows of EURUSD alone until the change is taken, then its snapshot
    // (GBPUSD only: EURUSD it had), then both.
    send(&mut sub, r#"{"symbols": ["EURUSD", "GBPUSD", "XAUUSD"]}"#);
    let subscribed = loop {
        let v = next_json(&mut sub);
        if v["event"] == "subscribed" {
            break v;
        }
        assert_eq!(v["symbol"], "EURUSD", "{v}");
        eurusd.push(v["seq"].as_i64().unwrap());
    };
    assert_eq!(subscribed["unknown"], serde_json::json!(["XAUUSD"]));
    let mut snapshot = Vec::new();
    loop {
        let v = next_json(&mut sub);
        if v["event"] == "snapshot_end" {
            break;
        }
        assert!(v["seq"].is_null(), "a snapshot row has no seq: {v}");
        snapshot.push(v["symbol"].clone());
    }
    assert_eq!(snapshot, ["GBPUSD"], "the snapshot of the symbol added");
    // From the next commit given on, every tick of both: the commits encoded before the
    // change, which left GBPUSD out, reach it whole.
    let (mut gbpusd, mut both) = (0, Vec::new());
    while gbpusd < 20 {
        let v = next_json(&mut sub);
        let seq = v["seq"].as_i64().unwrap();
        match v["symbol"].as_str() {
            Some("EURUSD") => eurusd.push(seq),
            Some("GBPUSD") => gbpusd += 1,
            _ => panic!("{v}"),
        }
        both.push(seq);
    }
    let from = format!("{day}:{}", both[0] - 1);
    let stored = stored_seqs(&feed, "EURUSD,GBPUSD", &from, both.len());
    assert_eq!(
        both, stored,
        "both symbols' ticks from the first given after the change"
    );

    // A line that is not a request, and a replay from past what the store holds: each refused
    // with the reason, and the stream goes on unchanged.
    send(&mut sub, "{\"symbols\": ");
    send(
        &mut sub,
        &format!(r#"{{"symbols": ["USDJPY"], "from": "{day}:999999999"}}"#),
    );
    let mut refused = Vec::new();
    while refused.len() < 2 {
        let v = next_json(&mut sub);
        match (v["event"].as_str(), v["symbol"].as_str()) {
            (Some("error"), _) => refused.push(v["reason"].as_str().unwrap().to_owned()),
            (None, Some("EURUSD")) => eurusd.push(v["seq"].as_i64().unwrap()),
            (None, Some("GBPUSD")) => {}
            _ => panic!("{v}"),
        }
    }
    assert!(refused[0].contains("unchanged"), "{refused:?}");
    assert!(
        refused[1].contains("is past what the store holds") && refused[1].contains("unchanged"),
        "{refused:?}"
    );

    // USDJPY alone: after its snapshot, nothing else.
    send(&mut sub, r#"{"symbols": ["USDJPY"]}"#);
    loop {
        let v = next_json(&mut sub);
        if v["event"] == "subscribed" {
            break;
        }
        match v["symbol"].as_str() {
            Some("EURUSD") => eurusd.push(v["seq"].as_i64().unwrap()),
            Some("GBPUSD") => {}
            _ => panic!("{v}"),
        }
    }
    let mut usdjpy = 0;
    while usdjpy < 20 {
        let v = next_json(&mut sub);
        if v["event"] == "snapshot_end" {
            continue;
        }
        assert_eq!(v["symbol"], "USDJPY", "{v}");
        usdjpy += 1;
    }

    // A client that sends lines far faster than it reads the answers: cut off once 64 wait,
    // not let grow the recorder's memory without bound.
    let mut flood = subscribe(feed.publish, r#"{"symbols": ["EURUSD"]}"#);
    let flood_peer = flood.get_ref().local_addr().unwrap().to_string();
    send(&mut flood, &"{}\n".repeat(5000));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&feed.log).unwrap_or_default();
        let cut = |l: &&str| l.contains(&flood_peer) && l.contains("request lines waiting");
        if text.lines().any(|l| cut(&l)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a flood of lines was never cut off:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The EURUSD ticks given, across two changes, are the store's from the first one given,
    // each once: as many as `tail` reads from there.
    let from = format!("{day}:{}", eurusd[0] - 1);
    assert_eq!(eurusd, stored_seqs(&feed, "EURUSD", &from, eurusd.len()));
}

/// The seqs of the first `n` ticks of `symbols` the store holds after `from`, as `tail` reads
/// them.
fn stored_seqs(feed: &Feed, symbols: &str, from: &str, n: usize) -> Vec<i64> {
    let n = n.to_string();
    let args = ["--symbols", symbols, "--from", from, "--max-ticks", &n];
    stored_rows(&feed.db, &args)
        .iter()
        .map(|v| v["seq"].as_i64().unwrap())
        .collect()
}

/// The rows `tickrec tail` with `args` prints of the store under `db`.
fn stored_rows(db: &std::path::Path, args: &[&str]) -> Vec<serde_json::Value> {
    tried_rows(db, args).unwrap_or_else(|e| panic!("{e}"))
}

/// [`stored_rows`], or why `tail` failed (no day file yet, say).
fn tried_rows(db: &std::path::Path, args: &[&str]) -> Result<Vec<serde_json::Value>, String> {
    let out = Command::new(BIN)
        .arg("--db")
        .arg(db)
        .arg("tail")
        .args(args)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect())
}

/// What could go wrong: a subscriber that asks on a running stream for its symbols again from
/// a cursor gets the replay mixed with live ticks it was already given, a gap or a tick twice
/// at the handover back to live, or every live tick twice (its queue registered again).
#[test]
fn a_subscriber_starts_over_from_a_cursor_on_the_same_connection() {
    let feed = feed("[writer]\nbatch_size = 10\n", 20_000);
    let mut sub = subscribed_live(feed.publish, r#"{"symbols": ["EURUSD"]}"#);
    let mut first = Vec::new();
    while first.len() < 200 {
        let v = next_json(&mut sub);
        assert_eq!(v["symbol"], "EURUSD", "{v}");
        first.push((
            v["ts_event"].as_str().unwrap()[..10].to_owned(),
            v["seq"].as_i64().unwrap(),
        ));
    }
    // From the tenth tick given on, two symbols.
    let (day, from) = first[9].clone();
    send(
        &mut sub,
        &format!(r#"{{"symbols": ["EURUSD", "GBPUSD"], "from": "{day}:{from}"}}"#),
    );
    loop {
        let v = next_json(&mut sub);
        if v["event"] == "subscribed" {
            break;
        }
        assert_eq!(v["symbol"], "EURUSD", "before the start over: {v}");
    }
    // The replay, `replayed`, the snapshot, then live: every seq of the two symbols once, in
    // order, from the cursor on.
    let mut seqs: Vec<i64> = Vec::new();
    let mut phase = "replay";
    let mut live = 0;
    while live < 500 {
        let v = next_json(&mut sub);
        match (v["event"].as_str(), phase) {
            (Some("replayed"), "replay") => {
                phase = "snapshot";
                let cursor = v["cursor"].as_str().unwrap();
                let last = seqs.last().copied().unwrap_or(from);
                assert!(cursor_seq(cursor) >= last, "{v} after {last}");
            }
            (Some("snapshot_end"), "snapshot") => phase = "live",
            (None, "snapshot") => assert!(v["seq"].is_null(), "{v}"),
            (None, _) => {
                let symbol = v["symbol"].as_str().unwrap();
                assert!(symbol == "EURUSD" || symbol == "GBPUSD", "{v}");
                assert_eq!(&v["ts_event"].as_str().unwrap()[..10], day, "{v}");
                let seq = v["seq"].as_i64().unwrap();
                assert!(seq > seqs.last().copied().unwrap_or(from), "{phase}: {v}");
                seqs.push(seq);
                live += usize::from(phase == "live");
            }
            _ => panic!("{phase}: {v}"),
        }
    }
    assert!(
        seqs.len() > 500 + 190,
        "the replay sent the ticks from the cursor: {}",
        seqs.len()
    );
    // Exactly the store's ticks of the two symbols from the cursor, as `tail` reads them.
    let stored = stored_seqs(&feed, "EURUSD,GBPUSD", &format!("{day}:{from}"), seqs.len());
    assert_eq!(seqs, stored);
}

/// The tick rows of a subscription, gathered by a thread of their own.
#[derive(Default)]
struct Gathered {
    /// Each row's line, by its place in recording order.
    lines: std::collections::HashMap<(String, i64), String>,
    /// (symbol, place) of each row, in the order they came.
    order: Vec<(String, (String, i64))>,
}

type Shared = std::sync::Arc<std::sync::Mutex<Gathered>>;

/// Every tick row of `sub` from here on, gathered on a thread of its own until the connection
/// ends (read as it comes, so that the publisher never finds this subscriber slow).
fn gather(mut sub: BufReader<TcpStream>) -> Shared {
    let gathered = Shared::default();
    let into = gathered.clone();
    std::thread::spawn(move || {
        let mut line = String::new();
        while sub.read_line(&mut line).is_ok_and(|n| n > 0) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v["seq"].is_i64() {
                let mut g = into.lock().unwrap();
                g.order
                    .push((v["symbol"].as_str().unwrap().to_owned(), place(&v)));
                g.lines.insert(place(&v), std::mem::take(&mut line));
            }
            line.clear();
        }
    });
    gathered
}

/// The line `gathered` has at `at`, once its thread has read it (within 30 s).
fn gathered_line(gathered: &Shared, at: &(String, i64)) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(line) = gathered.lock().unwrap().lines.get(at) {
            return line.clone();
        }
        assert!(Instant::now() < deadline, "{at:?} never came");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The next line of `sub`, parsed and as it came.
fn next_raw(sub: &mut BufReader<TcpStream>) -> (serde_json::Value, String) {
    let mut line = String::new();
    assert!(sub.read_line(&mut line).unwrap() > 0, "closed");
    let v = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    (v, line)
}

/// A tick row's place in recording order: (day, seq).
fn place(v: &serde_json::Value) -> (String, i64) {
    let day = v["ts_event"].as_str().unwrap_or_else(|| panic!("{v}"))[..10].to_owned();
    (day, v["seq"].as_i64().unwrap_or_else(|| panic!("{v}")))
}

/// What could go wrong: a conflated subscription that sends a symbol more often than its
/// interval, a line the store does not hold or out of recording order, or that keeps back a
/// symbol's last tick once the feed stops (a screen left showing a stale quote); a change of
/// the subscription that leaves the old way on (a line without `conflate_ms` gives every tick
/// again); a conflation with a replay (it has none) or out of range let through; the status
/// page not saying it.
///
/// (Long on purpose: one scenario end to end, its steps sharing what it builds.)
#[test]
fn a_conflated_subscription_sends_each_symbol_s_latest_tick_at_most_once_an_interval() {
    let feed = feed("[writer]\nbatch_size = 10\n", 5_000);
    // Every tick, from before the conflated one joins: what its lines are checked against.
    let every = gather(subscribed_live(feed.publish, r#"{"symbols": ["*"]}"#));
    for (request, why) in [
        (
            r#"{"symbols": ["*"], "conflate_ms": 200, "from_time": "2026-01-01"}"#,
            "has no replay",
        ),
        (
            r#"{"symbols": ["*"], "conflate_ms": 5}"#,
            "is not within 10–60000",
        ),
        (r#"{"symbols": ["*"], "conflate_ms": -1}"#, "expected u64"),
    ] {
        let why_given = refused(subscribe(feed.publish, request));
        assert!(why_given.contains(why), "{request}: {why_given}");
    }

    // Two seconds of every symbol at most once in 200 ms.
    let started = Instant::now();
    let mut conf = subscribe(feed.publish, r#"{"symbols": ["*"], "conflate_ms": 200}"#);
    let subscribed = next_json(&mut conf);
    assert_eq!(subscribed["event"], "subscribed", "{subscribed}");
    assert_eq!(subscribed["conflate_ms"], 200, "{subscribed}");
    while next_json(&mut conf)["event"] != "snapshot_end" {}
    let peer = conf.get_ref().local_addr().unwrap().to_string();
    let mut rows: Vec<(serde_json::Value, String)> = Vec::new();
    let read_row = |conf: &mut BufReader<TcpStream>| loop {
        let (v, line) = next_raw(conf);
        if v["event"] != "heartbeat" && v["event"] != "session" {
            return (v, line);
        }
    };
    while started.elapsed() < Duration::from_secs(2) {
        rows.push(read_row(&mut conf));
    }
    let span = started.elapsed();
    // The status page says how it is served.
    wait_for(
        &format!("http://127.0.0.1:{}/status.json", feed.metrics),
        30,
        |_, body| {
            let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            v["subscriber_list"].as_array().is_some_and(|list| {
                list.iter()
                    .any(|c| c["peer"] == peer.as_str() && c["conflate_ms"] == 200)
            })
        },
    );
    let most = (span.as_millis() / 200 + 1) as usize;
    for symbol in ["EURUSD", "GBPUSD", "USDJPY"] {
        let n = rows.iter().filter(|(v, _)| v["symbol"] == symbol).count();
        assert!((1..=most).contains(&n), "{n} rows of {symbol} in {span:?}");
    }

    // `tickrec subscribe --conflate-ms`: the same stream, printed; no cursor file with it.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["subscribe", &format!("127.0.0.1:{}", feed.publish)])
        .args([
            "--symbols",
            "EURUSD,GBPUSD",
            "--conflate-ms",
            "100",
            "--max-ticks",
            "6",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("subscribe: 6 ticks"), "{stderr}");
    let printed: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(printed.len(), 6);
    for symbol in ["EURUSD", "GBPUSD"] {
        let of: Vec<_> = printed
            .iter()
            .filter(|v| v["symbol"] == symbol)
            .map(place)
            .collect();
        assert!(
            of.len() >= 2 && of.windows(2).all(|w| w[0] < w[1]),
            "{of:?}"
        );
    }
    for (args, why) in [
        (
            &["--conflate-ms", "100", "--cursor-file", "c"][..],
            "cannot be used with",
        ),
        (&["--conflate-ms", "5"][..], "5 is not in 10..=60000"),
    ] {
        let out = Command::new(BIN)
            .args(["subscribe", "127.0.0.1:1"])
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    }

    // Every tick of EURUSD again, from the next commit on; what was held before it first.
    send(&mut conf, r#"{"symbols": ["EURUSD"]}"#);
    loop {
        let (v, line) = read_row(&mut conf);
        if v["event"] == "subscribed" {
            assert!(v.get("conflate_ms").is_none(), "{v}");
            break;
        }
        rows.push((v, line));
    }
    assert_eq!(next_json(&mut conf)["event"], "snapshot_end");
    let mut eurusd = Vec::new();
    while eurusd.len() < 50 {
        let (v, line) = read_row(&mut conf);
        assert_eq!(v["symbol"], "EURUSD", "{v}");
        assert_eq!(gathered_line(&every, &place(&v)), line);
        eurusd.push(place(&v));
    }
    let every_eurusd: Vec<(String, i64)> = every
        .lock()
        .unwrap()
        .order
        .iter()
        .filter(|(symbol, at)| symbol == "EURUSD" && *at >= eurusd[0] && *at <= eurusd[49])
        .map(|(_, at)| at.clone())
        .collect();
    assert_eq!(eurusd, every_eurusd, "every EURUSD tick, none left out");

    // Conflated again, two symbols at 100 ms; then the feed stops.
    send(
        &mut conf,
        r#"{"symbols": ["EURUSD", "GBPUSD"], "conflate_ms": 100}"#,
    );
    let mut after = Vec::new();
    loop {
        let (v, _) = read_row(&mut conf);
        if v["event"] == "subscribed" {
            assert_eq!(v["conflate_ms"], 100, "{v}");
            break;
        }
        assert_eq!(v["symbol"], "EURUSD", "{v}");
    }
    while next_json(&mut conf)["event"] != "snapshot_end" {}
    while after.len() < 6 {
        after.push(read_row(&mut conf));
    }
    drop(feed.sim);
    // Once the commits stop, a heartbeat: nothing is held back.
    loop {
        let (v, line) = next_raw(&mut conf);
        if v["event"] == "heartbeat" {
            break;
        }
        if v["event"] != "session" {
            after.push((v, line));
        }
    }
    let day = place(&after[0].0).0;
    for symbol in ["EURUSD", "GBPUSD"] {
        let last = after.iter().rev().find(|(v, _)| v["symbol"] == symbol);
        let last = last.unwrap_or_else(|| panic!("no {symbol}"));
        let stored = stored_rows(
            &feed.db,
            &["--symbols", symbol, "--from", &format!("{day}:0")],
        );
        assert_eq!(
            Some(&last.0),
            stored.last(),
            "{symbol}'s last line is its last committed tick"
        );
    }
    assert!(after.iter().all(|(v, _)| v["symbol"] != "USDJPY"));

    // Every conflated line is the store's, byte for byte, in recording order.
    rows.extend(after);
    for pair in rows.windows(2) {
        assert!(
            place(&pair[0].0) < place(&pair[1].0),
            "{} then {}",
            pair[0].1,
            pair[1].1
        );
    }
    for (v, line) in &rows {
        assert_eq!(&gathered_line(&every, &place(v)), line);
    }
}

/// What could go wrong: with only conflated subscribers, the recorder encodes only each
/// symbol's latest tick of the commits it encodes together; a screen that then asks for every
/// tick misses those left out of the commits encoded before its change, or a conflated line is
/// not the store's latest.
#[test]
fn a_lone_conflated_screen_that_asks_for_every_tick_misses_none() {
    // Commits of ten ticks, every half millisecond: the change comes with commits waiting.
    let feed = feed("[writer]\nbatch_size = 10\n", 20_000);
    let mut screen = subscribed_live(feed.publish, r#"{"symbols": ["*"], "conflate_ms": 50}"#);
    let mut conflated = Vec::new();
    while conflated.len() < 30 {
        conflated.push(next_json(&mut screen));
    }
    // Each line is a committed tick as the store holds it; each symbol once a write.
    let day = conflated[0]["ts_event"].as_str().unwrap()[..10].to_owned();
    for v in conflated.iter().take(6) {
        let seq = v["seq"].as_i64().unwrap();
        let from = format!("{day}:{}", seq - 1);
        let stored = stored_rows(&feed.db, &["--from", &from, "--max-ticks", "1"]);
        assert_eq!(stored, std::slice::from_ref(v));
    }

    // What was held is written before the answer: the latest line of each symbol of the
    // commits given before the change. So every EURUSD tick after the newest of them comes in
    // a commit given after it, whole.
    send(&mut screen, r#"{"symbols": ["EURUSD"]}"#);
    loop {
        let v = next_json(&mut screen);
        if v["event"] == "subscribed" {
            assert!(v.get("conflate_ms").is_none(), "{v}");
            break;
        }
        conflated.push(v);
    }
    let given = conflated.iter().filter_map(|v| v["seq"].as_i64()).max();
    assert_eq!(next_json(&mut screen)["event"], "snapshot_end");
    let mut eurusd = Vec::new();
    while eurusd.len() < 200 {
        let v = next_json(&mut screen);
        assert_eq!(v["symbol"], "EURUSD", "{v}");
        eurusd.push(v["seq"].as_i64().unwrap());
    }
    let from = format!("{day}:{}", given.unwrap());
    assert_eq!(
        eurusd,
        stored_seqs(&feed, "EURUSD", &from, eurusd.len()),
        "every EURUSD tick after the commits given before the change"
    );
}

/// What could go wrong: beside a conflated screen of every symbol, the encoder writes of the
/// symbols a strategy does not take only their latest ticks; a strategy that then widens to one
/// of them gets the commits encoded before its change as they were, with that symbol's ticks
/// missing.
#[test]
fn a_strategy_that_widens_beside_a_screen_misses_none_of_its_new_symbol() {
    // Commits of ten ticks, every half millisecond: the change comes with commits waiting.
    let feed = feed("[writer]\nbatch_size = 10\n", 20_000);
    let mut screen = subscribed_live(feed.publish, r#"{"symbols": ["*"], "conflate_ms": 50}"#);
    let mut strategy = subscribed_live(feed.publish, r#"{"symbols": ["EURUSD"]}"#);
    let mut day = String::new();
    for _ in 0..300 {
        let v = next_json(&mut strategy);
        assert_eq!(v["symbol"], "EURUSD", "{v}");
        day = v["ts_event"].as_str().unwrap()[..10].to_owned();
    }
    // The screen reads on meanwhile, until the end: its wants stay in the encoder's union.
    let (done, end) = std::sync::mpsc::channel::<()>();
    let screen_reader = std::thread::spawn(move || {
        while end.try_recv().is_err() {
            next_json(&mut screen);
        }
    });
    send(&mut strategy, r#"{"symbols": ["EURUSD", "GBPUSD"]}"#);
    while next_json(&mut strategy)["event"] != "subscribed" {}
    while next_json(&mut strategy)["event"] != "snapshot_end" {}
    // From the first tick given after the change, every tick of both: the commits encoded
    // before it, which held only GBPUSD's latest tick of each wake, reach it whole.
    let (mut gbpusd, mut both) = (0, Vec::new());
    while gbpusd < 200 {
        let v = next_json(&mut strategy);
        match v["symbol"].as_str() {
            Some("GBPUSD") => gbpusd += 1,
            Some("EURUSD") => {}
            _ => panic!("{v}"),
        }
        both.push(v["seq"].as_i64().unwrap());
    }
    let from = format!("{day}:{}", both[0] - 1);
    assert_eq!(
        both,
        stored_seqs(&feed, "EURUSD,GBPUSD", &from, both.len()),
        "every EURUSD and GBPUSD tick from the first given after the change"
    );
    done.send(()).unwrap();
    screen_reader.join().unwrap();
}

/// A `record` of two simulated liquidity providers, EURUSD, GBPUSD and USDJPY from each: LP1
/// at 2,000 messages a second, LP2 at `lp2_rate`; `extra` added to its configuration. Stopped
/// when dropped (the processes first).
struct TwoLps {
    _lp1: Reaped,
    lp2: Reaped,
    _rec: Reaped,
    db: PathBuf,
    publish: u16,
    metrics: u16,
}

fn two_lps(dir: &std::path::Path, lp2_rate: u32, extra: &str) -> TwoLps {
    let (lp1, lp2, publish, metrics) = (free_port(), free_port(), free_port(), free_port());
    let symbols = ["EURUSD", "GBPUSD", "USDJPY"];
    let config = dir.join("tickrec.toml");
    std::fs::write(
        &config,
        super::util::two_lps_config(lp1, lp2, &symbols) + extra,
    )
    .unwrap();
    let lp1 = simulator(lp1, 3, 2_000);
    let lp2 = super::util::simulator_as("LPB", lp2, 3, lp2_rate);
    let db = dir.join("db");
    let rec = Reaped::new(
        Command::new(BIN)
            .arg("--db")
            .arg(&db)
            .arg("record")
            .arg("--config")
            .arg(&config)
            .args(["--publish", &format!("127.0.0.1:{publish}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    TwoLps {
        _lp1: lp1,
        lp2,
        _rec: rec,
        db,
        publish,
        metrics,
    }
}

/// What could go wrong: a liquidity provider goes quiet while another quotes on, nobody looks
/// at the latest quotes (no status page, no subscriber) until its last quotes have left the
/// rings, and a subscriber joining then gets no quote of it, or an older one.
#[test]
fn a_quiet_provider_s_last_quotes_reach_a_later_snapshot_with_no_screen_looking() {
    let dir = tempfile::tempdir().unwrap();
    // Rings of 1,000 ticks: LP1's quotes fill a symbol's in about 1.5 s.
    let lps = two_lps(dir.path(), 20, "[recorder]\nring_capacity = 1000\n");
    let (db, publish, lp2_sim) = (lps.db, lps.publish, lps.lp2);
    // Read from the store (not the rings, which a look would remember): LP2's last tick of each
    // symbol, once it has quoted each.
    let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let from = format!("{day}:0");
    let lp2_last = || {
        let mut last = std::collections::BTreeMap::new();
        // (Nothing yet while the day file is not made.)
        let rows = tried_rows(&db, &["--from", &from, "--sources", "LP2"]);
        for r in rows.unwrap_or_default() {
            last.insert(r["symbol"].as_str().unwrap_or_default().to_owned(), r);
        }
        last
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while lp2_last().len() < 3 {
        assert!(Instant::now() < deadline, "LP2 never quoted every symbol");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(lp2_sim);
    // LP1 quotes on for 3 s after LP2 stopped: two rings of each symbol.
    let stopped = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = stored_rows(&db, &["--from", &from, "--sources", "LP1"]);
        let newest = rows.last().and_then(|r| r["ts_recv_ns"].as_i64());
        if newest > Some(stopped + 3_000_000_000) {
            break;
        }
        assert!(Instant::now() < deadline, "LP1 stopped quoting");
        std::thread::sleep(Duration::from_millis(200));
    }
    let want = lp2_last();
    let mut sub = subscribe(publish, r#"{"symbols": ["*"], "sources": ["LP2"]}"#);
    assert_eq!(next_json(&mut sub)["event"], "subscribed");
    let mut got = std::collections::BTreeMap::new();
    loop {
        let v = next_json(&mut sub);
        if v["event"] == "snapshot_end" {
            break;
        }
        got.insert(v["symbol"].as_str().unwrap_or_default().to_owned(), v);
    }
    // The store's rows carry their `seq`; a snapshot row, accepted and maybe not yet
    // committed, does not.
    let without_seq = |mut v: serde_json::Value| {
        v.as_object_mut().map(|o| o.remove("seq"));
        v
    };
    let want: std::collections::BTreeMap<_, _> =
        want.into_iter().map(|(k, v)| (k, without_seq(v))).collect();
    assert_eq!(got, want, "LP2's last quote of each symbol");
}

/// What could go wrong: two liquidity providers quote the same symbols and a subscriber sees
/// only the one that quotes more: a snapshot holding whichever quoted last, a conflated screen
/// whose rows of a symbol are always the busier LP's (the other's quote never shown, nor its
/// last one once it stops), a status page with one quote a symbol; a subscriber of one
/// provider's quotes (`"sources"`) given the other's, in its snapshot, live, replayed or
/// after a change, or told of the other's session.
///
/// (Long on purpose: one scenario end to end, its steps sharing what it builds.)
#[test]
fn a_second_lp_s_quotes_reach_snapshots_conflated_screens_and_the_status_page() {
    use std::collections::{BTreeMap, BTreeSet};
    let dir = tempfile::tempdir().unwrap();
    let symbols = ["EURUSD", "GBPUSD", "USDJPY"];
    let lps = two_lps(dir.path(), 5, "");
    let (db, publish, metrics, lp2_sim) = (lps.db, lps.publish, lps.metrics, lps.lp2);
    let pair = |v: &serde_json::Value| {
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        (text("symbol"), text("source"))
    };
    let every_pair: BTreeSet<(String, String)> = symbols
        .iter()
        .flat_map(|s| ["LP1", "LP2"].map(|lp| (s.to_string(), lp.to_owned())))
        .collect();
    // The status page: each symbol's quote from each LP, by whether its session is up.
    let status = format!("http://127.0.0.1:{metrics}/status.json");
    let quotes = |body: &str| -> BTreeMap<(String, String), serde_json::Value> {
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        let list = v["quotes"].as_array().cloned().unwrap_or_default();
        list.iter()
            .map(|q| (pair(q), q["session_up"].clone()))
            .collect()
    };
    let up = |body: &str, lp2_up: bool| {
        let q = quotes(body);
        q.keys().cloned().collect::<BTreeSet<_>>() == every_pair
            && q.iter().all(|((_, lp), up)| *up == (lp == "LP1" || lp2_up))
    };
    wait_for(&status, 30, |_, body| up(body, true));

    // A subscriber's snapshot: the same quotes, accepted rows without `seq`.
    let mut sub = subscribe(publish, r#"{"symbols": ["*"]}"#);
    assert_eq!(next_json(&mut sub)["event"], "subscribed");
    let mut snapshot = Vec::new();
    loop {
        let v = next_json(&mut sub);
        if v["event"] == "snapshot_end" {
            break;
        }
        assert!(v.get("seq").is_none(), "{v}");
        snapshot.push(pair(&v));
    }
    assert_eq!(snapshot.len(), 6, "{snapshot:?}");
    assert_eq!(snapshot.into_iter().collect::<BTreeSet<_>>(), every_pair);
    drop(sub);

    // A screen at 100 ms: each symbol's quote of each LP at most once an interval.
    let started = Instant::now();
    let mut screen = subscribed_live(publish, r#"{"symbols": ["*"], "conflate_ms": 100}"#);
    let mut rows = Vec::new();
    while started.elapsed() < Duration::from_secs(2) {
        rows.push(next_json(&mut screen));
    }
    let most = (started.elapsed().as_millis() / 100 + 1) as usize;
    for p in &every_pair {
        let n = rows.iter().filter(|v| pair(v) == *p).count();
        assert!(n <= most, "{n} rows of {p:?} in {:?}", started.elapsed());
    }
    let day = place(&rows[0]).0;
    let mut shown: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let show = |shown: &mut BTreeMap<_, _>, v: serde_json::Value| {
        if v["source"] == "LP2" {
            shown.insert(pair(&v).0, v);
        }
    };
    for v in rows {
        show(&mut shown, v);
    }

    // One provider's quotes only: its snapshot row, its session's line, its live ticks.
    let mut lp2_only = subscribe(publish, r#"{"symbols": ["EURUSD"], "sources": ["LP2"]}"#);
    let subscribed = next_json(&mut lp2_only);
    assert_eq!(
        subscribed["sources"],
        serde_json::json!(["LP2"]),
        "{subscribed}"
    );
    assert_eq!(subscribed["unknown_sources"], serde_json::json!([]));
    let mut sessions = Vec::new();
    let mut snapshot = Vec::new();
    loop {
        let v = next_line(&mut lp2_only);
        match v["event"].as_str() {
            Some("snapshot_end") => break,
            Some("session") => sessions.push(v["source"].clone()),
            Some(_) => {}
            None => snapshot.push(pair(&v)),
        }
    }
    assert_eq!(snapshot, [("EURUSD".to_owned(), "LP2".to_owned())]);
    assert_eq!(sessions, ["LP2"]);
    for _ in 0..3 {
        let v = next_json(&mut lp2_only);
        assert_eq!(pair(&v), ("EURUSD".to_owned(), "LP2".to_owned()), "{v}");
    }
    let peer = lp2_only.get_ref().local_addr().unwrap().to_string();
    wait_for(&status, 30, |_, body| {
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        v["subscriber_list"].as_array().is_some_and(|list| {
            list.iter()
                .any(|c| c["peer"] == peer.as_str() && c["sources"] == serde_json::json!(["LP2"]))
        })
    });
    // A change adds LP1: the snapshot of what it did not have, then both.
    send(
        &mut lp2_only,
        r#"{"symbols": ["EURUSD"], "sources": ["LP1", "LP2"]}"#,
    );
    let mut added = Vec::new();
    loop {
        let v = next_json(&mut lp2_only);
        match v["event"].as_str() {
            Some("subscribed") => added.clear(),
            Some("snapshot_end") => break,
            _ => added.push(pair(&v)),
        }
    }
    assert_eq!(added, [("EURUSD".to_owned(), "LP1".to_owned())]);
    let mut from = BTreeSet::new();
    while from.len() < 2 {
        let v = next_json(&mut lp2_only);
        assert_eq!(v["symbol"], "EURUSD", "{v}");
        from.insert(pair(&v).1);
    }
    drop(lp2_only);
    // A replay of one provider's ticks: every one the store holds up to where it ended.
    let mut replay = subscribe(
        publish,
        &format!(r#"{{"symbols": ["*"], "sources": ["LP2"], "from": "{day}:0"}}"#),
    );
    assert_eq!(next_json(&mut replay)["event"], "subscribed");
    let mut replayed = Vec::new();
    let reached = loop {
        let v = next_json(&mut replay);
        if v["event"] == "replayed" {
            break cursor_seq(v["cursor"].as_str().unwrap());
        }
        assert_eq!(v["source"], "LP2", "{v}");
        replayed.push(v["seq"].as_i64().unwrap());
    };
    drop(replay);
    let from_day = format!("{day}:0");
    let stored_lp2: Vec<i64> = stored_rows(&db, &["--from", &from_day])
        .into_iter()
        .filter(|v| v["source"] == "LP2" && v["seq"].as_i64() <= Some(reached))
        .map(|v| v["seq"].as_i64().unwrap())
        .collect();
    assert!(!replayed.is_empty());
    assert_eq!(replayed, stored_lp2);
    // `tickrec tail --sources`: the same ticks, its limit counting only them.
    let n = stored_lp2.len().min(5).to_string();
    let tailed: Vec<i64> = stored_rows(
        &db,
        &["--from", &from_day, "--sources", "LP2", "--max-ticks", &n],
    )
    .iter()
    .map(|v| v["seq"].as_i64().unwrap())
    .collect();
    assert_eq!(tailed, stored_lp2[..tailed.len()]);
    assert_eq!(tailed.len().to_string(), n);
    // A source the day names for no tick is said (a typo's ticks would never come); the
    // others' flow.
    let out = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .args(["tail", "--from", &from_day])
        .args(["--sources", "LP2,lp2", "--max-ticks", "2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("tail: no tick from source lp2 in the newest day file ("),
        "{stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    // A source no session records is said; none at all is refused.
    let mut none = subscribe(publish, r#"{"symbols": ["*"], "sources": ["LP7"]}"#);
    let subscribed = next_json(&mut none);
    assert_eq!(subscribed["unknown_sources"], serde_json::json!(["LP7"]));
    drop(none);
    let why = refused(subscribe(publish, r#"{"symbols": ["*"], "sources": []}"#));
    assert!(why.contains("\"sources\" is empty"), "{why}");
    // `tickrec subscribe --sources`, which says which no session records.
    let out = Command::new(BIN)
        .args(["subscribe", &format!("127.0.0.1:{publish}")])
        .args(["--sources", "LP2,LP7", "--max-ticks", "3"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let printed: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(printed.len(), 3, "{stderr}");
    assert!(printed.iter().all(|v| v["source"] == "LP2"), "{printed:?}");
    assert!(
        stderr.contains(r#"no session of the recorder has the source ["LP7"]"#),
        "{stderr}"
    );

    // LP2 stops; LP1 goes on. Its quotes stay on the status page, marked down.
    drop(lp2_sim);
    wait_for(&status, 30, |_, body| up(body, false));
    // Every LP2 tick was accepted before its session was seen down: once the store holds an
    // LP1 tick received after that, it holds LP2's last ones.
    let seen_down = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let stored = loop {
        let rows = stored_rows(&db, &["--from", &from_day]);
        if rows.last().and_then(|r| r["ts_recv_ns"].as_i64()) > Some(seen_down) {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "no tick received after LP2 went down"
        );
    };
    let last_lp2: BTreeMap<String, serde_json::Value> = stored
        .into_iter()
        .filter(|v| v["source"] == "LP2")
        .map(|v| (pair(&v).0, v))
        .collect();
    assert_eq!(last_lp2.len(), 3, "{last_lp2:?}");
    // The screen shows each symbol's last LP2 quote, though LP1 quotes it on and on.
    let deadline = Instant::now() + Duration::from_secs(30);
    while shown != last_lp2 {
        assert!(
            Instant::now() < deadline,
            "LP2's last quotes never shown: {shown:?} against {last_lp2:?}"
        );
        show(&mut shown, next_json(&mut screen));
    }
}

/// The seq of a cursor's newest day (`DAY:SEQ[,DAY:SEQ]`).
fn cursor_seq(cursor: &str) -> i64 {
    cursor.rsplit(':').next().unwrap().parse().unwrap()
}

/// The status line of a `GET /events` on `port`, and its connection.
fn open_events(port: u16) -> (String, BufReader<TcpStream>) {
    let mut s = connect(port);
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    (status, r)
}

/// What could go wrong: connections without a bound (a subscriber holds two threads of the
/// recorder, a status page's stream one and a scrape twice a second), a bound whose places
/// are not given back as they leave, or connections that never send a request (a scan, a
/// peer without the token) taking the subscribers' places.
#[test]
fn connections_past_their_bounds_are_refused_until_one_leaves() {
    let feed = feed("[publish]\nmax_subscribers = 2\n", 2_000);
    // Silent connections wait apart: they leave both subscribers' places free.
    let mut silent: Vec<TcpStream> = (0..62).map(|_| connect(feed.publish)).collect();
    let mut first = subscribe(feed.publish, r#"{"symbols": ["*"]}"#);
    let mut second = subscribe(feed.publish, r#"{"symbols": ["EURUSD"]}"#);
    assert_eq!(next_line(&mut first)["event"], "subscribed");
    assert_eq!(next_line(&mut second)["event"], "subscribed");
    let third = subscribe(feed.publish, r#"{"symbols": ["*"]}"#);
    let (why, retry) = refusal(third);
    assert!(why.contains("max_subscribers") && retry, "{why}");
    // The waiting ones have a bound of their own: with every place taken by connections that
    // send nothing, the one that has waited longest is closed to make room for the next.
    silent.extend((0..2).map(|_| connect(feed.publish)));
    let past = connect(feed.publish);
    silent[0]
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut end = Vec::new();
    silent[0].read_to_end(&mut end).unwrap();
    assert!(
        end.is_empty(),
        "closed to make room, not told to hurry: {}",
        String::from_utf8_lossy(&end)
    );
    past.set_nonblocking(true).unwrap();
    let still = (&past).read(&mut [0u8; 1]).unwrap_err();
    assert_eq!(still.kind(), std::io::ErrorKind::WouldBlock, "{still}");
    // Counted as closed for room, and not as a refusal too (the third's is the only one).
    let (_, m) = http_get(feed.metrics, "/metrics", None);
    assert_eq!(
        sample(&m, "tickrec_publish_connections_closed_for_room_total "),
        1.0
    );
    assert_eq!(sample(&m, "tickrec_publish_requests_refused_total "), 1.0);
    // `subscribe`, refused for want of a place, tries again rather than giving up.
    let dir = tempfile::tempdir().unwrap();
    let mut waiting_sub = subscribe_command(
        feed.publish,
        dir.path(),
        "out",
        &["--symbols", "EURUSD", "--max-ticks", "50"],
    );
    let err = dir.path().join("out.err");
    wait_for_text(&err, "no place free");
    wait_for_text(&err, "connecting again");
    assert!(waiting_sub.try_wait().unwrap().is_none(), "it gave up");
    drop((silent, past));
    // The first leaves: its place is given back once the recorder's next write finds it gone.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut again = subscribe(feed.publish, r#"{"symbols": ["*"]}"#);
        if next_line(&mut again)["event"] == "subscribed" {
            break;
        }
        assert!(Instant::now() < deadline, "the place was never given back");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The one that stayed was never held up.
    while next_json(&mut second)["event"] != "snapshot_end" {}
    let live = next_json(&mut second);
    assert!(live["symbol"] == "EURUSD" && live["seq"].is_i64(), "{live}");
    // With that one gone too, the `subscribe` trying again gets its place and its ticks.
    let done = waiting_sub.wait_until(Duration::from_secs(60));
    let said = std::fs::read_to_string(&err).unwrap();
    assert!(done.success(), "{done}: {said}");
    let out = std::fs::read_to_string(dir.path().join("out")).unwrap();
    assert_eq!(out.lines().count(), 50, "{said}");

    // The status page's streams: 32 at once, the next refused with 503 until one closes.
    let mut open: Vec<BufReader<TcpStream>> = (0..32)
        .map(|_| {
            let (status, r) = open_events(feed.metrics);
            assert!(status.starts_with("HTTP/1.1 200"), "{status}");
            r
        })
        .collect();
    let (status, _) = open_events(feed.metrics);
    assert!(status.starts_with("HTTP/1.1 503"), "{status}");
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !open_events(feed.metrics).0.starts_with("HTTP/1.1 200") {
        assert!(
            Instant::now() < deadline,
            "the stream's place was never given back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An HTTP `GET path` on `port` with `authorization` (the header's value), as (status line,
/// headers and body).
fn http_get(port: u16, path: &str, authorization: Option<&str>) -> (String, String) {
    let mut s = connect(port);
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (status, rest) = answer.split_once("\r\n").unwrap_or((&answer, ""));
    (status.to_owned(), rest.to_owned())
}

/// The next line of a refused subscription: its reason and whether it says to try again
/// (`"retry": true`), then the end of the connection.
fn refusal(mut sub: BufReader<TcpStream>) -> (String, bool) {
    let line = next_line(&mut sub);
    assert_eq!(line["event"], "error", "{line}");
    let mut rest = String::new();
    sub.read_to_string(&mut rest)
        .expect("closed after the reason");
    assert_eq!(rest, "", "nothing after the refusal");
    let retry = match line.get("retry") {
        None => false,
        Some(v) => v.as_bool().unwrap_or_else(|| panic!("retry: {line}")),
    };
    (line["reason"].as_str().unwrap().to_owned(), retry)
}

/// The reason of a refusal that is not for want of a place (no `retry`).
fn refused(sub: BufReader<TcpStream>) -> String {
    let (why, retry) = refusal(sub);
    assert!(!retry, "{why}: said to try again");
    why
}

/// Waits until `file` holds `text`.
fn wait_for_text(file: &std::path::Path, text: &str) {
    wait_for_file(file, &format!("{text:?}"), |now| now.contains(text));
}

/// What could go wrong: a subscriber or a page let in without the token, or with a wrong one;
/// one with it kept out; a later line asked for it again; a refusal that is not counted; or
/// `/health`, which probes read, closed to them.
#[test]
fn listeners_with_a_token_let_in_only_who_sends_it() {
    let secrets = tempfile::tempdir().unwrap();
    let (publish_token, metrics_token) = ("p-0123456789abcdef", "m-0123456789abcdef");
    let tokens = [("publish", publish_token), ("metrics", metrics_token)];
    let config = super::util::token_config(secrets.path(), &tokens);
    // One kept to its owner, one every user may read (a warning when its listener starts).
    use std::os::unix::fs::PermissionsExt as _;
    for (file, mode) in [("publish.token", 0o600), ("metrics.token", 0o644)] {
        let perms = std::fs::Permissions::from_mode(mode);
        std::fs::set_permissions(secrets.path().join(file), perms).unwrap();
    }
    let feed = feed(&std::fs::read_to_string(config).unwrap(), 2_000);

    let missing = refused(subscribe(feed.publish, r#"{"symbols": ["*"]}"#));
    assert!(missing.contains("token_file"), "{missing}");
    let wrong = r#"{"symbols": ["*"], "token": "p-0123456789abcdeX"}"#;
    assert!(refused(subscribe(feed.publish, wrong)).contains("wrong"));
    let good = format!(r#"{{"symbols": ["EURUSD"], "token": "{publish_token}"}}"#);
    let mut sub = subscribed_live(feed.publish, &good);
    let live = next_json(&mut sub);
    assert!(live["symbol"] == "EURUSD" && live["seq"].is_i64(), "{live}");
    // A later line changes the symbols without the token: the connection is already in.
    send(&mut sub, r#"{"symbols": ["GBPUSD"]}"#);
    while next_json(&mut sub)["event"] != "subscribed" {}
    while next_json(&mut sub)["event"] != "snapshot_end" {}
    let live = next_json(&mut sub);
    assert!(live["symbol"] == "GBPUSD" && live["seq"].is_i64(), "{live}");

    // The status page and /metrics: 401 with a challenge a browser answers, then a bearer or a
    // basic password; /health open.
    for path in ["/", "/metrics", "/status.json", "/events"] {
        let (status, rest) = http_get(feed.metrics, path, None);
        assert!(status.starts_with("HTTP/1.1 401"), "{path}: {status}");
        assert!(
            rest.contains("WWW-Authenticate: Basic realm=\"tickrec\""),
            "{rest}"
        );
    }
    let (status, _) = http_get(feed.metrics, "/metrics", Some("Bearer m-0123456789abcdeX"));
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    let (status, _) = http_get(feed.metrics, "/health", None);
    assert!(
        status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.1 503"),
        "{status}"
    );
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("desk:{metrics_token}"));
    let (status, page) = http_get(feed.metrics, "/", Some(&format!("Basic {basic}")));
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(page.contains("<html"), "{page}");
    let (status, metrics) = http_get(
        feed.metrics,
        "/metrics",
        Some(&format!("Bearer {metrics_token}")),
    );
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(
        metrics.contains("tickrec_http_unauthorized_total 5"),
        "four paths and a wrong bearer refused: {metrics}"
    );
    assert!(
        metrics.contains("tickrec_publish_unauthorized_total 2"),
        "{metrics}"
    );

    // Both tokens rotated while the recorder runs (a new file renamed over each): the old ones
    // are refused from the next connection on, the new ones let in, and the subscriber let in
    // before stays.
    let (new_publish, new_metrics) = ("p-fedcba9876543210", "m-fedcba9876543210");
    for (file, secret) in [
        ("publish.token", new_publish),
        ("metrics.token", new_metrics),
    ] {
        let staged = secrets.path().join(format!("{file}.new"));
        std::fs::write(&staged, format!("{secret}\n")).unwrap();
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::rename(&staged, secrets.path().join(file)).unwrap();
    }
    assert!(refused(subscribe(feed.publish, &good)).contains("wrong"));
    let rotated = format!(r#"{{"symbols": ["EURUSD"], "token": "{new_publish}"}}"#);
    let mut second = subscribed_live(feed.publish, &rotated);
    assert_eq!(next_json(&mut second)["symbol"], "EURUSD");
    let live = next_json(&mut sub);
    assert!(live["symbol"] == "GBPUSD" && live["seq"].is_i64(), "{live}");
    let old = format!("Bearer {metrics_token}");
    assert!(http_get(feed.metrics, "/metrics", Some(&old))
        .0
        .starts_with("HTTP/1.1 401"));
    let new = format!("Bearer {new_metrics}");
    assert!(http_get(feed.metrics, "/metrics", Some(&new))
        .0
        .starts_with("HTTP/1.1 200"));

    // `subscribe` sends the token its file holds now, and without it ends with the reason.
    let run = |extra: &[&str]| {
        Command::new(BIN)
            .args(["subscribe", &format!("127.0.0.1:{}", feed.publish)])
            .args(["--max-ticks", "5", "--give-up-after", "30"])
            .args(extra)
            .output()
            .unwrap()
    };
    let token_file = secrets.path().join("publish.token");
    let with = run(&["--token-file", token_file.to_str().unwrap()]);
    assert!(with.status.success(), "{with:?}");
    assert_eq!(String::from_utf8_lossy(&with.stdout).lines().count(), 5);
    let without = run(&[]);
    let said = String::from_utf8_lossy(&without.stderr);
    assert_eq!(without.status.code(), Some(2), "{said}");
    assert!(
        said.contains("refused the subscription") && said.contains("token_file"),
        "{said}"
    );

    // A token file emptied lets no one in, and says so on /metrics.
    let usable = |want: u8| {
        let (_, m) = http_get(feed.metrics, "/metrics", Some(&new));
        m.contains(&format!("\ntickrec_publish_token_usable {want}\n"))
    };
    assert!(usable(1));
    std::fs::write(&token_file, "").unwrap();
    assert!(refused(subscribe(feed.publish, &rotated)).contains("wrong"));
    assert!(usable(0));

    let log = std::fs::read_to_string(&feed.log).unwrap();
    assert!(
        [publish_token, metrics_token, new_publish, new_metrics]
            .iter()
            .all(|t| !log.contains(t)),
        "a token in the log"
    );
    assert_eq!(
        log.matches("token file changed: its new token is asked")
            .count(),
        2,
        "{log}"
    );
    assert!(
        log.contains("holds no usable token: no one is let in"),
        "{log}"
    );
    let warned = |what: &str| {
        let warning = format!("{what}: its token file can be read by every user");
        log.lines()
            .any(|l| l.contains("WARN") && l.contains(&warning))
    };
    assert!(warned("metrics, health and status page"), "{log}");
    assert!(!warned("live subscribers (publish)"), "{log}");
}

/// `tickrec subscribe` of every symbol, printing to `out`, its cursor in `cursor`.
fn subscribe_command(port: u16, dir: &std::path::Path, out: &str, extra: &[&str]) -> Reaped {
    Reaped::new(
        Command::new(BIN)
            .args(["subscribe", &format!("127.0.0.1:{port}"), "--cursor-file"])
            .arg(dir.join("cursor"))
            .args(extra)
            .stdout(std::fs::File::create(dir.join(out)).unwrap())
            .stderr(std::fs::File::create(dir.join(format!("{out}.err"))).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// Waits until `file` has at least `n` whole lines.
fn wait_for_lines(file: &std::path::Path, n: usize) {
    wait_for_file(file, &format!("{n} lines"), |now| {
        now.matches('\n').count() >= n
    });
}

/// Waits, at most 60 s, until what `file` holds is `ok` (`want` says what it waits for).
fn wait_for_file(file: &std::path::Path, want: &str, ok: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = std::fs::read_to_string(file).unwrap_or_default();
        if ok(&now) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: no {want} in {now}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What could go wrong: a consumer that skips ticks or prints some twice when the recorder cuts
/// it off (it was stopped, as a process paging or a laptop sleeping is) and it connects again,
/// or when it is stopped and started again from its cursor file; or a cursor file behind or
/// ahead of what was printed.
#[test]
fn subscribe_resumes_exactly_after_a_cut_off_and_a_restart() {
    // A small queue: a consumer that stops reading is cut off within seconds.
    let feed = feed("[publish]\nqueue_ticks = 2000\n", 20_000);
    let dir = tempfile::tempdir().unwrap();
    let first = subscribe_command(feed.publish, dir.path(), "first", &[]);
    wait_for_lines(&dir.path().join("first"), 1_000);

    // Stopped until the recorder has cut it off, then continued: it connects again from its
    // cursor.
    let pid = first.id().to_string();
    let signal = |sig: &str| {
        let status = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(status.success(), "kill {sig}");
    };
    signal("-STOP");
    let metrics = format!("http://127.0.0.1:{}/metrics", feed.metrics);
    wait_for(&metrics, 60, |_, body| {
        body.lines().any(|l| {
            l.starts_with("tickrec_publish_subscribers_cut_off_total ") && !l.ends_with(" 0")
        })
    });
    signal("-CONT");
    let err = dir.path().join("first.err");
    let deadline = Instant::now() + Duration::from_secs(60);
    // (Its start may have come before the recorder listened: those lines say "cannot connect".)
    let lost = |said: &str| {
        said.lines()
            .any(|l| l.contains("connecting again") && !l.contains("cannot connect"))
    };
    while !lost(&std::fs::read_to_string(&err).unwrap()) {
        assert!(Instant::now() < deadline, "it never connected again");
        std::thread::sleep(Duration::from_millis(50));
    }
    let printed = std::fs::read_to_string(dir.path().join("first")).unwrap();
    wait_for_lines(
        &dir.path().join("first"),
        printed.matches('\n').count() + 1_000,
    );
    signal("-TERM");
    let status = first.output().unwrap().status;
    assert!(status.success(), "{status}");
    let said = std::fs::read_to_string(&err).unwrap();
    let reached = said
        .lines()
        .rev()
        .find_map(|l| l.split_once("; cursor ").map(|(_, c)| c.to_owned()))
        .unwrap_or_else(|| panic!("no cursor said: {said}"));
    let saved = std::fs::read_to_string(dir.path().join("cursor")).unwrap();
    assert_eq!(
        saved.trim(),
        reached,
        "the cursor file is the cursor reached"
    );

    // Started again from its cursor file.
    let second = subscribe_command(feed.publish, dir.path(), "second", &["--max-ticks", "2000"]);
    let status = second.output().unwrap().status;
    assert!(status.success(), "{status}");

    // Every seq of each day from the first printed to the last, once, in order within a day.
    let mut seen: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for out in ["first", "second"] {
        for line in std::fs::read_to_string(dir.path().join(out))
            .unwrap()
            .lines()
        {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            let day = row["ts_event"].as_str().unwrap()[..10].to_owned();
            seen.entry(day)
                .or_default()
                .push(row["seq"].as_i64().unwrap());
        }
    }
    let total: usize = seen.values().map(Vec::len).sum();
    assert!(total >= 4_000, "{total} ticks");
    for (day, seqs) in &seen {
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), seqs.len(), "{day}: a tick printed twice");
        let (lo, hi) = (sorted[0], sorted[sorted.len() - 1]);
        assert_eq!(
            sorted.len() as i64,
            hi - lo + 1,
            "{day}: ticks missing between seq {lo} and {hi}"
        );
    }
    assert!(
        said.contains("ended the subscription: fell behind")
            || said.contains("closed the connection"),
        "{said}"
    );
}

/// What could go wrong: a subscriber cut off while its thread is held in a write (its queue ran
/// over first) counted a second time when that write then fails, told the write's reason
/// instead of the first, and kept as connected meanwhile.
#[test]
fn a_subscriber_cut_off_mid_write_is_counted_once_for_the_first_reason() {
    let feed = feed("[publish]\nqueue_ticks = 2000\n", 20_000);
    let stalled = subscribe(feed.publish, r#"{"symbols": ["*"]}"#);
    let peer = stalled.get_ref().local_addr().unwrap().to_string();
    // Its socket's buffers fill, its thread is held in a write, its queue runs over.
    wait_for_text(
        &feed.log,
        &format!("subscriber left peer={peer} why=fell behind: more than 2000 ticks queued"),
    );
    let (status, metrics) = http_get(feed.metrics, "/metrics", None);
    assert!(status.contains("200"), "{status}");
    assert_eq!(
        sample(&metrics, "tickrec_publish_subscribers_cut_off_total "),
        1.0
    );
    assert_eq!(sample(&metrics, "tickrec_publish_subscribers "), 0.0);
}

/// What could go wrong: `subscribe --out` killed without warning (kill -9, a power loss) leaves
/// rows in its file after the cursor it last saved, or half a row, and the restart appends
/// after them: ticks twice, or a broken line.
#[test]
fn subscribe_into_a_file_killed_without_warning_resumes_it_with_every_tick_once() {
    let feed = feed("", 20_000);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ticks.jsonl");
    let start = |round: usize, extra: &[&str]| {
        Reaped::new(
            Command::new(BIN)
                .args(["subscribe", &format!("127.0.0.1:{}", feed.publish)])
                .arg("--cursor-file")
                .arg(dir.path().join("cursor"))
                .arg("--out")
                .arg(&out)
                .args(extra)
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(dir.path().join(format!("said-{round}"))).unwrap())
                .spawn()
                .unwrap(),
        )
    };
    let lines = || {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .matches('\n')
            .count()
    };
    // What the cursor file accounts for of the file.
    let saved_bytes = || {
        std::fs::read_to_string(dir.path().join("cursor"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("out_bytes ")?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    for round in 0..3 {
        let mut s = start(round, &[]);
        // Killed once it has saved its cursor past what it started from, and written more.
        let (bytes, written) = (saved_bytes(), lines());
        super::util::wait_until(Duration::from_secs(60), "a later save", || {
            saved_bytes() > bytes
        });
        wait_for_lines(&out, written + 2_000);
        s.kill().unwrap();
        s.wait().unwrap();
        if round == 0 {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(&out).unwrap();
            f.write_all(b"{\"seq\":99999999,\"symbol\":\"EUR").unwrap();
        }
    }
    let last = start(3, &["--max-ticks", "2000"]);
    let status = last.output().unwrap().status;
    assert!(status.success(), "{status}");
    let said = std::fs::read_to_string(dir.path().join("said-1")).unwrap();
    assert!(
        said.contains("written after its cursor was last saved"),
        "{said}"
    );

    // Every seq of each day from the first written to the last, once, in order.
    let mut seen: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for line in std::fs::read_to_string(&out).unwrap().lines() {
        let row: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("a broken line {line}: {e}"));
        let day = row["ts_event"].as_str().unwrap()[..10].to_owned();
        seen.entry(day)
            .or_default()
            .push(row["seq"].as_i64().unwrap());
    }
    let total: usize = seen.values().map(Vec::len).sum();
    assert!(
        total > 2_000,
        "{total} ticks: nothing kept of the runs killed"
    );
    for (day, seqs) in &seen {
        let (lo, hi) = (seqs[0], seqs[seqs.len() - 1]);
        assert_eq!(
            *seqs,
            (lo..=hi).collect::<Vec<_>>(),
            "{day}: not every seq from {lo} to {hi} once, in order"
        );
    }
}
