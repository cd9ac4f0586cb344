//! Parquet tick files: the archive form of a closed day (`ticks_<day>.parquet`, read in place
//! by [`ParquetDay`]) and the file format of `tickrec export` (see schema/parquet.md).
//!
//! Columns: the `ticks_v` columns — `seq`, `symbol`, `ts_event_ns`, `ts_event` (UTC timestamp
//! in microseconds, for engines without nanoseconds), `ts_recv_ns`, `bid`, `ask`, `bid_size`,
//! `ask_size` (DECIMAL, exact: the scale of a column is the most decimal places its values have
//! in the file), `source` — then `given_scales`: the decimal places each of the four decimals
//! was given with (4 bits each, bid lowest), so that `1.0850` reads back as `1.0850` and not as
//! the column's `1.08500`. Engines read the DECIMAL columns; tickrec reads both.
//!
//! Archive layout: rows sorted by (symbol, ts_event, seq); a row group ends at a symbol
//! boundary once it holds [`GROUP_MIN_ROWS`], and always at [`GROUP_MAX_ROWS`]; pages hold at
//! most [`PAGE_ROWS`] rows (data page v2, zstd at [`Levels`]), and in the three time columns
//! one symbol's run each; each time column's delta blocks take the layout that writes the first
//! row group smaller; page statistics and the page index on every column. The
//! file's key-value metadata holds the day's summary (`tickrec.summary`, the
//! [`ArchiveSummary`] a `.db.zst` carries at its head) and the symbol index (`tickrec.index`):
//! each symbol's row runs `(group, first row, end row)`, so a query of one symbol reads only
//! its rows' pages, never the symbol column.
//!
//! Invariant (checked when a file is opened): the index's runs tile every row group exactly,
//! in symbol order, and the summary's tick count is the file's row count.

use std::cell::RefCell;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::column::writer::{get_column_writer, ColumnCloseResult, ColumnWriter};
use parquet::data_type::{
    ByteArray, ByteArrayType, DataType, FixedLenByteArray, FixedLenByteArrayType, Int32Type,
    Int64Type,
};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{
    DeltaBinaryPackedEncoderOptions, EnabledStatistics, WriterProperties, WriterPropertiesBuilder,
    WriterVersion,
};
use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::{ReadOptionsBuilder, SerializedFileReader};
use parquet::file::writer::{SerializedFileWriter, SerializedPageWriter, TrackedWrite};
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use super::archive::ArchiveSummary;
use super::StoreError;
use crate::tick::{Decimal, TickRow, Timestamp, MAX_MANTISSA, MAX_SCALE};

/// Threads encoding a row group's columns at most (the machine's CPUs, when fewer). Beside a
/// recorder, the nightly archive runs at nice 10 (`tools/systemd/tickrec-archive.service`):
/// these threads then take the CPU the recorder leaves.
pub const ENCODE_THREADS: usize = 4;
/// A row group ends at the next symbol boundary once it holds this many rows.
pub const GROUP_MIN_ROWS: usize = 1 << 14;
/// A row group never holds more rows than this (bounds the memory of writing and reading).
pub const GROUP_MAX_ROWS: usize = 1 << 17;
/// Rows per data page: the unit a query skips without decompressing. 32,768 against 16,384:
/// 0.3 % smaller on a random-ns day, 2.7 % on the bench's large day, a cold one-hour query
/// 4-5 ms instead of 4 (schema/parquet.md).
pub const PAGE_ROWS: usize = 32768;
/// zstd levels of the pages: the time columns' and the others'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    pub times: i32,
    pub rest: i32,
}

impl Levels {
    /// Unless told otherwise: 19 for every column but the times, 9 for them. The other columns
    /// are a fifth of a file and compress at 19 (the 2M-tick day 0.75 % smaller than at 9);
    /// the times are the rest, and at 15 they would make the bench's large day 6 % smaller
    /// but take 27-30 s of its 30 s archiving budget instead of 23-24 on one thread, and still
    /// 29.5-33.9 s against 23.5-24.8 with the columns encoded side by side (schema/parquet.md).
    pub const DEFAULT: Levels = Levels { times: 9, rest: 19 };

    /// Exports: 9 for every column. Rows in time order compress less at 19 and cost more: a
    /// 2M-tick day's export 0.5 % smaller for 30 % more time (2.95-3.15 s against 3.93-4.04).
    pub const EXPORT: Levels = Levels { times: 9, rest: 9 };

    /// `level` for every column when given, else [`Levels::DEFAULT`].
    pub fn given(level: Option<i32>) -> Levels {
        level.map_or(Levels::DEFAULT, |l| Levels { times: l, rest: l })
    }
}

const SUMMARY_KEY: &str = "tickrec.summary";
const INDEX_KEY: &str = "tickrec.index";
const DECIMALS: [&str; 4] = ["bid", "ask", "bid_size", "ask_size"];
/// The three time columns: delta-packed, each page one symbol's run (archives).
const TIMES: [&str; 3] = ["ts_event_ns", "ts_event", "ts_recv_ns"];

/// The shape of a decimal column: its scale, and whether it needs 38 digits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct DecimalShape {
    scale: u32,
    wide: bool,
}

/// The decimal columns' shapes, learnt from every value a file will hold (a Parquet schema is
/// fixed per file).
#[derive(Debug, Clone, Copy, Default)]
pub struct Shapes {
    scale: [u32; 4],
    int_digits: [u32; 4],
}

impl Shapes {
    /// Takes in one row's decimals.
    pub fn observe(&mut self, r: &TickRow) {
        self.observe_decimals(decimals(r));
    }

    /// Takes in one row's `[bid, ask, bid_size, ask_size]`.
    pub fn observe_decimals(&mut self, d: [Option<Decimal>; 4]) {
        for (i, d) in d.into_iter().enumerate() {
            if let Some((m, s)) = d.and_then(Decimal::to_scaled) {
                self.scale[i] = self.scale[i].max(s);
                let digits = m.checked_ilog10().map_or(0, |d| d + 1);
                self.int_digits[i] = self.int_digits[i].max(digits.saturating_sub(s));
            }
        }
    }

    fn of(&self) -> [DecimalShape; 4] {
        std::array::from_fn(|i| DecimalShape {
            scale: self.scale[i],
            wide: self.int_digits[i] + self.scale[i] > 18,
        })
    }
}

fn decimals(r: &TickRow) -> [Option<Decimal>; 4] {
    [r.bid, r.ask, r.bid_size, r.ask_size]
}

/// `d` as an integer at `scale` decimal places (`scale` >= its own).
fn scaled(d: Decimal, scale: u32) -> Option<i128> {
    let (m, s) = d.to_scaled()?;
    i128::from(m).checked_mul(10i128.pow(scale.checked_sub(s)?))
}

/// How rows are grouped: by symbol (archives, rows sorted by symbol) or not (exports, rows in
/// time order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    BySymbol,
    Plain,
}

/// Where each symbol's rows are: `(row group, first row, end row)` runs, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolIndex {
    pub runs: BTreeMap<String, Vec<[u64; 3]>>,
}

/// The file writer is missing: opening it failed before.
fn not_open() -> std::io::Error {
    std::io::Error::other("the tick file's writer could not be opened")
}

fn parquet_io(e: ParquetError) -> std::io::Error {
    std::io::Error::other(e)
}

/// Writes tick rows into one Parquet file (see the module doc).
pub struct TickFileWriter<W: Write + Send> {
    /// Opened with the first row group, whose time columns choose their delta layout.
    writer: Option<SerializedFileWriter<W>>,
    start: Option<(W, parquet::schema::types::TypePtr, WriterPropertiesBuilder)>,
    levels: Levels,
    /// Miniblocks per delta block of each time column, once chosen.
    miniblocks: [usize; 3],
    shapes: [DecimalShape; 4],
    grouping: Grouping,
    group: Columns,
    group_index: u64,
    index: SymbolIndex,
    rows: u64,
    /// Threads encoding a row group's columns.
    encode_threads: usize,
}

