//! Overlays for `--overlay` and `--copy-up`: native overlayfs in the user namespace (Linux
//! 5.11 and later), or fuse-overlayfs where the kernel refuses.
//!
//! Every layer is opened (O_PATH) before anything is mounted and named to the kernel as
//! /proc/self/fd/N, so a lower may be the target itself (`--copy-up=/etc`) and no path needs
//! escaping. A persistent upper layer and its work directory were made or checked by
//! `mounts::check` and arrive here as descriptors, never looked up by path again. A throwaway
//! upper layer lives on a tmpfs of its own that the overlay keeps alive; it is attached to the
//! tree only for a moment, inside the new mount namespace.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::mount::{MsFlags, mount};
use nix::sys::stat::Mode;

use super::fuse::{FuseStarter, fuse_overlayfs};
use super::root::Place;
use super::{Upper, mount_error, open_path};
use crate::error::Error;
use crate::options::OverlayDriver;

/// A throwaway upper layer: a tmpfs attached nowhere, with `upper` and `work` made in it.
pub(super) struct Scratch {
    pub(super) tmpfs: OwnedFd,
    upper: OwnedFd,
    work: OwnedFd,
}

impl Scratch {
    pub(super) fn new() -> nix::Result<Scratch> {
        let tmpfs = crate::sys::detached_tmpfs()?;
        let dir = |name: &str| {
            nix::sys::stat::mkdirat(&tmpfs, name, Mode::from_bits_truncate(0o755))?;
            nix::fcntl::openat(
                &tmpfs,
                name,
                nix::fcntl::OFlag::O_PATH
                    | nix::fcntl::OFlag::O_DIRECTORY
                    | nix::fcntl::OFlag::O_CLOEXEC,
                Mode::empty(),
            )
        };
        let (upper, work) = (dir("upper")?, dir("work")?);
        Ok(Scratch { tmpfs, upper, work })
    }
}

/// The layers, held open while the overlay is mounted.
struct Layers {
    lowers: Vec<OwnedFd>,
    /// The upper layer and its work directory, opened in this mount namespace: a persistent
    /// one's reopened ([`reopen_here`]), or the scratch's.
    upper: RawFd,
    work: RawFd,
    _reopened: Option<(OwnedFd, OwnedFd)>,
    scratch: Option<Scratch>,
}

/// A directory `mounts::check` opened and checked, opened again in this process's mount
/// namespace. overlayfs clones its upper layer with clone_private_mount(), which refuses a
/// mount of another namespace with EINVAL (check_mnt(), fs/namespace.c), and the checked
/// descriptor was opened before unshare, in the caller's. The same path is opened again
/// without following a link and must be the same directory (device and inode), so nothing
/// can be swapped in between (its parent lets nobody else rename it: `check`'s rule).
fn reopen_here(checked: RawFd, what: &str) -> Result<OwnedFd, Error> {
    use nix::fcntl::{OFlag, open};
    let fail = |errno| mount_error(format!("reopening {what}"), errno);
    let path = std::fs::read_link(format!("/proc/self/fd/{checked}"))
        .map_err(|e| fail(crate::sys::io_errno(&e)))?;
    let here = open(
        &path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail)?;
    let borrowed = crate::sys::borrow_fd(checked);
    let (a, b) = (
        nix::sys::stat::fstat(borrowed).map_err(fail)?,
        nix::sys::stat::fstat(&here).map_err(fail)?,
    );
    if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) {
        return Err(Error::new(
            format!("overlay {what} {}", path.display()),
            "is no longer the directory that was checked (it was replaced meanwhile)",
        )
        .with_hint("run again; if it happens again, someone else is changing that directory"));
    }
    Ok(here)
}

