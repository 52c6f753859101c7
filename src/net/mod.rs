//! Networking: which user-mode network helper connects the new network namespace, and with
//! what settings. The helper itself (start, readiness, lifetime) is in [`helper`].
//!
//! An unprivileged user cannot create a TAP device in the host's network namespace, so a
//! helper outside (slirp4netns or pasta) opens one inside the new namespace and carries its
//! traffic with ordinary sockets on the host. The host's loopback stays out of reach unless
//! `--allow-host-loopback` asks for it.

pub mod addressing;
pub mod bypass;
pub mod forward;
pub mod helper;
pub mod ports;
pub mod rtnl;

use std::path::PathBuf;

pub use addressing::{Addressing, Cidr};

use crate::options::NetMode;
use crate::programs;

/// A connected network mode, with `auto` resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Slirp4netns,
    Pasta,
}

impl Driver {
    pub fn program(self) -> &'static str {
        match self {
            Driver::Slirp4netns => "slirp4netns",
            Driver::Pasta => "pasta",
        }
    }

    /// The program, its variable and package ([`crate::programs`]).
    pub fn helper(self) -> programs::Program {
        match self {
            Driver::Slirp4netns => programs::SLIRP4NETNS,
            Driver::Pasta => programs::PASTA,
        }
    }

    /// Where the program is: named by its variable, else on PATH.
    pub fn find(self) -> Result<Option<programs::Found>, NetError> {
        Ok(self.helper().find()?)
    }

    /// The Debian package that ships the program.
    pub fn package(self) -> &'static str {
        match self {
            Driver::Slirp4netns => "slirp4netns",
            Driver::Pasta => "passt",
        }
    }

    /// The address inside the namespace where the helper answers DNS and forwards it to the
    /// host's resolver (so DNS works even when the host's resolv.conf names 127.0.0.53, which
    /// means nothing inside).
    pub fn dns_forwarder(self) -> &'static str {
        match self {
            Driver::Slirp4netns => "10.0.2.3",
            Driver::Pasta => "169.254.1.1", // addressing::PASTA_DNS
        }
    }

    /// The resolv.conf bound over /etc/resolv.conf inside, with the default addressing.
    pub fn resolv_conf(self) -> String {
        Addressing::default().resolv_conf(self)
    }
}

/// What a connected mode needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetPlan {
    pub driver: Driver,
    pub program: PathBuf,
    /// The variable that named `program` (SLIRP4NETNS, PASTA), when one did.
    pub from_env: Option<&'static str>,
    pub mtu: u32,
    pub allow_host_loopback: bool,
    /// --cidr, --ipv6, --dns.
    pub addressing: Addressing,
    /// Ports the helper itself forwards (`--port-driver=helper`), host ports resolved.
    pub forwards: Vec<ports::Publish>,
    /// A session whose helper forwards its ports: slirp4netns keeps its API socket, for live
    /// ports.
    pub keep_api: bool,
    /// `--net=auto` chose pasta: slirp4netns, when installed, to use if pasta fails to start
    /// (Debian 12's AppArmor profile for pasta, for one, forbids what it needs).
    pub fallback: Option<programs::Found>,
    /// `--net=bypass`: outbound inet sockets become the host's ([`bypass`]); the helper
    /// carries the rest (DNS, loopback's gateway, 32-bit programs).
    pub bypass: bool,
}

impl NetPlan {
    /// The plan with the fallback helper instead.
    pub fn fall_back(&self) -> Option<NetPlan> {
        Some(NetPlan {
            driver: Driver::Slirp4netns,
            program: self.fallback.as_ref()?.path.clone(),
            from_env: self.fallback.as_ref()?.from_env,
            fallback: None,
            ..self.clone()
        })
    }
}

