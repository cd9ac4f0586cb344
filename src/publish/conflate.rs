//! A conflated subscription (`"conflate_ms"` in its request): of each of its symbols, only the
//! latest committed line of each source (each liquidity provider quoting it) is kept between
//! two writes, and the lines kept are written at most once an interval, in the order they were
//! committed. For a screen or a risk system that wants the latest quotes, not every tick: it
//! leaves ticks out by design, so it has no replay and its rows are not a stream to resume
//! from.
//!
//! What it must never do: hold a line the store does not (it only takes committed lines, as
//! every subscription does), keep back a symbol's last line of a source (once the commits
//! pause, the next write holds each symbol's last committed tick of each source), or let one
//! source's quotes crowd out another's (an LP quoting a symbol ten times an interval does not
//! hide the one quoting it once). Its memory is one line per symbol and source.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;

use super::fanout::{Encoded, Line};
use crate::tick::SourceId;

/// Intervals a request may ask for, in milliseconds: below the fan-out's own pace (5 ms) there
/// is nothing to leave out; an interval longer than a minute is a poll, not a subscription.
pub const CONFLATE_MS: std::ops::RangeInclusive<u64> = 10..=60_000;

/// One symbol's latest line from one source, while held.
struct Held {
    source: SourceId,
    line: Vec<u8>,
    /// Where it was committed, for writing the lines in that order: (the group of commits it
    /// came in, its commit within the group, its line within the commit).
    order: (u64, u32, u32),
    /// The last group of commits this symbol and source was looked for in.
    group: u64,
    held: bool,
}

/// The lines held for a conflated subscription.
pub(super) struct Conflated {
    every: Duration,
    /// When lines were last written (the next may go once `every` has passed).
    last: Instant,
    /// By symbol id (dense from 0, bounded by the recorder's symbols), one per source met (a
    /// symbol has a few: a linear search).
    by_id: Vec<Vec<Held>>,
    /// The lines held: (symbol id, place in its `by_id` list).
    held: Vec<(u32, u32)>,
    /// Groups of commits taken so far.
    groups: u64,
}

impl Conflated {
    /// Nothing held; the first lines may go one interval from now (a subscription has just
    /// had its snapshot).
    pub(super) fn new(every: Duration) -> Conflated {
        Conflated {
            every,
            last: Instant::now(),
            by_id: Vec::new(),
            held: Vec::new(),
            groups: 0,
        }
    }

    /// Takes consecutive commits (in the order they were committed): of the lines for which
    /// `wants(day, line)` holds, the latest of each symbol and source is held, in place of
    /// one held before. Read from the newest line back, so that a symbol's source is copied
    /// once a group however many lines of it the group holds.
    pub(super) fn take(
        &mut self,
        commits: &[Arc<Encoded>],
        mut wants: impl FnMut(NaiveDate, &Line) -> bool,
    ) {
        self.groups += 1;
        let group = self.groups;
        for (c, enc) in commits.iter().enumerate().rev() {
            for (l, line) in enc.lines.iter().enumerate().rev() {
                let i = line.symbol.0 as usize;
                if self.by_id.len() <= i {
                    self.by_id.resize_with(i + 1, Vec::new);
                }
                let of_symbol = &mut self.by_id[i];
                let k = match of_symbol.iter().position(|h| h.source == line.source) {
                    Some(k) => k,
                    None => {
                        of_symbol.push(Held {
                            source: line.source,
                            line: Vec::new(),
                            order: (0, 0, 0),
                            group: 0,
                            held: false,
                        });
                        of_symbol.len() - 1
                    }
                };
                let h = &mut of_symbol[k];
                if h.group == group {
                    continue;
                }
                // Looked at in this group, wanted or not: an older line of it is not newer.
                h.group = group;
                if !wants(enc.day, line) {
                    continue;
                }
                let Some(bytes) = enc.bytes_of(line) else {
                    continue;
                };
                h.line.clear();
                h.line.extend_from_slice(bytes);
                h.order = (group, c as u32, l as u32);
                if !h.held {
                    h.held = true;
                    self.held.push((i as u32, k as u32));
                }
            }
        }
    }

    /// How long until the lines held may be written (`None`: none is held).
    pub(super) fn due_in(&self, now: Instant) -> Option<Duration> {
        if self.held.is_empty() {
            return None;
        }
        Some((self.last + self.every).saturating_duration_since(now))
    }

