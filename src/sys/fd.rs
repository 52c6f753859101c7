//! Descriptors: what a helper or a forked child keeps, and nothing else (close-on-exec sweeps,
//! close_range(2) with fallbacks, renumbering for helpers, memfds).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use nix::errno::Errno;
use nix::libc;

use super::borrow_fd;

/// Mark every descriptor from 3 up close-on-exec. Used just before exec in helpers so that
/// descriptors the caller gave become-root (a make jobserver) never reach newuidmap,
/// slirp4netns and the like, while COMMAND still gets them.
///
/// Async-signal-safe, so it may run in a `pre_exec` hook.
pub fn cloexec_from_3() {
    cloexec_from(3);
}

/// Mark every descriptor from `first` up close-on-exec: close_range(2) with
/// CLOSE_RANGE_CLOEXEC (Linux 5.11), or on older kernels fcntl on each descriptor below the
/// soft RLIMIT_NOFILE (no descriptor can be open at or above it unless the limit was lowered
/// after it was opened). Marking instead of closing keeps std's own exec-error pipe working.
///
/// Async-signal-safe (only system calls, no allocation), so it may run in a `pre_exec` hook.
pub fn cloexec_from(first: u32) {
    // SAFETY: close_range(2) takes only integers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret != 0 {
        for fd in first..descriptor_limit() {
            // SAFETY: fcntl on a closed descriptor just fails with EBADF.
            unsafe { libc::fcntl(fd as i32, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
}

/// Close the descriptors `first..=last`: close_range(2) (Linux 5.9), or one by one up to the
/// soft RLIMIT_NOFILE where the kernel lacks it.
///
/// Precondition: no Rust object owns a descriptor in the range, or it is never used or
/// dropped again (a forked child that ends with _exit).
pub(super) fn close_fds(first: u32, last: u32) {
    // SAFETY: close_range(2) takes only integers; by the precondition nothing in this process
    // owns the descriptors closed.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    if ret != 0 {
        for fd in first..=last.min(descriptor_limit()) {
            // SAFETY: as above; close of a descriptor that is not open fails with EBADF.
            unsafe { libc::close(fd as i32) };
        }
    }
}

/// One more than the highest descriptor number a process may open (the soft RLIMIT_NOFILE),
/// capped so that a fallback loop stays short. Async-signal-safe.
pub(super) fn descriptor_limit() -> u32 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into `limit`, which lives for the call.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    if ok {
        limit.rlim_cur.min(1 << 20) as u32
    } else {
        4096
    }
}

/// A `Command` for a helper program (newuidmap, newgidmap, ...): no inherited descriptor above
/// stderr reaches it.
pub fn helper_command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    // SAFETY: the hook calls only cloexec_from_3, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            cloexec_from_3();
            Ok(())
        });
    }
    cmd
}

/// In a forked helper just before exec: stdin and stdout from /dev/null, stderr to `stderr`,
/// and every other descriptor close-on-exec (so a make jobserver never reaches a helper).
pub fn redirect_for_helper(stderr: &impl AsRawFd) -> nix::Result<()> {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::Mode;
    let null = open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())?;
    // SAFETY: dup2 on descriptors this process owns; 0, 1 and 2 are replaced atomically.
    let ok = unsafe {
        libc::dup2(null.as_raw_fd(), 0) >= 0
            && libc::dup2(null.as_raw_fd(), 1) >= 0
            && libc::dup2(stderr.as_raw_fd(), 2) >= 0
    };
    if !ok {
        return Err(Errno::last());
    }
    cloexec_from_3();
    Ok(())
}

