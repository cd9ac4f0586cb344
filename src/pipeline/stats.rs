//! Counters, latency histograms and the health verdict of a running recorder.
//!
//! Every piece of shared pipeline state that is not a tick lives here, in one place. Producer
//! counters and writer counters sit on separate cache lines so that `store_tick` and the writer
//! never bounce one line between the two cores; `store_tick`'s latency goes into a histogram
//! per producing thread, merged only when read, so producers share no lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;
use serde::Serialize;

/// A monotonically increasing event count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn incr(&self) {
        self.add(1);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (the latest reading wins).
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Nanosecond latencies from 1 ns to 100 s at 3 significant digits; recording never allocates.
#[derive(Debug)]
pub struct Latency(Mutex<Histogram<u64>>);

const LATENCY_MAX_NS: u64 = 100_000_000_000;

impl Default for Latency {
    fn default() -> Latency {
        let h = Histogram::new_with_bounds(1, LATENCY_MAX_NS, 3)
            .unwrap_or_else(|_| unreachable!("constant bounds are valid"));
        Latency(Mutex::new(h))
    }
}

impl Latency {
    pub fn record_ns(&self, ns: u64) {
        let mut h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        h.saturating_record(ns.clamp(1, LATENCY_MAX_NS));
    }

    pub fn summary(&self) -> LatencySummary {
        let h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        LatencySummary::of(&h)
    }

    /// A copy of the histogram (for exposition).
    pub fn histogram(&self) -> Histogram<u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A latency recorded by several threads, each into a histogram of its own (so producers
/// never contend for one lock; each lock is taken by its thread and, rarely, by a reader),
/// merged when read.
#[derive(Debug)]
pub struct PerThreadLatency {
    /// Tells this instance's histograms apart in a thread's list (ids are never reused).
    id: u64,
    threads: Mutex<Vec<Arc<Latency>>>,
}

thread_local! {
    /// This thread's histograms, one per [`PerThreadLatency`] it has recorded into.
    static LOCAL_LATENCY: std::cell::RefCell<Vec<(u64, Arc<Latency>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl Default for PerThreadLatency {
    fn default() -> PerThreadLatency {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        PerThreadLatency {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            threads: Mutex::new(Vec::new()),
        }
    }
}

impl PerThreadLatency {
    pub fn record_ns(&self, ns: u64) {
        LOCAL_LATENCY.with(|local| {
            let mut local = local.borrow_mut();
            if let Some((_, l)) = local.iter().find(|(id, _)| *id == self.id) {
                l.record_ns(ns);
                return;
            }
            // First record from this thread: drop the histograms of instances gone since.
            local.retain(|(_, l)| Arc::strong_count(l) > 1);
            let l = Arc::new(Latency::default());
            l.record_ns(ns);
            self.threads
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Arc::clone(&l));
            local.push((self.id, l));
        });
    }

    /// Every thread's histogram, merged.
    pub fn histogram(&self) -> Histogram<u64> {
        let mut all = Latency::default().histogram();
        for l in self
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            // Same bounds on every histogram: adding cannot fail.
            let _ = all.add(l.histogram());
        }
        all
    }

    pub fn summary(&self) -> LatencySummary {
        LatencySummary::of(&self.histogram())
    }
}

/// Percentiles of one latency histogram, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
}

impl LatencySummary {
    fn of(h: &Histogram<u64>) -> LatencySummary {
        LatencySummary {
            count: h.len(),
            p50_ns: h.value_at_quantile(0.50),
            p99_ns: h.value_at_quantile(0.99),
            p999_ns: h.value_at_quantile(0.999),
            max_ns: h.max(),
        }
    }
}

/// Counters updated by `store_tick` (the producers' side).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct IntakeCounters {
    pub ticks_received: Counter,
    pub ticks_accepted: Counter,
    pub ticks_throttled: Counter,
    pub ticks_dropped: Counter,
    pub ticks_rejected_closed: Counter,
    /// Refused: `ts_event` outside the accepted window (see `tick::TimeWindow`).
    pub ticks_rejected_time: Counter,
}

