//! What a run will do, decided before any namespace exists: namespaces, maps, mounts,
//! network, ports, identity, session. Reads the caller's files (passwd, subid) and checks
//! every path, but changes nothing except a missing overlay UPPER it makes (mounts::check).

use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;

use super::Request;
use crate::containers;
use crate::error::Error;
use crate::identity::Identity;
use crate::mounts::{self, MountStep};
use crate::net::ports::Publish;
use crate::net::{self, NetPlan};
use crate::options::{NetMode, NotifyReady, OverlayDriver, PortDriver};
use crate::process::Command;
use crate::process::console::Console;
use crate::process::notify;
use crate::userns::{self, Mapping};

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
    /// --name/--detach: a session that --join can enter (session.rs).
    pub session: Option<crate::session::Request>,
    /// --cgroup (or a limit): the run's own cgroup, with these limits (cgroup.rs). The
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
        let new_root = self
            .mounts
            .iter()
            .any(|step| matches!(step, MountStep::RootfsSelfBind { .. }));
        new_root && self.fuse_overlay()
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

/// Decide everything that can be decided without side effects.
pub fn plan(mut cli: Request) -> Result<(Plan, Vec<userns::Warning>), Error> {
    // --boot: a system image, whose init is pid 1 (systemd refuses to run as a system
    // manager otherwise), in a network namespace of its own so that its /sys is fresh.
    if cli.boot && cli.command.is_empty() {
        cli.command = vec!["/sbin/init".into()];
    }
    let as_pid_1 = cli.as_pid_1 || cli.boot;
    let pid = cli.pid || cli.all || as_pid_1;
    let net = implied_net(cli.net, cli.all || cli.boot, cli.sysfs);
    let mut notices = Vec::new();
    let addressing = net::Addressing::from_options(cli.cidr.as_deref(), cli.ipv6, &cli.dns)
        .map_err(net::NetError::Addressing)?;
    let mut connected = net::plan(net, cli.mtu, cli.allow_host_loopback, addressing)?;
    let mut publish = net::ports::parse_all(&cli.publish).map_err(net::NetError::from)?;
    if !publish.is_empty() && net.is_none() {
        return Err(net::NetError::PublishWithoutNet.into());
    }
    if cli.port_driver == PortDriver::Helper && !publish.is_empty() {
        // The network helper forwards; become-root's own forwarder has nothing to do.
        let helper = connected
            .as_mut()
            .ok_or(net::NetError::HelperDriverWithoutHelper)?;
        helper.forwards = net::helper_forwards(helper, &publish)?;
        for (asked, got) in publish.iter().zip(&helper.forwards) {
            if asked.host_port == 0 {
                let host = std::net::SocketAddr::new(got.host_ip, got.host_port);
                notices.push(format!("published {host} -> {}/{}", got.ns_port, got.proto));
            }
        }
        publish.clear();
    }
    if let Some(helper) = connected.as_mut() {
        // A session whose helper forwards its ports takes live ports through slirp4netns's
        // API socket (pasta has none), with or without -p at its start.
        helper.keep_api = cli.port_driver == PortDriver::Helper && cli.name.is_some();
        net::check_tun()?;
        // The rest of what --net=bypass needs is found out where it is used: the filter's
        // install inside, ADDFD by become-root (status 125 naming it either way).
        if helper.bypass && !net::bypass::filter::SUPPORTED {
            return Err(net::bypass::BypassError::Architecture.into());
        }
    }
    cli.limits.check()?;
    let own_cgroup = cli.cgroup || cli.limits.any() || cli.boot;
    // A connected network needs its own resolv.conf, and a cgroup of the run's own its
    // cgroup2 at /sys/fs/cgroup: each a mount namespace; so do podman and buildah
    // (containers.rs).
    let mount = cli.mount
        || pid
        || cli.all
        || connected.is_some()
        || own_cgroup
        || containers::needs_mount_ns(&cli.command);
    let mut namespaces = CloneFlags::empty();
    for (on, flag) in [
        (mount, CloneFlags::CLONE_NEWNS),
        (net.is_some(), CloneFlags::CLONE_NEWNET),
        (pid, CloneFlags::CLONE_NEWPID),
        (cli.uts || cli.all || cli.boot, CloneFlags::CLONE_NEWUTS),
        (cli.ipc || cli.all || cli.boot, CloneFlags::CLONE_NEWIPC),
        (own_cgroup || cli.all, CloneFlags::CLONE_NEWCGROUP),
    ] {
        if on {
            namespaces |= flag;
        }
    }
    let caller = userns::caller()?;
    let mut warnings = Vec::new();
    let ask = userns::Ask {
        mode: cli.map,
        users: &cli.map_users,
        groups: &cli.map_groups,
    };
    let mapping = userns::plan_mapping(&ask, cli.subid_source, &caller, &mut warnings)?;
    if cli.drop_groups && mapping.writer == userns::Writer::SelfMap {
        return Err(drop_groups_denied());
    }
    let mut identity = Identity::from_asked(&cli.identity)?;
    if cli.boot {
        // As systemd-nspawn and podman give a container: no CAP_SYS_RAWIO and no
        // CAP_SYS_MODULE (of no use in a user namespace), so that systemd skips what the
        // kernel refuses there: the debugfs and tracefs mounts and loading modules (their
        // units' ConditionCapability=), and the image boots to "running". --cap-add gives
        // them back.
        identity.drop.push(Some(caps::Capability::CAP_SYS_RAWIO));
        identity.drop.push(Some(caps::Capability::CAP_SYS_MODULE));
    }
    runs_as(&mut identity, &mapping, &caller)?;
    if let Some(fd) = cli.info_fd {
        crate::info::claim(fd)?;
    }
    for (kind, id, map) in [
        ("uid", cli.identity.uid, &mapping.uid),
        ("gid", cli.identity.gid, &mapping.gid),
    ] {
        if let Some(id) = id
            && map.to_outside(id).is_none()
        {
            return Err(Error::usage(
                format!(
                    "--{kind}={id}: not mapped in the new namespace (it maps {})",
                    inside_ids(map)
                ),
                "choose a mapped id, or give the user subordinate ids (--map=full)",
            ));
        }
    }
    let session =
        crate::session::Request::new(cli.name.as_deref(), cli.detach, cli.command.is_empty())?;
    let live_ports = session.is_some() && net.is_some() && cli.port_driver == PortDriver::Builtin;
    let resolv_conf = connected
        .as_ref()
        .map(|c| c.addressing.resolv_conf(c.driver));
    let filesystem = cli
        .filesystem
        .iter()
        .map(mounts::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let rootfs = match &cli.rootfs {
        None => None,
        Some(dir) => Some(std::fs::canonicalize(dir).map_err(|e| {
            mounts::mount_error(format!("--rootfs {dir}"), crate::sys::io_errno(&e))
        })?),
    };
    let mount_ns =
        mount || !filesystem.is_empty() || rootfs.is_some() || cli.chdir.is_some() || cli.sysfs;
    let targets: Vec<&Path> = filesystem.iter().map(|spec| spec.target()).collect();
    // The run's own cgroup2 covers /sys/fs/cgroup too.
    if !own_cgroup {
        warnings.extend(containers::warning_for(&cli.command, &targets));
    }
    let mut env = containers::env(&caller, mount_ns);
    if cli.boot {
        // How systemd and other software tell they run in a container, and where its init
        // says it is ready (systemd.io/CONTAINER_INTERFACE).
        env.push(("container".into(), "become-root".into()));
        env.push(("NOTIFY_SOCKET".into(), notify::INSIDE.into()));
    }
    let notify = match cli.boot {
        true => Some(std::sync::Arc::new(notify::Listener::new()?)),
        false => None,
    };
    let command = Command::new(cli.command, env)?;
    // The terminal rule (process::console): a pid 1 that is not become-root's init never
    // gets the caller's terminal. A detached run has none to give.
    let console = if cli.boot {
        Some(Console::for_boot(cli.detach)?)
    } else if as_pid_1 && !cli.detach {
        Console::for_terminal()?
    } else {
        None
    };
    let console = console.map(std::sync::Arc::new);
    let options = mounts::Options {
        mount_ns,
        pid_ns: pid,
        own_net: net.is_some(),
        propagation: Some(cli.propagation),
        resolv_conf,
        filesystem,
        rootfs,
        sysfs: cli.sysfs,
        overlay_driver: Some(cli.overlay_driver),
        chdir: cli.chdir.as_ref().map(PathBuf::from),
        verbose: cli.verbose,
        cgroup2: own_cgroup,
        boot: cli.boot,
        console: console
            .as_ref()
            .filter(|_| cli.boot)
            .map(|c| c.path.clone()),
    };
    // Every path is checked before anything is mounted; the overlay directories to write to
    // are made or checked and kept open. Only a directory of the caller's own ids (outside)
    // may be one.
    let owns = |uid: u32| uid == caller.uid || mapping.uid.to_inside(uid).is_some();
    // A group's write access is the caller's alone when it is a subordinate gid of the map,
    // or the caller's user private group (read only when a directory has group write).
    let private = std::cell::OnceCell::new();
    let group = |gid: u32| {
        if caller.is_real_root() || (gid != caller.gid && mapping.gid.to_inside(gid).is_some()) {
            return Ok(());
        }
        private
            .get_or_init(|| crate::userns::private_group(caller.uid))
            .check(gid)
    };
    let trust = mounts::Trust {
        uid: &owns,
        group: &group,
    };
    let prepared = mounts::check(&options, &trust)?;
    if let Some(root) = &options.rootfs
        && !session.as_ref().is_some_and(|s| s.pause) // (session.rs: runs no COMMAND)
        && !mounts::command_in_rootfs(root, &command.name)
    {
        let error = crate::process::ExecError::NotInRootfs(root.clone());
        return Err(crate::process::exec_error(command.name.clone(), error));
    }
    if options.mount_ns {
        namespaces |= CloneFlags::CLONE_NEWNS;
    }
    let mounts = mounts::plan(&options, &prepared);
    let ready_wait = match (cli.boot, cli.notify_ready) {
        (false, _) | (true, NotifyReady::No) => None,
        (true, NotifyReady::Yes) => Some(READY_WAIT),
        (true, NotifyReady::Auto) => options
            .rootfs
            .as_deref()
            .is_some_and(|root| init_is_systemd(root, &command.name))
            .then_some(READY_WAIT),
    };
    Ok((
        Plan {
            namespaces,
            mounts,
            net,
            connected,
            publish,
            keep_clients: cli.keep_clients,
            live_ports,
            mapping,
            command,
            quiet: cli.quiet,
            notices,
            identity,
            drop_groups: cli.drop_groups,
            info_fd: cli.info_fd,
            verbose: cli.verbose,
            session,
            cgroup: own_cgroup.then_some(cli.limits),
            as_pid_1,
            boot: cli.boot,
            stop_timeout: cli.stop_timeout.map(std::time::Duration::from_secs),
            again: None,
            notify,
            ready_wait,
            notifier: None,
            console,
            prepared: std::sync::Arc::new(prepared),
        },
        warnings,
    ))
}

/// How long a --detach caller waits for a booted image's READY=1 at most: systemd's own
/// default start timeout (DefaultTimeoutStartSec).
const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(90);

/// Whether `command`, an absolute path inside `root`, is systemd: the file its symbolic links
/// lead to, resolved inside `root` (an absolute link is read as from `root`), is named
/// `systemd` (Debian's /sbin/init -> /lib/systemd/systemd, /lib -> usr/lib). Only links are
/// read; nothing is opened or followed outside `root`.
fn init_is_systemd(root: &Path, command: &std::ffi::OsStr) -> bool {
    // The names still to walk, the next last (`..` kept, to step back).
    fn names(path: &Path) -> impl DoubleEndedIterator<Item = std::ffi::OsString> + '_ {
        use std::path::Component;
        path.components().filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
    }
    let mut path = PathBuf::from("/");
    let mut rest: Vec<std::ffi::OsString> = names(Path::new(command)).rev().collect();
    let mut links = 0;
    while let Some(name) = rest.pop() {
        if name == ".." {
            path.pop();
            continue;
        }
        path.push(&name);
        let inside = root.join(path.strip_prefix("/").unwrap_or(&path));
        if let Ok(target) = std::fs::read_link(&inside) {
            links += 1;
            if links > 40 {
                return false;
            }
            path.pop();
            if target.is_absolute() {
                path = PathBuf::from("/");
            }
            rest.extend(names(&target).rev());
        }
    }
    path.file_name().is_some_and(|n| n == "systemd")
}

