//! HTTP/1.1 connections of the registry: request heads parsed by `httparse`, bodies framed
//! by `Content-Length` or decoded by `chunked_transfer`, responses written with
//! `Content-Length` (a blob straight from its file with sendfile(2), through `io::copy`).
//!
//! Everything a client sends is bounded before it is buffered: a request head is at most
//! 64 KiB and [`MAX_HEADERS`] fields (431 beyond), a chunk-size line at most
//! 4 KiB. A TLS ClientHello, which clients that try TLS before plain HTTP
//! send first (skopeo and podman with their insecure flags), gets a 400 at once, as
//! docker-registry answers it, instead of waiting for a line end that never comes.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use crate::http1::MAX_HEADERS;
use crate::http1::{ChunkLineLimit, Fused, HeadBytes, read_head_bytes};

/// A request method, as the routes use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Other(String),
}

impl Method {
    fn parse(m: &str) -> Method {
        match m {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            other => Method::Other(other.to_owned()),
        }
    }
}

/// One request: its head, and its body as a stream from the connection.
pub(crate) struct Request<'c> {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Body<'c>,
}

enum Body<'c> {
    Empty(io::Empty),
    Length(io::Take<&'c mut dyn BufRead>, usize),
    Chunked(Fused<chunked_transfer::Decoder<ChunkLineLimit<&'c mut dyn BufRead>>>),
}

impl Request<'_> {
    pub(crate) fn method(&self) -> &Method {
        &self.method
    }

    /// The request target as sent (path and query).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The first value of header `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body's length when the client declared it (`Content-Length`).
    pub(crate) fn body_length(&self) -> Option<usize> {
        match &self.body {
            Body::Empty(_) => Some(0),
            Body::Length(_, len) => Some(*len),
            Body::Chunked(_) => None,
        }
    }

    /// The body, read from the connection as the handler asks for it.
    pub(crate) fn as_reader(&mut self) -> &mut dyn Read {
        match &mut self.body {
            Body::Empty(r) => r,
            Body::Length(r, _) => r,
            Body::Chunked(r) => r,
        }
    }
}

/// What to send back.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: ResponseBody,
    pub(crate) len: u64,
}

/// A response body of `Response::len` bytes.
pub(crate) enum ResponseBody {
    Reader(Box<dyn Read + Send>),
    /// A file from its current offset: sent with sendfile(2).
    File(File),
}

/// What became of one request head read from a connection.
enum Head {
    Request {
        method: Method,
        url: String,
        headers: Vec<(String, String)>,
        http11: bool,
    },
    /// The client closed the connection between requests.
    Closed,
    /// Refused before routing: the answer, after which the connection closes.
    Refused(u16, &'static str),
    /// A TLS hello: refused as Go's HTTP server (and so docker-registry) refuses it.
    Tls,
}

/// The sending half of a connection.
pub(crate) trait Output: Write {
    /// Ends the connection (after what was written).
    fn close(&mut self);
    /// Sends `len` bytes of `file` from where it stands (sendfile(2) where it can).
    fn send_file(&mut self, file: File, len: u64) -> io::Result<u64>;
}

impl Output for TcpStream {
    fn close(&mut self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }

