//! Shared helpers: recorders over temporary folders, tick builders, reading rows back.

use std::path::Path;
use std::time::{Duration, Instant};

use tickrec::pipeline::{PipelineOptions, Recorder};
use tickrec::store::reader::Store;
use tickrec::store::writer::SqliteSink;
use tickrec::store::{SqliteOptions, WriterOptions};
use tickrec::tick::{Decimal, MsgRef, Tick, TickRow, Timestamp};

/// Waits up to `limit` for `cond`, polling every 10 ms; panics naming `what` when it never
/// holds. The one way tests here wait for something to happen.
pub fn wait_until(limit: std::time::Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Ticks committed in the day file `db`; 0 while it does not exist yet.
pub fn committed_ticks(db: &Path) -> usize {
    let count = || -> rusqlite::Result<i64> {
        let conn =
            rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.query_row("SELECT count(*) FROM ticks", [], |r| r.get(0))
    };
    count().map_or(0, |n| n as usize)
}

/// A recorder writing SQLite day files under `base`.
pub fn recorder(base: &Path, pipeline: PipelineOptions, writer: WriterOptions) -> Recorder {
    Recorder::builder(pipeline)
        .sink(|names| Box::new(SqliteSink::new(base, names, writer)))
        .start()
        .expect("writer thread starts")
}

pub fn default_recorder(base: &Path) -> Recorder {
    recorder(base, PipelineOptions::default(), WriterOptions::default())
}

pub fn dec(s: &str) -> Option<Decimal> {
    Some(Decimal::parse(s).expect("valid decimal in test"))
}

pub fn ts(s: &str) -> Timestamp {
    Timestamp::parse(s).expect("valid time in test")
}

/// A two-sided tick of `symbol` at `at`, interned in `rec`.
pub fn tick(rec: &Recorder, symbol: &str, at: Timestamp, bid: &str, ask: &str) -> Tick {
    Tick {
        symbol: rec.names().symbol(symbol).unwrap(),
        source: rec.names().source("LP1").unwrap(),
        ts_event: at,
        ts_recv: Timestamp(at.0 + 1_500),
        bid: dec(bid),
        ask: dec(ask),
        bid_size: dec("1000000"),
        ask_size: dec("2500000"),
        msg: MsgRef::NONE,
    }
}

pub fn store(base: &Path) -> Store {
    Store::new(base, SqliteOptions::default())
}

/// Every stored tick of `symbol` in time order.
pub fn all_rows(base: &Path, symbol: &str) -> Vec<TickRow> {
    let mut rows = Vec::new();
    let read = store(base)
        .range(symbol, Timestamp(0), Timestamp(i64::MAX), &mut |r| {
            rows.push(r.clone());
            Ok(())
        })
        .expect("range query");
    assert!(read.broken.is_empty(), "broken days: {:?}", read.broken);
    rows
}

/// `seq` values of a day file in order, straight from SQLite.
pub fn seqs(db: &Path) -> Vec<i64> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT seq FROM ticks ORDER BY seq").unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A TCP port free on 127.0.0.1 when asked, for a process started next to bind. It is taken
/// below the kernel's ephemeral range (`ip_local_port_range`): a port from that range (what
/// binding port 0 gives) can be handed to any outgoing connection of this suite before the
/// process binds it, which then fails to start. Ports are tried in turn from a point that
/// differs between runs, and each is checked free. The point is the process id spread over
/// the range: suites started together have ids one apart, and stepping from neighbouring
/// points they handed each other's processes the same ports (three suites at once: a
/// subscriber was reset at its first line, most likely by another suite's listener).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let (low, span) = (10_000u32, ephemeral_low.saturating_sub(10_000).max(1));
    let start = std::process::id().wrapping_mul(2_654_435_761);
    for _ in 0..span {
        let port = low + start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {low}..{}", low + span)
}

/// The Python of a tool's virtualenv (`env_var`, else `~/.cache/tickrec/<venv>`) that runs
/// `import`; panics with `needs` (the install command) when there is none.
pub fn venv_python(env_var: &str, venv: &str, import: &str, needs: &str) -> std::path::PathBuf {
    let python = std::env::var_os(env_var)
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| {
                std::path::PathBuf::from(h)
                    .join(".cache/tickrec")
                    .join(venv)
                    .join("bin/python")
            })
        })
        .unwrap_or_else(|| std::path::PathBuf::from("python3"));
    let ok = std::process::Command::new(&python)
        .args(["-c", import])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot `{import}`: this test {needs}",
        python.display()
    );
    python
}

/// A child process killed when the test ends, however it ends.
pub struct Reaped(Option<std::process::Child>);

impl Reaped {
    pub fn new(child: std::process::Child) -> Reaped {
        Reaped(Some(child))
    }

    /// Waits for the child to end and collects what it wrote to its pipes
    /// (`Child::wait_with_output`); a test that fails before this still kills it.
    pub fn output(mut self) -> std::io::Result<std::process::Output> {
        self.0
            .take()
            .expect("a Reaped holds its child until this")
            .wait_with_output()
    }

