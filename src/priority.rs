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
//! scheduler's fairness lets it in: [`GiveWay`] hands the CPU over every few hundred rows.
//! What is left is the group's share: a tail always runnable still takes turns of about
//! 0.45 ms on the writer's core (`tickrec_writer_cpu_wait_seconds_total` shows them;
//! `data/performance-log.md`, "Measured after run 69"). So a tail also watches the recorder
//! (the process holding the newest day's lock): when the recorder's threads waited for a CPU
//! since its last look, it steps off the CPU for a while ([`GiveWay`]). That works whatever
//! group the tail is in, a cgroup that is not marked idle too.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

/// Rows a reader passes on between two of [`GiveWay`]'s turns.
pub const YIELD_EVERY: u32 = 512;

/// What a recorder's thread must have run since the last listing (once a second) for a reader
/// to watch it: idle threads (a metrics listener, a subscriber's request reader) wait for
/// nothing, and reading each costs ~0.55 µs a turn (25 of them: 15 ns a tick, a tenth of a
/// tail's work).
pub const BUSY: Duration = Duration::from_millis(1);

/// How long a reader sleeps when the recorder's threads waited for a CPU since its last turn;
/// twice the last sleep when they waited again within its length of the reader coming back, up
/// to [`STEP_ASIDE_MOST`].
pub const STEP_ASIDE: Duration = Duration::from_millis(10);

/// The longest a reader sleeps at one turn: a recorder at full speed for minutes keeps a reader
/// off the CPU but for a turn's work every 100 ms, and one that slows down is followed again
/// within 100 ms.
pub const STEP_ASIDE_MOST: Duration = Duration::from_millis(100);

/// What the recorder's threads may wait for a CPU between two turns before a reader steps
/// aside: this much, and a twentieth of the time between the turns. Under it lie the wake-ups
/// of a recorder that has the CPU it wants (a few µs each); a turn a tail took from the writer
/// lasts ~0.45 ms.
pub const WAIT_FLOOR: Duration = Duration::from_micros(50);

/// A reader's turns: every [`YIELD_EVERY`] rows it passes on (about 90 µs of a tail's work) it
/// yields the CPU (`sched_yield`), and, when it watches a recorder ([`GiveWay::watching`]) whose
/// threads waited for a CPU since the last turn (past [`WAIT_FLOOR`]), sleeps [`STEP_ASIDE`] (or
/// longer, while they keep waiting).
///
/// The yield: across groups (a tail in a session of its own) a woken recorder thread takes the
/// CPU from a tail only when the scheduler's fairness lets it, else at the end of the tail's
/// slice; a yield lets the scheduler choose again. Four tails each in a session of its own kept
/// 0.904 × of the writer alone without it and 0.958 × with it (`data/performance-log.md`,
/// "Taken after run 67").
///
/// The sleep: a yield does not give up the group's turn, and a group at the lowest weight still
/// gets its share of a CPU it is runnable on, so the writer kept waiting for the tails' turns
/// (39–293 ms a run of ~2.3 s beside four, against 16–58 ms alone). Off the run queue, a tail
/// takes no turn at all: the writer waited 34–65 ms a run beside four tails that step aside
/// (24–38 ms alone), 116–162 ms beside four that did not, which kept 0.965 × of its speed alone
/// against 0.998 × (`data/performance-log.md`, "Measured after run 71"). It works in any group,
/// a cgroup not marked idle too, where `SCHED_IDLE` yields to nothing (there 0.73 × → 1.04 ×).
/// The recorder's threads' waits are their run delays (`/proc/<pid>/task/<tid>/schedstat`, its
/// second field), read at each turn for its busy threads ([`BUSY`]): a tail over a closed
/// 2M-tick day took 0.265 s of CPU beside a process of 25 idle threads holding the day's lock,
/// 0.26 s with nothing to watch.
#[derive(Default)]
pub struct GiveWay {
    left: u32,
    recorder: Option<RecorderWait>,
    /// The last sleep's length.
    pause: Duration,
    /// When the last sleep ended.
    back_at: Option<Instant>,
    stepped_aside: (u64, Duration),
}

impl std::fmt::Debug for GiveWay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GiveWay")
            .field("left", &self.left)
            .field("watching", &self.recorder.is_some())
            .field("pause", &self.pause)
            .field("stepped_aside", &self.stepped_aside)
            .finish()
    }
}

