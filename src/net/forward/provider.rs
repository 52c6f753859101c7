//! The socket provider, inside the namespace: the messages of its channel and its poll(2)
//! loop, which connects to ports on the namespace's loopback and passes the sockets back.

use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Instant;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, SockaddrStorage, recvmsg, sendmsg,
    setsockopt, sockopt,
};

use super::transparent;
use super::{CONNECT_TIMEOUT, INSIDE};
use crate::net::ports::Proto;

/// A request to the provider, one SEQPACKET message of 8 bytes: the id (u32, little-endian),
/// what is wanted (0 a TCP connection, 1 a UDP socket, 2 a spare TCP socket), a zero, the
/// port inside (u16, big-endian; 0 for a spare). A TCP connection for a client whose address
/// is to be kept (transparent.rs) has 19 bytes more: 4 or 6 (the family), the client's port
/// (u16, big-endian) and its address (16 bytes, an IPv4 one in the first 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Request {
    pub(super) id: u32,
    pub(super) wanted: Wanted,
    pub(super) port: u16,
    pub(super) client: Option<SocketAddr>,
}

/// What a request asks the provider for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wanted {
    /// A TCP socket connected to the port (127.0.0.1, else ::1).
    Connection(Proto),
    /// An IPv4 TCP socket made inside and not connected, which become-root connects itself
    /// when a client comes. A socket stays in the network namespace it was made in (sk_alloc
    /// takes the creator's, and connect(2) routes and looks up the address in sock_net()),
    /// so become-root's connect to 127.0.0.1 reaches the namespace's loopback, as the
    /// provider's would, and the connection needs no round trip through the provider (the
    /// pool in forwarder.rs).
    Spare,
}

impl Request {
    pub(super) fn encode(self) -> Vec<u8> {
        let [i0, i1, i2, i3] = self.id.to_le_bytes();
        let [p0, p1] = self.port.to_be_bytes();
        let wanted = match self.wanted {
            Wanted::Connection(Proto::Tcp) => 0,
            Wanted::Connection(Proto::Udp) => 1,
            Wanted::Spare => 2,
        };
        let mut bytes = vec![i0, i1, i2, i3, wanted, 0, p0, p1];
        if let Some(client) = self.client {
            let mut address = [0u8; 16];
            let family = match client.ip() {
                IpAddr::V4(ip) => {
                    address[..4].copy_from_slice(&ip.octets());
                    4
                }
                IpAddr::V6(ip) => {
                    address.copy_from_slice(&ip.octets());
                    6
                }
            };
            bytes.push(family);
            bytes.extend(client.port().to_be_bytes());
            bytes.extend(address);
        }
        bytes
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<Request> {
        let (&[i0, i1, i2, i3, wanted, 0, p0, p1], rest) = bytes.split_first_chunk::<8>()? else {
            return None;
        };
        let port = u16::from_be_bytes([p0, p1]);
        let wanted = match (wanted, port) {
            (0, _) => Wanted::Connection(Proto::Tcp),
            (1, _) => Wanted::Connection(Proto::Udp),
            (2, 0) => Wanted::Spare,
            _ => return None,
        };
        let client = match (rest, wanted) {
            ([], _) => None,
            ([family, c0, c1, address @ ..], Wanted::Connection(Proto::Tcp))
                if address.len() == 16 =>
            {
                let ip = match family {
                    4 => IpAddr::from(<[u8; 4]>::try_from(&address[..4]).ok()?),
                    6 => IpAddr::from(<[u8; 16]>::try_from(address).ok()?),
                    _ => return None,
                };
                Some(SocketAddr::new(ip, u16::from_be_bytes([*c0, *c1])))
            }
            _ => return None,
        };
        Some(Request {
            id: u32::from_le_bytes([i0, i1, i2, i3]),
            wanted,
            port,
            client,
        })
    }
}

/// The provider's answer, 8 bytes: the request's id (u32) and an errno (i32, both
/// little-endian), 0 with the connected socket attached (SCM_RIGHTS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Reply {
    pub(super) id: u32,
    pub(super) errno: i32,
}

