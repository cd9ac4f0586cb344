//! Packing a migrated JSON tree into one `.tar.zst`, and removing the originals only after
//! the archive has been read back and every file in it checked.
//!
//! Archive format: a POSIX tar stream of the tree (paths relative to its root, in sorted
//! order), compressed as one zstd frame. Crash safety: the archive is written to
//! `<name>.tmp`, fsynced and renamed into place; originals are removed one by one only after
//! the read-back matched every file's size and BLAKE3 hash, so at any crash point either the
//! originals or a verified archive (usually both) exist.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};

/// What was archived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveReport {
    pub archive: PathBuf,
    pub files: usize,
    pub original_bytes: u64,
    pub archive_bytes: u64,
    pub removed: bool,
}

/// Why the tree was not archived (the originals are untouched in every case).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{archive}: read-back check failed: {why}; originals kept")]
    Mismatch { archive: PathBuf, why: String },
    #[error("{0} already exists; move it away first")]
    Exists(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_owned(),
        source,
    }
}

fn tree_files(root: &Path) -> Result<Vec<(PathBuf, String)>, ArchiveError> {
    crate::migrate::files_under(root).map_err(|(path, source)| ArchiveError::Io { path, source })
}

/// Archives `root` into `dest` (`.tar.zst`), checks it, then removes the originals when
/// `remove_originals` is set.
pub fn archive_tree(
    root: &Path,
    dest: &Path,
    level: i32,
    remove_originals: bool,
) -> Result<ArchiveReport, ArchiveError> {
    if dest.exists() {
        return Err(ArchiveError::Exists(dest.to_owned()));
    }
    let files = tree_files(root)?;
    let mut expected: BTreeMap<String, (u64, blake3::Hash)> = BTreeMap::new();
    for (path, rel) in &files {
        let (size, hash) = crate::migrate::hash_file(path).map_err(io(path))?;
        let hash = blake3::Hash::from_hex(hash.as_bytes()).map_err(|e| ArchiveError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        expected.insert(rel.clone(), (size, hash));
    }
    // Written, fsynced and read back under a temporary name; renamed into place (and the
    // folder fsynced) only when every file is in it, whole.
    crate::fsutil::write_atomic_checked(
        dest,
        |out| {
            let enc = zstd::Encoder::new(BufWriter::new(out), level).map_err(io(dest))?;
            let mut tar = tar::Builder::new(enc);
            tar.mode(tar::HeaderMode::Deterministic);
            for (path, rel) in &files {
                tar.append_path_with_name(path, rel).map_err(io(path))?;
            }
            let enc = tar.into_inner().map_err(io(dest))?;
            let buf = enc.finish().map_err(io(dest))?;
            buf.into_inner().map_err(|e| ArchiveError::Io {
                path: dest.to_owned(),
                source: e.into_error(),
            })?;
            Ok(())
        },
        |tmp| check_archive(tmp, &expected),
        |p, e| io(p)(e),
    )?;
    let original_bytes = expected.values().map(|v| v.0).sum();
    let archive_bytes = std::fs::metadata(dest).map_err(io(dest))?.len();
    if remove_originals {
        for (path, _) in &files {
            std::fs::remove_file(path).map_err(io(path))?;
        }
        remove_empty_dirs(root);
    }
    Ok(ArchiveReport {
        archive: dest.to_owned(),
        files: files.len(),
        original_bytes,
        archive_bytes,
        removed: remove_originals,
    })
}

/// Reads the archive back: every expected file exactly once, same size, same hash.
fn check_archive(
    dest: &Path,
    expected: &BTreeMap<String, (u64, blake3::Hash)>,
) -> Result<(), ArchiveError> {
    let mismatch = |why: String| ArchiveError::Mismatch {
        archive: dest.to_owned(),
        why,
    };
    let f = File::open(dest).map_err(io(dest))?;
    let dec = zstd::Decoder::new(BufReader::new(f)).map_err(io(dest))?;
    let mut archive = tar::Archive::new(dec);
    let mut seen = BTreeMap::new();
    for entry in archive.entries().map_err(io(dest))? {
        let mut entry = entry.map_err(io(dest))?;
        let name = entry
            .path()
            .map_err(io(dest))?
            .to_string_lossy()
            .into_owned();
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut size = 0u64;
        loop {
            let n = entry.read(&mut buf).map_err(io(dest))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            hasher.update(&buf[..n]);
        }
        if seen
            .insert(name.clone(), (size, hasher.finalize()))
            .is_some()
        {
            return Err(mismatch(format!("{name} appears twice")));
        }
    }
    for (name, want) in expected {
        match seen.get(name) {
            None => return Err(mismatch(format!("{name} is missing"))),
            Some(got) if got != want => return Err(mismatch(format!("{name} differs"))),
            Some(_) => {}
        }
    }
    if seen.len() != expected.len() {
        return Err(mismatch("it holds files that are not in the tree".into()));
    }
    Ok(())
}

/// Removes now-empty folders under (not including) `root`, deepest first.
fn remove_empty_dirs(root: &Path) {
    fn walk(d: &Path) {
        if let Ok(entries) = std::fs::read_dir(d) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path());
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
    }
    walk(root);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_is_archived_checked_and_only_then_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("json");
        std::fs::create_dir_all(root.join("EURUSD")).unwrap();
        std::fs::create_dir_all(root.join("USDJPY")).unwrap();
        std::fs::write(root.join("EURUSD/2026-11-23.json"), "a\n".repeat(1000)).unwrap();
        std::fs::write(root.join("USDJPY/2026-11-23.json"), "b\n").unwrap();
        let dest = dir.path().join("json.tar.zst");
        let r = archive_tree(&root, &dest, 3, true).unwrap();
        assert_eq!(r.files, 2);
        assert!(r.archive_bytes < r.original_bytes);
        assert!(!root.join("EURUSD/2026-11-23.json").exists());
        assert!(!root.join("EURUSD").exists(), "empty folders go too");
        // What is in the archive is what was there.
        let mut names = Vec::new();
        let mut a = tar::Archive::new(zstd::Decoder::new(File::open(&dest).unwrap()).unwrap());
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let mut s = String::new();
            e.read_to_string(&mut s).unwrap();
            names.push((e.path().unwrap().to_string_lossy().into_owned(), s.len()));
        }
        assert_eq!(
            names,
            [
                ("EURUSD/2026-11-23.json".to_string(), 2000),
                ("USDJPY/2026-11-23.json".to_string(), 2)
            ]
        );
        // Never over an existing archive.
        std::fs::write(root.join("x.json"), "x").unwrap();
        assert!(matches!(
            archive_tree(&root, &dest, 3, true),
            Err(ArchiveError::Exists(_))
        ));
        assert!(root.join("x.json").exists());
    }

    #[test]
    fn a_corrupted_archive_fails_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a.tar.zst");
        let root = dir.path().join("t");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("f.json"), "hello").unwrap();
        archive_tree(&root, &dest, 3, false).unwrap();
        let mut expected = BTreeMap::new();
        expected.insert("f.json".to_string(), (5u64, blake3::hash(b"HELLO")));
        assert!(matches!(
            check_archive(&dest, &expected),
            Err(ArchiveError::Mismatch { .. })
        ));
        assert!(
            root.join("f.json").exists(),
            "keep originals when not asked to remove"
        );
    }
}
