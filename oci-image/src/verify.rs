//! Streams that hash what passes through them.
//!
//! - [`VerifyingReader`] checks a stream against an expected digest and size and fails at EOF
//!   (or as soon as the stream is longer than declared) when they do not match.
//! - [`DigestingReader`] and [`DigestingWriter`] compute the digest and size of what passes, for
//!   content whose digest is not known in advance.

use std::io::{self, Read, Write};

use oci_spec::image::{Descriptor, Digest};

use crate::{Error, Hasher, Result};

/// A reader that verifies the stream it wraps against an expected digest and size.
///
/// Bytes are passed through as they are read, so a consumer must not treat them as trusted
/// until the reader has returned `Ok(0)` (EOF): only then has the whole stream been checked.
/// A stream that is too short, too long or has the wrong digest makes `read` fail with an
/// [`io::Error`] of kind [`io::ErrorKind::InvalidData`] carrying an [`Error::SizeMismatch`] or
/// [`Error::DigestMismatch`], which [`Error::from`] recovers. A stream longer than declared is
/// refused as soon as the extra byte arrives; the reader never reads more than one byte past the
/// declared size.
///
/// The error is sticky: once the stream failed verification, every later `read` fails again.
///
/// ```
/// use std::io::Read;
/// use ocikit_image::{sha256, Error, VerifyingReader};
///
/// let data = b"layer bytes";
/// let mut ok = VerifyingReader::new(&data[..], sha256(data), Some(data.len() as u64))?;
/// let mut out = Vec::new();
/// ok.read_to_end(&mut out)?;
///
/// let mut bad = VerifyingReader::new(&b"tampered!!!"[..], sha256(data), Some(11))?;
/// let err = bad.read_to_end(&mut Vec::new()).unwrap_err();
/// assert!(matches!(Error::from(err), Error::DigestMismatch { .. }));
/// # Ok::<_, Error>(())
/// ```
#[derive(Debug)]
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    expected: Digest,
    expected_size: Option<u64>,
    read: u64,
    failed: Option<Failure>,
}

#[derive(Debug, Clone)]
enum Failure {
    Digest(Digest),
    Size(u64),
}

impl<R: Read> VerifyingReader<R> {
    /// Wraps `inner`, expecting `digest` and, when given, `size` bytes.
    ///
    /// Fails with [`Error::UnsupportedAlgorithm`] when the digest's algorithm cannot be
    /// computed.
    pub fn new(inner: R, digest: Digest, size: Option<u64>) -> Result<Self> {
        let hasher = Hasher::new(digest.algorithm())?;
        Ok(VerifyingReader {
            inner,
            hasher: Some(hasher),
            expected: digest,
            expected_size: size,
            read: 0,
            failed: None,
        })
    }

    /// Wraps `inner`, expecting the digest and size of `descriptor`.
    pub fn for_descriptor(inner: R, descriptor: &Descriptor) -> Result<Self> {
        Self::new(inner, descriptor.digest().clone(), Some(descriptor.size()))
    }

    /// The digest the stream must have.
    pub fn expected_digest(&self) -> &Digest {
        &self.expected
    }

    /// The size the stream must have, if one was given.
    pub fn expected_size(&self) -> Option<u64> {
        self.expected_size
    }

    /// How many bytes have been read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// True once the whole stream was read and matched.
    pub fn is_verified(&self) -> bool {
        self.hasher.is_none() && self.failed.is_none()
    }

    /// The wrapped reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The wrapped reader, mutably. Reading from it directly bypasses verification.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Gives the wrapped reader back.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Reads the rest of the stream into `sink`'s oblivion and reports whether it verified.
    ///
    /// Useful when a consumer stops reading early (a tar reader stops at the end-of-archive
    /// marker, before any padding) but the whole blob must still be checked.
    pub fn finish(&mut self) -> Result<()> {
        io::copy(self, &mut io::sink())?;
        Ok(())
    }

    fn failure_error(&self, failure: &Failure) -> io::Error {
        match failure {
            Failure::Digest(actual) => Error::DigestMismatch {
                expected: self.expected.clone(),
                actual: actual.clone(),
            },
            Failure::Size(actual) => Error::SizeMismatch {
                expected: self.expected_size.unwrap_or_default(),
                actual: *actual,
            },
        }
        .into_io()
    }

