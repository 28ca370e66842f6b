//! Reading a layer: the one place where the format rules of image-spec `layer.md` live.
//!
//! - compression, sniffed from the stream's first bytes and checked against the media type;
//! - the uncompressed stream hashed (the diff_id) and bounded, and the compressed input read
//!   to its end so a verifier around it checks all of it;
//! - each tar entry's path cleaned below the root, its PAX records applied, and whiteouts,
//!   opaque markers, AUFS bookkeeping and hard links told apart.
//!
//! [`LayerReader`] is the public streaming reader; [`apply_layer`](crate::apply_layer) and the
//! image view ([`ImageFs`](crate::ImageFs)) read entries through [`classify`], the same rules.

use std::ffi::{OsStr, OsString};
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use oci_spec::image::{Digest, MediaType};

use crate::{Compression, ContentKind, Error, Hasher, MediaTypeExt, Result};

/// Entries deeper than this many path components are refused, which bounds the recursion and
/// the descriptors held when a tree is removed.
pub const MAX_PATH_DEPTH: usize = 512;

/// Buffer for decompression input.
pub(crate) const BUF: usize = 256 * 1024;

/// What an entry of a layer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EntryKind {
    /// A regular file; its content is the entry's content.
    File,
    /// A directory.
    Directory,
    /// A symbolic link; [`EntryMeta::link_target`] is its target, verbatim.
    Symlink,
    /// A hard link to an earlier entry of the layer (or of a lower one):
    /// [`EntryMeta::link_target`] is that entry's path, cleaned like every path. The tar
    /// header gives it no content and a size of 0; the file it names has both.
    Hardlink,
    /// A character device ([`EntryMeta::device`]).
    CharDevice,
    /// A block device ([`EntryMeta::device`]).
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// A whiteout (`DIR/.wh.NAME`): [`EntryMeta::path`] is the path it hides (`DIR/NAME`).
    /// image-spec `layer.md`: "A whiteout file is an empty file with a special filename that
    /// signifies a path should be deleted"; it hides only what lower layers hold.
    Whiteout,
    /// An opaque whiteout (`DIR/.wh..wh..opq`): [`EntryMeta::path`] is the directory (`.` for
    /// the root). `layer.md`: "indicating that all siblings are hidden in the lower layer".
    Opaque,
}

/// An entry's header, with the format rules applied: path cleaned, PAX records read, kind
/// told. Paths are relative to the layer's root, without a leading `/` or `./`; the root
/// itself is `.`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryMeta {
    pub(crate) components: Vec<OsString>,
    pub(crate) path: PathBuf,
    pub(crate) kind: EntryKind,
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    pub(crate) mtime: rustix::fs::Timespec,
    pub(crate) size: u64,
    pub(crate) link: Option<PathBuf>,
    pub(crate) device: Option<(u32, u32)>,
    pub(crate) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl EntryMeta {
    /// The path, relative to the root (`.` for the root itself); for a whiteout the path it
    /// hides, for an opaque marker its directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the entry is.
    pub fn kind(&self) -> EntryKind {
        self.kind
    }

    /// Permission bits, set-id and sticky bits (`0o7777` at most).
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// The owner's uid (PAX `uid` over the ustar field).
    pub fn uid(&self) -> u64 {
        self.uid
    }

    /// The owner's gid (PAX `gid` over the ustar field).
    pub fn gid(&self) -> u64 {
        self.gid
    }

    /// The modification time (PAX `mtime`, with its fraction, over the ustar field).
    pub fn mtime(&self) -> SystemTime {
        let nanos = i128::from(self.mtime.tv_sec) * 1_000_000_000 + i128::from(self.mtime.tv_nsec);
        let magnitude = Duration::new(
            (nanos.unsigned_abs() / 1_000_000_000) as u64,
            (nanos.unsigned_abs() % 1_000_000_000) as u32,
        );
        if nanos >= 0 {
            SystemTime::UNIX_EPOCH + magnitude
        } else {
            SystemTime::UNIX_EPOCH - magnitude
        }
    }

    /// The size of the content: a regular file's length, 0 for everything else (a hard link
    /// included: see [`EntryKind::Hardlink`]).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// A symlink's target (verbatim) or a hard link's source (cleaned, relative to the root).
    pub fn link_target(&self) -> Option<&Path> {
        self.link.as_deref()
    }

    /// A device's major and minor numbers.
    pub fn device(&self) -> Option<(u32, u32)> {
        self.device
    }

    /// Extended attributes (`SCHILY.xattr.NAME` PAX records), names and values as bytes, in
    /// the layer's order.
    pub fn xattrs(&self) -> impl Iterator<Item = (&OsStr, &[u8])> {
        self.xattrs
            .iter()
            .map(|(k, v)| (OsStr::from_bytes(k), v.as_slice()))
    }
}

