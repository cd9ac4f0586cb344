//! Configuration: TOML file, then environment, then command-line flags, turned into one
//! validated [`Options`] in a single step. Core modules never read TOML or the environment;
//! they take the typed options built here.
//!
//! Every error names the key and where the bad value came from (the file, or the variable).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::fix::gateway::GatewayOptions;
use crate::fix::session::{SessionConfig, Validation};
use crate::pipeline::{BatchPolicy, HealthPolicy, OverflowPolicy, PipelineOptions};
use crate::store::{SqliteOptions, Synchronous, WriterOptions};
use crate::tick::{TimeWindow, Timestamp, NANOS_PER_SEC};

/// Where ticks are persisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Daily SQLite files.
    Sqlite,
    /// The legacy JSON layout only (see schema/legacy-json.md).
    Json,
    /// Both, from one pipeline; each backend fails and counts on its own.
    Dual,
}

/// Default base folder of the day files.
pub const DEFAULT_DB_PATH: &str = "./data/ticks/db";
/// Default folder of the legacy JSON files.
pub const DEFAULT_JSON_PATH: &str = "./data/ticks/json";
/// Default source name for ticks that carry none.
pub const DEFAULT_BROKER_ID: &str = "default";

// Upper bounds of the sizes allocated up front (see README, Configuration).

/// Ticks queued between `store_tick` and the writer (about 1.2 GB of channel at the bound).
pub const MAX_CHANNEL_CAPACITY: usize = 1 << 24;
/// Recent ticks kept per symbol (64 MB a symbol at the bound).
pub const MAX_RING_CAPACITY: usize = 1_000_000;
/// Distinct symbols one process accepts.
pub const MAX_SYMBOLS: usize = 1 << 20;
/// Ticks in one transaction.
pub const MAX_BATCH_SIZE: usize = 100_000;

/// Everything a command needs, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub backend: Backend,
    pub db_path: PathBuf,
    /// Folder of the legacy JSON files (`json` and `dual` backends).
    pub json_path: PathBuf,
    pub broker_id: String,
    pub pipeline: PipelineOptions,
    pub writer: WriterOptions,
    /// `tracing` filter, e.g. `info` or `tickrec=debug`.
    pub log_level: String,
    pub log_format: LogFormat,
    /// Where /metrics and /health listen (`[metrics] listen`); `None`: nowhere.
    pub metrics_listen: Option<String>,
    /// `host:port` of the live subscriber fan-out of `record` (`[publish] listen`); off when absent.
    pub publish_listen: Option<String>,
    /// Ticks a subscriber may have queued before it is disconnected (`[publish] queue_ticks`),
    /// counted over every symbol of the commits queued (each is queued once for everyone).
    pub publish_queue_ticks: usize,
    /// Seconds of silence after which a subscriber gets a heartbeat line
    /// (`[publish] heartbeat_secs`).
    pub publish_heartbeat_secs: u32,
    /// Subscriber connections served at once (`[publish] max_subscribers`).
    pub publish_max_subscribers: usize,
    /// The token a subscriber must send (`[publish] token_file`); `None`: none asked.
    pub publish_token: Option<crate::auth::Token>,
    /// The token the status page and /metrics ask for (`[metrics] token_file`; /health stays
    /// open); `None`: none asked.
    pub metrics_token: Option<crate::auth::Token>,
    /// Bound of the on-disk cache of decompressed archived days.
    pub archive_cache_bytes: u64,
    /// FIX initiator sessions for `tickrec record`.
    pub fix_sessions: Vec<GatewayOptions>,
}

/// A configuration problem, naming the key and its origin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("{origin}: `{key}` {why}")]
    Invalid {
        origin: String,
        key: String,
        why: String,
    },
}

