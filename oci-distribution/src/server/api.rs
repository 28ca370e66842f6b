//! The distribution-spec v1.1 endpoints over the [`Store`].

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::time::Instant;

use super::http::{Method, Request, Response, ResponseBody};
use ocikit_image::oci_spec::image::{Descriptor, Digest, MediaType};
use ocikit_image::{
    AnyManifest, ContentKind, DocumentKind, MediaTypeExt, Tag, digest_bytes, digest_reader,
    parse_digest, read_capped,
};
use ocikit_layout::Layout;

use super::Htpasswd;
use super::names::{parse_query, percent_decode, percent_encode, ref_tag, tag_ref, valid_name};
use super::storage::{Session, Store};
use crate::ErrorCode;

/// What a request handler needs.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) store: Store,
    pub(crate) max_manifest_size: u64,
    pub(crate) max_blob_size: u64,
    pub(crate) users: Option<Htpasswd>,
}

/// A response before it is written.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: ResponseBody,
    len: u64,
}

impl Reply {
    fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: ResponseBody::Reader(Box::new(io::empty())),
            len: 0,
        }
    }

    fn bytes(status: u16, content_type: &str, bytes: Vec<u8>) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type", content_type.to_owned())],
            len: bytes.len() as u64,
            body: ResponseBody::Reader(Box::new(io::Cursor::new(bytes))),
        }
    }

    fn json(value: &serde_json::Value) -> Reply {
        Reply::bytes(
            200,
            "application/json",
            serde_json::to_vec(value).expect("JSON values serialise"),
        )
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

/// A refusal with the spec's error body, or a plain-text one.
struct ApiError {
    status: u16,
    /// `None`: the condition has no code in the spec, and the body is the message as text.
    code: Option<ErrorCode>,
    message: String,
    headers: Vec<(&'static str, String)>,
}

impl ApiError {
    fn new(status: u16, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: Some(code),
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// A refusal the spec has no error code for. "A `4XX` response code from the registry
    /// MAY return a body in any format. If the response body is in JSON format, ... The
    /// `code` field MUST be one of the following" (its table): so a condition outside that
    /// table is answered in plain text, never with a JSON code of our own.
    fn plain(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: None,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> ApiError {
        self.headers.push((name, value.into()));
        self
    }

    fn into_reply(self) -> Reply {
        let mut reply = match self.code {
            Some(code) => Reply::json(&serde_json::json!({"errors": [{
                "code": code.as_str(),
                "message": self.message,
                "detail": null,
            }]})),
            None => Reply::bytes(200, "text/plain; charset=utf-8", self.message.into_bytes()),
        };
        reply.status = self.status;
        reply.headers.extend(self.headers);
        reply
    }
}

type ApiResult = Result<Reply, ApiError>;

fn internal(e: impl std::fmt::Display) -> ApiError {
    // A 5xx: the spec's code table binds 4xx bodies only.
    ApiError::new(500, ErrorCode::Unknown("INTERNAL".into()), e.to_string())
}

fn blob_unknown() -> ApiError {
    ApiError::new(404, ErrorCode::BlobUnknown, "blob unknown to registry")
}

fn manifest_unknown() -> ApiError {
    ApiError::new(
        404,
        ErrorCode::ManifestUnknown,
        "manifest unknown to registry",
    )
}

fn upload_unknown() -> ApiError {
    ApiError::new(
        404,
        ErrorCode::BlobUploadUnknown,
        "blob upload unknown to registry",
    )
}

fn digest_invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(400, ErrorCode::DigestInvalid, message)
}

fn parse_digest_param(text: &str) -> Result<Digest, ApiError> {
    parse_digest(text).map_err(|e| digest_invalid(format!("{text:?}: {e}")))
}

/// Answers one request; never panics on input. What the handler leaves of the body is
/// drained by the connection.
pub(crate) fn handle(state: &State, req: &mut Request<'_>) -> Response {
    let reply = route(state, req).unwrap_or_else(ApiError::into_reply);
    let mut headers = vec![("Docker-Distribution-API-Version", "registry/2.0".to_owned())];
    headers.extend(reply.headers);
    Response {
        status: reply.status,
        headers,
        body: reply.body,
        len: reply.len,
    }
}

enum Target {
    Manifest(String),
    Blob(String),
    Upload(String),
    Tags,
    Referrers(String),
}

fn route(state: &State, req: &mut Request) -> ApiResult {
    if let Some(users) = &state.users
        && !users.check(req.header("Authorization"))
    {
        return Err(
            ApiError::new(401, ErrorCode::Unauthorized, "authentication required")
                .header("WWW-Authenticate", "Basic realm=\"ocikit-registry\""),
        );
    }
    let url = req.url().to_owned();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let query = parse_query(query);
    let q = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let method = req.method().clone();
    let not_found = || ApiError::plain(404, "no such route");
    let rest = match path.strip_prefix("/v2") {
        Some("") | Some("/") => {
            return match method {
                // "GET /v2/ ... 200 OK: the registry implements this specification."
                Method::Get | Method::Head => Ok(Reply::json(&serde_json::json!({}))),
                _ => Err(unsupported()),
            };
        }
        Some(rest) => rest.strip_prefix('/').ok_or_else(not_found)?,
        None => return Err(not_found()),
    };
    let segs: Vec<String> = rest
        .split('/')
        .map(percent_decode)
        .collect::<Option<_>>()
        .ok_or_else(not_found)?;
    if segs.len() == 1 && segs[0] == "_catalog" {
        return match method {
            Method::Get | Method::Head => catalog(state, q("n"), q("last")),
            _ => Err(unsupported()),
        };
    }
    let n = segs.len();
    let (name_len, target) = if n >= 3 && segs[n - 2] == "tags" && segs[n - 1] == "list" {
        (n - 2, Target::Tags)
    } else if n >= 3 && segs[n - 2] == "manifests" {
        (n - 2, Target::Manifest(segs[n - 1].clone()))
    } else if n >= 4 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
        (n - 3, Target::Upload(segs[n - 1].clone()))
    } else if n >= 3 && segs[n - 2] == "blobs" && segs[n - 1] == "uploads" && method == Method::Post
    {
        (n - 2, Target::Upload(String::new()))
    } else if n >= 3 && segs[n - 2] == "blobs" {
        (n - 2, Target::Blob(segs[n - 1].clone()))
    } else if n >= 3 && segs[n - 2] == "referrers" {
        (n - 2, Target::Referrers(segs[n - 1].clone()))
    } else {
        return Err(not_found());
    };
    let name = segs[..name_len].join("/");
    if !valid_name(&name) {
        return Err(ApiError::new(
            400,
            ErrorCode::NameInvalid,
            format!("invalid repository name {name:?}"),
        ));
    }
    let name = name.as_str();
    match (target, method) {
        (Target::Manifest(r), Method::Get | Method::Head) => get_manifest(state, name, &r),
        (Target::Manifest(r), Method::Put) => put_manifest(state, req, name, &r),
        (Target::Manifest(r), Method::Delete) => delete_manifest(state, name, &r),
        (Target::Blob(d), Method::Get | Method::Head) => get_blob(state, req, name, &d),
        (Target::Blob(d), Method::Delete) => delete_blob(state, name, &d),
        (Target::Upload(id), Method::Post) if id.is_empty() => {
            post_upload(state, req, name, q("mount"), q("from"), q("digest"))
        }
        (Target::Upload(id), Method::Patch) => patch_upload(state, req, name, &id),
        (Target::Upload(id), Method::Put) => put_upload(state, req, name, &id, q("digest")),
        (Target::Upload(id), Method::Get) => upload_status(state, name, &id),
        (Target::Upload(id), Method::Delete) => cancel_upload(state, name, &id),
        (Target::Tags, Method::Get | Method::Head) => tags(state, name, q("n"), q("last")),
        (Target::Referrers(d), Method::Get | Method::Head) => {
            referrers(state, name, &d, q("artifactType"))
        }
        _ => Err(unsupported()),
    }
}

fn unsupported() -> ApiError {
    ApiError::new(405, ErrorCode::Unsupported, "the operation is unsupported")
}

// ---- manifests --------------------------------------------------------------------------

enum Ref {
    Tag(Tag),
    Digest(Digest),
}

fn parse_ref(reference: &str) -> Option<Ref> {
    if reference.contains(':') {
        parse_digest(reference).ok().map(Ref::Digest)
    } else {
        Tag::new(reference).ok().map(Ref::Tag)
    }
}

/// The `index.json` entry a tag or digest names in a repository.
fn find_manifest(layout: &Layout, reference: &Ref) -> Option<Descriptor> {
    match reference {
        Ref::Digest(d) => layout
            .index()
            .ok()?
            .manifests()
            .iter()
            .find(|e| e.digest() == d)
            .cloned(),
        Ref::Tag(t) => layout.resolve_ref(&tag_ref(t)).ok()?.into_iter().next(),
    }
}

fn read_document(state: &State, layout: &Layout, d: &Descriptor) -> Option<Vec<u8>> {
    // Verified as read: the disk is not trusted.
    let blob = layout.open_blob(d).ok()?;
    read_capped(blob, state.max_manifest_size, DocumentKind::Manifest).ok()
}

fn get_manifest(state: &State, name: &str, reference: &str) -> ApiResult {
    let reference = parse_ref(reference).ok_or_else(manifest_unknown)?;
    let layout = state.store.layout(name).ok_or_else(manifest_unknown)?;
    let d = find_manifest(&layout, &reference).ok_or_else(manifest_unknown)?;
    let raw = read_document(state, &layout, &d).ok_or_else(manifest_unknown)?;
    // "The Content-Type header ... MUST match what was pushed"; the digest header is the
    // canonical digest of the content.
    Ok(Reply::bytes(200, d.media_type().as_ref(), raw)
        .header("Docker-Content-Digest", d.digest().to_string()))
}

fn put_manifest(state: &State, req: &mut Request, name: &str, reference: &str) -> ApiResult {
    let invalid = |m: String| ApiError::new(400, ErrorCode::ManifestInvalid, m);
    let reference = parse_ref(reference).ok_or_else(|| {
        if reference.contains(':') {
            digest_invalid(format!("invalid digest {reference:?}"))
        } else {
            invalid(format!("invalid tag {reference:?}"))
        }
    })?;
    let content_type = req
        .header("Content-Type")
        .map(|c| c.split(';').next().unwrap_or("").trim().to_owned())
        .filter(|c| !c.is_empty());
    if let Some(len) = req.body_length()
        && len as u64 > state.max_manifest_size
    {
        return Err(too_large(state));
    }
    let raw = read_capped(
        req.as_reader(),
        state.max_manifest_size,
        DocumentKind::Manifest,
    )
    .map_err(|e| match e {
        ocikit_image::Error::TooLarge { .. } => too_large(state),
        other => ApiError::new(400, ErrorCode::ManifestInvalid, other.to_string()),
    })?;
    let hint = content_type.as_deref().map(MediaType::from);
    let parsed =
        AnyManifest::from_bytes(raw.clone(), hint.as_ref()).map_err(|e| invalid(format!("{e}")))?;
    let (digest, tag) = match reference {
        Ref::Digest(want) => {
            let got = digest_bytes(want.algorithm(), &raw).map_err(internal)?;
            if got != want {
                // "If the digest does not match the content, the registry MUST respond with
                // 400 DIGEST_INVALID" (PUT by digest).
                return Err(digest_invalid(format!("the body's digest is {got}")));
            }
            (want, None)
        }
        // Every tag of the spec's grammar is taken, also those that are no layout reference
        // name as they are (`tag_ref`).
        Ref::Tag(t) => (ocikit_image::sha256(&raw), Some(tag_ref(&t))),
    };
    let existing = state.store.layout(name);
    if let AnyManifest::Manifest(m) = &parsed {
        // Every blob an image manifest references must be in the repository
        // (MANIFEST_BLOB_UNKNOWN); layers marked non-distributable live elsewhere by design.
        // An index may reference manifests that are absent (the spec lets an index describe
        // content the registry does not hold), so its children are not checked.
        for d in std::iter::once(m.config()).chain(m.layers().iter()) {
            if matches!(
                d.media_type().kind(),
                ContentKind::Layer {
                    distributable: false,
                    ..
                }
            ) {
                continue;
            }
            let present = existing
                .as_ref()
                .is_some_and(|l| l.has_blob(d.digest()).unwrap_or(false));
            if !present {
                return Err(ApiError::new(
                    400,
                    ErrorCode::ManifestBlobUnknown,
                    format!("blob {} is unknown to the repository", d.digest()),
                ));
            }
        }
    }
    let layout = match existing {
        Some(l) => l,
        None => state.store.layout_or_create(name).map_err(internal)?,
    };
    layout
        .write_blob(&raw[..], Some(&digest), Some(raw.len() as u64))
        .map_err(internal)?;
    let descriptor = Descriptor::new(parsed.media_type().clone(), raw.len() as u64, digest);
    // Listed without a name too, so the manifest stays reachable by digest (and part of the
    // layout) when its tag moves.
    layout.add_unnamed(&descriptor).map_err(internal)?;
    if let Some(tag) = tag {
        layout.set_ref(&tag, &descriptor).map_err(internal)?;
    }
    let mut reply = Reply::empty(201)
        .header(
            "Location",
            format!("/v2/{name}/manifests/{}", descriptor.digest()),
        )
        .header("Docker-Content-Digest", descriptor.digest().to_string());
    if let Some(subject) = parsed.subject() {
        // "If the manifest has a subject ... the registry MUST respond with the OCI-Subject
        // header set to the digest of the subject" (when it processes subjects).
        reply = reply.header("OCI-Subject", subject.digest().to_string());
    }
    Ok(reply)
}

fn too_large(state: &State) -> ApiError {
    ApiError::new(
        413,
        ErrorCode::ManifestInvalid,
        format!("manifests are limited to {} bytes", state.max_manifest_size),
    )
}

fn delete_manifest(state: &State, name: &str, reference: &str) -> ApiResult {
    let reference = parse_ref(reference).ok_or_else(manifest_unknown)?;
    let layout = state.store.layout(name).ok_or_else(manifest_unknown)?;
    match reference {
        Ref::Tag(t) => {
            layout.remove_ref(&tag_ref(&t), None).map_err(|e| {
                if e.is_not_found() {
                    manifest_unknown()
                } else {
                    internal(e)
                }
            })?;
        }
        Ref::Digest(d) => {
            // Its tags go with it. The blob stays until the layout is garbage-collected.
            if layout.remove_digest(&d).map_err(internal)? == 0 {
                return Err(manifest_unknown());
            }
        }
    }
    Ok(Reply::empty(202))
}

// ---- blobs ------------------------------------------------------------------------------

fn get_blob(state: &State, req: &Request, name: &str, digest: &str) -> ApiResult {
    let digest = parse_digest_param(digest)?;
    let layout = state.store.layout(name).ok_or_else(blob_unknown)?;
    let mut file = File::open(layout.blob_path(&digest)).map_err(|_| blob_unknown())?;
    let total = file.metadata().map_err(internal)?.len();
    let range = req.header("Range").map(|r| parse_range(r, total));
    let base = |status| {
        Reply::empty(status)
            .header("Content-Type", "application/octet-stream")
            .header("Docker-Content-Digest", digest.to_string())
            .header("Accept-Ranges", "bytes")
    };
    match range {
        None => {
            let mut reply = base(200);
            reply.len = total;
            reply.body = ResponseBody::File(file);
            Ok(reply)
        }
        Some(Some((start, end))) => {
            file.seek(SeekFrom::Start(start)).map_err(internal)?;
            let len = end - start + 1;
            let mut reply =
                base(206).header("Content-Range", format!("bytes {start}-{end}/{total}"));
            reply.len = len;
            // The response takes `len` bytes from where the file stands.
            reply.body = ResponseBody::File(file);
            Ok(reply)
        }
        Some(None) => Err(ApiError::plain(416, "range not satisfiable")
            .header("Content-Range", format!("bytes */{total}"))),
    }
}

/// One `bytes=` range of a blob of `total` bytes, as inclusive bounds; `None` when it cannot
/// be satisfied (or has several ranges, which are not served).
fn parse_range(header: &str, total: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let suffix: u64 = b.parse().ok()?;
        if suffix == 0 {
            return None;
        }
        (total.saturating_sub(suffix), total.checked_sub(1)?)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            total.checked_sub(1)?
        } else {
            b.parse::<u64>().ok()?.min(total.checked_sub(1)?)
        };
        (start, end)
    };
    (start <= end && start < total).then_some((start, end))
}

