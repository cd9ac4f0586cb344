//! The `tickrec` binary, run as a child process over real files.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::util::{assert_says, sql_int, text};

pub fn tickrec(db: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tickrec"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("TICK_DB_PATH")
        .env_remove("TICK_STORAGE_BACKEND")
        .env_remove("BROKER_ID")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tickrec binary runs");
    let mut input = child.stdin.take().unwrap();
    let text = stdin.unwrap_or_default().to_owned();
    // Fed from its own thread: a child that reports on stderr while it reads would otherwise
    // fill that pipe and wait for us while we wait for it.
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(text.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

const GOOD_AND_BAD: &str = r#"{"symbol":"EURUSD","bid":1.08502,"ask":1.08510,"bid_size":1000000,"ask_size":2000000,"source":"LP1","ts_event":"2026-11-23T10:00:00.000000001Z"}
{"symbol":"EURUSD","bid":"abc","ts_event":"2026-11-23T10:00:01Z"}
{"symbol":"EURUSD","bid":1.08503,"ask":null,"ts_event":1795428001500000000}

{"symbol":"EURUSD","ts_event":"2026-11-23T10:00:03Z","bid":-1}
{"symbol":"GBPUSD","bid":1.26800,"ask":1.26810,"ts_event":"2026-11-24T00:00:00Z"}
"#;

#[test]
fn ingest_reports_bad_lines_by_number_stores_the_rest_and_fails_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let out = tickrec(dir.path(), &["ingest", "-"], Some(GOOD_AND_BAD));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("line 2: field `bid`"), "{err}");
    assert!(err.contains("line 5: field `bid`: negative"), "{err}");
    assert_says(&out.stdout, "accepted 3 rejected 2");

    let out = tickrec(
        dir.path(),
        &[
            "query",
            "range",
            "EURUSD",
            "--from",
            "2026-11-23",
            "--to",
            "2026-11-24",
            "--format",
            "csv",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "seq,symbol,ts_event_ns,ts_event,ts_recv_ns,bid,ask,bid_size,ask_size,source"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[1].starts_with("1,EURUSD,1795428000000000001,2026-11-23T10:00:00.000000001Z,"));
    assert!(
        lines[1].ends_with(",1.08502,1.08510,1000000,2000000,LP1"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].ends_with(",1.08503,,,,default"),
        "absent side, default source: {}",
        lines[2]
    );
}

#[test]
fn csv_input_is_read_by_header_names() {
    let dir = tempfile::tempdir().unwrap();
    let input = "ts_event,symbol,bid,ask,source\n2026-11-23T10:00:00Z,USDJPY,151.230,151.240,LP2\n";
    let out = tickrec(dir.path(), &["ingest", "--format", "csv"], Some(input));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = tickrec(
        dir.path(),
        &["query", "recent", "USDJPY", "--format", "jsonl"],
        None,
    );
    let line = text(&out.stdout);
    assert!(
        line.contains("\"bid\":151.230,"),
        "exact text, trailing zero kept: {line}"
    );
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(v["source"], "LP2");
    assert_eq!(v["seq"], 1);
}

#[test]
fn query_recent_is_newest_first_across_days_and_stats_lists_each_day() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = String::new();
    for (day, n) in [("2026-11-21", 3), ("2026-11-22", 2)] {
        for i in 0..n {
            input.push_str(&format!(
                "{{\"symbol\":\"EURUSD\",\"bid\":\"1.{i}\",\"ts_event\":\"{day}T10:00:0{i}Z\"}}\n"
            ));
        }
    }
    let out = tickrec(dir.path(), &["ingest"], Some(&input));
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = tickrec(
        dir.path(),
        &["query", "recent", "EURUSD", "-n", "3", "--format", "csv"],
        None,
    );
    let rows: Vec<String> = text(&out.stdout)
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(3).unwrap().to_owned())
        .collect();
    assert_eq!(
        rows,
        [
            "2026-11-22T10:00:01.000000000Z",
            "2026-11-22T10:00:00.000000000Z",
            "2026-11-21T10:00:02.000000000Z"
        ]
    );

    let out = tickrec(dir.path(), &["stats", "--json"], None);
    let days: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(days.as_array().unwrap().len(), 2);
    assert_eq!(days[0]["day"], "2026-11-21");
    assert_eq!(days[0]["ticks"], 3);
    assert_eq!(days[0]["symbols"], 1);
    assert_eq!(days[0]["first_ts_event"], "2026-11-21T10:00:00.000000000Z");
    assert_eq!(days[0]["last_ts_event"], "2026-11-21T10:00:02.000000000Z");
    assert!(days[1]["bytes"].as_u64().unwrap() > 0);
    let table = text(&tickrec(dir.path(), &["stats"], None).stdout);
    assert!(table.contains("total: 2 days, 5 ticks"), "{table}");
}

#[test]
fn a_bad_config_value_is_an_error_naming_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[recorder]\noverflow = \"sometimes\"\n").unwrap();
    let out = tickrec(
        dir.path(),
        &["--config", cfg.to_str().unwrap(), "stats"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("overflow"),
        "{err}"
    );
}

