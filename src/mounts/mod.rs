//! Mounts: first a plan (plain data, decided and checked from the options before any
//! namespace exists), then applied in order inside the new mount namespace. Keeping the plan
//! pure makes its order a unit test, and every path error an error before anything is
//! mounted.
//!
//! Filesystem options apply in command-line order. With `--rootfs`, destinations are inside
//! the new root, which is assembled (itself bound, /proc, a minimal /dev, /sys, /tmp) before
//! the options and entered with pivot_root(2) after them.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::Mode;

use crate::error::Error;
use crate::options::{FsArg, OverlayDriver, Propagation};

pub mod overlay;

/// A mount step that the kernel refused, with the fix for the usual reasons.
pub fn mount_error(what: impl Into<String>, errno: nix::Error) -> Error {
    let hint = match errno {
        nix::Error::EPERM => {
            "the kernel refused the mount inside the user namespace; see user_namespaces(7)"
        }
        nix::Error::ENOENT => {
            "create it first, or correct the path; with --rootfs, destinations (DST, TARGET, \
             --tmpfs DIR, --chdir) are inside the new root and must exist there"
        }
        nix::Error::ENOTDIR => "overlay layers and targets, and --tmpfs, need directories",
        nix::Error::EACCES => {
            "you need search and read access to it (root inside is you outside, and cannot \
             reach what you cannot)"
        }
        _ => return Error::sys(what, errno),
    };
    Error::sys(what, errno).with_hint(hint)
}

/// One step of the mount plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountStep {
    /// Set the propagation of every mount below / (recursively), so that nothing done in the
    /// namespace reaches the host (private), or host mounts still arrive (slave).
    SetPropagation(Propagation),
    /// A fresh proc filesystem for the new pid namespace.
    FreshProc { at: PathBuf },
    /// A generated, read-only resolv.conf with this text (naming the network helper's DNS
    /// forwarder), bound over the file `at` leads to, symlinks followed.
    ResolvConf { at: PathBuf, text: String },
    /// Bind `src` to `dst`, recursively; read-only on every mount below when asked.
    Bind {
        src: PathBuf,
        dst: PathBuf,
        readonly: bool,
    },
    /// A fresh tmpfs.
    Tmpfs { dir: PathBuf, mode: u32 },
    /// An overlay of `lowers` (top first) on `target`; changes go to `upper` (with `work`
    /// beside it), or to a throwaway tmpfs.
    Overlay {
        lowers: Vec<PathBuf>,
        target: PathBuf,
        upper: Option<Upper>,
        driver: OverlayDriver,
        /// Say which driver mounted it (`--verbose`).
        report: bool,
    },
    /// Bind the new root onto itself (pivot_root wants a mount point).
    RootfsSelfBind { dir: PathBuf },
    /// A minimal /dev in the new root: tmpfs with null, zero, full, random, urandom and tty
    /// bound from the host, a private devpts, and /dev/shm.
    RootfsDev { dir: PathBuf },
    /// /sys in the new root: fresh when the network namespace is ours, else a read-only bind.
    RootfsSys { dir: PathBuf, fresh: bool },
    /// Enter the new root and detach the old one.
    PivotRoot { dir: PathBuf },
    /// Change to the directory COMMAND runs in (last: it may be on a mount above).
    Chdir { dir: PathBuf },
}

/// A filesystem option, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsSpec {
    Bind {
        src: PathBuf,
        dst: PathBuf,
        readonly: bool,
    },
    Tmpfs {
        dir: PathBuf,
    },
    Overlay {
        lowers: Vec<PathBuf>,
        target: PathBuf,
        upper: Option<PathBuf>,
    },
}

/// A persistent upper layer: UPPER and its work directory, made or checked by [`check`] and
/// held open from then on, so that nothing is looked up by path again (the kernel is given
/// `/proc/self/fd/N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upper {
    pub path: PathBuf,
    /// O_PATH descriptors of UPPER and of its work directory, owned by [`Prepared`].
    pub dir: RawFd,
    pub work: RawFd,
}

/// What [`check`] opened for the run: the directories overlays will write to. They stay open
/// (close-on-exec) until the mounts are made; the namespace process closes them before it
/// becomes an init or a pause process (nothing inside may hold a directory of the host).
#[derive(Debug, Default)]
pub struct Prepared {
    held: Vec<OwnedFd>,
    uppers: Vec<Upper>,
}

