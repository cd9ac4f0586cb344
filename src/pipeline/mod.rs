//! The recorder: ticks in (`store_tick`), per-symbol rings and a bounded channel (`queue`),
//! one writer thread out to the storage backends.
//!
//! `store_tick` is the hot path. In steady state it takes one uncontended per-symbol lock and
//! its own thread's latency histogram lock (no lock is shared between producers; a scrape of
//! `/metrics` takes each briefly to merge them), copies a 64-byte tick twice (ring, channel
//! slot) and never allocates (but once per thread, for its histogram), never touches a file,
//! makes no syscall (the writer polls; no producer wakes it), and never waits unless the
//! channel is full under the `block` policy.
//!
//! Shutdown guarantee: a tick for which `store_tick` returned [`Outcome::Accepted`] is handed
//! to every backend before [`Recorder::shutdown`] returns, and each backend accounts for it as
//! stored, dead-lettered, spilled or lost (with a reason) — never nothing.
//!
//! Backpressure: a backend whose store cannot write (disk full, I/O error) holds its batch and
//! retries (it *stalls*); the writer then takes nothing from the channel, the channel fills,
//! and under the `block` policy producers wait in `store_tick`: `ingest` stops reading its
//! input, a FIX gateway stops reading its socket. Shutdown is bounded all the same: after half
//! of `shutdown_timeout` the recorder gives up on the store, producers still waiting are
//! refused (their ticks were never accepted), and backends set the rest aside (`spill`).

pub mod batch;
mod doorbell;
mod queue;
pub mod ring;
pub mod stats;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use doorbell::Doorbell;
use queue::Push;

pub use batch::BatchPolicy;
use ring::{Ring, RingLine};
pub use stats::{HealthPolicy, Latency, SinkStats, Stats, StatsSnapshot, WeeklyWindow};

use crate::intern::Names;
use crate::shutdown::Shutdown;
use crate::tick::{SourceId, SymbolId, Tick, TimeWindow, TimeWindowError};

/// A storage backend driven by the writer thread.
///
/// A sink owns its failure handling: retries, splitting, dead letters, stalls. `write_batch`
/// must not panic and must account for every tick it is given in its [`SinkStats`] before it
/// returns: stored, dead-lettered, spilled or lost.
pub trait Sink: Send {
    /// Short name for logs and statistics ("sqlite", "json").
    fn name(&self) -> &str;
    fn stats(&self) -> Arc<SinkStats>;
    /// Writes `batch`. While the store cannot write, a sink holds the batch and retries until
    /// it can, or until `abort` is set (bounded shutdown): then it spills what it holds.
    fn write_batch(&mut self, batch: &[Tick], abort: &Shutdown);
    /// Called once after the last batch: make everything durable and release files.
    fn close(&mut self);
}

/// What to do when the channel is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OverflowPolicy {
    /// Wait for room: backpressure on the producer, nothing lost.
    #[default]
    Block,
    /// Discard the tick from persistence and count it.
    Drop,
}

/// Validated pipeline settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineOptions {
    pub channel_capacity: usize,
    pub ring_capacity: usize,
    pub max_symbols: usize,
    pub overflow: OverflowPolicy,
    /// Minimum `ts_recv` interval between stored ticks of one symbol from one source; 0 = no
    /// throttle.
    pub throttle_ns: i64,
    pub batch: BatchPolicy,
    pub health: HealthPolicy,
    /// Event times accepted (see [`TimeWindow`]).
    pub time_window: TimeWindow,
    /// Bound on [`Recorder::shutdown`]: after half of it a stalled store is given up on and its
    /// ticks are spilled; the rest is for spilling and closing.
    pub shutdown_timeout: Duration,
}

