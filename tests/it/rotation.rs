//! One day file per UTC day of ts_event; midnight is crossed with an injected clock.

use tickrec::clock::{Clock, ManualClock};
use tickrec::store::layout;
use tickrec::tick::{Tick, Timestamp, NANOS_PER_SEC};

use super::util::*;

/// A tick stamped by `clock` (event = receive time), as a gateway would produce it.
fn tick_now(rec: &tickrec::pipeline::Recorder, clock: &ManualClock, bid: &str) -> Tick {
    let now = clock.now();
    let mut t = tick(rec, "EURUSD", now, bid, "1.2");
    t.ts_recv = now;
    t
}

#[test]
fn ticks_crossing_midnight_land_in_their_own_day_files() {
    let dir = tempfile::tempdir().unwrap();
    let rec = default_recorder(dir.path());
    let clock = ManualClock::new(ts("2026-11-23T23:59:59.998Z"));
    for i in 0..4 {
        rec.store_tick(tick_now(&rec, &clock, &format!("1.{i}")))
            .unwrap();
        clock.advance_nanos(1_000_000); // 1 ms: the third tick is past midnight
    }
    let stats = rec.shutdown();
    assert_eq!(stats.db_rotations, 1);
    let days: Vec<String> = layout::list_days(dir.path())
        .unwrap()
        .iter()
        .map(|d| d.day.to_string())
        .collect();
    assert_eq!(days, ["2026-11-23", "2026-11-24"]);
    let before = layout::day_path(dir.path(), ts("2026-11-23").day());
    let after = layout::day_path(dir.path(), ts("2026-11-24").day());
    assert_eq!(seqs(&before), [1, 2]);
    assert_eq!(seqs(&after), [1, 2], "seq restarts in each day file");
    let bids: Vec<String> = all_rows(dir.path(), "EURUSD")
        .iter()
        .map(|r| r.bid.unwrap().to_string())
        .collect();
    assert_eq!(bids, ["1.0", "1.1", "1.2", "1.3"]);
}

#[test]
fn a_late_tick_lands_in_its_own_day_file_and_continues_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let rec = default_recorder(dir.path());
    let clock = ManualClock::new(ts("2026-11-23T23:59:59Z"));
    rec.store_tick(tick_now(&rec, &clock, "1.0")).unwrap();
    clock.advance_nanos(2 * NANOS_PER_SEC);
    rec.store_tick(tick_now(&rec, &clock, "1.1")).unwrap();
    // A replayed tick from yesterday arrives after the rotation.
    let mut late = tick_now(&rec, &clock, "0.9");
    late.ts_event = ts("2026-11-23T12:00:00Z");
    rec.store_tick(late).unwrap();
    let stats = rec.shutdown();
    assert_eq!(stats.db_rotations, 1);
    assert_eq!(stats.backends[0].late_ticks, 1);
    let yesterday = layout::day_path(dir.path(), ts("2026-11-23").day());
    assert_eq!(seqs(&yesterday), [1, 2]);
    let rows = all_rows(dir.path(), "EURUSD");
    assert_eq!(
        rows[0].bid.unwrap().to_string(),
        "0.9",
        "time order puts it first"
    );
    assert_eq!(rows[0].seq, Some(2));
}

#[test]
fn a_restarted_recorder_continues_the_day_without_a_seq_gap() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = ts("2026-11-23T10:00:00Z");
    for run in 0..2 {
        let rec = default_recorder(dir.path());
        for i in 0..3 {
            let at = Timestamp(t0.0 + run * 10 + i);
            rec.store_tick(tick(&rec, "EURUSD", at, "1.1", "1.2"))
                .unwrap();
        }
        rec.shutdown();
    }
    assert_eq!(
        seqs(&layout::day_path(dir.path(), t0.day())),
        [1, 2, 3, 4, 5, 6]
    );
}
