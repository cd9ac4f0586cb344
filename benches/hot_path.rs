//! `Recorder::store_tick`, the hot path: ring buffer + channel, with a writer thread that
//! drains into a sink that keeps nothing, so only the hot path is measured.
//! `cargo bench --bench hot_path`

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use tickrec::pipeline::{PipelineOptions, Recorder, Sink, SinkStats};
use tickrec::synth::{symbol_names, QuoteGen};
use tickrec::tick::{Tick, Timestamp};

/// Counts and forgets: the writer side costs nothing, so the bench sees store_tick alone.
struct Discard(Arc<SinkStats>);

impl Sink for Discard {
    fn name(&self) -> &str {
        "discard"
    }
    fn stats(&self) -> Arc<SinkStats> {
        self.0.clone()
    }
    fn write_batch(&mut self, batch: &[Tick], _abort: &tickrec::shutdown::Shutdown) {
        self.0.ticks_stored.add(batch.len() as u64);
    }
    fn close(&mut self) {}
}

fn bench(c: &mut Criterion) {
    let rec = Recorder::builder(PipelineOptions::default())
        .sink(|_| Box::new(Discard(Arc::new(SinkStats::default()))))
        .start()
        .unwrap();
    let names = rec.names().clone();
    let ids: Vec<_> = symbol_names(128)
        .iter()
        .map(|n| names.symbol(n).unwrap())
        .collect();
    let source = names.source("LP1").unwrap();
    let mut gen = QuoteGen::new(128, 9);
    let ticks: Vec<Tick> = (0..65_536)
        .map(|i| {
            let s = gen.pick();
            let q = gen.next_quote(s);
            q.tick(
                ids[s],
                source,
                Timestamp(1_795_428_000_000_000_000 + i),
                Timestamp(1_795_428_000_000_040_000 + i),
            )
        })
        .collect();
    let mut g = c.benchmark_group("hot_path");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("store_tick/128_symbols", |b| {
        b.iter(|| {
            i = (i + 1) & 65_535;
            black_box(rec.store_tick(black_box(ticks[i])))
        })
    });
    g.finish();
    rec.shutdown();
}

criterion_group!(benches, bench);
criterion_main!(benches);
