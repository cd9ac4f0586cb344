//! The live day's block file: the symbol blocks (`store::blocks`) kept beside the day file and
//! built by a thread of their own from each directory row's committed batches, so that they
//! cost the writer a copy of each tick's integers instead of the encoding and a second trip
//! through SQLite. The writer hands a row's batches over together once the row is written: one
//! wake-up of the builder per row, not per commit.
//!
//! Three files beside `ticks_<day>.db`, derived from its name alone:
//! - `ticks_<day>.blocks`: the blocks' `data`, back to back;
//! - `ticks_<day>.blockidx`: one 24-byte entry per block, little-endian: key (i64, the `seq` of
//!   the block's first tick), offset (u64) and length (u32) in `.blocks`, and a check (u32, the
//!   low bits of XXH3 over the first 20 bytes). Keys rise strictly; offsets tile `.blocks` from 0.
//! - `ticks_<day>.blocktail`: per commit, appended by the writer right after it commits (there
//!   as soon as the commit is), its runs: varints first `seq`, tick count, smallest and largest
//!   `ts_event` (zigzag), run count, then per run its file symbol id and length, in `seq` order;
//!   then the payload's length (u32) and its check (u32, XXH3 seeded with the day
//!   file's `file_info.created_ns`, so that records never describe the rows of another file put
//!   in its place: a check that only covered the record let another day file's well-formed
//!   records, with the same commits, name a subset of a symbol's ticks). The ticks no
//!   directory row covers yet (up to 16 commits, ~8,000 ticks) are what `recent` reads newest
//!   first, and what a range reads after its rows; without these records they are scanned for
//!   the symbol (~0.5 ms of a live `recent 100`), with them its runs are read by `seq`, and a
//!   range passes over the commits outside its window. Emptied when
//!   the writer opens the day (what it held is covered by directory rows or is a crash's
//!   leftovers, which get a row to scan).
//!
//! Measured against the blocks kept in the day file (`blocks` table, schema version 8), on the
//! same machine, `tickrec bench --only writer --ticks 3000000` with blocks on, alternating: see
//! `schema/ticks.sql` (LIVE-DAY QUERY STRUCTURE). In the day file every block went through the
//! WAL and again through the checkpoint, and was encoded on the writer's thread.
//!
//! Invariants (ARCHITECTURE.md, 17):
//! - Every entry names a block built from committed rows of one directory row: the builder
//!   takes a batch only after its transaction commits, and writes a directory row's blocks
//!   only when the commits it got tile exactly that row's `seq` range.
//! - No entry outlives its rows: at opening, under the day lock and before any commit, the
//!   writer that owns the files cuts them back to the entries whose keys are within the last
//!   directory row the day file holds (a power cut can take back commits the files kept) and
//!   whose checks hold. Keys past it are written again only by this writer.
//! - One owner: the writer holding an `flock` on `.blockidx`. Another writer of the same day
//!   writes no blocks (its rows are read from the day file, as every row without a block is).
//!
//! A reader trusts nothing here further than the block's own check and its tick count against
//! the directory row (`DayReader::block_rows`): anything else reads the rows.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::blocks::{unzz, zz, Builder, Row};

/// Bytes of one index entry.
pub const ENTRY: usize = 24;

/// The largest block a reader reads (a directory row holds at most ~3,600 bytes of directory
/// and 16 commits: one symbol's block of it is far smaller).
const MAX_BLOCK: u32 = 16 << 20;

/// `.blocks` and `.blockidx` of the day file `db`.
pub fn paths(db: &Path) -> (PathBuf, PathBuf) {
    (db.with_extension("blocks"), db.with_extension("blockidx"))
}

/// `.blocktail` of the day file `db`.
pub fn tail_path(db: &Path) -> PathBuf {
    db.with_extension("blocktail")
}

