//! `become-root --check`: can become-root work here, for this user, and if not, what fixes it.
//!
//! One line per item, `ok`, `warn` or `FAIL`, then what was found and, when it is not ok, the
//! fix. The verdicts come from trying where trying is cheap, not only from reading settings:
//! a forked child creates a user namespace, maps its own ids in it and mounts overlayfs on a
//! scratch tmpfs; another forked child gets the full mapping written by newuidmap and
//! newgidmap, exactly as a run would. The caller's own namespaces are never touched, the
//! scratch tmpfs lives only in the first child's private mount namespace and vanishes with it,
//! and both children are reaped (and die with become-root), so nothing is left behind.
//!
//! Exit status: [`EXIT_READY`] when a command could run with the `--map` given (with
//! `--map=auto` that may be only the caller's own ids, as 0), [`EXIT_NOT_READY`] when it could
//! not. `warn` never changes it: it marks an optional feature (networking, overlays) that is
//! unavailable. A `FAIL` about the full mapping changes it only under `--map=full`, because
//! `--map=auto` falls back to the single mapping.

use std::fmt;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::wait::waitpid;
use nix::unistd::{AccessFlags, Pid, access, getpid};

use crate::idmap::IdMap;
use crate::net::{self, Driver, NetError};
use crate::options::{MapMode, SubidSource};
use crate::subid::{self, SubRange};
use crate::sys::{self, Forked};
use crate::userns::{self, Caller, Mapping, UsernsError, Writer};

/// A command could run (see the module documentation).
pub const EXIT_READY: i32 = 0;
/// No command could run: no user namespace, or the mapping asked for fails.
pub const EXIT_NOT_READY: i32 = 1;

const FUSE: &str = "/dev/fuse";

/// How an item turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    /// An optional feature is unavailable, or something works but is worth fixing.
    Warn,
    /// What the item names does not work.
    Fail,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub level: Level,
    /// The thing checked: `newuidmap`, `/dev/net/tun`, ...
    pub what: String,
    /// What was found.
    pub found: String,
    /// How to fix it (never printed on an ok line).
    pub fix: Option<String>,
}

impl Item {
    fn ok(what: &str, found: impl Into<String>) -> Item {
        Item {
            level: Level::Ok,
            what: what.into(),
            found: found.into(),
            fix: None,
        }
    }

    fn warn(what: &str, found: impl Into<String>, fix: impl Into<Option<String>>) -> Item {
        Item {
            level: Level::Warn,
            what: what.into(),
            found: found.into(),
            fix: fix.into(),
        }
    }

    fn fail(what: &str, found: impl Into<String>, fix: impl Into<Option<String>>) -> Item {
        Item {
            level: Level::Fail,
            what: what.into(),
            found: found.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<4}  {}: {}",
            self.level.label(),
            self.what,
            self.found
        )?;
        match &self.fix {
            Some(fix) if self.level != Level::Ok => write!(f, "; fix: {fix}"),
            _ => Ok(()),
        }
    }
}

/// The whole report and its verdict.
#[derive(Debug, Default)]
pub struct Report {
    pub items: Vec<Item>,
    /// Whether a command could run (the exit status).
    pub ready: bool,
}

impl Report {
    pub fn exit_status(&self) -> i32 {
        if self.ready {
            EXIT_READY
        } else {
            EXIT_NOT_READY
        }
    }
}

/// What `--check` is asked about: the mapping a run would use.
#[derive(Debug, Clone, Copy)]
pub struct Asked {
    pub map: MapMode,
    pub subid_source: SubidSource,
}

/// `become-root --check`: print the report on stdout and return the exit status.
pub fn run(asked: Asked) -> i32 {
    let report = report(asked);
    let mut out = std::io::stdout().lock();
    for item in &report.items {
        let _ = writeln!(out, "{item}");
    }
    let _ = out.flush();
    report.exit_status()
}

