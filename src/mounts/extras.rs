//! The mounts of `--emulate` and `--device`: a binfmt_misc of the run's own with QEMU
//! registered in it, and host device nodes bound into the run's /dev.

use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::mount::{MsFlags, mount};
use nix::sys::stat::Mode;

use super::dev::bind_device;
use super::root::{Links, NewRoot, fd_path};
use super::{mount_error, open_path, split_escaped};
use crate::error::Error;

/// A `--device`, checked: `src` is the host's device node (links resolved), `dst` where it
/// goes inside (below /dev).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    pub src: PathBuf,
    pub dst: PathBuf,
}

/// Parse and check one `--device=PATH[:DST]`: PATH must be a character or block device node,
/// DST (default: PATH as given) an absolute path below /dev without `..`.
pub fn parse_device(arg: &str) -> Result<DeviceSpec, Error> {
    let bad = |why: &str| {
        Error::usage(
            format!("--device={arg}: {why}"),
            "give the path of a device node, and where inside /dev it goes: \
             --device=/dev/fuse, --device=/dev/dri/renderD128:/dev/dri/renderD128",
        )
    };
    let fields = split_escaped(arg, ':');
    let (path, dst) = match fields.as_slice() {
        [path] if !path.is_empty() => (path.clone(), path.clone()),
        [path, dst] if !path.is_empty() && !dst.is_empty() => (path.clone(), dst.clone()),
        _ => return Err(bad("expected PATH or PATH:DST")),
    };
    let src = std::fs::canonicalize(&path)
        .map_err(|e| mount_error(format!("--device={arg}"), crate::sys::io_errno(&e)))?;
    let meta = std::fs::metadata(&src)
        .map_err(|e| mount_error(format!("--device={arg}"), crate::sys::io_errno(&e)))?;
    if !is_device(meta.mode()) {
        return Err(bad(&format!(
            "{} is not a device node (a character or block device)",
            src.display()
        )));
    }
    let dst = PathBuf::from(dst);
    let below_dev = dst.strip_prefix("/dev").ok().filter(|rest| {
        !rest.as_os_str().is_empty()
            && rest
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
    });
    if below_dev.is_none() {
        return Err(bad("DST must be a path below /dev, without '..'"));
    }
    Ok(DeviceSpec { src, dst })
}

fn is_device(mode: u32) -> bool {
    matches!(
        mode & nix::libc::S_IFMT,
        nix::libc::S_IFCHR | nix::libc::S_IFBLK
    )
}

/// The device node `src`, opened without following a link and checked again: the path the
/// plan checked may have changed since (the kernel is given this descriptor).
fn open_device(src: &Path) -> Result<OwnedFd, Error> {
    let what = format!("--device {}", src.display());
    let fd = open(
        src,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| mount_error(what.clone(), errno))?;
    let st = nix::sys::stat::fstat(&fd).map_err(|errno| mount_error(what.clone(), errno))?;
    if !is_device(st.st_mode) {
        return Err(Error::new(what, "is no longer a device node"));
    }
    Ok(fd)
}

