//! Blob downloads from plain-HTTP registries, on HTTP/1.1 connections of our own.
//!
//! Everything else goes through ureq: TLS, proxies, uploads, manifests, tokens. A blob body
//! from a plain-HTTP registry (a local or LAN registry, a CI registry, a pull-through cache)
//! is where ureq costs the most: ureq-proto 0.7 copies each body once more out of its own
//! buffer, and hands every 16 bytes of it to a `trace!` call, a branch per 16 bytes even
//! with logging off. A 40 MiB blob from docker-registry on loopback, hashed and written to
//! tmpfs, took 49 ms of CPU through ureq and 42 ms read from the socket straight into the
//! caller's buffer, which is what [`PlainBody`] does.
//!
//! What the registry sends is bounded before it is buffered: a response head is at most
//! 64 KiB and 100 fields, a chunk-size line at most 4 KiB. Interim (1xx) responses are
//! skipped, at most 8 of them. A response with both `Transfer-Encoding` and
//! `Content-Length` is refused ("ought to be handled as an error", RFC 9112, 6.3). What we
//! send is checked too: a header value or target with a control character in it (a token
//! from a token server, say) is refused rather than sent, so nothing can add lines to the
//! request.
//!
//! Connections are kept for the next request when their body was read to its end, the
//! response allowed it and nothing came after the body; at most
//! [`MAX_IDLE_PER_HOST`] per registry. A kept connection the registry closed meanwhile is
//! noticed before it is used, or, if it closes while the request goes out, the request is
//! sent once more on a new connection.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ureq::http::{HeaderName, HeaderValue, Response, StatusCode, Version};

use crate::ClientBuilder;
use crate::http1::{ChunkLineLimit, Fused, HeadBytes, MAX_HEADERS, read_head_bytes};

/// Idle connections kept per registry.
const MAX_IDLE_PER_HOST: usize = 8;

/// Interim (1xx) responses skipped before the final one.
const MAX_INTERIM: usize = 8;

/// The connection buffer: a head is read through it; body reads of at least this size go
/// from the socket straight into the caller's buffer.
const BUFFER: usize = 64 * 1024;

/// Plain-HTTP connections to registries, and what requests on them need.
pub(crate) struct Plain {
    connect_timeout: Duration,
    read_timeout: Duration,
    user_agent: String,
    idle: Mutex<HashMap<String, Vec<TcpStream>>>,
}

impl std::fmt::Debug for Plain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plain").finish_non_exhaustive()
    }
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

impl Plain {
    pub(crate) fn new(config: &ClientBuilder) -> Arc<Plain> {
        Arc::new(Plain {
            connect_timeout: config.connect_timeout,
            read_timeout: config.read_timeout,
            user_agent: config.user_agent.clone(),
            idle: Mutex::new(HashMap::new()),
        })
    }

