//! CVE-2024-21626 and leaked descriptors: the container must never hold a descriptor of the
//! host (a directory above all: a working directory on the host is a way out), for `run` and
//! for `exec`.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};

use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use ocikit_runtime::{CreateOptions, ExitStatus};

use crate::kit::*;

/// A host directory with a secret in it.
struct HostSecret {
    dir: tempfile::TempDir,
    token: String,
}

impl HostSecret {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let token = format!("host-secret-{}", id("t"));
        std::fs::write(dir.path().join("secret"), &token).unwrap();
        HostSecret { dir, token }
    }

    /// Opens the directory as a careless caller would leak it: not close-on-exec.
    fn leak(&self) -> OwnedFd {
        let fd = open(
            self.dir.path(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        // `dup` gives a copy without close-on-exec.
        nix::unistd::dup(&fd).unwrap()
    }

    /// A script that tries every way to the secret from a working directory or a directory
    /// descriptor `dir`.
    fn probe(&self, dir: &str) -> String {
        let abs = shell_path(self.dir.path());
        format!(
            "cat {dir}/secret {dir}/../secret {dir}/../../../../../../../../../..{abs}/secret \
             2>/dev/null; true"
        )
    }

    fn assert_untouched(&self, out: &str) {
        assert!(
            !out.contains(&self.token),
            "the host's secret leaked: {out}"
        );
        let names: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            ["secret"],
            "something was written to the host directory"
        );
    }
}

fn quiet() -> CreateOptions {
    CreateOptions::new()
        .stdin(std::fs::File::open("/dev/null").unwrap())
        .stdout(std::fs::File::create("/dev/null").unwrap())
        .stderr(std::fs::File::create("/dev/null").unwrap())
}

/// The working directories runc's CVE used (`/proc/self/fd/7` was its leaked cgroup
/// directory): every low descriptor number, and the one this process leaks on purpose.
fn fd_cwds(leaked: &OwnedFd) -> Vec<String> {
    (3..=16)
        .chain([leaked.as_raw_fd()])
        .map(|n| format!("/proc/self/fd/{n}"))
        .collect()
}

/// CVE-2024-21626 through `run`: `process.cwd` is `/proc/self/fd/N`, hoping N is a host
/// directory the runtime left open (the caller leaks one on purpose). Each container is either
/// refused or starts inside its root: the secret next to the leaked directory is never read
/// and nothing is written there.
#[test]
fn cve_2024_21626_run_with_cwd_through_a_leaked_descriptor() {
    let (_root, rt) = runtime();
    let secret = HostSecret::new();
    let leaked = secret.leak();
    let mut all = String::new();
    for cwd in fd_cwds(&leaked) {
        let mut b = TestBundle::new(&format!(
            "{}; touch escaped-here 2>/dev/null; true",
            secret.probe(".")
        ));
        b.config["process"]["cwd"] = cwd.clone().into();
        if let Ok(out) = try_run(&rt, &b) {
            all.push_str(&format!("{cwd}: {out:?}\n"));
        }
    }
    drop(leaked);
    secret.assert_untouched(&all);
}

/// CVE-2024-21626 through `exec` (`runc exec --cwd /proc/self/fd/7`): the same working
/// directories for a process joining a running container.
#[test]
fn cve_2024_21626_exec_with_cwd_through_a_leaked_descriptor() {
    let (_root, rt) = runtime();
    let secret = HostSecret::new();
    let b = TestBundle::new("exec sleep 100");
    b.write();
    let name = id("cwd-exec");
    let _guard = Guard(&rt, name.clone());
    rt.create(&name, b.path(), quiet()).unwrap();
    rt.start(&name).unwrap();
    let leaked = secret.leak();
    let mut all = String::new();
    for cwd in fd_cwds(&leaked) {
        let mut p = rt.process_of(&name).unwrap();
        p.set_cwd(cwd.clone().into());
        p.set_args(Some(vec![
            "sh".into(),
            "-c".into(),
            format!(
                "{}; touch escaped-here 2>/dev/null; true",
                secret.probe(".")
            ),
        ]));
        let (r, w) = std::io::pipe().unwrap();
        if let Ok(pid) = rt.exec(&name, &p, quiet().stdout(w)) {
            rt.wait_process(pid).unwrap();
            let mut out = String::new();
            { r }.read_to_string(&mut out).unwrap();
            all.push_str(&format!("{cwd}: {out}\n"));
        }
    }
    drop(leaked);
    secret.assert_untouched(&all);
}

/// CVE-2024-21626's other form: while `exec` sets a process up, a process already in the
/// container walks every other process's `/proc/<pid>/cwd`, `root` and `fd/*` looking for a
/// host directory (the caller leaks one). Bounded: 30 `exec`s.
#[test]
fn cve_2024_21626_exec_helper_is_out_of_reach_of_the_container() {
    let (_root, rt) = runtime();
    let secret = HostSecret::new();
    let probe = secret.probe("$f");
    let b = TestBundle::new(&format!(
        "n=0; while [ ! -e /tmp/stop ]; do n=$((n+1)); \
           for d in /proc/[0-9]*; do [ $d = /proc/$$ ] && continue; \
             for f in $d/cwd $d/root $d/fd/*; do {probe}; done; \
           done; \
         done; echo rounds=$n"
    ));
    b.write();
    let name = id("cwd-race");
    let _guard = Guard(&rt, name.clone());
    let (r, w) = std::io::pipe().unwrap();
    rt.create(&name, b.path(), quiet().stdout(w)).unwrap();
    rt.start(&name).unwrap();
    let leaked = secret.leak();
    let mut p = rt.process_of(&name).unwrap();
    p.set_args(Some(vec!["true".into()]));
    for _ in 0..30 {
        let pid = rt.exec(&name, &p, quiet()).unwrap();
        assert_eq!(rt.wait_process(pid).unwrap(), ExitStatus::Exited(0));
    }
    drop(leaked);
    std::fs::write(b.rootfs().join("tmp/stop"), "").unwrap();
    assert_eq!(rt.wait(&name).unwrap(), ExitStatus::Exited(0));
    let mut out = String::new();
    { r }.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("rounds="), "{out}");
    assert_ne!(out.trim(), "rounds=0", "the container never looked");
    secret.assert_untouched(&out);
}

