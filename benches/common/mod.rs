//! What several benchmarks share: a generated day written by this version's writer.

use std::path::Path;
use std::sync::Arc;

use tickrec::intern::Names;
use tickrec::pipeline::Sink;
use tickrec::store::writer::SqliteSink;
use tickrec::store::WriterOptions;
use tickrec::synth::{symbol_names, QuoteGen};
use tickrec::tick::{Timestamp, NANOS_PER_DAY};

/// The number in environment variable `name`, or `default`.
pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// 2026-11-20T00:00:00Z: an old day (archivable, sealable).
pub const DAY0: i64 = 1_795_132_800_000_000_000;

/// `n` generated FX ticks of `symbols` symbols spread over [`DAY0`]'s day (event times evenly
/// spaced, or at a random nanosecond within each step with `random_ns`; receive delay 20-250
/// µs), written under `base` in 500-tick batches by the writer.
pub fn write_day(
    base: &Path,
    n: usize,
    symbols: usize,
    random_ns: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let names = Arc::new(Names::new(4096));
    let ids = symbol_names(symbols)
        .iter()
        .map(|s| names.symbol(s))
        .collect::<Result<Vec<_>, _>>()?;
    let source = names.source("SIM")?;
    let mut gen = QuoteGen::new(symbols, 11);
    let step = NANOS_PER_DAY / n.max(1) as i64;
    let mut jitter = 0x9E37_79B9_7F4A_7C15u64;
    let mut sink = SqliteSink::new(base, names.clone(), WriterOptions::default());
    let mut batch = Vec::with_capacity(500);
    let abort = tickrec::shutdown::Shutdown::new();
    for i in 0..n {
        let s = gen.pick();
        let q = gen.next_quote(s);
        let mut ts = DAY0 + i as i64 * step;
        if random_ns {
            jitter ^= jitter << 13;
            jitter ^= jitter >> 7;
            jitter ^= jitter << 17;
            ts += (jitter % step as u64) as i64;
        }
        batch.push(q.tick(
            ids[s],
            source,
            Timestamp(ts),
            Timestamp(ts + 20_000 + (i as i64 * 7_919) % 230_000),
        ));
        if batch.len() == 500 {
            sink.write_batch(&batch, &abort);
            batch.clear();
        }
    }
    sink.write_batch(&batch, &abort);
    sink.close();
    Ok(())
}
