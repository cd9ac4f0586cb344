//! Command-line interface: argument types (clap) and one function per command.
//!
//! Raw flags are merged with the config file and environment by `config::Options::load`
//! exactly once, at the top of [`run`]; commands only see validated options.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
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
    /// Add the per-symbol query indexes to closed day files at least this old (schema/seal.sql)
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
    /// Print one JSON object instead of the table
    #[arg(long)]
    pub json: bool,
    /// Only one stage: archive (e) or tails (the writer with four tails following)
    #[arg(long, value_enum)]
    pub only: Option<crate::bench::Stage>,
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
    /// zstd compression level (1-22)
    #[arg(long, default_value_t = 9, value_parser = clap::value_parser!(i32).range(1..=22))]
    pub level: i32,
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
    /// write the cursor reached to it after every batch (atomically)
    #[arg(long, value_name = "FILE")]
    pub cursor_file: Option<std::path::PathBuf>,
    /// csv or jsonl (a table cannot be streamed)
    #[arg(long, value_enum, default_value_t = OutputFormat::Jsonl)]
    pub format: OutputFormat,
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
        Command::Demo(a) => run_demo(&opts, a),
        Command::Record(a) => run_record(&opts, a),
        Command::Simulate(a) => run_simulate(a),
        Command::Ingest(a) => run_ingest(&opts, a),
        Command::Query(q) => run_query(&opts, q),
        Command::Export(a) => run_export(&opts, a),
        Command::Stats(a) => {
            let report = service::open_store(&opts).day_stats()?;
            query::print_day_stats(&report.days, a.json, std::io::stdout().lock())?;
            Ok(report_broken(&report.broken))
        }
        Command::Migrate(a) => run_migrate(&opts, a),
        Command::Verify(a) => run_verify(&opts, a),
        Command::Tail(a) => run_tail(&opts, a),
        Command::Archive(a) => run_archive(&opts, a),
        Command::Unarchive { day } => {
            let day = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d")
                .with_context(|| format!("not a day (YYYY-MM-DD): {day:?}"))?;
            let s = tickrec::store::archive::restore_day(&opts.db_path, day, &opts.writer.sqlite)?;
            println!("restored {day}: {} ticks", s.ticks);
            Ok(ExitCode::SUCCESS)
        }
        Command::Seal { older_than } => run_seal(&opts, older_than),
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
        Command::Bench(a) => {
            let scratch = tempfile::Builder::new().prefix("tickrec-bench").tempdir()?;
            let mut log = std::io::stderr();
            let r = crate::bench::run(
                &opts,
                crate::bench::BenchOptions {
                    ticks: a.ticks.max(1000),
                    symbols: a.symbols.max(1),
                    e2e_seconds: a.e2e_seconds,
                    only: a.only,
                },
                scratch.path(),
                &mut log,
            )?;
            if a.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("{r}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Upgrade => run_upgrade(&opts),
        Command::Check { repair } => run_check(&opts, repair),
    }
}

