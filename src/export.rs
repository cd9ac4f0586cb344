//! `tickrec export`: the ticks of a time range as a Hive-partitioned tree that research
//! engines read as one table, `<out>/date=YYYY-MM-DD/part-0.<parquet|csv|jsonl>`.
//!
//! One file per day, written atomically (temporary name, fsync, rename, fsync of the folder):
//! a partition is either absent or complete, so an interrupted export resumes by skipping the
//! partitions it finds (`overwrite` writes them again). Memory is bounded: rows stream from
//! the store, and Parquet buffers one row group at a time.
//!
//! What each partition holds (its symbols, its window of that day, ticks or which bars) is
//! recorded in `<out>/_tickrec_export.json` before the partition is written (research engines
//! pass over files whose names start with `_`). A partition found is skipped only when it holds
//! what this export asks of that day; one that holds something else (another `--symbols`, a
//! different window, bars) is refused unless `overwrite`, rather than left in an export that
//! would then not hold what was asked. A partition the record does not name (an export of an
//! earlier version) is skipped, as before.
//!
//! Parquet columns are the `ticks_v` columns (schema/parquet.md): `seq`, `symbol`,
//! `ts_event_ns`, `ts_event` (a UTC timestamp in microseconds, for engines without
//! nanoseconds), `ts_recv_ns`, `bid`, `ask`, `bid_size`, `ask_size` (DECIMAL: exact; the
//! scale of a column is the most decimal places its values have that day) and `source`;
//! zstd pages, page statistics, rows in the store's `(ts_event, seq)` order.

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use crate::bars::{Bar, BarBuilder, BarParquetWriter, BarScale, BarWriter, Interval, PriceSide};
use crate::format::{row_writer, OutputFormat};
use crate::fsutil;
use crate::store::columnar::{Grouping, Levels, Shapes, TickFileWriter};
use crate::store::reader::{BrokenDay, Read, ReadError, Store, Symbols};
use crate::tick::Timestamp;

/// File formats of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum ExportFormat {
    #[default]
    Parquet,
    Csv,
    Jsonl,
}

impl ExportFormat {
    fn extension(self) -> &'static str {
        match self {
            ExportFormat::Parquet => "parquet",
            ExportFormat::Csv => "csv",
            ExportFormat::Jsonl => "jsonl",
        }
    }
}

/// What to export, and where.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub from: Timestamp,
    pub to: Timestamp,
    pub symbols: Symbols,
    pub format: ExportFormat,
    pub out: PathBuf,
    /// Write partitions that exist already (otherwise they are skipped: a resumed export).
    pub overwrite: bool,
    /// Bars of this interval and price instead of ticks.
    pub bars: Option<(Interval, PriceSide)>,
}

/// What an export did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    pub written: Vec<PathBuf>,
    /// Partitions that existed and were left as they were.
    pub skipped: Vec<PathBuf>,
    pub rows: u64,
    pub bytes: u64,
    pub broken: Vec<BrokenDay>,
    /// Named symbols no exported day knows.
    pub unknown: Vec<String>,
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} holds {held}, and this export asks for {asked}: give another --out, or \
         --overwrite to write it again"
    )]
    OtherSelection {
        path: PathBuf,
        held: String,
        asked: String,
    },
}

/// The record of what each partition of an export folder holds, by its path under the folder.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Manifest {
    partitions: std::collections::BTreeMap<String, Held>,
}

/// What one partition holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Held {
    /// Sorted names, or `["*"]` for every symbol.
    symbols: Vec<String>,
    from: String,
    to: String,
    /// `None` for ticks.
    bars: Option<String>,
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} from {} to {}",
            self.bars.as_deref().unwrap_or("ticks"),
            self.symbols.join(","),
            self.from,
            self.to
        )
    }
}

const MANIFEST: &str = "_tickrec_export.json";

impl Manifest {
    /// The folder's record; empty when there is none, or when `overwrite` writes every
    /// partition again anyway (a record that does not parse would otherwise stop it too).
    fn read(out: &Path, overwrite: bool) -> Result<Manifest, ExportError> {
        let path = out.join(MANIFEST);
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(m) => Ok(m),
                Err(_) if overwrite => Ok(Manifest::default()),
                Err(e) => Err(ExportError::Write {
                    path,
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("not the record of an export ({e}): remove it, or --overwrite"),
                    ),
                }),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
            Err(source) => Err(ExportError::Write { path, source }),
        }
    }

    fn write(&self, out: &Path) -> Result<(), ExportError> {
        let path = out.join(MANIFEST);
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            .map_err(write_err_at(&path))?;
        fsutil::write_atomic(&path, |f| std::io::Write::write_all(f, &text))
            .map_err(write_err_at(&path))
    }
}

