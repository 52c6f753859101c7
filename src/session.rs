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
//!   directory (removed with the session). Errors before the namespaces are ready are
//!   reported on the caller's terminal with the usual status; interrupting become-root while
//!   it starts a session cancels the session.
//! - `--join=NAME|PID [COMMAND]` runs COMMAND (default `$SHELL`, else /bin/sh) in the
//!   namespaces of session NAME, or of process PID (any process of yours in a user namespace
//!   of its own, like `nsenter -t PID`). It enters the user namespace first, then each of
//!   cgroup, ipc, uts, net, pid and mnt that the session made (that its user namespace owns),
//!   and leaves the others as the caller has them: a session without `--mount` shares the
//!   caller's mounts. It sets its ids to 0 as a new run does and passes the environment on
//!   unchanged (plus the `_CONTAINERS_*` variables). No map is written, no subordinate id is
//!   read, no helper runs: the maps, mounts, resolv.conf and network are the session's.
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
//! - `--list` shows the live sessions (name, pid of the process a join enters, creation time
//!   in UTC, namespaces, network mode, state file); `--list --json` prints one JSON object
//!   `{"state_dir": ..., "sessions": [...]}`.
//! - `--stop=NAME` ends the session and everything in it: SIGTERM to the session's process
//!   and to every process in its user namespace (or in a user namespace nested in it), then
//!   SIGKILL to whatever is left after 5 seconds; become-root's background part then stops
//!   the network helper and the forwarder, and the state is removed. Status 0; stopping a
//!   session that does not exist is an error (125) naming it.
//!
//! State: one file per session, `NAME.session` (plus `NAME.log` for `--detach`), in
//! `$XDG_RUNTIME_DIR/become-root/` or, without XDG_RUNTIME_DIR, `/tmp/become-root-UID/` (UID
//! outside: a nested become-root, root in the session, finds the same directory). The
//! directory is created mode 0700 and refused unless it is a real directory (not a symlink),
//! owned by the caller, with mode 0700: a name in /tmp is predictable, so it is only ever used
//! after those checks. A session is identified by its pid and that process's start time
//! (field 22 of /proc/PID/stat) and namespace inodes, so a reused pid is never mistaken for
//! the session; a state file whose process is gone is stale and is removed by `--list`,
//! `--join`, `--stop` and by a new run taking the name. State is changed only under an
//! flock(2) on the directory.
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, Flock, FlockArg, OFlag, openat, renameat};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::stat::{Mode, fstat, stat};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{Gid, Pid, Uid, UnlinkatFlags, getpid, unlinkat};

use crate::error::Error;
use crate::process::{self, Command};
use crate::sys::{self, Forked};
use crate::userns;

/// How long `--stop` lets the processes of a session end on SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// The longest session name.
const NAME_MAX: usize = 64;

/// First line of a state file: what it is, and the version of its format.
const MAGIC: &str = "become-root session 1";

/// The namespaces a session may have, in the order a join enters them: the user namespace
/// first (entering it grants the capabilities the others ask for), the mount namespace last
/// (entering it moves root and working directory, and /proc with them).
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
    #[error("cannot enter its {kind} namespace: {errno}")]
    Enter {
        target: String,
        kind: &'static str,
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
            | SessionError::StillAlive { name, .. } => format!("session {name}"),
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
            SessionError::StateDir { .. } => "remove it, or set XDG_RUNTIME_DIR to a directory \
                of your own with mode 0700"
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
    },
    List {
        json: bool,
    },
    Stop {
        name: String,
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
        } => crate::identity::Identity::from_asked(&identity)
            .and_then(|identity| join(&spec, command, chdir.as_deref(), &identity))
            .map(|never| match never {}),
        SessionCommand::List { json } => list(json).map(|()| 0),
        SessionCommand::Stop { name } => stop(&name).map(|()| 0),
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

// ---- processes ------------------------------------------------------------------------------

/// A process, identified beyond its pid by its start time (clock ticks after boot, field 22
/// of /proc/PID/stat), which a new process reusing the pid cannot share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub start: u64,
}

impl Proc {
    /// The calling process.
    pub fn current() -> Option<Proc> {
        let pid = getpid().as_raw();
        let (_, start) = read_stat(pid)?;
        Some(Proc { pid, start })
    }

    /// `pid`, if it is alive (a zombie is not).
    pub fn of(pid: i32) -> Option<Proc> {
        match read_stat(pid)? {
            ('Z' | 'X', _) => None,
            (_, start) => Some(Proc { pid, start }),
        }
    }

    /// Still the same process, and not a zombie.
    pub fn alive(&self) -> bool {
        Proc::of(self.pid) == Some(*self)
    }
}

fn read_stat(pid: i32) -> Option<(char, u64)> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// The state (field 3) and start time (field 22) from /proc/PID/stat. The command name
/// (field 2) is in parentheses and may itself contain spaces and parentheses, so the fields
/// are counted after the last ')'. It is bytes, not text: any 15 bytes a process chose with
/// PR_SET_NAME, or its executable's name cut at 15 bytes, which can split a UTF-8 character.
pub fn parse_stat(stat: &[u8]) -> Option<(char, u64)> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // fields 4..=21 come between
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// The inode of the calling process's namespace of `kind`.
fn own_namespace(kind: &str) -> Option<u64> {
    stat(format!("/proc/self/ns/{kind}").as_str())
        .ok()
        .map(|st| st.st_ino)
}

/// The inode named by a namespace link's text, `user:[4026531837]`.
fn parse_ns_link(link: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(link).ok()?;
    text.split_once(":[")?.1.strip_suffix(']')?.parse().ok()
}

