//! What one client may hold of the forwarder: its TCP connections per client address, and how
//! long a connection may stay idle. Without them any local user could hold a published port:
//! the forwarder's descriptors are bounded by the open-files limit, and every idle connection
//! keeps two of them.
//!
//! The limit per address bounds what one host can hold of a port published to the network;
//! a local user can connect from any address of 127.0.0.0/8, and is bounded by the
//! open-files limit and the idle timeout alone. The idle timeout frees what clients abandoned
//! (a peer gone without a FIN); a client that keeps its connections busy keeps them.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// TCP connections one client address may hold at once, over every published port (those
/// still being connected inside included). A new one beyond it is reset at once.
pub const PER_CLIENT: u32 = 1024;
/// How long a TCP connection may stay idle (no byte either way) before both of its ends are
/// reset: two hours, pasta's timeout for its TCP connections (ACT_TIMEOUT) and the time
/// after which the kernel's TCP keepalive first probes (tcp_keepalive_time).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(2 * 60 * 60);
/// The environment variable that sets another idle timeout, in seconds (0: none).
pub const IDLE_TIMEOUT_VAR: &str = "BECOME_ROOT_PORT_IDLE_TIMEOUT";
/// A line about a client over its limit comes at most this often.
const SAY_INTERVAL: Duration = Duration::from_secs(60);

/// The idle timeout `value` of [`IDLE_TIMEOUT_VAR`] asks for: unset or empty is the default,
/// `0` none; anything but a whole number of seconds is refused (with why).
pub fn idle_timeout(value: Option<&OsStr>) -> Result<Option<Duration>, String> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(Some(IDLE_TIMEOUT));
    };
    let seconds: u64 = value
        .to_str()
        .and_then(|v| v.parse().ok())
        .filter(|&s| s <= u64::from(u32::MAX))
        .ok_or_else(|| {
            format!(
                "{IDLE_TIMEOUT_VAR}={}: not a number of seconds",
                value.to_string_lossy()
            )
        })?;
    Ok((seconds > 0).then(|| Duration::from_secs(seconds)))
}

/// The connections each client address holds, and when a client over its limit was last
/// reported.
#[derive(Default)]
pub(super) struct Clients {
    held: HashMap<IpAddr, u32>,
    said: Option<Instant>,
}

impl Clients {
    /// Count a new connection of `client`, unless it holds [`PER_CLIENT`] already (false).
    pub(super) fn admit(&mut self, client: IpAddr) -> bool {
        let held = self.held.entry(client).or_default();
        if *held >= PER_CLIENT {
            return false;
        }
        *held += 1;
        true
    }

    /// A connection of `client` is gone.
    pub(super) fn left(&mut self, client: IpAddr) {
        if let Some(held) = self.held.get_mut(&client) {
            *held -= 1;
            if *held == 0 {
                self.held.remove(&client);
            }
        }
    }

    /// Whether to say now that a client is over its limit: at most once a [`SAY_INTERVAL`].
    pub(super) fn say_now(&mut self, now: Instant) -> bool {
        match self.said {
            Some(said) if now < said + SAY_INTERVAL => false,
            _ => {
                self.said = Some(now);
                true
            }
        }
    }
}

/// A client's address as the limit counts it: an IPv4 client of an IPv6 socket
/// (::ffff:a.b.c.d) is the IPv4 address.
pub(super) fn client_of(addr: std::net::SocketAddr) -> IpAddr {
    addr.ip().to_canonical()
}

/// The line said when `client` is over its limit.
pub(super) fn over_limit(client: IpAddr) -> String {
    format!(
        "become-root: published ports: {client} holds {PER_CLIENT} connections, the most one \
         client address may; its new ones are reset (said at most once a minute)"
    )
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::net::IpAddr;
    use std::time::{Duration, Instant};

    use super::{Clients, PER_CLIENT, client_of, idle_timeout};

    #[test]
    fn the_idle_timeout_variable() {
        // (the value, the timeout in seconds: None for none, Err for refused)
        type Row = (Option<&'static str>, Result<Option<u64>, ()>);
        let rows: &[Row] = &[
            (None, Ok(Some(7200))),
            (Some(""), Ok(Some(7200))),
            (Some("30"), Ok(Some(30))),
            (Some("0"), Ok(None)),
            (Some("-1"), Err(())),
            (Some("1.5"), Err(())),
            (Some("10s"), Err(())),
            (Some("99999999999"), Err(())),
        ];
        for (value, want) in rows {
            let got = idle_timeout(value.map(OsStr::new));
            let got = got.map(|d| d.map(|d| d.as_secs())).map_err(|_| ());
            assert_eq!(&got, want, "{value:?}");
        }
        let why = idle_timeout(Some(OsStr::new("soon"))).unwrap_err();
        assert_eq!(
            why,
            "BECOME_ROOT_PORT_IDLE_TIMEOUT=soon: not a number of seconds"
        );
    }

    #[test]
    fn a_client_holds_at_most_its_share_and_gets_it_back() {
        let mut clients = Clients::default();
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "::1".parse().unwrap());
        for _ in 0..PER_CLIENT {
            assert!(clients.admit(a));
        }
        assert!(!clients.admit(a), "one more than PER_CLIENT");
        assert!(clients.admit(b), "another address is counted apart");
        clients.left(a);
        assert!(clients.admit(a), "a connection gone makes room");
        for _ in 0..PER_CLIENT {
            clients.left(a);
        }
        clients.left(b);
        assert!(
            clients.held.is_empty(),
            "addresses without connections are forgotten"
        );
    }

    #[test]
    fn an_ipv4_client_of_an_ipv6_socket_counts_as_its_ipv4_address() {
        let mapped: std::net::SocketAddr = "[::ffff:127.0.0.2]:4000".parse().unwrap();
        assert_eq!(client_of(mapped), "127.0.0.2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_client_over_its_limit_is_said_at_most_once_a_minute() {
        let mut clients = Clients::default();
        let t0 = Instant::now();
        assert!(clients.say_now(t0));
        assert!(!clients.say_now(t0 + Duration::from_secs(59)));
        assert!(clients.say_now(t0 + Duration::from_secs(60)));
    }
}
