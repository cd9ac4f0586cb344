//! The legacy JSON tick format (see `schema/legacy-json.md`): its paths, its reader (JSON
//! arrays and JSON Lines, streamed) and its writer (the `json` storage backend).
//!
//! Invariants: a symbol never becomes a path component unescaped, so no symbol can reach
//! outside the JSON folder; reading never modifies a file; a torn last line is reported and
//! skipped, never fatal; memory is bounded whatever the input: a record longer than the limit
//! (default [`MAX_RECORD_BYTES`]) is streamed past and rejected, never held; a UTF-8 byte-order
//! mark is skipped; a file that is not JSON at all is one rejection at the byte it went wrong.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::format::jsonl::{name, scalar};
use crate::format::{FieldError, RawFields, TickText};
use crate::intern::Names;
use crate::pipeline::{Sink, SinkStats};
use crate::shutdown::Shutdown;
use crate::spill::{Kind, SetAside};
use crate::tick::{push_u64, Decimal, SymbolId, Tick, Timestamp};

/// Integer timestamps below this are Unix milliseconds; from it on, nanoseconds.
const MILLIS_LIMIT: i64 = 100_000_000_000_000;

/// The folder name of `symbol`: bytes outside `A-Za-z0-9_-.` (and a leading `.`) as `%XX`.
pub fn symbol_dir(symbol: &str) -> String {
    let mut out = String::with_capacity(symbol.len());
    for (i, b) in symbol.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `<dir>/<SYMBOL>/<YYYY-MM-DD>.json`.
pub fn file_path(dir: &Path, symbol: &str, day: NaiveDate) -> PathBuf {
    dir.join(symbol_dir(symbol)).join(format!("{day}.json"))
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow, default)]
    symbol: Option<&'a RawValue>,
    #[serde(borrow, default)]
    bid: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ask: Option<&'a RawValue>,
    #[serde(borrow, default)]
    lp: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'a RawValue>,
}

/// Parses one legacy record (a JSON object).
pub fn parse_record(text: &str) -> Result<TickText<'_>, FieldError> {
    let r: Record<'_> = serde_json::from_str(text).map_err(|e| FieldError::not_json(&e))?;
    let ts = scalar("timestamp", r.timestamp)?;
    let mut t = RawFields {
        symbol: name("symbol", r.symbol)?,
        source: name("lp", r.lp)?,
        ts_event: ts,
        ts_recv: None,
        bid: scalar("bid", r.bid)?,
        ask: scalar("ask", r.ask)?,
        bid_size: None,
        ask_size: None,
    }
    .validate()
    .map_err(|mut e| {
        if e.field == "ts_event" {
            e.field = "timestamp";
        }
        e
    })?;
    // Integer timestamps: milliseconds when small enough to be (see MILLIS_LIMIT).
    if ts.is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit())) && t.ts_event.0 < MILLIS_LIMIT {
        t.ts_event = Timestamp(t.ts_event.0 * 1_000_000);
    }
    Ok(t)
}

/// The callback of the readers: each record (or why it is not one), where it was found;
/// `Break` stops the read.
pub type OnRecord<'f> =
    dyn for<'t> FnMut(Location, Result<TickText<'t>, FieldError>) -> ControlFlow<()> + 'f;

/// Where a record was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// 1-based line where the record starts.
    pub line: u64,
    /// Byte offset where the record starts.
    pub offset: u64,
}

/// Longest record (or line) read by default; longer ones are rejected, not held.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// Streams every record of a legacy file (array or JSON Lines) to `on`, in file order, in
/// constant memory (one record of at most [`MAX_RECORD_BYTES`] at a time).
pub fn read_records(input: impl BufRead, on: &mut OnRecord<'_>) -> io::Result<()> {
    read_records_limited(input, MAX_RECORD_BYTES, on)
}

