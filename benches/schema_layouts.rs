//! Physical layout of the `ticks` table, measured: bytes per tick and insert rate of candidate
//! layouts on the same generated FX ticks, with the writer's pragmas and 500-tick transactions.
//!
//! `cargo bench --bench schema_layouts` (TICKS=2000000 SYMBOLS=128 by default). The figures
//! chosen from are quoted in the header of schema/ticks.sql.

use std::path::Path;
use std::time::Instant;

use rusqlite::{params, Connection};
use tickrec::synth::{symbol_names, QuoteGen};
use tickrec::tick::{Decimal, NANOS_PER_DAY};

struct Row {
    sym: usize,
    ts_event: i64,
    ts_recv: i64,
    bid: Option<Decimal>,
    ask: Option<Decimal>,
    bid_size: Option<Decimal>,
    ask_size: Option<Decimal>,
}

struct Layout {
    name: &'static str,
    ddl: &'static str,
    insert: &'static str,
    bind: fn(&mut rusqlite::Statement<'_>, i64, &Row, &[String], i64) -> rusqlite::Result<()>,
}

fn code(d: Option<Decimal>) -> Option<i64> {
    d.map(|d| d.code() as i64)
}

/// Ask as its distance from bid when both have the same places: `(ask - bid) << 4 | places`,
/// what a spread column would hold (otherwise the ask's own code; a real layout needs a tag
/// for that case, which this measurement leaves out).
fn spread(bid: Option<Decimal>, ask: Option<Decimal>) -> Option<i64> {
    match (
        bid.and_then(Decimal::to_scaled),
        ask.and_then(Decimal::to_scaled),
    ) {
        (Some((b, bs)), Some((a, s))) if bs == s => Some(((a as i64 - b as i64) << 4) | s as i64),
        _ => code(ask),
    }
}

fn real(d: Option<Decimal>) -> Option<f64> {
    d.map(Decimal::to_f64)
}

/// The day file's row before the ask became a distance.
fn bind_compact(
    s: &mut rusqlite::Statement<'_>,
    seq: i64,
    r: &Row,
    _: &[String],
    day0: i64,
) -> rusqlite::Result<()> {
    s.execute(params![
        seq,
        r.sym as i64,
        r.ts_event - day0,
        r.ts_recv - r.ts_event,
        code(r.bid),
        code(r.ask),
        code(r.bid_size),
        code(r.ask_size),
        0i64
    ])
    .map(drop)
}

/// The day file's `ticks` table (integers throughout).
const COMPACT: &str = "CREATE TABLE ticks (seq INTEGER PRIMARY KEY, sym INTEGER NOT NULL, ts_event INTEGER NOT NULL, \
              ts_recv INTEGER NOT NULL, bid INTEGER, ask INTEGER, bid_size INTEGER, ask_size INTEGER, src INTEGER NOT NULL)";
/// One row, every column bound.
const INSERT: &str = "INSERT INTO ticks VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

const LAYOUTS: &[Layout] = &[
    Layout {
        name: "compact: day-relative ns, recv delta, packed decimals, ids (chosen)",
        ddl: COMPACT,
        insert: INSERT,
        bind: bind_compact,
    },
    Layout {
        name: "absolute ns (ts_event, ts_recv), packed decimals, ids",
        ddl: COMPACT,
        insert: INSERT,
        bind: |s, seq, r, _, _| {
            s.execute(params![seq, r.sym as i64, r.ts_event, r.ts_recv,
                code(r.bid), code(r.ask), code(r.bid_size), code(r.ask_size), 0i64]).map(drop)
        },
    },
    Layout {
        name: "compact, ask as its spread over bid",
        ddl: COMPACT,
        insert: INSERT,
        bind: |s, seq, r, _, day0| {
            s.execute(params![seq, r.sym as i64, r.ts_event - day0, r.ts_recv - r.ts_event,
                code(r.bid), spread(r.bid, r.ask), code(r.bid_size), code(r.ask_size), 0i64]).map(drop)
        },
    },
    Layout {
        name: "naive: absolute ns, REAL prices and sizes, TEXT symbol and source",
        ddl: "CREATE TABLE ticks (seq INTEGER PRIMARY KEY, symbol TEXT NOT NULL, ts_event INTEGER NOT NULL, \
              ts_recv INTEGER NOT NULL, bid REAL, ask REAL, bid_size REAL, ask_size REAL, source TEXT NOT NULL)",
        insert: INSERT,
        bind: |s, seq, r, names, _| {
            s.execute(params![seq, names[r.sym], r.ts_event, r.ts_recv,
                real(r.bid), real(r.ask), real(r.bid_size), real(r.ask_size), "LP1"]).map(drop)
        },
    },
    Layout {
        name: "compact + index (sym, ts_event) maintained live",
        ddl: "CREATE TABLE ticks (seq INTEGER PRIMARY KEY, sym INTEGER NOT NULL, ts_event INTEGER NOT NULL, \
              ts_recv INTEGER NOT NULL, bid INTEGER, ask INTEGER, bid_size INTEGER, ask_size INTEGER, src INTEGER NOT NULL); \
              CREATE INDEX ticks_sym_ts ON ticks (sym, ts_event)",
        insert: INSERT,
        bind: bind_compact,
    },
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n = env_usize("TICKS", 2_000_000);
    let symbols = env_usize("SYMBOLS", 128);
    let names = symbol_names(symbols);
    let mut gen = QuoteGen::new(symbols, 42);
    let day0 = 1_795_392_000_000_000_000i64; // 2026-11-23T00:00:00Z
                                             // Ticks spread over the trading day, receive delay 20-250 µs.
    let step = NANOS_PER_DAY / n as i64;
    let rows: Vec<Row> = (0..n)
        .map(|i| {
            let sym = gen.pick();
            let q = gen.next_quote(sym);
            let ts_event = day0 + i as i64 * step;
            Row {
                sym,
                ts_event,
                ts_recv: ts_event + 20_000 + (i as i64 * 7_919) % 230_000,
                bid: q.bid,
                ask: q.ask,
                bid_size: q.bid_size,
                ask_size: q.ask_size,
            }
        })
        .collect();
    let dir = tempfile::tempdir()?;
    println!("{n} ticks, {symbols} symbols, WAL synchronous=NORMAL, 500-tick transactions\n");
    println!("{:>10}  {:>10}  layout", "ticks/s", "bytes/tick");
    let mut first_rate = None;
    for (i, layout) in LAYOUTS.iter().enumerate() {
        let path = dir.path().join(format!("layout{i}.db"));
        let (rate, bytes) = run(&path, layout, &rows, &names, day0)?;
        let ratio = first_rate
            .map(|f: f64| format!(" ({:.2}x chosen)", rate / f))
            .unwrap_or_default();
        first_rate.get_or_insert(rate);
        println!(
            "{rate:>10.0}  {:>10.1}  {}{ratio}",
            bytes as f64 / n as f64,
            layout.name
        );
    }
    Ok(())
}

fn run(
    path: &Path,
    layout: &Layout,
    rows: &[Row],
    names: &[String],
    day0: i64,
) -> rusqlite::Result<(f64, u64)> {
    let mut conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA page_size=4096; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-16384;")?;
    conn.execute_batch(layout.ddl)?;
    let started = Instant::now();
    for (b, batch) in rows.chunks(500).enumerate() {
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(layout.insert)?;
            for (i, r) in batch.iter().enumerate() {
                (layout.bind)(&mut stmt, (b * 500 + i + 1) as i64, r, names, day0)?;
            }
        }
        tx.commit()?;
    }
    let secs = started.elapsed().as_secs_f64();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    drop(conn);
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok((rows.len() as f64 / secs, bytes))
}
