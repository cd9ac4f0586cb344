//! The legacy JSON world: `migrate`, `verify`.

use super::*;

/// Progress and rejected records of a migration, on stderr.
struct CliProgress {
    bar: indicatif::ProgressBar,
    verbose: bool,
    started: std::time::Instant,
    /// What /metrics shows of the run.
    counts: std::sync::Arc<MigrateCounts>,
}

/// A migration's progress as /metrics shows it.
#[derive(Debug, Default)]
struct MigrateCounts {
    bytes_done: std::sync::atomic::AtomicU64,
    bytes_total: std::sync::atomic::AtomicU64,
    ticks: std::sync::atomic::AtomicU64,
    rejected: std::sync::atomic::AtomicU64,
    files: std::sync::atomic::AtomicU64,
}

impl MigrateCounts {
    fn scrape(&self) -> tickrec::metrics::Scrape {
        use std::sync::atomic::Ordering::Relaxed;
        let ticks = self.ticks.load(Relaxed);
        let stats = tickrec::pipeline::StatsSnapshot {
            ticks_received: ticks + self.rejected.load(Relaxed),
            ticks_accepted: ticks,
            ticks_stored: ticks,
            healthy: true,
            ..Default::default()
        };
        let mut s = tickrec::metrics::Scrape::new("migrate", stats);
        s.extra = vec![
            (
                "tickrec_migrate_input_read_bytes_total",
                "Input bytes processed.",
                true,
                self.bytes_done.load(Relaxed) as f64,
            ),
            (
                "tickrec_migrate_input_bytes",
                "Input bytes in all.",
                false,
                self.bytes_total.load(Relaxed) as f64,
            ),
            (
                "tickrec_migrate_ticks_imported_total",
                "Ticks imported (committed) so far.",
                true,
                ticks as f64,
            ),
            (
                "tickrec_migrate_records_rejected_total",
                "Records rejected (each named on stderr).",
                true,
                self.rejected.load(Relaxed) as f64,
            ),
            (
                "tickrec_migrate_files_done_total",
                "Input files finished.",
                true,
                self.files.load(Relaxed) as f64,
            ),
        ];
        s
    }
}

impl tickrec::migrate::Progress for CliProgress {
    fn reject(&mut self, file: &str, at: tickrec::legacy_json::Location, why: &str) {
        self.counts
            .rejected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.bar
            .suspend(|| eprintln!("{file}: line {} (byte {}): {why}", at.line, at.offset));
    }

    fn advance(&mut self, done: u64, total: u64, ticks: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.counts.bytes_done.store(done, Relaxed);
        self.counts.bytes_total.store(total, Relaxed);
        self.counts.ticks.store(ticks, Relaxed);
        self.bar.set_length(total);
        self.bar.set_position(done);
        let rate = ticks as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        self.bar
            .set_message(format!("{ticks} ticks, {rate:.0} ticks/s"));
    }

    fn file_done(&mut self, r: &tickrec::migrate::FileReport) {
        self.counts
            .files
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.verbose {
            self.bar.suspend(|| {
                if r.unchanged {
                    println!("{}: unchanged since its import, skipped", r.file);
                } else {
                    println!(
                        "{}: {} imported, {} already present, {} rejected",
                        r.file, r.imported, r.already, r.rejected
                    );
                }
            });
        }
    }
}

