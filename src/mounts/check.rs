//! Every path of the plan checked before anything is mounted, and the directories an overlay
//! writes to made or checked without following a symbolic link (see [`own_dir`]).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;

use super::{FsSpec, Options, Prepared, Upper, mount_error};
use crate::error::Error;
use crate::writers::NotPrivate;

pub(super) fn not_found(what: &str, path: &Path) -> Error {
    mount_error(format!("{what} {}", path.display()), nix::Error::ENOENT)
}

/// Whose directories a run may write to and run from ([`crate::writers`]): the caller's own
/// and its map's, writable by nobody else.
pub struct Trust<'a> {
    /// Whether a host uid is the caller's own, or one its map covers.
    pub uid: &'a dyn Fn(u32) -> bool,
    /// Whether write access for a host group is the caller's alone: its user private group,
    /// or a subordinate gid its map covers.
    pub group: &'a dyn Fn(u32) -> Result<(), NotPrivate>,
}

/// Check every path the plan names, as the caller sees them, before anything is mounted.
/// Creates nothing but a missing overlay UPPER and its work directory (beside it, so on the
/// same filesystem), each with one mkdir, and returns them open; and, last, the mount points
/// a new root of the caller's own lacks (points.rs). Only a directory `trust` says is the
/// caller's alone may be written to. A destination below a place the run mounts fresh before
/// it is made then, in that mount (points.rs), and not looked for here.
pub fn check(o: &Options, trust: &Trust) -> Result<Prepared, Error> {
    let new_root = match &o.rootfs {
        Some(root) => Some(check_new_root(o, root, trust)?),
        None => None,
    };
    let mut prepared = Prepared::default();
    for (index, spec) in o.filesystem.iter().enumerate() {
        let made_later = super::points::below_fresh(o, index).is_some();
        check_spec(o, spec, made_later, new_root.as_ref(), trust, &mut prepared)?;
    }
    if let Some(root) = &new_root {
        root.make_own_dirs(&root.missing(&super::points::root_dirs(o.boot)))?;
    }
    Ok(prepared)
}

/// --rootfs `root`: checked, no destination climbing out of it with '..' (destinations are
/// inside the new root, and a '..' would climb out of it before the pivot), and opened.
fn check_new_root(o: &Options, root: &Path, trust: &Trust) -> Result<super::root::NewRoot, Error> {
    check_rootfs(root, trust)?;
    let destinations = o.filesystem.iter().map(|spec| match spec {
        FsSpec::Bind { dst, .. } => dst,
        FsSpec::Tmpfs { dir } => dir,
        FsSpec::Overlay { target, .. } => target,
    });
    for dst in destinations.chain(o.chdir.as_ref()) {
        if dst
            .components()
            .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(refused(
                "destination",
                dst,
                "climbs out of the new root with '..' (destinations are inside --rootfs)".into(),
                "name it by its path inside the new root, without '..'",
            ));
        }
    }
    super::root::NewRoot::open(root)
}

/// One filesystem option: its source and layers exist, its destination too unless a fresh
/// mount of an earlier option makes it (`made_later`), and a persistent overlay upper is
/// prepared.
fn check_spec(
    o: &Options,
    spec: &FsSpec,
    made_later: bool,
    new_root: Option<&super::root::NewRoot>,
    trust: &Trust,
    prepared: &mut Prepared,
) -> Result<(), Error> {
    let dest = |what: &str, path: &Path, dir: bool| destination(new_root, what, path, dir);
    match spec {
        FsSpec::Bind { src, dst, .. } => {
            if !src.exists() {
                return Err(not_found("bind source", src));
            }
            if !made_later {
                dest("bind destination", dst, false)?;
            }
        }
        FsSpec::Tmpfs { dir } if !made_later => {
            dest("tmpfs directory", dir, true)?;
        }
        FsSpec::Tmpfs { .. } => {}
        FsSpec::Overlay {
            lowers,
            target,
            upper,
        } => {
            for lower in lowers {
                if !lower.is_dir() {
                    return Err(not_a_dir("overlay lower", lower));
                }
                refuse_pseudo_fs("overlay lower", lower, lower)?;
            }
            if !made_later {
                let fd = dest("overlay target", target, true)?;
                let shown = super::plan::inside(&o.rootfs, target);
                refuse_pseudo_fs("overlay target", &shown, &super::root::fd_path(&fd))?;
            }
            if let Some(upper) = upper
                && prepared.upper(upper).is_none()
            {
                prepare_upper(upper, trust, prepared)?;
            }
        }
    }
    Ok(())
}