    fn fail(&mut self, failure: Failure) -> io::Error {
        let e = self.failure_error(&failure);
        self.failed = Some(failure);
        self.hasher = None;
        e
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(f) = &self.failed {
            return Err(self.failure_error(f));
        }
        if self.hasher.is_none() || buf.is_empty() {
            // Already verified at EOF (or nothing asked for).
            return Ok(0);
        }
        // Never ask for more than one byte past the declared size: enough to notice a stream
        // that is too long without reading a hostile one to its end.
        let want = match self.expected_size {
            Some(size) => {
                let left = size.saturating_sub(self.read).saturating_add(1);
                buf.len().min(usize::try_from(left).unwrap_or(usize::MAX))
            }
            None => buf.len(),
        };
        let n = loop {
            match self.inner.read(&mut buf[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        self.read += n as u64;
        if let Some(size) = self.expected_size
            && self.read > size
        {
            return Err(self.fail(Failure::Size(self.read)));
        }
        if n > 0 {
            if let Some(h) = &mut self.hasher {
                h.update(&buf[..n]);
            }
            return Ok(n);
        }
        // EOF: check size, then digest.
        if let Some(size) = self.expected_size
            && self.read != size
        {
            return Err(self.fail(Failure::Size(self.read)));
        }
        let actual = self.hasher.take().expect("checked above").finish();
        if actual != self.expected {
            return Err(self.fail(Failure::Digest(actual)));
        }
        Ok(0)
    }
}

/// A reader that computes the digest and size of what is read through it.
///
/// ```
/// use std::io::Read;
/// let mut r = ocikit_image::DigestingReader::sha256(&b"abc"[..]);
/// r.read_to_end(&mut Vec::new())?;
/// assert_eq!(r.size(), 3);
/// assert_eq!(r.digest(), ocikit_image::sha256(b"abc"));
/// # Ok::<_, ocikit_image::Error>(())
/// ```
#[derive(Debug)]
pub struct DigestingReader<R> {
    inner: R,
    hasher: Hasher,
    size: u64,
}

impl<R: Read> DigestingReader<R> {
    /// Wraps `inner`, hashing with `hasher`.
    pub fn new(inner: R, hasher: Hasher) -> Self {
        DigestingReader {
            inner,
            hasher,
            size: 0,
        }
    }

    /// Wraps `inner`, hashing with sha256.
    pub fn sha256(inner: R) -> Self {
        Self::new(inner, Hasher::sha256())
    }

    /// The digest of what was read so far.
    pub fn digest(&self) -> Digest {
        self.hasher.clone().finish()
    }

    /// How many bytes were read so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The wrapped reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The wrapped reader, mutably. Bytes read from it directly are not hashed.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The wrapped reader, the digest and the size of what was read.
    pub fn into_parts(self) -> (R, Digest, u64) {
        (self.inner, self.hasher.finish(), self.size)
    }
}

impl<R: Read> Read for DigestingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// A writer that computes the digest and size of what is written through it.
///
/// ```
/// use std::io::Write;
/// let mut w = ocikit_image::DigestingWriter::sha256(Vec::new());
/// w.write_all(b"abc")?;
/// let (bytes, digest, size) = w.into_parts();
/// assert_eq!((bytes.as_slice(), size), (&b"abc"[..], 3));
/// assert_eq!(digest, ocikit_image::sha256(b"abc"));
/// # Ok::<_, ocikit_image::Error>(())
/// ```
#[derive(Debug)]
pub struct DigestingWriter<W> {
    inner: W,
    hasher: Hasher,
    size: u64,
}

impl<W: Write> DigestingWriter<W> {
    /// Wraps `inner`, hashing with `hasher`.
    pub fn new(inner: W, hasher: Hasher) -> Self {
        DigestingWriter {
            inner,
            hasher,
            size: 0,
        }
    }

    /// Wraps `inner`, hashing with sha256.
    pub fn sha256(inner: W) -> Self {
        Self::new(inner, Hasher::sha256())
    }

    /// The digest of what was written so far.
    pub fn digest(&self) -> Digest {
        self.hasher.clone().finish()
    }

    /// How many bytes were written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The wrapped writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The wrapped writer, mutably. Bytes written to it directly are not hashed.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The wrapped writer, the digest and the size of what was written.
    pub fn into_parts(self) -> (W, Digest, u64) {
        (self.inner, self.hasher.finish(), self.size)
    }
}

impl<W: Write> Write for DigestingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Hash only what the inner writer accepted.
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sha256;
    use proptest::prelude::*;

    /// Returns at most `max` bytes per `read`, as sockets and pipes do.
    struct Trickle<'a> {
        data: &'a [u8],
        max: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.max).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn read_all(r: &mut impl Read) -> std::result::Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn exact_stream_verifies() {
        let data = b"0123456789";
        let mut r = VerifyingReader::new(&data[..], sha256(data), Some(10)).unwrap();
        assert!(!r.is_verified());
        assert_eq!(read_all(&mut r).unwrap(), data);
        assert!(r.is_verified());
        // Reading again after EOF stays at EOF.
        assert_eq!(r.read(&mut [0; 4]).unwrap(), 0);
    }

    #[test]
    fn short_stream_is_size_mismatch() {
        let data = b"0123456789";
        let mut r = VerifyingReader::new(&data[..9], sha256(data), Some(10)).unwrap();
        match read_all(&mut r) {
            Err(Error::SizeMismatch { expected, actual }) => {
                assert_eq!((expected, actual), (10, 9))
            }
            other => panic!("got {other:?}"),
        }
        // Sticky.
        assert!(r.read(&mut [0; 4]).is_err());
    }

    #[test]
    fn long_stream_is_size_mismatch_without_reading_it_all() {
        let data = vec![7u8; 1 << 20];
        let mut r = VerifyingReader::new(&data[..], sha256(&data[..10]), Some(10)).unwrap();
        match read_all(&mut r) {
            Err(Error::SizeMismatch { expected, actual }) => {
                assert_eq!(expected, 10);
                assert_eq!(actual, 11);
            }
            other => panic!("got {other:?}"),
        }
        assert_eq!(r.bytes_read(), 11);
    }

    #[test]
    fn corrupt_stream_is_digest_mismatch() {
        let data = b"0123456789";
        let mut r = VerifyingReader::new(&b"0123456780"[..], sha256(data), Some(10)).unwrap();
        match read_all(&mut r) {
            Err(Error::DigestMismatch { expected, actual }) => {
                assert_eq!(expected, sha256(data));
                assert_eq!(actual, sha256(b"0123456780"));
            }
            other => panic!("got {other:?}"),
        }
    }

    #[test]
    fn mismatch_is_invalid_data_through_io() {
        let mut r = VerifyingReader::new(&b"x"[..], sha256(b"y"), Some(1)).unwrap();
        let e = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("digest mismatch"));
    }

