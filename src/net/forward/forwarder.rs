//! The event loop in become-root: one epoll(7) thread serves every published port, its TCP
//! connections and its UDP flows (udp.rs), and asks the provider for the sockets inside.

mod live;
mod udp;

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, Shutdown, recvmsg, sendmsg, setsockopt, sockopt,
};

use super::control::Change;
use super::limits::{self, Clients};
use super::provider::{Reply, Request, Wanted, errno_of, millis_until};
use super::pump::{Conn, Dir, DirState, Pipes, Pumped, Way, pump};
use super::slab::{Key, Slab, Token};
use super::spares::{Spares, connect_now};
use super::{BATCH, Bound, FD_PAUSE, FDS_PER_CONN, MAX_WAITING, Provider, fd_budget};
use crate::error::say;
use crate::net::ports::Proto;
use udp::Flow;

/// What a request to the provider is for.
enum Waiting {
    /// A client's connection, and its address as the per-client limit counts it.
    Tcp(TcpStream, IpAddr),
    Udp(Key),
    /// A socket for the pool.
    Spare,
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
pub(super) struct Forwarder<'p> {
    epoll: Epoll,
    /// become-root's end of the channel to the provider.
    to_provider: &'p Provider,
    /// False once the provider is gone: the TCP ports then refuse connections.
    provider: bool,
    /// The published ports, by token index; a port unpublished leaves its slot empty.
    listeners: Vec<Option<(TcpListener, u16)>>,
    udp: Vec<Option<(UdpSocket, u16)>>,
    /// Live ports: changes from the session's control thread, and the pipe that says so.
    changes: Option<(Receiver<Change>, OwnedFd)>,
    conns: Slab<Conn>,
    flows: Slab<Flow>,
    flow_of: HashMap<(usize, SocketAddr), Key>,
    waiting: HashMap<u32, Waiting>,
    next_id: u32,
    /// TCP sockets made inside, for new connections.
    spares: Spares,
    /// Requests not yet taken by the channel (it was full).
    outbox: VecDeque<Vec<u8>>,
    /// Connections inside keep the TCP client's address (transparent.rs).
    keep_clients: bool,
    pipes: Pipes,
    again: Vec<Again>,
    /// Accepting stopped because MAX_WAITING requests are in flight.
    starved: bool,
    /// Accepting stopped because the descriptors are taken; a connection closing comes back.
    full: bool,
    /// Descriptors the connections, flows and pipes may hold (the open-files limit, less
    /// FDS_KEPT).
    fd_budget: usize,
    /// Out of descriptors all the same (accept failed with EMFILE): accepting waits until
    /// then, or until a connection closes.
    paused: Option<Instant>,
    /// The TCP connections each client address holds (limits.rs).
    clients: Clients,
    /// How long a TCP connection may be idle, if at all, and when to look for idle ones next.
    idle: Option<Duration>,
    idle_check: Option<Instant>,
    /// When the last wait for events ended.
    now: Instant,
    /// When the next UDP flow may be idle for UDP_IDLE.
    sweep: Option<Instant>,
    datagram: Vec<u8>,
    cmsg: Vec<u8>,
}

/// Edge-triggered: an event comes when something changes, and each handler goes on until its
/// socket would block.
const EDGE: EpollFlags = EpollFlags::EPOLLET;

