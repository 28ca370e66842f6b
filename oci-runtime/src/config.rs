//! Loading a bundle and checking its `config.json` against the runtime-spec's Linux MUSTs.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};

use crate::error::{Error, Result};

/// A loaded and validated bundle: its directory, its configuration and its absolute rootfs.
#[derive(Debug, Clone)]
pub struct Bundle {
    dir: PathBuf,
    spec: Spec,
    rootfs: PathBuf,
}

impl Bundle {
    /// Reads `<dir>/config.json`, validates it with [`validate`] and resolves the rootfs
    /// relative to the bundle. The bundle directory and rootfs must exist.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let dir = std::fs::canonicalize(dir)
            .map_err(|e| Error::io("opening bundle", Some(dir.to_path_buf()), e))?;
        let path = dir.join("config.json");
        // Read at most one byte over what the channel to the init carries: a larger file (or
        // one that never ends, such as a link to /dev/zero) is refused without filling memory.
        let limit = crate::init::MAX_MESSAGE as u64;
        let mut bytes = Vec::new();
        let file =
            std::fs::File::open(&path).map_err(|e| Error::io("reading", Some(path.clone()), e))?;
        // The size a regular file has, for the message; what was read otherwise.
        let on_disk = file
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len());
        std::io::Read::read_to_end(&mut std::io::Read::take(file, limit + 1), &mut bytes)
            .map_err(|e| Error::io("reading", Some(path.clone()), e))?;
        if bytes.len() as u64 > limit {
            return Err(Error::TooLarge {
                what: "the container configuration (config.json)".into(),
                size: on_disk.unwrap_or(bytes.len() as u64),
                limit,
                limit_of: "the runtime's channel to the container init (ocikit_runtime::MAX_MESSAGE)",
            });
        }
        let raw: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::config("config.json", e.to_string()))?;
        crate::security::check_capability_names(&raw)?;
        let spec: Spec =
            serde_json::from_value(raw).map_err(|e| Error::config("config.json", e.to_string()))?;
        Self::from_spec(dir, spec)
    }

    /// Validates an in-memory configuration for the bundle directory `dir`, and resolves its
    /// relative paths (the rootfs, bind-mount sources) in `dir`, never in the caller's
    /// working directory.
    pub fn from_spec(dir: impl Into<PathBuf>, mut spec: Spec) -> Result<Self> {
        let dir = dir.into();
        let dir = std::path::absolute(&dir)
            .map_err(|e| Error::io("opening bundle", Some(dir.clone()), e))?;
        validate(&spec)?;
        // runtime-spec (config.md, Mounts): "Path values for bind mounts are either absolute
        // or relative to the bundle. A mount is a bind mount if it has either `bind` or
        // `rbind` in the options." This runtime also binds a mount of type "bind".
        if let Some(mut mounts) = spec.mounts().clone() {
            for m in mounts.iter_mut().filter(|m| is_bind(m)) {
                if let Some(source) = m.source().as_ref().filter(|s| s.is_relative()) {
                    m.set_source(Some(dir.join(source)));
                }
            }
            spec.set_mounts(Some(mounts));
        }
        let root = spec
            .root()
            .as_ref()
            .map(|r| r.path().clone())
            .unwrap_or_default();
        let rootfs = if root.is_absolute() {
            root
        } else {
            dir.join(root)
        };
        let meta = std::fs::metadata(&rootfs)
            .map_err(|e| Error::config("root.path", format!("{}: {e}", rootfs.display())))?;
        if !meta.is_dir() {
            return Err(Error::config(
                "root.path",
                format!("{} is not a directory", rootfs.display()),
            ));
        }
        for (i, ns) in spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(p) = ns.path()
                && !p.exists()
            {
                return Err(Error::config(
                    format!("linux.namespaces[{i}].path"),
                    format!("{} does not exist", p.display()),
                ));
            }
        }
        Ok(Bundle { dir, spec, rootfs })
    }

    /// The bundle directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The validated configuration.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The absolute path of the root filesystem.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }
}

/// The mount propagation values accepted for `linux.rootfsPropagation`.
const PROPAGATIONS: &[&str] = &[
    "shared",
    "slave",
    "private",
    "unbindable",
    "rshared",
    "rslave",
    "rprivate",
    "runbindable",
];

fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

/// A bind mount: `bind` or `rbind` among the options, or the type `bind`.
fn is_bind(m: &Mount) -> bool {
    m.options()
        .iter()
        .flatten()
        .any(|o| o == "bind" || o == "rbind")
        || m.typ().as_deref() == Some("bind")
}