/// Values given on the command line; they win over file and environment.
#[derive(Debug, Clone, Default)]
pub struct FlagOverrides {
    pub db_path: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    storage: RawStorage,
    #[serde(default)]
    recorder: RawRecorder,
    #[serde(default)]
    writer: RawWriter,
    #[serde(default)]
    sqlite: RawSqlite,
    #[serde(default)]
    health: RawHealth,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    publish: RawPublish,
    #[serde(default)]
    archive: RawArchive,
    #[serde(default)]
    fix: RawFix,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFix {
    #[serde(default)]
    sessions: Vec<RawFixSession>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFixSession {
    connect: Option<String>,
    sender_comp_id: Option<String>,
    target_comp_id: Option<String>,
    source: Option<String>,
    #[serde(default)]
    symbols: Vec<String>,
    heartbeat_secs: Option<u32>,
    reconnect_interval_ms: Option<u64>,
    max_reconnect_interval_ms: Option<u64>,
    username: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    reset_on_logon: Option<bool>,
    /// `"session"` (default: session messages in full, headers of the rest) or `"full"`.
    validation: Option<String>,
    /// Largest SendingTime distance from the receive clock, s (0 = off); FIX's rule is 120.
    sending_time_tolerance_s: Option<u64>,
    /// Present only to refuse it with a clear message.
    password: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    backend: Option<String>,
    db_path: Option<PathBuf>,
    json_path: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecorder {
    broker_id: Option<String>,
    channel_capacity: Option<usize>,
    ring_capacity: Option<usize>,
    max_symbols: Option<usize>,
    overflow: Option<OverflowPolicy>,
    throttle_interval_us: Option<u64>,
    /// RFC 3339 time or date: older event times are refused.
    earliest_ts_event: Option<String>,
    /// Event times further ahead of the receive time than this are refused.
    max_ahead_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWriter {
    batch_size: Option<usize>,
    batch_timeout_ms: Option<u64>,
    commit_retries: Option<u32>,
    retry_backoff_ms: Option<u64>,
    max_open_days: Option<usize>,
    background_checkpoint_ms: Option<u64>,
    wal_max_mib: Option<u64>,
    stall_retry_max_ms: Option<u64>,
    shutdown_timeout_ms: Option<u64>,
    #[serde(default)]
    dead_letter_dirs: Vec<PathBuf>,
    symbol_blocks: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSqlite {
    synchronous: Option<Synchronous>,
    busy_timeout_ms: Option<u64>,
    cache_size_kib: Option<u32>,
    mmap_size_mib: Option<u64>,
    wal_autocheckpoint_pages: Option<u32>,
    page_size: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    max_queue_fill: Option<f64>,
    max_write_errors: Option<u64>,
    session_grace_s: Option<u64>,
    /// A subscribed symbol without a tick for this long is unhealthy (0 or absent: off).
    stale_after_s: Option<u64>,
    /// When symbols are expected to tick, UTC, e.g. "Sun 22:00 - Fri 22:00" (absent: always).
    trading_hours: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArchive {
    cache_max_mib: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
    /// `"text"` (default) or `"json"`.
    format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPublish {
    /// `host:port` subscribers connect to (record only); absent: no fan-out.
    listen: Option<String>,
    /// Ticks a subscriber may have waiting before it is disconnected as too slow.
    queue_ticks: Option<usize>,
    /// Seconds of silence on a subscriber's stream before it gets a heartbeat line.
    heartbeat_secs: Option<u32>,
    /// Subscriber connections served at once; one more is refused.
    max_subscribers: Option<usize>,
    /// A file whose first line is the token each subscriber must send.
    token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    /// `host:port` of /metrics and /health; absent: no listener.
    listen: Option<String>,
    /// A file whose first line is the token the status page and /metrics ask for.
    token_file: Option<PathBuf>,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum LogFormat {
    /// One human-readable line per event, colour only on a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl Options {
    /// Builds options from an optional TOML file, an environment lookup and flags.
    ///
    /// Long on purpose: one validation per configuration key, in the file's order, each naming
    /// its key in the error; split up, the keys' precedence (flag > environment > file >
    /// default) would be spread over as many functions.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        flags: &FlagOverrides,
    ) -> Result<Options, ConfigError> {
        let (raw, origin) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                let raw: RawConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_owned(),
                    source: Box::new(e),
                })?;
                (raw, path.display().to_string())
            }
            None => (RawConfig::default(), "defaults".to_owned()),
        };
        let invalid = |key: &str, why: String| ConfigError::Invalid {
            origin: origin.clone(),
            key: key.to_owned(),
            why,
        };
        let env_invalid = |var: &str, why: String| ConfigError::Invalid {
            origin: "environment".into(),
            key: var.to_owned(),
            why,
        };

        let backend_text = match env("TICK_STORAGE_BACKEND") {
            Some(v) => Some((v, true)),
            None => raw.storage.backend.map(|v| (v, false)),
        };
        let backend = match backend_text {
            None => Backend::Sqlite,
            Some((v, from_env)) => parse_backend(&v).map_err(|why| {
                if from_env {
                    env_invalid("TICK_STORAGE_BACKEND", why)
                } else {
                    invalid("storage.backend", why)
                }
            })?,
        };
        let db_path = flags
            .db_path
            .clone()
            .or_else(|| {
                env("TICK_DB_PATH")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .or(raw.storage.db_path)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DB_PATH));
        let json_path = env("TICK_JSON_PATH")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or(raw.storage.json_path.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_JSON_PATH));
        let broker_id = env("BROKER_ID")
            .filter(|v| !v.is_empty())
            .or(raw.recorder.broker_id.clone())
            .unwrap_or_else(|| DEFAULT_BROKER_ID.to_owned());
        if broker_id.trim().is_empty() || broker_id.chars().any(char::is_control) {
            return Err(invalid(
                "recorder.broker_id",
                "must be a non-empty name without control characters".into(),
            ));
        }

        let defaults = PipelineOptions::default();
        let r = &raw.recorder;
        let w = &raw.writer;
        let positive = |key: &'static str, v: Option<usize>, default: usize| match v {
            Some(0) => Err(invalid(key, "must be at least 1".into())),
            Some(v) => Ok(v),
            None => Ok(default),
        };
        // Sizes that are allocated up front: past these bounds a typo (an extra zero or three)
        // would fail as an allocation at start, or when a symbol's first tick makes its ring.
        let within = |key: &'static str, v: Option<usize>, default: usize, max: usize| match v {
            Some(v) if !(1..=max).contains(&v) => {
                Err(invalid(key, format!("must be 1..={max}, got {v}")))
            }
            Some(v) => Ok(v),
            None => Ok(default),
        };
        let batch_timeout_ms = w.batch_timeout_ms.unwrap_or(100);
        if batch_timeout_ms == 0 || batch_timeout_ms > 60_000 {
            return Err(invalid(
                "writer.batch_timeout_ms",
                format!("must be 1..=60000, got {batch_timeout_ms}"),
            ));
        }
        let health = HealthPolicy {
            max_queue_fill: raw
                .health
                .max_queue_fill
                .unwrap_or(HealthPolicy::default().max_queue_fill),
            max_write_errors: raw
                .health
                .max_write_errors
                .unwrap_or(HealthPolicy::default().max_write_errors),
            session_grace: raw
                .health
                .session_grace_s
                .map(Duration::from_secs)
                .unwrap_or(HealthPolicy::default().session_grace),
            stale_after: raw
                .health
                .stale_after_s
                .filter(|&s| s > 0)
                .map(Duration::from_secs),
            trading_hours: match &raw.health.trading_hours {
                Some(t) => Some(
                    crate::pipeline::WeeklyWindow::parse(t)
                        .map_err(|why| invalid("health.trading_hours", why))?,
                ),
                None => None,
            },
        };
        if !(0.0..=1.0).contains(&health.max_queue_fill) {
            return Err(invalid(
                "health.max_queue_fill",
                format!("must be between 0 and 1, got {}", health.max_queue_fill),
            ));
        }
        let pipeline = PipelineOptions {
            channel_capacity: within(
                "recorder.channel_capacity",
                r.channel_capacity,
                defaults.channel_capacity,
                MAX_CHANNEL_CAPACITY,
            )?,
            ring_capacity: within(
                "recorder.ring_capacity",
                r.ring_capacity,
                defaults.ring_capacity,
                MAX_RING_CAPACITY,
            )?,
            max_symbols: within(
                "recorder.max_symbols",
                r.max_symbols,
                defaults.max_symbols,
                MAX_SYMBOLS,
            )?,
            overflow: r.overflow.unwrap_or_default(),
            throttle_ns: i64::try_from(r.throttle_interval_us.unwrap_or(0))
                .ok()
                .and_then(|us| us.checked_mul(1000))
                .ok_or_else(|| invalid("recorder.throttle_interval_us", "too large".into()))?,
            batch: BatchPolicy {
                batch_size: within("writer.batch_size", w.batch_size, 500, MAX_BATCH_SIZE)?,
                batch_timeout: Duration::from_millis(batch_timeout_ms),
            },
            health,
            time_window: TimeWindow {
                earliest: match &r.earliest_ts_event {
                    Some(t) => Timestamp::parse(t)
                        .map_err(|e| invalid("recorder.earliest_ts_event", e.to_string()))?,
                    None => defaults.time_window.earliest,
                },
                max_ahead_ns: match r.max_ahead_s {
                    Some(s) => i64::try_from(s)
                        .ok()
                        .and_then(|s| s.checked_mul(NANOS_PER_SEC))
                        .ok_or_else(|| invalid("recorder.max_ahead_s", "too large".into()))?,
                    None => defaults.time_window.max_ahead_ns,
                },
            },
            shutdown_timeout: match w.shutdown_timeout_ms {
                Some(ms) if !(100..=600_000).contains(&ms) => {
                    return Err(invalid(
                        "writer.shutdown_timeout_ms",
                        format!("must be 100..=600000, got {ms}"),
                    ))
                }
                Some(ms) => Duration::from_millis(ms),
                None => defaults.shutdown_timeout,
            },
        };

        let s = &raw.sqlite;
        let sd = SqliteOptions::default();
        let page_size = s.page_size.unwrap_or(sd.page_size);
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(invalid(
                "sqlite.page_size",
                format!("must be a power of two from 512 to 65536, got {page_size}"),
            ));
        }
        let wd = WriterOptions::default();
        let writer = WriterOptions {
            sqlite: SqliteOptions {
                synchronous: s.synchronous.unwrap_or(sd.synchronous),
                busy_timeout: s
                    .busy_timeout_ms
                    .map(Duration::from_millis)
                    .unwrap_or(sd.busy_timeout),
                cache_size_kib: s.cache_size_kib.unwrap_or(sd.cache_size_kib),
                mmap_size: s
                    .mmap_size_mib
                    .map(|m| m.saturating_mul(1024 * 1024))
                    .unwrap_or(sd.mmap_size),
                wal_autocheckpoint_pages: s
                    .wal_autocheckpoint_pages
                    .unwrap_or(sd.wal_autocheckpoint_pages),
                page_size,
            },
            commit_retries: w.commit_retries.unwrap_or(wd.commit_retries),
            retry_backoff: w
                .retry_backoff_ms
                .map(Duration::from_millis)
                .unwrap_or(wd.retry_backoff),
            max_open_days: positive("writer.max_open_days", w.max_open_days, wd.max_open_days)?,
            background_checkpoint: match w.background_checkpoint_ms {
                Some(0) => None,
                Some(ms) => Some(Duration::from_millis(ms)),
                None => wd.background_checkpoint,
            },
            wal_max_bytes: match w.wal_max_mib {
                Some(0) => return Err(invalid("writer.wal_max_mib", "must be at least 1".into())),
                Some(mib) => mib.saturating_mul(1 << 20),
                None => wd.wal_max_bytes,
            },
            stall_retry_max: match w.stall_retry_max_ms {
                Some(0) => {
                    return Err(invalid(
                        "writer.stall_retry_max_ms",
                        "must be at least 1".into(),
                    ))
                }
                Some(ms) => Duration::from_millis(ms),
                None => wd.stall_retry_max,
            },
            dead_letter_dirs: w.dead_letter_dirs.clone(),
            symbol_blocks: w.symbol_blocks.unwrap_or(wd.symbol_blocks),
        };
        let log_level = raw.log.level.unwrap_or_else(|| "info".to_owned());
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(invalid(
                "log.level",
                format!("is not a log filter: {log_level:?}"),
            ));
        }
        let archive_cache_bytes = match raw.archive.cache_max_mib {
            Some(0) => {
                return Err(invalid(
                    "archive.cache_max_mib",
                    "must be at least 1".into(),
                ))
            }
            Some(mib) => mib.saturating_mul(1024 * 1024),
            None => crate::store::reader::DEFAULT_ARCHIVE_CACHE_BYTES,
        };
        let mut fix_sessions = Vec::new();
        for (i, raw) in raw.fix.sessions.into_iter().enumerate() {
            let g = fix_session(raw, &db_path, env, &|key, why| {
                invalid(&format!("fix.sessions[{i}].{key}"), why)
            })?;
            // A session is its identity: two tables with one identity would share (and fight
            // over) one sequence record.
            if let Some(j) = fix_sessions
                .iter()
                .position(|o: &GatewayOptions| o.origin() == g.origin())
            {
                return Err(invalid(
                    &format!("fix.sessions[{i}]"),
                    format!(
                        "is the same session as fix.sessions[{j}] ({}); each (SenderCompID, TargetCompID) may appear once",
                        g.origin()
                    ),
                ));
            }
            fix_sessions.push(g);
        }
        let log_format = match raw.log.format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "log.format",
                    format!("must be \"text\" or \"json\", got {other:?}"),
                ))
            }
        };
        let publish_listen = raw.publish.listen;
        if let Some(addr) = &publish_listen {
            if addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(invalid(
                    "publish.listen",
                    format!("must be host:port with an IP address, got {addr:?}"),
                ));
            }
        }
        let publish_queue_ticks = match raw.publish.queue_ticks {
            None => crate::publish::MAX_QUEUED_TICKS,
            Some(0) => return Err(invalid("publish.queue_ticks", "must be at least 1".into())),
            Some(n) => n,
        };
        let publish_heartbeat_secs = within(
            "publish.heartbeat_secs",
            raw.publish.heartbeat_secs.map(|s| s as usize),
            crate::publish::HEARTBEAT_SECS as usize,
            3600,
        )? as u32;
        let publish_max_subscribers = within(
            "publish.max_subscribers",
            raw.publish.max_subscribers,
            crate::publish::MAX_SUBSCRIBERS,
            10_000,
        )?;
        let metrics_listen = raw.metrics.listen;
        if let Some(addr) = &metrics_listen {
            if addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(invalid(
                    "metrics.listen",
                    format!("must be host:port with an IP address, got {addr:?}"),
                ));
            }
        }
        let token = |key: &str, file: Option<PathBuf>| {
            file.map(|f| crate::auth::Token::load(&f))
                .transpose()
                .map_err(|e| invalid(key, e.to_string()))
        };
        let publish_token = token("publish.token_file", raw.publish.token_file)?;
        let metrics_token = token("metrics.token_file", raw.metrics.token_file)?;
        Ok(Options {
            backend,
            db_path,
            json_path,
            broker_id,
            pipeline,
            writer,
            log_level,
            log_format,
            metrics_listen,
            publish_listen,
            publish_queue_ticks,
            publish_heartbeat_secs,
            publish_max_subscribers,
            publish_token,
            metrics_token,
            archive_cache_bytes,
            fix_sessions,
        })
    }
}