/// What a whole layer held, once read to its end and verified.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayerSummary {
    /// The digest of the uncompressed tar stream (the diff_id), checked against the expected
    /// one when given.
    pub diff_id: Digest,
    /// The length of the uncompressed tar stream.
    pub uncompressed_size: u64,
    /// The compression found.
    pub compression: Compression,
    /// Entries yielded (AUFS bookkeeping and extension headers not counted).
    pub entries: u64,
    /// Entries without meaning in a layer (AUFS `.wh..wh.*` bookkeeping, tape volume
    /// headers), skipped.
    pub ignored: u64,
}

/// A streaming reader of a layer's entries (a tar stream, maybe gzip or zstd compressed).
///
/// - The compression is found from the first bytes and checked against `media_type` (see
///   [`LayerReader::new`]).
/// - The uncompressed stream is hashed as it is read. When [`entries`](Self::entries) reaches
///   the end, the rest of the stream (tar padding) and of the compressed input are read, the
///   diff_id is checked against [`expect_diff_id`](Self::expect_diff_id), and only then does
///   the iterator end: a wrong diff_id, a truncated stream, or a wrong compressed digest (with
///   a [`VerifyingReader`](crate::VerifyingReader) around the input, as
///   [`ImageSource::open_blob`](crate::ImageSource::open_blob) gives) is its last item, an
///   error. Nothing is verified until then: entries and contents read before the end are
///   not trusted yet, and a reader dropped early reports nothing.
///   [`summary`](Self::summary) is `Some` only after a verified end;
///   [`finish`](Self::finish) reads and verifies what is left.
/// - Memory stays bounded: one entry at a time, its content streamed.
///
/// ```
/// use std::io::Read;
/// use ocikit_image::{EntryKind, LayerReader, oci_spec::image::MediaType};
///
/// let mut tar = tar::Builder::new(Vec::new());
/// for (path, data) in [("etc/hostname", &b"box"[..]), ("etc/.wh.motd", b"")] {
///     let mut h = tar::Header::new_gnu();
///     h.set_size(data.len() as u64);
///     h.set_mode(0o644);
///     (h.set_uid(0), h.set_gid(0), h.set_mtime(0));
///     tar.append_data(&mut h, path, data)?;
/// }
/// let layer = tar.into_inner()?;
///
/// let mut reader = LayerReader::new(&layer[..], &MediaType::ImageLayer)?
///     .expect_diff_id(ocikit_image::sha256(&layer));
/// let mut seen = Vec::new();
/// for entry in reader.entries()? {
///     let mut entry = entry?;
///     let mut content = String::new();
///     entry.read_to_string(&mut content)?;
///     seen.push((entry.meta().path().to_owned(), entry.meta().kind(), content));
/// }
/// assert_eq!(seen[0], ("etc/hostname".into(), EntryKind::File, "box".into()));
/// assert_eq!(seen[1], ("etc/motd".into(), EntryKind::Whiteout, "".into()));
/// assert!(reader.summary().is_some());
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
pub struct LayerReader<R: Read> {
    archive: tar::Archive<Shared<R>>,
    stream: Arc<Mutex<Inflate<R>>>,
    state: State,
}

impl<R: Read> std::fmt::Debug for LayerReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerReader")
            .field("compression", &self.state.compression)
            .field("expected_diff_id", &self.state.expected_diff_id)
            .field("summary", &self.state.summary)
            .finish_non_exhaustive()
    }
}

struct State {
    compression: Compression,
    expected_diff_id: Option<Digest>,
    xattrs: bool,
    started: bool,
    done: bool,
    entries: u64,
    ignored: u64,
    summary: Option<LayerSummary>,
}

