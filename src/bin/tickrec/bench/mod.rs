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

mod archive;
mod subscribers;
mod tails;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::TransactionBehavior;
use serde::Serialize;

use tickrec::config::Options;
use tickrec::fix::gateway::GatewayOptions;
use tickrec::fix::sim::{self, SimOptions};
use tickrec::format::OutputFormat;
use tickrec::intern::Names;
use tickrec::pipeline::{PipelineOptions, Recorder};
use tickrec::shutdown::Shutdown;
use tickrec::store::archive::{seal_day, Sealed};
use tickrec::store::checkpoint::Checkpointer;
use tickrec::store::reader::{Store, Symbols};
use tickrec::store::writer::SqliteSink;
use tickrec::store::{layout, schema, WriterOptions};
use tickrec::synth::{symbol_names, QuoteGen};
use tickrec::tick::{SymbolId, Tick, Timestamp, NANOS_PER_DAY};

/// Bench parameters.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub ticks: usize,
    pub symbols: usize,
    pub e2e_seconds: f64,
    /// The simulator's market-data messages a second in the subscribers' stage; `None`: as
    /// fast as the connection takes them, as in every other end-to-end run.
    pub publish_rate: Option<u64>,
    /// Only one stage (and what it needs).
    pub only: Option<Stage>,
    /// The configuration file the bench was given, for the processes it starts.
    pub config: Option<std::path::PathBuf>,
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

