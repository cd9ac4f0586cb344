//! Dead letters: ticks a storage backend could not store, appended (fsynced) as tick JSON
//! Lines with an `error` key, so that `tickrec ingest` can replay them once the cause is fixed.
//!
//! Every backend uses this one path, so that "nothing is dropped silently" holds the same way
//! for all of them: written and counted, or, when even that fails, the whole tick in the log
//! and counted as a dead-letter failure.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use crate::format::jsonl::write_json_row;
use crate::intern::Names;
use crate::pipeline::SinkStats;
use crate::tick::{Tick, TickRow};

/// Appends `tick` with `error` to the dead-letter file at `path`, counting the outcome.
pub fn dead_letter(
    path: &Path,
    names: &Names,
    tick: &Tick,
    error: &dyn std::fmt::Display,
    stats: &SinkStats,
) {
    let row = named_row(names, tick);
    let written = (|| -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut line = Vec::with_capacity(256);
        write_json_row(&mut line, &row, Some(("error", &error.to_string())))?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        f.write_all(&line)?;
        f.sync_data()
    })();
    match written {
        Ok(()) => {
            stats.dead_lettered.incr();
            tracing::error!(file = %path.display(), %error, symbol = %row.symbol,
                ts_event = %row.ts_event, "tick could not be stored; written to the dead-letter file");
        }
        Err(io) => {
            stats.dead_letter_failures.incr();
            tracing::error!(file = %path.display(), %error, dead_letter_error = %io,
                tick = ?row, "tick could not be stored NOR dead-lettered; it is only in this log line");
        }
    }
}

/// A tick with its names resolved (`?` for an id the table does not know).
fn named_row(names: &Names, t: &Tick) -> TickRow {
    let unknown = || Arc::<str>::from("?");
    TickRow {
        seq: None,
        symbol: names.symbol_name(t.symbol).unwrap_or_else(unknown),
        source: names.source_name(t.source).unwrap_or_else(unknown),
        ts_event: t.ts_event,
        ts_recv: t.ts_recv,
        bid: t.bid,
        ask: t.ask,
        bid_size: t.bid_size,
        ask_size: t.ask_size,
    }
}
