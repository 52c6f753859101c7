//! `--cidr`, `--ipv6` and `--dns`: the addresses of the connected interface, its gateway and
//! the resolver that the generated resolv.conf names. Pure: parsing and the helpers' arguments.
//!
//! slirp4netns's network is 10.0.2.0/24 unless told otherwise, which clashes with the networks
//! some users are on (VPNs, office LANs, other user-mode networks). Both helpers follow the
//! same plan within a network: the namespace is NET+100, the gateway (the host, when host
//! loopback is allowed) NET+2, slirp4netns's DNS forwarder NET+3, as slirp4netns numbers them.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Driver;

/// An IPv4 network for the connected interface: `--cidr=NET/PREFIX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: Ipv4Addr,
    prefix: u8,
}

/// slirp4netns's network when none is given.
pub const DEFAULT_CIDR: Cidr = Cidr {
    net: Ipv4Addr::new(10, 0, 2, 0),
    prefix: 24,
};

/// The host numbers inside the network: the namespace's own address, the gateway, the DNS
/// forwarder (slirp4netns's fixed plan, which pasta is given too).
const GUEST: u32 = 100;
const GATEWAY: u32 = 2;
const DNS: u32 = 3;

/// slirp4netns's IPv6 network with `--enable-ipv6` (it has no option to change it).
const SLIRP_V6_GUEST: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100);
const SLIRP_V6_DNS: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3);
const SLIRP_V6_GATEWAY: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

/// slirp4netns's IPv6 address for the namespace and its gateway.
pub fn slirp4netns_ipv6() -> (Ipv6Addr, Ipv6Addr) {
    (SLIRP_V6_GUEST, SLIRP_V6_GATEWAY)
}

impl Cidr {
    /// Parse `A.B.C.D/N`. The network must hold host number 100 (N at most 25), have no host
    /// bits set, and be an ordinary unicast network.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let shape = || format!("--cidr={text}: expected NET/PREFIX, e.g. 10.42.0.0/24");
        let (net, prefix) = text.split_once('/').ok_or_else(shape)?;
        let net: Ipv4Addr = net.parse().map_err(|_| shape())?;
        let prefix: u8 = prefix.parse().map_err(|_| shape())?;
        if !(1..=25).contains(&prefix) {
            return Err(format!(
                "--cidr={text}: the prefix must be 1 to 25 (the namespace takes host number \
                 {GUEST} of the network)"
            ));
        }
        let mask = u32::MAX << (32 - prefix);
        if u32::from(net) & !mask != 0 {
            let base = Ipv4Addr::from(u32::from(net) & mask);
            return Err(format!(
                "--cidr={text}: host bits are set (the network is {base}/{prefix})"
            ));
        }
        if net.is_loopback()
            || net.is_multicast()
            || net.is_link_local()
            || net.is_unspecified()
            || net.octets()[0] >= 240
        {
            return Err(format!(
                "--cidr={text}: not a unicast network (loopback, link-local, multicast and \
                 reserved ranges are refused)"
            ));
        }
        Ok(Cidr { net, prefix })
    }

    fn host(self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.net) + n)
    }

    pub fn prefix(self) -> u8 {
        self.prefix
    }

    /// The namespace's address.
    pub fn guest(self) -> Ipv4Addr {
        self.host(GUEST)
    }

    /// The gateway: the host's side.
    pub fn gateway(self) -> Ipv4Addr {
        self.host(GATEWAY)
    }

    /// slirp4netns's DNS forwarder.
    pub fn dns(self) -> Ipv4Addr {
        self.host(DNS)
    }

    /// Whether `ip` is in this network.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - self.prefix);
        u32::from(ip) & mask == u32::from(self.net)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// Parse `--dns=IP`.
pub fn parse_dns(text: &str) -> Result<IpAddr, String> {
    text.parse()
        .map_err(|_| format!("--dns={text}: not an IP address"))
}

/// What `--cidr`, `--ipv6` and `--dns` ask for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Addressing {
    /// None: the helper's default (slirp4netns 10.0.2.0/24; pasta copies the host's).
    pub cidr: Option<Cidr>,
    /// IPv6 inside: slirp4netns's --enable-ipv6 (pasta has it whenever the host has it).
    pub ipv6: bool,
    /// The resolvers the generated resolv.conf names instead of the helper's forwarder.
    pub dns: Vec<IpAddr>,
}

impl Addressing {
    /// From the options as given: `--cidr`, `--ipv6`, each `--dns`.
    pub fn from_options(cidr: Option<&str>, ipv6: bool, dns: &[String]) -> Result<Self, String> {
        Ok(Addressing {
            cidr: cidr.map(Cidr::parse).transpose()?,
            ipv6,
            dns: dns.iter().map(|d| parse_dns(d)).collect::<Result<_, _>>()?,
        })
    }

    /// The resolvers named inside: `--dns`, else the helper's own forwarder(s).
    pub fn nameservers(&self, driver: Driver) -> Vec<IpAddr> {
        if !self.dns.is_empty() {
            return self.dns.clone();
        }
        match driver {
            Driver::Slirp4netns => {
                let mut v = vec![IpAddr::V4(self.cidr.unwrap_or(DEFAULT_CIDR).dns())];
                if self.ipv6 {
                    v.push(IpAddr::V6(SLIRP_V6_DNS));
                }
                v
            }
            Driver::Pasta => vec![IpAddr::V4(PASTA_DNS)],
        }
    }

    /// The resolv.conf bound over /etc/resolv.conf inside.
    pub fn resolv_conf(&self, driver: Driver) -> String {
        let mut text = format!(
            "# generated by become-root for --net={}\n",
            driver.program()
        );
        for ip in self.nameservers(driver) {
            text.push_str(&format!("nameserver {ip}\n"));
        }
        text
    }

