//! A run's cgroup tree: waiting, asleep, until it is empty, and removing it.
//!
//! Everything is relative to descriptors, starting from the directory that holds the leaf
//! (opened once, when the leaf is made): no path is ever built by joining names, so a tree
//! deeper than PATH_MAX is removed like any other, and nothing is followed but directories
//! of the cgroup2 file system itself (O_NOFOLLOW, and the file system checked with fstatfs;
//! cgroup2 has no symlinks, and renames a cgroup only within its parent). The walk holds two
//! descriptors whatever the depth: it climbs back with `..`, checked against the inode it
//! came from. It is bounded in time by its caller's deadline.
//!
//! The wait is the kernel's own notification: a change of cgroup.events ("populated") wakes
//! poll(2) with POLLPRI, but only for an open file that has read the current contents, so
//! the same descriptor is read again (pread at 0) before each poll (kernfs_generic_poll;
//! cgroup-v2.rst, "cgroup.events"). Polling a descriptor that was never read returns at once,
//! every time: the janitor used to spin on a whole core that way.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag, openat};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::{FchmodatFlags, FileStat, Mode, fchmodat, fstat, fstatat};
use nix::unistd::{UnlinkatFlags, unlinkat};

/// A run's cgroup: the directory that holds it, open, and its name there.
#[derive(Debug)]
pub(super) struct Leaf {
    parent: OwnedFd,
    name: CString,
    /// Where it is, for messages only.
    pub(super) path: PathBuf,
}

/// How a removal ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Removal {
    /// The tree is gone (or was already).
    Removed,
    /// A cgroup of the tree holds a process again, or gained a cgroup: wait, then try again.
    Busy,
    /// Part of the tree cannot be removed: what, and why. Nothing changes by waiting.
    Left(String),
}

const DIR: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

impl Leaf {
    /// Make cgroup `name` in cgroup directory `parent` (a cgroup2 directory, checked).
    pub(super) fn make(parent: &std::path::Path, name: &str) -> Result<Leaf, Errno> {
        let parent_fd = openat(AT_FDCWD, parent, DIR, Mode::empty())?;
        is_cgroup2(parent_fd.as_fd())?;
        let name = CString::new(name).map_err(|_| Errno::EINVAL)?;
        nix::sys::stat::mkdirat(&parent_fd, name.as_c_str(), Mode::from_bits_truncate(0o755))?;
        Ok(Leaf {
            parent: parent_fd,
            path: parent.join(name.to_string_lossy().as_ref()),
            name,
        })
    }

    /// The descriptor the janitor must keep.
    pub(super) fn raw_fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.parent.as_raw_fd()
    }

    /// Wait until no process is left in the tree (cgroup.events says "populated 0"), or the
    /// tree is gone; `Ok(false)` when `deadline` came first. Asleep in poll(2) meanwhile.
    pub(super) fn wait_emptied(&self, deadline: Option<Instant>) -> Result<bool, Errno> {
        let dir = match open_dir(self.parent.as_fd(), &self.name) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(true),
            Err(e) => return Err(e),
        };
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let events = openat(&dir, c"cgroup.events", flags, Mode::empty())?;
        let mut buf = [0u8; 256];
        loop {
            // Read through the descriptor that is polled: that read is what re-arms it.
            let n = nix::sys::uio::pread(&events, &mut buf, 0)?;
            let text = String::from_utf8_lossy(&buf[..n]);
            if !text.lines().any(|l| l == "populated 1") {
                return Ok(true);
            }
            let timeout = match deadline {
                None => PollTimeout::NONE,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(false);
                    }
                    PollTimeout::try_from(left.max(Duration::from_millis(1)))
                        .unwrap_or(PollTimeout::MAX)
                }
            };
            let mut fds = [PollFd::new(events.as_fd(), PollFlags::POLLPRI)];
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Remove the tree, deepest first, giving up at `deadline`. A cgroup that refuses the
    /// caller (made unreadable inside) gets its owner's rwx back when it is the caller's own;
    /// one of a subordinate id's is left, and said.
    pub(super) fn remove(&self, deadline: Instant) -> Removal {
        let mut walk = Walk {
            names: Vec::new(),
            inodes: Vec::new(),
            pending: Vec::new(),
        };
        walk.run(self, deadline).unwrap_or_else(|e| e)
    }
}

/// The walk's state: the names from the leaf down to the current directory, their inodes
/// (to check each climb with `..`), and the cgroups still to visit below each.
struct Walk {
    names: Vec<CString>,
    inodes: Vec<u64>,
    pending: Vec<Vec<CString>>,
}

