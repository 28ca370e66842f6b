//! `docker save` archives: `manifest.json` listing each image's config, layers and
//! `RepoTags`, in the legacy form (`<id>/layer.tar`, `<id>.json`) and in the Docker 25+ form
//! (the same `manifest.json` over an OCI layout's `blobs/sha256/<hex>`).

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ocikit_image::oci_spec::image::{Descriptor, Digest, MediaType};
use ocikit_image::{
    AnyManifest, BlobReader, Config, ContentKind, DEFAULT_MAX_DOCUMENT_SIZE, ImageDestination,
    ImageSource, Manifest, MediaTypeExt, Tag, TagOrDigest, VerifyingReader, digest_reader, docker,
    parse_digest, sha256,
};
use serde::{Deserialize, Serialize};

use crate::tarfile::{TarIndex, TarSink};
use crate::{Error, Result};

/// The index file of a docker archive.
const MANIFEST_FILE: &str = "manifest.json";

#[derive(Debug, Deserialize, Serialize)]
struct Entry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// One image of a docker archive.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DockerImage {
    /// Its `RepoTags` (`name:tag`), possibly none.
    pub repo_tags: Vec<String>,
    /// Its manifest: the one the archive stores (Docker 25+ form) when it lists the same
    /// config and layers as `manifest.json`, else a Docker schema 2 manifest made from the
    /// entry, with the digests of the config and layers as stored (gzip layers stay gzip,
    /// tar layers are tar).
    pub manifest: Manifest,
}

/// A docker archive opened for reading, in place.
///
/// A legacy docker archive has no manifests, only configs and layer files; each image is
/// offered as a Docker schema 2 manifest made here (so its digest is not one a registry ever
/// saw), whose config and layers are the archive's files byte for byte. A Docker 25+ archive
/// stores the manifests in an OCI layout beside `manifest.json`; they are used as they are.
#[derive(Debug)]
pub struct DockerArchive {
    tar: TarIndex,
    images: Vec<DockerImage>,
    /// Blob digest to entry name.
    blobs: HashMap<Digest, String>,
}

/// Splits `name:tag` at the tag's colon (not a registry port's).
fn split_repo_tag(s: &str) -> Option<(&str, &str)> {
    let (name, tag) = s.rsplit_once(':')?;
    (!tag.contains('/')).then_some((name, tag))
}

/// `docker.io/library/busybox` and `busybox` are the same repository.
fn normalize_repo(name: &str) -> &str {
    let name = name.strip_prefix("docker.io/").unwrap_or(name);
    name.strip_prefix("library/").unwrap_or(name)
}

fn layer_media_type(head: &[u8]) -> MediaType {
    if head.starts_with(&[0x1f, 0x8b]) {
        MediaType::from(docker::LAYER_GZIP)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        MediaType::ImageLayerZstd
    } else {
        MediaType::from(docker::LAYER)
    }
}

