//! The store's metadata: small JSON files, each written once, atomically.

use std::io::Write;
use std::path::{Path, PathBuf};

use oci_spec::image::{ANNOTATION_REF_NAME, Descriptor, Digest};
use serde::{Deserialize, Serialize};

use super::{StoreError, io_err};

/// The most bytes a metadata file may have: they are a few hundred.
const MAX_META: u64 = 1 << 20;

/// `snapshots/<chain>/snapshot.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SnapshotMeta {
    pub(crate) chain_id: Digest,
    pub(crate) diff_id: Digest,
    pub(crate) parent: Option<Digest>,
    pub(crate) layer: Digest,
    /// The uncompressed size of the layer.
    pub(crate) size: u64,
    /// The layer has an opaque marker at its root: no layer below it shows.
    #[serde(default)]
    pub(crate) hides_lower_layers: bool,
}

/// How a container's root filesystem was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RootfsKind {
    /// An overlay mount of the image's snapshots (`merged/`, changes in `upper/`).
    Overlay,
    /// A private copy of the image's filesystem (`rootfs/`).
    Copy,
}

/// `containers/<id>/container.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ContainerMeta {
    pub(crate) id: String,
    /// None: a working container made from scratch (no image below it).
    pub(crate) image: Option<Digest>,
    pub(crate) image_name: String,
    pub(crate) chain_ids: Vec<Digest>,
    pub(crate) rootfs: RootfsKind,
}

impl ContainerMeta {
    pub(crate) fn into_info(self, dir: &Path) -> ContainerInfo {
        let rootfs = dir.join(match self.rootfs {
            RootfsKind::Overlay => "merged",
            RootfsKind::Copy => "rootfs",
        });
        ContainerInfo {
            id: self.id,
            image: self.image,
            image_name: self.image_name,
            chain_ids: self.chain_ids,
            kind: self.rootfs,
            rootfs,
        }
    }
}

/// An image of the store, as [`Store::images`](super::Store::images) lists it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ImageInfo {
    /// Its names (none: stored by digest only).
    pub names: Vec<String>,
    /// Its manifest's digest.
    pub digest: Digest,
    /// The unpacked size of its layers, in bytes.
    pub size: u64,
    /// When it was made, as its configuration says (RFC 3339).
    pub created: Option<String>,
}

/// A container's root filesystem from the store, as
/// [`Store::containers`](super::Store::containers) lists it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ContainerInfo {
    /// The container's id.
    pub id: String,
    /// The image's manifest digest (none: a working container made from scratch).
    pub image: Option<Digest>,
    /// The image as it was named when the root filesystem was made.
    pub image_name: String,
    /// The chain IDs of the snapshots it uses, base first.
    pub chain_ids: Vec<Digest>,
    /// Overlay or copy.
    pub kind: RootfsKind,
    /// The root filesystem's path.
    pub rootfs: PathBuf,
}

/// Writes `value` as JSON to `path` through a temporary file renamed into place.
pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> Result<(), StoreError> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| io_err(path)(e.into()))?;
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io_err(path))
}

/// Reads a metadata file the store wrote.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, StoreError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_META).read_to_end(&mut bytes))
        .map_err(io_err(path))?;
    serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

pub(crate) fn read_snapshot(path: &Path) -> Result<SnapshotMeta, StoreError> {
    read_json(path)
}

/// The `org.opencontainers.image.ref.name` of an index entry.
pub(crate) fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations()
        .as_ref()?
        .get(ANNOTATION_REF_NAME)
        .map(String::as_str)
}