/// An anonymous file in memory (memfd_create, close-on-exec): somewhere for a helper's stderr
/// that never blocks the writer and never leaves a file behind.
pub fn memfd(name: &std::ffi::CStr) -> nix::Result<std::fs::File> {
    // SAFETY: `name` is NUL-terminated and lives for the call.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Prepare `cmd` (a network helper) to receive exactly `fds`, renumbered 3, 4, ... in order,
/// and no other inherited descriptor; and to get SIGKILL when become-root dies (the setting
/// survives exec of a program that is not set-user-ID), checked against the race of
/// become-root dying before the setting took.
pub fn hand_fds_to_helper(cmd: &mut Command, fds: Vec<i32>) {
    assert!(fds.len() <= 8, "a helper takes a handful of descriptors");
    let mut table = [-1i32; 8];
    table[..fds.len()].copy_from_slice(&fds);
    let count = fds.len();
    let parent = nix::unistd::getpid().as_raw();
    // SAFETY: the hook calls only async-signal-safe functions (prctl, getppid, fcntl, dup2,
    // close_range) on integers it owns, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 || libc::getppid() != parent
            {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            // Move every descriptor out of the way first (close-on-exec copies above 100),
            // so that renumbering cannot overwrite one still to be moved.
            let mut high = [-1i32; 8];
            for i in 0..count {
                high[i] = libc::fcntl(table[i], libc::F_DUPFD_CLOEXEC, 100);
                if high[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, fd) in high.iter().take(count).enumerate() {
                // dup2 leaves the new descriptor without close-on-exec.
                if libc::dup2(*fd, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            cloexec_from(3 + count as u32);
            Ok(())
        });
    }
}

/// Make `cmd` (run by a process with CAP_SYS_CHROOT in its user namespace) enter the
/// directory `root` as its root before it execs: fchdir, chroot("."), chdir("/"), so that
/// the program and every path it is given are looked up from there. `root` may be a
/// directory of another mount namespace (a descriptor received from a process there): the
/// lookups then walk that namespace's tree, which the process could not enter with setns.
pub fn chroot_before_exec(cmd: &mut Command, root: i32) {
    // SAFETY: the hook calls only fchdir(2), chroot(2) and chdir(2) on an integer and two
    // static strings: async-signal-safe, nothing allocated.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fchdir(root) != 0
                || libc::chroot(c".".as_ptr()) != 0
                || libc::chdir(c"/".as_ptr()) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Take ownership of a descriptor received with SCM_RIGHTS.
pub fn own_received_fd(fd: i32) -> OwnedFd {
    // SAFETY: the kernel installed `fd` in this process for this message only; nothing else
    // in the process knows of it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Take ownership of a descriptor accept(2) just returned.
pub fn own_accepted_fd(fd: i32) -> OwnedFd {
    // SAFETY: accept4 installed `fd` for this caller just now; nothing else in the process
    // knows of it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// In a forked child that will not exec: stdin, stdout and stderr to /dev/null (so that it
/// never holds a caller's pipe or terminal open) and every other descriptor but `keep` closed.
pub fn keep_only_fd(keep: i32) {
    keep_only_fds(&[keep]);
}

/// The same, keeping each descriptor of `keep`.
///
/// Precondition: the Rust objects owning the descriptors closed are never used or dropped
/// again (the child ends with _exit).
pub fn keep_only_fds(keep: &[i32]) {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::Mode;
    if let Ok(null) = open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()) {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors, which this process owns.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    // The descriptors closed are this forked child's copies (the precondition).
    close_fds_except(keep);
}

/// Standard input, output and error to /dev/null: for a forked child that outlives
/// become-root (the cgroup janitor), which must hold none of the caller's descriptors (a
/// `$(...)` or a pipe waits for every writer to let go). Closed if /dev/null cannot be opened.
///
/// Precondition: as for `close_fds`, nothing in this process uses 0, 1 or 2 through a Rust
/// object afterwards (the child ends with _exit and prints nothing).
pub fn stdio_to_null() {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::Mode;
    match open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()) {
        Ok(null) => {
            for fd in 0..3 {
                // SAFETY: dup2 onto the standard descriptors, which this process owns.
                unsafe { libc::dup2(null.as_raw_fd(), fd) };
            }
        }
        Err(_) => close_fds(0, 2),
    }
}

/// Close every descriptor of become-root's own (close-on-exec: all of them are) except those
/// in `keep`; the caller's inherited descriptors, which are not close-on-exec and go to
/// COMMAND anyway, stay. For a process inside the namespaces that will not exec (an init, a
/// pause process) or not yet: it must hold nothing of the host that COMMAND could reach
/// through /proc/PID/fd, such as the session's state directory, an overlay's upper layer
/// or the caller's --info-fd (a directory descriptor of the host is a way out of --rootfs:
/// the pattern of CVE-2024-21626).
///
/// Precondition: the process never again uses or drops a Rust object owning a closed
/// descriptor (it execs or ends with _exit).
pub fn close_own_fds_except(keep: &[i32]) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds.into_iter().filter(|fd| *fd > 2 && !keep.contains(fd)) {
        // SAFETY: fcntl(F_GETFD) and close(2) take integers; by the precondition nothing owns
        // what is closed (read_dir's own descriptor is gone already, and fails with EBADF).
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC != 0 {
                libc::close(fd);
            }
        }
    }
}

/// Close every descriptor from 3 up except those in `keep`: become-root going into the
/// background (`--detach`) lets go of whatever its caller handed it (a make jobserver, the
/// write end of a `$(...)` capture), which a session could otherwise hold open for days.
///
/// Precondition: no Rust object owns a descriptor that is closed (the caller lists every one
/// it owns in `keep`).
pub fn close_fds_except(keep: &[i32]) {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter(|&&fd| fd >= 3)
        .map(|&fd| fd as u32)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut first = 3u32;
    for fd in keep.into_iter().chain([u32::MAX]) {
        if fd > first {
            // By the precondition nothing in this process owns the descriptors closed.
            close_fds(first, fd - 1);
        }
        first = fd.saturating_add(1);
    }
}

/// A pipe this process was handed by number across an exec of its own (the same program,
/// started again): owned from here on, close-on-exec again. `None` when `fd` is not an open
/// pipe.
///
/// Precondition: nothing in the process owns `fd` yet (it was inherited, and the caller knows
/// it is its own from before the exec).
pub fn adopt_pipe(fd: i32) -> Option<OwnedFd> {
    if fd < 3 {
        return None;
    }
    let st = nix::sys::stat::fstat(borrow_fd(fd)).ok()?;
    if st.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return None;
    }
    // SAFETY: `fd` is open (fstat said so) and, by the precondition, owned by nothing else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    nix::fcntl::fcntl(
        &owned,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .ok()?;
    Some(owned)
}

/// One message from unix socket `fd` into `buf` (retried on EINTR): its length and, when the
/// socket has SO_PASSCRED, the sender's pid as this process's pid namespace sees it
/// (SCM_CREDENTIALS, unix(7); None where the sender is in no ancestor of it, which the
/// kernel reports as 0).
pub fn recv_with_sender(fd: &impl AsRawFd, buf: &mut [u8]) -> nix::Result<(usize, Option<i32>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!(libc::ucred);
    let msg = loop {
        match recvmsg::<()>(
            fd.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => {}
            done => break done?,
        }
    };
    let sender = msg.cmsgs()?.find_map(|c| match c {
        ControlMessageOwned::ScmCredentials(creds) if creds.pid() > 0 => Some(creds.pid()),
        _ => None,
    });
    Ok((msg.bytes, sender))
}
