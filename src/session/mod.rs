//! Sessions: runs with a name that later commands can join, list and stop.
//!
//! A Makefile or a CI job sets the namespaces up once and runs many steps inside:
//!
//! ```text
//! become-root --name=build --detach --net=slirp4netns --tmpfs=/scratch
//! become-root --join=build make install
//! become-root --join=build tar -C /scratch -cf out.tar .
//! become-root --stop=build
//! ```
//!
//! What a user can rely on (the man page says the same):
//!
//! - `--name=NAME` names a run. NAME is 1 to 64 of letters, digits, `_`, `.` and `-`,
//!   starting with a letter or a digit, and not all digits (`--join` reads digits as a PID).
//!   A named run is supervised (become-root stays outside, as with `--pid`) so that its state
//!   is removed when it ends. A name already used by a live session is an error (125); the
//!   name of a dead one is taken over.
//! - `--detach` (needs `--name`) returns, with status 0, once the namespaces are ready: maps
//!   written, mounts done, loopback and the network helper up, ports published. The rest of
//!   become-root continues in the background in a session of its own (setsid, so the
//!   terminal's hangup and Ctrl-C do not reach it) and keeps supervising: it owns slirp4netns
//!   or pasta and the port forwarder, exactly as a run in the foreground does. Without
//!   COMMAND the session holds its namespaces with a pause process (pid 1 of the session's
//!   pid namespace with `--pid`) until `--stop`; with COMMAND it lasts as long as COMMAND.
//!   Standard input is /dev/null; standard output and error go to `NAME.log` in the state
//!   directory (removed with the session), copied there by become-root (logs.rs). Errors
//!   before the namespaces are ready are reported on the caller's terminal with the usual
//!   status; interrupting become-root while it starts a session cancels the session.
//! - `--join=NAME|PID [COMMAND]` runs COMMAND (default `$SHELL`, else /bin/sh) in the
//!   namespaces of session NAME, or of process PID (any process of yours in a user namespace
//!   of its own, like `nsenter -t PID`). It enters the user namespace and each of cgroup,
//!   ipc, uts, net, pid and mnt that the session made (that its user namespace owns), all at
//!   once (join.rs: the join rule), and leaves the others as the caller has them: a session
//!   without `--mount` shares the caller's mounts. A session with a cgroup of its own takes
//!   COMMAND into it first (cgroup/join.rs says which cgroup). It sets its ids to 0 as a new
//!   run does and passes the environment on unchanged (plus the `_CONTAINERS_*` variables).
//!   No map is written, no subordinate id is read, no helper runs: the maps, mounts,
//!   resolv.conf and network are the session's.
//!   `--uid`, `--gid`, `--cap-add`, `--cap-drop` and `--no-new-privs` apply to the joined
//!   COMMAND as in a new run (those given when the session was made apply to its COMMAND
//!   only). The working directory is `--chdir=DIR` when given, else the caller's current
//!   directory as named inside the session (where a mount may cover it), else the session
//!   process's own (with `--rootfs`, say). Without a pid namespace COMMAND is executed in
//!   place (it keeps become-root's pid, signals and status are its own); with one,
//!   become-root forks so that COMMAND is inside it, forwards signals, and ends as COMMAND
//!   ended; COMMAND dies with become-root. A join from inside the session itself (as root
//!   there) works too. Joining a session that does not exist, or whose process has ended, is
//!   an error (125) naming it. The plain form `--join=NAME [--] [COMMAND...]` is read without
//!   clap, which would cost a tenth of the join.
//! - `--join=NAME --publish=SPEC` and `--join=NAME --unpublish=SPEC` (no COMMAND) add a
//!   published port to running session NAME or close one, through its socket `NAME.ports`
//!   (net::forward's control.rs); the session's record, --list and --info-fd follow.
//! - `--list` shows the live sessions (name, pid of the process a join enters, creation time
//!   in UTC, namespaces, network mode, state file); `--list --json` prints one JSON object
//!   `{"state_dir": ..., "sessions": [...]}`.
//! - `--stop=NAME` ends the session and everything in it: SIGTERM to the session's process
//!   and to every process in its user namespace (or in a user namespace nested in it), then
//!   SIGKILL to whatever is left after 5 seconds; become-root's background part then stops
//!   the network helper and the forwarder, and the state is removed. Status 0; stopping a
//!   session that does not exist is an error (125) naming it.
//!
//! State: one file per session, `NAME.session` (plus `NAME.log` for `--detach`, and the
//! live-ports socket `NAME.ports` while a session with a network namespace runs), in
//! `$XDG_RUNTIME_DIR/become-root/` or, without XDG_RUNTIME_DIR, `/tmp/become-root-UID/` (UID
//! outside: a nested become-root, root in the session, finds the same directory). The
//! directory is created mode 0700 and refused unless it is a real directory (not a symlink),
//! owned by the caller, with mode 0700 (or 0770 when its group is the caller's user private
//! group, which is nobody else's: crate::writers): a name in /tmp is predictable, so it is
//! only ever used after those checks. A session is identified by its pid and that process's start time
//! (field 22 of /proc/PID/stat) and namespace inodes, so a reused pid is never mistaken for
//! the session; a state file whose process is gone is stale and is removed by `--list`,
//! `--join`, `--stop` and by a new run taking the name. State is changed only under an
//! flock(2) on the directory.
#![forbid(unsafe_code)]
use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;
use nix::sched::CloneFlags;

