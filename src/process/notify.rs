//! sd_notify(3)'s protocol, both ends: datagrams of `KEY=VALUE` lines on a unix socket whose
//! path is in `$NOTIFY_SOCKET`.
//!
//! - A booted image's init tells become-root when it is ready ([`Listener`]): systemd's
//!   container interface gives pid 1 a `NOTIFY_SOCKET` (systemd-nspawn's is
//!   /run/host/notify), and systemd sends `READY=1` on it once its boot is done.
//! - become-root tells the service manager it runs under ([`Notifier`]): a `Type=notify` unit
//!   gets `READY=1` once the run is ready and `STOPPING=1` when it stops. The variable is
//!   become-root's, taken out of the environment before COMMAND's is made.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr, sendto, setsockopt, socket, sockopt,
};

use crate::error::Error;

/// Where pid 1 of a booted image finds the socket, as under systemd-nspawn.
pub const INSIDE: &str = "/run/host/notify";

/// The image's end: a datagram socket become-root reads, bound inside the image's /run by the
/// namespace process (so no path of the host is involved, and the tmpfs it is on goes with
/// the namespaces).
#[derive(Debug)]
pub struct Listener {
    socket: OwnedFd,
}

impl Listener {
    pub fn new() -> Result<Listener, Error> {
        let socket = socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(|e| Error::sys("the notification socket", e))?;
        // Each message then carries its sender's pid, as become-root's pid namespace sees it.
        setsockopt(&socket, sockopt::PassCred, &true)
            .map_err(|e| Error::sys("the notification socket", e))?;
        Ok(Listener { socket })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// In the namespace process, in the new root: bind the socket at [`INSIDE`] (the same
    /// socket is become-root's: the descriptor was inherited). Mode 0700, so that only root
    /// inside, the image's own system manager, may send on it.
    pub fn bind_inside(&self) -> Result<(), Error> {
        let path = Path::new(INSIDE);
        let fail = |e| Error::sys(format!("the notification socket {INSIDE}"), e);
        let dir = path.parent().expect("an absolute path");
        match nix::unistd::mkdir(dir, nix::sys::stat::Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(e) => return Err(fail(e)),
        }
        let addr = UnixAddr::new(path).map_err(fail)?;
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
        let bound = nix::sys::socket::bind(self.socket.as_raw_fd(), &addr);
        nix::sys::stat::umask(old);
        bound.map_err(fail)
    }

    /// The next message and its sender's pid, without waiting; `None` when there is none.
    pub fn receive(&self) -> Option<(Option<i32>, String)> {
        let mut buf = [0u8; 4096];
        let (len, pid) = crate::sys::recv_with_sender(&self.socket, &mut buf).ok()?;
        Some((pid, String::from_utf8_lossy(&buf[..len]).into_owned()))
    }
}

/// The service manager's end (`$NOTIFY_SOCKET`: a path, or `@name` for an abstract one).
#[derive(Debug)]
pub struct Notifier {
    socket: OwnedFd,
    addr: UnixAddr,
    /// The variable's value, to give back to become-root started again (a reboot).
    pub value: std::ffi::OsString,
}

impl Notifier {
    /// From `value`, `$NOTIFY_SOCKET`'s; `None` when it names no unix socket address.
    pub fn new(value: std::ffi::OsString) -> Option<Notifier> {
        use std::os::unix::ffi::OsStrExt;
        let bytes = value.as_bytes();
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => UnixAddr::new_abstract(name).ok()?,
            None if bytes.starts_with(b"/") => UnixAddr::new(Path::new(&value)).ok()?,
            None => return None,
        };
        let socket = socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .ok()?;
        Some(Notifier {
            socket,
            addr,
            value,
        })
    }

    /// Send `text` (`READY=1`, ...). A service manager that went away is no reason to stop.
    pub fn send(&self, text: &str) {
        let _ = sendto(
            self.socket.as_raw_fd(),
            text.as_bytes(),
            &self.addr,
            MsgFlags::MSG_NOSIGNAL,
        );
    }
}

/// Whether `message` holds the line `line` (`READY=1`).
pub fn says(message: &str, line: &str) -> bool {
    message.lines().any(|l| l == line)
}
