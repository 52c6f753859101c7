//! Processes and namespaces by descriptor: pidfds, the nsfs ioctls, and the loopback interface
//! of the current network namespace.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::{check_ret, own_fd};

/// pidfd_open(2) (Linux 5.3): a descriptor that refers to process `pid` for as long as it is
/// open, so that a signal sent through it can never reach a process that reused the pid.
pub fn pidfd_open(pid: Pid) -> nix::Result<OwnedFd> {
    // SAFETY: only integers; a non-negative result is a new descriptor nothing else owns.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0u32) };
    check_ret(ret).map(own_fd)
}

/// pidfd_send_signal(2): send `sig` to the process `pidfd` refers to, as kill(2) would.
pub fn pidfd_send_signal(pidfd: &OwnedFd, sig: Signal) -> nix::Result<()> {
    pidfd_send_signal_number(pidfd, sig as libc::c_int)
}

/// The same with a signal by number (the real-time ones).
pub fn pidfd_send_signal_number(pidfd: &OwnedFd, signo: libc::c_int) -> nix::Result<()> {
    // SAFETY: a null siginfo pointer asks for the information kill(2) sends; the descriptor is
    // borrowed for the call and the rest are integers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signo,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    check_ret(ret).map(drop)
}

/// The parent of the user namespace `ns` (ioctl NS_GET_PARENT, linux/nsfs.h). Fails with
/// EPERM at the caller's own user namespace, which it may not leave.
pub fn namespace_parent(ns: &OwnedFd) -> nix::Result<OwnedFd> {
    const NS_GET_PARENT: libc::c_ulong = 0xb702; // _IO(0xb7, 0x2)
    // SAFETY: NS_GET_PARENT takes no argument; a non-negative result is a new descriptor
    // nothing else owns.
    let ret = unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_PARENT as _) };
    check_ret(ret as libc::c_long).map(own_fd)
}

/// The user namespace that owns the namespace `ns` (ioctl NS_GET_USERNS, linux/nsfs.h).
pub fn namespace_owner(ns: &OwnedFd) -> nix::Result<OwnedFd> {
    const NS_GET_USERNS: libc::c_ulong = 0xb701; // _IO(0xb7, 0x1)
    // SAFETY: NS_GET_USERNS takes no argument; a non-negative result is a new descriptor
    // nothing else owns.
    let ret = unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_USERNS as _) };
    check_ret(ret as libc::c_long).map(own_fd)
}

/// Bring the loopback interface of the current network namespace up.
pub fn loopback_up() -> nix::Result<()> {
    // SAFETY: socket(2) takes only integers; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes ifru_flags inside `req`, which lives for
    // the whole call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) } < 0 {
        return Err(Errno::last());
    }
    // SAFETY: ifru_flags was just written by the kernel (union member of ifreq).
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: as above; SIOCSIFFLAGS only reads `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}
