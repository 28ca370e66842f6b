//! The image layout directory: blobs, `index.json`, reference names.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use ocikit_image::oci_spec::image::{
    ANNOTATION_REF_NAME, Descriptor, Digest, ImageIndex, Platform,
};
use ocikit_image::{
    AnyManifest, BlobReader, DEFAULT_MAX_DOCUMENT_SIZE, Hasher, ImageDestination, ImageSource,
    Index, MAX_INDEX_DEPTH, Tag, TagOrDigest, VerifyingReader, check_supported, host_platform,
    normalize_platform, select_manifest,
};

use crate::fsutil::{atomic_write, create_temp, durable_rename, mkdirs};
use crate::{Error, RefName, Result};

/// The file that marks a directory as an image layout.
pub(crate) const LAYOUT_FILE: &str = "oci-layout";
/// The top-level index.
pub(crate) const INDEX_FILE: &str = "index.json";
/// The content of `oci-layout` this crate writes and reads.
pub(crate) const LAYOUT_CONTENT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
/// The advisory lock taken around read-modify-write of `index.json` and around GC.
pub const LOCK_FILE: &str = ".ocikit.lock";
/// Where blobs and `index.json` are written before they are renamed into place.
pub const TEMP_DIR: &str = ".ocikit-tmp";
/// An empty top-level index.
const EMPTY_INDEX: &str =
    r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;

/// Buffer size for streaming blobs to disk.
const COPY_BUFFER: usize = 1 << 20;

/// An OCI image layout directory.
///
/// A `Layout` is a path and a few settings; every call reads the directory afresh, so several
/// handles, threads and processes can work on one layout at once (see the crate docs for what
/// is safe).
///
/// ```
/// use ocikit_layout::{Layout, RefName};
/// let dir = tempfile::tempdir()?;
/// let layout = Layout::create(dir.path())?;
/// let (digest, size) = layout.write_blob(&b"hello"[..], None, None)?;
/// assert!(layout.has_blob(&digest)?);
/// assert_eq!(size, 5);
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
    max_document_size: u64,
}

