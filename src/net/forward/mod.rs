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
//! (`Forwarder`); the provider is a poll(2) loop ([`serve_sockets`]). What each choice saves
//! was measured with scripts/bench-net (the README quotes the figures):
//! - Requests to the provider are pipelined: each carries an id and its reply names it, so a
//!   burst of connections costs one round trip, not one each; and the provider connects
//!   without blocking, so a server inside that does not accept delays no other connection.
//! - TCP bytes move with splice(2) through a pipe, zero-copy, edge-triggered and non-blocking.
//!   Pipes come from a pool, sized once, and a direction of a connection holds one only while
//!   bytes are in it: an idle connection holds its two sockets and nothing else. (Pipe pages
//!   count against the user's pipe-user-pages-soft, 16384 pages by default: sixty-four 1 MiB
//!   pipes, shared with everything the user runs. Past it the kernel gives new pipes 2
//!   pages.) When the descriptors for a pipe are not there, bytes go through a buffer
//!   instead (pump.rs), so no connection ever waits for another's pipe.
//! - What one client may hold is bounded (limits.rs): PER_CLIENT connections per client
//!   address, and a connection idle for IDLE_TIMEOUT is reset.
//! - If the provider dies while COMMAND runs (COMMAND may kill it), the TCP ports refuse new
//!   connections and become-root says so (Provider::gone).
//! - A connection costs no thread and no pipe of its own, and no message to the provider
//!   either: become-root keeps a few spare TCP sockets made inside and connects one itself,
//!   so a connection's set-up is an accept, a connect and two epoll registrations (the
//!   provider refills the pool meanwhile, and still makes the connections the pool cannot:
//!   a burst beyond it, a server on ::1 only, a slow server).
//! - UDP keeps one connected socket inside per client address, closed after a minute without
//!   a datagram either way.
//! - A TCP server inside sees the client's own address and port (transparent.rs), unless
//!   `--no-client-address`.
//! - A session's ports change while it runs (control.rs, forwarder/live.rs): its own socket
//!   takes host ports bound by `become-root --join=NAME --publish` and closes unpublished ones.

mod control;
mod forwarder;
mod limits;
mod provider;
mod pump;
mod slab;
mod spares;
mod transparent;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

use super::NetError;
use super::ports::{Proto, Publish};
pub use control::{Control, ask as ask_session, listen_at, serve_helper};
use forwarder::Forwarder;
pub use limits::{IDLE_TIMEOUT, IDLE_TIMEOUT_VAR, PER_CLIENT};
pub use provider::serve_sockets;

/// How long a UDP flow may be idle (no datagram either way) before its socket inside closes.
const UDP_IDLE: Duration = Duration::from_secs(60);
/// How long the provider waits for one connection inside (per address, 127.0.0.1 then ::1).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pipe size for splice: larger pipes move more per system call. 1 MiB is
/// /proc/sys/fs/pipe-max-size by default, the most an unprivileged user may ask for.
const PIPE_SIZE: usize = 1 << 20;
/// Empty pipes kept for reuse. Each counts its full size against pipe-user-pages-soft.
const IDLE_PIPES: usize = 4;
/// Size of a buffer that holds a direction's bytes when no pipe can be had.
const BUFFER_SIZE: usize = 1 << 16;
/// Empty buffers kept for reuse.
const IDLE_BUFFERS: usize = 4;
/// Spare TCP sockets inside kept ready for new connections (a burst beyond them goes through
/// the provider, as before the pool).
const SPARES: usize = 16;
/// Provider requests in flight at most; past it, accepting waits (connections queue in the
/// listener's backlog, as they would before a busy server).
const MAX_WAITING: usize = 256;
/// Pipe-fulls one direction moves before others get their turn.
const SPLICE_BUDGET: u32 = 16;
/// Connections accepted, or datagrams read, from one socket before others get their turn.
const BATCH: u32 = 64;
/// Datagrams held for a new UDP flow while its socket inside is on its way.
const UDP_QUEUE: usize = 64;
/// How long accepting pauses when the process is out of descriptors all the same (unless a
/// connection closes sooner).
const FD_PAUSE: Duration = Duration::from_millis(100);
/// The soft limit of open files the forwarder raises its process to, within the hard limit:
/// a connection holds two descriptors, up to six while bytes are in flight.
const OPEN_FILES: u64 = 1 << 16;
/// Descriptors counted for each connection: its two sockets. Its pipes come out of what is
/// left, and when nothing is, its bytes go through a buffer (pump.rs): an idle connection
/// costs two descriptors, not the six it could hold (with 20,000 descriptors, about 9,980
/// idle connections fit, not 3,327).
const FDS_PER_CONN: usize = 2;
/// Descriptors of the open-files limit left to the rest of the process, beyond those it has
/// open when forwarding starts.
const FDS_KEPT: usize = 16;