/// --drop-groups where the namespace denies setgroups(2): with only the caller's own gid
/// mapped, the kernel lets the map be written only once setgroups is denied, so that no
/// group can be dropped to get past a file's group permissions (CVE-2014-8989). Nothing
/// inside can undo that; quietly keeping the groups would not be what was asked.
pub(super) fn drop_groups_denied() -> Error {
    Error::new(
        "--drop-groups",
        "setgroups(2) is denied in a user namespace that maps only your own gid (CVE-2014-8989)",
    )
    .with_hint(
        "map subordinate gids too (--map=full; it needs a line for you in /etc/subgid and \
         newgidmap), or leave out --drop-groups",
    )
}

/// The network namespace a run gets: `--net`'s mode; else mode none for --all, and for
/// --sysfs, because the kernel lets a user namespace mount sysfs only where it owns the
/// network namespace (sysfs's mount checks net_current_may_mount).
fn implied_net(net: Option<NetMode>, all: bool, sysfs: bool) -> Option<NetMode> {
    net.or((all || sysfs).then_some(NetMode::None))
}

/// Who COMMAND runs as when --uid and --gid do not say: 0, or the caller itself under
/// --map=keep-id and --map=subids (and where an explicit map leaves 0 out), keeping the
/// caller's supplementary groups then.
fn runs_as(
    identity: &mut Identity,
    mapping: &Mapping,
    caller: &userns::Caller,
) -> Result<(), Error> {
    let (uid, gid) = mapping.command_ids(caller);
    let asked = identity.uid.is_some() || identity.gid.is_some();
    for (kind, asked, default, own) in [
        ("uid", &mut identity.uid, uid, caller.uid),
        ("gid", &mut identity.gid, gid, caller.gid),
    ] {
        if asked.is_some() {
            continue;
        }
        match default {
            None => {
                return Err(Error::usage(
                    format!(
                        "COMMAND has no {kind} inside: the {kind} map has neither 0 nor your {kind} \
                         {own}"
                    ),
                    format!("give --{kind}=N with a mapped N, or map 0 or {own}"),
                ));
            }
            // 0 is what COMMAND runs as anyway (and with every capability).
            Some(0) => {}
            Some(id) => *asked = Some(id),
        }
    }
    identity.keep_groups =
        mapping.as_caller() && !asked && (identity.uid.is_some() || identity.gid.is_some());
    Ok(())
}