impl Default for PipelineOptions {
    fn default() -> PipelineOptions {
        PipelineOptions {
            channel_capacity: 262_144,
            ring_capacity: 10_000,
            max_symbols: 4096,
            overflow: OverflowPolicy::Block,
            throttle_ns: 0,
            batch: BatchPolicy::default(),
            health: HealthPolicy::default(),
            time_window: TimeWindow::default(),
            shutdown_timeout: Duration::from_secs(8),
        }
    }
}

/// What became of a tick given to [`Recorder::store_tick`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Queued for every backend; it will be stored or dead-lettered, never silently lost.
    Accepted,
    /// Too soon after the previous stored tick of the symbol from its source (throttle);
    /// counted.
    Throttled,
    /// Channel full under the `drop` policy; counted. It is in the ring, not on disk.
    Dropped,
}

/// Why a tick was refused outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreTickError {
    #[error("the recorder is shutting down and takes no more ticks")]
    Closed,
    #[error("symbol id {0} was not issued by this recorder's name table")]
    UnknownSymbol(u32),
    #[error(transparent)]
    OutsideTimeWindow(#[from] TimeWindowError),
}

/// Everything `store_tick` touches, shared with readers of rings and stats.
struct Shared {
    names: Arc<Names>,
    /// One ring per symbol id, created on the symbol's first tick.
    rings: Box<[RingLine]>,
    tx: queue::Producer,
    stats: Arc<Stats>,
    /// Set when shutdown gives up on a stalled store: producers waiting for room are refused,
    /// and backends spill instead of retrying.
    abort: Shutdown,
    /// Set once by shutdown; after it no `store_tick` accepts.
    closed: AtomicBool,
    /// `store_tick` calls between their `closed` check and the end of their send.
    in_flight: AtomicUsize,
    /// Rung for producers when a quarter of a full channel is free again.
    room: Arc<Doorbell>,
    /// The clock of `store_tick`'s latency: two raw counter reads a call, scaled once.
    /// `quanta::Instant::now` looks up a thread-local override and scales each read: with
    /// `elapsed` and the histogram, as much of the FIX gateway thread (~60 ns a tick) as
    /// `store_tick`'s own work (`perf` of the bench's end to end). `cargo bench --bench
    /// hot_path`, alternating: 90.5, 96.7, 94.9 ns a call before, 85.6, 84.1, 81.5 after.
    clock: quanta::Clock,
    opts: PipelineOptions,
}

/// A running recorder. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Recorder {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// By symbol id, what [`Recorder::latest_of_each_source`] looks for and has met. Never
    /// touched by `store_tick`.
    sources_of: Mutex<Vec<Known>>,
}

/// Of one symbol: the sources of the feeds that record it ([`Recorder::prepare_feed`]), and
/// what [`Recorder::latest_of_each_source`] met when it last read its ring.
#[derive(Default)]
struct Known {
    declared: Vec<SourceId>,
    /// The ring's newest tick then: the ticks from it back were read.
    newest: Option<Tick>,
    /// The latest tick of each source met.
    latest: Vec<Tick>,
}

/// Ticks of a ring read under one hold of its lock, at most, by
/// [`Recorder::latest_of_each_source`] (about 16 KB).
const SCAN_STEP: usize = 256;

/// Builds a [`Recorder`] and its storage backends around one symbol and source table: the
/// builder owns the table and hands it to every sink it makes, so the ids `store_tick` is given
/// and the names a sink writes always come from the same table.
///
/// ```
/// use tickrec::pipeline::{PipelineOptions, Recorder};
/// use tickrec::store::{writer::SqliteSink, WriterOptions};
/// # let dir = tempfile::tempdir().unwrap();
/// let rec = Recorder::builder(PipelineOptions::default())
///     .sink(|names| Box::new(SqliteSink::new(dir.path(), names, WriterOptions::default())))
///     .start()?;
/// let eurusd = rec.names().symbol("EURUSD").unwrap();
/// assert!(rec.recent(eurusd, 10).is_empty());
/// assert!(rec.latest_of_each_source(eurusd).is_empty());
/// let stats = rec.shutdown(); // stop intake, drain, commit, checkpoint
/// assert_eq!(stats.ticks_lost, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct RecorderBuilder {
    opts: PipelineOptions,
    names: Arc<Names>,
    sinks: Vec<Box<dyn Sink>>,
}

