//! Starting COMMAND and, when become-root must stay around, supervising it.
//!
//! Exec in place is the default: COMMAND takes over become-root's pid, so signals, job control
//! and the exit status are its own. When something must live outside the namespaces (a pid
//! namespace's init, later network helpers), become-root supervises: it forwards signals that
//! the terminal did not already deliver to the whole process group, reaps, and ends the way
//! COMMAND ended, dying of the same signal if COMMAND was killed.

use std::ffi::{CString, OsString};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::error::{EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, Error};
use crate::sys;

pub mod console;
mod ending;
mod env;
pub mod notify;
mod parent;
mod supervise;
pub use ending::{Ending, read_reports};
pub use parent::die_with_become_root;
pub use supervise::{Events, Source, StopWith, Watch, signal_name, supervise};

/// si_code of signals the kernel sends on its own behalf, notably the terminal's SIGINT,
/// SIGQUIT, SIGTSTP, SIGHUP and SIGWINCH, which reach the whole foreground process group: the
/// command got its own copy, so forwarding it again would deliver it twice.
const SI_KERNEL: i32 = 0x80;

/// How long a booted image has to shut down after SIGRTMIN+3 before it is killed (systemd's
/// own default stop timeout is 90 s; a container's shutdown takes a second or two).
pub const BOOT_STOP_GRACE: Duration = Duration::from_secs(30);

/// COMMAND, ready for execve.
#[derive(Debug, Clone)]
pub struct Command {
    pub name: OsString,
    argv: Vec<CString>,
    env: Vec<CString>,
    /// The PATH COMMAND is looked up on, when the environment options changed it (None inside:
    /// unset, so the C library's default path); else become-root's own.
    lookup_path: Option<Option<OsString>>,
    /// The caller had SIGCHLD ignored: become-root works with it at its default (an ignored
    /// SIGCHLD makes the kernel reap children, and waitpid fails) and ignores it again for
    /// COMMAND.
    pub sigchld_ignored: bool,
}

impl Command {
    /// Build from the words after the options (empty: `$SHELL`, else /bin/sh), with the
    /// environment unchanged but for `extra_env`.
    pub fn new(words: Vec<OsString>, extra_env: Vec<(OsString, OsString)>) -> Result<Self, Error> {
        Self::with_env(words, extra_env, &[], Vec::new())
    }

    /// As [`Command::new`], then the environment options `ops` applied in order (env.rs), then
    /// `last` set, which they cannot touch (--boot's `container` and `NOTIFY_SOCKET`).
    pub fn with_env(
        words: Vec<OsString>,
        extra_env: Vec<(OsString, OsString)>,
        ops: &[crate::options::EnvArg],
        last: Vec<(OsString, OsString)>,
    ) -> Result<Self, Error> {
        let words = if words.is_empty() {
            let shell = std::env::var_os("SHELL").filter(|s| !s.is_empty());
            vec![shell.unwrap_or_else(|| "/bin/sh".into())]
        } else {
            words
        };
        let name = words[0].clone();
        let nul = |what: &OsString| {
            Error::usage(
                format!("{}: contains a NUL byte", what.to_string_lossy()),
                "arguments cannot contain NUL bytes",
            )
        };
        let argv = words
            .iter()
            .map(|w| CString::new(w.as_bytes()).map_err(|_| nul(w)))
            .collect::<Result<Vec<_>, _>>()?;
        let replace = |base: Vec<(OsString, OsString)>, extra: Vec<(OsString, OsString)>| {
            let keys: Vec<OsString> = extra.iter().map(|(k, _)| k.clone()).collect();
            let kept = base.into_iter().filter(|(k, _)| !keys.contains(k));
            kept.chain(extra).collect::<Vec<_>>()
        };
        let given = replace(std::env::vars_os().collect(), extra_env);
        let (given, lookup_path) = env::apply(given, ops)?;
        let mut env: Vec<CString> = replace(given, last)
            .into_iter()
            .filter_map(|(k, v)| {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend(v.into_vec());
                CString::new(kv).ok()
            })
            .collect();
        env.shrink_to_fit();
        Ok(Command {
            name,
            argv,
            env,
            lookup_path,
            sigchld_ignored: false,
        })
    }

