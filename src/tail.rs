//! `tickrec tail`: committed ticks in recording order, from a resumable cursor, following the
//! day files as the writer commits.
//!
//! Recording order is day file after day file, and `seq` within one. A [`Cursor`] says how far
//! a reader got: every day before its first entry is read whole, each listed day up to its
//! `seq`, and nothing of a later day. It lists the two newest days it has reached, not just the
//! newest: a late tick for yesterday (an event stamped 23:59:59.9 that arrives after midnight)
//! is appended to yesterday's file after today's has begun, and a tail that only watched today
//! would skip it. A tick for a day older than that arriving while the tail follows is not seen
//! (the writer's late ticks cross midnight by milliseconds, not days).
//!
//! A consumer that needs "nothing twice" across its own crashes records the cursor with what it
//! did with the rows (every row carries its day, the UTC day of `ts_event`, and its `seq`);
//! `--cursor-file` is written after each batch is flushed, so a `tail` killed between the two
//! repeats at most that batch; `--out FILE` is such a consumer for a file (the cursor file
//! keeps FILE's length beside the cursor, and a restart cuts FILE back to it).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::NaiveDate;

use crate::shutdown::Shutdown;
use crate::store::reader::{AfterSeqBuffers, ReadError, Store, Symbols};
use crate::tick::{TickRow, Timestamp};

/// Days a cursor keeps watching (the newest reached and the one before).
const WATCHED_DAYS: usize = 2;
/// Seqs read from a SQLite day per snapshot while catching up (a few milliseconds of reading:
/// the writer's WAL can be reset between two snapshots).
const CHUNK: usize = 4_096;
/// Pause between polls when nothing new was committed (commit to output stays under ~30 ms).
pub const POLL: Duration = Duration::from_millis(20);
/// A following tail leaves at least this many newly committed ticks that no symbol block holds
/// yet (the last few commits before the writer's next directory row, and the block builder's
/// lag behind it) for up to [`HOLD`], and reads them from their blocks once they are written:
/// blocks cost a little over half the CPU per tick of rows. Fewer, or after that, it reads the
/// rows.
pub const HOLD_TICKS: i64 = 512;
/// See [`HOLD_TICKS`]: at a million ticks a second the writer records a directory row every
/// ~8 ms; commit to output stays under ~40 ms.
pub const HOLD: Duration = Duration::from_millis(10);

/// How far a reader got: day → the highest `seq` read of that day (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor(BTreeMap<NaiveDate, i64>);

impl Cursor {
    /// Nothing of `day` read yet (and every earlier day skipped).
    pub fn start_of(day: NaiveDate) -> Cursor {
        Cursor(BTreeMap::from([(day, 0)]))
    }

    /// `day` read up to `seq`.
    pub fn at(day: NaiveDate, seq: i64) -> Cursor {
        Cursor(BTreeMap::from([(day, seq.max(0))]))
    }

    fn first_day(&self) -> Option<NaiveDate> {
        self.0.keys().next().copied()
    }

    /// The highest seq of `day` this cursor has passed (every seq of a day before it).
    pub fn position(&self, day: NaiveDate) -> i64 {
        self.read_up_to(day).unwrap_or(i64::MAX)
    }

    fn read_up_to(&self, day: NaiveDate) -> Option<i64> {
        match self.first_day() {
            Some(first) if day < first => None,
            _ => Some(self.0.get(&day).copied().unwrap_or(0)),
        }
    }

