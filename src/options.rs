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