impl<'p> Forwarder<'p> {
    pub(super) fn new(
        bound: Vec<Bound>,
        to_provider: &'p Provider,
        idle: Option<Duration>,
        keep_clients: bool,
        changes: Option<(Receiver<Change>, OwnedFd)>,
    ) -> nix::Result<Self> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let both = EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT | EDGE;
        epoll.add(
            &to_provider.channel,
            EpollEvent::new(both, Token::Channel.encode()),
        )?;
        if let Some((_, wake)) = &changes {
            epoll.add(
                wake,
                EpollEvent::new(EpollFlags::EPOLLIN, Token::Changes.encode()),
            )?;
        }
        let mut forwarder = Forwarder {
            epoll,
            to_provider,
            provider: true,
            listeners: Vec::new(),
            udp: Vec::new(),
            changes,
            conns: Slab::new(),
            flows: Slab::new(),
            flow_of: HashMap::new(),
            waiting: HashMap::new(),
            next_id: 0,
            spares: Spares::default(),
            outbox: VecDeque::new(),
            keep_clients,
            pipes: Pipes::default(),
            again: Vec::new(),
            starved: false,
            full: false,
            fd_budget: fd_budget(),
            paused: None,
            clients: Clients::default(),
            idle,
            idle_check: None,
            now: Instant::now(),
            sweep: None,
            datagram: vec![0; 65536],
            cmsg: nix::cmsg_space!([RawFd; 1]),
        };
        for b in bound {
            forwarder.add(b)?;
        }
        Ok(forwarder)
    }

    pub(super) fn run(&mut self) {
        let mut events = vec![EpollEvent::empty(); 256];
        self.refill();
        loop {
            let timeout = match self.again.is_empty() {
                false => EpollTimeout::ZERO,
                true => {
                    let at = [self.paused, self.sweep, self.idle_check];
                    match at.into_iter().flatten().min() {
                        None => EpollTimeout::NONE,
                        Some(at) => millis_until(at, Instant::now()),
                    }
                }
            };
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(Errno::EINTR) => 0,
                Err(e) => {
                    say!("become-root: forwarding published ports: epoll_wait: {e}");
                    return;
                }
            };
            self.now = Instant::now();
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
            if self.idle_check.is_some_and(|at| at <= now) {
                self.close_idle(now);
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
            Token::Changes => self.apply_changes(),
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
                conn.last = self.now;
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
        // A new pipe only while its two descriptors fit: past that, a buffer.
        let may_pipe = self.fds_held() + 2 <= self.fd_budget;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.last = self.now;
        let last = conn.dir(way.other()).0.state == DirState::Done;
        let (dir, from, to) = conn.dir(way);
        match pump(dir, from, to, &mut self.pipes, may_pipe, last) {
            Pumped::Waiting => {
                if conn.up.state == DirState::Done && conn.down.state == DirState::Done {
                    self.close(key, false);
                }
            }
            Pumped::More => self.again.push(Again::Pump(key, way)),
            Pumped::Failed => self.close(key, true),
        }
    }

    /// Close a connection; `reset` makes both peers see a reset (one failed: the other must
    /// not take the end for a clean one).
    fn close(&mut self, key: Key, reset: bool) {
        // (the sockets close when `conn` goes, at the end of the `if`)
        if let Some(conn) = self.conns.remove(key) {
            self.clients.left(conn.client);
            if reset {
                abort(&conn.host);
                abort(&conn.inside);
            }
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
            if !self.provider {
                return; // the listeners are shut: nothing more comes
            }
            let Some((listener, port)) = &self.listeners[i] else {
                return; // unpublished
            };
            let port = *port;
            let (client, peer, from) = match listener.accept() {
                Ok((client, peer)) => (client, peer, limits::client_of(peer)),
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
            if !self.clients.admit(from) {
                abort(&client); // the client sees a reset at once
                if self.clients.say_now(self.now) {
                    say!("{}", limits::over_limit(from));
                }
                continue;
            }
            if client.set_nonblocking(true).is_err() {
                self.clients.left(from);
                continue; // the client sees the connection close
            }
            // TCP_NODELAY comes from the listener.
            let peer = self.keep_clients.then_some(peer);
            match self
                .spares
                .take()
                .and_then(|spare| connect_now(spare, port, peer))
            {
                Some(inside) => self.connected(client, from, inside),
                // None spare, or it did not connect at once: the provider tries every address
                // inside and waits for a slow one.
                None => {
                    let waiting = Waiting::Tcp(client, from);
                    self.ask_for(Wanted::Connection(Proto::Tcp), port, peer, waiting)
                }
            }
            self.refill();
        }
        self.again.push(Again::Accept(i));
    }

    /// Accept again on every listener (the pause is over, a connection closed, or requests
    /// were answered).
    fn resume(&mut self) {
        self.paused = None;
        self.starved = false;
        self.full = false;
        self.again
            .extend((0..self.listeners.len()).map(Again::Accept));
    }

    /// The descriptors the connections, flows and pipes could hold, at most: two for each
    /// connection, and for each request in flight (a TCP client waits for its socket inside).
    fn fds_held(&self) -> usize {
        let conns = (self.conns.len() + self.waiting.len()) * FDS_PER_CONN;
        conns + self.flows.len() + 2 * self.pipes.live() + self.spares.len()
    }

    /// Reset the TCP connections idle for the idle timeout, and note when to look again: when
    /// the oldest left may be due, but not sooner than a sixteenth of the timeout from now (a
    /// look goes over every connection).
    fn close_idle(&mut self, now: Instant) {
        let Some(idle) = self.idle else {
            return;
        };
        let mut due = Vec::new();
        let mut oldest: Option<Instant> = None;
        for (key, conn) in self.conns.keys() {
            if conn.last + idle <= now {
                due.push(key);
            } else {
                oldest = Some(oldest.map_or(conn.last, |at| at.min(conn.last)));
            }
        }
        for key in due {
            self.close(key, true);
        }
        self.idle_check = oldest.map(|at| (at + idle).max(now + idle / 16));
    }

    /// Ask for the spare sockets the pool wants (none for UDP only), as far as requests and
    /// descriptors allow.
    fn refill(&mut self) {
        if self.listeners.iter().all(Option::is_none) {
            return;
        }
        for _ in 0..self.spares.wanted() {
            if !self.provider
                || self.waiting.len() >= MAX_WAITING
                || self.fds_held() + FDS_PER_CONN >= self.fd_budget
            {
                return;
            }
            self.spares.asked();
            self.ask(Wanted::Spare, 0, Waiting::Spare);
        }
    }

    fn ask(&mut self, wanted: Wanted, port: u16, waiting: Waiting) {
        self.ask_for(wanted, port, None, waiting)
    }

    /// Ask the provider, for a client whose address the connection is to keep.
    fn ask_for(&mut self, wanted: Wanted, port: u16, client: Option<SocketAddr>, waiting: Waiting) {
        // Ids are unique among those in flight: at most MAX_WAITING of 2^32.
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.waiting.insert(id, waiting);
        let request = Request {
            id,
            wanted,
            port,
            client,
        };
        self.outbox.push_back(request.encode());
        self.flush();
    }

    fn flush(&mut self) {
        while let Some(request) = self.outbox.front() {
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
            let iov = [IoSlice::new(request)];
            match sendmsg::<()>(self.to_provider.channel.as_raw_fd(), &iov, &[], flags, None) {
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
                self.to_provider.channel.as_raw_fd(),
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
                Waiting::Tcp(client, from) => match socket {
                    Some(socket) => self.connected(client, from, TcpStream::from(socket)),
                    None => self.clients.left(from),
                },
                Waiting::Udp(key) => self.flow_ready(key, socket.map(UdpSocket::from)),
                Waiting::Spare => self.spares.arrived(socket),
            }
        }
        if self.starved && self.waiting.len() < MAX_WAITING {
            self.resume();
        }
    }

    fn connected(&mut self, host: TcpStream, client: IpAddr, inside: TcpStream) {
        let key = self.conns.insert(Conn {
            host,
            inside,
            up: Dir::default(),
            down: Dir::default(),
            client,
            last: self.now,
        });
        if let Some(idle) = self.idle {
            self.idle_check.get_or_insert(self.now + idle);
        }
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

    /// The provider is gone (killed by COMMAND, or with the namespace at the end): no new
    /// connection can be made inside. The TCP ports then refuse connections at once rather
    /// than accept them only to close them: shutdown(SHUT_RD) of a listener stops it
    /// listening (its queue is reset) and keeps its port bound (SOCK_BINDPORT_LOCK), so no
    /// one else can take it. Connections made stay; new UDP clients are dropped.
    /// become-root's supervision is told (Provider::gone), to say so.
    fn provider_gone(&mut self) {
        if !self.provider {
            return;
        }
        self.provider = false;
        self.outbox.clear();
        self.spares = Spares::default(); // their namespace is going
        for (_, waiting) in self.waiting.drain() {
            match waiting {
                Waiting::Tcp(_, from) => self.clients.left(from),
                Waiting::Udp(key) => {
                    if let Some(flow) = self.flows.remove(key) {
                        self.flow_of.remove(&(flow.port, flow.client));
                    }
                }
                Waiting::Spare => {}
            }
        }
        let _ = self.epoll.delete(&self.to_provider.channel);
        for (listener, _) in self.listeners.iter().flatten() {
            let _ = self.epoll.delete(listener);
            let _ = nix::sys::socket::shutdown(listener.as_raw_fd(), Shutdown::Read);
        }
        self.to_provider.went();
    }
}

/// Make the peer of `socket` see a reset when it closes (SO_LINGER 0), not a clean end.
fn abort(socket: &TcpStream) {
    let abort = nix::libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let _ = setsockopt(socket, sockopt::Linger, &abort);
}

fn io_errno(e: io::Error) -> Errno {
    Errno::from_raw(errno_of(&e))
}