impl<W: Write + Send> TickFileWriter<W> {
    pub fn new(
        out: W,
        shapes: &Shapes,
        grouping: Grouping,
        levels: Levels,
    ) -> std::io::Result<Self> {
        let shapes = shapes.of();
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
                required int32 given_scales (INTEGER(16,false));
            }}",
            decimal_fields.join("\n")
        );
        let schema = Arc::new(parse_message_type(&schema).map_err(parquet_io)?);
        let mut props = WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_2_0)
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(levels.rest).map_err(parquet_io)?,
            ))
            .set_statistics_enabled(EnabledStatistics::Page)
            // Pages are cut by the caller: each batch written is one page (no batch holds more
            // than `PAGE_ROWS` rows, so none is split).
            .set_data_page_row_count_limit(1)
            .set_write_batch_size(PAGE_ROWS)
            .set_created_by(format!("tickrec {}", env!("CARGO_PKG_VERSION")));
        for col in ["seq", "ts_event_ns", "ts_event", "ts_recv_ns", "bid", "ask"] {
            props = props
                .set_column_dictionary_enabled(ColumnPath::from(col), false)
                .set_column_encoding(ColumnPath::from(col), Encoding::DELTA_BINARY_PACKED);
        }
        for col in TIMES {
            props = props.set_column_compression(
                ColumnPath::from(col),
                Compression::ZSTD(ZstdLevel::try_new(levels.times).map_err(parquet_io)?),
            );
        }
        if shapes[0].wide || shapes[1].wide {
            // DELTA_BINARY_PACKED is for integers only.
            for col in ["bid", "ask"] {
                props = props.set_column_encoding(ColumnPath::from(col), Encoding::PLAIN);
            }
        }
        Ok(TickFileWriter {
            writer: None,
            start: Some((out, schema, props)),
            levels,
            miniblocks: [4; 3],
            shapes,
            grouping,
            group: Columns::default(),
            group_index: 0,
            index: SymbolIndex::default(),
            rows: 0,
            encode_threads: std::thread::available_parallelism()
                .map_or(1, usize::from)
                .min(ENCODE_THREADS),
        })
    }

    /// Appends one row. With [`Grouping::BySymbol`] rows must come sorted by symbol.
    pub fn push(&mut self, r: &TickRow) -> std::io::Result<()> {
        let n = self.group.len();
        let new_symbol = self
            .group
            .symbol
            .last()
            .is_none_or(|s| s.data() != r.symbol.as_bytes());
        if n >= GROUP_MAX_ROWS
            || (self.grouping == Grouping::BySymbol && new_symbol && n >= GROUP_MIN_ROWS)
        {
            self.flush_group()?;
        }
        if self.grouping == Grouping::BySymbol {
            let at = self.group.len() as u64;
            let runs = self.index.runs.entry(r.symbol.to_string()).or_default();
            match runs.last_mut() {
                Some(run) if run[0] == self.group_index && run[2] == at => run[2] += 1,
                _ => runs.push([self.group_index, at, at + 1]),
            }
        }
        self.group.push(r, &self.shapes);
        self.rows += 1;
        Ok(())
    }

    fn flush_group(&mut self) -> std::io::Result<()> {
        if self.group.len() > 0 {
            let time_pages = self.group.pages(self.grouping);
            let pages = self.group.pages(Grouping::Plain);
            self.open(&time_pages)?;
            let writer = self.writer.as_mut().ok_or_else(not_open)?;
            self.group.write(
                writer,
                &self.shapes,
                &time_pages,
                &pages,
                self.encode_threads,
            )?;
            self.group_index += 1;
        }
        Ok(())
    }

    /// Writes the last row group and the footer (with `summary` and the symbol index in its
    /// key-value metadata when given); returns the output and the row count.
    pub fn finish(mut self, summary: Option<&ArchiveSummary>) -> std::io::Result<(W, u64)> {
        self.flush_group()?;
        self.open(&[])?;
        let mut writer = self.writer.take().ok_or_else(not_open)?;
        if let Some(s) = summary {
            let json = |v: &dyn erased::Json| v.to_json();
            writer.append_key_value_metadata(KeyValue::new(SUMMARY_KEY.into(), json(s)?));
            writer.append_key_value_metadata(KeyValue::new(INDEX_KEY.into(), json(&self.index)?));
        }
        let out = writer.into_inner().map_err(parquet_io)?;
        Ok((out, self.rows))
    }

    /// The file writer, opened on first use. Each time column takes the delta block layout
    /// that writes the buffered group (`time_pages` of it) smaller: 256 values in 4 miniblocks
    /// of 64 (regular gaps: one width byte per 64 values, and zstd finds the repeats) or in 8
    /// of 32 (random gaps: a miniblock is as wide as its largest gap, and the largest of 32 is
    /// narrower).
    fn open(&mut self, time_pages: &[std::ops::Range<usize>]) -> std::io::Result<()> {
        if let Some((out, schema, mut props)) = self.start.take() {
            let g = &self.group;
            let level = self.levels.times;
            let times = [&g.ts_event_ns, &g.ts_event_us, &g.ts_recv_ns];
            // A file without rows keeps the writer's layout.
            if !time_pages.is_empty() {
                for (i, (col, values)) in TIMES.into_iter().zip(times).enumerate() {
                    let bytes =
                        |miniblocks| delta_column_bytes(values, time_pages, miniblocks, level);
                    if bytes(8)? < bytes(4)? {
                        self.miniblocks[i] = 8;
                        props = props.set_column_delta_binary_packed_encoder_options(
                            ColumnPath::from(col),
                            DeltaBinaryPackedEncoderOptions::try_new(256, 8).map_err(parquet_io)?,
                        );
                    }
                }
            }
            self.writer = Some(
                SerializedFileWriter::new(out, schema, Arc::new(props.build()))
                    .map_err(parquet_io)?,
            );
        }
        Ok(())
    }
}

/// Bytes of `values` written alone as a Parquet column of delta-packed blocks of 256 values
/// in `miniblocks` miniblocks, one page per range of `pages`, zstd at `level`: what the column
/// would take in the file.
fn delta_column_bytes(
    values: &[i64],
    pages: &[std::ops::Range<usize>],
    miniblocks: usize,
    level: i32,
) -> std::io::Result<usize> {
    let schema = parse_message_type("message t { required int64 v; }").map_err(parquet_io)?;
    let props = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_2_0)
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(level).map_err(parquet_io)?,
        ))
        .set_statistics_enabled(EnabledStatistics::None)
        .set_dictionary_enabled(false)
        .set_encoding(Encoding::DELTA_BINARY_PACKED)
        .set_delta_binary_packed_encoder_options(
            DeltaBinaryPackedEncoderOptions::try_new(256, miniblocks).map_err(parquet_io)?,
        )
        .set_data_page_row_count_limit(1)
        .set_write_batch_size(PAGE_ROWS)
        .build();
    let mut w = SerializedFileWriter::new(Vec::new(), Arc::new(schema), Arc::new(props))
        .map_err(parquet_io)?;
    let mut group = w.next_row_group().map_err(parquet_io)?;
    if let Some(mut col) = group.next_column().map_err(parquet_io)? {
        if let ColumnWriter::Int64ColumnWriter(cw) = col.untyped() {
            for p in pages {
                cw.write_batch(&values[p.clone()], None, None)
                    .map_err(parquet_io)?;
            }
        }
        col.close().map_err(parquet_io)?;
    }
    group.close().map_err(parquet_io)?;
    Ok(w.into_inner().map_err(parquet_io)?.len())
}

mod erased {
    /// JSON text of the two metadata values.
    pub trait Json {
        fn to_json(&self) -> std::io::Result<String>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> std::io::Result<String> {
            serde_json::to_string(self).map_err(std::io::Error::other)
        }
    }
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
    given_scales: Vec<i32>,
}

impl Columns {
    fn len(&self) -> usize {
        self.seq.len()
    }

