//! The warden of the helpers the namespace process leaves running for COMMAND
//! (fuse-overlayfs) in a run without a pid namespace: a small process that ends them when
//! COMMAND ends, however it ends.
//!
//! They have a parent-death signal, but the kernel sends it as a kill(2) from the parent that
//! died and checks it as one (check_kill_permission in forget_original_parent): COMMAND under
//! --map=keep-id or --uid runs as an unprivileged id of the namespace, without CAP_KILL, which
//! may not signal a helper running as 0 inside, so the signal was dropped. fuse-overlayfs
//! then lived until become-root ended (become-root waited 2 s for it first), and for ever
//! when become-root was killed. (With a pid namespace the kernel ends every process in it
//! with its init.)
//!
//! The warden is root inside, as the helpers are. It holds a pidfd of COMMAND and of each
//! helper (a pidfd never reaches a process that reused the pid), and when COMMAND's becomes
//! readable, COMMAND has ended: it kills the helpers and leaves. Forked twice, it is
//! become-root's child (a subreaper), never one COMMAND could see or wait for; become-root
//! waits for it at the end as for the helpers.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::{Pid, getpid};

use crate::process::Ending;
use crate::sys::{self, Forked};

/// Start the warden of `helpers` (this process's children), to end them when this process
/// (COMMAND, once it has exec'd) ends; its pid goes to become-root on `report`, as a helper's.
/// Without pidfds (Linux before 5.3) there is none, and the helpers end as their
/// parent-death signal allows.
pub(super) fn start(helpers: &[i32], report: &std::fs::File) {
    if helpers.is_empty() {
        return;
    }
    let Ok(command) = sys::pidfd_open(getpid()) else {
        return;
    };
    let helpers: Vec<OwnedFd> = helpers
        .iter()
        .filter_map(|&pid| sys::pidfd_open(Pid::from_raw(pid)).ok())
        .collect();
    match sys::fork_process() {
        Ok(Forked::Parent(intermediate)) => {
            let _ = waitpid(intermediate, None); // gone at once, the warden reported
        }
        Ok(Forked::Child) => match sys::fork_process() {
            Ok(Forked::Parent(warden)) => {
                let _ = (&*report).write_all(&Ending::Helper(warden.as_raw()).encode());
                sys::exit_now(0)
            }
            Ok(Forked::Child) => watch(command, &helpers),
            Err(_) => sys::exit_now(0),
        },
        Err(_) => {}
    }
}

/// The warden: wait until COMMAND ends, then kill the helpers. Never returns.
fn watch(command: OwnedFd, helpers: &[OwnedFd]) -> ! {
    let mut keep = vec![command.as_raw_fd()];
    keep.extend(helpers.iter().map(AsRawFd::as_raw_fd));
    // Nothing of the caller's (a pipe it reads to its end) or of the host's stays open here.
    sys::keep_only_fds(&keep);
    let mut fds = [PollFd::new(command.as_fd(), PollFlags::POLLIN)];
    loop {
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => break,
            Err(Errno::EINTR) => {}
            // Cannot tell when COMMAND ends: leave the helpers to their parent-death signal.
            Err(_) => sys::exit_now(0),
        }
    }
    for helper in helpers {
        let _ = sys::pidfd_send_signal(helper, Signal::SIGKILL);
    }
    sys::exit_now(0)
}
