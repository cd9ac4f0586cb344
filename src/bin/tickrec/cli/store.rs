//! Day files: `check`, `archive`, `seal`, `upgrade`.

use super::*;

pub(super) fn run_check(opts: &Options, repair: bool) -> anyhow::Result<ExitCode> {
    use tickrec::store::check;
    let days = tickrec::store::layout::list_days(&opts.db_path)
        .with_context(|| format!("listing {}", opts.db_path.display()))?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut out = std::io::stdout().lock();
    let (mut broken, mut unresolved, mut unchecked) = (0, 0, 0);
    for d in &days {
        // The day as checked: in its new form if it was archived or restored meanwhile.
        let (d, c) = check::check_day(&opts.db_path, d, &opts.writer.sqlite);
        let d = &d;
        let form = if d.archived { " (archive)" } else { "" };
        if c.ok() {
            writeln!(out, "{}: ok{form}, {} ticks", d.day, c.ticks.unwrap_or(0))?;
            continue;
        }
        if c.problems.is_empty() {
            // Nothing shown wrong with the file: never moved aside, whatever `--repair` says.
            unchecked += 1;
            writeln!(
                out,
                "{}: NOT CHECKED{form}: {} ({}); nothing is shown wrong with the file, it is left as it is",
                d.day,
                c.unchecked.as_deref().unwrap_or("?"),
                d.path.display()
            )?;
            continue;
        }
        broken += 1;
        writeln!(
            out,
            "{}: BROKEN{form}: {} ({})",
            d.day,
            c.problems.join("; "),
            d.path.display()
        )?;
        if !repair {
            unresolved += 1;
            continue;
        }
        match check::repair_day(&opts.db_path, d, &opts.writer.sqlite, &stamp) {
            Ok(r) if r.salvaged == 0 => {
                unresolved += 1;
                writeln!(
                    out,
                    "  moved to {}; nothing in it could be read back as ticks, so no day file was made",
                    r.moved_to.display()
                )?;
            }
            Ok(r) => {
                let claimed = r.claimed.map_or("?".into(), |c| c.to_string());
                writeln!(
                    out,
                    "  moved to {}; salvaged {} of {claimed} ticks into a fresh day file; session and import marks {}",
                    r.moved_to.display(),
                    r.salvaged,
                    if r.marks_kept { "kept" } else { "dropped (ticks were lost: re-feed the day to fill it)" }
                )?;
                if !r.marks_kept {
                    unresolved += 1;
                }
            }
            Err(e) => {
                unresolved += 1;
                writeln!(out, "  not repaired: {e}")?;
            }
        }
    }
    writeln!(
        out,
        "check: {} days, {broken} broken{}{}",
        days.len(),
        if repair {
            format!(", {unresolved} not fully recovered")
        } else {
            String::new()
        },
        if unchecked > 0 {
            format!(", {unchecked} not checked (free space, fix permissions or upgrade, then check again)")
        } else {
            String::new()
        }
    )?;
    Ok(if unresolved + unchecked > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub(super) fn run_archive(opts: &Options, a: ArchiveArgs) -> anyhow::Result<ExitCode> {
    use tickrec::clock::Clock;
    use tickrec::store::archive::{self, Outcome};
    let today = tickrec::clock::SystemClock.now().day();
    let days = tickrec::store::layout::list_days(&opts.db_path)
        .with_context(|| format!("listing {}", opts.db_path.display()))?;
    let due = archive::closed_days_at_least(&days, today, a.older_than);
    let bar = indicatif::ProgressBar::new(due.len() as u64);
    let mut out = std::io::stdout().lock();
    let (mut archived, mut skipped, mut failed) = (0, 0, 0);
    let (mut raw_total, mut zst_total) = (0u64, 0u64);
    for d in due {
        match archive::archive_day(
            &opts.db_path,
            d.day,
            a.format,
            a.level,
            &opts.writer.sqlite,
            a.dry_run,
        ) {
            Ok(Outcome::Archived {
                summary,
                archive_bytes,
            }) => {
                archived += 1;
                raw_total += summary.raw_bytes;
                zst_total += archive_bytes;
                let per_tick = |b: u64| b as f64 / summary.ticks.max(1) as f64;
                bar.suspend(|| {
                    writeln!(
                        out,
                        "archived {}: {} ticks, {} -> {} bytes ({:.1}x), {:.1} -> {:.1} bytes/tick",
                        d.day,
                        summary.ticks,
                        summary.raw_bytes,
                        archive_bytes,
                        summary.raw_bytes as f64 / archive_bytes.max(1) as f64,
                        per_tick(summary.raw_bytes),
                        per_tick(archive_bytes)
                    )
                })?;
            }
            Ok(Outcome::Skipped { day, why }) => {
                skipped += 1;
                bar.suspend(|| writeln!(out, "skipped {day}: {why}"))?;
            }
            Err(e) => {
                failed += 1;
                let why = tickrec::store::reader::describe(&d.path, &e);
                bar.suspend(|| {
                    eprintln!("tickrec: skipped {}: {why} ({})", d.day, d.path.display())
                });
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    writeln!(
        out,
        "archive: {archived} archived, {skipped} skipped, {failed} failed; {raw_total} -> {zst_total} bytes{}",
        if zst_total > 0 {
            format!(" ({:.1}x)", raw_total as f64 / zst_total as f64)
        } else {
            String::new()
        }
    )?;
    if let Some(keep) = a.delete_older_than {
        delete_expired(opts, &a, today, keep, &mut out)?;
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Retention: the days (plain or archived) older than `keep` days, deleted after a
/// confirmation (`--yes`), or listed on a dry run.
fn delete_expired(
    opts: &Options,
    a: &ArchiveArgs,
    today: chrono::NaiveDate,
    keep: u32,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    use tickrec::store::archive;
    let all = tickrec::store::layout::list_days(&opts.db_path)?;
    let expired = archive::expired(&all, today, keep);
    if !expired.is_empty() {
        if a.dry_run {
            for d in &expired {
                writeln!(out, "would delete {} ({})", d.day, d.path.display())?;
            }
        } else {
            if !a.yes
                && !confirm(&format!(
                    "delete {} day(s) older than {keep} days?",
                    expired.len()
                ))?
            {
                anyhow::bail!(
                    "refusing to delete {} day(s) without confirmation: add --yes",
                    expired.len()
                );
            }
            for d in &expired {
                archive::delete_day(&opts.db_path, d.day)?;
                writeln!(out, "deleted {}", d.day)?;
            }
        }
    }
    Ok(())
}

pub(super) fn run_seal(opts: &Options, older_than: u32) -> anyhow::Result<ExitCode> {
    use tickrec::clock::Clock;
    use tickrec::store::archive::{seal_day, Sealed};
    let today = tickrec::clock::SystemClock.now().day();
    let days = tickrec::store::layout::list_days(&opts.db_path)?;
    let mut failed = 0;
    for d in &tickrec::store::archive::closed_days_at_least(&days, today, older_than) {
        let started = std::time::Instant::now();
        match seal_day(&opts.db_path, d.day, &opts.writer.sqlite) {
            Ok(Sealed::Done {
                ticks,
                covered,
                scanned,
                bytes_before,
                bytes_after,
            }) => println!(
                "sealed {}: {ticks} ticks in {:.2}s, {bytes_before} -> {bytes_after} bytes ({})",
                d.day,
                started.elapsed().as_secs_f64(),
                if scanned {
                    "from before the query directory and too small for one to pay: read by scanning"
                        .into()
                } else if covered > 0 {
                    format!("the query directory now names {covered} ticks it did not")
                } else {
                    "the query directory serves it".into()
                }
            ),
            Ok(Sealed::Skipped { why }) => println!("skipped {}: {why}", d.day),
            Err(e) => {
                failed += 1;
                let why = tickrec::store::reader::describe(&d.path, &e);
                eprintln!("tickrec: skipped {}: {why} ({})", d.day, d.path.display());
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub(super) fn run_upgrade(opts: &Options) -> anyhow::Result<ExitCode> {
    let days = tickrec::store::layout::list_days(&opts.db_path)
        .with_context(|| format!("listing {}", opts.db_path.display()))?;
    // Archived days are upgraded when restored (`tickrec unarchive`).
    for d in days.iter().filter(|d| !d.archived) {
        tickrec::store::schema::open_for_write(&d.path, d.day, &opts.writer.sqlite)?;
    }
    println!(
        "{} day files at schema version {}",
        days.len(),
        tickrec::store::schema::SCHEMA_VERSION
    );
    Ok(ExitCode::SUCCESS)
}
