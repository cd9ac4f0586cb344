//! Session conformance in our own scenarios, over TCP: the rules a venue certifies, played
//! against `simulate` (the acceptor) and, for the rules that bind an initiator, against the
//! recorder's gateway. Each scenario is written here from FIX 4.4's session rules; the
//! replay of QuickFIX's own definitions lives in `acceptance.rs`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use tickrec::fix::frame;
use tickrec::fix::sim::{spawn_local, SimOptions};

/// A scripted FIX peer on one TCP connection.
struct Peer {
    stream: TcpStream,
    buf: Vec<u8>,
    sender: String,
    target: String,
    next_seq: u64,
}

fn now_fix(offset_s: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(offset_s))
        .format("%Y%m%d-%H:%M:%S%.3f")
        .to_string()
}

/// `8=FIX.4.4␁9=…␁<body>10=…␁` from a `|`-separated body.
fn framed(body: &str) -> Vec<u8> {
    let body = body.replace('|', "\x01");
    let mut m = format!("8=FIX.4.4\x019={}\x01{body}", body.len()).into_bytes();
    let sum: u32 = m.iter().map(|&b| u32::from(b)).sum::<u32>() % 256;
    m.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
    m
}

/// Value of `tag` in a framed message.
fn get(msg: &[u8], tag: u32) -> Option<String> {
    let prefix = format!("{tag}=");
    msg.split(|&b| b == 1)
        .find(|f| f.starts_with(prefix.as_bytes()))
        .map(|f| String::from_utf8_lossy(&f[prefix.len()..]).into_owned())
}

fn show(msg: &[u8]) -> String {
    String::from_utf8_lossy(msg).replace('\x01', "|")
}

impl Peer {
    fn connect(addr: &str, sender: &str, target: &str) -> Peer {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        Peer::on(stream, sender, target)
    }

    fn on(stream: TcpStream, sender: &str, target: &str) -> Peer {
        Peer {
            stream,
            buf: Vec::new(),
            sender: sender.into(),
            target: target.into(),
            next_seq: 1,
        }
    }

    /// Sends `35=<t>` with the standard header and `body`, at the next sequence number.
    fn send(&mut self, msg_type: &str, body: &str) -> u64 {
        let seq = self.next_seq;
        self.send_at(seq, msg_type, body);
        self.next_seq += 1;
        seq
    }

    /// Sends under sequence number `seq` without moving the counter.
    fn send_at(&mut self, seq: u64, msg_type: &str, body: &str) {
        let m = framed(&format!(
            "35={msg_type}|34={seq}|49={}|52={}|56={}|{body}",
            self.sender,
            now_fix(0),
            self.target
        ));
        self.stream.write_all(&m).unwrap();
    }

    fn send_raw(&mut self, body: &str) {
        self.stream.write_all(&framed(body)).unwrap();
        self.next_seq += 1;
    }

    /// The next message within 10 s; `None` when the connection closed.
    fn recv(&mut self) -> Option<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(n) = frame::check(&self.buf) {
                return Some(self.buf.drain(..n).collect());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "nothing within 10 s");
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return None,
            }
        }
    }

    /// The next message that is not market data (35=W/X), or `None` when closed.
    fn recv_admin(&mut self) -> Option<Vec<u8>> {
        loop {
            let m = self.recv()?;
            if !matches!(get(&m, 35).as_deref(), Some("W" | "X")) {
                return Some(m);
            }
        }
    }

    /// The next non-market-data message, which must be of `msg_type`.
    fn expect(&mut self, msg_type: &str) -> Vec<u8> {
        let m = self
            .recv_admin()
            .unwrap_or_else(|| panic!("closed; expected 35={msg_type}"));
        assert_eq!(get(&m, 35).as_deref(), Some(msg_type), "{}", show(&m));
        m
    }

    fn expect_closed(&mut self) {
        while let Some(m) = self.recv() {
            let t = get(&m, 35);
            assert!(
                matches!(t.as_deref(), Some("W" | "X" | "5")),
                "expected the connection to close, got {}",
                show(&m)
            );
        }
    }

    fn logon(&mut self, extra: &str) -> Vec<u8> {
        self.send("A", &format!("98=0|108=30|{extra}"));
        self.expect("A")
    }
}

