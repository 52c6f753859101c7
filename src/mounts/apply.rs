//! Carrying out the mount plan inside the new user and mount namespaces, as root there.
//! With a new root, every place below it is opened in it (the in-root path rule, root.rs).

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::{OFlag, open};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::Mode;

use super::fuse::FuseStarter;
use super::root::{Links, NewRoot, Place, fd_path};
use super::{MountStep, dev, mount_error, overlay};
use crate::error::Error;
use crate::options::Propagation;

/// Carries out the mount plan one step at a time, and holds what a step leaves for the ones
/// after it: the new root, once it is bound on itself, and who starts fuse-overlayfs.
pub struct Applier {
    root: Option<NewRoot>,
    fuse: FuseStarter,
}

impl Applier {
    /// `fuse`: the channel to become-root's fuse helper (fuse.rs), none in a run that execs
    /// in place.
    pub fn new(fuse: Option<OwnedFd>) -> Applier {
        Applier {
            root: None,
            fuse: FuseStarter::new(fuse),
        }
    }

    /// Where a step mounts `path`: opened in the new root when it is below it, else the path.
    fn place(&self, path: &Path, links: Links) -> Result<Place, Error> {
        match self
            .root
            .as_ref()
            .and_then(|r| Some((r, r.relative(path)?)))
        {
            Some((root, rel)) => Ok(Place::Opened {
                fd: root.open_in("", rel, links, OFlag::empty())?,
                shown: path.to_path_buf(),
            }),
            None => Ok(Place::Path(path.to_path_buf())),
        }
    }

    /// The new root, for a step that exists only with one.
    fn root(&self) -> &NewRoot {
        self.root
            .as_ref()
            .expect("the plan binds the new root first")
    }

    /// Carry out one step.
    pub fn apply(&mut self, step: &MountStep) -> Result<(), Error> {
        match step {
            MountStep::SetPropagation(p) => set_propagation(*p),
            MountStep::FreshProc { at } => fresh_proc(&Place::Path(at.clone())),
            MountStep::ResolvConf { at, text } => self.resolv_conf(at, text),
            MountStep::Bind { src, dst, readonly } => self.bind(src, dst, *readonly),
            MountStep::Tmpfs { dir, mode } => tmpfs(&self.place(dir, Links::Inside)?, *mode),
            MountStep::MountPoint {
                base,
                rest,
                source,
                what,
            } => self.mount_point(base, rest, source.as_deref(), what),
            MountStep::Overlay {
                lowers,
                target,
                upper,
                driver,
                report,
            } => {
                let place = self.place(target, Links::Inside)?;
                let at = overlay::Where {
                    place: &place,
                    reopen: &|| self.place(target, Links::Inside),
                    in_root: self.root.is_some(),
                    fuse: &self.fuse,
                };
                let used = overlay::mount_overlay(lowers, at, upper.as_ref(), *driver)?;
                if *report {
                    crate::error::say!("become-root: overlay on {}: {used}", target.display());
                }
                Ok(())
            }
            MountStep::RootfsSelfBind { dir } => self.rootfs_self_bind(dir),
            MountStep::RootfsProc { dir, fresh } => {
                let place = self.place(&dir.join("proc"), Links::Refused)?;
                match fresh {
                    true => fresh_proc(&place),
                    // The host's /proc as it is (no pid namespace of the run's own).
                    false => bind(Path::new("/proc"), &place),
                }
            }
            MountStep::RootfsDev { dir } => dev::rootfs_dev(self.root(), &dir.join("dev")),
            MountStep::RootfsSys { dir, fresh } => self.rootfs_sys(dir, *fresh),
            MountStep::RootfsTmpfs { dir, name, mode } => {
                tmpfs(&self.place(&dir.join(name), Links::Refused)?, *mode)
            }
            MountStep::Console { at, tty } => {
                let root = self.root();
                let dev = at.parent().unwrap_or(at);
                let rel = root.relative(dev).unwrap_or(dev);
                let dir = root.open_in("", rel, Links::Refused, OFlag::O_DIRECTORY)?;
                dev::bind_device(tty, &dir, dev, "console")
            }
            MountStep::Cgroup2 { at } => self.cgroup2(at),
            MountStep::FreshSys { at } => fresh_sysfs(&Place::Path(at.clone())),
            MountStep::PivotRoot { dir } => self.pivot_root(dir),
            MountStep::Chdir { dir } => nix::unistd::chdir(dir)
                .map_err(|e| mount_error(format!("--chdir {}", dir.display()), e)),
        }
    }

