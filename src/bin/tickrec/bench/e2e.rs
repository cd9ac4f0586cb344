//! (c) End to end: the FIX simulator replaying a script made before the clock starts → FIX over
//! loopback → committed, on the same cores; in rounds against a ceiling run of their own, and
//! again without and with eight subscribers on the live fan-out.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tickrec::config::Options;
use tickrec::fix::gateway::GatewayOptions;
use tickrec::fix::sim::{self, SimOptions};
use tickrec::shutdown::Shutdown;

use super::{
    ceiling_beside, median, ns_per_tick, subscribers, BenchReport, Inputs, WalWatch, RATIO_ROUNDS,
};

/// (c) End to end over FIX, in rounds, each run right after a ceiling run: the better of each
/// over the better of the other, and the median of the rounds' ratios.
pub(super) fn end_to_end(
    opts: &Options,
    inputs: &Inputs<'_>,
    seconds: f64,
    log: &mut dyn Write,
    r: &mut BenchReport,
) -> anyhow::Result<()> {
    let (dir, names) = (inputs.dir, inputs.names);
    let script = sim_script(names);
    let mut cpu = Vec::new();
    let rounds = inputs.rounds_or(RATIO_ROUNDS);
    for round in 0..rounds {
        let ceiling = ceiling_beside(inputs, "end to end", log)?;
        r.end_to_end_ceiling_ticks_per_s =
            r.end_to_end_ceiling_ticks_per_s.max(ceiling.ticks_per_s);
        writeln!(
            log,
            "(c) end to end: simulator → FIX over loopback → SQLite, {seconds:.0}s (run {} of {rounds})…",
            round + 1
        )?;
        let cpu0 = tickrec::procstat::process_cpu();
        let run = E2eRun {
            seconds,
            rate: None,
            symbols_each: None,
            conflate_ms: None,
            screens: 0,
        };
        let (report, wal) = e2e(opts, dir, names, &script, run, None, log)?;
        r.wal_max_bytes = r.wal_max_bytes.max(wal);
        let stored = report.stats.ticks_stored;
        let rate = stored as f64 / report.elapsed.as_secs_f64();
        cpu.push(ns_per_tick(cpu0, tickrec::procstat::process_cpu(), stored));
        r.end_to_end_vs_ceiling_rounds
            .push(rate / ceiling.ticks_per_s);
        // (`tools/thread-cpu.py` divides the stage's CPU by these.)
        writeln!(
            log,
            "    {stored} ticks committed, {rate:.0} ticks/s; CPU {:.0} ns a tick (the simulator's included)",
            cpu.last().copied().unwrap_or_default()
        )?;
        if rate > r.end_to_end_ticks_per_s {
            r.end_to_end_ticks_per_s = rate;
            r.store_tick_p99_ns = report.stats.store_tick_latency.p99_ns;
            r.store_tick_p999_ns = report.stats.store_tick_latency.p999_ns;
            r.commit_p99_us = report.stats.commit_latency.p99_ns / 1000;
        }
    }
    r.end_to_end_vs_ceiling = r.end_to_end_ticks_per_s / r.end_to_end_ceiling_ticks_per_s;
    r.end_to_end_vs_ceiling_paired = median(&r.end_to_end_vs_ceiling_rounds);
    r.end_to_end_cpu_ns_per_tick = median(&cpu);
    Ok(())
}

/// Incrementals the end-to-end simulator loops over (~25 MB of FIX fields): past what a CPU's
/// caches hold, as a live feed's messages are.
const SCRIPT_MESSAGES: usize = 1 << 18;

/// The end-to-end simulator's settings, without its script.
fn sim_options(names: &[String], rate: Option<u64>) -> SimOptions {
    SimOptions {
        symbols: names.len(),
        rate,
        // Keep the simulator's resend memory out of the recorder's RSS picture.
        resend_capacity: 1_000,
        ..SimOptions::default()
    }
}

/// The market data the end-to-end simulator sends, made before any of its runs: the quotes
/// are generated outside the clock, as every stage's input is; the simulator stamps each
/// message's header, length and checksum as it sends it.
fn sim_script(names: &[String]) -> Arc<sim::Script> {
    Arc::new(sim::Script::generate(
        &sim_options(names, None),
        SCRIPT_MESSAGES,
    ))
}