    /// execvpe(3) COMMAND with the signal state the caller gave become-root: every signal
    /// unblocked, SIGCHLD and SIGXFSZ as the caller had them, and SIGPIPE at its default (Rust's runtime ignores it, and an ignored signal
    /// survives exec, which would make `become-root yes | head -1` print EPIPE errors).
    /// Returns only on failure.
    pub fn exec(&self) -> Error {
        sys::default_signal(Signal::SIGPIPE);
        if !CALLER_IGNORED_SIGXFSZ.load(Ordering::Relaxed) {
            sys::default_signal(Signal::SIGXFSZ);
        }
        if self.sigchld_ignored {
            sys::ignore_signal(Signal::SIGCHLD);
        }
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
        // execvpe(3) searches the PATH of this process, not of the environment it is given:
        // COMMAND is looked up on the PATH it gets, as bubblewrap's --setenv and --clearenv
        // have it. (Only this thread runs: the namespace process, or become-root in place.)
        if let Some(path) = &self.lookup_path {
            sys::set_own_env_var("PATH", path.as_deref());
        }
        let Err(errno) = nix::unistd::execvpe(&self.argv[0], &self.argv, &self.env);
        let has_slash = self.name.as_bytes().contains(&b'/');
        let error = match errno {
            Errno::ENOENT if !has_slash => ExecError::NotFound,
            // execvp(3) says EACCES when any PATH entry refused a search, found or not; a
            // shell says "command not found" unless a file of that name is there.
            Errno::EACCES if !has_slash => match search_path(&self.name) {
                PathSearch::Found => ExecError::Other(errno),
                PathSearch::NotFound { unsearchable } => ExecError::NotFoundSearching {
                    unsearchable: unsearchable.display().to_string(),
                },
            },
            errno => ExecError::Other(errno),
        };
        crate::process::exec_error(self.name.clone(), error)
    }
}

/// Whether the caller left SIGXFSZ ignored, as [`ignore_file_size_signal`] found it.
static CALLER_IGNORED_SIGXFSZ: AtomicBool = AtomicBool::new(false);

/// Ignore SIGXFSZ for the whole life of become-root, noting how the caller left it: over the
/// file size limit (ulimit -f), a write of its own (its message on a stderr redirected to a
/// file, a session's state or log) then fails with EFBIG, reported where it can be, instead
/// of killing become-root with status 153 and no message. COMMAND gets SIGXFSZ back as the
/// caller had it ([`Command::exec`]); the helpers keep it ignored and see EFBIG too.
pub fn ignore_file_size_signal() {
    let was = sys::ignore_signal_was_ignored(Signal::SIGXFSZ);
    CALLER_IGNORED_SIGXFSZ.store(was, Ordering::Relaxed);
}

/// What a search of PATH for a command name found.
enum PathSearch {
    /// A file of that name is in a PATH directory.
    Found,
    /// None is; `unsearchable` is the first directory that could not be searched.
    NotFound { unsearchable: std::path::PathBuf },
}

/// Look for `name` in the directories of PATH as execvp(3) does (the default path when PATH is
/// unset), after it failed with EACCES.
fn search_path(name: &std::ffi::OsStr) -> PathSearch {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into());
    let mut unsearchable = None;
    for dir in std::env::split_paths(&path) {
        let dir = if dir.as_os_str().is_empty() {
            ".".into()
        } else {
            dir
        };
        match dir.join(name).symlink_metadata() {
            Ok(_) => return PathSearch::Found,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                unsearchable.get_or_insert(dir);
            }
            Err(_) => {}
        }
    }
    match unsearchable {
        Some(dir) => PathSearch::NotFound { unsearchable: dir },
        None => PathSearch::Found,
    }
}

/// The signals become-root (and an init it starts) takes over from their default actions in
/// supervise mode, to forward them. SIGTSTP, SIGTTIN and SIGTTOU keep their defaults so that
/// become-root stops with the job; SIGKILL and SIGSTOP cannot be caught; synchronous faults
/// stay fatal.
pub fn forwarded_signals() -> SigSet {
    let mut set = SigSet::empty();
    for sig in [
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGALRM,
        Signal::SIGTERM,
        Signal::SIGCHLD,
        Signal::SIGCONT,
        Signal::SIGWINCH,
        Signal::SIGURG,
        Signal::SIGPWR,
    ] {
        set.add(sig);
    }
    set
}