/// Networking failures, each naming the helper or device.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NetError {
    #[error("{program} is not installed")]
    HelperMissing { program: String, package: String },
    #[error("neither pasta nor slirp4netns is installed")]
    NoHelper,
    #[error(transparent)]
    Program(#[from] programs::BadVariable),
    #[error("--port-driver=helper needs --net=slirp4netns, pasta or auto")]
    HelperDriverWithoutHelper,
    #[error("--cidr, --ipv6 and --dns need --net=slirp4netns, pasta or auto")]
    AddressingWithoutHelper,
    #[error("{0}")]
    Addressing(String),
    #[error("--publish needs a network namespace of the run's own")]
    PublishWithoutNet,
    #[error("{device}: {why}")]
    Device { device: String, why: String },
    #[error("cannot start {program}: {why}")]
    Start { program: String, why: String },
    #[error("{program} failed ({status}){}", stderr_suffix(.stderr))]
    Failed {
        program: String,
        status: String,
        stderr: String,
    },
    #[error("{program} was not ready after {seconds} s{}", stderr_suffix(.stderr))]
    NotReady {
        program: String,
        seconds: u64,
        stderr: String,
    },
    #[error("--publish {0}")]
    Spec(#[from] ports::SpecError),
    #[error("--publish {spec}: the port is already in use on the host")]
    PortInUse { spec: String },
    #[error("--publish {spec}: ports below {start} need privilege on the host")]
    PrivilegedPort { spec: String, start: String },
    #[error("--publish {spec}: {why}")]
    Bind { spec: String, why: String },
    #[error("{0}")]
    Setting(String),
}

fn stderr_suffix(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        String::new()
    } else {
        format!(": {}", lines.join("; "))
    }
}

impl NetError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            NetError::HelperMissing { program, package } => format!(
                "install it (Debian/Ubuntu: apt install {package}) so that {program} is on \
                 PATH, choose another mode (--net=auto picks whichever is installed), or use \
                 --net=none"
            ),
            NetError::Program(e) => e.hint(),
            NetError::HelperDriverWithoutHelper => {
                "add --net=auto, or leave --port-driver at builtin, which works in every mode"
                    .into()
            }
            NetError::AddressingWithoutHelper => "add --net=auto (or slirp4netns, or pasta): \
                --net=none has loopback only"
                .into(),
            NetError::Addressing(_) => "for example --cidr=10.42.0.0/24, --dns=192.0.2.53".into(),
            NetError::PublishWithoutNet => "add --net (any mode: --net=none publishes too), \
                or --boot, --all or --sysfs, which make one"
                .into(),
            NetError::NoHelper => "install one (Debian/Ubuntu: apt install passt, or apt \
                install slirp4netns), or use --net=none"
                .into(),
            NetError::Device { device, .. } => format!(
                "{device} must exist and be readable and writable by you (it is mode 0666 on \
                 most systems: as root, chmod 0666 {device}); or use --net=none"
            ),
            NetError::Spec(_) => "for example -p 8080:80, -p 127.0.0.1:0:80/udp or \
                -p [::1]:8443:443/tcp"
                .into(),
            NetError::PortInUse { .. } => {
                "choose another host port, or 0 to let the kernel pick a free one".into()
            }
            NetError::PrivilegedPort { start, .. } => format!(
                "use a host port of {start} or above (the port inside may stay low, e.g. \
                 -p 8080:80), or as root lower net.ipv4.ip_unprivileged_port_start"
            ),
            NetError::Bind { .. } => {
                "check HOST_IP: it must be an address of this host (127.0.0.1 by default)".into()
            }
            NetError::Failed {
                program, stderr, ..
            } if program == "pasta"
                && stderr.contains("Couldn't open user namespace")
                && stderr.contains("Permission denied") =>
            {
                "pasta was not let open the new namespace: Debian 12's AppArmor profile for \
                 pasta lacks 'ptrace (read),' (later ones have it). Use --net=slirp4netns (or \
                 --net=auto, which falls back to it), or add that rule to the passt profile in \
                 /etc/apparmor.d"
                    .into()
            }
            NetError::Failed { .. } | NetError::NotReady { .. } | NetError::Start { .. } => {
                "its message is above; --net=none gives a namespace with loopback only".into()
            }
            NetError::Setting(_) => format!(
                "give a whole number of seconds (0: never), or unset it for the default of {} s",
                crate::net::forward::IDLE_TIMEOUT.as_secs()
            ),
        })
    }
}

