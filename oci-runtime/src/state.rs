//! Container state on disk, in `<root>/<id>/`: `state.json` (what the bundle said, written
//! when creation begins), `process.json` (the container process's pid and start time, written
//! once it is set up) and the `exec.fifo` that exists exactly while the container is created
//! but not started.
//!
//! Each file is written once, to a temporary name then renamed into place, and never replaced:
//! readers never see a partial file, and no rename replaces an existing file (ext4 flushes
//! data on such renames, which costs milliseconds when the state root is not a tmpfs).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use oci_spec::runtime::ContainerState;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What is persisted for one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Persisted {
    pub(crate) id: String,
    /// 0 while creating (kept in `process.json`).
    #[serde(skip)]
    pub(crate) pid: i32,
    /// The process's start time (field 22 of `/proc/<pid>/stat`), to detect pid reuse.
    #[serde(skip)]
    pub(crate) start_time: u64,
    pub(crate) bundle: PathBuf,
    pub(crate) rootfs: PathBuf,
    pub(crate) created: String,
    pub(crate) annotations: HashMap<String, String>,
    pub(crate) oci_version: String,
}

pub(crate) const STATE_FILE: &str = "state.json";
pub(crate) const PROCESS_FILE: &str = "process.json";

#[derive(Serialize, Deserialize)]
struct Process {
    pid: i32,
    start_time: u64,
}

/// Writes `bytes` to `dir/name` through a temporary file and a rename.
fn write_new(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        std::fs::rename(&tmp, dir.join(name))
    };
    write().map_err(|e| Error::io("writing state", Some(dir.join(name)), e))
}
pub(crate) const FIFO: &str = "exec.fifo";
pub(crate) const CGROUP_FILE: &str = "cgroup.json";

/// Writes `cgroup.json` (once, when the container's cgroup directories exist).
pub(crate) fn save_cgroup(dir: &Path, cg: &crate::cgroup::Cgroup) -> Result<()> {
    let bytes = serde_json::to_vec(cg).expect("cgroup serializes");
    write_new(dir, CGROUP_FILE, &bytes)
}

pub(crate) const SPEC_FILE: &str = "config.json";

/// Writes `config.json`, the container's configuration as created (for `exec`).
pub(crate) fn save_spec(dir: &Path, spec: &oci_spec::runtime::Spec) -> Result<()> {
    let bytes = serde_json::to_vec(spec).expect("spec serializes");
    write_new(dir, SPEC_FILE, &bytes)
}

/// The container's configuration as created.
pub(crate) fn load_spec(dir: &Path) -> Result<oci_spec::runtime::Spec> {
    let path = dir.join(SPEC_FILE);
    let bytes =
        std::fs::read(&path).map_err(|e| Error::io("reading state", Some(path.clone()), e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::io("parsing state", Some(path), std::io::Error::other(e)))
}

pub(crate) const HOOKS_FILE: &str = "hooks.json";

/// Writes `hooks.json` (once, when creation begins).
pub(crate) fn save_hooks(dir: &Path, hooks: &oci_spec::runtime::Hooks) -> Result<()> {
    let bytes = serde_json::to_vec(hooks).expect("hooks serialize");
    write_new(dir, HOOKS_FILE, &bytes)
}

/// The container's hooks, if it has any.
pub(crate) fn load_hooks(dir: &Path) -> Result<Option<oci_spec::runtime::Hooks>> {
    load_optional(&dir.join(HOOKS_FILE))
}

/// The container's cgroup, if it has one.
pub(crate) fn load_cgroup(dir: &Path) -> Result<Option<crate::cgroup::Cgroup>> {
    load_optional(&dir.join(CGROUP_FILE))
}

/// A JSON state file that may be absent.
fn load_optional<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            Error::io(
                "parsing state",
                Some(path.to_owned()),
                std::io::Error::other(e),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading state", Some(path.to_owned()), e)),
    }
}

impl Persisted {
    pub(crate) fn load(dir: &Path, id: &str) -> Result<Self> {
        let path = dir.join(STATE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::ContainerNotFound { id: id.into() });
            }
            Err(e) => return Err(Error::io("reading state", Some(path), e)),
        };
        let parse = |path: PathBuf, e: serde_json::Error| {
            Error::io("parsing state", Some(path), std::io::Error::other(e))
        };
        let mut p: Persisted = serde_json::from_slice(&bytes).map_err(|e| parse(path, e))?;
        let path = dir.join(PROCESS_FILE);
        match std::fs::read(&path) {
            Ok(b) => {
                let proc: Process = serde_json::from_slice(&b).map_err(|e| parse(path, e))?;
                p.pid = proc.pid;
                p.start_time = proc.start_time;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("reading state", Some(path), e)),
        }
        Ok(p)
    }

    /// Writes `state.json` (once, when creation begins).
    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec(self).expect("state serializes");
        write_new(dir, STATE_FILE, &bytes)
    }

    /// Writes `process.json` (once, when the container process is set up).
    pub(crate) fn save_process(&self, dir: &Path) -> Result<()> {
        let proc = Process {
            pid: self.pid,
            start_time: self.start_time,
        };
        let bytes = serde_json::to_vec(&proc).expect("process serializes");
        write_new(dir, PROCESS_FILE, &bytes)
    }

    /// The status now, from the process table and the fifo.
    pub(crate) fn status(&self, dir: &Path) -> ContainerState {
        if self.pid == 0 {
            return ContainerState::Creating;
        }
        if !alive(self.pid, self.start_time) {
            return ContainerState::Stopped;
        }
        if dir.join(FIFO).exists() {
            ContainerState::Created
        } else {
            ContainerState::Running
        }
    }
}

/// The state character and start time from `/proc/<pid>/stat`.
pub(crate) fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Whether `pid` is the same, still running (not zombie) process.
pub(crate) fn alive(pid: i32, start_time: u64) -> bool {
    matches!(proc_stat(pid), Some((s, t)) if t == start_time && s != 'Z' && s != 'X')
}

/// Now as RFC 3339 UTC with nanoseconds, like runc's `created`.
pub(crate) fn now_rfc3339() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_status() {
        let dir = tempfile::tempdir().unwrap();
        let (_, start) = proc_stat(std::process::id() as i32).unwrap();
        let mut p = Persisted {
            id: "x".into(),
            pid: 0,
            start_time: 0,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: now_rfc3339(),
            annotations: HashMap::new(),
            oci_version: "1.0.2".into(),
        };
        p.save(dir.path()).unwrap();
        let q = Persisted::load(dir.path(), "x").unwrap();
        assert_eq!(q.status(dir.path()), ContainerState::Creating);
        p.pid = std::process::id() as i32;
        p.start_time = start;
        p.save_process(dir.path()).unwrap();
        let q = Persisted::load(dir.path(), "x").unwrap();
        assert_eq!((q.pid, q.start_time), (p.pid, p.start_time));
        assert_eq!(p.status(dir.path()), ContainerState::Running);
        std::fs::write(dir.path().join(FIFO), b"").unwrap();
        assert_eq!(p.status(dir.path()), ContainerState::Created);
        p.start_time += 1;
        assert_eq!(p.status(dir.path()), ContainerState::Stopped);
        assert!(matches!(
            Persisted::load(&dir.path().join("nope"), "nope"),
            Err(Error::ContainerNotFound { .. })
        ));
        let t = now_rfc3339();
        assert_eq!(t.len(), 30, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }
}