impl DockerArchive {
    /// Opens a docker archive and makes a manifest for each image of its `manifest.json`.
    /// Layers whose digest the archive does not give (legacy `layer.tar` of compressed
    /// content) are hashed once here.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let tar = TarIndex::open(path.as_ref())?;
        let manifest_path = tar.entry_path(MANIFEST_FILE);
        let raw = tar
            .read_small(MANIFEST_FILE, DEFAULT_MAX_DOCUMENT_SIZE)?
            .ok_or_else(|| Error::InvalidArchive {
                path: tar.path().to_owned(),
                reason: "no manifest.json: not a docker archive".into(),
            })?;
        let entries: Vec<Entry> =
            serde_json::from_slice(&raw).map_err(|e| Error::InvalidArchive {
                path: manifest_path.clone(),
                reason: e.to_string(),
            })?;
        let stored = Self::stored_manifests(&tar);
        let mut images = Vec::new();
        let mut blobs = HashMap::new();
        for entry in entries {
            let (made, found) = Self::make_manifest(&tar, &entry)?;
            blobs.extend(found);
            // The archive's own manifest (Docker 25+ form), when it lists the same blobs.
            let same = |m: &&Manifest| {
                m.config().digest() == made.config().digest()
                    && m.layers().len() == made.layers().len()
                    && m.layers()
                        .iter()
                        .zip(made.layers())
                        .all(|(a, b)| a.digest() == b.digest())
            };
            let manifest = stored.iter().find(same).cloned().unwrap_or(made);
            images.push(DockerImage {
                repo_tags: entry.repo_tags.unwrap_or_default(),
                manifest,
            });
        }
        Ok(DockerArchive { tar, images, blobs })
    }

    /// The image manifests an embedded OCI layout lists (through one level of index), each
    /// verified; any that cannot be read is left out (`manifest.json` is what Docker follows).
    fn stored_manifests(tar: &TarIndex) -> Vec<Manifest> {
        let Ok(Some(raw)) = tar.read_small(crate::layout::INDEX_FILE, DEFAULT_MAX_DOCUMENT_SIZE)
        else {
            return Vec::new();
        };
        let Ok(index) = ocikit_image::Index::from_bytes(raw) else {
            return Vec::new();
        };
        let open = |d: &Descriptor| {
            let name = format!("blobs/{}/{}", d.digest().algorithm(), d.digest().digest());
            tar.entry(&name).and_then(|s| {
                AnyManifest::from_descriptor_reader(s, d, DEFAULT_MAX_DOCUMENT_SIZE).ok()
            })
        };
        let mut out = Vec::new();
        for d in index.manifests() {
            match open(d) {
                Some(AnyManifest::Manifest(m)) => out.push(m),
                Some(AnyManifest::Index(inner)) => {
                    for child in inner.manifests() {
                        if let Some(AnyManifest::Manifest(m)) = open(child) {
                            out.push(m);
                        }
                    }
                }
                None => {}
            }
        }
        out
    }

    fn make_manifest(tar: &TarIndex, entry: &Entry) -> Result<(Manifest, Vec<(Digest, String)>)> {
        let missing = |name: &str| Error::InvalidArchive {
            path: tar.path().to_owned(),
            reason: format!("manifest.json names {name}, which the archive does not hold"),
        };
        let config_raw = tar
            .read_small(&entry.config, DEFAULT_MAX_DOCUMENT_SIZE)?
            .ok_or_else(|| missing(&entry.config))?;
        let config_path = tar.entry_path(&entry.config);
        let config = Config::from_bytes_as(config_raw.clone(), &MediaType::from(docker::CONFIG))
            .map_err(Error::doc(&config_path))?;
        let config_digest = sha256(&config_raw);
        let diff_ids = config.diff_ids();
        let mut found = vec![(config_digest.clone(), entry.config.clone())];
        let mut layers = Vec::new();
        for (i, name) in entry.layers.iter().enumerate() {
            let size = tar.size(name).ok_or_else(|| missing(name))?;
            let mut head = [0u8; 4];
            let n = tar
                .entry(name)
                .ok_or_else(|| missing(name))?
                .take(4)
                .read(&mut head)
                .map_err(Error::io(tar.entry_path(name)))?;
            let media_type = layer_media_type(&head[..n]);
            // The digest: from a `blobs/<alg>/<hex>` name, else the diff-id of an
            // uncompressed layer, else the hash of the bytes. (Each is verified when read.)
            let from_name = name
                .strip_prefix("blobs/")
                .and_then(|rest| rest.split_once('/'))
                .and_then(|(alg, hex)| parse_digest(&format!("{alg}:{hex}")).ok());
            let digest = match from_name {
                Some(d) => d,
                None if media_type == MediaType::from(docker::LAYER) && i < diff_ids.len() => {
                    diff_ids[i].clone()
                }
                None => {
                    let section = tar.entry(name).ok_or_else(|| missing(name))?;
                    digest_reader(
                        &ocikit_image::oci_spec::image::DigestAlgorithm::Sha256,
                        section,
                    )
                    .map_err(Error::doc(&tar.entry_path(name)))?
                    .0
                }
            };
            found.push((digest.clone(), name.clone()));
            layers.push(Descriptor::new(media_type, size, digest));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": docker::MANIFEST,
            "config": Descriptor::new(MediaType::from(docker::CONFIG), config_raw.len() as u64, config_digest),
            "layers": layers,
        });
        let manifest = Manifest::from_bytes(serde_json::to_vec(&manifest).expect("serialises"))
            .map_err(Error::doc(&tar.entry_path(MANIFEST_FILE)))?;
        Ok((manifest, found))
    }

    /// The archive file.
    pub fn path(&self) -> &Path {
        self.tar.path()
    }

    /// The images, in `manifest.json` order.
    pub fn images(&self) -> &[DockerImage] {
        &self.images
    }

    /// The image tagged `name:tag` (`docker.io/` and `library/` prefixes do not matter), or
    /// with `None` the only image of the archive.
    pub fn find(&self, repo_tag: Option<&str>) -> Result<&DockerImage> {
        let path = self.tar.entry_path(MANIFEST_FILE);
        let Some(wanted) = repo_tag else {
            return match self.images.as_slice() {
                [one] => Ok(one),
                _ => Err(Error::Unsupported {
                    path,
                    reason: format!(
                        "{} images and no name:tag given; the archive has: {}",
                        self.images.len(),
                        self.images
                            .iter()
                            .flat_map(|i| i.repo_tags.iter().map(String::as_str))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }),
            };
        };
        let norm = |s: &str| split_repo_tag(s).map(|(n, t)| format!("{}:{t}", normalize_repo(n)));
        let wanted_norm = norm(wanted);
        self.images
            .iter()
            .find(|i| {
                i.repo_tags
                    .iter()
                    .any(|t| t == wanted || (wanted_norm.is_some() && norm(t) == wanted_norm))
            })
            .ok_or_else(|| Error::RefNotFound {
                path,
                name: wanted.to_owned(),
            })
    }
}

