//! The `ocikit` command against the peers it stands in for, on the same inputs: skopeo
//! (`inspect`, `list-tags`, `login`'s auth file, `copy`), umoci (`unpack` under runc) and
//! podman (`run`); and its errors (one line, documented exit codes).
//!
//! Needs root, the docker-registry `scripts/test.sh` starts (`OCIKIT_TEST_REGISTRY`), and
//! skopeo, umoci, runc, podman, htpasswd and busybox-static, which it installs.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

#[path = "../../tests/common/mod.rs"]
mod common;
use common::{OwnRegistry, own_registry};

const OCIKIT: &str = env!("CARGO_BIN_EXE_ocikit");

fn registry() -> String {
    std::env::var("OCIKIT_TEST_REGISTRY")
        .expect("OCIKIT_TEST_REGISTRY is not set: run the tests with `bash scripts/test.sh`")
}

/// A repository name no other test uses.
fn repo(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "cli-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// Runs `cmd`; fails the test with its stderr unless it succeeds; returns stdout.
fn ok(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn ocikit() -> Command {
    Command::new(OCIKIT)
}

/// A busybox image made by umoci in layout `dir` as `dir:t`: `cmd` /bin/sh, a label, an
/// env var, a file owned by 1000.
fn busybox_image(dir: &Path) -> String {
    let layout = dir.join("img");
    let work = dir.join("umoci-bundle");
    ok(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout));
    ok(Command::new("umoci")
        .args(["new", "--image"])
        .arg(format!("{}:t", layout.display())));
    ok(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:t", layout.display()))
        .arg(&work));
    let rootfs = work.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::create_dir_all(rootfs.join("home/user")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .expect("/bin/busybox (busybox-static, installed by scripts/test.sh)");
    for applet in ["sh", "ls", "cat", "echo", "id", "true", "stat", "tail"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nuser:x:1000:\n").unwrap();
    std::fs::write(rootfs.join("home/user/note"), "hello\n").unwrap();
    std::os::unix::fs::chown(rootfs.join("home/user/note"), Some(1000), Some(1000)).unwrap();
    ok(Command::new("umoci")
        .args(["repack", "--image"])
        .arg(format!("{}:t", layout.display()))
        .arg(&work));
    ok(Command::new("umoci")
        .args(["config", "--image"])
        .arg(format!("{}:t", layout.display()))
        .args(["--config.cmd", "/bin/sh", "--config.env", "GREETING=hi"])
        .args(["--config.label", "org.example.team=cli"]));
    std::fs::remove_dir_all(&work).unwrap();
    format!("oci:{}:t", layout.display())
}

/// `ocikit inspect` prints what `skopeo inspect` prints, byte for byte, for a registry image
/// and a layout; `--config` and `--raw` too.
#[test]
fn inspect_equals_skopeo() {
    let dir = tempfile::tempdir().unwrap();
    let src = busybox_image(dir.path());
    let reference = format!("docker://{}/{}:v1", registry(), repo("inspect"));
    ok(ocikit().args(["copy", "-q", &src, &reference]));
    for location in [reference.as_str(), src.as_str()] {
        for flags in [&[][..], &["--config"], &["--raw"], &["--config", "--raw"]] {
            let ours = ok(ocikit().arg("inspect").args(flags).arg(location));
            let theirs = ok(Command::new("skopeo")
                .args(["inspect", "--tls-verify=false"])
                .args(flags)
                .arg(location));
            assert_eq!(ours, theirs, "inspect {flags:?} {location}");
        }
    }
    let ours: serde_json::Value =
        serde_json::from_str(&ok(ocikit().args(["inspect", &reference]))).unwrap();
    assert_eq!(ours["Labels"]["org.example.team"], "cli", "{ours}");
    assert_eq!(ours["RepoTags"], serde_json::json!(["v1"]), "{ours}");
}

/// `list-tags` prints skopeo's JSON.
#[test]
fn list_tags_equals_skopeo() {
    let dir = tempfile::tempdir().unwrap();
    let src = busybox_image(dir.path());
    let name = format!("{}/{}", registry(), repo("tags"));
    for tag in ["b", "a", "1.0"] {
        ok(ocikit().args(["copy", "-q", &src, &format!("docker://{name}:{tag}")]));
    }
    let repository = format!("docker://{name}");
    let ours = ok(ocikit().args(["list-tags", &repository]));
    let theirs = ok(Command::new("skopeo").args(["list-tags", "--tls-verify=false", &repository]));
    assert_eq!(ours, theirs);
    let v: serde_json::Value = serde_json::from_str(&ours).unwrap();
    assert_eq!(v["Tags"].as_array().unwrap().len(), 3, "{v}");
}

/// `delete` removes the manifest: the tag is gone for skopeo too.
#[test]
fn delete_removes_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let src = busybox_image(dir.path());
    let reference = format!("docker://{}/{}:gone", registry(), repo("delete"));
    ok(ocikit().args(["copy", "-q", &src, &reference]));
    ok(Command::new("skopeo").args(["inspect", "--tls-verify=false", &reference]));
    ok(ocikit().args(["delete", &reference]));
    let out = output(Command::new("skopeo").args(["inspect", "--tls-verify=false", &reference]));
    assert!(!out.status.success(), "skopeo still sees {reference}");
    let again = output(ocikit().args(["delete", &reference]));
    assert_eq!(again.status.code(), Some(3), "{again:?}");
}

fn htpasswd_registry(dir: &Path) -> OwnRegistry {
    let htpasswd = dir.join("htpasswd");
    ok(Command::new("htpasswd")
        .arg("-Bbc")
        .arg(&htpasswd)
        .args(["alice", "s3cret"]));
    own_registry(&format!(
        "auth:\n  htpasswd:\n    realm: ocikit\n    path: {}\n",
        htpasswd.display()
    ))
}

/// `login` writes the auth file skopeo reads; skopeo's `login` file serves `ocikit copy`;
/// bad credentials are refused before anything is written; `logout` removes the entry.
#[test]
fn login_auth_file_works_both_ways_with_skopeo() {
    let dir = tempfile::tempdir().unwrap();
    let reg = htpasswd_registry(dir.path());
    let src = busybox_image(dir.path());
    let ours_file = dir.path().join("ours/auth.json");
    let theirs_file = dir.path().join("theirs/auth.json");
    let authfile = |f: &PathBuf| format!("--authfile={}", f.display());

    // Refused credentials: exit 4, one line, no file.
    let bad = output(ocikit().args([
        "login",
        "-u",
        "alice",
        "-p",
        "wrong",
        &authfile(&ours_file),
        &reg.addr,
    ]));
    assert_eq!(bad.status.code(), Some(4), "{bad:?}");
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr).lines().count(),
        1,
        "{bad:?}"
    );
    assert!(!ours_file.exists());

    // Ours → skopeo.
    let mut login = ocikit();
    login
        .args([
            "login",
            "-u",
            "alice",
            "--password-stdin",
            &authfile(&ours_file),
            &reg.addr,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = login.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Login Succeeded!\n");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&ours_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let dest = format!("docker://{}/team/app:1", reg.addr);
    ok(Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &authfile(&ours_file),
        ])
        .args([&src, &dest]));
    let who = ok(ocikit().args(["login", "--get-login", &authfile(&ours_file), &reg.addr]));
    assert_eq!(who, "alice\n");

    // skopeo → ours.
    ok(Command::new("skopeo").args([
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "-p",
        "s3cret",
        &authfile(&theirs_file),
        &reg.addr,
    ]));
    let layout = dir.path().join("pulled");
    ok(ocikit().args([
        "copy",
        "-q",
        &authfile(&theirs_file),
        &dest,
        &format!("oci:{}:1", layout.display()),
    ]));
    ok(Command::new("umoci")
        .args(["stat", "--image"])
        .arg(format!("{}:1", layout.display())));

    // Without credentials the registry refuses: exit 4.
    let empty = dir.path().join("none.json");
    let refused = output(ocikit().args(["inspect", &authfile(&empty), &dest]));
    assert_eq!(refused.status.code(), Some(4), "{refused:?}");

    // logout: the entry goes, the next logout says so (exit 3).
    ok(ocikit().args(["logout", &authfile(&ours_file), &reg.addr]));
    let text = std::fs::read_to_string(&ours_file).unwrap();
    assert!(!text.contains(&reg.addr), "{text}");
    let again = output(ocikit().args(["logout", &authfile(&ours_file), &reg.addr]));
    assert_eq!(again.status.code(), Some(3), "{again:?}");
}

