//! Sessions: the state directory, opened once and checked, and every change to the state
//! files in it, relative to its descriptor and under its lock.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, Flock, FlockArg, OFlag, openat, renameat};
use nix::sys::signal::Signal;
use nix::sys::stat::{Mode, fstat};
use nix::unistd::{Uid, UnlinkatFlags, getpid, unlinkat};

use super::{Proc, Record, SessionError, check_name, own_namespace, state_dir_location, utc};
use crate::error::Error;
use crate::sys;

/// The state directory, opened (not following a symlink) and checked: every later access is
/// relative to this descriptor, so nothing can swap the directory after the check.
pub(super) struct StateDir {
    pub(super) path: PathBuf,
    pub(super) fd: OwnedFd,
    /// The pid namespace of the caller: a record from another one is left alone.
    pub(super) pid_ns: u64,
}

/// A state file as read, with the text to compare against before removing it.
pub(super) struct Loaded {
    pub(super) record: Record,
    pub(super) text: String,
}

impl StateDir {
    /// Open the state directory; with `create`, make it (mode 0700) when missing, else
    /// `None` when missing.
    pub(super) fn open(create: bool) -> Result<Option<StateDir>, SessionError> {
        let uid = Uid::current().as_raw();
        let path = state_dir_location();
        let fail = |why: String| SessionError::StateDir {
            path: path.clone(),
            why,
        };
        // O_PATH: the owner and mode can be checked even where we may not read.
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let open = || openat(AT_FDCWD, &path, flags, Mode::empty());
        let mut created = false;
        let fd = match open() {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if !create => return Ok(None),
            Err(Errno::ENOENT) => {
                match nix::unistd::mkdir(&path, Mode::S_IRWXU) {
                    Ok(()) => created = true,
                    Err(Errno::EEXIST) => {}
                    Err(e) => return Err(fail(format!("cannot create it: {}", e.desc()))),
                }
                open().map_err(|e| fail(format!("cannot open it: {}", e.desc())))?
            }
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                return Err(fail("is not a directory (a symlink is refused)".into()));
            }
            Err(e) => return Err(fail(format!("cannot open it: {}", e.desc()))),
        };
        if created {
            // The umask may have taken bits away; exactly 0700 is wanted.
            let _ = nix::sys::stat::fchmodat(
                &fd,
                ".",
                Mode::S_IRWXU,
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            );
        }
        let st = fstat(&fd).map_err(|e| fail(format!("cannot stat it: {}", e.desc())))?;
        if st.st_uid != uid {
            return Err(fail(format!(
                "is owned by uid {}, not by you (uid {uid}); refusing to keep state there",
                st.st_uid
            )));
        }
        // Only you may read or change it: 0700, or 0770 for your user private group (a
        // group that is nobody else's, crate::writers), never anything for others.
        let mode = st.st_mode & 0o7777;
        let group = match st.st_mode & 0o070 {
            0 => Ok(()),
            _ => crate::userns::private_group(uid).check(st.st_gid),
        };
        if st.st_mode & 0o700 != 0o700 || st.st_mode & 0o007 != 0 || group.is_err() {
            let why = match group {
                Err(n) if st.st_mode & 0o007 == 0 => format!(
                    "has mode {mode:04o}, which lets {} in, and {}; it must be 0700 (or 0770 \
                     for your private group)",
                    n.group, n.why
                ),
                _ => format!(
                    "has mode {mode:04o}; it must be 0700, so that only you can read or change \
                     it (others may not even read it)"
                ),
            };
            return Err(fail(why));
        }
        // The same directory, now for reading and locking.
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = openat(&fd, ".", flags, Mode::empty())
            .map_err(|e| fail(format!("cannot open it: {}", e.desc())))?;
        Ok(Some(StateDir {
            path,
            fd,
            pid_ns: own_namespace("pid").unwrap_or(0),
        }))
    }

    /// Hold the directory's lock while `f` changes state files.
    pub(super) fn locked<T>(&self, f: impl FnOnce() -> T) -> Result<T, SessionError> {
        let fd = self
            .fd
            .try_clone()
            .map_err(|e| self.error(".", "lock", crate::sys::io_errno(&e)))?;
        let lock = Flock::lock(fd, FlockArg::LockExclusive)
            .map_err(|(_, e)| self.error(".", "lock", e))?;
        let out = f();
        drop(lock);
        Ok(out)
    }

    pub(super) fn error(&self, file: &str, what: &'static str, errno: Errno) -> SessionError {
        SessionError::State {
            path: self.path.join(file),
            what,
            errno,
        }
    }

    /// Remove `file` from the directory, if it is there.
    pub(super) fn unlink(&self, file: &str) {
        let _ = unlinkat(&self.fd, file, UnlinkatFlags::NoRemoveDir);
    }

    pub(super) fn state_file(name: &str) -> String {
        format!("{name}.session")
    }

    pub(super) fn log_file(name: &str) -> String {
        format!("{name}.log")
    }

    /// The socket of a session's live ports (net::forward's control.rs).
    pub(super) fn ports_socket(name: &str) -> String {
        format!("{name}.ports")
    }

    /// `file` in this directory, by a path through its descriptor: the directory checked
    /// when it was opened, whatever its path names now.
    pub(super) fn path_of(&self, file: &str) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}/{file}", self.fd.as_raw_fd()))
    }

    pub(super) fn read(&self, file: &str) -> Result<Option<String>, SessionError> {
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match openat(&self.fd, file, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(self.error(file, "read", e)),
        };
        let mut text = String::new();
        File::from(fd)
            .take(64 * 1024)
            .read_to_string(&mut text)
            .map_err(|e| self.error(file, "read", crate::sys::io_errno(&e)))?;
        Ok(Some(text))
    }

    /// The state file of `name`, when there is one and it can be parsed.
    pub(super) fn load(&self, name: &str) -> Result<Option<Loaded>, SessionError> {
        let file = Self::state_file(name);
        let Some(text) = self.read(&file)? else {
            return Ok(None);
        };
        match Record::parse(&text) {
            Ok(record) => Ok(Some(Loaded { record, text })),
            // Unreadable state is treated as stale: it names no process to trust.
            Err(_) => Ok(Some(Loaded {
                record: Record {
                    name: name.into(),
                    supervisor: Proc { pid: 0, start: 0 },
                    holder: None,
                    pid_ns: self.pid_ns,
                    created: 0,
                    namespaces: Vec::new(),
                    net: None,
                    net_down: None,
                    bypass: None,
                    cgroup: None,
                    limits: None,
                    boot: false,
                    stop_timeout: None,
                    ports: Vec::new(),
                    ended: None,
                    detached: false,
                    containers: None,
                },
                text,
            })),
        }
    }

    /// The live session `name`: a stale state file is removed on the way.
    pub(super) fn live(&self, name: &str) -> Result<Option<Record>, SessionError> {
        let Some(loaded) = self.load(name)? else {
            return Ok(None);
        };
        if loaded.record.pid_ns != self.pid_ns {
            return Err(SessionError::ForeignPidNamespace { name: name.into() });
        }
        // An ended session is kept, with its status and log, until --stop removes it.
        if loaded.record.alive() || loaded.record.ended.is_some() {
            return Ok(Some(loaded.record));
        }
        self.remove_if_unchanged(name, &loaded.text)?;
        Ok(None)
    }

    /// Remove the state (and log) of `name` if the state file still reads `text`: a new
    /// session may have taken the name in between.
    pub(super) fn remove_if_unchanged(&self, name: &str, text: &str) -> Result<(), SessionError> {
        self.locked(|| {
            if self.read(&Self::state_file(name)).ok().flatten().as_deref() == Some(text) {
                // The logs first: a log never outlives its state file's removal.
                self.unlink(&Self::ports_socket(name));
                self.unlink(&Self::older_log_file(name));
                self.unlink(&Self::log_file(name));
                self.unlink(&Self::state_file(name));
            }
        })
    }

    /// Claim `name` for a new session: create its state file, exclusively. A stale file is
    /// replaced; a live session's is an error.
    pub(super) fn reserve(&self, record: &Record) -> Result<String, SessionError> {
        let name = &record.name;
        let file = Self::state_file(name);
        let text = record.render();
        self.locked(|| {
            for _ in 0..2 {
                let flags = OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC;
                match openat(
                    &self.fd,
                    file.as_str(),
                    flags,
                    Mode::from_bits_truncate(0o600),
                ) {
                    Ok(fd) => {
                        let written = sys::with_signal_ignored(Signal::SIGXFSZ, || {
                            File::from(fd).write_all(text.as_bytes())
                        });
                        if let Err(e) = written {
                            // A half-written claim is no claim: leave nothing.
                            self.unlink(&file);
                            return Err(self.error(&file, "write", crate::sys::io_errno(&e)));
                        }
                        return Ok(text.clone());
                    }
                    Err(Errno::EEXIST) => {}
                    Err(e) => return Err(self.error(&file, "create", e)),
                }
                let existing = self.load(name)?;
                if let Some(Loaded { record: other, .. }) = existing
                    && (other.pid_ns != self.pid_ns || other.alive())
                {
                    let pid = other.holder.unwrap_or(other.supervisor).pid;
                    return Err(SessionError::Exists {
                        name: name.clone(),
                        pid,
                    });
                }
                self.unlink(&Self::ports_socket(name));
                self.unlink(&Self::older_log_file(name));
                self.unlink(&Self::log_file(name));
                self.unlink(&file);
            }
            Err(self.error(&file, "create", Errno::EEXIST))
        })?
    }

    /// Take over the state file of `record.name` from this same process before it started
    /// again (a booted image's reboot: the same pid and start time, so no other process can
    /// pass for it); else claim the name as [`StateDir::reserve`] does.
    /// Says whether it was this process's own.
    pub(super) fn take_over(&self, record: &Record) -> Result<(String, bool), SessionError> {
        let own = self.load(&record.name)?.is_some_and(|loaded| {
            loaded.record.supervisor == record.supervisor && loaded.record.pid_ns == self.pid_ns
        });
        match own {
            true => self.replace(record).map(|text| (text, true)),
            false => self.reserve(record).map(|text| (text, false)),
        }
    }

    /// Replace the state file of `record.name`, atomically (a reader sees the old text or the
    /// new, never half of one).
    pub(super) fn replace(&self, record: &Record) -> Result<String, SessionError> {
        let file = Self::state_file(&record.name);
        let tmp = format!(".{file}.{}.tmp", getpid());
        let text = record.render();
        let flags = OFlag::O_WRONLY
            | OFlag::O_CREAT
            | OFlag::O_TRUNC
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC;
        let fd = openat(
            &self.fd,
            tmp.as_str(),
            flags,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| self.error(&tmp, "create", e))?;
        let written = sys::with_signal_ignored(Signal::SIGXFSZ, || {
            File::from(fd).write_all(text.as_bytes())
        });
        let renamed = written
            .map_err(|e| crate::sys::io_errno(&e))
            .and_then(|()| renameat(&self.fd, tmp.as_str(), &self.fd, file.as_str()));
        if let Err(e) = renamed {
            self.unlink(&tmp);
            return Err(self.error(&file, "write", e));
        }
        Ok(text)
    }

    /// Every live session, oldest first; stale state files, orphaned logs and temporary
    /// files of dead writers are removed on the way.
    pub(super) fn sessions(&self) -> Result<Vec<Record>, SessionError> {
        let dir = std::fs::read_dir(&self.path)
            .map_err(|e| self.error(".", "read", crate::sys::io_errno(&e)))?;
        let mut names: Vec<String> = Vec::new();
        let mut others: Vec<String> = Vec::new();
        for entry in dir.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            match file.strip_suffix(".session") {
                Some(name) if check_name(name).is_ok() => names.push(name.into()),
                _ => others.push(file),
            }
        }
        let mut records = Vec::new();
        for name in &names {
            if let Ok(Some(record)) = self.live(name) {
                records.push(record);
            }
        }
        self.locked(|| {
            for file in others {
                let orphan_log = file
                    .strip_suffix(".log")
                    .or_else(|| file.strip_suffix(".log.1"))
                    .or_else(|| file.strip_suffix(".ports"))
                    .is_some_and(|name| !names.iter().any(|n| n == name));
                // .NAME.session.PID.tmp, left by a writer killed halfway
                let dead_writer = file.starts_with('.')
                    && file.strip_suffix(".tmp").is_some_and(|rest| {
                        rest.rsplit_once('.')
                            .and_then(|(_, pid)| pid.parse::<i32>().ok())
                            .is_some_and(|pid| Proc::of(pid).is_none())
                    });
                if orphan_log || dead_writer {
                    self.unlink(&file);
                }
            }
        })?;
        records.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
        Ok(records)
    }
}