/// The namespaces of `pid` that differ from the caller's, as (kind, inode).
fn namespaces_of(pid: i32) -> Vec<(String, u64)> {
    KINDS
        .iter()
        .filter_map(|(kind, _)| {
            let link = std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok()?;
            let ino = parse_ns_link(link.as_os_str().as_bytes())?;
            (Some(ino) != own_namespace(kind)).then(|| (kind.to_string(), ino))
        })
        .collect()
}

// ---- the state file -----------------------------------------------------------------------

/// What a state file says about one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    /// become-root's own process, supervising from outside.
    pub supervisor: Proc,
    /// The process a join enters the namespaces of (COMMAND, the pause process, or the pid
    /// namespace's init); `None` while the session is still being set up.
    pub holder: Option<Proc>,
    /// The pid namespace in which both pids mean these processes.
    pub pid_ns: u64,
    /// Seconds since the epoch, when the session became ready.
    pub created: u64,
    /// The namespaces the session has (those that differ from its creator's): kind, inode.
    pub namespaces: Vec<(String, u64)>,
    /// `none`, `slirp4netns` or `pasta`, with a network namespace.
    pub net: Option<String>,
    /// How the network helper ended, if it died while the session ran.
    pub net_down: Option<String>,
    pub detached: bool,
}

impl Record {
    /// The text of the state file: `key=value` lines after a first line naming the format.
    pub fn render(&self) -> String {
        let proc = |p: &Proc| format!("{} {}", p.pid, p.start);
        let mut out = format!("{MAGIC}\nname={}\n", self.name);
        let _ = writeln!(out, "supervisor={}", proc(&self.supervisor));
        if let Some(holder) = &self.holder {
            let _ = writeln!(out, "holder={}", proc(holder));
        }
        let _ = writeln!(out, "pid_ns={}", self.pid_ns);
        let _ = writeln!(out, "created={}", self.created);
        let ns: Vec<String> = self
            .namespaces
            .iter()
            .map(|(kind, ino)| format!("{kind}:{ino}"))
            .collect();
        let _ = writeln!(out, "namespaces={}", ns.join(" "));
        if let Some(net) = &self.net {
            let _ = writeln!(out, "net={net}");
        }
        if let Some(down) = &self.net_down {
            let _ = writeln!(out, "net_down={}", down.replace('\n', " "));
        }
        let _ = writeln!(out, "detached={}", if self.detached { "yes" } else { "no" });
        out
    }

    /// Parse a state file; unknown keys are ignored (a newer become-root may add some).
    pub fn parse(text: &str) -> Result<Record, String> {
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(format!("the first line is not {MAGIC:?}"));
        }
        let proc = |v: &str| -> Result<Proc, String> {
            let (pid, start) = v.split_once(' ').ok_or("a pid and a start time")?;
            Ok(Proc {
                pid: pid.parse().map_err(|_| format!("bad pid {pid:?}"))?,
                start: start.parse().map_err(|_| format!("bad start {start:?}"))?,
            })
        };
        let number = |k: &str, v: &str| v.parse::<u64>().map_err(|_| format!("bad {k} {v:?}"));
        let (mut name, mut supervisor, mut holder, mut pid_ns, mut created) =
            (None, None, None, None, None);
        let mut namespaces = Vec::new();
        let mut net = None;
        let mut net_down = None;
        let mut detached = false;
        for line in lines {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key {
                "name" => name = Some(value.to_string()),
                "supervisor" => supervisor = Some(proc(value)?),
                "holder" => holder = Some(proc(value)?),
                "pid_ns" => pid_ns = Some(number(key, value)?),
                "created" => created = Some(number(key, value)?),
                "namespaces" => {
                    for item in value.split_whitespace() {
                        let (kind, ino) = item.split_once(':').ok_or("bad namespace")?;
                        namespaces.push((kind.to_string(), number(kind, ino)?));
                    }
                }
                "net" => net = Some(value.to_string()),
                "net_down" => net_down = Some(value.to_string()),
                "detached" => detached = value == "yes",
                _ => {}
            }
        }
        Ok(Record {
            name: name.ok_or("no name")?,
            supervisor: supervisor.ok_or("no supervisor")?,
            holder,
            pid_ns: pid_ns.ok_or("no pid_ns")?,
            created: created.unwrap_or(0),
            namespaces,
            net,
            net_down,
            detached,
        })
    }

    /// What --list says of the session: starting, running, or that its network is down.
    pub fn status(&self) -> String {
        match (&self.net_down, self.created) {
            (Some(down), _) => format!("network down: {down}"),
            (None, 0) => "starting".into(),
            (None, _) => "running".into(),
        }
    }

    /// Whether the session still runs: its holder lives, or while it is being set up, its
    /// supervisor.
    pub fn alive(&self) -> bool {
        match &self.holder {
            Some(holder) => holder.alive(),
            None => self.supervisor.alive(),
        }
    }

    fn namespace(&self, kind: &str) -> Option<u64> {
        self.namespaces
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, ino)| *ino)
    }
}

/// Where the state lives: `$XDG_RUNTIME_DIR/become-root` when XDG_RUNTIME_DIR is an absolute
/// path, else `/tmp/become-root-UID`.
pub fn state_dir_for(xdg_runtime_dir: Option<&std::ffi::OsStr>, uid: u32) -> PathBuf {
    match xdg_runtime_dir.map(Path::new) {
        Some(dir) if dir.is_absolute() => dir.join("become-root"),
        _ => PathBuf::from(format!("/tmp/become-root-{uid}")),
    }
}

/// Where the state lives for the caller. As root in a user namespace (inside a session, say)
/// the fallback is named after the uid outside, so that a nested become-root finds the same
/// directory as its caller (which it sees owned by uid 0).
pub fn state_dir_location() -> PathBuf {
    let mut uid = Uid::current().as_raw();
    if uid == 0
        && let Ok(map) = std::fs::read_to_string("/proc/self/uid_map")
    {
        uid = outside_uid_of_root(&map).unwrap_or(0);
    }
    state_dir_for(std::env::var_os("XDG_RUNTIME_DIR").as_deref(), uid)
}

