//! Mount points become-root makes where a user expects them, as bubblewrap does:
//!
//! - a destination (of --bind, --tmpfs, --overlay) below a tmpfs or a throwaway overlay this
//!   run mounted before it, or below a new root's own /dev, /tmp or /run, which are tmpfs
//!   too: such a place holds nothing the user could have made, so its mount point is made
//!   there, in become-root's own file system (directories, and last a directory or an empty
//!   file to match a bind's source); nothing is made anywhere else. Made inside the
//!   namespace, step by step from the mount's root with openat2(2), never through a symbolic
//!   link and never onto another mount (RESOLVE_NO_SYMLINKS, RESOLVE_NO_XDEV), so a link
//!   in a throwaway overlay's lower cannot lead the mkdir out of it.
//! - a new root's own mount points (proc, dev, sys, tmp, and run for --boot) missing from a
//!   --rootfs the caller owns: made by `check`, as the caller, mode 0755. In a root the caller
//!   cannot write to, one error names all that are missing.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::Mode;

use super::{FsSpec, Options, mount_error, plan};
use crate::error::Error;

/// The new root's own mount points, in the order the plan mounts them.
pub(super) fn root_dirs(boot: bool) -> Vec<&'static str> {
    let mut names = vec!["proc", "dev", "sys", "tmp"];
    if boot {
        names.push("run");
    }
    names
}

/// Where the mount point of option `index` is made, when it is below a place become-root
/// mounts fresh before it: that mount's target and the path below it (pure; paths compared
/// by their components as given, in the new root when there is one). None: the destination
/// is the user's to provide, as before.
pub(super) fn below_fresh(o: &Options, index: usize) -> Option<(PathBuf, PathBuf)> {
    let dst = plan::inside(&o.rootfs, o.filesystem.get(index)?.target());
    // Every mount made before it, earliest first, and whether it is fresh (holds nothing of
    // the user's yet): a new root's tmpfs mount points, then the options before this one.
    let mut before: Vec<(PathBuf, bool)> = Vec::new();
    if let Some(root) = &o.rootfs {
        before.extend(root_dirs(o.boot).into_iter().map(|name| {
            let fresh = matches!(name, "dev" | "tmp" | "run");
            (root.join(name), fresh)
        }));
    }
    before.extend(o.filesystem[..index].iter().map(|spec| {
        let fresh = matches!(
            spec,
            FsSpec::Tmpfs { .. } | FsSpec::Overlay { upper: None, .. }
        );
        (plan::inside(&o.rootfs, spec.target()), fresh)
    }));
    // The last mount at or above the destination is what a lookup of it meets.
    let (base, fresh) = before
        .into_iter()
        .rev()
        .find(|(at, _)| dst.starts_with(at))?;
    let rest = dst.strip_prefix(&base).ok()?.to_path_buf();
    // Only names below it: a '..' would lead the lookup elsewhere than the names made.
    let names = rest
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    (fresh && names && rest.components().next().is_some()).then_some((base, rest))
}

/// Make `rest` below `base` (the root of a fresh mount of this run, opened as the mount
/// step opened it): each missing directory, mode 0755, and last a directory or, for a bind
/// of a file `source`, an empty file (0644). `what` and `shown` name the destination in
/// errors.
pub(super) fn make(
    base: OwnedFd,
    rest: &Path,
    source: Option<&Path>,
    what: &str,
    shown: &Path,
) -> Result<(), Error> {
    let fail = |errno| mount_error(format!("{what} {}", shown.display()), errno);
    // A bind's source decides the kind, its links followed as the bind follows them.
    let file = source.is_some_and(|s| !s.is_dir());
    let names: Vec<&std::ffi::OsStr> = rest
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(name) => Some(name),
            _ => None,
        })
        .collect();
    let mut dir = base;
    for (i, name) in names.iter().enumerate() {
        let mode = Mode::from_bits_truncate(0o644);
        if i + 1 == names.len() && file {
            let flags = OFlag::O_CREAT
                | OFlag::O_EXCL
                | OFlag::O_WRONLY
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC;
            return match nix::fcntl::openat(&dir, *name, flags, mode) {
                // Exactly 0644, whatever the umask.
                Ok(made) => nix::sys::stat::fchmod(&made, mode).map_err(fail),
                Err(nix::Error::EEXIST) => Ok(()),
                Err(errno) => Err(fail(errno)),
            };
        }
        let made = match nix::sys::stat::mkdirat(&dir, *name, Mode::from_bits_truncate(0o755)) {
            Ok(()) => true,
            Err(nix::Error::EEXIST) => false,
            Err(errno) => return Err(fail(errno)),
        };
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_XDEV,
            );
        let next = openat2(&dir, *name, how).map_err(|errno| match errno {
            nix::Error::ELOOP | nix::Error::EXDEV => Error::new(
                format!("{what} {}", shown.display()),
                format!(
                    "its mount point would be made through {}, which is a symbolic link or \
                     another mount",
                    Path::new(name).display()
                ),
            )
            .with_hint("name the destination by a path without links"),
            errno => fail(errno),
        })?;
        if made {
            nix::sys::stat::fchmod(&next, Mode::from_bits_truncate(0o755)).map_err(fail)?;
        }
        dir = next;
    }
    Ok(())
}