/// Block the forwarded signals; they are read from a signalfd later. Called before the
/// namespace process is cloned, so nothing arrives unhandled in between.
pub fn block_forwarded_signals() -> Result<(), Error> {
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded_signals()), None)
        .map_err(|e| Error::sys("blocking signals", e))
}

pub(crate) fn signalfd() -> Result<SignalFd, Error> {
    SignalFd::with_flags(&forwarded_signals(), SfdFlags::SFD_CLOEXEC)
        .map_err(|e| Error::sys("creating a signalfd", e))
}

/// The controlling terminal, when become-root runs in its foreground process group.
#[derive(Debug, Clone, Copy)]
pub struct Terminal {
    fd: i32,
    own_group: Pid,
}

impl Terminal {
    /// The first of stdin, stdout, stderr that is a terminal whose foreground group is ours.
    pub fn foreground() -> Option<Terminal> {
        let own_group = nix::unistd::getpgrp();
        [0, 1, 2].into_iter().find_map(|fd| {
            // A descriptor that is not a terminal fails with ENOTTY.
            let group = nix::unistd::tcgetpgrp(sys::std_fd(fd)).ok()?;
            (group == own_group).then_some(Terminal { fd, own_group })
        })
    }

    /// Make `group` the foreground process group.
    pub fn give_to(self, group: Pid) {
        with_sigttou_blocked(|| {
            let _ = nix::unistd::tcsetpgrp(sys::std_fd(self.fd), group);
        });
    }

    /// Make become-root's own group the foreground again.
    pub fn take_back(self) {
        self.give_to(self.own_group);
    }

    /// In init: lead a process group of its own (visible inside the pid namespace, unlike
    /// become-root's) and take the foreground, so that COMMAND's shell finds a valid group
    /// to return the terminal to.
    pub fn lead_inside(self) {
        if nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0)).is_ok() {
            self.give_to(nix::unistd::getpgrp());
        }
    }
}

/// tcsetpgrp from a background group raises SIGTTOU unless it is blocked.
fn with_sigttou_blocked(f: impl FnOnce()) {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTTOU);
    let mut old = SigSet::empty();
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old));
    f();
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
}

/// Be init of a new pid namespace: reap every orphan, forward signals to `main` (COMMAND),
/// and when `main` ends, report how over `report` and return. The kernel then kills whatever
/// else is left in the namespace.
pub fn init(main: Pid, mut report: std::fs::File) -> Result<(), Error> {
    let sfd = signalfd()?;
    loop {
        match receive(&sfd)? {
            Received::Forward(sig) => {
                let _ = kill(main, sig);
            }
            Received::FromTerminal(_) | Received::Nothing => {}
            Received::Child => loop {
                match waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED)) {
                    Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(Error::sys("reaping", e)),
                    Ok(status) if status.pid() == Some(main) => match Ending::from_wait(status) {
                        Some(stop @ Ending::Stopped(_)) => {
                            let _ = report.write_all(&stop.encode());
                        }
                        Some(ending) => {
                            let _ = report.write_all(&ending.encode());
                            return Ok(());
                        }
                        None => {}
                    },
                    Ok(_) => {} // an orphan, reaped
                }
            },
        }
    }
}

/// What a read from the signalfd asks for.
pub(crate) enum Received {
    /// SIGCHLD: a child changed state.
    Child,
    /// A signal to pass on to COMMAND.
    Forward(Signal),
    /// A signal the terminal sent to the whole foreground process group (si_code SI_KERNEL),
    /// which COMMAND received too unless it is in a group of its own.
    FromTerminal(Signal),
    /// Nothing to do: an interrupted read.
    Nothing,
}

pub(crate) fn receive(sfd: &SignalFd) -> Result<Received, Error> {
    let info = match sfd.read_signal() {
        Ok(Some(info)) => info,
        Ok(None) | Err(Errno::EINTR) => return Ok(Received::Nothing),
        Err(e) => return Err(Error::sys("reading signals", e)),
    };
    Ok(match Signal::try_from(info.ssi_signo as i32) {
        Ok(Signal::SIGCHLD) => Received::Child,
        Ok(sig) if info.ssi_code != SI_KERNEL => Received::Forward(sig),
        Ok(sig) => Received::FromTerminal(sig),
        _ => Received::Nothing,
    })
}