/// Counters of one storage backend (the writer's side). Each backend has its own, so that in
/// dual mode a failing JSON tree does not hide behind a healthy SQLite store or vice versa.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct SinkStats {
    pub ticks_stored: Counter,
    pub batches_committed: Counter,
    pub commit_retries: Counter,
    pub write_errors: Counter,
    /// Refused by the database as data; in a dead-letter file (re-ingestable).
    pub dead_lettered: Counter,
    /// Uncommitted when a stalled store had to stop; in a spill file (re-ingestable).
    pub ticks_spilled: Counter,
    /// Neither stored nor set aside: no location could take them. Each was logged with why.
    pub ticks_lost: Counter,
    pub db_rotations: Counter,
    pub late_ticks: Counter,
    pub commit_latency: Latency,
    /// Set while the backend cannot write and holds its ticks (see [`Stall`]).
    pub stall: Stall,
    /// The WAL of the day file committed last, bytes, as the writer saw it after that commit,
    /// and its bound (`writer.wal_max_mib`; 0 for a backend without a WAL). Over the bound:
    /// a reader holds an old snapshot (see `store::writer::WalBound`).
    pub wal_bytes: Gauge,
    pub wal_bound_bytes: Gauge,
    /// WAL restarts (the WAL folded in and cut to zero between two commits), those put off
    /// because a reader held an old snapshot, and the writer's time in both, ns.
    pub wal_restarts: Counter,
    pub wal_restarts_postponed: Counter,
    pub wal_restart_ns: Counter,
}

impl SinkStats {
    /// Ticks this backend has resolved: stored, dead-lettered, spilled or counted lost.
    pub fn resolved(&self) -> u64 {
        self.ticks_stored.get()
            + self.dead_lettered.get()
            + self.ticks_spilled.get()
            + self.ticks_lost.get()
    }
}

/// Whether a backend is stalled (its store cannot write; it holds its ticks and retries), and
/// why. Written only on a change of state, read by statistics and health.
#[derive(Debug, Default)]
pub struct Stall {
    since: Mutex<Option<(std::time::Instant, String)>>,
}

impl Stall {
    /// Enters (or re-describes) the stalled state; true when this is a change of state or reason.
    pub fn set(&self, reason: &str) -> bool {
        let mut g = self.since.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *g {
            Some((_, r)) if r == reason => false,
            Some((_, r)) => {
                *r = reason.to_owned();
                true
            }
            None => {
                *g = Some((std::time::Instant::now(), reason.to_owned()));
                true
            }
        }
    }

    /// Leaves the stalled state; how long it lasted, when it was stalled.
    pub fn clear(&self) -> Option<std::time::Duration> {
        let mut g = self.since.lock().unwrap_or_else(|e| e.into_inner());
        g.take().map(|(at, _)| at.elapsed())
    }

    /// The reason and how long, while stalled.
    pub fn get(&self) -> Option<(String, std::time::Duration)> {
        let g = self.since.lock().unwrap_or_else(|e| e.into_inner());
        g.as_ref().map(|(at, r)| (r.clone(), at.elapsed()))
    }
}

/// All shared statistics of one recorder.
#[derive(Debug, Default)]
pub struct Stats {
    pub intake: IntakeCounters,
    /// `store_tick` latency, per producing thread (see [`PerThreadLatency`]).
    pub store_tick_latency: PerThreadLatency,
    pub sinks: Vec<(String, Arc<SinkStats>)>,
    /// The open batch: ticks the writer has taken from the channel for the backends. With the
    /// queue and the backends' counters it accounts for every accepted tick (see
    /// [`Stats::open_batch`]).
    pub in_writer: AtomicU64,
    /// The primary backend's [`SinkStats::resolved`] when the open batch was taken: a batch
    /// spanning two days is committed a day at a time, and a stall on the second leaves the
    /// first one's ticks stored, no longer in the writer.
    pub in_writer_base: AtomicU64,
    /// CPU time of the writer thread so far, ns (after each batch): its rate is how busy the
    /// writer is, near one second a second when it is what limits the recorder.
    pub writer_cpu_ns: AtomicU64,
    /// The writer thread's id while it runs (0 before it starts and once it has ended), for
    /// [`Stats::writer_cpu_wait`].
    pub writer_tid: std::sync::atomic::AtomicI32,
    /// The writer thread's wait for a CPU when it ended, ns.
    pub writer_wait_ns: AtomicU64,
}