/// Every figure of one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BenchReport {
    pub ticks: usize,
    pub symbols: usize,
    /// Bare insert loop with the writer's checkpoint policy: the ceiling ratios use.
    pub ceiling_ticks_per_s: f64,
    /// Bare insert loop with SQLite's automatic checkpoint (1000 pages).
    pub ceiling_autocheckpoint_ticks_per_s: f64,
    pub writer_ticks_per_s: f64,
    /// The writer while a reader runs `recent 100` and a one-hour range on the live day, 50
    /// times a second.
    pub writer_ticks_per_s_with_queries: f64,
    /// The writer alone in the tails stage's rounds (median), beside which its figures with
    /// tails are measured.
    pub tails_writer_alone_ticks_per_s: f64,
    /// The writer while four `tickrec tail --follow` processes, at the priority they take
    /// (`SCHED_IDLE`), follow every tick (median of the rounds): the figure the 0.95 target is
    /// held against.
    pub writer_ticks_per_s_with_tails: f64,
    /// The same with the tails at `--priority normal`.
    pub writer_ticks_per_s_with_tails_normal_priority: f64,
    /// With tails over alone, round by round, and the median of the rounds.
    pub writer_with_tails_ratio: f64,
    pub writer_with_tails_ratios: Vec<f64>,
    pub writer_with_tails_normal_priority_ratio: f64,
    pub writer_with_tails_normal_priority_ratios: Vec<f64>,
    /// The writer's time in WAL restarts (waits for readers on old snapshots included), s, in
    /// the tails stage's runs alone, with four tails, with four at normal priority (medians):
    /// what readers cost the writer other than CPU.
    pub writer_wal_restart_s: f64,
    pub writer_wal_restart_s_with_tails: f64,
    pub writer_wal_restart_s_with_tails_normal_priority: f64,
    /// CPU time a following tail spends per tick it reads and formats (the four processes of
    /// the last run at `--priority normal`, start-up included), ns: with the writer's speed,
    /// the cores four tails take.
    pub tail_cpu_ns_per_tick: f64,
    /// `store_tick` under (c) with eight subscribers on the live fan-out (one stalled), and
    /// without, in the same stage (each the median of [`PUBLISH_ROUNDS`] runs), ns.
    pub publish_store_tick_p99_ns: u64,
    pub publish_store_tick_p999_ns: u64,
    pub plain_store_tick_p99_ns: u64,
    pub plain_store_tick_p999_ns: u64,
    /// The lowest and highest store_tick p99 of the runs without subscribers: how far two runs
    /// of the same thing fall apart here.
    pub plain_store_tick_p99_range_ns: (u64, u64),
    /// Each round's run with subscribers over its run without (the two run back to back), the
    /// median of the rounds, for p99 and p99.9: what the machine's drift between rounds moves
    /// in the medians above cancels here.
    pub publish_store_tick_p99_paired_ratio: f64,
    pub publish_store_tick_p999_paired_ratio: f64,
    /// The simulator's rate in that stage, market-data messages a second (`--publish-rate`);
    /// 0: as fast as the connection took them.
    pub publish_rate_msgs_per_s: u64,
    /// A tick's commit to a following tail passing it on, ms (1,000 ticks/s, 3,000 ticks).
    pub tail_latency_p50_ms: f64,
    pub tail_latency_p99_ms: f64,
    /// The same at 50,000 ticks/s (100,000 ticks): a following tail then leaves the newest
    /// ticks to their blocks for up to `tail::HOLD` before it reads the rows.
    pub tail_latency_50k_p50_ms: f64,
    pub tail_latency_50k_p99_ms: f64,
    /// Queries the reader completed during that run.
    pub queries_during_writes: u64,
    /// The ceiling again, run right before each run of the writer beside the live-day reader
    /// (the better of two), and that writer's over it: the machine's speed drifts by a fifth
    /// within minutes here, so each ratio's two halves are measured side by side.
    pub writer_with_queries_ceiling_ticks_per_s: f64,
    pub writer_with_queries_vs_ceiling: f64,
    /// Each round's writer-with-reader run over the ceiling run right before it, and their
    /// median (see [`RATIO_ROUNDS`]).
    pub writer_with_queries_vs_ceiling_rounds: Vec<f64>,
    pub writer_with_queries_vs_ceiling_paired: f64,
    /// The same for end to end: a ceiling run right before each of its runs.
    pub end_to_end_ceiling_ticks_per_s: f64,
    /// End to end over its own ceiling (`end_to_end_ceiling_ticks_per_s`).
    pub end_to_end_vs_ceiling: f64,
    /// Each round's end-to-end run over the ceiling run right before it, and their median.
    pub end_to_end_vs_ceiling_rounds: Vec<f64>,
    pub end_to_end_vs_ceiling_paired: f64,
    /// The process's CPU time per tick committed end to end (the simulator, which shares the
    /// process and the two cores, included), ns, the median of the rounds: two cores' worth of
    /// it bounds the rate.
    pub end_to_end_cpu_ns_per_tick: f64,
    pub writer_vs_ceiling: f64,
    /// Each round's writer run over that round's ceiling run, and their median.
    pub writer_vs_ceiling_rounds: Vec<f64>,
    pub writer_vs_ceiling_paired: f64,
    /// The process's CPU time per tick in the ceiling's runs and in the writer's (producer,
    /// writer, block builder and checkpointer), ns, medians of the rounds: what the writer costs
    /// over the bare loop, apart from how fast the machine is at the moment.
    pub ceiling_cpu_ns_per_tick: f64,
    pub writer_cpu_ns_per_tick: f64,
    /// The same for the inserting thread alone: the ceiling's loop and the writer thread
    /// (`tickrec_writer_cpu_seconds_total`), medians of the rounds, ns. With the other core
    /// free, the writer thread is what bounds the writer's rate: this is the writer's cost over
    /// the bare loop where it counts.
    pub ceiling_thread_cpu_ns_per_tick: f64,
    pub writer_thread_cpu_ns_per_tick: f64,
    pub writer_store_tick_p99_ns: u64,
    pub writer_commit_p99_us: u64,
    pub end_to_end_ticks_per_s: f64,
    /// store_tick latency under the end-to-end load.
    pub store_tick_p99_ns: u64,
    pub store_tick_p999_ns: u64,
    /// Commit latency under the end-to-end load.
    pub commit_p99_us: u64,
    /// Resident memory at the end of the writer run, without the pre-generated input rows,
    /// and the rings' share of it.
    pub rss_bytes: u64,
    pub ring_bytes: u64,
    /// Live day file (no per-symbol index).
    pub bytes_per_tick: f64,
    /// The same as `bytes_per_tick`, under the name the sealed figure pairs with.
    pub live_bytes_per_tick: f64,
    /// The symbol block files beside the live day file (`[writer] symbol_blocks`; 0 without).
    pub live_block_bytes_per_tick: f64,
    /// After `seal` (the directory serves the day: no index).
    pub sealed_bytes_per_tick: f64,
    pub sealed_recent100_p50_us: f64,
    pub sealed_range_ticks_per_s: f64,
    /// With the indexes a day from before the directory gets when sealed (schema/seal.sql; the
    /// `sqlite3` comparison).
    pub indexed_bytes_per_tick: f64,
    pub seal_seconds: f64,
    pub recent100_p50_us: f64,
    pub recent100_sqlite3_p50_us: Option<f64>,
    pub recent100_live_p50_us: f64,
    /// `recent 100` on the live (unsealed) day, same as `recent100_live_p50_us`.
    pub live_recent100_p50_us: f64,
    /// One symbol over one hour on the live day, streamed (rows/s) and its first row (ms).
    pub live_range_ticks_per_s: f64,
    pub live_range_first_row_ms: f64,
    /// The same two queries timed while the writer appends at full speed (the reader's pace
    /// of (b)): the hour once the writer has passed it, and `recent 100`.
    pub live_range_writing_ticks_per_s: f64,
    pub live_range_writing_first_row_ms: f64,
    pub live_range_writing_queries: u64,
    pub live_recent100_writing_p50_us: f64,
    /// The same `recent 100`s on the reader thread's own CPU clock (how much of the time is
    /// the reader's own work, and how much waiting for a core).
    pub live_recent100_writing_cpu_p50_us: f64,
    pub range_ticks_per_s: f64,
    pub range_sqlite3_ticks_per_s: Option<f64>,
    pub range_rows: u64,
    /// Largest WAL seen under the writer's (tails' runs included) and the end-to-end run's day
    /// files (sampled every 10 ms); bounded by `writer.wal_max_mib`.
    pub wal_max_bytes: u64,
    #[serde(flatten)]
    pub archive: archive::ArchiveFigures,
    #[serde(skip)]
    only: Option<Stage>,
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
    };
    let publish_run = E2eRun {
        seconds: b.e2e_seconds,
        rate: b.publish_rate,
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
            publish_stage(opts, dir, &names, publish_run, log, &mut r)?;
            return Ok(r);
        }
        Some(Stage::Tails) => {
            tails_stage(opts, b.config.as_deref(), &inputs, log, &mut r)?;
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
    tails_stage(opts, b.config.as_deref(), &inputs, log, &mut r)?;
    end_to_end(opts, &inputs, b.e2e_seconds, log, &mut r)?;
    drop(input);
    publish_stage(opts, dir, &names, publish_run, log, &mut r)?;

    queries_stage(opts, b.ticks, &writer_base, &names, log, &mut r)?;
    archive_stage(opts, &b, dir, &writer_base, &names, log, &mut r)?;
    let _ = std::fs::remove_dir_all(&writer_base);
    Ok(r)
}

