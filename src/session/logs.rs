//! Sessions: `--logs`, a detached session's output (a booted image's console), while it runs
//! and after it ended; how that output reaches the log; and the bound on how much is kept.
//!
//! COMMAND's standard output and error are a pipe, and become-root copies what comes out of
//! it into `NAME.log`, of which it is the only writer. Past [`LOG_MAX`] it renames the log to
//! `NAME.log.1` (replacing the one before) and starts a new one, before the write that would
//! cross the bound. Nothing is ever truncated under a writer, so nothing written is lost: a
//! copy of a log COMMAND appends to itself, then its truncation, loses what COMMAND writes in
//! between, which under load was a whole megabyte (issue 26); and the bound holds at each
//! write, not at a timer's tick. When the run is over and a process of COMMAND's still holds
//! the pipe, a keeper (become-root started again, holding nothing else) copies on until the
//! last one closes it.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::signal::Signal;
use nix::sys::stat::{Mode, fstat};

use super::{SessionError, StateDir, load_named};
use crate::error::Error;
use crate::sys;

/// The most a log keeps: past it, become-root moves it to `NAME.log.1` (replacing the one
/// before) and starts it again, so a session keeps at most twice this much.
pub const LOG_MAX: u64 = 8 << 20;

/// How long `--logs --follow` waits before it looks for more.
const FOLLOW_EVERY: Duration = Duration::from_millis(100);

/// A detached session's output on its way to its log: the read end of COMMAND's pipe, and
/// the log, held by become-root alone.
pub(super) struct Output {
    pipe: File,
    log: File,
}

/// What a copy from the pipe found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Copied {
    /// All there was for now; writers still hold the pipe.
    Now,
    /// The pipe is at its end: every writer closed it.
    End,
}