/// The inside ids `map` maps, as spans: "65537 ids: 0-65535, 2000000".
fn inside_ids(map: &crate::idmap::IdMap) -> String {
    let mut spans: Vec<(u64, u64)> = map
        .ranges()
        .iter()
        .map(|r| {
            (
                u64::from(r.inside()),
                u64::from(r.inside()) + u64::from(r.count()),
            )
        })
        .collect();
    spans.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (s, e) in spans {
        match merged.last_mut() {
            Some(last) if last.1 == s => last.1 = e,
            _ => merged.push((s, e)),
        }
    }
    let shown: Vec<String> = merged
        .iter()
        .map(|&(s, e)| {
            if e - s == 1 {
                s.to_string()
            } else {
                format!("{s}-{}", e - 1)
            }
        })
        .collect();
    format!("{} ids: {}", map.len(), shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysfs_and_all_imply_net_none_unless_net_says_otherwise() {
        let off = NetMode::None;
        // (--net, --all, --sysfs) -> the network namespace's mode
        let rows = [
            ((None, false, false), None),
            ((None, true, false), Some(off)),
            ((None, false, true), Some(off)),
            ((None, true, true), Some(off)),
            (
                (Some(NetMode::Slirp4netns), false, true),
                Some(NetMode::Slirp4netns),
            ),
            ((Some(NetMode::Pasta), true, true), Some(NetMode::Pasta)),
            ((Some(NetMode::Auto), false, false), Some(NetMode::Auto)),
        ];
        for ((net, all, sysfs), want) in rows {
            assert_eq!(
                implied_net(net, all, sysfs),
                want,
                "--net={net:?} --all={all} --sysfs={sysfs}"
            );
        }
    }
}
