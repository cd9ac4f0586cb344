//! Day ↔ path: where the file for a UTC day lives under the base folder, and which days exist.
//!
//! Layout: `<base>/YYYY/MM/ticks_YYYY-MM-DD.db` (plus SQLite's `-wal`/`-shm` while open); an
//! archived day is `ticks_YYYY-MM-DD.parquet` or `ticks_YYYY-MM-DD.db.zst` instead (see
//! `store::archive`). Beside them:
//! `ticks_YYYY-MM-DD.lock`, the day's lock (see `store::daylock`; never deleted), and, when ticks
//! had to be set aside (see `spill`), `….deadletter.jsonl` and `….spill.jsonl`. Listing ignores
//! everything that does not match the pattern exactly; when both forms of a day exist (an
//! archive run was interrupted after its check), the plain file is the one listed.

use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};

const PREFIX: &str = "ticks_";
const DB_SUFFIX: &str = ".db";
const ZST_SUFFIX: &str = ".db.zst";
const PARQUET_SUFFIX: &str = ".parquet";

/// The database file of `day`.
pub fn day_path(base: &Path, day: NaiveDate) -> PathBuf {
    month_dir(base, day).join(format!("{PREFIX}{day}{DB_SUFFIX}"))
}

/// The compressed archive of `day`'s database.
pub fn archive_path(base: &Path, day: NaiveDate) -> PathBuf {
    month_dir(base, day).join(format!("{PREFIX}{day}{ZST_SUFFIX}"))
}

/// The Parquet archive of `day` (see `store::columnar`).
pub fn parquet_path(base: &Path, day: NaiveDate) -> PathBuf {
    month_dir(base, day).join(format!("{PREFIX}{day}{PARQUET_SUFFIX}"))
}

/// The dead-letter JSON Lines file beside `day`'s database.
pub fn dead_letter_path(base: &Path, day: NaiveDate) -> PathBuf {
    month_dir(base, day).join(format!("{PREFIX}{day}.deadletter.jsonl"))
}

/// The spill JSON Lines file (ticks a stalled store could not take before shutdown).
pub fn spill_path(base: &Path, day: NaiveDate) -> PathBuf {
    month_dir(base, day).join(format!("{PREFIX}{day}.spill.jsonl"))
}

/// The day's lock file: taken before any look at, creation, rename or removal of the day's
/// database or archive, and never deleted itself.
pub fn lock_path(base: &Path, day: NaiveDate) -> PathBuf {
    month_dir(base, day).join(format!("{PREFIX}{day}.lock"))
}

fn month_dir(base: &Path, day: NaiveDate) -> PathBuf {
    base.join(format!("{:04}", day.year()))
        .join(format!("{:02}", day.month()))
}

/// Why the base folder cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--db {path}: {why}")]
pub struct BaseError {
    pub path: PathBuf,
    pub why: String,
}