/// Check everything, in the order the report prints it: the user namespace and the mapping
/// (the core), then filesystems, then networking.
pub fn report(cli: Asked) -> Report {
    let mut items = Vec::new();
    let mut ready = true;
    if let Err(e) = userns::refuse_privileged() {
        items.push(Item::fail("become-root", e.to_string(), None));
        ready = false;
    }
    let caller = match userns::caller() {
        Ok(caller) => caller,
        Err(e) => {
            let hint = e.hint();
            items.push(Item::fail("caller", e.to_string(), hint));
            return Report {
                items,
                ready: false,
            };
        }
    };

    // The namespace probe runs while the files are read.
    let probe = NamespaceProbe::start(&caller);
    let mut static_items = Vec::new();
    static_items.extend(helper_items(&caller));
    static_items.push(no_new_privs_item(&caller));
    static_items.extend(subid_items(cli.subid_source, &caller));
    let probed = probe.finish();

    items.extend(kernel_items());
    let userns_item = userns_item(&probed);
    let userns_ok = userns_item.level == Level::Ok;
    ready &= userns_ok;
    items.push(userns_item);
    items.extend(static_items);
    let mapping = mapping_item(cli, &caller, userns_ok);
    ready &= mapping.level != Level::Fail;
    items.push(mapping);

    items.push(overlay_item(&probed));
    items.push(program_item(
        "fuse-overlayfs",
        "fuse-overlayfs",
        "--overlay needs it when the kernel cannot mount overlayfs in a user namespace",
    ));
    items.push(device_item(
        FUSE,
        access(FUSE, AccessFlags::R_OK | AccessFlags::W_OK),
        "fuse-overlayfs needs it",
    ));
    items.push(program_item(
        Driver::Slirp4netns.program(),
        Driver::Slirp4netns.package(),
        "--net=slirp4netns needs it",
    ));
    items.push(program_item(
        Driver::Pasta.program(),
        Driver::Pasta.package(),
        "--net=pasta needs it, and --net=auto prefers it",
    ));
    items.push(tun_item(net::check_tun()));
    Report { items, ready }
}

// ---- the kernel --------------------------------------------------------------------------

/// The kernel's version against the oldest supported, then each newer facility become-root
/// uses, probed (overlayfs in a user namespace has its own line, from the namespace probe).
fn kernel_items() -> Vec<Item> {
    use crate::kernel::{FACILITIES, Fallback, MINIMUM, probe, running};
    let (release, version) = running();
    let mut items = vec![match version {
        Some(v) if v >= MINIMUM => Item::ok(
            "kernel",
            format!("Linux {release} (become-root supports {MINIMUM} and later)"),
        ),
        Some(_) => Item::warn(
            "kernel",
            format!("Linux {release} is older than {MINIMUM}, the oldest become-root supports"),
            format!("a kernel of {MINIMUM} or later (what fails says which version it needs)"),
        ),
        None => Item::warn(
            "kernel",
            format!("cannot read the version of Linux {release:?}"),
            None,
        ),
    }];
    for facility in FACILITIES {
        let Some(present) = probe(facility) else {
            continue;
        };
        let what = facility.name();
        items.push(if present {
            Item::ok(what, format!("available (Linux {})", facility.since()))
        } else {
            match facility.without() {
                Fallback::Instead(instead) => Item::warn(
                    what,
                    format!("not in this kernel (Linux {}); {instead}", facility.since()),
                    format!("Linux {} or later", facility.since()),
                ),
                Fallback::Unavailable(features) => Item::warn(
                    what,
                    format!(
                        "not in this kernel (Linux {}): {features} cannot work",
                        facility.since()
                    ),
                    format!("Linux {} or later", facility.since()),
                ),
            }
        });
    }
    items
}

// ---- the namespace probe ---------------------------------------------------------------

/// The steps of the namespace probe, in order. The first that fails ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// unshare(CLONE_NEWUSER).
    Unshare = 1,
    /// Write the single self map (uid_map, setgroups deny, gid_map).
    Map,
    /// unshare(CLONE_NEWNS) inside.
    MountNs,
    /// Make / recursively private.
    Private,
    /// Mount the scratch tmpfs.
    Tmpfs,
    /// Make the overlay's directories on it.
    Scratch,
    /// Mount overlayfs with userxattr.
    Overlay,
}

