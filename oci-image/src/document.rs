//! Manifests, indexes and configs with their raw bytes kept.
//!
//! A [`Document`] holds the bytes exactly as received, their digest, the parsed `oci_spec`
//! value and the media type. The digest is always of the bytes as received: nothing here
//! re-serialises what it read. Changing a document goes through [`Document::edit`], which
//! writes new bytes, keeping every field `oci_spec` does not model (Docker's
//! `container_config`, a platform's `os.version`, vendor extensions) where it found them.
//!
//! Parsing validates what the image-spec requires of each document and refuses Docker schema 1
//! manifests with [`Error::SchemaV1`]. Every error names the document kind and the field.

use std::io::Read;
use std::ops::Deref;

use oci_spec::image::{
    Descriptor, Digest, ImageConfiguration, ImageIndex, ImageManifest, MediaType,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::media_type::is_valid_media_type;
use crate::{ContentKind, DocumentKind, Error, MediaTypeExt, Result, VerifyingReader, sha256};

/// The default cap on the size of a manifest, index or config: 4 MiB, the limit registries
/// commonly apply to manifests.
pub const DEFAULT_MAX_DOCUMENT_SIZE: u64 = 4 * 1024 * 1024;

/// An image manifest (OCI or Docker schema 2) with its raw bytes.
pub type Manifest = Document<ImageManifest>;
/// An image index or Docker manifest list with its raw bytes.
pub type Index = Document<ImageIndex>;
/// An image configuration (OCI or Docker) with its raw bytes.
pub type Config = Document<ImageConfiguration>;

mod sealed {
    pub trait Sealed {}
    impl Sealed for oci_spec::image::ImageManifest {}
    impl Sealed for oci_spec::image::ImageIndex {}
    impl Sealed for oci_spec::image::ImageConfiguration {}
}

/// The `oci_spec` types a [`Document`] can hold: [`ImageManifest`], [`ImageIndex`] and
/// [`ImageConfiguration`]. Sealed.
pub trait SpecDocument: Serialize + DeserializeOwned + Clone + sealed::Sealed {
    /// Which kind of document this is, for errors.
    const KIND: DocumentKind;

    /// The media type to assume when neither the body nor the caller gives one.
    fn default_media_type() -> MediaType;

    /// The `mediaType` field of the body, if the document kind has one and it is set.
    fn body_media_type(&self) -> Option<&MediaType>;

    /// Checks the rules of the image-spec that the type system does not.
    fn validate(&self) -> Result<()>;
}

/// A parsed spec document together with the exact bytes it was parsed from.
///
/// ```
/// use ocikit_image::Manifest;
///
/// let raw = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
///   "config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,
///     "digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
///   "layers":[], "x-vendor":{"kept":true}}"#;
/// let mut m = Manifest::from_bytes(raw.to_vec())?;
/// assert_eq!(m.raw(), raw);
/// assert_eq!(m.digest(), &ocikit_image::sha256(raw));
///
/// m.edit(|m| {
///     m.set_annotations(Some([("k".to_owned(), "v".to_owned())].into()));
/// })?;
/// let text = String::from_utf8(m.raw().to_vec()).unwrap();
/// assert!(text.contains(r#""x-vendor":{"kept":true}"#));
/// assert!(text.contains(r#""annotations":{"k":"v"}"#));
/// # Ok::<_, ocikit_image::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Document<T> {
    raw: Vec<u8>,
    digest: Digest,
    media_type: MediaType,
    value: T,
    extras: Vec<Extra>,
}

impl<T: SpecDocument> Document<T> {
    /// Parses and validates `raw`, taking the media type from the body's `mediaType` field or,
    /// without one, the default of the kind. Refuses input over [`DEFAULT_MAX_DOCUMENT_SIZE`].
    pub fn from_bytes(raw: impl Into<Vec<u8>>) -> Result<Self> {
        Self::parse(raw.into(), None, DEFAULT_MAX_DOCUMENT_SIZE)
    }

    /// Like [`Document::from_bytes`], for content a descriptor or a `Content-Type` said has
    /// `media_type`: the body's own `mediaType`, when it has one, must agree.
    pub fn from_bytes_as(raw: impl Into<Vec<u8>>, media_type: &MediaType) -> Result<Self> {
        Self::parse(raw.into(), Some(media_type), DEFAULT_MAX_DOCUMENT_SIZE)
    }

    /// Parses `raw` with a size cap of `limit` bytes.
    pub fn from_bytes_with_limit(
        raw: impl Into<Vec<u8>>,
        media_type: Option<&MediaType>,
        limit: u64,
    ) -> Result<Self> {
        Self::parse(raw.into(), media_type, limit)
    }

    /// Reads a document from a stream, refusing it as soon as it is longer than `limit`.
    pub fn from_reader<R: Read>(
        reader: R,
        media_type: Option<&MediaType>,
        limit: u64,
    ) -> Result<Self> {
        let raw = read_capped(reader, limit, T::KIND)?;
        Self::parse(raw, media_type, limit)
    }

    /// Reads the content `descriptor` names from `reader`, verifying its digest and size, with
    /// the descriptor's media type. A descriptor whose size is over `limit` is refused before
    /// anything is read.
    pub fn from_descriptor_reader<R: Read>(
        reader: R,
        descriptor: &Descriptor,
        limit: u64,
    ) -> Result<Self> {
        let raw = read_verified(reader, descriptor, limit, T::KIND)?;
        Self::parse(raw, Some(descriptor.media_type()), limit)
    }

