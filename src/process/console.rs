//! A pty of become-root's between the caller and a pid 1 that is not become-root's own
//! (`--boot`'s /dev/console, and `--as-pid-1` run from a terminal), as systemd-nspawn puts one
//! between its containers and the terminal.
//!
//! The terminal rule: the caller's own terminal never enters the namespaces where something
//! the caller did not start may run. What runs inside could push input into it with TIOCSTI,
//! which the caller's shell reads and runs after become-root returns (CVE-2017-5226, the same
//! hole in bubblewrap and in su/runuser). TIOCSTI works only on one's controlling terminal
//! (or with CAP_SYS_ADMIN over the initial user namespace), so pid 1 gets a session of its own
//! (setsid) whose controlling terminal is this pty, and the pty in place of every standard
//! descriptor that was a terminal.
//!
//! become-root relays from its supervision loop, without a thread: what pid 1 writes goes to
//! become-root's standard error (a detached session's log), or to the caller's terminal when
//! the caller is at one; then the terminal is in raw mode while the run lasts, so that what is
//! typed reaches the image as typed (Ctrl-C included), and its window size follows. Ctrl-]
//! three times within a second asks the run to stop (systemd-nspawn's escape). At the end,
//! everything pid 1 and its descendants wrote reaches the output before become-root returns.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};

use crate::error::Error;
use crate::sys;

/// Ctrl-], pressed [`ESCAPE_PRESSES`] times within [`ESCAPE_WITHIN`].
const ESCAPE: u8 = 0x1d;
const ESCAPE_PRESSES: usize = 3;
const ESCAPE_WITHIN: Duration = Duration::from_secs(1);
/// How long become-root copies what is left in the pty once pid 1 has ended: every writer is
/// gone by then (the kernel ends a pid namespace with its pid 1), so this bounds only a
/// descriptor that leaked outside.
const DRAIN: Duration = Duration::from_secs(2);

/// The pty. Both ends stay open in become-root (close-on-exec) until the run ends, so that the
/// image can open and close /dev/console as often as it likes.
#[derive(Debug)]
pub struct Console {
    master: OwnedFd,
    /// Closed once pid 1 has ended, so that reading the master ends (EIO) after the last byte.
    slave: Mutex<Option<OwnedFd>>,
    /// The far end, /dev/pts/N of the caller's devpts (--boot binds it at /dev/console).
    pub path: PathBuf,
    /// Which of standard input, output and error pid 1 gets the pty for.
    pub replaces: [bool; 3],
    /// Where the relay writes: the caller's terminal, or standard error.
    output: RawFd,
    /// The caller's standard input is the terminal of the foreground job, and output goes to
    /// a terminal: what is typed is relayed (raw mode).
    pub interactive: bool,
}

impl Console {
    /// `--boot`'s console: pid 1 gets it for all three standard descriptors. `detached`: a
    /// detached session's, whose output goes to standard output, the session's log from the
    /// start (standard error stays the caller's until the session is ready, for errors).
    pub fn for_boot(detached: bool) -> Result<Console, Error> {
        let mut console = Console::open([true; 3])?;
        if detached {
            console.output = 1;
            console.interactive = false;
        }
        Ok(console)
    }

    /// `--as-pid-1`'s: the pty in place of each standard descriptor that is a terminal, or
    /// none when none is.
    pub fn for_terminal() -> Result<Option<Console>, Error> {
        let ttys = [0, 1, 2].map(|fd| nix::unistd::isatty(sys::std_fd(fd)).unwrap_or(false));
        match ttys.contains(&true) {
            true => Console::open(ttys).map(Some),
            false => Ok(None),
        }
    }

