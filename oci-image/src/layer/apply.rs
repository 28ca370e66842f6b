//! Applying a layer (a tar stream, maybe compressed) to a root filesystem directory.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use oci_spec::image::{Digest, MediaType};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timestamps, Uid};

use super::read::{
    BUF, Decoder, EntryKind, EntryMeta, Limit, MAX_PATH_DEPTH, check_diff_id, classify, clean_path,
    join, prefer_verification,
};
use super::root::Root;
use crate::{Compression, Error, Hasher, Result};

/// The most file content one write job carries: a bigger file goes in several jobs.
const WRITE_CHUNK: usize = 256 * 1024;

/// Jobs go to the writer thread in batches of up to this many bytes of content (or
/// [`BATCH_JOBS`] jobs), so a layer of small files does not wake it once per file.
const BATCH_BYTES: usize = 1024 * 1024;

/// See [`BATCH_BYTES`].
const BATCH_JOBS: usize = 32;

/// Batches queued for the writer thread. With [`BATCH_BYTES`] and [`BATCH_JOBS`] this bounds
/// what is in flight (queued, being filled, being written) to about 5 MiB of file content and
/// 160 open files, whatever the layer holds.
const WRITE_QUEUE: usize = 3;

/// How file owners in the layer are applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ownership {
    /// [`Ownership::Keep`] when running as root, [`Ownership::Ignore`] otherwise. The default.
    #[default]
    Auto,
    /// Owners as the layer says (needs root or `CAP_CHOWN`).
    Keep,
    /// Everything is owned by the caller.
    Ignore,
    /// Owners translated through an id mapping, for a rootfs that a user namespace will see
    /// (rootless use). An id without a mapping is an error.
    Map(IdMap),
}

/// A uid and gid mapping like `/proc/<pid>/uid_map`: ids inside the container to ids on the
/// host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdMap {
    /// uid ranges.
    pub uids: Vec<IdRange>,
    /// gid ranges.
    pub gids: Vec<IdRange>,
}

/// One range of an [`IdMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRange {
    /// First id inside the container.
    pub container: u32,
    /// The host id it maps to.
    pub host: u32,
    /// How many consecutive ids the range covers.
    pub size: u32,
}

fn map_id(ranges: &[IdRange], id: u32) -> Option<u32> {
    ranges.iter().find_map(|r| {
        let off = id.checked_sub(r.container)?;
        (off < r.size).then(|| r.host.checked_add(off)).flatten()
    })
}

/// What to do with character and block devices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Devices {
    /// Create them; when not permitted (not root), skip and count them. The default.
    #[default]
    CreateOrSkip,
    /// Create them; not being permitted is an error.
    Create,
    /// Never create them; count them as skipped.
    Skip,
}

/// What whiteouts (`.wh.NAME` and the opaque marker `.wh..wh..opq`) do to the root.
///
/// image-spec `layer.md`: "A whiteout file is an empty file with a special filename that
/// signifies a path should be deleted", and "An opaque whiteout entry is a file with the name
/// `.wh..wh..opq` indicating that all siblings are hidden in the lower layer".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Whiteouts {
    /// The root holds the lower layers already: a whiteout removes what it names, an opaque
    /// marker empties its directory of what lower layers put there. The default.
    #[default]
    Remove,
    /// The root is an empty directory that receives this layer alone, in the form overlayfs
    /// reads (the kernel's `Documentation/filesystems/overlayfs.rst`, as containers/storage's
    /// overlay driver writes it): a whiteout becomes a character device 0/0 of the name it
    /// hides, an opaque marker becomes the xattr `<prefix>overlay.opaque` = `y` on its
    /// directory. Nothing is removed. A stack of such directories mounted as overlayfs
    /// `lowerdir`s (the top layer first) shows what [`Whiteouts::Remove`] gives when the same
    /// layers are applied in order to one directory; see [`apply_layer`] for the details and
    /// the few cases where one layer alone cannot know what the lower ones hold.
    Overlay(OverlayXattrs),
}

/// Which xattr namespace overlayfs reads its attributes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OverlayXattrs {
    /// `trusted.overlay.*`, what overlayfs reads by default. Setting them needs
    /// `CAP_SYS_ADMIN` (root).
    Trusted,
    /// `user.overlay.*`, what overlayfs reads when mounted with the `userxattr` option (Linux
    /// 5.11+), which an unprivileged user in a user namespace can mount. The filesystem
    /// holding the directories must take `user.*` xattrs.
    User,
}

impl OverlayXattrs {
    /// The name of the xattr that marks an opaque directory: `trusted.overlay.opaque` or
    /// `user.overlay.opaque`.
    pub fn opaque_xattr(self) -> &'static str {
        match self {
            OverlayXattrs::Trusted => "trusted.overlay.opaque",
            OverlayXattrs::User => "user.overlay.opaque",
        }
    }

    /// The overlayfs mount option that makes it read this namespace: `None` for
    /// [`OverlayXattrs::Trusted`], `Some("userxattr")` for [`OverlayXattrs::User`].
    pub fn mount_option(self) -> Option<&'static str> {
        match self {
            OverlayXattrs::Trusted => None,
            OverlayXattrs::User => Some("userxattr"),
        }
    }
}

/// Whether an xattr name is one overlayfs reads (in either namespace): a layer's own such
/// attributes are never written in overlay form, where they would change what the mount
/// shows (`overlay.redirect`, `overlay.opaque`, `overlay.metacopy` and their kin).
fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

/// Options for [`apply_layer`], built by chaining setters on [`ApplyOptions::new`].
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    ownership: Ownership,
    devices: Devices,
    xattrs: bool,
    max_size: Option<u64>,
    whiteouts: Whiteouts,
    lower_layers: Vec<PathBuf>,
    lower_layers_pending: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            ownership: Ownership::Auto,
            devices: Devices::CreateOrSkip,
            xattrs: true,
            max_size: None,
            whiteouts: Whiteouts::Remove,
            lower_layers: Vec::new(),
            lower_layers_pending: false,
        }
    }
}

impl ApplyOptions {
    /// The defaults: see each setter.
    pub fn new() -> Self {
        Self::default()
    }

    /// How owners are applied. Default [`Ownership::Auto`].
    pub fn ownership(mut self, ownership: Ownership) -> Self {
        self.ownership = ownership;
        self
    }

    /// What to do with device nodes. Default [`Devices::CreateOrSkip`].
    pub fn devices(mut self, devices: Devices) -> Self {
        self.devices = devices;
        self
    }

    /// Whether extended attributes (`SCHILY.xattr.*` PAX records) are applied. Default true;
    /// attributes the filesystem or the caller's privileges refuse are counted in
    /// [`ApplyReport::xattrs_skipped`], not errors.
    pub fn xattrs(mut self, xattrs: bool) -> Self {
        self.xattrs = xattrs;
        self
    }

    /// The most uncompressed bytes the layer may expand to (a guard against decompression
    /// bombs). Default: no limit beyond the compressed size the caller verifies.
    pub fn max_uncompressed_size(mut self, limit: Option<u64>) -> Self {
        self.max_size = limit;
        self
    }

    /// What whiteouts do: remove what lower layers put in the root, or be recorded in
    /// overlayfs form in an empty root that receives this layer alone. Default
    /// [`Whiteouts::Remove`].
    pub fn whiteouts(mut self, whiteouts: Whiteouts) -> Self {
        self.whiteouts = whiteouts;
        self
    }

    /// Overlay form only: the directories of the layers below this one, in overlay form too,
    /// the one right below first (the order of `lowerdir=`). What this layer needs from them
    /// is looked up there through their whiteouts and opaque directories, as overlayfs
    /// would:
    /// - a hard link whose source is not in this layer copies the file it names (overlayfs
    ///   has no links across layers): same content, type, mode, owner, xattrs and
    ///   modification time, another inode;
    /// - a directory this layer needs but does not list (`var` for an entry `var/lib/x`)
    ///   takes the owner, mode, xattrs and time of the lower directory, as overlayfs does when
    ///   it copies a directory up.
    ///
    /// Default none: such a link is an error and such a directory is made with mode 0755,
    /// the caller as owner and the current time (see [`apply_layer`]).
    pub fn lower_layers(mut self, lower_layers: Vec<PathBuf>) -> Self {
        self.lower_layers = lower_layers;
        self
    }

