//! `oci-runtime` as a real unprivileged user, against `runc --rootless` as the same user.
//!
//! Needs root (to switch to the user with `runuser`) and the user `ocikit-rootless` with
//! ranges in `/etc/subuid` and `/etc/subgid`, which `scripts/test.sh` creates. Without
//! them every test here fails, saying so. Everything the user runs gets a clean
//! environment and a private directory under `/tmp` that the user owns (its `HOME` and
//! `XDG_RUNTIME_DIR`); the binary it runs is a copy in that directory.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

const USER: &str = "ocikit-rootless";
const BIN: &str = env!("CARGO_BIN_EXE_oci-runtime");
const APPLETS: &[&str] = &["sh", "id", "stat", "cat", "echo", "ls", "true"];

/// The test user: uid, gid and its subordinate uid and gid ranges `(start, count)`.
struct User {
    uid: u32,
    gid: u32,
    subuid: (u32, u32),
    subgid: (u32, u32),
}

fn id_of(flag: &str) -> u32 {
    let out = std::process::Command::new("id")
        .args([flag, USER])
        .output()
        .expect("running id");
    assert!(
        out.status.success(),
        "the rootless tests need the unprivileged user {USER} (with /etc/subuid and \
         /etc/subgid ranges); scripts/test.sh creates it when run as root"
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn range(file: &str, uid: u32) -> (u32, u32) {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split(':').collect();
            (f.len() == 3 && (f[0] == USER || f[0] == uid.to_string()))
                .then(|| Some((f[1].parse().ok()?, f[2].parse().ok()?)))
                .flatten()
        })
        .next()
        .unwrap_or_else(|| panic!("{file} grants {USER} no range: scripts/test.sh adds one"))
}

fn user() -> User {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the rootless tests run as root, to switch to the unprivileged user {USER}"
    );
    let (uid, gid) = (id_of("-u"), id_of("-g"));
    assert_ne!(uid, 0, "{USER} must not be root");
    User {
        uid,
        gid,
        subuid: range("/etc/subuid", uid),
        subgid: range("/etc/subgid", uid),
    }
}

/// A directory under `/tmp` that the user owns: its `HOME`, `XDG_RUNTIME_DIR` (`run/`) and
/// a copy of `oci-runtime` (`bin/`). Removed, as root, when dropped.
struct Home {
    dir: tempfile::TempDir,
    user: User,
}

impl Home {
    fn new() -> Home {
        let user = user();
        let dir = tempfile::Builder::new()
            .prefix("ocikit-rootless-")
            .tempdir_in("/tmp")
            .unwrap();
        let home = Home { dir, user };
        for d in ["", "run", "bin"] {
            let p = home.path().join(d);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        std::fs::copy(BIN, home.bin()).unwrap();
        for p in [
            home.path().to_path_buf(),
            home.path().join("run"),
            home.path().join("bin"),
            home.bin(),
        ] {
            home.give(&p);
        }
        home
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn bin(&self) -> PathBuf {
        self.path().join("bin/oci-runtime")
    }

    fn give(&self, path: &Path) {
        self.chown(path, self.user.uid, self.user.gid);
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
    }

    /// Runs `args` as the user in `cwd`, with a clean environment (`env` added).
    fn run(&self, cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
        let home = self.path().to_str().unwrap();
        let run = self.path().join("run");
        let mut cmd = std::process::Command::new("runuser");
        cmd.args(["-u", USER, "--", "env", "-i"])
            .arg(format!("HOME={home}"))
            .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin");
        if !env.iter().any(|(k, _)| *k == "XDG_RUNTIME_DIR") {
            cmd.arg(format!("XDG_RUNTIME_DIR={}", run.display()));
        }
        for (k, v) in env.iter().filter(|(_, v)| !v.is_empty()) {
            cmd.arg(format!("{k}={v}"));
        }
        cmd.args(args)
            .current_dir(cwd)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("running runuser")
    }

    /// Runs `args` as the user in `cwd`, standard output and error to the file `log`.
    fn run_to(&self, cwd: &Path, log: &Path, args: &[&str]) -> std::process::ExitStatus {
        let file = std::fs::File::create(log).unwrap();
        self.give(log);
        let mut cmd = std::process::Command::new("runuser");
        cmd.args(["-u", USER, "--", "env", "-i"])
            .arg(format!("HOME={}", self.path().display()))
            .arg(format!(
                "XDG_RUNTIME_DIR={}",
                self.path().join("run").display()
            ))
            .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .args(args)
            .current_dir(cwd)
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .status()
            .expect("running runuser")
    }

    /// A bundle directory of the user's with a busybox rootfs, all of it the user's (root's
    /// in a container that maps the user to root).
    fn bundle(&self, name: &str) -> PathBuf {
        let b = self.path().join(name);
        let rootfs = b.join("rootfs");
        for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "home/app"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for a in APPLETS {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
        std::fs::write(rootfs.join("home/app/file"), "app's\n").unwrap();
        std::fs::set_permissions(rootfs.join("tmp"), std::fs::Permissions::from_mode(0o1777))
            .unwrap();
        for entry in walk(&b) {
            self.give(&entry);
        }
        b
    }

    /// The uid and gid the user's namespace (`0 → user, 1.. → its subordinate range`)
    /// shows as `id` on the host.
    fn host_ids(&self, id: u32) -> (u32, u32) {
        (self.user.subuid.0 + id - 1, self.user.subgid.0 + id - 1)
    }
}

/// Every path below `dir` (itself included), without following symlinks.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let p = out[i].clone();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                out.push(e.unwrap().path());
            }
        }
        i += 1;
    }
    out
}

