//! The initiator gateway: one thread per liquidity-provider session, from TCP bytes to
//! `Recorder::store_tick`.
//!
//! Per connection: Logon, then a MarketDataRequest for the configured symbols, then W/X
//! messages decoded straight into ticks. A drop or a refused Logon is followed by a reconnect
//! with doubling backoff. Sequence numbers survive restarts: the inbound one is committed with
//! the ticks (`fix_sessions` in the day files), the outbound one is written to
//! `<db>/sessions/<Sender>-<Target>.seq` before any message that uses it leaves.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::decode::{Decoded, Decoder, MarketData};
use super::frame::{self, FrameError};
use super::session::{
    field_text, Disconnect, Inbound, ResendStore, Role, Session, SessionConfig, State,
};
use super::tags;
use crate::clock::Clock;
use crate::pipeline::{Latency, Recorder, StoreTickError};
use crate::shutdown::Shutdown;
use crate::store::reader::Store;
use crate::tick::{Tick, Timestamp};

/// Settings of one initiator session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayOptions {
    /// `host:port` of the counterparty's acceptor.
    pub connect: String,
    pub session: SessionConfig,
    pub symbols: Vec<String>,
    /// Source name stamped on the ticks (default: the TargetCompID).
    pub source: String,
    pub reconnect_interval: Duration,
    pub max_reconnect_interval: Duration,
    /// Base folder of the day files; the outbound sequence file lives under `sessions/`.
    pub db_path: PathBuf,
}

impl GatewayOptions {
    /// The session's identity as an origin name: `fix:<BeginString>:<Sender>-><Target>`. Its
    /// inbound position is committed with its ticks under this name (see `tick::MsgRef`).
    pub fn origin(&self) -> String {
        format!(
            "fix:{}:{}->{}",
            super::BEGIN_STRING,
            self.session.sender_comp_id,
            self.session.target_comp_id
        )
    }

    /// The inbound MsgSeqNum to expect next, as committed: the session's mark, or for a store
    /// written before marks existed, the legacy mark of its `source`.
    pub fn recovered_next_inbound(
        &self,
        store: &Store,
    ) -> Result<Option<u64>, crate::store::StoreError> {
        match store.next_position(&self.origin())? {
            Some(n) => Ok(Some(n)),
            None => store.legacy_session_next_inbound(&self.source),
        }
    }

    /// A session to a simulator started by this process (TargetCompID `SIM`): both sides
    /// start at 1, since that simulator has no history.
    pub fn to_local_simulator(
        addr: std::net::SocketAddr,
        sender: &str,
        symbols: Vec<String>,
        db_path: PathBuf,
    ) -> GatewayOptions {
        GatewayOptions {
            connect: addr.to_string(),
            session: SessionConfig {
                reset_on_logon: true,
                ..SessionConfig::new(sender, "SIM")
            },
            symbols,
            source: "SIM".into(),
            reconnect_interval: Duration::from_millis(100),
            max_reconnect_interval: Duration::from_secs(1),
            db_path,
        }
    }
}

/// Live status of one session, for stats.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SessionStatus {
    pub name: String,
    /// The `source` its ticks carry.
    pub source: String,
    pub state: String,
    pub last_message: Option<Timestamp>,
    pub next_inbound_seq: u64,
    pub next_outbound_seq: u64,
    pub messages_in: u64,
    pub market_data_messages: u64,
    pub ticks: u64,
    pub md_rejects: u64,
    pub session_rejects: u64,
    /// Session-level Rejects sent (e.g. SendingTime accuracy).
    pub rejects_sent: u64,
    pub malformed: u64,
    pub framing_errors: u64,
    pub connects: u64,
    /// Logons completed since start.
    pub logons: u64,
    pub resend_requests: u64,
    pub duplicates_ignored: u64,
    pub last_error: Option<String>,
}

impl SessionStatus {
    /// Logged on (or filling a gap): its quotes are live.
    pub fn is_up(&self) -> bool {
        self.state == "logged on" || self.state == "resending"
    }
}

impl std::fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "session {}: {} | in-seq {} out-seq {} | msgs {} md {} ticks {} | rejects md {} session {} sent {} | malformed {} | connects {} resends {} dups {}",
            self.name,
            self.state,
            self.next_inbound_seq,
            self.next_outbound_seq,
            self.messages_in,
            self.market_data_messages,
            self.ticks,
            self.md_rejects,
            self.session_rejects,
            self.rejects_sent,
            self.malformed,
            self.connects,
            self.resend_requests,
            self.duplicates_ignored
        )?;
        if let Some(m) = self.last_message {
            let now = crate::clock::Clock::now(&crate::clock::SystemClock);
            let age = now.0.saturating_sub(m.0) as f64 / 1e9;
            write!(f, " | last message {m} ({age:.1}s ago)")?;
        }
        if let Some(e) = &self.last_error {
            write!(f, " | last error: {e}")?;
        }
        Ok(())
    }
}