impl Prepared {
    /// The descriptors held, for a process that must keep them across a clean-up.
    pub fn raw_fds(&self) -> Vec<RawFd> {
        self.held.iter().map(|fd| fd.as_raw_fd()).collect()
    }

    /// A Prepared that names `uppers` without holding them: for checking what [`plan`] does
    /// with them (property tests, fuzzing), never for mounting.
    pub fn naming(uppers: &[PathBuf]) -> Prepared {
        Prepared {
            held: Vec::new(),
            uppers: uppers
                .iter()
                .map(|path| Upper {
                    path: path.clone(),
                    dir: -1,
                    work: -1,
                })
                .collect(),
        }
    }

    fn upper(&self, path: &Path) -> Option<Upper> {
        self.uppers.iter().find(|u| u.path == path).cloned()
    }
}

/// Everything the plan depends on.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub mount_ns: bool,
    pub pid_ns: bool,
    pub own_net: bool,
    pub propagation: Option<Propagation>,
    pub resolv_conf: Option<String>,
    pub filesystem: Vec<FsSpec>,
    pub rootfs: Option<PathBuf>,
    pub overlay_driver: Option<OverlayDriver>,
    /// --chdir, or / with --rootfs.
    pub chdir: Option<PathBuf>,
    /// --verbose: say which overlay driver was used.
    pub verbose: bool,
}

/// Split `text` on unescaped `sep`, keeping escapes (`\` before any character) in the
/// fields, so that they can be split again on another separator.
fn split_raw(text: &str, sep: char) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        let field = fields.last_mut().expect("one");
        match c {
            '\\' => {
                field.push('\\');
                field.extend(chars.next());
            }
            c if c == sep => fields.push(String::new()),
            c => field.push(c),
        }
    }
    fields
}

/// Remove escapes: `\x` is `x`.
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// Split `text` on unescaped `sep` into unescaped fields.
pub fn split_escaped(text: &str, sep: char) -> Vec<String> {
    split_raw(text, sep).iter().map(|f| unescape(f)).collect()
}

/// Parse one filesystem option.
pub fn parse(arg: &FsArg) -> Result<FsSpec, Error> {
    let bad = |option: &str, value: &str, why: &str| {
        Error::usage(
            format!("--{option}={value}: {why}"),
            "see 'become-root --help' (Filesystem)",
        )
    };
    let path = |p: &str| PathBuf::from(p);
    match arg {
        FsArg::Bind(v) | FsArg::RoBind(v) => {
            let option = if matches!(arg, FsArg::Bind(_)) {
                "bind"
            } else {
                "ro-bind"
            };
            let fields = split_escaped(v, ':');
            let (src, dst) = match fields.as_slice() {
                [src] if !src.is_empty() => (src.clone(), src.clone()),
                [src, dst] if !src.is_empty() && !dst.is_empty() => (src.clone(), dst.clone()),
                _ => return Err(bad(option, v, "expected SRC or SRC:DST")),
            };
            Ok(FsSpec::Bind {
                src: path(&src),
                dst: path(&dst),
                readonly: option == "ro-bind",
            })
        }
        FsArg::Tmpfs(v) if v.is_empty() => Err(bad("tmpfs", v, "empty path")),
        FsArg::CopyUp(v) if v.is_empty() => Err(bad("copy-up", v, "empty path")),
        FsArg::Tmpfs(v) => Ok(FsSpec::Tmpfs { dir: path(v) }),
        FsArg::CopyUp(v) => Ok(FsSpec::Overlay {
            lowers: vec![path(v)],
            target: path(v),
            upper: None,
        }),
        FsArg::Overlay(v) => {
            let fields = split_raw(v, ':');
            let (lowers, target, upper) = match fields.as_slice() {
                [lowers, target] => (lowers, target, None),
                [lowers, target, upper] => (lowers, target, Some(upper)),
                _ => {
                    return Err(bad(
                        "overlay",
                        v,
                        "expected LOWER[,LOWER...]:TARGET[:UPPER]",
                    ));
                }
            };
            let lowers: Vec<PathBuf> = split_escaped(lowers, ',').iter().map(|l| path(l)).collect();
            let (target, upper) = (unescape(target), upper.map(|u| unescape(u)));
            if lowers.iter().any(|l| l.as_os_str().is_empty())
                || target.is_empty()
                || upper.as_ref().is_some_and(|u| u.is_empty())
            {
                return Err(bad("overlay", v, "an empty path"));
            }
            Ok(FsSpec::Overlay {
                lowers,
                target: path(&target),
                upper: upper.map(|u| path(&u)),
            })
        }
    }
}