impl Stats {
    /// Marks `len` ticks taken from the channel as the open batch.
    pub fn open_batch(&self, len: usize) {
        let resolved = self.sinks.first().map_or(0, |(_, s)| s.resolved());
        self.in_writer_base.store(resolved, Ordering::Relaxed);
        self.in_writer.store(len as u64, Ordering::Release);
    }

    /// How long the writer thread has been ready to run but waited for a CPU: read from the
    /// kernel while the thread runs (no cost to it), what it read at its end after. Other
    /// threads and processes on the writer's cores (readers, subscribers, a neighbour) show
    /// here before they show as a slower writer.
    pub fn writer_cpu_wait(&self) -> std::time::Duration {
        let tid = self.writer_tid.load(Ordering::Acquire);
        (tid != 0)
            .then(|| crate::procstat::thread_cpu_wait(tid))
            .flatten()
            .unwrap_or_else(|| {
                std::time::Duration::from_nanos(self.writer_wait_ns.load(Ordering::Acquire))
            })
    }

    /// Ticks of the open batch the primary backend has not resolved yet.
    fn in_writer_now(&self) -> u64 {
        let batch = self.in_writer.load(Ordering::Acquire);
        let resolved = self.sinks.first().map_or(0, |(_, s)| s.resolved());
        let done = resolved.saturating_sub(self.in_writer_base.load(Ordering::Relaxed));
        batch.saturating_sub(done)
    }
}

/// Health thresholds (from configuration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthPolicy {
    /// Unhealthy when the channel is fuller than this fraction.
    pub max_queue_fill: f64,
    /// Unhealthy when any backend counted more write errors than this.
    pub max_write_errors: u64,
    /// Unhealthy when a configured FIX session has not been logged on for longer than this.
    pub session_grace: std::time::Duration,
    /// Unhealthy when a subscribed symbol has had no tick for this long within
    /// [`HealthPolicy::trading_hours`]; `None`: not checked.
    pub stale_after: Option<std::time::Duration>,
    /// When symbols are expected to tick; `None`: always.
    pub trading_hours: Option<WeeklyWindow>,
}

impl Default for HealthPolicy {
    fn default() -> HealthPolicy {
        HealthPolicy {
            max_queue_fill: 0.8,
            max_write_errors: 0,
            session_grace: std::time::Duration::from_secs(30),
            stale_after: None,
            trading_hours: None,
        }
    }
}

/// A weekly window in UTC, such as FX's "Sun 22:00 - Fri 22:00"; it may wrap past Sunday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeeklyWindow {
    /// Minutes since Monday 00:00 UTC.
    start: u32,
    end: u32,
}

const MINUTES_PER_WEEK: i64 = 7 * 24 * 60;

impl WeeklyWindow {
    /// Parses `Ddd HH:MM - Ddd HH:MM` (English day abbreviations, UTC).
    pub fn parse(s: &str) -> Result<WeeklyWindow, String> {
        let point = |p: &str| -> Option<u32> {
            let (day, hm) = p.trim().split_once(' ')?;
            let d = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                .iter()
                .position(|x| x.eq_ignore_ascii_case(day.trim()))?;
            let (h, m) = hm.trim().split_once(':')?;
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(d as u32 * 24 * 60 + h * 60 + m)
        };
        let bad = || format!("expected \"Ddd HH:MM - Ddd HH:MM\" (UTC), got {s:?}");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        match (point(a), point(b)) {
            (Some(start), Some(end)) if start != end => Ok(WeeklyWindow { start, end }),
            _ => Err(bad()),
        }
    }

    /// Whether `t` (ns since 1970 UTC) falls in the window.
    pub fn contains(&self, t: crate::tick::Timestamp) -> bool {
        // 1970-01-01 was a Thursday: three days after a Monday.
        let minutes = t.0.div_euclid(60_000_000_000);
        let m = (minutes + 3 * 24 * 60).rem_euclid(MINUTES_PER_WEEK) as u32;
        if self.start < self.end {
            (self.start..self.end).contains(&m)
        } else {
            m >= self.start || m < self.end
        }
    }
}