const STEPS: [Step; 7] = [
    Step::Unshare,
    Step::Map,
    Step::MountNs,
    Step::Private,
    Step::Tmpfs,
    Step::Scratch,
    Step::Overlay,
];

/// What the probe child reports: every step worked, or the first failure.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Probed {
    Done,
    Failed(Step, Errno),
    /// The probe could not be run, or its child ended without a word.
    NotRun(String),
}

/// The message on the wire: one byte (0 for done, else the failed step) and the errno.
fn encode(result: Result<(), (Step, Errno)>) -> [u8; 5] {
    let (step, errno) = match result {
        Ok(()) => (0u8, 0i32),
        Err((step, errno)) => (step as u8, errno as i32),
    };
    let mut bytes = [0u8; 5];
    bytes[0] = step;
    bytes[1..].copy_from_slice(&errno.to_le_bytes());
    bytes
}

fn decode(bytes: &[u8]) -> Probed {
    let Ok(bytes) = <[u8; 5]>::try_from(bytes) else {
        return Probed::NotRun("the probe process ended without a report".into());
    };
    let errno = Errno::from_raw(i32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]));
    match bytes[0] {
        0 => Probed::Done,
        n => match STEPS.iter().find(|s| **s as u8 == n) {
            Some(step) => Probed::Failed(*step, errno),
            None => Probed::NotRun(format!("the probe process sent an unknown step {n}")),
        },
    }
}

/// A forked child trying a user namespace with a single self map, then overlayfs in it.
struct NamespaceProbe {
    child: Option<(Pid, UnixStream)>,
    error: Option<String>,
}

impl NamespaceProbe {
    fn start(caller: &Caller) -> NamespaceProbe {
        let (uid, gid) = (caller.uid, caller.gid);
        // Any directory will do, since it is covered only inside the probe's namespace.
        let scratch = Some(std::env::temp_dir())
            .filter(|d| d.is_dir())
            .unwrap_or_else(|| "/tmp".into());
        let not_run = |why: String| NamespaceProbe {
            child: None,
            error: Some(why),
        };
        let (ours, theirs) = match UnixStream::pair() {
            Ok(pair) => pair,
            Err(e) => return not_run(format!("cannot create a socket pair: {e}")),
        };
        match sys::fork_process() {
            Err(errno) => not_run(format!("cannot fork: {errno}")),
            Ok(Forked::Child) => {
                drop(ours);
                probe_child(theirs.into(), uid, gid, &scratch)
            }
            Ok(Forked::Parent(pid)) => {
                drop(theirs);
                NamespaceProbe {
                    child: Some((pid, ours)),
                    error: None,
                }
            }
        }
    }

    fn finish(self) -> Probed {
        let Some((pid, mut stream)) = self.child else {
            return Probed::NotRun(self.error.unwrap_or_default());
        };
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        reap(pid);
        decode(&bytes)
    }
}

/// Wait for a probe child, retrying when a signal interrupts.
fn reap(pid: Pid) {
    while waitpid(pid, None) == Err(Errno::EINTR) {}
}

/// The probe child: run the steps, report, leave.
fn probe_child(report: OwnedFd, uid: u32, gid: u32, scratch: &Path) -> ! {
    // Hold no descriptor of the caller's (a pipe someone waits on, a jobserver) meanwhile.
    sys::keep_only_fd(report.as_raw_fd());
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let message = encode(probe_steps(uid, gid, scratch));
    let _ = std::fs::File::from(report).write_all(&message);
    sys::exit_now(0)
}