fn simulator(symbols: usize) -> (String, tickrec::shutdown::Shutdown) {
    let (addr, _thread, stop) = spawn_local(SimOptions {
        symbols,
        rate: Some(2000),
        ..SimOptions::default()
    })
    .unwrap();
    (addr.to_string(), stop)
}

/// The Reject the acceptor answers `body` with: its (45, 371, 372, 373).
fn rejected(p: &mut Peer, msg_type: &str, body: &str) -> (String, String, String, String) {
    let seq = p.send(msg_type, body);
    let r = p.expect("3");
    let f = |t| get(&r, t).unwrap_or_default();
    assert_eq!(f(45), seq.to_string(), "{}", show(&r));
    (f(45), f(371), f(372), f(373))
}

#[test]
fn the_acceptor_rejects_each_invalid_field_with_fixs_reason_and_tag_and_goes_on() {
    let (addr, stop) = simulator(2);
    let mut p = Peer::connect(&addr, "CLIENT", "SIM");
    p.logon("");
    // (body, message type, RefTagID, SessionRejectReason)
    let cases = [
        ("0", "7777=x|", "7777", "0"),
        ("1", "", "112", "1"),
        ("0", "55=EURUSD|", "55", "2"),
        ("1", "112=|", "112", "4"),
        (
            "V",
            "262=r1|263=9|264=1|267=1|269=0|146=1|55=EURUSD|",
            "263",
            "5",
        ),
        (
            "V",
            "262=r1|263=1|264=x|267=1|269=0|146=1|55=EURUSD|",
            "264",
            "6",
        ),
        ("1", "112=a|112=b|", "112", "13"),
        (
            "V",
            "262=r1|263=1|264=1|267=1|269=0|146=2|55=EURUSD|",
            "146",
            "16",
        ),
    ];
    for (t, body, tag, reason) in cases {
        let (_, got_tag, ref_type, got_reason) = rejected(&mut p, t, body);
        assert_eq!(
            (got_tag.as_str(), ref_type.as_str(), got_reason.as_str()),
            (tag, t, reason),
            "{t} {body}"
        );
    }
    // A header field after the body (373=14, the first such tag).
    let seq = p.next_seq;
    p.send_raw(&format!(
        "35=0|112=z|34={seq}|49=CLIENT|52={}|56=SIM|",
        now_fix(0)
    ));
    let r = p.expect("3");
    assert_eq!(get(&r, 373).as_deref(), Some("14"), "{}", show(&r));
    assert_eq!(get(&r, 371).as_deref(), Some("34"));
    // Every rejected message used its number up: the session is in sequence.
    p.send("1", "112=still-there|");
    let hb = p.expect("0");
    assert_eq!(get(&hb, 112).as_deref(), Some("still-there"));
    p.send("5", "");
    p.expect("5");
    p.expect_closed();
    stop.request();
}

#[test]
fn possible_duplicates_need_a_consistent_orig_sending_time() {
    let (addr, stop) = simulator(2);
    let mut p = Peer::connect(&addr, "CLIENT", "SIM");
    p.logon("");
    p.send("0", "");
    // Too low with PossDup but no OrigSendingTime: Reject 373=1 on 122, the session goes on.
    p.send_at(2, "0", "43=Y|");
    let r = p.expect("3");
    assert_eq!(
        (get(&r, 371).as_deref(), get(&r, 373).as_deref()),
        (Some("122"), Some("1"))
    );
    p.send("1", "112=t|");
    p.expect("0");
    // OrigSendingTime later than SendingTime: Reject 373=10, then Logout.
    p.send_at(2, "0", &format!("43=Y|122={}|", now_fix(30)));
    let r = p.expect("3");
    assert_eq!(get(&r, 373).as_deref(), Some("10"));
    p.expect("5");
    p.send("5", "");
    p.expect_closed();
    stop.request();
}

