//! The steps of [`super::plan`], in the order it takes them: each decides one thing from
//! the request (and what earlier steps decided) and returns it. The pure ones are tested
//! alone below.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sched::CloneFlags;

use crate::containers;
use crate::error::Error;
use crate::identity::Identity;
use crate::idmap::IdMap;
use crate::launch::Request;
use crate::launch::extras::Planned;
use crate::mounts::{self, FsSpec};
use crate::net::ports::Publish;
use crate::net::{self, NetPlan};
use crate::options::{NetMode, NotifyReady, PortDriver};
use crate::process::console::Console;
use crate::process::{Command, notify};
use crate::userns::{self, Caller, Mapping};

/// What the options imply before anything is looked up: --boot and --all stand for others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Asked {
    /// COMMAND is pid 1 (--as-pid-1, --boot).
    pub as_pid_1: bool,
    /// A pid namespace (--pid, --all, and pid 1 needs one).
    pub pid: bool,
    /// The network namespace's mode, if any.
    pub net: Option<NetMode>,
    /// A cgroup of the run's own (--cgroup, a limit, --boot).
    pub own_cgroup: bool,
}

/// Step 1: what the options imply.
pub(super) fn asked(cli: &Request) -> Asked {
    let as_pid_1 = cli.as_pid_1 || cli.boot;
    Asked {
        as_pid_1,
        pid: cli.pid || cli.all || as_pid_1,
        net: implied_net(cli.net, cli.all || cli.boot, cli.sysfs),
        own_cgroup: cli.cgroup || cli.limits.any() || cli.boot,
    }
}

/// The network namespace a run gets: `--net`'s mode; else mode none for --all, and for
/// --sysfs, because the kernel lets a user namespace mount sysfs only where it owns the
/// network namespace (sysfs's mount checks net_current_may_mount).
pub(super) fn implied_net(net: Option<NetMode>, all: bool, sysfs: bool) -> Option<NetMode> {
    net.or((all || sysfs).then_some(NetMode::None))
}

/// What the network step decided.
pub(super) struct Network {
    /// The helper become-root starts, for a connected mode.
    pub connected: Option<NetPlan>,
    /// The ports become-root's own forwarder publishes.
    pub publish: Vec<Publish>,
    /// The host ports chosen for host port 0 when the helper forwards.
    pub notices: Vec<String>,
}

/// Step 2: the network helper, its addressing, and who forwards the published ports.
pub(super) fn network(cli: &Request, net: Option<NetMode>) -> Result<Network, Error> {
    let mut notices = Vec::new();
    let addressing = net::Addressing::from_options(cli.cidr.as_deref(), cli.ipv6, &cli.dns)
        .map_err(net::NetError::Addressing)?;
    let mut connected = net::plan(net, cli.mtu.0, cli.allow_host_loopback, addressing)?;
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
    Ok(Network {
        connected,
        publish,
        notices,
    })
}

/// Step 3: the namespaces besides the user namespace, and whether one is a mount namespace
/// before the filesystem options are read.
pub(super) fn namespaces(
    cli: &Request,
    asked: &Asked,
    connected: bool,
    extras: &Planned,
) -> (CloneFlags, bool) {
    // A connected network needs its own resolv.conf, and a cgroup of the run's own its
    // cgroup2 at /sys/fs/cgroup: each a mount namespace; so do podman and buildah
    // (containers.rs).
    let mount = cli.mount
        || asked.pid
        || cli.all
        || connected
        || asked.own_cgroup
        || extras.mount
        || containers::needs_mount_ns(&cli.command);
    let mut namespaces = extras.namespaces;
    for (on, flag) in [
        (mount, CloneFlags::CLONE_NEWNS),
        (asked.net.is_some(), CloneFlags::CLONE_NEWNET),
        (asked.pid, CloneFlags::CLONE_NEWPID),
        (cli.uts || cli.all || cli.boot, CloneFlags::CLONE_NEWUTS),
        (cli.ipc || cli.all || cli.boot, CloneFlags::CLONE_NEWIPC),
        (asked.own_cgroup || cli.all, CloneFlags::CLONE_NEWCGROUP),
    ] {
        if on {
            namespaces |= flag;
        }
    }
    (namespaces, mount)
}