/// (c) End to end over FIX, twice, each run right after a ceiling run: the better of each
/// over the better of the other.
fn end_to_end(
    opts: &Options,
    inputs: &Inputs<'_>,
    seconds: f64,
    log: &mut dyn Write,
    r: &mut BenchReport,
) -> anyhow::Result<()> {
    let (dir, names) = (inputs.dir, inputs.names);
    let script = sim_script(names);
    let mut cpu = Vec::new();
    for round in 0..RATIO_ROUNDS {
        let ceiling = ceiling_beside(inputs, "end to end", log)?;
        r.end_to_end_ceiling_ticks_per_s =
            r.end_to_end_ceiling_ticks_per_s.max(ceiling.ticks_per_s);
        writeln!(
            log,
            "(c) end to end: simulator → FIX over loopback → SQLite, {seconds:.0}s (run {} of {RATIO_ROUNDS})…",
            round + 1
        )?;
        let cpu0 = tickrec::procstat::process_cpu();
        let run = E2eRun {
            seconds,
            rate: None,
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
    r.end_to_end_vs_ceiling_paired = median(&mut r.end_to_end_vs_ceiling_rounds.clone());
    r.end_to_end_cpu_ns_per_tick = median(&mut cpu);
    Ok(())
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
        true,
    )?;
    writeln!(
        log,
        "    {:.0} ticks/s; CPU {:.0} ns a tick",
        run.ticks_per_s, run.cpu_ns_per_tick
    )?;
    Ok(run)
}

/// Rounds of (a, b), of the writer beside the live-day reader and of end to end: each round
/// runs the ceiling, then the run held against it. A side's figure is its best run; the median
/// of the rounds' own ratios is reported beside the ratio of the bests. Three, not two: one run
/// here differs from the next by up to a fifth (the ceiling read 687K and 823K ticks/s one
/// after the other), which is wider than the targets' margins, and two runs a side cannot tell
/// a slow run from a slow build.
const RATIO_ROUNDS: usize = 3;

/// Rounds of the tails stage: each runs the writer alone, with four tails at their default
/// priority (`SCHED_IDLE`) and with four at `--priority normal` (in a rotated order), and its ratios
/// pair runs of one round.
const TAIL_ROUNDS: usize = 5;

/// (b) with four tails following, at their default priority and at normal priority, against the writer alone
/// in the same round ([`TAIL_ROUNDS`], medians of the rounds' ratios: one run against another
/// here differs by up to a fifth), and the commit-to-output latency of one following tail.
///
/// Long (~90 lines) on purpose: the rounds and what they report live beside each other.
fn tails_stage(
    opts: &Options,
    config: Option<&Path>,
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
    // Per round: (ticks/s, WAL restart s) alone, with tails, with tails at normal priority.
    let mut runs = [[(0.0f64, 0.0f64); 3]; TAIL_ROUNDS];
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
                "(b) writer, {} (round {} of {TAIL_ROUNDS})…",
                what[mode],
                round + 1
            )?;
            let base = dir.join("writer-tailed");
            std::fs::create_dir_all(&base)?;
            let followers = match mode {
                0 => None,
                1 => Some(tails::start(&base, config, 4, b_ticks as u64, true)?),
                _ => Some(tails::start(&base, config, 4, b_ticks as u64, false)?),
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
                    "    {:.0} ticks/s; WAL restarts: {} done, {} put off, {:.2} s; WAL up to {:.1} MiB",
                    run.ticks_per_s,
                    b.wal_restarts,
                    b.wal_restarts_postponed,
                    b.wal_restart_s,
                    wal as f64 / f64::from(1 << 20)
                )?;
            }
            slots[mode] = (run.ticks_per_s, run.wal_restart_s());
            let _ = std::fs::remove_dir_all(&base);
        }
    }
    let of = |mode: usize, f: fn((f64, f64), (f64, f64)) -> f64| {
        median(&mut runs.iter().map(|s| f(s[mode], s[0])).collect::<Vec<f64>>())
    };
    r.tails_writer_alone_ticks_per_s = of(0, |run, _| run.0);
    r.writer_wal_restart_s = of(0, |run, _| run.1);
    r.writer_ticks_per_s_with_tails = of(1, |run, _| run.0);
    r.writer_wal_restart_s_with_tails = of(1, |run, _| run.1);
    r.writer_with_tails_ratio = of(1, |run, alone| run.0 / alone.0);
    r.writer_with_tails_ratios = runs.iter().map(|s| s[1].0 / s[0].0).collect();
    r.writer_ticks_per_s_with_tails_normal_priority = of(2, |run, _| run.0);
    r.writer_wal_restart_s_with_tails_normal_priority = of(2, |run, _| run.1);
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
    } = *inputs;
    let day = Timestamp(DAY0).day();
    // (a, b) The ceiling (the same rows, schema, pragmas and transaction size, no pipeline)
    // and the writer (the Recorder fed from memory), each run RATIO_ROUNDS times, interleaved
    // so that what the machine does meanwhile (writeback of earlier runs, other load) falls on
    // both alike; each keeps its best run. The ceiling with SQLite's own checkpoints runs once.
    let ceiling_run = |sub: &str, writer_policy: bool| {
        ceiling(
            &dir.join(sub),
            day,
            names,
            input,
            batch,
            writer_opts,
            writer_policy,
        )
    };
    let wal = WalWatch::start(dir);
    let (mut ceiling_cpu, mut writer_cpu) = (Vec::new(), Vec::new());
    let (mut ceiling_thread_cpu, mut writer_thread_cpu) = (Vec::new(), Vec::new());
    for round in 0..RATIO_ROUNDS {
        writeln!(
            log,
            "(a) ceiling: bare insert loop, {} ticks (run {} of {RATIO_ROUNDS})…",
            input.len(),
            round + 1
        )?;
        let ceiling = ceiling_run("ceiling", true)?;
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
            "(b) writer: Recorder fed from memory (run {} of {RATIO_ROUNDS})…",
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
    r.writer_vs_ceiling_paired = median(&mut r.writer_vs_ceiling_rounds.clone());
    r.ceiling_cpu_ns_per_tick = median(&mut ceiling_cpu);
    r.writer_cpu_ns_per_tick = median(&mut writer_cpu);
    r.ceiling_thread_cpu_ns_per_tick = median(&mut ceiling_thread_cpu);
    r.writer_thread_cpu_ns_per_tick = median(&mut writer_thread_cpu);
    writeln!(log, "(a) ceiling with SQLite's automatic checkpoints…")?;
    r.ceiling_autocheckpoint_ticks_per_s = ceiling_run("ceiling-auto", false)?.ticks_per_s;
    Ok(())
}

