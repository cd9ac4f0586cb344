//! `tickrec bench`: the recorder's performance figures, measured in one run on the same
//! generated rows, with ratios where one applies. One method for every stage: the rows are
//! generated before any clock starts (the writer and both ceilings read the same `Vec`), the
//! pragmas are the configured ones everywhere, and every throughput's clock runs until the last
//! counted tick is committed.
//!
//! (a) ceilings: a bare prepared-insert loop over the rows into the same schema, 500-tick
//!     transactions, no pipeline; once with the writer's own checkpoint policy (automatic
//!     checkpoints off, the background checkpointer, the WAL bound after each commit) — the
//!     ceiling the ratios use — and once with SQLite's automatic checkpoint, printed beside it;
//! (b) writer: the Recorder fed the rows from memory (store_tick → channel → batch writer),
//!     then again with a reader running `recent 100` and a one-hour range on the live day 50
//!     times a second (twice, the better run kept);
//! (c) end to end: the FIX simulator → FIX over loopback → committed, 128 symbols, the
//!     simulator on the same cores; run twice, the better run kept, as the ceiling and the
//!     writer keep theirs;
//! (d) queries on the day file written by (b), live then sealed: `recent 100` of one symbol and
//!     a one-hour range of one symbol; the sealed ones also run by the `sqlite3` shell on the
//!     same file, timed inside the shell (its start-up measured apart and subtracted);
//! (e) archives: sizes against `.db.zst` and DuckDB, and the large day archived and queried in
//!     place (see `archive`).
//!
//! Where each stage lives: the inputs, (a) and (b) here; (b) beside a reader and (d) in
//! `queries`; (c), and (c) beside the live fan-out's subscribers, in `e2e` (the subscribers
//! themselves in `subscribers`); (b) beside `tickrec tail` processes in `tails`; (e) in
//! `archive`; every figure, its JSON key and its printed line in `report`.

mod archive;
mod e2e;
pub mod pool;
mod queries;
mod report;
mod subscribers;
pub mod tails;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::TransactionBehavior;

use tickrec::config::Options;
use tickrec::intern::Names;
use tickrec::pipeline::{PipelineOptions, Recorder};
use tickrec::shutdown::Shutdown;
use tickrec::store::checkpoint::Checkpointer;
use tickrec::store::writer::{insert_rows, SqliteSink, ROWS_PER_INSERT};
use tickrec::store::{layout, schema, WriterOptions};
use tickrec::synth::{symbol_names, QuoteGen};
use tickrec::tick::{SymbolId, Tick, Timestamp, NANOS_PER_DAY};

use e2e::{end_to_end, publish_stage, E2eRun};
use queries::{queries_stage, writer_with_reader};
pub use report::BenchReport;

/// Bench parameters.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub ticks: usize,
    pub symbols: usize,
    pub e2e_seconds: f64,
    /// The simulator's market-data messages a second in the subscribers' stage; `None`: as
    /// fast as the connection takes them, as in every other end-to-end run.
    pub publish_rate: Option<u64>,
    /// Symbols each subscriber asks for in that stage (`--publish-symbols`); `None`: every one.
    pub publish_symbols: Option<usize>,
    /// Conflation each subscriber asks for in that stage, ms (`--publish-conflate-ms`);
    /// `None`: every tick.
    pub publish_conflate_ms: Option<u64>,
    /// Reading subscribers of that stage that are screens of every symbol, conflated
    /// (`--publish-screens`).
    pub publish_screens: usize,
    /// Rounds of every stage that pairs runs (`--rounds`); `None`: each stage's own default
    /// ([`RATIO_ROUNDS`], [`TAIL_ROUNDS`], [`e2e::PUBLISH_ROUNDS`]).
    pub rounds: Option<usize>,
    /// Only one stage (and what it needs).
    pub only: Option<Stage>,
    /// The configuration file the bench was given, for the processes it starts.
    pub config: Option<std::path::PathBuf>,
    /// The CPU cgroup the tails stage starts its tails in (`--tails-cgroup`).
    pub tails_cgroup: Option<std::path::PathBuf>,
}

/// A stage `--only` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// (a), (b) and (c): the ceilings, the writer alone and end to end (the writer's ratios).
    Writer,
    /// (e): the large day is written by the writer (not timed), then archived and queried.
    Archive,
    /// The writer alone, with four `tickrec tail` processes following at their default
    /// priority (`SCHED_IDLE`) and at `--priority normal`, in rounds; then the tail latency.
    Tails,
    /// (c) without and with eight subscribers on the live fan-out.
    Publish,
    /// (b) with the live-day reader, then (d): the large day is written by the writer (not
    /// timed), then queried live and sealed.
    Queries,
}

/// Samples the size of every `*-wal` file under a folder on a thread of its own, keeping the
/// largest, until stopped.
struct WalWatch {
    stop: Shutdown,
    handle: std::thread::JoinHandle<u64>,
}

