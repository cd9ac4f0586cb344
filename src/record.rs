//! `tickrec record`: one FIX gateway thread per configured session, all feeding one recorder,
//! until shutdown; then every session logs out, the recorder drains, and the final statistics
//! (with each session's status) are returned.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::clock::SystemClock;
use crate::config::Options;
use crate::fix::gateway::{self, GatewayOptions, SessionStatus, StatusHandle};
use crate::metrics::{Scrape, ScrapeFn};
use crate::pipeline::{Latency, Recorder, StatsSnapshot};
use crate::service;
use crate::shutdown::Shutdown;
use crate::tick::Timestamp;

/// How long a change of health must hold before it is logged.
const HEALTH_SETTLE: Duration = Duration::from_secs(1);

/// What a recording run did.
#[derive(Debug, Clone)]
pub struct RecordReport {
    /// From the sessions' start until the recorder drained (the last tick committed).
    pub elapsed: Duration,
    pub stats: StatsSnapshot,
    pub sessions: Vec<SessionStatus>,
    /// Per session (by identity): the inbound MsgSeqNum the next start will request from, as
    /// committed in the store; `None` when nothing of it is committed.
    pub resume: Vec<(String, Option<u64>)>,
    /// Every `store_tick` call's latency (ns), all producers merged: for figures finer than
    /// the percentiles in `stats` (`tickrec bench`).
    pub store_tick_latency: hdrhistogram::Histogram<u64>,
}