    /// Each day it holds and the highest `seq` read of it, oldest first.
    pub fn days(&self) -> impl Iterator<Item = (NaiveDate, i64)> + '_ {
        self.0.iter().map(|(d, s)| (*d, *s))
    }

    /// `day` read up to `seq` (if further than before).
    pub fn advance(&mut self, day: NaiveDate, seq: i64) {
        let e = self.0.entry(day).or_insert(0);
        *e = (*e).max(seq);
        while self.0.len() > WATCHED_DAYS {
            self.0.pop_first();
        }
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (day, seq)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{day}:{seq}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Cursor {
    type Err = String;

    /// `DAY:SEQ`, or several separated by commas (as [`Cursor`]'s `Display` writes them).
    fn from_str(text: &str) -> Result<Cursor, String> {
        let mut days = BTreeMap::new();
        for part in text.trim().split(',') {
            let (day, seq) = part
                .trim()
                .split_once(':')
                .ok_or_else(|| format!("{part:?}: a cursor is DAY:SEQ, e.g. 2026-11-23:41500"))?;
            let day = NaiveDate::parse_from_str(day, "%Y-%m-%d")
                .map_err(|e| format!("{day:?}: not a day (YYYY-MM-DD): {e}"))?;
            let seq: i64 = seq
                .parse()
                .ok()
                .filter(|s| *s >= 0)
                .ok_or_else(|| format!("{seq:?}: a seq is a whole number >= 0"))?;
            days.insert(day, seq);
        }
        if days.is_empty() {
            return Err("an empty cursor".into());
        }
        Ok(Cursor(days))
    }
}

/// Where a tail starts.
#[derive(Debug, Clone)]
pub enum Start {
    /// After this cursor.
    After(Cursor),
    /// At the first tick, in recording order, of the day of `t` whose event time is `t` or later.
    Time(Timestamp),
    /// After everything committed now.
    Now,
    /// At the beginning of the newest day file.
    NewestDay,
}

/// A reader of committed ticks in recording order.
#[derive(Debug)]
pub struct Tail {
    store: Store,
    symbols: Symbols,
    cursor: Cursor,
    /// Per day read to its end: its file and WAL (size, mtime) then. A day whose files have
    /// not changed since is not queried again (an idle follower makes two `stat`s per watched
    /// day per poll, no query), an archive never again.
    seen: std::collections::HashMap<NaiveDate, (FileMark, Instant)>,
    /// Per day whose newest ticks wait for their blocks: the cursor's `seq` then, and since
    /// when.
    held: std::collections::HashMap<NaiveDate, (i64, Instant)>,
    bufs: AfterSeqBuffers,
    /// Ticks still to pass before the tail stops (`u64::MAX`: no limit).
    left: u64,
    /// Only the ticks of these sources are passed on (`None`: every source); the cursor moves
    /// over the others.
    sources: Option<std::collections::HashSet<String>>,
}

/// A day is queried at least this often however its files look (a file system's coarse
/// mtime and a WAL rewritten to the same size could hide a commit from [`file_mark`]).
const REQUERY: Duration = Duration::from_secs(1);

/// (size, mtime in ns) of a day file and of its WAL.
type FileMark = [(u64, i128); 2];

fn file_mark(db: &std::path::Path) -> FileMark {
    let one = |p: &std::path::Path| {
        std::fs::metadata(p).map_or((0, 0), |m| {
            let t = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as i128);
            (m.len(), t)
        })
    };
    [one(db), one(&crate::fsutil::with_suffix(db, "-wal"))]
}

/// Refuses a cursor past what the store holds: its day file ends before the cursor's `seq`, or
/// the store has no such day and none after it. Read on from there, a tail would pass over the
/// ticks that the day's next commits record under the seqs in between, without a word: the day
/// file was replaced by an older copy, ticks a reader had seen were lost (a power cut takes
/// back the last commits of a WAL that was not yet synced), or the cursor is another store's.
/// Seq 0 of any day starts at its beginning and skips nothing of it. A day without a file before
/// the newest (retention removed it, or it had no ticks) is passed over as before: nothing of it
/// is left to skip. A day that cannot be read now is left to the first poll, which reports it.
fn check_cursor(
    store: &Store,
    days: &[crate::store::layout::DayFile],
    cursor: &Cursor,
) -> Result<(), ReadError> {
    let newest = days.last().map(|d| d.day);
    for (&day, &seq) in &cursor.0 {
        if seq == 0 {
            continue;
        }
        let held = match days.iter().find(|d| d.day == day) {
            Some(d) => match store.max_seq(d) {
                Ok(held) => held,
                Err(_) => continue,
            },
            None if newest.is_some_and(|n| day < n) => continue,
            None => 0,
        };
        if seq > held {
            let holds = if held == 0 {
                format!("the store holds no tick of {day}")
            } else {
                format!("the store's last tick of {day} is {day}:{held}")
            };
            return Err(ReadError::CursorAhead(format!(
                "cursor {day}:{seq} is past what the store holds ({holds}): reading on from it \
                 would skip the ticks recorded next under the seqs in between. Was the day file \
                 replaced by an older copy, were ticks lost after a reader saw them, or is the \
                 cursor another store's? Resume from a cursor at or before {day}:{held}"
            )));
        }
    }
    Ok(())
}