/// Sets a bundle's process to `args` without a terminal.
fn set_process(bundle: &Path, args: &[&str]) {
    let path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(args);
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
}

/// `unpack` makes a bundle runc runs as it runs umoci's: the same output of `id`, `env`
/// and the owner of a file the image gives to uid 1000.
#[test]
fn unpack_bundle_runs_under_runc_as_umocis() {
    let dir = tempfile::tempdir().unwrap();
    let src = busybox_image(dir.path());
    let layout = src.strip_prefix("oci:").unwrap();
    let ours = dir.path().join("ours");
    let theirs = dir.path().join("theirs");
    ok(ocikit()
        .args(["unpack", "-q", "--image", layout])
        .arg(&ours));
    ok(Command::new("umoci")
        .args(["unpack", "--image", layout])
        .arg(&theirs));
    let script = [
        "/bin/sh",
        "-c",
        "id; echo $GREETING; stat -c '%u:%g %a' /home/user/note",
    ];
    let mut outputs = Vec::new();
    for (n, bundle) in [&ours, &theirs].into_iter().enumerate() {
        set_process(bundle, &script);
        let root = dir.path().join(format!("runc-{n}"));
        outputs.push(ok(Command::new("runc")
            .arg("--root")
            .arg(&root)
            .args(["run", "--bundle"])
            .arg(bundle)
            .arg(format!("cli-unpack-{}-{n}", std::process::id()))));
    }
    assert_eq!(outputs[0], outputs[1]);
    assert!(outputs[0].contains("uid=0(root)"), "{}", outputs[0]);
    assert!(outputs[0].contains("hi\n1000:1000 644"), "{}", outputs[0]);
}

