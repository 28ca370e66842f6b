//! Running as an unprivileged user, as `runc --rootless` does: where state lives, which
//! configuration `spec --rootless` writes, and how a user namespace's id mappings are
//! written without privileges (directly for the caller's own id, else with `newuidmap` and
//! `newgidmap` from the `uidmap` package, which check `/etc/subuid` and `/etc/subgid`).

use std::path::PathBuf;
use std::process::Command;

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespace, LinuxNamespaceType, Mount, Spec};

use crate::error::{Error, Result};

/// Whether this process runs without root on the host: its effective uid is not 0, or it
/// is root only inside a user namespace (as after [`enter_user_namespace`]), where it still
/// cannot write the host's cgroups or `/run` (runc decides "rootless cgroups" so too).
pub fn is_rootless() -> bool {
    !nix::unistd::geteuid().is_root() || in_user_namespace()
}

/// The identity mapping of the initial user namespace, as `/proc/self/uid_map` shows it.
fn is_initial_map(text: &str) -> bool {
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .filter(|f: &Vec<&str>| !f.is_empty())
        .collect();
    matches!(lines.as_slice(), [f] if f.as_slice() == ["0", "0", "4294967295"])
}

/// Whether this process is in a user namespace other than the initial one.
fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|t| !is_initial_map(&t))
}

/// The ranges of an id map file (`/proc/self/uid_map`): inside, outside, size.
fn parse_map(text: &str) -> Vec<LinuxIdMapping> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<u32> = l
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect();
            (f.len() == 3).then(|| mapping(f[0], f[1], f[2]))
        })
        .collect()
}

/// The id that `id` of this user namespace is in the parent one (per `own`, this process's
/// map); `id` itself in the initial namespace.
fn outside(own: &[LinuxIdMapping], id: u32) -> Option<u32> {
    own.iter().find_map(|m| {
        let off = id.checked_sub(m.container_id())?;
        (off < m.size()).then(|| m.host_id() + off)
    })
}

/// `maps`, whose host ids are the host's (the initial namespace's), with host ids as this
/// process's user namespace names them (`own`: its map), which is how the kernel reads a
/// map that this process writes for a child namespace. A range that this namespace does not
/// map whole is an [`Error::Rootless`] naming `field`.
fn to_own_namespace(
    maps: &[LinuxIdMapping],
    own: &[LinuxIdMapping],
    field: &str,
) -> Result<Vec<LinuxIdMapping>> {
    maps.iter()
        .map(|m| {
            own.iter()
                .find_map(|o| {
                    let off = m.host_id().checked_sub(o.host_id())?;
                    (off.checked_add(m.size())? <= o.size())
                        .then(|| mapping(m.container_id(), o.container_id() + off, m.size()))
                })
                .ok_or_else(|| Error::Rootless {
                    what: field.into(),
                    reason: format!(
                        "host ids {}..{} are not mapped in this process's user namespace",
                        m.host_id(),
                        u64::from(m.host_id()) + u64::from(m.size())
                    ),
                })
        })
        .collect()
}

/// This process's effective uid and gid as the host names them (through its user
/// namespace's maps, if it is in one).
fn host_ids() -> (u32, u32) {
    let (uid, gid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let own = |file: &str| parse_map(&std::fs::read_to_string(file).unwrap_or_default());
    if !in_user_namespace() {
        return (uid, gid);
    }
    (
        outside(&own("/proc/self/uid_map"), uid).unwrap_or(uid),
        outside(&own("/proc/self/gid_map"), gid).unwrap_or(gid),
    )
}

/// The ranges `/etc/subuid` (or `/etc/subgid`: `text`) grants the user `name` / `id`: lines
/// `USER:START:COUNT`, where USER is a name or a numeric id (subuid(5)).
fn subordinate(text: &str, name: Option<&str>, id: u32) -> Vec<(u32, u32)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split(':').collect();
            if f.len() != 3 || l.trim_start().starts_with('#') {
                return None;
            }
            let mine = Some(f[0]) == name || f[0].parse::<u32>().ok() == Some(id);
            mine.then(|| Some((f[1].parse().ok()?, f[2].parse().ok()?)))
                .flatten()
        })
        .filter(|(_, count)| *count > 0)
        .collect()
}

