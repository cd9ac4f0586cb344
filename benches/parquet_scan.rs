//! One symbol's whole day read from a Parquet archive in place, as `tickrec bench` (e) times it:
//! `Store::range` over the day, rows handed to a callback that drops them. Reports the best and
//! the median of `REPS` scans (the file in the OS cache after the first).
//! `cargo bench --bench parquet_scan` (TICKS=10000000 SYMBOLS=128 REPS=20 by default; or
//! `DB=<base>` to read the first archived day under an existing base, `SYMBOL=` its symbol).

use std::time::Instant;

use tickrec::store::archive::{self, ArchiveFormat};
use tickrec::store::reader::Store;
use tickrec::store::{layout, SqliteOptions};
use tickrec::tick::{Timestamp, NANOS_PER_DAY};

mod common;
use common::env;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let reps = env("REPS", 20).max(1);
    let symbol = std::env::var("SYMBOL").unwrap_or_else(|_| "EURUSD".into());
    let scratch = tempfile::tempdir()?;
    let (base, day0) = match std::env::var_os("DB") {
        Some(db) => {
            let base = std::path::PathBuf::from(db);
            let day = layout::list_days(&base)?
                .into_iter()
                .find(|d| d.archived)
                .ok_or("no archived day under DB")?
                .day;
            let start = day.and_hms_opt(0, 0, 0).ok_or("day")?.and_utc();
            let ns = start.timestamp_nanos_opt().ok_or("day")?;
            (base, ns)
        }
        None => {
            let base = scratch.path().to_owned();
            let n = env("TICKS", 10_000_000);
            common::write_day(&base, n, env("SYMBOLS", 128), false)?;
            let day = Timestamp(common::DAY0).day();
            let opts = SqliteOptions::default();
            archive::archive_day(&base, day, ArchiveFormat::Parquet, None, &opts, false)?;
            (base, common::DAY0)
        }
    };
    let store = Store::new(&base, SqliteOptions::default());
    let (from, to) = (Timestamp(day0), Timestamp(day0 + NANOS_PER_DAY));
    let mut rates = Vec::with_capacity(reps);
    let mut rows = 0u64;
    for _ in 0..reps {
        let t = Instant::now();
        let read = store.range_of(
            &tickrec::store::reader::Symbols::one(&symbol),
            from,
            to,
            &mut |_| Ok(()),
        )?;
        rates.push(read.rows as f64 / t.elapsed().as_secs_f64());
        rows = read.rows;
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "{symbol}'s day, {rows} rows: best {:.2}M ticks/s, median {:.2}M ticks/s ({reps} scans)",
        rates[reps - 1] / 1e6,
        rates[reps / 2] / 1e6
    );
    Ok(())
}