/// Removes the block files of the day file `db` (after seal, archive or restore; the caller
/// holds the day's exclusive lock). Absent files are no error.
pub fn remove(db: &Path) -> io::Result<()> {
    let (data, index) = paths(db);
    for p in [index, data, tail_path(db)] {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn entry_check(head: &[u8]) -> u32 {
    twox_hash::XxHash3_64::oneshot(head) as u32
}

/// One index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub key: i64,
    pub offset: u64,
    pub len: u32,
}

impl Entry {
    /// The entry as the index holds it.
    pub fn encode(&self) -> [u8; ENTRY] {
        let mut b = [0u8; ENTRY];
        b[..8].copy_from_slice(&self.key.to_le_bytes());
        b[8..16].copy_from_slice(&self.offset.to_le_bytes());
        b[16..20].copy_from_slice(&self.len.to_le_bytes());
        let check = entry_check(&b[..20]);
        b[20..].copy_from_slice(&check.to_le_bytes());
        b
    }

    /// The entry in `b` (24 bytes), when its check holds.
    fn decode(b: &[u8]) -> Option<Entry> {
        let b: &[u8; ENTRY] = b.try_into().ok()?;
        let (head, check) = b.split_at(20);
        if entry_check(head).to_le_bytes() != *check {
            return None;
        }
        let mut key = [0u8; 8];
        let mut offset = [0u8; 8];
        let mut len = [0u8; 4];
        key.copy_from_slice(&b[..8]);
        offset.copy_from_slice(&b[8..16]);
        len.copy_from_slice(&b[16..20]);
        Some(Entry {
            key: i64::from_le_bytes(key),
            offset: u64::from_le_bytes(offset),
            len: u32::from_le_bytes(len),
        })
    }

    fn end(&self) -> u64 {
        self.offset.saturating_add(u64::from(self.len))
    }
}

/// The entries of an index image `bytes` that stay: the longest prefix whose checks hold, whose
/// keys rise and are at most `covered`, and whose blocks tile a `.blocks` of `data_len` bytes
/// from 0. Returns how many, and where their blocks end.
fn sound_prefix(bytes: &[u8], covered: i64, data_len: u64) -> (usize, u64) {
    let (mut n, mut end, mut last) = (0usize, 0u64, i64::MIN);
    for chunk in bytes.chunks_exact(ENTRY) {
        let Some(e) = Entry::decode(chunk) else { break };
        if e.key <= last || e.key > covered || e.offset != end || e.end() > data_len {
            break;
        }
        (n, end, last) = (n + 1, e.end(), e.key);
    }
    (n, end)
}

/// One tick of a committed batch, as the builder takes it.
#[derive(Debug, Clone, Copy)]
pub struct Tick {
    pub sym: i64,
    pub seq: i64,
    pub row: Row,
}

enum Msg {
    /// The ticks of one commit, in `seq` order.
    Commit(Vec<Tick>),
    /// A directory row now covers `first..=last`; `whole` when it holds its commits' directory
    /// (else the commits are left to the rows: `writer::record_directory`).
    Row { first: i64, last: i64, whole: bool },
}

/// What a builder did, for the writer's log at close.
#[derive(Debug, Default)]
pub struct SpoolStats {
    /// Blocks written.
    pub blocks: AtomicU64,
    /// Directory rows left without blocks: a message the full queue could not take, a failed
    /// write (the disk full), a row over commits this writer did not make alone.
    pub rows_skipped: AtomicU64,
}

/// The writer's end: the owner of a day's block files and the thread that writes them.
pub struct Spool {
    /// Commits and rows, in order, handed over together (see [`Spool::committed`]).
    tx: Option<crossbeam_channel::Sender<Vec<Msg>>>,
    back: crossbeam_channel::Receiver<Vec<Tick>>,
    /// This transaction's messages, held once it commits.
    staged: Vec<Msg>,
    /// Committed messages not sent yet: they go to the builder together, once one of them is
    /// a directory row (see [`Spool::committed`]).
    held: Vec<Msg>,
    /// This transaction's ticks (reused buffers come back from the builder).
    ticks: Vec<Tick>,
    /// This transaction's runs `(sym, length)` in `seq` order, and its `ts_event` range, kept
    /// as the ticks are pushed (what its tail record holds: see [`Spool::ticks_done`]).
    runs: Vec<(i64, u64)>,
    ts_range: (i64, i64),
    /// This transaction's tail record, appended once it commits.
    record: Vec<u8>,
    tail: TailFile,
    stats: Arc<SpoolStats>,
    thread: Option<std::thread::JoinHandle<()>>,
    index_path: PathBuf,
}

/// Messages the builder may have waiting, each a directory row's commits (~16 of 500 ticks,
/// ~0.8 MB). Past that, rows are skipped (they get no blocks: their ticks are read from the
/// day file) rather than the writer waiting.
const QUEUE: usize = 32;

/// Emptied tick buffers the builder may hand back for reuse (it hands back ~16 a row).
const BACK: usize = 64;

/// `path` opened to read and write, created if absent, emptied when `empty`.
fn open_rw(path: &Path, empty: bool) -> io::Result<File> {
    File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(empty)
        .open(path)
}

impl Spool {
    /// Takes the block files of the day file `db` and starts their builder, after cutting them
    /// back to what `covered` (the last `seq` the day file's directory rows cover, read under
    /// the day lock before any commit) vouches for. `seed`: the day file's
    /// [`tail seed`](tail_seed), which binds the tail records to it. `None` when another writer
    /// owns them.
    pub fn open(db: &Path, covered: i64, seed: u64) -> io::Result<Option<Spool>> {
        let (data_path, index_path) = paths(db);
        let index = open_rw(&index_path, false)?;
        match index.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        let data = open_rw(&data_path, false)?;
        let image = std::fs::read(&index_path)?;
        let data_len = data.metadata()?.len();
        let (n, end) = sound_prefix(&image, covered, data_len);
        let keep = (n * ENTRY) as u64;
        if keep != image.len() as u64 || end != data_len {
            tracing::info!(path = %index_path.display(), kept = n, dropped = image.len() / ENTRY - n, "symbol blocks cut back to what the day file's directory covers");
            index.set_len(keep)?;
            data.set_len(end)?;
        }
        let tail = TailFile {
            file: open_rw(&tail_path(db), true)?,
            len: 0,
            seed,
        };
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let (back_tx, back) = crossbeam_channel::bounded(BACK);
        let stats = Arc::new(SpoolStats::default());
        let files = Files {
            data,
            index,
            data_len: end,
            index_len: keep,
            path: index_path.clone(),
            failed: false,
        };
        let thread = std::thread::Builder::new()
            .name("tickrec-blocks".into())
            .spawn({
                let stats = stats.clone();
                move || build(rx, back_tx, files, &stats)
            })?;
        Ok(Some(Spool {
            tx: Some(tx),
            back,
            staged: Vec::new(),
            held: Vec::new(),
            ticks: Vec::new(),
            runs: Vec::new(),
            ts_range: (i64::MAX, i64::MIN),
            record: Vec::new(),
            tail,
            stats,
            thread: Some(thread),
            index_path,
        }))
    }

    /// A new transaction: nothing staged.
    pub fn begin(&mut self) {
        self.staged.clear();
        self.ticks.clear();
        self.runs.clear();
        self.ts_range = (i64::MAX, i64::MIN);
        self.record.clear();
    }

    /// This transaction wrote a directory row over `first..=last`.
    pub fn row(&mut self, first: i64, last: i64, whole: bool) {
        self.staged.push(Msg::Row { first, last, whole });
    }

    /// This transaction wrote the tick at `seq`.
    #[inline]
    pub fn push(&mut self, sym: i64, seq: i64, row: &Row) {
        self.ticks.push(Tick {
            sym,
            seq,
            row: *row,
        });
        match self.runs.last_mut() {
            Some((s, n)) if *s == sym => *n += 1,
            _ => self.runs.push((sym, 1)),
        }
        let (lo, hi) = self.ts_range;
        self.ts_range = (lo.min(row.ts_event), hi.max(row.ts_event));
    }

    /// This transaction's ticks are all pushed (directory rows recorded after them follow).
    /// Its tail record comes from what [`Spool::push`] kept: taken from the ticks again, in
    /// three passes over them, it cost the writer thread 14 ns a tick, now 1.5 (`perf` of
    /// `tickrec bench --only writer`; `data/performance-log.md`, "Measured after run 41").
    pub fn ticks_done(&mut self) {
        let (Some(head), Some(last)) = (self.ticks.first(), self.ticks.last()) else {
            return;
        };
        let count = last.seq - head.seq + 1;
        let (lo, hi) = self.ts_range;
        tail_record(
            (head.seq, count),
            (lo, hi),
            &self.runs,
            self.tail.seed,
            &mut self.record,
        );
        let next = self.back.try_recv().unwrap_or_default();
        let ticks = std::mem::replace(&mut self.ticks, next);
        self.staged.push(Msg::Commit(ticks));
    }

    /// The transaction committed. Its tail record is appended here, on the writer's thread, so
    /// that `recent` finds the newest commit's runs at once. Its ticks and rows are held until
    /// a directory row is among them, then all go to the builder: it writes blocks only for
    /// whole rows, and one wake-up per row instead of one per commit spares the writer ~3 % of
    /// its time (a futex wake, an interrupt to the other CPU: `perf` of `bench --only writer`).
    /// Never waits: what the queue cannot take is dropped, and those directory rows get no
    /// blocks.
    pub fn committed(&mut self) {
        if !self.record.is_empty() {
            self.tail.append(&self.record);
            self.record.clear();
        }
        let row = self.staged.iter().any(|m| matches!(m, Msg::Row { .. }));
        self.held.append(&mut self.staged);
        if !row {
            return;
        }
        let Some(tx) = &self.tx else {
            self.held.clear();
            return;
        };
        // One message: the builder wakes once for all of it.
        if let Err(e) = tx.try_send(std::mem::take(&mut self.held)) {
            let lost = e.into_inner();
            let rows = lost.iter().filter(|m| matches!(m, Msg::Row { .. })).count();
            self.stats
                .rows_skipped
                .fetch_add(rows as u64, Ordering::Relaxed);
        }
    }

    /// Stops the builder once it has written what it was sent.
    pub fn close(&mut self) {
        self.tx = None;
        let Some(t) = self.thread.take() else { return };
        if t.join().is_err() {
            tracing::warn!(path = %self.index_path.display(), "the symbol block builder panicked; its day's rows are read from the day file");
        }
        tracing::debug!(
            path = %self.index_path.display(),
            blocks = self.stats.blocks.load(Ordering::Relaxed),
            rows_skipped = self.stats.rows_skipped.load(Ordering::Relaxed),
            "symbol blocks closed"
        );
    }

    pub fn stats(&self) -> &SpoolStats {
        &self.stats
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        self.close();
    }
}

/// The builder's files and where each ends.
struct Files {
    data: File,
    index: File,
    data_len: u64,
    index_len: u64,
    path: PathBuf,
    failed: bool,
}

/// `.blocktail`, appended by the writer after each commit.
struct TailFile {
    file: File,
    len: u64,
    /// The day file's tail seed.
    seed: u64,
}

impl TailFile {
    /// Appends one commit's tail record (see the module doc); a failed write is cut back.
    fn append(&mut self, record: &[u8]) {
        match self.file.write_all_at(record, self.len) {
            Ok(()) => self.len += record.len() as u64,
            Err(_) => {
                let _ = self.file.set_len(self.len);
            }
        }
    }
}

impl Files {
    /// Appends `blocks` (key, data) and their entries; on a failed write cuts both files back,
    /// so that they stay a sound prefix.
    fn append(&mut self, data: &[u8], entries: &[u8]) -> io::Result<()> {
        let done = self
            .data
            .write_all_at(data, self.data_len)
            .and_then(|()| self.index.write_all_at(entries, self.index_len));
        match done {
            Ok(()) => {
                self.data_len += data.len() as u64;
                self.index_len += entries.len() as u64;
                if self.failed {
                    self.failed = false;
                    tracing::info!(path = %self.path.display(), "symbol blocks written again");
                }
                Ok(())
            }
            Err(e) => {
                let _ = self.index.set_len(self.index_len);
                let _ = self.data.set_len(self.data_len);
                if !self.failed {
                    self.failed = true;
                    tracing::warn!(path = %self.path.display(), error = %e, "symbol blocks not written (queries read those rows from the day file)");
                }
                Err(e)
            }
        }
    }
}

/// The runs `(sym, first seq, length)` of one commit's `ticks` (in `seq` order, grouped by
/// symbol): one per symbol, as its directory entry gives them.
fn commit_runs(ticks: &[Tick]) -> impl Iterator<Item = (i64, i64, usize)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let t = ticks.get(at)?;
        let n = ticks[at..].iter().take_while(|u| u.sym == t.sym).count();
        at += n;
        Some((t.sym, t.seq, n))
    })
}

