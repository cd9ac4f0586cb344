//! The acceptor simulator: a FIX 4.4 market-data counterparty streaming random-walk quotes.
//!
//! It serves several initiators at once, one session per identity (the initiator's
//! SenderCompID; `target_comp_id` accepts only one), and keeps each session (sequence
//! numbers, the resend store) across reconnects, as a real liquidity provider does, so a
//! recorder that drops and comes back gets the missed messages through the FIX resend flow,
//! market data resent as itself with PossDupFlag. An identity is logged on once at a time: a
//! second connection for it is closed. After Logon nothing is streamed until a
//! MarketDataRequest (35=V): 263=0 asks a snapshot, 263=1 a snapshot then updates, 263=2 ends
//! the subscription its MDReqID opened; unknown symbols get a 35=Y. Streaming is a 35=W
//! snapshot per symbol, then 35=X incrementals (sometimes several entries, sometimes a
//! Delete) at the asked rate. When a session ends (Logout, a fatal error) the TCP connection
//! is closed.
//!
//! Optionally it journals, as tick JSON Lines, the top of book each sent message implies:
//! exactly what a correct recorder must store. A benchmark may instead give it a [`Script`]:
//! the incrementals made ahead of time, replayed in a loop.

use std::collections::HashMap;
use std::io::{BufWriter, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::decode::{Decoder, HeaderView};
use super::encode::{Header, MessageBuilder};
use super::frame::{self, Fields, FrameError};
use super::session::{Inbound, ResendStore, Role, Session, SessionConfig, State};
use super::tags;
use crate::clock::{Clock, SystemClock};
use crate::format::jsonl::write_json_row;
use crate::shutdown::Shutdown;
use crate::synth::{symbol_names, Quote, QuoteGen};
use crate::tick::{TickRow, Timestamp};

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub symbols: usize,
    /// Market-data messages per second; `None` = as fast as the connection takes them.
    pub rate: Option<u64>,
    /// Stop (with a Logout) after this long; `None` = until shutdown.
    pub duration: Option<Duration>,
    pub sender_comp_id: String,
    /// Accept only this initiator (its SenderCompID); empty: whoever logs on.
    pub target_comp_id: String,
    /// Reset both sequence numbers to 1 on every Logon (141=Y).
    pub reset_on_logon: bool,
    /// Fractional digits of the timestamps written (FIX 4.4: milliseconds).
    pub time_precision: super::encode::TimePrecision,
    pub seed: u64,
    /// Probability that an incremental carries two or three symbols.
    pub multi_symbol_prob: f64,
    /// Probability that a side is deleted in an update.
    pub delete_prob: f64,
    /// Journal of implied ticks (JSON Lines), for tests and audits.
    pub journal: Option<PathBuf>,
    /// Test hook: after this many market-data messages on a connection, cut it and keep
    /// producing `outage_messages` that the initiator can only get by resend.
    pub drop_after: Option<u64>,
    pub outage_messages: u64,
    /// Application messages kept for resend.
    pub resend_capacity: usize,
    /// Incrementals encoded ahead, sent instead of making them as it goes (benchmarks; no
    /// journal with one: `run` refuses the pair).
    pub script: Option<Arc<Script>>,
}

impl Default for SimOptions {
    fn default() -> SimOptions {
        SimOptions {
            symbols: 8,
            rate: Some(1000),
            duration: None,
            sender_comp_id: "SIM".into(),
            target_comp_id: String::new(),
            reset_on_logon: false,
            time_precision: super::encode::TimePrecision::Millis,
            seed: 1,
            multi_symbol_prob: 0.2,
            delete_prob: 0.01,
            journal: None,
            drop_after: None,
            outage_messages: 0,
            resend_capacity: 2_000_000,
            script: None,
        }
    }
}

/// What the simulator did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimReport {
    pub connections: u64,
    pub md_messages: u64,
    pub ticks_implied: u64,
    pub rejects_sent: u64,
}

/// A simulator on a free 127.0.0.1 port, on a thread of its own: its address, the thread
/// (which returns the report) and the latch that stops it.
pub fn spawn_local(
    opts: SimOptions,
) -> std::io::Result<(
    std::net::SocketAddr,
    std::thread::JoinHandle<std::io::Result<SimReport>>,
    Shutdown,
)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let stop = Shutdown::new();
    let thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("tickrec-sim".into())
            .spawn(move || run(listener, opts, stop))?
    };
    Ok((addr, thread, stop))
}

