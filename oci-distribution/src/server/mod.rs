//! An embedded registry: OCI layouts served over the distribution API (feature `server`).

mod api;
mod auth;
mod names;
mod storage;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub use auth::Htpasswd;

use crate::{Error, Result};

/// A registry that serves OCI image layouts over the
/// [distribution-spec v1.1](https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md)
/// API, in-process, on plain HTTP/1.1 (keep-alive). Feature `server`.
///
/// ```no_run
/// use oci_distribution::RegistryServer;
/// let dir = tempfile::tempdir()?;
/// let server = RegistryServer::new(dir.path()).bind("127.0.0.1:0")?;
/// println!("serving on {}", server.addr());
/// // ... push and pull with any OCI client ...
/// server.stop();
/// # Ok::<_, oci_distribution::Error>(())
/// ```
///
/// # Endpoints
/// `/v2/`; manifests `GET`/`HEAD`/`PUT`/`DELETE` by tag and digest (sha256 and sha512), with
/// the stored media type and `Docker-Content-Digest`, `OCI-Subject` on a `PUT` with a
/// subject; blobs `GET`/`HEAD` (single `Range`) and `DELETE`; uploads: monolithic `POST`
/// with `digest`, `POST` then `PUT`, chunked `PATCH` with `Content-Range` (416 when out of
/// order), streamed `PATCH`, status `GET`, cancel `DELETE`, cross-repository mount with
/// `from` and without (from any repository that has the blob); tags and catalog with
/// `n`/`last` and `Link`; referrers with `artifactType` filtering and
/// `OCI-Filters-Applied`. Errors carry the spec's codes ([`crate::ErrorCode`]); a 4xx the spec
/// has no code for (unknown route, unsatisfiable `Range`, malformed `n`) has a plain-text body.
///
/// # Storage
/// `ROOT/repositories/<name>/_layout` is one OCI image layout per repository (written
/// through `oci_layout`, so any OCI tool reads it); manifests are listed in its
/// `index.json`, tags are `org.opencontainers.image.ref.name` entries (a tag that is no
/// reference name, such as `_x` or `v1-`, as `tag+<hex of the tag>`). Cross-repository
/// mounts hard-link blobs. Upload sessions live in memory, their bytes under `ROOT/uploads`
/// (cleared at start): a restart forgets them. One server serves a root at a time
/// (`ROOT/server.lock`, a `flock`); a second `bind` on it fails. Deleting a manifest or tag edits
/// `index.json`; the blobs stay until `oci_layout::Layout::gc` runs on the layout.
///
/// # Security
/// Requests are untrusted. Repository names are checked against the spec's grammar before
/// any path is built from them, digests are parsed (sha256/sha512 only), upload session ids
/// are random 128-bit values only looked up, never used as paths. Blob bodies stream to disk
/// through the layout's verifying writer and appear under their digest only once verified;
/// manifests are capped ([`RegistryServer::max_manifest_size`]) and blobs may be
/// ([`RegistryServer::max_blob_size`]). An image manifest whose config or layers the
/// repository does not have is refused (`MANIFEST_BLOB_UNKNOWN`); an index may name
/// absent manifests. Manifests are verified when served; blobs are served as stored (every
/// client verifies them, and `oci_layout::Layout::fsck` checks the store). There is no
/// TLS: bind to loopback, or put a TLS proxy in front. Connections are capped
/// ([`RegistryServer::max_connections`]) and closed when idle
/// ([`RegistryServer::idle_timeout`]). Request heads are read by tiny_http, which does not
/// bound a header line: a client that keeps sending one without a line end grows that
/// connection's buffer. Keep the port private, or behind a proxy that limits headers. With [`RegistryServer::htpasswd`],
/// every request needs basic auth; without it, anyone who can connect can push and delete.
///
/// # Non-goals
/// No token auth, no per-repository access control, no TLS, no HTTP/2, no garbage
/// collection while serving, no Docker schema 1 manifests.
#[derive(Debug)]
pub struct RegistryServer {
    root: PathBuf,
    workers: usize,
    max_manifest_size: u64,
    max_blob_size: u64,
    upload_ttl: Duration,
    users: Option<Htpasswd>,
    max_connections: usize,
    idle_timeout: Duration,
}

