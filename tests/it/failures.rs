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

/// What could go wrong: one bad tick aborting its whole 500-tick transaction would lose 499
/// good ticks, or the bad tick itself could vanish without a trace.
#[test]
fn a_tick_the_database_refuses_is_dead_lettered_and_the_rest_of_its_batch_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = ts("2026-11-23T10:00:00Z");
    let db = layout::day_path(dir.path(), t0.day());
    let conn = schema::open_for_write(&db, t0.day(), &SqliteOptions::default()).unwrap();
    let poison = Decimal::parse("6.66666").unwrap().code();
    conn.execute_batch(&format!(
        "CREATE TRIGGER refuse BEFORE INSERT ON ticks WHEN NEW.bid = {poison}
         BEGIN SELECT RAISE(ABORT, 'injected refusal'); END;"
    ))
    .unwrap();
    drop(conn);

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
    std::thread::sleep(Duration::from_millis(250));
    blocker.execute_batch("COMMIT").unwrap();
    let stats = rec.shutdown();
    assert_eq!(stats.ticks_stored, 10);
    assert_eq!(stats.dead_lettered, 0);
    assert!(stats.backends[0].commit_retries >= 1);
    assert_eq!(seqs(&db).len(), 10);
}
