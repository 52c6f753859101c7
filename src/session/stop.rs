//! Sessions: `--stop`, ending everything in a session.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag, openat};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::stat::{Mode, fstat};
use nix::unistd::Pid;

use super::{Proc, STOP_GRACE, SessionError, load_named, own_namespace, parse_ns_link};
use crate::error::Error;
use crate::process::BOOT_STOP_GRACE;
use crate::sys;

// ---- --stop ---------------------------------------------------------------------------------

/// A process to end, held by a pidfd so that no signal can reach a process that reused its
/// pid.
pub(super) struct Doomed {
    pid: i32,
    pidfd: OwnedFd,
}

/// `--stop=NAME`: signal the session, kill what is left after the grace period, wait for its
/// supervisor, and remove its state.
pub(super) fn stop(name: &str, timeout: Option<u64>) -> Result<(), Error> {
    let missing = || SessionError::NoSession { name: name.into() };
    let (dir, loaded) = load_named(name)?;
    let record = loaded.record;
    if record.pid_ns != dir.pid_ns {
        return Err(SessionError::ForeignPidNamespace { name: name.into() }.into());
    }
    // An ended session is removed, with its log, once its supervisor is gone: it recorded
    // the end and may still be undoing the run (its helpers, its cgroup).
    if record.ended.is_some() {
        if let (Some(s), _) = doomed_of(&record) {
            wait_for_supervisor(s);
        }
        return Ok(dir.remove_if_unchanged(name, &loaded.text)?);
    }
    if !record.alive() {
        dir.remove_if_unchanged(name, &loaded.text)?;
        return Err(missing().into());
    }
    let (supervisor, doomed) = doomed_of(&record);
    let grace = grace_of(timeout, record.stop_timeout, record.boot);
    let signo = signal_first(name, record.boot, supervisor.as_ref(), &doomed)?;
    kill_what_is_left(name, doomed, grace, signo)?;
    // become-root's background part stops the network helper and removes the state itself
    // once the holder has ended; if it does not, it dies (and its helpers with it). Either
    // way --stop returns only once it is gone.
    if let Some(s) = supervisor {
        wait_for_supervisor(s);
    }
    // A detached session's supervisor kept its state as it ended (its status and log): that
    // too goes with --stop.
    let text = match dir.load(name)? {
        Some(now) if now.record.supervisor == record.supervisor && now.record.ended.is_some() => {
            now.text
        }
        _ => loaded.text,
    };
    dir.remove_if_unchanged(name, &text)?;
    Ok(())
}

/// Wait for the session's supervisor to end (it undoes the run: helpers, cgroup, state); one
/// still there after 2 s is killed.
fn wait_for_supervisor(supervisor: Doomed) {
    for d in wait_for_exit(vec![supervisor], Instant::now() + Duration::from_secs(2)) {
        let _ = sys::pidfd_send_signal(&d.pidfd, Signal::SIGKILL);
        wait_for_exit(vec![d], Instant::now() + Duration::from_secs(2));
    }
}

/// The session's supervisor, and the processes to end: its holder, then every other member
/// of its user namespace, each held by a pidfd opened before it is checked.
fn doomed_of(record: &super::Record) -> (Option<Doomed>, Vec<Doomed>) {
    let open = |proc: &Proc| -> Option<Doomed> {
        let pidfd = sys::pidfd_open(Pid::from_raw(proc.pid)).ok()?;
        // Checked after the pidfd is open: it then surely holds this very process.
        proc.alive().then_some(Doomed {
            pid: proc.pid,
            pidfd,
        })
    };
    let supervisor = open(&record.supervisor);
    let mut doomed: Vec<Doomed> = record.holder.as_ref().and_then(open).into_iter().collect();
    if let Some(user_ns) = record.namespace("user") {
        for pid in members(user_ns) {
            if doomed.iter().all(|d| d.pid != pid)
                && let Ok(pidfd) = sys::pidfd_open(Pid::from_raw(pid))
                && member_of(pid, user_ns)
            {
                doomed.push(Doomed { pid, pidfd });
            }
        }
    }
    (supervisor, doomed)
}

/// How long the session has to end before SIGKILL: --stop-timeout, else what it was started
/// with, else the default for a booted image or another session.
fn grace_of(asked: Option<u64>, recorded: Option<u64>, boot: bool) -> Duration {
    asked
        .or(recorded)
        .map(Duration::from_secs)
        .unwrap_or(match boot {
            true => BOOT_STOP_GRACE,
            false => STOP_GRACE,
        })
}