fn text(out: &Output) -> (Option<i32>, String, String) {
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn read_config(bundle: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap()
}

fn write_config(home: &Home, bundle: &Path, config: &Value) {
    let path = bundle.join("config.json");
    std::fs::write(&path, serde_json::to_vec_pretty(config).unwrap()).unwrap();
    home.give(&path);
}

/// Runs the bundle with `oci-runtime` (the user's copy) and with `runc`, each with a state
/// root in the user's directory; returns both results.
fn ours_and_runcs(home: &Home, bundle: &Path, name: &str) -> [(Option<i32>, String, String); 2] {
    let ours = home.run(bundle, &[], &[home.bin().to_str().unwrap(), "run", name]);
    let runc_root = home.path().join("runc");
    let theirs = home.run(
        bundle,
        &[],
        &["runc", "--root", runc_root.to_str().unwrap(), "run", name],
    );
    [text(&ours), text(&theirs)]
}

/// Nothing in the user's directory belongs to root: whatever the user (or a runtime it ran)
/// made is the user's or one of its subordinate ids'.
fn assert_nothing_of_roots(home: &Home) {
    for p in walk(home.path()) {
        let m = std::fs::symlink_metadata(&p).unwrap();
        assert_ne!(m.uid(), 0, "{} belongs to root", p.display());
        let uid_ok = m.uid() == home.user.uid
            || (home.user.subuid.0..home.user.subuid.0 + home.user.subuid.1).contains(&m.uid());
        assert!(uid_ok, "{} belongs to uid {}", p.display(), m.uid());
    }
}

/// Nothing of the user's where other users' files live: the shared temporary and runtime
/// directories hold nothing of it but the tests' own directories.
fn assert_nothing_outside(uid: u32) {
    for dir in ["/tmp", "/var/tmp", "/dev/shm", "/run"] {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            assert!(
                meta.uid() != uid || name.starts_with("ocikit-rootless-"),
                "{} belongs to the test user",
                e.path().display()
            );
        }
    }
}

fn comparable(v: &Value) -> Value {
    let linux = &v["linux"];
    let mut ns: Vec<String> = linux["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap().to_string())
        .collect();
    ns.sort();
    let sys = v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/sys")
        .cloned()
        .unwrap();
    let id_options: Vec<&Value> = v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["options"].as_array().into_iter().flatten())
        .filter(|o| {
            let o = o.as_str().unwrap();
            o.starts_with("uid=") || o.starts_with("gid=")
        })
        .collect();
    json!({
        "user namespace": ns.contains(&"user".to_string()),
        "network namespace": ns.contains(&"network".to_string()),
        "uidMappings": linux["uidMappings"],
        "gidMappings": linux["gidMappings"],
        "sys": sys,
        "resources": linux.get("resources"),
        "uid/gid mount options": id_options,
    })
}

