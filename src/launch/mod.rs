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
//! [`plan()`] decides everything that can be decided before any namespace exists. Inside,
//! [`inside`] runs the steps in the same order in both shapes: maps written, ids set to 0,
//! mounts, loopback, then COMMAND (or an init); its [`inside::Ops`] seam lets a unit test
//! check that order.

use std::ffi::OsString;

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;

use crate::error::{Error, say};
use crate::options::{
    FsArg, MapMode, Mtu, NetMode, NotifyReady, OverlayDriver, PortDriver, Propagation, SubidSource,
};
use crate::sys;

mod containers;
mod extras;
mod in_place;
pub mod inside;
mod plan;
mod supervise;
mod warden;

pub use extras::TimeOffsets;
pub use plan::{Plan, plan};

/// What a run is asked for: each option of a new run, defined once, here. `cli` flattens
/// this into its command line (the help text is each field's doc comment, the defaults are
/// the types' own), the fast path of the plainest command lines fills it with
/// `..Request::default()`, and the man page and completions are made from the same
/// definition. Nothing here reads argv.
// The help texts are the doc comments: "[HOST_IP:]PORT" is a command line's optional part
// there, not a link.
#[allow(rustdoc::broken_intra_doc_links)]
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Request {
    /// How ids are mapped: full (you as 0, then every subordinate range), single (only you,
    /// like unshare -r), auto (full when possible, else single with a warning), keep-id (you
    /// as yourself and COMMAND runs as you, the subordinate ranges on the other ids, like
    /// podman's keep-id), subids (you and every subordinate id as themselves)
    #[arg(long, value_enum, default_value_t, value_name = "MODE")]
    pub map: MapMode,

    /// Map COUNT host uids from OUTER to INNER inside (repeatable; util-linux's order). OUTER
    /// must be your uid or granted to you in /etc/subuid; 'auto' adds every uid of yours the
    /// entries leave, on the inside ids they leave. Replaces --map's uid map
    #[arg(long, value_name = "INNER:OUTER:COUNT|auto")]
    pub map_users: Vec<String>,

    /// As --map-users, for gids (/etc/subgid)
    #[arg(long, value_name = "INNER:OUTER:COUNT|auto")]
    pub map_groups: Vec<String>,

    /// Where subordinate ranges come from: files (/etc/subuid, /etc/subgid), getsubids
    /// (libsubid, e.g. SSSD or LDAP), auto (getsubids when /etc/nsswitch.conf has a subid line)
    #[arg(long, value_enum, default_value_t, value_name = "SOURCE")]
    pub subid_source: SubidSource,

    /// New mount namespace; / is made recursively private (see --propagation)
    #[arg(short = 'm', long)]
    pub mount: bool,

    /// Mount propagation of / in the new mount namespace: private, or slave to keep
    /// receiving mounts made on the host
    #[arg(long, value_enum, default_value_t, value_name = "MODE")]
    pub propagation: Propagation,

    /// New network namespace. MODE (taken only with '=', so -n bash runs bash): none
    /// (loopback only, the default), slirp4netns, pasta, auto (pasta when installed, else
    /// slirp4netns), or bypass (outbound TCP and UDP sockets become sockets of the host,
    /// at its own speed, and slirp4netns, else pasta, carries the rest: see SECURITY). A
    /// connected mode implies --mount and binds a resolv.conf naming the helper's DNS
    /// forwarder over /etc/resolv.conf
    #[arg(
        short = 'n',
        long,
        value_enum,
        value_name = "MODE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "none"
    )]
    pub net: Option<NetMode>,

    /// Publish a port of the namespace on the host: [HOST_IP:]HOST_PORT:NS_PORT[/tcp|/udp]
    /// (repeatable; HOST_IP defaults to 127.0.0.1, an IPv6 one goes in brackets; HOST_PORT
    /// 0 picks a free port and reports it). Connections reach NS_PORT on the namespace's
    /// loopback. Needs a network namespace: --net (any mode), --boot, --all or --sysfs
    #[arg(short = 'p', long, value_name = "SPEC")]
    pub publish: Vec<String>,

    /// Who forwards published ports: builtin (become-root's own splice forwarder, any --net
    /// mode) or helper (slirp4netns's API or pasta's own forwarding; needs slirp4netns or
    /// pasta, and a server inside listening on all addresses)
    #[arg(
        long,
        value_enum,
        default_value_t,
        value_name = "DRIVER",
        requires = "net"
    )]
    pub port_driver: PortDriver,

    /// The servers inside see every client of a published TCP port as 127.0.0.1 (by default
    /// they see the client's own address and port, through become-root's forwarder)
    #[arg(long, requires = "publish")]
    pub no_client_address: bool,

    /// Let the namespace reach the host's loopback (127.0.0.1) through the gateway
    /// (10.0.2.2 with slirp4netns, the host's gateway address with pasta; with --net=bypass,
    /// a connection to the gateway becomes one to the host's 127.0.0.1). Off by default:
    /// the host's loopback services stay out of reach
    #[arg(long, requires = "net")]
    pub allow_host_loopback: bool,

    /// MTU of the connected interface
    #[arg(long, value_name = "N", default_value_t, value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u32).range(1280..=65520), Mtu))]
    pub mtu: Mtu,

    /// The IPv4 network of the connected interface (default: 10.0.2.0/24 with slirp4netns,
    /// the host's own with pasta): the namespace is NET+100, the gateway NET+2, slirp4netns's
    /// DNS forwarder NET+3. PREFIX 1 to 25
    #[arg(long, value_name = "NET/PREFIX", requires = "net")]
    pub cidr: Option<String>,

    /// IPv6 inside too: fd00::100/64 with slirp4netns (pasta has IPv6 whenever the host has
    /// it)
    #[arg(long, requires = "net")]
    pub ipv6: bool,

    /// Name IP as the resolver in the generated resolv.conf, instead of the helper's DNS
    /// forwarder (repeatable)
    #[arg(long, value_name = "IP", requires = "net")]
    pub dns: Vec<String>,

    /// Bind SRC (a host path) to DST (default: the same path; inside --rootfs when given),
    /// recursively. Filesystem options apply in command-line order; a DST below a tmpfs (or
    /// throwaway overlay) of an earlier option is made there. Write '\:' for a ':' in a path
    #[arg(
        long,
        value_name = "SRC[:DST]",
        help_heading = "Filesystem (each implies --mount)"
    )]
    pub bind: Vec<String>,

    /// As --bind, read-only, enforced recursively on every mount below DST
    #[arg(
        long,
        value_name = "SRC[:DST]",
        help_heading = "Filesystem (each implies --mount)"
    )]
    pub ro_bind: Vec<String>,

    /// A fresh tmpfs on DIR
    #[arg(
        long,
        value_name = "DIR",
        help_heading = "Filesystem (each implies --mount)"
    )]
    pub tmpfs: Vec<String>,

    /// DIR becomes a writable copy whose changes stay inside (an overlay with a throwaway
    /// upper layer). New and replaced files work; files owned by ids outside the map stay
    /// read-only in place, as on the host (under fuse-overlayfs they are writable copies)
    #[arg(
        long,
        value_name = "DIR",
        help_heading = "Filesystem (each implies --mount)"
    )]
    pub copy_up: Vec<String>,

    /// Overlay LOWER directories (top first, separated by ',') on TARGET; changes go to UPPER
    /// (created if missing; become-root keeps its work directory beside it) or, without
    /// UPPER, to a tmpfs and are thrown away. Write '\:' and '\,' for those characters
    #[arg(
        long,
        value_name = "LOWER[,LOWER...]:TARGET[:UPPER]",
        help_heading = "Filesystem (each implies --mount)"
    )]
    pub overlay: Vec<String>,

    /// How --overlay and --copy-up are mounted: native overlayfs in the user namespace
    /// (Linux 5.11+), fuse-overlayfs, or auto (native, else fuse-overlayfs)
    #[arg(
        long,
        value_enum,
        default_value_t,
        value_name = "DRIVER",
        help_heading = "Filesystem (each implies --mount)"
    )]
    pub overlay_driver: OverlayDriver,

    /// Make DIR the root (pivot_root) with /proc, a minimal /dev, /sys, /tmp and, with a
    /// connected network, /etc/resolv.conf (missing proc, dev, sys, tmp are made in a DIR of
    /// yours); DSTs of the other options are inside it
    #[arg(
        long,
        value_name = "DIR",
        help_heading = "Filesystem (each implies --mount)"
    )]
    pub rootfs: Option<String>,

    /// A fresh sysfs, read-only, at /sys on the current root, showing the new network
    /// namespace's devices (the kernel lets a user namespace mount sysfs only there). Implies
    /// --net (mode none) unless --net=MODE is given. Mounts below the host's /sys (cgroup,
    /// ...) are not carried over. With --rootfs, its /sys is fresh anyway
    #[arg(long, help_heading = "Filesystem (each implies --mount)")]
    pub sysfs: bool,

    /// Run COMMAND in DIR (inside --rootfs when given; default: the current directory, or /
    /// with --rootfs)
    #[arg(
        long,
        value_name = "DIR",
        help_heading = "Filesystem (each implies --mount)"
    )]
    pub chdir: Option<String>,

    /// --uid, --gid, --cap-add, --cap-drop, --no-new-privs.
    #[command(flatten)]
    pub identity: crate::identity::Asked,

    /// Drop the supplementary groups (setgroups(2) to none) before the mounts; by default they
    /// are kept, those not mapped showing as nogroup. An error (status 125) where setgroups is
    /// denied: with only your own gid mapped (--map=single, --map=auto's fallback)
    #[arg(long, help_heading = "Identity inside")]
    pub drop_groups: bool,

    /// When the namespaces are ready, write one JSON object to file descriptor FD (pid, id
    /// maps, namespace inodes, network, published ports); when COMMAND ends, a second one
    /// with how it ended. FD is not passed to COMMAND
    #[arg(long, value_name = "FD")]
    pub info_fd: Option<i32>,

    /// Say what become-root chose (id maps, overlay driver) on standard error
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// The filesystem options in command-line order (filled by the command line's parser from the five options).
    #[arg(skip)]
    pub filesystem: Vec<FsArg>,

    /// New pid namespace with become-root as its init and a fresh /proc (implies --mount)
    #[arg(long)]
    pub pid: bool,

    /// With --pid (implied), COMMAND itself is pid 1 of the new pid namespace: no init of
    /// become-root's inside, which still supervises from outside
    #[arg(long, help_heading = "Cgroups and system images")]
    pub as_pid_1: bool,

    /// Boot a system image: --pid --as-pid-1 --uts --ipc --cgroup and a network namespace
    /// (--net=none unless --net says), with a fresh /sys, tmpfs /run, /dev/console,
    /// container=become-root, and SIGRTMIN+3 as the stop signal. Needs --rootfs; COMMAND
    /// defaults to /sbin/init there
    #[arg(long, requires = "rootfs", help_heading = "Cgroups and system images")]
    pub boot: bool,

    /// With --boot, when the image counts as ready, for --detach to return and for a service
    /// manager above become-root (READY=1): when its init says so on NOTIFY_SOCKET
    /// (/run/host/notify inside), or as soon as it has started
    #[arg(
        long,
        value_name = "WHEN",
        value_enum,
        default_value_t,
        requires = "boot",
        help_heading = "Cgroups and system images"
    )]
    pub notify_ready: NotifyReady,

    /// How long a stop may take before what is left is killed (SIGKILL): with --boot, after
    /// SIGRTMIN+3, whoever asks for the stop (default 30); with --stop, overrides what the
    /// session was started with (default 30 for --boot, else 5)
    #[arg(long, value_name = "SECONDS", help_heading = "Sessions")]
    pub stop_timeout: Option<u64>,

    /// New uts namespace (hostname and domain name)
    #[arg(short = 'u', long)]
    pub uts: bool,

    /// New ipc namespace (System V IPC, POSIX message queues)
    #[arg(short = 'i', long)]
    pub ipc: bool,

    /// A cgroup v2 of the run's own (a leaf of your cgroup when it is yours, else a scope of
    /// your systemd user manager with Delegate=yes), a cgroup namespace rooted there and a
    /// writable cgroup2 at /sys/fs/cgroup inside (implies --mount); removed when the run's
    /// last process is gone
    #[arg(long, help_heading = "Cgroups and system images")]
    pub cgroup: bool,

    /// --memory, --memory-swap, --cpus, --pids-limit (each implies --cgroup).
    #[command(flatten)]
    pub limits: crate::cgroup::Limits,

    /// Every namespace: mount, net (mode none), pid, uts, ipc and cgroup (a cgroup namespace
    /// only: --cgroup makes the run's own cgroup too)
    #[arg(short = 'a', long)]
    pub all: bool,

    /// --emulate, the time namespace, --hostname, the environment options, --device.
    #[command(flatten)]
    pub extras: crate::options::Extras,

    /// Give this run a NAME, making it a session that --join can enter while it runs (letters,
    /// digits, '_', '.' and '-', starting with a letter or digit, not all digits). Its state is
    /// kept under $XDG_RUNTIME_DIR/become-root/ (else /tmp/become-root-UID/) until it ends
    #[arg(long, value_name = "NAME", help_heading = "Sessions")]
    pub name: Option<String>,

    /// Return once the namespaces are ready (maps written, mounts done, network up) and keep
    /// the session in the background: without COMMAND a pause process holds it until --stop,
    /// with COMMAND it lasts as long as COMMAND, whose output goes to NAME.log in the state
    /// directory. Needs --name
    #[arg(long, requires = "name", help_heading = "Sessions")]
    pub detach: bool,

    /// Run COMMAND (default: $SHELL, else /bin/sh) in the containers namespace of --map's mode,
    /// where podman and buildah always run (one per user and map, made on first use): for a
    /// shell, a script or make that runs podman. Filesystem options apply when it is made
    #[arg(
        long,
        help_heading = "Sessions",
        conflicts_with_all = [
            "map_users", "map_groups", "subid_source", "propagation", "net", "publish",
            "port_driver", "no_client_address", "allow_host_loopback", "mtu",
            "cidr", "ipv6", "dns", "overlay_driver", "rootfs", "sysfs",
            "pid", "uts", "ipc", "as_pid_1", "boot", "notify_ready", "stop_timeout", "cgroup",
            "memory", "memory_swap", "cpus", "pids_limit", "all", "info_fd", "drop_groups",
            "cap_add", "cap_drop", "uid", "gid", "no_new_privs", "name", "detach",
        ]
    )]
    pub containers: bool,

    /// Print no warnings (errors are still printed)
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// The command to run and its arguments, passed verbatim; default: $SHELL, else /bin/sh
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        num_args = 0..,
        value_parser = clap::value_parser!(OsString)
    )]
    pub command: Vec<OsString>,
}