impl<R: Read> LayerReader<R> {
    /// Reads the layer `layer`, which its descriptor says is `media_type`.
    ///
    /// The first bytes decide the compression (gzip, zstd, or else a plain tar), and must
    /// agree with a layer media type: a plain tar is accepted under any layer type (Docker
    /// archives store plain tars under gzip types), but a compressed stream under a type
    /// that says another compression (gzip bytes under `tar+zstd`, or under plain `tar`) is
    /// [`Error::CompressionMismatch`]. A type that is not a layer type (an artifact's)
    /// says nothing, and the bytes decide alone.
    pub fn new(layer: R, media_type: &MediaType) -> Result<Self> {
        let (decoder, compression) = Decoder::new(layer, media_type)?;
        let stream = Arc::new(Mutex::new(Inflate {
            inner: Limit {
                inner: decoder,
                left: None,
                limit: None,
            },
            hasher: Hasher::sha256(),
            size: 0,
            finished: None,
        }));
        Ok(LayerReader {
            archive: tar::Archive::new(Shared(Arc::clone(&stream))),
            stream,
            state: State {
                compression,
                expected_diff_id: None,
                xattrs: true,
                started: false,
                done: false,
                entries: 0,
                ignored: 0,
                summary: None,
            },
        })
    }

    /// The diff_id the uncompressed stream must have (the config's `rootfs.diff_ids`);
    /// another one is [`Error::DiffIdMismatch`] at the end. Default none: the diff_id is
    /// computed and reported, not checked.
    pub fn expect_diff_id(mut self, diff_id: Digest) -> Self {
        self.state.expected_diff_id = Some(diff_id);
        self
    }

    /// The most uncompressed bytes the layer may expand to (a guard against decompression
    /// bombs): past it, [`Error::LayerTooLarge`]. Default no limit.
    pub fn max_uncompressed_size(self, limit: Option<u64>) -> Self {
        {
            let mut stream = lock(&self.stream);
            stream.inner.left = limit;
            stream.inner.limit = limit;
        }
        self
    }

    /// Whether extended attributes are read from the PAX records. Default true.
    pub fn xattrs(mut self, xattrs: bool) -> Self {
        self.state.xattrs = xattrs;
        self
    }

    /// The compression found.
    pub fn compression(&self) -> Compression {
        self.state.compression
    }

    /// The entries, in the layer's order. Can be called once; the iterator ends after
    /// verifying the whole layer (see the type's docs), or after its first error.
    pub fn entries(&mut self) -> Result<LayerEntries<'_, R>> {
        if self.state.started {
            return Err(Error::Io(io::Error::other(
                "the entries of a layer can be read once",
            )));
        }
        self.state.started = true;
        let inner = self.archive.entries()?;
        Ok(LayerEntries {
            inner,
            stream: &self.stream,
            state: &mut self.state,
        })
    }

    /// What the layer held, once [`entries`](Self::entries) reached the end and it verified;
    /// `None` before, or after an error.
    pub fn summary(&self) -> Option<&LayerSummary> {
        self.state.summary.as_ref()
    }

    /// Reads what is left of the layer (all of it, when no entry was read; after entries
    /// stopped early, the rest of the stream unparsed) and verifies it.
    pub fn finish(mut self) -> Result<LayerSummary> {
        if let Some(summary) = &self.state.summary {
            return Ok(summary.clone());
        }
        if self.state.done {
            return Err(Error::Io(io::Error::other(
                "the layer's entries ended with an error",
            )));
        }
        if !self.state.started {
            for entry in self.entries()? {
                entry?;
            }
            return self
                .state
                .summary
                .clone()
                .ok_or_else(|| Error::Io(io::Error::other("the layer was not verified")));
        }
        verify(&self.stream, &mut self.state)
    }
}

fn lock<R: Read>(stream: &Mutex<Inflate<R>>) -> MutexGuard<'_, Inflate<R>> {
    // A panic while reading leaves the state as it was: the next read fails or verifies.
    stream.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads the rest of the stream and checks the diff_id; the summary on success.
fn verify<R: Read>(stream: &Mutex<Inflate<R>>, state: &mut State) -> Result<LayerSummary> {
    state.done = true;
    let (diff_id, size) = lock(stream).finish()?;
    check_diff_id(state.expected_diff_id.as_ref(), &diff_id)?;
    let summary = LayerSummary {
        diff_id,
        uncompressed_size: size,
        compression: state.compression,
        entries: state.entries,
        ignored: state.ignored,
    };
    state.summary = Some(summary.clone());
    Ok(summary)
}

