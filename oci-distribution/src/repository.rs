//! One repository of a registry: manifests, blobs, tags, referrers, deletion; and the
//! `ocikit_image` source and destination traits.

use std::io::{Cursor, Read};

use oci_spec::image::{Descriptor, Digest, MediaType};
use ocikit_image::{
    AnyManifest, BlobReader, ImageDestination, ImageSource, MediaTypeExt, Tag, TagOrDigest,
    VerifyingReader,
};
use ureq::http::Method;

use crate::blob::{BlobStream, encode_query};
use crate::client::{Body, Request, header, read_body, status_error};
use crate::{Client, Error, Result};

/// The media types asked for when fetching manifests: OCI and Docker schema 2, manifests
/// and indexes.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// A repository of a registry (`registry/name`), the handle every operation goes through.
///
/// It implements [`ImageSource`] and [`ImageDestination`], so the generic copy of the facade
/// reads from and writes to registries like any other place. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Repository {
    client: Client,
    registry: String,
    name: String,
}

/// A manifest fetched with its bytes exactly as served.
#[derive(Clone, Debug)]
pub struct RawManifest {
    /// The descriptor: media type from `Content-Type`, the verified digest, the size.
    pub descriptor: Descriptor,
    /// The bytes as served.
    pub bytes: Vec<u8>,
}

