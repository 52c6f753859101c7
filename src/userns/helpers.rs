//! Writing the maps: newuidmap and newgidmap found, checked (present, privileged, not on a
//! nosuid mount), run concurrently against the namespace process (forked ahead in exec-in-place
//! mode), each one's status and stderr checked; or the maps written directly where no helper is
//! needed.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use nix::sys::statvfs::{FsFlags, statvfs};
use nix::unistd::Pid;

use super::{HELPER_DIRS, Mapping, UsernsError, Writer};
use crate::idmap::IdMap;
use crate::sys;

/// The first `name` on PATH, then in the usual system directories (newuidmap often lives in
/// an sbin directory that a user's PATH lacks).
pub(super) fn find_program(name: &str) -> Option<PathBuf> {
    sys::find_on_path(name).or_else(|| {
        HELPER_DIRS
            .iter()
            .map(|dir| Path::new(dir).join(name))
            .find(|p| p.is_file())
    })
}

/// Locate newuidmap or newgidmap (`env` overrides) and check that it can work: present,
/// privileged (set-user-ID root or file capabilities) and not on a nosuid mount.
///
/// A path the variable names is the caller's explicit choice: when it cannot work, that is
/// an error naming the variable ([`UsernsError::BadVariable`]), which --map=auto does not
/// replace with a single map in silence.
pub fn find_helper(env: &'static str, name: &str) -> Result<PathBuf, UsernsError> {
    let Some(value) = std::env::var_os(env).filter(|v| !v.is_empty()) else {
        let path =
            find_program(name).ok_or_else(|| UsernsError::HelperMissing { path: name.into() })?;
        check_helper(&path)?;
        return Ok(path);
    };
    let path = PathBuf::from(value);
    let bad = |why: String| UsernsError::BadVariable {
        var: env,
        path: path.clone(),
        why,
    };
    let meta = fs::metadata(&path).map_err(|e| bad(sys::io_errno(&e).desc().to_lowercase()))?;
    if !meta.is_file() {
        return Err(bad("is not a regular file".into()));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(bad("is not executable".into()));
    }
    check_helper(&path).map_err(|e| match e {
        UsernsError::HelperNosuid { .. } => {
            bad("is on a nosuid mount, so its set-user-ID bit is ignored".into())
        }
        UsernsError::HelperOwnerUnmapped { .. } => e,
        _ => bad(
            "is neither set-user-ID root nor has file capabilities, so it cannot write id maps"
                .into(),
        ),
    })?;
    Ok(path)
}

pub(super) fn check_helper(path: &Path) -> Result<(), UsernsError> {
    let meta = fs::metadata(path).map_err(|_| UsernsError::HelperMissing { path: path.into() })?;
    if !meta.is_file() {
        return Err(UsernsError::HelperMissing { path: path.into() });
    }
    if statvfs(path).is_ok_and(|st| st.flags().contains(FsFlags::ST_NOSUID)) {
        return Err(UsernsError::HelperNosuid { path: path.into() });
    }
    let setuid = meta.permissions().mode() & 0o4000 != 0;
    if !(setuid && meta.uid() == 0 || sys::has_file_caps(path)) {
        if setuid && owner_unmapped(meta.uid()) {
            return Err(UsernsError::HelperOwnerUnmapped { path: path.into() });
        }
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
pub(super) fn helper_child(
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

pub(super) fn spawn_helper(program: &Path, pid: Pid, map: &IdMap) -> Result<Child, UsernsError> {
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

pub(super) fn finish_helper(
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

pub(super) fn write_proc(pid: Pid, file: &str, text: &str) -> Result<(), UsernsError> {
    let path = format!("/proc/{pid}/{file}");
    // One write(2) with the whole text: the kernel accepts a map file only once, whole.
    fs::write(&path, text).map_err(|e| UsernsError::WriteMap {
        path,
        errno: sys::io_errno(&e),
    })
}

/// Whether `owner` is the overflow uid of a user namespace that does not map the helper's
/// real owner: inside `--map=keep-id` or `--map=subids`, host root is not mapped, newuidmap
/// shows as owned by nobody, and the kernel ignores its set-user-ID bit.
fn owner_unmapped(owner: u32) -> bool {
    let overflow = fs::read_to_string("/proc/sys/kernel/overflowuid")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(65534);
    owner == overflow
        && fs::read_to_string("/proc/self/uid_map")
            .ok()
            .and_then(|text| IdMap::parse_proc(&text).ok())
            .is_some_and(|map| map != IdMap::host_identity())
}
