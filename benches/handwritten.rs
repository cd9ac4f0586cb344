//! The hand-written code kept beside a well-kept crate that does the same job, each timed
//! against that crate on the same input in one run (median of 5; inputs built before every
//! clock). `cargo bench --bench handwritten`.
//!
//! - CSV output: `format::csv::CsvWriter` against `csv::Writer` (the same field text, the
//!   crate doing the quoting and the separators), 1,000,000 rows into a sink.
//! - JSON arrays: `legacy_json::read_records` (a bracket-tracking splitter, then one record at
//!   a time) against `serde_json`'s reader deserializer walking the array with a visitor (each
//!   element as an owned raw value, then the same record parser), 1,000,000 records.
//! - Directory walks: `migrate::files_under` against `walkdir` (files only, sorted once at the end),
//!   a tree of 64 folders of 256 files.

use std::fmt;
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use serde::de::{Deserializer as _, SeqAccess, Visitor};
use tickrec::format::csv::CsvWriter;
use tickrec::format::RowWriter;
use tickrec::legacy_json::{parse_record, read_records};
use tickrec::synth::{symbol_names, QuoteGen};
use tickrec::tick::{push_i64, SourceId, SymbolId, TickRow, Timestamp};

const ROWS: usize = 1_000_000;

/// Median seconds of 5 runs of `f`.
fn median(mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..5)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[2]
}

fn rows() -> Vec<TickRow> {
    let names: Vec<Arc<str>> = symbol_names(16).into_iter().map(Arc::from).collect();
    let source: Arc<str> = Arc::from("LP1");
    let mut gen = QuoteGen::new(names.len(), 7);
    (0..ROWS)
        .map(|i| {
            let s = gen.pick();
            let t = 1_795_392_000_000_000_000 + i as i64 * 1_000_317;
            let tick = gen.next_quote(s).tick(
                SymbolId(s as u32),
                SourceId(0),
                Timestamp(t),
                Timestamp(t + 40_000),
            );
            TickRow::from_tick(&tick, names[s].clone(), source.clone(), Some(i as i64 + 1))
        })
        .collect()
}

/// The same fields as `CsvWriter`, through `csv::Writer`.
fn csv_crate(rows: &[TickRow]) -> io::Result<()> {
    let mut w = csv::Writer::from_writer(io::sink());
    w.write_record(tickrec::format::COLUMNS)?;
    let mut f: [Vec<u8>; 10] = Default::default();
    for r in rows {
        for v in f.iter_mut() {
            v.clear();
        }
        if let Some(n) = r.seq {
            push_i64(&mut f[0], n);
        }
        f[1].extend_from_slice(r.symbol.as_bytes());
        push_i64(&mut f[2], r.ts_event.0);
        f[3].extend_from_slice(&r.ts_event.iso_bytes());
        push_i64(&mut f[4], r.ts_recv.0);
        for (i, d) in [r.bid, r.ask, r.bid_size, r.ask_size]
            .into_iter()
            .enumerate()
        {
            if let Some(d) = d {
                d.write_ascii(&mut f[5 + i]);
            }
        }
        f[9].extend_from_slice(r.source.as_bytes());
        w.write_record(&f)?;
    }
    w.flush()
}

fn ours(rows: &[TickRow]) -> io::Result<()> {
    let mut w = CsvWriter::new(io::sink());
    for r in rows {
        w.write_row(r)?;
    }
    w.finish()
}

/// A legacy JSON array of `ROWS` records, one per line.
fn json_array(rows: &[TickRow]) -> Vec<u8> {
    let mut out = b"[\n".to_vec();
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b",\n");
        }
        let dec = |d: Option<tickrec::tick::Decimal>| d.map(|d| d.to_string());
        write!(
            out,
            "{{\"symbol\":\"{}\",\"bid\":{},\"ask\":{},\"lp\":\"{}\",\"timestamp\":{}}}",
            r.symbol,
            dec(r.bid).unwrap_or_else(|| "null".into()),
            dec(r.ask).unwrap_or_else(|| "null".into()),
            r.source,
            r.ts_event.0 / 1_000_000,
        )
        .expect("writing to memory");
    }
    out.extend_from_slice(b"\n]\n");
    out
}

/// Every element of a top-level array, as `serde_json` streams it from a reader.
struct Elements<'f>(&'f mut dyn FnMut(&str) -> bool);

impl<'de> Visitor<'de> for Elements<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of tick records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(raw) = seq.next_element::<Box<serde_json::value::RawValue>>()? {
            if !(self.0)(raw.get()) {
                break;
            }
        }
        Ok(())
    }
}

/// Long on purpose: three comparisons, each timed beside its pair.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rows = rows();

    let (a, b) = (
        median(|| ours(&rows).expect("sink")),
        median(|| csv_crate(&rows).expect("sink")),
    );
    println!(
        "CSV output, {ROWS} rows: CsvWriter {:.0} ns/row, csv::Writer {:.0} ns/row ({:.2} x)",
        a * 1e9 / ROWS as f64,
        b * 1e9 / ROWS as f64,
        b / a
    );

    let array = json_array(&rows);
    drop(rows);
    let mut n = 0u64;
    let a = median(|| {
        n = 0;
        read_records(&array[..], &mut |_, r| {
            n += u64::from(r.is_ok());
            ControlFlow::Continue(())
        })
        .expect("memory");
    });
    assert_eq!(n, ROWS as u64);
    let b = median(|| {
        n = 0;
        let mut on = |text: &str| {
            n += u64::from(parse_record(text).is_ok());
            true
        };
        serde_json::Deserializer::from_reader(&array[..])
            .deserialize_seq(Elements(&mut on))
            .expect("an array");
    });
    assert_eq!(n, ROWS as u64);
    println!(
        "JSON array, {ROWS} records: read_records {:.0} ns/record, serde_json visitor {:.0} ns/record ({:.2} x)",
        a * 1e9 / ROWS as f64,
        b * 1e9 / ROWS as f64,
        b / a
    );

    let dir = tempfile::tempdir()?;
    for d in 0..64 {
        let sub = dir.path().join(format!("S{d:02}"));
        std::fs::create_dir_all(&sub)?;
        for f in 0..256 {
            std::fs::write(
                sub.join(format!("2026-{:02}-{:02}.json", f / 28 + 1, f % 28 + 1)),
                b"[]",
            )?;
        }
    }
    let mut found = 0;
    let a = median(|| {
        found = tickrec::migrate::files_under(dir.path())
            .expect("walk")
            .len();
    });
    assert_eq!(found, 64 * 256);
    let b = median(|| {
        let mut files: Vec<_> = walkdir::WalkDir::new(dir.path())
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .map(|e| e.into_path())
            .collect();
        files.sort();
        found = files.len();
    });
    assert_eq!(found, 64 * 256);
    println!(
        "directory walk, {} files: files_under {:.2} ms, walkdir {:.2} ms ({:.2} x)",
        64 * 256,
        a * 1e3,
        b * 1e3,
        b / a
    );
    Ok(())
}