/// Where a destination lies before pivot_root: inside the new root when there is one.
fn inside(rootfs: &Option<PathBuf>, path: &Path) -> PathBuf {
    match rootfs {
        Some(root) => root.join(path.strip_prefix("/").unwrap_or(path)),
        None => path.to_path_buf(),
    }
}

/// The steps for a run, in order; `prepared` holds the upper layers [`check`] opened.
pub fn plan(o: &Options, prepared: &Prepared) -> Vec<MountStep> {
    let mut steps = Vec::new();
    if o.mount_ns {
        steps.push(MountStep::SetPropagation(
            o.propagation.unwrap_or(Propagation::Private),
        ));
    }
    match &o.rootfs {
        None => {
            if o.pid_ns {
                steps.push(MountStep::FreshProc { at: "/proc".into() });
            }
            if let Some(text) = &o.resolv_conf {
                let at = "/etc/resolv.conf".into();
                steps.push(MountStep::ResolvConf {
                    at,
                    text: text.clone(),
                });
            }
        }
        Some(dir) => {
            steps.push(MountStep::RootfsSelfBind { dir: dir.clone() });
            if o.pid_ns {
                steps.push(MountStep::FreshProc {
                    at: dir.join("proc"),
                });
            } else {
                let (src, dst) = ("/proc".into(), dir.join("proc"));
                steps.push(MountStep::Bind {
                    src,
                    dst,
                    readonly: false,
                });
            }
            steps.push(MountStep::RootfsDev { dir: dir.clone() });
            steps.push(MountStep::RootfsSys {
                dir: dir.clone(),
                fresh: o.own_net,
            });
            steps.push(MountStep::Tmpfs {
                dir: dir.join("tmp"),
                mode: 0o1777,
            });
            if let Some(text) = &o.resolv_conf {
                let at = dir.join("etc/resolv.conf");
                steps.push(MountStep::ResolvConf {
                    at,
                    text: text.clone(),
                });
            }
        }
    }
    let driver = o.overlay_driver.unwrap_or(OverlayDriver::Auto);
    for spec in &o.filesystem {
        steps.push(match spec {
            FsSpec::Bind { src, dst, readonly } => MountStep::Bind {
                src: src.clone(),
                dst: inside(&o.rootfs, dst),
                readonly: *readonly,
            },
            FsSpec::Tmpfs { dir } => MountStep::Tmpfs {
                dir: inside(&o.rootfs, dir),
                mode: 0o755,
            },
            FsSpec::Overlay {
                lowers,
                target,
                upper,
            } => MountStep::Overlay {
                lowers: lowers.clone(),
                target: inside(&o.rootfs, target),
                upper: upper.as_deref().and_then(|u| prepared.upper(u)),
                driver,
                report: o.verbose,
            },
        });
    }
    if let Some(dir) = &o.rootfs {
        steps.push(MountStep::PivotRoot { dir: dir.clone() });
    }
    if let Some(dir) = o
        .chdir
        .clone()
        .or_else(|| o.rootfs.as_ref().map(|_| "/".into()))
    {
        steps.push(MountStep::Chdir { dir });
    }
    steps
}

fn not_found(what: &str, path: &Path) -> Error {
    mount_error(format!("{what} {}", path.display()), nix::Error::ENOENT)
}

