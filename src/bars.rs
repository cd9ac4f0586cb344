//! Bars: open, high, low, close, tick count and spread range of one symbol per time interval,
//! computed exactly from a time-ordered stream of ticks and emitted as each interval ends.
//!
//! Intervals are aligned to UTC midnight (an interval divides the day). The price of a tick is
//! its mid, bid or ask; a tick without that price does not count in the bar, and the spread
//! range covers the ticks with both sides. Every figure is exact: prices stay decimals
//! ([`Fixed`]: an integer count of 10^-scale units), the mid gets one more decimal place than
//! its two sides, and a crossed quote has a negative spread.

use std::io::Write;

use serde::Serialize;

use crate::format::OutputFormat;
use crate::tick::{Decimal, TickRow, Timestamp, MAX_SCALE, NANOS_PER_DAY, NANOS_PER_SEC};

/// Which price a bar follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum PriceSide {
    /// (bid + ask) / 2, ticks with both sides.
    #[default]
    Mid,
    Bid,
    Ask,
}

/// An exact signed decimal: `value × 10^-scale`.
#[derive(Debug, Clone, Copy)]
pub struct Fixed {
    value: i128,
    scale: u32,
}

impl Fixed {
    fn of(d: Decimal) -> Option<Fixed> {
        let (m, s) = d.to_scaled()?;
        Some(Fixed {
            value: i128::from(m),
            scale: s,
        })
    }

    fn at(self, scale: u32) -> i128 {
        self.value * 10i128.pow(scale - self.scale)
    }

    fn sub(self, other: Fixed) -> Fixed {
        let scale = self.scale.max(other.scale);
        Fixed {
            value: self.at(scale) - other.at(scale),
            scale,
        }
    }

    /// (a + b) / 2 with one more decimal place (at most [`MAX_SCALE`]; past it, the last
    /// digit is rounded half to even).
    fn mid(a: Fixed, b: Fixed) -> Fixed {
        let scale = a.scale.max(b.scale);
        let sum = a.at(scale) + b.at(scale);
        if scale < MAX_SCALE {
            return Fixed {
                value: sum * 5,
                scale: scale + 1,
            };
        }
        let (half, odd) = (sum / 2, sum % 2 != 0);
        Fixed {
            value: if odd && half % 2 != 0 { half + 1 } else { half },
            scale,
        }
    }

    fn cmp_value(self, other: Fixed) -> std::cmp::Ordering {
        let scale = self.scale.max(other.scale);
        self.at(scale).cmp(&other.at(scale))
    }
}

impl std::fmt::Display for Fixed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.value < 0 { "-" } else { "" };
        let v = self.value.unsigned_abs();
        if self.scale == 0 {
            return write!(f, "{sign}{v}");
        }
        let unit = 10u128.pow(self.scale);
        write!(
            f,
            "{sign}{}.{:0width$}",
            v / unit,
            v % unit,
            width = self.scale as usize
        )
    }
}

impl Serialize for Fixed {
    /// As text, like every price in the JSON output: exact.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A bar interval: a whole number of seconds that divides a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval(i64);

impl Interval {
    /// `30s`, `1m`, `5m`, `1h`, `1d`, …: a count and a unit (s, m, h, d).
    pub fn parse(text: &str) -> Result<Interval, String> {
        let t = text.trim();
        let (count, unit) = t.split_at(t.len().saturating_sub(1));
        let unit_ns = match unit {
            "s" => NANOS_PER_SEC,
            "m" => 60 * NANOS_PER_SEC,
            "h" => 3_600 * NANOS_PER_SEC,
            "d" => NANOS_PER_DAY,
            _ => {
                return Err(format!(
                    "{text:?}: give a count and a unit, s, m, h or d (1m)"
                ))
            }
        };
        let count: i64 = count
            .parse()
            .map_err(|_| format!("{text:?}: the count is not a whole number"))?;
        let ns = count
            .checked_mul(unit_ns)
            .filter(|&ns| ns > 0 && ns <= NANOS_PER_DAY && NANOS_PER_DAY % ns == 0)
            .ok_or_else(|| format!("{text:?}: an interval must divide a day (1s … 1d)"))?;
        Ok(Interval(ns))
    }

    pub fn nanos(self) -> i64 {
        self.0
    }