impl Layout {
    /// Opens an existing layout: `oci-layout` must say `{"imageLayoutVersion":"1.0.0"}` and
    /// `index.json` must parse as an image index.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let layout = Layout {
            root: root.as_ref().to_owned(),
            max_document_size: DEFAULT_MAX_DOCUMENT_SIZE,
        };
        layout.check_layout_file()?;
        layout.index()?;
        Ok(layout)
    }

    /// Creates a layout at `root` (and the directory, when missing), or opens the one that is
    /// there. A directory with an `index.json` but no `oci-layout` gets the marker file, when
    /// its index parses.
    pub fn create(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        if root.join(LAYOUT_FILE).exists() {
            return Layout::open(root);
        }
        mkdirs(&root.join("blobs").join("sha256"))?;
        let layout = Layout {
            root: root.to_owned(),
            max_document_size: DEFAULT_MAX_DOCUMENT_SIZE,
        };
        let _lock = layout.lock()?;
        mkdirs(&layout.temp_dir())?;
        if layout.index_path().exists() {
            layout.index()?;
        } else {
            atomic_write(
                &layout.temp_dir(),
                &layout.index_path(),
                EMPTY_INDEX.as_bytes(),
            )?;
        }
        // Written last: a layout is complete once it has its marker.
        atomic_write(
            &layout.temp_dir(),
            &root.join(LAYOUT_FILE),
            LAYOUT_CONTENT.as_bytes(),
        )?;
        Ok(layout)
    }

    /// Sets the largest `index.json`, manifest, index or config read (default
    /// [`DEFAULT_MAX_DOCUMENT_SIZE`], 4 MiB).
    pub fn with_max_document_size(mut self, bytes: u64) -> Self {
        self.max_document_size = bytes;
        self
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of `index.json`.
    pub fn index_path(&self) -> PathBuf {
        self.root.join(INDEX_FILE)
    }

    pub(crate) fn temp_dir(&self) -> PathBuf {
        self.root.join(TEMP_DIR)
    }

    /// The path a blob is stored at: `blobs/<algorithm>/<encoded>`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().to_string())
            .join(digest.digest())
    }

    fn check_layout_file(&self) -> Result<()> {
        let path = self.root.join(LAYOUT_FILE);
        let not = |reason: String| Error::NotALayout {
            path: path.clone(),
            reason,
        };
        let raw = match File::open(&path) {
            Ok(f) => {
                let mut raw = Vec::new();
                f.take(4097)
                    .read_to_end(&mut raw)
                    .map_err(Error::io(&path))?;
                raw
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(not("the file `oci-layout` is missing".into()));
            }
            Err(e) => return Err(Error::io(&path)(e)),
        };
        check_layout_bytes(&raw).map_err(not)
    }

    /// Reads and parses `index.json`.
    pub fn index(&self) -> Result<Index> {
        let path = self.index_path();
        let f = File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::NotALayout {
                    path: path.clone(),
                    reason: "index.json is missing".into(),
                }
            } else {
                Error::io(&path)(e)
            }
        })?;
        Index::from_reader(f, None, self.max_document_size).map_err(Error::doc(&path))
    }

    /// Takes the layout's advisory lock (an exclusive `flock` on [`LOCK_FILE`]), released when
    /// the returned file is dropped. Tools that do not know it are not hindered.
    pub(crate) fn lock(&self) -> Result<File> {
        let path = self.root.join(LOCK_FILE);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(Error::io(&path))?;
        f.lock().map_err(Error::io(&path))?;
        Ok(f)
    }

    // ---- blobs ------------------------------------------------------------------------------

    /// True when `blobs/<alg>/<encoded>` exists. (Its content is checked when read, and by
    /// [`Layout::fsck`].)
    pub fn has_blob(&self, digest: &Digest) -> Result<bool> {
        let path = self.blob_path(digest);
        match fs::metadata(&path) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(path)(e)),
        }
    }

    /// Writes a blob read from `data` and returns its digest and size.
    ///
    /// With `expected`, the stream must have that digest (and `expected_size`, when given),
    /// and a blob that is already there (with that size) is kept without reading `data`.
    /// Without, the sha256 of the stream is computed. The bytes go to a temporary file inside
    /// the layout, which is fsynced and renamed into place only once verified; the directory
    /// is fsynced after. No reader ever sees a partial or wrong blob; a crash leaves at most a
    /// temporary file that [`Layout::gc`] removes.
    pub fn write_blob(
        &self,
        mut data: impl Read,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<(Digest, u64)> {
        if let Some(d) = expected {
            check_supported(d).map_err(Error::Image)?;
            if let Ok(m) = fs::metadata(self.blob_path(d))
                && m.is_file()
                && expected_size.is_none_or(|s| s == m.len())
            {
                return Ok((d.clone(), m.len()));
            }
        }
        let mut writer = self.blob_writer(expected, expected_size)?;
        let mut buf = vec![0u8; COPY_BUFFER];
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(&writer.target)(e)),
            };
            writer.push(&buf[..n])?;
        }
        writer.commit()
    }

    /// A blob written by pushing its bytes ([`Write`]), for a caller that reads the stream
    /// for another purpose too (unpacking a layer as it is stored): the same guarantees as
    /// [`write_blob`](Self::write_blob). The bytes go to a temporary file in the layout;
    /// [`BlobWriter::commit`] verifies them against `expected` and `expected_size` (when
    /// given), then makes the blob visible; dropping the writer without committing removes
    /// the temporary file. A blob that is already there is replaced by an identical one.
    ///
    /// ```
    /// use std::io::Write;
    /// let dir = tempfile::tempdir()?;
    /// let layout = ocikit_layout::Layout::create(dir.path())?;
    /// let digest = ocikit_layout::ocikit_image::sha256(b"hello");
    /// let mut writer = layout.blob_writer(Some(&digest), Some(5))?;
    /// writer.write_all(b"hel")?;
    /// writer.write_all(b"lo")?;
    /// assert_eq!(writer.commit()?, (digest.clone(), 5));
    /// assert!(layout.has_blob(&digest)?);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn blob_writer(
        &self,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<BlobWriter> {
        let hasher = match expected {
            Some(d) => {
                check_supported(d).map_err(Error::Image)?;
                Hasher::new(d.algorithm()).map_err(Error::Image)?
            }
            None => Hasher::sha256(),
        };
        let tmp_dir = self.temp_dir();
        mkdirs(&tmp_dir)?;
        let (file, tmp) = locked_temp(&tmp_dir)?;
        // Mismatches name the blob the stream was meant to become.
        let target = expected.map_or_else(|| tmp.clone(), |d| self.blob_path(d));
        Ok(BlobWriter {
            layout: self.clone(),
            file,
            tmp,
            target,
            hasher,
            size: 0,
            expected: expected.cloned(),
            expected_size,
            committed: false,
        })
    }

    /// Opens a blob as a stream verified against the descriptor's digest and size (local
    /// disk is not trusted either): reading fails at EOF if the content does not match.
    pub fn open_blob(&self, descriptor: &Descriptor) -> Result<VerifyingReader<File>> {
        let f = self.open_blob_file(descriptor.digest())?;
        VerifyingReader::for_descriptor(f, descriptor).map_err(Error::Image)
    }

    /// Opens a blob as a stream verified against its digest only.
    pub fn open_blob_by_digest(&self, digest: &Digest) -> Result<VerifyingReader<File>> {
        let f = self.open_blob_file(digest)?;
        VerifyingReader::new(f, digest.clone(), None).map_err(Error::Image)
    }

    fn open_blob_file(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::BlobMissing {
                    path: path.clone(),
                    digest: digest.clone(),
                }
            } else {
                Error::io(&path)(e)
            }
        })
    }

    /// Reads, verifies and parses the manifest or index `descriptor` names.
    pub fn get_manifest(&self, descriptor: &Descriptor) -> Result<AnyManifest> {
        let f = self.open_blob_file(descriptor.digest())?;
        AnyManifest::from_descriptor_reader(f, descriptor, self.max_document_size)
            .map_err(Error::doc(&self.blob_path(descriptor.digest())))
    }

    /// Stores a manifest or index (its raw bytes) as a blob. Not tagged.
    pub fn put_manifest(&self, manifest: &AnyManifest) -> Result<Descriptor> {
        self.write_blob(
            manifest.raw(),
            Some(manifest.digest()),
            Some(manifest.raw().len() as u64),
        )?;
        Ok(manifest.descriptor())
    }

    // ---- index.json and reference names -----------------------------------------------------

    /// Changes the list of descriptors of `index.json` under the layout's lock and writes the
    /// file again atomically. When `f` fails, nothing is written.
    pub(crate) fn update_index<T>(
        &self,
        f: impl FnOnce(&mut Vec<Descriptor>) -> Result<T>,
    ) -> Result<T> {
        let _lock = self.lock()?;
        let path = self.index_path();
        let mut index = self.index()?;
        let mut manifests = index.manifests().clone();
        let out = f(&mut manifests)?;
        index
            .edit(|i| {
                i.set_manifests(manifests);
            })
            .map_err(Error::doc(&path))?;
        mkdirs(&self.temp_dir())?;
        atomic_write(&self.temp_dir(), &path, index.raw())?;
        Ok(out)
    }

    /// Every named entry of `index.json`, in file order. Entries whose name is not a valid
    /// reference name are left out (and reported by [`Layout::fsck`]).
    pub fn refs(&self) -> Result<Vec<(RefName, Descriptor)>> {
        Ok(named_entries(self.index()?.manifests()))
    }

    /// The entries of `index.json` named `name` (several when they differ by platform).
    pub fn resolve_ref(&self, name: &RefName) -> Result<Vec<Descriptor>> {
        let found: Vec<Descriptor> = self
            .index()?
            .manifests()
            .iter()
            .filter(|d| ref_name(d) == Some(name.as_str()))
            .cloned()
            .collect();
        if found.is_empty() {
            return Err(Error::RefNotFound {
                path: self.index_path(),
                name: name.to_string(),
            });
        }
        Ok(found)
    }

    /// Names the manifest or index `descriptor` describes, replacing every entry of that name.
    /// The blob must be in the layout. `descriptor` is stored as given (with its platform, if
    /// it has one) plus the name annotation.
    pub fn set_ref(&self, name: &RefName, descriptor: &Descriptor) -> Result<()> {
        self.require_blob(descriptor)?;
        let entry = named(descriptor, name);
        self.update_index(|list| {
            list.retain(|d| ref_name(d) != Some(name.as_str()));
            list.push(entry);
            Ok(())
        })
    }

    /// Adds a name to the manifest `descriptor` describes, replacing only the entry of that
    /// name with the same platform (or the one without a platform, when `descriptor` has
    /// none): several manifests can share a name when their platforms differ.
    pub fn add_ref(&self, name: &RefName, descriptor: &Descriptor) -> Result<()> {
        self.require_blob(descriptor)?;
        let entry = named(descriptor, name);
        let platform = descriptor.platform().as_ref().map(normalize_platform);
        self.update_index(|list| {
            list.retain(|d| {
                ref_name(d) != Some(name.as_str())
                    || d.platform().as_ref().map(normalize_platform) != platform
            });
            list.push(entry);
            Ok(())
        })
    }

    /// Removes the entries named `name` (only the one for `platform`, when given) and returns
    /// how many were removed. Blobs stay until [`Layout::gc`].
    pub fn remove_ref(&self, name: &RefName, platform: Option<&Platform>) -> Result<usize> {
        let platform = platform.map(normalize_platform);
        let path = self.index_path();
        self.update_index(|list| {
            let before = list.len();
            list.retain(|d| {
                ref_name(d) != Some(name.as_str())
                    || platform.as_ref().is_some_and(|p| {
                        d.platform().as_ref().map(normalize_platform).as_ref() != Some(p)
                    })
            });
            match before - list.len() {
                0 => Err(Error::RefNotFound {
                    path,
                    name: name.to_string(),
                }),
                n => Ok(n),
            }
        })
    }

    /// Removes every entry of `index.json` (named or not) whose digest is `digest`, and
    /// returns how many were removed (0 when none was). Blobs stay until [`Layout::gc`].
    pub fn remove_digest(&self, digest: &Digest) -> Result<usize> {
        self.update_index(|list| {
            let before = list.len();
            list.retain(|d| d.digest() != digest);
            Ok(before - list.len())
        })
    }

    /// Resolves `name` to the image manifest for `platform`: among the entries of that name
    /// by their platform, then through nested indexes.
    pub fn resolve_manifest(&self, name: &RefName, platform: &Platform) -> Result<Descriptor> {
        let entries = self.resolve_ref(name)?;
        let mut current = pick(entries, platform)?;
        for _ in 0..MAX_INDEX_DEPTH {
            match self.get_manifest(&current)? {
                AnyManifest::Manifest(_) => return Ok(current),
                AnyManifest::Index(index) => {
                    current = select_manifest(&index, platform)
                        .map_err(Error::doc(&self.blob_path(index.digest())))?
                        .clone();
                }
            }
        }
        Err(Error::Document {
            path: self.blob_path(current.digest()),
            source: Box::new(ocikit_image::Error::Invalid {
                kind: ocikit_image::DocumentKind::Index,
                field: "manifests".into(),
                reason: format!("indexes nested deeper than {MAX_INDEX_DEPTH}"),
            }),
        })
    }

    /// Lists `descriptor` in `index.json` without a name (as `skopeo copy` to `oci:DIR` does
    /// without a tag), unless an entry already has its digest; the blob must be there.
    pub fn add_unnamed(&self, descriptor: &Descriptor) -> Result<()> {
        self.require_blob(descriptor)?;
        self.update_index(|list| {
            if !list.iter().any(|d| d.digest() == descriptor.digest()) {
                list.push(descriptor.clone());
            }
            Ok(())
        })
    }

    /// The entry `name` names (among several of that name, the best for `platform`), or with
    /// no name the only entry of `index.json`. Not resolved through indexes: this is what a
    /// copy of `oci:DIR[:NAME]` starts from.
    pub fn resolve_top(&self, name: Option<&RefName>, platform: &Platform) -> Result<Descriptor> {
        match name {
            Some(name) => pick(self.resolve_ref(name)?, platform),
            None => crate::oci_archive::only_entry(self.index()?.manifests(), &self.index_path()),
        }
    }

    fn require_blob(&self, descriptor: &Descriptor) -> Result<()> {
        let path = self.blob_path(descriptor.digest());
        match fs::metadata(&path) {
            Ok(m) if m.is_file() && m.len() == descriptor.size() => Ok(()),
            Ok(m) if m.is_file() => Err(Error::Verification {
                path,
                source: Box::new(ocikit_image::Error::SizeMismatch {
                    expected: descriptor.size(),
                    actual: m.len(),
                }),
            }),
            _ => Err(Error::BlobMissing {
                path,
                digest: descriptor.digest().clone(),
            }),
        }
    }

    /// Finds the descriptor of a manifest by digest: an entry of `index.json` if one has it,
    /// else the blob itself, read to learn its media type.
    fn resolve_digest(&self, digest: &Digest) -> Result<Descriptor> {
        if let Some(d) = self
            .index()?
            .manifests()
            .iter()
            .find(|d| d.digest() == digest)
        {
            let mut d = d.clone();
            d.set_annotations(None);
            return Ok(d);
        }
        let f = self.open_blob_by_digest(digest)?;
        let path = self.blob_path(digest);
        let raw = ocikit_image::read_capped(
            f,
            self.max_document_size,
            ocikit_image::DocumentKind::Manifest,
        )
        .map_err(Error::doc(&path))?;
        let any = AnyManifest::from_bytes(raw, None).map_err(Error::doc(&path))?;
        Ok(any.descriptor())
    }
}

