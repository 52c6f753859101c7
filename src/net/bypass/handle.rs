//! One stopped syscall, decided: read the destination once from the process's memory, check
//! that the notification is still live (so that what was read is that process's, and its
//! descriptor below is too), look at its socket, and either put a host socket in its place
//! or let the call continue in the namespace.
//!
//! The destination connected is become-root's own copy: a thread of the program that
//! rewrites the address after it was read changes nothing (the race bypass4netns documents,
//! where the kernel re-reads the address on continue). sendto(2) and sendmsg(2) of a UDP
//! socket continue on the new socket, so the kernel reads their destination again: what a
//! racing thread can reach that way is what the host socket can, which its device binding
//! keeps off the host's loopback (socket.rs).

use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::libc;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use nix::sys::uio::{RemoteIoVec, process_vm_readv};
use nix::unistd::Pid;

use super::filter::{Call, NATIVE_ARCH};
use super::policy::{Policy, Verdict, parse_sockaddr, sockaddr_bytes};
use super::socket::{Kind, Sockets, Where, is_cloexec, is_fresh};
use crate::sys::{self, Notification};

/// How a stopped syscall is answered.
#[derive(Debug)]
pub enum Answer {
    /// Carried out by the kernel as the program asked (in the namespace, or on the socket
    /// just installed).
    Continue,
    /// Returns this value.
    Value(i64),
    /// Fails with this error.
    Fail(Errno),
    /// A blocking connect whose host socket is connecting: answered once it is writable.
    Pending(Pending),
}

/// A blocking connect under way on the host.
#[derive(Debug)]
pub struct Pending {
    pub id: u64,
    pub host: OwnedFd,
    /// The program's SO_SNDTIMEO, if it set one: when this timer fires, the wait ends as the
    /// kernel ends a blocking connect that timed out (EINPROGRESS, the connection going on).
    pub timer: Option<TimerFd>,
    target: Target,
}

/// Where the host socket goes: the descriptor number in the process, and the flags of the
/// descriptor and of the file it replaces.
#[derive(Debug, Clone, Copy)]
struct Target {
    fd: i32,
    cloexec: bool,
    flags: OFlag,
}

/// The longest sockaddr a program may pass (sockaddr_storage).
const SOCKADDR_MAX: u64 = 128;

pub fn decide(
    listener: &OwnedFd,
    sockets: &mut Sockets,
    policy: &Policy,
    n: &Notification,
) -> Answer {
    if n.arch != NATIVE_ARCH {
        return Answer::Continue;
    }
    let fd = n.args[0] as i32;
    match Call::of(n.nr) {
        Some(Call::Connect) => connect(listener, sockets, policy, n, fd, n.args[1], n.args[2]),
        Some(Call::SendTo) => send(listener, sockets, policy, n, fd, n.args[4], n.args[5]),
        Some(Call::SendMsg | Call::SendMmsg) => {
            // struct msghdr (the first of an mmsghdr): msg_name, then msg_namelen.
            match read_memory(n.pid, n.args[1], 12) {
                Some(h) => {
                    let name = u64::from_ne_bytes(h[..8].try_into().unwrap_or_default());
                    let len = u32::from_ne_bytes(h[8..12].try_into().unwrap_or_default());
                    send(listener, sockets, policy, n, fd, name, u64::from(len))
                }
                None => Answer::Continue,
            }
        }
        Some(Call::Listen) => listen(listener, sockets, n, fd),
        None => Answer::Continue,
    }
}

/// Send the answer; a process that is gone meanwhile (ENOENT) needs none.
pub fn reply(listener: &OwnedFd, id: u64, answer: Answer) {
    let _ = match answer {
        Answer::Continue | Answer::Pending(_) => sys::notif_send(listener, id, 0, 0, true),
        Answer::Value(v) => sys::notif_send(listener, id, v, 0, false),
        Answer::Fail(e) => sys::notif_send(listener, id, 0, e as i32, false),
    };
}

/// What a call's socket and destination are, when it is one to bypass.
struct Bypass {
    host: OwnedFd,
    dest: SocketAddr,
    kind: Kind,
    target: Target,
}