/// A private podman: its own store, runroot and configuration files (nothing of the
/// machine's is read or changed), runc, no network setup. Its ulimits are set: podman's
/// default raises `nofile` above what runc may set here (EPERM on rlimit 7).
struct Podman {
    dir: tempfile::TempDir,
    /// Whether the machine had podman's `libpod_parent` cgroups before this test.
    had_libpod_cgroups: bool,
}

fn libpod_cgroups() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for controller in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = controller.path().join("libpod_parent");
        if p.is_dir() {
            found.push(p);
        }
    }
    found
}

impl Podman {
    fn new() -> Podman {
        // podman refuses a runroot path longer than 50 characters: a short one under /tmp.
        let dir = tempfile::Builder::new()
            .prefix("pc")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("containers.conf"),
            format!(
                "[containers]\n\
                 default_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
                 [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"file\"\nevents_logfile_path = \"{0}/events.log\"\n\
                 tmp_dir = \"{0}/tmp\"\n",
                d.display()
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .unwrap();
        std::fs::write(
            d.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"overlay\"\nrunroot = \"{0}/run\"\ngraphroot = \"{0}/root\"\n",
                d.display()
            ),
        )
        .unwrap();
        Podman {
            dir,
            had_libpod_cgroups: !libpod_cgroups().is_empty(),
        }
    }

    fn command(&self) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .args(["--storage-driver", "overlay"]);
        c
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = output(self.command().args(["system", "reset", "--force"]));
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let prefix = self.dir.path().display().to_string();
        for m in mounts.lines().filter_map(|l| l.split(' ').nth(1)) {
            if m.starts_with(&prefix) {
                let _ = Command::new("umount").arg("-l").arg(m).status();
            }
        }
        // podman's cgroupfs manager leaves empty `libpod_parent` cgroups: remove those it
        // made (rmdir removes only empty cgroups, deepest first).
        if !self.had_libpod_cgroups {
            for dir in libpod_cgroups() {
                let _ = Command::new("find")
                    .arg(dir)
                    .args(["-depth", "-type", "d", "-exec", "rmdir", "{}", ";"])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// `run` prints what `podman run` prints for the same image and command, with limits,
/// environment, entrypoint and users (by name and by uid, members of other groups or not,
/// with a group, unknown: `id` in full); the second run reuses the store.
#[test]
fn run_output_equals_podmans() {
    let dir = tempfile::tempdir().unwrap();
    let src = busybox_image(dir.path());
    // A layer of users on it: `user` a member of two more groups (one listing root too),
    // `lone` of none.
    let users = dir.path().join("users");
    std::fs::create_dir_all(users.join("etc")).unwrap();
    std::fs::write(
        users.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n\
         lone:x:1001:1001::/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        users.join("etc/group"),
        "root:x:0:\nuser:x:1000:\nlone:x:1001:\nextra:x:2000:user\nshared:x:2001:user,root\n",
    )
    .unwrap();
    let name = format!("{}/{}:1", registry(), repo("run"));
    ok(ocikit()
        .args(["build", "-q", "--from", &src, "--layer"])
        .arg(&users)
        .arg(format!("docker://{name}")));
    let store = dir.path().join("store");
    let podman = Podman::new();
    let host_dir = dir.path().join("shared");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("from-host"), "mounted\n").unwrap();
    let volume = format!("{}:/mnt:ro", host_dir.display());
    let caps = "busybox grep Cap /proc/self/status";
    let cases: &[&[&str]] = &[
        &["sh", "-c", "echo $GREETING; id -u; cat /home/user/note"],
        &["-e", "MODE=test", "sh", "-c", "echo $MODE $GREETING"],
        &["--entrypoint", "/bin/echo", "a", "b"],
        &["id"],
        &["-u", "user", "id"],
        &["-u", "1000", "id"],
        &["-u", "lone", "id"],
        &["-u", "1001", "id"],
        &["-u", "root", "id"],
        &["-u", "user:extra", "id"],
        &["-u", "1000:2001", "id"],
        // A uid and a gid the image lacks: podman (and ocikit) write them /etc/passwd and
        // /etc/group entries in the container (podman's `--passwd`), so `id` names them.
        &[
            "-u",
            "4242",
            "sh",
            "-c",
            "id; echo $HOME; tail -n 1 /etc/passwd /etc/group",
        ],
        &[
            "-u",
            "4242:77",
            "sh",
            "-c",
            "id; tail -n 1 /etc/passwd /etc/group",
        ],
        &[
            "-u",
            "user:77",
            "sh",
            "-c",
            "id; echo $HOME; tail -n 1 /etc/group",
        ],
        &["-u", "1000:77", "id"],
        &["sh", "-c", "echo $HOME"],
        &["-u", "user", "sh", "-c", "echo $HOME"],
        &["-e", "HOME=/elsewhere", "sh", "-c", "echo $HOME"],
        &["-w", "/home/user", "sh", "-c", "pwd; cat note"],
        &[
            "-v",
            &volume,
            "sh",
            "-c",
            "cat /mnt/from-host; touch /mnt/x || echo read-only",
        ],
        // Capabilities: podman's default set for root, which may then chown and write what
        // others own; none effective for another user; --cap-add and --cap-drop.
        &[
            "sh",
            "-c",
            "busybox grep Cap /proc/self/status; busybox mkdir /t; busybox chown 1000 /t; \
             busybox chmod 700 /t; touch /t/by-root && busybox stat -c '%u %n' /t /t/by-root",
        ],
        &["-u", "1000", "sh", "-c", caps],
        &[
            "--cap-add",
            "NET_ADMIN",
            "--cap-drop",
            "chown",
            "sh",
            "-c",
            caps,
        ],
        &[
            "-u",
            "1000",
            "--cap-add",
            "net_admin,CAP_SYS_TIME",
            "sh",
            "-c",
            caps,
        ],
        &["--cap-drop", "all", "sh", "-c", caps],
    ];
    for args in cases {
        let (flags, rest): (Vec<&str>, Vec<&str>) = split_flags(args);
        let ours = ok(ocikit()
            .args(["run", "--rm", "--root"])
            .arg(&store)
            .args(&flags)
            .arg(&name)
            .args(&rest));
        let theirs = ok(podman
            .command()
            .args(["run", "--rm", "--network", "none", "--tls-verify=false"])
            .args(&flags)
            .arg(&name)
            .args(&rest));
        assert_eq!(ours, theirs, "{args:?}");
    }
    let limited = ok(ocikit()
        .args(["run", "--rm", "-m", "64m", "--pids-limit", "50", "--root"])
        .arg(&store)
        .arg(&name)
        .args(["cat", "/sys/fs/cgroup/pids/pids.max"]));
    assert_eq!(limited.trim(), "50");
    let status = output(
        ocikit()
            .args(["run", "--rm", "--root"])
            .arg(&store)
            .arg(&name)
            .args(["sh", "-c", "exit 7"]),
    );
    assert_eq!(
        status.status.code(),
        Some(7),
        "the container's status: {status:?}"
    );
}

/// Flags (with their values) before the command.
fn split_flags<'a>(args: &[&'a str]) -> (Vec<&'a str>, Vec<&'a str>) {
    let mut flags = Vec::new();
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') {
        flags.push(args[i]);
        flags.push(args[i + 1]);
        i += 2;
    }
    (flags, args[i..].to_vec())
}

