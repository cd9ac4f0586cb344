//! (b) with subscribers: the writer while four `tickrec tail --follow` processes stream every
//! committed tick (formatted as JSON Lines to `/dev/null`), and the latency from accepting a
//! tick to a following tail passing it on.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tickrec::clock::Clock;
use tickrec::format::{row_writer, OutputFormat};
use tickrec::shutdown::Shutdown;
use tickrec::store::reader::{Store, Symbols};
use tickrec::tail::{Start, Tail};
use tickrec::tick::TickRow;

/// Four `tickrec tail --follow --format jsonl > /dev/null` processes, as a desk runs them
/// beside a recorder: each its own process (its own allocator, address space and SQLite
/// connection) in a session of its own, as when started from another terminal or as a service
/// (where the kernel groups CPU time by session, its weight against the writer's is its
/// session's: `tickrec::priority`), started before the writer's first tick and stopping once it
/// has passed every one (`--max-ticks`).
pub struct Followers {
    children: Vec<std::process::Child>,
    rows: u64,
    /// CPU time of this process's reaped children when the tails started.
    cpu_before: Duration,
}

/// CPU time (user and system) of the reaped children of this process.
fn children_cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u
    };
    let of = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    of(u.ru_utime) + of(u.ru_stime)
}

/// Where the tails run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Setting<'a> {
    /// The bench's own configuration file, so the tails read with its SQLite settings.
    pub config: Option<&'a Path>,
    /// A CPU cgroup (its folder) each tail joins before it starts (`bench --tails-cgroup`), as
    /// under `systemd-run --scope -p CPUWeight=idle`; `None`: the bench's own.
    pub cgroup: Option<&'a Path>,
}

/// The cgroup `dir`'s list of processes, open for writing (close-on-exec, as std opens files).
/// The CLI opens it before any stage, so that a cgroup the tails cannot join fails at once.
pub fn cgroup_procs(dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join("cgroup.procs");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("--tails-cgroup: {}: {e}", path.display()))
}

/// Starts `n` following tails of `base` (which must exist), each to pass `rows` ticks from the
/// first; `idle`: at the tail's default priority (`SCHED_IDLE`), else with `--priority normal`.
pub fn start(
    base: &Path,
    setting: Setting<'_>,
    n: usize,
    rows: u64,
    idle: bool,
) -> anyhow::Result<Followers> {
    let exe = std::env::current_exe()?;
    let cpu_before = children_cpu();
    let mut children = Vec::with_capacity(n);
    let config = setting.config;
    // Opened here, written by each child between fork and exec (no allocation there): "0"
    // moves the writing process.
    let procs = setting.cgroup.map(cgroup_procs).transpose()?;
    let procs_fd = procs.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
    for _ in 0..n {
        let mut cmd = std::process::Command::new(&exe);
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        cmd.arg("--db")
            .arg(base)
            .args(["tail", "--follow", "--format", "jsonl", "--priority"])
            .arg(if idle { "idle" } else { "normal" })
            .arg("--max-ticks")
            .arg(rows.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        // SAFETY: setsid and write are async-signal-safe, `procs_fd` stays open until after
        // the spawn, and the closure does not allocate.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(fd) = procs_fd {
                    if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        children.push(cmd.spawn()?);
    }
    Ok(Followers {
        children,
        rows,
        cpu_before,
    })
}

impl Followers {
    /// Waits (up to `limit`) for every tail to pass its rows and exit; their CPU time in all.
    /// An error when one has not in time (it is killed) or ended otherwise than having passed
    /// exactly its rows.
    pub fn finish(mut self, limit: Duration) -> anyhow::Result<Duration> {
        let deadline = Instant::now() + limit;
        let mut failed = None;
        for child in &mut self.children {
            let status = loop {
                match child.try_wait()? {
                    Some(status) => break Some(status),
                    None if Instant::now() >= deadline => break None,
                    None => std::thread::sleep(Duration::from_millis(5)),
                }
            };
            let mut err = String::new();
            if status.is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            let passed = format!("tail: {} ticks;", self.rows);
            match status {
                Some(s) if s.success() && err.contains(&passed) => {}
                Some(s) => failed = Some(format!("a tail ended with {s}: {}", err.trim())),
                None => {
                    failed = Some(format!(
                        "a tail had not passed {} ticks in {limit:?}: {}",
                        self.rows,
                        err.trim()
                    ))
                }
            }
        }
        self.children.clear();
        if let Some(why) = failed {
            anyhow::bail!(why);
        }
        Ok(children_cpu().saturating_sub(self.cpu_before))
    }
}

impl Drop for Followers {
    /// A round that failed before [`Followers::finish`] leaves no process behind.
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What `tickrec tail --follow --format jsonl > /dev/null` does, from the newest day of `store`
/// until `stop`: every committed row formatted, then passed to `seen` (in this process, for the
/// latency: the instant a row is passed on is compared with its commit's).
fn follow_as_json(store: Store, stop: &Shutdown, mut seen: impl FnMut(&TickRow)) {
    let Ok(mut tail) = Tail::new(store, Symbols::All, Start::NewestDay) else {
        return;
    };
    let mut out = row_writer(OutputFormat::Jsonl, std::io::sink());
    // Its turns as `tickrec tail` takes them, the recorder being this process (less this
    // thread).
    let pid = libc::pid_t::try_from(std::process::id()).ok();
    let mut give_way = tickrec::priority::GiveWay::watching(
        Box::new(move || pid),
        Some(tickrec::procstat::thread_id()),
    );
    let _ = tail.follow(
        stop,
        &mut |r| {
            give_way.row();
            out.write_row(r)?;
            seen(r);
            Ok(())
        },
        &mut |_| Ok(()),
    );
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

/// (p50, p99) in ms from a tick's commit to a following tail (under `SCHED_IDLE`, stepping aside
/// for the recorder, as `tickrec tail` runs) passing it on: `n` ticks at `rate` per second
/// through a Recorder under `base`.
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
            // As `tickrec tail` runs unless told otherwise.
            if let Err(e) = tickrec::priority::idle_priority() {
                tracing::warn!(error = %e, "the following tail runs at normal priority");
            }
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
    let v: Vec<f64> = outputs
        .iter()
        .filter_map(|(seq, at)| Some(at.duration_since(*committed.get(seq)?).as_secs_f64() * 1e3))
        .collect();
    anyhow::ensure!(
        v.len() == n,
        "commit times missing for {} ticks",
        n - v.len()
    );
    Ok((super::quantile(&v, 0.5), super::quantile(&v, 0.99)))
}