    fn push(&mut self, r: &TickRow, shapes: &[DecimalShape; 4]) {
        self.seq.push(r.seq.unwrap_or(0));
        if self
            .symbol
            .last()
            .is_some_and(|s| s.data() == r.symbol.as_bytes())
        {
            let last = self.symbol[self.symbol.len() - 1].clone();
            self.symbol.push(last);
        } else {
            self.symbol
                .push(ByteArray::from(r.symbol.as_bytes().to_vec()));
        }
        self.ts_event_ns.push(r.ts_event.0);
        self.ts_event_us.push(r.ts_event.0.div_euclid(1_000));
        self.ts_recv_ns.push(r.ts_recv.0);
        let mut given = 0i32;
        for (i, d) in decimals(r).into_iter().enumerate() {
            match d.and_then(|d| scaled(d, shapes[i].scale).map(|v| (v, d.scale()))) {
                Some((v, s)) => {
                    given |= (s as i32) << (4 * i);
                    self.defs[i].push(1);
                    if shapes[i].wide {
                        self.wide[i].push(FixedLenByteArray::from(v.to_be_bytes().to_vec()));
                    } else {
                        // Below 10^18: the shape was learnt from every value.
                        self.narrow[i].push(i64::try_from(v).unwrap_or(i64::MAX));
                    }
                }
                None => self.defs[i].push(0),
            }
        }
        self.given_scales.push(given);
        if self
            .source
            .last()
            .is_some_and(|s| s.data() == r.source.as_bytes())
        {
            let last = self.source[self.source.len() - 1].clone();
            self.source.push(last);
        } else {
            self.source
                .push(ByteArray::from(r.source.as_bytes().to_vec()));
        }
    }

    /// The group's data pages, as row ranges: with [`Grouping::BySymbol`] one page per symbol
    /// run (the time columns' pages: no delta block of theirs spans two symbols), else the
    /// whole group as one run; a run longer than [`PAGE_ROWS`] cut into equal pages no longer
    /// than that.
    fn pages(&self, grouping: Grouping) -> Vec<std::ops::Range<usize>> {
        let n = self.len();
        let mut runs = Vec::new();
        let mut start = 0;
        if grouping == Grouping::BySymbol {
            for i in 1..n {
                if self.symbol[i].data() != self.symbol[i - 1].data() {
                    runs.push(start..i);
                    start = i;
                }
            }
        }
        if start < n {
            runs.push(start..n);
        }
        let mut pages = Vec::with_capacity(runs.len());
        for run in runs {
            let k = run.len().div_ceil(PAGE_ROWS);
            for j in 0..k {
                pages.push(run.start + run.len() * j / k..run.start + run.len() * (j + 1) / k);
            }
        }
        pages
    }

    /// Writes the buffered rows as one row group, each column in `pages`, and empties the
    /// buffers. (The writer cuts a page after every batch: see [`TickFileWriter::new`].)
    ///
    /// The columns are encoded and compressed apart, on up to `threads` threads (each takes
    /// the next column not yet taken), then appended in order: no column's pages
    /// depend on another's, and the file is the same to the byte. On two CPUs the bench's
    /// large day archived in 23.5-24.8 s against 30.7-30.8 s on one thread (schema/parquet.md).
    fn write<W: Write + Send>(
        &mut self,
        writer: &mut SerializedFileWriter<W>,
        shapes: &[DecimalShape; 4],
        time_pages: &[std::ops::Range<usize>],
        pages: &[std::ops::Range<usize>],
        threads: usize,
    ) -> std::io::Result<()> {
        let schema = writer.schema_descr();
        let props = writer.properties();
        let n = schema.num_columns();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let threads = threads.clamp(1, n.max(1));
        let this = &*self;
        let encode_some = || {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return done;
                }
                let chunk = this.encode_column(
                    i,
                    schema.column(i),
                    props.clone(),
                    shapes,
                    time_pages,
                    pages,
                );
                done.push((i, chunk));
            }
        };
        // Each column index is taken once: sorted, they are 0..n.
        let mut chunks = std::thread::scope(|s| {
            let helpers: Vec<_> = (1..threads).map(|_| s.spawn(encode_some)).collect();
            let mut all = encode_some();
            for h in helpers {
                match h.join() {
                    Ok(done) => all.extend(done),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            all
        });
        chunks.sort_unstable_by_key(|(i, _)| *i);
        let mut group = writer.next_row_group().map_err(parquet_io)?;
        for (_, chunk) in chunks {
            let (bytes, close) = chunk?;
            group.append_column(&bytes, close).map_err(parquet_io)?;
        }
        group.close().map_err(parquet_io)?;
        *self = Columns::default();
        Ok(())
    }

    /// Column `column` of the buffered rows, encoded and compressed on its own: its bytes and
    /// what the row group needs to append them.
    fn encode_column(
        &self,
        column: usize,
        descr: parquet::schema::types::ColumnDescPtr,
        props: parquet::file::properties::WriterPropertiesPtr,
        shapes: &[DecimalShape; 4],
        time_pages: &[std::ops::Range<usize>],
        pages: &[std::ops::Range<usize>],
    ) -> std::io::Result<(bytes::Bytes, ColumnCloseResult)> {
        fn each<T: DataType>(
            w: &mut parquet::column::writer::ColumnWriterImpl<'_, T>,
            values: &[T::T],
            defs: Option<&[i16]>,
            pages: &[std::ops::Range<usize>],
        ) -> Result<(), ParquetError> {
            // Values written so far: a missing decimal has a definition level and no value.
            let mut at = 0;
            for p in pages {
                let d = defs.map(|d| &d[p.clone()]);
                let present = d.map_or(p.len(), |d| d.iter().filter(|&&l| l == 1).count());
                w.write_batch(&values[at..at + present], d, None)?;
                at += present;
            }
            Ok(())
        }
        let mut sink = TrackedWrite::new(Vec::new());
        let close = {
            let mut col =
                get_column_writer(descr, props, Box::new(SerializedPageWriter::new(&mut sink)));
            let written = match (&mut col, column) {
                (ColumnWriter::Int64ColumnWriter(w), 0) => each(w, &self.seq, None, pages),
                (ColumnWriter::ByteArrayColumnWriter(w), 1) => each(w, &self.symbol, None, pages),
                (ColumnWriter::Int64ColumnWriter(w), 2) => {
                    each(w, &self.ts_event_ns, None, time_pages)
                }
                (ColumnWriter::Int64ColumnWriter(w), 3) => {
                    each(w, &self.ts_event_us, None, time_pages)
                }
                (ColumnWriter::Int64ColumnWriter(w), 4) => {
                    each(w, &self.ts_recv_ns, None, time_pages)
                }
                (ColumnWriter::Int64ColumnWriter(w), 5..=8) if !shapes[column - 5].wide => each(
                    w,
                    &self.narrow[column - 5],
                    Some(&self.defs[column - 5]),
                    pages,
                ),
                (ColumnWriter::FixedLenByteArrayColumnWriter(w), 5..=8) => each(
                    w,
                    &self.wide[column - 5],
                    Some(&self.defs[column - 5]),
                    pages,
                ),
                (ColumnWriter::ByteArrayColumnWriter(w), 9) => each(w, &self.source, None, pages),
                (ColumnWriter::Int32ColumnWriter(w), 10) => {
                    each(w, &self.given_scales, None, pages)
                }
                _ => {
                    return Err(std::io::Error::other(format!(
                        "tick file schema and writer disagree at column {column}"
                    )))
                }
            };
            written.map_err(parquet_io)?;
            col.close().map_err(parquet_io)?
        };
        Ok((
            bytes::Bytes::from(sink.into_inner().map_err(parquet_io)?),
            close,
        ))
    }
}

/// An order-independent digest of rows: what was written is what reads back, whatever the
/// order either side streams in.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Digest {
    pub rows: u64,
    pub sum: u64,
}

impl Digest {
    pub fn add(&mut self, r: &TickRow) {
        use std::hash::{Hash, Hasher};
        let mut h = rustc_hash::FxHasher::default();
        (r.seq, &*r.symbol, &*r.source, r.ts_event.0, r.ts_recv.0).hash(&mut h);
        for d in [r.bid, r.ask, r.bid_size, r.ask_size] {
            d.map(Decimal::code).hash(&mut h);
        }
        // A second mix so that sums of near-equal rows do not cancel.
        let x = h
            .finish()
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
        self.rows += 1;
        self.sum = self.sum.wrapping_add(x);
    }
}

/// The scale a tick can hold fits a 64-bit DECIMAL.
const _: () = assert!(MAX_SCALE <= 18);

