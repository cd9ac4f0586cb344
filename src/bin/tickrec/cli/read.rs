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
/// names are case-sensitive; a typo's ticks would never come), found by `unknown` and said on
/// stderr with `what` they are ("of" symbols, "from source"); the tail goes on (a name may
/// come later).
fn warn_unknown(
    store: &tickrec::store::reader::Store,
    what: &str,
    unknown: impl FnOnce(
        &tickrec::store::layout::DayFile,
    ) -> Result<Vec<String>, tickrec::store::reader::ReadError>,
) {
    let Ok(days) = store.days() else { return };
    let Some(newest) = days.last() else { return };
    if let Ok(unknown) = unknown(newest) {
        if !unknown.is_empty() {
            eprintln!(
                "tail: no tick {what} {} in the newest day file ({}; names are case-sensitive)",
                unknown.join(", "),
                newest.day
            );
        }
    }
}

/// Set in the environment of a tail that [`in_own_session`] started: it does not start another.
const OWN_SESSION_ENV: &str = "TICKREC_TAIL_OWN_SESSION";

/// Leaves the recorder the CPU (see `tickrec::priority`): `SCHED_IDLE`, and a group that weighs
/// next to nothing against the recorder's. `Some(exit code)` when this process has run the tail
/// in a child that leads a session of its own instead: its session is shared (with a shell, a
/// script) and no writer of `store`'s newest day is in it. Beside a writer in the same session
/// (or cgroup), the group is theirs, and `SCHED_IDLE` alone yields to it at once.
fn yield_cpu(store: &tickrec::store::reader::Store) -> anyhow::Result<Option<ExitCode>> {
    use tickrec::priority::{self, CpuGroup};
    match priority::cpu_group() {
        CpuGroup::One | CpuGroup::Cgroup { idle: true, .. } => {}
        CpuGroup::OwnSession => {
            if let Err(e) = priority::lower_own_session() {
                tracing::warn!(error = %e, "tail: could not lower its session's CPU weight: beside a recorder in another session, it competes with it at full weight");
            }
        }
        CpuGroup::SharedSession if writers(store).any(tickrec::priority::in_my_session) => {}
        CpuGroup::SharedSession if std::env::var_os(OWN_SESSION_ENV).is_none() => {
            return in_own_session().map(Some);
        }
        CpuGroup::SharedSession => {
            tracing::warn!("tail: could not lead a session of its own: beside a recorder in another session, it competes with it at its shell's weight");
        }
        CpuGroup::Cgroup { idle: false, .. }
            if writers(store).any(tickrec::priority::in_my_cgroup) => {}
        CpuGroup::Cgroup { path, idle: false } => {
            tracing::warn!(cgroup = %path, "tail: the kernel weighs this process's CPU in its cgroup against the recorder's, and SCHED_IDLE yields only within it: the tail steps aside while the recorder waits for a CPU, but to leave it only idle time, unless the recorder runs in the same cgroup, start the tail in one marked idle (systemd-run --scope -p CPUWeight=idle tickrec tail …)");
        }
    }
    if let Err(e) = priority::idle_priority() {
        tracing::warn!(error = %e, "tail: could not take the idle CPU priority; it runs at the one it was given");
    }
    Ok(None)
}

/// The processes that write the newest day of `store` (they hold the day's lock).
fn writers(store: &tickrec::store::reader::Store) -> impl Iterator<Item = libc::pid_t> {
    let newest = store.days().ok().and_then(|d| d.last().map(|d| d.day));
    newest
        .map(|day| {
            let lock = tickrec::store::layout::lock_path(store.base(), day);
            tickrec::priority::flock_holders(&lock)
        })
        .unwrap_or_default()
        .into_iter()
}

