//! Reading tar archives in place (an index of entry offsets, then positioned reads) and
//! writing them with a rollback for entries that fail verification.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::fsutil::{durable_rename, unique_name};
use crate::{Error, Result};

/// Where an entry's data lies in the archive file.
#[derive(Clone, Copy, Debug)]
struct Span {
    offset: u64,
    size: u64,
}

/// An index of the regular files of a tar archive, built by one pass over the headers
/// (seeking over the data), so entries are read in place without unpacking anything.
#[derive(Debug)]
pub(crate) struct TarIndex {
    path: PathBuf,
    file: Arc<File>,
    entries: HashMap<String, Span>,
}

/// Normalises an archive path: no leading `./` or `/`, no `.` components; `None` when it
/// climbs out with `..`.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

impl TarIndex {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(Error::io(path))?;
        let len = file.metadata().map_err(Error::io(path))?.len();
        let invalid = |reason: String| Error::InvalidArchive {
            path: path.to_owned(),
            reason,
        };
        let mut entries = HashMap::new();
        let mut links: Vec<(String, String)> = Vec::new();
        // Where the last entry's data (padded to a block) ends: the end-of-archive marker
        // must follow, else the archive was cut at a block boundary.
        let mut end = 0u64;
        {
            let mut archive = tar::Archive::new(&file);
            let iter = archive
                .entries_with_seek()
                .map_err(|e| invalid(format!("cannot read: {e}")))?;
            for entry in iter {
                let entry = entry.map_err(|e| invalid(format!("truncated or corrupt: {e}")))?;
                let raw_path = entry
                    .path()
                    .map_err(|e| invalid(format!("bad entry name: {e}")))?
                    .to_string_lossy()
                    .into_owned();
                let Some(name) = normalize(&raw_path) else {
                    continue;
                };
                let kind = entry.header().entry_type();
                end = end.max((entry.raw_file_position() + entry.size()).div_ceil(512) * 512);
                if kind.is_file() || kind == tar::EntryType::Continuous {
                    let span = Span {
                        offset: entry.raw_file_position(),
                        size: entry.size(),
                    };
                    if span.offset.saturating_add(span.size) > len {
                        return Err(invalid(format!(
                            "truncated: entry {raw_path} needs {} bytes, the file has {len}",
                            span.offset + span.size
                        )));
                    }
                    entries.insert(name, span);
                } else if kind.is_symlink() || kind.is_hard_link() {
                    let Some(target) = entry.link_name().ok().flatten() else {
                        continue;
                    };
                    let target = target.to_string_lossy().into_owned();
                    let resolved = if kind.is_symlink() && !target.starts_with('/') {
                        let dir = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                        normalize(&format!("{dir}/{target}"))
                    } else {
                        normalize(&target)
                    };
                    if let Some(resolved) = resolved {
                        links.push((name, resolved));
                    }
                }
            }
        }
        let mut marker = [0u8; 512];
        let has_marker = len >= end + 512
            && file.read_exact_at(&mut marker, end).is_ok()
            && marker.iter().all(|&b| b == 0);
        if !has_marker {
            return Err(invalid(format!(
                "truncated: no end-of-archive marker after the last entry (offset {end})"
            )));
        }
        // Links to regular files (a few rounds for links to links).
        for _ in 0..8 {
            let mut changed = false;
            for (name, target) in &links {
                if !entries.contains_key(name)
                    && let Some(span) = entries.get(target).copied()
                {
                    entries.insert(name.clone(), span);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        Ok(TarIndex {
            path: path.to_owned(),
            file: Arc::new(file),
            entries,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The size of an entry, if it exists.
    pub(crate) fn size(&self, name: &str) -> Option<u64> {
        self.entries.get(&normalize(name)?).map(|s| s.size)
    }

    /// A stream of an entry's data.
    pub(crate) fn entry(&self, name: &str) -> Option<Section> {
        let span = *self.entries.get(&normalize(name)?)?;
        Some(Section {
            file: Arc::clone(&self.file),
            pos: span.offset,
            end: span.offset + span.size,
        })
    }

    /// An entry read whole, refused when larger than `limit`.
    pub(crate) fn read_small(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let Some(section) = self.entry(name) else {
            return Ok(None);
        };
        let mut raw = Vec::new();
        section
            .take(limit + 1)
            .read_to_end(&mut raw)
            .map_err(Error::io(self.entry_path(name)))?;
        if raw.len() as u64 > limit {
            return Err(Error::Document {
                path: self.entry_path(name),
                source: Box::new(ocikit_image::Error::TooLarge {
                    kind: ocikit_image::DocumentKind::Manifest,
                    limit,
                    size: raw.len() as u64,
                }),
            });
        }
        Ok(Some(raw))
    }

    /// `ARCHIVE/entry`, for errors.
    pub(crate) fn entry_path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

/// A stream of one entry's data, read with positioned reads (several can be open at once).
#[derive(Debug)]
pub struct Section {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for Section {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive entry is truncated",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// A tar archive being written to a temporary file next to its final path, renamed into
/// place by [`TarSink::finish`] and removed if dropped before.
pub(crate) struct TarSink {
    path: PathBuf,
    tmp: PathBuf,
    builder: Option<tar::Builder<File>>,
    dirs: HashSet<String>,
}

impl TarSink {
    pub(crate) fn create(path: &Path) -> Result<Self> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(unique_name(&format!(".{file_name}.tmp")));
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(Error::io(&tmp))?;
        let mut builder = tar::Builder::new(file);
        builder.mode(tar::HeaderMode::Deterministic);
        Ok(TarSink {
            path: path.to_owned(),
            tmp,
            builder: Some(builder),
            dirs: HashSet::new(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn builder(&mut self) -> &mut tar::Builder<File> {
        self.builder.as_mut().expect("sink not finished")
    }

    /// Adds the directories of `name` that are not in the archive yet.
    fn parents(&mut self, name: &str) -> Result<()> {
        let mut at = 0;
        while let Some(i) = name[at..].find('/') {
            let dir = &name[..at + i];
            at += i + 1;
            if self.dirs.insert(dir.to_owned()) {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                h.set_mtime(0);
                let tmp = self.tmp.clone();
                self.builder()
                    .append_data(&mut h, format!("{dir}/"), io::empty())
                    .map_err(Error::io(tmp))?;
            }
        }
        Ok(())
    }

    /// Appends a regular file of `size` bytes read from `data`. When reading fails (a
    /// verifier rejected the stream), the archive is cut back to where it was.
    pub(crate) fn add(&mut self, name: &str, size: u64, data: &mut dyn Read) -> Result<()> {
        self.parents(name)?;
        let tmp = self.tmp.clone();
        let start = self
            .builder()
            .get_mut()
            .stream_position()
            .map_err(Error::io(&tmp))?;
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(size);
        h.set_mtime(0);
        let mut limited = ExactReader {
            inner: data,
            left: size,
        };
        if let Err(e) = self.builder().append_data(&mut h, name, &mut limited) {
            let f = self.builder().get_mut();
            let _ = f.set_len(start);
            let _ = f.seek(SeekFrom::Start(start));
            return Err(Error::io(self.path.join(name))(e));
        }
        Ok(())
    }

    /// Writes the end-of-archive marker, fsyncs and renames the archive into place.
    pub(crate) fn finish(mut self) -> Result<()> {
        let mut builder = self.builder.take().expect("sink not finished");
        builder.finish().map_err(Error::io(&self.tmp))?;
        let file = builder.into_inner().map_err(Error::io(&self.tmp))?;
        file.sync_all().map_err(Error::io(&self.tmp))?;
        durable_rename(&self.tmp, &self.path)
    }
}

impl Drop for TarSink {
    fn drop(&mut self) {
        if self.builder.is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Passes exactly `left` bytes: a stream that ends early or goes on is an error, so an entry
/// never disagrees with its header.
struct ExactReader<'a> {
    inner: &'a mut dyn Read,
    left: u64,
}

impl Read for ExactReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // Let a verifying stream see its EOF, and refuse extra bytes.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "stream is longer than its declared size",
                )),
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "stream is shorter than its declared size",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_and_never_climb_out() {
        assert_eq!(
            normalize("./blobs/sha256/ab").as_deref(),
            Some("blobs/sha256/ab")
        );
        assert_eq!(normalize("/index.json").as_deref(), Some("index.json"));
        assert_eq!(normalize("a/./b/../c").as_deref(), Some("a/c"));
        assert_eq!(normalize("../etc/passwd"), None);
        assert_eq!(normalize("a/../../b"), None);
    }

    #[test]
    fn exact_reader_refuses_short_and_long_streams() {
        let mut out = Vec::new();
        let mut short: &[u8] = b"abc";
        let r = ExactReader {
            inner: &mut short,
            left: 4,
        }
        .read_to_end(&mut out);
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        let mut long: &[u8] = b"abcde";
        let r = ExactReader {
            inner: &mut long,
            left: 4,
        }
        .read_to_end(&mut Vec::new());
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::InvalidData);
        let mut exact: &[u8] = b"abcd";
        let mut out = Vec::new();
        ExactReader {
            inner: &mut exact,
            left: 4,
        }
        .read_to_end(&mut out)
        .unwrap();
        assert_eq!(out, b"abcd");
    }
}
