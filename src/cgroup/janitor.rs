//! The janitor of a leaf, and a scope's keeper: processes that outlive become-root.
//!
//! Both are forks of become-root outside every namespace that hold nothing of the caller's:
//! standard input, output and error are /dev/null (a `$(...)`, a pipe to cat, an ssh session
//! or a CI runner waits for the end of its pipe, and a janitor waiting for a daemon of
//! COMMAND's would otherwise hold it for as long as the daemon lives), and every other
//! descriptor is closed but the pipe whose end says become-root is done (and a janitor's
//! directory of the leaf).
//!
//! The janitor's bounds: it waits for become-root's end, then for the leaf to empty, asleep
//! in poll(2) on cgroup.events, for as long as a process of the run is left (that costs no
//! CPU); then it removes the tree within [`tree::LIMIT`](super::tree::LIMIT), and ends. What it could not remove
//! (a cgroup made unreadable inside by a subordinate id, a tree it could not remove in time)
//! it reports with the function it was given, one line (become-root's state directory,
//! `janitor.log`: nothing else of the caller's is there once become-root has returned), and
//! ends: nothing changes by waiting.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::tree::{LIMIT, Leaf, Removal};
use crate::error::Error;
use crate::sys::{self, Forked};

/// Where the janitor says what it could not remove: one line, without a newline.
pub type Report = fn(&str);

/// How many times an emptied tree may turn out busy again (a cgroup made meanwhile) before
/// the janitor gives up on it, a tenth of a second apart.
const BUSY_TRIES: u32 = 50;

/// Start the janitor of `leaf` (a scope's keeper without): a fork that holds only the read
/// end of a pipe and the leaf's directory, ignores the signals a terminal or a session stop
/// sends, and once the pipe ends (become-root finished or was killed) removes the leaf as
/// soon as it is empty. A keeper's process keeps the scope (and the memory.events
/// become-root reads at the end) alive until become-root is done, then ends, and systemd
/// removes the scope with everything below it.
pub(super) fn start(leaf: Option<&Leaf>, report: Report) -> Result<(Pid, OwnedFd), Error> {
    let (read, write) = crate::process::pipe()?;
    match sys::fork_process().map_err(|e| Error::sys("fork", e))? {
        Forked::Child => {
            let read: OwnedFd = read.into();
            let fd = read.as_raw_fd();
            std::mem::forget(read);
            sys::stdio_to_null();
            let keep: Vec<i32> = [fd].into_iter().chain(leaf.map(Leaf::raw_fd)).collect();
            sys::close_fds_except(&keep);
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
            if let Some(leaf) = leaf
                && let Err(why) = clean_up(leaf)
            {
                report(&why);
            }
            sys::exit_now(0)
        }
        Forked::Parent(pid) => Ok((pid, write.into())),
    }
}

/// The janitor's work: wait for the leaf to empty (asleep, for as long as that takes), then
/// remove its tree within [`LIMIT`]; what is left, and why, when that fails.
fn clean_up(leaf: &Leaf) -> Result<(), String> {
    let mut busy = 0;
    loop {
        leaf.wait_emptied(None).map_err(|e| {
            format!(
                "{}: left in place: cannot watch its cgroup.events: {}",
                leaf.path.display(),
                e.desc()
            )
        })?;
        match leaf.remove(Instant::now() + LIMIT) {
            Removal::Removed => return Ok(()),
            Removal::Left(why) => return Err(why),
            Removal::Busy if busy < BUSY_TRIES => {
                busy += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Removal::Busy => {
                return Err(format!(
                    "{}: left in place: a cgroup in it kept being made again",
                    leaf.path.display()
                ));
            }
        }
    }
}
