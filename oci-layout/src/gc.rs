//! Garbage collection and consistency checks of a layout.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ocikit_image::oci_spec::image::{Descriptor, Digest};
use ocikit_image::{AnyManifest, ContentKind, MediaTypeExt, digest_reader, parse_digest};

use crate::fsutil::sync_dir;
use crate::layout::ref_name;
use crate::{Error, Layout, RefName, Result};

/// What [`Layout::gc`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// Unreferenced blobs removed.
    pub blobs_removed: u64,
    /// Stale temporary files (of writers that died) removed.
    pub temp_files_removed: u64,
    /// Bytes freed by both.
    pub bytes_freed: u64,
}

/// One problem [`Layout::fsck`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// A blob referenced from `index.json` (directly or not) is not there.
    MissingBlob {
        /// The blob.
        digest: Digest,
        /// Who references it: `index.json` or a manifest's digest.
        referenced_by: String,
    },
    /// A referenced blob has another size than its descriptor says.
    SizeMismatch {
        /// The blob file.
        path: PathBuf,
        /// The size in the descriptor.
        expected: u64,
        /// The size of the file.
        actual: u64,
    },
    /// A blob's content does not hash to its file name.
    DigestMismatch {
        /// The blob file.
        path: PathBuf,
        /// The digest its name says.
        expected: Digest,
        /// The digest of its content.
        actual: Digest,
    },
    /// A referenced manifest or index that does not parse.
    InvalidDocument {
        /// The blob file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// An entry of `index.json` with a reference name the image-layout grammar refuses.
    InvalidRefName {
        /// The name.
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// A file under `blobs/` whose name is not a digest (or of an algorithm this crate cannot
    /// check).
    UnexpectedFile {
        /// The file.
        path: PathBuf,
    },
    /// A file that could not be read.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The error.
        reason: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::MissingBlob {
                digest,
                referenced_by,
            } => write!(f, "blob {digest} referenced by {referenced_by} is missing"),
            Problem::SizeMismatch {
                path,
                expected,
                actual,
            } => write!(
                f,
                "{}: size is {actual} bytes, its descriptor says {expected}",
                path.display()
            ),
            Problem::DigestMismatch {
                path,
                expected,
                actual,
            } => write!(
                f,
                "{}: content has digest {actual}, not {expected}",
                path.display()
            ),
            Problem::InvalidDocument { path, reason } => {
                write!(f, "{}: invalid manifest or index: {reason}", path.display())
            }
            Problem::InvalidRefName { name, reason } => {
                write!(f, "index.json: invalid reference name {name:?}: {reason}")
            }
            Problem::UnexpectedFile { path } => {
                write!(f, "{}: not a blob of a known algorithm", path.display())
            }
            Problem::Unreadable { path, reason } => write!(f, "{}: {reason}", path.display()),
        }
    }
}

/// What [`Layout::fsck`] found: every problem, not just the first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FsckReport {
    /// The problems, in the order found.
    pub problems: Vec<Problem>,
    /// How many blob files were hashed.
    pub blobs_checked: u64,
    /// Temporary files of writers (in progress or dead; not a problem, GC removes the dead).
    pub temp_files: u64,
}

impl FsckReport {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for FsckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.problems.is_empty() {
            return write!(f, "ok: {} blobs checked", self.blobs_checked);
        }
        writeln!(f, "{} problems:", self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

/// The children of a manifest or index: config, layers, manifests, subject.
fn children(any: &AnyManifest) -> Vec<Descriptor> {
    let mut out = Vec::new();
    match any {
        AnyManifest::Manifest(m) => {
            out.push(m.config().clone());
            out.extend(m.layers().iter().cloned());
        }
        AnyManifest::Index(i) => out.extend(i.manifests().iter().cloned()),
    }
    out.extend(any.subject().cloned());
    out
}

fn is_walkable(d: &Descriptor) -> bool {
    matches!(
        d.media_type().kind(),
        ContentKind::Manifest | ContentKind::Index
    )
}

/// Every `blobs/<alg>/<name>` file: its path and, when the name is a digest, the digest.
fn blob_files(layout: &Layout) -> Result<Vec<(PathBuf, Option<Digest>)>> {
    let blobs = layout.root().join("blobs");
    let mut out = Vec::new();
    let algs = match fs::read_dir(&blobs) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(blobs)(e)),
    };
    for alg in algs {
        let alg = alg.map_err(Error::io(&blobs))?;
        let alg_path = alg.path();
        if !alg.file_type().map_err(Error::io(&alg_path))?.is_dir() {
            out.push((alg_path, None));
            continue;
        }
        let alg_name = alg.file_name().to_string_lossy().into_owned();
        for entry in fs::read_dir(&alg_path).map_err(Error::io(&alg_path))? {
            let entry = entry.map_err(Error::io(&alg_path))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let digest = parse_digest(&format!("{alg_name}:{name}")).ok();
            out.push((entry.path(), digest));
        }
    }
    Ok(out)
}

