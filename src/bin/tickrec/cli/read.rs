//! Reading: `query`, `tail`, `export`.

use super::*;

pub(super) fn run_query(opts: &Options, q: QueryCommand) -> anyhow::Result<ExitCode> {
    let store = service::open_store(opts);
    let out = std::io::stdout().lock();
    let read = match q {
        QueryCommand::Recent { symbols, n, format } => {
            query::recent(&store, &symbols.parse()?, n, format, out)?
        }
        QueryCommand::Range {
            symbols,
            from,
            to,
            format,
        } => {
            let (from, to) = time_window(&from, &to)?;
            query::range(&store, &symbols.parse()?, from, to, format, out)?
        }
        QueryCommand::Bars {
            symbol,
            interval,
            from,
            to,
            price,
            format,
        } => {
            let (from, to) = time_window(&from, &to)?;
            query::bars(&store, &symbol, interval, price, from, to, format, out)?
        }
    };
    if !read.unknown.is_empty() {
        eprintln!(
            "tickrec: no such symbol {} in {}",
            read.unknown.join(", "),
            query::describe_days(&read.days)
        );
        return Ok(ExitCode::from(1));
    }
    Ok(report_broken(&read.broken))
}

/// Names a tail asks for that the newest day file has no tick of (a typo, or the wrong case:
/// names are case-sensitive) are said on stderr; the tail goes on (a symbol may come later).
fn warn_unknown_symbols(
    store: &tickrec::store::reader::Store,
    symbols: &tickrec::store::reader::Symbols,
) {
    let Ok(days) = store.days() else { return };
    let Some(newest) = days.last() else { return };
    if let Ok(unknown) = store.unknown_symbols(newest, symbols) {
        if !unknown.is_empty() {
            eprintln!(
                "tail: no tick of {} in the newest day file ({}; names are case-sensitive)",
                unknown.join(", "),
                newest.day
            );
        }
    }
}

pub(super) fn run_tail(opts: &Options, a: TailArgs) -> anyhow::Result<ExitCode> {
    use tickrec::tail::{Cursor, Start, Tail};
    // Before any thread starts (a thread's scheduling policy is its own; the threads it starts
    // take it).
    if a.priority == super::TailPriority::Idle {
        if let Err(e) = tickrec::tail::idle_priority() {
            tracing::warn!(error = %e, "tail: could not take the idle CPU priority; it runs at the one it was given");
        }
    }
    anyhow::ensure!(
        a.format != OutputFormat::Table,
        "--format: tail prints csv or jsonl (a table is aligned only once it is complete)"
    );
    let symbols = tickrec::store::reader::Symbols::parse(&a.symbols)
        .map_err(|e| anyhow::anyhow!("--symbols: {e}"))?;
    let saved = match &a.cursor_file {
        Some(f) if f.exists() => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("--cursor-file {}", f.display()))?
                .parse::<Cursor>()
                .map_err(|e| anyhow::anyhow!("--cursor-file {}: {e}", f.display()))?,
        ),
        _ => None,
    };
    let start = if let Some(c) = &a.from {
        Start::After(c.parse().map_err(|e| anyhow::anyhow!("--from: {e}"))?)
    } else if let Some(t) = &a.from_time {
        Start::Time(Timestamp::parse(t).context("--from-time")?)
    } else if a.from_now {
        Start::Now
    } else if let Some(c) = saved {
        Start::After(c)
    } else {
        Start::NewestDay
    };
    let store = service::open_store(opts);
    warn_unknown_symbols(&store, &symbols);
    let mut tail = Tail::new(store, symbols, start)?;
    if let Some(n) = a.max_ticks {
        tail = tail.limit(n);
    }
    let stop = tickrec::shutdown::Shutdown::new();
    if a.follow {
        stop.install_signal_handler()?;
    }
    let stdout = std::io::stdout();
    let out = std::cell::RefCell::new(tickrec::format::row_writer(
        a.format,
        std::io::BufWriter::new(stdout.lock()),
    ));
    let cursor_file = a.cursor_file.clone();
    let mut rows = |r: &tickrec::tick::TickRow| out.borrow_mut().write_row(r);
    // After each batch: the rows flushed first, then the cursor saved.
    let mut batch = |c: &Cursor| -> std::io::Result<()> {
        out.borrow_mut().finish()?;
        if let Some(f) = &cursor_file {
            tickrec::fsutil::write_atomic(f, |file| {
                use std::io::Write;
                writeln!(file, "{c}")
            })
            .map_err(|e| {
                // The rows are out, their cursor is not saved: a restart from the saved one
                // prints them again. Said with the file, so the operator knows which.
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "saving the cursor {c} to --cursor-file {}: {e}",
                        f.display()
                    ),
                )
            })?;
        }
        Ok(())
    };
    let result = if a.follow {
        tail.follow(&stop, &mut rows, &mut batch)
    } else {
        tail.poll(&mut rows, &mut batch)
    };
    let flushed = out.borrow_mut().finish();
    let passed = match result {
        Ok(n) => n,
        // The consumer went away (`| head`): not an error of ours.
        Err(tickrec::store::reader::ReadError::Output(e))
            if e.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            return Ok(ExitCode::SUCCESS)
        }
        Err(e) => return Err(e.into()),
    };
    flushed?;
    eprintln!("tail: {passed} ticks; cursor {}", tail.cursor());
    Ok(ExitCode::SUCCESS)
}

pub(super) fn run_export(opts: &Options, a: ExportArgs) -> anyhow::Result<ExitCode> {
    let store = service::open_store(opts);
    let (from, to) = time_window(&a.from, &a.to)?;
    let symbols = tickrec::store::reader::Symbols::parse(&a.symbols)
        .map_err(|e| anyhow::anyhow!("--symbols: {e}"))?;
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} days {msg} (ETA {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = tickrec::export::run(
        &store,
        &tickrec::export::ExportOptions {
            from,
            to,
            symbols,
            format: a.format,
            out: a.out.clone(),
            overwrite: a.overwrite,
            bars: a.bars.map(|i| (i, a.price)),
        },
        &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    println!(
        "exported {} {} into {} file(s), {} bytes, under {}; {} partition(s) already there, skipped",
        report.rows,
        if a.bars.is_some() { "bars" } else { "rows" },
        report.written.len(),
        report.bytes,
        a.out.display(),
        report.skipped.len()
    );
    if !report.unknown.is_empty() {
        eprintln!(
            "tickrec: no such symbol {} in the exported days",
            report.unknown.join(", ")
        );
        return Ok(ExitCode::from(1));
    }
    Ok(report_broken(&report.broken))
}