/// The addresses tried inside, in order: a server may listen on either family.
const INSIDE: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

/// The descriptors connections may hold: the soft limit of open files, less those open now
/// and FDS_KEPT; at least one connection's worth, so that a low limit slows forwarding down
/// (accept's EMFILE pauses it) and never stops it.
pub(super) fn fd_budget() -> usize {
    use nix::sys::resource::{Resource, getrlimit};
    let limit = getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft.min(1 << 20));
    let open = std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count());
    (limit as usize)
        .saturating_sub(open + FDS_KEPT)
        .max(FDS_PER_CONN)
}

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

    /// The host socket, to pass to a running session (live ports).
    pub fn into_fd(self) -> OwnedFd {
        match self.socket {
            HostSocket::Tcp(s) => s.into(),
            HostSocket::Udp(s) => s.into(),
        }
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
/// become-root's end of the provider channel, and whether the provider is gone.
pub struct Provider {
    channel: OwnedFd,
    gone: AtomicBool,
}

impl Provider {
    pub fn new(channel: OwnedFd) -> Self {
        Provider {
            channel,
            gone: AtomicBool::new(false),
        }
    }

    /// Whether the provider is gone (its end of the channel closed): with the namespace at
    /// the end of a run, or killed while COMMAND runs.
    pub fn gone(&self) -> bool {
        self.gone.load(Ordering::Relaxed)
    }

    /// In the forwarder: the provider is gone. become-root's supervision waits on a
    /// signalfd, for its children's SIGCHLD among others: one sent to itself wakes it, to
    /// look at what changed as it does when a child ends.
    fn went(&self) {
        self.gone.store(true, Ordering::Relaxed);
        let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::SIGCHLD);
    }
}

/// The idle timeout of TCP connections: [`IDLE_TIMEOUT`], or what [`IDLE_TIMEOUT_VAR`] says
/// (none for 0). Read before any namespace exists, so that a bad value is an error at once.
pub fn idle_timeout_from_env() -> Result<Option<Duration>, NetError> {
    limits::idle_timeout(std::env::var_os(IDLE_TIMEOUT_VAR).as_deref()).map_err(NetError::Setting)
}

/// Serve every bound port until become-root exits (the thread ends with the process); TCP
/// connections idle for `idle` are reset; with `keep_clients`, a TCP server inside sees its
/// clients' own addresses (transparent.rs). With `control` (a session), ports are published
/// and unpublished while it runs (control.rs), from a thread of their own.
pub fn start(
    bound: Vec<Bound>,
    provider: Arc<Provider>,
    idle: Option<Duration>,
    keep_clients: bool,
    control: Option<Control>,
) {
    if bound.is_empty() && control.is_none() {
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
    let changes = match control {
        None => None,
        Some(control) => {
            let flags = nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK;
            match nix::unistd::pipe2(flags) {
                Ok((wake_r, wake_w)) => {
                    let (tx, rx) = std::sync::mpsc::channel();
                    let entries = bound.iter().map(control::Entry::of).collect();
                    control::serve(control, entries, control::Target::Forwarder(tx, wake_w));
                    Some((rx, wake_r))
                }
                Err(e) => {
                    crate::error::say!("become-root: live ports: pipe2: {e}");
                    None
                }
            }
        }
    };
    std::thread::spawn(move || {
        match Forwarder::new(bound, &provider, idle, keep_clients, changes) {
            Ok(mut forwarder) => forwarder.run(),
            Err(e) => crate::error::say!("become-root: forwarding published ports: {e}"),
        }
    });
}

/// Create the socket provider inside the namespace: in a new pid namespace as a child of
/// init (which outlives COMMAND); otherwise forked twice so that it is become-root's child (a
/// subreaper), not COMMAND's, and COMMAND never sees an unknown child. It leaves when
/// become-root's end of `channel` closes. With `keep_clients` it sets up what keeping a TCP
/// client's address needs (transparent.rs).
pub fn spawn_provider(
    channel: OwnedFd,
    under_init: bool,
    keep_clients: bool,
) -> Result<(), crate::error::Error> {
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
            // Out of the terminal's reach (a session of its own: no Ctrl-C from a run's
            // terminal), but ended by SIGTERM, which become-root blocked for itself: a booted
            // image's shutdown sends it to every process left, and waits for them
            // (systemd-shutdown waited 30 s for this one, "Waiting for process: 2").
            let _ = nix::unistd::setsid();
            let mut term = nix::sys::signal::SigSet::empty();
            term.add(nix::sys::signal::Signal::SIGTERM);
            let _ = term.thread_unblock();
            serve_sockets(channel, keep_clients)
        }
    }
}

#[cfg(test)]
mod tests;