/// Step 4: the id maps, and who COMMAND runs as with which capabilities. Claims --info-fd.
pub(super) fn identity(
    cli: &Request,
    caller: &Caller,
    warnings: &mut Vec<userns::Warning>,
) -> Result<(Mapping, Identity), Error> {
    let ask = userns::Ask {
        mode: cli.map,
        users: &cli.map_users,
        groups: &cli.map_groups,
    };
    let mapping = userns::plan_mapping(&ask, cli.subid_source, caller, warnings)?;
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
    runs_as(&mut identity, &mapping, caller)?;
    if let Some(fd) = cli.info_fd {
        crate::info::claim(fd)?;
    }
    ids_mapped(cli.identity.uid, cli.identity.gid, &mapping)?;
    Ok((mapping, identity))
}

/// --uid and --gid name ids the maps have.
fn ids_mapped(uid: Option<u32>, gid: Option<u32>, mapping: &Mapping) -> Result<(), Error> {
    for (kind, id, map) in [("uid", uid, &mapping.uid), ("gid", gid, &mapping.gid)] {
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
    Ok(())
}

/// What the filesystem step read.
pub(super) struct Filesystem {
    /// The filesystem options, parsed, in command-line order.
    pub specs: Vec<FsSpec>,
    /// --rootfs, resolved.
    pub rootfs: Option<PathBuf>,
    /// Whether the run has a mount namespace, the filesystem options' included.
    pub mount_ns: bool,
    /// The resolv.conf a connected network puts over /etc/resolv.conf.
    pub resolv_conf: Option<String>,
}

/// Step 5: the filesystem options, parsed, and --rootfs resolved.
pub(super) fn filesystem(
    cli: &Request,
    network: &Network,
    mount: bool,
) -> Result<Filesystem, Error> {
    let resolv_conf = network
        .connected
        .as_ref()
        .map(|c| c.addressing.resolv_conf(c.driver));
    let specs = cli
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
        mount || !specs.is_empty() || rootfs.is_some() || cli.chdir.is_some() || cli.sysfs;
    Ok(Filesystem {
        specs,
        rootfs,
        mount_ns,
        resolv_conf,
    })
}

/// What the command step made.
pub(super) struct Started {
    pub command: Command,
    /// --boot: the socket pid 1 says it is ready on.
    pub notify: Option<Arc<notify::Listener>>,
    /// The pty between the caller and pid 1, if any.
    pub console: Option<Arc<Console>>,
}

/// Step 6: COMMAND with its environment, and for a pid 1 its console and ready socket.
/// Takes COMMAND's words out of the request.
pub(super) fn command(
    cli: &mut Request,
    caller: &Caller,
    asked: &Asked,
    mount_ns: bool,
) -> Result<Started, Error> {
    let env = containers::env(caller, mount_ns);
    let mut last = Vec::new();
    if cli.boot {
        // How systemd and other software tell they run in a container, and where its init
        // says it is ready (systemd.io/CONTAINER_INTERFACE): the environment options cannot
        // take these away.
        last.push(("container".into(), "become-root".into()));
        last.push(("NOTIFY_SOCKET".into(), notify::INSIDE.into()));
    }
    let notify = match cli.boot {
        true => Some(Arc::new(notify::Listener::new()?)),
        false => None,
    };
    let command = Command::with_env(std::mem::take(&mut cli.command), env, &cli.extras.env, last)?;
    // The terminal rule (process::console): a pid 1 that is not become-root's init never
    // gets the caller's terminal. A detached run has none to give.
    let console = if cli.boot {
        Some(Console::for_boot(cli.detach)?)
    } else if asked.as_pid_1 && !cli.detach {
        Console::for_terminal()?
    } else {
        None
    };
    Ok(Started {
        command,
        notify,
        console: console.map(Arc::new),
    })
}

/// Step 7: what the mount planner takes.
pub(super) fn mount_options(
    cli: &Request,
    asked: &Asked,
    filesystem: Filesystem,
    started: &Started,
    extras: &mut Planned,
) -> mounts::Options {
    mounts::Options {
        mount_ns: filesystem.mount_ns,
        pid_ns: asked.pid,
        own_net: asked.net.is_some(),
        propagation: Some(cli.propagation),
        resolv_conf: filesystem.resolv_conf,
        filesystem: filesystem.specs,
        rootfs: filesystem.rootfs,
        sysfs: cli.sysfs,
        overlay_driver: Some(cli.overlay_driver),
        chdir: cli.chdir.as_ref().map(PathBuf::from),
        verbose: cli.verbose,
        cgroup2: asked.own_cgroup,
        boot: cli.boot,
        console: started
            .console
            .as_ref()
            .filter(|_| cli.boot)
            .map(|c| c.path.clone()),
        binfmt: std::mem::take(&mut extras.binfmt),
        devices: std::mem::take(&mut extras.devices),
    }
}

/// Step 2: what --emulate, the time namespace, --hostname and --device add (checked, the
/// emulators and devices looked up); --all asks for a time namespace too.
pub(super) fn extras(cli: &Request) -> Result<Planned, Error> {
    let mut extras = crate::launch::extras::plan(&cli.extras)?;
    if cli.all {
        extras.time.get_or_insert_default();
    }
    Ok(extras)
}

/// Step 8: every path is checked before anything is mounted; the overlay directories to
/// write to are made or checked and kept open. Only a directory of the caller's own ids
/// (outside) may be one.
pub(super) fn check_paths(
    options: &mounts::Options,
    caller: &Caller,
    mapping: &Mapping,
) -> Result<mounts::Prepared, Error> {
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
    mounts::check(options, &trust)
}

/// Step 9: with --rootfs, COMMAND is found inside it (unless the run is a session's pause,
/// which runs no COMMAND).
pub(super) fn command_in_rootfs(
    options: &mounts::Options,
    command: &Command,
    pause: bool,
) -> Result<(), Error> {
    if let Some(root) = &options.rootfs
        && !pause
        && !mounts::command_in_rootfs(root, &command.name)
    {
        let error = crate::process::ExecError::NotInRootfs(root.clone());
        return Err(crate::process::exec_error(command.name.clone(), error));
    }
    Ok(())
}

/// Step 10: how long a --detach caller (and a service manager) waits for a booted image's
/// READY=1: not at all (ready once the namespaces are) unless --notify-ready or its init,
/// systemd, says it will tell.
pub(super) fn ready_wait(
    boot: bool,
    notify_ready: NotifyReady,
    rootfs: Option<&Path>,
    command: &OsStr,
) -> Option<Duration> {
    match (boot, notify_ready) {
        (false, _) | (true, NotifyReady::No) => None,
        (true, NotifyReady::Yes) => Some(READY_WAIT),
        (true, NotifyReady::Auto) => rootfs
            .is_some_and(|root| init_is_systemd(root, command))
            .then_some(READY_WAIT),
    }
}

/// How long a --detach caller waits for a booted image's READY=1 at most: systemd's own
/// default start timeout (DefaultTimeoutStartSec).
pub(super) const READY_WAIT: Duration = Duration::from_secs(90);

/// Whether `command`, an absolute path inside `root`, is systemd: the file its symbolic links
/// lead to, resolved inside `root` (an absolute link is read as from `root`), is named
/// `systemd` (Debian's /sbin/init -> /lib/systemd/systemd, /lib -> usr/lib). Only links are
/// read; nothing is opened or followed outside `root`.
fn init_is_systemd(root: &Path, command: &OsStr) -> bool {
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
pub(in crate::launch) fn drop_groups_denied() -> Error {
    Error::new(
        "--drop-groups",
        "setgroups(2) is denied in a user namespace that maps only your own gid (CVE-2014-8989)",
    )
    .with_hint(
        "map subordinate gids too (--map=full; it needs a line for you in /etc/subgid and \
         newgidmap), or leave out --drop-groups",
    )
}

/// Who COMMAND runs as when --uid and --gid do not say: 0, or the caller itself under
/// --map=keep-id and --map=subids (and where an explicit map leaves 0 out), keeping the
/// caller's supplementary groups then.
fn runs_as(identity: &mut Identity, mapping: &Mapping, caller: &Caller) -> Result<(), Error> {
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
fn inside_ids(map: &IdMap) -> String {
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