/// The id that uid 0 maps to, from the text of /proc/self/uid_map.
pub fn outside_uid_of_root(uid_map: &str) -> Option<u32> {
    uid_map.lines().find_map(|line| {
        let mut fields = line.split_whitespace().map(str::parse::<u32>);
        match (fields.next(), fields.next()) {
            (Some(Ok(0)), Some(Ok(outside))) => Some(outside),
            _ => None,
        }
    })
}

/// The state directory, opened (not following a symlink) and checked: every later access is
/// relative to this descriptor, so nothing can swap the directory after the check.
struct StateDir {
    path: PathBuf,
    fd: OwnedFd,
    /// The pid namespace of the caller: a record from another one is left alone.
    pid_ns: u64,
}

/// A state file as read, with the text to compare against before removing it.
struct Loaded {
    record: Record,
    text: String,
}

impl StateDir {
    /// Open the state directory; with `create`, make it (mode 0700) when missing, else
    /// `None` when missing.
    fn open(create: bool) -> Result<Option<StateDir>, SessionError> {
        let uid = Uid::current().as_raw();
        let path = state_dir_location();
        let fail = |why: String| SessionError::StateDir {
            path: path.clone(),
            why,
        };
        // O_PATH: the owner and mode can be checked even where we may not read.
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let open = || openat(AT_FDCWD, &path, flags, Mode::empty());
        let mut created = false;
        let fd = match open() {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if !create => return Ok(None),
            Err(Errno::ENOENT) => {
                match nix::unistd::mkdir(&path, Mode::S_IRWXU) {
                    Ok(()) => created = true,
                    Err(Errno::EEXIST) => {}
                    Err(e) => return Err(fail(format!("cannot create it: {}", e.desc()))),
                }
                open().map_err(|e| fail(format!("cannot open it: {}", e.desc())))?
            }
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                return Err(fail("is not a directory (a symlink is refused)".into()));
            }
            Err(e) => return Err(fail(format!("cannot open it: {}", e.desc()))),
        };
        if created {
            // The umask may have taken bits away; exactly 0700 is wanted.
            let _ = nix::sys::stat::fchmodat(
                &fd,
                ".",
                Mode::S_IRWXU,
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            );
        }
        let st = fstat(&fd).map_err(|e| fail(format!("cannot stat it: {}", e.desc())))?;
        if st.st_uid != uid {
            return Err(fail(format!(
                "is owned by uid {}, not by you (uid {uid}); refusing to keep state there",
                st.st_uid
            )));
        }
        if st.st_mode & 0o777 != 0o700 {
            return Err(fail(format!(
                "has mode {:04o}; it must be 0700, so that only you can read or change it",
                st.st_mode & 0o7777
            )));
        }
        // The same directory, now for reading and locking.
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = openat(&fd, ".", flags, Mode::empty())
            .map_err(|e| fail(format!("cannot open it: {}", e.desc())))?;
        Ok(Some(StateDir {
            path,
            fd,
            pid_ns: own_namespace("pid").unwrap_or(0),
        }))
    }

    /// Hold the directory's lock while `f` changes state files.
    fn locked<T>(&self, f: impl FnOnce() -> T) -> Result<T, SessionError> {
        let fd = self
            .fd
            .try_clone()
            .map_err(|e| self.error(".", "lock", crate::sys::io_errno(&e)))?;
        let lock = Flock::lock(fd, FlockArg::LockExclusive)
            .map_err(|(_, e)| self.error(".", "lock", e))?;
        let out = f();
        drop(lock);
        Ok(out)
    }

    fn error(&self, file: &str, what: &'static str, errno: Errno) -> SessionError {
        SessionError::State {
            path: self.path.join(file),
            what,
            errno,
        }
    }

    /// Remove `file` from the directory, if it is there.
    fn unlink(&self, file: &str) {
        let _ = unlinkat(&self.fd, file, UnlinkatFlags::NoRemoveDir);
    }

    fn state_file(name: &str) -> String {
        format!("{name}.session")
    }

    fn log_file(name: &str) -> String {
        format!("{name}.log")
    }

    fn read(&self, file: &str) -> Result<Option<String>, SessionError> {
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match openat(&self.fd, file, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(self.error(file, "read", e)),
        };
        let mut text = String::new();
        File::from(fd)
            .take(64 * 1024)
            .read_to_string(&mut text)
            .map_err(|e| self.error(file, "read", crate::sys::io_errno(&e)))?;
        Ok(Some(text))
    }

    /// The state file of `name`, when there is one and it can be parsed.
    fn load(&self, name: &str) -> Result<Option<Loaded>, SessionError> {
        let file = Self::state_file(name);
        let Some(text) = self.read(&file)? else {
            return Ok(None);
        };
        match Record::parse(&text) {
            Ok(record) => Ok(Some(Loaded { record, text })),
            // Unreadable state is treated as stale: it names no process to trust.
            Err(_) => Ok(Some(Loaded {
                record: Record {
                    name: name.into(),
                    supervisor: Proc { pid: 0, start: 0 },
                    holder: None,
                    pid_ns: self.pid_ns,
                    created: 0,
                    namespaces: Vec::new(),
                    net: None,
                    net_down: None,
                    detached: false,
                },
                text,
            })),
        }
    }

    /// The live session `name`: a stale state file is removed on the way.
    fn live(&self, name: &str) -> Result<Option<Record>, SessionError> {
        let Some(loaded) = self.load(name)? else {
            return Ok(None);
        };
        if loaded.record.pid_ns != self.pid_ns {
            return Err(SessionError::ForeignPidNamespace { name: name.into() });
        }
        if loaded.record.alive() {
            return Ok(Some(loaded.record));
        }
        self.remove_if_unchanged(name, &loaded.text)?;
        Ok(None)
    }

    /// Remove the state (and log) of `name` if the state file still reads `text`: a new
    /// session may have taken the name in between.
    fn remove_if_unchanged(&self, name: &str, text: &str) -> Result<(), SessionError> {
        self.locked(|| {
            if self.read(&Self::state_file(name)).ok().flatten().as_deref() == Some(text) {
                // The log first: a log never outlives its state file's removal.
                self.unlink(&Self::log_file(name));
                self.unlink(&Self::state_file(name));
            }
        })
    }

    /// Claim `name` for a new session: create its state file, exclusively. A stale file is
    /// replaced; a live session's is an error.
    fn reserve(&self, record: &Record) -> Result<String, SessionError> {
        let name = &record.name;
        let file = Self::state_file(name);
        let text = record.render();
        self.locked(|| {
            for _ in 0..2 {
                let flags = OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC;
                match openat(
                    &self.fd,
                    file.as_str(),
                    flags,
                    Mode::from_bits_truncate(0o600),
                ) {
                    Ok(fd) => {
                        let written = sys::with_signal_ignored(Signal::SIGXFSZ, || {
                            File::from(fd).write_all(text.as_bytes())
                        });
                        if let Err(e) = written {
                            // A half-written claim is no claim: leave nothing.
                            self.unlink(&file);
                            return Err(self.error(&file, "write", crate::sys::io_errno(&e)));
                        }
                        return Ok(text.clone());
                    }
                    Err(Errno::EEXIST) => {}
                    Err(e) => return Err(self.error(&file, "create", e)),
                }
                let existing = self.load(name)?;
                if let Some(Loaded { record: other, .. }) = existing
                    && (other.pid_ns != self.pid_ns || other.alive())
                {
                    let pid = other.holder.unwrap_or(other.supervisor).pid;
                    return Err(SessionError::Exists {
                        name: name.clone(),
                        pid,
                    });
                }
                self.unlink(&Self::log_file(name));
                self.unlink(&file);
            }
            Err(self.error(&file, "create", Errno::EEXIST))
        })?
    }

    /// Replace the state file of `record.name`, atomically (a reader sees the old text or the
    /// new, never half of one).
    fn replace(&self, record: &Record) -> Result<String, SessionError> {
        let file = Self::state_file(&record.name);
        let tmp = format!(".{file}.{}.tmp", getpid());
        let text = record.render();
        let flags = OFlag::O_WRONLY
            | OFlag::O_CREAT
            | OFlag::O_TRUNC
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC;
        let fd = openat(
            &self.fd,
            tmp.as_str(),
            flags,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| self.error(&tmp, "create", e))?;
        let written = sys::with_signal_ignored(Signal::SIGXFSZ, || {
            File::from(fd).write_all(text.as_bytes())
        });
        let renamed = written
            .map_err(|e| crate::sys::io_errno(&e))
            .and_then(|()| renameat(&self.fd, tmp.as_str(), &self.fd, file.as_str()));
        if let Err(e) = renamed {
            self.unlink(&tmp);
            return Err(self.error(&file, "write", e));
        }
        Ok(text)
    }

    /// Every live session, oldest first; stale state files, orphaned logs and temporary
    /// files of dead writers are removed on the way.
    fn sessions(&self) -> Result<Vec<Record>, SessionError> {
        let dir = std::fs::read_dir(&self.path)
            .map_err(|e| self.error(".", "read", crate::sys::io_errno(&e)))?;
        let mut names: Vec<String> = Vec::new();
        let mut others: Vec<String> = Vec::new();
        for entry in dir.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            match file.strip_suffix(".session") {
                Some(name) if check_name(name).is_ok() => names.push(name.into()),
                _ => others.push(file),
            }
        }
        let mut records = Vec::new();
        for name in &names {
            if let Ok(Some(record)) = self.live(name) {
                records.push(record);
            }
        }
        self.locked(|| {
            for file in others {
                let orphan_log = file
                    .strip_suffix(".log")
                    .is_some_and(|name| !names.iter().any(|n| n == name));
                // .NAME.session.PID.tmp, left by a writer killed halfway
                let dead_writer = file.starts_with('.')
                    && file.strip_suffix(".tmp").is_some_and(|rest| {
                        rest.rsplit_once('.')
                            .and_then(|(_, pid)| pid.parse::<i32>().ok())
                            .is_some_and(|pid| Proc::of(pid).is_none())
                    });
                if orphan_log || dead_writer {
                    self.unlink(&file);
                }
            }
        })?;
        records.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
        Ok(records)
    }
}