    /// --bind and --ro-bind: `src` on `dst`, and for --ro-bind every mount below it
    /// read-only.
    fn bind(&self, src: &Path, dst: &Path, readonly: bool) -> Result<(), Error> {
        let place = self.place(dst, Links::Inside)?;
        bind(src, &place)?;
        if readonly {
            // Opened again: the bind's own root, not the directory under it.
            let place = self.place(dst, Links::Inside)?;
            // mount_setattr with AT_RECURSIVE: every mount below dst, not only the top.
            readonly_recursive(&place.target())
                .map_err(|e| mount_error(format!("making {} read-only", dst.display()), e))?;
        }
        Ok(())
    }

    /// A mount point below a fresh filesystem of an earlier step (points.rs).
    fn mount_point(
        &self,
        base: &Path,
        rest: &Path,
        source: Option<&Path>,
        what: &str,
    ) -> Result<(), Error> {
        // The fresh mount's root, looked up as its own mount step looked it up.
        let base_fd = match self.place(base, Links::Inside)? {
            Place::Opened { fd, .. } => fd,
            Place::Path(path) => open_path(&path)
                .map_err(|e| mount_error(format!("{what} {}", base.join(rest).display()), e))?,
        };
        super::points::make(base_fd, rest, source, what, &base.join(rest))
    }

    /// --rootfs's directory bound on itself, and opened as the new root every later step
    /// looks up its places in.
    fn rootfs_self_bind(&mut self, dir: &Path) -> Result<(), Error> {
        mount(
            Some(dir),
            dir,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| mount_error(format!("binding the new root {}", dir.display()), e))?;
        self.root = Some(NewRoot::open(dir)?);
        Ok(())
    }

    /// The new root's /sys: fresh with a network namespace of the run's own, else the
    /// host's, read-only.
    fn rootfs_sys(&self, dir: &Path, fresh: bool) -> Result<(), Error> {
        let at = dir.join("sys");
        let place = self.place(&at, Links::Refused)?;
        if fresh {
            return fresh_sysfs(&place);
        }
        bind(Path::new("/sys"), &place)?;
        let place = self.place(&at, Links::Refused)?;
        readonly_recursive(&place.target())
            .map_err(|e| mount_error(format!("making {} read-only", at.display()), e))
    }

    /// The run's own cgroup2 at `at`.
    fn cgroup2(&self, at: &Path) -> Result<(), Error> {
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        // The kernel refuses a file system on the root of a mount of itself (EBUSY,
        // do_add_mount), and /sys/fs/cgroup is the root of a cgroup2 mount on a v2 host: a
        // small tmpfs goes in between (the host's mount below stays, locked, unseen).
        let place = self.place(at, Links::Refused)?;
        mount(
            Some("tmpfs"),
            &place.target(),
            Some("tmpfs"),
            flags,
            Some("mode=755,size=64k"),
        )
        .map_err(|e| mount_error(format!("mounting a tmpfs on {}", at.display()), e))?;
        let place = self.place(at, Links::Refused)?;
        mount(
            Some("cgroup2"),
            &place.target(),
            Some("cgroup2"),
            flags,
            None::<&str>,
        )
        .map_err(|e| mount_error(format!("mounting the run's cgroup2 on {}", at.display()), e))
    }

    /// Into the new root `dir`: pivot_root(".", ".") stacks the old root under the new one;
    /// detaching it leaves only the new root visible (the trick documented in
    /// pivot_root(2)).
    fn pivot_root(&mut self, dir: &Path) -> Result<(), Error> {
        let fail = |what: String| move |errno| mount_error(what, errno);
        nix::unistd::chdir(dir).map_err(fail(format!("entering {}", dir.display())))?;
        nix::unistd::pivot_root(".", ".").map_err(fail("pivot_root".into()))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(fail("detaching the old root".into()))?;
        // From here on every path is inside the new root anyway.
        self.root = None;
        nix::unistd::chdir("/").map_err(fail("entering /".into()))
    }