/// The common steps of connect and send: None means continue in the namespace.
fn prepare(
    listener: &OwnedFd,
    sockets: &mut Sockets,
    policy: &Policy,
    n: &Notification,
    fd: i32,
    addr: u64,
    len: u64,
) -> Option<Bypass> {
    if addr == 0 || !(2..=SOCKADDR_MAX).contains(&len) {
        return None;
    }
    let bytes = read_memory(n.pid, addr, len as usize)?;
    let dest = match policy.verdict(parse_sockaddr(&bytes)?) {
        Verdict::Inside => return None,
        Verdict::Host(dest) => dest,
    };
    let tgid = tgid_of(n.pid)?;
    let pidfd = sys::pidfd_open(Pid::from_raw(tgid as i32)).ok()?;
    let sock = sys::pidfd_getfd(&pidfd, fd).ok()?;
    // Still waiting: the memory read and the descriptor taken are that very process's (its
    // pid cannot have been reused while it waits).
    if !sys::notif_id_valid(listener, n.id) {
        return None;
    }
    let kind = Kind::of(&sock)?;
    if !(kind.tcp() || kind.udp())
        || sockets.where_is(&sock) != Where::Namespace
        || !is_fresh(&sock)
    {
        return None;
    }
    let flags = fcntl(&sock, FcntlArg::F_GETFL).ok()?;
    let target = Target {
        fd,
        cloexec: is_cloexec(tgid, fd),
        flags: OFlag::from_bits_truncate(flags),
    };
    let host = sockets
        .replacement(&sock, kind, dest, policy.allow_host_loopback)
        .ok()??;
    Some(Bypass {
        host,
        dest,
        kind,
        target,
    })
}

fn connect(
    listener: &OwnedFd,
    sockets: &mut Sockets,
    policy: &Policy,
    n: &Notification,
    fd: i32,
    addr: u64,
    len: u64,
) -> Answer {
    let Some(b) = prepare(listener, sockets, policy, n, fd, addr, len) else {
        return Answer::Continue;
    };
    let blocking = !b.target.flags.contains(OFlag::O_NONBLOCK);
    match sys::connect_raw(&b.host, &sockaddr_bytes(b.dest)) {
        Ok(()) => finish(listener, n.id, &b.host, b.target, Answer::Value(0)),
        Err(Errno::EINPROGRESS) if blocking && b.kind.tcp() => Answer::Pending(Pending {
            id: n.id,
            timer: send_timeout(&b.host).and_then(timer),
            host: b.host,
            target: b.target,
        }),
        Err(Errno::EINPROGRESS) => finish(
            listener,
            n.id,
            &b.host,
            b.target,
            Answer::Fail(Errno::EINPROGRESS),
        ),
        // The program's socket stays as it was (fresh), as after a failed connect of its own.
        Err(e) => Answer::Fail(e),
    }
}

/// A pending connect's host socket is writable: connected, or failed.
pub fn complete(listener: &OwnedFd, p: Pending) {
    let mut err = [0u8; 4];
    let answer = match sys::getsockopt_raw(&p.host, libc::SOL_SOCKET, libc::SO_ERROR, &mut err) {
        Ok(_) => match i32::from_ne_bytes(err) {
            0 => finish(listener, p.id, &p.host, p.target, Answer::Value(0)),
            e => Answer::Fail(Errno::from_raw(e)),
        },
        Err(e) => Answer::Fail(e),
    };
    reply(listener, p.id, answer);
}

/// A pending connect's SO_SNDTIMEO ran out: its socket goes in place still connecting, and
/// the program gets EINPROGRESS, as from the kernel's own blocking connect(2) (connect(2),
/// socket(7) on SO_SNDTIMEO).
pub fn timed_out(listener: &OwnedFd, p: Pending) {
    let answer = finish(
        listener,
        p.id,
        &p.host,
        p.target,
        Answer::Fail(Errno::EINPROGRESS),
    );
    reply(listener, p.id, answer);
}