impl Reply {
    pub(super) fn encode(self) -> [u8; 8] {
        let [i0, i1, i2, i3] = self.id.to_le_bytes();
        let [e0, e1, e2, e3] = self.errno.to_le_bytes();
        [i0, i1, i2, i3, e0, e1, e2, e3]
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<Reply> {
        let &[i0, i1, i2, i3, e0, e1, e2, e3] = bytes else {
            return None;
        };
        Some(Reply {
            id: u32::from_le_bytes([i0, i1, i2, i3]),
            errno: i32::from_le_bytes([e0, e1, e2, e3]),
        })
    }
}

// ---- the socket provider, inside the namespace ------------------------------------------------

/// A TCP connection inside still being made.
struct Attempt {
    id: u32,
    port: u16,
    /// Index into [`INSIDE`] of the address being tried.
    address: usize,
    /// The client whose address the connection keeps, where it can.
    client: Option<SocketAddr>,
    socket: OwnedFd,
    deadline: Instant,
}

/// The socket provider, inside the namespace: serve requests until become-root's end closes.
/// Every request is answered, in the order connections complete: a connection that takes
/// long (a server that does not accept) holds up no other.
///
/// With `keep_clients`, it first routes the replies of connections that keep a client's
/// address (transparent.rs); if it cannot, its sockets are plain ones.
pub fn serve_sockets(channel: OwnedFd, keep_clients: bool) -> ! {
    let mut inside = Inside {
        transparent: keep_clients && transparent::route_replies_to_loopback().is_ok(),
        ..Inside::default()
    };
    loop {
        let (requests, settled) = inside.wait(&channel);
        inside.settle(&settled, Instant::now());
        // Either fails when become-root is gone (its end closed) or spoke nonsense.
        if requests && inside.take_requests(&channel).is_err() {
            crate::sys::exit_now(0);
        }
        if inside.answer(&channel).is_err() {
            crate::sys::exit_now(0);
        }
    }
}

/// The provider's work in hand: connections inside being made, answers not yet sent.
#[derive(Default)]
struct Inside {
    attempts: Vec<Attempt>,
    outbox: VecDeque<(Reply, Option<OwnedFd>)>,
    /// Its TCP sockets may bind a client's address (transparent.rs).
    transparent: bool,
}

impl Inside {
    /// Wait for requests, for a connection to complete or fail, or for its deadline; and,
    /// with answers waiting, for room in the channel. Returns whether requests may have come,
    /// and which attempts are settled.
    fn wait(&self, channel: &OwnedFd) -> (bool, Vec<bool>) {
        let timeout = match self.attempts.iter().map(|a| a.deadline).min() {
            None => PollTimeout::NONE,
            Some(deadline) => millis_until(deadline, Instant::now()),
        };
        let mut want = PollFlags::POLLIN;
        if !self.outbox.is_empty() {
            want |= PollFlags::POLLOUT;
        }
        let mut fds = vec![PollFd::new(channel.as_fd(), want)];
        let connecting = self.attempts.iter().map(|a| a.socket.as_fd());
        fds.extend(connecting.map(|fd| PollFd::new(fd, PollFlags::POLLOUT)));
        if let Err(e) = poll(&mut fds, timeout)
            && e != Errno::EINTR
        {
            crate::sys::exit_now(0);
        }
        let happened = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        (happened(&fds[0]), fds[1..].iter().map(happened).collect())
    }

    /// Answer the attempts that completed, and go on to the next address with those that
    /// failed or timed out.
    fn settle(&mut self, settled: &[bool], now: Instant) {
        // Backwards, so that swap_remove moves only entries already looked at.
        for i in (0..self.attempts.len()).rev() {
            if !settled[i] && self.attempts[i].deadline > now {
                continue;
            }
            let a = self.attempts.swap_remove(i);
            let result = match settled[i] {
                true => match nix::sys::socket::getsockopt(&a.socket, sockopt::SocketError) {
                    Ok(0) => Ok(()),
                    Ok(errno) => Err(Errno::from_raw(errno)),
                    Err(e) => Err(e),
                },
                false => Err(Errno::ETIMEDOUT),
            };
            match result {
                Ok(()) => self.outbox.push_back((reply(a.id, 0), Some(a.socket))),
                Err(e) => self.connect_tcp(a.id, a.port, a.client, a.address + 1, e),
            }
        }
    }

    /// Read every request waiting, and start each.
    fn take_requests(&mut self, channel: &OwnedFd) -> Result<(), ()> {
        loop {
            let mut bytes = [0u8; 32];
            let mut iov = [IoSliceMut::new(&mut bytes)];
            let flags = MsgFlags::MSG_DONTWAIT;
            let n = match recvmsg::<()>(channel.as_raw_fd(), &mut iov, None, flags) {
                Ok(msg) => msg.bytes,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Ok(()),
                Err(_) => return Err(()),
            };
            // (0 bytes: become-root's end closed)
            let request = Request::decode(&bytes[..n]).ok_or(())?;
            let answer = |result: nix::Result<OwnedFd>| match result {
                Ok(socket) => (reply(request.id, 0), Some(socket)),
                Err(e) => (reply(request.id, e as i32), None),
            };
            match request.wanted {
                Wanted::Connection(Proto::Tcp) => {
                    let client = request.client.filter(|_| self.transparent);
                    self.connect_tcp(request.id, request.port, client, 0, Errno::ECONNREFUSED)
                }
                Wanted::Connection(Proto::Udp) => {
                    let socket =
                        connect_udp(request.port).map_err(|e| Errno::from_raw(errno_of(&e)));
                    self.outbox.push_back(answer(socket));
                }
                Wanted::Spare => {
                    let socket = tcp_socket(AddressFamily::Inet);
                    // Prepared to take a client's address; become-root binds it.
                    if let (Ok(socket), true) = (&socket, self.transparent) {
                        let _ = transparent::prepare(socket);
                    }
                    self.outbox.push_back(answer(socket))
                }
            }
        }
    }

