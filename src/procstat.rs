//! This process's memory as the kernel counts it (`/proc/self/status`; Linux only, `None`
//! elsewhere), the CPU time of the calling thread or of the whole process, and how long a
//! thread waited for a CPU: figures for `bench`, `migrate` and `verify` summaries and the
//! writer's metrics.

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

/// This thread's id as the kernel numbers it (a directory of `/proc/self/task`).
pub fn thread_id() -> i32 {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::gettid() }
}

/// How long thread `tid` of this process has been ready to run but waited for a CPU that
/// another thread or process had (`/proc/self/task/<tid>/schedstat`, its second field: the
/// kernel's run delay). `None` once the thread has exited, or where the kernel does not say.
pub fn thread_cpu_wait(tid: i32) -> Option<std::time::Duration> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    let ns: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(std::time::Duration::from_nanos(ns))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_threads_cpu_wait_is_read_and_an_exited_ones_is_not() {
        let me = thread_id();
        let (tx, rx) = std::sync::mpsc::channel();
        let other = std::thread::spawn(move || {
            let _ = tx.send(thread_id());
        });
        let tid = rx.recv().expect("the thread says its id");
        other.join().expect("the thread ends");
        assert_ne!(tid, me);
        assert!(thread_cpu_wait(me).is_some(), "this thread has run");
        // Joined once it cleared its id; the kernel reaps it a moment later.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while thread_cpu_wait(tid).is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "thread {tid} is still listed"
            );
            std::thread::yield_now();
        }
    }
}
