//! The `ocikit` command as a real unprivileged user (rootless): `run` from the store, working
//! containers (`work`), and `unpack` into a bundle that `runc` and `oci-runtime` run as that user, with the image's
//! owners.
//!
//! Needs root (to switch users with `runuser`), the user `ocikit-rootless` with
//! `/etc/subuid` and `/etc/subgid` ranges, `uidmap`, runc, busybox-static and the registry
//! of `scripts/test.sh`, which provides them all; fails without them. The user gets a clean
//! environment and a private directory under `/tmp` (its `HOME`, `XDG_RUNTIME_DIR` and
//! `XDG_DATA_HOME`), and runs copies of the binaries placed there.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ocikit::build::{BuildSpec, build_image};
use ocikit::copy::{CopyOptions, Location, copy};
use ocikit::layout::Layout;

mod common;
use common::{GpgKey, busybox_tree, registry, workspace_binary};

const USER: &str = "ocikit-rootless";

/// A directory of the user's under `/tmp`, removed (as root) on drop.
struct Home {
    dir: tempfile::TempDir,
    uid: u32,
    gid: u32,
    subuid: (u32, u32),
}

fn id_of(flag: &str) -> u32 {
    let out = Command::new("id").args([flag, USER]).output().unwrap();
    assert!(
        out.status.success(),
        "the rootless tests need the user {USER} with /etc/subuid and /etc/subgid ranges: \
         scripts/test.sh creates it when run as root"
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

impl Home {
    fn new() -> Home {
        assert!(
            rustix::process::geteuid().is_root(),
            "the rootless tests run as root, to switch to {USER}"
        );
        let (uid, gid) = (id_of("-u"), id_of("-g"));
        let text = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
        let subuid = text
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() == 3 && f[0] == USER)
                    .then(|| (f[1].parse().unwrap(), f[2].parse().unwrap()))
            })
            .next()
            .unwrap_or_else(|| {
                panic!("/etc/subuid grants {USER} no range (scripts/test.sh adds one)")
            });
        let dir = tempfile::Builder::new()
            .prefix("ocikit-rootless-")
            .tempdir_in("/tmp")
            .unwrap();
        let home = Home {
            dir,
            uid,
            gid,
            subuid,
        };
        for d in ["", "run", "data", "bin"] {
            let p = home.path().join(d);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
            home.give(&p);
        }
        for (name, from) in [
            ("oci-runtime", workspace_binary("oci-runtime")),
            ("ocikit", workspace_binary("ocikit")),
        ] {
            let to = home.path().join("bin").join(name);
            std::fs::copy(from, &to).unwrap();
            home.give(&to);
        }
        home
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn bin(&self, name: &str) -> String {
        self.path().join("bin").join(name).display().to_string()
    }

    fn give(&self, p: &Path) {
        std::os::unix::fs::lchown(p, Some(self.uid), Some(self.gid)).unwrap();
    }

    /// Runs `args` as the user, in its directory, with a clean environment.
    fn run(&self, args: &[&str]) -> Output {
        let home = self.path().display().to_string();
        Command::new("runuser")
            .args(["-u", USER, "--", "env", "-i"])
            .arg(format!("HOME={home}"))
            .arg(format!("XDG_RUNTIME_DIR={home}/run"))
            .arg(format!("XDG_DATA_HOME={home}/data"))
            .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .args(args)
            .current_dir(self.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    /// Nothing of root's in the user's directory, only the user's and its subordinate ids'.
    fn assert_nothing_of_roots(&self) {
        let mut todo = vec![self.path().to_path_buf()];
        while let Some(p) = todo.pop() {
            let m = std::fs::symlink_metadata(&p).unwrap();
            let ok = m.uid() == self.uid
                || (self.subuid.0..self.subuid.0 + self.subuid.1).contains(&m.uid());
            assert!(ok, "{} belongs to uid {}", p.display(), m.uid());
            if m.is_dir() {
                todo.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            }
        }
        // Nor anything of the user's where other users' files live, but the tests' own
        // directories.
        for dir in ["/tmp", "/var/tmp", "/dev/shm", "/run"] {
            for e in std::fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                let meta = std::fs::symlink_metadata(e.path()).unwrap();
                assert!(
                    meta.uid() != self.uid || name.starts_with("ocikit-rootless-"),
                    "{} belongs to the test user",
                    e.path().display()
                );
            }
        }
    }
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// An image of busybox whose `/home/app` belongs to 1000:1000, whose command prints who
/// runs it and who owns what; pushed to the test registry. Returns its `docker://` text.
fn image(dir: &Path) -> String {
    let tree = dir.join("tree");
    busybox_tree(&tree);
    for applet in ["stat", "touch"] {
        std::os::unix::fs::symlink("busybox", tree.join("bin").join(applet)).unwrap();
    }
    std::fs::create_dir_all(tree.join("home/app")).unwrap();
    std::fs::write(tree.join("home/app/file"), "app's\n").unwrap();
    std::fs::create_dir_all(tree.join("tmp")).unwrap();
    for p in ["home/app", "home/app/file"] {
        std::os::unix::fs::lchown(tree.join(p), Some(1000), Some(1000)).unwrap();
    }
    let layout = Layout::create(dir.join("layout")).unwrap();
    let spec = BuildSpec::new().layer(&tree).cmd(vec![
        "/bin/sh".into(),
        "-c".into(),
        "id -u; stat -c '%u:%g %n' /home/app /home/app/file /bin/busybox".into(),
    ]);
    build_image(None, &layout, Some(&"t".parse().unwrap()), &spec).unwrap();
    // A repository of its own per call: the tests run at once, and a second push to one
    // tag would change what another test's second pull finds.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dst = format!(
        "docker://{}/rootless-{}-{n}:v1",
        registry(),
        std::process::id()
    );
    copy(
        &format!("oci:{}:t", dir.join("layout").display())
            .parse::<Location>()
            .unwrap(),
        &dst.parse::<Location>().unwrap(),
        &CopyOptions::new(),
    )
    .unwrap();
    dst
}

const EXPECTED: &str = "0\n1000:1000 /home/app\n1000:1000 /home/app/file\n0:0 /bin/busybox\n";

/// The snapshot directories of a store and their modification times.
fn snapshots(store: &Path) -> Vec<(PathBuf, i64)> {
    let mut v: Vec<(PathBuf, i64)> = std::fs::read_dir(store.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("diff").is_dir())
        .map(|p| {
            let m = std::fs::metadata(&p).unwrap().mtime();
            (p, m)
        })
        .collect();
    v.sort();
    v
}

/// The blobs of a store's layout and their modification times.
fn blobs(store: &Path) -> Vec<(PathBuf, i64)> {
    let mut v: Vec<(PathBuf, i64)> = std::fs::read_dir(store.join("layout/blobs/sha256"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let m = std::fs::metadata(&p).unwrap().mtime();
            (p, m)
        })
        .collect();
    v.sort();
    v
}

/// `ocikit run --root STORE` as the user: pulled, the image's owners seen inside; the second
/// run fetches and unpacks nothing (the store's blobs and snapshots untouched, nothing
/// said); `--memory` where the user's cgroups cannot be written fails (125) naming the
/// limit; nothing is left behind.
#[test]
fn run_from_the_store_as_a_user_then_again_without_fetching_or_unpacking() {
    let tmp = tempfile::tempdir().unwrap();
    let src = image(tmp.path());
    let home = Home::new();
    let store = home.path().join("store");
    let ocikit = home.bin("ocikit");
    let run = |extra: &[&str]| {
        let mut args = vec![ocikit.as_str(), "run", "--root", store.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push(&src);
        home.run(&args)
    };
    let first = run(&[]);
    assert_eq!(first.status.code(), Some(0), "{}", show(&first));
    assert_eq!(
        String::from_utf8_lossy(&first.stdout),
        EXPECTED,
        "{}",
        show(&first)
    );
    let before = snapshots(&store);
    let blobs_before = blobs(&store);
    assert!(!before.is_empty());
    // In the store, the layer's owners are the user's subordinate ids.
    let (snapshot, _) = &before[0];
    let file = std::fs::metadata(snapshot.join("diff/home/app/file")).unwrap();
    assert_eq!(file.uid(), home.subuid.0 + 999);

    let second = run(&[]);
    assert_eq!(second.status.code(), Some(0), "{}", show(&second));
    assert_eq!(String::from_utf8_lossy(&second.stdout), EXPECTED);
    assert_eq!(
        String::from_utf8_lossy(&second.stderr),
        "",
        "{}",
        show(&second)
    );
    assert_eq!(snapshots(&store), before, "a layer was unpacked again");
    assert_eq!(blobs(&store), blobs_before, "a blob was fetched again");
    // A limit this user's cgroups cannot enforce is an error naming it, not ignored.
    let limited = run(&["--memory", "64M"]);
    assert_eq!(limited.status.code(), Some(125), "{}", show(&limited));
    assert_eq!(String::from_utf8_lossy(&limited.stdout), "");
    let stderr = String::from_utf8_lossy(&limited.stderr);
    assert!(
        stderr.contains("linux.resources.memory.limit") && stderr.contains("67108864"),
        "{stderr}"
    );
    // No container, mount or state left behind.
    assert_eq!(
        std::fs::read_dir(store.join("containers")).unwrap().count(),
        0
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(home.path().to_str().unwrap()), "{mounts}");
    home.assert_nothing_of_roots();
}

/// The `ocikit` command as the user: `run` pulls through the user's default store
/// (`$XDG_DATA_HOME/ocikit`) and prints the image's owners; the next `pull` fetches nothing;
/// `-m` where cgroups cannot be written fails (125) naming the limit.
#[test]
fn the_ocikit_command_runs_rootless_through_the_users_store() {
    let tmp = tempfile::tempdir().unwrap();
    let src = image(tmp.path());
    let bare = src.strip_prefix("docker://").unwrap();
    let home = Home::new();
    let ocikit = home.bin("ocikit");
    let first = home.run(&[&ocikit, "run", "--rm", bare]);
    assert_eq!(first.status.code(), Some(0), "{}", show(&first));
    assert_eq!(
        String::from_utf8_lossy(&first.stdout),
        EXPECTED,
        "{}",
        show(&first)
    );
    let store = home.path().join("data/ocikit");
    let before = snapshots(&store);
    assert!(
        !before.is_empty(),
        "the user's default store holds the layers"
    );
    let again = home.run(&[&ocikit, "pull", bare]);
    assert_eq!(again.status.code(), Some(0), "{}", show(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("(0 fetched"),
        "{}",
        show(&again)
    );
    let second = home.run(&[&ocikit, "run", "--rm", bare]);
    assert_eq!(
        String::from_utf8_lossy(&second.stdout),
        EXPECTED,
        "{}",
        show(&second)
    );
    assert_eq!(snapshots(&store), before, "a layer was unpacked again");
    let limited = home.run(&[&ocikit, "run", "--rm", "-m", "64m", bare, "true"]);
    assert_eq!(limited.status.code(), Some(125), "{}", show(&limited));
    let stderr = String::from_utf8_lossy(&limited.stderr);
    assert!(
        stderr.contains("linux.resources.memory.limit") && stderr.lines().count() == 1,
        "{stderr}"
    );
    home.assert_nothing_of_roots();
}

/// `ocikit work` as the user (buildah's rootless working containers): the store mounts the
/// container with `userxattr`, where the kernel refuses `redirect_dir=off`, and the run is a
/// rootless one. A lower directory renamed in the run is committed whole with its owners;
/// `--network none` gives the command a network of its own (only `lo`); the committed image
/// runs; nothing is left behind.
#[test]
fn working_containers_as_a_user_commit_what_a_rootless_run_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    let src = image(tmp.path());
    let bare = src.strip_prefix("docker://").unwrap();
    let home = Home::new();
    let ocikit = home.bin("ocikit");
    let work = |args: &[&str]| {
        let mut all = vec![ocikit.as_str(), "work"];
        all.extend_from_slice(args);
        let out = home.run(&all);
        assert_eq!(out.status.code(), Some(0), "{args:?}\n{}", show(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    work(&["from", "--name", "w", bare]);
    let ran = work(&[
        "run",
        "w",
        "--",
        "/bin/sh",
        "-c",
        "id -u; busybox mkdir /moved && busybox mv /home/app /moved/app && \
         echo new > /moved/app/new",
    ]);
    assert_eq!(ran, "0\n");
    let isolated = work(&[
        "run",
        "--network",
        "none",
        "w",
        "--",
        "busybox",
        "cat",
        "/proc/net/dev",
    ]);
    let interfaces: Vec<&str> = isolated
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(interfaces, ["lo"], "{isolated}");
    let digest = work(&["commit", "w", "done"]);
    assert!(digest.trim().starts_with("sha256:"), "{digest}");
    let out = home.run(&[
        &ocikit,
        "run",
        "--rm",
        "done",
        "/bin/sh",
        "-c",
        "stat -c '%u:%g %n' /moved/app /moved/app/file; cat /moved/app/new; busybox ls -A /home",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1000:1000 /moved/app\n1000:1000 /moved/app/file\nnew\n",
        "{}",
        show(&out)
    );
    work(&["rm", "w"]);
    home.assert_nothing_of_roots();
}

/// Simple signing as the user, with no registries.d: `ocikit sign` writes the signature to
/// the user's default lookaside (`~/.local/share/containers/sigstore`), and `ocikit pull`
/// (which runs as root in the user's user namespace) reads it from there too, as
/// containers/image decides by `GetRootlessEUID`, and accepts the image under a `signedBy`
/// policy; an unsigned image is refused (6) and stored nowhere.
#[test]
fn a_users_signatures_are_found_in_its_own_lookaside() {
    let tmp = tempfile::tempdir().unwrap();
    let src = image(tmp.path());
    let unsigned = format!("{src}-unsigned");
    copy(
        &src.parse::<Location>().unwrap(),
        &unsigned.parse::<Location>().unwrap(),
        &CopyOptions::new(),
    )
    .unwrap();
    let home = Home::new();
    let key = GpgKey::new("rootless");
    let (secret, public) = (home.path().join("key.asc"), home.path().join("key.pub"));
    std::fs::copy(&key.secret, &secret).unwrap();
    std::fs::copy(&key.public, &public).unwrap();
    let policy = home.path().join("policy.json");
    std::fs::write(
        &policy,
        format!(
            r#"{{"default": [{{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "{}"}}]}}"#,
            public.display()
        ),
    )
    .unwrap();
    for p in [&secret, &public, &policy] {
        home.give(p);
    }
    let ocikit = home.bin("ocikit");
    let policy = policy.to_str().unwrap();
    let signed = home.run(&[&ocikit, "sign", "--sign-by", secret.to_str().unwrap(), &src]);
    assert_eq!(signed.status.code(), Some(0), "{}", show(&signed));
    let lookaside = home.path().join(".local/share/containers/sigstore");
    assert!(
        String::from_utf8_lossy(&signed.stdout).contains(&lookaside.display().to_string()),
        "{}",
        show(&signed)
    );
    let bare = src.strip_prefix("docker://").unwrap();
    let pulled = home.run(&[&ocikit, "pull", "--policy", policy, bare]);
    assert_eq!(pulled.status.code(), Some(0), "{}", show(&pulled));
    let refused = home.run(&[
        &ocikit,
        "pull",
        "--policy",
        policy,
        unsigned.strip_prefix("docker://").unwrap(),
    ]);
    assert_eq!(refused.status.code(), Some(6), "{}", show(&refused));
    let images = home.run(&[&ocikit, "images", "--format", "json"]);
    let listed = String::from_utf8_lossy(&images.stdout);
    assert!(
        listed.contains(bare) && !listed.contains("-unsigned"),
        "{}",
        show(&images)
    );
    home.assert_nothing_of_roots();
}

#[test]
fn unpack_as_a_user_keeps_owners_that_runc_and_oci_runtime_show() {
    let tmp = tempfile::tempdir().unwrap();
    let src = image(tmp.path());
    let home = Home::new();
    let bundle = home.path().join("bundle");
    let out = home.run(&[
        &home.bin("ocikit"),
        "unpack",
        "--rootless",
        "--no-terminal",
        &src,
        bundle.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", show(&out));
    let file = std::fs::metadata(bundle.join("rootfs/home/app/file")).unwrap();
    assert_eq!(
        (file.uid(), file.gid()),
        (home.subuid.0 + 999, home.subuid.0 + 999)
    );
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["linux"]["uidMappings"],
        serde_json::json!([
            {"containerID": 0, "hostID": home.uid, "size": 1},
            {"containerID": 1, "hostID": home.subuid.0, "size": home.subuid.1}
        ])
    );
    let state = home.path().join("state");
    let bundle = bundle.to_str().unwrap();
    let ours = home.run(&[&home.bin("oci-runtime"), "run", "--bundle", bundle, "ours"]);
    let runc = home.run(&[
        "runc",
        "--root",
        state.to_str().unwrap(),
        "run",
        "--bundle",
        bundle,
        "theirs",
    ]);
    assert_eq!(ours.status.code(), Some(0), "{}", show(&ours));
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        EXPECTED,
        "{}",
        show(&ours)
    );
    assert_eq!(
        (ours.status.code(), ours.stdout, ours.stderr),
        (runc.status.code(), runc.stdout, runc.stderr),
        "oci-runtime (left) and runc (right) differ"
    );
    home.assert_nothing_of_roots();
}
