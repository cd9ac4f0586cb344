//! What a running `record`, `ingest` or `migrate` shows an operator over HTTP, on one listener
//! (loopback unless configured otherwise), served by [`crate::http`] (its own threads, and
//! bounds on what a peer holds):
//!
//! * `GET /metrics` — Prometheus metrics in the classic text exposition format (written by the
//!   `prometheus` crate's encoder): counters, gauges, latency histograms, per FIX session and
//!   per feed source. Built at scrape time from the statistics the pipeline keeps anyway, so a
//!   scrape adds nothing to the hot path.
//! * `GET /health` — `200` and a JSON body when healthy, `503` and the same body with the
//!   reasons when not (see [`Scrape::problems`]).
//!
//! With a token (`[metrics] token_file`, [`crate::auth`]), every path but `/health` answers
//! `401` unless the request carries it, as `Authorization: Bearer TOKEN` (Prometheus's
//! `authorization: credentials_file`) or as the password of HTTP basic authentication (a
//! browser asks for it; any user name). `/health` stays open to what probes it: it tells
//! whether the recorder is well and why not, and no quote. Refusals are counted
//! (`tickrec_http_unauthorized_total`).
//!
//! Names follow Prometheus conventions: `tickrec_` prefix, base units in the name (`_seconds`,
//! `_ticks`), `_total` on counters.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use hdrhistogram::Histogram as Hdr;
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};

use crate::fix::gateway::SessionStatus;
use crate::pipeline::StatsSnapshot;
use crate::tick::Timestamp;

/// Everything one scrape shows.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// `record`, `ingest` or `migrate`.
    pub command: &'static str,
    pub stats: StatsSnapshot,
    /// `store_tick` latency, ns (every producer merged).
    pub store_tick: Hdr<u64>,
    /// Commit latency per storage backend, ns.
    pub commit: Vec<(String, Hdr<u64>)>,
    pub sessions: Vec<SessionStatus>,
    /// Receive time minus event time per feed source, ns.
    pub feed_latency: Vec<(String, Hdr<u64>)>,
    /// Why the process is unhealthy (empty when healthy): the pipeline's own verdict plus
    /// what the command adds (sessions down past their grace, stale symbols).
    pub problems: Vec<String>,
    /// Series of the command's own: (name, help, is a counter, value).
    pub extra: Vec<(&'static str, &'static str, bool, f64)>,
    pub now: Timestamp,
    /// The latest tick of each symbol (the status page's quote table).
    pub quotes: Vec<crate::tick::TickRow>,
    /// Today's day file with its WAL, bytes (when the command writes one).
    pub today_bytes: Option<u64>,
    /// The live fan-out's subscribers, when the command publishes.
    pub subscribers: Option<Vec<SubscriberStatus>>,
}

/// One subscriber of the live fan-out, as the status page lists it.
#[derive(Debug, Clone)]
pub struct SubscriberStatus {
    pub peer: String,
    /// The symbols it asked for, as it named them (`*`: every symbol).
    pub symbols: Vec<String>,
    /// The sources it asked for (empty: every source).
    pub sources: Vec<String>,
    /// Conflated: each symbol's latest tick at most once in this many milliseconds.
    pub conflate_ms: Option<u64>,
    pub since: Timestamp,
    pub ticks_sent: u64,
    /// Ticks of commits waiting for its thread (against `[publish] queue_ticks`).
    pub queued_ticks: u64,
}

impl Scrape {
    /// A scrape of `command` with nothing in it yet.
    pub fn new(command: &'static str, stats: StatsSnapshot) -> Scrape {
        let empty = || {
            Hdr::new_with_bounds(1, 100_000_000_000, 3)
                .unwrap_or_else(|_| unreachable!("constant bounds are valid"))
        };
        Scrape {
            command,
            problems: stats.health_problems.clone(),
            stats,
            store_tick: empty(),
            commit: Vec::new(),
            sessions: Vec::new(),
            feed_latency: Vec::new(),
            extra: Vec::new(),
            now: crate::clock::Clock::now(&crate::clock::SystemClock),
            quotes: Vec::new(),
            today_bytes: None,
            subscribers: None,
        }
    }

