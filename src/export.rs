//! `tickrec export`: the ticks of a time range as a Hive-partitioned tree that research
//! engines read as one table, `<out>/date=YYYY-MM-DD/part-0.<parquet|csv|jsonl>`.
//!
//! One file per day, written atomically (temporary name, fsync, rename, fsync of the folder):
//! a partition is either absent or complete, so an interrupted export resumes by skipping the
//! partitions it finds (`overwrite` writes them again). Memory is bounded: rows stream from
//! the store, and Parquet buffers one row group at a time.
//!
//! Parquet columns are the `ticks_v` columns (schema/export.md): `seq`, `symbol`,
//! `ts_event_ns`, `ts_event` (a UTC timestamp in microseconds, for engines without
//! nanoseconds), `ts_recv_ns`, `bid`, `ask`, `bid_size`, `ask_size` (DECIMAL: exact; the
//! scale of a column is the most decimal places its values have that day) and `source`;
//! zstd pages, page statistics, rows in the store's `(ts_event, seq)` order.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::{ByteArray, FixedLenByteArray};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::ColumnPath;

use crate::format::{row_writer, OutputFormat};
use crate::fsutil;
use crate::store::reader::{BrokenDay, ReadError, Store, Symbols};
use crate::tick::{Decimal, TickRow, Timestamp, MAX_SCALE};

/// File formats of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
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
}

/// Rows per Parquet row group (about 25 MB of buffered columns).
const ROW_GROUP: usize = 1 << 18;

