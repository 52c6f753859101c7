//! `--cgroup` and the resource limits: a cgroup v2 of the run's own, where the namespace
//! process goes before it makes its cgroup namespace, so that the namespace is rooted there
//! and the cgroup2 mounted at /sys/fs/cgroup inside shows only the run's own subtree.
//!
//! Where the cgroup comes from, first that works:
//! 1. a leaf of the caller's own cgroup, when that cgroup is the caller's (owned and
//!    writable: a delegated subtree, or a cgroup an administrator or a harness made for the
//!    user) and it offers the controllers the limits need;
//! 2. a transient scope of the caller's systemd user manager with `Delegate=yes`, the limits
//!    as its properties (what `systemd-run --user --scope` and podman's systemd cgroup manager
//!    do); from a login that is not under the user manager, systemd moves the process with
//!    the system manager's help (AttachProcessesToUnit);
//! 3. else an error that names what is missing.
//!
//! A leaf is removed by become-root when the run ends, and by a janitor process (a fork of
//! become-root outside the namespaces, holding nothing of the caller's: `janitor`) when
//! become-root is killed or COMMAND left a process behind: it waits for the pipe's end, then,
//! asleep, for the leaf to empty, and removes its tree descriptor-relative, within a bound
//! (`tree`); what it cannot remove it reports to the function the launcher gives it. A scope
//! is removed by systemd once its last process is gone (`CollectMode=inactive-or-failed`);
//! the user manager is asked over the session bus, each call bounded in time and ended by a
//! signal that ends the run (`bus`).
//!
//! Privilege: none. Every write is one the kernel lets the caller make in its own cgroup
//! (cgroup v2's delegation model, Documentation/admin-guide/cgroup-v2.rst, "Delegation
//! Containment": moving a process needs write access to cgroup.procs of the common ancestor
//! of both cgroups, which is the caller's own cgroup here).
mod bus;
mod janitor;
mod join;
mod limits;
mod scope;
mod tree;

use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::{Pid, Uid};

use crate::error::Error;
use crate::sys;

pub use janitor::Report;
pub use join::{Mover, join};
pub use limits::{Limits, parse_cpus, parse_memory_swap, parse_pids, parse_size, size_text};

/// How long `--check` gives the user manager to answer.
const CHECK_LIMIT: Duration = Duration::from_secs(3);

/// Where the run's cgroup came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A leaf made in the caller's own cgroup.
    Leaf,
    /// A transient scope of the caller's systemd user manager, by name.
    Scope(String),
}

/// The run's cgroup, made and holding the namespace process.
#[derive(Debug)]
pub struct Own {
    /// Its directory, as become-root sees it.
    pub path: PathBuf,
    pub source: Source,
    pub limits: Limits,
    /// A leaf's janitor (a scope's keeper) and the write end of its pipe.
    janitor: Option<(Pid, OwnedFd)>,
    /// A leaf: the directory that holds it, open, and its name.
    leaf: Option<tree::Leaf>,
}

/// How long become-root itself waits for the run's last processes to leave its leaf, and
/// then for the tree to be removed, before the janitor takes over.
const ENDING: Duration = Duration::from_millis(500);

/// The cgroup2 mounts (mount point, the cgroup it shows), the topmost last.
fn cgroup2_mounts() -> Vec<(PathBuf, PathBuf)> {
    let text = std::fs::read("/proc/self/mountinfo").unwrap_or_default();
    crate::mountinfo::parse(&text)
        .into_iter()
        .filter(|e| e.fs_type == "cgroup2")
        .map(|e| (e.mount_point, e.root))
        .collect()
}

/// A process's cgroup v2 path (the `0::` line of /proc/PID/cgroup).
fn cgroup_of(pid: Option<Pid>) -> Option<PathBuf> {
    let file = match pid {
        None => "/proc/self/cgroup".to_string(),
        Some(pid) => format!("/proc/{pid}/cgroup"),
    };
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(PathBuf::from)
}

/// Where cgroup `path` is, as this process sees the cgroup2 file system: under the topmost
/// mount that shows it.
fn directory_of(path: &Path) -> Option<PathBuf> {
    cgroup2_mounts().into_iter().rev().find_map(|(at, root)| {
        let below = path.strip_prefix(&root).ok()?;
        // (Joining an empty path would add a trailing slash.)
        let dir = match below.as_os_str().is_empty() {
            true => at,
            false => at.join(below),
        };
        dir.join("cgroup.procs").exists().then_some(dir)
    })
}