/// The diff_id rule: the uncompressed stream's digest is the config's `rootfs.diff_ids`
/// entry.
pub(crate) fn check_diff_id(expected: Option<&Digest>, actual: &Digest) -> Result<()> {
    match expected {
        Some(expected) if expected != actual => Err(Error::DiffIdMismatch {
            expected: expected.clone(),
            actual: actual.clone(),
        }),
        _ => Ok(()),
    }
}

/// The iterator of [`LayerReader::entries`].
pub struct LayerEntries<'a, R: Read> {
    inner: tar::Entries<'a, Shared<R>>,
    stream: &'a Mutex<Inflate<R>>,
    state: &'a mut State,
}

impl<R: Read> std::fmt::Debug for LayerEntries<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerEntries")
            .field("entries", &self.state.entries)
            .finish_non_exhaustive()
    }
}

impl<'a, R: Read> Iterator for LayerEntries<'a, R> {
    type Item = Result<LayerEntry<'a, R>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.state.done {
            return None;
        }
        loop {
            let mut entry = match self.inner.next() {
                None => return verify(self.stream, self.state).err().map(Err),
                Some(Err(e)) => {
                    self.state.done = true;
                    return Some(Err(Error::from(e)));
                }
                Some(Ok(entry)) => entry,
            };
            match classify(&mut entry, self.state.xattrs) {
                Ok(Some(meta)) => {
                    self.state.entries += 1;
                    return Some(Ok(LayerEntry { meta, data: entry }));
                }
                Ok(None) => self.state.ignored += 1,
                Err(e) => {
                    self.state.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// One entry of a layer: its [`EntryMeta`], and its content through [`Read`] (a regular
/// file's bytes; nothing for other kinds). Content not read is skipped when the iterator
/// moves on.
pub struct LayerEntry<'a, R: Read> {
    meta: EntryMeta,
    data: tar::Entry<'a, Shared<R>>,
}

impl<R: Read> std::fmt::Debug for LayerEntry<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerEntry")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

impl<R: Read> LayerEntry<'_, R> {
    /// The entry's header.
    pub fn meta(&self) -> &EntryMeta {
        &self.meta
    }

    /// The entry's header, owned.
    pub fn into_meta(self) -> EntryMeta {
        self.meta
    }
}

impl<R: Read> Read for LayerEntry<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.meta.kind != EntryKind::File {
            return Ok(0);
        }
        self.data.read(buf)
    }
}

/// The decompressed stream, shared by the tar reader and the entries iterator (which reads
/// the rest of it and verifies at the end).
pub(crate) struct Shared<R: Read>(Arc<Mutex<Inflate<R>>>);

impl<R: Read> Read for Shared<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        lock(&self.0).read(buf)
    }
}

/// Decompressed, bounded and hashed.
pub(crate) struct Inflate<R: Read> {
    inner: Limit<Decoder<R>>,
    hasher: Hasher,
    size: u64,
    /// Set once the stream and its input were read to the end and verified.
    finished: Option<Digest>,
}

impl<R: Read> Inflate<R> {
    /// Reads the decompressed stream to its end (hashing it), then the compressed input
    /// after it, so a verifier around the input checks all of it. The diff_id and size.
    fn finish(&mut self) -> Result<(Digest, u64)> {
        if let Some(d) = &self.finished {
            return Ok((d.clone(), self.size));
        }
        io::copy(self, &mut io::sink())?;
        io::copy(self.inner.inner.input_mut(), &mut io::sink())?;
        let digest = std::mem::replace(&mut self.hasher, Hasher::sha256()).finish();
        self.finished = Some(digest.clone());
        Ok((digest, self.size))
    }
}

impl<R: Read> Read for Inflate<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.finished.is_some() {
            return Ok(0);
        }
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                return Err(prefer_verification(e, self.inner.inner.input_mut()));
            }
        };
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// Undecodable bytes are most often bytes that are not the blob: when a verifier wraps the
/// input, reading it to its end says so, which is the better error.
pub(crate) fn prefer_verification<R: Read>(e: io::Error, input: &mut R) -> io::Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        return e;
    }
    match io::copy(input, &mut io::sink()) {
        Err(verify) if verify.get_ref().is_some_and(|inner| inner.is::<Error>()) => verify,
        _ => e,
    }
}

/// The decompressing stage, which can give its input back to be drained.
// One per layer: boxing the gzip state buys nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Decoder<R: Read> {
    Plain(BufReader<Magic<R>>),
    Gzip(flate2::bufread::MultiGzDecoder<BufReader<Magic<R>>>),
    #[cfg(feature = "zstd")]
    Zstd(zstd::stream::read::Decoder<'static, BufReader<Magic<R>>>),
}

