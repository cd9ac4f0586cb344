//! Fault injection: a really full disk (a small tmpfs), a dead-letter location that cannot be
//! written either, a signal while stalled. Each asserts the loss accounting exactly:
//! stored + dead-lettered + spilled + lost = accepted, and lost = 0 wherever a writable place
//! existed.
//!
//! A tmpfs is the faithful way to fill a disk here: SQLite meets ENOSPC from the kernel on the
//! WAL, the database and its shared memory alike, as on a real volume (`max_page_count` only
//! limits the database file and answers SQLITE_FULL without touching the file system). Mounting
//! needs root, which CI has; without it these tests fail and say so.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tickrec::pipeline::{PipelineOptions, StatsSnapshot};
use tickrec::store::{layout, WriterOptions};
use tickrec::tick::Timestamp;

use super::util::*;

/// A tmpfs mounted for one test; unmounted when dropped.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size_kib: u64, read_only: bool) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let opts = format!("size={size_kib}k{}", if read_only { ",ro" } else { "" });
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &opts, "tickrec-test"])
            .arg(dir.path())
            .output()
            .expect("the mount command (util-linux) runs");
        assert!(
            out.status.success(),
            "this fault-injection test mounts a small tmpfs to fill a disk for real and needs root \
             (CI runs the suite as root; run `sudo -E cargo test` locally): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Gives the file system more room, as an operator freeing space would.
    pub fn grow(&self, size_kib: u64) {
        self.remount(&format!("size={size_kib}k"));
    }

    /// Mounts it read-only, as a backup or snapshot is.
    pub fn make_read_only(&self) {
        self.remount("ro");
    }

    fn remount(&self, opts: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(st.success(), "remount {opts}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

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
    /// From SIGTERM to exit.
    exit_after: Duration,
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
    Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: log.join().unwrap(),
        code: out.status.code(),
        exit_after,
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
    assert!(
        run.exit_after < Duration::from_secs(10),
        "exited after {:?}",
        run.exit_after
    );
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
    assert!(
        text(&out.stdout).contains(&format!("already-stored {stored}")),
        "{}",
        text(&out.stdout)
    );
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
    assert!(
        run.exit_after < Duration::from_secs(10),
        "exited after {:?}",
        run.exit_after
    );
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

/// What could go wrong: a late tick landing between the archiver's unlink and the writer's
/// open used to create a fresh, tiny day file that queries preferred and the next `archive`
/// renamed over the good archive: a whole day lost. Ingests of late ticks for one day run in a
/// loop while `archive` and `unarchive` of that day run in a loop; at the end the day holds
/// every tick every ingest stored, each once.
#[test]
fn late_ticks_racing_archive_and_unarchive_of_their_day_are_all_kept_exactly_once() {
    let secs: u64 = std::env::var("TICKREC_RACE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let day = "2026-01-05";
    let day_t0: i64 = 1_767_571_200_000_000_000; // 2026-01-05T00:00:00Z
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let archiver = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut archived, mut restored) = (0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                let out = super::cli::tickrec(&db, &["archive", "--older-than", "1d"], None);
                let text = String::from_utf8_lossy(&out.stdout);
                assert!(
                    out.status.success(),
                    "{text}{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                archived += u32::from(text.contains(&format!("archived {day}:")));
                let out = super::cli::tickrec(&db, &["unarchive", day], None);
                restored += u32::from(out.status.success());
            }
            (archived, restored)
        })
    };
    let started = Instant::now();
    let mut stored = 0u64;
    let mut runs = 0u64;
    while started.elapsed() < Duration::from_secs(secs) {
        let mut input = String::new();
        for i in 0..200u64 {
            let n = runs * 200 + i;
            input.push_str(&format!(
                "{{\"symbol\":\"EURUSD\",\"bid\":1.1,\"ask\":1.2,\"ts_event\":{}}}\n",
                day_t0 + n as i64 * 1_000_000
            ));
        }
        let out = super::cli::tickrec(&db, &["ingest", "-"], Some(&input));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("accounted: accepted 200 = stored 200"),
            "{text}"
        );
        stored += 200;
        runs += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let (archived, restored) = archiver.join().unwrap();
    assert!(
        archived > 0 && restored > 0 && runs > 10,
        "the race ran: {archived} archives, {restored} restores, {runs} ingests"
    );
    let rows = all_rows(&db, "EURUSD");
    assert_eq!(
        rows.len() as u64,
        stored,
        "{archived} archives, {restored} restores"
    );
    let mut ts: Vec<i64> = rows.iter().map(|r| r.ts_event.0).collect();
    ts.sort_unstable();
    ts.dedup();
    assert_eq!(ts.len() as u64, stored, "each tick once");
    let days = tickrec::store::layout::list_days(&db).unwrap();
    assert_eq!(days.len(), 1, "one day, in one form: {days:?}");
}

/// Five days of EURUSD, 4000 ticks each, from 2026-11-20; returns the base folder's day paths.
fn five_days(db: &Path) -> Vec<PathBuf> {
    let day0: i64 = 1_795_132_800_000_000_000; // 2026-11-20T00:00:00Z
    let mut input = String::new();
    for d in 0..5i64 {
        for i in 0..4000i64 {
            input.push_str(&format!(
                "{{\"symbol\":\"EURUSD\",\"bid\":\"1.{:05}\",\"ask\":2,\"ts_event\":{}}}\n",
                i,
                day0 + d * 86_400_000_000_000 + 36_000_000_000_000 + i * 1_000_000
            ));
        }
    }
    let out = super::cli::tickrec(db, &["ingest", "-"], Some(&input));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let days = layout::list_days(db).unwrap();
    assert_eq!(days.len(), 5);
    days.into_iter().map(|d| d.path).collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What could go wrong: one corrupt, foreign, truncated or misplaced day file used to abort
/// `stats` for every day, break `query recent` for every symbol and any range spanning it.
/// Now each command finishes every other day, names the broken ones and why, and exits 1;
/// `check` finds each, and `check --repair` moves them aside and salvages what can be read.
///
/// (Long on purpose: one scenario end to end, its steps sharing what it builds.)
#[test]
fn broken_day_files_are_named_and_skipped_and_check_repair_salvages_what_it_can() {
    use std::io::{Seek, SeekFrom};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let paths = five_days(&db);
    // 2026-11-21: a stretch of pages overwritten in the middle.
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&paths[1])
            .unwrap();
        let len = f.metadata().unwrap().len();
        f.seek(SeekFrom::Start(len / 2 / 4096 * 4096)).unwrap();
        f.write_all(&[0x55; 8192]).unwrap();
    }
    // 2026-11-22: somebody else's file under the name.
    std::fs::write(&paths[2], b"date,price\n2026-11-22,1.1\n".repeat(200)).unwrap();
    // 2026-11-23: a folder where the file should be.
    std::fs::remove_file(&paths[3]).unwrap();
    std::fs::create_dir(&paths[3]).unwrap();
    // 2026-11-24: cut short.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&paths[4])
        .unwrap();
    f.set_len(f.metadata().unwrap().len() / 2).unwrap();
    drop(f);

    let out = super::cli::tickrec(&db, &["stats"], None);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{so}{se}");
    assert!(
        so.contains("2026-11-20") && so.contains("4000"),
        "the good day is reported: {so}"
    );
    assert!(se.contains("2026-11-22: not a SQLite file"), "{se}");
    assert!(se.contains("2026-11-23: is a directory"), "{se}");

    let out = super::cli::tickrec(
        &db,
        &[
            "query", "recent", "EURUSD", "-n", "100000", "--format", "jsonl",
        ],
        None,
    );
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{se}");
    assert!(so.lines().count() >= 4000, "every readable day answers");
    assert!(
        se.contains("2026-11-22") && se.contains("2026-11-23"),
        "{se}"
    );

    let out = super::cli::tickrec(
        &db,
        &[
            "query",
            "range",
            "EURUSD",
            "--from",
            "2026-11-20",
            "--to",
            "2026-11-25",
            "--format",
            "jsonl",
        ],
        None,
    );
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{se}");
    assert!(
        so.lines().filter(|l| l.contains("2026-11-20T")).count() == 4000,
        "{se}"
    );
    assert!(
        se.contains("2026-11-22: not a SQLite file") && se.contains("2026-11-23: is a directory"),
        "{se}"
    );

    // seal and archive finish every good day, name each broken one, and exit 1.
    for cmd in [
        &["seal", "--older-than", "1d"][..],
        &["archive", "--older-than", "1d"],
    ] {
        let out = super::cli::tickrec(&db, cmd, None);
        let (so, se) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(1), "{cmd:?}: {so}{se}");
        assert!(
            se.contains("skipped 2026-11-22: not a SQLite file"),
            "{cmd:?}: {se}"
        );
        assert!(
            se.contains("skipped 2026-11-23: is a directory"),
            "{cmd:?}: {se}"
        );
    }
    assert!(
        layout::existing_archive(&db, chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap())
            .is_some(),
        "the good day was archived"
    );

    let out = super::cli::tickrec(&db, &["check"], None);
    let so = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{so}");
    assert!(so.contains("2026-11-20: ok (archive), 4000 ticks"), "{so}");
    for d in ["2026-11-21", "2026-11-22", "2026-11-23", "2026-11-24"] {
        assert!(so.contains(&format!("{d}: BROKEN")), "{d}: {so}");
    }

    let out = super::cli::tickrec(&db, &["check", "--repair"], None);
    let so = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "ticks were lost, so not all recovered: {so}"
    );
    assert!(so.contains("moved to"), "{so}");
    let aside = std::fs::read_dir(paths[1].parent().unwrap())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".broken-")
        })
        .count();
    assert!(
        aside >= 4,
        "broken files kept aside, never deleted ({aside})"
    );
    // The salvaged days are sound, and the good day is untouched.
    let out = super::cli::tickrec(&db, &["check"], None);
    let so = text(&out.stdout);
    assert!(out.status.success(), "{so}");
    let salvaged_21 = all_rows(&db, "EURUSD")
        .iter()
        .filter(|r| r.ts_event.day().to_string() == "2026-11-21")
        .count();
    assert!(
        salvaged_21 > 0 && salvaged_21 < 4000,
        "part of the corrupt day salvaged: {salvaged_21}"
    );
    let out = super::cli::tickrec(&db, &["stats"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
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
    let mut i = 0i64;
    // Feeds n ticks and waits until every tick so far is committed.
    let mut feed = |n: i64| {
        for _ in 0..n {
            rec.store_tick(nth_tick(&rec, i)).unwrap();
            i += 1;
        }
        wait_until(Duration::from_secs(120), "the ticks committed", || {
            rec.stats().ticks_stored == i as u64
        });
    };
    feed(20_000);
    let reader = rusqlite::Connection::open(layout::day_path(dir.path(), day)).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader
        .query_row("SELECT count(*) FROM ticks", [], |r| r.get(0))
        .unwrap();
    let held = Instant::now();
    feed(120_000);
    let during = wal_bytes();
    let took = held.elapsed();
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);
    feed(120_000);
    let after = wal_bytes();
    let s = rec.shutdown();
    assert_eq!(s.ticks_stored, 260_000, "every tick stored");
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
        exit_after: term.elapsed(),
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

/// What could go wrong: sealing a day from before the directory rewrites its rows (asks as
/// distances) and compacts the file, which needs room; on a disk without it the seal must fail
/// naming the day, leave the day exactly as it was (every answer, `check` clean), and succeed
/// once room is made.
#[test]
fn sealing_an_old_day_on_a_full_disk_fails_cleanly_and_succeeds_once_there_is_room() {
    use super::cli::tickrec;
    let scratch = tempfile::tempdir().unwrap();
    let made = scratch.path().join("db");
    let mut input = String::new();
    for i in 0..60_000u32 {
        let sym = ["EURUSD", "GBPUSD", "USDJPY", "AUDUSD"][(i * 7 % 11 % 4) as usize];
        input.push_str(&format!(
            "{{\"symbol\":\"{sym}\",\"bid\":\"1.{:05}\",\"ask\":\"1.{:05}\",\"bid_size\":1000000,\"ts_event\":\"2026-11-02T{:02}:{:02}:{:02}.{:09}Z\"}}\n",
            i % 90_000,
            i % 90_000 + 7,
            i / 3600 % 24,
            i / 60 % 60,
            i % 60,
            i * 7_919 % 1_000_000_000
        ));
    }
    let out = tickrec(&made, &["ingest"], Some(&input));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rel = Path::new("2026/11/ticks_2026-11-02.db");
    let conn = rusqlite::Connection::open(made.join(rel)).unwrap();
    conn.execute_batch(super::archive::TO_VERSION_4).unwrap();
    drop(conn);
    let live = std::fs::metadata(made.join(rel)).unwrap().len();
    // A disk with room for the day and a little more: not for a second copy of its rows.
    let fs = Tmpfs::mount(live / 1024 + 512, false);
    let db = fs.path().join("db");
    std::fs::create_dir_all(db.join("2026/11")).unwrap();
    std::fs::copy(made.join(rel), db.join(rel)).unwrap();
    let before = day_answers(&db);
    let out = tickrec(&db, &["seal", "--older-than", "1d"], None);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "a seal without room must fail");
    assert!(said.contains("2026-11-02"), "names the day: {said}");
    assert!(day_answers(&db) == before, "the day answers as before");
    succeeds(&db, &["check"]);
    fs.grow(live / 1024 * 3 + 1024);
    succeeds(&db, &["seal", "--older-than", "1d"]);
    assert!(
        day_answers(&db) == before,
        "sealed, the day answers as before"
    );
    let sealed = std::fs::metadata(db.join(rel)).unwrap().len();
    assert!(sealed <= live, "live {live} -> sealed {sealed}");
    succeeds(&db, &["check"]);
}

