//! Command-line interface: argument types (clap) and one function per command.
//!
//! Raw flags are merged with the config file and environment by `config::Options::load`
//! exactly once, at the top of [`run`]; commands only see validated options.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

mod migrate;
mod output;
mod read;
mod record;
mod store;
mod subscribe;
use clap::{Args, Parser, Subcommand};

use crate::demo::{self, DemoOptions};
use tickrec::clock::SystemClock;
use tickrec::config::{FlagOverrides, Options};
use tickrec::format::OutputFormat;
use tickrec::ingest::{Feeder, InputFormat};
use tickrec::shutdown::Shutdown;
use tickrec::tick::Timestamp;
use tickrec::{query, service};

#[derive(Debug, Parser)]
#[command(
    name = "tickrec",
    version,
    about = "High-frequency market tick recorder"
)]
pub struct Cli {
    /// Base folder of the daily files [env: TICK_DB_PATH; default ./data/ticks/db]
    #[arg(long, global = true, value_name = "DIR")]
    pub db: Option<PathBuf>,
    /// TOML configuration file (see config/)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log lines on stderr as text or as one JSON object per line [default: config, text]
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<tickrec::config::LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Record the built-in FIX simulator over a real FIX session for a while (no feed needed)
    Demo(DemoArgs),
    /// Record FIX market data from the configured sessions until SIGINT/SIGTERM
    Record(RecordArgs),
    /// Run the FIX 4.4 market-data simulator (an acceptor streaming random-walk quotes)
    Simulate(SimulateArgs),
    /// Feed ticks from JSON Lines or CSV through the recorder (FILE or - for stdin)
    Ingest(IngestArgs),
    /// Read ticks back from the daily files
    #[command(subcommand)]
    Query(QueryCommand),
    /// Stream committed ticks in recording order from a resumable cursor; --follow keeps going
    Tail(TailArgs),
    /// Print a recorder's live fan-out (record --publish) from a resumable cursor, on its host
    /// or another, reconnecting with the cursor whenever the connection ends
    Subscribe(subscribe::SubscribeArgs),
    /// Per-day figures: ticks, symbols, bytes, first and last event time
    Stats(StatsArgs),
    /// Write a time range as a Hive-partitioned tree (date=YYYY-MM-DD/part-0.*) for research engines
    Export(ExportArgs),
    /// Import legacy JSON history into the daily files, each tick exactly once
    Migrate(MigrateArgs),
    /// Compare legacy JSON history with the daily files, per symbol per day
    Verify(VerifyArgs),
    /// Archive closed day files older than a given age as Parquet (or .db.zst); queries still read them
    Archive(ArchiveArgs),
    /// Restore an archived day (YYYY-MM-DD) to a plain day file
    Unarchive { day: String },
    /// Seal closed day files at least this old: WAL folded in, the query directory naming every tick
    Seal {
        #[arg(long, default_value = "1d", value_parser = parse_days)]
        older_than: u32,
    },
    /// Measure ceiling, writer, end to end and queries in one run (ratios where they apply)
    Bench(BenchArgs),
    /// Bring day files written by an older tickrec to the current schema
    Upgrade,
    /// Check every day file and archive (integrity and invariants); --repair salvages broken ones
    Check {
        /// Move a broken day file aside (NAME.broken-TIME) and salvage what can be read
        #[arg(long)]
        repair: bool,
    },
    /// Ask a running record/ingest/migrate whether it is healthy (exit 0 healthy, 1 not, 2 unreachable)
    Health {
        /// Its health endpoint
        #[arg(long, default_value = "http://127.0.0.1:9464/health")]
        url: String,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to stdout
    Completions { shell: clap_complete::Shell },
}

/// `--metrics-listen` of the commands that serve /metrics and /health.
#[derive(Debug, Args, Clone, Default)]
pub struct MetricsArgs {
    /// Serve /metrics and /health on this HOST:PORT [default: config `[metrics] listen`, off]
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_listen: Option<String>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Ticks for the ceiling, the writer and the query day file
    #[arg(long, default_value_t = 10_000_000)]
    pub ticks: usize,
    #[arg(long, default_value_t = 128)]
    pub symbols: usize,
    /// Seconds of the end-to-end FIX run
    #[arg(long, default_value_t = 10.0)]
    pub e2e_seconds: f64,
    /// Market-data messages a second the simulator sends in the subscribers' stage [default:
    /// as fast as the connection takes them]
    #[arg(long, value_name = "MSGS")]
    pub publish_rate: Option<u64>,
    /// Symbols each subscriber of the subscribers' stage asks for, each subscriber its own run
    /// of them (as strategies that each want a few) [default: every symbol, `["*"]`]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub publish_symbols: Option<u32>,
    /// The subscribers of the subscribers' stage ask for a conflated stream: each symbol's
    /// latest tick at most once in this many milliseconds (10–60000) [default: every tick]
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(tickrec::publish::CONFLATE_MS))]
    pub publish_conflate_ms: Option<u64>,
    /// Of the seven reading subscribers of the subscribers' stage, this many (the last ones)
    /// are monitoring screens of every symbol conflated at 250 ms, beside strategies that ask
    /// as `--publish-symbols` and `--publish-conflate-ms` say [default: 0]
    #[arg(long, value_name = "K", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=7))]
    pub publish_screens: u32,
    /// Rounds of every stage that pairs runs (each round runs the ceiling, or the run without
    /// tails or subscribers, then the run held against it): more give the median of the
    /// rounds' ratios and its quartiles on a machine whose speed drifts [default: 3 for the
    /// writer, the writer beside the live-day reader and end to end; 5 for the tails and the
    /// subscribers]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=99))]
    pub rounds: Option<u32>,
    /// Print one JSON object instead of the table
    #[arg(long)]
    pub json: bool,
    /// Only one stage: archive (e), queries (d), tails (the writer with four tails following) or
    /// publish (end to end with subscribers)
    #[arg(long, value_enum)]
    pub only: Option<crate::bench::Stage>,
    /// The tails stage starts its tails in this CPU cgroup (its folder, e.g. one whose
    /// `cpu.idle` is 1, as `systemd-run --scope -p CPUWeight=idle` makes), each still in a
    /// session of its own [default: the bench's cgroup]
    #[arg(long, value_name = "DIR")]
    pub tails_cgroup: Option<PathBuf>,
    /// Measure nothing: pool the rounds of these `bench --json` outputs, ratio by ratio (each
    /// file's median, the pooled one, their intervals at 95 % and what they settle)
    #[arg(long, value_name = "OUT.json", num_args = 1.., conflicts_with_all = ["json", "only"])]
    pub pool: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// Archive days at least this old (Nd); today is never archived
    #[arg(long, default_value = "7d", value_parser = parse_days)]
    pub older_than: u32,
    /// Archive form: parquet (columnar, queried in place, readable by DuckDB, Spark, Polars)
    /// or sqlite-zst (the day file compressed whole)
    #[arg(long, value_enum, default_value_t)]
    pub format: tickrec::store::archive::ArchiveFormat,
    /// zstd level (1-22) of every column, or of the whole .db.zst [default: Parquet 19, and 9
    /// for its three time columns; .db.zst 9]
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=22))]
    pub level: Option<i32>,
    /// Say what would be archived (or deleted), change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Retention: delete days (plain or archived) older than this (Nd). Off unless given
    #[arg(long, value_parser = parse_days)]
    pub delete_older_than: Option<u32>,
    /// Confirm deletions without asking
    #[arg(long)]
    pub yes: bool,
}

