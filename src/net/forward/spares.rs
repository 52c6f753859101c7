//! The pool of spare TCP sockets made inside: with one at hand, a new connection is an accept
//! and a connect in become-root, with no round trip through the provider.

use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;

use super::{INSIDE, SPARES};

/// Sockets made inside and not connected, and how many more are on their way. Refilled once
/// half of it is used, so that the provider wakes once for every SPARES / 2 connections.
#[derive(Default)]
pub(super) struct Spares {
    pool: Vec<OwnedFd>,
    asked: usize,
}

impl Spares {
    /// The descriptors the pool holds.
    pub(super) fn len(&self) -> usize {
        self.pool.len()
    }

    pub(super) fn take(&mut self) -> Option<OwnedFd> {
        self.pool.pop()
    }

    /// How many to ask the provider for now.
    pub(super) fn wanted(&self) -> usize {
        match self.pool.len() + self.asked {
            n if n > SPARES / 2 => 0,
            n => SPARES - n,
        }
    }

    /// One was asked for.
    pub(super) fn asked(&mut self) {
        self.asked += 1;
    }

    /// The provider's answer to one: a socket, or none (it could not make one).
    pub(super) fn arrived(&mut self, socket: Option<OwnedFd>) {
        self.asked = self.asked.saturating_sub(1);
        self.pool.extend(socket);
    }
}

/// Connect a spare socket to `port` on the namespace's 127.0.0.1: the connection, if it is
/// made by the time connect(2) returns. On loopback it is, unless the server's accept queue is
/// full: the handshake runs in the softirq of connect's own transmit, and the SYN-ACK waits in
/// the socket's backlog until connect releases the socket. Otherwise `None`: the socket
/// closes (a connection still in SYN-SENT sends nothing) and the caller asks the provider,
/// which tries ::1 too and waits for a slow server.
///
/// With `client`, the socket is first bound to the client's address where it can be
/// (transparent.rs; an IPv6 client cannot be, on this IPv4 socket).
pub(super) fn connect_now(
    spare: OwnedFd,
    port: u16,
    client: Option<std::net::SocketAddr>,
) -> Option<TcpStream> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::socket::{SockaddrIn, connect};
    let std::net::IpAddr::V4(ip) = INSIDE[0] else {
        return None;
    };
    if let Some(client) = client.and_then(|c| super::transparent::client_for(c, false)) {
        super::transparent::bind_to_client(&spare, client);
    }
    let addr = SockaddrIn::from(std::net::SocketAddrV4::new(ip, port));
    match connect(spare.as_raw_fd(), &addr) {
        Ok(()) => {}
        Err(Errno::EINPROGRESS) => {
            let mut fds = [PollFd::new(spare.as_fd(), PollFlags::POLLOUT)];
            let done = poll(&mut fds, PollTimeout::ZERO).is_ok()
                && fds[0].revents() == Some(PollFlags::POLLOUT); // no POLLERR, no POLLHUP
            if !done {
                return None;
            }
        }
        Err(_) => return None,
    }
    Some(TcpStream::from(spare))
}
