//! One error type for the whole launcher, reported once, in one format.
//!
//! Each layer has its own enum (`SubidError` in `subid`, `MapError` in `idmap`, `UsernsError`
//! here for namespace creation and mapping, `ExecError` for starting COMMAND); they fold into
//! [`Error`], which knows the exit status (a contract: DESIGN.md) and the hint. The message is
//! always `become-root: <what>: <why>` followed, where a fix is known, by `hint: <fix>`.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use crate::idmap::MapError;
use crate::subid::SubidError;

/// become-root itself failed, bad usage included.
pub const EXIT_FAILURE: i32 = 125;
/// COMMAND was found but could not be executed.
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
/// COMMAND was not found.
pub const EXIT_NOT_FOUND: i32 = 127;

/// Creating the user namespace and writing its id maps.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UsernsError {
    #[error("{path}: not found")]
    HelperMissing { path: PathBuf },
    #[error(
        "{path}: neither set-user-ID root nor has file capabilities, so it cannot write id maps"
    )]
    HelperNotPrivileged { path: PathBuf },
    #[error("{path}: is on a nosuid mount, so its set-user-ID bit is ignored")]
    HelperNosuid { path: PathBuf },
    #[error("no_new_privs is set for this process, so setuid helpers cannot gain privilege")]
    NoNewPrivs,
    #[error("{program} failed ({status}){}", stderr_suffix(.stderr))]
    HelperFailed {
        program: String,
        status: String,
        stderr: String,
    },
    #[error("no entry for {user} in {path}")]
    NoSubordinateIds { user: String, path: PathBuf },
    #[error(transparent)]
    Subid(#[from] SubidError),
    #[error("{path}: {source}")]
    Map {
        path: PathBuf,
        #[source]
        source: MapError,
    },
    #[error("reading {path}: {errno}")]
    Read { path: PathBuf, errno: nix::Error },
    #[error("getsubids: {0}")]
    Getsubids(String),
    #[error("cannot create it: {errno}")]
    Unshare {
        what: &'static str,
        errno: nix::Error,
        hint: Option<String>,
    },
    #[error("writing {path}: {errno}")]
    WriteMap { path: String, errno: nix::Error },
    #[error("cannot {what}: {errno}")]
    Sys { what: String, errno: nix::Error },
    #[error("{0}")]
    Refuse(String),
}

fn stderr_suffix(stderr: &str) -> String {
    let stderr = stderr.trim();
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {}", stderr.replace('\n', "; "))
    }
}

/// Starting COMMAND.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecError {
    #[error("command not found")]
    NotFound,
    #[error("command not found (PATH entry {unsearchable} could not be searched)")]
    NotFoundSearching { unsearchable: String },
    #[error("not found in the new root {0}")]
    NotInRootfs(PathBuf),
    #[error("{0}")]
    Other(nix::Error),
}

/// Everything that makes become-root exit with a status of its own.
#[derive(Debug)]
pub enum Error {
    /// Bad command line (clap's message, first line).
    Usage { why: String, hint: String },
    /// The user namespace could not be made or mapped.
    Userns(UsernsError),
    /// A mount step failed.
    Mount { what: String, errno: nix::Error },
    /// Networking: the helper or the TAP device.
    Net(crate::net::NetError),
    /// COMMAND could not be started.
    Exec { command: OsString, error: ExecError },
    /// Something else that a system call refused, with context.
    Sys { what: String, errno: nix::Error },
    /// A session: --name, --detach, --join, --list, --stop (session.rs).
    Session(crate::session::SessionError),
    /// An error that was formatted in another process (the map helper) and sent over a pipe.
    Relayed {
        what: String,
        why: String,
        hint: Option<String>,
    },
}

impl From<crate::net::NetError> for Error {
    fn from(e: crate::net::NetError) -> Self {
        Error::Net(e)
    }
}

impl From<crate::session::SessionError> for Error {
    fn from(e: crate::session::SessionError) -> Self {
        Error::Session(e)
    }
}