    /// `GET url` (an `http://` URL) with `headers`: the response, its body a stream from
    /// the connection. Redirects are the caller's to follow.
    pub(crate) fn get(
        self: &Arc<Self>,
        url: &str,
        headers: &[(&str, &str)],
    ) -> io::Result<Response<PlainBody>> {
        let target = Target::parse(url)?;
        let head = request_head(&target, &self.user_agent, headers)?;
        loop {
            let (stream, reused) = match self.take_idle(&target.authority) {
                Some(s) => (s, true),
                None => (self.connect(&target)?, false),
            };
            match self.exchange(stream, &target.authority, &head) {
                Ok(resp) => return Ok(resp),
                // The registry closed a kept connection as we used it: nothing of this
                // request was answered, so it goes out again, on a new connection.
                Err(e) if reused && closed_early(&e) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn exchange(
        self: &Arc<Self>,
        mut stream: TcpStream,
        authority: &str,
        head: &[u8],
    ) -> io::Result<Response<PlainBody>> {
        stream.write_all(head)?;
        let mut input = BufReader::with_capacity(BUFFER, stream);
        let (resp, keep_alive, framing) = read_response(&mut input)?;
        let pool = keep_alive.then(|| (Arc::clone(self), authority.to_owned()));
        let body = PlainBody::new(input, framing, pool);
        let (parts, ()) = resp.into_parts();
        Ok(Response::from_parts(parts, body))
    }

    fn connect(&self, target: &Target) -> io::Result<TcpStream> {
        let (host, port) = (target.host.as_str(), target.port);
        let mut last = None;
        for addr in (host, port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, self.connect_timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    stream.set_read_timeout(Some(self.read_timeout))?;
                    stream.set_write_timeout(Some(self.read_timeout))?;
                    return Ok(stream);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address"))
        }))
    }

    /// A kept connection to `authority` that is still open and silent.
    fn take_idle(&self, authority: &str) -> Option<TcpStream> {
        loop {
            let stream = self
                .idle
                .lock()
                .expect("idle connections")
                .get_mut(authority)?
                .pop()?;
            if still_open(&stream) {
                return Some(stream);
            }
        }
    }

    fn put_idle(&self, authority: String, stream: TcpStream) {
        let mut idle = self.idle.lock().expect("idle connections");
        let kept = idle.entry(authority).or_default();
        if kept.len() < MAX_IDLE_PER_HOST {
            kept.push(stream);
        }
    }
}

/// Whether `e` is how a connection the peer had closed fails.
fn closed_early(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// An idle connection is usable when reading it would block: closed, it reads 0; with
/// bytes waiting, the registry sent what no request asked for.
fn still_open(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    let open = matches!(stream.peek(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    open && stream.set_nonblocking(false).is_ok()
}

/// Where a plain-HTTP request goes, from its URL as `http::Uri` (ureq's parser) reads it.
#[derive(Debug, PartialEq)]
struct Target {
    /// `host[:port]` as written: the `Host` header and the key of kept connections.
    authority: String,
    /// The host to connect to (an IPv6 address without its brackets).
    host: String,
    port: u16,
    /// The request target: path and query (`/` when the URL has neither).
    path: String,
}

impl Target {
    fn parse(url: &str) -> io::Result<Target> {
        let refuse =
            |why: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{why}: {url}"));
        let uri: ureq::http::Uri = url.parse().map_err(|_| refuse("invalid URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(refuse("not plain HTTP"));
        }
        let authority = uri.authority().ok_or_else(|| refuse("no host"))?;
        if authority.as_str().contains('@') {
            return Err(refuse("credentials in the URL"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(refuse("no host"));
        }
        // What follows the host: nothing, or `:` and the port (which `Uri` does not check).
        let port = match &authority.as_str()[authority.host().len()..] {
            "" => 80,
            rest => rest
                .strip_prefix(':')
                .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| refuse("invalid port"))?,
        };
        let mut path = match uri.path() {
            "" => "/".to_owned(),
            p => p.to_owned(),
        };
        if let Some(query) = uri.query() {
            path.push('?');
            path.push_str(query);
        }
        Ok(Target {
            authority: authority.as_str().to_owned(),
            host: host.to_owned(),
            port,
            path,
        })
    }
}

/// Whether `text` may go into a request line or a header value as it is: no control
/// characters (a tab is allowed in values), so it cannot end a line.
fn sendable(text: &str, tab: bool) -> bool {
    text.bytes()
        .all(|b| (b >= 0x20 && b != 0x7f) || (tab && b == b'\t'))
}

fn request_head(
    target: &Target,
    user_agent: &str,
    headers: &[(&str, &str)],
) -> io::Result<Vec<u8>> {
    let refuse = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} holds a character a request cannot carry"),
        )
    };
    // `http::Uri` admits no control characters or spaces in either; this is a second fence.
    let (path, authority) = (&target.path, &target.authority);
    if !sendable(path, false) || path.contains(' ') {
        return Err(refuse("the request target"));
    }
    if !sendable(authority, false) || authority.contains(' ') {
        return Err(refuse("the host"));
    }
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\n");
    for (name, value) in std::iter::once(&("user-agent", user_agent)).chain(headers) {
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid_name {
            return Err(refuse("a header name"));
        }
        if !sendable(value, true) {
            return Err(refuse(&format!("header {name}")));
        }
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    Ok(head.into_bytes())
}

/// Reads the final response head from `input` (skipping interim ones): the response without
/// its body, whether the connection may be kept, and how the body that follows is framed.
fn read_response(input: &mut dyn BufRead) -> io::Result<(Response<()>, bool, Framing)> {
    for _ in 0..=MAX_INTERIM {
        let bytes = match read_head_bytes(input)? {
            HeadBytes::Head(bytes) => bytes,
            HeadBytes::Closed => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before a response",
                ));
            }
            HeadBytes::TlsRecord => {
                return Err(invalid("the registry answered with TLS, not plain HTTP"));
            }
            HeadBytes::TooLarge => return Err(invalid("response head over 64 KiB")),
        };
        let (resp, keep_alive) = parse_head(&bytes)?;
        if resp.status().is_informational() && resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            continue;
        }
        let framing = framing(&resp)?;
        return Ok((resp, keep_alive, framing));
    }
    Err(invalid(format!(
        "more than {MAX_INTERIM} interim (1xx) responses"
    )))
}