/// `pull`, `images`, `rmi`, `prune` on a store.
#[test]
fn store_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let src = busybox_image(dir.path());
    let name = format!("{}/{}:7", registry(), repo("store"));
    ok(ocikit().args(["copy", "-q", &src, &format!("docker://{name}")]));
    let store = dir.path().join("store");
    let root = ["--root", store.to_str().unwrap()];
    let digest = ok(ocikit().args(["pull", "-q"]).args(root).arg(&name));
    assert!(digest.starts_with("sha256:"), "{digest}");
    let table = ok(ocikit().arg("images").args(root));
    let repository = name.rsplit_once(':').unwrap().0;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(repository) && l.contains(" 7 ")),
        "{table}"
    );
    let ids = ok(ocikit().args(["images", "-q"]).args(root));
    assert_eq!(ids, digest);
    ok(ocikit().arg("rmi").args(root).arg(&name));
    assert_eq!(ok(ocikit().args(["images", "-q"]).args(root)), "");
    let missing = output(ocikit().arg("rmi").args(root).arg(&name));
    assert_eq!(missing.status.code(), Some(3), "{missing:?}");
    ok(ocikit().arg("prune").args(root));
}

/// `gc` keeps what is named; `fsck` finds a corrupt blob (exit 6).
#[test]
fn gc_and_fsck_of_a_layout() {
    let dir = tempfile::tempdir().unwrap();
    let src = busybox_image(dir.path());
    let layout = dir.path().join("img");
    let stray = layout.join("blobs/sha256").join("0".repeat(64));
    std::fs::write(&stray, b"nothing refers to this").unwrap();
    ok(ocikit()
        .args(["gc", "--min-age", "0", "--layout"])
        .arg(&layout));
    assert!(!stray.exists());
    ok(ocikit().args(["fsck", "--layout"]).arg(&layout));
    ok(ocikit().args(["inspect", &src]));
    // Flip a byte of the layer.
    let manifest: serde_json::Value =
        serde_json::from_str(&ok(ocikit().args(["inspect", "--raw", &src]))).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let path = layout
        .join("blobs/sha256")
        .join(layer.strip_prefix("sha256:").unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let out = output(ocikit().args(["fsck", "--layout"]).arg(&layout));
    assert_eq!(out.status.code(), Some(6), "{out:?}");
}

/// Every subcommand that takes an image, given a missing image, a bad reference and an
/// unreachable registry: one line on stderr naming the thing, and the documented code.
#[test]
fn errors_are_one_line_with_documented_codes() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry();
    let missing = format!("docker://{reg}/{}:nope", repo("missing"));
    // A port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = format!("docker://127.0.0.1:{closed}/x:1");
    let bad = "docker://UPPER/Case::";
    let layout = format!("oci:{}:t", dir.path().join("out").display());
    let store = dir.path().join("store");
    let root = store.to_str().unwrap();
    let subcommands: Vec<(&str, Vec<String>)> = vec![
        ("copy", vec!["IMAGE".into(), layout.clone()]),
        ("inspect", vec!["IMAGE".into()]),
        ("delete", vec!["IMAGE".into()]),
        (
            "unpack",
            vec!["IMAGE".into(), dir.path().join("b").display().to_string()],
        ),
        ("pull", vec!["--root".into(), root.into(), "IMAGE".into()]),
        (
            "run",
            vec!["--root".into(), root.into(), "IMAGE".into(), "true".into()],
        ),
        (
            "work",
            vec!["from".into(), "--root".into(), root.into(), "IMAGE".into()],
        ),
    ];
    for (sub, args) in &subcommands {
        for (image, code, names) in [
            (
                missing.as_str(),
                if *sub == "run" { 125 } else { 3 },
                "nope",
            ),
            (bad, 2, "UPPER"),
            (
                unreachable.as_str(),
                if *sub == "run" { 125 } else { 5 },
                "127.0.0.1",
            ),
        ] {
            let args: Vec<String> = args
                .iter()
                .map(|a| {
                    if a == "IMAGE" {
                        image.to_owned()
                    } else {
                        a.clone()
                    }
                })
                .collect();
            let out = output(ocikit().arg(sub).args(&args));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(code), "{sub} {image}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{sub} {image}: {stderr}");
            assert!(stderr.starts_with(&format!("ocikit {sub}: ")), "{stderr}");
            assert!(stderr.contains(names), "{sub} {image}: {stderr}");
        }
    }
    // list-tags of a repository that does not exist, and of an unreachable registry.
    let out = output(ocikit().args(["list-tags", &format!("docker://{reg}/{}", repo("none"))]));
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let out = output(ocikit().args(["list-tags", "docker://127.0.0.1:1/x"]));
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    // A bad argument prints the subcommand's usage (clap), exit 2.
    let out = output(ocikit().args(["copy", "only-one"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage: ocikit copy"));
}

/// The completion scripts name every subcommand.
#[test]
fn completions_for_three_shells() {
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(ocikit().args(["completion", shell]));
        for sub in [
            "copy",
            "inspect",
            "list-tags",
            "login",
            "unpack",
            "run",
            "serve",
        ] {
            assert!(script.contains(sub), "{shell} completion lacks {sub}");
        }
    }
}

/// `generate-key`, `sign` with the cosign key, `verify` against a policy that requires it:
/// accepted when signed, refused (exit 6) for an unsigned image; `copy --policy` refuses the
/// unsigned one too, and writes nothing.
#[test]
fn sign_and_verify_with_a_cosign_key() {
    let dir = tempfile::tempdir().unwrap();
    let src = busybox_image(dir.path());
    let prefix = dir.path().join("release");
    ok(ocikit()
        .env("COSIGN_PASSWORD", "pw")
        .args(["generate-key", "--output-key-prefix"])
        .arg(&prefix));
    let key = prefix.with_extension("key");
    let public = prefix.with_extension("pub");
    assert!(
        std::fs::read_to_string(&public)
            .unwrap()
            .contains("PUBLIC KEY")
    );
    let again = output(
        ocikit()
            .args(["generate-key", "--output-key-prefix"])
            .arg(&prefix),
    );
    assert_eq!(
        again.status.code(),
        Some(1),
        "an existing key is never replaced"
    );

    let namespace = repo("trust");
    let signed = format!("docker://{}/{namespace}/signed:1", registry());
    let unsigned = format!("docker://{}/{namespace}/unsigned:1", registry());
    ok(ocikit().args(["copy", "-q", &src, &signed]));
    ok(ocikit().args(["copy", "-q", &src, &unsigned]));
    let regd = dir.path().join("registries.d");
    std::fs::create_dir_all(&regd).unwrap();
    std::fs::write(
        regd.join("r.yaml"),
        format!(
            "docker:\n  {}:\n    use-sigstore-attachments: true\n",
            registry()
        ),
    )
    .unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        format!(
            r#"{{"default": [{{"type": "reject"}}],
  "transports": {{"docker": {{"{}/{namespace}": [{{"type": "sigstoreSigned", "keyPath": "{}",
    "signedIdentity": {{"type": "matchRepository"}}}}]}}}}}}"#,
            registry(),
            public.display()
        ),
    )
    .unwrap();
    let trust = [
        "--policy".to_owned(),
        policy.display().to_string(),
        "--registries.d".to_owned(),
        regd.display().to_string(),
    ];
    ok(ocikit()
        .env("COSIGN_PASSWORD", "pw")
        .args(["sign", "--sign-by-sigstore-private-key"])
        .arg(&key)
        .args(&trust)
        .arg(&signed));
    let accepted = ok(ocikit().arg("verify").args(&trust).arg(&signed));
    assert!(accepted.starts_with("Accepted"), "{accepted}");
    let refused = output(ocikit().arg("verify").args(&trust).arg(&unsigned));
    assert_eq!(refused.status.code(), Some(6), "{refused:?}");
    assert_eq!(String::from_utf8_lossy(&refused.stderr).lines().count(), 1);
    let out = dir.path().join("never");
    let copied = output(
        ocikit()
            .arg("copy")
            .args(&trust)
            .arg(&unsigned)
            .arg(format!("oci:{}:x", out.display())),
    );
    assert_eq!(copied.status.code(), Some(6), "{copied:?}");
    assert!(
        !out.join("index.json").exists(),
        "a refused image is never written"
    );
}