/// [`read_records`] with a record limit of `max_record` bytes. Reading stops at an I/O error,
/// when `on` breaks, or after a file that is not JSON was reported.
pub fn read_records_limited(
    mut input: impl BufRead,
    max_record: usize,
    on: &mut OnRecord<'_>,
) -> io::Result<()> {
    // A UTF-8 byte-order mark is not part of the content.
    let mut offset = 0u64;
    if input.fill_buf()?.starts_with(b"\xEF\xBB\xBF") {
        input.consume(3);
        offset = 3;
    }
    // Detect the body form from the first non-blank byte.
    let mut skipped_lines = 0u64;
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        let blanks = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
        skipped_lines += buf[..blanks].iter().filter(|&&b| b == b'\n').count() as u64;
        offset += blanks as u64;
        let done = blanks < buf.len();
        input.consume(blanks);
        if done {
            break;
        }
    }
    let at = Location {
        line: 1 + skipped_lines,
        offset,
    };
    match input.fill_buf()?.first() {
        Some(&b'[') => {
            input.consume(1);
            read_array(input, at.line, offset + 1, max_record, on)
        }
        Some(&b'{') => read_lines(input, at.line, offset, max_record, on),
        Some(&other) => {
            // Neither an array nor JSON Lines: one rejection for the whole file.
            let _ = on(
                at,
                Err(FieldError::new(
                    "(file)",
                    format!(
                        "not JSON: it starts with {} where a JSON array `[` or a JSON Lines record `{{` must",
                        describe_byte(other)
                    ),
                )),
            );
            Ok(())
        }
        None => Ok(()),
    }
}

fn describe_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("`{}`", b as char)
    } else {
        format!("byte 0x{b:02X}")
    }
}

/// Reads one line into `buf`, keeping at most `max` bytes of it (the rest is consumed and
/// dropped). Returns (bytes consumed, ended with a newline, longer than `max`).
fn read_line_bounded(
    input: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<(u64, bool, bool)> {
    let (mut consumed, mut oversize) = (0u64, false);
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok((consumed, false, oversize));
        }
        let (take, newline) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = max.saturating_sub(buf.len());
        if take > room {
            oversize = true;
            buf.extend_from_slice(&chunk[..room]);
        } else {
            buf.extend_from_slice(&chunk[..take]);
        }
        input.consume(take);
        consumed += take as u64;
        if newline {
            return Ok((consumed, true, oversize));
        }
    }
}

fn read_lines(
    mut input: impl BufRead,
    mut line: u64,
    mut offset: u64,
    max_record: usize,
    on: &mut OnRecord<'_>,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(512);
    loop {
        buf.clear();
        let (n, complete, oversize) = read_line_bounded(&mut input, &mut buf, max_record)?;
        if n == 0 {
            return Ok(());
        }
        let at = Location { line, offset };
        line += 1;
        offset += n;
        if oversize {
            let long = FieldError::new(
                "(line)",
                format!("longer than {max_record} bytes ({n} bytes): skipped unread"),
            );
            if on(at, Err(long)).is_break() {
                return Ok(());
            }
            continue;
        }
        let text = match std::str::from_utf8(&buf) {
            Ok(t) => t.trim(),
            Err(e) => {
                let bad = FieldError::new("(line)", format!("not UTF-8: {e}"));
                if on(at, Err(bad)).is_break() {
                    return Ok(());
                }
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        let flow = match parse_record(text) {
            Err(e) if !complete => on(
                at,
                Err(FieldError::new(
                    "(line)",
                    format!(
                        "torn last line, cut off without a newline (the writer stopped mid-record?): {}",
                        e.why
                    ),
                )),
            ),
            r => on(at, r),
        };
        if flow.is_break() {
            return Ok(());
        }
    }
}

/// Streams the elements of a top-level JSON array (after its `[`); an element longer than
/// `max_record` bytes is scanned past (its brackets and strings still tracked) and rejected.
///
/// A splitter of its own rather than `serde_json`'s reader deserializer walking the array:
/// that one ends the whole file at the first malformed element (here the element is one
/// rejection and the rest flows on), cannot cap an element's length before holding it, and
/// measured slower: `cargo bench --bench handwritten`, a million records, 500 ns a record
/// here against 596 ns (each element as a raw value, then the same record parser).
fn read_array(
    mut input: impl BufRead,
    mut line: u64,
    mut offset: u64,
    max_record: usize,
    on: &mut OnRecord<'_>,
) -> io::Result<()> {
    let mut elem: Vec<u8> = Vec::with_capacity(512);
    let mut elem_len = 0u64;
    let mut start = Location { line, offset };
    let (mut depth, mut in_string, mut escape) = (0u32, false, false);
    let emit = |elem: &mut Vec<u8>, len: u64, at: Location, on: &mut OnRecord<'_>| {
        let flow = if len > max_record as u64 {
            on(
                at,
                Err(FieldError::new(
                    "(record)",
                    format!("longer than {max_record} bytes ({len} bytes): skipped unread"),
                )),
            )
        } else {
            match std::str::from_utf8(elem) {
                Ok(t) => on(at, parse_record(t.trim())),
                Err(e) => on(
                    at,
                    Err(FieldError::new("(record)", format!("not UTF-8: {e}"))),
                ),
            }
        };
        elem.clear();
        flow
    };
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            if elem_len > 0 && !elem.iter().all(u8::is_ascii_whitespace) {
                let _ = on(
                    start,
                    Err(FieldError::new(
                        "(record)",
                        "torn record at the end of the file (no closing bracket)",
                    )),
                );
            }
            return Ok(());
        }
        let len = buf.len();
        let mut consumed = 0;
        let mut finished = false;
        for &b in buf {
            consumed += 1;
            offset += 1;
            if b == b'\n' {
                line += 1;
            }
            if in_string {
                keep(&mut elem, &mut elem_len, max_record, b);
                match (escape, b) {
                    (true, _) => escape = false,
                    (false, b'\\') => escape = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => {
                    in_string = true;
                    keep(&mut elem, &mut elem_len, max_record, b);
                }
                b'{' | b'[' => {
                    if depth == 0 && elem.iter().all(u8::is_ascii_whitespace) {
                        elem.clear();
                        elem_len = 0;
                        start = Location {
                            line,
                            offset: offset - 1,
                        };
                    }
                    depth += 1;
                    keep(&mut elem, &mut elem_len, max_record, b);
                }
                b'}' | b']' if depth > 0 => {
                    depth -= 1;
                    keep(&mut elem, &mut elem_len, max_record, b);
                }
                b',' | b']' if depth == 0 => {
                    if !elem.iter().all(u8::is_ascii_whitespace)
                        && emit(&mut elem, elem_len, start, on).is_break()
                    {
                        return Ok(());
                    }
                    elem.clear();
                    elem_len = 0;
                    start = Location { line, offset };
                    if b == b']' {
                        finished = true;
                        break;
                    }
                }
                _ => keep(&mut elem, &mut elem_len, max_record, b),
            }
        }
        debug_assert!(consumed <= len);
        input.consume(consumed);
        if finished {
            return Ok(());
        }
    }
}