fn probe_steps(uid: u32, gid: u32, scratch: &Path) -> Result<(), (Step, Errno)> {
    unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| (Step::Unshare, e))?;
    // The owner of a user namespace may map its own uid and gid into it without privilege
    // (once setgroups is denied); this is what --map=single does, and what AppArmor's
    // restriction of unprivileged user namespaces breaks.
    let own = Mapping {
        uid: IdMap::single(uid),
        gid: IdMap::single(gid),
        writer: Writer::SelfMap,
    };
    userns::write_maps(getpid(), &own).map_err(|e| (Step::Map, errno_of(&e)))?;
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| (Step::MountNs, e))?;
    // A mount namespace made by an unprivileged user already receives no propagation back
    // to the host's shared mounts (mount_namespaces(7)); private makes sure of it.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| (Step::Private, e))?;
    // The scratch tmpfs hides the temporary directory in this namespace only, and
    // disappears with it: nothing is created on any disk.
    mount(
        Some("tmpfs"),
        scratch,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0700"),
    )
    .map_err(|e| (Step::Tmpfs, e))?;
    nix::unistd::chdir(scratch).map_err(|e| (Step::Scratch, e))?;
    for dir in ["lower", "upper", "work", "merged"] {
        nix::unistd::mkdir(dir, nix::sys::stat::Mode::from_bits_truncate(0o700))
            .map_err(|e| (Step::Scratch, e))?;
    }
    // Relative paths: the temporary directory's name may hold a ',' or ':' that the option
    // string cannot carry. userxattr (Linux 5.11) is what overlayfs needs in a user namespace.
    mount(
        Some("overlay"),
        "merged",
        Some("overlay"),
        MsFlags::empty(),
        Some("lowerdir=lower,upperdir=upper,workdir=work,userxattr"),
    )
    .map_err(|e| (Step::Overlay, e))
}

fn errno_of(e: &UsernsError) -> Errno {
    match e {
        UsernsError::WriteMap { errno, .. } | UsernsError::Sys { errno, .. } => *errno,
        _ => Errno::EIO,
    }
}

/// The user namespace line: the probe got a namespace and mapped the caller's ids in it.
fn userns_item(probed: &Probed) -> Item {
    const WHAT: &str = "user namespaces";
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
    };
    match probed {
        Probed::Done
        | Probed::Failed(
            Step::MountNs | Step::Private | Step::Tmpfs | Step::Scratch | Step::Overlay,
            _,
        ) => {
            let mut settings = vec![format!(
                "user.max_user_namespaces = {}",
                read("/proc/sys/user/max_user_namespaces").unwrap_or_else(|| "?".into())
            )];
            if let Some(v) = read("/proc/sys/kernel/unprivileged_userns_clone") {
                settings.push(format!("kernel.unprivileged_userns_clone = {v}"));
            }
            if let Some(v) = read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") {
                settings.push(format!(
                    "kernel.apparmor_restrict_unprivileged_userns = {v}"
                ));
            }
            Item::ok(
                WHAT,
                format!(
                    "a test namespace was created and your ids mapped in it ({})",
                    settings.join(", ")
                ),
            )
        }
        Probed::Failed(Step::Unshare, errno) => {
            let hint = match userns::diagnose_unshare(*errno) {
                UsernsError::Unshare { hint, .. } => hint,
                _ => None,
            };
            Item::fail(WHAT, format!("cannot create one: {errno}"), hint)
        }
        Probed::Failed(_, errno) => {
            let fix = if userns::apparmor_restricts() {
                userns::apparmor_hint()
            } else {
                "a security module or seccomp filter refuses it; see user_namespaces(7)".into()
            };
            Item::fail(
                WHAT,
                format!("created one, but could not map your own ids in it: {errno}"),
                fix,
            )
        }
        Probed::NotRun(why) => Item::fail(WHAT, format!("could not test: {why}"), None),
    }
}