    /// Serialises a new document from a value (compact JSON), after validating it.
    pub fn new(value: T) -> Result<Self> {
        value.validate()?;
        let raw = serde_json::to_vec(&value).map_err(|e| Error::json(T::KIND, "", &e))?;
        let media_type = value
            .body_media_type()
            .cloned()
            .unwrap_or_else(T::default_media_type);
        Ok(Document {
            digest: sha256(&raw),
            raw,
            media_type,
            value,
            extras: Vec::new(),
        })
    }

    /// Like [`Document::new`], for a kind whose body has no `mediaType` (a config).
    pub fn new_as(value: T, media_type: MediaType) -> Result<Self> {
        let mut doc = Self::new(value)?;
        doc.media_type = media_type;
        Ok(doc)
    }

    fn parse(raw: Vec<u8>, given: Option<&MediaType>, limit: u64) -> Result<Self> {
        let kind = T::KIND;
        if raw.len() as u64 > limit {
            return Err(Error::TooLarge {
                kind,
                limit,
                size: raw.len() as u64,
            });
        }
        let tree: Value = serde_json::from_slice(&raw).map_err(|e| Error::json(kind, "", &e))?;
        let Value::Object(obj) = &tree else {
            return Err(Error::invalid(kind, "", "expected a JSON object"));
        };
        if kind != DocumentKind::Config {
            refuse_schema1(obj)?;
            check_shape(kind, obj)?;
        }
        if let Some(given) = given {
            check_given_media_type(kind, given)?;
        }
        let mut de = serde_json::Deserializer::from_slice(&raw);
        let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            Error::json(kind, &path, e.inner())
        })?;
        value.validate()?;
        let media_type = match (value.body_media_type(), given) {
            (Some(body), Some(given)) if body != given => {
                return Err(Error::UnexpectedMediaType {
                    expected: given.to_string(),
                    actual: body.clone(),
                });
            }
            (Some(body), _) => body.clone(),
            (None, Some(given)) => given.clone(),
            (None, None) => T::default_media_type(),
        };
        let back = serde_json::to_value(&value).map_err(|e| Error::json(kind, "", &e))?;
        let mut extras = Vec::new();
        collect_extras(&tree, &back, &mut Vec::new(), &mut extras);
        Ok(Document {
            digest: sha256(&raw),
            raw,
            media_type,
            value,
            extras,
        })
    }

    /// The bytes as received (or as last written by [`Document::edit`]).
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The digest of [`Document::raw`] (sha256 for documents made here; for documents read
    /// through [`Document::from_descriptor_reader`], the sha256 of the same verified bytes).
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The length of [`Document::raw`].
    pub fn size(&self) -> u64 {
        self.raw.len() as u64
    }

    /// The media type: the body's `mediaType`, else the one given when parsing, else the
    /// default of the kind.
    pub fn media_type(&self) -> &MediaType {
        &self.media_type
    }

    /// The parsed value. (`Document` also derefs to it.)
    pub fn value(&self) -> &T {
        &self.value
    }

    /// A descriptor of this document: media type, digest and size (and `artifactType` for a
    /// manifest that has one).
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.media_type.clone(), self.size(), self.digest.clone())
    }

    /// Changes the value and writes new bytes (compact JSON), keeping the fields the value
    /// type does not model. The new value is validated; on error nothing changes.
    pub fn edit(&mut self, f: impl FnOnce(&mut T)) -> Result<()> {
        let mut value = self.value.clone();
        f(&mut value);
        value.validate()?;
        let mut tree = serde_json::to_value(&value).map_err(|e| Error::json(T::KIND, "", &e))?;
        apply_extras(&mut tree, &self.extras);
        let raw = serde_json::to_vec(&tree).map_err(|e| Error::json(T::KIND, "", &e))?;
        if let Some(body) = value.body_media_type() {
            self.media_type = body.clone();
        }
        self.digest = sha256(&raw);
        self.raw = raw;
        self.value = value;
        Ok(())
    }

    /// The raw bytes, consuming the document.
    pub fn into_raw(self) -> Vec<u8> {
        self.raw
    }

    /// The parsed value, consuming the document.
    pub fn into_value(self) -> T {
        self.value
    }
}

impl<T> Deref for Document<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl Manifest {
    /// True for a Docker schema 2 manifest, false for an OCI one.
    pub fn is_docker(&self) -> bool {
        self.media_type.format() == Some(crate::Format::Docker)
    }
}

impl Index {
    /// True for a Docker manifest list, false for an OCI index.
    pub fn is_docker(&self) -> bool {
        self.media_type.format() == Some(crate::Format::Docker)
    }
}

/// What a registry's `/manifests/` endpoint or a layout's `index.json` entry points to: an
/// image manifest or an index.
#[derive(Clone, Debug)]
// Both variants are a few hundred bytes, held one at a time; boxing would only add a hop.
#[allow(clippy::large_enum_variant)]
pub enum AnyManifest {
    /// An image manifest.
    Manifest(Manifest),
    /// An image index or manifest list.
    Index(Index),
}

impl AnyManifest {
    /// Parses a manifest or an index, telling which from `media_type` (a descriptor's or a
    /// `Content-Type`) when it names one, else from the body's `mediaType`, else from its shape
    /// (`manifests` makes an index).
    pub fn from_bytes(raw: impl Into<Vec<u8>>, media_type: Option<&MediaType>) -> Result<Self> {
        Self::parse(raw.into(), media_type, DEFAULT_MAX_DOCUMENT_SIZE)
    }

