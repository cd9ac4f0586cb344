//! `tickrec demo`: the whole recorder on generated FX quotes, no external feed needed.
//!
//! Random-walk quotes for N symbols are stored at a target rate for a number of seconds, then
//! the recorder shuts down as it would on SIGINT, and the summary shows what reached disk.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::clock::{Clock, SystemClock};
use crate::config::Options;
use crate::format::OutputFormat;
use crate::pipeline::stats::fmt_ns;
use crate::pipeline::StatsSnapshot;
use crate::service;
use crate::shutdown::Shutdown;
use crate::synth::{symbol_names, QuoteGen};
use crate::tick::Tick;

/// Demo parameters.
#[derive(Debug, Clone, Copy)]
pub struct DemoOptions {
    pub seconds: f64,
    pub symbols: usize,
    /// Ticks per second; `None` = as fast as the recorder takes them.
    pub rate: Option<u64>,
    pub seed: u64,
}

/// What the demo did.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub elapsed: Duration,
    pub generated: u64,
    pub stats: StatsSnapshot,
}

/// Runs the demo, printing progress and the summary to `out`.
pub fn run(
    opts: &Options,
    demo: DemoOptions,
    shutdown: &Shutdown,
    mut out: impl Write,
) -> anyhow::Result<DemoReport> {
    let recorder = service::start_recorder(opts)?;
    let names = symbol_names(demo.symbols.max(1));
    let ids = names
        .iter()
        .map(|n| recorder.names().symbol(n))
        .collect::<Result<Vec<_>, _>>()?;
    let source = recorder.names().source(&opts.broker_id)?;
    let mut gen = QuoteGen::new(ids.len(), demo.seed);
    let clock = SystemClock;
    writeln!(
        out,
        "demo: {} symbols, {} for {:.1}s into {}",
        ids.len(),
        demo.rate
            .map(|r| format!("{r} ticks/s"))
            .unwrap_or_else(|| "full speed".into()),
        demo.seconds,
        opts.db_path.display()
    )?;
    let started = Instant::now();
    let duration = Duration::from_secs_f64(demo.seconds.max(0.0));
    let mut generated = 0u64;
    while started.elapsed() < duration && !shutdown.is_requested() {
        // Pace in slices of 1 ms worth of ticks so the rate holds without a syscall per tick.
        let slice = match demo.rate {
            Some(rate) => {
                let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
                if due <= generated {
                    std::thread::sleep(Duration::from_micros(500));
                    continue;
                }
                (due - generated).min(10_000)
            }
            None => 1000,
        };
        for _ in 0..slice {
            let i = gen.pick();
            let q = gen.next_quote(i);
            let now = clock.now();
            recorder.store_tick(Tick {
                symbol: ids[i],
                source,
                ts_event: now,
                ts_recv: now,
                bid: q.bid,
                ask: q.ask,
                bid_size: q.bid_size,
                ask_size: q.ask_size,
            })?;
            generated += 1;
        }
    }
    let elapsed = started.elapsed();
    let stats = recorder.shutdown();
    writeln!(out, "\n{stats}")?;
    writeln!(
        out,
        "rate: {:.0} ticks/s stored over {:.2}s; store_tick p99 {}, commit p99 {}",
        stats.ticks_stored as f64 / elapsed.as_secs_f64().max(1e-9),
        elapsed.as_secs_f64(),
        fmt_ns(stats.store_tick_latency.p99_ns),
        fmt_ns(stats.commit_latency.p99_ns),
    )?;
    let store = service::open_store(opts);
    writeln!(out, "\nfiles:")?;
    crate::query::print_day_stats(&store.day_stats()?, false, &mut out)?;
    if let Some(first) = names.first() {
        writeln!(out, "\n$ tickrec query recent {first} -n 5")?;
        crate::query::recent(&store, first, 5, OutputFormat::Table, &mut out)?;
    }
    Ok(DemoReport {
        elapsed,
        generated,
        stats,
    })
}