    /// A scrape of a running recorder: its statistics, verdict and histograms.
    pub fn of_recorder(command: &'static str, r: &crate::pipeline::Recorder) -> Scrape {
        let mut s = Scrape::new(command, r.stats());
        let (store_tick, commit) = r.latency_histograms();
        s.store_tick = store_tick;
        s.commit = commit;
        s.quotes = r.latest_quotes();
        s
    }
}

/// Produces a [`Scrape`] on demand.
pub type ScrapeFn = dyn Fn() -> Scrape + Send + Sync;

/// Upper bounds of the latency histograms, seconds: 100 ns to 10 s.
const LATENCY_BOUNDS_S: &[f64] = &[
    1e-7, 2.5e-7, 5e-7, 1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3,
    5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Metric families under construction, by name.
#[derive(Default)]
struct Families {
    order: Vec<String>,
    by_name: HashMap<String, MetricFamily>,
}

impl Families {
    fn family(&mut self, name: &str, help: &str, kind: MetricType) -> &mut MetricFamily {
        if !self.by_name.contains_key(name) {
            let mut f = MetricFamily::default();
            f.set_name(name.to_owned());
            f.set_help(help.to_owned());
            f.set_field_type(kind);
            self.order.push(name.to_owned());
            self.by_name.insert(name.to_owned(), f);
        }
        self.by_name
            .get_mut(name)
            .unwrap_or_else(|| unreachable!("inserted above"))
    }

    fn push(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        labels: &[(&str, &str)],
        mut m: Metric,
    ) {
        m.set_label(
            labels
                .iter()
                .map(|(k, v)| {
                    let mut l = LabelPair::default();
                    l.set_name((*k).to_owned());
                    l.set_value((*v).to_owned());
                    l
                })
                .collect(),
        );
        self.family(name, help, kind).mut_metric().push(m);
    }

    fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], v: u64) {
        self.counter_f64(name, help, labels, v as f64);
    }

    fn counter_f64(&mut self, name: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        let mut c = Counter::default();
        c.set_value(v);
        let mut m = Metric::default();
        m.set_counter(c);
        self.push(name, help, MetricType::COUNTER, labels, m);
    }

    fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        let mut g = Gauge::default();
        g.set_value(v);
        let mut m = Metric::default();
        m.set_gauge(g);
        self.push(name, help, MetricType::GAUGE, labels, m);
    }

    /// A histogram of nanosecond values, exposed in seconds.
    fn latency(&mut self, name: &str, help: &str, labels: &[(&str, &str)], h: &Hdr<u64>) {
        let mut out = Histogram::default();
        out.set_sample_count(h.len());
        let sum_ns: f64 = h
            .iter_recorded()
            .map(|v| v.value_iterated_to() as f64 * v.count_since_last_iteration() as f64)
            .sum();
        out.set_sample_sum(sum_ns / 1e9);
        let buckets = LATENCY_BOUNDS_S
            .iter()
            .map(|&le| {
                let mut b = Bucket::default();
                b.set_upper_bound(le);
                b.set_cumulative_count(h.count_between(0, (le * 1e9) as u64));
                b
            })
            .collect();
        out.set_bucket(buckets);
        let mut m = Metric::default();
        m.set_histogram(out);
        self.push(name, help, MetricType::HISTOGRAM, labels, m);
    }

    fn into_vec(mut self) -> Vec<MetricFamily> {
        self.order
            .iter()
            .filter_map(|n| self.by_name.remove(n))
            .collect()
    }
}

