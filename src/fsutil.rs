//! The one way this crate makes a file, a rename or a removal durable.
//!
//! Every helper propagates every error, directory fsyncs included: a step that needs a rename
//! to be durable (archive, then delete the original) must not go on when it is not.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// fsyncs a folder, making the renames, creations and removals in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// fsyncs the folder holding `path`.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    sync_dir(parent(path))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `path` with `suffix` appended to its last component.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Writes `path` atomically: `write` fills `<path>.tmp`, which is fsynced, renamed over `path`,
/// and the folder fsynced. Readers see the old content or the new, never a mix; on error the
/// temporary file is removed and `path` is untouched.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    write_atomic_checked(path, write, |_| Ok(()), |_, e| e)
}

/// [`write_atomic`] with a check of the written file before it replaces anything: `check`
/// reads `<path>.tmp` once it is fsynced (an archive read back whole, say); only when it
/// passes is the file renamed into place and the folder fsynced. Every error — of `write`, of
/// `check`, of the file system (given to `io_error` with the path it concerns) — removes the
/// temporary file and leaves `path` as it was.
pub fn write_atomic_checked<E>(
    path: &Path,
    write: impl FnOnce(&mut File) -> Result<(), E>,
    check: impl FnOnce(&Path) -> Result<(), E>,
    io_error: impl Fn(&Path, io::Error) -> E,
) -> Result<(), E> {
    let tmp = with_suffix(path, ".tmp");
    let result = (|| {
        std::fs::create_dir_all(parent(path)).map_err(|e| io_error(parent(path), e))?;
        let mut f = File::create(&tmp).map_err(|e| io_error(&tmp, e))?;
        write(&mut f)?;
        f.flush()
            .and_then(|_| f.sync_all())
            .map_err(|e| io_error(&tmp, e))?;
        drop(f);
        check(&tmp)?;
        rename_durably(&tmp, path).map_err(|e| io_error(path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Renames `from` to `to` and fsyncs both folders.
pub fn rename_durably(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)?;
    sync_parent(to)?;
    if parent(from) != parent(to) {
        sync_parent(from)?;
    }
    Ok(())
}

/// The `statvfs` of the file system holding `path` (or its folder).
fn statvfs(path: &Path) -> Option<libc::statvfs> {
    use std::os::unix::ffi::OsStrExt;
    let dir = if path.is_dir() {
        path
    } else {
        path.parent().unwrap_or(path)
    };
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a NUL-terminated path; `st` is written by the call before it is read.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0).then_some(st)
}

/// Whether the file system holding `path` has less than 64 KiB left for an unprivileged
/// writer: what an error that does not say why is taken to mean.
pub fn disk_full(path: &Path) -> bool {
    statvfs(path).is_some_and(|st| (st.f_bavail as u128) * (st.f_frsize as u128) < 64 << 10)
}

/// Whether the file system holding `path` is mounted read-only.
pub fn read_only_fs(path: &Path) -> bool {
    statvfs(path).is_some_and(|st| st.f_flag & libc::ST_RDONLY != 0)
}

/// Removes `path` if it exists; true when it did. The folder is fsynced by the caller once for
/// several removals (see [`sync_parent`]).
pub fn remove_if_exists(path: &Path) -> io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_whole_file_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b.txt");
        write_atomic(&p, |f| f.write_all(b"one")).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        let err = write_atomic(&p, |f| {
            f.write_all(b"half")?;
            Err(io::Error::other("injected"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "injected");
        assert_eq!(std::fs::read(&p).unwrap(), b"one", "old content kept");
        assert!(!with_suffix(&p, ".tmp").exists(), "no temporary left");
    }
}
