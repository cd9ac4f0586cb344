//! The directory of a day file: how a reader finds one symbol's ticks in a time window, or its
//! newest ticks, on a live day without scanning the day.
//!
//! The writer commits each batch grouped by symbol (arrival order kept within a symbol), so
//! one symbol's ticks of one commit are one contiguous `seq` range, and every few commits
//! records them in one `batches` row (schema/ticks.sql): the `seq` span, the `ts_event` bounds,
//! the running bounds (`cummax`, `lag`) that let a time window find its rows with two index
//! seeks, and `dir`: per commit, its number of entries, then `(symbol, count)` in `seq` order,
//! all varints. One row per several commits keeps the directory off most commits' pages: one
//! row per commit measured 17% of the writer's speed (three more dirty pages per commit).
//!
//! What no row covers yet (the writer's last few commits, or what a crash left without its
//! row) is the *tail*, read by scanning; a row with a NULL `dir` (rows from before version 5,
//! salvaged rows) is a span read by scanning too.
//!
//! Invariant: the rows tile `seq` 1..=k with no gap or overlap, k <= max(seq) (`store::check`
//! verifies it; `writer::insert_all`, the writer's reopening and the salvage keep it).

use integer_encoding::VarInt;
use rusqlite::Connection;

/// Where one symbol's ticks are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// Exactly these `seq`s (inclusive) hold the symbol's ticks.
    Exact(i64, i64),
    /// The symbol's ticks are somewhere in these `seq`s: filter by symbol.
    Scan(i64, i64),
}

/// A directory that does not decode (a damaged file: readers scan the span instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undecodable;

fn push_var(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 10];
    let n = v.encode_var(&mut buf);
    out.extend_from_slice(&buf[..n]);
}

/// Appends one commit's directory: its entries, `(symbol, count)` in `seq` order.
pub fn push_commit(dir: &mut Vec<u8>, entries: &[(i64, u64)]) {
    push_var(dir, entries.len() as u64);
    for &(sym, count) in entries {
        push_var(dir, sym as u64);
        push_var(dir, count);
    }
}

/// One varint at `*at`. Most values of a directory (symbol ids and counts below 128) are one
/// byte, read without the general decoder: it was a third of a live-day range query's time.
#[inline]
fn read_var(dir: &[u8], at: &mut usize) -> Result<u64, Undecodable> {
    match dir.get(*at) {
        Some(&b) if b < 0x80 => {
            *at += 1;
            Ok(u64::from(b))
        }
        Some(_) => {
            let (v, n) = u64::decode_var(&dir[*at..]).ok_or(Undecodable)?;
            *at += n;
            Ok(v)
        }
        None => Err(Undecodable),
    }
}

/// Calls `f(symbol, first seq, count)` for each run of every commit of a directory row that
/// starts at `first_seq`, in `seq` order.
pub fn each_run(
    first_seq: i64,
    dir: &[u8],
    mut f: impl FnMut(i64, i64, i64),
) -> Result<(), Undecodable> {
    let mut at = 0usize;
    let mut seq = first_seq;
    while at < dir.len() {
        let entries = read_var(dir, &mut at)?;
        for _ in 0..entries {
            let sym = i64::try_from(read_var(dir, &mut at)?).map_err(|_| Undecodable)?;
            let count = i64::try_from(read_var(dir, &mut at)?).map_err(|_| Undecodable)?;
            f(sym, seq, count);
            seq = seq.checked_add(count).ok_or(Undecodable)?;
        }
    }
    Ok(())
}

/// Every run of a directory row that starts at `first_seq`: `(symbol, first seq, count)`, in
/// `seq` order.
pub fn runs(first_seq: i64, dir: &[u8]) -> Result<Vec<(i64, i64, i64)>, Undecodable> {
    let mut out = Vec::new();
    each_run(first_seq, dir, |s, a, n| out.push((s, a, n)))?;
    Ok(out)
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

/// Which symbols a directory walk looks for: file ids (few), or every symbol.
#[derive(Debug, Clone, Copy)]
pub enum Want<'a> {
    Ids(&'a [i64]),
    All,
}

impl Want<'_> {
    fn has(self, sym: i64) -> bool {
        match self {
            Want::Ids(ids) => ids.contains(&sym),
            Want::All => true,
        }
    }
}

/// The wanted symbols' spans in one row: exact runs from its directory, or the whole span to
/// scan (for every symbol, the whole span is exact).
fn spans_of(first: i64, last: i64, dir: Option<&[u8]>, want: Want<'_>, out: &mut Vec<Span>) {
    if let Want::All = want {
        out.push(Span::Exact(first, last));
        return;
    }
    let Some(d) = dir else {
        out.push(Span::Scan(first, last));
        return;
    };
    let before = out.len();
    let found = each_run(first, d, |s, a, n| {
        if n > 0 && want.has(s) {
            // Runs of one commit are adjacent in `seq`: one span covers neighbours.
            let joins = out.len() > before;
            match out.last_mut() {
                Some(Span::Exact(_, b)) if joins && *b + 1 == a => *b = a + n - 1,
                _ => out.push(Span::Exact(a, a + n - 1)),
            }
        }
    });
    if found.is_err() {
        out.truncate(before);
        out.push(Span::Scan(first, last));
    }
}