/// The tail record into `out` of a commit of `count` ticks from `first` (`seq`), with its
/// `ts_event` range `(lo, hi)` and its runs `(sym, length)` in `seq` order.
fn tail_record(
    (first, count): (i64, i64),
    (lo, hi): (i64, i64),
    runs: &[(i64, u64)],
    seed: u64,
    out: &mut Vec<u8>,
) {
    use super::directory::push_var;
    out.clear();
    push_var(out, first as u64);
    push_var(out, count as u64);
    push_var(out, zz(lo));
    push_var(out, zz(hi));
    push_var(out, runs.len() as u64);
    for &(sym, n) in runs {
        push_var(out, sym as u64);
        push_var(out, n);
    }
    let check = twox_hash::XxHash3_64::oneshot_with_seed(seed, out) as u32;
    let len = out.len() as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&check.to_le_bytes());
}

/// One parsed tail record.
struct TailRecord {
    first: i64,
    count: i64,
    ts_min: i64,
    ts_max: i64,
    /// `(sym, length)` in `seq` order.
    runs: Vec<(i64, i64)>,
}

/// The record ending at `end` of `buf` and where it starts, when whole and its check holds.
fn tail_record_before(buf: &[u8], end: usize, seed: u64) -> Option<(TailRecord, usize)> {
    use super::directory::read_var;
    let trailer = buf.get(end.checked_sub(8)?..end)?;
    let len = u32::from_le_bytes(trailer[..4].try_into().ok()?) as usize;
    let check = u32::from_le_bytes(trailer[4..].try_into().ok()?);
    let start = end.checked_sub(8)?.checked_sub(len)?;
    let payload = buf.get(start..end - 8)?;
    if twox_hash::XxHash3_64::oneshot_with_seed(seed, payload) as u32 != check {
        return None;
    }
    let mut at = 0;
    let mut raw = || read_var(payload, &mut at).ok();
    let (first, count) = (raw()?, raw()?);
    let (ts_min, ts_max, n) = (unzz(raw()?), unzz(raw()?), raw()?);
    let mut runs = Vec::with_capacity(usize::try_from(n).ok()?.min(1 << 16));
    for _ in 0..n {
        runs.push((i64::try_from(raw()?).ok()?, i64::try_from(raw()?).ok()?));
    }
    let record = TailRecord {
        first: i64::try_from(first).ok()?,
        count: i64::try_from(count).ok()?,
        ts_min,
        ts_max,
        runs,
    };
    Some((record, start))
}