/// The Prometheus text exposition of `s`.
///
/// Long on purpose: a flat list of the series, one statement each, in the order README lists
/// them (each family's name, help and labels in one place).
pub fn exposition(s: &Scrape) -> String {
    let mut f = Families::default();
    let st = &s.stats;
    f.gauge(
        "tickrec_build_info",
        "Version of the running tickrec, and the command it runs.",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("command", s.command),
        ],
        1.0,
    );
    f.gauge(
        "tickrec_healthy",
        "1 when healthy, 0 when not (GET /health says why).",
        &[],
        if s.problems.is_empty() { 1.0 } else { 0.0 },
    );
    let intake: [(&str, &str, u64); 5] = [
        (
            "tickrec_ticks_received_total",
            "Ticks offered to the recorder.",
            st.ticks_received,
        ),
        (
            "tickrec_ticks_accepted_total",
            "Ticks accepted (each ends stored, dead-lettered, spilled or counted lost).",
            st.ticks_accepted,
        ),
        (
            "tickrec_ticks_dropped_total",
            "Ticks refused because the queue was full (overflow = drop).",
            st.ticks_dropped,
        ),
        (
            "tickrec_ticks_throttled_total",
            "Ticks refused by the per-symbol throttle.",
            st.ticks_throttled,
        ),
        (
            "tickrec_ticks_rejected_time_total",
            "Ticks refused for an event time outside the accepted window.",
            st.ticks_rejected_time,
        ),
    ];
    for (name, help, v) in intake {
        f.counter(name, help, &[], v);
    }
    // Only where a writer thread runs (`migrate` imports on its own thread).
    if st.writer_cpu_s > 0.0 {
        f.counter_f64(
            "tickrec_writer_cpu_seconds_total",
            "CPU time of the writer thread: near one second a second when the writer limits the recorder.",
            &[],
            st.writer_cpu_s,
        );
        f.counter_f64(
            "tickrec_writer_cpu_wait_seconds_total",
            "Time the writer thread was ready to run but waited for a CPU another thread or process had.",
            &[],
            st.writer_cpu_wait_s,
        );
    }
    for b in &st.backends {
        let l = [("backend", b.name.as_str())];
        let per_backend: [(&str, &str, u64); 9] = [
            (
                "tickrec_ticks_stored_total",
                "Ticks committed to the backend.",
                b.ticks_stored,
            ),
            (
                "tickrec_ticks_dead_lettered_total",
                "Ticks the backend refused as data, in a re-ingestable dead-letter file.",
                b.dead_lettered,
            ),
            (
                "tickrec_ticks_spilled_total",
                "Ticks set aside at shutdown of a stalled store, in a re-ingestable spill file.",
                b.ticks_spilled,
            ),
            (
                "tickrec_ticks_lost_total",
                "Ticks neither stored nor set aside (each logged with the reason).",
                b.ticks_lost,
            ),
            (
                "tickrec_write_errors_total",
                "Failed commits.",
                b.write_errors,
            ),
            (
                "tickrec_commit_retries_total",
                "Commits retried.",
                b.commit_retries,
            ),
            (
                "tickrec_batches_committed_total",
                "Transactions committed.",
                b.batches_committed,
            ),
            (
                "tickrec_db_rotations_total",
                "Day files opened by the writer (UTC midnight).",
                b.db_rotations,
            ),
            (
                "tickrec_late_ticks_total",
                "Ticks for a day other than the newest open one.",
                b.late_ticks,
            ),
        ];
        for (name, help, v) in per_backend {
            f.counter(name, help, &l, v);
        }
        f.gauge(
            "tickrec_store_stalled",
            "1 while the backend cannot write and holds its ticks.",
            &l,
            if b.stalled.is_some() { 1.0 } else { 0.0 },
        );
        // Only a backend with a WAL (SQLite) has a bound.
        if b.wal_bound_bytes > 0 {
            f.gauge(
                "tickrec_wal_bytes",
                "WAL of the day file committed last, after that commit.",
                &l,
                b.wal_bytes as f64,
            );
            f.gauge(
                "tickrec_wal_bound_bytes",
                "What the writer keeps the WAL under (writer.wal_max_mib).",
                &l,
                b.wal_bound_bytes as f64,
            );
            f.counter(
                "tickrec_wal_restarts_total",
                "WAL restarts: the WAL folded into the day file and cut to zero between commits.",
                &l,
                b.wal_restarts,
            );
            f.counter(
                "tickrec_wal_restarts_postponed_total",
                "WAL restarts put off because a reader held an old snapshot.",
                &l,
                b.wal_restarts_postponed,
            );
            f.counter_f64(
                "tickrec_wal_restart_seconds_total",
                "Writer time spent restarting the WAL or waiting for readers to let it.",
                &l,
                b.wal_restart_s,
            );
        }
    }
    f.gauge(
        "tickrec_queue_ticks",
        "Ticks in the channel to the writer.",
        &[],
        st.queue_size as f64,
    );
    f.gauge(
        "tickrec_queue_capacity_ticks",
        "Capacity of the channel to the writer.",
        &[],
        st.queue_capacity as f64,
    );
    f.gauge(
        "tickrec_writer_open_batch_ticks",
        "Ticks taken by the writer and not yet committed.",
        &[],
        st.ticks_in_writer as f64,
    );
    f.latency(
        "tickrec_store_tick_latency_seconds",
        "Time a producer spends in store_tick.",
        &[],
        &s.store_tick,
    );
    for (backend, h) in &s.commit {
        f.latency(
            "tickrec_commit_latency_seconds",
            "Time to commit one transaction.",
            &[("backend", backend)],
            h,
        );
    }
    for (source, h) in &s.feed_latency {
        f.latency(
            "tickrec_feed_latency_seconds",
            "Receive time minus event time (SendingTime) of market-data messages.",
            &[("source", source)],
            h,
        );
    }
    for &(name, help, counter, v) in &s.extra {
        if counter {
            f.counter(name, help, &[], v as u64);
        } else {
            f.gauge(name, help, &[], v);
        }
    }
    for ss in &s.sessions {
        let l = [("session", ss.name.as_str())];
        for state in SESSION_STATES {
            f.gauge(
                "tickrec_fix_session_state",
                "1 for the state the FIX session is in.",
                &[("session", ss.name.as_str()), ("state", state)],
                if ss.state == *state { 1.0 } else { 0.0 },
            );
        }
        f.gauge(
            "tickrec_fix_inbound_seq",
            "Next inbound MsgSeqNum expected.",
            &l,
            ss.next_inbound_seq as f64,
        );
        f.gauge(
            "tickrec_fix_outbound_seq",
            "Next outbound MsgSeqNum.",
            &l,
            ss.next_outbound_seq as f64,
        );
        let per_session: [(&str, &str, u64); 9] = [
            (
                "tickrec_fix_messages_received_total",
                "FIX messages received.",
                ss.messages_in,
            ),
            (
                "tickrec_fix_market_data_messages_total",
                "Market-data messages (35=W/X) processed.",
                ss.market_data_messages,
            ),
            (
                "tickrec_fix_ticks_total",
                "Ticks the session handed to the recorder.",
                ss.ticks,
            ),
            (
                "tickrec_fix_rejects_received_total",
                "Rejects received (35=3 and 35=Y).",
                ss.session_rejects + ss.md_rejects,
            ),
            (
                "tickrec_fix_rejects_sent_total",
                "Session-level Rejects sent.",
                ss.rejects_sent,
            ),
            (
                "tickrec_fix_malformed_messages_total",
                "Messages skipped as malformed or garbled.",
                ss.malformed + ss.framing_errors,
            ),
            (
                "tickrec_fix_reconnects_total",
                "Connections after the first.",
                ss.connects.saturating_sub(1),
            ),
            ("tickrec_fix_logons_total", "Logons completed.", ss.logons),
            (
                "tickrec_fix_resend_requests_total",
                "ResendRequests sent.",
                ss.resend_requests,
            ),
        ];
        for (name, help, v) in per_session {
            f.counter(name, help, &l, v);
        }
        if let Some(last) = ss.last_message {
            f.gauge(
                "tickrec_fix_last_message_age_seconds",
                "Time since the last message of the session.",
                &l,
                (s.now.0.saturating_sub(last.0)).max(0) as f64 / 1e9,
            );
        }
    }
    let mut out = Vec::new();
    // Encoding families built here cannot fail; an empty body would show it.
    let _ = TextEncoder::new().encode(&f.into_vec(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// The states a gateway reports (see `fix::gateway`).
const SESSION_STATES: &[&str] = &[
    "starting",
    "connecting",
    "logging on",
    "logged on",
    "resending",
    "logging out",
    "backing off",
    "disconnected",
    "stopped",
];

/// What `/health` and `/status.json` both say of a session.
fn session_json(ss: &SessionStatus) -> serde_json::Map<String, serde_json::Value> {
    serde_json::Map::from_iter([
        ("session".into(), serde_json::json!(ss.name)),
        ("source".into(), serde_json::json!(ss.source)),
        ("state".into(), serde_json::json!(ss.state)),
        ("up".into(), serde_json::json!(ss.is_up())),
        (
            "next_inbound_seq".into(),
            serde_json::json!(ss.next_inbound_seq),
        ),
        ("last_error".into(), serde_json::json!(ss.last_error)),
    ])
}

/// The body of `GET /health`.
pub fn health_json(s: &Scrape) -> String {
    let sessions: Vec<serde_json::Value> = s
        .sessions
        .iter()
        .map(|ss| serde_json::Value::Object(session_json(ss)))
        .collect();
    serde_json::json!({
        "status": if s.problems.is_empty() { "ok" } else { "unhealthy" },
        "command": s.command,
        "problems": s.problems,
        "ticks_received": s.stats.ticks_received,
        "ticks_stored": s.stats.ticks_stored,
        "ticks_lost": s.stats.ticks_lost,
        "queue": s.stats.queue_size,
        "queue_capacity": s.stats.queue_capacity,
        "sessions": sessions,
    })
    .to_string()
}

/// The body of `GET /status.json` (and of each `/events` message): what the status page shows.
pub fn status_json(s: &Scrape) -> String {
    let sessions: Vec<serde_json::Value> = s
        .sessions
        .iter()
        .map(|ss| {
            let mut m = session_json(ss);
            m.extend([
                (
                    "next_outbound_seq".into(),
                    serde_json::json!(ss.next_outbound_seq),
                ),
                ("messages_in".into(), serde_json::json!(ss.messages_in)),
                ("ticks".into(), serde_json::json!(ss.ticks)),
                (
                    "last_message_age_s".into(),
                    serde_json::json!(ss
                        .last_message
                        .map(|t| (s.now.0.saturating_sub(t.0)).max(0) as f64 / 1e9)),
                ),
            ]);
            serde_json::Value::Object(m)
        })
        .collect();
    let opt = |d: Option<crate::tick::Decimal>| d.map(|d| d.to_string());
    let quotes: Vec<serde_json::Value> = s
        .quotes
        .iter()
        .map(|q| {
            // Whether a session that records this source is up (`null` where no session
            // does, as for `ingest`): a quote of a source whose sessions are all down is stale.
            let mut of_source = s
                .sessions
                .iter()
                .filter(|ss| *ss.source == *q.source)
                .peekable();
            let session_up = of_source
                .peek()
                .is_some()
                .then(|| of_source.any(|ss| ss.is_up()));
            serde_json::json!({
                "symbol": &*q.symbol,
                "bid": opt(q.bid),
                "ask": opt(q.ask),
                "bid_size": opt(q.bid_size),
                "ask_size": opt(q.ask_size),
                "ts_event": q.ts_event.to_string(),
                "source": &*q.source,
                // Since it was received, by the recorder's clock.
                "age_s": s.now.0.saturating_sub(q.ts_recv.0).max(0) as f64 / 1e9,
                "session_up": session_up,
            })
        })
        .collect();
    let st = &s.stats;
    // The SQLite store's (the only backend with a WAL).
    let wal = st.backends.iter().find(|b| b.wal_bound_bytes > 0);
    // The live fan-out's, when `record` publishes (`null` otherwise).
    let extra = |name: &str| s.extra.iter().find(|e| e.0 == name).map(|e| e.3 as u64);
    serde_json::json!({
        "status": if s.problems.is_empty() { "ok" } else { "unhealthy" },
        "command": s.command,
        "problems": s.problems,
        "now_ns": s.now.0,
        "ticks_received": st.ticks_received,
        "ticks_accepted": st.ticks_accepted,
        "ticks_stored": st.ticks_stored,
        "ticks_lost": st.ticks_lost,
        "ticks_dropped": st.ticks_dropped,
        "queue": st.queue_size,
        "queue_capacity": st.queue_capacity,
        "store_tick_p99_ns": st.store_tick_latency.p99_ns,
        "commit_p99_ns": st.commit_latency.p99_ns,
        // Where a writer thread runs (not `migrate`): its CPU and its wait for one so far, s.
        "writer_cpu_s": (st.writer_cpu_s > 0.0).then_some(st.writer_cpu_s),
        "writer_cpu_wait_s": (st.writer_cpu_s > 0.0).then_some(st.writer_cpu_wait_s),
        "today_bytes": s.today_bytes,
        "wal_bytes": wal.map(|b| b.wal_bytes),
        "wal_bound_bytes": wal.map(|b| b.wal_bound_bytes),
        "sessions": sessions,
        "quotes": quotes,
        "subscribers": extra("tickrec_publish_subscribers"),
        "subscribers_cut_off": extra("tickrec_publish_subscribers_cut_off_total"),
        "subscriber_list": s.subscribers.as_ref().map(|list| {
            list.iter()
                .map(|c| {
                    serde_json::json!({
                        "peer": c.peer,
                        "symbols": c.symbols,
                        "sources": c.sources,
                        "conflate_ms": c.conflate_ms,
                        "since": c.since.to_string(),
                        "ticks_sent": c.ticks_sent,
                        "queued_ticks": c.queued_ticks,
                    })
                })
                .collect::<Vec<_>>()
        }),
    })
    .to_string()
}

/// The status page (no build step, no CDN: the whole page is this file, in the binary).
const STATUS_HTML: &str = include_str!("status.html");

/// Seconds between two status messages on `/events`.
const EVENT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);
/// Status pages streaming at once (each a thread, a connection and a scrape every
/// [`EVENT_EVERY`]); one more gets 503 and the reason.
const MAX_EVENT_STREAMS: usize = 32;

/// The HTTP listener; stops when dropped.
pub struct Server {
    http: crate::http::Server,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "metrics::Server({})", self.http.addr())
    }
}