/// How long an end-to-end run lasts, and how fast its simulator sends.
#[derive(Debug, Clone, Copy)]
pub(super) struct E2eRun {
    pub(super) seconds: f64,
    /// Market-data messages a second; `None`: as fast as the connection takes them.
    pub(super) rate: Option<u64>,
    /// Symbols each subscriber asks for; `None`: every symbol (`["*"]`).
    pub(super) symbols_each: Option<usize>,
    /// Conflation each subscriber asks for, ms; `None`: every tick.
    pub(super) conflate_ms: Option<u64>,
    /// Reading subscribers that are screens of every symbol conflated at
    /// [`subscribers::SCREEN_MS`] in place of the above.
    pub(super) screens: usize,
}

/// (c) once: the simulator (replaying `script`) → FIX over loopback → committed for `run`'s
/// seconds, with `subscribers` (readers, stalled) on the live fan-out when given. Returns the
/// run's report and the largest WAL seen.
fn e2e(
    opts: &Options,
    dir: &Path,
    names: &[String],
    script: &Arc<sim::Script>,
    run: E2eRun,
    subscribers: Option<(usize, usize)>,
    log: &mut dyn Write,
) -> anyhow::Result<(tickrec::record::RecordReport, u64)> {
    let (addr, sim_thread, sim_stop) = sim::spawn_local(SimOptions {
        script: Some(Arc::clone(script)),
        ..sim_options(names, run.rate)
    })?;
    let mut e2e_opts = opts.clone();
    e2e_opts.db_path = dir.join("e2e");
    let publish = match subscribers {
        Some(_) => {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let addr = format!("127.0.0.1:{port}");
            e2e_opts.publish_listen = Some(addr.clone());
            Some(addr)
        }
        None => None,
    };
    let gateway =
        GatewayOptions::to_local_simulator(addr, "BENCH", names.to_vec(), e2e_opts.db_path.clone());
    let wal = WalWatch::start(&e2e_opts.db_path);
    let stop = Shutdown::new();
    let timer = {
        let stop = stop.clone();
        let secs = run.seconds.max(0.5);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(secs));
            stop.request();
        })
    };
    let subs = match (subscribers, &publish) {
        (Some((readers, stalled)), Some(addr)) => {
            let asked = subscribers::requests(
                names,
                readers + stalled,
                run.symbols_each,
                run.conflate_ms,
                run.screens.min(readers),
            );
            subscribers::start(addr, readers, &asked, &stop)
        }
        _ => Vec::new(),
    };
    let report = tickrec::record::run(&e2e_opts, vec![gateway], &stop, Duration::from_secs(3600))?;
    let _ = timer.join();
    for h in subs {
        let _ = h.join();
    }
    let wal = wal.finish();
    sim_stop.request();
    if let Ok(Err(e)) = sim_thread.join() {
        writeln!(log, "simulator: {e}")?;
    }
    let _ = std::fs::remove_dir_all(&e2e_opts.db_path);
    Ok((report, wal))
}

/// Rounds of (c), each a run without subscribers then one with, by default (`--rounds`); the
/// figures are medians.
/// Five, not three: here the same run's p99 moved by a fifth between rounds minutes apart, and
/// once fell from ~550 to ~70 ns within a sitting as the machine's load changed.
pub(super) const PUBLISH_ROUNDS: usize = 5;

