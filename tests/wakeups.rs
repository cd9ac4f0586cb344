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
    let dir = tempfile::tempdir().unwrap();
    let rec = util::default_recorder(dir.path());
    // The one writer of this process (its own test binary); a new thread takes its name a
    // moment after it starts: wait for it, with a deadline.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let writer = loop {
        if let [w] = threads_named("tickrec-writer").as_slice() {
            break w.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no writer thread");
        std::thread::yield_now();
    };
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