/// `sync` of a repository's tags to directories and back to another repository; the same
/// from skopeo's YAML list with a tag regex.
#[test]
fn sync_repository_and_yaml_list() {
    let dir = tempfile::tempdir().unwrap();
    let src = busybox_image(dir.path());
    let name = repo("sync");
    let source = format!("{}/team/{name}", registry());
    for tag in ["1.0", "1.1", "2.0"] {
        ok(ocikit().args(["copy", "-q", &src, &format!("docker://{source}:{tag}")]));
    }
    let usb = dir.path().join("usb");
    ok(ocikit()
        .args(["sync", "-q", "--src", "docker", "--dest", "oci", &source])
        .arg(&usb));
    let layout = usb.join(&name);
    for tag in ["1.0", "1.1", "2.0"] {
        ok(Command::new("umoci")
            .args(["stat", "--image"])
            .arg(format!("{}:{tag}", layout.display())));
    }
    let mirror = format!("{}/{}", registry(), repo("mirror"));
    ok(ocikit()
        .args(["sync", "-q", "--src", "oci", "--dest", "docker"])
        .arg(&layout)
        .arg(&mirror));
    let tags = ok(Command::new("skopeo").args([
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{mirror}/{name}"),
    ]));
    assert_eq!(sorted_tags(&tags), ["1.0", "1.1", "2.0"], "{tags}");

    let yaml = dir.path().join("images.yaml");
    std::fs::write(
        &yaml,
        format!(
            "{}:\n  tls-verify: false\n  images-by-tag-regex:\n    team/{name}: ^1\\.\n",
            registry()
        ),
    )
    .unwrap();
    let second = format!("{}/{}", registry(), repo("yaml"));
    ok(ocikit()
        .args(["sync", "-q", "--src", "yaml", "--dest", "docker"])
        .arg(&yaml)
        .arg(&second));
    let tags = ok(Command::new("skopeo").args([
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{second}/{name}"),
    ]));
    assert_eq!(sorted_tags(&tags), ["1.0", "1.1"], "{tags}");
    std::fs::write(&yaml, "r:\n  imagez: {}\n").unwrap();
    let bad = output(
        ocikit()
            .args(["sync", "--src", "yaml", "--dest", "oci"])
            .arg(&yaml)
            .arg(dir.path()),
    );
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
}

