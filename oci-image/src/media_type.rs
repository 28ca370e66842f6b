//! Media types of the OCI image-spec and of Docker image manifest v2 schema 2.
//!
//! [`MediaType`] (from `oci_spec`) already names the OCI types and keeps any other verbatim in
//! [`MediaType::Other`]. [`MediaTypeExt`] adds what a copier or an unpacker needs: what kind of
//! content a type names ([`ContentKind`]), in which family ([`Format`]), with which
//! compression, and the equivalent type in the other family.

use oci_spec::image::MediaType;

/// Media type strings that `oci_spec`'s [`MediaType`] has no variant for.
pub mod docker {
    /// Docker image manifest, schema 2.
    pub const MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list (the Docker form of an index).
    pub const MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker image configuration.
    pub const CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// Docker layer, gzip-compressed tar.
    pub const LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// Docker layer, uncompressed tar (rare, but written by some tools).
    pub const LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    /// Docker "foreign" layer: gzip tar that registries need not store (Windows base layers).
    pub const FOREIGN_LAYER_GZIP: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    /// Docker image manifest, schema 1 (unsigned). Refused by this crate.
    pub const MANIFEST_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    /// Docker image manifest, schema 1, signed (JWS). Refused by this crate.
    pub const MANIFEST_V1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";
}

/// The family a media type belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// The OCI image-spec (`application/vnd.oci.*`).
    Oci,
    /// Docker image manifest v2 schema 2 (`application/vnd.docker.*`).
    Docker,
}

/// How a layer's tar stream is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip (RFC 1952).
    Gzip,
    /// zstd (RFC 8878).
    Zstd,
}

/// What a media type says the content is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ContentKind {
    /// An image manifest (OCI or Docker schema 2).
    Manifest,
    /// An image index or Docker manifest list.
    Index,
    /// An image configuration.
    Config,
    /// A filesystem layer.
    Layer {
        /// The compression of the tar stream.
        compression: Compression,
        /// False for OCI non-distributable and Docker foreign layers, which registries and
        /// copies may leave out.
        distributable: bool,
    },
    /// The empty JSON descriptor content `{}` (`application/vnd.oci.empty.v1+json`).
    Empty,
    /// A Docker schema 1 manifest, which is not supported.
    ManifestV1,
    /// Anything else: artifact payloads, signatures, and types no spec lists.
    Other,
}

/// Classification and conversion of [`MediaType`]s, for OCI and Docker schema 2 types alike.
///
/// ```
/// use ocikit_image::{Compression, ContentKind, Format, MediaTypeExt};
/// use oci_spec::image::MediaType;
///
/// let docker = MediaType::from("application/vnd.docker.image.rootfs.diff.tar.gzip");
/// assert_eq!(docker.format(), Some(Format::Docker));
/// assert_eq!(docker.compression(), Some(Compression::Gzip));
/// assert_eq!(docker.to_oci(), MediaType::ImageLayerGzip);
/// assert_eq!(MediaType::ImageLayerGzip.to_docker(), Some(docker));
/// assert_eq!(MediaType::ImageIndex.kind(), ContentKind::Index);
/// ```
pub trait MediaTypeExt {
    /// What the type says the content is.
    fn kind(&self) -> ContentKind;

    /// The family of the type; `None` for types of neither.
    fn format(&self) -> Option<Format>;

    /// The compression of a layer type; `None` for anything that is not a layer.
    fn compression(&self) -> Option<Compression> {
        match self.kind() {
            ContentKind::Layer { compression, .. } => Some(compression),
            _ => None,
        }
    }

    /// True for manifests and indexes: what a registry serves from `/manifests/`.
    fn is_manifest_like(&self) -> bool {
        matches!(self.kind(), ContentKind::Manifest | ContentKind::Index)
    }

    /// The OCI type for the same content; a type with no Docker counterpart is returned as is.
    fn to_oci(&self) -> MediaType;

    /// The Docker schema 2 type for the same content, or `None` when Docker has none (zstd
    /// layers, the empty descriptor, artifacts).
    fn to_docker(&self) -> Option<MediaType>;
}

impl MediaTypeExt for MediaType {
    fn kind(&self) -> ContentKind {
        use Compression::{Gzip, None as Plain, Zstd};
        let layer = |compression, distributable| ContentKind::Layer {
            compression,
            distributable,
        };
        match self {
            MediaType::ImageManifest => ContentKind::Manifest,
            MediaType::ImageIndex => ContentKind::Index,
            MediaType::ImageConfig => ContentKind::Config,
            MediaType::ImageLayer => layer(Plain, true),
            MediaType::ImageLayerGzip => layer(Gzip, true),
            MediaType::ImageLayerZstd => layer(Zstd, true),
            MediaType::ImageLayerNonDistributable => layer(Plain, false),
            MediaType::ImageLayerNonDistributableGzip => layer(Gzip, false),
            MediaType::ImageLayerNonDistributableZstd => layer(Zstd, false),
            MediaType::EmptyJSON => ContentKind::Empty,
            MediaType::Other(s) => match s.as_str() {
                docker::MANIFEST => ContentKind::Manifest,
                docker::MANIFEST_LIST => ContentKind::Index,
                docker::CONFIG => ContentKind::Config,
                docker::LAYER_GZIP => layer(Gzip, true),
                docker::LAYER => layer(Plain, true),
                docker::FOREIGN_LAYER_GZIP => layer(Gzip, false),
                docker::MANIFEST_V1 | docker::MANIFEST_V1_SIGNED => ContentKind::ManifestV1,
                _ => ContentKind::Other,
            },
            _ => ContentKind::Other,
        }
    }

