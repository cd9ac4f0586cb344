//! JSON Lines ticks.
//!
//! Read: one object per line with keys `symbol, bid, ask, bid_size, ask_size, source, ts_event`
//! and optionally `ts_recv`. Prices and sizes are JSON numbers or numeric strings and are read
//! as their literal text (never as `f64`); an absent side is `null` or a missing key;
//! `ts_event`/`ts_recv` are RFC 3339 text or integer nanoseconds. Other keys are ignored, so
//! the output of `tickrec query --format jsonl` and the dead-letter files read back as input.
//!
//! Write: the `ticks_v` columns, prices as JSON numbers printed with their exact decimals.

use std::borrow::Cow;
use std::io::{self, Write};

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{FieldError, RawFields, RowWriter, TickText};
use crate::tick::TickRow;

#[derive(Deserialize)]
struct Line<'a> {
    /// Read by [`parse_row`] only: input with a `seq` of any kind reads as it did without.
    #[serde(borrow, default)]
    seq: Option<&'a RawValue>,
    #[serde(borrow, default)]
    symbol: Option<&'a RawValue>,
    #[serde(borrow, default)]
    source: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ts_event: Option<&'a RawValue>,
    #[serde(borrow, default, alias = "ts_recv_ns")]
    ts_recv: Option<&'a RawValue>,
    #[serde(borrow, default)]
    bid: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ask: Option<&'a RawValue>,
    #[serde(borrow, default)]
    bid_size: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ask_size: Option<&'a RawValue>,
}

/// Parses one line. Blank lines are the caller's business (they are not records).
pub fn parse_line(line: &str) -> Result<TickText<'_>, FieldError> {
    parse(line)?.1.validate()
}

/// One line's `seq` and fields, as text.
fn parse(line: &str) -> Result<(Option<&RawValue>, RawFields<'_>), FieldError> {
    let parsed: Line<'_> = serde_json::from_str(line).map_err(|e| FieldError::not_json(&e))?;
    let fields = RawFields {
        symbol: name("symbol", parsed.symbol)?,
        source: name("source", parsed.source)?,
        ts_event: scalar("ts_event", parsed.ts_event)?,
        ts_recv: scalar("ts_recv", parsed.ts_recv)?,
        bid: scalar("bid", parsed.bid)?,
        ask: scalar("ask", parsed.ask)?,
        bid_size: scalar("bid_size", parsed.bid_size)?,
        ask_size: scalar("ask_size", parsed.ask_size)?,
    };
    Ok((parsed.seq, fields))
}

/// A stored row as the writer above prints it (the live fan-out's tick lines, `query` and `tail`
/// output) back into a [`TickRow`], with its `seq` (`None` when the line has none). A line
/// without `source` or `ts_recv_ns` is not such a row.
pub fn parse_row(line: &str) -> Result<TickRow, FieldError> {
    let (seq, fields) = parse(line)?;
    let seq = scalar("seq", seq)?
        .map(|s| s.parse::<i64>())
        .transpose()
        .map_err(|e| FieldError::new("seq", e.to_string()))?;
    let text = fields.validate()?;
    Ok(TickRow {
        seq,
        symbol: text.symbol.into(),
        source: text
            .source
            .ok_or_else(|| FieldError::new("source", "missing"))?
            .into(),
        ts_event: text.ts_event,
        ts_recv: text
            .ts_recv
            .ok_or_else(|| FieldError::new("ts_recv_ns", "missing"))?,
        bid: text.bid,
        ask: text.ask,
        bid_size: text.bid_size,
        ask_size: text.ask_size,
    })
}

/// A JSON string (unescaped only when it has escapes); `null` is "not given".
pub(crate) fn name<'a>(
    field: &'static str,
    raw: Option<&'a RawValue>,
) -> Result<Option<Cow<'a, str>>, FieldError> {
    let Some(raw) = raw else { return Ok(None) };
    let s = raw.get();
    if s == "null" {
        return Ok(None);
    }
    match s.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        Some(inner) if !inner.contains('\\') => Ok(Some(Cow::Borrowed(inner))),
        Some(_) => serde_json::from_str::<String>(s)
            .map(|v| Some(Cow::Owned(v)))
            .map_err(|e| FieldError::new(field, e.to_string())),
        None => Err(FieldError::new(
            field,
            format!("expected a string, got {s}"),
        )),
    }
}

/// The literal text of a number, or of a string holding one; `null` is "not given".
pub(crate) fn scalar<'a>(
    field: &'static str,
    raw: Option<&'a RawValue>,
) -> Result<Option<&'a str>, FieldError> {
    let Some(raw) = raw else { return Ok(None) };
    let s = raw.get();
    if s == "null" {
        return Ok(None);
    }
    if let Some(inner) = s.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        if inner.contains('\\') {
            return Err(FieldError::new(field, "escaped characters in a number"));
        }
        return Ok(Some(inner));
    }
    if s.starts_with(['{', '[']) || s == "true" || s == "false" {
        return Err(FieldError::new(
            field,
            format!("expected a number, got {s}"),
        ));
    }
    Ok(Some(s))
}