impl WalWatch {
    fn start(dir: &Path) -> WalWatch {
        let stop = Shutdown::new();
        let (dir, s) = (dir.to_owned(), stop.clone());
        let handle = std::thread::spawn(move || {
            let mut max = 0;
            while !s.wait_timeout(Duration::from_millis(10)) {
                max = max.max(largest_wal(&dir));
            }
            max.max(largest_wal(&dir))
        });
        WalWatch { stop, handle }
    }

    fn finish(self) -> u64 {
        self.stop.request();
        self.handle.join().unwrap_or(0)
    }
}

fn largest_wal(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                largest_wal(&p)
            } else if p.to_string_lossy().ends_with("-wal") {
                e.metadata().map_or(0, |m| m.len())
            } else {
                0
            }
        })
        .max()
        .unwrap_or(0)
}

/// The generated rows: a seeded random walk spread evenly over one UTC day, receive delay
/// 20-250 µs. The same seed gives the same rows to every part of the run.
struct Rows {
    gen: QuoteGen,
    ids: Vec<SymbolId>,
    i: i64,
    step: i64,
    day0: i64,
}

/// An old day, so that nothing treats it as today.
const DAY0: i64 = 1_795_046_400_000_000_000; // 2026-11-19T00:00:00Z

impl Rows {
    fn new(n: usize, ids: Vec<SymbolId>) -> Rows {
        Rows {
            gen: QuoteGen::new(ids.len(), 42),
            ids,
            i: 0,
            step: NANOS_PER_DAY / n.max(1) as i64,
            day0: DAY0,
        }
    }

    fn next(&mut self, source: tickrec::tick::SourceId) -> Tick {
        let s = self.gen.pick();
        let q = self.gen.next_quote(s);
        let ts = self.day0 + self.i * self.step;
        let recv = ts + 20_000 + (self.i * 7_919) % 230_000;
        self.i += 1;
        q.tick(self.ids[s], source, Timestamp(ts), Timestamp(recv))
    }
}

/// Runs everything under `dir` (a scratch folder), reporting progress to `log`.
///
/// Long (~105 lines) on purpose: the stages in their order, each a function of its own; what is
/// left here is which stages run and on which inputs.
pub fn run(
    opts: &Options,
    b: BenchOptions,
    dir: &Path,
    log: &mut dyn Write,
) -> anyhow::Result<BenchReport> {
    let mut r = BenchReport {
        ticks: b.ticks,
        symbols: b.symbols,
        ratio_rounds: b.rounds.unwrap_or(RATIO_ROUNDS).max(1),
        ..BenchReport::default()
    };
    let names = symbol_names(b.symbols.max(1));
    let writer_opts = WriterOptions {
        sqlite: opts.writer.sqlite.clone(),
        // The one structural choice a configuration makes (`--config` with
        // `[writer] symbol_blocks = false` measures the writer and the queries without blocks).
        symbol_blocks: opts.writer.symbol_blocks,
        ..WriterOptions::default()
    };
    let batch = opts.pipeline.batch.batch_size;

    // The rows, generated before any clock starts; the writer's names table numbers them.
    let names_table = Arc::new(Names::new(opts.pipeline.max_symbols.max(names.len())));
    let ids: Vec<SymbolId> = names
        .iter()
        .map(|n| names_table.symbol(n))
        .collect::<Result<_, _>>()?;
    let source = names_table.source("SIM")?;
    let input: Vec<Tick> = {
        let mut rows = Rows::new(b.ticks, ids);
        (0..b.ticks).map(|_| rows.next(source)).collect()
    };
    let writer_base = dir.join("writer");
    r.only = b.only;
    let pipeline = PipelineOptions {
        max_symbols: opts.pipeline.max_symbols.max(names.len()),
        ..opts.pipeline.clone()
    };
    let inputs = Inputs {
        dir,
        names: &names,
        names_table: &names_table,
        pipeline: &pipeline,
        writer_opts: &writer_opts,
        input: &input,
        batch,
        rounds: b.rounds,
    };
    let publish_run = E2eRun {
        seconds: b.e2e_seconds,
        rate: b.publish_rate,
        symbols_each: b.publish_symbols,
        conflate_ms: b.publish_conflate_ms,
        screens: b.publish_screens,
    };
    match b.only {
        Some(Stage::Archive) => {
            writeln!(log, "writing the {}-tick day…", b.ticks)?;
            write_all(&writer_base, &names_table, &pipeline, &writer_opts, &input)?;
            drop(input);
            archive_stage(opts, &b, dir, &writer_base, &names, log, &mut r)?;
            return Ok(r);
        }
        Some(Stage::Queries) => {
            writer_with_reader(opts, &inputs, log, &mut r)?;
            writeln!(log, "writing the {}-tick day…", b.ticks)?;
            write_all(&writer_base, &names_table, &pipeline, &writer_opts, &input)?;
            drop(input);
            queries_stage(opts, b.ticks, &writer_base, &names, log, &mut r)?;
            return Ok(r);
        }
        Some(Stage::Publish) => {
            drop(input);
            publish_stage(opts, dir, &names, publish_run, b.rounds, log, &mut r)?;
            return Ok(r);
        }
        Some(Stage::Tails) => {
            tails_stage(opts, tails_setting(&b), &inputs, log, &mut r)?;
            r.writer_ticks_per_s = r.tails_writer_alone_ticks_per_s;
            return Ok(r);
        }
        Some(Stage::Writer) => {
            ceilings_and_writer(&inputs, &writer_base, log, &mut r)?;
            end_to_end(opts, &inputs, b.e2e_seconds, log, &mut r)?;
            let _ = std::fs::remove_dir_all(&writer_base);
            return Ok(r);
        }
        None => {}
    }

    ceilings_and_writer(&inputs, &writer_base, log, &mut r)?;
    writer_with_reader(opts, &inputs, log, &mut r)?;
    tails_stage(opts, tails_setting(&b), &inputs, log, &mut r)?;
    end_to_end(opts, &inputs, b.e2e_seconds, log, &mut r)?;
    drop(input);
    publish_stage(opts, dir, &names, publish_run, b.rounds, log, &mut r)?;

    queries_stage(opts, b.ticks, &writer_base, &names, log, &mut r)?;
    archive_stage(opts, &b, dir, &writer_base, &names, log, &mut r)?;
    let _ = std::fs::remove_dir_all(&writer_base);
    Ok(r)
}

