//! Recording: `demo`, `record`, `simulate`, `ingest`.

use super::*;

pub(super) fn run_demo(opts: &Options, a: DemoArgs) -> anyhow::Result<ExitCode> {
    let shutdown = signal_latch()?;
    let opts = &with_publish(with_metrics(opts, &a.metrics), a.publish.as_deref())?;
    demo::run(
        opts,
        DemoOptions {
            seconds: a.seconds,
            symbols: a.symbols,
            rate: (a.rate > 0).then_some(a.rate),
            seed: a.seed,
        },
        &shutdown,
        std::io::stdout().lock(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `opts` with `--publish HOST:PORT` (when given) in place of `[publish] listen`.
fn with_publish(mut opts: Options, publish: Option<&str>) -> anyhow::Result<Options> {
    if let Some(addr) = publish {
        anyhow::ensure!(
            addr.parse::<std::net::SocketAddr>().is_ok(),
            "--publish: must be host:port with an IP address, got {addr:?}"
        );
        opts.publish_listen = Some(addr.to_owned());
    }
    Ok(opts)
}

pub(super) fn run_record(opts: &Options, a: RecordArgs) -> anyhow::Result<ExitCode> {
    let shutdown = signal_latch()?;
    let mut sessions = opts.fix_sessions.clone();
    if let Some(connect) = a.connect {
        sessions = vec![tickrec::config::session_from_flags(
            tickrec::config::SessionFlags {
                connect,
                sender_comp_id: a.sender_comp_id.unwrap_or_default(),
                target_comp_id: a.target_comp_id.unwrap_or_default(),
                symbols: a.symbols.unwrap_or_default(),
                heartbeat_secs: a.heartbeat,
                source: a.source,
                password_env: a.password_env,
                reset_on_logon: a.reset_on_logon,
            },
            &opts.db_path,
        )?];
    }
    anyhow::ensure!(
        !sessions.is_empty(),
        "no FIX session: give --connect/--sender-comp-id/--target-comp-id/--symbols, or [[fix.sessions]] in --config"
    );
    let opts = &with_publish(with_metrics(opts, &a.metrics), a.publish.as_deref())?;
    let report = tickrec::record::run(
        opts,
        sessions,
        &shutdown,
        Duration::from_secs(a.report_every.max(1)),
    )?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", report.stats)?;
    for s in &report.sessions {
        writeln!(out, "{s}")?;
    }
    write_accounting(&mut out, &report.stats)?;
    let complete = all_stored(&report.stats);
    if !complete {
        for (source, next) in &report.resume {
            match next {
                Some(n) => writeln!(
                    out,
                    "session {source}: committed through inbound MsgSeqNum {}; the next start requests {n} onwards from the counterparty (re-ingest a spill file only for what it cannot resend)",
                    n.saturating_sub(1)
                )?,
                None => writeln!(
                    out,
                    "session {source}: nothing committed; the next start requests from the counterparty's first message"
                )?,
            }
        }
    }
    let never: Vec<&str> = report
        .sessions
        .iter()
        .filter(|s| s.logons == 0)
        .map(|s| s.name.as_str())
        .collect();
    if !never.is_empty() {
        eprintln!(
            "tickrec: session(s) that never logged on: {}",
            never.join(", ")
        );
    }
    Ok(if complete && never.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub(super) fn run_simulate(a: SimulateArgs) -> anyhow::Result<ExitCode> {
    let shutdown = signal_latch()?;
    let listener = std::net::TcpListener::bind((a.bind.as_str(), a.port))
        .with_context(|| format!("listening on {}:{}", a.bind, a.port))?;
    tracing::info!(addr = %listener.local_addr()?, "FIX simulator listening");
    let report = tickrec::fix::sim::run(
        listener,
        tickrec::fix::sim::SimOptions {
            symbols: a.symbols.max(1),
            rate: (a.rate > 0).then_some(a.rate),
            duration: a.seconds.map(|s| Duration::from_secs_f64(s.max(0.0))),
            sender_comp_id: a.sender_comp_id,
            target_comp_id: a.target_comp_id.unwrap_or_default(),
            reset_on_logon: a.reset_on_logon,
            time_precision: tickrec::fix::encode::TimePrecision::from_digits(a.timestamp_precision)
                .unwrap_or_default(),
            seed: a.seed,
            journal: a.journal,
            drop_after: a.drop_after,
            outage_messages: a.outage_messages,
            ..tickrec::fix::sim::SimOptions::default()
        },
        shutdown,
    )?;
    println!(
        "connections {} market-data messages {} ticks implied {} rejects {}",
        report.connections, report.md_messages, report.ticks_implied, report.rejects_sent
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads on its own thread so that a signal is honoured even while the input is idle: the main
/// thread waits for "input finished" or "signal", then shuts the recorder down (which drains).
///
/// Long (~115 lines) on purpose: the life of one ingest run in order (start, reader thread, wait,
/// drain, report), all of it sharing the recorder and the exit code.
pub(super) fn run_ingest(opts: &Options, a: IngestArgs) -> anyhow::Result<ExitCode> {
    let shutdown = signal_latch()?;
    let opts = &with_metrics(opts, &a.metrics);
    let recorder = std::sync::Arc::new(service::start_recorder(opts)?);
    let _metrics = match &opts.metrics_listen {
        Some(addr) => {
            let r = recorder.clone();
            Some(tickrec::metrics::Server::start(
                addr,
                std::sync::Arc::new(move || tickrec::metrics::Scrape::of_recorder("ingest", &r)),
                opts.metrics_token.clone(),
            )?)
        }
        None => None,
    };
    let default_source = recorder.names().source(&opts.broker_id)?;
    let file = (a.file != "-").then(|| std::path::Path::new(&a.file));
    let origin = match tickrec::ingest::origin_name(file, a.source_id.as_deref())
        .with_context(|| format!("reading {}", a.file))?
    {
        Some(name) => {
            let committed = if a.force {
                0
            } else {
                service::open_store(opts)
                    .next_position(&name)?
                    .map_or(0, |next| next.saturating_sub(1))
            };
            if committed > 0 {
                tracing::info!(origin = %name, committed, "resuming after the lines already committed");
            }
            Some(tickrec::ingest::Origin {
                id: recorder.names().origin(&name)?,
                committed_through: committed,
            })
        }
        None => None,
    };
    let input: Box<dyn BufRead + Send> = if a.file == "-" {
        Box::new(std::io::BufReader::with_capacity(1 << 16, std::io::stdin()))
    } else {
        let f = std::fs::File::open(&a.file).with_context(|| format!("opening {}", a.file))?;
        Box::new(std::io::BufReader::with_capacity(1 << 16, f))
    };
    // The reader reports on a channel of its own, so that "input finished" and "signal" are
    // never confused: a signal only sets the stop flag the reader checks between records.
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    {
        let recorder = recorder.clone();
        let shutdown = shutdown.clone();
        let name = a.file.clone();
        let format = a.format;
        std::thread::Builder::new()
            .name("tickrec-ingest".into())
            .spawn(move || {
                let feeder = Feeder {
                    recorder: &recorder,
                    clock: &SystemClock,
                    default_source,
                    stop: shutdown.flag(),
                    origin,
                };
                let mut reject = |r: tickrec::ingest::Rejection| eprintln!("{name}: {r}");
                let _ = done_tx.send(feeder.run(format, input, &mut reject));
            })?;
    }
    let finished = loop {
        match done_rx.recv_timeout(Duration::from_millis(100)) {
            Ok(result) => break Some(result),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                anyhow::bail!("the ingest thread panicked")
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) if shutdown.is_requested() => {
                // Signalled: the reader stops at its next record; if it is blocked on idle
                // input it never gets there, and what it accepted is drained all the same.
                break done_rx.recv_timeout(Duration::from_millis(500)).ok();
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
        }
    };
    let stats = recorder.shutdown();
    let report = finished.transpose()?;
    let mut out = std::io::stdout().lock();
    if let Some(r) = &report {
        writeln!(
            out,
            "records {} accepted {} rejected {} throttled {} dropped {} already-stored {}{}",
            r.records,
            r.accepted,
            r.rejected,
            r.throttled,
            r.dropped,
            r.already,
            if r.interrupted { " (interrupted)" } else { "" }
        )?;
    } else {
        writeln!(out, "interrupted while waiting for input")?;
    }
    writeln!(out, "{stats}")?;
    write_accounting(&mut out, &stats)?;
    if stats.ticks_spilled > 0 && origin.is_some() {
        // The input itself is the better copy: its committed position is durable.
        writeln!(
            out,
            "re-run `tickrec ingest {}{}` once the store can write: it resumes after the committed lines and stores the spilled ones; do not also ingest the spill file",
            a.file,
            a.source_id.as_deref().map(|s| format!(" --source-id {s}")).unwrap_or_default()
        )?;
    }
    let rejected = report.map_or(0, |r| r.rejected);
    Ok(if rejected > 0 || !all_stored(&stats) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
