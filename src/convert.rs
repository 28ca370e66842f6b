//! Image configuration to runtime configuration, as image-spec `conversion.md` says.
//!
//! [`runtime_config`] starts from defaults equal in effect to `runc spec` (namespaces, mounts,
//! masked and read-only paths, default capabilities: [`ocikit_runtime::default_spec`]), then
//! applies the image: `Entrypoint` + `Cmd` as the arguments, `Env`, `WorkingDir`, `User`
//! resolved against the rootfs' `/etc/passwd` and `/etc/group`, and the annotations the
//! document lists (`os`, `architecture`, ..., `Labels`, `StopSignal`, `ExposedPorts`).
//! [`ConvertOptions`] carries the caller's overrides: arguments, environment, terminal,
//! rootless, volumes and resource limits.

use std::collections::HashMap;
use std::path::Path;

use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxPids, Mount, Spec};
use ocikit_image::oci_spec::image::ImageConfiguration;
use ocikit_image::read_in_root;

/// Why a configuration could not be converted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// `Config.User` names a user or group the rootfs does not have ("If `Config.User` does
    /// not correspond to a user in the container's context, the converter MUST return an
    /// error", conversion.md).
    #[error("user {user:?}: {reason}")]
    User {
        /// `Config.User` as the image gives it.
        user: String,
        /// What could not be resolved.
        reason: String,
    },
    /// A capability name that Linux does not have (`CAP_CHOWN`, `chown` and `CHOWN` are the
    /// accepted forms).
    #[error("capability {name:?}: no such capability")]
    Capability {
        /// The name as given.
        name: String,
    },
    /// Neither the image nor the caller gives a program to run.
    #[error("the image has no Entrypoint or Cmd and no command was given")]
    NoCommand,
    /// Reading the rootfs failed.
    #[error(transparent)]
    Image(#[from] ocikit_image::Error),
}

/// Ways the image's volumes become mounts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Volumes {
    /// Not mounted: writes go to the rootfs (as `umoci unpack` does). The default.
    #[default]
    Ignore,
    /// An empty tmpfs at each volume path, so application data stays out of the rootfs
    /// (conversion.md: "Implementations SHOULD provide mounts for these locations").
    Tmpfs,
}

/// The caller's inputs to [`runtime_config`], set with chained setters on
/// [`ConvertOptions::new`].
#[derive(Clone, Debug, Default)]
pub struct ConvertOptions {
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    default_args: Option<Vec<String>>,
    env: Vec<String>,
    terminal: bool,
    read_only: bool,
    rootless: bool,
    volumes: Volumes,
    memory: Option<i64>,
    cpu: Option<(i64, u64)>,
    pids: Option<i64>,
    hostname: Option<String>,
    user: Option<String>,
    podman_groups: bool,
    podman_passwd: bool,
    capabilities: Option<Vec<String>>,
    non_root_capabilities: Vec<String>,
    mounts: Vec<Mount>,
    workdir: Option<String>,
}

impl ConvertOptions {
    /// No overrides: see each setter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the image's `Entrypoint`, and drops its `Cmd` (as `docker run --entrypoint`
    /// does) unless [`cmd`](Self::cmd) is given too.
    pub fn entrypoint(mut self, args: Vec<String>) -> Self {
        self.entrypoint = Some(args);
        self
    }

    /// Replaces the image's `Cmd` (the arguments after the entrypoint).
    pub fn cmd(mut self, args: Vec<String>) -> Self {
        self.cmd = Some(args);
        self
    }

    /// Sets `KEY=VALUE` in the environment, over the image's value of `KEY`.
    pub fn env(mut self, key_value: impl Into<String>) -> Self {
        self.env.push(key_value.into());
        self
    }

    /// The arguments to run when neither the image (`Entrypoint`, `Cmd`) nor the caller gives
    /// any (default none: such an image is [`ConvertError::NoCommand`]). `umoci unpack` and
    /// `runc spec` use `["sh"]`.
    pub fn default_args(mut self, args: Vec<String>) -> Self {
        self.default_args = Some(args);
        self
    }

    /// Gives the process a terminal (default false).
    pub fn terminal(mut self, terminal: bool) -> Self {
        self.terminal = terminal;
        self
    }

    /// Mounts the root filesystem read-only (default false: writable, as `umoci unpack` and
    /// `podman run` make it; `runc spec` makes it read-only).
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Makes the configuration runnable without root, like `runc spec --rootless`: a user
    /// namespace, no network namespace, `/sys` bound read-only, no `uid=`/`gid=` mount
    /// options, no limits but those set here (which a runtime that cannot write cgroups
    /// refuses, naming them, rather than ignoring them); its mappings give the caller's own ids to root and its
    /// subordinate ranges (`/etc/subuid`, `/etc/subgid`) to ids 1 and up, as an unpack in
    /// [`ocikit_runtime::enter_user_namespace`] wrote the owners (default false).
    pub fn rootless(mut self, rootless: bool) -> Self {
        self.rootless = rootless;
        self
    }

    /// What to do with the image's volumes (default [`Volumes::Ignore`]).
    pub fn volumes(mut self, volumes: Volumes) -> Self {
        self.volumes = volumes;
        self
    }

