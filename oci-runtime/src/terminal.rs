//! Pseudo-terminals for `process.terminal`, and passing their master side over unix sockets
//! with `SCM_RIGHTS`, as runc does with `--console-socket`.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::fcntl::{OFlag, open};
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use nix::sys::stat::Mode;

use crate::error::{Error, Result};
use crate::sys;

fn sys_err(context: &'static str) -> impl FnOnce(nix::errno::Errno) -> Error {
    move |e| Error::sys(context, None, e)
}

/// A new pty from the container's `/dev/ptmx`: its master, the slave's path and the slave.
pub(crate) fn open_pty(size: Option<(u16, u16)>) -> Result<(OwnedFd, String, OwnedFd)> {
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(sys_err("opening /dev/ptmx"))?;
    nix::pty::grantpt(&master).map_err(sys_err("grantpt"))?;
    nix::pty::unlockpt(&master).map_err(sys_err("unlockpt"))?;
    let name = nix::pty::ptsname_r(&master).map_err(sys_err("ptsname"))?;
    let slave = open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys("opening the pty slave", Some(name.clone().into()), e))?;
    if let Some((rows, cols)) = size {
        sys::set_window_size(&slave, rows, cols).map_err(sys_err("setting the console size"))?;
    }
    Ok((master.into(), name, slave))
}

/// Makes `slave` the controlling terminal of a new session and the standard input, output
/// and error of this process.
pub(crate) fn make_controlling(slave: OwnedFd) -> Result<()> {
    nix::unistd::setsid().map_err(sys_err("setsid"))?;
    sys::set_controlling_tty(&slave).map_err(sys_err("TIOCSCTTY"))?;
    nix::unistd::dup2_stdin(&slave).map_err(sys_err("dup2 of the pty"))?;
    nix::unistd::dup2_stdout(&slave).map_err(sys_err("dup2 of the pty"))?;
    nix::unistd::dup2_stderr(&slave).map_err(sys_err("dup2 of the pty"))?;
    Ok(())
}

/// Sends `fd` with `payload` (runc sends the terminal's name) as one message.
pub(crate) fn send_fd(sock: &UnixStream, payload: &[u8], fd: &OwnedFd) -> Result<()> {
    let fds = [fd.as_raw_fd()];
    let payload = if payload.is_empty() { b"-" } else { payload };
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(payload)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(sys_err("sending the pty"))?;
    Ok(())
}

/// Receives one descriptor sent with [`send_fd`]; returns the payload and the descriptor.
pub(crate) fn recv_fd(sock: &UnixStream, max_payload: usize) -> Result<(Vec<u8>, OwnedFd)> {
    let mut buf = vec![0u8; max_payload.max(1)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let (n, fd) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(sys_err("receiving the pty"))?;
        let mut fd = None;
        for c in msg.cmsgs().map_err(sys_err("receiving the pty"))? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for f in fds {
                    let owned = sys::received_fd(f);
                    if fd.is_none() {
                        fd = Some(owned);
                    }
                }
            }
        }
        (msg.bytes, fd)
    };
    let fd = fd.ok_or_else(|| Error::InitFailed {
        message: "no descriptor came with the pty message".into(),
    })?;
    buf.truncate(n);
    Ok((buf, fd))
}

/// Connects to a console socket and sends it the pty master, as runc does.
pub(crate) fn send_to_console_socket(path: &Path, name: &str, master: &OwnedFd) -> Result<()> {
    let sock = UnixStream::connect(path)
        .map_err(|e| Error::io("connecting to the console socket", Some(path.into()), e))?;
    send_fd(&sock, name.as_bytes(), master)
}

/// Accepts one connection on a console socket and receives the pty master sent on it, the
/// way runc's `recvtty` does: returns the terminal's name and the master.
pub fn receive_pty(listener: &std::os::unix::net::UnixListener) -> Result<(String, OwnedFd)> {
    let (conn, _) = listener
        .accept()
        .map_err(|e| Error::io("accepting on the console socket", None, e))?;
    let (name, fd) = recv_fd(&conn, 4096)?;
    Ok((String::from_utf8_lossy(&name).into_owned(), fd))
}
