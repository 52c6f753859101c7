//! Overlays for `--overlay` and `--copy-up`: native overlayfs in the user namespace (Linux
//! 5.11 and later), or fuse-overlayfs where the kernel refuses.
//!
//! Every layer is opened (O_PATH) before anything is mounted and named to the kernel as
//! /proc/self/fd/N, so a lower may be the target itself (`--copy-up=/etc`) and no path needs
//! escaping. A persistent upper layer and its work directory were made or checked by
//! `mounts::check` and arrive here as descriptors, never looked up by path again. A throwaway
//! upper layer lives on a tmpfs of its own that the overlay keeps alive; it is attached to the
//! tree only for a moment, inside the new mount namespace.

use std::io::{Read, Seek};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::Mode;

use super::root::Place;
use super::{Upper, mount_error, open_path};
use crate::error::Error;
use crate::options::OverlayDriver;

/// How long fuse-overlayfs may take to mount.
const FUSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A throwaway upper layer: a tmpfs attached nowhere, with `upper` and `work` made in it.
struct Scratch {
    tmpfs: OwnedFd,
    upper: OwnedFd,
    work: OwnedFd,
}

impl Scratch {
    fn new() -> nix::Result<Scratch> {
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

/// Mount an overlay of `lowers` (top first) on `place`; says which driver did.
pub(super) fn mount_overlay(
    lowers: &[PathBuf],
    place: &Place,
    upper: Option<&Upper>,
    driver: OverlayDriver,
) -> Result<String, Error> {
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
    match driver {
        OverlayDriver::Native => native().map_err(|errno| native_refused(what(), errno)),
        OverlayDriver::Fuse => fuse_overlayfs(lowers, upper, target),
        OverlayDriver::Auto => match native() {
            Ok(used) => Ok(used),
            Err(native_errno) => fuse_overlayfs(lowers, upper, target)
                .map(|used| format!("{used} (native overlayfs refused: {})", native_errno.desc()))
                .map_err(|fuse| {
                    Error::new(
                        what(),
                        format!(
                            "native overlayfs refused ({}), and fuse-overlayfs: {}",
                            native_errno.desc(),
                            fuse.why()
                        ),
                    )
                    .with_hint_maybe(fuse.hint().map(str::to_string))
                }),
        },
    }
}

/// The error for `--overlay-driver=native` when the kernel refuses: on a kernel older than
/// overlayfs in user namespaces, say which version is needed and what works meanwhile.
fn native_refused(what: String, errno: nix::Error) -> Error {
    use crate::kernel::{Facility, needs, older_than, running};
    if !older_than(Facility::OverlayInUserns) {
        return mount_error(what, errno);
    }
    Error::new(
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
    )
}

/// The characters fuse-overlayfs's option string cannot carry in a path: `,` separates
/// options (libfuse), `:` separates lower layers, and `\` starts an escape. A path holding
/// one would turn the rest of it into options of its own (`x,squash_to_root`).
fn fuse_safe(what: &str, path: &Path) -> Result<String, Error> {
    let text = path.to_str().ok_or_else(|| {
        Error::new(
            format!("{what} {}", path.display()),
            "is not valid UTF-8, which fuse-overlayfs's option string cannot carry",
        )
        .with_hint("rename it, or use --overlay-driver=native")
    })?;
    match text.chars().find(|c| [',', ':', '\\'].contains(c)) {
        None => Ok(text.to_string()),
        Some(c) => Err(Error::new(
            format!("{what} {text}"),
            format!("holds '{c}', which fuse-overlayfs would read as a separator of its options"),
        )
        .with_hint(
            "rename it without ',', ':' and '\\', or use --overlay-driver=native (which \
                 names layers by descriptor)",
        )),
    }
}

/// Run fuse-overlayfs in the foreground, as our child with a parent-death signal (so it never
/// outlives COMMAND, which takes over this process), and wait until its mount appears.
///
/// fuse-overlayfs resolves every layer to a path (realpath) before opening it, so layers are
/// given by path: the lowers as given, a persistent upper by the path its checked descriptor
/// has now (its directory lets nobody else rename it), and a throwaway upper on a scratch tmpfs
/// attached for the moment in this mount namespace (see [`Staging`]) and detached as soon as
/// fuse-overlayfs holds it open.
///
/// Returns how it was mounted, for --verbose: "fuse-overlayfs", with the program's path when
/// FUSE_OVERLAYFS named it.
fn fuse_overlayfs(
    lowers: &[PathBuf],
    upper: Option<&Upper>,
    target: &Path,
) -> Result<String, Error> {
    let what = || format!("overlay on {}", target.display());
    let found = crate::programs::FUSE_OVERLAYFS.find().map_err(|e| {
        let hint = e.hint();
        Error::new(what(), e.to_string()).with_hint(hint)
    })?;
    let Some(found) = found else {
        return Err(
            Error::new(what(), "fuse-overlayfs is not installed").with_hint(
                "install it (Debian/Ubuntu: apt install fuse-overlayfs), or set FUSE_OVERLAYFS to \
             its path",
            ),
        );
    };
    let used = match found.from_env {
        Some(_) => format!("fuse-overlayfs {}", found.describe()),
        None => "fuse-overlayfs".to_string(),
    };
    let program = found.path;
    let sys_err = |errno: nix::Error| mount_error(what(), errno);
    let lower_paths = lowers
        .iter()
        .map(|l| fuse_safe("overlay lower", l))
        .collect::<Result<Vec<_>, _>>()?;
    let target_path =
        std::fs::canonicalize(target).map_err(|e| mount_error(what(), crate::sys::io_errno(&e)))?;
    fuse_safe("overlay target", &target_path)?;
    // Read mountinfo through a descriptor opened now: once the FUSE mount exists, a path
    // lookup could have to be served by fuse-overlayfs itself, and must never be needed.
    let mut mountinfo = std::fs::File::open("/proc/self/mountinfo")
        .map_err(|e| mount_error(what(), crate::sys::io_errno(&e)))?;
    let before = mount_id(&mut mountinfo, &target_path);
    let (staging, upper_path, work_path) = match upper {
        Some(upper) => {
            let path = |fd: RawFd| std::fs::read_link(format!("/proc/self/fd/{fd}"));
            let io = |e: std::io::Error| sys_err(crate::sys::io_errno(&e));
            let (dir, work) = (path(upper.dir).map_err(io)?, path(upper.work).map_err(io)?);
            (
                None,
                fuse_safe("overlay upper", &dir)?,
                fuse_safe("overlay work directory", &work)?,
            )
        }
        None => {
            let mut avoid: Vec<PathBuf> = lowers
                .iter()
                .filter_map(|l| std::fs::canonicalize(l).ok())
                .collect();
            avoid.push(target_path.clone());
            avoid.push(program.clone());
            let staging = Staging::attach(&avoid).map_err(sys_err)?;
            let dir = staging.dir.clone();
            let upper = fuse_safe("overlay staging", &dir.join("upper"))?;
            let work = fuse_safe("overlay staging", &dir.join("work"))?;
            (Some(staging), upper, work)
        }
    };
    let options = format!(
        "lowerdir={},upperdir={upper_path},workdir={work_path}",
        lower_paths.join(":")
    );
    let mut cmd = Command::new(&program);
    cmd.arg("-f").arg("-o").arg(options).arg(&target_path);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    crate::sys::hand_fds_to_helper(&mut cmd, Vec::new());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::new(what(), format!("cannot start {}: {e}", program.display())))?;
    let deadline = Instant::now() + FUSE_TIMEOUT;
    let result = loop {
        if mount_id(&mut mountinfo, &target_path) != before {
            break Ok(()); // mounted; fuse-overlayfs keeps running for the life of COMMAND
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            break Err(Error::new(
                what(),
                format!("fuse-overlayfs failed ({status}): {}", stderr.trim()),
            )
            .with_hint("fuse-overlayfs needs /dev/fuse readable and writable by you"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break Err(Error::new(
                what(),
                format!(
                    "fuse-overlayfs did not mount within {} s",
                    FUSE_TIMEOUT.as_secs()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    drop(staging);
    if result.is_ok() {
        STARTED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child.id() as i32);
    }
    result.map(|()| used)
}

/// The fuse-overlayfs processes this process started and left running, by pid.
static STARTED: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());

/// The fuse-overlayfs processes started for this run (by the namespace process), which end
/// with COMMAND.
pub fn started_helpers() -> Vec<i32> {
    STARTED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Where a throwaway upper layer is visible by path while fuse-overlayfs starts: the scratch
/// tmpfs, attached over a directory of the new mount namespace that no layer, the target
/// or fuse-overlayfs itself is under, and detached on drop. Nothing is created on any disk,
/// and if become-root is killed meanwhile the mount vanishes with its namespace. Only where
/// every such directory is in the way does it fall back to a fresh directory under
/// XDG_RUNTIME_DIR or /tmp, removed on drop.
struct Staging {
    dir: PathBuf,
    /// The fallback directory made on disk, to remove.
    made: bool,
    _scratch: Scratch,
}

/// Directories that exist on most systems and that fuse-overlayfs does not need to start.
const STAGING_CANDIDATES: [&str; 8] = [
    "/tmp", "/var/tmp", "/mnt", "/media", "/srv", "/opt", "/run", "/home",
];

impl Staging {
    fn attach(avoid: &[PathBuf]) -> nix::Result<Staging> {
        let scratch = Scratch::new()?;
        let usable = |dir: &Path| {
            dir.symlink_metadata().is_ok_and(|m| m.is_dir())
                && !avoid.iter().any(|p| p.starts_with(dir))
        };
        let (dir, made) = match STAGING_CANDIDATES.iter().map(Path::new).find(|d| usable(d)) {
            Some(dir) => (dir.to_path_buf(), false),
            None => {
                let base = std::env::var_os("XDG_RUNTIME_DIR")
                    .map(PathBuf::from)
                    .filter(|d| d.is_dir())
                    .unwrap_or_else(|| "/tmp".into());
                (
                    nix::unistd::mkdtemp(&base.join("become-root-overlay.XXXXXX"))?,
                    true,
                )
            }
        };
        if let Err(e) = crate::sys::attach_mount(&scratch.tmpfs, &dir) {
            if made {
                let _ = std::fs::remove_dir(&dir);
            }
            return Err(e);
        }
        Ok(Staging {
            dir,
            made,
            _scratch: scratch,
        })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = umount2(&self.dir, MntFlags::MNT_DETACH);
        if self.made {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// The id of the topmost mount at `target` (an absolute, canonical path), read from the
/// mountinfo descriptor `file` (changes when something is mounted there).
fn mount_id(file: &mut std::fs::File, target: &Path) -> Option<u64> {
    let mut text = Vec::new();
    file.rewind().ok()?;
    file.read_to_end(&mut text).ok()?;
    crate::mountinfo::top_at(&crate::mountinfo::parse(&text), target)
}
