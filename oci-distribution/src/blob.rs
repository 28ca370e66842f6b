//! Blob downloads that resume after a dropped connection, and blob uploads.

use std::io::{self, Read};

use oci_spec::image::{Descriptor, Digest};
use ureq::http::Method;

use crate::client::{Body, Request, header, read_body, status_error};
use crate::{Error, Repository, Result};

/// A blob download: the bytes the registry sends, as they come, resuming with `Range` from
/// where it stopped when the connection drops (up to the client's resume budget).
///
/// It does not verify: [`Repository::get_blob`] wraps it in a
/// [`VerifyingReader`](ocikit_image::VerifyingReader).
pub struct BlobStream {
    repo: Repository,
    digest: Digest,
    size: Option<u64>,
    offset: u64,
    body: Option<Download>,
    resumes_left: u32,
    resumed: u32,
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStream")
            .field("digest", &self.digest)
            .field("size", &self.size)
            .field("offset", &self.offset)
            .field("resumed", &self.resumed)
            .finish_non_exhaustive()
    }
}

impl BlobStream {
    pub(crate) fn open(repo: Repository, descriptor: &Descriptor) -> Result<Self> {
        let resumes_left = repo.client().config().resume_attempts;
        let mut s = BlobStream {
            repo,
            digest: descriptor.digest().clone(),
            size: Some(descriptor.size()),
            offset: 0,
            body: None,
            resumes_left,
            resumed: 0,
        };
        s.connect()?;
        Ok(s)
    }

    /// Bytes received so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// How many times the download resumed after a dropped connection.
    pub fn resumed(&self) -> u32 {
        self.resumed
    }

    fn connect(&mut self) -> Result<()> {
        let url = self.repo.url(&format!("blobs/{}", self.digest));
        let request = || {
            let mut req = Request::new(Method::GET, url.clone(), self.repo.registry())
                .scope(self.repo.scope(false));
            if self.offset > 0 {
                req = req.header("range", format!("bytes={}-", self.offset));
            }
            req
        };
        let resp = self.repo.client().execute(request())?;
        let body = self.start(&url, resp)?;
        self.body = Some(body);
        Ok(())
    }

    /// Checks the answer to a `GET` from `self.offset` and returns its body, positioned at
    /// that offset.
    fn start(&self, url: &str, resp: ureq::http::Response<ureq::Body>) -> Result<Download> {
        let status = resp.status().as_u16();
        let mut skip = 0;
        match status {
            200 => skip = self.offset,
            206 if self.offset > 0 => {
                let start = header(&resp, "content-range")
                    .and_then(|r| {
                        r.trim_start_matches("bytes")
                            .trim()
                            .split('-')
                            .next()
                            .and_then(|s| s.trim().parse::<u64>().ok())
                    })
                    .unwrap_or(self.offset);
                if start != self.offset {
                    return Err(Error::Protocol {
                        url: url.to_owned(),
                        message: format!(
                            "asked for bytes from {}, got a range from {start}",
                            self.offset
                        ),
                    });
                }
            }
            _ => return Err(status_error(&Method::GET, url, resp)),
        }
        let mut body = resp.into_body().into_reader();
        if skip > 0 {
            // The server ignored `Range`: drop what was already delivered.
            let skipped = io::copy(&mut (&mut body).take(skip), &mut io::sink())?;
            if skipped != skip {
                return Err(Error::Protocol {
                    url: url.to_owned(),
                    message: "blob shorter on retry than before".into(),
                });
            }
        }
        Ok(body)
    }

    fn resume(&mut self, why: io::Error) -> io::Result<()> {
        self.body = None;
        if self.resumes_left == 0 {
            return Err(why);
        }
        self.resumes_left -= 1;
        self.resumed += 1;
        self.connect().map_err(Error::into_io)
    }
}

impl Read for BlobStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(body) = self.body.as_mut() else {
                return Ok(0);
            };
            match body.read(buf) {
                Ok(0) => {
                    if self.size.is_some_and(|s| self.offset < s) {
                        self.resume(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "blob connection closed early",
                        ))?;
                        continue;
                    }
                    self.body = None;
                    return Ok(0);
                }
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.resume(e)?;
                }
            }
        }
    }
}

/// The body of a blob download.
type Download = ureq::BodyReader<'static>;

/// Resolves a `Location` header against the registry's base URL.
fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_owned()
    } else if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        format!("{base}/{location}")
    }
}

fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={}", encode_query(value))
}

/// Percent-encodes what a query value may not contain (digests and repository names only
/// need `:` and `/` to pass, which are allowed; `+`, `&`, `=`, `#`, `%` and spaces are not).
pub(crate) fn encode_query(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Passes a verifying stream through, but checks it ends verified *before* handing out the
/// bytes that complete the declared size: a registry never receives the last byte of content
/// that failed our verification, so it cannot commit it.
struct VerifyBeforeLast<'a, R: Read> {
    inner: &'a mut ocikit_image::VerifyingReader<R>,
    size: u64,
}

