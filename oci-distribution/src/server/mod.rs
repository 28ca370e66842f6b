//! An embedded registry: OCI layouts served over the distribution API (feature `server`).

mod api;
mod auth;
mod http;
mod names;
mod storage;

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub use auth::Htpasswd;
#[doc(hidden)]
pub use http::fuzz_connection;

use crate::{Error, Result};

/// A registry that serves OCI image layouts over the
/// [distribution-spec v1.1](https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md)
/// API, in-process, on plain HTTP/1.1 (keep-alive, pipelining; heads parsed by `httparse`).
/// Feature `server`.
///
/// ```no_run
/// use ocikit_distribution::RegistryServer;
/// let dir = tempfile::tempdir()?;
/// let server = RegistryServer::new(dir.path()).bind("127.0.0.1:0")?;
/// println!("serving on {}", server.addr());
/// // ... push and pull with any OCI client ...
/// server.stop();
/// # Ok::<_, ocikit_distribution::Error>(())
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
/// through `ocikit_layout`, so any OCI tool reads it); manifests are listed in its
/// `index.json`, tags are `org.opencontainers.image.ref.name` entries (a tag that is no
/// reference name, such as `_x` or `v1-`, as `tag+<hex of the tag>`). Cross-repository
/// mounts hard-link blobs. Upload sessions live in memory, their bytes under `ROOT/uploads`
/// (cleared at start): a restart forgets them. One server serves a root at a time
/// (`ROOT/server.lock`, a `flock`); a second `bind` on it fails. Deleting a manifest or tag edits
/// `index.json`; the blobs stay until `ocikit_layout::Layout::gc` runs on the layout.
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
/// client verifies them, and `ocikit_layout::Layout::fsck` checks the store). There is no
/// TLS: bind to loopback, or put a TLS proxy in front. Connections are capped
/// ([`RegistryServer::max_connections`]) and closed when idle
/// ([`RegistryServer::idle_timeout`]). A request head is at most 64 KiB and 100 fields (431
/// beyond), a chunk-size line at most 4 KiB; a TLS hello gets 400 at once. With
/// [`RegistryServer::htpasswd`], every request needs basic auth; without it, anyone who can
/// connect can push and delete.
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
            max_manifest_size: ocikit_image::DEFAULT_MAX_DOCUMENT_SIZE,
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
        self.max_manifest_size = bytes.min(ocikit_image::DEFAULT_MAX_DOCUMENT_SIZE);
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
    /// answered 503 and closed. Each takes a thread.
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
        let tcp = TcpListener::bind(addr).map_err(|e| io_err("bind", &e))?;
        let addr = tcp.local_addr().map_err(|e| io_err("bind", &e))?;
        let shared = Arc::new(Shared {
            state: api::State {
                store,
                max_manifest_size: self.max_manifest_size,
                max_blob_size: self.max_blob_size,
                users: self.users,
            },
            stop: AtomicBool::new(false),
            busy: Mutex::new(0),
            free: Condvar::new(),
            workers: self.workers,
            connections: Mutex::new(Connections::default()),
            closed: Condvar::new(),
        });
        let acceptor = {
            let shared = shared.clone();
            let (max_connections, idle_timeout) = (self.max_connections, self.idle_timeout);
            std::thread::Builder::new()
                .name("ocikit-registry-accept".into())
                .spawn(move || accept(&tcp, &shared, max_connections, idle_timeout))
                .map_err(|e| io_err("spawning the acceptor", &e))?
        };
        Ok(ServerHandle {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }
}

/// What the acceptor and the connection threads share.
struct Shared {
    state: api::State,
    stop: AtomicBool,
    /// Requests being handled, at most `workers` at once.
    busy: Mutex<usize>,
    free: Condvar,
    workers: usize,
    /// The open connections, to close them when stopping.
    connections: Mutex<Connections>,
    closed: Condvar,
}

#[derive(Default)]
struct Connections {
    next: u64,
    open: std::collections::HashMap<u64, TcpStream>,
}

/// Accepts connections until stopped, each served on a thread of its own (at most
/// `max_connections`; more get 503 and are closed).
fn accept(tcp: &TcpListener, shared: &Arc<Shared>, max_connections: usize, idle: Duration) {
    for conn in tcp.incoming() {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let Ok(mut conn) = conn else { continue };
        let id = {
            let mut connections = lock(&shared.connections);
            if connections.open.len() >= max_connections {
                let _ = conn.write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n",
                );
                continue;
            }
            let Ok(copy) = conn.try_clone() else { continue };
            connections.next += 1;
            let id = connections.next;
            connections.open.insert(id, copy);
            id
        };
        // An idle connection (between requests, or a client that stalls mid-request, or
        // one that does not read its responses) is closed after `idle`.
        let _ = conn.set_read_timeout(Some(idle));
        let _ = conn.set_write_timeout(Some(idle));
        let _ = conn.set_nodelay(true);
        let worker = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("ocikit-registry-conn".into())
            .spawn(move || {
                http::serve(conn, |req| {
                    let _permit = Permit::take(&worker);
                    api::handle(&worker.state, req)
                });
                let mut connections = lock(&worker.connections);
                connections.open.remove(&id);
                worker.closed.notify_all();
            });
        if spawned.is_err() {
            lock(&shared.connections).open.remove(&id);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One of the `workers` slots for handling a request, given back when dropped.
struct Permit<'s>(&'s Shared);

impl<'s> Permit<'s> {
    fn take(shared: &'s Shared) -> Permit<'s> {
        let mut busy = lock(&shared.busy);
        while *busy >= shared.workers {
            busy = shared.free.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        *busy += 1;
        Permit(shared)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *lock(&self.0.busy) -= 1;
        self.0.free.notify_one();
    }
}

/// A running [`RegistryServer`]: its address, and the way to stop it (dropping it stops it
/// too).
pub struct ServerHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addr", &self.addr)
            .field("workers", &self.shared.workers)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The address it listens on (with the port chosen when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving: the listener closes, open connections are closed (a request being
    /// handled fails where it next touches its connection), and every thread is waited for,
    /// so the root can be served again at once.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Serves until another thread stops the process (what a program that is only a registry
    /// does).
    pub fn wait(mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            // Wakes the acceptor, which sees the flag.
            let _ = TcpStream::connect(self.addr);
            let _ = acceptor.join();
        }
        let mut connections = lock(&self.shared.connections);
        for conn in connections.open.values() {
            let _ = conn.shutdown(Shutdown::Both);
        }
        while !connections.open.is_empty() {
            connections = self
                .shared
                .closed
                .wait(connections)
                .unwrap_or_else(|e| e.into_inner());
        }
        drop(connections);
        // A connection thread is gone from the list just before it ends; the store (and its
        // lock on the root) goes with the last of them.
        while Arc::strong_count(&self.shared) > 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}
