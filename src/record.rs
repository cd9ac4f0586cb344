//! `tickrec record`: one FIX gateway thread per configured session, all feeding one recorder,
//! until shutdown; then every session logs out, the recorder drains, and the final statistics
//! (with each session's status) are returned.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::SystemClock;
use crate::config::Options;
use crate::fix::gateway::{self, GatewayOptions, SessionStatus, StatusHandle};
use crate::pipeline::StatsSnapshot;
use crate::service;
use crate::shutdown::Shutdown;

/// How long a change of health must hold before it is logged.
const HEALTH_SETTLE: Duration = Duration::from_secs(1);

/// What a recording run did.
#[derive(Debug, Clone)]
pub struct RecordReport {
    pub elapsed: Duration,
    pub stats: StatsSnapshot,
    pub sessions: Vec<SessionStatus>,
    /// Per session (by identity): the inbound MsgSeqNum the next start will request from, as
    /// committed in the store; `None` when nothing of it is committed.
    pub resume: Vec<(String, Option<u64>)>,
}

/// Records until `shutdown`, logging statistics every `report_every`.
pub fn run(
    opts: &Options,
    sessions: Vec<GatewayOptions>,
    shutdown: &Shutdown,
    report_every: Duration,
) -> anyhow::Result<RecordReport> {
    anyhow::ensure!(!sessions.is_empty(), "no FIX session configured");
    let recorder = Arc::new(service::start_recorder(opts)?);
    let store = service::open_store(opts);
    // Gateways stop on their own latch, set after the process-wide one, so that they log out
    // before the recorder drains.
    let stop = Shutdown::new();
    let mut threads = Vec::new();
    let mut statuses: Vec<StatusHandle> = Vec::new();
    let identities: Vec<GatewayOptions> = sessions.clone();
    for g in sessions {
        match gateway::spawn(
            g,
            recorder.clone(),
            store.clone(),
            stop.clone(),
            Arc::new(SystemClock),
        ) {
            Ok((handle, status)) => {
                threads.push(handle);
                statuses.push(status);
            }
            Err(e) => {
                // Stop the sessions already started, and commit what they took, before failing.
                stop.request();
                for t in threads {
                    let _ = t.join();
                }
                recorder.shutdown();
                return Err(e.into());
            }
        }
    }
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut down_since: Vec<Option<Instant>> = vec![Some(started); statuses.len()];
    let mut was_healthy = true;
    let mut candidate: Option<(bool, Instant)> = None;
    while !shutdown.wait_timeout(Duration::from_millis(200)) {
        let now = Instant::now();
        let mut problems = recorder.stats().health_problems;
        for (st, since) in statuses.iter().zip(down_since.iter_mut()) {
            let st = snapshot(st);
            let up = st.state == "logged on" || st.state == "resending";
            match (up, *since) {
                (true, _) => *since = None,
                (false, None) => *since = Some(now),
                (false, Some(t)) if now - t > opts.pipeline.health.session_grace => {
                    problems.push(format!(
                        "session {} not logged on for {:.0}s ({})",
                        st.name,
                        (now - t).as_secs_f64(),
                        st.last_error.as_deref().unwrap_or(&st.state)
                    ))
                }
                _ => {}
            }
        }
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
            for st in &statuses {
                tracing::info!("{}", snapshot(st));
            }
        }
    }
    stop.request();
    // A gateway waiting for room behind a stalled store cannot log out: past half the
    // shutdown bound it is refused (see `Recorder::give_up`).
    let give_up_at = Instant::now() + opts.pipeline.shutdown_timeout / 2;
    for t in threads {
        while !t.is_finished() {
            if Instant::now() >= give_up_at {
                recorder.give_up();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if t.join().is_err() {
            tracing::error!("a gateway thread panicked");
        }
    }
    let elapsed = started.elapsed();
    let mut stats = recorder.shutdown();
    for st in statuses.iter().map(snapshot).filter(|s| s.logons == 0) {
        stats.healthy = false;
        stats.health_problems.push(format!(
            "session {} never logged on ({})",
            st.name,
            st.last_error.as_deref().unwrap_or(&st.state)
        ));
    }
    // After a complete stop, the sessions' final inbound numbers (moved on by admin messages
    // only, such as the counterparty's Logout) are committed too: a clean restart then asks
    // for nothing (see `store::writer::commit_positions`).
    let sessions_now: Vec<SessionStatus> = statuses.iter().map(snapshot).collect();
    if stats.ticks_stored == stats.ticks_accepted {
        let positions: Vec<(String, u64)> = identities
            .iter()
            .zip(&sessions_now)
            .filter_map(|(g, st)| {
                let committed = g.recovered_next_inbound(&store).ok().flatten().unwrap_or(1);
                (st.next_inbound_seq > committed).then(|| (g.origin(), st.next_inbound_seq))
            })
            .collect();
        if let Err(e) =
            crate::store::writer::commit_positions(&opts.db_path, &opts.writer, &positions)
        {
            tracing::warn!(error = %e, "could not commit the sessions' final inbound numbers; the next start will ask for the admin messages again");
        }
    }
    let resume = identities
        .iter()
        .map(|g| {
            let next = g.recovered_next_inbound(&store).unwrap_or_else(|e| {
                tracing::error!(session = %g.origin(), error = %e, "cannot read the session's resume point");
                None
            });
            (g.origin(), next)
        })
        .collect();
    Ok(RecordReport {
        elapsed,
        stats,
        sessions: sessions_now,
        resume,
    })
}

fn snapshot(s: &StatusHandle) -> SessionStatus {
    s.lock().unwrap_or_else(|e| e.into_inner()).clone()
}
