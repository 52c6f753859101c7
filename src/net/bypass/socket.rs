//! The sockets of a bypass: what a program's socket is (family, type, network namespace,
//! whether anything bound it yet), and its replacement made in the host's network namespace
//! with the options the program set, bound to the device its destination is routed through.
//!
//! The device binding is what keeps the host's loopback closed whatever a program does with a
//! bypassed socket afterwards: a socket bound (SO_BINDTODEVICE) to a device other than `lo`
//! reaches neither 127.0.0.0/8 nor ::1 (the routes to them are `lo`'s), and the binding cannot
//! be changed without CAP_NET_RAW in the host's user namespace, which nothing inside has
//! (unprivileged binding of an unbound socket is allowed since Linux 5.7).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;

use super::policy::{parse_sockaddr, route_ip, sockaddr_bytes};
use crate::sys;

/// A program's inet socket, as become-root may replace it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub domain: i32,
    pub ty: i32,
    pub protocol: i32,
}

impl Kind {
    /// An AF_INET or AF_INET6 socket, with its type and protocol; None for any other family.
    pub fn of(sock: &OwnedFd) -> Option<Kind> {
        let int = |name| {
            let mut buf = [0u8; 4];
            sys::getsockopt_raw(sock, libc::SOL_SOCKET, name, &mut buf).ok()?;
            Some(i32::from_ne_bytes(buf))
        };
        let domain = int(libc::SO_DOMAIN)?;
        if domain != libc::AF_INET && domain != libc::AF_INET6 {
            return None;
        }
        Some(Kind {
            domain,
            ty: int(libc::SO_TYPE)?,
            protocol: int(libc::SO_PROTOCOL)?,
        })
    }

    pub fn tcp(self) -> bool {
        self.ty == libc::SOCK_STREAM && self.protocol == libc::IPPROTO_TCP
    }

    pub fn udp(self) -> bool {
        self.ty == libc::SOCK_DGRAM && self.protocol == libc::IPPROTO_UDP
    }
}

/// Which network namespace a socket is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Where {
    /// The run's own.
    Namespace,
    /// The host's (become-root's own), or one become-root does not own (which it cannot tell
    /// from the host's, and treats alike).
    Host,
    /// Another namespace the run owns (one made inside, for a container): left alone.
    Other,
}

/// Whether nothing bound `sock` yet (its local port is 0): only such a socket is replaced,
/// since a port chosen inside has no meaning on the host.
pub fn is_fresh(sock: &OwnedFd) -> bool {
    sys::getsockname_raw(sock)
        .ok()
        .and_then(|b| parse_sockaddr(&b))
        .is_some_and(|a| a.port() == 0)
}

