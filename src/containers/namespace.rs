//! The containers namespace: one user and mount namespace per user and map mode, in which
//! every `become-root podman ...` and `become-root buildah ...` runs, as rootless podman keeps
//! one for all its calls (its pause process). What one call starts (a container and its
//! conmon, a pod, the netns files podman bind-mounts) the next one sees, because podman's
//! state points into the same mount namespace. This file decides, as data, what such a
//! namespace is made with; the launcher makes it (a `--detach` session with a pause process)
//! and sessions join it.
//!
//! - Its name is the session's: `podman` for the default map (auto and full, rootless
//!   podman's own map), `podman-keep-id`, `podman-single`, `podman-subids` for the others, so
//!   that no two maps ever share one.
//! - podman's runtime state lives in the namespace: a tmpfs over each of podman's directories
//!   in the runtime directory (`libpod`, `containers`, `crun`, `runc`, `netns`) and over
//!   /dev/shm (its lock table), made with the namespace and gone with it. A namespace that
//!   ends (--stop) is to podman what a reboot is: the next one starts with no `alive` file,
//!   so podman refreshes its containers' state instead of pointing into a mount namespace
//!   that is gone. Under a map in which root inside is not the caller (keep-id, subids) the
//!   whole runtime directory is a tmpfs of root's: podman refuses one another user owns.
//! - A map other than rootless podman's own gets a home of podman's own
//!   (`$XDG_DATA_HOME/become-root/NAME`, by default `~/.local/share/become-root/NAME`):
//!   HOME, XDG_CONFIG_HOME and XDG_DATA_HOME point there for what runs in the namespace, so
//!   its storage (and so its images and containers) is never the default map's, whose files
//!   are owned by other ids there. Under keep-id and subids its containers.conf chooses the
//!   cgroupfs manager, journald-free logs and events: root inside is a subordinate id
//!   outside, whom the user's systemd manager and journal do not know.
//! - The default map's namespace is plain podman's too: its pause process is named in
//!   podman's pause file, which every plain `podman` call joins; and where plain podman's own
//!   pause process runs, `become-root podman` joins it rather than make one beside it. Two
//!   namespaces over one storage would each reset, at their first call, the containers the
//!   other runs (podman's refresh after a reboot).
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::options::MapMode;

/// The name of the containers namespace (a session) of a map mode.
pub fn namespace_name(map: MapMode) -> &'static str {
    match map {
        MapMode::Auto | MapMode::Full => "podman",
        MapMode::KeepId => "podman-keep-id",
        MapMode::Single => "podman-single",
        MapMode::Subids => "podman-subids",
    }
}

/// podman's directories in the runtime directory: its static state (`libpod/tmp`, with the
/// `alive` file whose absence tells it that the machine rebooted), containers/storage's run
/// root, the OCI runtimes' state, and the network namespaces it bind-mounts.
const RUNTIME_DIRS: [&str; 5] = ["libpod", "containers", "crun", "runc", "netns"];

/// What a containers namespace is made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    pub name: &'static str,
    pub map: MapMode,
    /// The directories that get a tmpfs of their own in the namespace, with its mode.
    pub private: Vec<(PathBuf, u32)>,
    /// The directories to make first (as the caller, mode 0700), when missing: the tmpfs
    /// mount points in the runtime directory, and the parent of podman's own home.
    pub make: Vec<PathBuf>,
    /// podman's own home, for a map other than its own.
    pub home: Option<PathBuf>,
}

/// Where podman's state would be: `runtime`, the runtime directory (podman's is
/// `$XDG_RUNTIME_DIR`, else `/run/user/UID`), and `data_home` (`$XDG_DATA_HOME`, else
/// `~/.local/share`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Places {
    pub runtime: Option<PathBuf>,
    pub data_home: Option<PathBuf>,
}

impl Places {
    /// The caller's, from its environment (and /run/user/UID when XDG_RUNTIME_DIR is unset,
    /// as podman finds it).
    pub fn of_caller(uid: u32) -> Places {
        let absolute = |var: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
        };
        let runtime = absolute("XDG_RUNTIME_DIR").or_else(|| {
            let dir = PathBuf::from(format!("/run/user/{uid}"));
            dir.is_dir().then_some(dir)
        });
        let data_home =
            absolute("XDG_DATA_HOME").or_else(|| absolute("HOME").map(|h| h.join(".local/share")));
        Places { runtime, data_home }
    }
}

