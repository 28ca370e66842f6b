//! `process.terminal`: a pty whose master reaches a console-socket receiver (written here,
//! as runc's `recvtty` would be) with `SCM_RIGHTS`. Needs root (CI has it).

mod common;

use std::io::{IoSliceMut, Read};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use common::{Guard, TestBundle, id, runtime};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use ocikit_runtime::{CreateOptions, Error, ExitStatus};
use serde_json::json;

/// Accepts one connection, receives the terminal's name and master, and reads the master
/// until the container's side closes.
fn receiver(path: &Path) -> std::thread::JoinHandle<(String, String)> {
    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 256];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            std::os::fd::AsRawFd::as_raw_fd(&conn),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .unwrap();
        let n = msg.bytes;
        let mut master = None;
        for c in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(fds) = c {
                // SAFETY: recvmsg just installed this descriptor for us alone.
                #[allow(unsafe_code)]
                let fd = unsafe { OwnedFd::from_raw_fd(fds[0]) };
                master = Some(std::fs::File::from(fd));
            }
        }
        let name = String::from_utf8_lossy(&buf[..n]).into_owned();
        let mut master = master.expect("a descriptor with the message");
        let mut out = Vec::new();
        // EIO once the last slave descriptor is closed.
        let mut chunk = [0u8; 4096];
        loop {
            match master.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
        }
        (name, String::from_utf8_lossy(&out).into_owned())
    })
}

#[test]
fn a_pty_through_the_console_socket() {
    let (root, rt) = runtime();
    let sock = root.path().join("console.sock");
    let recv = receiver(&sock);
    let mut b = TestBundle::new("tty; stty size; echo done");
    b.config["process"]["terminal"] = true.into();
    b.config["process"]["consoleSize"] = json!({"height": 30, "width": 100});
    b.write();
    let name = id("tty");
    let _guard = Guard(&rt, name.clone());
    rt.create(&name, b.path(), CreateOptions::new().console_socket(&sock))
        .unwrap();
    rt.start(&name).unwrap();
    assert_eq!(rt.wait(&name).unwrap(), ExitStatus::Exited(0));
    rt.delete(&name, false).unwrap();
    let (pty, out) = recv.join().unwrap();
    assert_eq!(pty, "/dev/pts/0");
    // The terminal turns "\n" into "\r\n".
    assert_eq!(out, "/dev/pts/0\r\n30 100\r\ndone\r\n");
}

#[test]
fn a_terminal_without_a_console_socket_is_refused() {
    let (root, rt) = runtime();
    let mut b = TestBundle::new("true");
    b.config["process"]["terminal"] = true.into();
    b.write();
    let name = id("notty");
    match rt.create(&name, b.path(), CreateOptions::new()) {
        Err(Error::InvalidConfig { field, .. }) => assert_eq!(field, "process.terminal"),
        other => panic!("{other:?}"),
    }
    assert!(!root.path().join("state").join(&name).exists());
}

/// `run` in the foreground relays the terminal itself when no console socket is given,
/// as runc does.
#[test]
fn run_in_the_foreground_relays_the_terminal() {
    let state = tempfile::tempdir().unwrap();
    let mut b = TestBundle::new("tty; exit 4");
    b.config["process"]["terminal"] = true.into();
    b.write();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_oci-runtime"))
        .arg("--root")
        .arg(state.path())
        .args(["run", "--bundle", b.path().to_str().unwrap(), &id("ttyrun")])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "/dev/pts/0\r\n");
}

/// Runs `runtime run` of `b` on a new pseudo-terminal of 30x100 as its controlling terminal;
/// once the container printed `ready`, resizes that terminal to 40x120 (the kernel sends
/// `SIGWINCH` to the runtime, its foreground process). Returns everything printed.
fn run_on_a_pty(runtime: &str, b: &TestBundle) -> String {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let state = tempfile::tempdir().unwrap();
    let size = nix::pty::Winsize {
        ws_row: 30,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).unwrap();
    let slave = std::fs::File::from(pty.slave);
    let mut cmd = std::process::Command::new(runtime);
    cmd.arg("--root")
        .arg(state.path())
        .args(["run", "--bundle", b.path().to_str().unwrap(), &id("winch")])
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap());
    // SAFETY: between fork and exec only async-signal-safe calls: setsid and an ioctl that
    // makes standard input (the pty slave) the controlling terminal.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()?;
            if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    // Our copies of the slave, so that the master reads EIO once the runtime has exited.
    drop(cmd);
    drop(slave);
    let mut master = std::fs::File::from(pty.master);
    let mut out = Vec::new();
    let mut resized = false;
    let mut chunk = [0u8; 4096];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    // EIO once the last slave descriptor is closed.
    while std::time::Instant::now() < deadline {
        use std::os::fd::AsFd;
        let mut fds = [nix::poll::PollFd::new(
            master.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(500u16)).unwrap_or(0) == 0 {
            continue;
        }
        match master.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
        if !resized && String::from_utf8_lossy(&out).contains("ready") {
            let big = libc::winsize {
                ws_row: 40,
                ws_col: 120,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            // SAFETY: a valid winsize for the call; the kernel only reads it.
            #[allow(unsafe_code)]
            let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &big) };
            assert_eq!(r, 0);
            resized = true;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    String::from_utf8_lossy(&out).into_owned()
}

/// Under a pseudo-terminal of 30x100, `run` of `stty size` prints `30 100`, and a resize to
/// 40x120 while it runs reaches the container (its terminal's size and a `SIGWINCH`), as
/// under runc.
#[test]
fn run_relays_the_window_size_and_its_changes() {
    let mut b = TestBundle::new(
        "stty size; trap 'stty size; exit 0' WINCH; echo ready; \
         i=0; while [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; echo timeout",
    );
    b.config["process"]["terminal"] = true.into();
    b.write();
    let ours = run_on_a_pty(env!("CARGO_BIN_EXE_oci-runtime"), &b);
    let theirs = run_on_a_pty("runc", &b);
    let sizes = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| l.trim().to_string())
            .filter(|l| l.split(' ').count() == 2 && l.split(' ').all(|n| n.parse::<u32>().is_ok()))
            .collect()
    };
    assert_eq!(sizes(&ours), ["30 100", "40 120"], "{ours:?}");
    // runc sizes the terminal only once the process has started, so on a busy machine its
    // first `stty size` may run before that ("stty: standard input", seen here under load);
    // what it does print is the same.
    let runc = sizes(&theirs);
    assert!(
        runc == ["30 100", "40 120"] || runc == ["40 120"],
        "runc: {theirs:?}"
    );
}