/// Writes rows as JSON Lines.
pub struct JsonlWriter<W: Write> {
    out: W,
    /// The line being made (reused).
    line: Vec<u8>,
}

impl<W: Write> JsonlWriter<W> {
    pub fn new(out: W) -> JsonlWriter<W> {
        JsonlWriter {
            out,
            line: Vec::with_capacity(256),
        }
    }

    /// The output, for lines of other kinds between rows.
    pub fn inner(&mut self) -> &mut W {
        &mut self.out
    }
}

impl<W: Write> RowWriter for JsonlWriter<W> {
    fn write_row(&mut self, row: &TickRow) -> io::Result<()> {
        self.line.clear();
        encode_json_row(&mut self.line, row, None);
        self.out.write_all(&self.line)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// One row as a JSON object and newline; `extra` adds a `"key":"value"` pair at the end (the
/// dead-letter files use it for the error).
pub fn write_json_row(
    out: &mut impl Write,
    row: &TickRow,
    extra: Option<(&str, &str)>,
) -> io::Result<()> {
    let mut line = Vec::with_capacity(256);
    encode_json_row(&mut line, row, extra);
    out.write_all(&line)
}

use crate::tick::{push_i64, Decimal, Tick, Timestamp};

/// [`write_json_row`] appending to a buffer, without the formatting machinery (tails and the
/// live fan-out write every tick through it: it is 3x faster than `write!` with `Display`).
pub fn encode_json_row(out: &mut Vec<u8>, row: &TickRow, extra: Option<(&str, &str)>) {
    let view = RowView {
        seq: row.seq,
        symbol: &row.symbol,
        source: &row.source,
        ts_event: row.ts_event,
        ts_recv: row.ts_recv,
        sides: [row.bid, row.ask, row.bid_size, row.ask_size],
    };
    encode_view(out, &view, extra);
}

/// [`encode_json_row`] of a tick and its names as they are, for a caller that holds the names
/// already (the live fan-out: no [`TickRow`], so no reference counts touched per tick).
pub fn encode_json_tick(out: &mut Vec<u8>, t: &Tick, seq: Option<i64>, symbol: &str, source: &str) {
    let view = RowView {
        seq,
        symbol,
        source,
        ts_event: t.ts_event,
        ts_recv: t.ts_recv,
        sides: [t.bid, t.ask, t.bid_size, t.ask_size],
    };
    encode_view(out, &view, None);
}

/// One row's fields, borrowed.
struct RowView<'a> {
    seq: Option<i64>,
    symbol: &'a str,
    source: &'a str,
    ts_event: Timestamp,
    ts_recv: Timestamp,
    /// bid, ask, bid_size, ask_size
    sides: [Option<Decimal>; 4],
}

fn encode_view(out: &mut Vec<u8>, row: &RowView<'_>, extra: Option<(&str, &str)>) {
    out.push(b'{');
    if let Some(seq) = row.seq {
        out.extend_from_slice(b"\"seq\":");
        push_i64(out, seq);
        out.push(b',');
    }
    out.extend_from_slice(b"\"symbol\":");
    push_json_str(out, row.symbol);
    out.extend_from_slice(b",\"ts_event_ns\":");
    push_i64(out, row.ts_event.0);
    out.extend_from_slice(b",\"ts_event\":\"");
    out.extend_from_slice(&row.ts_event.iso_bytes());
    out.extend_from_slice(b"\",\"ts_recv_ns\":");
    push_i64(out, row.ts_recv.0);
    let keys: [&[u8]; 4] = [
        b",\"bid\":",
        b",\"ask\":",
        b",\"bid_size\":",
        b",\"ask_size\":",
    ];
    for (key, d) in keys.into_iter().zip(row.sides) {
        out.extend_from_slice(key);
        match d {
            Some(d) => d.write_ascii(out),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.extend_from_slice(b",\"source\":");
    push_json_str(out, row.source);
    if let Some((k, v)) = extra {
        out.push(b',');
        push_json_str(out, k);
        out.push(b':');
        push_json_str(out, v);
    }
    out.extend_from_slice(b"}\n");
}

/// A JSON string: as it is when nothing in it needs escaping (symbol and source names), else
/// through serde_json.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tick::{Decimal, Timestamp};

    #[test]
    fn numbers_are_read_as_their_exact_text() {
        let t = parse_line(
            r#"{"symbol":"EURUSD","bid":1.08502,"ask":"1.08510","bid_size":1000000,"ask_size":null,"source":"LP1","ts_event":"2026-11-23T10:00:00.5Z"}"#,
        )
        .unwrap();
        assert_eq!(t.symbol, "EURUSD");
        assert_eq!(t.bid.unwrap().to_string(), "1.08502");
        assert_eq!(t.ask.unwrap().to_string(), "1.08510");
        assert_eq!(t.bid_size.unwrap().to_string(), "1000000");
        assert_eq!(t.ask_size, None);
        assert_eq!(t.source.as_deref(), Some("LP1"));
        assert_eq!(t.ts_event.to_string(), "2026-11-23T10:00:00.500000000Z");
    }

    #[test]
    fn integer_timestamps_are_nanoseconds_and_missing_sides_are_absent() {
        let t = parse_line(r#"{"symbol":"X","ts_event":1795437000000000000,"bid":1}"#).unwrap();
        assert_eq!(t.ts_event, Timestamp(1_795_437_000_000_000_000));
        assert_eq!(t.ask, None);
        assert_eq!(t.source, None);
    }

    #[test]
    fn bad_records_name_the_field() {
        let cases = [
            (r#"{"bid":1,"ts_event":1}"#, "symbol"),
            (r#"{"symbol":"X","bid":1}"#, "ts_event"),
            (r#"{"symbol":"X","ts_event":1,"bid":-1}"#, "bid"),
            (r#"{"symbol":"X","ts_event":1,"ask":"abc"}"#, "ask"),
            (r#"{"symbol":"X","ts_event":1,"bid":1e5}"#, "bid"),
            (r#"{"symbol":"X","ts_event":"noon"}"#, "ts_event"),
            (r#"{"symbol":7,"ts_event":1}"#, "symbol"),
            (r#"{"symbol":"X","ts_event":1,"ask_size":5}"#, "ask_size"),
            (r#"{"symbol":"X","ts_event":1,"bid":[1]}"#, "bid"),
            (r#"not json"#, "(record)"),
        ];
        for (line, field) in cases {
            let err = parse_line(line).unwrap_err();
            assert_eq!(err.field, field, "{line}: {err}");
        }
    }

    #[test]
    fn written_rows_read_back_as_the_same_tick() {
        let row = TickRow {
            seq: Some(7),
            symbol: "EUR\"USD".into(),
            source: "LP1".into(),
            ts_event: Timestamp(1_795_437_000_123_456_789),
            ts_recv: Timestamp(1_795_437_000_123_999_999),
            bid: Some(Decimal::parse("1.08500").unwrap()),
            ask: None,
            bid_size: Some(Decimal::parse("2500000").unwrap()),
            ask_size: None,
        };
        let mut out = Vec::new();
        write_json_row(&mut out, &row, Some(("error", "disk full"))).unwrap();
        let line = String::from_utf8(out).unwrap();
        assert!(line.ends_with("\"error\":\"disk full\"}\n"), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["seq"], 7);
        assert_eq!(v["ts_event"], "2026-11-23T12:30:00.123456789Z");
        let back = parse_line(&line).unwrap();
        assert_eq!(back.symbol, "EUR\"USD");
        assert_eq!(back.source.as_deref(), Some("LP1"));
        assert_eq!(back.bid, row.bid);
        assert_eq!(back.ask, None);
        assert_eq!(back.bid_size, row.bid_size);
        assert_eq!(back.ts_event, row.ts_event);
        assert_eq!(
            back.ts_recv,
            Some(row.ts_recv),
            "ts_recv_ns reads back as ts_recv"
        );
        // As a stored row, whole: `seq` included (what `subscribe` prints from).
        assert_eq!(parse_row(&line).unwrap(), row);
        let unstored = TickRow { seq: None, ..row };
        out = Vec::new();
        write_json_row(&mut out, &unstored, None).unwrap();
        assert_eq!(
            parse_row(&String::from_utf8(out).unwrap()).unwrap(),
            unstored
        );
        let e = parse_row(r#"{"symbol":"EURUSD","ts_event":1,"bid":1}"#).unwrap_err();
        assert!(e.to_string().contains("source"), "{e}");
    }

    #[test]
    fn a_tick_with_its_names_encodes_as_its_row_does() {
        let t = Tick {
            symbol: crate::tick::SymbolId(3),
            source: crate::tick::SourceId(1),
            ts_event: Timestamp(1_795_437_000_123_456_789),
            ts_recv: Timestamp(1_795_437_000_123_999_999),
            bid: Some(Decimal::parse("1.08500").unwrap()),
            ask: Some(Decimal::parse("1.08512").unwrap()),
            bid_size: None,
            ask_size: Some(Decimal::parse("2500000").unwrap()),
            msg: crate::tick::MsgRef::NONE,
        };
        for (seq, symbol) in [(Some(41), "EURUSD"), (None, "EUR\"USD")] {
            let row = TickRow::from_tick(&t, symbol.into(), "LP1".into(), seq);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            encode_json_row(&mut a, &row, None);
            encode_json_tick(&mut b, &t, seq, symbol, "LP1");
            assert_eq!(String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
        }
    }
}