    /// A memory limit in bytes (default none).
    pub fn memory_limit(mut self, bytes: i64) -> Self {
        self.memory = Some(bytes);
        self
    }

    /// A CPU limit: `quota` microseconds of CPU time per `period` (default none;
    /// 50000 / 100000 is half a CPU).
    pub fn cpu_quota(mut self, quota: i64, period: u64) -> Self {
        self.cpu = Some((quota, period));
        self
    }

    /// The most processes the container may have (default none).
    pub fn pids_limit(mut self, pids: i64) -> Self {
        self.pids = Some(pids);
        self
    }

    /// The container's hostname (default: the runtime's default).
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = Some(hostname.into());
        self
    }

    /// Runs the process as `user` instead of the image's `Config.User`, in the same forms
    /// (`name`, `uid`, `name:group`, `uid:gid`), resolved against the rootfs the same way
    /// (default: the image's).
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Gives the process the additional groups `podman run` gives it instead of those
    /// conversion.md describes (default false: conversion.md's).
    ///
    /// conversion.md: "The converter SHOULD NOT modify `process.user.additionalGids` if the
    /// value of user in `Config.User` is numeric or if `Config.User` specifies a group", and
    /// otherwise adds the groups of `/etc/group` that list the user as a member.
    ///
    /// podman (libpod's `generateSpec` over runc's `user.GetExecUser`) instead: a user given
    /// at all (`-u` or `Config.User`) has its primary group among its additional groups;
    /// unless a group is given (`user:group`), the groups of `/etc/group` that list, as a
    /// member, the name of the `/etc/passwd` entry the user matched (by name, or by uid
    /// when numeric: `1000` gets the groups of the entry with uid 1000) are added too; with
    /// no user at all, those of the entry with uid 0, without its primary group. `id` in a
    /// podman container then prints `groups=1000(app),2000(extra)` for `-u app` where
    /// conversion.md gives `groups=2000(extra)`.
    pub fn podman_groups(mut self, podman: bool) -> Self {
        self.podman_groups = podman;
        self
    }

    /// Gives a user the image lacks an `/etc/passwd` entry, and a group it lacks an
    /// `/etc/group` entry, as `podman run --passwd` (podman's default) does, so that `id`
    /// and `$HOME` name them (default false). Done by
    /// [`Store::create_bundle`](crate::store::Store::create_bundle) in the container's own
    /// root filesystem (never the image's) after the conversion, which resolves the user as
    /// before. podman 4.3's entries, for `-u 4242` and `-u 4242:77`:
    /// `4242:*:4242:0:container user:/:/bin/sh` with `4242:x:4242:4242`, and
    /// `4242:*:4242:77:container user:/:/bin/sh` with `77:x:77:4242`.
    pub fn podman_passwd(mut self, podman: bool) -> Self {
        self.podman_passwd = podman;
        self
    }

    /// The capabilities the process may hold, as podman and buildah give them (default:
    /// `runc spec`'s three, `CAP_AUDIT_WRITE`, `CAP_KILL` and `CAP_NET_BIND_SERVICE`, as
    /// `umoci unpack` writes them; [`DEFAULT_CAPABILITIES`] is podman's set). They form the
    /// bounding set; a process running as uid 0 also has them effective and permitted, and
    /// one of another uid has none of them but those of
    /// [`non_root_capabilities`](Self::non_root_capabilities) (what `podman run` writes:
    /// `-u 1000` shows `CapEff: 0` and `CapBnd` the whole set). Names as `CAP_CHOWN`, `chown`
    /// or `CHOWN`; an unknown one is [`ConvertError::Capability`].
    pub fn capabilities<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.capabilities = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Capabilities a process that does not run as uid 0 keeps in every set, ambient and
    /// inheritable included, and which join the bounding set (default none): what podman
    /// gives such a process for each `--cap-add` (`-u 1000 --cap-add NET_ADMIN` shows
    /// `CapEff`, `CapPrm`, `CapInh` and `CapAmb` of `CAP_NET_ADMIN` alone). A process of
    /// uid 0 ignores them (give them to [`capabilities`](Self::capabilities) too, as
    /// `--cap-add` does). Only with [`capabilities`](Self::capabilities).
    pub fn non_root_capabilities<S: Into<String>>(
        mut self,
        names: impl IntoIterator<Item = S>,
    ) -> Self {
        self.non_root_capabilities = names.into_iter().map(Into::into).collect();
        self
    }

    /// Adds a mount after the default ones and the volumes (none by default), e.g. a bind
    /// mount of a host directory.
    pub fn mount(mut self, mount: Mount) -> Self {
        self.mounts.push(mount);
        self
    }

    /// The process's working directory instead of the image's `WorkingDir` (`podman run
    /// -w`; a relative one is taken from `/`; default: the image's).
    pub fn workdir(mut self, dir: impl Into<String>) -> Self {
        self.workdir = Some(dir.into());
        self
    }
}

/// The capabilities `podman run` and `buildah run` give a container's process by default
/// (containers.conf's `default_capabilities` as Debian's podman 4.3 and buildah 1.28 apply
/// them: `CapBnd: 00000000a80425fb` inside), for [`ConvertOptions::capabilities`].
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SYS_CHROOT",
    "CAP_MKNOD",
    "CAP_AUDIT_WRITE",
    "CAP_SETFCAP",
];