/// Check every path the plan names, as the caller sees them, before anything is mounted.
/// Creates nothing but a missing overlay UPPER and its work directory (beside it, so on the
/// same filesystem), each with one mkdir, and returns them open. `owns` says whether a host
/// uid belongs to the caller (its own, or one its map covers): only such a directory may be
/// written to.
pub fn check(o: &Options, owns: &dyn Fn(u32) -> bool) -> Result<Prepared, Error> {
    let is_dir = |p: &Path| p.is_dir();
    if let Some(root) = &o.rootfs {
        check_rootfs(root, owns)?;
    }
    let mut prepared = Prepared::default();
    for spec in &o.filesystem {
        match spec {
            FsSpec::Bind { src, dst, .. } => {
                if !src.exists() {
                    return Err(not_found("bind source", src));
                }
                if !inside(&o.rootfs, dst).exists() {
                    return Err(not_found("bind destination", &inside(&o.rootfs, dst)));
                }
            }
            FsSpec::Tmpfs { dir } => {
                if !is_dir(&inside(&o.rootfs, dir)) {
                    return Err(not_a_dir("tmpfs directory", &inside(&o.rootfs, dir)));
                }
            }
            FsSpec::Overlay {
                lowers,
                target,
                upper,
            } => {
                for lower in lowers {
                    if !is_dir(lower) {
                        return Err(not_a_dir("overlay lower", lower));
                    }
                    refuse_pseudo_fs("overlay lower", lower)?;
                }
                let target = inside(&o.rootfs, target);
                if !is_dir(&target) {
                    return Err(not_a_dir("overlay target", &target));
                }
                refuse_pseudo_fs("overlay target", &target)?;
                if let Some(upper) = upper
                    && prepared.upper(upper).is_none()
                {
                    prepare_upper(upper, owns, &mut prepared)?;
                }
            }
        }
    }
    Ok(prepared)
}

fn not_a_dir(what: &str, path: &Path) -> Error {
    let errno = if path.exists() {
        nix::Error::ENOTDIR
    } else {
        nix::Error::ENOENT
    };
    mount_error(format!("{what} {}", path.display()), errno)
}

/// A refusal of `path`, with why and what to do instead.
fn refused(what: &str, path: &Path, why: String, hint: &str) -> Error {
    Error::new(format!("{what} {}", path.display()), why).with_hint(hint)
}

