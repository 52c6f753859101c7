//! The new mount API and mount_setattr(2): tmpfs mounts attached nowhere, attached for a moment,
//! a generated file bound read-only, read-only recursion; and the probes of these facilities
//! (kernel.rs).

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::libc;

use super::{check_ret, own_fd, pidfd_open};

pub(super) const MOUNT_ATTR_RDONLY: u64 = 0x01;

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

/// A detached copy of the whole mount tree of this process's root, every mount below it
/// included (open_tree(2) with OPEN_TREE_CLONE and AT_RECURSIVE, Linux 5.2): reach it
/// through the returned descriptor only; it goes away with the last reference.
/// Precondition: CAP_SYS_ADMIN over the user namespace that owns this mount namespace.
pub fn clone_root_tree() -> nix::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint;
    // SAFETY: the path is NUL-terminated and lives for the call; the rest are integers; a
    // non-negative result is a new descriptor nothing else owns.
    Ok(own_fd(check_ret(unsafe {
        libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c"/".as_ptr(), flags)
    })?))
}

/// Set `attr_set` on the mount at `fd` (+ `path`), and with `recursive` on every mount below.
pub(super) fn mount_setattr(
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

/// Bind a file holding `content` on `target`, with nothing on any disk: the file lives on a
/// tmpfs of its own, attached only for the moment of the bind (see [`while_attached`]);
/// afterwards only the file itself is bound. `target` is usually /proc/self/fd/N, a
/// descriptor of the entry to cover (a file, or a symbolic link: the bind then covers the
/// link itself). Runs inside a mount namespace owned by the caller's user namespace; the
/// caller makes the bind read-only (a remount, which needs the bind's own root).
///
/// A classic mount(2), so that every supported kernel takes it.
pub fn bind_generated_file(target: &Path, content: &[u8]) -> nix::Result<()> {
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
        )
    })
}

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
