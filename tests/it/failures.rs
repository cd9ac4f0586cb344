//! The failure ladder, driven by real SQLite errors: a trigger that refuses one tick, and a
//! second connection that holds the write lock.

use std::time::Duration;

use tickrec::pipeline::PipelineOptions;
use tickrec::store::{layout, schema, SqliteOptions, WriterOptions};
use tickrec::tick::{Decimal, Timestamp};

use super::util::*;

fn fast_retries() -> WriterOptions {
    WriterOptions {
        sqlite: SqliteOptions {
            busy_timeout: Duration::from_millis(20),
            ..SqliteOptions::default()
        },
        commit_retries: 3,
        retry_backoff: Duration::from_millis(100),
        ..WriterOptions::default()
    }
}

/// The day file of `t0` under `base`, with a trigger that refuses any tick bid at 6.66666 (a
/// real SQLite constraint error, the kind a dead letter is for).
fn poisoned_day(base: &std::path::Path, t0: Timestamp) -> std::path::PathBuf {
    let db = layout::day_path(base, t0.day());
    let conn = schema::open_for_write(&db, t0.day(), &SqliteOptions::default()).unwrap();
    let poison = Decimal::parse("6.66666").unwrap().code();
    conn.execute_batch(&format!(
        "CREATE TRIGGER refuse BEFORE INSERT ON ticks WHEN NEW.bid = {poison}
         BEGIN SELECT RAISE(ABORT, 'injected refusal'); END;"
    ))
    .unwrap();
    db
}

/// What could go wrong: one bad tick aborting its whole 500-tick transaction would lose 499
/// good ticks, or the bad tick itself could vanish without a trace.
#[test]
fn a_tick_the_database_refuses_is_dead_lettered_and_the_rest_of_its_batch_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = ts("2026-11-23T10:00:00Z");
    let db = poisoned_day(dir.path(), t0);

    let rec = recorder(dir.path(), PipelineOptions::default(), fast_retries());
    for i in 0..500 {
        let bid = if i == 321 { "6.66666" } else { "1.10000" };
        rec.store_tick(tick(&rec, "EURUSD", Timestamp(t0.0 + i), bid, "1.2"))
            .unwrap();
    }
    let stats = rec.shutdown();
    assert_eq!(stats.ticks_stored, 499);
    assert_eq!(stats.dead_lettered, 1);
    assert!(stats.write_errors >= 9, "one failure per split level");
    assert_eq!(
        seqs(&db),
        (1..=499).collect::<Vec<_>>(),
        "no gap where it was refused"
    );

    let letters = std::fs::read_to_string(layout::dead_letter_path(dir.path(), t0.day())).unwrap();
    let lines: Vec<&str> = letters.lines().collect();
    assert_eq!(lines.len(), 1);
    assert!(lines[0].contains("injected refusal"), "{}", lines[0]);
    let back = tickrec::format::jsonl::parse_line(lines[0]).expect("re-ingestable");
    assert_eq!(back.bid.unwrap().to_string(), "6.66666");
    assert_eq!(back.ts_event, Timestamp(t0.0 + 321));
    assert!(
        !stats.healthy,
        "write errors above the threshold make it unhealthy"
    );
}

/// What could go wrong: another process (a backup, a curious sqlite3 shell) holding the write
/// lock for longer than busy_timeout must not turn a good batch into dead letters.
#[test]
fn a_locked_day_file_is_retried_with_backoff_until_it_frees() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = ts("2026-11-23T10:00:00Z");
    let db = layout::day_path(dir.path(), t0.day());
    drop(schema::open_for_write(&db, t0.day(), &SqliteOptions::default()).unwrap());
    let blocker = rusqlite::Connection::open(&db).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();

    let rec = recorder(dir.path(), PipelineOptions::default(), fast_retries());
    for i in 0..10 {
        rec.store_tick(tick(&rec, "EURUSD", Timestamp(t0.0 + i), "1.1", "1.2"))
            .unwrap();
    }
    wait_until(Duration::from_secs(10), "the writer to retry", || {
        rec.stats().backends[0].commit_retries >= 1
    });
    blocker.execute_batch("COMMIT").unwrap();
    let stats = rec.shutdown();
    assert_eq!(stats.ticks_stored, 10);
    assert_eq!(stats.dead_lettered, 0);
    assert!(stats.backends[0].commit_retries >= 1);
    assert_eq!(seqs(&db).len(), 10);
}

