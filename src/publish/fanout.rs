//! From the writer's commits to each subscriber's queue: the encoder thread writes each commit
//! as JSON lines once (the ticks that some subscriber wants: [`Interest`]), and queues a
//! pointer to them for every subscriber, cutting off one that has more than its bound waiting.
//! A [`Queue`] is what a subscriber's thread takes from; it never holds a tick the store does
//! not (only committed batches enter it).

use std::collections::{HashSet, VecDeque};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use chrono::NaiveDate;

use super::request::{Request, Wants};
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
    /// The [`Interest`] generation it was encoded under: it holds every tick that the
    /// subscribers marked by then want.
    pub(super) interest: u64,
    /// The commit, when ticks no subscriber wanted were left out of `lines`: a subscriber
    /// whose wants were marked later encodes it whole ([`whole`]).
    pub(super) left_out: Option<Arc<Batch>>,
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
            interest: u64::MAX,
            left_out: None,
        }
    }
}

/// What a subscriber wants, as the encoder reads it.
pub(super) struct Marked {
    /// Its symbols and sources, by name (`None`: every one).
    pub(super) names: Option<HashSet<String>>,
    pub(super) sources: Option<HashSet<String>>,
    /// Conflated: only the latest tick of each symbol and source matters to it.
    pub(super) conflated: bool,
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
    /// The symbols and sources it wants, by name (`None`: every one), for the encoder.
    wants: Mutex<Marked>,
    /// The [`Interest`] generation at which `wants` was last marked: a commit encoded under an
    /// earlier one may lack lines it wants.
    marked: AtomicU64,
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
            wants: Mutex::new(Marked {
                names: Some(HashSet::new()),
                sources: Some(HashSet::new()),
                conflated: false,
            }),
            marked: AtomicU64::new(0),
        }
    }

    /// Marks what the subscriber wants for the encoder (and, with `register`, lists the queue
    /// there for live commits), then bumps `interest`: from that generation on, the encoder
    /// leaves out no tick it wants. A commit it takes that was encoded under an earlier
    /// generation goes through [`Queue::complete`].
    pub(super) fn mark(
        self: &Arc<Self>,
        wants: Marked,
        interest: &Interest,
        register: Option<&Mutex<Vec<Arc<Queue>>>>,
    ) {
        *self.wants.lock().unwrap_or_else(|e| e.into_inner()) = wants;
        if let Some(list) = register {
            list.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(self.clone());
        }
        // After the wants and the listing: an encoder that reads this generation or a later
        // one sees both.
        self.marked.store(interest.bump(), Ordering::SeqCst);
    }

    /// `enc` whole when it was encoded before this subscriber's wants were marked and left
    /// ticks out (perhaps some it wants); otherwise `enc` itself.
    pub(super) fn complete(&self, enc: Arc<Encoded>, names: &Names) -> Arc<Encoded> {
        match &enc.left_out {
            Some(batch) if enc.interest < self.marked.load(Ordering::SeqCst) => whole(names, batch),
            _ => enc,
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

/// What the subscribers want together, as a generation the encoder reads once a wake: bumped
/// whenever a subscriber's wants are marked ([`Queue::mark`]) or it leaves. The encoder then
/// takes the union of the listed queues' wants and leaves every other tick out of its lines,
/// so that the ticks of symbols no one asked for cost no encoding (a feed of many symbols with
/// a few watched is the common case). A commit encoded under an earlier generation than a
/// subscriber's marking may lack ticks it wants: [`Queue::complete`] encodes it whole.
#[derive(Default)]
pub(super) struct Interest(AtomicU64);

impl Interest {
    /// The next generation.
    pub(super) fn bump(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// What the encoder encodes of each commit.
struct Union {
    /// The union of the wants of the subscribers of every tick: every name when one of them
    /// wants every one.
    every: Wants,
    /// The union of the conflated subscribers' wants, when there are some and `every` does not
    /// take everything: of their ticks that `every` leaves out, only the latest of each symbol
    /// and source of the commits encoded together are written (all a conflated subscription
    /// ever writes), so that a screen of every symbol beside strategies of a few costs the
    /// encoder the strategies' ticks and one tick of each symbol and source a wake.
    latest: Option<Wants>,
}

/// The names gathered from subscribers' wants: `None` once one wants every one.
struct Gathered {
    names: Option<HashSet<String>>,
    sources: Option<HashSet<String>>,
    any: bool,
}

impl Gathered {
    fn new() -> Gathered {
        Gathered {
            names: Some(HashSet::new()),
            sources: Some(HashSet::new()),
            any: false,
        }
    }

    fn add(&mut self, wants: &Marked) {
        for (all, theirs) in [
            (&mut self.names, &wants.names),
            (&mut self.sources, &wants.sources),
        ] {
            match (all.as_mut(), theirs) {
                (Some(all), Some(theirs)) => all.extend(theirs.iter().cloned()),
                _ => *all = None,
            }
        }
        self.any = true;
    }

    fn wants(self) -> Wants {
        Wants::new(self.names, self.sources)
    }
}

/// The union of `queues`' wants, those of every tick apart from the conflated ones.
fn union_of(queues: &[Arc<Queue>]) -> Union {
    let (mut every, mut latest) = (Gathered::new(), Gathered::new());
    for q in queues.iter().filter(|q| !q.is_closed()) {
        let wants = q.wants.lock().unwrap_or_else(|e| e.into_inner());
        if wants.conflated {
            latest.add(&wants);
        } else {
            every.add(&wants);
        }
    }
    let every = every.wants();
    let latest = (latest.any && !every.everything()).then(|| latest.wants());
    Union { every, latest }
}

/// Of the ticks of `batches` (encoded together), whether each is the latest of its symbol and
/// source among them, by batch.
fn latest_of_each(batches: &[Arc<Batch>]) -> Vec<Vec<bool>> {
    let mut met: HashSet<(SymbolId, SourceId)> = HashSet::new();
    let mut latest: Vec<Vec<bool>> = batches.iter().map(|b| vec![false; b.ticks.len()]).collect();
    for (b, batch) in batches.iter().enumerate().rev() {
        for (i, (_, t)) in batch.ticks.iter().enumerate().rev() {
            latest[b][i] = met.insert((t.symbol, t.source));
        }
    }
    latest
}

/// The encoder thread: each commit as JSON lines once (the ticks some subscriber wants), then
/// a pointer to it queued for every subscriber (cut off past `max_queued` ticks).
pub(super) fn encode_and_fan_out(
    rx: crossbeam_channel::Receiver<Arc<Batch>>,
    names: Arc<Names>,
    subscribers: Arc<Mutex<Vec<Arc<Queue>>>>,
    interest: Arc<Interest>,
    stats: Arc<PublishStats>,
    max_queued: usize,
) {
    let mut woke = std::time::Instant::now();
    let mut cache = NameCache::default();
    let mut union = (
        u64::MAX,
        Union {
            every: Wants::new(None, None),
            latest: None,
        },
    );
    while let Ok(first) = rx.recv() {
        // Wakes at most once per FAN_OUT_PACE: the commits that came meanwhile go out together.
        pace(&mut woke);
        let batches: Vec<Arc<Batch>> = std::iter::once(first).chain(rx.try_iter()).collect();
        // The generation first, then the queues listed and their wants: a subscriber marked
        // by this generation is in the union.
        let generation = interest.now();
        if generation != union.0 {
            let listed = subscribers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            union = (generation, union_of(&listed));
        }
        let encoded = encode_together(&names, &mut cache, &batches, &mut union.1, generation);
        // Every tick of the commits counts against a subscriber's bound, encoded or left out:
        // a commit that left ticks out holds its batch until it is dropped, and a bound of
        // encoded lines alone would let a stalled subscriber of a few symbols hold batches
        // without end.
        let n: usize = batches.iter().map(|b| b.ticks.len()).sum();
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

/// The commits of one wake, each as JSON lines, under `union` of `generation`.
fn encode_together(
    names: &Names,
    cache: &mut NameCache,
    batches: &[Arc<Batch>],
    union: &mut Union,
    generation: u64,
) -> Vec<Arc<Encoded>> {
    let latest = union.latest.is_some().then(|| latest_of_each(batches));
    batches
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let latest = union
                .latest
                .as_mut()
                .zip(latest.as_ref().and_then(|l| l.get(i)).map(Vec::as_slice));
            let only = Only {
                every: &mut union.every,
                latest,
                interest: generation,
            };
            encode(names, cache, b, Some(only))
        })
        .collect()
}

/// Which ticks of a commit the encoder encodes.
struct Only<'a> {
    /// The union of the subscribers of every tick: each tick it takes.
    every: &'a mut Wants,
    /// The conflated subscribers' union, and whether each tick is the latest of its symbol
    /// and source ([`latest_of_each`]): such a tick it takes too.
    latest: Option<(&'a mut Wants, &'a [bool])>,
    /// The generation of the union.
    interest: u64,
}

/// One commit as JSON lines, once for every subscriber: with `only`, the ticks it takes.
fn encode(
    names: &Names,
    cache: &mut NameCache,
    batch: &Arc<Batch>,
    only: Option<Only<'_>>,
) -> Arc<Encoded> {
    // `None`: every tick (no union, or one that takes everything).
    let (mut only, interest) = match only {
        Some(o) => {
            let interest = o.interest;
            (Some(o).filter(|o| !o.every.everything()), interest)
        }
        None => (None, u64::MAX),
    };
    let mut enc = Encoded {
        day: batch.day,
        bytes: Vec::with_capacity(batch.ticks.len() * 240),
        lines: Vec::with_capacity(batch.ticks.len()),
        last_seq: batch.ticks.last().map(|t| t.0),
        control: None,
        interest,
        left_out: None,
    };
    let mut left_out = false;
    for (i, (seq, t)) in batch.ticks.iter().enumerate() {
        let wanted = only.as_mut().is_none_or(|o| {
            o.every.wants(names, t.symbol, t.source)
                || o.latest.as_mut().is_some_and(|(w, latest)| {
                    latest.get(i).copied().unwrap_or(true) && w.wants(names, t.symbol, t.source)
                })
        });
        if !wanted {
            left_out = true;
            continue;
        }
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
    if left_out {
        enc.left_out = Some(batch.clone());
    }
    Arc::new(enc)
}

/// `batch` encoded whole, on a subscriber's thread (a commit encoded before its wants were
/// marked, which left ticks out).
fn whole(names: &Names, batch: &Arc<Batch>) -> Arc<Encoded> {
    encode(names, &mut NameCache::default(), batch, None)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn named(names: &[&str]) -> Option<HashSet<String>> {
        Some(names.iter().map(|s| s.to_string()).collect())
    }

    fn marked(names: Option<HashSet<String>>, sources: Option<HashSet<String>>) -> Marked {
        Marked {
            names,
            sources,
            conflated: false,
        }
    }

    /// `batches` encoded together, as the encoder thread does, under `union` of `generation`.
    fn encoded(
        names: &Names,
        batches: &[Arc<Batch>],
        mut union: Union,
        generation: u64,
    ) -> Vec<Arc<Encoded>> {
        encode_together(
            names,
            &mut NameCache::default(),
            batches,
            &mut union,
            generation,
        )
    }

    /// What could go wrong: the encoder leaves out a tick a subscriber wants, because its
    /// wants were marked after the commit was encoded (a change of symbols, a new subscriber),
    /// or encodes ticks no subscriber wants.
    #[test]
    fn ticks_no_one_wants_are_left_out_and_a_later_subscriber_gets_the_commit_whole() {
        let names = Names::new(8);
        let (eur, gbp) = (
            names.symbol("EURUSD").unwrap(),
            names.symbol("GBPUSD").unwrap(),
        );
        names.source("LP1").unwrap();
        let tick = |symbol, recv| Tick {
            symbol,
            ..crate::pipeline::ring::blank_tick(0, recv)
        };
        let batch = Arc::new(Batch {
            day: NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
            ticks: vec![(1, tick(eur, 10)), (2, tick(gbp, 20)), (3, tick(eur, 30))],
        });
        let (interest, listed) = (Interest::default(), Mutex::new(Vec::new()));
        let of_eur = Arc::new(Queue::new(None));
        of_eur.mark(marked(named(&["EURUSD"]), None), &interest, Some(&listed));
        let union = || union_of(&listed.lock().unwrap());
        let one = |batch: &Arc<Batch>| {
            encoded(&names, std::slice::from_ref(batch), union(), interest.now()).remove(0)
        };
        let enc = one(&batch);
        let seqs = |e: &Encoded| e.lines.iter().map(|l| l.seq).collect::<Vec<_>>();
        assert_eq!(seqs(&enc), [1, 3], "GBPUSD is left out");
        assert_eq!(enc.last_seq, Some(3), "the commit's last seq all the same");
        assert!(Arc::ptr_eq(&of_eur.complete(enc.clone(), &names), &enc));

        // A subscriber of GBPUSD marked after: the commit whole, byte for byte as it would
        // have been; the EURUSD subscriber keeps the commit as it was.
        let of_gbp = Arc::new(Queue::new(None));
        of_gbp.mark(marked(named(&["GBPUSD"]), None), &interest, Some(&listed));
        let whole = of_gbp.complete(enc.clone(), &names);
        assert_eq!(seqs(&whole), [1, 2, 3]);
        let mut all = Vec::new();
        for (seq, t) in &batch.ticks {
            let symbol = names.symbol_name(t.symbol).unwrap();
            crate::format::jsonl::encode_json_tick(&mut all, t, Some(*seq), &symbol, "LP1");
        }
        assert_eq!(whole.bytes, all);
        assert!(whole.left_out.is_none());
        assert!(Arc::ptr_eq(&of_eur.complete(enc.clone(), &names), &enc));
        // Encoded under the new generation: nothing left out that either wants.
        let enc = one(&batch);
        assert_eq!(seqs(&enc), [1, 2, 3]);
        assert!(enc.left_out.is_none());

        // Every subscriber conflated: of the commits encoded together, each symbol's latest
        // tick only (what a conflated subscription writes); one of every tick marked after
        // gets them whole.
        let later = Arc::new(Batch {
            day: batch.day,
            ticks: vec![(4, tick(eur, 40)), (5, tick(eur, 50))],
        });
        for q in [&of_eur, &of_gbp] {
            let mut conflated = marked(named(&["EURUSD", "GBPUSD"]), None);
            conflated.conflated = true;
            q.mark(conflated, &interest, None);
        }
        let two = encoded(
            &names,
            &[batch.clone(), later.clone()],
            union(),
            interest.now(),
        );
        assert_eq!(seqs(&two[0]), [2], "GBPUSD's latest; EURUSD's comes later");
        assert_eq!(seqs(&two[1]), [5]);
        of_gbp.mark(marked(named(&["GBPUSD"]), None), &interest, None);
        assert_eq!(seqs(&of_gbp.complete(two[0].clone(), &names)), [1, 2, 3]);
        // A strategy of every GBPUSD tick beside a screen of both: every GBPUSD tick, and of
        // EURUSD only the latest of the commits encoded together.
        let two = encoded(
            &names,
            &[batch.clone(), later.clone()],
            union(),
            interest.now(),
        );
        assert_eq!(seqs(&two[0]), [2]);
        assert_eq!(seqs(&two[1]), [5]);
        let mixed = Arc::new(Batch {
            day: batch.day,
            ticks: vec![
                (6, tick(gbp, 60)),
                (7, tick(eur, 70)),
                (8, tick(gbp, 80)),
                (9, tick(eur, 90)),
            ],
        });
        assert_eq!(seqs(&one(&mixed)), [6, 8, 9]);
        // The strategy turns to EURUSD: every EURUSD tick, GBPUSD's latest.
        of_gbp.mark(marked(named(&["EURUSD"]), None), &interest, None);
        assert_eq!(seqs(&one(&mixed)), [7, 8, 9]);
        assert_eq!(seqs(&one(&later)), [4, 5]);

        // A source no one wants is left out too; one subscriber of everything takes all; a
        // closed queue's wants count for nothing.
        for q in [&of_eur, &of_gbp] {
            let lp2 = marked(named(&["EURUSD", "GBPUSD"]), named(&["LP2"]));
            q.mark(lp2, &interest, None);
        }
        let enc = one(&batch);
        assert_eq!(seqs(&enc), [0i64; 0], "LP1's ticks are left out");
        assert!(enc.left_out.is_some());
        let of_all = Arc::new(Queue::new(None));
        of_all.mark(marked(None, None), &interest, Some(&listed));
        assert!(union().every.everything());
        of_all.close("gone".into());
        assert!(!union().every.everything());
    }
}