/// (c) again without and with eight subscribers on the live fan-out (seven reading, one
/// stalled), `rounds` ([`PUBLISH_ROUNDS`] by default) rounds of one run each: `store_tick`'s
/// p99 and p99.9, the median run of each side, the median of each round's ratio, and the
/// spread of the runs without (the noise floor).
pub(super) fn publish_stage(
    opts: &Options,
    dir: &Path,
    names: &[String],
    run: E2eRun,
    rounds: Option<usize>,
    log: &mut dyn Write,
    r: &mut BenchReport,
) -> anyhow::Result<()> {
    let script = sim_script(names);
    let rounds = rounds.unwrap_or(PUBLISH_ROUNDS).max(1);
    r.publish_rounds = rounds;
    r.publish_rate_msgs_per_s = run.rate.unwrap_or(0);
    r.publish_symbols_each = run.symbols_each.unwrap_or(0);
    r.publish_conflate_ms = run.conflate_ms.unwrap_or(0);
    r.publish_screens = run.screens;
    let pace = match run.rate {
        Some(rate) => format!(", the simulator at {rate} messages/s"),
        None => String::new(),
    };
    let mut with_subscribers = match run.symbols_each {
        Some(n) => format!("with 8 subscribers of {n} symbols each, one stalled"),
        None => "with 8 subscribers of every symbol, one stalled".into(),
    };
    if let Some(ms) = run.conflate_ms {
        with_subscribers += &format!(", conflated at {ms} ms");
    }
    if run.screens > 0 {
        with_subscribers += &format!(
            ", {} of them screens of every symbol conflated at {} ms",
            run.screens,
            subscribers::SCREEN_MS
        );
    }
    // (p99, p99.9) of each run, without and with subscribers, runs interleaved, and p99.9 read
    // between the clock's steps.
    let (mut plain, mut with) = (Vec::<(u64, u64)>::new(), Vec::<(u64, u64)>::new());
    let (mut plain_fine, mut with_fine) = (Vec::<f64>::new(), Vec::<f64>::new());
    let step = clock_step_ns();
    for round in 0..rounds {
        for subs in [None, Some((7, 1))] {
            writeln!(
                log,
                "(c) end to end {}, {:.0}s{pace} (run {} of {rounds})…",
                if subs.is_some() {
                    &with_subscribers
                } else {
                    "without subscribers"
                },
                run.seconds,
                round + 1
            )?;
            let (report, _) = e2e(opts, dir, names, &script, run, subs, log)?;
            let l = &report.stats.store_tick_latency;
            let stored = report.stats.ticks_stored;
            let fine = between_steps(&report.store_tick_latency, 0.999, step);
            writeln!(
                log,
                "    {stored} ticks committed, {:.0} ticks/s; store_tick p99 {} ns, p99.9 {} ns ({fine:.1} between the clock's steps)",
                stored as f64 / report.elapsed.as_secs_f64(),
                l.p99_ns,
                l.p999_ns
            )?;
            let (runs, fines) = if subs.is_some() {
                (&mut with, &mut with_fine)
            } else {
                (&mut plain, &mut plain_fine)
            };
            runs.push((l.p99_ns, l.p999_ns));
            fines.push(fine);
        }
    }
    let of = |runs: &[(u64, u64)], pick: fn(&(u64, u64)) -> u64| {
        median(&runs.iter().map(|r| pick(r) as f64).collect::<Vec<f64>>()).round() as u64
    };
    let paired = |pick: fn(&(u64, u64)) -> u64| -> Vec<f64> {
        plain
            .iter()
            .zip(&with)
            .map(|(p, w)| pick(w) as f64 / pick(p).max(1) as f64)
            .collect()
    };
    r.store_tick_clock_step_ns = step;
    r.publish_store_tick_p99_ratios = paired(|r| r.0);
    r.publish_store_tick_p999_ratios = paired(|r| r.1);
    r.publish_store_tick_p999_fine_ratios = plain_fine
        .iter()
        .zip(&with_fine)
        .map(|(p, w)| w / p.max(1.0))
        .collect();
    r.publish_store_tick_p99_paired_ratio = median(&r.publish_store_tick_p99_ratios);
    r.publish_store_tick_p999_paired_ratio = median(&r.publish_store_tick_p999_ratios);
    let with = (of(&with, |r| r.0), of(&with, |r| r.1));
    r.plain_store_tick_p99_range_ns = (
        plain.iter().map(|r| r.0).min().unwrap_or(0),
        plain.iter().map(|r| r.0).max().unwrap_or(0),
    );
    let plain = (of(&plain, |r| r.0), of(&plain, |r| r.1));
    (r.publish_store_tick_p99_ns, r.publish_store_tick_p999_ns) = with;
    (r.plain_store_tick_p99_ns, r.plain_store_tick_p999_ns) = plain;
    Ok(())
}

