//! The process a `--join` enters, found and checked in steps: by pid or through its
//! session's record ([`locate`]), opened by pidfd and checked alive ([`open_alive`]), the
//! namespaces that are the session's own ([`namespaces_to_enter`]), and the session's
//! cgroup ([`session_cgroup`]). The join rule (join.rs) says why each is done so.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag, openat};
use nix::sched::CloneFlags;
use nix::sys::stat::{Mode, fstat};
use nix::unistd::{Pid, Uid};

use super::state::{Loaded, StateDir};
use super::{Containers, KINDS, Record, SessionError, check_name, own_namespace, parse_stat};
use crate::error::Error;
use crate::sys;

/// The process whose namespaces a join enters, with what entering takes.
pub(super) struct Target {
    pub(super) label: String,
    /// The process, by pidfd: what setns(2) enters through it cannot be the namespaces of a
    /// process that reused its pid.
    pub(super) pidfd: OwnedFd,
    /// The namespaces to enter (user first, if at all), and their flags together.
    pub(super) kinds: Vec<&'static str>,
    pub(super) flags: CloneFlags,
    /// The target's working directory, a fallback for the join's.
    pub(super) cwd: Option<OwnedFd>,
    /// The session's own cgroup (from its record) and the process's cgroup (from its
    /// /proc/PID/cgroup), when the join enters a cgroup namespace of such a session.
    pub(super) cgroup: Option<(PathBuf, PathBuf)>,
    /// A booted image's session: its processes are the image's, not the caller's (the
    /// terminal rule).
    pub(super) boot: bool,
    /// A containers namespace's (containers::namespace): what it was made for.
    pub(super) containers: Option<Containers>,
    /// A --net=bypass session's: what its bypass allows, for the join's COMMAND too.
    pub(super) bypass: Option<crate::net::bypass::Policy>,
}

/// What `--join=NAME|PID` names: a pid, its label for messages, and for a session its state
/// directory and record.
struct Located {
    pid: i32,
    label: String,
    session: Option<(StateDir, Loaded)>,
}

impl Target {
    pub(super) fn resolve(spec: &str) -> Result<Target, Error> {
        let located = locate(spec)?;
        let gone = || gone(&located);
        let record = located.session.as_ref().map(|(_, loaded)| &loaded.record);
        let (pidfd, proc_dir) = open_alive(located.pid, record).map_err(|()| gone())?;
        let (kinds, flags) = namespaces_to_enter(&proc_dir, &located.label, record, located.pid)?;
        let cwd = flags
            .contains(CloneFlags::CLONE_NEWNS)
            .then(|| {
                let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
                openat(&proc_dir, "cwd", flags, Mode::empty()).ok()
            })
            .flatten();
        let cgroup = session_cgroup(&proc_dir, record, flags).map_err(|()| gone())?;
        Ok(Target {
            boot: record.is_some_and(|r| r.boot),
            containers: record.and_then(|r| r.containers.clone()),
            bypass: record
                .filter(|_| flags.contains(CloneFlags::CLONE_NEWNET))
                .and_then(|r| r.bypass.as_deref())
                .and_then(crate::net::bypass::Policy::parse),
            label: located.label,
            pidfd,
            kinds,
            flags,
            cwd,
            cgroup,
        })
    }
}

/// Step 1: the pid `spec` names, itself or as the holder of session `spec`'s namespaces;
/// a session that ended, is not ready or belongs to another pid namespace is an error, and
/// a stale state file whose supervisor is gone is removed.
fn locate(spec: &str) -> Result<Located, Error> {
    if !spec.is_empty() && spec.bytes().all(|b| b.is_ascii_digit()) {
        let pid = spec
            .parse::<i32>()
            .map_err(|_| SessionError::NoProcess { pid: spec.into() })?;
        return Ok(Located {
            pid,
            label: format!("process {pid}"),
            session: None,
        });
    }
    check_name(spec).map_err(|why| SessionError::BadName {
        name: spec.into(),
        why,
    })?;
    let missing = || SessionError::NoSession { name: spec.into() };
    let dir = StateDir::open(false)?.ok_or_else(missing)?;
    let loaded = dir.load(spec)?.ok_or_else(missing)?;
    if loaded.record.pid_ns != dir.pid_ns {
        return Err(SessionError::ForeignPidNamespace { name: spec.into() }.into());
    }
    if let Some(how) = loaded.record.ended {
        return Err(SessionError::Ended {
            name: spec.into(),
            how,
        }
        .into());
    }
    let Some(holder) = loaded.record.holder else {
        if loaded.record.supervisor.alive() {
            return Err(SessionError::NotReady { name: spec.into() }.into());
        }
        dir.remove_if_unchanged(spec, &loaded.text)?;
        return Err(missing().into());
    };
    // The holder is checked by open_alive, through its /proc directory.
    Ok(Located {
        pid: holder.pid,
        label: format!("session {spec}"),
        session: Some((dir, loaded)),
    })
}