impl From<UsernsError> for Error {
    fn from(e: UsernsError) -> Self {
        Error::Userns(e)
    }
}

impl Error {
    pub fn sys(what: impl Into<String>, errno: nix::Error) -> Self {
        Error::Sys {
            what: what.into(),
            errno,
        }
    }

    /// The exit status this error stands for.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Exec {
                error:
                    ExecError::NotFound
                    | ExecError::NotFoundSearching { .. }
                    | ExecError::NotInRootfs(_),
                ..
            } => EXIT_NOT_FOUND,
            Error::Exec {
                error: ExecError::Other(nix::Error::ENOENT),
                ..
            } => EXIT_NOT_FOUND,
            Error::Exec { .. } => EXIT_CANNOT_EXECUTE,
            _ => EXIT_FAILURE,
        }
    }

    /// `<what>`: the thing that failed.
    pub fn what(&self) -> String {
        match self {
            Error::Usage { .. } => "usage".into(),
            Error::Userns(e) => match e {
                UsernsError::Unshare { .. } => "user namespace".into(),
                UsernsError::Subid(_) | UsernsError::NoSubordinateIds { .. } => {
                    "subordinate ids".into()
                }
                UsernsError::Map { .. } => "id map".into(),
                _ => "id mapping".into(),
            },
            Error::Mount { what, .. } => what.clone(),
            Error::Net(_) => "network".into(),
            Error::Exec { command, .. } => command.to_string_lossy().into_owned(),
            Error::Sys { what, .. } => what.clone(),
            Error::Relayed { what, .. } => what.clone(),
            Error::Session(e) => e.what(),
        }
    }

    /// `<why>`.
    pub fn why(&self) -> String {
        match self {
            Error::Usage { why, .. } => why.clone(),
            Error::Userns(e) => e.to_string(),
            Error::Mount { errno, .. } | Error::Sys { errno, .. } => errno.desc().to_string(),
            Error::Net(e) => e.to_string(),
            Error::Exec {
                error: ExecError::Other(errno),
                ..
            } => errno.desc().to_string(),
            Error::Exec { error, .. } => error.to_string(),
            Error::Relayed { why, .. } => why.clone(),
            Error::Session(e) => e.to_string(),
        }
    }

    /// `<fix>`, where one is known.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Usage { hint, .. } => Some(hint.clone()),
            Error::Userns(e) => userns_hint(e),
            Error::Exec {
                error: ExecError::NotFound,
                ..
            } => Some("check the spelling, or give the full path of the command".into()),
            Error::Exec {
                error: ExecError::NotFoundSearching { unsearchable },
                ..
            } => Some(format!(
                "check the spelling, or give the full path; you may not search {unsearchable} \
                 (chmod +x it, or take it out of PATH)"
            )),
            Error::Exec {
                error: ExecError::NotInRootfs(_),
                ..
            } => Some(
                "COMMAND is looked up inside --rootfs (PATH searched there): install it in that \
                 tree, or give its path inside it"
                    .into(),
            ),
            Error::Exec {
                error: ExecError::Other(nix::Error::EACCES),
                ..
            } => {
                Some("the file must be executable (chmod +x) and on a mount without noexec".into())
            }
            Error::Relayed { hint, .. } => hint.clone(),
            Error::Session(e) => e.hint(),
            Error::Net(e) => e.hint(),
            Error::Mount {
                errno: nix::Error::EPERM,
                ..
            } => Some(
                "the kernel refused the mount inside the user namespace; see user_namespaces(7)"
                    .into(),
            ),
            Error::Mount {
                errno: nix::Error::ENOENT,
                ..
            } => Some(
                "create it first, or correct the path; with --rootfs, destinations (DST, \
                 TARGET, --tmpfs DIR, --chdir) are inside the new root and must exist there"
                    .into(),
            ),
            Error::Mount {
                errno: nix::Error::ENOTDIR,
                ..
            } => Some("overlay layers and targets, and --tmpfs, need directories".into()),
            Error::Mount {
                errno: nix::Error::EACCES,
                ..
            } => Some(
                "you need search and read access to it (root inside is you outside, and \
                 cannot reach what you cannot)"
                    .into(),
            ),
            _ => None,
        }
    }

    /// Print the error to stderr in the one format.
    pub fn report(&self) {
        eprint!("{self}");
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "become-root: {}: {}", self.what(), self.why())?;
        if let Some(hint) = self.hint() {
            writeln!(f, "hint: {hint}")?;
        }
        Ok(())
    }
}

