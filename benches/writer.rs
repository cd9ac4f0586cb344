//! The SQLite writer alone: 500-tick transactions into a day file (WAL, synchronous=NORMAL).
//! `cargo bench --bench writer`

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tickrec::intern::Names;
use tickrec::pipeline::Sink;
use tickrec::store::writer::SqliteSink;
use tickrec::store::WriterOptions;
use tickrec::synth::{symbol_names, QuoteGen};
use tickrec::tick::{Tick, Timestamp};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let names = Arc::new(Names::new(4096));
    let ids: Vec<_> = symbol_names(128)
        .iter()
        .map(|n| names.symbol(n).unwrap())
        .collect();
    let source = names.source("LP1").unwrap();
    let mut sink = SqliteSink::new(dir.path(), names.clone(), WriterOptions::default());
    let mut gen = QuoteGen::new(128, 5);
    let mut t = 1_795_428_000_000_000_000i64;
    let mut batch = move || -> Vec<Tick> {
        (0..500)
            .map(|_| {
                t += 1_000;
                let s = gen.pick();
                let q = gen.next_quote(s);
                q.tick(ids[s], source, Timestamp(t), Timestamp(t + 40_000))
            })
            .collect()
    };
    let abort = tickrec::shutdown::Shutdown::new();
    let mut g = c.benchmark_group("writer");
    g.throughput(Throughput::Elements(500));
    g.bench_function("sqlite/500_tick_transaction", |b| {
        b.iter_batched(
            &mut batch,
            |ticks| sink.write_batch(&ticks, &abort),
            BatchSize::SmallInput,
        )
    });
    g.finish();
    sink.close();
}

criterion_group!(benches, bench);
criterion_main!(benches);