impl RecorderBuilder {
    /// Adds a backend, made with the recorder's table.
    pub fn sink(mut self, make: impl FnOnce(Arc<Names>) -> Box<dyn Sink>) -> RecorderBuilder {
        let sink = make(self.names.clone());
        self.sinks.push(sink);
        self
    }

    /// Starts the writer thread over the backends (at least one).
    pub fn start(self) -> std::io::Result<Recorder> {
        if self.sinks.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a recorder needs at least one storage backend",
            ));
        }
        Recorder::start(self.opts, self.names, self.sinks)
    }
}

impl Recorder {
    /// A builder with a new table of `opts.max_symbols` symbols.
    pub fn builder(opts: PipelineOptions) -> RecorderBuilder {
        let names = Arc::new(Names::new(opts.max_symbols));
        Recorder::builder_with(opts, names)
    }

    /// A builder over an existing table (ids interned before the recorder starts, as a FIX
    /// gateway's subscription list or pre-generated input).
    pub fn builder_with(opts: PipelineOptions, names: Arc<Names>) -> RecorderBuilder {
        RecorderBuilder {
            opts,
            names,
            sinks: Vec::new(),
        }
    }

    /// Starts the writer thread over `sinks` (at least one), all made with `names`.
    fn start(
        opts: PipelineOptions,
        names: Arc<Names>,
        sinks: Vec<Box<dyn Sink>>,
    ) -> std::io::Result<Recorder> {
        let (tx, rx) = queue::bounded(opts.channel_capacity.max(1));
        let mut stats = Stats::default();
        for s in &sinks {
            stats.sinks.push((s.name().to_owned(), s.stats()));
        }
        let stats = Arc::new(stats);
        let rings = (0..names.max_symbols())
            .map(|_| RingLine::default())
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let abort = Shutdown::new();
        let room = Arc::new(Doorbell::default());
        let writer = {
            let ctl = batch::WriterControl {
                stop: stop.clone(),
                abort: abort.clone(),
                stats: stats.clone(),
                room: room.clone(),
            };
            let policy = opts.batch;
            std::thread::Builder::new()
                .name("tickrec-writer".into())
                .spawn(move || batch::run_writer(rx, sinks, policy, ctl))?
        };
        Ok(Recorder {
            shared: Arc::new(Shared {
                names,
                rings,
                tx,
                stats,
                abort,
                closed: AtomicBool::new(false),
                in_flight: AtomicUsize::new(0),
                room,
                clock: quanta::Clock::new(),
                opts,
            }),
            stop,
            writer: Mutex::new(Some(writer)),
            sources_of: Mutex::default(),
        })
    }

    pub fn names(&self) -> &Arc<Names> {
        &self.shared.names
    }

    pub fn options(&self) -> &PipelineOptions {
        &self.shared.opts
    }

    /// The hot path: ring buffer, then channel. See the module doc for its guarantees.
    pub fn store_tick(&self, tick: Tick) -> Result<Outcome, StoreTickError> {
        let sh = &*self.shared;
        let start = sh.clock.raw();
        sh.stats.intake.ticks_received.incr();
        // Register before checking `closed`; shutdown waits for in_flight to reach 0 after
        // setting `closed`, so no accepted tick can slip in behind the writer's final drain.
        sh.in_flight.fetch_add(1, Ordering::SeqCst);
        let result = self.store_in_flight(tick);
        sh.in_flight.fetch_sub(1, Ordering::SeqCst);
        let ns = sh.clock.delta_as_nanos(start, sh.clock.raw());
        sh.stats.store_tick_latency.record_ns(ns);
        result
    }