/// Whether the caller may manage cgroup `dir`: it owns it and may write its cgroup.procs.
fn is_callers(dir: &Path) -> bool {
    use nix::unistd::{AccessFlags, access};
    let owned = std::fs::metadata(dir).is_ok_and(|m| m.uid() == Uid::current().as_raw());
    owned
        && access(dir, AccessFlags::W_OK).is_ok()
        && access(&dir.join("cgroup.procs"), AccessFlags::W_OK).is_ok()
}

fn words(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// What `--check` says about cgroups: where a run's cgroup would come from and the
/// controllers it would have; else what is missing, and the fix when there is a specific
/// one. The user manager is asked (its version, a cheap call bounded by `CHECK_LIMIT`)
/// before a scope is said to be possible: busctl and a bus address alone promise nothing.
pub fn describe_for_check() -> Result<String, (String, Option<String>)> {
    let Some(current) = cgroup_of(None) else {
        return Err((
            "no cgroup v2 (no 0:: line in /proc/self/cgroup)".into(),
            None,
        ));
    };
    match directory_of(&current) {
        Some(dir) if is_callers(&dir) => {
            let controllers = words(&dir.join("cgroup.subtree_control"));
            Ok(format!(
                "a leaf of your own cgroup {}; controllers: {}",
                dir.display(),
                list_or_none(&controllers)
            ))
        }
        _ => match user_manager() {
            None => Err((no_cgroup_error(&current).why().to_string(), None)),
            Some(busctl) => match manager_version(&busctl) {
                Ok(version) => Ok(format!(
                    "a scope of your systemd user manager (systemd {version}, Delegate=yes); \
                     controllers: {}",
                    list_or_none(&user_manager_controllers())
                )),
                Err(e) => Err((
                    format!("your systemd user manager does not answer: {e}"),
                    Some(
                        "systemctl --user status says whether it runs; without one, log in to \
                         a systemd user session (libpam-systemd, dbus-user-session)"
                            .into(),
                    ),
                )),
            },
        },
    }
}

/// The user manager's version (its Version property), as an answer that it is there.
fn manager_version(busctl: &Path) -> Result<String, bus::BusError> {
    let args = [
        "call",
        "org.freedesktop.systemd1",
        "/org/freedesktop/systemd1",
        "org.freedesktop.DBus.Properties",
        "Get",
        "ss",
        "org.freedesktop.systemd1.Manager",
        "Version",
    ];
    let out = bus::call(busctl, &args, CHECK_LIMIT, &bus::Interrupts::watch())?;
    // `v s "252.30-1~deb12u2"`
    let version = out.split('"').nth(1).unwrap_or(out.trim());
    Ok(version.to_string())
}

fn list_or_none(words: &[String]) -> String {
    match words.is_empty() {
        true => "none".into(),
        false => words.join(" "),
    }
}

/// The controllers the user manager's own cgroup passes down (`user@UID.service`).
fn user_manager_controllers() -> Vec<String> {
    let uid = Uid::current();
    let slice = format!("/user.slice/user-{uid}.slice/user@{uid}.service");
    directory_of(Path::new(&slice))
        .map(|dir| words(&dir.join("cgroup.subtree_control")))
        .unwrap_or_default()
}

/// busctl and the caller's session bus, when both are there.
fn user_manager() -> Option<PathBuf> {
    let busctl = sys::find_on_path("busctl")?;
    let bus = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
        || std::env::var_os("XDG_RUNTIME_DIR")
            .is_some_and(|dir| Path::new(&dir).join("bus").exists());
    bus.then_some(busctl)
}

fn no_cgroup_error(current: &Path) -> Error {
    Error::new(
        "--cgroup",
        format!(
            "your cgroup ({}) is not yours to manage, and no systemd user manager answers on \
             your session bus",
            current.display()
        ),
    )
    .with_hint(
        "log in to a systemd user session (packages libpam-systemd and dbus-user-session), or \
         ask an administrator for a cgroup delegated to you",
    )
}

fn missing_controllers_error(dir: &Path, missing: &[&str], limits: &Limits) -> Error {
    let flags: Vec<String> = limits
        .describe()
        .iter()
        .map(|(name, _)| format!("--{}", name.replace('_', "-").replace("pids", "pids-limit")))
        .collect();
    Error::new(
        flags.join(", "),
        format!(
            "the {} controller{} {} not delegated to your cgroup {}",
            missing.join(" and "),
            if missing.len() > 1 { "s" } else { "" },
            if missing.len() > 1 { "are" } else { "is" },
            dir.display()
        ),
    )
    .with_hint(format!(
        "delegate {} to user sessions: systemctl edit user@.service, add [Service] \
         Delegate={} and log in again",
        missing.join(" "),
        ["cpu", "memory", "pids"].join(" ")
    ))
}

/// Make the run's cgroup and move `child` (the namespace process, waiting to go) into it,
/// with `limits` applied. The janitor says what it could not remove with `report`.
pub fn make(child: Pid, limits: &Limits, report: Report) -> Result<Own, Error> {
    let current = cgroup_of(None).ok_or_else(|| {
        Error::new(
            "--cgroup",
            "this system has no cgroup v2 (no 0:: line in /proc/self/cgroup)",
        )
        .with_hint("boot with systemd.unified_cgroup_hierarchy=1, or leave out --cgroup")
    })?;
    let needed = limits.controllers();
    let own = directory_of(&current).filter(|dir| is_callers(dir));
    let mut short = None;
    if let Some(dir) = own {
        let offered = words(&dir.join("cgroup.subtree_control"));
        let missing: Vec<&str> = needed
            .iter()
            .copied()
            .filter(|c| !offered.iter().any(|o| o == c))
            .collect();
        if missing.is_empty() {
            return make_leaf(&dir, child, limits, report);
        }
        short = Some(missing_controllers_error(&dir, &missing, limits));
    }
    if let Some(busctl) = user_manager() {
        return scope::make(&busctl, child, limits, report);
    }
    Err(short.unwrap_or_else(|| no_cgroup_error(&current)))
}

/// A leaf `become-root-PID` in the caller's cgroup `parent`, its janitor, the limits, and
/// `child` in it.
fn make_leaf(parent: &Path, child: Pid, limits: &Limits, report: Report) -> Result<Own, Error> {
    let name = format!("become-root-{child}");
    let leaf = tree::Leaf::make(parent, &name).map_err(|e| {
        Error::sys(
            format!("making the cgroup {}", parent.join(&name).display()),
            e,
        )
    })?;
    let janitor = janitor::start(Some(&leaf), report).inspect_err(|_| {
        leaf.remove(Instant::now() + ENDING);
    })?;
    let fail = |what: String| move |e: std::io::Error| Error::sys(what, sys::io_errno(&e));
    let own = Own {
        path: leaf.path.clone(),
        source: Source::Leaf,
        limits: limits.clone(),
        janitor: Some(janitor),
        leaf: Some(leaf),
    };
    write_limits(&own.path, limits)?;
    let procs = own.path.join("cgroup.procs");
    write_file(&procs, &child.to_string()).map_err(fail(format!(
        "moving the namespace process to {}",
        procs.display()
    )))?;
    Ok(own)
}

fn write_file(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(value.as_bytes())
}

/// Write `limits` to the interface files of cgroup `dir`.
fn write_limits(dir: &Path, limits: &Limits) -> Result<(), Error> {
    for (file, value) in limits.files() {
        let at = dir.join(file);
        // A kernel without swap accounting has no memory.swap.max: --memory alone still holds.
        if file == "memory.swap.max" && limits.memory_swap.is_none() && !at.exists() {
            continue;
        }
        write_file(&at, &value).map_err(|e| {
            Error::sys(
                format!("writing {value} to {}", at.display()),
                sys::io_errno(&e),
            )
        })?;
    }
    Ok(())
}

impl Own {
    /// How many processes the memory limit killed (memory.events, oom_kill).
    pub fn oom_kills(&self) -> u64 {
        let text = std::fs::read_to_string(self.path.join("memory.events")).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    /// After the run: remove a leaf once it is empty (its processes have just ended, or end
    /// within `ENDING`), or let the janitor do it (a process of COMMAND's outlives
    /// become-root, or the tree resists: the janitor reports). A scope's keeper ends, and
    /// systemd removes the scope once the rest has.
    pub fn remove(mut self) {
        let Some((janitor, pipe)) = self.janitor.take() else {
            return;
        };
        let removed = self.leaf.as_ref().is_none_or(|leaf| {
            leaf.wait_emptied(Some(Instant::now() + ENDING)) == Ok(true)
                && leaf.remove(Instant::now() + ENDING) == tree::Removal::Removed
        });
        if removed {
            let _ = kill(janitor, Signal::SIGKILL);
            let _ = waitpid(janitor, None);
        }
        drop(pipe); // the janitor, if still there, takes over
    }
}
