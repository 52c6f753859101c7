//! The only module with `unsafe`: thin wrappers over the system calls nix does not cover
//! safely (fork, clone, ioctl, raw syscalls, signal dispositions). Every block says why it is
//! sound. Callers see safe functions with the preconditions spelled out.
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use nix::errno::Errno;
use nix::libc;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, sigprocmask};
use nix::unistd::Pid;

/// What `fork_process` and `clone_process` return in each process.
pub enum Forked {
    Parent(Pid),
    Child,
}

/// fork(2).
///
/// Precondition: the process is single-threaded (become-root never starts threads), so the
/// child may run any code, not only async-signal-safe code.
pub fn fork_process() -> nix::Result<Forked> {
    // SAFETY: become-root is single-threaded when it forks, so no lock can be held by a thread
    // that does not exist in the child; the child continues with ordinary Rust code.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child)),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// clone(2) with fork semantics (a copy of the address space, SIGCHLD to the parent) plus
/// namespace flags, so that with CLONE_NEWPID the child is pid 1 of the new namespace, which
/// unshare(2) cannot do for the caller itself.
///
/// Precondition: as for [`fork_process`], the process is single-threaded.
pub fn clone_process(flags: CloneFlags) -> nix::Result<Forked> {
    let flags = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: with a null stack pointer clone(2) behaves like fork(2): the child runs on a
    // copy of the parent's stack. No CLONE_VM, CLONE_SETTLS or CLONE_*TID flag is passed, so
    // nothing is shared that libc's fork would have set up differently; the process is
    // single-threaded (see the precondition), so no lock can be held by another thread.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(pid as libc::pid_t))),
    }
}

/// Leave now, without running exit handlers or flushing stdio buffers inherited from the
/// parent: for forked children that must not run the parent's clean-up twice.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) takes no pointers and never returns.
    unsafe { libc::_exit(code) }
}

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
fn close_fds(first: u32, last: u32) {
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
fn descriptor_limit() -> u32 {
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

// ---- kernel facility probes (kernel.rs) ------------------------------------------------------
// Each makes a call that the kernel refuses with ENOSYS (or EINVAL, for a flag) when it lacks
// the facility and with another answer when it has it; nothing is changed by any of them.

/// fsopen(2) and the rest of the new mount API (Linux 5.2).
pub fn probe_mount_api() -> bool {
    // SAFETY: the name is NUL-terminated and lives for the call; a descriptor returned (to
    // real root) is closed at once.
    let ret = unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), libc::FSOPEN_CLOEXEC) };
    if ret >= 0 {
        drop(own_fd(ret));
        return true;
    }
    Errno::last() != Errno::ENOSYS
}

/// pidfd_open(2) (Linux 5.3), on this process.
pub fn probe_pidfd() -> bool {
    pidfd_open(nix::unistd::getpid()).is_ok()
}

/// close_range(2) with CLOSE_RANGE_CLOEXEC (Linux 5.11), on an empty range.
pub fn probe_close_range_cloexec() -> bool {
    // SAFETY: only integers; the range holds no descriptor a process can have.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            u32::MAX,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    ret == 0
}

/// mount_setattr(2) (Linux 5.12), with a size it must refuse.
pub fn probe_mount_setattr() -> bool {
    // SAFETY: a null attribute pointer with size 0 is refused before it is read.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            -1,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            std::ptr::null::<libc::mount_attr>(),
            0usize,
        )
    };
    ret == 0 || Errno::last() != Errno::ENOSYS
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