/// Keeps at most `max` bytes of an array element; counts them all.
fn keep(elem: &mut Vec<u8>, len: &mut u64, max: usize, b: u8) {
    *len += 1;
    if elem.len() < max {
        elem.push(b);
    }
}

/// Reads a whole legacy file from disk (never writing to it), records of at most
/// `max_record` bytes.
pub fn read_file(path: &Path, max_record: usize, on: &mut OnRecord<'_>) -> io::Result<()> {
    let f = File::open(path)?;
    read_records_limited(io::BufReader::with_capacity(1 << 16, f), max_record, on)
}

/// Appends one record line for `tick` (exact prices; spread = ask - bid).
pub fn write_record(out: &mut Vec<u8>, symbol: &str, lp: &str, tick: &Tick) {
    out.extend_from_slice(b"{\"symbol\":");
    out.extend_from_slice(serde_json::Value::from(symbol).to_string().as_bytes());
    let dec = |out: &mut Vec<u8>, d: Option<Decimal>| match d {
        Some(d) => d.write_ascii(out),
        None => out.extend_from_slice(b"null"),
    };
    out.extend_from_slice(b",\"bid\":");
    dec(out, tick.bid);
    out.extend_from_slice(b",\"ask\":");
    dec(out, tick.ask);
    out.extend_from_slice(b",\"spread\":");
    match (tick.bid, tick.ask) {
        (Some(b), Some(a)) => write_difference(out, a, b),
        _ => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"lp\":");
    out.extend_from_slice(serde_json::Value::from(lp).to_string().as_bytes());
    out.extend_from_slice(b",\"timestamp\":\"");
    out.extend_from_slice(tick.ts_event.to_string().as_bytes());
    out.extend_from_slice(b"\"}\n");
}

