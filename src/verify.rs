//! `tickrec verify`: legacy JSON history against the day files, per symbol per UTC day.
//!
//! Both sides are reduced to a count and an order-independent checksum per (day, symbol):
//! the wrapping sum of a 64-bit BLAKE3 digest of each tick's event time, bid, ask and source,
//! the fields the legacy format holds. Equal counts and checksums mean the same multiset of
//! ticks; any difference is listed. Reading only: neither side is modified.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::Path;

use chrono::NaiveDate;

use crate::legacy_json;
use crate::migrate::{input_files, MigrateError};
use crate::store::reader::{ReadError, Store};
use crate::tick::{Decimal, Timestamp};

/// Count and checksum of one (day, symbol).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Digest {
    pub ticks: u64,
    pub checksum: u64,
}

impl Digest {
    fn add(
        &mut self,
        ts_event: Timestamp,
        bid: Option<Decimal>,
        ask: Option<Decimal>,
        source: &str,
    ) {
        let mut h = blake3::Hasher::new();
        h.update(&ts_event.0.to_le_bytes());
        for d in [bid, ask] {
            match d {
                // The exact spelling: a migration that lost a trailing zero is a difference.
                Some(d) => h.update(&d.code().to_le_bytes()),
                None => h.update(b"-"),
            };
        }
        h.update(source.as_bytes());
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest.as_bytes()[..8]);
        self.ticks += 1;
        self.checksum = self.checksum.wrapping_add(u64::from_le_bytes(first));
    }
}

/// Digests keyed by (day, symbol).
pub type Digests = BTreeMap<(NaiveDate, String), Digest>;

/// One (day, symbol) whose two sides differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub day: NaiveDate,
    pub symbol: String,
    pub json: Digest,
    pub sqlite: Digest,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: json {} ticks (checksum {:016x}), sqlite {} ticks (checksum {:016x})",
            self.day,
            self.symbol,
            self.json.ticks,
            self.json.checksum,
            self.sqlite.ticks,
            self.sqlite.checksum
        )
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub compared: usize,
    pub differences: Vec<Difference>,
    /// JSON records that do not parse (they cannot be in SQLite either); listed by the caller.
    pub json_rejected: u64,
}

/// Digests of every valid record under `json_dir`; `default_source` stands for a missing `lp`.
pub fn json_digests(
    json_dir: &Path,
    default_source: &str,
    max_record: usize,
    reject: &mut dyn FnMut(&str, legacy_json::Location, &str),
) -> Result<(Digests, u64), MigrateError> {
    let mut digests = Digests::new();
    let mut rejected = 0;
    for (path, rel) in input_files(json_dir)? {
        legacy_json::read_file(&path, max_record, &mut |at, r| {
            match r {
                Ok(t) => digests
                    .entry((t.ts_event.day(), t.symbol.to_string()))
                    .or_default()
                    .add(
                        t.ts_event,
                        t.bid,
                        t.ask,
                        t.source.as_deref().unwrap_or(default_source),
                    ),
                Err(e) => {
                    rejected += 1;
                    reject(&rel, at, &e.to_string());
                }
            }
            ControlFlow::Continue(())
        })
        .map_err(|source| MigrateError::Io { path, source })?;
    }
    Ok((digests, rejected))
}

/// Digests of every tick in the day files of `store`.
pub fn sqlite_digests(store: &Store) -> Result<Digests, ReadError> {
    let mut digests = Digests::new();
    for day in store.days()? {
        store.scan_day(&day, &mut |row| {
            digests
                .entry((day.day, row.symbol.to_string()))
                .or_default()
                .add(row.ts_event, row.bid, row.ask, &row.source);
            Ok(())
        })?;
    }
    Ok(digests)
}

/// Compares the two sides; every key present on either side is compared.
pub fn compare(json: &Digests, sqlite: &Digests) -> Vec<Difference> {
    let mut keys: Vec<&(NaiveDate, String)> = json.keys().chain(sqlite.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (j, s) = (
                json.get(k).copied().unwrap_or_default(),
                sqlite.get(k).copied().unwrap_or_default(),
            );
            (j != s).then(|| Difference {
                day: k.0,
                symbol: k.1.clone(),
                json: j,
                sqlite: s,
            })
        })
        .collect()
}

/// What `verify` compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The symbol-days present in the JSON tree (a store that also holds live-recorded days,
    /// or other trees, verifies clean).
    JsonTree,
    /// Every symbol-day on either side.
    All,
}

/// Why a verification could not run (differences are its result, not an error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error(transparent)]
    Json(#[from] MigrateError),
    #[error(transparent)]
    Store(#[from] ReadError),
}

/// Verifies `json_dir` against `store`, over `scope`.
pub fn verify(
    json_dir: &Path,
    store: &Store,
    default_source: &str,
    scope: Scope,
    max_record: usize,
    reject: &mut dyn FnMut(&str, legacy_json::Location, &str),
) -> Result<VerifyReport, VerifyError> {
    let (json, json_rejected) = json_digests(json_dir, default_source, max_record, reject)?;
    let mut sqlite = sqlite_digests(store)?;
    if scope == Scope::JsonTree {
        sqlite.retain(|k, _| json.contains_key(k));
    }
    let differences = compare(&json, &sqlite);
    let mut keys: Vec<_> = json.keys().chain(sqlite.keys()).collect();
    keys.sort();
    keys.dedup();
    Ok(VerifyReport {
        compared: keys.len(),
        differences,
        json_rejected,
    })
}