    /// Send the answers ready, as far as the channel takes them.
    fn answer(&mut self, channel: &OwnedFd) -> Result<(), ()> {
        while let Some((answer, socket)) = self.outbox.front() {
            let bytes = answer.encode();
            let fds: Vec<RawFd> = socket.iter().map(|s| s.as_raw_fd()).collect();
            let cmsg = [ControlMessage::ScmRights(&fds)];
            let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
            let iov = [IoSlice::new(&bytes)];
            match sendmsg::<()>(channel.as_raw_fd(), &iov, cmsgs, flags, None) {
                Ok(_) => drop(self.outbox.pop_front()), // our copy of the socket closes here
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return Ok(()), // become-root reads slower: POLLOUT resumes
                Err(_) => return Err(()),
            }
        }
        Ok(())
    }

    /// Start a TCP connection to `port` on the first address of [`INSIDE`] from `address`
    /// on that does not fail at once: answered now if it completes or every address fails
    /// (with the last error, `failed` if there is none), else left in `attempts`.
    fn connect_tcp(
        &mut self,
        id: u32,
        port: u16,
        client: Option<SocketAddr>,
        address: usize,
        mut failed: Errno,
    ) {
        for (i, ip) in INSIDE.iter().enumerate().skip(address) {
            match connect_tcp_start(SocketAddr::new(*ip, port), client) {
                Ok((socket, true)) => {
                    self.outbox.push_back((reply(id, 0), Some(socket)));
                    return;
                }
                Ok((socket, false)) => {
                    self.attempts.push(Attempt {
                        id,
                        port,
                        address: i,
                        client,
                        socket,
                        deadline: Instant::now() + CONNECT_TIMEOUT,
                    });
                    return;
                }
                Err(e) => failed = e,
            }
        }
        self.outbox.push_back((reply(id, failed as i32), None));
    }
}

/// A TCP socket connecting to `addr`, from `client`'s address when given and of the same
/// family, and whether it is connected already.
fn connect_tcp_start(addr: SocketAddr, client: Option<SocketAddr>) -> nix::Result<(OwnedFd, bool)> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let mut socket = tcp_socket(family)?;
    if let Some(client) = client.and_then(|c| transparent::client_for(c, addr.is_ipv6())) {
        let kept =
            transparent::prepare(&socket).is_ok() && transparent::bind_to_client(&socket, client);
        if !kept {
            socket = tcp_socket(family)?; // a plain one, as if the address were not asked for
        }
    }
    match nix::sys::socket::connect(socket.as_raw_fd(), &SockaddrStorage::from(addr)) {
        Ok(()) => Ok((socket, true)),
        Err(Errno::EINPROGRESS) => Ok((socket, false)),
        Err(e) => Err(e),
    }
}

/// A TCP socket of this namespace, non-blocking (become-root's loop needs it so) and without
/// Nagle (the old forwarder set TCP_NODELAY on both sides: a forwarder must not hold back
/// small writes).
fn tcp_socket(family: AddressFamily) -> nix::Result<OwnedFd> {
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let socket = nix::sys::socket::socket(family, SockType::Stream, flags, None)?;
    let _ = setsockopt(&socket, sockopt::TcpNoDelay, &true);
    Ok(socket)
}

fn reply(id: u32, errno: i32) -> Reply {
    Reply { id, errno }
}

pub(super) fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(nix::libc::EIO)
}

/// Milliseconds from `now` to `deadline`, rounded up (a wake-up just before a deadline would
/// find nothing due and poll again at once).
pub(super) fn millis_until(deadline: Instant, now: Instant) -> PollTimeout {
    let ms = deadline
        .saturating_duration_since(now)
        .as_micros()
        .div_ceil(1000);
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
}

/// A UDP socket connected to `port` on the namespace's 127.0.0.1 (connecting a UDP socket
/// checks nothing: the first address always does).
fn connect_udp(port: u16) -> io::Result<OwnedFd> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    socket.connect((INSIDE[0], port))?;
    socket.set_nonblocking(true)?;
    Ok(OwnedFd::from(socket))
}