#[test]
fn spec_rootless_then_run_shows_root_inside_as_runc_does() {
    let home = Home::new();
    let bundle = home.bundle("spec");
    let ours = home.run(
        &bundle,
        &[],
        &[home.bin().to_str().unwrap(), "spec", "--rootless"],
    );
    assert!(ours.status.success(), "{:?}", text(&ours));
    let runc_dir = home.path().join("runc-spec");
    std::fs::create_dir(&runc_dir).unwrap();
    home.give(&runc_dir);
    let theirs = home.run(&runc_dir, &[], &["runc", "spec", "--rootless"]);
    assert!(theirs.status.success(), "{:?}", text(&theirs));
    let (mut config, runcs) = (read_config(&bundle), read_config(&runc_dir));
    // Structurally the same on what makes it rootless: a user namespace and no network
    // one, the caller mapped to root, /sys bound, no limits, no uid=/gid= options.
    assert_eq!(comparable(&config), comparable(&runcs));
    assert_eq!(
        config["linux"]["uidMappings"],
        json!([{"containerID": 0, "hostID": home.user.uid, "size": 1}])
    );
    assert_eq!(
        config["linux"]["gidMappings"],
        json!([{"containerID": 0, "hostID": home.user.gid, "size": 1}])
    );
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = json!(["sh", "-c", "id; stat -c '%u:%g %n' / /home/app/file"]);
    write_config(&home, &bundle, &config);
    let [ours, runcs] = ours_and_runcs(&home, &bundle, "spec-run");
    assert_eq!(ours.0, Some(0), "{ours:?}");
    assert!(ours.1.starts_with("uid=0(root) gid=0(root)"), "{ours:?}");
    // The rootfs is the user's: root's inside.
    assert!(ours.1.contains("0:0 /home/app/file"), "{ours:?}");
    assert_eq!(ours, runcs, "oci-runtime (left) and runc (right) differ");
    assert_nothing_of_roots(&home);
    assert_nothing_outside(home.user.uid);
}

#[test]
fn subordinate_ranges_show_the_images_owners_as_runc_does() {
    let home = Home::new();
    let bundle = home.bundle("owners");
    // What unpacking for this user writes: container uid N at subuid start + N - 1.
    let (uid, gid) = home.host_ids(1000);
    for p in ["home/app", "home/app/file"] {
        home.chown(&bundle.join("rootfs").join(p), uid, gid);
    }
    let (su, sg) = (home.user.subuid, home.user.subgid);
    let mut config = json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "owners",
        "process": {
            "args": ["sh", "-c",
                "id; stat -c '%u:%g %n' /home/app /home/app/file /bin/busybox; cat /proc/self/uid_map"],
            "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}
        },
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/sys", "type": "none", "source": "/sys",
             "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"},
                           {"type": "uts"}, {"type": "user"}],
            "uidMappings": [{"containerID": 0, "hostID": home.user.uid, "size": 1},
                            {"containerID": 1, "hostID": su.0, "size": su.1}],
            "gidMappings": [{"containerID": 0, "hostID": home.user.gid, "size": 1},
                            {"containerID": 1, "hostID": sg.0, "size": sg.1}]
        }
    });
    write_config(&home, &bundle, &config);
    let [ours, runcs] = ours_and_runcs(&home, &bundle, "owners");
    assert_eq!(ours.0, Some(0), "{ours:?}");
    assert!(ours.1.contains("1000:1000 /home/app/file"), "{ours:?}");
    assert!(ours.1.contains("1000:1000 /home/app\n"), "{ours:?}");
    assert!(ours.1.contains("0:0 /bin/busybox"), "{ours:?}");
    assert_eq!(ours, runcs, "oci-runtime (left) and runc (right) differ");

    // As uid 1000 inside, the container process is the subordinate id on the host.
    config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    config["process"]["args"] = json!([
        "sh",
        "-c",
        "id -u; echo mine > /home/app/new; stat -c '%u:%g' /home/app/new"
    ]);
    write_config(&home, &bundle, &config);
    let [ours, runcs] = ours_and_runcs(&home, &bundle, "owners-app");
    assert_eq!(ours, (Some(0), "1000\n1000:1000\n".into(), String::new()));
    assert_eq!(ours, runcs, "oci-runtime (left) and runc (right) differ");
    let made = std::fs::metadata(bundle.join("rootfs/home/app/new")).unwrap();
    assert_eq!((made.uid(), made.gid()), (uid, gid));
    assert_nothing_of_roots(&home);
    assert_nothing_outside(home.user.uid);
}

