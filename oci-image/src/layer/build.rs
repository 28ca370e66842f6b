//! Building a layer from a directory, or from the difference of two directories.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use oci_spec::image::{Descriptor, Digest, MediaType};

use super::pgzip::ParallelGzip;
use crate::{Compression, DigestingWriter, Error, OverlayXattrs, Result};

/// The gzip level layers get by default (libdeflate's scale): see [`BuildOptions::level`].
const DEFAULT_GZIP_LEVEL: u32 = 5;

/// Options for [`build_layer`] and [`build_diff_layer`], built by chaining setters on
/// [`BuildOptions::new`].
#[derive(Clone, Debug)]
pub struct BuildOptions {
    compression: Compression,
    level: Option<u32>,
    threads: usize,
    source_date_epoch: Option<i64>,
    normalize_owners: bool,
    xattrs: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            compression: Compression::Gzip,
            level: None,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            source_date_epoch: None,
            normalize_owners: false,
            xattrs: true,
        }
    }
}

impl BuildOptions {
    /// The defaults: see each setter.
    pub fn new() -> Self {
        Self::default()
    }

    /// The compression of the blob. Default [`Compression::Gzip`].
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// The compression level: gzip 1-12 (libdeflate's levels; default 5, whose layers are a
    /// little smaller than `gzip -6`'s, made 1.7x–1.9x faster than zlib's level 6 on this
    /// project's benchmark trees: DESIGN.md), zstd 1-19 (default 3).
    pub fn level(mut self, level: Option<u32>) -> Self {
        self.level = level;
        self
    }

    /// Threads compressing gzip in parallel. Default: the CPUs available. The output is the
    /// same for any number of threads.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Clamps modification times to this Unix time, as `SOURCE_DATE_EPOCH` asks for
    /// reproducible builds. Default: none (times kept, to the nanosecond).
    pub fn source_date_epoch(mut self, epoch: Option<i64>) -> Self {
        self.source_date_epoch = epoch;
        self
    }

    /// Takes the epoch from the `SOURCE_DATE_EPOCH` environment variable, if it is set and a
    /// number.
    pub fn source_date_epoch_from_env(self) -> Self {
        let epoch = std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.trim().parse().ok());
        self.source_date_epoch(epoch)
    }

    /// Records every entry as owned by 0:0. Default false (owners kept).
    pub fn normalize_owners(mut self, normalize: bool) -> Self {
        self.normalize_owners = normalize;
        self
    }

    /// Records extended attributes (`SCHILY.xattr.*`). Default true.
    pub fn xattrs(mut self, xattrs: bool) -> Self {
        self.xattrs = xattrs;
        self
    }
}

/// A layer written by [`build_layer`] or [`build_diff_layer`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BuiltLayer {
    /// The blob's descriptor: OCI layer media type for the compression, digest and size of
    /// the compressed bytes.
    pub descriptor: Descriptor,
    /// The digest of the uncompressed tar (what the config's `rootfs.diff_ids` records).
    pub diff_id: Digest,
    /// The length of the uncompressed tar.
    pub uncompressed_size: u64,
    /// Tar entries written (whiteouts included).
    pub entries: u64,
}

/// Writes the tree under `dir` as a layer blob into `out`, computing the diff_id, the
/// compressed digest and the size in the same single pass.
///
/// The output is deterministic: entries sorted by name, no user or group names, no access or
/// change times; mode (set-id and sticky bits included), owner, modification time (clamped
/// with [`BuildOptions::source_date_epoch`]) and extended attributes kept. Files with several
/// links are stored once and linked after. Sockets are skipped; devices, fifos and symlinks are
/// kept. Long names, large ids, sub-second times and xattrs use PAX records. `dir` itself is
/// not an entry.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("hello"), b"world")?;
/// let mut blob = Vec::new();
/// let layer = ocikit_image::build_layer(dir.path(), &mut blob, &ocikit_image::BuildOptions::new())?;
/// assert_eq!(layer.descriptor.size(), blob.len() as u64);
/// assert_eq!(layer.descriptor.digest(), &ocikit_image::sha256(&blob));
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
pub fn build_layer<W: Write>(dir: &Path, out: W, options: &BuildOptions) -> Result<BuiltLayer> {
    let mut w = LayerWriter::new(out, options)?;
    w.tree(dir, &mut Vec::new())?;
    w.finish()
}

