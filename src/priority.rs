//! How a reader beside the recorder (`tickrec tail`) leaves it the CPU.
//!
//! Linux weighs CPU time in two steps: between groups of processes, then between the processes
//! of a group. A thread under `SCHED_IDLE` yields only to the other threads of its own group.
//! Which group a process is in:
//! - a cgroup with the CPU controller (systemd's services and sessions on most hosts): its
//!   weight against the recorder's is the cgroup's, unless the cgroup is marked idle
//!   (`cpu.idle`, systemd's `CPUWeight=idle`);
//! - otherwise, where the kernel groups by session (autogroups, on by default on desktop and
//!   many server kernels), its session's group, at the group's nice value.
//!
//! A tail started from another terminal than the recorder's is in another session, so its
//! `SCHED_IDLE` left the recorder alone only against other tails: four of them, each in a
//! session of its own, held the writer to 0.61–0.66 × of its speed alone, as at normal priority
//! (`data/performance-log.md`, *Tails in sessions of their own*). [`cpu_group`] says where this
//! process is weighed, and [`lower_own_session`] sets a session's group to the lowest weight
//! there is (nice 19) when the process leads that session, so that nothing else is lowered with
//! it; the command line runs a tail in a session of its own for that (`tickrec tail`). Even at
//! the lowest weight, a woken recorder thread waits for a tail of another group until the
//! scheduler's fairness lets it in: [`YieldEvery`] hands the CPU over every few hundred rows.
//! What is left is the group's share: a tail always runnable still takes turns of about
//! 0.45 ms on the writer's core (`tickrec_writer_cpu_wait_seconds_total` shows them;
//! `data/performance-log.md`, "Measured after run 69").

use std::path::{Path, PathBuf};

/// Puts the calling thread (and the threads it starts after) under `SCHED_IDLE`: it then runs
/// only on CPU time no other thread of its group wants, and a thread of the recorder that wakes
/// takes the CPU from it at once (at nice 19 it waits out the tail's slice first). Beside a
/// writer at full speed on two cores, four tails at normal priority, each reading and
/// formatting ~0.45 µs of CPU a tick, left it 0.65–0.70 × of its speed alone; at nice 19,
/// 0.82–1.07 × (medians of three stages of rounds); under `SCHED_IDLE`, 0.95–0.99 × (four;
/// `data/performance-log.md`, *Tails, subscribers and archives*), the tails in the writer's
/// session. Across groups it does nothing: see [`cpu_group`]. No privilege is needed to take
/// it; to leave it, one is.
pub fn idle_priority() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is valid for the call; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Rows a reader passes on between two [`YieldEvery::row`] yields.
pub const YIELD_EVERY: u32 = 512;

/// Yields the CPU (`sched_yield`) every [`YIELD_EVERY`] rows a reader passes on: about 90 µs of
/// a tail's work. Across groups (a tail in a session of its own) a woken recorder thread takes
/// the CPU from a tail only when the scheduler's fairness lets it, else at the end of the tail's
/// slice; a yield lets the scheduler choose again, and a recorder thread waiting for the CPU
/// gets it then. Where nothing waits, the call returns at once (a system call every 512 rows:
/// the tails' CPU a tick read 172–177 ns without, 175–183 ns with). Four tails each in a
/// session of its own kept 0.904 × of the writer alone without it and 0.958 × with it (medians
/// of fifteen rounds a side, in stages of five; `data/performance-log.md`, "Taken after run
/// 67").
#[derive(Debug)]
pub struct YieldEvery {
    left: u32,
}

impl Default for YieldEvery {
    fn default() -> YieldEvery {
        YieldEvery { left: YIELD_EVERY }
    }
}

impl YieldEvery {
    /// After each row passed on.
    #[inline]
    pub fn row(&mut self) {
        self.left -= 1;
        if self.left == 0 {
            self.left = YIELD_EVERY;
            // SAFETY: sched_yield takes no arguments.
            unsafe { libc::sched_yield() };
        }
    }
}

