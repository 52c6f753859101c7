//! The only module with `unsafe`: thin wrappers over the system calls nix does not cover
//! safely (fork, clone, ioctl, raw syscalls, signal dispositions). Every block says why it is
//! sound. Callers see safe functions with the preconditions spelled out.
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::libc;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, sigprocmask};
use nix::unistd::Pid;

mod fd;
mod mount;
mod ns;
mod seccomp;
mod tty;

pub use fd::*;
pub use mount::*;
pub use ns::*;
pub use seccomp::*;
pub use tty::*;

/// What `fork_process` and `clone_process` return in each process.
pub enum Forked {
    Parent(Pid),
    Child,
}

/// fork(2).
///
/// Precondition: the process is single-threaded, so the child may run any code, not only
/// async-signal-safe code. become-root starts two threads, the forwarder's (published ports)
/// and none other, and only after its last fork; a debug build checks it at every fork.
pub fn fork_process() -> nix::Result<Forked> {
    debug_assert_single_threaded("fork");
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
    debug_assert_single_threaded("clone");
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

/// In a debug build, panic unless this process has one thread (the Threads: line of
/// /proc/self/status): a fork while another thread may hold a lock (the allocator's, stderr's)
/// would leave the child stuck on it.
fn debug_assert_single_threaded(what: &str) {
    if cfg!(debug_assertions) {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let threads = status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .map(str::trim);
        assert!(
            matches!(threads, Some("1") | None),
            "{what} with {} threads: the child could inherit a held lock",
            threads.unwrap_or("?")
        );
    }
}

/// kill(2) with a signal by number: the real-time ones (SIGRTMIN+3) that nix's `Signal` does
/// not name.
pub fn kill_number(pid: Pid, signo: libc::c_int) -> nix::Result<()> {
    // SAFETY: kill(2) takes integers only.
    Errno::result(unsafe { libc::kill(pid.as_raw(), signo) }).map(drop)
}

/// Leave now, without running exit handlers or flushing stdio buffers inherited from the
/// parent: for forked children that must not run the parent's clean-up twice.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) takes no pointers and never returns.
    unsafe { libc::_exit(code) }
}

fn check_ret(ret: libc::c_long) -> nix::Result<libc::c_long> {
    if ret < 0 { Err(Errno::last()) } else { Ok(ret) }
}

fn own_fd(ret: libc::c_long) -> OwnedFd {
    // SAFETY: `ret` is a descriptor the kernel just returned to us and nothing else owns.
    unsafe { OwnedFd::from_raw_fd(ret as i32) }
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

/// What Rust's runtime would do before `main` and become-root relies on, for a binary that
/// starts without that runtime (`#![no_main]`, src/bin/become-root.rs): open /dev/null on
/// any of descriptors 0, 1 and 2 the caller left closed, so that no file become-root opens
/// later (a state file, a lock) takes a standard descriptor's number and receives what is
/// meant for the terminal; and ignore SIGPIPE, so that a write to a closed pipe or socket is
/// an EPIPE error to report, not a silent death. The rest of that runtime is left out: a
/// guard page for the main thread's stack (found by parsing /proc/self/maps, a fifth of
/// become-root's start-up instructions; the kernel's own stack guard gap still turns an
/// overflow into SIGSEGV) and the main thread's name in panic messages.
pub fn start_without_runtime() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    loop {
        // SAFETY: `fds` is a valid array of three pollfd structures, borrowed mutably for the
        // call; a timeout of 0 returns at once.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
        if n >= 0 {
            break;
        }
        match Errno::last() {
            Errno::EINTR => continue,
            // No poll (some sandboxes forbid it): ask each descriptor instead.
            _ => {
                for pfd in &mut fds {
                    // SAFETY: F_GETFD only reads the descriptor's flags.
                    let closed = unsafe { libc::fcntl(pfd.fd, libc::F_GETFD) } == -1
                        && Errno::last() == Errno::EBADF;
                    pfd.revents = if closed { libc::POLLNVAL } else { 0 };
                }
                break;
            }
        }
    }
    for pfd in fds.iter().filter(|pfd| pfd.revents & libc::POLLNVAL != 0) {
        // open(2) returns the lowest free descriptor, which is this one: the ones below it
        // are open (they were, or this loop just opened them).
        // SAFETY: the path is a NUL-terminated literal; the descriptor is owned for good.
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        if fd != pfd.fd {
            // No /dev/null: carrying on would let a file become-root opens take this number.
            let _ = std::io::stderr().write_all(b"become-root: /dev/null: cannot open it\n");
            exit_now(125);
        }
    }
    ignore_signal(Signal::SIGPIPE);
}