/// Checks a configuration against the runtime-spec's requirements for Linux, without touching
/// the file system. Every violation is an [`Error::InvalidConfig`] naming the field.
pub fn validate(spec: &Spec) -> Result<()> {
    let v = spec.version();
    if v.is_empty() || !v.starts_with("1.") {
        return Err(Error::config(
            "ociVersion",
            format!("{v:?} is not a 1.x SemVer version"),
        ));
    }
    match spec.root() {
        None => return Err(Error::config("root", "is required on Linux")),
        Some(r) if r.path().as_os_str().is_empty() => {
            return Err(Error::config("root.path", "must not be empty"));
        }
        Some(_) => {}
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::config("process", "is required to create a container"))?;
    match process.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => return Err(Error::config("process.args", "must name a program")),
    }
    if !process.cwd().is_absolute() {
        return Err(Error::config("process.cwd", "must be an absolute path"));
    }
    for (i, e) in process.env().iter().flatten().enumerate() {
        if !e.contains('=') || e.starts_with('=') {
            return Err(Error::config(
                format!("process.env[{i}]"),
                format!("{e:?} is not VARIABLE=VALUE"),
            ));
        }
    }
    crate::security::rlimits(process.rlimits().as_deref().unwrap_or(&[]))?;
    if let Some(p) = process.io_priority() {
        crate::security::io_priority(p)?;
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(Error::config(
                format!("mounts[{i}].destination"),
                format!("{} is not absolute", m.destination().display()),
            ));
        }
        let bind = is_bind(m);
        if !bind && m.typ().as_deref().is_none_or(str::is_empty) {
            return Err(Error::config(
                format!("mounts[{i}].type"),
                "a mount that is not a bind mount needs a type",
            ));
        }
        if bind && m.source().is_none() {
            return Err(Error::config(
                format!("mounts[{i}].source"),
                "a bind mount needs a source",
            ));
        }
    }

    if let Some(h) = spec.hooks() {
        // runtime-spec (config.md, POSIX-platform Hooks): "path (string, REQUIRED) with
        // similar semantics to IEEE Std 1003.1-2008 execv's path. This specification extends
        // the IEEE standard in that path MUST be absolute." A relative one would run whatever
        // the caller's working directory holds.
        for (point, hooks) in [
            ("prestart", h.prestart()),
            ("createRuntime", h.create_runtime()),
            ("createContainer", h.create_container()),
            ("startContainer", h.start_container()),
            ("poststart", h.poststart()),
            ("poststop", h.poststop()),
        ] {
            for (i, hook) in hooks.iter().flatten().enumerate() {
                if !hook.path().is_absolute() {
                    return Err(Error::config(
                        format!("hooks.{point}[{i}].path"),
                        format!("{} is not an absolute path", hook.path().display()),
                    ));
                }
            }
        }
    }

    let linux = spec.linux().as_ref();
    let namespaces: Vec<_> = linux
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let mut seen = HashSet::new();
    for (i, ns) in namespaces.iter().enumerate() {
        if !seen.insert(ns.typ() as u32) {
            return Err(Error::config(
                format!("linux.namespaces[{i}].type"),
                format!("namespace {} listed twice", ns_name(ns.typ())),
            ));
        }
        if let Some(p) = ns.path()
            && !p.is_absolute()
        {
            return Err(Error::config(
                format!("linux.namespaces[{i}].path"),
                "must be an absolute path",
            ));
        }
    }
    let has = |t: LinuxNamespaceType| namespaces.iter().any(|n| n.typ() == t);
    let new = |t: LinuxNamespaceType| {
        namespaces
            .iter()
            .any(|n| n.typ() == t && n.path().is_none())
    };
    if !has(LinuxNamespaceType::Mount) {
        // Like runc, a container may share the runtime's mount namespace: its mounts are then
        // made inside the rootfs in that namespace (and undone by delete), and it changes root
        // with chroot. What would change the mount the rootfs lives on is refused instead.
        if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
            return Err(Error::config(
                "root.readonly",
                "needs a mount namespace of the container's own (it would make the host's \
                 mount holding the rootfs read-only)",
            ));
        }
        if linux.is_some_and(|l| l.rootfs_propagation().is_some()) {
            return Err(Error::config(
                "linux.rootfsPropagation",
                "needs a mount namespace of the container's own",
            ));
        }
    }
    if let Some(l) = linux {
        let uids = l.uid_mappings().as_ref().is_some_and(|m| !m.is_empty());
        let gids = l.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
        if new(LinuxNamespaceType::User) {
            if !uids {
                return Err(Error::config(
                    "linux.uidMappings",
                    "a new user namespace needs uid mappings",
                ));
            }
            if !gids {
                return Err(Error::config(
                    "linux.gidMappings",
                    "a new user namespace needs gid mappings",
                ));
            }
        } else if uids || gids {
            let field = if uids {
                "linux.uidMappings"
            } else {
                "linux.gidMappings"
            };
            return Err(Error::config(
                field,
                "mappings are only allowed with a new user namespace",
            ));
        }
        if let Some(p) = l.rootfs_propagation()
            && !PROPAGATIONS.contains(&p.as_str())
        {
            return Err(Error::config(
                "linux.rootfsPropagation",
                format!("{p:?} is not one of {PROPAGATIONS:?}"),
            ));
        }
        for (field, paths) in [
            ("linux.maskedPaths", l.masked_paths()),
            ("linux.readonlyPaths", l.readonly_paths()),
        ] {
            for (i, p) in paths.iter().flatten().enumerate() {
                if !p.starts_with('/') {
                    return Err(Error::config(
                        format!("{field}[{i}]"),
                        format!("{p:?} is not absolute"),
                    ));
                }
            }
        }
        for (i, d) in l.devices().iter().flatten().enumerate() {
            if !d.path().is_absolute() {
                return Err(Error::config(
                    format!("linux.devices[{i}].path"),
                    "must be an absolute path",
                ));
            }
            if matches!(d.typ(), oci_spec::runtime::LinuxDeviceType::A) {
                return Err(Error::config(
                    format!("linux.devices[{i}].type"),
                    "must be one of c, b, u, p",
                ));
            }
        }
        for key in l.sysctl().iter().flat_map(|s| s.keys()) {
            let needs = sysctl_namespace(key).ok_or_else(|| {
                Error::config(format!("linux.sysctl.{key}"), "is not a namespaced sysctl")
            })?;
            if !new(needs) && !has(needs) {
                return Err(Error::config(
                    format!("linux.sysctl.{key}"),
                    format!("needs a {} namespace", ns_name(needs)),
                ));
            }
        }
        if l.time_offsets().as_ref().is_some_and(|t| !t.is_empty())
            && !new(LinuxNamespaceType::Time)
        {
            return Err(Error::config(
                "linux.timeOffsets",
                "needs a new time namespace",
            ));
        }
    } else if has(LinuxNamespaceType::User) && new(LinuxNamespaceType::User) {
        return Err(Error::config(
            "linux.uidMappings",
            "a new user namespace needs uid mappings",
        ));
    }
    // runtime-spec (config.md, Hostname): "On Linux, for example, this will change the
    // hostname in the container UTS namespace. Depending on your namespace configuration,
    // the container UTS namespace may be the runtime UTS namespace." Setting it there would
    // rename the host, so that is refused; a UTS namespace joined by path is the container's
    // own and accepted, as runc's validator does ("unable to set hostname without a private
    // UTS namespace" only when no uts entry exists).
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        return Err(Error::config(
            "hostname",
            "setting a hostname needs a uts namespace (new or joined by path)",
        ));
    }
    if spec.domainname().as_ref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        return Err(Error::config(
            "domainname",
            "setting a domainname needs a uts namespace (new or joined by path)",
        ));
    }
    Ok(())
}