#[test]
fn environment_chooses_the_database_unless_a_flag_does() {
    let dir = tempfile::tempdir().unwrap();
    let env_db = dir.path().join("from-env");
    let line = "{\"symbol\":\"X\",\"bid\":1,\"ts_event\":\"2026-11-23T00:00:00Z\"}\n";
    let mut child = Command::new(env!("CARGO_BIN_EXE_tickrec"))
        .arg("ingest")
        .env("TICK_DB_PATH", &env_db)
        .env("BROKER_ID", "ENVBROKER")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(line.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    let out = tickrec(&env_db, &["query", "recent", "X", "--format", "csv"], None);
    assert_says(&out.stdout, ",ENVBROKER");
}

#[test]
fn a_query_piped_into_a_reader_that_leaves_early_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = String::new();
    for i in 0..20_000 {
        input.push_str(&format!(
            "{{\"symbol\":\"X\",\"bid\":1,\"ts_event\":{}}}\n",
            1_795_428_000_000_000_000i64 + i
        ));
    }
    assert!(tickrec(dir.path(), &["ingest"], Some(&input))
        .status
        .success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_tickrec"))
        .args(["--db", dir.path().to_str().unwrap(), "query", "range", "X"])
        .args([
            "--from",
            "2026-11-23",
            "--to",
            "2026-11-24",
            "--format",
            "csv",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then hang up, like `| head -1`.
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = [0u8; 64];
    std::io::Read::read(&mut stdout, &mut buf).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

/// The bench command runs end to end on a small size and reports every figure it promises
/// (no timing is asserted: figures belong to benchmarks, not tests).
#[test]
fn bench_reports_every_figure_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = tickrec(
        dir.path(),
        &[
            "bench",
            "--ticks",
            "20000",
            "--symbols",
            "8",
            "--e2e-seconds",
            "1",
            "--json",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "ceiling_ticks_per_s",
        "writer_ticks_per_s",
        "end_to_end_ticks_per_s",
        "store_tick_p99_ns",
        "store_tick_p999_ns",
        "commit_p99_us",
        "rss_bytes",
        "ring_bytes",
        "bytes_per_tick",
        "recent100_p50_us",
        "range_ticks_per_s",
        "ceiling_autocheckpoint_ticks_per_s",
        "writer_ticks_per_s_with_queries",
        "live_range_ticks_per_s",
        "live_range_first_row_ms",
        "live_recent100_p50_us",
        "wal_max_bytes",
        "writer_vs_ceiling_paired",
        "writer_with_queries_vs_ceiling_paired",
        "end_to_end_vs_ceiling_paired",
        "ceiling_cpu_ns_per_tick",
        "writer_cpu_ns_per_tick",
        "end_to_end_cpu_ns_per_tick",
        "ceiling_thread_cpu_ns_per_tick",
        "writer_thread_cpu_ns_per_tick",
    ] {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {v}");
    }
    // Each ratio's rounds, one per round.
    for key in [
        "writer_vs_ceiling_rounds",
        "writer_with_queries_vs_ceiling_rounds",
        "end_to_end_vs_ceiling_rounds",
    ] {
        let rounds = v[key].as_array().map_or(0, Vec::len);
        assert_eq!(rounds, 3, "{key}: {}", v[key]);
    }
    assert!(v["range_rows"].as_u64().unwrap() > 0);
}

/// `--rounds` sets how many rounds the ratio stages run (each a ceiling run and the run held
/// against it), and the table sums more than five up by their quartiles.
#[test]
fn the_ratio_stages_run_the_rounds_asked() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "bench",
        "--only",
        "writer",
        "--ticks",
        "5000",
        "--symbols",
        "4",
        "--e2e-seconds",
        "0.3",
        "--rounds",
        "6",
    ];
    let out = tickrec(dir.path(), &args, None);
    let table = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(table.contains("best of 6"), "{table}");
    let summed = table
        .lines()
        .filter(|l| l.contains("quartiles") && l.contains("(6 rounds)"))
        .count();
    assert_eq!(summed, 2, "the writer's and end to end's rounds: {table}");
    // Six rounds are the fewest that give the median an interval at 95 % (their range), and
    // the table says where each target falls against it.
    let judged = table
        .lines()
        .filter(|l| l.contains("at 95 %: target"))
        .count();
    assert_eq!(judged, 2, "{table}");
    let out = tickrec(dir.path(), &[&args[..], &["--json"]].concat(), None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ratio_rounds"], 6, "{v}");
    for (key, ci) in [
        ("writer_vs_ceiling_rounds", "writer_vs_ceiling_median_ci95"),
        (
            "end_to_end_vs_ceiling_rounds",
            "end_to_end_vs_ceiling_median_ci95",
        ),
    ] {
        let rounds: Vec<f64> = v[key]
            .as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
            .unwrap_or_default();
        assert_eq!(rounds.len(), 6, "{key}: {v}");
        let lo = rounds.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = rounds.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(v[ci], serde_json::json!([lo, hi]), "{ci}: {v}");
    }
    // `--pool` reads such outputs back: the same file twice pools twelve rounds of each ratio
    // the run measured, and names every file it read.
    let json = dir.path().join("run.json");
    std::fs::write(&json, &out.stdout).unwrap();
    let json = json.to_str().unwrap();
    let out = tickrec(dir.path(), &["bench", "--pool", json, json], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pooled = text(&out.stdout);
    let lines: Vec<&str> = pooled.lines().filter(|l| l.contains("pooled:")).collect();
    assert_eq!(lines.len(), 2, "the writer's and end to end's: {pooled}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains(" 12 rounds") && l.contains(" at 9")),
        "{pooled}"
    );
    assert_eq!(pooled.matches(json).count(), 4, "{pooled}");
    // The ratios of stages this run did not take say so (the live-day reader's, the tails',
    // the subscribers' three).
    assert_eq!(
        pooled.matches("  no rounds of it in these files").count(),
        5,
        "{pooled}"
    );
    let out = tickrec(dir.path(), &["bench", "--pool", "no-such.json"], None);
    assert!(!out.status.success());
    assert_says(&out.stderr, "no-such.json");
    let out = tickrec(dir.path(), &["bench", "--rounds", "0"], None);
    assert!(!out.status.success());
}

/// `bench --tails-cgroup` names the cgroup its tails could not join before any stage runs.
#[test]
fn the_tails_cgroup_is_checked_before_the_bench_starts() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-cgroup");
    let out = tickrec(
        dir.path(),
        &[
            "bench",
            "--only",
            "tails",
            "--ticks",
            "5000",
            "--tails-cgroup",
            missing.to_str().unwrap(),
        ],
        None,
    );
    let log = text(&out.stderr);
    assert!(!out.status.success(), "{log}");
    let named = missing.join("cgroup.procs");
    assert!(
        log.contains(&format!("--tails-cgroup: {}", named.display())),
        "{log}"
    );
    assert!(!log.contains("(b) writer"), "no stage ran: {log}");
}

/// `--publish-rate` holds the subscribers' stage's simulator to its rate: every run of the
/// stage commits at most what that rate can carry (an incremental holds up to three symbols),
/// and the report says the rate it ran at; `--rounds` sets the stage's rounds (five by default);
/// `--publish-symbols` has each subscriber ask for that many symbols.
#[test]
fn the_subscribers_stage_runs_at_the_rate_asked() {
    let dir = tempfile::tempdir().unwrap();
    let out = tickrec(
        dir.path(),
        &[
            "bench",
            "--only",
            "publish",
            "--symbols",
            "4",
            "--e2e-seconds",
            "0.5",
            "--publish-rate",
            "2000",
            "--publish-symbols",
            "2",
            "--rounds",
            "3",
            "--json",
        ],
        None,
    );
    let log = text(&out.stderr);
    assert!(out.status.success(), "{log}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["publish_rate_msgs_per_s"], 2000, "{v}");
    // Each subscriber asked for two symbols, not every one.
    assert_eq!(v["publish_symbols_each"], 2, "{v}");
    assert!(
        log.contains("with 8 subscribers of 2 symbols each"),
        "{log}"
    );
    assert_eq!(v["publish_rounds"], 3, "{v}");
    // The clock's step is measured, so a reader can tell a p99 a step or two long.
    assert!(
        v["store_tick_clock_step_ns"]
            .as_f64()
            .is_some_and(|ns| ns > 0.0 && ns < 1_000.0),
        "{v}"
    );
    // Each round's p99.9 is also read between the clock's steps, where a shift smaller than a
    // step shows as less than a step.
    let fine = v["publish_store_tick_p999_fine_ratios"].as_array().unwrap();
    assert_eq!(fine.len(), 3, "{v}");
    assert!(
        fine.iter().all(|r| r.as_f64().is_some_and(f64::is_finite)),
        "{v}"
    );
    assert!(log.contains("between the clock's steps)"), "{log}");
    let rates: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("ticks committed"))
        .filter_map(|l| l.split(", ").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(rates.len(), 6, "three rounds of two runs: {log}");
    // A run of half a second on a loaded machine may end before its session has logged on
    // (none committed): what no run may do is pass the rate.
    assert!(rates.iter().all(|&r| r <= 6000.0), "{rates:?}");
    assert!(rates.iter().any(|&r| r > 0.0), "{log}");
}

/// What could go wrong: a year-1900 tick or one a year ahead of its receive time (a bad LP
/// clock, a garbled field) used to land in its own strange day file, and a far-future one
/// became the writer's "today". Both are refused at the edge with a named reason and counted;
/// a query bound outside what nanoseconds can hold is an error, not an empty answer.
#[test]
fn event_times_outside_the_window_are_refused_with_a_reason_and_never_make_a_day_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = r#"{"symbol":"EURUSD","bid":1.1,"ask":1.2,"ts_event":"2026-11-23T10:00:00Z"}
{"symbol":"EURUSD","bid":1.1,"ask":1.2,"ts_event":"1900-01-01T00:00:00Z"}
{"symbol":"EURUSD","bid":1.1,"ask":1.2,"ts_event":"2027-11-23T10:00:00Z","ts_recv":"2026-11-23T10:00:00Z"}
{"symbol":"EURUSD","bid":1.1,"ask":1.2,"ts_event":"2026-11-25T10:00:00Z","ts_recv":"2026-11-23T10:00:00Z"}
"#;
    let out = tickrec(dir.path(), &["ingest", "-"], Some(input));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("line 2: ts_event 1900-01-01T00:00:00.000000000Z is before the earliest accepted time 2000-01-01T00:00:00.000000000Z"), "{stderr}");
    assert!(
        stderr.contains(
            "line 3: ts_event 2027-11-23T10:00:00.000000000Z is more than 604800 s ahead"
        ),
        "{stderr}"
    );
    assert!(stdout.contains("accepted 2 rejected 2"), "{stdout}");
    assert!(stdout.contains("rejected_time 2"), "{stdout}");
    let days: Vec<String> = tickrec::store::layout::list_days(dir.path())
        .unwrap()
        .iter()
        .map(|d| d.day.to_string())
        .collect();
    assert_eq!(days, ["2026-11-23", "2026-11-25"]);

    let out = tickrec(
        dir.path(),
        &[
            "query",
            "range",
            "EURUSD",
            "--from",
            "1000-01-01",
            "--to",
            "2026-12-01",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "an error, not an empty answer");
    assert_says(&out.stderr, "--from");
    assert_says(&out.stderr, "outside 1677..2262");
}

/// What could go wrong: a `--db` whose parent is a regular file used to let `record` idle with
/// `health: ok` and exit 0, `ingest` log every tick, and `seal` say `Not a directory` with no
/// path. Every command now checks the folder first and names it with the reason.
/// What could go wrong: a stream asked for as a table (aligned only once complete) starting
/// and printing nothing, or the help offering it.
#[test]
fn tail_and_subscribe_print_csv_or_jsonl_and_refuse_a_table_as_they_parse() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["tail", "--format", "table"][..],
        &["subscribe", "127.0.0.1:9", "--format", "table"],
    ] {
        let out = tickrec(dir.path(), args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_says(&out.stderr, "[possible values: csv, jsonl]");
        let help = tickrec(dir.path(), &[args[0], "--help"], None);
        let help = text(&help.stdout);
        assert!(
            help.contains("- jsonl:") && !help.contains("- table:"),
            "{help}"
        );
    }
}

#[test]
fn an_unusable_db_folder_is_refused_before_any_work_with_its_path_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let under_file = file.join("db");
    for args in [
        &["ingest", "-"][..],
        &["seal"],
        &["archive"],
        &[
            "record",
            "--connect",
            "127.0.0.1:9",
            "--sender-comp-id",
            "A",
            "--target-comp-id",
            "B",
            "--symbols",
            "EURUSD",
        ],
    ] {
        let out = tickrec(&under_file, args, None);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(&format!("--db {}", under_file.display())),
            "{args:?}: {err}"
        );
        assert!(err.contains("cannot be created"), "{args:?}: {err}");
    }
    let out = tickrec(&file, &["stats"], None);
    assert_eq!(out.status.code(), Some(2));
    assert_says(&out.stderr, "exists but is not a directory");
    let out = tickrec(
        &dir.path().join("missing"),
        &["query", "recent", "EURUSD"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert_says(&out.stderr, "no such directory");
}

/// What could go wrong: `record` against an LP that never answers retried, then printed
/// `health: ok` and exited 0 on SIGTERM, so a supervisor saw a healthy recorder.
#[test]
fn record_against_an_lp_that_never_answers_is_unhealthy_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: bind, learn the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = super::util::Reaped::new(
        Command::new(env!("CARGO_BIN_EXE_tickrec"))
            .arg("--db")
            .arg(dir.path())
            .args(["record", "--connect", &format!("127.0.0.1:{port}")])
            .args([
                "--sender-comp-id",
                "REC",
                "--target-comp-id",
                "LP",
                "--symbols",
                "EURUSD",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Wait until it has tried (the connection refusal is logged), then stop it.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("FIX connect failed") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(std::time::Duration::from_secs(20))
        .expect("a connect attempt");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.output().unwrap();
    let (so, se) = (text(&out.stdout), log.join().unwrap());
    assert_eq!(out.status.code(), Some(1), "{so}{se}");
    assert!(
        so.contains("health: UNHEALTHY") && so.contains("never logged on"),
        "{so}"
    );
    assert!(se.contains("never logged on: REC->LP"), "{se}");
}

fn lines(n: usize, from: usize) -> String {
    let t0 = 1_795_428_000_000_000_000i64; // 2026-11-23T10:00:00Z
    (from..from + n)
        .map(|i| {
            format!(
                "{{\"symbol\":\"EURUSD\",\"bid\":\"1.{:05}\",\"ask\":2,\"ts_event\":{}}}\n",
                i % 100_000,
                t0 + i as i64 * 1_000_000
            )
        })
        .collect()
}

fn stored(db: &Path) -> Vec<i64> {
    let mut ts: Vec<i64> = super::util::all_rows(db, "EURUSD")
        .iter()
        .map(|r| r.ts_event.0)
        .collect();
    ts.sort_unstable();
    ts
}

/// What could go wrong: re-ingesting a file after a crash, a stall or a kill stored its
/// committed lines a second time. The file's identity and its committed line count are
/// committed with its ticks, so a re-run (after `kill -9` here) stores each line exactly once;
/// `--force` re-ingests on purpose; standard input gets the same with `--source-id`.
#[test]
fn ingest_resumes_after_its_committed_lines_so_each_line_is_stored_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let file = dir.path().join("big.jsonl");
    std::fs::write(&file, lines(600_000, 0)).unwrap();
    let f = file.to_str().unwrap();

    // kill -9 once some ticks are committed, then run again.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tickrec"))
        .arg("--db")
        .arg(&db)
        .args(["ingest", f])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let day = tickrec::store::layout::day_path(
        &db,
        tickrec::tick::Timestamp(1_795_428_000_000_000_000).day(),
    );
    loop {
        let n =
            rusqlite::Connection::open_with_flags(&day, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .and_then(|c| c.query_row("SELECT count(*) FROM ticks", [], |r| r.get::<_, i64>(0)))
                .unwrap_or(0);
        if n > 0 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "killed before it finished"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "no commit within 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = stored(&db).len();
    assert!(
        partial > 0 && partial < 600_000,
        "killed mid-way ({partial})"
    );

    let out = tickrec(&db, &["ingest", f], None);
    let so = text(&out.stdout);
    assert!(out.status.success(), "{so}{}", text(&out.stderr));
    assert!(so.contains(&format!("already-stored {partial}")), "{so}");
    let expected: Vec<i64> = (0..600_000)
        .map(|i| 1_795_428_000_000_000_000 + i * 1_000_000)
        .collect();
    assert_eq!(stored(&db), expected, "every line once");

    // Nothing new: a third run stores nothing.
    let out = tickrec(&db, &["ingest", f], None);
    assert!(
        text(&out.stdout).contains("accepted 0")
            && text(&out.stdout).contains("already-stored 600000"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(stored(&db).len(), 600_000);

    // The same file grown: only the new lines.
    std::fs::write(&file, lines(600_100, 0)).unwrap();
    let out = tickrec(&db, &["ingest", f], None);
    assert_says(&out.stdout, "accepted 100 ");
    assert_eq!(stored(&db).len(), 600_100);

    // Standard input needs a name to resume.
    let more = lines(50, 700_000);
    for _ in 0..2 {
        let out = tickrec(&db, &["ingest", "-", "--source-id", "feed-a"], Some(&more));
        assert!(out.status.success());
    }
    assert_eq!(stored(&db).len(), 600_150, "stdin with --source-id: once");

    // --force stores again, on purpose.
    let out = tickrec(
        &db,
        &["ingest", "-", "--source-id", "feed-a", "--force"],
        Some(&more),
    );
    assert_says(&out.stdout, "accepted 50 ");
    assert_eq!(stored(&db).len(), 600_200);
}

/// What could go wrong: the live day's directory (ticks written grouped by symbol per
/// transaction, found through `batches`) answering differently from a scan. The same queries
/// run on the live day, then on the day upgraded from a file without a directory, then sealed
/// (the index path) must print the same rows, and `check` must accept the directory.
///
/// (Long on purpose: one scenario end to end, its steps sharing what it builds.)
#[test]
fn live_day_queries_through_the_directory_match_the_sealed_day_exactly() {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let syms = [
        "EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "XAUUSD", "NZDUSD", "USDCHF",
    ];
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let mut lines = String::new();
    let base = chrono::DateTime::parse_from_rfc3339("2026-11-19T00:00:00Z").unwrap();
    // Arrival order with event times up to a minute out of order, uneven symbol mix.
    for i in 0..6000i64 {
        let sym = syms[(rng.gen_range(0..100) * rng.gen_range(0..100) / 1500).min(6)];
        let t = base + chrono::Duration::milliseconds(i * 12_000 + rng.gen_range(-60_000..60_000));
        lines.push_str(&format!(
            "{{\"symbol\":\"{sym}\",\"bid\":{}.{:03},\"ask\":1.5,\"ts_event\":\"{}\",\"ts_recv\":\"{}\"}}\n",
            1 + i % 7,
            i % 1000,
            t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            (base + chrono::Duration::milliseconds(i * 12_000 + 70_000))
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        ));
    }
    let (first, second) = lines.split_at(lines.len() / 3);
    let second_start = second.find('\n').unwrap() + 1;
    let (head, tail) = (
        format!("{first}{}", &second[..second_start]),
        &second[second_start..],
    );
    // The writer writes symbol blocks, which the live answers read where they are whole.
    let config = dir.path().join("blocks.toml");
    std::fs::write(&config, "[writer]\nsymbol_blocks = true\n").unwrap();
    let config = config.to_str().unwrap();
    let ingest = |input: &str, id: &str| {
        let out = tickrec(
            &db,
            &["ingest", "--config", config, "--source-id", id],
            Some(input),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    ingest(&head, "a");
    // Make the file what version 4 wrote (no directory), then write more through an upgrade.
    let day = db.join("2026/11/ticks_2026-11-19.db");
    let conn = rusqlite::Connection::open(&day).unwrap();
    // (An earlier version's view stands in for the one it had.)
    conn.execute_batch(
        "DROP TABLE batches; DROP TABLE blocks; DROP VIEW ticks_v; \
         CREATE VIEW ticks_v AS SELECT seq FROM ticks; PRAGMA user_version = 4;",
    )
    .unwrap();
    drop(conn);
    // (Version 4 had no symbol blocks beside its files either.)
    tickrec::store::blockfile::remove(&day).unwrap();
    let queries: Vec<Vec<String>> = (0..12)
        .map(|k| {
            let sym = syms[k % syms.len()].to_string();
            if k % 3 == 0 {
                vec![
                    "query".into(),
                    "recent".into(),
                    sym,
                    "-n".into(),
                    format!("{}", 1 + k * 40),
                    "--format".into(),
                    "csv".into(),
                ]
            } else {
                let from = base + chrono::Duration::minutes((k * 97 % 1200) as i64);
                let to = from + chrono::Duration::minutes(30 + (k * 53 % 300) as i64);
                vec![
                    "query".into(),
                    "range".into(),
                    sym,
                    "--from".into(),
                    from.to_rfc3339(),
                    "--to".into(),
                    to.to_rfc3339(),
                    "--format".into(),
                    "csv".into(),
                ]
            }
        })
        .collect();
    let answers = |label: &str| -> Vec<String> {
        queries
            .iter()
            .map(|q| {
                let args: Vec<&str> = q.iter().map(String::as_str).collect();
                let out = tickrec(&db, &args, None);
                assert!(out.status.success(), "{label} {q:?}: {}", text(&out.stderr));
                text(&out.stdout)
            })
            .collect()
    };
    let before_upgrade = answers("version 4");
    ingest(tail, "b");
    let live = answers("live");
    let out = tickrec(&db, &["check"], None);
    assert!(
        out.status.success(),
        "check: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let conn = rusqlite::Connection::open(&day).unwrap();
    // The upgrade left the view of this version (it reads an ask stored as a distance).
    let (view, version): (String, i64) = conn
        .query_row(
            "SELECT sql, (SELECT user_version FROM pragma_user_version) FROM sqlite_master \
             WHERE name = 'ticks_v'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(version, tickrec::store::schema::SCHEMA_VERSION);
    assert!(
        tickrec::store::schema::SCHEMA_SQL.contains(&view),
        "the view of schema/ticks.sql: {view}"
    );
    let spans = |conn: &rusqlite::Connection| -> (i64, i64) {
        conn.query_row(
            "SELECT count(*), count(*) FILTER (WHERE dir IS NULL) FROM batches",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    let (rows, scanned) = spans(&conn);
    assert!(
        rows > 1 && scanned == 1,
        "one scanned span from version 4, then directory rows: {rows} rows, {scanned} scanned"
    );
    drop(conn);
    // Rows written since the upgrade have their symbols' blocks, which the live answers read.
    let block_files = tickrec::store::blockfile::paths(&day);
    assert!(std::fs::metadata(&block_files.1).unwrap().len() > 0);
    let out = tickrec(&db, &["seal", "--older-than", "1d"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let conn = rusqlite::Connection::open(&day).unwrap();
    assert_eq!(spans(&conn).1, 0, "sealed: the directory names every tick");
    drop(conn);
    let indexed = sql_int(
        &day,
        "SELECT count(*) FROM sqlite_master WHERE name LIKE 'ticks_by_%'",
    );
    assert_eq!(indexed, 0, "sealed: no per-tick index");
    assert!(
        !block_files.0.exists() && !block_files.1.exists(),
        "sealed: the live day's blocks are gone"
    );
    let sealed = answers("sealed");
    assert_eq!(live, sealed, "live and sealed answer alike");
    assert!(
        live.iter().map(|a| a.lines().count()).sum::<usize>() > 1000,
        "the queries found rows"
    );
    let out = tickrec(&db, &["check"], None);
    assert!(out.status.success(), "check: {}", text(&out.stdout));
    // The file without a directory was read by scanning, as before.
    assert!(before_upgrade.iter().any(|a| a.lines().count() > 1));
}

/// What could go wrong: a symbol block that no longer matches its rows (a damaged page, a bad
/// write, a block under another key). A block that fails its check or holds another number of
/// ticks is passed over and the rows answer; `check` names any block that differs from its rows.
#[test]
fn a_damaged_symbol_block_is_passed_over_by_queries_and_named_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let lines: String = (0..20_000i64)
        .map(|i| {
            format!(
                "{{\"symbol\":\"S{}\",\"bid\":1.{:04},\"ask\":1.{:04},\"ts_event\":\"2026-11-19T{:02}:{:02}:{:02}.{:03}Z\"}}\n",
                i * 7 % 5,
                1000 + i % 977,
                1003 + i % 977,
                i * 4 / 3600,
                i * 4 / 60 % 60,
                i * 4 % 60,
                i % 1000
            )
        })
        .collect();
    let config = dir.path().join("blocks.toml");
    std::fs::write(&config, "[writer]\nsymbol_blocks = true\n").unwrap();
    let config = config.to_str().unwrap();
    let out = tickrec(
        &db,
        &["ingest", "--config", config, "--source-id", "a"],
        Some(&lines),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let day = db.join("2026/11/ticks_2026-11-19.db");
    let blocks = super::util::block_file(&day).unwrap();
    let entries = blocks.entries().unwrap();
    let blocks_path = tickrec::store::blockfile::paths(&day).1;
    assert!(entries.len() >= 5);
    let ask = |args: &[&str]| {
        let out = tickrec(&db, args, None);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let queries: [&[&str]; 3] = [
        &[
            "query",
            "range",
            "S1",
            "--from",
            "2026-11-19T01:00:00Z",
            "--to",
            "2026-11-19T20:00:00Z",
            "--format",
            "csv",
        ],
        &["query", "recent", "S1", "-n", "3000", "--format", "csv"],
        &[
            "query",
            "range",
            "S1,S3",
            "--from",
            "2026-11-19T00:00:00Z",
            "--to",
            "2026-11-20T00:00:00Z",
            "--format",
            "csv",
        ],
    ];
    let whole: Vec<String> = queries.iter().map(|q| ask(q)).collect();
    assert!(whole[0].lines().count() > 2000);
    assert!(ask(&["check"]).contains("ok"), "a sound file checks");
    let sym1: i64 = sql_int(&day, "SELECT id FROM symbols WHERE name = 'S1'");
    // S1's blocks: each keyed by the first seq of S1's runs in some directory row.
    let of_s1: Vec<usize> = (0..entries.len())
        .filter(|&i| {
            let key = entries[i].key;
            sql_int(&day, &format!("SELECT sym FROM ticks WHERE seq = {key}")) == sym1
        })
        .collect();
    let (cut, other) = (of_s1[1], of_s1[2]);
    // One block cut short, one given its neighbour's bytes (a sound block under another key),
    // each through an entry whose own check holds.
    let mut image = std::fs::read(&blocks_path).unwrap();
    let mut put = |i: usize, e: tickrec::store::blockfile::Entry| {
        let at = i * tickrec::store::blockfile::ENTRY;
        image[at..at + tickrec::store::blockfile::ENTRY].copy_from_slice(&e.encode());
    };
    put(
        cut,
        tickrec::store::blockfile::Entry {
            len: entries[cut].len - 3,
            ..entries[cut]
        },
    );
    put(
        other,
        tickrec::store::blockfile::Entry {
            key: entries[other].key,
            ..entries[other + 1]
        },
    );
    std::fs::write(&blocks_path, &image).unwrap();
    let after: Vec<String> = queries.iter().map(|q| ask(q)).collect();
    assert_eq!(after, whole, "the rows answer where a block is damaged");
    let out = tickrec(&db, &["check"], None);
    assert!(!out.status.success(), "check names the damage");
    assert_says(&out.stdout, "blocks: block");
}

/// What could go wrong: two writers on one day file at once (a recording and an ingest of the
/// same day) interleave their commits; the directory must still tile the day and answer as the
/// sealed index does.
#[test]
fn two_writers_on_one_day_keep_its_directory_whole() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    std::fs::create_dir_all(&db).unwrap();
    let base = chrono::DateTime::parse_from_rfc3339("2026-11-19T00:00:00Z").unwrap();
    let input = |k: i64| -> String {
        (0..20_000i64)
            .map(|i| {
                let t = base + chrono::Duration::milliseconds(i * 4_000 + k * 1_000);
                format!(
                    "{{\"symbol\":\"S{}\",\"bid\":1.{:04},\"ask\":2,\"ts_event\":\"{}\"}}\n",
                    (i * 7 + k) % 13,
                    i % 10_000,
                    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
                )
            })
            .collect()
    };
    let children: Vec<_> = (0..2i64)
        .map(|k| {
            let path = dir.path().join(format!("in{k}.jsonl"));
            std::fs::write(&path, input(k)).unwrap();
            Command::new(env!("CARGO_BIN_EXE_tickrec"))
                .arg("--db")
                .arg(&db)
                .arg("ingest")
                .arg(&path)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let out = tickrec(&db, &["check"], None);
    assert!(out.status.success(), "check: {}", text(&out.stdout));
    let ask = || -> Vec<String> {
        (0..13)
            .map(|s| {
                let sym = format!("S{s}");
                let out = tickrec(
                    &db,
                    &[
                        "query",
                        "range",
                        &sym,
                        "--from",
                        "2026-11-19T03:00:00Z",
                        "--to",
                        "2026-11-19T09:00:00Z",
                        "--format",
                        "csv",
                    ],
                    None,
                );
                assert!(out.status.success(), "{}", text(&out.stderr));
                text(&out.stdout)
            })
            .collect()
    };
    let live = ask();
    assert_eq!(
        live.iter().map(|a| a.lines().count() - 1).sum::<usize>(),
        2 * 5_400,
        "six hours of two inputs, a tick every 4 s each"
    );
    let out = tickrec(&db, &["seal", "--older-than", "1d"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(live, ask(), "directory and index answer alike");
}

/// What could go wrong: a query of several symbols (or all) that drops, repeats or misorders
/// rows where the days and the symbols meet, on a sealed day (indexes) and a live one
/// (directory); or an unknown symbol that reads as an empty answer. Every multi-symbol answer
/// must equal the single-symbol answers merged by (ts_event, seq), and `recent` the newest of
/// them by recording order.
///
/// (Long on purpose: one scenario end to end, its steps sharing what it builds.)
#[test]
fn several_symbols_or_all_read_as_the_merge_of_their_single_symbol_answers() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let syms = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD"];
    // Two days (the 18th and 19th), event times up to a minute out of arrival order.
    let lines = jittered_lines(&syms, 11, "2026-11-18T20:00:00Z", 5000, 6_000, 60_000);
    let out = tickrec(&db, &["ingest", "--source-id", "a"], Some(&lines));
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The 18th indexed as an earlier version sealed days (its indexes answer), the 19th stays
    // live (its directory answers).
    let day18 = db.join("2026/11/ticks_2026-11-18.db");
    rusqlite::Connection::open(&day18)
        .unwrap()
        .execute_batch(tickrec::store::archive::SEAL_SQL)
        .unwrap();
    let indexed = sql_int(
        &day18,
        "SELECT count(*) FROM sqlite_master WHERE name = 'ticks_by_symbol_time'",
    );
    assert_eq!(indexed, 1);
    let conn = rusqlite::Connection::open(db.join("2026/11/ticks_2026-11-19.db")).unwrap();
    conn.execute_batch(
        "DROP INDEX IF EXISTS ticks_by_symbol; DROP INDEX IF EXISTS ticks_by_symbol_time;",
    )
    .unwrap();
    drop(conn);
    let csv = |args: &[&str]| -> Vec<Vec<String>> {
        csv_lines(&db, args)
            .iter()
            .map(|l| l.split(',').map(str::to_owned).collect())
            .collect()
    };
    // Columns: seq, symbol, ts_event_ns, ts_event, …
    let key = |r: &Vec<String>| (r[2].clone(), r[0].parse::<i64>().unwrap());
    let (from, to) = ("2026-11-18T21:00:00Z", "2026-11-19T03:00:00Z");
    let range = |s: &str| csv(&["query", "range", s, "--from", from, "--to", to]);
    let mut merged: Vec<Vec<String>> = ["EURUSD", "XAUUSD"].iter().flat_map(|s| range(s)).collect();
    merged.sort_by_key(key);
    assert!(merged.len() > 500, "both days hold rows: {}", merged.len());
    assert_eq!(range("EURUSD,XAUUSD"), merged, "two symbols");
    assert_eq!(
        csv(&[
            "query",
            "range",
            "--symbols",
            "XAUUSD,EURUSD",
            "--from",
            from,
            "--to",
            to
        ]),
        merged,
        "--symbols, in any order"
    );
    let mut all: Vec<Vec<String>> = syms.iter().flat_map(|s| range(s)).collect();
    all.sort_by_key(key);
    assert_eq!(range("all"), all, "all");
    assert_eq!(range("*"), all, "*");

    // recent: the newest 300 of two symbols by recording order, newest day first.
    let recent = |s: &str| csv(&["query", "recent", s, "-n", "300"]);
    let mut newest: Vec<Vec<String>> = ["GBPUSD", "USDJPY"]
        .iter()
        .flat_map(|s| recent(s))
        .collect();
    // Each row's day is its ts_event's date (a day file holds its day's event times).
    newest
        .sort_by_key(|r| std::cmp::Reverse((r[3][..10].to_owned(), r[0].parse::<i64>().unwrap())));
    newest.truncate(300);
    assert_eq!(recent("GBPUSD,USDJPY"), newest);
    assert_eq!(csv(&["query", "recent", "all", "-n", "7"]).len(), 7);

    // An unknown symbol is an error that names the days searched; the known ones still print.
    let out = tickrec(
        &db,
        &[
            "query",
            "range",
            "EURUSD,eurusd",
            "--from",
            from,
            "--to",
            to,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_says(
        &out.stderr,
        "no such symbol eurusd in 2026-11-18..2026-11-19 (2 day files)",
    );
    assert_says(&out.stdout, "EURUSD");
    let out = tickrec(&db, &["query", "recent", "NOPE"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_says(&out.stderr, "no such symbol NOPE");
}

/// What could go wrong: bars that lose a tick at an interval or day boundary, round a price,
/// or emit an empty interval. `query bars` must equal a naive recomputation from
/// `query range` of the same ticks, exactly.
///
/// (Long on purpose: one scenario end to end, its steps sharing what it builds.)
#[test]
fn bars_equal_a_recomputation_from_the_range_query() {
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
    let base = chrono::DateTime::parse_from_rfc3339("2026-11-18T22:00:00Z").unwrap();
    let mut lines = String::new();
    for i in 0..3000i64 {
        let t = base + chrono::Duration::milliseconds(i * 2_900 + rng.gen_range(0..2_000));
        let bid = format!("1.{:05}", rng.gen_range(0..99_999));
        let ask = format!("1.{:04}", rng.gen_range(0..9_999)); // sometimes crossed
        let sides = match rng.gen_range(0..10) {
            0 => format!("\"bid\":{bid}"),
            1 => format!("\"ask\":{ask}"),
            _ => format!("\"bid\":{bid},\"ask\":{ask}"),
        };
        lines.push_str(&format!(
            "{{\"symbol\":\"EURUSD\",{sides},\"ts_event\":\"{}\"}}\n",
            t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        ));
    }
    let out = tickrec(&db, &["ingest", "--source-id", "a"], Some(&lines));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (from, to) = ("2026-11-18T22:07:00Z", "2026-11-19T00:31:00Z");
    // Exact values as integers of 10^-10 (a mid has one more place than its sides).
    let units = |s: &str| -> i128 {
        let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
        let (i, f) = s.split_once('.').unwrap_or((s, ""));
        let v = i.parse::<i128>().unwrap() * 10i128.pow(10)
            + format!("{f:0<10}").parse::<i128>().unwrap();
        if neg {
            -v
        } else {
            v
        }
    };
    let out = tickrec(
        &db,
        &[
            "query", "range", "EURUSD", "--from", from, "--to", to, "--format", "csv",
        ],
        None,
    );
    assert!(out.status.success());
    // (start of 5 minutes, mid, spread) of each tick with both sides, in time order.
    let mut naive: BTreeMap<i64, Vec<(i128, i128)>> = BTreeMap::new();
    for l in text(&out.stdout).lines().skip(1) {
        let c: Vec<&str> = l.split(',').collect();
        let (ts, bid, ask) = (c[2].parse::<i64>().unwrap(), c[5], c[6]);
        if bid.is_empty() || ask.is_empty() {
            continue;
        }
        let (b, a) = (units(bid), units(ask));
        let start = ts.div_euclid(300_000_000_000) * 300_000_000_000;
        naive.entry(start).or_default().push(((b + a) / 2, a - b));
    }
    let out = tickrec(
        &db,
        &[
            "query",
            "bars",
            "EURUSD",
            "--interval",
            "5m",
            "--from",
            from,
            "--to",
            to,
            "--format",
            "csv",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bars: Vec<Vec<String>> = text(&out.stdout)
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    assert!(bars.len() > 20, "bars across midnight: {}", bars.len());
    assert_eq!(bars.len(), naive.len(), "one bar per interval with ticks");
    for (bar, (start, ticks)) in bars.iter().zip(&naive) {
        let t = tickrec::tick::Timestamp::parse(&bar[1]).unwrap();
        assert_eq!(t.0, *start);
        let mids: Vec<i128> = ticks.iter().map(|t| t.0).collect();
        let spreads: Vec<i128> = ticks.iter().map(|t| t.1).collect();
        assert_eq!(units(&bar[2]), mids[0], "open {bar:?}");
        assert_eq!(units(&bar[3]), *mids.iter().max().unwrap(), "high {bar:?}");
        assert_eq!(units(&bar[4]), *mids.iter().min().unwrap(), "low {bar:?}");
        assert_eq!(units(&bar[5]), *mids.last().unwrap(), "close {bar:?}");
        assert_eq!(bar[6].parse::<usize>().unwrap(), ticks.len());
        assert_eq!(units(&bar[7]), *spreads.iter().min().unwrap());
        assert_eq!(units(&bar[8]), *spreads.iter().max().unwrap());
    }
    assert!(
        naive.values().flatten().any(|t| t.1 < 0),
        "some quotes are crossed (negative spreads)"
    );
}

/// What could go wrong: on a live day whose newest commits no directory row covers yet (the
/// writer's tail, or what a crash left), a query of several symbols that misses, repeats or
/// misorders the tail's rows against the rows the directory finds.
#[test]
fn a_live_days_tail_and_its_directory_rows_read_as_one_ordered_answer() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let syms = ["EURUSD", "GBPUSD", "USDJPY"];
    // 40 commits of 500: directory rows, then (once the newest row is gone) a tail.
    let lines = jittered_lines(&syms, 5, "2026-11-19T01:00:00Z", 20_000, 900, 30_000);
    let out = tickrec(&db, &["ingest", "--source-id", "a"], Some(&lines));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = |args: &[&str]| csv_lines(&db, args);
    let (from, to) = ("2026-11-19T02:00:00Z", "2026-11-19T07:00:00Z");
    let ask = || {
        (
            csv(&[
                "query",
                "range",
                "EURUSD,USDJPY",
                "--from",
                from,
                "--to",
                to,
            ]),
            csv(&["query", "range", "all", "--from", from, "--to", to]),
        )
    };
    let whole = ask();
    assert!(whole.0.len() > 5_000, "{}", whole.0.len());
    let conn = rusqlite::Connection::open(db.join("2026/11/ticks_2026-11-19.db")).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM batches", [], |r| r.get(0))
        .unwrap();
    assert!(rows >= 2, "directory rows: {rows}");
    conn.execute(
        "DELETE FROM batches WHERE first_seq = (SELECT max(first_seq) FROM batches)",
        [],
    )
    .unwrap();
    drop(conn);
    assert_eq!(
        ask(),
        whole,
        "the tail read with the directory's rows, in order"
    );
}

/// What could go wrong: an ask stored as its distance from bid (schema version 6) that the SQL
/// view `ticks_v`, or `tickrec query`, reads back as another number: crossed quotes (a negative
/// distance), equal sides, different places on the two sides, folded integer sizes, a missing
/// bid.
#[test]
fn the_view_and_the_queries_read_every_stored_ask_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let pairs = [
        ("1.08502", "1.08510"),
        ("1.085", "1.08510"),
        ("null", "1.1"),
        ("1.2", "1.1"),
        ("151.230", "151.245"),
        ("1000000", "2000000"),
        ("1500000", "2000000"),
        ("0", "0.00001"),
        ("1.08502", "1.08502"),
        ("0.000000001", "999999.999999999"),
        ("1.5", "null"),
    ];
    let mut lines = String::new();
    for (i, (bid, ask)) in pairs.iter().enumerate() {
        lines.push_str(&format!(
            "{{\"symbol\":\"EURUSD\",\"bid\":{bid},\"ask\":{ask},\"ts_event\":\"2026-11-19T10:00:{i:02}Z\"}}\n"
        ));
    }
    let out = tickrec(&db, &["ingest", "--source-id", "a"], Some(&lines));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = tickrec(
        &db,
        &[
            "query",
            "range",
            "EURUSD",
            "--from",
            "2026-11-19",
            "--to",
            "2026-11-20",
            "--format",
            "csv",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Columns: seq, symbol, ts_event_ns, ts_event, ts_recv_ns, bid, ask, …
    let printed: Vec<(String, String)> = text(&out.stdout)
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (c[5].to_owned(), c[6].to_owned())
        })
        .collect();
    let given: Vec<(String, String)> = pairs
        .iter()
        .map(|(b, a)| {
            let t = |s: &str| {
                if s == "null" {
                    String::new()
                } else {
                    s.to_owned()
                }
            };
            (t(b), t(a))
        })
        .collect();
    assert_eq!(printed, given, "tickrec prints what was given");
    let conn = rusqlite::Connection::open(db.join("2026/11/ticks_2026-11-19.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT bid, ask FROM ticks_v ORDER BY seq")
        .unwrap();
    let as_f64 = |v: rusqlite::types::Value| match v {
        rusqlite::types::Value::Integer(i) => Some(i as f64),
        rusqlite::types::Value::Real(r) => Some(r),
        _ => None,
    };
    let viewed: Vec<(Option<f64>, Option<f64>)> = stmt
        .query_map([], |r| Ok((as_f64(r.get(0)?), as_f64(r.get(1)?))))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let parsed: Vec<(Option<f64>, Option<f64>)> = given
        .iter()
        .map(|(b, a)| (b.parse().ok(), a.parse().ok()))
        .collect();
    assert_eq!(viewed, parsed, "ticks_v reads the same values");
    let spreads: i64 = conn
        .query_row("SELECT count(*) FROM ticks WHERE ask & 15 = 0", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        spreads, 7,
        "every ask with its bid's places is stored as the distance"
    );
}

/// `n` JSON lines of `syms` picked at random (seeded), the i-th at `start + i * step_ms`
/// give or take up to `jitter_ms` (event times out of arrival order), bids counting up.
fn jittered_lines(
    syms: &[&str],
    seed: u64,
    start: &str,
    n: i64,
    step_ms: i64,
    jitter_ms: i64,
) -> String {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let base = chrono::DateTime::parse_from_rfc3339(start).unwrap();
    let mut lines = String::new();
    for i in 0..n {
        let sym = syms[rng.gen_range(0..syms.len())];
        let t = base
            + chrono::Duration::milliseconds(i * step_ms + rng.gen_range(-jitter_ms..jitter_ms));
        lines.push_str(&format!(
            "{{\"symbol\":\"{sym}\",\"bid\":1.{:05},\"ask\":1.5,\"ts_event\":\"{}\"}}\n",
            i % 100_000,
            t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        ));
    }
    lines
}

/// The rows (header left out) `tickrec ARGS --format csv` prints; it must succeed.
fn csv_lines(db: &Path, args: &[&str]) -> Vec<String> {
    let mut a = args.to_vec();
    a.extend(["--format", "csv"]);
    let out = tickrec(db, &a, None);
    assert!(out.status.success(), "{a:?}: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

/// What could go wrong: a range holding more ticks than one sorted slice is read in time
/// slices; a tick on either side of a slice's edge, out of arrival order, must come once, in
/// (ts_event, seq) order, as the SQL view orders them.
#[test]
fn a_range_longer_than_a_slice_reads_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let syms = ["EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCHF", "NZDUSD"];
    let input = jittered_lines(&syms, 7, "2026-11-10T00:00:10Z", 150_000, 500, 2_000);
    let out = tickrec(&db, &["ingest"], Some(&input));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let day = db.join("2026/11/ticks_2026-11-10.db");
    let expected = |filter: &str, lo: &str, hi: &str| -> Vec<String> {
        let conn = rusqlite::Connection::open(&day).unwrap();
        let sql = format!(
            "SELECT seq FROM ticks_v WHERE ts_event >= '{lo}' AND ts_event < '{hi}' {filter} \
             ORDER BY ts_event_ns, seq"
        );
        let mut stmt = conn.prepare(&sql).unwrap();
        let seqs = stmt
            .query_map([], |r| r.get::<_, i64>(0))
            .unwrap()
            .map(|s| s.unwrap().to_string())
            .collect();
        seqs
    };
    let seqs = |lines: Vec<String>| -> Vec<String> {
        lines
            .iter()
            .map(|l| l.split(',').next().unwrap_or_default().to_owned())
            .collect()
    };
    for (symbols, filter) in [
        ("all", ""),
        (
            "EURUSD,NZDUSD,USDJPY",
            "AND symbol IN ('EURUSD', 'NZDUSD', 'USDJPY')",
        ),
    ] {
        for (lo, hi) in [
            ("2026-11-10T00:00:00Z", "2026-11-11T00:00:00Z"),
            ("2026-11-10T03:17:00Z", "2026-11-10T19:05:30Z"),
        ] {
            let got = seqs(csv_lines(
                &db,
                &[
                    "query",
                    "range",
                    "--symbols",
                    symbols,
                    "--from",
                    lo,
                    "--to",
                    hi,
                ],
            ));
            // ISO text compares as time (same width, always Z).
            let want = expected(filter, &lo.replace('Z', ""), &hi.replace('Z', ""));
            assert!(want.len() > 65_536 || symbols != "all", "more than a slice");
            assert_eq!(got.len(), want.len(), "{symbols} {lo}..{hi}");
            assert!(got == want, "{symbols} {lo}..{hi}: another order");
        }
    }
}
