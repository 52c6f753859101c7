//! The janitor of a leaf (and a scope's keeper), and removing a cgroup tree once it is empty.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::error::Error;
use crate::sys::{self, Forked};

/// The janitor: a fork that holds only the read end of a pipe, ignores the signals a
/// terminal or a session stop sends, and once the pipe ends (become-root finished or was
/// killed) removes the leaf as soon as it is empty.
///
/// Without `path` it is a scope's keeper: its process keeps the scope (and the memory.events
/// become-root reads at the end) alive until become-root is done, then it ends, and systemd
/// removes the scope with everything below it.
pub(super) fn start(path: Option<&Path>) -> Result<(Pid, OwnedFd), Error> {
    let (read, write) = crate::process::pipe()?;
    match sys::fork_process().map_err(|e| Error::sys("fork", e))? {
        Forked::Child => {
            let read: OwnedFd = read.into();
            let fd = read.as_raw_fd();
            std::mem::forget(read);
            sys::close_fds_except(&[fd]);
            let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
            for sig in [
                Signal::SIGINT,
                Signal::SIGTERM,
                Signal::SIGHUP,
                Signal::SIGQUIT,
                Signal::SIGTSTP,
            ] {
                sys::ignore_signal(sig);
            }
            let _ = nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&nix::sys::signal::SigSet::empty()),
                None,
            );
            let mut byte = [0u8; 1];
            while matches!(
                nix::unistd::read(sys::borrow_fd(fd), &mut byte),
                Ok(1) | Err(nix::Error::EINTR)
            ) {}
            // EBUSY: still populated after an hour (a daemon of COMMAND's); wait on.
            while let Some(path) = path
                && remove_tree(path, Duration::from_secs(3600)) == Err(nix::Error::EBUSY)
            {
            }
            sys::exit_now(0)
        }
        Forked::Parent(pid) => Ok((pid, write.into())),
    }
}

/// Remove cgroup `dir` and the cgroups below it (what COMMAND made: podman's, systemd's),
/// deepest first, waiting up to `wait` for each to empty. ENOENT counts as removed.
pub(super) fn remove_tree(dir: &Path, wait: Duration) -> Result<(), nix::Error> {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path(), wait)?;
            }
        }
    }
    let deadline = Instant::now() + wait;
    loop {
        match std::fs::remove_dir(dir).map_err(|e| sys::io_errno(&e)) {
            Ok(()) | Err(nix::Error::ENOENT) => return Ok(()),
            Err(nix::Error::EBUSY) if Instant::now() < deadline => wait_emptied(dir, deadline),
            Err(e) => return Err(e),
        }
    }
}

/// Wait until cgroup.events of `dir` says "populated 0", or `deadline`: the kernel notifies
/// a change of that file to poll(2) as POLLPRI (cgroup-v2.rst, "cgroup.events").
fn wait_emptied(dir: &Path, deadline: Instant) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let Ok(events) = std::fs::File::open(dir.join("cgroup.events")) else {
        return;
    };
    loop {
        let text = std::fs::read_to_string(dir.join("cgroup.events")).unwrap_or_default();
        if !text.lines().any(|l| l == "populated 1") || Instant::now() >= deadline {
            return;
        }
        let left = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(1));
        let mut fds = [PollFd::new(
            std::os::fd::AsFd::as_fd(&events),
            PollFlags::POLLPRI,
        )];
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let _ = poll(&mut fds, PollTimeout::from(ms));
    }
}