    /// Waits for the child to end, at most `limit` (then the test fails, naming the limit).
    pub fn wait_until(&mut self, limit: std::time::Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.try_wait().expect("the child's status") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still running after {limit:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl std::ops::Deref for Reaped {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        self.0
            .as_ref()
            .expect("a Reaped holds its child until output()")
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        self.0
            .as_mut()
            .expect("a Reaped holds its child until output()")
    }
}

/// The single integer `sql` returns from the SQLite file at `path` (a count, a pragma).
pub fn sql_int(path: &Path, sql: &str) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

/// The block files of the day file `db`, as a reader of it opens them (with its tail seed).
pub fn block_file(db: &Path) -> Option<tickrec::store::blockfile::BlockFile> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let seed = tickrec::store::blockfile::tail_seed(&conn).unwrap();
    tickrec::store::blockfile::BlockFile::open(db, seed)
}

/// GET `url`: (status, body); `None` while nothing listens.
pub fn get(url: &str) -> Option<(u16, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let r = agent.get(url).call().ok()?;
    let status = r.status().as_u16();
    Some((status, r.into_body().read_to_string().ok()?))
}

/// Polls `url` until `ok` holds for what it answers, or fails after `secs`.
pub fn wait_for(url: &str, secs: u64, ok: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let last = get(url);
        if let Some((code, body)) = &last {
            if ok(*code, body) {
                return (*code, body.clone());
            }
        }
        assert!(Instant::now() < deadline, "{url}: last answer {last:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `tickrec simulate` on `port`: a FIX acceptor quoting `symbols` symbols at `rate` messages a
/// second (stopped when dropped).
pub fn simulator(port: u16, symbols: u32, rate: u32) -> Reaped {
    simulator_as("SIM", port, symbols, rate)
}

/// [`simulator`] whose CompID is `comp_id`: a second liquidity provider beside the first.
pub fn simulator_as(comp_id: &str, port: u16, symbols: u32, rate: u32) -> Reaped {
    Reaped::new(
        std::process::Command::new(env!("CARGO_BIN_EXE_tickrec"))
            .args([
                "simulate",
                "--port",
                &port.to_string(),
                "--symbols",
                &symbols.to_string(),
                "--rate",
                &rate.to_string(),
                "--sender-comp-id",
                comp_id,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// `n` threads spinning at normal priority until dropped: with more of them than there are
/// CPUs, this process's threads wait for one, as a recorder's do beside busy neighbours.
pub struct Spinners(
    Vec<std::thread::JoinHandle<()>>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
);

impl Spinners {
    pub fn start(n: usize) -> Spinners {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        Spinners(threads, stop)
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        self.1.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.0.drain(..) {
            let _ = t.join();
        }
    }
}

/// A configuration in `dir` whose `[SECTION] token_file` names a file of its own holding
/// `token`, for each `(section, token)`: the configuration's path.
pub fn token_config(dir: &Path, tokens: &[(&str, &str)]) -> std::path::PathBuf {
    let mut text = String::new();
    for (section, token) in tokens {
        let file = dir.join(format!("{section}.token"));
        std::fs::write(&file, format!("{token}\n")).unwrap();
        text += &format!(
            "[{section}]\ntoken_file = {:?}\n",
            file.display().to_string()
        );
    }
    let config = dir.join("tickrec.toml");
    std::fs::write(&config, text).unwrap();
    config
}

/// A process's output as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts that a process's output (stdout or stderr) says `needle`, showing the output when
/// it does not.
#[track_caller]
pub fn assert_says(out: &[u8], needle: &str) {
    let t = text(out);
    assert!(t.contains(needle), "expected {needle:?} in:\n{t}");
}

/// `tickrec --db db record` of `symbols` (A,B) from the simulator on `fix_port` (REC to SIM),
/// its output dropped; a test adds its listeners, configuration and log.
/// `record`'s configuration for two liquidity providers quoting the same `symbols`: source
/// "LP1" from the simulator on `lp1` (CompID SIM), "LP2" from the one on `lp2` (CompID LPB).
pub fn two_lps_config(lp1: u16, lp2: u16, symbols: &[&str]) -> String {
    [(lp1, "SIM", "LP1"), (lp2, "LPB", "LP2")]
        .map(|(port, target, source)| {
            format!(
                "[[fix.sessions]]\nconnect = \"127.0.0.1:{port}\"\nsender_comp_id = \"REC\"\n\
                 target_comp_id = \"{target}\"\nsource = \"{source}\"\nsymbols = {symbols:?}\n\
                 reconnect_interval_ms = 50\nmax_reconnect_interval_ms = 200\n"
            )
        })
        .concat()
}

pub fn record_command(db: &Path, fix_port: u16, symbols: &str) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_tickrec"));
    c.arg("--db").arg(db).args([
        "record",
        "--connect",
        &format!("127.0.0.1:{fix_port}"),
        "--sender-comp-id",
        "REC",
        "--target-comp-id",
        "SIM",
        "--symbols",
        symbols,
    ]);
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    c
}

/// The value of a sample of a Prometheus text exposition, by its name and labels.
pub fn sample(metrics: &str, name_and_labels: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name_and_labels} not in /metrics:\n{metrics}"))
}