#[test]
fn market_data_is_resent_as_itself_with_possdup() {
    let (addr, stop) = simulator(2);
    let mut p = Peer::connect(&addr, "CLIENT", "SIM");
    p.logon("");
    p.send("V", "262=r1|263=1|264=1|267=2|269=0|269=1|146=1|55=EURUSD|");
    let mut originals = Vec::new();
    while originals.len() < 5 {
        let m = p.recv().unwrap();
        if matches!(get(&m, 35).as_deref(), Some("W" | "X")) {
            originals.push(m);
        }
    }
    let from: u64 = get(&originals[0], 34).unwrap().parse().unwrap();
    let to = from + 4;
    p.send("2", &format!("7={from}|16={to}|"));
    let mut resent = Vec::new();
    while resent.len() < 5 {
        let m = p.recv().unwrap();
        if get(&m, 43).as_deref() == Some("Y") {
            resent.push(m);
        }
    }
    for (o, r) in originals.iter().zip(&resent) {
        assert_eq!(get(o, 34), get(r, 34));
        assert_eq!(get(o, 35), get(r, 35), "resent as itself: {}", show(r));
        assert_eq!(
            get(o, 52),
            get(r, 122),
            "OrigSendingTime is the first sending"
        );
        assert_eq!(get(o, 270), get(r, 270));
    }
    stop.request();
}

#[test]
fn a_logon_with_reset_during_the_session_restarts_both_sequences() {
    let (addr, stop) = simulator(2);
    let mut p = Peer::connect(&addr, "CLIENT", "SIM");
    p.logon("");
    for _ in 0..3 {
        p.send("1", "112=x|");
        p.expect("0");
    }
    p.next_seq = 1;
    let a = p.logon("141=Y|");
    assert_eq!(get(&a, 34).as_deref(), Some("1"));
    assert_eq!(get(&a, 141).as_deref(), Some("Y"));
    p.send("1", "112=after|");
    let hb = p.expect("0");
    assert_eq!(get(&hb, 34).as_deref(), Some("2"));
    stop.request();
}

#[test]
fn the_acceptor_serves_several_initiators_at_once_and_each_identity_once() {
    let (addr, stop) = simulator(4);
    let mut a = Peer::connect(&addr, "DESK_A", "SIM");
    let mut b = Peer::connect(&addr, "DESK_B", "SIM");
    a.logon("");
    b.logon("");
    a.send("V", "262=a|263=1|264=1|267=2|269=0|269=1|146=1|55=EURUSD|");
    b.send("V", "262=b|263=1|264=1|267=2|269=0|269=1|146=1|55=GBPUSD|");
    for (p, sym) in [(&mut a, "EURUSD"), (&mut b, "GBPUSD")] {
        let m = p.recv().unwrap();
        assert_eq!(get(&m, 35).as_deref(), Some("W"), "{}", show(&m));
        assert_eq!(get(&m, 55).as_deref(), Some(sym));
        assert_eq!(get(&m, 56).as_deref(), Some(p.sender.as_str()));
    }
    // A second connection of a logged-on identity is closed without an answer.
    let mut again = Peer::connect(&addr, "DESK_A", "SIM");
    again.send("A", "98=0|108=30|");
    assert!(
        again.recv().is_none(),
        "the duplicate identity is disconnected"
    );
    // The first DESK_A session is untouched.
    a.send("1", "112=alive|");
    assert_eq!(get(&a.expect("0"), 112).as_deref(), Some("alive"));
    stop.request();
}