/// `A,B` as its names in order, `all` as `None`; nothing named is an error.
fn listed_or_all(list: &str) -> anyhow::Result<Option<Vec<String>>> {
    if list.trim() == "all" {
        return Ok(None);
    }
    let named: Vec<String> = list
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    anyhow::ensure!(!named.is_empty(), "name some, or all");
    Ok(Some(named))
}

/// 0, 3, 6 or 9 fractional digits.
fn parse_precision(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(d @ (0 | 3 | 6 | 9)) => Ok(d),
        _ => Err(format!(
            "expected 0, 3, 6 or 9 fractional digits, got {s:?}"
        )),
    }
}

/// `7d` or `7` → 7 days.
fn parse_days(s: &str) -> Result<u32, String> {
    let n = s.strip_suffix('d').unwrap_or(s);
    n.parse::<u32>()
        .map_err(|_| format!("expected a number of days like 7d, got {s:?}"))
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Folder of legacy JSON files (any depth; *.json and *.jsonl)
    #[arg(long, value_name = "DIR")]
    pub input_dir: PathBuf,
    /// Base folder of the daily files [default: --db, TICK_DB_PATH, config]
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Ticks per transaction
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// One line per file, and the per-day table
    #[arg(long)]
    pub verbose: bool,
    /// Read and check everything, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// After a verified migration, pack the input into INPUT_DIR.tar.zst and remove the originals
    #[arg(long)]
    pub archive_json: bool,
    /// zstd level of that archive
    #[arg(long, default_value_t = 9)]
    pub level: i32,
    /// Archive the JSON tree even when records were rejected or paths skipped (named in the summary)
    #[arg(long)]
    pub allow_rejects: bool,
    /// Longest record or line read, KiB; longer ones are rejected without being held in memory
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1048576))]
    pub max_record_kib: u64,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Folder of legacy JSON files
    #[arg(long, value_name = "DIR")]
    pub json_dir: PathBuf,
    /// Compare every symbol-day of the store, not only those in the JSON tree
    #[arg(long)]
    pub all: bool,
    /// Longest record or line read, KiB
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1048576))]
    pub max_record_kib: u64,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How long to record
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// How many symbols (majors first)
    #[arg(long, default_value_t = 128)]
    pub symbols: usize,
    /// Market-data messages per second from the simulator; 0 = as fast as possible
    #[arg(long, default_value_t = 20_000)]
    pub rate: u64,
    /// Random seed of the quote walks
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// Serve live subscribers on this HOST:PORT [default: config `[publish] listen`, off]
    #[arg(long, value_name = "HOST:PORT")]
    pub publish: Option<String>,
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// One session without a config file: the acceptor's HOST:PORT
    #[arg(long, value_name = "HOST:PORT", requires_all = ["sender_comp_id", "target_comp_id", "symbols"])]
    pub connect: Option<String>,
    #[arg(long, value_name = "ID")]
    pub sender_comp_id: Option<String>,
    #[arg(long, value_name = "ID")]
    pub target_comp_id: Option<String>,
    /// Comma-separated symbols to subscribe
    #[arg(long, value_delimiter = ',')]
    pub symbols: Option<Vec<String>>,
    /// Heartbeat interval, seconds
    #[arg(long, default_value_t = 30)]
    pub heartbeat: u32,
    /// Source name on the ticks (default: the TargetCompID)
    #[arg(long)]
    pub source: Option<String>,
    /// Environment variable holding the Logon password
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
    /// Send ResetSeqNumFlag=Y on Logon (both sides restart at 1; no resend of older messages)
    #[arg(long)]
    pub reset_on_logon: bool,
    /// Seconds between status lines in the log
    #[arg(long, default_value_t = 10)]
    pub report_every: u64,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// Serve live subscribers on this HOST:PORT [default: config `[publish] listen`, off]
    #[arg(long, value_name = "HOST:PORT")]
    pub publish: Option<String>,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    #[arg(long)]
    pub port: u16,
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// How many symbols (majors first)
    #[arg(long, default_value_t = 8)]
    pub symbols: usize,
    /// Market-data messages per second; 0 = as fast as possible
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Stop after this many seconds (default: until SIGINT/SIGTERM)
    #[arg(long)]
    pub seconds: Option<f64>,
    #[arg(long, default_value = "SIM")]
    pub sender_comp_id: String,
    /// Accept only the initiator with this SenderCompID (default: every initiator, one session each)
    #[arg(long, value_name = "ID")]
    pub target_comp_id: Option<String>,
    /// Reset both sequence numbers to 1 on every Logon (ResetSeqNumFlag 141=Y)
    #[arg(long)]
    pub reset_on_logon: bool,
    /// Fractional digits of the SendingTime written: 0, 3 (FIX 4.4), 6 or 9
    #[arg(long, default_value_t = 3, value_parser = parse_precision)]
    pub timestamp_precision: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the ticks each sent message implies, as JSON Lines
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Test hook: cut the connection after N market-data messages
    #[arg(long, value_name = "N", hide = true)]
    pub drop_after: Option<u64>,
    /// Test hook: messages produced while cut, delivered only by resend
    #[arg(long, value_name = "N", hide = true, default_value_t = 0)]
    pub outage_messages: u64,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[arg(long, value_enum, default_value_t = InputFormat::Jsonl)]
    pub format: InputFormat,
    /// Input file; - or nothing for standard input
    #[arg(default_value = "-")]
    pub file: String,
    /// Name of the input stream, so that a re-run resumes after what was committed (needed
    /// for standard input; a file is known by its path and first line without it)
    #[arg(long, value_name = "NAME")]
    pub source_id: Option<String>,
    /// Ingest every line again, even those an earlier run committed (stores them twice)
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