/// Whether root inside a namespace of `map` is the caller outside, as in rootless podman's
/// own namespace.
fn root_is_caller(map: MapMode) -> bool {
    !matches!(map, MapMode::KeepId | MapMode::Subids)
}

/// What the containers namespace of `map` is made with, for a caller whose places are
/// `places`.
pub fn setup(map: MapMode, places: &Places) -> Setup {
    let name = namespace_name(map);
    let mut private = Vec::new();
    let mut make = Vec::new();
    if let Some(runtime) = &places.runtime {
        if root_is_caller(map) {
            for dir in RUNTIME_DIRS {
                make.push(runtime.join(dir));
                private.push((runtime.join(dir), 0o700));
            }
        } else {
            private.push((runtime.clone(), 0o700));
        }
    }
    private.push((PathBuf::from("/dev/shm"), 0o1777));
    let home = match map {
        MapMode::Auto | MapMode::Full => None,
        _ => places.data_home.as_ref().map(|data| {
            make.push(data.join("become-root"));
            data.join("become-root").join(name)
        }),
    };
    Setup {
        name,
        map,
        private,
        make,
        home,
    }
}

/// podman's pause file: `RUNTIME/libpod/tmp/pause.pid`, which names the process whose user
/// and mount namespaces every plain `podman` call joins (podman's `rootless` package; the
/// same path in podman 4 and 5).
pub fn pause_file(places: &Places) -> Option<PathBuf> {
    Some(places.runtime.as_ref()?.join("libpod/tmp/pause.pid"))
}

/// Whether the containers namespace of `map` is one rootless podman's own could be: the
/// default map's, in which root inside is the caller and every subordinate id is mapped.
pub fn shared_with_podman(map: MapMode) -> bool {
    matches!(map, MapMode::Auto | MapMode::Full)
}

/// The pid in podman's pause file, when it names a live process of the caller's (`uid`) in
/// a user namespace other than the caller's own: plain podman's namespace, which a
/// `become-root podman` then joins rather than make one beside it (two namespaces over one
/// storage would each reset what the other runs).
pub fn podman_pause(file: &Path, uid: u32) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let status = std::fs::read_to_string(proc.join("status")).ok()?;
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name));
    let real_uid = field("Uid:")?
        .split_whitespace()
        .next()?
        .parse::<u32>()
        .ok()?;
    let zombie = field("State:").is_some_and(|s| s.trim_start().starts_with('Z'));
    let user_ns = std::fs::read_link(proc.join("ns/user")).ok()?;
    let own = std::fs::read_link("/proc/self/ns/user").ok()?;
    (real_uid == uid && !zombie && pid > 0 && user_ns != own).then_some(pid)
}

/// Name `pid` in podman's pause file, so that plain `podman` calls join the containers
/// namespace too (written whole: a temporary file renamed over it).
pub fn register(file: &Path, pid: i32) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = file.parent().unwrap_or(Path::new("/"));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(dir)?;
    let tmp = dir.join(format!(".pause.pid.become-root.{}", std::process::id()));
    std::fs::write(&tmp, pid.to_string())?;
    std::fs::rename(&tmp, file).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Remove podman's pause file if it still names `pid` (the namespace has ended): podman
/// refuses to start while it names a process that is gone and containers of its storage
/// are recorded as running.
pub fn unregister(file: &Path, pid: i32) {
    if std::fs::read_to_string(file).is_ok_and(|text| text.trim() == pid.to_string()) {
        let _ = std::fs::remove_file(file);
    }
}

/// The environment of what runs in a namespace whose podman has a home of its own.
pub fn home_env(home: &Path) -> Vec<(OsString, OsString)> {
    vec![
        ("HOME".into(), home.into()),
        ("XDG_CONFIG_HOME".into(), home.join(".config").into()),
        ("XDG_DATA_HOME".into(), home.join(".local/share").into()),
    ]
}

/// podman's containers.conf in its own home under a map in which root inside is not the
/// caller.
pub const CONTAINERS_CONF: &str = "\
# Written by become-root for podman in a containers namespace in which root is one of your
# subordinate ids outside (--map=keep-id or subids): your systemd user manager and journal do
# not know that id, so cgroups are podman's own (cgroupfs), and logs and events are files.
[containers]
log_driver = \"k8s-file\"

[engine]
cgroup_manager = \"cgroupfs\"
events_logger = \"file\"
";

