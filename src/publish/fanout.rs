//! From the writer's commits to each subscriber's queue: the encoder thread writes each commit
//! as JSON lines once, and queues a pointer to them for every subscriber, cutting off one that
//! has more than its bound waiting. A [`Queue`] is what a subscriber's thread takes from; it
//! never holds a tick the store does not (only committed batches enter it).

use std::collections::VecDeque;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use chrono::NaiveDate;

use super::request::Request;
use super::{PublishStats, WRITE_TIMEOUT};
use crate::intern::Names;
use crate::tick::{SourceId, SymbolId, Tick};

/// One commit's ticks, in seq order.
pub(super) struct Batch {
    pub(super) day: NaiveDate,
    pub(super) ticks: Vec<(i64, Tick)>,
}

/// One commit's ticks as JSON lines, encoded once for every subscriber: `lines[i]` is tick
/// `i`'s line within `bytes`.
pub(super) struct Encoded {
    pub(super) day: NaiveDate,
    pub(super) bytes: Vec<u8>,
    pub(super) lines: Vec<Line>,
    /// The commit's last `seq` (a subscriber that got this commit has passed it).
    pub(super) last_seq: Option<i64>,
    /// A control line in `bytes`, not a commit: for the subscribers of any of these symbols
    /// (of every symbol when there are none) and of this source (of every source when none).
    pub(super) control: Option<(Vec<String>, Option<String>)>,
}

/// One tick's line in an [`Encoded`]'s bytes, and what a subscription picks it by.
#[derive(Debug, Clone, Copy)]
pub(super) struct Line {
    /// Its byte range.
    pub(super) start: u32,
    pub(super) end: u32,
    pub(super) seq: i64,
    pub(super) symbol: SymbolId,
    pub(super) source: SourceId,
}

impl Encoded {
    /// The bytes of `line`, one of its own.
    pub(super) fn bytes_of(&self, line: &Line) -> Option<&[u8]> {
        self.bytes.get(line.start as usize..line.end as usize)
    }

    /// A control line (no ticks) about `symbols` of `source`.
    pub(super) fn control(
        day: NaiveDate,
        line: Vec<u8>,
        symbols: &[String],
        source: Option<&str>,
    ) -> Encoded {
        Encoded {
            day,
            bytes: line,
            lines: Vec::new(),
            last_seq: None,
            control: Some((symbols.to_vec(), source.map(str::to_owned))),
        }
    }
}

/// A subscriber's queue of committed batches.
pub(super) struct Queue {
    batches: Mutex<(VecDeque<Arc<Encoded>>, usize)>,
    ready: Condvar,
    /// Set when it fell behind (or the publisher stops): its thread ends the connection.
    closed: AtomicBool,
    reason: Mutex<Option<String>>,
    /// When `closed` was set. A thread held in a write to a peer that takes a few bytes now
    /// and then (a blocking write times out only after [`WRITE_TIMEOUT`] without any) would
    /// keep its place for seconds: the encoder shuts its socket down this long after.
    closed_at: std::sync::OnceLock<std::time::Instant>,
    /// The connection, for that shutdown (taken when it is done).
    socket: Mutex<Option<TcpStream>>,
    /// The subscriber's later request lines, parsed (or why not), for its thread to apply
    /// between two commits.
    changes: Mutex<Vec<Result<Request, String>>>,
}

impl Queue {
    /// The queue of a subscriber connected by `socket` (shut down when it is held in a write
    /// past its cut-off; `None`: nothing to shut down).
    pub(super) fn new(socket: Option<TcpStream>) -> Queue {
        Queue {
            batches: Mutex::new((VecDeque::new(), 0)),
            ready: Condvar::new(),
            closed: AtomicBool::new(false),
            reason: Mutex::new(None),
            closed_at: std::sync::OnceLock::new(),
            socket: Mutex::new(socket),
            changes: Mutex::default(),
        }
    }