#[derive(Debug, Subcommand)]
pub enum QueryCommand {
    /// The most recently recorded ticks of one or more symbols, newest first
    Recent {
        #[command(flatten)]
        symbols: SymbolsArg,
        #[arg(short = 'n', default_value_t = 100)]
        n: usize,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Ticks of one or more symbols with FROM <= ts_event < TO, in time order
    Range {
        #[command(flatten)]
        symbols: SymbolsArg,
        /// RFC 3339 time or a date (its midnight UTC)
        #[arg(long)]
        from: String,
        /// RFC 3339 time or a date (its midnight UTC); exclusive
        #[arg(long)]
        to: String,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Open, high, low, close, tick count and spread range of a symbol per interval
    Bars {
        symbol: String,
        /// 1s, 1m, 5m, 1h, 1d, … (a whole number of s, m, h or d that divides a day)
        #[arg(long, value_parser = parse_interval)]
        interval: tickrec::bars::Interval,
        /// RFC 3339 time or a date (its midnight UTC)
        #[arg(long)]
        from: String,
        /// RFC 3339 time or a date (its midnight UTC); exclusive
        #[arg(long)]
        to: String,
        /// The price the bars follow
        #[arg(long, value_enum, default_value_t = tickrec::bars::PriceSide::Mid)]
        price: tickrec::bars::PriceSide,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
}

fn parse_interval(s: &str) -> Result<tickrec::bars::Interval, String> {
    tickrec::bars::Interval::parse(s)
}

/// The symbols of a query: as the argument or as `--symbols`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct SymbolsArg {
    /// A symbol, or several separated by commas (case-sensitive), or `all`
    symbol: Option<String>,
    /// Same as the argument: A,B,… or all
    #[arg(long = "symbols", value_name = "A,B|all")]
    symbols: Option<String>,
}

impl SymbolsArg {
    fn parse(&self) -> anyhow::Result<tickrec::store::reader::Symbols> {
        let text = self
            .symbol
            .as_deref()
            .or(self.symbols.as_deref())
            .unwrap_or("");
        tickrec::store::reader::Symbols::parse(text).map_err(|e| anyhow::anyhow!("symbols: {e}"))
    }
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// RFC 3339 time or a date (its midnight UTC)
    #[arg(long)]
    pub from: String,
    /// RFC 3339 time or a date (its midnight UTC); exclusive
    #[arg(long)]
    pub to: String,
    /// A,B,… or all
    #[arg(long, default_value = "all", value_name = "A,B|all")]
    pub symbols: String,
    #[arg(long, value_enum, default_value_t = tickrec::export::ExportFormat::Parquet)]
    pub format: tickrec::export::ExportFormat,
    /// The tree's root folder
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// Write partitions that exist already (otherwise they are skipped: a resumed export)
    #[arg(long)]
    pub overwrite: bool,
    /// Export bars of this interval (1s, 1m, 5m, 1h, 1d, …) instead of ticks: symbol, start,
    /// open, high, low, close, ticks, spread_min, spread_max
    #[arg(long, value_parser = parse_interval, value_name = "INTERVAL")]
    pub bars: Option<tickrec::bars::Interval>,
    /// The price the bars follow
    #[arg(long, value_enum, default_value_t = tickrec::bars::PriceSide::Mid, requires = "bars")]
    pub price: tickrec::bars::PriceSide,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("start").args(["from", "from_time", "from_now"])))]
