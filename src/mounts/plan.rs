//! The mount plan: the steps of a run, in order, from the options (pure). The persistent upper
//! layers it names were opened by `check`, and are held by [`Prepared`].

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use super::{FsSpec, MountStep};
use crate::options::{OverlayDriver, Propagation};

/// A persistent upper layer: UPPER and its work directory, made or checked by [`check`](super::check()) and
/// held open from then on, so that nothing is looked up by path again (the kernel is given
/// `/proc/self/fd/N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upper {
    pub path: PathBuf,
    /// O_PATH descriptors of UPPER and of its work directory, owned by [`Prepared`].
    pub dir: RawFd,
    pub work: RawFd,
}

/// What [`check`](super::check()) opened for the run: the directories overlays will write to. They stay open
/// (close-on-exec) until the mounts are made; the namespace process closes them before it
/// becomes an init or a pause process (nothing inside may hold a directory of the host).
#[derive(Debug, Default)]
pub struct Prepared {
    pub(super) held: Vec<OwnedFd>,
    pub(super) uppers: Vec<Upper>,
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

    pub(super) fn upper(&self, path: &Path) -> Option<Upper> {
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
    /// --sysfs: a fresh sysfs at /sys (without --rootfs; a new root gets one anyway when the
    /// network namespace is ours, which --sysfs makes sure of).
    pub sysfs: bool,
    pub overlay_driver: Option<OverlayDriver>,
    /// --chdir, or / with --rootfs.
    pub chdir: Option<PathBuf>,
    /// --verbose: say which overlay driver was used.
    pub verbose: bool,
    /// --cgroup: the run's cgroup2 at /sys/fs/cgroup (after the new /sys, before the user's
    /// own mounts, which may cover it).
    pub cgroup2: bool,
    /// --boot (with --rootfs): a tmpfs /run, and `console` bound at /dev/console.
    pub boot: bool,
    pub console: Option<PathBuf>,
}

/// Where a destination lies before pivot_root: inside the new root when there is one.
pub(super) fn inside(rootfs: &Option<PathBuf>, path: &Path) -> PathBuf {
    match rootfs {
        Some(root) => root.join(path.strip_prefix("/").unwrap_or(path)),
        None => path.to_path_buf(),
    }
}

/// The steps for a run, in order; `prepared` holds the upper layers [`check`](super::check()) opened.
/// The propagation first, then the fresh filesystems of the current root or of a new one,
/// the run's cgroup2, the filesystem options in their order, and last the pivot and the
/// directory.
pub fn plan(o: &Options, prepared: &Prepared) -> Vec<MountStep> {
    let mut steps = Vec::new();
    if o.mount_ns {
        steps.push(MountStep::SetPropagation(
            o.propagation.unwrap_or(Propagation::Private),
        ));
    }
    match &o.rootfs {
        None => steps.extend(current_root_steps(o)),
        Some(dir) => steps.extend(new_root_steps(o, dir)),
    }
    if o.cgroup2 {
        steps.push(MountStep::Cgroup2 {
            at: inside(&o.rootfs, Path::new("/sys/fs/cgroup")),
        });
    }
    for index in 0..o.filesystem.len() {
        steps.extend(filesystem_steps(o, index, prepared));
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

/// On the current root: a fresh /proc for a pid namespace, a fresh /sys for --sysfs, and
/// the connected network's resolv.conf.
fn current_root_steps(o: &Options) -> Vec<MountStep> {
    let mut steps = Vec::new();
    if o.pid_ns {
        steps.push(MountStep::FreshProc { at: "/proc".into() });
    }
    if o.sysfs {
        steps.push(MountStep::FreshSys { at: "/sys".into() });
    }
    if let Some(text) = &o.resolv_conf {
        let at = "/etc/resolv.conf".into();
        steps.push(MountStep::ResolvConf {
            at,
            text: text.clone(),
        });
    }
    steps
}

/// A new root `dir` (--rootfs): bound on itself, with /proc, a minimal /dev (and
/// /dev/console for --boot), /sys, a tmpfs /tmp (and /run for --boot), and the connected
/// network's resolv.conf.
fn new_root_steps(o: &Options, dir: &Path) -> Vec<MountStep> {
    let dir = dir.to_path_buf();
    let mut steps = vec![
        MountStep::RootfsSelfBind { dir: dir.clone() },
        MountStep::RootfsProc {
            dir: dir.clone(),
            fresh: o.pid_ns,
        },
        MountStep::RootfsDev { dir: dir.clone() },
    ];
    if let Some(tty) = &o.console {
        let at = dir.join("dev/console");
        steps.push(MountStep::Console {
            at,
            tty: tty.clone(),
        });
    }
    steps.push(MountStep::RootfsSys {
        dir: dir.clone(),
        fresh: o.own_net,
    });
    steps.push(MountStep::RootfsTmpfs {
        dir: dir.clone(),
        name: "tmp",
        mode: 0o1777,
    });
    if o.boot {
        steps.push(MountStep::RootfsTmpfs {
            dir: dir.clone(),
            name: "run",
            mode: 0o755,
        });
    }
    if let Some(text) = &o.resolv_conf {
        let at = dir.join("etc/resolv.conf");
        steps.push(MountStep::ResolvConf {
            at,
            text: text.clone(),
        });
    }
    steps
}

/// Filesystem option `index`: its mount point first where it is below a fresh filesystem
/// of an earlier option, then its mount.
fn filesystem_steps(o: &Options, index: usize, prepared: &Prepared) -> Vec<MountStep> {
    let spec = &o.filesystem[index];
    let mut steps = Vec::new();
    if let Some((base, rest)) = super::points::below_fresh(o, index) {
        let (source, what) = match spec {
            FsSpec::Bind { src, .. } => (Some(src.clone()), "bind destination"),
            FsSpec::Tmpfs { .. } => (None, "tmpfs directory"),
            FsSpec::Overlay { .. } => (None, "overlay target"),
        };
        steps.push(MountStep::MountPoint {
            base,
            rest,
            source,
            what,
        });
    }
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
            driver: o.overlay_driver.unwrap_or(OverlayDriver::Auto),
            report: o.verbose,
        },
    });
    steps
}

