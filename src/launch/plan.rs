//! What a run will do, decided before any namespace exists: namespaces, maps, mounts,
//! network, ports, identity, session. Reads the caller's files (passwd, subid) and checks
//! every path, but changes nothing except a missing overlay UPPER it makes (mounts::check).

use std::path::Path;

use nix::sched::CloneFlags;

use super::Request;
use crate::containers;
use crate::error::Error;
use crate::identity::Identity;
use crate::mounts::{self, MountStep};
use crate::net::NetPlan;
use crate::net::ports::Publish;
use crate::options::{NetMode, OverlayDriver, PortDriver};
use crate::process::Command;
use crate::process::console::Console;
use crate::userns::{self, Mapping};

mod steps;
#[cfg(test)]
mod tests;

pub(super) use steps::drop_groups_denied;

/// Everything decided before any namespace exists.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Namespaces other than the user namespace.
    pub namespaces: CloneFlags,
    pub mounts: Vec<MountStep>,
    pub net: Option<NetMode>,
    /// A connected network: the helper become-root starts and supervises.
    pub connected: Option<NetPlan>,
    /// Ports published on the host by become-root's forwarder.
    pub publish: Vec<Publish>,
    /// The forwarder keeps TCP clients' addresses (net::forward's transparent.rs).
    pub keep_clients: bool,
    /// A session whose ports can change while it runs (--join=NAME --publish): a network
    /// namespace of its own and become-root's forwarder (not --port-driver=helper).
    pub live_ports: bool,
    pub mapping: Mapping,
    pub command: Command,
    /// --quiet: no warnings or notices.
    pub quiet: bool,
    /// What to tell the user once the namespace is ready (ports chosen for host port 0).
    pub notices: Vec<String>,
    /// Who COMMAND runs as inside, with which capabilities.
    pub identity: Identity,
    /// --drop-groups: set the supplementary groups to none, right after the ids are 0.
    pub drop_groups: bool,
    /// `--info-fd`: where to write what was set up, and how COMMAND ended.
    pub info_fd: Option<i32>,
    /// `--verbose`.
    pub verbose: bool,
    /// --name/--detach: a session that --join can enter (the session module).
    pub session: Option<crate::session::Request>,
    /// --cgroup (or a limit): the run's own cgroup, with these limits (the cgroup module). The
    /// namespace process makes its cgroup namespace once it is in that cgroup.
    pub cgroup: Option<crate::cgroup::Limits>,
    /// --as-pid-1 (and --boot): COMMAND is pid 1, no init of become-root's runs inside.
    pub as_pid_1: bool,
    /// --boot: the image stops on SIGRTMIN+3.
    pub boot: bool,
    /// This run is a booted image's after its reboot (become-root started itself again).
    pub again: Option<crate::session::Again>,
    /// --boot: the socket pid 1 says it is ready on (process::notify), bound inside.
    pub notify: Option<std::sync::Arc<crate::process::notify::Listener>>,
    /// How long a --detach caller (and a service manager) waits for pid 1's READY=1; `None`:
    /// ready once the namespaces are (--notify-ready).
    pub ready_wait: Option<std::time::Duration>,
    /// The service manager become-root runs under ($NOTIFY_SOCKET, a Type=notify unit).
    pub notifier: Option<std::sync::Arc<crate::process::notify::Notifier>>,
    /// --stop-timeout: how long a stop may take before SIGKILL.
    pub stop_timeout: Option<std::time::Duration>,
    /// A pty between the caller and pid 1 (process::console): --boot's /dev/console, and
    /// --as-pid-1's in place of the caller's terminal.
    pub console: Option<std::sync::Arc<Console>>,
    /// The directories `mounts::check` opened for the mount steps (overlay upper layers).
    pub prepared: std::sync::Arc<mounts::Prepared>,
}

/// Which ids the namespace process sets to 0 before the mounts: each kind whose 0 is mapped.
/// Where it is not (--map=subids), the setup runs as the caller, with the capabilities over
/// the namespace that creating it gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Root {
    pub uid: bool,
    pub gid: bool,
}

impl Plan {
    pub fn root(&self) -> Root {
        Root {
            uid: self.mapping.uid.to_outside(0).is_some(),
            gid: self.mapping.gid.to_outside(0).is_some(),
        }
    }

    /// Whether become-root must stay outside to supervise: an init for a pid namespace, a
    /// network helper to own, or a fuse-overlayfs to wait for.
    pub fn supervised(&self) -> bool {
        self.pid_namespace()
            || self.connected.is_some()
            || !self.publish.is_empty()
            || self.info_fd.is_some()
            || self.session.is_some()
            || self.cgroup.is_some()
            || self.fuse_overlay()
    }

    /// Whether an overlay will be fuse-overlayfs's: asked for, or under `auto` on a kernel
    /// without overlayfs in user namespaces (before 5.11). fuse-overlayfs ends with COMMAND,
    /// some milliseconds after it; exec'd in place, become-root would be gone by then, so it
    /// supervises and waits. (`auto` falling back from a native overlay the kernel refuses
    /// is found out only inside, in place: there fuse-overlayfs may outlive COMMAND by as
    /// much, and it is refused below a new root, see [`Plan::fuse_helper`].)
    fn fuse_overlay(&self) -> bool {
        use crate::kernel::{Facility, older_than};
        // uname(2) only for an `auto` overlay: a plain run must not pay for it.
        self.mounts.iter().any(|step| match step {
            MountStep::Overlay { driver, .. } => match driver {
                OverlayDriver::Fuse => true,
                OverlayDriver::Auto => older_than(Facility::OverlayInUserns),
                OverlayDriver::Native => false,
            },
            _ => false,
        })
    }