/// A destination as the mount will find it: in the new root (its links resolved there, as
/// apply does), else the path as the caller sees it.
fn destination(
    new_root: Option<&super::root::NewRoot>,
    what: &str,
    path: &Path,
    dir: bool,
) -> Result<OwnedFd, Error> {
    let flags = if dir {
        OFlag::O_DIRECTORY
    } else {
        OFlag::empty()
    };
    match new_root {
        Some(root) => {
            let rel = path.strip_prefix("/").unwrap_or(path);
            root.open_in(what, rel, super::root::Links::Inside, flags)
        }
        None => open(
            path,
            OFlag::O_PATH | OFlag::O_CLOEXEC | flags,
            Mode::empty(),
        )
        .map_err(|errno| mount_error(format!("{what} {}", path.display()), errno)),
    }
}

pub(super) fn not_a_dir(what: &str, path: &Path) -> Error {
    let errno = if path.exists() {
        nix::Error::ENOTDIR
    } else {
        nix::Error::ENOENT
    };
    mount_error(format!("{what} {}", path.display()), errno)
}

/// A refusal of `path`, with why and what to do instead.
pub(super) fn refused(what: &str, path: &Path, why: String, hint: &str) -> Error {
    Error::new(format!("{what} {}", path.display()), why).with_hint(hint)
}

/// Pseudo filesystems cannot be layers of an overlay: overlayfs refuses them, and
/// fuse-overlayfs would serve /proc to the very process that waits for it (a deadlock).
/// `path` is looked at through `at` (the same, or a descriptor's /proc/self/fd/N).
pub(super) fn refuse_pseudo_fs(what: &str, path: &Path, at: &Path) -> Result<(), Error> {
    use nix::sys::statfs::{
        CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, DEBUGFS_MAGIC, DEVPTS_SUPER_MAGIC,
        PROC_SUPER_MAGIC, SECURITYFS_MAGIC, SYSFS_MAGIC, TRACEFS_MAGIC, statfs,
    };
    let Ok(fs) = statfs(at) else {
        return Ok(()); // reported by the mount itself
    };
    let name = [
        (PROC_SUPER_MAGIC, "proc"),
        (SYSFS_MAGIC, "sysfs"),
        (DEVPTS_SUPER_MAGIC, "devpts"),
        (CGROUP_SUPER_MAGIC, "cgroup"),
        (CGROUP2_SUPER_MAGIC, "cgroup2"),
        (DEBUGFS_MAGIC, "debugfs"),
        (TRACEFS_MAGIC, "tracefs"),
        (SECURITYFS_MAGIC, "securityfs"),
    ]
    .into_iter()
    .find(|(magic, _)| fs.filesystem_type() == *magic)
    .map(|(_, name)| name);
    match name {
        None => Ok(()),
        Some(name) => Err(refused(
            what,
            path,
            format!("is on {name}, a pseudo filesystem, which cannot be overlaid"),
            "overlay a directory of a real filesystem; for a private /proc use --pid, for \
             /sys a network namespace (--net) with --rootfs",
        )),
    }
}