/// Logs a warning when `bound` (a listener of `what`) takes connections from beyond this host:
/// neither the metrics listener nor the subscribers' port encrypts its stream, and without a
/// `token` neither authenticates a peer (README, *Live subscribers*: how to reach them from
/// elsewhere).
pub fn warn_beyond_loopback(bound: SocketAddr, what: &str, token: bool) {
    if bound.ip().is_loopback() {
        return;
    }
    if token {
        tracing::warn!(
            addr = %bound,
            "{what}: listening beyond loopback, asking for its token but in clear (the token \
             too); keep it on a trusted network or reach it through an SSH tunnel or a TLS proxy"
        );
    } else {
        tracing::warn!(
            addr = %bound,
            "{what}: listening beyond loopback, where any host that reaches this address is \
             served unauthenticated and in clear; set its token_file, keep it on a trusted \
             network or reach it through an SSH tunnel or a TLS proxy"
        );
    }
}

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("metrics listener on {addr}: {why}")]
pub struct ListenError {
    pub addr: String,
    pub why: String,
}

impl Server {
    /// Listens on `addr` (`host:port`) and answers from `scrape`; with `token`, only to
    /// requests that carry it (but `/health`).
    pub fn start(
        addr: &str,
        scrape: Arc<ScrapeFn>,
        token: Option<crate::auth::Token>,
    ) -> Result<Server, ListenError> {
        let err = |why: String| ListenError {
            addr: addr.to_owned(),
            why,
        };
        let listener = std::net::TcpListener::bind(addr).map_err(|e| err(e.to_string()))?;
        let bound = listener.local_addr().map_err(|e| err(e.to_string()))?;
        const WHAT: &str = "metrics, health and status page";
        let has_token = token.is_some();
        if let Some(token) = &token {
            token.warn_if_readable_by_all(WHAT);
        }
        let stop = crate::shutdown::Shutdown::new();
        let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let unauthorized = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let waiting = crate::slots::Waiting::new(
            crate::http::MAX_WAITING,
            crate::http::MAX_WAITING_PER_ADDRESS,
        );
        let handler = Handler {
            scrape: with_listener_counts(scrape, has_token, &refused, &unauthorized, &waiting),
            token,
            streams: crate::slots::Slots::new(MAX_EVENT_STREAMS),
            unauthorized,
            refusals_logged: crate::slots::Throttle::default(),
            stop: stop.clone(),
        };
        let handler: Arc<crate::http::Handler> = Arc::new(move |req| handler.answer(req));
        let http = crate::http::Server::start(
            listener,
            "metrics listener",
            crate::http::Limits::default(),
            waiting,
            handler,
            stop,
            refused,
        )
        .map_err(|e| err(e.to_string()))?;
        tracing::info!(addr = %bound, "metrics, health and status page listening (/metrics, /health, /)");
        warn_beyond_loopback(bound, WHAT, has_token);
        Ok(Server { http })
    }