/// One run of the ceiling (the writer's checkpoint policy) right before a run of `what`, which
/// is held against it.
fn ceiling_beside(
    inputs: &Inputs<'_>,
    what: &str,
    log: &mut dyn Write,
) -> anyhow::Result<CeilingRun> {
    writeln!(
        log,
        "(a) ceiling again, beside {what}: bare insert loop, {} ticks…",
        inputs.input.len()
    )?;
    let run = ceiling(
        &inputs.dir.join("ceiling-beside"),
        Timestamp(DAY0).day(),
        inputs.names,
        inputs.input,
        inputs.batch,
        inputs.writer_opts,
        Form::WRITER,
    )?;
    writeln!(
        log,
        "    {:.0} ticks/s; CPU {:.0} ns a tick",
        run.ticks_per_s, run.cpu_ns_per_tick
    )?;
    Ok(run)
}

/// Rounds of (a, b), of the writer beside the live-day reader and of end to end by default
/// (`--rounds`): each round runs the ceiling, then the run held against it. A side's figure is
/// its best run; the median of the rounds' own ratios is reported beside the ratio of the
/// bests, and from five rounds on its quartiles. Three, not two: one run here differs from the
/// next by up to a fifth (the ceiling read 687K and 823K ticks/s one after the other), which is
/// wider than the targets' margins, and two runs a side cannot tell a slow run from a slow
/// build. Three rounds still leave the median to one phase of the machine: a figure to hold a
/// target to takes more (`--rounds 15`).
const RATIO_ROUNDS: usize = 3;

/// Rounds of the tails stage: each runs the writer alone, with four tails at their default
/// priority (`SCHED_IDLE`) and with four at `--priority normal` (in a rotated order), and its ratios
/// pair runs of one round.
const TAIL_ROUNDS: usize = 5;

/// Where the tails stage starts its tails.
fn tails_setting(b: &BenchOptions) -> tails::Setting<'_> {
    tails::Setting {
        config: b.config.as_deref(),
        cgroup: b.tails_cgroup.as_deref(),
    }
}

