//! Carrying out the mount plan inside the new user and mount namespaces, as root there.

use super::*;

/// Carry out one step. Runs inside the new user and mount namespaces, as root there.
pub fn apply(step: &MountStep) -> Result<(), Error> {
    let fail = |what: String| move |errno| mount_error(what, errno);
    match step {
        MountStep::SetPropagation(p) => {
            // A mount namespace made together with a user namespace is "less privileged": the
            // kernel already turned shared mounts into slaves (mount_namespaces(7)). Private
            // cuts the last link to the host.
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
            .map_err(fail("making / recursively private".into()))
        }
        MountStep::FreshProc { at } => {
            // Allowed in a user namespace only because this process owns the new pid
            // namespace and a fully visible /proc is already mounted (mnt_already_visible in
            // fs/namespace.c); nosuid,nodev,noexec as on the host.
            mount(
                Some("proc"),
                at,
                Some("proc"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                None::<&str>,
            )
            .map_err(fail(format!("mounting a fresh proc on {}", at.display())))
        }
        MountStep::ResolvConf { at, text } => crate::sys::mount_generated_file(at, text.as_bytes())
            .map_err(fail(format!("binding a generated {}", at.display()))),
        MountStep::Bind { src, dst, readonly } => {
            mount(
                Some(src),
                dst,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(fail(format!(
                "binding {} to {}",
                src.display(),
                dst.display()
            )))?;
            if *readonly {
                // mount_setattr with AT_RECURSIVE: every mount below dst, not only the top.
                readonly_recursive(dst)
                    .map_err(fail(format!("making {} read-only", dst.display())))?;
            }
            Ok(())
        }
        MountStep::Tmpfs { dir, mode } => mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(format!("mode={mode:o}").as_str()),
        )
        .map_err(fail(format!("mounting a tmpfs on {}", dir.display()))),
        MountStep::Overlay {
            lowers,
            target,
            upper,
            driver,
            report,
        } => {
            let used = overlay::mount_overlay(lowers, target, upper.as_ref(), *driver)?;
            if *report {
                eprintln!("become-root: overlay on {}: {used}", target.display());
            }
            Ok(())
        }
        MountStep::RootfsSelfBind { dir } => mount(
            Some(dir),
            dir,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(fail(format!("binding the new root {}", dir.display()))),
        MountStep::RootfsDev { dir } => rootfs_dev(&dir.join("dev")),
        MountStep::RootfsSys { dir, fresh } => {
            let at = dir.join("sys");
            if *fresh {
                fresh_sysfs(&at)
            } else {
                mount(
                    Some("/sys"),
                    &at,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(fail(format!("binding /sys to {}", at.display())))?;
                readonly_recursive(&at).map_err(fail(format!("making {} read-only", at.display())))
            }
        }
        MountStep::Console { at, tty } => bind_device(tty, at),
        MountStep::Cgroup2 { at } => {
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            // The kernel refuses a file system on the root of a mount of itself (EBUSY,
            // do_add_mount), and /sys/fs/cgroup is the root of a cgroup2 mount on a v2 host:
            // a small tmpfs goes in between (the host's mount below stays, locked, unseen).
            mount(
                Some("tmpfs"),
                at,
                Some("tmpfs"),
                flags,
                Some("mode=755,size=64k"),
            )
            .map_err(fail(format!("mounting a tmpfs on {}", at.display())))?;
            mount(Some("cgroup2"), at, Some("cgroup2"), flags, None::<&str>).map_err(fail(format!(
                "mounting the run's cgroup2 on {}",
                at.display()
            )))
        }
        MountStep::FreshSys { at } => fresh_sysfs(at),
        MountStep::PivotRoot { dir } => {
            // pivot_root(".", ".") stacks the old root under the new one; detaching it leaves
            // only the new root visible (the trick documented in pivot_root(2)).
            nix::unistd::chdir(dir).map_err(fail(format!("entering {}", dir.display())))?;
            nix::unistd::pivot_root(".", ".").map_err(fail("pivot_root".into()))?;
            umount2(".", MntFlags::MNT_DETACH).map_err(fail("detaching the old root".into()))?;
            nix::unistd::chdir("/").map_err(fail("entering /".into()))
        }
        MountStep::Chdir { dir } => {
            nix::unistd::chdir(dir).map_err(fail(format!("--chdir {}", dir.display())))
        }
    }
}

/// A fresh sysfs on `at`, read-only (as the container interface has /sys), showing the
/// devices of this network namespace. The kernel allows it in a user namespace only to the
/// owner of the current network namespace, and only while a sysfs is already fully visible
/// (mnt_already_visible in fs/namespace.c), as the host's /sys is.
fn fresh_sysfs(at: &Path) -> Result<(), Error> {
    mount(
        Some("sysfs"),
        at,
        Some("sysfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .map_err(|errno| mount_error(format!("mounting sysfs on {}", at.display()), errno))
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
/// PATH (searched inside the root). A relative path with a slash cannot be judged here.
pub fn command_in_rootfs(root: &Path, name: &std::ffi::OsStr) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let bytes = name.as_bytes();
    let inside = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
    if bytes.starts_with(b"/") {
        return inside(Path::new(name)).symlink_metadata().is_ok();
    }
    if bytes.contains(&b'/') {
        return true;
    }
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path).any(|dir| inside(&dir).join(name).symlink_metadata().is_ok())
}

/// A minimal /dev: a tmpfs with the harmless character devices bound from the host (a user
/// namespace cannot create device nodes), a private devpts instance, and /dev/shm.
/// Bind the device `src` on a file made at `node` (in the new root's /dev, a tmpfs of ours:
/// O_NOFOLLOW, nothing there is anyone else's to plant).
fn bind_device(src: &Path, node: &Path) -> Result<(), Error> {
    let fail = |what: String| move |errno| mount_error(what, errno);
    let file = open(
        node,
        OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::from_bits_truncate(0o666),
    )
    .map_err(fail(format!("creating {}", node.display())))?;
    drop(file);
    mount(
        Some(src),
        node,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(fail(format!(
        "binding {} to {}",
        src.display(),
        node.display()
    )))
}

pub(super) fn rootfs_dev(dev: &Path) -> Result<(), Error> {
    let fail = |what: String| move |errno| mount_error(what, errno);
    mount(
        Some("tmpfs"),
        dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID,
        Some("mode=755"),
    )
    .map_err(fail(format!("mounting a tmpfs on {}", dev.display())))?;
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        bind_device(&Path::new("/dev").join(name), &dev.join(name))?;
    }
    for dir in ["pts", "shm"] {
        nix::unistd::mkdir(&dev.join(dir), Mode::from_bits_truncate(0o755))
            .map_err(fail(format!("creating {}/{dir}", dev.display())))?;
    }
    // A devpts of our own: terminals opened inside are not the host's, and ptmx works.
    mount(
        Some("devpts"),
        &dev.join("pts"),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=620"),
    )
    .map_err(fail("mounting devpts".into()))?;
    mount(
        Some("tmpfs"),
        &dev.join("shm"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )
    .map_err(fail("mounting /dev/shm".into()))?;
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(to, dev.join(link)).map_err(|e| {
            mount_error(
                format!("creating {}/{link}", dev.display()),
                nix::Error::from_raw(e.raw_os_error().unwrap_or(nix::libc::EIO)),
            )
        })?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

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