// ---- creating a session (hooks in launch::supervise) --------------------------------------

/// A session being created or running, owned by become-root's supervising process: it holds
/// the name, tells the caller of `--detach` when the namespaces are ready, and removes the
/// state when the run ends (on drop).
pub struct Session {
    request: Request,
    dir: StateDir,
    /// The process that owns the state (copies in forked children never remove it).
    owner: Pid,
    /// The state file as this run last wrote it.
    written: String,
    record: Record,
    /// The namespace process says "ready" on this pipe once its setup is done.
    ready_r: File,
    ready_w: Option<File>,
    /// `--detach`: the caller, waiting in the foreground for the word "ready".
    caller: Option<File>,
    /// `--detach`: where the session's output goes.
    log: Option<File>,
}

impl Session {
    /// Called first thing in supervise mode, before anything is cloned: claim the name and,
    /// with --detach, continue in the background (only the background process returns).
    /// `net` is what the run's network is (`none`, `slirp4netns`, `pasta`), when it has a
    /// network namespace; `info_fd` a descriptor to keep across --detach.
    pub fn start(
        request: Option<&Request>,
        net: Option<&str>,
        info_fd: Option<i32>,
    ) -> Result<Option<Session>, Error> {
        let Some(request) = request.cloned() else {
            return Ok(None);
        };
        let dir = StateDir::open(true)?
            .ok_or(Errno::ENOENT)
            .map_err(|e| Error::sys("opening the session state directory", e))?;
        let caller = if request.detach {
            // Kept: the state directory and --info-fd; every other descriptor was inherited.
            let keep = [dir.fd.as_raw_fd(), info_fd.unwrap_or(-1)];
            Some(go_to_background(&keep)?)
        } else {
            None
        };
        let supervisor =
            Proc::current().ok_or_else(|| Error::sys("reading /proc/self/stat", Errno::ENOENT))?;
        let net = net.map(str::to_string);
        let record = Record {
            name: request.name.clone(),
            supervisor,
            holder: None,
            pid_ns: dir.pid_ns,
            created: 0,
            namespaces: Vec::new(),
            net,
            net_down: None,
            detached: request.detach,
        };
        let written = dir.reserve(&record)?;
        let (ready_r, ready_w) = process::pipe()?;
        let mut session = Session {
            dir,
            owner: getpid(),
            written,
            record,
            ready_r,
            ready_w: Some(ready_w),
            caller,
            log: None,
            request,
        };
        if session.request.detach {
            let log = session.open_log()?;
            // COMMAND's stdin is /dev/null and its stdout the log from the start; stderr stays
            // the caller's until the namespaces are ready, so that a failed setup is reported
            // where the caller sees it.
            let null = File::open("/dev/null")
                .map_err(|e| Error::sys("opening /dev/null", crate::sys::io_errno(&e)))?;
            nix::unistd::dup2_stdin(&null).map_err(|e| Error::sys("redirecting stdin", e))?;
            nix::unistd::dup2_stdout(&log).map_err(|e| Error::sys("redirecting stdout", e))?;
            session.log = Some(log);
        }
        Ok(Some(session))
    }