#[test]
fn unsubscribing_stops_the_updates_of_that_request() {
    let (addr, stop) = simulator(2);
    let mut p = Peer::connect(&addr, "CLIENT", "SIM");
    p.logon("");
    p.send("V", "262=r1|263=1|264=1|267=2|269=0|269=1|146=1|55=EURUSD|");
    let mut updates = 0;
    while updates < 3 {
        let m = p.recv().unwrap();
        updates += usize::from(get(&m, 35).as_deref() == Some("X"));
    }
    p.send("V", "262=r1|263=2|264=1|267=2|269=0|269=1|146=1|55=EURUSD|");
    // Updates already on the way arrive before the answer to this TestRequest; none after.
    p.send("1", "112=fence|");
    p.expect("0");
    let fence = Instant::now();
    // The simulator streams 2000 a second while subscribed: 200 ms of silence is conclusive.
    while fence.elapsed() < Duration::from_millis(200) {
        p.send("1", "112=probe|");
        let m = p.recv().unwrap();
        assert_eq!(
            get(&m, 35).as_deref(),
            Some("0"),
            "after unsubscribe: {}",
            show(&m)
        );
    }
    stop.request();
}

/// A hand-driven acceptor facing the recorder's gateway: takes its Logon and request.
fn accept_gateway(listener: &TcpListener) -> Peer {
    let (stream, _) = listener.accept().unwrap();
    let mut p = Peer::on(stream, "LP", "REC");
    p.expect("A");
    p.send("A", "98=0|108=30|");
    p.expect("V");
    p
}

fn gateway_record(
    addr: &str,
    db: &Path,
) -> (
    tickrec::shutdown::Shutdown,
    std::thread::JoinHandle<tickrec::record::RecordReport>,
) {
    use tickrec::fix::gateway::GatewayOptions;
    use tickrec::fix::session::SessionConfig;
    super::fix::record_in_background(
        db,
        GatewayOptions {
            connect: addr.to_owned(),
            session: SessionConfig::new("REC", "LP"),
            symbols: vec!["EURUSD".into()],
            source: "LP".into(),
            reconnect_interval: Duration::from_millis(50),
            max_reconnect_interval: Duration::from_millis(200),
            db_path: db.to_owned(),
        },
    )
}

#[test]
fn the_gateway_answers_an_acceptors_faults_as_an_initiator_must() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, recorder) = gateway_record(&addr, &db);
    let mut lp = accept_gateway(&listener);
    // A resend asked past the Logon brings the MarketDataRequest itself (PossDup), not a gap
    // fill over it: an LP that lost it would never subscribe.
    lp.send("2", "7=1|16=0|");
    let fill = lp.expect("4");
    assert_eq!(get(&fill, 36).as_deref(), Some("2"), "{}", show(&fill));
    let v = lp.expect("V");
    assert_eq!(
        (get(&v, 34).as_deref(), get(&v, 43).as_deref()),
        (Some("2"), Some("Y"))
    );
    assert!(get(&v, 122).is_some(), "OrigSendingTime on the resend");
    // An undefined tag in a session message: Reject 373=0 naming it.
    let seq = lp.send("0", "9999=x|");
    let r = lp.expect("3");
    assert_eq!(get(&r, 45), Some(seq.to_string()));
    assert_eq!(
        (get(&r, 371).as_deref(), get(&r, 373).as_deref()),
        (Some("9999"), Some("0"))
    );
    // Market data marked PossDup without OrigSendingTime: Reject 373=1 on 122, not stored.
    lp.send("W", "43=Y|55=EURUSD|268=1|269=0|270=1.5|271=1|");
    let r = lp.expect("3");
    assert_eq!(
        (get(&r, 371).as_deref(), get(&r, 373).as_deref()),
        (Some("122"), Some("1"))
    );
    // A Logon with 141=Y mid-session: both sides restart at 1; the answer carries 141=Y.
    lp.next_seq = 1;
    lp.send("A", "98=0|108=30|141=Y|");
    let a = lp.expect("A");
    assert_eq!(
        (get(&a, 34).as_deref(), get(&a, 141).as_deref()),
        (Some("1"), Some("Y"))
    );
    lp.send("W", "55=EURUSD|268=1|269=0|270=1.08500|271=1000000|");
    // Its TestRequest is answered in the new sequence, after the quote.
    lp.send("1", "112=t|");
    let hb = lp.expect("0");
    assert_eq!(get(&hb, 34).as_deref(), Some("2"));
    // Logout: answered, then the connection closes.
    lp.send("5", "");
    lp.expect("5");
    lp.expect_closed();
    stop.request();
    let rec = recorder.join().unwrap();
    let s = &rec.sessions[0];
    assert_eq!(s.ticks, 1, "only the valid quote is stored: {s}");
    let rows = super::util::all_rows(&db, "EURUSD");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].bid.unwrap().to_string(), "1.08500");
}

