//! Mounts: first a plan (plain data, decided and checked from the options before any
//! namespace exists), then applied in order inside the new mount namespace. Keeping the plan
//! pure makes its order a unit test, and every path error an error before anything is
//! mounted.
//!
//! Filesystem options apply in command-line order. With `--rootfs`, destinations are inside
//! the new root, which is assembled (itself bound, /proc, a minimal /dev, /sys, /tmp) before
//! the options and entered with pivot_root(2) after them; every place below it is opened in
//! it (root.rs: the in-root path rule).

use std::path::PathBuf;

use crate::error::Error;
use crate::options::{OverlayDriver, Propagation};

mod apply;
mod check;
mod dev;
mod fuse;
pub mod fuse_helper;
mod overlay;
mod plan;
mod points;
mod root;
mod spec;

pub use apply::{Applier, command_in_rootfs, open_path};
pub use check::{Trust, check, own_dir, work_dir};
pub use fuse::started_here as fuse_started_here;
pub use plan::{Options, Prepared, Upper, plan};
pub use spec::{FsSpec, parse, split_escaped};

/// A mount step that the kernel refused, with the fix for the usual reasons.
pub fn mount_error(what: impl Into<String>, errno: nix::Error) -> Error {
    let hint = match errno {
        nix::Error::EPERM => {
            "the kernel refused the mount inside the user namespace; see user_namespaces(7)"
        }
        nix::Error::ENOENT => {
            "create it first, or correct the path; with --rootfs, destinations (DST, TARGET, \
             --tmpfs DIR, --chdir) are inside the new root and must exist there, unless below a \
             tmpfs of the run (an earlier --tmpfs, the new root's /tmp), where they are made"
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
    /// A fresh, read-only sysfs for the new network namespace (--sysfs).
    FreshSys { at: PathBuf },
    /// A generated, read-only resolv.conf with this text (naming the network helper's DNS
    /// forwarder), mounted on the entry `at` itself: a file, or a symbolic link, which is
    /// followed nowhere.
    ResolvConf { at: PathBuf, text: String },
    /// Bind `src` to `dst`, recursively; read-only on every mount below when asked.
    Bind {
        src: PathBuf,
        dst: PathBuf,
        readonly: bool,
    },
    /// A fresh tmpfs.
    Tmpfs { dir: PathBuf, mode: u32 },
    /// Make the mount point `rest` below `base`, a place this run mounted fresh before
    /// (points.rs): directories, and last a directory or, for a bind of a file `source`, an
    /// empty file. `what` names the destination in errors ("bind destination").
    MountPoint {
        base: PathBuf,
        rest: PathBuf,
        source: Option<PathBuf>,
        what: &'static str,
    },
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
    /// /proc in the new root: fresh for the run's own pid namespace, else the host's bound.
    RootfsProc { dir: PathBuf, fresh: bool },
    /// A minimal /dev in the new root: tmpfs with null, zero, full, random, urandom and tty
    /// bound from the host, a private devpts, and /dev/shm.
    RootfsDev { dir: PathBuf },
    /// /sys in the new root: fresh when the network namespace is ours, else a read-only bind.
    RootfsSys { dir: PathBuf, fresh: bool },
    /// A fresh tmpfs on the new root's `name` (tmp, and run for --boot).
    RootfsTmpfs {
        dir: PathBuf,
        name: &'static str,
        mode: u32,
    },
    /// --boot's console: the pty `tty` (launch::console) bound on a file made at `at`.
    Console { at: PathBuf, tty: PathBuf },
    /// The run's cgroup2 (the cgroup module), writable, as the cgroup namespace shows it: its root is
    /// the run's own cgroup.
    Cgroup2 { at: PathBuf },
    /// Enter the new root and detach the old one.
    PivotRoot { dir: PathBuf },
    /// Change to the directory COMMAND runs in (last: it may be on a mount above).
    Chdir { dir: PathBuf },
}
