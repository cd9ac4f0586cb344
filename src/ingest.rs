//! Feeding text ticks (JSON Lines or CSV) through a running [`Recorder`]: replays, pipes, tests.
//!
//! A bad record never stops the feed: it is reported with its line number and reason, counted,
//! and skipped. Reading stops early, between records, when `stop` is set (a signal arrived).
//!
//! Exactly once across re-runs: with an [`Origin`] every tick carries its line number, the
//! writer commits "next line" under the origin's name in the same transaction as the ticks,
//! and a re-run skips the lines already committed (see `tick::MsgRef`, `store::writer`).

use std::io::BufRead;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::clock::Clock;
use crate::format::{csv::CsvHeader, jsonl, FieldError, TickText};
use crate::pipeline::{Outcome, Recorder, StoreTickError};
use crate::tick::{MsgRef, OriginId, SourceId, Tick};

/// Input formats of `tickrec ingest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum InputFormat {
    #[default]
    Jsonl,
    Csv,
}

/// What happened to the input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestReport {
    /// Records read (blank lines are not records).
    pub records: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub throttled: u64,
    pub dropped: u64,
    /// Records skipped because an earlier run committed them (see [`Origin`]).
    pub already: u64,
    /// True when reading stopped at `stop` before the end of the input.
    pub interrupted: bool,
}

/// The identity of an input whose progress is committed with its ticks, and where the
/// committed part ends.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    pub id: OriginId,
    /// Lines up to and including this one are committed already (0: none).
    pub committed_through: u64,
}

/// The origin name of an input file: its canonical path and a fingerprint of its first line
/// (BLAKE3, 16 hex digits), so that the same file, even grown, resumes, while another file put
/// at the same path starts afresh. `source_id` (required for standard input) names the stream
/// instead.
pub fn origin_name(
    file: Option<&std::path::Path>,
    source_id: Option<&str>,
) -> std::io::Result<Option<String>> {
    if let Some(id) = source_id {
        return Ok(Some(format!("ingest:id:{id}")));
    }
    let Some(file) = file else {
        return Ok(None);
    };
    let path = std::fs::canonicalize(file)?;
    let mut first = Vec::new();
    let f = std::fs::File::open(&path)?;
    std::io::Read::take(std::io::BufReader::new(f), 64 * 1024).read_until(b'\n', &mut first)?;
    let hash = blake3::hash(&first).to_hex();
    Ok(Some(format!("ingest:{}#{}", path.display(), &hash[..16])))
}

/// A rejected record: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub line: u64,
    pub why: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.why)
    }
}

/// Why ingestion as a whole stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    #[error("reading input at line {line}: {source}")]
    Read {
        line: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("the recorder stopped taking ticks at line {line}")]
    Closed { line: u64 },
}

/// Turns records into ticks and stores them.
pub struct Feeder<'a> {
    pub recorder: &'a Recorder,
    pub clock: &'a dyn Clock,
    /// Source for records that name none (`BROKER_ID`).
    pub default_source: SourceId,
    pub stop: &'a AtomicBool,
    /// When set, positions are committed with the ticks and committed lines are skipped.
    pub origin: Option<Origin>,
}