/// Appends to `rootfs`'s `/etc/passwd` and `/etc/group` the entries
/// [`ConvertOptions::podman_passwd`] describes, when it is set. Files are found inside the
/// root only (a link in the image never leads out), and are only appended to; a root
/// without them is left alone.
pub(crate) fn add_podman_entries(
    image: &ImageConfiguration,
    rootfs: &Path,
    options: &ConvertOptions,
) -> Result<(), ConvertError> {
    if !options.podman_passwd {
        return Ok(());
    }
    let empty = ocikit_image::oci_spec::image::Config::default();
    let config = image.config().as_ref().unwrap_or(&empty);
    let spec = options
        .user
        .as_deref()
        .or(config.user().as_deref())
        .unwrap_or("");
    if spec.is_empty() {
        return Ok(());
    }
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let read = |path: &str| -> Result<Option<String>, ConvertError> {
        Ok(read_in_root(rootfs, path, 1 << 20)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
    };
    // The third field of each entry (the uid in passwd, the gid in group).
    let has_id = |text: &str, id: u32| {
        text.lines()
            .any(|l| l.split(':').nth(2).and_then(|f| f.parse().ok()) == Some(id))
    };
    let (Some(passwd), Some(groups)) = (read("/etc/passwd")?, read("/etc/group")?) else {
        return Ok(());
    };
    let gid: Option<u32> = group.and_then(|g| g.parse().ok());
    if let Ok(uid) = user.parse::<u32>()
        && !has_id(&passwd, uid)
    {
        // A named group resolves as the conversion resolved it; podman's entry names the
        // gid the process runs with.
        let primary = match group {
            None => 0,
            Some(g) => match gid {
                Some(gid) => gid,
                None => groups
                    .lines()
                    .find(|l| l.split(':').next() == Some(g))
                    .and_then(|l| l.split(':').nth(2)?.parse().ok())
                    .unwrap_or(0),
            },
        };
        append_in_root(
            rootfs,
            "/etc/passwd",
            &passwd,
            &format!("{uid}:*:{uid}:{primary}:container user:/:/bin/sh\n"),
        )?;
        if group.is_none() && !has_id(&groups, uid) {
            append_in_root(
                rootfs,
                "/etc/group",
                &groups,
                &format!("{uid}:x:{uid}:{uid}\n"),
            )?;
            return Ok(());
        }
    }
    if let Some(gid) = gid
        && !has_id(&groups, gid)
    {
        append_in_root(
            rootfs,
            "/etc/group",
            &groups,
            &format!("{gid}:x:{gid}:{user}\n"),
        )?;
    }
    Ok(())
}

/// Appends `line` to the file at `path` inside `root` whose text is `text` (a newline first
/// when it lacks one). The file is opened inside the root (as [`read_in_root`] resolves it:
/// a regular file, every link followed inside the root), then reopened for appending
/// through that descriptor, so the write lands in that same file.
fn append_in_root(root: &Path, path: &str, text: &str, line: &str) -> Result<(), ConvertError> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let failed = |e: std::io::Error| {
        ConvertError::Image(ocikit_image::Error::Apply {
            path: path.to_owned(),
            op: "append",
            source: e,
        })
    };
    let file = ocikit_image::open_in_root(root, path)?;
    let mut out = std::fs::OpenOptions::new()
        .append(true)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(failed)?;
    let sep = if text.is_empty() || text.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    out.write_all(format!("{sep}{line}").as_bytes())
        .map_err(failed)
}

/// `names` as the runtime spec's capabilities.
fn capability_set(names: &[String]) -> Result<oci_spec::runtime::Capabilities, ConvertError> {
    names
        .iter()
        .map(|name| {
            // oci-spec reads `CAP_X`, `X` and lower case alike.
            serde_json::from_value(serde_json::Value::String(name.clone()))
                .map_err(|_| ConvertError::Capability { name: name.clone() })
        })
        .collect()
}