/// The overlayfs line, from the same probe.
fn overlay_item(probed: &Probed) -> Item {
    const WHAT: &str = "overlayfs";
    let fuse = "--overlay uses fuse-overlayfs instead (Debian/Ubuntu: apt install \
                fuse-overlayfs)";
    match probed {
        Probed::Done => Item::ok(
            WHAT,
            "the kernel mounts overlayfs in a user namespace (with userxattr)",
        ),
        Probed::Failed(Step::Overlay, Errno::ENODEV) => Item::warn(
            WHAT,
            "the kernel has no overlay filesystem",
            format!("as root: modprobe overlay; or {fuse}"),
        ),
        Probed::Failed(Step::Overlay, errno) => Item::warn(
            WHAT,
            format!("the kernel refuses overlayfs in a user namespace: {errno}"),
            format!("Linux 5.11 or later mounts it there; until then {fuse}"),
        ),
        Probed::Failed(step, errno) => {
            let what = match step {
                Step::Unshare | Step::Map => "no user namespace",
                Step::MountNs => "cannot create a mount namespace",
                Step::Private => "cannot make / private",
                Step::Tmpfs => "cannot mount a tmpfs",
                Step::Scratch | Step::Overlay => "cannot make directories on a tmpfs",
            };
            Item::warn(WHAT, format!("not tested: {what}: {errno}"), None)
        }
        Probed::NotRun(why) => Item::warn(WHAT, format!("not tested: {why}"), None),
    }
}

// ---- the mapping ---------------------------------------------------------------------

/// newuidmap and newgidmap: present, privileged, not on a nosuid mount.
fn helper_items(caller: &Caller) -> Vec<Item> {
    [("NEWUIDMAP", "newuidmap"), ("NEWGIDMAP", "newgidmap")]
        .into_iter()
        .map(|(env, name)| {
            if caller.uid == 0 {
                return Item::ok(
                    name,
                    "not needed: as root, become-root writes the maps itself",
                );
            }
            match userns::find_helper(env, name) {
                Ok(path) => Item::ok(name, describe_helper(&path, env)),
                Err(e) => {
                    let hint = e.hint();
                    Item::fail(name, e.to_string(), hint)
                }
            }
        })
        .collect()
}

fn describe_helper(path: &Path, env: &str) -> String {
    let setuid_root =
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o4000 != 0 && m.uid() == 0);
    let how = if setuid_root {
        "set-user-ID root"
    } else {
        "with file capabilities"
    };
    let from = if std::env::var_os(env).is_some_and(|v| !v.is_empty()) {
        format!(" (from {env})")
    } else {
        String::new()
    };
    format!("{}, {how}{from}", path.display())
}

fn no_new_privs_item(caller: &Caller) -> Item {
    const WHAT: &str = "no_new_privs";
    match nix::sys::prctl::get_no_new_privs() {
        Ok(false) => Item::ok(WHAT, "not set"),
        Ok(true) if caller.uid == 0 => Item::ok(WHAT, "set, which does not matter to root"),
        Ok(true) => {
            let e = UsernsError::NoNewPrivs;
            let hint = e.hint();
            Item::fail(WHAT, e.to_string(), hint)
        }
        Err(errno) => Item::warn(WHAT, format!("cannot read it: {errno}"), None),
    }
}

/// The caller's subordinate ranges in /etc/subuid and /etc/subgid (or from getsubids), and
/// whether the two grant as many ids.
fn subid_items(source: SubidSource, caller: &Caller) -> Vec<Item> {
    if caller.uid == 0 {
        return ["subuid", "subgid"]
            .into_iter()
            .map(|what| Item::ok(what, "not needed: root maps every id"))
            .collect();
    }
    let getsubids = match source {
        SubidSource::Files => false,
        SubidSource::Getsubids => true,
        SubidSource::Auto => userns::nsswitch_has_subid(),
    };
    let name = caller.display_name();
    let mut items = Vec::new();
    let mut totals = Vec::new();
    for (what, path) in [("subuid", userns::SUBUID), ("subgid", userns::SUBGID)] {
        let found = if getsubids {
            match userns::getsubids(&name, what == "subgid") {
                Ok(ranges) => Found::Ranges(ranges, Vec::new()),
                Err(e) => Found::Unreadable(e.to_string()),
            }
        } else {
            match std::fs::read(path) {
                Ok(text) => {
                    let parsed = subid::caller_ranges(&text, Path::new(path), &name, caller.uid);
                    let errors = parsed.errors.iter().map(ToString::to_string).collect();
                    Found::Ranges(parsed.ranges, errors)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Found::Ranges(Vec::new(), Vec::new())
                }
                Err(e) => Found::Unreadable(format!("reading {path}: {e}")),
            }
        };
        let origin = if getsubids { "getsubids" } else { path };
        let (item, total) = subid_item(what, origin, &name, found);
        items.push(item);
        totals.push(total);
    }
    if let [Some(uids), Some(gids)] = totals[..] {
        items.push(consistency_item(uids, gids));
    }
    items
}

