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
//! become-root outside the namespaces, holding nothing but a pipe) when become-root is
//! killed: it waits for the pipe's end, then for the leaf to empty, and removes it. A scope is
//! removed by systemd once its last process is gone (`CollectMode=inactive-or-failed`).
//!
//! Privilege: none. Every write is one the kernel lets the caller make in its own cgroup
//! (cgroup v2's delegation model, Documentation/admin-guide/cgroup-v2.rst, "Delegation
//! Containment": moving a process needs write access to cgroup.procs of the common ancestor
//! of both cgroups, which is the caller's own cgroup here).

use std::io::Write as _;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::{Pid, Uid};

use crate::error::Error;
use crate::sys::{self, Forked};

/// The limits asked for, with podman's spellings, as the values cgroup v2 takes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// --memory, in bytes.
    pub memory: Option<u64>,
    /// --memory-swap: memory and swap together, in bytes (u64::MAX: no limit), as podman.
    pub memory_swap: Option<u64>,
    /// --cpus: CPUs' worth of time per period.
    pub cpus: Option<f64>,
    /// --pids-limit (u64::MAX: no limit).
    pub pids: Option<u64>,
}

/// The period of cpu.max, as podman and systemd use it.
const CPU_PERIOD_US: u64 = 100_000;

impl Limits {
    pub fn any(&self) -> bool {
        self.memory.is_some()
            || self.memory_swap.is_some()
            || self.cpus.is_some()
            || self.pids.is_some()
    }

    /// Check the combination: --memory-swap counts memory too, so it needs --memory and may
    /// not be less (podman's rules).
    pub fn check(&self) -> Result<(), Error> {
        match (self.memory, self.memory_swap) {
            (None, Some(_)) => Err(Error::usage(
                "--memory-swap without --memory",
                "--memory-swap is memory and swap together: give --memory too",
            )),
            (Some(memory), Some(swap)) if swap < memory => Err(Error::usage(
                "--memory-swap is less than --memory",
                "--memory-swap is memory and swap together: give at least --memory, or -1 for \
                 no limit on swap",
            )),
            _ => Ok(()),
        }
    }

    /// The controllers the limits need, in the order the kernel lists them.
    pub fn controllers(&self) -> Vec<&'static str> {
        let mut needed = Vec::new();
        if self.cpus.is_some() {
            needed.push("cpu");
        }
        if self.memory.is_some() {
            needed.push("memory");
        }
        if self.pids.is_some() {
            needed.push("pids");
        }
        needed
    }

    /// The interface files and what to write to them.
    fn files(&self) -> Vec<(&'static str, String)> {
        let max = |v: u64| match v {
            u64::MAX => "max".to_string(),
            v => v.to_string(),
        };
        let mut files = Vec::new();
        if let Some(memory) = self.memory {
            files.push(("memory.max", memory.to_string()));
            files.push(("memory.swap.max", max(self.swap())));
        }
        if let Some(cpus) = self.cpus {
            files.push(("cpu.max", format!("{} {CPU_PERIOD_US}", cpu_quota_us(cpus))));
        }
        if let Some(pids) = self.pids {
            files.push(("pids.max", max(pids)));
        }
        files
    }

    /// Swap alone: --memory-swap less --memory; as much as --memory when only that is given
    /// (podman's default).
    fn swap(&self) -> u64 {
        match (self.memory, self.memory_swap) {
            (_, Some(u64::MAX)) => u64::MAX,
            (Some(memory), Some(total)) => total - memory,
            (Some(memory), None) => memory,
            (None, _) => u64::MAX,
        }
    }

    /// The same limits as properties of a systemd unit (name, D-Bus signature, value).
    fn properties(&self) -> Vec<(&'static str, &'static str, String)> {
        let mut props = Vec::new();
        if let Some(memory) = self.memory {
            props.push(("MemoryMax", "t", memory.to_string()));
            props.push(("MemorySwapMax", "t", self.swap().to_string()));
        }
        if let Some(cpus) = self.cpus {
            let per_sec = cpu_quota_us(cpus) * (1_000_000 / CPU_PERIOD_US);
            props.push(("CPUQuotaPerSecUSec", "t", per_sec.to_string()));
        }
        if let Some(pids) = self.pids {
            props.push(("TasksMax", "t", pids.to_string()));
        }
        props
    }

    /// As the user wrote them, for messages and --info-fd: "memory 64M, pids 20".
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let size = |v: u64| match v {
            u64::MAX => "max".to_string(),
            v => v.to_string(),
        };
        let mut out = Vec::new();
        if let Some(memory) = self.memory {
            out.push(("memory", size(memory)));
        }
        if let Some(swap) = self.memory_swap {
            out.push(("memory_swap", size(swap)));
        }
        if let Some(cpus) = self.cpus {
            out.push(("cpus", format!("{cpus}")));
        }
        if let Some(pids) = self.pids {
            out.push(("pids", size(pids)));
        }
        out
    }
}