impl Layers {
    fn open(lowers: &[PathBuf], upper: Option<&Upper>) -> Result<Layers, Error> {
        let fail = |what: String| move |errno| mount_error(what, errno);
        let lowers = lowers
            .iter()
            .map(|l| open_path(l).map_err(fail(format!("opening overlay lower {}", l.display()))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(match upper {
            Some(upper) => {
                let dir = reopen_here(upper.dir, "upper")?;
                let work = reopen_here(upper.work, "work directory")?;
                Layers {
                    lowers,
                    upper: dir.as_raw_fd(),
                    work: work.as_raw_fd(),
                    _reopened: Some((dir, work)),
                    scratch: None,
                }
            }
            None => {
                let scratch =
                    Scratch::new().map_err(fail("making a tmpfs for the upper layer".into()))?;
                Layers {
                    lowers,
                    upper: scratch.upper.as_raw_fd(),
                    work: scratch.work.as_raw_fd(),
                    _reopened: None,
                    scratch: Some(scratch),
                }
            }
        })
    }

    /// The mount options, every layer named through this process's descriptors.
    fn options(&self, userxattr: bool) -> String {
        let path = |fd: RawFd| format!("/proc/self/fd/{fd}");
        let lowers: Vec<String> = self.lowers.iter().map(|l| path(l.as_raw_fd())).collect();
        let mut options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lowers.join(":"),
            path(self.upper),
            path(self.work)
        );
        if userxattr {
            options.push_str(",userxattr");
        }
        options
    }
}

/// How an overlay is mounted: on `place`, which `reopen` opens again (for fuse-overlayfs,
/// whose mount must be looked at once made), below a new root or not (`in_root`), with
/// fuse-overlayfs started by `fuse`.
pub(super) struct Where<'a> {
    pub(super) place: &'a Place,
    pub(super) reopen: &'a dyn Fn() -> Result<Place, Error>,
    pub(super) in_root: bool,
    pub(super) fuse: &'a FuseStarter,
}

/// Mount an overlay of `lowers` (top first) at `at`; says which driver did.
pub(super) fn mount_overlay(
    lowers: &[PathBuf],
    at: Where,
    upper: Option<&Upper>,
    driver: OverlayDriver,
) -> Result<String, Error> {
    let place = at.place;
    let target = &place.target();
    let layers = Layers::open(lowers, upper)?;
    let native = || -> Result<String, nix::Error> {
        // userxattr: the overlay keeps its metadata in user.overlay.* attributes, which an
        // unprivileged mounter may write (trusted.* needs CAP_SYS_ADMIN in the initial user
        // namespace); kernels before 5.11 do not know the option and refuse the mount.
        let mount_with = |userxattr: bool| {
            mount(
                Some("overlay"),
                target,
                Some("overlay"),
                MsFlags::empty(),
                Some(layers.options(userxattr).as_str()),
            )
        };
        let mount_both = || {
            mount_with(true)
                .map(|()| "native overlayfs (userxattr)".to_string())
                .or_else(|_| mount_with(false).map(|()| "native overlayfs".to_string()))
        };
        // overlayfs clones its upper layer with clone_private_mount(), which before Linux
        // 6.15 refuses a mount outside the caller's namespace: attach the scratch tmpfs for
        // the moment of the mount (the overlay keeps its own private clone of it).
        match &layers.scratch {
            Some(scratch) => crate::sys::while_attached(&scratch.tmpfs, mount_both),
            None => mount_both(),
        }
    };
    let what = || format!("overlay on {}", place.shown().display());
    let fuse = || fuse_overlayfs(at.fuse, lowers, upper, place, at.reopen, at.in_root);
    match driver {
        OverlayDriver::Native => native().map_err(|errno| native_refused(what(), errno, upper)),
        OverlayDriver::Fuse => fuse(),
        OverlayDriver::Auto => match native() {
            Ok(used) => Ok(used),
            Err(native_errno) => {
                let why = match refused_layer(native_errno, upper) {
                    Some(cause) => format!("{}: {cause}", native_errno.desc()),
                    None => native_errno.desc().to_string(),
                };
                fuse()
                    .map(|used| format!("{used} (native overlayfs refused: {why})"))
                    .map_err(|fuse| {
                        Error::new(
                            what(),
                            format!(
                                "native overlayfs refused ({why}), and fuse-overlayfs: {}",
                                fuse.why()
                            ),
                        )
                        .with_hint_maybe(fuse.hint().map(str::to_string))
                    })
            }
        },
    }
}