    /// The helper's arguments for these settings.
    pub fn helper_args(&self, driver: Driver) -> Vec<String> {
        let mut args = Vec::new();
        match driver {
            Driver::Slirp4netns => {
                if let Some(cidr) = self.cidr {
                    args.push(format!("--cidr={cidr}"));
                }
                if self.ipv6 {
                    args.push("--enable-ipv6".into());
                }
            }
            Driver::Pasta => {
                if let Some(cidr) = self.cidr {
                    args.extend([
                        "--address".into(),
                        cidr.guest().to_string(),
                        "--netmask".into(),
                        cidr.prefix().to_string(),
                        "--gateway".into(),
                        cidr.gateway().to_string(),
                    ]);
                }
            }
        }
        args
    }

    /// One line for --verbose and --check: the addresses inside, as far as they are known
    /// before the helper runs.
    pub fn describe(&self, driver: Driver) -> String {
        let v4 = match (driver, self.cidr) {
            (_, Some(c)) => format!("{}/{} via {}", c.guest(), c.prefix(), c.gateway()),
            (Driver::Slirp4netns, None) => {
                let c = DEFAULT_CIDR;
                format!("{}/{} via {}", c.guest(), c.prefix(), c.gateway())
            }
            (Driver::Pasta, None) => "the host's address and gateway".into(),
        };
        let v6 = match (driver, self.ipv6) {
            (Driver::Slirp4netns, true) => format!(", IPv6 {SLIRP_V6_GUEST}/64"),
            (Driver::Slirp4netns, false) => ", no IPv6 (--ipv6 adds it)".into(),
            (Driver::Pasta, _) => ", IPv6 when the host has it".into(),
        };
        let dns: Vec<String> = self
            .nameservers(driver)
            .iter()
            .map(IpAddr::to_string)
            .collect();
        format!("{} {v4}{v6}, DNS {}", driver.program(), dns.join(" "))
    }
}

/// Where pasta answers DNS: it copies the host's addresses, and a link-local address cannot
/// collide with them.
pub const PASTA_DNS: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

#[cfg(test)]
mod tests {
    use super::{Addressing, Cidr, Driver, parse_dns};

    #[test]
    fn cidr_rules() {
        for (text, ok) in [
            (
                "10.42.0.0/24",
                Some(("10.42.0.100", "10.42.0.2", "10.42.0.3")),
            ),
            (
                "192.168.77.0/25",
                Some(("192.168.77.100", "192.168.77.2", "192.168.77.3")),
            ),
            (
                "172.30.0.0/16",
                Some(("172.30.0.100", "172.30.0.2", "172.30.0.3")),
            ),
            ("10.42.0.0/26", None),   // no room for .100
            ("10.42.0.1/24", None),   // host bits
            ("10.42.0.0", None),      // no prefix
            ("10.42.0.0/x", None),    // not a number
            ("10.42.0.0/0", None),    // the whole space
            ("127.0.0.0/8", None),    // loopback
            ("169.254.0.0/16", None), // link-local
            ("224.0.0.0/8", None),    // multicast
            ("fd00::/64", None),      // IPv4 only
        ] {
            let got = Cidr::parse(text);
            match ok {
                Some((guest, gw, dns)) => {
                    let c = got.unwrap_or_else(|e| panic!("{text}: {e}"));
                    assert_eq!(c.guest().to_string(), guest, "{text}");
                    assert_eq!(c.gateway().to_string(), gw, "{text}");
                    assert_eq!(c.dns().to_string(), dns, "{text}");
                    assert_eq!(c.to_string(), text);
                }
                None => assert!(got.is_err(), "{text}: {got:?}"),
            }
        }
        assert!(
            Cidr::parse("10.42.0.1/24")
                .unwrap_err()
                .contains("10.42.0.0/24")
        );
    }

    #[test]
    fn resolv_conf_and_arguments() {
        let default = Addressing::default();
        assert!(
            default
                .resolv_conf(Driver::Slirp4netns)
                .ends_with("\nnameserver 10.0.2.3\n")
        );
        assert!(
            default
                .resolv_conf(Driver::Pasta)
                .ends_with("\nnameserver 169.254.1.1\n")
        );
        assert!(default.helper_args(Driver::Slirp4netns).is_empty());
        assert!(default.helper_args(Driver::Pasta).is_empty());
        let asked = Addressing {
            cidr: Some(Cidr::parse("10.42.0.0/24").unwrap()),
            ipv6: true,
            dns: Vec::new(),
        };
        assert_eq!(
            asked.helper_args(Driver::Slirp4netns),
            ["--cidr=10.42.0.0/24", "--enable-ipv6"]
        );
        assert_eq!(
            asked.helper_args(Driver::Pasta).join(" "),
            "--address 10.42.0.100 --netmask 24 --gateway 10.42.0.2"
        );
        assert!(
            asked
                .resolv_conf(Driver::Slirp4netns)
                .ends_with("\nnameserver 10.42.0.3\nnameserver fd00::3\n")
        );
        let dns = Addressing {
            dns: vec![
                parse_dns("192.0.2.53").unwrap(),
                parse_dns("2001:db8::53").unwrap(),
            ],
            ..asked
        };
        for driver in [Driver::Slirp4netns, Driver::Pasta] {
            assert!(
                dns.resolv_conf(driver)
                    .ends_with("\nnameserver 192.0.2.53\nnameserver 2001:db8::53\n")
            );
        }
        assert!(parse_dns("example.com").is_err());
    }
}
