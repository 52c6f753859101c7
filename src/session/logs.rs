//! Sessions: `--logs`, a detached session's output (a booted image's console), while it runs
//! and after it ended; and the bound on how much of it is kept.

use super::*;

/// The most a log keeps: past it, become-root moves it to `NAME.log.1` (replacing the one
/// before) and starts it again, so a session keeps at most twice this much.
pub const LOG_MAX: u64 = 8 << 20;

/// How often `--logs --follow` looks for more.
const FOLLOW_EVERY: Duration = Duration::from_millis(100);

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
    if let Some(mut older) = dir.open_log(&StateDir::older_log_file(name))? {
        copy(&mut older)?;
    }
    let Some(mut log) = dir.open_log(&StateDir::log_file(name))? else {
        return Ok(());
    };
    copy(&mut log)?;
    if !follow {
        return Ok(());
    }
    // Until the session ends (its state says so, or is gone), then what it wrote last.
    loop {
        let running = dir
            .load(name)
            .ok()
            .flatten()
            .is_some_and(|l| l.record.alive());
        // A log that shrank was started again (LOG_MAX): the rest of what was read so far is
        // in NAME.log.1, its copy; then the log from its start.
        let offset = nix::unistd::lseek(&log, 0, nix::unistd::Whence::SeekCur).unwrap_or(0);
        if fstat(&log).is_ok_and(|st| st.st_size < offset) {
            if let Some(mut older) = dir.open_log(&StateDir::older_log_file(name))?
                && nix::unistd::lseek(&older, offset, nix::unistd::Whence::SeekSet).is_ok()
            {
                copy(&mut older)?;
            }
            let _ = nix::unistd::lseek(&log, 0, nix::unistd::Whence::SeekSet);
        }
        copy(&mut log)?;
        if !running {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_EVERY);
    }
}

impl StateDir {
    /// The log before the last time it was started again.
    pub(super) fn older_log_file(name: &str) -> String {
        format!("{name}.log.1")
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

/// Keep `log` (a session's, open for appending) under [`LOG_MAX`]: past it, copy it to
/// `NAME.log.1` and empty it. Whoever writes to it appends (O_APPEND), so they go on at its
/// new end. The copy goes on until it has all the log holds, and the log is emptied right
/// after: what a writer adds in between (microseconds) is lost.
pub(super) fn bound(dir: &StateDir, name: &str, log: &File) {
    if !fstat(log).is_ok_and(|st| st.st_size as u64 > LOG_MAX) {
        return;
    }
    let older = StateDir::older_log_file(name);
    let tmp = format!(".{older}.{}.tmp", getpid());
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_NOFOLLOW;
    let Ok(fd) = openat(
        &dir.fd,
        tmp.as_str(),
        flags | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    ) else {
        return;
    };
    let copied = dir
        .open_log(&StateDir::log_file(name))
        .ok()
        .flatten()
        .map(|mut from| {
            let mut to = File::from(fd);
            sys::with_signal_ignored(Signal::SIGXFSZ, || {
                let mut copied = 0u64;
                loop {
                    copied += std::io::copy(&mut from, &mut to)?;
                    match fstat(log) {
                        Ok(st) if st.st_size as u64 > copied => {}
                        _ => return Ok::<_, std::io::Error>(copied),
                    }
                }
            })
        });
    match copied {
        Some(Ok(_)) if renameat(&dir.fd, tmp.as_str(), &dir.fd, older.as_str()).is_ok() => {
            let _ = nix::unistd::ftruncate(log, 0);
        }
        _ => dir.unlink(&tmp),
    }
}
