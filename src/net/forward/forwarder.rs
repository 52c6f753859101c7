//! The event loop in become-root: one epoll(7) thread serves every published port, its TCP
//! connections and its UDP flows, and asks the provider for the sockets inside.

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, sendmsg, setsockopt, sockopt};

use super::provider::{Reply, Request, Wanted, errno_of, millis_until};
use super::pump::{Conn, Dir, DirState, Pipes, Pumped, Way, pump};
use super::slab::{Key, Slab, Token};
use super::spares::{Spares, connect_now};
use super::{
    BATCH, Bound, FD_PAUSE, FDS_PER_CONN, HostSocket, MAX_WAITING, UDP_IDLE, UDP_QUEUE, fd_budget,
};
use crate::net::ports::Proto;

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
    /// TCP sockets made inside, for new connections.
    spares: Spares,
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
    pub(super) fn new(bound: Vec<Bound>, channel: &'p OwnedFd) -> nix::Result<Self> {
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
            spares: Spares::default(),
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

    pub(super) fn run(&mut self) {
        let mut events = vec![EpollEvent::empty(); 256];
        self.refill();
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
                    crate::error::say!("become-root: forwarding published ports: epoll_wait: {e}");
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
            // TCP_NODELAY comes from the listener.
            match self
                .spares
                .take()
                .and_then(|spare| connect_now(spare, port))
            {
                Some(inside) => self.connected(client, inside),
                // None spare, or it did not connect at once: the provider tries every address
                // inside and waits for a slow one.
                None => self.ask(Wanted::Connection(Proto::Tcp), port, Waiting::Tcp(client)),
            }
            self.refill();
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
        conns + self.flows.len() + 2 * self.pipes.idle.len() + self.spares.len()
    }

    /// Ask for the spare sockets the pool wants (none for UDP only), as far as requests and
    /// descriptors allow.
    fn refill(&mut self) {
        if self.listeners.is_empty() {
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
        // Ids are unique among those in flight: at most MAX_WAITING of 2^32.
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.waiting.insert(id, waiting);
        self.outbox.push_back(Request { id, wanted, port }.encode());
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
                Waiting::Spare => self.spares.arrived(socket),
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
        self.spares = Spares::default(); // their namespace is going
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
            self.ask(Wanted::Connection(Proto::Udp), port, Waiting::Udp(key));
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

fn io_errno(e: io::Error) -> Errno {
    Errno::from_raw(errno_of(&e))
}