/// Where the kernel weighs this process's CPU time against other processes'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuGroup {
    /// Neither autogroups nor a CPU cgroup: every process is weighed in one group, and
    /// `SCHED_IDLE` yields to all of them.
    One,
    /// Autogroups, and this process leads its session: the session's group is its own (and its
    /// children's), and [`lower_own_session`] lowers it alone.
    OwnSession,
    /// Autogroups, and the session is shared with the process that started this one (a shell,
    /// a script): lowering the group would lower them too.
    SharedSession,
    /// A cgroup with the CPU controller, at `path` in its hierarchy; `idle`: marked idle, so
    /// it yields to every group that is not.
    Cgroup { path: String, idle: bool },
}

/// Where this process is weighed (see the module's documentation). Unreadable files count as
/// the simplest case: a warning not given is better than a wrong one.
pub fn cpu_group() -> CpuGroup {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if let Some((dir, path)) = cpu_cgroup(&cgroups, &mounts) {
        if path != "/" {
            let idle = std::fs::read_to_string(dir.join("cpu.idle")).is_ok_and(|s| s.trim() == "1");
            return CpuGroup::Cgroup { path, idle };
        }
    }
    let autogroups = std::fs::read_to_string("/proc/sys/kernel/sched_autogroup_enabled")
        .is_ok_and(|s| s.trim() == "1");
    if !autogroups {
        return CpuGroup::One;
    }
    // SAFETY: getsid and getpid take no pointers.
    if unsafe { libc::getsid(0) == libc::getpid() } {
        CpuGroup::OwnSession
    } else {
        CpuGroup::SharedSession
    }
}

/// The directory and path of this process's cgroup in the hierarchy that has the CPU
/// controller, when one has it for this process: a v1 hierarchy whose controllers include
/// `cpu`, or the v2 one where its cgroup has `cpu.weight` (the controller is enabled there).
/// `cgroups`: `/proc/self/cgroup`; `mounts`: `/proc/self/mountinfo`.
fn cpu_cgroup(cgroups: &str, mounts: &str) -> Option<(PathBuf, String)> {
    let mount_of = |fs: &str, option: Option<&str>| {
        mounts.lines().find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mut r = right.split_whitespace();
            let (fstype, _source, options) = (r.next()?, r.next()?, r.next().unwrap_or(""));
            let wanted = fstype == fs && option.is_none_or(|o| options.split(',').any(|x| x == o));
            // The fifth field is the mount point (escaped spaces are left as they are:
            // cgroup mounts have none).
            wanted.then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
        })
    };
    let mut v2 = None;
    for line in cgroups.lines() {
        let mut f = line.splitn(3, ':');
        let (_id, controllers, path) = (f.next()?, f.next()?, f.next()?);
        if controllers.split(',').any(|c| c == "cpu") {
            let root = mount_of("cgroup", Some("cpu"))?;
            return Some((root.join(path.trim_start_matches('/')), path.to_owned()));
        }
        if controllers.is_empty() {
            v2 = Some(path.to_owned());
        }
    }
    let path = v2?;
    let dir = mount_of("cgroup2", None)?.join(path.trim_start_matches('/'));
    // At the root the files are absent and the controller applies; below it, they are there
    // when the parent enables it.
    (path == "/" || Path::new(&dir).join("cpu.weight").exists()).then_some((dir, path))
}

/// Sets this process's session's group (an autogroup) to nice 19, the lowest weight a process
/// may give itself: against a group at nice 0 it gets about 1.5 % of a contended CPU. Only for
/// a process that leads its session ([`CpuGroup::OwnSession`]); the group lasts as long as the
/// session.
pub fn lower_own_session() -> std::io::Result<()> {
    std::fs::write("/proc/self/autogroup", "19")
}

/// Processes holding an `flock` on the file at `path`, from `/proc/locks` (a recorder holds
/// its day's lock while it writes the day: `store::daylock`). Matched on the inode number: a
/// device number there is the file system's, which `stat` does not give on every file system.
pub fn flock_holders(path: &Path) -> Vec<libc::pid_t> {
    use std::os::unix::fs::MetadataExt;
    let Ok(ino) = std::fs::metadata(path).map(|m| m.ino()) else {
        return Vec::new();
    };
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    holders_of(&locks, ino)
}

