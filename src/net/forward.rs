//! become-root's own port forwarder (`--port-driver=builtin`, the default).
//!
//! The host side listens in become-root, outside every namespace. A connection to a port
//! inside must be made by a socket created inside the namespace (a socket belongs to the
//! network namespace it was created in, and become-root cannot enter that one: setns(2) would
//! need CAP_SYS_ADMIN in its own user namespace). So a small *socket provider* process stays
//! in the namespace: asked over a unix socket, it connects to the port on the namespace's
//! loopback and passes the connected socket back (SCM_RIGHTS).
//!
//! become-root serves every published port from one thread, an epoll(7) event loop
//! ([`Forwarder`]); the provider is a poll(2) loop ([`serve_sockets`]). What each choice saves
//! was measured with scripts/bench-net (the README quotes the figures):
//! - Requests to the provider are pipelined: each carries an id and its reply names it, so a
//!   burst of connections costs one round trip, not one each; and the provider connects
//!   without blocking, so a server inside that does not accept delays no other connection.
//! - TCP bytes move with splice(2) through a pipe, zero-copy, edge-triggered and non-blocking.
//!   Pipes come from a pool, sized once, and a direction of a connection holds one only while
//!   bytes are in it: an idle connection holds none. (Pipe pages count against the user's
//!   pipe-user-pages-soft, 16384 pages by default: sixty-four 1 MiB pipes, shared with
//!   everything the user runs. Past it the kernel gives new pipes 2 pages.)
//! - A connection costs no thread and no pipe of its own, so a connection's set-up is an
//!   accept, a message each way and two epoll registrations.
//! - UDP keeps one connected socket inside per client address, closed after a minute without
//!   a datagram either way.

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
    SockaddrStorage, recvmsg, sendmsg, setsockopt, socketpair, sockopt,
};

use super::NetError;
use super::ports::{Proto, Publish};

/// How long a UDP flow may be idle (no datagram either way) before its socket inside closes.
const UDP_IDLE: Duration = Duration::from_secs(60);
/// How long the provider waits for one connection inside (per address, 127.0.0.1 then ::1).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pipe size for splice: larger pipes move more per system call. 1 MiB is
/// /proc/sys/fs/pipe-max-size by default, the most an unprivileged user may ask for.
const PIPE_SIZE: usize = 1 << 20;
/// Empty pipes kept for reuse. Each counts its full size against pipe-user-pages-soft.
const IDLE_PIPES: usize = 4;
/// Provider requests in flight at most; past it, accepting waits (connections queue in the
/// listener's backlog, as they would before a busy server).
const MAX_WAITING: usize = 256;
/// Pipe-fulls one direction moves before others get their turn.
const SPLICE_BUDGET: u32 = 16;
/// Connections accepted, or datagrams read, from one socket before others get their turn.
const BATCH: u32 = 64;
/// Datagrams held for a new UDP flow while its socket inside is on its way.
const UDP_QUEUE: usize = 64;
/// How long accepting, and moving bytes that need a new pipe, pause when the process is out
/// of descriptors (unless a connection closes sooner).
const FD_PAUSE: Duration = Duration::from_millis(100);
/// The soft limit of open files the forwarder raises its process to, within the hard limit:
/// a connection holds two descriptors, four while bytes are in flight.
const OPEN_FILES: u64 = 1 << 16;
/// Descriptors a connection may hold at most: its two sockets and a pipe each way.
const FDS_PER_CONN: usize = 6;
/// Descriptors of the open-files limit left to the rest of the process, beyond those it has
/// open when forwarding starts.
const FDS_KEPT: usize = 16;

/// The addresses tried inside, in order: a server may listen on either family.
const INSIDE: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

// ---- host sockets -------------------------------------------------------------------------

/// A host-side socket, bound before COMMAND runs.
pub struct Bound {
    pub publish: Publish,
    /// The address actually bound (the kernel's choice for host port 0).
    pub local: SocketAddr,
    socket: HostSocket,
}

enum HostSocket {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

impl Bound {
    /// `127.0.0.1:41234 -> 80/tcp`, as reported to the user.
    pub fn describe(&self) -> String {
        format!(
            "{} -> {}/{}",
            self.local, self.publish.ns_port, self.publish.proto
        )
    }
}

/// Bind every published port on the host, so that a port in use or one below
/// net.ipv4.ip_unprivileged_port_start is an error before COMMAND runs.
pub fn bind(publish: &[Publish]) -> Result<Vec<Bound>, NetError> {
    publish
        .iter()
        .map(|p| {
            let addr = SocketAddr::new(p.host_ip, p.host_port);
            let fail = |e: io::Error| {
                let spec = p.to_string();
                match e.raw_os_error() {
                    Some(nix::libc::EADDRINUSE) => NetError::PortInUse { spec },
                    Some(nix::libc::EACCES) => NetError::PrivilegedPort {
                        spec,
                        start: std::fs::read_to_string(
                            "/proc/sys/net/ipv4/ip_unprivileged_port_start",
                        )
                        .map(|s| s.trim().to_string())
                        .unwrap_or_else(|_| "1024".into()),
                    },
                    Some(nix::libc::EADDRNOTAVAIL) => NetError::Bind {
                        spec,
                        why: "no such address on this host".into(),
                    },
                    _ => NetError::Bind {
                        spec,
                        why: e.to_string(),
                    },
                }
            };
            let socket = match p.proto {
                Proto::Tcp => HostSocket::Tcp(TcpListener::bind(addr).map_err(fail)?),
                Proto::Udp => HostSocket::Udp(UdpSocket::bind(addr).map_err(fail)?),
            };
            let local = match &socket {
                HostSocket::Tcp(s) => s.local_addr(),
                HostSocket::Udp(s) => s.local_addr(),
            }
            .map_err(fail)?;
            Ok(Bound {
                publish: *p,
                local,
                socket,
            })
        })
        .collect()
}

// ---- the provider channel -------------------------------------------------------------------

/// The two ends of the channel to the socket provider: (become-root's, the provider's).
pub fn provider_channel() -> nix::Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
}