/// Checks the base folder before any work: a folder (created when missing and `write`), and
/// writable when `write` (a probe file is created and removed: permissions, a read-only mount
/// and a full inode table all show).
pub fn check_base(base: &Path, write: bool) -> Result<(), BaseError> {
    let fail = |why: String| BaseError {
        path: base.to_owned(),
        why,
    };
    match std::fs::metadata(base) {
        Ok(m) if !m.is_dir() => return Err(fail("exists but is not a directory".into())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && write => {
            std::fs::create_dir_all(base).map_err(|e| fail(format!("cannot be created: {e}")))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(fail(
                "no such directory (nothing recorded there yet?)".into(),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            return Err(fail(format!(
                "cannot be {}: part of the path is a file, not a directory",
                if write { "created" } else { "read" }
            )))
        }
        Err(e) => return Err(fail(e.to_string())),
    }
    if write {
        let probe = base.join(format!(".tickrec-write-check-{}", std::process::id()));
        std::fs::write(&probe, b"")
            .and_then(|_| std::fs::remove_file(&probe))
            .map_err(|e| fail(format!("not writable: {e}")))?;
    }
    Ok(())
}

/// The day a file name stands for, when it is a day file name.
pub fn day_of_file_name(name: &str) -> Option<NaiveDate> {
    day_and_form(name)
        .filter(|d| d.1 == Form::Live)
        .map(|d| d.0)
}

/// The forms a day takes on disk, in the order listing prefers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Form {
    /// `.db`: a SQLite day file (live, closed or sealed).
    Live,
    /// `.parquet`: the columnar archive, queried in place.
    Parquet,
    /// `.db.zst`: the compressed SQLite file, decompressed into a cache for queries.
    SqliteZst,
}

/// (day, form) of a day file or archive name.
fn day_and_form(name: &str) -> Option<(NaiveDate, Form)> {
    let rest = name.strip_prefix(PREFIX)?;
    let (day, form) = if let Some(d) = rest.strip_suffix(ZST_SUFFIX) {
        (d, Form::SqliteZst)
    } else if let Some(d) = rest.strip_suffix(PARQUET_SUFFIX) {
        (d, Form::Parquet)
    } else {
        (rest.strip_suffix(DB_SUFFIX)?, Form::Live)
    };
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .ok()
        .map(|d| (d, form))
}

/// The path of `day` in `form`.
pub fn path_of(base: &Path, day: NaiveDate, form: Form) -> PathBuf {
    match form {
        Form::Live => day_path(base, day),
        Form::Parquet => parquet_path(base, day),
        Form::SqliteZst => archive_path(base, day),
    }
}

/// The archive of `day` that exists, Parquet first.
pub fn existing_archive(base: &Path, day: NaiveDate) -> Option<(Form, PathBuf)> {
    [Form::Parquet, Form::SqliteZst]
        .into_iter()
        .map(|f| (f, path_of(base, day, f)))
        .find(|(_, p)| p.exists())
}

/// A day file found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayFile {
    pub day: NaiveDate,
    /// The `.db` file, or the archive when `archived`.
    pub path: PathBuf,
    /// Not a SQLite day file (`form` is not [`Form::Live`]).
    pub archived: bool,
    pub form: Form,
}

/// Reads of one day, in all, when its file changes under the read (see [`as_listed_now`]):
/// archiving and restoring the same day back to back can move it twice while a reader lists
/// and opens it once.
pub const RENAMED_ATTEMPTS: usize = 4;

/// Runs `read` on `day`; when it fails with `retry` true of its error and the day's files
/// changed under it, runs it again, up to [`RENAMED_ATTEMPTS`] times in all:
/// - the file is no longer there ([`relisted`]: archiving, `unarchive` or a late tick's
///   restore renamed the day into another form after it was listed: the same ticks under the
///   same seqs, invariants 13 and 16 of ARCHITECTURE.md): read again in the form its folder
///   lists now;
/// - another file is there under the name since the read began (`FileId`): the day
///   archived and restored back to back while a read-only opening ran, which found the `-wal`
///   and `-shm` of the file it opened gone (SQLite answers "unable to open database file"):
///   read again as it is now.
///
/// A day whose file is gone with no other in its place (deleted), or is the one the read
/// began on, keeps the error.
pub fn as_listed_now<T, E>(
    base: &Path,
    day: &DayFile,
    mut read: impl FnMut(&DayFile) -> Result<T, E>,
    retry: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let mut now = std::borrow::Cow::Borrowed(day);
    for _ in 1..RENAMED_ATTEMPTS {
        let before = file_identity(&now.path).ok();
        match read(&now) {
            Err(e) if retry(&e) => match relisted(base, &now) {
                Some(next) => now = std::borrow::Cow::Owned(next),
                None if file_identity(&now.path).is_ok_and(|id| Some(id) != before) => {}
                None => return Err(e),
            },
            out => return out,
        }
    }
    read(&now)
}

/// Which file is at a path: (device, inode, creation time). Another file put under the name
/// reads differently, the same file appended to does not (a creation time tells apart a file
/// made again under an inode number just freed, where the file system records one).
pub(crate) type FileId = (u64, u64, Option<std::time::SystemTime>);

/// The [`FileId`] of the file at `path` now (a link followed).
pub(crate) fn file_identity(path: &Path) -> std::io::Result<FileId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map(|m| (m.dev(), m.ino(), m.created().ok()))
}