/// The `q` quantile of `h` with each recorded value's calls spread evenly over the step around
/// it. The clock reads a call in whole steps (here every `store_tick` latency recorded is a
/// multiple of 10 ns), so a p99.9 of 70 ns read from the values moves a whole step, 14 %, for
/// any shift that carries it past one, and a band of 10 % cannot be told from one step. A call
/// whose length falls between two steps reads as the one or the other, the nearer the likelier
/// (its start falls anywhere within a step), so spreading each value's calls over the step
/// around it puts the quantile between the steps where the calls' own lengths put it. The step
/// is the smallest gap between two values recorded (`clock_step`, the clock's own, when there
/// are not two).
fn between_steps(h: &hdrhistogram::Histogram<u64>, q: f64, clock_step: f64) -> f64 {
    // hdrhistogram keeps values below 2,048 exactly (3 significant digits); a call shorter
    // than the clock's step is recorded as 1 ns.
    let values: Vec<(f64, f64)> = h
        .iter_recorded()
        .map(|v| (v.value_iterated_to() as f64, v.count_at_value() as f64))
        .collect();
    let step = values
        .windows(2)
        .filter(|w| w[0].0 > 1.0)
        .map(|w| w[1].0 - w[0].0)
        .fold(f64::INFINITY, f64::min);
    let step = if step.is_finite() { step } else { clock_step };
    let want = q.clamp(0.0, 1.0) * values.iter().map(|v| v.1).sum::<f64>();
    let mut below = 0.0;
    for &(at, n) in &values {
        if below + n >= want && n > 0.0 {
            return at - step / 2.0 + step * (want - below) / n;
        }
        below += n;
    }
    values.last().map_or(0.0, |v| v.0)
}

/// The step of the clock that times `store_tick` (`quanta`'s raw counter, as the recorder reads
/// it), ns: two reads around a varying amount of work, and the gap between the values their
/// differences take (on this machine's virtual CPUs only 1, 25–26, 51–52, 77–78 counts at
/// 2.6 GHz: the counter moves in steps of 10 ns; where every count shows, one count).
fn clock_step_ns() -> f64 {
    let clock = quanta::Clock::new();
    let mut seen = std::collections::BTreeMap::new();
    const READS: u64 = 200_000;
    for i in 0..READS {
        let a = clock.raw();
        let mut x = i;
        for _ in 0..i % 37 {
            x = std::hint::black_box(x.wrapping_mul(3).wrapping_add(1));
        }
        let b = clock.raw();
        std::hint::black_box(x);
        *seen.entry(b.wrapping_sub(a)).or_insert(0u64) += 1;
    }
    // The differences seen often (0.1 % of the reads each), in runs of neighbours (a count of
    // jitter); the step is the smallest distance from one run to the next.
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for gap in seen
        .into_iter()
        .filter(|&(_, n)| n * 1_000 >= READS)
        .map(|(g, _)| g)
    {
        match runs.last_mut() {
            Some(run) if gap <= run.1 + 1 => run.1 = gap,
            _ => runs.push((gap, gap)),
        }
    }
    let step = runs.windows(2).map(|w| w[1].0 - w[0].1).min().unwrap_or(1);
    let ns_per_count = clock.delta_as_nanos(0, 1 << 30) as f64 / f64::from(1u32 << 30);
    step as f64 * ns_per_count
}

#[cfg(test)]
mod tests {
    use super::between_steps;

    fn histogram(values: &[(u64, u64)]) -> hdrhistogram::Histogram<u64> {
        let mut h = hdrhistogram::Histogram::new_with_bounds(1, 1_000_000, 3).unwrap();
        for &(v, n) in values {
            h.record_n(v, n).unwrap();
        }
        h
    }

    /// A quantile that falls within one recorded value's calls is placed within the step
    /// around it, in proportion; the clock's own step serves only when there is no gap to
    /// read one from.
    #[test]
    fn a_quantile_between_steps_moves_with_the_calls_not_a_step_at_a_time() {
        let h = histogram(&[(1, 50), (10, 850), (20, 100)]);
        assert!((between_steps(&h, 0.90, 9.0) - 15.0).abs() < 1e-9);
        assert!((between_steps(&h, 0.95, 9.0) - 20.0).abs() < 1e-9);
        assert!((between_steps(&h, 0.99, 9.0) - 24.0).abs() < 1e-9);
        // One call in a thousand moved a step up moves the 90th percentile a tenth of a step.
        let moved = histogram(&[(1, 50), (10, 849), (20, 101)]);
        let shift = between_steps(&moved, 0.90, 9.0) - between_steps(&h, 0.90, 9.0);
        assert!(shift > 0.0 && shift < 1.0, "{shift}");
        assert!((between_steps(&histogram(&[(70, 10)]), 0.5, 9.0) - 70.0).abs() < 1e-9);
        assert_eq!(between_steps(&histogram(&[]), 0.999, 9.0), 0.0);
    }
}