/// A size as podman would take it back: 64M for 67108864, bytes when no unit divides it.
pub fn size_text(bytes: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if bytes.is_multiple_of(1u64 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

fn cpu_quota_us(cpus: f64) -> u64 {
    // The kernel's least quota is 1 ms.
    ((cpus * CPU_PERIOD_US as f64).round() as u64).max(1000)
}

/// `--memory` and `--memory-swap` values: a number of bytes with an optional unit b, k, m, g
/// or t (1024-based, any case, a trailing b allowed: 64M, 64mb, 1.5g), as podman reads them.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let shift = match unit.strip_suffix('b').unwrap_or(unit) {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => {
            return Err(format!(
                "{text:?}: not a size (a number and b, k, m, g or t)"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: not a size (a number and b, k, m, g or t)"))?;
    let bytes = value * (1u64 << shift) as f64;
    if !(1.0..1.8e19).contains(&bytes) {
        return Err(format!("{text:?}: out of range"));
    }
    Ok(bytes as u64)
}

/// `--memory-swap`: a size, or -1 for no limit on swap.
pub fn parse_memory_swap(text: &str) -> Result<u64, String> {
    match text.trim() {
        "-1" => Ok(u64::MAX),
        _ => parse_size(text),
    }
}

/// `--cpus`: a positive number, fractions allowed (0.5 is half of one CPU's time).
pub fn parse_cpus(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(cpus) if cpus > 0.0 && cpus <= 1_000_000.0 => Ok(cpus),
        _ => Err(format!(
            "{text:?}: not a positive number of CPUs (0.5, 2, ...)"
        )),
    }
}

/// `--pids-limit`: a positive number of tasks, or -1 for no limit.
pub fn parse_pids(text: &str) -> Result<u64, String> {
    match text.trim() {
        "-1" => Ok(u64::MAX),
        t => match t.parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{text:?}: not a positive number of tasks, or -1")),
        },
    }
}

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
    /// A leaf's janitor and the write end of its pipe.
    janitor: Option<(Pid, OwnedFd)>,
}

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

/// What `--check` says about cgroups: where a run's cgroup would come from, and the
/// controllers it would have.
pub fn describe_for_check() -> (bool, String) {
    let Some(current) = cgroup_of(None) else {
        return (
            false,
            "no cgroup v2 (no 0:: line in /proc/self/cgroup)".into(),
        );
    };
    match directory_of(&current) {
        Some(dir) if is_callers(&dir) => {
            let controllers = words(&dir.join("cgroup.subtree_control"));
            (
                true,
                format!(
                    "a leaf of your own cgroup {}; controllers: {}",
                    dir.display(),
                    list_or_none(&controllers)
                ),
            )
        }
        _ if user_manager().is_some() => {
            let controllers = user_manager_controllers();
            (
                true,
                format!(
                    "a scope of your systemd user manager (Delegate=yes); controllers: {}",
                    list_or_none(&controllers)
                ),
            )
        }
        _ => (false, no_cgroup_error(&current).why().to_string()),
    }
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
/// with `limits` applied.
pub fn make(child: Pid, limits: &Limits) -> Result<Own, Error> {
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
            return make_leaf(&dir, child, limits);
        }
        short = Some(missing_controllers_error(&dir, &missing, limits));
    }
    if let Some(busctl) = user_manager() {
        return make_scope(&busctl, child, limits);
    }
    Err(short.unwrap_or_else(|| no_cgroup_error(&current)))
}