fn delete_blob(state: &State, name: &str, digest: &str) -> ApiResult {
    let digest = parse_digest_param(digest)?;
    let layout = state.store.layout(name).ok_or_else(blob_unknown)?;
    match std::fs::remove_file(layout.blob_path(&digest)) {
        Ok(()) => Ok(Reply::empty(202)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(blob_unknown()),
        Err(e) => Err(internal(e)),
    }
}

// ---- uploads ----------------------------------------------------------------------------

/// Stores `data` as blob `digest` of repository `name`, verified (and atomically, by the
/// layout). A blob that is there already is not written again, but `data` is still checked.
fn commit(state: &State, name: &str, digest: &Digest, data: impl Read) -> Result<(), ApiError> {
    let layout = state.store.layout_or_create(name).map_err(internal)?;
    let capped = data.take(state.max_blob_size.saturating_add(1));
    if layout.has_blob(digest).map_err(internal)? {
        let (got, size) = digest_reader(digest.algorithm(), capped).map_err(body_error)?;
        if size > state.max_blob_size {
            return Err(blob_too_large(state));
        }
        return if &got == digest {
            Ok(())
        } else {
            Err(digest_invalid(format!("the content's digest is {got}")))
        };
    }
    match layout.write_blob(capped, Some(digest), None) {
        Ok((_, size)) if size > state.max_blob_size => {
            let _ = std::fs::remove_file(layout.blob_path(digest));
            Err(blob_too_large(state))
        }
        Ok(_) => Ok(()),
        // "If the digest does not match, the registry MUST respond with DIGEST_INVALID."
        Err(ocikit_layout::Error::Verification { source, .. }) => Err(digest_invalid(format!(
            "the uploaded content does not match: {source}"
        ))),
        Err(ocikit_layout::Error::Io { source, .. }) => Err(body_error(source)),
        Err(e) => Err(internal(e)),
    }
}

fn body_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        400,
        ErrorCode::BlobUploadInvalid,
        format!("reading the upload: {e}"),
    )
}

