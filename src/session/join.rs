//! Sessions: `--join`, entering a session's (or a process's) namespaces.
//!
//! The join rule (the man page's SECURITY section says the same): nothing of the host is
//! reachable from inside the session while a join enters it, or after.
//! - From its first step the joiner is not dumpable (PR_SET_DUMPABLE 0), until it executes
//!   COMMAND: /proc/PID/root, cwd, fd/ and exe of a process that is not dumpable are denied
//!   to everyone without CAP_SYS_PTRACE in the user namespace it was executed in, the host's
//!   (ptrace(2), "ptrace access mode checking"). Without it a process inside a session
//!   without --pid, whose /proc is the host's, could open /proc/JOINER/root in the moment
//!   the joiner was in the session's user namespace (and so ptrace-accessible to root
//!   there) but not yet in its mount namespace, and reach the host's `/` (D11: through 5 to
//!   35 of 300 joins with a racing reader). execve(2) makes COMMAND dumpable again, inside.
//! - All namespaces are entered by one setns(2) on a pidfd of the session's process (Linux
//!   5.8): root and working directory move with the credentials, in one system call.
//! - The descriptors become-root opened are closed before COMMAND (close-on-exec, and the
//!   pidfd and the namespace files as soon as they are used); the working directory is
//!   looked up again inside. COMMAND inherits only what the caller handed it.
//! - With a cgroup of its own (--cgroup, a limit, --boot), the session's cgroup takes the
//!   joiner before its cgroup namespace does, so that COMMAND is counted and limited with the
//!   session's processes and reads `0::/` (D15).

use super::*;

// ---- --join ---------------------------------------------------------------------------------

/// The process whose namespaces a join enters, with what entering takes.
pub(super) struct Target {
    label: String,
    /// The process, by pidfd: what setns(2) enters through it cannot be the namespaces of a
    /// process that reused its pid.
    pidfd: OwnedFd,
    /// The namespaces to enter (user first, if at all), and their flags together.
    kinds: Vec<&'static str>,
    flags: CloneFlags,
    /// The target's working directory, a fallback for the join's.
    cwd: Option<OwnedFd>,
    /// The session's own cgroup (from its record) and the process's cgroup (from its
    /// /proc/PID/cgroup), when the join enters a cgroup namespace of such a session.
    cgroup: Option<(PathBuf, PathBuf)>,
    /// A booted image's session: its processes are the image's, not the caller's (the
    /// terminal rule).
    boot: bool,
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
                    // Stale only once its supervisor is gone too: until then it records how
                    // the session ended.
                    if !loaded.record.supervisor.alive() {
                        let _ = dir.remove_if_unchanged(name, &loaded.text);
                    }
                    SessionError::NoSession { name: name.clone() }.into()
                }
                None => SessionError::NoProcess {
                    pid: pid.to_string(),
                }
                .into(),
            }
        };
        let record = session.as_ref().map(|(_, loaded)| &loaded.record);
        // The pidfd first, then /proc/PID, then a check that the pidfd's process is still
        // alive: then both are the same process (its pid could not be reused meanwhile).
        // Everything below is read through that directory's descriptor.
        let pidfd = sys::pidfd_open(Pid::from_raw(pid)).map_err(|_| gone())?;
        let proc_dir = openat(
            AT_FDCWD,
            format!("/proc/{pid}").as_str(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|_| gone())?;
        if sys::pidfd_send_signal_number(&pidfd, 0) == Err(Errno::ESRCH) {
            return Err(gone());
        }
        let read = |file: &str| {
            let mut text = Vec::new();
            openat(
                &proc_dir,
                file,
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map(File::from)
            .and_then(|mut f| {
                f.read_to_end(&mut text)
                    .map_err(|e| crate::sys::io_errno(&e))
            })
            .map(|_| text)
        };
        let stat = read("stat").map_err(|_| gone())?;
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
            namespaces: namespaces_text(&[kind]),
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
                kinds.push(kind);
                flags |= *flag;
            }
        }
        let cwd = flags
            .contains(CloneFlags::CLONE_NEWNS)
            .then(|| {
                let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
                openat(&proc_dir, "cwd", flags, Mode::empty()).ok()
            })
            .flatten();
        // D15: a session's own cgroup takes the joiner before its cgroup namespace does.
        let cgroup = match record.and_then(|r| r.cgroup.as_ref()) {
            Some(own) if flags.contains(CloneFlags::CLONE_NEWCGROUP) => {
                let text = read("cgroup").map_err(|_| gone())?;
                let text = String::from_utf8_lossy(&text);
                let of_process = text.lines().find_map(|l| l.strip_prefix("0::"));
                of_process.map(|p| (PathBuf::from(own), PathBuf::from(p)))
            }
            _ => None,
        };
        let boot = record.is_some_and(|r| r.boot);
        Ok(Target {
            label,
            pidfd,
            kinds,
            flags,
            cwd,
            cgroup,
            boot,
        })
    }
}