/// A leaf `become-root-PID` in the caller's cgroup `parent`, its janitor, the limits, and
/// `child` in it.
fn make_leaf(parent: &Path, child: Pid, limits: &Limits) -> Result<Own, Error> {
    let path = parent.join(format!("become-root-{child}"));
    let fail = |what: String| move |e: std::io::Error| Error::sys(what, sys::io_errno(&e));
    std::fs::create_dir(&path).map_err(fail(format!("making the cgroup {}", path.display())))?;
    let mut own = Own {
        path,
        source: Source::Leaf,
        limits: limits.clone(),
        janitor: None,
    };
    own.janitor = Some(start_janitor(Some(&own.path))?);
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

/// The janitor: a fork that holds only the read end of a pipe, ignores the signals a
/// terminal or a session stop sends, and once the pipe ends (become-root finished or was
/// killed) removes the leaf as soon as it is empty.
///
/// Without `path` it is a scope's keeper: its process keeps the scope (and the memory.events
/// become-root reads at the end) alive until become-root is done, then it ends, and systemd
/// removes the scope with everything below it.
fn start_janitor(path: Option<&Path>) -> Result<(Pid, OwnedFd), Error> {
    let (read, write) = crate::process::pipe()?;
    match sys::fork_process().map_err(|e| Error::sys("fork", e))? {
        Forked::Child => {
            let read: OwnedFd = read.into();
            let fd = read.as_raw_fd();
            std::mem::forget(read);
            sys::close_fds_except(&[fd]);
            let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
            for sig in [
                Signal::SIGINT,
                Signal::SIGTERM,
                Signal::SIGHUP,
                Signal::SIGQUIT,
                Signal::SIGTSTP,
            ] {
                sys::ignore_signal(sig);
            }
            let _ = nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&nix::sys::signal::SigSet::empty()),
                None,
            );
            let mut byte = [0u8; 1];
            while matches!(
                nix::unistd::read(sys::borrow_fd(fd), &mut byte),
                Ok(1) | Err(nix::Error::EINTR)
            ) {}
            // EBUSY: still populated after an hour (a daemon of COMMAND's); wait on.
            while let Some(path) = path
                && remove_tree(path, Duration::from_secs(3600)) == Err(nix::Error::EBUSY)
            {
            }
            sys::exit_now(0)
        }
        Forked::Parent(pid) => Ok((pid, write.into())),
    }
}

/// Remove cgroup `dir` and the cgroups below it (what COMMAND made: podman's, systemd's),
/// deepest first, waiting up to `wait` for each to empty. ENOENT counts as removed.
fn remove_tree(dir: &Path, wait: Duration) -> Result<(), nix::Error> {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path(), wait)?;
            }
        }
    }
    let deadline = Instant::now() + wait;
    loop {
        match std::fs::remove_dir(dir).map_err(|e| sys::io_errno(&e)) {
            Ok(()) | Err(nix::Error::ENOENT) => return Ok(()),
            Err(nix::Error::EBUSY) if Instant::now() < deadline => wait_emptied(dir, deadline),
            Err(e) => return Err(e),
        }
    }
}

