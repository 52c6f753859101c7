//! The choices of the command line that the layers below it act on (`--map`, `--net`, the
//! filesystem options...), as plain values. `cli` parses into them; mechanisms take them from
//! here, so that nothing below the command line imports it. The clap derive gives each choice
//! its name and help text on the command line.
#![forbid(unsafe_code)]

use clap::ValueEnum;

/// `--map`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum MapMode {
    #[default]
    /// full when possible, else single with a warning that says why
    Auto,
    /// the caller as 0, then every subordinate range; an error when that cannot be done
    Full,
    /// only the caller, as 0
    Single,
    /// the caller as itself, the subordinate ranges on the other ids; COMMAND runs as the
    /// caller
    KeepId,
    /// the caller and every subordinate id as themselves; COMMAND runs as the caller
    Subids,
}

impl MapMode {
    /// As the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            MapMode::Auto => "auto",
            MapMode::Full => "full",
            MapMode::Single => "single",
            MapMode::KeepId => "keep-id",
            MapMode::Subids => "subids",
        }
    }
}

/// `--subid-source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum SubidSource {
    #[default]
    /// getsubids when /etc/nsswitch.conf has a subid line, else the files
    Auto,
    /// /etc/subuid and /etc/subgid
    Files,
    /// the getsubids program (libsubid)
    Getsubids,
}

/// `--propagation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Propagation {
    #[default]
    /// no mount events in either direction
    Private,
    /// receive mounts made on the host, send none back
    Slave,
}

/// One filesystem option, as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsArg {
    Bind(String),
    RoBind(String),
    Tmpfs(String),
    CopyUp(String),
    Overlay(String),
}

/// `--overlay-driver`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OverlayDriver {
    #[default]
    /// native overlayfs, else fuse-overlayfs
    Auto,
    /// overlayfs in the user namespace
    Native,
    /// fuse-overlayfs
    Fuse,
}

/// `--port-driver`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum PortDriver {
    #[default]
    /// become-root's own forwarder: splice(2) between a host socket and one made inside
    Builtin,
    /// the network helper's own forwarding (slirp4netns add_hostfwd, pasta -t/-u)
    Helper,
}

/// `--net=MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetMode {
    /// loopback only
    None,
    /// user-mode networking by slirp4netns (10.0.2.100/24, gateway 10.0.2.2, DNS 10.0.2.3)
    Slirp4netns,
    /// user-mode networking by pasta (the host's own addresses and routes)
    Pasta,
    /// pasta when installed, else slirp4netns
    Auto,
    /// the namespace's outbound TCP and UDP sockets become sockets of the host (seccomp user
    /// notification), at the host's own speed; slirp4netns (pasta when it is not installed)
    /// for the rest
    Bypass,
}

/// `--notify-ready`: when a booted image counts as ready (a `--detach` caller waits for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum NotifyReady {
    #[default]
    /// yes when the image's init is systemd, else no
    Auto,
    /// when its init says READY=1 on NOTIFY_SOCKET (sd_notify(3)), waiting 90 s at most
    Yes,
    /// as soon as its init has started
    No,
}

/// `--mtu`: the network helper's MTU, 65520 unless given (slirp4netns's and pasta's most).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mtu(pub u32);

impl Default for Mtu {
    fn default() -> Mtu {
        Mtu(65520)
    }
}

impl std::fmt::Display for Mtu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// One environment option (`--setenv`, `--unsetenv`, `--clearenv`), as given; they apply in
/// command-line order, as bubblewrap's do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvArg {
    /// `--setenv=VAR=VALUE`.
    Set(std::ffi::OsString),
    /// `--unsetenv=VAR`.
    Unset(std::ffi::OsString),
    /// `--clearenv`.
    Clear,
}

/// What the run's world holds besides its namespaces and mounts: `--emulate`, a time
/// namespace (`--time`, `--monotonic`, `--boottime`), `--hostname`, the environment options
/// and `--device`: their one definition, which a run's request flattens.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct Extras {
    /// Run programs built for ARCH through QEMU's user-mode emulator: a binfmt_misc of the
    /// run's own (Linux 6.7 and later) at /proc/sys/fs/binfmt_misc, with qemu-ARCH-static
    /// (found on PATH, else qemu-ARCH; or named by QEMU_ARCH_STATIC, as QEMU_AARCH64_STATIC)
    /// registered as Debian registers it, with the F flag, so that it works inside --rootfs
    /// and chroots. ARCH: aarch64, arm, riscv64, ppc64le, s390x, mips64el, loongarch64, i386,
    /// x86_64, or Debian's arm64, armhf, armel, ppc64el, loong64, amd64 (repeatable, or
    /// several with ','). Implies --mount
    #[arg(
        long,
        value_name = "ARCH[,ARCH...]",
        value_delimiter = ',',
        help_heading = "Foreign architectures"
    )]
    pub emulate: Vec<String>,

    /// New time namespace: CLOCK_MONOTONIC and CLOCK_BOOTTIME of its own, offset by
    /// --monotonic and --boottime (as unshare -T)
    #[arg(short = 'T', long)]
    pub time: bool,

    /// Add SECONDS (negative too) to CLOCK_MONOTONIC inside; implies --time
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub monotonic: Option<i64>,

    /// Add SECONDS (negative too) to CLOCK_BOOTTIME inside, which uptime and /proc/uptime
    /// show; implies --time
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub boottime: Option<i64>,

    /// Set the host name inside to NAME (at most 64 bytes); implies --uts
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,

    /// Set VAR to VALUE in COMMAND's environment (repeatable). The environment options apply
    /// in command-line order, to the environment COMMAND would get
    #[arg(
        long,
        value_name = "VAR=VALUE",
        value_parser = clap::value_parser!(std::ffi::OsString),
        help_heading = "Environment of COMMAND"
    )]
    pub setenv: Vec<std::ffi::OsString>,

    /// Remove VAR from COMMAND's environment (repeatable)
    #[arg(
        long,
        value_name = "VAR",
        value_parser = clap::value_parser!(std::ffi::OsString),
        help_heading = "Environment of COMMAND"
    )]
    pub unsetenv: Vec<std::ffi::OsString>,

    /// Remove every variable but PWD from COMMAND's environment, PATH and TERM included (as
    /// bubblewrap's --clearenv); COMMAND is then looked up in /bin and /usr/bin unless a
    /// later --setenv=PATH=... says where
    #[arg(long, help_heading = "Environment of COMMAND")]
    pub clearenv: bool,

    /// Bind the device node PATH at DST (default: PATH; below /dev) inside: with --rootfs,
    /// into its minimal /dev, made there (/dev/fuse for fuse-overlayfs or sshfs, /dev/net/tun
    /// for pasta or a VPN, /dev/dri/renderD128 for a GPU); without, over an existing DST.
    /// Refused for a path that is not a device node (repeatable)
    #[arg(
        long = "device",
        id = "device",
        value_name = "PATH[:DST]",
        help_heading = "Filesystem (each implies --mount)"
    )]
    pub devices: Vec<String>,

    /// The environment options in command-line order (filled by the command line's parser
    /// from --setenv, --unsetenv and --clearenv).
    #[arg(skip)]
    pub env: Vec<EnvArg>,
}
