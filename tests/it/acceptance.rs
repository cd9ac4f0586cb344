//! QuickFIX's FIX 4.4 session acceptance definitions, replayed against `tickrec simulate` over
//! TCP and judged as `../shared/quickfix-at/README.md` says (read in place, never copied:
//! reference data under its own licence).
//!
//! Each definition gets a fresh acceptor. `I` lines are sent (BodyLength and CheckSum filled in
//! where the line leaves them out, `<TIME±N>` substituted); `E` lines are compared with what
//! the acceptor sends next: 8, 9, 35 first and 10 last with true length and checksum; header
//! and non-repeating body fields in any order; 58 not compared; 10, 42, 52, 60 and 122 by
//! pattern; a TestRequest's 112 free; market data the acceptor sends on its own skipped (later
//! MsgSeqNums shift by the number skipped); the echo of a business message (an order, 21's
//! SecurityDefinition) may be a 35=j or nothing.
//!
//! The test prints the table; every definition must pass but those the README makes N/A.

use super::util::{free_port, Reaped};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tickrec::fix::frame;

/// Not applicable to a market-data acceptor (see the folder's README).
const NOT_APPLICABLE: &[&str] = &[
    "19a_PossResendMessageThatHAsAlreadyBeenSent",
    "19b_PossResendMessageThatHasNotBeenSent",
];

/// N/A from the step that asks for a resend of order echoes, when every step before passed.
const NA_AT_ECHO_RESEND: &[&str] = &[
    "8_AdminAndApplicationMessages",
    "8_OnlyApplicationMessages",
    "20_SimultaneousResendRequest",
];

/// A business message type that only QuickFIX's echoing test application would answer with.
fn is_business_echo(msg_type: &[u8]) -> bool {
    !matches!(
        msg_type,
        b"0" | b"1" | b"2" | b"3" | b"4" | b"5" | b"A" | b"W" | b"X" | b"Y" | b"j"
    )
}

fn definitions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/quickfix-at/fix44")
}

#[derive(Debug, Clone)]
enum Step {
    Connect(u8),
    Disconnect(u8),
    Send(u8, String),
    Expect(u8, String),
    ExpectDisconnect(u8),
}

fn parse(text: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (kind, rest) = line.split_at(1);
        // `I2,8=FIX…` addresses connection 2; `I8=FIX…` connection 1.
        let (conn, body) = match rest.split_once(',') {
            Some((n, b)) if n.len() == 1 && n.as_bytes()[0].is_ascii_digit() => {
                (n.parse().unwrap_or(1), b)
            }
            _ => (1, rest),
        };
        steps.push(match (kind, body) {
            ("i", "CONNECT") => Step::Connect(conn),
            ("i", "DISCONNECT") => Step::Disconnect(conn),
            ("e", "DISCONNECT") => Step::ExpectDisconnect(conn),
            ("I", b) => Step::Send(conn, b.to_owned()),
            ("E", b) => Step::Expect(conn, b.to_owned()),
            _ => continue,
        });
    }
    steps
}

fn fix_time(offset_s: i64) -> String {
    let t = chrono::Utc::now() + chrono::Duration::seconds(offset_s);
    t.format("%Y%m%d-%H:%M:%S%.3f").to_string()
}

/// Substitutes `<TIME>`, `<TIME+N>`, `<TIME-N>`.
fn with_times(msg: &str) -> String {
    let mut out = String::new();
    let mut rest = msg;
    while let Some(i) = rest.find("<TIME") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('>').map_or(rest.len(), |e| i + e);
        let inner = &rest[i + 5..end];
        let offset = inner.parse::<i64>().unwrap_or(0);
        out.push_str(&fix_time(offset));
        rest = &rest[(end + 1).min(rest.len())..];
    }
    out.push_str(rest);
    out
}

fn fields(msg: &[u8]) -> Vec<(u32, Vec<u8>)> {
    msg.split(|&b| b == 1)
        .filter(|f| !f.is_empty())
        .filter_map(|f| {
            let eq = f.iter().position(|&b| b == b'=')?;
            let tag = std::str::from_utf8(&f[..eq]).ok()?.parse().ok()?;
            Some((tag, f[eq + 1..].to_vec()))
        })
        .collect()
}

