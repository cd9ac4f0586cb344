//! Archive figures on the simulator's kind of FX ticks: bytes per tick live and archived, the
//! compression ratio and time, and the time to query an archived day (cold: decompression into
//! the cache included; warm: cached) against the same day live.
//! `cargo bench --bench archive` (TICKS=2000000 SYMBOLS=128, LEVEL=9 by default)

use std::time::Instant;

use tickrec::store::archive::{self, Outcome};
use tickrec::store::reader::Store;
use tickrec::store::{layout, SqliteOptions};
use tickrec::tick::Timestamp;

mod common;
use common::env;

/// (recent 100 of one symbol, one hour of one symbol) on `store`, in milliseconds, and rows.
fn time_queries(store: &Store, day0: i64) -> (f64, f64, u64) {
    let mut rows = 0u64;
    let t = Instant::now();
    store.recent("EURUSD", 100, &mut |_| Ok(())).unwrap();
    let recent = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let from = Timestamp(day0 + 10 * 3_600_000_000_000);
    let to = Timestamp(from.0 + 3_600_000_000_000);
    store
        .range("EURUSD", from, to, &mut |_| {
            rows += 1;
            Ok(())
        })
        .unwrap();
    (recent, t.elapsed().as_secs_f64() * 1e3, rows)
}

/// Long on purpose: one benchmark from input to figures.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n = env("TICKS", 2_000_000);
    let symbols = env("SYMBOLS", 128);
    let level = env("LEVEL", archive::SQLITE_ZST_LEVEL as usize) as i32;
    let dir = tempfile::tempdir()?;
    let base = dir.path();
    common::write_day(base, n, symbols, false)?;
    let day0 = common::DAY0;
    let day = Timestamp(day0).day();
    let store = Store::new(base, SqliteOptions::default());
    let live = time_queries(&store, day0);
    let t = Instant::now();
    let Outcome::Archived {
        summary,
        archive_bytes,
    } = archive::archive_day(
        base,
        day,
        archive::ArchiveFormat::SqliteZst,
        Some(level),
        &SqliteOptions::default(),
        false,
    )?
    else {
        return Err("not archived".into());
    };
    let archive_secs = t.elapsed().as_secs_f64();
    assert!(!layout::day_path(base, day).exists());
    let cold = time_queries(&store, day0);
    let warm = time_queries(&store, day0);
    let per = |b: u64| b as f64 / summary.ticks as f64;
    println!(
        "{} ticks, {symbols} symbols, zstd level {level}",
        summary.ticks
    );
    println!(
        "bytes/tick: live {:.1}, compacted {:.1}, archived {:.1}; ratio {:.1}x; archiving took {:.2}s ({:.0} ticks/s)",
        per(summary.raw_bytes),
        per(summary.compact_bytes),
        per(archive_bytes),
        summary.raw_bytes as f64 / archive_bytes as f64,
        archive_secs,
        summary.ticks as f64 / archive_secs
    );
    println!("query                       live        archived cold   archived warm");
    println!(
        "recent 100 EURUSD      {:>8.2} ms   {:>10.2} ms   {:>10.2} ms",
        live.0, cold.0, warm.0
    );
    println!(
        "range 1h EURUSD ({} rows) {:>6.2} ms   {:>10.2} ms   {:>10.2} ms",
        live.2, live.1, cold.1, warm.1
    );
    Ok(())
}