impl Tail {
    /// Resolves `start` against the store's day files now. A cursor past what the store holds
    /// is refused ([`ReadError::CursorAhead`]): its day file ends before the cursor's `seq`, or
    /// the store has no such day and none after it (`seq` 0 of any day skips nothing).
    pub fn new(store: Store, symbols: Symbols, start: Start) -> Result<Tail, ReadError> {
        let days = store.days()?;
        let cursor = match start {
            Start::After(c) => {
                check_cursor(&store, &days, &c)?;
                c
            }
            Start::Time(t) => match days.iter().find(|d| d.day >= t.day()) {
                Some(d) if d.day == t.day() => Cursor::at(d.day, store.seq_before_time(d, t)?),
                Some(d) => Cursor::start_of(d.day),
                None => Cursor::start_of(t.day()),
            },
            Start::Now => match days.last() {
                Some(d) => Cursor::at(d.day, store.max_seq(d)?),
                None => Cursor::default(),
            },
            Start::NewestDay => days
                .last()
                .map(|d| Cursor::start_of(d.day))
                .unwrap_or_default(),
        };
        Ok(Tail {
            store,
            symbols,
            cursor,
            seen: Default::default(),
            held: Default::default(),
            bufs: Default::default(),
            left: u64::MAX,
            sources: None,
        })
    }

    /// Passes on only the ticks of `sources` (the liquidity providers' names as in the rows'
    /// `source`; `None`: every source). The cursor moves over the others as over the rows of
    /// symbols not asked for, and a limit counts only the ticks passed on.
    pub fn sources(mut self, sources: Option<std::collections::HashSet<String>>) -> Tail {
        self.sources = sources;
        self
    }

    /// Stops after passing `n` ticks, with the cursor on the last of them (rows read past the
    /// limit are not passed on, and the cursor does not move over them).
    pub fn limit(mut self, n: u64) -> Tail {
        self.left = n;
        self
    }

    /// True once the limit is reached.
    pub fn done(&self) -> bool {
        self.left == 0
    }

    pub fn cursor(&self) -> &Cursor {
        &self.cursor
    }

    /// Reads what was committed since the last call (up to `CHUNK` seqs of a SQLite day per
    /// snapshot, until caught up), advancing the cursor after each day's rows were passed on.
    /// `batch` runs after each chunk with the cursor reached (flush output, save the cursor).
    /// Returns the rows passed on. A day that cannot be read ends the poll with its error, the
    /// cursor on the last tick passed on (a day whose files changed under the read, archived or
    /// restored, is read again first: `layout::as_listed_now`).
    pub fn poll(
        &mut self,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
        batch: &mut dyn FnMut(&Cursor) -> std::io::Result<()>,
    ) -> Result<u64, ReadError> {
        self.poll_as(false, f, batch)
    }