#[test]
fn limits_where_cgroups_cannot_be_written_are_an_error_naming_them() {
    let home = Home::new();
    let bundle = home.bundle("limits");
    let out = home.run(
        &bundle,
        &[],
        &[home.bin().to_str().unwrap(), "spec", "--rootless"],
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let mut config = read_config(&bundle);
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = json!(["echo", "ran"]);
    write_config(&home, &bundle, &config);
    // Without limits it runs (cgroups skipped: this user cannot write them here).
    let out = home.run(&bundle, &[], &[home.bin().to_str().unwrap(), "run", "free"]);
    assert_eq!(text(&out), (Some(0), "ran\n".into(), String::new()));

    config["linux"]["resources"] = json!({"memory": {"limit": 67108864}});
    write_config(&home, &bundle, &config);
    let out = home.run(
        &bundle,
        &[],
        &[home.bin().to_str().unwrap(), "run", "limited"],
    );
    let (code, stdout, stderr) = text(&out);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stdout, "", "the container must not run without its limit");
    assert!(
        stderr.contains("linux.resources.memory.limit") && stderr.contains("67108864"),
        "{stderr}"
    );
    // Nothing is left: no state, so the id is free again.
    let list = home.run(&bundle, &[], &[home.bin().to_str().unwrap(), "list", "-q"]);
    assert_eq!(text(&list), (Some(0), String::new(), String::new()));

    // --rootless false: cgroup permission errors are no longer ignored.
    config["linux"]["resources"] = Value::Null;
    write_config(&home, &bundle, &config);
    let out = home.run(
        &bundle,
        &[],
        &[
            home.bin().to_str().unwrap(),
            "--rootless",
            "false",
            "run",
            "strict",
        ],
    );
    let (code, _, stderr) = text(&out);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("cgroup") && stderr.contains("ermission denied"),
        "{stderr}"
    );
    assert_nothing_of_roots(&home);
    assert_nothing_outside(home.user.uid);
}

#[test]
fn state_root_and_unsupported_flags_are_explicit() {
    let home = Home::new();
    let bundle = home.bundle("flags");
    let bin = home.bin();
    let bin = bin.to_str().unwrap();
    // No XDG_RUNTIME_DIR and no --root: an error naming --root, not /run/ocikit.
    let out = home.run(&bundle, &[("XDG_RUNTIME_DIR", "")], &[bin, "list"]);
    let (code, _, stderr) = text(&out);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("--root") && stderr.contains("XDG_RUNTIME_DIR"),
        "{stderr}"
    );
    // With it, state goes there.
    let out = home.run(&bundle, &[], &[bin, "spec", "--rootless"]);
    assert!(out.status.success());
    let mut config = read_config(&bundle);
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = json!(["true"]);
    write_config(&home, &bundle, &config);
    // A created container keeps the standard output and error it was given: not pipes
    // this test would wait on.
    let log = home.path().join("create.log");
    let created = home.run_to(&bundle, &log, &[bin, "create", "kept"]);
    assert!(
        created.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert!(home.path().join("run/ocikit/kept/state.json").exists());
    let out = home.run(&bundle, &[], &[bin, "delete", "--force", "kept"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(!home.path().join("run/ocikit/kept").exists());

    let out = home.run(&bundle, &[], &[bin, "--systemd-cgroup", "list"]);
    let (code, _, stderr) = text(&out);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("not supported: --systemd-cgroup"),
        "{stderr}"
    );
    let out = home.run(&bundle, &[], &[bin, "--rootless", "maybe", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert_nothing_of_roots(&home);
    assert_nothing_outside(home.user.uid);
}
