//! The traits every place an image can live implements: [`ImageSource`] and
//! [`ImageDestination`].
//!
//! A backend (a layout on disk, a registry repository, an archive) implements a small core:
//! resolving a tag, opening stored bytes, storing bytes. Verification, size caps, parsing and
//! platform selection are provided on top of that core, once for every backend, so no backend
//! can forget them. Both traits are dyn-compatible, so one copy routine can take
//! `&dyn ImageSource` and `&dyn ImageDestination`.

use std::io::Read;

use oci_spec::image::{Descriptor, Platform};

use crate::{
    AnyManifest, Config, DEFAULT_MAX_DOCUMENT_SIZE, Error, Index, Manifest, Result, Tag,
    TagOrDigest, VerifyingReader, select_manifest,
};

/// A boxed stream of stored bytes, as backends return them.
pub type BlobReader<'a> = Box<dyn Read + Send + 'a>;

/// How deep nested indexes may go before resolution gives up (an index that names itself,
/// directly or not, would otherwise never end).
pub const MAX_INDEX_DEPTH: usize = 8;

/// A place images can be read from.
///
/// Implement [`resolve`](ImageSource::resolve) and
/// [`open_blob_unverified`](ImageSource::open_blob_unverified) (and
/// [`open_manifest_unverified`](ImageSource::open_manifest_unverified) where manifests are not
/// stored as blobs, as in a registry); everything else is provided and verifies what it reads.
pub trait ImageSource {
    /// Resolves a tag or digest to the descriptor of the manifest or index it names (media
    /// type, digest, size; platform and annotations where the backend records them).
    ///
    /// A missing tag is [`Error::NotFound`].
    fn resolve(&self, reference: &TagOrDigest) -> Result<Descriptor>;

    /// Opens the stored bytes of a blob, without verifying them. Callers should use
    /// [`open_blob`](ImageSource::open_blob).
    fn open_blob_unverified(&self, descriptor: &Descriptor) -> Result<BlobReader<'_>>;

    /// Opens the stored bytes of a manifest or index, without verifying them. The default
    /// reads it as a blob, which is right for content-addressed stores such as a layout.
    fn open_manifest_unverified(&self, descriptor: &Descriptor) -> Result<BlobReader<'_>> {
        self.open_blob_unverified(descriptor)
    }

    /// The largest manifest, index or config this source reads (default
    /// [`DEFAULT_MAX_DOCUMENT_SIZE`]).
    fn max_document_size(&self) -> u64 {
        DEFAULT_MAX_DOCUMENT_SIZE
    }

    /// The manifests that name `subject` as their `subject` (signatures, SBOMs and other
    /// artifacts attached to it): a registry's referrers API, a layout's `index.json`. The
    /// default knows of none.
    fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>> {
        let _ = subject;
        Ok(Vec::new())
    }

    /// Opens a blob as a stream that fails unless it has the descriptor's digest and size.
    fn open_blob(&self, descriptor: &Descriptor) -> Result<VerifyingReader<BlobReader<'_>>> {
        let raw = self.open_blob_unverified(descriptor)?;
        VerifyingReader::for_descriptor(raw, descriptor)
    }

    /// Fetches, verifies and parses the manifest or index `descriptor` names.
    fn fetch_manifest(&self, descriptor: &Descriptor) -> Result<AnyManifest> {
        let raw = self.open_manifest_unverified(descriptor)?;
        AnyManifest::from_descriptor_reader(raw, descriptor, self.max_document_size())
    }

    /// Resolves `reference` and fetches, verifies and parses the manifest or index it names:
    /// [`resolve`](ImageSource::resolve) then [`fetch_manifest`](ImageSource::fetch_manifest).
    /// A registry overrides it with a single `GET`.
    fn resolve_manifest(&self, reference: &TagOrDigest) -> Result<(Descriptor, AnyManifest)> {
        let descriptor = self.resolve(reference)?;
        let manifest = self.fetch_manifest(&descriptor)?;
        Ok((descriptor, manifest))
    }

    /// Fetches, verifies and parses the configuration of `manifest`.
    fn fetch_config(&self, manifest: &Manifest) -> Result<Config> {
        let descriptor = manifest.config();
        let raw = self.open_blob_unverified(descriptor)?;
        Config::from_descriptor_reader(raw, descriptor, self.max_document_size())
    }

    /// Resolves `reference` and, through any indexes, the image for `platform`: the manifest,
    /// its configuration and the indexes passed on the way.
    ///
    /// When the reference names a manifest rather than an index, that manifest is the image,
    /// whatever its platform (as `docker pull` and `skopeo copy` do).
    fn fetch_image(&self, reference: &TagOrDigest, platform: &Platform) -> Result<ResolvedImage> {
        let descriptor = self.resolve(reference)?;
        let top = self.fetch_manifest(&descriptor)?;
        let mut indexes = Vec::new();
        let mut current = top;
        let manifest = loop {
            match current {
                AnyManifest::Manifest(m) => break m,
                AnyManifest::Index(index) => {
                    if indexes.len() >= MAX_INDEX_DEPTH {
                        return Err(Error::invalid(
                            crate::DocumentKind::Index,
                            "manifests",
                            format!("indexes nested deeper than {MAX_INDEX_DEPTH}"),
                        ));
                    }
                    let child = select_manifest(&index, platform)?.clone();
                    current = self.fetch_manifest(&child)?;
                    indexes.push(index);
                }
            }
        };
        let config = self.fetch_config(&manifest)?;
        Ok(ResolvedImage {
            indexes,
            manifest,
            config,
        })
    }
}