/// Pseudo filesystems cannot be layers of an overlay: overlayfs refuses them, and
/// fuse-overlayfs would serve /proc to the very process that waits for it (a deadlock).
fn refuse_pseudo_fs(what: &str, path: &Path) -> Result<(), Error> {
    use nix::sys::statfs::{
        CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, DEBUGFS_MAGIC, DEVPTS_SUPER_MAGIC,
        PROC_SUPER_MAGIC, SECURITYFS_MAGIC, SYSFS_MAGIC, TRACEFS_MAGIC, statfs,
    };
    let Ok(fs) = statfs(path) else {
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
fn check_rootfs(root: &Path, owns: &dyn Fn(u32) -> bool) -> Result<(), Error> {
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
    if !(owns(meta.uid()) || meta.uid() == 0) || meta.mode() & 0o022 != 0 {
        return Err(refused(
            "--rootfs",
            root,
            format!(
                "is owned by uid {} with mode {:04o}: others could change the tree COMMAND \
                 runs from",
                meta.uid(),
                meta.mode() & 0o7777
            ),
            "use a directory of yours (or of your subordinate ids) that only its owner can \
             write to",
        ));
    }
    Ok(())
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
fn prepare_upper(
    upper: &Path,
    owns: &dyn Fn(u32) -> bool,
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
    let parent_fd = open_parent(parent, upper)?;
    let (dir, made_dir) = own_dir(&parent_fd, parent, name, owns)?;
    let (work, _) = match own_dir(&parent_fd, parent, work_name.as_ref(), owns) {
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
/// it must not let others rename what is in it: not group- or world-writable unless sticky
/// (as /tmp is, where only an entry's owner may remove or rename it).
fn open_parent(parent: &Path, upper: &Path) -> Result<OwnedFd, Error> {
    let fd = open(
        parent,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| mount_error(format!("overlay upper {}", upper.display()), errno))?;
    let st = nix::sys::stat::fstat(&fd)
        .map_err(|errno| mount_error(format!("overlay upper {}", upper.display()), errno))?;
    if st.st_mode & 0o022 != 0 && st.st_mode & 0o1000 == 0 {
        return Err(refused(
            "overlay upper",
            upper,
            format!(
                "its directory {} is writable by others (mode {:04o}) and not sticky: they \
                 could swap UPPER or its work directory for a link to your files",
                parent.display(),
                st.st_mode & 0o7777
            ),
            "keep UPPER in a directory only you can write to",
        ));
    }
    Ok(fd)
}

/// Make `name` in `parent` (mode 0755, if missing) and open it without following a symbolic
/// link (O_NOFOLLOW on the last component, relative to the parent's descriptor), then check
/// that it is a directory the caller owns (`owns`) and that nobody else can write to. Says
/// whether it was made here.
///
/// Why: overlayfs empties and rewrites its work directory, and writes whatever COMMAND writes
/// into UPPER. Another user who could choose what these names lead to (a symlink planted in
/// /tmp, say) would have the caller's overlay delete or create files in the caller's name.
pub fn own_dir(
    parent: &OwnedFd,
    parent_path: &Path,
    name: &std::ffi::OsStr,
    owns: &dyn Fn(u32) -> bool,
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
    if !owns(st.st_uid) || st.st_mode & 0o022 != 0 {
        return Err(refused(
            "overlay directory",
            &path,
            format!(
                "is owned by uid {} with mode {:04o}; it must be yours (or one of your \
                 subordinate ids') and writable by nobody else",
                st.st_uid,
                st.st_mode & 0o7777
            ),
            "if it is yours: chmod go-w it; else remove it (someone else may have made \
             it), or choose another UPPER",
        ));
    }
    Ok((fd, made))
}

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
                // A network namespace of our own may have its own sysfs.
                mount(
                    Some("sysfs"),
                    &at,
                    Some("sysfs"),
                    MsFlags::MS_NOSUID
                        | MsFlags::MS_NODEV
                        | MsFlags::MS_NOEXEC
                        | MsFlags::MS_RDONLY,
                    None::<&str>,
                )
                .map_err(fail(format!("mounting sysfs on {}", at.display())))
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

/// Make `path` and every mount below it read-only: one mount_setattr(2) with AT_RECURSIVE
/// (Linux 5.12), or on older kernels a read-only remount of each mount a lookup at or below
/// `path` reaches, as /proc/self/mountinfo lists them. Each remount repeats the flags a user
/// namespace locks (nosuid, nodev, noexec; the kernel keeps the atime flags of a remount that
/// names none), because clearing a locked flag is refused with EPERM
/// (can_change_locked_flags(), fs/namespace.c). A mount that is hidden under another cannot
/// be reached by any path, so it is left as it is.
fn readonly_recursive(path: &Path) -> nix::Result<()> {
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
fn reachable_at_or_below<'a>(
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
fn rootfs_dev(dev: &Path) -> Result<(), Error> {
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
        let node = dev.join(name);
        let file = open(
            &node,
            OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o666),
        )
        .map_err(fail(format!("creating {}", node.display())))?;
        drop(file);
        mount(
            Some(&Path::new("/dev").join(name)),
            &node,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(fail(format!("binding /dev/{name}")))?;
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
    fn split_escaped_rows() {
        let rows: &[(&str, char, &[&str])] = &[
            ("a:b", ':', &["a", "b"]),
            ("a\\:b:c", ':', &["a:b", "c"]),
            ("a\\\\:b", ':', &["a\\", "b"]),
            ("a,b\\,c", ',', &["a", "b,c"]),
            ("", ':', &[""]),
            ("a:", ':', &["a", ""]),
        ];
        for (text, sep, want) in rows {
            assert_eq!(split_escaped(text, *sep), *want, "{text}");
        }
    }

    #[test]
    fn parse_rows() {
        let p = PathBuf::from;
        let ok: Vec<(FsArg, FsSpec)> = vec![
            (
                FsArg::Bind("/a".into()),
                FsSpec::Bind {
                    src: p("/a"),
                    dst: p("/a"),
                    readonly: false,
                },
            ),
            (
                FsArg::Bind("/a:/b".into()),
                FsSpec::Bind {
                    src: p("/a"),
                    dst: p("/b"),
                    readonly: false,
                },
            ),
            (
                FsArg::RoBind("/a\\:x:/b".into()),
                FsSpec::Bind {
                    src: p("/a:x"),
                    dst: p("/b"),
                    readonly: true,
                },
            ),
            (FsArg::Tmpfs("/t".into()), FsSpec::Tmpfs { dir: p("/t") }),
            (
                FsArg::CopyUp("/etc".into()),
                FsSpec::Overlay {
                    lowers: vec![p("/etc")],
                    target: p("/etc"),
                    upper: None,
                },
            ),
            (
                FsArg::Overlay("/l:/t".into()),
                FsSpec::Overlay {
                    lowers: vec![p("/l")],
                    target: p("/t"),
                    upper: None,
                },
            ),
            (
                FsArg::Overlay("/l1,/l2:/t:/u".into()),
                FsSpec::Overlay {
                    lowers: vec![p("/l1"), p("/l2")],
                    target: p("/t"),
                    upper: Some(p("/u")),
                },
            ),
            (
                FsArg::Overlay("/a\\,b:/t".into()),
                FsSpec::Overlay {
                    lowers: vec![p("/a,b")],
                    target: p("/t"),
                    upper: None,
                },
            ),
        ];
        for (arg, want) in ok {
            assert_eq!(parse(&arg).unwrap(), want, "{arg:?}");
        }
        let bad = [
            FsArg::Bind(":/b".into()),
            FsArg::Bind("/a:".into()),
            FsArg::Bind("/a:/b:/c".into()),
            FsArg::Tmpfs("".into()),
            FsArg::CopyUp("".into()),
            FsArg::Overlay("/l".into()),
            FsArg::Overlay("/l:/t:/u:/x".into()),
            FsArg::Overlay(",/l:/t".into()),
            FsArg::Overlay("/l::/u".into()),
        ];
        for arg in bad {
            let err = parse(&arg).expect_err(&format!("{arg:?}"));
            assert_eq!(err.exit_code(), 125);
            // The message names the option given (an empty --copy-up is not a --tmpfs).
            let option = match &arg {
                FsArg::Bind(_) => "--bind=",
                FsArg::RoBind(_) => "--ro-bind=",
                FsArg::Tmpfs(_) => "--tmpfs=",
                FsArg::CopyUp(_) => "--copy-up=",
                FsArg::Overlay(_) => "--overlay=",
            };
            assert!(err.why().starts_with(option), "{arg:?}: {}", err.why());
        }
    }

    #[test]
    fn plan_rows() {
        use MountStep::*;
        let private = Propagation::Private;
        let base = Options {
            mount_ns: true,
            propagation: Some(private),
            ..Options::default()
        };
        assert_eq!(plan(&Options::default(), &Prepared::default()), vec![]);
        assert_eq!(
            plan(&base, &Prepared::default()),
            vec![SetPropagation(private)]
        );
        let pid = Options {
            pid_ns: true,
            ..base.clone()
        };
        assert_eq!(
            plan(&pid, &Prepared::default()),
            vec![SetPropagation(private), FreshProc { at: "/proc".into() }]
        );
        let dns = Options {
            resolv_conf: Some("x".into()),
            ..base.clone()
        };
        assert_eq!(
            plan(&dns, &Prepared::default())[1],
            ResolvConf {
                at: "/etc/resolv.conf".into(),
                text: "x".into()
            }
        );
        // command-line order is kept, destinations move into the new root, pivot comes last
        let root = Options {
            rootfs: Some("/r".into()),
            filesystem: vec![
                FsSpec::Tmpfs {
                    dir: "/scratch".into(),
                },
                FsSpec::Bind {
                    src: "/h".into(),
                    dst: "/scratch/h".into(),
                    readonly: true,
                },
            ],
            ..base.clone()
        };
        let steps = plan(&root, &Prepared::default());
        assert_eq!(steps[1], RootfsSelfBind { dir: "/r".into() });
        assert_eq!(
            steps[2],
            Bind {
                src: "/proc".into(),
                dst: "/r/proc".into(),
                readonly: false
            }
        );
        assert_eq!(steps[3], RootfsDev { dir: "/r".into() });
        assert_eq!(
            steps[4],
            RootfsSys {
                dir: "/r".into(),
                fresh: false
            }
        );
        assert_eq!(
            steps[5],
            Tmpfs {
                dir: "/r/tmp".into(),
                mode: 0o1777
            }
        );
        assert_eq!(
            steps[6],
            Tmpfs {
                dir: "/r/scratch".into(),
                mode: 0o755
            }
        );
        assert_eq!(
            steps[7],
            Bind {
                src: "/h".into(),
                dst: "/r/scratch/h".into(),
                readonly: true
            }
        );
        assert_eq!(steps[8], PivotRoot { dir: "/r".into() });
        let root_pid = Options {
            pid_ns: true,
            own_net: true,
            ..root
        };
        let steps = plan(&root_pid, &Prepared::default());
        assert_eq!(
            steps[2],
            FreshProc {
                at: "/r/proc".into()
            }
        );
        assert_eq!(
            steps[4],
            RootfsSys {
                dir: "/r".into(),
                fresh: true
            }
        );
    }

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

    #[test]
    fn work_dir_is_beside_upper() {
        assert_eq!(
            work_dir(Path::new("/data/upper")),
            PathBuf::from("/data/.upper.work")
        );
    }
}
