//! fuse-overlayfs, where the kernel cannot mount overlayfs in a user namespace (before Linux
//! 5.11) or `--overlay-driver=fuse` asks for it; below a new root, started out of COMMAND's
//! reach (the helper-visibility rule).
//!
//! fuse-overlayfs holds every layer open: a process that could read its /proc/PID/fd would
//! be outside `--rootfs` (`..` from a layer is the host's tree). Root inside the run's user
//! namespace may read those of any process in that namespace (CAP_SYS_PTRACE over it:
//! ptrace_may_access), and without `--pid` a new root's /proc is the host's, which shows
//! every process. So below a new root fuse-overlayfs never runs in the run's user namespace:
//! it is started by become-root's fuse helper (fuse_helper.rs), a process in a user
//! namespace of its own with the run's maps, a sibling of the run's. Root inside has no
//! capability there, and the kernel refuses a process of another user namespace the
//! /proc/PID/fd, root and cwd of the helper and of its fuse-overlayfs
//! (cap_ptrace_access_check wants CAP_SYS_PTRACE in the target's namespace); with a pid
//! namespace of the run's own they are not even visible. Files fuse-overlayfs makes are owned
//! as in a native overlay: the helper's maps are the run's, so uid 1000 inside is subordinate
//! id 1000 on disk whichever namespace names it.
//!
//! Either way the namespace process mounts the FUSE file system itself (FUSE mounts in a user
//! namespace: Linux 4.18) on a /dev/fuse descriptor of its own, at the place the plan says
//! (below a new root, by descriptor), so the mount belongs to the run like any other, and
//! fuse-overlayfs serves that descriptor as `/dev/fd/3` ("the parent process takes care of
//! performing the mount", libfuse 3.3). fuse-overlayfs runs chrooted to a copy of the run's
//! mount tree taken just before (why a copy: [`fuse_overlayfs`]), so the paths it is given
//! resolve as in the run's mount namespace: the layers, a mount of an earlier option, a
//! throwaway upper staged there.
//!
//! Without a new root, COMMAND's root is the caller's and a layer leads nowhere it could not
//! go: fuse-overlayfs is then the namespace process's own child, as it always was (in a run
//! that execs in place, `auto` falling back from a native overlay the kernel refused also
//! gets it so, and is refused below a new root: no helper runs there).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{OFlag, open};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::Mode;

use super::fuse_helper::{self, Running};
use super::overlay::Scratch;
use super::root::Place;
use super::{Upper, mount_error};
use crate::error::Error;
use crate::sys::{self, Forked};

/// How long fuse-overlayfs may take to serve its mount.
const FUSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who starts fuse-overlayfs for the namespace process.
pub enum FuseStarter {
    /// become-root's fuse helper, over this channel.
    Helper(OwnedFd),
    /// The namespace process itself: without a new root (COMMAND's root is the caller's),
    /// or in a run that execs in place (where it refuses a new root).
    Here,
}

/// A fuse-overlayfs that was started and has not yet shown that it serves.
enum Started<'a> {
    Helper(&'a OwnedFd),
    Here(Running),
}

impl FuseStarter {
    pub fn new(channel: Option<OwnedFd>) -> FuseStarter {
        channel.map_or(FuseStarter::Here, FuseStarter::Helper)
    }

    /// Start fuse-overlayfs with `options` on the FUSE connection `fuse`, chrooted to
    /// `root` (a copy of this mount namespace's tree).
    fn start(
        &self,
        program: &Path,
        options: &str,
        fuse: &OwnedFd,
        root: &OwnedFd,
    ) -> Result<Started<'_>, Error> {
        match self {
            FuseStarter::Helper(channel) => {
                fuse_helper::ask_start(channel, program, options, fuse, root)?;
                Ok(Started::Helper(channel))
            }
            FuseStarter::Here => fuse_helper::spawn(program, options, fuse, root)
                .map(Started::Here)
                .map_err(|e| {
                    Error::new(
                        "starting fuse-overlayfs",
                        format!("cannot start {}: {e}", program.display()),
                    )
                }),
        }
    }
}

impl Started<'_> {
    /// How it ended, and what it said (it is made to end if it has not).
    fn ended(self) -> (String, String) {
        match self {
            Started::Helper(channel) => fuse_helper::ask_why(channel)
                .unwrap_or_else(|e| ("unknown".to_string(), e.to_string())),
            Started::Here(running) => running.ended(),
        }
    }
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

