//! Cgroups through the file system ("fs" driver), version 1 and version 2 (unified).
//!
//! Everything takes the cgroup root as a path (normally `/sys/fs/cgroup`), so the logic runs
//! on a fixture tree in unit tests. What to write is computed from `linux.resources` first
//! ([`v1_writes`], [`v2_writes`]), then written.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Linux, LinuxResources};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The v1 hierarchies a container gets a cgroup in, where the host mounts them:
/// `(name in /proc/self/cgroup, directory under the root)`: runc's fs driver's list, with the
/// named `systemd` hierarchy and, on a hybrid host, the unified one (`""`, mounted at
/// `unified`), so that every line of the container's `/proc/self/cgroup` names its own cgroup.
const V1_HIERARCHIES: &[(&str, &str)] = &[
    ("memory", "memory"),
    ("cpu", "cpu"),
    ("cpuacct", "cpuacct"),
    ("cpuset", "cpuset"),
    ("pids", "pids"),
    ("blkio", "blkio"),
    ("devices", "devices"),
    ("freezer", "freezer"),
    ("hugetlb", "hugetlb"),
    ("net_cls", "net_cls"),
    ("net_prio", "net_prio"),
    ("perf_event", "perf_event"),
    ("rdma", "rdma"),
    ("name=systemd", "systemd"),
    ("", "unified"),
];

/// Which kind of hierarchy a cgroup root holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Version {
    /// One hierarchy per controller, `<root>/<controller>/...`.
    V1,
    /// The unified hierarchy, `<root>/...`.
    V2,
}

/// `<root>/cgroup.controllers` exists only on a unified root.
pub(crate) fn detect(root: &Path) -> Version {
    if root.join("cgroup.controllers").exists() {
        Version::V2
    } else {
        Version::V1
    }
}

/// A container's cgroup: one directory per v1 controller, or one v2 directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Cgroup {
    pub(crate) version: Version,
    /// `(controller, directory)`; the controller is empty for v2.
    pub(crate) dirs: Vec<(String, PathBuf)>,
    /// The directories this runtime made, deepest first: what delete removes.
    #[serde(default)]
    pub(crate) created: Vec<PathBuf>,
}

/// The path of this process's own cgroup for `controller` (empty for v2) from the text of
/// `/proc/self/cgroup`.
fn own_path(proc_cgroup: &str, controller: &str) -> PathBuf {
    for line in proc_cgroup.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or("/"));
        // The unified hierarchy's line is `0::<path>`.
        if ctrls.split(',').any(|c| c == controller) || ctrls == controller {
            return PathBuf::from(path.trim_start_matches('/'));
        }
    }
    PathBuf::new()
}

fn relative(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect()
}

impl Cgroup {
    /// Where the container's cgroup goes. An absolute `cgroups_path` is taken from the root
    /// of each hierarchy, a relative one from this process's own cgroup (`own`: the text of
    /// `/proc/self/cgroup`), as runc's fs driver does.
    pub(crate) fn plan(root: &Path, cgroups_path: &Path, own: &str) -> Self {
        let version = detect(root);
        let rel = relative(cgroups_path);
        let under = |ctrl: &str| {
            if cgroups_path.is_absolute() {
                rel.clone()
            } else {
                own_path(own, ctrl).join(&rel)
            }
        };
        let dirs = match version {
            Version::V2 => vec![(String::new(), root.join(under("")))],
            Version::V1 => V1_HIERARCHIES
                .iter()
                .filter(|(_, d)| root.join(d).join("cgroup.procs").exists())
                .map(|(c, d)| (c.to_string(), root.join(d).join(under(c))))
                .collect(),
        };
        Cgroup {
            version,
            dirs,
            created: Vec::new(),
        }
    }

    fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(c, _)| c == controller)
            .map(|(_, d)| d.as_path())
    }

    /// Makes the directories (remembering which were new) and writes the limits of
    /// `linux.resources` and the device policy ([`crate::devices::policy`]: default deny,
    /// whatever the configuration says, as runc).
    pub(crate) fn create(&mut self, root: &Path, linux: Option<&Linux>) -> Result<()> {
        if let Some(program) = self.write_files(root, linux)? {
            let dir = &self.dirs[0].1;
            crate::sys::attach_device_filter(dir, &program)
                .map_err(|e| Error::sys("attaching the device filter", Some(dir.clone()), e))?;
        }
        Ok(())
    }

    /// [`create`](Self::create) but for what is not a file: returns the v2 device program
    /// still to attach.
    fn write_files(
        &mut self,
        root: &Path,
        linux: Option<&Linux>,
    ) -> Result<Option<Vec<crate::devices::BpfInsn>>> {
        let resources = linux.and_then(|l| l.resources().as_ref());
        // Everything is computed first: a bad value leaves no directory behind.
        let devices = crate::devices::policy(linux)?;
        let empty = LinuxResources::default();
        let res = resources.unwrap_or(&empty);
        let (v1, v2) = match self.version {
            Version::V1 => (v1_writes(res)?, Vec::new()),
            Version::V2 => (Vec::new(), v2_writes(res)?),
        };
        // A limit for a controller the host does not mount is an error naming it, before
        // anything is made.
        if let Some((ctrl, file, _)) = v1.iter().find(|(c, _, _)| self.dir(c).is_none()) {
            return Err(Error::Unsupported {
                feature: format!("cgroup controller {ctrl} (for {file}): not mounted on this host"),
            });
        }
        if self.version == Version::V1 && self.dir("devices").is_none() {
            // As runc's fs driver: "The non-presence of the devices subsystem is considered
            // fatal for security reasons."
            return Err(Error::Unsupported {
                feature: format!(
                    "cgroup v1 without a devices hierarchy under {} (the device policy \
                     cannot be applied)",
                    root.display()
                ),
            });
        }
        for (ctrl, dir) in self.dirs.clone() {
            let mut missing = Vec::new();
            let mut d = dir.as_path();
            while !d.exists() && d.starts_with(root) {
                missing.push(d.to_path_buf());
                d = d.parent().unwrap_or(root);
            }
            for m in missing.iter().rev() {
                std::fs::create_dir(m)
                    .map_err(|e| Error::io("creating cgroup", Some(m.clone()), e))?;
                self.created.insert(0, m.clone());
                if ctrl == "cpuset" {
                    inherit_cpuset(m)?;
                }
            }
            if self.version == Version::V2 {
                // Only the controllers whose files the limits need.
                let needed: Vec<&str> =
                    v2.iter().filter_map(|(f, _)| f.split('.').next()).collect();
                enable_controllers(root, &dir, &needed);
            }
        }
        match self.version {
            Version::V1 => {
                for (ctrl, file, value) in v1 {
                    let Some(dir) = self.dir(ctrl) else {
                        return Err(Error::Unsupported {
                            feature: format!("cgroup controller {ctrl} (for {file})"),
                        });
                    };
                    if file.starts_with("memory.memsw") && !dir.join(&file).exists() {
                        continue; // no swap accounting: nothing to limit
                    }
                    write(&dir.join(&file), &value)?;
                }
                let dir = self.dir("devices").expect("checked above").to_path_buf();
                for (file, line) in crate::devices::v1_writes(&devices) {
                    write(&dir.join(file), &line)?;
                }
                Ok(None)
            }
            Version::V2 => {
                let dir = self.dirs[0].1.clone();
                for (file, value) in v2 {
                    write(&dir.join(&file), &value)?;
                }
                Ok(Some(crate::devices::program(&devices)))
            }
        }
    }

    /// Moves process `pid` into every directory.
    pub(crate) fn add(&self, pid: i32) -> Result<()> {
        for (_, dir) in &self.dirs {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// The pids in the cgroup.
    pub(crate) fn pids(&self) -> Vec<i32> {
        let Some((_, dir)) = self.dirs.first() else {
            return Vec::new();
        };
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Removes the directories this runtime made, waiting up to `patience` for exiting
    /// processes to leave them.
    pub(crate) fn remove(&self, patience: Duration) -> Result<()> {
        let deadline = Instant::now() + patience;
        for d in &self.created {
            loop {
                match std::fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => return Err(Error::io("removing cgroup", Some(d.clone()), e)),
                }
            }
        }
        Ok(())
    }

    /// Freezes (`true`) or thaws every process of the cgroup and waits until the kernel says
    /// it is done (v1 `freezer.state` reads `FROZEN`/`THAWED`; v2 `cgroup.events` has
    /// `frozen 1`/`frozen 0` after a write to `cgroup.freeze`), as runc's pause and resume.
    pub(crate) fn freeze(&self, frozen: bool) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        match self.version {
            Version::V1 => {
                let dir = self.dir("freezer").ok_or_else(|| Error::Unsupported {
                    feature: "cgroup controller freezer (for pause and resume): not mounted on \
                              this host"
                        .into(),
                })?;
                let file = dir.join("freezer.state");
                let want = if frozen { "FROZEN" } else { "THAWED" };
                loop {
                    // Written again each time: a process forking while it freezes can make
                    // the kernel go back to THAWED (runc retries too).
                    write(&file, want)?;
                    let now = std::fs::read_to_string(&file)
                        .map_err(|e| Error::io("reading cgroup file", Some(file.clone()), e))?;
                    if now.trim() == want {
                        return Ok(());
                    }
                    if Instant::now() >= deadline {
                        return Err(Error::io(
                            "waiting for the freezer",
                            Some(file),
                            std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                format!("still {} after 10 s", now.trim()),
                            ),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            Version::V2 => {
                let dir = &self.dirs[0].1;
                write(&dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
                let events = dir.join("cgroup.events");
                let want = u64::from(frozen);
                loop {
                    let text = std::fs::read_to_string(&events)
                        .map_err(|e| Error::io("reading cgroup file", Some(events.clone()), e))?;
                    if keyed(&text, "frozen") == Some(want) {
                        return Ok(());
                    }
                    if Instant::now() >= deadline {
                        return Err(Error::io(
                            "waiting for the freezer",
                            Some(events),
                            std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                "cgroup.events did not change within 10 s",
                            ),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }

    /// Whether the cgroup is frozen (v1 `freezer.state` `FROZEN`, v2 `cgroup.freeze` `1`).
    pub(crate) fn is_frozen(&self) -> bool {
        let (dir, file, want) = match self.version {
            Version::V1 => (self.dir("freezer"), "freezer.state", "FROZEN"),
            Version::V2 => (
                self.dirs.first().map(|d| d.1.as_path()),
                "cgroup.freeze",
                "1",
            ),
        };
        dir.and_then(|d| std::fs::read_to_string(d.join(file)).ok())
            .is_some_and(|s| s.trim() == want)
    }

    /// Writes the limits `res` sets (only those) into the existing cgroup, as `runc update`:
    /// every value is computed and every controller checked before anything is written.
    /// Device rules are not updated (runc's update has none either).
    pub(crate) fn update(&self, res: &LinuxResources) -> Result<()> {
        let mut res = res.clone();
        res.set_devices(None);
        let writes: Vec<(PathBuf, String)> = match self.version {
            Version::V1 => {
                let w = v1_writes(&res)?;
                if let Some((ctrl, file, _)) = w.iter().find(|(c, _, _)| self.dir(c).is_none()) {
                    return Err(Error::Unsupported {
                        feature: format!(
                            "cgroup controller {ctrl} (for {file}): not mounted on this host"
                        ),
                    });
                }
                w.into_iter()
                    .map(|(c, f, v)| (self.dir(c).expect("checked").join(f), v))
                    .collect()
            }
            Version::V2 => {
                let dir = &self.dirs[0].1;
                let w = v2_writes(&res)?;
                let needed: Vec<&str> = w.iter().filter_map(|(f, _)| f.split('.').next()).collect();
                if let Some(root) = self.root_v2() {
                    enable_controllers(&root, dir, &needed);
                }
                w.into_iter().map(|(f, v)| (dir.join(f), v)).collect()
            }
        };
        // The kernel checks each value against the others already set (v1: the memory limit
        // may not exceed memory+swap, v2 likewise for cpuset): a write refused now is tried
        // again once the rest is in, as runc does for the memory pair.
        let mut again = Vec::new();
        for (path, value) in &writes {
            if write(path, value).is_err() {
                again.push((path, value));
            }
        }
        for (path, value) in again {
            write(path, value)?;
        }
        Ok(())
    }

    /// The v2 root: the deepest ancestor of the cgroup directory holding
    /// `cgroup.controllers` with no parent that has one.
    fn root_v2(&self) -> Option<PathBuf> {
        let dir = &self.dirs.first()?.1;
        dir.ancestors()
            .filter(|a| a.join("cgroup.controllers").exists())
            .last()
            .map(Path::to_path_buf)
    }

    /// Starts watching for OOM events: v1 registers an eventfd for `memory.oom_control`
    /// through `cgroup.event_control` (the kernel signals it on every OOM in the cgroup); v2
    /// counts `oom` in `memory.events`, read on each [`OomWatch::poll`].
    pub(crate) fn watch_oom(&self) -> Result<OomWatch> {
        match self.version {
            Version::V1 => {
                let dir = self.dir("memory").ok_or_else(|| Error::Unsupported {
                    feature: "cgroup controller memory (for OOM events): not mounted on this host"
                        .into(),
                })?;
                let control = dir.join("memory.oom_control");
                let oom = std::fs::File::open(&control)
                    .map_err(|e| Error::io("opening cgroup file", Some(control.clone()), e))?;
                let efd = crate::sys::eventfd()
                    .map_err(|e| Error::sys("creating an eventfd", None, e))?;
                use std::os::fd::AsRawFd;
                write(
                    &dir.join("cgroup.event_control"),
                    &format!("{} {}", efd.as_raw_fd(), oom.as_raw_fd()),
                )?;
                Ok(OomWatch::V1 {
                    efd,
                    _oom: oom,
                    dir: dir.to_path_buf(),
                })
            }
            Version::V2 => {
                let events = self.dirs[0].1.join("memory.events");
                let seen = oom_count(&events);
                Ok(OomWatch::V2 { events, seen })
            }
        }
    }

    /// The counters that matter to a caller, read now.
    pub(crate) fn stats(&self) -> Stats {
        let read = |ctrl: &str, file: &str| {
            self.dir(ctrl)
                .and_then(|d| std::fs::read_to_string(d.join(file)).ok())
        };
        let num = |ctrl: &str, file: &str| read(ctrl, file).and_then(|s| s.trim().parse().ok());
        let key = |ctrl: &str, file: &str, key: &str| read(ctrl, file).and_then(|s| keyed(&s, key));
        match self.version {
            Version::V1 => Stats {
                memory_usage: num("memory", "memory.usage_in_bytes"),
                memory_max_usage: num("memory", "memory.max_usage_in_bytes"),
                memory_limit_hits: num("memory", "memory.failcnt"),
                oom_kills: key("memory", "memory.oom_control", "oom_kill"),
                cpu_usage_ns: num("cpuacct", "cpuacct.usage"),
                cpu_periods: key("cpu", "cpu.stat", "nr_periods"),
                cpu_throttled_periods: key("cpu", "cpu.stat", "nr_throttled"),
                cpu_throttled_ns: key("cpu", "cpu.stat", "throttled_time"),
                pids: num("pids", "pids.current"),
            },
            Version::V2 => Stats {
                memory_usage: num("", "memory.current"),
                memory_max_usage: num("", "memory.peak"),
                memory_limit_hits: key("", "memory.events", "max"),
                oom_kills: key("", "memory.events", "oom_kill"),
                cpu_usage_ns: key("", "cpu.stat", "usage_usec").map(|u| u * 1000),
                cpu_periods: key("", "cpu.stat", "nr_periods"),
                cpu_throttled_periods: key("", "cpu.stat", "nr_throttled"),
                cpu_throttled_ns: key("", "cpu.stat", "throttled_usec").map(|u| u * 1000),
                pids: num("", "pids.current"),
            },
        }
    }
}

fn oom_count(events: &Path) -> u64 {
    std::fs::read_to_string(events)
        .ok()
        .and_then(|t| keyed(&t, "oom"))
        .unwrap_or(0)
}

/// A watch on a cgroup's OOM events ([`Cgroup::watch_oom`]).
#[derive(Debug)]
pub(crate) enum OomWatch {
    /// The eventfd the kernel signals, and the `memory.oom_control` it is registered for
    /// (kept open for the registration's life).
    V1 {
        efd: std::os::fd::OwnedFd,
        _oom: std::fs::File,
        dir: PathBuf,
    },
    /// `memory.events` and the `oom` count already reported.
    V2 { events: PathBuf, seen: u64 },
}

impl OomWatch {
    /// Waits up to `timeout` for OOM events; returns how many happened, or `None` once the
    /// cgroup is gone.
    pub(crate) fn poll(&mut self, timeout: Duration) -> Option<u64> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        match self {
            OomWatch::V1 { efd, dir, .. } => {
                let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
                let mut fds = [PollFd::new(efd.as_fd(), PollFlags::POLLIN)];
                let ready = poll(
                    &mut fds,
                    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
                )
                .unwrap_or(0);
                if ready == 0 {
                    return dir.exists().then_some(0);
                }
                let mut b = [0u8; 8];
                if nix::unistd::read(&*efd, &mut b) != Ok(8) {
                    return None;
                }
                // The kernel also signals the eventfd when the cgroup is removed.
                if !dir.exists() {
                    return None;
                }
                Some(u64::from_ne_bytes(b))
            }
            OomWatch::V2 { events, seen } => {
                std::thread::sleep(timeout.min(Duration::from_millis(100)));
                if !events.exists() {
                    return None;
                }
                let now = oom_count(events);
                let new = now.saturating_sub(*seen);
                *seen = now;
                Some(new)
            }
        }
    }
}

/// A container's cgroup counters ([`Runtime::stats`](crate::Runtime::stats)); `None` where
/// the host does not provide one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Memory in use, bytes (v1 `memory.usage_in_bytes`, v2 `memory.current`).
    pub memory_usage: Option<u64>,
    /// The most memory ever in use, bytes (v1 `memory.max_usage_in_bytes`, v2 `memory.peak`).
    pub memory_max_usage: Option<u64>,
    /// How often the memory limit was hit (v1 `memory.failcnt`, v2 `max` in `memory.events`).
    pub memory_limit_hits: Option<u64>,
    /// Processes killed by the OOM killer (`oom_kill` in v1 `memory.oom_control`, v2
    /// `memory.events`).
    pub oom_kills: Option<u64>,
    /// CPU time used, nanoseconds (v1 `cpuacct.usage`, v2 `usage_usec` in `cpu.stat`).
    pub cpu_usage_ns: Option<u64>,
    /// Enforcement periods elapsed (`nr_periods` in `cpu.stat`).
    pub cpu_periods: Option<u64>,
    /// Periods in which the quota throttled the cgroup (`nr_throttled` in `cpu.stat`).
    pub cpu_throttled_periods: Option<u64>,
    /// Time spent throttled, nanoseconds.
    pub cpu_throttled_ns: Option<u64>,
    /// Processes in the cgroup (`pids.current`).
    pub pids: Option<u64>,
}

/// The value of `key` in a flat keyed file (`key value` lines).
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(|e| Error::io("writing cgroup file", Some(path.into()), e))
}

/// A new v1 cpuset cgroup has no cpus and no mems, and refuses tasks until it has them.
fn inherit_cpuset(dir: &Path) -> Result<()> {
    let parent = dir.parent().unwrap_or(dir);
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let own = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        if own.trim().is_empty() {
            let p = std::fs::read_to_string(parent.join(f))
                .map_err(|e| Error::io("reading cgroup file", Some(parent.join(f)), e))?;
            write(&dir.join(f), p.trim())?;
        }
    }
    Ok(())
}

/// Enables, where possible, the `needed` controllers in each ancestor of `dir` (v2 needs them
/// in `cgroup.subtree_control` for the files to exist). Best effort: a controller that
/// cannot be enabled shows up as a missing file when its limit is written.
fn enable_controllers(root: &Path, dir: &Path, needed: &[&str]) {
    let available = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    let mut d = root.to_path_buf();
    for c in dir.strip_prefix(root).unwrap_or(Path::new("")).components() {
        for ctrl in available.split_whitespace().filter(|c| needed.contains(c)) {
            let _ = std::fs::write(d.join("cgroup.subtree_control"), format!("+{ctrl}"));
        }
        d.push(c);
    }
}

/// Whether creating or writing a cgroup failed because this user may not (rootless): the
/// file system said permission denied, operation not permitted or read-only.
pub(crate) fn permission_denied(e: &Error) -> bool {
    match e {
        Error::Io { source, .. } => matches!(
            source.raw_os_error(),
            Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS)
        ),
        _ => false,
    }
}

/// When cgroups cannot be written (`why`): `Ok` if `linux.resources` asks for no limit
/// (device rules are not limits), else an [`Error::Rootless`] naming each limit and the
/// cgroup file it needs.
pub(crate) fn refuse_limits(linux: Option<&Linux>, why: &Error) -> Result<()> {
    let Some(res) = linux.and_then(|l| l.resources().as_ref()) else {
        return Ok(());
    };
    // The v1 file names say which limits there are, whatever the host's version.
    let mut v1 = res.clone();
    v1.set_unified(None);
    let mut asked: Vec<String> = v1_writes(&v1)?
        .into_iter()
        .map(|(_, file, value)| format!("{} ({file} = {value})", resource_field(&file)))
        .collect();
    if res.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        asked.push("linux.resources.unified".into());
    }
    asked.dedup();
    if asked.is_empty() {
        return Ok(());
    }
    // The error and its causes (the I/O error's own text is its source).
    let mut why_text = why.to_string();
    let mut cause = std::error::Error::source(why);
    while let Some(c) = cause {
        why_text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    Err(Error::Rootless {
        what: asked.join(", "),
        reason: format!(
            "the configuration asks for {} but this user cannot write cgroups ({why_text}); remove the limits (linux.resources) or run as a user who can",
            if asked.len() == 1 {
                "this limit"
            } else {
                "these limits"
            }
        ),
    })
}

/// The configuration field behind a v1 cgroup file, for messages.
fn resource_field(file: &str) -> &'static str {
    match file {
        "memory.limit_in_bytes" => "linux.resources.memory.limit",
        "memory.memsw.limit_in_bytes" => "linux.resources.memory.swap",
        "memory.soft_limit_in_bytes" => "linux.resources.memory.reservation",
        "memory.kmem.tcp.limit_in_bytes" => "linux.resources.memory.kernelTCP",
        "memory.swappiness" => "linux.resources.memory.swappiness",
        "memory.oom_control" => "linux.resources.memory.disableOOMKiller",
        "cpu.shares" => "linux.resources.cpu.shares",
        "cpu.cfs_period_us" => "linux.resources.cpu.period",
        "cpu.cfs_quota_us" => "linux.resources.cpu.quota",
        "cpu.cfs_burst_us" => "linux.resources.cpu.burst",
        "cpu.rt_period_us" => "linux.resources.cpu.realtimePeriod",
        "cpu.rt_runtime_us" => "linux.resources.cpu.realtimeRuntime",
        "cpu.idle" => "linux.resources.cpu.idle",
        "cpuset.cpus" => "linux.resources.cpu.cpus",
        "cpuset.mems" => "linux.resources.cpu.mems",
        "pids.max" => "linux.resources.pids.limit",
        "net_cls.classid" => "linux.resources.network.classID",
        "net_prio.ifpriomap" => "linux.resources.network.priorities",
        f if f.starts_with("hugetlb.") => "linux.resources.hugepageLimits",
        f if f.starts_with("blkio.") => "linux.resources.blockIO",
        _ => "linux.resources",
    }
}

fn limit(v: i64) -> String {
    if v < 0 { "-1".into() } else { v.to_string() }
}

/// What to write for `res` on a v1 host: `(controller, file, value)` in order. Device rules
/// are written apart ([`crate::devices::v1_writes`]).
pub(crate) fn v1_writes(res: &LinuxResources) -> Result<Vec<(&'static str, String, String)>> {
    let mut w: Vec<(&'static str, String, String)> = Vec::new();
    let mut put = |c: &'static str, f: &str, v: String| w.push((c, f.to_string(), v));
    if let Some(m) = res.memory() {
        if let Some(l) = m.limit() {
            put("memory", "memory.limit_in_bytes", limit(l));
        }
        if let Some(s) = m.swap() {
            put("memory", "memory.memsw.limit_in_bytes", limit(s));
        }
        if let Some(r) = m.reservation() {
            put("memory", "memory.soft_limit_in_bytes", limit(r));
        }
        if let Some(k) = m.kernel_tcp() {
            put("memory", "memory.kmem.tcp.limit_in_bytes", limit(k));
        }
        if let Some(s) = m.swappiness() {
            if s > 100 {
                return Err(Error::config(
                    "linux.resources.memory.swappiness",
                    "must be at most 100",
                ));
            }
            put("memory", "memory.swappiness", s.to_string());
        }
        if m.disable_oom_killer() == Some(true) {
            put("memory", "memory.oom_control", "1".into());
        }
    }
    if let Some(c) = res.cpu() {
        if let Some(s) = c.shares() {
            put("cpu", "cpu.shares", s.to_string());
        }
        if let Some(p) = c.period() {
            put("cpu", "cpu.cfs_period_us", p.to_string());
        }
        if let Some(q) = c.quota() {
            put("cpu", "cpu.cfs_quota_us", limit(q));
        }
        if let Some(b) = c.burst() {
            put("cpu", "cpu.cfs_burst_us", b.to_string());
        }
        if let Some(p) = c.realtime_period() {
            put("cpu", "cpu.rt_period_us", p.to_string());
        }
        if let Some(r) = c.realtime_runtime() {
            put("cpu", "cpu.rt_runtime_us", r.to_string());
        }
        if let Some(i) = c.idle() {
            put("cpu", "cpu.idle", i.to_string());
        }
        if let Some(s) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            put("cpuset", "cpuset.cpus", s.into());
        }
        if let Some(s) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            put("cpuset", "cpuset.mems", s.into());
        }
    }
    if let Some(p) = res.pids() {
        let v = if p.limit() > 0 {
            p.limit().to_string()
        } else {
            "max".into()
        };
        put("pids", "pids.max", v);
    }
    if let Some(b) = res.block_io() {
        if let Some(v) = b.weight() {
            put("blkio", "blkio.weight", v.to_string());
        }
        if let Some(v) = b.leaf_weight() {
            put("blkio", "blkio.leaf_weight", v.to_string());
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(v) = d.weight() {
                put(
                    "blkio",
                    "blkio.weight_device",
                    format!("{}:{} {v}", d.major(), d.minor()),
                );
            }
            if let Some(v) = d.leaf_weight() {
                put(
                    "blkio",
                    "blkio.leaf_weight_device",
                    format!("{}:{} {v}", d.major(), d.minor()),
                );
            }
        }
        for (list, file) in [
            (
                b.throttle_read_bps_device(),
                "blkio.throttle.read_bps_device",
            ),
            (
                b.throttle_write_bps_device(),
                "blkio.throttle.write_bps_device",
            ),
            (
                b.throttle_read_iops_device(),
                "blkio.throttle.read_iops_device",
            ),
            (
                b.throttle_write_iops_device(),
                "blkio.throttle.write_iops_device",
            ),
        ] {
            for d in list.iter().flatten() {
                put(
                    "blkio",
                    file,
                    format!("{}:{} {}", d.major(), d.minor(), d.rate()),
                );
            }
        }
    }
    for h in res.hugepage_limits().iter().flatten() {
        put(
            "hugetlb",
            &format!("hugetlb.{}.limit_in_bytes", h.page_size()),
            limit(h.limit()),
        );
    }
    if let Some(n) = res.network() {
        // As runc's fs driver: the class id in net_cls, one "<interface> <priority>" line
        // per interface in net_prio. A host without the controller makes it an error that
        // names it, as for every other controller (hugetlb...): never a silent no-op.
        if let Some(id) = n.class_id() {
            put("net_cls", "net_cls.classid", id.to_string());
        }
        for p in n.priorities().iter().flatten() {
            put(
                "net_prio",
                "net_prio.ifpriomap",
                format!("{} {}", p.name(), p.priority()),
            );
        }
    }
    if res.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(Error::config(
            "linux.resources.unified",
            "needs a cgroup v2 (unified) host",
        ));
    }
    Ok(w)
}

/// What to write for `res` on a v2 host: `(file, value)` in order, with runc's conversions
/// of v1 values (shares to weight, blkio weight to io weight, swap to `memory.swap.max`).
/// Device rules are not files on v2: [`Cgroup::create`] attaches an eBPF program instead.
pub(crate) fn v2_writes(res: &LinuxResources) -> Result<Vec<(String, String)>> {
    let mut w: Vec<(String, String)> = Vec::new();
    let mut put = |f: &str, v: String| w.push((f.to_string(), v));
    let max = |v: i64| {
        if v < 0 {
            "max".to_string()
        } else {
            v.to_string()
        }
    };
    if let Some(m) = res.memory() {
        if let Some(l) = m.limit() {
            put("memory.max", max(l));
        }
        if let Some(s) = m.swap() {
            // The spec's swap is memory + swap; v2 limits swap alone.
            let v = match (s, m.limit()) {
                (s, _) if s < 0 => "max".to_string(),
                (s, Some(l)) if l >= 0 => {
                    if s < l {
                        return Err(Error::config(
                            "linux.resources.memory.swap",
                            "is below the memory limit",
                        ));
                    }
                    (s - l).to_string()
                }
                (s, _) => s.to_string(),
            };
            put("memory.swap.max", v);
        }
        if let Some(r) = m.reservation() {
            put("memory.low", max(r));
        }
        if m.disable_oom_killer() == Some(true) {
            return Err(Error::Unsupported {
                feature: "linux.resources.memory.disableOOMKiller on cgroup v2".into(),
            });
        }
    }
    if let Some(c) = res.cpu() {
        if let Some(s) = c.shares() {
            let weight = if s == 0 {
                100
            } else {
                1 + (s.clamp(2, 262_144) - 2) * 9999 / 262_142
            };
            put("cpu.weight", weight.to_string());
        }
        if c.quota().is_some() || c.period().is_some() {
            let quota = c.quota().filter(|q| *q > 0);
            let q = quota.map(|q| q.to_string()).unwrap_or("max".into());
            put("cpu.max", format!("{q} {}", c.period().unwrap_or(100_000)));
        }
        if let Some(b) = c.burst() {
            put("cpu.max.burst", b.to_string());
        }
        if let Some(i) = c.idle() {
            put("cpu.idle", i.to_string());
        }
        if let Some(s) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            put("cpuset.cpus", s.into());
        }
        if let Some(s) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            put("cpuset.mems", s.into());
        }
    }
    if let Some(p) = res.pids() {
        put(
            "pids.max",
            if p.limit() > 0 {
                p.limit().to_string()
            } else {
                "max".into()
            },
        );
    }
    if let Some(b) = res.block_io() {
        let io_weight = |v: u16| 1 + (u64::from(v.clamp(10, 1000)) - 10) * 9999 / 990;
        if let Some(v) = b.weight() {
            put("io.weight", io_weight(v).to_string());
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(v) = d.weight() {
                put(
                    "io.weight",
                    format!("{}:{} {}", d.major(), d.minor(), io_weight(v)),
                );
            }
        }
        for (list, key) in [
            (b.throttle_read_bps_device(), "rbps"),
            (b.throttle_write_bps_device(), "wbps"),
            (b.throttle_read_iops_device(), "riops"),
            (b.throttle_write_iops_device(), "wiops"),
        ] {
            for d in list.iter().flatten() {
                put(
                    "io.max",
                    format!("{}:{} {key}={}", d.major(), d.minor(), d.rate()),
                );
            }
        }
    }
    for h in res.hugepage_limits().iter().flatten() {
        put(&format!("hugetlb.{}.max", h.page_size()), max(h.limit()));
    }
    if let Some(n) = res.network()
        && (n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()))
    {
        // cgroup v2 has no net_cls or net_prio controller.
        return Err(Error::Unsupported {
            feature: "cgroup controller net_cls/net_prio (for linux.resources.network) on a \
                      cgroup v2 host"
                .into(),
        });
    }
    let mut unified: Vec<_> = res.unified().iter().flatten().collect();
    unified.sort();
    for (k, v) in unified {
        if k.contains('/') || k.starts_with('.') {
            return Err(Error::config(
                format!("linux.resources.unified.{k}"),
                "is not a cgroup file name",
            ));
        }
        put(k, v.clone());
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn res(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    fn seed() -> LinuxResources {
        res(json!({
            "memory": {"limit": 536870912, "reservation": 268435456, "swap": 1073741824},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
            "pids": {"limit": 64},
            "blockIO": {"weight": 500,
                        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "devices": [{"allow": false, "access": "rwm"},
                        {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rw"}]
        }))
    }

    #[test]
    fn limits_are_named_when_cgroups_cannot_be_written() {
        let denied = Error::io(
            "creating cgroup",
            Some("/sys/fs/cgroup/memory/x".into()),
            std::io::Error::from_raw_os_error(libc::EACCES),
        );
        assert!(permission_denied(&denied));
        assert!(!permission_denied(&Error::config("f", "r")));
        let linux = |r: serde_json::Value| -> Linux {
            serde_json::from_value(json!({"resources": r})).unwrap()
        };
        // Device rules alone are no limit: skipping the cgroup is fine.
        let devices = linux(json!({"devices": [{"allow": false, "access": "rwm"}]}));
        refuse_limits(Some(&devices), &denied).unwrap();
        refuse_limits(None, &denied).unwrap();
        let limited = linux(json!({"memory": {"limit": 67108864}, "pids": {"limit": 9}}));
        let e = refuse_limits(Some(&limited), &denied)
            .unwrap_err()
            .to_string();
        for want in [
            "linux.resources.memory.limit (memory.limit_in_bytes = 67108864)",
            "linux.resources.pids.limit (pids.max = 9)",
            "cannot write cgroups",
            "Permission denied",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn v1_values() {
        let w = v1_writes(&seed()).unwrap();
        let get = |f: &str| {
            w.iter()
                .filter(|(_, file, _)| file == f)
                .map(|(_, _, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("memory.limit_in_bytes"), ["536870912"]);
        assert_eq!(get("memory.memsw.limit_in_bytes"), ["1073741824"]);
        assert_eq!(get("memory.soft_limit_in_bytes"), ["268435456"]);
        assert_eq!(get("cpu.shares"), ["1024"]);
        assert_eq!(get("cpu.cfs_quota_us"), ["50000"]);
        assert_eq!(get("cpuset.cpus"), ["0"]);
        assert_eq!(get("pids.max"), ["64"]);
        assert_eq!(get("blkio.weight"), ["500"]);
        assert_eq!(get("blkio.throttle.read_bps_device"), ["8:0 1048576"]);
        assert_eq!(get("hugetlb.2MB.limit_in_bytes"), ["4194304"]);
        assert!(w.iter().all(|(c, _, _)| *c != "devices"), "written apart");
        // The period goes before the quota: a quota may need the new period.
        let pos = |f: &str| w.iter().position(|(_, file, _)| file == f).unwrap();
        assert!(pos("cpu.cfs_period_us") < pos("cpu.cfs_quota_us"));
        let unified = res(json!({"unified": {"memory.high": "1000"}}));
        assert!(v1_writes(&unified).is_err());
    }

    #[test]
    fn v2_values() {
        let mut r = seed();
        r.set_devices(None);
        r.set_unified(Some(
            [("memory.high".to_string(), "400000000".to_string())].into(),
        ));
        let w = v2_writes(&r).unwrap();
        let get = |f: &str| {
            w.iter()
                .filter(|(file, _)| file == f)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("memory.max"), ["536870912"]);
        assert_eq!(get("memory.swap.max"), ["536870912"]);
        assert_eq!(get("memory.low"), ["268435456"]);
        assert_eq!(get("cpu.weight"), ["39"]);
        assert_eq!(get("cpu.max"), ["50000 100000"]);
        assert_eq!(get("pids.max"), ["64"]);
        assert_eq!(get("io.weight"), ["4950"]);
        assert_eq!(get("io.max"), ["8:0 rbps=1048576"]);
        assert_eq!(get("hugetlb.2MB.max"), ["4194304"]);
        assert_eq!(get("memory.high"), ["400000000"]);
        let bad = res(json!({"unified": {"../x": "1"}}));
        assert!(v2_writes(&bad).is_err());
    }

    /// A v2 root as a plain directory tree: the kernel's files are pre-created.
    #[test]
    fn v2_on_a_fixture_tree() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        std::fs::write(root.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        std::fs::write(root.join("cgroup.subtree_control"), "").unwrap();
        let own = "0::/user.slice/me\n";
        let mut cg = Cgroup::plan(root, Path::new("pod/box"), own);
        assert_eq!(cg.version, Version::V2);
        assert_eq!(
            cg.dirs,
            [(String::new(), root.join("user.slice/me/pod/box"))]
        );
        // Absolute paths start at the root.
        let abs = Cgroup::plan(root, Path::new("/a/b"), own);
        assert_eq!(abs.dirs[0].1, root.join("a/b"));
        let mut linux = Linux::default();
        linux.set_resources(Some(seed_v2()));
        let program = cg.write_files(root, Some(&linux)).unwrap();
        assert!(
            program.is_some_and(|p| p.len() > 20),
            "the device policy, always"
        );
        let read = |f: &str| std::fs::read_to_string(root.join("user.slice/me/pod/box").join(f));
        assert_eq!(read("memory.max").unwrap(), "536870912");
        assert_eq!(read("cpu.max").unwrap(), "50000 100000");
        assert_eq!(read("pids.max").unwrap(), "64");
        assert_eq!(
            std::fs::read_to_string(root.join("cgroup.subtree_control")).unwrap(),
            "+pids",
            "the last controller enabled at the root (a plain file keeps the last write)"
        );
        assert_eq!(cg.created.len(), 4, "{:?}", cg.created);
        assert_eq!(cg.created[0], root.join("user.slice/me/pod/box"));
        cg.add(42).unwrap();
        assert_eq!(read("cgroup.procs").unwrap(), "42");
        assert_eq!(cg.pids(), [42]);
        std::fs::write(
            root.join("user.slice/me/pod/box/cpu.stat"),
            "usage_usec 1500\nnr_periods 10\nnr_throttled 4\nthrottled_usec 300\n",
        )
        .unwrap();
        std::fs::write(
            root.join("user.slice/me/pod/box/memory.events"),
            "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n",
        )
        .unwrap();
        let s = cg.stats();
        assert_eq!(s.cpu_usage_ns, Some(1_500_000));
        assert_eq!(s.cpu_throttled_periods, Some(4));
        assert_eq!(s.oom_kills, Some(1));
        assert_eq!(s.memory_limit_hits, Some(7));
        // A fixture's directories hold files, so rmdir fails: the kernel's would be empty.
        for d in &cg.created {
            for f in std::fs::read_dir(d).unwrap() {
                let f = f.unwrap().path();
                if f.is_file() {
                    std::fs::remove_file(f).unwrap();
                }
            }
        }
        cg.remove(Duration::ZERO).unwrap();
        assert!(!root.join("user.slice").exists());
    }

    fn seed_v2() -> LinuxResources {
        let mut r = seed();
        r.set_devices(None);
        r.set_block_io(None);
        r.set_hugepage_limits(None);
        r.set_memory(Some(
            serde_json::from_value(json!({"limit": 536870912})).unwrap(),
        ));
        r.set_cpu(Some(
            serde_json::from_value(json!({"quota": 50000, "period": 100000})).unwrap(),
        ));
        r
    }

    /// With no `linux.resources` at all, a v1 cgroup still gets the default device policy;
    /// without a devices hierarchy, nothing is made.
    #[test]
    fn v1_default_device_policy_on_a_fixture_tree() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        for c in ["memory", "pids", "systemd"] {
            std::fs::create_dir(root.join(c)).unwrap();
            std::fs::write(root.join(c).join("cgroup.procs"), "").unwrap();
        }
        let own = "3:memory:/m\n2:pids:/\n1:name=systemd:/user/1\n0::/\n";
        let mut cg = Cgroup::plan(root, Path::new("box"), own);
        let e = cg.create(root, None).unwrap_err().to_string();
        assert!(e.contains("devices hierarchy"), "{e}");
        assert!(cg.created.is_empty() && !root.join("memory/m").exists());
        std::fs::create_dir(root.join("devices")).unwrap();
        std::fs::write(root.join("devices/cgroup.procs"), "").unwrap();
        let mut cg = Cgroup::plan(root, Path::new("box"), own);
        assert!(
            cg.dirs
                .contains(&("name=systemd".into(), root.join("systemd/user/1/box")))
        );
        assert_eq!(cg.write_files(root, None).unwrap(), None);
        // A plain file keeps the last write: the reset, and the last exception.
        let read = |f: &str| std::fs::read_to_string(root.join("devices/box").join(f)).unwrap();
        assert_eq!(read("devices.deny"), "a");
        assert_eq!(read("devices.allow"), "c 136:* rwm");
        // memory/m, memory/m/box, pids/box, devices/box and the three of systemd/user/1/box.
        assert_eq!(cg.created.len(), 7, "{:?}", cg.created);
    }

    #[test]
    fn v1_plan_follows_own_cgroups() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        for c in ["memory", "cpu", "pids"] {
            std::fs::create_dir(root.join(c)).unwrap();
            std::fs::write(root.join(c).join("cgroup.procs"), "").unwrap();
        }
        let own = "4:memory:/outer\n3:cpu:/\n2:pids:/p\n0::/\n";
        let cg = Cgroup::plan(root, Path::new("box"), own);
        assert_eq!(cg.version, Version::V1);
        assert_eq!(
            cg.dirs,
            [
                ("memory".to_string(), root.join("memory/outer/box")),
                ("cpu".to_string(), root.join("cpu/box")),
                ("pids".to_string(), root.join("pids/p/box")),
            ]
        );
    }

    /// v2 pause/resume, update and OOM events on a fixture tree (this host has no v2
    /// controllers to do it for real): the files the kernel would read are written, and
    /// the kernel's answers (`cgroup.events`, `memory.events`) are played by the test.
    #[test]
    fn v2_freeze_update_and_oom_on_a_fixture_tree() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        std::fs::write(root.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        std::fs::write(root.join("cgroup.subtree_control"), "").unwrap();
        let mut cg = Cgroup::plan(root, Path::new("/box"), "0::/\n");
        cg.write_files(root, None).unwrap();
        let dir = root.join("box");
        // The kernel says frozen once cgroup.freeze is 1.
        std::fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        assert!(!cg.is_frozen());
        cg.freeze(true).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("cgroup.freeze")).unwrap(),
            "1"
        );
        assert!(cg.is_frozen());
        std::fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        cg.freeze(false).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("cgroup.freeze")).unwrap(),
            "0"
        );
        assert!(!cg.is_frozen());

        let mut r = LinuxResources::default();
        r.set_memory(Some(
            serde_json::from_value(json!({"limit": 67108864})).unwrap(),
        ));
        r.set_pids(Some(serde_json::from_value(json!({"limit": 42})).unwrap()));
        cg.update(&r).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.max")).unwrap(),
            "67108864"
        );
        assert_eq!(std::fs::read_to_string(dir.join("pids.max")).unwrap(), "42");
        assert!(!dir.join("cpu.max").exists(), "only what was asked for");
        let mut net = LinuxResources::default();
        net.set_network(Some(serde_json::from_value(json!({"classID": 1})).unwrap()));
        let e = cg.update(&net).unwrap_err().to_string();
        assert!(e.contains("net_cls"), "{e}");

        std::fs::write(dir.join("memory.events"), "low 0\noom 0\noom_kill 0\n").unwrap();
        let mut w = cg.watch_oom().unwrap();
        assert_eq!(w.poll(Duration::from_millis(1)), Some(0));
        std::fs::write(dir.join("memory.events"), "low 0\noom 2\noom_kill 1\n").unwrap();
        assert_eq!(w.poll(Duration::from_millis(1)), Some(2));
        assert_eq!(w.poll(Duration::from_millis(1)), Some(0));
        std::fs::remove_file(dir.join("memory.events")).unwrap();
        assert_eq!(w.poll(Duration::from_millis(1)), None, "the cgroup is gone");
    }
}
