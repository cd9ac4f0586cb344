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
//! salvaged rows) is a span read by scanning too, until `seal` covers it and the tail with
//! *packed* rows ([`cover`], [`pack`]: the arrival-ordered ticks of a day from before the
//! directory, one symbol byte a tick, zstd).
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

/// Appends `v` as a varint (one byte, the usual case, without the general encoder).
pub(super) fn push_var(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
        return;
    }
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
pub(super) fn read_var(dir: &[u8], at: &mut usize) -> Result<u64, Undecodable> {
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

/// Calls `f(symbol, first seq, count)` for each run of a wanted symbol in every commit of a
/// directory row that starts at `first_seq`, in `seq` order.
pub fn each_run(
    first_seq: i64,
    dir: &[u8],
    want: Want<'_>,
    mut f: impl FnMut(i64, i64, i64),
) -> Result<(), Undecodable> {
    if dir.first() == Some(&PACKED) {
        return each_packed_run(first_seq, dir, want, f);
    }
    let mask = small_ids(want);
    let mut at = 0usize;
    let mut seq = first_seq;
    while at < dir.len() {
        let entries = read_var(dir, &mut at)?;
        // The usual commit: every symbol id and count below 128, its entries one byte each.
        // Read as byte pairs with the wanted ids as a bit set, not varint by varint: the
        // directory walk was half of an hour's query on a live day while the writer wrote
        // (`bench --only queries`, three runs a side, alternating: that hour 0.91–1.02M →
        // 1.31–1.55M ticks/s, `recent 100` meanwhile 372–400 → 318–352 µs).
        let pairs = usize::try_from(entries)
            .ok()
            .and_then(|e| e.checked_mul(2))
            .and_then(|n| dir.get(at..at.checked_add(n)?));
        if let Some(bytes) = pairs {
            // Each pair adds at most 127 to `seq`: checked once for the commit.
            let fits = seq.checked_add(64 * bytes.len() as i64).is_some();
            if fits && bytes.iter().all(|&b| b < 0x80) {
                for pair in bytes.chunks_exact(2) {
                    let (sym, count) = (pair[0], i64::from(pair[1]));
                    if mask[usize::from(sym >> 6)] >> (sym & 63) & 1 != 0 {
                        f(i64::from(sym), seq, count);
                    }
                    seq += count;
                }
                at += bytes.len();
                continue;
            }
        }
        for _ in 0..entries {
            let sym = i64::try_from(read_var(dir, &mut at)?).map_err(|_| Undecodable)?;
            let count = i64::try_from(read_var(dir, &mut at)?).map_err(|_| Undecodable)?;
            if want.has(sym) {
                f(sym, seq, count);
            }
            seq = seq.checked_add(count).ok_or(Undecodable)?;
        }
    }
    Ok(())
}

/// First byte of a packed row (see [`pack`]): no commit the writer records has zero entries,
/// so no row in the writer's form starts with it.
const PACKED: u8 = 0;
/// A packed row unpacks to at most this many bytes (a longer claim is a damaged row).
const PACKED_MAX: usize = 1 << 20;

/// One directory row for runs that are mostly one tick long: the rows of a day from before the
/// directory, in arrival order, which `seal` covers (see [`cover`]). The writer's form would
/// spend two bytes a tick on them (a symbol and a count of 1); packed, the symbols come first,
/// then the counts, and zstd takes the counts to nothing and the symbols to their entropy
/// (128 equally busy symbols: 0.9 byte a tick). Layout: a 0 byte, the unpacked length, then
/// zstd of (the number of runs, the symbols' length in bytes, every symbol, every count), all
/// varints.
pub fn pack(runs: &[(i64, u64)], level: i32) -> std::io::Result<Vec<u8>> {
    let mut syms = Vec::with_capacity(runs.len());
    for &(sym, _) in runs {
        push_var(&mut syms, sym as u64);
    }
    let mut raw = Vec::with_capacity(runs.len() * 2 + 8);
    push_var(&mut raw, runs.len() as u64);
    push_var(&mut raw, syms.len() as u64);
    raw.extend_from_slice(&syms);
    for &(_, count) in runs {
        push_var(&mut raw, count);
    }
    let mut out = vec![PACKED];
    push_var(&mut out, raw.len() as u64);
    out.extend_from_slice(&zstd::bulk::compress(&raw, level)?);
    Ok(out)
}

/// The wanted symbol ids below 128 as a bit set (what the fast paths, which see only such
/// ids, test a symbol byte against).
fn small_ids(want: Want<'_>) -> [u64; 2] {
    match want {
        Want::All => [u64::MAX; 2],
        Want::Ids(ids) => {
            let mut mask = [0u64; 2];
            for &id in ids.iter().filter(|&&id| (0..128).contains(&id)) {
                mask[(id >> 6) as usize] |= 1 << (id & 63);
            }
            mask
        }
    }
}

/// [`each_run`] of a packed row.
fn each_packed_run(
    first_seq: i64,
    dir: &[u8],
    want: Want<'_>,
    mut f: impl FnMut(i64, i64, i64),
) -> Result<(), Undecodable> {
    let mut at = 1usize;
    let len = usize::try_from(read_var(dir, &mut at)?)
        .ok()
        .filter(|&n| n <= PACKED_MAX)
        .ok_or(Undecodable)?;
    thread_local! {
        // One decompression context per thread: making one per row was a sixth of an hour's
        // query on a sealed day.
        static UNPACK: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let raw = UNPACK
        .with(|cell| {
            let mut cell = cell.borrow_mut();
            if cell.is_none() {
                *cell = Some(zstd::bulk::Decompressor::new()?);
            }
            match cell.as_mut() {
                Some(d) => d.decompress(&dir[at..], len),
                None => Err(std::io::Error::other("no decompressor")),
            }
        })
        .map_err(|_| Undecodable)?;
    if raw.len() != len {
        return Err(Undecodable);
    }
    let mut syms = 0usize;
    let n = read_var(&raw, &mut syms)?;
    let syms_len = usize::try_from(read_var(&raw, &mut syms)?).map_err(|_| Undecodable)?;
    let mut counts = syms
        .checked_add(syms_len)
        .filter(|&c| c <= raw.len())
        .ok_or(Undecodable)?;
    let one_byte = |len: usize| u64::try_from(len).is_ok_and(|l| l == n);
    if one_byte(syms_len) && one_byte(raw.len() - counts) && raw[counts..].iter().all(|&c| c == 1) {
        // Every run one tick long and every symbol id below 128, the usual packed row: the
        // i-th symbol byte is the tick at first_seq + i (a third of an hour's query went to
        // decoding runs one varint at a time).
        let mask = small_ids(want);
        for (i, &b) in raw[syms..counts].iter().enumerate() {
            if mask[usize::from(b >> 6)] >> (b & 63) & 1 != 0 {
                f(i64::from(b), first_seq + i as i64, 1);
            }
        }
        return Ok(());
    }
    let syms_end = counts;
    let mut seq = first_seq;
    for _ in 0..n {
        let sym = i64::try_from(read_var(&raw[..syms_end], &mut syms)?).map_err(|_| Undecodable)?;
        let count = i64::try_from(read_var(&raw, &mut counts)?).map_err(|_| Undecodable)?;
        if want.has(sym) {
            f(sym, seq, count);
        }
        seq = seq.checked_add(count).ok_or(Undecodable)?;
    }
    if syms != syms_end || counts != raw.len() {
        return Err(Undecodable);
    }
    Ok(())
}

/// Every run of a directory row that starts at `first_seq`: `(symbol, first seq, count)`, in
/// `seq` order.
pub fn runs(first_seq: i64, dir: &[u8]) -> Result<Vec<(i64, i64, i64)>, Undecodable> {
    let mut out = Vec::new();
    each_run(first_seq, dir, Want::All, |s, a, n| out.push((s, a, n)))?;
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
    let found = each_run(first, d, want, |_, a, n| {
        if n > 0 {
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
    conn.prepare_cached(
        "SELECT coalesce((SELECT last_seq FROM batches ORDER BY first_seq DESC LIMIT 1), 0) + 1, \
                coalesce((SELECT seq FROM ticks ORDER BY seq DESC LIMIT 1), 0)",
    )?
    .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
    .map(|(a, b): (i64, i64)| (a <= b).then_some((a, b)))
}

/// The rows whose `ts_event` bounds meet `[lo, hi)` (`?1`, `?2`): between the first row whose
/// running max reaches lo and the first whose running max passes hi by more than any row has
/// lagged (schema/ticks.sql).
const ROWS_IN: &str = "SELECT first_seq, last_seq, dir FROM batches WHERE first_seq >= coalesce( \
         (SELECT first_seq FROM batches WHERE cummax >= ?1 ORDER BY cummax LIMIT 1), \
         9223372036854775807) \
     AND first_seq <= coalesce( \
         (SELECT first_seq FROM batches WHERE cummax >= ?2 + \
             (SELECT lag FROM batches ORDER BY first_seq DESC LIMIT 1) \
          ORDER BY cummax LIMIT 1), \
         9223372036854775807) \
     AND ts_max >= ?1 AND ts_min < ?2 ORDER BY first_seq";

/// The spans of the wanted symbols in rows whose `ts_event` bounds meet `[lo, hi)`
/// (day-relative ns), then the tail, in `seq` order. Call inside a read transaction (one
/// snapshot).
pub fn spans_in(
    conn: &Connection,
    want: Want<'_>,
    lo: i64,
    hi: i64,
) -> rusqlite::Result<Vec<Span>> {
    let mut stmt = conn.prepare_cached(ROWS_IN)?;
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

/// Where the wanted symbols' ticks are, by row: what a reader of one or a few symbols walks
/// (their blocks, `store::blocks`, are keyed by a row's runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// One symbol's runs `(first seq, count)` in one directory row, in `seq` order: its
    /// block is keyed by the first run's first `seq`.
    Runs { sym: i64, runs: Vec<(i64, i64)> },
    /// Rows to read as they are.
    Span(Span),
}

impl Piece {
    /// How many ticks it names at most.
    pub fn ticks(&self) -> i64 {
        match self {
            Piece::Runs { runs, .. } => runs.iter().map(|r| r.1).fold(0, i64::saturating_add),
            Piece::Span(Span::Exact(a, b) | Span::Scan(a, b)) => {
                b.saturating_sub(*a).saturating_add(1)
            }
        }
    }
}

/// The wanted symbols' pieces of one row, in the order of their first tick (a row without a
/// directory, or one that does not decode, is one span to scan).
pub(super) fn pieces_of(
    first: i64,
    last: i64,
    dir: Option<&[u8]>,
    want: Want<'_>,
    out: &mut Vec<Piece>,
) {
    let Some(d) = dir else {
        out.push(Piece::Span(Span::Scan(first, last)));
        return;
    };
    let before = out.len();
    let found = each_run(first, d, want, |sym, a, n| {
        if n <= 0 {
            return;
        }
        let known = out[before..].iter_mut().find_map(|p| match p {
            Piece::Runs { sym: s, runs } if *s == sym => Some(runs),
            _ => None,
        });
        match known {
            Some(runs) => runs.push((a, n)),
            None => out.push(Piece::Runs {
                sym,
                runs: vec![(a, n)],
            }),
        }
    });
    if found.is_err() {
        out.truncate(before);
        out.push(Piece::Span(Span::Scan(first, last)));
    }
}

/// The pieces of symbols `ids` in rows whose `ts_event` bounds meet `[lo, hi)` (each row's runs
/// of each symbol), then the tail, in `seq` order. Call inside a read transaction.
pub fn pieces_in(conn: &Connection, ids: &[i64], lo: i64, hi: i64) -> rusqlite::Result<Vec<Piece>> {
    let mut stmt = conn.prepare_cached(ROWS_IN)?;
    let mut rows = stmt.query([lo, hi])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        pieces_of(
            r.get(0)?,
            r.get(1)?,
            r.get_ref(2)?.as_blob_or_null()?,
            Want::Ids(ids),
            &mut out,
        );
    }
    if let Some((a, b)) = tail(conn)? {
        out.push(Piece::Span(Span::Scan(a, b)));
    }
    Ok(out)
}

/// Calls `f` with the pieces of `sym`, newest first (the tail, then each row's runs of `sym`,
/// by descending `seq`), until it returns false. Call inside a read transaction (one snapshot).
pub fn pieces_newest_first(
    conn: &Connection,
    sym: i64,
    f: &mut dyn FnMut(Piece) -> rusqlite::Result<bool>,
) -> rusqlite::Result<()> {
    if let Some((a, b)) = tail(conn)? {
        if !f(Piece::Span(Span::Scan(a, b)))? {
            return Ok(());
        }
    }
    let mut stmt = conn
        .prepare_cached("SELECT first_seq, last_seq, dir FROM batches ORDER BY first_seq DESC")?;
    let mut rows = stmt.query([])?;
    let mut pieces = Vec::new();
    while let Some(r) = rows.next()? {
        pieces.clear();
        pieces_of(
            r.get(0)?,
            r.get(1)?,
            r.get_ref(2)?.as_blob_or_null()?,
            Want::Ids(&[sym]),
            &mut pieces,
        );
        for p in pieces.drain(..) {
            if !f(p)? {
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
    /// Nothing pending (the buffers are kept for reuse).
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

/// The running bounds of a row that follows one with `cummax` and `lag` (the first row follows
/// `(i64::MIN, 0)`): see the `batches` table in schema/ticks.sql.
pub fn running(cummax: i64, lag: i64, ts_min: i64, ts_max: i64) -> (i64, i64) {
    (cummax.max(ts_max), lag.max(cummax.saturating_sub(ts_min)))
}

/// Ticks per packed row, at most (a row that packs past [`ROW_BYTES`] is cut in two).
const PACKED_TICKS: u64 = 4096;

/// One run of a span being covered: its symbol, length and `ts_event` bounds.
#[derive(Clone, Copy)]
struct Run {
    sym: i64,
    count: u64,
    ts_min: i64,
    ts_max: i64,
}

/// The `seq` spans whose ticks no directory row names, in order: `(first, last, true)` for a
/// row to scan, `(first, last, false)` for the tail.
pub fn uncovered(conn: &Connection) -> rusqlite::Result<Vec<(i64, i64, bool)>> {
    let mut spans = conn
        .prepare("SELECT first_seq, last_seq FROM batches WHERE dir IS NULL ORDER BY first_seq")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, true)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if let Some((a, b)) = tail(conn)? {
        spans.push((a, b, false));
    }
    Ok(spans)
}

/// Gives every tick that no directory row names (the tail; spans to scan: rows from before
/// the directory, rows salvaged by `check --repair`) packed rows ([`pack`]), then sets every
/// row's running bounds again; inside the caller's transaction. `seal` does it to a closed day,
/// `unarchive` to the day it rebuilds: afterwards the directory alone answers the day's
/// queries, with no per-tick index. A span whose ticks have a gap in `seq` stays a span to scan
/// (its runs would place ticks at the wrong `seq`). Returns how many ticks were covered.
pub fn cover(conn: &Connection, level: i32) -> rusqlite::Result<u64> {
    let mut covered = 0u64;
    for (first, last, has_row) in uncovered(conn)? {
        let Some(rows) = packed_rows(conn, first, last, level)? else {
            if !has_row {
                // A gap in the tail: one row to scan covers it, the writer's own way.
                super::writer::record_directory(conn, &Pending::default())?;
            }
            continue;
        };
        if has_row {
            conn.execute("DELETE FROM batches WHERE first_seq = ?1", [first])?;
        }
        let mut insert = conn.prepare_cached(
            "INSERT INTO batches (first_seq, last_seq, ts_min, ts_max, cummax, lag, dir) \
             VALUES (?1, ?2, ?3, ?4, 0, 0, ?5)",
        )?;
        for r in rows {
            insert.execute(rusqlite::params![
                r.first, r.last, r.ts_min, r.ts_max, r.dir
            ])?;
        }
        covered += u64::try_from(last - first + 1).unwrap_or(0);
    }
    // Every row's running bounds, from the first row on (new rows may sit between old ones).
    let rows: Vec<(i64, i64, i64, i64, i64)> = conn
        .prepare("SELECT first_seq, ts_min, ts_max, cummax, lag FROM batches ORDER BY first_seq")?
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut set = conn.prepare("UPDATE batches SET cummax = ?2, lag = ?3 WHERE first_seq = ?1")?;
    let (mut cummax, mut lag) = (i64::MIN, 0);
    for (first, lo, hi, was_cummax, was_lag) in rows {
        (cummax, lag) = running(cummax, lag, lo, hi);
        if (cummax, lag) != (was_cummax, was_lag) {
            set.execute([first, cummax, lag])?;
        }
    }
    Ok(covered)
}

/// A directory row to insert: `seq` span, `ts_event` bounds, packed runs.
struct PackedRow {
    first: i64,
    last: i64,
    ts_min: i64,
    ts_max: i64,
    dir: Vec<u8>,
}

/// The packed rows of the ticks `first..=last`, or `None` when a `seq` in between is missing.
fn packed_rows(
    conn: &Connection,
    first: i64,
    last: i64,
    level: i32,
) -> rusqlite::Result<Option<Vec<PackedRow>>> {
    let mut out = Vec::new();
    let mut runs: Vec<Run> = Vec::new();
    let (mut row_first, mut row_ticks, mut next) = (first, 0u64, first);
    let mut stmt = conn
        .prepare("SELECT seq, sym, ts_event FROM ticks WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq")?;
    let mut rows = stmt.query([first, last])?;
    while let Some(r) = rows.next()? {
        let (seq, sym, ts): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        if seq != next {
            return Ok(None);
        }
        next += 1;
        if row_ticks == PACKED_TICKS {
            packed_row(row_first, &runs, level, &mut out)?;
            (row_first, row_ticks) = (seq, 0);
            runs.clear();
        }
        row_ticks += 1;
        match runs.last_mut() {
            Some(run) if run.sym == sym => {
                run.count += 1;
                run.ts_min = run.ts_min.min(ts);
                run.ts_max = run.ts_max.max(ts);
            }
            _ => runs.push(Run {
                sym,
                count: 1,
                ts_min: ts,
                ts_max: ts,
            }),
        }
    }
    if next != last + 1 {
        return Ok(None);
    }
    if !runs.is_empty() {
        packed_row(row_first, &runs, level, &mut out)?;
    }
    Ok(Some(out))
}

/// Packs `runs`, starting at `first`, into one row, or into two halves (and so on) when one
/// row would pass [`ROW_BYTES`] and spill into overflow pages.
fn packed_row(
    first: i64,
    runs: &[Run],
    level: i32,
    out: &mut Vec<PackedRow>,
) -> rusqlite::Result<()> {
    let ticks: u64 = runs.iter().map(|r| r.count).sum();
    // Mostly single ticks (arrival order): every tick its own run, for the readers' fast path
    // (a symbol byte per tick, no counts to add up); zstd takes the repeats.
    let pairs: Vec<(i64, u64)> = if runs.len() as u64 * 2 > ticks {
        runs.iter()
            .flat_map(|r| std::iter::repeat_n((r.sym, 1), r.count as usize))
            .collect()
    } else {
        runs.iter().map(|r| (r.sym, r.count)).collect()
    };
    let dir = pack(&pairs, level).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
    if dir.len() > ROW_BYTES && runs.len() > 1 {
        let (a, b) = runs.split_at(runs.len() / 2);
        let ticks_a: u64 = a.iter().map(|r| r.count).sum();
        packed_row(first, a, level, out)?;
        return packed_row(first + ticks_a as i64, b, level, out);
    }
    let lo = runs.iter().map(|r| r.ts_min).min().unwrap_or(0);
    let hi = runs.iter().map(|r| r.ts_max).max().unwrap_or(0);
    out.push(PackedRow {
        first,
        last: first + ticks as i64 - 1,
        ts_min: lo,
        ts_max: hi,
        dir,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// A packed row reads back as the runs it was made of, for any wanted symbols, by the
        /// fast path (single ticks, small ids) and the general one alike; cut short anywhere it
        /// is undecodable, never misread.
        #[test]
        fn a_packed_row_reads_back_as_its_runs(
            runs in proptest::collection::vec((0i64..300, 1u64..4), 1..600),
            singles in proptest::bool::ANY,
            small in proptest::bool::ANY,
            wanted in proptest::collection::vec(0i64..300, 0..4),
            cut in 0usize..10_000,
        ) {
            let runs: Vec<(i64, u64)> = runs
                .into_iter()
                .map(|(s, c)| (if small { s % 128 } else { s }, if singles { 1 } else { c }))
                .collect();
            let packed = pack(&runs, 3).unwrap();
            let mut seq = 40;
            let mut expected = Vec::new();
            for &(s, c) in &runs {
                if wanted.contains(&s) {
                    expected.push((s, seq, c as i64));
                }
                seq += c as i64;
            }
            let mut got = Vec::new();
            each_run(40, &packed, Want::Ids(&wanted), |s, a, n| got.push((s, a, n))).unwrap();
            proptest::prop_assert_eq!(got, expected);
            let all = super::runs(40, &packed).unwrap();
            proptest::prop_assert_eq!(all.len(), runs.len());
            let short = &packed[..1 + cut % (packed.len() - 1)];
            proptest::prop_assert_eq!(each_run(40, short, Want::All, |_, _, _| ()), Err(Undecodable));
        }
    }

    proptest::proptest! {
        /// A row in the writer's form reads back as its commits' runs, for any wanted symbols,
        /// whether its entries are one byte each (the fast path) or not (ids or counts from
        /// 128 on); cut short anywhere it is undecodable, never misread.
        #[test]
        fn a_writer_row_reads_back_as_its_runs(
            commits in proptest::collection::vec(
                proptest::collection::vec((0i64..300, 1u64..300), 1..40), 1..20),
            small in proptest::bool::ANY,
            wanted in proptest::collection::vec(0i64..300, 0..4),
            cut in 0usize..10_000,
        ) {
            let commits: Vec<Vec<(i64, u64)>> = commits
                .into_iter()
                .map(|c| c.into_iter().map(|(s, n)| if small { (s % 128, n % 127 + 1) } else { (s, n) }).collect())
                .collect();
            let mut dir = Vec::new();
            let (mut seq, mut expected, mut all) = (40i64, Vec::new(), Vec::new());
            for c in &commits {
                push_commit(&mut dir, c);
                for &(s, n) in c {
                    if wanted.contains(&s) {
                        expected.push((s, seq, n as i64));
                    }
                    all.push((s, seq, n as i64));
                    seq += n as i64;
                }
            }
            let mut got = Vec::new();
            each_run(40, &dir, Want::Ids(&wanted), |s, a, n| got.push((s, a, n))).unwrap();
            proptest::prop_assert_eq!(got, expected);
            proptest::prop_assert_eq!(super::runs(40, &dir).unwrap(), all);
            // Cut inside a commit's entries (a cut between commits is a shorter row).
            let short = &dir[..cut % dir.len()];
            let mut at = 0;
            let mut ends = vec![0];
            for c in &commits {
                at += 1 + c.iter().map(|&(s, n)| {
                    let mut b = Vec::new();
                    push_var(&mut b, s as u64);
                    push_var(&mut b, n);
                    b.len()
                }).sum::<usize>();
                ends.push(at);
            }
            if !ends.contains(&short.len()) {
                proptest::prop_assert_eq!(each_run(40, short, Want::All, |_, _, _| ()), Err(Undecodable));
            }
        }
    }

    #[test]
    fn cover_names_every_tick_of_an_arrival_ordered_day_and_keeps_the_running_bounds() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE ticks (seq INTEGER PRIMARY KEY, sym INTEGER, ts_event INTEGER);
             CREATE TABLE batches (first_seq INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL,
                 ts_min INTEGER NOT NULL, ts_max INTEGER NOT NULL, cummax INTEGER NOT NULL,
                 lag INTEGER NOT NULL, dir BLOB);",
        )
        .unwrap();
        // 10,000 ticks of 5 symbols in arrival order, times a little out of order; the first
        // 6,000 one span to scan (an upgraded file), the rest a tail no row names.
        for seq in 1..=10_000i64 {
            let sym = (seq * 7 + seq / 3) % 5;
            let ts = seq * 1_000 - (seq % 7) * 900;
            conn.execute("INSERT INTO ticks VALUES (?1, ?2, ?3)", [seq, sym, ts])
                .unwrap();
        }
        conn.execute(
            "INSERT INTO batches SELECT 1, 6000, min(ts_event), max(ts_event), max(ts_event), 0, \
             NULL FROM ticks WHERE seq <= 6000",
            [],
        )
        .unwrap();
        assert_eq!(cover(&conn, 3).unwrap(), 10_000);
        type Batch = (i64, i64, i64, i64, i64, i64, Vec<u8>);
        let rows: Vec<Batch> = conn
            .prepare("SELECT * FROM batches ORDER BY first_seq")
            .unwrap()
            .query_map([], |r| r.try_into())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let (mut next, mut cummax, mut lag) = (1, i64::MIN, 0);
        for (first, last, lo, hi, cm, lg, dir) in rows {
            assert_eq!(first, next, "rows tile seq");
            next = last + 1;
            (cummax, lag) = running(cummax, lag, lo, hi);
            assert_eq!((cm, lg), (cummax, lag));
            for (sym, a, n) in runs(first, &dir).unwrap() {
                for seq in a..a + n {
                    let (s, ts): (i64, i64) = conn
                        .query_row(
                            "SELECT sym, ts_event FROM ticks WHERE seq = ?1",
                            [seq],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )
                        .unwrap();
                    assert_eq!(s, sym, "seq {seq}");
                    assert!(lo <= ts && ts <= hi);
                }
            }
        }
        assert_eq!(next, 10_001);
        assert_eq!(cover(&conn, 3).unwrap(), 0, "idempotent");
        // A gap in seq: the span stays one to scan.
        conn.execute_batch(
            "INSERT INTO ticks VALUES (10002, 1, 5); INSERT INTO ticks VALUES (10004, 1, 6);",
        )
        .unwrap();
        assert_eq!(cover(&conn, 3).unwrap(), 0);
        let scan: Option<Vec<u8>> = conn
            .query_row("SELECT dir FROM batches WHERE first_seq = 10001", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(scan, None);
    }

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