/// Take ownership of a descriptor received with SCM_RIGHTS.
pub fn own_received_fd(fd: i32) -> OwnedFd {
    // SAFETY: the kernel installed `fd` in this process for this message only; nothing else
    // in the process knows of it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// In a forked child that will not exec: stdin, stdout and stderr to /dev/null (so that it
/// never holds a caller's pipe or terminal open) and every other descriptor but `keep` closed.
pub fn keep_only_fd(keep: i32) {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::Mode;
    if let Ok(null) = open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()) {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors, which this process owns.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    let keep = keep as u32;
    // The descriptors closed are this forked child's copies, and the Rust objects owning them
    // are never used or dropped again (the child ends with _exit).
    if keep > 3 {
        close_fds(3, keep - 1);
    }
    close_fds(keep + 1, u32::MAX);
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
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(Errno::last());
    }
    // SAFETY: ifru_flags was just written by the kernel (union member of ifreq).
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: as above; SIOCSIFFLAGS only reads `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

const MOUNT_ATTR_RDONLY: u64 = 0x01;

fn check_ret(ret: libc::c_long) -> nix::Result<libc::c_long> {
    if ret < 0 { Err(Errno::last()) } else { Ok(ret) }
}

fn own_fd(ret: libc::c_long) -> OwnedFd {
    // SAFETY: `ret` is a descriptor the kernel just returned to us and nothing else owns.
    unsafe { OwnedFd::from_raw_fd(ret as i32) }
}

/// A tmpfs that is mounted but attached nowhere in the tree (new mount API, Linux 5.2): reach
/// it through the returned descriptor only. It goes away with the last reference.
pub fn detached_tmpfs() -> nix::Result<OwnedFd> {
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    // SAFETY: the name is NUL-terminated and lives for the call; the flags are integers.
    let fs = own_fd(check_ret(unsafe {
        libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), libc::FSOPEN_CLOEXEC)
    })?);
    // SAFETY: a command without key or value pointers (they are null, as CMD_CREATE wants).
    check_ret(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })?;
    // SAFETY: only integers; the result is a new descriptor for a detached mount.
    Ok(own_fd(check_ret(unsafe {
        libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), libc::FSMOUNT_CLOEXEC, 0)
    })?))
}

/// Attach the detached mount `mnt` (from [`detached_tmpfs`]) at `target`.
pub fn attach_mount(mnt: &OwnedFd, target: &Path) -> nix::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
    let target = CString::new(target.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: both paths are NUL-terminated and live for the call.
    check_ret(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
    .map(drop)
}

/// Set `attr_set` on the mount at `fd` (+ `path`), and with `recursive` on every mount below.
fn mount_setattr(
    fd: i32,
    path: &std::ffi::CStr,
    recursive: bool,
    attr_set: u64,
) -> nix::Result<()> {
    let attr = libc::mount_attr {
        attr_set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: `path` is NUL-terminated and `attr` a valid mount_attr; both live for the call,
    // and the size passed is the size of `attr`.
    check_ret(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            path.as_ptr(),
            flags,
            &attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    })
    .map(drop)
}

/// Make the mount at `path` and every mount below it read-only (mount_setattr(2) with
/// AT_RECURSIVE, Linux 5.12): a read-only bind that submounts cannot escape. Adding
/// restrictions is allowed even on mounts locked by a user namespace. ENOSYS on older
/// kernels (`mounts` then remounts one by one).
pub fn make_readonly_recursive(path: &Path) -> nix::Result<()> {
    let cpath = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    mount_setattr(libc::AT_FDCWD, &cpath, true, MOUNT_ATTR_RDONLY)
}

/// Run `f` while the detached mount `mnt` (from [`detached_tmpfs`]) is attached, stacked over
/// `/` of this mount namespace, then detach it again.
///
/// Why: before Linux 6.15 the kernel binds or clones only from a mount of the caller's own
/// mount namespace (`check_mnt()` in `__do_loopback()` and `clone_private_mount()`,
/// fs/namespace.c). A mount from fsmount(2) is in an anonymous namespace until attached, so a
/// bind of a file on it, or an overlay with its upper layer on it, fails with EINVAL there.
/// Attached over `/`, it is in our namespace, yet no path reaches it: lookups start at the
/// process's root, which lies below what is stacked on it, so nothing of the tree is hidden
/// even for the moment. Reach it through descriptors (`/proc/self/fd/N`) only.
///
/// Precondition: this process is in a mount namespace of its own (nothing attached here is
/// seen outside, and it vanishes with the namespace if become-root is killed meanwhile).
pub fn while_attached<T>(mnt: &OwnedFd, f: impl FnOnce() -> nix::Result<T>) -> nix::Result<T> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
    // SAFETY: both paths are NUL-terminated and live for the call; the descriptor is borrowed.
    check_ret(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c"/".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })?;
    let result = f();
    // The root of `mnt`, named through its descriptor: the one path that reaches it.
    let detached = nix::mount::umount2(
        format!("/proc/self/fd/{}", mnt.as_raw_fd()).as_str(),
        nix::mount::MntFlags::MNT_DETACH,
    );
    let value = result?;
    detached.map(|()| value)
}

/// Mount a read-only file holding `content` over `target` (following symlinks to the file they
/// name), with nothing on any disk: the file lives on a tmpfs of its own, attached only for the
/// moment of the bind (see [`while_attached`]); afterwards only the file itself is bound, over
/// `target`. Runs inside a mount namespace owned by the caller's user namespace.
///
/// Classic mount(2) calls throughout, so that every supported kernel takes them: a bind
/// follows symlinks in the target (systemd-resolved's /etc/resolv.conf is one), and the
/// read-only flag comes from a remount of that bind, which is ours and locks nothing.
pub fn mount_generated_file(target: &Path, content: &[u8]) -> nix::Result<()> {
    use nix::mount::{MsFlags, mount};
    let mnt = detached_tmpfs()?;
    let name = c"generated";
    // SAFETY: `name` is NUL-terminated and lives for the call.
    let file = own_fd(check_ret(unsafe {
        libc::syscall(
            libc::SYS_openat,
            mnt.as_raw_fd(),
            name.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
            0o644,
        )
    })?);
    let mut file = std::fs::File::from(file);
    file.write_all(content)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let source = format!("/proc/self/fd/{}", file.as_raw_fd());
    while_attached(&mnt, || {
        mount(
            Some(source.as_str()),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )?;
        mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_REMOUNT
                | MsFlags::MS_BIND
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
    })
}

/// Whether the kernel ran this program with privilege it did not have before the exec: a
/// set-user-ID or set-group-ID file, or file capabilities (AT_SECURE in the auxiliary vector,
/// which the kernel sets for exactly these cases; getauxval(3)).
pub fn exec_was_privileged() -> bool {
    // SAFETY: getauxval takes an integer and returns an integer; it cannot fail unsafely.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// Whether `path` carries file capabilities (the `security.capability` extended attribute).
pub fn has_file_caps(path: &Path) -> bool {
    let Ok(cpath) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: both strings are NUL-terminated and live for the call; a null buffer with size
    // 0 asks only for the attribute's length.
    let len = unsafe {
        libc::getxattr(
            cpath.as_ptr(),
            c"security.capability".as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    len > 0
}

/// Standard input, output or error (0, 1, 2) as a borrowed descriptor.
pub fn std_fd(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    assert!((0..=2).contains(&fd), "only the standard streams");
    // SAFETY: become-root never closes 0, 1 or 2, so they stay open for the life of the
    // process; an fd that was not open at start simply makes the terminal calls fail (EBADF).
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// A descriptor the caller handed to become-root by number (`--info-fd`).
pub fn borrow_fd(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: become-root never closes a descriptor it was given by number, so it stays open
    // for the life of the process; one that was never open only makes calls fail with EBADF.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// Set `sig` to its default disposition and say whether the caller had it ignored.
pub fn default_signal_was_ignored(sig: Signal) -> bool {
    // SAFETY: SIG_DFL installs no Rust code as a handler, so nothing can run in signal context.
    let old = unsafe { nix::sys::signal::signal(sig, SigHandler::SigDfl) };
    matches!(old, Ok(SigHandler::SigIgn))
}

/// Ignore `sig` (to hand an ignored signal on to COMMAND as the caller left it).
pub fn ignore_signal(sig: Signal) {
    // SAFETY: SIG_IGN installs no Rust code as a handler.
    let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::SigIgn) };
}

/// Run `f` with `sig` ignored, then put back what the disposition was. For SIGXFSZ around
/// writes of become-root's own files: over the file size limit (ulimit -f) the write then
/// fails with EFBIG, which is reported, instead of killing become-root halfway.
pub fn with_signal_ignored<T>(sig: Signal, f: impl FnOnce() -> T) -> T {
    // SAFETY: SIG_IGN installs no Rust code as a handler.
    let old = unsafe { nix::sys::signal::signal(sig, SigHandler::SigIgn) };
    let out = f();
    if let Ok(old) = old {
        // SAFETY: `old` is the disposition the kernel reported for `sig` (SIG_DFL, SIG_IGN, or
        // a handler installed before, which is installed again as it was).
        let _ = unsafe { nix::sys::signal::signal(sig, old) };
    }
    out
}

/// Set `sig` back to its default disposition.
pub fn default_signal(sig: Signal) {
    // SAFETY: SIG_DFL installs no Rust code as a handler, so nothing can run in signal context.
    let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::SigDfl) };
}

/// Die of `sig` as the supervised command did, so that the caller sees the same death.
/// Falls back to exit status 128+N for signals whose default action is not to terminate.
pub fn die_of(sig: Signal) -> ! {
    // A core dump of become-root would only mislead: the command is the one that crashed.
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
    default_signal(sig);
    let mut set = SigSet::empty();
    set.add(sig);
    let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
    let _ = nix::sys::signal::raise(sig);
    exit_now(128 + sig as i32)
}

// ---- sessions (session.rs) -----------------------------------------------------------------

/// pidfd_open(2) (Linux 5.3): a descriptor that refers to process `pid` for as long as it is
/// open, so that a signal sent through it can never reach a process that reused the pid.
pub fn pidfd_open(pid: Pid) -> nix::Result<OwnedFd> {
    // SAFETY: only integers; a non-negative result is a new descriptor nothing else owns.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0u32) };
    check_ret(ret).map(own_fd)
}

/// pidfd_send_signal(2): send `sig` to the process `pidfd` refers to, as kill(2) would.
pub fn pidfd_send_signal(pidfd: &OwnedFd, sig: Signal) -> nix::Result<()> {
    // SAFETY: a null siginfo pointer asks for the information kill(2) sends; the descriptor is
    // borrowed for the call and the rest are integers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig as libc::c_int,
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

// ---- small helpers without unsafe, used by every layer -------------------------------------

/// The errno behind an I/O error from the standard library (EIO when there is none).
pub fn io_errno(e: &std::io::Error) -> nix::Error {
    nix::Error::from_raw(e.raw_os_error().unwrap_or(nix::libc::EIO))
}

/// The first `name` on PATH, as a shell would find it.
pub fn find_on_path(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
