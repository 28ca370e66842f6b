//! What the attacks share: bundles made from `oci-runtime spec`, the peers' command lines,
//! fingerprints of host files, the mount table of a container as the host sees it.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub(crate) use crate::common::{Guard, Output, TestBundle, id, run, run_with, runtime};

/// The runtime under attack, as a command line.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_oci-runtime");

/// Adds busybox applets to a test bundle's `/bin` (the common set lacks the attack tools).
pub(crate) fn applets(b: &TestBundle, names: &[&str]) {
    for a in names {
        let link = b.rootfs().join("bin").join(a);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink("busybox", link).unwrap();
        }
    }
}

/// A busybox bundle whose configuration is exactly what `oci-runtime spec` writes, with only
/// the process's command and `PATH` changed: the configuration users start from.
pub(crate) fn spec_bundle(script: &str) -> TestBundle {
    let mut b = TestBundle::new(script);
    b.config = generated_spec(BIN);
    b.config["process"]["args"] = json!(["sh", "-c", script]);
    b.config["process"]["env"] = json!(["PATH=/bin", "HOME=/root"]);
    b
}

/// The `config.json` that `<runtime> spec` writes (ours or runc's).
pub(crate) fn generated_spec(runtime: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(runtime)
        .arg("spec")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {runtime} spec: {e}"));
    assert!(out.status.success(), "{runtime} spec: {out:?}");
    serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap()
}

/// Runs a runc-compatible command line (`BIN` or `runc`) with a private state root.
pub(crate) fn cli(runtime: &str, root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(runtime)
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {runtime}: {e}"))
}

/// `<runtime> run -d`: starts a container in the background. Its stdio is `/dev/null`, so
/// nothing waits for the container to close our pipes.
pub(crate) fn run_detached(runtime: &str, root: &Path, bundle: &Path, id: &str) {
    let status = Command::new(runtime)
        .arg("--root")
        .arg(root)
        .args(["run", "-d", "--bundle"])
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{runtime} run -d {id}: {status}");
}

/// What identifies a file's content: its length and a hash of every byte.
pub(crate) fn fingerprint(path: &Path) -> (u64, u64) {
    use std::hash::Hasher;
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut h = std::hash::DefaultHasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return (len, h.finish());
        }
        h.write(&buf[..n]);
        len += n as u64;
    }
}

/// One line of `/proc/<pid>/mountinfo`.
#[derive(Debug, Clone)]
pub(crate) struct MountEntry {
    /// The directory of the source file system that is mounted (field 4).
    pub(crate) root: String,
    /// Where, relative to the reading process's root (field 5).
    pub(crate) point: String,
    /// Per-mount options (`ro`, `nosuid`...).
    pub(crate) options: Vec<String>,
    /// The file-system type.
    pub(crate) fstype: String,
}

/// The mount table of process `pid`, as the host sees it.
pub(crate) fn mountinfo(pid: i32) -> Vec<MountEntry> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    parse_mountinfo(&text)
}

/// Parses mountinfo text (octal escapes such as `\040` decoded).
pub(crate) fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some(MountEntry {
                root: unescape(f.get(3)?),
                point: unescape(f.get(4)?),
                options: f.get(5)?.split(',').map(String::from).collect(),
                fstype: f.get(sep + 1)?.to_string(),
            })
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let n = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(n);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Waits until `cond` holds or `timeout` passes; returns whether it held.
pub(crate) fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Copies the shared libraries and loader a dynamically linked host binary needs into the
/// rootfs, at their host paths, as a glibc-based image would have them.
pub(crate) fn copy_libraries(binary: &str, rootfs: &Path) {
    let out = Command::new("ldd").arg(binary).output().expect("ldd");
    assert!(out.status.success(), "ldd {binary}: {out:?}");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let path = line
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(PathBuf::from);
        let Some(path) = path else { continue };
        let dest = rootfs.join(path.strip_prefix("/").unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&path, &dest).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

/// A private copy of the runtime binary, so that no other test executes the same file (a
/// running binary refuses writers with `ETXTBSY`, protected or not, which would hide a hole).
pub(crate) fn private_helper(dir: &Path) -> PathBuf {
    let helper = dir.join("oci-runtime");
    std::fs::copy(BIN, &helper).unwrap();
    // Children other test threads forked while the copy was open for writing hold that
    // descriptor until their exec; executing the copy before then would fail with ETXTBSY.
    std::thread::sleep(Duration::from_millis(100));
    helper
}

/// Every file and directory below `dir` (relative paths, sorted), to show nothing was created
/// or removed.
pub(crate) fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The `Cap*` lines of a `/proc/<pid>/status` text, e.g. `("CapEff", 0x20000420)`.
pub(crate) fn cap_masks(status: &str) -> Vec<(String, u64)> {
    status
        .lines()
        .filter(|l| l.starts_with("Cap"))
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.to_string(), u64::from_str_radix(v.trim(), 16).ok()?))
        })
        .collect()
}

/// Runs `bundle` to completion with the library, like [`run`], but returns an error instead
/// of panicking when the runtime refuses it.
pub(crate) fn try_run(
    rt: &ocikit_runtime::Runtime,
    bundle: &TestBundle,
) -> Result<Output, ocikit_runtime::Error> {
    bundle.write();
    let (out_r, out_w) = std::io::pipe().unwrap();
    let (err_r, err_w) = std::io::pipe().unwrap();
    let reader = |mut r: std::io::PipeReader| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            r.read_to_end(&mut s).unwrap();
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let (o, e) = (reader(out_r), reader(err_r));
    let opts = ocikit_runtime::CreateOptions::new()
        .stdin(std::fs::File::open("/dev/null").unwrap())
        .stdout(out_w)
        .stderr(err_w);
    let status = rt.run(&id("try"), bundle.path(), opts);
    let (stdout, stderr) = (o.join().unwrap(), e.join().unwrap());
    status.map(|status| Output {
        status,
        stdout,
        stderr,
    })
}

/// `path` as bytes, for scripts.
pub(crate) fn shell_path(path: &Path) -> String {
    String::from_utf8(path.as_os_str().as_bytes().to_vec()).unwrap()
}
