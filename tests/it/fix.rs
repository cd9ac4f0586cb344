//! The FIX path over real TCP on 127.0.0.1: simulator → gateway → recorder → day files,
//! checked tick for tick against the simulator's journal of what it sent.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use tickrec::config::{FlagOverrides, Options};
use tickrec::fix::gateway::GatewayOptions;
use tickrec::fix::session::SessionConfig;
use tickrec::fix::sim::{self, SimOptions, SimReport};
use tickrec::record::{self, RecordReport};
use tickrec::shutdown::Shutdown;
use tickrec::store::layout;

use super::util::*;

/// Per symbol: (ts_event ns, bid, ask, bid_size, ask_size) in time order.
pub type Quotes = BTreeMap<String, Vec<(i64, String, String, String, String)>>;

fn text(d: Option<tickrec::tick::Decimal>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

/// What the simulator journaled.
pub fn journal_quotes(path: &Path) -> Quotes {
    let mut q = Quotes::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let t = tickrec::format::jsonl::parse_line(line).unwrap();
        q.entry(t.symbol.to_string()).or_default().push((
            t.ts_event.0,
            text(t.bid),
            text(t.ask),
            text(t.bid_size),
            text(t.ask_size),
        ));
    }
    for v in q.values_mut() {
        v.sort_by_key(|e| e.0); // stable: send order within equal times
    }
    q
}

/// What the database holds.
pub fn stored_quotes(db: &Path, symbols: &[String]) -> Quotes {
    let mut q = Quotes::new();
    for s in symbols {
        let rows = all_rows(db, s);
        if !rows.is_empty() {
            q.insert(
                s.clone(),
                rows.iter()
                    .map(|r| {
                        (
                            r.ts_event.0,
                            text(r.bid),
                            text(r.ask),
                            text(r.bid_size),
                            text(r.ask_size),
                        )
                    })
                    .collect(),
            );
        }
    }
    q
}

pub fn start_sim(opts: SimOptions) -> (String, JoinHandle<SimReport>, Shutdown) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stop = Shutdown::new();
    let s = stop.clone();
    let handle = std::thread::spawn(move || sim::run(listener, opts, s).expect("simulator runs"));
    (addr, handle, stop)
}

fn gateway(addr: &str, db: &Path, symbols: &[String]) -> GatewayOptions {
    GatewayOptions {
        connect: addr.to_owned(),
        session: SessionConfig::new("REC", "SIM"),
        symbols: symbols.to_vec(),
        source: "SIM".into(),
        reconnect_interval: Duration::from_millis(50),
        max_reconnect_interval: Duration::from_millis(200),
        db_path: db.to_owned(),
    }
}

/// Runs `record::run` for one gateway on a thread; stop it with the returned latch.
pub fn record_in_background(db: &Path, gw: GatewayOptions) -> (Shutdown, JoinHandle<RecordReport>) {
    let opts = Options::load(
        None,
        &|_| None,
        &FlagOverrides {
            db_path: Some(db.to_owned()),
        },
    )
    .unwrap();
    let stop = Shutdown::new();
    let s = stop.clone();
    let handle = std::thread::spawn(move || {
        record::run(&opts, vec![gw], &s, Duration::from_secs(60)).unwrap()
    });
    (stop, handle)
}

/// Records until the simulator is done and every tick it sent is committed.
fn record_until(
    sim: JoinHandle<SimReport>,
    db: &Path,
    gw: GatewayOptions,
) -> (SimReport, RecordReport) {
    let (stop, recorder) = record_in_background(db, gw);
    let sim_report = sim.join().unwrap();
    wait_until(Duration::from_secs(60), "every sent tick committed", || {
        stored_total(db) == sim_report.ticks_implied
    });
    stop.request();
    (sim_report, recorder.join().unwrap())
}

fn symbols(n: usize) -> Vec<String> {
    tickrec::synth::symbol_names(n)
}