/// The process is gone (or its pid was reused): a session's state is stale, removed once
/// its supervisor is gone too (until then it records how the session ended).
fn gone(located: &Located) -> Error {
    match &located.session {
        Some((dir, loaded)) => {
            let name = &loaded.record.name;
            if !loaded.record.supervisor.alive() {
                let _ = dir.remove_if_unchanged(name, &loaded.text);
            }
            SessionError::NoSession { name: name.clone() }.into()
        }
        None => SessionError::NoProcess {
            pid: located.pid.to_string(),
        }
        .into(),
    }
}

/// Step 2: the process's pidfd and its /proc directory, the same process: the pidfd first,
/// then /proc/PID, then a check that the pidfd's process is still alive (its pid could not
/// be reused meanwhile), not a zombie, and for a session the holder its record names (by
/// start time). Everything later is read through that directory's descriptor. `Err`: gone.
fn open_alive(pid: i32, record: Option<&Record>) -> Result<(OwnedFd, OwnedFd), ()> {
    let pidfd = sys::pidfd_open(Pid::from_raw(pid)).map_err(drop)?;
    let proc_dir = openat(
        AT_FDCWD,
        format!("/proc/{pid}").as_str(),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(drop)?;
    if sys::pidfd_send_signal_number(&pidfd, 0) == Err(Errno::ESRCH) {
        return Err(());
    }
    let stat = read(&proc_dir, "stat").map_err(drop)?;
    match (parse_stat(&stat), record) {
        (None | Some(('Z' | 'X', _)), _) => Err(()),
        (Some((_, start)), Some(r)) if r.holder.map(|h| h.start) != Some(start) => Err(()),
        _ => Ok((pidfd, proc_dir)),
    }
}

/// A file of the process's /proc directory.
fn read(proc_dir: &OwnedFd, file: &str) -> Result<Vec<u8>, Errno> {
    let mut text = Vec::new();
    openat(
        proc_dir,
        file,
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(File::from)
    .and_then(|mut f| f.read_to_end(&mut text).map_err(|e| sys::io_errno(&e)))
    .map(|_| text)
}

/// Step 3: the namespaces to enter. The user namespace first: the others are entered only
/// when it owns them, that is when the session made them. One the session merely shares
/// with its creator (the mount namespace of a systemd unit with PrivateTmp, say) is left as
/// the caller has it. A session's namespace that is not the one its record names: the
/// process left it.
fn namespaces_to_enter(
    proc_dir: &OwnedFd,
    label: &str,
    record: Option<&Record>,
    pid: i32,
) -> Result<(Vec<&'static str>, CloneFlags), Error> {
    let open_ns = |kind: &str| {
        let path = format!("ns/{kind}");
        let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC;
        openat(proc_dir, path.as_str(), flags, Mode::empty())
    };
    let enter_error = |kind, errno| SessionError::Enter {
        target: label.to_string(),
        namespaces: super::join::namespaces_text(&[kind]),
        errno,
    };
    let user = open_ns("user").map_err(|e| enter_error("user", e))?;
    let user_ino = fstat(&user).map_err(|e| enter_error("user", e))?.st_ino;
    let mut kinds = Vec::new();
    let mut flags = CloneFlags::empty();
    if Some(user_ino) != own_namespace("user") {
        kinds.push("user");
        flags |= CloneFlags::CLONE_NEWUSER;
    } else if !Uid::effective().is_root() {
        // Already inside as root (a join from within the session) is fine; a process of
        // the caller's own user namespace has nothing to offer.
        return Err(SessionError::NotInUserns {
            target: label.to_string(),
        }
        .into());
    }
    for (kind, flag) in &KINDS[1..] {
        let Ok(fd) = open_ns(kind) else { continue };
        let ino = fstat(&fd).map(|st| st.st_ino).ok();
        if let Some(r) = record
            && let Some(want) = r.namespace(kind)
            && ino != Some(want)
        {
            return Err(SessionError::Left {
                name: r.name.clone(),
                pid,
                kind,
            }
            .into());
        }
        let owned = || {
            let owner = sys::namespace_owner(&fd).and_then(|o| fstat(&o));
            owner.is_ok_and(|st| st.st_ino == user_ino)
        };
        if ino.is_some() && ino != own_namespace(kind) && owned() {
            kinds.push(kind);
            flags |= *flag;
        }
    }
    Ok((kinds, flags))
}

/// Step 4 (D15): a session's own cgroup takes the joiner before its cgroup namespace does:
/// the session's cgroup and the process's, when the join enters the cgroup namespace of a
/// session with a cgroup of its own. `Err`: the process is gone.
fn session_cgroup(
    proc_dir: &OwnedFd,
    record: Option<&Record>,
    flags: CloneFlags,
) -> Result<Option<(PathBuf, PathBuf)>, ()> {
    match record.and_then(|r| r.cgroup.as_ref()) {
        Some(own) if flags.contains(CloneFlags::CLONE_NEWCGROUP) => {
            let text = read(proc_dir, "cgroup").map_err(drop)?;
            let text = String::from_utf8_lossy(&text);
            let of_process = text.lines().find_map(|l| l.strip_prefix("0::"));
            Ok(of_process.map(|p| (PathBuf::from(own), PathBuf::from(p))))
        }
        _ => Ok(None),
    }
}