/// Wait until cgroup.events of `dir` says "populated 0", or `deadline`: the kernel notifies
/// a change of that file to poll(2) as POLLPRI (cgroup-v2.rst, "cgroup.events").
fn wait_emptied(dir: &Path, deadline: Instant) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let Ok(events) = std::fs::File::open(dir.join("cgroup.events")) else {
        return;
    };
    loop {
        let text = std::fs::read_to_string(dir.join("cgroup.events")).unwrap_or_default();
        if !text.lines().any(|l| l == "populated 1") || Instant::now() >= deadline {
            return;
        }
        let left = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(1));
        let mut fds = [PollFd::new(
            std::os::fd::AsFd::as_fd(&events),
            PollFlags::POLLPRI,
        )];
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let _ = poll(&mut fds, PollTimeout::from(ms));
    }
}

/// A transient scope of the caller's systemd user manager, with Delegate=yes and the limits
/// as its properties. systemd moves `child` and a keeper (see [`start_janitor`]) into it
/// (from a login session's scope, which is root's, only systemd can); become-root then lays
/// out the delegated subtree as the no-internal-processes rule wants it: the keeper in
/// SCOPE/keeper, the namespace process in SCOPE/payload, the controllers enabled for both.
fn make_scope(busctl: &Path, child: Pid, limits: &Limits) -> Result<Own, Error> {
    let unit = format!("become-root-{child}.scope");
    let (keeper, pipe) = start_janitor(None)?;
    let mut own = Own {
        path: PathBuf::new(),
        source: Source::Scope(unit.clone()),
        limits: limits.clone(),
        janitor: Some((keeper, pipe)),
    };
    let mut props: Vec<(&str, &str, String)> = vec![
        ("Description", "s", "become-root --cgroup".into()),
        ("Delegate", "b", "true".into()),
        ("CollectMode", "s", "inactive-or-failed".into()),
        // An OOM kill ends COMMAND, as a kernel's would; become-root reports it.
        ("OOMPolicy", "s", "continue".into()),
    ];
    props.extend(limits.properties());
    let mut cmd = sys::helper_command(busctl);
    cmd.args([
        "--user",
        "--quiet",
        "call",
        "org.freedesktop.systemd1",
        "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager",
        "StartTransientUnit",
        "ssa(sv)a(sa(sv))",
        &unit,
        "fail",
    ]);
    cmd.arg((props.len() + 1).to_string());
    cmd.args(["PIDs", "au", "2", &child.to_string(), &keeper.to_string()]);
    for (name, signature, value) in &props {
        cmd.args([*name, *signature, value.as_str()]);
    }
    cmd.arg("0");
    let out = cmd.output().map_err(|e| {
        Error::sys(
            format!("--cgroup: running {}", busctl.display()),
            sys::io_errno(&e),
        )
    })?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(Error::new(
            "--cgroup: asking your systemd user manager for a scope",
            if said.is_empty() {
                format!("busctl {}", out.status)
            } else {
                said
            },
        )
        .with_hint("systemctl --user status shows whether the user manager runs"));
    }
    // The job runs asynchronously: the scope exists once both processes are in it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let in_scope = |pid: Pid| cgroup_of(Some(pid)).filter(|p| p.ends_with(&unit));
    let scope = loop {
        if let (Some(path), Some(_)) = (in_scope(child), in_scope(keeper)) {
            break directory_of(&path).ok_or_else(|| {
                Error::new(
                    "--cgroup",
                    format!("the scope {} is not visible here", path.display()),
                )
            })?;
        }
        if Instant::now() > deadline {
            return Err(Error::new(
                "--cgroup",
                format!("the scope {unit} did not take the namespace process within 10 s"),
            )
            .with_hint(format!("journalctl --user -u {unit} says why")));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let fail = |what: String| move |e: std::io::Error| Error::sys(what, sys::io_errno(&e));
    for (leaf, pid) in [("keeper", keeper), ("payload", child)] {
        let dir = scope.join(leaf);
        std::fs::create_dir(&dir).map_err(fail(format!("making {}", dir.display())))?;
        let procs = dir.join("cgroup.procs");
        write_file(&procs, &pid.to_string())
            .map_err(fail(format!("moving process {pid} to {}", procs.display())))?;
    }
    own.path = scope.join("payload");
    // Every controller the scope has, for COMMAND's own use too (podman, systemd inside).
    let offered = words(&scope.join("cgroup.controllers"));
    let enable: Vec<String> = offered.iter().map(|c| format!("+{c}")).collect();
    let control = scope.join("cgroup.subtree_control");
    if !enable.is_empty() {
        write_file(&control, &enable.join(" ")).map_err(fail(format!(
            "enabling controllers in {}",
            control.display()
        )))?;
    }
    let missing: Vec<&str> = limits
        .controllers()
        .into_iter()
        .filter(|c| !offered.iter().any(|o| o == c))
        .collect();
    if !missing.is_empty() {
        return Err(missing_controllers_error(&scope, &missing, limits));
    }
    // The limits on the payload too, as on a leaf: COMMAND sees them at /sys/fs/cgroup
    // (memory.max, cpu.stat's throttling), as a container sees its own.
    write_limits(&own.path, limits)?;
    Ok(own)
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

    /// After the run: remove a leaf once it is empty (its processes have just ended), or let
    /// the janitor do it when some of COMMAND's outlive become-root. A scope's keeper ends,
    /// and systemd removes the scope once the rest has.
    pub fn remove(mut self) {
        if let Some((janitor, pipe)) = self.janitor.take() {
            if remove_tree(&self.path, Duration::from_millis(500)).is_ok() {
                let _ = kill(janitor, Signal::SIGKILL);
                let _ = waitpid(janitor, None);
            }
            drop(pipe); // the janitor, if still there, takes over
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_podman_reads_them() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("64mb"), Ok(64 << 20));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("100b"), Ok(100));
        assert!(parse_size("64x").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("-5m").is_err());
        assert_eq!(parse_memory_swap("-1"), Ok(u64::MAX));
        assert_eq!(size_text(64 << 20), "64M");
        assert_eq!(size_text(3 << 29), "1536M");
        assert_eq!(size_text(1000), "1000");
        assert_eq!(parse_cpus("0.5"), Ok(0.5));
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("two").is_err());
        assert_eq!(parse_pids("20"), Ok(20));
        assert_eq!(parse_pids("-1"), Ok(u64::MAX));
        assert!(parse_pids("0").is_err());
    }

    #[test]
    fn limits_as_interface_files_and_unit_properties() {
        let limits = Limits {
            memory: Some(64 << 20),
            memory_swap: None,
            cpus: Some(0.5),
            pids: Some(20),
        };
        assert_eq!(
            limits.files(),
            vec![
                ("memory.max", "67108864".to_string()),
                ("memory.swap.max", "67108864".to_string()),
                ("cpu.max", "50000 100000".to_string()),
                ("pids.max", "20".to_string()),
            ]
        );
        assert_eq!(
            limits.properties(),
            vec![
                ("MemoryMax", "t", "67108864".to_string()),
                ("MemorySwapMax", "t", "67108864".to_string()),
                ("CPUQuotaPerSecUSec", "t", "500000".to_string()),
                ("TasksMax", "t", "20".to_string()),
            ]
        );
        assert_eq!(limits.controllers(), ["cpu", "memory", "pids"]);
        let swap = Limits {
            memory: Some(100),
            memory_swap: Some(300),
            ..Limits::default()
        };
        assert_eq!(swap.files()[1], ("memory.swap.max", "200".to_string()));
        let unlimited = Limits {
            memory_swap: Some(u64::MAX),
            ..swap.clone()
        };
        assert_eq!(unlimited.files()[1], ("memory.swap.max", "max".to_string()));
        assert!(swap.check().is_ok());
        let less = Limits {
            memory_swap: Some(50),
            ..swap
        };
        assert!(less.check().is_err());
        let alone = Limits {
            memory_swap: Some(50),
            ..Limits::default()
        };
        assert!(alone.check().is_err());
    }
}