fn run_check(opts: &Options, repair: bool) -> anyhow::Result<ExitCode> {
    use tickrec::store::check;
    let days = tickrec::store::layout::list_days(&opts.db_path)
        .with_context(|| format!("listing {}", opts.db_path.display()))?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut out = std::io::stdout().lock();
    let (mut broken, mut unresolved) = (0, 0);
    for d in &days {
        let c = check::check_day(d, &opts.writer.sqlite);
        let form = if d.archived { " (archive)" } else { "" };
        if c.ok() {
            writeln!(out, "{}: ok{form}, {} ticks", d.day, c.ticks.unwrap_or(0))?;
            continue;
        }
        broken += 1;
        writeln!(
            out,
            "{}: BROKEN{form}: {} ({})",
            d.day,
            c.problems.join("; "),
            d.path.display()
        )?;
        if !repair {
            unresolved += 1;
            continue;
        }
        match check::repair_day(&opts.db_path, d, &opts.writer.sqlite, &stamp) {
            Ok(r) if r.salvaged == 0 => {
                unresolved += 1;
                writeln!(
                    out,
                    "  moved to {}; nothing in it could be read back as ticks, so no day file was made",
                    r.moved_to.display()
                )?;
            }
            Ok(r) => {
                let claimed = r.claimed.map_or("?".into(), |c| c.to_string());
                writeln!(
                    out,
                    "  moved to {}; salvaged {} of {claimed} ticks into a fresh day file; session and import marks {}",
                    r.moved_to.display(),
                    r.salvaged,
                    if r.marks_kept { "kept" } else { "dropped (ticks were lost: re-feed the day to fill it)" }
                )?;
                if !r.marks_kept {
                    unresolved += 1;
                }
            }
            Err(e) => {
                unresolved += 1;
                writeln!(out, "  not repaired: {e}")?;
            }
        }
    }
    writeln!(
        out,
        "check: {} days, {broken} broken{}",
        days.len(),
        if repair {
            format!(", {unresolved} not fully recovered")
        } else {
            String::new()
        }
    )?;
    Ok(if unresolved > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
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

fn run_demo(opts: &Options, a: DemoArgs) -> anyhow::Result<ExitCode> {
    let shutdown = signal_latch()?;
    let opts = &with_metrics(opts, &a.metrics);
    demo::run(
        opts,
        DemoOptions {
            seconds: a.seconds,
            symbols: a.symbols,
            rate: (a.rate > 0).then_some(a.rate),
            seed: a.seed,
        },
        &shutdown,
        std::io::stdout().lock(),
    )?;
    Ok(ExitCode::SUCCESS)
}

fn run_record(opts: &Options, a: RecordArgs) -> anyhow::Result<ExitCode> {
    let shutdown = signal_latch()?;
    let mut sessions = opts.fix_sessions.clone();
    if let Some(connect) = a.connect {
        let target = a.target_comp_id.unwrap_or_default();
        let password = match &a.password_env {
            Some(var) => Some(std::env::var(var).with_context(|| format!("--password-env {var}"))?),
            None => None,
        };
        sessions = vec![tickrec::fix::gateway::GatewayOptions {
            connect,
            source: a.source.unwrap_or_else(|| target.clone()),
            session: tickrec::fix::session::SessionConfig {
                heartbeat_secs: a.heartbeat.clamp(1, 3600),
                password,
                reset_on_logon: a.reset_on_logon,
                validation: tickrec::fix::session::Validation::Session,
                ..tickrec::fix::session::SessionConfig::new(
                    &a.sender_comp_id.unwrap_or_default(),
                    &target,
                )
            },
            symbols: a.symbols.unwrap_or_default(),
            reconnect_interval: Duration::from_secs(1),
            max_reconnect_interval: Duration::from_secs(30),
            db_path: opts.db_path.clone(),
        }];
    }
    anyhow::ensure!(
        !sessions.is_empty(),
        "no FIX session: give --connect/--sender-comp-id/--target-comp-id/--symbols, or [[fix.sessions]] in --config"
    );
    let mut opts = with_metrics(opts, &a.metrics);
    if let Some(addr) = &a.publish {
        anyhow::ensure!(
            addr.parse::<std::net::SocketAddr>().is_ok(),
            "--publish: must be host:port with an IP address, got {addr:?}"
        );
        opts.publish_listen = Some(addr.clone());
    }
    let opts = &opts;
    let report = tickrec::record::run(
        opts,
        sessions,
        &shutdown,
        Duration::from_secs(a.report_every.max(1)),
    )?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", report.stats)?;
    for s in &report.sessions {
        writeln!(out, "{s}")?;
    }
    write_accounting(&mut out, &report.stats)?;
    let complete = all_stored(&report.stats);
    if !complete {
        for (source, next) in &report.resume {
            match next {
                Some(n) => writeln!(
                    out,
                    "session {source}: committed through inbound MsgSeqNum {}; the next start requests {n} onwards from the counterparty (re-ingest a spill file only for what it cannot resend)",
                    n.saturating_sub(1)
                )?,
                None => writeln!(
                    out,
                    "session {source}: nothing committed; the next start requests from the counterparty's first message"
                )?,
            }
        }
    }
    let never: Vec<&str> = report
        .sessions
        .iter()
        .filter(|s| s.logons == 0)
        .map(|s| s.name.as_str())
        .collect();
    if !never.is_empty() {
        eprintln!(
            "tickrec: session(s) that never logged on: {}",
            never.join(", ")
        );
    }
    Ok(if complete && never.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run_simulate(a: SimulateArgs) -> anyhow::Result<ExitCode> {
    let shutdown = signal_latch()?;
    let listener = std::net::TcpListener::bind((a.bind.as_str(), a.port))
        .with_context(|| format!("listening on {}:{}", a.bind, a.port))?;
    tracing::info!(addr = %listener.local_addr()?, "FIX simulator listening");
    let report = tickrec::fix::sim::run(
        listener,
        tickrec::fix::sim::SimOptions {
            symbols: a.symbols.max(1),
            rate: (a.rate > 0).then_some(a.rate),
            duration: a.seconds.map(|s| Duration::from_secs_f64(s.max(0.0))),
            sender_comp_id: a.sender_comp_id,
            target_comp_id: a.target_comp_id.unwrap_or_default(),
            reset_on_logon: a.reset_on_logon,
            time_precision: tickrec::fix::encode::TimePrecision::from_digits(a.timestamp_precision)
                .unwrap_or_default(),
            seed: a.seed,
            journal: a.journal,
            drop_after: a.drop_after,
            outage_messages: a.outage_messages,
            ..tickrec::fix::sim::SimOptions::default()
        },
        shutdown,
    )?;
    println!(
        "connections {} market-data messages {} ticks implied {} rejects {}",
        report.connections, report.md_messages, report.ticks_implied, report.rejects_sent
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads on its own thread so that a signal is honoured even while the input is idle: the main
/// thread waits for "input finished" or "signal", then shuts the recorder down (which drains).
fn run_ingest(opts: &Options, a: IngestArgs) -> anyhow::Result<ExitCode> {
    let shutdown = signal_latch()?;
    let opts = &with_metrics(opts, &a.metrics);
    let recorder = std::sync::Arc::new(service::start_recorder(opts)?);
    let _metrics = match &opts.metrics_listen {
        Some(addr) => {
            let r = recorder.clone();
            Some(tickrec::metrics::Server::start(
                addr,
                std::sync::Arc::new(move || tickrec::metrics::Scrape::of_recorder("ingest", &r)),
            )?)
        }
        None => None,
    };
    let default_source = recorder.names().source(&opts.broker_id)?;
    let file = (a.file != "-").then(|| std::path::Path::new(&a.file));
    let origin = match tickrec::ingest::origin_name(file, a.source_id.as_deref())
        .with_context(|| format!("reading {}", a.file))?
    {
        Some(name) => {
            let committed = if a.force {
                0
            } else {
                service::open_store(opts)
                    .next_position(&name)?
                    .map_or(0, |next| next.saturating_sub(1))
            };
            if committed > 0 {
                tracing::info!(origin = %name, committed, "resuming after the lines already committed");
            }
            Some(tickrec::ingest::Origin {
                id: recorder.names().origin(&name)?,
                committed_through: committed,
            })
        }
        None => None,
    };
    let input: Box<dyn BufRead + Send> = if a.file == "-" {
        Box::new(std::io::BufReader::with_capacity(1 << 16, std::io::stdin()))
    } else {
        let f = std::fs::File::open(&a.file).with_context(|| format!("opening {}", a.file))?;
        Box::new(std::io::BufReader::with_capacity(1 << 16, f))
    };
    // The reader reports on a channel of its own, so that "input finished" and "signal" are
    // never confused: a signal only sets the stop flag the reader checks between records.
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    {
        let recorder = recorder.clone();
        let shutdown = shutdown.clone();
        let name = a.file.clone();
        let format = a.format;
        std::thread::Builder::new()
            .name("tickrec-ingest".into())
            .spawn(move || {
                let feeder = Feeder {
                    recorder: &recorder,
                    clock: &SystemClock,
                    default_source,
                    stop: shutdown.flag(),
                    origin,
                };
                let mut reject = |r: tickrec::ingest::Rejection| eprintln!("{name}: {r}");
                let _ = done_tx.send(feeder.run(format, input, &mut reject));
            })?;
    }
    let finished = loop {
        match done_rx.recv_timeout(Duration::from_millis(100)) {
            Ok(result) => break Some(result),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                anyhow::bail!("the ingest thread panicked")
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) if shutdown.is_requested() => {
                // Signalled: the reader stops at its next record; if it is blocked on idle
                // input it never gets there, and what it accepted is drained all the same.
                break done_rx.recv_timeout(Duration::from_millis(500)).ok();
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
        }
    };
    let stats = recorder.shutdown();
    let report = finished.transpose()?;
    let mut out = std::io::stdout().lock();
    if let Some(r) = &report {
        writeln!(
            out,
            "records {} accepted {} rejected {} throttled {} dropped {} already-stored {}{}",
            r.records,
            r.accepted,
            r.rejected,
            r.throttled,
            r.dropped,
            r.already,
            if r.interrupted { " (interrupted)" } else { "" }
        )?;
    } else {
        writeln!(out, "interrupted while waiting for input")?;
    }
    writeln!(out, "{stats}")?;
    write_accounting(&mut out, &stats)?;
    if stats.ticks_spilled > 0 && origin.is_some() {
        // The input itself is the better copy: its committed position is durable.
        writeln!(
            out,
            "re-run `tickrec ingest {}{}` once the store can write: it resumes after the committed lines and stores the spilled ones; do not also ingest the spill file",
            a.file,
            a.source_id.as_deref().map(|s| format!(" --source-id {s}")).unwrap_or_default()
        )?;
    }
    let rejected = report.map_or(0, |r| r.rejected);
    Ok(if rejected > 0 || !all_stored(&stats) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
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
    if broken.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "tickrec: {} day file(s) could not be read; `tickrec check` tells more, `check --repair` salvages",
            broken.len()
        );
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

fn run_query(opts: &Options, q: QueryCommand) -> anyhow::Result<ExitCode> {
    let store = service::open_store(opts);
    let out = std::io::stdout().lock();
    let read = match q {
        QueryCommand::Recent { symbols, n, format } => {
            query::recent(&store, &symbols.parse()?, n, format, out)?
        }
        QueryCommand::Range {
            symbols,
            from,
            to,
            format,
        } => {
            let (from, to) = time_window(&from, &to)?;
            query::range(&store, &symbols.parse()?, from, to, format, out)?
        }
        QueryCommand::Bars {
            symbol,
            interval,
            from,
            to,
            price,
            format,
        } => {
            let (from, to) = time_window(&from, &to)?;
            query::bars(&store, &symbol, interval, price, from, to, format, out)?
        }
    };
    if !read.unknown.is_empty() {
        eprintln!(
            "tickrec: no such symbol {} in {}",
            read.unknown.join(", "),
            query::describe_days(&read.days)
        );
        return Ok(ExitCode::from(1));
    }
    Ok(report_broken(&read.broken))
}

fn run_tail(opts: &Options, a: TailArgs) -> anyhow::Result<ExitCode> {
    use tickrec::tail::{Cursor, Start, Tail};
    anyhow::ensure!(
        a.format != OutputFormat::Table,
        "--format: tail prints csv or jsonl (a table is aligned only once it is complete)"
    );
    let symbols = tickrec::store::reader::Symbols::parse(&a.symbols)
        .map_err(|e| anyhow::anyhow!("--symbols: {e}"))?;
    let saved = match &a.cursor_file {
        Some(f) if f.exists() => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("--cursor-file {}", f.display()))?
                .parse::<Cursor>()
                .map_err(|e| anyhow::anyhow!("--cursor-file {}: {e}", f.display()))?,
        ),
        _ => None,
    };
    let start = if let Some(c) = &a.from {
        Start::After(c.parse().map_err(|e| anyhow::anyhow!("--from: {e}"))?)
    } else if let Some(t) = &a.from_time {
        Start::Time(Timestamp::parse(t).context("--from-time")?)
    } else if a.from_now {
        Start::Now
    } else if let Some(c) = saved {
        Start::After(c)
    } else {
        Start::NewestDay
    };
    let store = service::open_store(opts);
    let mut tail = Tail::new(store, symbols, start)?;
    let stop = tickrec::shutdown::Shutdown::new();
    if a.follow {
        stop.install_signal_handler()?;
    }
    let stdout = std::io::stdout();
    let out = std::cell::RefCell::new(tickrec::format::row_writer(
        a.format,
        std::io::BufWriter::new(stdout.lock()),
    ));
    let cursor_file = a.cursor_file.clone();
    let mut rows = |r: &tickrec::tick::TickRow| out.borrow_mut().write_row(r);
    // After each batch: the rows flushed first, then the cursor saved.
    let mut batch = |c: &Cursor| -> std::io::Result<()> {
        out.borrow_mut().finish()?;
        if let Some(f) = &cursor_file {
            tickrec::fsutil::write_atomic(f, |file| {
                use std::io::Write;
                writeln!(file, "{c}")
            })?;
        }
        Ok(())
    };
    let result = if a.follow {
        tail.follow(&stop, &mut rows, &mut batch)
    } else {
        tail.poll(&mut rows, &mut batch)
    };
    let flushed = out.borrow_mut().finish();
    let passed = match result {
        Ok(n) => n,
        // The consumer went away (`| head`): not an error of ours.
        Err(tickrec::store::reader::ReadError::Output(e))
            if e.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            return Ok(ExitCode::SUCCESS)
        }
        Err(e) => return Err(e.into()),
    };
    flushed?;
    eprintln!("tail: {passed} ticks; cursor {}", tail.cursor());
    Ok(ExitCode::SUCCESS)
}

fn run_export(opts: &Options, a: ExportArgs) -> anyhow::Result<ExitCode> {
    let store = service::open_store(opts);
    let (from, to) = time_window(&a.from, &a.to)?;
    let symbols = tickrec::store::reader::Symbols::parse(&a.symbols)
        .map_err(|e| anyhow::anyhow!("--symbols: {e}"))?;
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} days {msg} (ETA {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = tickrec::export::run(
        &store,
        &tickrec::export::ExportOptions {
            from,
            to,
            symbols,
            format: a.format,
            out: a.out.clone(),
            overwrite: a.overwrite,
            bars: a.bars.map(|i| (i, a.price)),
        },
        &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    println!(
        "exported {} {} into {} file(s), {} bytes, under {}; {} partition(s) already there, skipped",
        report.rows,
        if a.bars.is_some() { "bars" } else { "rows" },
        report.written.len(),
        report.bytes,
        a.out.display(),
        report.skipped.len()
    );
    if !report.unknown.is_empty() {
        eprintln!(
            "tickrec: no such symbol {} in the exported days",
            report.unknown.join(", ")
        );
        return Ok(ExitCode::from(1));
    }
    Ok(report_broken(&report.broken))
}

/// Progress and rejected records of a migration, on stderr.
struct CliProgress {
    bar: indicatif::ProgressBar,
    verbose: bool,
    started: std::time::Instant,
    /// What /metrics shows of the run.
    counts: std::sync::Arc<MigrateCounts>,
}

/// A migration's progress as /metrics shows it.
#[derive(Debug, Default)]
struct MigrateCounts {
    bytes_done: std::sync::atomic::AtomicU64,
    bytes_total: std::sync::atomic::AtomicU64,
    ticks: std::sync::atomic::AtomicU64,
    rejected: std::sync::atomic::AtomicU64,
    files: std::sync::atomic::AtomicU64,
}

impl MigrateCounts {
    fn scrape(&self) -> tickrec::metrics::Scrape {
        use std::sync::atomic::Ordering::Relaxed;
        let ticks = self.ticks.load(Relaxed);
        let stats = tickrec::pipeline::StatsSnapshot {
            ticks_received: ticks + self.rejected.load(Relaxed),
            ticks_accepted: ticks,
            ticks_stored: ticks,
            healthy: true,
            ..Default::default()
        };
        let mut s = tickrec::metrics::Scrape::new("migrate", stats);
        s.extra = vec![
            (
                "tickrec_migrate_input_read_bytes_total",
                "Input bytes processed.",
                true,
                self.bytes_done.load(Relaxed) as f64,
            ),
            (
                "tickrec_migrate_input_bytes",
                "Input bytes in all.",
                false,
                self.bytes_total.load(Relaxed) as f64,
            ),
            (
                "tickrec_migrate_ticks_imported_total",
                "Ticks imported (committed) so far.",
                true,
                ticks as f64,
            ),
            (
                "tickrec_migrate_records_rejected_total",
                "Records rejected (each named on stderr).",
                true,
                self.rejected.load(Relaxed) as f64,
            ),
            (
                "tickrec_migrate_files_done_total",
                "Input files finished.",
                true,
                self.files.load(Relaxed) as f64,
            ),
        ];
        s
    }
}

impl tickrec::migrate::Progress for CliProgress {
    fn reject(&mut self, file: &str, at: tickrec::legacy_json::Location, why: &str) {
        self.counts
            .rejected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.bar
            .suspend(|| eprintln!("{file}: line {} (byte {}): {why}", at.line, at.offset));
    }

    fn advance(&mut self, done: u64, total: u64, ticks: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.counts.bytes_done.store(done, Relaxed);
        self.counts.bytes_total.store(total, Relaxed);
        self.counts.ticks.store(ticks, Relaxed);
        self.bar.set_length(total);
        self.bar.set_position(done);
        let rate = ticks as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        self.bar
            .set_message(format!("{ticks} ticks, {rate:.0} ticks/s"));
    }

    fn file_done(&mut self, r: &tickrec::migrate::FileReport) {
        self.counts
            .files
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.verbose {
            self.bar.suspend(|| {
                if r.unchanged {
                    println!("{}: unchanged since its import, skipped", r.file);
                } else {
                    println!(
                        "{}: {} imported, {} already present, {} rejected",
                        r.file, r.imported, r.already, r.rejected
                    );
                }
            });
        }
    }
}

fn run_migrate(opts: &Options, a: MigrateArgs) -> anyhow::Result<ExitCode> {
    let output_dir = a.output_dir.clone().unwrap_or_else(|| opts.db_path.clone());
    anyhow::ensure!(a.batch_size > 0, "--batch-size must be at least 1");
    if !a.dry_run || output_dir.exists() {
        tickrec::store::layout::check_base(&output_dir, !a.dry_run)?;
    }
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {msg} (ETA {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let counts = std::sync::Arc::new(MigrateCounts::default());
    let opts = &with_metrics(opts, &a.metrics);
    let _metrics = match &opts.metrics_listen {
        Some(addr) => {
            let c = counts.clone();
            Some(tickrec::metrics::Server::start(
                addr,
                std::sync::Arc::new(move || c.scrape()),
            )?)
        }
        None => None,
    };
    let mut progress = CliProgress {
        bar,
        verbose: a.verbose,
        started: std::time::Instant::now(),
        counts,
    };
    let report = tickrec::migrate::run(
        &tickrec::migrate::MigrateOptions {
            input_dir: a.input_dir.clone(),
            output_dir: output_dir.clone(),
            batch_size: a.batch_size,
            dry_run: a.dry_run,
            default_source: opts.broker_id.clone(),
            writer: opts.writer.clone(),
            time_window: opts.pipeline.time_window,
            max_record_bytes: (a.max_record_kib * 1024) as usize,
        },
        &mut progress,
    )?;
    progress.bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    let unchanged = report.files.iter().filter(|f| f.unchanged).count();
    for (path, why) in &report.skipped {
        writeln!(out, "skipped {path}: {why}")?;
    }
    for f in &report.files {
        if let Some(why) = &f.refused {
            writeln!(out, "not imported {}: {why}", f.file)?;
        }
    }
    let imported = if a.dry_run {
        format!("would import {} ticks", report.imported())
    } else {
        format!("ticks imported {}", report.imported())
    };
    writeln!(
        out,
        "{}files {} ({} unchanged since their import, {} not imported), {imported}, already present {}, rejected {}, {} bytes in {:.2}s ({:.0} ticks/s)",
        if a.dry_run { "dry run: " } else { "" },
        report.files.len(),
        unchanged,
        report.not_imported(),
        report.already(),
        report.rejected(),
        report.bytes(),
        report.elapsed.as_secs_f64(),
        report.imported() as f64 / report.elapsed.as_secs_f64().max(1e-9),
    )?;
    for (day, n) in &report.per_day {
        writeln!(out, "  {day}: {n} ticks")?;
    }
    if let Some(peak) = tickrec::procstat::peak_rss_bytes() {
        writeln!(out, "peak memory {:.1} MiB", peak as f64 / (1 << 20) as f64)?;
    }
    let incomplete = report.rejected() > 0 || report.not_imported() > 0;
    if a.archive_json && !a.dry_run {
        // The originals go only when every record of every file is in the store.
        if incomplete && !a.allow_rejects {
            anyhow::bail!(
                "not archiving {}: {} records rejected and {} paths not imported (listed above); the originals are untouched (--allow-rejects archives anyway)",
                a.input_dir.display(),
                report.rejected(),
                report.not_imported()
            );
        }
        let store = tickrec::store::reader::Store::new(&output_dir, opts.writer.sqlite.clone());
        let check = tickrec::verify::verify(
            &a.input_dir,
            &store,
            &opts.broker_id,
            tickrec::verify::Scope::JsonTree,
            (a.max_record_kib * 1024) as usize,
            &mut |_, _, _| {},
        )?;
        if !check.differences.is_empty() {
            for d in &check.differences {
                writeln!(out, "differs: {d}")?;
            }
            anyhow::bail!(
                "not archiving {}: verification found {} differences; the originals are untouched",
                a.input_dir.display(),
                check.differences.len()
            );
        }
        let name = a
            .input_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "json".into());
        let dest = a
            .input_dir
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join(format!("{name}.tar.zst"));
        let r = tickrec::json_archive::archive_tree(&a.input_dir, &dest, a.level, true)?;
        if incomplete {
            writeln!(
                out,
                "archived with --allow-rejects: {} rejected records and {} paths not imported are not in the store",
                report.rejected(),
                report.not_imported()
            )?;
        }
        writeln!(
            out,
            "verified ({} symbol-days) and archived {} files into {} ({} -> {} bytes, {:.1}x); originals removed",
            check.compared,
            r.files,
            r.archive.display(),
            r.original_bytes,
            r.archive_bytes,
            r.original_bytes as f64 / r.archive_bytes.max(1) as f64
        )?;
    }
    Ok(if incomplete {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn run_verify(opts: &Options, a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let store = service::open_store(opts);
    let report = tickrec::verify::verify(
        &a.json_dir,
        &store,
        &opts.broker_id,
        if a.all {
            tickrec::verify::Scope::All
        } else {
            tickrec::verify::Scope::JsonTree
        },
        (a.max_record_kib * 1024) as usize,
        &mut |file, at, why| {
            eprintln!(
                "{file}: line {} (byte {}): {why} (not comparable)",
                at.line, at.offset
            )
        },
    )?;
    let mut out = std::io::stdout().lock();
    for d in &report.differences {
        writeln!(out, "{d}")?;
    }
    writeln!(
        out,
        "compared {} symbol-days{}: {} differ; {} JSON records could not be read (each a difference: it cannot be in the store)",
        report.compared,
        if a.all { " (all)" } else { " (those in the JSON tree)" },
        report.differences.len(),
        report.json_rejected
    )?;
    if let Some(peak) = tickrec::procstat::peak_rss_bytes() {
        writeln!(out, "peak memory {:.1} MiB", peak as f64 / (1 << 20) as f64)?;
    }
    Ok(
        if report.differences.is_empty() && report.json_rejected == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

fn run_archive(opts: &Options, a: ArchiveArgs) -> anyhow::Result<ExitCode> {
    use tickrec::clock::Clock;
    use tickrec::store::archive::{self, Outcome};
    let today = tickrec::clock::SystemClock.now().day();
    let days = tickrec::store::layout::list_days(&opts.db_path)
        .with_context(|| format!("listing {}", opts.db_path.display()))?;
    let due: Vec<_> = days
        .iter()
        .filter(|d| {
            !d.archived && d.day < today && (today - d.day).num_days() >= i64::from(a.older_than)
        })
        .collect();
    let bar = indicatif::ProgressBar::new(due.len() as u64);
    let mut out = std::io::stdout().lock();
    let (mut archived, mut skipped, mut failed) = (0, 0, 0);
    let (mut raw_total, mut zst_total) = (0u64, 0u64);
    for d in due {
        match archive::archive_day(
            &opts.db_path,
            d.day,
            a.format,
            a.level,
            &opts.writer.sqlite,
            a.dry_run,
        ) {
            Ok(Outcome::Archived {
                summary,
                archive_bytes,
            }) => {
                archived += 1;
                raw_total += summary.raw_bytes;
                zst_total += archive_bytes;
                let per_tick = |b: u64| b as f64 / summary.ticks.max(1) as f64;
                bar.suspend(|| {
                    writeln!(
                        out,
                        "archived {}: {} ticks, {} -> {} bytes ({:.1}x), {:.1} -> {:.1} bytes/tick",
                        d.day,
                        summary.ticks,
                        summary.raw_bytes,
                        archive_bytes,
                        summary.raw_bytes as f64 / archive_bytes.max(1) as f64,
                        per_tick(summary.raw_bytes),
                        per_tick(archive_bytes)
                    )
                })?;
            }
            Ok(Outcome::Skipped { day, why }) => {
                skipped += 1;
                bar.suspend(|| writeln!(out, "skipped {day}: {why}"))?;
            }
            Err(e) => {
                failed += 1;
                let why = tickrec::store::reader::describe(&d.path, &e);
                bar.suspend(|| {
                    eprintln!("tickrec: skipped {}: {why} ({})", d.day, d.path.display())
                });
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    writeln!(
        out,
        "archive: {archived} archived, {skipped} skipped, {failed} failed; {raw_total} -> {zst_total} bytes{}",
        if zst_total > 0 {
            format!(" ({:.1}x)", raw_total as f64 / zst_total as f64)
        } else {
            String::new()
        }
    )?;
    if let Some(keep) = a.delete_older_than {
        let all = tickrec::store::layout::list_days(&opts.db_path)?;
        let expired = archive::expired(&all, today, keep);
        if !expired.is_empty() {
            if a.dry_run {
                for d in &expired {
                    writeln!(out, "would delete {} ({})", d.day, d.path.display())?;
                }
            } else {
                if !a.yes
                    && !confirm(&format!(
                        "delete {} day(s) older than {keep} days?",
                        expired.len()
                    ))?
                {
                    anyhow::bail!(
                        "refusing to delete {} day(s) without confirmation: add --yes",
                        expired.len()
                    );
                }
                for d in &expired {
                    archive::delete_day(&opts.db_path, d.day)?;
                    writeln!(out, "deleted {}", d.day)?;
                }
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
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

fn run_seal(opts: &Options, older_than: u32) -> anyhow::Result<ExitCode> {
    use tickrec::clock::Clock;
    use tickrec::store::archive::{seal_day, Sealed};
    let today = tickrec::clock::SystemClock.now().day();
    let days = tickrec::store::layout::list_days(&opts.db_path)?;
    let mut failed = 0;
    for d in days.iter().filter(|d| {
        !d.archived && d.day < today && (today - d.day).num_days() >= i64::from(older_than)
    }) {
        let started = std::time::Instant::now();
        match seal_day(&opts.db_path, d.day, &opts.writer.sqlite) {
            Ok(Sealed::Done { ticks }) => println!(
                "sealed {}: {ticks} ticks in {:.2}s",
                d.day,
                started.elapsed().as_secs_f64()
            ),
            Ok(Sealed::Skipped { why }) => println!("skipped {}: {why}", d.day),
            Err(e) => {
                failed += 1;
                let why = tickrec::store::reader::describe(&d.path, &e);
                eprintln!("tickrec: skipped {}: {why} ({})", d.day, d.path.display());
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn run_upgrade(opts: &Options) -> anyhow::Result<ExitCode> {
    let days = tickrec::store::layout::list_days(&opts.db_path)
        .with_context(|| format!("listing {}", opts.db_path.display()))?;
    // Archived days are upgraded when restored (`tickrec unarchive`).
    for d in days.iter().filter(|d| !d.archived) {
        tickrec::store::schema::open_for_write(&d.path, d.day, &opts.writer.sqlite)?;
    }
    println!(
        "{} day files at schema version {}",
        days.len(),
        tickrec::store::schema::SCHEMA_VERSION
    );
    Ok(ExitCode::SUCCESS)
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