impl RegistryServer {
    /// A registry storing its content under `root` (created when missing).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RegistryServer {
            root: root.into(),
            workers: 8,
            max_manifest_size: oci_image::DEFAULT_MAX_DOCUMENT_SIZE,
            max_blob_size: u64::MAX,
            upload_ttl: Duration::from_secs(3600),
            users: None,
            max_connections: 256,
            idle_timeout: Duration::from_secs(300),
        }
    }

    /// How many requests are handled at once (default 8; at least 1). More connections
    /// than that are accepted and kept alive; their requests wait for a worker.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// The largest manifest accepted, in bytes (default 4 MiB, also the most manifests are
    /// parsed with); larger ones get 413.
    pub fn max_manifest_size(mut self, bytes: u64) -> Self {
        self.max_manifest_size = bytes.min(oci_image::DEFAULT_MAX_DOCUMENT_SIZE);
        self
    }

    /// The largest blob accepted, in bytes (default: no limit); larger ones get 413
    /// `SIZE_INVALID`.
    pub fn max_blob_size(mut self, bytes: u64) -> Self {
        self.max_blob_size = bytes;
        self
    }

    /// How long an upload session may stay idle before it is removed with its bytes
    /// (default one hour).
    pub fn upload_ttl(mut self, ttl: Duration) -> Self {
        self.upload_ttl = ttl;
        self
    }

    /// How many client connections are open at once (default 256; at least 1); more are
    /// answered 503 and closed. Each takes two threads besides tiny_http's own.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long a connection may send nothing (between requests, or stalled in one) before
    /// it is closed (default 5 minutes).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Requires basic authentication of one of `users` on every request (default: none).
    pub fn htpasswd(mut self, users: Htpasswd) -> Self {
        self.users = Some(users);
        self
    }

    /// Listens on `addr` (`127.0.0.1:0` for a free port) and serves on background threads
    /// until the returned handle is stopped or dropped.
    pub fn bind(self, addr: impl ToSocketAddrs) -> Result<ServerHandle> {
        let io_err = |what: &str, e: &dyn std::fmt::Display| Error::Server {
            message: format!("{what}: {e}"),
        };
        let store = storage::Store::open(&self.root, self.upload_ttl)
            .map_err(|e| io_err(&format!("storage {}", self.root.display()), &e))?;
        // Clients are accepted here and handed to tiny_http through a private Unix socket:
        // see `front`.
        let tcp = TcpListener::bind(addr).map_err(|e| io_err("bind", &e))?;
        let addr = tcp.local_addr().map_err(|e| io_err("bind", &e))?;
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| io_err("random", &e))?;
        let socket = std::env::temp_dir().join(format!(
            "ocikit-registry-{}-{}.sock",
            std::process::id(),
            u64::from_le_bytes(nonce)
        ));
        let unix = UnixListener::bind(&socket).map_err(|e| io_err("bind", &e))?;
        let server =
            tiny_http::Server::from_listener(unix, None).map_err(|e| io_err("bind", &e))?;
        let server = Arc::new(server);
        let state = Arc::new(api::State {
            store,
            max_manifest_size: self.max_manifest_size,
            max_blob_size: self.max_blob_size,
            users: self.users,
        });
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..self.workers)
            .map(|i| {
                let (server, state, stop) = (server.clone(), state.clone(), stop.clone());
                std::thread::Builder::new()
                    .name(format!("ocikit-registry-{i}"))
                    .spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            match server.recv_timeout(Duration::from_millis(200)) {
                                Ok(Some(req)) => api::handle(&state, req),
                                Ok(None) => {}
                                Err(_) => break,
                            }
                        }
                    })
                    .map_err(|e| io_err("spawning a worker", &e))
            })
            .collect::<Result<Vec<_>>>()?;
        let acceptor = {
            let stop = stop.clone();
            let open = Arc::new(AtomicUsize::new(0));
            let open_on_error = open.clone();
            let (max_connections, idle_timeout) = (self.max_connections, self.idle_timeout);
            std::thread::Builder::new()
                .name("ocikit-registry-accept".into())
                .spawn(move || {
                    for conn in tcp.incoming() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let Ok(mut conn) = conn else { continue };
                        if open.fetch_add(1, Ordering::AcqRel) >= max_connections {
                            open.fetch_sub(1, Ordering::AcqRel);
                            let _ = conn.write_all(
                                b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n",
                            );
                            continue;
                        }
                        // An idle connection (between requests, or a client that stalls
                        // mid-request) is closed after `idle_timeout`.
                        let _ = conn.set_read_timeout(Some(idle_timeout));
                        let socket = socket.clone();
                        let open = open.clone();
                        let spawned = std::thread::Builder::new()
                            .name("ocikit-registry-conn".into())
                            .spawn(move || {
                                front(conn, &socket);
                                open.fetch_sub(1, Ordering::AcqRel);
                            });
                        if spawned.is_err() {
                            open_on_error.fetch_sub(1, Ordering::AcqRel);
                        }
                    }
                })
                .map_err(|e| io_err("spawning the acceptor", &e))?
        };
        Ok(ServerHandle {
            addr,
            stop,
            server,
            threads,
            acceptor: Some(acceptor),
        })
    }
}