/// (b) with four tails following, at their default priority and at normal priority, against
/// the writer alone in the same round ([`TAIL_ROUNDS`] rounds by default, medians of the
/// rounds' ratios: one run against another here differs by up to a fifth), and the
/// commit-to-output latency of one following tail.
///
/// Long (~90 lines) on purpose: the rounds and what they report live beside each other.
fn tails_stage(
    opts: &Options,
    setting: tails::Setting<'_>,
    inputs: &Inputs<'_>,
    log: &mut dyn Write,
    r: &mut BenchReport,
) -> anyhow::Result<()> {
    let Inputs {
        dir,
        names,
        pipeline,
        writer_opts,
        input,
        ..
    } = *inputs;
    let b_ticks = input.len();
    let rounds = inputs.rounds_or(TAIL_ROUNDS);
    // Per round: (ticks/s, WAL restart s, the writer thread's wait for a CPU s) alone, with
    // tails, with tails at normal priority.
    let mut runs = vec![[(0.0f64, 0.0f64, 0.0f64); 3]; rounds];
    let what = [
        "alone",
        "four tails following every tick (their default priority, SCHED_IDLE)",
        "four tails following every tick at --priority normal",
    ];
    for (round, slots) in runs.iter_mut().enumerate() {
        for k in 0..3 {
            let mode = (round + k) % 3;
            writeln!(
                log,
                "(b) writer, {} (round {} of {rounds})…",
                what[mode],
                round + 1
            )?;
            let base = dir.join("writer-tailed");
            std::fs::create_dir_all(&base)?;
            let followers = match mode {
                0 => None,
                1 => Some(tails::start(&base, setting, 4, b_ticks as u64, true)?),
                _ => Some(tails::start(&base, setting, 4, b_ticks as u64, false)?),
            };
            let tailed = Arc::new(Names::new(opts.pipeline.max_symbols.max(names.len())));
            for n in names {
                tailed.symbol(n)?;
            }
            tailed.source("SIM")?;
            let wal = WalWatch::start(&base);
            let run = write_all(&base, &tailed, pipeline, writer_opts, input)?;
            let cpu = followers
                .map(|f| f.finish(Duration::from_secs(120)))
                .transpose()
                .map_err(|e| e.context("the tails did not follow the writer to its last tick"))?;
            let wal = wal.finish();
            r.wal_max_bytes = r.wal_max_bytes.max(wal);
            if let (2, Some(cpu)) = (mode, cpu) {
                r.tail_cpu_ns_per_tick = cpu.as_nanos() as f64 / (4 * b_ticks) as f64;
            }
            if let Some(b) = run.stats.backends.first() {
                writeln!(
                    log,
                    "    {:.0} ticks/s; CPU {:.0} ns a tick, the writer thread {:.0} (it waited {:.3} s for a CPU); WAL restarts: {} done, {} put off, {:.2} s; WAL up to {:.1} MiB",
                    run.ticks_per_s,
                    run.cpu_ns_per_tick,
                    run.thread_cpu_ns_per_tick(),
                    run.stats.writer_cpu_wait_s,
                    b.wal_restarts,
                    b.wal_restarts_postponed,
                    b.wal_restart_s,
                    wal as f64 / f64::from(1 << 20)
                )?;
            }
            slots[mode] = (
                run.ticks_per_s,
                run.wal_restart_s(),
                run.stats.writer_cpu_wait_s,
            );
            let _ = std::fs::remove_dir_all(&base);
        }
    }
    type Run = (f64, f64, f64);
    let of = |mode: usize, f: fn(Run, Run) -> f64| {
        median(&runs.iter().map(|s| f(s[mode], s[0])).collect::<Vec<f64>>())
    };
    r.tails_writer_alone_ticks_per_s = of(0, |run, _| run.0);
    r.writer_wal_restart_s = of(0, |run, _| run.1);
    r.writer_ticks_per_s_with_tails = of(1, |run, _| run.0);
    r.writer_wal_restart_s_with_tails = of(1, |run, _| run.1);
    r.writer_with_tails_ratio = of(1, |run, alone| run.0 / alone.0);
    r.writer_with_tails_ratios = runs.iter().map(|s| s[1].0 / s[0].0).collect();
    r.writer_ticks_per_s_with_tails_normal_priority = of(2, |run, _| run.0);
    r.writer_wal_restart_s_with_tails_normal_priority = of(2, |run, _| run.1);
    r.writer_cpu_wait_s = of(0, |run, _| run.2);
    r.writer_cpu_wait_s_with_tails = of(1, |run, _| run.2);
    r.writer_cpu_wait_s_with_tails_normal_priority = of(2, |run, _| run.2);
    r.writer_with_tails_normal_priority_ratio = of(2, |run, alone| run.0 / alone.0);
    r.writer_with_tails_normal_priority_ratios = runs.iter().map(|s| s[2].0 / s[0].0).collect();
    writeln!(
        log,
        "(b) tail latency: 3,000 ticks at 1,000/s, one tail following…"
    )?;
    let lat_base = dir.join("tail-latency");
    (r.tail_latency_p50_ms, r.tail_latency_p99_ms) =
        tails::latency_ms(&lat_base, opts, 3_000, 1_000)?;
    let _ = std::fs::remove_dir_all(&lat_base);
    writeln!(
        log,
        "(b) tail latency: 100,000 ticks at 50,000/s, one tail following…"
    )?;
    (r.tail_latency_50k_p50_ms, r.tail_latency_50k_p99_ms) =
        tails::latency_ms(&lat_base, opts, 100_000, 50_000)?;
    let _ = std::fs::remove_dir_all(&lat_base);
    Ok(())
}

/// What the writer stages share: the generated rows and how they are written.
struct Inputs<'a> {
    dir: &'a Path,
    names: &'a [String],
    names_table: &'a Arc<Names>,
    pipeline: &'a PipelineOptions,
    writer_opts: &'a WriterOptions,
    input: &'a [Tick],
    batch: usize,
    /// Rounds of the stages that pair runs (`--rounds`), when given.
    rounds: Option<usize>,
}