impl ImageSource for DockerArchive {
    /// A tag resolves to the first image with a `RepoTags` entry of that tag (any
    /// repository); a digest to the manifest made for an image.
    fn resolve(&self, reference: &TagOrDigest) -> ocikit_image::Result<Descriptor> {
        let found = match reference {
            TagOrDigest::Tag(tag) => self.images.iter().find(|i| {
                i.repo_tags
                    .iter()
                    .any(|t| split_repo_tag(t).is_some_and(|(_, t)| t == tag.as_str()))
            }),
            TagOrDigest::Digest(d) => self.images.iter().find(|i| i.manifest.digest() == d),
        };
        found.map(|i| i.manifest.descriptor()).ok_or_else(|| {
            Error::RefNotFound {
                path: self.tar.entry_path(MANIFEST_FILE),
                name: reference.to_string(),
            }
            .into()
        })
    }

    fn open_blob_unverified(
        &self,
        descriptor: &Descriptor,
    ) -> ocikit_image::Result<BlobReader<'_>> {
        let digest = descriptor.digest();
        if let Some(image) = self.images.iter().find(|i| i.manifest.digest() == digest) {
            return Ok(Box::new(Cursor::new(image.manifest.raw().to_vec())));
        }
        let section = self.blobs.get(digest).and_then(|name| self.tar.entry(name));
        match section {
            Some(s) => Ok(Box::new(s)),
            None => Err(Error::BlobMissing {
                path: self.tar.path().to_owned(),
                digest: digest.clone(),
            }
            .into()),
        }
    }
}

/// The layout of a docker archive being written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum DockerArchiveFormat {
    /// Docker 25+: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/<hex>`,
    /// manifests included) with `manifest.json` naming the same blob files. Read by every
    /// `docker load` since 1.10 (which follows `manifest.json`), by skopeo, and as an OCI
    /// archive; manifests keep their digests.
    #[default]
    Oci,
    /// The form skopeo writes: `<hex>.json` configs and `<hex>.tar` layers beside
    /// `manifest.json`; no manifest is stored, so images read back get a Docker manifest.
    Legacy,
}

struct DockerWriterState {
    sink: TarSink,
    written: HashMap<Digest, String>,
    entries: Vec<(Digest, Entry)>,
    /// `index.json` entries (OCI form): manifests stored, with their names.
    index: Vec<Descriptor>,
}

/// Writes a docker archive that `docker load` and `skopeo copy docker-archive:` read, with
/// config and layers stored byte for byte as given (gzip stays gzip; `docker load`
/// decompresses) and `manifest.json` listing each image with its `RepoTags`. See
/// [`DockerArchiveFormat`] for the two layouts; the default is Docker 25+'s.
///
/// OCI and Docker manifests are accepted. Indexes cannot be stored: copy one platform.
pub struct DockerArchiveWriter {
    state: Mutex<DockerWriterState>,
    repository: Option<String>,
    format: DockerArchiveFormat,
}

impl std::fmt::Debug for DockerArchiveWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerArchiveWriter")
            .field("repository", &self.repository)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// `containerd`'s annotation for the full image name, which Docker 25+ writes in `index.json`.