/// One directory row's commits as the builder gathers them.
#[derive(Default)]
struct Group {
    builders: Vec<Builder>,
    /// Per symbol, its runs `(first seq, length)`, one per commit, as the directory row
    /// gives them: the seed of its block's check (`blocks::runs_seed`).
    runs: Vec<Vec<(i64, i64)>>,
    touched: Vec<usize>,
    first: i64,
    /// The `seq` the next commit must start at; 0 while empty.
    next: i64,
    /// A commit is missing or out of order: this row gets no blocks.
    broken: bool,
}

impl Group {
    fn add(&mut self, ticks: &[Tick]) {
        let Some(head) = ticks.first() else { return };
        if self.next == 0 {
            self.first = head.seq;
        } else if head.seq != self.next {
            self.broken = true;
        }
        for t in ticks {
            let Ok(s) = usize::try_from(t.sym) else {
                self.broken = true;
                continue;
            };
            if self.builders.len() <= s {
                self.builders.resize_with(s + 1, Default::default);
                self.runs.resize_with(s + 1, Default::default);
            }
            let b = &mut self.builders[s];
            if b.count == 0 {
                self.touched.push(s);
            }
            b.push(t.seq, &t.row);
        }
        for (sym, first, n) in commit_runs(ticks) {
            if let Some(runs) = usize::try_from(sym).ok().and_then(|s| self.runs.get_mut(s)) {
                runs.push((first, n as i64));
            }
        }
        self.next = ticks.last().map_or(self.next, |t| t.seq.saturating_add(1));
    }

