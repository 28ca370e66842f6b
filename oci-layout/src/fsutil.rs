//! File system helpers: unique temporary files, durable renames, directory fsync.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Error, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name no other process or thread picks: pid, a per-process counter and the time.
pub(crate) fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

/// Creates a new file in `dir` that did not exist before.
pub(crate) fn create_temp(dir: &Path, prefix: &str) -> Result<(File, PathBuf)> {
    loop {
        let path = dir.join(unique_name(prefix));
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(path)(e)),
        }
    }
}

/// Flushes a directory's entries (a rename in it) to disk.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io(dir))
}

/// Renames `from` to `to` and makes the rename durable.
pub(crate) fn durable_rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(Error::io(to))?;
    if let Some(parent) = to.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: a temporary file in `tmp_dir` (same file system),
/// fsynced, renamed over `path`, directory fsynced. Readers see the old or the new content.
pub(crate) fn atomic_write(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let (mut f, tmp) = create_temp(tmp_dir, "write")?;
    let result = f
        .write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(Error::io(&tmp))
        .and_then(|()| durable_rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates a directory and its parents.
pub(crate) fn mkdirs(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(Error::io(dir))
}
