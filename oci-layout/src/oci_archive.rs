//! OCI archives: a tar of an image layout, as `skopeo copy ... oci-archive:` writes.

use std::collections::HashSet;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ocikit_image::oci_spec::image::{Descriptor, Digest, Platform};
use ocikit_image::{
    AnyManifest, BlobReader, DEFAULT_MAX_DOCUMENT_SIZE, ImageDestination, ImageSource, Index,
    MAX_INDEX_DEPTH, Tag, TagOrDigest, VerifyingReader, select_manifest,
};

use crate::layout::{
    INDEX_FILE, LAYOUT_CONTENT, LAYOUT_FILE, check_layout_bytes, entries_named, named,
    named_entries, pick, pick_for_trait, ref_name,
};
use crate::tarfile::{Section, TarIndex, TarSink};
use crate::{Error, RefName, Result};

fn blob_name(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm(), digest.digest())
}

/// An OCI archive opened for reading, in place: one pass over the tar headers finds every
/// entry, then blobs are read straight from the archive file, verified as they are read.
#[derive(Debug)]
pub struct OciArchive {
    tar: TarIndex,
    index: Index,
    max_document_size: u64,
}

impl OciArchive {
    /// Opens an archive: it must hold `oci-layout` (version 1.0.0) and a valid `index.json`.
    /// A truncated archive is [`Error::InvalidArchive`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let tar = TarIndex::open(path.as_ref())?;
        let layout_file = tar
            .read_small(LAYOUT_FILE, 4096)
            .map_err(|_| Error::NotALayout {
                path: tar.entry_path(LAYOUT_FILE),
                reason: "`oci-layout` is larger than 4096 bytes".into(),
            })?
            .ok_or_else(|| Error::NotALayout {
                path: tar.entry_path(LAYOUT_FILE),
                reason: "the archive has no `oci-layout`".into(),
            })?;
        check_layout_bytes(&layout_file).map_err(|reason| Error::NotALayout {
            path: tar.entry_path(LAYOUT_FILE),
            reason,
        })?;
        let index_path = tar.entry_path(INDEX_FILE);
        let raw = tar
            .read_small(INDEX_FILE, DEFAULT_MAX_DOCUMENT_SIZE)?
            .ok_or_else(|| Error::NotALayout {
                path: index_path.clone(),
                reason: "the archive has no `index.json`".into(),
            })?;
        let index = Index::from_bytes(raw).map_err(Error::doc(&index_path))?;
        Ok(OciArchive {
            tar,
            index,
            max_document_size: DEFAULT_MAX_DOCUMENT_SIZE,
        })
    }

    /// The archive file.
    pub fn path(&self) -> &Path {
        self.tar.path()
    }

    /// The archive's `index.json`.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Every named entry of `index.json`.
    pub fn refs(&self) -> Vec<(RefName, Descriptor)> {
        named_entries(self.index.manifests())
    }

    /// The entries named `name`.
    pub fn resolve_ref(&self, name: &RefName) -> Result<Vec<Descriptor>> {
        let found = entries_named(self.index.manifests(), name.as_str());
        if found.is_empty() {
            return Err(Error::RefNotFound {
                path: self.tar.entry_path(INDEX_FILE),
                name: name.to_string(),
            });
        }
        Ok(found)
    }

    /// The entry `name` names (among several of that name, the best for `platform`), or with
    /// no name the only entry of `index.json`.
    pub fn resolve_top(&self, name: Option<&RefName>, platform: &Platform) -> Result<Descriptor> {
        match name {
            Some(name) => pick(self.resolve_ref(name)?, platform),
            None => only_entry(self.index.manifests(), &self.tar.entry_path(INDEX_FILE)),
        }
    }

    /// Resolves `name` to the image manifest for `platform`, through nested indexes.
    pub fn resolve_manifest(&self, name: &RefName, platform: &Platform) -> Result<Descriptor> {
        let start = pick(self.resolve_ref(name)?, platform)?;
        Ok(descend(self, start, platform)?)
    }

    /// Opens a blob as a stream verified against the descriptor.
    pub fn open_blob(&self, descriptor: &Descriptor) -> Result<VerifyingReader<Section>> {
        let section = self.section(descriptor.digest())?;
        VerifyingReader::for_descriptor(section, descriptor).map_err(Error::Image)
    }

    fn section(&self, digest: &Digest) -> Result<Section> {
        let name = blob_name(digest);
        self.tar.entry(&name).ok_or_else(|| Error::BlobMissing {
            path: self.tar.entry_path(&name),
            digest: digest.clone(),
        })
    }
}