    #[test]
    fn unknown_size_checks_digest_only() {
        let data = b"abc";
        let mut r = VerifyingReader::new(&data[..], sha256(data), None).unwrap();
        assert_eq!(read_all(&mut r).unwrap(), data);
        let mut r = VerifyingReader::new(&b"abd"[..], sha256(data), None).unwrap();
        assert!(matches!(
            read_all(&mut r),
            Err(Error::DigestMismatch { .. })
        ));
    }

    #[test]
    fn finish_drains_and_verifies() {
        let data = b"0123456789";
        let mut r = VerifyingReader::new(&data[..], sha256(data), Some(10)).unwrap();
        let mut first = [0u8; 3];
        r.read_exact(&mut first).unwrap();
        r.finish().unwrap();
        assert!(r.is_verified());
    }

    proptest! {
        #[test]
        fn short_reads_verify_like_whole_reads(
            data in proptest::collection::vec(any::<u8>(), 0..4096),
            max in 1usize..64,
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
        ) {
            let digest = sha256(&data);
            let size = data.len() as u64;

            // Whole stream, delivered a few bytes at a time.
            let mut r = VerifyingReader::new(Trickle { data: &data, max }, digest.clone(), Some(size)).unwrap();
            prop_assert_eq!(read_all(&mut r).unwrap(), data.clone());

            // Truncated stream.
            if !data.is_empty() {
                let at = cut.index(data.len());
                let mut r = VerifyingReader::new(Trickle { data: &data[..at], max }, digest.clone(), Some(size)).unwrap();
                let is_size_mismatch = matches!(read_all(&mut r), Err(Error::SizeMismatch { .. }));
                prop_assert!(is_size_mismatch);

                // One bit flipped.
                let mut bad = data.clone();
                bad[flip.index(data.len())] ^= 1;
                let mut r = VerifyingReader::new(Trickle { data: &bad, max }, digest.clone(), Some(size)).unwrap();
                let is_digest_mismatch = matches!(read_all(&mut r), Err(Error::DigestMismatch { .. }));
                prop_assert!(is_digest_mismatch);
            }

            // One byte too many.
            let mut long = data.clone();
            long.push(0);
            let mut r = VerifyingReader::new(Trickle { data: &long, max }, digest.clone(), Some(size)).unwrap();
            let is_size_mismatch = matches!(read_all(&mut r), Err(Error::SizeMismatch { .. }));
            prop_assert!(is_size_mismatch);

            // The digesting adapters agree with the one-shot digest.
            let mut dr = DigestingReader::sha256(Trickle { data: &data, max });
            read_all(&mut dr).unwrap();
            prop_assert_eq!(dr.digest(), digest.clone());
            let mut dw = DigestingWriter::sha256(Vec::new());
            for chunk in data.chunks(max) { dw.write_all(chunk).unwrap(); }
            let (out, d, n) = dw.into_parts();
            prop_assert_eq!(out, data.clone());
            prop_assert_eq!(d, digest);
            prop_assert_eq!(n, size);
        }
    }
}