/// An image found by [`ImageSource::fetch_image`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ResolvedImage {
    /// The indexes passed from the reference to the manifest, outermost first (empty when the
    /// reference named a manifest).
    pub indexes: Vec<Index>,
    /// The image manifest chosen.
    pub manifest: Manifest,
    /// Its configuration.
    pub config: Config,
}

impl ResolvedImage {
    /// An image reached without an index: `manifest` and its `config`.
    pub fn new(manifest: Manifest, config: Config) -> Self {
        ResolvedImage {
            indexes: Vec::new(),
            manifest,
            config,
        }
    }
}

/// A place images can be written to.
///
/// Implementations must never make content visible before it is verified: a blob or manifest
/// that fails its digest or size check leaves the destination as it was.
pub trait ImageDestination {
    /// True when the destination already has the blob (by digest).
    fn has_blob(&self, descriptor: &Descriptor) -> Result<bool>;

    /// Stores a blob read from `data`, verifying its digest and size before it becomes
    /// visible. A blob that is already there may be skipped without reading `data`.
    fn put_blob(&self, descriptor: &Descriptor, data: &mut dyn Read) -> Result<()>;

    /// Stores a manifest or index by its digest (not tagged).
    fn put_manifest(&self, manifest: &AnyManifest) -> Result<()>;

    /// Points `tag` at a manifest or index (stored by [`put_manifest`](Self::put_manifest)
    /// first, or stored by this call), replacing what the tag named before.
    fn tag(&self, tag: &Tag, manifest: &AnyManifest) -> Result<()>;

    /// Makes a blob of another repository of the same registry available here without
    /// uploading it. `Ok(false)` means the destination cannot or would not, and the caller
    /// uploads instead; this default never mounts.
    fn mount_blob(&self, descriptor: &Descriptor, from_repository: &str) -> Result<bool> {
        let _ = (descriptor, from_repository);
        Ok(false)
    }

    /// Copies one blob from `source` unless this destination has it; the stream is verified
    /// on the way. Returns whether bytes were copied.
    fn copy_blob_from(&self, source: &dyn ImageSource, descriptor: &Descriptor) -> Result<bool> {
        if self.has_blob(descriptor)? {
            return Ok(false);
        }
        let mut reader = source.open_blob(descriptor)?;
        self.put_blob(descriptor, &mut reader)?;
        // A destination that stopped reading early must not have accepted unverified bytes;
        // reading to the end makes the verifier speak.
        reader.finish()?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::io::Cursor;

    use oci_spec::image::{Digest, MediaType};

    use super::*;
    use crate::{parse_platform, sha256};

    /// A test double of a content-addressed store, holding everything in memory.
    #[derive(Default)]
    struct Memory {
        blobs: RefCell<HashMap<Digest, Vec<u8>>>,
        tags: RefCell<HashMap<String, Descriptor>>,
        corrupt: RefCell<Option<Digest>>,
    }

    impl Memory {
        fn add(&self, media_type: MediaType, bytes: &[u8]) -> Descriptor {
            let d = Descriptor::new(media_type, bytes.len() as u64, sha256(bytes));
            self.blobs
                .borrow_mut()
                .insert(d.digest().clone(), bytes.to_vec());
            d
        }
    }

    impl ImageSource for Memory {
        fn resolve(&self, reference: &TagOrDigest) -> Result<Descriptor> {
            self.tags
                .borrow()
                .get(&reference.to_string())
                .cloned()
                .ok_or_else(|| Error::NotFound(reference.to_string()))
        }

        fn open_blob_unverified(&self, d: &Descriptor) -> Result<BlobReader<'_>> {
            let mut bytes = self
                .blobs
                .borrow()
                .get(d.digest())
                .cloned()
                .ok_or_else(|| Error::NotFound(d.digest().to_string()))?;
            if self.corrupt.borrow().as_ref() == Some(d.digest()) {
                bytes[0] ^= 1;
            }
            Ok(Box::new(Cursor::new(bytes)))
        }
    }

    impl ImageDestination for Memory {
        fn has_blob(&self, d: &Descriptor) -> Result<bool> {
            Ok(self.blobs.borrow().contains_key(d.digest()))
        }