    fn start_of(self, t: Timestamp) -> i64 {
        t.0.div_euclid(self.0) * self.0
    }
}

/// One bar.
#[derive(Debug, Clone, Serialize)]
pub struct Bar {
    #[serde(serialize_with = "as_str")]
    pub symbol: std::sync::Arc<str>,
    /// Start of the interval (UTC), inclusive.
    pub start: Timestamp,
    pub open: Fixed,
    pub high: Fixed,
    pub low: Fixed,
    pub close: Fixed,
    pub ticks: u64,
    /// Smallest and largest ask − bid among the bar's ticks with both sides.
    pub spread_min: Option<Fixed>,
    pub spread_max: Option<Fixed>,
}

fn as_str<S: serde::Serializer>(v: &std::sync::Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v)
}

/// Turns a time-ordered tick stream into bars, one interval at a time.
pub struct BarBuilder {
    interval: Interval,
    side: PriceSide,
    bar: Option<Bar>,
}

impl BarBuilder {
    pub fn new(interval: Interval, side: PriceSide) -> BarBuilder {
        BarBuilder {
            interval,
            side,
            bar: None,
        }
    }

    /// Adds a tick (at or after the previous one's `ts_event`); returns the bar it closed.
    pub fn push(&mut self, row: &TickRow) -> Option<Bar> {
        let (bid, ask) = (row.bid.and_then(Fixed::of), row.ask.and_then(Fixed::of));
        let price = match self.side {
            PriceSide::Mid => match (bid, ask) {
                (Some(b), Some(a)) => Fixed::mid(b, a),
                _ => return None,
            },
            PriceSide::Bid => bid?,
            PriceSide::Ask => ask?,
        };
        let spread = bid.zip(ask).map(|(b, a)| a.sub(b));
        let start = self.interval.start_of(row.ts_event);
        let closed = match &self.bar {
            Some(b) if b.start.0 == start => None,
            _ => self.bar.take(),
        };
        match &mut self.bar {
            Some(b) => {
                if price.cmp_value(b.high).is_gt() {
                    b.high = price;
                }
                if price.cmp_value(b.low).is_lt() {
                    b.low = price;
                }
                b.close = price;
                b.ticks += 1;
                if let Some(s) = spread {
                    b.spread_min = Some(match b.spread_min {
                        Some(m) if m.cmp_value(s).is_le() => m,
                        _ => s,
                    });
                    b.spread_max = Some(match b.spread_max {
                        Some(m) if m.cmp_value(s).is_ge() => m,
                        _ => s,
                    });
                }
            }
            None => {
                self.bar = Some(Bar {
                    symbol: row.symbol.clone(),
                    start: Timestamp(start),
                    open: price,
                    high: price,
                    low: price,
                    close: price,
                    ticks: 1,
                    spread_min: spread,
                    spread_max: spread,
                })
            }
        }
        closed
    }

    /// The last bar, once the stream has ended.
    pub fn finish(self) -> Option<Bar> {
        self.bar
    }
}

/// Column names of the bar output.
pub const BAR_COLUMNS: [&str; 9] = [
    "symbol",
    "start",
    "open",
    "high",
    "low",
    "close",
    "ticks",
    "spread_min",
    "spread_max",
];

/// Writes bars in one of the query output formats.
pub struct BarWriter<W: Write> {
    format: OutputFormat,
    out: W,
    rows: u64,
}

impl<W: Write> BarWriter<W> {
    pub fn new(format: OutputFormat, out: W) -> BarWriter<W> {
        BarWriter {
            format,
            out,
            rows: 0,
        }
    }