#[test]
fn the_database_holds_exactly_the_ticks_the_simulator_sent() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("sent.jsonl");
    let (addr, sim, _) = start_sim(SimOptions {
        symbols: 12,
        rate: Some(4000),
        duration: Some(Duration::from_millis(1500)),
        journal: Some(journal.clone()),
        ..SimOptions::default()
    });
    let db = dir.path().join("db");
    let (sent, rec) = record_until(sim, &db, gateway(&addr, &db, &symbols(12)));
    assert!(sent.md_messages > 3000, "{sent:?}");
    assert_eq!(rec.stats.ticks_stored, sent.ticks_implied);
    assert_eq!(stored_quotes(&db, &symbols(12)), journal_quotes(&journal));
    let s = &rec.sessions[0];
    assert_eq!(
        (s.malformed, s.md_rejects, s.framing_errors),
        (0, 0, 0),
        "{s}"
    );
    assert_eq!(rec.stats.dead_lettered, 0);
}

/// What could go wrong: messages in flight when the connection dies are never seen again,
/// or are stored twice when the counterparty resends them with PossDupFlag=Y.
#[test]
fn a_connection_cut_mid_stream_is_filled_by_resend_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("sent.jsonl");
    let (addr, sim, _) = start_sim(SimOptions {
        symbols: 6,
        rate: Some(3000),
        duration: Some(Duration::from_millis(2000)),
        journal: Some(journal.clone()),
        drop_after: Some(1500),
        outage_messages: 700,
        ..SimOptions::default()
    });
    let db = dir.path().join("db");
    let (sent, rec) = record_until(sim, &db, gateway(&addr, &db, &symbols(6)));
    assert_eq!(sent.connections, 2, "{sent:?}");
    let s = &rec.sessions[0];
    assert!(s.resend_requests >= 1, "{s}");
    assert_eq!(s.connects, 2, "{s}");
    assert_eq!(rec.stats.ticks_stored, sent.ticks_implied, "{s}");
    assert_eq!(stored_quotes(&db, &symbols(6)), journal_quotes(&journal));
}

/// The benchmark's simulator replays market data encoded ahead, in a loop: every tick of it
/// is stored, across a cut connection and the resend that fills it.
#[test]
fn a_scripted_simulator_loops_and_every_tick_it_sent_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let base = SimOptions {
        symbols: 6,
        rate: Some(3000),
        duration: Some(Duration::from_millis(2000)),
        drop_after: Some(1500),
        outage_messages: 700,
        ..SimOptions::default()
    };
    let script = sim::Script::generate(&base, 500);
    let (addr, sim, _) = start_sim(SimOptions {
        script: Some(std::sync::Arc::new(script)),
        ..base
    });
    let db = dir.path().join("db");
    let (sent, rec) = record_until(sim, &db, gateway(&addr, &db, &symbols(6)));
    // Past the script's end several times, and over a cut.
    assert!(sent.md_messages > 2_000, "{sent:?}");
    assert_eq!(sent.connections, 2, "{sent:?}");
    let s = &rec.sessions[0];
    assert!(s.resend_requests >= 1, "{s}");
    assert_eq!((s.malformed, s.framing_errors), (0, 0), "{s}");
    assert_eq!(rec.stats.ticks_stored, sent.ticks_implied, "{s}");
    assert_eq!(rec.stats.dead_lettered, 0);
}

#[test]
fn an_unknown_symbol_gets_a_reject_and_the_rest_keeps_flowing() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, sim, _) = start_sim(SimOptions {
        symbols: 4,
        rate: Some(1000),
        duration: Some(Duration::from_millis(1200)),
        ..SimOptions::default()
    });
    let db = dir.path().join("db");
    let wanted = vec!["EURUSD".to_string(), "NOSUCHPAIR".to_string()];
    let (sent, rec) = record_until(sim, &db, gateway(&addr, &db, &wanted));
    assert_eq!(sent.rejects_sent, 1);
    let s = &rec.sessions[0];
    assert_eq!(s.md_rejects, 1, "{s}");
    assert!(s.ticks > 100, "{s}");
    assert_eq!(all_rows(&db, "EURUSD").len() as u64, s.ticks);
    assert_eq!(s.connects, 1, "the session stayed up");
}