/// A running [`RegistryServer`]: its address, and the way to stop it (dropping it stops it
/// too).
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    server: Arc<tiny_http::Server>,
    threads: Vec<JoinHandle<()>>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addr", &self.addr)
            .field("workers", &self.threads.len())
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The address it listens on (with the port chosen when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving: requests being handled finish, the listener closes, the worker threads
    /// are joined.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Serves until another thread stops the process (what a program that is only a registry
    /// does).
    pub fn wait(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for _ in 0..self.threads.len() {
            self.server.unblock();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(acceptor) = self.acceptor.take() {
            // Wakes the acceptor, which sees the flag.
            let _ = TcpStream::connect(self.addr);
            let _ = acceptor.join();
        }
    }
}

/// One client connection: its bytes go to tiny_http over the private Unix socket and back,
/// in large copies ([`pump`]).
///
/// Why not let tiny_http accept TCP itself: clients that try TLS first and fall back to plain
/// HTTP (skopeo, podman, crane with their insecure flags) send a TLS ClientHello, which
/// tiny_http waits on for a line end that never comes, until the client's handshake times
/// out (10 s in Go). docker-registry answers such a hello with a 400 at once; so do we, here.
fn front(mut tcp: TcpStream, socket: &std::path::Path) {
    let mut first = [0u8; 1];
    let n = match tcp.read(&mut first) {
        Ok(n) => n,
        Err(_) => return,
    };
    if n == 0 {
        return;
    }
    // 0x16: a TLS handshake record.
    if first[0] == 0x16 {
        let _ = tcp.write_all(
            b"HTTP/1.0 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        );
        let _ = tcp.shutdown(Shutdown::Both);
        return;
    }
    let Ok(mut unix) = UnixStream::connect(socket) else {
        return;
    };
    if unix.write_all(&first).is_err() {
        return;
    }
    let (Ok(mut tcp_in), Ok(mut unix_out)) = (tcp.try_clone(), unix.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        let _ = pump(&mut tcp_in, &mut unix_out);
        let _ = unix_out.shutdown(Shutdown::Write);
    });
    let _ = pump(&mut unix, &mut tcp);
    let _ = tcp.shutdown(Shutdown::Both);
    let _ = up.join();
}

/// Copies until EOF in large reads and writes: between two sockets `io::copy` goes 8 KiB at a
/// time, and blobs pass here.
fn pump(from: &mut impl Read, to: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}