/// What could go wrong: `seal` of a day from before the directory rewrites rows, then compacts
/// the file; killed (SIGKILL) in either step, the day must answer exactly as before and pass
/// `check`, and the next seal must finish the job (compacting what a killed one left
/// part-empty), leaving the day no bigger than it was.
#[test]
fn a_seal_killed_while_rewriting_or_compacting_changes_no_answer_and_the_next_one_finishes() {
    let (_dir, db) = busy_day_store(600_000);
    let day = db.join(BUSY_DAY);
    assert_eq!(sql_int(&day, "SELECT count(*) FROM ticks"), 600_000);
    let conn = rusqlite::Connection::open(&day).unwrap();
    conn.execute_batch(super::archive::TO_VERSION_4).unwrap();
    drop(conn);
    let live = std::fs::metadata(&day).unwrap().len();
    let before = day_answers(&db);
    let wal = tickrec::fsutil::with_suffix(&day, "-wal");
    let wal_len = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    // Kill points, each a condition on the WAL: growing with the rewrite; then, after the
    // checkpoint that empties it, growing again with the compaction.
    for phase in ["rewriting", "compacting"] {
        let mut stage = 0;
        let ended = kill_when(&db, &["seal", "--older-than", "1d"], || {
            let n = wal_len();
            stage = match (phase, stage) {
                (_, 0) if n > 2 << 20 => 1,
                ("compacting", 1) if n < 1 << 16 => 2,
                ("compacting", 2) if n > 2 << 20 => 3,
                (_, s) => s,
            };
            (phase == "rewriting" && stage == 1) || stage == 3
        });
        assert!(
            ended.is_none(),
            "{phase}: the seal ended before its kill point: {ended:?}"
        );
        assert!(
            day_answers(&db) == before,
            "killed while {phase}: another answer"
        );
        succeeds(&db, &["check"]);
    }
    succeeds(&db, &["seal", "--older-than", "1d"]);
    assert!(day_answers(&db) == before, "sealed: another answer");
    let sealed = std::fs::metadata(&day).unwrap().len();
    assert!(sealed <= live, "live {live} -> sealed {sealed}");
    assert_eq!(
        sql_int(&day, "SELECT count(*) FROM batches WHERE dir IS NULL"),
        0
    );
    succeeds(&db, &["check"]);
}

