//! `tickrec tail`: committed ticks in recording order, followed across midnight (late ticks
//! for yesterday included) and over archived days, resumed from a cursor file exactly: nothing
//! skipped, nothing twice.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::cli::tickrec;
use super::util::{assert_says, text, Reaped};

/// `n` ticks of `day` from second `first`, alternating two symbols.
fn ticks(day: &str, first: u32, n: u32, hour: u32) -> String {
    (first..first + n)
        .map(|i| {
            format!(
                "{{\"symbol\":\"{}\",\"bid\":\"1.{:05}\",\"ask\":\"1.{:05}\",\"ts_event\":\"{day}T{hour:02}:{:02}:{:02}.{:03}Z\"}}\n",
                ["EURUSD", "GBPUSD"][i as usize % 2],
                i,
                i + 2,
                i / 60 % 60,
                i % 60,
                i % 1000
            )
        })
        .collect()
}

fn ingest(db: &Path, input: &str) {
    let out = tickrec(db, &["ingest", "-", "--force"], Some(input));
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// (UTC day of ts_event, seq) of each JSON line.
fn keys(lines: &[String]) -> Vec<(String, i64)> {
    lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let day = v["ts_event"].as_str().unwrap()[..10].to_owned();
            (day, v["seq"].as_i64().unwrap())
        })
        .collect()
}

struct Follower {
    /// Killed if the test fails before it stops the tail (the tail's own child, in a session
    /// of its own, gets SIGTERM when its parent dies): no process outlives the test.
    child: Reaped,
    lines: mpsc::Receiver<String>,
    got: Vec<String>,
    /// Its stderr, told when it fails.
    said: tempfile::NamedTempFile,
}

impl Follower {
    fn start(db: &Path, args: &[&str]) -> Follower {
        let said = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tickrec"))
            .arg("--db")
            .arg(db)
            .arg("tail")
            .arg("--follow")
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(said.reopen().unwrap())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Follower {
            child: Reaped::new(child),
            lines,
            got: Vec::new(),
            said,
        }
    }

    /// Whether it still runs, and what it said on stderr.
    fn state(&mut self) -> String {
        let status = match self.child.try_wait() {
            Ok(None) => "still running".to_owned(),
            Ok(Some(s)) => format!("ended: {s}"),
            Err(e) => format!("unknown: {e}"),
        };
        let said = std::fs::read_to_string(self.said.path()).unwrap_or_default();
        format!("{status}; stderr: {said}")
    }

    /// Waits (30 s at most) until `n` lines in all have come.
    fn until(&mut self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.got.push(l),
                Err(_) => {
                    let state = self.state();
                    panic!(
                        "{} of {n} lines came: {:?}; the tail {state}",
                        self.got.len(),
                        self.got.last(),
                    )
                }
            }
        }
    }

    fn stop(mut self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let ended = self.child.wait().unwrap();
        assert!(ended.success(), "{}", self.state());
        // Whatever it flushed before it ended: the reader thread ends at the pipe's end.
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(l) => self.got.push(l),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("its output never ended"),
            }
        }
        std::mem::take(&mut self.got)
    }

    /// Waits (30 s at most) for it to end by itself, successfully; every line it wrote.
    fn ended(mut self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            match self.child.try_wait().unwrap() {
                Some(s) => break s,
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                None => panic!("it did not end by itself"),
            }
        };
        assert!(status.success(), "{}", self.state());
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(30)) {
            self.got.push(l);
        }
        std::mem::take(&mut self.got)
    }

    /// The scheduling policy of the process that reads: this one, or the child it runs the
    /// tail in when its session is shared (5 is `SCHED_IDLE`).
    fn policy(&self) -> i32 {
        let pid = children(self.child.id())
            .first()
            .copied()
            .unwrap_or(self.child.id());
        stat_field(pid, 41).map_or(-1, |p| p.parse().unwrap())
    }
}

/// Field `n` (1-based, as in proc(5)) of `/proc/PID/stat`; `None` once the process is gone.
fn stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split(' ').nth(n - 3).map(str::to_owned)
}

/// The children of `pid`.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|c| c.parse().unwrap())
        .collect()
}

/// What could go wrong: a tail that stops at midnight, moves to the new day and misses the late
/// ticks yesterday's file still takes, or a resumed one that repeats or skips a tick.
#[test]
fn a_following_tail_crosses_midnight_keeps_late_ticks_and_resumes_from_its_cursor_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let cursor = dir.path().join("cursor");
    ingest(&db, &ticks("2026-11-20", 0, 100, 22));
    let cur = cursor.to_string_lossy().into_owned();
    let mut tail = Follower::start(&db, &["--from-time", "2026-11-20", "--cursor-file", &cur]);
    tail.until(100);
    ingest(&db, &ticks("2026-11-21", 0, 50, 0));
    tail.until(150);
    // Late ticks for yesterday, after today's file has begun.
    ingest(&db, &ticks("2026-11-20", 3000, 10, 23));
    tail.until(160);
    ingest(&db, &ticks("2026-11-21", 50, 5, 0));
    tail.until(165);
    let first = tail.stop();
    assert_eq!(
        std::fs::read_to_string(&cursor).unwrap().trim(),
        "2026-11-20:110,2026-11-21:55"
    );
    // While no tail runs: more of today and of yesterday.
    ingest(&db, &ticks("2026-11-21", 55, 20, 0));
    ingest(&db, &ticks("2026-11-20", 3010, 5, 23));
    let out = tickrec(&db, &["tail", "--cursor-file", &cur], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let second: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(second.len(), 25, "{second:?}");
    let all: Vec<(String, i64)> = keys(&first).into_iter().chain(keys(&second)).collect();
    let unique: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(unique.len(), all.len(), "no tick twice");
    let expected: BTreeSet<(String, i64)> = (1..=115)
        .map(|s| ("2026-11-20".to_owned(), s))
        .chain((1..=75).map(|s| ("2026-11-21".to_owned(), s)))
        .collect();
    assert_eq!(unique, expected, "every tick, once");
    // Within a day, recording order.
    for day in ["2026-11-20", "2026-11-21"] {
        let seqs: Vec<i64> = all.iter().filter(|k| k.0 == day).map(|k| k.1).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{day}: {seqs:?}");
    }
}

