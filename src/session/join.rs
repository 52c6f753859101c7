//! Sessions: `--join`, entering a session's (or a process's) namespaces.

use super::*;

// ---- --join ---------------------------------------------------------------------------------

/// The process whose namespaces a join enters, with them opened.
pub(super) struct Target {
    label: String,
    /// (kind, flag, descriptor) of every namespace to enter, user first, mnt last.
    enter: Vec<(&'static str, CloneFlags, OwnedFd)>,
    /// The target's working directory, a fallback for the join's.
    cwd: Option<OwnedFd>,
}

impl Target {
    fn resolve(spec: &str) -> Result<Target, Error> {
        let (pid, label, session) = if !spec.is_empty() && spec.bytes().all(|b| b.is_ascii_digit())
        {
            let pid = spec
                .parse::<i32>()
                .map_err(|_| SessionError::NoProcess { pid: spec.into() })?;
            (pid, format!("process {pid}"), None)
        } else {
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
            // The holder is checked below, through its /proc directory.
            (holder.pid, format!("session {spec}"), Some((dir, loaded)))
        };
        // The process is gone (or its pid was reused): a session's state is stale.
        let gone = || -> Error {
            match &session {
                Some((dir, loaded)) => {
                    let name = &loaded.record.name;
                    let _ = dir.remove_if_unchanged(name, &loaded.text);
                    SessionError::NoSession { name: name.clone() }.into()
                }
                None => SessionError::NoProcess {
                    pid: pid.to_string(),
                }
                .into(),
            }
        };
        let record = session.as_ref().map(|(_, loaded)| &loaded.record);
        // Everything below is read through this descriptor: if the process ends and its pid
        // is reused meanwhile, reads fail instead of describing the newcomer.
        let proc_dir = openat(
            AT_FDCWD,
            format!("/proc/{pid}").as_str(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|_| gone())?;
        let mut stat = Vec::new();
        openat(
            &proc_dir,
            "stat",
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map(File::from)
        .and_then(|mut f| {
            f.read_to_end(&mut stat)
                .map_err(|e| crate::sys::io_errno(&e))
        })
        .map_err(|_| gone())?;
        match (parse_stat(&stat), &record) {
            (None | Some(('Z' | 'X', _)), _) => return Err(gone()),
            (Some((_, start)), Some(r)) if r.holder.map(|h| h.start) != Some(start) => {
                return Err(gone());
            }
            _ => {}
        }
        // The user namespace first: the others are entered only when it owns them, that is
        // when the session made them. One the session merely shares with its creator (the
        // mount namespace of a systemd unit with PrivateTmp, say) is left as the caller has it.
        let open_ns = |kind: &str| {
            let path = format!("ns/{kind}");
            let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC;
            openat(&proc_dir, path.as_str(), flags, Mode::empty())
        };
        let enter_error = |kind, errno| SessionError::Enter {
            target: label.clone(),
            kind,
            errno,
        };
        let user = open_ns("user").map_err(|e| enter_error("user", e))?;
        let user_ino = fstat(&user).map_err(|e| enter_error("user", e))?.st_ino;
        let mut enter = Vec::new();
        if Some(user_ino) != own_namespace("user") {
            enter.push(("user", CloneFlags::CLONE_NEWUSER, user));
        } else if !Uid::effective().is_root() {
            // Already inside as root (a join from within the session) is fine; a process of
            // the caller's own user namespace has nothing to offer.
            return Err(SessionError::NotInUserns { target: label }.into());
        }
        for (kind, flag) in &KINDS[1..] {
            let Ok(fd) = open_ns(kind) else { continue };
            let ino = fstat(&fd).map(|st| st.st_ino).ok();
            if let Some(r) = &record
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
                enter.push((kind, *flag, fd));
            }
        }
        let entering_mnt = enter.iter().any(|(kind, ..)| *kind == "mnt");
        let cwd = entering_mnt
            .then(|| {
                openat(
                    &proc_dir,
                    "cwd",
                    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .ok()
            })
            .flatten();
        Ok(Target { label, enter, cwd })
    }
}

/// `--join`: enter the namespaces of a session (or a process) and run COMMAND there, in
/// `chdir` when given, as `identity`.
pub(super) fn join(
    spec: &str,
    words: Vec<std::ffi::OsString>,
    chdir: Option<&str>,
    identity: &crate::identity::Identity,
) -> Result<Infallible, Error> {
    let target = Target::resolve(spec)?;
    let caller = userns::Caller {
        uid: Uid::current().as_raw(),
        gid: Gid::current().as_raw(),
        name: None,
        nested: None,
    };
    // podman and buildah are told they are in a configured user namespace only where they can
    // mount (containers.rs): a session without a mount namespace shares the caller's mounts.
    let mount_ns = target.enter.iter().any(|(kind, ..)| *kind == "mnt");
    let mut command = Command::new(words, crate::containers::env(&caller, mount_ns))?;
    command.sigchld_ignored = sys::default_signal_was_ignored(Signal::SIGCHLD);
    // The caller's directory, looked up again by name inside (where a mount may cover it).
    let here = std::env::current_dir().ok();
    let mut pid_ns = false;
    for (kind, flag, fd) in &target.enter {
        nix::sched::setns(fd, *flag).map_err(|errno| SessionError::Enter {
            target: target.label.clone(),
            kind,
            errno,
        })?;
        pid_ns |= *kind == "pid";
    }
    drop(target.enter);
    // As a new run does: our ids are mapped to 0 in the session, so this moves no privilege;
    // it makes real, effective and saved ids read 0 inside. EINVAL: the session maps no 0
    // (--map=subids), and the join stays the caller, as that run's COMMAND is.
    let zero_gid = Gid::from_raw(0);
    let zero_uid = Uid::from_raw(0);
    match nix::unistd::setresgid(zero_gid, zero_gid, zero_gid) {
        Ok(()) | Err(nix::Error::EINVAL) => {}
        Err(e) => return Err(Error::sys("setting gid 0", e)),
    }
    match nix::unistd::setresuid(zero_uid, zero_uid, zero_uid) {
        Ok(()) | Err(nix::Error::EINVAL) => {}
        Err(e) => return Err(Error::sys("setting uid 0", e)),
    }
    match chdir {
        Some(dir) => nix::unistd::chdir(dir)
            .map_err(|errno| crate::mounts::mount_error(format!("--chdir {dir}"), errno))?,
        None => {
            let by_name = here.is_some_and(|dir| nix::unistd::chdir(&dir).is_ok());
            if !by_name && let Some(cwd) = &target.cwd {
                let _ = nix::unistd::fchdir(cwd);
            }
        }
    }
    drop(target.cwd);
    // --uid, --gid, --cap-*, --no-new-privs: last, as in a new run.
    let run = || match identity.apply() {
        Ok(()) => command.exec(),
        Err(e) => e,
    };
    if !pid_ns {
        return Err(run());
    }
    // A pid namespace takes only children: fork, and end the way COMMAND ends.
    process::block_forwarded_signals()?;
    let (alive_r, alive_w) = process::pipe()?;
    match sys::fork_process().map_err(|e| Error::sys("fork", e))? {
        Forked::Child => {
            drop(alive_w);
            // Die with become-root, as any supervised COMMAND does. getppid() is 0 here (the
            // parent is outside the pid namespace), so the race with become-root dying first
            // is closed with a pipe: its write end is gone when become-root is.
            let orphaned = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err() || {
                let mut fds = [PollFd::new(alive_r.as_fd(), PollFlags::POLLIN)];
                poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0)
            };
            if orphaned {
                sys::exit_now(crate::error::EXIT_FAILURE);
            }
            drop(alive_r);
            let e = run();
            e.report();
            sys::exit_now(e.exit_code())
        }
        Forked::Parent(child) => {
            drop(alive_r);
            let ending =
                process::supervise(child, process::Watch::default(), &mut Vec::new(), &mut ())?;
            drop(alive_w);
            ending.finish()
        }
    }
}