    fn send_file(&mut self, file: File, len: u64) -> io::Result<u64> {
        // `io::copy` from a file to a socket is sendfile(2) on Linux.
        io::copy(&mut file.take(len), self)
    }
}

/// Serves the requests of one TCP connection in turn until the client closes it, asks to,
/// or sends something that cannot be framed. `handle` turns each request into a response.
pub(crate) fn serve(stream: TcpStream, handle: impl FnMut(&mut Request<'_>) -> Response) {
    let Ok(out) = stream.try_clone() else {
        return;
    };
    serve_on(stream, out, handle);
}

/// [`serve`] over any pair of streams; gives the output back.
pub(crate) fn serve_on<O: Output>(
    input: impl Read,
    mut out: O,
    mut handle: impl FnMut(&mut Request<'_>) -> Response,
) -> O {
    let mut input = BufReader::with_capacity(16 * 1024, input);
    loop {
        let (method, url, headers, http11) = match read_head(&mut input) {
            Ok(Head::Request {
                method,
                url,
                headers,
                http11,
            }) => (method, url, headers, http11),
            Ok(Head::Closed) | Err(_) => return out,
            Ok(Head::Refused(status, why)) => {
                let _ = write_refusal(&mut out, status, why);
                return out;
            }
            Ok(Head::Tls) => {
                // Clients that try TLS first fall back to plain HTTP on an HTTP answer.
                let _ = out.write_all(
                    b"HTTP/1.0 400 Bad Request\r\n\r\nThis registry speaks plain HTTP.\n",
                );
                out.close();
                return out;
            }
        };
        let find = |name| find_header(&headers, name);
        let connection = find("Connection").unwrap_or("").to_ascii_lowercase();
        let mut keep_alive = if http11 {
            !connection.contains("close")
        } else {
            connection.contains("keep-alive")
        };
        let chunked =
            find("Transfer-Encoding").is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
        let length = match find("Content-Length").map(|v| v.trim().parse::<usize>()) {
            None => None,
            Some(Ok(n)) => Some(n),
            Some(Err(_)) => {
                let _ = write_refusal(&mut out, 400, "invalid Content-Length");
                return out;
            }
        };
        if chunked && length.is_some() {
            // "... the server MUST close the connection after responding to such a request"
            // (RFC 9112, 6.1): a message with both framings may be smuggling another.
            keep_alive = false;
        }
        let expect_continue =
            find("Expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue"));
        if expect_continue
            && (chunked || length.is_some_and(|n| n > 0))
            && out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err()
        {
            return out;
        }
        let is_head = method == Method::Head;
        let response = {
            let body = if chunked {
                // "If a Transfer-Encoding header field is present ... the Transfer-Encoding
                // overrides the Content-Length" (RFC 9112, 6.3).
                Body::Chunked(Fused::new(chunked_transfer::Decoder::new(
                    ChunkLineLimit::new(&mut input as &mut dyn BufRead),
                )))
            } else {
                match length {
                    Some(n) if n > 0 => {
                        Body::Length((&mut input as &mut dyn BufRead).take(n as u64), n)
                    }
                    _ => Body::Empty(io::empty()),
                }
            };
            let mut request = Request {
                method,
                url,
                headers,
                body,
            };
            let response = handle(&mut request);
            // Whatever the handler did not read is drained, in bounded memory, so the
            // connection can carry the next request; a body that cannot be read to its end
            // leaves the connection unusable.
            if io::copy(request.as_reader(), &mut io::sink()).is_err() {
                keep_alive = false;
            }
            response
        };
        if write_response(&mut out, response, is_head, keep_alive).is_err() || !keep_alive {
            out.close();
            return out;
        }
    }
}

/// Reads one request head, at most 64 KiB.
fn read_head(input: &mut dyn BufRead) -> io::Result<Head> {
    let head = match read_head_bytes(input)? {
        HeadBytes::Head(head) => head,
        HeadBytes::Closed => return Ok(Head::Closed),
        HeadBytes::TlsRecord => return Ok(Head::Tls),
        HeadBytes::TooLarge => return Ok(Head::Refused(431, "request head too large")),
    };
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut fields);
    match parsed.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Ok(Head::Refused(400, "incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => {
            return Ok(Head::Refused(431, "too many header fields"));
        }
        Err(_) => return Ok(Head::Refused(400, "malformed request head")),
    }
    let (Some(method), Some(url), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Ok(Head::Refused(400, "malformed request line"));
    };
    let mut headers = Vec::with_capacity(parsed.headers.len());
    for h in parsed.headers.iter() {
        let Ok(value) = std::str::from_utf8(h.value) else {
            return Ok(Head::Refused(400, "a header value is not UTF-8"));
        };
        headers.push((h.name.to_owned(), value.trim().to_owned()));
    }
    Ok(Head::Request {
        method: Method::parse(method),
        url: url.to_owned(),
        headers,
        http11: version >= 1,
    })
}

/// The first value of header `name` (case-insensitive) in `headers`.
fn find_header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

fn write_refusal(out: &mut impl Output, status: u16, why: &str) -> io::Result<()> {
    let text = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{why}",
        reason(status),
        why.len()
    );
    out.write_all(text.as_bytes())?;
    out.close();
    Ok(())
}