    /// Overlay form only, for a caller that unpacks a layer while the layers below it are
    /// still being unpacked: the first entry that would need them (see
    /// [`lower_layers`](Self::lower_layers): a directory this layer needs but does not list,
    /// a hard link whose source is not in this layer) ends the apply with
    /// [`Error::NeedsLowerLayers`], instead of being written without them. The caller then
    /// applies the layer again, into an empty directory, with its lower layers. What was read
    /// of the stream is read; the rest is not. Default false.
    pub fn lower_layers_pending(mut self, pending: bool) -> Self {
        self.lower_layers_pending = pending;
        self
    }
}

/// What [`apply_layer`] did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ApplyReport {
    /// The digest of the uncompressed tar stream (the layer's diff_id).
    pub diff_id: Digest,
    /// The length of the uncompressed tar stream.
    pub uncompressed_size: u64,
    /// The compression found.
    pub compression: Compression,
    /// Tar entries read.
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Bytes of file content written.
    pub file_bytes: u64,
    /// Directories created or updated.
    pub directories: u64,
    /// Symbolic links created.
    pub symlinks: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// Device nodes and fifos created.
    pub special_files: u64,
    /// Device nodes not created (see [`Devices`]).
    pub devices_skipped: u64,
    /// Whiteouts and opaque whiteouts applied.
    pub whiteouts: u64,
    /// Extended attributes the filesystem or privileges refused.
    pub xattrs_skipped: u64,
    /// Entries of types that have no meaning in a layer (tape volume headers and the like),
    /// ignored.
    pub ignored: u64,
    /// The layer has an opaque marker at its root (`/.wh..wh..opq`): it hides every lower
    /// layer. With [`Whiteouts::Remove`] they are removed already; in overlay form
    /// ([`Whiteouts::Overlay`]) overlayfs cannot express it (it never reads a layer's root as
    /// opaque), so a mount of this layer must leave out every layer below it.
    pub hides_lower_layers: bool,
}

/// Applies the layer `layer` to the directory `root`, as image-spec `layer.md` says: entries
/// are created or replace what is there, and whiteouts remove what lower layers put there.
///
/// - The layer is read with the rules of [`LayerReader`](crate::LayerReader), the one place
///   they live (whiteouts, opaque markers, hard links, paths, PAX records). Compression is
///   found from the stream's first bytes (gzip, zstd, or else a plain tar) and checked
///   against `media_type`: a plain tar passes under any layer type (Docker archives store
///   plain tars under gzip media types), compressed bytes of another kind than the type says
///   are [`Error::CompressionMismatch`].
/// - The uncompressed stream is hashed; with `expected_diff_id` a mismatch is
///   [`Error::DiffIdMismatch`]. `layer` is always read to its end, so a
///   [`VerifyingReader`](crate::VerifyingReader) around it (what
///   [`ImageSource::open_blob`](crate::ImageSource::open_blob) returns) reports a wrong
///   compressed digest as an error of this call.
/// - On any error the root holds a partly applied layer and must not be used.
/// - The work runs on four threads, so a layer applies about as fast as the slowest of
///   them allows: decompression; hashing of the uncompressed stream; reading the tar and every
///   change to names in the root (this thread, in layer order); and writing file contents
///   and metadata to files already created. Memory stays bounded whatever the layer's size:
///   a few 256 KiB chunks between the first three, and about 5 MiB of file content (in at
///   most 160 open files) queued for the last.
///
/// # Overlay form
/// With [`ApplyOptions::whiteouts`]`(`[`Whiteouts::Overlay`]`(..))`, `root` must be an empty
/// directory (else [`Error::Apply`] with an [`io::ErrorKind::DirectoryNotEmpty`] source, and
/// nothing is written) and receives this layer alone, as an overlayfs layer: stacked with the
/// directories of the layers below it (`mount -t overlay overlay -o lowerdir=TOP:...:BOTTOM`,
/// plus `userxattr` for [`OverlayXattrs::User`]) it shows what applying the layers in order
/// to one directory gives. Entry by entry:
/// - Files, directories, links, devices, owners, modes, times and xattrs are written exactly
///   as in remove form, through the same code. An entry that replaces a lower entry of
///   another type needs nothing more: overlayfs shows the upper one, and merges a directory
///   only with a lower directory (a directory over a lower file or symlink hides it).
/// - `.wh.NAME` becomes a character device 0/0 named NAME, whatever [`Devices`] says (it
///   needs `CAP_MKNOD`, or Linux 5.8+, which lets any user make this one device). A
///   whiteout of a name this layer made itself leaves that entry, as in remove form (layer.md:
///   "Files that are present in the same layer as a whiteout file can only be hidden by
///   whiteout files in subsequent layers"). An entry of this layer that comes after the
///   whiteout of its name replaces the device; a directory doing so is made opaque, and so is
///   the device turned into a directory for an entry below it (`.wh.d`, then `d/x`), since
///   over the lower layers the whiteout removed the old `d` first. So is a directory that
///   replaces a non-directory entry of this same layer.
/// - `D/.wh..wh..opq` sets the xattr [`OverlayXattrs::opaque_xattr`] = `y` on D (made if the
///   layer has not made it yet): overlayfs then hides the lower layers' entries of D and
///   shows this layer's, as remove form keeps them. At the root, where overlayfs never reads
///   the xattr, [`ApplyReport::hides_lower_layers`] says it instead. Whiteouts of this layer
///   below an opaque directory hide nothing more and are left out (overlayfs would list
///   them there, see below).
/// - AUFS bookkeeping (`.wh..wh.plnk` and the like) is ignored, as in remove form. `xattrs`
///   named `trusted.overlay.*` or `user.overlay.*` that the layer carries are not written
///   (counted in [`ApplyReport::xattrs_skipped`]): they would change what the mount shows.
/// - A hard link whose source is not in this layer (image-spec: "Extracting a layer with
///   hardlink references to files outside of the layer may fail") is [`Error::Apply`] with
///   a [`io::ErrorKind::NotFound`] source, unless [`ApplyOptions::lower_layers`] gives the
///   layers below: then the source is found there and copied (another inode, as overlayfs
///   has no links across layers; the links within one layer stay links).
///
/// What one layer alone cannot know about the lower ones, and so differs from remove form:
/// - A directory the layer needs but does not list (the parent of an entry, a whiteout or an
///   opaque marker) is made with mode 0755, the caller as owner and the current time, as in
///   remove form when no lower layer has it; overlayfs shows these attributes, not the
///   lower directory's. Tools list the directory of each change, but not always the ones
///   above it (umoci does not list `var` for a change in `var/lib`). With
///   [`ApplyOptions::lower_layers`] such a directory takes the lower one's attributes
///   instead, as remove form keeps them.
/// - Such a directory, made in place of a lower symlink (an entry `lib/x` over a lower
///   `lib -> usr/lib`), is a directory, where remove form writes through the link.
/// - A whiteout or opaque marker in a directory that neither this layer nor a lower one has
///   makes that directory, empty, where remove form shows nothing.
/// - A whiteout of a name no lower layer has, in a directory no lower layer has either, is
///   listed by `readdir` on the mount (overlayfs drops whiteouts only from directories it
///   merges), though looking the name up finds nothing; remove form shows nothing.
/// - A character device 0/0 in the layer is a whiteout to overlayfs.
/// - The root's own attributes are the directory's until a `./` entry sets them; overlayfs
///   shows the top layer's.
///
/// # Security
/// The layer is hostile until proven otherwise. Every entry's path, link target and hardlink
/// source is resolved inside `root` (symlinks included, see the module docs), so no entry can
/// create, change or delete anything outside it; a path whose `..` climbs above the root is
/// refused with [`Error::UnsafeEntry`]. Existing files are replaced, never written through, so
/// a file hardlinked elsewhere is not changed. Whiteouts name one entry each and cannot
/// remove the root or anything above it.
pub fn apply_layer<R: Read + Send>(
    root: &Path,
    layer: R,
    media_type: &MediaType,
    expected_diff_id: Option<&Digest>,
    options: &ApplyOptions,
) -> Result<ApplyReport> {
    let root_err = |source| Error::Apply {
        path: root.display().to_string(),
        op: "open root",
        source,
    };
    let root = Root::open(root).map_err(root_err)?;
    let overlay = match options.whiteouts {
        Whiteouts::Remove => None,
        Whiteouts::Overlay(xattrs) => Some(xattrs),
    };
    if overlay.is_some() {
        // Overlay form records this layer alone: whatever is in the directory already would
        // be taken for part of it (and its whiteouts would not remove it).
        let fd = rustix::io::dup(root.fd()).map_err(|e| root_err(e.into()))?;
        if !list_dir(&fd).map_err(root_err)?.is_empty() {
            return Err(root_err(io::Error::new(
                io::ErrorKind::DirectoryNotEmpty,
                "a layer in overlay form is applied to an empty directory only",
            )));
        }
    }
    let mut lowers = Vec::new();
    if overlay.is_some() {
        for lower in &options.lower_layers {
            let fd = rustix::fs::open(
                lower,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| Error::Apply {
                path: lower.display().to_string(),
                op: "open lower layer",
                source: e.into(),
            })?;
            lowers.push(fd);
        }
    }
    let (decoder, compression) = Decoder::new(layer, media_type)?;
    let is_root = rustix::process::geteuid().is_root();
    let mut applier = Applier {
        chown: match &options.ownership {
            Ownership::Auto if is_root => Some(None),
            Ownership::Keep => Some(None),
            Ownership::Map(m) => Some(Some(m.clone())),
            _ => None,
        },
        me: (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        ),
        umask: read_umask(),
        root,
        options,
        overlay,
        lowers,
        lowers_pending: overlay.is_some() && options.lower_layers_pending,
        copied: HashMap::new(),
        whited_out: HashSet::new(),
        opaque: HashSet::new(),
        touched: HashSet::new(),
        dirs: Vec::new(),
        cache: None,
        writer: None,
        batch: Vec::new(),
        batch_bytes: 0,
        counts: Counts::default(),
    };
    // Decompression and hashing run on threads of their own, a few chunks ahead of the
    // work on names on this one; file contents go to a fourth.
    let (diff_id, uncompressed_size) = std::thread::scope(|scope| -> Result<(Digest, u64)> {
        let (tx, rx) = sync_channel::<io::Result<Chunk>>(4);
        let (hash_tx, hash_rx) = sync_channel::<Chunk>(4);
        let producer = std::thread::Builder::new()
            .name("layer-inflate".into())
            .spawn_scoped(scope, move || {
                produce(decoder, options.max_size, tx, hash_tx)
            })?;
        let hasher = std::thread::Builder::new()
            .name("layer-hash".into())
            .spawn_scoped(scope, move || hash_chunks(hash_rx))?;
        let (jobs, queue) = sync_channel::<Vec<Job>>(WRITE_QUEUE);
        applier.writer = Some(jobs);
        let writer = std::thread::Builder::new()
            .name("layer-write".into())
            .spawn_scoped(scope, move || write_files(queue))?;
        let mut archive = tar::Archive::new(ChannelReader {
            rx,
            chunk: Chunk::default(),
            pos: 0,
        });
        let applied = (|| -> Result<()> {
            for entry in archive.entries().map_err(Error::from)? {
                let mut entry = entry.map_err(Error::from)?;
                applier.counts.entries += 1;
                applier.entry(&mut entry)?;
            }
            applier.flush()
        })();
        // Every file is written before directories get their final modes and times, and a
        // failed write is this layer's error (the first one, before what it caused here).
        applier.writer = None;
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(Error::Io(io::Error::other("layer writer thread panicked"))));
        let applied = match (written, applied) {
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(e),
            (Ok(skipped), Ok(())) => {
                applier.counts.xattrs_skipped += skipped;
                applier.finish_directories()
            }
        };
        let mut rest = archive.into_inner();
        let applied = applied.and_then(|()| {
            // The tar end marker may come before the end of the stream (padding to a record
            // size): take the rest, so the producer hashes and verifies all of it.
            io::copy(&mut rest, &mut io::sink())?;
            Ok(())
        });
        // Dropping the receiver stops a producer that is still sending after an error.
        drop(rest);
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("layer decompression thread panicked")));
        let hashed = hasher.join();
        match (applied, produced, hashed) {
            // A broken stream is the cause of whatever the tar reader then said.
            (_, Err(e), _) => Err(Error::from(e)),
            (Err(e), _, _) => Err(e),
            (Ok(()), Ok(Some(size)), Ok(diff_id)) => Ok((diff_id, size)),
            (Ok(()), Ok(Some(_)), Err(_)) => {
                Err(Error::Io(io::Error::other("layer hashing thread panicked")))
            }
            (Ok(()), Ok(None), _) => Err(Error::Io(io::Error::other("layer reading stopped"))),
        }
    })?;
    check_diff_id(expected_diff_id, &diff_id)?;
    let c = applier.counts;
    Ok(ApplyReport {
        diff_id,
        uncompressed_size,
        compression,
        entries: c.entries,
        files: c.files,
        file_bytes: c.file_bytes,
        directories: c.directories,
        symlinks: c.symlinks,
        hardlinks: c.hardlinks,
        special_files: c.special_files,
        devices_skipped: c.devices_skipped,
        whiteouts: c.whiteouts,
        xattrs_skipped: c.xattrs_skipped,
        ignored: c.ignored,
        hides_lower_layers: c.hides_lower_layers,
    })
}

