//! Faults between us and the real docker-registry: a loopback proxy (a test peer, in this
//! file) that answers some requests with 503, cuts blob responses after a number of bytes,
//! or flips a byte of a blob. Needs `OCIKIT_TEST_REGISTRY` (`bash scripts/test.sh`).

mod common;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ocikit_distribution::oci_spec::image::MediaType;
use ocikit_distribution::ocikit_image::{ImageDestination, ImageSource};
use ocikit_distribution::{Client, Error, RetryPolicy};
use support::{RandomReader, client, random_descriptor, unique};

/// What the proxy does wrong.
#[derive(Default)]
struct Faults {
    /// Answer every n-th request with 503 (0: never).
    every_nth_503: u64,
    /// Cut each blob response after this many body bytes (0: never).
    cut_after: u64,
    /// Flip one byte of every blob response, at this body offset + 1 (0: never).
    corrupt_at: u64,
    requests: AtomicU64,
    injected_503: AtomicU64,
    cuts: AtomicU64,
    stop: AtomicBool,
}

struct Proxy {
    addr: String,
    faults: Arc<Faults>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.faults.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(&self.addr);
    }
}

fn start_proxy(upstream: String, faults: Faults) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let faults = Arc::new(faults);
    let f = faults.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if f.stop.load(Ordering::Relaxed) {
                break;
            }
            let Ok(conn) = conn else { continue };
            let f = f.clone();
            let upstream = upstream.clone();
            std::thread::spawn(move || {
                let _ = handle(conn, &upstream, &f);
            });
        }
    });
    Proxy { addr, faults }
}

fn read_head(r: &mut impl BufRead) -> std::io::Result<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(lines);
        }
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            return Ok(lines);
        }
        lines.push(line);
    }
}