    fn covers(&self, first: i64, last: i64) -> bool {
        !self.broken && self.next != 0 && self.first == first && self.next == last.saturating_add(1)
    }

    fn clear(&mut self) {
        for &s in &self.touched {
            self.builders[s].clear();
            self.runs[s].clear();
        }
        self.touched.clear();
        (self.first, self.next, self.broken) = (0, 0, false);
    }
}

fn build(
    rx: crossbeam_channel::Receiver<Vec<Msg>>,
    back: crossbeam_channel::Sender<Vec<Tick>>,
    mut files: Files,
    stats: &SpoolStats,
) {
    let mut group = Group::default();
    let (mut data, mut entries, mut one, mut keys) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for msg in rx.into_iter().flatten() {
        match msg {
            Msg::Commit(mut ticks) => {
                group.add(&ticks);
                ticks.clear();
                let _ = back.try_send(ticks);
            }
            Msg::Row { first, last, whole } => {
                if !(whole && group.covers(first, last)) {
                    if group.next != 0 {
                        stats.rows_skipped.fetch_add(1, Ordering::Relaxed);
                    }
                    group.clear();
                    continue;
                }
                // Each symbol's block in key order: the index's keys rise.
                keys.clear();
                keys.extend(
                    group
                        .touched
                        .iter()
                        .map(|&s| (group.builders[s].first_seq, s)),
                );
                keys.sort_unstable();
                data.clear();
                entries.clear();
                for &(key, s) in &keys {
                    let seed = super::blocks::runs_seed(&group.runs[s]);
                    group.builders[s].data_seeded(seed, &mut one);
                    let Ok(len) = u32::try_from(one.len()) else {
                        continue;
                    };
                    let offset = files.data_len + data.len() as u64;
                    entries.extend_from_slice(&Entry { key, offset, len }.encode());
                    data.extend_from_slice(&one);
                }
                if files.append(&data, &entries).is_ok() {
                    stats
                        .blocks
                        .fetch_add((entries.len() / ENTRY) as u64, Ordering::Relaxed);
                } else {
                    stats.rows_skipped.fetch_add(1, Ordering::Relaxed);
                }
                group.clear();
            }
        }
    }
}

/// The runs `(sym, first seq, length)` the tail records give, and the last `seq` they account
/// for (see [`BlockFile::tail_runs`]).
pub type TailRuns = (Vec<(i64, i64, i64)>, i64);

/// A reader's view of a day's block files.
#[derive(Debug)]
pub struct BlockFile {
    index: File,
    data: File,
    tail: Option<File>,
    /// The day file's tail seed.
    seed: u64,
}

/// What seeds the checks of a day file's tail records: its `file_info.created_ns` (0 when it
/// has none).
pub fn tail_seed(conn: &rusqlite::Connection) -> rusqlite::Result<u64> {
    use rusqlite::OptionalExtension;
    let created: Option<i64> = conn
        .query_row("SELECT created_ns FROM file_info", [], |r| r.get(0))
        .optional()?;
    Ok(created.unwrap_or(0) as u64)
}

/// The newest index entries [`BlockFile::find`] reads first (4 KiB).
const NEWEST_ENTRIES: u64 = 170;

/// Index entries [`BlockFile::find`] reads at once, at most (64 KiB).
const FIND_CHUNK: usize = 2730;

/// The most of `.blocktail` a reader reads back from its end (16 commits of 500 ticks over
/// 128 symbols take ~8 KB).
const TAIL_READ: u64 = 1 << 20;