fn userns_hint(e: &UsernsError) -> Option<String> {
    Some(match e {
        UsernsError::HelperMissing { .. } => {
            "install newuidmap and newgidmap (Debian/Ubuntu: apt install uidmap; Fedora: dnf install \
             shadow-utils), set NEWUIDMAP/NEWGIDMAP to their paths, or use --map=single"
                .into()
        }
        UsernsError::HelperNotPrivileged { path } => format!(
            "as root: chmod u+s {0} (or setcap cap_setuid,cap_setgid+ep {0}), or reinstall the \
             uidmap package; or use --map=single",
            path.display()
        ),
        UsernsError::HelperNosuid { .. } => {
            "use helpers from a filesystem mounted without nosuid (NEWUIDMAP/NEWGIDMAP), or use \
             --map=single"
                .into()
        }
        UsernsError::NoNewPrivs => "run become-root from a context without no_new_privs \
             (systemd NoNewPrivileges=, docker --security-opt no-new-privileges, bwrap and \
             setpriv --no-new-privs set it), or use --map=single"
            .into(),
        UsernsError::NoSubordinateIds { user, .. } => format!(
            "ask an administrator to allocate ids, e.g. usermod --add-subuids 100000-165535 \
             --add-subgids 100000-165535 {user} (pick a range no one else has ever had), or use \
             --map=single"
        ),
        UsernsError::Subid(_) => {
            "ask an administrator to correct that line (newuidmap ignores it as it is), or use \
             --map=auto to map the valid ranges only"
                .into()
        }
        UsernsError::Map { .. } => {
            "ask an administrator to merge the ranges in that file, or use --map=single".into()
        }
        UsernsError::HelperFailed { .. } => {
            "check that /etc/subuid and /etc/subgid list these ranges for you; `become-root \
             --map=single` maps only your own id"
                .into()
        }
        UsernsError::Unshare { hint, .. } => return hint.clone(),
        UsernsError::Getsubids(_) => {
            "check /etc/nsswitch.conf's subid line, or use --subid-source=files".into()
        }
        _ => return None,
    })
}

/// clap's error for bad usage, as `(why, hint)` for `<program>: usage: <why>` and `hint:`:
/// the first line without clap's "error: ", the missing arguments it lists on the following
/// lines, and its tip or the possible values as the hint.
pub fn clap_usage(e: &clap::Error, program: &str) -> (String, String) {
    let text = e.render().to_string();
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .peekable();
    let mut why = lines
        .next()
        .unwrap_or("bad usage")
        .trim_start_matches("error: ")
        .to_string();
    // "the following required arguments were not provided:" lists them on the next lines.
    if why.ends_with(':') {
        let mut missing = Vec::new();
        while let Some(line) = lines.next_if(|l| !l.starts_with("Usage:") && !l.contains(": ")) {
            missing.push(line);
        }
        why = format!("{why} {}", missing.join(", "));
    }
    let tip = lines.find_map(|l| {
        l.strip_prefix("tip: ").map(str::to_string).or_else(|| {
            let values = l.strip_prefix("[possible values: ")?.strip_suffix(']')?;
            Some(format!("use one of: {values}"))
        })
    });
    let hint = match tip {
        Some(tip) => format!("{tip}; see '{program} --help'"),
        None => format!("see '{program} --help'"),
    };
    (why, hint)
}