impl<R: Read> Read for VerifyBeforeLast<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let before = self.inner.bytes_read();
        let want = (buf.len() as u64).min(self.size.saturating_sub(before)) as usize;
        if want == 0 {
            return self.inner.read(&mut buf[..0]).map(|_| 0);
        }
        let n = self.inner.read(&mut buf[..want])?;
        if n > 0 && before + n as u64 == self.size {
            // The end of the content: the verifier speaks now (EOF, or too long).
            let mut probe = [0u8; 1];
            self.inner.read(&mut probe)?;
        }
        Ok(n)
    }
}

/// What [`Repository::copy_blob_from_repository`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobCopy {
    /// The destination had the blob already.
    Skipped,
    /// The registry mounted it from the source repository: no bytes moved.
    Mounted,
    /// The bytes were streamed from the source and uploaded.
    Uploaded,
}

/// An upload session.
struct Upload {
    location: String,
    min_chunk: u64,
}

impl Repository {
    fn upload_location(
        &self,
        resp: &ureq::http::Response<ureq::Body>,
        url: &str,
    ) -> Result<String> {
        let base = self.client().base_url(self.registry());
        header(resp, "location")
            .map(|l| absolute(&base, &l))
            .ok_or_else(|| Error::Protocol {
                url: url.to_owned(),
                message: "upload answer without Location".into(),
            })
    }

