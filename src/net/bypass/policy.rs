//! Which destinations a bypassed socket may reach, and the sockaddr bytes read from another
//! process. Pure: a destination in, a verdict out.
//!
//! What stays the namespace's own: loopback (127.0.0.0/8, ::1), "this host" (0.0.0.0/8, ::,
//! which the kernel connects to loopback), the helper's network (the --cidr plan: the
//! namespace, its gateway and DNS forwarder; fd00::/64 with --ipv6), link-local, multicast and
//! broadcast. An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is judged as the IPv4 address it
//! carries. Everything else is bypassed. With --allow-host-loopback the gateway, which means
//! the host's loopback in the connected modes, is bypassed to the host's loopback itself.
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use super::super::addressing::{Cidr, DEFAULT_CIDR};

/// What a run's bypass allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The helper's network (--cidr, else 10.0.2.0/24).
    pub cidr: Cidr,
    /// --ipv6: slirp4netns's fd00::/64 is the namespace's too.
    pub ipv6: bool,
    pub allow_host_loopback: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            cidr: DEFAULT_CIDR,
            ipv6: false,
            allow_host_loopback: false,
        }
    }
}

impl Policy {
    /// The policy in words, as a session's record keeps it for its joins:
    /// `10.0.2.0/24 ipv6 host-loopback` (the last two only when set).
    pub fn describe(&self) -> String {
        let mut words = self.cidr.to_string();
        if self.ipv6 {
            words.push_str(" ipv6");
        }
        if self.allow_host_loopback {
            words.push_str(" host-loopback");
        }
        words
    }

    /// [`Policy::describe`]'s words read back; None for anything else.
    pub fn parse(text: &str) -> Option<Policy> {
        let mut words = text.split_whitespace();
        let mut policy = Policy {
            cidr: Cidr::parse(words.next()?).ok()?,
            ..Policy::default()
        };
        for word in words {
            match word {
                "ipv6" => policy.ipv6 = true,
                "host-loopback" => policy.allow_host_loopback = true,
                _ => return None,
            }
        }
        Some(policy)
    }
}

/// Where a connection or datagram to a destination goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The namespace's own (loopback, the helper's network...): never made on the host.
    Inside,
    /// A socket of the host, to this address (the destination, or for the gateway under
    /// --allow-host-loopback the host's loopback).
    Host(SocketAddr),
}

/// slirp4netns's IPv6 network with --ipv6 (addressing.rs).
const SLIRP_V6_NET: [u16; 4] = [0xfd00, 0, 0, 0];
const SLIRP_V6_GATEWAY: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

impl Policy {
    pub fn verdict(&self, dest: SocketAddr) -> Verdict {
        match dest {
            SocketAddr::V4(v4) => self.verdict_v4(*v4.ip(), dest.port(), |ip| {
                SocketAddr::V4(SocketAddrV4::new(ip, v4.port()))
            }),
            SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
                // An IPv6 socket reaching an IPv4 address: judged as that address, and kept
                // in the same form.
                Some(ip) => self.verdict_v4(ip, dest.port(), |ip| {
                    SocketAddr::V6(SocketAddrV6::new(ip.to_ipv6_mapped(), v6.port(), 0, 0))
                }),
                None => self.verdict_v6(v6),
            },
        }
    }

    fn verdict_v4(
        &self,
        ip: Ipv4Addr,
        port: u16,
        form: impl Fn(Ipv4Addr) -> SocketAddr,
    ) -> Verdict {
        if self.allow_host_loopback && ip == self.cidr.gateway() {
            return Verdict::Host(form(Ipv4Addr::LOCALHOST));
        }
        let this_host = ip.octets()[0] == 0;
        if ip.is_loopback()
            || this_host
            || ip.is_link_local()
            || ip.is_multicast()
            || ip.is_broadcast()
            || self.cidr.contains(ip)
            || port == 0
        {
            return Verdict::Inside;
        }
        Verdict::Host(form(ip))
    }

    fn verdict_v6(&self, v6: SocketAddrV6) -> Verdict {
        let ip = *v6.ip();
        let seg = ip.segments();
        let slirp_net = self.ipv6 && seg[..4] == SLIRP_V6_NET;
        if self.allow_host_loopback && self.ipv6 && ip == SLIRP_V6_GATEWAY {
            return Verdict::Host(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::LOCALHOST,
                v6.port(),
                0,
                0,
            )));
        }
        // ::/96 holds :: and the old IPv4-compatible addresses (::127.0.0.1).
        let compatible = seg[..6] == [0; 6];
        let link_local = seg[0] & 0xffc0 == 0xfe80;
        if ip.is_loopback()
            || compatible
            || link_local
            || ip.is_multicast()
            || slirp_net
            || v6.port() == 0
        {
            return Verdict::Inside;
        }
        Verdict::Host(SocketAddr::V6(SocketAddrV6::new(
            ip,
            v6.port(),
            v6.flowinfo(),
            0,
        )))
    }
}

/// An inet address from the bytes of a sockaddr as a program passed it: `None` for any other
/// family (AF_UNSPEC, AF_UNIX...) or a length the kernel would refuse.
pub fn parse_sockaddr(bytes: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes(bytes.get(..2)?.try_into().ok()?);
    let port = u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?);
    match i32::from(family) {
        nix::libc::AF_INET if bytes.len() >= 16 => {
            let ip: [u8; 4] = bytes[4..8].try_into().ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(ip.into(), port)))
        }
        // sockaddr_in6 without the scope id (RFC 2133's size) is still accepted.
        nix::libc::AF_INET6 if bytes.len() >= 24 => {
            let flowinfo = u32::from_be_bytes(bytes[4..8].try_into().ok()?);
            let ip: [u8; 16] = bytes[8..24].try_into().ok()?;
            let scope = match bytes.get(24..28) {
                Some(s) => u32::from_ne_bytes(s.try_into().ok()?),
                None => 0,
            };
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip.into(),
                port,
                flowinfo,
                scope,
            )))
        }
        _ => None,
    }
}