/// A point-in-time copy of the statistics, ready to print or serialise.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatsSnapshot {
    pub ticks_received: u64,
    pub ticks_accepted: u64,
    /// Stored by the primary (first) backend.
    pub ticks_stored: u64,
    pub ticks_throttled: u64,
    pub ticks_dropped: u64,
    pub ticks_rejected_time: u64,
    pub write_errors: u64,
    pub dead_lettered: u64,
    pub ticks_spilled: u64,
    pub ticks_lost: u64,
    /// Ticks in the writer's open batch.
    pub ticks_in_writer: u64,
    pub db_rotations: u64,
    pub batches_committed: u64,
    pub queue_size: usize,
    pub queue_capacity: usize,
    /// CPU time of the writer thread so far, s.
    pub writer_cpu_s: f64,
    /// The writer thread's wait for a CPU so far, s ([`Stats::writer_cpu_wait`]).
    pub writer_cpu_wait_s: f64,
    pub store_tick_latency: LatencySummary,
    pub commit_latency: LatencySummary,
    pub backends: Vec<BackendSnapshot>,
    pub healthy: bool,
    pub health_problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackendSnapshot {
    pub name: String,
    pub ticks_stored: u64,
    pub batches_committed: u64,
    pub commit_retries: u64,
    pub write_errors: u64,
    pub dead_lettered: u64,
    pub ticks_spilled: u64,
    pub ticks_lost: u64,
    pub db_rotations: u64,
    pub late_ticks: u64,
    pub commit_latency: LatencySummary,
    /// `Some(reason)` while the backend is stalled.
    pub stalled: Option<String>,
    pub stalled_for_s: f64,
    pub wal_bytes: u64,
    pub wal_bound_bytes: u64,
    pub wal_restarts: u64,
    pub wal_restarts_postponed: u64,
    pub wal_restart_s: f64,
}