/// Why recording could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error("no FIX session configured")]
    NoSession,
    #[error("starting the recorder: {0}")]
    Recorder(#[from] std::io::Error),
    #[error(transparent)]
    Gateway(#[from] gateway::GatewayError),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::ListenError),
    #[error("publishing on {addr}: {source}")]
    Publish {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// Records until `shutdown`, logging statistics every `report_every`.
///
/// Long (~85 lines) on purpose: the run's life in order (start, serve, stop, drain, settle).
pub fn run(
    opts: &Options,
    sessions: Vec<GatewayOptions>,
    shutdown: &Shutdown,
    report_every: Duration,
) -> Result<RecordReport, RecordError> {
    if sessions.is_empty() {
        return Err(RecordError::NoSession);
    }
    let Started {
        recorder,
        store,
        publisher,
        publish_stop,
        publishing,
    } = start(opts)?;
    // Gateways stop on their own latch, set after the process-wide one, so that they log out
    // before the recorder drains.
    let stop = Shutdown::new();
    let identities: Vec<GatewayOptions> = sessions.clone();
    let feed: Vec<(String, Arc<Latency>)> = sessions
        .iter()
        .map(|g| (g.source.clone(), Arc::new(Latency::default())))
        .collect();
    let (threads, statuses) = spawn_gateways(sessions, &feed, &recorder, &store, &stop)?;
    let started = Instant::now();
    // What the loop below finds wrong beyond the pipeline's own verdict; /health reads it.
    let session_problems: Arc<Mutex<Vec<String>>> = Arc::default();
    let _metrics = match &opts.metrics_listen {
        Some(addr) => {
            let scrape = scrape_fn(
                &recorder,
                &statuses,
                &feed,
                &session_problems,
                publisher.clone(),
                opts.db_path.clone(),
            );
            match crate::metrics::Server::start(addr, scrape, opts.metrics_token.clone()) {
                Ok(server) => Some(server),
                Err(e) => {
                    abandon(&stop, threads, &recorder);
                    return Err(e.into());
                }
            }
        }
        None => None,
    };
    watch(
        opts,
        shutdown,
        report_every,
        &Watched {
            recorder: &recorder,
            statuses: &statuses,
            identities: &identities,
            session_problems: &session_problems,
            publisher: publisher.as_deref(),
            started,
        },
    );
    stop.request();
    join_gateways(opts, threads, &identities, &recorder);
    let mut stats = recorder.shutdown();
    let store_tick_latency = recorder.latency_histograms().0;
    // Until the last counted tick is committed: the drain is part of the run.
    let elapsed = started.elapsed();
    publish_stop.request();
    if let Some(h) = publishing {
        let _ = h.join();
    }
    for st in statuses.iter().map(snapshot).filter(|s| s.logons == 0) {
        stats.healthy = false;
        stats.health_problems.push(format!(
            "session {} never logged on ({})",
            st.name,
            st.last_error.as_deref().unwrap_or(&st.state)
        ));
    }
    let sessions_now: Vec<SessionStatus> = statuses.iter().map(snapshot).collect();
    let resume = settle_positions(opts, &store, &identities, &sessions_now, &stats);
    Ok(RecordReport {
        elapsed,
        stats,
        sessions: sessions_now,
        resume,
        store_tick_latency,
    })
}

/// One gateway thread per session, each with its feed latency; on a failure the ones started
/// are stopped again.
fn spawn_gateways(
    sessions: Vec<GatewayOptions>,
    feed: &[(String, Arc<Latency>)],
    recorder: &Arc<Recorder>,
    store: &crate::store::reader::Store,
    stop: &Shutdown,
) -> Result<(Vec<JoinHandle<()>>, Vec<StatusHandle>), RecordError> {
    let (mut threads, mut statuses) = (Vec::new(), Vec::new());
    for (g, (_, latency)) in sessions.into_iter().zip(feed) {
        match gateway::spawn(
            g,
            recorder.clone(),
            store.clone(),
            stop.clone(),
            Arc::new(SystemClock),
            Arc::clone(latency),
        ) {
            Ok((handle, status)) => {
                threads.push(handle);
                statuses.push(status);
            }
            Err(e) => {
                abandon(stop, threads, recorder);
                return Err(e.into());
            }
        }
    }
    Ok((threads, statuses))
}

/// Waits for the gateways to log out after their latch was set. A gateway waiting for room
/// behind a stalled store cannot log out: past half the shutdown bound it is refused (see
/// `Recorder::give_up`).
fn join_gateways(
    opts: &Options,
    threads: Vec<JoinHandle<()>>,
    identities: &[GatewayOptions],
    recorder: &Recorder,
) {
    let give_up_at = Instant::now() + opts.pipeline.shutdown_timeout / 2;
    for (t, g) in threads.into_iter().zip(identities) {
        while !t.is_finished() {
            if Instant::now() >= give_up_at {
                recorder.give_up();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if t.join().is_err() {
            tracing::error!(session = %g.origin(), "the session's gateway thread panicked");
        }
    }
}

/// After the recorder drained: each session's resume point as committed in the store (and,
/// when every accepted tick was stored, the sessions' final inbound numbers committed first).
fn settle_positions(
    opts: &Options,
    store: &crate::store::reader::Store,
    identities: &[GatewayOptions],
    sessions_now: &[SessionStatus],
    stats: &StatsSnapshot,
) -> Vec<(String, Option<u64>)> {
    // After a complete stop, the sessions' final inbound numbers (moved on by admin messages
    // only, such as the counterparty's Logout) are committed too: a clean restart then asks
    // for nothing (see `store::writer::commit_positions`).
    if stats.ticks_stored == stats.ticks_accepted {
        let positions: Vec<(String, u64)> = identities
            .iter()
            .zip(sessions_now)
            .filter_map(|(g, st)| {
                let committed = g.recovered_next_inbound(store).ok().flatten().unwrap_or(1);
                (st.next_inbound_seq > committed).then(|| (g.origin(), st.next_inbound_seq))
            })
            .collect();
        if let Err(e) =
            crate::store::writer::commit_positions(&opts.db_path, &opts.writer, &positions)
        {
            tracing::warn!(error = %e, "could not commit the sessions' final inbound numbers; the next start will ask for the admin messages again");
        }
    }
    identities
        .iter()
        .map(|g| {
            let next = g.recovered_next_inbound(store).unwrap_or_else(|e| {
                tracing::error!(session = %g.origin(), error = %e, "cannot read the session's resume point");
                None
            });
            (g.origin(), next)
        })
        .collect()
}

/// A start that fails part way: the sessions already started stop, and what they took is
/// committed, before the error is returned.
fn abandon(stop: &Shutdown, threads: Vec<std::thread::JoinHandle<()>>, recorder: &Recorder) {
    stop.request();
    for t in threads {
        let _ = t.join();
    }
    recorder.shutdown();
}

/// What /metrics and /health show of a running `record`.
fn scrape_fn(
    recorder: &Arc<Recorder>,
    statuses: &[StatusHandle],
    feed: &[(String, Arc<Latency>)],
    problems: &Arc<Mutex<Vec<String>>>,
    publisher: Option<Arc<crate::publish::Publisher>>,
    db_path: std::path::PathBuf,
) -> Arc<ScrapeFn> {
    let (recorder, statuses, feed, problems) = (
        Arc::clone(recorder),
        statuses.to_vec(),
        feed.to_vec(),
        Arc::clone(problems),
    );
    Arc::new(move || {
        let mut s = scrape_of(&recorder, &statuses, &feed, &problems);
        let today = crate::store::layout::day_path(&db_path, s.now.day());
        let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
        s.today_bytes = Some(size(&today) + size(&crate::fsutil::with_suffix(&today, "-wal")));
        if let Some(publisher) = &publisher {
            let list = publisher.subscriber_list();
            let connected = list.len() as f64;
            let furthest_behind = list.iter().map(|c| c.queued_ticks).max().unwrap_or(0);
            s.subscribers = Some(list);
            let p = publisher.stats();
            use std::sync::atomic::Ordering::Relaxed;
            let v = |a: &std::sync::atomic::AtomicU64| a.load(Relaxed) as f64;
            s.extra.extend([
                (
                    "tickrec_publish_subscribers",
                    "Subscribers connected to the live fan-out",
                    false,
                    connected,
                ),
                (
                    "tickrec_publish_subscribers_connected_total",
                    "Subscriptions accepted",
                    true,
                    v(&p.connected_total),
                ),
                (
                    "tickrec_publish_subscribers_cut_off_total",
                    "Subscribers disconnected for falling behind",
                    true,
                    v(&p.disconnected_slow_total),
                ),
                (
                    "tickrec_publish_requests_refused_total",
                    "Subscription requests refused (not valid, or past [publish] max_subscribers)",
                    true,
                    v(&p.rejected_requests_total),
                ),
                (
                    "tickrec_publish_connections_closed_for_room_total",
                    "Connections that waited longest without sending a request line, closed to \
                     make room for a new one",
                    true,
                    publisher.closed_for_room() as f64,
                ),
                (
                    "tickrec_publish_unauthorized_total",
                    "Subscription requests refused for a missing or wrong token",
                    true,
                    v(&p.unauthorized_total),
                ),
                (
                    "tickrec_publish_ticks_sent_total",
                    "Live ticks sent to subscribers",
                    true,
                    v(&p.ticks_sent_total),
                ),
                (
                    "tickrec_publish_queued_ticks_max",
                    "Ticks waiting for the subscriber furthest behind (cut off past \
                     tickrec_publish_queue_ticks_bound)",
                    false,
                    furthest_behind as f64,
                ),
                (
                    "tickrec_publish_queue_ticks_bound",
                    "Ticks a subscriber may have waiting before it is cut off ([publish] \
                     queue_ticks)",
                    false,
                    publisher.max_queued() as f64,
                ),
            ]);
            if let Some(usable) = publisher.token_usable() {
                s.extra.push((
                    "tickrec_publish_token_usable",
                    "1 while [publish] token_file holds a usable token; 0: no subscriber is let in",
                    false,
                    f64::from(u8::from(usable)),
                ));
            }
        }
        s
    })
}

fn scrape_of(
    recorder: &Arc<Recorder>,
    statuses: &[StatusHandle],
    feed: &[(String, Arc<Latency>)],
    problems: &Arc<Mutex<Vec<String>>>,
) -> Scrape {
    let mut s = Scrape::of_recorder("record", recorder);
    s.sessions = statuses.iter().map(snapshot).collect();
    s.feed_latency = feed
        .iter()
        .map(|(source, l)| (source.clone(), l.histogram()))
        .collect();
    s.problems.extend(
        problems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned(),
    );
    s
}

/// The recorder, the store's reader and, with `[publish] listen`, the fan-out, running.
struct Started {
    recorder: Arc<Recorder>,
    store: crate::store::reader::Store,
    publisher: Option<Arc<crate::publish::Publisher>>,
    /// Subscribers are served until the recorder has drained (they see the last commits).
    publish_stop: Shutdown,
    publishing: Option<std::thread::JoinHandle<()>>,
}

fn start(opts: &Options) -> Result<Started, RecordError> {
    if let (Some(addr), crate::config::Backend::Json) = (&opts.publish_listen, opts.backend) {
        // Ticks are published as the SQLite writer commits them, with their seq.
        return Err(RecordError::Publish {
            addr: addr.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "publishing needs the sqlite backend (storage.backend = \"sqlite\" or \"dual\")",
            ),
        });
    }
    let names = Arc::new(crate::intern::Names::new(opts.pipeline.max_symbols));
    let publisher = match &opts.publish_listen {
        Some(_) => Some(crate::publish::Publisher::new(
            names.clone(),
            opts.publish_queue_ticks,
            Duration::from_secs(opts.publish_heartbeat_secs.into()),
            opts.publish_max_subscribers,
            opts.publish_token.clone(),
        )?),
        None => None,
    };
    let observer = publisher
        .clone()
        .map(|p| p as Arc<dyn crate::store::writer::CommitObserver>);
    let recorder = Arc::new(service::start_recorder_with(opts, names, observer)?);
    let store = service::open_store(opts);
    let publish_stop = Shutdown::new();
    let publishing = match (&publisher, &opts.publish_listen) {
        (Some(p), Some(addr)) => {
            let served = p.serve(addr, recorder.clone(), store.clone(), publish_stop.clone());
            match served {
                Ok(h) => {
                    tracing::info!(%addr, "publishing committed ticks to subscribers");
                    Some(h)
                }
                Err(e) => {
                    recorder.shutdown();
                    return Err(RecordError::Publish {
                        addr: addr.clone(),
                        source: e,
                    });
                }
            }
        }
        _ => None,
    };
    Ok(Started {
        recorder,
        store,
        publisher,
        publish_stop,
        publishing,
    })
}

/// What [`watch`] looks at.
struct Watched<'a> {
    recorder: &'a Arc<Recorder>,
    statuses: &'a [StatusHandle],
    identities: &'a [GatewayOptions],
    /// What the loop finds wrong beyond the pipeline's own verdict; /health reads it.
    session_problems: &'a Arc<Mutex<Vec<String>>>,
    /// Told when a session goes down or comes up (its subscribers' `session` lines).
    publisher: Option<&'a crate::publish::Publisher>,
    started: Instant,
}

/// Until `shutdown`: health (the pipeline's verdict, sessions down past their grace, stale
/// symbols) for /health and the log, and a status line every `report_every`.
fn watch(opts: &Options, shutdown: &Shutdown, report_every: Duration, w: &Watched<'_>) {
    let (recorder, statuses, identities, session_problems, started) = (
        w.recorder,
        w.statuses,
        w.identities,
        w.session_problems,
        w.started,
    );
    let mut last_report = Instant::now();
    let mut down_since: Vec<Option<Instant>> = vec![Some(started); statuses.len()];
    let mut was_healthy = true;
    let mut candidate: Option<(bool, Instant)> = None;
    while !shutdown.wait_timeout(Duration::from_millis(200)) {
        let now = Instant::now();
        // A quiet liquidity provider's last quotes stay on screens and in snapshots.
        recorder.keep_latest_quotes();
        let mut problems = recorder.stats().health_problems;
        let mut extra = stale_symbols(recorder, identities, &opts.pipeline.health, started);
        for ((st, since), g) in statuses.iter().zip(down_since.iter_mut()).zip(identities) {
            let st = snapshot(st);
            let up = st.is_up();
            if let Some(p) = w.publisher {
                p.session_state(&st.name, &g.source, &st.state, up, &g.symbols);
            }
            match (up, *since) {
                (true, _) => *since = None,
                (false, None) => *since = Some(now),
                (false, Some(t)) if now - t > opts.pipeline.health.session_grace => {
                    extra.push(format!(
                        "session {} not logged on for {:.0}s ({})",
                        st.name,
                        (now - t).as_secs_f64(),
                        st.last_error.as_deref().unwrap_or(&st.state)
                    ))
                }
                _ => {}
            }
        }
        problems.extend(extra.iter().cloned());
        *session_problems.lock().unwrap_or_else(|e| e.into_inner()) = extra;
        // Health is logged when it changes and the change has held for a second (a queue
        // brushing its threshold under a burst would otherwise flap the log).
        let healthy = problems.is_empty();
        match candidate {
            Some((h, since)) if h == healthy => {
                if h != was_healthy && now - since >= HEALTH_SETTLE {
                    if healthy {
                        tracing::info!("health: ok");
                    } else {
                        tracing::error!("health: UNHEALTHY ({})", problems.join("; "));
                    }
                    was_healthy = healthy;
                }
            }
            _ => candidate = Some((healthy, now)),
        }
        if last_report.elapsed() >= report_every {
            last_report = Instant::now();
            let s = recorder.stats();
            tracing::info!(
                received = s.ticks_received,
                stored = s.ticks_stored,
                queue = s.queue_size,
                healthy,
                "recording"
            );
            for st in statuses {
                tracing::info!("{}", snapshot(st));
            }
        }
    }
}

/// Subscribed symbols without a tick for `health.stale_after_s` within the trading hours
/// (a symbol that never ticked counts from the start of the run).
fn stale_symbols(
    recorder: &Recorder,
    sessions: &[GatewayOptions],
    policy: &crate::pipeline::HealthPolicy,
    started: Instant,
) -> Vec<String> {
    let Some(limit) = policy.stale_after else {
        return Vec::new();
    };
    let now = crate::clock::Clock::now(&SystemClock);
    if policy.trading_hours.is_some_and(|w| !w.contains(now)) {
        return Vec::new();
    }
    let limit_ns = i64::try_from(limit.as_nanos()).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    for g in sessions {
        for symbol in &g.symbols {
            let last = recorder
                .recent_by_name(symbol, 1)
                .first()
                .map(|t| t.ts_recv);
            let silent_ns = match last {
                Some(Timestamp(t)) => now.0.saturating_sub(t),
                None => i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX),
            };
            if silent_ns > limit_ns {
                out.push(format!(
                    "symbol {symbol} ({}): no tick for {:.0}s (stale after {}s)",
                    g.source,
                    silent_ns as f64 / 1e9,
                    limit.as_secs()
                ));
            }
        }
    }
    out
}

fn snapshot(s: &StatusHandle) -> SessionStatus {
    s.lock().unwrap_or_else(|e| e.into_inner()).clone()
}