/// The child [`in_own_session`] runs the tail in, for [`pass_stop_and_continue`].
static READER: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// SIGTSTP: stops the child, then this process, as the terminal asked; SIGCONT: lets the child
/// go on with it. (With no child known, only this process stops: `kill(0, …)` would signal
/// the whole process group.)
extern "C" fn pass_stop_and_continue(signal: libc::c_int) {
    let reader = READER.load(std::sync::atomic::Ordering::Relaxed);
    // SAFETY: kill and raise are async-signal-safe and take no pointers.
    unsafe {
        if signal == libc::SIGTSTP {
            if reader > 0 {
                libc::kill(reader, libc::SIGSTOP);
            }
            libc::raise(libc::SIGSTOP);
        } else if reader > 0 {
            libc::kill(reader, libc::SIGCONT);
        }
    }
}

/// SIGTSTP and SIGCONT, held back (`how` = `SIG_BLOCK`) or let through (`SIG_UNBLOCK`) on the
/// calling thread.
fn hold_stop_and_continue(how: libc::c_int) -> std::io::Result<()> {
    // SAFETY: the set is initialised by sigemptyset before use; pthread_sigmask only reads it.
    unsafe {
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGTSTP);
        libc::sigaddset(set.as_mut_ptr(), libc::SIGCONT);
        match libc::pthread_sigmask(how, set.as_ptr(), std::ptr::null_mut()) {
            0 => Ok(()),
            e => Err(std::io::Error::from_raw_os_error(e)),
        }
    }
}

