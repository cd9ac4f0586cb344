//! Opening day files: pragmas, applying `schema/ticks.sql`, version checks and upgrades.
//!
//! Invariant: a connection returned here is to a file at exactly [`SCHEMA_VERSION`] that holds
//! the day its name says. A file with tables but no version, or a newer version, is refused,
//! never "repaired".

use std::path::Path;

use chrono::NaiveDate;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::{SqliteOptions, StoreError};
use crate::tick::Timestamp;

/// The schema, applied verbatim to new files.
pub const SCHEMA_SQL: &str = include_str!("../../schema/ticks.sql");
/// `PRAGMA user_version` of files this build writes.
pub const SCHEMA_VERSION: i64 = 8;
/// Upgrade steps: `UPGRADES[i]` takes a file from version `i + 1` to `i + 2`, in the same
/// transaction that checks the version.
const UPGRADES: &[&str] = &[
    include_str!("../../schema/upgrades/0002_fix_sessions.sql"),
    include_str!("../../schema/upgrades/0003_imports.sql"),
    include_str!("../../schema/upgrades/0004_marks.sql"),
    include_str!("../../schema/upgrades/0005_batches.sql"),
    include_str!("../../schema/upgrades/0006_ask_spread.sql"),
    include_str!("../../schema/upgrades/0007_packed_directory.sql"),
    include_str!("../../schema/upgrades/0008_blocks.sql"),
];

/// Opens (creating if needed) the day file for writing, upgrading an older schema.
pub fn open_for_write(
    path: &Path,
    day: NaiveDate,
    opts: &SqliteOptions,
) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
    }
    if !path.exists() {
        create_whole(path, day, opts)?;
    }
    let mut conn = Connection::open(path).map_err(StoreError::sqlite(path))?;
    let sq = StoreError::sqlite(path);
    (|| -> rusqlite::Result<()> {
        conn.busy_timeout(opts.busy_timeout)?;
        // page_size only takes effect before the first table exists; harmless afterwards.
        conn.pragma_update(None, "page_size", opts.page_size)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(rusqlite::Error::InvalidQuery);
        }
        conn.pragma_update(None, "synchronous", opts.synchronous.pragma())?;
        apply_cache_pragmas(&conn, opts)?;
        conn.pragma_update(None, "wal_autocheckpoint", opts.wal_autocheckpoint_pages)?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(())
    })()
    .map_err(sq)?;
    ensure_schema(&mut conn, path, day)?;
    Ok(conn)
}

static CREATING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Makes a new day file appear whole or not at all: the schema is applied to a temporary
/// file, which is then linked into place (`link` never replaces: when another writer got there
/// first, its file stays and ours goes). A reader never sees a day file without its schema.
fn create_whole(path: &Path, day: NaiveDate, opts: &SqliteOptions) -> Result<(), StoreError> {
    let tmp = crate::fsutil::with_suffix(
        path,
        &format!(
            ".new-{}-{}",
            std::process::id(),
            CREATING.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ),
    );
    let result = (|| {
        {
            let mut conn = Connection::open(&tmp).map_err(StoreError::sqlite(&tmp))?;
            conn.pragma_update(None, "page_size", opts.page_size)
                .and_then(|_| conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(())))
                .map_err(StoreError::sqlite(&tmp))?;
            ensure_schema(&mut conn, &tmp, day)?;
            conn.close().map_err(|(_, e)| StoreError::Sqlite {
                path: tmp.clone(),
                source: e,
            })?;
        }
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(StoreError::io(&tmp))?;
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => crate::fsutil::sync_parent(path).map_err(StoreError::io(path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(StoreError::Io {
                path: path.to_owned(),
                source: e,
            }),
        }
    })();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(crate::fsutil::with_suffix(&tmp, suffix));
    }
    result
}

/// Opens an existing day file read-only for queries.
pub fn open_for_read(path: &Path, opts: &SqliteOptions) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(StoreError::sqlite(path))?;
    ready_for_read(path, conn, opts)
}

/// Whether reading failed because SQLite could not make or grow the file's shared-memory
/// index (`-shm`): on a full disk, a day file nobody has open cannot be read the usual way.
pub fn is_shm_failure(err: &StoreError) -> bool {
    use rusqlite::ffi;
    matches!(err, StoreError::Sqlite { source: rusqlite::Error::SqliteFailure(e, _), .. }
        if [ffi::SQLITE_IOERR_SHMOPEN, ffi::SQLITE_IOERR_SHMSIZE, ffi::SQLITE_IOERR_SHMMAP]
            .contains(&e.extended_code))
}