    fn start_upload(&self) -> Result<Upload> {
        let url = self.url("blobs/uploads/");
        let req = Request::new(Method::POST, url.clone(), self.registry()).scope(self.scope(true));
        let mut resp = self.client().execute(req)?;
        if resp.status().as_u16() != 202 {
            return Err(status_error(&Method::POST, &url, resp));
        }
        let location = self.upload_location(&resp, &url)?;
        let min_chunk = header(&resp, "oci-chunk-min-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let _ = read_body(&mut resp, 64 << 10);
        Ok(Upload {
            location,
            min_chunk,
        })
    }

    fn cancel_upload(&self, location: &str) {
        let req = Request::new(Method::DELETE, location.to_owned(), self.registry())
            .scope(self.scope(true));
        if let Ok(mut resp) = self.client().execute(req) {
            let _ = read_body(&mut resp, 64 << 10);
        }
    }

    /// Mounts a blob of `from_repository` (same registry) here without uploading it
    /// (`POST ...?mount=&from=`). `Ok(false)` when the registry declines (it does not have
    /// the blob there, or does not mount); nothing was uploaded then.
    pub fn mount_blob(&self, descriptor: &Descriptor, from_repository: &str) -> Result<bool> {
        let url = format!(
            "{}?mount={}&from={}",
            self.url("blobs/uploads/"),
            encode_query(descriptor.digest().as_ref()),
            encode_query(from_repository)
        );
        let req = Request::new(Method::POST, url.clone(), self.registry())
            .scope(self.scope(true))
            .scope(format!("repository:{from_repository}:pull"));
        let mut resp = match self.client().execute(req) {
            Ok(r) => r,
            // A token server may refuse the source scope: that is a decline, not a failure.
            Err(Error::Auth { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        match resp.status().as_u16() {
            201 => {
                let _ = read_body(&mut resp, 64 << 10);
                Ok(true)
            }
            202 => {
                // Declined: the registry opened an ordinary upload instead; close it.
                let location = self.upload_location(&resp, &url).ok();
                let _ = read_body(&mut resp, 64 << 10);
                if let Some(l) = location {
                    self.cancel_upload(&l);
                }
                Ok(false)
            }
            _ => Err(status_error(&Method::POST, &url, resp)),
        }
    }

    /// Copies a blob from another repository: nothing when this one has it, a
    /// cross-repository mount when both are on the same registry and it agrees, else a
    /// streamed upload (verified once, as it is sent).
    pub fn copy_blob_from_repository(
        &self,
        source: &Repository,
        descriptor: &Descriptor,
    ) -> Result<BlobCopy> {
        if self.blob_exists(descriptor.digest())?.is_some() {
            return Ok(BlobCopy::Skipped);
        }
        if source.registry() == self.registry()
            && source.name() != self.name()
            && self.mount_blob(descriptor, source.name())?
        {
            return Ok(BlobCopy::Mounted);
        }
        let mut stream = source.get_blob_unverified(descriptor)?;
        self.push_new_blob(descriptor, &mut stream)?;
        Ok(BlobCopy::Uploaded)
    }

    /// Uploads a blob read from `data` unless the registry has it (checked first). Returns
    /// whether bytes were uploaded.
    ///
    /// Blobs up to the chunk size go in one `PUT` after the `POST` that opens the session;
    /// larger ones in `PATCH` chunks with `Content-Range`. The stream is verified on our side
    /// (digest and size, before the final `PUT`), and the registry verifies the digest too
    /// before the blob becomes visible.
    pub fn push_blob(&self, descriptor: &Descriptor, data: &mut dyn Read) -> Result<bool> {
        if self.blob_exists(descriptor.digest())?.is_some() {
            return Ok(false);
        }
        self.push_new_blob(descriptor, data)?;
        Ok(true)
    }

    /// Uploads a blob without checking first whether the registry has it.
    pub(crate) fn push_new_blob(&self, descriptor: &Descriptor, data: &mut dyn Read) -> Result<()> {
        let upload = self.start_upload()?;
        let location = upload.location.clone();
        match self.upload(descriptor, data, upload) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.cancel_upload(&location);
                Err(e)
            }
        }
    }

    fn upload(&self, descriptor: &Descriptor, data: &mut dyn Read, upload: Upload) -> Result<()> {
        let size = descriptor.size();
        let digest = descriptor.digest().to_string();
        let mut verifying = ocikit_image::VerifyingReader::for_descriptor(data, descriptor)?;
        let mut guarded = VerifyBeforeLast {
            inner: &mut verifying,
            size,
        };
        let chunk = self.client().config().chunk_size.max(upload.min_chunk);
        let mut location = upload.location;
        if size > chunk {
            let mut offset = 0u64;
            while offset < size {
                let n = chunk.min(size - offset);
                let mut part = (&mut guarded).take(n);
                let req = Request::new(Method::PATCH, location.clone(), self.registry())
                    .scope(self.scope(true))
                    .header("content-type", "application/octet-stream")
                    .header("content-range", format!("{offset}-{}", offset + n - 1))
                    .body(Body::Stream(&mut part, n));
                let mut resp = self.client().execute(req)?;
                if resp.status().as_u16() != 202 {
                    return Err(status_error(&Method::PATCH, &location, resp));
                }
                location = self.upload_location(&resp, &location)?;
                let _ = read_body(&mut resp, 64 << 10);
                offset += n;
            }
            // Our side: the stream must end here with the right digest before we commit.
            guarded.inner.finish()?;
            let url = with_query(&location, "digest", &digest);
            let req =
                Request::new(Method::PUT, url.clone(), self.registry()).scope(self.scope(true));
            self.finish_put(req, &url)
        } else {
            let url = with_query(&location, "digest", &digest);
            let req = Request::new(Method::PUT, url.clone(), self.registry())
                .scope(self.scope(true))
                .header("content-type", "application/octet-stream")
                .body(Body::Stream(&mut guarded, size));
            self.finish_put(req, &url)
        }
    }

    fn finish_put(&self, req: Request<'_>, url: &str) -> Result<()> {
        let mut resp = self.client().execute(req)?;
        if resp.status().as_u16() != 201 {
            return Err(status_error(&Method::PUT, url, resp));
        }
        let _ = read_body(&mut resp, 64 << 10);
        Ok(())
    }

    /// Uploads bytes in memory as a blob (for configs and small artifacts), unless present;
    /// with [`single_post_upload`](crate::ClientBuilder::single_post_upload), in one request
    /// where the registry supports it. The bytes are verified before anything is sent.
    pub fn push_blob_bytes(&self, descriptor: &Descriptor, bytes: &[u8]) -> Result<bool> {
        if !self.client().config().single_post {
            return self.push_blob(descriptor, &mut io::Cursor::new(bytes));
        }
        let mut check = ocikit_image::VerifyingReader::for_descriptor(bytes, descriptor)?;
        io::copy(&mut check, &mut io::sink())?;
        if self.blob_exists(descriptor.digest())?.is_some() {
            return Ok(false);
        }
        let url = with_query(
            &self.url("blobs/uploads/"),
            "digest",
            descriptor.digest().as_ref(),
        );
        let req = Request::new(Method::POST, url.clone(), self.registry())
            .scope(self.scope(true))
            .header("content-type", "application/octet-stream")
            .body(Body::Bytes(bytes));
        let mut resp = self.client().execute(req)?;
        match resp.status().as_u16() {
            201 => {
                let _ = read_body(&mut resp, 64 << 10);
                Ok(true)
            }
            202 => {
                // The registry opened a session and ignored the bytes: finish with a PUT.
                let location = self.upload_location(&resp, &url)?;
                let _ = read_body(&mut resp, 64 << 10);
                let put = with_query(&location, "digest", descriptor.digest().as_ref());
                let req = Request::new(Method::PUT, put.clone(), self.registry())
                    .scope(self.scope(true))
                    .header("content-type", "application/octet-stream")
                    .body(Body::Bytes(bytes));
                self.finish_put(req, &put)?;
                Ok(true)
            }
            _ => Err(status_error(&Method::POST, &url, resp)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            absolute("http://h:1", "/v2/a/blobs/uploads/x?s=1"),
            "http://h:1/v2/a/blobs/uploads/x?s=1"
        );
        assert_eq!(absolute("http://h:1", "https://s3/x"), "https://s3/x");
        assert_eq!(
            with_query("http://h/u?_state=a", "digest", "sha256:ab"),
            "http://h/u?_state=a&digest=sha256:ab"
        );
        assert_eq!(
            with_query("http://h/u", "digest", "a+b c"),
            "http://h/u?digest=a%2Bb%20c"
        );
    }
}
