//! Computing digests of bytes and streams.
//!
//! Digests are [`oci_spec::image::Digest`] values; this module computes them. Only the two
//! algorithms the image-spec registers are supported: `sha256` (the default everywhere) and
//! `sha512`. The hashing is done by the `sha2` crate, which uses the CPU's SHA extensions where
//! it has them.

use std::io::{self, Read, Write};

use oci_spec::image::{Descriptor, Digest, DigestAlgorithm, MediaType};
use sha2::Digest as _;

use crate::{Error, Result};

/// An incremental hasher for one of the supported digest algorithms.
///
/// ```
/// use ocikit_image::Hasher;
/// use oci_spec::image::DigestAlgorithm;
///
/// let mut h = Hasher::new(&DigestAlgorithm::Sha256)?;
/// h.update(b"hello ");
/// h.update(b"world");
/// assert_eq!(
///     h.finish().to_string(),
///     "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
/// );
/// # Ok::<_, ocikit_image::Error>(())
/// ```
#[derive(Clone)]
pub struct Hasher {
    state: State,
}

#[derive(Clone)]
enum State {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

impl Hasher {
    /// A hasher for `algorithm`; [`Error::UnsupportedAlgorithm`] for anything but sha256 and
    /// sha512.
    pub fn new(algorithm: &DigestAlgorithm) -> Result<Self> {
        let state = match algorithm {
            DigestAlgorithm::Sha256 => State::Sha256(sha2::Sha256::new()),
            DigestAlgorithm::Sha512 => State::Sha512(sha2::Sha512::new()),
            other => return Err(Error::UnsupportedAlgorithm(other.to_string())),
        };
        Ok(Hasher { state })
    }

    /// A sha256 hasher.
    pub fn sha256() -> Self {
        Hasher {
            state: State::Sha256(sha2::Sha256::new()),
        }
    }

    /// The algorithm this hasher computes.
    pub fn algorithm(&self) -> DigestAlgorithm {
        match self.state {
            State::Sha256(_) => DigestAlgorithm::Sha256,
            State::Sha512(_) => DigestAlgorithm::Sha512,
        }
    }