/// A request to the provider, one SEQPACKET message of 8 bytes: the id (u32, little-endian),
/// the protocol (0 TCP, 1 UDP), a zero, the port inside (u16, big-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Request {
    id: u32,
    proto: Proto,
    port: u16,
}

impl Request {
    fn encode(self) -> [u8; 8] {
        let [i0, i1, i2, i3] = self.id.to_le_bytes();
        let [p0, p1] = self.port.to_be_bytes();
        [
            i0,
            i1,
            i2,
            i3,
            u8::from(self.proto == Proto::Udp),
            0,
            p0,
            p1,
        ]
    }

    fn decode(bytes: &[u8]) -> Option<Request> {
        let &[i0, i1, i2, i3, proto, 0, p0, p1] = bytes else {
            return None;
        };
        let proto = match proto {
            0 => Proto::Tcp,
            1 => Proto::Udp,
            _ => return None,
        };
        Some(Request {
            id: u32::from_le_bytes([i0, i1, i2, i3]),
            proto,
            port: u16::from_be_bytes([p0, p1]),
        })
    }
}

/// The provider's answer, 8 bytes: the request's id (u32) and an errno (i32, both
/// little-endian), 0 with the connected socket attached (SCM_RIGHTS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reply {
    id: u32,
    errno: i32,
}

impl Reply {
    fn encode(self) -> [u8; 8] {
        let [i0, i1, i2, i3] = self.id.to_le_bytes();
        let [e0, e1, e2, e3] = self.errno.to_le_bytes();
        [i0, i1, i2, i3, e0, e1, e2, e3]
    }

