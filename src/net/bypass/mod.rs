//! `--net=bypass`: the namespace's outbound inet sockets become sockets of the host's network
//! namespace, so that they run at the host's own speed (bypass4netns's idea, built in).
//!
//! The namespace process installs a seccomp filter ([`filter`]) just before COMMAND, with a
//! listener (seccomp_unotify(2)), and tells become-root over a socketpair where the listener
//! is, and fresh sockets of the namespace (each domain and type), templates of its defaults:
//! become-root takes copies (pidfd_getfd(2)). become-root, outside in the host's network namespace, answers each stopped
//! syscall in its supervision loop ([`Supervisor`]): a connect(2), or a sendto(2)/sendmsg(2)
//! with a destination, of a TCP or UDP socket that nothing bound, to a destination
//! [`policy`] sends to the host, gets a socket made on the host (`socket`) in place of the
//! namespace's (SECCOMP_IOCTL_NOTIF_ADDFD with SECCOMP_ADDFD_FLAG_SETFD, at the same number).
//! Everything else, and everything become-root cannot handle, continues in the namespace
//! (SECCOMP_USER_NOTIF_FLAG_CONTINUE), with the helper's network: it fails closed.
//!
//! No privilege is gained: become-root acts as the caller, in the caller's own network
//! namespace, so a bypassed socket reaches exactly what the caller reaches outside (as the
//! helpers' sockets do), never the host's loopback unless `--allow-host-loopback`.

pub mod filter;
mod handle;
pub mod policy;
mod socket;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::libc;
use nix::poll::{PollFd, PollFlags};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

pub use policy::Policy;

use crate::sys;

/// Why `--net=bypass` cannot be had, for the error and for `--check`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BypassError {
    #[error("--net=bypass: this kernel lacks {0}")]
    Kernel(&'static str),
    #[error("--net=bypass: this build does not know its architecture's seccomp ABI")]
    Architecture,
    #[error("--net=bypass: a seccomp filter with a listener is refused here: {}", refusal(*.0))]
    Install(nix::Error),
}

fn refusal(errno: nix::Error) -> String {
    match errno {
        nix::Error::EBUSY => "a filter above this process has a listener already (a seccomp \
                              supervisor, or a --net=bypass run around this one)"
            .into(),
        errno => errno.desc().into(),
    }
}

impl BypassError {
    pub fn hint(&self) -> String {
        match self {
            BypassError::Kernel(_) | BypassError::Architecture => {
                "use --net=auto (slirp4netns or pasta carry every connection); `become-root \
                 --check` says what the kernel has"
                    .into()
            }
            BypassError::Install(nix::Error::EBUSY) => {
                "the kernel allows one listener per process's filters: use --net=auto here".into()
            }
            BypassError::Install(_) => {
                "a seccomp policy of the caller's (a container's, a systemd unit's \
                 SystemCallFilter) may forbid seccomp(2): use --net=auto"
                    .into()
            }
        }
    }
}

impl From<BypassError> for crate::error::Error {
    fn from(e: BypassError) -> crate::error::Error {
        let hint = e.hint();
        crate::error::Error::new("network", e.to_string()).with_hint(hint)
    }
}

/// Whether this kernel and build can bypass: a listener and ADDFD with SETFD, probed in a
/// child (`--check`; a run finds out where it installs the filter and takes the listener).
pub fn available() -> Result<(), BypassError> {
    if !filter::SUPPORTED {
        return Err(BypassError::Architecture);
    }
    sys::probe_seccomp_addfd().map_err(|e| match e {
        sys::SeccompProbe::Listener(nix::Error::EINVAL) => BypassError::Kernel(LISTENER),
        sys::SeccompProbe::Listener(errno) => BypassError::Install(errno),
        sys::SeccompProbe::NoAddfd => BypassError::Kernel(ADDFD),
        sys::SeccompProbe::Probe => BypassError::Kernel("a process to probe seccomp in"),
    })
}

const LISTENER: &str = "seccomp user notification (SECCOMP_FILTER_FLAG_NEW_LISTENER, Linux 5.0)";
const ADDFD: &str = "SECCOMP_IOCTL_NOTIF_ADDFD with SECCOMP_ADDFD_FLAG_SETFD (Linux 5.9)";

/// The channel from the namespace process (which sends the listener) to become-root:
/// (become-root's end, the namespace process's end).
pub fn channel() -> nix::Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
}

/// Inside, just before COMMAND: install the filter (root in the user namespace has
/// CAP_SYS_ADMIN there, which the kernel asks of a filter without no_new_privs), then tell
/// become-root the numbers of the listener and of the templates, wait until it has taken
/// its copies (pidfd_getfd(2): sendmsg(2) is one of the calls the filter stops, and nothing
/// would answer it yet), and keep none of them: COMMAND must not answer its own
/// notifications.
pub fn install_inside(channel: OwnedFd) -> Result<(), BypassError> {
    let listener = sys::seccomp_filter_with_listener(&filter::program()).map_err(|e| match e {
        nix::Error::EINVAL => BypassError::Kernel(LISTENER),
        e => BypassError::Install(e),
    })?;
    let mut numbers = vec![listener.as_raw_fd()];
    let mut templates = Vec::new();
    for domain in [libc::AF_INET, libc::AF_INET6] {
        for ty in [libc::SOCK_STREAM, libc::SOCK_DGRAM] {
            // A namespace without IPv6 (ipv6.disable=1) has no such template.
            if let Ok(t) = sys::socket_raw(domain, ty, 0) {
                numbers.push(t.as_raw_fd());
                templates.push(t);
            }
        }
    }
    let bytes: Vec<u8> = numbers.iter().flat_map(|n| n.to_ne_bytes()).collect();
    nix::unistd::write(&channel, &bytes).map_err(BypassError::Install)?;
    // Taken (a byte); EOF: become-root could not use them, says why, and ends the run, which
    // COMMAND must not outrun.
    if !matches!(nix::unistd::read(&channel, &mut [0u8; 1]), Ok(1)) {
        sys::exit_now(crate::error::EXIT_FAILURE);
    }
    Ok(())
}