impl Stats {
    pub fn snapshot(
        &self,
        queue_size: usize,
        queue_capacity: usize,
        policy: HealthPolicy,
    ) -> StatsSnapshot {
        let backends: Vec<BackendSnapshot> = self
            .sinks
            .iter()
            .map(|(name, s)| BackendSnapshot {
                name: name.clone(),
                ticks_stored: s.ticks_stored.get(),
                batches_committed: s.batches_committed.get(),
                commit_retries: s.commit_retries.get(),
                write_errors: s.write_errors.get(),
                dead_lettered: s.dead_lettered.get(),
                ticks_spilled: s.ticks_spilled.get(),
                ticks_lost: s.ticks_lost.get(),
                db_rotations: s.db_rotations.get(),
                late_ticks: s.late_ticks.get(),
                commit_latency: s.commit_latency.summary(),
                stalled_for_s: s.stall.get().map_or(0.0, |(_, d)| d.as_secs_f64()),
                stalled: s.stall.get().map(|(r, _)| r),
                wal_bytes: s.wal_bytes.get(),
                wal_bound_bytes: s.wal_bound_bytes.get(),
                wal_restarts: s.wal_restarts.get(),
                wal_restarts_postponed: s.wal_restarts_postponed.get(),
                wal_restart_s: s.wal_restart_ns.get() as f64 / 1e9,
            })
            .collect();
        let primary = backends.first();
        let field = |f: fn(&BackendSnapshot) -> u64| primary.map(f).unwrap_or(0);
        let mut problems = Vec::new();
        if queue_capacity > 0 && queue_size as f64 > policy.max_queue_fill * queue_capacity as f64 {
            problems.push(format!(
                "queue {queue_size}/{queue_capacity} above {:.0}%",
                policy.max_queue_fill * 100.0
            ));
        }
        for b in &backends {
            if let Some(reason) = &b.stalled {
                problems.push(format!(
                    "{}: store stalled for {:.1}s ({reason})",
                    b.name, b.stalled_for_s
                ));
            }
            if b.ticks_lost > 0 {
                problems.push(format!("{}: {} ticks lost", b.name, b.ticks_lost));
            }
            // Not a loss, but the disk fills while it lasts: someone has to find the reader.
            if b.wal_bound_bytes > 0 && b.wal_bytes > b.wal_bound_bytes {
                problems.push(format!(
                    "{}: WAL at {:.1} MiB, over its bound of {:.1} MiB (a reader holds an old snapshot)",
                    b.name,
                    b.wal_bytes as f64 / MIB,
                    b.wal_bound_bytes as f64 / MIB
                ));
            }
            if b.write_errors > policy.max_write_errors {
                problems.push(format!(
                    "{}: {} write errors (threshold {})",
                    b.name, b.write_errors, policy.max_write_errors
                ));
            }
        }
        StatsSnapshot {
            ticks_received: self.intake.ticks_received.get(),
            ticks_accepted: self.intake.ticks_accepted.get(),
            ticks_stored: field(|b| b.ticks_stored),
            ticks_throttled: self.intake.ticks_throttled.get(),
            ticks_dropped: self.intake.ticks_dropped.get(),
            ticks_rejected_time: self.intake.ticks_rejected_time.get(),
            write_errors: backends.iter().map(|b| b.write_errors).sum(),
            dead_lettered: backends.iter().map(|b| b.dead_lettered).sum(),
            ticks_spilled: field(|b| b.ticks_spilled),
            ticks_lost: field(|b| b.ticks_lost),
            ticks_in_writer: self.in_writer_now(),
            db_rotations: field(|b| b.db_rotations),
            batches_committed: field(|b| b.batches_committed),
            queue_size,
            queue_capacity,
            writer_cpu_s: self.writer_cpu_ns.load(Ordering::Relaxed) as f64 / 1e9,
            writer_cpu_wait_s: self.writer_cpu_wait().as_secs_f64(),
            store_tick_latency: self.store_tick_latency.summary(),
            commit_latency: primary.map(|b| b.commit_latency).unwrap_or_default(),
            healthy: problems.is_empty(),
            health_problems: problems,
            backends,
        }
    }
}

impl std::fmt::Display for StatsSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lat = |l: &LatencySummary| {
            format!(
                "p50 {} p99 {} p99.9 {} max {}",
                fmt_ns(l.p50_ns),
                fmt_ns(l.p99_ns),
                fmt_ns(l.p999_ns),
                fmt_ns(l.max_ns)
            )
        };
        writeln!(
            f,
            "ticks: received {} accepted {} stored {} throttled {} dropped {} rejected_time {}",
            self.ticks_received,
            self.ticks_accepted,
            self.ticks_stored,
            self.ticks_throttled,
            self.ticks_dropped,
            self.ticks_rejected_time
        )?;
        writeln!(
            f,
            "writer: batches {} rotations {} write_errors {} dead_lettered {} spilled {} lost {} queue {}/{}",
            self.batches_committed,
            self.db_rotations,
            self.write_errors,
            self.dead_lettered,
            self.ticks_spilled,
            self.ticks_lost,
            self.queue_size,
            self.queue_capacity
        )?;
        writeln!(f, "store_tick latency: {}", lat(&self.store_tick_latency))?;
        writeln!(f, "commit latency:     {}", lat(&self.commit_latency))?;
        // With several backends, show each one's own counters.
        if self.backends.len() > 1 {
            for b in &self.backends {
                writeln!(
                    f,
                    "backend {}: stored {} batches {} write_errors {} dead_lettered {} spilled {} lost {}",
                    b.name,
                    b.ticks_stored,
                    b.batches_committed,
                    b.write_errors,
                    b.dead_lettered,
                    b.ticks_spilled,
                    b.ticks_lost
                )?;
            }
        }
        if self.healthy {
            write!(f, "health: ok")
        } else {
            write!(f, "health: UNHEALTHY ({})", self.health_problems.join("; "))
        }
    }
}

const MIB: f64 = (1u64 << 20) as f64;