/// A response head: the response (without body) and whether the connection may carry
/// another request after it.
fn parse_head(bytes: &[u8]) -> io::Result<(Response<()>, bool)> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut fields);
    match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(invalid("incomplete response head")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(invalid(format!(
                "response head with more than {MAX_HEADERS} fields"
            )));
        }
        Err(e) => return Err(invalid(format!("malformed response head: {e}"))),
    }
    let (Some(code), Some(version)) = (parsed.code, parsed.version) else {
        return Err(invalid("malformed status line"));
    };
    let status = StatusCode::from_u16(code).map_err(|_| invalid(format!("status {code}")))?;
    let mut resp = Response::new(());
    *resp.status_mut() = status;
    *resp.version_mut() = if version >= 1 {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| invalid(format!("header name {:?}", h.name)))?;
        let value = HeaderValue::from_bytes(h.value)
            .map_err(|_| invalid(format!("value of header {name}")))?;
        resp.headers_mut().append(name, value);
    }
    // HTTP/1.1 keeps the connection unless told to close it; HTTP/1.0 is not kept.
    let close = resp.headers().get_all("connection").iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    });
    Ok((resp, version >= 1 && !close))
}

/// How the body of a response to a GET is delimited (RFC 9112, 6.3).
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

fn framing(resp: &Response<()>) -> io::Result<Framing> {
    if matches!(resp.status().as_u16(), 204 | 304) {
        return Ok(Framing::Empty);
    }
    let headers = resp.headers();
    let lengths: Vec<&HeaderValue> = headers.get_all("content-length").iter().collect();
    let encodings: Vec<&HeaderValue> = headers.get_all("transfer-encoding").iter().collect();
    if !encodings.is_empty() {
        if !lengths.is_empty() {
            return Err(invalid(
                "response with both Transfer-Encoding and Content-Length",
            ));
        }
        // "If a Transfer-Encoding header field is present in a response and the chunked
        // transfer coding is not the final encoding, the message body length is determined
        // by reading the connection until it is closed by the server."
        let last = encodings
            .last()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .unwrap_or("");
        return Ok(if last.eq_ignore_ascii_case("chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    let mut length = None;
    for value in lengths {
        // A list of identical values counts as one (RFC 9110, 8.6); anything else is refused.
        for v in value
            .to_str()
            .map_err(|_| invalid("Content-Length is not text"))?
            .split(',')
        {
            let v = v.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(format!("invalid Content-Length {v:?}")));
            }
            let n: u64 = v
                .parse()
                .map_err(|_| invalid(format!("Content-Length {v} too large")))?;
            if length.is_some_and(|l| l != n) {
                return Err(invalid("differing Content-Length values"));
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(0) => Framing::Empty,
        Some(n) => Framing::Length(n),
        None => Framing::UntilClose,
    })
}

/// A response body as it comes from the connection; a fully read body hands a connection
/// that may be kept back to the pool.
pub(crate) struct PlainBody {
    state: State<BufReader<TcpStream>>,
    /// Where a kept connection goes back to, when the response allows keeping it.
    pool: Option<(Arc<Plain>, String)>,
}

/// A body being read from `R`.
enum State<R> {
    Length(R, u64),
    Chunked(Fused<chunked_transfer::Decoder<ChunkLineLimit<R>>>),
    UntilClose(R),
    /// Read to its end (except a `Length` body, which stays at 0 until it is finished), or
    /// given up.
    Done,
}

impl<R: Read> State<R> {
    fn new(input: R, framing: Framing) -> Self {
        match framing {
            Framing::Empty => State::Length(input, 0),
            Framing::Length(n) => State::Length(input, n),
            Framing::Chunked => State::Chunked(Fused::new(chunked_transfer::Decoder::new(
                ChunkLineLimit::new(input),
            ))),
            Framing::UntilClose => State::UntilClose(input),
        }
    }
}

impl<R: Read> Read for State<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let result = match self {
            State::Length(_, 0) | State::Done => return Ok(0),
            State::Length(input, left) => {
                let want = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                match input.read(&mut buf[..want]) {
                    Ok(0) => Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("connection closed {left} bytes before the end of the body"),
                    )),
                    Ok(n) => {
                        *left -= n as u64;
                        return Ok(n);
                    }
                    Err(e) => Err(e),
                }
            }
            State::Chunked(decoder) => decoder.read(buf),
            State::UntilClose(input) => input.read(buf),
        };
        match result {
            Ok(0) => *self = State::Done,
            Err(ref e) if e.kind() != io::ErrorKind::Interrupted => *self = State::Done,
            _ => {}
        }
        result
    }
}