impl Inputs<'_> {
    /// Rounds of a stage whose own default is `default`.
    fn rounds_or(&self, default: usize) -> usize {
        self.rounds.unwrap_or(default).max(1)
    }
}

/// (a) and (b): the ceilings and the writer alone; the writer's first day file, under `base0`,
/// stays for (d).
fn ceilings_and_writer(
    inputs: &Inputs<'_>,
    base0: &Path,
    log: &mut dyn Write,
    r: &mut BenchReport,
) -> anyhow::Result<()> {
    let Inputs {
        dir,
        names,
        names_table,
        pipeline,
        writer_opts,
        input,
        batch,
        ..
    } = *inputs;
    let rounds = inputs.rounds_or(RATIO_ROUNDS);
    let day = Timestamp(DAY0).day();
    // (a, b) The ceiling (the same rows, schema, pragmas and transaction size, no pipeline)
    // and the writer (the Recorder fed from memory), each run `rounds` times, interleaved
    // so that what the machine does meanwhile (writeback of earlier runs, other load) falls on
    // both alike; each keeps its best run. The ceiling with SQLite's own checkpoints, and the
    // one with one row a statement, run once.
    let ceiling_run = |sub: &str, form: Form| {
        ceiling(&dir.join(sub), day, names, input, batch, writer_opts, form)
    };
    let wal = WalWatch::start(dir);
    let (mut ceiling_cpu, mut writer_cpu) = (Vec::new(), Vec::new());
    let (mut ceiling_thread_cpu, mut writer_thread_cpu) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        writeln!(
            log,
            "(a) ceiling: bare insert loop, {} ticks (run {} of {rounds})…",
            input.len(),
            round + 1
        )?;
        let ceiling = ceiling_run("ceiling", Form::WRITER)?;
        let wal = &ceiling.wal;
        writeln!(
            log,
            "    {:.0} ticks/s; CPU {:.0} ns a tick, its thread {:.0}; WAL restarts: {} done, {} put off, {:.2} s",
            ceiling.ticks_per_s,
            ceiling.cpu_ns_per_tick,
            ceiling.thread_cpu_ns_per_tick,
            wal.wal_restarts.get(),
            wal.wal_restarts_postponed.get(),
            wal.wal_restart_ns.get() as f64 / 1e9
        )?;
        r.ceiling_ticks_per_s = r.ceiling_ticks_per_s.max(ceiling.ticks_per_s);
        ceiling_cpu.push(ceiling.cpu_ns_per_tick);
        ceiling_thread_cpu.push(ceiling.thread_cpu_ns_per_tick);
        writeln!(
            log,
            "(b) writer: Recorder fed from memory (run {} of {rounds})…",
            round + 1
        )?;
        // The first run's day file is the one (d) queries.
        let base = if round == 0 {
            base0.to_path_buf()
        } else {
            dir.join("writer-2")
        };
        let run = write_all(&base, names_table, pipeline, writer_opts, input)?;
        writeln!(
            log,
            "    {:.0} ticks/s; CPU {:.0} ns a tick, the writer thread {:.0}; the writer's WAL restarts took {:.2} s",
            run.ticks_per_s,
            run.cpu_ns_per_tick,
            run.thread_cpu_ns_per_tick(),
            run.wal_restart_s()
        )?;
        writer_cpu.push(run.cpu_ns_per_tick);
        writer_thread_cpu.push(run.thread_cpu_ns_per_tick());
        r.writer_vs_ceiling_rounds
            .push(run.ticks_per_s / ceiling.ticks_per_s);
        if round == 0 {
            r.rss_bytes = run
                .rss_bytes
                .saturating_sub(std::mem::size_of_val(input) as u64);
            r.ring_bytes = run.ring_bytes;
        } else {
            let _ = std::fs::remove_dir_all(&base);
        }
        if run.ticks_per_s > r.writer_ticks_per_s {
            r.writer_ticks_per_s = run.ticks_per_s;
            r.writer_store_tick_p99_ns = run.stats.store_tick_latency.p99_ns;
            r.writer_commit_p99_us = run.stats.commit_latency.p99_ns / 1000;
            r.writer_wal_restart_s = run.wal_restart_s();
        }
    }
    r.wal_max_bytes = wal.finish();
    r.writer_vs_ceiling = r.writer_ticks_per_s / r.ceiling_ticks_per_s;
    r.writer_vs_ceiling_paired = median(&r.writer_vs_ceiling_rounds);
    r.ceiling_cpu_ns_per_tick = median(&ceiling_cpu);
    r.writer_cpu_ns_per_tick = median(&writer_cpu);
    r.ceiling_thread_cpu_ns_per_tick = median(&ceiling_thread_cpu);
    r.writer_thread_cpu_ns_per_tick = median(&writer_thread_cpu);
    writeln!(log, "(a) ceiling with SQLite's automatic checkpoints…")?;
    let auto = Form {
        writer_policy: false,
        ..Form::WRITER
    };
    r.ceiling_autocheckpoint_ticks_per_s = ceiling_run("ceiling-auto", auto)?.ticks_per_s;
    writeln!(log, "(a) ceiling with one row a statement…")?;
    let one_row = Form {
        rows_per_insert: 1,
        ..Form::WRITER
    };
    r.ceiling_one_row_ticks_per_s = ceiling_run("ceiling-one-row", one_row)?.ticks_per_s;
    Ok(())
}