/// What the sessions of one simulator share.
struct Shared {
    opts: SimOptions,
    started: Instant,
    shutdown: Shutdown,
    report: std::sync::Mutex<SimReport>,
    journal: Option<std::sync::Mutex<BufWriter<std::fs::File>>>,
    /// One simulator per identity, kept across its reconnects; locked while logged on.
    sessions: std::sync::Mutex<HashMap<String, Arc<std::sync::Mutex<Simulator>>>>,
}

impl Shared {
    fn finished(&self) -> bool {
        self.shutdown.is_requested()
            || self
                .opts
                .duration
                .is_some_and(|d| self.started.elapsed() >= d)
    }

    fn report(&self) -> std::sync::MutexGuard<'_, SimReport> {
        self.report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Market-data messages sent in one burst and the ticks they imply, added to the report once
/// (a lock a message was ~2 % of the sending thread).
#[derive(Debug, Default)]
struct Burst {
    messages: u64,
    ticks: u64,
}

impl Burst {
    fn add(&mut self, ticks: u64) {
        self.messages += 1;
        self.ticks += ticks;
    }

    /// Adds the burst to the report and starts a new one.
    fn count(&mut self, shared: &Shared) {
        if self.messages > 0 {
            let mut report = shared.report();
            report.md_messages += self.messages;
            report.ticks_implied += self.ticks;
        }
        *self = Burst::default();
    }
}

/// Runs the simulator on `listener` until `shutdown` or the configured duration.
pub fn run(
    listener: TcpListener,
    opts: SimOptions,
    shutdown: Shutdown,
) -> std::io::Result<SimReport> {
    let refused = match &opts.script {
        Some(_) if opts.journal.is_some() => {
            Some("a simulator replaying a script keeps no journal (its books do not move)")
        }
        Some(s) if s.symbols != opts.symbols.max(1) => {
            Some("the script was made for another number of symbols")
        }
        _ => None,
    };
    if let Some(why) = refused {
        return Err(std::io::Error::new(ErrorKind::InvalidInput, why));
    }
    let journal = match &opts.journal {
        Some(p) => Some(std::sync::Mutex::new(BufWriter::new(
            std::fs::File::create(p)?,
        ))),
        None => None,
    };
    let shared = Arc::new(Shared {
        opts,
        started: Instant::now(),
        shutdown,
        report: std::sync::Mutex::new(SimReport::default()),
        journal,
        sessions: std::sync::Mutex::new(HashMap::new()),
    });
    listener.set_nonblocking(true)?;
    let mut connections: Vec<std::thread::JoinHandle<()>> = Vec::new();
    while !shared.finished() {
        match listener.accept() {
            Ok((stream, peer)) => {
                tracing::info!(%peer, "initiator connected");
                shared.report().connections += 1;
                let shared = Arc::clone(&shared);
                connections.retain(|c| !c.is_finished());
                connections.push(
                    std::thread::Builder::new()
                        .name("tickrec-sim-conn".into())
                        .spawn(move || {
                            if let Err(e) = serve_connection(stream, &shared) {
                                tracing::info!(%peer, error = %e, "initiator connection ended");
                            }
                        })?,
                );
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
    for c in connections {
        let _ = c.join();
    }
    if let Some(j) = &shared.journal {
        j.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .flush()?;
    }
    let report = *shared.report();
    Ok(report)
}

/// Reads the first message (the Logon), finds the session of its identity and serves the
/// connection with it; an identity already logged on elsewhere gets the connection closed.
fn serve_connection(stream: TcpStream, shared: &Arc<Shared>) -> std::io::Result<()> {
    let closer = stream.try_clone()?;
    let inbound = spawn_reader(stream.try_clone()?)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        match inbound.recv_timeout(Duration::from_millis(100)) {
            Ok(m) => break m,
            Err(crossbeam_channel::RecvTimeoutError::Timeout)
                if Instant::now() < deadline && !shared.finished() => {}
            Err(_) => {
                let _ = closer.shutdown(std::net::Shutdown::Both);
                return Ok(());
            }
        }
    };
    let identity = super::decode::parse_header(&first)
        .map(|h| String::from_utf8_lossy(h.sender).into_owned())
        .unwrap_or_default();
    let sim = {
        let mut sessions = shared
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(
            sessions
                .entry(identity.clone())
                .or_insert_with(|| Arc::new(std::sync::Mutex::new(Simulator::new(shared)))),
        )
    };
    let _span = tracing::error_span!("sim", session = %identity).entered();
    let result = match sim.try_lock() {
        Ok(mut sim) => sim.serve(stream, inbound, first),
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().serve(stream, inbound, first),
        Err(std::sync::TryLockError::WouldBlock) => {
            // FIX: a second Logon of an identity already logged on is refused by disconnecting.
            tracing::warn!(%identity, "already logged on: connection refused");
            Ok(())
        }
    };
    let _ = closer.shutdown(std::net::Shutdown::Both);
    result
}

struct Simulator {
    opts: SimOptions,
    session: Session,
    feed: Feed,
    /// The next message of `opts.script` (when set).
    script_at: usize,
    subscribed: Vec<usize>,
    /// MDReqID → the symbols that request subscribed (263=2 ends them).
    requests: HashMap<String, Vec<usize>>,
    shared: Arc<Shared>,
    clock: SystemClock,
    decoder: Decoder,
}

impl Simulator {
    fn new(shared: &Arc<Shared>) -> Simulator {
        let opts = shared.opts.clone();
        let feed = Feed::new(&opts);
        let session = Session::new(
            SessionConfig {
                reset_on_logon: opts.reset_on_logon,
                time_precision: opts.time_precision,
                validation: super::session::Validation::Full,
                ..SessionConfig::new(&opts.sender_comp_id, &opts.target_comp_id)
            },
            Role::Acceptor,
            1,
            1,
            ResendStore::new(opts.resend_capacity),
        );
        Simulator {
            opts,
            session,
            feed,
            script_at: 0,
            subscribed: Vec::new(),
            requests: HashMap::new(),
            shared: Arc::clone(shared),
            clock: SystemClock,
            decoder: Decoder::new(),
        }
    }

    /// The clock as the counterparty reads it back from SendingTime (cut to the session's
    /// timestamp precision), so that what is journaled is exactly what a recorder can store.
    fn now(&self) -> Timestamp {
        self.session
            .config()
            .time_precision
            .truncate(self.clock.now())
    }

    /// Serves one connection until its session ends; `first` is its first message. The
    /// caller closes the socket (the reader thread holds a clone of it).
    ///
    /// Long (~100 lines) on purpose: the simulated acceptor's session loop, one set of locals per
    /// connection.
    fn serve(
        &mut self,
        mut stream: TcpStream,
        inbound: crossbeam_channel::Receiver<Vec<u8>>,
        first: Vec<u8>,
    ) -> std::io::Result<()> {
        stream.set_nodelay(true)?;
        self.session.on_connect(self.now());
        self.subscribed.clear();
        self.requests.clear();
        let mut stream_started = Instant::now();
        let mut md_this_connection = 0u64;
        let mut sent_in_stream = 0u64;
        let mut logout_sent: Option<Instant> = None;
        let mut pending = Some(first);
        loop {
            loop {
                let msg = match pending.take().map_or_else(|| inbound.try_recv(), Ok) {
                    Ok(m) => m,
                    Err(crossbeam_channel::TryRecvError::Empty) => break,
                    Err(crossbeam_channel::TryRecvError::Disconnected) => {
                        self.session.on_disconnect();
                        return Ok(());
                    }
                };
                let mut next = Some(msg);
                // The message, then any received past a gap that is now in sequence.
                while let Some(msg) = next.take() {
                    match self.on_inbound(&msg)? {
                        Some(Inbound::Deliver) if msg_type(&msg) == b"V" => {
                            let was_streaming = !self.subscribed.is_empty();
                            self.on_market_data_request(&msg);
                            if !was_streaming {
                                stream_started = Instant::now();
                                sent_in_stream = 0;
                            }
                        }
                        Some(Inbound::Deliver) => {
                            // A market-data acceptor takes no orders or other business.
                            let now = self.now();
                            self.session.reject_unsupported(&msg, now);
                        }
                        _ => {}
                    }
                    next = self.session.next_queued();
                }
            }
            if self.session.state() == State::Closed {
                self.flush(&mut stream)?;
                return Ok(());
            }
            let now = self.now();
            if let Err(d) = self.session.on_timer(now) {
                self.flush(&mut stream)?;
                tracing::info!(reason = %d.0, "session closed by timer");
                return Ok(());
            }
            if self.shared.finished() && logout_sent.is_none() {
                self.session.logout("simulation over", now);
                logout_sent = Some(Instant::now());
            }
            if logout_sent.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) {
                self.session.on_disconnect();
                return Ok(());
            }
            let mut busy = false;
            if logout_sent.is_none() && !self.subscribed.is_empty() && !self.session.resending() {
                let budget = match self.opts.rate {
                    Some(rate) => {
                        let due = (stream_started.elapsed().as_secs_f64() * rate as f64) as u64;
                        due.saturating_sub(sent_in_stream).min(2_000)
                    }
                    None => 512,
                };
                // One clock read a burst: its messages leave in one write, at one time. (A read
                // a message took a sixth of this thread's time in `bench --only writer`'s end
                // to end, under `perf`.)
                let now = self.now();
                let mut burst = Burst::default();
                for _ in 0..budget {
                    burst.add(self.send_incremental(now));
                    sent_in_stream += 1;
                    md_this_connection += 1;
                    if self.opts.drop_after == Some(md_this_connection) {
                        burst.count(&self.shared);
                        self.flush(&mut stream)?;
                        let _ = stream.shutdown(std::net::Shutdown::Both);
                        self.session.on_disconnect();
                        // Messages "sent" into the dead connection: only a resend delivers them.
                        let mut lost = Burst::default();
                        for _ in 0..self.opts.outage_messages {
                            lost.add(self.send_incremental(now));
                        }
                        lost.count(&self.shared);
                        self.session.take_output().clear();
                        self.opts.drop_after = None;
                        tracing::info!(
                            outage = self.opts.outage_messages,
                            "connection cut (test hook)"
                        );
                        return Ok(());
                    }
                }
                // Counted before the write: a tick the recorder sees is one the report has.
                burst.count(&self.shared);
                busy = budget > 0;
            }
            self.flush(&mut stream)?;
            if !busy {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }

    fn on_inbound(&mut self, msg: &[u8]) -> std::io::Result<Option<Inbound>> {
        let header: HeaderView<'_> = match self.decoder.decode(msg) {
            Ok(d) => {
                let h = d.header;
                self.decoder.recycle(d.entries);
                h
            }
            Err(e) => match super::decode::parse_header(msg) {
                // The session answers what the dictionary finds wrong with it.
                Some(h) => h,
                None => {
                    tracing::warn!(error = %e, "undecodable message from the initiator");
                    return Ok(None);
                }
            },
        };
        match self.session.on_message(&header, msg, self.now()) {
            Ok(i) => Ok(Some(i)),
            Err(d) => {
                tracing::info!(reason = %d.0, "session ended");
                Ok(None)
            }
        }
    }

    /// A MarketDataRequest: 263=0 a snapshot of the symbols it names, 263=1 a snapshot and
    /// then their updates, 263=2 the end of the subscription its MDReqID opened (or of the
    /// symbols it names). Unknown symbols get a 35=Y.
    fn on_market_data_request(&mut self, msg: &[u8]) {
        let req_id = super::session::field_text(msg, tags::MD_REQ_ID);
        let kind = super::session::field_text(msg, tags::SUBSCRIPTION_REQUEST_TYPE);
        let mut named = Vec::new();
        let mut unknown = Vec::new();
        for f in Fields::new(msg).filter_map(Result::ok) {
            if f.0 == tags::SYMBOL {
                let name = String::from_utf8_lossy(f.1).into_owned();
                match self.feed.names.iter().position(|n| *n == name) {
                    Some(i) if !named.contains(&i) => named.push(i),
                    Some(_) => {}
                    None => unknown.push(name),
                }
            }
        }
        if kind == "2" {
            let ended = match self.requests.remove(&req_id) {
                Some(symbols) if named.is_empty() => symbols,
                _ => named,
            };
            self.subscribed.retain(|i| !ended.contains(i));
            tracing::info!(md_req_id = %req_id, symbols = ended.len(), "unsubscribed");
            return;
        }
        for name in unknown {
            self.shared.report().rejects_sent += 1;
            let now = self.now();
            self.session.send_app("Y", now, |b| {
                b.field_str(tags::MD_REQ_ID, &req_id)
                    .field_str(tags::MD_REQ_REJ_REASON, "0")
                    .field_str(tags::TEXT, &format!("unknown symbol {name}"));
            });
        }
        self.send_snapshots(&named);
        if kind != "0" {
            for &i in &named {
                if !self.subscribed.contains(&i) {
                    self.subscribed.push(i);
                }
            }
            self.requests.insert(req_id, named);
        }
    }

    fn send_snapshots(&mut self, symbols: &[usize]) {
        for &i in symbols {
            let q = self.feed.books[i];
            let now = self.now();
            let name = self.feed.names[i].clone();
            self.session.send_app("W", now, |b| {
                b.field_str(tags::SYMBOL, &name);
                let n = u64::from(q.bid.is_some()) + u64::from(q.ask.is_some());
                b.field_u64(tags::NO_MD_ENTRIES, n);
                for (side, px, size) in [("0", q.bid, q.bid_size), ("1", q.ask, q.ask_size)] {
                    if let Some(px) = px {
                        b.field_str(tags::MD_ENTRY_TYPE, side)
                            .field_decimal(tags::MD_ENTRY_PX, px);
                        if let Some(sz) = size {
                            b.field_decimal(tags::MD_ENTRY_SIZE, sz);
                        }
                    }
                }
            });
            self.journal_tick(i, now);
        }
        let mut report = self.shared.report();
        report.md_messages += symbols.len() as u64;
        report.ticks_implied += symbols.len() as u64;
    }

    /// Sends one 35=X stamped `now`; returns the ticks it implies (the caller counts them).
    fn send_incremental(&mut self, now: Timestamp) -> u64 {
        if let Some(script) = self.opts.script.as_deref() {
            if self.subscribed.len() == script.symbols {
                let (fields, ticks) = script.message(self.script_at);
                self.script_at = (self.script_at + 1) % script.len();
                self.session.send_app("X", now, |b| {
                    b.raw_fields(fields);
                });
                return u64::from(ticks);
            }
        }
        let inc = self.feed.next_incremental(&self.subscribed);
        let feed = &self.feed;
        self.session.send_app("X", now, |b| feed.encode(&inc, b));
        for &i in inc.symbols() {
            self.journal_tick(i, now);
        }
        inc.symbols().len() as u64
    }

    /// Journals the tick of symbol `i` as sent at `at` (when a journal is kept).
    fn journal_tick(&mut self, i: usize, at: Timestamp) {
        let Some(j) = &self.shared.journal else {
            return;
        };
        let mut j = j.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let q = self.feed.books[i];
        let row = TickRow {
            seq: None,
            symbol: self.feed.names[i].as_str().into(),
            source: self.opts.sender_comp_id.as_str().into(),
            ts_event: at,
            ts_recv: at,
            bid: q.bid,
            ask: q.ask,
            bid_size: q.bid_size,
            ask_size: q.ask_size,
        };
        if let Err(e) = write_json_row(&mut *j, &row, None) {
            tracing::error!(error = %e, "journal write failed");
        }
    }

    fn flush(&mut self, stream: &mut TcpStream) -> std::io::Result<()> {
        let out = self.session.take_output();
        if out.is_empty() {
            return Ok(());
        }
        let r = stream.write_all(out);
        out.clear();
        r
    }
}

/// The random walk the simulator streams: each symbol's top of book as sent, and the draws
/// that pick what the next incremental touches. The live simulator and a [`Script`] made from
/// the same options produce the same messages.
struct Feed {
    names: Vec<String>,
    gen: QuoteGen,
    rng: SmallRng,
    /// Current top of book per symbol, as sent.
    books: Vec<Quote>,
    multi_symbol_prob: f64,
    delete_prob: f64,
}

/// One 35=X incremental: the symbols it touches and its entries (action, side, symbol index,
/// that symbol's quote after it).
struct Incremental {
    touched: [usize; 3],
    n_symbols: usize,
    entries: [(u8, u8, usize, Quote); 6],
    n_entries: usize,
}

impl Incremental {
    fn symbols(&self) -> &[usize] {
        &self.touched[..self.n_symbols]
    }
}

impl Feed {
    fn new(opts: &SimOptions) -> Feed {
        let names = symbol_names(opts.symbols.max(1));
        let mut gen = QuoteGen::new(names.len(), opts.seed).with_clear_probability(0.0);
        let books = (0..names.len()).map(|i| gen.next_quote(i)).collect();
        Feed {
            names,
            gen,
            rng: SmallRng::seed_from_u64(opts.seed ^ 0x5eed),
            books,
            multi_symbol_prob: opts.multi_symbol_prob,
            delete_prob: opts.delete_prob,
        }
    }

    /// The next incremental over `subscribed` (not empty), its symbols' books moved on.
    fn next_incremental(&mut self, subscribed: &[usize]) -> Incremental {
        let n_symbols = if subscribed.len() > 1 && self.rng.gen_bool(self.multi_symbol_prob) {
            self.rng.gen_range(2..=3.min(subscribed.len()))
        } else {
            1
        };
        let mut touched: [usize; 3] = [usize::MAX; 3];
        for k in 0..n_symbols {
            loop {
                let i = subscribed[self.rng.gen_range(0..subscribed.len())];
                if !touched[..k].contains(&i) {
                    touched[k] = i;
                    break;
                }
            }
        }
        let mut entries: [(u8, u8, usize, Quote); 6] = [(0, 0, 0, self.books[0]); 6];
        let mut n = 0;
        for &i in touched.iter().take(n_symbols) {
            let old = self.books[i];
            let mut new = self.gen.next_quote(i);
            for (side, del) in [
                (b'0', self.rng.gen_bool(self.delete_prob)),
                (b'1', self.rng.gen_bool(self.delete_prob)),
            ] {
                let had = if side == b'0' {
                    old.bid.is_some()
                } else {
                    old.ask.is_some()
                };
                if del && had {
                    if side == b'0' {
                        new.bid = None;
                        new.bid_size = None;
                    } else {
                        new.ask = None;
                        new.ask_size = None;
                    }
                    entries[n] = (b'2', side, i, new);
                } else {
                    entries[n] = (if had { b'1' } else { b'0' }, side, i, new);
                }
                n += 1;
            }
            self.books[i] = new;
        }
        Incremental {
            touched,
            n_symbols,
            entries,
            n_entries: n,
        }
    }

    /// `inc`'s application fields, after the header `b` was started with.
    fn encode(&self, inc: &Incremental, b: &mut MessageBuilder) {
        b.field_u64(tags::NO_MD_ENTRIES, inc.n_entries as u64);
        for &(action, side, i, q) in &inc.entries[..inc.n_entries] {
            b.field(tags::MD_UPDATE_ACTION, &[action])
                .field(tags::MD_ENTRY_TYPE, &[side])
                .field_str(tags::SYMBOL, &self.names[i]);
            if action != b'2' {
                let (px, sz) = if side == b'0' {
                    (q.bid, q.bid_size)
                } else {
                    (q.ask, q.ask_size)
                };
                if let Some(px) = px {
                    b.field_decimal(tags::MD_ENTRY_PX, px);
                }
                if let Some(sz) = sz {
                    b.field_decimal(tags::MD_ENTRY_SIZE, sz);
                }
            }
        }
    }
}

/// Market data encoded ahead of time, for a benchmark whose clock should not count making it:
/// the application fields of the 35=X incrementals the simulator would stream over all of its
/// symbols, from the same options and seed, sent in a loop. The header (MsgSeqNum,
/// SendingTime), BodyLength and CheckSum are still made as each is sent, the session keeps it
/// for resend, and the snapshots on subscription are live. Used only when the initiator
/// subscribes to every symbol; otherwise the simulator makes its messages as it goes.
pub struct Script {
    fields: Vec<u8>,
    /// Per message: where its fields end in `fields`, and how many symbols (ticks) it touches.
    messages: Vec<(usize, u8)>,
    symbols: usize,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script")
            .field("messages", &self.messages.len())
            .field("bytes", &self.fields.len())
            .field("symbols", &self.symbols)
            .finish()
    }
}

impl Script {
    /// The first `messages` (at least one) incrementals `opts` makes once every symbol is
    /// subscribed.
    pub fn generate(opts: &SimOptions, messages: usize) -> Script {
        let mut feed = Feed::new(opts);
        let all: Vec<usize> = (0..feed.names.len()).collect();
        let mut b = MessageBuilder::new();
        let header = Header {
            msg_type: "X",
            sender: "",
            target: "",
            seq: 1,
            sending_time: Timestamp(0),
            poss_dup: None,
        };
        let mut script = Script {
            fields: Vec::new(),
            messages: Vec::with_capacity(messages.max(1)),
            symbols: all.len(),
        };
        for _ in 0..messages.max(1) {
            let inc = feed.next_incremental(&all);
            b.start(&header);
            feed.encode(&inc, &mut b);
            script.fields.extend_from_slice(b.body_fields());
            // At most three symbols a message.
            script
                .messages
                .push((script.fields.len(), inc.n_symbols as u8));
        }
        script
    }

    /// Messages in the loop.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Never: a script has at least one message.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Message `i`'s fields and its ticks.
    fn message(&self, i: usize) -> (&[u8], u8) {
        let start = i.checked_sub(1).map_or(0, |p| self.messages[p].0);
        let (end, ticks) = self.messages[i];
        (&self.fields[start..end], ticks)
    }
}

/// Reads and frames inbound messages on a thread of its own until the connection closes.
fn spawn_reader(mut stream: TcpStream) -> std::io::Result<crossbeam_channel::Receiver<Vec<u8>>> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    std::thread::Builder::new()
        .name("tickrec-sim-reader".into())
        .spawn(move || {
            // Every line names the connection it concerns.
            let _span = tracing::error_span!("sim-reader", %peer).entered();
            let mut buf = vec![0u8; 1 << 16];
            let mut filled = 0;
            let mut framed_any = false;
            loop {
                if filled == buf.len() {
                    buf.resize(buf.len() * 2, 0);
                }
                match stream.read(&mut buf[filled..]) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => filled += n,
                }
                let mut start = 0;
                loop {
                    match frame::check(&buf[start..filled]) {
                        Ok(n) => {
                            if tx.send(buf[start..start + n].to_vec()).is_err() {
                                return;
                            }
                            framed_any = true;
                            start += n;
                        }
                        Err(FrameError::Incomplete) => break,
                        Err(FrameError::Invalid(why)) if !framed_any => {
                            // A garbled first message (the Logon): disconnect, as FIX
                            // prescribes; dropping the channel ends the connection.
                            tracing::warn!(why, "garbled Logon from the initiator: disconnecting");
                            return;
                        }
                        Err(FrameError::Invalid(why)) => {
                            tracing::warn!(why, "framing error from the initiator");
                            start += frame::resync(&buf[start..filled]);
                        }
                    }
                }
                buf.copy_within(start..filled, 0);
                filled -= start;
            }
        })?;
    Ok(rx)
}