/// The `PATH` added when the image sets none (the value `runc spec` and Docker use).
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Makes the runtime configuration of an image: `config` is the image's configuration and
/// `rootfs` its unpacked root filesystem (read for `/etc/passwd` and `/etc/group`, inside the
/// root only). The result's `root.path` is `rootfs`, relative to the bundle.
///
/// ```
/// use ocikit::convert::{ConvertOptions, runtime_config};
/// let rootfs = tempfile::tempdir()?;
/// let config = serde_json::from_str(r#"{"architecture":"amd64","os":"linux",
///   "config":{"Entrypoint":["/bin/sh","-c"],"Cmd":["echo hi"],"WorkingDir":"/srv",
///             "Labels":{"org.opencontainers.image.os":"custom"}},
///   "rootfs":{"type":"layers","diff_ids":[]}}"#)?;
/// let spec = runtime_config(&config, rootfs.path(), &ConvertOptions::new().memory_limit(1 << 29))?;
/// let process = spec.process().as_ref().unwrap();
/// assert_eq!(process.args().as_deref(), Some(&["/bin/sh".to_owned(), "-c".into(), "echo hi".into()][..]));
/// assert_eq!(process.cwd().to_str(), Some("/srv"));
/// // Labels win over the implicit annotations.
/// assert_eq!(spec.annotations().as_ref().unwrap()["org.opencontainers.image.os"], "custom");
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
pub fn runtime_config(
    image: &ImageConfiguration,
    rootfs: &Path,
    options: &ConvertOptions,
) -> Result<Spec, ConvertError> {
    let empty = ocikit_image::oci_spec::image::Config::default();
    let config = image.config().as_ref().unwrap_or(&empty);
    let mut spec = ocikit_runtime::default_spec();
    let mut process = spec.process().clone().unwrap_or_default();

    // "If both Config.Entrypoint and Config.Cmd are specified, the converter MUST append the
    // value of Config.Cmd to the value of Config.Entrypoint" (conversion.md).
    let entrypoint = options
        .entrypoint
        .clone()
        .or_else(|| config.entrypoint().clone())
        .unwrap_or_default();
    let cmd = match (&options.cmd, &options.entrypoint) {
        (Some(cmd), _) => cmd.clone(),
        (None, Some(_)) => Vec::new(),
        (None, None) => config.cmd().clone().unwrap_or_default(),
    };
    let mut args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        args = options.default_args.clone().unwrap_or_default();
    }
    if args.is_empty() {
        return Err(ConvertError::NoCommand);
    }
    process.set_args(Some(args));

    // Config.Env verbatim; a PATH only when the image has none ("SHOULD NOT add entries that
    // have variable names present in Config.Env"); then the caller's.
    let mut env = config.env().clone().unwrap_or_default();
    let has = |env: &[String], key: &str| env.iter().any(|e| env_key(e) == key);
    if !has(&env, "PATH") {
        env.push(DEFAULT_PATH.to_owned());
    }
    if options.terminal && !has(&env, "TERM") {
        env.push("TERM=xterm".to_owned());
    }
    for kv in &options.env {
        env.retain(|e| env_key(e) != env_key(kv));
        env.push(kv.clone());
    }
    process.set_env(Some(env));

    let cwd = options
        .workdir
        .clone()
        .or_else(|| config.working_dir().clone())
        .unwrap_or_default();
    let cwd = if cwd.is_empty() {
        "/".to_owned()
    } else if cwd.starts_with('/') {
        cwd
    } else {
        format!("/{cwd}")
    };
    process.set_cwd(cwd.into());
    process.set_terminal(Some(options.terminal));
    process.set_user(resolve_user(
        options
            .user
            .as_deref()
            .or(config.user().as_deref())
            .unwrap_or(""),
        rootfs,
        options.podman_groups,
    )?);
    if let Some(names) = &options.capabilities {
        let set = capability_set(names)?;
        let kept = capability_set(&options.non_root_capabilities)?;
        let mut caps = oci_spec::runtime::LinuxCapabilities::default();
        caps.set_bounding(Some(set.union(&kept).cloned().collect()));
        let (held, extra) = if process.user().uid() == 0 {
            (set, Default::default())
        } else {
            (kept.clone(), kept)
        };
        caps.set_effective(Some(held.clone()));
        caps.set_permitted(Some(held));
        caps.set_inheritable(Some(extra.clone()));
        caps.set_ambient(Some(extra));
        process.set_capabilities(Some(caps));
    }
    spec.set_process(Some(process));

    spec.set_annotations(Some(annotations(image)));
    if let Some(h) = &options.hostname {
        spec.set_hostname(Some(h.clone()));
    }
    let mut root = spec.root().clone().unwrap_or_default();
    root.set_path("rootfs".into());
    root.set_readonly(Some(options.read_only));
    spec.set_root(Some(root));

    if options.volumes == Volumes::Tmpfs {
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        for v in config.volumes().iter().flatten() {
            let mut m = Mount::default();
            m.set_destination(v.into());
            m.set_typ(Some("tmpfs".into()));
            m.set_source(Some("tmpfs".into()));
            m.set_options(Some(vec![
                "nosuid".into(),
                "nodev".into(),
                "mode=755".into(),
            ]));
            mounts.push(m);
        }
        spec.set_mounts(Some(mounts));
    }
    if !options.mounts.is_empty() {
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        mounts.extend(options.mounts.iter().cloned());
        spec.set_mounts(Some(mounts));
    }
    if options.rootless {
        make_rootless(&mut spec);
    }
    // After: a rootless configuration drops the default resources (runc's device rules),
    // never the limits asked for here, which a runtime that cannot apply them refuses.
    apply_resources(&mut spec, options);
    Ok(spec)
}

fn env_key(kv: &str) -> &str {
    kv.split_once('=').map_or(kv, |(k, _)| k)
}

/// The annotations conversion.md lists, `Config.Labels` winning any conflict.
fn annotations(image: &ImageConfiguration) -> HashMap<String, String> {
    let mut a = HashMap::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            a.insert(format!("org.opencontainers.image.{k}"), v);
        }
    };
    put("os", Some(image.os().to_string()));
    put("architecture", Some(image.architecture().to_string()));
    put("variant", image.variant().clone());
    put("os.version", image.os_version().clone());
    put(
        "os.features",
        image.os_features().as_ref().map(|f| f.join(",")),
    );
    put("author", image.author().clone());
    put("created", image.created().clone());
    if let Some(c) = image.config() {
        put("stopSignal", c.stop_signal().clone());
        // "the list of values that correspond to the keys defined for Config.ExposedPorts
        // (string, comma-separated values)".
        put(
            "exposedPorts",
            c.exposed_ports().as_ref().map(|p| p.join(",")),
        );
        for (k, v) in c.labels().iter().flatten() {
            a.insert(k.clone(), v.clone());
        }
    }
    a
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