const IMAGE_NAME_ANNOTATION: &str = "io.containerd.image.name";

impl DockerArchiveWriter {
    /// Starts an archive in the Docker 25+ form that will replace `path` when finished. Tags
    /// given to [`ImageDestination::tag`] become `RepoTags` of `repository` (e.g. `busybox`
    /// or `example.com/team/app`); without a repository, tagging is refused.
    pub fn create(path: impl AsRef<Path>, repository: Option<&str>) -> Result<Self> {
        Self::with_format(path, repository, DockerArchiveFormat::Oci)
    }

    /// Like [`DockerArchiveWriter::create`], in the given form.
    pub fn with_format(
        path: impl AsRef<Path>,
        repository: Option<&str>,
        format: DockerArchiveFormat,
    ) -> Result<Self> {
        let mut sink = TarSink::create(path.as_ref())?;
        if format == DockerArchiveFormat::Oci {
            let content = crate::layout::LAYOUT_CONTENT.as_bytes();
            sink.add(
                crate::layout::LAYOUT_FILE,
                content.len() as u64,
                &mut &content[..],
            )?;
        }
        Ok(DockerArchiveWriter {
            state: Mutex::new(DockerWriterState {
                sink,
                written: HashMap::new(),
                entries: Vec::new(),
                index: Vec::new(),
            }),
            repository: repository.map(str::to_owned),
            format,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, DockerWriterState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The final path of the archive.
    pub fn path(&self) -> PathBuf {
        self.state().sink.path().to_owned()
    }

    /// Adds a blob (config, layer, or in the OCI form a manifest), verified against
    /// `descriptor`, unless already added.
    pub fn write_blob(&self, descriptor: &Descriptor, data: &mut dyn Read) -> Result<()> {
        let mut state = self.state();
        let digest = descriptor.digest();
        if state.written.contains_key(digest) {
            return Ok(());
        }
        let name = match (self.format, descriptor.media_type().kind()) {
            (DockerArchiveFormat::Oci, _) => {
                format!("blobs/{}/{}", digest.algorithm(), digest.digest())
            }
            (_, ContentKind::Config) => format!("{}.json", digest.digest()),
            (_, ContentKind::Layer { .. }) => format!("{}.tar", digest.digest()),
            _ => digest.digest().to_owned(),
        };
        let mut verified = VerifyingReader::for_descriptor(data, descriptor)?;
        state.sink.add(&name, descriptor.size(), &mut verified)?;
        state.written.insert(digest.clone(), name);
        Ok(())
    }

    /// Records an image (its config and layers must have been added) with `RepoTags`; in the
    /// OCI form the manifest is stored too and listed in `index.json`.
    pub fn add_image(&self, manifest: &Manifest, repo_tags: &[String]) -> Result<()> {
        if self.format == DockerArchiveFormat::Oci {
            self.write_blob(&manifest.descriptor(), &mut manifest.raw())?;
        }
        let mut state = self.state();
        let path = state.sink.path().to_owned();
        let file_of = |d: &Descriptor| {
            state
                .written
                .get(d.digest())
                .cloned()
                .ok_or_else(|| Error::BlobMissing {
                    path: path.clone(),
                    digest: d.digest().clone(),
                })
        };
        let config = file_of(manifest.config())?;
        let layers = manifest
            .layers()
            .iter()
            .map(file_of)
            .collect::<Result<Vec<_>>>()?;
        // A tag names one image: take it from the others.
        for (_, e) in &mut state.entries {
            if let Some(tags) = &mut e.repo_tags {
                tags.retain(|t| !repo_tags.contains(t));
            }
        }
        if self.format == DockerArchiveFormat::Oci {
            state.index.retain(|d| {
                d.annotations()
                    .as_ref()
                    .and_then(|a| a.get(IMAGE_NAME_ANNOTATION))
                    .is_none_or(|n| !repo_tags.contains(n))
            });
            if repo_tags.is_empty() {
                if !state.index.iter().any(|d| d.digest() == manifest.digest()) {
                    state.index.push(manifest.descriptor());
                }
            } else {
                // An unnamed entry of this manifest gives way to the named ones.
                state
                    .index
                    .retain(|d| d.digest() != manifest.digest() || d.annotations().is_some());
                for repo_tag in repo_tags {
                    let mut d = manifest.descriptor();
                    let mut annotations = HashMap::new();
                    annotations.insert(IMAGE_NAME_ANNOTATION.to_owned(), repo_tag.clone());
                    if let Some((_, tag)) = split_repo_tag(repo_tag) {
                        annotations.insert(
                            ocikit_image::oci_spec::image::ANNOTATION_REF_NAME.to_owned(),
                            tag.to_owned(),
                        );
                    }
                    d.set_annotations(Some(annotations));
                    state.index.push(d);
                }
            }
        }
        if let Some((_, e)) = state
            .entries
            .iter_mut()
            .find(|(d, _)| d == manifest.digest())
        {
            let tags = e.repo_tags.get_or_insert_with(Vec::new);
            tags.extend(repo_tags.iter().cloned());
            return Ok(());
        }
        state.entries.push((
            manifest.digest().clone(),
            Entry {
                config,
                repo_tags: Some(repo_tags.to_vec()),
                layers,
            },
        ));
        Ok(())
    }

    /// Writes `manifest.json` (and in the OCI form `index.json`) and puts the archive in
    /// place.
    pub fn finish(self) -> Result<()> {
        let mut state = self.state.into_inner().unwrap_or_else(|p| p.into_inner());
        let entries: Vec<&Entry> = state.entries.iter().map(|(_, e)| e).collect();
        let raw = serde_json::to_vec(&entries).expect("entries serialise");
        if self.format == DockerArchiveFormat::Oci {
            let index = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": state.index,
            });
            let index = serde_json::to_vec(&index).expect("descriptors serialise");
            state.sink.add(
                crate::layout::INDEX_FILE,
                index.len() as u64,
                &mut Cursor::new(index),
            )?;
        }
        state
            .sink
            .add(MANIFEST_FILE, raw.len() as u64, &mut Cursor::new(raw))?;
        state.sink.finish()
    }

    fn manifest_of<'a>(&self, manifest: &'a AnyManifest) -> Result<&'a Manifest> {
        match manifest {
            AnyManifest::Manifest(m) => Ok(m),
            AnyManifest::Index(_) => Err(Error::Unsupported {
                path: self.path(),
                reason: "a docker archive holds images, not indexes: copy one platform".into(),
            }),
        }
    }
}