    fn store_in_flight(&self, tick: Tick) -> Result<Outcome, StoreTickError> {
        let sh = &*self.shared;
        if sh.closed.load(Ordering::SeqCst) {
            sh.stats.intake.ticks_rejected_closed.incr();
            return Err(StoreTickError::Closed);
        }
        let line = sh
            .rings
            .get(tick.symbol.0 as usize)
            .ok_or(StoreTickError::UnknownSymbol(tick.symbol.0))?;
        if let Err(e) = sh.opts.time_window.check(tick.ts_event, tick.ts_recv) {
            sh.stats.intake.ticks_rejected_time.incr();
            return Err(e.into());
        }
        {
            let ring = line.0.get_or_init(|| self.new_ring());
            let mut ring = ring.lock().unwrap_or_else(|e| e.into_inner());
            if !ring.admit(&tick, sh.opts.throttle_ns) {
                sh.stats.intake.ticks_throttled.incr();
                return Ok(Outcome::Throttled);
            }
            ring.push(tick);
            line.1.store(ring.next_slot(), Ordering::Relaxed);
        }
        let sent = match sh.opts.overflow {
            OverflowPolicy::Block => match sh.tx.try_push(tick) {
                Ok(()) => true,
                Err(Push::Full(t)) => self.wait_for_room(t),
                Err(Push::Disconnected) => false,
            },
            OverflowPolicy::Drop => match sh.tx.try_push(tick) {
                Ok(()) => true,
                Err(Push::Full(_)) => {
                    sh.stats.intake.ticks_dropped.incr();
                    return Ok(Outcome::Dropped);
                }
                Err(Push::Disconnected) => false,
            },
        };
        if !sent {
            // The writer thread is gone (it panicked): refuse rather than pretend.
            sh.stats.intake.ticks_rejected_closed.incr();
            return Err(StoreTickError::Closed);
        }
        sh.stats.intake.ticks_accepted.incr();
        Ok(Outcome::Accepted)
    }

    /// Checks an event time against the window with `reference` as the receive time, counting
    /// a refusal as `store_tick` does: for producers whose records carry no receive time of
    /// their own (replayed history), checked against their clock before the tick is built.
    pub fn check_time_window(
        &self,
        ts_event: crate::tick::Timestamp,
        reference: crate::tick::Timestamp,
    ) -> Result<(), TimeWindowError> {
        let sh = &*self.shared;
        let checked = sh.opts.time_window.check(ts_event, reference);
        if checked.is_err() {
            // Received and refused here; a tick that passes is counted by `store_tick`.
            sh.stats.intake.ticks_received.incr();
            sh.stats.intake.ticks_rejected_time.incr();
        }
        checked
    }

    /// The `block` policy's wait: until the writer makes room, or shutdown gives up on a
    /// stalled store (false: refused, never accepted).
    #[cold]
    fn wait_for_room(&self, mut tick: Tick) -> bool {
        let sh = &*self.shared;
        let capacity = sh.tx.capacity();
        // Woken when a quarter of the channel is free (at least a batch), not on every batch
        // the writer takes: on a virtual machine a futex wake costs the writer ~16 µs (an
        // interrupt to the other CPU), and a feed faster than the writer had it pay one per
        // batch, 2.5 % of its time.
        let room_for = (capacity / 4)
            .max(sh.opts.batch.batch_size)
            .clamp(1, capacity);
        loop {
            sh.room.wait(
                room_for,
                || capacity.saturating_sub(sh.tx.len()) >= room_for,
                Instant::now() + Duration::from_millis(20),
            );
            match sh.tx.try_push(tick) {
                Ok(()) => return true,
                Err(Push::Full(t)) => {
                    if sh.abort.is_requested() {
                        return false;
                    }
                    tick = t;
                }
                Err(Push::Disconnected) => return false,
            }
        }
    }