/// The namespace a sysctl belongs to, as runc decides it; `None` for host-wide ones.
fn sysctl_namespace(key: &str) -> Option<LinuxNamespaceType> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    }
}

/// Checks a container id the way runc does: `[A-Za-z0-9_+.-]+`, not `.` or `..`.
pub fn validate_id(id: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidId {
            id: id.to_string(),
            reason: reason.to_string(),
        })
    };
    if id.is_empty() {
        return bad("must not be empty");
    }
    if id == "." || id == ".." {
        return bad("must not be . or ..");
    }
    if id.len() > 1024 {
        return bad("is too long");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b))
    {
        return bad("may only contain letters, digits, _, +, - and .");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"args": ["/bin/sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]}
        })
    }

    fn check(v: serde_json::Value) -> Result<()> {
        let spec: Spec = serde_json::from_value(v).expect("parses");
        validate(&spec)
    }

    fn field_of(r: Result<()>) -> String {
        match r {
            Err(Error::InvalidConfig { field, .. }) => field,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn accepts_a_minimal_config() {
        check(base()).unwrap();
    }

    /// Relative bind-mount sources and rootfs are the bundle's, whatever the working
    /// directory; other sources (device names) stay as they are.
    #[test]
    fn relative_paths_resolve_in_the_bundle() {
        let bundle = tempfile::tempdir().unwrap();
        std::fs::create_dir(bundle.path().join("rootfs")).unwrap();
        let mut v = base();
        v["mounts"] = serde_json::json!([
            {"destination": "/a", "source": "rel-src", "options": ["rbind"]},
            {"destination": "/b", "type": "bind", "source": "../up"},
            {"destination": "/c", "source": "/abs", "options": ["bind"]},
            {"destination": "/proc", "type": "proc", "source": "proc"}
        ]);
        let b = Bundle::from_spec(bundle.path(), serde_json::from_value(v).unwrap()).unwrap();
        let sources: Vec<PathBuf> = b
            .spec()
            .mounts()
            .iter()
            .flatten()
            .map(|m| m.source().clone().unwrap())
            .collect();
        assert_eq!(
            sources,
            [
                bundle.path().join("rel-src"),
                bundle.path().join("../up"),
                PathBuf::from("/abs"),
                PathBuf::from("proc"),
            ]
        );
        assert_eq!(b.rootfs(), bundle.path().join("rootfs"));
    }

    #[test]
    fn names_each_violation() {
        let mut v = base();
        v["root"]["path"] = "".into();
        assert_eq!(field_of(check(v)), "root.path");

        let mut v = base();
        v["hooks"] = serde_json::json!({"poststart": [{"path": "/bin/true"}, {"path": "bin/x"}]});
        assert_eq!(field_of(check(v)), "hooks.poststart[1].path");

        let mut v = base();
        v.as_object_mut().unwrap().remove("root");
        assert_eq!(field_of(check(v)), "root");

        let mut v = base();
        v["process"]["args"] = serde_json::json!([]);
        assert_eq!(field_of(check(v)), "process.args");

        let mut v = base();
        v["process"]["cwd"] = "tmp".into();
        assert_eq!(field_of(check(v)), "process.cwd");

        let mut v = base();
        v["process"]["env"] = serde_json::json!(["PATH=/bin", "junk"]);
        assert_eq!(field_of(check(v)), "process.env[1]");

        let mut v = base();
        v["linux"]["namespaces"] =
            serde_json::json!([{"type": "mount"}, {"type": "pid"}, {"type": "pid"}]);
        assert_eq!(field_of(check(v)), "linux.namespaces[2].type");

        let mut v = base();
        v["mounts"] =
            serde_json::json!([{"destination": "proc", "type": "proc", "source": "proc"}]);
        assert_eq!(field_of(check(v)), "mounts[0].destination");

        let mut v = base();
        v["linux"]["namespaces"] = serde_json::json!([{"type": "mount"}, {"type": "user"}]);
        assert_eq!(field_of(check(v)), "linux.uidMappings");

        let mut v = base();
        v["linux"]["uidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        assert_eq!(field_of(check(v)), "linux.uidMappings");

        let mut v = base();
        v["mounts"] = serde_json::json!([{"destination": "/x", "source": "tmpfs"}]);
        assert_eq!(field_of(check(v)), "mounts[0].type");

        let mut v = base();
        v["mounts"] = serde_json::json!([{"destination": "/x", "options": ["rbind"]}]);
        assert_eq!(field_of(check(v)), "mounts[0].source");

        let mut v = base();
        v["hostname"] = "box".into();
        assert_eq!(field_of(check(v)), "hostname");

        let mut v = base();
        v["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_forward": "1"});
        assert_eq!(field_of(check(v)), "linux.sysctl.net.ipv4.ip_forward");

        let mut v = base();
        v["linux"]["sysctl"] = serde_json::json!({"vm.swappiness": "1"});
        assert_eq!(field_of(check(v)), "linux.sysctl.vm.swappiness");

        let mut v = base();
        v["linux"]["rootfsPropagation"] = "sideways".into();
        assert_eq!(field_of(check(v)), "linux.rootfsPropagation");

        let mut v = base();
        v["linux"]["maskedPaths"] = serde_json::json!(["proc/kcore"]);
        assert_eq!(field_of(check(v)), "linux.maskedPaths[0]");

        let mut v = base();
        v["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}]);
        v["root"]["readonly"] = true.into();
        assert_eq!(field_of(check(v)), "root.readonly");

        let mut v = base();
        v["ociVersion"] = "".into();
        assert_eq!(field_of(check(v)), "ociVersion");
    }

    #[test]
    fn user_namespace_with_mappings_is_fine() {
        let mut v = base();
        v["linux"]["namespaces"] = serde_json::json!([{"type": "mount"}, {"type": "user"}]);
        v["linux"]["uidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        v["linux"]["gidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        check(v).unwrap();
    }

    #[test]
    fn ids() {
        validate_id("abc-1.2_x+y").unwrap();
        for bad in ["", ".", "..", "a/b", "a b", "ä"] {
            assert!(
                matches!(validate_id(bad), Err(Error::InvalidId { .. })),
                "{bad}"
            );
        }
    }
}