/// Writes what changed from `base` to `changed` as a layer: new and modified entries, a
/// `.wh.<name>` whiteout for each deletion, and an opaque whiteout (`.wh..wh..opq`) for a
/// directory whose every old entry was removed, as `umoci repack` does. Applied on top of
/// `base`, the layer gives `changed`.
///
/// A file counts as modified when its type, mode, owner, size, link target, extended
/// attributes or content differ (content is compared when the sizes are equal), or its
/// modification time does.
pub fn build_diff_layer<W: Write>(
    base: &Path,
    changed: &Path,
    out: W,
    options: &BuildOptions,
) -> Result<BuiltLayer> {
    let mut w = LayerWriter::new(out, options)?;
    w.diff(base, changed, &mut Vec::new())?;
    w.finish()
}

/// Writes the changes an overlayfs upper directory holds as a layer: what a container
/// mounted over an image's layers wrote, as `buildah commit` and `podman commit` record it.
/// Entries are written as [`build_layer`] writes them, except that, as overlayfs marks them
/// (Documentation/filesystems/overlayfs.rst, "whiteouts and opaque directories"):
/// - "A whiteout is created as a character device with 0/0 device number": it becomes the
///   OCI whiteout `.wh.NAME` (layer.md); so does a zero-size regular file carrying the
///   `overlay.whiteout` xattr (the other form overlayfs reads);
/// - "A directory is made opaque by setting the xattr "trusted.overlay.opaque" to "y"": it is
///   written, then `.wh..wh..opq` inside it, then what it holds;
/// - overlayfs' own attributes (`overlay.*` in the namespace `xattrs` names, and in the
///   other) are never recorded.
///
/// An entry whose content lives in a lower directory (`overlay.redirect`,
/// `overlay.metacopy`) is [`Error::Overlay`]: the mount must use `redirect_dir=off` and
/// `metacopy=off`, as ocikit's working containers do. The directory must not change while it
/// is read (no process writing through the mount).
pub fn build_overlay_layer<W: Write>(
    upper: &Path,
    xattrs: OverlayXattrs,
    out: W,
    options: &BuildOptions,
) -> Result<BuiltLayer> {
    let mut w = LayerWriter::new(out, options)?;
    w.overlay = Some(xattrs);
    w.overlay_tree(upper, &mut Vec::new())?;
    w.finish()
}

/// Compresses an uncompressed layer (a tar stream) as `options` say (compression, level,
/// threads; the tree options do not apply), as `buildah push` compresses the uncompressed
/// layers its store keeps. Returns the compressed blob's descriptor and the diff_id (the
/// digest of what was read), computed in the same pass; `entries` is 0 (not counted).
///
/// ```
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("hello"), b"world")?;
/// let opts = ocikit_image::BuildOptions::new();
/// let mut tar = Vec::new();
/// let plain = ocikit_image::build_layer(dir.path(), &mut tar,
///     &opts.clone().compression(ocikit_image::Compression::None))?;
/// let mut gz = Vec::new();
/// let layer = ocikit_image::compress_layer(&tar[..], &mut gz, &opts)?;
/// assert_eq!(layer.diff_id, plain.diff_id);
/// assert_eq!(layer.descriptor.digest(), &ocikit_image::sha256(&gz));
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
pub fn compress_layer<R: Read, W: Write>(
    mut tar: R,
    out: W,
    options: &BuildOptions,
) -> Result<BuiltLayer> {
    let (compressor, media_type) = compressor(out, options)?;
    let mut stack = DigestingWriter::sha256(compressor);
    io::copy(&mut tar, &mut stack)?;
    finish_stack(stack, media_type, 0)
}

/// Ends the compression of a layer's tar (`stack`: the digest of the tar over the compressor
/// over the digest of the blob) and says what was written.
fn finish_stack<W: Write>(
    stack: DigestingWriter<Compressor<DigestingWriter<W>>>,
    media_type: MediaType,
    entries: u64,
) -> Result<BuiltLayer> {
    let (compressor, diff_id, uncompressed_size) = stack.into_parts();
    let compressed = compressor.finish()?;
    let (mut out, digest, size) = compressed.into_parts();
    out.flush()?;
    Ok(BuiltLayer {
        descriptor: Descriptor::new(media_type, size, digest),
        diff_id,
        uncompressed_size,
        entries,
    })
}