impl crate::Layout {
    /// Imports an OCI archive read from a stream (a pipe, a socket: no seeking), without
    /// unpacking it anywhere but into this layout: each `blobs/<alg>/<hex>` entry is written
    /// with [`Layout::write_blob`](crate::Layout::write_blob), verified against its name, as
    /// it passes; blobs the layout has are skipped. Then the archive's `index.json` entries are
    /// added to this layout's (named entries replace those of the same name and platform;
    /// unnamed ones are listed unless present), and returned.
    ///
    /// The archive must hold `oci-layout` and `index.json`, and every blob its index lists;
    /// otherwise nothing is added to `index.json` (blobs already written stay until GC).
    pub fn import_oci_archive(&self, reader: impl Read) -> Result<Vec<Descriptor>> {
        let origin = PathBuf::from("<stream>");
        let invalid = |reason: String| Error::InvalidArchive {
            path: origin.clone(),
            reason,
        };
        let mut archive = tar::Archive::new(reader);
        let mut index_raw = None;
        let mut layout_ok = false;
        let entries = archive
            .entries()
            .map_err(|e| invalid(format!("cannot read: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| invalid(format!("truncated or corrupt: {e}")))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry
                .path()
                .map_err(|e| invalid(format!("bad entry name: {e}")))?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_owned();
            let size = entry.size();
            match name.as_str() {
                LAYOUT_FILE => {
                    let raw = ocikit_image::read_capped(
                        &mut entry,
                        4096,
                        ocikit_image::DocumentKind::Index,
                    )
                    .map_err(|e| invalid(e.to_string()))?;
                    check_layout_bytes(&raw).map_err(|reason| Error::NotALayout {
                        path: origin.join(LAYOUT_FILE),
                        reason,
                    })?;
                    layout_ok = true;
                }
                INDEX_FILE => {
                    index_raw = Some(
                        ocikit_image::read_capped(
                            &mut entry,
                            DEFAULT_MAX_DOCUMENT_SIZE,
                            ocikit_image::DocumentKind::Index,
                        )
                        .map_err(Error::doc(&origin.join(INDEX_FILE)))?,
                    );
                }
                _ => {
                    let digest = name
                        .strip_prefix("blobs/")
                        .and_then(|rest| rest.split_once('/'))
                        .and_then(|(alg, hex)| {
                            ocikit_image::parse_digest(&format!("{alg}:{hex}")).ok()
                        });
                    if let Some(digest) = digest {
                        self.write_blob(&mut entry, Some(&digest), Some(size))?;
                    }
                }
            }
        }
        if !layout_ok {
            return Err(Error::NotALayout {
                path: origin.join(LAYOUT_FILE),
                reason: "the archive has no `oci-layout`".into(),
            });
        }
        let raw = index_raw.ok_or_else(|| Error::NotALayout {
            path: origin.join(INDEX_FILE),
            reason: "the archive has no `index.json`".into(),
        })?;
        let index = Index::from_bytes(raw).map_err(Error::doc(&origin.join(INDEX_FILE)))?;
        for d in index.manifests() {
            if !self.has_blob(d.digest())? {
                return Err(Error::BlobMissing {
                    path: origin.join(blob_name(d.digest())),
                    digest: d.digest().clone(),
                });
            }
        }
        let names = index
            .manifests()
            .iter()
            .map(|d| ref_name(d).map(RefName::new).transpose())
            .collect::<Result<Vec<_>>>()?;
        for (d, name) in index.manifests().iter().zip(names) {
            match name {
                Some(name) => self.add_ref(&name, d)?,
                None => self.add_unnamed(d)?,
            }
        }
        Ok(index.manifests().clone())
    }
}

/// The only entry of an index, for references without a name.
pub(crate) fn only_entry(list: &[Descriptor], path: &Path) -> Result<Descriptor> {
    match list {
        [one] => Ok(one.clone()),
        [] => Err(Error::RefNotFound {
            path: path.to_owned(),
            name: String::new(),
        }),
        _ => Err(Error::Unsupported {
            path: path.to_owned(),
            reason: format!(
                "{} images and no name given; name one of: {}",
                list.len(),
                list.iter()
                    .filter_map(ref_name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// From a manifest or index, through nested indexes, to the manifest for `platform`.
pub(crate) fn descend(
    source: &dyn ImageSource,
    start: Descriptor,
    platform: &Platform,
) -> ocikit_image::Result<Descriptor> {
    let mut current = start;
    for _ in 0..=MAX_INDEX_DEPTH {
        match source.fetch_manifest(&current)? {
            AnyManifest::Manifest(_) => return Ok(current),
            AnyManifest::Index(index) => current = select_manifest(&index, platform)?.clone(),
        }
    }
    Err(ocikit_image::Error::Invalid {
        kind: ocikit_image::DocumentKind::Index,
        field: "manifests".into(),
        reason: format!("indexes nested deeper than {MAX_INDEX_DEPTH}"),
    })
}

impl ImageSource for OciArchive {
    fn resolve(&self, reference: &TagOrDigest) -> ocikit_image::Result<Descriptor> {
        let list = self.index.manifests();
        match reference {
            TagOrDigest::Tag(tag) => {
                pick_for_trait(entries_named(list, tag.as_str())).ok_or_else(|| {
                    Error::RefNotFound {
                        path: self.tar.entry_path(INDEX_FILE),
                        name: tag.to_string(),
                    }
                    .into()
                })
            }
            TagOrDigest::Digest(digest) => {
                if let Some(d) = list.iter().find(|d| d.digest() == digest) {
                    let mut d = d.clone();
                    d.set_annotations(None);
                    return Ok(d);
                }
                let mut raw = Vec::new();
                let limit = self.max_document_size;
                VerifyingReader::new(self.section(digest)?, digest.clone(), None)?
                    .take(limit + 1)
                    .read_to_end(&mut raw)?;
                Ok(AnyManifest::from_bytes(raw, None)?.descriptor())
            }
        }
    }

    fn open_blob_unverified(
        &self,
        descriptor: &Descriptor,
    ) -> ocikit_image::Result<BlobReader<'_>> {
        Ok(Box::new(self.section(descriptor.digest())?))
    }

    fn max_document_size(&self) -> u64 {
        self.max_document_size
    }
}

struct OciWriterState {
    sink: TarSink,
    written: HashSet<Digest>,
    entries: Vec<Descriptor>,
    last_manifest: Option<Descriptor>,
}

/// Writes an OCI archive as a stream: each blob goes into the tar as it comes (verified on
/// the way; a blob that fails is cut off again), `index.json` at the end. The archive is
/// written to a temporary file next to its path and renamed into place by
/// [`OciArchiveWriter::finish`]; dropped unfinished, it leaves nothing.
pub struct OciArchiveWriter {
    state: Mutex<OciWriterState>,
}

impl std::fmt::Debug for OciArchiveWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OciArchiveWriter").finish_non_exhaustive()
    }
}

impl OciArchiveWriter {
    /// Starts an archive that will replace `path` when finished.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let mut sink = TarSink::create(path.as_ref())?;
        sink.add(
            LAYOUT_FILE,
            LAYOUT_CONTENT.len() as u64,
            &mut LAYOUT_CONTENT.as_bytes(),
        )?;
        Ok(OciArchiveWriter {
            state: Mutex::new(OciWriterState {
                sink,
                written: HashSet::new(),
                entries: Vec::new(),
                last_manifest: None,
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, OciWriterState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The final path of the archive.
    pub fn path(&self) -> PathBuf {
        self.state().sink.path().to_owned()
    }

    /// Adds a blob, verified against `descriptor`, unless already added.
    pub fn write_blob(&self, descriptor: &Descriptor, data: &mut dyn Read) -> Result<()> {
        let mut state = self.state();
        if state.written.contains(descriptor.digest()) {
            return Ok(());
        }
        let mut verified = VerifyingReader::for_descriptor(data, descriptor)?;
        state.sink.add(
            &blob_name(descriptor.digest()),
            descriptor.size(),
            &mut verified,
        )?;
        state.written.insert(descriptor.digest().clone());
        Ok(())
    }

    /// Names a manifest or index that was added, replacing any entry of that name.
    pub fn set_ref(&self, name: &RefName, descriptor: &Descriptor) -> Result<()> {
        let mut state = self.state();
        if !state.written.contains(descriptor.digest()) {
            return Err(Error::BlobMissing {
                path: state.sink.path().join(blob_name(descriptor.digest())),
                digest: descriptor.digest().clone(),
            });
        }
        state.entries.retain(|d| ref_name(d) != Some(name.as_str()));
        state.entries.push(named(descriptor, name));
        Ok(())
    }

    /// Writes `index.json` and puts the archive in place. When nothing was named, the last
    /// manifest stored (the top of the last copy) is listed without a name, as skopeo does.
    pub fn finish(self) -> Result<()> {
        let mut state = self.state.into_inner().unwrap_or_else(|p| p.into_inner());
        if state.entries.is_empty()
            && let Some(last) = state.last_manifest.take()
        {
            state.entries.push(last);
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": state.entries,
        });
        let raw = serde_json::to_vec(&index).expect("descriptors serialise");
        state
            .sink
            .add(INDEX_FILE, raw.len() as u64, &mut Cursor::new(raw))?;
        state.sink.finish()
    }
}

impl ImageDestination for OciArchiveWriter {
    fn has_blob(&self, descriptor: &Descriptor) -> ocikit_image::Result<bool> {
        Ok(self.state().written.contains(descriptor.digest()))
    }

    fn put_blob(&self, descriptor: &Descriptor, data: &mut dyn Read) -> ocikit_image::Result<()> {
        Ok(self.write_blob(descriptor, data)?)
    }

    fn put_manifest(&self, manifest: &AnyManifest) -> ocikit_image::Result<()> {
        let d = manifest.descriptor();
        self.write_blob(&d, &mut manifest.raw())?;
        self.state().last_manifest = Some(d);
        Ok(())
    }

    fn tag(&self, tag: &Tag, manifest: &AnyManifest) -> ocikit_image::Result<()> {
        let name = RefName::try_from(tag)?;
        self.put_manifest(manifest)?;
        Ok(self.set_ref(&name, &manifest.descriptor())?)
    }
}