/// A new temporary file for a blob, holding its `flock`: GC removes only temporary files
/// nobody holds. GC may remove the file between its creation and the lock; then the file we
/// hold is no longer the one at the path, and another is made.
fn locked_temp(dir: &Path) -> Result<(File, PathBuf)> {
    use std::os::unix::fs::MetadataExt;
    loop {
        let (file, path) = create_temp(dir, "blob")?;
        file.lock().map_err(Error::io(&path))?;
        let ours = file.metadata().map_err(Error::io(&path))?;
        match fs::metadata(&path) {
            Ok(at_path) if at_path.ino() == ours.ino() && at_path.dev() == ours.dev() => {
                return Ok((file, path));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(path)(e)),
        }
    }
}

/// Checks the content of an `oci-layout` file.
pub(crate) fn check_layout_bytes(raw: &[u8]) -> std::result::Result<(), String> {
    #[derive(serde::Deserialize)]
    struct LayoutFile {
        #[serde(rename = "imageLayoutVersion")]
        version: String,
    }
    if raw.len() > 4096 {
        return Err("`oci-layout` is larger than 4096 bytes".into());
    }
    let parsed: LayoutFile =
        serde_json::from_slice(raw).map_err(|e| format!("`oci-layout` is not valid: {e}"))?;
    if parsed.version != "1.0.0" {
        return Err(format!(
            "imageLayoutVersion is {:?}, only \"1.0.0\" is supported",
            parsed.version
        ));
    }
    Ok(())
}

