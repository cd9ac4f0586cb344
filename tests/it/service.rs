//! Running as a service: /metrics checked by a real `promtool` and scraped, behind its token,
//! by a real Prometheus; the alert rules checked and played by `promtool`; /health and `tickrec health` as a shell probe sees them, the systemd
//! unit checked by `systemd-analyze verify`, JSON logs, shell completions. Real processes over
//! real TCP.

use super::util::{free_port, record_command, sample, simulator, wait_for, Reaped};
use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_tickrec");

fn recorder(db: &Path, fix_port: u16, metrics_port: u16, config: Option<&Path>) -> Reaped {
    let mut c = recorder_command(db, fix_port, metrics_port, config);
    c.stderr(Stdio::null());
    Reaped::new(c.spawn().unwrap())
}

/// `record` of EURUSD and GBPUSD from the simulator on `fix_port`, its metrics listener on
/// `metrics_port`, its output dropped (its log too, unless set otherwise).
fn recorder_command(db: &Path, fix_port: u16, metrics_port: u16, config: Option<&Path>) -> Command {
    let mut c = record_command(db, fix_port, "EURUSD,GBPUSD");
    if let Some(cfg) = config {
        c.arg("--config").arg(cfg);
    }
    c.args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")]);
    c
}

/// What could go wrong: an endpoint a Prometheus server rejects, or counters that never move.
#[test]
fn record_serves_metrics_that_promtool_accepts_and_its_counters_move() {
    let promtool = promtool();
    let dir = tempfile::tempdir().unwrap();
    let (fix, http) = (free_port(), free_port());
    let _sim = simulator(fix, 4, 2000);
    let _rec = recorder(&dir.path().join("db"), fix, http, None);
    let base = format!("http://127.0.0.1:{http}");
    wait_for(&format!("{base}/health"), 20, |code, body| {
        code == 200 && body.contains("\"logged on\"")
    });
    let stored = |m: &str| sample(m, "tickrec_ticks_stored_total{backend=\"sqlite\"}");
    let (_, first) = wait_for(&format!("{base}/metrics"), 20, |_, m| stored(m) > 0.0);
    let (_, second) = wait_for(&format!("{base}/metrics"), 20, |_, m| {
        stored(m) > stored(&first)
    });
    for name in [
        "tickrec_ticks_received_total ",
        "tickrec_ticks_dropped_total ",
        "tickrec_ticks_throttled_total ",
        "tickrec_ticks_lost_total{backend=\"sqlite\"} ",
        "tickrec_write_errors_total{backend=\"sqlite\"} ",
        "tickrec_ticks_dead_lettered_total{backend=\"sqlite\"} ",
        "tickrec_batches_committed_total{backend=\"sqlite\"} ",
        "tickrec_db_rotations_total{backend=\"sqlite\"} ",
        "tickrec_wal_bytes{backend=\"sqlite\"} ",
        "tickrec_wal_bound_bytes{backend=\"sqlite\"} ",
        "tickrec_wal_restarts_total{backend=\"sqlite\"} ",
        "tickrec_wal_restarts_postponed_total{backend=\"sqlite\"} ",
        "tickrec_wal_restart_seconds_total{backend=\"sqlite\"} ",
        "tickrec_queue_ticks ",
        "tickrec_queue_capacity_ticks ",
        "tickrec_writer_cpu_seconds_total ",
        "tickrec_writer_cpu_wait_seconds_total ",
        "tickrec_store_tick_latency_seconds_count ",
        "tickrec_commit_latency_seconds_count{backend=\"sqlite\"} ",
        "tickrec_feed_latency_seconds_count{source=\"SIM\"} ",
        "tickrec_fix_session_state{session=\"REC->SIM\",state=\"logged on\"} ",
        "tickrec_fix_inbound_seq{session=\"REC->SIM\"} ",
        "tickrec_fix_messages_received_total{session=\"REC->SIM\"} ",
        "tickrec_fix_last_message_age_seconds{session=\"REC->SIM\"} ",
    ] {
        sample(&second, name);
    }
    assert!(
        sample(&second, "tickrec_ticks_received_total ")
            > sample(&first, "tickrec_ticks_received_total ")
    );
    // The writer has committed between the two scrapes: its thread has run.
    assert!(sample(&second, "tickrec_writer_cpu_seconds_total ") > 0.0);
    assert_eq!(
        sample(
            &second,
            "tickrec_fix_session_state{session=\"REC->SIM\",state=\"logged on\"} "
        ),
        1.0
    );
    promtool_accepts(&promtool, &second);
}

/// `promtool`, or the test fails with how to install it.
fn promtool() -> std::path::PathBuf {
    which("promtool").unwrap_or_else(|| {
        panic!("promtool not found: apt-get install prometheus (Debian's package ships promtool)")
    })
}