/// Runs `tickrec --db db args…` and kills it (SIGKILL) as soon as `due` holds, polling;
/// `None` when it was killed, its exit status when it ended first.
fn kill_when(
    db: &Path,
    args: &[&str],
    mut due: impl FnMut() -> bool,
) -> Option<std::process::ExitStatus> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tickrec"))
        .arg("--db")
        .arg(db)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        assert!(
            Instant::now() < deadline,
            "{args:?} neither ended nor was killed"
        );
        if due() {
            child.kill().unwrap();
            child.wait().unwrap();
            return None;
        }
        std::thread::yield_now();
    }
}

/// `tickrec --db db args…`, which must succeed; its stdout.
fn succeeds(db: &Path, args: &[&str]) -> Vec<u8> {
    let out = super::cli::tickrec(db, args, None);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Every tick of 2026-11-02 in time order, then USDJPY's newest 500, as CSV: what a fault
/// must not change.
fn day_answers(db: &Path) -> Vec<u8> {
    let mut all = succeeds(
        db,
        &[
            "query",
            "range",
            "--symbols",
            "all",
            "--from",
            "2026-11-02",
            "--to",
            "2026-11-03",
            "--format",
            "csv",
        ],
    );
    all.extend(succeeds(
        db,
        &["query", "recent", "USDJPY", "-n", "500", "--format", "csv"],
    ));
    all
}

/// `n` JSON Lines quotes of five symbols spread over 2026-11-02, as `ingest` reads them.
fn busy_day_lines(n: u64) -> String {
    let mut input = String::with_capacity(n as usize * 150);
    for i in 0..n {
        let sym = ["EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCHF"][(i * 7 % 13 % 5) as usize];
        let ns = i * (86_400_000_000_000 / n) + i * 7_919 % 100_000_000;
        input.push_str(&format!(
            "{{\"symbol\":\"{sym}\",\"bid\":\"1.{:05}\",\"ask\":\"1.{:05}\",\"bid_size\":1000000,\"ts_event\":\"2026-11-02T{:02}:{:02}:{:02}.{:09}Z\"}}\n",
            i % 90_000,
            i % 90_000 + 9,
            ns / 3_600_000_000_000,
            ns / 60_000_000_000 % 60,
            ns / 1_000_000_000 % 60,
            ns % 1_000_000_000
        ));
    }
    input
}

/// The busy day's file under a store.
const BUSY_DAY: &str = "2026/11/ticks_2026-11-02.db";

/// A scratch folder holding a store (its `db/`) with `n` ticks of the busy day, ingested.
fn busy_day_store(n: u64) -> (tempfile::TempDir, PathBuf) {
    let scratch = tempfile::tempdir().unwrap();
    let db = scratch.path().join("db");
    let out = super::cli::tickrec(&db, &["ingest"], Some(&busy_day_lines(n)));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (scratch, db)
}

/// Copies the busy day's file from the store `from` into the store `to`.
fn copy_busy_day(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("2026/11")).unwrap();
    std::fs::copy(from.join(BUSY_DAY), to.join(BUSY_DAY)).unwrap();
}

