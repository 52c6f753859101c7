//! The user namespace: who the caller is, which ids get mapped, who writes the maps, and why
//! creating or mapping the namespace failed.
//!
//! Deciding the maps reads files but changes nothing. Writing them happens in a process that
//! stays in the parent user namespace (a helper child in exec-in-place mode, become-root itself
//! when it supervises): newuidmap and newgidmap run concurrently against the namespace process,
//! or, when the caller is privileged or gets a single mapping, the maps are written directly.

use std::fs;
use std::path::PathBuf;

use nix::unistd::{Gid, Uid};

use crate::idmap::IdMap;
use crate::options::MapMode;

mod error;
mod grants;
mod helpers;
mod plan;

pub use error::{UsernsError, apparmor_hint, apparmor_restricts, diagnose_unshare};
use helpers::find_program;
pub use helpers::{PendingHelper, find_helper, write_maps};
use plan::read_proc_map;
pub use plan::{getsubids, nsswitch_has_subid, plan_mapping};

pub const SUBUID: &str = "/etc/subuid";

pub const SUBGID: &str = "/etc/subgid";

const NSSWITCH: &str = "/etc/nsswitch.conf";
const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";

/// Where the helpers live when PATH does not name them (Debian puts them in /usr/bin).
const HELPER_DIRS: &[&str] = &["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"];

/// The identity become-root was started with.
#[derive(Debug, Clone)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    /// Login name from the user database, when there is one.
    pub name: Option<String>,
    /// The current maps when the caller is already uid 0 inside a user namespace.
    pub nested: Option<(IdMap, IdMap)>,
}

impl Caller {
    /// How the user is named in messages and in subid lookups.
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.uid.to_string())
    }

    pub fn is_real_root(&self) -> bool {
        self.uid == 0 && self.nested.is_none()
    }
}

/// Who writes the maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writer {
    /// newuidmap and newgidmap, set-user-ID root: the only source of privilege for an
    /// unprivileged caller.
    Helpers {
        newuidmap: PathBuf,
        newgidmap: PathBuf,
    },
    /// Written to /proc/PID/{uid,gid}_map from the parent namespace by a process with
    /// CAP_SETUID and CAP_SETGID over it: real root, or root in the namespace become-root runs in.
    Privileged,
    /// One id each, the namespace owner's own. The kernel lets the owner write such a map
    /// without privilege, even from inside the new namespace, once setgroups(2) is denied.
    SelfMap,
}

/// The maps for the new namespace and how they get written.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub uid: IdMap,
    pub gid: IdMap,
    pub writer: Writer,
    /// How the uid map and the gid map were made.
    pub how: (Planned, Planned),
}

/// How a map was made, as --verbose, --info-fd and --check name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planned {
    Full,
    Single,
    KeepId,
    Subids,
    /// --map-users or --map-groups.
    Explicit,
    /// Real root's `0 0 4294967295`.
    Identity,
    /// A nested root's current map, as identity.
    PassThrough,
}

impl Planned {
    pub fn name(self) -> &'static str {
        match self {
            Planned::Full => "full",
            Planned::Single => "single",
            Planned::KeepId => "keep-id",
            Planned::Subids => "subids",
            Planned::Explicit => "explicit",
            Planned::Identity => "identity",
            Planned::PassThrough => "pass-through",
        }
    }

    /// Whether COMMAND runs as the caller, not as 0, under a map made so.
    fn as_caller(self) -> bool {
        matches!(self, Planned::KeepId | Planned::Subids)
    }
}

impl Mapping {
    /// The uid and gid COMMAND runs as inside unless --uid and --gid say otherwise: the
    /// caller's own under keep-id and subids; otherwise 0, or the caller's own where 0 is not
    /// mapped (explicit maps); `None` when neither is mapped.
    pub fn command_ids(&self, caller: &Caller) -> (Option<u32>, Option<u32>) {
        let side = |map: &IdMap, how: Planned, own: u32| {
            if !how.as_caller() && map.to_outside(0).is_some() {
                return Some(0);
            }
            map.to_inside(own)
        };
        (
            side(&self.uid, self.how.0, caller.uid),
            side(&self.gid, self.how.1, caller.gid),
        )
    }

    /// Whether COMMAND runs as the caller by default on both sides (keep-id, subids): it
    /// then keeps the caller's supplementary groups, as the caller's own processes do.
    pub fn as_caller(&self) -> bool {
        self.how.0.as_caller() && self.how.1.as_caller()
    }
}

/// Which maps a run asks for: `--map`, and the values of `--map-users` and `--map-groups`
/// as given (none: that side is `--map`'s).
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub mode: MapMode,
    pub users: &'a [String],
    pub groups: &'a [String],
}

impl Ask<'_> {
    /// `--map=MODE` alone.
    pub fn mode(mode: MapMode) -> Ask<'static> {
        Ask {
            mode,
            users: &[],
            groups: &[],
        }
    }
}

/// A warning for `--map=auto` falling back, or for lines it had to skip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub why: String,
    pub hint: Option<String>,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "become-root: warning: {}", self.why)?;
        if let Some(hint) = &self.hint {
            writeln!(f, "hint: {hint}")?;
        }
        Ok(())
    }
}