impl GiveWay {
    /// Yields every [`YIELD_EVERY`] rows and steps aside for the recorder `find` names (its
    /// process id, looked up again every second and whenever none is known, at most every
    /// 50 ms: a recorder may start after the reader, or restart). `skip`: a thread of that
    /// process not to count (the reader's own, when it runs in the recorder's process).
    pub fn watching(
        find: Box<dyn FnMut() -> Option<libc::pid_t>>,
        skip: Option<libc::pid_t>,
    ) -> GiveWay {
        GiveWay {
            left: YIELD_EVERY,
            recorder: Some(RecorderWait {
                find,
                skip,
                threads: Vec::new(),
                ran: (0, std::collections::HashMap::new()),
                judged: false,
                listed: None,
                last: None,
            }),
            pause: STEP_ASIDE,
            back_at: None,
            stepped_aside: (0, Duration::ZERO),
        }
    }

    /// After each row passed on.
    #[inline]
    pub fn row(&mut self) {
        if self.left > 1 {
            self.left -= 1;
            return;
        }
        self.left = YIELD_EVERY;
        self.turn();
    }

    #[cold]
    fn turn(&mut self) {
        // SAFETY: sched_yield takes no arguments.
        unsafe { libc::sched_yield() };
        let Some(recorder) = self.recorder.as_mut() else {
            return;
        };
        if !recorder.waited_past_floor() {
            return;
        }
        self.pause = next_pause(self.pause, self.back_at.map(|at| at.elapsed()));
        std::thread::sleep(self.pause);
        self.back_at = Some(Instant::now());
        self.stepped_aside.0 += 1;
        self.stepped_aside.1 += self.pause;
        // What the recorder waited while this reader slept was not for it.
        recorder.restart();
    }

    /// How many times this reader has stepped aside, and for how long in all.
    pub fn stepped_aside(&self) -> (u64, Duration) {
        self.stepped_aside
    }
}

/// The sleep after one of `last`: twice as long (at most [`STEP_ASIDE_MOST`]) when the recorder
/// waited again within `last` of the reader coming back (`since_back` ago), else [`STEP_ASIDE`].
fn next_pause(last: Duration, since_back: Option<Duration>) -> Duration {
    match since_back {
        Some(since) if since < last => (last * 2).min(STEP_ASIDE_MOST),
        _ => STEP_ASIDE,
    }
}

/// The recorder [`GiveWay`] watches: its threads' `schedstat` files, open, and what they read
/// at the last turn.
struct RecorderWait {
    find: Box<dyn FnMut() -> Option<libc::pid_t>>,
    skip: Option<libc::pid_t>,
    /// The busy threads' files (see [`BUSY`]), each with its run delay (ns) at the last look.
    threads: Vec<(std::fs::File, u64)>,
    /// The process listed last, and each of its threads' time on a CPU (ns) then.
    ran: (libc::pid_t, std::collections::HashMap<libc::pid_t, u64>),
    /// Whether the last listing knew the process from the one before.
    judged: bool,
    listed: Option<Instant>,
    /// When the threads were last looked at.
    last: Option<Instant>,
}

impl RecorderWait {
    /// Whether the recorder's threads waited for a CPU past the floor since the last turn.
    fn waited_past_floor(&mut self) -> bool {
        let now = Instant::now();
        // Soon when no recorder is known, or its threads were all new at the last listing (it
        // took them all: the next one tells the busy ones).
        let relist = if self.threads.is_empty() || !self.judged {
            Duration::from_millis(50)
        } else {
            Duration::from_secs(1)
        };
        if self.listed.is_none_or(|t| now.duration_since(t) >= relist) {
            self.list(now);
        }
        let waited = Duration::from_nanos(self.waited());
        let Some(then) = self.last.replace(now) else {
            return false;
        };
        waited >= WAIT_FLOOR + now.duration_since(then) / 20
    }

    /// Looks at the threads again from here.
    fn restart(&mut self) {
        self.waited();
        self.last = Some(Instant::now());
    }

    /// What the threads waited for a CPU since the last look (ns), summed over those still
    /// there: a thread that ended (a subscriber's, a query's) is dropped from the watch, and
    /// the others' waits still count (the recorder's threads come and go while it runs).
    fn waited(&mut self) -> u64 {
        let mut sum = 0u64;
        self.threads.retain_mut(|(f, before)| {
            let Some((_, delay)) = read_schedstat(f) else {
                return false;
            };
            sum = sum.saturating_add(delay.saturating_sub(*before));
            *before = delay;
            true
        });
        sum
    }

