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
//!   A join of a --net=bypass session is dumpable a moment earlier, once it is wholly inside
//!   and holds nothing of the host's ([`filter`]).
//! - All namespaces are entered by one setns(2) on a pidfd of the session's process (Linux
//!   5.8): root and working directory move with the credentials, in one system call.
//! - The descriptors become-root opened are closed before COMMAND (close-on-exec, and the
//!   pidfd and the namespace files as soon as they are used); the working directory is
//!   looked up again inside. COMMAND inherits only what the caller handed it.
//! - With a cgroup of its own (--cgroup, a limit, --boot), the session's cgroup takes the
//!   joiner before its cgroup namespace does, so that COMMAND is counted and limited with the
//!   session's processes and reads `0::/` (D15).

use std::convert::Infallible;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::{Gid, Uid, getpid};

use super::target::Target;
use super::{Record, SessionError, StateDir, check_name};
use crate::error::Error;
use crate::process::{self, Command};
use crate::sys::{self, Forked};
use crate::userns;

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
pub(super) fn namespaces_text(kinds: &[&str]) -> String {
    match kinds {
        [] => "namespaces".into(),
        [one] => format!("{one} namespace"),
        [rest @ .., last] => format!("{} and {last} namespaces", rest.join(", ")),
    }
}

/// `--join`: enter the namespaces of a session (or a process) and run COMMAND there, in
/// `chdir` when given, as `identity`. `warn_in`: the name of the containers namespace
/// COMMAND runs in, for the warning about a cgroup layout crun refuses (None, or a session
/// that is not one: no warning). The steps: find the target, make COMMAND, move into
/// the session's cgroup, enter, take ids 0, change directory, then exec COMMAND in place or,
/// into a pid namespace, as a supervised child.
pub(super) fn join(
    spec: &str,
    words: Vec<std::ffi::OsString>,
    chdir: Option<&str>,
    identity: &crate::identity::Identity,
    warn_in: Option<&str>,
) -> Result<Infallible, Error> {
    // The join rule: not dumpable until COMMAND is executed. prctl(2) cannot fail for these
    // arguments; if it ever did, the join must not go on exposed.
    nix::sys::prctl::set_dumpable(false).map_err(|e| Error::sys("prctl(PR_SET_DUMPABLE)", e))?;
    let target = Target::resolve(spec)?;
    let bypass = match target.bypass {
        Some(policy) => Some(answer_outside(policy)?),
        None => None,
    };
    let containers = containers_join(&target, &words, warn_in);
    let command = joined_command(words, target.flags, &containers)?;
    // The caller's directory, looked up again by name inside (where a mount may cover it).
    let here = std::env::current_dir().ok();
    let pid_ns = target.flags.contains(CloneFlags::CLONE_NEWPID);
    let Target {
        label,
        pidfd,
        kinds,
        flags,
        cwd,
        cgroup,
        boot,
        containers: _,
        bypass: _,
    } = target;
    let mover = into_session_cgroup(&label, cgroup.as_ref(), pid_ns)?;
    enter(&label, &pidfd, &kinds, flags)?;
    drop(pidfd);
    take_ids_zero()?;
    containers.inside(&label)?;
    change_directory(chdir, here, cwd)?;
    if !pid_ns {
        // --uid, --gid, --cap-*, --no-new-privs: last, as in a new run.
        return Err(match identity.apply().and_then(|()| filter(bypass)) {
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
    in_pid_namespace(command, identity, console, mover, bypass)
}

/// A join of a --net=bypass session: this process forks and stays outside, in the caller's
/// network namespace, to answer the socket calls of the joined COMMAND as the session's
/// become-root answers its own (net::bypass), and ends as the join does; the child goes on
/// to join, with the channel to send its filter's listener on ([`filter`]).
fn answer_outside(policy: crate::net::bypass::Policy) -> Result<Answered, Error> {
    let (outside, inside) =
        crate::net::bypass::join_channel().map_err(|e| Error::sys("socketpair", e))?;
    let (alive_r, alive_w) = process::pipe()?;
    // Forwarded from here on (signalfd); COMMAND's exec unblocks them.
    process::block_forwarded_signals()?;
    let child = match sys::fork_process().map_err(|e| Error::sys("fork", e))? {
        Forked::Child => {
            drop((outside, alive_r));
            // It dies with the answerer: a COMMAND whose listener is gone would get ENOSYS
            // from every socket call it stops.
            process::die_with_become_root(&alive_w);
            return Ok(Answered {
                channel: inside,
                alive: alive_w,
            });
        }
        Forked::Parent(child) => child,
    };
    drop((inside, alive_w));
    let mut answerer = match crate::net::bypass::receive(outside, None, policy) {
        Ok(answerer) => answerer,
        Err(e) => {
            // The child waits for our word, and ends without it: COMMAND never runs.
            let _ = waitpid(child, None);
            return Err(e.into());
        }
    };
    let watch = process::Watch {
        source: answerer.as_mut().map(|a| a as &mut dyn process::Source),
        ..Default::default()
    };
    let ending = process::supervise(child, watch, &mut Vec::new(), &mut ())?;
    drop(alive_r);
    ending.finish()
}

/// What the joining child of [`answer_outside`] keeps: the channel to send its listener on,
/// and the write end of a pipe only the answerer reads (process::parent), to die with it.
struct Answered {
    channel: OwnedFd,
    alive: File,
}

/// Last before COMMAND of a join of a --net=bypass session: the filter, as in the session's
/// own namespace process (net::bypass::install_inside). The process that installs it must
/// let the process outside take copies of its listener: pidfd_getfd(2) asks for
/// PTRACE_MODE_ATTACH_REALCREDS, which a process that is not dumpable denies to anyone
/// without CAP_SYS_PTRACE (ptrace(2), "ptrace access mode checking"). So it is dumpable
/// again here, a moment before execve(2) makes it so anyway: by now it is in every
/// namespace of the session, its root and directory are the session's (the join rule's D11
/// window is closed), and it holds nothing of the host's but the channel, whose other end
/// takes one message and copies only descriptors of this process.
fn filter(bypass: Option<Answered>) -> Result<(), Error> {
    if let Some(Answered { channel, alive }) = bypass {
        // Its ids may have changed (--uid), and the parent-death signal with them (D17).
        process::die_with_become_root(&alive);
        nix::sys::prctl::set_dumpable(true).map_err(|e| Error::sys("prctl(PR_SET_DUMPABLE)", e))?;
        crate::net::bypass::install_inside(channel)?;
    }
    Ok(())
}

/// What a join of a containers namespace does more: podman's home there (under another map
/// than rootless podman's own, its home is its own: containers::namespace), and the warning
/// for COMMAND that runs a container, which crun refuses on a hybrid host.
struct ContainersJoin {
    home: Option<(PathBuf, crate::options::MapMode)>,
    warn: Option<(String, Vec<std::ffi::OsString>)>,
}

fn containers_join(
    target: &Target,
    words: &[std::ffi::OsString],
    warn_in: Option<&str>,
) -> ContainersJoin {
    let home = target.containers.as_ref().and_then(|c| {
        let map = <crate::options::MapMode as clap::ValueEnum>::from_str(&c.map, false).ok()?;
        Some((PathBuf::from(c.home.as_ref()?), map))
    });
    let warn = warn_in
        .filter(|_| target.containers.is_some())
        .filter(|_| crate::containers::runs_containers(words).is_some())
        .map(|name| (name.to_string(), words.to_vec()));
    ContainersJoin { home, warn }
}

impl ContainersJoin {
    /// Inside, as root there: podman's home made (so that it is root's there, and podman's
    /// checks agree), and the warning, read from the namespace's own /sys/fs/cgroup (a
    /// --tmpfs it was made with covers it).
    fn inside(&self, label: &str) -> Result<(), Error> {
        if let Some((home, map)) = &self.home {
            crate::containers::prepare_home(home, *map).map_err(|e| {
                Error::sys(
                    format!("making podman's home {} in {label}", home.display()),
                    sys::io_errno(&e),
                )
            })?;
        }
        if let Some((name, words)) = &self.warn
            && let Some(w) = crate::containers::warning_for(words, &[], true, Some(name))
        {
            crate::error::write_stderr(format_args!("{w}"));
        }
        Ok(())
    }
}

/// COMMAND with a join's environment. podman and buildah are told they are in a configured
/// user namespace only where they can mount (the containers module): a session without a
/// mount namespace (`flags`, those the join enters) shares the caller's mounts.
fn joined_command(
    words: Vec<std::ffi::OsString>,
    flags: CloneFlags,
    containers: &ContainersJoin,
) -> Result<Command, Error> {
    let caller = userns::Caller {
        uid: Uid::current().as_raw(),
        gid: Gid::current().as_raw(),
        name: None,
        nested: None,
    };
    let mount_ns = flags.contains(CloneFlags::CLONE_NEWNS);
    let mut env = crate::containers::env(&caller, mount_ns);
    if let Some((home, _)) = &containers.home {
        env.extend(crate::containers::home_env(home));
    }
    let mut command = Command::new(words, env)?;
    command.sigchld_ignored = sys::default_signal_was_ignored(Signal::SIGCHLD);
    Ok(command)
}

/// D15: into the session's cgroup (`cgroup`: the session's own and its process's), from the
/// host, before its cgroup namespace: this process, or with a pid namespace the child that
/// becomes COMMAND (see cgroup::Mover, returned to finish that).
fn into_session_cgroup(
    label: &str,
    cgroup: Option<&(PathBuf, PathBuf)>,
    pid_ns: bool,
) -> Result<Option<crate::cgroup::Mover>, Error> {
    Ok(match cgroup {
        Some((own, of_process)) if pid_ns => {
            Some(crate::cgroup::Mover::start(label, own, of_process)?)
        }
        Some((own, of_process)) => {
            crate::cgroup::join(label, own, of_process, getpid())?;
            None
        }
        None => None,
    })
}

/// As a new run does: our ids are mapped to 0 in the session, so this moves no privilege;
/// it makes real, effective and saved ids read 0 inside. EINVAL: the session maps no 0
/// (--map=subids), and the join stays the caller, as that run's COMMAND is.
fn take_ids_zero() -> Result<(), Error> {
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
    Ok(())
}

/// --chdir, else the caller's directory `here` by name, else the target's working directory
/// `cwd` (closed here, before COMMAND).
fn change_directory(
    chdir: Option<&str>,
    here: Option<PathBuf>,
    cwd: Option<OwnedFd>,
) -> Result<(), Error> {
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
    Ok(())
}

/// A pid namespace takes only children: fork, finish the move into the session's cgroup,
/// let the child go on, and end the way COMMAND ends.
fn in_pid_namespace(
    command: Command,
    identity: &crate::identity::Identity,
    console: Option<process::console::Console>,
    mover: Option<crate::cgroup::Mover>,
    bypass: Option<Answered>,
) -> Result<Infallible, Error> {
    process::block_forwarded_signals()?;
    let (go_r, go_w) = process::pipe()?;
    // Its write end tells the child that become-root is still there (process::parent).
    let (alive_r, alive_w) = process::pipe()?;
    match sys::fork_process().map_err(|e| Error::sys("fork", e))? {
        Forked::Child => {
            drop((go_w, alive_r));
            joined_child(go_r, &alive_w, console.as_ref(), identity, command, bypass)
        }
        Forked::Parent(child) => {
            drop((go_r, bypass));
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

/// The child in the session's pid namespace: die with become-root, as any supervised
/// COMMAND does, and go only on its word (once it is in the session's cgroup). getppid() is
/// 0 here (the parent is outside the pid namespace), so the race with become-root dying
/// first is closed with the pipe: its write end is gone when become-root is.
fn joined_child(
    go_r: File,
    alive_w: &File,
    console: Option<&process::console::Console>,
    identity: &crate::identity::Identity,
    command: Command,
    bypass: Option<Answered>,
) -> ! {
    let mut word = [0u8; 1];
    let go = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_ok()
        && matches!((&go_r).read(&mut word), Ok(1));
    if !go {
        sys::exit_now(crate::error::EXIT_FAILURE);
    }
    drop(go_r);
    let start = || -> Result<Infallible, Error> {
        if let Some(console) = console {
            console.attach()?;
        }
        // --uid, --gid, --cap-*, --no-new-privs: last, as in a new run; a change of ids
        // clears the parent-death signal, so it is armed again (D17).
        identity.apply()?;
        process::die_with_become_root(alive_w);
        filter(bypass)?;
        Err(command.exec())
    };
    let Err(e) = start();
    e.report();
    sys::exit_now(e.exit_code())
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
    let (dir, record) = session_with_net(name)?;
    // Every spec is checked before anything changes.
    let parse = |specs: &[String]| -> Result<Vec<ports::Publish>, Error> {
        specs
            .iter()
            .map(|s| ports::parse(s).map_err(|e| net::NetError::from(e).into()))
            .collect()
    };
    let (publish, unpublish) = (parse(publish)?, parse(unpublish)?);
    if let Some(p) = unpublish.iter().find(|p| p.host_port == 0) {
        return Err(ports_refused(
            name,
            format!("--unpublish={p}: name the host port it has, not 0"),
            Some("'become-root --list' shows the session's ports".into()),
        ));
    }
    let path = dir.path_of(&StateDir::ports_socket(name));
    let helper = record.net.clone().unwrap_or_default();
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
        let answer = net::forward::ask_session(&path, verb, &spec, socket)
            .map_err(|e| no_live_ports(name, &helper, &e))?;
        match answer {
            Ok(_) => {
                if let (Some(chosen), 0, false) = (chosen, spec.host_port, quiet) {
                    crate::error::say!("become-root: published {chosen}");
                }
            }
            // (a refusal of the session's that names the spec already is passed on as it is)
            Err(why) if why.starts_with("--") => return Err(ports_refused(name, why, None)),
            Err(why) => {
                return Err(ports_refused(name, format!("--{verb}={spec}: {why}"), None));
            }
        }
    }
    Ok(())
}

/// Session `name`'s state directory and record, for a change of its ports: it runs, and it
/// has a network namespace of its own.
fn session_with_net(name: &str) -> Result<(StateDir, Record), Error> {
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
    if record.net.is_none() {
        return Err(ports_refused(
            name,
            "it has no network namespace of its own, so there are no ports to publish".into(),
            Some(format!(
                "start it with --net: become-root --name={name} --net ..."
            )),
        ));
    }
    Ok((dir, record))
}

/// A change of session `name`'s ports refused, with nothing changed.
fn ports_refused(name: &str, why: String, hint: Option<String>) -> Error {
    SessionError::Ports {
        name: name.into(),
        why,
        hint,
    }
    .into()
}

/// Session `name` has no live-ports socket to ask (`e`): its network `helper` forwards its
/// ports, or an older become-root started it.
fn no_live_ports(name: &str, helper: &str, e: &std::io::Error) -> Error {
    let why = match helper {
        "pasta" => "its ports are forwarded by pasta (--port-driver=helper), which takes no \
                    ports while it runs (this pasta has no port API)"
            .to_string(),
        _ => format!(
            "it takes no live ports ({e}): its ports are forwarded by its network helper \
             (--port-driver=helper), or it was started by an older become-root"
        ),
    };
    ports_refused(
        name,
        why,
        Some(format!(
            "publish ports when starting it (-p), with the builtin port driver (the default); \
             or stop it (--stop={name}) and start it again"
        )),
    )
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