/// One request per connection (the answer says `Connection: close`).
fn handle(client: TcpStream, upstream: &str, f: &Faults) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut client_r = BufReader::new(client.try_clone()?);
    let mut client_w = client;
    let head = read_head(&mut client_r)?;
    let Some(request_line) = head.first() else {
        return Ok(());
    };
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let n = f.requests.fetch_add(1, Ordering::Relaxed) + 1;
    if f.every_nth_503 > 0 && n.is_multiple_of(f.every_nth_503) {
        f.injected_503.fetch_add(1, Ordering::Relaxed);
        client_w.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(());
    }
    let content_length: u64 = head
        .iter()
        .find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut up = TcpStream::connect(upstream)?;
    let mut out = String::new();
    for h in &head {
        if !h.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(h);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    up.write_all(out.as_bytes())?;
    std::io::copy(&mut (&mut client_r).take(content_length), &mut up)?;

    let mut up_r = BufReader::new(up);
    let resp_head = read_head(&mut up_r)?;
    let status = resp_head
        .first()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("")
        .to_owned();
    let mut out = String::new();
    for h in &resp_head {
        if !h.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(h);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    client_w.write_all(out.as_bytes())?;
    let blob_body =
        method == "GET" && path.contains("/blobs/sha256:") && (status == "200" || status == "206");
    let mut sent = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let k = up_r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        let chunk = &mut buf[..k];
        if blob_body && f.corrupt_at > 0 {
            let at = f.corrupt_at - 1;
            if at >= sent && at < sent + k as u64 {
                chunk[(at - sent) as usize] ^= 0x20;
            }
        }
        if blob_body && f.cut_after > 0 && sent + k as u64 > f.cut_after {
            let keep = (f.cut_after - sent) as usize;
            client_w.write_all(&chunk[..keep])?;
            f.cuts.fetch_add(1, Ordering::Relaxed);
            // Drop both connections mid-body.
            let _ = client_w.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
        client_w.write_all(chunk)?;
        sent += k as u64;
    }
    Ok(())
}

fn proxied_client() -> Client {
    Client::builder()
        .plain_http("127.0.0.1")
        .retry(RetryPolicy::new(
            6,
            Duration::from_millis(5),
            Duration::from_millis(50),
        ))
        .resume_attempts(100)
        .auth_files(Vec::new())
        .build()
        .unwrap()
}

#[test]
fn large_blob_pull_survives_drops_and_503s() {
    let addr = common::registry_addr();
    let direct = client().repository_at(&addr, &unique("faults")).unwrap();
    let len: u64 = 100 * 1024 * 1024 + 12345;
    let d = random_descriptor(31, len, MediaType::ImageLayerGzip);
    direct
        .push_blob(&d, &mut RandomReader::new(31, len))
        .unwrap();

    let proxy = start_proxy(
        addr,
        Faults {
            every_nth_503: 3,
            cut_after: 9 * 1024 * 1024 + 7,
            ..Faults::default()
        },
    );
    let via = proxied_client()
        .repository_at(&proxy.addr, direct.name())
        .unwrap();
    assert_eq!(via.blob_exists(d.digest()).unwrap(), Some(len));
    let mut stream = via.get_blob(&d).unwrap();
    let copied = std::io::copy(&mut stream, &mut std::io::sink()).unwrap();
    assert_eq!(copied, len);
    stream.finish().unwrap();
    assert!(stream.is_verified());
    let resumed = stream.get_ref().resumed();
    assert!(resumed >= 10, "resumed {resumed} times");
    assert!(proxy.faults.cuts.load(Ordering::Relaxed) >= 10);
    assert!(proxy.faults.injected_503.load(Ordering::Relaxed) >= 3);
}

#[test]
fn corrupted_stream_is_rejected_and_nothing_is_written() {
    let addr = common::registry_addr();
    let source = client()
        .repository_at(&addr, &unique("corrupt-src"))
        .unwrap();
    let len: u64 = 3 * 1024 * 1024;
    let d = random_descriptor(41, len, MediaType::ImageLayerGzip);
    source
        .push_blob(&d, &mut RandomReader::new(41, len))
        .unwrap();
    let proxy = start_proxy(
        addr.clone(),
        Faults {
            corrupt_at: 1024 * 1024 + 1,
            ..Faults::default()
        },
    );
    let via = proxied_client()
        .repository_at(&proxy.addr, source.name())
        .unwrap();

    // Read directly: the stream fails with a digest mismatch at its end.
    let mut stream = via.get_blob(&d).unwrap();
    let e = std::io::copy(&mut stream, &mut std::io::sink()).unwrap_err();
    assert!(
        matches!(Error::from(e), Error::Image(ref i) if i.is_verification()),
        "a digest mismatch"
    );

    // Copied to another repository: refused, and the destination does not have the blob.
    let dest = client()
        .repository_at(&addr, &unique("corrupt-dst"))
        .unwrap();
    let e = dest.copy_blob_from(&via, &d).unwrap_err();
    assert!(e.is_verification(), "{e:?}");
    assert!(!dest.has_blob(&d).unwrap());

    // Copied into an OCI layout: refused, no blob and no temporary file left behind.
    let dir = tempfile::tempdir().unwrap();
    let layout = ocikit_layout::Layout::create(dir.path().join("layout")).unwrap();
    let e = layout.copy_blob_from(&via, &d).unwrap_err();
    assert!(e.is_verification(), "{e:?}");
    assert!(!ImageDestination::has_blob(&layout, &d).unwrap());
    let mut files = Vec::new();
    let mut stack = vec![dir.path().join("layout")];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                files.push(e.path());
            }
        }
    }
    files.retain(|f| {
        !["oci-layout", "index.json", ocikit_layout::LOCK_FILE]
            .iter()
            .any(|keep| f.ends_with(keep))
    });
    assert!(files.is_empty(), "{files:?}");

    // Copied to a file sink through the source trait: the error comes before the end.
    let mut sink = Vec::new();
    let mut verified = via.open_blob(&d).unwrap();
    assert!(std::io::copy(&mut verified, &mut sink).is_err());
    assert!(!verified.is_verified());
}