/// --rootfs: a directory (not a file, not `/`) that nobody but the caller (or root) can
/// change, since become-root runs COMMAND from it as root of the namespace.
pub(super) fn check_rootfs(root: &Path, trust: &Trust) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(root).map_err(|e| {
        mount_error(
            format!("--rootfs {}", root.display()),
            crate::sys::io_errno(&e),
        )
    })?;
    if !meta.is_dir() {
        return Err(mount_error(
            format!("--rootfs {}", root.display()),
            nix::Error::ENOTDIR,
        ));
    }
    if root == Path::new("/") {
        return Err(refused(
            "--rootfs",
            root,
            "is the root already (pivot_root(2) needs a new root below it)".into(),
            "give a directory holding the new root's tree, or leave --rootfs out",
        ));
    }
    let why = if !((trust.uid)(meta.uid()) || meta.uid() == 0) {
        format!(
            "is owned by uid {}, neither yours nor one of your subordinate ids'",
            meta.uid()
        )
    } else {
        match crate::writers::others_write(meta.mode(), meta.gid(), trust.group) {
            Ok(()) => return Ok(()),
            Err(who) => who,
        }
    };
    Err(refused(
        "--rootfs",
        root,
        format!("{why}: others could change the tree COMMAND runs from"),
        "use a directory of yours (or of your subordinate ids) that nobody else can write to \
         (chmod go-w it, unless its group is your private group)",
    ))
}

/// The work directory overlayfs needs, kept beside UPPER so that both are on one
/// filesystem: `.NAME.work` in UPPER's parent.
pub fn work_dir(upper: &Path) -> PathBuf {
    let name = upper
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    upper.with_file_name(format!(".{name}.work"))
}

/// Make or check UPPER and then its work directory, each with [`own_dir`], and keep them.
/// A directory made here is removed again if the other fails, so that a refused overlay
/// leaves nothing behind.
pub(super) fn prepare_upper(
    upper: &Path,
    trust: &Trust,
    prepared: &mut Prepared,
) -> Result<(), Error> {
    let Some(name) = upper.file_name() else {
        return Err(refused(
            "overlay upper",
            upper,
            "names no directory of its own (its work directory goes beside it)".into(),
            "give a directory below another one, such as ./upper",
        ));
    };
    let parent = match upper.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let work_name = format!(".{}.work", name.to_string_lossy());
    let parent_fd = open_parent(parent, upper, trust)?;
    let (dir, made_dir) = own_dir(&parent_fd, parent, name, trust)?;
    let (work, _) = match own_dir(&parent_fd, parent, work_name.as_ref(), trust) {
        Ok(done) => done,
        Err(e) => {
            if made_dir {
                let _ =
                    nix::unistd::unlinkat(&parent_fd, name, nix::unistd::UnlinkatFlags::RemoveDir);
            }
            return Err(e);
        }
    };
    use nix::sys::stat::fstat;
    let dev = |fd: &OwnedFd| fstat(fd).map(|st| st.st_dev).unwrap_or(0);
    if dev(&dir) != dev(&work) {
        return Err(Error::new(
            format!("overlay upper {}", upper.display()),
            format!(
                "its work directory {} is on another filesystem (UPPER is a mount point), and \
                 overlayfs needs both on one",
                work_dir(upper).display()
            ),
        )
        .with_hint("give as UPPER a directory inside that filesystem, not its root"));
    }
    prepared.uppers.push(Upper {
        path: upper.to_path_buf(),
        dir: dir.as_raw_fd(),
        work: work.as_raw_fd(),
    });
    prepared.held.extend([dir, work]);
    Ok(())
}

