//! (b) with a reader and (d): the writer while a reader queries the live day 50 times a second,
//! then `recent 100` and a one-hour range on the large day file live, sealed, indexed and
//! through the `sqlite3` shell.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tickrec::config::Options;
use tickrec::format::OutputFormat;
use tickrec::intern::Names;
use tickrec::shutdown::Shutdown;
use tickrec::store::archive::{seal_day, Sealed};
use tickrec::store::layout;
use tickrec::store::reader::{Store, Symbols};
use tickrec::tick::Timestamp;

use super::{ceiling_beside, median, write_all, BenchReport, Inputs, DAY0, RATIO_ROUNDS};

/// What the reader of (b) saw: queries done, `(rows, time, first row)` of each whole-hour
/// range, each `recent 100`'s time (µs).
#[derive(Default)]
struct Seen {
    done: u64,
    range: Vec<(u64, Duration, Duration)>,
    recent_us: Vec<f64>,
    /// The same on the reader thread's own CPU clock.
    recent_cpu_us: Vec<f64>,
}

/// (b) The writer while a reader queries the live day 50 times a second, in rounds (`--rounds`),
/// each run right after a ceiling run: the best run is kept, with its reader's timings, and held
/// against the best of those ceilings.
pub(super) fn writer_with_reader(
    opts: &Options,
    inputs: &Inputs<'_>,
    log: &mut dyn Write,
    r: &mut BenchReport,
) -> anyhow::Result<()> {
    let mut best: Option<(f64, Seen)> = None;
    let rounds = inputs.rounds_or(RATIO_ROUNDS);
    for round in 0..rounds {
        let ceiling = ceiling_beside(inputs, "the writer with the live-day reader", log)?;
        r.writer_with_queries_ceiling_ticks_per_s = r
            .writer_with_queries_ceiling_ticks_per_s
            .max(ceiling.ticks_per_s);
        writeln!(
            log,
            "(b) writer again, with a reader querying the live day (run {} of {rounds})…",
            round + 1
        )?;
        let (ticks_per_s, seen, wal_restart_s) = writer_with_reader_once(opts, inputs)?;
        writeln!(
            log,
            "    {ticks_per_s:.0} ticks/s, {} query pairs; the writer's WAL restarts took {wal_restart_s:.2} s",
            seen.done
        )?;
        r.writer_with_queries_vs_ceiling_rounds
            .push(ticks_per_s / ceiling.ticks_per_s);
        if best.as_ref().is_none_or(|b| ticks_per_s > b.0) {
            best = Some((ticks_per_s, seen));
        }
    }
    let Some((ticks_per_s, seen)) = best else {
        return Ok(());
    };
    r.queries_during_writes = seen.done;
    r.writer_ticks_per_s_with_queries = ticks_per_s;
    r.writer_with_queries_vs_ceiling = ticks_per_s / r.writer_with_queries_ceiling_ticks_per_s;
    r.writer_with_queries_vs_ceiling_paired = median(&r.writer_with_queries_vs_ceiling_rounds);
    let (rows, time) = seen.range.iter().fold((0, 0.0), |(n, t), (rows, took, _)| {
        (n + rows, t + took.as_secs_f64())
    });
    if time > 0.0 {
        r.live_range_writing_ticks_per_s = rows as f64 / time;
    }
    r.live_range_writing_queries = seen.range.len() as u64;
    let firsts: Vec<f64> = seen.range.iter().map(|q| q.2.as_secs_f64() * 1e3).collect();
    r.live_range_writing_first_row_ms = median(&firsts);
    r.live_recent100_writing_p50_us = median(&seen.recent_us);
    r.live_recent100_writing_cpu_p50_us = median(&seen.recent_cpu_us);
    Ok(())
}

