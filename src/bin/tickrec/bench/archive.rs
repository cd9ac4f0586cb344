//! (e) Archive figures: the Parquet archive against the `.db.zst` form and DuckDB's own
//! Parquet writer on the same rows, and the archived day queried in place.
//!
//! The comparison day: `n` ticks (2,000,000 unless the run is smaller) over 128 symbols with
//! random nanosecond event times (and receive delays), written by the writer, then archived
//! twice (a copy of the day file as `.db.zst`, the file itself as Parquet); DuckDB reads the
//! Parquet archive's rows and writes them with `COPY … (FORMAT parquet, COMPRESSION zstd,
//! COMPRESSION_LEVEL 9, PARQUET_VERSION V2)`, sorted the same way, the `ticks_v` columns only.
//! The queries: the bench's large day archived (its clock covers the whole `archive_day`:
//! reading the day file, writing, fsync, reading every row back), then the first query of one
//! symbol over one hour with the archive's pages dropped from the OS cache first
//! (`posix_fadvise(DONTNEED)`), and one symbol's whole day.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};

use tickrec::intern::Names;
use tickrec::pipeline::Sink;
use tickrec::shutdown::Shutdown;
use tickrec::store::archive::{self, ArchiveFormat, Outcome};
use tickrec::store::reader::{Store, Symbols};
use tickrec::store::writer::SqliteSink;
use tickrec::store::{layout, SqliteOptions, WriterOptions};
use tickrec::synth::{symbol_names, QuoteGen};
use tickrec::tick::{Timestamp, NANOS_PER_DAY};

/// What (e) measured.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ArchiveFigures {
    /// Ticks of the comparison day.
    pub cmp_day_ticks: u64,
    pub cmp_live_bytes_per_tick: f64,
    pub cmp_db_zst_bytes_per_tick: f64,
    pub cmp_parquet_bytes_per_tick: f64,
    /// None when DuckDB is not installed (tools/install-research.sh).
    pub cmp_duckdb_bytes_per_tick: Option<f64>,
    /// Archiving the bench's large day as Parquet, seconds.
    pub archive_seconds: f64,
    pub archive_bytes_per_tick: f64,
    /// First query of one symbol over one hour of the archived large day, cold, ms.
    pub archive_first_hour_ms: f64,
    pub archive_first_hour_rows: u64,
    /// One symbol's whole archived day, streamed.
    pub archive_symbol_day_ticks_per_s: f64,
}

/// The day of the comparison (an old day).
const CMP_DAY0: i64 = 1_795_132_800_000_000_000; // 2026-11-20T00:00:00Z

/// Writes the comparison day under `base`: `n` ticks, `symbols` symbols, random ns times.
fn write_comparison_day(base: &Path, n: usize, symbols: usize) -> anyhow::Result<()> {
    let names = Arc::new(Names::new(symbols.max(1) + 16));
    let ids: Vec<_> = symbol_names(symbols)
        .iter()
        .map(|s| names.symbol(s))
        .collect::<Result<_, _>>()?;
    let source = names.source("SIM")?;
    let mut gen = QuoteGen::new(symbols, 7);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let step = NANOS_PER_DAY / n.max(1) as i64;
    let mut sink = SqliteSink::new(base, names.clone(), WriterOptions::default());
    let stop = Shutdown::new();
    let mut batch = Vec::with_capacity(500);
    for i in 0..n as i64 {
        let s = gen.pick();
        let q = gen.next_quote(s);
        let ts = CMP_DAY0 + i * step + rng.gen_range(0..step);
        batch.push(q.tick(
            ids[s],
            source,
            Timestamp(ts),
            Timestamp(ts + rng.gen_range(20_000..250_000)),
        ));
        if batch.len() == 500 {
            sink.write_batch(&batch, &stop);
            batch.clear();
        }
    }
    sink.write_batch(&batch, &stop);
    sink.close();
    Ok(())
}

fn archived(outcome: Outcome) -> anyhow::Result<u64> {
    match outcome {
        Outcome::Archived { archive_bytes, .. } => Ok(archive_bytes),
        Outcome::Skipped { day, why } => anyhow::bail!("{day} was not archived: {why}"),
    }
}

/// The research venv's python with DuckDB, if there is one.
fn duckdb_python() -> Option<PathBuf> {
    let python = std::env::var_os("TICKREC_RESEARCH_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/tickrec/research-venv/bin/python"))
        })?;
    std::process::Command::new(&python)
        .args(["-c", "import duckdb"])
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?
        .success()
        .then_some(python)
}

/// DuckDB's Parquet file of the rows of `src`, sorted as ours: its size in bytes.
fn duckdb_bytes(python: &Path, src: &Path, dest: &Path) -> anyhow::Result<u64> {
    let script = "import duckdb, sys\n\
        duckdb.sql(f\"COPY (SELECT seq, symbol, ts_event_ns, ts_event, ts_recv_ns, bid, ask, \
        bid_size, ask_size, source FROM read_parquet('{sys.argv[1]}') \
        ORDER BY symbol, ts_event_ns, seq) TO '{sys.argv[2]}' (FORMAT parquet, \
        COMPRESSION zstd, COMPRESSION_LEVEL 9, PARQUET_VERSION V2)\")\n";
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(src)
        .arg(dest)
        .output()?;
    if !out.status.success() {
        anyhow::bail!("duckdb: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(std::fs::metadata(dest)?.len())
}

/// Drops a file's pages from the OS cache (clean pages only; the archive was fsynced).
fn drop_cached(path: &Path) -> anyhow::Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path)?;
    // SAFETY: a valid open descriptor; the call reads nothing from our memory.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        anyhow::bail!("posix_fadvise: error {rc}");
    }
    Ok(())
}