/// A blob being written: see [`Layout::blob_writer`].
#[derive(Debug)]
pub struct BlobWriter {
    layout: Layout,
    file: File,
    tmp: PathBuf,
    target: PathBuf,
    hasher: Hasher,
    size: u64,
    expected: Option<Digest>,
    expected_size: Option<u64>,
    committed: bool,
}

impl BlobWriter {
    /// Adds `bytes` to the blob. More bytes than the expected size is an error at once.
    pub fn push(&mut self, bytes: &[u8]) -> Result<()> {
        self.size += bytes.len() as u64;
        if let Some(expected) = self.expected_size
            && self.size > expected
        {
            return Err(self.size_mismatch(expected));
        }
        self.hasher.update(bytes);
        self.file.write_all(bytes).map_err(Error::io(&self.tmp))
    }

    /// The bytes pushed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn size_mismatch(&self, expected: u64) -> Error {
        Error::Verification {
            path: self.target.clone(),
            source: Box::new(ocikit_image::Error::SizeMismatch {
                expected,
                actual: self.size,
            }),
        }
    }

    /// Checks the blob against the expected digest and size, makes it durable and visible at
    /// its path, and returns its digest and size. On an error nothing is stored.
    pub fn commit(mut self) -> Result<(Digest, u64)> {
        if let Some(expected) = self.expected_size
            && self.size != expected
        {
            return Err(self.size_mismatch(expected));
        }
        let hasher = std::mem::replace(&mut self.hasher, Hasher::sha256());
        let digest = hasher.finish();
        if let Some(expected) = &self.expected
            && &digest != expected
        {
            return Err(Error::Verification {
                path: self.target.clone(),
                source: Box::new(ocikit_image::Error::DigestMismatch {
                    expected: expected.clone(),
                    actual: digest,
                }),
            });
        }
        self.file.sync_all().map_err(Error::io(&self.tmp))?;
        let path = self.layout.blob_path(&digest);
        if let Some(parent) = path.parent() {
            mkdirs(parent)?;
        }
        durable_rename(&self.tmp, &path)?;
        self.committed = true;
        Ok((digest, self.size))
    }
}

