//! `--boot`'s /dev/console: a pty of become-root's, whose far end is bound at /dev/console in
//! the new root and whose output become-root copies to its standard error (a detached
//! session's log), as systemd-nspawn gives its containers one. Never the caller's own
//! terminal: what runs inside could push input into it with TIOCSTI (CVE-2017-5226, the same
//! hole in bubblewrap).

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};

use crate::error::Error;

/// The pty: both ends stay open in become-root (close-on-exec) for as long as it runs, so
/// that the image can open and close /dev/console as often as it likes.
#[derive(Debug)]
pub struct Console {
    master: OwnedFd,
    _slave: OwnedFd,
    /// The far end, /dev/pts/N of the caller's devpts, bound at the new root's /dev/console.
    pub path: PathBuf,
}

impl Console {
    pub fn open() -> Result<Console, Error> {
        let pty = nix::pty::openpty(None, None).map_err(|e| Error::sys("--boot: openpty", e))?;
        for fd in [&pty.master, &pty.slave] {
            fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
                .map_err(|e| Error::sys("--boot: the console pty", e))?;
        }
        let path = nix::unistd::ttyname(pty.slave.as_fd())
            .map_err(|e| Error::sys("--boot: the console pty's name", e))?;
        Ok(Console {
            master: pty.master,
            _slave: pty.slave,
            path,
        })
    }

    /// Both ends, for a process that must keep them (going into the background).
    pub fn raw_fds(&self) -> [i32; 2] {
        use std::os::fd::AsRawFd;
        [self.master.as_raw_fd(), self._slave.as_raw_fd()]
    }

    /// Copy what the image writes to the console to become-root's standard error, from a
    /// thread of its own, for as long as become-root runs. The pty's line discipline turns
    /// each newline into CR LF (systemd sets ONLCR on its console); the CRs are dropped.
    pub fn copy_to_stderr(&self) -> Result<(), Error> {
        let master = self
            .master
            .try_clone()
            .map_err(|e| Error::sys("--boot: the console pty", crate::sys::io_errno(&e)))?;
        std::thread::spawn(move || {
            let mut master = std::fs::File::from(master);
            let mut buf = [0u8; 4096];
            loop {
                match master.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        let text: Vec<u8> =
                            buf[..n].iter().copied().filter(|&b| b != b'\r').collect();
                        let _ = std::io::stderr().write_all(&text);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return,
                }
            }
        });
        Ok(())
    }
}