/// The first bytes of a stream, read to tell its compression, put back in front of it.
type Magic<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

/// The compression the first bytes of a stream show: gzip (RFC 1952: `1f 8b`), zstd
/// (RFC 8878: `28 b5 2f fd`), or else none.
pub(crate) fn sniff(magic: &[u8]) -> Compression {
    if magic.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// The compression rule: the bytes decide, and must not contradict a layer media type. A
/// plain tar passes under any layer type (docker-archive layers are often stored
/// uncompressed under a gzip type); compressed bytes must be what the type says.
pub(crate) fn check_compression(found: Compression, media_type: &MediaType) -> Result<()> {
    match media_type.kind() {
        ContentKind::Layer { compression, .. }
            if found != Compression::None && found != compression =>
        {
            Err(Error::CompressionMismatch {
                media_type: media_type.clone(),
                found,
            })
        }
        _ => Ok(()),
    }
}

impl<R: Read> Decoder<R> {
    /// Sniffs the compression and checks it against the media type.
    pub(crate) fn new(mut input: R, media_type: &MediaType) -> Result<(Self, Compression)> {
        let mut magic = Vec::with_capacity(4);
        (&mut input).take(4).read_to_end(&mut magic)?;
        let compression = sniff(&magic);
        check_compression(compression, media_type)?;
        let buffered = BufReader::with_capacity(BUF, io::Cursor::new(magic).chain(input));
        let decoder = match compression {
            Compression::Gzip => Decoder::Gzip(flate2::bufread::MultiGzDecoder::new(buffered)),
            #[cfg(feature = "zstd")]
            Compression::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::with_buffer(buffered)?),
            #[cfg(not(feature = "zstd"))]
            Compression::Zstd => {
                return Err(Error::UnsupportedCompression(
                    "zstd (the `zstd` feature of ocikit-image is off)".into(),
                ));
            }
            _ => Decoder::Plain(buffered),
        };
        Ok((decoder, compression))
    }

    /// The compressed input, for reading what is after the compressed stream. What the
    /// decoder buffered was read from the input already (and hashed by a verifier around it).
    pub(crate) fn input_mut(&mut self) -> &mut R {
        let buffered = match self {
            Decoder::Plain(b) => b,
            Decoder::Gzip(g) => g.get_mut(),
            #[cfg(feature = "zstd")]
            Decoder::Zstd(z) => z.get_mut(),
        };
        buffered.get_mut().get_mut().1
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            #[cfg(feature = "zstd")]
            Decoder::Zstd(r) => r.read(buf),
        }
    }
}

/// Fails once more than `limit` bytes come through.
pub(crate) struct Limit<R> {
    pub(crate) inner: R,
    pub(crate) left: Option<u64>,
    pub(crate) limit: Option<u64>,
}

impl<R: Read> Read for Limit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(left) = &mut self.left {
            match left.checked_sub(n as u64) {
                Some(l) => *left = l,
                None => {
                    return Err(Error::LayerTooLarge {
                        limit: self.limit.unwrap_or_default(),
                    }
                    .into_io());
                }
            }
        }
        Ok(n)
    }
}

/// Lexically cleans an entry path into components below the root. Leading `/` and `./` are
/// dropped (tar archives carry both forms); `..` that would climb above the root is refused.
pub(crate) fn clean_path(raw: &[u8]) -> Result<Vec<OsString>> {
    let shown = || String::from_utf8_lossy(raw).into_owned();
    if raw.contains(&0) {
        return Err(Error::UnsafeEntry {
            path: shown(),
            reason: "the path contains a NUL byte".into(),
        });
    }
    let mut out: Vec<OsString> = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err(Error::UnsafeEntry {
                        path: shown(),
                        reason: "`..` climbs above the root".into(),
                    });
                }
            }
            name => out.push(OsStr::from_bytes(name).to_owned()),
        }
    }
    if out.len() > MAX_PATH_DEPTH {
        return Err(Error::UnsafeEntry {
            path: shown(),
            reason: format!("deeper than {MAX_PATH_DEPTH} components"),
        });
    }
    Ok(out)
}