    fn decode(bytes: &[u8]) -> Option<Reply> {
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
    socket: OwnedFd,
    deadline: Instant,
}

/// The socket provider, inside the namespace: serve requests until become-root's end closes.
/// Every request is answered, in the order connections complete: a connection that takes
/// long (a server that does not accept) holds up no other.
pub fn serve_sockets(channel: OwnedFd) -> ! {
    let mut inside = Inside::default();
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
                Err(e) => self.connect_tcp(a.id, a.port, a.address + 1, e),
            }
        }
    }

    /// Read every request waiting, and start each.
    fn take_requests(&mut self, channel: &OwnedFd) -> Result<(), ()> {
        loop {
            let mut bytes = [0u8; 16];
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
            match request.proto {
                Proto::Tcp => self.connect_tcp(request.id, request.port, 0, Errno::ECONNREFUSED),
                Proto::Udp => self.outbox.push_back(match connect_udp(request.port) {
                    Ok(socket) => (reply(request.id, 0), Some(socket)),
                    Err(e) => (reply(request.id, errno_of(&e)), None),
                }),
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
    fn connect_tcp(&mut self, id: u32, port: u16, address: usize, mut failed: Errno) {
        for (i, ip) in INSIDE.iter().enumerate().skip(address) {
            match connect_tcp_start(SocketAddr::new(*ip, port)) {
                Ok((socket, true)) => {
                    self.outbox.push_back((reply(id, 0), Some(socket)));
                    return;
                }
                Ok((socket, false)) => {
                    self.attempts.push(Attempt {
                        id,
                        port,
                        address: i,
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

/// A TCP socket connecting to `addr`, and whether it is connected already.
fn connect_tcp_start(addr: SocketAddr) -> nix::Result<(OwnedFd, bool)> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    // Non-blocking (become-root's loop needs it so) and without Nagle (the old forwarder set
    // TCP_NODELAY on both sides: a forwarder must not hold back small writes).
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let socket = nix::sys::socket::socket(family, SockType::Stream, flags, None)?;
    let _ = setsockopt(&socket, sockopt::TcpNoDelay, &true);
    match nix::sys::socket::connect(socket.as_raw_fd(), &SockaddrStorage::from(addr)) {
        Ok(()) => Ok((socket, true)),
        Err(Errno::EINPROGRESS) => Ok((socket, false)),
        Err(e) => Err(e),
    }
}

fn reply(id: u32, errno: i32) -> Reply {
    Reply { id, errno }
}

fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(nix::libc::EIO)
}

/// Milliseconds from `now` to `deadline`, rounded up (a wake-up just before a deadline would
/// find nothing due and poll again at once).
fn millis_until(deadline: Instant, now: Instant) -> PollTimeout {
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

/// become-root's end of the provider channel.
pub struct Provider {
    channel: OwnedFd,
}

impl Provider {
    pub fn new(channel: OwnedFd) -> Self {
        Provider { channel }
    }
}

/// Serve every bound port until become-root exits (the thread ends with the process).
pub fn start(bound: Vec<Bound>, provider: Arc<Provider>) {
    if bound.is_empty() {
        return;
    }
    // Many connections at once need many descriptors, more than the usual soft limit of 1024
    // (Go programs such as rootlesskit raise it too). Only become-root's own process: COMMAND
    // and the helpers are running already, with the caller's limit.
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < OPEN_FILES
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard.min(OPEN_FILES), hard);
    }
    std::thread::spawn(move || match Forwarder::new(bound, &provider.channel) {
        Ok(mut forwarder) => forwarder.run(),
        Err(e) => eprintln!("become-root: forwarding published ports: {e}"),
    });
}

/// Create the socket provider inside the namespace: in a new pid namespace as a child of
/// init (which outlives COMMAND); otherwise forked twice so that it is become-root's child (a
/// subreaper), not COMMAND's, and COMMAND never sees an unknown child. It leaves when
/// become-root's end of `channel` closes.
pub fn spawn_provider(channel: OwnedFd, under_init: bool) -> Result<(), crate::error::Error> {
    use crate::sys::{Forked, exit_now, fork_process};
    let fork = || fork_process().map_err(|e| crate::error::Error::sys("fork", e));
    match fork()? {
        Forked::Parent(child) => {
            drop(channel);
            if !under_init {
                let _ = nix::sys::wait::waitpid(child, None); // the intermediate, gone at once
            }
            Ok(())
        }
        Forked::Child => {
            if !under_init {
                match fork() {
                    Ok(Forked::Child) => {}
                    _ => exit_now(0),
                }
            }
            crate::sys::keep_only_fd(channel.as_raw_fd());
            serve_sockets(channel)
        }
    }
}

// ---- the event loop, in become-root ----------------------------------------------------------

/// A slot of a [`Slab`] and its generation: a key outlives its entry harmlessly, and an
/// event still queued for a closed connection finds nothing rather than its successor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    index: u32,
    generation: u32,
}

/// A vector of entries with reusable slots. (At most 2^24 of them fit a [`Token`]: more than
/// the descriptors a process may have.)
struct Slab<T> {
    entries: Vec<(u32, Option<T>)>,
    free: Vec<u32>,
}

impl<T> Slab<T> {
    fn new() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
        }
    }

    fn insert(&mut self, value: T) -> Key {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.entries.push((0, None));
                (self.entries.len() - 1) as u32
            }
        };
        let entry = &mut self.entries[index as usize];
        entry.1 = Some(value);
        Key {
            index,
            generation: entry.0,
        }
    }

    fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.entries.get_mut(key.index as usize) {
            Some((generation, value)) if *generation == key.generation => value.as_mut(),
            _ => None,
        }
    }

    fn remove(&mut self, key: Key) -> Option<T> {
        let (generation, value) = self.entries.get_mut(key.index as usize)?;
        if *generation != key.generation || value.is_none() {
            return None;
        }
        *generation = generation.wrapping_add(1);
        self.free.push(key.index);
        value.take()
    }

    /// How many entries there are.
    fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    fn keys(&self) -> impl Iterator<Item = (Key, &T)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, (generation, v))| {
                let key = Key {
                    index: i as u32,
                    generation: *generation,
                };
                v.as_ref().map(|v| (key, v))
            })
    }
}

/// What an epoll event is about, carried in its 64 bits of data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Listener(u32),
    UdpHost(u32),
    Channel,
    /// The host side of a TCP connection (the client's).
    Host(Key),
    /// The inside side of a TCP connection (the server's).
    Inside(Key),
    /// A UDP flow's socket inside.
    Flow(Key),
}

impl Token {
    /// Kind in the top 8 bits, then a 24-bit index, then a 32-bit generation.
    fn encode(self) -> u64 {
        let (kind, index, generation) = match self {
            Token::Listener(i) => (1, i, 0),
            Token::UdpHost(i) => (2, i, 0),
            Token::Channel => (3, 0, 0),
            Token::Host(k) => (4, k.index, k.generation),
            Token::Inside(k) => (5, k.index, k.generation),
            Token::Flow(k) => (6, k.index, k.generation),
        };
        (kind << 56) | (u64::from(index & 0xff_ffff) << 32) | u64::from(generation)
    }

    fn decode(data: u64) -> Option<Token> {
        let index = ((data >> 32) & 0xff_ffff) as u32;
        let key = Key {
            index,
            generation: data as u32,
        };
        Some(match data >> 56 {
            1 => Token::Listener(index),
            2 => Token::UdpHost(index),
            3 => Token::Channel,
            4 => Token::Host(key),
            5 => Token::Inside(key),
            6 => Token::Flow(key),
            _ => return None,
        })
    }
}

/// A pipe for splice, and how much it holds.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    size: usize,
}

/// Empty pipes for reuse: a pipe is created and sized once, not per connection.
struct Pipes {
    idle: Vec<Pipe>,
}

impl Pipes {
    fn take(&mut self) -> nix::Result<Pipe> {
        if let Some(pipe) = self.idle.pop() {
            return Ok(pipe);
        }
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        // Refused past the user's pipe-user-pages-soft: the pipe keeps its default size.
        let size = fcntl(&write, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE as i32))
            .or_else(|_| fcntl(&write, FcntlArg::F_GETPIPE_SZ))
            .map_or(4096, |n| n as usize);
        Ok(Pipe { read, write, size })
    }

    /// Give back a pipe that is empty.
    fn put(&mut self, pipe: Pipe) {
        if self.idle.len() < IDLE_PIPES {
            self.idle.push(pipe);
        }
    }
}