impl std::fmt::Debug for PlainBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainBody").finish_non_exhaustive()
    }
}

impl PlainBody {
    fn new(
        input: BufReader<TcpStream>,
        framing: Framing,
        pool: Option<(Arc<Plain>, String)>,
    ) -> Self {
        let mut body = PlainBody {
            state: State::new(input, framing),
            pool,
        };
        body.finish_if_read();
        body
    }

    /// At the end of a `Content-Length` body: the connection goes back to the pool if it
    /// may be kept and nothing more was sent on it.
    fn finish_if_read(&mut self) {
        if !matches!(self.state, State::Length(_, 0)) {
            return;
        }
        let state = std::mem::replace(&mut self.state, State::Done);
        if let (State::Length(input, _), Some((plain, authority))) = (state, self.pool.take())
            && input.buffer().is_empty()
        {
            plain.put_idle(authority, input.into_inner());
        }
    }
}

impl Read for PlainBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.state.read(buf)?;
        self.finish_if_read();
        Ok(n)
    }
}

/// Reads `bytes` as a registry's answer to a blob `GET` (interim responses, the head, the
/// body by its framing, at most 1 MiB of it); returns the body's length, or `None` when it
/// is refused. For the fuzz target: no input may panic, hang or buffer without bound.
#[doc(hidden)]
pub fn fuzz_response(bytes: &[u8]) -> Option<u64> {
    let mut input = BufReader::with_capacity(BUFFER, bytes);
    let (_, _, framing) = read_response(&mut input).ok()?;
    let body = State::new(input, framing);
    io::copy(&mut body.take(1 << 20), &mut io::sink()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_target() {
        let target = |url| Target::parse(url).map(|t| (t.authority, t.host, t.port, t.path));
        let own = |a: &str, h: &str, p, t: &str| (a.to_owned(), h.to_owned(), p, t.to_owned());
        assert_eq!(
            target("http://127.0.0.1:5000/v2/a/blobs/sha256:ab").unwrap(),
            own("127.0.0.1:5000", "127.0.0.1", 5000, "/v2/a/blobs/sha256:ab")
        );
        assert_eq!(
            target("http://reg.lan").unwrap(),
            own("reg.lan", "reg.lan", 80, "/")
        );
        assert_eq!(
            target("http://reg.lan?x=1").unwrap(),
            own("reg.lan", "reg.lan", 80, "/?x=1")
        );
        assert_eq!(
            target("http://[::1]:5000/v2/").unwrap(),
            own("[::1]:5000", "::1", 5000, "/v2/")
        );
        assert_eq!(
            target("http://[::1]/").unwrap(),
            own("[::1]", "::1", 80, "/")
        );
        for bad in [
            "https://reg.lan/v2/",
            "http://user@reg.lan/v2/",
            "http:///v2/",
            "http://reg.lan:x/",
            "http://:80/",
            "http://[::1/",
            "http://[::1]5000/",
            "http://reg.lan:99999/",
            "http://reg.lan/a b",
            "/v2/",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_request_cannot_be_split_by_what_it_carries() {
        let t = Target::parse("http://r:1/v2/").unwrap();
        let head = request_head(&t, "ua", &[("range", "bytes=5-")]).unwrap();
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "GET /v2/ HTTP/1.1\r\nHost: r:1\r\nuser-agent: ua\r\nrange: bytes=5-\r\n\r\n"
        );
        let injected = "Bearer x\r\nX-Evil: 1";
        let e = request_head(&t, "ua", &[("authorization", injected)]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("authorization"), "{e}");
        let smuggled = Target {
            path: "/v2/ HTTP/1.0\r\n".to_owned(),
            ..Target::parse("http://r:1/").unwrap()
        };
        assert!(request_head(&smuggled, "ua", &[]).is_err());
        assert!(request_head(&t, "ua\n", &[]).is_err());
        assert!(request_head(&t, "ua", &[("bad name", "v")]).is_err());
    }

    fn head(text: &str) -> io::Result<(Response<()>, bool)> {
        parse_head(text.as_bytes())
    }

    #[test]
    fn response_framing() {
        let frame = |text: &str| framing(&head(text).unwrap().0);
        assert!(matches!(
            frame("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"),
            Ok(Framing::Length(12))
        ));
        assert!(matches!(
            frame("HTTP/1.1 200 OK\r\nContent-Length: 12, 12\r\n\r\n"),
            Ok(Framing::Length(12))
        ));
        assert!(matches!(
            frame("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Ok(Framing::Chunked)
        ));
        assert!(matches!(
            frame("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            Ok(Framing::UntilClose)
        ));
        assert!(matches!(
            frame("HTTP/1.1 200 OK\r\n\r\n"),
            Ok(Framing::UntilClose)
        ));
        assert!(matches!(
            frame("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"),
            Ok(Framing::Empty)
        ));
        for refused in [
            "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Length: 13\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        ] {
            assert!(frame(refused).is_err(), "{refused}");
        }
        assert!(
            head("HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\n\r\n")
                .is_ok_and(|(_, keep)| !keep)
        );
        assert!(head("HTTP/1.1 200 OK\r\n\r\n").is_ok_and(|(_, keep)| keep));
        assert!(head("HTTP/1.0 200 OK\r\n\r\n").is_ok_and(|(_, keep)| !keep));
        assert!(head("HTTP/1.1 2000 OK\r\n\r\n").is_err());
        assert!(head("SSH-2.0-x\r\n\r\n").is_err());
    }

    /// A scripted peer: for each accepted connection, `script` gets the stream and the
    /// connection's number; returns the address and the count of accepted connections.
    fn peer(
        script: impl Fn(TcpStream, usize) + Send + Sync + 'static,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let script = Arc::new(script);
        std::thread::spawn(move || {
            for conn in listener.incoming().take(20) {
                let Ok(conn) = conn else { continue };
                let n = count.fetch_add(1, Ordering::SeqCst);
                let script = script.clone();
                std::thread::spawn(move || script(conn, n));
            }
        });
        (addr, accepted)
    }

    /// Reads one request head from `conn`, byte by byte (nothing past it).
    fn request(conn: &mut TcpStream) -> Option<String> {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if conn.read(&mut byte).ok()? == 0 {
                return None;
            }
            head.push(byte[0]);
        }
        Some(String::from_utf8(head).unwrap())
    }

    fn plain() -> Arc<Plain> {
        Plain::new(&ClientBuilder::default())
    }

    fn fetch(plain: &Arc<Plain>, addr: &str) -> io::Result<(u16, Vec<u8>)> {
        let mut resp = plain.get(&format!("http://{addr}/v2/x/blobs/b"), &[])?;
        let mut body = Vec::new();
        resp.body_mut().read_to_end(&mut body)?;
        Ok((resp.status().as_u16(), body))
    }

    #[test]
    fn kept_connections_are_reused_and_replaced_when_closed() {
        use std::sync::atomic::Ordering;
        // Connection 0 answers twice, then takes a third request and closes without an
        // answer (as when its idle timeout races the request); connection 1 answers once and
        // closes while idle; connection 2 answers everything.
        let (addr, accepted) = peer(|mut conn, n| {
            let answers = match n {
                0 => 2,
                1 => 1,
                _ => usize::MAX,
            };
            for _ in 0..answers {
                let Some(head) = request(&mut conn) else {
                    return;
                };
                assert!(head.starts_with("GET /v2/x/blobs/b HTTP/1.1\r\n"), "{head}");
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
            }
            if n == 0 {
                let _ = request(&mut conn);
            }
        });
        let plain = plain();
        let hello = (200, b"hello".to_vec());
        assert_eq!(fetch(&plain, &addr).unwrap(), hello);
        assert_eq!(fetch(&plain, &addr).unwrap(), hello);
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "the second request reused the first"
        );
        // Connection 0 closes on the third request: it goes out once more, on connection 1.
        assert_eq!(fetch(&plain, &addr).unwrap(), hello);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // Connection 1 is closed by now: seen before it is used, so connection 2 is made.
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(fetch(&plain, &addr).unwrap(), hello);
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        // A fresh connection that closes before answering is an error, not a retry here.
        let (silent, _) = peer(|mut conn, _| {
            let _ = request(&mut conn);
        });
        let e = fetch(&plain, &silent).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
    }

    #[test]
    fn bodies_by_length_chunks_or_close() {
        let (addr, _) = peer(|mut conn, _| {
            let Some(head) = request(&mut conn) else {
                return;
            };
            let answer: &[u8] = if head.contains("case: chunked") {
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
            } else if head.contains("case: close") {
                b"HTTP/1.1 200 OK\r\n\r\nuntil the end"
            } else if head.contains("case: short") {
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"
            } else if head.contains("case: long-chunk-line") {
                &[
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(),
                    &[b'0'; 8192],
                ]
                .concat()
            } else if head.contains("case: smuggle") {
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
            } else {
                &[
                    b"HTTP/1.1 200 OK\r\nX: ".as_slice(),
                    &[b'a'; 70_000],
                    b"\r\n\r\n",
                ]
                .concat()
            };
            let _ = conn.write_all(answer);
        });
        let plain = plain();
        let get = |case: &str| -> io::Result<Vec<u8>> {
            let mut resp = plain.get(&format!("http://{addr}/v2/"), &[("case", case)])?;
            let mut body = Vec::new();
            resp.body_mut().read_to_end(&mut body)?;
            Ok(body)
        };
        assert_eq!(get("chunked").unwrap(), b"hello world");
        assert_eq!(get("close").unwrap(), b"until the end");
        let e = get("short").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("91 bytes before the end"), "{e}");
        let e = get("long-chunk-line").unwrap_err();
        assert!(e.to_string().contains("chunk-size line too long"), "{e}");
        let e = get("smuggle").unwrap_err();
        assert!(
            e.to_string()
                .contains("both Transfer-Encoding and Content-Length"),
            "{e}"
        );
        let e = get("huge-head").unwrap_err();
        assert!(e.to_string().contains("over 64 KiB"), "{e}");
    }

    #[test]
    fn the_fuzz_entry_reads_what_the_transport_reads() {
        let ok = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(fuzz_response(ok), Some(5));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert_eq!(fuzz_response(chunked), Some(3));
        assert_eq!(
            fuzz_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"),
            None
        );
        assert_eq!(
            fuzz_response(&b"HTTP/1.1 100 Continue\r\n\r\n".repeat(9)),
            None
        );
        assert_eq!(fuzz_response(b""), None);
    }

    #[test]
    fn a_silent_registry_times_out() {
        // Answers the head at once, then stalls in the body.
        let (addr, _) = peer(|mut conn, _| {
            if request(&mut conn).is_some() {
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf");
                std::thread::sleep(Duration::from_secs(5));
            }
        });
        let plain = Plain::new(&ClientBuilder::default().read_timeout(Duration::from_millis(200)));
        let started = std::time::Instant::now();
        let e = fetch(&plain, &addr).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "{e}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
}