/// What could go wrong: a tail following a writer at full speed leaves the newest ticks to
/// their symbol blocks for a few ms (`tail::HOLD_TICKS`) and reads them later, from the blocks
/// or the rows, while each new writer of the day cuts its block files back at opening: it
/// could skip what it left, pass it twice, or out of order.
#[test]
fn a_following_tail_at_full_speed_passes_every_tick_once_in_recording_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    ingest(&db, &ticks("2026-11-20", 0, 10, 10));
    let mut tail = Follower::start(&db, &[]);
    tail.until(10);
    for k in 0..4 {
        ingest(&db, &ticks("2026-11-20", 10 + k * 20_000, 20_000, 11));
    }
    tail.until(80_010);
    let got = keys(&tail.stop());
    let want: Vec<(String, i64)> = (1..=80_010).map(|s| ("2026-11-20".to_owned(), s)).collect();
    assert!(
        got == want,
        "{} lines; the first differs at line {:?}",
        got.len(),
        got.iter().zip(&want).position(|(a, b)| a != b)
    );
}

/// What could go wrong: a tail from an old cursor that cannot read an archived day, or reads it
/// out of recording order.
#[test]
fn a_tail_from_an_old_cursor_reads_archived_days_in_recording_order_then_the_live_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    ingest(&db, &ticks("2026-11-20", 0, 100, 10));
    // A late tick recorded after later ones: its time order is not its seq order.
    ingest(&db, &ticks("2026-11-20", 0, 1, 9));
    let today = chrono::Utc::now().date_naive().to_string();
    ingest(&db, &ticks(&today, 0, 30, 0));
    let out = tickrec(&db, &["archive", "--older-than", "1d"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = tickrec(
        &db,
        &["tail", "--from", "2026-11-20:0", "--symbols", "EURUSD"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = keys(
        &text(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>(),
    );
    // The same rows as a range query, in recording order: day, then seq.
    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Days::new(1)).to_string();
    let all = tickrec(
        &db,
        &[
            "query",
            "range",
            "EURUSD",
            "--from",
            "2026-11-01",
            "--to",
            &tomorrow,
            "--format",
            "jsonl",
        ],
        None,
    );
    let mut want = keys(
        &text(&all.stdout)
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>(),
    );
    want.sort();
    assert_eq!(want.len(), 51 + 15);
    assert_eq!(got, want);
    assert_says(&out.stderr, &format!("cursor 2026-11-20:101,{today}:30"));
}

/// Every row `tail` passes, polled until caught up.
fn poll_rows(tail: &mut tickrec::tail::Tail) -> Vec<tickrec::tick::TickRow> {
    let mut got = Vec::new();
    while tail
        .poll(
            &mut |r| {
                got.push(r.clone());
                Ok(())
            },
            &mut |_| Ok(()),
        )
        .unwrap()
        > 0
    {}
    got
}

/// The rows a tail passes from where it is to now, polled until caught up: (symbol, seq) in
/// order.
fn tail_now(tail: &mut tickrec::tail::Tail) -> Vec<(String, i64)> {
    poll_rows(tail)
        .into_iter()
        .map(|r| (r.symbol.to_string(), r.seq.unwrap()))
        .collect()
}

/// What could go wrong: a tail of named symbols lets SQLite skip the other symbols' rows and
/// moves its cursor over them by seq, so it could miss rows past one snapshot's stretch of
/// seqs, or the first rows of a symbol the day file did not know at its last poll.
#[test]
fn a_tail_of_named_symbols_passes_exactly_theirs_as_others_and_new_symbols_come() {
    use tickrec::store::reader::{Store, Symbols};
    use tickrec::tail::{Cursor, Start, Tail};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let start = || Start::After(Cursor::start_of(day));
    let store = || Store::new(&db, Default::default());
    // More rows than one snapshot's 4,096 seqs.
    ingest(&db, &ticks("2026-11-20", 0, 10_000, 10));
    let named = Symbols::parse("GBPUSD,USDJPY").unwrap();
    let mut tail = Tail::new(store(), named, start()).unwrap();
    let mut got = tail_now(&mut tail);
    assert_eq!(got.len(), 5_000);
    assert_eq!(tail.cursor().to_string(), "2026-11-20:10000");
    // USDJPY's first rows, among others; the day ends with a commit of neither symbol.
    let usdjpy = ticks("2026-11-20", 0, 3, 11).replace("EURUSD", "USDJPY");
    ingest(
        &db,
        &format!("{usdjpy}{}", ticks("2026-11-20", 0, 5_000, 12)),
    );
    ingest(&db, &ticks("2026-11-20", 0, 1, 13));
    got.extend(tail_now(&mut tail));
    assert_eq!(tail.cursor().to_string(), "2026-11-20:15004");
    let mut all = Tail::new(store(), Symbols::All, start()).unwrap();
    let want: Vec<(String, i64)> = tail_now(&mut all)
        .into_iter()
        .filter(|(s, _)| s == "GBPUSD" || s == "USDJPY")
        .collect();
    assert_eq!(want.iter().filter(|(s, _)| s == "USDJPY").count(), 2);
    assert_eq!(got, want);
    let live = &tickrec::store::layout::list_days(&db).unwrap()[0];
    assert_eq!(
        store()
            .unknown_symbols(live, &Symbols::parse("EURUSD,NOPE").unwrap())
            .unwrap(),
        vec!["NOPE".to_owned()]
    );
    assert!(store()
        .unknown_symbols(live, &Symbols::All)
        .unwrap()
        .is_empty());
    // Archived, as Parquet (only the symbols' runs read) and as .db.zst (the others' rows
    // skipped): the same rows, and the cursor at the day's end.
    let run = |args: &[&str]| {
        let out = tickrec(&db, args, None);
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    let check = |suffix: &str| {
        let days = tickrec::store::layout::list_days(&db).unwrap();
        assert!(days[0].archived && days[0].path.to_string_lossy().ends_with(suffix));
        // A name the day has no tick of (here in the wrong case) is said, and the rest flows.
        let typo = Symbols::parse("GBPUSD,usdjpy,USDJPY").unwrap();
        assert_eq!(
            store().unknown_symbols(&days[0], &typo).unwrap(),
            vec!["usdjpy".to_owned()],
            "{suffix}"
        );
        let out = tickrec(
            &db,
            &[
                "tail",
                "--from",
                "2026-11-20:0",
                "--symbols",
                "USDJPY,usdjpy",
            ],
            None,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr)
                .contains("tail: no tick of usdjpy in the newest day file (2026-11-20;"),
            "{}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout).lines().count(), 2, "{suffix}");
        // So is a source the day names for no tick (of a Parquet day, one its row groups'
        // bounds rule out).
        let source = tail_rows(&db, "GBPUSD")[0].source.to_string();
        let typo = format!("{source}-typo");
        let asked = [source.clone(), typo.clone(), "~".to_owned()];
        assert_eq!(
            store().unknown_sources(&days[0], &asked).unwrap(),
            [typo.clone(), "~".to_owned()],
            "{suffix}"
        );
        let sources = format!("{source},{typo}");
        let out = tickrec(
            &db,
            &["tail", "--from", "2026-11-20:0", "--sources", &sources],
            None,
        );
        assert!(
            text(&out.stderr).contains(&format!(
                "tail: no tick from source {typo} in the newest day file (2026-11-20;"
            )),
            "{suffix}: {}",
            text(&out.stderr)
        );
        let named = Symbols::parse("GBPUSD,USDJPY").unwrap();
        let mut tail = Tail::new(store(), named, start()).unwrap();
        assert_eq!(tail_now(&mut tail), want, "{suffix}");
        assert_eq!(tail.cursor().to_string(), "2026-11-20:15004", "{suffix}");
    };
    run(&["archive", "--older-than", "1d", "--format", "parquet"]);
    check(".parquet");
    run(&["unarchive", "2026-11-20"]);
    run(&["archive", "--older-than", "1d", "--format", "sqlite-zst"]);
    check(".db.zst");
}

/// Every row a tail of `symbols` passes over the day now, from a fresh store (no kept reader).
fn tail_rows(db: &Path, symbols: &str) -> Vec<tickrec::tick::TickRow> {
    use tickrec::store::reader::{Store, Symbols};
    use tickrec::tail::{Cursor, Start, Tail};
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let start = Start::After(Cursor::start_of(day));
    let symbols = Symbols::parse(symbols).unwrap();
    let mut tail = Tail::new(Store::new(db, Default::default()), symbols, start).unwrap();
    poll_rows(&mut tail)
}

/// What could go wrong: a tail reads its rows from the symbol blocks beside the day file (a
/// third of the CPU per tick of reading the rows), so it could put ticks out of order, drop a
/// value a block encodes differently (an absent size, a source change), or trust a damaged
/// block. The answers must be the rows' own, whichever way they are read.
#[test]
fn a_tail_through_the_symbol_blocks_passes_exactly_the_rows_and_a_damaged_block_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    // Five symbols in an uneven mix, two sources, sizes sometimes absent, a one-sided quote
    // now and then: several directory rows of 16 commits, and a tail past them.
    let input: String = (0..30_000u32)
        .map(|i| {
            let sym = ["EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "EURUSD"][(i * 7 % 11 % 5) as usize];
            let bid = if i % 97 == 0 { String::new() } else { format!(",\"bid\":\"1.{:05}\"", (i * 37) % 90_000) };
            let size = if i % 3 == 0 || i % 97 == 0 { String::new() } else { format!(",\"bid_size\":{}", 1_000 * (i % 13 + 1)) };
            format!(
                "{{\"symbol\":\"{sym}\"{bid},\"ask\":\"1.{:05}\"{size},\"source\":\"LP{}\",\"ts_event\":\"2026-11-20T10:{:02}:{:02}.{:06}Z\"}}\n",
                (i * 37) % 90_000 + 7,
                i / 1_000 % 2 + 1,
                i / 600 % 60,
                i / 10 % 60,
                i * 13 % 1_000_000
            )
        })
        .collect();
    ingest(&db, &input);
    let day = tickrec::store::layout::list_days(&db).unwrap().remove(0);
    let (blocks, _) = tickrec::store::blockfile::paths(&day.path);
    assert!(
        std::fs::metadata(&blocks).unwrap().len() > 0,
        "the writer wrote blocks"
    );
    let copy = dir.path().join("copy");
    let copy_db = tickrec::store::layout::list_days(&db)
        .unwrap()
        .remove(0)
        .path;
    let copied_day = copy.join(copy_db.strip_prefix(&db).unwrap());
    std::fs::create_dir_all(copied_day.parent().unwrap()).unwrap();
    std::fs::copy(&day.path, &copied_day).unwrap();
    // The copy has no block files: its tails read the rows.
    let rows_all = tail_rows(&copy, "all");
    let rows_two = tail_rows(&copy, "GBPUSD,AUDUSD");
    assert_eq!(rows_all.len(), 30_000);
    assert!(rows_all.windows(2).all(|w| w[0].seq < w[1].seq));
    let through_blocks = |what: &str| {
        let all = tail_rows(&db, "all");
        assert!(all == rows_all, "{what}: every symbol");
        let two = tail_rows(&db, "GBPUSD,AUDUSD");
        assert!(two == rows_two, "{what}: two symbols");
    };
    through_blocks("whole blocks");
    // Proof that the blocks answered: a row changed under them (as no writer does) still
    // reads as its block holds it, and as changed once the block files are gone.
    let conn = rusqlite::Connection::open(&day.path).unwrap();
    conn.execute("UPDATE ticks SET bid_size = NULL WHERE seq = 5", [])
        .unwrap();
    assert!(
        tail_rows(&db, "all") == rows_all,
        "the block's copy answers"
    );
    conn.execute_batch(&format!(
        "ATTACH '{}' AS c; UPDATE ticks SET bid_size = (SELECT bid_size FROM c.ticks WHERE seq = 5) WHERE seq = 5; DETACH c;",
        copied_day.display()
    ))
    .unwrap();
    drop(conn);
    // A damaged block (a byte flipped in the middle of the data): its row is read from the
    // rows, the others from their blocks.
    let mut data = std::fs::read(&blocks).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x5a;
    std::fs::write(&blocks, &data).unwrap();
    through_blocks("a damaged block");
    tickrec::store::blockfile::remove(&day.path).unwrap();
    through_blocks("no block files");
}

/// What could go wrong: a tail told to stop after N ticks that reads past them and leaves its
/// cursor beyond what it passed (a resumed consumer then skips ticks), one that never stops
/// while following, or a tail that takes the recorder's CPU at its own priority.
#[test]
fn a_tail_stops_after_max_ticks_with_its_cursor_on_the_last_and_runs_idle_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    // Ten commits of ten: each commit's EURUSD ticks, then its GBPUSD ones.
    for k in 0..10 {
        ingest(&db, &ticks("2026-11-20", k * 10, 10, 10));
    }
    let seqs_of = |args: &[&str]| {
        let out = tickrec(&db, args, None);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
        let seqs: Vec<i64> = keys(&lines).into_iter().map(|k| k.1).collect();
        (seqs, text(&out.stderr))
    };
    let from = ["tail", "--from", "2026-11-20:0", "--symbols", "EURUSD"];
    let (all, _) = seqs_of(&from);
    assert_eq!(all.len(), 50);
    // The 7th EURUSD tick is past the first commit's GBPUSD ticks.
    let (first, said) = seqs_of(&[&from[..], &["--max-ticks", "7"]].concat());
    assert_eq!(first, all[..7]);
    assert!(all[6] > 10, "{all:?}");
    assert!(
        said.contains(&format!("7 ticks; cursor 2026-11-20:{}\n", all[6])),
        "{said}"
    );
    let cursor = format!("2026-11-20:{}", all[6]);
    let (rest, _) = seqs_of(&["tail", "--from", &cursor, "--symbols", "EURUSD"]);
    assert_eq!(rest, all[7..]);

    // Following: it waits for ticks not yet committed, then ends by itself at the 30th.
    let tail = Follower::start(&db, &["--from", "2026-11-20:100", "--max-ticks", "30"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while tail.policy() != libc::SCHED_IDLE {
        assert!(Instant::now() < deadline, "policy {}", tail.policy());
        std::thread::sleep(Duration::from_millis(5));
    }
    ingest(&db, &ticks("2026-11-20", 100, 50, 10));
    let got = tail.ended();
    let seqs = |lines: &[String]| keys(lines).into_iter().map(|k| k.1).collect::<Vec<_>>();
    assert_eq!(seqs(&got), (101..=130).collect::<Vec<i64>>());

    // At `--priority normal` it keeps the policy it was started with (this test's).
    // SAFETY: sched_getscheduler reads this thread's policy.
    let ours = unsafe { libc::sched_getscheduler(0) };
    let mut tail = Follower::start(&db, &["--from", "2026-11-20:149", "--priority", "normal"]);
    tail.until(1);
    assert_eq!(tail.policy(), ours);
    assert_ne!(ours, libc::SCHED_IDLE);
    assert_eq!(seqs(&tail.stop()), vec![150]);
}

/// What could go wrong: a consumer whose cursor is past what the store holds (the day file
/// restored from an older copy, ticks lost after it saw them, another store's cursor) resumes
/// without a word, and the ticks the day's next commits record under those seqs never reach it.
#[test]
fn a_cursor_past_what_the_store_holds_is_refused_and_names_where_the_store_ends() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    ingest(&db, &ticks("2026-11-20", 0, 20, 10));
    ingest(&db, &ticks("2026-11-22", 0, 10, 10));
    let refused = |args: &[&str], names: &str| {
        let out = tickrec(&db, args, None);
        let said = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} was not refused: {said}");
        assert!(said.contains("is past what the store holds"), "{said}");
        assert!(said.contains(names), "{said}");
        assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    };
    let passed = |args: &[&str]| {
        let out = tickrec(&db, args, None);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        keys(
            &text(&out.stdout)
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        )
    };
    // One past a day's last tick, in a listed day or the day before the newest.
    refused(
        &["tail", "--from", "2026-11-22:11"],
        "last tick of 2026-11-22 is 2026-11-22:10",
    );
    refused(
        &["tail", "--from", "2026-11-20:21,2026-11-22:3"],
        "2026-11-20:20",
    );
    // A day after the newest, past its start; from a cursor file as from `--from`.
    refused(
        &["tail", "--from", "2026-11-23:1"],
        "holds no tick of 2026-11-23",
    );
    let cur = dir.path().join("cursor").to_string_lossy().into_owned();
    std::fs::write(&cur, "2026-11-22:4000\n").unwrap();
    refused(&["tail", "--cursor-file", &cur], "2026-11-22:10");
    // The last tick, the start of a later day and a day without a file before the newest
    // (retention, or no ticks) skip nothing.
    assert!(passed(&["tail", "--from", "2026-11-22:10"]).is_empty());
    assert!(passed(&["tail", "--from", "2026-11-23:0"]).is_empty());
    let after_gap = passed(&["tail", "--from", "2026-11-21:7"]);
    assert_eq!(after_gap.len(), 10);
    assert_eq!(after_gap[0], ("2026-11-22".to_owned(), 1));
    let both = passed(&["tail", "--from", "2026-11-20:20,2026-11-22:9"]);
    assert_eq!(both, vec![("2026-11-22".to_owned(), 10)]);
}

/// What could go wrong: `--from-time` (and a subscriber's `from_time`) on a live day answered
/// from the directory starts after the first tick at or after the time, when a late tick (an
/// earlier time recorded after later ones) or the tail no directory row covers yet holds it.
#[test]
fn a_start_time_found_through_the_directory_is_the_one_a_scan_finds() {
    use tickrec::store::reader::{Store, Symbols};
    use tickrec::tail::{Cursor, Start, Tail};
    use tickrec::tick::Timestamp;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    // Rows of several commits each, then late ticks (09:xx after 10:xx and 11:xx), then more.
    ingest(&db, &ticks("2026-11-20", 0, 9_000, 10));
    ingest(&db, &ticks("2026-11-20", 0, 300, 9));
    ingest(&db, &ticks("2026-11-20", 0, 6_000, 11));
    let store = || Store::new(&db, Default::default());
    let days = tickrec::store::layout::list_days(&db).unwrap();
    let live = &days[0];
    let mut all = Tail::new(store(), Symbols::All, Start::After(Cursor::start_of(day))).unwrap();
    let rows: Vec<(i64, i64)> = poll_rows(&mut all)
        .iter()
        .map(|r| (r.seq.unwrap(), r.ts_event.0))
        .collect();
    assert_eq!(rows.len(), 15_300);
    let scanned = |t: i64| {
        rows.iter()
            .filter(|&&(_, ts)| ts >= t)
            .map(|&(seq, _)| seq - 1)
            .min()
            .unwrap_or(15_300)
    };
    let mut times: Vec<i64> = rows.iter().step_by(97).map(|r| r.1).collect();
    times.extend(times.clone().iter().flat_map(|t| [t - 1, t + 1]));
    let start = rows.iter().map(|r| r.1).min().unwrap();
    let end = rows.iter().map(|r| r.1).max().unwrap();
    times.extend([start - 1, start, end, end + 1, i64::MIN, i64::MAX]);
    let check = |what: &str| {
        for &t in &times {
            assert_eq!(
                store().seq_before_time(live, Timestamp(t)).unwrap(),
                scanned(t),
                "{what}: {t}"
            );
        }
    };
    let conn = rusqlite::Connection::open(&live.path).unwrap();
    let directory_rows: i64 = conn
        .query_row("SELECT count(*) FROM batches", [], |r| r.get(0))
        .unwrap();
    assert!(directory_rows >= 3, "{directory_rows}");
    check("every tick under a directory row");
    // The last two rows gone (a writer that died before writing them): their ticks are the
    // tail, read by scanning.
    conn.execute(
        "DELETE FROM batches WHERE first_seq >= \
         (SELECT first_seq FROM batches ORDER BY first_seq DESC LIMIT 1 OFFSET 1)",
        [],
    )
    .unwrap();
    check("the last rows' ticks in the tail");
}

/// A tail as started with `args`, and what it is once it reads: (the reading process, its
/// session, its policy, its session's group and nice).
fn reading(child: &Child) -> (u32, String, String, String) {
    let mut found = None;
    super::util::wait_until(
        Duration::from_secs(30),
        "the tail reading at SCHED_IDLE",
        || {
            let pid = children(child.id()).first().copied().unwrap_or(child.id());
            found = stat_field(pid, 41)
                .filter(|p| p == "5")
                .and_then(|p| Some((pid, stat_field(pid, 6)?, p)));
            found.is_some()
        },
    );
    let (pid, session, policy) = found.unwrap();
    let group = std::fs::read_to_string(format!("/proc/{pid}/autogroup")).unwrap_or_default();
    (pid, session, policy, group.trim().to_owned())
}

/// Whether `pid` has ended (gone, or a zombie no one has reaped yet).
fn ended(pid: u32) -> bool {
    stat_field(pid, 3).is_none_or(|state| state == "Z")
}

/// What could go wrong: a tail started from another terminal than the recorder's is weighed
/// by the kernel in its own session's group, where its `SCHED_IDLE` yields only to itself: it
/// then takes the recorder's CPU as if at normal priority. Or, to get a group of its own, it
/// lowers its shell's, or stops answering Ctrl-C, or outlives a killed parent, or moves out of
/// the recorder's own session, where `SCHED_IDLE` alone serves best.
#[test]
fn a_tail_yields_the_cpu_to_a_recorder_in_another_session_and_still_answers_signals() {
    use tickrec::priority::{cpu_group, CpuGroup};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    ingest(&db, &ticks("2026-11-20", 0, 10, 10));
    let cursor = dir.path().join("cursor");
    let start = |args: &[&str], own_session: bool| {
        std::fs::remove_file(&cursor).ok();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickrec"));
        cmd.arg("--db")
            .arg(&db)
            .args(["tail", "--follow", "--cursor-file"]);
        cmd.arg(&cursor).args(args);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        if own_session {
            // SAFETY: setsid is async-signal-safe and the closure does not allocate.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                    (libc::setsid() >= 0)
                        .then_some(())
                        .ok_or_else(std::io::Error::last_os_error)
                });
            }
        }
        Reaped::new(cmd.spawn().unwrap())
    };
    let group = cpu_group();
    if group != CpuGroup::SharedSession {
        // Where the kernel does not group by session (or a cgroup decides), the tail reads in
        // the process it was started as.
        let mut tail = start(&[], false);
        let (pid, ..) = reading(&tail);
        assert_eq!(pid, tail.id(), "{group:?}");
        tail.kill().unwrap();
        tail.wait().unwrap();
        eprintln!("this machine weighs processes as {group:?}: the session cases are not run");
        return;
    }
    let my_session = stat_field(std::process::id(), 6).unwrap();

    // From this test's session, with no writer in it: the tail reads in a child that leads a
    // session of its own, at nice 19; this process's group is left as it was.
    let my_group = std::fs::read_to_string("/proc/self/autogroup").unwrap();
    let mut tail = start(&[], false);
    let (reader, session, _, group) = reading(&tail);
    assert_ne!(reader, tail.id());
    assert_eq!(session, reader.to_string());
    assert!(group.ends_with("nice 19"), "{group}");
    assert_eq!(
        std::fs::read_to_string("/proc/self/autogroup").unwrap(),
        my_group
    );
    assert_eq!(stat_field(tail.id(), 6).unwrap(), my_session);
    // Ctrl-Z stops the process started, and the reader with it; `fg` continues both.
    let state = |pid: u32| stat_field(pid, 3).unwrap_or_default();
    // SAFETY: kill takes no pointers; the pid is the test's own child.
    unsafe { libc::kill(tail.id() as libc::pid_t, libc::SIGTSTP) };
    super::util::wait_until(Duration::from_secs(30), "both stopped", || {
        state(tail.id()) == "T" && state(reader) == "T"
    });
    // SAFETY: as above.
    unsafe { libc::kill(tail.id() as libc::pid_t, libc::SIGCONT) };
    super::util::wait_until(Duration::from_secs(30), "both going on", || {
        state(tail.id()) != "T" && state(reader) != "T"
    });
    // Ctrl-C reaches the process started, which passes it on: the reader stops after its
    // batch, and the exit status is its (not 143, as when SIGTERM ends a process).
    super::util::wait_until(Duration::from_secs(30), "the cursor saved", || {
        cursor.exists()
    });
    // SAFETY: kill takes no pointers; the pid is the test's own child.
    unsafe { libc::kill(tail.id() as libc::pid_t, libc::SIGINT) };
    assert!(tail.wait().unwrap().success());
    super::util::wait_until(Duration::from_secs(30), "the reader to end", || {
        ended(reader)
    });
    assert_eq!(
        std::fs::read_to_string(&cursor).unwrap().trim(),
        "2026-11-20:10"
    );
    // Killed outright, the process started takes the reader with it.
    let mut tail = start(&[], false);
    let (reader, ..) = reading(&tail);
    tail.kill().unwrap();
    tail.wait().unwrap();
    super::util::wait_until(
        Duration::from_secs(30),
        "the orphaned reader to end",
        || ended(reader),
    );

    // Started in a session of its own (a terminal, a service): it lowers that session's group.
    let mut tail = start(&[], true);
    let (reader, session, _, group) = reading(&tail);
    assert_eq!(reader, tail.id());
    assert_eq!(session, reader.to_string());
    assert!(group.ends_with("nice 19"), "{group}");
    tail.kill().unwrap();
    tail.wait().unwrap();

    // Beside a writer in this session (it holds the newest day's lock), the group is the
    // writer's too: the tail stays in it, under SCHED_IDLE.
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let lock = tickrec::store::daylock::DayLock::shared(&db, day, Duration::from_secs(5)).unwrap();
    let mut tail = start(&[], false);
    let (reader, session, ..) = reading(&tail);
    assert_eq!(
        reader,
        tail.id(),
        "the tail left the writer's session: the lock file's inode {:?}, this process {} in \
         session {my_session}; /proc/locks:\n{}",
        std::fs::metadata(lock.path()).map(|m| std::os::unix::fs::MetadataExt::ino(&m)),
        std::process::id(),
        std::fs::read_to_string("/proc/locks").unwrap_or_default()
    );
    assert_eq!(session, my_session);
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{reader}/autogroup")).unwrap(),
        my_group
    );
    tail.kill().unwrap();
    tail.wait().unwrap();
    drop(lock);

    // At --priority normal, none of it.
    let mut tail = start(&["--priority", "normal"], false);
    super::util::wait_until(Duration::from_secs(30), "the tail to have read", || {
        cursor.exists()
    });
    assert!(children(tail.id()).is_empty());
    assert_ne!(stat_field(tail.id(), 41).unwrap(), "5");
    tail.kill().unwrap();
    tail.wait().unwrap();
}