impl ImageDestination for DockerArchiveWriter {
    fn has_blob(&self, descriptor: &Descriptor) -> ocikit_image::Result<bool> {
        Ok(self.state().written.contains_key(descriptor.digest()))
    }

    fn put_blob(&self, descriptor: &Descriptor, data: &mut dyn Read) -> ocikit_image::Result<()> {
        Ok(self.write_blob(descriptor, data)?)
    }

    fn put_manifest(&self, manifest: &AnyManifest) -> ocikit_image::Result<()> {
        let m = self.manifest_of(manifest)?;
        Ok(self.add_image(m, &[])?)
    }

    fn tag(&self, tag: &Tag, manifest: &AnyManifest) -> ocikit_image::Result<()> {
        let m = self.manifest_of(manifest)?;
        let Some(repo) = &self.repository else {
            return Err(Error::Unsupported {
                path: self.path(),
                reason: format!("cannot tag {tag}: the archive was given no repository name"),
            }
            .into());
        };
        Ok(self.add_image(m, &[format!("{repo}:{tag}")])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_tags_split_at_the_tag_colon() {
        assert_eq!(split_repo_tag("busybox:1.36"), Some(("busybox", "1.36")));
        assert_eq!(
            split_repo_tag("example.com:5000/app:v1"),
            Some(("example.com:5000/app", "v1"))
        );
        assert_eq!(split_repo_tag("example.com:5000/app"), None);
        assert_eq!(normalize_repo("docker.io/library/busybox"), "busybox");
        assert_eq!(normalize_repo("docker.io/example/app"), "example/app");
    }

    #[test]
    fn layer_types_from_magic() {
        assert_eq!(
            layer_media_type(&[0x1f, 0x8b, 8, 0]).to_string(),
            docker::LAYER_GZIP
        );
        assert_eq!(layer_media_type(b"usta").to_string(), docker::LAYER);
        assert_eq!(
            layer_media_type(&[0x28, 0xb5, 0x2f, 0xfd]),
            MediaType::ImageLayerZstd
        );
    }
}