    /// Whether fuse-overlayfs needs become-root's fuse helper (mounts::fuse): an overlay
    /// below a new root may be its. Its layers and root lead out of the new root, so it must
    /// run out of COMMAND's reach, which only become-root, outside, can start.
    pub(super) fn fuse_helper(&self) -> bool {
        self.new_root() && self.fuse_overlay()
    }

    /// Whether the run pivots into a root of its own (--rootfs, --boot).
    pub fn new_root(&self) -> bool {
        self.mounts
            .iter()
            .any(|step| matches!(step, MountStep::RootfsSelfBind { .. }))
    }

    /// How the maps were made and who COMMAND runs as, for --verbose: "maps: keep-id;
    /// COMMAND runs as uid 1000 and gid 1000 inside, with no capabilities".
    pub fn identity_text(&self) -> String {
        let (uids, gids) = self.mapping.how;
        let how = if uids == gids {
            uids.name().to_string()
        } else {
            format!("{} uids, {} gids", uids.name(), gids.name())
        };
        let caps = self.identity.final_caps();
        let caps = if caps.len() == caps::all().len() {
            "every capability".to_string()
        } else if caps.is_empty() {
            "no capabilities".to_string()
        } else {
            let mut names: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
            names.sort();
            format!("only {}", names.join(", "))
        };
        format!(
            "maps: {how}; COMMAND runs as uid {} and gid {} inside, with {caps}",
            self.identity.uid.unwrap_or(0),
            self.identity.gid.unwrap_or(0)
        )
    }

    pub fn pid_namespace(&self) -> bool {
        self.namespaces.contains(CloneFlags::CLONE_NEWPID)
    }

    /// Whether become-root's init is pid 1 (a pid namespace without --as-pid-1).
    pub fn has_init(&self) -> bool {
        self.pid_namespace() && !self.as_pid_1
    }

    /// How COMMAND is stopped politely: SIGRTMIN+3 for a booted image (systemd's "halt" in a
    /// container, what systemd-nspawn and podman send), killed after `process::BOOT_STOP_GRACE`;
    /// else signals are passed on as they come.
    pub fn stop_with(&self) -> Option<crate::process::StopWith> {
        self.boot.then(|| crate::process::StopWith {
            signo: nix::libc::SIGRTMIN() + 3,
            grace: self.stop_timeout.unwrap_or(crate::process::BOOT_STOP_GRACE),
        })
    }
}

/// Decide everything that can be decided without side effects: the steps of `steps.rs`, in
/// order (an error is the first step's that fails, as a user fixes them top to bottom).
pub fn plan(mut cli: Request) -> Result<(Plan, Vec<userns::Warning>), Error> {
    // --boot: a system image, whose init is pid 1 (systemd refuses to run as a system
    // manager otherwise), in a network namespace of its own so that its /sys is fresh.
    if cli.boot && cli.command.is_empty() {
        cli.command = vec!["/sbin/init".into()];
    }
    let asked = steps::asked(&cli);
    let network = steps::network(&cli, asked.net)?;
    cli.limits.check()?;
    let (mut namespaces, mount) = steps::namespaces(&cli, &asked, network.connected.is_some());
    let caller = userns::caller()?;
    let mut warnings = Vec::new();
    let (mapping, identity) = steps::identity(&cli, &caller, &mut warnings)?;
    let session =
        crate::session::Request::new(cli.name.as_deref(), cli.detach, cli.command.is_empty())?;
    let live_ports =
        session.is_some() && asked.net.is_some() && cli.port_driver == PortDriver::Builtin;
    let filesystem = steps::filesystem(&cli, &network, mount)?;
    // The run's own cgroup2 covers /sys/fs/cgroup too.
    if !asked.own_cgroup {
        let targets: Vec<&Path> = filesystem.specs.iter().map(|spec| spec.target()).collect();
        warnings.extend(containers::warning_for(
            &cli.command,
            &targets,
            filesystem.mount_ns,
            None,
        ));
    }
    let started = steps::command(&mut cli, &caller, &asked, filesystem.mount_ns)?;
    let options = steps::mount_options(&cli, &asked, filesystem, &started);
    let prepared = steps::check_paths(&options, &caller, &mapping)?;
    let pause = session.as_ref().is_some_and(|s| s.pause); // (the session module: runs no COMMAND)
    steps::command_in_rootfs(&options, &started.command, pause)?;
    if options.mount_ns {
        namespaces |= CloneFlags::CLONE_NEWNS;
    }
    let mounts = mounts::plan(&options, &prepared);
    let ready_wait = steps::ready_wait(
        cli.boot,
        cli.notify_ready,
        options.rootfs.as_deref(),
        &started.command.name,
    );
    Ok((
        Plan {
            namespaces,
            mounts,
            net: asked.net,
            connected: network.connected,
            publish: network.publish,
            keep_clients: !cli.no_client_address,
            live_ports,
            mapping,
            command: started.command,
            quiet: cli.quiet,
            notices: network.notices,
            identity,
            drop_groups: cli.drop_groups,
            info_fd: cli.info_fd,
            verbose: cli.verbose,
            session,
            cgroup: asked.own_cgroup.then_some(cli.limits),
            as_pid_1: asked.as_pid_1,
            boot: cli.boot,
            stop_timeout: cli.stop_timeout.map(std::time::Duration::from_secs),
            again: None,
            notify: started.notify,
            ready_wait,
            notifier: None,
            console: started.console,
            prepared: std::sync::Arc::new(prepared),
        },
        warnings,
    ))
}