/// Reap every child that has already ended, without waiting for any still running.
pub fn reap_zombies() {
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// A pipe whose ends are both close-on-exec, as `File`s.
pub fn pipe() -> Result<(std::fs::File, std::fs::File), Error> {
    let (r, w): (OwnedFd, OwnedFd) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::sys("creating a pipe", e))?;
    Ok((r.into(), w.into()))
}

/// Starting COMMAND.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecError {
    #[error("command not found")]
    NotFound,
    #[error("command not found (PATH entry {unsearchable} could not be searched)")]
    NotFoundSearching { unsearchable: String },
    #[error("not found in the new root {0}")]
    NotInRootfs(std::path::PathBuf),
    #[error("{0}")]
    Other(nix::Error),
}

/// The error of COMMAND not starting: 127 when it was not found, else 126, with the fix.
pub fn exec_error(command: std::ffi::OsString, error: ExecError) -> Error {
    let not_found = matches!(
        error,
        ExecError::NotFound
            | ExecError::NotFoundSearching { .. }
            | ExecError::NotInRootfs(_)
            | ExecError::Other(Errno::ENOENT)
    );
    let why = match &error {
        ExecError::Other(errno) => errno.desc().to_string(),
        other => other.to_string(),
    };
    let hint = match &error {
        ExecError::NotFound => {
            Some("check the spelling, or give the full path of the command".into())
        }
        ExecError::NotFoundSearching { unsearchable } => Some(format!(
            "check the spelling, or give the full path; you may not search {unsearchable} \
             (chmod +x it, or take it out of PATH)"
        )),
        ExecError::NotInRootfs(_) => Some(
            "COMMAND is looked up inside --rootfs (PATH searched there): install it in that \
             tree, or give its path inside it"
                .to_string(),
        ),
        ExecError::Other(Errno::EACCES) => {
            Some("the file must be executable (chmod +x) and on a mount without noexec".to_string())
        }
        ExecError::Other(_) => None,
    };
    Error::new(command.to_string_lossy(), why)
        .with_hint_maybe(hint)
        .with_status(if not_found {
            EXIT_NOT_FOUND
        } else {
            EXIT_CANNOT_EXECUTE
        })
}

#[cfg(test)]
mod tests {

    use nix::sys::signal::Signal;

    use super::{Command, Ending};

    #[test]
    fn ending_round_trips() {
        for ending in [
            Ending::Exited(0),
            Ending::Exited(42),
            Ending::Exited(255),
            Ending::Killed(Signal::SIGTERM),
            Ending::Killed(Signal::SIGKILL),
        ] {
            assert_eq!(Ending::decode(&ending.encode()), Some(ending));
        }
        assert_eq!(Ending::decode(&[]), None, "no report: init died first");
        assert_eq!(Ending::decode(&[1, 0xff, 0, 0, 0]), None, "not a signal");
    }

    #[test]
    fn default_command_is_shell() {
        let cmd = Command::new(Vec::new(), Vec::new()).unwrap();
        let want = std::env::var_os("SHELL")
            .filter(|s| !s.is_empty())
            .unwrap_or("/bin/sh".into());
        assert_eq!(cmd.name, want);
    }

    #[test]
    fn extra_env_replaces() {
        let cmd = Command::new(
            vec!["true".into()],
            vec![
                ("PATH".into(), "/x".into()),
                ("_CONTAINERS_USERNS_CONFIGURED".into(), "done".into()),
            ],
        )
        .unwrap();
        let paths: Vec<_> = cmd
            .env
            .iter()
            .filter(|e| e.as_bytes().starts_with(b"PATH="))
            .collect();
        assert_eq!(paths.len(), 1);
        assert_eq!(paths[0].as_bytes(), b"PATH=/x");
        assert!(
            cmd.env
                .iter()
                .any(|e| e.as_bytes() == b"_CONTAINERS_USERNS_CONFIGURED=done")
        );
    }

    #[test]
    fn nul_in_argument_is_usage_error() {
        let err = Command::new(vec!["a\0b".into()], Vec::new()).unwrap_err();
        assert_eq!(err.exit_code(), 125);
    }
}