/// A join's channel (session::join): the sender is a process become-root did not fork
/// itself (the joined COMMAND, in the session's pid namespace): each message carries its
/// pid as become-root's pid namespace sees it (SO_PASSCRED, unix(7)).
pub fn join_channel() -> nix::Result<(OwnedFd, OwnedFd)> {
    let (outside, inside) = channel()?;
    nix::sys::socket::setsockopt(&outside, nix::sys::socket::sockopt::PassCred, &true)?;
    Ok((outside, inside))
}

/// become-root's side: copies of the listener and the templates of the process that
/// installed the filter, once it says their numbers: `child`, or with None the sender the
/// message's credentials name ([`join_channel`]); None when it ended first (it failed, and
/// reports that itself).
pub fn receive(
    channel: OwnedFd,
    child: Option<nix::unistd::Pid>,
    policy: Policy,
) -> Result<Option<Supervisor>, BypassError> {
    let mut bytes = [0u8; 4 * 5];
    let (n, sender) = match sys::recv_with_sender(&channel, &mut bytes) {
        Ok((n, sender)) if n >= 4 => (n, sender.map(nix::unistd::Pid::from_raw)),
        _ => return Ok(None),
    };
    let Some(child) = child.or(sender) else {
        return Ok(None);
    };
    let taken: nix::Result<Vec<OwnedFd>> = sys::pidfd_open(child).and_then(|pidfd| {
        bytes[..n]
            .chunks_exact(4)
            .map(|c| sys::pidfd_getfd(&pidfd, i32::from_ne_bytes([c[0], c[1], c[2], c[3]])))
            .collect()
    });
    let mut fds = taken.map_err(|_| {
        BypassError::Kernel("pidfd_getfd (Linux 5.6), or ptrace access to the namespace process")
    })?;
    let listener = fds.remove(0);
    // A kernel that has listeners but not ADDFD with SETFD (before 5.9) could only let every
    // connection continue: refused, by name.
    if let Err(e) = sys::notif_addfd(&listener, u64::MAX, &listener, 1000, true)
        && e != nix::Error::ENOENT
    {
        return Err(BypassError::Kernel(ADDFD));
    }
    let sockets = socket::Sockets::new(fds).ok_or(BypassError::Kernel(
        "SIOCGSKNS (the network namespace of a socket, Linux 4.9)",
    ))?;
    // Only now may the namespace process go on to COMMAND.
    let _ = nix::unistd::write(&channel, b"1");
    Ok(Some(Supervisor {
        listener: Some(listener),
        sockets,
        policy,
        pending: Vec::new(),
    }))
}

/// become-root's answerer of the namespace's socket calls: the listener, what it knows of
/// sockets, and the blocking connects under way.
pub struct Supervisor {
    /// None once every process of the filter is gone.
    listener: Option<OwnedFd>,
    sockets: socket::Sockets,
    policy: Policy,
    pending: Vec<handle::Pending>,
}

impl Supervisor {
    /// The descriptors to poll: the listener (readable: a notification), then each pending
    /// connect's host socket (writable: connected or failed) and its timer, if it has one
    /// (readable: the program's SO_SNDTIMEO ran out).
    pub fn interest(&self) -> Vec<PollFd<'_>> {
        let mut fds = Vec::new();
        if let Some(listener) = &self.listener {
            fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
        }
        for p in &self.pending {
            fds.push(PollFd::new(p.host.as_fd(), PollFlags::POLLOUT));
            if let Some(timer) = &p.timer {
                fds.push(PollFd::new(timer.as_fd(), PollFlags::POLLIN));
            }
        }
        fds
    }

    /// What poll said of [`Supervisor::interest`]'s descriptors, in the same order.
    pub fn on_events(&mut self, revents: &[PollFlags]) {
        let (listener, mut rest) = match self.listener {
            Some(_) => (
                revents.first().copied(),
                revents.get(1..).unwrap_or_default(),
            ),
            None => (None, revents),
        };
        // Per pending connect: whether its socket is done, else whether its time ran out.
        let mut ended = Vec::new();
        for (i, p) in self.pending.iter().enumerate() {
            let width = 1 + usize::from(p.timer.is_some());
            let (own, next) = rest.split_at(width.min(rest.len()));
            rest = next;
            match own {
                [socket, ..] if !socket.is_empty() => ended.push((i, false)),
                [_, timer] if !timer.is_empty() => ended.push((i, true)),
                _ => {}
            }
        }
        for (i, timed_out) in ended.into_iter().rev() {
            let p = self.pending.remove(i);
            match (&self.listener, timed_out) {
                (Some(listener), false) => handle::complete(listener, p),
                (Some(listener), true) => handle::timed_out(listener, p),
                (None, _) => {}
            }
        }
        match listener {
            Some(r) if r.contains(PollFlags::POLLIN) => self.notified(),
            // Every process of the filter is gone.
            Some(r) if !r.is_empty() => {
                self.listener = None;
                self.pending.clear();
            }
            _ => {}
        }
    }

    fn notified(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        // ENOENT: the process was interrupted (or killed) since poll said so.
        let Ok(n) = sys::notif_recv(listener) else {
            return;
        };
        let answer = handle::decide(listener, &mut self.sockets, &self.policy, &n);
        match answer {
            handle::Answer::Pending(p) => self.pending.push(p),
            answer => handle::reply(listener, n.id, answer),
        }
    }
}
