//! seccomp user notification (seccomp_unotify(2)) and what `--net=bypass` does with the
//! sockets it is told about: a filter with a listener, the listener's ioctls, pidfd_getfd(2),
//! and socket calls by raw level, name and address bytes (the values come from another
//! process and are passed on as they are).

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::libc;

use super::{Forked, check_ret, exit_now, fork_process, own_fd};

/// One instruction of a classic BPF program (linux/filter.h).
pub type BpfInstruction = libc::sock_filter;

/// A syscall the kernel stopped for the supervisor: which, in which process, with which
/// arguments (`seccomp_notif`).
#[derive(Debug, Clone, Copy)]
pub struct Notification {
    /// Valid while the syscall waits for the answer (SECCOMP_IOCTL_NOTIF_ID_VALID).
    pub id: u64,
    /// The thread, as a pid of the supervisor's pid namespace.
    pub pid: u32,
    pub nr: i32,
    pub arch: u32,
    pub args: [u64; 6],
}

/// Install `program` as a seccomp filter of the calling thread, with a listener
/// (SECCOMP_FILTER_FLAG_NEW_LISTENER, Linux 5.0), and return the listener. The kernel allows
/// this to a thread with no_new_privs or CAP_SYS_ADMIN in its user namespace; only one filter
/// of a thread's chain may have a listener (EBUSY otherwise).
pub fn seccomp_filter_with_listener(program: &[BpfInstruction]) -> nix::Result<OwnedFd> {
    let prog = libc::sock_fprog {
        len: u16::try_from(program.len()).map_err(|_| Errno::E2BIG)?,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points to `program`, which lives for the call; the kernel copies the
    // program and keeps no pointer into our memory. A non-negative result is a new descriptor.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &prog as *const libc::sock_fprog,
        )
    };
    check_ret(ret).map(own_fd)
}

/// Wait for the next notification on `listener` (SECCOMP_IOCTL_NOTIF_RECV).
pub fn notif_recv(listener: &OwnedFd) -> nix::Result<Notification> {
    // SAFETY: seccomp_notif is plain old data; the kernel requires it zeroed on input.
    let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: the ioctl writes one seccomp_notif into `n`, which lives for the call.
    let ret = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut n as *mut libc::seccomp_notif,
        )
    };
    check_ret(ret as libc::c_long)?;
    Ok(Notification {
        id: n.id,
        pid: n.pid,
        nr: n.data.nr,
        arch: n.data.arch,
        args: n.data.args,
    })
}

/// Answer notification `id`: the syscall returns `val`, or fails with `error` (an errno,
/// positive) when it is not 0, or (`continue_it`) is carried out by the kernel as asked.
pub fn notif_send(
    listener: &OwnedFd,
    id: u64,
    val: i64,
    error: i32,
    continue_it: bool,
) -> nix::Result<()> {
    let resp = libc::seccomp_notif_resp {
        id,
        val,
        error: -error,
        flags: if continue_it {
            libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32
        } else {
            0
        },
    };
    // SAFETY: the ioctl reads one seccomp_notif_resp from `resp`, which lives for the call.
    let ret = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &resp as *const libc::seccomp_notif_resp,
        )
    };
    check_ret(ret as libc::c_long).map(drop)
}

/// Whether notification `id` still waits for its answer: checked after reading the process's
/// memory, so that what was read is known to be the memory of that very process (its pid
/// could have been reused meanwhile).
pub fn notif_id_valid(listener: &OwnedFd, id: u64) -> bool {
    // SAFETY: the ioctl reads one u64 from `id`, which lives for the call.
    let ret = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            &id as *const u64,
        )
    };
    ret == 0
}

/// Install `src` in the notifying process at descriptor number `target`, replacing what is
/// there (SECCOMP_IOCTL_NOTIF_ADDFD with SECCOMP_ADDFD_FLAG_SETFD, Linux 5.9); `cloexec`
/// gives the new descriptor FD_CLOEXEC. Fails when the notification is no longer pending.
pub fn notif_addfd(
    listener: &OwnedFd,
    id: u64,
    src: &OwnedFd,
    target: u32,
    cloexec: bool,
) -> nix::Result<()> {
    let add = libc::seccomp_notif_addfd {
        id,
        flags: libc::SECCOMP_ADDFD_FLAG_SETFD as u32,
        srcfd: src.as_raw_fd() as u32,
        newfd: target,
        newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
    };
    // SAFETY: the ioctl reads one seccomp_notif_addfd from `add`, which lives for the call;
    // the descriptor it names is ours and stays open during it.
    let ret = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ADDFD,
            &add as *const libc::seccomp_notif_addfd,
        )
    };
    check_ret(ret as libc::c_long).map(drop)
}

/// A copy of descriptor `fd` of the process `pidfd` refers to (pidfd_getfd(2), Linux 5.6;
/// the caller needs ptrace access to it), close-on-exec.
pub fn pidfd_getfd(pidfd: &OwnedFd, fd: i32) -> nix::Result<OwnedFd> {
    // SAFETY: only integers; a non-negative result is a new descriptor nothing else owns.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0u32) };
    check_ret(ret).map(own_fd)
}

/// The network namespace socket `fd` belongs to (ioctl SIOCGSKNS, Linux 4.9): allowed with
/// CAP_NET_ADMIN over that namespace, so it fails with EPERM for a namespace the caller does
/// not own.
pub fn socket_netns(fd: &OwnedFd) -> nix::Result<OwnedFd> {
    const SIOCGSKNS: libc::c_ulong = 0x894C;
    // SAFETY: SIOCGSKNS takes no argument; a non-negative result is a new descriptor.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), SIOCGSKNS as _) };
    check_ret(ret as libc::c_long).map(own_fd)
}