/// `day` as its folder lists it now, when the file listed before is gone and another file
/// holds the day: archiving, `unarchive` or a late tick's restore renamed the day into its
/// other form since it was listed (the same ticks under the same seqs). `None` while the file
/// listed is there, or when no file holds the day any more (it was deleted).
pub fn relisted(base: &Path, day: &DayFile) -> Option<DayFile> {
    let gone = matches!(std::fs::symlink_metadata(&day.path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound);
    if !gone {
        return None;
    }
    list_days_between(base, day.day, day.day)
        .ok()?
        .into_iter()
        .find(|d| d.day == day.day && d.path != day.path)
}

/// Every day file under `base`, oldest first. A missing base is an empty store.
pub fn list_days(base: &Path) -> std::io::Result<Vec<DayFile>> {
    list_days_between(base, NaiveDate::MIN, NaiveDate::MAX)
}

/// The day files of `first..=last` under `base`, oldest first. Only the folders of those
/// months are listed: a query of one day over years of history reads one month's folder.
pub fn list_days_between(
    base: &Path,
    first: NaiveDate,
    last: NaiveDate,
) -> std::io::Result<Vec<DayFile>> {
    let (lo, hi) = ((first.year(), first.month()), (last.year(), last.month()));
    let mut days = Vec::new();
    for (month, folder) in month_folders(base)? {
        if month < lo || month > hi {
            continue;
        }
        let listed = days_of_month(base, &folder)?;
        days.extend(
            listed
                .into_iter()
                .filter(|d| d.day >= first && d.day <= last),
        );
    }
    Ok(days)
}

/// See [`Listings::days_newest_first`].
pub struct NewestFirst {
    base: PathBuf,
    /// Month folders not listed yet, oldest first (taken from the end).
    months: Vec<PathBuf>,
    /// The listed month's days not taken yet, oldest first (taken from the end).
    days: Vec<DayFile>,
}

impl Iterator for NewestFirst {
    type Item = std::io::Result<DayFile>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(day) = self.days.pop() {
                return Some(Ok(day));
            }
            let folder = self.months.pop()?;
            match days_of_month(&self.base, &folder) {
                Ok(days) => self.days = days,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// The month folders and the newest month's day files as a [`Store`](super::reader::Store)
/// last listed them, taken again while no folder they came from has changed: `recent` asked
/// 50 times a second listed the base and year folders at every call, ~15 % of a live `recent
/// 100`'s CPU while the writer ran (`perf`, `tickrec bench --only queries`).
///
/// A folder's identity and modification time move whenever an entry is added, removed or
/// renamed in it, and each is read before the folder is listed. A listing is kept only when
/// every folder it read had been left alone for [`SETTLE`] before the listing began: a change
/// during or after it then bears a later time even on a file system that stamps times as
/// coarsely as 2 s, and the next call sees that time differ.
#[derive(Debug, Default)]
pub struct Listings(std::sync::Mutex<Option<Listing>>);

#[derive(Debug)]
struct Listing {
    /// Every folder read (the base, each year, the newest month) and its stamp.
    stamps: Vec<(PathBuf, Stamp)>,
    /// Every month folder, oldest first.
    months: Vec<PathBuf>,
    /// The newest month's day files, oldest first.
    newest: Vec<DayFile>,
}

/// (device, inode, modification time in ns since 1970) of a folder.
type Stamp = (u64, u64, i128);

/// How long the folders of a listing must have been left alone for it to be kept.
pub const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

fn stamp(folder: &Path) -> std::io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(folder)?;
    Ok((
        m.dev(),
        m.ino(),
        i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    ))
}

impl Listings {
    /// The day files under `base`, newest first, one month folder listed at a time as they
    /// are taken (`recent` reads the newest day or two without listing years of history):
    /// from the kept listing when its folders are as they were.
    pub fn days_newest_first(&self, base: &Path) -> std::io::Result<NewestFirst> {
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = kept.as_ref() {
            if l.stamps.iter().all(|(f, s)| stamp(f).ok() == Some(*s)) {
                return Ok(NewestFirst {
                    base: base.to_owned(),
                    months: l.months[..l.months.len().saturating_sub(1)].to_vec(),
                    days: l.newest.clone(),
                });
            }
        }
        *kept = None;
        let began = std::time::SystemTime::now();
        // `None` once a folder's stamp cannot be read: the listing is then not kept.
        let mut stamps = Some(Vec::new());
        let mut stamped = |f: &Path| match (stamp(f), stamps.as_mut()) {
            (Ok(s), Some(v)) => v.push((f.to_owned(), s)),
            _ => stamps = None,
        };
        let mut months: Vec<PathBuf> = month_folders_stamped(base, &mut stamped)?
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        let Some(newest) = months.pop() else {
            return Ok(NewestFirst {
                base: base.to_owned(),
                months,
                days: Vec::new(),
            });
        };
        stamped(&newest);
        let days = days_of_month(base, &newest)?;
        let settled = began
            .checked_sub(SETTLE)
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|t| t.as_nanos() as i128);
        let stamps = stamps.filter(|v| settled.is_some_and(|t| v.iter().all(|(_, s)| s.2 < t)));
        if let Some(stamps) = stamps {
            let mut all = months.clone();
            all.push(newest);
            *kept = Some(Listing {
                stamps,
                months: all,
                newest: days.clone(),
            });
        }
        Ok(NewestFirst {
            base: base.to_owned(),
            months,
            days,
        })
    }
}

/// `((year, month), folder)` of every month folder under `base`, oldest first.
fn month_folders(base: &Path) -> std::io::Result<Vec<((i32, u32), PathBuf)>> {
    month_folders_stamped(base, &mut |_| {})
}

/// [`month_folders`], calling `stamp` with the base and each year folder before listing it.
fn month_folders_stamped(
    base: &Path,
    stamp: &mut dyn FnMut(&Path),
) -> std::io::Result<Vec<((i32, u32), PathBuf)>> {
    // `sorted_subdirs` lists only names of four or two digits: they parse.
    fn number<T: std::str::FromStr + Default>(p: &Path) -> T {
        let name = p.file_name().and_then(|n| n.to_str());
        name.and_then(|n| n.parse().ok()).unwrap_or_default()
    }
    let mut out = Vec::new();
    stamp(base);
    for year in sorted_subdirs(base, 4)? {
        stamp(&year);
        for month in sorted_subdirs(&year, 2)? {
            out.push(((number(&year), number(&month)), month));
        }
    }
    Ok(out)
}

/// The day files in one month folder, oldest first: a file in the wrong folder is not ours
/// to read, and of a day both plain and archived the plain file is the one read.
fn days_of_month(base: &Path, folder: &Path) -> std::io::Result<Vec<DayFile>> {
    let mut days = Vec::new();
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some((day, form)) = name.to_str().and_then(day_and_form) else {
            continue;
        };
        if path_of(base, day, form) == entry.path() {
            days.push(DayFile {
                day,
                path: entry.path(),
                archived: form != Form::Live,
                form,
            });
        }
    }
    days.sort_by_key(|d| (d.day, d.form));
    days.dedup_by_key(|d| d.day);
    Ok(days)
}