/// What was found for the caller in one subid source.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    /// Valid ranges and the caller's malformed lines (as `path:line: what`).
    Ranges(Vec<SubRange>, Vec<String>),
    Unreadable(String),
}

/// The line for one source, and the number of ids it grants (None when it grants none).
fn subid_item(what: &str, origin: &str, user: &str, found: Found) -> (Item, Option<u64>) {
    let correct = "ask an administrator to correct the line (newuidmap ignores it as it is)";
    let (ranges, errors) = match found {
        Found::Unreadable(why) => {
            let fix = "check that the file is readable (it is 0644 on most systems), or for \
                       getsubids /etc/nsswitch.conf's subid line";
            return (Item::fail(what, why, fix.to_string()), None);
        }
        Found::Ranges(ranges, errors) => (ranges, errors),
    };
    if ranges.is_empty() {
        let item = if errors.is_empty() {
            let e = UsernsError::NoSubordinateIds {
                user: user.into(),
                path: origin.into(),
            };
            let hint = e.hint();
            Item::fail(what, e.to_string(), hint)
        } else {
            Item::fail(what, errors.join("; "), correct.to_string())
        };
        return (item, None);
    }
    let total: u64 = ranges.iter().map(|r| u64::from(r.count)).sum();
    let spans: Vec<String> = ranges
        .iter()
        .map(|r| {
            format!(
                "{}-{}",
                r.start,
                u64::from(r.start) + u64::from(r.count) - 1
            )
        })
        .collect();
    let found = format!("{total} ids for {user} in {origin}: {}", spans.join(", "));
    let item = if errors.is_empty() {
        Item::ok(what, found)
    } else {
        Item::warn(
            what,
            format!("{found}; ignoring {}, as newuidmap does", errors.join("; ")),
            correct.to_string(),
        )
    };
    (item, Some(total))
}

fn consistency_item(uids: u64, gids: u64) -> Item {
    const WHAT: &str = "subuid/subgid";
    if uids == gids {
        return Item::ok(WHAT, format!("both grant {uids} ids"));
    }
    let (more, fewer) = if uids > gids {
        ("uid", "gid")
    } else {
        ("gid", "uid")
    };
    Item::warn(
        WHAT,
        format!(
            "{uids} subordinate uids but {gids} gids: inside, {more}s above {} have no {fewer} \
             of the same number",
            uids.min(gids)
        ),
        "ask an administrator to allocate the same number of ids in /etc/subuid and \
         /etc/subgid"
            .to_string(),
    )
}

/// The mapping a run would get with `--map` and `--subid-source` as given, tried for real
/// when it takes newuidmap/newgidmap or a privileged writer.
fn mapping_item(cli: Asked, caller: &Caller, userns_ok: bool) -> Item {
    const WHAT: &str = "id mapping";
    if !userns_ok {
        return Item::fail(
            WHAT,
            "not tried: no user namespace can be made",
            "see the user namespaces line".to_string(),
        );
    }
    let single = format!(
        "only uid {} and gid {} (as 0), nothing else",
        caller.uid, caller.gid
    );
    if cli.map == MapMode::Single {
        return Item::ok(WHAT, format!("{single} (--map=single)"));
    }
    let mut warnings = Vec::new();
    let mapping = match userns::plan_mapping(cli.map, cli.subid_source, caller, &mut warnings) {
        Ok(mapping) => mapping,
        Err(e) => {
            let hint = e.hint();
            return Item::fail(WHAT, format!("--map=full: {e}"), hint);
        }
    };
    if mapping.writer == Writer::SelfMap {
        // --map=auto fell back; --map=full says why.
        let why =
            match userns::plan_mapping(MapMode::Full, cli.subid_source, caller, &mut Vec::new()) {
                Err(e) => e.to_string(),
                Ok(_) => "see the lines above".into(),
            };
        return Item::warn(
            WHAT,
            format!("{single}: the full mapping is not possible ({why})"),
            "fix the FAIL lines above; until then become-root maps only your own ids".to_string(),
        );
    }
    match try_mapping(&mapping) {
        Ok(()) => {
            let by = match mapping.writer {
                Writer::Helpers { .. } => "by newuidmap and newgidmap",
                _ => "directly, as root",
            };
            Item::ok(
                WHAT,
                format!(
                    "{} uids and {} gids mapped in a test namespace, {by}",
                    mapping.uid.len(),
                    mapping.gid.len()
                ),
            )
        }
        Err(e) => {
            let mut hint = e.hint();
            if userns::apparmor_restricts() {
                hint = Some(userns::apparmor_hint());
            }
            Item::fail(WHAT, e.to_string(), hint)
        }
    }
}