/// The janitor's report file in the state directory.
const JANITOR_LOG: &str = "janitor.log";

/// The cgroup janitor's report (it runs after become-root has returned, holding nothing of
/// the caller's, so its one place is the state directory): `line`, after the time in UTC,
/// appended to `janitor.log`, which `--check` reads. Best effort: there is nowhere else to
/// say that this failed.
pub fn report_leftover(line: &str) {
    let Ok(Some(dir)) = StateDir::open(true) else {
        return;
    };
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_APPEND | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    if let Ok(fd) = openat(&dir.fd, JANITOR_LOG, flags, Mode::from_bits_truncate(0o600)) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // One write(2) with O_APPEND: two janitors' lines never interleave.
        let _ = File::from(fd).write_all(format!("{} {line}\n", utc(now)).as_bytes());
    }
}

/// The janitor's reports whose cgroup is still there (a line reads "TIME PATH: left in
/// place: ..."), and where the report file is.
pub fn leftovers() -> (Vec<String>, PathBuf) {
    let path = state_dir_location().join(JANITOR_LOG);
    let Ok(Some(dir)) = StateDir::open(false) else {
        return (Vec::new(), path);
    };
    let text = dir.read(JANITOR_LOG).ok().flatten().unwrap_or_default();
    let still_there = |line: &&str| {
        let rest = line.split_once(' ').map_or("", |(_, rest)| rest);
        rest.split_once(": left in place: ")
            .is_some_and(|(cgroup, _)| Path::new(cgroup).exists())
    };
    let lines = text.lines().filter(still_there).map(str::to_string);
    (lines.collect(), path)
}

/// The state directory and the state file of session `name`, checked: its name is one a
/// session may have, and both exist.
pub(super) fn load_named(name: &str) -> Result<(StateDir, Loaded), Error> {
    check_name(name).map_err(|why| SessionError::BadName {
        name: name.into(),
        why,
    })?;
    let missing = || SessionError::NoSession { name: name.into() };
    let dir = StateDir::open(false)?.ok_or_else(missing)?;
    let loaded = dir.load(name)?.ok_or_else(missing)?;
    Ok((dir, loaded))
}
