//! Asking the caller's systemd user manager over the session bus, with busctl: each call is
//! bounded in time (busctl's own `--timeout`, and a SIGKILL a second later should busctl not
//! keep it), and a signal that ends a run (SIGTERM, SIGINT, SIGHUP, SIGQUIT) ends the call at
//! once. A supervised run holds those signals blocked while it sets up (they are forwarded to
//! COMMAND later): a signalfd reads them here, so that a user manager that never answers
//! cannot keep a run from ending (it held SIGTERM for the call plus 10 s, 29 s measured).

use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::sys;

/// Why a call gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum BusError {
    /// A signal that ends the run came; busctl was killed.
    Interrupted(Signal),
    /// No answer within the limit; busctl was killed.
    TimedOut(Duration),
    /// busctl failed: what it said (or its status).
    Failed(String),
}

impl std::fmt::Display for BusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BusError::Interrupted(sig) => write!(f, "interrupted by {sig}"),
            BusError::TimedOut(limit) => write!(f, "no answer within {} s", limit.as_secs()),
            BusError::Failed(said) => f.write_str(said),
        }
    }
}

/// The signals that end a run while it is set up.
fn ending_signals() -> SigSet {
    let mut set = SigSet::empty();
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        set.add(sig);
    }
    set
}

/// The signals that end a run, as they arrive (only those this process holds blocked: an
/// unblocked one acts as it always does).
pub(super) struct Interrupts(Option<SignalFd>);

impl Interrupts {
    pub(super) fn watch() -> Interrupts {
        let flags = SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK;
        Interrupts(SignalFd::with_flags(&ending_signals(), flags).ok())
    }

    /// Wait up to `wait` for one of them; `Err` with it when it came.
    pub(super) fn pause(&self, wait: Duration) -> Result<(), BusError> {
        let Some(sfd) = &self.0 else {
            std::thread::sleep(wait);
            return Ok(());
        };
        let mut fds = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
        let _ = poll(&mut fds, timeout);
        self.taken()
    }

    /// `Err` with a signal that has come, if one has.
    fn taken(&self) -> Result<(), BusError> {
        match self.0.as_ref().map(SignalFd::read_signal) {
            Some(Ok(Some(info))) => Err(BusError::Interrupted(
                Signal::try_from(info.ssi_signo as i32).unwrap_or(Signal::SIGTERM),
            )),
            _ => Ok(()),
        }
    }
}

/// `busctl --user --timeout=LIMIT ARGS...`: what it printed on success (not --quiet, which
/// drops a call's answer).
pub(super) fn call(
    busctl: &Path,
    args: &[&str],
    limit: Duration,
    interrupts: &Interrupts,
) -> Result<String, BusError> {
    let mut cmd = sys::helper_command(busctl);
    cmd.env("SYSTEMD_COLORS", "0")
        .arg("--user")
        .arg(format!("--timeout={}", limit.as_secs().max(1)))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| BusError::Failed(format!("cannot run {}: {e}", busctl.display())))?;
    let ended = collect(&mut child, limit, interrupts);
    if ended.is_err() {
        let _ = child.kill();
    }
    let status = child.wait();
    let (out, err) = ended?;
    match status {
        Ok(status) if status.success() => Ok(out),
        Ok(status) => Err(BusError::Failed(match err.trim() {
            "" => format!("busctl {status}"),
            said => said.to_string(),
        })),
        Err(e) => Err(BusError::Failed(format!("waiting for busctl: {e}"))),
    }
}

/// Read busctl's output and errors to their end, unless a second past `limit` (busctl's own
/// timeout) or a signal comes first.
fn collect(
    child: &mut Child,
    limit: Duration,
    interrupts: &Interrupts,
) -> Result<(String, String), BusError> {
    let deadline = Instant::now() + limit + Duration::from_secs(1);
    let nonblocking = |fd: std::os::fd::OwnedFd| {
        let flags = nix::fcntl::OFlag::O_NONBLOCK;
        let _ = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags));
        std::fs::File::from(fd)
    };
    let mut out = child.stdout.take().map(|p| nonblocking(p.into()));
    let mut err = child.stderr.take().map(|p| nonblocking(p.into()));
    let mut texts = (Vec::new(), Vec::new());
    while out.is_some() || err.is_some() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(BusError::TimedOut(limit));
        }
        let mut fds = Vec::new();
        if let Some(sfd) = &interrupts.0 {
            fds.push(PollFd::new(sfd.as_fd(), PollFlags::POLLIN));
        }
        for pipe in [&out, &err].into_iter().flatten() {
            fds.push(PollFd::new(pipe.as_fd(), PollFlags::POLLIN));
        }
        match poll(
            &mut fds,
            PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(BusError::Failed(format!("waiting for busctl: {e}"))),
        }
        drop(fds);
        interrupts.taken()?;
        for (pipe, text) in [(&mut out, &mut texts.0), (&mut err, &mut texts.1)] {
            if let Some(file) = pipe.as_mut() {
                let mut buf = [0u8; 4096];
                match file.read(&mut buf) {
                    Ok(0) => *pipe = None,
                    Ok(n) => text.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => *pipe = None,
                }
            }
        }
    }
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    Ok((text(texts.0), text(texts.1)))
}
