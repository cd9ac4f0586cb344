//! The per-transaction directory of a day file: how a reader finds one symbol's ticks in a
//! time window, or its newest ticks, on a live day without scanning the day.
//!
//! The writer commits each batch grouped by symbol (arrival order kept within a symbol) and
//! records it in two tables (schema/ticks.sql): `batches` (the batch's `seq` span and its
//! `ts_event` bounds) and `batch_dirs` (per symbol, in `seq` order, how many ticks it has in
//! the batch: `(symbol, count)` varint pairs). One symbol's ticks of one batch are then one
//! contiguous `seq` range, fetched by rowid. A `batches` span without a `batch_dirs` row (rows
//! written before schema version 5, or salvaged by `check --repair`) is *unindexed*: read by
//! scanning its `seq` range with a symbol filter.
//!
//! Invariant: every `seq` of a version-5 file lies in exactly one `batches` span
//! (`store::check` verifies it; `writer::insert_all` and the salvage keep it).

use integer_encoding::VarInt;
use rusqlite::Connection;

/// Where one symbol's ticks of one batch are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// Exactly these `seq`s (inclusive) hold the symbol's ticks.
    Exact(i64, i64),
    /// The symbol's ticks are somewhere in these `seq`s: filter by symbol.
    Scan(i64, i64),
}

/// Appends one `(symbol, count)` entry to a batch directory.
pub fn push_entry(dir: &mut Vec<u8>, sym: i64, count: u64) {
    let mut buf = [0u8; 10];
    let n = (sym as u64).encode_var(&mut buf);
    dir.extend_from_slice(&buf[..n]);
    let n = count.encode_var(&mut buf);
    dir.extend_from_slice(&buf[..n]);
}

/// A batch directory that does not decode (a damaged file: readers scan the span instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undecodable;

/// The `seq` range of `sym` in the batch that starts at `first_seq` with directory `dir`.
pub fn span_of(first_seq: i64, dir: &[u8], sym: i64) -> Result<Option<(i64, i64)>, Undecodable> {
    let mut at = 0usize;
    let mut seq = first_seq;
    while at < dir.len() {
        let (s, n) = u64::decode_var(&dir[at..]).ok_or(Undecodable)?;
        at += n;
        let (count, n) = u64::decode_var(&dir[at..]).ok_or(Undecodable)?;
        at += n;
        let count = i64::try_from(count).map_err(|_| Undecodable)?;
        if s as i64 == sym {
            return Ok(Some((seq, seq.checked_add(count - 1).ok_or(Undecodable)?)));
        }
        seq = seq.checked_add(count).ok_or(Undecodable)?;
    }
    Ok(None)
}

/// Whether the file has a directory (schema version 5 and later).
pub fn present(conn: &Connection) -> bool {
    conn.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'batches'",
        [],
        |_| Ok(()),
    )
    .is_ok()
}

const BATCHES: &str = "SELECT b.first_seq, b.last_seq, d.dir FROM batches b \
     LEFT JOIN batch_dirs d ON d.first_seq = b.first_seq";

fn span(first: i64, last: i64, dir: Option<Vec<u8>>, sym: i64) -> Option<Span> {
    match dir {
        None => Some(Span::Scan(first, last)),
        Some(d) => match span_of(first, &d, sym) {
            Ok(Some((a, b))) => Some(Span::Exact(a, b)),
            Ok(None) => None,
            Err(Undecodable) => Some(Span::Scan(first, last)),
        },
    }
}

/// The spans of `sym` in batches whose `ts_event` bounds meet `[lo, hi)` (day-relative ns),
/// in `seq` order.
pub fn spans_in(conn: &Connection, sym: i64, lo: i64, hi: i64) -> rusqlite::Result<Vec<Span>> {
    // Between the first batch whose running max reaches lo and the first whose running max
    // passes hi by more than any batch has lagged (schema/ticks.sql): one snapshot, one
    // statement.
    let mut stmt = conn.prepare_cached(&format!(
        "{BATCHES} WHERE b.first_seq >= coalesce( \
             (SELECT first_seq FROM batches WHERE cummax >= ?1 ORDER BY cummax LIMIT 1), \
             9223372036854775807) \
         AND b.first_seq <= coalesce( \
             (SELECT first_seq FROM batches WHERE cummax >= ?2 + \
                 (SELECT lag FROM batches ORDER BY first_seq DESC LIMIT 1) \
              ORDER BY cummax LIMIT 1), \
             9223372036854775807) \
         AND b.ts_max >= ?1 AND b.ts_min < ?2 ORDER BY b.first_seq"
    ))?;
    let mut rows = stmt.query([lo, hi])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        if let Some(s) = span(r.get(0)?, r.get(1)?, r.get(2)?, sym) {
            out.push(s);
        }
    }
    Ok(out)
}

/// Calls `f` with the spans of `sym`, newest batch first, until it returns false.
pub fn spans_newest_first(
    conn: &Connection,
    sym: i64,
    f: &mut dyn FnMut(Span) -> rusqlite::Result<bool>,
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(&format!("{BATCHES} ORDER BY b.first_seq DESC"))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        if let Some(s) = span(r.get(0)?, r.get(1)?, r.get(2)?, sym) {
            if !f(s)? {
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_finds_each_symbols_range() {
        let mut dir = Vec::new();
        for (sym, n) in [(0, 3u64), (5, 1), (300, 200)] {
            push_entry(&mut dir, sym, n);
        }
        assert_eq!(span_of(100, &dir, 0), Ok(Some((100, 102))));
        assert_eq!(span_of(100, &dir, 5), Ok(Some((103, 103))));
        assert_eq!(span_of(100, &dir, 300), Ok(Some((104, 303))));
        assert_eq!(span_of(100, &dir, 7), Ok(None));
        assert_eq!(span_of(100, &dir[..dir.len() - 1], 300), Err(Undecodable));
    }
}
