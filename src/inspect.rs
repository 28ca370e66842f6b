//! What `skopeo inspect` shows of an image, without pulling its layers.

use std::collections::BTreeMap;

use ocikit_image::oci_spec::image::Platform;
use ocikit_image::{AnyManifest, Config, Manifest, select_manifest};
use serde::Serialize;

use crate::Error;
use crate::SystemContext;
use crate::copy::{Location, open_source_with};

/// An image as `skopeo inspect` describes it (its JSON field names, with `serde`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct Inspection {
    /// The location inspected, without its tag or digest.
    pub name: String,
    /// The digest of what the location names (an index, for a multi-platform image).
    pub digest: String,
    /// The digest of the image manifest for the platform.
    pub manifest_digest: String,
    /// The repository's tags (registries only; empty elsewhere).
    pub repo_tags: Vec<String>,
    /// The config's `created`.
    pub created: Option<String>,
    /// The config's architecture.
    pub architecture: String,
    /// The config's variant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The config's os.
    pub os: String,
    /// `Config.Labels`, sorted.
    pub labels: BTreeMap<String, String>,
    /// The layer digests, base first.
    pub layers: Vec<String>,
    /// The layers' media types, digests and sizes.
    pub layers_data: Vec<LayerData>,
    /// `Config.Env`.
    pub env: Vec<String>,
}

/// One layer of an [`Inspection`].
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct LayerData {
    /// The media type.
    #[serde(rename = "MIMEType")]
    pub mime_type: String,
    /// The digest.
    pub digest: String,
    /// The size in bytes.
    pub size: u64,
}

/// What [`inspect`] read: the description, and the documents as stored.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Inspected {
    /// The description.
    pub inspection: Inspection,
    /// What the location names, exactly as stored (`skopeo inspect --raw`).
    pub top: AnyManifest,
    /// The image manifest for the platform.
    pub manifest: Manifest,
    /// Its configuration (`skopeo inspect --config`).
    pub config: Config,
}

/// Inspects the image `location` names, choosing `platform` from an index; reads manifests
/// and the config (verified), never layers. A `docker://` location is reached as the
/// system's files say ([`SystemContext::new`]).
pub fn inspect(location: &Location, platform: &Platform) -> Result<Inspected, Error> {
    inspect_with(location, platform, &SystemContext::new())
}

/// [`inspect`], reaching a `docker://` location as `context` says.
pub fn inspect_with(
    location: &Location,
    platform: &Platform,
    context: &SystemContext,
) -> Result<Inspected, Error> {
    let opened = open_source_with(location, platform, context)?;
    let source = opened.source();
    let top = opened.top_manifest()?;
    let mut current = top.clone();
    let mut depth = 0;
    let manifest = loop {
        match current {
            AnyManifest::Manifest(m) => break m,
            AnyManifest::Index(index) if depth < ocikit_image::MAX_INDEX_DEPTH => {
                let child = select_manifest(&index, platform)?.clone();
                current = source.fetch_manifest(&child)?;
                depth += 1;
            }
            AnyManifest::Index(_) => {
                return Err(ocikit_image::Error::Invalid {
                    kind: ocikit_image::DocumentKind::Index,
                    field: "manifests".into(),
                    reason: "indexes nested too deep".into(),
                }
                .into());
            }
        }
    };
    let config = source.fetch_config(&manifest)?;
    let repo_tags = match opened.repository() {
        Some(repo) => repo.tags(None)?,
        None => Vec::new(),
    };
    let exec = config.config().clone().unwrap_or_default();
    let name = match location {
        Location::Docker { reference } => {
            let r: ocikit_distribution::Reference = reference.parse()?;
            format!("{}/{}", r.registry(), r.repository())
        }
        other => other.to_string(),
    };
    let inspection = Inspection {
        name,
        digest: top.digest().to_string(),
        manifest_digest: manifest.digest().to_string(),
        repo_tags,
        created: config.created().clone(),
        architecture: config.architecture().to_string(),
        variant: config.variant().clone(),
        os: config.os().to_string(),
        labels: exec
            .labels()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        layers: manifest
            .layers()
            .iter()
            .map(|l| l.digest().to_string())
            .collect(),
        layers_data: manifest
            .layers()
            .iter()
            .map(|l| LayerData {
                mime_type: l.media_type().to_string(),
                digest: l.digest().to_string(),
                size: l.size(),
            })
            .collect(),
        env: exec.env().clone().unwrap_or_default(),
    };
    Ok(Inspected {
        inspection,
        top,
        manifest,
        config,
    })
}