/// Opens a day file read-only as *immutable*: SQLite makes no `-shm`, reads no `-wal` and
/// takes no lock. Only for a caller that has found the write-ahead log empty (nothing in it to
/// miss) and holds the day's exclusive lock, or reads from a read-only file system: nothing
/// can change the file meanwhile (see `reader::open_day_conn`).
pub fn open_immutable(path: &Path, opts: &SqliteOptions) -> Result<Connection, StoreError> {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    let conn = Connection::open_with_flags(
        &uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(StoreError::sqlite(path))?;
    ready_for_read(path, conn, opts)
}

fn ready_for_read(
    path: &Path,
    conn: Connection,
    opts: &SqliteOptions,
) -> Result<Connection, StoreError> {
    conn.busy_timeout(opts.busy_timeout)
        .and_then(|_| apply_cache_pragmas(&conn, opts))
        // A kept statement runs again as prepared. Without this, SQLite re-prepares one whose
        // `LIMIT ?` was bound anew (it plans with the value): 14 % of a `recent 100`.
        .and_then(|_| conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true))
        .map_err(StoreError::sqlite(path))?;
    let version = user_version(&conn).map_err(StoreError::sqlite(path))?;
    // Every version has the tables a query reads (file_info, symbols, sources, ticks); what
    // later versions added is looked up by `user_version` where it is used (see `marks`).
    check_version(path, version, &conn)?;
    Ok(conn)
}