/// Make podman's own home, as root inside the namespace of `map` (so that it is root's
/// there): the directory, and under a map in which root is not the caller, its
/// containers.conf. Nothing when it exists (the user may have changed it).
pub fn prepare_home(home: &Path, map: MapMode) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(home) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        other => other?,
    }
    if !root_is_caller(map) {
        let dir = home.join(".config/containers");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&dir)?;
        std::fs::write(dir.join("containers.conf"), CONTAINERS_CONF)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_per_map() {
        let rows = [
            (MapMode::Auto, "podman"),
            (MapMode::Full, "podman"),
            (MapMode::KeepId, "podman-keep-id"),
            (MapMode::Single, "podman-single"),
            (MapMode::Subids, "podman-subids"),
        ];
        for (map, name) in rows {
            assert_eq!(namespace_name(map), name, "{map:?}");
        }
    }

    #[test]
    fn what_each_namespace_is_made_with() {
        let places = Places {
            runtime: Some("/run/user/1000".into()),
            data_home: Some("/home/u/.local/share".into()),
        };
        let shm = (PathBuf::from("/dev/shm"), 0o1777);
        let own: Vec<(PathBuf, u32)> = RUNTIME_DIRS
            .iter()
            .map(|d| (Path::new("/run/user/1000").join(d), 0o700))
            .collect();
        let s = setup(MapMode::Auto, &places);
        assert_eq!(s.private, [own.clone(), vec![shm.clone()]].concat());
        assert_eq!(s.make.len(), RUNTIME_DIRS.len(), "{s:?}");
        assert_eq!(s.home, None, "the user's own storage");
        let s = setup(MapMode::KeepId, &places);
        assert_eq!(
            s.private,
            [(PathBuf::from("/run/user/1000"), 0o700), shm.clone()],
            "a runtime directory of root's"
        );
        assert_eq!(
            s.home.as_deref(),
            Some(Path::new("/home/u/.local/share/become-root/podman-keep-id"))
        );
        assert_eq!(s.make, [PathBuf::from("/home/u/.local/share/become-root")]);
        let s = setup(MapMode::Single, &places);
        assert_eq!(s.private, [own, vec![shm.clone()]].concat());
        assert!(s.home.is_some(), "storage of its own: {s:?}");
        let s = setup(MapMode::Full, &Places::default());
        assert_eq!(s.private, [shm], "no runtime directory known");
        assert!(s.make.is_empty());
    }

    #[test]
    fn podman_pause_file() {
        let dir = std::env::temp_dir().join(format!("become-root-pause-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let places = Places {
            runtime: Some(dir.clone()),
            data_home: None,
        };
        let file = pause_file(&places).unwrap();
        assert_eq!(file, dir.join("libpod/tmp/pause.pid"));
        let me = std::process::id() as i32;
        register(&file, me).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), me.to_string());
        let uid = nix::unistd::Uid::current().as_raw();
        assert_eq!(
            podman_pause(&file, uid),
            None,
            "in the caller's own user namespace"
        );
        unregister(&file, me + 1);
        assert!(file.exists(), "names another process: kept");
        unregister(&file, me);
        assert!(!file.exists());
        assert_eq!(podman_pause(&file, uid), None, "no file");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(shared_with_podman(MapMode::Auto) && !shared_with_podman(MapMode::KeepId));
    }

    #[test]
    fn a_home_of_its_own_is_made_once() {
        let dir = std::env::temp_dir().join(format!("become-root-home-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let home = dir.join("podman-keep-id");
        prepare_home(&home, MapMode::KeepId).unwrap();
        let conf = home.join(".config/containers/containers.conf");
        assert_eq!(std::fs::read_to_string(&conf).unwrap(), CONTAINERS_CONF);
        std::fs::write(&conf, "# mine\n").unwrap();
        prepare_home(&home, MapMode::KeepId).unwrap();
        assert_eq!(std::fs::read_to_string(&conf).unwrap(), "# mine\n", "kept");
        let single = dir.join("podman-single");
        prepare_home(&single, MapMode::Single).unwrap();
        assert!(single.is_dir() && !single.join(".config").exists());
        std::fs::remove_dir_all(&dir).unwrap();
        let env = home_env(Path::new("/h"));
        assert_eq!(env[1], ("XDG_CONFIG_HOME".into(), "/h/.config".into()));
    }
}