impl Output {
    /// `pipe`: the read end of COMMAND's output (made non-blocking here).
    pub(super) fn new(pipe: File, log: File) -> Output {
        let _ = nix::fcntl::fcntl(
            &pipe,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        Output { pipe, log }
    }

    pub(super) fn log(&self) -> &File {
        &self.log
    }

    /// A descriptor of the pipe to poll (a copy: supervision polls it while the session is
    /// borrowed elsewhere).
    pub(super) fn pipe_to_poll(&self) -> Option<OwnedFd> {
        self.pipe.as_fd().try_clone_to_owned().ok()
    }

    /// Copy what the pipe holds now into the log, at most `reads` reads of 64 KiB (`None`:
    /// until it is empty), so that supervision gets back to its signals.
    pub(super) fn copy(&mut self, dir: &StateDir, name: &str, reads: Option<usize>) -> Copied {
        let mut buf = vec![0u8; 64 << 10];
        let mut done = 0;
        while reads.is_none_or(|most| done < most) {
            match nix::unistd::read(&self.pipe, &mut buf) {
                Ok(0) => return Copied::End,
                Ok(n) => self.append(dir, name, &buf[..n]),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Copied::Now,
                Err(_) => return Copied::End,
            }
            done += 1;
        }
        Copied::Now
    }

    /// Append `bytes`, starting the log again first if they would take it past the bound.
    fn append(&mut self, dir: &StateDir, name: &str, bytes: &[u8]) {
        let size = fstat(&self.log).map_or(0, |st| st.st_size as u64);
        if size > 0 && size + bytes.len() as u64 > LOG_MAX {
            self.start_again(dir, name);
        }
        // Over the file size limit (ulimit -f) the write fails (EFBIG) instead of killing
        // become-root; what cannot be kept is dropped.
        sys::with_signal_ignored(Signal::SIGXFSZ, || (&self.log).write_all(bytes)).ok();
    }

    /// Past [`LOG_MAX`] (what become-root writes itself, a booted image's console, is looked
    /// at every second): start the log again.
    pub(super) fn bound(&mut self, dir: &StateDir, name: &str) {
        if fstat(&self.log).is_ok_and(|st| st.st_size as u64 > LOG_MAX) {
            self.start_again(dir, name);
        }
    }

    /// Rename the log to `NAME.log.1` and open a new one, which become-root's own output (its
    /// standard output, and its standard error once that is the log) follows. A reader of
    /// the old log reads it to its end under its new name.
    fn start_again(&mut self, dir: &StateDir, name: &str) {
        let (log, older) = (StateDir::log_file(name), StateDir::older_log_file(name));
        let flags = OFlag::O_WRONLY
            | OFlag::O_CREAT
            | OFlag::O_EXCL
            | OFlag::O_APPEND
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC;
        if renameat(&dir.fd, log.as_str(), &dir.fd, older.as_str()).is_err() {
            return;
        }
        let Ok(fd) = openat(
            &dir.fd,
            log.as_str(),
            flags,
            Mode::from_bits_truncate(0o600),
        ) else {
            return; // on in the old one, under its new name
        };
        let new = File::from(fd);
        let old = fstat(&self.log).ok().map(|st| (st.st_dev, st.st_ino));
        for std in [1, 2] {
            let here = fstat(sys::std_fd(std))
                .ok()
                .map(|st| (st.st_dev, st.st_ino));
            if here.is_some() && here == old {
                let _ = match std {
                    1 => nix::unistd::dup2_stdout(&new),
                    _ => nix::unistd::dup2_stderr(&new),
                };
            }
        }
        self.log = new;
    }

    /// The run is over: copy what is left; if a process of COMMAND's still holds the pipe,
    /// leave a keeper to copy the rest, until the last one closes it.
    ///
    /// The keeper is this program started again ([`KEEPER`]), not a fork: become-root may
    /// run threads by now (the forwarder's, for published and live ports), and a fork of a
    /// process with threads may inherit a lock another held (sys::fork_process). std's
    /// spawn makes the child with nothing but async-signal-safe calls before its exec.
    pub(super) fn finish(mut self, dir: &StateDir, name: &str) {
        if self.copy(dir, name, None) == Copied::End {
            return;
        }
        let started = std::process::Command::new("/proc/self/exe")
            .arg0("become-root")
            .env(KEEPER, name)
            .stdin(self.pipe)
            .stdout(self.log)
            .stderr(std::process::Stdio::null())
            .spawn();
        // Not waited for: it outlives this process, and its parent is then the subreaper.
        if let Err(e) = started {
            crate::error::say!("become-root: the session's log: starting its keeper: {e}");
        }
    }
}

/// In the environment of become-root started as a session's log keeper: the session's name.
/// Standard input is the read end of COMMAND's output, standard output the log.
pub const KEEPER: &str = "BECOME_ROOT_LOG_KEEPER";

/// Be the log keeper of session `name` (started by a detached session that ends while a
/// process it left holds its output): copy standard input into the
/// log, started again past [`LOG_MAX`] as become-root did, until every writer has closed the
/// pipe. A fresh process of one thread, with standard error on /dev/null.
pub fn keep_log(name: &OsStr) -> i32 {
    // Started as /proc/self/exe, whose name ps would show: it is become-root's.
    let _ = nix::sys::prctl::set_name(c"become-root");
    // Nothing of the caller's but the pipe and the log: descriptors inherited without
    // close-on-exec (a jobserver's) are closed.
    sys::close_fds_except(&[]);
    let Some(name) = name.to_str() else {
        return 1;
    };
    let Ok(Some(dir)) = StateDir::open(false) else {
        return 1;
    };
    let (Ok(pipe), Ok(log)) = (
        sys::std_fd(0).try_clone_to_owned(),
        sys::std_fd(1).try_clone_to_owned(),
    ) else {
        return 1;
    };
    let mut output = Output::new(File::from(pipe), File::from(log));
    // Blocking now: each read waits for more, or for the end.
    let _ = nix::fcntl::fcntl(
        &output.pipe,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    );
    while output.copy(&dir, name, None) == Copied::Now {}
    0
}

pub(super) fn logs(name: &str, follow: bool) -> Result<(), Error> {
    let (dir, loaded) = load_named(name)?;
    if !loaded.record.detached {
        return Err(SessionError::NoLog { name: name.into() }.into());
    }
    let mut out = std::io::stdout().lock();
    let mut copy = |file: &mut File| -> Result<(), Error> {
        std::io::copy(file, &mut out)
            .map(drop)
            .map_err(|e| Error::sys("writing the log", sys::io_errno(&e)))
    };
    // The log first, then the one before: if the log is started again in between, both are
    // the same file, read once.
    let Some(mut log) = dir.open_log(&StateDir::log_file(name))? else {
        return Ok(());
    };
    if let Some(mut older) = dir.open_log(&StateDir::older_log_file(name))?
        && file_id(&older) != file_id(&log)
    {
        copy(&mut older)?;
    }
    copy(&mut log)?;
    if !follow {
        return Ok(());
    }
    // Until the session ends (its state says so, or its processes are gone), then what it
    // wrote last.
    loop {
        let running = dir
            .load(name)
            .ok()
            .flatten()
            .is_some_and(|l| l.record.writing());
        copy(&mut log)?;
        // Started again (LOG_MAX): the file read so far is NAME.log.1 now, and what was
        // written to it before that is read to its end; if it was started again twice, the
        // NAME.log.1 there is a log not read yet, whole; then the new log from its start.
        let now = dir.log_id(&StateDir::log_file(name));
        if now.is_some() && now != file_id(&log) {
            copy(&mut log)?;
            if dir.log_id(&StateDir::older_log_file(name)) != file_id(&log)
                && let Some(mut older) = dir.open_log(&StateDir::older_log_file(name))?
            {
                copy(&mut older)?;
            }
            if let Some(new) = dir.open_log(&StateDir::log_file(name))? {
                log = new;
            }
            continue;
        }
        if !running {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_EVERY);
    }
}

/// Which file this is (device and inode).
fn file_id(file: &File) -> Option<(u64, u64)> {
    fstat(file).ok().map(|st| (st.st_dev, st.st_ino))
}

impl StateDir {
    /// The log before the last time it was started again.
    pub(super) fn older_log_file(name: &str) -> String {
        format!("{name}.log.1")
    }

    /// Which file log `file` is now (device and inode), not following a link.
    fn log_id(&self, file: &str) -> Option<(u64, u64)> {
        nix::sys::stat::fstatat(&self.fd, file, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
            .ok()
            .map(|st| (st.st_dev, st.st_ino))
    }

    /// Open log `file` for reading, not following a link; `None` when there is none.
    fn open_log(&self, file: &str) -> Result<Option<File>, SessionError> {
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        match openat(&self.fd, file, flags, Mode::empty()) {
            Ok(fd) => Ok(Some(File::from(fd))),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(self.error(file, "read", e)),
        }
    }
}