    /// Reads the manifest or index `descriptor` names, verifying digest and size.
    pub fn from_descriptor_reader<R: Read>(
        reader: R,
        descriptor: &Descriptor,
        limit: u64,
    ) -> Result<Self> {
        let raw = read_verified(reader, descriptor, limit, DocumentKind::Manifest)?;
        Self::parse(raw, Some(descriptor.media_type()), limit)
    }

    fn parse(raw: Vec<u8>, media_type: Option<&MediaType>, limit: u64) -> Result<Self> {
        let hinted = media_type.filter(|m| m.kind() != ContentKind::Other);
        let kind = match hinted.map(MediaTypeExt::kind) {
            Some(ContentKind::Manifest) => ContentKind::Manifest,
            Some(ContentKind::Index) => ContentKind::Index,
            Some(ContentKind::ManifestV1) => {
                return Err(Error::SchemaV1 {
                    media_type: hinted.map(ToString::to_string).unwrap_or_default(),
                });
            }
            Some(_) => {
                return Err(Error::UnexpectedMediaType {
                    expected: "a manifest or an index".into(),
                    actual: hinted.cloned().expect("hinted is Some here"),
                });
            }
            None => sniff(&raw),
        };
        // A media type that names neither (say an artifact's) is not passed on as a hint.
        Ok(match kind {
            ContentKind::Index => AnyManifest::Index(Index::parse(raw, hinted, limit)?),
            _ => AnyManifest::Manifest(Manifest::parse(raw, hinted, limit)?),
        })
    }

    /// The raw bytes.
    pub fn raw(&self) -> &[u8] {
        match self {
            AnyManifest::Manifest(m) => m.raw(),
            AnyManifest::Index(i) => i.raw(),
        }
    }

    /// The digest of the raw bytes.
    pub fn digest(&self) -> &Digest {
        match self {
            AnyManifest::Manifest(m) => m.digest(),
            AnyManifest::Index(i) => i.digest(),
        }
    }

    /// The media type.
    pub fn media_type(&self) -> &MediaType {
        match self {
            AnyManifest::Manifest(m) => m.media_type(),
            AnyManifest::Index(i) => i.media_type(),
        }
    }

    /// A descriptor of the document.
    pub fn descriptor(&self) -> Descriptor {
        match self {
            AnyManifest::Manifest(m) => m.descriptor(),
            AnyManifest::Index(i) => i.descriptor(),
        }
    }

    /// The `subject` of the manifest or index, if it has one.
    pub fn subject(&self) -> Option<&Descriptor> {
        match self {
            AnyManifest::Manifest(m) => m.subject().as_ref(),
            AnyManifest::Index(i) => i.subject().as_ref(),
        }
    }
}