        fn put_blob(&self, d: &Descriptor, data: &mut dyn Read) -> Result<()> {
            let mut v = VerifyingReader::for_descriptor(data, d)?;
            let mut bytes = Vec::new();
            v.read_to_end(&mut bytes)?;
            self.blobs.borrow_mut().insert(d.digest().clone(), bytes);
            Ok(())
        }

        fn put_manifest(&self, m: &AnyManifest) -> Result<()> {
            self.blobs
                .borrow_mut()
                .insert(m.digest().clone(), m.raw().to_vec());
            Ok(())
        }

        fn tag(&self, tag: &Tag, m: &AnyManifest) -> Result<()> {
            self.put_manifest(m)?;
            self.tags
                .borrow_mut()
                .insert(tag.to_string(), m.descriptor());
            Ok(())
        }
    }

    fn image(store: &Memory, arch: &str) -> Descriptor {
        let layer = store.add(MediaType::ImageLayerGzip, arch.as_bytes());
        let config = format!(
            r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            sha256(b"x")
        );
        let config = store.add(MediaType::ImageConfig, config.as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config,
            "layers": [layer],
        });
        let mut d = store.add(
            MediaType::ImageManifest,
            &serde_json::to_vec(&manifest).unwrap(),
        );
        d.set_platform(Some(parse_platform(&format!("linux/{arch}")).unwrap()));
        d
    }

    fn multiarch(store: &Memory) {
        let amd = image(store, "amd64");
        let arm = image(store, "arm64");
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [amd, arm]});
        let d = store.add(MediaType::ImageIndex, &serde_json::to_vec(&index).unwrap());
        store.tags.borrow_mut().insert("latest".into(), d);
    }

    #[test]
    fn fetch_image_walks_the_index() {
        let store = Memory::default();
        multiarch(&store);
        let latest: TagOrDigest = "latest".parse().unwrap();
        let img = store
            .fetch_image(&latest, &parse_platform("linux/arm64").unwrap())
            .unwrap();
        assert_eq!(img.indexes.len(), 1);
        assert_eq!(img.config.architecture().to_string(), "arm64");
        let e = store
            .fetch_image(&latest, &parse_platform("linux/riscv64").unwrap())
            .unwrap_err();
        assert!(
            matches!(e, Error::NoMatchingPlatform { ref available, .. } if available.len() == 2)
        );
        let missing: TagOrDigest = "nope".parse().unwrap();
        assert!(matches!(
            store.fetch_image(&missing, &parse_platform("linux/amd64").unwrap()),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn provided_reads_verify() {
        let store = Memory::default();
        let d = image(&store, "amd64");
        let m = match store.fetch_manifest(&d).unwrap() {
            AnyManifest::Manifest(m) => m,
            other => panic!("{other:?}"),
        };
        let layer = m.layers()[0].clone();
        *store.corrupt.borrow_mut() = Some(layer.digest().clone());
        let mut r = store.open_blob(&layer).unwrap();
        let e = Error::from(r.read_to_end(&mut Vec::new()).unwrap_err());
        assert!(matches!(e, Error::DigestMismatch { .. }));
        // A corrupt manifest is refused before it is parsed.
        *store.corrupt.borrow_mut() = Some(d.digest().clone());
        assert!(matches!(
            store.fetch_manifest(&d),
            Err(Error::DigestMismatch { .. })
        ));
    }

    #[test]
    fn self_referencing_index_stops() {
        let store = Memory::default();
        // An index whose only entry is an index that names... an index of the same shape: the
        // chain is finite here but deeper than the limit.
        let mut child = image(&store, "amd64");
        for _ in 0..=MAX_INDEX_DEPTH {
            let index = serde_json::json!({"schemaVersion": 2, "manifests": [child]});
            let mut d = store.add(MediaType::ImageIndex, &serde_json::to_vec(&index).unwrap());
            d.set_platform(Some(parse_platform("linux/amd64").unwrap()));
            child = d;
        }
        store.tags.borrow_mut().insert("deep".into(), child);
        let e = store
            .fetch_image(
                &"deep".parse().unwrap(),
                &parse_platform("linux/amd64").unwrap(),
            )
            .unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
    }

    #[test]
    fn copy_blob_skips_what_exists_and_verifies() {
        let src = Memory::default();
        let dst = Memory::default();
        let d = src.add(MediaType::ImageLayerGzip, b"payload");
        assert!(dst.copy_blob_from(&src, &d).unwrap());
        assert!(!dst.copy_blob_from(&src, &d).unwrap());
        let bad = src.add(MediaType::ImageLayerGzip, b"other");
        *src.corrupt.borrow_mut() = Some(bad.digest().clone());
        assert!(dst.copy_blob_from(&src, &bad).is_err());
        assert!(!dst.has_blob(&bad).unwrap());
    }
}