/// The user's name in `/etc/passwd`, if it has one.
fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// The mappings that give a rootless container every id this user may use, in host ids:
/// `0` is the user itself, `1` onwards its subordinate ranges from `/etc/subuid` and
/// `/etc/subgid` in order (as podman's rootless user namespace), so that a root filesystem
/// unpacked in that namespace shows the image's owners inside. Without ranges, just the
/// user as root. In a user namespace already (after [`enter_user_namespace`]), that
/// namespace's own maps. Returns `(uid mappings, gid mappings)`.
pub fn rootless_mappings() -> (Vec<LinuxIdMapping>, Vec<LinuxIdMapping>) {
    if in_user_namespace() {
        let own = |file: &str| parse_map(&std::fs::read_to_string(file).unwrap_or_default());
        return (own("/proc/self/uid_map"), own("/proc/self/gid_map"));
    }
    let (uid, gid) = host_ids();
    let name = user_name(uid);
    let ranges = |file: &str, own: u32| {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let mut maps = vec![mapping(0, own, 1)];
        let mut next = 1u32;
        for (start, count) in subordinate(&text, name.as_deref(), uid) {
            maps.push(mapping(next, start, count));
            next = next.saturating_add(count);
        }
        maps
    };
    (ranges("/etc/subuid", uid), ranges("/etc/subgid", gid))
}

/// Makes this process root in a new user namespace, with [`rootless_mappings`] (the caller
/// and its subordinate ranges), and in a new mount namespace (its mounts, such as an image
/// store's overlays made with `userxattr`, are its own and vanish with it), as `podman
/// unshare` does. Then files can be given the owners an image names, and the process can
/// mount what a user namespace may mount. Returns whether it entered one: nothing is done
/// for root or a process already in a user namespace.
///
/// The kernel allows this only to a single-threaded process: call it in `main`, right after
/// [`crate::init_if_requested`] (which it needs: the maps are written by a re-execution of
/// this program, from outside the new namespace, through `newuidmap` and `newgidmap` when
/// there are subordinate ranges), before any thread is started.
pub fn enter_user_namespace() -> Result<bool> {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    if !is_rootless() || in_user_namespace() {
        return Ok(false);
    }
    if !crate::init::wired() {
        return Err(Error::InitNotWired {
            helper: std::env::current_exe().unwrap_or_default(),
            reason: "enter_user_namespace re-executes this program to write the id maps, and it never called ocikit_runtime::init_if_requested()"
                .into(),
        });
    }
    let (uids, gids) = rootless_mappings();
    let maps = serde_json::to_string(&(&uids, &gids)).expect("mappings serialize");
    let mut mapper = Command::new("/proc/self/exe")
        .arg0("oci-runtime")
        .arg("map-ids")
        .env(MAPPER_ENV, std::process::id().to_string())
        .env(MAPS_ENV, maps)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("spawning the id mapper", Some("/proc/self/exe".into()), e))?;
    let unshared = nix::sched::unshare(
        nix::sched::CloneFlags::CLONE_NEWUSER | nix::sched::CloneFlags::CLONE_NEWNS,
    );
    if let Err(e) = unshared {
        let _ = mapper.kill();
        let _ = mapper.wait();
        return Err(match e {
            nix::errno::Errno::EINVAL => Error::Rootless {
                what: "entering a user namespace".into(),
                reason: "this process already runs several threads; call enter_user_namespace first thing in main"
                    .into(),
            },
            e => Error::sys("creating a user namespace", None, e),
        });
    }
    if let Some(mut stdin) = mapper.stdin.take() {
        let _ = stdin.write_all(b"1");
    }
    let out = mapper
        .wait_with_output()
        .map_err(|e| Error::io("waiting for the id mapper", None, e))?;
    if !out.status.success() {
        // Unmapped, this process can do nothing useful any more.
        return Err(Error::Rootless {
            what: "the user namespace's id maps".into(),
            reason: format!(
                "{} ({})",
                String::from_utf8_lossy(&out.stderr).trim(),
                out.status
            ),
        });
    }
    let root = (nix::unistd::Uid::from_raw(0), nix::unistd::Gid::from_raw(0));
    nix::unistd::setresgid(root.1, root.1, root.1)
        .map_err(|e| Error::sys("becoming root in the user namespace", None, e))?;
    nix::unistd::setresuid(root.0, root.0, root.0)
        .map_err(|e| Error::sys("becoming root in the user namespace", None, e))?;
    // Mounts made from now on stay in this namespace.
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| Error::sys("making / a slave mount", Some("/".into()), e))?;
    Ok(true)
}

