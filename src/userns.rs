//! The user namespace: who the caller is, which ids get mapped, who writes the maps, and why
//! creating or mapping the namespace failed.
//!
//! Deciding the maps reads files but changes nothing. Writing them happens in a process that
//! stays in the parent user namespace (a helper child in exec-in-place mode, become-root itself
//! when it supervises): newuidmap and newgidmap run concurrently against the namespace process,
//! or, when the caller is privileged or gets a single mapping, the maps are written directly.

use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use nix::sys::statvfs::{FsFlags, statvfs};
use nix::unistd::{Gid, Pid, Uid, User};

use crate::error::Error;
use crate::idmap::{IdMap, MapError};
use crate::options::{MapMode, SubidSource};
use crate::subid::{self, SubRange, SubidError};
use crate::sys;

pub const SUBUID: &str = "/etc/subuid";
pub const SUBGID: &str = "/etc/subgid";
const NSSWITCH: &str = "/etc/nsswitch.conf";
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

/// Read the caller's identity. Reads /proc/self/uid_map only when the caller is uid 0.
pub fn caller() -> Result<Caller, UsernsError> {
    let uid = Uid::current().as_raw();
    let gid = Gid::current().as_raw();
    let name = User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name);
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

fn read_proc_map(path: &str) -> Result<IdMap, UsernsError> {
    let text = fs::read_to_string(path).map_err(|e| UsernsError::Read {
        path: path.into(),
        errno: sys::io_errno(&e),
    })?;
    IdMap::parse_proc(&text).map_err(|source| UsernsError::Map {
        path: path.into(),
        source,
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

/// Decide the maps for `mode`, collecting warnings for `--map=auto`.
pub fn plan_mapping(
    mode: MapMode,
    source: SubidSource,
    caller: &Caller,
    warnings: &mut Vec<Warning>,
) -> Result<Mapping, UsernsError> {
    let single = || Mapping {
        uid: IdMap::single(caller.uid),
        gid: IdMap::single(caller.gid),
        // The kernel lets an unprivileged writer map its own gid only once setgroups is
        // denied, or a dropped supplementary group could be regained (CVE-2014-8989).
        writer: Writer::SelfMap,
    };
    if let Some((uid_map, gid_map)) = &caller.nested {
        // Already root in a user namespace: map what we have, as it is.
        if mode == MapMode::Single {
            return Ok(single());
        }
        return Ok(Mapping {
            uid: uid_map.pass_through(),
            gid: gid_map.pass_through(),
            writer: Writer::Privileged,
        });
    }
    if caller.uid == 0 {
        if mode == MapMode::Single {
            return Ok(single());
        }
        return Ok(Mapping {
            uid: IdMap::host_identity(),
            gid: IdMap::host_identity(),
            writer: Writer::Privileged,
        });
    }
    match mode {
        MapMode::Single => Ok(single()),
        MapMode::Full => full_mapping(source, caller, None),
        MapMode::Auto => {
            let mut skipped = Vec::new();
            match full_mapping(source, caller, Some(&mut skipped)) {
                Ok(mapping) => {
                    warnings.extend(skipped);
                    Ok(mapping)
                }
                Err(e) => {
                    warnings.push(fallback_warning(&e, caller));
                    Ok(single())
                }
            }
        }
    }
}

fn fallback_warning(e: &UsernsError, caller: &Caller) -> Warning {
    let hint = e.hint();
    Warning {
        why: format!(
            "{e}; mapping only uid {} and gid {} (as 0); use --map=full to make this an error",
            caller.uid, caller.gid
        ),
        hint,
    }
}

/// The full mapping, or why it cannot be had. With `skipped`, malformed lines of the caller
/// become warnings and the valid ranges are used (`--map=auto`); without, they are errors.
fn full_mapping(
    source: SubidSource,
    caller: &Caller,
    mut skipped: Option<&mut Vec<Warning>>,
) -> Result<Mapping, UsernsError> {
    let newuidmap = find_helper("NEWUIDMAP", "newuidmap")?;
    let newgidmap = find_helper("NEWGIDMAP", "newgidmap")?;
    if nix::sys::prctl::get_no_new_privs().unwrap_or(false) {
        return Err(UsernsError::NoNewPrivs);
    }
    let name = caller.display_name();
    let use_getsubids = match source {
        SubidSource::Files => false,
        SubidSource::Getsubids => true,
        SubidSource::Auto => nsswitch_has_subid(),
    };
    let mut maps = Vec::with_capacity(2);
    for (path, id) in [(SUBUID, caller.uid), (SUBGID, caller.gid)] {
        let ranges = if use_getsubids {
            getsubids(&name, path == SUBGID)?
        } else {
            let text = match fs::read(path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => {
                    return Err(UsernsError::Read {
                        path: path.into(),
                        errno: sys::io_errno(&e),
                    });
                }
            };
            let parsed = subid::caller_ranges(&text, Path::new(path), &name, caller.uid);
            if let Some(first) = parsed.errors.into_iter().next() {
                match skipped.as_deref_mut() {
                    // Nothing valid left: the bad line is the reason, not a missing entry.
                    _ if parsed.ranges.is_empty() => return Err(first.into()),
                    Some(skipped) => skipped.push(Warning {
                        why: format!("ignoring {first}, as newuidmap does"),
                        hint: Some("ask an administrator to correct that line".into()),
                    }),
                    None => return Err(first.into()),
                }
            }
            parsed.ranges
        };
        if ranges.is_empty() {
            // Name the source that was asked: with getsubids, not the file.
            let source = if use_getsubids {
                format!("getsubids{}", if path == SUBGID { " -g" } else { "" })
            } else {
                path.to_string()
            };
            return Err(UsernsError::NoSubordinateIds {
                user: name,
                path: source.into(),
            });
        }
        let map = IdMap::full(id, &ranges).map_err(|source| UsernsError::Map {
            path: path.into(),
            source,
        })?;
        maps.push(map);
    }
    let gid = maps.pop().expect("two maps");
    let uid = maps.pop().expect("two maps");
    Ok(Mapping {
        uid,
        gid,
        writer: Writer::Helpers {
            newuidmap,
            newgidmap,
        },
    })
}

pub fn nsswitch_has_subid() -> bool {
    fs::read_to_string(NSSWITCH)
        .map(|text| text.lines().any(|l| l.trim_start().starts_with("subid:")))
        .unwrap_or(false)
}

/// Ask libsubid through the getsubids program (shadow): `getsubids [-g] USER`.
pub fn getsubids(name: &str, groups: bool) -> Result<Vec<SubRange>, UsernsError> {
    let program = find_program("getsubids")
        .ok_or_else(|| UsernsError::Getsubids("the getsubids program is not installed".into()))?;
    let mut cmd = sys::helper_command(&program);
    if groups {
        cmd.arg("-g");
    }
    let out = cmd
        .arg(name)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| UsernsError::Getsubids(format!("{}: {e}", program.display())))?;
    // Status 1 with nothing printed: the user has no ranges, which is an empty list.
    let no_ranges = out.status.code() == Some(1) && out.stdout.iter().all(u8::is_ascii_whitespace);
    if !out.status.success() && !no_ranges {
        return Err(UsernsError::Getsubids(format!(
            "{} {name} failed ({}): {}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    subid::parse_getsubids(&String::from_utf8_lossy(&out.stdout), name)
        .map_err(UsernsError::Getsubids)
}

/// The first `name` on PATH, then in the usual system directories (newuidmap often lives in
/// an sbin directory that a user's PATH lacks).
fn find_program(name: &str) -> Option<PathBuf> {
    sys::find_on_path(name).or_else(|| {
        HELPER_DIRS
            .iter()
            .map(|dir| Path::new(dir).join(name))
            .find(|p| p.is_file())
    })
}

/// Locate newuidmap or newgidmap (`env` overrides) and check that it can work: present,
/// privileged (set-user-ID root or file capabilities) and not on a nosuid mount.
pub fn find_helper(env: &str, name: &str) -> Result<PathBuf, UsernsError> {
    let path = match std::env::var_os(env).filter(|v| !v.is_empty()) {
        Some(value) => PathBuf::from(value),
        None => {
            find_program(name).ok_or_else(|| UsernsError::HelperMissing { path: name.into() })?
        }
    };
    check_helper(&path)?;
    Ok(path)
}

fn check_helper(path: &Path) -> Result<(), UsernsError> {
    let meta = fs::metadata(path).map_err(|_| UsernsError::HelperMissing { path: path.into() })?;
    if !meta.is_file() {
        return Err(UsernsError::HelperMissing { path: path.into() });
    }
    if statvfs(path).is_ok_and(|st| st.flags().contains(FsFlags::ST_NOSUID)) {
        return Err(UsernsError::HelperNosuid { path: path.into() });
    }
    let setuid_root = meta.permissions().mode() & 0o4000 != 0 && meta.uid() == 0;
    if !setuid_root && !sys::has_file_caps(path) {
        return Err(UsernsError::HelperNotPrivileged { path: path.into() });
    }
    Ok(())
}

/// Write the maps of `pid`'s user namespace. Runs in a process that is still in the parent
/// user namespace and has the caller's credentials (or root's).
pub fn write_maps(pid: Pid, mapping: &Mapping) -> Result<(), UsernsError> {
    match &mapping.writer {
        Writer::Helpers {
            newuidmap,
            newgidmap,
        } => {
            // Both at once: each is a set-user-ID exec that checks the subid files; running
            // them concurrently halves the wait. Neither depends on the other's result.
            let uid_child = spawn_helper(newuidmap, pid, &mapping.uid)?;
            let gid_child = spawn_helper(newgidmap, pid, &mapping.gid);
            let uid_result = finish_helper(newuidmap, pid, &mapping.uid, uid_child);
            let gid_result = gid_child.and_then(|c| finish_helper(newgidmap, pid, &mapping.gid, c));
            uid_result.and(gid_result)
        }
        Writer::Privileged => {
            // The writer holds CAP_SETUID and CAP_SETGID over the parent namespace, so the
            // kernel (new_idmap_permitted) only checks that every outside id is mapped there
            // and that mapping root is backed by CAP_SETFCAP (verify_root_map, since Linux
            // 5.12): the new namespace gets no id its creator does not already have.
            write_proc(pid, "uid_map", &mapping.uid.proc_format())?;
            write_proc(pid, "gid_map", &mapping.gid.proc_format())
        }
        Writer::SelfMap => {
            write_proc(pid, "uid_map", &mapping.uid.proc_format())?;
            // CVE-2014-8989: without privilege over the parent namespace, gid_map may be
            // written only after setgroups(2) is denied, so that dropping a group with
            // setgroups cannot be undone inside the namespace.
            write_proc(pid, "setgroups", "deny")?;
            write_proc(pid, "gid_map", &mapping.gid.proc_format())
        }
    }
}

/// newuidmap or newgidmap forked ahead of unshare(2), waiting to be told the namespace
/// exists, then exec'd straight away: one fork per helper and no process in between, since
/// the namespace process itself can no longer start a set-user-ID program that works (its
/// root is not mapped in the new namespace, so the kernel ignores the bit).
pub struct PendingHelper {
    pid: Pid,
    program: PathBuf,
    args: Vec<String>,
    stderr: std::fs::File,
}

impl PendingHelper {
    /// Fork the helper for `target`; it execs `program` when it reads a byte from `go` and
    /// leaves quietly at end of file (become-root failed to unshare and says so itself).
    pub fn fork(
        program: &Path,
        target: Pid,
        map: &IdMap,
        go: &std::fs::File,
    ) -> Result<PendingHelper, UsernsError> {
        let sys_err = |what: &str| {
            let what = what.to_string();
            move |errno| UsernsError::Sys { what, errno }
        };
        let mut args = vec![target.to_string()];
        args.extend(map.helper_args());
        let (stderr_r, stderr_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys_err("create a pipe"))?;
        let argv: Vec<std::ffi::CString> = std::iter::once(program.as_os_str())
            .chain(args.iter().map(|a| std::ffi::OsStr::new(a.as_str())))
            .map(|a| {
                std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(a)).expect("no NUL")
            })
            .collect();
        match sys::fork_process().map_err(sys_err("fork"))? {
            sys::Forked::Child => {
                drop(stderr_r);
                helper_child(target, go, stderr_w, &argv)
            }
            sys::Forked::Parent(pid) => Ok(PendingHelper {
                pid,
                program: program.into(),
                args,
                stderr: stderr_r.into(),
            }),
        }
    }

    /// Wait for the helper and check how it ended, keeping its stderr for the message.
    pub fn finish(mut self) -> Result<(), UsernsError> {
        let mut stderr = String::new();
        let _ = self.stderr.read_to_string(&mut stderr);
        let status = loop {
            match nix::sys::wait::waitpid(self.pid, None) {
                Err(nix::Error::EINTR) => continue,
                other => break other,
            }
        };
        let failed = |status: String| UsernsError::HelperFailed {
            program: format!("{} {}", self.program.display(), self.args.join(" ")),
            status,
            stderr: stderr.clone(),
        };
        match status {
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
            Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => {
                Err(failed(format!("exit status: {code}")))
            }
            Ok(nix::sys::wait::WaitStatus::Signaled(_, sig, _)) => {
                Err(failed(format!("killed by {sig}")))
            }
            Ok(other) => Err(failed(format!("{other:?}"))),
            Err(errno) => Err(UsernsError::Sys {
                what: "wait for the helper".into(),
                errno,
            }),
        }
    }
}

/// The forked helper: wait for the go byte, then become newuidmap/newgidmap.
fn helper_child(
    target: Pid,
    go: &std::fs::File,
    stderr: std::os::fd::OwnedFd,
    argv: &[std::ffi::CString],
) -> ! {
    // Die with become-root, and never act for a stranger that reused its pid: the check
    // after prctl closes the race with become-root dying first.
    if nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).is_err()
        || nix::unistd::getppid() != target
    {
        sys::exit_now(1);
    }
    let mut byte = [0u8; 1];
    if !matches!((&*go).read(&mut byte), Ok(1)) {
        sys::exit_now(0);
    }
    let mut stderr = std::fs::File::from(stderr);
    if sys::redirect_for_helper(&stderr).is_err() {
        sys::exit_now(126);
    }
    let Err(errno) = nix::unistd::execv(&argv[0], argv);
    use std::io::Write;
    let _ = writeln!(
        stderr,
        "cannot execute {}: {errno}",
        argv[0].to_string_lossy()
    );
    sys::exit_now(127)
}

fn spawn_helper(program: &Path, pid: Pid, map: &IdMap) -> Result<Child, UsernsError> {
    sys::helper_command(program)
        .arg(pid.to_string())
        .args(map.helper_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => UsernsError::HelperMissing {
                path: program.into(),
            },
            _ => UsernsError::HelperFailed {
                program: program.display().to_string(),
                status: e.to_string(),
                stderr: String::new(),
            },
        })
}

fn finish_helper(
    program: &Path,
    pid: Pid,
    map: &IdMap,
    mut child: Child,
) -> Result<(), UsernsError> {
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    let status = child.wait().map_err(|e| UsernsError::HelperFailed {
        program: program.display().to_string(),
        status: e.to_string(),
        stderr: stderr.clone(),
    })?;
    if status.success() {
        return Ok(());
    }
    let mut argv = program.display().to_string();
    argv.push(' ');
    argv.push_str(&pid.to_string());
    for arg in map.helper_args() {
        argv.push(' ');
        argv.push_str(&arg);
    }
    Err(UsernsError::HelperFailed {
        program: argv,
        status: status.to_string(),
        stderr,
    })
}

fn write_proc(pid: Pid, file: &str, text: &str) -> Result<(), UsernsError> {
    let path = format!("/proc/{pid}/{file}");
    // One write(2) with the whole text: the kernel accepts a map file only once, whole.
    fs::write(&path, text).map_err(|e| UsernsError::WriteMap {
        path,
        errno: sys::io_errno(&e),
    })
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
     = 1): as root, add an AppArmor profile for become-root with the `userns,` rule, or sysctl -w \
     kernel.apparmor_restrict_unprivileged_userns=0"
        .into()
}

/// Whether AppArmor's user-namespace restriction is on (EPERM anywhere after unshare).
pub fn apparmor_restricts() -> bool {
    fs::read_to_string("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
        .is_ok_and(|s| s.trim() == "1")
}

/// The values of the `_CONTAINERS_*` variables podman and buildah read to learn that they run
/// in a user namespace someone else configured, and as whom.
pub fn containers_env(caller: &Caller) -> Vec<(OsString, OsString)> {
    if caller.uid == 0 {
        return Vec::new();
    }
    vec![
        ("_CONTAINERS_USERNS_CONFIGURED".into(), "done".into()),
        (
            "_CONTAINERS_ROOTLESS_UID".into(),
            caller.uid.to_string().into(),
        ),
        (
            "_CONTAINERS_ROOTLESS_GID".into(),
            caller.gid.to_string().into(),
        ),
    ]
}

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

impl UsernsError {
    /// `<what>` of the report.
    fn what(&self) -> &'static str {
        match self {
            UsernsError::Unshare { .. } => "user namespace",
            UsernsError::Subid(_) | UsernsError::NoSubordinateIds { .. } => "subordinate ids",
            UsernsError::Map { .. } => "id map",
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
    pub fn hint(&self) -> Option<String> {
        let e = self;
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
}