#[test]
fn a_bad_logon_is_refused_by_disconnecting() {
    let (addr, stop) = simulator(1);
    // (BeginString, MsgType, SendingTime offset s, TargetCompID)
    let bad = [
        ("FIX.4.4", "0", 0, "SIM"),     // not a Logon first
        ("FIX.4.4", "A", 600, "SIM"),   // SendingTime ten minutes off
        ("FIX.4.1", "A", 0, "SIM"),     // another FIX version
        ("FIX.4.4", "A", 0, "NOT_SIM"), // another acceptor
    ];
    for (i, (version, t, offset, target)) in bad.into_iter().enumerate() {
        let mut p = Peer::connect(&addr, &format!("BAD{i}"), target);
        let body = format!(
            "35={t}|34=1|49=BAD{i}|52={}|56={target}|98=0|108=30|",
            now_fix(offset)
        )
        .replace('|', "\x01");
        let mut m = format!("8={version}\x019={}\x01{body}", body.len()).into_bytes();
        let sum: u32 = m.iter().map(|&b| u32::from(b)).sum::<u32>() % 256;
        m.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
        p.stream.write_all(&m).unwrap();
        assert!(
            p.recv().is_none(),
            "case {i}: disconnected without an answer"
        );
    }
    stop.request();
}

#[test]
fn garbled_messages_are_ignored_and_their_number_is_still_expected() {
    let (addr, stop) = simulator(1);
    let mut p = Peer::connect(&addr, "CLIENT", "SIM");
    p.logon("");
    let mut m = framed(&format!(
        "35=1|34=2|49=CLIENT|52={}|56=SIM|112=garbled|",
        now_fix(0)
    ));
    let n = m.len();
    m[n - 2] = if m[n - 2] == b'0' { b'1' } else { b'0' };
    p.stream.write_all(&m).unwrap();
    p.send("1", "112=clean|");
    let hb = p.expect("0");
    assert_eq!(get(&hb, 112).as_deref(), Some("clean"), "{}", show(&hb));
    stop.request();
}

#[test]
fn a_gap_is_asked_for_once_and_what_came_past_it_is_processed_after_the_fill() {
    let (addr, stop) = simulator(1);
    let mut p = Peer::connect(&addr, "CLIENT", "SIM");
    p.logon("");
    // 2 and 3 never sent: 4 reveals the gap.
    p.send_at(4, "1", "112=past-the-gap|");
    let rr = p.expect("2");
    assert_eq!(
        (get(&rr, 7).as_deref(), get(&rr, 16).as_deref()),
        (Some("2"), Some("0"))
    );
    // Our own ResendRequest while the acceptor waits for a fill: served at once.
    p.send_at(5, "2", "7=1|16=0|");
    let fill = p.expect("4");
    assert_eq!(get(&fill, 123).as_deref(), Some("Y"), "{}", show(&fill));
    // Fill 2..3 with a gap fill: the TestRequest kept from before is answered now.
    p.send_at(2, "4", &format!("43=Y|122={}|123=Y|36=4|", now_fix(0)));
    let hb = p.expect("0");
    assert_eq!(get(&hb, 112).as_deref(), Some("past-the-gap"));
    // The ResendRequest's own number (5) was past the gap: it is filled like any other.
    p.send_at(5, "4", &format!("43=Y|122={}|123=Y|36=6|", now_fix(0)));
    p.next_seq = 6;
    p.send("1", "112=in-sequence|");
    assert_eq!(get(&p.expect("0"), 112).as_deref(), Some("in-sequence"));
    // A number below the expected one without PossDup ends the session.
    p.send_at(3, "0", "");
    let lo = p.expect("5");
    assert!(
        get(&lo, 58).unwrap_or_default().contains("too low"),
        "{}",
        show(&lo)
    );
    p.expect_closed();
    stop.request();
}