/// The comparison of archive sizes on a day of `n` ticks, under `dir`.
pub fn compare_sizes(
    dir: &Path,
    n: usize,
    symbols: usize,
    log: &mut dyn Write,
    r: &mut ArchiveFigures,
) -> anyhow::Result<()> {
    writeln!(
        log,
        "(e) archive sizes: a {n}-tick day, {symbols} symbols, random ns times…"
    )?;
    let base = dir.join("cmp");
    write_comparison_day(&base, n, symbols)?;
    let day = Timestamp(CMP_DAY0).day();
    let db = layout::day_path(&base, day);
    let per = |b: u64| b as f64 / n.max(1) as f64;
    r.cmp_day_ticks = n as u64;
    r.cmp_live_bytes_per_tick = per(std::fs::metadata(&db)?.len());
    let zst_base = dir.join("cmp-zst");
    let copy = layout::day_path(&zst_base, day);
    std::fs::create_dir_all(copy.parent().unwrap_or(&zst_base))?;
    std::fs::copy(&db, &copy)?;
    let opts = SqliteOptions::default();
    r.cmp_db_zst_bytes_per_tick = per(archived(archive::archive_day(
        &zst_base,
        day,
        ArchiveFormat::SqliteZst,
        None,
        &opts,
        false,
    )?)?);
    r.cmp_parquet_bytes_per_tick = per(archived(archive::archive_day(
        &base,
        day,
        ArchiveFormat::Parquet,
        None,
        &opts,
        false,
    )?)?);
    match duckdb_python() {
        Some(py) => {
            let ours = layout::parquet_path(&base, day);
            r.cmp_duckdb_bytes_per_tick =
                Some(per(duckdb_bytes(&py, &ours, &dir.join("duckdb.parquet"))?));
        }
        None => writeln!(
            log,
            "DuckDB not found (bash tools/install-research.sh installs it): no DuckDB figure"
        )?,
    }
    let _ = std::fs::remove_dir_all(&base);
    let _ = std::fs::remove_dir_all(&zst_base);
    Ok(())
}

/// Archives the large day under `base` as Parquet and queries it in place.
pub fn archive_large_day(
    base: &Path,
    day: chrono::NaiveDate,
    day0: i64,
    names: &[String],
    opts: &SqliteOptions,
    log: &mut dyn Write,
    r: &mut ArchiveFigures,
) -> anyhow::Result<()> {
    writeln!(
        log,
        "(e) archiving the large day as Parquet, then querying it…"
    )?;
    let started = Instant::now();
    let outcome = archive::archive_day(base, day, ArchiveFormat::Parquet, None, opts, false)?;
    r.archive_seconds = started.elapsed().as_secs_f64();
    let ticks = match &outcome {
        Outcome::Archived { summary, .. } => summary.ticks,
        Outcome::Skipped { .. } => 0,
    };
    r.archive_bytes_per_tick = archived(outcome)? as f64 / ticks.max(1) as f64;
    let path = layout::parquet_path(base, day);
    let store = Store::new(base, opts.clone());
    let symbol = names.first().map_or("EURUSD", String::as_str);
    let hour = (
        Timestamp(day0 + 10 * 3_600_000_000_000),
        Timestamp(day0 + 11 * 3_600_000_000_000),
    );
    drop_cached(&path)?;
    let t = Instant::now();
    let read = store.range_of(&Symbols::one(symbol), hour.0, hour.1, &mut |_| Ok(()))?;
    r.archive_first_hour_ms = t.elapsed().as_secs_f64() * 1e3;
    r.archive_first_hour_rows = read.rows;
    let t = Instant::now();
    let all = Timestamp(day0)..Timestamp(day0 + NANOS_PER_DAY);
    let read = store.range_of(&Symbols::one(symbol), all.start, all.end, &mut |_| Ok(()))?;
    r.archive_symbol_day_ticks_per_s = read.rows as f64 / t.elapsed().as_secs_f64();
    Ok(())
}

impl std::fmt::Display for ArchiveFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let duck = self.cmp_duckdb_bytes_per_tick;
        writeln!(
            f,
            "archive, {}-tick day, bytes/tick live {:.1}, .db.zst {:.1}, Parquet {:.2} = {:.3} x .db.zst (target <= 0.75); DuckDB Parquet {} (target: ours <= DuckDB's)",
            self.cmp_day_ticks,
            self.cmp_live_bytes_per_tick,
            self.cmp_db_zst_bytes_per_tick,
            self.cmp_parquet_bytes_per_tick,
            self.cmp_parquet_bytes_per_tick / self.cmp_db_zst_bytes_per_tick,
            duck.map(|d| format!(
                "{d:.1} -> ours {:.2} x",
                self.cmp_parquet_bytes_per_tick / d
            ))
            .unwrap_or_else(|| "not measured (DuckDB not installed)".into())
        )?;
        write!(
            f,
            "archive, large day              {:.1} s to archive (target <= 30), {:.1} bytes/tick; 1 h of one symbol cold {:.1} ms, {} rows (target <= 50); one symbol's day {:.0} ticks/s (target >= 5000000)",
            self.archive_seconds,
            self.archive_bytes_per_tick,
            self.archive_first_hour_ms,
            self.archive_first_hour_rows,
            self.archive_symbol_day_ticks_per_s
        )
    }
}