/// What could go wrong: a tail in a group of its own still takes turns on the CPU while the
/// recorder's threads wait for one (a group at the lowest weight gets its share; a cgroup not
/// marked idle, its full weight). Beside a process holding the newest day's lock (the
/// recorder) whose threads wait for a CPU, a tail steps aside and says so; with no recorder,
/// the same load leaves it reading as ever. Either way it passes every tick, once.
#[test]
fn a_tail_steps_aside_while_the_recorder_waits_for_a_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    // Enough rows that the tail's watch judges the recorder before the tail is done: it knows
    // which threads are busy only from a second listing 50 ms after the first, and a tail of
    // 5,000 rows given the CPU in one burst (three suites at once) could end before it.
    ingest(&db, &ticks("2026-11-20", 0, 20_000, 10));
    let tail = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickrec"));
        cmd.arg("--db")
            .arg(&db)
            .args(["tail", "--from", "2026-11-20:0", "--format", "jsonl"])
            .env("RUST_LOG", "warn");
        // In a session of its own, as from another terminal: its group at nice 19.
        // SAFETY: setsid is async-signal-safe and the closure does not allocate.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                (libc::setsid() >= 0)
                    .then_some(())
                    .ok_or_else(std::io::Error::last_os_error)
            });
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
        let seqs: Vec<i64> = keys(&lines).into_iter().map(|(_, seq)| seq).collect();
        assert_eq!(seqs, (1..=20_000).collect::<Vec<i64>>());
        text(&out.stderr)
    };
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let spinning = super::util::Spinners::start(cpus + 1);
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let lock = tickrec::store::daylock::DayLock::shared(&db, day, Duration::from_secs(5)).unwrap();
    let said = tail();
    assert!(said.contains("tail: stepped aside "), "{said}");
    assert!(
        said.contains("while the recorder waited for a CPU"),
        "{said}"
    );
    drop(lock);
    let said = tail();
    drop(spinning);
    assert!(!said.contains("stepped aside"), "{said}");
    assert!(
        said.contains("tail: 20000 ticks; cursor 2026-11-20:20000"),
        "{said}"
    );
}