/// The environment variable that makes a re-execution of the program the id mapper of
/// [`enter_user_namespace`]: the pid whose maps to write.
pub(crate) const MAPPER_ENV: &str = "_OCIKIT_ID_MAPPER";

/// The maps it writes, as JSON `[uid mappings, gid mappings]`.
const MAPS_ENV: &str = "_OCIKIT_ID_MAPS";

/// The id mapper: waits for a byte on standard input (the process has created its user
/// namespace), writes the maps, and exits: 0 when written, 1 with the reason on stderr.
pub(crate) fn mapper_main(pid: std::ffi::OsString) -> ! {
    use std::io::Read;
    let written = (|| -> Result<()> {
        let pid: i32 = pid
            .to_str()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| Error::config(MAPPER_ENV, "not a pid"))?;
        let maps = std::env::var(MAPS_ENV).unwrap_or_default();
        let (uids, gids): (Vec<LinuxIdMapping>, Vec<LinuxIdMapping>) =
            serde_json::from_str(&maps).map_err(|e| Error::config(MAPS_ENV, e.to_string()))?;
        let mut go = [0u8; 1];
        std::io::stdin()
            .read_exact(&mut go)
            .map_err(|e| Error::io("waiting for the user namespace", None, e))?;
        write_id_maps(pid, &uids, &gids)
    })();
    match written {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1)
        }
    }
}

/// The state root to use when none is given, as runc chooses its own: [`crate::DEFAULT_ROOT`]
/// (`/run/ocikit`) for root; `$XDG_RUNTIME_DIR/ocikit` for any other user. An unprivileged
/// caller without `XDG_RUNTIME_DIR` gets an [`Error::Rootless`] that says to name one
/// (`--root`, [`crate::Runtime::new`]).
pub fn default_root() -> Result<PathBuf> {
    if !is_rootless() {
        return Ok(PathBuf::from(crate::DEFAULT_ROOT));
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => Ok(PathBuf::from(dir).join("ocikit")),
        None => Err(Error::Rootless {
            what: "the state root".into(),
            reason: format!(
                "{} is root's and XDG_RUNTIME_DIR is not set: give a directory of this \
                 user's with --root (Runtime::new)",
                crate::DEFAULT_ROOT
            ),
        }),
    }
}

/// What `oci-runtime spec --rootless` writes, as `runc spec --rootless`: [`crate::default_spec`]
/// made runnable by the caller with [`make_rootless`].
pub fn rootless_spec() -> Spec {
    let mut spec = crate::default_spec();
    make_rootless(&mut spec);
    spec
}

/// Changes `spec` as runc's `specconv.ToRootless` does, so that an unprivileged user can run
/// it: no network namespace (a new one would have no device the user may configure, and
/// sysfs cannot be mounted without one) and a new user namespace mapping the caller's
/// effective uid and gid to root, `/sys` bound (`rbind`, read-only) from the host instead of
/// mounted, no `uid=` or `gid=` mount options (they name ids the namespace does not map),
/// and no `linux.resources` (an unprivileged user cannot write cgroups). The caller's ids
/// are the host's (in a user namespace, what its own ids are outside it).
pub fn make_rootless(spec: &mut Spec) {
    let (uid, gid) = host_ids();
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut namespaces: Vec<LinuxNamespace> = linux
        .namespaces()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| {
            !matches!(
                n.typ(),
                LinuxNamespaceType::Network | LinuxNamespaceType::User
            )
        })
        .collect();
    let mut user = LinuxNamespace::default();
    user.set_typ(LinuxNamespaceType::User);
    namespaces.push(user);
    linux.set_namespaces(Some(namespaces));
    linux.set_uid_mappings(Some(vec![mapping(0, uid, 1)]));
    linux.set_gid_mappings(Some(vec![mapping(0, gid, 1)]));
    linux.set_resources(None);
    spec.set_linux(Some(linux));
    let mounts: Vec<Mount> = spec
        .mounts()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|mut m| {
            if m.destination()
                .components()
                .eq(std::path::Path::new("/sys").components())
            {
                let mut sys = Mount::default();
                sys.set_destination("/sys".into());
                sys.set_typ(Some("none".into()));
                sys.set_source(Some("/sys".into()));
                sys.set_options(Some(
                    ["rbind", "nosuid", "noexec", "nodev", "ro"]
                        .map(String::from)
                        .to_vec(),
                ));
                return sys;
            }
            if let Some(options) = m.options().clone() {
                m.set_options(Some(
                    options
                        .into_iter()
                        .filter(|o| !o.starts_with("gid=") && !o.starts_with("uid="))
                        .collect(),
                ));
            }
            m
        })
        .collect();
    spec.set_mounts(Some(mounts));
}