/// One FIX session given on the command line (`record --connect …`), with the names of the
/// flags: validated by the same rules and defaults as a `[[fix.sessions]]` entry.
#[derive(Debug, Clone, Default)]
pub struct SessionFlags {
    pub connect: String,
    pub sender_comp_id: String,
    pub target_comp_id: String,
    pub symbols: Vec<String>,
    pub heartbeat_secs: u32,
    pub source: Option<String>,
    pub password_env: Option<String>,
    pub reset_on_logon: bool,
}

/// Validates a session given by flags (errors name the flag, e.g. `--heartbeat-secs`).
pub fn session_from_flags(
    flags: SessionFlags,
    db_path: &Path,
) -> Result<GatewayOptions, ConfigError> {
    let raw = RawFixSession {
        connect: Some(flags.connect),
        sender_comp_id: Some(flags.sender_comp_id),
        target_comp_id: Some(flags.target_comp_id),
        source: flags.source,
        symbols: flags.symbols,
        heartbeat_secs: Some(flags.heartbeat_secs),
        password_env: flags.password_env,
        reset_on_logon: Some(flags.reset_on_logon),
        ..RawFixSession::default()
    };
    let env = |k: &str| std::env::var(k).ok();
    fix_session(raw, db_path, &env, &|key, why| ConfigError::Invalid {
        origin: "command line".into(),
        key: format!("--{}", key.replace('_', "-")),
        why,
    })
}

