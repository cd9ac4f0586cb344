//! FIX market-data decoding: framing check, one-pass decode and book update into ticks.
//! Target: ≤ 300 ns for a single-entry 35=X message. `cargo bench --bench fix_decode`
//!
//! With `DECODE_COUNT=N` it instead frames, decodes and books N two-entry messages (1,000
//! distinct ones, round robin) and exits: a fixed amount of work to count instructions and
//! mispredicted branches of, where timings are too noisy to compare two builds
//! (`cargo bench --bench fix_decode --no-run` prints the binary; then
//! `DECODE_COUNT=200000 valgrind --tool=cachegrind --branch-sim=yes BINARY`).

use criterion::{criterion_group, Criterion, Throughput};
use std::hint::black_box;
use tickrec::fix::decode::{Decoder, MarketData};
use tickrec::fix::frame;
use tickrec::tick::{SourceId, SymbolId, Tick, Timestamp};

fn framed(body: &str) -> Vec<u8> {
    let body = body.replace('|', "\x01");
    let mut m = format!("8=FIX.4.4\x019={}\x01{}", body.len(), body).into_bytes();
    let sum = frame::checksum(&m);
    m.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
    m
}

/// The 128 generated symbol names and their ids.
fn symbols() -> Vec<(String, SymbolId)> {
    tickrec::synth::symbol_names(128)
        .into_iter()
        .enumerate()
        .map(|(i, s)| (s, SymbolId(i as u32)))
        .collect()
}

fn bench(c: &mut Criterion) {
    let symbols = symbols();
    let one = framed(
        "35=X|49=LP1|56=TICKREC|34=123456|52=20261123-10:00:00.123456789|268=1|279=1|269=0|55=EURUSD|270=1.08502|271=1000000|",
    );
    let three = framed(
        "35=X|49=LP1|56=TICKREC|34=123457|52=20261123-10:00:00.123456789|268=3|279=1|269=0|55=EURUSD|270=1.08502|271=1000000|\
         279=1|269=1|55=EURUSD|270=1.08510|271=2000000|279=1|269=0|55=USDJPY|270=151.230|271=5000000|",
    );
    let mut g = c.benchmark_group("fix_decode");
    g.throughput(Throughput::Elements(1));
    for (name, msg) in [("single_entry_x", &one), ("three_entry_x", &three)] {
        let mut decoder = Decoder::new();
        let mut md = MarketData::new(SourceId(0), tickrec::tick::OriginId(1), &symbols);
        let mut out: Vec<Tick> = Vec::with_capacity(8);
        g.bench_function(format!("{name}/frame+decode+book"), |b| {
            b.iter(|| {
                let n = frame::check(black_box(msg)).unwrap();
                let d = decoder.decode(&msg[..n]).unwrap();
                out.clear();
                md.apply(&d, Timestamp(1), Timestamp(2), &mut out).unwrap();
                decoder.recycle(d.entries);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

/// The `DECODE_COUNT` mode (see the module doc).
fn count(n: usize) {
    let symbols = symbols();
    let messages: Vec<Vec<u8>> = (0..1000u64)
        .map(|k| {
            let s = &symbols[(k * 37 % 128) as usize].0;
            let px = 1.0 + (k % 97) as f64 / 1000.0;
            framed(&format!(
                "35=X|49=LP1|56=TICKREC|34={}|52=20261123-10:00:00.123456789|268=2|\
                 279=1|269=0|55={s}|270={px:.5}|271={}|279=1|269=1|55={s}|270={:.5}|271=2000000|",
                100_000 + k,
                1_000_000 + k * 1000,
                px + 0.0001
            ))
        })
        .collect();
    let mut decoder = Decoder::new();
    let mut md = MarketData::new(SourceId(0), tickrec::tick::OriginId(1), &symbols);
    let mut out: Vec<Tick> = Vec::with_capacity(8);
    let mut ticks = 0;
    for msg in messages.iter().cycle().take(n) {
        let len = frame::check(black_box(msg)).expect("framed");
        let d = decoder.decode(&msg[..len]).expect("decodes");
        out.clear();
        md.apply(&d, Timestamp(1), Timestamp(2), &mut out)
            .expect("books");
        decoder.recycle(d.entries);
        ticks += black_box(out.len());
    }
    println!("{n} messages, {ticks} ticks");
}

criterion_group!(benches, bench);

fn main() {
    if let Some(n) = std::env::var("DECODE_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        count(n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