impl From<NetError> for crate::error::Error {
    fn from(e: NetError) -> crate::error::Error {
        let hint = e.hint();
        crate::error::Error::new("network", e.to_string()).with_hint_maybe(hint)
    }
}

/// The TAP device both helpers open inside the namespace, as the caller.
pub const TUN: &str = "/dev/net/tun";

/// Decide the connected mode, if any: `None` for no network namespace or mode `none`.
pub fn plan(
    mode: Option<NetMode>,
    mtu: u32,
    allow_host_loopback: bool,
    addressing: Addressing,
) -> Result<Option<NetPlan>, NetError> {
    let driver = match mode {
        None | Some(NetMode::None) => {
            if addressing != Addressing::default() {
                return Err(NetError::AddressingWithoutHelper);
            }
            return Ok(None);
        }
        Some(NetMode::Slirp4netns) => Driver::Slirp4netns,
        Some(NetMode::Pasta) => Driver::Pasta,
        // What --net=bypass leaves to a helper (DNS, mostly) needs no speed: the one that
        // starts sooner, slirp4netns, when installed.
        Some(NetMode::Bypass) if Driver::Slirp4netns.find()?.is_some() => Driver::Slirp4netns,
        Some(NetMode::Auto | NetMode::Bypass) => {
            if Driver::Pasta.find()?.is_some() {
                Driver::Pasta
            } else if Driver::Slirp4netns.find()?.is_some() {
                Driver::Slirp4netns
            } else {
                return Err(NetError::NoHelper);
            }
        }
    };
    let program = driver.find()?.ok_or_else(|| NetError::HelperMissing {
        program: driver.program().into(),
        package: driver.package().into(),
    })?;
    let fallback = match (mode, driver) {
        (Some(NetMode::Auto | NetMode::Bypass), Driver::Pasta) => Driver::Slirp4netns.find()?,
        _ => None,
    };
    let (program, from_env) = (program.path, program.from_env);
    Ok(Some(NetPlan {
        driver,
        program,
        from_env,
        mtu,
        allow_host_loopback,
        addressing,
        forwards: Vec::new(),
        keep_api: false,
        fallback,
        bypass: mode == Some(NetMode::Bypass),
    }))
}

/// Prepare ports for `--port-driver=helper`: the helper binds them itself once started, so
/// each is probed here first (bound and released) to report a port in use before COMMAND
/// runs, and to choose a free port for host port 0.
pub fn helper_forwards(
    net: &NetPlan,
    publish: &[ports::Publish],
) -> Result<Vec<ports::Publish>, NetError> {
    publish
        .iter()
        .map(|p| -> Result<ports::Publish, NetError> {
            helper_can_forward(net, p)?;
            let bound = forward::bind(std::slice::from_ref(p))?;
            Ok(ports::Publish {
                host_port: bound[0].local.port(),
                ..*p
            })
        })
        .collect()
}

/// Whether the helper can forward `p`: what was measured not to work is refused, with why.
pub fn helper_can_forward(net: &NetPlan, p: &ports::Publish) -> Result<(), NetError> {
    if net.driver == Driver::Slirp4netns && p.host_ip.is_ipv6() {
        return Err(NetError::Bind {
            spec: p.to_string(),
            why: "slirp4netns forwards IPv4 host addresses only".into(),
        });
    }
    // Measured with slirp4netns 1.2: with host loopback closed it drops the replies
    // of forwarded UDP (they go to 10.0.2.2, the host's alias), so such a forward
    // would never answer.
    if net.driver == Driver::Slirp4netns && p.proto == ports::Proto::Udp && !net.allow_host_loopback
    {
        return Err(NetError::Bind {
            spec: p.to_string(),
            why: "slirp4netns drops the replies of forwarded UDP while the host's \
                  loopback is closed; use --port-driver=builtin, or add \
                  --allow-host-loopback"
                .into(),
        });
    }
    // Measured with Debian 12's pasta (2023-03-09): forwarded UDP never reached a
    // server inside, with or without an address in the spec.
    if net.driver == Driver::Pasta && p.proto == ports::Proto::Udp {
        return Err(NetError::Bind {
            spec: p.to_string(),
            why: "pasta's own UDP forwarding did not deliver in testing; use \
                  --port-driver=builtin, which forwards UDP in every mode"
                .into(),
        });
    }
    Ok(())
}