/// Exports every day of the range that has a day file; `progress(done, total)` after each.
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
    let mut found = Vec::new();
    for (i, day) in days.iter().enumerate() {
        let dir = opts.out.join(format!("date={day}"));
        let path = dir.join(format!("part-0.{}", opts.format.extension()));
        if path.exists() && !opts.overwrite {
            report.skipped.push(path);
            progress(i + 1, days.len());
            continue;
        }
        let start = Timestamp::start_of_day(*day).max(opts.from);
        let end = Timestamp::checked_start_of_day(day.succ_opt().unwrap_or(*day))
            .unwrap_or(Timestamp(i64::MAX))
            .min(opts.to);
        let write_err = |source| ExportError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(write_err)?;
        fsutil::sync_dir(&opts.out).map_err(write_err)?;
        let (rows, read) = match opts.format {
            ExportFormat::Parquet => write_parquet(store, opts, start, end, &path)?,
            ExportFormat::Csv | ExportFormat::Jsonl => {
                let format = if opts.format == ExportFormat::Csv {
                    OutputFormat::Csv
                } else {
                    OutputFormat::Jsonl
                };
                let mut read = None;
                let mut failed = None;
                fsutil::write_atomic(&path, |f| {
                    let mut w = row_writer(format, BufWriter::with_capacity(1 << 16, f));
                    match store.range_of(&opts.symbols, start, end, &mut |r| w.write_row(r)) {
                        Ok(r) => read = Some(r),
                        Err(ReadError::Output(e)) => return Err(e),
                        Err(e) => {
                            failed = Some(e);
                            return Err(std::io::Error::other("the store could not be read"));
                        }
                    }
                    w.finish()
                })
                .map_err(|e| match failed.take() {
                    Some(r) => ExportError::Read(r),
                    None => write_err(e),
                })?;
                let read = read.unwrap_or_default();
                (read.rows, read)
            }
        };
        report.rows += rows;
        report.broken.extend(read.broken);
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

/// Per decimal column: the most decimal places of its values, and whether a value scaled to
/// them needs more than 18 digits (then the column is a 38-digit DECIMAL).
#[derive(Debug, Clone, Copy, Default)]
struct DecimalShape {
    scale: u32,
    wide: bool,
}

const DECIMALS: [&str; 4] = ["bid", "ask", "bid_size", "ask_size"];

fn decimals(r: &TickRow) -> [Option<Decimal>; 4] {
    [r.bid, r.ask, r.bid_size, r.ask_size]
}

/// `d` as an integer at `scale` decimal places (`scale` >= its own).
fn scaled(d: Decimal, scale: u32) -> Option<i128> {
    let (m, s) = d.to_scaled()?;
    i128::from(m).checked_mul(10i128.pow(scale.checked_sub(s)?))
}

fn write_parquet(
    store: &Store,
    opts: &ExportOptions,
    start: Timestamp,
    end: Timestamp,
    path: &Path,
) -> Result<(u64, crate::store::reader::Read), ExportError> {
    // First pass: the shape of each decimal column (a Parquet schema is fixed per file).
    let mut scale = [0u32; 4];
    let mut int_digits = [0u32; 4];
    store.range_of(&opts.symbols, start, end, &mut |r| {
        for (i, d) in decimals(r).into_iter().enumerate() {
            if let Some((m, s)) = d.and_then(Decimal::to_scaled) {
                scale[i] = scale[i].max(s);
                let digits = m.checked_ilog10().map_or(0, |d| d + 1);
                int_digits[i] = int_digits[i].max(digits.saturating_sub(s));
            }
        }
        Ok(())
    })?;
    let shapes: [DecimalShape; 4] = std::array::from_fn(|i| DecimalShape {
        scale: scale[i],
        wide: int_digits[i] + scale[i] > 18,
    });
    let decimal_fields: Vec<String> = DECIMALS
        .iter()
        .zip(&shapes)
        .map(|(name, s)| {
            if s.wide {
                format!(
                    "optional fixed_len_byte_array(16) {name} (DECIMAL(38,{}));",
                    s.scale
                )
            } else {
                format!("optional int64 {name} (DECIMAL(18,{}));", s.scale)
            }
        })
        .collect();
    let schema = format!(
        "message ticks {{
            required int64 seq (INTEGER(64,true));
            required binary symbol (STRING);
            required int64 ts_event_ns (INTEGER(64,true));
            required int64 ts_event (TIMESTAMP(MICROS,true));
            required int64 ts_recv_ns (INTEGER(64,true));
            {}
            required binary source (STRING);
        }}",
        decimal_fields.join("\n")
    );
    let write_err = |source: std::io::Error| ExportError::Write {
        path: path.to_owned(),
        source,
    };
    let pq_err = |e: parquet::errors::ParquetError| write_err(std::io::Error::other(e));
    let schema = Arc::new(parse_message_type(&schema).map_err(pq_err)?);
    let mut props = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_2_0)
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(9).map_err(pq_err)?))
        .set_statistics_enabled(EnabledStatistics::Page);
    for col in ["seq", "ts_event_ns", "ts_event", "ts_recv_ns", "bid", "ask"] {
        props = props
            .set_column_dictionary_enabled(ColumnPath::from(col), false)
            .set_column_encoding(ColumnPath::from(col), Encoding::DELTA_BINARY_PACKED);
    }
    if shapes[0].wide || shapes[1].wide {
        // DELTA_BINARY_PACKED is for integers only.
        for col in ["bid", "ask"] {
            props = props.set_column_encoding(ColumnPath::from(col), Encoding::PLAIN);
        }
    }
    let props = Arc::new(props.build());
    let mut read = None;
    let mut failed: Option<ExportError> = None;
    let mut rows = 0u64;
    fsutil::write_atomic(path, |f| {
        let to_io = |e: parquet::errors::ParquetError| std::io::Error::other(e);
        let mut writer =
            SerializedFileWriter::new(BufWriter::new(f), schema.clone(), props.clone())
                .map_err(to_io)?;
        let mut group = Columns::default();
        let mut write_error: Option<std::io::Error> = None;
        let result = store.range_of(&opts.symbols, start, end, &mut |r| {
            group.push(r, &shapes);
            if group.len() >= ROW_GROUP {
                group.write(&mut writer, &shapes).map_err(|e| {
                    let msg = e.to_string();
                    write_error = Some(e);
                    std::io::Error::other(msg)
                })?;
            }
            Ok(())
        });
        match result {
            Ok(r) => read = Some(r),
            Err(ReadError::Output(e)) => return Err(write_error.take().unwrap_or(e)),
            Err(e) => {
                failed = Some(ExportError::Read(e));
                return Err(std::io::Error::other("the store could not be read"));
            }
        }
        group.write(&mut writer, &shapes)?;
        let meta = writer.close().map_err(to_io)?;
        rows = u64::try_from(meta.file_metadata().num_rows()).unwrap_or(0);
        Ok(())
    })
    .map_err(|e| failed.take().unwrap_or_else(|| write_err(e)))?;
    Ok((rows, read.unwrap_or_default()))
}

