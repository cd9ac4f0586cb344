//! Migration throughput: legacy JSON Lines history → daily SQLite files, end to end (hashing,
//! parsing, routing, 1000-tick transactions). Prints ticks/s.
//! `cargo bench --bench migrate` (TICKS=1000000 by default, over 8 symbol files).

use std::io::Write;

use tickrec::legacy_json::Location;
use tickrec::migrate::{self, FileReport, MigrateOptions, Progress};
use tickrec::store::WriterOptions;
use tickrec::synth::{symbol_names, QuoteGen};

struct Quiet;

impl Progress for Quiet {
    fn reject(&mut self, file: &str, at: Location, why: &str) {
        eprintln!("{file}: line {}: {why}", at.line);
    }
    fn advance(&mut self, _: u64, _: u64, _: u64) {}
    fn file_done(&mut self, _: &FileReport) {}
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::var("TICKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("json");
    let names = symbol_names(8);
    let mut gen = QuoteGen::new(8, 3);
    let mut files = Vec::new();
    for s in &names {
        std::fs::create_dir_all(input.join(s))?;
        files.push(std::io::BufWriter::new(std::fs::File::create(
            input.join(s).join("2026-11-23.json"),
        )?));
    }
    let t0 = 1_795_392_000_000_000_000i64;
    for i in 0..n {
        let s = i % names.len();
        let q = gen.next_quote(s);
        let ts = tickrec::tick::Timestamp(t0 + i as i64 * 80_000);
        let (bid, ask) = (q.bid.map(|d| d.to_string()), q.ask.map(|d| d.to_string()));
        writeln!(
            files[s],
            "{{\"symbol\":\"{}\",\"bid\":{},\"ask\":{},\"spread\":0.00002,\"lp\":\"LP1\",\"timestamp\":\"{ts}\"}}",
            names[s],
            bid.as_deref().unwrap_or("null"),
            ask.as_deref().unwrap_or("null"),
        )?;
    }
    for f in &mut files {
        f.flush()?;
    }
    drop(files);
    let bytes: u64 = migrate::input_files(&input)?
        .iter()
        .map(|(p, _)| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let report = migrate::run(
        &MigrateOptions {
            input_dir: input,
            output_dir: dir.path().join("db"),
            batch_size: 1000,
            dry_run: false,
            default_source: "default".into(),
            writer: WriterOptions::default(),
            time_window: tickrec::tick::TimeWindow::default(),
            max_record_bytes: tickrec::legacy_json::MAX_RECORD_BYTES,
        },
        &mut Quiet,
    )?;
    let secs = report.elapsed.as_secs_f64();
    // Peak resident memory of the whole process (generation included): bounded, far below
    // the input size, because files are streamed.
    let peak_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .unwrap_or(0);
    println!(
        "migrate: {} ticks ({:.1} MB of JSON Lines) in {:.2}s = {:.0} ticks/s, {:.1} MB/s; peak RSS {:.1} MB",
        report.imported(),
        bytes as f64 / 1e6,
        secs,
        report.imported() as f64 / secs,
        bytes as f64 / 1e6 / secs,
        peak_kib as f64 / 1024.0
    );
    Ok(())
}