    pub fn write(&mut self, bar: &Bar) -> std::io::Result<()> {
        let opt = |f: Option<Fixed>| f.map(|f| f.to_string()).unwrap_or_default();
        let fields = [
            bar.symbol.to_string(),
            bar.start.to_string(),
            bar.open.to_string(),
            bar.high.to_string(),
            bar.low.to_string(),
            bar.close.to_string(),
            bar.ticks.to_string(),
            opt(bar.spread_min),
            opt(bar.spread_max),
        ];
        match self.format {
            OutputFormat::Jsonl => {
                serde_json::to_writer(&mut self.out, bar)?;
                self.out.write_all(b"\n")?;
            }
            OutputFormat::Csv => {
                if self.rows == 0 {
                    writeln!(self.out, "{}", BAR_COLUMNS.join(","))?;
                }
                // Symbols and numbers hold no comma or quote (symbols are FIX Symbol values,
                // checked on the way in); the timestamp is ISO 8601.
                writeln!(self.out, "{}", fields.join(","))?;
            }
            OutputFormat::Table => {
                if self.rows == 0 {
                    writeln!(
                        self.out,
                        "{:<10} {:<30} {:>12} {:>12} {:>12} {:>12} {:>7} {:>10} {:>10}",
                        BAR_COLUMNS[0],
                        BAR_COLUMNS[1],
                        BAR_COLUMNS[2],
                        BAR_COLUMNS[3],
                        BAR_COLUMNS[4],
                        BAR_COLUMNS[5],
                        BAR_COLUMNS[6],
                        BAR_COLUMNS[7],
                        BAR_COLUMNS[8]
                    )?;
                }
                writeln!(
                    self.out,
                    "{:<10} {:<30} {:>12} {:>12} {:>12} {:>12} {:>7} {:>10} {:>10}",
                    fields[0],
                    fields[1],
                    fields[2],
                    fields[3],
                    fields[4],
                    fields[5],
                    fields[6],
                    fields[7],
                    fields[8]
                )?;
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// Flushes; an empty table says so.
    pub fn finish(mut self) -> std::io::Result<u64> {
        if self.rows == 0 && self.format == OutputFormat::Table {
            writeln!(self.out, "(no bars)")?;
        }
        self.out.flush()?;
        Ok(self.rows)
    }
}

/// Writes bars as Parquet (`tickrec export --bars`): `symbol`, `start` (UTC timestamp, µs),
/// `open`, `high`, `low`, `close` (DECIMAL(38, s)), `ticks` (INT64), `spread_min`,
/// `spread_max` (DECIMAL(38, s), NULL without a two-sided tick). `s` is the largest scale of
/// the file's figures, learnt by [`BarScale::observe`] over the same bars first (a Parquet
/// schema is fixed per file); every value is exact at it.
pub struct BarParquetWriter<W: Write + Send> {
    writer: parquet::file::writer::SerializedFileWriter<W>,
    scale: u32,
    buffered: Vec<Bar>,
    rows: u64,
}

/// The largest scale among bars' figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct BarScale(u32);

impl BarScale {
    pub fn observe(&mut self, bar: &Bar) {
        for f in [
            Some(bar.open),
            Some(bar.high),
            Some(bar.low),
            Some(bar.close),
            bar.spread_min,
            bar.spread_max,
        ]
        .into_iter()
        .flatten()
        {
            self.0 = self.0.max(f.scale);
        }
    }
}

/// Bars per Parquet row group.
const BAR_GROUP: usize = 1 << 16;

impl<W: Write + Send> BarParquetWriter<W> {
    pub fn new(out: W, scale: BarScale) -> std::io::Result<Self> {
        use parquet::basic::{Compression, ZstdLevel};
        use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
        let io = |e: parquet::errors::ParquetError| std::io::Error::other(e);
        let s = scale.0;
        let schema = format!(
            "message bars {{
                required binary symbol (STRING);
                required int64 start (TIMESTAMP(MICROS,true));
                required fixed_len_byte_array(16) open (DECIMAL(38,{s}));
                required fixed_len_byte_array(16) high (DECIMAL(38,{s}));
                required fixed_len_byte_array(16) low (DECIMAL(38,{s}));
                required fixed_len_byte_array(16) close (DECIMAL(38,{s}));
                required int64 ticks (INTEGER(64,true));
                optional fixed_len_byte_array(16) spread_min (DECIMAL(38,{s}));
                optional fixed_len_byte_array(16) spread_max (DECIMAL(38,{s}));
            }}"
        );
        let schema =
            std::sync::Arc::new(parquet::schema::parser::parse_message_type(&schema).map_err(io)?);
        let props = WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_2_0)
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(9).map_err(io)?))
            .set_statistics_enabled(EnabledStatistics::Page)
            .build();
        let writer = parquet::file::writer::SerializedFileWriter::new(
            out,
            schema,
            std::sync::Arc::new(props),
        )
        .map_err(io)?;
        Ok(BarParquetWriter {
            writer,
            scale: s,
            buffered: Vec::new(),
            rows: 0,
        })
    }

    pub fn write(&mut self, bar: &Bar) -> std::io::Result<()> {
        if self.scale
            < bar
                .open
                .scale
                .max(bar.high.scale)
                .max(bar.low.scale)
                .max(bar.close.scale)
        {
            return Err(std::io::Error::other(
                "a bar has more decimal places than its file's scale",
            ));
        }
        self.buffered.push(bar.clone());
        self.rows += 1;
        if self.buffered.len() >= BAR_GROUP {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        use parquet::column::writer::ColumnWriter;
        use parquet::data_type::{ByteArray, FixedLenByteArray};
        if self.buffered.is_empty() {
            return Ok(());
        }
        let io = |e: parquet::errors::ParquetError| std::io::Error::other(e);
        let scale = self.scale;
        let dec = |f: Fixed| FixedLenByteArray::from(f.at(scale).to_be_bytes().to_vec());
        let bars = std::mem::take(&mut self.buffered);
        let mut group = self.writer.next_row_group().map_err(io)?;
        let mut column = 0usize;
        while let Some(mut col) = group.next_column().map_err(io)? {
            let written = match (col.untyped(), column) {
                (ColumnWriter::ByteArrayColumnWriter(w), 0) => {
                    let v: Vec<ByteArray> = bars
                        .iter()
                        .map(|b| ByteArray::from(b.symbol.as_bytes().to_vec()))
                        .collect();
                    w.write_batch(&v, None, None)
                }
                (ColumnWriter::Int64ColumnWriter(w), 1) => {
                    let v: Vec<i64> = bars.iter().map(|b| b.start.0.div_euclid(1_000)).collect();
                    w.write_batch(&v, None, None)
                }
                (ColumnWriter::FixedLenByteArrayColumnWriter(w), 2..=5) => {
                    let v: Vec<FixedLenByteArray> = bars
                        .iter()
                        .map(|b| dec([b.open, b.high, b.low, b.close][column - 2]))
                        .collect();
                    w.write_batch(&v, None, None)
                }
                (ColumnWriter::Int64ColumnWriter(w), 6) => {
                    let v: Vec<i64> = bars
                        .iter()
                        .map(|b| i64::try_from(b.ticks).unwrap_or(i64::MAX))
                        .collect();
                    w.write_batch(&v, None, None)
                }
                (ColumnWriter::FixedLenByteArrayColumnWriter(w), 7 | 8) => {
                    let side = |b: &Bar| {
                        if column == 7 {
                            b.spread_min
                        } else {
                            b.spread_max
                        }
                    };
                    let v: Vec<FixedLenByteArray> = bars.iter().filter_map(side).map(dec).collect();
                    let defs: Vec<i16> =
                        bars.iter().map(|b| i16::from(side(b).is_some())).collect();
                    w.write_batch(&v, Some(&defs), None)
                }
                _ => {
                    return Err(std::io::Error::other(format!(
                        "bar schema and writer disagree at column {column}"
                    )))
                }
            };
            written.map_err(io)?;
            col.close().map_err(io)?;
            column += 1;
        }
        group.close().map_err(io)?;
        Ok(())
    }

    /// Writes the last row group and the footer; returns the output and the bar count.
    pub fn finish(mut self) -> std::io::Result<(W, u64)> {
        self.flush()?;
        let out = self.writer.into_inner().map_err(std::io::Error::other)?;
        Ok((out, self.rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn row(ts: i64, bid: Option<&str>, ask: Option<&str>) -> TickRow {
        TickRow {
            seq: None,
            symbol: "EURUSD".into(),
            source: "LP".into(),
            ts_event: Timestamp(ts),
            ts_recv: Timestamp(ts),
            bid: bid.map(|b| Decimal::parse(b).unwrap()),
            ask: ask.map(|a| Decimal::parse(a).unwrap()),
            bid_size: None,
            ask_size: None,
        }
    }

    #[test]
    fn exact_figures_and_crossed_quotes() {
        let mut b = BarBuilder::new(Interval::parse("1m").unwrap(), PriceSide::Mid);
        let m = 60 * NANOS_PER_SEC;
        assert!(b.push(&row(m, Some("1.08502"), Some("1.08510"))).is_none());
        assert!(b
            .push(&row(m + 1, Some("1.08520"), Some("1.08515")))
            .is_none());
        assert!(b.push(&row(m + 2, None, Some("1.2"))).is_none(), "no mid");
        let bar = b.push(&row(3 * m, Some("1.1"), Some("1.1"))).unwrap();
        assert_eq!(bar.start, Timestamp(m));
        assert_eq!(bar.open.to_string(), "1.085060");
        assert_eq!(bar.high.to_string(), "1.085175");
        assert_eq!(bar.close.to_string(), "1.085175");
        assert_eq!(bar.ticks, 2);
        assert_eq!(bar.spread_min.unwrap().to_string(), "-0.00005");
        assert_eq!(bar.spread_max.unwrap().to_string(), "0.00008");
        assert_eq!(b.finish().unwrap().start, Timestamp(3 * m));
        assert!(Interval::parse("7m").is_err(), "does not divide a day");
        assert!(Interval::parse("0s").is_err());
        assert!(Interval::parse("1x").is_err());
        assert_eq!(Interval::parse("1d").unwrap().nanos(), NANOS_PER_DAY);
    }

    proptest::proptest! {
        /// The streamed bars equal a naive grouping of the same ticks.
        #[test]
        fn bars_equal_a_naive_recomputation(
            ticks in proptest::collection::vec((0i64..600, 0u64..2000, 0u64..2000, 0u8..4), 0..300),
            side in 0usize..3,
        ) {
            let side = [PriceSide::Mid, PriceSide::Bid, PriceSide::Ask][side];
            let mut ticks = ticks;
            ticks.sort_by_key(|t| t.0);
            let rows: Vec<TickRow> = ticks
                .iter()
                .map(|&(s, b, a, missing)| {
                    let b = format!("1.{b:04}");
                    let a = format!("1.{a:03}");
                    row(
                        s * NANOS_PER_SEC,
                        (missing != 1).then_some(b.as_str()),
                        (missing != 2).then_some(a.as_str()),
                    )
                })
                .collect();
            let interval = Interval::parse("1m").unwrap();
            let mut builder = BarBuilder::new(interval, side);
            let mut got: Vec<Bar> = rows.iter().filter_map(|r| builder.push(r)).collect();
            got.extend(builder.finish());
            // Naive: group the prices by interval, in a map; values compared as f64-free text.
            let mut naive: BTreeMap<i64, Vec<(Fixed, Option<Fixed>)>> = BTreeMap::new();
            for r in &rows {
                let (b, a) = (r.bid.and_then(Fixed::of), r.ask.and_then(Fixed::of));
                let p = match side {
                    PriceSide::Mid => b.zip(a).map(|(b, a)| Fixed::mid(b, a)),
                    PriceSide::Bid => b,
                    PriceSide::Ask => a,
                };
                if let Some(p) = p {
                    naive
                        .entry(r.ts_event.0.div_euclid(interval.nanos()) * interval.nanos())
                        .or_default()
                        .push((p, b.zip(a).map(|(b, a)| a.sub(b))));
                }
            }
            proptest::prop_assert_eq!(got.len(), naive.len());
            for (bar, (start, ps)) in got.iter().zip(&naive) {
                let key = |f: &Fixed| f.at(MAX_SCALE);
                proptest::prop_assert_eq!(bar.start.0, *start);
                proptest::prop_assert_eq!(bar.ticks, ps.len() as u64);
                proptest::prop_assert_eq!(key(&bar.open), key(&ps[0].0));
                proptest::prop_assert_eq!(key(&bar.close), key(&ps[ps.len() - 1].0));
                proptest::prop_assert_eq!(Some(key(&bar.high)), ps.iter().map(|p| key(&p.0)).max());
                proptest::prop_assert_eq!(Some(key(&bar.low)), ps.iter().map(|p| key(&p.0)).min());
                let spreads: Vec<i128> = ps.iter().filter_map(|p| p.1.map(|s| key(&s))).collect();
                proptest::prop_assert_eq!(bar.spread_min.map(|s| key(&s)), spreads.iter().min().copied());
                proptest::prop_assert_eq!(bar.spread_max.map(|s| key(&s)), spreads.iter().max().copied());
            }
        }
    }
}