fn blob_too_large(state: &State) -> ApiError {
    ApiError::new(
        413,
        ErrorCode::SizeInvalid,
        format!("blobs are limited to {} bytes", state.max_blob_size),
    )
}

fn blob_created(name: &str, digest: &Digest) -> Reply {
    Reply::empty(201)
        .header("Location", format!("/v2/{name}/blobs/{digest}"))
        .header("Docker-Content-Digest", digest.to_string())
}

fn session_reply(status: u16, name: &str, id: &str, size: u64) -> Reply {
    Reply::empty(status)
        .header("Location", format!("/v2/{name}/blobs/uploads/{id}"))
        // "Range: 0-<end-of-range>", inclusive: the offset of the last byte received.
        .header("Range", format!("0-{}", size.saturating_sub(1)))
        .header("Docker-Upload-UUID", id.to_owned())
}

fn post_upload(
    state: &State,
    req: &mut Request,
    name: &str,
    mount: Option<&str>,
    from: Option<&str>,
    digest: Option<&str>,
) -> ApiResult {
    if let Some(mount) = mount {
        let digest = parse_digest_param(mount)?;
        // "mount=<digest>&from=<other_repository>": mount from there. Without `from`, the
        // registry MAY mount from any repository it knows has the blob.
        let source = match from {
            Some(f) if valid_name(f) => Some(f.to_owned()),
            Some(_) => None,
            None => state.store.find_blob(&digest, name),
        };
        if let Some(source) = source
            && state
                .store
                .mount(&digest, &source, name)
                .map_err(internal)?
        {
            return Ok(blob_created(name, &digest));
        }
        // "If the registry ... is unable to mount the requested blob, it SHOULD return a 202.
        // This indicates that the upload session has begun" (below).
    } else if let Some(digest) = digest {
        // Monolithic: "POST /v2/<name>/blobs/uploads/?digest=<digest>" with the blob as body.
        let digest = parse_digest_param(digest)?;
        if let Some(len) = req.body_length()
            && len as u64 > state.max_blob_size
        {
            return Err(blob_too_large(state));
        }
        commit(state, name, &digest, req.as_reader())?;
        return Ok(blob_created(name, &digest));
    }
    let id = state.store.new_session(name).map_err(internal)?;
    Ok(session_reply(202, name, &id, 0))
}