/// Fills in 9 and 10 where the line leaves them out (a line that carries them is meant garbled).
fn complete(msg: &str) -> Vec<u8> {
    let raw = msg.as_bytes();
    let has = |tag: &str| {
        raw.split(|&b| b == 1)
            .any(|f| f.starts_with(tag.as_bytes()))
    };
    let mut out = Vec::new();
    if has("9=") {
        out.extend_from_slice(raw);
    } else {
        // 8=...␁ then the body.
        let first = raw
            .iter()
            .position(|&b| b == 1)
            .map_or(raw.len(), |i| i + 1);
        let body_end = if has("10=") {
            raw.windows(4)
                .rposition(|w| w == b"\x0110=")
                .map_or(raw.len(), |i| i + 1)
        } else {
            raw.len()
        };
        out.extend_from_slice(&raw[..first]);
        out.extend_from_slice(format!("9={}\x01", body_end - first).as_bytes());
        out.extend_from_slice(&raw[first..]);
    }
    if !has("10=") {
        let sum: u32 = out.iter().map(|&b| u32::from(b)).sum::<u32>() % 256;
        out.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
    }
    out
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    closed: bool,
}

enum Got {
    Message(Vec<u8>),
    Closed,
    Timeout,
}

impl Conn {
    fn next(&mut self, wait: Duration) -> Got {
        let deadline = Instant::now() + wait;
        loop {
            match frame::check(&self.buf) {
                Ok(n) => return Got::Message(self.buf.drain(..n).collect()),
                Err(frame::FrameError::Incomplete) => {}
                Err(frame::FrameError::Invalid(_)) => {
                    // Not a valid frame from the acceptor: hand it over whole to fail the step.
                    return Got::Message(std::mem::take(&mut self.buf));
                }
            }
            if self.closed {
                return Got::Closed;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Got::Timeout;
            }
            let _ = self
                .stream
                .set_read_timeout(Some(left.min(Duration::from_millis(200))));
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk) {
                Ok(0) => self.closed = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => self.closed = true,
            }
        }
    }
}

fn is_market_data(msg: &[u8]) -> bool {
    fields(msg)
        .iter()
        .any(|(t, v)| *t == 35 && matches!(v.as_slice(), b"W" | b"X" | b"Y"))
}

fn time_ok(v: &[u8]) -> bool {
    let s = match std::str::from_utf8(v) {
        Ok(s) => s,
        Err(_) => return false,
    };
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    (s.len() == 17 || (s.len() == 21 && b[17] == b'.' && digits(18..21)))
        && digits(0..8)
        && b[8] == b'-'
        && digits(9..11)
        && b[11] == b':'
        && digits(12..14)
        && b[14] == b':'
        && digits(15..17)
}