/// What could go wrong: `archive` killed (SIGKILL) while it writes the Parquet file, or right
/// after it renamed it into place, must leave the day answering exactly as before (from the
/// day file, or from the archive once it is whole), `check` clean, and the next run must
/// finish the archive.
#[test]
fn an_archive_killed_while_writing_or_after_its_rename_changes_no_answer_and_the_next_finishes() {
    let (_dir, db) = busy_day_store(600_000);
    let day = db.join(BUSY_DAY);
    let parquet = db.join("2026/11/ticks_2026-11-02.parquet");
    let tmp = tickrec::fsutil::with_suffix(&parquet, ".tmp");
    let before = day_answers(&db);
    for phase in ["writing", "renamed"] {
        let ended = kill_when(&db, &["archive", "--older-than", "1d"], || match phase {
            "writing" => std::fs::metadata(&tmp).is_ok_and(|m| m.len() > 0),
            _ => parquet.exists(),
        });
        if phase == "writing" {
            assert!(
                ended.is_none(),
                "the archive ended before its kill point: {ended:?}"
            );
            assert!(day.exists() && !parquet.exists(), "the day file stays");
        }
        // (Killed right after the rename, or a moment later: either way nothing changes.)
        assert!(
            day_answers(&db) == before,
            "killed while {phase}: another answer"
        );
        succeeds(&db, &["check"]);
    }
    succeeds(&db, &["archive", "--older-than", "1d"]);
    assert!(
        parquet.exists() && !day.exists() && !tmp.exists(),
        "archived whole"
    );
    assert!(day_answers(&db) == before, "archived: another answer");
    succeeds(&db, &["check"]);
}