/// Checks a chunk's `Content-Range: <start>-<end>` against the session: "the first chunk's
/// range MUST begin with 0 ... chunks MUST be uploaded in order ... 416 Requested Range Not
/// Satisfiable" otherwise.
fn check_chunk(req: &Request, name: &str, id: &str, s: &Session) -> Result<(), ApiError> {
    let Some(range) = req.header("Content-Range") else {
        return Ok(());
    };
    let out_of_order = || {
        let reply = session_reply(416, name, id, s.size);
        let mut e = ApiError::new(
            416,
            ErrorCode::BlobUploadInvalid,
            format!("chunk {range:?} does not start at offset {}", s.size),
        );
        e.headers = reply.headers;
        e
    };
    let spec = range.trim();
    let spec = spec.strip_prefix("bytes ").unwrap_or(spec);
    let spec = spec.split('/').next().unwrap_or("");
    let (start, end) = spec.split_once('-').ok_or_else(out_of_order)?;
    let start: u64 = start.trim().parse().map_err(|_| out_of_order())?;
    let end: u64 = end.trim().parse().map_err(|_| out_of_order())?;
    if start != s.size || end < start {
        return Err(out_of_order());
    }
    if let Some(len) = req.body_length()
        && len as u64 != end - start + 1
    {
        return Err(out_of_order());
    }
    Ok(())
}