// ---------------------------------------------------------------------------------------------
// Reading

/// Column positions in the file (by name: a file from a later version may add columns).
#[derive(Debug, Clone, Copy)]
struct Positions {
    seq: usize,
    ts_event_ns: usize,
    ts_recv_ns: usize,
    decimals: [usize; 4],
    source: usize,
    given_scales: usize,
}

/// A Parquet day file, open for queries (see the module doc).
pub struct ParquetDay {
    path: PathBuf,
    file: SerializedFileReader<File>,
    summary: ArchiveSummary,
    index: SymbolIndex,
    pos: Positions,
    shapes: [DecimalShape; 4],
    /// Per row group: (min, max) of seq.
    seq_bounds: Vec<(i64, i64)>,
    sources: RefCell<Vec<(ByteArray, Arc<str>)>>,
    /// Whether a row group's source is taken from its statistics when they name one source
    /// (see [`ParquetDay::open_for_queries`]).
    trust_source_statistics: bool,
}

impl std::fmt::Debug for ParquetDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetDay")
            .field("path", &self.path)
            .finish()
    }
}

/// One symbol's rows `[start, end)` of a row group.
#[derive(Debug, Clone, Copy)]
struct Segment {
    group: usize,
    start: usize,
    end: usize,
}

impl ParquetDay {
    /// Opens `path` and checks its metadata (see the module doc's invariant).
    ///
    /// Long (~110 lines) on purpose: one check per metadata invariant, in the order the module doc
    /// lists them.
    pub fn open(path: &Path) -> Result<ParquetDay, StoreError> {
        let corrupt = |why: String| StoreError::Corrupt {
            path: path.to_owned(),
            why,
        };
        let f = File::open(path).map_err(StoreError::io(path))?;
        let options = ReadOptionsBuilder::new().build();
        let file = SerializedFileReader::new_with_options(f, options)
            .map_err(|e| corrupt(format!("not a readable Parquet file: {e}")))?;
        let meta = file.metadata();
        let kv = |key: &str| {
            meta.file_metadata()
                .key_value_metadata()
                .and_then(|kv| kv.iter().find(|k| k.key == key))
                .and_then(|k| k.value.clone())
                .ok_or_else(|| corrupt(format!("no {key} in its metadata: not a tickrec archive")))
        };
        let summary: ArchiveSummary = serde_json::from_str(&kv(SUMMARY_KEY)?)
            .map_err(|e| corrupt(format!("{SUMMARY_KEY}: {e}")))?;
        let index: SymbolIndex = serde_json::from_str(&kv(INDEX_KEY)?)
            .map_err(|e| corrupt(format!("{INDEX_KEY}: {e}")))?;
        let schema = meta.file_metadata().schema_descr();
        let find = |name: &str| {
            (0..schema.num_columns())
                .find(|&i| schema.column(i).name() == name)
                .ok_or_else(|| corrupt(format!("no column {name}")))
        };
        let pos = Positions {
            seq: find("seq")?,
            ts_event_ns: find("ts_event_ns")?,
            ts_recv_ns: find("ts_recv_ns")?,
            decimals: [
                find(DECIMALS[0])?,
                find(DECIMALS[1])?,
                find(DECIMALS[2])?,
                find(DECIMALS[3])?,
            ],
            source: find("source")?,
            given_scales: find("given_scales")?,
        };
        let mut shapes = [DecimalShape::default(); 4];
        for (i, &c) in pos.decimals.iter().enumerate() {
            let col = schema.column(c);
            let scale = u32::try_from(col.type_scale()).unwrap_or(u32::MAX);
            if scale > MAX_SCALE {
                return Err(corrupt(format!("{} has scale {scale}", DECIMALS[i])));
            }
            shapes[i] = DecimalShape {
                scale,
                wide: col.physical_type() == parquet::basic::Type::FIXED_LEN_BYTE_ARRAY,
            };
        }
        // The index tiles each row group, and the rows are the summary's ticks.
        let groups = meta.row_groups();
        let mut covered = vec![0u64; groups.len()];
        let mut rows = 0u64;
        for runs in index.runs.values() {
            for &[g, a, b] in runs {
                let n = usize::try_from(g)
                    .ok()
                    .and_then(|g| groups.get(g))
                    .map(|m| m.num_rows() as u64)
                    .ok_or_else(|| corrupt(format!("{INDEX_KEY}: no row group {g}")))?;
                if a >= b || b > n {
                    return Err(corrupt(format!(
                        "{INDEX_KEY}: rows {a}..{b} of group {g} ({n} rows)"
                    )));
                }
                covered[g as usize] += b - a;
                rows += b - a;
            }
        }
        for (g, m) in groups.iter().enumerate() {
            if covered[g] != m.num_rows() as u64 {
                return Err(corrupt(format!(
                    "{INDEX_KEY}: covers {} of the {} rows of group {g}",
                    covered[g],
                    m.num_rows()
                )));
            }
        }
        if rows != summary.ticks || meta.file_metadata().num_rows() as u64 != rows {
            return Err(corrupt(format!(
                "holds {} rows, its summary says {} ticks",
                meta.file_metadata().num_rows(),
                summary.ticks
            )));
        }
        let seq_bounds = groups
            .iter()
            .map(|m| match m.column(pos.seq).statistics() {
                Some(parquet::file::statistics::Statistics::Int64(s)) => (
                    s.min_opt().copied().unwrap_or(i64::MIN),
                    s.max_opt().copied().unwrap_or(i64::MAX),
                ),
                _ => (i64::MIN, i64::MAX),
            })
            .collect();
        Ok(ParquetDay {
            path: path.to_owned(),
            file,
            summary,
            index,
            pos,
            shapes,
            seq_bounds,
            sources: RefCell::new(Vec::new()),
            trust_source_statistics: false,
        })
    }

    /// [`ParquetDay::open`] for queries: where a row group's statistics give its source column
    /// one exact value (the usual case: one liquidity provider a day), rows take it from there
    /// and the column is not decoded. Decoding it (a dictionary index and a reference-counted
    /// copy per row, and a comparison) was ~15 % of a one-symbol scan (`perf` of `cargo bench
    /// --bench parquet_scan`). The read-back check after archiving and `tickrec check` open
    /// with [`ParquetDay::open`], which decodes every value.
    pub fn open_for_queries(path: &Path) -> Result<ParquetDay, StoreError> {
        Ok(ParquetDay {
            trust_source_statistics: true,
            ..ParquetDay::open(path)?
        })
    }

    /// The one source of row group `group`, when its statistics say every row has it.
    fn constant_source(&self, group: usize) -> Result<Option<Arc<str>>, StoreError> {
        if !self.trust_source_statistics {
            return Ok(None);
        }
        let meta = self.file.metadata().row_group(group);
        let Some(parquet::file::statistics::Statistics::ByteArray(s)) =
            meta.column(self.pos.source).statistics()
        else {
            return Ok(None);
        };
        match (s.min_opt(), s.max_opt()) {
            (Some(lo), Some(hi)) if lo == hi && s.min_is_exact() && s.max_is_exact() => {
                self.source_name(lo).map(Some)
            }
            _ => Ok(None),
        }
    }

    pub fn summary(&self) -> &ArchiveSummary {
        &self.summary
    }

    /// Whether no tick of the file can be from `source`: every row group's statistics bound
    /// its source column, and `source` lies outside the bounds of each (bounds cut short stay
    /// bounds: a lowest value cut is lower, a highest one cut is raised). A name within a
    /// group's bounds, between its lowest and its highest source, may be there: `false`.
    pub fn lacks_source(&self, source: &str) -> bool {
        let meta = self.file.metadata();
        (0..meta.num_row_groups()).all(|g| {
            let Some(parquet::file::statistics::Statistics::ByteArray(s)) =
                meta.row_group(g).column(self.pos.source).statistics()
            else {
                return false;
            };
            match (s.min_opt(), s.max_opt()) {
                (Some(lo), Some(hi)) => {
                    source.as_bytes() < lo.data() || source.as_bytes() > hi.data()
                }
                _ => false,
            }
        })
    }

