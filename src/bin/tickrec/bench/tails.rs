//! (b) with subscribers: the writer while four `tail --follow` readers stream every committed
//! tick (formatted as JSON Lines into a sink), and the latency from accepting a tick to a
//! following tail passing it on.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tickrec::clock::Clock;
use tickrec::format::{row_writer, OutputFormat};
use tickrec::shutdown::Shutdown;
use tickrec::store::reader::{Store, Symbols};
use tickrec::store::SqliteOptions;
use tickrec::tail::{Start, Tail};
use tickrec::tick::TickRow;

/// What `tickrec tail --follow --format jsonl > /dev/null` does, from the newest day of `store`
/// until `stop`: every committed row formatted, then passed to `seen`.
fn follow_as_json(store: Store, stop: &Shutdown, mut seen: impl FnMut(&TickRow)) {
    let Ok(mut tail) = Tail::new(store, Symbols::All, Start::NewestDay) else {
        return;
    };
    let mut out = row_writer(OutputFormat::Jsonl, std::io::sink());
    let _ = tail.follow(
        stop,
        &mut |r| {
            out.write_row(r)?;
            seen(r);
            Ok(())
        },
        &mut |_| Ok(()),
    );
}

/// A following tail: the rows it has passed so far, and its thread, which returns the CPU time
/// it used.
pub type Follower = (Arc<AtomicU64>, std::thread::JoinHandle<Duration>);

/// Starts `n` following tails of `base` (from its first tick); each counts the rows it passed.
/// `nice`: the tails' threads run at that nice value (as `nice -n 19 tickrec tail` would).
pub fn start(
    base: &Path,
    opts: &SqliteOptions,
    n: usize,
    nice: Option<i32>,
    stop: &Shutdown,
) -> Vec<Follower> {
    (0..n)
        .map(|_| {
            let (store, stop) = (Store::new(base, opts.clone()), stop.clone());
            let rows = Arc::new(AtomicU64::new(0));
            let counted = rows.clone();
            let handle = std::thread::spawn(move || {
                if let Some(n) = nice {
                    // SAFETY: plain syscalls on this thread's own id.
                    unsafe {
                        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                        libc::setpriority(libc::PRIO_PROCESS, tid, n);
                    }
                }
                follow_as_json(store, &stop, |_| {
                    counted.fetch_add(1, Ordering::Relaxed);
                });
                tickrec::procstat::thread_cpu().unwrap_or_default()
            });
            (rows, handle)
        })
        .collect()
}

/// Waits (up to `limit`) until every tail has passed `rows`; false if one has not.
pub fn caught_up(tails: &[Follower], rows: u64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if tails.iter().all(|(n, _)| n.load(Ordering::Relaxed) >= rows) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// The instant each seq was committed (a one-day run).
#[derive(Default)]
struct CommitTimes(std::sync::Mutex<std::collections::HashMap<i64, Instant>>);

impl tickrec::store::writer::CommitObserver for CommitTimes {
    fn committed(
        &self,
        _day: chrono::NaiveDate,
        first_seq: i64,
        ticks: &[tickrec::tick::Tick],
        _order: &[(i64, u32)],
    ) {
        let now = Instant::now();
        if let Ok(mut m) = self.0.lock() {
            for k in 0..ticks.len() as i64 {
                m.insert(first_seq + k, now);
            }
        }
    }
}

/// (p50, p99) in ms from a tick's commit to a following tail passing it on: `n` ticks at
/// `rate` per second through a Recorder under `base`.
///
/// Long (~100 lines) on purpose: one measurement from set-up to teardown.
pub fn latency_ms(
    base: &Path,
    opts: &tickrec::config::Options,
    n: usize,
    rate: u32,
) -> anyhow::Result<(f64, f64)> {
    use tickrec::intern::Names;
    use tickrec::pipeline::Recorder;
    use tickrec::store::writer::SqliteSink;
    use tickrec::tick::{Decimal, MsgRef, Tick};
    let names = Arc::new(Names::new(16));
    let sym = names.symbol("EURUSD")?;
    let source = names.source("SIM")?;
    let writer_opts = tickrec::store::WriterOptions {
        sqlite: opts.writer.sqlite.clone(),
        ..tickrec::store::WriterOptions::default()
    };
    let commits = Arc::new(CommitTimes::default());
    let observer = commits.clone();
    let rec = Recorder::builder_with(opts.pipeline.clone(), names)
        .sink(|names| Box::new(SqliteSink::new(base, names, writer_opts).with_observer(observer)))
        .start()?;
    rec.prepare(sym);
    let stop = Shutdown::new();
    let outputs = Arc::new(std::sync::Mutex::new(Vec::with_capacity(n)));
    let follower = {
        let (store, stop, outputs) = (
            Store::new(base, opts.writer.sqlite.clone()),
            stop.clone(),
            outputs.clone(),
        );
        std::thread::spawn(move || {
            follow_as_json(store, &stop, |r| {
                if let Ok(mut v) = outputs.lock() {
                    v.push((r.seq.unwrap_or(0), Instant::now()));
                }
            });
        })
    };
    let clock = tickrec::clock::SystemClock;
    let gap = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let price = Decimal::parse("1.08502")?;
    let started = Instant::now();
    for i in 0..n {
        let due = started + gap * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let now = clock.now();
        rec.store_tick(Tick {
            symbol: sym,
            source,
            ts_event: now,
            ts_recv: now,
            bid: Some(price),
            ask: Some(price),
            bid_size: None,
            ask_size: None,
            msg: MsgRef::NONE,
        })?;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while outputs.lock().map_or(0, |v| v.len()) < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.request();
    let _ = follower.join();
    rec.shutdown();
    let outputs = outputs.lock().map(|v| v.clone()).unwrap_or_default();
    anyhow::ensure!(
        outputs.len() == n,
        "the tail passed {} of {n} ticks",
        outputs.len()
    );
    let committed = commits.0.lock().map(|m| m.clone()).unwrap_or_default();
    let mut v: Vec<f64> = outputs
        .iter()
        .filter_map(|(seq, at)| Some(at.duration_since(*committed.get(seq)?).as_secs_f64() * 1e3))
        .collect();
    anyhow::ensure!(
        v.len() == n,
        "commit times missing for {} ticks",
        n - v.len()
    );
    v.sort_by(f64::total_cmp);
    Ok((v[n / 2], v[n * 99 / 100]))
}