    pub fn addr(&self) -> SocketAddr {
        self.http.addr()
    }
}

/// `scrape`, and what the listener itself counts: connections refused for want of a place or
/// closed to make room, and (with a token) requests refused for a missing or wrong one.
fn with_listener_counts(
    scrape: Arc<ScrapeFn>,
    token: bool,
    refused: &Arc<std::sync::atomic::AtomicU64>,
    unauthorized: &Arc<std::sync::atomic::AtomicU64>,
    waiting: &crate::slots::Waiting,
) -> Arc<ScrapeFn> {
    let (refused, unauthorized) = (Arc::clone(refused), Arc::clone(unauthorized));
    let waiting = waiting.clone();
    Arc::new(move || {
        let mut s = scrape();
        let count =
            |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed) as f64;
        s.extra.push((
            "tickrec_http_connections_refused_total",
            "Connections to this listener refused for want of a place (every place, in all or \
             of their address, held by connections being answered)",
            true,
            count(&refused),
        ));
        s.extra.push((
            "tickrec_http_connections_closed_for_room_total",
            "Connections to this listener that waited longest without sending a request, \
             closed to make room for a new one",
            true,
            waiting.closed_for_room() as f64,
        ));
        if token {
            s.extra.push((
                "tickrec_http_unauthorized_total",
                "Requests to this listener refused for a missing or wrong token",
                true,
                count(&unauthorized),
            ));
        }
        s
    })
}

