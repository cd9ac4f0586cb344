//! In-memory fan-out of committed ticks to TCP subscribers (`record --publish HOST:PORT`).
//!
//! Protocol (JSON Lines both ways, one stable schema; see README, "Live subscribers"): the
//! subscriber sends one line, `{"symbols": ["EURUSD", "GBPUSD"]}` (`["*"]` for every symbol),
//! optionally with `"sources": ["LP1"]` (only those liquidity providers' ticks, and their
//! sessions' lines), with `"from": "DAY:SEQ"` (a `tickrec tail` cursor) or `"from_time": T`
//! (RFC 3339, as `tail --from-time`: from the first tick, in recording order, of T's day whose
//! event time is T or later). It receives
//! 1. `{"event":"subscribed","unknown":[…]}`, `unknown` the names asked that no session of
//!    this recorder records (a typo, most often: names are case-sensitive); with sources,
//!    also `"sources"` and `"unknown_sources"`; with a cursor or a time, also `"cursor"`,
//!    where its replay starts (what a time resolved to);
//! 2. with a cursor or a time: the committed ticks from there, read from the day files, then
//!    `{"event":"replayed","cursor":…}`;
//! 3. the snapshot: the latest tick of each of its symbols from each source (each liquidity
//!    provider quoting it), from the recorder's rings, a symbol's newest last (these rows have
//!    no `seq`: accepted, perhaps not yet committed), and the `{"event":"session",…}` line
//!    (below) of each FIX session that records one of them, then `{"event":"snapshot_end"}`.
//!    A snapshot row can be newer than the first live rows of its symbol and source (accepted
//!    before the subscriber joined, committed after; their `ts_recv_ns` is at or before the
//!    snapshot row's);
//! 4. every tick of its symbols as the writer commits it, rows of the `ticks_v` columns with
//!    their `seq` (the day is the UTC day of `ts_event`);
//! 5. after `[publish] heartbeat_secs` ([`HEARTBEAT_SECS`] by default) with nothing else sent,
//!    `{"event":"heartbeat","time":…,"cursor":…}`: the recorder's clock, and the cursor of the
//!    last commit this subscriber has been given (every tick of its symbols up to there), so
//!    that a quiet subscription tells a live recorder from a dead connection, and a consumer
//!    restarted from that cursor replays only what came after it. (The cursor is absent until
//!    a commit or a replay has passed.) A heartbeat is also a write: a connection whose peer
//!    is gone fails at one (at once on a reset, after TCP's retransmissions otherwise)
//!    instead of staying open in silence.
//!
//! With `"conflate_ms": N` (10–60,000, and without `from`/`from_time`), the subscription is
//! conflated (`conflate.rs`): of each of its symbols, only the latest committed tick of each
//! source since its last lines, written at most once in N ms (in recording order; at once
//! before a session's line or the answer to a later request line). For a screen, not a stream
//! to resume: it leaves ticks out, so it has no replay, and its heartbeats' cursor says how
//! far the commits given to it went, not that every tick up to there was sent. `subscribed`
//! says `"conflate_ms"`.
//!
//! Whenever a FIX session goes down or comes back up (as `record`'s watch loop sees it, every
//! 200 ms), every subscriber of a symbol it records (and of every symbol), unless it named
//! sources without the session's, gets
//! `{"event":"session","session":…,"source":…,"up":…,"state":…,"time":…,"symbols":[…]}`,
//! after what was already queued for it: quotes of a session that is down are stale, whatever
//! the snapshot or the last tick says.
//!
//! A subscriber may send further request lines on the same connection, `{"symbols": […]}`:
//! its symbols and sources (and its conflation: none, without `conflate_ms`) become those,
//! from the next commit it is given on (a symbol kept loses no tick and gets none twice). It
//! gets `subscribed` again, the snapshot of the symbols (and sources) it did not have and the
//! sessions' lines, then `snapshot_end`. A line with `from` or `from_time` starts the
//! subscription over on this connection, as a first line would (`subscribed`, the replay,
//! `replayed`, the snapshot, `snapshot_end`, then live ticks): what was queued for it and not
//! yet sent is dropped, the replay holding what it asked of it. One that is not a request, or
//! whose cursor is past what the store holds, gets `{"event":"error","reason":…}` and changes
//! nothing. Those lines are read on a thread of the subscriber's own; the end of its sending
//! half (a client that only listens may close it) is not the end of its subscription, a
//! reset is.
//!
//! Where ticks come from: the SQLite writer tells the publisher what each commit holds, with
//! the `seq` each tick got ([`CommitObserver`]), so a published tick is one the store holds, in
//! recording order, and the handover from replay to live is exact: the subscriber is
//! registered for live batches before the last replay pass, and a live tick the replay
//! already sent (same day, `seq` at or below the cursor) is skipped. No gap, no duplicate.
//!
//! What it costs the recorder: nothing on the `store_tick` path. On the writer thread, per
//! commit and only while someone subscribes, one copy of the committed ticks handed to the
//! encoder thread, which writes them as JSON lines once and queues a pointer to them for every
//! subscriber: only the ticks of the symbols and sources some subscriber asked for, and of
//! those only conflated subscribers asked for, only the latest of each symbol and source of the
//! commits it encodes together (a commit encoded before a subscriber joined or changed its
//! subscription is encoded whole again on its thread, so none of its ticks is missed). Each
//! subscriber has its own thread (it writes the shared bytes, or the lines of its symbols).
//! These threads wake at most every 5 ms (`FAN_OUT_PACE`) and take what came meanwhile: when
//! commits come closer together than that (above ~100,000 ticks a second with 500-tick
//! batches), a subscriber sees a tick within about 10 ms of its commit (the encoder's pace,
//! then its own); further apart, as soon as the threads are scheduled. Each has a bounded queue
//! (`[publish] queue_ticks`, [`MAX_QUEUED_TICKS`] by default); one that falls behind is
//! disconnected with the reason (`{"event":"disconnected","reason":…}`, best effort) and
//! counted. At most `[publish] max_subscribers` subscribers are served at once (one more is
//! told why and closed). A connection waits for its first request line apart from them
//! ([`MAX_WAITING`] in all, [`MAX_WAITING_PER_ADDRESS`] from one address but loopback, within
//! 10 s), so peers that send no request, or one without the token, cannot take their places.
//! With every waiting place taken, the connection that has waited longest without sending a
//! request line is closed to make room for a new one (one whose line is being read and checked
//! never is); so connections that send nothing cannot keep out a subscriber that sends its
//! request at once. A refusal for want of a place, of either kind, says `"retry": true` in its
//! `error` line: the same request may be let in later (`tickrec subscribe` tries again, as
//! after a disconnection); the others will not be. Loopback by default. With `[publish]
//! token_file`, a first request line must carry `"token"`, the file's first line
//! ([`crate::auth`]), or it is refused and counted; refusals are logged at most once a second.
//! Nothing here encrypts a stream, and a listener beyond loopback is logged as a warning.
//!
//! Here: the listener, letting connections in, and each subscriber's thread (replay, snapshot,
//! live lines, heartbeats, changes). `fanout.rs`: the encoder thread and the subscribers'
//! bounded queues, where cut-offs happen. `request.rs`: request lines, read within their
//! bounds and parsed, and what a subscriber's symbols and sources say of each tick. `conflate.rs`: the
//! latest line of each symbol and source a conflated subscription holds between its writes.

