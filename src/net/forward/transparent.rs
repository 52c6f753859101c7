//! Keeping a TCP client's own address (`--no-client-address` turns it off): the server inside
//! sees the client's address and port, not 127.0.0.1, as rootlesskit v3's builtin driver does.
//!
//! How: the socket that connects to the server inside is bound to the client's address before
//! it connects. The address is not one of the namespace's, so the socket is IP_TRANSPARENT
//! (which lets a socket bind a non-local address, ip(7); it needs CAP_NET_ADMIN or CAP_NET_RAW
//! in the user namespace that owns the network namespace, which the provider has there as
//! root). The server's replies go to that address: by the main table they would leave through
//! the helper's interface (or fail with EINVAL, a loopback source on another device), so they
//! are routed back to the namespace's loopback, where the transparent socket takes them:
//! - the connecting socket carries the mark [`MARK`] (SO_MARK, same capability), and with
//!   net.ipv4.tcp_fwmark_accept=1 (per network namespace; it covers IPv6 too) the server's
//!   accepted socket takes the mark of the SYN that made it;
//! - `ip rule add fwmark MARK lookup TABLE` and, in TABLE, `local default dev lo`: every
//!   packet of a marked socket is delivered on the namespace's loopback;
//! - net.ipv4.fwmark_reflect=1 (and IPv6's): the kernel's own answers (the RST of a port
//!   nothing listens on, ICMP errors) carry the mark of the packet they answer, so that a
//!   connection to a closed port is refused at once; without it the RST followed the main
//!   table, the connect waited the provider's CONNECT_TIMEOUT, and a server on ::1 only was
//!   tried after the client had given up.
//!
//! Only marked sockets are routed so: the rest of the namespace's traffic, and connections to
//! servers that were not accepted from a marked SYN, are as before. UDP is not kept (nor by
//! rootlesskit v3, its issue #592): a UDP server's reply is not made by an accepted socket, so
//! it carries no mark, and a server bound to 0.0.0.0 picks its source by the main table; its
//! replies would leave the namespace instead of reaching the forwarder.
//!
//! When any of it cannot be set up (no /proc/sys, no capability: a --map=keep-id run), the
//! provider hands out plain sockets and the server sees 127.0.0.1 as before.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{SockaddrStorage, bind, setsockopt, sockopt};

use crate::net::rtnl::Rtnl;

/// The mark of the sockets that connect on a client's behalf ("br" and 1).
pub(super) const MARK: u32 = 0x6272_0001;
/// The routing table of their replies, and the priority of its rule (before the main table's
/// 32766).
const TABLE: u32 = 0x6272;
const PRIORITY: u32 = 0x6272;

/// Inside, in the provider: turn on tcp_fwmark_accept and route marked packets to loopback.
/// IPv6 may be off in the namespace: only IPv4 must work.
pub(super) fn route_replies_to_loopback() -> Result<(), Errno> {
    let sysctl = |name: &str| {
        std::fs::write(format!("/proc/sys/net/{name}"), "1")
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(nix::libc::EIO)))
    };
    sysctl("ipv4/tcp_fwmark_accept")?;
    sysctl("ipv4/fwmark_reflect")?;
    let _ = sysctl("ipv6/fwmark_reflect");
    let lo = nix::net::if_::if_nametoindex("lo")?;
    let mut rtnl = Rtnl::open()?;
    let exists_ok = |r: nix::Result<()>| match r {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(e),
    };
    exists_ok(rtnl.add_local_default(false, lo, TABLE))?;
    exists_ok(rtnl.add_mark_rule(false, MARK, TABLE, PRIORITY))?;
    let _ = rtnl.add_local_default(true, lo, TABLE);
    let _ = rtnl.add_mark_rule(true, MARK, TABLE, PRIORITY);
    Ok(())
}

/// Make `socket` (a new TCP socket inside) one that may bind a client's address: transparent,
/// marked, its address reusable (a connection from the same client address and port may
/// still be in TIME_WAIT inside).
pub(super) fn prepare(socket: &OwnedFd) -> nix::Result<()> {
    setsockopt(socket, sockopt::IpTransparent, &true)?;
    setsockopt(socket, sockopt::Mark, &MARK)?;
    setsockopt(socket, sockopt::ReuseAddr, &true)
}

/// The client's address as the socket inside can take it: IPv4 for an IPv4 socket (a client of
/// a dual-stack listener comes as ::ffff:a.b.c.d), IPv6 for an IPv6 one; else none.
pub(super) fn client_for(client: SocketAddr, v6_socket: bool) -> Option<SocketAddr> {
    let client = match client {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => client,
        },
        v4 => v4,
    };
    (client.is_ipv6() == v6_socket).then_some(client)
}

/// Bind `socket` (prepared, or a plain one, which fails for an address not of the namespace)
/// to the client's address and port, else to its address alone (the port is taken inside),
/// else leave it unbound: the connection is made all the same, from the namespace's address.
/// Whether the address was kept.
pub(super) fn bind_to_client(socket: &OwnedFd, client: SocketAddr) -> bool {
    let fd = socket.as_raw_fd();
    if bind(fd, &SockaddrStorage::from(client)).is_ok() {
        return true;
    }
    bind(fd, &SockaddrStorage::from(SocketAddr::new(client.ip(), 0))).is_ok()
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::client_for;

    #[test]
    fn client_addresses_by_family() {
        let v4: SocketAddr = "192.0.2.3:40000".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:192.0.2.3]:40000".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::3]:40000".parse().unwrap();
        for (client, v6_socket, expected) in [
            (v4, false, Some(v4)),
            (mapped, false, Some(v4)),
            (v6, false, None),
            (v6, true, Some(v6)),
            (v4, true, None),
        ] {
            assert_eq!(
                client_for(client, v6_socket),
                expected,
                "{client} {v6_socket}"
            );
        }
    }
}