/// The `q` quantile of `v` (0 ≤ q ≤ 1), linear between the two values around it (as R's and
/// NumPy's default): the middle value of an odd count for 0.5, the mean of the two middle
/// values of an even count. 0 for none.
fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let Some(last) = v.len().checked_sub(1) else {
        return 0.0;
    };
    let at = q.clamp(0.0, 1.0) * last as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (at - lo as f64)
}

/// A distribution-free interval for the median of what `v` samples, at `confidence` or more:
/// `(lo, hi, coverage)`, lo and hi the k-th smallest and k-th largest of `v` for the largest k
/// whose exact coverage, 1 − 2·P(Binomial(n, ½) < k), is at least `confidence` (the sign-test
/// interval; it assumes only that the rounds are independent draws of one distribution). None
/// for fewer rounds than any such interval needs (six at 95 %). Fifteen rounds give the 4th
/// and 12th values, at 96.5 %.
fn median_interval(v: &[f64], confidence: f64) -> Option<(f64, f64, f64)> {
    let n = v.len();
    let mut sorted = v.to_vec();
    sorted.sort_by(f64::total_cmp);
    // P(Binomial(n, ½) = i), in logs so that no term underflows: ln C(n, i) − n ln 2.
    let ln2n = n as f64 * std::f64::consts::LN_2;
    let (mut ln_choose, mut below, mut best) = (0.0f64, 0.0f64, None);
    for k in 1..=n / 2 {
        // Here `below` is P(X < k - 1); add P(X = k - 1).
        let i = k - 1;
        if i > 0 {
            ln_choose += ((n - i + 1) as f64 / i as f64).ln();
        }
        below += (ln_choose - ln2n).exp();
        let coverage = 1.0 - 2.0 * below;
        if coverage < confidence {
            break;
        }
        best = Some((sorted[k - 1], sorted[n - k], coverage));
    }
    best
}

/// The median of `v`: its 0.5 [`quantile`] (the mean of the two middle values of an even
/// count), for every median the bench reports. 0 for none.
fn median(v: &[f64]) -> f64 {
    quantile(v, 0.5)
}

/// (e): the size comparison on its own day, then the large day under `base` archived.
fn archive_stage(
    opts: &Options,
    b: &BenchOptions,
    dir: &Path,
    base: &Path,
    names: &[String],
    log: &mut dyn Write,
    r: &mut BenchReport,
) -> anyhow::Result<()> {
    archive::compare_sizes(dir, b.ticks.min(2_000_000), b.symbols, log, &mut r.archive)?;
    archive::archive_large_day(
        base,
        Timestamp(DAY0).day(),
        DAY0,
        names,
        &opts.writer.sqlite,
        log,
        &mut r.archive,
    )
}

/// What one writer run measured.
struct WriterRun {
    ticks_per_s: f64,
    /// The whole process's CPU time per tick, ns: the producer's `store_tick`s, the writer,
    /// the block builder and the checkpointer.
    cpu_ns_per_tick: f64,
    stats: tickrec::pipeline::StatsSnapshot,
    rss_bytes: u64,
    ring_bytes: u64,
}

impl WriterRun {
    /// The writer thread's CPU time per tick, ns.
    fn thread_cpu_ns_per_tick(&self) -> f64 {
        self.stats.writer_cpu_s * 1e9 / self.stats.ticks_stored.max(1) as f64
    }

    /// The writer's time in WAL restarts, waits for readers included, s.
    fn wal_restart_s(&self) -> f64 {
        self.stats.backends.first().map_or(0.0, |b| b.wal_restart_s)
    }
}