/// Validates one `[[fix.sessions]]` entry.
///
/// Long (~90 lines) on purpose: one check per field of the entry, in the order of the configuration
/// reference.
fn fix_session(
    raw: RawFixSession,
    db_path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<GatewayOptions, ConfigError> {
    if raw.password.is_some() {
        return Err(invalid(
            "password",
            "is never read from a config file; use password_env or password_file".into(),
        ));
    }
    let required = |key: &str, v: Option<String>| {
        v.filter(|v| !v.trim().is_empty())
            .ok_or_else(|| invalid(key, "is required".into()))
    };
    let connect = required("connect", raw.connect)?;
    if !connect.contains(':') {
        return Err(invalid(
            "connect",
            format!("must be host:port, got {connect:?}"),
        ));
    }
    let sender = required("sender_comp_id", raw.sender_comp_id)?;
    let target = required("target_comp_id", raw.target_comp_id)?;
    if raw.symbols.is_empty() {
        return Err(invalid("symbols", "must name at least one symbol".into()));
    }
    let password = match (raw.password_env, raw.password_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "password_env",
                "and password_file are exclusive".into(),
            ))
        }
        (Some(var), None) => Some(
            env(&var)
                .ok_or_else(|| invalid("password_env", format!("names {var}, which is not set")))?,
        ),
        (None, Some(file)) => Some(
            std::fs::read_to_string(&file)
                .map(|p| p.trim_end_matches(['\r', '\n']).to_owned())
                .map_err(|e| invalid("password_file", format!("{}: {e}", file.display())))?,
        ),
        (None, None) => None,
    };
    let heartbeat_secs = raw.heartbeat_secs.unwrap_or(30);
    if !(1..=3600).contains(&heartbeat_secs) {
        return Err(invalid(
            "heartbeat_secs",
            format!("must be 1..=3600, got {heartbeat_secs}"),
        ));
    }
    let reconnect = Duration::from_millis(raw.reconnect_interval_ms.unwrap_or(1000).max(10));
    let validation = match raw.validation.as_deref() {
        None | Some("session") => Validation::Session,
        Some("full") => Validation::Full,
        Some(other) => {
            return Err(invalid(
                "validation",
                format!("must be \"session\" or \"full\", got {other:?}"),
            ))
        }
    };
    Ok(GatewayOptions {
        connect,
        source: raw.source.unwrap_or_else(|| target.clone()),
        session: SessionConfig {
            heartbeat_secs,
            username: raw.username,
            password,
            reset_on_logon: raw.reset_on_logon.unwrap_or(false),
            validation,
            sending_time_tolerance: match raw.sending_time_tolerance_s {
                Some(0) => None,
                Some(s) => Some(Duration::from_secs(s)),
                None => Some(Duration::from_secs(120)),
            },
            ..SessionConfig::new(&sender, &target)
        },
        symbols: raw.symbols,
        reconnect_interval: reconnect,
        max_reconnect_interval: Duration::from_millis(
            raw.max_reconnect_interval_ms.unwrap_or(30_000),
        )
        .max(reconnect),
        db_path: db_path.to_owned(),
    })
}