/// Lines of a colon-separated file (`/etc/passwd`, `/etc/group`) as fields; comments and
/// malformed lines are skipped.
fn records(data: &[u8]) -> impl Iterator<Item = Vec<&str>> {
    std::str::from_utf8(data)
        .unwrap_or("")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 3)
}

fn read_etc(rootfs: &Path, file: &str) -> Result<Vec<u8>, ConvertError> {
    // 4 MiB is far beyond any real passwd or group file.
    Ok(read_in_root(rootfs, file, 4 << 20)?.unwrap_or_default())
}

/// `Config.User` (`user`, `uid`, `user:group`, `uid:gid`, `user:gid`, `uid:group`, or empty)
/// to a runtime user, as conversion.md says, or with podman's additional groups
/// ([`ConvertOptions::podman_groups`]).
fn resolve_user(
    user: &str,
    rootfs: &Path,
    podman_groups: bool,
) -> Result<oci_spec::runtime::User, ConvertError> {
    let err = |reason: String| ConvertError::User {
        user: user.to_owned(),
        reason,
    };
    let (name, group) = match user.split_once(':') {
        Some((n, g)) => (n, Some(g)),
        None => (user, None),
    };
    let passwd_data = read_etc(rootfs, "/etc/passwd")?;
    let passwd: Vec<PasswdEntry> = records(&passwd_data)
        .filter(|f| f.len() >= 4)
        .filter_map(|f| {
            Some(PasswdEntry {
                name: f[0].to_owned(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
            })
        })
        .collect();
    let group_data = read_etc(rootfs, "/etc/group")?;
    let groups: Vec<(String, u32, Vec<String>)> = records(&group_data)
        .filter_map(|f| {
            let members = f
                .get(3)
                .map(|m| {
                    m.split(',')
                        .filter(|m| !m.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            Some((f[0].to_owned(), f[2].parse().ok()?, members))
        })
        .collect();

    let numeric_user = name.is_empty() || name.parse::<u32>().is_ok();
    let entry = if name.is_empty() {
        passwd.iter().find(|p| p.uid == 0)
    } else if let Ok(uid) = name.parse::<u32>() {
        passwd.iter().find(|p| p.uid == uid)
    } else {
        Some(
            passwd
                .iter()
                .find(|p| p.name == name)
                .ok_or_else(|| err(format!("no user {name:?} in the image's /etc/passwd")))?,
        )
    };
    let uid = match name.parse::<u32>() {
        Ok(uid) => uid,
        Err(_) => entry.map_or(0, |e| e.uid),
    };
    let gid = match group {
        Some(g) if g.parse::<u32>().is_ok() => g.parse().expect("checked"),
        Some(g) => groups
            .iter()
            .find(|(n, _, _)| n == g)
            .map(|(_, gid, _)| *gid)
            .ok_or_else(|| err(format!("no group {g:?} in the image's /etc/group")))?,
        None => entry.map_or(0, |e| e.gid),
    };
    let mut u = oci_spec::runtime::User::default();
    u.set_uid(uid);
    u.set_gid(gid);
    let member_of = |member: &str| -> Vec<u32> {
        groups
            .iter()
            .filter(|(_, _, members)| members.iter().any(|m| m == member))
            .map(|(_, g, _)| *g)
            .collect()
    };
    if podman_groups {
        // podman: the primary group when a user is given, then (no group given) the
        // memberships of the passwd entry matched, by name or uid (uid 0 for no user).
        let mut extra: Vec<u32> = Vec::new();
        if !user.is_empty() {
            extra.push(gid);
        }
        if let (None, Some(entry)) = (group, entry) {
            extra.extend(member_of(&entry.name));
        }
        extra.sort_unstable();
        extra.dedup();
        if !extra.is_empty() {
            u.set_additional_gids(Some(extra));
        }
        return Ok(u);
    }
    // "The converter SHOULD NOT modify process.user.additionalGids if the value of user in
    // Config.User is numeric or if Config.User specifies a group."
    if !numeric_user && group.is_none() {
        let mut extra = member_of(name);
        extra.retain(|g| *g != gid);
        extra.sort_unstable();
        extra.dedup();
        u.set_additional_gids(Some(extra));
    }
    Ok(u)
}

fn apply_resources(spec: &mut Spec, options: &ConvertOptions) {
    if options.memory.is_none() && options.cpu.is_none() && options.pids.is_none() {
        return;
    }
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut r = linux.resources().clone().unwrap_or_default();
    if let Some(bytes) = options.memory {
        let mut m = LinuxMemory::default();
        m.set_limit(Some(bytes));
        r.set_memory(Some(m));
    }
    if let Some((quota, period)) = options.cpu {
        let mut c = LinuxCpu::default();
        c.set_quota(Some(quota));
        c.set_period(Some(period));
        r.set_cpu(Some(c));
    }
    if let Some(pids) = options.pids {
        let mut p = LinuxPids::default();
        p.set_limit(pids);
        r.set_pids(Some(p));
    }
    linux.set_resources(Some(r));
    spec.set_linux(Some(linux));
}

/// What `runc spec --rootless` changes ([`ocikit_runtime::make_rootless`]), with the
/// mappings of every id this user may use ([`ocikit_runtime::rootless_mappings`]: itself
/// as root, then its `/etc/subuid` and `/etc/subgid` ranges), the ones a rootfs unpacked in
/// [`ocikit_runtime::enter_user_namespace`] was written with: the container then sees the
/// image's owners.
fn make_rootless(spec: &mut Spec) {
    ocikit_runtime::make_rootless(spec);
    let (uids, gids) = ocikit_runtime::rootless_mappings();
    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_uid_mappings(Some(uids));
    linux.set_gid_mappings(Some(gids));
    spec.set_linux(Some(linux));
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxNamespaceType;

    fn rootfs(passwd: &str, group: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(d.path().join("etc/passwd"), passwd).unwrap();
        std::fs::write(d.path().join("etc/group"), group).unwrap();
        d
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # comment\n\
        daemon:x:1:1::/:/bin/false\n\
        app:x:1000:1000:App:/home/app:/bin/sh\n";
    const GROUP: &str =
        "root:x:0:\nwheel:x:10:app,root\napp:x:1000:\nvideo:x:44:app\nstaff:x:50:\n";

    fn user(u: &str) -> Result<(u32, u32, Option<Vec<u32>>), ConvertError> {
        let r = rootfs(PASSWD, GROUP);
        resolve_user(u, r.path(), false).map(|u| (u.uid(), u.gid(), u.additional_gids().clone()))
    }

    fn podman_user(u: &str) -> Result<(u32, u32, Option<Vec<u32>>), ConvertError> {
        let r = rootfs(PASSWD, GROUP);
        resolve_user(u, r.path(), true).map(|u| (u.uid(), u.gid(), u.additional_gids().clone()))
    }

    /// The groups `podman run -u U IMAGE id` printed (podman 4.3.1 with runc) for each form of
    /// U, on an image with users and groups of the same shapes as these (a member of other
    /// groups, one of none, root a member of one, no /etc/passwd at all); ocikit-cli's run
    /// test compares `ocikit run -u` with podman itself.
    #[test]
    fn users_resolve_like_podman_with_podman_groups() {
        assert_eq!(podman_user("").unwrap(), (0, 0, Some(vec![10])));
        assert_eq!(podman_user("root").unwrap(), (0, 0, Some(vec![0, 10])));
        assert_eq!(
            podman_user("app").unwrap(),
            (1000, 1000, Some(vec![10, 44, 1000]))
        );
        assert_eq!(
            podman_user("1000").unwrap(),
            (1000, 1000, Some(vec![10, 44, 1000]))
        );
        assert_eq!(podman_user("daemon").unwrap(), (1, 1, Some(vec![1])));
        assert_eq!(podman_user("4242").unwrap(), (4242, 0, Some(vec![0])));
        assert_eq!(
            podman_user("app:staff").unwrap(),
            (1000, 50, Some(vec![50]))
        );
        assert_eq!(podman_user("5:6").unwrap(), (5, 6, Some(vec![6])));
        assert!(matches!(
            podman_user("nobody"),
            Err(ConvertError::User { .. })
        ));
        let bare = tempfile::tempdir().unwrap();
        let none = |u: &str| {
            resolve_user(u, bare.path(), true)
                .map(|u| (u.uid(), u.gid(), u.additional_gids().clone()))
                .unwrap()
        };
        // No /etc/passwd: podman printed `uid=0 gid=0`, `uid=1000 gid=0 groups=0`.
        assert_eq!(none(""), (0, 0, None));
        assert_eq!(none("1000"), (1000, 0, Some(vec![0])));
    }

    #[test]
    fn podman_entries_are_appended_inside_the_root_only() {
        let image: ImageConfiguration = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","config":{"User":"4242:77"},
                "rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        let options = ConvertOptions::new().podman_passwd(true);
        let r = rootfs(PASSWD, GROUP);
        add_podman_entries(&image, r.path(), &options).unwrap();
        let passwd = std::fs::read_to_string(r.path().join("etc/passwd")).unwrap();
        let group = std::fs::read_to_string(r.path().join("etc/group")).unwrap();
        assert_eq!(
            passwd,
            format!("{PASSWD}4242:*:4242:77:container user:/:/bin/sh\n")
        );
        assert_eq!(group, format!("{GROUP}77:x:77:4242\n"));
        // Off by default; a user the image has gets nothing.
        let r = rootfs(PASSWD, GROUP);
        add_podman_entries(&image, r.path(), &ConvertOptions::new()).unwrap();
        let app = ConvertOptions::new().podman_passwd(true).user("app");
        add_podman_entries(&image, r.path(), &app).unwrap();
        assert_eq!(
            std::fs::read_to_string(r.path().join("etc/passwd")).unwrap(),
            PASSWD
        );
        assert_eq!(
            std::fs::read_to_string(r.path().join("etc/group")).unwrap(),
            GROUP
        );
        // A hostile image whose /etc/passwd links out of the root: the host's file is never
        // touched; the link resolves inside the root, where there is no such file.
        let outside = tempfile::tempdir().unwrap();
        let host = outside.path().join("passwd");
        std::fs::write(&host, "host:x:0:0::/:/bin/sh\n").unwrap();
        let r = rootfs(PASSWD, GROUP);
        std::fs::remove_file(r.path().join("etc/passwd")).unwrap();
        let up = "../".repeat(r.path().components().count());
        std::os::unix::fs::symlink(
            format!("{up}{}", host.display()),
            r.path().join("etc/passwd"),
        )
        .unwrap();
        add_podman_entries(&image, r.path(), &options).unwrap();
        assert_eq!(
            std::fs::read_to_string(&host).unwrap(),
            "host:x:0:0::/:/bin/sh\n"
        );
    }

    #[test]
    fn capabilities_as_podman_gives_them() {
        let r = rootfs(PASSWD, GROUP);
        let image: ImageConfiguration = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"]},
                "rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        let caps = |options: ConvertOptions| {
            let spec = runtime_config(&image, r.path(), &options)?;
            let c = spec
                .process()
                .clone()
                .unwrap()
                .capabilities()
                .clone()
                .unwrap();
            let names = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut v: Vec<String> = set.iter().flatten().map(|c| format!("CAP_{c}")).collect();
                v.sort();
                v
            };
            Ok::<_, ConvertError>([
                names(c.bounding()),
                names(c.effective()),
                names(c.permitted()),
                names(c.inheritable()),
                names(c.ambient()),
            ])
        };
        let set = ConvertOptions::new()
            .capabilities(["CAP_CHOWN", "kill"])
            .non_root_capabilities(["NET_ADMIN"]);
        let both = vec!["CAP_CHOWN".to_owned(), "CAP_KILL".into()];
        let all = vec![
            "CAP_CHOWN".to_owned(),
            "CAP_KILL".into(),
            "CAP_NET_ADMIN".into(),
        ];
        let admin = vec!["CAP_NET_ADMIN".to_owned()];
        // Root holds the set; the added ones are for other users only.
        assert_eq!(
            caps(set.clone()).unwrap(),
            [all.clone(), both.clone(), both, vec![], vec![]]
        );
        // Another user: the whole set bounds it, it holds only the added ones.
        assert_eq!(
            caps(set.user("app")).unwrap(),
            [all, admin.clone(), admin.clone(), admin.clone(), admin]
        );
        assert!(matches!(
            caps(ConvertOptions::new().capabilities(["CAP_FLY"])),
            Err(ConvertError::Capability { name }) if name == "CAP_FLY"
        ));
        // Without the option: runc spec's three, as umoci writes them.
        assert_eq!(caps(ConvertOptions::new()).unwrap()[0].len(), 3);
    }

    #[test]
    fn users_resolve_like_conversion_md_says() {
        assert_eq!(user("").unwrap(), (0, 0, None));
        assert_eq!(user("app").unwrap(), (1000, 1000, Some(vec![10, 44])));
        assert_eq!(user("1000").unwrap(), (1000, 1000, None));
        assert_eq!(user("4242").unwrap(), (4242, 0, None));
        assert_eq!(user("app:staff").unwrap(), (1000, 50, None));
        assert_eq!(user("app:7").unwrap(), (1000, 7, None));
        assert_eq!(user("5:6").unwrap(), (5, 6, None));
        assert_eq!(user("0:wheel").unwrap(), (0, 10, None));
        assert!(matches!(user("nobody"), Err(ConvertError::User { .. })));
        assert!(matches!(
            user("app:nogroup"),
            Err(ConvertError::User { .. })
        ));
    }

    #[test]
    fn passwd_links_to_the_host_are_not_followed() {
        let host = tempfile::tempdir().unwrap();
        let host_passwd = host.path().join("passwd");
        std::fs::write(
            &host_passwd,
            "root:x:0:0::/:/bin/sh\nhostonly:x:7:7::/:/bin/sh\n",
        )
        .unwrap();
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        // Through the link, the host's file would make "hostonly" resolve.
        std::os::unix::fs::symlink(&host_passwd, d.path().join("etc/passwd")).unwrap();
        let e = resolve_user("hostonly", d.path(), false).unwrap_err();
        assert!(matches!(e, ConvertError::User { .. }), "{e:?}");
        // A link to itself (absolute, so inside the root it is itself) is an error, not a hang.
        std::fs::remove_file(d.path().join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("etc/passwd")).unwrap();
        assert!(resolve_user("root", d.path(), false).is_err());
    }

    fn image(json: serde_json::Value) -> ImageConfiguration {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn args_env_and_annotations() {
        let r = rootfs(PASSWD, GROUP);
        let img = image(serde_json::json!({
            "architecture": "arm64", "os": "linux", "variant": "v8", "author": "me",
            "created": "2024-01-01T00:00:00Z",
            "config": {
                "Entrypoint": ["/entry"], "Cmd": ["a", "b"], "Env": ["PATH=/bin", "A=1"],
                "User": "app", "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
                "StopSignal": "SIGQUIT", "Labels": {"org.opencontainers.image.author": "label"},
                "Volumes": {"/data": {}}
            },
            "rootfs": {"type": "layers", "diff_ids": []}
        }));
        let spec = runtime_config(&img, r.path(), &ConvertOptions::new().env("A=2")).unwrap();
        let p = spec.process().clone().unwrap();
        assert_eq!(p.args().clone().unwrap(), ["/entry", "a", "b"]);
        assert_eq!(p.env().clone().unwrap(), ["PATH=/bin", "A=2"]);
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 1000));
        let a = spec.annotations().clone().unwrap();
        assert_eq!(a["org.opencontainers.image.architecture"], "arm64");
        assert_eq!(a["org.opencontainers.image.variant"], "v8");
        assert_eq!(a["org.opencontainers.image.stopSignal"], "SIGQUIT");
        assert_eq!(a["org.opencontainers.image.author"], "label");
        let mut ports: Vec<&str> = a["org.opencontainers.image.exposedPorts"]
            .split(',')
            .collect();
        ports.sort();
        assert_eq!(ports, ["53/udp", "80/tcp"]);
        assert!(
            !spec
                .mounts()
                .clone()
                .unwrap()
                .iter()
                .any(|m| m.destination().to_str() == Some("/data"))
        );

        // Overrides: an entrypoint drops the image's Cmd; volumes as tmpfs; limits.
        let spec = runtime_config(
            &img,
            r.path(),
            &ConvertOptions::new()
                .entrypoint(vec!["/bin/sh".into()])
                .volumes(Volumes::Tmpfs)
                .memory_limit(512 << 20)
                .cpu_quota(50_000, 100_000)
                .pids_limit(64),
        )
        .unwrap();
        assert_eq!(
            spec.process().clone().unwrap().args().clone().unwrap(),
            ["/bin/sh"]
        );
        assert!(
            spec.mounts()
                .clone()
                .unwrap()
                .iter()
                .any(|m| m.destination().to_str() == Some("/data"))
        );
        let res = spec.linux().clone().unwrap().resources().clone().unwrap();
        assert_eq!(res.memory().unwrap().limit(), Some(512 << 20));
        assert_eq!(res.cpu().clone().unwrap().quota(), Some(50_000));
        assert_eq!(res.pids().unwrap().limit(), 64);
        ocikit_runtime::validate(&spec).unwrap();
    }

    #[test]
    fn no_command_and_defaults() {
        let r = rootfs(PASSWD, GROUP);
        let bare = image(serde_json::json!({"architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []}}));
        assert!(matches!(
            runtime_config(&bare, r.path(), &ConvertOptions::new()),
            Err(ConvertError::NoCommand)
        ));
        // The default arguments fill in only what neither the image nor the caller gives.
        let sh = ConvertOptions::new().default_args(vec!["sh".into()]);
        let spec = runtime_config(&bare, r.path(), &sh).unwrap();
        assert_eq!(
            spec.process().as_ref().unwrap().args().as_deref(),
            Some(&["sh".to_owned()][..])
        );
        let spec = runtime_config(&bare, r.path(), &sh.cmd(vec!["x".into()])).unwrap();
        assert_eq!(
            spec.process().as_ref().unwrap().args().as_deref(),
            Some(&["x".to_owned()][..])
        );
        let spec = runtime_config(
            &bare,
            r.path(),
            &ConvertOptions::new().cmd(vec!["x".into()]).terminal(true),
        )
        .unwrap();
        let p = spec.process().clone().unwrap();
        assert_eq!(p.cwd().to_str(), Some("/"));
        assert!(p.env().clone().unwrap().contains(&DEFAULT_PATH.to_owned()));
        assert!(p.env().clone().unwrap().contains(&"TERM=xterm".to_owned()));
        assert_eq!(p.terminal(), Some(true));
    }

    #[test]
    fn rootless_configs_map_the_caller() {
        let r = rootfs(PASSWD, GROUP);
        let img = image(serde_json::json!({"architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["x"]}, "rootfs": {"type": "layers", "diff_ids": []}}));
        let spec = runtime_config(&img, r.path(), &ConvertOptions::new().rootless(true)).unwrap();
        let linux = spec.linux().clone().unwrap();
        let ns: Vec<_> = linux
            .namespaces()
            .clone()
            .unwrap()
            .iter()
            .map(|n| n.typ())
            .collect();
        assert!(ns.contains(&LinuxNamespaceType::User));
        assert!(!ns.contains(&LinuxNamespaceType::Network));
        // The caller is root inside; with subordinate ranges, ids 1 and up are those.
        let uids = linux.uid_mappings().clone().unwrap();
        assert_eq!(
            (uids[0].container_id(), uids[0].host_id(), uids[0].size()),
            (0, rustix::process::geteuid().as_raw(), 1)
        );
        assert_eq!(uids, ocikit_runtime::rootless_mappings().0);
        assert!(linux.resources().is_none());
        // Limits asked for stay: the runtime refuses them where it cannot apply them.
        let limited = ConvertOptions::new().rootless(true).memory_limit(64 << 20);
        let spec_limited = runtime_config(&img, r.path(), &limited).unwrap();
        let res = spec_limited
            .linux()
            .clone()
            .unwrap()
            .resources()
            .clone()
            .unwrap();
        assert_eq!(res.memory().unwrap().limit(), Some(64 << 20));
        let sys = spec.mounts().clone().unwrap();
        let sys = sys
            .iter()
            .find(|m| m.destination().to_str() == Some("/sys"));
        assert_eq!(sys.unwrap().typ().as_deref(), Some("none"));
        ocikit_runtime::validate(&spec).unwrap();
    }
}
