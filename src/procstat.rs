//! This process's memory as the kernel counts it (`/proc/self/status`; Linux only, `None`
//! elsewhere) and the CPU time of the calling thread or of the whole process: figures for
//! `bench`, `migrate` and `verify` summaries.

fn status_kib(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resident memory now, bytes.
pub fn rss_bytes() -> Option<u64> {
    status_kib("VmRSS:").map(|k| k * 1024)
}

/// Peak resident memory of the process so far, bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    status_kib("VmHWM:").map(|k| k * 1024)
}

/// CPU time the calling thread has used so far (user and system).
pub fn thread_cpu() -> Option<std::time::Duration> {
    cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time all of this process's threads have used so far (user and system).
pub fn process_cpu() -> Option<std::time::Duration> {
    cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn cpu_clock(clock: libc::clockid_t) -> Option<std::time::Duration> {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(clock, &mut t) };
    let secs = u64::try_from(t.tv_sec).ok()?;
    let nanos = u32::try_from(t.tv_nsec).ok()?;
    (rc == 0).then(|| std::time::Duration::new(secs, nanos))
}
