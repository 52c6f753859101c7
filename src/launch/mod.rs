//! The launcher: from what the command line asks to COMMAND running in its namespaces.
//!
//! Two shapes, chosen by what must live outside the namespaces (DESIGN.md, process model):
//! - exec in place (`in_place`): newuidmap and newgidmap, forked ahead, write the maps
//!   while become-root itself unshares and then execs COMMAND, which keeps become-root's pid;
//! - supervise (`supervise`: `--pid`, a network helper, published ports, `--info-fd`, a
//!   session, `--cgroup`, fuse-overlayfs): become-root clones the namespace process, writes its maps and starts its
//!   helpers from outside, and waits, forwarding signals. That run is a pipeline of named
//!   steps with one place that undoes them.
//!
//! [`plan`] decides everything that can be decided before any namespace exists. Inside,
//! [`inside`] runs the steps in the same order in both shapes: maps written, ids set to 0,
//! mounts, loopback, then COMMAND (or an init); its [`inside::Ops`] seam lets a unit test
//! check that order.

use std::ffi::OsString;

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;

use crate::error::{Error, say};
use crate::options::{
    FsArg, MapMode, NetMode, OverlayDriver, PortDriver, Propagation, SubidSource,
};
use crate::sys;

mod extras;
mod in_place;
pub mod inside;
mod plan;
mod supervise;
mod warden;

pub use extras::TimeOffsets;
pub use plan::{Plan, plan};

/// What a run is asked for: the command line's options for a new run, as values (`cli`
/// parses argv into them; nothing here reads argv).
#[derive(Debug, Clone)]
pub struct Request {
    pub map: MapMode,
    /// --map-users and --map-groups, as given (INNER:OUTER:COUNT or auto).
    pub map_users: Vec<String>,
    pub map_groups: Vec<String>,
    pub subid_source: SubidSource,
    pub mount: bool,
    pub propagation: Propagation,
    pub net: Option<NetMode>,
    pub publish: Vec<String>,
    pub port_driver: PortDriver,
    /// Published TCP ports keep the client's address (not --no-client-address).
    pub keep_clients: bool,
    pub allow_host_loopback: bool,
    pub mtu: u32,
    /// --cidr, --ipv6, --dns, as given (checked by the plan).
    pub cidr: Option<String>,
    pub ipv6: bool,
    pub dns: Vec<String>,
    /// The filesystem options in command-line order.
    pub filesystem: Vec<FsArg>,
    pub overlay_driver: OverlayDriver,
    pub rootfs: Option<String>,
    /// --sysfs: a fresh sysfs at /sys (implies a network namespace).
    pub sysfs: bool,
    pub chdir: Option<String>,
    /// --uid, --gid, --cap-add, --cap-drop, --no-new-privs.
    pub identity: crate::identity::Asked,
    /// --drop-groups: no supplementary groups inside.
    pub drop_groups: bool,
    pub info_fd: Option<i32>,
    pub verbose: bool,
    pub quiet: bool,
    pub pid: bool,
    /// --as-pid-1: COMMAND is pid 1 (no init of become-root's).
    pub as_pid_1: bool,
    /// --boot: a system image (plan.rs says what it implies).
    pub boot: bool,
    /// --stop-timeout: how long a booted image has to halt before it is killed.
    pub stop_timeout: Option<u64>,
    /// --notify-ready: when a booted image counts as ready.
    pub notify_ready: crate::options::NotifyReady,
    pub uts: bool,
    pub ipc: bool,
    /// --cgroup: a cgroup of the run's own (cgroup.rs).
    pub cgroup: bool,
    /// --memory, --memory-swap, --cpus, --pids-limit (each implies --cgroup).
    pub limits: crate::cgroup::Limits,
    pub all: bool,
    /// --emulate, the time namespace, --hostname, the environment options, --device.
    pub extras: crate::options::Extras,
    pub name: Option<String>,
    pub detach: bool,
    pub command: Vec<OsString>,
}

/// Run `request` and return the exit status (which is returned only on failure: on success
/// COMMAND has replaced this process, or this process ended the way COMMAND did). A signal
/// that interrupted the setup (everything made is undone by now) is died of.
pub fn main(request: Request) -> i32 {
    match run(request) {
        Ok(never) => match never {},
        Err(e) => {
            if let Some(sig) = e.signal().and_then(|n| Signal::try_from(n).ok()) {
                sys::die_of(sig);
            }
            e.report();
            e.exit_code()
        }
    }
}

fn run(cli: Request) -> Result<std::convert::Infallible, Error> {
    let quiet = cli.quiet;
    // Taken out before COMMAND's environment is made (plan): they are become-root's alone.
    let again = sys::take_env_var(supervise::REBOOTED).map(|v| crate::session::Again::parse(&v));
    let notifier =
        sys::take_env_var("NOTIFY_SOCKET").and_then(crate::process::notify::Notifier::new);
    let (mut plan, warnings) = plan(cli)?;
    plan.again = again;
    plan.notifier = notifier.map(std::sync::Arc::new);
    if plan.verbose {
        let show = |map: &crate::idmap::IdMap| {
            let extents: Vec<String> = map.ranges().iter().map(|r| r.to_string()).collect();
            extents.join(", ")
        };
        say!("become-root: uid map: {}", show(&plan.mapping.uid));
        say!("become-root: gid map: {}", show(&plan.mapping.gid));
        say!("become-root: {}", plan.identity_text());
        if let Some(net) = &plan.connected {
            say!(
                "become-root: network: {}",
                net.addressing.describe(net.driver)
            );
        }
        if let crate::userns::Writer::Helpers {
            newuidmap,
            newgidmap,
        } = &plan.mapping.writer
        {
            let from = |var: &str| match std::env::var_os(var).filter(|v| !v.is_empty()) {
                Some(_) => format!(" (from {var})"),
                None => String::new(),
            };
            say!(
                "become-root: maps written by {}{} and {}{}",
                newuidmap.display(),
                from("NEWUIDMAP"),
                newgidmap.display(),
                from("NEWGIDMAP")
            );
        }
        let groups = if plan.drop_groups { "dropped" } else { "kept" };
        say!("become-root: supplementary groups: {groups}");
        if let Some(net) = &plan.connected {
            let from = net.from_env.map(|e| format!(" (from {e})"));
            say!(
                "become-root: network helper: {}{}",
                net.program.display(),
                from.unwrap_or_default()
            );
        }
    }
    plan.command.sigchld_ignored = sys::default_signal_was_ignored(Signal::SIGCHLD);
    if !quiet {
        for w in &warnings {
            crate::error::write_stderr(format_args!("{w}"));
        }
    }
    if plan.supervised() {
        supervise::supervise(&plan)
    } else {
        in_place::exec_in_place(&plan)
    }
}

/// The namespace kinds a run has, as named in /proc/PID/ns.
pub(crate) fn namespace_kinds(flags: CloneFlags) -> Vec<&'static str> {
    let mut kinds = vec!["user"];
    for (flag, kind) in [
        (CloneFlags::CLONE_NEWNS, "mnt"),
        (CloneFlags::CLONE_NEWNET, "net"),
        (CloneFlags::CLONE_NEWPID, "pid"),
        (CloneFlags::CLONE_NEWUTS, "uts"),
        (CloneFlags::CLONE_NEWIPC, "ipc"),
        (CloneFlags::CLONE_NEWCGROUP, "cgroup"),
    ] {
        if flags.contains(flag) {
            kinds.push(kind);
        }
    }
    kinds
}