    /// [`Tail::poll`]; `following` ([`Tail::follow`]): new ticks may wait for their blocks
    /// (see [`HOLD_TICKS`]).
    fn poll_as(
        &mut self,
        following: bool,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
        batch: &mut dyn FnMut(&Cursor) -> std::io::Result<()>,
    ) -> Result<u64, ReadError> {
        let mut passed = 0;
        // Days before the cursor's first are passed: their folders are not listed.
        let first = self.cursor.first_day().unwrap_or(NaiveDate::MIN);
        for day in self.store.days_between(first, NaiveDate::MAX)? {
            if self.done() {
                break;
            }
            let Some(mut after) = self.cursor.read_up_to(day.day) else {
                continue;
            };
            // Taken before reading: a commit after it shows as a change next time. An archive
            // does not change: read once, it is not read again (unless replaced).
            let mark = file_mark(&day.path);
            if let Some((seen, at)) = self.seen.get(&day.day) {
                if *seen == mark && (day.archived || at.elapsed() < REQUERY) {
                    continue;
                }
            }
            // Once the newest ticks have waited [`HOLD`] for their blocks, the rows answer.
            let mut waited = false;
            let held = loop {
                let blocks_only = following && !waited;
                // Rows come in `seq` order; past the limit none is passed, and the cursor
                // stops on the last that was. (The blocks are read a directory row at a time,
                // so a chunk of no more seqs than ticks left may still hold more.)
                let chunk = usize::try_from(self.left).map_or(CHUNK, |l| l.min(CHUNK));
                let (left, mut taken, mut last_taken) = (self.left, 0u64, None);
                let got = self.store.after_seq(
                    &day,
                    &self.symbols,
                    (after, chunk),
                    blocks_only,
                    &mut self.bufs,
                    &mut |r| {
                        let wanted = |s: &std::collections::HashSet<String>| s.contains(&*r.source);
                        if taken == left || !self.sources.as_ref().is_none_or(wanted) {
                            return Ok(());
                        }
                        taken += 1;
                        last_taken = r.seq;
                        f(r)
                    },
                )?;
                passed += taken;
                self.left -= taken;
                let last = match last_taken {
                    Some(seq) if self.done() => seq,
                    _ => got.last,
                };
                if last > after || !self.cursor.0.contains_key(&day.day) {
                    self.cursor.advance(day.day, last);
                    batch(&self.cursor).map_err(ReadError::Output)?;
                }
                let done = last == after || day.archived;
                after = last;
                if self.done() {
                    break None;
                }
                if got.unread >= HOLD_TICKS {
                    let since = match self.held.get(&day.day) {
                        Some(&(at, since)) if at == after => since,
                        _ => Instant::now(),
                    };
                    if since.elapsed() < HOLD {
                        break Some((after, since));
                    }
                }
                if got.unread > 0 {
                    waited = true;
                    continue;
                }
                if done {
                    break None;
                }
            };
            match held {
                Some(h) => {
                    self.held.insert(day.day, h);
                }
                None => {
                    self.held.remove(&day.day);
                    self.seen.insert(day.day, (mark, Instant::now()));
                }
            }
        }
        self.seen.retain(|d, _| self.cursor.0.contains_key(d));
        self.held.retain(|d, _| self.cursor.0.contains_key(d));
        Ok(passed)
    }

    /// Polls until `stop`, sleeping [`POLL`] whenever nothing new was committed (less when
    /// new ticks wait for their blocks: until they have waited [`HOLD`]).
    pub fn follow(
        &mut self,
        stop: &Shutdown,
        f: &mut dyn FnMut(&TickRow) -> std::io::Result<()>,
        batch: &mut dyn FnMut(&Cursor) -> std::io::Result<()>,
    ) -> Result<u64, ReadError> {
        let mut passed = 0;
        while !stop.is_requested() && !self.done() {
            let n = self.poll_as(true, f, batch)?;
            passed += n;
            let pause = self
                .held
                .values()
                .map(|(_, since)| HOLD.saturating_sub(since.elapsed()))
                .fold(POLL, Duration::min);
            if n == 0 && stop.wait_timeout(pause) {
                break;
            }
        }
        Ok(passed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_written_and_keeps_two_days() {
        let mut c: Cursor = "2026-11-23:41500".parse().unwrap();
        assert_eq!(c.to_string(), "2026-11-23:41500");
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        c.advance(d("2026-11-24"), 7);
        c.advance(d("2026-11-23"), 41_502);
        assert_eq!(c.to_string(), "2026-11-23:41502,2026-11-24:7");
        c.advance(d("2026-11-25"), 1);
        assert_eq!(c.to_string(), "2026-11-24:7,2026-11-25:1");
        assert_eq!(c.read_up_to(d("2026-11-23")), None);
        assert_eq!(c.read_up_to(d("2026-11-26")), Some(0));
        assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        for bad in [
            "",
            "2026-11-23",
            "2026-13-01:5",
            "2026-11-23:-1",
            "2026-11-23:x",
        ] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad:?}");
        }
    }
}
