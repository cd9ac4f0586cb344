//! The live path meeting faults: a full disk (stall, backpressure, resume; while new day
//! files are opened; under a FIX session), an I/O error, a signal while stalled, nowhere to
//! spill, the WAL's bound.

use super::*;

fn accounted(s: &StatsSnapshot) -> u64 {
    s.ticks_stored + s.dead_lettered + s.ticks_spilled + s.ticks_lost
}

const T0: i64 = 1_795_428_000_000_000_000; // 2026-11-23T10:00:00Z

/// What could go wrong: a full disk turns every batch into log lines (the old behaviour lost
/// 700K ticks that way), keeps consuming input, or, once space returns, stores some ticks
/// twice. Here the store must stall, hold everything, push back on the producer, and resume
/// with each tick stored exactly once.
#[test]
fn disk_full_stalls_intake_and_resumes_with_nothing_lost_or_duplicated() {
    disk_full_stalls_and_resumes(|i| Timestamp(T0 + i * 1000));
}

/// The same when the disk fills while the writer opens new day files (a day every 5,000
/// ticks: rotation, and late ticks for the day before, on a full disk).
#[test]
fn disk_full_while_new_day_files_are_opened_loses_nothing() {
    const DAY: i64 = 86_400_000_000_000;
    disk_full_stalls_and_resumes(|i| {
        let day = i / 5_000;
        // Every 7th tick is a late one for the day before.
        let day = if i % 7 == 0 { (day - 1).max(0) } else { day };
        Timestamp(T0 + day * DAY + i * 1000)
    });
}