    fn open(replaces: [bool; 3]) -> Result<Console, Error> {
        let tty = |fd: RawFd| nix::unistd::isatty(sys::std_fd(fd)).unwrap_or(false);
        // Standard output when it is a terminal (as systemd-nspawn writes), else standard
        // error (a log, the caller's terminal).
        let output = if tty(1) { 1 } else { 2 };
        let foreground = nix::unistd::tcgetpgrp(sys::std_fd(0))
            .is_ok_and(|group| group == nix::unistd::getpgrp());
        let interactive = replaces[0] && tty(0) && foreground && tty(output);
        let pty = nix::pty::openpty(None, None).map_err(|e| Error::sys("openpty", e))?;
        for fd in [&pty.master, &pty.slave] {
            fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
                .map_err(|e| Error::sys("the console pty", e))?;
        }
        // Input is written without blocking (a pid 1 that reads nothing must not stop the
        // supervision loop); reads wait for poll.
        fcntl(pty.master.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
            .map_err(|e| Error::sys("the console pty", e))?;
        let path = nix::unistd::ttyname(pty.slave.as_fd())
            .map_err(|e| Error::sys("the console pty's name", e))?;
        if let Ok(size) = sys::window_size(sys::std_fd(output)) {
            let _ = sys::set_window_size(&pty.master, &size);
        }
        Ok(Console {
            master: pty.master,
            slave: Mutex::new(Some(pty.slave)),
            path,
            replaces,
            output,
            interactive,
        })
    }

    /// Both ends, for a process that must keep them (going into the background).
    pub fn raw_fds(&self) -> Vec<RawFd> {
        let mut fds = vec![self.master.as_raw_fd()];
        fds.extend(self.slave_fd());
        fds
    }

    fn slave_fd(&self) -> Option<RawFd> {
        let slave = self.slave.lock().unwrap_or_else(|e| e.into_inner());
        slave.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// In the namespace process, right before COMMAND: a session of its own whose controlling
    /// terminal is the pty, and the pty on the standard descriptors it replaces. The caller's
    /// terminal is then no descriptor of COMMAND's and not its controlling terminal.
    pub fn attach(&self) -> Result<(), Error> {
        let fd = self
            .slave_fd()
            .expect("the slave stays open until the run ends");
        let slave = sys::borrow_fd(fd);
        nix::unistd::setsid().map_err(|e| Error::sys("the console: setsid", e))?;
        sys::set_controlling_terminal(slave)
            .map_err(|e| Error::sys("the console: TIOCSCTTY", e))?;
        let dups = [
            nix::unistd::dup2_stdin,
            nix::unistd::dup2_stdout,
            nix::unistd::dup2_stderr,
        ];
        for (dup, _) in dups.iter().zip(self.replaces).filter(|(_, r)| *r) {
            dup(slave).map_err(|e| Error::sys("the console: dup2", e))?;
        }
        Ok(())
    }
}

/// The caller's terminal in raw mode; put back as it was when dropped.
struct Raw {
    saved: Termios,
}

impl Raw {
    fn enter() -> Option<Raw> {
        let saved = tcgetattr(sys::std_fd(0)).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(sys::std_fd(0), SetArg::TCSANOW, &raw).ok()?;
        Some(Raw { saved })
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = tcsetattr(sys::std_fd(0), SetArg::TCSADRAIN, &self.saved);
    }
}

/// The relay while the run lasts (see the module's comment).
pub struct Relay<'c> {
    console: &'c Console,
    raw: Option<Raw>,
    /// Still reading the caller's input (not at its end).
    input: bool,
    /// Typed input the pty has not taken yet.
    pending: Vec<u8>,
    /// When Ctrl-] was last pressed, newest last.
    presses: Vec<Instant>,
    /// The output is not a terminal: the pty's CR LF becomes LF.
    strip_cr: bool,
}

impl<'c> Relay<'c> {
    pub fn start(console: &'c Console) -> Relay<'c> {
        let raw = console.interactive.then(Raw::enter).flatten();
        let strip_cr = !nix::unistd::isatty(sys::std_fd(console.output)).unwrap_or(false);
        Relay {
            console,
            input: raw.is_some(),
            raw,
            pending: Vec::new(),
            presses: Vec::new(),
            strip_cr,
        }
    }

    /// The descriptors to poll and what for: the pty's output (and room for pending input),
    /// and the caller's typing.
    pub fn interest(&self) -> Vec<PollFd<'_>> {
        let mut master = PollFlags::POLLIN;
        if !self.pending.is_empty() {
            master |= PollFlags::POLLOUT;
        }
        let mut fds = vec![PollFd::new(self.console.master.as_fd(), master)];
        if self.input && self.pending.is_empty() {
            fds.push(PollFd::new(sys::std_fd(0), PollFlags::POLLIN));
        }
        fds
    }