fn strip_params(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

impl Repository {
    pub(crate) fn new(client: Client, registry: String, name: String) -> Self {
        Repository {
            client,
            registry,
            name,
        }
    }

    /// The registry host (and port).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client this handle uses.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Another repository of the same registry, with the same client.
    pub fn sibling(&self, name: &str) -> Result<Repository> {
        self.client.repository_at(&self.registry, name)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!(
            "{}/v2/{}/{path}",
            self.client.base_url(&self.registry),
            self.name
        )
    }

    pub(crate) fn scope(&self, push: bool) -> String {
        format!(
            "repository:{}:{}",
            self.name,
            if push { "pull,push" } else { "pull" }
        )
    }

    /// `HEAD` of a manifest: its descriptor (media type, digest, size) without its bytes.
    /// When the registry sends no `Docker-Content-Digest`, the manifest is fetched and hashed.
    pub fn head_manifest(&self, target: &TagOrDigest) -> Result<Descriptor> {
        let url = self.url(&format!("manifests/{target}"));
        let req = Request::new(Method::HEAD, url.clone(), &self.registry)
            .scope(self.scope(false))
            .header("accept", MANIFEST_ACCEPT);
        let resp = self.client.execute(req)?;
        if !resp.status().is_success() {
            return Err(status_error(&Method::HEAD, &url, resp));
        }
        let media_type = header(&resp, "content-type").map(|c| MediaType::from(strip_params(&c)));
        let size = header(&resp, "content-length").and_then(|l| l.parse::<u64>().ok());
        let digest = match target {
            TagOrDigest::Digest(d) => Some(d.clone()),
            TagOrDigest::Tag(_) => header(&resp, "docker-content-digest")
                .and_then(|d| ocikit_image::parse_digest(&d).ok()),
        };
        match (media_type, size, digest) {
            (Some(m), Some(s), Some(d)) if m.is_manifest_like() => Ok(Descriptor::new(m, s, d)),
            _ => Ok(self.get_manifest_raw(target)?.descriptor),
        }
    }

    /// Fetches a manifest or index as stored, verified: against the digest of `target` when
    /// it is one, else against `Docker-Content-Digest` when the registry sends it; otherwise
    /// the digest is computed. Refused over the client's document cap (default 4 MiB).
    pub fn get_manifest_raw(&self, target: &TagOrDigest) -> Result<RawManifest> {
        let url = self.url(&format!("manifests/{target}"));
        let req = Request::new(Method::GET, url.clone(), &self.registry)
            .scope(self.scope(false))
            .header("accept", MANIFEST_ACCEPT);
        let mut resp = self.client.execute(req)?;
        if !resp.status().is_success() {
            return Err(status_error(&Method::GET, &url, resp));
        }
        let served_type = header(&resp, "content-type")
            .map(|c| MediaType::from(strip_params(&c)))
            .filter(MediaTypeExt::is_manifest_like);
        let served = header(&resp, "docker-content-digest");
        let limit = self.client.config().max_document_size;
        let bytes = ocikit_image::read_capped(
            resp.body_mut().as_reader(),
            limit,
            ocikit_image::DocumentKind::Manifest,
        )?;
        let expected = match target {
            TagOrDigest::Digest(d) => Some(d.clone()),
            TagOrDigest::Tag(_) => match served {
                Some(s) => Some(ocikit_image::parse_digest(&s).map_err(|e| Error::Protocol {
                    url: url.clone(),
                    message: format!("bad Docker-Content-Digest: {e}"),
                })?),
                None => None,
            },
        };
        let digest = match expected {
            Some(expected) => {
                let actual = ocikit_image::digest_bytes(expected.algorithm(), &bytes)?;
                if actual != expected {
                    return Err(ocikit_image::Error::DigestMismatch { expected, actual }.into());
                }
                actual
            }
            None => ocikit_image::sha256(&bytes),
        };
        // A registry that sends no (or a generic) Content-Type: the body's `mediaType`, else
        // the shape decides.
        let media_type = match served_type {
            Some(m) => m,
            None => AnyManifest::from_bytes(bytes.clone(), None)
                .map(|m| m.media_type().clone())
                .unwrap_or(MediaType::ImageManifest),
        };
        Ok(RawManifest {
            descriptor: Descriptor::new(media_type, bytes.len() as u64, digest),
            bytes,
        })
    }

    /// Fetches, verifies and parses a manifest or index (see
    /// [`get_manifest_raw`](Self::get_manifest_raw)).
    pub fn get_manifest(&self, target: &TagOrDigest) -> Result<AnyManifest> {
        let raw = self.get_manifest_raw(target)?;
        Ok(AnyManifest::from_bytes(
            raw.bytes,
            Some(raw.descriptor.media_type()),
        )?)
    }

    /// Pushes a manifest or index, by digest (`target` `None`) or under a tag or digest.
    /// Returns its descriptor.
    ///
    /// A manifest with a `subject` pushed to a registry that does not answer `OCI-Subject`
    /// (one without the referrers API) is also added to the referrers tag
    /// (`<alg>-<hex>` of the subject), as the distribution-spec asks of clients.
    pub fn put_manifest(
        &self,
        manifest: &AnyManifest,
        target: Option<&TagOrDigest>,
    ) -> Result<Descriptor> {
        let target = target
            .cloned()
            .unwrap_or_else(|| TagOrDigest::Digest(manifest.digest().clone()));
        let url = self.url(&format!("manifests/{target}"));
        let req = Request::new(Method::PUT, url.clone(), &self.registry)
            .scope(self.scope(true))
            .header("content-type", manifest.media_type().to_string())
            .body(Body::Bytes(manifest.raw()));
        let mut resp = self.client.execute(req)?;
        if resp.status().as_u16() != 201 {
            return Err(status_error(&Method::PUT, &url, resp));
        }
        if let Some(d) = header(&resp, "docker-content-digest")
            && d != manifest.digest().as_ref()
        {
            return Err(Error::Protocol {
                url,
                message: format!(
                    "registry stored the manifest as {d}, we sent {}",
                    manifest.digest()
                ),
            });
        }
        let subject_header = header(&resp, "oci-subject");
        let _ = read_body(&mut resp, 64 << 10);
        if let Some(subject) = manifest.subject()
            && subject_header.is_none()
        {
            self.add_to_referrers_tag(subject.digest(), manifest)?;
        }
        Ok(manifest.descriptor())
    }

    /// The referrers tag schema's tag for `subject`: `sha256-<hex>`.
    pub fn referrers_tag(subject: &Digest) -> Tag {
        Tag::new(format!("{}-{}", subject.algorithm(), subject.digest()))
            .expect("algorithm and hex make a valid tag")
    }

    fn referrer_descriptor(manifest: &AnyManifest) -> serde_json::Value {
        let (artifact_type, annotations) = match manifest {
            AnyManifest::Manifest(m) => (
                m.artifact_type()
                    .clone()
                    .unwrap_or_else(|| m.config().media_type().clone())
                    .to_string(),
                m.annotations().clone(),
            ),
            AnyManifest::Index(i) => (
                i.artifact_type()
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                i.annotations().clone(),
            ),
        };
        let mut d = serde_json::json!({
            "mediaType": manifest.media_type().to_string(),
            "digest": manifest.digest().to_string(),
            "size": manifest.raw().len(),
        });
        if !artifact_type.is_empty() {
            d["artifactType"] = artifact_type.into();
        }
        if let Some(a) = annotations.filter(|a| !a.is_empty()) {
            d["annotations"] = serde_json::to_value(a).unwrap_or_default();
        }
        d
    }

    fn add_to_referrers_tag(&self, subject: &Digest, manifest: &AnyManifest) -> Result<()> {
        let tag = Self::referrers_tag(subject);
        let target = TagOrDigest::Tag(tag.clone());
        let mut entries: Vec<serde_json::Value> = match self.get_manifest_raw(&target) {
            Ok(raw) => {
                let v: serde_json::Value = serde_json::from_slice(&raw.bytes).unwrap_or_default();
                v.get("manifests")
                    .and_then(|m| m.as_array())
                    .cloned()
                    .unwrap_or_default()
            }
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e),
        };
        let digest = manifest.digest().to_string();
        if entries
            .iter()
            .any(|e| e.get("digest").and_then(|d| d.as_str()) == Some(digest.as_str()))
        {
            return Ok(());
        }
        entries.push(Self::referrer_descriptor(manifest));
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries,
        });
        let bytes = serde_json::to_vec(&index).map_err(|e| Error::Protocol {
            url: String::new(),
            message: e.to_string(),
        })?;
        let index = AnyManifest::from_bytes(bytes, Some(&MediaType::ImageIndex))?;
        self.put_manifest(&index, Some(&target)).map(|_| ())
    }

    /// The manifests that name `subject` as their subject, optionally only those of
    /// `artifact_type`: from the referrers API, or, when the registry has none (404), from the
    /// referrers tag schema. No referrers is an empty list.
    pub fn referrers(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let mut url = self.url(&format!("referrers/{subject}"));
        if let Some(t) = artifact_type {
            url.push_str(&format!("?artifactType={}", encode_query(t)));
        }
        let req = Request::new(Method::GET, url.clone(), &self.registry)
            .scope(self.scope(false))
            .header("accept", "application/vnd.oci.image.index.v1+json");
        let mut resp = self.client.execute(req)?;
        let status = resp.status().as_u16();
        let is_index = header(&resp, "content-type")
            .is_some_and(|c| strip_params(&c) == "application/vnd.oci.image.index.v1+json");
        let (bytes, filtered) = if status == 200 && is_index {
            let filtered = header(&resp, "oci-filters-applied")
                .is_some_and(|f| f.split(',').any(|x| x.trim() == "artifactType"));
            (
                ocikit_image::read_capped(
                    resp.body_mut().as_reader(),
                    self.client.config().max_document_size,
                    ocikit_image::DocumentKind::Index,
                )?,
                filtered,
            )
        } else if status == 404 || (status == 200 && !is_index) {
            let _ = read_body(&mut resp, 64 << 10);
            match self.get_manifest_raw(&TagOrDigest::Tag(Self::referrers_tag(subject))) {
                Ok(raw) => (raw.bytes, false),
                Err(e) if e.is_not_found() => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        } else {
            return Err(status_error(&Method::GET, &url, resp));
        };
        #[derive(serde::Deserialize)]
        struct List {
            #[serde(default)]
            manifests: Vec<Descriptor>,
        }
        let list: List = serde_json::from_slice(&bytes).map_err(|e| Error::Protocol {
            url,
            message: format!("referrers list is not an index: {e}"),
        })?;
        Ok(list
            .manifests
            .into_iter()
            .filter(|d| {
                filtered
                    || artifact_type.is_none_or(|t| {
                        d.artifact_type()
                            .as_ref()
                            .is_some_and(|a| a.to_string() == t)
                    })
            })
            .collect())
    }

    /// Lists the repository's tags, following `Link` pages of `page_size` (the registry's
    /// default when `None`).
    pub fn tags(&self, page_size: Option<u32>) -> Result<Vec<String>> {
        let mut url = self.url("tags/list");
        if let Some(n) = page_size {
            url.push_str(&format!("?n={n}"));
        }
        self.client
            .paged(&self.registry, url, &self.scope(false), "tags")
    }

    /// The size of a blob if the registry has it (`HEAD`), `None` if not.
    pub fn blob_exists(&self, digest: &Digest) -> Result<Option<u64>> {
        let url = self.url(&format!("blobs/{digest}"));
        let req = Request::new(Method::HEAD, url.clone(), &self.registry).scope(self.scope(false));
        let resp = self.client.execute(req)?;
        match resp.status().as_u16() {
            200 => Ok(Some(
                header(&resp, "content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0),
            )),
            404 => Ok(None),
            _ => Err(status_error(&Method::HEAD, &url, resp)),
        }
    }

    /// Opens a blob as a stream that resumes after dropped connections and fails unless it
    /// has the descriptor's digest and size.
    pub fn get_blob(&self, descriptor: &Descriptor) -> Result<VerifyingReader<BlobStream>> {
        let stream = BlobStream::open(self.clone(), descriptor)?;
        Ok(VerifyingReader::for_descriptor(stream, descriptor)?)
    }

    /// Opens a blob as it comes, unverified (resuming after dropped connections).
    pub fn get_blob_unverified(&self, descriptor: &Descriptor) -> Result<BlobStream> {
        BlobStream::open(self.clone(), descriptor)
    }

    fn delete(&self, path: String) -> Result<()> {
        let url = self.url(&path);
        let req = Request::new(Method::DELETE, url.clone(), &self.registry)
            .scope(format!("repository:{}:delete", self.name))
            .scope(self.scope(true));
        let mut resp = self.client.execute(req)?;
        if !matches!(resp.status().as_u16(), 200 | 202 | 204) {
            return Err(status_error(&Method::DELETE, &url, resp));
        }
        let _ = read_body(&mut resp, 64 << 10);
        Ok(())
    }

    /// Deletes a manifest by digest (and with it every tag naming it). Registries may refuse
    /// (`UNSUPPORTED`, 405) unless deletion is enabled.
    pub fn delete_manifest(&self, digest: &Digest) -> Result<()> {
        self.delete(format!("manifests/{digest}"))
    }

    /// Deletes a blob by digest.
    pub fn delete_blob(&self, digest: &Digest) -> Result<()> {
        self.delete(format!("blobs/{digest}"))
    }
}

impl ImageSource for Repository {
    fn referrers(&self, subject: &Descriptor) -> ocikit_image::Result<Vec<Descriptor>> {
        Ok(Repository::referrers(self, subject.digest(), None)?)
    }

    fn resolve(&self, reference: &TagOrDigest) -> ocikit_image::Result<Descriptor> {
        Ok(self.head_manifest(reference)?)
    }

    fn open_blob_unverified(
        &self,
        descriptor: &Descriptor,
    ) -> ocikit_image::Result<BlobReader<'_>> {
        Ok(Box::new(self.get_blob_unverified(descriptor)?))
    }

    /// One `GET`, verified as [`get_manifest_raw`](Repository::get_manifest_raw) verifies,
    /// where `resolve` and `fetch_manifest` would make two requests.
    fn resolve_manifest(
        &self,
        reference: &TagOrDigest,
    ) -> ocikit_image::Result<(Descriptor, AnyManifest)> {
        let raw = self.get_manifest_raw(reference)?;
        let manifest = AnyManifest::from_bytes(raw.bytes, Some(raw.descriptor.media_type()))?;
        Ok((raw.descriptor, manifest))
    }

    fn open_manifest_unverified(
        &self,
        descriptor: &Descriptor,
    ) -> ocikit_image::Result<BlobReader<'_>> {
        let raw = self.get_manifest_raw(&TagOrDigest::Digest(descriptor.digest().clone()))?;
        Ok(Box::new(Cursor::new(raw.bytes)))
    }

    fn max_document_size(&self) -> u64 {
        self.client.config().max_document_size
    }
}