/// Mount an overlay of `lowers` served by fuse-overlayfs on `place`, and wait until it
/// serves; `reopen` opens the place again (then it leads to the new mount). `in_root`: the
/// place is below a new root.
///
/// fuse-overlayfs resolves every layer to a path (realpath) before opening it, so layers are
/// given by path: the lowers as given, a persistent upper by the path its checked descriptor
/// has now (its directory lets nobody else rename it), and a throwaway upper on a scratch tmpfs
/// attached for the moment in this mount namespace (see [`Staging`]) and detached as soon as
/// fuse-overlayfs serves.
///
/// Returns how it was mounted, for --verbose: "fuse-overlayfs", with the program's path when
/// FUSE_OVERLAYFS named it.
pub(super) fn fuse_overlayfs(
    starter: &FuseStarter,
    lowers: &[PathBuf],
    upper: Option<&Upper>,
    place: &Place,
    reopen: &dyn Fn() -> Result<Place, Error>,
    in_root: bool,
) -> Result<String, Error> {
    let what = || format!("overlay on {}", place.shown().display());
    let (program, used) = find_fuse_overlayfs(starter, in_root, &what)?;
    let sys_err = |errno: nix::Error| mount_error(what(), errno);
    let layers = Layers::of(lowers, upper, place, &program, &sys_err)?;
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        layers.lowers.join(":"),
        layers.upper,
        layers.work
    );
    // fuse-overlayfs's root: a copy of this mount namespace's tree as it is now, before the
    // FUSE mount exists. Not the root itself, for two reasons. Its lookups must not cross
    // the mount it is to serve (a lower that is the target itself, --copy-up, would wait on
    // fuse-overlayfs's own answer); and pivot_root(2) moves every process whose root is the
    // old root into the new one (chroot_fs_refs, whatever its namespaces), where /proc may
    // be a pid namespace's in which fuse-overlayfs has no /proc/self (it reaches its layers'
    // files through /proc/self/fd).
    let root = sys::clone_root_tree().map_err(sys_err)?;
    let fuse = mount_fuse(place).map_err(|e| match e {
        nix::Error::ENOENT | nix::Error::EACCES | nix::Error::EPERM => mount_error(what(), e)
            .with_hint(
                "fuse-overlayfs needs /dev/fuse readable and writable by you, and FUSE in user \
                 namespaces (Linux 4.18)",
            ),
        _ => mount_error(what(), e),
    })?;
    let started = starter.start(&program, &options, &fuse, &root);
    // Only fuse-overlayfs holds the connection now: if it ends, the kernel aborts the
    // connection and a lookup in the mount fails at once instead of waiting.
    drop((fuse, root));
    let result = started.and_then(|started| wait_until_served(started, reopen, &what));
    drop(layers);
    result.map(|()| used)
}

/// fuse-overlayfs's absolute path (it runs with / as its working directory), and how it is
/// named for --verbose. Refused where it would run in the namespaces below a new root.
fn find_fuse_overlayfs(
    starter: &FuseStarter,
    in_root: bool,
    what: &dyn Fn() -> String,
) -> Result<(PathBuf, String), Error> {
    if in_root && matches!(starter, FuseStarter::Here) {
        return Err(Error::new(
            what(),
            "fuse-overlayfs would run in the namespaces, where it would lead out of --rootfs",
        )
        .with_hint(
            "use --overlay-driver=fuse (become-root then starts it out of reach), or \
             --overlay-driver=native to see why the kernel refuses",
        ));
    }
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
    let program =
        std::path::absolute(&found.path).map_err(|e| mount_error(what(), sys::io_errno(&e)))?;
    Ok((program, used))
}

/// The layers as fuse-overlayfs takes them: paths it can read in its options, and the
/// staging of a throwaway upper, detached when this is dropped.
struct Layers {
    lowers: Vec<String>,
    upper: String,
    work: String,
    _staging: Option<Staging>,
}

impl Layers {
    fn of(
        lowers: &[PathBuf],
        upper: Option<&Upper>,
        place: &Place,
        program: &Path,
        sys_err: &dyn Fn(nix::Error) -> Error,
    ) -> Result<Layers, Error> {
        let absolute = |p: &Path| std::path::absolute(p).map_err(|e| sys_err(sys::io_errno(&e)));
        let lower_paths = lowers
            .iter()
            .map(|l| fuse_safe("overlay lower", &absolute(l)?))
            .collect::<Result<Vec<_>, _>>()?;
        let (staging, upper, work) = match upper {
            Some(upper) => {
                let path = |fd: RawFd| std::fs::read_link(format!("/proc/self/fd/{fd}"));
                let io = |e: std::io::Error| sys_err(sys::io_errno(&e));
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
                avoid.extend(std::fs::canonicalize(place.target()).ok());
                avoid.push(program.to_path_buf());
                let staging = Staging::attach(&avoid).map_err(sys_err)?;
                let dir = staging.dir.clone();
                let upper = fuse_safe("overlay staging", &dir.join("upper"))?;
                let work = fuse_safe("overlay staging", &dir.join("work"))?;
                (Some(staging), upper, work)
            }
        };
        Ok(Layers {
            lowers: lower_paths,
            upper,
            work,
            _staging: staging,
        })
    }
}