/// Enter the namespaces `kinds` (`flags`) of `label`'s process at once (the join rule).
fn enter(label: &str, pidfd: &OwnedFd, kinds: &[&str], flags: CloneFlags) -> Result<(), Error> {
    if flags.is_empty() {
        return Ok(());
    }
    nix::sched::setns(pidfd, flags).map_err(|errno| {
        SessionError::Enter {
            target: label.to_string(),
            namespaces: namespaces_text(kinds),
            errno,
        }
        .into()
    })
}

/// "user namespace", "user and mnt namespaces", "user, net and mnt namespaces".
fn namespaces_text(kinds: &[&str]) -> String {
    match kinds {
        [] => "namespaces".into(),
        [one] => format!("{one} namespace"),
        [rest @ .., last] => format!("{} and {last} namespaces", rest.join(", ")),
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
    // The join rule: not dumpable until COMMAND is executed. prctl(2) cannot fail for these
    // arguments; if it ever did, the join must not go on exposed.
    nix::sys::prctl::set_dumpable(false).map_err(|e| Error::sys("prctl(PR_SET_DUMPABLE)", e))?;
    let target = Target::resolve(spec)?;
    let caller = userns::Caller {
        uid: Uid::current().as_raw(),
        gid: Gid::current().as_raw(),
        name: None,
        nested: None,
    };
    // podman and buildah are told they are in a configured user namespace only where they can
    // mount (containers.rs): a session without a mount namespace shares the caller's mounts.
    let mount_ns = target.flags.contains(CloneFlags::CLONE_NEWNS);
    let mut command = Command::new(words, crate::containers::env(&caller, mount_ns))?;
    command.sigchld_ignored = sys::default_signal_was_ignored(Signal::SIGCHLD);
    // The caller's directory, looked up again by name inside (where a mount may cover it).
    let here = std::env::current_dir().ok();
    let pid_ns = target.flags.contains(CloneFlags::CLONE_NEWPID);
    // D15: into the session's cgroup, from the host, before its cgroup namespace: this
    // process, or with a pid namespace the child that becomes COMMAND (see cgroup::Mover).
    let Target {
        label,
        pidfd,
        kinds,
        flags,
        cwd,
        cgroup,
        boot,
    } = target;
    let mover = match &cgroup {
        Some((own, of_process)) if pid_ns => {
            Some(crate::cgroup::Mover::start(&label, own, of_process)?)
        }
        Some((own, of_process)) => {
            crate::cgroup::join(&label, own, of_process, getpid())?;
            None
        }
        None => None,
    };
    enter(&label, &pidfd, &kinds, flags)?;
    drop(pidfd);
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
            if !by_name && let Some(cwd) = &cwd {
                let _ = nix::unistd::fchdir(cwd);
            }
        }
    }
    drop(cwd);
    if !pid_ns {
        // --uid, --gid, --cap-*, --no-new-privs: last, as in a new run.
        return Err(match identity.apply() {
            Ok(()) => command.exec(),
            Err(e) => e,
        });
    }
    // The terminal rule (process::console): in a booted image's session the caller's
    // terminal reaches nothing of the image's; COMMAND gets a pty of the image's own devpts
    // (opened here, inside its mount namespace) in a session of its own, relayed as
    // systemd-nspawn's machinectl shell does.
    let console = match boot {
        true => process::console::Console::for_terminal()?,
        false => None,
    };
    // A pid namespace takes only children: fork, and end the way COMMAND ends.
    process::block_forwarded_signals()?;
    let (go_r, go_w) = process::pipe()?;
    // Its write end tells the child that become-root is still there (process::parent).
    let (alive_r, alive_w) = process::pipe()?;
    match sys::fork_process().map_err(|e| Error::sys("fork", e))? {
        Forked::Child => {
            drop((go_w, alive_r));
            // Die with become-root, as any supervised COMMAND does, and go only on its word
            // (once it is in the session's cgroup). getppid() is 0 here (the parent is
            // outside the pid namespace), so the race with become-root dying first is closed
            // with the pipe: its write end is gone when become-root is.
            let mut word = [0u8; 1];
            let go = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_ok()
                && matches!((&go_r).read(&mut word), Ok(1));
            if !go {
                sys::exit_now(crate::error::EXIT_FAILURE);
            }
            drop(go_r);
            let start = || -> Result<Infallible, Error> {
                if let Some(console) = &console {
                    console.attach()?;
                }
                // --uid, --gid, --cap-*, --no-new-privs: last, as in a new run; a change of
                // ids clears the parent-death signal, so it is armed again (D17).
                identity.apply()?;
                process::die_with_become_root(&alive_w);
                Err(command.exec())
            };
            let Err(e) = start();
            e.report();
            sys::exit_now(e.exit_code())
        }
        Forked::Parent(child) => {
            drop(go_r);
            if let Some(mover) = mover
                && let Err(e) = mover.finish(child)
            {
                let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
                let _ = waitpid(child, None);
                return Err(e);
            }
            (&go_w)
                .write_all(b"g")
                .map_err(|e| Error::sys("starting COMMAND", sys::io_errno(&e)))?;
            let watch = process::Watch {
                console: console.as_ref(),
                ..Default::default()
            };
            let ending = process::supervise(child, watch, &mut Vec::new(), &mut ())?;
            drop((go_w, alive_r));
            ending.finish()
        }
    }
}