/// `a - b`, exactly, at the larger of the two scales.
fn write_difference(out: &mut Vec<u8>, a: Decimal, b: Decimal) {
    let (Some((ma, sa)), Some((mb, sb))) = (a.to_scaled(), b.to_scaled()) else {
        return out.extend_from_slice(b"null");
    };
    let scale = sa.max(sb);
    let ia = i128::from(ma) * 10i128.pow(scale - sa);
    let ib = i128::from(mb) * 10i128.pow(scale - sb);
    let diff = ia - ib;
    if diff < 0 {
        out.push(b'-');
    }
    let m = diff.unsigned_abs();
    let div = 10u128.pow(scale);
    push_u64(out, (m / div) as u64);
    if scale > 0 {
        out.push(b'.');
        let frac = (m % div).to_string();
        out.extend(std::iter::repeat_n(b'0', scale as usize - frac.len()));
        out.extend_from_slice(frac.as_bytes());
    }
}

/// An open day file of one symbol.
struct OpenFile {
    symbol: SymbolId,
    day: NaiveDate,
    out: BufWriter<File>,
    /// Ticks written into `out` since its last successful flush: they count as stored only
    /// once flushed, and are spilled if the flush fails.
    pending: Vec<Tick>,
}

/// The `json` storage backend: appends ticks to the legacy layout.
pub struct JsonSink {
    dir: PathBuf,
    names: Arc<Names>,
    stats: Arc<SinkStats>,
    /// Open files, least recently used first.
    open: Vec<OpenFile>,
    max_open: usize,
    line: Vec<u8>,
    newest_day: Option<NaiveDate>,
    set_aside: SetAside,
}

impl JsonSink {
    /// A JSON backend under `dir`; ticks it cannot write go to `dead_letter_dirs`, then `dir`.
    pub fn new(
        dir: impl Into<PathBuf>,
        names: Arc<Names>,
        dead_letter_dirs: &[PathBuf],
    ) -> JsonSink {
        let dir = dir.into();
        JsonSink {
            set_aside: SetAside::new(dead_letter_dirs, &dir.join("deadletter")),
            dir,
            names,
            stats: Arc::new(SinkStats::default()),
            open: Vec::new(),
            max_open: 256,
            line: Vec::with_capacity(256),
            newest_day: None,
        }
    }

    fn file(&mut self, symbol: SymbolId, name: &str, day: NaiveDate) -> io::Result<usize> {
        if let Some(i) = self
            .open
            .iter()
            .position(|f| f.symbol == symbol && f.day == day)
        {
            return Ok(i);
        }
        if self.open.len() >= self.max_open {
            let f = self.open.remove(0);
            self.finish(f, false);
        }
        let path = file_path(&self.dir, name, day);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut f = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)?;
        // A torn last line from a crash: start the next record on a line of its own.
        let len = f.metadata()?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            f.seek(SeekFrom::Start(len - 1))?;
            f.read_exact(&mut last)?;
            if last[0] != b'\n' {
                tracing::warn!(file = %path.display(), "torn last line found; appending after it");
                f.write_all(b"\n")?;
            }
        }
        self.open.push(OpenFile {
            symbol,
            day,
            out: BufWriter::with_capacity(1 << 14, f),
            pending: Vec::new(),
        });
        Ok(self.open.len() - 1)
    }

    fn write_tick(&mut self, t: &Tick) -> io::Result<()> {
        let day = t.ts_event.day();
        match self.newest_day {
            Some(newest) if day > newest => {
                self.stats.db_rotations.incr();
                self.newest_day = Some(day);
            }
            Some(newest) if day < newest => self.stats.late_ticks.incr(),
            Some(_) => {}
            None => self.newest_day = Some(day),
        }
        let unknown = || Arc::<str>::from("?");
        let symbol = self.names.symbol_name(t.symbol).unwrap_or_else(unknown);
        let lp = self.names.source_name(t.source).unwrap_or_else(unknown);
        self.line.clear();
        let mut line = std::mem::take(&mut self.line);
        write_record(&mut line, &symbol, &lp, t);
        let result = self.file(t.symbol, &symbol, day).and_then(|i| {
            let f = &mut self.open[i];
            f.out.write_all(&line)?;
            f.pending.push(*t);
            Ok(())
        });
        self.line = line;
        result
    }

    /// Flushes `f` (and fsyncs it when `sync`): its pending ticks count as stored, or are
    /// spilled when that fails. A partly flushed buffer may have put some of them in the
    /// JSON file already: re-ingesting the spill can then repeat those lines.
    fn finish(&mut self, mut f: OpenFile, sync: bool) -> Option<OpenFile> {
        let flushed = f.out.flush().and_then(|_| {
            if sync {
                f.out.get_ref().sync_all()
            } else {
                Ok(())
            }
        });
        match flushed {
            Ok(()) => {
                self.stats.ticks_stored.add(f.pending.len() as u64);
                f.pending.clear();
                Some(f)
            }
            Err(e) => {
                self.stats.write_errors.incr();
                tracing::error!(day = %f.day, error = %e, "writing a JSON file failed");
                let pending = std::mem::take(&mut f.pending);
                self.put_aside(f.day, &pending, &e);
                None
            }
        }
    }

    fn put_aside(&self, day: NaiveDate, ticks: &[Tick], err: &io::Error) {
        let n = ticks.len() as u64;
        match self
            .set_aside
            .write(Kind::Spill, day, &self.names, ticks, &err.to_string())
        {
            Ok(path) => {
                self.stats.ticks_spilled.add(n);
                tracing::error!(file = %path.display(), ticks = n, "JSON ticks spilled");
            }
            Err(tried) => {
                self.stats.ticks_lost.add(n);
                tracing::error!(ticks = n, error = %err, %tried, "JSON ticks LOST: no location could take them");
            }
        }
    }
}