/// A cgroup of the CPU controller's hierarchy for one test, removed when dropped.
struct CpuCgroup(std::path::PathBuf);

impl CpuCgroup {
    /// Under the hierarchy with the `cpu` controller (v1, or v2 with it enabled at the root).
    /// Needs root, which CI has; without it the test fails and says so.
    /// `name` tells apart the cgroups of tests running at once.
    fn new(name: &str) -> CpuCgroup {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let root = mounts
            .lines()
            .find_map(|l| {
                let (left, right) = l.split_once(" - ")?;
                let mut r = right.split_whitespace();
                let (fstype, _, options) = (r.next()?, r.next()?, r.next()?);
                let dir = std::path::PathBuf::from(left.split_whitespace().nth(4)?);
                let v1 = fstype == "cgroup" && options.split(',').any(|o| o == "cpu");
                let v2 = fstype == "cgroup2"
                    && std::fs::read_to_string(dir.join("cgroup.subtree_control"))
                        .is_ok_and(|c| c.split_whitespace().any(|x| x == "cpu"));
                (v1 || v2).then_some(dir)
            })
            .expect("a cgroup hierarchy with the cpu controller (v1's cpu, or v2 with +cpu at its root)");
        let dir = root.join(format!("tickrec-test-{}-{name}", std::process::id()));
        std::fs::create_dir(&dir).unwrap_or_else(|e| {
            panic!(
                "creating {} (run the tests as root, as CI does): {e}",
                dir.display()
            )
        });
        CpuCgroup(dir)
    }