    fn format(&self) -> Option<Format> {
        match self {
            MediaType::Other(s) if s.starts_with("application/vnd.docker.") => {
                (self.kind() != ContentKind::Other).then_some(Format::Docker)
            }
            MediaType::Other(s) if s.starts_with("application/vnd.oci.") => Some(Format::Oci),
            MediaType::Other(_) => None,
            _ => Some(Format::Oci),
        }
    }

    fn to_oci(&self) -> MediaType {
        if self.format() != Some(Format::Docker) {
            return self.clone();
        }
        match self.kind() {
            ContentKind::Manifest => MediaType::ImageManifest,
            ContentKind::Index => MediaType::ImageIndex,
            ContentKind::Config => MediaType::ImageConfig,
            ContentKind::Layer {
                compression: Compression::Gzip,
                distributable: true,
            } => MediaType::ImageLayerGzip,
            ContentKind::Layer {
                compression: Compression::Gzip,
                distributable: false,
            } => MediaType::ImageLayerNonDistributableGzip,
            ContentKind::Layer {
                compression: Compression::None,
                ..
            } => MediaType::ImageLayer,
            _ => self.clone(),
        }
    }

    fn to_docker(&self) -> Option<MediaType> {
        let s = match self.kind() {
            _ if self.format() == Some(Format::Docker) => return Some(self.clone()),
            ContentKind::Manifest => docker::MANIFEST,
            ContentKind::Index => docker::MANIFEST_LIST,
            ContentKind::Config => docker::CONFIG,
            ContentKind::Layer {
                compression: Compression::Gzip,
                distributable: true,
            } => docker::LAYER_GZIP,
            ContentKind::Layer {
                compression: Compression::Gzip,
                distributable: false,
            } => docker::FOREIGN_LAYER_GZIP,
            ContentKind::Layer {
                compression: Compression::None,
                distributable: true,
            } => docker::LAYER,
            _ => return None,
        };
        Some(MediaType::Other(s.to_owned()))
    }
}

/// Checks a media type's syntax against RFC 6838 section 4.2, as the image-spec requires of
/// every `mediaType` and `artifactType`:
/// `type "/" subtype`, each a restricted-name of 1 to 127 characters starting with a letter or
/// digit and continuing with letters, digits and ``!#$&-^_.+``. Parameters (`; charset=...`) are
/// not allowed in descriptors.
pub fn is_valid_media_type(s: &str) -> bool {
    fn restricted_name(s: &str) -> bool {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= 127
            && b[0].is_ascii_alphanumeric()
            && b[1..]
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(c))
    }
    match s.split_once('/') {
        Some((ty, sub)) => restricted_name(ty) && restricted_name(sub),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[&str] = &[
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.oci.empty.v1+json",
        docker::MANIFEST,
        docker::MANIFEST_LIST,
        docker::CONFIG,
        docker::LAYER_GZIP,
        docker::LAYER,
        docker::FOREIGN_LAYER_GZIP,
        docker::MANIFEST_V1,
        docker::MANIFEST_V1_SIGNED,
    ];

    #[test]
    fn every_known_type_is_classified_and_valid() {
        for s in ALL {
            let mt = MediaType::from(*s);
            assert_ne!(mt.kind(), ContentKind::Other, "{s}");
            assert!(mt.format().is_some(), "{s}");
            assert!(is_valid_media_type(s), "{s}");
            // The text survives the round trip through the enum.
            assert_eq!(mt.to_string(), *s);
        }
    }

    #[test]
    fn docker_and_oci_convert_both_ways() {
        let pairs = [
            (MediaType::ImageManifest, docker::MANIFEST),
            (MediaType::ImageIndex, docker::MANIFEST_LIST),
            (MediaType::ImageConfig, docker::CONFIG),
            (MediaType::ImageLayerGzip, docker::LAYER_GZIP),
            (MediaType::ImageLayer, docker::LAYER),
            (
                MediaType::ImageLayerNonDistributableGzip,
                docker::FOREIGN_LAYER_GZIP,
            ),
        ];
        for (oci, d) in pairs {
            let d = MediaType::from(d);
            assert_eq!(oci.to_docker().as_ref(), Some(&d));
            assert_eq!(d.to_oci(), oci);
            assert_eq!(oci.kind(), d.kind());
            assert_eq!(d.format(), Some(Format::Docker));
            assert_eq!(oci.format(), Some(Format::Oci));
        }
        assert_eq!(MediaType::ImageLayerZstd.to_docker(), None);
        assert_eq!(MediaType::EmptyJSON.to_docker(), None);
    }

    #[test]
    fn unknown_types_are_kept_verbatim() {
        let s = "application/vnd.example.thing.v1+tar; ignored";
        let mt = MediaType::from("application/vnd.cncf.helm.chart.content.v1.tar+gzip");
        assert_eq!(mt.kind(), ContentKind::Other);
        assert_eq!(mt.format(), None);
        assert_eq!(mt.to_oci(), mt);
        assert_eq!(mt.to_docker(), None);
        assert_eq!(
            mt.to_string(),
            "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
        );
        assert!(!is_valid_media_type(s));
        // An unknown Docker type is not claimed as Docker content.
        let plugin = MediaType::from("application/vnd.docker.plugin.v1+json");
        assert_eq!(plugin.kind(), ContentKind::Other);
        assert_eq!(plugin.format(), None);
    }

    #[test]
    fn media_type_syntax() {
        for bad in [
            "",
            "application",
            "/json",
            "application/",
            "app lication/json",
            "a/b/c",
        ] {
            assert!(!is_valid_media_type(bad), "{bad:?}");
        }
        assert!(is_valid_media_type("text/plain"));
    }
}