/// The compressing stage.
enum Compressor<W: Write> {
    None(W),
    Gzip(ParallelGzip<W>),
    #[cfg(feature = "zstd")]
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::None(w) => w.write(buf),
            Compressor::Gzip(w) => w.write(buf),
            #[cfg(feature = "zstd")]
            Compressor::Zstd(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::None(w) => w.flush(),
            Compressor::Gzip(w) => w.flush(),
            #[cfg(feature = "zstd")]
            Compressor::Zstd(w) => w.flush(),
        }
    }
}

impl<W: Write> Compressor<W> {
    fn finish(self) -> io::Result<W> {
        match self {
            Compressor::None(w) => Ok(w),
            Compressor::Gzip(w) => w.finish(),
            #[cfg(feature = "zstd")]
            Compressor::Zstd(w) => w.finish(),
        }
    }
}

type Stack<W> = tar::Builder<DigestingWriter<Compressor<DigestingWriter<W>>>>;

struct LayerWriter<'o, W: Write> {
    tar: Stack<W>,
    options: &'o BuildOptions,
    media_type: MediaType,
    /// (device, inode) of files with several links → the path they were first written at.
    links: HashMap<(u64, u64), Vec<u8>>,
    entries: u64,
    /// Building from an overlayfs upper directory: overlayfs' own xattrs are not recorded.
    overlay: Option<OverlayXattrs>,
}

fn io_err(path: &Path, op: &'static str) -> impl Fn(io::Error) -> Error + use<> {
    let path = path.display().to_string();
    move |source| Error::Apply {
        path: path.clone(),
        op,
        source,
    }
}

fn sorted_names(dir: &Path) -> Result<Vec<OsString>> {
    let mut names: Vec<OsString> = std::fs::read_dir(dir)
        .map_err(io_err(dir, "read directory"))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()
        .map_err(io_err(dir, "read directory"))?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

fn read_xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut names = vec![0u8; 1024];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut names[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => names.resize(names.len() * 4, 0),
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name_os = std::ffi::OsStr::from_bytes(name);
        let mut value = vec![0u8; 256];
        let len = loop {
            match rustix::fs::lgetxattr(path, name_os, &mut value[..]) {
                Ok(len) => break len,
                Err(rustix::io::Errno::RANGE) => value.resize(value.len() * 4, 0),
                Err(rustix::io::Errno::NODATA) => break usize::MAX,
                Err(e) => return Err(e.into()),
            }
        };
        if len != usize::MAX {
            out.push((name.to_vec(), value[..len].to_vec()));
        }
    }
    out.sort();
    Ok(out)
}

/// `secs.nanos` with trailing zeros trimmed, as PAX writes times.
fn pax_time(secs: i64, nanos: i64) -> String {
    if nanos == 0 {
        return secs.to_string();
    }
    let frac = format!("{nanos:09}");
    format!("{secs}.{}", frac.trim_end_matches('0'))
}

/// The compressing stage for `options`, writing into `out` through a digest of what it writes.
fn compressor<W: Write>(
    out: W,
    options: &BuildOptions,
) -> Result<(Compressor<DigestingWriter<W>>, MediaType)> {
    let compressed = DigestingWriter::sha256(out);
    let (compressor, media_type) = match options.compression {
        Compression::None => (Compressor::None(compressed), MediaType::ImageLayer),
        Compression::Gzip => (
            Compressor::Gzip(ParallelGzip::new(
                compressed,
                options.level.unwrap_or(DEFAULT_GZIP_LEVEL),
                options.threads,
            )),
            MediaType::ImageLayerGzip,
        ),
        #[cfg(feature = "zstd")]
        Compression::Zstd => (
            Compressor::Zstd(zstd::stream::write::Encoder::new(
                compressed,
                options.level.unwrap_or(3) as i32,
            )?),
            MediaType::ImageLayerZstd,
        ),
        #[allow(unreachable_patterns)]
        other => {
            return Err(Error::UnsupportedCompression(format!(
                "{other:?} (is the `zstd` feature of ocikit-image on?)"
            )));
        }
    };
    Ok((compressor, media_type))
}

impl<'o, W: Write> LayerWriter<'o, W> {
    fn new(out: W, options: &'o BuildOptions) -> Result<Self> {
        let (compressor, media_type) = compressor(out, options)?;
        let tar = tar::Builder::new(DigestingWriter::sha256(compressor));
        Ok(LayerWriter {
            tar,
            options,
            media_type,
            links: HashMap::new(),
            entries: 0,
            overlay: None,
        })
    }

    fn finish(self) -> Result<BuiltLayer> {
        let (entries, media_type) = (self.entries, self.media_type);
        finish_stack(self.tar.into_inner()?, media_type, entries)
    }