/// One run of [`writer_with_reader`]: the writer's rate, what its reader saw, and the writer's
/// time in WAL restarts (s).
///
/// Long (~70 lines) on purpose: the reader thread and its timing live beside the run they measure.
fn writer_with_reader_once(
    opts: &Options,
    inputs: &Inputs<'_>,
) -> anyhow::Result<(f64, Seen, f64)> {
    let Inputs {
        dir,
        names,
        pipeline,
        writer_opts,
        input,
        ..
    } = *inputs;
    let base = dir.join("writer-queried");
    let stop = Shutdown::new();
    let reader = {
        let (store, stop, names) = (
            Store::new(&base, opts.writer.sqlite.clone()),
            stop.clone(),
            names.to_vec(),
        );
        std::thread::Builder::new()
            .name("live-reader".into())
            .spawn(move || {
                let mut seen = Seen::default();
                let mut i = 0usize;
                let (from, to) = (
                    Timestamp(DAY0 + 10 * 3_600_000_000_000),
                    Timestamp(DAY0 + 11 * 3_600_000_000_000),
                );
                // A busy desk's pace: 50 queries a second (one recent and one range each).
                // Unpaced, a reader takes a whole core of the two, and the figure would measure
                // that instead of what reading costs the writer.
                while !stop.wait_timeout(Duration::from_millis(20)) {
                    let sym = &names[i % names.len()];
                    i += 1;
                    // The day file appears with the first commit; until then there is nothing.
                    let (t, c0) = (
                        Instant::now(),
                        tickrec::procstat::thread_cpu().unwrap_or_default(),
                    );
                    let mut newest = None;
                    if store
                        .recent(sym, 100, &mut |r| {
                            newest.get_or_insert(r.ts_event);
                            Ok(())
                        })
                        .is_ok()
                    {
                        seen.recent_us.push(t.elapsed().as_secs_f64() * 1e6);
                        let cpu = tickrec::procstat::thread_cpu().unwrap_or_default();
                        seen.recent_cpu_us
                            .push(cpu.saturating_sub(c0).as_secs_f64() * 1e6);
                    }
                    let (t, mut rows, mut first) = (Instant::now(), 0u64, None);
                    let ranged = store.range(sym, from, to, &mut |_| {
                        first.get_or_insert_with(|| t.elapsed());
                        rows += 1;
                        Ok(())
                    });
                    // Timed once the symbol's hour is whole: the writer has passed its end.
                    if ranged.is_ok() && newest.is_some_and(|n| n >= to) {
                        seen.range
                            .push((rows, t.elapsed(), first.unwrap_or_default()));
                    }
                    seen.done += 1;
                }
                seen
            })?
    };
    let queried = Arc::new(Names::new(opts.pipeline.max_symbols.max(names.len())));
    for n in names {
        queried.symbol(n)?;
    }
    queried.source("SIM")?;
    let run = write_all(&base, &queried, pipeline, writer_opts, input)?;
    stop.request();
    let seen = reader.join().unwrap_or_default();
    let _ = std::fs::remove_dir_all(&base);
    Ok((run.ticks_per_s, seen, run.wal_restart_s()))
}