/// Exports every day of the range that has a day file; `progress(done, total)` after each.
///
/// Long (~90 lines) on purpose: the per-day loop with its skip, write and rename steps in the order
/// that makes an export resumable.
pub fn run(
    store: &Store,
    opts: &ExportOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ExportReport, ExportError> {
    let mut report = ExportReport::default();
    if opts.from >= opts.to {
        return Ok(report);
    }
    let (first, last) = (
        opts.from.day(),
        Timestamp(opts.to.0.saturating_sub(1)).day(),
    );
    let mut days: Vec<NaiveDate> = store
        .days()
        .map_err(ReadError::Store)?
        .into_iter()
        .map(|d| d.day)
        .filter(|d| (first..=last).contains(d))
        .collect();
    days.dedup();
    let mut manifest = Manifest::read(&opts.out, opts.overwrite)?;
    let symbols = match &opts.symbols {
        Symbols::All => vec!["*".to_owned()],
        Symbols::Named(names) => {
            let mut names = names.clone();
            names.sort();
            names.dedup();
            names
        }
    };
    let bars = opts
        .bars
        .map(|(interval, side)| format!("{interval:?} {side:?} bars"));
    let mut found = Vec::new();
    for (i, day) in days.iter().enumerate() {
        let dir = opts.out.join(format!("date={day}"));
        let name = format!("date={day}/part-0.{}", opts.format.extension());
        let path = opts.out.join(&name);
        let start = Timestamp::start_of_day(*day).max(opts.from);
        let end = Timestamp::checked_start_of_day(day.succ_opt().unwrap_or(*day))
            .unwrap_or(Timestamp(i64::MAX))
            .min(opts.to);
        let asked = Held {
            symbols: symbols.clone(),
            from: start.to_string(),
            to: end.to_string(),
            bars: bars.clone(),
        };
        if path.exists() && !opts.overwrite {
            match manifest.partitions.get(&name) {
                Some(held) if *held != asked => {
                    return Err(ExportError::OtherSelection {
                        path,
                        held: held.to_string(),
                        asked: asked.to_string(),
                    })
                }
                _ => {
                    report.skipped.push(path);
                    progress(i + 1, days.len());
                    continue;
                }
            }
        }
        std::fs::create_dir_all(&dir).map_err(write_err_at(&path))?;
        fsutil::sync_dir(&opts.out).map_err(write_err_at(&path))?;
        // Recorded before the partition is written: a partition is never there without its
        // record (an interrupted write leaves a record and no partition, written next time).
        if manifest.partitions.get(&name) != Some(&asked) {
            manifest.partitions.insert(name.clone(), asked);
            manifest.write(&opts.out)?;
        }
        let (rows, read) = match (opts.bars, opts.format) {
            (Some((interval, side)), format) => {
                write_bars(store, opts, (start, end), &path, (interval, side), format)?
            }
            (None, ExportFormat::Parquet) => write_parquet(store, opts, start, end, &path)?,
            (None, ExportFormat::Csv | ExportFormat::Jsonl) => {
                let format = if opts.format == ExportFormat::Csv {
                    OutputFormat::Csv
                } else {
                    OutputFormat::Jsonl
                };
                write_partition(&path, |f| {
                    let mut w = row_writer(format, BufWriter::with_capacity(1 << 16, f));
                    let read = store
                        .range_of(&opts.symbols, start, end, &mut |r| w.write_row(r))
                        .map_err(read_err(&path))?;
                    w.finish().map_err(write_err_at(&path))?;
                    Ok((read.rows, read))
                })?
            }
        };
        if !read.broken.is_empty() {
            // Not written: a rerun tries the partition again.
            report.broken.extend(read.broken);
            let _ = std::fs::remove_dir(&dir);
            progress(i + 1, days.len());
            continue;
        }
        report.rows += rows;
        found.push(read.unknown);
        report.bytes += std::fs::metadata(&path).map_or(0, |m| m.len());
        report.written.push(path);
        progress(i + 1, days.len());
    }
    // A name is unknown when every day exported now says so (skipped days were not read).
    if let Symbols::Named(names) = &opts.symbols {
        if !found.is_empty() {
            report.unknown = names
                .iter()
                .filter(|n| found.iter().all(|u| u.contains(n)))
                .cloned()
                .collect();
        }
    }
    Ok(report)
}

fn write_parquet(
    store: &Store,
    opts: &ExportOptions,
    start: Timestamp,
    end: Timestamp,
    path: &Path,
) -> Result<(u64, Read), ExportError> {
    // First pass: the shape of each decimal column (a Parquet schema is fixed per file).
    let mut shapes = Shapes::default();
    store.range_of(&opts.symbols, start, end, &mut |r| {
        shapes.observe(r);
        Ok(())
    })?;
    write_partition(path, |f| {
        let mut writer =
            TickFileWriter::new(BufWriter::new(f), &shapes, Grouping::Plain, Levels::EXPORT)
                .map_err(write_err_at(path))?;
        let read = store
            .range_of(&opts.symbols, start, end, &mut |r| writer.push(r))
            .map_err(read_err(path))?;
        let (out, n) = writer.finish(None).map_err(write_err_at(path))?;
        out.into_inner()
            .map_err(|e| write_err_at(path)(e.into_error()))?;
        Ok((n, read))
    })
}

/// Streams the bars of `symbols` over `window` to `f`, in the order they close (one open bar
/// per symbol in memory).
fn each_bar(
    store: &Store,
    symbols: &Symbols,
    window: (Timestamp, Timestamp),
    (interval, side): (Interval, PriceSide),
    f: &mut dyn FnMut(&Bar) -> std::io::Result<()>,
) -> Result<Read, ReadError> {
    let mut open: std::collections::HashMap<std::sync::Arc<str>, BarBuilder> = Default::default();
    let read = store.range_of(symbols, window.0, window.1, &mut |r| {
        let b = open
            .entry(r.symbol.clone())
            .or_insert_with(|| BarBuilder::new(interval, side));
        match b.push(r) {
            Some(bar) => f(&bar),
            None => Ok(()),
        }
    })?;
    let mut last: Vec<Bar> = open.into_values().filter_map(BarBuilder::finish).collect();
    last.sort_by(|a, b| (a.start, &a.symbol).cmp(&(b.start, &b.symbol)));
    for bar in &last {
        f(bar).map_err(ReadError::Output)?;
    }
    Ok(read)
}

/// One partition of bars in `format`, written atomically.
fn write_bars(
    store: &Store,
    opts: &ExportOptions,
    window: (Timestamp, Timestamp),
    path: &Path,
    bars: (Interval, PriceSide),
    format: ExportFormat,
) -> Result<(u64, Read), ExportError> {
    let mut scale = BarScale::default();
    if format == ExportFormat::Parquet {
        // First pass: the scale of the figures (a Parquet schema is fixed per file).
        each_bar(store, &opts.symbols, window, bars, &mut |b| {
            scale.observe(b);
            Ok(())
        })?;
    }
    write_partition(path, |f| {
        let out = BufWriter::with_capacity(1 << 16, f);
        let each = |sink: &mut dyn FnMut(&Bar) -> std::io::Result<()>| {
            each_bar(store, &opts.symbols, window, bars, sink).map_err(read_err(path))
        };
        if format == ExportFormat::Parquet {
            let mut w = BarParquetWriter::new(out, scale).map_err(write_err_at(path))?;
            let read = each(&mut |b| w.write(b))?;
            let (out, n) = w.finish().map_err(write_err_at(path))?;
            out.into_inner()
                .map_err(|e| write_err_at(path)(e.into_error()))?;
            Ok((n, read))
        } else {
            let text = if format == ExportFormat::Csv {
                OutputFormat::Csv
            } else {
                OutputFormat::Jsonl
            };
            let mut w = BarWriter::new(text, out);
            let read = each(&mut |b| w.write(b))?;
            Ok((w.finish().map_err(write_err_at(path))?, read))
        }
    })
}

/// Why a partition was not written.
enum NotWritten {
    Failed(ExportError),
    /// A day of it could not be read: the read, with its broken days.
    Unread(Read),
}

/// Writes one partition atomically: `write` streams the store's rows into the file and
/// returns how many it wrote and what it read. Nothing is written when writing or reading
/// failed, or when the read left a day unread: a partition short of a day would be skipped by
/// every rerun. Then the read comes back with its broken days and no rows.
fn write_partition(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> Result<(u64, Read), ExportError>,
) -> Result<(u64, Read), ExportError> {
    let mut done = (0, Read::default());
    let result = fsutil::write_atomic_checked(
        path,
        |f| {
            let (rows, read) = write(f).map_err(NotWritten::Failed)?;
            if !read.broken.is_empty() {
                return Err(NotWritten::Unread(read));
            }
            done = (rows, read);
            Ok(())
        },
        |_| Ok(()),
        |at, source| NotWritten::Failed(write_err_at(at)(source)),
    );
    match result {
        Ok(()) => Ok(done),
        Err(NotWritten::Unread(read)) => Ok((0, read)),
        Err(NotWritten::Failed(e)) => Err(e),
    }
}

/// A failed write of the file at `path`.
fn write_err_at(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Write {
        path: path.to_owned(),
        source,
    }
}

/// A failed read of the store while writing `path`: a failed write when the output refused
/// a row.
fn read_err(path: &Path) -> impl Fn(ReadError) -> ExportError + '_ {
    move |e| match e {
        ReadError::Output(source) => write_err_at(path)(source),
        e => ExportError::Read(e),
    }
}