impl BlockFile {
    /// The block files of the day file `db`, whose [`tail seed`](tail_seed) is `seed`; `None`
    /// when it has none.
    pub fn open(db: &Path, seed: u64) -> Option<BlockFile> {
        let (data, index) = paths(db);
        Some(BlockFile {
            index: File::open(index).ok()?,
            data: File::open(data).ok()?,
            tail: File::open(tail_path(db)).ok(),
            seed,
        })
    }

    /// The runs `(sym, first seq, length)` of symbols `ids` among the ticks `from..=to` (which
    /// no directory row covers yet) that the tail records give, in `seq` order, leaving out the
    /// commits whose `ts_event` bounds miss `[lo, hi)`; and the last `seq` the records account
    /// for: `from - 1` when they do not tile `from..` without a gap (a record missing, torn, or
    /// not written yet). The ticks past it are the caller's to scan.
    pub fn tail_runs(&self, ids: &[i64], (from, to): (i64, i64), (lo, hi): (i64, i64)) -> TailRuns {
        let none = (Vec::new(), from.saturating_sub(1));
        let Some(tail) = &self.tail else { return none };
        let Ok(len) = tail.metadata().map(|m| m.len()) else {
            return none;
        };
        let mut want = 16_384u64;
        loop {
            let take = want.min(len).min(TAIL_READ);
            let mut buf = vec![0u8; take as usize];
            if tail.read_exact_at(&mut buf, len - take).is_err() {
                return none;
            }
            // Newest first: records past `to` (committed after this reader's snapshot) are
            // passed over; the rest must tile down to `from`.
            let (mut end, mut next, mut upto, mut runs) =
                (buf.len(), None::<i64>, None, Vec::new());
            while let Some((rec, start)) = tail_record_before(&buf, end, self.seed) {
                end = start;
                let last = rec.first.saturating_add(rec.count).saturating_sub(1);
                if rec.first > to {
                    continue;
                }
                let gap = match next {
                    Some(n) => last.saturating_add(1) != n,
                    None => last > to,
                };
                if gap || rec.first < from {
                    return none;
                }
                upto.get_or_insert(last);
                if rec.ts_max >= lo && rec.ts_min < hi {
                    let mut at = rec.first;
                    let mut mine = Vec::new();
                    for (s, n) in rec.runs {
                        if ids.contains(&s) {
                            mine.push((s, at, n));
                        }
                        at = at.saturating_add(n);
                    }
                    runs.extend(mine.into_iter().rev());
                }
                next = Some(rec.first);
                if rec.first == from {
                    runs.reverse();
                    return (runs, upto.unwrap_or(from - 1));
                }
            }
            if take >= len.min(TAIL_READ) {
                return none;
            }
            want = want.saturating_mul(4);
        }
    }

    /// How many entries the index holds now.
    pub fn len(&self) -> io::Result<u64> {
        Ok(self.index.metadata()?.len() / ENTRY as u64)
    }

    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    fn key_at(&self, i: u64) -> io::Result<Option<i64>> {
        let mut b = [0u8; ENTRY];
        self.index.read_exact_at(&mut b, i * ENTRY as u64)?;
        Ok(Entry::decode(&b).map(|e| e.key))
    }