    fn open_log(&self) -> Result<File, Error> {
        let file = StateDir::log_file(&self.request.name);
        let flags = OFlag::O_WRONLY
            | OFlag::O_CREAT
            | OFlag::O_TRUNC
            | OFlag::O_APPEND
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC;
        openat(
            &self.dir.fd,
            file.as_str(),
            flags,
            Mode::from_bits_truncate(0o600),
        )
        .map(File::from)
        .map_err(|e| self.dir.error(&file, "create", e).into())
    }

    /// Record which network helper runs (`--net=auto` may fall back to another).
    pub fn network_is(&mut self, program: &str) {
        self.record.net = Some(program.to_string());
    }

    /// Record that the network helper ended (`why`: which and how), for --list. A failure to
    /// write it is not worth ending the session for; the message on stderr stands.
    pub fn network_down(&mut self, why: &str) {
        self.record.net_down = Some(why.to_string());
        if let Ok(written) = self.dir.replace(&self.record) {
            self.written = written;
        }
    }

    /// The descriptors the namespace process still needs for [`Session::ready_inside`].
    pub fn fds_inside(&self) -> Vec<i32> {
        let ready = self.ready_w.as_ref().map(|f| f.as_raw_fd());
        let log = self.log.as_ref().map(|f| f.as_raw_fd());
        ready.into_iter().chain(log).collect()
    }

    /// In the namespace process, once setup is done (maps, ids, mounts, loopback, port
    /// provider) and before COMMAND: say so. A detached session's output goes to the log from
    /// here on. Without COMMAND (`--detach` alone) this process becomes the pause process that
    /// holds the namespaces, and never returns.
    pub fn ready_inside(&self) -> Result<(), Error> {
        if let Some(log) = &self.log {
            nix::unistd::dup2_stderr(log).map_err(|e| Error::sys("redirecting stderr", e))?;
        }
        if let Some(mut ready) = self.ready_w.as_ref() {
            ready
                .write_all(b"r")
                .map_err(|e| Error::sys("reporting readiness", crate::sys::io_errno(&e)))?;
        }
        if self.request.pause {
            // The pause process holds the namespaces and nothing else: not even the pipe and
            // the log it just used (its stdout and stderr are the log already).
            sys::close_own_fds_except(&[]);
            hold();
        }
        Ok(())
    }

    /// In become-root, after the namespace process was told its maps are written: wait until
    /// it is ready, record the session, and let the caller of `--detach` go. If the namespace
    /// process fails instead, it reports why and ends; the supervision that follows returns
    /// its status.
    pub fn namespaces_ready(&mut self, child: Pid) -> Result<(), Error> {
        drop(self.ready_w.take());
        let mut byte = [0u8; 1];
        if !matches!(self.ready_r.read(&mut byte), Ok(1)) {
            return Ok(());
        }
        // COMMAND may already be over (`become-root --name=x true`): then there is no session
        // to record, but it was ready, and the caller of --detach hears so.
        if let Some(holder) = Proc::of(child.as_raw()) {
            self.record.holder = Some(holder);
            self.record.namespaces = namespaces_of(holder.pid);
            self.record.created = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            self.written = self.dir.replace(&self.record)?;
        }
        if let Some(mut caller) = self.caller.take() {
            if let Some(log) = &self.log {
                let _ = nix::unistd::dup2_stderr(log);
            }
            // The caller left (interrupted) before hearing "ready": the session is cancelled.
            caller.write_all(b"r").map_err(|_| {
                SessionError::Detach("the caller went away before the session was ready".into())
            })?;
        }
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if getpid() == self.owner {
            let _ = self
                .dir
                .remove_if_unchanged(&self.request.name, &self.written);
        }
    }
}