/// Decompresses and bounds the layer, sending each chunk to the tar reader and to the
/// hashing thread; then drains the compressed input so a verifier around it checks all of it.
/// Returns the uncompressed size, or `None` when it stopped early because the receiving side
/// is gone (it failed).
fn produce<R: Read>(
    decoder: Decoder<R>,
    max_size: Option<u64>,
    tx: SyncSender<io::Result<Chunk>>,
    hash: SyncSender<Chunk>,
) -> io::Result<Option<u64>> {
    let mut limited = Limit {
        inner: decoder,
        left: max_size,
        limit: max_size,
    };
    let mut size = 0u64;
    let result = (|| -> io::Result<bool> {
        loop {
            let mut chunk = vec![0u8; BUF];
            let n = match limited.read(&mut chunk) {
                Ok(0) => return Ok(true),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            chunk.truncate(n);
            size += n as u64;
            let chunk = Arc::new(chunk);
            if hash.send(Arc::clone(&chunk)).is_err() || tx.send(Ok(chunk)).is_err() {
                return Ok(false);
            }
        }
    })();
    drop(hash);
    let finished = match result {
        Ok(finished) => finished,
        Err(e) => {
            // The reader sees the stream break there; the caller gets the typed error.
            let _ = tx.send(Err(io::Error::new(e.kind(), "the layer stream broke")));
            drop(tx);
            return Err(prefer_verification(e, limited.inner.input_mut()));
        }
    };
    drop(tx);
    if !finished {
        return Ok(None);
    }
    io::copy(limited.inner.input_mut(), &mut io::sink())?;
    Ok(Some(size))
}

/// Decompressed layer bytes, shared by the tar reader and the hashing thread.
type Chunk = Arc<Vec<u8>>;

/// The hashing thread: the diff_id of everything the producer sent.
fn hash_chunks(chunks: Receiver<Chunk>) -> Digest {
    let mut hasher = Hasher::sha256();
    for chunk in chunks {
        hasher.update(&chunk);
    }
    hasher.finish()
}

/// The tar reader's end of the channel.
struct ChannelReader {
    rx: Receiver<io::Result<Chunk>>,
    chunk: Chunk,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The producer finished (or failed, and says so when joined).
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[derive(Default)]
struct Counts {
    entries: u64,
    files: u64,
    file_bytes: u64,
    directories: u64,
    symlinks: u64,
    hardlinks: u64,
    special_files: u64,
    devices_skipped: u64,
    whiteouts: u64,
    xattrs_skipped: u64,
    ignored: u64,
    hides_lower_layers: bool,
}

struct Applier<'o> {
    root: Root,
    options: &'o ApplyOptions,
    /// `Some(None)`: chown as the layer says; `Some(Some(map))`: through the map.
    chown: Option<Option<IdMap>>,
    /// The effective uid and gid: a new file's owner already, so no chown is needed for it.
    me: (u32, u32),
    /// The process umask, when /proc says it.
    umask: Option<u32>,
    /// In overlay form, the namespace of the overlay xattrs; `None` in remove form.
    overlay: Option<OverlayXattrs>,
    /// In overlay form, the lower layers' directories ([`ApplyOptions::lower_layers`]).
    lowers: Vec<OwnedFd>,
    /// [`ApplyOptions::lower_layers_pending`], in overlay form.
    lowers_pending: bool,
    /// In overlay form, the lower files hard links were copied from: their paths, to where
    /// the copy went and its inode.
    copied: HashMap<Vec<u8>, (Vec<OsString>, u64)>,
    /// In overlay form, where this layer put a whiteout device that is still there.
    whited_out: HashSet<Vec<u8>>,
    /// In overlay form, the directories this layer made opaque (`[]`: the root).
    opaque: HashSet<Vec<u8>>,
    /// Every path this layer created, and their parents: whiteouts spare these.
    touched: HashSet<Vec<u8>>,
    /// Directories whose mode and times are set at the end, when nothing more is written in
    /// them.
    dirs: Vec<(Vec<OsString>, u32, rustix::fs::Timespec)>,
    /// The parent directory of the last entry, reused while entries stay in one directory.
    cache: Option<(Vec<OsString>, Rc<OwnedFd>)>,
    /// Where file contents go: the writer thread (see [`Job`]).
    writer: Option<SyncSender<Vec<Job>>>,
    /// Jobs not yet sent, and the bytes of content they carry.
    batch: Vec<Job>,
    batch_bytes: usize,
    counts: Counts,
}

fn errno_to_io(e: rustix::io::Errno) -> io::Error {
    e.into()
}

/// Turns an I/O error on an entry into [`Error::Apply`] naming it.
fn entry_err(components: &[OsString], op: &'static str) -> impl Fn(io::Error) -> Error + use<> {
    entry_err_at(String::from_utf8_lossy(&join(components)).into_owned(), op)
}

/// [`entry_err`] for an entry whose path is already joined.
fn entry_err_at(path: String, op: &'static str) -> impl Fn(io::Error) -> Error + use<> {
    move |source| {
        // A typed error that travelled through io (a verifier below us) stays typed.
        if source.get_ref().is_some_and(|e| e.is::<Error>()) {
            return Error::from(source);
        }
        Error::Apply {
            path: path.clone(),
            op,
            source,
        }
    }
}

impl Applier<'_> {
    fn touch(&mut self, components: &[OsString]) {
        let mut path = join(components);
        loop {
            if !self.touched.insert(path.clone()) {
                break;
            }
            match path.iter().rposition(|&b| b == b'/') {
                Some(i) => path.truncate(i),
                None => break,
            }
        }
    }

    fn parent(&mut self, parent: &[OsString]) -> io::Result<Rc<OwnedFd>> {
        if let Some((path, fd)) = &self.cache
            && path.as_slice() == parent
        {
            return Ok(fd.clone());
        }
        let implied = if self.lowers.is_empty() && !self.lowers_pending {
            None
        } else {
            self.first_missing(parent)
        };
        if let Some(first) = implied
            && self.lowers_pending
        {
            return Err(Error::NeedsLowerLayers {
                path: String::from_utf8_lossy(&join(&parent[..=first])).into_owned(),
                reason: "a directory the layer needs but does not list",
            }
            .into_io());
        }
        let fd = match self.root.dir(parent, true) {
            Err(e)
                if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error())
                    && !self.whited_out.is_empty() =>
            {
                self.open_whiteouts(parent)?;
                self.root.dir(parent, true)?
            }
            other => other?,
        };
        if let Some(first) = implied {
            for end in first..parent.len() {
                self.copy_up_directory(&parent[..=end])?;
            }
        }
        let fd = Rc::new(fd);
        self.cache = Some((parent.to_vec(), fd.clone()));
        Ok(fd)
    }

    /// How many of `components` lead, as they are named, to directories this layer has
    /// already, when the next one is missing (and so is made now); `None` when all are there
    /// or the way is not a plain directory path.
    fn first_missing(&self, components: &[OsString]) -> Option<usize> {
        let mut dir = rustix::io::dup(self.root.fd()).ok()?;
        for (i, c) in components.iter().enumerate() {
            match rustix::fs::openat(
                &dir,
                c,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => dir = fd,
                Err(rustix::io::Errno::NOENT) => return Some(i),
                Err(_) => return None,
            }
        }
        None
    }

    /// Overlay form over [`ApplyOptions::lower_layers`]: a directory this layer needs but
    /// does not list (`usr` for an entry `usr/lib/x`) takes the owner, mode, xattrs and time
    /// of the directory the lower layers show there, as overlayfs does when it copies a
    /// directory up; applied over the lower layers, this is the lower directory itself.
    /// A directory entry of this layer coming later sets its own.
    fn copy_up_directory(&mut self, components: &[OsString]) -> io::Result<()> {
        let Some((lower_parent, st)) = self.find_below(components, true)? else {
            return Ok(());
        };
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return Ok(());
        }
        let Some(ours) = self.lexical_dir(components) else {
            return Ok(());
        };
        let name = components.last().expect("not the root");
        let lower = rustix::fs::openat(
            &lower_parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let xattrs = read_xattrs(lower.as_fd())?;
        let owner = (st.st_uid != self.me.0 || st.st_gid != self.me.1)
            .then(|| (Uid::from_raw(st.st_uid), Gid::from_raw(st.st_gid)));
        self.counts.xattrs_skipped += set_fd_metadata(ours.as_fd(), owner, None, &xattrs)?;
        // Mode and time at the end, with the listed directories'.
        let mtime = rustix::fs::Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec as _,
        };
        self.dirs
            .push((components.to_vec(), st.st_mode & 0o7777, mtime));
        Ok(())
    }

    /// Overlay form: an entry below a name this layer whited out (`.wh.d`, then `d/x`).
    /// Applied over the lower layers, the whiteout removed the lower `d` and the entry made a
    /// new one holding only this layer's entries: here the whiteout device becomes an opaque
    /// directory, which shows the same.
    fn open_whiteouts(&mut self, parent: &[OsString]) -> io::Result<()> {
        for i in 0..parent.len() {
            if !self.whited_out.remove(&join(&parent[..=i])) {
                continue;
            }
            let Some(dir) = self.lexical_dir(&parent[..i]) else {
                continue;
            };
            let st = rustix::fs::statat(&dir, &parent[i], AtFlags::SYMLINK_NOFOLLOW)?;
            if !is_whiteout_device(&st) {
                continue;
            }
            rustix::fs::unlinkat(&dir, &parent[i], AtFlags::empty())?;
            rustix::fs::mkdirat(&dir, &parent[i], Mode::from_raw_mode(0o755))?;
            let made = rustix::fs::openat(
                &dir,
                &parent[i],
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            self.set_opaque(made.as_fd(), &parent[..=i])?;
        }
        Ok(())
    }

    /// Overlay form: marks the directory `dir` at `path` opaque (it hides every lower layer's
    /// entries there).
    fn set_opaque(&mut self, dir: BorrowedFd<'_>, path: &[OsString]) -> io::Result<()> {
        let Some(xattrs) = self.overlay else {
            return Ok(());
        };
        // overlayfs.rst: "A directory is made opaque by setting the xattr
        // "trusted.overlay.opaque" to "y"" (`user.overlay.opaque` with `userxattr`).
        rustix::fs::fsetxattr(
            dir,
            xattrs.opaque_xattr(),
            b"y",
            rustix::fs::XattrFlags::empty(),
        )?;
        self.hide_below(join(path))
    }

    /// Overlay form: nothing of the lower layers shows below `path` (`[]` for the root), so
    /// this layer's whiteouts there hide nothing: they are removed, and no more are made.
    /// They would not be harmless: overlayfs drops whiteouts from the listing of a directory
    /// only when it merges layers there, and below an opaque directory it merges none, so
    /// the names would be listed, yet not found.
    fn hide_below(&mut self, path: Vec<u8>) -> io::Result<()> {
        let below = |p: &[u8]| {
            path.is_empty() || (p.starts_with(&path) && p.get(path.len()) == Some(&b'/'))
        };
        let mut gone: Vec<Vec<u8>> = self
            .whited_out
            .iter()
            .filter(|p| below(p))
            .cloned()
            .collect();
        gone.sort();
        for p in gone {
            self.whited_out.remove(&p);
            let components: Vec<OsString> = p
                .split(|&b| b == b'/')
                .map(|c| OsStr::from_bytes(c).to_owned())
                .collect();
            let (name, parent) = components.split_last().expect("whiteouts have a name");
            let Some(dir) = self.lexical_dir(parent) else {
                // Gone with a directory a later entry replaced.
                continue;
            };
            if rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| is_whiteout_device(&st))
            {
                rustix::fs::unlinkat(&dir, name, AtFlags::empty())?;
            }
        }
        self.opaque.insert(path);
        Ok(())
    }

    /// The directory at exactly `components` below the root, following no symlink: where
    /// this layer's whiteouts were made (their paths are kept as the layer named them, and
    /// a symlink later put on the way leads elsewhere). `None` when there is none.
    fn lexical_dir(&self, components: &[OsString]) -> Option<OwnedFd> {
        let mut dir = rustix::io::dup(self.root.fd()).ok()?;
        for c in components {
            dir = rustix::fs::openat(
                &dir,
                c,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ok()?;
        }
        Some(dir)
    }

    /// Overlay form: whether `path` is below a whiteout of this layer.
    fn below_whiteout(&self, path: &[u8]) -> bool {
        !self.whited_out.is_empty()
            && path
                .iter()
                .enumerate()
                .any(|(i, &b)| b == b'/' && self.whited_out.contains(&path[..i]))
    }

    /// Overlay form: whether `path` is below a directory this layer made opaque.
    fn hidden_below_opaque(&self, path: &[u8]) -> bool {
        if self.opaque.is_empty() {
            return false;
        }
        self.opaque.contains(&b""[..])
            || path
                .iter()
                .enumerate()
                .any(|(i, &b)| b == b'/' && self.opaque.contains(&path[..i]))
    }

    /// In overlay form, drops the overlay xattrs a layer may carry (counted as skipped),
    /// which would change what the mount shows.
    fn filter_xattrs(&mut self, meta: &mut EntryMeta) {
        if self.overlay.is_some() {
            let before = meta.xattrs.len();
            meta.xattrs.retain(|(name, _)| !is_overlay_xattr(name));
            self.counts.xattrs_skipped += (before - meta.xattrs.len()) as u64;
        }
    }

    /// One entry, read with the format rules of [`classify`].
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let Some(mut meta) = classify(entry, self.options.xattrs)? else {
            self.counts.ignored += 1;
            return Ok(());
        };
        let components = std::mem::take(&mut meta.components);
        let kind = meta.kind;
        if matches!(kind, EntryKind::Whiteout | EntryKind::Opaque) {
            return self.whiteout(kind, &components);
        }
        self.filter_xattrs(&mut meta);
        let Some(name) = components.last().cloned() else {
            // The root itself (`./`): only its metadata can change.
            self.dirs.push((Vec::new(), meta.mode, meta.mtime));
            let fd = rustix::io::dup(self.root.fd()).map_err(errno_to_io);
            let fd = fd.map_err(entry_err(&[], "open"))?;
            return self.set_owner_and_xattrs(fd.as_fd(), false, &meta, &[]);
        };
        let parent_components = &components[..components.len() - 1];
        let err = entry_err(&components, "create");
        let parent = self.parent(parent_components).map_err(&err)?;
        match kind {
            EntryKind::File => self.file(&parent, &name, entry, &meta, &components)?,
            EntryKind::Directory => self.directory(&parent, &name, &meta, &components)?,
            EntryKind::Symlink => {
                let target = meta.link.as_deref().unwrap_or(Path::new("")).as_os_str();
                match rustix::fs::symlinkat(target, &*parent, &name) {
                    Err(rustix::io::Errno::EXIST) => {
                        self.replace(&parent, &name, false).map_err(&err)?;
                        rustix::fs::symlinkat(target, &*parent, &name)
                    }
                    other => other,
                }
                .map_err(errno_to_io)
                .map_err(&err)?;
                self.set_path_metadata(&parent, &name, &meta, false, &components)?;
                self.counts.symlinks += 1;
                // A symlink may now stand where a cached directory was found.
                self.cache = None;
            }
            EntryKind::Hardlink => {
                let source = meta.link.as_deref().unwrap_or(Path::new(""));
                self.hardlink(&parent, &name, source.as_os_str().as_bytes(), &components)?;
            }
            EntryKind::CharDevice | EntryKind::BlockDevice | EntryKind::Fifo => {
                let (major, minor) = meta.device.unwrap_or((0, 0));
                let dev = rustix::fs::makedev(major, minor);
                self.special(&parent, &name, kind, dev, &meta, &components)?;
            }
            EntryKind::Whiteout | EntryKind::Opaque => unreachable!("handled above"),
        }
        if !self.whited_out.is_empty() {
            // The entry replaced a whiteout of this layer, unless it was a device not made
            // (see `Devices`), which left the whiteout in place.
            let path = join(&components);
            if self.whited_out.contains(&path)
                && !rustix::fs::statat(&*parent, &name, AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| is_whiteout_device(&st))
            {
                self.whited_out.remove(&path);
            }
        }
        self.touch(&components);
        Ok(())
    }

    /// Makes room for a new entry: removes what is at `name` unless it is a directory and
    /// `keep_dir`. Returns whether a directory was kept.
    fn replace(&mut self, parent: &OwnedFd, name: &OsStr, keep_dir: bool) -> io::Result<bool> {
        match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(e) => Err(e.into()),
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                if keep_dir {
                    return Ok(true);
                }
                remove_all(parent.as_fd(), name, 0)?;
                self.cache = None;
                Ok(false)
            }
            Ok(_) => {
                rustix::fs::unlinkat(parent, name, AtFlags::empty())?;
                Ok(false)
            }
        }
    }

    fn file<R: Read>(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        entry: &mut tar::Entry<'_, R>,
        meta: &EntryMeta,
        components: &[OsString],
    ) -> Result<()> {
        let path = String::from_utf8_lossy(&join(components)).into_owned();
        let err = entry_err_at(path.clone(), "write");
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        // Created with its final mode when the umask leaves it whole and nothing (set-id
        // bits, a chown that would clear them) needs a later chmod; else 0600 and fchmod.
        let owner_is_me = self
            .owner(meta, components)?
            .is_none_or(|(u, g)| (u.as_raw(), g.as_raw()) == self.me);
        let final_at_open = owner_is_me
            && meta.mode & 0o7000 == 0
            && self.umask.is_some_and(|umask| meta.mode & umask == 0);
        let mode = Mode::from_raw_mode(if final_at_open { meta.mode } else { 0o600 });
        let fd = match rustix::fs::openat(parent, name, flags, mode) {
            Err(rustix::io::Errno::EXIST) => {
                // Replace, never write through: the old file may be hardlinked elsewhere.
                self.replace(parent, name, false).map_err(&err)?;
                rustix::fs::openat(parent, name, flags, mode)
            }
            other => other,
        }
        .map_err(errno_to_io)
        .map_err(&err)?;
        // The file exists now, so every later entry (a hard link to it, a whiteout, a
        // replacement) sees it in order; its contents and metadata are written by the writer
        // thread, on the second core, while this one goes on with the next entries.
        let file = Arc::new(File::from(fd));
        let chown = self.chown_to(meta, true, components)?;
        let mut finish = Some(Finish {
            chown,
            mode: (!final_at_open).then_some(meta.mode),
            xattrs: meta.xattrs.clone(),
            mtime: meta.mtime,
        });
        let mut left = entry.size();
        loop {
            let want = left.min(WRITE_CHUNK as u64);
            let mut data = Vec::with_capacity(want as usize);
            (&mut *entry)
                .take(want)
                .read_to_end(&mut data)
                .map_err(&err)?;
            if (data.len() as u64) < want {
                return Err(err(io::ErrorKind::UnexpectedEof.into()));
            }
            left -= want;
            self.counts.file_bytes += want;
            let job = Job {
                file: Arc::clone(&file),
                data,
                finish: if left == 0 { finish.take() } else { None },
                path: path.clone(),
            };
            self.send(job)?;
            if left == 0 {
                break;
            }
        }
        self.counts.files += 1;
        Ok(())
    }

    /// Queues a job for the writer thread, sent with others once the batch is full.
    fn send(&mut self, job: Job) -> Result<()> {
        self.batch_bytes += job.data.len();
        self.batch.push(job);
        if self.batch_bytes >= BATCH_BYTES || self.batch.len() >= BATCH_JOBS {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends the jobs batched so far; when the writer has stopped, its error is the answer.
    fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let writer = self
            .writer
            .as_ref()
            .expect("the writer runs while entries are read");
        match writer.send(batch) {
            Ok(()) => Ok(()),
            // The writer stopped at an error, which `apply_layer` takes from it.
            Err(_) => Err(Error::Io(io::Error::other("the layer writer stopped"))),
        }
    }

    fn directory(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        meta: &EntryMeta,
        components: &[OsString],
    ) -> Result<()> {
        let err = entry_err(components, "mkdir");
        // Overlay form: a non-directory here was put by this layer, a whiteout device (`.wh.d`,
        // then `d/`) or an entry of the same name. Applied over the lower layers, either
        // removed the lower `d` before this directory was made, so it holds this layer's
        // entries only: opaque, so the lower `d`'s entries stay hidden under it.
        let opaque = self.overlay.is_some()
            && rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) != FileType::Directory);
        let fresh = !self.replace(parent, name, true).map_err(&err)?;
        if fresh {
            rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700))
                .map_err(errno_to_io)
                .map_err(&err)?;
        }
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno_to_io)
        .map_err(&err)?;
        if opaque {
            // Before the owner changes: a `user.*` xattr needs its owner's rights.
            self.set_opaque(fd.as_fd(), components).map_err(&err)?;
        }
        // The mode is set at the end: a directory without write permission must still take
        // the entries that follow it.
        self.set_owner_and_xattrs(fd.as_fd(), fresh, meta, components)?;
        self.dirs.push((components.to_vec(), meta.mode, meta.mtime));
        self.counts.directories += 1;
        Ok(())
    }

    fn hardlink(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        source: &[u8],
        components: &[OsString],
    ) -> Result<()> {
        let err = entry_err(components, "link");
        let source_components = clean_path(source)?;
        let Some(source_name) = source_components.last() else {
            return Err(Error::UnsafeEntry {
                path: String::from_utf8_lossy(&join(components)).into_owned(),
                reason: "a hard link to the root".into(),
            });
        };
        // Overlay form holds this layer alone: a source from a lower layer is not there.
        // image-spec layer.md allows it: "Extracting a layer with hardlink references to
        // files outside of the layer may fail."
        let not_here = |e: io::Error| {
            if self.overlay.is_some() && e.kind() == io::ErrorKind::NotFound {
                err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "the link's source is not in this layer, and a layer in overlay form \
                     cannot link to a lower layer's file without its lower layers",
                ))
            } else {
                err(e)
            }
        };
        if self.whited_out.contains(&join(&source_components)) {
            // A whiteout of this layer: applied over the lower layers, the source is gone.
            return Err(err(io::Error::new(
                io::ErrorKind::NotFound,
                "the link's source was whited out by this layer",
            )));
        }
        let found = self
            .root
            .dir(&source_components[..source_components.len() - 1], false)
            .and_then(|dir| {
                let st = rustix::fs::statat(&dir, source_name, AtFlags::SYMLINK_NOFOLLOW)?;
                Ok((dir, st))
            });
        let (source_parent, st) = match found {
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.lowers_pending => {
                return Err(Error::NeedsLowerLayers {
                    path: String::from_utf8_lossy(&join(&source_components)).into_owned(),
                    reason: "a hard link to a file the layer does not hold",
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && !self.lowers.is_empty() => {
                return self.copy_from_lower(parent, name, &source_components, components);
            }
            other => other.map_err(not_here)?,
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            return Err(Error::UnsafeEntry {
                path: String::from_utf8_lossy(&join(components)).into_owned(),
                reason: "a hard link to a directory".into(),
            });
        }
        if let Ok(existing) = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
            && existing.st_ino == st.st_ino
            && existing.st_dev == st.st_dev
        {
            // Already the same file (a link to itself, or a layer applied twice).
            self.counts.hardlinks += 1;
            return Ok(());
        }
        self.replace(parent, name, false).map_err(&err)?;
        // Without AT_SYMLINK_FOLLOW: a link to a symlink is a link to the symlink itself.
        rustix::fs::linkat(&source_parent, source_name, parent, name, AtFlags::empty())
            .map_err(errno_to_io)
            .map_err(&err)?;
        self.counts.hardlinks += 1;
        Ok(())
    }

    /// Overlay form: a hard link to a lower layer's file, which overlayfs cannot express,
    /// made a copy of that file.
    fn copy_from_lower(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        source: &[OsString],
        components: &[OsString],
    ) -> Result<()> {
        let err = entry_err(components, "link");
        // A second link to the same lower file links to the first one's copy, while it is
        // there: the links of one layer stay one file.
        let source_path = join(source);
        if let Some((copy, ino)) = self.copied.get(&source_path).cloned() {
            let (copy_name, copy_parent) = copy.split_last().expect("copies have a name");
            if let Ok(copy_dir) = self.root.dir(copy_parent, false)
                && rustix::fs::statat(&copy_dir, copy_name, AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| st.st_ino == ino)
            {
                self.replace(parent, name, false).map_err(&err)?;
                rustix::fs::linkat(&copy_dir, copy_name, parent, name, AtFlags::empty())
                    .map_err(errno_to_io)
                    .map_err(&err)?;
                self.counts.hardlinks += 1;
                return Ok(());
            }
        }
        let source_name = source.last().expect("a link's source has a name");
        let Some((dir, st)) = self.find_below(source, false).map_err(&err)? else {
            return Err(err(io::Error::new(
                io::ErrorKind::NotFound,
                "the link's source is in no layer",
            )));
        };
        let file_type = FileType::from_raw_mode(st.st_mode);
        if file_type == FileType::Directory {
            return Err(Error::UnsafeEntry {
                path: String::from_utf8_lossy(&join(components)).into_owned(),
                reason: "a hard link to a directory".into(),
            });
        }
        self.replace(parent, name, false).map_err(&err)?;
        let owner = (st.st_uid != self.me.0 || st.st_gid != self.me.1)
            .then(|| (Uid::from_raw(st.st_uid), Gid::from_raw(st.st_gid)));
        let mtime = rustix::fs::Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec as _,
        };
        match file_type {
            FileType::RegularFile => {
                let from = rustix::fs::openat(
                    &dir,
                    source_name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(errno_to_io)
                .map_err(&err)?;
                let to = rustix::fs::openat(
                    parent,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(errno_to_io)
                .map_err(&err)?;
                let (mut from, mut to) = (File::from(from), File::from(to));
                io::copy(&mut from, &mut to).map_err(&err)?;
                let xattrs = read_xattrs(from.as_fd()).map_err(&err)?;
                self.counts.xattrs_skipped +=
                    set_fd_metadata(to.as_fd(), owner, Some(st.st_mode & 0o7777), &xattrs)
                        .map_err(&err)?;
                rustix::fs::futimens(&to, &times(mtime))
                    .map_err(errno_to_io)
                    .map_err(&err)?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(&dir, source_name, Vec::new())
                    .map_err(errno_to_io)
                    .map_err(&err)?;
                rustix::fs::symlinkat(target.as_c_str(), parent, name)
                    .map_err(errno_to_io)
                    .map_err(&err)?;
            }
            _ => {
                rustix::fs::mknodat(
                    parent,
                    name,
                    file_type,
                    Mode::from_raw_mode(0o600),
                    st.st_rdev,
                )
                .map_err(errno_to_io)
                .map_err(&err)?;
            }
        }
        if file_type != FileType::RegularFile {
            if let Some((uid, gid)) = owner {
                rustix::fs::chownat(
                    parent,
                    name,
                    Some(uid),
                    Some(gid),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(errno_to_io)
                .map_err(&err)?;
            }
            if file_type != FileType::Symlink {
                // Never a symlink: chmodat follows links.
                rustix::fs::chmodat(
                    parent,
                    name,
                    Mode::from_raw_mode(st.st_mode & 0o7777),
                    AtFlags::empty(),
                )
                .map_err(errno_to_io)
                .map_err(&err)?;
            }
            rustix::fs::utimensat(parent, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(errno_to_io)
                .map_err(&err)?;
        }
        let made = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(errno_to_io)
            .map_err(&err)?;
        self.copied
            .insert(source_path, (components.to_vec(), made.st_ino));
        self.counts.hardlinks += 1;
        Ok(())
    }

    /// Overlay form: the entry at `components` (not the root) as a mount of this layer over
    /// [`ApplyOptions::lower_layers`] shows it: its directory, opened in the topmost layer
    /// that has the entry, and its status; `None` when the mount shows nothing there.
    /// Whiteouts and opaque directories (this layer's included) hide what is below them, a
    /// non-directory hides the directories below it, and no symlink is followed.
    /// With `lower_only`, the entry is looked for in the lower layers only (this layer still
    /// hides what it hides on the way).
    fn find_below(
        &self,
        components: &[OsString],
        lower_only: bool,
    ) -> io::Result<Option<(OwnedFd, rustix::fs::Stat)>> {
        let Some(xattrs) = self.overlay else {
            return Ok(None);
        };
        let is_opaque = |fd: &OwnedFd| {
            let mut value = [0u8; 1];
            matches!(rustix::fs::fgetxattr(fd, xattrs.opaque_xattr(), &mut value[..]), Ok(1) if value[0] == b'y')
        };
        // This layer first: what it hides stays hidden. An opaque root hides every lower
        // layer.
        let mut layers = vec![rustix::io::dup(self.root.fd())?];
        if !self.counts.hides_lower_layers {
            for lower in &self.lowers {
                layers.push(rustix::io::dup(lower)?);
            }
        }
        // Which layers the directory at this depth is merged from, top first, and whether
        // it is this layer's.
        let mut merged: Vec<(bool, OwnedFd)> = layers
            .into_iter()
            .enumerate()
            .map(|(i, fd)| (i == 0, fd))
            .collect();
        let (name, parents) = components.split_last().expect("not the root");
        for c in parents {
            let mut next = Vec::new();
            for (own, dir) in &merged {
                let st = match rustix::fs::statat(dir, c, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => st,
                    Err(rustix::io::Errno::NOENT) => continue,
                    Err(e) => return Err(e.into()),
                };
                if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                    // A whiteout, or a non-directory that hides what is below it.
                    break;
                }
                let fd = rustix::fs::openat(
                    dir,
                    c,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let opaque = is_opaque(&fd);
                next.push((*own, fd));
                if opaque {
                    break;
                }
            }
            merged = next;
        }
        for (own, dir) in merged {
            if own && lower_only {
                continue;
            }
            match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if is_whiteout_device(&st) => return Ok(None),
                Ok(st) => return Ok(Some((dir, st))),
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    fn special(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        kind: EntryKind,
        dev: u64,
        meta: &EntryMeta,
        components: &[OsString],
    ) -> Result<()> {
        let err = entry_err(components, "mknod");
        let file_type = match kind {
            EntryKind::CharDevice => FileType::CharacterDevice,
            EntryKind::BlockDevice => FileType::BlockDevice,
            _ => FileType::Fifo,
        };
        let device = file_type != FileType::Fifo;
        if device && self.options.devices == Devices::Skip {
            self.counts.devices_skipped += 1;
            return Ok(());
        }
        self.replace(parent, name, false).map_err(&err)?;
        match rustix::fs::mknodat(parent, name, file_type, Mode::from_raw_mode(0o600), dev) {
            Ok(()) => {}
            Err(rustix::io::Errno::PERM)
                if device && self.options.devices == Devices::CreateOrSkip =>
            {
                self.counts.devices_skipped += 1;
                return Ok(());
            }
            Err(e) => return Err(err(e.into())),
        }
        self.set_path_metadata(parent, name, meta, true, components)?;
        self.counts.special_files += 1;
        Ok(())
    }

    /// Owner, mode, xattrs and times of something that cannot be opened to write (a symlink,
    /// a device, a fifo), by path relative to its parent, never following the last component.
    fn set_path_metadata(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        meta: &EntryMeta,
        chmod: bool,
        components: &[OsString],
    ) -> Result<()> {
        let err = entry_err(components, "set metadata");
        // Just made by us, so already ours: chown only to someone else.
        if let Some((uid, gid)) = self.owner(meta, components)?
            && (uid.as_raw(), gid.as_raw()) != self.me
        {
            rustix::fs::chownat(
                parent,
                name,
                Some(uid),
                Some(gid),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(errno_to_io)
            .map_err(&err)?;
        }
        if chmod {
            // Only for things just made by mknod, never a symlink: chmodat follows links.
            rustix::fs::chmodat(
                parent,
                name,
                Mode::from_raw_mode(meta.mode),
                AtFlags::empty(),
            )
            .map_err(errno_to_io)
            .map_err(&err)?;
        }
        rustix::fs::utimensat(parent, name, &times(meta.mtime), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(errno_to_io)
            .map_err(&err)?;
        Ok(())
    }

    fn owner(&self, meta: &EntryMeta, components: &[OsString]) -> Result<Option<(Uid, Gid)>> {
        let unsafe_id = |what: &str| Error::UnsafeEntry {
            path: String::from_utf8_lossy(&join(components)).into_owned(),
            reason: what.to_owned(),
        };
        let Some(map) = &self.chown else {
            return Ok(None);
        };
        let uid = u32::try_from(meta.uid).map_err(|_| unsafe_id("uid above 2^32"))?;
        let gid = u32::try_from(meta.gid).map_err(|_| unsafe_id("gid above 2^32"))?;
        let (uid, gid) = match map {
            None => (uid, gid),
            Some(m) => (
                map_id(&m.uids, uid)
                    .ok_or_else(|| unsafe_id(&format!("uid {uid} is not mapped")))?,
                map_id(&m.gids, gid)
                    .ok_or_else(|| unsafe_id(&format!("gid {gid} is not mapped")))?,
            ),
        };
        // u32::MAX is -1 to chown(2), "leave unchanged": never a real owner.
        if uid == u32::MAX || gid == u32::MAX {
            return Err(unsafe_id("id 4294967295 is reserved"));
        }
        Ok(Some((Uid::from_raw(uid), Gid::from_raw(gid))))
    }

    /// The owner to give an entry, when it must be changed: `fresh` means made by this call,
    /// so owned by us already.
    fn chown_to(
        &self,
        meta: &EntryMeta,
        fresh: bool,
        components: &[OsString],
    ) -> Result<Option<(Uid, Gid)>> {
        Ok(self
            .owner(meta, components)?
            .filter(|(uid, gid)| !(fresh && (uid.as_raw(), gid.as_raw()) == self.me)))
    }

    /// Owner, mode and xattrs of an open directory (or the root).
    fn set_owner_and_xattrs(
        &mut self,
        fd: BorrowedFd<'_>,
        fresh: bool,
        meta: &EntryMeta,
        components: &[OsString],
    ) -> Result<()> {
        let chown = self.chown_to(meta, fresh, components)?;
        self.counts.xattrs_skipped += set_fd_metadata(fd, chown, None, &meta.xattrs)
            .map_err(entry_err(components, "set metadata"))?;
        Ok(())
    }

    /// A whiteout (`target` is the path it hides) or an opaque marker (`target` is its
    /// directory), as [`classify`] tells them.
    fn whiteout(&mut self, kind: EntryKind, target: &[OsString]) -> Result<()> {
        // Errors name the marker as the layer has it.
        let mut marker = target.to_vec();
        match (kind, marker.last_mut()) {
            (EntryKind::Whiteout, Some(name)) => {
                let mut wh = OsString::from(".wh.");
                wh.push(&*name);
                *name = wh;
            }
            _ => marker.push(OsString::from(".wh..wh..opq")),
        }
        let components = marker.as_slice();
        let err = entry_err(components, "whiteout");
        // Whatever happens, the layer's own entries below were found through old state.
        self.cache = None;
        if kind == EntryKind::Opaque {
            let parent = target;
            if self.overlay.is_some() {
                return self.opaque_marker(parent, components);
            }
            // "indicates that all siblings are hidden in the lower layer" (layer.md): empty
            // the directory of everything a lower layer put there.
            let dir = match self.root.dir(parent, false) {
                Ok(fd) => fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(err(e)),
            };
            let prefix = join(parent);
            self.remove_untouched(&dir, &prefix, 0).map_err(&err)?;
            self.counts.hides_lower_layers |= parent.is_empty();
            self.counts.whiteouts += 1;
            return Ok(());
        }
        let (target, parent) = target.split_last().expect("whiteouts have a name");
        let target = target.as_bytes();
        // "Whiteout files MUST only apply to resources in lower/parent layers" (layer.md).
        let mut target_path = join(parent);
        if !target_path.is_empty() {
            target_path.push(b'/');
        }
        target_path.extend_from_slice(target);
        // "Files that are present in the same layer as a whiteout file can only be hidden by
        // whiteout files in subsequent layers" (layer.md): a name this layer made stays.
        if self.touched.contains(&target_path) {
            self.counts.whiteouts += 1;
            return Ok(());
        }
        if self.overlay.is_some() {
            return self.whiteout_device(parent, target, target_path, components);
        }
        let dir = match self.root.dir(parent, false) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(err(e)),
        };
        remove_all(dir.as_fd(), OsStr::from_bytes(target), 0).map_err(&err)?;
        self.counts.whiteouts += 1;
        Ok(())
    }

    /// Overlay form of `.wh.NAME`: a character device 0/0 named NAME, which overlayfs reads
    /// as "NAME is hidden in every lower layer" (overlayfs.rst: "A whiteout is created as a
    /// character device with 0/0 device number"). Needs `CAP_MKNOD`, or Linux 5.8+, which
    /// lets anyone make this one device.
    fn whiteout_device(
        &mut self,
        parent: &[OsString],
        target: &[u8],
        target_path: Vec<u8>,
        components: &[OsString],
    ) -> Result<()> {
        let err = entry_err(components, "whiteout");
        if self.whited_out.contains(&target_path) || self.hidden_below_opaque(&target_path) {
            // The same whiteout twice, or one below an opaque directory (see `hide_below`).
            self.counts.whiteouts += 1;
            return Ok(());
        }
        if self.below_whiteout(&target_path) {
            // `.wh.d`, then `d/.wh.x`: over the lower layers `d` is gone, and so is `d/x`.
            return Ok(());
        }
        let dir = self.parent(parent).map_err(&err)?;
        let target = OsStr::from_bytes(target);
        // What is there was made by this layer's whiteouts and opaque markers below `target`
        // only (anything else would be in `touched`): the whiteout hides it all, as it
        // removes it all when applied over the lower layers.
        remove_all(dir.as_fd(), target, 0).map_err(&err)?;
        rustix::fs::mknodat(
            &*dir,
            target,
            FileType::CharacterDevice,
            Mode::empty(),
            rustix::fs::makedev(0, 0),
        )
        .map_err(errno_to_io)
        .map_err(&err)?;
        self.whited_out.insert(target_path);
        self.counts.whiteouts += 1;
        Ok(())
    }

    /// Overlay form of `D/.wh..wh..opq`: the xattr `overlay.opaque` = `y` on D, made if this
    /// layer has not made it yet. overlayfs hides the lower layers' entries of an opaque
    /// directory and shows this layer's, as layer.md wants: "Whiteout files MUST only apply
    /// to resources in lower/parent layers".
    fn opaque_marker(&mut self, parent: &[OsString], components: &[OsString]) -> Result<()> {
        let err = entry_err(components, "whiteout");
        if parent.is_empty() {
            // overlayfs never reads the root of a layer as opaque (it is always merged), so
            // the mount cannot hide the lower layers here: the report says that they are
            // hidden, and whoever mounts leaves them out.
            self.counts.hides_lower_layers = true;
            self.hide_below(Vec::new()).map_err(&err)?;
            self.counts.whiteouts += 1;
            return Ok(());
        }
        let path = join(parent);
        if self.whited_out.contains(&path) || self.below_whiteout(&path) {
            // `.wh.d`, then `d/.wh..wh..opq` (or `d/e/.wh..wh..opq`): over the lower layers
            // the whiteout removed `d`, and the marker finds no directory to empty.
            return Ok(());
        }
        let dir = self.parent(parent).map_err(&err)?;
        self.set_opaque(dir.as_fd(), parent).map_err(&err)?;
        self.counts.whiteouts += 1;
        Ok(())
    }

    /// Removes everything under `dir` that this layer did not create, keeping (and
    /// descending into) what it did.
    fn remove_untouched(&self, dir: &OwnedFd, prefix: &[u8], depth: usize) -> io::Result<()> {
        if depth > MAX_PATH_DEPTH {
            return Err(rustix::io::Errno::LOOP.into());
        }
        for name in list_dir(dir)? {
            let mut path = prefix.to_vec();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(name.as_bytes());
            if !self.touched.contains(&path) {
                remove_all(dir.as_fd(), &name, 0)?;
                continue;
            }
            let st = rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW)?;
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                let child = rustix::fs::openat(
                    dir,
                    &name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                self.remove_untouched(&child, &path, depth + 1)?;
            }
        }
        Ok(())
    }

    /// Sets directory modes and times last, deepest first, once nothing more is created in
    /// them (creating an entry changes its directory's mtime).
    fn finish_directories(&mut self) -> Result<()> {
        self.cache = None;
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.0.len()));
        for (components, mode, mtime) in dirs {
            let err = entry_err(&components, "set directory metadata");
            let fd = match self.root.dir(&components, false) {
                Ok(fd) => fd,
                // Removed by a later whiteout or replaced by a file.
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        || e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) =>
                {
                    continue;
                }
                Err(e) => return Err(err(e)),
            };
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
                .map_err(errno_to_io)
                .map_err(&err)?;
            rustix::fs::futimens(&fd, &times(mtime))
                .map_err(errno_to_io)
                .map_err(&err)?;
        }
        Ok(())
    }
}

/// Part of a regular file for the writer thread: its contents from where the last job of
/// the file stopped, and with the last part, its metadata.
struct Job {
    file: Arc<File>,
    data: Vec<u8>,
    finish: Option<Finish>,
    /// The entry's path, for errors.
    path: String,
}

/// What is set on a file once its contents are written.
struct Finish {
    chown: Option<(Uid, Gid)>,
    mode: Option<u32>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    mtime: rustix::fs::Timespec,
}

/// The writer thread: writes file contents and metadata in the order the jobs come (one
/// thread, so the parts of a file stay in order), until the queue closes or a write fails.
/// Returns how many xattrs were skipped.
fn write_files(queue: Receiver<Vec<Job>>) -> Result<u64> {
    let mut skipped = 0;
    for job in queue.into_iter().flatten() {
        let error = |op| {
            let path = job.path.clone();
            move |source| Error::Apply { path, op, source }
        };
        (&*job.file).write_all(&job.data).map_err(error("write"))?;
        if let Some(finish) = job.finish {
            skipped += set_fd_metadata(job.file.as_fd(), finish.chown, finish.mode, &finish.xattrs)
                .map_err(error("set metadata"))?;
            rustix::fs::futimens(&*job.file, &times(finish.mtime))
                .map_err(errno_to_io)
                .map_err(error("set metadata"))?;
        }
    }
    Ok(skipped)
}

/// Owner, then mode (chown clears set-id bits, so the mode comes after), then xattrs, on an
/// open file or directory. Returns how many xattrs the filesystem refused and were skipped.
fn set_fd_metadata(
    fd: BorrowedFd<'_>,
    chown: Option<(Uid, Gid)>,
    mode: Option<u32>,
    xattrs: &[(Vec<u8>, Vec<u8>)],
) -> io::Result<u64> {
    if let Some((uid, gid)) = chown {
        rustix::fs::fchown(fd, Some(uid), Some(gid))?;
    }
    if let Some(mode) = mode {
        rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))?;
    }
    let mut skipped = 0;
    for (name, value) in xattrs {
        match rustix::fs::fsetxattr(
            fd,
            OsStr::from_bytes(name),
            value,
            rustix::fs::XattrFlags::empty(),
        ) {
            Ok(()) => {}
            Err(
                rustix::io::Errno::PERM
                | rustix::io::Errno::NOTSUP
                | rustix::io::Errno::ACCESS
                | rustix::io::Errno::INVAL,
            ) => skipped += 1,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(skipped)
}

/// The extended attributes of an open file, but those overlayfs reads (see
/// [`is_overlay_xattr`]).
fn read_xattrs(fd: BorrowedFd<'_>) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    // XATTR_LIST_MAX and XATTR_SIZE_MAX are both 64 KiB.
    let mut names = vec![0u8; 65536];
    let n = match rustix::fs::flistxattr(fd, &mut names[..]) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => 0,
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    let mut value = vec![0u8; 65536];
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if is_overlay_xattr(name) {
            continue;
        }
        match rustix::fs::fgetxattr(fd, OsStr::from_bytes(name), &mut value[..]) {
            Ok(len) => out.push((name.to_vec(), value[..len].to_vec())),
            // Removed meanwhile.
            Err(rustix::io::Errno::NODATA) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// The umask from `/proc/self/status` (Linux 4.7+), read without changing it (the `umask`
/// call that reads it also sets it, for every thread).
fn read_umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Umask:"))?;
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
}

fn times(mtime: rustix::fs::Timespec) -> Timestamps {
    Timestamps {
        last_access: mtime,
        last_modification: mtime,
    }
}

/// A character device 0/0: what overlayfs reads as a whiteout.
fn is_whiteout_device(st: &rustix::fs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

fn list_dir(dir: &OwnedFd) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_owned());
        }
    }
    Ok(names)
}

/// Removes `name` under `parent`, a whole tree if it is a directory, never following a
/// symlink (a symlink is removed, not what it points to).
fn remove_all(parent: BorrowedFd<'_>, name: &OsStr, depth: usize) -> io::Result<()> {
    if depth > MAX_PATH_DEPTH {
        return Err(rustix::io::Errno::LOOP.into());
    }
    let st = match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        other => other?,
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let dir = rustix::fs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        for child in list_dir(&dir)? {
            remove_all(dir.as_fd(), &child, depth + 1)?;
        }
        rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)?;
    } else {
        rustix::fs::unlinkat(parent, name, AtFlags::empty())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_maps() {
        let ranges = [IdRange {
            container: 0,
            host: 100_000,
            size: 65_536,
        }];
        assert_eq!(map_id(&ranges, 0), Some(100_000));
        assert_eq!(map_id(&ranges, 65_535), Some(165_535));
        assert_eq!(map_id(&ranges, 65_536), None);
    }
}