/// Through `Write`, an error of [`BlobWriter::push`] becomes an `io::Error` carrying it.
impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.push(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// The `org.opencontainers.image.ref.name` of an entry.
pub(crate) fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations()
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_REF_NAME))
        .map(String::as_str)
}

/// `descriptor` with the name annotation set.
pub(crate) fn named(descriptor: &Descriptor, name: &RefName) -> Descriptor {
    let mut d = descriptor.clone();
    let mut annotations: HashMap<String, String> = d.annotations().clone().unwrap_or_default();
    annotations.insert(ANNOTATION_REF_NAME.to_owned(), name.to_string());
    d.set_annotations(Some(annotations));
    d
}

pub(crate) fn named_entries(list: &[Descriptor]) -> Vec<(RefName, Descriptor)> {
    list.iter()
        .filter_map(|d| {
            let name = RefName::new(ref_name(d)?).ok()?;
            Some((name, d.clone()))
        })
        .collect()
}

/// Picks among entries of one name by platform: the only one, or the best match.
pub(crate) fn pick(entries: Vec<Descriptor>, platform: &Platform) -> Result<Descriptor> {
    if entries.len() == 1 {
        return Ok(entries.into_iter().next().expect("one entry"));
    }
    let mut index = ImageIndex::default();
    index.set_manifests(entries);
    select_manifest(&index, platform)
        .cloned()
        .map_err(Error::Image)
}

