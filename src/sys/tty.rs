//! Terminal ioctls nix does not wrap: the controlling terminal and the window size.

use std::os::fd::{AsFd, AsRawFd};

use nix::errno::Errno;
use nix::libc;

pub use nix::pty::Winsize;

/// Make the terminal open on `fd` the controlling terminal of the calling process, which must
/// be a session leader without one (setsid(2) first). TIOCSCTTY with argument 0 never steals
/// a terminal that is another session's (tty_ioctl(4)).
pub fn set_controlling_terminal(fd: impl AsFd) -> nix::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument and reads no memory of ours.
    Errno::result(unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::TIOCSCTTY, 0) }).map(drop)
}

/// The window size of the terminal on `fd`.
pub fn window_size(fd: impl AsFd) -> nix::Result<Winsize> {
    let mut size = Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one struct winsize into `size`, which lives for the call.
    Errno::result(unsafe {
        libc::ioctl(
            fd.as_fd().as_raw_fd(),
            libc::TIOCGWINSZ,
            &mut size as *mut Winsize,
        )
    })?;
    Ok(size)
}

/// Set the window size of the terminal on `fd` (the kernel sends SIGWINCH to its foreground
/// process group when it changes).
pub fn set_window_size(fd: impl AsFd, size: &Winsize) -> nix::Result<()> {
    // SAFETY: TIOCSWINSZ reads one struct winsize from `size`, borrowed for the call.
    Errno::result(unsafe {
        libc::ioctl(
            fd.as_fd().as_raw_fd(),
            libc::TIOCSWINSZ,
            size as *const Winsize,
        )
    })
    .map(drop)
}