#[cfg(test)]
mod tests {

    use super::{FsSpec, MountStep, Options, Prepared, plan};
    use crate::options::Propagation;

    // long: a table of (input, expected) rows, one per rule
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
        let cgroup = Options {
            cgroup2: true,
            rootfs: Some("/r".into()),
            ..base.clone()
        };
        let steps = plan(&cgroup, &Prepared::default());
        let sys = steps.iter().position(|s| matches!(s, RootfsSys { .. }));
        let cg = steps.iter().position(|s| {
            *s == Cgroup2 {
                at: "/r/sys/fs/cgroup".into(),
            }
        });
        assert!(sys < cg && cg.is_some(), "{steps:?}");
        // --sysfs: after /proc, before the resolv.conf and the filesystem options (which may
        // mount below /sys); under --rootfs the new root's /sys is fresh instead
        let sysfs = Options {
            pid_ns: true,
            sysfs: true,
            own_net: true,
            resolv_conf: Some("x".into()),
            filesystem: vec![FsSpec::Tmpfs {
                dir: "/sys/fs/cgroup".into(),
            }],
            ..base.clone()
        };
        let steps = plan(&sysfs, &Prepared::default());
        assert_eq!(steps[1], FreshProc { at: "/proc".into() });
        assert_eq!(steps[2], FreshSys { at: "/sys".into() });
        assert!(matches!(steps[3], ResolvConf { .. }), "{steps:?}");
        assert!(matches!(steps[4], Tmpfs { .. }), "{steps:?}");
        let sysfs_root = Options {
            rootfs: Some("/r".into()),
            ..sysfs
        };
        let steps = plan(&sysfs_root, &Prepared::default());
        assert!(
            !steps.iter().any(|s| matches!(s, FreshSys { .. })),
            "{steps:?}"
        );
        assert!(steps.contains(&RootfsSys {
            dir: "/r".into(),
            fresh: true
        }));
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
            RootfsProc {
                dir: "/r".into(),
                fresh: false
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
            RootfsTmpfs {
                dir: "/r".into(),
                name: "tmp",
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
        // the bind's destination on the fresh tmpfs is made there first (points.rs)
        assert_eq!(
            steps[7],
            MountPoint {
                base: "/r/scratch".into(),
                rest: "h".into(),
                source: Some("/h".into()),
                what: "bind destination"
            }
        );
        assert_eq!(
            steps[8],
            Bind {
                src: "/h".into(),
                dst: "/r/scratch/h".into(),
                readonly: true
            }
        );
        assert_eq!(steps[9], PivotRoot { dir: "/r".into() });
        let root_pid = Options {
            pid_ns: true,
            own_net: true,
            ..root
        };
        let steps = plan(&root_pid, &Prepared::default());
        assert_eq!(
            steps[2],
            RootfsProc {
                dir: "/r".into(),
                fresh: true
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
}