    /// A generated, read-only resolv.conf (naming the network helper's DNS forwarder) bound
    /// over the regular file `at` leads to, its links resolved as COMMAND will resolve them
    /// (in the new root, when there is one), or, where it leads to no file, mounted on the
    /// entry `at` itself: a link that dangles (systemd-resolved's
    /// `../run/systemd/resolve/stub-resolv.conf` in most images, or an absolute link naming
    /// a file of the host) is covered, not followed, and COMMAND's lookup meets the mount
    /// before the link. Below a new root, a missing entry is made there, empty, as the mount
    /// point.
    fn resolv_conf(&self, at: &Path, text: &str) -> Result<(), Error> {
        let fail = |errno| mount_error(format!("binding a generated {}", at.display()), errno);
        let (Some(dir), Some(name)) = (at.parent(), at.file_name()) else {
            return Err(fail(nix::Error::EINVAL));
        };
        let dir = match self.place(dir, Links::Inside)? {
            Place::Opened { fd, .. } => fd,
            Place::Path(path) => open_path(&path).map_err(fail)?,
        };
        let entry = || {
            nix::fcntl::openat(
                &dir,
                name,
                OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
        };
        // The file the entry leads to, if it is a regular file there.
        let followed = || {
            let fd = match self.place(at, Links::Inside) {
                Ok(Place::Opened { fd, .. }) => fd,
                Ok(Place::Path(path)) => {
                    open(&path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()).ok()?
                }
                Err(_) => return None,
            };
            let st = nix::sys::stat::fstat(&fd).ok()?;
            (st.st_mode & nix::libc::S_IFMT == nix::libc::S_IFREG).then_some(fd)
        };
        let (target, follow) = match (followed(), entry()) {
            (Some(file), _) => (file, true),
            (None, Ok(entry)) => (entry, false),
            (None, Err(nix::Error::ENOENT)) if self.root.is_some() => {
                drop(
                    nix::fcntl::openat(
                        &dir,
                        name,
                        OFlag::O_CREAT
                            | OFlag::O_EXCL
                            | OFlag::O_WRONLY
                            | OFlag::O_NOFOLLOW
                            | OFlag::O_CLOEXEC,
                        Mode::from_bits_truncate(0o644),
                    )
                    .map_err(fail)?,
                );
                (entry().map_err(fail)?, false)
            }
            (None, Err(errno)) => return Err(fail(errno)),
        };
        crate::sys::bind_generated_file(&fd_path(&target), text.as_bytes()).map_err(fail)?;
        // Read-only: a remount of the bind just made, named by its own root (the same lookup
        // made again now leads to it).
        let mounted = match follow {
            true => followed().ok_or(nix::Error::ENOENT),
            false => entry(),
        }
        .map_err(fail)?;
        mount(
            None::<&str>,
            &fd_path(&mounted),
            None::<&str>,
            MsFlags::MS_REMOUNT
                | MsFlags::MS_BIND
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .map_err(fail)
    }
}

/// Bind `src`, recursively, on `place`.
fn bind(src: &Path, place: &Place) -> Result<(), Error> {
    mount(
        Some(src),
        &place.target(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|errno| {
        mount_error(
            format!("binding {} to {}", src.display(), place.shown().display()),
            errno,
        )
    })
}

/// A fresh tmpfs on `place`.
fn tmpfs(place: &Place, mode: u32) -> Result<(), Error> {
    mount(
        Some("tmpfs"),
        &place.target(),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(format!("mode={mode:o}").as_str()),
    )
    .map_err(|errno| {
        mount_error(
            format!("mounting a tmpfs on {}", place.shown().display()),
            errno,
        )
    })
}

/// A fresh proc filesystem for the new pid namespace. Allowed in a user namespace only
/// because this process owns the new pid namespace and a fully visible /proc is already
/// mounted (mnt_already_visible in fs/namespace.c); nosuid,nodev,noexec as on the host.
fn fresh_proc(place: &Place) -> Result<(), Error> {
    mount(
        Some("proc"),
        &place.target(),
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|errno| {
        mount_error(
            format!("mounting a fresh proc on {}", place.shown().display()),
            errno,
        )
    })
}

/// A fresh sysfs on `at`, read-only (as the container interface has /sys), showing the
/// devices of this network namespace. The kernel allows it in a user namespace only to the
/// owner of the current network namespace, and only while a sysfs is already fully visible
/// (mnt_already_visible in fs/namespace.c), as the host's /sys is.
fn fresh_sysfs(place: &Place) -> Result<(), Error> {
    mount(
        Some("sysfs"),
        &place.target(),
        Some("sysfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .map_err(|errno| {
        mount_error(
            format!("mounting sysfs on {}", place.shown().display()),
            errno,
        )
    })
}

/// Make `path` and every mount below it read-only: one mount_setattr(2) with AT_RECURSIVE
/// (Linux 5.12), or on older kernels a read-only remount of each mount a lookup at or below
/// `path` reaches, as /proc/self/mountinfo lists them. Each remount repeats the flags a user
/// namespace locks (nosuid, nodev, noexec; the kernel keeps the atime flags of a remount that
/// names none), because clearing a locked flag is refused with EPERM
/// (can_change_locked_flags(), fs/namespace.c). A mount that is hidden under another cannot
/// be reached by any path, so it is left as it is.
pub(super) fn readonly_recursive(path: &Path) -> nix::Result<()> {
    match crate::sys::make_readonly_recursive(path) {
        Err(nix::Error::ENOSYS) => {}
        done => return done,
    }
    let io = |e: std::io::Error| nix::Error::from_raw(e.raw_os_error().unwrap_or(nix::libc::EIO));
    let path = std::fs::canonicalize(path).map_err(io)?;
    let text = std::fs::read("/proc/self/mountinfo").map_err(io)?;
    let entries = crate::mountinfo::parse(&text);
    for entry in reachable_at_or_below(&entries, &path) {
        let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
        for (name, flag) in [
            ("nosuid", MsFlags::MS_NOSUID),
            ("nodev", MsFlags::MS_NODEV),
            ("noexec", MsFlags::MS_NOEXEC),
        ] {
            if entry.has(name) {
                flags |= flag;
            }
        }
        mount(
            None::<&str>,
            &entry.mount_point,
            None::<&str>,
            flags,
            None::<&str>,
        )?;
    }
    Ok(())
}

/// The mounts at or below `path` that a path lookup reaches: the topmost at `path`, then,
/// below a reached mount, the topmost at each mount point.
pub(super) fn reachable_at_or_below<'a>(
    entries: &'a [crate::mountinfo::Entry],
    path: &Path,
) -> Vec<&'a crate::mountinfo::Entry> {
    use crate::mountinfo::{at_or_below, top_at};
    let Some(root) = top_at(entries, path) else {
        return Vec::new();
    };
    let candidates = at_or_below(entries, path);
    let mut reached = vec![root];
    // Parents come before their children unless mounts were moved; repeat until stable.
    loop {
        let before = reached.len();
        for e in &candidates {
            if !reached.contains(&e.id)
                && reached.contains(&e.parent)
                && top_at(entries, &e.mount_point) == Some(e.id)
            {
                reached.push(e.id);
            }
        }
        if reached.len() == before {
            break;
        }
    }
    candidates
        .into_iter()
        .filter(|e| reached.contains(&e.id))
        .collect()
}

/// Whether COMMAND can be found inside the new root: an absolute path, or a bare name on
/// PATH (searched inside the root), each looked up in the root as it will be after
/// pivot_root (its links resolved there). A relative path with a slash cannot be judged here.
pub fn command_in_rootfs(root: &Path, name: &std::ffi::OsStr) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let bytes = name.as_bytes();
    if bytes.contains(&b'/') && !bytes.starts_with(b"/") {
        return true;
    }
    let Ok(root) = NewRoot::open(root) else {
        return true; // reported when the root is bound
    };
    let found = |p: &Path| {
        let rel = p.strip_prefix("/").unwrap_or(p);
        root.open_in("", rel, Links::Inside, OFlag::empty()).is_ok()
    };
    if bytes.starts_with(b"/") {
        return found(Path::new(name));
    }
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path).any(|dir| found(&dir.join(name)))
}