/// What could go wrong: splitting a refused batch down to single ticks used to commit part of a
/// FIX message without the rest; its position mark (set by its last tick) then either skipped
/// the refused part on a restart or made the resend store the committed part twice. A message
/// the database refuses goes aside whole; the messages around it are stored with their marks.
#[test]
fn a_message_the_database_refuses_is_dead_lettered_whole_and_never_half_committed() {
    use tickrec::tick::MsgRef;
    let dir = tempfile::tempdir().unwrap();
    let t0 = ts("2026-11-23T10:00:00Z");
    poisoned_day(dir.path(), t0);
    let rec = recorder(dir.path(), PipelineOptions::default(), fast_retries());
    let origin = rec.names().origin("fix:FIX.4.4:REC->LP").unwrap();
    // Messages 1..=100 of three ticks each; the middle tick of message 50 is refused.
    let mut n = 0;
    for seq in 1..=100u64 {
        for k in 0..3 {
            let bid = if seq == 50 && k == 1 {
                "6.66666"
            } else {
                "1.10000"
            };
            let mut t = tick(&rec, "EURUSD", Timestamp(t0.0 + n), bid, "1.2");
            t.msg = MsgRef::new(origin, seq, k < 2);
            rec.store_tick(t).unwrap();
            n += 1;
        }
    }
    let stats = rec.shutdown();
    assert_eq!(stats.ticks_stored, 297);
    assert_eq!(
        stats.dead_lettered, 3,
        "the whole message, not one tick of it"
    );
    let letters = std::fs::read_to_string(layout::dead_letter_path(dir.path(), t0.day())).unwrap();
    let back: Vec<i64> = letters
        .lines()
        .map(|l| tickrec::format::jsonl::parse_line(l).unwrap().ts_event.0 - t0.0)
        .collect();
    assert_eq!(back, [147, 148, 149]);
    assert_eq!(
        store(dir.path())
            .next_position("fix:FIX.4.4:REC->LP")
            .unwrap(),
        Some(101),
        "the marks of the stored messages"
    );
}

/// What could go wrong: the day file the writer must append to is not a database at all (a
/// copy gone wrong, another program's file under its name). Retrying forever would stall every
/// other day with it; writing anyway would lose the ticks. Its ticks must go to the day's
/// dead-letter file, whole and re-ingestable, every other day must be stored, the accounting
/// must close, and the broken file must stay as it was.
#[test]
fn ticks_for_a_day_file_that_is_not_a_database_are_dead_lettered_and_other_days_flow() {
    let dir = tempfile::tempdir().unwrap();
    let (bad, good) = (ts("2026-11-22T10:00:00Z"), ts("2026-11-23T10:00:00Z"));
    let bad_db = layout::day_path(dir.path(), bad.day());
    std::fs::create_dir_all(bad_db.parent().unwrap()).unwrap();
    std::fs::write(
        &bad_db,
        b"not a database, whatever its name says\n".repeat(200),
    )
    .unwrap();
    let garbage = std::fs::read(&bad_db).unwrap();

    let rec = recorder(dir.path(), PipelineOptions::default(), fast_retries());
    for i in 0..300 {
        let (day, n) = if i % 3 == 0 { (bad, i) } else { (good, i) };
        rec.store_tick(tick(&rec, "EURUSD", Timestamp(day.0 + n), "1.10000", "1.2"))
            .unwrap();
    }
    let s = rec.shutdown();
    assert_eq!(s.ticks_accepted, 300);
    assert_eq!(
        (s.ticks_stored, s.dead_lettered, s.ticks_lost),
        (200, 100, 0),
        "{s:?}"
    );
    assert_eq!(s.ticks_spilled, 0);
    assert_eq!(seqs(&layout::day_path(dir.path(), good.day())).len(), 200);
    assert_eq!(
        std::fs::read(&bad_db).unwrap(),
        garbage,
        "the broken file is left as it was"
    );

    let letters = std::fs::read_to_string(layout::dead_letter_path(dir.path(), bad.day())).unwrap();
    let back: Vec<i64> = letters
        .lines()
        .map(|l| {
            tickrec::format::jsonl::parse_line(l)
                .expect("re-ingestable")
                .ts_event
                .0
        })
        .collect();
    let sent: Vec<i64> = (0..300).filter(|i| i % 3 == 0).map(|i| bad.0 + i).collect();
    assert_eq!(back, sent, "every tick of the broken day, once, in order");

    // The operator moves the broken file aside, then feeds the dead letters back.
    std::fs::rename(&bad_db, dir.path().join("moved-aside")).unwrap();
    let letters = layout::dead_letter_path(dir.path(), bad.day());
    let out = super::cli::tickrec(dir.path(), &["ingest", letters.to_str().unwrap()], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(seqs(&bad_db).len(), 100, "every dead letter stored");
}
