//! What goes wrong creating the user namespace and writing its maps, and how to fix each: the
//! diagnosis of unshare's errno from the sysctls and AppArmor's restriction.

use std::fs;
use std::path::PathBuf;

use crate::error::Error;
use crate::idmap::MapError;
use crate::subid::SubidError;

/// Creating the user namespace and writing its id maps.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UsernsError {
    #[error("{path}: not found")]
    HelperMissing { path: PathBuf },
    #[error(
        "{path}: neither set-user-ID root nor has file capabilities, so it cannot write id maps"
    )]
    HelperNotPrivileged { path: PathBuf },
    #[error(
        "{path}: its owner is not mapped in this user namespace, so its set-user-ID bit is \
         ignored"
    )]
    HelperOwnerUnmapped { path: PathBuf },
    #[error("{path}: is on a nosuid mount, so its set-user-ID bit is ignored")]
    HelperNosuid { path: PathBuf },
    #[error("{var}={}: {why}", path.display())]
    BadVariable {
        var: &'static str,
        path: PathBuf,
        why: String,
    },
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
    #[error("{flag}: {source}")]
    Entries {
        flag: &'static str,
        #[source]
        source: MapError,
    },
    /// An explicit entry maps ids the caller may not map; the message names them and the grants.
    #[error("{message}")]
    NotGranted { message: String, nested: bool },
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

pub(super) fn stderr_suffix(stderr: &str) -> String {
    let stderr = stderr.trim();
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {}", stderr.replace('\n', "; "))
    }
}

impl UsernsError {
    /// `<what>` of the report.
    fn what(&self) -> &'static str {
        match self {
            UsernsError::Unshare { .. } => "user namespace",
            UsernsError::Subid(_) | UsernsError::NoSubordinateIds { .. } => "subordinate ids",
            UsernsError::Map { .. }
            | UsernsError::Entries { .. }
            | UsernsError::NotGranted { .. } => "id map",
            _ => "id mapping",
        }
    }
}

impl From<UsernsError> for Error {
    fn from(e: UsernsError) -> Error {
        Error::new(e.what(), e.to_string()).with_hint_maybe(e.hint())
    }
}

impl UsernsError {
    /// How to fix it, where a fix is known.
    // long: one arm per error, each with its own fix
    pub fn hint(&self) -> Option<String> {
        let e = self;
        Some(match e {
        UsernsError::HelperMissing { .. } => {
            "install newuidmap and newgidmap (Debian/Ubuntu: apt install uidmap; Fedora: dnf install \
             shadow-utils), set NEWUIDMAP/NEWGIDMAP to their paths, or use --map=single"
                .into()
        }
        UsernsError::BadVariable { var, why, .. } if why.contains("nosuid") => format!(
            "{var} must name a newuidmap or newgidmap on a filesystem mounted without nosuid: \
             unset {var} to use the system's"
        ),
        UsernsError::BadVariable { var, path, why } if why.contains("set-user-ID") => format!(
            "{var} must name a newuidmap or newgidmap that is set-user-ID root (or has file \
             capabilities): unset {var} to use the system's, or, if {0} is one, as root: \
             chmod u+s {0}",
            path.display()
        ),
        UsernsError::BadVariable { var, .. } => format!(
            "set {var} to the path of the program (Debian/Ubuntu: /usr/bin/newuidmap and \
             /usr/bin/newgidmap, from the uidmap package), or unset it to use the one on PATH"
        ),
        UsernsError::HelperNotPrivileged { path } => format!(
            "as root: chmod u+s {0} (or setcap cap_setuid,cap_setgid+ep {0}), or reinstall the \
             uidmap package; or use --map=single",
            path.display()
        ),
        UsernsError::HelperOwnerUnmapped { .. } => {
            "run become-root as root in this namespace (the outer run's --uid=0, or its default \
             map), where it passes the current map through; or use --map=single"
                .into()
        }
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
        UsernsError::Entries { source: MapError::BadEntry { .. }, .. } => {
            "write INNER:OUTER:COUNT (inside id, host id, how many), or auto; see ID MAPS in \
             become-root(1)"
                .into()
        }
        UsernsError::Entries { .. } => {
            "give each id one entry on each side (ID MAPS in become-root(1)); --verbose shows \
             the maps a run gets"
                .into()
        }
        UsernsError::NotGranted { nested: false, .. } => {
            "map only your own id and the ids granted to you ('subid show' lists them, and the \
             map each --map mode makes); an administrator grants more with usermod \
             --add-subuids/--add-subgids"
                .into()
        }
        UsernsError::NotGranted { nested: true, .. } => {
            "map only ids this namespace has (cat /proc/self/uid_map and gid_map)".into()
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
}

/// Explain why unshare(CLONE_NEWUSER | ...) failed, from the sysctls that cause each errno.
pub fn diagnose_unshare(errno: nix::Error) -> UsernsError {
    let read = |p: &str| fs::read_to_string(p).ok().map(|s| s.trim().to_string());
    let hint = match errno {
        nix::Error::ENOSPC | nix::Error::EUSERS => match read("/proc/sys/user/max_user_namespaces")
        {
            Some(max) if max == "0" => Some(
                "user namespaces are disabled (user.max_user_namespaces = 0): as root, sysctl -w \
                 user.max_user_namespaces=15000"
                    .into(),
            ),
            max => Some(format!(
                "the limit of user namespaces (user.max_user_namespaces = {}) is reached, or they \
                 are nested 32 deep: exit some, or raise the limit as root",
                max.unwrap_or_else(|| "?".into())
            )),
        },
        nix::Error::EPERM => {
            if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
                Some(
                    "unprivileged user namespaces are disabled: as root, sysctl -w \
                     kernel.unprivileged_userns_clone=1"
                        .into(),
                )
            } else if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref()
                == Some("1")
            {
                Some(apparmor_hint())
            } else {
                Some(
                    "this process may not create user namespaces: a seccomp filter (container \
                     runtimes block unshare by default), a chroot, or a security module refuses it"
                        .into(),
                )
            }
        }
        nix::Error::EINVAL => Some(
            "the kernel lacks one of the namespace types asked for (CONFIG_USER_NS, ...)".into(),
        ),
        _ => None,
    };
    UsernsError::Unshare {
        what: "user",
        errno,
        hint,
    }
}

/// AppArmor on Ubuntu 23.10+ lets unconfined programs create user namespaces but takes away
/// their capabilities inside, so the first privileged step fails with EPERM.
pub fn apparmor_hint() -> String {
    "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns \
     = 1): as root, add an AppArmor profile for become-root with the `userns,` rule (the package \
     ships one, not loaded: man become-root, SECURITY, says what enabling it means), or sysctl \
     -w kernel.apparmor_restrict_unprivileged_userns=0"
        .into()
}

/// Whether AppArmor's user-namespace restriction is on (EPERM anywhere after unshare).
pub fn apparmor_restricts() -> bool {
    fs::read_to_string("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
        .is_ok_and(|s| s.trim() == "1")
}