use crate::error::Error;
pub mod containers;
mod create;
mod join;
mod list;
mod logs;
mod record;
mod state;
mod stop;
mod target;

pub use create::{Again, PortsRecord, Session};
use join::join;
use list::list;
pub use list::{render_json, render_table};
use logs::logs;
pub use logs::{KEEPER, LOG_MAX, keep_log};
pub use record::*;
use state::{StateDir, load_named};
pub use state::{leftovers, report_leftover};
use stop::stop;

/// How long `--stop` lets the processes of a session end on SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long a booted image (--boot) has to shut down after SIGRTMIN+3.
pub use crate::process::BOOT_STOP_GRACE;

/// The longest session name.
const NAME_MAX: usize = 64;

/// First line of a state file: what it is, and the version of its format.
const MAGIC: &str = "become-root session 1";

/// The namespaces a session may have: the user namespace first (entering it grants the
/// capabilities the others ask for; a join enters all it needs with one setns(2)).
const KINDS: [(&str, CloneFlags); 7] = [
    ("user", CloneFlags::CLONE_NEWUSER),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// What went wrong with a session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{name:?} is not a valid session name: {why}")]
    BadName { name: String, why: &'static str },
    #[error("no such session")]
    NoSession { name: String },
    #[error("already exists (pid {pid})")]
    Exists { name: String, pid: i32 },
    #[error("not ready yet (become-root is still setting it up)")]
    NotReady { name: String },
    #[error("was started in another pid namespace, where its pids mean something else")]
    ForeignPidNamespace { name: String },
    #[error("its process {pid} has left the session's {kind} namespace")]
    Left {
        name: String,
        pid: i32,
        kind: &'static str,
    },
    #[error("no such process")]
    NoProcess { pid: String },
    #[error("is not in a user namespace of its own, so there is nothing to join")]
    NotInUserns { target: String },
    #[error("cannot enter its {namespaces}: {errno}")]
    Enter {
        target: String,
        /// "user namespace", "user and mnt namespaces".
        namespaces: String,
        errno: Errno,
    },
    #[error("{why}")]
    StateDir { path: PathBuf, why: String },
    #[error("{what}: {errno}")]
    State {
        path: PathBuf,
        what: &'static str,
        errno: Errno,
    },
    #[error("--detach: {0}")]
    Detach(String),
    #[error("cannot signal its process {pid}: {errno}; nothing was stopped")]
    CannotSignal {
        name: String,
        pid: i32,
        errno: Errno,
    },
    #[error("its processes {pids:?} are still alive after SIGKILL")]
    StillAlive { name: String, pids: Vec<i32> },
    #[error("it has ended ({how})")]
    Ended { name: String, how: String },
    #[error("it has no log: only a --detach session keeps one")]
    NoLog { name: String },
    #[error("is a session of yours, not become-root's containers namespace")]
    NotContainers { name: String },
    /// --join=NAME --publish or --unpublish refused: nothing changed.
    #[error("{why}")]
    Ports {
        name: String,
        why: String,
        hint: Option<String>,
    },
}

impl SessionError {
    /// `<what>` of the one-line report.
    pub fn what(&self) -> String {
        match self {
            SessionError::BadName { .. } => "session name".into(),
            SessionError::NoSession { name }
            | SessionError::Exists { name, .. }
            | SessionError::NotReady { name }
            | SessionError::ForeignPidNamespace { name }
            | SessionError::Left { name, .. }
            | SessionError::CannotSignal { name, .. }
            | SessionError::StillAlive { name, .. }
            | SessionError::Ended { name, .. }
            | SessionError::NoLog { name }
            | SessionError::NotContainers { name }
            | SessionError::Ports { name, .. } => format!("session {name}"),
            SessionError::NoProcess { pid } => format!("process {pid}"),
            SessionError::NotInUserns { target } | SessionError::Enter { target, .. } => {
                target.clone()
            }
            SessionError::StateDir { path, .. } | SessionError::State { path, .. } => {
                format!("session state {}", path.display())
            }
            SessionError::Detach(_) => "session".into(),
        }
    }

    /// `<fix>`, where one is known.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            SessionError::BadName { .. } => "use letters, digits, '_', '.' and '-', starting \
                with a letter or a digit, at most 64 of them"
                .into(),
            SessionError::NoSession { .. } => "'become-root --list' shows the sessions".into(),
            SessionError::Exists { name, .. } => {
                format!("join it (--join={name}), end it (--stop={name}), or choose another --name")
            }
            SessionError::NotReady { .. } => {
                "try again in a moment; --detach returns only once a session is ready".into()
            }
            SessionError::Left { name, .. } => {
                format!("its COMMAND made namespaces of its own; end it with --stop={name}")
            }
            SessionError::Enter {
                errno: Errno::EPERM,
                ..
            } => "you can join only namespaces you created".into(),
            SessionError::StateDir { .. } => "remove it (become-root makes it, mode 0700), or \
                set XDG_RUNTIME_DIR to a directory of your own with mode 0700"
                .into(),
            SessionError::CannotSignal { name, .. } => format!(
                "the state file names a process that is not yours (was it forged or copied?); \
                 remove {name}.session from the state directory ('become-root --list --json' \
                 says where)"
            ),
            SessionError::State {
                errno: Errno::EFBIG,
                ..
            } => "the file size limit (ulimit -f) is too small for become-root's state files; \
                 raise it"
                .into(),
            SessionError::Ended { name, .. } => format!(
                "become-root --logs={name} shows its output; become-root --stop={name} removes \
                 it, and a new session may take the name"
            ),
            SessionError::NoLog { name } => format!(
                "its output went where the caller's did; start it with --name={name} --detach \
                 to keep a log"
            ),
            SessionError::NotContainers { name } => format!(
                "podman and buildah run in a session of this name (become-root makes it): end \
                 yours with become-root --stop={name}, and name it otherwise"
            ),
            SessionError::Ports { hint, .. } => return hint.clone(),
            SessionError::StillAlive { .. } => {
                "a process that survives SIGKILL is stuck in the kernel (D state, often on a \
                 file system); see ps -o pid,stat,wchan"
                    .into()
            }
            _ => return None,
        })
    }
}