/// Refuses, before anything is made, a configuration that an unprivileged caller (not root
/// even in a user namespace) cannot run because it asks for no user namespace: every other
/// namespace and mount would be refused by the kernel one by one (runc: "rootless container
/// requires user namespaces").
pub(crate) fn check_config(spec: &Spec) -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let user_ns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::User));
    if user_ns {
        return Ok(());
    }
    Err(Error::Rootless {
        what: "linux.namespaces".into(),
        reason: "an unprivileged user needs a user namespace (with uidMappings and \
                 gidMappings); `oci-runtime spec --rootless` writes such a configuration"
            .into(),
    })
}

/// One id mapping range.
pub(crate) fn mapping(container_id: u32, host_id: u32, size: u32) -> LinuxIdMapping {
    oci_spec::runtime::LinuxIdMappingBuilder::default()
        .container_id(container_id)
        .host_id(host_id)
        .size(size)
        .build()
        .expect("every field is set")
}

/// Whether `maps` is exactly the one mapping an unprivileged process may write itself:
/// its own id (user_namespaces(7): "the data written to uid_map (gid_map) must consist of
/// a single line that maps the writing process's effective user ID (group ID) in the
/// parent user namespace to a user ID (group ID) in the user namespace").
fn own_id_only(maps: &[LinuxIdMapping], own: u32) -> bool {
    matches!(maps, [m] if m.host_id() == own && m.size() == 1)
}

/// Writes the id mappings of process `pid`, which has just created a user namespace. The
/// host ids are the host's: in a user namespace (after [`enter_user_namespace`]) they are
/// first translated to its ids, which is how the kernel reads what this process writes.
/// As root (of the host or of this namespace), directly; otherwise directly when each maps
/// only the caller's own id (after denying `setgroups`, which the kernel requires for an
/// unprivileged `gid_map`), else with `newuidmap` / `newgidmap`, which allow what
/// `/etc/subuid` and `/etc/subgid` grant.
pub(crate) fn write_id_maps(
    pid: i32,
    uids: &[LinuxIdMapping],
    gids: &[LinuxIdMapping],
) -> Result<()> {
    let (uids, gids) = if in_user_namespace() {
        let own = |file: &str| parse_map(&std::fs::read_to_string(file).unwrap_or_default());
        (
            to_own_namespace(uids, &own("/proc/self/uid_map"), "linux.uidMappings")?,
            to_own_namespace(gids, &own("/proc/self/gid_map"), "linux.gidMappings")?,
        )
    } else {
        (uids.to_vec(), gids.to_vec())
    };
    let (uids, gids) = (uids.as_slice(), gids.as_slice());
    let text = |maps: &[LinuxIdMapping]| {
        maps.iter()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect::<String>()
    };
    let write = |file: &str, text: String| {
        let path = PathBuf::from(format!("/proc/{pid}/{file}"));
        std::fs::write(&path, text).map_err(|e| Error::io("writing id map", Some(path), e))
    };
    if nix::unistd::geteuid().is_root() {
        write("uid_map", text(uids))?;
        return write("gid_map", text(gids));
    }
    if own_id_only(uids, nix::unistd::geteuid().as_raw()) {
        write("uid_map", text(uids))?;
    } else {
        map_with_tool("newuidmap", "linux.uidMappings", pid, uids)?;
    }
    if own_id_only(gids, nix::unistd::getegid().as_raw()) {
        // user_namespaces(7): "writing "deny" to the /proc/pid/setgroups file before
        // writing to /proc/pid/gid_map will permanently disable setgroups(2) in a user
        // namespace and allow writing to /proc/pid/gid_map without having the CAP_SETGID
        // capability in the parent user namespace".
        write("setgroups", "deny".into())?;
        write("gid_map", text(gids))?;
    } else {
        map_with_tool("newgidmap", "linux.gidMappings", pid, gids)?;
    }
    Ok(())
}