#[test]
fn sequence_reset_moves_forward_only() {
    let (addr, stop) = simulator(1);
    let mut p = Peer::connect(&addr, "CLIENT", "SIM");
    p.logon("");
    p.send("4", "36=20|");
    p.next_seq = 20;
    p.send("1", "112=at-20|");
    assert_eq!(get(&p.expect("0"), 112).as_deref(), Some("at-20"));
    let seq = p.send("4", "36=5|");
    let r = p.expect("3");
    assert_eq!(get(&r, 45), Some(seq.to_string()));
    assert_eq!(get(&r, 373).as_deref(), Some("5"));
    stop.request();
}

#[test]
fn silence_brings_heartbeats_then_a_test_request_then_a_disconnect() {
    let (addr, stop) = simulator(1);
    let mut p = Peer::connect(&addr, "CLIENT", "SIM");
    p.send("A", "98=0|108=1|");
    p.expect("A");
    let started = Instant::now();
    let mut seen = Vec::new();
    while let Some(m) = p.recv() {
        seen.push(get(&m, 35).unwrap_or_default());
    }
    assert!(seen.contains(&"0".to_string()), "{seen:?}");
    assert!(
        seen.contains(&"1".to_string()),
        "a TestRequest before giving up: {seen:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "gave up in time"
    );
    stop.request();
}

#[test]
fn answers_reverse_the_routing_fields() {
    let (addr, stop) = simulator(1);
    let mut p = Peer::connect(&addr, "CLIENT", "SIM");
    p.logon("");
    let seq = p.next_seq;
    p.send_raw(&format!(
        "35=V|34={seq}|49=CLIENT|52={}|56=SIM|115=DESK|116=ANNA|262=r|263=7|264=1|267=1|269=0|146=1|55=EURUSD|",
        now_fix(0)
    ));
    let r = p.expect("3");
    assert_eq!(get(&r, 128).as_deref(), Some("DESK"), "{}", show(&r));
    assert_eq!(get(&r, 129).as_deref(), Some("ANNA"));
    assert_eq!(get(&r, 373).as_deref(), Some("5"));
    // A repeating group announced with zero instances is valid.
    p.send("V", "262=r2|263=0|264=1|267=1|269=0|146=1|55=EURUSD|454=0|");
    assert_eq!(get(&p.recv().unwrap(), 35).as_deref(), Some("W"));
    stop.request();
}