impl super::root::NewRoot {
    /// Which of `names` (the new root's own mount points) the image has no entry for at all
    /// (a link there is no directory either, and is reported as such where it is mounted).
    pub(super) fn missing(&self, names: &[&'static str]) -> Vec<&'static str> {
        names
            .iter()
            .copied()
            .filter(|name| {
                nix::sys::stat::fstatat(self.fd(), *name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
                    == Err(nix::Error::ENOENT)
            })
            .collect()
    }

    /// Make the missing mount points `names` when the new root is the caller's to write to
    /// (its owner, with write access), directories of mode 0755; else one error naming them
    /// all.
    pub(super) fn make_own_dirs(&self, names: &[&'static str]) -> Result<(), Error> {
        if names.is_empty() {
            return Ok(());
        }
        let shown = format!("--rootfs {}", self.dir.display());
        let fail = |errno| mount_error(shown.clone(), errno);
        let st = nix::sys::stat::fstat(self.fd()).map_err(fail)?;
        let writable = nix::unistd::access(&self.dir, nix::unistd::AccessFlags::W_OK).is_ok();
        if st.st_uid != nix::unistd::getuid().as_raw() || !writable {
            return Err(Error::new(
                shown,
                format!(
                    "has no {}, the new root's own mount points, and only its owner (uid {}) \
                     may add them",
                    names.join(", "),
                    st.st_uid
                ),
            )
            .with_hint(format!(
                "make them in the image as its owner (for an image of your subordinate ids: \
                 cd {} && become-root mkdir {})",
                self.dir.display(),
                names.join(" ")
            )));
        }
        for name in names {
            let mode = Mode::from_bits_truncate(0o755);
            let what = format!("--rootfs {}", self.dir.join(name).display());
            match nix::sys::stat::mkdirat(self.fd(), *name, mode) {
                Ok(()) | Err(nix::Error::EEXIST) => {}
                Err(errno) => return Err(mount_error(what, errno)),
            }
            // Exactly 0755, whatever the umask, on the directory just made (not a link).
            let dir = nix::fcntl::openat(
                self.fd(),
                *name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|errno| mount_error(what.clone(), errno))?;
            nix::sys::stat::fchmod(&dir, mode).map_err(|errno| mount_error(what, errno))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    use std::path::PathBuf;

    use super::{FsSpec, Options, below_fresh, root_dirs};

    // long: a table of (input, expected) rows, one per rule
    #[test]
    fn below_fresh_rows() {
        let tmpfs = |d: &str| FsSpec::Tmpfs { dir: d.into() };
        let bind = |s: &str, d: &str| FsSpec::Bind {
            src: s.into(),
            dst: d.into(),
            readonly: false,
        };
        let overlay = |t: &str, upper: Option<&str>| FsSpec::Overlay {
            lowers: vec!["/l".into()],
            target: t.into(),
            upper: upper.map(PathBuf::from),
        };
        type Row = (
            Option<&'static str>,
            Vec<FsSpec>,
            Option<(&'static str, &'static str)>,
        );
        let rows: Vec<Row> = vec![
            (
                None,
                vec![tmpfs("/x"), bind("/d", "/x/data")],
                Some(("/x", "data")),
            ),
            (
                None,
                vec![tmpfs("/x"), bind("/d", "/x/a/b")],
                Some(("/x", "a/b")),
            ),
            (
                None,
                vec![tmpfs("x"), bind("/d", "x/./data")],
                Some(("x", "data")),
            ),
            (None, vec![tmpfs("/x"), bind("/d", "/x")], None),
            (None, vec![tmpfs("/x"), bind("/d", "/xy/data")], None),
            (None, vec![tmpfs("/x"), bind("/d", "/x/../y")], None),
            (None, vec![bind("/d", "/x/data"), tmpfs("/x")], None),
            (
                None,
                vec![tmpfs("/x"), bind("/e", "/x"), bind("/d", "/x/data")],
                None,
            ),
            (
                None,
                vec![tmpfs("/x/a"), tmpfs("/x"), bind("/d", "/x/a/d")],
                Some(("/x", "a/d")),
            ),
            (
                None,
                vec![overlay("/x", None), bind("/d", "/x/data")],
                Some(("/x", "data")),
            ),
            (
                None,
                vec![overlay("/x", Some("/u")), bind("/d", "/x/data")],
                None,
            ),
            (
                Some("/r"),
                vec![bind("/d", "/tmp/data")],
                Some(("/r/tmp", "data")),
            ),
            (
                Some("/r"),
                vec![bind("/dev/kvm", "/dev/kvm")],
                Some(("/r/dev", "kvm")),
            ),
            (Some("/r"), vec![bind("/d", "/run/d")], None),
            (Some("/r"), vec![bind("/d", "/proc/x")], None),
            (Some("/r"), vec![bind("/d", "/mnt/d")], None),
            (
                Some("/r"),
                vec![tmpfs("/mnt"), bind("/d", "/mnt/d")],
                Some(("/r/mnt", "d")),
            ),
        ];
        for (root, filesystem, want) in rows {
            let o = Options {
                rootfs: root.map(PathBuf::from),
                filesystem: filesystem.clone(),
                ..Options::default()
            };
            let last = filesystem.len() - 1;
            let want = want.map(|(b, r)| (PathBuf::from(b), PathBuf::from(r)));
            assert_eq!(below_fresh(&o, last), want, "{root:?} {filesystem:?}");
        }
        let boot = Options {
            rootfs: Some("/r".into()),
            boot: true,
            filesystem: vec![bind("/d", "/run/d")],
            ..Options::default()
        };
        assert_eq!(below_fresh(&boot, 0), Some(("/r/run".into(), "d".into())));
        assert_eq!(root_dirs(true), ["proc", "dev", "sys", "tmp", "run"]);
    }
}