/// Set `sig` to its default disposition and say whether the caller had it ignored.
pub fn default_signal_was_ignored(sig: Signal) -> bool {
    // SAFETY: SIG_DFL installs no Rust code as a handler, so nothing can run in signal context.
    let old = unsafe { nix::sys::signal::signal(sig, SigHandler::SigDfl) };
    matches!(old, Ok(SigHandler::SigIgn))
}

/// Ignore `sig` and say whether the caller had it ignored already.
pub fn ignore_signal_was_ignored(sig: Signal) -> bool {
    // SAFETY: SIG_IGN installs no Rust code as a handler.
    let old = unsafe { nix::sys::signal::signal(sig, SigHandler::SigIgn) };
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

/// Remove variable `name` from the environment and return what it was.
///
/// Precondition: no other thread runs (they could read the environment meanwhile).
pub fn take_env_var(name: &str) -> Option<std::ffi::OsString> {
    let value = std::env::var_os(name)?;
    // SAFETY: by the precondition no other thread reads or writes the environment now.
    unsafe { std::env::remove_var(name) };
    Some(value)
}

/// Set variable `name` of this process's own environment to `value`, or remove it (None).
///
/// Precondition: no other thread runs (they could read the environment meanwhile).
pub fn set_own_env_var(name: &str, value: Option<&std::ffi::OsStr>) {
    match value {
        // SAFETY: by the precondition no other thread reads or writes the environment now.
        Some(value) => unsafe { std::env::set_var(name, value) },
        // SAFETY: as above.
        None => unsafe { std::env::remove_var(name) },
    }
}

/// Start this program again in this process, with the arguments it was started with and
/// `extra` (name, value) added to its environment (the new run reads them, and takes them out
/// at once). Every descriptor become-root opened is close-on-exec; the standard ones and those
/// the caller passed stay. Returns only on failure.
pub fn exec_again(extra: &[(&str, &std::ffi::OsStr)]) -> nix::Error {
    let to_c = |bytes: Vec<u8>| CString::new(bytes).unwrap_or_default();
    let args: Vec<CString> = std::env::args_os()
        .map(|a| to_c(a.as_bytes().to_vec()))
        .collect();
    let pair = |k: &std::ffi::OsStr, v: &std::ffi::OsStr| {
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        to_c(kv)
    };
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| extra.iter().all(|(name, _)| k != name))
        .map(|(k, v)| pair(&k, &v))
        .collect();
    env.extend(extra.iter().map(|(k, v)| pair(k.as_ref(), v)));
    // /proc/self/exe is this very program, even if its file was replaced or removed since.
    let Err(e) = nix::unistd::execve(c"/proc/self/exe", &args, &env);
    e
}

/// The arguments as C's `main` receives them, as `OsString`s (bytes, not UTF-8).
///
/// # Safety
/// `argv` must hold `argc` valid pointers to NUL-terminated strings (as the C runtime gives
/// `main`); a null `argv` or a negative `argc` gives no arguments.
pub unsafe fn args_from_main(
    argc: libc::c_int,
    argv: *const *const libc::c_char,
) -> Vec<std::ffi::OsString> {
    use std::os::unix::ffi::OsStringExt;
    if argv.is_null() || argc <= 0 {
        return Vec::new();
    }
    (0..argc as usize)
        .filter_map(|i| {
            // SAFETY: i < argc, and by the contract argv has argc valid entries.
            let arg = unsafe { *argv.add(i) };
            // SAFETY: a non-null entry is a NUL-terminated string that outlives this call.
            (!arg.is_null()).then(|| unsafe { std::ffi::CStr::from_ptr(arg) })
        })
        .map(|arg| std::ffi::OsString::from_vec(arg.to_bytes().to_vec()))
        .collect()
}

#[cfg(test)]
mod args_tests {
    #[test]
    fn arguments_are_read_from_argc_and_argv_as_bytes() {
        let words: [&std::ffi::CStr; 3] = [c"become-root", c"make", c"caf\xe9"];
        let argv: Vec<*const nix::libc::c_char> = words.iter().map(|w| w.as_ptr()).collect();
        // SAFETY: argv holds 3 pointers to NUL-terminated literals.
        let args = unsafe { super::args_from_main(3, argv.as_ptr()) };
        let bytes: Vec<&[u8]> = args
            .iter()
            .map(|a| std::os::unix::ffi::OsStrExt::as_bytes(a.as_os_str()))
            .collect();
        assert_eq!(bytes, [&b"become-root"[..], b"make", b"caf\xe9"]);
        // SAFETY: a null argv is refused before it is read.
        assert!(unsafe { super::args_from_main(2, std::ptr::null()) }.is_empty());
    }
}