    /// Every entry under `dir`, `rel` being its path in the layer.
    fn tree(&mut self, dir: &Path, rel: &mut Vec<u8>) -> Result<()> {
        for name in sorted_names(dir)? {
            let path = dir.join(&name);
            let meta = std::fs::symlink_metadata(&path).map_err(io_err(&path, "stat"))?;
            let len = rel.len();
            push_name(rel, &name);
            self.entry(&path, &meta, rel)?;
            if meta.is_dir() {
                self.tree(&path, rel)?;
            }
            rel.truncate(len);
        }
        Ok(())
    }

    /// Every entry of an overlayfs upper directory, whiteouts and opaque directories
    /// translated: see [`build_overlay_layer`].
    fn overlay_tree(&mut self, dir: &Path, rel: &mut Vec<u8>) -> Result<()> {
        let ns = self.overlay.unwrap_or(OverlayXattrs::Trusted);
        for name in sorted_names(dir)? {
            let path = dir.join(&name);
            let meta = std::fs::symlink_metadata(&path).map_err(io_err(&path, "stat"))?;
            let len = rel.len();
            let ft = meta.file_type();
            let attrs = if ft.is_dir() || ft.is_file() {
                read_xattrs(&path).map_err(io_err(&path, "read xattrs"))?
            } else {
                Vec::new()
            };
            let has = |suffix: &str, value: Option<&[u8]>| {
                attrs.iter().any(|(n, v)| {
                    overlay_attr(n, ns) == Some(suffix) && value.is_none_or(|want| v == want)
                })
            };
            for (suffix, reason) in [
                (
                    "redirect",
                    "a directory renamed with redirect_dir=on (its content is in a lower layer)",
                ),
                (
                    "metacopy",
                    "a metadata-only copy up (its data is in a lower layer)",
                ),
            ] {
                if has(suffix, None) {
                    push_name(rel, &name);
                    return Err(Error::Overlay {
                        path: String::from_utf8_lossy(rel).into_owned(),
                        reason,
                    });
                }
            }
            let whiteout = (ft.is_char_device() && meta.rdev() == 0)
                || (ft.is_file() && meta.len() == 0 && has("whiteout", None));
            if whiteout {
                let mut wh = OsString::from(".wh.");
                wh.push(&name);
                push_name(rel, &wh);
                self.whiteout(rel)?;
                rel.truncate(len);
                continue;
            }
            push_name(rel, &name);
            self.entry(&path, &meta, rel)?;
            if ft.is_dir() {
                if has("opaque", Some(b"y")) {
                    let inner = rel.len();
                    push_name(rel, &OsString::from(".wh..wh..opq"));
                    self.whiteout(rel)?;
                    rel.truncate(inner);
                }
                self.overlay_tree(&path, rel)?;
            }
            rel.truncate(len);
        }
        Ok(())
    }