/// Bind the device `src` at `dst` inside: with a new root, on a file made in its /dev (the
/// tmpfs of become-root's own, rootfs_dev), its directories made there too; without, over the
/// existing `dst` (the host's /dev cannot be written), unless it is `src` itself.
pub(super) fn device(root: Option<&NewRoot>, src: &Path, dst: &Path) -> Result<(), Error> {
    let node = open_device(src)?;
    let fail = |what: String| move |errno| mount_error(what, errno);
    let Some(root) = root else {
        if dst == src {
            return Ok(());
        }
        let target = open(
            dst,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(fail(format!("--device destination {}", dst.display())))?;
        return mount(
            Some(&fd_path(&node)),
            &fd_path(&target),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(fail(format!(
            "binding {} to {}",
            src.display(),
            dst.display()
        )));
    };
    let rest = dst.strip_prefix("/dev").unwrap_or(dst);
    let mut dir = root.open_in("", Path::new("dev"), Links::Refused, OFlag::O_DIRECTORY)?;
    let mut shown = root.dir.join("dev");
    let names: Vec<&std::ffi::OsStr> = rest.iter().collect();
    let Some((last, parents)) = names.split_last() else {
        return Err(Error::new(
            format!("--device {}", dst.display()),
            "not below /dev",
        ));
    };
    for name in parents {
        shown.push(name);
        match nix::sys::stat::mkdirat(&dir, *name, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(errno) => return Err(mount_error(format!("creating {}", shown.display()), errno)),
        }
        dir = nix::fcntl::openat(
            &dir,
            *name,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(fail(format!("opening {}", shown.display())))?;
    }
    let name = last.to_str().ok_or_else(|| {
        Error::new(
            format!("--device {}", dst.display()),
            "a name that is not UTF-8",
        )
    })?;
    bind_device(&fd_path(&node), &dir, &shown, name)
}

/// A binfmt_misc of the run's own on `at` (the run's /proc/sys/fs/binfmt_misc), with
/// `entries` registered. Since Linux 6.7 a user namespace that mounts binfmt_misc gets an
/// instance of its own, which every exec in it and in the namespaces it owns consults instead
/// of the host's (binfmt-misc.rst); the instance's entries go when its last mount does, so this
/// mount must stay (with a new root, it is in it). Each entry's F flag makes the kernel open
/// the interpreter now, in this root, so that it runs after pivot_root or in a chroot.
pub(super) fn binfmt(root: Option<&NewRoot>, at: &Path, entries: &[String]) -> Result<(), Error> {
    let open_at = || -> Result<OwnedFd, Error> {
        match root.and_then(|r| Some((r, r.relative(at)?))) {
            Some((root, rel)) => root.open_in("", rel, Links::Refused, OFlag::O_DIRECTORY),
            None => open_path(at).map_err(|errno| mount_error(at.display().to_string(), errno)),
        }
    };
    let place = open_at()?;
    mount(
        Some("binfmt_misc"),
        &fd_path(&place),
        Some("binfmt_misc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(binfmt_refused)?;
    // Opened again: now the root of the mount just made.
    let instance = open_at()?;
    for entry in entries {
        let name = entry.split(':').nth(1).unwrap_or(entry);
        let register = nix::fcntl::openat(
            &instance,
            "register",
            OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        );
        // The kernel parses one registration per write.
        let written = register.and_then(|fd| nix::unistd::write(&fd, entry.as_bytes()));
        written.map_err(|errno| {
            Error::sys(
                format!("--emulate: registering {name} in binfmt_misc"),
                errno,
            )
        })?;
    }
    Ok(())
}

/// Why binfmt_misc could not be mounted: before Linux 6.7 it has no instance per user
/// namespace, and a user namespace may not mount it at all (EPERM).
fn binfmt_refused(errno: nix::Error) -> Error {
    let (release, version) = crate::kernel::running();
    let since = crate::kernel::BINFMT_IN_USERNS;
    let what = "--emulate: mounting binfmt_misc in the run's user namespace";
    match (errno, version) {
        (nix::Error::EPERM | nix::Error::ENODEV, Some(v)) if v < since => {
            crate::emulate::kernel_too_old(&release)
        }
        (nix::Error::ENODEV, _) => Error::sys(what, errno)
            .with_hint("the kernel has no binfmt_misc: as root, modprobe binfmt_misc"),
        _ => mount_error(what, errno),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_specs() {
        let null = PathBuf::from("/dev/null");
        let rows: [(&str, Option<(&str, &str)>); 8] = [
            ("/dev/null", Some(("/dev/null", "/dev/null"))),
            (
                "/dev/null:/dev/mine/null",
                Some(("/dev/null", "/dev/mine/null")),
            ),
            ("/dev/null:/etc/null", None),
            ("/dev/null:/dev", None),
            ("/dev/null:/dev/../etc/x", None),
            ("/dev/null:dev/x", None),
            ("/etc/passwd", None),
            ("", None),
        ];
        for (arg, want) in rows {
            let got = parse_device(arg).ok();
            let want = want.map(|(src, dst)| DeviceSpec {
                src: src.into(),
                dst: dst.into(),
            });
            assert_eq!(got, want, "{arg}");
        }
        assert_eq!(parse_device("/dev/null").unwrap().src, null);
        let err = parse_device("/etc/passwd").unwrap_err();
        assert!(err.to_string().contains("is not a device node"), "{err}");
    }
}