/// What the reader of (b) saw: queries done, `(rows, time, first row)` of each whole-hour
/// range, each `recent 100`'s time (µs).
#[derive(Default)]
struct Seen {
    done: u64,
    range: Vec<(u64, Duration, Duration)>,
    recent_us: Vec<f64>,
    /// The same on the reader thread's own CPU clock.
    recent_cpu_us: Vec<f64>,
}

/// The middle value (the default, 0, for none).
fn median<T: Copy + Default + PartialOrd>(v: &mut [T]) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// (b) The writer while a reader queries the live day 50 times a second, [`RATIO_ROUNDS`] times,
/// each run right after a ceiling run: the best run is kept, with its reader's timings, and held
/// against the best of those ceilings.
fn writer_with_reader(
    opts: &Options,
    inputs: &Inputs<'_>,
    log: &mut dyn Write,
    r: &mut BenchReport,
) -> anyhow::Result<()> {
    let mut best: Option<(f64, Seen)> = None;
    for round in 0..RATIO_ROUNDS {
        let ceiling = ceiling_beside(inputs, "the writer with the live-day reader", log)?;
        r.writer_with_queries_ceiling_ticks_per_s = r
            .writer_with_queries_ceiling_ticks_per_s
            .max(ceiling.ticks_per_s);
        writeln!(
            log,
            "(b) writer again, with a reader querying the live day (run {} of {RATIO_ROUNDS})…",
            round + 1
        )?;
        let (ticks_per_s, seen, wal_restart_s) = writer_with_reader_once(opts, inputs)?;
        writeln!(
            log,
            "    {ticks_per_s:.0} ticks/s, {} query pairs; the writer's WAL restarts took {wal_restart_s:.2} s",
            seen.done
        )?;
        r.writer_with_queries_vs_ceiling_rounds
            .push(ticks_per_s / ceiling.ticks_per_s);
        if best.as_ref().is_none_or(|b| ticks_per_s > b.0) {
            best = Some((ticks_per_s, seen));
        }
    }
    let Some((ticks_per_s, mut seen)) = best else {
        return Ok(());
    };
    r.queries_during_writes = seen.done;
    r.writer_ticks_per_s_with_queries = ticks_per_s;
    r.writer_with_queries_vs_ceiling = ticks_per_s / r.writer_with_queries_ceiling_ticks_per_s;
    r.writer_with_queries_vs_ceiling_paired =
        median(&mut r.writer_with_queries_vs_ceiling_rounds.clone());
    let (rows, time) = seen.range.iter().fold((0, 0.0), |(n, t), (rows, took, _)| {
        (n + rows, t + took.as_secs_f64())
    });
    if time > 0.0 {
        r.live_range_writing_ticks_per_s = rows as f64 / time;
    }
    r.live_range_writing_queries = seen.range.len() as u64;
    let mut firsts: Vec<f64> = seen.range.iter().map(|q| q.2.as_secs_f64() * 1e3).collect();
    r.live_range_writing_first_row_ms = median(&mut firsts);
    r.live_recent100_writing_p50_us = median(&mut seen.recent_us);
    r.live_recent100_writing_cpu_p50_us = median(&mut seen.recent_cpu_us);
    Ok(())
}

/// One run of [`writer_with_reader`]: the writer's rate, what its reader saw, and the writer's
/// time in WAL restarts (s).
///
/// Long (~70 lines) on purpose: the reader thread and its timing live beside the run they measure.
fn writer_with_reader_once(
    opts: &Options,
    inputs: &Inputs<'_>,
) -> anyhow::Result<(f64, Seen, f64)> {
    let Inputs {
        dir,
        names,
        pipeline,
        writer_opts,
        input,
        ..
    } = *inputs;
    let base = dir.join("writer-queried");
    let stop = Shutdown::new();
    let reader = {
        let (store, stop, names) = (
            Store::new(&base, opts.writer.sqlite.clone()),
            stop.clone(),
            names.to_vec(),
        );
        std::thread::Builder::new()
            .name("live-reader".into())
            .spawn(move || {
                let mut seen = Seen::default();
                let mut i = 0usize;
                let (from, to) = (
                    Timestamp(DAY0 + 10 * 3_600_000_000_000),
                    Timestamp(DAY0 + 11 * 3_600_000_000_000),
                );
                // A busy desk's pace: 50 queries a second (one recent and one range each).
                // Unpaced, a reader takes a whole core of the two, and the figure would measure
                // that instead of what reading costs the writer.
                while !stop.wait_timeout(Duration::from_millis(20)) {
                    let sym = &names[i % names.len()];
                    i += 1;
                    // The day file appears with the first commit; until then there is nothing.
                    let (t, c0) = (
                        Instant::now(),
                        tickrec::procstat::thread_cpu().unwrap_or_default(),
                    );
                    let mut newest = None;
                    if store
                        .recent(sym, 100, &mut |r| {
                            newest.get_or_insert(r.ts_event);
                            Ok(())
                        })
                        .is_ok()
                    {
                        seen.recent_us.push(t.elapsed().as_secs_f64() * 1e6);
                        let cpu = tickrec::procstat::thread_cpu().unwrap_or_default();
                        seen.recent_cpu_us
                            .push(cpu.saturating_sub(c0).as_secs_f64() * 1e6);
                    }
                    let (t, mut rows, mut first) = (Instant::now(), 0u64, None);
                    let ranged = store.range(sym, from, to, &mut |_| {
                        first.get_or_insert_with(|| t.elapsed());
                        rows += 1;
                        Ok(())
                    });
                    // Timed once the symbol's hour is whole: the writer has passed its end.
                    if ranged.is_ok() && newest.is_some_and(|n| n >= to) {
                        seen.range
                            .push((rows, t.elapsed(), first.unwrap_or_default()));
                    }
                    seen.done += 1;
                }
                seen
            })?
    };
    let queried = Arc::new(Names::new(opts.pipeline.max_symbols.max(names.len())));
    for n in names {
        queried.symbol(n)?;
    }
    queried.source("SIM")?;
    let run = write_all(&base, &queried, pipeline, writer_opts, input)?;
    stop.request();
    let seen = reader.join().unwrap_or_default();
    let _ = std::fs::remove_dir_all(&base);
    Ok((run.ticks_per_s, seen, run.wal_restart_s()))
}

