//! CVE-2019-5736: a container overwrites the runtime's binary on the host through
//! `/proc/<pid>/exe`, then waits for root to run it.

use std::io::{Read, Write};
use std::time::Duration;

use nix::fcntl::{FcntlArg, fcntl};
use ocikit_runtime::{CreateOptions, ExitStatus, Runtime};
use serde_json::json;

use crate::kit::*;

/// A pipe already full: whoever writes to it blocks until the reader drains it.
fn full_pipe() -> (std::io::PipeReader, std::io::PipeWriter) {
    let (r, mut w) = std::io::pipe().unwrap();
    let size = fcntl(&w, FcntlArg::F_GETPIPE_SZ).unwrap() as usize;
    w.write_all(&vec![b'.'; size]).unwrap();
    (r, w)
}

fn quiet() -> CreateOptions {
    CreateOptions::new()
        .stdin(std::fs::File::open("/dev/null").unwrap())
        .stdout(std::fs::File::create("/dev/null").unwrap())
}

/// The line `key=value` of an attacker's report.
fn field<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// CVE-2019-5736, first form: the image replaces a program that `exec` will run with
/// `#!/proc/self/exe`, so the kernel runs the runtime's own binary inside the container; a
/// process of the container opens it through `/proc/<pid>/exe` and, once it exits, reopens it
/// for writing through `/proc/self/fd/N`. The image carries glibc, as real images do, so the
/// runtime's binary does run in there. The binary on the host must stay byte for byte the
/// same.
#[test]
fn cve_2019_5736_runtime_run_through_exec_cannot_be_overwritten() {
    let (root, _) = runtime();
    let helper = private_helper(root.path());
    let before = fingerprint(&helper);
    let rt = Runtime::new(root.path().join("state")).with_helper(&helper);

    // pid 1: waits for a process that is not busybox, holds its executable open, waits for
    // it to end, then tries to write the file.
    let mut b = TestBundle::new(
        r#"
        n=0
        while [ $n -lt 20000 ]; do
          for p in /proc/[0-9]*; do
            e=$(readlink $p/exe 2>/dev/null) || continue
            [ "$e" = /bin/busybox ] && continue
            pid=${p#/proc/}
            exec 3<$p/exe || continue
            echo "found=$pid"; echo "exe=$e"
            break 2
          done
          n=$((n+1))
        done
        [ -n "$pid" ] || { echo found=none; exit 1; }
        (true >>/proc/$pid/exe) 2>/dev/null; echo running-write=$?
        touch /tmp/found
        while readlink /proc/$pid/exe >/dev/null 2>&1; do usleep 1000; done
        echo pwned >>/proc/self/fd/3; echo write=$?
        (true >/proc/self/fd/3); echo trunc=$?
        "#,
    );
    applets(&b, &["usleep"]);
    copy_libraries(BIN, &b.rootfs());
    std::fs::write(b.rootfs().join("bin/evil"), "#!/proc/self/exe\n").unwrap();
    std::fs::set_permissions(
        b.rootfs().join("bin/evil"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    b.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_KILL", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER"],
        "effective": ["CAP_KILL", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER"],
        "permitted": ["CAP_KILL", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER"]
    });
    b.write();
    let name = id("exe-exec");
    let _guard = Guard(&rt, name.clone());
    let (out_r, out_w) = std::io::pipe().unwrap();
    let opts = quiet().stdout(out_w);
    rt.create(&name, b.path(), opts).unwrap();
    rt.start(&name).unwrap();

    // The administrator's `exec` of the replaced program; its stderr blocks (a full pipe),
    // which keeps the runtime's binary running in the container until we read.
    let mut p = rt.process_of(&name).unwrap();
    p.set_args(Some(vec!["/bin/evil".into()]));
    let (mut err_r, err_w) = full_pipe();
    let pid = rt.exec(&name, &p, quiet().stderr(err_w)).unwrap();
    let found = wait_until(Duration::from_secs(20), || {
        b.rootfs().join("tmp/found").exists()
    });
    if !found {
        // Do not wait for the attacker's whole loop.
        let _ = rt.kill(&name, ocikit_runtime::Signal::SIGKILL);
    }
    let drain = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err_r.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    rt.wait_process(pid).unwrap();
    let stderr = drain.join().unwrap();
    let status = rt.wait(&name).unwrap();
    let mut out = String::new();
    { out_r }.read_to_string(&mut out).unwrap();

    assert!(found, "the attacker never saw the runtime run: {out}");
    // It was the runtime's binary that ran (it printed its usage)...
    assert!(stderr.contains("oci-runtime"), "{stderr}");
    assert_eq!(status, ExitStatus::Exited(0), "{out}");
    assert!(
        field(&out, "exe").is_some_and(|e| e != "/bin/busybox"),
        "{out}"
    );
    // ...and no write reached it, neither while it ran nor after.
    assert_ne!(field(&out, "running-write"), Some("0"), "{out}");
    assert_ne!(field(&out, "write"), Some("0"), "{out}");
    assert_ne!(field(&out, "trunc"), Some("0"), "{out}");
    assert_eq!(fingerprint(&helper), before, "the runtime binary changed");
}

/// CVE-2019-5736, second form: before `start`, a created container's pid 1 is the runtime
/// itself, waiting to exec the user's program. A process `exec`ed into the container goes for
/// `/proc/1/exe`: without `CAP_SYS_PTRACE` it cannot even open it (the runtime is not
/// dumpable); with it (as if that layer failed), it holds the file open across `start` and
/// then tries to write it through `/proc/self/fd/3`. The binary must stay the same.
#[test]
fn cve_2019_5736_created_containers_pid_1_cannot_be_overwritten() {
    let (root, _) = runtime();
    let helper = private_helper(root.path());
    let before = fingerprint(&helper);
    let rt = Runtime::new(root.path().join("state")).with_helper(&helper);
    let b = TestBundle::new(
        "i=0; while [ ! -e /tmp/done ] && [ $i -lt 10000 ]; do usleep 1000; i=$((i+1)); done",
    );
    applets(&b, &["usleep"]);
    b.write();
    let name = id("exe-pid1");
    let _guard = Guard(&rt, name.clone());
    rt.create(&name, b.path(), quiet()).unwrap();

    let exec = |script: &str, caps: &[&str]| {
        let mut p = rt.process_of(&name).unwrap();
        p.set_args(Some(vec!["sh".into(), "-c".into(), script.into()]));
        let caps = json!({"bounding": caps, "effective": caps, "permitted": caps});
        p.set_capabilities(Some(serde_json::from_value(caps).unwrap()));
        let (r, w) = std::io::pipe().unwrap();
        let pid = rt.exec(&name, &p, quiet().stdout(w)).unwrap();
        (pid, r)
    };
    // Without CAP_SYS_PTRACE: pid 1 is out of reach altogether.
    let (pid, r) = exec(
        "readlink /proc/1/exe >/dev/null 2>&1; echo readlink=$?; \
         cat /proc/1/exe >/dev/null 2>&1; echo read=$?; \
         (true >>/proc/1/exe) 2>/dev/null; echo write=$?; \
         echo fds=$(for f in /proc/1/fd/*; do readlink $f; done 2>/dev/null | wc -l); \
         cat /proc/1/environ >/dev/null 2>&1; echo environ=$?; \
         (cd /proc/1/cwd) 2>/dev/null; echo cwd=$?",
        &["CAP_KILL", "CAP_DAC_OVERRIDE", "CAP_SETUID"],
    );
    assert_eq!(rt.wait_process(pid).unwrap(), ExitStatus::Exited(0));
    let mut out = String::new();
    { r }.read_to_string(&mut out).unwrap();
    assert_eq!(
        out,
        "readlink=1\nread=1\nwrite=1\nfds=0\nenviron=1\ncwd=2\n"
    );

    // With it: the file can be held open, but never written.
    let (pid, r) = exec(
        "exec 3</proc/1/exe || { echo open=1; touch /tmp/opened /tmp/done; exit 0; }
         echo open=0; touch /tmp/opened
         i=0
         while [ \"$(readlink /proc/1/exe)\" != /bin/busybox ] && [ $i -lt 10000 ]; do
           usleep 1000; i=$((i+1))
         done
         echo pid1=$(readlink /proc/1/exe)
         echo pwned >>/proc/self/fd/3; echo write=$?
         (true >/proc/self/fd/3); echo trunc=$?
         touch /tmp/done",
        &["CAP_SYS_PTRACE", "CAP_DAC_OVERRIDE"],
    );
    assert!(wait_until(Duration::from_secs(10), || b
        .rootfs()
        .join("tmp/opened")
        .exists()));
    rt.start(&name).unwrap();
    assert_eq!(rt.wait_process(pid).unwrap(), ExitStatus::Exited(0));
    let mut out = String::new();
    { r }.read_to_string(&mut out).unwrap();
    assert_eq!(rt.wait(&name).unwrap(), ExitStatus::Exited(0));
    assert_eq!(field(&out, "open"), Some("0"), "{out}");
    assert_eq!(field(&out, "pid1"), Some("/bin/busybox"), "{out}");
    assert_eq!(field(&out, "write"), Some("1"), "{out}");
    assert_eq!(field(&out, "trunc"), Some("1"), "{out}");
    assert_eq!(fingerprint(&helper), before, "the runtime binary changed");
}