fn msg_type(msg: &[u8]) -> &[u8] {
    super::session::field_bytes(msg, tags::MSG_TYPE).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> SimOptions {
        SimOptions {
            symbols: 5,
            multi_symbol_prob: 0.5,
            delete_prob: 0.2,
            ..SimOptions::default()
        }
    }

    #[test]
    fn a_script_holds_the_messages_the_live_feed_makes() {
        let script = Script::generate(&opts(), 300);
        assert_eq!(script.len(), 300);
        let mut feed = Feed::new(&opts());
        let all: Vec<usize> = (0..5).collect();
        let mut b = MessageBuilder::new();
        let (mut several, mut deletes) = (0, 0);
        for i in 0..300 {
            let inc = feed.next_incremental(&all);
            b.start(&Header {
                msg_type: "X",
                sender: "SIM",
                target: "REC",
                seq: i as u64 + 1,
                sending_time: Timestamp(0),
                poss_dup: None,
            });
            feed.encode(&inc, &mut b);
            let (fields, ticks) = script.message(i);
            assert_eq!(fields, b.body_fields(), "message {i}");
            assert_eq!(usize::from(ticks), inc.symbols().len(), "message {i}");
            several += usize::from(ticks > 1);
            deletes += usize::from(fields.windows(6).any(|w| w == b"\x01279=2"));
        }
        // The draws the options ask for are in it.
        assert!(several > 50 && deletes > 10, "{several} {deletes}");
    }

    #[test]
    fn a_scripted_simulator_keeps_no_journal() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let opts = SimOptions {
            script: Some(Arc::new(Script::generate(&opts(), 10))),
            journal: Some(PathBuf::from("never-written.jsonl")),
            ..opts()
        };
        let err = run(listener, opts, Shutdown::new()).expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(!std::path::Path::new("never-written.jsonl").exists());
    }

    #[test]
    fn a_script_made_for_other_symbols_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let opts = SimOptions {
            script: Some(Arc::new(Script::generate(&opts(), 10))),
            symbols: 6,
            ..opts()
        };
        let err = run(listener, opts, Shutdown::new()).expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
}
