//! The parent-death rule: a process become-root leaves in the namespaces (the namespace
//! process, which becomes COMMAND or init) dies with become-root, by a SIGKILL the kernel
//! sends when become-root is gone (PR_SET_PDEATHSIG), however become-root ends, SIGKILL
//! included.
//!
//! The kernel clears that setting whenever the process's effective or filesystem uid or gid
//! changes, or its capabilities grow (commit_creds; prctl(2)), and on the exec of a
//! set-user-ID, set-group-ID or file-capability program. Under --map=keep-id, --uid/--gid, or
//! an explicit map that puts a subordinate id at 0, the namespace process changes its ids
//! twice (to 0 inside, then to COMMAND's identity), so the setting is armed again after each
//! change, and the process then checks that become-root did not die before it took: a death
//! in between would have sent nothing.

use std::os::fd::AsFd;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;

use crate::sys;

/// Arm the parent-death SIGKILL (again), after a change of ids, then exit at once if
/// become-root is gone already. `alive` is the write end of a pipe whose read end only
/// become-root holds: once it is gone, the write end reports POLLERR. (getppid(2) cannot tell
/// from inside a pid namespace, where it reads 0 whoever the parent is.)
pub fn die_with_become_root(alive: &impl AsFd) {
    let orphaned = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err() || {
        let mut fds = [PollFd::new(alive.as_fd(), PollFlags::empty())];
        let polled = poll(&mut fds, PollTimeout::ZERO);
        polled.is_err()
            || fds[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLERR))
    };
    if orphaned {
        sys::exit_now(crate::error::EXIT_FAILURE);
    }
}