/// The rest of the session rules, one connection each: a wrong BeginString or CompID mid
/// session, a SendingTime two minutes off, an unknown MsgType, the first three fields out of
/// order, a Reject received, an unsolicited Logout, header fields in any order, business the
/// acceptor does not take, and a wrong BodyLength.
///
/// (Long on purpose: one scenario end to end, its steps sharing what it builds.)
#[test]
fn session_rules_one_scenario_each() {
    let (addr, stop) = simulator(1);
    let logged_on = |id: &str| {
        let mut p = Peer::connect(&addr, id, "SIM");
        p.logon("");
        p
    };
    // Another BeginString mid-session: Logout saying so, then the connection closes.
    let mut p = logged_on("BS");
    let body = format!("35=1|34=2|49=BS|52={}|56=SIM|112=x|", now_fix(0)).replace('|', "\x01");
    let mut m = format!("8=FIX.4.1\x019={}\x01{body}", body.len()).into_bytes();
    let sum: u32 = m.iter().map(|&b| u32::from(b)).sum::<u32>() % 256;
    m.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
    p.stream.write_all(&m).unwrap();
    let lo = p.expect("5");
    assert_eq!(get(&lo, 58).as_deref(), Some("Incorrect BeginString"));
    p.expect_closed();
    // A SenderCompID that changes: Reject 373=9, then Logout.
    let mut p = logged_on("CID");
    p.sender = "OTHER".into();
    let seq = p.send("0", "");
    let r = p.expect("3");
    assert_eq!(
        (get(&r, 45), get(&r, 373).as_deref()),
        (Some(seq.to_string()), Some("9"))
    );
    p.expect("5");
    // SendingTime 121 s off: Reject 373=10, then Logout.
    let mut p = logged_on("ST");
    let seq = p.next_seq;
    p.send_raw(&format!("35=0|34={seq}|49=ST|52={}|56=SIM|", now_fix(-121)));
    let r = p.expect("3");
    assert_eq!(get(&r, 373).as_deref(), Some("10"));
    p.expect("5");
    // An unknown MsgType: Reject 373=11; an ExecutionReport: BusinessMessageReject 380=3.
    let mut p = logged_on("MT");
    p.send("*", "");
    assert_eq!(get(&p.expect("3"), 373).as_deref(), Some("11"));
    let seq = p.send("8", "37=o|17=e|150=0|39=0|55=EURUSD|54=1|151=1|14=0|6=0|");
    let j = p.expect("j");
    assert_eq!(
        (
            get(&j, 45),
            get(&j, 372).as_deref(),
            get(&j, 380).as_deref()
        ),
        (Some(seq.to_string()), Some("8"), Some("3"))
    );
    // Header fields in another order, and a Reject received: both taken, the session goes on.
    let seq = p.next_seq;
    p.send_raw(&format!(
        "35=1|56=SIM|52={}|49=MT|34={seq}|112=order|",
        now_fix(0)
    ));
    assert_eq!(get(&p.expect("0"), 112).as_deref(), Some("order"));
    p.send("3", "45=1|");
    p.send("1", "112=after-reject|");
    assert_eq!(get(&p.expect("0"), 112).as_deref(), Some("after-reject"));
    // A wrong BodyLength: the message is dropped, its number is asked for again.
    let mut bad = framed(&format!(
        "35=1|34={}|49=MT|52={}|56=SIM|112=lost|",
        p.next_seq,
        now_fix(0)
    ));
    bad[12] = b'1';
    p.stream.write_all(&bad).unwrap();
    p.next_seq += 1;
    p.send("1", "112=next|");
    let rr = p.expect("2");
    assert_eq!(get(&rr, 7), Some((p.next_seq - 2).to_string()));
    // The first three fields out of order: not a message at all (no answer, number unused).
    let mut p = logged_on("F3");
    let body = format!("35=0\x0134=2\x0149=F3\x0152={}\x0156=SIM\x01", now_fix(0));
    let mut m = format!("35=0\x018=FIX.4.4\x019={}\x01{body}", body.len()).into_bytes();
    let sum: u32 = m.iter().map(|&b| u32::from(b)).sum::<u32>() % 256;
    m.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
    p.stream.write_all(&m).unwrap();
    p.send("1", "112=still-2|");
    let hb = p.expect("0");
    assert_eq!(
        get(&hb, 112).as_deref(),
        Some("still-2"),
        "34=2 was still expected"
    );
    // An unsolicited Logout: answered, then the connection closes.
    p.send("5", "");
    p.expect("5");
    p.expect_closed();
    stop.request();
}