    /// Whether it was closed (cut off, or the publisher stops).
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Ticks waiting for the subscriber's thread.
    pub(super) fn queued_ticks(&self) -> usize {
        self.batches.lock().unwrap_or_else(|e| e.into_inner()).1
    }

    /// Drops what waits (a subscription started over from a cursor: its replay holds it).
    pub(super) fn drop_queued(&self) {
        *self.batches.lock().unwrap_or_else(|e| e.into_inner()) = (VecDeque::new(), 0);
    }

    /// Queues a control line (no ticks: it does not count against the bound) and wakes the
    /// subscriber's thread.
    pub(super) fn push_control(&self, line: Arc<Encoded>) {
        self.batches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .push_back(line);
        self.ready.notify_one();
    }

    /// The later request lines that came since the last call, in order.
    pub(super) fn take_changes(&self) -> Vec<Result<Request, String>> {
        std::mem::take(&mut *self.changes.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Holds the queue's lock: the encoder waits at this queue meanwhile (for tests).
    #[cfg(test)]
    pub(super) fn hold(&self) -> std::sync::MutexGuard<'_, (VecDeque<Arc<Encoded>>, usize)> {
        self.batches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A later request line came: queued for the subscriber's thread, which is woken. Past
    /// [`MAX_WAITING_CHANGES`] not yet taken, the subscriber is cut off instead (a client
    /// sending lines faster than it reads the answers would grow the list without bound).
    pub(super) fn change(&self, request: Result<Request, String>) {
        {
            let mut changes = self.changes.lock().unwrap_or_else(|e| e.into_inner());
            if changes.len() >= MAX_WAITING_CHANGES {
                drop(changes);
                self.close(format!(
                    "more than {MAX_WAITING_CHANGES} request lines waiting to be taken"
                ));
                return;
            }
            changes.push(request);
        }
        // Under the batches' lock, so that a thread about to wait sees it or is woken.
        let _held = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        self.ready.notify_all();
    }

    /// Closed for `why`, unless it already was (for another reason, which stays): whether
    /// this call closed it.
    pub(super) fn close(&self, why: String) -> bool {
        let mut reason = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        let first = reason.is_none();
        if first {
            *reason = Some(why);
            let _ = self.closed_at.set(std::time::Instant::now());
            self.closed.store(true, Ordering::SeqCst);
        }
        drop(reason);
        self.ready.notify_all();
        first
    }

    /// Why it was closed, once it is.
    pub(super) fn closed_because(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Closed [`WRITE_TIMEOUT`] ago and its thread still not gone (held in a write): its
    /// socket is shut down, which ends the write.
    pub(super) fn end_if_held(&self) {
        if self
            .closed_at
            .get()
            .is_some_and(|t| t.elapsed() >= WRITE_TIMEOUT)
        {
            if let Some(s) = self.socket.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    /// The next batches, waiting up to `wait`; empty when closed or nothing came.
    pub(super) fn take(&self, wait: Duration) -> Vec<Arc<Encoded>> {
        let mut q = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        let changed = || {
            !self
                .changes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
        };
        if q.0.is_empty() && !self.closed.load(Ordering::SeqCst) && !changed() {
            q = self
                .ready
                .wait_timeout(q, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        q.1 = 0;
        q.0.drain(..).collect()
    }
}

/// Request lines of a subscriber that may wait for its thread.
const MAX_WAITING_CHANGES: usize = 64;

/// The encoder thread: each commit as JSON lines once, then a pointer to it queued for every
/// subscriber (cut off past `max_queued` ticks).
pub(super) fn encode_and_fan_out(
    rx: crossbeam_channel::Receiver<Arc<Batch>>,
    names: Arc<Names>,
    subscribers: Arc<Mutex<Vec<Arc<Queue>>>>,
    stats: Arc<PublishStats>,
    max_queued: usize,
) {
    let mut woke = std::time::Instant::now();
    let mut cache = NameCache::default();
    while let Ok(first) = rx.recv() {
        // Wakes at most once per FAN_OUT_PACE: the commits that came meanwhile go out together.
        pace(&mut woke);
        let batches: Vec<Arc<Batch>> = std::iter::once(first).chain(rx.try_iter()).collect();
        let encoded: Vec<Arc<Encoded>> = batches
            .iter()
            .map(|b| encode(&names, &mut cache, b))
            .collect();
        let n: usize = encoded.iter().map(|e| e.lines.len()).sum();
        let subs: Vec<Arc<Queue>> = subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for q in subs {
            if q.closed.load(Ordering::Relaxed) {
                q.end_if_held();
                continue;
            }
            let mut held = q.batches.lock().unwrap_or_else(|e| e.into_inner());
            if held.1 + n > max_queued {
                held.0.clear();
                held.1 = 0;
                drop(held);
                // Counted once: not if its thread closed it meanwhile (a failed write).
                if q.close(format!(
                    "fell behind: more than {max_queued} ticks queued for it"
                )) {
                    stats
                        .disconnected_slow_total
                        .fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
            held.0.extend(encoded.iter().cloned());
            held.1 += n;
            drop(held);
            q.ready.notify_one();
        }
    }
}

/// One commit as JSON lines, once for every subscriber.
fn encode(names: &Names, cache: &mut NameCache, batch: &Batch) -> Arc<Encoded> {
    let mut enc = Encoded {
        day: batch.day,
        bytes: Vec::with_capacity(batch.ticks.len() * 240),
        lines: Vec::with_capacity(batch.ticks.len()),
        last_seq: batch.ticks.last().map(|t| t.0),
        control: None,
    };
    for (seq, t) in &batch.ticks {
        let (Some(symbol), Some(source)) = (
            cache
                .symbols
                .name(t.symbol.0, |i| names.symbol_name(SymbolId(i))),
            cache
                .sources
                .name(t.source.0, |i| names.source_name(SourceId(i))),
        ) else {
            continue;
        };
        let start = enc.bytes.len() as u32;
        crate::format::jsonl::encode_json_tick(&mut enc.bytes, t, Some(*seq), symbol, source);
        enc.lines.push(Line {
            start,
            end: enc.bytes.len() as u32,
            seq: *seq,
            symbol: t.symbol,
            source: t.source,
        });
    }
    Arc::new(enc)
}

/// The encoder thread's copy of the names it has met, by id: an id's name never changes
/// ([`Names`] only ever adds). Taking both names from the shared table for every tick (a read
/// lock and a reference count each) made encoding 277 ns a tick against 243 with this cache
/// (500,000 ticks of 128 symbols, six rounds, one process).
#[derive(Default)]
struct NameCache {
    symbols: IdNames,
    sources: IdNames,
}

#[derive(Default)]
struct IdNames(Vec<Option<Arc<str>>>);

impl IdNames {
    /// `id`'s name, from `fetch` the first time.
    fn name(&mut self, id: u32, fetch: impl FnOnce(u32) -> Option<Arc<str>>) -> Option<&str> {
        let i = id as usize;
        if self.0.get(i).is_none_or(Option::is_none) {
            let name = fetch(id)?;
            if self.0.len() <= i {
                self.0.resize(i + 1, None);
            }
            self.0[i] = Some(name);
        }
        self.0.get(i)?.as_deref()
    }
}

/// The fan-out's threads (the encoder, each subscriber's) wake at most once per this, taking
/// everything that came meanwhile: at one wake per commit (2,400 a second at full speed, nine
/// threads) the switches reached the gateway thread's `store_tick`. At 2 ms, beside eight
/// subscribers, its p99.9 read 240–250 ns against 215–240 at 5 ms, in four pairs of runs
/// (`data/performance-log.md`, "Taken after run 61").
const FAN_OUT_PACE: Duration = Duration::from_millis(5);

/// Waits until [`FAN_OUT_PACE`] has passed since `woke`, then marks now.
pub(super) fn pace(woke: &mut std::time::Instant) {
    let since = woke.elapsed();
    if since < FAN_OUT_PACE {
        std::thread::sleep(FAN_OUT_PACE - since);
    }
    *woke = std::time::Instant::now();
}
