//! The in-root path rule: with `--rootfs`, every place become-root mounts on or makes a file in
//! below the new root (its /proc, /dev and what is in it, /sys, /tmp, /run, /etc/resolv.conf,
//! the run's cgroup2, and the destinations of --bind, --tmpfs and --overlay) is opened *in*
//! that root, with openat2(2) and RESOLVE_IN_ROOT, and the kernel is given the descriptor
//! (as /proc/self/fd/N), never the path. The image is not the caller's to trust (it may be a
//! download): a symbolic link in it is resolved as COMMAND will resolve it after pivot_root,
//! with the new root as `/`, so no `..`, absolute link or /proc magic link can take a mount,
//! or a file become-root makes, out of it. The new root's own mount points must moreover be
//! directories of the image and not links at all (a link there is an error).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};

use super::{mount_error, open_path};
use crate::error::Error;

/// How symbolic links below the new root are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Links {
    /// Followed, inside the new root (a destination the user named).
    Inside,
    /// Refused: become-root's own mount points (proc, dev, sys, tmp, run, sys/fs/cgroup).
    Refused,
}

/// The new root, once bound on itself, held open so that paths below it are opened in it.
pub(super) struct NewRoot {
    pub(super) dir: PathBuf,
    fd: OwnedFd,
}

/// Where a mount goes: a path of the caller's tree (no new root, or not below it), or a place
/// opened in the new root and named to the kernel through its descriptor.
pub(super) enum Place {
    Path(PathBuf),
    Opened { fd: OwnedFd, shown: PathBuf },
}

impl Place {
    /// The path mount(2) is given: the place itself, or /proc/self/fd/N, which the kernel
    /// follows to exactly the object opened (magic links are not looked up again).
    pub(super) fn target(&self) -> PathBuf {
        match self {
            Place::Path(path) => path.clone(),
            Place::Opened { fd, .. } => fd_path(fd),
        }
    }

    /// The place as messages name it (the path below the new root's directory).
    pub(super) fn shown(&self) -> &Path {
        match self {
            Place::Path(path) => path,
            Place::Opened { shown, .. } => shown,
        }
    }
}

/// /proc/self/fd/N for a descriptor of this process.
pub(super) fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

impl NewRoot {
    /// Open the new root `dir` (the bind of it on itself, once that is made).
    pub(super) fn open(dir: &Path) -> Result<NewRoot, Error> {
        let fd = open_path(dir)
            .map_err(|errno| mount_error(format!("--rootfs {}", dir.display()), errno))?;
        Ok(NewRoot {
            dir: dir.to_path_buf(),
            fd,
        })
    }

    /// The new root's descriptor (O_PATH), for lookups and entries made in it.
    pub(super) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// `path` relative to the new root, if it is below it (as the plan names destinations).
    pub(super) fn relative<'a>(&self, path: &'a Path) -> Option<&'a Path> {
        path.strip_prefix(&self.dir).ok()
    }

    /// Open `rel` (a path relative to the new root) in it, as O_PATH with `flags` added;
    /// `what` names it in an error ("bind destination").
    pub(super) fn open_in(
        &self,
        what: &str,
        rel: &Path,
        links: Links,
        flags: OFlag,
    ) -> Result<OwnedFd, Error> {
        let shown = format!("{what} {}", self.dir.join(rel).display());
        let shown = shown.trim_start();
        let mut resolve = ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS;
        if links == Links::Refused {
            resolve |= ResolveFlag::RESOLVE_NO_SYMLINKS;
        }
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC | flags)
            .resolve(resolve);
        // The empty path is the root itself ("." with RESOLVE_IN_ROOT).
        let rel_or_dot = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        // EAGAIN: a rename or mount elsewhere raced with a '..' of the lookup, and the kernel
        // would rather not guess (openat2(2)); the lookup is simply made again.
        let mut tries = 0;
        let result = loop {
            match openat2(&self.fd, rel_or_dot, how) {
                Err(nix::Error::EAGAIN) if tries < 32 => tries += 1,
                done => break done,
            }
        };
        result.map_err(|errno| match (errno, links, self.first_link(rel)) {
            (nix::Error::ELOOP, Links::Refused, Some((link, to))) => Error::new(
                format!("--rootfs {}", self.dir.display()),
                format!(
                    "{} is a symbolic link (to {}); become-root mounts the new root's own \
                     /proc, /dev, /sys, /tmp and /run only on directories of the image",
                    link.display(),
                    to.display()
                ),
            )
            .with_hint(format!(
                "make {} a directory in the image (a link there could lead become-root's \
                 mounts out of it)",
                link.display()
            )),
            (nix::Error::ELOOP, Links::Inside, _) => Error::new(
                shown,
                "leads through a /proc magic link or a loop of symbolic links in the new root",
            )
            .with_hint(
                "name the directory inside the new root that it should lead to (links are \
                 resolved with the new root as /, as COMMAND sees them)",
            ),
            _ => mount_error(shown, errno),
        })
    }

    /// The first component of `rel` that is a symbolic link, and where it leads.
    fn first_link(&self, rel: &Path) -> Option<(PathBuf, PathBuf)> {
        // The components before the first link are not links, so RESOLVE_NO_SYMLINKS lets
        // the lookup through them; O_PATH with O_NOFOLLOW opens a last one that is a link as
        // the link itself (openat2(2)).
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_SYMLINKS);
        let mut at = PathBuf::new();
        for component in rel.components() {
            at.push(component);
            let fd = openat2(&self.fd, &at, how).ok()?;
            if let Ok(to) = nix::fcntl::readlinkat(&fd, "") {
                return Some((at, PathBuf::from(to)));
            }
        }
        None
    }
}