/// The bytes of the sockaddr for `addr` (sockaddr_in or sockaddr_in6).
pub fn sockaddr_bytes(addr: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(28);
    match addr {
        SocketAddr::V4(v4) => {
            out.extend((nix::libc::AF_INET as u16).to_ne_bytes());
            out.extend(v4.port().to_be_bytes());
            out.extend(v4.ip().octets());
            out.extend([0u8; 8]);
        }
        SocketAddr::V6(v6) => {
            out.extend((nix::libc::AF_INET6 as u16).to_ne_bytes());
            out.extend(v6.port().to_be_bytes());
            out.extend(v6.flowinfo().to_be_bytes());
            out.extend(v6.ip().octets());
            out.extend(v6.scope_id().to_ne_bytes());
        }
    }
    out
}

/// The IP a probe asks the routing table about for `addr` (the IPv4 address of a mapped one).
pub fn route_ip(addr: SocketAddr) -> IpAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(*v6.ip()),
        },
        SocketAddr::V4(v4) => IpAddr::V4(*v4.ip()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> Verdict {
        Verdict::Host(s.parse().unwrap())
    }

    #[test]
    fn a_policy_in_words_reads_back_as_itself() {
        let cidr = Cidr::parse("10.42.0.0/24").unwrap();
        for (ipv6, allow_host_loopback) in [(false, false), (true, false), (true, true)] {
            let p = Policy {
                cidr,
                ipv6,
                allow_host_loopback,
            };
            assert_eq!(Policy::parse(&p.describe()), Some(p), "{}", p.describe());
        }
        assert_eq!(Policy::default().describe(), "10.0.2.0/24");
        for bad in ["", "10.0.2.0/24 ipv7", "ten ipv6"] {
            assert_eq!(Policy::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn destinations_are_judged_one_rule_a_row() {
        let plain = Policy::default();
        let open = Policy {
            allow_host_loopback: true,
            ipv6: true,
            ..plain
        };
        let v6 = Policy {
            ipv6: true,
            ..plain
        };
        // (policy, destination) -> verdict
        let rows: [(&Policy, &str, Verdict); 22] = [
            (&plain, "192.0.2.2:5201", host("192.0.2.2:5201")),
            (&plain, "93.184.216.34:443", host("93.184.216.34:443")),
            (&plain, "127.0.0.1:80", Verdict::Inside),
            (&plain, "127.9.9.9:80", Verdict::Inside),
            (&plain, "0.0.0.0:80", Verdict::Inside),
            (&plain, "0.1.2.3:80", Verdict::Inside),
            (&plain, "10.0.2.2:80", Verdict::Inside),
            (&plain, "10.0.2.3:53", Verdict::Inside),
            (&plain, "10.0.3.1:80", host("10.0.3.1:80")),
            (&plain, "169.254.1.1:53", Verdict::Inside),
            (&plain, "224.0.0.251:5353", Verdict::Inside),
            (&plain, "255.255.255.255:67", Verdict::Inside),
            (&plain, "192.0.2.2:0", Verdict::Inside),
            (&plain, "[::1]:80", Verdict::Inside),
            (&plain, "[::]:80", Verdict::Inside),
            (&plain, "[::ffff:127.0.0.1]:80", Verdict::Inside),
            (
                &plain,
                "[::ffff:192.0.2.2]:80",
                host("[::ffff:192.0.2.2]:80"),
            ),
            (&plain, "[::127.0.0.1]:80", Verdict::Inside),
            (&plain, "[fe80::1%2]:80", Verdict::Inside),
            (&v6, "[fd00::3]:53", Verdict::Inside),
            (&open, "10.0.2.2:8999", host("127.0.0.1:8999")),
            (&open, "[fd00::2]:8999", host("[::1]:8999")),
        ];
        for (policy, dest, want) in rows {
            assert_eq!(
                policy.verdict(dest.parse().unwrap()),
                want,
                "{dest} {policy:?}"
            );
        }
        assert_eq!(
            plain.verdict("[2001:db8::2]:80".parse().unwrap()),
            host("[2001:db8::2]:80")
        );
        assert_eq!(
            open.verdict("[::ffff:10.0.2.2]:1".parse().unwrap()),
            host("[::ffff:127.0.0.1]:1")
        );
    }

    #[test]
    fn sockaddr_bytes_round_trip_and_other_families_are_none() {
        for text in ["192.0.2.2:5201", "[2001:db8::2]:443", "[fe80::1%3]:22"] {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(parse_sockaddr(&sockaddr_bytes(addr)), Some(addr), "{text}");
        }
        let unspec = [0u8; 16];
        assert_eq!(parse_sockaddr(&unspec), None);
        let mut unix = (nix::libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        unix.extend(b"/run/x.sock\0");
        assert_eq!(parse_sockaddr(&unix), None);
        let short = &sockaddr_bytes("192.0.2.2:1".parse().unwrap())[..8];
        assert_eq!(parse_sockaddr(short), None, "shorter than sockaddr_in");
        let v6 = sockaddr_bytes("[2001:db8::2]:443".parse().unwrap());
        assert!(parse_sockaddr(&v6[..24]).is_some(), "RFC 2133 size");
    }
}