/// Every file under `root`, relative, sorted.
fn files_under(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// Space in use on the tmpfs at `path`, KiB.
fn used_kib(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=used", "-k"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().nth(1).unwrap().trim().parse().unwrap()
}

/// What could go wrong: `archive`, `unarchive` or `export` meets a full disk and leaves a
/// half-written file that later reads as whole (an archive short of ticks, an export partition
/// a rerun skips), or removes the form it was copying from. Each must fail naming the day,
/// change no answer, leave nothing but the files it started with, and succeed once there is
/// room.
///
/// (Long on purpose: one disk, filled and grown three times, one step after another.)
#[test]
fn archive_unarchive_and_export_on_a_full_disk_fail_cleanly_and_succeed_once_there_is_room() {
    use super::cli::tickrec;
    let (scratch, made) = busy_day_store(200_000);
    let rel = Path::new(BUSY_DAY);
    let live_kib = std::fs::metadata(made.join(rel)).unwrap().len() / 1024;
    let fails = |db: &Path, args: &[&str]| {
        let out = tickrec(db, args, None);
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{args:?} without room must fail");
        assert!(
            said.contains("2026-11-02") && said.contains("full"),
            "{args:?} names the day and the cause: {said}"
        );
    };
    // How big its smaller archive is, learnt on a copy.
    let trial = scratch.path().join("trial");
    copy_busy_day(&made, &trial);
    succeeds(&trial, &["archive", "--older-than", "1d"]);
    let archive_kib = std::fs::metadata(trial.join("2026/11/ticks_2026-11-02.parquet"))
        .unwrap()
        .len()
        / 1024;
    // Room for the day file, not for an archive of it beside it.
    let fs = Tmpfs::mount(live_kib + archive_kib / 2, false);
    let db = fs.path().join("db");
    copy_busy_day(&made, &db);
    let before = day_answers(&made);
    assert!(day_answers(&db) == before);
    let files = files_under(fs.path());
    for format in ["parquet", "sqlite-zst"] {
        fails(&db, &["archive", "--older-than", "1d", "--format", format]);
        assert_eq!(
            files_under(fs.path()),
            files,
            "{format}: nothing left behind"
        );
        assert!(
            day_answers(&db) == before,
            "{format}: the day answers as before"
        );
    }
    succeeds(&db, &["check"]);
    fs.grow(live_kib * 3);
    succeeds(&db, &["archive", "--older-than", "1d"]);
    assert!(
        day_answers(&db) == before,
        "archived, the day answers as before"
    );
    assert!(!db.join(rel).exists(), "the day is in its archive alone");

    // Room for the archive, not for the day file it would restore.
    let files = files_under(fs.path());
    fs.grow(used_kib(fs.path()) + live_kib / 2);
    fails(&db, &["unarchive", "2026-11-02"]);
    assert_eq!(
        files_under(fs.path()),
        files,
        "unarchive: nothing left behind"
    );
    assert!(day_answers(&db) == before, "the archive answers as before");
    succeeds(&db, &["check"]);
    fs.grow(used_kib(fs.path()) + live_kib * 3);
    succeeds(&db, &["unarchive", "2026-11-02"]);
    assert!(
        day_answers(&db) == before,
        "unarchived, the day answers as before"
    );

    // An export into what is left: a partition is whole or absent, and a rerun completes it.
    let tree = fs.path().join("export");
    let export = |extra: &[&str]| {
        let mut args = vec!["export", "--from", "2026-11-02", "--to", "2026-11-03"];
        args.extend(["--symbols", "all", "--out", tree.to_str().unwrap()]);
        args.extend(extra);
        tickrec(&db, &args, None)
    };
    fs.grow(used_kib(fs.path()) + 1024);
    let out = export(&["--format", "csv"]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "an export without room must fail");
    assert!(
        said.contains("2026-11-02") && said.contains("No space left on device"),
        "{said}"
    );
    assert_eq!(
        said.matches("No space left").count(),
        1,
        "said once: {said}"
    );
    let left: Vec<String> = files_under(fs.path())
        .into_iter()
        .filter(|f| f.starts_with("export"))
        .collect();
    assert!(left.is_empty(), "no partition, whole or half: {left:?}");
    fs.grow(used_kib(fs.path()) + live_kib * 4);
    let out = export(&["--format", "csv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported = std::fs::read(tree.join("date=2026-11-02/part-0.csv")).unwrap();
    let whole_day = &before[..exported.len().min(before.len())];
    assert!(
        exported == whole_day,
        "the partition is the day's ticks, as queried"
    );
}

/// Fills the tmpfs at `fs` to its last byte.
fn fill(fs: &Tmpfs) {
    let mut f = std::fs::File::create(fs.path().join("filler")).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    while f.write_all(&block[..1]).is_ok() {}
    let _ = f.sync_all();
}

/// What could go wrong: on a full disk SQLite cannot make the `-shm` of a day file nobody has
/// open, so every query of the day failed, `check` called the file broken and `check --repair`
/// moved a sound file aside (its day vanished from every query). On a full disk queries,
/// `stats` and `check` must read the day as ever; where they truly cannot (ticks still in a
/// write-ahead log), they must say so without calling the file damaged, and `--repair` must
/// leave it where it is.
#[test]
fn a_full_disk_never_makes_a_sound_day_file_look_broken_and_repair_never_moves_one() {
    use super::cli::tickrec;
    let (scratch, made) = busy_day_store(20_000);
    let rel = Path::new(BUSY_DAY);
    let before = day_answers(&made);
    let live_kib = std::fs::metadata(made.join(rel)).unwrap().len() / 1024;

    let fs = Tmpfs::mount(live_kib + 1024, false);
    let db = fs.path().join("db");
    copy_busy_day(&made, &db);
    fill(&fs);
    assert!(
        day_answers(&db) == before,
        "queries on a full disk answer as ever"
    );
    let stats = String::from_utf8_lossy(&succeeds(&db, &["stats"])).into_owned();
    assert!(stats.contains("20000"), "{stats}");
    let said = String::from_utf8_lossy(&succeeds(&db, &["check", "--repair"])).into_owned();
    assert!(said.contains("2026-11-02: ok, 20000 ticks"), "{said}");
    assert!(db.join(rel).exists(), "the day file stays where it is");

    // Ticks still in the write-ahead log of a writer that died: the file alone is not the
    // day, so it cannot be read on a full disk, and that is all anyone may say.
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(tickrec::fsutil::with_suffix(&db.join(rel), suffix));
    }
    let src = made.join(rel);
    let conn = rusqlite::Connection::open(&src).unwrap();
    conn.execute_batch(
        "PRAGMA wal_autocheckpoint = 0; BEGIN; UPDATE file_info SET id = id; COMMIT;",
    )
    .unwrap();
    std::fs::copy(&src, db.join(rel)).unwrap();
    let wal = tickrec::fsutil::with_suffix(&db.join(rel), "-wal");
    std::fs::copy(tickrec::fsutil::with_suffix(&src, "-wal"), &wal).unwrap();
    drop(conn);
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
    fill(&fs);
    let out = tickrec(&db, &["query", "recent", "USDJPY"], None);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "a day it cannot read fails the query"
    );
    assert!(
        err.contains("could not be read here and now")
            && !err.contains("repair")
            && !err.contains("no such symbol"),
        "says what it is, not damage, not an unknown symbol: {err}"
    );
    let out = tickrec(&db, &["check", "--repair"], None);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success());
    assert!(
        said.contains("NOT CHECKED") && !said.contains("BROKEN"),
        "{said}"
    );
    assert!(
        db.join(rel).exists() && wal.exists(),
        "nothing moved: {said}"
    );
    let tree = scratch.path().join("export");
    let export = [
        "export",
        "--from",
        "2026-11-02",
        "--to",
        "2026-11-03",
        "--format",
        "csv",
        "--out",
    ];
    let tree_arg = tree.to_str().unwrap();
    let out = tickrec(&db, &[&export[..], &[tree_arg]].concat(), None);
    assert!(!out.status.success(), "an export missing a day fails");
    let partition = tree.join("date=2026-11-02/part-0.csv");
    assert!(
        !partition.exists(),
        "no partition short of its day (a rerun would skip it)"
    );
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    assert!(
        day_answers(&db) == before,
        "with room again, the day answers as ever"
    );
    succeeds(&db, &["check"]);
    succeeds(&db, &[&export[..], &[tree_arg]].concat());
    assert!(partition.exists());
}