fn sorted_subdirs(dir: &Path, digits: usize) -> std::io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let is_num = name
            .to_str()
            .is_some_and(|n| n.len() == digits && n.bytes().all(|b| b.is_ascii_digit()));
        if is_num && entry.file_type()?.is_dir() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What could go wrong: a kept listing that misses a day file, a month or a year added
    /// since, or a listing kept while its folders were still changing.
    #[test]
    fn a_kept_listing_is_taken_again_only_while_its_folders_are_as_they_were() {
        use std::time::{Duration, SystemTime};
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("db");
        let touch = |day: &str| {
            let p = day_path(&base, NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap());
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"").unwrap();
        };
        let set_time = |folder: &Path, t: SystemTime| {
            std::fs::File::open(folder)
                .unwrap()
                .set_modified(t)
                .unwrap();
        };
        let old = SystemTime::now() - Duration::from_secs(3600);
        let settle = || {
            for year in sorted_subdirs(&base, 4).unwrap() {
                for month in sorted_subdirs(&year, 2).unwrap() {
                    set_time(&month, old);
                }
                set_time(&year, old);
            }
            set_time(&base, old);
        };
        let days = |l: &Listings| -> Vec<String> {
            l.days_newest_first(&base)
                .unwrap()
                .map(|d| d.unwrap().day.to_string())
                .collect()
        };
        let month = base.join("2026/11");
        touch("2026-11-20");
        settle();
        let l = Listings::default();
        assert_eq!(days(&l), ["2026-11-20"]);
        // Kept: a file slipped in with the month's time put back is not seen by it, while a
        // listing of its own sees it.
        touch("2026-11-21");
        set_time(&month, old);
        assert_eq!(days(&l), ["2026-11-20"]);
        assert_eq!(days(&Listings::default()), ["2026-11-21", "2026-11-20"]);
        // A day added as usual is seen at once.
        touch("2026-11-22");
        assert_eq!(days(&l), ["2026-11-22", "2026-11-21", "2026-11-20"]);
        // That listing is not kept (the month had changed within SETTLE of it): a file
        // slipped in with the month's new time put back is seen.
        let t = std::fs::metadata(&month).unwrap().modified().unwrap();
        touch("2026-11-23");
        set_time(&month, t);
        assert_eq!(days(&l)[0], "2026-11-23");
        // A new month, then a new year, each seen at once by a kept listing.
        settle();
        assert_eq!(days(&l).len(), 4);
        touch("2026-12-01");
        assert_eq!(days(&l)[0], "2026-12-01");
        settle();
        assert_eq!(days(&l).len(), 5);
        touch("2027-01-02");
        assert_eq!(days(&l)[..2], ["2027-01-02", "2026-12-01"]);
        // Archived: the plain file gone, the archive in its place (the month changes).
        settle();
        assert_eq!(days(&l).len(), 6);
        let jan = base.join("2027/01");
        std::fs::rename(
            jan.join("ticks_2027-01-02.db"),
            jan.join("ticks_2027-01-02.db.zst"),
        )
        .unwrap();
        let first = l.days_newest_first(&base).unwrap().next().unwrap().unwrap();
        assert_eq!(first.form, Form::SqliteZst);
    }

    #[test]
    fn day_files_live_under_year_and_month() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        assert_eq!(
            day_path(Path::new("/data"), day),
            Path::new("/data/2026/11/ticks_2026-11-23.db")
        );
        assert_eq!(day_of_file_name("ticks_2026-11-23.db"), Some(day));
        assert_eq!(day_of_file_name("ticks_2026-11-23.db-wal"), None);
        assert_eq!(day_of_file_name("ticks_2026-13-23.db"), None);
    }

    #[test]
    fn listing_finds_days_in_order_and_ignores_strangers() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        for d in ["2026-11-23", "2025-01-02", "2026-02-01"] {
            let day = NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
            let p = day_path(base, day);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"").unwrap();
        }
        std::fs::write(base.join("2026/11/notes.txt"), b"").unwrap();
        // Right name, wrong month folder: not listed.
        std::fs::write(base.join("2026/11/ticks_2026-10-01.db"), b"").unwrap();
        // An archived day is listed once, as the archive; with both forms, as the plain file.
        let d = NaiveDate::from_ymd_opt(2025, 1, 2).unwrap();
        std::fs::write(archive_path(base, d), b"").unwrap();
        let d3 = NaiveDate::from_ymd_opt(2025, 1, 3).unwrap();
        std::fs::write(archive_path(base, d3), b"").unwrap();
        let listed = list_days(base).unwrap();
        assert!(!listed[0].archived && listed[1].archived, "{listed:?}");
        let days: Vec<String> = list_days(base)
            .unwrap()
            .into_iter()
            .map(|d| d.day.to_string())
            .collect();
        assert_eq!(
            days,
            ["2025-01-02", "2025-01-03", "2026-02-01", "2026-11-23"]
        );
        assert!(list_days(&base.join("missing")).unwrap().is_empty());
        // A window lists only its days; newest first walks the same days backwards.
        let names =
            |v: Vec<DayFile>| -> Vec<String> { v.iter().map(|d| d.day.to_string()).collect() };
        let between = list_days_between(base, d3, NaiveDate::from_ymd_opt(2026, 2, 1).unwrap());
        assert_eq!(names(between.unwrap()), ["2025-01-03", "2026-02-01"]);
        let newest: Vec<DayFile> = Listings::default()
            .days_newest_first(base)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut all = days;
        all.reverse();
        assert_eq!(names(newest), all);
        let missing = Listings::default().days_newest_first(&base.join("missing"));
        assert_eq!(missing.unwrap().count(), 0);
    }

    /// What could go wrong: the day is archived and restored back to back while a read-only
    /// opening of it runs: the `-wal` and `-shm` of the file it opened are gone ("unable to
    /// open database file"), and since a file is there under the name listed, a following tail
    /// ended (seen once in a CI run of
    /// `tail::a_following_tail_and_queries_read_a_day_archived_and_restored_under_them_whole`,
    /// and within a minute of that race run three at once). Or a read that fails on the file
    /// it began on (appended to, as a writer does, or left alone) is tried again and again; or
    /// a deleted day is.
    #[test]
    fn a_read_is_tried_again_when_another_file_took_the_name_under_it_and_only_then() {
        use std::cell::Cell;
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("db");
        let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let db = day_path(&base, day);
        let wal = crate::fsutil::with_suffix(&db, "-wal");
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
        for p in [&db, &wal] {
            std::fs::write(p, b"x").unwrap();
        }
        let listed = list_days(&base).unwrap().remove(0);
        let calls = Cell::new(0);
        let reading = |change: &dyn Fn()| {
            calls.set(0);
            as_listed_now(
                &base,
                &listed,
                |_| {
                    calls.set(calls.get() + 1);
                    if calls.get() > 1 {
                        return Ok(calls.get());
                    }
                    change();
                    Err("unable to open database file")
                },
                |_| true,
            )
        };
        // Another file renamed over the name, its WAL gone, under the first read: read again,
        // and it answers.
        let restored = || {
            std::fs::remove_file(&wal).unwrap();
            let new = crate::fsutil::with_suffix(&db, ".new");
            std::fs::write(&new, b"x").unwrap();
            std::fs::rename(&new, &db).unwrap();
        };
        assert_eq!(reading(&restored), Ok(2));
        // Appended to, or left alone: the error stands after one read.
        let appended = || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(&db).unwrap();
            f.write_all(b"more").unwrap();
        };
        assert_eq!(reading(&appended), Err("unable to open database file"));
        assert_eq!(calls.get(), 1);
        assert_eq!(reading(&|| {}), Err("unable to open database file"));
        assert_eq!(calls.get(), 1);
        // Deleted, with no other form in its place: the error stands.
        let deleted = || std::fs::remove_file(&db).unwrap();
        assert_eq!(reading(&deleted), Err("unable to open database file"));
        assert_eq!(calls.get(), 1);
    }
}