impl From<SessionError> for Error {
    fn from(e: SessionError) -> Error {
        Error::new(e.what(), e.to_string()).with_hint_maybe(e.hint())
    }
}

// ---- the command line ---------------------------------------------------------------------

/// What `--name` and `--detach` ask of a run that creates namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub name: String,
    pub detach: bool,
    /// No COMMAND with --detach: hold the namespaces with a pause process.
    pub pause: bool,
    /// A containers namespace (launch::containers makes them), with what it is made for.
    pub containers: Option<Containers>,
}

impl Request {
    /// The session a run with `--name` asks for (`--detach` and no COMMAND: a pause process).
    pub fn new(
        name: Option<&str>,
        detach: bool,
        no_command: bool,
    ) -> Result<Option<Request>, Error> {
        let Some(name) = name else {
            return Ok(None);
        };
        check_name(name).map_err(|why| SessionError::BadName {
            name: name.into(),
            why,
        })?;
        Ok(Some(Request {
            name: name.into(),
            detach,
            pause: detach && no_command,
            containers: None,
        }))
    }
}

/// `--join=NAME|PID [COMMAND]`, `--list [--json]` or `--stop=NAME`: the session commands,
/// which make no namespace of their own.
#[derive(Debug, Clone)]
pub enum SessionCommand {
    Join {
        spec: String,
        command: Vec<std::ffi::OsString>,
        chdir: Option<String>,
        identity: crate::identity::Asked,
        /// -q: no warnings.
        quiet: bool,
    },
    List {
        json: bool,
    },
    Stop {
        name: String,
        /// --stop-timeout, in seconds.
        timeout: Option<u64>,
    },
    Logs {
        name: String,
        follow: bool,
    },
    /// `--join=NAME --publish=SPEC` / `--unpublish=SPEC`: change a running session's ports.
    Ports {
        name: String,
        publish: Vec<String>,
        unpublish: Vec<String>,
        /// A COMMAND was given too, which these take none of.
        command: bool,
        quiet: bool,
    },
}