/// Feeds 150,000 EURUSD ticks (`at(i)` the time of the i-th) into a recorder on a 1 MiB disk;
/// once the store stalls, checks backpressure and the accounting, gives the disk room and
/// checks every tick stored once, each day's seq gap-free in arrival order.
fn disk_full_stalls_and_resumes(at: fn(i64) -> Timestamp) {
    let fs = Tmpfs::mount(1024, false);
    let base = fs.path().join("db");
    let pipeline = PipelineOptions {
        channel_capacity: 4096,
        ..PipelineOptions::default()
    };
    let writer = WriterOptions {
        stall_retry_max: Duration::from_millis(50),
        ..WriterOptions::default()
    };
    let rec = Arc::new(recorder(&base, pipeline, writer));
    const N: i64 = 150_000;
    let accepted = Arc::new(AtomicU64::new(0));
    let producer = {
        let (rec, accepted) = (rec.clone(), accepted.clone());
        std::thread::spawn(move || {
            for i in 0..N {
                let t = tick(&rec, "EURUSD", at(i), "1.08500", "1.08510");
                rec.store_tick(t)
                    .expect("block policy: accepted, never refused");
                accepted.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    wait_until(
        Duration::from_secs(60),
        "the store to stall on the full disk",
        || rec.stats().backends[0].stalled.is_some(),
    );
    // Backpressure: the channel fills and the producer waits; nothing is consumed meanwhile.
    wait_until(Duration::from_secs(30), "the channel to fill", || {
        let s = rec.stats();
        s.queue_size == s.queue_capacity
    });
    let s = rec.stats();
    let reason = s.backends[0].stalled.clone().unwrap();
    assert!(reason.contains("full"), "{reason}");
    assert!(!s.healthy && s.health_problems.iter().any(|p| p.contains("stalled")));
    assert_eq!(s.ticks_lost + s.ticks_spilled + s.dead_lettered, 0);
    assert_eq!(
        s.ticks_stored + s.queue_size as u64 + s.ticks_in_writer,
        s.ticks_accepted,
        "while stalled every accepted tick is committed, queued or in the open batch: {s:?}"
    );
    assert!(s.ticks_accepted < N as u64, "the producer is held back");
    assert!(!producer.is_finished());

    fs.grow(64 * 1024);
    producer.join().unwrap();
    let s = rec.shutdown();
    assert_eq!(s.ticks_accepted, N as u64);
    assert_eq!(s.ticks_stored, N as u64, "{s:?}");
    assert_eq!(accounted(&s), N as u64);
    assert!(s.backends[0].stalled.is_none(), "resumed");
    let rows = all_rows(&base, "EURUSD");
    assert_eq!(rows.len() as i64, N, "each tick exactly once");
    let mut sent: Vec<i64> = (0..N).map(|i| at(i).0).collect();
    sent.sort_unstable();
    let stored: Vec<i64> = rows.iter().map(|r| r.ts_event.0).collect();
    assert!(stored == sent, "the ticks sent, each once");
    // Each day's seq is 1..n in arrival order (ticks of one day arrive in time order here).
    let mut by_day: std::collections::BTreeMap<_, Vec<i64>> = Default::default();
    for r in &rows {
        by_day
            .entry(r.ts_event.day())
            .or_default()
            .push(r.seq.unwrap());
    }
    for (day, seqs) in by_day {
        let want: Vec<i64> = (1..=seqs.len() as i64).collect();
        assert!(seqs == want, "{day}: no gap, no repeat");
    }
}

/// A JSON Lines file of `n` ticks, one second apart from T0.
fn jsonl(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("ticks.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..n {
        writeln!(
            f,
            "{{\"symbol\":\"EURUSD\",\"bid\":\"1.{:05}\",\"ask\":2,\"ts_event\":{}}}",
            i % 100_000,
            T0 + i as i64 * 1_000_000
        )
        .unwrap();
    }
    f.flush().unwrap();
    path
}

struct Run {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

impl Run {
    fn field(&self, line_start: &str, name: &str) -> u64 {
        let line = self
            .stdout
            .lines()
            .find(|l| l.starts_with(line_start))
            .unwrap_or_else(|| panic!("no `{line_start}` line in:\n{}", self.stdout));
        let mut words = line.split_whitespace();
        words.find(|w| *w == name).expect(name);
        words.next().unwrap().parse().unwrap()
    }
}

/// Runs `tickrec ingest FILE` until its log says the store stalled, then sends SIGTERM.
fn ingest_until_stalled_then_term(db: &Path, config: &Path, input: &Path) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickrec"));
    cmd.arg("--db")
        .arg(db)
        .arg("--config")
        .arg(config)
        .arg("ingest")
        .arg(input)
        .stdin(Stdio::null());
    let (child, stalled_rx, log) = spawn_watching(cmd, "store: stalled (");
    stalled_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the store stalls on the full disk and says so");
    let term = Instant::now();
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let exit_after = term.elapsed();
    // Within the shutdown bound (8 s by default), stalled or not.
    assert!(
        exit_after < Duration::from_secs(10),
        "exited after {exit_after:?}"
    );
    Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: log.join().unwrap(),
        code: out.status.code(),
    }
}

fn config_with_dead_letter_dir(dir: &Path, dead_letters: &Path) -> PathBuf {
    let cfg = dir.join("tickrec.toml");
    std::fs::write(
        &cfg,
        format!(
            "[writer]\ndead_letter_dirs = [{:?}]\nstall_retry_max_ms = 100\n[recorder]\nchannel_capacity = 20000\n",
            dead_letters.display().to_string()
        ),
    )
    .unwrap();
    cfg
}

/// What could go wrong: SIGTERM to a recorder stalled on a full disk used to take minutes (or
/// never end) while every queued tick went to the log. Now it exits within the bound, spills
/// every uncommitted tick to the dead-letter location on another volume, says so, and exits 1;
/// once there is room, re-running the same input completes the day exactly.
#[test]
fn sigterm_while_stalled_spills_every_uncommitted_tick_and_exits_in_time() {
    let fs = Tmpfs::mount(1024, false);
    let db = fs.path().join("db");
    let other = tempfile::tempdir().unwrap();
    let spill_dir = other.path().join("spill");
    let cfg = config_with_dead_letter_dir(other.path(), &spill_dir);
    let input = jsonl(other.path(), 200_000);

    let run = ingest_until_stalled_then_term(&db, &cfg, &input);
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let accepted = run.field("accounted:", "accepted");
    let stored = run.field("accounted:", "stored");
    let spilled = run.field("accounted:", "spilled");
    assert_eq!(
        run.field("accounted:", "lost"),
        0,
        "a writable location existed"
    );
    assert_eq!(run.field("accounted:", "dead-lettered"), 0);
    assert!(spilled > 0, "{}", run.stdout);
    assert_eq!(stored + spilled, accepted, "{}", run.stdout);
    assert!(
        run.stderr.matches("store: stalled (").count() <= 2,
        "reported once per change of state, not per tick or attempt:\n{}",
        run.stderr
    );
    assert_eq!(all_rows(&db, "EURUSD").len() as u64, stored);
    let spill = layout::spill_path(&spill_dir, Timestamp(T0).day());
    let spilled_lines = std::fs::read_to_string(&spill).unwrap().lines().count() as u64;
    assert_eq!(spilled_lines, spilled);

    assert!(
        run.stdout.contains("re-run `tickrec ingest"),
        "{}",
        run.stdout
    );
    // The spill is re-ingestable: every line parses back into a tick.
    for line in std::fs::read_to_string(&spill).unwrap().lines() {
        tickrec::format::jsonl::parse_line(line).expect("a spill line reads back as a tick");
    }

    // Space returns: re-running the same input resumes after its committed lines, and the
    // day holds every line of the input exactly once.
    fs.grow(256 * 1024);
    let out = super::cli::tickrec(&db, &["ingest", input.to_str().unwrap()], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_says(&out.stdout, &format!("already-stored {stored}"));
    let rows = all_rows(&db, "EURUSD");
    let mut ts: Vec<i64> = rows.iter().map(|r| r.ts_event.0).collect();
    ts.sort_unstable();
    let expected: Vec<i64> = (0..200_000i64).map(|i| T0 + i * 1_000_000).collect();
    assert_eq!(ts, expected, "every line of the input, each once");
}

/// What could go wrong: with the disk full and the dead-letter location unwritable too, ticks
/// used to vanish into log lines with no count. Now the exact number lost is counted and
/// printed, and the exit code says it.
#[test]
fn with_no_writable_location_the_exact_loss_is_counted_and_the_exit_code_fails() {
    let fs = Tmpfs::mount(1024, false);
    let db = fs.path().join("db");
    let read_only = Tmpfs::mount(64, true);
    let other = tempfile::tempdir().unwrap();
    let cfg = config_with_dead_letter_dir(other.path(), read_only.path());
    let input = jsonl(other.path(), 200_000);

    let run = ingest_until_stalled_then_term(&db, &cfg, &input);
    assert_eq!(run.code, Some(1));
    let accepted = run.field("accounted:", "accepted");
    let stored = run.field("accounted:", "stored");
    let lost = run.field("accounted:", "lost");
    assert_eq!(run.field("accounted:", "spilled"), 0);
    assert!(lost > 0);
    assert_eq!(stored + lost, accepted, "{}", run.stdout);
    assert!(run.stderr.contains("LOST"), "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!("lost {lost}")),
        "{}",
        run.stdout
    );
    assert_eq!(all_rows(&db, "EURUSD").len() as u64, stored);
}

/// What could go wrong: under a live FIX session a full disk used to turn market data into
/// log lines while the session kept consuming. Now the gateway stops reading its socket while
/// the store is stalled, and once there is room the day equals what the counterparty sent.
#[test]
fn disk_full_under_a_fix_session_stalls_then_resumes_and_the_day_equals_what_was_sent() {
    use super::fix::{journal_quotes, stored_quotes};
    let fs = Tmpfs::mount(768, false);
    let db = fs.path().join("db");
    let dir = tempfile::tempdir().unwrap();
    let (addr, sim, journal, syms) = journaled_sim(dir.path(), 5);
    let (child, stalled_rx, log) = record_child(&db, None, &addr, &syms, "store: stalled (");
    stalled_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the store stalls on the full disk and says so");
    fs.grow(64 * 1024);
    let sent = sim.join().unwrap();
    let count = || -> u64 { syms.iter().map(|s| all_rows(&db, s).len() as u64).sum() };
    wait_until(Duration::from_secs(30), "every sent tick committed", || {
        count() == sent.ticks_implied
    });
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let log = log.join().unwrap();
    assert!(
        out.status.success(),
        "{}\n{log}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(log.contains("store: resumed after"), "{log}");
    assert_eq!(stored_quotes(&db, &syms), journal_quotes(&journal));
}

/// What could go wrong: an I/O error in the middle of commits used to be retried three times
/// and then dead-lettered tick by tick. Here the kernel itself fails the writes: the child runs
/// under a file-size limit (`prlimit --fsize`, with SIGXFSZ ignored, so a write past it fails
/// with EFBIG, which SQLite reports as a disk I/O error). That is a storage fault: the store
/// stalls with the reason and holds its ticks; when the limit is lifted from outside, as an
/// operator fixing a volume would, it resumes and stores each tick exactly once.
#[test]
fn an_io_error_mid_run_stalls_the_store_and_it_resumes_exactly_when_the_fault_clears() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let input = jsonl(dir.path(), 150_000);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"trap "" XFSZ; exec prlimit --fsize=1500000:unlimited -- "$@""#)
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_tickrec"))
        .arg("--db")
        .arg(&db)
        .arg("ingest")
        .arg(&input)
        .stdin(Stdio::null());
    let (child, stalled_rx, log) = spawn_watching(cmd, "store: stalled (disk I/O error");
    stalled_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the store stalls on the I/O error and says so (disk I/O error)");
    let st = Command::new("prlimit")
        .args([
            "--pid",
            &child.id().to_string(),
            "--fsize=unlimited:unlimited",
        ])
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "lifting the limit: {}",
        text(&st.stderr)
    );
    let out = child.wait_with_output().unwrap();
    let (so, se) = (text(&out.stdout), log.join().unwrap());
    assert!(out.status.success(), "{so}{se}");
    assert!(
        so.contains(
            "accounted: accepted 150000 = stored 150000 + dead-lettered 0 + spilled 0 + lost 0"
        ),
        "{so}"
    );
    assert!(se.contains("store: resumed after"), "{se}");
    let rows = all_rows(&db, "EURUSD");
    assert_eq!(rows.len(), 150_000);
    assert!(rows
        .iter()
        .enumerate()
        .all(|(i, r)| r.ts_event.0 == T0 + i as i64 * 1_000_000));
}

/// What could go wrong: under sustained writes the background PASSIVE checkpoints never catch
/// up with the writer, SQLite never restarts the WAL, and it grows past the database itself
/// (108-133 MB in a 2M-tick ingest, 180 MiB in a 10M-tick bench). The WAL must stay under
/// `wal_max_bytes` throughout.
#[test]
fn the_wal_stays_under_its_bound_through_sustained_writes() {
    let dir = tempfile::tempdir().unwrap();
    let bound: u64 = 4 << 20;
    let rec = wal_bounded(dir.path(), bound);
    let wal = wal_of(dir.path(), Timestamp(T0).day());
    let mut largest = 0;
    const N: i64 = 600_000;
    for i in 0..N {
        rec.store_tick(nth_tick(&rec, i)).unwrap();
        if i % 1000 == 0 {
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
    }
    let s = rec.shutdown();
    assert_eq!(s.ticks_stored, N as u64);
    let sqlite = &s.backends[0];
    assert!(
        sqlite.wal_restarts > 0 && sqlite.wal_restart_s > 0.0,
        "the restarts are counted and timed: {sqlite:?}"
    );
    let db = std::fs::metadata(layout::day_path(dir.path(), Timestamp(T0).day()))
        .unwrap()
        .len();
    assert!(
        db > 4 * bound,
        "the day outgrew the bound several times over ({db} bytes)"
    );
    assert!(largest > 0, "the WAL was seen");
    assert!(
        largest <= bound,
        "largest WAL {largest} bytes, bound {bound}"
    );
}

/// What could go wrong: a reader that holds an old snapshot (a long query, a stuck consumer)
/// keeps the WAL from restarting; a writer that waited for it on every commit would stall the
/// feed for good, one that never waited would let the WAL grow past its bound once the reader
/// has gone. Every tick is stored, the long waits come once per half bound of growth, and the
/// WAL is back under its bound once the reader lets go.
#[test]
fn a_reader_holding_an_old_snapshot_delays_the_wal_restart_but_never_the_feed_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let bound: u64 = 2 << 20;
    let rec = wal_bounded(dir.path(), bound);
    let day = Timestamp(T0).day();
    let wal_bytes = || std::fs::metadata(wal_of(dir.path(), day)).map_or(0, |m| m.len());
    feed_committed(&rec, 0..20_000);
    let reader = rusqlite::Connection::open(layout::day_path(dir.path(), day)).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader
        .query_row("SELECT count(*) FROM ticks", [], |r| r.get(0))
        .unwrap();
    let held = Instant::now();
    feed_committed(&rec, 20_000..140_000);
    let during = wal_bytes();
    let took = held.elapsed();
    // An operator sees it: the WAL over its bound, the restarts put off, health says why.
    let seen = rec.stats();
    let sqlite = &seen.backends[0];
    assert_eq!(sqlite.wal_bound_bytes, bound);
    assert_eq!(sqlite.wal_bytes, during, "the gauge is the WAL's size");
    assert!(sqlite.wal_restarts_postponed > 0, "{sqlite:?}");
    assert!(
        seen.health_problems
            .iter()
            .any(|p| p.contains("WAL") && p.contains("old snapshot")),
        "{:?}",
        seen.health_problems
    );
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);
    // The feed goes on, and a restart after the reader let go finds no old snapshot. 120,000
    // ticks are enough here; on a machine that other work keeps busy the restarts were put off
    // past their waits for all of them (three test suites at once: 7.3 MB of WAL, 24 restarts
    // put off; most likely the background checkpointer's passes held them): the feed then goes
    // on, in steps of 20,000 ticks, until the WAL is back under its bound or a deadline.
    let mut fed = 140_000;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        feed_committed(&rec, fed..fed + 20_000);
        fed += 20_000;
        let under = rec.stats().backends[0].wal_bytes <= bound;
        if (under && fed >= 260_000) || Instant::now() >= deadline {
            break;
        }
    }
    let after = wal_bytes();
    let seen = rec.stats();
    let sqlite = &seen.backends[0];
    assert!(sqlite.wal_restarts > 0, "{sqlite:?}");
    assert!(sqlite.wal_bytes <= bound, "{sqlite:?}");
    assert!(seen.healthy, "{:?}", seen.health_problems);
    let s = rec.shutdown();
    assert_eq!(s.ticks_stored, fed as u64, "every tick stored");
    assert!(
        during > bound,
        "the reader held the WAL past its bound: {during} bytes"
    );
    // 120,000 ticks are 240 commits and ~5 MB of WAL: a pause per stretch of WAL (a few of a
    // second, some of 100 ms: ~5 s), not 100 ms at each commit (24 s and more).
    assert!(took < Duration::from_secs(15), "the feed went on: {took:?}");
    assert!(
        after <= bound,
        "back under the bound once the reader let go: {after} bytes"
    );
}

/// What could go wrong: the writer folds a day's WAL into its file when it lets go of the day
/// (at shutdown, or for another day), on its own thread. Under SQLite's busy handler that
/// waited out the whole busy timeout (5 s) while a reader held a snapshot of the day: the
/// writer's thread blocked, the other days' ticks queued behind it, and shutdown gave up on
/// the store. The close waits no longer than a WAL restart does, the WAL the reader kept
/// stays beside the file, and every tick reads back.
#[test]
fn a_reader_on_a_day_never_holds_up_the_writer_closing_it() {
    let dir = tempfile::tempdir().unwrap();
    let rec = wal_bounded(dir.path(), 64 << 20);
    let day = Timestamp(T0).day();
    const N: i64 = 20_000;
    feed_committed(&rec, 0..N);
    let reader = rusqlite::Connection::open(layout::day_path(dir.path(), day)).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let seen: i64 = reader
        .query_row("SELECT count(*) FROM ticks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(seen, N, "the reader's snapshot holds the first ticks");
    // Commits after the snapshot: folding them in must wait for the reader, whichever part
    // of the file (the WAL or the day file alone) its snapshot reads.
    feed_committed(&rec, N..2 * N);
    let closing = Instant::now();
    let s = rec.shutdown();
    let took = closing.elapsed();
    assert_eq!(s.ticks_stored, 2 * N as u64);
    assert_eq!(accounted(&s), 2 * N as u64);
    assert!(
        took < Duration::from_secs(2),
        "shutdown waited {took:?} for the reader"
    );
    assert!(
        std::fs::metadata(wal_of(dir.path(), day)).map_or(0, |m| m.len()) > 0,
        "the WAL the reader kept is left beside the file"
    );
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);
    let rows = all_rows(dir.path(), "EURUSD");
    assert_eq!(rows.len() as i64, 2 * N, "every tick reads back");
}

/// Feeds the WAL tests' ticks `ticks` (the first tick's index is the number already fed) and
/// waits until every tick so far is committed.
fn feed_committed(rec: &tickrec::pipeline::Recorder, ticks: std::ops::Range<i64>) {
    for i in ticks.clone() {
        rec.store_tick(nth_tick(rec, i)).unwrap();
    }
    wait_until(Duration::from_secs(120), "the ticks committed", || {
        rec.stats().ticks_stored == ticks.end as u64
    });
}

/// The `i`-th tick of the WAL tests: EURUSD, a microsecond after the one before.
fn nth_tick(rec: &tickrec::pipeline::Recorder, i: i64) -> tickrec::tick::Tick {
    tick(
        rec,
        "EURUSD",
        Timestamp(T0 + i * 1000),
        "1.08500",
        "1.08510",
    )
}

/// A recorder under `base` whose day files' WAL is bounded by `bound` bytes.
fn wal_bounded(base: &Path, bound: u64) -> tickrec::pipeline::Recorder {
    let writer = WriterOptions {
        wal_max_bytes: bound,
        ..WriterOptions::default()
    };
    recorder(base, PipelineOptions::default(), writer)
}

pub fn wal_of(base: &Path, day: chrono::NaiveDate) -> PathBuf {
    tickrec::fsutil::with_suffix(&layout::day_path(base, day), "-wal")
}

/// A simulator of 8 symbols at 5,000 messages/s for `secs`, journaling what it sends under
/// `dir`: its address, its thread, the journal and the symbols.
fn journaled_sim(
    dir: &Path,
    secs: u64,
) -> (
    String,
    std::thread::JoinHandle<tickrec::fix::sim::SimReport>,
    PathBuf,
    Vec<String>,
) {
    let journal = dir.join("sent.jsonl");
    let (addr, sim, _) = super::fix::start_sim(tickrec::fix::sim::SimOptions {
        symbols: 8,
        rate: Some(5000),
        duration: Some(Duration::from_secs(secs)),
        journal: Some(journal.clone()),
        ..tickrec::fix::sim::SimOptions::default()
    });
    (addr, sim, journal, tickrec::synth::symbol_names(8))
}

/// Runs `tickrec record` against `addr` with `db`, reporting when the log says `needle`.
fn record_child(
    db: &Path,
    cfg: Option<&Path>,
    addr: &str,
    syms: &[String],
    needle: &'static str,
) -> (
    std::process::Child,
    std::sync::mpsc::Receiver<()>,
    std::thread::JoinHandle<String>,
) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickrec"));
    cmd.arg("--db").arg(db);
    if let Some(cfg) = cfg {
        cmd.arg("--config").arg(cfg);
    }
    cmd.args(["record", "--connect", addr])
        .args(["--sender-comp-id", "REC", "--target-comp-id", "SIM"])
        .args(["--symbols", &syms.join(",")]);
    spawn_watching(cmd, needle)
}

