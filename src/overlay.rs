//! Overlays for `--overlay` and `--copy-up`: native overlayfs in the user namespace (Linux
//! 5.11 and later), or fuse-overlayfs where the kernel refuses.
//!
//! Every layer is opened (O_PATH) before anything is mounted and named to the kernel as
//! /proc/self/fd/N, so a lower may be the target itself (`--copy-up=/etc`) and no path needs
//! escaping. A throwaway upper layer lives on a tmpfs that is never attached to the tree: the
//! overlay keeps it alive, and it vanishes with the overlay.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::mount::{MsFlags, mount};

use crate::cli::OverlayDriver;
use crate::error::Error;
use crate::mounts::{open_path, work_dir};

/// The layers, held open while the overlay is mounted.
struct Layers {
    lowers: Vec<OwnedFd>,
    upper: OwnedFd,
    work: OwnedFd,
    /// The detached tmpfs of a throwaway upper layer.
    _scratch: Option<OwnedFd>,
}

impl Layers {
    fn open(lowers: &[PathBuf], upper: Option<&Path>) -> Result<Layers, Error> {
        let fail = |what: String| move |errno| Error::Mount { what, errno };
        let lowers = lowers
            .iter()
            .map(|l| open_path(l).map_err(fail(format!("opening overlay lower {}", l.display()))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(match upper {
            Some(upper) => Layers {
                lowers,
                upper: open_path(upper).map_err(fail(format!("opening {}", upper.display())))?,
                work: open_path(&work_dir(upper))
                    .map_err(fail(format!("opening {}", work_dir(upper).display())))?,
                _scratch: None,
            },
            None => {
                let scratch = crate::sys::detached_tmpfs()
                    .map_err(fail("making a tmpfs for the upper layer".into()))?;
                let mkdir = |name: &str| {
                    nix::sys::stat::mkdirat(
                        &scratch,
                        name,
                        nix::sys::stat::Mode::from_bits_truncate(0o755),
                    )
                    .and_then(|()| {
                        nix::fcntl::openat(
                            &scratch,
                            name,
                            nix::fcntl::OFlag::O_PATH
                                | nix::fcntl::OFlag::O_DIRECTORY
                                | nix::fcntl::OFlag::O_CLOEXEC,
                            nix::sys::stat::Mode::empty(),
                        )
                    })
                    .map_err(fail(format!("creating the {name} layer")))
                };
                let (upper, work) = (mkdir("upper")?, mkdir("work")?);
                Layers {
                    lowers,
                    upper,
                    work,
                    _scratch: Some(scratch),
                }
            }
        })
    }

    /// Layer paths as seen by `pid` (this process for the kernel, our pid for fuse-overlayfs).
    fn options(&self, proc: &str, userxattr: bool) -> String {
        let path = |fd: &OwnedFd| format!("{proc}/{}", fd.as_raw_fd());
        let lowers: Vec<String> = self.lowers.iter().map(path).collect();
        let mut options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lowers.join(":"),
            path(&self.upper),
            path(&self.work)
        );
        if userxattr {
            options.push_str(",userxattr");
        }
        options
    }
}

/// Mount an overlay of `lowers` (top first) on `target`; says which driver did.
pub fn mount_overlay(
    lowers: &[PathBuf],
    target: &Path,
    upper: Option<&Path>,
    driver: OverlayDriver,
) -> Result<String, Error> {
    let layers = Layers::open(lowers, upper)?;
    let native = || -> Result<String, nix::Error> {
        // userxattr: the overlay keeps its metadata in user.overlay.* attributes, which an
        // unprivileged mounter may write (trusted.* needs CAP_SYS_ADMIN in the initial user
        // namespace); kernels before 5.11 do not know the option and refuse the mount.
        let proc = "/proc/self/fd";
        let mount_with = |userxattr: bool| {
            mount(
                Some("overlay"),
                target,
                Some("overlay"),
                MsFlags::empty(),
                Some(layers.options(proc, userxattr).as_str()),
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
        match &layers._scratch {
            Some(scratch) => crate::sys::while_attached(scratch, mount_both),
            None => mount_both(),
        }
    };
    let what = || format!("overlay on {}", target.display());
    match driver {
        OverlayDriver::Native => native().map_err(|errno| native_refused(what(), errno)),
        OverlayDriver::Fuse => {
            fuse_overlayfs(lowers, upper, target).map(|()| "fuse-overlayfs".into())
        }
        OverlayDriver::Auto => match native() {
            Ok(used) => Ok(used),
            Err(native_errno) => fuse_overlayfs(lowers, upper, target)
                .map(|()| {
                    format!(
                        "fuse-overlayfs (native overlayfs refused: {})",
                        native_errno.desc()
                    )
                })
                .map_err(|fuse| Error::Relayed {
                    what: what(),
                    why: format!(
                        "native overlayfs refused ({}), and fuse-overlayfs: {}",
                        native_errno.desc(),
                        fuse.why()
                    ),
                    hint: fuse.hint(),
                }),
        },
    }
}

/// The error for `--overlay-driver=native` when the kernel refuses: on a kernel older than
/// overlayfs in user namespaces, say which version is needed and what works meanwhile.
fn native_refused(what: String, errno: nix::Error) -> Error {
    use crate::kernel::{Facility, needs, older_than, running};
    if !older_than(Facility::OverlayInUserns) {
        return Error::Mount { what, errno };
    }
    Error::Relayed {
        what,
        why: format!(
            "{}: native overlayfs {}",
            errno.desc(),
            needs(Facility::OverlayInUserns, &running().0)
        ),
        hint: Some(
            "use --overlay-driver=auto or fuse (fuse-overlayfs; Debian/Ubuntu: apt install \
             fuse-overlayfs)"
                .into(),
        ),
    }
}

/// Run fuse-overlayfs in the foreground, as our child with a parent-death signal (so it never
/// outlives COMMAND, which takes over this process), and wait until its mount appears.
///
/// fuse-overlayfs resolves every layer to a path (realpath) before opening it, so layers are
/// given by path: the lowers as given, a persistent upper as given, and a throwaway upper on
/// the scratch tmpfs mounted for the moment on a fresh private directory, detached and removed
/// as soon as fuse-overlayfs holds it open.
fn fuse_overlayfs(lowers: &[PathBuf], upper: Option<&Path>, target: &Path) -> Result<(), Error> {
    let Some(program) = crate::userns::find_on_path("fuse-overlayfs") else {
        return Err(Error::Relayed {
            what: format!("overlay on {}", target.display()),
            why: "fuse-overlayfs is not installed".into(),
            hint: Some("install it (Debian/Ubuntu: apt install fuse-overlayfs)".into()),
        });
    };
    let before = mount_id(target);
    let what = || format!("overlay on {}", target.display());
    let sys_err = |errno: nix::Error| Error::Mount {
        what: what(),
        errno,
    };
    let mut staging = None;
    // A scratch tmpfs of its own: the native attempt's was attached and detached again, and
    // a mount once unmounted can never be attached anywhere (move_mount: EINVAL).
    let scratch = match upper {
        Some(_) => None,
        None => Some(crate::sys::detached_tmpfs().map_err(sys_err)?),
    };
    let (upper, work) = match (upper, &scratch) {
        (Some(upper), _) => (upper.to_path_buf(), work_dir(upper)),
        (None, Some(scratch)) => {
            let base = std::env::var_os("XDG_RUNTIME_DIR")
                .map(PathBuf::from)
                .filter(|d| d.is_dir())
                .unwrap_or_else(|| "/tmp".into());
            let dir =
                nix::unistd::mkdtemp(&base.join("become-root-overlay.XXXXXX")).map_err(sys_err)?;
            crate::sys::attach_mount(scratch, &dir).map_err(sys_err)?;
            staging = Some(dir.clone());
            for layer in ["upper", "work"] {
                nix::unistd::mkdir(
                    &dir.join(layer),
                    nix::sys::stat::Mode::from_bits_truncate(0o755),
                )
                .map_err(sys_err)?;
            }
            (dir.join("upper"), dir.join("work"))
        }
        (None, None) => unreachable!("a throwaway upper always has its scratch tmpfs"),
    };
    let cleanup = |staging: &Option<PathBuf>| {
        if let Some(dir) = staging {
            let _ = nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir(dir);
        }
    };
    let joined: Vec<String> = lowers.iter().map(|l| l.display().to_string()).collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        joined.join(":"),
        upper.display(),
        work.display()
    );
    let mut cmd = Command::new(&program);
    cmd.arg("-f").arg("-o").arg(options).arg(target);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    crate::sys::hand_fds_to_helper(&mut cmd, Vec::new());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            cleanup(&staging);
            return Err(Error::Relayed {
                what: what(),
                why: format!("cannot start {}: {e}", program.display()),
                hint: None,
            });
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let result = loop {
        if mount_id(target) != before {
            break Ok(()); // mounted; fuse-overlayfs keeps running for the life of COMMAND
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                use std::io::Read;
                let _ = pipe.read_to_string(&mut stderr);
            }
            break Err(Error::Relayed {
                what: what(),
                why: format!("fuse-overlayfs failed ({status}): {}", stderr.trim()),
                hint: Some("fuse-overlayfs needs /dev/fuse readable and writable by you".into()),
            });
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break Err(Error::Relayed {
                what: what(),
                why: "fuse-overlayfs did not mount within 10 s".into(),
                hint: None,
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    cleanup(&staging);
    result
}

/// The id of the mount `path` is on (changes when something is mounted on it).
fn mount_id(path: &Path) -> Option<u64> {
    let text = std::fs::read("/proc/self/mountinfo").ok()?;
    let target = std::fs::canonicalize(path).ok()?;
    crate::mountinfo::top_at(&crate::mountinfo::parse(&text), &target)
}