/// The tags of skopeo's `list-tags` JSON, sorted (registries list them in any order).
fn sorted_tags(json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let mut tags: Vec<String> = v["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    tags.sort();
    tags
}

/// `build` from scratch and on a base; umoci reads the result and its config has what was
/// asked; `artifact push`, `attach`, `list`, `fetch` round-trip a file.
#[test]
fn build_and_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let src = busybox_image(dir.path());
    let extra = dir.path().join("extra");
    std::fs::create_dir_all(extra.join("etc")).unwrap();
    std::fs::write(extra.join("etc/app.conf"), "mode=test\n").unwrap();
    let out = dir.path().join("built");
    let built = format!("oci:{}:app", out.display());
    let digest = ok(ocikit()
        .args(["build", "-q", "--from", &src, "--layer"])
        .arg(&extra)
        .args(["--env", "MODE=test", "--workdir", "/etc", "--label", "a=b"])
        .args(["--entrypoint", "/bin/cat", "--cmd", "app.conf", &built]));
    assert!(digest.starts_with("sha256:"), "{digest}");
    let config: serde_json::Value =
        serde_json::from_str(&ok(ocikit().args(["inspect", "--config", &built]))).unwrap();
    assert_eq!(config["config"]["WorkingDir"], "/etc", "{config}");
    assert_eq!(config["config"]["Labels"]["a"], "b", "{config}");
    assert_eq!(
        config["rootfs"]["diff_ids"].as_array().unwrap().len(),
        2,
        "{config}"
    );
    let bundle = dir.path().join("bundle");
    ok(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:app", out.display()))
        .arg(&bundle));
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/etc/app.conf")).unwrap(),
        "mode=test\n"
    );
    let missing = output(
        ocikit()
            .args(["build", "--from", "scratch", "--layer"])
            .arg(dir.path().join("nope"))
            .arg(format!("oci:{}:x", dir.path().join("o2").display())),
    );
    assert_eq!(missing.status.code(), Some(3), "{missing:?}");

    let image = format!("docker://{}/{}:1", registry(), repo("artifact"));
    ok(ocikit().args(["copy", "-q", &built, &image]));
    let sbom = dir.path().join("sbom.json");
    std::fs::write(&sbom, br#"{"packages": []}"#).unwrap();
    let t = "application/vnd.example.sbom";
    let attached = ok(ocikit()
        .args(["artifact", "attach", "--type", t, &image])
        .arg(&sbom));
    let listed = ok(ocikit().args(["artifact", "list", &image]));
    assert!(
        listed.contains(attached.trim()) && listed.contains(t),
        "{listed}"
    );
    let fetched = dir.path().join("fetched");
    let name = image.rsplit_once(':').unwrap().0;
    ok(ocikit()
        .args(["artifact", "fetch", &format!("{name}@{}", attached.trim())])
        .arg(&fetched));
    assert_eq!(
        std::fs::read(fetched.join("sbom.json")).unwrap(),
        std::fs::read(&sbom).unwrap()
    );
}

