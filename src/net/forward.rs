//! become-root's own port forwarder (`--port-driver=builtin`, the default).
//!
//! The host side listens in become-root, outside every namespace. A connection to a port
//! inside must be made by a socket created inside the namespace (a socket belongs to the
//! network namespace it was created in, and become-root cannot enter that one: setns(2) would
//! need CAP_SYS_ADMIN in its own user namespace). So a small *socket provider* process stays
//! in the namespace: asked over a unix socket, it connects to the port on the namespace's
//! loopback and passes the connected socket back (SCM_RIGHTS). become-root then moves bytes
//! between the two sockets with splice(2) through a pipe: zero-copy, one thread per direction.
//! UDP keeps one connected socket inside per client address, dropped after a minute idle.

use std::collections::HashMap;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::fcntl::{SpliceFFlags, splice};
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};

use super::NetError;
use super::ports::{Proto, Publish};

/// How long a UDP flow may be idle before its socket inside is closed.
const UDP_IDLE: Duration = Duration::from_secs(60);
/// Pipe size for splice: larger pipes move more per system call.
const PIPE_SIZE: i32 = 1 << 20;

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

/// The two ends of the channel to the socket provider: (become-root's, the provider's).
pub fn provider_channel() -> nix::Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
}

/// The socket provider, inside the namespace: serve requests until become-root's end closes.
/// A request is 3 bytes (protocol, port); the answer is 4 bytes of errno (0 on success), with
/// the connected socket attached on success.
pub fn serve_sockets(channel: OwnedFd) -> ! {
    let mut request = [0u8; 3];
    loop {
        let mut iov = [IoSliceMut::new(&mut request)];
        let n = match recvmsg::<()>(channel.as_raw_fd(), &mut iov, None, MsgFlags::empty()) {
            Ok(msg) => msg.bytes,
            Err(nix::Error::EINTR) => continue,
            Err(_) => 0,
        };
        if n != 3 {
            crate::sys::exit_now(0); // become-root is gone, or spoke nonsense
        }
        let proto = if request[0] == 1 {
            Proto::Udp
        } else {
            Proto::Tcp
        };
        let port = u16::from_be_bytes([request[1], request[2]]);
        let (errno, socket) = match connect_inside(proto, port) {
            Ok(s) => (0i32, Some(s)),
            Err(e) => (e.raw_os_error().unwrap_or(nix::libc::EIO), None),
        };
        let reply = errno.to_le_bytes();
        let iov = [IoSlice::new(&reply)];
        let fds: Vec<RawFd> = socket.iter().map(|s| s.as_raw_fd()).collect();
        let cmsg = [ControlMessage::ScmRights(&fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
        if sendmsg::<()>(channel.as_raw_fd(), &iov, cmsgs, MsgFlags::empty(), None).is_err() {
            crate::sys::exit_now(0);
        }
    }
}

/// Connect to `port` on the namespace's loopback: 127.0.0.1, then ::1 (a server may listen
/// on either family).
fn connect_inside(proto: Proto, port: u16) -> io::Result<OwnedFd> {
    let mut last = io::Error::from_raw_os_error(nix::libc::ECONNREFUSED);
    for ip in ["127.0.0.1", "::1"] {
        let addr = SocketAddr::new(ip.parse().expect("literal"), port);
        let result = match proto {
            Proto::Tcp => {
                TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map(OwnedFd::from)
            }
            Proto::Udp => {
                let local = if addr.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                UdpSocket::bind(local).and_then(|s| s.connect(addr).map(|()| OwnedFd::from(s)))
            }
        };
        match result {
            Ok(fd) => return Ok(fd),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// become-root's end of the provider channel. Requests are paired with answers, so one at a
/// time.
pub struct Provider {
    channel: Mutex<OwnedFd>,
}

impl Provider {
    pub fn new(channel: OwnedFd) -> Self {
        Provider {
            channel: Mutex::new(channel),
        }
    }

    fn connect(&self, proto: Proto, port: u16) -> io::Result<OwnedFd> {
        let channel = self.channel.lock().unwrap_or_else(|e| e.into_inner());
        let port = port.to_be_bytes();
        let request = [u8::from(proto == Proto::Udp), port[0], port[1]];
        sendmsg::<()>(
            channel.as_raw_fd(),
            &[IoSlice::new(&request)],
            &[],
            MsgFlags::empty(),
            None,
        )?;
        let mut reply = [0u8; 4];
        let mut iov = [IoSliceMut::new(&mut reply)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            channel.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut fd = None;
        for cmsg in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                for raw in fds {
                    fd = Some(crate::sys::own_received_fd(raw));
                }
            }
        }
        if msg.bytes != 4 {
            return Err(io::Error::from_raw_os_error(nix::libc::EPIPE));
        }
        match (i32::from_le_bytes(reply), fd) {
            (0, Some(fd)) => Ok(fd),
            (0, None) => Err(io::Error::from_raw_os_error(nix::libc::EPROTO)),
            (errno, _) => Err(io::Error::from_raw_os_error(errno)),
        }
    }
}

/// Serve every bound port until become-root exits (the threads end with the process).
pub fn start(bound: Vec<Bound>, provider: Arc<Provider>) {
    for b in bound {
        let provider = Arc::clone(&provider);
        let ns_port = b.publish.ns_port;
        match b.socket {
            HostSocket::Tcp(listener) => {
                std::thread::spawn(move || serve_tcp(listener, ns_port, provider));
            }
            HostSocket::Udp(socket) => {
                std::thread::spawn(move || serve_udp(socket, ns_port, provider));
            }
        }
    }
}

fn serve_tcp(listener: TcpListener, ns_port: u16, provider: Arc<Provider>) {
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        let inside = match provider.connect(Proto::Tcp, ns_port) {
            Ok(fd) => TcpStream::from(fd),
            Err(_) => continue, // nothing listens inside: the client sees the connection close
        };
        let _ = client.set_nodelay(true);
        let _ = inside.set_nodelay(true);
        let (Ok(client2), Ok(inside2)) = (client.try_clone(), inside.try_clone()) else {
            continue;
        };
        std::thread::spawn(move || pump(client, inside));
        std::thread::spawn(move || pump(inside2, client2));
    }
}

/// Move bytes from `from` to `to` with splice(2) until `from` ends, then pass the end on.
fn pump(from: TcpStream, to: TcpStream) {
    let _ = splice_all(&from, &to);
    let _ = to.shutdown(std::net::Shutdown::Write);
    let _ = from.shutdown(std::net::Shutdown::Read);
}

fn splice_all(from: &TcpStream, to: &TcpStream) -> nix::Result<()> {
    let (pipe_r, pipe_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let _ = nix::fcntl::fcntl(&pipe_w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    // SPLICE_F_MORE (a cork hint) cost a fifth of the throughput in measurements here.
    let flags = SpliceFFlags::SPLICE_F_MOVE;
    loop {
        let n = match splice(
            from.as_fd(),
            None,
            pipe_w.as_fd(),
            None,
            PIPE_SIZE as usize,
            flags,
        ) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e),
        };
        let mut left = n;
        while left > 0 {
            match splice(pipe_r.as_fd(), None, to.as_fd(), None, left, flags) {
                Ok(0) => return Ok(()),
                Ok(m) => left -= m,
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

fn serve_udp(host: UdpSocket, ns_port: u16, provider: Arc<Provider>) {
    let host = Arc::new(host);
    let flows: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Arc::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, client)) = host.recv_from(&mut buf) else {
            continue;
        };
        let existing = flows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&client)
            .cloned();
        let inside = match existing {
            Some(s) => s,
            None => {
                let Ok(fd) = provider.connect(Proto::Udp, ns_port) else {
                    continue;
                };
                let inside = Arc::new(UdpSocket::from(fd));
                flows
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(client, Arc::clone(&inside));
                let (host, flows, reply) =
                    (Arc::clone(&host), Arc::clone(&flows), Arc::clone(&inside));
                std::thread::spawn(move || {
                    let _ = reply.set_read_timeout(Some(UDP_IDLE));
                    let mut buf = vec![0u8; 65536];
                    while let Ok(n) = reply.recv(&mut buf) {
                        let _ = host.send_to(&buf[..n], client);
                    }
                    flows
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&client);
                });
                inside
            }
        };
        let _ = inside.send(&buf[..n]);
    }
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
