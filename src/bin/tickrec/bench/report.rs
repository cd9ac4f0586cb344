//! Every figure of one bench run ([`BenchReport`]): the JSON object `--json` prints, and the
//! table printed without it, each figure beside its target.

use serde::Serialize;
use tickrec::store::writer::ROWS_PER_INSERT;

use super::{archive, median_interval, quantile, Stage};

/// The targets the ratios are held to, in one place for the table and `bench --pool`: the
/// writer over its ceiling (alone and beside the live-day reader), end to end over its ceiling,
/// the writer with four tails over alone, and the band `store_tick`'s p99 and p99.9 with eight
/// subscribers stay within over none.
pub const WRITER_TARGET: f64 = 0.90;
pub const END_TO_END_TARGET: f64 = 0.75;
pub const TAILS_TARGET: f64 = 0.95;
pub const SUBSCRIBERS_BAND: f64 = 1.10;

/// Every figure of one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BenchReport {
    pub ticks: usize,
    pub symbols: usize,
    /// Rounds of the ratio stages (`--rounds`): the length of the three `*_vs_ceiling_rounds`
    /// lists.
    pub ratio_rounds: usize,
    /// Rounds of the subscribers' stage (each a run without and one with them).
    pub publish_rounds: usize,
    /// Bare insert loop with the writer's checkpoint policy: the ceiling ratios use.
    pub ceiling_ticks_per_s: f64,
    /// Bare insert loop with SQLite's automatic checkpoint (1000 pages).
    pub ceiling_autocheckpoint_ticks_per_s: f64,
    /// Bare insert loop with the writer's checkpoints and one row a statement (the writer's
    /// statements until it took `ROWS_PER_INSERT` rows in each).
    pub ceiling_one_row_ticks_per_s: f64,
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
    /// The writer thread's time ready to run but waiting for a CPU, s, in the same three runs
    /// (medians; `tickrec_writer_cpu_wait_seconds_total`): how much of the cores the tails took
    /// from it, apart from what they cost it in caches.
    pub writer_cpu_wait_s: f64,
    pub writer_cpu_wait_s_with_tails: f64,
    pub writer_cpu_wait_s_with_tails_normal_priority: f64,
    /// CPU time a following tail spends per tick it reads and formats (the four processes of
    /// the last run at `--priority normal`, start-up included), ns: with the writer's speed,
    /// the cores four tails take.
    pub tail_cpu_ns_per_tick: f64,
    /// `store_tick` under (c) with eight subscribers on the live fan-out (one stalled), and
    /// without, in the same stage (each the median of `publish_rounds` runs), ns.
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
    /// Those ratios round by round.
    pub publish_store_tick_p99_ratios: Vec<f64>,
    pub publish_store_tick_p999_ratios: Vec<f64>,
    /// The same p99.9 ratios, each run's p99.9 read between the clock's steps
    /// (`e2e::between_steps`): a shift smaller than a step shows as less than a step.
    pub publish_store_tick_p999_fine_ratios: Vec<f64>,
    /// The step of the clock `store_tick`'s latency is read with, ns (see `e2e::clock_step_ns`):
    /// a p99 a few steps long cannot resolve 10 %.
    pub store_tick_clock_step_ns: f64,
    /// The simulator's rate in that stage, market-data messages a second (`--publish-rate`);
    /// 0: as fast as the connection took them.
    pub publish_rate_msgs_per_s: u64,
    /// Symbols each subscriber asked for in that stage (`--publish-symbols`); 0: every one.
    pub publish_symbols_each: usize,
    /// Conflation each subscriber asked for in that stage, ms (`--publish-conflate-ms`); 0:
    /// every tick.
    pub publish_conflate_ms: u64,
    /// Reading subscribers of that stage that were screens of every symbol, conflated
    /// (`--publish-screens`).
    pub publish_screens: usize,
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
    /// median (see [`super::RATIO_ROUNDS`]).
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
    /// The sign test's interval for the median of each ratio's rounds, at 95 % or more
    /// (`[lo, hi]`; null under six rounds). A target at or below `lo` is met, one above `hi`
    /// missed, one between is not settled by these rounds (see [`Verdict`]); the subscribers'
    /// two are held the other way, against their band's 1.10.
    pub writer_vs_ceiling_median_ci95: Option<[f64; 2]>,
    pub writer_with_queries_vs_ceiling_median_ci95: Option<[f64; 2]>,
    pub end_to_end_vs_ceiling_median_ci95: Option<[f64; 2]>,
    pub writer_with_tails_median_ci95: Option<[f64; 2]>,
    pub publish_store_tick_p99_median_ci95: Option<[f64; 2]>,
    pub publish_store_tick_p999_median_ci95: Option<[f64; 2]>,
    #[serde(flatten)]
    pub archive: archive::ArchiveFigures,
    #[serde(skip)]
    pub(super) only: Option<Stage>,
}