/// Feeds `input` to a Recorder writing under `base`; the clock stops when the last tick is
/// committed (shutdown drained).
fn write_all(
    base: &Path,
    names: &Arc<Names>,
    pipeline: &PipelineOptions,
    writer_opts: &WriterOptions,
    input: &[Tick],
) -> anyhow::Result<WriterRun> {
    let rec = Recorder::builder_with(pipeline.clone(), names.clone())
        .sink(|names| Box::new(SqliteSink::new(base, names, writer_opts.clone())))
        .start()?;
    // As a feed does for the symbols it subscribes to (see `Recorder::prepare_all`).
    let first: Vec<_> = input.iter().take(100_000).map(|t| t.symbol).collect();
    rec.prepare_all(&first);
    let (started, cpu0) = (Instant::now(), tickrec::procstat::process_cpu());
    for t in input {
        rec.store_tick(*t)?;
    }
    let rss_bytes = tickrec::procstat::rss_bytes().unwrap_or(0);
    let ring_bytes = rec.ring_bytes() as u64;
    let stats = rec.shutdown();
    let ticks_per_s = stats.ticks_stored as f64 / started.elapsed().as_secs_f64();
    Ok(WriterRun {
        ticks_per_s,
        cpu_ns_per_tick: ns_per_tick(cpu0, tickrec::procstat::process_cpu(), stats.ticks_stored),
        stats,
        rss_bytes,
        ring_bytes,
    })
}

/// What one run of the bare insert loop measured.
struct CeilingRun {
    ticks_per_s: f64,
    /// The whole process's CPU time per tick over the same span, ns.
    cpu_ns_per_tick: f64,
    /// The inserting thread's alone (what the writer thread's is held against), ns.
    thread_cpu_ns_per_tick: f64,
    /// The WAL restarts, counted as the writer counts its own (`wal_*`).
    wal: tickrec::pipeline::SinkStats,
}

/// CPU time per tick between two readings of a CPU clock (`procstat`), ns (0 where either
/// could not be read).
fn ns_per_tick(from: Option<Duration>, to: Option<Duration>, ticks: u64) -> f64 {
    match (from, to) {
        (Some(a), Some(b)) => b.saturating_sub(a).as_nanos() as f64 / ticks.max(1) as f64,
        _ => 0.0,
    }
}

/// How the bare loop inserts and checkpoints.
#[derive(Debug, Clone, Copy)]
struct Form {
    /// The writer's checkpoints (automatic ones off, the background checkpointer on the file,
    /// the WAL bound after each commit); otherwise SQLite's automatic checkpoint every 1000
    /// pages.
    writer_policy: bool,
    /// Rows one `INSERT` statement takes (the writer's: [`ROWS_PER_INSERT`]).
    rows_per_insert: usize,
}

impl Form {
    /// The writer's: its checkpoints and its statements.
    const WRITER: Form = Form {
        writer_policy: true,
        rows_per_insert: ROWS_PER_INSERT,
    };
}

/// The bare insert loop over `input` into a fresh day file under `base`: ticks/s over what the
/// writer's clock covers too, from creating the file to the last tick durable (the closing
/// `wal_checkpoint(TRUNCATE)` the writer does when it closes a day), inserting and
/// checkpointing as `form` says.
fn ceiling(
    base: &Path,
    day: chrono::NaiveDate,
    names: &[String],
    input: &[Tick],
    batch: usize,
    writer_opts: &WriterOptions,
    form: Form,
) -> anyhow::Result<CeilingRun> {
    let Form {
        writer_policy,
        rows_per_insert,
    } = form;
    let path = layout::day_path(base, day);
    let restarts = tickrec::pipeline::SinkStats::default();
    let (started, cpu0) = (Instant::now(), tickrec::procstat::process_cpu());
    let thread_cpu0 = tickrec::procstat::thread_cpu();
    let mut conn = schema::open_for_write(&path, day, &writer_opts.sqlite)?;
    let tx = conn.transaction()?;
    for (i, n) in names.iter().enumerate() {
        tx.execute(
            "INSERT INTO symbols (id, name) VALUES (?1, ?2)",
            rusqlite::params![i as i64, n],
        )?;
    }
    tx.execute("INSERT INTO sources (id, name) VALUES (0, 'SIM')", [])?;
    tx.commit()?;
    let checkpointer = match (writer_policy, writer_opts.background_checkpoint) {
        (true, Some(interval)) => {
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
            let c = Checkpointer::start(interval, writer_opts.sqlite.busy_timeout)?;
            c.add(path.clone());
            Some(c)
        }
        _ => {
            conn.pragma_update(None, "wal_autocheckpoint", 1000)?;
            None
        }
    };
    let rows_per_insert = rows_per_insert.max(1);
    let (many_sql, one_sql) = (insert_rows(rows_per_insert), insert_rows(1));
    let mut seq = 1i64;
    let mut wal = tickrec::store::writer::WalBound::new(
        writer_opts.wal_max_bytes,
        checkpointer.as_ref().map(Checkpointer::passing),
    );
    for chunk in input.chunks(batch.max(1)) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            // As the writer does: whole statements of `rows_per_insert` rows, then one row at
            // a time.
            let mut many = tx.prepare_cached(&many_sql)?;
            let mut one = tx.prepare_cached(&one_sql)?;
            let whole = chunk.len() - chunk.len() % rows_per_insert;
            for (n, t) in chunk.iter().enumerate() {
                let (stmt, at) = if n < whole {
                    (&mut many, (n % rows_per_insert) * 9)
                } else {
                    (&mut one, 0)
                };
                let code = |d: Option<tickrec::tick::Decimal>| d.map(|d| d.code() as i64);
                stmt.raw_bind_parameter(at + 1, seq)?;
                stmt.raw_bind_parameter(at + 2, i64::from(t.symbol.0))?;
                stmt.raw_bind_parameter(at + 3, t.ts_event.0 - DAY0)?;
                stmt.raw_bind_parameter(at + 4, t.ts_recv.0 - t.ts_event.0)?;
                stmt.raw_bind_parameter(at + 5, code(t.bid))?;
                stmt.raw_bind_parameter(at + 6, tickrec::tick::Decimal::stored_ask(t.bid, t.ask))?;
                stmt.raw_bind_parameter(at + 7, code(t.bid_size))?;
                stmt.raw_bind_parameter(at + 8, code(t.ask_size))?;
                stmt.raw_bind_parameter(at + 9, i64::from(t.source.0))?;
                if n >= whole || n % rows_per_insert == rows_per_insert - 1 {
                    stmt.raw_execute()?;
                }
                seq += 1;
            }
        }
        tx.commit()?;
        if checkpointer.is_some() {
            wal.after_commit(&conn, &path, writer_opts.sqlite.busy_timeout)
                .record(&restarts);
        }
    }
    drop(checkpointer);
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let ticks_per_s = input.len() as f64 / started.elapsed().as_secs_f64();
    let ticks = input.len() as u64;
    let cpu_ns_per_tick = ns_per_tick(cpu0, tickrec::procstat::process_cpu(), ticks);
    let thread_cpu_ns_per_tick = ns_per_tick(thread_cpu0, tickrec::procstat::thread_cpu(), ticks);
    drop(conn);
    let _ = std::fs::remove_dir_all(base);
    Ok(CeilingRun {
        ticks_per_s,
        cpu_ns_per_tick,
        thread_cpu_ns_per_tick,
        wal: restarts,
    })
}

