//! The new root's minimal /dev: a tmpfs of become-root's own on the image's dev directory,
//! with the harmless character devices bound from the host, a private devpts and /dev/shm;
//! and --boot's console. Everything is made relative to a descriptor of that tmpfs.

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::{MsFlags, mount};
use nix::sys::stat::Mode;

use super::mount_error;
use super::root::{Links, NewRoot, fd_path};
use crate::error::Error;

/// Bind the device `src` on a file `name` made in `dir` (the new root's /dev, a tmpfs of
/// become-root's own: made with O_EXCL and O_NOFOLLOW, named to the kernel by descriptor).
pub(super) fn bind_device(
    src: &Path,
    dir: &OwnedFd,
    dir_path: &Path,
    name: &str,
) -> Result<(), Error> {
    let node = dir_path.join(name);
    let fail = |what: String| move |errno| mount_error(what, errno);
    let file = nix::fcntl::openat(
        dir,
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::from_bits_truncate(0o666),
    )
    .map_err(fail(format!("creating {}", node.display())))?;
    mount(
        Some(src),
        &fd_path(&file),
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

/// A minimal /dev: a tmpfs with the harmless character devices bound from the host (a user
/// namespace cannot create device nodes), a private devpts instance, and /dev/shm. The tmpfs
/// goes on the image's own dev directory (a link there is refused); everything in it is made
/// relative to a descriptor of the tmpfs.
pub(super) fn rootfs_dev(root: &NewRoot, dev: &Path) -> Result<(), Error> {
    let fail = |what: String| move |errno| mount_error(what, errno);
    let rel = Path::new("dev");
    let image_dir = root.open_in("", rel, Links::Refused, OFlag::O_DIRECTORY)?;
    mount(
        Some("tmpfs"),
        &fd_path(&image_dir),
        Some("tmpfs"),
        MsFlags::MS_NOSUID,
        Some("mode=755"),
    )
    .map_err(fail(format!("mounting a tmpfs on {}", dev.display())))?;
    // Opened again: now the tmpfs's root.
    let dir = root.open_in("", rel, Links::Refused, OFlag::O_DIRECTORY)?;
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        bind_device(&Path::new("/dev").join(name), &dir, dev, name)?;
    }
    let subdir = |name: &str| {
        nix::sys::stat::mkdirat(&dir, name, Mode::from_bits_truncate(0o755))?;
        nix::fcntl::openat(
            &dir,
            name,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
    };
    let pts = subdir("pts").map_err(fail(format!("creating {}/pts", dev.display())))?;
    let shm = subdir("shm").map_err(fail(format!("creating {}/shm", dev.display())))?;
    // A devpts of our own: terminals opened inside are not the host's, and ptmx works.
    mount(
        Some("devpts"),
        &fd_path(&pts),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=620"),
    )
    .map_err(fail("mounting devpts".into()))?;
    mount(
        Some("tmpfs"),
        &fd_path(&shm),
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
        nix::unistd::symlinkat(to, &dir, link)
            .map_err(fail(format!("creating {}/{link}", dev.display())))?;
    }
    Ok(())
}