/// The options a program may set before it connects, copied when its socket's value differs
/// from a fresh socket's of the namespace (so that only what the program changed is copied:
/// a buffer size copied unasked would turn off the kernel's autotuning). SO_SNDBUF and
/// SO_RCVBUF read back doubled and are set at half.
const OPTIONS: &[(i32, i32)] = &[
    (libc::SOL_SOCKET, libc::SO_REUSEADDR),
    (libc::SOL_SOCKET, libc::SO_REUSEPORT),
    (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
    (libc::SOL_SOCKET, libc::SO_LINGER),
    (libc::SOL_SOCKET, libc::SO_SNDBUF),
    (libc::SOL_SOCKET, libc::SO_RCVBUF),
    (libc::SOL_SOCKET, libc::SO_RCVTIMEO),
    (libc::SOL_SOCKET, libc::SO_SNDTIMEO),
    (libc::SOL_SOCKET, libc::SO_PRIORITY),
    (libc::SOL_SOCKET, libc::SO_OOBINLINE),
    (libc::SOL_SOCKET, libc::SO_BROADCAST),
    (libc::SOL_SOCKET, libc::SO_RCVLOWAT),
    (libc::SOL_SOCKET, libc::SO_TIMESTAMP),
    (libc::SOL_SOCKET, libc::SO_TIMESTAMPNS),
    (libc::IPPROTO_TCP, libc::TCP_NODELAY),
    (libc::IPPROTO_TCP, libc::TCP_CORK),
    (libc::IPPROTO_TCP, libc::TCP_MAXSEG),
    (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
    (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
    (libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
    (libc::IPPROTO_TCP, libc::TCP_SYNCNT),
    (libc::IPPROTO_TCP, libc::TCP_LINGER2),
    (libc::IPPROTO_TCP, libc::TCP_WINDOW_CLAMP),
    (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT),
    (libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT),
    (libc::IPPROTO_TCP, libc::TCP_FASTOPEN_CONNECT),
    (libc::IPPROTO_TCP, libc::TCP_CONGESTION),
    (libc::IPPROTO_IP, libc::IP_TOS),
    (libc::IPPROTO_IP, libc::IP_TTL),
    (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER),
    (libc::IPPROTO_IP, libc::IP_RECVERR),
    (libc::IPPROTO_IP, libc::IP_PKTINFO),
    (libc::IPPROTO_IP, libc::IP_RECVTOS),
    (libc::IPPROTO_IP, libc::IP_RECVTTL),
    (libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT),
    (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
    (libc::IPPROTO_IPV6, libc::IPV6_TCLASS),
    (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS),
    (libc::IPPROTO_IPV6, libc::IPV6_RECVERR),
    (libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER),
    (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO),
];

/// An option's value as the kernel returns it (at most a TCP congestion name's 16 bytes).
type Value = Vec<u8>;

fn read_option(sock: &OwnedFd, level: i32, name: i32) -> Option<Value> {
    let mut buf = [0u8; 16];
    let len = sys::getsockopt_raw(sock, level, name, &mut buf).ok()?;
    Some(buf[..len].to_vec())
}

/// An interface as a bypassed socket is bound to it.
#[derive(Debug, Clone)]
struct Device {
    name: String,
    loopback: bool,
}

/// What the supervisor knows of sockets: the namespace's defaults, which network namespace is
/// which, and the host's interfaces by address.
pub struct Sockets {
    /// The inode of the run's network namespace and of become-root's own.
    namespace: u64,
    own: u64,
    /// Per (domain, type): a fresh socket of the namespace, until the first replacement of
    /// that kind reads its option values (read then, not at start, where the ~40 reads per
    /// template would lengthen every run's start-up for connections it may never make).
    templates: HashMap<(i32, i32), OwnedFd>,
    defaults: HashMap<(i32, i32), Vec<Option<Value>>>,
    /// The host's interfaces by address, and when that was read.
    devices: HashMap<IpAddr, Device>,
    devices_read: Option<Instant>,
}

/// How long the table of the host's addresses is trusted before it is read again on a miss.
const DEVICES_FRESH: Duration = Duration::from_secs(5);

fn netns_inode(ns: &OwnedFd) -> Option<u64> {
    nix::sys::stat::fstat(ns.as_fd()).ok().map(|st| st.st_ino)
}

impl Sockets {
    /// From fresh sockets made in the namespace (one per domain and type it has), kept until
    /// their option values are first needed.
    pub fn new(fds: Vec<OwnedFd>) -> Option<Sockets> {
        let mut namespace = None;
        let mut templates = HashMap::new();
        for t in fds {
            namespace =
                namespace.or_else(|| sys::socket_netns(&t).ok().and_then(|ns| netns_inode(&ns)));
            if let Some(kind) = Kind::of(&t) {
                templates.insert((kind.domain, kind.ty), t);
            }
        }
        let own = std::fs::metadata("/proc/self/ns/net").ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.ino()
        })?;
        Some(Sockets {
            namespace: namespace?,
            own,
            templates,
            defaults: HashMap::new(),
            devices: HashMap::new(),
            devices_read: None,
        })
    }

    pub fn where_is(&self, sock: &OwnedFd) -> Where {
        match sys::socket_netns(sock).ok().and_then(|ns| netns_inode(&ns)) {
            Some(ino) if ino == self.namespace => Where::Namespace,
            Some(ino) if ino != self.own => Where::Other,
            _ => Where::Host,
        }
    }

    /// Whether `sock` is bound to a device, as the sockets become-root puts in place are.
    pub fn is_bypassed(&self, sock: &OwnedFd) -> bool {
        let mut name = [0u8; 16];
        sys::getsockopt_raw(sock, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, &mut name)
            .is_ok_and(|len| len > 0 && name[0] != 0)
    }

    /// A socket of the host like `sock` (its kind, the options its program set), non-blocking
    /// for now, bound to the device `dest` is routed through. None when that is the host's
    /// loopback and `loopback_allowed` is not: such a destination is not bypassed.
    pub fn replacement(
        &mut self,
        sock: &OwnedFd,
        kind: Kind,
        dest: SocketAddr,
        loopback_allowed: bool,
    ) -> Result<Option<OwnedFd>, Errno> {
        let device = self.device_for(route_ip(dest))?;
        if device.loopback && !loopback_allowed {
            return Ok(None);
        }
        let host = sys::socket_raw(kind.domain, kind.ty | libc::SOCK_NONBLOCK, kind.protocol)?;
        self.copy_options(sock, &host, kind);
        sys::setsockopt_raw(
            &host,
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            device.name.as_bytes(),
        )?;
        Ok(Some(host))
    }

    fn copy_options(&mut self, from: &OwnedFd, to: &OwnedFd, kind: Kind) {
        let key = (kind.domain, kind.ty);
        if let Some(t) = self.templates.remove(&key) {
            let values = OPTIONS
                .iter()
                .map(|&(l, n)| read_option(&t, l, n))
                .collect();
            self.defaults.insert(key, values);
        }
        let Some(defaults) = self.defaults.get(&key) else {
            return;
        };
        for (&(level, name), default) in OPTIONS.iter().zip(defaults) {
            let Some(value) = read_option(from, level, name) else {
                continue;
            };
            if Some(&value) == default.as_ref() {
                continue;
            }
            let value = match name {
                libc::SO_SNDBUF | libc::SO_RCVBUF if level == libc::SOL_SOCKET => {
                    let v = i32::from_ne_bytes(value[..4].try_into().unwrap_or_default());
                    (v / 2).to_ne_bytes().to_vec()
                }
                _ => value,
            };
            // What the host refuses (a privileged value) is left at the host's default.
            let _ = sys::setsockopt_raw(to, level, name, &value);
        }
    }

    /// The device the host routes `ip` through: the interface that holds the source address
    /// the kernel picks for it (a connected UDP socket sends nothing).
    fn device_for(&mut self, ip: IpAddr) -> Result<Device, Errno> {
        let (domain, probe_to) = match ip {
            IpAddr::V4(_) => (libc::AF_INET, SocketAddr::new(ip, 9)),
            IpAddr::V6(_) => (libc::AF_INET6, SocketAddr::new(ip, 9)),
        };
        let probe = sys::socket_raw(domain, libc::SOCK_DGRAM, 0)?;
        sys::connect_raw(&probe, &sockaddr_bytes(probe_to))?;
        let source = sys::getsockname_raw(&probe)?;
        let source = parse_sockaddr(&source).ok_or(Errno::EADDRNOTAVAIL)?.ip();
        if let Some(device) = self.devices.get(&source)
            && self
                .devices_read
                .is_some_and(|t| t.elapsed() < DEVICES_FRESH)
        {
            return Ok(device.clone());
        }
        self.read_devices();
        self.devices
            .get(&source)
            .cloned()
            .ok_or(Errno::EADDRNOTAVAIL)
    }

    fn read_devices(&mut self) {
        use nix::net::if_::InterfaceFlags;
        self.devices.clear();
        self.devices_read = Some(Instant::now());
        let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
            return;
        };
        for a in addrs {
            let Some(address) = a.address else { continue };
            let ip = if let Some(v4) = address.as_sockaddr_in() {
                IpAddr::V4(v4.ip())
            } else if let Some(v6) = address.as_sockaddr_in6() {
                IpAddr::V6(v6.ip())
            } else {
                continue;
            };
            let device = Device {
                name: a.interface_name.clone(),
                loopback: a.flags.contains(InterfaceFlags::IFF_LOOPBACK),
            };
            self.devices.insert(ip, device);
        }
    }
}

/// Whether descriptor `fd` of process `tgid` is close-on-exec (the "flags" of its fdinfo, in
/// octal): the replacement keeps that.
pub fn is_cloexec(tgid: u32, fd: i32) -> bool {
    let Ok(info) = std::fs::read_to_string(format!("/proc/{tgid}/fdinfo/{fd}")) else {
        return false;
    };
    info.lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        .is_some_and(|flags| flags & libc::O_CLOEXEC as u32 != 0)
}