/// Starts `cmd` (logging at warn) with its stdout and stderr captured; the receiver hears each
/// time a log line contains `needle`, and the thread returns the whole log.
fn spawn_watching(
    mut cmd: Command,
    needle: &'static str,
) -> (
    std::process::Child,
    std::sync::mpsc::Receiver<()>,
    std::thread::JoinHandle<String>,
) {
    let mut child = cmd
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(needle) {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    (child, rx, log)
}

/// What could go wrong: a FIX recorder stopped while its store is stalled and nowhere can take
/// its ticks used to lose them without a count or a way back. Now it exits within the bound,
/// prints the exact number lost and each session's resume point, exits 1; the next start asks
/// the counterparty for exactly that, and the day ends up equal to what was sent.
#[test]
fn sigterm_while_stalled_with_nowhere_to_spill_prints_the_loss_and_the_resume_point_and_the_restart_recovers_it(
) {
    use super::fix::{journal_quotes, stored_quotes};
    let fs = Tmpfs::mount(768, false);
    let db = fs.path().join("db");
    let read_only = Tmpfs::mount(64, true);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with_dead_letter_dir(dir.path(), read_only.path());
    let (addr, sim, journal, syms) = journaled_sim(dir.path(), 8);
    let (child, stalled, log) = record_child(&db, Some(&cfg), &addr, &syms, "store: stalled (");
    stalled
        .recv_timeout(Duration::from_secs(30))
        .expect("the store stalls on the full disk");
    let term = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        term.elapsed() < Duration::from_secs(10),
        "exited after {:?}",
        term.elapsed()
    );
    let (so, se) = (text(&out.stdout), log.join().unwrap());
    assert_eq!(out.status.code(), Some(1), "{so}{se}");
    let run = Run {
        stdout: so.clone(),
        stderr: se,
        code: out.status.code(),
    };
    let (accepted, stored, lost) = (
        run.field("accounted:", "accepted"),
        run.field("accounted:", "stored"),
        run.field("accounted:", "lost"),
    );
    assert!(lost > 0, "{so}");
    assert_eq!(stored + lost, accepted, "{so}");
    assert!(
        so.contains("session fix:FIX.4.4:REC->SIM: committed through inbound MsgSeqNum"),
        "{so}"
    );

    // Room again: the restart resends from the resume point and the day is complete.
    fs.grow(64 * 1024);
    let (child, _, log) = record_child(&db, None, &addr, &syms, "never");
    let sent = sim.join().unwrap();
    let count = || -> u64 { syms.iter().map(|s| all_rows(&db, s).len() as u64).sum() };
    wait_until(Duration::from_secs(30), "every sent tick committed", || {
        count() == sent.ticks_implied
    });
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let se = log.join().unwrap();
    assert!(out.status.success(), "{}{se}", text(&out.stdout));
    assert_eq!(stored_quotes(&db, &syms), journal_quotes(&journal));
}