/// (d) Queries on the writer's day file under `base`: live first, then sealed, then the same
/// on the `sqlite3` shell.
///
/// Long (~105 lines) on purpose: the queries in the order they must run on one file (live, sealed,
/// indexed, then the shell).
fn queries_stage(
    opts: &Options,
    ticks: usize,
    base: &Path,
    names: &[String],
    log: &mut dyn Write,
    r: &mut BenchReport,
) -> anyhow::Result<()> {
    let day = Timestamp(DAY0).day();
    writeln!(log, "(d) queries on the {}-tick day file…", ticks)?;
    let store = Store::new(base, opts.writer.sqlite.clone());
    let symbol_of = |i: usize| names[i % names.len()].as_str();
    // Printed as CSV, as the sqlite3 shell prints its rows.
    let recent_p50 = |store: &Store| -> anyhow::Result<f64> {
        let mut times = Vec::with_capacity(200);
        for i in 0..200 {
            let t = Instant::now();
            tickrec::query::recent(
                store,
                &Symbols::one(symbol_of(i)),
                100,
                OutputFormat::Csv,
                std::io::sink(),
            )?;
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    };
    r.recent100_live_p50_us = recent_p50(&store)?;
    r.live_recent100_p50_us = r.recent100_live_p50_us;
    // One hour (10:00-11:00) of every symbol on the live day (a few ms each: over 8 symbols
    // the figure moved by a third between runs): rows/s and the median first row.
    let hour = (
        Timestamp(DAY0 + 10 * 3_600_000_000_000),
        Timestamp(DAY0 + 11 * 3_600_000_000_000),
    );
    {
        let started = Instant::now();
        let (mut rows, mut first_ms) = (0u64, Vec::new());
        for i in 0..names.len() {
            let t = Instant::now();
            let mut first = None;
            store.range(symbol_of(i), hour.0, hour.1, &mut |_| {
                first.get_or_insert_with(|| t.elapsed());
                rows += 1;
                Ok(())
            })?;
            first_ms.push(first.unwrap_or_default().as_secs_f64() * 1e3);
        }
        r.live_range_ticks_per_s = rows as f64 / started.elapsed().as_secs_f64();
        r.live_range_first_row_ms = median(&mut first_ms);
    }
    let db = layout::day_path(base, day);
    r.bytes_per_tick = std::fs::metadata(&db)?.len() as f64 / ticks as f64;
    r.live_bytes_per_tick = r.bytes_per_tick;
    let (blocks, block_index) = tickrec::store::blockfile::paths(&db);
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    r.live_block_bytes_per_tick = (size(&blocks) + size(&block_index)) as f64 / ticks as f64;
    let started = Instant::now();
    match seal_day(base, day, &opts.writer.sqlite)? {
        Sealed::Done { .. } => {}
        Sealed::Skipped { why } => anyhow::bail!("could not seal the bench day: {why}"),
    }
    r.seal_seconds = started.elapsed().as_secs_f64();
    r.sealed_bytes_per_tick = std::fs::metadata(&db)?.len() as f64 / ticks as f64;
    // One hour (10:00-11:00) of each of 8 symbols, streamed as CSV.
    let (from, to) = (
        Timestamp(DAY0 + 10 * 3_600_000_000_000),
        Timestamp(DAY0 + 11 * 3_600_000_000_000),
    );
    let range_csv = |store: &Store| -> anyhow::Result<(u64, f64)> {
        let started = Instant::now();
        let mut rows = 0;
        for i in 0..8 {
            rows += tickrec::query::range(
                store,
                &Symbols::one(symbol_of(i)),
                from,
                to,
                OutputFormat::Csv,
                std::io::sink(),
            )?
            .rows;
        }
        Ok((rows, rows as f64 / started.elapsed().as_secs_f64()))
    };
    // Sealed: the directory serves the queries (no index).
    r.sealed_recent100_p50_us = recent_p50(&store)?;
    (_, r.sealed_range_ticks_per_s) = range_csv(&store)?;
    // The indexes a day from before the directory gets when sealed, for the comparison with the
    // sqlite3 shell on the same file: the shell has only indexes to seek with.
    rusqlite::Connection::open(&db)?.execute_batch(tickrec::store::archive::SEAL_SQL)?;
    r.indexed_bytes_per_tick = std::fs::metadata(&db)?.len() as f64 / ticks as f64;
    r.recent100_p50_us = recent_p50(&store)?;
    let rows;
    (rows, r.range_ticks_per_s) = range_csv(&store)?;
    r.range_rows = rows;
    // The sqlite3 shell on the same file, the equivalent SELECTs on the table.
    if let Some((recent, range)) = sqlite3_figures(&db, names, from.0 - DAY0, to.0 - DAY0, rows)? {
        r.recent100_sqlite3_p50_us = Some(recent);
        r.range_sqlite3_ticks_per_s = Some(range);
    } else {
        writeln!(log, "sqlite3 shell not found: no comparison")?;
    }
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
struct E2eRun {
    seconds: f64,
    /// Market-data messages a second; `None`: as fast as the connection takes them.
    rate: Option<u64>,
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
        (Some((readers, stalled)), Some(addr)) => subscribers::start(addr, readers, stalled, &stop),
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

/// Rounds of (c), each a run without subscribers then one with; the figures are medians.
/// Five, not three: here the same run's p99 moved by a fifth between rounds minutes apart, and
/// once fell from ~550 to ~70 ns within a sitting as the machine's load changed.
const PUBLISH_ROUNDS: usize = 5;

/// (c) again without and with eight subscribers on the live fan-out (seven reading, one
/// stalled), [`PUBLISH_ROUNDS`] rounds of one run each: `store_tick`'s p99 and p99.9, the
/// median run of each side, the median of each round's ratio, and the spread of the runs
/// without (the noise floor).
fn publish_stage(
    opts: &Options,
    dir: &Path,
    names: &[String],
    run: E2eRun,
    log: &mut dyn Write,
    r: &mut BenchReport,
) -> anyhow::Result<()> {
    let script = sim_script(names);
    r.publish_rate_msgs_per_s = run.rate.unwrap_or(0);
    let pace = match run.rate {
        Some(rate) => format!(", the simulator at {rate} messages/s"),
        None => String::new(),
    };
    // (p99, p99.9) of each run, without and with subscribers, runs interleaved.
    let (mut plain, mut with) = (Vec::<(u64, u64)>::new(), Vec::<(u64, u64)>::new());
    for round in 0..PUBLISH_ROUNDS {
        for subs in [None, Some((7, 1))] {
            writeln!(
                log,
                "(c) end to end {}, {:.0}s{pace} (run {} of {PUBLISH_ROUNDS})…",
                if subs.is_some() {
                    "with 8 subscribers, one stalled"
                } else {
                    "without subscribers"
                },
                run.seconds,
                round + 1
            )?;
            let (report, _) = e2e(opts, dir, names, &script, run, subs, log)?;
            let l = &report.stats.store_tick_latency;
            let stored = report.stats.ticks_stored;
            writeln!(
                log,
                "    {stored} ticks committed, {:.0} ticks/s; store_tick p99 {} ns, p99.9 {} ns",
                stored as f64 / report.elapsed.as_secs_f64(),
                l.p99_ns,
                l.p999_ns
            )?;
            if subs.is_some() {
                &mut with
            } else {
                &mut plain
            }
            .push((l.p99_ns, l.p999_ns));
        }
    }
    let of = |runs: &[(u64, u64)], pick: fn(&(u64, u64)) -> u64| {
        median(&mut runs.iter().map(pick).collect::<Vec<u64>>())
    };
    let paired = |pick: fn(&(u64, u64)) -> u64| {
        let mut ratios: Vec<f64> = plain
            .iter()
            .zip(&with)
            .map(|(p, w)| pick(w) as f64 / pick(p).max(1) as f64)
            .collect();
        median(&mut ratios)
    };
    r.publish_store_tick_p99_paired_ratio = paired(|r| r.0);
    r.publish_store_tick_p999_paired_ratio = paired(|r| r.1);
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

/// (recent-100 µs per query, range ticks/s) of the `sqlite3` shell, or None without one.
/// Timed inside the shell: one process runs every query of a kind from a script, and the
/// same process with an empty script (start-up, opening the file) is measured apart and
/// subtracted (`.timer on` reports only milliseconds, too coarse for `recent 100`).
fn sqlite3_figures(
    db: &Path,
    names: &[String],
    lo: i64,
    hi: i64,
    rows: u64,
) -> anyhow::Result<Option<(f64, f64)>> {
    let shell = |script: &str| -> std::io::Result<Duration> {
        let t = Instant::now();
        let mut child = std::process::Command::new("sqlite3")
            .args(["-readonly", "-csv"])
            .arg(db)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(script.as_bytes())?;
        }
        if !child.wait()?.success() {
            return Err(std::io::Error::other("sqlite3 failed"));
        }
        Ok(t.elapsed())
    };
    // Start-up: the best of five empty runs (the schema is read by the first query too).
    let mut startup = Duration::MAX;
    for _ in 0..5 {
        match shell("SELECT count(*) FROM symbols;\n") {
            Ok(d) => startup = startup.min(d),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    let cols = "seq, sym, ts_event, ts_recv, bid, ask, bid_size, ask_size, src";
    let recent: String = (0..200)
        .map(|i| {
            let name = &names[i % names.len()];
            format!(
                "SELECT {cols} FROM ticks WHERE sym = (SELECT id FROM symbols WHERE name = '{name}') ORDER BY seq DESC LIMIT 100;\n"
            )
        })
        .collect();
    let recent_us = shell(&recent)?.saturating_sub(startup).as_secs_f64() * 1e6 / 200.0;
    let range: String = names
        .iter()
        .take(8)
        .map(|name| {
            format!(
                "SELECT {cols} FROM ticks INDEXED BY ticks_by_symbol_time WHERE sym = (SELECT id FROM symbols WHERE name = '{name}') \
                 AND ts_event >= {lo} AND ts_event < {hi} ORDER BY ts_event, seq;\n"
            )
        })
        .collect();
    let range_s = shell(&range)?.saturating_sub(startup).as_secs_f64();
    Ok(Some((recent_us, rows as f64 / range_s.max(1e-9))))
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

/// The bare insert loop over `input` into a fresh day file under `base`: ticks/s over what the
/// writer's clock covers too, from creating the file to the last tick durable (the closing
/// `wal_checkpoint(TRUNCATE)` the writer does when it closes a day). `writer_policy`: the
/// writer's checkpoints (automatic ones off, the background checkpointer on the file, the WAL
/// bound after each commit); otherwise SQLite's automatic checkpoint every 1000 pages.
fn ceiling(
    base: &Path,
    day: chrono::NaiveDate,
    names: &[String],
    input: &[Tick],
    batch: usize,
    writer_opts: &WriterOptions,
    writer_policy: bool,
) -> anyhow::Result<CeilingRun> {
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
    let mut seq = 1i64;
    let mut wal = tickrec::store::writer::WalBound::new(
        writer_opts.wal_max_bytes,
        checkpointer.as_ref().map(Checkpointer::passing),
    );
    for chunk in input.chunks(batch.max(1)) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO ticks (seq, sym, ts_event, ts_recv, bid, ask, bid_size, ask_size, src) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for t in chunk {
                let code = |d: Option<tickrec::tick::Decimal>| d.map(|d| d.code() as i64);
                stmt.raw_bind_parameter(1, seq)?;
                stmt.raw_bind_parameter(2, i64::from(t.symbol.0))?;
                stmt.raw_bind_parameter(3, t.ts_event.0 - DAY0)?;
                stmt.raw_bind_parameter(4, t.ts_recv.0 - t.ts_event.0)?;
                stmt.raw_bind_parameter(5, code(t.bid))?;
                stmt.raw_bind_parameter(6, tickrec::tick::Decimal::stored_ask(t.bid, t.ask))?;
                stmt.raw_bind_parameter(7, code(t.bid_size))?;
                stmt.raw_bind_parameter(8, code(t.ask_size))?;
                stmt.raw_bind_parameter(9, i64::from(t.source.0))?;
                stmt.raw_execute()?;
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

impl BenchReport {
    fn fmt_publish(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = |a: u64, b: u64| (a as f64 / b.max(1) as f64 - 1.0) * 100.0;
        write!(
            f,
            "store_tick, 8 subscribers       p99 {} ns, p99.9 {} ns; without p99 {} ns, p99.9 {} ns ({:+.0}%, {:+.0}%; target within 10%; medians of {}; median of the rounds' ratios {:+.0}%, {:+.0}%; the runs without moved {}-{} ns at p99)",
            self.publish_store_tick_p99_ns,
            self.publish_store_tick_p999_ns,
            self.plain_store_tick_p99_ns,
            self.plain_store_tick_p999_ns,
            pct(self.publish_store_tick_p99_ns, self.plain_store_tick_p99_ns),
            pct(self.publish_store_tick_p999_ns, self.plain_store_tick_p999_ns),
            PUBLISH_ROUNDS,
            (self.publish_store_tick_p99_paired_ratio - 1.0) * 100.0,
            (self.publish_store_tick_p999_paired_ratio - 1.0) * 100.0,
            self.plain_store_tick_p99_range_ns.0,
            self.plain_store_tick_p99_range_ns.1
        )?;
        if self.publish_rate_msgs_per_s > 0 {
            write!(
                f,
                " (the simulator at {} messages/s)",
                self.publish_rate_msgs_per_s
            )?;
        }
        Ok(())
    }

    fn fmt_tails(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "writer, 4 tails following       {:>12.0} ticks/s   = {:.2} x the writer alone in the same round (median of {TAIL_ROUNDS}: {}; target >= 0.95; tails at their default priority, SCHED_IDLE); at --priority normal: {:.0} = {:.2} x ({}; each tail {:.0} ns of CPU per tick: four at the writer's speed alone would take {:.1} cores); the writer's WAL restarts took {:.2} s alone, {:.2} s with the tails, {:.2} s with them at normal priority; commit -> tail output p50 {:.1} ms, p99 {:.1} ms at 1,000 ticks/s, {:.1} / {:.1} ms at 50,000 (target <= 50)",
            self.writer_ticks_per_s_with_tails,
            self.writer_with_tails_ratio,
            ratios(&self.writer_with_tails_ratios),
            self.writer_ticks_per_s_with_tails_normal_priority,
            self.writer_with_tails_normal_priority_ratio,
            ratios(&self.writer_with_tails_normal_priority_ratios),
            self.tail_cpu_ns_per_tick,
            4.0 * self.tail_cpu_ns_per_tick * self.tails_writer_alone_ticks_per_s / 1e9,
            self.writer_wal_restart_s,
            self.writer_wal_restart_s_with_tails,
            self.writer_wal_restart_s_with_tails_normal_priority,
            self.tail_latency_p50_ms,
            self.tail_latency_p99_ms,
            self.tail_latency_50k_p50_ms,
            self.tail_latency_50k_p99_ms
        )
    }
}

/// Ratios of rounds as `0.93, 0.97, 1.01`.
fn ratios(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl BenchReport {
    /// (d): the day file's sizes and the queries on it, live and sealed.
    fn fmt_queries(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The sqlite3 shell's figure and its ratio to ours ("-" without the shell).
        let shell = |theirs: Option<f64>, unit: &str, ours: f64| match theirs {
            Some(v) => format!("{v:.0} {unit} -> {:.2}x", v / ours),
            None => "- -> -".into(),
        };
        if self.only == Some(Stage::Queries) {
            writeln!(
                f,
                "writer, live-day reader 50/s    {:>12.0} ticks/s   = {:.2} x its ceiling {:.0} ({} query pairs ran)",
                self.writer_ticks_per_s_with_queries,
                self.writer_with_queries_vs_ceiling,
                self.writer_with_queries_ceiling_ticks_per_s,
                self.queries_during_writes
            )?;
        }
        writeln!(
            f,
            "day file                        live {:.1} bytes/tick (target <= 40; block files beside it {:.1}); sealed {:.1} bytes/tick (sealing took {:.1}s); with a pre-directory day's indexes {:.1}",
            self.bytes_per_tick, self.live_block_bytes_per_tick, self.sealed_bytes_per_tick, self.seal_seconds, self.indexed_bytes_per_tick
        )?;
        writeln!(
            f,
            "live day, range 1 h one symbol  {:.0} ticks/s (target >= 1000000), first row {:.1} ms (target <= 20)",
            self.live_range_ticks_per_s, self.live_range_first_row_ms
        )?;
        writeln!(
            f,
            "  the same while (b) writes     {:.0} ticks/s, first row {:.1} ms ({} whole-hour queries); recent 100 p50 {:.0} us ({:.0} us of the reader's own CPU)",
            self.live_range_writing_ticks_per_s,
            self.live_range_writing_first_row_ms,
            self.live_range_writing_queries,
            self.live_recent100_writing_p50_us,
            self.live_recent100_writing_cpu_p50_us
        )?;
        writeln!(
            f,
            "recent 100, one symbol          p50 {:.0} us live (target <= 500), {:.0} us sealed; indexed {:.0} us, sqlite3 shell (indexed) {}",
            self.live_recent100_p50_us,
            self.sealed_recent100_p50_us,
            self.recent100_p50_us,
            shell(self.recent100_sqlite3_p50_us, "us", self.recent100_p50_us),
        )?;
        write!(
            f,
            "range 1 h, one symbol           sealed {:.0} ticks/s as CSV; indexed {:.0} over {} rows, sqlite3 shell (indexed) {} of ours",
            self.sealed_range_ticks_per_s,
            self.range_ticks_per_s,
            self.range_rows,
            shell(self.range_sqlite3_ticks_per_s, "ticks/s", self.range_ticks_per_s),
        )
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.only {
            Some(Stage::Archive) => return write!(f, "{}", self.archive),
            Some(Stage::Tails) => return self.fmt_tails(f),
            Some(Stage::Publish) => return self.fmt_publish(f),
            Some(Stage::Queries) => return self.fmt_queries(f),
            Some(Stage::Writer) | None => {}
        }
        let c = self.ceiling_ticks_per_s;
        writeln!(
            f,
            "{} ticks, {} symbols, one run; rows generated before every clock; ceiling and writer best of {r}, interleaved; writer with the live-day reader and end to end best of {r}, each run right after a ceiling run of its own (their ratios use the bests; \"rounds\" is the median of each round's run over its ceiling run)",
            self.ticks, self.symbols, r = RATIO_ROUNDS
        )?;
        writeln!(
            f,
            "ceiling, writer's checkpoints   {:>12.0} ticks/s   (bare insert loop; the writer's ratio uses it, the later stages run their own beside them)",
            c
        )?;
        writeln!(
            f,
            "ceiling, SQLite autocheckpoint  {:>12.0} ticks/s   = {:.2} x",
            self.ceiling_autocheckpoint_ticks_per_s,
            self.ceiling_autocheckpoint_ticks_per_s / c
        )?;
        writeln!(
            f,
            "writer (Recorder from memory)   {:>12.0} ticks/s   = {:.2} x ceiling (target >= 0.90); rounds {:.2} x ({})",
            self.writer_ticks_per_s,
            self.writer_vs_ceiling,
            self.writer_vs_ceiling_paired,
            ratios(&self.writer_vs_ceiling_rounds)
        )?;
        writeln!(
            f,
            "CPU a tick, whole process       ceiling {:.0} ns, writer {:.0} ns = {:.2} x   (medians; the writer's producer, block builder and checkpointer included)",
            self.ceiling_cpu_ns_per_tick,
            self.writer_cpu_ns_per_tick,
            self.writer_cpu_ns_per_tick / self.ceiling_cpu_ns_per_tick.max(1.0)
        )?;
        writeln!(
            f,
            "CPU a tick, inserting thread    ceiling {:.0} ns, writer {:.0} ns = {:.2} x   (medians; the thread that bounds each rate)",
            self.ceiling_thread_cpu_ns_per_tick,
            self.writer_thread_cpu_ns_per_tick,
            self.writer_thread_cpu_ns_per_tick / self.ceiling_thread_cpu_ns_per_tick.max(1.0)
        )?;
        if self.only.is_none() {
            writeln!(
                f,
                "writer, live-day reader 50/s    {:>12.0} ticks/s   = {:.2} x its ceiling {:.0} (target >= 0.90; {} query pairs ran); rounds {:.2} x ({})",
                self.writer_ticks_per_s_with_queries,
                self.writer_with_queries_vs_ceiling,
                self.writer_with_queries_ceiling_ticks_per_s,
                self.queries_during_writes,
                self.writer_with_queries_vs_ceiling_paired,
                ratios(&self.writer_with_queries_vs_ceiling_rounds)
            )?;
            self.fmt_tails(f)?;
            writeln!(f)?;
            self.fmt_publish(f)?;
            writeln!(f)?;
        }
        writeln!(
            f,
            "end to end (FIX over loopback)  {:>12.0} ticks/s   = {:.2} x its ceiling {:.0} (target >= 0.75); rounds {:.2} x ({}); CPU {:.0} ns a tick, the simulator's included",
            self.end_to_end_ticks_per_s,
            self.end_to_end_vs_ceiling,
            self.end_to_end_ceiling_ticks_per_s,
            self.end_to_end_vs_ceiling_paired,
            ratios(&self.end_to_end_vs_ceiling_rounds),
            self.end_to_end_cpu_ns_per_tick
        )?;
        writeln!(
            f,
            "store_tick under e2e load       p99 {} ns, p99.9 {} ns   (targets <= 500, <= 2000)",
            self.store_tick_p99_ns, self.store_tick_p999_ns
        )?;
        writeln!(
            f,
            "commit under e2e load           p99 {} us   (target <= 5000); writer run p99 {} us",
            self.commit_p99_us, self.writer_commit_p99_us
        )?;
        writeln!(
            f,
            "memory                          RSS {:.1} MB without the input rows, of which rings {:.1} MB   (target RSS - rings <= 48 MB: {:.1} MB)",
            self.rss_bytes as f64 / 1e6,
            self.ring_bytes as f64 / 1e6,
            self.rss_bytes.saturating_sub(self.ring_bytes) as f64 / 1e6
        )?;
        writeln!(
            f,
            "WAL                             largest {:.1} MiB seen during (a), (b) and (c) (target <= 64, writer.wal_max_mib)",
            self.wal_max_bytes as f64 / (1 << 20) as f64
        )?;
        if self.only.is_some() {
            return Ok(());
        }
        self.fmt_queries(f)?;
        write!(f, "\n{}", self.archive)
    }
}