/// A container process's descriptors, from inside: `ls /proc/self/fd` (whose own directory
/// descriptor is the last one listed) and where each of 0..=4 points.
const FD_LIST: &str = "ls /proc/self/fd | tr '\\n' ' '; echo; \
    for n in 3 4; do readlink /proc/self/fd/$n || echo none; done";

/// Runs `sh -c 'exec 3<FILE 4<DIR 9<FILE; exec RUNTIME ARGS...'`: descriptors 3 and 4 are
/// for `--preserve-fds 2`, 9 is leaked and must not arrive.
fn with_descriptors(runtime: &str, file: &Path, dir: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg("f=$1; d=$2; shift 2; exec 3<\"$f\" 4<\"$d\" 9<\"$f\"; exec \"$@\"")
        .arg("sh")
        .arg(file)
        .arg(dir)
        .arg(runtime)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Leaked descriptors, `run` and `exec` from the command line: only stdio and the
/// `--preserve-fds` ones reach the container, exactly as with runc (a descriptor the caller
/// did not mark close-on-exec, 9, never does).
#[test]
fn only_stdio_and_preserved_descriptors_reach_the_container_as_with_runc() {
    let host = tempfile::tempdir().unwrap();
    let file = host.path().join("preserved");
    std::fs::write(&file, "p").unwrap();
    let mut results = Vec::new();
    for runtime in [BIN, "runc"] {
        let state = tempfile::tempdir().unwrap();
        let root = state.path().to_str().unwrap();
        let b = TestBundle::new(FD_LIST);
        applets(&b, &["tr"]);
        b.write();
        let bundle = b.path().to_str().unwrap();
        let cid = id("fds");
        let run = with_descriptors(
            runtime,
            &file,
            host.path(),
            &[
                "--root",
                root,
                "run",
                "--preserve-fds",
                "2",
                "--bundle",
                bundle,
                &cid,
            ],
        );
        // exec: into a running container, preserving one.
        let b2 = TestBundle::new("exec sleep 100");
        b2.write();
        let cid2 = id("fds-exec");
        run_detached(runtime, state.path(), b2.path(), &cid2);
        let mut args = vec!["--root", root, "exec", "--preserve-fds", "1", &cid2];
        // runc takes the command right after the id; ours wants `--` before it.
        if runtime == BIN {
            args.push("--");
        }
        args.extend(["sh", "-c", FD_LIST]);
        let exec = with_descriptors(runtime, &file, host.path(), &args);
        cli(runtime, state.path(), &["delete", "--force", &cid2]);
        results.push((run, exec));
    }
    let file_s = shell_path(&file);
    let dir_s = shell_path(host.path());
    let ((run, exec), runc) = (&results[0], &results[1]);
    assert_eq!(
        run.0,
        format!("0 1 2 3 4 5 \n{file_s}\n{dir_s}\n"),
        "{run:?}"
    );
    assert_eq!(exec.0, format!("0 1 2 3 4 \n{file_s}\nnone\n"), "{exec:?}");
    assert_eq!(
        run.0, runc.0.0,
        "run: ours (left) and runc's (right) differ"
    );
    assert_eq!(
        exec.0, runc.1.0,
        "exec: ours (left) and runc's (right) differ"
    );
}

/// Leaked descriptors through the library: a caller that leaks a host directory (not
/// close-on-exec) into `run` and `exec` still gives the container stdio only.
#[test]
fn a_caller_leaking_a_host_directory_leaks_nothing_into_run_or_exec() {
    let (_root, rt) = runtime();
    let secret = HostSecret::new();
    let leaked = secret.leak();
    let script = format!(
        "ls /proc/self/fd | tr '\\n' ' '; echo; for f in /proc/self/fd/*; do {}; done",
        secret.probe("$f")
    );
    let b = TestBundle::new(&format!("{script}; exec sleep 100"));
    applets(&b, &["tr"]);
    b.write();
    let name = id("leak");
    let _guard = Guard(&rt, name.clone());
    let (r, w) = std::io::pipe().unwrap();
    rt.create(&name, b.path(), quiet().stdout(w)).unwrap();
    rt.start(&name).unwrap();
    let mut p = rt.process_of(&name).unwrap();
    p.set_args(Some(vec!["sh".into(), "-c".into(), script]));
    let (er, ew) = std::io::pipe().unwrap();
    let pid = rt.exec(&name, &p, quiet().stdout(ew)).unwrap();
    rt.wait_process(pid).unwrap();
    let mut exec_out = String::new();
    { er }.read_to_string(&mut exec_out).unwrap();
    rt.delete(&name, true).unwrap();
    let mut run_out = String::new();
    { r }.read_to_string(&mut run_out).unwrap();
    drop(leaked);
    assert_eq!(run_out, "0 1 2 3 \n", "run");
    assert_eq!(exec_out, "0 1 2 3 \n", "exec");
    secret.assert_untouched(&(run_out + &exec_out));
}