/// One direction of a TCP connection.
#[derive(Default)]
struct Dir {
    /// Holds the bytes read and not yet written: `queued` of them.
    pipe: Option<Pipe>,
    queued: usize,
    /// The last write would have blocked: the destination's EPOLLOUT resumes.
    blocked: bool,
    state: DirState,
}

#[derive(Default, PartialEq, Eq)]
enum DirState {
    #[default]
    Open,
    /// The source ended; its end is passed on once the pipe is empty.
    Ending,
    /// The end is passed on (shutdown(SHUT_WR) of the destination).
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// Client to server.
    Up,
    /// Server to client.
    Down,
}

impl Way {
    fn other(self) -> Way {
        match self {
            Way::Up => Way::Down,
            Way::Down => Way::Up,
        }
    }
}

struct Conn {
    host: TcpStream,
    inside: TcpStream,
    up: Dir,
    down: Dir,
}

impl Conn {
    fn dir(&mut self, way: Way) -> (&mut Dir, &TcpStream, &TcpStream) {
        match way {
            Way::Up => (&mut self.up, &self.host, &self.inside),
            Way::Down => (&mut self.down, &self.inside, &self.host),
        }
    }
}

/// What a turn of [`pump`] left.
#[derive(Debug, PartialEq, Eq)]
enum Pumped {
    /// Waiting for an event (or finished).
    Waiting,
    /// Its budget is spent: run again after the others.
    More,
    /// A socket failed (reset, or gone): the connection is over.
    Failed,
    /// No pipe could be made (out of descriptors): run again once some are free.
    NoPipe,
}

/// Move bytes of one direction until a socket would block, the direction ends, or its budget
/// is spent. Both sockets are non-blocking and edge-triggered, so "would block" is what brings
/// the next event.
///
/// `last`: the other direction is over, so the connection closes when this one ends, and
/// close(2) passes the end on (a FIN: both receive queues are empty by then).
fn pump(dir: &mut Dir, from: &TcpStream, to: &TcpStream, pipes: &mut Pipes, last: bool) -> Pumped {
    // SPLICE_F_MORE (a cork hint) cost a fifth of the throughput in measurements here.
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    let mut budget = SPLICE_BUDGET;
    loop {
        if let Some(pipe) = &dir.pipe {
            while dir.queued > 0 {
                match splice(&pipe.read, None, to, None, dir.queued, flags) {
                    Ok(0) => return Pumped::Failed,
                    Ok(n) => dir.queued -= n,
                    Err(Errno::EINTR) => {}
                    Err(Errno::EAGAIN) => {
                        dir.blocked = true;
                        return Pumped::Waiting;
                    }
                    Err(_) => return Pumped::Failed,
                }
            }
        }
        dir.blocked = false;
        if let Some(pipe) = dir.pipe.take() {
            pipes.put(pipe);
        }
        match dir.state {
            DirState::Open => {}
            DirState::Ending => {
                // Half-close passed on: the server sees the client's end, or the other way.
                if !last {
                    let _ = to.shutdown(std::net::Shutdown::Write);
                }
                dir.state = DirState::Done;
                return Pumped::Waiting;
            }
            DirState::Done => return Pumped::Waiting,
        }
        if budget == 0 {
            return Pumped::More;
        }
        budget -= 1;
        let Ok(pipe) = pipes.take() else {
            return Pumped::NoPipe;
        };
        match splice(from, None, &pipe.write, None, pipe.size, flags) {
            Ok(0) => {
                dir.state = DirState::Ending;
                pipes.put(pipe);
            }
            Ok(n) => {
                dir.queued = n;
                dir.pipe = Some(pipe);
            }
            Err(Errno::EINTR) => pipes.put(pipe),
            Err(Errno::EAGAIN) => {
                pipes.put(pipe);
                return Pumped::Waiting;
            }
            Err(_) => return Pumped::Failed,
        }
    }
}

/// A UDP client of one published port, and its socket inside.
struct Flow {
    /// Index of the host socket.
    port: usize,
    client: SocketAddr,
    /// None while the provider is asked for it.
    inside: Option<UdpSocket>,
    /// Datagrams that came before the socket.
    queue: Vec<Vec<u8>>,
    last: Instant,
}

/// What a request to the provider is for.
enum Waiting {
    Tcp(TcpStream),
    Udp(Key),
}

/// Work left for after the current events: budgets spent, or accepting to resume.
#[derive(Debug, Clone, Copy)]
enum Again {
    Pump(Key, Way),
    Accept(usize),
    UdpHost(usize),
    Flow(Key),
}

