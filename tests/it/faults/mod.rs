//! Fault injection: a really full disk (a small tmpfs), an I/O error, a dead-letter location
//! that cannot be written either, a signal while stalled, a process killed midway, broken day
//! files, a read-only file system. Each test of the recording path asserts the loss accounting
//! exactly: stored + dead-lettered + spilled + lost = accepted, and lost = 0 wherever a
//! writable place existed; each test of maintenance and reading, that every answer stays what
//! it was.
//!
//! A tmpfs is the faithful way to fill a disk here: SQLite meets ENOSPC from the kernel on the
//! WAL, the database and its shared memory alike, as on a real volume (`max_page_count` only
//! limits the database file and answers SQLITE_FULL without touching the file system). Mounting
//! needs root, which CI has; without it these tests fail and say so.
//!
//! `intake`: the live path; `maintenance`: seal, archive, unarchive, export, migrate;
//! `reading`: queries and `check`. The helpers they share are here.

mod intake;
mod maintenance;
mod reading;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tickrec::pipeline::{PipelineOptions, StatsSnapshot};
use tickrec::store::{layout, WriterOptions};
use tickrec::tick::Timestamp;

use super::util::*;
// For the submodules, as `super::cli`, `super::fix` and `super::archive`.
use super::{archive, cli, fix};

/// A tmpfs mounted for one test; unmounted when dropped.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size_kib: u64, read_only: bool) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let opts = format!("size={size_kib}k{}", if read_only { ",ro" } else { "" });
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &opts, "tickrec-test"])
            .arg(dir.path())
            .output()
            .expect("the mount command (util-linux) runs");
        assert!(
            out.status.success(),
            "this fault-injection test mounts a small tmpfs to fill a disk for real and needs root \
             (CI runs the suite as root; run `sudo -E cargo test` locally): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Gives the file system more room, as an operator freeing space would.
    pub fn grow(&self, size_kib: u64) {
        self.remount(&format!("size={size_kib}k"));
    }

    /// Mounts it read-only, as a backup or snapshot is.
    pub fn make_read_only(&self) {
        self.remount("ro");
    }

    fn remount(&self, opts: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(st.success(), "remount {opts}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// `tickrec --db db args…`, which must succeed; its stdout.
fn succeeds(db: &Path, args: &[&str]) -> Vec<u8> {
    let out = super::cli::tickrec(db, args, None);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Every tick of 2026-11-02 in time order, then USDJPY's newest 500, as CSV: what a fault
/// must not change.
fn day_answers(db: &Path) -> Vec<u8> {
    let mut all = succeeds(
        db,
        &[
            "query",
            "range",
            "--symbols",
            "all",
            "--from",
            "2026-11-02",
            "--to",
            "2026-11-03",
            "--format",
            "csv",
        ],
    );
    all.extend(succeeds(
        db,
        &["query", "recent", "USDJPY", "-n", "500", "--format", "csv"],
    ));
    all
}

/// `n` JSON Lines quotes of five symbols spread over 2026-11-02, as `ingest` reads them.
fn busy_day_lines(n: u64) -> String {
    let mut input = String::with_capacity(n as usize * 150);
    for i in 0..n {
        let sym = ["EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCHF"][(i * 7 % 13 % 5) as usize];
        let ns = i * (86_400_000_000_000 / n) + i * 7_919 % 100_000_000;
        input.push_str(&format!(
            "{{\"symbol\":\"{sym}\",\"bid\":\"1.{:05}\",\"ask\":\"1.{:05}\",\"bid_size\":1000000,\"ts_event\":\"2026-11-02T{:02}:{:02}:{:02}.{:09}Z\"}}\n",
            i % 90_000,
            i % 90_000 + 9,
            ns / 3_600_000_000_000,
            ns / 60_000_000_000 % 60,
            ns / 1_000_000_000 % 60,
            ns % 1_000_000_000
        ));
    }
    input
}

/// The busy day's file under a store.
const BUSY_DAY: &str = "2026/11/ticks_2026-11-02.db";

/// A scratch folder holding a store (its `db/`) with `n` ticks of the busy day, ingested.
fn busy_day_store(n: u64) -> (tempfile::TempDir, PathBuf) {
    let scratch = tempfile::tempdir().unwrap();
    let db = scratch.path().join("db");
    let out = super::cli::tickrec(&db, &["ingest"], Some(&busy_day_lines(n)));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (scratch, db)
}

/// Copies the busy day's file from the store `from` into the store `to`.
fn copy_busy_day(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("2026/11")).unwrap();
    std::fs::copy(from.join(BUSY_DAY), to.join(BUSY_DAY)).unwrap();
}