/// Appends the request body to the session.
fn append(state: &State, req: &mut Request, s: &mut Session) -> Result<(), ApiError> {
    let room = state.max_blob_size.saturating_sub(s.size);
    if let Some(len) = req.body_length()
        && len as u64 > room
    {
        return Err(blob_too_large(state));
    }
    let mut file = Store::append(s).map_err(internal)?;
    let copied = io::copy(&mut req.as_reader().take(room.saturating_add(1)), &mut file);
    s.touched = Instant::now();
    match copied {
        Ok(n) => {
            s.size += n;
            if n > room {
                return Err(blob_too_large(state));
            }
            Ok(())
        }
        Err(e) => {
            // What arrived stays: the client may ask for the status and resume.
            s.size = file.metadata().map(|m| m.len()).unwrap_or(s.size);
            Err(body_error(e))
        }
    }
}

fn patch_upload(state: &State, req: &mut Request, name: &str, id: &str) -> ApiResult {
    let session = state.store.session(name, id).ok_or_else(upload_unknown)?;
    let mut s = session.lock().expect("not poisoned");
    check_chunk(req, name, id, &s)?;
    append(state, req, &mut s)?;
    Ok(session_reply(202, name, id, s.size))
}

fn put_upload(
    state: &State,
    req: &mut Request,
    name: &str,
    id: &str,
    digest: Option<&str>,
) -> ApiResult {
    let session = state.store.session(name, id).ok_or_else(upload_unknown)?;
    let digest = parse_digest_param(
        digest.ok_or_else(|| digest_invalid("the digest query parameter is required"))?,
    )?;
    let mut s = session.lock().expect("not poisoned");
    check_chunk(req, name, id, &s)?;
    let result = if s.size == 0 {
        // POST then PUT of the whole blob: straight from the request into the layout.
        if let Some(len) = req.body_length()
            && len as u64 > state.max_blob_size
        {
            Err(blob_too_large(state))
        } else {
            commit(state, name, &digest, req.as_reader())
        }
    } else {
        append(state, req, &mut s).and_then(|()| {
            let file = File::open(&s.path).map_err(internal)?;
            commit(state, name, &digest, file)
        })
    };
    // The session ends with its final PUT, whatever the outcome.
    state.store.end_session(id, &s.path);
    result.map(|()| blob_created(name, &digest))
}