/// What a ratio's rounds say of its target, at 95 % (the sign test's interval for the median).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The whole interval is at or above the target.
    Met,
    /// The whole interval is below it.
    Missed,
    /// The target lies inside the interval: these rounds do not tell.
    Unsettled,
}

impl Verdict {
    /// Of a target the median must reach (`≥ target`).
    pub fn of(interval: Option<[f64; 2]>, target: f64) -> Option<Verdict> {
        let [lo, hi] = interval?;
        Some(if lo >= target {
            Verdict::Met
        } else if hi < target {
            Verdict::Missed
        } else {
            Verdict::Unsettled
        })
    }

    /// Of a bound the median must stay within (`≤ bound`).
    pub fn of_bound(interval: Option<[f64; 2]>, bound: f64) -> Option<Verdict> {
        let [lo, hi] = interval?;
        Some(if hi <= bound {
            Verdict::Met
        } else if lo > bound {
            Verdict::Missed
        } else {
            Verdict::Unsettled
        })
    }

    pub fn said(self) -> &'static str {
        match self {
            Verdict::Met => "target met",
            Verdict::Missed => "target missed",
            Verdict::Unsettled => "target inside it: not settled by these rounds",
        }
    }
}

/// `v`'s interval for the median at 95 %, as the report keeps it.
fn interval(v: &[f64]) -> Option<[f64; 2]> {
    median_interval(v, 0.95).map(|(lo, hi, _)| [lo, hi])
}

impl BenchReport {
    /// Fills in what is computed from the rounds once every stage has run.
    pub fn settle(&mut self) {
        self.writer_vs_ceiling_median_ci95 = interval(&self.writer_vs_ceiling_rounds);
        self.writer_with_queries_vs_ceiling_median_ci95 =
            interval(&self.writer_with_queries_vs_ceiling_rounds);
        self.end_to_end_vs_ceiling_median_ci95 = interval(&self.end_to_end_vs_ceiling_rounds);
        self.writer_with_tails_median_ci95 = interval(&self.writer_with_tails_ratios);
        self.publish_store_tick_p99_median_ci95 = interval(&self.publish_store_tick_p99_ratios);
        self.publish_store_tick_p999_median_ci95 = interval(&self.publish_store_tick_p999_ratios);
    }

    fn fmt_publish(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = |a: u64, b: u64| (a as f64 / b.max(1) as f64 - 1.0) * 100.0;
        write!(
            f,
            "store_tick, 8 subscribers       p99 {} ns, p99.9 {} ns; without p99 {} ns, p99.9 {} ns ({:+.0}%, {:+.0}%; target within {band:.0}%; medians of {}; median of the rounds' ratios {:+.0}%, {:+.0}%{}; the runs without moved {}-{} ns at p99; the clock's step {:.1} ns)",
            self.publish_store_tick_p99_ns,
            self.publish_store_tick_p999_ns,
            self.plain_store_tick_p99_ns,
            self.plain_store_tick_p999_ns,
            pct(self.publish_store_tick_p99_ns, self.plain_store_tick_p99_ns),
            pct(self.publish_store_tick_p999_ns, self.plain_store_tick_p999_ns),
            self.publish_rounds,
            (self.publish_store_tick_p99_paired_ratio - 1.0) * 100.0,
            (self.publish_store_tick_p999_paired_ratio - 1.0) * 100.0,
            settled_band(
                interval(&self.publish_store_tick_p99_ratios),
                interval(&self.publish_store_tick_p999_ratios)
            ),
            self.plain_store_tick_p99_range_ns.0,
            self.plain_store_tick_p99_range_ns.1,
            self.store_tick_clock_step_ns,
            band = (SUBSCRIBERS_BAND - 1.0) * 100.0
        )?;
        if self.publish_rate_msgs_per_s > 0 {
            write!(
                f,
                " (the simulator at {} messages/s)",
                self.publish_rate_msgs_per_s
            )?;
        }
        if self.publish_symbols_each > 0 {
            write!(
                f,
                " (each subscriber of {} symbols)",
                self.publish_symbols_each
            )?;
        }
        if self.publish_conflate_ms > 0 {
            write!(f, " (conflated at {} ms)", self.publish_conflate_ms)?;
        }
        if self.publish_screens > 0 {
            write!(
                f,
                " ({} of the readers screens of every symbol conflated at {} ms)",
                self.publish_screens,
                super::subscribers::SCREEN_MS
            )?;
        }
        if !self.publish_store_tick_p999_fine_ratios.is_empty() {
            write!(
                f,
                "; p99.9 read between the clock's steps: median of the rounds' ratios {:+.1}%",
                (quantile(&self.publish_store_tick_p999_fine_ratios, 0.5) - 1.0) * 100.0
            )?;
        }
        Ok(())
    }