/// The event loop: every published port, every connection and flow, one thread.
struct Forwarder<'p> {
    epoll: Epoll,
    channel: &'p OwnedFd,
    /// False once the provider is gone: connections are then closed as they come.
    provider: bool,
    listeners: Vec<(TcpListener, u16)>,
    udp: Vec<(UdpSocket, u16)>,
    conns: Slab<Conn>,
    flows: Slab<Flow>,
    flow_of: HashMap<(usize, SocketAddr), Key>,
    waiting: HashMap<u32, Waiting>,
    next_id: u32,
    /// Requests not yet taken by the channel (it was full).
    outbox: VecDeque<[u8; 8]>,
    pipes: Pipes,
    again: Vec<Again>,
    /// Accepting stopped because MAX_WAITING requests are in flight.
    starved: bool,
    /// Accepting stopped because the connections could run out of descriptors for their
    /// pipes (they would wait for each other); a connection closing comes back.
    full: bool,
    /// Descriptors the connections, flows and pipes may hold (the open-files limit, less
    /// FDS_KEPT).
    fd_budget: usize,
    /// Out of descriptors: accepting, and the directions in `no_pipe`, wait until then (or
    /// until a connection closes).
    paused: Option<Instant>,
    no_pipe: Vec<(Key, Way)>,
    /// When the next UDP flow may be idle for UDP_IDLE.
    sweep: Option<Instant>,
    datagram: Vec<u8>,
    cmsg: Vec<u8>,
}

/// Edge-triggered: an event comes when something changes, and each handler goes on until its
/// socket would block.
const EDGE: EpollFlags = EpollFlags::EPOLLET;

impl<'p> Forwarder<'p> {
    fn new(bound: Vec<Bound>, channel: &'p OwnedFd) -> nix::Result<Self> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let both = EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT | EDGE;
        epoll.add(channel, EpollEvent::new(both, Token::Channel.encode()))?;
        let (mut listeners, mut udp) = (Vec::new(), Vec::new());
        for b in bound {
            let port = b.publish.ns_port;
            match b.socket {
                HostSocket::Tcp(listener) => {
                    listener.set_nonblocking(true).map_err(io_errno)?;
                    let token = Token::Listener(listeners.len() as u32).encode();
                    epoll.add(
                        &listener,
                        EpollEvent::new(EpollFlags::EPOLLIN | EDGE, token),
                    )?;
                    // Accepted sockets inherit it: one system call per port, not per connection.
                    setsockopt(&listener, sockopt::TcpNoDelay, &true)?;
                    listeners.push((listener, port));
                }
                HostSocket::Udp(socket) => {
                    socket.set_nonblocking(true).map_err(io_errno)?;
                    let token = Token::UdpHost(udp.len() as u32).encode();
                    epoll.add(&socket, EpollEvent::new(EpollFlags::EPOLLIN | EDGE, token))?;
                    udp.push((socket, port));
                }
            }
        }
        Ok(Forwarder {
            epoll,
            channel,
            provider: true,
            listeners,
            udp,
            conns: Slab::new(),
            flows: Slab::new(),
            flow_of: HashMap::new(),
            waiting: HashMap::new(),
            next_id: 0,
            outbox: VecDeque::new(),
            pipes: Pipes { idle: Vec::new() },
            again: Vec::new(),
            starved: false,
            full: false,
            fd_budget: fd_budget(),
            paused: None,
            no_pipe: Vec::new(),
            sweep: None,
            datagram: vec![0; 65536],
            cmsg: nix::cmsg_space!([RawFd; 1]),
        })
    }