pub struct TailArgs {
    /// Symbols: A,B or all
    #[arg(long, default_value = "all", value_name = "A,B|all")]
    pub symbols: String,
    /// Sources (the liquidity providers' names, as in the rows' `source`): A,B or all
    #[arg(long, default_value = "all", value_name = "A,B|all")]
    pub sources: String,
    /// Resume after this cursor (DAY:SEQ, or the DAY:SEQ,DAY:SEQ a tail printed)
    #[arg(long, value_name = "DAY:SEQ")]
    pub from: Option<String>,
    /// Start at the first tick recorded with an event time at or after this (RFC 3339 or a date)
    #[arg(long, value_name = "TIME")]
    pub from_time: Option<String>,
    /// Start after everything committed now
    #[arg(long)]
    pub from_now: bool,
    /// Keep reading as ticks are committed, until SIGINT/SIGTERM
    #[arg(long)]
    pub follow: bool,
    /// Read the starting cursor from this file when it exists (unless --from… is given), and
    /// write the cursor reached to it after every batch (atomically; with --out at most every
    /// 100 ms, and at the end)
    #[arg(long, value_name = "FILE")]
    pub cursor_file: Option<std::path::PathBuf>,
    /// Append the rows to this file instead of standard output, kept in step with
    /// --cursor-file: on a restart, what was written after the cursor was last saved is cut
    /// off and written again, so the file holds every tick once even after a kill -9 or a
    /// power loss
    #[arg(long, value_name = "FILE", requires = "cursor_file")]
    pub out: Option<std::path::PathBuf>,
    /// How rows are printed, as they come (so not as a table, which is aligned only once
    /// it is complete)
    #[arg(long, value_enum, default_value_t = StreamFormat::Jsonl)]
    pub format: StreamFormat,
    /// CPU priority: `idle` (the default) runs under Linux's SCHED_IDLE, in a session group at
    /// nice 19 of its own unless a writer of the store is in its session (from a shell it runs
    /// itself in a child for that), so that it takes little CPU the recorder wants; `normal`
    /// keeps the priority and group the tail was started with (a consumer whose latency matters
    /// more than the recorder's headroom)
    #[arg(long, value_enum, default_value_t = TailPriority::Idle)]
    pub priority: TailPriority,
    /// Stop after this many ticks (with --follow, once they have been committed); the cursor
    /// is left on the last of them
    #[arg(long, value_name = "N")]
    pub max_ticks: Option<u64>,
}