/// The directory that will hold UPPER and its work directory, opened once: both are made
/// and opened relative to it. It may be reached through symlinks (the caller named it), but
/// it must not let others rename what is in it: owned by the caller (or one of its
/// subordinate ids, or root), and writable by nobody else unless sticky (as /tmp is, where
/// only an entry's owner may remove or rename it).
pub(super) fn open_parent(parent: &Path, upper: &Path, trust: &Trust) -> Result<OwnedFd, Error> {
    let fd = open(
        parent,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| mount_error(format!("overlay upper {}", upper.display()), errno))?;
    let st = nix::sys::stat::fstat(&fd)
        .map_err(|errno| mount_error(format!("overlay upper {}", upper.display()), errno))?;
    let why = if !((trust.uid)(st.st_uid) || st.st_uid == 0) {
        format!(
            "is owned by uid {}, neither yours nor one of your subordinate ids'",
            st.st_uid
        )
    } else if st.st_mode & 0o1000 != 0 {
        return Ok(fd);
    } else {
        match crate::writers::others_write(st.st_mode, st.st_gid, trust.group) {
            Ok(()) => return Ok(fd),
            Err(who) => format!("is not sticky, and {who}"),
        }
    };
    Err(refused(
        "overlay upper",
        upper,
        format!(
            "its directory {} {why}: others could swap UPPER or its work directory for a link \
             to your files",
            parent.display()
        ),
        "keep UPPER in a directory only you can write to",
    ))
}

/// Make `name` in `parent` (mode 0755, if missing) and open it without following a symbolic
/// link (O_NOFOLLOW on the last component, relative to the parent's descriptor), then check
/// that it is a directory the caller owns and that nobody else can write to (`trust`). Says
/// whether it was made here.
///
/// Why: overlayfs empties and rewrites its work directory, and writes whatever COMMAND writes
/// into UPPER. Another user who could choose what these names lead to (a symlink planted in
/// /tmp, say) would have the caller's overlay delete or create files in the caller's name.
pub fn own_dir(
    parent: &OwnedFd,
    parent_path: &Path,
    name: &std::ffi::OsStr,
    trust: &Trust,
) -> Result<(OwnedFd, bool), Error> {
    let path = parent_path.join(name);
    let fail = |errno| mount_error(format!("overlay directory {}", path.display()), errno);
    let made = match nix::sys::stat::mkdirat(parent, name, Mode::from_bits_truncate(0o755)) {
        Ok(()) => true,
        Err(nix::Error::EEXIST) => false,
        Err(errno) => return Err(fail(errno)),
    };
    let fd = match nix::fcntl::openat(
        parent,
        name,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        // O_DIRECTORY with O_NOFOLLOW refuses a symbolic link with ENOTDIR (or ELOOP).
        Err(nix::Error::ELOOP | nix::Error::ENOTDIR)
            if nix::sys::stat::fstatat(parent, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
                .is_ok_and(|st| st.st_mode & nix::libc::S_IFMT == nix::libc::S_IFLNK) =>
        {
            return Err(refused(
                "overlay directory",
                &path,
                "is a symbolic link; become-root never follows one there".into(),
                "remove it (someone else may have planted it), or choose another UPPER",
            ));
        }
        Err(errno) => return Err(fail(errno)),
    };
    if made {
        // Exactly 0755, whatever the umask: through the descriptor, so the very directory
        // just made (an O_PATH descriptor names it for chmod through /proc/self/fd).
        let fd_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            fd_path.as_str(),
            Mode::from_bits_truncate(0o755),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(fail)?;
    }
    let st = nix::sys::stat::fstat(&fd).map_err(fail)?;
    let why = if !(trust.uid)(st.st_uid) {
        format!(
            "is owned by uid {}, neither yours nor one of your subordinate ids'",
            st.st_uid
        )
    } else {
        match crate::writers::others_write(st.st_mode, st.st_gid, trust.group) {
            Ok(()) => String::new(),
            Err(who) => who,
        }
    };
    if !why.is_empty() {
        return Err(refused(
            "overlay directory",
            &path,
            format!("{why}; it must be yours and writable by nobody else"),
            "if it is yours: chmod go-w it (group write is fine for your private group); \
             else remove it (someone else may have made it), or choose another UPPER",
        ));
    }
    Ok((fd, made))
}

#[cfg(test)]
mod tests {

    use std::path::{Path, PathBuf};

    use super::work_dir;

    #[test]
    fn work_dir_is_beside_upper() {
        assert_eq!(
            work_dir(Path::new("/data/upper")),
            PathBuf::from("/data/.upper.work")
        );
    }
}
