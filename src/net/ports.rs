//! `-p/--publish` specifications: `[HOST_IP:]HOST_PORT:NS_PORT[/tcp|/udp]`. Pure: parsing and
//! checking only; listening and forwarding live in the forwarder.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// A transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// One published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish {
    /// Where the host side listens (127.0.0.1 unless given).
    pub host_ip: IpAddr,
    /// 0 asks the kernel for a free port.
    pub host_port: u16,
    /// Where connections go inside the namespace (on its loopback).
    pub ns_port: u16,
    pub proto: Proto,
}

impl fmt::Display for Publish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            IpAddr::V6(ip) => write!(f, "[{ip}]")?,
            IpAddr::V4(ip) => write!(f, "{ip}")?,
        }
        write!(f, ":{}:{}/{}", self.host_port, self.ns_port, self.proto)
    }
}

/// Why a specification is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("{spec}: expected [HOST_IP:]HOST_PORT:NS_PORT[/tcp|/udp]")]
    Shape { spec: String },
    #[error("{spec}: unknown protocol '{proto}' (tcp or udp)")]
    Proto { spec: String, proto: String },
    #[error("{spec}: '{port}' is not a port number (1-65535)")]
    Port { spec: String, port: String },
    #[error("{spec}: the port inside the namespace cannot be 0")]
    NsPortZero { spec: String },
    #[error("{spec}: '{ip}' is not an IP address")]
    Ip { spec: String, ip: String },
    #[error("{spec}: an IPv6 address must be in brackets, e.g. [::1]:8080:80")]
    Ipv6Brackets { spec: String },
    #[error("{spec}: publishes {host} twice")]
    Duplicate { spec: String, host: String },
}

/// Parse one specification.
pub fn parse(spec: &str) -> Result<Publish, SpecError> {
    let shape = || SpecError::Shape { spec: spec.into() };
    let (rest, proto) = match spec.rsplit_once('/') {
        None => (spec, Proto::Tcp),
        Some((rest, "tcp")) => (rest, Proto::Tcp),
        Some((rest, "udp")) => (rest, Proto::Udp),
        Some((_, other)) => {
            return Err(SpecError::Proto {
                spec: spec.into(),
                proto: other.into(),
            });
        }
    };
    let (host_ip, ports) = if let Some(bracketed) = rest.strip_prefix('[') {
        let (ip, ports) = bracketed.split_once("]:").ok_or_else(shape)?;
        let ip: std::net::Ipv6Addr = ip.parse().map_err(|_| SpecError::Ip {
            spec: spec.into(),
            ip: ip.into(),
        })?;
        (IpAddr::V6(ip), ports)
    } else {
        match rest.matches(':').count() {
            1 => (IpAddr::V4(Ipv4Addr::LOCALHOST), rest),
            2 => {
                let (ip, ports) = rest.split_once(':').ok_or_else(shape)?;
                let ip: Ipv4Addr = ip.parse().map_err(|_| SpecError::Ip {
                    spec: spec.into(),
                    ip: ip.into(),
                })?;
                (IpAddr::V4(ip), ports)
            }
            n if n > 2 => return Err(SpecError::Ipv6Brackets { spec: spec.into() }),
            _ => return Err(shape()),
        }
    };
    let (host, ns) = ports.split_once(':').ok_or_else(shape)?;
    let port = |text: &str| -> Result<u16, SpecError> {
        let bad = || SpecError::Port {
            spec: spec.into(),
            port: text.into(),
        };
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        text.parse::<u16>().map_err(|_| bad())
    };
    let host_port = port(host)?;
    let ns_port = port(ns)?;
    if ns_port == 0 {
        return Err(SpecError::NsPortZero { spec: spec.into() });
    }
    Ok(Publish {
        host_ip,
        host_port,
        ns_port,
        proto,
    })
}