/// Run a session command and return the exit status (`--join` returns only on failure:
/// COMMAND replaced become-root, or become-root ended as COMMAND did).
pub fn main(command: SessionCommand) -> i32 {
    let result = match command {
        SessionCommand::Join {
            spec,
            command,
            chdir,
            identity,
            quiet,
        } => crate::identity::Identity::from_asked(&identity)
            .and_then(|identity| {
                // A join of a containers namespace by name warns as its calls do.
                let warn_in = (!quiet).then_some(spec.as_str());
                join(&spec, command, chdir.as_deref(), &identity, warn_in)
            })
            .map(|never| match never {}),
        SessionCommand::List { json } => list(json).map(|()| 0),
        SessionCommand::Stop { name, timeout } => stop(&name, timeout).map(|()| 0),
        SessionCommand::Logs { name, follow } => logs(&name, follow).map(|()| 0),
        SessionCommand::Ports {
            name,
            publish,
            unpublish,
            command: false,
            quiet,
        } => join::change_ports(&name, &publish, &unpublish, quiet).map(|()| 0),
        SessionCommand::Ports { .. } => Err(Error::usage(
            "--join with --publish or --unpublish takes no COMMAND",
            "change the ports in one command, then join with another: \
             become-root --join=NAME COMMAND",
        )),
    };
    result.unwrap_or_else(|e| {
        e.report();
        e.exit_code()
    })
}

/// A session name: 1 to 64 of `[A-Za-z0-9_.-]`, starting with a letter or a digit (no
/// hidden files, no option look-alikes), not all digits (`--join` reads those as a PID).
pub fn check_name(name: &str) -> Result<(), &'static str> {
    let bytes = name.as_bytes();
    let first_ok = bytes.first().is_some_and(u8::is_ascii_alphanumeric);
    if name.is_empty() {
        Err("it is empty")
    } else if name.len() > NAME_MAX {
        Err("it is longer than 64 characters")
    } else if !first_ok {
        Err("it must start with a letter or a digit")
    } else if !bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(b))
    {
        Err("only letters, digits, '_', '.' and '-' are allowed")
    } else if bytes.iter().all(u8::is_ascii_digit) {
        Err("it is all digits, which --join would read as a PID")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    use super::check_name;

    #[test]
    fn names() {
        let table: &[(&str, bool)] = &[
            ("build", true),
            ("a", true),
            ("0build", true),
            ("ci-job_3.step", true),
            (&"x".repeat(64), true),
            (&"x".repeat(65), false),
            ("", false),
            ("123", false),
            ("-x", false),
            (".hidden", false),
            ("_x", false),
            ("a/b", false),
            ("a b", false),
            ("ä", false),
            ("..", false),
        ];
        for (name, ok) in table {
            assert_eq!(check_name(name).is_ok(), *ok, "{name:?}");
        }
    }
}