fn upload_status(state: &State, name: &str, id: &str) -> ApiResult {
    let session = state.store.session(name, id).ok_or_else(upload_unknown)?;
    let s = session.lock().expect("not poisoned");
    Ok(session_reply(204, name, id, s.size))
}

fn cancel_upload(state: &State, name: &str, id: &str) -> ApiResult {
    let session = state.store.session(name, id).ok_or_else(upload_unknown)?;
    let s = session.lock().expect("not poisoned");
    state.store.end_session(id, &s.path);
    Ok(Reply::empty(204))
}

// ---- listings -----------------------------------------------------------------------------

/// One page of `items` (sorted): those after `last`, at most `n`; and whether more follow.
fn page(
    items: Vec<String>,
    n: Option<&str>,
    last: Option<&str>,
) -> Result<(Vec<String>, Option<usize>, bool), ApiError> {
    let n = match n {
        None | Some("") => None,
        Some(text) => Some(
            text.parse::<usize>()
                .map_err(|_| ApiError::plain(400, format!("invalid n {text:?}")))?,
        ),
    };
    let mut items: Vec<String> = match last {
        Some(last) if !last.is_empty() => items.into_iter().filter(|t| t.as_str() > last).collect(),
        _ => items,
    };
    let more = n.is_some_and(|n| items.len() > n);
    if let Some(n) = n {
        items.truncate(n);
    }
    // "If n is zero, ... the registry MUST NOT include a Link header" (an empty page).
    Ok((items, n, more && n != Some(0)))
}