/// What in the layers made overlayfs refuse with `errno`, when their file systems say it:
/// overlayfs writes its upper layer and work directory only on a local file system with
/// the features it needs, not on another overlay, FUSE or a network file system
/// (ovl_mount_dir_check and ovl_make_workdir, fs/overlayfs/super.c, refuse with EINVAL and
/// say why only in the kernel's log, which a user may not read).
fn refused_layer(errno: nix::Error, upper: Option<&Upper>) -> Option<String> {
    use nix::sys::statfs::{
        ECRYPTFS_SUPER_MAGIC, FUSE_SUPER_MAGIC, FsType, NFS_SUPER_MAGIC, OVERLAYFS_SUPER_MAGIC,
        SMB_SUPER_MAGIC, fstatfs,
    };
    if errno != nix::Error::EINVAL {
        return None;
    }
    let upper = upper?;
    let fs = fstatfs(crate::sys::borrow_fd(upper.dir)).ok()?;
    let t = fs.filesystem_type();
    // CIFS and SMB2 (fs/smb/client), 9p: no constants in the libc crate.
    let (cifs, smb2, v9fs) = (0xFF53_4D42u32, 0xFE53_4D42u32, 0x0102_1997u32);
    let raw = t.0 as u32;
    let name = match t {
        OVERLAYFS_SUPER_MAGIC => "overlayfs",
        FUSE_SUPER_MAGIC => "a FUSE file system",
        NFS_SUPER_MAGIC => "NFS",
        SMB_SUPER_MAGIC => "SMB",
        ECRYPTFS_SUPER_MAGIC => "eCryptfs",
        FsType(_) if raw == cifs || raw == smb2 => "SMB",
        FsType(_) if raw == v9fs => "9p",
        FsType(_) => return None,
    };
    Some(format!(
        "UPPER {} is on {name}, where overlayfs cannot keep an upper layer",
        upper.path.display()
    ))
}

/// The error for `--overlay-driver=native` when the kernel refuses: on a kernel older than
/// overlayfs in user namespaces, say which version is needed and what works meanwhile; for
/// layers overlayfs refuses (EINVAL, its reasons only in the kernel's log), what in them it
/// refuses where their file systems say it, and the fallback.
fn native_refused(what: String, errno: nix::Error, upper: Option<&Upper>) -> Error {
    use crate::kernel::{Facility, needs, older_than, running};
    let fallback = "use --overlay-driver=auto (the default) or fuse: fuse-overlayfs takes these \
                    layers (Debian/Ubuntu: apt install fuse-overlayfs)";
    if older_than(Facility::OverlayInUserns) {
        return Error::new(
            what,
            format!(
                "{}: native overlayfs {}",
                errno.desc(),
                needs(Facility::OverlayInUserns, &running().0)
            ),
        )
        .with_hint(
            "use --overlay-driver=auto or fuse (fuse-overlayfs; Debian/Ubuntu: apt install \
             fuse-overlayfs)",
        );
    }
    if errno != nix::Error::EINVAL {
        return mount_error(what, errno);
    }
    let why = refused_layer(errno, upper).unwrap_or_else(|| {
        "overlayfs refuses these layers, and says why only in the kernel's log (dmesg): \
         usually an UPPER on a file system it cannot keep one on (overlayfs, FUSE, NFS), or \
         layers that are overlays of overlays already"
            .to_string()
    });
    Error::new(
        what,
        format!("the kernel refused the overlay ({}): {why}", errno.desc()),
    )
    .with_hint(format!(
        "{fallback}; or keep UPPER on a local file system (ext4, xfs, btrfs, tmpfs)"
    ))
}