    fn fmt_tails(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "writer, 4 tails following       {:>12.0} ticks/s   = {:.2} x the writer alone in the same round (median of {}: {}{}; target >= {TAILS_TARGET:.2}; tails at their default priority, SCHED_IDLE); at --priority normal: {:.0} = {:.2} x ({}; each tail {:.0} ns of CPU per tick: four at the writer's speed alone would take {:.1} cores); the writer's WAL restarts took {:.2} s alone, {:.2} s with the tails, {:.2} s with them at normal priority; its thread waited for a CPU {:.3} s alone, {:.3} s with the tails, {:.3} s with them at normal priority; commit -> tail output p50 {:.1} ms, p99 {:.1} ms at 1,000 ticks/s, {:.1} / {:.1} ms at 50,000 (target <= 50)",
            self.writer_ticks_per_s_with_tails,
            self.writer_with_tails_ratio,
            self.writer_with_tails_ratios.len(),
            ratios(&self.writer_with_tails_ratios),
            settled(interval(&self.writer_with_tails_ratios), TAILS_TARGET),
            self.writer_ticks_per_s_with_tails_normal_priority,
            self.writer_with_tails_normal_priority_ratio,
            ratios(&self.writer_with_tails_normal_priority_ratios),
            self.tail_cpu_ns_per_tick,
            4.0 * self.tail_cpu_ns_per_tick * self.tails_writer_alone_ticks_per_s / 1e9,
            self.writer_wal_restart_s,
            self.writer_wal_restart_s_with_tails,
            self.writer_wal_restart_s_with_tails_normal_priority,
            self.writer_cpu_wait_s,
            self.writer_cpu_wait_s_with_tails,
            self.writer_cpu_wait_s_with_tails_normal_priority,
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

/// The median of the rounds' ratios and how they spread: `0.95 x (0.93, 0.97, 1.01)` for up to
/// five rounds, `0.95 x, quartiles 0.91–0.98, range 0.84–1.03 (15 rounds); median within
/// 0.93–0.97 at 95 %: target met` for more (see [`Verdict`]).
fn rounds(v: &[f64], target: f64) -> String {
    let median = quantile(v, 0.5);
    if v.len() <= 5 {
        return format!("{median:.2} x ({})", ratios(v));
    }
    let mut s = format!(
        "{median:.2} x, quartiles {:.2}–{:.2}, range {:.2}–{:.2} ({} rounds)",
        quantile(v, 0.25),
        quantile(v, 0.75),
        quantile(v, 0.0),
        quantile(v, 1.0),
        v.len()
    );
    s.push_str(&settled(interval(v), target));
    s
}

/// `; median within 0.93–0.97 at 95 %: target met` (nothing without an interval).
fn settled(interval: Option<[f64; 2]>, target: f64) -> String {
    let (Some([lo, hi]), Some(verdict)) = (interval, Verdict::of(interval, target)) else {
        return String::new();
    };
    format!(
        "; median within {lo:.3}–{hi:.3} at 95 %: {}",
        verdict.said()
    )
}

/// The subscribers' rounds' ratios against the 10 % band: `; the rounds' ratios' medians
/// within +2–+14 % and -3–+9 % at 95 %: target inside it: …` (nothing under six rounds).
fn settled_band(p99: Option<[f64; 2]>, p999: Option<[f64; 2]>) -> String {
    let (Some([a, b]), Some([c, d])) = (p99, p999) else {
        return String::new();
    };
    let pct = |x: f64| (x - 1.0) * 100.0;
    let worst = match (
        Verdict::of_bound(p99, SUBSCRIBERS_BAND),
        Verdict::of_bound(p999, SUBSCRIBERS_BAND),
    ) {
        (Some(Verdict::Met), Some(Verdict::Met)) => Verdict::Met,
        (Some(Verdict::Missed), _) | (_, Some(Verdict::Missed)) => Verdict::Missed,
        _ => Verdict::Unsettled,
    };
    format!(
        "; the rounds' ratios' medians within {:+.0}–{:+.0} % and {:+.0}–{:+.0} % at 95 %: {}",
        pct(a),
        pct(b),
        pct(c),
        pct(d),
        worst.said()
    )
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
            self.ticks, self.symbols, r = self.ratio_rounds
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
            "ceiling, one row a statement    {:>12.0} ticks/s   = {:.2} x (the ceiling and the writer insert {ROWS_PER_INSERT} rows a statement)",
            self.ceiling_one_row_ticks_per_s,
            self.ceiling_one_row_ticks_per_s / c
        )?;
        writeln!(
            f,
            "writer (Recorder from memory)   {:>12.0} ticks/s   = {:.2} x ceiling (target >= {WRITER_TARGET:.2}); rounds {}",
            self.writer_ticks_per_s,
            self.writer_vs_ceiling,
            rounds(&self.writer_vs_ceiling_rounds, WRITER_TARGET)
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
                "writer, live-day reader 50/s    {:>12.0} ticks/s   = {:.2} x its ceiling {:.0} (target >= {WRITER_TARGET:.2}; {} query pairs ran); rounds {}",
                self.writer_ticks_per_s_with_queries,
                self.writer_with_queries_vs_ceiling,
                self.writer_with_queries_ceiling_ticks_per_s,
                self.queries_during_writes,
                rounds(&self.writer_with_queries_vs_ceiling_rounds, WRITER_TARGET)
            )?;
            self.fmt_tails(f)?;
            writeln!(f)?;
            self.fmt_publish(f)?;
            writeln!(f)?;
        }
        writeln!(
            f,
            "end to end (FIX over loopback)  {:>12.0} ticks/s   = {:.2} x its ceiling {:.0} (target >= {END_TO_END_TARGET:.2}); rounds {}; CPU {:.0} ns a tick, the simulator's included",
            self.end_to_end_ticks_per_s,
            self.end_to_end_vs_ceiling,
            self.end_to_end_ceiling_ticks_per_s,
            rounds(&self.end_to_end_vs_ceiling_rounds, END_TO_END_TARGET),
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

#[cfg(test)]
mod tests {
    use super::{rounds, BenchReport, Verdict};

    #[test]
    fn up_to_five_rounds_are_listed_and_more_are_summed_up_by_quartiles() {
        assert_eq!(
            rounds(&[0.83, 0.99, 0.82], 0.9),
            "0.83 x (0.83, 0.99, 0.82)"
        );
        let v: Vec<f64> = (0..9).map(|i| 0.80 + 0.01 * f64::from(i)).collect();
        // Nine rounds: the 2nd and 8th values, at 96.1 %.
        assert_eq!(
            rounds(&v, 0.9),
            "0.84 x, quartiles 0.82–0.86, range 0.80–0.88 (9 rounds); median within 0.810–0.870 at 95 %: target missed"
        );
        assert!(rounds(&v, 0.85).ends_with("target inside it: not settled by these rounds"));
        assert!(rounds(&v, 0.81).ends_with("target met"));
    }

    #[test]
    fn settling_gives_each_ratio_its_interval_and_the_verdict_follows_it() {
        let mut r = BenchReport {
            writer_vs_ceiling_rounds: vec![0.91, 0.93, 0.92, 0.95, 0.94, 0.96],
            end_to_end_vs_ceiling_rounds: vec![0.7, 0.8, 0.75],
            ..BenchReport::default()
        };
        r.settle();
        assert_eq!(r.writer_vs_ceiling_median_ci95, Some([0.91, 0.96]));
        assert_eq!(r.end_to_end_vs_ceiling_median_ci95, None);
        assert_eq!(
            Verdict::of(r.writer_vs_ceiling_median_ci95, 0.9),
            Some(Verdict::Met)
        );
        assert_eq!(
            Verdict::of(r.writer_vs_ceiling_median_ci95, 0.97),
            Some(Verdict::Missed)
        );
        assert_eq!(
            Verdict::of(r.writer_vs_ceiling_median_ci95, 0.95),
            Some(Verdict::Unsettled)
        );
        assert_eq!(Verdict::of(None, 0.9), None);
        // A bound: met when the whole interval is within it.
        assert_eq!(
            Verdict::of_bound(Some([0.95, 1.08]), 1.1),
            Some(Verdict::Met)
        );
        assert_eq!(
            Verdict::of_bound(Some([1.12, 1.3]), 1.1),
            Some(Verdict::Missed)
        );
        assert_eq!(
            Verdict::of_bound(Some([1.0, 1.3]), 1.1),
            Some(Verdict::Unsettled)
        );
        let band = super::settled_band(Some([0.98, 1.04]), Some([1.02, 1.2]));
        assert!(
            band.contains("−2–+4 %") || band.contains("-2–+4 %"),
            "{band}"
        );
        assert!(band.ends_with("not settled by these rounds"), "{band}");
        assert!(super::settled_band(Some([0.98, 1.04]), None).is_empty());
    }
}