/// What could go wrong: SQLite cannot make a day file's `-shm` on a read-only file system (a
/// backup or a snapshot mounted read-only), so no query could read any day of it, and `check`
/// would call every day broken. Queries, `stats` and `check` must read it as ever.
#[test]
fn days_on_a_read_only_file_system_answer_as_ever() {
    let (_scratch, made) = busy_day_store(20_000);
    let before = day_answers(&made);
    let fs = Tmpfs::mount(64 << 10, false);
    let db = fs.path().join("db");
    copy_busy_day(&made, &db);
    fs.make_read_only();
    assert!(day_answers(&db) == before, "queries answer as ever");
    let stats = String::from_utf8_lossy(&succeeds(&db, &["stats"])).into_owned();
    assert!(stats.contains("20000"), "{stats}");
    let said = String::from_utf8_lossy(&succeeds(&db, &["check"])).into_owned();
    assert!(said.contains("2026-11-02: ok, 20000 ticks"), "{said}");
}

/// What could go wrong: `migrate` meets a full disk midway and the ticks it had read are
/// dropped, or the rerun imports again what was committed. It must stop saying why, and the
/// rerun, given room, must import exactly the rest: every record once.
#[test]
fn a_migration_that_fills_the_disk_stops_and_its_rerun_imports_exactly_the_rest() {
    use super::cli::tickrec;
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("json");
    std::fs::create_dir_all(input.join("EURUSD")).unwrap();
    let t0 = 1_795_392_000_000_000_000i64; // 2026-11-23T00:00:00Z
    let mut body = String::new();
    for i in 0..200_000i64 {
        body.push_str(&format!(
            "{{\"symbol\":\"EURUSD\",\"bid\":\"1.{:05}\",\"ask\":\"1.{:05}\",\"lp\":\"LP1\",\"timestamp\":{}}}\n",
            i % 90_000,
            i % 90_000 + 5,
            t0 + i * 400_000_000
        ));
    }
    std::fs::write(input.join("EURUSD/2026-11-23.json"), body).unwrap();
    let fs = Tmpfs::mount(3 * 1024, false);
    let db = fs.path().join("db");
    let args = ["migrate", "--input-dir", input.to_str().unwrap()];
    let out = tickrec(&db, &args, None);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "a migration without room fails");
    assert!(said.contains("full"), "says why: {said}");
    let day = db.join("2026/11/ticks_2026-11-23.db");
    let partial = committed_ticks(&day);
    assert!(
        partial > 0 && partial < 200_000,
        "stopped midway: {partial}"
    );
    fs.grow(64 * 1024);
    let out = succeeds(&db, &args);
    let report = String::from_utf8_lossy(&out).into_owned();
    assert!(
        report.contains(&format!("ticks imported {}", 200_000 - partial))
            && report.contains(&format!("already present {partial}")),
        "{report}"
    );
    assert_eq!(committed_ticks(&day), 200_000);
    let rows = all_rows(&db, "EURUSD");
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(
            r.ts_event.0,
            t0 + i as i64 * 400_000_000,
            "each record once, in order"
        );
    }
    succeeds(&db, &["check"]);
}
