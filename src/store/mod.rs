//! Daily SQLite files: where they live (`layout`), what is in them (`schema`), how batches get
//! in (`writer`) and how queries get out (`reader`).
//!
//! This module owns the on-disk tick format; nothing else opens a day file.

pub mod archive;
pub mod blockfile;
pub mod blocks;
pub mod check;
pub mod checkpoint;
pub mod columnar;
pub mod daylock;
pub mod directory;
pub mod layout;
pub mod reader;
pub mod schema;
pub mod writer;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A failure at the storage boundary, always naming the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: schema version {found} is newer than this tickrec understands ({supported}); upgrade tickrec")]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("{path}: written by an older tickrec (schema version {found}); run `tickrec upgrade` to bring it to version {supported}")]
    TooOld {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("{path}: not a tickrec day file ({why})")]
    Foreign { path: PathBuf, why: String },
    #[error("{path}: holds day {found}, but its name says {expected}")]
    WrongDay {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{path}: corrupt row: {why}")]
    Corrupt { path: PathBuf, why: String },
}

impl StoreError {
    pub(crate) fn sqlite(path: impl Into<PathBuf>) -> impl FnOnce(rusqlite::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Sqlite { path, source }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }

    /// Whether the error shows the file's contents wrong (not SQLite, malformed, shorter than
    /// its pages say, another day's or another program's file, a row breaking an invariant),
    /// as opposed to a file that could not be read here and now: a full disk, no permission,
    /// a lock, no memory, a schema version to upgrade to or from, a device failing a read
    /// (EIO says the device failed, not that the bytes are wrong; it may pass). `check
    /// --repair` moves only damaged files aside.
    pub fn is_damage(&self) -> bool {
        use rusqlite::ffi;
        match self {
            StoreError::Sqlite { source, .. } => match source {
                rusqlite::Error::SqliteFailure(e, _) => {
                    matches!(
                        e.code,
                        rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
                    ) || e.extended_code == ffi::SQLITE_IOERR_SHORT_READ
                }
                // A value of the wrong type or out of range where a column promised one.
                rusqlite::Error::FromSqlConversionFailure(..)
                | rusqlite::Error::IntegralValueOutOfRange(..)
                | rusqlite::Error::InvalidColumnType(..) => true,
                _ => false,
            },
            StoreError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ),
            StoreError::Foreign { .. }
            | StoreError::WrongDay { .. }
            | StoreError::Corrupt { .. } => true,
            StoreError::TooNew { .. } | StoreError::TooOld { .. } => false,
        }
    }
}

/// SQLite's `synchronous` setting: what a commit waits for (see README, "Crash window").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// No fsync at all: an OS crash or power loss can lose recent commits or corrupt the file.
    Off,
    /// fsync at checkpoints only: power loss can lose the last commits, never corrupts.
    #[default]
    Normal,
    /// fsync on every commit: a committed batch survives power loss.
    Full,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Off => "OFF",
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// Validated SQLite settings for day files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    pub synchronous: Synchronous,
    pub busy_timeout: Duration,
    /// Page cache per connection, KiB.
    pub cache_size_kib: u32,
    /// Memory-mapped I/O window, bytes (0 = off).
    pub mmap_size: u64,
    /// WAL pages before an automatic checkpoint (0 = only at close).
    pub wal_autocheckpoint_pages: u32,
    /// Page size for new files.
    pub page_size: u32,
}

impl Default for SqliteOptions {
    fn default() -> SqliteOptions {
        SqliteOptions {
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
            // An appending writer reads back only the right edge of its B-tree, and a reader
            // scans each page once: a larger cache held pages written once and never read
            // again (15 MB of the writer's RSS at 16 MiB). `bench --only writer --rounds 5`,
            // two runs a side, alternating: the writer's median ratio 0.87, 0.85 × at 16 MiB
            // and 0.86, 0.91 × at 2 MiB (the ceiling with the same cache), RSS less the rings
            // 52.9, 53.6 MB against 37.7, 37.4; `--only queries` moved only with the noise.
            cache_size_kib: 2 * 1024,
            mmap_size: 256 * 1024 * 1024,
            wal_autocheckpoint_pages: 1000,
            page_size: 4096,
        }
    }
}

/// Writer settings beyond SQLite's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterOptions {
    pub sqlite: SqliteOptions,
    /// Attempts after the first failed commit of a batch, before it is split.
    pub commit_retries: u32,
    /// First retry delay; doubles on each further retry.
    pub retry_backoff: Duration,
    /// Day files kept open at once (today plus recently written late days).
    pub max_open_days: usize,
    /// Checkpoint the WAL from a background thread at this interval instead of inside
    /// commits (`None`: SQLite's automatic checkpoint, `sqlite.wal_autocheckpoint_pages`).
    pub background_checkpoint: Option<Duration>,
    /// Bound on a day file's WAL: past half of it the checkpointer restarts the WAL (a brief
    /// wait for the writer) instead of only copying pages behind it.
    pub wal_max_bytes: u64,
    /// Longest wait between two attempts while the store is stalled.
    pub stall_retry_max: Duration,
    /// Where dead letters and spills go first (e.g. another volume); the base folder of the
    /// day files is always the last resort.
    pub dead_letter_dirs: Vec<PathBuf>,
    /// Also write each symbol's ticks of a directory row as one block, in block files beside
    /// the day file (`store::blocks`, `store::blockfile`): a live day's queries of one symbol
    /// read a few blocks instead of one page per run of its ticks, for ~12.6 bytes a tick
    /// beside the live file (`seal` removes them) and the builder thread's CPU.
    pub symbol_blocks: bool,
}

impl Default for WriterOptions {
    fn default() -> WriterOptions {
        WriterOptions {
            sqlite: SqliteOptions::default(),
            commit_retries: 3,
            retry_backoff: Duration::from_millis(10),
            max_open_days: 3,
            background_checkpoint: Some(Duration::from_millis(200)),
            wal_max_bytes: 64 << 20,
            stall_retry_max: Duration::from_secs(1),
            dead_letter_dirs: Vec::new(),
            symbol_blocks: true,
        }
    }
}