impl Sink for JsonSink {
    fn name(&self) -> &str {
        "json"
    }

    fn stats(&self) -> Arc<SinkStats> {
        self.stats.clone()
    }

    fn write_batch(&mut self, batch: &[Tick], _abort: &Shutdown) {
        let started = Instant::now();
        for t in batch {
            if let Err(e) = self.write_tick(t) {
                self.stats.write_errors.incr();
                // Forget a file that failed (its buffered ticks are spilled); the next tick
                // reopens it. The failed tick itself is spilled too.
                let day = t.ts_event.day();
                if let Some(i) = self
                    .open
                    .iter()
                    .position(|f| f.symbol == t.symbol && f.day == day)
                {
                    let mut f = self.open.remove(i);
                    let pending = std::mem::take(&mut f.pending);
                    self.put_aside(day, &pending, &e);
                }
                self.put_aside(day, std::slice::from_ref(t), &e);
            }
        }
        // Hand the batch to the OS: a process crash loses nothing written here.
        for f in std::mem::take(&mut self.open) {
            if let Some(f) = self.finish(f, false) {
                self.open.push(f);
            }
        }
        self.stats.batches_committed.incr();
        self.stats
            .commit_latency
            .record_ns(started.elapsed().as_nanos() as u64);
    }

    fn close(&mut self) {
        for f in std::mem::take(&mut self.open) {
            self.finish(f, true);
        }
    }
}

