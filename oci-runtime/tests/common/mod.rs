//! Busybox bundles for the privileged tests.
#![allow(dead_code, unreachable_pub)]

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ocikit_runtime::{CreateOptions, ExitStatus, Runtime};
use serde_json::{Value, json};

pub const APPLETS: &[&str] = &[
    "sh", "cat", "ls", "id", "hostname", "mount", "ps", "echo", "sleep", "true", "env", "pwd",
    "touch", "umask", "grep", "awk", "sort", "wc", "readlink", "test", "kill", "exit",
];

/// A unique container id.
pub fn id(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A runtime with a private state root, using the built `oci-runtime` as its init helper.
pub fn runtime() -> (tempfile::TempDir, Runtime) {
    let root = tempfile::tempdir().unwrap();
    let rt = Runtime::new(root.path().join("state")).with_helper(env!("CARGO_BIN_EXE_oci-runtime"));
    (root, rt)
}

/// A bundle with a busybox rootfs and an editable `config.json`.
pub struct TestBundle {
    pub dir: tempfile::TempDir,
    pub config: Value,
}

impl TestBundle {
    /// Runs `sh -c script` with pid, mount, uts, ipc and network namespaces, `/proc`, a tmpfs
    /// `/dev`, `/dev/pts` and a read-only `/sys`.
    pub fn new(script: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let rootfs = dir.path().join("rootfs");
        for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "root"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for a in APPLETS {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/tmp:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            rootfs.join("etc/group"),
            "root:x:0:\nwheel:x:10:\nstaff:x:20:\nuser:x:1000:\n",
        )
        .unwrap();
        let config = json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs", "readonly": false},
            "hostname": "box",
            "process": {
                "args": ["sh", "-c", script],
                "cwd": "/",
                "env": ["PATH=/bin", "HOME=/root"],
                "user": {"uid": 0, "gid": 0},
                "terminal": false
            },
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                 "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                 "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
                {"destination": "/sys", "type": "sysfs", "source": "sysfs",
                 "options": ["nosuid", "noexec", "nodev", "ro"]}
            ],
            "linux": {
                "namespaces": [
                    {"type": "pid"}, {"type": "mount"}, {"type": "uts"},
                    {"type": "ipc"}, {"type": "network"}
                ]
            }
        });
        TestBundle { dir, config }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Writes `config.json` and returns the bundle path.
    pub fn write(&self) -> &Path {
        std::fs::write(
            self.dir.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
        self.dir.path()
    }
}

/// The output of one run.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

fn reader(r: std::io::PipeReader) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let mut r = r;
        r.read_to_string(&mut s).unwrap();
        s
    })
}

/// Runs the bundle to completion with the library, capturing stdout and stderr.
pub fn run(rt: &Runtime, bundle: &TestBundle) -> Output {
    bundle.write();
    let (out_r, out_w) = std::io::pipe().unwrap();
    let (err_r, err_w) = std::io::pipe().unwrap();
    let (o, e) = (reader(out_r), reader(err_r));
    let opts = CreateOptions::new()
        .stdin(std::fs::File::open("/dev/null").unwrap())
        .stdout(out_w)
        .stderr(err_w);
    let status = rt.run(&id("run"), bundle.path(), opts).unwrap();
    Output {
        status,
        stdout: o.join().unwrap(),
        stderr: e.join().unwrap(),
    }
}

/// Force-deletes a container when dropped, so a failing test leaves no cgroup or process.
pub struct Guard<'a>(pub &'a Runtime, pub String);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let _ = self.0.delete(&self.1, true);
    }
}

/// Runs `bundle` with the runc-compatible command line of `runtime` (`runc`, or our
/// `oci-runtime` binary): its exit code, stdout and stderr.
pub fn run_with(runtime: &str, bundle: &TestBundle) -> (Option<i32>, String, String) {
    let state = tempfile::tempdir().unwrap();
    let out = peer(runtime)
        .arg("--root")
        .arg(state.path())
        .args(["run", "--bundle"])
        .arg(bundle.path())
        .arg(id("cli"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {runtime}: {e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A command running `runtime`. crun 1.8 refuses a hybrid host whose cgroup2 mount has a
/// controller ("cgroups in hybrid mode not supported", this host's has hugetlb): it runs in
/// a private mount namespace without that mount, so it sees the v1 hierarchies only. The
/// host's own mounts are not changed.
pub fn peer(runtime: &str) -> std::process::Command {
    if runtime != "crun" {
        return std::process::Command::new(runtime);
    }
    let mut c = std::process::Command::new("unshare");
    c.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "umount /sys/fs/cgroup/unified 2>/dev/null; exec crun \"$@\"",
        "crun",
    ]);
    c
}