fn apply_cache_pragmas(conn: &Connection, opts: &SqliteOptions) -> rusqlite::Result<()> {
    // Negative cache_size is in KiB.
    conn.pragma_update(None, "cache_size", -i64::from(opts.cache_size_kib))?;
    conn.pragma_update(None, "mmap_size", opts.mmap_size)?;
    Ok(())
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

fn check_version(path: &Path, version: i64, conn: &Connection) -> Result<(), StoreError> {
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.into(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == 0 {
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(StoreError::sqlite(path))?;
        if tables > 0 {
            return Err(StoreError::Foreign {
                path: path.into(),
                why: "it has tables but no tickrec schema version".into(),
            });
        }
        return Err(StoreError::Foreign {
            path: path.into(),
            why: "it is empty".into(),
        });
    }
    Ok(())
}

/// Brings the file to [`SCHEMA_VERSION`] and checks it holds `day`.
fn ensure_schema(conn: &mut Connection, path: &Path, day: NaiveDate) -> Result<(), StoreError> {
    let sq = || StoreError::sqlite(path);
    // IMMEDIATE: two processes creating the same day at once must not both apply the schema.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sq())?;
    let mut version = user_version(&tx).map_err(sq())?;
    let mut upgraded = false;
    if version == 0 {
        let tables: i64 = tx
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(sq())?;
        if tables > 0 {
            return Err(StoreError::Foreign {
                path: path.into(),
                why: "it has tables but no tickrec schema version".into(),
            });
        }
        tx.execute_batch(SCHEMA_SQL).map_err(sq())?;
        tx.execute(
            "INSERT INTO file_info (id, day, day_start_ns, created_ns, created_by)
             VALUES (1, ?1, ?2, ?3, ?4)",
            rusqlite::params![
                day.to_string(),
                Timestamp::start_of_day(day).0,
                crate::clock::Clock::now(&crate::clock::SystemClock).0,
                concat!("tickrec ", env!("CARGO_PKG_VERSION")),
            ],
        )
        .map_err(sq())?;
        version = SCHEMA_VERSION;
    } else {
        check_version(path, version, &tx)?;
        while version < SCHEMA_VERSION {
            let step = UPGRADES
                .get((version - 1) as usize)
                .ok_or_else(|| StoreError::Foreign {
                    path: path.into(),
                    why: format!("no upgrade step from schema version {version}"),
                })?;
            tx.execute_batch(step).map_err(sq())?;
            version += 1;
            upgraded = true;
        }
        if upgraded {
            // The view of this version reads the rows of every earlier one.
            tx.execute_batch(&format!("DROP VIEW IF EXISTS ticks_v; {}", view_sql()?))
                .map_err(sq())?;
        }
    }
    tx.pragma_update(None, "user_version", version)
        .map_err(sq())?;
    let found: Option<String> = tx
        .query_row("SELECT day FROM file_info WHERE id = 1", [], |r| r.get(0))
        .optional()
        .map_err(sq())?;
    if found.as_deref() != Some(day.to_string().as_str()) {
        return Err(StoreError::WrongDay {
            path: path.into(),
            found: found.unwrap_or_else(|| "nothing".into()),
            expected: day.to_string(),
        });
    }
    tx.commit().map_err(sq())?;
    Ok(())
}

/// The `CREATE VIEW ticks_v` statement of schema/ticks.sql (its last statement).
fn view_sql() -> Result<&'static str, StoreError> {
    SCHEMA_SQL
        .find("CREATE VIEW ticks_v")
        .map(|at| &SCHEMA_SQL[at..])
        .ok_or_else(|| StoreError::Foreign {
            path: "schema/ticks.sql".into(),
            why: "no CREATE VIEW ticks_v in the built-in schema".into(),
        })
}

/// The file's schema version.
pub fn version(conn: &Connection) -> rusqlite::Result<i64> {
    user_version(conn)
}

/// The midnight (ns) a file's relative `ts_event` column counts from.
pub fn day_start_ns(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT day_start_ns FROM file_info WHERE id = 1", [], |r| {
        r.get(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
    }

    #[test]
    fn a_new_file_gets_the_schema_version_and_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("2026/11/ticks_2026-11-23.db");
        let conn = open_for_write(&path, day(), &SqliteOptions::default()).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(conn);
        // Reopening is idempotent, and readers accept it.
        open_for_write(&path, day(), &SqliteOptions::default()).unwrap();
        open_for_read(&path, &SqliteOptions::default()).unwrap();
    }

    #[test]
    fn a_reader_runs_a_kept_statement_as_prepared_whatever_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(open_for_write(&path, day(), &SqliteOptions::default()).unwrap());
        let conn = open_for_read(&path, &SqliteOptions::default()).unwrap();
        let sql = "SELECT seq FROM ticks ORDER BY seq DESC LIMIT ?1";
        for limit in 1..=3 {
            let mut stmt = conn.prepare_cached(sql).unwrap();
            stmt.query_map([limit], |r| r.get::<_, i64>(0))
                .unwrap()
                .for_each(drop);
        }
        let stmt = conn.prepare_cached(sql).unwrap();
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }

    #[test]
    fn sqlite_is_compiled_with_the_flags_of_cargo_config() {
        let conn = Connection::open_in_memory().unwrap();
        let mut stmt = conn.prepare("PRAGMA compile_options").unwrap();
        let options: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        // .cargo/config.toml: no process-wide page cache mutex, no allocation counters.
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
    }

    #[test]
    fn a_file_from_a_newer_tickrec_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(open_for_write(&path, day(), &SqliteOptions::default()).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        let err = open_for_write(&path, day(), &SqliteOptions::default()).unwrap_err();
        assert!(matches!(err, StoreError::TooNew { .. }), "{err}");
        let err = open_for_read(&path, &SqliteOptions::default()).unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
    }

    #[test]
    fn a_version_1_file_is_read_as_it_is_and_upgraded_on_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(open_for_write(&path, day(), &SqliteOptions::default()).unwrap());
        // Make it what tickrec 0.1 wrote: no fix_sessions or imports table, version 1.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP TABLE fix_sessions; DROP TABLE imports; DROP TABLE marks; DROP TABLE batches; \
             DROP TABLE blocks; \
             PRAGMA user_version = 1;",
        )
        .unwrap();
        drop(conn);
        let old = open_for_read(&path, &SqliteOptions::default()).unwrap();
        assert_eq!(user_version(&old).unwrap(), 1, "readers take it as it is");
        drop(old);
        let conn = open_for_write(&path, day(), &SqliteOptions::default()).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        conn.execute("INSERT INTO fix_sessions VALUES (0, 5, 0)", [])
            .unwrap();
        drop(conn);
        open_for_read(&path, &SqliteOptions::default()).unwrap();
    }

    #[test]
    fn a_foreign_database_is_never_written_into() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE mine (x)").unwrap();
        drop(conn);
        let err = open_for_write(&path, day(), &SqliteOptions::default()).unwrap_err();
        assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
        let conn = Connection::open(&path).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "nothing added to someone else's database");
    }

    #[test]
    fn a_file_renamed_to_another_day_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(open_for_write(&path, day(), &SqliteOptions::default()).unwrap());
        let other = day().succ_opt().unwrap();
        let err = open_for_write(&path, other, &SqliteOptions::default()).unwrap_err();
        assert!(matches!(err, StoreError::WrongDay { .. }), "{err}");
    }

    #[test]
    fn the_view_decodes_prices_timestamps_and_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = open_for_write(&path, day(), &SqliteOptions::default()).unwrap();
        let start = Timestamp::start_of_day(day()).0;
        let bid = crate::tick::Decimal::parse("1.08502").unwrap().code() as i64;
        let size = crate::tick::Decimal::parse("1000000").unwrap().code() as i64;
        conn.execute_batch(&format!(
            "INSERT INTO symbols VALUES (0, 'EURUSD'); INSERT INTO sources VALUES (0, 'LP1');
             INSERT INTO ticks VALUES (1, 0, 36000123456789, 2500, {bid}, NULL, {size}, NULL, 0);"
        ))
        .unwrap();
        let row: (i64, String, i64, String, i64, f64, Option<f64>, i64, String) = conn
            .query_row(
                "SELECT seq, symbol, ts_event_ns, ts_event, ts_recv_ns, bid, ask, bid_size, source FROM ticks_v",
                [],
                |r| r.try_into(),
            )
            .unwrap();
        assert_eq!(row.0, 1);
        assert_eq!(row.1, "EURUSD");
        assert_eq!(row.2, start + 36_000_123_456_789);
        assert_eq!(row.3, "2026-11-23T10:00:00.123456789Z");
        assert_eq!(row.4, row.2 + 2500);
        assert_eq!(row.5.to_string(), "1.08502");
        assert_eq!(row.6, None);
        assert_eq!(row.7, 1_000_000);
        assert_eq!(row.8, "LP1");
    }
}