/// Run `request` and return the exit status (which is returned only on failure: on success
/// COMMAND has replaced this process, or this process ended the way COMMAND did). A signal
/// that interrupted the setup (everything made is undone by now) is died of.
pub fn main(request: Request) -> i32 {
    status_of(run(request))
}

/// The exit status of a run that failed (a run that did not never returns), after its error
/// is said; one a signal interrupted dies of that signal.
fn status_of(result: Result<std::convert::Infallible, Error>) -> i32 {
    match result {
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
    // podman and buildah (and --containers) run in the containers namespace, made once.
    if containers::route(&cli)? {
        return containers::run(cli);
    }
    let quiet = cli.quiet;
    // Taken out before COMMAND's environment is made (plan): they are become-root's alone.
    let again = sys::take_env_var(supervise::REBOOTED).map(|v| crate::session::Again::parse(&v));
    let notifier =
        sys::take_env_var("NOTIFY_SOCKET").and_then(crate::process::notify::Notifier::new);
    let (mut plan, warnings) = plan(cli)?;
    plan.again = again;
    plan.notifier = notifier.map(std::sync::Arc::new);
    launch(plan, &warnings, quiet)
}

/// Carry out `plan`, after saying what --verbose asks for and the warnings.
fn launch(
    mut plan: Plan,
    warnings: &[crate::userns::Warning],
    quiet: bool,
) -> Result<std::convert::Infallible, Error> {
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
        for w in warnings {
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