/// What could go wrong: `kill -9` loses the ticks that were accepted but not committed, and a
/// restarted recorder either asks for too little (they are lost for good) or too much (ticks
/// already on disk are stored twice). The inbound MsgSeqNum is committed with the ticks, so
/// the restart asks for exactly what is missing.
#[test]
fn kill_9_and_restart_loses_no_tick_and_stores_none_twice() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("sent.jsonl");
    let db = dir.path().join("db");
    let syms = symbols(8);
    let (addr, sim, _) = start_sim(SimOptions {
        symbols: 8,
        rate: Some(3000),
        // Long enough for the second recorder to connect and catch up on a loaded machine.
        duration: Some(Duration::from_millis(8000)),
        journal: Some(journal.clone()),
        ..SimOptions::default()
    });
    let spawn = || {
        Reaped::new(
            Command::new(env!("CARGO_BIN_EXE_tickrec"))
                .args(["--db", db.to_str().unwrap(), "record", "--connect", &addr])
                .args(["--sender-comp-id", "REC", "--target-comp-id", "SIM"])
                .args(["--symbols", &syms.join(",")])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let mut first = spawn();
    wait_until(
        Duration::from_secs(30),
        "the first recorder to commit",
        || stored_total(&db) >= 1000,
    );
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let mut second = spawn();
    let sent = sim.join().unwrap();
    wait_until(Duration::from_secs(60), "every sent tick committed", || {
        stored_total(&db) == sent.ticks_implied
    });
    let status = Command::new("kill")
        .args(["-INT", &second.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(second.wait().unwrap().success(), "clean exit on SIGINT");
    assert_eq!(sent.connections, 2);
    assert_eq!(stored_quotes(&db, &syms), journal_quotes(&journal));
    // The directory the killed writer left half done still tiles the day (`check` verifies).
    let check = Command::new(env!("CARGO_BIN_EXE_tickrec"))
        .args(["--db", db.to_str().unwrap(), "check"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

/// A hand-driven acceptor: logs on whoever connects, waits for the MarketDataRequest, sends
/// `bodies` as application messages (type, fields), then logs out.
fn scripted_acceptor(
    listener: TcpListener,
    bodies: Vec<(&'static str, &'static str)>,
) -> JoinHandle<()> {
    scripted_acceptor_skewed(listener, bodies, 0)
}

/// [`scripted_acceptor`] whose application messages carry a SendingTime `skew_s` seconds off.
fn scripted_acceptor_skewed(
    listener: TcpListener,
    bodies: Vec<(&'static str, &'static str)>,
    skew_s: i64,
) -> JoinHandle<()> {
    use std::io::{Read, Write};
    use tickrec::fix::decode::Decoder;
    use tickrec::fix::frame;
    use tickrec::fix::session::{Inbound, ResendStore, Role, Session};
    use tickrec::tick::Timestamp;
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let now = || Timestamp(chrono::Utc::now().timestamp_nanos_opt().unwrap());
        let mut session = Session::new(
            SessionConfig::new("SIM", ""),
            Role::Acceptor,
            1,
            1,
            ResendStore::new(100),
        );
        session.on_connect(now());
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut decoder = Decoder::new();
        let mut requested = false;
        while !requested {
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "initiator went away");
            buf.extend_from_slice(&chunk[..n]);
            while let Ok(len) = frame::check(&buf) {
                let msg: Vec<u8> = buf.drain(..len).collect();
                let h = decoder.decode(&msg).unwrap().header;
                let r = session.on_message(&h, &msg, now()).unwrap();
                requested |= r == Inbound::Deliver && h.msg_type == b"V";
            }
            let out = std::mem::take(session.take_output());
            stream.write_all(&out).unwrap();
        }
        for (msg_type, fields) in bodies {
            let fields = fields.replace('|', "\x01");
            let at = Timestamp(now().0 + skew_s * 1_000_000_000);
            session.send_app(msg_type, at, |b| {
                b.raw_fields(fields.as_bytes());
            });
        }
        session.logout("done", now());
        let out = std::mem::take(session.take_output());
        stream.write_all(&out).unwrap();
        // Until the initiator answers the Logout and hangs up: it has taken every message.
        let _ = std::io::copy(&mut stream, &mut std::io::sink());
    })
}

#[test]
fn malformed_market_data_is_counted_and_skipped_and_the_session_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let acceptor = scripted_acceptor(
        listener,
        vec![
            ("W", "55=EURUSD|268=1|269=0|270=abc|"),
            ("X", "268=1|279=1|269=7|55=EURUSD|270=1.1|"),
            ("X", "268=1|279=1|269=0|55=GBPJPY|270=191.1|"),
            ("X", "268=1|279=1|269=0|55=EURUSD|"),
            ("X", "268=1|279=1|269=0|55=EURUSD|270=-1.08|"),
            ("Y", "262=tickrec-1|281=0|58=no entitlement|"),
            (
                "W",
                "55=EURUSD|268=2|269=0|270=1.08500|271=1000000|269=1|270=1.08510|271=2000000|",
            ),
        ],
    );
    let db = dir.path().join("db");
    let wanted = vec!["EURUSD".to_string()];
    let (stop, recorder) = record_in_background(&db, gateway(&addr, &db, &wanted));
    acceptor.join().unwrap();
    stop.request();
    let rec = recorder.join().unwrap();
    let s = &rec.sessions[0];
    assert_eq!(s.malformed, 5, "{s}");
    assert_eq!(s.md_rejects, 1, "{s}");
    assert_eq!(s.ticks, 1, "{s}");
    assert_eq!(s.next_inbound_seq, 10, "every message was sequenced: {s}");
    let rows = all_rows(&db, "EURUSD");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].bid.unwrap().to_string(), "1.08500");
    assert_eq!(rows[0].ask_size.unwrap().to_string(), "2000000");
}