    /// Feeds bytes to the hasher.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.state {
            State::Sha256(h) => h.update(bytes),
            State::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        let (prefix, hex) = match self.state {
            State::Sha256(h) => ("sha256:", hex(&h.finalize())),
            State::Sha512(h) => ("sha512:", hex(&h.finalize())),
        };
        let mut text = String::with_capacity(prefix.len() + hex.len());
        text.push_str(prefix);
        text.push_str(&hex);
        Digest::try_from(text).expect("a hex digest of a supported algorithm is valid")
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

impl Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The sha256 digest of `bytes`.
///
/// ```
/// assert_eq!(
///     ocikit_image::sha256(b"{}").to_string(),
///     "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
/// );
/// ```
pub fn sha256(bytes: &[u8]) -> Digest {
    let mut h = Hasher::sha256();
    h.update(bytes);
    h.finish()
}

/// The digest of `bytes` with `algorithm`.
pub fn digest_bytes(algorithm: &DigestAlgorithm, bytes: &[u8]) -> Result<Digest> {
    let mut h = Hasher::new(algorithm)?;
    h.update(bytes);
    Ok(h.finish())
}

/// Reads `reader` to its end and returns its digest and length.
///
/// ```
/// use oci_spec::image::DigestAlgorithm;
/// let (digest, size) = ocikit_image::digest_reader(&DigestAlgorithm::Sha512, &b"abc"[..])?;
/// assert_eq!(size, 3);
/// assert!(digest.to_string().starts_with("sha512:ddaf35a1"));
/// # Ok::<_, ocikit_image::Error>(())
/// ```
pub fn digest_reader<R: Read>(algorithm: &DigestAlgorithm, mut reader: R) -> Result<(Digest, u64)> {
    let mut h = Hasher::new(algorithm)?;
    // Larger reads than io::copy's 8 KiB: measurably faster hashing of files (benches/).
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                h.update(&buf[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok((h.finish(), size))
}

/// A descriptor (media type, sha256 digest, size) of `bytes`.
///
/// ```
/// use ocikit_image::oci_spec::image::MediaType;
/// let d = ocikit_image::descriptor_of(MediaType::EmptyJSON, b"{}");
/// assert_eq!(d.size(), 2);
/// assert_eq!(d.digest(), &ocikit_image::sha256(b"{}"));
/// ```
pub fn descriptor_of(media_type: MediaType, bytes: &[u8]) -> Descriptor {
    Descriptor::new(media_type, bytes.len() as u64, sha256(bytes))
}

/// A descriptor of everything `reader` yields, read to its end with `algorithm`.
pub fn descriptor_of_reader<R: Read>(
    media_type: MediaType,
    algorithm: &DigestAlgorithm,
    reader: R,
) -> Result<Descriptor> {
    let (digest, size) = digest_reader(algorithm, reader)?;
    Ok(Descriptor::new(media_type, size, digest))
}

/// Parses a digest and checks that this crate can compute it.
///
/// [`Digest`]'s own parser accepts any algorithm the spec's grammar allows; this one also
/// refuses algorithms other than sha256 and sha512, which no content could be verified against.
pub fn parse_digest(text: &str) -> Result<Digest> {
    let digest = Digest::try_from(text).map_err(|e| Error::InvalidDigest {
        value: text.to_owned(),
        reason: e.to_string(),
    })?;
    check_supported(&digest)?;
    Ok(digest)
}

/// [`Error::UnsupportedAlgorithm`] unless `digest` is sha256 or sha512.
pub fn check_supported(digest: &Digest) -> Result<()> {
    match digest.algorithm() {
        DigestAlgorithm::Sha256 | DigestAlgorithm::Sha512 => Ok(()),
        other => Err(Error::UnsupportedAlgorithm(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_vectors() {
        assert_eq!(
            sha256(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            digest_bytes(&DigestAlgorithm::Sha512, b"")
                .unwrap()
                .to_string(),
            "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce\
             47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
        );
    }

    #[test]
    fn descriptors_for_bytes_and_streams_agree() {
        let data = vec![3u8; 100_000];
        let a = descriptor_of(MediaType::ImageLayer, &data);
        let b = descriptor_of_reader(MediaType::ImageLayer, &DigestAlgorithm::Sha256, &data[..])
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.size(), 100_000);
        let c = descriptor_of_reader(MediaType::ImageLayer, &DigestAlgorithm::Sha512, &data[..])
            .unwrap();
        assert_eq!(c.digest().algorithm(), &DigestAlgorithm::Sha512);
    }

    #[test]
    fn unsupported_algorithm_is_refused() {
        let e = Hasher::new(&DigestAlgorithm::Sha384).unwrap_err();
        assert!(matches!(e, Error::UnsupportedAlgorithm(ref a) if a == "sha384"));
        let e = parse_digest("md5:d41d8cd98f00b204e9800998ecf8427e").unwrap_err();
        assert!(matches!(e, Error::UnsupportedAlgorithm(_)));
    }

    #[test]
    fn invalid_digests_are_refused() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            "sha256:abc",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "../x:y",
        ] {
            assert!(
                matches!(parse_digest(bad), Err(Error::InvalidDigest { .. })),
                "{bad:?} was accepted"
            );
        }
    }

    proptest! {
        #[test]
        fn digest_text_round_trips(data in proptest::collection::vec(any::<u8>(), 0..2048),
                                   sha512 in any::<bool>()) {
            let alg = if sha512 { DigestAlgorithm::Sha512 } else { DigestAlgorithm::Sha256 };
            let d = digest_bytes(&alg, &data).unwrap();
            let parsed = parse_digest(d.as_ref()).unwrap();
            prop_assert_eq!(&parsed, &d);
            prop_assert_eq!(parsed.algorithm(), &alg);
            // Streaming in arbitrary pieces gives the same digest as one call.
            let mut h = Hasher::new(&alg).unwrap();
            for chunk in data.chunks(7) { h.update(chunk); }
            prop_assert_eq!(h.finish(), d.clone());
            let (streamed, size) = digest_reader(&alg, &data[..]).unwrap();
            prop_assert_eq!(streamed, d);
            prop_assert_eq!(size, data.len() as u64);
        }

        #[test]
        fn parse_digest_never_panics(s in ".{0,200}") {
            let _ = parse_digest(&s);
        }
    }
}