/// Open `path` as an O_PATH descriptor (to name it later as /proc/self/fd/N, even once
/// something is mounted over it).
pub fn open_path(path: &Path) -> nix::Result<OwnedFd> {
    open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// A mount namespace made together with a user namespace is "less privileged": the kernel
/// already turned shared mounts into slaves (mount_namespaces(7)). Private cuts the last
/// link to the host.
fn set_propagation(p: Propagation) -> Result<(), Error> {
    let kind = match p {
        Propagation::Private => MsFlags::MS_PRIVATE,
        Propagation::Slave => MsFlags::MS_SLAVE,
    };
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        kind | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| mount_error("making / recursively private", e))
}

#[cfg(test)]
mod tests {

    use std::path::Path;

    use super::reachable_at_or_below;

    #[test]
    fn readonly_fallback_reaches_what_a_lookup_reaches() {
        let text = "\
1 0 8:1 / / rw - ext4 /dev/vda rw
2 1 0:20 / /data rw,nosuid - ext4 /dev/vdb rw
3 2 0:21 / /data/sub rw,nodev - tmpfs t rw
4 2 0:22 / /data/hidden rw - tmpfs t rw
5 2 0:23 / /data/hidden rw - tmpfs t rw
6 1 0:24 / /database rw - tmpfs t rw
7 1 0:25 / /data rw - tmpfs t rw
8 7 0:26 / /data/new rw - tmpfs t rw
";
        let entries = crate::mountinfo::parse(text.as_bytes());
        let ids = |path: &str| -> Vec<u64> {
            reachable_at_or_below(&entries, Path::new(path))
                .iter()
                .map(|e| e.id)
                .collect()
        };
        // Mount 7 covers 2 and everything on it; 8 is on 7.
        assert_eq!(ids("/data"), [7, 8]);
        assert_eq!(ids("/database"), [6]);
        assert_eq!(ids("/nowhere"), Vec::<u64>::new());
        let before_cover = crate::mountinfo::parse(
            text.lines()
                .take(6)
                .collect::<Vec<_>>()
                .join("\n")
                .as_bytes(),
        );
        let ids: Vec<u64> = reachable_at_or_below(&before_cover, Path::new("/data"))
            .iter()
            .map(|e| e.id)
            .collect();
        // Of the two at /data/hidden only the top one (5) is reached.
        assert_eq!(ids, [2, 3, 5]);
    }
}