/// `tickrec record --config CFG`, as a child; stdout and stderr captured.
fn record_child(db: &Path, cfg: &Path) -> Reaped {
    use std::process::{Command, Stdio};
    let child = Command::new(env!("CARGO_BIN_EXE_tickrec"))
        .args([
            "--db",
            db.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            "record",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Reaped::new(child)
}

fn session_toml(addr: &str, target: &str, source: &str, syms: &[String]) -> String {
    format!(
        "[[fix.sessions]]\nconnect = \"{addr}\"\nsender_comp_id = \"REC\"\ntarget_comp_id = \"{target}\"\n\
         source = \"{source}\"\nsymbols = {syms:?}\nreconnect_interval_ms = 50\nmax_reconnect_interval_ms = 200\n"
    )
}

/// Ticks committed in every day file under `db`.
fn stored_total(db: &Path) -> u64 {
    let days = layout::list_days(db).unwrap_or_default();
    days.iter()
        .map(|d| committed_ticks(&layout::day_path(db, d.day)) as u64)
        .sum()
}

fn count(db: &Path, syms: &[String]) -> u64 {
    syms.iter().map(|s| all_rows(db, s).len() as u64).sum()
}

fn interrupt(child: Reaped) -> std::process::Output {
    let st = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    child.output().unwrap()
}

/// What could go wrong: a primary and a backup session to one LP, both with `source = "LP1"`,
/// used to share one inbound mark (keyed by source): one was refused with "MsgSeqNum too low"
/// forever, the other re-received ticks it had stored. Keyed by session identity, both
/// survive `kill -9` and a restart with each message's ticks stored exactly once.
#[test]
fn two_sessions_with_one_source_survive_kill_9_with_each_tick_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let syms = symbols(6);
    let (ja, jb) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let sim = |id: &str, seed: u64, journal: &Path| {
        start_sim(SimOptions {
            symbols: 6,
            rate: Some(2000),
            // Long enough for the second recorder to connect and catch up on a loaded machine.
            duration: Some(Duration::from_millis(8000)),
            sender_comp_id: id.into(),
            seed,
            journal: Some(journal.to_owned()),
            ..SimOptions::default()
        })
    };
    let (addr_a, sim_a, _) = sim("SIMA", 1, &ja);
    let (addr_b, sim_b, _) = sim("SIMB", 2, &jb);
    let cfg = dir.path().join("rec.toml");
    std::fs::write(
        &cfg,
        session_toml(&addr_a, "SIMA", "LP1", &syms) + &session_toml(&addr_b, "SIMB", "LP1", &syms),
    )
    .unwrap();
    let mut first = record_child(&db, &cfg);
    wait_until(Duration::from_secs(30), "ticks from both sessions", || {
        count(&db, &syms) > 2000
    });
    first.kill().unwrap();
    first.wait().unwrap();
    let second = record_child(&db, &cfg);
    let (a, b) = (sim_a.join().unwrap(), sim_b.join().unwrap());
    wait_until(Duration::from_secs(30), "every sent tick", || {
        count(&db, &syms) >= a.ticks_implied + b.ticks_implied
    });
    let out = interrupt(second);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut sent = journal_quotes(&ja);
    for (sym, q) in journal_quotes(&jb) {
        sent.entry(sym).or_default().extend(q);
    }
    let mut stored = stored_quotes(&db, &syms);
    for v in sent.values_mut().chain(stored.values_mut()) {
        v.sort();
    }
    assert_eq!(stored, sent, "the union of both sessions, each tick once");
}

/// What could go wrong: after a clean Logout the inbound mark stopped at the last market-data
/// message, so every restart began with a needless ResendRequest for the counterparty's
/// Logout. The final inbound number is committed at a complete stop.
#[test]
fn a_clean_restart_sends_no_resend_request() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let syms = symbols(4);
    let (addr, sim, stop) = start_sim(SimOptions {
        symbols: 4,
        rate: Some(1000),
        ..SimOptions::default()
    });
    let cfg = dir.path().join("rec.toml");
    std::fs::write(&cfg, session_toml(&addr, "SIM", "SIM", &syms)).unwrap();
    for run in 0..2 {
        let before = count(&db, &syms);
        let child = record_child(&db, &cfg);
        wait_until(Duration::from_secs(30), "new ticks", || {
            count(&db, &syms) > before + 200
        });
        let out = interrupt(child);
        let so = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{so}");
        assert!(so.contains("resends 0"), "run {run}: {so}");
    }
    stop.request();
    sim.join().unwrap();
}

/// What could go wrong: an LP whose clock is an hour ahead had its quotes filed under the wrong
/// time (a year off would have made a strange day file). FIX's rule applies: the message is
/// rejected (373=10) and counted, the session logged out, and no tick of it is stored.
#[test]
fn market_data_with_a_sending_time_off_the_clock_is_rejected_and_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let acceptor = scripted_acceptor_skewed(
        listener,
        vec![(
            "W",
            "55=EURUSD|268=2|269=0|270=1.08500|271=1000000|269=1|270=1.08510|271=2000000|",
        )],
        3600,
    );
    let db = dir.path().join("db");
    let wanted = vec!["EURUSD".to_string()];
    let (stop, recorder) = record_in_background(&db, gateway(&addr, &db, &wanted));
    acceptor.join().unwrap();
    stop.request();
    let rec = recorder.join().unwrap();
    let s = &rec.sessions[0];
    assert_eq!(s.rejects_sent, 1, "{s}");
    assert_eq!(s.ticks, 0, "{s}");
    assert_eq!(rec.stats.ticks_received, 0);
    assert!(
        tickrec::store::layout::list_days(&db).unwrap().is_empty(),
        "no day file at all"
    );
}