fn link(path: &str, n: Option<usize>, last: Option<&String>) -> String {
    format!(
        "<{path}?n={}&last={}>; rel=\"next\"",
        n.unwrap_or(0),
        percent_encode(last.map(String::as_str).unwrap_or(""))
    )
}

fn tags(state: &State, name: &str, n: Option<&str>, last: Option<&str>) -> ApiResult {
    let layout = state.store.layout(name).ok_or_else(|| {
        ApiError::new(
            404,
            ErrorCode::NameUnknown,
            "repository name not known to registry",
        )
    })?;
    let mut all: Vec<String> = layout
        .refs()
        .map_err(internal)?
        .into_iter()
        .filter_map(|(r, _)| ref_tag(&r).map(|t| t.as_str().to_owned()))
        .collect();
    // "the list of tags MUST be in lexical order"
    all.sort();
    all.dedup();
    let (items, n, more) = page(all, n, last)?;
    let mut reply = Reply::json(&serde_json::json!({"name": name, "tags": items}));
    if more {
        reply = reply.header(
            "Link",
            link(&format!("/v2/{name}/tags/list"), n, items.last()),
        );
    }
    Ok(reply)
}

fn catalog(state: &State, n: Option<&str>, last: Option<&str>) -> ApiResult {
    let (items, n, more) = page(state.store.repositories(), n, last)?;
    let mut reply = Reply::json(&serde_json::json!({"repositories": items}));
    if more {
        reply = reply.header("Link", link("/v2/_catalog", n, items.last()));
    }
    Ok(reply)
}

fn referrers(state: &State, name: &str, subject: &str, artifact_type: Option<&str>) -> ApiResult {
    let subject = parse_digest_param(subject)?;
    let mut manifests = Vec::new();
    if let Some(layout) = state.store.layout(name) {
        let index = layout.index().map_err(internal)?;
        let mut seen = std::collections::HashSet::new();
        for d in index.manifests() {
            if !seen.insert(d.digest().clone()) {
                continue;
            }
            let Some(raw) = read_document(state, &layout, d) else {
                continue;
            };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&raw) else {
                continue;
            };
            if v["subject"]["digest"].as_str() != Some(subject.as_ref()) {
                continue;
            }
            // "artifactType: the artifactType of the manifest, or, when empty or missing in
            // an image manifest, the mediaType of its config descriptor."
            let kind = v["artifactType"]
                .as_str()
                .filter(|s| !s.is_empty())
                .or_else(|| v["config"]["mediaType"].as_str());
            if artifact_type.is_some_and(|want| kind != Some(want)) {
                continue;
            }
            let mut entry = serde_json::json!({
                "mediaType": d.media_type().to_string(),
                "digest": d.digest().to_string(),
                "size": d.size(),
            });
            if let Some(kind) = kind {
                entry["artifactType"] = kind.into();
            }
            if v["annotations"].is_object() {
                entry["annotations"] = v["annotations"].clone();
            }
            manifests.push(entry);
        }
    }
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let mut reply = Reply::bytes(
        200,
        "application/vnd.oci.image.index.v1+json",
        serde_json::to_vec(&body).expect("JSON values serialise"),
    );
    if artifact_type.is_some() {
        // "... the registry MUST include the OCI-Filters-Applied header with the filters
        // applied" (artifactType is the one filter defined).
        reply = reply.header("OCI-Filters-Applied", "artifactType");
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=50-500", 100), Some((50, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-4", 100), None);
        assert_eq!(parse_range("bytes=0-1,3-4", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(parse_range("bytes=0-0", 0), None);
    }

    #[test]
    fn pages() {
        let all: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let (p, _, more) = page(all.clone(), Some("2"), None).ok().unwrap();
        assert_eq!((p, more), (vec!["a".to_string(), "b".into()], true));
        let (p, _, more) = page(all.clone(), Some("2"), Some("b")).ok().unwrap();
        assert_eq!((p, more), (vec!["c".to_string(), "d".into()], false));
        let (p, _, more) = page(all.clone(), Some("0"), None).ok().unwrap();
        assert!(p.is_empty() && !more);
        let (p, _, more) = page(all.clone(), None, Some("c")).ok().unwrap();
        assert_eq!((p, more), (vec!["d".to_string()], false));
        assert!(page(all, Some("x"), None).is_err());
    }
}
