//! Where `tail` and `subscribe` write their rows, and their cursor file.
//!
//! Rows go to standard output, or with `--out FILE` to a file kept in step with `--cursor-file`,
//! so that a consumer killed at any moment (or a host that lost power) resumes with nothing
//! skipped and nothing twice in the file. The cursor file then holds a second line,
//! `out_bytes N`: the file's length once the rows up to the cursor were in it. Saving is: the
//! rows flushed, the file synced, then the cursor file replaced atomically. Opening is: the
//! file cut back to `N` (rows written after the last save are written again, from the cursor);
//! a file shorter than `N` lost rows the cursor has passed and is refused, as is one holding
//! rows no cursor file accounts for. The file is locked (`flock`) while one process writes it.

use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use tickrec::format::{OutputFormat, RowWriter};
use tickrec::tail::Cursor;
use tickrec::tick::TickRow;

/// What a cursor file holds.
pub(super) struct Saved {
    pub(super) cursor: Cursor,
    /// `--out`'s length at that cursor, when the rows went to a file.
    out_bytes: Option<u64>,
}

const OUT_BYTES: &str = "out_bytes ";

/// The cursor file `file` holds, when it names one that exists.
pub(super) fn read_saved(file: Option<&Path>) -> anyhow::Result<Option<Saved>> {
    let Some(f) = file.filter(|f| f.exists()) else {
        return Ok(None);
    };
    let text =
        std::fs::read_to_string(f).with_context(|| format!("--cursor-file {}", f.display()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let cursor = lines
        .next()
        .unwrap_or_default()
        .parse()
        .map_err(|e| anyhow::anyhow!("--cursor-file {}: {e}", f.display()))?;
    let out_bytes = match lines.next() {
        None => None,
        Some(l) => Some(
            l.strip_prefix(OUT_BYTES)
                .and_then(|n| n.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--cursor-file {}: line 2 is not `{OUT_BYTES}N`: {l:?}",
                        f.display()
                    )
                })?,
        ),
    };
    Ok(Some(Saved { cursor, out_bytes }))
}

/// The rows' destination.
pub(super) struct Output {
    rows: Box<dyn RowWriter>,
    /// `--out`: its path and a second handle on it, to sync it and read its length.
    file: Option<(PathBuf, File)>,
}

impl Output {
    /// Standard output, or `out` made ready to take rows after what `saved` accounts for:
    /// `saved` is the cursor file's when the rows start from its cursor, else `None` (then
    /// `out` must be empty or missing).
    pub(super) fn open(
        format: OutputFormat,
        out: Option<&Path>,
        saved: Option<&Saved>,
    ) -> anyhow::Result<Output> {
        let Some(path) = out else {
            return Ok(Output {
                rows: tickrec::format::row_writer(format, BufWriter::new(std::io::stdout().lock())),
                file: None,
            });
        };
        let named = || format!("--out {}", path.display());
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(named)?;
        // One writer at a time: two would interleave their rows and cut each other's.
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "{}: another `tail` or `subscribe` is writing to it",
                named()
            ),
            Err(std::fs::TryLockError::Error(e)) => return Err(e).with_context(named),
        }
        let len = file.metadata().with_context(named)?.len();
        let keep = match saved.and_then(|s| s.out_bytes) {
            Some(n) if len < n => anyhow::bail!(
                "{}: it holds {len} bytes, fewer than the {n} its cursor file says were written \
                 before its cursor: rows the cursor has passed are gone (the file cut or \
                 replaced). Move it aside, or resume into a new file with --from",
                named()
            ),
            Some(n) => n,
            None if len == 0 => 0,
            None => anyhow::bail!(
                "{}: it holds {len} bytes that no cursor file accounts for (give the \
                 --cursor-file it was written with, and no --from…), so where to go on from \
                 is unknown: choose another file, or remove it",
                named()
            ),
        };
        if keep < len {
            file.set_len(keep).with_context(named)?;
            file.sync_data().with_context(named)?;
            eprintln!(
                "{}: cut the {} bytes written after its cursor was last saved (their rows \
                 follow again from the cursor)",
                named(),
                len - keep
            );
        }
        file.seek(std::io::SeekFrom::End(0)).with_context(named)?;
        let handle = file.try_clone().with_context(named)?;
        let w = BufWriter::with_capacity(
            1 << 16,
            Named {
                file,
                path: path.to_owned(),
            },
        );
        let rows = if keep > 0 {
            tickrec::format::row_writer_continuing(format, w)
        } else {
            tickrec::format::row_writer(format, w)
        };
        Ok(Output {
            rows,
            file: Some((path.to_owned(), handle)),
        })
    }

    pub(super) fn write_row(&mut self, row: &TickRow) -> std::io::Result<()> {
        self.rows.write_row(row)
    }

    /// Flushes the rows.
    pub(super) fn finish(&mut self) -> std::io::Result<()> {
        self.rows.finish()
    }

    /// Whether the rows go to a file (each save then syncs it).
    pub(super) fn to_file(&self) -> bool {
        self.file.is_some()
    }

    /// Flushes the rows, syncs `--out`, then writes `c` (with `--out`'s length) to the cursor
    /// file `f`, atomically.
    pub(super) fn save(&mut self, f: &Path, c: &Cursor) -> std::io::Result<()> {
        self.rows.finish()?;
        let out_bytes = match &self.file {
            Some((path, file)) => {
                let said = |e: std::io::Error| {
                    std::io::Error::new(e.kind(), format!("--out {}: {e}", path.display()))
                };
                file.sync_data().map_err(said)?;
                Some(file.metadata().map_err(said)?.len())
            }
            None => None,
        };
        tickrec::fsutil::write_atomic(f, |file| {
            writeln!(file, "{c}")?;
            if let Some(n) = out_bytes {
                writeln!(file, "{OUT_BYTES}{n}")?;
            }
            Ok(())
        })
        .map_err(|e| {
            // The rows are out, their cursor is not saved: a restart from the saved one writes
            // them again (into --out, over them). Said with the file, so the operator knows which.
            std::io::Error::new(
                e.kind(),
                format!(
                    "saving the cursor {c} to --cursor-file {}: {e}",
                    f.display()
                ),
            )
        })
    }
}

/// `--out`'s file, whose write errors name it (a full disk says which file it filled).
struct Named {
    file: File,
    path: PathBuf,
}

impl Named {
    fn said(&self, e: std::io::Error) -> std::io::Error {
        std::io::Error::new(e.kind(), format!("--out {}: {e}", self.path.display()))
    }
}

impl Write for Named {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf).map_err(|e| self.said(e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush().map_err(|e| self.said(e))
    }
}