    fn run(&mut self) {
        let mut events = vec![EpollEvent::empty(); 256];
        loop {
            let timeout = match self.again.is_empty() {
                false => EpollTimeout::ZERO,
                true => match [self.paused, self.sweep].into_iter().flatten().min() {
                    None => EpollTimeout::NONE,
                    Some(at) => millis_until(at, Instant::now()),
                },
            };
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(Errno::EINTR) => 0,
                Err(e) => {
                    eprintln!("become-root: forwarding published ports: epoll_wait: {e}");
                    return;
                }
            };
            for event in &events[..n] {
                if let Some(token) = Token::decode(event.data()) {
                    self.event(token, event.events());
                }
            }
            for work in std::mem::take(&mut self.again) {
                match work {
                    Again::Pump(key, way) => self.pump(key, way),
                    Again::Accept(i) => self.accept(i),
                    Again::UdpHost(i) => self.udp_host(i),
                    Again::Flow(key) => self.flow(key),
                }
            }
            let now = Instant::now();
            if self.paused.is_some_and(|at| at <= now) {
                self.resume();
            }
            if self.sweep.is_some_and(|at| at <= now) {
                self.sweep(now);
            }
        }
    }

    fn event(&mut self, token: Token, events: EpollFlags) {
        let readable = events.intersects(
            EpollFlags::EPOLLIN
                | EpollFlags::EPOLLRDHUP
                | EpollFlags::EPOLLHUP
                | EpollFlags::EPOLLERR,
        );
        let writable =
            events.intersects(EpollFlags::EPOLLOUT | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR);
        match token {
            Token::Listener(i) => self.accept(i as usize),
            Token::UdpHost(i) => self.udp_host(i as usize),
            Token::Flow(key) => self.flow(key),
            Token::Channel => {
                if writable {
                    self.flush();
                }
                if readable {
                    self.replies();
                }
            }
            Token::Host(key) | Token::Inside(key) => {
                // The direction that reads this socket, and the one that writes to it.
                let (reads, writes) = match token {
                    Token::Host(_) => (Way::Up, Way::Down),
                    _ => (Way::Down, Way::Up),
                };
                let Some(conn) = self.conns.get_mut(key) else {
                    return;
                };
                // A direction blocked on writing waits for its destination, not its source.
                let (read, write) = (!conn.dir(reads).0.blocked, conn.dir(writes).0.blocked);
                if readable && read {
                    self.pump(key, reads);
                }
                if writable && write {
                    self.pump(key, writes);
                }
                // A reset: what could be read is passed on above; the rest ends here, even a
                // direction that waits on the other socket and does not look at this one (a
                // client resetting while the server does not read: the server must see it).
                if events.contains(EpollFlags::EPOLLERR) {
                    self.close(key, true);
                }
            }
        }
    }

    fn pump(&mut self, key: Key, way: Way) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let last = conn.dir(way.other()).0.state == DirState::Done;
        let (dir, from, to) = conn.dir(way);
        match pump(dir, from, to, &mut self.pipes, last) {
            Pumped::Waiting => {
                if conn.up.state == DirState::Done && conn.down.state == DirState::Done {
                    self.close(key, false);
                }
            }
            Pumped::More => self.again.push(Again::Pump(key, way)),
            Pumped::Failed => self.close(key, true),
            Pumped::NoPipe => {
                self.no_pipe.push((key, way));
                self.paused.get_or_insert(Instant::now() + FD_PAUSE);
            }
        }
    }

    /// Close a connection; `reset` makes both peers see a reset (one failed: the other must
    /// not take the end for a clean one).
    fn close(&mut self, key: Key, reset: bool) {
        // (the sockets close when `conn` goes, at the end of the `if`)
        if let Some(conn) = self.conns.remove(key)
            && reset
        {
            let abort = nix::libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            let _ = setsockopt(&conn.host, sockopt::Linger, &abort);
            let _ = setsockopt(&conn.inside, sockopt::Linger, &abort);
        }
        if self.paused.is_some() || self.full {
            self.resume(); // a descriptor or two are free again
        }
    }

    fn accept(&mut self, i: usize) {
        if self.paused.is_some() {
            return; // resume() comes back
        }
        for _ in 0..BATCH {
            if self.waiting.len() >= MAX_WAITING {
                self.starved = true; // replies() comes back
                return;
            }
            if self.fds_held() + FDS_PER_CONN > self.fd_budget {
                self.full = true; // close() comes back
                return;
            }
            let (listener, port) = &self.listeners[i];
            let port = *port;
            let client = match listener.accept() {
                Ok((client, _)) => client,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => match e.raw_os_error() {
                    Some(
                        nix::libc::EMFILE
                        | nix::libc::ENFILE
                        | nix::libc::ENOBUFS
                        | nix::libc::ENOMEM,
                    ) => {
                        self.pipes.idle.clear();
                        self.paused = Some(Instant::now() + FD_PAUSE);
                        return;
                    }
                    _ => continue, // the client gave up already (ECONNABORTED), EINTR
                },
            };
            if !self.provider || client.set_nonblocking(true).is_err() {
                continue; // the client sees the connection close
            }
            self.ask(Proto::Tcp, port, Waiting::Tcp(client)); // TCP_NODELAY from the listener
        }
        self.again.push(Again::Accept(i));
    }

    /// Accept again on every listener, and retry the directions that had no pipe (the pause
    /// is over, a connection closed, or requests were answered).
    fn resume(&mut self) {
        self.paused = None;
        self.starved = false;
        self.full = false;
        let waiting = self
            .no_pipe
            .drain(..)
            .map(|(key, way)| Again::Pump(key, way));
        self.again.extend(waiting);
        self.again
            .extend((0..self.listeners.len()).map(Again::Accept));
    }

    /// The descriptors the connections, flows and pipes could hold, at most.
    fn fds_held(&self) -> usize {
        let conns = (self.conns.len() + self.waiting.len()) * FDS_PER_CONN;
        conns + self.flows.len() + 2 * self.pipes.idle.len()
    }

    fn ask(&mut self, proto: Proto, port: u16, waiting: Waiting) {
        // Ids are unique among those in flight: at most MAX_WAITING of 2^32.
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.waiting.insert(id, waiting);
        self.outbox.push_back(Request { id, proto, port }.encode());
        self.flush();
    }

    fn flush(&mut self) {
        while let Some(request) = self.outbox.front() {
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
            let iov = [IoSlice::new(request)];
            match sendmsg::<()>(self.channel.as_raw_fd(), &iov, &[], flags, None) {
                Ok(_) => drop(self.outbox.pop_front()),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return, // the channel's EPOLLOUT comes back
                Err(_) => return self.provider_gone(),
            }
        }
    }

    fn replies(&mut self) {
        loop {
            let mut bytes = [0u8; 16];
            let mut iov = [IoSliceMut::new(&mut bytes)];
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC;
            let received = recvmsg::<()>(
                self.channel.as_raw_fd(),
                &mut iov,
                Some(&mut self.cmsg),
                flags,
            );
            let (n, socket) = match received {
                Ok(msg) => {
                    let mut socket = None;
                    for cmsg in msg.cmsgs().into_iter().flatten() {
                        if let ControlMessageOwned::ScmRights(fds) = cmsg {
                            for fd in fds {
                                socket = Some(crate::sys::own_received_fd(fd));
                            }
                        }
                    }
                    (msg.bytes, socket)
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => break,
                Err(_) => return self.provider_gone(),
            };
            // 0 bytes: the provider is gone (it died with the namespace, or was killed).
            let Some(answer) = Reply::decode(&bytes[..n]) else {
                return self.provider_gone();
            };
            let Some(waiting) = self.waiting.remove(&answer.id) else {
                continue; // a UDP flow dropped meanwhile
            };
            let socket = match (answer.errno, socket) {
                (0, Some(socket)) => Some(socket),
                _ => None, // nothing listens inside: the client sees the connection close
            };
            match waiting {
                Waiting::Tcp(client) => {
                    if let Some(socket) = socket {
                        self.connected(client, TcpStream::from(socket));
                    }
                }
                Waiting::Udp(key) => self.flow_ready(key, socket.map(UdpSocket::from)),
            }
        }
        if self.starved && self.waiting.len() < MAX_WAITING {
            self.resume();
        }
    }

    fn connected(&mut self, host: TcpStream, inside: TcpStream) {
        let key = self.conns.insert(Conn {
            host,
            inside,
            up: Dir::default(),
            down: Dir::default(),
        });
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let both = EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT | EpollFlags::EPOLLRDHUP | EDGE;
        // Registering reports what is ready already: bytes the client sent meanwhile flow.
        let added = self
            .epoll
            .add(&conn.host, EpollEvent::new(both, Token::Host(key).encode()))
            .and_then(|()| {
                let token = Token::Inside(key).encode();
                self.epoll.add(&conn.inside, EpollEvent::new(both, token))
            });
        if added.is_err() {
            self.close(key, true);
        }
    }

    fn provider_gone(&mut self) {
        self.provider = false;
        self.outbox.clear();
        for (_, waiting) in self.waiting.drain() {
            if let Waiting::Udp(key) = waiting
                && let Some(flow) = self.flows.remove(key)
            {
                self.flow_of.remove(&(flow.port, flow.client));
            }
        }
        let _ = self.epoll.delete(self.channel);
    }

    fn udp_host(&mut self, i: usize) {
        for _ in 0..BATCH {
            let (n, client) = match self.udp[i].0.recv_from(&mut self.datagram) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => continue,
            };
            let now = Instant::now();
            let datagram = &self.datagram[..n];
            let flow = self.flow_of.get(&(i, client)).copied();
            if let Some(flow) = flow.and_then(|key| self.flows.get_mut(key)) {
                flow.last = now;
                match &flow.inside {
                    Some(inside) => drop(inside.send(datagram)), // a full buffer drops it
                    None if flow.queue.len() < UDP_QUEUE => flow.queue.push(datagram.to_vec()),
                    None => {}
                }
                continue;
            }
            if !self.provider
                || self.waiting.len() >= MAX_WAITING
                || self.fds_held() + 1 > self.fd_budget
            {
                continue; // dropped, as by a full socket buffer
            }
            let key = self.flows.insert(Flow {
                port: i,
                client,
                inside: None,
                queue: vec![datagram.to_vec()],
                last: now,
            });
            self.flow_of.insert((i, client), key);
            self.sweep = Some(
                self.sweep
                    .map_or(now + UDP_IDLE, |at| at.min(now + UDP_IDLE)),
            );
            let port = self.udp[i].1;
            self.ask(Proto::Udp, port, Waiting::Udp(key));
        }
        self.again.push(Again::UdpHost(i));
    }

    fn flow_ready(&mut self, key: Key, inside: Option<UdpSocket>) {
        let Some(flow) = self.flows.get_mut(key) else {
            return; // idle-closed meanwhile
        };
        let Some(inside) = inside else {
            return self.drop_flow(key);
        };
        for datagram in flow.queue.drain(..) {
            let _ = inside.send(&datagram);
        }
        let token = Token::Flow(key).encode();
        match self
            .epoll
            .add(&inside, EpollEvent::new(EpollFlags::EPOLLIN | EDGE, token))
        {
            Ok(()) => flow.inside = Some(inside),
            Err(_) => self.drop_flow(key),
        }
    }

    /// Replies from inside, to the flow's client.
    fn flow(&mut self, key: Key) {
        for _ in 0..BATCH {
            let Some(flow) = self.flows.get_mut(key) else {
                return;
            };
            let Some(inside) = &flow.inside else {
                return;
            };
            match inside.recv(&mut self.datagram) {
                Ok(n) => {
                    flow.last = Instant::now();
                    let host = &self.udp[flow.port].0;
                    let _ = host.send_to(&self.datagram[..n], flow.client);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Refused: nothing listens inside (any more); the next datagram asks anew.
                Err(_) => return self.drop_flow(key),
            }
        }
        self.again.push(Again::Flow(key));
    }

    fn drop_flow(&mut self, key: Key) {
        if let Some(flow) = self.flows.remove(key) {
            self.flow_of.remove(&(flow.port, flow.client));
        }
    }

    /// Close the flows idle for UDP_IDLE, and note when the next one may be.
    fn sweep(&mut self, now: Instant) {
        let mut idle = Vec::new();
        let mut next: Option<Instant> = None;
        for (key, flow) in self.flows.keys() {
            let due = flow.last + UDP_IDLE;
            if due <= now {
                idle.push(key);
            } else {
                next = Some(next.map_or(due, |at| at.min(due)));
            }
        }
        for key in idle {
            self.drop_flow(key);
        }
        self.sweep = next;
    }
}

