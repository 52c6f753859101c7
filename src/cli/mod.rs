//! The command lines, as clap definitions and nothing else: `become-root` here, `subid` in
//! `subid.rs`.
//!
//! The launcher never reads argv: `bin/become-root.rs` parses into [`Cli`] and hands the
//! result over. The same definition generates `man/` and `completions/` (see
//! `tests/docs.rs`), so help, man page and completions cannot drift apart.
#![forbid(unsafe_code)]
// The help texts are the doc comments: "[HOST_IP:]PORT" is a command line's optional part there,
// not a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::ffi::OsString;

use clap::Parser;

pub use crate::options::{
    FsArg, MapMode, NetMode, NotifyReady, OverlayDriver, PortDriver, Propagation, SubidSource,
};

mod action;
mod fast;
pub mod subid;
mod usage;

pub use action::Action;
pub use fast::{plain_join, plain_run};
pub use usage::{clap_usage, usage_exit};

const AFTER_HELP: &str = "\
Exit status: the command's own; 128+N when it was killed by signal N (become-root dies
of the same signal); 125 when become-root itself failed; 126 when COMMAND could not be
executed; 127 when COMMAND was not found.";

/// Run a command as root in a new user namespace with all subordinate ids mapped.
#[derive(Debug, Parser)]
#[command(
    name = "become-root",
    version,
    about = "Run a command as root in a new user namespace with all subordinate ids mapped",
    long_about = "Run COMMAND (default: $SHELL, else /bin/sh) as uid 0 in a new user namespace \
in which the caller and all of the caller's subordinate ids from /etc/subuid and /etc/subgid \
are mapped, optionally in new mount, network, pid, uts, ipc and cgroup namespaces. \
become-root is not setuid: the id maps are written by the setuid helpers newuidmap and \
newgidmap, which the administrator configures through /etc/subuid and /etc/subgid.",
    after_help = AFTER_HELP,
    max_term_width = 100
)]
pub struct Cli {
    /// How ids are mapped: full (you as 0, then every subordinate range), single (only you,
    /// like unshare -r), auto (full when possible, else single with a warning), keep-id (you
    /// as yourself and COMMAND runs as you, the subordinate ranges on the other ids, like
    /// podman's keep-id), subids (you and every subordinate id as themselves)
    #[arg(long, value_enum, default_value_t = MapMode::Auto, value_name = "MODE")]
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
    #[arg(long, value_enum, default_value_t = SubidSource::Auto, value_name = "SOURCE")]
    pub subid_source: SubidSource,

    /// New mount namespace; / is made recursively private (see --propagation)
    #[arg(short = 'm', long)]
    pub mount: bool,

    /// Mount propagation of / in the new mount namespace: private, or slave to keep
    /// receiving mounts made on the host
    #[arg(long, value_enum, default_value_t = Propagation::Private, value_name = "MODE")]
    pub propagation: Propagation,

    /// New network namespace. MODE (taken only with '=', so -n bash runs bash): none
    /// (loopback only, the default), slirp4netns, pasta, auto (pasta when installed, else
    /// slirp4netns), or bypass (outbound TCP and UDP sockets become sockets of the host,
    /// at its own speed, and slirp4netns, else pasta, carries the rest: see SECURITY). A connected mode implies --mount
    /// and binds a resolv.conf naming the helper's DNS forwarder over /etc/resolv.conf
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

    /// With --join=NAME: stop publishing SPEC ([HOST_IP:]HOST_PORT:NS_PORT[/tcp|/udp], as
    /// --list shows it) in running session NAME (repeatable); with --publish and no COMMAND,
    /// --join=NAME adds ports to it
    #[arg(long, value_name = "SPEC", requires = "join")]
    pub unpublish: Vec<String>,

    /// Who forwards published ports: builtin (become-root's own splice forwarder, any --net
    /// mode) or helper (slirp4netns's API or pasta's own forwarding; needs slirp4netns or
    /// pasta, and a server inside listening on all addresses)
    #[arg(long, value_enum, default_value_t = PortDriver::Builtin, value_name = "DRIVER", requires = "net")]
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
    #[arg(long, value_name = "N", default_value_t = 65520, value_parser = clap::value_parser!(u32).range(1280..=65520))]
    pub mtu: u32,

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
    #[arg(long, value_enum, default_value_t = OverlayDriver::Auto, value_name = "DRIVER", help_heading = "Filesystem (each implies --mount)")]
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

    /// Give COMMAND capability CAP over the namespace (repeatable; NET_ADMIN, net_admin and
    /// CAP_NET_ADMIN are the same). With --uid, the only capabilities COMMAND gets
    #[arg(long, value_name = "CAP", help_heading = "Identity inside")]
    pub cap_add: Vec<String>,