/// See [`flock_holders`]: a line is `N: FLOCK ADVISORY READ|WRITE PID MAJ:MIN:INODE 0 EOF`;
/// one with `->` is a waiter, not a holder.
fn holders_of(locks: &str, ino: u64) -> Vec<libc::pid_t> {
    locks
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.get(1) != Some(&"FLOCK") {
                return None;
            }
            let file_ino = f.get(5)?.rsplit(':').next()?.parse::<u64>().ok()?;
            (file_ino == ino).then(|| f.get(4)?.parse().ok())?
        })
        .collect()
}

/// Whether process `pid` is in the caller's cgroups (`/proc/PID/cgroup` reads the same).
pub fn in_my_cgroup(pid: libc::pid_t) -> bool {
    let mine = std::fs::read_to_string("/proc/self/cgroup");
    let theirs = std::fs::read_to_string(format!("/proc/{pid}/cgroup"));
    matches!((mine, theirs), (Ok(a), Ok(b)) if a == b)
}

/// Whether process `pid` is in the caller's session (where autogroups are on, its group).
pub fn in_my_session(pid: libc::pid_t) -> bool {
    // SAFETY: getsid takes no pointers.
    let (theirs, mine) = unsafe { (libc::getsid(pid), libc::getsid(0)) };
    theirs >= 0 && theirs == mine
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "\
24 30 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw
35 24 0:30 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
38 35 0:33 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:13 - cgroup cgroup rw,cpu,cpuacct
39 35 0:34 / /sys/fs/cgroup/memory rw,nosuid shared:14 - cgroup cgroup rw,memory
";

    #[test]
    fn the_cpu_hierarchy_is_found_in_either_cgroup_version() {
        // v1, at the root of the cpu hierarchy: autogroups decide.
        let v1_root = "9:name=systemd:/\n4:memory:/x\n2:cpu,cpuacct:/\n0::/\n";
        assert_eq!(
            cpu_cgroup(v1_root, MOUNTS),
            Some((PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"), "/".into()))
        );
        // v1, below it.
        let v1 = "2:cpu,cpuacct:/user.slice/session-3.scope\n";
        assert_eq!(
            cpu_cgroup(v1, MOUNTS),
            Some((
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/user.slice/session-3.scope"),
                "/user.slice/session-3.scope".into()
            ))
        );
        // A v1 hierarchy without cpu, and no v2 line: none.
        assert_eq!(cpu_cgroup("4:memory:/x\n", MOUNTS), None);
        // v2 at its root: the controller applies, autogroups decide.
        let v2_mounts = "30 1 0:26 / /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cpu_cgroup("0::/\n", v2_mounts),
            Some((PathBuf::from("/sys/fs/cgroup/"), "/".into()))
        );
        // v2 below a root this machine does not have: no cpu.weight, so no controller there.
        assert_eq!(cpu_cgroup("0::/no/such/group\n", v2_mounts), None);
        // Nothing readable: none.
        assert_eq!(cpu_cgroup("", ""), None);
    }

    #[test]
    fn the_holders_of_a_lock_are_read_from_proc_locks() {
        let locks = "\
1: FLOCK  ADVISORY  READ  4242 fe:01:1234567 0 EOF
2: POSIX  ADVISORY  WRITE 99 fe:01:1234567 0 EOF
3: FLOCK  ADVISORY  WRITE 77 fe:01:7654321 0 EOF
3: -> FLOCK  ADVISORY  WRITE 78 fe:01:1234567 0 EOF
4: FLOCK  ADVISORY  READ  4343 00:2a:1234567 0 EOF
";
        assert_eq!(holders_of(locks, 1234567), vec![4242, 4343]);
        assert_eq!(holders_of(locks, 7654321), vec![77]);
        assert!(holders_of(locks, 1).is_empty());
        assert!(holders_of("garbage\n1: FLOCK\n", 1).is_empty());
    }

    #[test]
    fn a_lock_this_process_holds_is_found_and_names_a_process_of_this_session() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("day.lock");
        let file = std::fs::File::create(&path).expect("the lock file");
        // SAFETY: flock on a descriptor this test owns.
        assert_eq!(
            unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_SH) },
            0
        );
        // SAFETY: getpid takes no pointers.
        let me = unsafe { libc::getpid() };
        assert!(flock_holders(&path).contains(&me));
        assert!(in_my_session(me));
        assert!(!in_my_session(-1));
        assert!(in_my_cgroup(me));
        assert!(!in_my_cgroup(-1));
    }
}
