//! `--join` of a session with a cgroup of its own (D15): the process that becomes COMMAND is
//! moved into the session's cgroup before it enters the session's cgroup namespace, so that
//! it is counted and limited with the session's processes (cgroup.procs, pids.max,
//! memory.max) and reads `0::/` (or the cgroup below it that it joined) in /proc/self/cgroup.
//!
//! Which cgroup: the session's own, as `runc exec` and `crun exec` put a process into the
//! container's cgroup. Once controllers are enabled for the cgroups below it (what a booted
//! image's systemd does there), it may hold no process (cgroup v2's no-internal-processes
//! rule: the kernel says EBUSY); the joiner then goes where the session's process is, as runc
//! and crun do: init.scope of a booted image. `nsenter` moves no process, and `machinectl
//! shell` asks the image's own systemd for a unit, which needs its bus: become-root does
//! neither.
//!
//! Privilege: none. A leaf of the caller's own cgroup is the caller's to move into; a scope
//! of the user manager's, from a login session's cgroup (root's), is entered by the user
//! manager on the caller's behalf (AttachProcessesToUnit, as it put the session there).

use std::io::{Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag, openat};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::{cgroup_of, directory_of, user_manager};
use crate::error::Error;
use crate::sys::{self, Forked};

/// Move process `pid` into the session's cgroup `own` (its directory as the session's creator
/// saw it, from the session's record), or, where that cgroup may hold no process, into the
/// cgroup of the session's process, `of_process` (its path in the `0::` line of its
/// /proc/PID/cgroup). `label` names the session in errors. Called on the host, before `pid`
/// enters the session's cgroup namespace.
pub fn join(label: &str, own: &Path, of_process: &Path, pid: Pid) -> Result<(), Error> {
    let fail = |why: String| Error::new(format!("{label}: joining its cgroup"), why);
    let process_dir = directory_of(of_process).ok_or_else(|| {
        fail(format!(
            "its process's cgroup {} is not visible here",
            of_process.display()
        ))
    })?;
    // The record is the caller's own file, but what it names is checked: the session's
    // process must be in it, else it is not the session's cgroup.
    if !process_dir.starts_with(own) {
        return Err(fail(format!(
            "its process is in {}, not in the session's cgroup {}",
            process_dir.display(),
            own.display()
        )));
    }
    // A cgroup that enables controllers for the cgroups below it holds no process (cgroup
    // v2's no-internal-processes rule; the kernel says EBUSY): the process's cgroup then.
    let enabled = std::fs::read_to_string(own.join("cgroup.subtree_control"))
        .is_ok_and(|text| !text.trim().is_empty());
    let dir = if enabled { &process_dir } else { own };
    match move_into(dir, pid) {
        Ok(()) => check_in(dir, pid).map_err(fail),
        Err(errno @ (Errno::EACCES | Errno::EPERM)) => {
            match attach_by_user_manager(own, dir, pid) {
                Some(Ok(())) => check_in(dir, pid).map_err(fail),
                Some(Err(said)) => Err(fail(said).with_hint(HINT)),
                None => {
                    let why = format!("cannot move into {}: {}", dir.display(), errno.desc());
                    Err(fail(why).with_hint(HINT))
                }
            }
        }
        Err(errno) => Err(fail(format!(
            "cannot move into {}: {}",
            dir.display(),
            errno.desc()
        ))),
    }
}

const HINT: &str = "join from where you made the session (a shell of the same login), or \
                    from a cgroup of your own above the session's";

/// Write `pid` to `dir`/cgroup.procs, refusing anything that is not a cgroup2 file (the
/// record names the directory: it is opened without following a symlink at its end).
fn move_into(dir: &Path, pid: Pid) -> Result<(), Errno> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let dir = openat(AT_FDCWD, dir, flags, Mode::empty())?;
    let flags = OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let procs: OwnedFd = openat(&dir, "cgroup.procs", flags, Mode::empty())?;
    if nix::sys::statfs::fstatfs(&procs)?.filesystem_type() != nix::sys::statfs::CGROUP2_SUPER_MAGIC
    {
        return Err(Errno::EINVAL);
    }
    std::fs::File::from(procs)
        .write_all(pid.to_string().as_bytes())
        .map_err(|e| sys::io_errno(&e))
}