/// socket(2) with raw integers (close-on-exec always).
pub fn socket_raw(domain: i32, ty: i32, protocol: i32) -> nix::Result<OwnedFd> {
    // SAFETY: only integers; a non-negative result is a new descriptor.
    let ret = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) };
    check_ret(ret as libc::c_long).map(own_fd)
}

/// getsockopt(2) into `buf`; returns the length the kernel wrote.
pub fn getsockopt_raw(fd: &OwnedFd, level: i32, name: i32, buf: &mut [u8]) -> nix::Result<usize> {
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `buf`, which lives for the call.
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    check_ret(ret as libc::c_long)?;
    Ok(len as usize)
}

/// setsockopt(2) with the value as bytes.
pub fn setsockopt_raw(fd: &OwnedFd, level: i32, name: i32, value: &[u8]) -> nix::Result<()> {
    // SAFETY: the kernel reads `value.len()` bytes from `value`, which lives for the call.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            value.as_ptr().cast(),
            value.len() as libc::socklen_t,
        )
    };
    check_ret(ret as libc::c_long).map(drop)
}

/// The address bytes in a `sockaddr_storage`, aligned as the kernel's socket calls expect.
fn storage(addr: &[u8]) -> nix::Result<(libc::sockaddr_storage, libc::socklen_t)> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    if addr.len() > std::mem::size_of::<libc::sockaddr_storage>() {
        return Err(Errno::EINVAL);
    }
    // SAFETY: `addr.len()` bytes fit in `ss` (checked above); the regions do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            addr.as_ptr(),
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            addr.len(),
        )
    };
    Ok((ss, addr.len() as libc::socklen_t))
}

/// connect(2) to an address given as the bytes of a sockaddr.
pub fn connect_raw(fd: &OwnedFd, addr: &[u8]) -> nix::Result<()> {
    let (ss, len) = storage(addr)?;
    // SAFETY: `ss` holds `len` valid bytes and lives for the call.
    let ret = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&ss as *const libc::sockaddr_storage).cast(),
            len,
        )
    };
    check_ret(ret as libc::c_long).map(drop)
}

/// getsockname(2) as the bytes of a sockaddr.
pub fn getsockname_raw(fd: &OwnedFd) -> nix::Result<Vec<u8>> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `ss`, which lives for the call.
    let ret = unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    check_ret(ret as libc::c_long)?;
    let len = (len as usize).min(std::mem::size_of::<libc::sockaddr_storage>());
    // SAFETY: `ss` is at least `len` bytes long and initialized (zeroed, then written).
    let bytes = unsafe {
        std::slice::from_raw_parts((&ss as *const libc::sockaddr_storage).cast::<u8>(), len)
    };
    Ok(bytes.to_vec())
}

/// listen(2) with the backlog as given (the kernel caps it at somaxconn).
pub fn listen_raw(fd: &OwnedFd, backlog: i32) -> nix::Result<()> {
    // SAFETY: only integers.
    let ret = unsafe { libc::listen(fd.as_raw_fd(), backlog) };
    check_ret(ret as libc::c_long).map(drop)
}

/// Why `--net=bypass` cannot be had here, found by trying it in a forked child (a filter
/// cannot be removed again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeccompProbe {
    /// A filter with a listener was refused with this error: EINVAL from a kernel without
    /// listeners (before 5.0) or without seccomp, EBUSY where a filter of the process's chain
    /// has one already (a seccomp supervisor above, a --net=bypass run around this one),
    /// EPERM or EACCES where a policy forbids seccomp(2).
    Listener(Errno),
    /// SECCOMP_IOCTL_NOTIF_ADDFD with SECCOMP_ADDFD_FLAG_SETFD is unknown (before 5.9).
    NoAddfd,
    /// The probe itself could not run.
    Probe,
}

/// Try a filter with a listener (SECCOMP_FILTER_FLAG_NEW_LISTENER, after no_new_privs), then
/// SECCOMP_IOCTL_NOTIF_ADDFD with SECCOMP_ADDFD_FLAG_SETFD asked for an id that is not
/// pending, which a kernel that knows the ioctl answers with ENOENT; in a forked child.
pub fn probe_seccomp_addfd() -> Result<(), SeccompProbe> {
    const ALLOW: [BpfInstruction; 1] = [libc::sock_filter {
        code: 0x06,
        jt: 0,
        jf: 0,
        k: 0x7fff_0000,
    }];
    // The child's status: 0 works, 1 no ADDFD, 2 no probe, 100 + errno a refused listener.
    match fork_process() {
        Ok(Forked::Child) => {
            let code = match nix::sys::prctl::set_no_new_privs()
                .and_then(|()| seccomp_filter_with_listener(&ALLOW))
            {
                Err(e) if (e as i32) < 100 => 100 + e as i32,
                Err(_) => 2,
                Ok(listener) => match std::fs::File::open("/").map(OwnedFd::from) {
                    Ok(any) => match notif_addfd(&listener, u64::MAX, &any, 1000, true) {
                        Err(Errno::ENOENT) => 0,
                        _ => 1,
                    },
                    Err(_) => 2,
                },
            };
            exit_now(code)
        }
        Ok(Forked::Parent(child)) => match nix::sys::wait::waitpid(child, None) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
            Ok(nix::sys::wait::WaitStatus::Exited(_, 1)) => Err(SeccompProbe::NoAddfd),
            Ok(nix::sys::wait::WaitStatus::Exited(_, code)) if code > 100 => {
                Err(SeccompProbe::Listener(Errno::from_raw(code - 100)))
            }
            _ => Err(SeccompProbe::Probe),
        },
        Err(_) => Err(SeccompProbe::Probe),
    }
}
