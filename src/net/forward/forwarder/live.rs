//! The event loop's side of live ports (control.rs): a port published adds its host socket
//! to the loop, one unpublished closes it. Connections and UDP flows it already carries go on
//! until they end or idle out: only new clients are refused.

use nix::sys::epoll::{EpollEvent, EpollFlags};
use nix::sys::socket::{setsockopt, sockopt};

use super::{EDGE, Forwarder, io_errno};
use crate::net::forward::control::Change;
use crate::net::forward::slab::Token;
use crate::net::forward::{Bound, HostSocket};
use crate::net::ports::Proto;

impl Forwarder<'_> {
    /// Serve `bound` from now on, in a free slot.
    pub(super) fn add(&mut self, bound: Bound) -> nix::Result<()> {
        let port = bound.publish.ns_port;
        match bound.socket {
            HostSocket::Tcp(listener) => {
                listener.set_nonblocking(true).map_err(io_errno)?;
                // Accepted sockets inherit it: one system call per port, not per connection.
                setsockopt(&listener, sockopt::TcpNoDelay, &true)?;
                let i = free_slot(&mut self.listeners);
                let token = Token::Listener(i as u32).encode();
                self.epoll.add(
                    &listener,
                    EpollEvent::new(EpollFlags::EPOLLIN | EDGE, token),
                )?;
                self.listeners[i] = Some((listener, port));
                // Connections may be queued already (a live port): take them now.
                self.again.push(super::Again::Accept(i));
                self.refill();
            }
            HostSocket::Udp(socket) => {
                socket.set_nonblocking(true).map_err(io_errno)?;
                let i = free_slot(&mut self.udp);
                let token = Token::UdpHost(i as u32).encode();
                self.epoll
                    .add(&socket, EpollEvent::new(EpollFlags::EPOLLIN | EDGE, token))?;
                self.udp[i] = Some((socket, port));
                self.again.push(super::Again::UdpHost(i));
            }
        }
        Ok(())
    }

    /// Stop serving the host socket bound to `local`: it closes, and the port is free.
    fn remove(&mut self, local: std::net::SocketAddr, proto: Proto) -> Result<(), String> {
        let found = match proto {
            Proto::Tcp => self.listeners.iter_mut().find_map(|slot| {
                let bound = slot.as_ref()?.0.local_addr().ok()?;
                (bound == local).then(|| {
                    let (listener, _) = slot.take()?;
                    let _ = self.epoll.delete(&listener);
                    Some(())
                })?
            }),
            Proto::Udp => self.udp.iter_mut().find_map(|slot| {
                let bound = slot.as_ref()?.0.local_addr().ok()?;
                (bound == local).then(|| {
                    let (socket, _) = slot.take()?;
                    let _ = self.epoll.delete(&socket);
                    Some(())
                })?
            }),
        };
        found.ok_or_else(|| format!("{local}/{proto} is not served here"))
    }

    /// Carry out the changes the control thread sent, answering each.
    pub(super) fn apply_changes(&mut self) {
        let Some((changes, wake)) = self.changes.take() else {
            return;
        };
        let mut drained = [0u8; 64];
        while matches!(nix::unistd::read(&wake, &mut drained), Ok(n) if n > 0) {}
        while let Ok(change) = changes.try_recv() {
            match change {
                Change::Add(bound, done) => {
                    let outcome = match self.provider {
                        false => Err("its socket provider inside is gone".into()),
                        true => self.add(bound).map_err(|e| format!("serving it: {e}")),
                    };
                    let _ = done.send(outcome);
                }
                Change::Remove(local, proto, done) => {
                    let _ = done.send(self.remove(local, proto));
                }
            }
        }
        self.changes = Some((changes, wake));
    }
}

/// The index of an empty slot, made if there is none.
fn free_slot<T>(slots: &mut Vec<Option<T>>) -> usize {
    match slots.iter().position(Option::is_none) {
        Some(i) => i,
        None => {
            slots.push(None);
            slots.len() - 1
        }
    }
}