pub(super) fn run_migrate(opts: &Options, a: MigrateArgs) -> anyhow::Result<ExitCode> {
    let output_dir = a.output_dir.clone().unwrap_or_else(|| opts.db_path.clone());
    anyhow::ensure!(a.batch_size > 0, "--batch-size must be at least 1");
    if !a.dry_run || output_dir.exists() {
        tickrec::store::layout::check_base(&output_dir, !a.dry_run)?;
    }
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {msg} (ETA {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let counts = std::sync::Arc::new(MigrateCounts::default());
    let opts = &with_metrics(opts, &a.metrics);
    let _metrics = match &opts.metrics_listen {
        Some(addr) => {
            let c = counts.clone();
            Some(tickrec::metrics::Server::start(
                addr,
                std::sync::Arc::new(move || c.scrape()),
                opts.metrics_token.clone(),
            )?)
        }
        None => None,
    };
    let mut progress = CliProgress {
        bar,
        verbose: a.verbose,
        started: std::time::Instant::now(),
        counts,
    };
    let report = tickrec::migrate::run(
        &tickrec::migrate::MigrateOptions {
            input_dir: a.input_dir.clone(),
            output_dir: output_dir.clone(),
            batch_size: a.batch_size,
            dry_run: a.dry_run,
            default_source: opts.broker_id.clone(),
            writer: opts.writer.clone(),
            time_window: opts.pipeline.time_window,
            max_record_bytes: (a.max_record_kib * 1024) as usize,
        },
        &mut progress,
    )?;
    progress.bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    print_report(&mut out, &report, a.dry_run)?;
    let incomplete = report.rejected() > 0 || report.not_imported() > 0;
    if a.archive_json && !a.dry_run {
        archive_originals(opts, &a, &output_dir, &report, &mut out)?;
    }
    Ok(if incomplete {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// What was skipped and refused, the totals, ticks per day, peak memory.
fn print_report(
    out: &mut dyn Write,
    report: &tickrec::migrate::MigrateReport,
    dry_run: bool,
) -> std::io::Result<()> {
    let unchanged = report.files.iter().filter(|f| f.unchanged).count();
    for (path, why) in &report.skipped {
        writeln!(out, "skipped {path}: {why}")?;
    }
    for f in &report.files {
        if let Some(why) = &f.refused {
            writeln!(out, "not imported {}: {why}", f.file)?;
        }
    }
    let imported = if dry_run {
        format!("would import {} ticks", report.imported())
    } else {
        format!("ticks imported {}", report.imported())
    };
    writeln!(
        out,
        "{}files {} ({} unchanged since their import, {} not imported), {imported}, already present {}, rejected {}, {} bytes in {:.2}s ({:.0} ticks/s)",
        if dry_run { "dry run: " } else { "" },
        report.files.len(),
        unchanged,
        report.not_imported(),
        report.already(),
        report.rejected(),
        report.bytes(),
        report.elapsed.as_secs_f64(),
        report.imported() as f64 / report.elapsed.as_secs_f64().max(1e-9),
    )?;
    for (day, n) in &report.per_day {
        writeln!(out, "  {day}: {n} ticks")?;
    }
    if let Some(peak) = tickrec::procstat::peak_rss_bytes() {
        writeln!(out, "peak memory {:.1} MiB", peak as f64 / (1 << 20) as f64)?;
    }
    Ok(())
}

/// `--archive-json`: the originals go into `<input>.tar.zst`, and away, only when every
/// record of every file is in the store (or `--allow-rejects`) and verification finds no
/// difference.
fn archive_originals(
    opts: &Options,
    a: &MigrateArgs,
    output_dir: &std::path::Path,
    report: &tickrec::migrate::MigrateReport,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let incomplete = report.rejected() > 0 || report.not_imported() > 0;
    // The originals go only when every record of every file is in the store.
    if incomplete && !a.allow_rejects {
        anyhow::bail!(
            "not archiving {}: {} records rejected and {} paths not imported (listed above); the originals are untouched (--allow-rejects archives anyway)",
            a.input_dir.display(),
            report.rejected(),
            report.not_imported()
        );
    }
    let store = tickrec::store::reader::Store::new(output_dir, opts.writer.sqlite.clone());
    let check = tickrec::verify::verify(
        &a.input_dir,
        &store,
        &opts.broker_id,
        tickrec::verify::Scope::JsonTree,
        (a.max_record_kib * 1024) as usize,
        &mut |_, _, _| {},
    )?;
    if !check.differences.is_empty() {
        for d in &check.differences {
            writeln!(out, "differs: {d}")?;
        }
        anyhow::bail!(
            "not archiving {}: verification found {} differences; the originals are untouched",
            a.input_dir.display(),
            check.differences.len()
        );
    }
    let name = a
        .input_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "json".into());
    let dest = a
        .input_dir
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join(format!("{name}.tar.zst"));
    let r = tickrec::json_archive::archive_tree(&a.input_dir, &dest, a.level, true)?;
    if incomplete {
        writeln!(
            out,
            "archived with --allow-rejects: {} rejected records and {} paths not imported are not in the store",
            report.rejected(),
            report.not_imported()
        )?;
    }
    writeln!(
        out,
        "verified ({} symbol-days) and archived {} files into {} ({} -> {} bytes, {:.1}x); originals removed",
        check.compared,
        r.files,
        r.archive.display(),
        r.original_bytes,
        r.archive_bytes,
        r.original_bytes as f64 / r.archive_bytes.max(1) as f64
    )?;
    Ok(())
}

pub(super) fn run_verify(opts: &Options, a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let store = service::open_store(opts);
    let report = tickrec::verify::verify(
        &a.json_dir,
        &store,
        &opts.broker_id,
        if a.all {
            tickrec::verify::Scope::All
        } else {
            tickrec::verify::Scope::JsonTree
        },
        (a.max_record_kib * 1024) as usize,
        &mut |file, at, why| {
            eprintln!(
                "{file}: line {} (byte {}): {why} (not comparable)",
                at.line, at.offset
            )
        },
    )?;
    let mut out = std::io::stdout().lock();
    for d in &report.differences {
        writeln!(out, "{d}")?;
    }
    writeln!(
        out,
        "compared {} symbol-days{}: {} differ; {} JSON records could not be read (each a difference: it cannot be in the store)",
        report.compared,
        if a.all { " (all)" } else { " (those in the JSON tree)" },
        report.differences.len(),
        report.json_rejected
    )?;
    if let Some(peak) = tickrec::procstat::peak_rss_bytes() {
        writeln!(out, "peak memory {:.1} MiB", peak as f64 / (1 << 20) as f64)?;
    }
    Ok(
        if report.differences.is_empty() && report.json_rejected == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}