/// Every subcommand that reads a registry, given refused credentials: exit 4 (`run`: 125),
/// one line naming the registry.
#[test]
fn bad_credentials_are_one_line_and_exit_4() {
    let dir = tempfile::tempdir().unwrap();
    let reg = htpasswd_registry(dir.path());
    let src = busybox_image(dir.path());
    let image = format!("docker://{}/team/app:1", reg.addr);
    ok(ocikit().args(["copy", "-q", "--dest-creds", "alice:s3cret", &src, &image]));
    let store = dir.path().join("store");
    let root = store.to_str().unwrap();
    let bare = image.strip_prefix("docker://").unwrap();
    let out_layout = format!("oci:{}:x", dir.path().join("out").display());
    let bundle = dir.path().join("bundle").display().to_string();
    // `work push` of an image stored (with the right credentials) in a store of its own.
    let pushing = dir.path().join("pushing");
    let pushing_root = pushing.to_str().unwrap();
    ok(ocikit().args([
        "pull",
        "-q",
        "--root",
        pushing_root,
        "--creds",
        "alice:s3cret",
        bare,
    ]));
    ok(ocikit().args(["work", "--root", pushing_root, "from", "--name", "c", bare]));
    ok(ocikit().args(["work", "--root", pushing_root, "commit", "c", "app"]));
    let pushed = format!("docker://{}/team/app:2", reg.addr);
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "copy",
            vec!["--src-creds", "alice:wrong", &image, &out_layout],
        ),
        ("inspect", vec!["--creds", "alice:wrong", &image]),
        (
            "list-tags",
            vec!["--creds", "alice:wrong", image.rsplit_once(':').unwrap().0],
        ),
        ("delete", vec!["--creds", "alice:wrong", &image]),
        ("unpack", vec!["--creds", "alice:wrong", &image, &bundle]),
        ("pull", vec!["--root", root, "--creds", "alice:wrong", bare]),
        (
            "run",
            vec!["--root", root, "--creds", "alice:wrong", bare, "true"],
        ),
        ("verify", vec!["--creds", "alice:wrong", &image]),
        ("artifact", vec!["list", "--creds", "alice:wrong", &image]),
        (
            "work",
            vec!["from", "--root", root, "--creds", "alice:wrong", bare],
        ),
        (
            "work",
            vec![
                "push",
                "--root",
                pushing_root,
                "--creds",
                "alice:wrong",
                "app",
                &pushed,
            ],
        ),
    ];
    for (sub, args) in cases {
        let out = output(
            ocikit()
                .arg(sub)
                .args(&args)
                .env("REGISTRY_AUTH_FILE", "/nonexistent"),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = if sub == "run" { 125 } else { 4 };
        assert_eq!(out.status.code(), Some(code), "{sub}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{sub}: {stderr}");
        assert!(stderr.contains(&reg.addr), "{sub}: {stderr}");
    }
}