/// Compares what was sent with what was expected (see the module doc). `shift` is added to
/// the expected MsgSeqNum.
fn judge(expected: &str, actual: &[u8], shift: i64) -> Result<(), String> {
    let show = |m: &[u8]| String::from_utf8_lossy(m).replace('\x01', "|");
    let got = fields(actual);
    let tags: Vec<u32> = got.iter().map(|f| f.0).collect();
    if tags.len() < 4 || tags[..3] != [8, 9, 35] || tags.last() != Some(&10) {
        return Err(format!(
            "not a FIX frame with 8, 9, 35 first and 10 last: {}",
            show(actual)
        ));
    }
    if frame::check(actual) != Ok(actual.len()) {
        return Err(format!("wrong BodyLength or CheckSum: {}", show(actual)));
    }
    let want = fields(expected.as_bytes());
    let is_test_request = want.iter().any(|(t, v)| *t == 35 && v == b"1");
    let mut w: Vec<(u32, Vec<u8>)> = Vec::new();
    for (t, v) in want {
        match t {
            9 | 10 | 58 => {}
            42 | 52 | 60 | 122 => w.push((t, b"<time>".to_vec())),
            112 if is_test_request => w.push((t, b"<any>".to_vec())),
            34 => {
                let n: i64 = String::from_utf8_lossy(&v).parse().unwrap_or(0);
                w.push((t, (n + shift).to_string().into_bytes()));
            }
            _ => w.push((t, v)),
        }
    }
    let mut g: Vec<(u32, Vec<u8>)> = Vec::new();
    for (t, v) in got {
        match t {
            9 | 10 | 58 => {}
            42 | 52 | 60 | 122 => {
                if !time_ok(&v) {
                    return Err(format!(
                        "tag {t} is not YYYYMMDD-HH:MM:SS[.sss]: {}",
                        show(actual)
                    ));
                }
                g.push((t, b"<time>".to_vec()));
            }
            112 if is_test_request => g.push((t, b"<any>".to_vec())),
            _ => g.push((t, v)),
        }
    }
    w.sort();
    g.sort();
    if w == g {
        Ok(())
    } else {
        Err(format!(
            "expected {}\n            got {}",
            expected.replace('\x01', "|"),
            show(actual)
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Pass,
    NotApplicable(String),
    Fail(String),
}

/// A fresh `tickrec simulate` and its port. The port is picked free and then bound by the
/// child, so another process may take it in between: a child that exits is started again on
/// another port (its stderr is kept, to say why if it never listens).
fn start_acceptor(db: &Path) -> (Child, u16) {
    let log = db.with_extension("stderr");
    for _ in 0..5 {
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tickrec"))
            .arg("--db")
            .arg(db)
            .args([
                "simulate",
                "--port",
                &port.to_string(),
                "--symbols",
                "1",
                "--rate",
                "1",
            ])
            .args([
                "--sender-comp-id",
                "ISLD",
                "--target-comp-id",
                "TW44",
                "--reset-on-logon",
            ])
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("tickrec simulate starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (child, port);
            }
            if child.try_wait().ok().flatten().is_some() || Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    panic!(
        "simulate did not listen (5 tries): {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    )
}

fn run_definition(name: &str, text: &str) -> Verdict {
    if NOT_APPLICABLE.contains(&name) {
        return Verdict::NotApplicable("PossResend duplicate detection by ClOrdID".into());
    }
    let dir = tempfile::tempdir().unwrap();
    // The probe connection of start_acceptor is dropped at once; the acceptor serves the next.
    let (acceptor, port) = start_acceptor(&dir.path().join("db"));
    let _acceptor = Reaped::new(acceptor);
    play(name, &parse(text), port)
}

/// (Long on purpose: one scenario end to end, its steps sharing what it builds.)
fn play(name: &str, steps: &[Step], port: u16) -> Verdict {
    let mut conns: Vec<Option<Conn>> = (0..10).map(|_| None).collect();
    let mut shift = [0i64; 10];
    for (i, step) in steps.iter().enumerate() {
        let at = |why: String| Verdict::Fail(format!("step {}: {why}", i + 1));
        match step {
            Step::Connect(c) => match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => {
                    conns[*c as usize] = Some(Conn {
                        stream: s,
                        buf: Vec::new(),
                        closed: false,
                    })
                }
                Err(e) => return at(format!("connect: {e}")),
            },
            Step::Disconnect(c) => {
                if let Some(conn) = conns[*c as usize].take() {
                    let _ = conn.stream.shutdown(std::net::Shutdown::Both);
                }
            }
            Step::Send(c, msg) => {
                let Some(conn) = conns[*c as usize].as_mut() else {
                    return at("send on a closed connection".into());
                };
                let bytes = complete(&with_times(msg));
                if conn.stream.write_all(&bytes).is_err() {
                    return at("the acceptor closed the connection".into());
                }
            }
            Step::Expect(c, msg) => {
                let c = *c as usize;
                let want = with_times(msg);
                // QuickFIX's test application echoes business messages (orders, and the
                // SecurityDefinition of 21): a market-data acceptor may refuse or ignore them.
                let expects_echo = fields(want.as_bytes())
                    .iter()
                    .any(|(t, v)| *t == 35 && is_business_echo(v));
                let resent_echo = expects_echo && want.contains("\x0143=Y");
                if resent_echo && NA_AT_ECHO_RESEND.contains(&name) {
                    return Verdict::NotApplicable(format!(
                        "step {}: a resend of order echoes (every step before passed)",
                        i + 1
                    ));
                }
                let Some(conn) = conns[c].as_mut() else {
                    return at("expect on a closed connection".into());
                };
                let wait = if expects_echo {
                    Duration::from_secs(1)
                } else {
                    Duration::from_secs(15)
                };
                loop {
                    match conn.next(wait) {
                        Got::Message(m) if is_market_data(&m) && !want.contains("\x0135=W") => {
                            shift[c] += 1;
                        }
                        Got::Message(m) => {
                            let rejected_echo = expects_echo
                                && fields(&m).iter().any(|(t, v)| *t == 35 && v == b"j");
                            if rejected_echo {
                                break;
                            }
                            if let Err(e) = judge(&want, &m, shift[c]) {
                                return at(e);
                            }
                            break;
                        }
                        Got::Timeout if expects_echo => {
                            // An ignored order: the acceptor's later numbers come one lower.
                            shift[c] -= 1;
                            break;
                        }
                        Got::Timeout => {
                            return at(format!(
                                "nothing within {wait:?}; expected {}",
                                want.replace('\x01', "|")
                            ))
                        }
                        Got::Closed => {
                            return at(format!(
                                "connection closed; expected {}",
                                want.replace('\x01', "|")
                            ))
                        }
                    }
                }
            }
            Step::ExpectDisconnect(c) => {
                let Some(conn) = conns[*c as usize].as_mut() else {
                    continue;
                };
                loop {
                    match conn.next(Duration::from_secs(10)) {
                        Got::Closed => break,
                        Got::Message(m) if is_market_data(&m) => {}
                        Got::Message(m) => {
                            return at(format!(
                                "expected a disconnect, got {}",
                                String::from_utf8_lossy(&m).replace('\x01', "|")
                            ))
                        }
                        Got::Timeout => return at("still connected after 10 s".into()),
                    }
                }
                conns[*c as usize] = None;
            }
        }
    }
    Verdict::Pass
}

/// What could go wrong: a venue certifies a session by playing scripted scenarios and
/// comparing every answer; an engine that only ever talked to itself fails them. This replays
/// QuickFIX's own definitions and holds every one that passes.
///
/// (Long on purpose: one scenario end to end, its steps sharing what it builds.)
#[test]
fn quickfix_session_acceptance_definitions() {
    let dir = definitions_dir();
    let mut defs: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}: the QuickFIX acceptance definitions are expected in ../shared/quickfix-at beside the checkout",
                dir.display()
            )
        })
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "def"))
        .map(|e| {
            let name = e.path().file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(e.path()).unwrap())
        })
        .collect();
    defs.sort();
    assert_eq!(defs.len(), 59, "the 59 FIX 4.4 acceptor definitions");
    // `TICKREC_AT_ONLY=name,name` plays only those (for working on one definition).
    if let Ok(only) = std::env::var("TICKREC_AT_ONLY") {
        let only: Vec<&str> = only.split(',').collect();
        defs.retain(|(n, _)| only.contains(&n.as_str()));
    }
    // Eight at a time: a failing step can wait up to 15 s.
    let mut verdicts: Vec<(String, Verdict)> = Vec::new();
    for chunk in defs.chunks(8) {
        let handles: Vec<_> = chunk
            .iter()
            .cloned()
            .map(|(name, text)| {
                std::thread::spawn(move || {
                    let v = run_definition(&name, &text);
                    (name, v)
                })
            })
            .collect();
        verdicts.extend(handles.into_iter().map(|h| h.join().unwrap()));
    }
    let count = |f: fn(&Verdict) -> bool| verdicts.iter().filter(|v| f(&v.1)).count();
    let (pass, na, fail) = (
        count(|v| *v == Verdict::Pass),
        count(|v| matches!(v, Verdict::NotApplicable(_))),
        count(|v| matches!(v, Verdict::Fail(_))),
    );
    for (name, v) in &verdicts {
        match v {
            Verdict::Pass => eprintln!("PASS {name}"),
            Verdict::NotApplicable(why) => eprintln!("N/A  {name}: {why}"),
            Verdict::Fail(why) => eprintln!("FAIL {name}: {why}"),
        }
    }
    eprintln!(
        "acceptance: {pass} pass, {fail} fail, {na} N/A of {}",
        verdicts.len()
    );
    // A definition that fails is played once more on its own before it counts: several
    // acceptors and the rest of the suite share two cores, and a few definitions wait on
    // heartbeat timers. The second verdict stands (a pass, an allowed N/A, or a failure).
    for (name, verdict) in verdicts.iter_mut() {
        if !matches!(verdict, Verdict::Fail(_)) {
            continue;
        }
        if let Some((_, text)) = defs.iter().find(|(n, _)| n == name) {
            let again = run_definition(name, text);
            eprintln!("RETRY {name}: {again:?}");
            *verdict = again;
        }
    }
    let failing: Vec<&str> = verdicts
        .iter()
        .filter(|(_, v)| matches!(v, Verdict::Fail(_)))
        .map(|(n, _)| n.as_str())
        .collect();
    assert!(
        failing.is_empty(),
        "definitions that fail (every one but the N/A ones must pass): {failing:?}"
    );
    let unexpected_na: Vec<&str> = verdicts
        .iter()
        .filter(|(n, v)| {
            matches!(v, Verdict::NotApplicable(_))
                && !NOT_APPLICABLE.contains(&n.as_str())
                && !NA_AT_ECHO_RESEND.contains(&n.as_str())
        })
        .map(|(n, _)| n.as_str())
        .collect();
    assert!(
        unexpected_na.is_empty(),
        "N/A only where the README allows: {unexpected_na:?}"
    );
}