/// Have `mapping` written to a fresh user namespace held by a forked child, the way a run
/// writes it.
fn try_mapping(mapping: &Mapping) -> Result<(), UsernsError> {
    let sys_err = |what: &str, errno| UsernsError::Sys {
        what: what.into(),
        errno,
    };
    let (mut ours, theirs) = UnixStream::pair()
        .map_err(|e| sys_err("create a socket pair", crate::sys::io_errno(&e)))?;
    let pid = match sys::fork_process().map_err(|e| sys_err("fork", e))? {
        Forked::Child => {
            drop(ours);
            mapping_child(theirs.into())
        }
        Forked::Parent(pid) => pid,
    };
    drop(theirs);
    let mut word = [0u8; 4];
    let result = match ours.read_exact(&mut word) {
        Ok(()) => match i32::from_le_bytes(word) {
            0 => userns::write_maps(pid, mapping),
            errno => Err(userns::diagnose_unshare(Errno::from_raw(errno))),
        },
        Err(e) => Err(sys_err(
            "hear from the test namespace",
            crate::sys::io_errno(&e),
        )),
    };
    // End of file on the socket lets the child go.
    drop(ours);
    reap(pid);
    result
}

/// The child holding the test namespace: unshare, say how it went, wait to be let go.
fn mapping_child(stream: OwnedFd) -> ! {
    sys::keep_only_fd(stream.as_raw_fd());
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let errno = match unshare(CloneFlags::CLONE_NEWUSER) {
        Ok(()) => 0,
        Err(errno) => errno as i32,
    };
    let mut stream = UnixStream::from(stream);
    let _ = stream.write_all(&errno.to_le_bytes());
    let _ = stream.read_to_end(&mut Vec::new());
    sys::exit_now(0)
}

// ---- optional features ---------------------------------------------------------------

fn program_item(program: &str, package: &str, needed_by: &str) -> Item {
    match crate::sys::find_on_path(program) {
        Some(path) => Item::ok(program, path.display().to_string()),
        None => Item::warn(
            program,
            "not found on PATH",
            format!("install it (Debian/Ubuntu: apt install {package}); {needed_by}"),
        ),
    }
}

fn device_item(device: &str, access: nix::Result<()>, needed_by: &str) -> Item {
    match access {
        Ok(()) => Item::ok(device, "readable and writable"),
        Err(Errno::ENOENT) => Item::warn(
            device,
            "does not exist",
            format!("as root: modprobe fuse; {needed_by}"),
        ),
        Err(errno) => Item::warn(
            device,
            format!("not readable and writable by you: {errno}"),
            format!("as root: chmod 0666 {device} (its usual mode); {needed_by}"),
        ),
    }
}

