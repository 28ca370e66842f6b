//! OCI artifacts: any file pushed as an image-spec v1.1 artifact manifest, attached to another
//! manifest as a referrer (SBOMs, signatures), discovered and fetched, like `oras push`,
//! `oras attach` and `oras discover`.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use ocikit_image::oci_spec::image::{
    ANNOTATION_TITLE, Descriptor, ImageManifestBuilder, MediaType,
};
use ocikit_image::{
    DigestingReader, ImageDestination, Manifest, Tag, descriptor_of, is_valid_media_type,
};

use crate::Error;

/// The empty configuration `{}` that artifacts use (image-spec v1.1 "Guidelines for Artifact
/// Usage").
pub fn empty_config() -> (Descriptor, &'static [u8]) {
    (descriptor_of(MediaType::EmptyJSON, b"{}"), b"{}")
}

/// Pushes the file at `path` as an artifact of `artifact_type` into `destination`: one blob
/// of media type `media_type` (titled with the file name), the empty config, the artifact
/// type set; with `subject`, a referrer of that manifest. Named `tag` when given.
pub fn push_artifact(
    destination: &dyn ImageDestination,
    path: &Path,
    artifact_type: &str,
    media_type: &str,
    subject: Option<&Descriptor>,
    annotations: &HashMap<String, String>,
    tag: Option<&Tag>,
) -> Result<Manifest, Error> {
    for t in [artifact_type, media_type] {
        if !is_valid_media_type(t) {
            return Err(ocikit_image::Error::Invalid {
                kind: ocikit_image::DocumentKind::Manifest,
                field: "artifactType".into(),
                reason: format!("{t:?} is not a media type (RFC 6838)"),
            }
            .into());
        }
    }
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    // One pass to learn the digest, one to upload it (the destination verifies it again).
    let mut digesting = DigestingReader::sha256(File::open(path).map_err(io)?);
    std::io::copy(&mut digesting, &mut std::io::sink()).map_err(io)?;
    let (_, digest, size) = digesting.into_parts();
    let mut blob = Descriptor::new(MediaType::from(media_type), size, digest);
    if let Some(name) = path.file_name() {
        blob.set_annotations(Some(
            [(
                ANNOTATION_TITLE.to_owned(),
                name.to_string_lossy().into_owned(),
            )]
            .into(),
        ));
    }
    destination.put_blob(&blob, &mut File::open(path).map_err(io)?)?;
    let (config, config_bytes) = empty_config();
    destination.put_blob(&config, &mut &config_bytes[..])?;
    let mut builder = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .artifact_type(MediaType::from(artifact_type))
        .config(config)
        .layers(vec![blob]);
    if let Some(s) = subject {
        builder = builder.subject(s.clone());
    }
    if !annotations.is_empty() {
        builder = builder.annotations(annotations.clone());
    }
    Ok(crate::build::store_manifest(builder, destination, tag)?)
}