impl Layout {
    /// Removes every blob not reachable from `index.json` (through indexes, manifests,
    /// configs, layers and subjects) and older than `min_age`, and every temporary file no
    /// live writer holds. Returns counts and bytes freed.
    ///
    /// GC holds the layout's lock, so no tag changes meanwhile; but a writer in another
    /// process that has stored blobs and not yet tagged them loses them unless `min_age`
    /// covers its copy (ten minutes is a safe choice when copies run concurrently).
    ///
    /// A referenced manifest or index that cannot be read or parsed stops GC with an error
    /// (its children are unknown, so nothing would be safe to delete).
    pub fn gc(&self, min_age: Duration) -> Result<GcReport> {
        let _lock = self.lock()?;
        let index = self.index()?;
        let mut marked: HashSet<Digest> = HashSet::new();
        let mut queue: VecDeque<Descriptor> = index.manifests().iter().cloned().collect();
        while let Some(d) = queue.pop_front() {
            if !marked.insert(d.digest().clone()) {
                continue;
            }
            if is_walkable(&d) {
                match self.get_manifest(&d) {
                    Ok(any) => queue.extend(children(&any)),
                    Err(Error::BlobMissing { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let mut report = GcReport::default();
        let now = SystemTime::now();
        let mut touched_dirs: HashSet<PathBuf> = HashSet::new();
        for (path, digest) in blob_files(self)? {
            let Some(digest) = digest else { continue };
            if marked.contains(&digest) {
                continue;
            }
            let meta = fs::symlink_metadata(&path).map_err(Error::io(&path))?;
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default();
            if !meta.is_file() || age < min_age {
                continue;
            }
            fs::remove_file(&path).map_err(Error::io(&path))?;
            report.blobs_removed += 1;
            report.bytes_freed += meta.len();
            if let Some(parent) = path.parent() {
                touched_dirs.insert(parent.to_owned());
            }
        }
        let tmp = self.temp_dir();
        if let Ok(entries) = fs::read_dir(&tmp) {
            for entry in entries {
                let entry = entry.map_err(Error::io(&tmp))?;
                let path = entry.path();
                if let Some(len) = stale_temp(&path)? {
                    fs::remove_file(&path).map_err(Error::io(&path))?;
                    report.temp_files_removed += 1;
                    report.bytes_freed += len;
                    touched_dirs.insert(tmp.clone());
                }
            }
        }
        for dir in touched_dirs {
            sync_dir(&dir)?;
        }
        Ok(report)
    }

    /// Checks the layout: every blob referenced from `index.json` is present with the size its
    /// descriptor gives, every referenced manifest and index parses, every blob's content
    /// hashes to its name, every reference name is valid. Returns every problem found;
    /// `Err` only when `index.json` itself cannot be read.
    pub fn fsck(&self) -> Result<FsckReport> {
        let index = self.index()?;
        let mut report = FsckReport::default();
        for d in index.manifests() {
            if let Some(name) = ref_name(d)
                && let Err(Error::InvalidRefName { reason, .. }) = RefName::new(name)
            {
                report.problems.push(Problem::InvalidRefName {
                    name: name.to_owned(),
                    reason,
                });
            }
        }
        let mut seen: HashSet<Digest> = HashSet::new();
        let mut queue: VecDeque<(Descriptor, String)> = index
            .manifests()
            .iter()
            .map(|d| (d.clone(), "index.json".to_owned()))
            .collect();
        while let Some((d, by)) = queue.pop_front() {
            if !seen.insert(d.digest().clone()) {
                continue;
            }
            let path = self.blob_path(d.digest());
            let len = match fs::metadata(&path) {
                Ok(m) if m.is_file() => m.len(),
                _ => {
                    report.problems.push(Problem::MissingBlob {
                        digest: d.digest().clone(),
                        referenced_by: by,
                    });
                    continue;
                }
            };
            if len != d.size() {
                report.problems.push(Problem::SizeMismatch {
                    path,
                    expected: d.size(),
                    actual: len,
                });
                continue;
            }
            if is_walkable(&d) {
                match self.get_manifest(&d) {
                    Ok(any) => {
                        let by = d.digest().to_string();
                        queue.extend(children(&any).into_iter().map(|c| (c, by.clone())));
                    }
                    // Reported once, by the content check below.
                    Err(Error::Verification { .. }) => {}
                    Err(e) => report.problems.push(Problem::InvalidDocument {
                        path,
                        reason: e.to_string(),
                    }),
                }
            }
        }
        for (path, digest) in blob_files(self)? {
            let Some(expected) = digest.filter(|d| ocikit_image::check_supported(d).is_ok()) else {
                report.problems.push(Problem::UnexpectedFile { path });
                continue;
            };
            let actual = File::open(&path)
                .map_err(ocikit_image::Error::Io)
                .and_then(|f| digest_reader(expected.algorithm(), f));
            report.blobs_checked += 1;
            match actual {
                Ok((actual, _)) if actual == expected => {}
                Ok((actual, _)) => report.problems.push(Problem::DigestMismatch {
                    path,
                    expected,
                    actual,
                }),
                Err(e) => report.problems.push(Problem::Unreadable {
                    path,
                    reason: e.to_string(),
                }),
            }
        }
        if let Ok(entries) = fs::read_dir(self.temp_dir()) {
            report.temp_files += entries.count() as u64;
        }
        Ok(report)
    }
}

/// The length of a temporary file that no live writer holds, or `None` while one does.
fn stale_temp(path: &Path) -> Result<Option<u64>> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path)(e)),
    };
    let meta = f.metadata().map_err(Error::io(path))?;
    if !meta.is_file() {
        return Ok(None);
    }
    match f.try_lock() {
        Ok(()) => Ok(Some(meta.len())),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(path)(e)),
    }
}