/// Runs `newuidmap PID CONTAINER HOST SIZE...` (or `newgidmap`).
fn map_with_tool(tool: &str, field: &str, pid: i32, maps: &[LinuxIdMapping]) -> Result<()> {
    let mut cmd = Command::new(tool);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let out = cmd.output().map_err(|e| Error::Rootless {
        what: field.into(),
        reason: format!(
            "maps more than this user's own id, which needs {tool} (Debian package uidmap): {e}"
        ),
    })?;
    if !out.status.success() {
        return Err(Error::Rootless {
            what: field.into(),
            reason: format!(
                "{tool} refused it ({}): {} (ranges must be granted in /etc/sub{}id)",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                if tool == "newuidmap" { "u" } else { "g" }
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootless_spec_is_runcs() {
        let spec = rootless_spec();
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
        let uid = linux.uid_mappings().clone().unwrap();
        assert_eq!(uid.len(), 1);
        assert_eq!(
            (uid[0].container_id(), uid[0].host_id(), uid[0].size()),
            (0, nix::unistd::geteuid().as_raw(), 1)
        );
        assert!(linux.resources().is_none());
        let mounts = spec.mounts().clone().unwrap();
        let sys = mounts
            .iter()
            .find(|m| m.destination().to_str() == Some("/sys"))
            .unwrap();
        assert_eq!(sys.typ().as_deref(), Some("none"));
        assert!(
            sys.options()
                .clone()
                .unwrap()
                .contains(&"rbind".to_string())
        );
        assert!(mounts.iter().all(|m| {
            m.options()
                .iter()
                .flatten()
                .all(|o| !o.starts_with("gid=") && !o.starts_with("uid="))
        }));
        crate::validate(&spec).unwrap();
    }

    #[test]
    fn maps_and_ranges() {
        assert!(is_initial_map("         0          0 4294967295\n"));
        assert!(!is_initial_map("0 1001 1\n1 100000 65536\n"));
        let own = parse_map("0 1001 1\n1 100000 65536\n");
        assert_eq!(own.len(), 2);
        assert_eq!(outside(&own, 0), Some(1001));
        assert_eq!(outside(&own, 1000), Some(100999));
        assert_eq!(outside(&own, 65537), None);
        // The host's view of a container map, as this namespace names it.
        let host = [mapping(0, 1001, 1), mapping(1, 100000, 65536)];
        let mine = to_own_namespace(&host, &own, "f").unwrap();
        let triples: Vec<_> = mine
            .iter()
            .map(|m| (m.container_id(), m.host_id(), m.size()))
            .collect();
        assert_eq!(triples, [(0, 0, 1), (1, 1, 65536)]);
        let e = to_own_namespace(&[mapping(0, 5, 1)], &own, "linux.uidMappings").unwrap_err();
        assert!(e.to_string().contains("linux.uidMappings"), "{e}");
        let text = "# comment\nalice:100000:65536\n1001:200000:10\nbob:300000:5\nalice:x:1\n";
        assert_eq!(
            subordinate(text, Some("alice"), 1001),
            [(100000, 65536), (200000, 10)]
        );
        assert_eq!(subordinate(text, Some("carol"), 7), []);
    }

    #[test]
    fn which_maps_need_the_tools() {
        assert!(own_id_only(&[mapping(0, 1000, 1)], 1000));
        assert!(!own_id_only(&[mapping(0, 1000, 2)], 1000));
        assert!(!own_id_only(&[mapping(0, 1001, 1)], 1000));
        assert!(!own_id_only(
            &[mapping(0, 1000, 1), mapping(1, 100000, 65536)],
            1000
        ));
        assert!(!own_id_only(&[], 1000));
    }
}
