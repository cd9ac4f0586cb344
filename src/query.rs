//! Query commands: run a store query and stream its rows into an output format.
//!
//! Output goes through a `BufWriter`; a reader that goes away (a closed pipe, `| head`) ends the
//! query early, which the binary treats as success.

use std::io::Write;

use crate::format::{row_writer, OutputFormat};
use crate::store::reader::{DayStats, Read, ReadError, Store, Symbols};
use crate::tick::Timestamp;

/// `tickrec query recent`: newest first.
pub fn recent(
    store: &Store,
    symbols: &Symbols,
    n: usize,
    format: OutputFormat,
    out: impl Write,
) -> Result<Read, ReadError> {
    let mut w = row_writer(format, std::io::BufWriter::with_capacity(1 << 16, out));
    let read = store.recent_of(symbols, n, &mut |row| w.write_row(row))?;
    w.finish().map_err(ReadError::Output)?;
    Ok(read)
}

/// `tickrec query range`: `from <= ts_event < to`, in time order.
pub fn range(
    store: &Store,
    symbols: &Symbols,
    from: Timestamp,
    to: Timestamp,
    format: OutputFormat,
    out: impl Write,
) -> Result<Read, ReadError> {
    let mut w = row_writer(format, std::io::BufWriter::with_capacity(1 << 16, out));
    let read = store.range_of(symbols, from, to, &mut |row| w.write_row(row))?;
    w.finish().map_err(ReadError::Output)?;
    Ok(read)
}

/// `tickrec query bars`: one bar per interval with ticks, in time order, streamed.
#[allow(clippy::too_many_arguments)]
pub fn bars(
    store: &Store,
    symbol: &str,
    interval: crate::bars::Interval,
    side: crate::bars::PriceSide,
    from: Timestamp,
    to: Timestamp,
    format: OutputFormat,
    out: impl Write,
) -> Result<Read, ReadError> {
    let mut w =
        crate::bars::BarWriter::new(format, std::io::BufWriter::with_capacity(1 << 16, out));
    let mut builder = crate::bars::BarBuilder::new(interval, side);
    let mut read = store.range(symbol, from, to, &mut |row| match builder.push(row) {
        Some(bar) => w.write(&bar),
        None => Ok(()),
    })?;
    if let Some(bar) = builder.finish() {
        w.write(&bar).map_err(ReadError::Output)?;
    }
    read.rows = w.finish().map_err(ReadError::Output)?;
    Ok(read)
}

/// The days a query searched, in words: `2026-11-19`, `2026-11-19..2026-11-23 (3 day files)`,
/// or that there were none.
pub fn describe_days(days: &[chrono::NaiveDate]) -> String {
    match days {
        [] => "any day file (none in the range)".into(),
        [d] => d.to_string(),
        [first, .., last] => format!("{first}..{last} ({} day files)", days.len()),
    }
}

/// `tickrec stats`: one line per day, or a JSON array.
pub fn print_day_stats(days: &[DayStats], json: bool, mut out: impl Write) -> std::io::Result<()> {
    if json {
        serde_json::to_writer_pretty(&mut out, days)?;
        return writeln!(out);
    }
    if days.is_empty() {
        return writeln!(out, "(no day files)");
    }
    writeln!(
        out,
        "{:<10}  {:>12}  {:>7}  {:>12}  {:>7}  {:<30}  {:<30}  file",
        "day", "ticks", "symbols", "bytes", "B/tick", "first ts_event", "last ts_event"
    )?;
    let ts = |t: Option<Timestamp>| t.map(|t| t.to_string()).unwrap_or_else(|| "-".into());
    for d in days {
        let per_tick = if d.ticks > 0 {
            format!("{:.1}", d.bytes as f64 / d.ticks as f64)
        } else {
            "-".into()
        };
        writeln!(
            out,
            "{:<10}  {:>12}  {:>7}  {:>12}  {:>7}  {:<30}  {:<30}  {}",
            d.day.to_string(),
            d.ticks,
            d.symbols,
            d.bytes,
            per_tick,
            ts(d.first_ts_event),
            ts(d.last_ts_event),
            d.file.display()
        )?;
    }
    let total: u64 = days.iter().map(|d| d.ticks).sum();
    let bytes: u64 = days.iter().map(|d| d.bytes).sum();
    writeln!(
        out,
        "total: {} days, {total} ticks, {bytes} bytes",
        days.len()
    )
}