    /// Calls `f(i, data)` for each `keys[i]` (rising) the index names, with the block's bytes
    /// as written (the caller checks them: `blocks::decode`).
    pub fn find(&self, keys: &[i64], f: &mut dyn FnMut(usize, &[u8])) -> io::Result<()> {
        let (Some(&lo_key), Some(&hi_key)) = (keys.first(), keys.last()) else {
            return Ok(());
        };
        let n = self.len()?;
        // The first entry whose key is at least lo_key (an entry that fails its check counts
        // as lower: the search goes on past it). Most lookups (`recent`, a following tail)
        // want the newest blocks: one read of the last entries places lo_key there without the
        // search's ~17 reads of one entry each (a 10M-tick day has ~160,000 entries).
        let (mut lo, mut hi) = (0u64, n);
        let last = n.min(NEWEST_ENTRIES);
        if last > 0 {
            let mut buf = vec![0u8; last as usize * ENTRY];
            self.index
                .read_exact_at(&mut buf, (n - last) * ENTRY as u64)?;
            let mut newest = buf.chunks_exact(ENTRY).map(Entry::decode);
            match newest.next().flatten() {
                Some(e) if e.key < lo_key => {
                    let past = newest.position(|e| e.is_some_and(|e| e.key >= lo_key));
                    lo = n - last + 1 + past.map_or(last - 1, |p| p as u64);
                    hi = lo;
                }
                Some(_) => hi = n - last,
                None => {}
            }
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.key_at(mid)? {
                Some(k) if k >= lo_key => hi = mid,
                _ => lo = mid + 1,
            }
        }
        // Entries are read in chunks from the first, sized to the keys and growing: one key
        // (`recent`'s newest block) reads 16 entries, not the 2,730 (64 KiB) a whole directory
        // row's blocks may take.
        let (mut want, mut chunk, mut block) = (0usize, Vec::new(), Vec::new());
        let mut entries = keys.len().clamp(16, FIND_CHUNK);
        let mut at = lo;
        'scan: while at < n && want < keys.len() {
            let take = (n - at).min(entries as u64) as usize;
            entries = entries.saturating_mul(4).min(FIND_CHUNK);
            chunk.resize(take * ENTRY, 0);
            let buf = &mut chunk[..];
            self.index.read_exact_at(buf, at * ENTRY as u64)?;
            for e in buf.chunks_exact(ENTRY).filter_map(Entry::decode) {
                while keys.get(want).is_some_and(|&k| k < e.key) {
                    want += 1;
                }
                if want >= keys.len() || e.key > hi_key {
                    break 'scan;
                }
                if keys[want] == e.key && e.len <= MAX_BLOCK {
                    block.resize(e.len as usize, 0);
                    if self.data.read_exact_at(&mut block, e.offset).is_ok() {
                        f(want, &block);
                    }
                    want += 1;
                }
            }
            at += take as u64;
        }
        Ok(())
    }

    /// Every entry, in index order (for `tickrec check`), up to the first that fails its check.
    pub fn entries(&self) -> io::Result<Vec<Entry>> {
        let mut image = Vec::new();
        io::Read::read_to_end(&mut &self.index, &mut image)?;
        Ok(image.chunks_exact(ENTRY).map_while(Entry::decode).collect())
    }

    /// The bytes of the block `e` names.
    pub fn read(&self, e: &Entry) -> io::Result<Vec<u8>> {
        if e.len > MAX_BLOCK {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "block too long"));
        }
        let mut b = vec![0u8; e.len as usize];
        self.data.read_exact_at(&mut b, e.offset)?;
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: i64) -> Row {
        Row {
            ts_event: i * 1_000,
            ts_recv: 5_000,
            bid: Some((100 + i) << 4 | 6),
            ask: Some(3 << 4),
            bid_size: None,
            ask_size: None,
            src: 0,
        }
    }

    /// The tail record, kept as ticks are pushed, says what the ticks themselves say: the
    /// first `seq`, the count, the `ts_event` range and the runs; and a second commit starts
    /// from nothing.
    #[test]
    fn a_commits_tail_record_holds_its_ticks_runs_and_range() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ticks_2026-12-01.db");
        let mut spool = Spool::open(&db, 0, 7).unwrap().expect("owner");
        for (first, syms) in [(1, vec![3, 3, 0, 0, 0, 7]), (7, vec![5])] {
            spool.begin();
            // Times out of order within a run, as feeds send them.
            for (i, &sym) in syms.iter().enumerate() {
                let seq = first + i as i64;
                let ts_event = 9_000 - (seq % 4) * 1_000 + (first - 1) * 100;
                let r = Row {
                    ts_event,
                    ..row(seq)
                };
                spool.push(sym, seq, &r);
            }
            // What the ticks say (ticks_done hands them on).
            let want: Vec<(i64, i64)> = commit_runs(&spool.ticks)
                .map(|(s, _, n)| (s, n as i64))
                .collect();
            let ts = spool.ticks.iter().map(|t| t.row.ts_event);
            let (lo, hi) = (ts.clone().min().unwrap(), ts.max().unwrap());
            spool.ticks_done();
            let (rec, start) =
                tail_record_before(&spool.record, spool.record.len(), 7).expect("whole");
            assert_eq!(start, 0);
            assert_eq!((rec.first, rec.count), (first, syms.len() as i64));
            assert_eq!(rec.runs, want);
            assert_eq!((rec.ts_min, rec.ts_max), (lo, hi));
            spool.committed();
        }
        spool.close();
    }

    /// Commits of `per` ticks over `syms` symbols from seq `first`, `rows` directory rows of
    /// `commits` commits each, through a spool; returns the keys written.
    fn write(db: &Path, covered: i64, first: i64, rows: i64, commits: i64) -> Vec<i64> {
        let mut spool = Spool::open(db, covered, 7).unwrap().expect("owner");
        let mut seq = first;
        for _ in 0..rows {
            let row_first = seq;
            for c in 0..commits {
                spool.begin();
                // Grouped by symbol, as the writer commits: 4 of symbol 0, 3 of 1, 3 of 2.
                for i in 0..10 {
                    spool.push([0, 0, 0, 0, 1, 1, 1, 2, 2, 2][i], seq, &row(seq));
                    seq += 1;
                }
                spool.ticks_done();
                if c == commits - 1 {
                    spool.row(row_first, seq - 1, true);
                }
                spool.committed();
            }
        }
        spool.close();
        let f = BlockFile::open(db, 7).unwrap();
        f.entries().unwrap().iter().map(|e| e.key).collect()
    }

    #[test]
    fn blocks_round_trip_and_a_second_writer_does_not_take_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ticks_2026-12-01.db");
        let keys = write(&db, 0, 1, 2, 3);
        // Two rows of 30 ticks, three symbols each.
        assert_eq!(keys, vec![1, 5, 8, 31, 35, 38]);
        let f = BlockFile::open(&db, 7).unwrap();
        let mut got = Vec::new();
        // Symbol 1's runs in the first row (three commits of ten), symbol 0's in the second.
        let seeds = [
            crate::store::blocks::runs_seed(&[(5, 3), (15, 3), (25, 3)]),
            crate::store::blocks::runs_seed(&[(31, 4), (41, 4), (51, 4)]),
        ];
        f.find(&[5, 31, 40], &mut |i, data| {
            let mut rows = Vec::new();
            crate::store::blocks::decode_seeded(seeds[i], data, &mut rows).unwrap();
            got.push((i, rows.len(), rows[0]));
            // Under runs the directory does not give, the block does not check.
            let other = crate::store::blocks::runs_seed(&[(31, 4), (41, 4), (51, 3)]);
            assert!(crate::store::blocks::decode_seeded(other, data, &mut rows).is_err());
        })
        .unwrap();
        assert_eq!(got, vec![(0, 9, row(5)), (1, 12, row(31))]);
        let owner = Spool::open(&db, 60, 7).unwrap().expect("free again");
        assert!(Spool::open(&db, 60, 7).unwrap().is_none(), "one owner");
        drop(owner);
    }

    /// What could go wrong: `find` looks among the newest entries first; a key older than
    /// them, one among them, one at their edge or one missing must each come back exactly
    /// as the index holds it, one call with keys on both sides too.
    #[test]
    fn find_returns_exactly_the_blocks_asked_for_among_the_newest_entries_and_before_them() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ticks_2026-12-01.db");
        // 100 rows of one commit: 300 entries, keys 1, 5, 8, 11, 15, 18, ... Written by four
        // writers in turn: one writes faster than its builder takes [`QUEUE`] rows.
        let mut keys = Vec::new();
        for k in 0..4 {
            keys = write(&db, k * 250, k * 250 + 1, 25, 1);
        }
        assert_eq!(keys.len(), 300);
        let f = BlockFile::open(&db, 7).unwrap();
        let entries = f.entries().unwrap();
        let edge = keys.len() - NEWEST_ENTRIES as usize;
        for want in [
            vec![keys[0]],
            vec![keys[edge - 1]],
            vec![keys[edge]],
            vec![keys[edge + 1]],
            vec![keys[299]],
            vec![keys[3], keys[edge], keys[edge + 20], keys[298]],
            vec![2, keys[200], 10_000],
            vec![10_000],
        ] {
            assert!(want.is_sorted(), "find takes rising keys");
            let mut got = Vec::new();
            f.find(&want, &mut |i, data| got.push((want[i], data.to_vec())))
                .unwrap();
            let expected: Vec<(i64, Vec<u8>)> = want
                .iter()
                .filter_map(|k| entries.iter().find(|e| e.key == *k))
                .map(|e| (e.key, f.read(e).unwrap()))
                .collect();
            assert_eq!(got, expected, "{want:?}");
        }
    }

    #[test]
    fn opening_cuts_the_files_back_to_what_the_day_file_covers() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ticks_2026-12-01.db");
        write(&db, 0, 1, 3, 2);
        // A power cut took back the last row (seqs 41..=60): its blocks must go.
        let keys = write(&db, 40, 41, 0, 0);
        assert_eq!(keys, vec![1, 5, 8, 21, 25, 28]);
        let (data, index) = paths(&db);
        let end = BlockFile::open(&db, 7).unwrap().entries().unwrap()[5].end();
        assert_eq!(std::fs::metadata(&data).unwrap().len(), end);
        // A torn entry and garbage after it are cut as well.
        let mut image = std::fs::read(&index).unwrap();
        image[ENTRY * 4 + 3] ^= 1;
        std::fs::write(&index, &image).unwrap();
        assert_eq!(write(&db, 40, 41, 0, 0), vec![1, 5, 8, 21]);
    }

    #[test]
    fn a_gap_in_the_commits_leaves_the_row_without_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ticks_2026-12-01.db");
        let mut spool = Spool::open(&db, 0, 7).unwrap().unwrap();
        for (first, dir) in [
            (1, None),
            (21, Some((1, 30))),
            (31, None),
            (41, Some((31, 50))),
        ] {
            spool.begin();
            for seq in first..first + 10 {
                spool.push(0, seq, &row(seq));
            }
            spool.ticks_done();
            if let Some((a, b)) = dir {
                spool.row(a, b, true);
            }
            spool.committed();
        }
        spool.close();
        assert_eq!(spool.stats().rows_skipped.load(Ordering::Relaxed), 1);
        let keys: Vec<i64> = BlockFile::open(&db, 7)
            .unwrap()
            .entries()
            .unwrap()
            .iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(
            keys,
            vec![31],
            "seqs 11..=20 never came: the first row has none"
        );
    }
}