/// Answers the listener's requests.
struct Handler {
    scrape: Arc<ScrapeFn>,
    token: Option<crate::auth::Token>,
    /// Places of the status pages' event streams.
    streams: crate::slots::Slots,
    /// Requests refused for a missing or wrong token.
    unauthorized: Arc<std::sync::atomic::AtomicU64>,
    /// The log lines of those refusals, at most one a second.
    refusals_logged: crate::slots::Throttle,
    /// Ends the event streams.
    stop: crate::shutdown::Shutdown,
}

impl Handler {
    fn answer(&self, req: &crate::http::Request) -> crate::http::Response {
        use crate::http::Response;
        let path = req.path.as_str();
        if let Some(token) = self.token.as_ref().filter(|_| path != "/health") {
            if !token.allows_http(req.authorization.as_deref()) {
                self.unauthorized
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // Info, not a warning: a browser's first request is refused so that it asks
                // for the password. The counter is what to alert on; the log says it at most
                // once a second (`held_back`: those refused since).
                if let Some(held_back) = self.refusals_logged.let_through() {
                    tracing::info!(peer = %req.peer, %path, held_back, "metrics listener: a request without the token");
                }
                return Response::new(
                    401,
                    TEXT,
                    "unauthorized: this recorder asks for its token ([metrics] token_file), as \
                     `Authorization: Bearer TOKEN` or as the password of basic authentication\n",
                )
                .with_header(
                    "WWW-Authenticate",
                    "Basic realm=\"tickrec\", charset=\"UTF-8\"",
                );
            }
        }
        match path {
            "/" => Response::new(200, "text/html; charset=utf-8", STATUS_HTML),
            "/status.json" => Response::new(200, "application/json", status_json(&(self.scrape)())),
            "/events" => {
                let Some(slot) = self.streams.take() else {
                    return Response::new(
                        503,
                        TEXT,
                        format!(
                            "{MAX_EVENT_STREAMS} status pages are streaming, the most this recorder serves\n"
                        ),
                    );
                };
                let (scrape, stop) = (Arc::clone(&self.scrape), self.stop.clone());
                Response::stream(
                    "text/event-stream",
                    Box::new(move |w| {
                        let _slot = slot;
                        stream_events(w, &*scrape, &stop)
                    }),
                )
            }
            "/metrics" => Response::new(200, prometheus::TEXT_FORMAT, exposition(&(self.scrape)())),
            "/health" => {
                let s = (self.scrape)();
                let code = if s.problems.is_empty() { 200 } else { 503 };
                Response::new(code, "application/json", health_json(&s))
            }
            _ => Response::new(404, TEXT, "not found: try /, /metrics or /health\n"),
        }
    }
}