    /// Act on what `interest` returned (its revents, in order); true when the escape was
    /// typed.
    pub fn on_events(&mut self, revents: &[PollFlags]) -> bool {
        let ready = |i: usize| revents.get(i).is_some_and(|r| !r.is_empty());
        if ready(0) {
            self.copy_out();
            self.push_pending();
        }
        self.input && ready(1) && self.read_input()
    }

    /// The caller's window changed size (SIGWINCH): the pty follows, and the kernel tells
    /// pid 1's foreground group.
    pub fn resize(&self) {
        if let Ok(size) = sys::window_size(sys::std_fd(self.console.output)) {
            let _ = sys::set_window_size(&self.console.master, &size);
        }
    }

    /// Copy what the pty holds now to the output; false once nothing more will come (every
    /// end closed).
    fn copy_out(&mut self) -> bool {
        let mut buf = [0u8; 16384];
        loop {
            match nix::unistd::read(&self.console.master, &mut buf) {
                Ok(0) | Err(Errno::EIO) => return false,
                Ok(n) => self.write_out(&buf[..n]),
                Err(Errno::EINTR) => {}
                Err(_) => return true, // EAGAIN: all there was
            }
        }
    }

    fn write_out(&self, bytes: &[u8]) {
        let stripped: Vec<u8>;
        let mut rest = match self.strip_cr {
            true => {
                stripped = bytes.iter().copied().filter(|&b| b != b'\r').collect();
                &stripped[..]
            }
            false => bytes,
        };
        while !rest.is_empty() {
            match nix::unistd::write(sys::std_fd(self.console.output), rest) {
                Ok(n) => rest = &rest[n..],
                Err(Errno::EINTR) => {}
                Err(_) => return, // the caller closed its end: nothing to keep
            }
        }
    }

    /// Read what was typed, watch for the escape, and pass it on; true on the escape.
    fn read_input(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        let n = match nix::unistd::read(sys::std_fd(0), &mut buf) {
            Ok(0) | Err(Errno::EIO) => {
                self.input = false;
                return false;
            }
            Ok(n) => n,
            Err(_) => return false,
        };
        let now = Instant::now();
        let mut escaped = false;
        for &byte in &buf[..n] {
            if byte != ESCAPE {
                self.presses.clear();
                continue;
            }
            self.presses
                .retain(|t| now.duration_since(*t) < ESCAPE_WITHIN);
            self.presses.push(now);
            escaped |= self.presses.len() >= ESCAPE_PRESSES;
        }
        // The size first: a resize and then typing reach become-root at once (SIGWINCH on its
        // signalfd, the bytes on its input), and what is typed may be a command that asks.
        self.resize();
        self.pending.extend_from_slice(&buf[..n]);
        self.push_pending();
        escaped
    }

    /// Write pending input into the pty, as much as it takes now.
    fn push_pending(&mut self) {
        while !self.pending.is_empty() {
            match nix::unistd::write(&self.console.master, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(Errno::EINTR) => {}
                Err(_) => return,
            }
        }
    }

    /// pid 1 has ended: copy out what is left (the pty buffers what was written before its
    /// writers died; with its last end closed, reading ends with EIO after the last byte),
    /// then put the terminal back.
    pub fn finish(mut self) {
        drop(
            self.console
                .slave
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        let deadline = Instant::now() + DRAIN;
        while self.copy_out() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.console.master.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) => break,
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => break,
            }
        }
        drop(self.raw.take());
    }
}