    /// Writes the lines held, in the order they were committed, if `every` has passed since
    /// lines were last written, or at once with `now` (before a session's line or a change of
    /// the subscription, which must not overtake them). Returns how many it wrote.
    pub(super) fn write(&mut self, out: &mut impl Write, now: bool) -> std::io::Result<u64> {
        if self.held.is_empty() || !(now || self.due_in(Instant::now()) == Some(Duration::ZERO)) {
            return Ok(0);
        }
        let mut held = std::mem::take(&mut self.held);
        held.sort_unstable_by_key(|&(i, k)| self.by_id[i as usize][k as usize].order);
        for &(i, k) in &held {
            let h = &mut self.by_id[i as usize][k as usize];
            out.write_all(&h.line)?;
            h.held = false;
        }
        self.last = Instant::now();
        let n = held.len() as u64;
        // The list's allocation is kept for the next interval.
        held.clear();
        self.held = held;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tick::SymbolId;

    /// A commit of `lines` (seq, symbol id) from source 0, each line `seq,symbol\n`.
    fn commit(lines: &[(i64, u32)]) -> Arc<Encoded> {
        let lines: Vec<(i64, u32, u32)> = lines.iter().map(|&(q, s)| (q, s, 0)).collect();
        commit_of(&lines)
    }

    /// A commit of `lines` (seq, symbol id, source id), each line `seq,symbol,source\n` (`seq,
    /// symbol\n` from source 0).
    fn commit_of(lines: &[(i64, u32, u32)]) -> Arc<Encoded> {
        let mut bytes = Vec::new();
        let mut spans = Vec::new();
        for &(seq, sym, src) in lines {
            let start = bytes.len() as u32;
            let line = match src {
                0 => format!("{seq},{sym}\n"),
                _ => format!("{seq},{sym},{src}\n"),
            };
            bytes.extend_from_slice(line.as_bytes());
            spans.push(Line {
                start,
                end: bytes.len() as u32,
                seq,
                symbol: SymbolId(sym),
                source: SourceId(src),
            });
        }
        Arc::new(Encoded {
            day: NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
            bytes,
            lines: spans,
            last_seq: lines.last().map(|l| l.0),
            control: None,
            interest: 0,
            left_out: None,
        })
    }

    fn written(c: &mut Conflated, now: bool) -> String {
        let mut out = Vec::new();
        c.write(&mut out, now).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn each_symbol_s_latest_line_goes_once_in_commit_order_after_the_interval() {
        let mut c = Conflated::new(Duration::from_secs(3600));
        c.take(
            &[commit(&[(1, 0), (2, 1), (3, 0)]), commit(&[(4, 2), (5, 1)])],
            |_, _| true,
        );
        c.take(&[commit(&[(6, 2), (7, 3)])], |_, l| l.symbol.0 != 3);
        // Not yet due: nothing goes unless asked at once.
        assert_eq!(written(&mut c, false), "");
        assert!(c.due_in(Instant::now()).unwrap() > Duration::from_secs(3000));
        assert_eq!(written(&mut c, true), "3,0\n5,1\n6,2\n");
        assert_eq!(c.due_in(Instant::now()), None, "nothing held after a write");
        assert_eq!(written(&mut c, true), "");
        // A symbol's older line in a later group is still its latest one after the write.
        c.take(&[commit(&[(8, 1)])], |_, _| true);
        assert_eq!(written(&mut c, true), "8,1\n");
    }

    #[test]
    fn each_source_s_latest_line_of_a_symbol_is_held_apart() {
        let mut c = Conflated::new(Duration::from_secs(3600));
        // Source 1 quotes symbol 0 once, source 0 many times after it.
        c.take(
            &[
                commit_of(&[(1, 0, 1), (2, 0, 0), (3, 1, 0)]),
                commit_of(&[(4, 0, 0), (5, 0, 0)]),
            ],
            |_, _| true,
        );
        assert_eq!(written(&mut c, true), "1,0,1\n3,1\n5,0\n");
        c.take(&[commit_of(&[(6, 0, 2), (7, 0, 0), (8, 0, 2)])], |_, _| {
            true
        });
        assert_eq!(written(&mut c, true), "7,0\n8,0,2\n");
    }

    #[test]
    fn lines_go_without_asking_once_the_interval_has_passed() {
        let mut c = Conflated::new(Duration::from_millis(10));
        c.take(&[commit(&[(1, 0)])], |_, _| true);
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.due_in(Instant::now()) != Some(Duration::ZERO) {
            assert!(Instant::now() < deadline, "never due");
            std::thread::yield_now();
        }
        assert_eq!(written(&mut c, false), "1,0\n");
    }
}
