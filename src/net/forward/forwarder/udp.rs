//! The event loop's UDP side: one connected socket inside per client of a published port (a
//! flow), asked of the provider when the client's first datagram comes, and closed after
//! UDP_IDLE without a datagram either way.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Instant;

use nix::sys::epoll::{EpollEvent, EpollFlags};

use super::{Again, EDGE, Forwarder, Waiting};
use crate::net::forward::provider::Wanted;
use crate::net::forward::slab::{Key, Token};
use crate::net::forward::{BATCH, MAX_WAITING, UDP_IDLE, UDP_QUEUE};
use crate::net::ports::Proto;

/// A UDP client of one published port, and its socket inside.
pub(super) struct Flow {
    /// Index of the host socket.
    pub(super) port: usize,
    pub(super) client: SocketAddr,
    /// None while the provider is asked for it.
    inside: Option<UdpSocket>,
    /// Datagrams that came before the socket.
    queue: Vec<Vec<u8>>,
    last: Instant,
}

impl Forwarder<'_> {
    pub(super) fn udp_host(&mut self, i: usize) {
        for _ in 0..BATCH {
            let Some((host, _)) = &self.udp[i] else {
                return; // unpublished
            };
            let (n, client) = match host.recv_from(&mut self.datagram) {
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
            let Some((_, port)) = self.udp[i] else {
                return;
            };
            self.ask(Wanted::Connection(Proto::Udp), port, Waiting::Udp(key));
        }
        self.again.push(Again::UdpHost(i));
    }

    pub(super) fn flow_ready(&mut self, key: Key, inside: Option<UdpSocket>) {
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
    pub(super) fn flow(&mut self, key: Key) {
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
                    if let Some((host, _)) = &self.udp[flow.port] {
                        let _ = host.send_to(&self.datagram[..n], flow.client);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Refused: nothing listens inside (any more); the next datagram asks anew.
                Err(_) => return self.drop_flow(key),
            }
        }
        self.again.push(Again::Flow(key));
    }

    pub(super) fn drop_flow(&mut self, key: Key) {
        if let Some(flow) = self.flows.remove(key) {
            self.flow_of.remove(&(flow.port, flow.client));
        }
    }

    /// Close the flows idle for UDP_IDLE, and note when the next one may be.
    pub(super) fn sweep(&mut self, now: Instant) {
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