    fn diff(&mut self, base: &Path, changed: &Path, rel: &mut Vec<u8>) -> Result<()> {
        let old = sorted_names(base)?;
        let new = sorted_names(changed)?;
        let (mut i, mut j) = (0, 0);
        while i < old.len() || j < new.len() {
            let order = match (old.get(i), new.get(j)) {
                (Some(a), Some(b)) => a.as_bytes().cmp(b.as_bytes()),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            let len = rel.len();
            match order {
                std::cmp::Ordering::Less => {
                    // Gone: a whiteout.
                    let mut wh = OsString::from(".wh.");
                    wh.push(&old[i]);
                    push_name(rel, &wh);
                    self.whiteout(rel)?;
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    let path = changed.join(&new[j]);
                    push_name(rel, &new[j]);
                    self.entry_and_subtree(&path, rel)?;
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    push_name(rel, &new[j]);
                    self.compare(&base.join(&old[i]), &changed.join(&new[j]), rel)?;
                    i += 1;
                    j += 1;
                }
            }
            rel.truncate(len);
        }
        Ok(())
    }

    fn entry_and_subtree(&mut self, path: &Path, rel: &mut Vec<u8>) -> Result<()> {
        let meta = std::fs::symlink_metadata(path).map_err(io_err(path, "stat"))?;
        self.entry(path, &meta, rel)?;
        if meta.is_dir() {
            self.tree(path, rel)?;
        }
        Ok(())
    }

    fn compare(&mut self, old: &Path, new: &Path, rel: &mut Vec<u8>) -> Result<()> {
        let om = std::fs::symlink_metadata(old).map_err(io_err(old, "stat"))?;
        let nm = std::fs::symlink_metadata(new).map_err(io_err(new, "stat"))?;
        if om.is_dir() && nm.is_dir() {
            let old_children = sorted_names(old)?;
            let replaced = !old_children.is_empty()
                && old_children
                    .iter()
                    .all(|c| std::fs::symlink_metadata(new.join(c)).is_err());
            if replaced {
                // Every old entry is gone: one opaque whiteout instead of one per entry.
                self.entry(new, &nm, rel)?;
                let len = rel.len();
                push_name(rel, &OsString::from(".wh..wh..opq"));
                self.whiteout(rel)?;
                rel.truncate(len);
                return self.tree(new, rel);
            }
            if !self.same_metadata(old, &om, new, &nm)? {
                self.entry(new, &nm, rel)?;
            }
            return self.diff(old, new, rel);
        }
        if self.same_entry(old, &om, new, &nm)? {
            // Unchanged, but remember it so a new hard link to it links instead of copying.
            if nm.nlink() > 1 && !nm.is_dir() {
                self.links
                    .entry((nm.dev(), nm.ino()))
                    .or_insert_with(|| rel.clone());
            }
            return Ok(());
        }
        self.entry_and_subtree(new, rel)
    }

    fn same_metadata(&self, old: &Path, om: &Metadata, new: &Path, nm: &Metadata) -> Result<bool> {
        let owners =
            self.options.normalize_owners || (om.uid() == nm.uid() && om.gid() == nm.gid());
        Ok(om.mode() == nm.mode()
            && owners
            && self.mtime(om) == self.mtime(nm)
            && (!self.options.xattrs
                || read_xattrs(old).map_err(io_err(old, "read xattrs"))?
                    == read_xattrs(new).map_err(io_err(new, "read xattrs"))?))
    }

    fn same_entry(&self, old: &Path, om: &Metadata, new: &Path, nm: &Metadata) -> Result<bool> {
        if om.file_type() != nm.file_type()
            || om.len() != nm.len()
            || om.rdev() != nm.rdev()
            || !self.same_metadata(old, om, new, nm)?
        {
            return Ok(false);
        }
        let ft = nm.file_type();
        if ft.is_symlink() {
            return Ok(std::fs::read_link(old).map_err(io_err(old, "readlink"))?
                == std::fs::read_link(new).map_err(io_err(new, "readlink"))?);
        }
        if ft.is_file() {
            return same_content(old, new);
        }
        Ok(true)
    }

    fn mtime(&self, m: &Metadata) -> (i64, i64) {
        match self.options.source_date_epoch {
            Some(epoch) if m.mtime() >= epoch => (epoch, 0),
            _ => (m.mtime(), m.mtime_nsec()),
        }
    }

    fn whiteout(&mut self, rel: &[u8]) -> Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(0);
        h.set_mode(0o644);
        h.set_mtime(self.options.source_date_epoch.unwrap_or(0).max(0) as u64);
        self.append(h, rel, None, Vec::new(), io::empty())
    }