/// A cgroup at or below a unit of the user manager's: a scope become-root asked for
/// (`.../become-root-N.scope/payload`), or a service that runs become-root (a session
/// started by `systemctl --user`, its leaf below the service's cgroup): ask the user manager
/// to move `pid` into `dir`, below that unit. A login session's cgroup (root's) and the
/// unit's have no common ancestor the caller may write to, which a move needs (cgroup v2's
/// delegation rule); the user manager, which owns its units' cgroups, may. None when `own`
/// is below no unit of the user manager's, or there is no user manager.
fn attach_by_user_manager(own: &Path, dir: &Path, pid: Pid) -> Option<Result<(), String>> {
    let named = |p: &Path| p.file_name().and_then(|n| n.to_str()).map(str::to_owned);
    let (unit_dir, unit) = own.ancestors().find_map(|a| {
        let name = named(a)?;
        (name.ends_with(".scope") || name.ends_with(".service")).then(|| (a.to_path_buf(), name))
    })?;
    // The user manager's own cgroup (user@UID.service) holds its units.
    let managed = unit_dir
        .ancestors()
        .skip(1)
        .any(|a| named(a).is_some_and(|n| n.starts_with("user@") && n.ends_with(".service")));
    if !managed {
        return None;
    }
    let unit = unit.as_str();
    let below = dir.strip_prefix(&unit_dir).ok()?;
    let busctl = user_manager()?;
    let out = sys::helper_command(&busctl)
        .env("SYSTEMD_COLORS", "0")
        .args([
            "--user",
            "--quiet",
            "call",
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "AttachProcessesToUnit",
            "ssau",
            unit,
            &format!("/{}", below.display()),
            "1",
            &pid.to_string(),
        ])
        .output();
    Some(match out {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "your systemd user manager did not move it into {unit}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("running {}: {e}", busctl.display())),
    })
}

/// After the move: /proc/PID/cgroup names `dir`.
fn check_in(dir: &Path, pid: Pid) -> Result<(), String> {
    let now: Option<PathBuf> = cgroup_of(Some(pid)).and_then(|p| directory_of(&p));
    match now {
        Some(now) if now == dir => Ok(()),
        now => Err(format!(
            "moved into {}, but is in {} now",
            dir.display(),
            now.map_or("no cgroup".into(), |p| p.display().to_string())
        )),
    }
}

/// A helper forked on the host before a join enters a session with a pid namespace. The
/// process that becomes COMMAND there can only be made after its parent entered (a pid
/// namespace takes children), and by then the parent is in the session's user namespace,
/// where busctl could not speak for the caller on the user bus (its uid would read 0). The
/// helper moves that process when told its pid, and reports; become-root, which waits
/// outside the pid namespace, stays where it was.
pub struct Mover {
    helper: Pid,
    pid: std::fs::File,
    report: std::fs::File,
}

impl Mover {
    /// Fork the helper for [`join`] of `label`, `own`, `of_process`.
    pub fn start(label: &str, own: &Path, of_process: &Path) -> Result<Mover, Error> {
        let (pid_r, pid_w) = crate::process::pipe()?;
        let (report_r, report_w) = crate::process::pipe()?;
        match sys::fork_process().map_err(|e| Error::sys("fork", e))? {
            Forked::Child => {
                drop((pid_w, report_r));
                let (mut pid_r, mut report_w) = (pid_r, report_w);
                // One line; EOF before it: the join failed before its process existed. (Not
                // to EOF: that process holds a copy of the write end until it executes.)
                let mut line = Vec::new();
                let mut byte = [0u8; 1];
                while let Ok(1) = pid_r.read(&mut byte)
                    && byte[0] != b'\n'
                {
                    line.push(byte[0]);
                }
                let pid = std::str::from_utf8(&line)
                    .ok()
                    .and_then(|text| text.parse().ok())
                    .filter(|_| byte[0] == b'\n')
                    .map(Pid::from_raw);
                if let Some(pid) = pid {
                    let report = match join(label, own, of_process, pid) {
                        Ok(()) => "ok".to_string(),
                        Err(e) => [e.what(), e.why(), e.hint().unwrap_or("")].join("\0"),
                    };
                    let _ = report_w.write_all(report.as_bytes());
                }
                sys::exit_now(0)
            }
            Forked::Parent(helper) => Ok(Mover {
                helper,
                pid: pid_w,
                report: report_r,
            }),
        }
    }

    /// Have `pid` moved, and say how it went.
    pub fn finish(mut self, pid: Pid) -> Result<(), Error> {
        let sent = self.pid.write_all(format!("{pid}\n").as_bytes());
        drop(self.pid);
        let mut report = String::new();
        let _ = self.report.read_to_string(&mut report);
        let _ = waitpid(self.helper, None);
        sent.map_err(|e| {
            Error::sys(
                "moving COMMAND into the session's cgroup",
                sys::io_errno(&e),
            )
        })?;
        if report == "ok" {
            return Ok(());
        }
        let mut parts = report.splitn(3, '\0');
        let what = parts.next().filter(|w| !w.is_empty());
        let why = parts
            .next()
            .unwrap_or("the helper that moves it ended without a word");
        let hint = parts.next().filter(|h| !h.is_empty()).map(str::to_string);
        Err(Error::new(what.unwrap_or("joining the session's cgroup"), why).with_hint_maybe(hint))
    }
}