/// `promtool check metrics` passes `metrics` (a scrape of /metrics).
fn promtool_accepts(promtool: &Path, metrics: &str) {
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    succeeded(&check.wait_with_output().unwrap(), "promtool check metrics");
}

/// That a tool which ran succeeded (`what` names it in the failure, with what it printed).
fn succeeded(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What could go wrong: an alert rule README points to that Prometheus refuses, one that does
/// not fire (or fires while all is well) on the series it watches, or one naming a metric the
/// recorder does not serve (a typo, a metric renamed since): that one would never fire.
#[test]
fn the_alert_rules_load_fire_as_their_tests_say_and_name_only_metrics_a_recorder_serves() {
    let promtool = promtool();
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/prometheus");
    for args in [
        ["check", "rules", "tickrec-alerts.yml"],
        ["test", "rules", "tickrec-alerts.test.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir(&rules)
            .output();
        succeeded(&out.unwrap(), &format!("promtool {args:?}"));
    }

    // A recorder serving every metric the rules can name: a FIX session, subscribers with a
    // token.
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("publish.token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
    let config = dir.path().join("tickrec.toml");
    let toml = format!(
        "[publish]\ntoken_file = {:?}\n",
        token.display().to_string()
    );
    std::fs::write(&config, toml).unwrap();
    let (fix, http, publish) = (free_port(), free_port(), free_port());
    let _sim = simulator(fix, 4, 2000);
    let mut record = recorder_command(&dir.path().join("db"), fix, http, Some(&config));
    record.args(["--publish", &format!("127.0.0.1:{publish}")]);
    let _rec = Reaped::new(record.stderr(Stdio::null()).spawn().unwrap());
    let (_, metrics) = wait_for(
        &format!("http://127.0.0.1:{http}/metrics"),
        20,
        |code, m| code == 200 && m.contains("\ntickrec_publish_token_usable 1\n"),
    );
    promtool_accepts(&promtool, &metrics);
    let served: std::collections::HashSet<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let text = std::fs::read_to_string(rules.join("tickrec-alerts.yml")).unwrap();
    let named: std::collections::BTreeSet<&str> = text
        .match_indices("tickrec_")
        .map(|(i, _)| {
            let rest = &text[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    assert!(named.len() >= 12, "{named:?}");
    for name in named {
        assert!(served.contains(name), "{name} is not served:\n{metrics}");
    }
}

/// What could go wrong: a `[metrics] token_file` that a real Prometheus cannot scrape with the
/// scrape job README gives (`authorization: {credentials_file: …}`), or that one without it
/// can.
#[test]
fn prometheus_scrapes_a_recorder_that_asks_for_a_token_with_the_token_only() {
    let prometheus = which("prometheus").unwrap_or_else(|| {
        panic!("prometheus not found: apt-get install prometheus (Debian's package)")
    });
    let dir = tempfile::tempdir().unwrap();
    let config = super::util::token_config(
        dir.path(),
        &[("metrics", "0123456789abcdef0123456789abcdef")],
    );
    let token = dir.path().join("metrics.token");
    let (fix, http, web) = (free_port(), free_port(), free_port());
    let _sim = simulator(fix, 4, 2000);
    let _rec = recorder(&dir.path().join("db"), fix, http, Some(&config));
    wait_for(
        &format!("http://127.0.0.1:{http}/health"),
        20,
        |code, body| code == 200 && body.contains("\"logged on\""),
    );
    let scrape = dir.path().join("prometheus.yml");
    std::fs::write(
        &scrape,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n\
             \x20 - job_name: with_token\n\
             \x20   static_configs: [{{targets: [\"127.0.0.1:{http}\"]}}]\n\
             \x20   authorization: {{credentials_file: {:?}}}\n\
             \x20 - job_name: without\n\
             \x20   static_configs: [{{targets: [\"127.0.0.1:{http}\"]}}]\n",
            token.display().to_string()
        ),
    )
    .unwrap();
    let _prometheus = Reaped::new(
        Command::new(prometheus)
            .arg(format!("--config.file={}", scrape.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{web}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    // Each job's verdict on its last scrape, from Prometheus's own view of its targets.
    let health = |targets: &str, job: &str| -> Option<(String, String)> {
        let v: serde_json::Value = serde_json::from_str(targets).ok()?;
        let t = v["data"]["activeTargets"]
            .as_array()?
            .iter()
            .find(|t| t["labels"]["job"] == job)?
            .clone();
        Some((
            t["health"].as_str()?.to_owned(),
            t["lastError"].as_str()?.to_owned(),
        ))
    };
    let (_, targets) = wait_for(
        &format!("http://127.0.0.1:{web}/api/v1/targets"),
        60,
        |_, b| {
            health(b, "with_token").is_some_and(|(h, _)| h == "up")
                && health(b, "without").is_some_and(|(h, _)| h == "down")
        },
    );
    let (_, why) = health(&targets, "without").unwrap();
    assert!(why.contains("401"), "{why}");
    // And the recorder counted the job without the token.
    let query =
        format!("http://127.0.0.1:{web}/api/v1/query?query=tickrec_http_unauthorized_total");
    wait_for(&query, 60, |_, b| {
        serde_json::from_str::<serde_json::Value>(b).is_ok_and(|v| {
            v["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|n| n.parse::<f64>().ok())
                .is_some_and(|n| n >= 1.0)
        })
    });
}

/// What could go wrong: a probe that says "ok" while an LP never answered.
#[test]
fn health_is_503_with_the_reason_while_a_session_is_down_and_the_probe_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tickrec.toml");
    std::fs::write(&cfg, "[health]\nsession_grace_s = 1\n").unwrap();
    // Nothing listens on the FIX port: the session never logs on.
    let (fix, http) = (free_port(), free_port());
    let mut rec = recorder(&dir.path().join("db"), fix, http, Some(&cfg));
    let url = format!("http://127.0.0.1:{http}/health");
    let (_, body) = wait_for(&url, 20, |code, _| code == 503);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "unhealthy");
    assert!(
        v["problems"].to_string().contains("REC->SIM not logged on"),
        "{body}"
    );
    let probe = |url: &str| {
        Command::new(BIN)
            .args(["health", "--url", url])
            .output()
            .unwrap()
    };
    let out = probe(&url);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let _ = rec.kill();
    let _ = rec.wait();
    let out = probe(&url);
    assert_eq!(out.status.code(), Some(2), "nothing listening: unreachable");
    assert!(String::from_utf8_lossy(&out.stdout).contains("unreachable"));
}

/// What could go wrong: a unit file systemd refuses at boot.
#[test]
fn the_recorder_unit_passes_systemd_analyze_verify() {
    let analyze = which("systemd-analyze")
        .unwrap_or_else(|| panic!("systemd-analyze not found: apt-get install systemd"));
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/systemd/tickrec-record.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    for must in [
        "Restart=on-failure",
        "User=tickrec",
        "EnvironmentFile=",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/tickrec",
        "NoNewPrivileges=yes",
        "KillSignal=SIGTERM",
    ] {
        assert!(
            text.contains(must),
            "{must} missing from {}",
            unit.display()
        );
    }
    // The drain bound (writer.shutdown_timeout_ms, 8 s by default) fits in the stop timeout.
    let stop_s: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim().parse().ok())
        .expect("TimeoutStopSec in seconds");
    assert!(
        stop_s > 8 + 5,
        "TimeoutStopSec={stop_s} must exceed the drain bound"
    );
    // Verified as installed, with ExecStart pointing at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("tickrec-record.service");
    std::fs::write(&copy, text.replace("/usr/local/bin/tickrec", BIN)).unwrap();
    let out = Command::new(analyze).arg("verify").arg(&copy).output();
    succeeded(&out.unwrap(), "systemd-analyze verify");
}

#[test]
fn json_logs_are_one_object_per_line_with_stable_fields() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("--db")
        .arg(dir.path().join("db"))
        .args(["--log-format", "json", "simulate", "--port"])
        .arg(free_port().to_string())
        .args(["--seconds", "0.2"])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(!lines.is_empty());
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["timestamp"].is_string(), "{line}");
        assert!(v["level"].is_string(), "{line}");
        assert!(v["fields"]["message"].is_string(), "{line}");
        assert!(!line.contains('\x1b'), "no colour codes: {line}");
    }
}

#[test]
fn shell_completions_come_from_the_cli_definition() {
    for (shell, mark) in [
        ("bash", "_tickrec()"),
        ("zsh", "#compdef tickrec"),
        ("fish", "complete -c tickrec"),
    ] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(mark),
            "{shell}: {}",
            &text[..text.len().min(200)]
        );
        assert!(
            text.contains("metrics-listen"),
            "{shell} completes the flags"
        );
    }
}

fn which(cmd: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(cmd))
        .find(|p| p.is_file())
}

/// What could go wrong: a symbol the LP silently stopped sending while health stays "ok".
#[test]
fn a_subscribed_symbol_without_ticks_makes_health_503_within_trading_hours() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tickrec.toml");
    // Always within trading hours: the window covers the whole week but one minute.
    std::fs::write(
        &cfg,
        "[health]\nstale_after_s = 1\ntrading_hours = \"Mon 00:00 - Sun 23:59\"\n",
    )
    .unwrap();
    let (fix, http) = (free_port(), free_port());
    let _sim = simulator(fix, 4, 2000);
    // The simulator has EURUSD but not XAUXAG: that one never ticks.
    let mut c = record_command(&dir.path().join("db"), fix, "EURUSD,XAUXAG");
    c.arg("--config").arg(&cfg);
    c.args(["--metrics-listen", &format!("127.0.0.1:{http}")]);
    let _rec = Reaped::new(c.spawn().unwrap());
    let (_, body) = wait_for(
        &format!("http://127.0.0.1:{http}/health"),
        20,
        |code, body| code == 503 && body.contains("XAUXAG"),
    );
    assert!(body.contains("no tick for"), "{body}");
    assert!(!body.contains("symbol EURUSD"), "EURUSD ticks: {body}");
}

/// What could go wrong: the HTTP listener giving up at a failed accept (here: the recorder out
/// of file descriptors for a moment), leaving `/health` and `/metrics` dark for the rest of
/// the run, so that a probe restarts a recorder that was recording.
#[test]
fn the_metrics_listener_answers_again_after_running_out_of_file_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let (fix, http) = (free_port(), free_port());
    let _sim = simulator(fix, 2, 1_000);
    let log = dir.path().join("record.log");
    let mut rec = Reaped::new(
        recorder_command(&dir.path().join("db"), fix, http, None)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{http}/health");
    let answers = |code: u16, _: &str| code == 200 || code == 503;
    // Recording: its session logged on and ticks stored.
    wait_for(&url, 30, |_, body| {
        serde_json::from_str::<serde_json::Value>(body).is_ok_and(|v| {
            v["sessions"][0]["state"] == "logged on" && v["ticks_stored"].as_u64() > Some(0)
        })
    });

    // Its soft limit on descriptors lowered to those it has open now and two more.
    let pid = libc::pid_t::try_from(rec.id()).unwrap();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let mut before = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: both pointers are to live rlimit values; a null new limit only reads.
    let read = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut before) };
    assert_eq!(read, 0, "{}", std::io::Error::last_os_error());
    let low = libc::rlimit {
        rlim_cur: libc::rlim_t::try_from(open + 2).unwrap(),
        rlim_max: before.rlim_max,
    };
    let set_limit = |limit: &libc::rlimit| {
        // SAFETY: `limit` is a live rlimit; the old one is not asked for.
        let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, limit, std::ptr::null_mut()) };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    };
    set_limit(&low);
    // Kept-alive connections, each answered once, until one is not answered: the recorder
    // cannot accept it, and it waits in the listener's backlog.
    let ask = |c: &mut std::net::TcpStream| {
        use std::io::Write as _;
        c.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
    };
    let status_line = |c: &std::net::TcpStream, wait: u64| {
        c.set_read_timeout(Some(std::time::Duration::from_secs(wait)))
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(c), &mut line).map(|_| line)
    };
    let mut held = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let pending = loop {
        let mut c = match std::net::TcpStream::connect(("127.0.0.1", http)) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                panic!("the listener ended at the fault: {e}")
            }
            Err(e) => panic!("connecting: {e}"),
        };
        ask(&mut c);
        match status_line(&c, 2) {
            Ok(line) if line.starts_with("HTTP/1.1 ") => held.push(c),
            Ok(line) => panic!("answered {line:?}"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break c,
            Err(e) => panic!("the listener ended at the fault: {e}"),
        }
        assert!(
            std::time::Instant::now() < deadline && held.len() < 100,
            "{} connections answered: the limit did not hold",
            held.len()
        );
    };
    // The fault is the one meant: accepts failing, said in the log.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("metrics listener: accept failed; trying again")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no failed accept in the log"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    set_limit(&before);
    drop(held);
    // The connection that waited is answered once descriptors are back,
    let line = status_line(&pending, 20).unwrap();
    assert!(
        line.starts_with("HTTP/1.1 200") || line.starts_with("HTTP/1.1 503"),
        "{line:?}"
    );
    // the listener answers on, and the recorder recorded on, its session never dropped.
    let (_, body) = wait_for(&url, 20, answers);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["sessions"][0]["state"], "logged on", "{body}");
    assert_eq!(v["ticks_lost"], 0, "{body}");
    let stored = v["ticks_stored"].as_u64().unwrap();
    wait_for(&url, 20, |_, body| {
        serde_json::from_str::<serde_json::Value>(body)
            .is_ok_and(|v| v["ticks_stored"].as_u64() > Some(stored))
    });

    // And it stops on SIGTERM, as a service manager stops it: its listener with it.
    let term = Command::new("kill")
        .args(["-TERM", &rec.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = rec.wait_until(std::time::Duration::from_secs(30));
    assert!(status.success(), "{status}");
}