/// The entry a tag resolves to through the traits: the only one of that name, or among
/// several (differing by platform) the one for this host, else the first.
pub(crate) fn pick_for_trait(entries: Vec<Descriptor>) -> Option<Descriptor> {
    let first = entries.first().cloned();
    pick(entries, &host_platform()).ok().or(first)
}

/// Entries of `list` named `name`.
pub(crate) fn entries_named(list: &[Descriptor], name: &str) -> Vec<Descriptor> {
    list.iter()
        .filter(|d| ref_name(d) == Some(name))
        .cloned()
        .collect()
}

impl ImageSource for Layout {
    /// The manifests listed in `index.json` whose `subject` is `subject` (where a layout
    /// keeps referrers, image-spec `image-layout.md`).
    fn referrers(&self, subject: &Descriptor) -> ocikit_image::Result<Vec<Descriptor>> {
        let mut found = Vec::new();
        for d in self.index()?.manifests() {
            if !ocikit_image::MediaTypeExt::is_manifest_like(d.media_type()) {
                continue;
            }
            let doc = self.fetch_manifest(d)?;
            if doc
                .subject()
                .is_some_and(|s| s.digest() == subject.digest())
            {
                let mut d = d.clone();
                if let AnyManifest::Manifest(m) = &doc {
                    d.set_artifact_type(
                        m.artifact_type()
                            .clone()
                            .or_else(|| Some(m.config().media_type().clone())),
                    );
                }
                found.push(d);
            }
        }
        Ok(found)
    }