/// Signal the session, and return the signal; if not one of its processes could be
/// signalled (EPERM: the state file names processes that are not the caller's), say so at
/// once instead of waiting. A booted image (--boot) is stopped as systemd-nspawn stops one,
/// by SIGRTMIN+3 to its pid 1 alone, which shuts the system down. Its supervisor sends it,
/// as it does on its own SIGTERM: only once pid 1 has a handler for it, for an init drops
/// the signals it does not handle and one sent in the first moments of a boot would be lost
/// (process::supervise).
fn signal_first(
    name: &str,
    boot: bool,
    supervisor: Option<&Doomed>,
    doomed: &[Doomed],
) -> Result<i32, Error> {
    let (first, signo): (Vec<&Doomed>, i32) = if doomed.is_empty() || boot {
        match (supervisor, doomed.first()) {
            (Some(s), _) => (vec![s], Signal::SIGTERM as i32),
            // No supervisor: only the image itself is left to ask.
            (None, holder) => (holder.into_iter().collect(), nix::libc::SIGRTMIN() + 3),
        }
    } else {
        (doomed.iter().collect(), Signal::SIGTERM as i32)
    };
    let refused: Vec<(i32, Errno)> = first
        .iter()
        .filter_map(|d| {
            sys::pidfd_send_signal_number(&d.pidfd, signo)
                .err()
                .filter(|e| *e != Errno::ESRCH)
                .map(|e| (d.pid, e))
        })
        .collect();
    if !first.is_empty() && refused.len() == first.len() {
        let (pid, errno) = refused[0];
        return Err(SessionError::CannotSignal {
            name: name.into(),
            pid,
            errno,
        }
        .into());
    }
    Ok(signo)
}

/// Wait up to `grace` for `doomed` to end after `signo`, then SIGKILL what is left, saying
/// so; an error if something survives even that.
fn kill_what_is_left(
    name: &str,
    doomed: Vec<Doomed>,
    grace: Duration,
    signo: i32,
) -> Result<(), Error> {
    let left = wait_for_exit(doomed, Instant::now() + grace);
    if !left.is_empty() {
        let pids: Vec<String> = left.iter().map(|d| d.pid.to_string()).collect();
        crate::error::say!(
            "become-root: session {name}: still running {} s after {}: killed (pid {})",
            grace.as_secs(),
            crate::process::signal_name(signo),
            pids.join(", ")
        );
    }
    for d in &left {
        let _ = sys::pidfd_send_signal(&d.pidfd, Signal::SIGKILL);
    }
    let stuck = wait_for_exit(left, Instant::now() + Duration::from_secs(2));
    if !stuck.is_empty() {
        return Err(SessionError::StillAlive {
            name: name.into(),
            pids: stuck.iter().map(|d| d.pid).collect(),
        }
        .into());
    }
    Ok(())
}

/// Wait until every process in `procs` has ended, or `deadline`; return those still alive.
pub(super) fn wait_for_exit(mut procs: Vec<Doomed>, deadline: Instant) -> Vec<Doomed> {
    while !procs.is_empty() {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let ms = (deadline - now).as_millis().min(1000) as u16;
        let exited: Vec<bool> = {
            let mut fds: Vec<PollFd> = procs
                .iter()
                .map(|d| PollFd::new(d.pidfd.as_fd(), PollFlags::POLLIN))
                .collect();
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => break,
            }
            fds.iter()
                .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
                .collect()
        };
        let mut exited = exited.into_iter();
        procs.retain(|_| !exited.next().unwrap_or(false));
    }
    procs
}

/// Pids of the processes in user namespace `user_ns` or in one nested in it.
pub(super) fn members(user_ns: u64) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let own = own_namespace("user");
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            let link = std::fs::read_link(format!("/proc/{pid}/ns/user"));
            match link
                .ok()
                .and_then(|l| parse_ns_link(l.as_os_str().as_bytes()))
            {
                Some(ino) if ino == user_ns => true,
                // Most processes share ours; only the others can be nested in the session.
                Some(ino) if Some(ino) != own => member_of(pid, user_ns),
                _ => false,
            }
        })
        .collect()
}

/// Whether `pid` is in user namespace `user_ns` or in one nested in it (walking up with
/// NS_GET_PARENT, which stops with EPERM at the caller's own namespace).
pub(super) fn member_of(pid: i32, user_ns: u64) -> bool {
    let Ok(mut ns) = openat(
        AT_FDCWD,
        format!("/proc/{pid}/ns/user").as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    for _ in 0..33 {
        // user namespaces nest at most 32 deep
        match fstat(&ns) {
            Ok(st) if st.st_ino == user_ns => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
        match sys::namespace_parent(&ns) {
            Ok(parent) => ns = parent,
            Err(_) => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{BOOT_STOP_GRACE, STOP_GRACE, grace_of};

    #[test]
    fn the_grace_a_stop_gives() {
        let s = Duration::from_secs;
        // (--stop-timeout, recorded at the start, --boot) -> grace
        for (asked, recorded, boot, want) in [
            (None, None, false, STOP_GRACE),
            (None, None, true, BOOT_STOP_GRACE),
            (None, Some(7), true, s(7)),
            (Some(2), Some(7), false, s(2)),
            (Some(0), None, true, s(0)),
        ] {
            assert_eq!(
                grace_of(asked, recorded, boot),
                want,
                "{asked:?} {recorded:?} {boot}"
            );
        }
    }
}