impl Walk {
    fn run(&mut self, leaf: &Leaf, deadline: Instant) -> Result<Removal, Removal> {
        let mut cur = match open_dir(leaf.parent.as_fd(), &leaf.name) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(Removal::Removed),
            Err(e) => return Err(self.left(leaf, &leaf.name, e.desc())),
        };
        is_cgroup2(cur.as_fd()).map_err(|e| self.left(leaf, &leaf.name, e.desc()))?;
        self.enter(leaf, &cur, leaf.name.clone())?;
        loop {
            if Instant::now() > deadline {
                let what = format!("not removed within {} s", LIMIT.as_secs());
                return Err(self.left(leaf, c"", &what));
            }
            let next = self.pending.last_mut().and_then(Vec::pop);
            if let Some(child) = next {
                match open_dir(cur.as_fd(), &child) {
                    Ok(fd) => {
                        cur = fd;
                        self.enter(leaf, &cur, child)?;
                    }
                    Err(Errno::ENOENT) => {} // gone meanwhile
                    Err(e) => return Err(self.left(leaf, &child, e.desc())),
                }
                continue;
            }
            // Nothing is left below the current directory: remove it from its parent.
            let name = self.names.pop().expect("inside the tree");
            self.inodes.pop();
            self.pending.pop();
            let parent = match self.inodes.last() {
                None => None,
                Some(&ino) => {
                    let up = openat(&cur, c"..", DIR, Mode::empty())
                        .map_err(|e| self.left(leaf, &name, e.desc()))?;
                    if fstat(&up).map(|st| st.st_ino) != Ok(ino) {
                        return Err(self.left(leaf, &name, "its parent was moved"));
                    }
                    Some(up)
                }
            };
            let at = parent.as_ref().map_or(leaf.parent.as_fd(), |fd| fd.as_fd());
            match unlinkat(at, name.as_c_str(), UnlinkatFlags::RemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(Errno::EBUSY) => return Ok(Removal::Busy),
                Err(e) => return Err(self.left(leaf, &name, e.desc())),
            }
            match parent {
                Some(up) => cur = up,
                None => return Ok(Removal::Removed),
            }
        }
    }

    /// Step into directory `fd`, named `name`: note it and the cgroups below it.
    fn enter(&mut self, leaf: &Leaf, fd: &OwnedFd, name: CString) -> Result<(), Removal> {
        let st = fstat(fd).map_err(|e| self.left(leaf, &name, e.desc()))?;
        let below = subdirectories(fd.as_fd()).map_err(|e| self.left(leaf, &name, e.desc()))?;
        self.names.push(name);
        self.inodes.push(st.st_ino);
        self.pending.push(below);
        Ok(())
    }

    /// What is left, as a path below the leaf's parent ("become-root-PID/a"), and why.
    fn left(&self, leaf: &Leaf, last: &CStr, why: &str) -> Removal {
        let mut parts: Vec<String> = self
            .names
            .iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        if !last.is_empty() {
            parts.push(last.to_string_lossy().into_owned());
        }
        Removal::Left(format!(
            "{}: left in place: {}: {why}",
            leaf.path.display(),
            parts.join("/")
        ))
    }
}

/// How long a removal may take once the tree is empty (a tree of thousands of cgroups is
/// removed in well under a second).
pub(super) const LIMIT: Duration = Duration::from_secs(10);

/// Open directory `name` in `dir`. A directory of the caller's own that refuses it (mode
/// 000, say) gets its owner's rwx back first: it is about to be removed, and cgroup2 holds
/// only directories and the kernel's files, never a symlink to follow.
fn open_dir(dir: BorrowedFd<'_>, name: &CStr) -> Result<OwnedFd, Errno> {
    match openat(dir, name, DIR, Mode::empty()) {
        Err(Errno::EACCES) => {
            let st = fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)?;
            if !is_own_directory(&st) || st.st_mode & 0o700 == 0o700 {
                return Err(Errno::EACCES);
            }
            let mode = Mode::from_bits_truncate(st.st_mode | 0o700);
            fchmodat(dir, name, mode, FchmodatFlags::FollowSymlink)?;
            openat(dir, name, DIR, Mode::empty())
        }
        other => other,
    }
}

fn is_own_directory(st: &FileStat) -> bool {
    st.st_mode & nix::libc::S_IFMT == nix::libc::S_IFDIR
        && st.st_uid == nix::unistd::geteuid().as_raw()
}

fn is_cgroup2(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    let fs = nix::sys::statfs::fstatfs(fd)?;
    match fs.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC {
        true => Ok(()),
        false => Err(Errno::ENOTDIR),
    }
}

/// The cgroups directly below directory `fd`: its subdirectories (cgroup2 gives d_type).
fn subdirectories(fd: BorrowedFd<'_>) -> Result<Vec<CString>, Errno> {
    let dir = nix::dir::Dir::openat(fd, c".", DIR, Mode::empty())?;
    let mut names = Vec::new();
    for entry in dir {
        let entry = entry?;
        let name = entry.file_name();
        if entry.file_type() == Some(nix::dir::Type::Directory) && name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}