impl ImageDestination for Repository {
    fn has_blob(&self, descriptor: &Descriptor) -> ocikit_image::Result<bool> {
        Ok(self.blob_exists(descriptor.digest())?.is_some())
    }

    fn put_blob(&self, descriptor: &Descriptor, data: &mut dyn Read) -> ocikit_image::Result<()> {
        self.push_blob(descriptor, data)?;
        Ok(())
    }

    fn put_manifest(&self, manifest: &AnyManifest) -> ocikit_image::Result<()> {
        Repository::put_manifest(self, manifest, None)?;
        Ok(())
    }

    fn tag(&self, tag: &Tag, manifest: &AnyManifest) -> ocikit_image::Result<()> {
        Repository::put_manifest(self, manifest, Some(&TagOrDigest::Tag(tag.clone())))?;
        Ok(())
    }

    /// Uploads the blob unless the registry has it. The source's stream is read unverified
    /// and verified once, here, as it is sent: the registry never receives the last byte of
    /// content that fails (see [`Repository::push_blob`]).
    fn copy_blob_from(
        &self,
        source: &dyn ImageSource,
        descriptor: &Descriptor,
    ) -> ocikit_image::Result<bool> {
        if self.blob_exists(descriptor.digest())?.is_some() {
            return Ok(false);
        }
        let mut stream = source.open_blob_unverified(descriptor)?;
        self.push_new_blob(descriptor, &mut stream)?;
        Ok(true)
    }

    fn mount_blob(
        &self,
        descriptor: &Descriptor,
        from_repository: &str,
    ) -> ocikit_image::Result<bool> {
        if from_repository == self.name {
            return Ok(false);
        }
        Ok(Repository::mount_blob(self, descriptor, from_repository)?)
    }
}