    fn resolve(&self, reference: &TagOrDigest) -> ocikit_image::Result<Descriptor> {
        match reference {
            TagOrDigest::Tag(tag) => {
                let entries = entries_named(self.index()?.manifests(), tag.as_str());
                pick_for_trait(entries).ok_or_else(|| {
                    Error::RefNotFound {
                        path: self.index_path(),
                        name: tag.to_string(),
                    }
                    .into()
                })
            }
            TagOrDigest::Digest(digest) => Ok(self.resolve_digest(digest)?),
        }
    }

    fn open_blob_unverified(
        &self,
        descriptor: &Descriptor,
    ) -> ocikit_image::Result<BlobReader<'_>> {
        Ok(Box::new(self.open_blob_file(descriptor.digest())?))
    }

    fn max_document_size(&self) -> u64 {
        self.max_document_size
    }
}

impl ImageDestination for Layout {
    fn has_blob(&self, descriptor: &Descriptor) -> ocikit_image::Result<bool> {
        Ok(Layout::has_blob(self, descriptor.digest())?)
    }

    fn put_blob(&self, descriptor: &Descriptor, data: &mut dyn Read) -> ocikit_image::Result<()> {
        self.write_blob(data, Some(descriptor.digest()), Some(descriptor.size()))?;
        Ok(())
    }

    /// Stores the manifest; one with a `subject` is also listed (unnamed) in `index.json`,
    /// where referrers are found in a layout.
    fn put_manifest(&self, manifest: &AnyManifest) -> ocikit_image::Result<()> {
        let d = Layout::put_manifest(self, manifest)?;
        if manifest.subject().is_some() {
            self.add_unnamed(&d)?;
        }
        Ok(())
    }

    /// Reads the source's bytes unverified: [`Layout::write_blob`] verifies them, once, before
    /// the blob becomes visible (the provided method would hash every blob twice).
    fn copy_blob_from(
        &self,
        source: &dyn ImageSource,
        descriptor: &Descriptor,
    ) -> ocikit_image::Result<bool> {
        if ImageDestination::has_blob(self, descriptor)? {
            return Ok(false);
        }
        let mut data = source.open_blob_unverified(descriptor)?;
        self.write_blob(
            &mut data,
            Some(descriptor.digest()),
            Some(descriptor.size()),
        )?;
        Ok(true)
    }

    /// Stores the manifest and names it `tag`, replacing every entry of that name.
    fn tag(&self, tag: &Tag, manifest: &AnyManifest) -> ocikit_image::Result<()> {
        let name = RefName::try_from(tag)?;
        let descriptor = Layout::put_manifest(self, manifest)?;
        self.set_ref(&name, &descriptor)?;
        Ok(())
    }
}