/// `--join=NAME --publish=SPEC... --unpublish=SPEC...`: change the published ports of running
/// session NAME through its live-ports socket (net::forward's control.rs), one spec at a
/// time, unpublishing first; each is done, or refused with nothing changed. A host port is
/// bound here, as a new run binds it, so its errors are a new run's.
pub(super) fn change_ports(
    name: &str,
    publish: &[String],
    unpublish: &[String],
    quiet: bool,
) -> Result<(), Error> {
    use crate::net::{self, ports};
    check_name(name).map_err(|why| SessionError::BadName {
        name: name.into(),
        why,
    })?;
    let missing = || SessionError::NoSession { name: name.into() };
    let dir = StateDir::open(false)?.ok_or_else(missing)?;
    let record = dir.live(name)?.ok_or_else(missing)?;
    if let Some(how) = record.ended {
        return Err(SessionError::Ended {
            name: name.into(),
            how,
        }
        .into());
    }
    let refused = |why: String, hint: Option<String>| SessionError::Ports {
        name: name.into(),
        why,
        hint,
    };
    if record.net.is_none() {
        return Err(refused(
            "it has no network namespace of its own, so there are no ports to publish".into(),
            Some(format!(
                "start it with --net: become-root --name={name} --net ..."
            )),
        )
        .into());
    }
    // Every spec is checked before anything changes.
    let parse = |specs: &[String]| -> Result<Vec<ports::Publish>, Error> {
        specs
            .iter()
            .map(|s| ports::parse(s).map_err(|e| net::NetError::from(e).into()))
            .collect()
    };
    let (publish, unpublish) = (parse(publish)?, parse(unpublish)?);
    if let Some(p) = unpublish.iter().find(|p| p.host_port == 0) {
        return Err(refused(
            format!("--unpublish={p}: name the host port it has, not 0"),
            Some("'become-root --list' shows the session's ports".into()),
        )
        .into());
    }
    let path = dir.path_of(&StateDir::ports_socket(name));
    let helper = record.net.clone().unwrap_or_default();
    let no_socket = |e: std::io::Error| {
        let why = match helper.as_str() {
            "pasta" => "its ports are forwarded by pasta (--port-driver=helper), which takes no \
                        ports while it runs (this pasta has no port API)"
                .to_string(),
            _ => format!(
                "it takes no live ports ({e}): its ports are forwarded by its network helper \
                 (--port-driver=helper), or it was started by an older become-root"
            ),
        };
        refused(
            why,
            Some(format!(
                "publish ports when starting it (-p), with the builtin port driver (the \
                 default); or stop it (--stop={name}) and start it again"
            )),
        )
    };
    for (verb, spec) in unpublish
        .iter()
        .map(|p| ("unpublish", *p))
        .chain(publish.iter().map(|p| ("publish", *p)))
    {
        let bound = match verb {
            "publish" => net::forward::bind(std::slice::from_ref(&spec))?.pop(),
            _ => None,
        };
        let chosen = bound.as_ref().map(|b| b.describe());
        let socket = bound.map(|b| b.into_fd());
        let answer = net::forward::ask_session(&path, verb, &spec, socket).map_err(no_socket)?;
        match answer {
            Ok(_) => {
                if let (Some(chosen), 0, false) = (chosen, spec.host_port, quiet) {
                    crate::error::say!("become-root: published {chosen}");
                }
            }
            // (a refusal of the session's that names the spec already is passed on as it is)
            Err(why) if why.starts_with("--") => return Err(refused(why, None).into()),
            Err(why) => return Err(refused(format!("--{verb}={spec}: {why}"), None).into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::namespaces_text;

    #[test]
    fn the_namespaces_an_error_names() {
        let table: &[(&[&str], &str)] = &[
            (&["user"], "user namespace"),
            (&["user", "mnt"], "user and mnt namespaces"),
            (&["user", "net", "mnt"], "user, net and mnt namespaces"),
        ];
        for (kinds, text) in table {
            assert_eq!(namespaces_text(kinds), *text);
        }
    }
}