/// `copy --dest-compress-format zstd`: the layers are stored as zstd, with the same
/// diff_ids; skopeo reads them (it decompresses them into gzip layers of its own) and umoci
/// unpacks skopeo's copy to the image's files; our copy back to gzip gives gzip layers umoci
/// unpacks too. (Debian's umoci 0.4.7 reads no zstd layer at all, whoever wrote it: "blob is
/// not correct mediatype".)
#[test]
fn copy_recompresses_layers_readably_for_skopeo_and_umoci() {
    let dir = tempfile::tempdir().unwrap();
    let src = busybox_image(dir.path());
    let zstd = format!("docker://{}/{}:z", registry(), repo("zstd"));
    ok(ocikit().args(["copy", "-q", "--dest-compress-format", "zstd", &src, &zstd]));
    let manifest: serde_json::Value =
        serde_json::from_str(&ok(ocikit().args(["inspect", "--raw", &zstd]))).unwrap();
    assert_eq!(
        manifest["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd",
        "{manifest}"
    );
    let config = |image: &str| -> serde_json::Value {
        serde_json::from_str(&ok(ocikit().args(["inspect", "--config", image]))).unwrap()
    };
    assert_eq!(config(&zstd)["rootfs"], config(&src)["rootfs"]);
    let theirs = dir.path().join("theirs");
    ok(Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--dest-compress-format",
            "gzip",
        ])
        .arg(&zstd)
        .arg(format!("oci:{}:z", theirs.display())));
    let bundle = dir.path().join("bundle");
    ok(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:z", theirs.display()))
        .arg(&bundle));
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/home/user/note")).unwrap(),
        "hello\n"
    );
    let gz = dir.path().join("gz");
    ok(ocikit()
        .args(["copy", "-q", "--dest-compress-format", "gzip", &zstd])
        .arg(format!("oci:{}:g", gz.display())));
    let back: serde_json::Value = serde_json::from_str(&ok(ocikit()
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:g", gz.display()))))
    .unwrap();
    assert_eq!(
        back["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let bundle = dir.path().join("bundle-gz");
    ok(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:g", gz.display()))
        .arg(&bundle));
    assert!(bundle.join("rootfs/bin/busybox").exists());
}

/// Under a pseudo-terminal (`script` gives `copy` one), a 4-layer copy draws a line per
/// blob (its short digest, `done`) and ends with the summary; piped, it prints no control
/// characters.
#[test]
fn progress_on_a_terminal_and_none_when_piped() {
    let dir = tempfile::tempdir().unwrap();
    let mut layers = Vec::new();
    for i in 0..4 {
        let d = dir.path().join(format!("layer{i}"));
        std::fs::create_dir_all(&d).unwrap();
        // Incompressible bytes, so each layer takes a moment to move.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ i;
        let data: Vec<u8> = (0..(2 << 20))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(d.join(format!("data{i}")), data).unwrap();
        layers.push(d);
    }
    let src = format!("oci:{}:four", dir.path().join("img").display());
    let mut build = ocikit();
    build.args(["build", "-q", "--from", "scratch"]);
    for l in &layers {
        build.arg("--layer").arg(l);
    }
    ok(build.arg(&src));
    let manifest: serde_json::Value =
        serde_json::from_str(&ok(ocikit().args(["inspect", "--raw", &src]))).unwrap();
    let layer_digests: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap()[..19].to_owned())
        .collect();
    assert_eq!(layer_digests.len(), 4);

    let dest = format!("docker://{}/{}:1", registry(), repo("progress"));
    let command = format!("{OCIKIT} copy {src} {dest}");
    let out = ok(Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("TERM", "xterm"));
    for d in &layer_digests {
        assert!(out.contains(d.as_str()), "no line for {d}: {out:?}");
    }
    assert!(out.contains("done"), "{out:?}");
    assert!(
        out.contains('\u{1b}'),
        "a terminal gets a drawn display: {out:?}"
    );
    assert!(out.contains("Copied 5 blobs"), "the summary: {out:?}");

    // Piped: the summary only, no control characters.
    let dest2 = format!("docker://{}/{}:1", registry(), repo("progress"));
    let piped = output(ocikit().args(["copy", &src, &dest2]));
    assert!(piped.status.success(), "{piped:?}");
    let all = [piped.stdout.as_slice(), piped.stderr.as_slice()].concat();
    assert!(
        !all.iter().any(|&b| b == 0x1b || b == b'\r'),
        "control characters when piped: {:?}",
        String::from_utf8_lossy(&all)
    );
    assert!(String::from_utf8_lossy(&all).contains("Copied 5 blobs"));
}