/// `--detach`: fork. The parent waits until the child says the namespaces are ready and exits
/// 0, or exits with the child's status if it fails first; the child leaves the caller's
/// session and process group (setsid, so the terminal's hangup and Ctrl-C never reach the
/// session), closes the descriptors it inherited but those in `keep`, and returns the pipe on
/// which to say "ready".
fn go_to_background(keep: &[i32]) -> Result<File, Error> {
    let (mut ready_r, ready_w) = process::pipe()?;
    match sys::fork_process().map_err(|e| Error::sys("fork", e))? {
        Forked::Parent(background) => {
            drop(ready_w);
            let mut byte = [0u8; 1];
            if matches!(ready_r.read(&mut byte), Ok(1)) {
                std::process::exit(0);
            }
            // The background process failed and reported why on our stderr, unless a signal
            // ended it before it could.
            let code = match waitpid(background, None) {
                Ok(WaitStatus::Exited(_, code)) => code,
                other => {
                    let how = match other {
                        Ok(WaitStatus::Signaled(_, sig, _)) => format!("killed by {sig}"),
                        Ok(status) => format!("{status:?}"),
                        Err(e) => e.desc().to_string(),
                    };
                    let e = SessionError::Detach(format!(
                        "the background process ended before the session was ready ({how})"
                    ));
                    Error::from(e).report();
                    crate::error::EXIT_FAILURE
                }
            };
            std::process::exit(code)
        }
        Forked::Child => {
            drop(ready_r);
            nix::unistd::setsid().map_err(|e| Error::sys("setsid", e))?;
            let mut keep = keep.to_vec();
            keep.push(ready_w.as_raw_fd());
            sys::close_fds_except(&keep);
            Ok(ready_w)
        }
    }
}

/// The pause process of a session without COMMAND: hold the namespaces until told to end
/// (SIGTERM, SIGINT or SIGHUP), reaping whatever is left to it (as pid 1 of a pid namespace,
/// the orphans of joined commands). Uses sigwait, so that it works as init too, which the
/// kernel shields from signals without a handler.
fn hold() -> ! {
    let signals = process::forwarded_signals();
    let _ = signals.thread_block();
    loop {
        match signals.wait() {
            Ok(Signal::SIGCHLD) => process::reap_zombies(),
            Ok(sig @ (Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP)) => sys::die_of(sig),
            _ => {}
        }
    }
}

// ---- --join ---------------------------------------------------------------------------------

/// The process whose namespaces a join enters, with them opened.
struct Target {
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
fn join(
    spec: &str,
    words: Vec<std::ffi::OsString>,
    chdir: Option<&str>,
    identity: &crate::identity::Identity,
) -> Result<Infallible, Error> {
    userns::refuse_privileged()?;
    let target = Target::resolve(spec)?;
    let caller = userns::Caller {
        uid: Uid::current().as_raw(),
        gid: Gid::current().as_raw(),
        name: None,
        nested: None,
    };
    let mut command = Command::new(words, userns::containers_env(&caller))?;
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
    // it makes real, effective and saved ids read 0 inside.
    let zero_gid = Gid::from_raw(0);
    let zero_uid = Uid::from_raw(0);
    nix::unistd::setresgid(zero_gid, zero_gid, zero_gid)
        .map_err(|e| Error::sys("setting gid 0", e))?;
    nix::unistd::setresuid(zero_uid, zero_uid, zero_uid)
        .map_err(|e| Error::sys("setting uid 0", e))?;
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
            let ending = process::supervise(child, None, None, &mut || {}, &mut || {})?;
            drop(alive_w);
            ending.finish()
        }
    }
}

// ---- --list ---------------------------------------------------------------------------------

fn list(json: bool) -> Result<(), Error> {
    let (path, sessions) = match StateDir::open(false)? {
        None => (state_dir_location(), Vec::new()),
        Some(dir) => {
            let sessions = dir.sessions()?;
            (dir.path, sessions)
        }
    };
    let text = if json {
        render_json(&path, &sessions)
    } else {
        render_table(&sessions)
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| Error::sys("writing the list", crate::sys::io_errno(&e)))
}