impl Feeder<'_> {
    /// Reads `input` to the end (or to `stop`), reporting each rejected record to `reject`.
    pub fn run(
        &self,
        format: InputFormat,
        input: impl BufRead,
        reject: &mut dyn FnMut(Rejection),
    ) -> Result<IngestReport, IngestError> {
        match format {
            InputFormat::Jsonl => self.run_jsonl(input, reject),
            InputFormat::Csv => self.run_csv(input, reject),
        }
    }

    fn run_jsonl(
        &self,
        mut input: impl BufRead,
        reject: &mut dyn FnMut(Rejection),
    ) -> Result<IngestReport, IngestError> {
        let mut report = IngestReport::default();
        let mut buf = Vec::with_capacity(512);
        let mut line_no = 0u64;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                report.interrupted = true;
                break;
            }
            buf.clear();
            let n = input
                .read_until(b'\n', &mut buf)
                .map_err(|source| IngestError::Read {
                    line: line_no + 1,
                    source,
                })?;
            if n == 0 {
                break;
            }
            line_no += 1;
            let text = match std::str::from_utf8(&buf) {
                Ok(t) => t.trim(),
                Err(e) => {
                    report.records += 1;
                    report.rejected += 1;
                    reject(Rejection {
                        line: line_no,
                        why: format!("not UTF-8: {e}"),
                    });
                    continue;
                }
            };
            if text.is_empty() {
                continue;
            }
            report.records += 1;
            let parsed = jsonl::parse_line(text);
            self.store(line_no, parsed, &mut report, reject)?;
        }
        Ok(report)
    }

    fn run_csv(
        &self,
        input: impl BufRead,
        reject: &mut dyn FnMut(Rejection),
    ) -> Result<IngestReport, IngestError> {
        let mut report = IngestReport::default();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(input);
        let mut record = csv::StringRecord::new();
        let mut header: Option<CsvHeader> = None;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                report.interrupted = true;
                break;
            }
            let more = reader.read_record(&mut record);
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            match more {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    if let csv::ErrorKind::Io(_) = e.kind() {
                        let csv::ErrorKind::Io(source) = e.into_kind() else {
                            unreachable!()
                        };
                        return Err(IngestError::Read { line, source });
                    }
                    report.records += 1;
                    report.rejected += 1;
                    reject(Rejection {
                        line,
                        why: e.to_string(),
                    });
                    continue;
                }
            }
            let Some(h) = header.as_ref() else {
                match CsvHeader::new(&record) {
                    Ok(h) => header = Some(h),
                    Err(e) => {
                        // Without a usable header no row can be read: reject them all, loudly.
                        reject(Rejection {
                            line,
                            why: format!("header row: {e}"),
                        });
                        report.rejected += 1;
                        return Ok(report);
                    }
                }
                continue;
            };
            if record.iter().all(|c| c.trim().is_empty()) {
                continue;
            }
            report.records += 1;
            let parsed = h.parse(&record);
            self.store(line, parsed, &mut report, reject)?;
        }
        Ok(report)
    }

    fn store(
        &self,
        line: u64,
        parsed: Result<TickText<'_>, FieldError>,
        report: &mut IngestReport,
        reject: &mut dyn FnMut(Rejection),
    ) -> Result<(), IngestError> {
        if self.origin.is_some_and(|o| line <= o.committed_through) {
            report.already += 1;
            return Ok(());
        }
        let tick = parsed
            .map_err(|e| e.to_string())
            .and_then(|t| self.to_tick(&t, line));
        let tick = match tick {
            Ok(t) => t,
            Err(why) => {
                report.rejected += 1;
                reject(Rejection { line, why });
                return Ok(());
            }
        };
        match self.recorder.store_tick(tick) {
            Ok(Outcome::Accepted) => report.accepted += 1,
            Ok(Outcome::Throttled) => report.throttled += 1,
            Ok(Outcome::Dropped) => report.dropped += 1,
            Err(StoreTickError::Closed) => return Err(IngestError::Closed { line }),
            Err(e) => {
                report.rejected += 1;
                reject(Rejection {
                    line,
                    why: e.to_string(),
                });
            }
        }
        Ok(())
    }

    fn to_tick(&self, t: &TickText<'_>, line: u64) -> Result<Tick, String> {
        let names = self.recorder.names();
        let symbol = names
            .symbol(&t.symbol)
            .map_err(|e| format!("field `symbol`: {e}"))?;
        let source = match t.source.as_deref() {
            Some(s) => names
                .source(s)
                .map_err(|e| format!("field `source`: {e}"))?,
            None => self.default_source,
        };
        Ok(Tick {
            symbol,
            source,
            ts_event: t.ts_event,
            ts_recv: match t.ts_recv {
                Some(recv) => recv,
                None => {
                    // No receive time in the record: the event time stands in (as `migrate`
                    // does), and the window is checked against this machine's clock instead.
                    self.recorder
                        .check_time_window(t.ts_event, self.clock.now())
                        .map_err(|e| e.to_string())?;
                    t.ts_event
                }
            },
            bid: t.bid,
            ask: t.ask,
            bid_size: t.bid_size,
            ask_size: t.ask_size,
            msg: match self.origin {
                Some(o) => MsgRef::new(o.id, line, false),
                None => MsgRef::NONE,
            },
        })
    }
}