    /// Whether the file holds ticks of `symbol`.
    pub fn has_symbol(&self, symbol: &str) -> bool {
        self.index.runs.contains_key(symbol)
    }

    /// The names of the symbols in the file, in name order.
    pub fn symbols(&self) -> impl Iterator<Item = &str> {
        self.index.runs.keys().map(String::as_str)
    }

    fn corrupt(&self, why: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            why,
        }
    }

    fn pq(&self) -> impl Fn(ParquetError) -> StoreError + '_ {
        move |e| self.corrupt(e.to_string())
    }

    fn column(&self, group: usize, col: usize) -> Result<ColumnReader, StoreError> {
        let rg = self.file.get_row_group(group).map_err(self.pq())?;
        rg.get_column_reader(col).map_err(self.pq())
    }

    /// `symbol`'s rows with `lo <= ts_event_ns < hi`, as segments in (ts_event, seq) order.
    fn segments(&self, symbol: &str, lo: i64, hi: i64) -> Result<Vec<Segment>, StoreError> {
        let mut out = Vec::new();
        let Some(runs) = self.index.runs.get(symbol) else {
            return Ok(out);
        };
        for &[g, a, b] in runs {
            let (g, a, b) = (g as usize, a as usize, b as usize);
            // Row group statistics first; then, when the window cuts the run, its times.
            let (tmin, tmax) = self.time_bounds(g);
            if tmax < lo || tmin >= hi {
                continue;
            }
            if lo <= tmin && tmax < hi {
                out.push(Segment {
                    group: g,
                    start: a,
                    end: b,
                });
                continue;
            }
            let times = self.read_i64(g, self.pos.ts_event_ns, a, b - a)?;
            let s = times.partition_point(|&t| t < lo);
            let e = times.partition_point(|&t| t < hi);
            if s < e {
                out.push(Segment {
                    group: g,
                    start: a + s,
                    end: a + e,
                });
            }
        }
        Ok(out)
    }

    fn time_bounds(&self, group: usize) -> (i64, i64) {
        let meta = self.file.metadata().row_group(group);
        match meta.column(self.pos.ts_event_ns).statistics() {
            Some(parquet::file::statistics::Statistics::Int64(s)) => (
                s.min_opt().copied().unwrap_or(i64::MIN),
                s.max_opt().copied().unwrap_or(i64::MAX),
            ),
            _ => (i64::MIN, i64::MAX),
        }
    }

    /// `n` values of a required INT64 column from row `start` of `group`.
    fn read_i64(
        &self,
        group: usize,
        col: usize,
        start: usize,
        n: usize,
    ) -> Result<Vec<i64>, StoreError> {
        let ColumnReader::Int64ColumnReader(mut r) = self.column(group, col)? else {
            return Err(self.corrupt(format!("column {col} is not INT64")));
        };
        skip(&mut r, start).map_err(self.pq())?;
        let mut out = Vec::with_capacity(n);
        read_exact::<Int64Type>(&mut r, n, None, &mut out).map_err(self.pq())?;
        Ok(out)
    }

    fn source_name(&self, bytes: &ByteArray) -> Result<Arc<str>, StoreError> {
        let mut cache = self.sources.borrow_mut();
        if let Some((_, name)) = cache.iter().find(|(b, _)| b.data() == bytes.data()) {
            return Ok(name.clone());
        }
        let name: Arc<str> = Arc::from(
            std::str::from_utf8(bytes.data())
                .map_err(|_| self.corrupt("a source name is not UTF-8".into()))?,
        );
        cache.push((bytes.clone(), name.clone()));
        Ok(name)
    }

    /// Ticks of `symbols` (`None`: all) with `lo <= ts_event_ns < hi`, in (ts_event, seq)
    /// order: a k-way merge of one cursor per symbol, each holding one chunk of rows.
    pub fn range(
        &self,
        symbols: Option<&[&str]>,
        lo: i64,
        hi: i64,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<u64, super::reader::ReadError> {
        let cursors = self.cursors(symbols, lo, hi)?;
        merge(cursors, |r| (r.ts_event.0, r.seq.unwrap_or(0)), f)
    }

    /// One cursor per symbol of `symbols` (`None`: all) with rows in `lo <= ts_event_ns < hi`.
    fn cursors(
        &self,
        symbols: Option<&[&str]>,
        lo: i64,
        hi: i64,
    ) -> Result<Vec<Cursor<'_>>, StoreError> {
        let mut cursors = Vec::new();
        let names: Vec<&str> = match symbols {
            Some(s) => s.to_vec(),
            None => self.symbols().collect(),
        };
        for name in names {
            let segs = self.segments(name, lo, hi)?;
            if !segs.is_empty() {
                cursors.push(Cursor::new(self, Arc::from(name), segs));
            }
        }
        Ok(cursors)
    }

    /// Every tick: in `seq` order when [`ParquetDay::scans_in_seq_order`], else in file order
    /// (symbol, ts_event, seq).
    pub fn scan(
        &self,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<u64, super::reader::ReadError> {
        self.scan_symbols(None, f)
    }

    /// [`ParquetDay::scan`] of `symbols` (`None`: all): only their runs are read.
    pub fn scan_symbols(
        &self,
        symbols: Option<&[&str]>,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<u64, super::reader::ReadError> {
        let cursors = self.cursors(symbols, i64::MIN, i64::MAX)?;
        if self.scans_in_seq_order() {
            return merge(cursors, |r| (r.seq.unwrap_or(0), 0), f);
        }
        let mut n = 0;
        for c in cursors {
            n += c.drain(f)?;
        }
        Ok(n)
    }

    /// Whether [`ParquetDay::scan`] gives recording order: each symbol's rows, sorted by time,
    /// are also sorted by seq (no late or reordered ticks; noted when the file was written).
    pub fn scans_in_seq_order(&self) -> bool {
        self.summary.seq_sorted_per_symbol
    }

    /// The newest `n` ticks (by seq) of `symbols` (`None`: all), newest first.
    pub fn recent(
        &self,
        symbols: Option<&[&str]>,
        n: usize,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<u64, super::reader::ReadError> {
        use std::cmp::Reverse;
        let names: Vec<&str> = match symbols {
            Some(s) => s.to_vec(),
            None => self.symbols().collect(),
        };
        let mut segs: Vec<(Arc<str>, Segment)> = Vec::new();
        for name in names {
            let name_arc: Arc<str> = Arc::from(name);
            for s in self.segments(name, i64::MIN, i64::MAX)? {
                segs.push((name_arc.clone(), s));
            }
        }
        // Segments by their group's highest seq, newest first; stop once no segment left can
        // hold a seq above the n-th newest kept.
        segs.sort_by_key(|(_, s)| Reverse(self.seq_bounds[s.group].1));
        let mut kept: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
        let mut rows: Vec<TickRow> = Vec::new();
        for (name, seg) in segs {
            if n == 0 {
                break;
            }
            if kept.len() >= n
                && kept
                    .peek()
                    .is_some_and(|Reverse((s, _))| *s >= self.seq_bounds[seg.group].1)
            {
                break;
            }
            Cursor::new(self, name, vec![seg]).drain(&mut |r| {
                let s = r.seq.unwrap_or(0);
                if kept.len() < n {
                    kept.push(Reverse((s, rows.len())));
                    rows.push(r.clone());
                } else if kept.peek().is_some_and(|Reverse((m, _))| s > *m) {
                    if let Some(Reverse((_, slot))) = kept.pop() {
                        rows[slot] = r.clone();
                        kept.push(Reverse((s, slot)));
                    }
                }
                Ok(())
            })?;
        }
        let mut order: Vec<(i64, usize)> = kept.into_iter().map(|Reverse(k)| k).collect();
        order.sort_by_key(|&(s, _)| Reverse(s));
        for &(_, slot) in &order {
            f(&rows[slot]).map_err(super::reader::ReadError::Output)?;
        }
        Ok(order.len() as u64)
    }
}

/// Skips `n` records (whole pages without decompressing them).
fn skip<T: DataType>(r: &mut ColumnReaderImpl<T>, n: usize) -> Result<(), ParquetError> {
    let mut left = n;
    while left > 0 {
        let k = r.skip_records(left)?;
        if k == 0 {
            return Err(ParquetError::General(format!(
                "{left} rows short while skipping"
            )));
        }
        left -= k;
    }
    Ok(())
}

/// Reads exactly `n` records, appending values (and definition levels when given).
fn read_exact<T: DataType>(
    r: &mut ColumnReaderImpl<T>,
    n: usize,
    mut defs: Option<&mut Vec<i16>>,
    values: &mut Vec<T::T>,
) -> Result<(), ParquetError>
where
    Vec<T::T>: Default,
{
    let mut left = n;
    while left > 0 {
        let (records, _, _) = r.read_records(left, defs.as_deref_mut(), None, values)?;
        if records == 0 {
            return Err(ParquetError::General(format!("{left} rows short")));
        }
        left -= records;
    }
    Ok(())
}

/// A decimal column's reader.
enum DecReader {
    Narrow(ColumnReaderImpl<Int64Type>),
    Wide(ColumnReaderImpl<FixedLenByteArrayType>),
}

/// Column readers positioned in one segment.
struct SegmentReaders {
    seq: ColumnReaderImpl<Int64Type>,
    ts: ColumnReaderImpl<Int64Type>,
    recv: ColumnReaderImpl<Int64Type>,
    dec: [DecReader; 4],
    /// `Err`: the segment's one source, from the row group's statistics.
    source: Result<ColumnReaderImpl<ByteArrayType>, Arc<str>>,
    scales: ColumnReaderImpl<Int32Type>,
    left: usize,
}

/// One chunk of decoded columns.
#[derive(Default)]
struct Chunk {
    seq: Vec<i64>,
    ts: Vec<i64>,
    recv: Vec<i64>,
    narrow: [Vec<i64>; 4],
    wide: [Vec<FixedLenByteArray>; 4],
    defs: [Vec<i16>; 4],
    source: Vec<ByteArray>,
    /// Every row's source, when the column was not decoded.
    one_source: Option<Arc<str>>,
    scales: Vec<i32>,
    /// Rows decoded and checked: 0 until every column holds all of them (not the length of
    /// any one column, which a failed decode can leave part-filled).
    len: usize,
}

/// Rows per decoded chunk.
const CHUNK: usize = 2048;

/// One symbol's rows over its segments, a chunk of columns at a time, one row built at a time:
/// the current row is rewritten in place (its symbol and source names kept while they hold),
/// instead of a chunk of rows each holding clones of both names. With the source taken from
/// statistics ([`ParquetDay::open_for_queries`]) and zeros folded in steps (`Decimal::integer`):
/// `cargo bench --bench parquet_scan` over the bench's 10M-tick day (one symbol, 78,210 rows;
/// medians of 20 scans, three runs a side, alternating) 4.67, 5.45, 4.66M ticks/s with a row
/// per tick, 6.48, 6.47, 6.59M after (bests 5.0–6.2M against 8.1–9.1M).
struct Cursor<'a> {
    day: &'a ParquetDay,
    segs: VecDeque<Segment>,
    readers: Option<SegmentReaders>,
    chunk: Chunk,
    /// The chunk's row `at` is `row` once `built`.
    at: usize,
    built: bool,
    row: TickRow,
    /// Per decimal column, the index of row `at`'s value among the chunk's non-null values.
    next: [usize; 4],
    /// The chunk's row whose source `row` holds, if any.
    source_at: Option<usize>,
    /// Per decimal column, the last value read, its given scale and what it became (sizes repeat
    /// from tick to tick).
    last: [Option<(i128, u32, Decimal)>; 4],
}

impl<'a> Cursor<'a> {
    fn new(day: &'a ParquetDay, symbol: Arc<str>, segs: Vec<Segment>) -> Cursor<'a> {
        Cursor {
            day,
            segs: segs.into(),
            readers: None,
            chunk: Chunk::default(),
            at: 0,
            built: false,
            row: TickRow {
                symbol,
                ..TickRow::default()
            },
            next: [0; 4],
            source_at: None,
            last: [None; 4],
        }
    }

    /// The current row, reading the next chunk when needed; `None` at the end.
    fn peek(&mut self) -> Result<Option<&TickRow>, StoreError> {
        if self.at >= self.chunk.len {
            self.fill()?;
            if self.chunk.len == 0 {
                return Ok(None);
            }
        }
        if !self.built {
            self.build()?;
            self.built = true;
        }
        Ok(Some(&self.row))
    }

    /// Moves past the current row (built or not: its decimals are counted either way).
    fn advance(&mut self) {
        if self.at >= self.chunk.len {
            return;
        }
        for i in 0..4 {
            // Without a branch: whether a size is given is as good as random (`parquet_scan`,
            // medians, alternating: 5.25, 5.62, 5.27M ticks/s with it, 5.95, 6.09, 6.72M without).
            let given = self.chunk.defs[i].get(self.at).copied() == Some(1);
            self.next[i] += usize::from(given);
        }
        self.at += 1;
        self.built = false;
    }

    fn drain(
        mut self,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
    ) -> Result<u64, super::reader::ReadError> {
        let mut n = 0;
        while let Some(r) = self.peek()? {
            f(r).map_err(super::reader::ReadError::Output)?;
            n += 1;
            self.advance();
        }
        Ok(n)
    }

    fn open_segment(&self, seg: Segment) -> Result<SegmentReaders, StoreError> {
        let day = self.day;
        let pq = day.pq();
        let i64_col = |col: usize| -> Result<ColumnReaderImpl<Int64Type>, StoreError> {
            match day.column(seg.group, col)? {
                ColumnReader::Int64ColumnReader(mut r) => {
                    skip(&mut r, seg.start).map_err(&pq)?;
                    Ok(r)
                }
                _ => Err(day.corrupt(format!("column {col} is not INT64"))),
            }
        };
        let dec_col = |i: usize| -> Result<DecReader, StoreError> {
            match day.column(seg.group, day.pos.decimals[i])? {
                ColumnReader::Int64ColumnReader(mut r) if !day.shapes[i].wide => {
                    skip(&mut r, seg.start).map_err(&pq)?;
                    Ok(DecReader::Narrow(r))
                }
                ColumnReader::FixedLenByteArrayColumnReader(mut r) if day.shapes[i].wide => {
                    skip(&mut r, seg.start).map_err(&pq)?;
                    Ok(DecReader::Wide(r))
                }
                _ => Err(day.corrupt(format!("column {} has an unexpected type", DECIMALS[i]))),
            }
        };
        let source = match day.constant_source(seg.group)? {
            Some(name) => Err(name),
            None => {
                let ColumnReader::ByteArrayColumnReader(mut source) =
                    day.column(seg.group, day.pos.source)?
                else {
                    return Err(day.corrupt("column source is not BYTE_ARRAY".into()));
                };
                skip(&mut source, seg.start).map_err(&pq)?;
                Ok(source)
            }
        };
        let ColumnReader::Int32ColumnReader(mut scales) =
            day.column(seg.group, day.pos.given_scales)?
        else {
            return Err(day.corrupt("column given_scales is not INT32".into()));
        };
        skip(&mut scales, seg.start).map_err(&pq)?;
        Ok(SegmentReaders {
            seq: i64_col(day.pos.seq)?,
            ts: i64_col(day.pos.ts_event_ns)?,
            recv: i64_col(day.pos.ts_recv_ns)?,
            dec: [dec_col(0)?, dec_col(1)?, dec_col(2)?, dec_col(3)?],
            source,
            scales,
            left: seg.end - seg.start,
        })
    }

    /// Decodes the next chunk of columns (empty at the end).
    ///
    /// Long (~65 lines) on purpose: the decode loop of every Parquet read, one arm per column, the
    /// column readers borrowed only here.
    fn fill(&mut self) -> Result<(), StoreError> {
        self.chunk.len = 0;
        (self.at, self.next, self.source_at, self.built) = (0, [0; 4], None, false);
        loop {
            if self.readers.as_ref().is_none_or(|r| r.left == 0) {
                let Some(seg) = self.segs.pop_front() else {
                    self.readers = None;
                    return Ok(());
                };
                self.readers = Some(self.open_segment(seg)?);
            }
            if let Some(r) = &self.readers {
                if r.left > 0 {
                    break;
                }
            }
        }
        let day = self.day;
        let pq = day.pq();
        let c = &mut self.chunk;
        let Some(r) = self.readers.as_mut() else {
            return Ok(());
        };
        let n = r.left.min(CHUNK);
        r.left -= n;
        for v in [&mut c.seq, &mut c.ts, &mut c.recv] {
            v.clear();
        }
        read_exact(&mut r.seq, n, None, &mut c.seq).map_err(&pq)?;
        read_exact(&mut r.ts, n, None, &mut c.ts).map_err(&pq)?;
        read_exact(&mut r.recv, n, None, &mut c.recv).map_err(&pq)?;
        for i in 0..4 {
            c.defs[i].clear();
            c.narrow[i].clear();
            c.wide[i].clear();
            match &mut r.dec[i] {
                DecReader::Narrow(d) => read_exact(d, n, Some(&mut c.defs[i]), &mut c.narrow[i]),
                DecReader::Wide(d) => read_exact(d, n, Some(&mut c.defs[i]), &mut c.wide[i]),
            }
            .map_err(&pq)?;
        }
        c.source.clear();
        c.scales.clear();
        c.one_source = match &mut r.source {
            Ok(reader) => {
                read_exact(reader, n, None, &mut c.source).map_err(&pq)?;
                None
            }
            Err(name) => Some(name.clone()),
        };
        read_exact(&mut r.scales, n, None, &mut c.scales).map_err(&pq)?;
        let sources = if c.one_source.is_some() {
            n
        } else {
            c.source.len()
        };
        let lens = [
            c.seq.len(),
            c.ts.len(),
            c.recv.len(),
            sources,
            c.scales.len(),
        ];
        if lens.iter().any(|&l| l != n) || c.defs.iter().any(|d| d.len() != n) {
            return Err(day.corrupt(format!("a column chunk holds fewer than its {n} rows")));
        }
        c.len = n;
        Ok(())
    }

    /// Writes the chunk's row `at` into `row`.
    fn build(&mut self) -> Result<(), StoreError> {
        let (day, c, row) = (self.day, &self.chunk, self.at);
        let given = c.scales[row];
        let mut dec = [None; 4];
        for i in 0..4 {
            if c.defs[i][row] != 1 {
                continue;
            }
            let k = self.next[i];
            let value: i128 = if day.shapes[i].wide {
                let b = c.wide[i].get(k).map(|v| v.data()).unwrap_or_default();
                let bytes: [u8; 16] = b
                    .try_into()
                    .map_err(|_| day.corrupt(format!("{} is not 16 bytes", DECIMALS[i])))?;
                i128::from_be_bytes(bytes)
            } else {
                i128::from(c.narrow[i].get(k).copied().unwrap_or_default())
            };
            let g = ((given >> (4 * i)) & 15) as u32;
            dec[i] = match self.last[i] {
                Some((v, lg, d)) if v == value && lg == g => Some(d),
                _ => {
                    let d = unscale(value, day.shapes[i].scale, g).ok_or_else(|| {
                        day.corrupt(format!(
                            "seq {}: {} {value} at scale {} was not given with {g} decimals",
                            c.seq[row], DECIMALS[i], day.shapes[i].scale
                        ))
                    })?;
                    self.last[i] = Some((value, g, d));
                    Some(d)
                }
            };
        }
        match &c.one_source {
            Some(name) => {
                if !Arc::ptr_eq(&self.row.source, name) {
                    self.row.source = name.clone();
                }
            }
            None => {
                let same_source = self
                    .source_at
                    .is_some_and(|at| c.source[at].data() == c.source[row].data());
                if !same_source {
                    self.row.source = day.source_name(&c.source[row])?;
                }
                self.source_at = Some(row);
            }
        }
        let r = &mut self.row;
        r.seq = Some(c.seq[row]);
        r.ts_event = Timestamp(c.ts[row]);
        r.ts_recv = Timestamp(c.recv[row]);
        [r.bid, r.ask, r.bid_size, r.ask_size] = dec;
        Ok(())
    }
}

/// The decimal `value / 10^column_scale` as given with `given` decimal places; `None` when it
/// has more places than that or does not fit a tick's decimal.
fn unscale(value: i128, column_scale: u32, given: u32) -> Option<Decimal> {
    let drop = column_scale.checked_sub(given)?;
    // In u64 where the value fits (every narrow column): a machine division, not i128's.
    let m = match u64::try_from(value) {
        Ok(v) if drop == 0 => v,
        Ok(v) => {
            let p = 10u64.checked_pow(drop)?;
            if v % p != 0 {
                return None;
            }
            v / p
        }
        Err(_) => {
            let p = 10i128.checked_pow(drop)?;
            if value < 0 || value % p != 0 {
                return None;
            }
            u64::try_from(value / p).ok()?
        }
    };
    if given == 0 {
        return Decimal::from_integer(m);
    }
    (m <= MAX_MANTISSA && given <= MAX_SCALE).then(|| Decimal::from_parts(m, given))
}

/// Streams the rows of `cursors` in `key` order (each cursor's own rows are in that order).
fn merge(
    mut cursors: Vec<Cursor<'_>>,
    key: impl Fn(&TickRow) -> (i64, i64),
    f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
) -> Result<u64, super::reader::ReadError> {
    use std::cmp::Reverse;
    if cursors.len() == 1 {
        if let Some(c) = cursors.pop() {
            return c.drain(f);
        }
    }
    let mut heap = BinaryHeap::with_capacity(cursors.len());
    for (i, c) in cursors.iter_mut().enumerate() {
        if let Some(r) = c.peek()? {
            heap.push(Reverse((key(r), i)));
        }
    }
    let mut n = 0;
    while let Some(Reverse((_, i))) = heap.pop() {
        let c = &mut cursors[i];
        if let Some(r) = c.peek()? {
            f(r).map_err(super::reader::ReadError::Output)?;
            n += 1;
        }
        c.advance();
        if let Some(r) = c.peek()? {
            heap.push(Reverse((key(r), i)));
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    use rand::{Rng, SeedableRng};

    fn row(seq: i64, symbol: &str, ts: i64) -> TickRow {
        TickRow {
            seq: Some(seq),
            symbol: Arc::from(symbol),
            source: Arc::from("LP1"),
            ts_event: Timestamp(ts),
            ts_recv: Timestamp(ts + 40_000),
            bid: Decimal::parse("1.08502").ok(),
            ask: Decimal::parse("1.08507").ok(),
            bid_size: None,
            ask_size: None,
        }
    }

    type Gap<'a> = &'a dyn Fn(&mut rand::rngs::SmallRng) -> i64;

    /// Writes `runs` (symbol, rows, gap between its event times) as an archive; gives back
    /// the file and the time columns' miniblocks.
    fn write_runs(runs: &[(&str, usize, Gap)]) -> (tempfile::NamedTempFile, [usize; 3]) {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let mut shapes = Shapes::default();
        let rows: Vec<TickRow> = runs
            .iter()
            .flat_map(|&(sym, n, gap)| {
                let mut ts = 1_764_000_000_000_000_000i64;
                (0..n)
                    .map(|i| {
                        ts += gap(&mut rng);
                        row(i as i64 + 1, sym, ts)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        for r in &rows {
            shapes.observe_decimals(decimals(r));
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        let out = file.reopen().unwrap();
        let mut w = TickFileWriter::new(out, &shapes, Grouping::BySymbol, Levels::DEFAULT).unwrap();
        for r in &rows {
            w.push(r).unwrap();
        }
        w.flush_group().unwrap();
        let miniblocks = w.miniblocks;
        w.finish(None).unwrap();
        (file, miniblocks)
    }

    /// What could go wrong: columns encoded side by side landing in another order, or coming
    /// out different for the thread that took them (what the file holds is checked on reading
    /// by the archive and export tests).
    #[test]
    fn a_file_is_the_same_to_the_byte_on_one_thread_or_four() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut shapes = Shapes::default();
        let mut rows = Vec::new();
        // Several row groups (a group ends at a symbol boundary past GROUP_MIN_ROWS).
        for sym in ["AUDUSD", "EURUSD", "GBPUSD", "USDJPY"] {
            let mut ts = 1_764_000_000_000_000_000i64;
            for i in 0..GROUP_MIN_ROWS + 1000 {
                ts += rng.gen_range(1_000..5_000_000);
                rows.push(row(i as i64 + 1, sym, ts));
            }
        }
        for r in &rows {
            shapes.observe_decimals(decimals(r));
        }
        let write = |threads: usize| {
            let mut w =
                TickFileWriter::new(Vec::new(), &shapes, Grouping::BySymbol, Levels::DEFAULT)
                    .unwrap();
            w.encode_threads = threads;
            for r in &rows {
                w.push(r).unwrap();
            }
            let groups = w.group_index;
            (w.finish(None).unwrap().0, groups)
        };
        let (one, groups) = write(1);
        let (four, _) = write(4);
        assert!(groups >= 3, "{groups} row groups");
        assert!(
            one == four,
            "{} bytes on one thread, {} on four: they differ",
            one.len(),
            four.len()
        );
    }

    /// What could go wrong: a query that takes a row group's source from its statistics
    /// naming the wrong one where a group holds two, or a row built in place keeping a size or
    /// a source of the row before it.
    #[test]
    fn queries_read_back_every_row_as_written_with_one_source_a_group_or_several() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let mut shapes = Shapes::default();
        let mut rows = Vec::new();
        // Row groups end at a symbol boundary past GROUP_MIN_ROWS: AUDUSD's group has one
        // source, EURUSD's two; sizes are given or not at random.
        for (sym, sources) in [("AUDUSD", ["LP1", "LP1"]), ("EURUSD", ["LP1", "LP2"])] {
            let mut ts = 1_764_000_000_000_000_000i64;
            for i in 0..GROUP_MIN_ROWS + 500 {
                ts += rng.gen_range(1_000..5_000_000);
                let mut r = row(rows.len() as i64 + 1, sym, ts);
                r.source = Arc::from(sources[rng.gen_range(0..2)]);
                let size = |rng: &mut rand::rngs::SmallRng| {
                    rng.gen_bool(0.5)
                        .then(|| Decimal::from_integer(rng.gen_range(1..20) * 500_000))
                        .flatten()
                };
                (r.bid_size, r.ask_size) = (size(&mut rng), size(&mut rng));
                r.bid = Decimal::parse(&format!("1.{:05}", i % 100_000)).ok();
                rows.push(r);
            }
        }
        for r in &rows {
            shapes.observe_decimals(decimals(r));
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut w = TickFileWriter::new(
            file.reopen().unwrap(),
            &shapes,
            Grouping::BySymbol,
            Levels::DEFAULT,
        )
        .unwrap();
        for r in &rows {
            w.push(r).unwrap();
        }
        assert!(w.group_index >= 1, "two row groups");
        let summary = crate::store::archive::ArchiveSummary {
            day: chrono::NaiveDate::from_ymd_opt(2025, 11, 24).unwrap(),
            ticks: rows.len() as u64,
            symbols: 2,
            first_ts_event: None,
            last_ts_event: None,
            raw_bytes: 0,
            compact_bytes: 0,
            marks: Default::default(),
            imports: Default::default(),
            seq_sorted_per_symbol: true,
            row_digest: None,
        };
        w.finish(Some(&summary)).unwrap();
        for day in [
            ParquetDay::open(file.path()).unwrap(),
            ParquetDay::open_for_queries(file.path()).unwrap(),
        ] {
            let mut read = Vec::new();
            day.scan(&mut |r| {
                read.push(r.clone());
                Ok(())
            })
            .unwrap();
            read.sort_by_key(|r| r.seq);
            assert!(read == rows, "what was written reads back, row by row");
            let mut eurusd = Vec::new();
            day.range(Some(&["EURUSD"]), i64::MIN, i64::MAX, &mut |r| {
                eurusd.push(r.clone());
                Ok(())
            })
            .unwrap();
            let want: Vec<&TickRow> = rows.iter().filter(|r| &*r.symbol == "EURUSD").collect();
            assert!(eurusd.iter().eq(want.into_iter()), "one symbol's range");
            // Sources the groups' bounds rule out; within EURUSD's (LP1 to LP2), LP15 may be.
            for (source, lacks) in [
                ("LP1", false),
                ("LP2", false),
                ("LP15", false),
                ("LP3", true),
                ("AAA", true),
                ("lp1", true),
            ] {
                assert_eq!(day.lacks_source(source), lacks, "{source}");
            }
        }
    }

    /// First row of each page of column `col`, per row group.
    fn page_starts(path: &Path, col: usize) -> Vec<Vec<i64>> {
        let options = ReadOptionsBuilder::new().with_page_index().build();
        let r = SerializedFileReader::new_with_options(File::open(path).unwrap(), options).unwrap();
        (0..r.metadata().num_row_groups())
            .map(|g| {
                let index = r.metadata().page_index_for_row_group(g);
                let pages = index.offset_index(col).unwrap().page_locations();
                pages.iter().map(|p| p.first_row_index).collect()
            })
            .collect()
    }

    #[test]
    fn a_time_page_holds_one_symbols_run_and_long_runs_are_cut_evenly() {
        let ms = |_: &mut rand::rngs::SmallRng| 1_000_000;
        let (file, _) = write_runs(&[("A", 40_000, &ms), ("B", 100, &ms), ("C", 20_000, &ms)]);
        // Groups: A alone (it passed GROUP_MIN_ROWS), then B and C. The times: one page per
        // run, A's 40,000 rows in two of 20,000; the other columns: pages of the group.
        for col in [2, 3, 4] {
            assert_eq!(
                page_starts(file.path(), col),
                [vec![0, 20_000], vec![0, 100]]
            );
        }
        for col in [0, 1, 5, 9] {
            assert_eq!(page_starts(file.path(), col), [vec![0, 20_000], vec![0]]);
        }
        let r = SerializedFileReader::new(File::open(file.path()).unwrap()).unwrap();
        assert_eq!(r.metadata().file_metadata().num_rows(), 60_100);
    }

    #[test]
    fn each_time_column_takes_the_delta_layout_that_writes_it_smaller() {
        // Random (exponential) gaps: the largest of 32 is narrower than the largest of 64.
        let random = |r: &mut rand::rngs::SmallRng| 1 + (-(1.0 - r.gen::<f64>()).ln() * 5e9) as i64;
        assert_eq!(write_runs(&[("A", 20_000, &random)]).1, [8, 8, 8]);
        // Millisecond times with bursts and pauses, as many sources give them: whichever
        // writes smaller, column by column.
        let ms = |r: &mut rand::rngs::SmallRng| match r.gen_range(0..10) {
            0 => r.gen_range(1..5_000) * 1_000_000,
            _ => r.gen_range(0..3) * 1_000_000,
        };
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let mut ts = 0i64;
        let ns: Vec<i64> = (0..20_000)
            .map(|_| {
                ts += ms(&mut rng);
                ts
            })
            .collect();
        let us: Vec<i64> = ns.iter().map(|t| t / 1_000).collect();
        let all = 0..20_000;
        let pages = std::slice::from_ref(&all);
        let smaller = |v: &[i64]| {
            let b = |m| delta_column_bytes(v, pages, m, Levels::DEFAULT.times).unwrap();
            if b(8) < b(4) {
                8
            } else {
                4
            }
        };
        let want = [smaller(&ns), smaller(&us), smaller(&ns)];
        assert_eq!(write_runs(&[("A", 20_000, &ms)]).1, want);
    }

    #[test]
    fn unscaling_gives_back_the_decimal_as_given() {
        for text in [
            "1.08502", "1.0850", "9682", "9681.92", "0.003", "150", "1000000", "0",
        ] {
            let d = Decimal::parse(text).unwrap();
            let v = scaled(d, 6).unwrap();
            assert_eq!(unscale(v, 6, d.scale()), Some(d), "{text}");
        }
        // More places than claimed: refused, never rounded.
        assert_eq!(unscale(1_085_025, 6, 5), None);
        assert_eq!(unscale(-5, 6, 0), None);
    }
}