    /// Take capability CAP away from COMMAND, or ALL (repeatable; --cap-add wins). Dropped
    /// from the bounding set too, so no exec inside can regain it
    #[arg(long, value_name = "CAP|ALL", help_heading = "Identity inside")]
    pub cap_drop: Vec<String>,

    /// Run COMMAND as uid N inside (a mapped id) instead of 0, after every mount is made
    #[arg(long, value_name = "N", help_heading = "Identity inside")]
    pub uid: Option<u32>,

    /// Run COMMAND as gid N inside (a mapped id) instead of 0
    #[arg(long, value_name = "N", help_heading = "Identity inside")]
    pub gid: Option<u32>,

    /// Drop the supplementary groups (setgroups(2) to none) before the mounts; by default they
    /// are kept, those not mapped showing as nogroup. An error (status 125) where setgroups is
    /// denied: with only your own gid mapped (--map=single, --map=auto's fallback)
    #[arg(long, help_heading = "Identity inside")]
    pub drop_groups: bool,

    /// Set no_new_privs for COMMAND: no exec inside gains privilege (set-user-ID bits and
    /// file capabilities are ignored)
    #[arg(long, help_heading = "Identity inside")]
    pub no_new_privs: bool,

    /// When the namespaces are ready, write one JSON object to file descriptor FD (pid, id
    /// maps, namespace inodes, network, published ports); when COMMAND ends, a second one
    /// with how it ended. FD is not passed to COMMAND
    #[arg(long, value_name = "FD")]
    pub info_fd: Option<i32>,

    /// Say what become-root chose (id maps, overlay driver) on standard error
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// The filesystem options in command-line order (filled by [`Cli::parse_args`]).
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
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = NotifyReady::Auto, requires = "boot", help_heading = "Cgroups and system images")]
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

    /// Memory limit (memory.max): bytes, or with a unit b, k, m, g (64M, 1.5g), as podman.
    /// Implies --cgroup; a COMMAND the limit kills ends with status 137
    #[arg(long, value_name = "SIZE", value_parser = crate::cgroup::parse_size, help_heading = "Cgroups and system images")]
    pub memory: Option<u64>,

    /// Memory and swap together (podman's meaning; -1: no limit on swap). Needs --memory;
    /// without it swap is limited to as much as --memory
    #[arg(long, value_name = "SIZE", value_parser = crate::cgroup::parse_memory_swap, allow_hyphen_values = true, help_heading = "Cgroups and system images")]
    pub memory_swap: Option<u64>,

    /// CPU time limit in CPUs, fractions allowed (cpu.max; 0.5 is half of one CPU). Implies
    /// --cgroup
    #[arg(long, value_name = "N", value_parser = crate::cgroup::parse_cpus, help_heading = "Cgroups and system images")]
    pub cpus: Option<f64>,

    /// Most tasks (processes and threads) at once (pids.max; -1: no limit). Implies --cgroup
    #[arg(long, value_name = "N", value_parser = crate::cgroup::parse_pids, allow_hyphen_values = true, help_heading = "Cgroups and system images")]
    pub pids_limit: Option<u64>,

    /// Every namespace: mount, net (mode none), pid, uts, ipc and cgroup (a cgroup namespace
    /// only: --cgroup makes the run's own cgroup too)
    #[arg(short = 'a', long)]
    pub all: bool,

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

    /// Run COMMAND (default: $SHELL, else /bin/sh) as root in the namespaces of session NAME,
    /// or of process PID: its user namespace first, then the others it made. No map is
    /// written and no helper runs. The working directory is --chdir, else the current one;
    /// --uid, --gid and the capability options apply as in a new run
    #[arg(
        long,
        value_name = "NAME|PID",
        help_heading = "Sessions",
        conflicts_with_all = [
            "map_users", "map_groups",
            "name", "detach", "list", "stop", "check", "map", "subid_source", "mount",
            "propagation", "net", "port_driver", "no_client_address", "allow_host_loopback", "mtu", "cidr", "ipv6", "dns", "bind",
            "ro_bind", "tmpfs", "copy_up", "overlay", "overlay_driver", "rootfs", "sysfs", "pid", "uts",
            "ipc", "as_pid_1", "boot", "cgroup", "memory", "memory_swap", "cpus", "pids_limit", "all", "info_fd", "drop_groups",
            "stop_timeout",
        ]
    )]
    pub join: Option<String>,

    /// List the running sessions: name, pid, creation time, namespaces, network, state file
    #[arg(
        long,
        help_heading = "Sessions",
        conflicts_with_all = [
            "map_users", "map_groups",
            "command", "name", "detach", "stop", "check", "map", "subid_source", "mount",
            "propagation", "net", "publish", "unpublish", "port_driver", "no_client_address", "allow_host_loopback", "mtu", "cidr", "ipv6", "dns", "bind",
            "ro_bind", "tmpfs", "copy_up", "overlay", "overlay_driver", "rootfs", "sysfs", "chdir", "pid",
            "uts", "ipc", "as_pid_1", "boot", "cgroup", "memory", "memory_swap", "cpus", "pids_limit", "all", "cap_add", "cap_drop", "uid", "gid", "no_new_privs", "drop_groups",
            "info_fd", "stop_timeout",
        ]
    )]
    pub list: bool,

    /// With --list: print one JSON object {"state_dir": ..., "sessions": [...]}
    #[arg(long, requires = "list", help_heading = "Sessions")]
    pub json: bool,

    /// End session NAME and everything in it (SIGTERM, or SIGRTMIN+3 to a booted image's pid
    /// 1, then SIGKILL after --stop-timeout) and remove its state; returns once all of it is
    /// gone
    #[arg(
        long,
        value_name = "NAME",
        help_heading = "Sessions",
        conflicts_with_all = [
            "map_users", "map_groups",
            "command", "name", "detach", "check", "map", "subid_source", "mount", "propagation",
            "net", "publish", "unpublish", "port_driver", "no_client_address", "allow_host_loopback", "mtu", "cidr", "ipv6", "dns", "bind", "ro_bind",
            "tmpfs", "copy_up", "overlay", "overlay_driver", "rootfs", "sysfs", "chdir", "pid", "uts",
            "ipc", "as_pid_1", "boot", "cgroup", "memory", "memory_swap", "cpus", "pids_limit", "all", "cap_add", "cap_drop", "uid", "gid", "no_new_privs", "drop_groups",
            "info_fd",
        ]
    )]
    pub stop: Option<String>,

    /// Print the output of detached session NAME (a booted image's console), while it runs
    /// or after it ended; the last 8 to 16 MiB are kept
    #[arg(
        long,
        value_name = "NAME",
        help_heading = "Sessions",
        conflicts_with_all = [
            "map_users", "map_groups",
            "command", "name", "detach", "stop", "list", "check", "map", "subid_source", "mount",
            "propagation", "net", "publish", "unpublish", "port_driver", "no_client_address", "allow_host_loopback", "mtu", "cidr", "ipv6", "dns", "bind",
            "ro_bind", "tmpfs", "copy_up", "overlay", "overlay_driver", "rootfs", "sysfs", "chdir",
            "pid", "uts", "ipc", "as_pid_1", "boot", "cgroup", "memory", "memory_swap", "cpus",
            "pids_limit", "all", "cap_add", "cap_drop", "uid", "gid", "no_new_privs",
            "drop_groups", "info_fd", "stop_timeout", "join",
        ]
    )]
    pub logs: Option<String>,

    /// With --logs: go on printing what the session writes until it ends
    #[arg(long, requires = "logs", help_heading = "Sessions")]
    pub follow: bool,

    /// Report whether become-root can work here, one line per item: ok, warn (an optional
    /// feature is unavailable) or FAIL, each with its fix. Exit status 0 when a command could
    /// run with the --map given (--map=auto may map only your own ids), 1 when it could not
    #[arg(long, conflicts_with = "command")]
    pub check: bool,

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