/// What `tail` and `subscribe` print: the formats that can be written row by row (a table is
/// aligned only once it is complete).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StreamFormat {
    /// CSV with a header row of the `ticks_v` column names.
    Csv,
    /// One JSON object per line, keys as the `ticks_v` columns.
    Jsonl,
}

impl From<StreamFormat> for OutputFormat {
    fn from(f: StreamFormat) -> OutputFormat {
        match f {
            StreamFormat::Csv => OutputFormat::Csv,
            StreamFormat::Jsonl => OutputFormat::Jsonl,
        }
    }
}

/// See [`TailArgs::priority`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TailPriority {
    Idle,
    Normal,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// Runs the parsed command line. Errors are reported by the caller, once.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let flags = FlagOverrides {
        db_path: cli.db.clone(),
    };
    let opts = Options::load(cli.config.as_deref(), &|k| std::env::var(k).ok(), &flags)?;
    init_logging(&opts.log_level, cli.log_format.unwrap_or(opts.log_format));
    match db_use(&cli.command) {
        DbUse::Write => tickrec::store::layout::check_base(&opts.db_path, true)?,
        DbUse::Read => tickrec::store::layout::check_base(&opts.db_path, false)?,
        DbUse::None => {}
    }
    match cli.command {
        Command::Demo(a) => record::run_demo(&opts, a),
        Command::Record(a) => record::run_record(&opts, a),
        Command::Simulate(a) => record::run_simulate(a),
        Command::Ingest(a) => record::run_ingest(&opts, a),
        Command::Query(q) => read::run_query(&opts, q),
        Command::Export(a) => read::run_export(&opts, a),
        Command::Stats(a) => {
            let report = service::open_store(&opts).day_stats()?;
            // Days it could not read are named below; "(no day files)" would deny they exist.
            if !report.days.is_empty() || report.broken.is_empty() || a.json {
                query::print_day_stats(&report.days, a.json, std::io::stdout().lock())?;
            }
            Ok(report_broken(&report.broken))
        }
        Command::Migrate(a) => migrate::run_migrate(&opts, a),
        Command::Verify(a) => migrate::run_verify(&opts, a),
        Command::Tail(a) => read::run_tail(&opts, a),
        Command::Subscribe(a) => subscribe::run_subscribe(a),
        Command::Archive(a) => store::run_archive(&opts, a),
        Command::Unarchive { day } => {
            let day = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d")
                .with_context(|| format!("not a day (YYYY-MM-DD): {day:?}"))?;
            let s = tickrec::store::archive::restore_day(&opts.db_path, day, &opts.writer.sqlite)?;
            println!("restored {day}: {} ticks", s.ticks);
            Ok(ExitCode::SUCCESS)
        }
        Command::Seal { older_than } => store::run_seal(&opts, older_than),
        Command::Health { url } => Ok(probe(&url, &mut std::io::stdout().lock())),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "tickrec",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(a) if !a.pool.is_empty() => {
            crate::bench::pool::run(&a.pool, &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(a) => {
            if let Some(dir) = &a.tails_cgroup {
                // Before any stage: a cgroup the tails cannot join fails now, not minutes in.
                crate::bench::tails::cgroup_procs(dir)?;
            }
            let scratch = tempfile::Builder::new().prefix("tickrec-bench").tempdir()?;
            let mut log = std::io::stderr();
            let mut r = crate::bench::run(
                &opts,
                crate::bench::BenchOptions {
                    ticks: a.ticks.max(1000),
                    symbols: a.symbols.max(1),
                    e2e_seconds: a.e2e_seconds,
                    publish_rate: a.publish_rate.filter(|&r| r > 0),
                    publish_symbols: a.publish_symbols.map(|n| n as usize),
                    publish_conflate_ms: a.publish_conflate_ms,
                    publish_screens: a.publish_screens as usize,
                    rounds: a.rounds.map(|n| n as usize),
                    only: a.only,
                    config: cli.config.clone(),
                    tails_cgroup: a.tails_cgroup.clone(),
                },
                scratch.path(),
                &mut log,
            )?;
            r.settle();
            if a.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("{r}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Upgrade => store::run_upgrade(&opts),
        Command::Check { repair } => store::run_check(&opts, repair),
    }
}

/// How a command uses the base folder of the day files (checked before any work starts).
enum DbUse {
    Write,
    Read,
    None,
}

fn db_use(c: &Command) -> DbUse {
    match c {
        Command::Demo(_)
        | Command::Record(_)
        | Command::Ingest(_)
        | Command::Archive(_)
        | Command::Unarchive { .. }
        | Command::Seal { .. }
        | Command::Upgrade
        | Command::Check { repair: true } => DbUse::Write,
        // migrate checks its own --output-dir.
        Command::Migrate(_)
        | Command::Simulate(_)
        | Command::Bench(_)
        | Command::Health { .. }
        | Command::Subscribe(_)
        | Command::Completions { .. } => DbUse::None,
        Command::Query(_)
        | Command::Tail(_)
        | Command::Stats(_)
        | Command::Export(_)
        | Command::Verify(_)
        | Command::Check { .. } => DbUse::Read,
    }
}

/// Log lines go to stderr: text (colour only on a terminal) or one JSON object per line with
/// stable field names (`timestamp`, `level`, `fields.message`, the event's own fields, `span`).
fn init_logging(level: &str, format: tickrec::config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        tickrec::config::LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        tickrec::config::LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

/// `opts` with `--metrics-listen` applied over `[metrics] listen`.
fn with_metrics(opts: &Options, m: &MetricsArgs) -> Options {
    let mut o = opts.clone();
    if let Some(addr) = &m.metrics_listen {
        o.metrics_listen = Some(addr.clone());
    }
    o
}

fn signal_latch() -> anyhow::Result<Shutdown> {
    let shutdown = Shutdown::new();
    shutdown
        .install_signal_handler()
        .context("installing the SIGINT/SIGTERM handler")?;
    Ok(shutdown)
}

/// True when every accepted tick is in the store (none set aside, none lost).
fn all_stored(s: &tickrec::pipeline::StatsSnapshot) -> bool {
    s.ticks_stored == s.ticks_accepted
}

/// The loss-accounting line every writing command prints at exit.
fn write_accounting(
    out: &mut impl Write,
    s: &tickrec::pipeline::StatsSnapshot,
) -> std::io::Result<()> {
    let unaccounted = s
        .ticks_accepted
        .saturating_sub(s.ticks_stored + s.dead_lettered + s.ticks_spilled + s.ticks_lost);
    writeln!(
        out,
        "accounted: accepted {} = stored {} + dead-lettered {} + spilled {} + lost {}{}",
        s.ticks_accepted,
        s.ticks_stored,
        s.dead_lettered,
        s.ticks_spilled,
        s.ticks_lost,
        if unaccounted > 0 {
            format!(" (and {unaccounted} UNACCOUNTED: a bug, please report)")
        } else {
            String::new()
        }
    )
}

/// Names each day that had to be skipped on stderr; exit 1 when there was one.
fn report_broken(broken: &[tickrec::store::reader::BrokenDay]) -> ExitCode {
    for b in broken {
        eprintln!("tickrec: skipped {b}");
    }
    let damaged = broken.iter().filter(|b| b.damaged).count();
    if damaged > 0 {
        eprintln!(
            "tickrec: {damaged} day file(s) damaged; `tickrec check` tells more, `check --repair` salvages"
        );
    }
    if damaged < broken.len() {
        eprintln!(
            "tickrec: {} day file(s) could not be read here and now, nothing is wrong with them \
             (each line above says why: a full disk, a permission, a version to upgrade)",
            broken.len() - damaged
        );
    }
    if broken.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `--from` and `--to` of a query or an export: times or dates, `from` before `to`.
fn time_window(from: &str, to: &str) -> anyhow::Result<(Timestamp, Timestamp)> {
    let from = Timestamp::parse(from).context("--from")?;
    let to = Timestamp::parse(to).context("--to")?;
    anyhow::ensure!(from < to, "--from must be before --to");
    Ok((from, to))
}

/// Asks on the terminal; false without one (never assume yes).
fn confirm(question: &str) -> anyhow::Result<bool> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// `tickrec health --url URL`: prints the health body; exit 0 when healthy, 1 when the
/// process says it is not, 2 when it cannot be asked (a shell probe's three answers).
fn probe(url: &str, out: &mut dyn std::io::Write) -> std::process::ExitCode {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(5)))
        .build()
        .into();
    let response = match agent.get(url).call() {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(out, "unreachable: {url}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .read_to_string()
        .unwrap_or_else(|e| format!("(unreadable body: {e})"));
    let _ = writeln!(out, "{body}");
    match status {
        200 => std::process::ExitCode::SUCCESS,
        503 => std::process::ExitCode::from(1),
        other => {
            let _ = writeln!(out, "unexpected HTTP status {other} from {url}");
            std::process::ExitCode::from(2)
        }
    }
}