/// Components joined with `/`.
pub(crate) fn join(components: &[OsString]) -> Vec<u8> {
    let mut v = Vec::new();
    for (i, c) in components.iter().enumerate() {
        if i > 0 {
            v.push(b'/');
        }
        v.extend_from_slice(c.as_bytes());
    }
    v
}

fn path_of(components: &[OsString]) -> PathBuf {
    if components.is_empty() {
        PathBuf::from(".")
    } else {
        PathBuf::from(OsStr::from_bytes(&join(components)))
    }
}

/// Reads one tar entry's header with the format rules applied; `None` for an entry that
/// has no meaning in a layer (extension headers, AUFS bookkeeping, tape volume headers).
///
/// Errors: a path that climbs above the root, is deeper than [`MAX_PATH_DEPTH`] or holds a
/// NUL; a whiteout that names no single entry; a non-directory entry naming the root; a
/// hard link to the root; a broken PAX record.
pub(crate) fn classify<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    want_xattrs: bool,
) -> Result<Option<EntryMeta>> {
    use tar::EntryType as T;
    let raw = entry.path_bytes().into_owned();
    let shown = || String::from_utf8_lossy(&raw).into_owned();
    let mut components = clean_path(&raw)?;
    let tar_kind = entry.header().entry_type();
    let file_kind = match tar_kind {
        T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => return Ok(None),
        T::Regular | T::Continuous => Some(EntryKind::File),
        T::Directory => Some(EntryKind::Directory),
        T::Symlink => Some(EntryKind::Symlink),
        T::Link => Some(EntryKind::Hardlink),
        T::Char => Some(EntryKind::CharDevice),
        T::Block => Some(EntryKind::BlockDevice),
        T::Fifo => Some(EntryKind::Fifo),
        _ => None,
    };
    let kind = match components.last().map(|n| n.as_bytes()) {
        // The root itself (`./`): only its metadata can change.
        None if tar_kind.is_dir() => EntryKind::Directory,
        None => {
            return Err(Error::UnsafeEntry {
                path: shown(),
                reason: "a non-directory entry names the root".into(),
            });
        }
        // "An opaque whiteout entry is a file with the name `.wh..wh..opq`" (layer.md).
        Some(b".wh..wh..opq") => {
            components.pop();
            EntryKind::Opaque
        }
        // AUFS bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`): not content.
        Some(name) if name.starts_with(b".wh..wh.") => return Ok(None),
        // "Whiteout files ... prefixed with `.wh.`" (layer.md).
        Some(name) if name.starts_with(b".wh.") => {
            let target = &name[b".wh.".len()..];
            if target.is_empty() || target == b"." || target == b".." {
                return Err(Error::UnsafeEntry {
                    path: shown(),
                    reason: "a whiteout that names no single entry".into(),
                });
            }
            let target = OsStr::from_bytes(target).to_owned();
            *components.last_mut().expect("a name") = target;
            EntryKind::Whiteout
        }
        // Entries of types that have no meaning in a layer (tape volume headers and the
        // like).
        _ => match file_kind {
            Some(kind) => kind,
            None => return Ok(None),
        },
    };
    if matches!(kind, EntryKind::Whiteout | EntryKind::Opaque) {
        // A marker's own header says nothing (tools leave its numeric fields empty).
        return Ok(Some(EntryMeta {
            path: path_of(&components),
            components,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            size: 0,
            link: None,
            device: None,
            xattrs: Vec::new(),
        }));
    }
    let meta_err = |source: io::Error| Error::Apply {
        path: shown(),
        op: "read",
        source,
    };
    let h = entry.header();
    let mut meta = EntryMeta {
        path: path_of(&components),
        components,
        kind,
        mode: h.mode().map_err(meta_err)? & 0o7777,
        uid: h.uid().map_err(meta_err)?,
        gid: h.gid().map_err(meta_err)?,
        mtime: rustix::fs::Timespec {
            tv_sec: i64::try_from(h.mtime().map_err(meta_err)?).unwrap_or(i64::MAX),
            tv_nsec: 0,
        },
        size: if kind == EntryKind::File {
            entry.size()
        } else {
            0
        },
        link: None,
        device: None,
        xattrs: Vec::new(),
    };
    match kind {
        EntryKind::Symlink => {
            let target = entry.link_name_bytes().unwrap_or_default();
            meta.link = Some(PathBuf::from(OsStr::from_bytes(&target)));
        }
        EntryKind::Hardlink => {
            let source = entry.link_name_bytes().unwrap_or_default();
            let source = clean_path(&source)?;
            if source.is_empty() {
                return Err(Error::UnsafeEntry {
                    path: shown(),
                    reason: "a hard link to the root".into(),
                });
            }
            meta.link = Some(path_of(&source));
        }
        EntryKind::CharDevice | EntryKind::BlockDevice => {
            let h = entry.header();
            meta.device = Some((
                h.device_major().ok().flatten().unwrap_or(0),
                h.device_minor().ok().flatten().unwrap_or(0),
            ));
        }
        _ => {}
    }
    if let Some(pax) = entry.pax_extensions().map_err(meta_err)? {
        for ext in pax {
            let ext = ext.map_err(meta_err)?;
            let key = ext.key_bytes();
            let value = ext.value_bytes();
            match key {
                b"uid" => meta.uid = parse_decimal(value).map_err(meta_err)?,
                b"gid" => meta.gid = parse_decimal(value).map_err(meta_err)?,
                b"mtime" => meta.mtime = parse_pax_time(value).map_err(meta_err)?,
                _ if want_xattrs && key.starts_with(b"SCHILY.xattr.") => meta
                    .xattrs
                    .push((key[b"SCHILY.xattr.".len()..].to_vec(), value.to_vec())),
                _ => {}
            }
        }
    }
    Ok(Some(meta))
}