/// (d) Queries on the writer's day file under `base`: live first, then sealed, then the same
/// on the `sqlite3` shell.
///
/// Long (~105 lines) on purpose: the queries in the order they must run on one file (live, sealed,
/// indexed, then the shell).
pub(super) fn queries_stage(
    opts: &Options,
    ticks: usize,
    base: &Path,
    names: &[String],
    log: &mut dyn Write,
    r: &mut BenchReport,
) -> anyhow::Result<()> {
    let day = Timestamp(DAY0).day();
    writeln!(log, "(d) queries on the {}-tick day file…", ticks)?;
    let store = Store::new(base, opts.writer.sqlite.clone());
    let symbol_of = |i: usize| names[i % names.len()].as_str();
    // Printed as CSV, as the sqlite3 shell prints its rows.
    let recent_p50 = |store: &Store| -> anyhow::Result<f64> {
        let mut times = Vec::with_capacity(200);
        for i in 0..200 {
            let t = Instant::now();
            tickrec::query::recent(
                store,
                &Symbols::one(symbol_of(i)),
                100,
                OutputFormat::Csv,
                std::io::sink(),
            )?;
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    };
    r.recent100_live_p50_us = recent_p50(&store)?;
    r.live_recent100_p50_us = r.recent100_live_p50_us;
    // One hour (10:00-11:00) of every symbol on the live day (a few ms each: over 8 symbols
    // the figure moved by a third between runs): rows/s and the median first row.
    let hour = (
        Timestamp(DAY0 + 10 * 3_600_000_000_000),
        Timestamp(DAY0 + 11 * 3_600_000_000_000),
    );
    {
        let started = Instant::now();
        let (mut rows, mut first_ms) = (0u64, Vec::new());
        for i in 0..names.len() {
            let t = Instant::now();
            let mut first = None;
            store.range(symbol_of(i), hour.0, hour.1, &mut |_| {
                first.get_or_insert_with(|| t.elapsed());
                rows += 1;
                Ok(())
            })?;
            first_ms.push(first.unwrap_or_default().as_secs_f64() * 1e3);
        }
        r.live_range_ticks_per_s = rows as f64 / started.elapsed().as_secs_f64();
        r.live_range_first_row_ms = median(&first_ms);
    }
    let db = layout::day_path(base, day);
    r.bytes_per_tick = std::fs::metadata(&db)?.len() as f64 / ticks as f64;
    r.live_bytes_per_tick = r.bytes_per_tick;
    let (blocks, block_index) = tickrec::store::blockfile::paths(&db);
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    r.live_block_bytes_per_tick = (size(&blocks) + size(&block_index)) as f64 / ticks as f64;
    let started = Instant::now();
    match seal_day(base, day, &opts.writer.sqlite)? {
        Sealed::Done { .. } => {}
        Sealed::Skipped { why } => anyhow::bail!("could not seal the bench day: {why}"),
    }
    r.seal_seconds = started.elapsed().as_secs_f64();
    r.sealed_bytes_per_tick = std::fs::metadata(&db)?.len() as f64 / ticks as f64;
    // One hour (10:00-11:00) of each of 8 symbols, streamed as CSV.
    let (from, to) = (
        Timestamp(DAY0 + 10 * 3_600_000_000_000),
        Timestamp(DAY0 + 11 * 3_600_000_000_000),
    );
    let range_csv = |store: &Store| -> anyhow::Result<(u64, f64)> {
        let started = Instant::now();
        let mut rows = 0;
        for i in 0..8 {
            rows += tickrec::query::range(
                store,
                &Symbols::one(symbol_of(i)),
                from,
                to,
                OutputFormat::Csv,
                std::io::sink(),
            )?
            .rows;
        }
        Ok((rows, rows as f64 / started.elapsed().as_secs_f64()))
    };
    // Sealed: the directory serves the queries (no index).
    r.sealed_recent100_p50_us = recent_p50(&store)?;
    (_, r.sealed_range_ticks_per_s) = range_csv(&store)?;
    // The indexes a day from before the directory gets when sealed, for the comparison with the
    // sqlite3 shell on the same file: the shell has only indexes to seek with.
    rusqlite::Connection::open(&db)?.execute_batch(tickrec::store::archive::SEAL_SQL)?;
    r.indexed_bytes_per_tick = std::fs::metadata(&db)?.len() as f64 / ticks as f64;
    r.recent100_p50_us = recent_p50(&store)?;
    let rows;
    (rows, r.range_ticks_per_s) = range_csv(&store)?;
    r.range_rows = rows;
    // The sqlite3 shell on the same file, the equivalent SELECTs on the table.
    if let Some((recent, range)) = sqlite3_figures(&db, names, from.0 - DAY0, to.0 - DAY0, rows)? {
        r.recent100_sqlite3_p50_us = Some(recent);
        r.range_sqlite3_ticks_per_s = Some(range);
    } else {
        writeln!(log, "sqlite3 shell not found: no comparison")?;
    }
    Ok(())
}

/// (recent-100 µs per query, range ticks/s) of the `sqlite3` shell, or None without one.
/// Timed inside the shell: one process runs every query of a kind from a script, and the
/// same process with an empty script (start-up, opening the file) is measured apart and
/// subtracted (`.timer on` reports only milliseconds, too coarse for `recent 100`).
fn sqlite3_figures(
    db: &Path,
    names: &[String],
    lo: i64,
    hi: i64,
    rows: u64,
) -> anyhow::Result<Option<(f64, f64)>> {
    let shell = |script: &str| -> std::io::Result<Duration> {
        let t = Instant::now();
        let mut child = std::process::Command::new("sqlite3")
            .args(["-readonly", "-csv"])
            .arg(db)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(script.as_bytes())?;
        }
        if !child.wait()?.success() {
            return Err(std::io::Error::other("sqlite3 failed"));
        }
        Ok(t.elapsed())
    };
    // Start-up: the best of five empty runs (the schema is read by the first query too).
    let mut startup = Duration::MAX;
    for _ in 0..5 {
        match shell("SELECT count(*) FROM symbols;\n") {
            Ok(d) => startup = startup.min(d),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    let cols = "seq, sym, ts_event, ts_recv, bid, ask, bid_size, ask_size, src";
    let recent: String = (0..200)
        .map(|i| {
            let name = &names[i % names.len()];
            format!(
                "SELECT {cols} FROM ticks WHERE sym = (SELECT id FROM symbols WHERE name = '{name}') ORDER BY seq DESC LIMIT 100;\n"
            )
        })
        .collect();
    let recent_us = shell(&recent)?.saturating_sub(startup).as_secs_f64() * 1e6 / 200.0;
    let range: String = names
        .iter()
        .take(8)
        .map(|name| {
            format!(
                "SELECT {cols} FROM ticks INDEXED BY ticks_by_symbol_time WHERE sym = (SELECT id FROM symbols WHERE name = '{name}') \
                 AND ts_event >= {lo} AND ts_event < {hi} ORDER BY ts_event, seq;\n"
            )
        })
        .collect();
    let range_s = shell(&range)?.saturating_sub(startup).as_secs_f64();
    Ok(Some((recent_us, rows as f64 / range_s.max(1e-9))))
}