/// Shared handle on a session's status.
pub type StatusHandle = Arc<Mutex<SessionStatus>>;

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    #[error("session {session}: {source}")]
    Name {
        session: String,
        #[source]
        source: crate::intern::NameError,
    },
    #[error("session {session}: recovering the inbound MsgSeqNum: {source}")]
    Recovery {
        session: String,
        #[source]
        source: crate::store::StoreError,
    },
    #[error("session {session}: {source}")]
    SeqFile {
        session: String,
        #[source]
        source: SeqFileError,
    },
    #[error("session {session}: starting its thread: {source}")]
    Thread {
        session: String,
        #[source]
        source: std::io::Error,
    },
}

/// Starts the gateway thread. It runs until `shutdown`, then logs out and returns. Everything
/// that can fail before the first connection (names, recovered sequence numbers) fails here,
/// so that a session that cannot start stops `record` at once.
pub fn spawn(
    opts: GatewayOptions,
    recorder: Arc<Recorder>,
    store: Store,
    shutdown: Shutdown,
    clock: Arc<dyn Clock>,
    feed_latency: Arc<Latency>,
) -> Result<(JoinHandle<()>, StatusHandle), GatewayError> {
    let name = format!(
        "{}->{}",
        opts.session.sender_comp_id, opts.session.target_comp_id
    );
    let status = Arc::new(Mutex::new(SessionStatus {
        name: name.clone(),
        source: opts.source.clone(),
        state: "starting".into(),
        ..SessionStatus::default()
    }));
    let thread_name = format!("tickrec-fix-{}", opts.session.target_comp_id);
    let mut gw = Gateway::new(opts, recorder, &store, shutdown, clock, status.clone())?;
    gw.feed_latency = feed_latency;
    let handle = std::thread::Builder::new()
        .name(thread_name)
        .spawn(move || gw.run())
        .map_err(|source| GatewayError::Thread {
            session: name,
            source,
        })?;
    Ok((handle, status))
}

fn lock(s: &StatusHandle) -> std::sync::MutexGuard<'_, SessionStatus> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

struct Gateway {
    opts: GatewayOptions,
    recorder: Arc<Recorder>,
    shutdown: Shutdown,
    clock: Arc<dyn Clock>,
    status: StatusHandle,
    session: Session,
    decoder: Decoder,
    md: MarketData,
    ticks: Vec<Tick>,
    seq_file: PathBuf,
    persisted_out: u64,
    md_requests: u64,
    /// Receive time minus SendingTime of market-data messages (this thread's own histogram).
    feed_latency: Arc<Latency>,
}

/// Bytes read per `read` call; the buffer grows only for a message larger than this.
const READ_CHUNK: usize = 1 << 16;
/// How long a read waits before timers run again.
const POLL: Duration = Duration::from_millis(50);

