//! Where a served registry keeps its content.
//!
//! ```text
//! ROOT/repositories/<name>/_layout/    one OCI image layout per repository
//! ROOT/uploads/<session id>            bytes of upload sessions in progress
//! ROOT/server.lock                     flock held by the one server serving ROOT
//! ```
//!
//! One layout per repository, so every served repository is a layout any OCI tool reads
//! (`skopeo copy oci:ROOT/repositories/<name>/_layout ...`). Repository names nest
//! (`a` and `a/b` are both valid), so a layout cannot sit at the name's own path: its blobs
//! would collide with a repository called `a/blobs`. It sits in `_layout` under it, a
//! component no name can contain (name components start with `[a-z0-9]`). Names are
//! validated by the spec's grammar before any path is built, so no name can climb out
//! (`..` and empty components are not names), and blob paths come from validated digests.
//!
//! Cross-repository mounts hard-link the blob into the target layout (a copy, verified,
//! where linking fails), so repositories share storage without sharing a directory.
//! Manifests are blobs of the layout, each listed in `index.json` (without a name when
//! pushed by digest), tags are `org.opencontainers.image.ref.name` entries: as themselves, or,
//! for a tag that is no reference name (`_x`, `v1-`), as `tag+<hex>` (`names::tag_ref`).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ocikit_image::oci_spec::image::Digest;
use ocikit_layout::Layout;

use super::names::valid_name;

/// The directory of a repository's layout inside its name's directory.
const LAYOUT_DIR: &str = "_layout";

/// One upload session.
#[derive(Debug)]
pub(crate) struct Session {
    /// The repository it uploads into.
    pub(crate) repo: String,
    /// Its bytes so far.
    pub(crate) path: PathBuf,
    /// How many bytes it holds.
    pub(crate) size: u64,
    /// When it was last used (sessions idle longer than the TTL are removed).
    pub(crate) touched: Instant,
}

/// The registry's storage.
#[derive(Debug)]
pub(crate) struct Store {
    root: PathBuf,
    sessions: Mutex<HashMap<String, Arc<Mutex<Session>>>>,
    ttl: Duration,
    /// `ROOT/server.lock`, locked while the store is open: one server per root (a second
    /// one would clear the first one's uploads).
    _lock: File,
}

impl Store {
    /// Opens (creating) the storage under `root`; upload sessions of an earlier run are gone.
    pub(crate) fn open(root: &Path, ttl: Duration) -> io::Result<Store> {
        fs::create_dir_all(root.join("repositories"))?;
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(root.join("server.lock"))?;
        lock.try_lock().map_err(|_| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                "another server is serving this root",
            )
        })?;
        let uploads = root.join("uploads");
        if uploads.exists() {
            fs::remove_dir_all(&uploads)?;
        }
        fs::create_dir_all(&uploads)?;
        Ok(Store {
            root: root.to_owned(),
            sessions: Mutex::new(HashMap::new()),
            ttl,
            _lock: lock,
        })
    }

    fn repo_dir(&self, name: &str) -> PathBuf {
        debug_assert!(valid_name(name));
        let mut p = self.root.join("repositories");
        for c in name.split('/') {
            p.push(c);
        }
        p.join(LAYOUT_DIR)
    }

    /// The layout of an existing repository.
    pub(crate) fn layout(&self, name: &str) -> Option<Layout> {
        let dir = self.repo_dir(name);
        if dir.join("oci-layout").is_file() {
            Layout::open(dir).ok()
        } else {
            None
        }
    }

    /// The layout of a repository, created when missing.
    pub(crate) fn layout_or_create(&self, name: &str) -> ocikit_layout::Result<Layout> {
        match self.layout(name) {
            Some(l) => Ok(l),
            None => Layout::create(self.repo_dir(name)),
        }
    }

    /// Every repository, sorted.
    pub(crate) fn repositories(&self) -> Vec<String> {
        fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
            let Ok(entries) = fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let Ok(name) = e.file_name().into_string() else {
                    continue;
                };
                if name == LAYOUT_DIR || !e.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let full = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                if !valid_name(&full) {
                    continue;
                }
                if e.path().join(LAYOUT_DIR).join("oci-layout").is_file() {
                    out.push(full.clone());
                }
                walk(&e.path(), &full, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.root.join("repositories"), "", &mut out);
        out.sort();
        out
    }

    /// Makes `digest`, stored in repository `from`, part of `to` (a hard link, or a verified
    /// copy). False when `from` does not have it.
    pub(crate) fn mount(
        &self,
        digest: &Digest,
        from: &str,
        to: &str,
    ) -> ocikit_layout::Result<bool> {
        let Some(src) = self.layout(from) else {
            return Ok(false);
        };
        if !src.has_blob(digest)? {
            return Ok(false);
        }
        let dst = self.layout_or_create(to)?;
        if dst.has_blob(digest)? {
            return Ok(true);
        }
        let target = dst.blob_path(digest);
        if let Some(parent) = target.parent() {
            let _ = fs::create_dir_all(parent);
        }
        match fs::hard_link(src.blob_path(digest), &target) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(true),
            Err(_) => {
                dst.write_blob(src.open_blob_by_digest(digest)?, Some(digest), None)?;
                Ok(true)
            }
        }
    }

    /// A repository, other than `to`, that has `digest` (for a mount without `from`).
    pub(crate) fn find_blob(&self, digest: &Digest, to: &str) -> Option<String> {
        self.repositories().into_iter().find(|r| {
            r != to
                && self
                    .layout(r)
                    .is_some_and(|l| l.has_blob(digest).unwrap_or(false))
        })
    }

    // ---- upload sessions ----------------------------------------------------------------

    /// Starts an upload session into `repo`; returns its id.
    pub(crate) fn new_session(&self, repo: &str) -> io::Result<String> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| io::Error::other(e.to_string()))?;
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let path = self.root.join("uploads").join(&id);
        File::create(&path)?;
        let mut sessions = self.sessions.lock().expect("not poisoned");
        // Expire idle sessions (their bytes too) whenever a new one starts.
        let now = Instant::now();
        sessions.retain(|_, s| match s.try_lock() {
            Ok(s) if now.duration_since(s.touched) > self.ttl => {
                let _ = fs::remove_file(&s.path);
                false
            }
            _ => true,
        });
        sessions.insert(
            id.clone(),
            Arc::new(Mutex::new(Session {
                repo: repo.to_owned(),
                path,
                size: 0,
                touched: now,
            })),
        );
        Ok(id)
    }

    /// The session `id` of repository `repo`. Ids are only ever looked up, never turned into
    /// paths: an unknown id is refused whatever it contains.
    pub(crate) fn session(&self, repo: &str, id: &str) -> Option<Arc<Mutex<Session>>> {
        let sessions = self.sessions.lock().expect("not poisoned");
        let s = sessions.get(id)?.clone();
        drop(sessions);
        let same_repo = s.lock().expect("not poisoned").repo == repo;
        same_repo.then_some(s)
    }

    /// Ends session `id` and removes its bytes (at `path`: the caller holds the session).
    pub(crate) fn end_session(&self, id: &str, path: &Path) {
        self.sessions.lock().expect("not poisoned").remove(id);
        let _ = fs::remove_file(path);
    }

    /// Opens a session's file for appending.
    pub(crate) fn append(session: &Session) -> io::Result<File> {
        OpenOptions::new().append(true).open(&session.path)
    }
}