/// The descriptors connections may hold: the soft limit of open files, less those open now
/// and FDS_KEPT; at least one connection's worth, so that a low limit slows forwarding down
/// (accept's EMFILE pauses it) and never stops it.
fn fd_budget() -> usize {
    use nix::sys::resource::{Resource, getrlimit};
    let limit = getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft.min(1 << 20));
    let open = std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count());
    (limit as usize)
        .saturating_sub(open + FDS_KEPT)
        .max(FDS_PER_CONN)
}

fn io_errno(e: io::Error) -> Errno {
    Errno::from_raw(errno_of(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_nonsense_is_refused() {
        let rows: &[(Request, [u8; 8])] = &[
            (
                Request {
                    id: 0,
                    proto: Proto::Tcp,
                    port: 80,
                },
                [0, 0, 0, 0, 0, 0, 0, 80],
            ),
            (
                Request {
                    id: 0x0403_0201,
                    proto: Proto::Udp,
                    port: 0x1451,
                },
                [1, 2, 3, 4, 1, 0, 0x14, 0x51],
            ),
            (
                Request {
                    id: u32::MAX,
                    proto: Proto::Tcp,
                    port: u16::MAX,
                },
                [255, 255, 255, 255, 0, 0, 255, 255],
            ),
        ];
        for (request, bytes) in rows {
            assert_eq!(request.encode(), *bytes, "{request:?}");
            assert_eq!(Request::decode(bytes), Some(*request), "{bytes:?}");
        }
        let nonsense: &[&[u8]] = &[
            &[],                           // the channel closed
            &[0, 0, 80],                   // the old 3-byte request
            &[0, 0, 0, 0, 2, 0, 0, 80],    // no such protocol
            &[0, 0, 0, 0, 0, 1, 0, 80],    // the padding is not zero
            &[0, 0, 0, 0, 0, 0, 0, 80, 0], // too long
        ];
        for bytes in nonsense {
            assert_eq!(Request::decode(bytes), None, "{bytes:?}");
        }
    }

    #[test]
    fn replies_round_trip() {
        let rows: &[(Reply, [u8; 8])] = &[
            (Reply { id: 7, errno: 0 }, [7, 0, 0, 0, 0, 0, 0, 0]),
            (
                Reply {
                    id: 1,
                    errno: nix::libc::ECONNREFUSED,
                },
                [1, 0, 0, 0, 111, 0, 0, 0],
            ),
            (Reply { id: 0, errno: -1 }, [0, 0, 0, 0, 255, 255, 255, 255]),
        ];
        for (reply, bytes) in rows {
            assert_eq!(reply.encode(), *bytes, "{reply:?}");
            assert_eq!(Reply::decode(bytes), Some(*reply), "{bytes:?}");
        }
        assert_eq!(Reply::decode(&[0; 4]), None, "the old 4-byte reply");
        assert_eq!(Reply::decode(&[]), None, "the channel closed");
    }

    #[test]
    fn tokens_round_trip() {
        let key = |index, generation| Key { index, generation };
        let rows = [
            Token::Listener(0),
            Token::Listener(5),
            Token::UdpHost(3),
            Token::Channel,
            Token::Host(key(0, 0)),
            Token::Host(key(0xff_ffff, u32::MAX)),
            Token::Inside(key(12, 1)),
            Token::Flow(key(1, 0x8000_0000)),
        ];
        for token in rows {
            assert_eq!(Token::decode(token.encode()), Some(token), "{token:?}");
        }
        // Host and Inside of one connection differ; no token is 0 (an empty event).
        assert_ne!(
            Token::Host(key(1, 1)).encode(),
            Token::Inside(key(1, 1)).encode()
        );
        assert_eq!(Token::decode(0), None);
    }

    #[test]
    fn a_slab_key_outlives_its_entry_harmlessly() {
        let mut slab = Slab::new();
        let a = slab.insert("a");
        let b = slab.insert("b");
        assert_eq!(slab.remove(a), Some("a"));
        assert_eq!(slab.remove(a), None, "removed once");
        let c = slab.insert("c");
        assert_eq!(c.index, a.index, "the slot is reused");
        assert_ne!(c, a, "under a new generation");
        assert_eq!(slab.get_mut(a), None, "the old key finds nothing");
        assert_eq!(slab.get_mut(c), Some(&mut "c"));
        assert_eq!(slab.get_mut(b), Some(&mut "b"));
        let mut keys: Vec<_> = slab.keys().map(|(k, v)| (k, *v)).collect();
        keys.sort_by_key(|(k, _)| k.index);
        assert_eq!(keys, vec![(c, "c"), (b, "b")]);
    }

    #[test]
    fn accepted_sockets_inherit_tcp_nodelay_from_the_listener() {
        // The forwarder sets TCP_NODELAY once per listener and relies on this (Linux copies
        // the listener's socket into each connection it accepts).
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        setsockopt(&listener, sockopt::TcpNoDelay, &true).unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.nodelay().unwrap());
    }

    #[test]
    fn deadlines_round_up_to_the_millisecond() {
        let now = Instant::now();
        let rows: &[(Duration, i32)] = &[
            (Duration::ZERO, 0),
            (Duration::from_micros(1), 1),
            (Duration::from_micros(999), 1),
            (Duration::from_millis(1), 1),
            (Duration::from_micros(1001), 2),
            (Duration::from_secs(60), 60_000),
        ];
        for (ahead, ms) in rows {
            let timeout: i32 = millis_until(now + *ahead, now).into();
            assert_eq!(timeout, *ms, "{ahead:?}");
        }
        let timeout: i32 = millis_until(now, now + Duration::from_secs(1)).into();
        assert_eq!(timeout, 0, "a deadline passed");
    }
}