    /// `cmd`, run by `sh` once it has moved itself into this cgroup.
    fn sh(&self, cmd: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(format!(
            "echo $$ > {}/cgroup.procs && exec {cmd}",
            self.0.display()
        ));
        c
    }
}

impl Drop for CpuCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// What could go wrong: under systemd's cgroups the kernel weighs a tail's cgroup against the
/// recorder's, its `SCHED_IDLE` yields only within its own, and nothing tells the operator; or
/// the tail warns where there is nothing to fix (its cgroup marked idle, or the recorder's own).
#[test]
#[ignore = "needs root to make a cgroup; .ci/run runs it (--include-ignored)"]
fn a_tail_in_a_cpu_cgroup_says_so_unless_it_is_idle_or_holds_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    ingest(&db, &ticks("2026-11-20", 0, 10, 10));
    let group = CpuCgroup::new("warn");
    let bin = env!("CARGO_BIN_EXE_tickrec");
    let tail = || {
        let out = group
            .sh(&format!("{bin} --db {} tail --max-ticks 1", db.display()))
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stderr)
    };
    let warning = "weighs this process's CPU in its cgroup";
    let said = tail();
    assert!(said.contains(warning), "{said}");
    assert!(said.contains("CPUWeight=idle"), "{said}");

    // Marked idle: it yields to every cgroup that is not.
    let idle = group.0.join("cpu.idle");
    if idle.exists() {
        std::fs::write(&idle, "1").unwrap();
        let said = tail();
        assert!(!said.contains(warning), "{said}");
        std::fs::write(&idle, "0").unwrap();
    }

    // A writer of the newest day in the same cgroup (it holds the day's lock): SCHED_IDLE
    // yields to it there.
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let lock = tickrec::store::layout::lock_path(&db, day);
    // It holds the lock until its standard input closes.
    let mut writer = group
        .sh(&format!("flock -s -o {} cat", lock.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    super::util::wait_until(
        Duration::from_secs(30),
        "the writer holding the lock",
        || !tickrec::priority::flock_holders(&lock).is_empty(),
    );
    let said = tail();
    assert!(!said.contains(warning), "{said}");
    drop(writer.stdin.take());
    assert!(writer.wait().unwrap().success());
}

/// What could go wrong: `bench --tails-cgroup` measures tails that never joined the cgroup it
/// names, and the figure said to be of tails in an idle cgroup is of another setting.
#[test]
#[ignore = "needs root to make a cgroup; .ci/run runs it (--include-ignored)"]
fn the_bench_starts_its_tails_in_the_cgroup_it_is_given() {
    let group = CpuCgroup::new("bench");
    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(dir.path().join("bench.log")).unwrap();
    let mut bench = Command::new(env!("CARGO_BIN_EXE_tickrec"))
        .arg("--db")
        .arg(dir.path().join("db"))
        .args([
            "bench", "--only", "tails", "--rounds", "1", "--ticks", "400000",
        ])
        .args(["--symbols", "8", "--tails-cgroup"])
        .arg(&group.0)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    // A tail (a `tickrec … tail` process) among the cgroup's processes while the stage runs.
    let a_tail_in_it = || {
        let procs = std::fs::read_to_string(group.0.join("cgroup.procs")).unwrap_or_default();
        procs.lines().any(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).any(|arg| arg == b"tail"))
        })
    };
    // Until one is seen, or the bench has ended without one.
    let deadline = Instant::now() + Duration::from_secs(120);
    let seen = loop {
        if a_tail_in_it() {
            break true;
        }
        if bench.try_wait().unwrap().is_some() {
            break a_tail_in_it();
        }
        assert!(Instant::now() < deadline, "timed out waiting for the bench");
        std::thread::sleep(Duration::from_millis(5));
    };
    let status = bench.wait().unwrap();
    let said = std::fs::read_to_string(dir.path().join("bench.log")).unwrap();
    assert!(status.success(), "{said}");
    assert!(seen, "no tail was seen in {}: {said}", group.0.display());
    assert!(said.contains("four tails following every tick"), "{said}");
}