    /// One entry for the file at `path`, named `rel` in the layer.
    fn entry(&mut self, path: &Path, meta: &Metadata, rel: &[u8]) -> Result<()> {
        let ft = meta.file_type();
        if ft.is_socket() {
            return Ok(());
        }
        let mut h = tar::Header::new_ustar();
        h.set_mode(meta.mode() & 0o7777);
        let (uid, gid) = if self.options.normalize_owners {
            (0, 0)
        } else {
            (u64::from(meta.uid()), u64::from(meta.gid()))
        };
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        // ustar numeric fields hold 7 octal digits (8 with a NUL); beyond that, PAX.
        if uid > 0o7_777_777 {
            pax.push(("uid".into(), uid.to_string().into_bytes()));
        } else {
            h.set_uid(uid);
        }
        if gid > 0o7_777_777 {
            pax.push(("gid".into(), gid.to_string().into_bytes()));
        } else {
            h.set_gid(gid);
        }
        let (secs, nanos) = self.mtime(meta);
        h.set_mtime(secs.max(0) as u64);
        if nanos != 0 || secs < 0 {
            pax.push(("mtime".into(), pax_time(secs, nanos).into_bytes()));
        }
        if self.options.xattrs {
            for (name, value) in read_xattrs(path).map_err(io_err(path, "read xattrs"))? {
                if self.overlay.is_some() && is_overlay_xattr(&name) {
                    continue;
                }
                let mut key = String::from("SCHILY.xattr.");
                key.push_str(&String::from_utf8_lossy(&name));
                pax.push((key, value));
            }
        }
        let mut name = rel.to_vec();
        if ft.is_dir() {
            name.push(b'/');
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            return self.append(h, &name, None, pax, io::empty());
        }
        if !ft.is_dir() && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key).cloned() {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                return self.append(h, &name, Some(&first), pax, io::empty());
            }
            self.links.insert(key, name.clone());
        }
        if ft.is_symlink() {
            let target = std::fs::read_link(path).map_err(io_err(path, "readlink"))?;
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            return self.append(
                h,
                &name,
                Some(target.as_os_str().as_bytes()),
                pax,
                io::empty(),
            );
        }
        if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
            h.set_entry_type(if ft.is_fifo() {
                tar::EntryType::Fifo
            } else if ft.is_char_device() {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            });
            h.set_size(0);
            if !ft.is_fifo() {
                let rdev = meta.rdev();
                h.set_device_major(rustix::fs::major(rdev))?;
                h.set_device_minor(rustix::fs::minor(rdev))?;
            }
            return self.append(h, &name, None, pax, io::empty());
        }
        h.set_entry_type(tar::EntryType::Regular);
        let file = File::open(path).map_err(io_err(path, "open"))?;
        // The length is taken from the open file, so a file growing under us cannot make the
        // entry longer than its header says (tar pads or truncates to it).
        let len = file.metadata().map_err(io_err(path, "stat"))?.len();
        if len > 0o77_777_777_777 {
            pax.push(("size".into(), len.to_string().into_bytes()));
        }
        h.set_size(len);
        self.append(
            h,
            &name,
            None,
            pax,
            ExactLen {
                inner: file,
                left: len,
            },
        )
    }

    fn append<R: Read>(
        &mut self,
        mut h: tar::Header,
        name: &[u8],
        link: Option<&[u8]>,
        mut pax: Vec<(String, Vec<u8>)>,
        data: R,
    ) -> Result<()> {
        {
            let ustar = h.as_ustar_mut().expect("a ustar header");
            if name.len() <= ustar.name.len() {
                ustar.name[..name.len()].copy_from_slice(name);
            } else {
                pax.push(("path".into(), name.to_vec()));
                let keep = ustar.name.len();
                ustar.name.copy_from_slice(&name[..keep]);
            }
            if let Some(link) = link {
                if link.len() <= ustar.linkname.len() {
                    ustar.linkname[..link.len()].copy_from_slice(link);
                } else {
                    pax.push(("linkpath".into(), link.to_vec()));
                    let keep = ustar.linkname.len();
                    ustar.linkname.copy_from_slice(&link[..keep]);
                }
            }
        }
        if !pax.is_empty() {
            pax.sort();
            self.tar
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
        }
        h.set_cksum();
        self.tar.append(&h, data)?;
        self.entries += 1;
        Ok(())
    }
}

/// Whether an xattr name is one overlayfs reads, in either namespace.
fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

/// The part after `overlay.` of an xattr of the namespace `ns` (`opaque` for
/// `trusted.overlay.opaque`), if `name` is one.
fn overlay_attr(name: &[u8], ns: OverlayXattrs) -> Option<&str> {
    let prefix: &[u8] = match ns {
        OverlayXattrs::Trusted => b"trusted.overlay.",
        OverlayXattrs::User => b"user.overlay.",
    };
    std::str::from_utf8(name.strip_prefix(prefix)?).ok()
}

fn push_name(rel: &mut Vec<u8>, name: &std::ffi::OsStr) {
    if !rel.is_empty() {
        rel.push(b'/');
    }
    rel.extend_from_slice(name.as_bytes());
}

fn same_content(a: &Path, b: &Path) -> Result<bool> {
    let mut fa = File::open(a).map_err(io_err(a, "open"))?;
    let mut fb = File::open(b).map_err(io_err(b, "open"))?;
    let mut ba = vec![0u8; 64 * 1024];
    let mut bb = vec![0u8; 64 * 1024];
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(io_err(a, "read"))?;
        let nb = read_full(&mut fb, &mut bb).map_err(io_err(b, "read"))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Yields exactly `left` bytes: a file that shrank while being read is an error, one that
/// grew is cut at the length its header recorded.
struct ExactLen<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for ExactLen<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while it was being archived",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