impl Drop for JsonSink {
    fn drop(&mut self) {
        Sink::close(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(text: &str) -> Vec<(u64, Result<String, String>)> {
        let mut out = Vec::new();
        read_records(text.as_bytes(), &mut |at, r| {
            out.push((
                at.line,
                r.map(|t| {
                    format!(
                        "{} {} {}",
                        t.symbol,
                        t.ts_event,
                        t.bid.map(|b| b.to_string()).unwrap_or_default()
                    )
                })
                .map_err(|e| e.to_string()),
            ));
            ControlFlow::Continue(())
        })
        .unwrap();
        out
    }

    #[test]
    fn symbols_cannot_escape_the_json_folder() {
        for evil in ["../x", "/", "..", ".", "a/../../b", "EUR\\USD", "%2F"] {
            let dir = symbol_dir(evil);
            assert!(
                !dir.contains('/') && !dir.contains('\\') && !dir.starts_with('.'),
                "{evil} -> {dir}"
            );
            let p = file_path(
                Path::new("/data/json"),
                evil,
                NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
            );
            assert_eq!(
                p.parent().unwrap().parent().unwrap(),
                Path::new("/data/json"),
                "{evil}"
            );
        }
        assert_eq!(symbol_dir("EURUSD"), "EURUSD");
        assert_eq!(symbol_dir("EUR/USD"), "EUR%2FUSD");
        assert_ne!(
            symbol_dir("EUR/USD"),
            symbol_dir("EUR%2FUSD"),
            "escaping is one-to-one"
        );
    }

    /// (Long: one table of timestamp forms, each read both ways.)
    #[test]
    fn arrays_and_json_lines_read_the_same_with_all_timestamp_forms() {
        let lines = "{\"symbol\":\"EURUSD\",\"bid\":1.08502,\"ask\":1.08510,\"spread\":0.00008,\"lp\":\"LP1\",\"timestamp\":\"2026-11-23T10:00:00.5Z\"}\n\
                     {\"symbol\":\"EURUSD\",\"bid\":\"1.08503\",\"ask\":null,\"lp\":\"LP1\",\"timestamp\":1795428001000}\n\
                     {\"symbol\":\"EURUSD\",\"bid\":1.08504,\"ask\":1.1,\"timestamp\":1795428002000000000}\n";
        let array = format!("[\n{}\n]\n", lines.trim_end().replace('\n', ",\n"));
        let a = collect(lines);
        let b = collect(&array);
        let texts = |v: &Vec<(u64, Result<String, String>)>| {
            v.iter().map(|x| x.1.clone().unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(texts(&a), texts(&b));
        assert_eq!(
            texts(&a),
            [
                "EURUSD 2026-11-23T10:00:00.500000000Z 1.08502",
                "EURUSD 2026-11-23T10:00:01.000000000Z 1.08503",
                "EURUSD 2026-11-23T10:00:02.000000000Z 1.08504"
            ]
        );
        assert_eq!(
            b.iter().map(|x| x.0).collect::<Vec<_>>(),
            [2, 3, 4],
            "array records keep their line numbers"
        );
    }

    #[test]
    fn a_bad_record_is_reported_with_its_line_and_the_rest_is_read() {
        let text = "{\"symbol\":\"X\",\"bid\":1,\"timestamp\":1}\n{\"symbol\":\"X\",\"bid\":\"abc\",\"timestamp\":1}\n{\"symbol\":\"X\",\"bid\":2,\"timestamp\":1}\n";
        let got = collect(text);
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].0, 2);
        assert!(got[1].1.as_ref().unwrap_err().contains("bid"), "{got:?}");
        assert!(got[2].1.is_ok());
        let got = collect("[{\"symbol\":\"X\",\"bid\":1,\"timestamp\":1},\n {\"symbol\":\"X\",\"timestamp\":\"never\"}]");
        assert!(
            got[1].1.as_ref().unwrap_err().contains("timestamp"),
            "{got:?}"
        );
        assert_eq!(got[1].0, 2);
    }

    #[test]
    fn a_torn_last_line_is_reported_and_skipped() {
        let text = "{\"symbol\":\"X\",\"bid\":1,\"timestamp\":1}\n{\"symbol\":\"X\",\"bi";
        let got = collect(text);
        assert!(got[0].1.is_ok());
        assert!(got[1].1.as_ref().unwrap_err().contains("torn"), "{got:?}");
        let got = collect("[{\"symbol\":\"X\",\"bid\":1,\"timestamp\":1}, {\"symbol\":\"X\"");
        assert!(got[1].1.as_ref().unwrap_err().contains("torn"), "{got:?}");
    }

    #[test]
    fn spread_is_exact() {
        let mut out = Vec::new();
        write_difference(
            &mut out,
            Decimal::parse("1.08510").unwrap(),
            Decimal::parse("1.085").unwrap(),
        );
        assert_eq!(String::from_utf8(out).unwrap(), "0.00010");
        let mut out = Vec::new();
        write_difference(
            &mut out,
            Decimal::parse("151.2").unwrap(),
            Decimal::parse("151.234").unwrap(),
        );
        assert_eq!(String::from_utf8(out).unwrap(), "-0.034");
    }

    #[test]
    fn written_records_read_back() {
        let t = Tick {
            symbol: SymbolId(0),
            source: crate::tick::SourceId(0),
            ts_event: Timestamp(1_795_428_000_123_456_789),
            ts_recv: Timestamp(0),
            bid: Decimal::parse("1.08500").ok(),
            ask: None,
            bid_size: None,
            ask_size: None,
            msg: crate::tick::MsgRef::NONE,
        };
        let mut out = Vec::new();
        write_record(&mut out, "EUR\"USD", "LP1", &t);
        let text = String::from_utf8(out).unwrap();
        let back = parse_record(text.trim()).unwrap();
        assert_eq!(back.symbol, "EUR\"USD");
        assert_eq!(back.bid.unwrap().to_string(), "1.08500");
        assert_eq!(back.ask, None);
        assert_eq!(back.source.as_deref(), Some("LP1"));
        assert_eq!(back.ts_event, t.ts_event);
        assert!(text.contains("\"spread\":null"));
    }
}