    /// Up to `n` most recent ticks of `symbol` seen by this recorder, newest first.
    pub fn recent(&self, symbol: SymbolId, n: usize) -> Vec<Tick> {
        match self
            .shared
            .rings
            .get(symbol.0 as usize)
            .and_then(|r| r.0.get())
        {
            Some(ring) => {
                let ring = ring.lock().unwrap_or_else(|e| e.into_inner());
                ring.newest(n).copied().collect()
            }
            None => Vec::new(),
        }
    }

    /// Asks for the lines `store_tick` will write for `symbol`'s next tick: the ring's lock and
    /// state, and the slot the tick will take. The FIX gateway calls this as soon as a message
    /// is decoded, so that they come in while the session checks the message and the book is
    /// updated. The rings of 128 symbols hold 82 MB, and the ring's own prefetch a push ahead
    /// does not keep the slot's line in the cache once other threads share the core:
    /// `store_tick` waited for memory (`data/performance-log.md`, "Taken after run 58" and
    /// "Taken after run 59"). Never blocks; unknown ids are ignored, and so is the slot of a
    /// symbol whose ring has had no tick yet.
    #[inline]
    pub fn prefetch_ring(&self, symbol: SymbolId) {
        if let Some(line) = self.shared.rings.get(symbol.0 as usize) {
            ring::prefetch_for_write(std::ptr::from_ref(&line.0).cast());
            let at = line.1.load(Ordering::Relaxed);
            if !at.is_null() {
                ring::prefetch_for_write(at.cast_const().cast());
            }
        }
    }

    /// Asks for the lines the channel's next slot will take, as [`Recorder::prefetch_ring`] does
    /// for a ring: once a message, however many ticks it carries (the next ones follow on the
    /// same lines or the next). The channel's slot was most of `store_tick`'s p99.9
    /// (`data/performance-log.md`, "Taken after run 64"). Never blocks.
    #[inline]
    pub fn prefetch_channel(&self) {
        self.shared.tx.prefetch();
    }

    /// Makes `symbol`'s ring now; otherwise it is made on the symbol's first tick, inside
    /// `store_tick` (a one-time cost: writing the ring's memory).
    pub fn prepare(&self, symbol: SymbolId) {
        self.prepare_all(&[symbol]);
    }

    /// Makes the rings of `symbols` that have none yet, now and from one allocation (under
    /// huge pages where the kernel offers them: see `pipeline/ring.rs`). A feed calls this with
    /// the symbols it subscribes to before its first tick. Unknown ids are ignored.
    pub fn prepare_all(&self, symbols: &[SymbolId]) {
        let rings = &self.shared.rings;
        let mut fresh: Vec<usize> = symbols
            .iter()
            .map(|s| s.0 as usize)
            .filter(|&i| rings.get(i).is_some_and(|r| r.0.get().is_none()))
            .collect();
        fresh.sort_unstable();
        fresh.dedup();
        let made = Ring::many(fresh.len(), self.shared.opts.ring_capacity);
        for (i, ring) in fresh.into_iter().zip(made) {
            // A symbol whose first tick came meanwhile has its own ring; this one's piece then
            // stays unused in the arena.
            let _ = rings[i].0.set(Mutex::new(ring));
        }
    }

    /// [`Recorder::prepare_all`] for a feed of `source`'s quotes of `symbols`, which it also
    /// declares: [`Recorder::latest_of_each_source`] then looks for `source`'s latest quote of
    /// each of them.
    pub fn prepare_feed(&self, source: SourceId, symbols: &[SymbolId]) {
        self.prepare_all(symbols);
        let mut of = self.sources_of.lock().unwrap_or_else(|e| e.into_inner());
        for s in symbols {
            let i = s.0 as usize;
            if i >= self.shared.rings.len() {
                continue;
            }
            if of.len() <= i {
                of.resize_with(i + 1, Known::default);
            }
            if !of[i].declared.contains(&source) {
                of[i].declared.push(source);
            }
        }
    }