/// Inside the namespace, once the helper is up: what the helper does not configure itself.
/// slirp4netns with `--enable-ipv6` only sends router advertisements, so the address would
/// come by SLAAC seconds after COMMAND started (after duplicate address detection); its
/// fixed address fd00::100/64 and the route via fd00::2 are added here, without DAD, so
/// that IPv6 works when COMMAND starts, as IPv4 does.
pub fn configure_inside(driver: Driver, addressing: &Addressing) -> Result<(), NetError> {
    if driver != Driver::Slirp4netns || !addressing.ipv6 {
        return Ok(());
    }
    let fail = |what: &str, e: nix::Error| NetError::Device {
        device: "tap0".into(),
        why: format!("{what}: {}", e.desc()),
    };
    let index = nix::net::if_::if_nametoindex("tap0").map_err(|e| fail("no interface", e))?;
    let mut rtnl = rtnl::Rtnl::open().map_err(|e| fail("netlink", e))?;
    let (guest, gateway) = addressing::slirp4netns_ipv6();
    rtnl.add_address(index, guest.into(), 64)
        .map_err(|e| fail(&format!("adding {guest}/64"), e))?;
    match rtnl.add_default_route(index, gateway.into()) {
        // A router advertisement got there first: the same route.
        Ok(()) | Err(nix::Error::EEXIST) => Ok(()),
        Err(e) => Err(fail(&format!("a default route via {gateway}"), e)),
    }
}

/// Check that the caller can open the TAP device, before anything is started: the helper
/// opens it inside as uid 0 there, which is the caller here.
pub fn check_tun() -> Result<(), NetError> {
    use nix::unistd::{AccessFlags, access};
    match access(TUN, AccessFlags::R_OK | AccessFlags::W_OK) {
        Ok(()) => Ok(()),
        Err(nix::Error::ENOENT) => Err(NetError::Device {
            device: TUN.into(),
            why: "does not exist (the tun module is not loaded, or this is a container without it)"
                .into(),
        }),
        Err(errno) => Err(NetError::Device {
            device: TUN.into(),
            why: errno.desc().into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::{Addressing, Driver, NetError, plan};
    use crate::options::NetMode;

    #[test]
    fn resolv_conf_names_the_forwarder() {
        assert!(
            Driver::Slirp4netns
                .resolv_conf()
                .ends_with("nameserver 10.0.2.3\n")
        );
        assert!(
            Driver::Pasta
                .resolv_conf()
                .ends_with("nameserver 169.254.1.1\n")
        );
    }

    #[test]
    fn no_connected_mode_means_no_plan() {
        let none = Addressing::default;
        assert_eq!(plan(None, 65520, false, none()).unwrap(), None);
        assert_eq!(
            plan(Some(NetMode::None), 65520, false, none()).unwrap(),
            None
        );
        let cidr = Addressing {
            ipv6: true,
            ..none()
        };
        assert!(plan(Some(NetMode::None), 65520, false, cidr).is_err());
    }

    #[test]
    fn helper_stderr_is_folded_into_one_line() {
        let e = NetError::Failed {
            program: "slirp4netns".into(),
            status: "exit status: 1".into(),
            stderr: "open(\"/dev/net/tun\"): Permission denied\n\nWARNING: x\n".into(),
        };
        assert_eq!(
            e.to_string(),
            "slirp4netns failed (exit status: 1): open(\"/dev/net/tun\"): Permission denied; WARNING: x"
        );
    }
}