/// Human-readable duration from nanoseconds: `850ns`, `12.3µs`, `4.56ms`, `1.20s`.
pub fn fmt_ns(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns}ns"),
        1_000..=999_999 => format!("{:.1}µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_turns_bad_above_queue_high_water_or_error_threshold() {
        let mut stats = Stats::default();
        let sink = Arc::new(SinkStats::default());
        stats.sinks.push(("sqlite".into(), sink.clone()));
        let policy = HealthPolicy {
            max_queue_fill: 0.8,
            max_write_errors: 2,
            ..HealthPolicy::default()
        };
        assert!(stats.snapshot(80, 100, policy).healthy);
        assert!(!stats.snapshot(81, 100, policy).healthy);
        sink.write_errors.add(3);
        let snap = stats.snapshot(0, 100, policy);
        assert!(!snap.healthy);
        assert!(snap.health_problems[0].contains("write errors"));
    }

    /// What could go wrong: a backend without a WAL (bound 0) reported unhealthy, a WAL at
    /// exactly its bound reported over it, or one over it passing unnoticed.
    #[test]
    fn health_names_a_wal_over_its_bound_and_only_then() {
        let mut stats = Stats::default();
        let (sqlite, json) = (
            Arc::new(SinkStats::default()),
            Arc::new(SinkStats::default()),
        );
        stats.sinks.push(("sqlite".into(), sqlite.clone()));
        stats.sinks.push(("json".into(), json.clone()));
        let policy = HealthPolicy::default();
        json.wal_bytes.set(u64::MAX);
        assert!(
            stats.snapshot(0, 100, policy).healthy,
            "no bound: no WAL check"
        );
        sqlite.wal_bound_bytes.set(64 << 20);
        sqlite.wal_bytes.set(64 << 20);
        assert!(stats.snapshot(0, 100, policy).healthy, "at the bound");
        sqlite.wal_bytes.set((64 << 20) + 1);
        let snap = stats.snapshot(0, 100, policy);
        assert!(!snap.healthy);
        assert_eq!(
            snap.health_problems,
            ["sqlite: WAL at 64.0 MiB, over its bound of 64.0 MiB (a reader holds an old snapshot)"]
        );
        assert_eq!(snap.backends[0].wal_bytes, (64 << 20) + 1);
    }

    #[test]
    fn per_thread_latency_merges_every_threads_histogram() {
        let l = Arc::new(PerThreadLatency::default());
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let l = Arc::clone(&l);
                std::thread::spawn(move || {
                    for ns in 1..=250 {
                        l.record_ns(t * 250 + ns);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = l.summary();
        assert_eq!(s.count, 1000);
        assert!((495..=505).contains(&s.p50_ns), "{s:?}");
        assert_eq!(
            l.threads.lock().unwrap().len(),
            4,
            "one histogram per thread"
        );
    }

    #[test]
    fn a_weekly_window_wraps_past_sunday() {
        let fx = WeeklyWindow::parse("Sun 22:00 - Fri 22:00").unwrap();
        let at = |s: &str| crate::tick::Timestamp::parse(s).unwrap();
        assert!(fx.contains(at("2026-11-30T10:00:00Z")), "Monday");
        assert!(fx.contains(at("2026-11-29T22:30:00Z")), "Sunday night");
        assert!(!fx.contains(at("2026-11-29T12:00:00Z")), "Sunday noon");
        assert!(!fx.contains(at("2026-11-28T12:00:00Z")), "Saturday");
        assert!(
            !fx.contains(at("2026-12-04T22:00:00Z")),
            "Friday 22:00 is the end"
        );
        assert!(WeeklyWindow::parse("Sun 25:00 - Fri 22:00").is_err());
        assert!(WeeklyWindow::parse("always").is_err());
    }

    #[test]
    fn latency_summary_reports_percentiles() {
        let l = Latency::default();
        for ns in 1..=1000 {
            l.record_ns(ns);
        }
        let s = l.summary();
        assert_eq!(s.count, 1000);
        assert!((495..=505).contains(&s.p50_ns), "{s:?}");
        assert!(s.p99_ns >= 985 && s.max_ns >= 999, "{s:?}");
    }
}