    /// The latest tick of each source of `symbol`, oldest first (the symbol's latest tick
    /// last): what a screen showing every liquidity provider's quote starts from, where
    /// [`Recorder::recent`]`(symbol, 1)` is the one source that quoted last.
    ///
    /// Read from the symbol's ring, from the newest tick back until every source declared for
    /// the symbol ([`Recorder::prepare_feed`]) has been met, or the ticks read by the last
    /// call for the symbol are reached (what they held is remembered), or the ring's end. So a
    /// source that has gone quiet keeps its last quote here after the ring has moved past it,
    /// unless the ring moved past it between two calls (its whole
    /// [`PipelineOptions::ring_capacity`] in between; [`Recorder::keep_latest_quotes`], called
    /// often, bounds that). The ring's lock is held for at most
    /// 256 ticks at a time, so `store_tick` never waits longer for it than for a
    /// short `recent`.
    pub fn latest_of_each_source(&self, symbol: SymbolId) -> Vec<Tick> {
        let i = symbol.0 as usize;
        let Some(ring) = self.shared.rings.get(i).and_then(|r| r.0.get()) else {
            return Vec::new();
        };
        let mut known = self.sources_of.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() <= i {
            known.resize_with(i + 1, Known::default);
        }
        let known = &mut known[i];
        let mut latest: Vec<Tick> = Vec::new();
        let met = |latest: &[Tick], s: SourceId| latest.iter().any(|l| l.source == s);
        let (mut skip, mut step) = (0, 16);
        let mut newest = None;
        'scan: loop {
            let ring = ring.lock().unwrap_or_else(|e| e.into_inner());
            if skip >= ring.len() {
                break;
            }
            // Ticks pushed since the last step move the older ones further back: some are
            // met twice (a source already met is passed over), none is missed.
            for t in ring.newest_after(skip, step) {
                newest.get_or_insert(*t);
                if known.newest.as_ref() == Some(t) {
                    break 'scan;
                }
                if !met(&latest, t.source) {
                    latest.push(*t);
                    // A symbol of one source: its newest tick, as `recent(symbol, 1)` reads.
                    if known.declared.iter().all(|&s| met(&latest, s)) {
                        break 'scan;
                    }
                }
            }
            drop(ring);
            skip += step;
            step = (step * 2).min(SCAN_STEP);
        }
        // What earlier calls met (oldest first), of sources not met since: pushed before
        // every tick read now.
        for t in known.latest.iter().rev() {
            if !met(&latest, t.source) {
                latest.push(*t);
            }
        }
        latest.reverse();
        if newest.is_some() {
            known.newest = newest;
        }
        known.latest.clone_from(&latest);
        latest
    }

    /// Looks at the latest tick of each source of every symbol that feeds declared more than
    /// one source for ([`Recorder::latest_of_each_source`]), so that a source gone quiet keeps
    /// its last quote however long no screen or subscriber looks: it is lost only when a whole
    /// ring of the symbol's ticks comes between two calls. `record` calls it every 200 ms
    /// (a ring of 10,000 ticks: 50,000 ticks a second of one symbol). A symbol of one source
    /// needs none: its latest tick is its ring's newest.
    pub fn keep_latest_quotes(&self) {
        let several: Vec<SymbolId> = self
            .sources_of
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .enumerate()
            .filter(|(_, k)| k.declared.len() > 1)
            .map(|(i, _)| SymbolId(i as u32))
            .collect();
        for symbol in several {
            self.latest_of_each_source(symbol);
        }
    }

    fn new_ring(&self) -> Mutex<Ring> {
        Mutex::new(Ring::new(self.shared.opts.ring_capacity))
    }

    /// The latest tick of every symbol with one from each of its sources
    /// ([`Recorder::latest_of_each_source`]), by symbol id, then by source name (a screen's
    /// rows stay in place), with names resolved.
    pub fn latest_quotes(&self) -> Vec<crate::tick::TickRow> {
        let names = &self.shared.names;
        let mut rows = Vec::new();
        for i in 0..self.shared.rings.len() {
            let first = rows.len();
            rows.extend(
                self.latest_of_each_source(SymbolId(i as u32))
                    .iter()
                    .filter_map(|t| {
                        Some(crate::tick::TickRow::from_tick(
                            t,
                            names.symbol_name(t.symbol)?,
                            names.source_name(t.source)?,
                            None,
                        ))
                    }),
            );
            rows[first..].sort_by(|a, b| a.source.cmp(&b.source));
        }
        rows
    }

    /// [`Recorder::recent`] by symbol name.
    pub fn recent_by_name(&self, symbol: &str, n: usize) -> Vec<Tick> {
        match self.shared.names.find_symbol(symbol) {
            Some(id) => self.recent(id, n),
            None => Vec::new(),
        }
    }

    pub fn stats(&self) -> StatsSnapshot {
        let sh = &*self.shared;
        sh.stats
            .snapshot(sh.tx.len(), sh.tx.capacity(), sh.opts.health)
    }

    /// The latency histograms (ns), for exposition: `store_tick`, every producer merged, and
    /// each backend's commit.
    pub fn latency_histograms(
        &self,
    ) -> (
        hdrhistogram::Histogram<u64>,
        Vec<(String, hdrhistogram::Histogram<u64>)>,
    ) {
        let st = &self.shared.stats;
        let commits = st
            .sinks
            .iter()
            .map(|(name, s)| (name.clone(), s.commit_latency.histogram()))
            .collect();
        (st.store_tick_latency.histogram(), commits)
    }

    /// Bytes the rings hold when every symbol seen so far has a full ring.
    pub fn ring_bytes(&self) -> usize {
        let live = self
            .shared
            .rings
            .iter()
            .filter(|r| r.0.get().is_some())
            .count();
        live * Ring::footprint_bytes(self.shared.opts.ring_capacity)
            + self.shared.rings.len() * std::mem::size_of::<RingLine>()
    }

    /// Stops intake, waits for in-flight `store_tick` calls, drains the channel into every
    /// backend, closes them (commit, WAL checkpoint) and returns the final statistics.
    /// Bounded by `shutdown_timeout` when the store is stalled (see the module doc).
    /// Idempotent: later calls just return the statistics.
    pub fn shutdown(&self) -> StatsSnapshot {
        let sh = &*self.shared;
        let give_up_at = Instant::now() + sh.opts.shutdown_timeout / 2;
        sh.closed.store(true, Ordering::SeqCst);
        let mut handle = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        // A producer may be waiting for room on a full channel while the writer drains it, or
        // while a stalled store holds the writer: then, at the deadline, it is refused.
        while sh.in_flight.load(Ordering::SeqCst) != 0 {
            self.give_up_if_due(give_up_at);
            std::thread::sleep(Duration::from_micros(200));
        }
        self.stop.store(true, Ordering::Release);
        if let Some(h) = handle.take() {
            while !h.is_finished() {
                self.give_up_if_due(give_up_at);
                std::thread::sleep(Duration::from_millis(1));
            }
            if h.join().is_err() {
                tracing::error!("the writer thread panicked; see the log above");
            }
        }
        self.stats()
    }

    fn give_up_if_due(&self, at: Instant) {
        if Instant::now() >= at {
            self.give_up();
        }
    }

    /// Shutdown's last resort, for a caller that cannot wait any longer (producers of its own
    /// are stuck waiting for room): producers still waiting are refused (their ticks were never
    /// accepted) and the backends stop retrying a stalled store and spill what they hold.
    pub fn give_up(&self) {
        let sh = &*self.shared;
        if !sh.abort.is_requested() {
            tracing::error!(
                "shutdown: the store did not take the remaining ticks in time; setting them aside"
            );
            sh.abort.request();
        }
    }

    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.shutdown();
    }
}