/// Parse every specification and refuse two that claim the same host address, port and
/// protocol (port 0 never clashes: each gets its own free port).
pub fn parse_all(specs: &[String]) -> Result<Vec<Publish>, SpecError> {
    let mut out: Vec<Publish> = Vec::with_capacity(specs.len());
    for spec in specs {
        let p = parse(spec)?;
        let clash = out.iter().any(|q| {
            p.host_port != 0
                && q.host_port == p.host_port
                && q.proto == p.proto
                && (q.host_ip == p.host_ip
                    || q.host_ip.is_unspecified()
                    || p.host_ip.is_unspecified())
        });
        if clash {
            let host = format!("{}:{}/{}", p.host_ip, p.host_port, p.proto);
            return Err(SpecError::Duplicate {
                spec: spec.clone(),
                host,
            });
        }
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::{Proto, Publish, parse, parse_all};

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn good_specs() {
        let lo = v4(127, 0, 0, 1);
        let rows: &[(&str, IpAddr, u16, u16, Proto)] = &[
            ("8080:80", lo, 8080, 80, Proto::Tcp),
            ("8080:80/tcp", lo, 8080, 80, Proto::Tcp),
            ("5353:53/udp", lo, 5353, 53, Proto::Udp),
            ("0:80", lo, 0, 80, Proto::Tcp),
            ("0.0.0.0:8080:80", v4(0, 0, 0, 0), 8080, 80, Proto::Tcp),
            (
                "192.0.2.2:1:65535/udp",
                v4(192, 0, 2, 2),
                1,
                65535,
                Proto::Udp,
            ),
            (
                "[::1]:8080:80",
                IpAddr::V6(Ipv6Addr::LOCALHOST),
                8080,
                80,
                Proto::Tcp,
            ),
            (
                "[::]:0:80/udp",
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                0,
                80,
                Proto::Udp,
            ),
        ];
        for (spec, ip, host, ns, proto) in rows {
            let want = Publish {
                host_ip: *ip,
                host_port: *host,
                ns_port: *ns,
                proto: *proto,
            };
            assert_eq!(parse(spec), Ok(want), "{spec}");
        }
    }

    #[test]
    fn bad_specs() {
        let rows: &[(&str, &str)] = &[
            ("abc", "expected [HOST_IP:]HOST_PORT:NS_PORT"),
            ("80", "expected [HOST_IP:]HOST_PORT:NS_PORT"),
            ("", "expected"),
            ("8080:0", "cannot be 0"),
            ("8080:65536", "'65536' is not a port number"),
            ("65536:80", "'65536' is not a port number"),
            ("8080:abc", "'abc' is not a port number"),
            ("8080:+80", "'+80' is not a port number"),
            ("8080:-1", "'-1' is not a port number"),
            (":80", "'' is not a port number"),
            ("8080:80/sctp", "unknown protocol 'sctp'"),
            ("8080:80/TCP", "unknown protocol 'TCP'"),
            ("::1:8080:80", "must be in brackets"),
            ("[::1:8080:80", "expected"),
            ("[zz]:8080:80", "'zz' is not an IP address"),
            ("300.1.1.1:8080:80", "'300.1.1.1' is not an IP address"),
            ("localhost:8080:80", "'localhost' is not an IP address"),
        ];
        for (spec, want) in rows {
            let err = parse(spec).expect_err(spec).to_string();
            assert!(err.contains(want), "{spec}: {err}");
            assert!(
                err.starts_with(&format!("{spec}: ")),
                "names the spec: {err}"
            );
        }
    }

    #[test]
    fn duplicates() {
        let specs = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(parse_all(&specs(&["8080:80", "8081:80", "8080:80/udp"])).is_ok());
        assert!(
            parse_all(&specs(&["0:80", "0:80"])).is_ok(),
            "port 0 never clashes"
        );
        let err = parse_all(&specs(&["8080:80", "8080:81"])).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
        let err = parse_all(&specs(&["0.0.0.0:8080:80", "8080:81"])).unwrap_err();
        assert!(
            err.to_string().contains("twice"),
            "the wildcard covers 127.0.0.1: {err}"
        );
    }

    #[test]
    fn display_round_trips() {
        for spec in ["127.0.0.1:8080:80/tcp", "[::1]:0:53/udp"] {
            assert_eq!(parse(spec).unwrap().to_string(), spec);
        }
    }
}