/// Wait until the new mount serves; if it does not, detach it and say why with what
/// fuse-overlayfs said. One started here is remembered to be waited for.
fn wait_until_served(
    started: Started,
    reopen: &dyn Fn() -> Result<Place, Error>,
    what: &dyn Fn() -> String,
) -> Result<(), Error> {
    let mounted = reopen()?;
    match serves(&mounted.target(), FUSE_TIMEOUT) {
        Ok(()) => {
            if let Started::Here(running) = started {
                STARTED
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(running.pid());
            }
            Ok(())
        }
        Err(failed) => {
            let _ = umount2(&mounted.target(), MntFlags::MNT_DETACH);
            let (status, stderr) = started.ended();
            Err(match failed {
                None => Error::new(
                    what(),
                    format!(
                        "fuse-overlayfs did not mount within {} s ({status}): {stderr}",
                        FUSE_TIMEOUT.as_secs()
                    ),
                ),
                Some(_) => Error::new(
                    what(),
                    format!("fuse-overlayfs failed ({status}): {stderr}"),
                ),
            }
            .with_hint(
                "fuse-overlayfs says why above: the lowers must be directories you can read, \
                 and UPPER one you can write",
            ))
        }
    }
}

/// The fuse-overlayfs processes this process started itself and left running, by pid.
static STARTED: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());

/// The fuse-overlayfs processes the namespace process started itself (no new root), which
/// end with COMMAND.
pub fn started_here() -> Vec<i32> {
    STARTED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Open /dev/fuse and mount a FUSE file system served through it on `place`, as
/// fuse-overlayfs mounts itself (libfuse): its type and source, the mounter's ids, and for
/// root default_permissions and allow_other (the kernel checks permissions as on any file
/// system; every process of the user namespace may use it) without nosuid.
fn mount_fuse(place: &Place) -> nix::Result<OwnedFd> {
    let fuse = open("/dev/fuse", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())?;
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    let (flags, extra) = match uid.is_root() {
        true => (MsFlags::empty(), ",allow_other"),
        false => (MsFlags::MS_NOSUID, ""),
    };
    let data = format!(
        "fd={},rootmode=40000,user_id={uid},group_id={gid},default_permissions{extra}",
        fuse.as_raw_fd()
    );
    mount(
        Some("fuse-overlayfs"),
        &place.target(),
        Some("fuse.fuse-overlayfs"),
        flags | MsFlags::MS_NODEV | MsFlags::MS_NOATIME,
        Some(data.as_str()),
    )?;
    Ok(fuse)
}

/// Whether the FUSE mount at `at` serves: a stat of its root waits until fuse-overlayfs has
/// answered the kernel's first request, or fails once it has ended. The stat is made by a
/// child of this process, waited for at most `limit` (a wait on a FUSE request can only be
/// killed). `Err(None)`: no answer in time; `Err(Some(errno))`: the mount failed.
fn serves(at: &Path, limit: Duration) -> Result<(), Option<nix::Error>> {
    use nix::sys::wait::{WaitStatus, waitpid};
    let child = match sys::fork_process() {
        Err(e) => return Err(Some(e)),
        Ok(Forked::Child) => {
            let code = match nix::sys::stat::stat(at) {
                Ok(_) => 0,
                Err(e) => (e as i32).clamp(1, 255),
            };
            sys::exit_now(code)
        }
        Ok(Forked::Parent(child)) => child,
    };
    let answered = sys::pidfd_open(child).and_then(|pidfd| {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        let timeout = PollTimeout::try_from(limit).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        loop {
            match poll(&mut fds, timeout) {
                Err(nix::Error::EINTR) => continue,
                done => break done.map(|n| n > 0),
            }
        }
    });
    if !matches!(answered, Ok(true)) {
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
    }
    let status = waitpid(child, None);
    match (answered, status) {
        (Ok(true), Ok(WaitStatus::Exited(_, 0))) => Ok(()),
        (Ok(true), Ok(WaitStatus::Exited(_, code))) => Err(Some(nix::Error::from_raw(code))),
        (Ok(true), _) => Err(Some(nix::Error::EIO)),
        (Ok(false), _) => Err(None),
        (Err(e), _) => Err(Some(e)),
    }
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
