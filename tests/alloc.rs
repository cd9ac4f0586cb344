//! `store_tick` allocates nothing per tick in steady state.
//!
//! What could go wrong: a hidden allocation on the hot path (a String for a name, a Vec growth
//! in a ring, a boxed error) costs latency on every tick and fragments memory over a trading
//! day. A counting global allocator sees every allocation this thread makes; this is its own
//! test binary so that the allocator wraps nothing else.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use tickrec::pipeline::{Outcome, PipelineOptions, Recorder};
use tickrec::store::writer::SqliteSink;
use tickrec::store::WriterOptions;
use tickrec::synth::{symbol_names, QuoteGen};
use tickrec::tick::{Tick, Timestamp};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn store_tick_allocates_nothing_in_steady_state() {
    let dir = tempfile::tempdir().unwrap();
    let opts = PipelineOptions {
        ring_capacity: 1000,
        ..PipelineOptions::default()
    };
    let rec = Recorder::builder(opts)
        .sink(|names| Box::new(SqliteSink::new(dir.path(), names, WriterOptions::default())))
        .start()
        .unwrap();
    let ids: Vec<_> = symbol_names(128)
        .iter()
        .map(|n| rec.names().symbol(n).unwrap())
        .collect();
    let source = rec.names().source("LP1").unwrap();
    let mut gen = QuoteGen::new(ids.len(), 3);
    let t0 = 1_795_428_000_000_000_000i64;
    let ticks: Vec<Tick> = (0..150_000i64)
        .map(|i| {
            let s = (i % 128) as usize;
            let q = gen.next_quote(s);
            q.tick(
                ids[s],
                source,
                Timestamp(t0 + i * 1_000),
                Timestamp(t0 + i * 1_000 + 40_000),
            )
        })
        .collect();
    // Warm-up: every symbol's ring is created on its first tick.
    for t in &ticks[..50_000] {
        assert_eq!(rec.store_tick(*t), Ok(Outcome::Accepted));
    }
    COUNTING.with(|c| c.set(true));
    for t in &ticks[50_000..] {
        let _ = rec.store_tick(*t);
    }
    COUNTING.with(|c| c.set(false));
    let allocs = ALLOCS.with(Cell::get);
    let stats = rec.shutdown();
    assert_eq!(stats.ticks_stored, 150_000);
    assert_eq!(
        allocs, 0,
        "allocations in 100,000 steady-state store_tick calls"
    );
}