fn tun_item(result: Result<(), NetError>) -> Item {
    match result {
        Ok(()) => Item::ok(net::TUN, "readable and writable"),
        Err(e) => {
            let found = match &e {
                NetError::Device { why, .. } => why.clone(),
                other => other.to_string(),
            };
            let fix = e
                .hint()
                .map(|h| format!("{h}; slirp4netns and pasta need it"));
            Item::warn(net::TUN, found, fix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_show_level_what_found_and_fix_unless_ok() {
        let rows = [
            (
                Item::ok("pasta", "/usr/bin/pasta"),
                "ok    pasta: /usr/bin/pasta",
            ),
            (
                Item {
                    fix: Some("never shown".into()),
                    ..Item::ok("pasta", "/usr/bin/pasta")
                },
                "ok    pasta: /usr/bin/pasta",
            ),
            (
                Item::warn(
                    "pasta",
                    "not found on PATH",
                    "apt install passt".to_string(),
                ),
                "warn  pasta: not found on PATH; fix: apt install passt",
            ),
            (
                Item::fail("newuidmap", "x: not found", None),
                "FAIL  newuidmap: x: not found",
            ),
        ];
        for (item, want) in rows {
            assert_eq!(item.to_string(), want);
        }
    }

    #[test]
    fn probe_reports_survive_the_wire() {
        assert_eq!(decode(&encode(Ok(()))), Probed::Done);
        for step in STEPS {
            assert_eq!(
                decode(&encode(Err((step, Errno::EPERM)))),
                Probed::Failed(step, Errno::EPERM)
            );
        }
        assert!(matches!(decode(b""), Probed::NotRun(_)));
        assert!(matches!(decode(&[9, 0, 0, 0, 0]), Probed::NotRun(_)));
    }

    #[test]
    fn subid_lines() {
        let range = |start, count| SubRange { start, count };
        let rows: [(Found, Level, Option<u64>, &str); 5] = [
            (
                Found::Ranges(vec![range(100000, 65536)], vec![]),
                Level::Ok,
                Some(65536),
                "65536 ids for u in /etc/subuid: 100000-165535",
            ),
            (
                Found::Ranges(vec![range(200000, 1000), range(300000, 5000)], vec![]),
                Level::Ok,
                Some(6000),
                "6000 ids for u in /etc/subuid: 200000-200999, 300000-304999",
            ),
            (
                Found::Ranges(
                    vec![range(100000, 65536)],
                    vec!["/etc/subuid:2: count is 0".into()],
                ),
                Level::Warn,
                Some(65536),
                "ignoring /etc/subuid:2: count is 0, as newuidmap does",
            ),
            (
                Found::Ranges(vec![], vec!["/etc/subuid:2: count is 0".into()]),
                Level::Fail,
                None,
                "/etc/subuid:2: count is 0",
            ),
            (
                Found::Ranges(vec![], vec![]),
                Level::Fail,
                None,
                "no entry for u in /etc/subuid",
            ),
        ];
        for (found, level, total, text) in rows {
            let (item, got) = subid_item("subuid", "/etc/subuid", "u", found.clone());
            assert_eq!((item.level, got), (level, total), "{found:?}");
            assert!(item.found.contains(text), "{item}");
            assert_eq!(item.fix.is_some(), level != Level::Ok, "{item}");
        }
    }

    #[test]
    fn unequal_subid_totals_warn() {
        assert_eq!(consistency_item(65536, 65536).level, Level::Ok);
        let item = consistency_item(65536, 1000);
        assert_eq!(item.level, Level::Warn);
        assert!(item.found.contains("uids above 1000 have no gid"), "{item}");
        let item = consistency_item(10, 20);
        assert!(item.found.contains("gids above 10 have no uid"), "{item}");
    }

    #[test]
    fn devices_and_programs() {
        assert_eq!(device_item(FUSE, Ok(()), "x").level, Level::Ok);
        let item = device_item(FUSE, Err(Errno::EACCES), "fuse-overlayfs needs it");
        assert_eq!(item.level, Level::Warn);
        assert!(item.fix.unwrap().contains("chmod 0666 /dev/fuse"));
        let item = program_item("no-such-program-here", "some-package", "x");
        assert_eq!(item.level, Level::Warn);
        assert!(item.fix.unwrap().contains("apt install some-package"));
    }
}