/// The send timeout (SO_SNDTIMEO, a struct timeval) of `host`, which carries the program's
/// options (socket.rs); None when there is none.
fn send_timeout(host: &OwnedFd) -> Option<Duration> {
    let mut tv = [0u8; 16];
    let len = sys::getsockopt_raw(host, libc::SOL_SOCKET, libc::SO_SNDTIMEO, &mut tv).ok()?;
    if len != tv.len() {
        return None;
    }
    let secs = u64::from_ne_bytes(tv[..8].try_into().ok()?);
    let micros = u64::from_ne_bytes(tv[8..].try_into().ok()?);
    let timeout = Duration::from_secs(secs) + Duration::from_micros(micros);
    (!timeout.is_zero()).then_some(timeout)
}

fn timer(after: Duration) -> Option<TimerFd> {
    let flags = TimerFlags::TFD_CLOEXEC | TimerFlags::TFD_NONBLOCK;
    let timer = TimerFd::new(ClockId::CLOCK_MONOTONIC, flags).ok()?;
    let when = Expiration::OneShot(TimeSpec::from_duration(after));
    timer.set(when, TimerSetTimeFlags::empty()).ok()?;
    Some(timer)
}

/// Install `host` at the program's descriptor, with its file's flags, and answer `answer`;
/// a process gone meanwhile gets nothing (and the socket is closed here).
fn finish(listener: &OwnedFd, id: u64, host: &OwnedFd, target: Target, answer: Answer) -> Answer {
    let _ = fcntl(host, FcntlArg::F_SETFL(target.flags));
    match sys::notif_addfd(listener, id, host, target.fd as u32, target.cloexec) {
        Ok(()) => answer,
        Err(_) => Answer::Continue,
    }
}

fn send(
    listener: &OwnedFd,
    sockets: &mut Sockets,
    policy: &Policy,
    n: &Notification,
    fd: i32,
    addr: u64,
    len: u64,
) -> Answer {
    match prepare(listener, sockets, policy, n, fd, addr, len) {
        // Only an unconnected UDP socket's datagram: TCP's sendto with an address (fast open)
        // stays inside.
        Some(b) if b.kind.udp() => finish(listener, n.id, &b.host, b.target, Answer::Continue),
        _ => Answer::Continue,
    }
}

/// listen(2) on a socket of the host's network namespace that is not listening yet: one that
/// become-root put in place (a bypassed connect that failed leaves a closed TCP socket,
/// which could listen) would be a server on the host: refused. Servers stay inside,
/// reachable through --publish.
fn listen(listener: &OwnedFd, sockets: &mut Sockets, n: &Notification, fd: i32) -> Answer {
    let sock = tgid_of(n.pid)
        .and_then(|tgid| sys::pidfd_open(Pid::from_raw(tgid as i32)).ok())
        .and_then(|pidfd| sys::pidfd_getfd(&pidfd, fd).ok());
    let Some(sock) = sock else {
        return Answer::Continue;
    };
    if !sys::notif_id_valid(listener, n.id) || Kind::of(&sock).is_none() {
        return Answer::Continue;
    }
    let mut accepting = [0u8; 4];
    let listening =
        sys::getsockopt_raw(&sock, libc::SOL_SOCKET, libc::SO_ACCEPTCONN, &mut accepting)
            .is_ok_and(|_| i32::from_ne_bytes(accepting) != 0);
    if sockets.where_is(&sock) == Where::Host && sockets.is_bypassed(&sock) && !listening {
        return Answer::Fail(Errno::EOPNOTSUPP);
    }
    Answer::Continue
}

/// `len` bytes at `addr` in the memory of thread `tid`, read once.
fn read_memory(tid: u32, addr: u64, len: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let remote = [RemoteIoVec {
        base: usize::try_from(addr).ok()?,
        len,
    }];
    let n = process_vm_readv(
        Pid::from_raw(tid as i32),
        &mut [IoSliceMut::new(&mut buf)],
        &remote,
    )
    .ok()?;
    (n == len).then_some(buf)
}

/// The process (thread group) of thread `tid`: pidfd_open(2) takes only a thread group's
/// leader before Linux 6.9.
fn tgid_of(tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}