use std::collections::HashSet;
use std::io::{BufReader, BufWriter, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDate;

use crate::format::jsonl::JsonlWriter;
use crate::format::RowWriter;
use crate::intern::Names;
use crate::pipeline::Recorder;
use crate::shutdown::Shutdown;
use crate::store::reader::{Store, Symbols};
use crate::store::writer::CommitObserver;
use crate::tail::{Cursor, Start, Tail};
use crate::tick::{SymbolId, Tick, TickRow};

mod conflate;
mod fanout;
mod request;

use conflate::Conflated;
pub use conflate::CONFLATE_MS;
use fanout::{encode_and_fan_out, pace, Batch, Encoded, Interest, Queue};
use request::{
    as_listed, as_named, read_changes, read_request, resolve, Asked, Incoming, Request, Wants,
};

/// Ticks a subscriber may have queued before it is disconnected as too slow, by default
/// (`[publish] queue_ticks`).
pub const MAX_QUEUED_TICKS: usize = 200_000;
/// How long a subscriber has to send its whole request line, however its bytes trickle in.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one write to a subscriber may block before it counts as stalled.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Seconds of silence before a subscriber gets a heartbeat line, by default
/// (`[publish] heartbeat_secs`).
pub const HEARTBEAT_SECS: u32 = 1;
/// Connections served at once (each holds two threads), by default (`[publish]
/// max_subscribers`); one more is refused with the reason.
pub const MAX_SUBSCRIBERS: usize = 64;

/// Connections whose first request line is awaited, at most, in all: one more is refused at
/// once, so that peers which never send a request cannot take the places of those that do.
pub const MAX_WAITING: usize = 64;

/// Connections from one address (loopback excepted) whose first request line is awaited, at
/// most.
pub const MAX_WAITING_PER_ADDRESS: usize = 8;

/// Whether a refused request may be let in later as it is: refused for want of a place, it
/// may (its `error` line says `"retry": true`); for what it is, it will not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    Never,
    WhenAPlaceIsFree,
}

/// Counters of the publisher (for /metrics and the final report).
#[derive(Debug, Default)]
pub struct PublishStats {
    pub connected_total: AtomicU64,
    pub disconnected_slow_total: AtomicU64,
    /// Requests refused, and connections that ended or failed before a request line (not
    /// those closed to make room: `closed_for_room`).
    pub rejected_requests_total: AtomicU64,
    /// First lines refused for a missing or wrong token (also in `rejected_requests_total`).
    pub unauthorized_total: AtomicU64,
    pub ticks_sent_total: AtomicU64,
}

/// The fan-out: the writer's [`CommitObserver`], and the listener serving subscribers.
pub struct Publisher {
    names: Arc<Names>,
    subscribers: Arc<Mutex<Vec<Arc<Queue>>>>,
    /// What they want together, for the encoder.
    interest: Arc<Interest>,
    stats: Arc<PublishStats>,
    /// Commits on their way to the encoder thread.
    to_encoder: crossbeam_channel::Sender<Arc<Batch>>,
    /// Silence on a subscriber's stream after which it gets a heartbeat line.
    heartbeat: Duration,
    /// Ticks a subscriber may have waiting before it is cut off (`[publish] queue_ticks`).
    max_queued: usize,
    /// Each FIX session's latest up-or-down line, by session name, in the order first seen.
    sessions: Mutex<Vec<(String, bool, Arc<Encoded>)>>,
    /// The subscribers whose request was taken, for the status page.
    connected: Mutex<Vec<Arc<Connection>>>,
    /// Places of the subscribers being served, taken once a request is let in.
    connections: crate::slots::Slots,
    /// Places of the connections whose first request line is awaited ([`MAX_WAITING`] in all,
    /// [`MAX_WAITING_PER_ADDRESS`] from one address but loopback).
    waiting: crate::slots::Waiting,
    /// The token a first request line must carry (`[publish] token_file`), if any.
    token: Option<crate::auth::Token>,
    /// Warnings of refused connections, at most one a second (a flood costs a count each, not
    /// a log line each).
    refusals_logged: crate::slots::Throttle,
}

/// A subscriber as the status page lists it.
struct Connection {
    peer: std::net::SocketAddr,
    since: crate::tick::Timestamp,
    /// As it named them, changes included.
    symbols: Mutex<Vec<String>>,
    /// The sources it named, changes included (empty: every source).
    sources: Mutex<Vec<String>>,
    /// Its conflation interval, changes included (0: every tick).
    conflate_ms: AtomicU64,
    ticks_sent: AtomicU64,
    queue: Arc<Queue>,
}