fn write_response(
    out: &mut impl Output,
    response: Response,
    is_head: bool,
    keep_alive: bool,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    for (name, value) in &response.headers {
        // Values come from the handlers; a line break would split the response.
        if value.contains(['\r', '\n']) {
            continue;
        }
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    // Always `Content-Length`, never chunked: clients read blob sizes from it (on HEAD, the
    // size of what GET would send).
    head.push_str(&format!("Content-Length: {}\r\n", response.len));
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut head = head.into_bytes();
    if is_head || response.len == 0 {
        return out.write_all(&head);
    }
    let sent = match response.body {
        // A small body goes out with the head, in one write (and one segment).
        ResponseBody::Reader(reader) if response.len <= SMALL_BODY => {
            let before = head.len();
            reader.take(response.len).read_to_end(&mut head)?;
            out.write_all(&head)?;
            (head.len() - before) as u64
        }
        body => {
            out.write_all(&head)?;
            write_body(out, body, response.len)?
        }
    };
    if sent != response.len {
        // The body ended early: the client must not take what follows as the next response.
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// The largest body written together with its head.
const SMALL_BODY: u64 = 64 * 1024;

fn write_body(out: &mut impl Output, body: ResponseBody, len: u64) -> io::Result<u64> {
    Ok(match body {
        ResponseBody::File(file) => out.send_file(file, len)?,
        ResponseBody::Reader(reader) => {
            let mut reader = BufReader::with_capacity(256 * 1024, reader.take(len));
            io::copy(&mut reader, out)?
        }
    })
}

/// An in-memory connection for [`fuzz_connection`]: what the server sends is kept.
struct Captured(Vec<u8>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Output for Captured {
    fn close(&mut self) {}

    fn send_file(&mut self, file: File, len: u64) -> io::Result<u64> {
        io::copy(&mut file.take(len), &mut self.0)
    }
}

/// Serves `bytes` as what one client sent on a connection, with a handler that reads each
/// request's body to its end (up to 1 MiB kept) and answers 200 with its length; returns
/// what the server sent. For the fuzz target: no input may panic, hang or make the server
/// buffer without bound.
#[doc(hidden)]
pub fn fuzz_connection(bytes: &[u8]) -> Vec<u8> {
    let out = serve_on(bytes, Captured(Vec::new()), |req| {
        let mut sink = Vec::new();
        let read = io::copy(&mut req.as_reader().take(1 << 20), &mut sink);
        let text = format!("{} {} {:?}", req.url(), sink.len(), read.is_ok());
        Response {
            status: 200,
            headers: vec![("Content-Type", "text/plain".to_owned())],
            len: text.len() as u64,
            body: ResponseBody::Reader(Box::new(io::Cursor::new(text.into_bytes()))),
        }
    });
    out.0
}

#[cfg(test)]
mod tests {
    use super::fuzz_connection;

    fn answer(bytes: &[u8]) -> String {
        String::from_utf8_lossy(&fuzz_connection(bytes)).into_owned()
    }

    #[test]
    fn frames_bodies_and_pipelined_requests() {
        let a = answer(
            b"PUT /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz\
              PATCH /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nab\r\n1\r\nc\r\n0\r\n\r\n\
              GET /c HTTP/1.1\r\n\r\n",
        );
        let bodies: Vec<&str> = a.split("\r\n\r\n").skip(1).collect();
        assert!(a.starts_with("HTTP/1.1 200 OK\r\n"), "{a}");
        assert_eq!(a.matches("HTTP/1.1 200").count(), 3, "{a}");
        assert!(bodies[0].starts_with("/a 3 true"), "{a}");
        assert!(bodies[1].starts_with("/b 3 true"), "{a}");
        assert!(bodies[2].starts_with("/c 0 true"), "{a}");
    }

    #[test]
    fn bounds_and_refusals() {
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', 70 * 1024));
        assert!(answer(&long).starts_with("HTTP/1.1 431"));
        assert!(answer(b"\x16\x03\x01\x00\x05hello").starts_with("HTTP/1.0 400"));
        assert!(answer(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n").starts_with("HTTP/1.1 400"));
        assert!(answer(b"NOT HTTP\r\n\r\n").starts_with("HTTP/1.1 400"));
        // A chunk-size line without end: the body fails, and nothing more is served.
        let mut endless = b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        endless.extend(std::iter::repeat_n(b'f', 10_000));
        endless.extend(b"\r\n\r\nGET /next HTTP/1.1\r\n\r\n");
        let a = answer(&endless);
        assert!(a.contains("false"), "{a}");
        assert!(!a.contains("/next"), "{a}");
        // Both framings: answered, then the connection ends.
        let a = answer(
            b"PUT / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
        );
        assert!(a.contains("Connection: close"), "{a}");
        assert!(!a.contains("/smuggled"), "{a}");
        // Nothing, or a connection closed mid-head: no answer.
        assert_eq!(answer(b""), "");
        assert_eq!(answer(b"GET / HT"), "");
    }
}