/// One row group's columns, buffered.
#[derive(Default)]
struct Columns {
    seq: Vec<i64>,
    symbol: Vec<ByteArray>,
    ts_event_ns: Vec<i64>,
    ts_event_us: Vec<i64>,
    ts_recv_ns: Vec<i64>,
    /// Per decimal column: present values (narrow or wide) and definition levels.
    narrow: [Vec<i64>; 4],
    wide: [Vec<FixedLenByteArray>; 4],
    defs: [Vec<i16>; 4],
    source: Vec<ByteArray>,
}

impl Columns {
    fn len(&self) -> usize {
        self.seq.len()
    }

    fn push(&mut self, r: &TickRow, shapes: &[DecimalShape; 4]) {
        self.seq.push(r.seq.unwrap_or(0));
        self.symbol
            .push(ByteArray::from(r.symbol.as_bytes().to_vec()));
        self.ts_event_ns.push(r.ts_event.0);
        self.ts_event_us.push(r.ts_event.0.div_euclid(1_000));
        self.ts_recv_ns.push(r.ts_recv.0);
        for (i, d) in decimals(r).into_iter().enumerate() {
            match d.and_then(|d| scaled(d, shapes[i].scale)) {
                Some(v) => {
                    self.defs[i].push(1);
                    if shapes[i].wide {
                        self.wide[i].push(FixedLenByteArray::from(v.to_be_bytes().to_vec()));
                    } else {
                        // Checked by the first pass: below 10^18.
                        self.narrow[i].push(i64::try_from(v).unwrap_or(i64::MAX));
                    }
                }
                None => self.defs[i].push(0),
            }
        }
        self.source
            .push(ByteArray::from(r.source.as_bytes().to_vec()));
    }

    /// Writes the buffered rows as one row group and empties the buffers.
    fn write<W: Write + Send>(
        &mut self,
        writer: &mut SerializedFileWriter<W>,
        shapes: &[DecimalShape; 4],
    ) -> std::io::Result<()> {
        if self.len() == 0 {
            return Ok(());
        }
        let to_io = |e: parquet::errors::ParquetError| std::io::Error::other(e);
        let mut group = writer.next_row_group().map_err(to_io)?;
        let mut column = 0usize;
        while let Some(mut col) = group.next_column().map_err(to_io)? {
            let written = match (col.untyped(), column) {
                (ColumnWriter::Int64ColumnWriter(w), 0) => w.write_batch(&self.seq, None, None),
                (ColumnWriter::ByteArrayColumnWriter(w), 1) => {
                    w.write_batch(&self.symbol, None, None)
                }
                (ColumnWriter::Int64ColumnWriter(w), 2) => {
                    w.write_batch(&self.ts_event_ns, None, None)
                }
                (ColumnWriter::Int64ColumnWriter(w), 3) => {
                    w.write_batch(&self.ts_event_us, None, None)
                }
                (ColumnWriter::Int64ColumnWriter(w), 4) => {
                    w.write_batch(&self.ts_recv_ns, None, None)
                }
                (ColumnWriter::Int64ColumnWriter(w), 5..=8) if !shapes[column - 5].wide => {
                    w.write_batch(&self.narrow[column - 5], Some(&self.defs[column - 5]), None)
                }
                (ColumnWriter::FixedLenByteArrayColumnWriter(w), 5..=8) => {
                    w.write_batch(&self.wide[column - 5], Some(&self.defs[column - 5]), None)
                }
                (ColumnWriter::ByteArrayColumnWriter(w), 9) => {
                    w.write_batch(&self.source, None, None)
                }
                _ => {
                    return Err(std::io::Error::other(format!(
                        "export schema and writer disagree at column {column}"
                    )))
                }
            };
            written.map_err(to_io)?;
            col.close().map_err(to_io)?;
            column += 1;
        }
        group.close().map_err(to_io)?;
        *self = Columns::default();
        Ok(())
    }
}

/// The exported decimal scale never passes what a tick can hold.
const _: () = assert!(MAX_SCALE <= 18);