/// What a subscriber's later request line did.
enum Changed {
    /// Refused: the subscription is as it was.
    Not,
    /// Its symbols, and its conflation (`None`: every tick), from the next commit on.
    Symbols(Option<Duration>),
    /// It starts over from a cursor, on the same connection (boxed: a [`Tail`] is large,
    /// and this is rare).
    StartOver(Box<Asked<Tail>>),
}

/// Commits the encoder thread may have waiting; past it, every subscriber is cut off (it
/// cannot fall behind unless starved of CPU).
const ENCODER_BACKLOG: usize = 4096;

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

impl CommitObserver for Publisher {
    /// On the writer thread: one copy of the commit's ticks in seq order, handed to the
    /// encoder thread (nothing at all without subscribers).
    fn committed(&self, day: NaiveDate, first_seq: i64, ticks: &[Tick], order: &[(i64, u32)]) {
        // Nothing for subscribers already cut off whose threads have not yet left (the encoder
        // does not wake for them: their sockets are ended from here).
        let open = self
            .subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|q| {
                let closed = q.is_closed();
                if closed {
                    q.end_if_held();
                }
                !closed
            })
            .count();
        if open == 0 {
            return;
        }
        let batch = Arc::new(Batch {
            day,
            ticks: order
                .iter()
                .enumerate()
                .filter_map(|(k, &(_, i))| Some((first_seq + k as i64, *ticks.get(i as usize)?)))
                .collect(),
        });
        if self.to_encoder.try_send(batch).is_err() {
            for q in self
                .subscribers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
            {
                // Counted once: not a subscriber already cut off whose thread has not left.
                if q.close("the fan-out fell behind the writer".into()) {
                    self.stats
                        .disconnected_slow_total
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

fn row_of(names: &Names, t: &Tick, seq: Option<i64>) -> Option<TickRow> {
    Some(TickRow::from_tick(
        t,
        names.symbol_name(t.symbol)?,
        names.source_name(t.source)?,
        seq,
    ))
}

impl Publisher {
    /// A publisher of `names`' ticks; a subscriber with more than `max_queued` ticks waiting
    /// is disconnected, one that was sent nothing for `heartbeat` gets a heartbeat line, a
    /// connection past `max_subscribers` is refused, and so is a first request line without
    /// `token` (when there is one).
    pub fn new(
        names: Arc<Names>,
        max_queued: usize,
        heartbeat: Duration,
        max_subscribers: usize,
        token: Option<crate::auth::Token>,
    ) -> std::io::Result<Arc<Publisher>> {
        let (to_encoder, rx) = crossbeam_channel::bounded(ENCODER_BACKLOG);
        let subscribers: Arc<Mutex<Vec<Arc<Queue>>>> = Arc::default();
        let interest: Arc<Interest> = Arc::default();
        let stats: Arc<PublishStats> = Arc::default();
        let max_queued = max_queued.max(1);
        {
            let (names, subscribers, stats) = (names.clone(), subscribers.clone(), stats.clone());
            let interest = interest.clone();
            // Ends when the publisher (its sender) is dropped.
            std::thread::Builder::new()
                .name("tickrec-publish-encode".into())
                .spawn(move || {
                    encode_and_fan_out(rx, names, subscribers, interest, stats, max_queued)
                })?;
        }
        Ok(Arc::new(Publisher {
            names,
            subscribers,
            interest,
            stats,
            to_encoder,
            heartbeat,
            max_queued,
            sessions: Mutex::default(),
            connected: Mutex::default(),
            connections: crate::slots::Slots::new(max_subscribers),
            waiting: crate::slots::Waiting::new(MAX_WAITING, MAX_WAITING_PER_ADDRESS),
            token,
            refusals_logged: crate::slots::Throttle::default(),
        }))
    }

    /// Connections that waited longest without sending a request line, closed to make room
    /// for a new one ([`crate::slots::Waiting`]).
    pub fn closed_for_room(&self) -> u64 {
        self.waiting.closed_for_room()
    }

    pub fn stats(&self) -> Arc<PublishStats> {
        self.stats.clone()
    }

    /// Ticks a subscriber may have waiting before it is cut off (`[publish] queue_ticks`).
    pub fn max_queued(&self) -> usize {
        self.max_queued
    }

    /// With a token asked, whether its file holds a usable one now (`None`: none asked).
    pub fn token_usable(&self) -> Option<bool> {
        self.token.as_ref().map(crate::auth::Token::usable)
    }

    /// Each subscriber now: who, what it asked for, since when, what it was sent and has
    /// waiting.
    pub fn subscriber_list(&self) -> Vec<crate::metrics::SubscriberStatus> {
        let connected = self
            .connected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        connected
            .iter()
            .map(|c| crate::metrics::SubscriberStatus {
                peer: c.peer.to_string(),
                symbols: c.symbols.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                sources: c.sources.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                conflate_ms: Some(c.conflate_ms.load(Ordering::Relaxed)).filter(|&ms| ms > 0),
                since: c.since,
                ticks_sent: c.ticks_sent.load(Ordering::Relaxed),
                queued_ticks: c.queue.queued_ticks() as u64,
            })
            .collect()
    }

    /// Listens on `addr` until `stop`; one thread per subscriber.
    pub fn serve(
        self: &Arc<Self>,
        addr: &str,
        recorder: Arc<Recorder>,
        store: Store,
        stop: Shutdown,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        const WHAT: &str = "live subscribers (publish)";
        if let Ok(bound) = listener.local_addr() {
            crate::metrics::warn_beyond_loopback(bound, WHAT, self.token.is_some());
        }
        if let Some(token) = &self.token {
            token.warn_if_readable_by_all(WHAT);
        }
        let me = self.clone();
        std::thread::Builder::new()
            .name("tickrec-publish".into())
            .spawn(move || {
                let refuse = |stream, peer, why| me.refuse_waiting(stream, peer, why);
                let serve = {
                    let (me, stop) = (me.clone(), stop.clone());
                    move |stream, peer, waiting| {
                        me.subscriber(stream, peer, waiting, &recorder, store.clone(), &stop)
                    }
                };
                crate::slots::accept_loop(
                    &listener,
                    &me.waiting,
                    &stop,
                    "publish",
                    "tickrec-subscriber",
                    refuse,
                    serve,
                );
                for q in me
                    .subscribers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                {
                    q.close("the recorder is shutting down".into());
                }
            })
    }

    /// A request line refused (`what` it was): counted, logged, and the subscriber told why,
    /// and whether the same request may be let in later (`"retry": true`).
    fn refuse(
        &self,
        out: &mut impl Write,
        peer: std::net::SocketAddr,
        why: String,
        what: &str,
        retry: Retry,
    ) -> std::io::Result<()> {
        self.stats
            .rejected_requests_total
            .fetch_add(1, Ordering::Relaxed);
        self.warn_refused(peer, &why, what);
        let mut fields = vec![("reason", why.into())];
        if retry == Retry::WhenAPlaceIsFree {
            fields.push(("retry", true.into()));
        }
        event(out, "error", &fields)
    }

    /// A warning of a refusal, unless one was logged less than a second ago (`held_back`:
    /// those refused since the last one logged).
    fn warn_refused(&self, peer: std::net::SocketAddr, why: &str, what: &str) {
        if let Some(held_back) = self.refusals_logged.let_through() {
            tracing::warn!(%peer, why, held_back, "publish: refused {what}");
        }
    }

    /// A connection past [`MAX_WAITING`] (or [`MAX_WAITING_PER_ADDRESS`]): told why if its
    /// socket takes the line at once, counted, closed, without holding up the listener.
    fn refuse_waiting(&self, stream: TcpStream, peer: std::net::SocketAddr, why: String) {
        self.stats
            .rejected_requests_total
            .fetch_add(1, Ordering::Relaxed);
        self.warn_refused(peer, &why, "a connection");
        let _ = stream.set_nonblocking(true);
        let _ = event(
            &mut &stream,
            "error",
            &[("reason", why.into()), ("retry", true.into())],
        );
        let _ = stream.shutdown(std::net::Shutdown::Write);
        // What it sent already, read, so that the close is an orderly end where it can be.
        let _ = std::io::Read::read(&mut &stream, &mut [0u8; 4096]);
    }

    fn subscriber(
        &self,
        stream: TcpStream,
        peer: std::net::SocketAddr,
        waiting: crate::slots::WaitingSlot,
        recorder: &Recorder,
        store: Store,
        stop: &Shutdown,
    ) {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
        let _ = stream.set_nodelay(true);
        let Ok(read_half) = stream.try_clone() else {
            return;
        };
        let mut out = BufWriter::with_capacity(1 << 16, stream);
        let mut lines = BufReader::new(Incoming::within(read_half, REQUEST_TIMEOUT));
        let request = match read_request(&mut lines) {
            Ok(Some(r)) => {
                // Being served: not closed to make room for another.
                waiting.busy();
                r.and_then(|r| self.let_in(r)).and_then(|r| self.parse(r))
            }
            // Closed to make room: counted as such, and nothing more can be said to it.
            Ok(None) | Err(_) if waiting.closed_for_room() => return,
            Ok(None) => Err("the connection closed before a request line".into()),
            Err(e) => Err(e.to_string()),
        };
        // A replay's start is resolved before the subscription is confirmed: a cursor past
        // what the store holds is refused like a malformed request.
        let request = request.and_then(|r| resolve(&store, r));
        let asked = match request {
            Ok(r) => r,
            Err(why) => {
                let _ = self.refuse(&mut out, peer, why, "a subscription request", Retry::Never);
                return;
            }
        };
        // Let in: it leaves the waiting connections for a subscriber's place, if one is free.
        drop(waiting);
        let Some(_place) = self.connections.take() else {
            let max = self.connections.max();
            let why = format!(
                "{max} subscribers are connected, the most this recorder serves ([publish] \
                 max_subscribers)"
            );
            let _ = self.refuse(
                &mut out,
                peer,
                why,
                "a subscriber past max_subscribers",
                Retry::WhenAPlaceIsFree,
            );
            return;
        };
        self.stats.connected_total.fetch_add(1, Ordering::Relaxed);
        let from = asked.start.as_ref().map(|t| t.cursor().to_string());
        let conflate_ms = asked.conflate.map(|d| d.as_millis() as u64);
        tracing::info!(%peer, symbols = ?asked.symbols, ?from, ?conflate_ms, "publish: subscriber joined");
        let queue = Arc::new(Queue::new(out.get_ref().try_clone().ok()));
        let conn = Arc::new(Connection {
            peer,
            since: crate::clock::Clock::now(&crate::clock::SystemClock),
            symbols: Mutex::new(as_named(&asked.symbols)),
            sources: Mutex::new(as_listed(&asked.sources)),
            conflate_ms: AtomicU64::new(conflate_ms.unwrap_or(0)),
            ticks_sent: AtomicU64::new(0),
            queue: queue.clone(),
        });
        self.connected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn.clone());
        // Its later lines (changes of symbols) are read on a thread of their own, which ends
        // when the connection does (shut down below).
        lines.get_mut().lift_deadline();
        let reader = {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name("tickrec-subscriber-requests".into())
                .spawn(move || read_changes(lines, &queue, peer))
        };
        if let Err(e) = &reader {
            tracing::warn!(%peer, error = %e, "publish: a subscriber's later lines will not be read");
        }
        let result = self.serve_one(&mut out, asked, &conn, recorder, &store, stop);
        self.connected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|c| !Arc::ptr_eq(c, &conn));
        self.unregister(&queue);
        // The first reason it was closed for is the one said, and counted where it was given
        // (a cut-off counted by the encoder is not counted again when its write then fails).
        match result {
            Ok(why) => {
                queue.close(why);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) =>
            {
                // Not reading: as slow as a queue running over.
                let why = format!(
                    "fell behind: a write blocked for {}s",
                    WRITE_TIMEOUT.as_secs()
                );
                if queue.close(why) {
                    self.stats
                        .disconnected_slow_total
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                queue.close(format!("connection failed: {e}"));
            }
        }
        let why = queue.closed_because().unwrap_or_default();
        let _ = event(&mut out, "disconnected", &[("reason", why.as_str().into())]);
        // Both halves: the peer sees the end (the reader's copy of the socket would keep it
        // open), and the reader's blocked read returns.
        let _ = out.get_ref().shutdown(std::net::Shutdown::Both);
        if let Ok(reader) = reader {
            let _ = reader.join();
        }
        tracing::info!(%peer, %why, "publish: subscriber left");
    }

    /// A first request line, when it carries the token this publisher asks for (if any);
    /// otherwise why not (counted here; refused, and logged, by the caller).
    fn let_in(&self, r: Request) -> Result<Request, String> {
        let Some(token) = &self.token else {
            return Ok(r);
        };
        let why = match &r.token {
            Some(given) if token.matches(given.as_bytes()) => return Ok(r),
            Some(_) => "wrong \"token\"",
            None => "this recorder asks each subscriber for a \"token\" ([publish] token_file)",
        };
        self.stats
            .unauthorized_total
            .fetch_add(1, Ordering::Relaxed);
        Err(why.into())
    }

    /// The request's symbols (names, ids known so far or `None` for every symbol) and where
    /// its replay starts, if it asked for one.
    fn parse(&self, r: Request) -> Result<Asked<Option<Start>>, String> {
        if r.symbols.is_empty() {
            return Err("\"symbols\" is empty: name some, or [\"*\"] for every symbol".into());
        }
        let all = r.symbols.iter().any(|s| s == "*");
        let cursor = match (r.from, r.from_time) {
            (Some(_), Some(_)) => return Err("give \"from\" or \"from_time\", not both".into()),
            (Some(c), None) => Some(Start::After(c.parse::<Cursor>()?)),
            (None, Some(t)) => Some(Start::Time(
                crate::tick::Timestamp::parse(&t).map_err(|e| format!("\"from_time\": {e}"))?,
            )),
            (None, None) => None,
        };
        let conflate = match r.conflate_ms {
            None => None,
            Some(ms) if !CONFLATE_MS.contains(&ms) => {
                let (lo, hi) = (CONFLATE_MS.start(), CONFLATE_MS.end());
                return Err(format!("\"conflate_ms\": {ms} is not within {lo}–{hi}"));
            }
            Some(_) if cursor.is_some() => {
                return Err(
                    "\"conflate_ms\" leaves ticks out, so a conflated subscription has no \
                            replay: give \"from\" or \"from_time\", or \"conflate_ms\", not both"
                        .into(),
                )
            }
            Some(ms) => Some(Duration::from_millis(ms)),
        };
        let (symbols, names) = if all {
            (Symbols::All, None)
        } else {
            let names: HashSet<String> = r.symbols.iter().cloned().collect();
            (Symbols::Named(r.symbols), Some(names))
        };
        let sources = match r.sources {
            Some(s) if s.is_empty() => {
                return Err(
                    "\"sources\" is empty: name some, or leave it out for every source".into(),
                )
            }
            Some(s) if s.iter().any(|s| s == "*") => None,
            Some(s) => Some(s.into_iter().collect()),
            None => None,
        };
        Ok(Asked {
            symbols,
            names,
            sources,
            start: cursor,
            conflate,
        })
    }

    /// Serves one subscriber whose request was read (its symbols, their names, its replay,
    /// its conflation); returns why its stream ended.
    ///
    /// Long (~100 lines) on purpose: one subscriber from request to close (its start, live
    /// ticks, later changes of its symbols or starts over), one sequence sharing the
    /// connection and the cursor.
    fn serve_one(
        &self,
        out: &mut BufWriter<TcpStream>,
        asked: Asked<Option<Tail>>,
        me: &Connection,
        recorder: &Recorder,
        store: &Store,
        stop: &Shutdown,
    ) -> std::io::Result<String> {
        let queue = &me.queue;
        let mut rows = JsonlWriter::new(&mut *out);
        let mut conflated = asked.conflate.map(Conflated::new);
        let (mut wants, mut replayed) = self.start(&mut rows, queue, asked, recorder)?;
        let mut sent = 0u64;
        let mut woke = std::time::Instant::now();
        // The commits this subscriber has been given, for its heartbeats.
        let mut passed = replayed.clone();
        let mut last_write = woke;
        loop {
            pace(&mut woke);
            if stop.is_requested() {
                return Ok("the recorder is shutting down".into());
            }
            if let Some(why) = queue.closed_because() {
                return Ok(why);
            }
            // Lines a conflated subscription holds wait no longer than their interval.
            let idle = Duration::from_millis(100);
            let wait = conflated
                .as_ref()
                .and_then(|c| c.due_in(woke))
                .map_or(idle, |d| d.min(idle));
            let taken = queue.take(wait);
            // Later request lines apply from the next commit on (those just taken included).
            let changes = queue.take_changes();
            let mut wrote = !changes.is_empty();
            // Held from commits before a change: written before its answer.
            if let Some(c) = conflated.as_mut().filter(|_| wrote) {
                sent += c.write(rows.inner(), true)?;
            }
            for change in changes {
                let at = (recorder, store);
                match self.change(&mut rows, &mut wants, change, at, me)? {
                    Changed::Not => {}
                    Changed::Symbols(conflate) => conflated = conflate.map(Conflated::new),
                    Changed::StartOver(start) => {
                        // The batches just taken were committed before its replay's last
                        // pass, which sent what it wants of them; the cursor reached skips
                        // them below.
                        conflated = None;
                        (wants, replayed) = self.start_over(&mut rows, queue, *start, recorder)?;
                        passed = replayed.clone();
                    }
                }
            }
            // Whole, each commit encoded before this subscriber's wants were marked (now
            // that its changes are applied) which left ticks out.
            let taken: Vec<Arc<Encoded>> = taken
                .into_iter()
                .map(|enc| queue.complete(enc, &self.names))
                .collect();
            // Commits in runs between control lines (which are alone in theirs).
            for run in taken.chunk_by(|a, b| a.control.is_none() && b.control.is_none()) {
                for enc in run {
                    if let Some(last) = enc.last_seq {
                        passed
                            .get_or_insert_with(|| Cursor::at(enc.day, last))
                            .advance(enc.day, last);
                    }
                }
                if let [enc] = run {
                    if let Some((symbols, source)) = &enc.control {
                        if wants.any(symbols, source.as_deref()) {
                            if let Some(c) = &mut conflated {
                                // A session's line does not overtake the ticks before it.
                                sent += c.write(rows.inner(), true)?;
                            }
                            rows.inner().write_all(&enc.bytes)?;
                            wrote = true;
                        }
                        continue;
                    }
                }
                // Live ticks at or below the replay's cursor were replayed.
                let upto = |day: NaiveDate| replayed.as_ref().map(|c| c.position(day));
                match &mut conflated {
                    Some(c) => c.take(run, |day, line| {
                        upto(day).is_none_or(|s| line.seq > s)
                            && wants.wants(&self.names, line.symbol, line.source)
                    }),
                    None => {
                        for enc in run {
                            let upto = upto(enc.day);
                            sent += self.send_commit(rows.inner(), enc, &mut wants, upto)?;
                        }
                    }
                }
            }
            if let Some(c) = &mut conflated {
                sent += c.write(rows.inner(), false)?;
            }
            if wrote || sent > 0 {
                last_write = woke;
            } else if woke.duration_since(last_write) >= self.heartbeat {
                let time = crate::clock::Clock::now(&crate::clock::SystemClock).to_string();
                let mut fields = vec![("time", time.into())];
                if let Some(c) = &passed {
                    fields.push(("cursor", c.to_string().into()));
                }
                event(rows.inner(), "heartbeat", &fields)?;
                last_write = woke;
            }
            rows.inner().flush()?;
            me.ticks_sent.fetch_add(sent, Ordering::Relaxed);
            self.stats
                .ticks_sent_total
                .fetch_add(std::mem::take(&mut sent), Ordering::Relaxed);
        }
    }

    /// Writes to `out` the lines of one commit that `wants` asks for past `upto` (the replay's
    /// cursor in the commit's day): all of its bytes at once when it asks for every symbol and
    /// none was replayed. Returns how many it wrote.
    fn send_commit(
        &self,
        out: &mut impl Write,
        enc: &Encoded,
        wants: &mut Wants,
        upto: Option<i64>,
    ) -> std::io::Result<u64> {
        let everything = wants.everything()
            && enc
                .lines
                .first()
                .is_none_or(|l| upto.is_none_or(|s| l.seq > s));
        if everything {
            out.write_all(&enc.bytes)?;
            return Ok(enc.lines.len() as u64);
        }
        let mut n = 0;
        for line in &enc.lines {
            if upto.is_some_and(|s| line.seq <= s)
                || !wants.wants(&self.names, line.symbol, line.source)
            {
                continue;
            }
            if let Some(bytes) = enc.bytes_of(line) {
                out.write_all(bytes)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// A subscription's start, from its first request line or a later one with a cursor:
    /// `subscribed`; with a replay, the committed ticks from where it asked until caught up,
    /// then registered for live batches, one more pass for what was committed in between and
    /// `replayed` (live batches at or below the cursor reached are skipped); otherwise
    /// registered; then the snapshot of its symbols and `snapshot_end`. Returns what it wants
    /// and the cursor its replay reached.
    fn start<W: Write>(
        &self,
        rows: &mut JsonlWriter<W>,
        queue: &Arc<Queue>,
        asked: Asked<Option<Tail>>,
        recorder: &Recorder,
    ) -> std::io::Result<(Wants, Option<Cursor>)> {
        let replay_from = asked.start.as_ref().map(Tail::cursor);
        let wants = Wants::new(asked.names, asked.sources);
        self.subscribed(
            rows.inner(),
            &asked.symbols,
            &wants,
            replay_from,
            asked.conflate,
        )?;
        let mut replayed: Option<Cursor> = None;
        // (The tail passes on the ticks of its sources only: `resolve`.)
        if let Some(mut tail) = asked.start {
            loop {
                let n = tail
                    .poll(&mut |r| rows.write_row(r), &mut |_| Ok(()))
                    .map_err(std::io::Error::other)?;
                if n == 0 {
                    break;
                }
            }
            self.register(queue, &wants, asked.conflate);
            tail.poll(&mut |r| rows.write_row(r), &mut |_| Ok(()))
                .map_err(std::io::Error::other)?;
            let reached = tail.cursor().to_string();
            event(rows.inner(), "replayed", &[("cursor", reached.into())])?;
            replayed = Some(tail.cursor().clone());
        } else {
            self.register(queue, &wants, asked.conflate);
        }
        self.snapshot(rows, recorder, &wants, None)?;
        rows.inner().flush()?;
        Ok((wants, replayed))
    }

    /// A later request line with a cursor: the subscription starts over as [`Publisher::start`]
    /// on this connection. It leaves the live batches first (none queue up for it while it
    /// replays; those waiting are dropped: the replay holds what it wants of them).
    fn start_over<W: Write>(
        &self,
        rows: &mut JsonlWriter<W>,
        queue: &Arc<Queue>,
        asked: Asked<Tail>,
        recorder: &Recorder,
    ) -> std::io::Result<(Wants, Option<Cursor>)> {
        self.unregister(queue);
        queue.drop_queued();
        let asked = Asked {
            symbols: asked.symbols,
            names: asked.names,
            sources: asked.sources,
            start: Some(asked.start),
            conflate: asked.conflate,
        };
        self.start(rows, queue, asked, recorder)
    }

    /// `{"event":"subscribed","unknown":[…]}`: the names asked that this recorder's sessions do
    /// not record, most often a typo (names are case-sensitive) whose ticks would never come;
    /// with named sources, `"sources"` and `"unknown_sources"` (those no session records); with
    /// a replay, `"cursor"`, where it starts (what a `from_time` resolved to), so that a
    /// consumer holds a cursor from its first line on; conflated, `"conflate_ms"`.
    fn subscribed(
        &self,
        out: &mut impl Write,
        symbols: &Symbols,
        wants: &Wants,
        replay_from: Option<&Cursor>,
        conflate: Option<Duration>,
    ) -> std::io::Result<()> {
        let unknown: Vec<&str> = match symbols {
            Symbols::All => Vec::new(),
            Symbols::Named(asked) => asked
                .iter()
                .filter(|s| self.names.find_symbol(s).is_none())
                .map(String::as_str)
                .collect(),
        };
        if !unknown.is_empty() {
            tracing::info!(
                ?unknown,
                "publish: a subscriber asked for symbols no session records"
            );
        }
        let mut fields = vec![("unknown", serde_json::Value::from(unknown))];
        if let Some(sources) = &wants.sources {
            let mut named: Vec<&str> = sources.iter().map(String::as_str).collect();
            named.sort_unstable();
            let unknown: Vec<&str> = named
                .iter()
                .copied()
                .filter(|s| self.names.find_source(s).is_none())
                .collect();
            if !unknown.is_empty() {
                tracing::info!(
                    ?unknown,
                    "publish: a subscriber asked for sources no session records"
                );
            }
            fields.push(("sources", named.into()));
            fields.push(("unknown_sources", unknown.into()));
        }
        if let Some(c) = replay_from {
            fields.push(("cursor", c.to_string().into()));
        }
        if let Some(every) = conflate {
            fields.push(("conflate_ms", (every.as_millis() as u64).into()));
        }
        event(out, "subscribed", &fields)
    }

    /// The snapshot: the latest tick of each source of each symbol that `wants` takes and
    /// `before` (the subscription before a change) did not, from the rings
    /// ([`Recorder::latest_of_each_source`]; a symbol's newest last), the latest line of each
    /// FIX session that records a symbol of `wants`, then `{"event":"snapshot_end"}`.
    fn snapshot<W: Write>(
        &self,
        rows: &mut JsonlWriter<W>,
        recorder: &Recorder,
        wants: &Wants,
        before: Option<&Wants>,
    ) -> std::io::Result<()> {
        let take = |symbol: &str, source: &str| {
            wants.takes(symbol, source) && !before.is_some_and(|b| b.takes(symbol, source))
        };
        for id in 0..self.names.max_symbols() {
            let id = SymbolId(id as u32);
            let Some(name) = self.names.symbol_name(id) else {
                break;
            };
            if !wants.wants_name(&name) {
                continue;
            }
            for t in recorder.latest_of_each_source(id) {
                if let Some(row) = row_of(&self.names, &t, None) {
                    if take(&row.symbol, &row.source) {
                        rows.write_row(&row)?;
                    }
                }
            }
        }
        let sessions: Vec<Arc<Encoded>> = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(_, _, line)| line.clone())
            .collect();
        for line in sessions {
            let about = line.control.as_ref();
            if about.is_none_or(|(symbols, source)| wants.any(symbols, source.as_deref())) {
                rows.inner().write_all(&line.bytes)?;
            }
        }
        event(rows.inner(), "snapshot_end", &[])
    }

    /// A later request line: the subscriber's symbols become those it names, from the next
    /// commit on. It gets `subscribed` again, the snapshot of the symbols it did not have
    /// (and the sessions' lines), `snapshot_end`. A line with `from` or `from_time` starts the
    /// subscription over: returned, with its replay resolved, for [`Publisher::start_over`].
    /// One that is not a request, or whose cursor is past what the store holds, gets an
    /// `error` line and changes nothing.
    fn change<W: Write>(
        &self,
        rows: &mut JsonlWriter<W>,
        wants: &mut Wants,
        change: Result<Request, String>,
        (recorder, store): (&Recorder, &Store),
        me: &Connection,
    ) -> std::io::Result<Changed> {
        let peer = me.peer;
        let parsed = change
            .and_then(|r| self.parse(r))
            .and_then(|r| resolve(store, r));
        let asked = match parsed {
            Ok(p) => p,
            Err(why) => {
                let why = format!("{why} (the subscription is unchanged)");
                self.refuse(rows.inner(), peer, why, "a change of symbols", Retry::Never)?;
                return Ok(Changed::Not);
            }
        };
        *me.symbols.lock().unwrap_or_else(|e| e.into_inner()) = as_named(&asked.symbols);
        *me.sources.lock().unwrap_or_else(|e| e.into_inner()) = as_listed(&asked.sources);
        let conflate_ms = asked.conflate.map(|d| d.as_millis() as u64);
        me.conflate_ms
            .store(conflate_ms.unwrap_or(0), Ordering::Relaxed);
        let symbols = &asked.symbols;
        if let Some(tail) = asked.start {
            let from = tail.cursor().to_string();
            tracing::info!(%peer, ?symbols, %from, "publish: a subscriber started over");
            return Ok(Changed::StartOver(Box::new(Asked {
                symbols: asked.symbols,
                names: asked.names,
                sources: asked.sources,
                start: tail,
                conflate: asked.conflate,
            })));
        }
        tracing::info!(%peer, ?symbols, ?conflate_ms, "publish: a subscriber changed its symbols");
        let before = std::mem::replace(wants, Wants::new(asked.names, asked.sources));
        me.queue
            .mark(marked(wants, asked.conflate), &self.interest, None);
        self.subscribed(rows.inner(), symbols, wants, None, asked.conflate)?;
        self.snapshot(rows, recorder, wants, Some(&before))?;
        Ok(Changed::Symbols(asked.conflate))
    }

    /// A FIX session's state as `record`'s watch loop sees it: when it went down or came up
    /// (or is seen for the first time), every subscriber of one of `symbols` (or of every
    /// symbol; of all when `symbols` is empty) gets a `session` line, after what is already
    /// queued for it, and later such subscribers get its latest one before their
    /// `snapshot_end`.
    pub fn session_state(
        &self,
        session: &str,
        source: &str,
        state: &str,
        up: bool,
        symbols: &[String],
    ) {
        let mut known = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let at = known.iter().position(|(name, _, _)| name == session);
        if at.is_some_and(|i| known[i].1 == up) {
            return;
        }
        let now = crate::clock::Clock::now(&crate::clock::SystemClock);
        let mut bytes = Vec::new();
        let fields = [
            ("session", session.into()),
            ("source", source.into()),
            ("up", up.into()),
            ("state", state.into()),
            ("time", now.to_string().into()),
            ("symbols", symbols.into()),
        ];
        if event(&mut bytes, "session", &fields).is_err() {
            return; // (writing to a Vec cannot fail)
        }
        let enc = Arc::new(Encoded::control(now.day(), bytes, symbols, Some(source)));
        match at {
            Some(i) => known[i] = (session.to_owned(), up, enc.clone()),
            None => known.push((session.to_owned(), up, enc.clone())),
        }
        // Under the sessions' lock: every subscriber sees one session's lines in order, and
        // one that registers meanwhile finds this line in `sessions` or in its queue (or in
        // both: a state line may repeat).
        let subs = self
            .subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for q in subs {
            q.push_control(enc.clone());
        }
    }

    /// Lists `queue` for live commits, its wants (conflated or not) marked for the encoder.
    fn register(&self, queue: &Arc<Queue>, wants: &Wants, conflate: Option<Duration>) {
        let marked = marked(wants, conflate);
        queue.mark(marked, &self.interest, Some(&self.subscribers));
    }

    /// Takes `queue` off the list of live commits (the encoder's union narrows).
    fn unregister(&self, queue: &Arc<Queue>) {
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|q| !Arc::ptr_eq(q, queue));
        self.interest.bump();
    }
}

/// What a subscription wants, for the encoder.
fn marked(wants: &Wants, conflate: Option<Duration>) -> fanout::Marked {
    fanout::Marked {
        names: wants.names.clone(),
        sources: wants.sources.clone(),
        conflated: conflate.is_some(),
    }
}

/// A control line: `{"event": name, key: value, …}`, flushed.
fn event(
    out: &mut impl Write,
    name: &str,
    fields: &[(&str, serde_json::Value)],
) -> std::io::Result<()> {
    let mut obj = serde_json::Map::new();
    obj.insert("event".into(), name.into());
    for (k, v) in fields {
        obj.insert((*k).into(), v.clone());
    }
    serde_json::to_writer(&mut *out, &obj)?;
    out.write_all(b"\n")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// What could go wrong: the encoder falls a whole backlog of commits behind the writer
    /// while a subscriber already cut off (its thread not yet gone) is still listed. Every
    /// open subscriber is cut off for it; one already cut off keeps its first reason and is
    /// not counted a second time.
    #[test]
    fn an_encoder_backlog_cuts_off_the_open_subscribers_and_counts_each_once() {
        let names = Arc::new(Names::new(8));
        let publisher = Publisher::new(names, 1_000_000, Duration::from_secs(60), 8, None).unwrap();
        let (open, gone) = (Arc::new(Queue::new(None)), Arc::new(Queue::new(None)));
        assert!(gone.close("fell behind: earlier".into()));
        publisher
            .subscribers
            .lock()
            .unwrap()
            .extend([open.clone(), gone.clone()]);
        let tick = crate::pipeline::ring::blank_tick(0, 1);
        let day = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        // The encoder stops at the open queue's lock with its first commits: the rest fill its
        // backlog.
        let held = open.hold();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut commits = 0;
        while open.closed_because().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "{commits} commits and the backlog never ran over"
            );
            publisher.committed(day, 1, &[tick], &[(0, 0)]);
            commits += 1;
        }
        drop(held);
        assert!(commits > ENCODER_BACKLOG, "{commits} commits");
        assert_eq!(
            open.closed_because().as_deref(),
            Some("the fan-out fell behind the writer")
        );
        assert_eq!(
            gone.closed_because().as_deref(),
            Some("fell behind: earlier")
        );
        assert_eq!(
            publisher
                .stats
                .disconnected_slow_total
                .load(Ordering::Relaxed),
            1
        );
    }

    /// What could go wrong: a peer that trickles a byte now and then, never a whole line,
    /// keeping a subscriber's place (and two threads) for as long as it likes.
    #[test]
    fn a_first_line_must_come_whole_within_its_limit_however_it_trickles() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let trickle = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                // A byte every 50 ms, for at most 30 s, never a newline.
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                    if peer.write_all(b" ").is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        let started = std::time::Instant::now();
        let limit = Duration::from_millis(300);
        let mut lines = BufReader::new(Incoming::within(accepted, limit));
        let e = read_request(&mut lines).expect_err("no line came");
        stop.store(true, Ordering::Relaxed);
        trickle.join().unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
        assert!(e.to_string().contains("within 0.3 s"), "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }

    /// What could go wrong: the deadline, once lifted, still ending a quiet subscriber's
    /// later lines.
    #[test]
    fn after_the_first_line_reads_wait_as_long_as_the_peer_takes() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        peer.write_all(b"{\"symbols\": [\"*\"]}\n").unwrap();
        let mut lines = BufReader::new(Incoming::within(accepted, Duration::from_millis(300)));
        assert!(matches!(read_request(&mut lines), Ok(Some(Ok(_)))));
        lines.get_mut().lift_deadline();
        let writer = std::thread::spawn(move || {
            // Past the first line's limit.
            std::thread::sleep(Duration::from_millis(600));
            peer.write_all(b"{\"symbols\": [\"EURUSD\"]}\n").unwrap();
            peer
        });
        let r = read_request(&mut lines).unwrap().unwrap().unwrap();
        assert_eq!(r.symbols, ["EURUSD"]);
        drop(writer.join().unwrap());
    }
}