fn bad_pax(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("invalid PAX {what}"))
}

fn parse_decimal(v: &[u8]) -> io::Result<u64> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad_pax("number"))
}

/// PAX times are decimal seconds with an optional fraction, maybe negative.
pub(crate) fn parse_pax_time(v: &[u8]) -> io::Result<rustix::fs::Timespec> {
    let s = std::str::from_utf8(v).map_err(|_| bad_pax("time"))?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let tv_sec: i64 = secs.parse().map_err(|_| bad_pax("time"))?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_pax("time"));
    }
    let mut nanos: i64 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        nanos += i64::from(b - b'0') * 10i64.pow(8 - i as u32);
    }
    Ok(rustix::fs::Timespec {
        tv_sec,
        tv_nsec: if s.starts_with('-') { -nanos } else { nanos },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        let ok = |p: &str| {
            clean_path(p.as_bytes())
                .unwrap()
                .iter()
                .map(|c| c.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
                .join("/")
        };
        assert_eq!(ok("./a/b"), "a/b");
        assert_eq!(ok("/etc/passwd"), "etc/passwd");
        assert_eq!(ok("a/../b"), "b");
        assert_eq!(ok("a//b/./c/"), "a/b/c");
        assert_eq!(ok("./"), "");
        for bad in ["..", "../x", "a/../../x", "/../etc/passwd"] {
            assert!(
                matches!(clean_path(bad.as_bytes()), Err(Error::UnsafeEntry { .. })),
                "{bad}"
            );
        }
        assert!(clean_path(b"a\0b").is_err());
        let deep = "a/".repeat(MAX_PATH_DEPTH + 1);
        assert!(clean_path(deep.as_bytes()).is_err());
    }

    #[test]
    fn pax_times() {
        let t = parse_pax_time(b"1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 500_000_000));
        let t = parse_pax_time(b"12").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (12, 0));
        let t = parse_pax_time(b"1.123456789999").unwrap();
        assert_eq!(t.tv_nsec, 123_456_789);
        assert!(parse_pax_time(b"x").is_err());
        assert!(parse_pax_time(b"1.x").is_err());
    }

    #[test]
    fn compression_against_media_type() {
        let gz = MediaType::ImageLayerGzip;
        let zst = MediaType::ImageLayerZstd;
        let plain = MediaType::ImageLayer;
        assert!(check_compression(Compression::Gzip, &gz).is_ok());
        assert!(check_compression(Compression::None, &gz).is_ok());
        assert!(check_compression(Compression::Zstd, &zst).is_ok());
        assert!(check_compression(Compression::None, &plain).is_ok());
        for (found, mt) in [
            (Compression::Gzip, &zst),
            (Compression::Zstd, &gz),
            (Compression::Gzip, &plain),
        ] {
            assert!(matches!(
                check_compression(found, mt),
                Err(Error::CompressionMismatch { .. })
            ));
        }
        // An artifact's type says nothing about compression.
        let other = MediaType::Other("application/x-thing".into());
        assert!(check_compression(Compression::Gzip, &other).is_ok());
    }
}
