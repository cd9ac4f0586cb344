//! Ticks set aside: dead letters (ticks the database refused *as data*: a constraint, an
//! encoding) and spills (ticks still uncommitted when a stalled store had to stop), both as
//! re-ingestable tick JSON Lines with an `error` key (`tickrec ingest FILE` replays them).
//!
//! Where: the configured locations (`writer.dead_letter_dirs`, meant for another volume) in
//! order, then the day files' own base folder; the first that takes the whole run wins. Each
//! location uses the day-file layout: `<loc>/YYYY/MM/ticks_<day>.deadletter.jsonl` and
//! `….spill.jsonl`. A run is appended and fsynced (file, and the folder when the file is new)
//! before it counts as set aside.
//!
//! Never: count a tick as set aside before its line is durable, or drop one without the caller
//! being told (the error lists every location and why it refused).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;

use crate::format::jsonl::write_json_row;
use crate::intern::Names;
use crate::store::layout;
use crate::tick::{Tick, TickRow};

/// Why ticks are being set aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The database refused them as data.
    DeadLetter,
    /// The store could not take them before shutdown.
    Spill,
}

impl Kind {
    fn path(self, base: &Path, day: NaiveDate) -> PathBuf {
        match self {
            Kind::DeadLetter => layout::dead_letter_path(base, day),
            Kind::Spill => layout::spill_path(base, day),
        }
    }
}

/// No location could take the ticks: each location with its error.
#[derive(Debug)]
pub struct SetAsideError(pub Vec<(PathBuf, std::io::Error)>);

impl std::fmt::Display for SetAsideError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return write!(f, "no location configured");
        }
        for (i, (p, e)) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{}: {e}", p.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for SetAsideError {}

/// The ordered locations for ticks set aside.
#[derive(Debug, Clone)]
pub struct SetAside {
    locations: Vec<PathBuf>,
}

impl SetAside {
    /// `configured` first, then `fallback` (the store's own base folder).
    pub fn new(configured: &[PathBuf], fallback: &Path) -> SetAside {
        let mut locations = configured.to_vec();
        if !locations.iter().any(|l| l == fallback) {
            locations.push(fallback.to_owned());
        }
        SetAside { locations }
    }

    pub fn locations(&self) -> &[PathBuf] {
        &self.locations
    }

    /// Appends `ticks` (all of `day`) with `error` to the first location that takes them all;
    /// returns the file written.
    pub fn write(
        &self,
        kind: Kind,
        day: NaiveDate,
        names: &Names,
        ticks: &[Tick],
        error: &str,
    ) -> Result<PathBuf, SetAsideError> {
        let mut lines = Vec::with_capacity(ticks.len() * 200);
        for t in ticks {
            // Writing into a Vec cannot fail.
            let _ = write_json_row(&mut lines, &named_row(names, t), Some(("error", error)));
        }
        let mut refused = Vec::new();
        for loc in &self.locations {
            let path = kind.path(loc, day);
            match append_durably(&path, &lines) {
                Ok(()) => return Ok(path),
                Err(e) => refused.push((path, e)),
            }
        }
        Err(SetAsideError(refused))
    }
}

/// Appends `bytes` and fsyncs; a new file's folder is fsynced too. On a failed write the file
/// is cut back to its old length, so that a torn run never leaves half a line behind.
fn append_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let old_len = f.metadata()?.len();
    if let Err(e) = f.write_all(bytes).and_then(|_| f.sync_data()) {
        let _ = f.set_len(old_len);
        return Err(e);
    }
    if old_len == 0 {
        crate::fsutil::sync_dir(dir)?;
    }
    Ok(())
}

/// A tick with its names resolved (`?` for an id the table does not know).
fn named_row(names: &Names, t: &Tick) -> TickRow {
    let unknown = || Arc::<str>::from("?");
    TickRow::from_tick(
        t,
        names.symbol_name(t.symbol).unwrap_or_else(unknown),
        names.source_name(t.source).unwrap_or_else(unknown),
        None,
    )
}
