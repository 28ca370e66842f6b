//! The embedded registry's HTTP/1.1 framing: a head read in bounded memory, and bounds on
//! chunked bodies. (The client speaks HTTP through ureq only.)

use std::io::{self, BufRead, Read};

/// The largest head (start line and header fields) read.
pub(crate) const MAX_HEAD: usize = 64 * 1024;

/// The most header fields a head may have.
pub(crate) const MAX_HEADERS: usize = 100;

/// The longest chunk-size line (size and extensions) of a chunked body.
const MAX_CHUNK_LINE: usize = 4096;

/// What [`read_head_bytes`] found.
pub(crate) enum HeadBytes {
    /// The head, up to and with the blank line that ends it.
    Head(Vec<u8>),
    /// The connection ended before the first byte.
    Closed,
    /// The first byte starts a TLS record: the peer speaks TLS, not HTTP.
    TlsRecord,
    /// No blank line within [`MAX_HEAD`] bytes.
    TooLarge,
}

/// Reads one head from `input`, consuming exactly its bytes, at most [`MAX_HEAD`] of them.
pub(crate) fn read_head_bytes(input: &mut dyn BufRead) -> io::Result<HeadBytes> {
    let mut head = Vec::new();
    loop {
        let available = match input.fill_buf() {
            Ok(available) => available,
            // A signal is no reason to drop the connection.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return if head.is_empty() {
                Ok(HeadBytes::Closed)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        if head.is_empty() && available[0] == 0x16 {
            return Ok(HeadBytes::TlsRecord);
        }
        // Up to the end of the head when it is in what was read, else all of it.
        let start = head.len().saturating_sub(3);
        head.extend_from_slice(available);
        let end = find_head_end(&head[start..]).map(|i| start + i);
        let consumed = match end {
            Some(end) => available.len() - (head.len() - end),
            None => available.len(),
        };
        input.consume(consumed);
        if let Some(end) = end {
            head.truncate(end);
            return Ok(if head.len() > MAX_HEAD {
                HeadBytes::TooLarge
            } else {
                HeadBytes::Head(head)
            });
        }
        if head.len() > MAX_HEAD {
            return Ok(HeadBytes::TooLarge);
        }
    }
}

/// Where the blank line that ends a head ends, in `bytes`.
fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// A reader that stays at its end once it got there (the chunked decoder would read the
/// next chunk-size line again, from what is already the next message).
pub(crate) struct Fused<R> {
    inner: R,
    done: bool,
}

impl<R> Fused<R> {
    pub(crate) fn new(inner: R) -> Self {
        Fused { inner, done: false }
    }
}

impl<R: Read> Read for Fused<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        self.done = n == 0;
        Ok(n)
    }
}

/// Passes a chunked body through, but fails once more than [`MAX_CHUNK_LINE`] bytes are
/// read one at a time with no `\r` among them. That is how the decoder reads a chunk-size
/// line, up to its `\r`, keeping all of it: without this, a line without end would grow
/// without bound. Chunk data is read in larger pieces (or ends in `\r\n`), so it never
/// trips this.
pub(crate) struct ChunkLineLimit<R> {
    inner: R,
    ones: usize,
}

impl<R> ChunkLineLimit<R> {
    pub(crate) fn new(inner: R) -> Self {
        ChunkLineLimit { inner, ones: 0 }
    }
}

impl<R: Read> Read for ChunkLineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.len() != 1 {
            self.ones = 0;
            return self.inner.read(buf);
        }
        self.ones += 1;
        if self.ones > MAX_CHUNK_LINE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "chunk-size line too long",
            ));
        }
        let n = self.inner.read(buf)?;
        if n == 1 && buf[0] == b'\r' {
            self.ones = 0;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns `Interrupted` before each piece it hands out.
    struct Jittery<'a> {
        pieces: Vec<&'a [u8]>,
        interrupt: bool,
    }

    impl Read for Jittery<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::ErrorKind::Interrupted.into());
            }
            if self.pieces.is_empty() {
                return Ok(0);
            }
            let piece = self.pieces.remove(0);
            buf[..piece.len()].copy_from_slice(piece);
            Ok(piece.len())
        }
    }

    #[test]
    fn a_head_read_in_pieces_and_through_signals() {
        let pieces = vec![&b"GET / HT"[..], b"TP/1.1\r\nHost: x\r", b"\n\r\nbody"];
        let mut input = io::BufReader::new(Jittery {
            pieces,
            interrupt: false,
        });
        let HeadBytes::Head(head) = read_head_bytes(&mut input).unwrap() else {
            panic!("a head")
        };
        assert_eq!(head, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        // What follows the head stays for the body.
        let mut rest = Vec::new();
        input.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"body");
        let mut closed = io::BufReader::new(Jittery {
            pieces: Vec::new(),
            interrupt: false,
        });
        assert!(matches!(
            read_head_bytes(&mut closed).unwrap(),
            HeadBytes::Closed
        ));
    }
}