/// The text table of `--list`: a header, then one line per session.
pub fn render_table(sessions: &[Record]) -> String {
    let mut rows = vec![[
        "NAME".to_string(),
        "PID".into(),
        "CREATED".into(),
        "NAMESPACES".into(),
        "NET".into(),
        "STATUS".into(),
    ]];
    for s in sessions {
        let kinds: Vec<&str> = s.namespaces.iter().map(|(k, _)| k.as_str()).collect();
        rows.push([
            s.name.clone(),
            s.holder.map_or("-".into(), |h| h.pid.to_string()),
            if s.created == 0 {
                "starting".into()
            } else {
                utc(s.created)
            },
            if kinds.is_empty() {
                "-".into()
            } else {
                kinds.join(",")
            },
            s.net.clone().unwrap_or_else(|| "-".into()),
            s.status(),
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The JSON of `--list --json`: `{"state_dir": ..., "sessions": [...]}`.
pub fn render_json(dir: &Path, sessions: &[Record]) -> String {
    use crate::json::json_string;
    let path = |p: &Path| json_string(&p.display().to_string());
    let mut out = format!("{{\"state_dir\":{},\"sessions\":[", path(dir));
    for (i, s) in sessions.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let namespaces: Vec<String> = s
            .namespaces
            .iter()
            .map(|(kind, ino)| format!("{}:{ino}", json_string(kind)))
            .collect();
        let log = if s.detached {
            path(&dir.join(StateDir::log_file(&s.name)))
        } else {
            "null".into()
        };
        let _ = write!(
            out,
            "{{\"name\":{},\"pid\":{},\"supervisor_pid\":{},\"created\":{},\"created_unix\":{},\
             \"namespaces\":{{{}}},\"net\":{},\"net_down\":{},\"detached\":{},\"status\":{},\
             \"state_file\":{},\"log\":{log}}}",
            json_string(&s.name),
            s.holder.map_or("null".into(), |h| h.pid.to_string()),
            s.supervisor.pid,
            if s.created == 0 {
                "null".into()
            } else {
                json_string(&utc(s.created))
            },
            s.created,
            namespaces.join(","),
            s.net.as_deref().map_or("null".into(), json_string),
            s.net_down.as_deref().map_or("null".into(), json_string),
            s.detached,
            json_string(&s.status()),
            path(&dir.join(StateDir::state_file(&s.name))),
        );
    }
    out.push_str("]}\n");
    out
}

/// Seconds since the epoch as an ISO 8601 UTC time, `2023-11-14T22:13:20Z` (days to civil
/// date after Howard Hinnant's `civil_from_days`).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

// ---- --stop ---------------------------------------------------------------------------------

/// A process to end, held by a pidfd so that no signal can reach a process that reused its
/// pid.
struct Doomed {
    pid: i32,
    pidfd: OwnedFd,
}

fn stop(name: &str) -> Result<(), Error> {
    check_name(name).map_err(|why| SessionError::BadName {
        name: name.into(),
        why,
    })?;
    let missing = || SessionError::NoSession { name: name.into() };
    let dir = StateDir::open(false)?.ok_or_else(missing)?;
    let loaded = dir.load(name)?.ok_or_else(missing)?;
    let record = loaded.record;
    if record.pid_ns != dir.pid_ns {
        return Err(SessionError::ForeignPidNamespace { name: name.into() }.into());
    }
    if !record.alive() {
        dir.remove_if_unchanged(name, &loaded.text)?;
        return Err(missing().into());
    }
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
    let user_ns = record.namespace("user");
    if let Some(user_ns) = user_ns {
        for pid in members(user_ns) {
            if doomed.iter().all(|d| d.pid != pid)
                && let Ok(pidfd) = sys::pidfd_open(Pid::from_raw(pid))
                && member_of(pid, user_ns)
            {
                doomed.push(Doomed { pid, pidfd });
            }
        }
    }
    // Signal the session; if not one of its processes could be signalled (EPERM: the state
    // file names processes that are not the caller's), say so at once instead of waiting.
    let first: Vec<&Doomed> = if doomed.is_empty() {
        // Still being set up: the supervisor passes SIGTERM on to the namespace process.
        supervisor.iter().collect()
    } else {
        doomed.iter().collect()
    };
    let refused: Vec<(i32, Errno)> = first
        .iter()
        .filter_map(|d| {
            sys::pidfd_send_signal(&d.pidfd, Signal::SIGTERM)
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
    let left = wait_for_exit(doomed, Instant::now() + STOP_GRACE);
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
    // become-root's background part stops the network helper and removes the state itself
    // once the holder has ended; if it does not, it dies (and its helpers with it).
    if let Some(s) = supervisor {
        for d in wait_for_exit(vec![s], Instant::now() + Duration::from_secs(2)) {
            let _ = sys::pidfd_send_signal(&d.pidfd, Signal::SIGKILL);
            wait_for_exit(vec![d], Instant::now() + Duration::from_secs(2));
        }
    }
    dir.remove_if_unchanged(name, &loaded.text)?;
    Ok(())
}

/// Wait until every process in `procs` has ended, or `deadline`; return those still alive.
fn wait_for_exit(mut procs: Vec<Doomed>, deadline: Instant) -> Vec<Doomed> {
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
fn members(user_ns: u64) -> Vec<i32> {
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
fn member_of(pid: i32, user_ns: u64) -> bool {
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
    use super::*;

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

    #[test]
    fn stat_fields() {
        let line = |comm: &str| {
            format!(
                "4242 ({comm}) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 \
                 1000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
            )
        };
        for comm in ["sleep", "a b", "x) S 1 2 (y", ")"] {
            let stat = line(comm);
            assert_eq!(parse_stat(stat.as_bytes()), Some(('S', 987654)), "{comm:?}");
        }
        // An executable named "ääääääää" is cut at 15 bytes, in the middle of the last "ä".
        let empty = line("");
        let (open, rest) = empty.split_at("4242 (".len());
        let cut = [
            open.as_bytes(),
            &"ääääääää".as_bytes()[..15],
            rest.as_bytes(),
        ]
        .concat();
        assert_eq!(parse_stat(&cut), Some(('S', 987654)), "not UTF-8");
        assert_eq!(parse_stat(b"12 (zombie) Z 1"), None, "too short");
        assert_eq!(parse_stat(b"no parenthesis"), None);
        let me = std::fs::read("/proc/self/stat").unwrap();
        let start = parse_stat(&me).map(|(_, start)| start);
        assert!(start.is_some_and(|s| s > 0), "{}", me.escape_ascii());
    }

    /// Regression: /proc/PID/stat was read as UTF-8, so a process whose command name is not
    /// (an executable named "ääääääää" is cut at 15 bytes, in the middle of an "ä") looked
    /// dead: --list and --join removed its live session's state file.
    #[test]
    fn a_command_name_that_is_not_utf8_is_alive() {
        let dir = std::env::temp_dir().join(format!("become-root-stat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let program = dir.join("ääääääää");
        let _ = std::fs::remove_file(&program);
        std::os::unix::fs::symlink("/bin/sleep", &program).unwrap();
        let mut child = std::process::Command::new(&program)
            .arg("30")
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        // The kernel names the process once the exec is done.
        let deadline = Instant::now() + Duration::from_secs(5);
        let stat_path = format!("/proc/{pid}/stat");
        let named = |s: &[u8]| s.windows(2).any(|w| w == b"(\xc3");
        while std::fs::read(&stat_path).is_ok_and(|s| !named(&s)) {
            assert!(Instant::now() < deadline, "the child never ran the program");
            std::thread::sleep(Duration::from_millis(5));
        }
        let stat = std::fs::read(&stat_path).unwrap();
        let alive = Proc::of(pid);
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            std::str::from_utf8(&stat).is_err(),
            "the name is cut inside a character"
        );
        assert!(alive.is_some(), "{}", stat.escape_ascii());
    }

    #[test]
    fn ns_links() {
        let table: &[(&[u8], Option<u64>)] = &[
            (b"user:[4026531837]", Some(4026531837)),
            (b"mnt:[1]", Some(1)),
            (b"user:4026531837", None),
            (b"user:[x]", None),
            (b"", None),
        ];
        for (link, want) in table {
            assert_eq!(parse_ns_link(link), *want, "{link:?}");
        }
    }

    fn record() -> Record {
        Record {
            name: "build".into(),
            supervisor: Proc {
                pid: 10,
                start: 1000,
            },
            holder: Some(Proc {
                pid: 11,
                start: 1001,
            }),
            pid_ns: 4026531836,
            created: 1_700_000_000,
            namespaces: vec![("user".into(), 4026532001), ("mnt".into(), 4026532002)],
            net: Some("slirp4netns".into()),
            net_down: None,
            detached: true,
        }
    }

    #[test]
    fn record_round_trip() {
        let r = record();
        assert_eq!(Record::parse(&r.render()), Ok(r.clone()));
        let starting = Record {
            holder: None,
            created: 0,
            namespaces: Vec::new(),
            net: None,
            detached: false,
            ..r
        };
        assert_eq!(Record::parse(&starting.render()), Ok(starting));
    }

    #[test]
    fn record_parse_rules() {
        let good = record().render();
        let table: &[(&str, bool)] = &[
            (&good, true),
            (&format!("{good}future=key\n"), true),
            (&good.replace(MAGIC, "become-root session 2"), false),
            (&good.replace("supervisor=10 1000", "supervisor=10"), false),
            (&good.replace("holder=11 1001", "holder=x 1001"), false),
            (&good.replace("pid_ns=4026531836\n", ""), false),
            (&good.replace("name=build\n", ""), false),
            ("", false),
        ];
        for (text, ok) in table {
            assert_eq!(Record::parse(text).is_ok(), *ok, "{text}");
        }
    }

    #[test]
    fn state_dir_location() {
        let table: &[(Option<&str>, &str)] = &[
            (Some("/run/user/1000"), "/run/user/1000/become-root"),
            (None, "/tmp/become-root-1000"),
            (Some(""), "/tmp/become-root-1000"),
            (Some("relative/dir"), "/tmp/become-root-1000"),
        ];
        for (xdg, want) in table {
            let got = state_dir_for(xdg.map(std::ffi::OsStr::new), 1000);
            assert_eq!(got, PathBuf::from(want), "{xdg:?}");
        }
    }

    #[test]
    fn root_outside() {
        let table: &[(&str, Option<u32>)] = &[
            (
                "         0       4242          1\n         1     100000      65536\n",
                Some(4242),
            ),
            ("         0          0 4294967295\n", Some(0)),
            ("      1000       1000          1\n", None),
            ("", None),
        ];
        for (map, want) in table {
            assert_eq!(outside_uid_of_root(map), *want, "{map:?}");
        }
    }

    #[test]
    fn utc_times() {
        let table: &[(u64, &str)] = &[
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (4_102_444_799, "2099-12-31T23:59:59Z"),
        ];
        for (secs, want) in table {
            assert_eq!(utc(*secs), *want);
        }
    }

    #[test]
    fn list_renderings() {
        let dir = Path::new("/run/user/1000/become-root");
        let table = render_table(&[record()]);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("NAME   PID  CREATED "), "{table}");
        assert!(
            lines[1].contains("build  11   2023-11-14T22:13:20Z  user,mnt    slirp4netns"),
            "{table}"
        );
        assert!(lines[1].ends_with("  running"), "{table}");
        let mut down = record();
        down.net_down = Some("slirp4netns was killed by signal 9".into());
        assert!(
            render_table(&[down.clone()])
                .lines()
                .nth(1)
                .unwrap()
                .ends_with("  network down: slirp4netns was killed by signal 9"),
            "{}",
            render_table(&[down.clone()])
        );
        assert_eq!(Record::parse(&down.render()), Ok(down));
        assert_eq!(render_table(&[]).lines().count(), 1, "a header only");
        let json = render_json(dir, &[record()]);
        assert_eq!(
            json,
            "{\"state_dir\":\"/run/user/1000/become-root\",\"sessions\":[{\"name\":\"build\",\
             \"pid\":11,\"supervisor_pid\":10,\"created\":\"2023-11-14T22:13:20Z\",\
             \"created_unix\":1700000000,\"namespaces\":{\"user\":4026532001,\"mnt\":4026532002},\
             \"net\":\"slirp4netns\",\"net_down\":null,\"detached\":true,\
             \"status\":\"running\",\
             \"state_file\":\"/run/user/1000/become-root/build.session\",\
             \"log\":\"/run/user/1000/become-root/build.log\"}]}\n"
        );
    }

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let me = Proc::current().unwrap();
        assert!(me.alive());
        let reused = Proc {
            start: me.start + 1,
            ..me
        };
        assert!(!reused.alive(), "another start time: another process");
        assert!(
            !Proc {
                pid: i32::MAX,
                start: 1
            }
            .alive()
        );
    }
}