fn parse_backend(v: &str) -> Result<Backend, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "sqlite" => Ok(Backend::Sqlite),
        "json" => Ok(Backend::Json),
        "dual" => Ok(Backend::Dual),
        other => Err(format!(
            "unknown storage backend {other:?} (expected: sqlite, json or dual)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn the_shipped_configuration_files_load() {
        for name in ["development.toml", "production.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("config")
                .join(name);
            let o = Options::load(
                Some(&path),
                &env_of(&[("LP1_FIX_PASSWORD", "secret")]),
                &FlagOverrides::default(),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                o.metrics_listen.as_deref(),
                Some("127.0.0.1:9464"),
                "{name}"
            );
            assert!(o.pipeline.health.trading_hours.is_some(), "{name}");
            assert!(!o.fix_sessions.is_empty(), "{name}");
        }
    }

    #[test]
    fn metrics_health_and_log_keys_are_checked() {
        let bad = [
            "[metrics]\nlisten = \"localhost\"\n",
            "[log]\nformat = \"xml\"\n",
            "[health]\ntrading_hours = \"weekdays\"\n",
            "[publish]\nqueue_ticks = 0\n",
            "[publish]\nheartbeat_secs = 0\n",
            "[publish]\nheartbeat_secs = 3601\n",
            "[publish]\nmax_subscribers = 0\n",
            "[publish]\nmax_subscribers = 10001\n",
        ];
        for text in bad {
            let f = file(text);
            assert!(
                Options::load(Some(f.path()), &env_of(&[]), &FlagOverrides::default()).is_err(),
                "{text}"
            );
        }
        let f = file("[log]\nformat = \"json\"\n[health]\nstale_after_s = 5\n");
        let o = Options::load(Some(f.path()), &env_of(&[]), &FlagOverrides::default()).unwrap();
        assert_eq!(o.log_format, LogFormat::Json);
        assert_eq!(o.pipeline.health.stale_after, Some(Duration::from_secs(5)));
        assert_eq!(o.metrics_listen, None, "no listener unless configured");
    }

    #[test]
    fn token_files_are_read_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (good, short) = (dir.path().join("good"), dir.path().join("short"));
        std::fs::write(&good, "0123456789abcdef\n").unwrap();
        std::fs::write(&short, "0123\n").unwrap();
        let load = |key: &str, path: &Path| {
            let f = file(&format!(
                "[{key}]\ntoken_file = {:?}\n",
                path.display().to_string()
            ));
            Options::load(Some(f.path()), &env_of(&[]), &FlagOverrides::default())
        };
        let o = load("publish", &good).unwrap();
        assert!(o
            .publish_token
            .is_some_and(|t| t.matches(b"0123456789abcdef")));
        assert!(o.metrics_token.is_none());
        let o = load("metrics", &good).unwrap();
        assert!(o.metrics_token.is_some() && o.publish_token.is_none());
        for (key, path) in [("publish", &short), ("metrics", &dir.path().join("absent"))] {
            let e = load(key, path).unwrap_err().to_string();
            assert!(
                e.contains(&format!("{key}.token_file")) && e.contains(&*path.to_string_lossy()),
                "{e}"
            );
        }
    }

    #[test]
    fn defaults_need_no_file() {
        let o = Options::load(None, &env_of(&[]), &FlagOverrides::default()).unwrap();
        assert_eq!(o.db_path, PathBuf::from(DEFAULT_DB_PATH));
        assert_eq!(o.pipeline.batch.batch_size, 500);
        assert_eq!(o.pipeline.ring_capacity, 10_000);
        assert_eq!(o.pipeline.overflow, OverflowPolicy::Block);
        assert_eq!(o.writer.sqlite.synchronous, Synchronous::Normal);
        assert_eq!(o.publish_heartbeat_secs, 1);
        assert_eq!(o.publish_max_subscribers, 64);
    }

    #[test]
    fn flags_beat_environment_which_beats_the_file() {
        let f = file("[storage]\ndb_path = \"/from/file\"\n[recorder]\nbroker_id = \"FILE\"\n");
        let env = env_of(&[("TICK_DB_PATH", "/from/env"), ("BROKER_ID", "ENV")]);
        let o = Options::load(Some(f.path()), &env, &FlagOverrides::default()).unwrap();
        assert_eq!(o.db_path, PathBuf::from("/from/env"));
        assert_eq!(o.broker_id, "ENV");
        let flags = FlagOverrides {
            db_path: Some("/from/flag".into()),
        };
        let o = Options::load(Some(f.path()), &env, &flags).unwrap();
        assert_eq!(o.db_path, PathBuf::from("/from/flag"));
        let o = Options::load(Some(f.path()), &env_of(&[]), &FlagOverrides::default()).unwrap();
        assert_eq!(o.db_path, PathBuf::from("/from/file"));
        assert_eq!(o.broker_id, "FILE");
    }

    #[test]
    fn a_bad_value_names_the_key_and_the_file() {
        let f = file("[writer]\nbatch_size = 0\n");
        let err = Options::load(Some(f.path()), &env_of(&[]), &FlagOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("writer.batch_size"), "{err}");
        assert!(err.contains(&f.path().display().to_string()), "{err}");

        let f = file("[writer]\nbatch_size = \"many\"\n");
        let err = Options::load(Some(f.path()), &env_of(&[]), &FlagOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("batch_size") && err.contains("line 2"),
            "{err}"
        );

        let f = file("[writer]\nbatch_sise = 5\n");
        let err = Options::load(Some(f.path()), &env_of(&[]), &FlagOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("batch_sise"), "unknown keys are errors: {err}");
    }

    #[test]
    fn sizes_allocated_up_front_are_bounded_with_the_limit_in_the_error() {
        let load = |text: &str| {
            let f = file(text);
            Options::load(Some(f.path()), &env_of(&[]), &FlagOverrides::default())
                .map_err(|e| e.to_string())
        };
        for (section, key, max) in [
            ("recorder", "channel_capacity", MAX_CHANNEL_CAPACITY),
            ("recorder", "ring_capacity", MAX_RING_CAPACITY),
            ("recorder", "max_symbols", MAX_SYMBOLS),
            ("writer", "batch_size", MAX_BATCH_SIZE),
        ] {
            let o = load(&format!("[{section}]\n{key} = {max}\n"))
                .unwrap_or_else(|e| panic!("{key} at its bound: {e}"));
            let got = match key {
                "channel_capacity" => o.pipeline.channel_capacity,
                "ring_capacity" => o.pipeline.ring_capacity,
                "max_symbols" => o.pipeline.max_symbols,
                _ => o.pipeline.batch.batch_size,
            };
            assert_eq!(got, max, "{key}");
            for bad in [0, max + 1, max * 1000] {
                let err = load(&format!("[{section}]\n{key} = {bad}\n")).unwrap_err();
                assert!(
                    err.contains(&format!("{section}.{key}"))
                        && err.contains(&format!("1..={max}"))
                        && err.contains(&format!("got {bad}")),
                    "{err}"
                );
            }
        }
    }

    #[test]
    fn a_bad_environment_value_names_the_variable() {
        let err = Options::load(
            None,
            &env_of(&[("TICK_STORAGE_BACKEND", "mongo")]),
            &FlagOverrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("TICK_STORAGE_BACKEND") && err.contains("mongo"),
            "{err}"
        );
    }

    /// Two tables with one identity would share one sequence record and overwrite each other's
    /// mark; two sessions to one LP with the same `source` but different CompIDs are fine.
    #[test]
    fn a_session_identity_may_appear_once_and_names_both_tables() {
        let session = |target: &str, source: &str| {
            format!(
                "[[fix.sessions]]\nconnect = \"h:1\"\nsender_comp_id = \"REC\"\n\
                 target_comp_id = \"{target}\"\nsource = \"{source}\"\nsymbols = [\"EURUSD\"]\n"
            )
        };
        let ok = file(&(session("LP1", "LP1") + &session("LP1B", "LP1")));
        let o = Options::load(Some(ok.path()), &env_of(&[]), &FlagOverrides::default()).unwrap();
        assert_eq!(o.fix_sessions.len(), 2);
        let dup =
            file(&(session("LP1", "LP1") + &session("LP2", "LP2") + &session("LP1", "other")));
        let err = Options::load(Some(dup.path()), &env_of(&[]), &FlagOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("fix.sessions[2]")
                && err.contains("fix.sessions[0]")
                && err.contains("REC->LP1"),
            "{err}"
        );
    }

    #[test]
    fn fix_sessions_take_passwords_from_the_environment_never_from_the_file() {
        let f = file(
            "[[fix.sessions]]\nconnect = \"127.0.0.1:9876\"\nsender_comp_id = \"REC\"\n\
             target_comp_id = \"LP1\"\nsymbols = [\"EURUSD\"]\npassword_env = \"LP1_PW\"\n",
        );
        let o = Options::load(
            Some(f.path()),
            &env_of(&[("LP1_PW", "s3cret")]),
            &FlagOverrides::default(),
        )
        .unwrap();
        let s = &o.fix_sessions[0];
        assert_eq!(s.session.password.as_deref(), Some("s3cret"));
        assert_eq!(s.source, "LP1", "source defaults to the TargetCompID");
        let err = Options::load(Some(f.path()), &env_of(&[]), &FlagOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("fix.sessions[0].password_env") && err.contains("LP1_PW"),
            "{err}"
        );

        let f = file(
            "[[fix.sessions]]\nconnect = \"h:1\"\nsender_comp_id = \"A\"\ntarget_comp_id = \"B\"\n\
             symbols = [\"X\"]\npassword = \"oops\"\n",
        );
        let err = Options::load(Some(f.path()), &env_of(&[]), &FlagOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("fix.sessions[0].password") && err.contains("never"),
            "{err}"
        );
    }

    #[test]
    fn shipped_config_files_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Options::load(
                    Some(&path),
                    &env_of(&[("LP1_FIX_PASSWORD", "x")]),
                    &FlagOverrides::default(),
                )
                .unwrap_or_else(|e| panic!("{e}"));
                seen += 1;
            }
        }
        assert!(seen >= 3, "development, production and migration configs");
    }
}