const TEXT: &str = "text/plain; charset=utf-8";

/// Server-sent events: the status every [`EVENT_EVERY`] until the page goes away or the
/// server stops, each message flushed as it is made.
fn stream_events(w: &mut dyn std::io::Write, scrape: &ScrapeFn, stop: &crate::shutdown::Shutdown) {
    loop {
        let msg = format!("data: {}\n\n", status_json(&scrape()));
        if w.write_all(msg.as_bytes()).and_then(|_| w.flush()).is_err() {
            return;
        }
        if stop.wait_timeout(EVENT_EVERY) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(name: &str, source: &str, state: &str) -> SessionStatus {
        SessionStatus {
            name: name.into(),
            source: source.into(),
            state: state.into(),
            ..SessionStatus::default()
        }
    }

    fn quote(symbol: &str, source: &str, ts_recv: i64) -> crate::tick::TickRow {
        crate::tick::TickRow {
            seq: None,
            symbol: symbol.into(),
            source: source.into(),
            ts_event: Timestamp(ts_recv - 1_000_000),
            ts_recv: Timestamp(ts_recv),
            bid: None,
            ask: None,
            bid_size: None,
            ask_size: None,
        }
    }

    #[test]
    fn a_quote_says_its_age_and_whether_a_session_of_its_source_is_up() {
        let mut s = Scrape::new("record", StatsSnapshot::default());
        s.now = Timestamp(10_000_000_000);
        s.sessions = vec![
            session("REC->LP1", "LP1", "disconnected"),
            session("REC->LP2", "LP2", "backing off"),
            session("REC->LP2B", "LP2", "resending"),
        ];
        s.quotes = vec![
            quote("EURUSD", "LP1", 9_750_000_000),
            quote("GBPUSD", "LP2", 8_000_000_000),
            quote("USDJPY", "FILE", 1_000_000_000),
            // A receive time ahead of the clock that reads it (a clock stepped back).
            quote("AUDUSD", "LP2", 11_000_000_000),
        ];
        let v: serde_json::Value = serde_json::from_str(&status_json(&s)).unwrap();
        let q = |i: usize, k: &str| v["quotes"][i][k].clone();
        assert_eq!(q(0, "age_s"), 0.25);
        assert_eq!(q(0, "session_up"), false, "LP1's only session is down");
        assert_eq!(q(1, "age_s"), 2.0);
        assert_eq!(q(1, "session_up"), true, "one of LP2's two sessions is up");
        assert_eq!(
            q(2, "session_up"),
            serde_json::Value::Null,
            "no session records FILE"
        );
        assert_eq!(q(3, "age_s"), 0.0);
        assert_eq!(v["sessions"][1]["source"], "LP2");
        assert_eq!(v["sessions"][1]["up"], false);
        assert_eq!(v["sessions"][2]["up"], true, "resending is up");
    }
}