impl Cli {
    /// Parse like `Parser::try_parse_from`, and also record the filesystem options in the
    /// order they were given (later mounts may build on earlier ones).
    pub fn parse_args(args: Vec<OsString>) -> Result<Cli, clap::Error> {
        use clap::FromArgMatches;
        let mut matches = Self::command().try_get_matches_from(args)?;
        // Indices first: from_arg_matches_mut takes the values out (no copy of the matches).
        let index = |id: &str| matches.indices_of(id).map(|i| i.collect::<Vec<usize>>());
        let indices: Vec<Option<Vec<usize>>> = ["bind", "ro_bind", "tmpfs", "copy_up", "overlay"]
            .iter()
            .map(|id| index(id))
            .collect();
        let mut cli = Cli::from_arg_matches_mut(&mut matches)?;
        let mut ordered: Vec<(usize, FsArg)> = Vec::new();
        type Kind<'a> = (&'a str, &'a Vec<String>, fn(String) -> FsArg);
        let kinds: [Kind; 5] = [
            ("bind", &cli.bind, FsArg::Bind),
            ("ro_bind", &cli.ro_bind, FsArg::RoBind),
            ("tmpfs", &cli.tmpfs, FsArg::Tmpfs),
            ("copy_up", &cli.copy_up, FsArg::CopyUp),
            ("overlay", &cli.overlay, FsArg::Overlay),
        ];
        for ((_, values, make), indices) in kinds.into_iter().zip(indices) {
            if let Some(indices) = indices {
                ordered.extend(indices.into_iter().zip(values.iter().cloned().map(make)));
            }
        }
        ordered.sort_by_key(|(index, _)| *index);
        cli.filesystem = ordered.into_iter().map(|(_, arg)| arg).collect();
        Ok(cli)
    }

    /// The clap command, for generating man pages and completions.
    pub fn command() -> clap::Command {
        <Self as clap::CommandFactory>::command()
    }
}
