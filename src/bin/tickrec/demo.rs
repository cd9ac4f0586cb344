//! `tickrec demo`: the whole path on this machine, no external feed needed.
//!
//! Starts the FIX simulator on a free 127.0.0.1 port, records it over a real FIX 4.4 session
//! into the configured database for a number of seconds, stops as on SIGINT (Logout, drain,
//! checkpoint), and prints what reached disk with a sample query.

use std::io::Write;
use std::time::Duration;

use tickrec::config::Options;
use tickrec::fix::gateway::GatewayOptions;
use tickrec::fix::sim::{self, SimOptions};
use tickrec::format::OutputFormat;
use tickrec::pipeline::stats::fmt_ns;
use tickrec::record::{self, RecordReport};
use tickrec::service;
use tickrec::shutdown::Shutdown;
use tickrec::synth::symbol_names;

/// Demo parameters.
#[derive(Debug, Clone, Copy)]
pub struct DemoOptions {
    pub seconds: f64,
    pub symbols: usize,
    /// Market-data messages per second from the simulator; `None` = as fast as possible.
    pub rate: Option<u64>,
    pub seed: u64,
}

/// Runs the demo, printing the summary to `out`.
pub fn run(
    opts: &Options,
    demo: DemoOptions,
    signals: &Shutdown,
    mut out: impl Write,
) -> anyhow::Result<RecordReport> {
    let names = symbol_names(demo.symbols.max(1));
    let (addr, sim_thread, sim_stop) = sim::spawn_local(SimOptions {
        symbols: names.len(),
        rate: demo.rate,
        seed: demo.seed,
        ..SimOptions::default()
    })?;
    writeln!(
        out,
        "demo: FIX simulator on {addr}, {} symbols, {} for {:.1}s, recording into {}",
        names.len(),
        demo.rate
            .map(|r| format!("{r} messages/s"))
            .unwrap_or_else(|| "full speed".into()),
        demo.seconds,
        opts.db_path.display()
    )?;
    let gateway =
        GatewayOptions::to_local_simulator(addr, "TICKREC", names.clone(), opts.db_path.clone());
    // Stop after the asked time, or earlier on a signal.
    let stop = Shutdown::new();
    let timer = {
        let (stop, signals) = (stop.clone(), signals.clone());
        let secs = demo.seconds.max(0.0);
        std::thread::spawn(move || {
            signals.wait_timeout(Duration::from_secs_f64(secs));
            stop.request();
        })
    };
    let report = record::run(opts, vec![gateway], &stop, Duration::from_secs(5))?;
    let _ = timer.join();
    sim_stop.request();
    let sim_report = match sim_thread.join() {
        Ok(r) => r?,
        Err(_) => anyhow::bail!("the simulator thread panicked"),
    };
    let stats = &report.stats;
    writeln!(out, "\n{stats}")?;
    for s in &report.sessions {
        writeln!(out, "{s}")?;
    }
    writeln!(
        out,
        "\nsimulator sent {} market-data messages implying {} ticks; recorder stored {} ticks",
        sim_report.md_messages, sim_report.ticks_implied, stats.ticks_stored
    )?;
    writeln!(
        out,
        "rate: {:.0} ticks/s stored over {:.2}s; store_tick p99 {}, commit p99 {}",
        stats.ticks_stored as f64 / report.elapsed.as_secs_f64().max(1e-9),
        report.elapsed.as_secs_f64(),
        fmt_ns(stats.store_tick_latency.p99_ns),
        fmt_ns(stats.commit_latency.p99_ns),
    )?;
    let store = service::open_store(opts);
    writeln!(out, "\nfiles:")?;
    tickrec::query::print_day_stats(&store.day_stats()?.days, false, &mut out)?;
    if let Some(first) = names.first() {
        writeln!(out, "\n$ tickrec query recent {first} -n 5")?;
        tickrec::query::recent(
            &store,
            &tickrec::store::reader::Symbols::one(first),
            5,
            OutputFormat::Table,
            &mut out,
        )?;
    }
    Ok(report)
}
