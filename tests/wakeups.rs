//! A moderate feed never has to wake the writer.
//!
//! Its own test binary, so that the recorder's writer is the only thread of its name in the
//! process (the suite runs many recorders at once).

use std::time::Duration;

use tickrec::pipeline::Outcome;
use tickrec::tick::Timestamp;

// The suite's helpers (recorders over folders, tick builders); this binary uses a few.
#[allow(dead_code)]
#[path = "it/util.rs"]
mod util;

/// Held by each test: both look for their thread by name, and each test's recorder or sink
/// starts threads of both names.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Threads of this process named `name` (other tests run beside this one: several may be).
fn threads_named(name: &str) -> Vec<std::path::PathBuf> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .map(|t| t.path())
        // A thread that ended since the listing has no comm: it is not one of ours.
        .filter(|p| std::fs::read_to_string(p.join("comm")).is_ok_and(|c| c.trim() == name))
        .collect()
}

/// The one thread of this process named `name` (the tests take turns); a new thread takes its
/// name a moment after it starts: waits for it, with a deadline.
fn the_thread_named(name: &str) -> std::path::PathBuf {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let [t] = threads_named(name).as_slice() {
            return t.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no thread named {name}"
        );
        std::thread::yield_now();
    }
}

/// Voluntary context switches of one thread (each is a sleep it woke from).
fn voluntary_switches(task: &std::path::Path) -> Option<u64> {
    std::fs::read_to_string(task.join("status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
}

/// What could go wrong: a writer that sleeps until a producer wakes it puts a syscall (a
/// futex wake) inside `store_tick` whenever the writer outruns the feed — once per tick at
/// moderate rates, the whole p99.9 of `store_tick`. At 20,000 ticks a second the writer must
/// wake far less often than once per tick: it polls with sleeps sized to its batch.
#[test]
fn a_moderate_feed_never_has_to_wake_the_writer() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let rec = util::default_recorder(dir.path());
    let writer = the_thread_named("tickrec-writer");
    let t0 = Timestamp::parse("2026-11-23T09:00:00Z").unwrap();
    let before = voluntary_switches(&writer).expect("the writer is running");
    let started = std::time::Instant::now();
    let n = 20_000u32;
    for i in 0..n {
        // Paced at 20,000 a second: spin to each tick's due time.
        let due = started + Duration::from_micros(50) * i;
        while std::time::Instant::now() < due {
            std::hint::spin_loop();
        }
        let t = util::tick(&rec, "EURUSD", Timestamp(t0.0 + i64::from(i)), "1.1", "1.2");
        assert_eq!(rec.store_tick(t), Ok(Outcome::Accepted));
    }
    let woke = voluntary_switches(&writer).expect("still running") - before;
    let stats = rec.shutdown();
    assert_eq!(stats.ticks_stored, u64::from(n));
    assert!(
        woke < u64::from(n) / 10,
        "the writer slept and woke {woke} times for {n} ticks"
    );
}

/// What could go wrong: a writer that hands its block builder each commit as it makes it wakes
/// the builder (a futex wake, an interrupt to the other CPU) once per commit: 3.3 % of the
/// writer thread's time at full speed, and the writer kept 0.84 × the ceiling instead of 0.94
/// (`bench --only writer`, six runs a side). It hands over a directory row's commits (16) in one
/// message once the row is written, and appends the tail records itself: 96 commits of 500
/// make six rows, so the builder may wake about six times, not ninety-six.
#[test]
fn the_block_builder_wakes_once_per_directory_row_not_once_per_commit() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    use tickrec::pipeline::Sink;
    use tickrec::store::writer::SqliteSink;
    use tickrec::store::WriterOptions;
    let dir = tempfile::tempdir().unwrap();
    let names = std::sync::Arc::new(tickrec::intern::Names::new(16));
    let ids: Vec<_> = ["A", "B", "C", "D"]
        .iter()
        .map(|s| names.symbol(s).unwrap())
        .collect();
    let src = names.source("LP1").unwrap();
    let opts = WriterOptions {
        symbol_blocks: true,
        ..WriterOptions::default()
    };
    let mut sink = SqliteSink::new(dir.path(), names.clone(), opts);
    let stop = tickrec::shutdown::Shutdown::new();
    let day0 = Timestamp::parse("2026-11-19T00:00:00Z").unwrap().0;
    let mut i = 0i64;
    let mut batch = |sink: &mut SqliteSink| {
        let ticks: Vec<_> = (0..500)
            .map(|_| {
                i += 1;
                tickrec::tick::Tick {
                    symbol: ids[(i % 4) as usize],
                    source: src,
                    ts_event: Timestamp(day0 + i * 1_000_000),
                    ts_recv: Timestamp(day0 + i * 1_000_000 + 1_000),
                    bid: util::dec("1.1"),
                    ask: util::dec("1.2"),
                    bid_size: None,
                    ask_size: None,
                    msg: tickrec::tick::MsgRef::NONE,
                }
            })
            .collect();
        sink.write_batch(&ticks, &stop);
    };
    // The first commit opens the day and starts the builder.
    batch(&mut sink);
    let builder = the_thread_named("tickrec-blocks");
    let before = voluntary_switches(&builder).expect("the builder is running");
    for _ in 1..96 {
        batch(&mut sink);
    }
    let woke = voluntary_switches(&builder).expect("still running") - before;
    sink.close();
    assert!(
        woke <= 12,
        "the builder woke {woke} times for 95 commits (six directory rows)"
    );
}