#[cfg(test)]
mod tests {
    use super::{median_interval, quantile};

    #[test]
    fn the_medians_interval_takes_the_order_statistics_of_the_sign_test() {
        // Five rounds cannot give 95 %: even the range covers only 1 − 2/32 = 93.75 %.
        assert_eq!(median_interval(&[0.9, 0.8, 1.0, 0.7, 0.95], 0.95), None);
        assert_eq!(median_interval(&[], 0.95), None);
        // Six: the range, at 1 − 2/64.
        let v = [0.86, 0.91, 0.84, 0.95, 0.88, 0.93];
        let (lo, hi, c) = median_interval(&v, 0.95).expect("six rounds");
        assert_eq!((lo, hi), (0.84, 0.95));
        assert!((c - (1.0 - 2.0 / 64.0)).abs() < 1e-12);
        // Fifteen (as `--rounds 15`): the 4th and the 12th values, at 96.48 %.
        let v: Vec<f64> = (0..15).rev().map(|i| 0.80 + 0.01 * f64::from(i)).collect();
        let (lo, hi, c) = median_interval(&v, 0.95).expect("fifteen rounds");
        assert!(
            (lo - 0.83).abs() < 1e-12 && (hi - 0.91).abs() < 1e-12,
            "{lo} {hi}"
        );
        assert!((c - 0.964_843_75).abs() < 1e-9, "{c}");
        // Many rounds: no term underflows, and the interval narrows around the middle.
        let v: Vec<f64> = (0..2000).map(f64::from).collect();
        let (lo, hi, c) = median_interval(&v, 0.95).expect("2000 rounds");
        assert!(c >= 0.95 && (950.0..1000.0).contains(&lo) && (1000.0..1050.0).contains(&hi));
    }

    #[test]
    fn quantiles_interpolate_between_the_values_around_them() {
        assert_eq!(quantile(&[], 0.5), 0.0);
        assert_eq!(quantile(&[0.8], 0.25), 0.8);
        // Odd count: the middle value; even: the mean of the two middle ones.
        assert_eq!(quantile(&[0.9, 0.7, 0.8], 0.5), 0.8);
        assert!((quantile(&[0.9, 0.7, 0.8, 1.0], 0.5) - 0.85).abs() < 1e-12);
        // Quartiles of 0..=8 (unsorted): 2 and 6; the ends are the range.
        let v = [8.0, 0.0, 4.0, 2.0, 6.0, 1.0, 7.0, 3.0, 5.0];
        assert_eq!(quantile(&v, 0.25), 2.0);
        assert_eq!(quantile(&v, 0.75), 6.0);
        assert_eq!((quantile(&v, 0.0), quantile(&v, 1.0)), (0.0, 8.0));
        assert!((quantile(&[1.0, 2.0], 0.25) - 1.25).abs() < 1e-12);
    }
}