/// Runs this command line again in a child that leads a session of its own, whose group can
/// then be lowered without lowering the shell's. This process stays where it was started (a
/// terminal's foreground, a script's process group): it passes SIGINT, SIGTERM and SIGHUP on to
/// the child as SIGTERM (a following tail stops after its batch, its cursor saved), stops and
/// continues it with itself (Ctrl-Z), the child gets SIGTERM if this process dies, and the
/// child's exit status is this one's (128 + the signal that ended it, as a shell says).
fn in_own_session() -> anyhow::Result<ExitCode> {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let exe = std::env::current_exe()
        .context("finding this program to run the tail in a session of its own")?;
    // SAFETY: getpid takes no pointers.
    let parent = unsafe { libc::getpid() };
    let mut cmd = std::process::Command::new(exe);
    cmd.args(std::env::args_os().skip(1))
        .env(OWN_SESSION_ENV, "1");
    // SAFETY: between fork and exec the closure makes only async-signal-safe calls and does not
    // allocate.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Had this process died before the line above, nothing would signal the child.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            // The child takes Ctrl-Z and `fg` as its signals come, not held as they are here.
            hold_stop_and_continue(libc::SIG_UNBLOCK)
        });
    }
    // Ctrl-Z stops the terminal's foreground, this process: the child stops with it, and goes
    // on when it does (`fg`, `bg`). A Ctrl-Z that comes before the handler knows the child
    // waits until it does: otherwise it would stop this process alone, the child reading on.
    hold_stop_and_continue(libc::SIG_BLOCK).context("holding Ctrl-Z while the tail starts")?;
    let handler: extern "C" fn(libc::c_int) = pass_stop_and_continue;
    // SAFETY: the handler makes only async-signal-safe calls.
    unsafe {
        libc::signal(libc::SIGTSTP, handler as libc::sighandler_t);
        libc::signal(libc::SIGCONT, handler as libc::sighandler_t);
    }
    let spawned = cmd.spawn();
    let pid = spawned
        .as_ref()
        .map_or(0, |c| libc::pid_t::try_from(c.id()).unwrap_or(0));
    READER.store(pid, std::sync::atomic::Ordering::Relaxed);
    hold_stop_and_continue(libc::SIG_UNBLOCK).context("letting Ctrl-Z through")?;
    let mut child = spawned.context("starting the tail in a session of its own")?;
    anyhow::ensure!(pid > 0, "the tail's child has no usable process id");
    ctrlc::set_handler(move || {
        // SAFETY: kill takes no pointers; the pid is the child's until this process reaps it.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    })?;
    let status = child.wait()?;
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => 1,
    };
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// How often a tail into `--out` saves its cursor (each save syncs the file).
const SAVE_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

pub(super) fn run_tail(opts: &Options, a: TailArgs) -> anyhow::Result<ExitCode> {
    use tickrec::tail::{Cursor, Start, Tail};
    let store = service::open_store(opts);
    // Before any thread starts (a thread's scheduling policy is its own; the threads it starts
    // take it).
    if a.priority == super::TailPriority::Idle {
        if let Some(code) = yield_cpu(&store)? {
            return Ok(code);
        }
    }
    let symbols = tickrec::store::reader::Symbols::parse(&a.symbols)
        .map_err(|e| anyhow::anyhow!("--symbols: {e}"))?;
    let saved = super::output::read_saved(a.cursor_file.as_deref())?;
    let resumed = saved.filter(|_| a.from.is_none() && a.from_time.is_none() && !a.from_now);
    let mut out = super::output::Output::open(a.format.into(), a.out.as_deref(), resumed.as_ref())?;
    let start = if let Some(c) = &a.from {
        Start::After(c.parse().map_err(|e| anyhow::anyhow!("--from: {e}"))?)
    } else if let Some(t) = &a.from_time {
        Start::Time(Timestamp::parse(t).context("--from-time")?)
    } else if a.from_now {
        Start::Now
    } else if let Some(s) = resumed {
        Start::After(s.cursor)
    } else {
        Start::NewestDay
    };
    warn_unknown(&store, "of", |day| store.unknown_symbols(day, &symbols));
    let sources = super::listed_or_all(&a.sources).context("--sources")?;
    if let Some(named) = &sources {
        warn_unknown(&store, "from source", |day| {
            store.unknown_sources(day, named)
        });
    }
    let mut tail = Tail::new(store, symbols, start)?
        .sources(sources.map(std::collections::HashSet::from_iter));
    if let Some(n) = a.max_ticks {
        tail = tail.limit(n);
    }
    // Into --out, the cursor file accounts for the file before its first row: killed at any
    // moment, the tail leaves nothing a restart cannot place.
    if let Some(f) = a.cursor_file.as_ref().filter(|_| out.to_file()) {
        out.save(f, tail.cursor())?;
    }
    let stop = tickrec::shutdown::Shutdown::new();
    if a.follow {
        stop.install_signal_handler()?;
    }
    let out = std::cell::RefCell::new(out);
    let cursor_file = a.cursor_file.clone();
    // At idle priority, a tail hands the CPU over every few hundred rows to whatever waits, and
    // steps aside while the recorder's threads wait for a CPU.
    let mut give_way = (a.priority == super::TailPriority::Idle).then(|| {
        let watched = service::open_store(opts);
        tickrec::priority::GiveWay::watching(Box::new(move || writers(&watched).next()), None)
    });
    let mut rows = |r: &tickrec::tick::TickRow| {
        if let Some(g) = give_way.as_mut() {
            g.row();
        }
        out.borrow_mut().write_row(r)
    };
    // After each batch: the rows flushed first, then the cursor saved (into a file, the rows
    // synced first, at most every SAVE_EVERY: a restart cuts the file back to its last save).
    let mut last_save: Option<std::time::Instant> = None;
    let mut batch = |c: &Cursor| -> std::io::Result<()> {
        let mut out = out.borrow_mut();
        match &cursor_file {
            Some(f) if !out.to_file() || last_save.is_none_or(|t| t.elapsed() >= SAVE_EVERY) => {
                out.save(f, c)?;
                last_save = Some(std::time::Instant::now());
                Ok(())
            }
            _ => out.finish(),
        }
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
    let mut out = out.into_inner();
    if let Some(f) = a.cursor_file.as_ref().filter(|_| out.to_file()) {
        out.save(f, tail.cursor())?;
    }
    let (times, slept) = give_way.map(|g| g.stepped_aside()).unwrap_or_default();
    if times > 0 {
        eprintln!(
            "tail: stepped aside {times} times ({:.2} s) while the recorder waited for a CPU",
            slept.as_secs_f64()
        );
    }
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