/// An account as the system's name service has it (NSS: files, LDAP, SSSD, systemd...),
/// asked through `getent passwd KEY` (a uid or a login name): `(name, uid)`. become-root
/// itself never loads NSS modules, so that it can be linked statically (a static glibc
/// cannot load another glibc version's modules); getent, part of the C library's own
/// package, does. The cost, a fork and exec, is paid only for accounts not in /etc/passwd.
pub fn getent_passwd(key: &str) -> Option<(String, u32)> {
    let out = std::process::Command::new("getent")
        .args(["passwd", "--", key])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let line = out.stdout.split(|&b| b == b'\n').next()?;
    let mut fields = line.split(|&b| b == b':');
    let name = String::from_utf8(fields.next()?.to_vec()).ok()?;
    let uid = std::str::from_utf8(fields.nth(1)?).ok()?.parse().ok()?;
    (!name.is_empty()).then_some((name, uid))
}

/// The login name of `uid` in a passwd file's text: the first line whose third field reads
/// as `uid` in decimal (leading zeros too, as glibc's files module reads it).
pub fn passwd_name_of(text: &[u8], uid: u32) -> Option<String> {
    text.split(|&b| b == b'\n').find_map(|line| {
        let mut fields = line.split(|&b| b == b':');
        let name = fields.next()?;
        let _password = fields.next()?;
        let field = std::str::from_utf8(fields.next()?).ok()?;
        (field.parse::<u32>() == Ok(uid) && !name.is_empty())
            .then(|| String::from_utf8_lossy(name).into_owned())
    })
}

/// Whether the primary group of `uid` is its user private group, by /etc/passwd and
/// /etc/group as they are (read here, never through NSS: see [`crate::writers`]).
pub fn private_group(uid: u32) -> crate::writers::PrivateGroup {
    let read = |path| fs::read(path).unwrap_or_default();
    crate::writers::PrivateGroup::parse(&read(PASSWD), &read(GROUP), uid)
}

/// Read the caller's identity. Reads /proc/self/uid_map only when the caller is uid 0.
pub fn caller() -> Result<Caller, UsernsError> {
    let uid = Uid::current().as_raw();
    let gid = Gid::current().as_raw();
    // /etc/passwd directly when NSS would read it first anyway (asking NSS costs a fork
    // and exec of getent(1), see getent_passwd). Network accounts (LDAP, SSSD), and
    // anything not in the file, go through NSS.
    let from_file = plan::nsswitch()
        .passwd_files_first
        .then(|| fs::read(PASSWD).ok())
        .flatten()
        .and_then(|text| passwd_name_of(&text, uid));
    let name = from_file.or_else(|| getent_passwd(&uid.to_string()).map(|(name, _)| name));
    let mut nested = None;
    if uid == 0 {
        let uid_map = read_proc_map("/proc/self/uid_map")?;
        if uid_map != IdMap::host_identity() {
            nested = Some((uid_map, read_proc_map("/proc/self/gid_map")?));
        }
    }
    Ok(Caller {
        uid,
        gid,
        name,
        nested,
    })
}

/// become-root must never be a source of privilege itself: refuse to run set-user-ID,
/// set-group-ID or with file capabilities (only newuidmap/newgidmap may be privileged).
pub fn refuse_privileged() -> Result<(), UsernsError> {
    if crate::sys::exec_was_privileged() {
        return Err(UsernsError::Refuse(
            "this executable was started with privilege (it is set-user-ID, set-group-ID \
             or has file capabilities), which it must never have: privilege comes only from \
             newuidmap and newgidmap"
                .into(),
        ));
    }
    let (ruid, euid) = (Uid::current(), Uid::effective());
    let (rgid, egid) = (Gid::current(), Gid::effective());
    if ruid != euid || rgid != egid {
        return Err(UsernsError::Refuse(
            "become-root is installed set-user-ID or set-group-ID; it must not be (privilege \
             comes only from newuidmap and newgidmap): chmod u-s,g-s on it"
                .into(),
        ));
    }
    if !ruid.is_root() {
        let permitted = caps::read(None, caps::CapSet::Permitted).unwrap_or_default();
        if !permitted.is_empty() {
            return Err(UsernsError::Refuse(
                "become-root runs with capabilities (file capabilities or an ambient set); it \
                 must not: remove them with setcap -r"
                    .into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    use super::{passwd_name_of, plan};

    #[test]
    fn passwd_name_rows() {
        let text = b"root:x:0:0:root:/root:/bin/bash\n\
                     alice:x:1000:1000::/home/alice:/bin/sh\n\
                     +nis\n\
                     :x:1001:1001::/:/bin/sh\n\
                     bob:x:01002:1002::/:/bin/sh\n\
                     carol:x:1003";
        let rows = [
            (0, Some("root")),
            (1000, Some("alice")),
            (1001, None),
            (1002, Some("bob")),
            (1003, Some("carol")),
            (4242, None),
        ];
        for (uid, want) in rows {
            assert_eq!(passwd_name_of(text, uid).as_deref(), want, "{uid}");
        }
    }

    #[test]
    fn nsswitch_rows() {
        let rows = [
            ("", true, false),
            ("passwd: files systemd\ngroup: files\n", true, false),
            ("passwd:         sss files\n", false, false),
            ("passwd: files\nsubid: sss\n", true, true),
            ("# passwd: ldap\npasswd: compat\n", false, false),
            ("passwd:\n", true, false),
            ("passwdx: ldap\n", true, false),
        ];
        for (text, files_first, subid) in rows {
            let n = plan::parse_nsswitch(text);
            assert_eq!(
                (n.passwd_files_first, n.has_subid),
                (files_first, subid),
                "{text:?}"
            );
        }
    }
}