/// What could go wrong: the nightly `archive` (or `unarchive`) renames a day into its other
/// form between a reader's listing of the folder and its opening of the file. A following tail
/// watching that day ended with "unable to open database file", and a range query skipped the
/// day (about one query in 300 while the day was archived and restored in a loop). Yesterday
/// is archived, to Parquet and to `.db.zst` in turn, and restored in a loop while a tail
/// follows it and today and range queries and `recent` run: the tail keeps following and
/// passes every tick once in recording order, and every answer is whole.
#[test]
fn a_following_tail_and_queries_read_a_day_archived_and_restored_under_them_whole() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use tickrec::store::reader::{Store, Symbols};
    use tickrec::tick::Timestamp;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    ingest(&db, &ticks("2026-11-20", 0, 2000, 10));
    let today = chrono::Utc::now().date_naive();
    ingest(&db, &ticks(&today.to_string(), 0, 500, 0));
    let mut tail = Follower::start(&db, &["--from", "2026-11-20:0"]);
    tail.until(2500);
    let stop = Arc::new(AtomicBool::new(false));
    let archiver = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut cycles = 0u32;
            while started.elapsed() < Duration::from_secs(6) && !stop.load(Ordering::Relaxed) {
                let format = ["parquet", "sqlite-zst"][cycles as usize % 2];
                let out = tickrec(
                    &db,
                    &["archive", "--older-than", "1d", "--format", format],
                    None,
                );
                assert!(out.status.success(), "{}", text(&out.stderr));
                let out = tickrec(&db, &["unarchive", "2026-11-20"], None);
                assert!(out.status.success(), "{}", text(&out.stderr));
                cycles += 1;
            }
            cycles
        })
    };
    let store = Store::new(&db, Default::default());
    let (from, to) = (
        Timestamp::parse("2026-11-20T00:00:00Z").unwrap(),
        Timestamp::parse(&format!("{}T00:00:00Z", today + chrono::Days::new(1))).unwrap(),
    );
    let mut queries = 0u32;
    while !archiver.is_finished() {
        let mut rows = 0u64;
        let read = store
            .range_of(&Symbols::All, from, to, &mut |_| {
                rows += 1;
                Ok(())
            })
            .unwrap();
        assert!(read.broken.is_empty(), "query {queries}: {:?}", read.broken);
        assert_eq!(rows, 2500, "query {queries}");
        let mut newest = Vec::new();
        let read = store
            .recent_of(&Symbols::All, 600, &mut |r| {
                newest.push(r.ts_event);
                Ok(())
            })
            .unwrap();
        assert!(
            read.broken.is_empty(),
            "recent {queries}: {:?}",
            read.broken
        );
        assert_eq!(newest.len(), 600, "recent {queries}");
        queries += 1;
        assert!(
            tail.child.try_wait().is_ok_and(|s| s.is_none()),
            "the tail {}",
            tail.state()
        );
    }
    stop.store(true, Ordering::Relaxed);
    let cycles = archiver.join().unwrap();
    assert!(
        cycles >= 10,
        "the race ran: {cycles} cycles, {queries} queries"
    );
    // Late ticks for yesterday after the loop: the tail, still following, passes them.
    ingest(&db, &ticks("2026-11-20", 3000, 10, 23));
    tail.until(2510);
    let got = keys(&tail.stop());
    let want: Vec<(String, i64)> = (1..=2010)
        .map(|s| ("2026-11-20".to_owned(), s))
        .chain((1..=500).map(|s| (today.to_string(), s)))
        .collect();
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(sorted, want, "every tick once ({cycles} cycles)");
    let yesterday: Vec<i64> = got
        .iter()
        .filter(|k| k.0 == "2026-11-20")
        .map(|k| k.1)
        .collect();
    assert!(yesterday.windows(2).all(|w| w[0] < w[1]), "recording order");
}