/// The tail no row covers yet: `(first, last)` when there is one.
fn tail(conn: &Connection) -> rusqlite::Result<Option<(i64, i64)>> {
    // The last row by its key, and the last tick by its key: two seeks.
    conn.query_row(
        "SELECT coalesce((SELECT last_seq FROM batches ORDER BY first_seq DESC LIMIT 1), 0) + 1, \
                coalesce((SELECT seq FROM ticks ORDER BY seq DESC LIMIT 1), 0)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .map(|(a, b): (i64, i64)| (a <= b).then_some((a, b)))
}

/// The spans of the wanted symbols in rows whose `ts_event` bounds meet `[lo, hi)`
/// (day-relative ns), then the tail, in `seq` order. Call inside a read transaction (one
/// snapshot).
pub fn spans_in(
    conn: &Connection,
    want: Want<'_>,
    lo: i64,
    hi: i64,
) -> rusqlite::Result<Vec<Span>> {
    // Between the first row whose running max reaches lo and the first whose running max
    // passes hi by more than any row has lagged (schema/ticks.sql).
    let mut stmt = conn.prepare_cached(
        "SELECT first_seq, last_seq, dir FROM batches WHERE first_seq >= coalesce( \
             (SELECT first_seq FROM batches WHERE cummax >= ?1 ORDER BY cummax LIMIT 1), \
             9223372036854775807) \
         AND first_seq <= coalesce( \
             (SELECT first_seq FROM batches WHERE cummax >= ?2 + \
                 (SELECT lag FROM batches ORDER BY first_seq DESC LIMIT 1) \
              ORDER BY cummax LIMIT 1), \
             9223372036854775807) \
         AND ts_max >= ?1 AND ts_min < ?2 ORDER BY first_seq",
    )?;
    let mut rows = stmt.query([lo, hi])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        spans_of(
            r.get(0)?,
            r.get(1)?,
            r.get_ref(2)?.as_blob_or_null()?,
            want,
            &mut out,
        );
    }
    if let Some((a, b)) = tail(conn)? {
        out.push(match want {
            Want::All => Span::Exact(a, b),
            Want::Ids(_) => Span::Scan(a, b),
        });
    }
    Ok(out)
}

/// Calls `f` with the spans of `sym`, newest first (the tail, then rows by descending
/// `seq`), until it returns false. Call inside a read transaction (one snapshot).
pub fn spans_newest_first(
    conn: &Connection,
    sym: i64,
    f: &mut dyn FnMut(Span) -> rusqlite::Result<bool>,
) -> rusqlite::Result<()> {
    if let Some((a, b)) = tail(conn)? {
        if !f(Span::Scan(a, b))? {
            return Ok(());
        }
    }
    let mut stmt = conn
        .prepare_cached("SELECT first_seq, last_seq, dir FROM batches ORDER BY first_seq DESC")?;
    let mut rows = stmt.query([])?;
    let mut spans = Vec::new();
    while let Some(r) = rows.next()? {
        spans.clear();
        spans_of(
            r.get(0)?,
            r.get(1)?,
            r.get_ref(2)?.as_blob_or_null()?,
            Want::Ids(&[sym]),
            &mut spans,
        );
        for s in spans.iter().rev() {
            if !f(*s)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// What the writer has committed and not yet recorded in a row (see the module doc).
#[derive(Debug, Default, Clone)]
pub struct Pending {
    pub first_seq: i64,
    pub last_seq: i64,
    pub ts_min: i64,
    pub ts_max: i64,
    pub commits: u32,
    pub dir: Vec<u8>,
}

impl Pending {
    /// Nothing pending (the directory buffer is kept for reuse).
    pub fn clear(&mut self) {
        self.commits = 0;
        self.dir.clear();
    }
}

/// Commits recorded per row, at most.
pub const COMMITS_PER_ROW: u32 = 16;

/// A row is written before its directory would pass this many bytes: a row then fills most of
/// a 4 KiB page and never spills into an overflow page (a row of 8 commits of 128 symbols, about
/// 2 KB, left half of each page free: 1.0 byte per tick, now 0.6).
pub const ROW_BYTES: usize = 3_600;

impl Pending {
    /// Whether the pending commits get their row now: the commit cap, or another commit of
    /// the size of the average one so far would pass [`ROW_BYTES`].
    pub fn full(&self) -> bool {
        let per_commit = self.dir.len() / self.commits.max(1) as usize;
        self.commits >= COMMITS_PER_ROW || self.dir.len() + per_commit > ROW_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_finds_each_symbols_runs_across_commits() {
        let mut dir = Vec::new();
        push_commit(&mut dir, &[(0, 3), (5, 1), (300, 200)]);
        push_commit(&mut dir, &[(5, 2), (300, 1)]);
        assert_eq!(
            runs(100, &dir),
            Ok(vec![
                (0, 100, 3),
                (5, 103, 1),
                (300, 104, 200),
                (5, 304, 2),
                (300, 306, 1)
            ])
        );
        let mut spans = Vec::new();
        spans_of(100, 306, Some(&dir), Want::Ids(&[5]), &mut spans);
        assert_eq!(spans, vec![Span::Exact(103, 103), Span::Exact(304, 305)]);
        spans.clear();
        spans_of(
            100,
            306,
            Some(&dir[..dir.len() - 1]),
            Want::Ids(&[5]),
            &mut spans,
        );
        assert_eq!(spans, vec![Span::Scan(100, 306)], "damaged: scanned");
        spans.clear();
        spans_of(100, 306, Some(&dir), Want::Ids(&[5, 300]), &mut spans);
        assert_eq!(
            spans,
            vec![Span::Exact(103, 306)],
            "neighbouring runs of the wanted symbols join"
        );
    }
}
