//! Text formats of ticks: JSON Lines and CSV (read and written), and the aligned table (written).
//!
//! Each format's reader and writer live side by side in its own file. Readers turn one record
//! into a [`TickText`] borrowing from the input (no allocation per record) or a [`FieldError`]
//! naming the field and why; writers print [`TickRow`]s with the `ticks_v` column names.
//! Numbers are handled as text end to end: a price never passes through `f64`.

pub mod csv;
pub mod jsonl;
pub mod table;

use std::borrow::Cow;
use std::io::{self, Write};

use crate::tick::{Decimal, Price, Size, TickRow, Timestamp};

/// Column names of `ticks_v`, the order every writer uses.
pub const COLUMNS: [&str; 10] = [
    "seq",
    "symbol",
    "ts_event_ns",
    "ts_event",
    "ts_recv_ns",
    "bid",
    "ask",
    "bid_size",
    "ask_size",
    "source",
];

/// One input record, parsed and validated, borrowing its names from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickText<'a> {
    pub symbol: Cow<'a, str>,
    /// `None`: the recorder's default source (`BROKER_ID`).
    pub source: Option<Cow<'a, str>>,
    pub ts_event: Timestamp,
    /// `None`: stamped with the receive clock on ingest.
    pub ts_recv: Option<Timestamp>,
    pub bid: Option<Price>,
    pub ask: Option<Price>,
    pub bid_size: Option<Size>,
    pub ask_size: Option<Size>,
}

/// Why a record was rejected: the field and the reason. A field written `(record)` or
/// `(line)` means the whole record; it is left out of the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct FieldError {
    pub field: &'static str,
    pub why: String,
}

impl FieldError {
    fn render(&self) -> String {
        if self.field.starts_with('(') {
            self.why.clone()
        } else {
            format!("field `{}`: {}", self.field, self.why)
        }
    }

    /// A record that is not a JSON object, saying where in the record the parser stopped
    /// (serde's "line 1 column 65" is relative to the record, not the file).
    pub fn not_json(e: &serde_json::Error) -> FieldError {
        let text = e.to_string();
        let what = text.split(" at line ").next().unwrap_or(&text).to_owned();
        let where_ = if e.line() <= 1 {
            format!("byte {} of the record", e.column())
        } else {
            format!("line {} column {} of the record", e.line(), e.column())
        };
        FieldError::new("(record)", format!("not a JSON object: {what} ({where_})"))
    }

    pub fn new(field: &'static str, why: impl Into<String>) -> FieldError {
        FieldError {
            field,
            why: why.into(),
        }
    }
}

/// The raw text of each field of one record, before validation.
#[derive(Debug, Default)]
pub(crate) struct RawFields<'a> {
    pub symbol: Option<Cow<'a, str>>,
    pub source: Option<Cow<'a, str>>,
    pub ts_event: Option<&'a str>,
    pub ts_recv: Option<&'a str>,
    pub bid: Option<&'a str>,
    pub ask: Option<&'a str>,
    pub bid_size: Option<&'a str>,
    pub ask_size: Option<&'a str>,
}

impl<'a> RawFields<'a> {
    /// Shared validation of both input formats. Absent or empty means "not given".
    pub(crate) fn validate(self) -> Result<TickText<'a>, FieldError> {
        let symbol = self
            .symbol
            .filter(|s| !s.is_empty())
            .ok_or_else(|| FieldError::new("symbol", "missing"))?;
        let ts_event = self
            .ts_event
            .filter(|s| !s.is_empty())
            .ok_or_else(|| FieldError::new("ts_event", "missing"))
            .and_then(|s| timestamp("ts_event", s))?;
        let ts_recv = self
            .ts_recv
            .filter(|s| !s.is_empty())
            .map(|s| timestamp("ts_recv", s))
            .transpose()?;
        let bid = decimal("bid", self.bid)?;
        let ask = decimal("ask", self.ask)?;
        let bid_size = decimal("bid_size", self.bid_size)?;
        let ask_size = decimal("ask_size", self.ask_size)?;
        if bid.is_none() && bid_size.is_some() {
            return Err(FieldError::new("bid_size", "given without a bid"));
        }
        if ask.is_none() && ask_size.is_some() {
            return Err(FieldError::new("ask_size", "given without an ask"));
        }
        Ok(TickText {
            symbol,
            source: self.source.filter(|s| !s.is_empty()),
            ts_event,
            ts_recv,
            bid,
            ask,
            bid_size,
            ask_size,
        })
    }
}

fn decimal(field: &'static str, text: Option<&str>) -> Result<Option<Decimal>, FieldError> {
    match text {
        None | Some("") => Ok(None),
        Some(t) => Decimal::parse(t)
            .map(Some)
            .map_err(|e| FieldError::new(field, format!("{e}: {t:?}"))),
    }
}

fn timestamp(field: &'static str, text: &str) -> Result<Timestamp, FieldError> {
    Timestamp::parse(text).map_err(|e| FieldError::new(field, e.to_string()))
}

/// A sink for query results in one output format.
pub trait RowWriter {
    fn write_row(&mut self, row: &TickRow) -> io::Result<()>;
    /// Flushes; the table format prints what it buffered.
    fn finish(&mut self) -> io::Result<()>;
}

/// Output formats of `tickrec query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum OutputFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// CSV with a header row of the `ticks_v` column names.
    Csv,
    /// One JSON object per line, keys as the `ticks_v` columns.
    Jsonl,
}

/// A writer for `format` over `out`.
pub fn row_writer<'w, W: Write + 'w>(format: OutputFormat, out: W) -> Box<dyn RowWriter + 'w> {
    match format {
        OutputFormat::Table => Box::new(table::TableWriter::new(out)),
        OutputFormat::Csv => Box::new(csv::CsvWriter::new(out)),
        OutputFormat::Jsonl => Box::new(jsonl::JsonlWriter::new(out)),
    }
}

/// [`row_writer`] for an output that already holds rows of `format` (a file resumed): no CSV
/// header again.
pub fn row_writer_continuing<'w, W: Write + 'w>(
    format: OutputFormat,
    out: W,
) -> Box<dyn RowWriter + 'w> {
    match format {
        OutputFormat::Csv => Box::new(csv::CsvWriter::continuing(out)),
        _ => row_writer(format, out),
    }
}

/// Text of an optional decimal: empty when absent.
pub(crate) fn opt_text(d: Option<Decimal>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}
