//! Sessions: the containers namespace's (containers::namespace), as `launch::containers`
//! finds, makes and joins it.

use std::convert::Infallible;
use std::fs::File;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag, openat};
use nix::sys::stat::Mode;

use super::join::join;
use super::state::StateDir;
use super::{Containers, Record, SessionError};
use crate::error::Error;

/// Where the containers namespace of a name stands.
#[derive(Debug)]
pub enum Standing {
    /// Ready to join: what it was made with.
    Ready(Containers),
    /// None (or one that ended): it is to be made.
    Absent,
    /// Being made by another become-root.
    Starting,
}

/// Where the containers namespace `name` stands; an error when a session of that name is not
/// one (a user's own `--name=podman`).
pub fn standing(name: &str) -> Result<Standing, Error> {
    let Some(dir) = StateDir::open(false)? else {
        return Ok(Standing::Absent);
    };
    let record = match dir.live(name)? {
        Some(record) if record.ended.is_none() => record,
        _ => return Ok(Standing::Absent),
    };
    let Some(containers) = record.containers else {
        return Err(SessionError::NotContainers { name: name.into() }.into());
    };
    Ok(match record.holder {
        Some(_) => Standing::Ready(containers),
        None => Standing::Starting,
    })
}

/// The lock a become-root holds while it makes a containers namespace, so that two first
/// calls at once make one (the second waits, then joins it).
pub struct MakingLock {
    _lock: Flock<File>,
}

/// Take the lock of [`MakingLock`]: an flock(2) on `containers.lock` in the state directory,
/// waited for.
pub fn making_lock() -> Result<MakingLock, Error> {
    let dir = StateDir::open(true)?
        .ok_or(Errno::ENOENT)
        .map_err(|e| Error::sys("opening the session state directory", e))?;
    let file = "containers.lock";
    let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(&dir.fd, file, flags, Mode::from_bits_truncate(0o600))
        .map_err(|e| dir.error(file, "create", e))?;
    let lock = Flock::lock(File::from(fd), FlockArg::LockExclusive)
        .map_err(|(_, e)| dir.error(file, "lock", e))?;
    Ok(MakingLock { _lock: lock })
}

/// Run COMMAND in the containers namespace `spec` (its name, or the pid of plain podman's
/// pause process), as `--join=SPEC` does, in `chdir` when given. `warn_in`: the name the
/// warning about a cgroup layout crun refuses gives it (None: no warning).
pub fn join_containers(
    spec: &str,
    command: Vec<std::ffi::OsString>,
    chdir: Option<&str>,
    warn_in: Option<&str>,
) -> Result<Infallible, Error> {
    let identity = crate::identity::Identity::from_asked(&crate::identity::Asked::default())?;
    join(spec, command, chdir, &identity, warn_in)
}

/// The containers namespaces that run, oldest first, with each one's uid map and gid map as
/// its process has them ("INSIDE OUTSIDE COUNT" lines, as /proc/PID/uid_map reads from the
/// caller's user namespace).
pub fn namespaces() -> Vec<(Record, String, String)> {
    let Ok(Some(dir)) = StateDir::open(false) else {
        return Vec::new();
    };
    let sessions = dir.sessions().unwrap_or_default();
    sessions
        .into_iter()
        .filter(|r| r.containers.is_some() && r.ended.is_none())
        .filter_map(|r| {
            let pid = r.holder?.pid;
            let read = |file| std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok();
            let (uid, gid) = (read("uid_map")?, read("gid_map")?);
            Some((r, uid, gid))
        })
        .collect()
}