/// Guesses manifest or index from a body without a usable media type.
fn sniff(raw: &[u8]) -> ContentKind {
    #[derive(serde::Deserialize)]
    struct Peek {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_slice::<Peek>(raw) {
        Ok(p) => match p.media_type.map(|m| MediaType::from(m.as_str()).kind()) {
            Some(k @ (ContentKind::Manifest | ContentKind::Index)) => k,
            _ if p.manifests.is_some() => ContentKind::Index,
            _ => ContentKind::Manifest,
        },
        // Let the manifest parser report the JSON error with its position.
        Err(_) => ContentKind::Manifest,
    }
}

/// Reads at most `limit` bytes; more is [`Error::TooLarge`].
pub fn read_capped<R: Read>(reader: R, limit: u64, kind: DocumentKind) -> Result<Vec<u8>> {
    let mut raw = Vec::new();
    reader.take(limit.saturating_add(1)).read_to_end(&mut raw)?;
    if raw.len() as u64 > limit {
        return Err(Error::TooLarge {
            kind,
            limit,
            size: raw.len() as u64,
        });
    }
    Ok(raw)
}

fn read_verified<R: Read>(
    reader: R,
    descriptor: &Descriptor,
    limit: u64,
    kind: DocumentKind,
) -> Result<Vec<u8>> {
    if descriptor.size() > limit {
        return Err(Error::TooLarge {
            kind,
            limit,
            size: descriptor.size(),
        });
    }
    let mut verifying = VerifyingReader::for_descriptor(reader, descriptor)?;
    let mut raw = Vec::with_capacity(descriptor.size() as usize);
    verifying.read_to_end(&mut raw)?;
    Ok(raw)
}

fn refuse_schema1(obj: &Map<String, Value>) -> Result<()> {
    let media_type = obj.get("mediaType").and_then(Value::as_str);
    if let Some(mt) = media_type
        && MediaType::from(mt).kind() == ContentKind::ManifestV1
    {
        return Err(Error::SchemaV1 {
            media_type: mt.to_owned(),
        });
    }
    if obj.get("schemaVersion").and_then(Value::as_u64) == Some(1) {
        return Err(Error::SchemaV1 {
            media_type: media_type.unwrap_or("schemaVersion 1").to_owned(),
        });
    }
    Ok(())
}

/// A manifest with `manifests`, or an index with `config` or `layers`, is ambiguous; the
/// distribution-spec asks clients to refuse content whose type cannot be told.
fn check_shape(kind: DocumentKind, obj: &Map<String, Value>) -> Result<()> {
    let foreign: &[&str] = match kind {
        DocumentKind::Manifest => &["manifests"],
        DocumentKind::Index => &["config", "layers"],
        _ => &[],
    };
    for field in foreign {
        if obj.contains_key(*field) {
            return Err(Error::invalid(
                kind,
                *field,
                format!("a {kind} has no `{field}` field: the document's type is ambiguous"),
            ));
        }
    }
    Ok(())
}

fn check_given_media_type(kind: DocumentKind, given: &MediaType) -> Result<()> {
    let want = match kind {
        DocumentKind::Manifest => ContentKind::Manifest,
        DocumentKind::Index => ContentKind::Index,
        // Configs come in many media types (artifacts put anything there).
        _ => return Ok(()),
    };
    match given.kind() {
        k if k == want => Ok(()),
        ContentKind::ManifestV1 => Err(Error::SchemaV1 {
            media_type: given.to_string(),
        }),
        _ => Err(Error::UnexpectedMediaType {
            expected: format!("an {kind}").replace("an manifest", "a manifest"),
            actual: given.clone(),
        }),
    }
}

fn check_schema_version(kind: DocumentKind, version: u32) -> Result<()> {
    if version != 2 {
        return Err(Error::invalid(
            kind,
            "schemaVersion",
            format!("must be 2, found {version}"),
        ));
    }
    Ok(())
}

fn check_body_media_type(
    kind: DocumentKind,
    mt: Option<&MediaType>,
    want: ContentKind,
) -> Result<()> {
    match mt {
        Some(mt) if mt.kind() != want => Err(Error::invalid(
            kind,
            "mediaType",
            format!("{mt} is not the media type of a {kind}"),
        )),
        _ => Ok(()),
    }
}

fn check_artifact_type(kind: DocumentKind, field: &str, mt: Option<&MediaType>) -> Result<()> {
    match mt {
        Some(mt) if !is_valid_media_type(mt.as_ref()) => Err(Error::invalid(
            kind,
            field,
            format!("{:?} is not a valid media type (RFC 6838)", mt.as_ref()),
        )),
        _ => Ok(()),
    }
}

/// Checks a descriptor's fields (image-spec `descriptor.md`); `path` names it in errors.
pub fn validate_descriptor(kind: DocumentKind, path: &str, d: &Descriptor) -> Result<()> {
    let field = |name: &str| format!("{path}.{name}");
    if !is_valid_media_type(d.media_type().as_ref()) {
        return Err(Error::invalid(
            kind,
            field("mediaType"),
            format!(
                "{:?} is not a valid media type (RFC 6838)",
                d.media_type().as_ref()
            ),
        ));
    }
    check_artifact_type(kind, &field("artifactType"), d.artifact_type().as_ref())?;
    for (i, url) in d.urls().iter().flatten().enumerate() {
        if !looks_like_uri(url) {
            return Err(Error::invalid(
                kind,
                format!("{path}.urls[{i}]"),
                format!("{url:?} is not an absolute URI (RFC 3986)"),
            ));
        }
    }
    if let Some(p) = d.platform()
        && (p.os().to_string().is_empty() || p.architecture().to_string().is_empty())
    {
        {
            return Err(Error::invalid(
                kind,
                field("platform"),
                "os and architecture are required",
            ));
        }
    }
    if let Some(data) = d.data() {
        // "The decoded data MUST be identical to the referenced content" (descriptor.md).
        let decoded = decode_base64(data)
            .ok_or_else(|| Error::invalid(kind, field("data"), "not valid base64 (RFC 4648)"))?;
        if decoded.len() as u64 != d.size() {
            return Err(Error::invalid(
                kind,
                field("data"),
                format!("decodes to {} bytes, size says {}", decoded.len(), d.size()),
            ));
        }
        if crate::check_supported(d.digest()).is_ok()
            && &crate::digest_bytes(d.digest().algorithm(), &decoded)? != d.digest()
        {
            return Err(Error::invalid(
                kind,
                field("data"),
                "embedded data does not match the digest",
            ));
        }
    }
    Ok(())
}

fn looks_like_uri(s: &str) -> bool {
    match s.split_once(':') {
        Some((scheme, rest)) => {
            let b = scheme.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphabetic()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
                && !rest.is_empty()
                && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    for (i, chunk) in b.chunks(4).enumerate() {
        let last = i == b.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | val(c)?;
        }
        // Canonical encodings leave the padding bits zero (RFC 4648, section 3.5).
        if pad > 0 && n & ((1 << (2 * pad)) - 1) != 0 {
            return None;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

impl SpecDocument for ImageManifest {
    const KIND: DocumentKind = DocumentKind::Manifest;

    fn default_media_type() -> MediaType {
        MediaType::ImageManifest
    }

    fn body_media_type(&self) -> Option<&MediaType> {
        self.media_type().as_ref()
    }

    fn validate(&self) -> Result<()> {
        let kind = Self::KIND;
        check_schema_version(kind, self.schema_version())?;
        check_body_media_type(kind, self.media_type().as_ref(), ContentKind::Manifest)?;
        check_artifact_type(kind, "artifactType", self.artifact_type().as_ref())?;
        validate_descriptor(kind, "config", self.config())?;
        for (i, layer) in self.layers().iter().enumerate() {
            validate_descriptor(kind, &format!("layers[{i}]"), layer)?;
        }
        if let Some(subject) = self.subject() {
            validate_descriptor(kind, "subject", subject)?;
        }
        // "artifactType ... MUST be set when config.mediaType is set to the empty value"
        // (manifest.md, image-spec v1.1).
        if self.config().media_type() == &MediaType::EmptyJSON && self.artifact_type().is_none() {
            return Err(Error::invalid(
                kind,
                "artifactType",
                "must be set when config.mediaType is application/vnd.oci.empty.v1+json",
            ));
        }
        Ok(())
    }
}

impl SpecDocument for ImageIndex {
    const KIND: DocumentKind = DocumentKind::Index;

    fn default_media_type() -> MediaType {
        MediaType::ImageIndex
    }

    fn body_media_type(&self) -> Option<&MediaType> {
        self.media_type().as_ref()
    }

    fn validate(&self) -> Result<()> {
        let kind = Self::KIND;
        check_schema_version(kind, self.schema_version())?;
        check_body_media_type(kind, self.media_type().as_ref(), ContentKind::Index)?;
        check_artifact_type(kind, "artifactType", self.artifact_type().as_ref())?;
        for (i, m) in self.manifests().iter().enumerate() {
            validate_descriptor(kind, &format!("manifests[{i}]"), m)?;
        }
        if let Some(subject) = self.subject() {
            validate_descriptor(kind, "subject", subject)?;
        }
        Ok(())
    }
}

impl SpecDocument for ImageConfiguration {
    const KIND: DocumentKind = DocumentKind::Config;

    fn default_media_type() -> MediaType {
        MediaType::ImageConfig
    }

    fn body_media_type(&self) -> Option<&MediaType> {
        None
    }

    fn validate(&self) -> Result<()> {
        let kind = Self::KIND;
        if self.architecture().to_string().is_empty() {
            return Err(Error::invalid(kind, "architecture", "must not be empty"));
        }
        if self.os().to_string().is_empty() {
            return Err(Error::invalid(kind, "os", "must not be empty"));
        }
        // "type: MUST be set to layers" (config.md).
        if self.rootfs().typ() != "layers" {
            return Err(Error::invalid(
                kind,
                "rootfs.type",
                format!("must be \"layers\", found {:?}", self.rootfs().typ()),
            ));
        }
        for (i, d) in self.rootfs().diff_ids().iter().enumerate() {
            Digest::try_from(d.as_str()).map_err(|e| {
                Error::invalid(kind, format!("rootfs.diff_ids[{i}]"), e.to_string())
            })?;
        }
        Ok(())
    }
}

/// The config's `rootfs.diff_ids` as digests (validated when the config was parsed).
impl Config {
    /// The platform the config says the image is for (os, architecture, variant, os.version
    /// and os.features).
    pub fn platform(&self) -> oci_spec::image::Platform {
        let mut p = oci_spec::image::Platform::default();
        p.set_os(self.os().clone());
        p.set_architecture(self.architecture().clone());
        p.set_variant(self.variant().clone());
        p.set_os_version(self.os_version().clone());
        p.set_os_features(self.os_features().clone());
        p
    }

    /// The uncompressed digests of the layers, in order.
    pub fn diff_ids(&self) -> Vec<Digest> {
        self.rootfs()
            .diff_ids()
            .iter()
            .filter_map(|d| Digest::try_from(d.as_str()).ok())
            .collect()
    }

    /// The chain ID of each layer, in order: the identity of the filesystem the layers up to
    /// and including that one make. image-spec config.md: "ChainID(L₀) = DiffID(L₀)" and
    /// "ChainID(L₀|...|Lₙ) = Digest(ChainID(L₀|...|Lₙ₋₁) + " " + DiffID(Lₙ))", sha256.
    ///
    /// ```
    /// let config = ocikit_image::Config::from_bytes(br#"{"architecture":"amd64","os":"linux",
    ///   "rootfs":{"type":"layers","diff_ids":[
    ///     "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
    ///     "sha256:fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9"]}}"#.to_vec())?;
    /// let chain = config.chain_ids();
    /// assert_eq!(chain[0], config.diff_ids()[0]);
    /// let second = format!("{} {}", chain[0], config.diff_ids()[1]);
    /// assert_eq!(chain[1], ocikit_image::sha256(second.as_bytes()));
    /// # Ok::<_, ocikit_image::Error>(())
    /// ```
    pub fn chain_ids(&self) -> Vec<Digest> {
        let mut chain: Vec<Digest> = Vec::new();
        for diff_id in self.diff_ids() {
            let next = match chain.last() {
                None => diff_id,
                Some(parent) => crate::sha256(format!("{parent} {diff_id}").as_bytes()),
            };
            chain.push(next);
        }
        chain
    }
}

// Unknown fields: what a parse-and-serialise round trip of the typed value loses.

#[derive(Clone, Debug, PartialEq)]
enum Seg {
    Key(String),
    /// An array element: its position, and for a descriptor its digest, by which it is found
    /// again after an edit that reorders or inserts elements (the position decides between
    /// elements of one digest).
    Element(usize, Option<String>),
}

#[derive(Clone, Debug)]
struct Extra {
    path: Vec<Seg>,
    key: String,
    /// The value as received.
    value: Value,
    /// For a field the typed value keeps but changes on the way (oci-spec 0.10 reads the
    /// architecture `armbe` as `arm64be`, for one): what the round trip made of it. When an
    /// edit leaves it so, the received value is put back.
    changed_to: Option<Value>,
}

fn collect_extras(orig: &Value, back: &Value, path: &mut Vec<Seg>, out: &mut Vec<Extra>) {
    match (orig, back) {
        (Value::Object(o), Value::Object(b)) => {
            for (k, v) in o {
                match b.get(k) {
                    None => out.push(Extra {
                        path: path.clone(),
                        key: k.clone(),
                        value: v.clone(),
                        changed_to: None,
                    }),
                    Some(bv) if !v.is_object() && !v.is_array() && v != bv => out.push(Extra {
                        path: path.clone(),
                        key: k.clone(),
                        value: v.clone(),
                        changed_to: Some(bv.clone()),
                    }),
                    Some(bv) => {
                        path.push(Seg::Key(k.clone()));
                        collect_extras(v, bv, path, out);
                        path.pop();
                    }
                }
            }
        }
        (Value::Array(o), Value::Array(b)) => {
            for (i, (v, bv)) in o.iter().zip(b).enumerate() {
                // Found again by digest only where the digest is a field the typed value
                // keeps (a descriptor's): an unknown `digest` key would itself be restored
                // from the extras, so nothing could be found by it.
                let digest = v
                    .get("digest")
                    .and_then(Value::as_str)
                    .filter(|d| bv.get("digest").and_then(Value::as_str) == Some(*d));
                let seg = Seg::Element(i, digest.map(str::to_owned));
                path.push(seg);
                collect_extras(v, bv, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn apply_extras(tree: &mut Value, extras: &[Extra]) {
    for extra in extras {
        let mut node = Some(&mut *tree);
        for seg in &extra.path {
            node = node.and_then(|n| match seg {
                Seg::Key(k) => n.get_mut(k.as_str()),
                Seg::Element(i, None) => n.get_mut(*i),
                Seg::Element(i, Some(d)) => n.as_array_mut().and_then(|a| {
                    let digest_of = |e: &Value| e.get("digest").and_then(Value::as_str) == Some(d);
                    let at = if a.get(*i).is_some_and(digest_of) {
                        Some(*i)
                    } else {
                        a.iter().position(digest_of)
                    };
                    at.and_then(|at| a.get_mut(at))
                }),
            });
        }
        if let Some(Value::Object(obj)) = node {
            match (obj.get_mut(&extra.key), &extra.changed_to) {
                (None, _) => {
                    obj.insert(extra.key.clone(), extra.value.clone());
                }
                // Untouched by the edit: what was received, not what the types made of it.
                (Some(current), Some(changed)) if current == changed => {
                    *current = extra.value.clone();
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}"#;

    fn manifest_json(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{CFG},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":5,"digest":"sha256:{}"}}]{extra}}}"#,
            "a".repeat(64)
        )
    }

    fn invalid_field(r: Result<impl std::fmt::Debug>) -> String {
        match r {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn raw_bytes_and_digest_are_kept() {
        // Whitespace and key order that a serialiser would change.
        let raw = format!(
            " {} \n",
            manifest_json(r#", "annotations" : {"b":"1","a":"2"}"#)
        );
        let m = Manifest::from_bytes(raw.clone()).unwrap();
        assert_eq!(m.raw(), raw.as_bytes());
        assert_eq!(m.digest(), &sha256(raw.as_bytes()));
        assert_eq!(m.size(), raw.len() as u64);
        assert_eq!(m.media_type(), &MediaType::ImageManifest);
        assert_eq!(m.descriptor().digest(), m.digest());
        assert_eq!(m.layers().len(), 1);
    }

    #[test]
    fn unknown_fields_survive_edit() {
        let raw = manifest_json(r#","x-top":[1,2],"annotations":{"a":"1"}"#)
            .replace(r#""size":5,"#, r#""size":5,"x-in-layer":"kept","#);
        let mut m = Manifest::from_bytes(raw).unwrap();
        m.edit(|v| {
            v.annotations_mut()
                .get_or_insert_with(Default::default)
                .insert("b".into(), "2".into());
            let config = v.config().clone();
            v.layers_mut().insert(0, config);
        })
        .unwrap();
        let back: Value = serde_json::from_slice(m.raw()).unwrap();
        assert_eq!(back["x-top"], serde_json::json!([1, 2]));
        assert_eq!(back["layers"][1]["x-in-layer"], "kept");
        assert!(back["layers"][0].get("x-in-layer").is_none());
        assert_eq!(back["annotations"]["a"], "1");
        assert_eq!(back["annotations"]["b"], "2");
        assert_eq!(m.digest(), &sha256(m.raw()));
        // And the edited bytes parse again.
        let again = Manifest::from_bytes(m.raw().to_vec()).unwrap();
        assert_eq!(again.digest(), m.digest());
    }

    #[test]
    fn unknown_digest_keys_in_array_elements_survive() {
        // Found by the `documents` fuzz target: a history entry (no `digest` field in the
        // typed value) with unknown `digest` and `size` keys lost both on a no-op edit.
        let raw = r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},
            "history":[{"created_by":"a"},{"created_by":"b","digest":"sha256:x","size":3}]}"#;
        let mut c = Config::from_bytes(raw).unwrap();
        let before: Value = serde_json::from_slice(c.raw()).unwrap();
        c.edit(|_| {}).unwrap();
        let after: Value = serde_json::from_slice(c.raw()).unwrap();
        assert_eq!(before, after);
        assert_eq!(after["history"][1]["size"], 3);
    }

    #[test]
    fn values_the_types_change_are_restored_unless_edited() {
        // Found by the `documents` fuzz target: oci-spec 0.10 reads `armbe` as `arm64be`.
        let raw = r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "size":1,"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111",
            "platform":{"architecture":"armbe","os":"linux"}}]}"#;
        let mut i = Index::from_bytes(raw).unwrap();
        i.edit(|_| {}).unwrap();
        let v: Value = serde_json::from_slice(i.raw()).unwrap();
        assert_eq!(v["manifests"][0]["platform"]["architecture"], "armbe");
        // An edit that sets the field wins.
        i.edit(|v| {
            let mut d = v.manifests()[0].clone();
            let mut p = d.platform().clone().unwrap();
            p.set_architecture(oci_spec::image::Arch::Amd64);
            d.set_platform(Some(p));
            v.set_manifests(vec![d]);
        })
        .unwrap();
        let v: Value = serde_json::from_slice(i.raw()).unwrap();
        assert_eq!(v["manifests"][0]["platform"]["architecture"], "amd64");
    }

    #[test]
    fn descriptors_of_one_digest_keep_their_own_fields() {
        // Found by the `documents` fuzz target: two entries of one digest, one with an
        // unknown field, had it moved to the other on a no-op edit.
        let d = format!("sha256:{}", "1".repeat(64));
        let raw = format!(
            r#"{{"schemaVersion":2,"manifests":[
            {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{d}","size":1}},
            {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{d}","size":1,"x":1}}]}}"#
        );
        let mut i = Index::from_bytes(raw).unwrap();
        let before: Value = serde_json::from_slice(i.raw()).unwrap();
        i.edit(|_| {}).unwrap();
        let after: Value = serde_json::from_slice(i.raw()).unwrap();
        assert_eq!(before, after);
    }

    #[test]
    fn failed_edit_changes_nothing() {
        let mut m = Manifest::from_bytes(manifest_json("")).unwrap();
        let before = m.raw().to_vec();
        let e = m
            .edit(|v| {
                v.set_schema_version(3);
            })
            .unwrap_err();
        assert_eq!(invalid_field(Err::<(), _>(e)), "schemaVersion");
        assert_eq!(m.raw(), before.as_slice());
        assert_eq!(m.schema_version(), 2);
    }

    #[test]
    fn schema_version_must_be_2() {
        let raw = manifest_json("").replace(r#""schemaVersion":2"#, r#""schemaVersion":3"#);
        assert_eq!(invalid_field(Manifest::from_bytes(raw)), "schemaVersion");
    }

    #[test]
    fn schema1_is_refused() {
        let raw = r#"{"schemaVersion":1,"name":"x","tag":"latest","architecture":"amd64","fsLayers":[],"history":[]}"#;
        assert!(matches!(
            Manifest::from_bytes(raw),
            Err(Error::SchemaV1 { .. })
        ));
        assert!(matches!(
            AnyManifest::from_bytes(raw, None),
            Err(Error::SchemaV1 { .. })
        ));
        let mt = MediaType::from(crate::media_type::docker::MANIFEST_V1_SIGNED);
        assert!(matches!(
            AnyManifest::from_bytes(manifest_json(""), Some(&mt)),
            Err(Error::SchemaV1 { .. })
        ));
    }

    #[test]
    fn errors_name_the_field() {
        let bad_digest = manifest_json("").replace(&"a".repeat(64), "nothex");
        match Manifest::from_bytes(bad_digest) {
            Err(Error::Json { path, .. }) => assert_eq!(path, "layers[0].digest"),
            other => panic!("{other:?}"),
        }
        let bad_mt = manifest_json("").replace(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "not a media type",
        );
        assert_eq!(
            invalid_field(Manifest::from_bytes(bad_mt)),
            "layers[0].mediaType"
        );
        let neg = manifest_json("").replace(r#""size":5"#, r#""size":-5"#);
        match Manifest::from_bytes(neg) {
            Err(Error::Json { path, .. }) => assert_eq!(path, "layers[0].size"),
            other => panic!("{other:?}"),
        }
        let no_config = r#"{"schemaVersion":2,"layers":[]}"#;
        assert!(matches!(
            Manifest::from_bytes(no_config),
            Err(Error::Json { .. })
        ));
        let url = manifest_json("").replace(r#""size":5,"#, r#""size":5,"urls":["not a url"],"#);
        assert_eq!(
            invalid_field(Manifest::from_bytes(url)),
            "layers[0].urls[0]"
        );
    }

    #[test]
    fn empty_config_needs_artifact_type() {
        let raw = manifest_json("").replace(
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.empty.v1+json",
        );
        assert_eq!(
            invalid_field(Manifest::from_bytes(raw.clone())),
            "artifactType"
        );
        let with = raw.replace(
            r#""config""#,
            r#""artifactType":"application/vnd.example+json","config""#,
        );
        let m = Manifest::from_bytes(with).unwrap();
        assert_eq!(
            m.artifact_type().as_ref().map(|a| a.to_string()),
            Some("application/vnd.example+json".into())
        );
    }

    #[test]
    fn media_type_consistency() {
        // Body says manifest, caller says index.
        let e = Manifest::from_bytes_as(manifest_json(""), &MediaType::ImageIndex).unwrap_err();
        assert!(matches!(e, Error::UnexpectedMediaType { .. }), "{e:?}");
        // Body says OCI, caller says Docker manifest.
        let docker = MediaType::from(crate::media_type::docker::MANIFEST);
        let e = Manifest::from_bytes_as(manifest_json(""), &docker).unwrap_err();
        assert!(matches!(e, Error::UnexpectedMediaType { .. }), "{e:?}");
        // Body without mediaType takes the caller's.
        let bare = manifest_json("").replace(
            r#""mediaType":"application/vnd.oci.image.manifest.v1+json","#,
            "",
        );
        let m = Manifest::from_bytes_as(bare, &docker).unwrap();
        assert_eq!(m.media_type(), &docker);
        assert!(m.is_docker());
        // A manifest that also has `manifests` is ambiguous.
        let amb = manifest_json(r#","manifests":[]"#);
        assert_eq!(invalid_field(Manifest::from_bytes(amb)), "manifests");
        // An index read as a manifest.
        let idx = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        assert_eq!(invalid_field(Manifest::from_bytes(idx)), "manifests");
        // A manifest body that claims to be an index.
        let claims = manifest_json("").replace(
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
        );
        assert_eq!(invalid_field(Manifest::from_bytes(claims)), "mediaType");
    }

    #[test]
    fn any_manifest_tells_kinds_apart() {
        let idx = r#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(
            AnyManifest::from_bytes(idx, None).unwrap(),
            AnyManifest::Index(_)
        ));
        assert!(matches!(
            AnyManifest::from_bytes(manifest_json(""), None).unwrap(),
            AnyManifest::Manifest(_)
        ));
        let e = AnyManifest::from_bytes(idx, Some(&MediaType::ImageLayerGzip)).unwrap_err();
        assert!(matches!(e, Error::UnexpectedMediaType { .. }));
    }

    #[test]
    fn size_cap() {
        let raw = manifest_json(&format!(r#","x":"{}""#, "y".repeat(100)));
        let e = Manifest::from_bytes_with_limit(raw.clone(), None, 64).unwrap_err();
        assert!(matches!(e, Error::TooLarge { limit: 64, .. }));
        let e = Manifest::from_reader(std::io::repeat(b' '), None, 1000).unwrap_err();
        assert!(matches!(
            e,
            Error::TooLarge {
                limit: 1000,
                size: 1001,
                ..
            }
        ));
        let d = Descriptor::new(MediaType::ImageManifest, 10_000_000, sha256(b""));
        let e = Manifest::from_descriptor_reader(std::io::repeat(0), &d, DEFAULT_MAX_DOCUMENT_SIZE)
            .unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }));
    }

    #[test]
    fn descriptor_reader_verifies() {
        let raw = manifest_json("");
        let good = Descriptor::new(
            MediaType::ImageManifest,
            raw.len() as u64,
            sha256(raw.as_bytes()),
        );
        let m = Manifest::from_descriptor_reader(raw.as_bytes(), &good, DEFAULT_MAX_DOCUMENT_SIZE)
            .unwrap();
        assert_eq!(m.digest(), good.digest());
        let wrong = Descriptor::new(MediaType::ImageManifest, raw.len() as u64, sha256(b"other"));
        let e = Manifest::from_descriptor_reader(raw.as_bytes(), &wrong, DEFAULT_MAX_DOCUMENT_SIZE)
            .unwrap_err();
        assert!(matches!(e, Error::DigestMismatch { .. }), "{e:?}");
    }

    #[test]
    fn embedded_data_is_checked() {
        // base64("{}") = "e30="
        let ok = manifest_json("").replace(r#""size":2,"#, r#""size":2,"data":"e30=","#);
        Manifest::from_bytes(ok).unwrap();
        // base64("[]"): right size, wrong content.
        let wrong = manifest_json("").replace(r#""size":2,"#, r#""size":2,"data":"W10=","#);
        assert_eq!(invalid_field(Manifest::from_bytes(wrong)), "config.data");
        let garbage = manifest_json("").replace(r#""size":2,"#, r#""size":2,"data":"!!","#);
        assert_eq!(invalid_field(Manifest::from_bytes(garbage)), "config.data");
    }

    #[test]
    fn base64() {
        assert_eq!(decode_base64("").unwrap(), b"");
        assert_eq!(decode_base64("Zg==").unwrap(), b"f");
        assert_eq!(decode_base64("Zm8=").unwrap(), b"fo");
        assert_eq!(decode_base64("Zm9v").unwrap(), b"foo");
        assert_eq!(decode_base64("Zm9vYmFy").unwrap(), b"foobar");
        assert!(decode_base64("Zm9").is_none());
        assert!(decode_base64("Z===").is_none());
        assert!(decode_base64("Zg==Zg==").is_none());
        // Non-zero padding bits are not canonical.
        assert!(decode_base64("e31=").is_none());
        assert!(decode_base64("Zh==").is_none());
    }

    #[test]
    fn config_rules() {
        let good = r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"container_config":{"Hostname":"x"}}"#;
        let mut c = Config::from_bytes(good).unwrap();
        assert_eq!(c.media_type(), &MediaType::ImageConfig);
        c.edit(|c| {
            c.set_author(Some("me".into()));
        })
        .unwrap();
        let back: Value = serde_json::from_slice(c.raw()).unwrap();
        assert_eq!(back["container_config"]["Hostname"], "x");
        assert_eq!(back["author"], "me");
        let bad_type = good.replace(r#""type":"layers""#, r#""type":"tar""#);
        assert_eq!(invalid_field(Config::from_bytes(bad_type)), "rootfs.type");
        let bad_diff = good.replace(r#""diff_ids":[]"#, r#""diff_ids":["sha256:xyz"]"#);
        assert_eq!(
            invalid_field(Config::from_bytes(bad_diff)),
            "rootfs.diff_ids[0]"
        );
    }

    #[test]
    fn new_documents_serialise_and_validate() {
        let m = Manifest::from_bytes(manifest_json("")).unwrap();
        let fresh = Manifest::new(m.value().clone()).unwrap();
        assert_eq!(fresh.digest(), &sha256(fresh.raw()));
        assert_eq!(fresh.value(), m.value());
        let mut bad = m.value().clone();
        bad.set_schema_version(1);
        assert!(Manifest::new(bad).is_err());
    }

    #[test]
    fn not_an_object() {
        for raw in ["[]", "null", "2", "\"s\""] {
            assert!(
                matches!(Manifest::from_bytes(raw), Err(Error::Invalid { .. })),
                "{raw}"
            );
        }
        match Manifest::from_bytes("{\n  \"schemaVersion\": 2,\n  oops") {
            Err(Error::Json { line, .. }) => assert_eq!(line, 3),
            other => panic!("{other:?}"),
        }
    }
}