impl Gateway {
    fn new(
        opts: GatewayOptions,
        recorder: Arc<Recorder>,
        store: &Store,
        shutdown: Shutdown,
        clock: Arc<dyn Clock>,
        status: StatusHandle,
    ) -> Result<Gateway, GatewayError> {
        let session = lock(&status).name.clone();
        let names = recorder.names().clone();
        let name_err = |source| GatewayError::Name {
            session: session.clone(),
            source,
        };
        let source = names.source(&opts.source).map_err(name_err)?;
        let symbols = opts
            .symbols
            .iter()
            .map(|s| names.symbol(s).map(|id| (s.clone(), id)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(name_err)?;
        recorder.prepare_feed(
            source,
            &symbols.iter().map(|&(_, id)| id).collect::<Vec<_>>(),
        );
        let origin = names.origin(&opts.origin()).map_err(name_err)?;
        let next_in = opts
            .recovered_next_inbound(store)
            .map_err(|source| GatewayError::Recovery {
                session: session.clone(),
                source,
            })?
            .unwrap_or(1);
        let seq_file = opts.db_path.join("sessions").join(format!(
            "{}-{}.seq",
            safe_file_part(&opts.session.sender_comp_id),
            safe_file_part(&opts.session.target_comp_id)
        ));
        let next_out = read_seq_file(&seq_file)
            .map_err(|source| GatewayError::SeqFile {
                session: session.clone(),
                source,
            })?
            .unwrap_or(1);
        tracing::info!(session = %lock(&status).name, next_in, next_out, "session sequence numbers recovered");
        let session = Session::new(
            opts.session.clone(),
            Role::Initiator,
            next_out,
            next_in,
            // Its own application messages (the MarketDataRequest above all) stay resendable:
            // an LP that asks for a resend past its Logon must get the request itself, not a
            // gap fill over it, or it never subscribes (seen against QuickFIX after an outage).
            ResendStore::new(1024),
        );
        Ok(Gateway {
            md: MarketData::new(source, origin, &symbols),
            opts,
            recorder,
            shutdown,
            clock,
            status,
            session,
            decoder: Decoder::new(),
            ticks: Vec::with_capacity(64),
            seq_file,
            persisted_out: next_out,
            md_requests: 0,
            feed_latency: Arc::new(Latency::default()),
        })
    }

    fn run(&mut self) {
        // Every line this thread logs names its session.
        let name = lock(&self.status).name.clone();
        let _span = tracing::error_span!("fix", session = %name).entered();
        let mut backoff = self.opts.reconnect_interval;
        while !self.shutdown.is_requested() {
            self.set_state("connecting", None);
            let stream = match connect(&self.opts.connect) {
                Ok(s) => s,
                Err(e) => {
                    let why = format!("connect to {}: {e}", self.opts.connect);
                    tracing::warn!(error = %why, retry_in = ?backoff, "FIX connect failed");
                    self.set_state("backing off", Some(why));
                    self.shutdown.wait_timeout(backoff);
                    backoff = (backoff * 2).min(self.opts.max_reconnect_interval);
                    continue;
                }
            };
            lock(&self.status).connects += 1;
            let logged_on = self.serve(stream);
            if logged_on {
                backoff = self.opts.reconnect_interval;
            }
            if !self.shutdown.is_requested() {
                tracing::info!(retry_in = ?backoff, "FIX session down; reconnecting");
                self.set_state("backing off", None);
                self.shutdown.wait_timeout(backoff);
                if !logged_on {
                    backoff = (backoff * 2).min(self.opts.max_reconnect_interval);
                }
            }
        }
        self.set_state("stopped", None);
    }

    /// One connection, until it closes. Returns whether the Logon succeeded.
    ///
    /// Long (~110 lines) on purpose: the session's event loop, whose reads, timers and state share
    /// one set of locals per connection; each step is a method it calls.
    fn serve(&mut self, mut stream: TcpStream) -> bool {
        let mut logged_on = false;
        let mut buf = vec![0u8; READ_CHUNK * 2];
        let (mut start, mut filled) = (0usize, 0usize);
        let mut logout_started: Option<Instant> = None;
        self.session.on_connect(self.clock.now());
        self.set_state("logging on", None);
        let mut error: Option<String> = None;
        'conn: loop {
            if let Err(e) = self.flush(&mut stream) {
                error = Some(format!("write: {e}"));
                break;
            }
            if self.session.state() == State::Closed {
                break;
            }
            if self.shutdown.is_requested() && logout_started.is_none() {
                self.session
                    .logout("recorder shutting down", self.clock.now());
                self.set_state("logging out", None);
                logout_started = Some(Instant::now());
                continue;
            }
            if logout_started.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) {
                break;
            }
            // Read what is there (or wait up to POLL).
            if buf.len() - filled < READ_CHUNK {
                buf.copy_within(start..filled, 0);
                filled -= start;
                start = 0;
                if buf.len() - filled < READ_CHUNK {
                    buf.resize(filled + READ_CHUNK, 0);
                }
            }
            match stream.read(&mut buf[filled..]) {
                Ok(0) => {
                    error = Some("connection closed by the counterparty".into());
                    break;
                }
                Ok(n) => filled += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    error = Some(format!("read: {e}"));
                    break;
                }
            }
            let now = self.clock.now();
            loop {
                match frame::check(&buf[start..filled]) {
                    Ok(n) => {
                        let msg_range = start..start + n;
                        start += n;
                        let mut result = self.on_frame(&buf[msg_range], now);
                        loop {
                            match result {
                                Ok(Some(Inbound::LoggedOn)) => {
                                    logged_on = true;
                                    lock(&self.status).logons += 1;
                                    self.set_state("logged on", None);
                                    self.send_market_data_request(now);
                                }
                                Ok(_) => {}
                                Err(Disconnect(why)) => {
                                    let _ = self.flush(&mut stream);
                                    error = Some(why);
                                    break 'conn;
                                }
                            }
                            // Messages that arrived past a gap, now in sequence.
                            match self.session.next_queued() {
                                Some(queued) => result = self.on_frame(&queued, now),
                                None => break,
                            }
                        }
                    }
                    Err(FrameError::Incomplete) => break,
                    Err(FrameError::Invalid(why)) => {
                        let skip = frame::resync(&buf[start..filled]);
                        tracing::warn!(why, bytes = %printable(&buf[start..start + skip.min(200)]), "FIX framing error; skipping to the next message");
                        lock(&self.status).framing_errors += 1;
                        start += skip;
                    }
                }
            }
            if let Err(d) = self.session.on_timer(now) {
                let _ = self.flush(&mut stream);
                error = Some(d.0);
                break;
            }
            self.publish_counters();
        }
        self.session.on_disconnect();
        let _ = stream.shutdown(std::net::Shutdown::Both);
        if logout_started.is_some() {
            // We asked for the Logout; its answer is not an error.
            error = None;
        }
        if let Some(e) = &error {
            if !self.shutdown.is_requested() {
                tracing::warn!(error = %e, "FIX session closed");
            }
        }
        self.publish_counters();
        self.set_state("disconnected", error);
        logged_on
    }

    /// Handles one framed message. `Err` closes the connection.
    fn on_frame(&mut self, msg: &[u8], now: Timestamp) -> Result<Option<Inbound>, Disconnect> {
        let decoded = self.decoder.decode(msg);
        let (header, decode_error) = match &decoded {
            Ok(d) => (d.header, None),
            Err(e) => match super::decode::parse_header(msg) {
                Some(h) => (h, Some(e.to_string())),
                None => {
                    self.malformed(msg, &e.to_string());
                    return Ok(None);
                }
            },
        };
        if let Ok(d) = &decoded {
            // The ring and channel lines this message's ticks will be written to, asked for
            // now: the session's checks and the book's update run while they come in
            // (`Recorder::prefetch_ring`, `Recorder::prefetch_channel`).
            self.recorder.prefetch_channel();
            if let Some(sym) = d.snapshot_symbol.and_then(|s| self.md.symbol_id(s)) {
                self.recorder.prefetch_ring(sym);
            }
            for e in &d.entries {
                if let Some(sym) = self.md.symbol_id(e.symbol) {
                    self.recorder.prefetch_ring(sym);
                }
            }
        }
        let inbound = self.session.on_message(&header, msg, now)?;
        {
            let mut s = lock(&self.status);
            s.last_message = Some(now);
        }
        if inbound == Inbound::Deliver {
            match (decoded.as_ref(), decode_error) {
                (_, Some(why)) => self.malformed(msg, &why),
                (Ok(d), None) => self.on_application(d, msg, now),
                (Err(_), None) => {}
            }
        }
        if let Ok(d) = decoded {
            self.decoder.recycle(d.entries);
        }
        Ok(Some(inbound))
    }

    fn on_application(&mut self, d: &Decoded<'_>, raw: &[u8], now: Timestamp) {
        match d.header.msg_type {
            b"W" | b"X" => {
                let ts_event = match (
                    d.header.poss_dup,
                    d.header.orig_sending_time,
                    d.header.sending_time,
                ) {
                    (true, Some(orig), _) => orig,
                    (_, _, Some(sent)) => sent,
                    _ => {
                        self.malformed(raw, "missing SendingTime(52)");
                        return;
                    }
                };
                self.feed_latency
                    .record_ns(u64::try_from(now.0.saturating_sub(ts_event.0)).unwrap_or(0));
                self.ticks.clear();
                if let Err(e) = self.md.apply(d, ts_event, now, &mut self.ticks) {
                    self.malformed(raw, &e.to_string());
                    return;
                }
                // One SendingTime for the whole message: refuse it whole, before any tick.
                if let Some(t) = self.ticks.first() {
                    if let Err(e) = self.recorder.check_time_window(t.ts_event, t.ts_recv) {
                        self.malformed(raw, &e.to_string());
                        return;
                    }
                }
                let mut stored = 0;
                for t in &self.ticks {
                    match self.recorder.store_tick(*t) {
                        Ok(_) => stored += 1,
                        Err(StoreTickError::Closed) => break,
                        Err(e) => tracing::error!(error = %e, "tick refused"),
                    }
                }
                let mut s = lock(&self.status);
                s.market_data_messages += 1;
                s.ticks += stored;
            }
            b"Y" => {
                lock(&self.status).md_rejects += 1;
                tracing::warn!(
                    md_req_id = %field_text(raw, tags::MD_REQ_ID),
                    reason = %field_text(raw, tags::MD_REQ_REJ_REASON),
                    text = %field_text(raw, tags::TEXT),
                    "MarketDataRequest rejected (35=Y)"
                );
            }
            other => {
                tracing::debug!(msg_type = %String::from_utf8_lossy(other), "unsupported application message: BusinessMessageReject");
                self.session.reject_unsupported(raw, now);
            }
        }
    }

    fn malformed(&mut self, raw: &[u8], why: &str) {
        lock(&self.status).malformed += 1;
        tracing::warn!(why, message = %printable(raw), "malformed FIX message skipped");
    }

    fn send_market_data_request(&mut self, now: Timestamp) {
        self.md_requests += 1;
        let req_id = format!("tickrec-{}", self.md_requests);
        let symbols = self.opts.symbols.clone();
        self.session.send_app("V", now, |b| {
            b.field_str(tags::MD_REQ_ID, &req_id)
                .field_str(tags::SUBSCRIPTION_REQUEST_TYPE, "1")
                .field_u64(tags::MARKET_DEPTH, 1)
                .field_u64(tags::MD_UPDATE_TYPE, 1)
                .field_u64(tags::NO_MD_ENTRY_TYPES, 2)
                .field_str(tags::MD_ENTRY_TYPE, "0")
                .field_str(tags::MD_ENTRY_TYPE, "1")
                .field_u64(tags::NO_RELATED_SYM, symbols.len() as u64);
            for s in &symbols {
                b.field_str(tags::SYMBOL, s);
            }
        });
    }

    /// Persists the outbound sequence number, then writes queued bytes. Nothing is sent
    /// under a number that is not durable: a failed write of the `.seq` file fails the flush,
    /// and the connection with it (the next one retries).
    fn flush(&mut self, stream: &mut TcpStream) -> std::io::Result<()> {
        let next_out = self.session.next_out();
        if next_out != self.persisted_out {
            write_seq_file(&self.seq_file, next_out).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot persist the outbound MsgSeqNum to {}: {e}; not sending",
                        self.seq_file.display()
                    ),
                )
            })?;
            self.persisted_out = next_out;
        }
        let out = self.session.take_output();
        if out.is_empty() {
            return Ok(());
        }
        let result = stream.write_all(out);
        out.clear();
        result
    }

    fn set_state(&self, state: &str, error: Option<String>) {
        let mut s = lock(&self.status);
        s.state = state.into();
        if error.is_some() {
            s.last_error = error;
        }
    }

    fn publish_counters(&self) {
        let c = self.session.counters;
        let mut s = lock(&self.status);
        // "resending" while a gap is being filled, back to "logged on" after.
        match (self.session.resending(), s.state.as_str()) {
            (true, "logged on") => s.state = "resending".into(),
            (false, "resending") => s.state = "logged on".into(),
            _ => {}
        }
        s.next_inbound_seq = self.session.next_in();
        s.next_outbound_seq = self.session.next_out();
        s.messages_in = c.messages_in;
        s.resend_requests = c.resend_requests_sent;
        s.duplicates_ignored = c.duplicates_ignored;
        s.session_rejects = c.rejects_received;
        s.rejects_sent = c.rejects_sent;
    }
}

fn connect(addr: &str) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(ErrorKind::NotFound, "address resolves to nothing");
    for a in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, Duration::from_secs(5)) {
            Ok(s) => {
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(POLL))?;
                s.set_write_timeout(Some(Duration::from_secs(10)))?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A FIX message for a log line: separators shown as `|`.
pub fn printable(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).replace('\x01', "|")
}

fn safe_file_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Why a session's `.seq` file (its next outbound MsgSeqNum) cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeqFileError {
    #[error("{path}: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a sequence number: {source}")]
    NotANumber {
        path: PathBuf,
        #[source]
        source: std::num::ParseIntError,
    },
}

fn read_seq_file(path: &Path) -> Result<Option<u64>, SeqFileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            text.trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|source| SeqFileError::NotANumber {
                    path: path.to_owned(),
                    source,
                })
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SeqFileError::Unreadable {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Atomic and durable (see `fsutil::write_atomic`): the file holds the old or the new number.
fn write_seq_file(path: &Path, next_out: u64) -> std::io::Result<()> {
    crate::fsutil::write_atomic(path, |f| writeln!(f, "{next_out}"))
}