/// What could go wrong: a tail writing into a file, killed mid-write (kill -9, a power loss),
/// leaves rows its cursor file does not account for, or half a row, and the next run appends
/// after them: ticks twice, a broken row, or a second CSV header.
#[test]
fn a_tail_into_a_file_killed_at_any_moment_resumes_it_with_every_tick_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let chunk = 50_000u32;
    ingest(&db, &ticks("2026-11-20", 0, chunk, 10));
    let (out, cursor) = (dir.path().join("ticks.csv"), dir.path().join("cursor"));
    let size = || std::fs::metadata(&out).map_or(0, |m| m.len());
    let start = |said: &Path| {
        Reaped::new(
            Command::new(env!("CARGO_BIN_EXE_tickrec"))
                .arg("--db")
                .arg(&db)
                .args([
                    "tail",
                    "--follow",
                    "--priority",
                    "normal",
                    "--format",
                    "csv",
                ])
                .arg("--out")
                .arg(&out)
                .arg("--cursor-file")
                .arg(&cursor)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(said).unwrap())
                .spawn()
                .unwrap(),
        )
    };
    // Four times: a following tail, more ticks committed as it writes, killed once it has
    // written more; half a row left behind once.
    let mut n = chunk;
    for round in 0..4u32 {
        let before = size();
        let said = dir.path().join(format!("said-{round}"));
        let mut tail = start(&said);
        ingest(&db, &ticks("2026-11-20", n, chunk, 11 + round));
        n += chunk;
        super::util::wait_until(Duration::from_secs(60), "more written", || size() > before);
        assert!(tail.try_wait().unwrap().is_none(), "a following tail ended");
        if round == 0 {
            let (o, c) = (out.to_str().unwrap(), cursor.to_str().unwrap());
            let second = tickrec(&db, &["tail", "--out", o, "--cursor-file", c], None);
            assert!(!second.status.success());
            assert_says(&second.stderr, "is writing to it");
        }
        tail.kill().unwrap();
        tail.wait().unwrap();
        if round == 1 {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(&out).unwrap();
            f.write_all(b"77777,EURUSD,17951688").unwrap();
        }
    }
    let last = tickrec(
        &db,
        &[
            "tail",
            "--priority",
            "normal",
            "--format",
            "csv",
            "--out",
            out.to_str().unwrap(),
            "--cursor-file",
            cursor.to_str().unwrap(),
        ],
        None,
    );
    assert!(last.status.success(), "{}", text(&last.stderr));
    // The run after the half row cut it off (and what its kill left unsaved).
    let said = std::fs::read_to_string(dir.path().join("said-2")).unwrap() + &text(&last.stderr);
    assert!(
        said.contains("written after its cursor was last saved"),
        "{said}"
    );

    let written = std::fs::read_to_string(&out).unwrap();
    let mut lines = written.lines();
    assert!(lines.next().unwrap().starts_with("seq,symbol,"));
    let seqs: Vec<i64> = lines
        .map(|l| {
            assert_eq!(l.split(',').count(), 10, "a broken row: {l}");
            l.split(',').next().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(seqs, (1..=i64::from(n)).collect::<Vec<_>>());
    let saved = std::fs::read_to_string(&cursor).unwrap();
    assert_eq!(
        saved,
        format!("2026-11-20:{n}\nout_bytes {}\n", written.len())
    );

    // A file its cursor file does not account for is refused, and so is one cut short.
    let refused = |args: &[&str], why: &str| {
        let o = tickrec(&db, args, None);
        assert!(!o.status.success());
        assert!(text(&o.stderr).contains(why), "{}", text(&o.stderr));
    };
    let (o, c) = (out.to_str().unwrap(), cursor.to_str().unwrap());
    refused(
        &[
            "tail",
            "--out",
            o,
            "--cursor-file",
            c,
            "--from",
            "2026-11-20:0",
        ],
        "that no cursor file accounts for",
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(&out)
        .unwrap()
        .set_len(100)
        .unwrap();
    refused(&["tail", "--out", o, "--cursor-file", c], "fewer than the");
    refused(&["tail", "--out", o], "--cursor-file");
}