    /// Lists the recorder's busy threads: those that ran [`BUSY`] or more since the last
    /// listing, or were not there then.
    fn list(&mut self, now: Instant) {
        self.listed = Some(now);
        self.threads.clear();
        self.last = None;
        let Some(pid) = (self.find)() else { return };
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return;
        };
        let before = std::mem::take(&mut self.ran.1);
        let same = self.ran.0 == pid;
        self.ran.0 = pid;
        self.judged = same;
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
                continue;
            };
            if Some(tid) == self.skip {
                continue;
            }
            let Ok(f) = std::fs::File::open(task.path().join("schedstat")) else {
                continue;
            };
            let Some((ran, delay)) = read_schedstat(&f) else {
                continue;
            };
            self.ran.1.insert(tid, ran);
            let busy = match before.get(&tid) {
                Some(&was) if same => ran.saturating_sub(was) >= BUSY.as_nanos() as u64,
                _ => true,
            };
            if busy {
                self.threads.push((f, delay));
            }
        }
    }
}

/// The time on a CPU and the run delay (ns) of a thread, read from its open `schedstat` file;
/// `None` once the thread has ended.
fn read_schedstat(file: &std::fs::File) -> Option<(u64, u64)> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 96];
    let n = file.read_at(&mut buf, 0).ok()?;
    schedstat_of(buf.get(..n)?)
}

/// The time on a CPU and the run delay (ns) in a `schedstat` file's text: `<on CPU ns> <run
/// delay ns> <timeslices>`.
fn schedstat_of(schedstat: &[u8]) -> Option<(u64, u64)> {
    let mut f = std::str::from_utf8(schedstat).ok()?.split_whitespace();
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
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
    // Read twice: past a page of records a read still takes several walks (see
    // `proc_locks`), and a holder one read skipped, the other most likely saw.
    let mut pids = holders_of(&proc_locks(), ino);
    for pid in holders_of(&proc_locks(), ino) {
        if !pids.contains(&pid) {
            pids.push(pid);
        }
    }
    pids
}

/// `/proc/locks`, in reads as large as the kernel makes them. It makes each read(2) from a
/// fresh walk of its list of locks, resuming by position, and fills it only as far as asked
/// (up to a page of records): read in small pieces (`read_to_string` begins with 32 bytes), the
/// file skipped an entry whenever a lock ahead of it went away between two pieces (a held lock
/// missed in 2,505 of 20,000 looks beside three threads taking and dropping locks; none in
/// large reads: `tests::a_held_lock_is_found_while_other_locks_come_and_go`).
fn proc_locks() -> String {
    use std::io::Read;
    let mut text = Vec::new();
    if let Ok(mut file) = std::fs::File::open("/proc/locks") {
        let mut piece = vec![0u8; 1 << 16];
        loop {
            match file.read(&mut piece) {
                Ok(0) => break,
                Ok(n) => text.extend_from_slice(piece.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
    String::from_utf8_lossy(&text).into_owned()
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

    /// What could go wrong: `/proc/locks` is made afresh at each read(2), resuming by position
    /// in the kernel's list of locks, so read in small pieces it skips an entry whenever another
    /// lock ahead of it goes away between two pieces: a tail beside its session's recorder then
    /// took it for a recorder elsewhere. Locks come and go on other threads here while the held
    /// one is looked for.
    #[test]
    fn a_held_lock_is_found_while_other_locks_come_and_go() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let held = dir.path().join("held");
        let file = std::fs::File::create(&held).unwrap();
        file.try_lock_shared().unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let churn: Vec<_> = (0..3)
            .map(|t| {
                let (dir, stop) = (dir.path().to_owned(), stop.clone());
                std::thread::spawn(move || {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let f =
                            std::fs::File::create(dir.join(format!("c{t}-{}", i % 40))).unwrap();
                        f.try_lock_shared().unwrap();
                        i += 1;
                    }
                })
            })
            .collect();
        // SAFETY: getpid takes no pointers.
        let me = unsafe { libc::getpid() };
        let missed = (0..20_000)
            .filter(|_| !flock_holders(&held).contains(&me))
            .count();
        stop.store(true, Ordering::Relaxed);
        for c in churn {
            c.join().unwrap();
        }
        assert_eq!(missed, 0, "of 20,000 looks");
    }

    /// Keeps a CPU busy until `stop` is set, or for `most` when given.
    fn spin(stop: &std::sync::atomic::AtomicBool, most: Option<Duration>) {
        let start = Instant::now();
        while !stop.load(std::sync::atomic::Ordering::Relaxed)
            && most.is_none_or(|d| start.elapsed() < d)
        {
            std::hint::spin_loop();
        }
    }

    /// A reader watching a process whose threads wait for a CPU (more of them spinning than
    /// there are CPUs) steps aside; one watching nothing only yields. The test's own thread is
    /// not counted, as a tail in the recorder's process does not count itself. (How long each
    /// sleep is: [`next_pause`]'s test; here this thread may itself wait past a sleep's length
    /// for a CPU, when the doubling rightly starts over.)
    #[test]
    fn a_reader_steps_aside_while_the_watched_threads_wait_for_a_cpu() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let spinners: Vec<_> = (0..cpus + 2)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || spin(&stop, None))
            })
            .collect();
        let pid = libc::pid_t::try_from(std::process::id()).ok();
        let me = crate::procstat::thread_id();
        let mut watching = GiveWay::watching(Box::new(move || pid), Some(me));
        let deadline = Instant::now() + Duration::from_secs(30);
        while watching.stepped_aside().0 < 3 && Instant::now() < deadline {
            watching.row();
        }
        stop.store(true, Ordering::Relaxed);
        for s in spinners {
            s.join().expect("a spinner ends");
        }
        let (times, slept) = watching.stepped_aside();
        assert!(times >= 3, "stepped aside {times} times in 30 s");
        assert!(slept >= STEP_ASIDE * 3, "{slept:?}");
        let mut blind = GiveWay::default();
        for _ in 0..10 * YIELD_EVERY {
            blind.row();
        }
        assert_eq!(blind.stepped_aside(), (0, Duration::ZERO));
    }

    /// What could go wrong: the recorder's threads come and go while it runs (a subscriber's,
    /// a query's), and a reader that lost sight of all of them when one ended stopped
    /// stepping aside until it listed them again, a second later. Told without timing: which
    /// threads are watched, before and after one of them ends.
    #[test]
    fn a_thread_that_ends_leaves_the_others_watched() {
        let pid = libc::pid_t::try_from(std::process::id()).ok();
        let me = crate::procstat::thread_id();
        // Two threads parked until told to end, each telling its id first.
        let parked = || {
            let (ids, id) = std::sync::mpsc::channel();
            let (end, ended) = std::sync::mpsc::channel::<()>();
            let t = std::thread::spawn(move || {
                ids.send(crate::procstat::thread_id())
                    .expect("the test listens");
                let _ = ended.recv();
            });
            (id.recv().expect("the thread's id"), end, t)
        };
        let (first, end_first, first_thread) = parked();
        let (second, _end_second, _second_thread) = parked();
        let mut watching = GiveWay::watching(Box::new(move || pid), Some(me));
        let wait = watching.recorder.as_mut().expect("it watches");
        wait.list(Instant::now());
        // Each watched thread's id, read from its own open file (`/proc/<pid>/task/<tid>` is
        // a directory of that thread's; its `stat` starts with the id).
        let watched = |wait: &RecorderWait| -> Vec<libc::pid_t> {
            wait.threads
                .iter()
                .filter_map(|(f, _)| {
                    use std::os::unix::io::AsRawFd;
                    let link = std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd()));
                    let link = link.ok()?;
                    link.parent()?.file_name()?.to_str()?.parse().ok()
                })
                .collect()
        };
        let before = watched(wait);
        assert!(
            before.contains(&first) && before.contains(&second),
            "{before:?}"
        );
        assert!(!before.contains(&me), "a reader never watches itself");
        drop(end_first);
        first_thread.join().expect("the first thread ends");
        wait.waited();
        let after = watched(wait);
        assert!(!after.contains(&first), "{after:?}");
        assert!(
            after.contains(&second),
            "the others left the watch with it: {after:?}"
        );
    }

    #[test]
    fn a_sleep_doubles_while_the_recorder_waits_again_soon_after_and_starts_over_otherwise() {
        let ms = Duration::from_millis;
        assert_eq!(next_pause(ms(10), None), STEP_ASIDE);
        assert_eq!(next_pause(ms(10), Some(ms(1))), ms(20));
        assert_eq!(next_pause(ms(20), Some(ms(19))), ms(40));
        assert_eq!(next_pause(ms(80), Some(ms(1))), STEP_ASIDE_MOST);
        assert_eq!(next_pause(STEP_ASIDE_MOST, Some(ms(1))), STEP_ASIDE_MOST);
        assert_eq!(next_pause(ms(40), Some(ms(40))), STEP_ASIDE);
        assert_eq!(next_pause(STEP_ASIDE_MOST, Some(ms(500))), STEP_ASIDE);
    }

    #[test]
    fn schedstat_reads_as_time_on_a_cpu_then_run_delay() {
        assert_eq!(schedstat_of(b"8123 456 7\n"), Some((8123, 456)));
        assert_eq!(schedstat_of(b"8123\n"), None);
        assert_eq!(schedstat_of(b"a b c"), None);
        assert_eq!(schedstat_of(&[0xff, b' ', b'1']), None);
    }

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
