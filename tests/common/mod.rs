//! The hermetic harness of DESIGN.md: tests run as root, become-root is for users who are not.
//!
//! Each [`World`] is a temporary directory with test copies of passwd, group, subuid and
//! subgid. A run enters a private mount namespace (`unshare -m --propagation private`), lays
//! a throwaway overlay over /etc holding those copies, drops to the test user with
//! `setpriv --reuid --regid --clear-groups` (or with the supplementary groups a test gives),
//! and runs the command there. newuidmap reads the test files, so every subid case can be
//! tested; nothing on the machine changes (the overlay and the namespace vanish with the run).
//!
//! Every World has a test uid and subordinate ranges of its own ([`Slot`]), unique among all
//! the Worlds alive on the machine, whichever process made them: cargo test runs the tests of a
//! file as threads of one process, nextest runs each test in a process of its own, and other
//! checkouts may be testing at the same time. A test that looks for processes left behind
//! therefore sees only its own.
//!
//! A test says what it needs ([`Need`]) where it is registered ([`tests!`]). The test binary
//! decides once, when it starts, what this machine lacks: a test that cannot run here is
//! reported by the runner as ignored, its reason shown as the test's kind and printed once to
//! stderr, unless `BECOME_ROOT_MUST_WORK=1`, which makes it run and fail with that reason.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod executables;
// (Each test binary uses some of them.)
#[allow(unused_imports)]
pub use executables::{chmod, copy_executable, write_executable};

pub const BIN: &str = env!("CARGO_BIN_EXE_become-root");

/// How long one run may take before the harness kills it (and the test fails).
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// How long a readiness wait or a wait for processes to go may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn must_work() -> bool {
    std::env::var_os("BECOME_ROOT_MUST_WORK").is_some_and(|v| v == "1")
}

// ---- what a test needs, decided once per test binary ---------------------------------------

/// Something a test needs from the machine.
#[derive(Clone, Copy, Debug)]
pub enum Need {
    /// Root: the test makes namespaces, or files owned by other users, itself.
    Root,
    /// A private mount namespace: root, unshare, and a mount in a new namespace succeeds.
    MountNs,
    /// The hermetic harness ([`World`]): a private mount namespace, setpriv, newuidmap and
    /// newgidmap.
    Harness,
    /// A program on PATH (or in /usr/sbin, /sbin, /usr/bin), as [`which`] finds it.
    Tool(&'static str),
    /// A cgroup2 hierarchy where root may make cgroups ([`World::delegate_cgroup`]).
    Cgroup2,
    /// An environment variable naming a file: an input made outside the suite (the Debian
    /// image of tests/vm/build-bootimage, which .ci/run builds), how to make it in the reason.
    File(&'static str, &'static str),
}

/// Why a [`Need`] is not met here: a short form for the test's kind, and the whole reason.
#[derive(Clone, Debug)]
pub struct Unmet {
    pub short: String,
    pub why: String,
}

impl Need {
    /// None when the need is met on this machine, else why not.
    pub fn unmet(self) -> Option<Unmet> {
        let not_root = |why: &str| {
            (!is_root()).then(|| Unmet {
                short: "needs root".into(),
                why: format!("not root: {why}"),
            })
        };
        match self {
            Need::Root => not_root("this test makes namespaces, or files of other users, itself"),
            Need::MountNs => not_root("this test mounts in a mount namespace of its own")
                .or_else(|| mount_ns_unmet().clone()),
            Need::Harness => not_root(
                "the hermetic harness (tests/common) builds a mount namespace and a test user",
            )
            .or_else(|| harness_unmet().clone()),
            Need::Tool(tool) => tool_unmet(tool),
            Need::File(var, how) => match std::env::var_os(var) {
                Some(path) if Path::new(&path).is_file() => None,
                _ => Some(Unmet {
                    short: format!("needs {var}"),
                    why: format!("{var} names no file: {how}"),
                }),
            },
            Need::Cgroup2 => not_root("this test makes a cgroup and delegates it to its user")
                .or_else(|| {
                    cgroup2_root().is_none().then(|| Unmet {
                        short: "needs cgroup2".into(),
                        why: "no cgroup2 file system is mounted".into(),
                    })
                }),
        }
    }
}

/// Where this machine mounts its cgroup2 hierarchy (its root: / in the mount's root field).
pub fn cgroup2_root() -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let fields: Vec<&str> = before.split(' ').collect();
        let at = fields.get(4)?;
        (after.starts_with("cgroup2 ") && fields.get(3) == Some(&"/")).then(|| PathBuf::from(at))
    })
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// The Debian package of each program the tests use, for the reason a test is skipped.
fn package_of(tool: &str) -> &'static str {
    match tool {
        "unshare" | "setpriv" => "util-linux",
        "newuidmap" | "newgidmap" | "getsubids" => "uidmap",
        "pasta" => "passt",
        "ip" => "iproute2",
        "script" => "bsdutils",
        "busybox" => "busybox-static",
        "setcap" => "libcap2-bin",
        "slirp4netns" => "slirp4netns",
        "fuse-overlayfs" => "fuse-overlayfs",
        "python3" => "python3",
        "ps" | "pkill" => "procps",
        "prlimit" => "util-linux",
        "make" => "make",
        "podman" => "podman",
        "buildah" => "buildah",
        "crun" => "crun",
        "catatonit" => "catatonit",
        "cc" => "gcc",
        _ => "the package that has it",
    }
}

fn tool_unmet(tool: &str) -> Option<Unmet> {
    which(tool).is_none().then(|| Unmet {
        short: format!("needs {tool}"),
        why: format!(
            "{tool} is not installed (Debian: {}; .ci/run installs it)",
            package_of(tool)
        ),
    })
}

/// (As root) unshare, and an actual mount in a new private mount namespace: root without
/// CAP_SYS_ADMIN (a container's) cannot build the world either.
fn mount_ns_unmet() -> &'static Option<Unmet> {
    static RESULT: OnceLock<Option<Unmet>> = OnceLock::new();
    RESULT.get_or_init(|| {
        if let Some(unmet) = tool_unmet("unshare") {
            return Some(unmet);
        }
        // A tmpfs over /tmp, in a namespace that dies with the command: nothing outside sees it.
        let probe = Command::new("unshare")
            .args(["-m", "--propagation", "private", "--"])
            .args(["mount", "-t", "tmpfs", "become-root-probe", "/tmp"])
            .stdin(Stdio::null())
            .output();
        match probe {
            Ok(out) if out.status.success() => None,
            Ok(out) => Some(Unmet {
                short: "no mount namespace".into(),
                why: format!(
                    "cannot mount in a private mount namespace here: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            }),
            Err(e) => Some(Unmet {
                short: "no mount namespace".into(),
                why: format!("cannot run unshare: {e}"),
            }),
        }
    })
}

fn harness_unmet() -> &'static Option<Unmet> {
    static RESULT: OnceLock<Option<Unmet>> = OnceLock::new();
    RESULT.get_or_init(|| {
        mount_ns_unmet().clone().or_else(|| {
            ["setpriv", "newuidmap", "newgidmap"]
                .into_iter()
                .find_map(tool_unmet)
        })
    })
}

/// One registered test: its name, what it needs, and its body.
pub type Case = (&'static str, &'static [Need], fn());

/// The `main` of a test binary (see [`tests!`]): each case becomes a libtest-mimic trial,
/// ignored with its reason when a need is unmet here, or failing with it under
/// `BECOME_ROOT_MUST_WORK=1`.
pub fn run_tests(binary: &str, cases: &[Case]) -> std::process::ExitCode {
    let trials = cases
        .iter()
        .map(|&(name, needs, test)| {
            trial(name, needs, move || {
                test();
                Ok(())
            })
        })
        .collect();
    run_trials(binary, trials)
}

/// The trial of a test that needs `needs`: ignored with its reason when a need is unmet here
/// (as the test's kind), or failing with it under `BECOME_ROOT_MUST_WORK=1`. The reason comes
/// back too, for [`run_trials`] to count. The test fails with the message it returns, or its
/// panic.
pub fn trial(
    name: impl Into<String>,
    needs: &[Need],
    test: impl FnOnce() -> Result<(), String> + Send + 'static,
) -> (libtest_mimic::Trial, Option<String>) {
    let unmet: Vec<Unmet> = needs.iter().filter_map(|n| n.unmet()).collect();
    if unmet.is_empty() {
        return (
            libtest_mimic::Trial::test(name, move || test().map_err(Into::into)),
            None,
        );
    }
    let must_work = must_work();
    let mut shorts: Vec<&str> = unmet.iter().map(|u| u.short.as_str()).collect();
    shorts.dedup();
    let kind = join(shorts.into_iter());
    let why = join(unmet.iter().map(|u| u.why.as_str()));
    let reason = why.clone();
    // Run anyway (--include-ignored), the body fails where the world cannot be built:
    // World::new says why.
    let trial = libtest_mimic::Trial::test(name, move || {
        if must_work {
            return Err(format!(
                "cannot run here (BECOME_ROOT_MUST_WORK=1 forbids skipping): {why}"
            )
            .into());
        }
        test().map_err(Into::into)
    });
    (
        trial.with_kind(kind).with_ignored_flag(!must_work),
        Some(reason),
    )
}

/// Run the trials of a test binary, after saying once how many cannot run here and why.
pub fn run_trials(
    binary: &str,
    trials: Vec<(libtest_mimic::Trial, Option<String>)>,
) -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    for why in trials.iter().filter_map(|(_, why)| why.clone()) {
        *skipped.entry(why).or_default() += 1;
    }
    if !args.list && !skipped.is_empty() {
        let total: usize = skipped.values().sum();
        let verdict = if must_work() {
            "failing, as BECOME_ROOT_MUST_WORK=1 forbids skipping"
        } else {
            "reported as ignored; BECOME_ROOT_MUST_WORK=1 makes them fail"
        };
        eprintln!(
            "{binary}: {total} of {} tests cannot run here ({verdict}):",
            trials.len()
        );
        for (why, count) in &skipped {
            eprintln!("  {count} test(s): {why}");
        }
    }
    let trials = trials.into_iter().map(|(trial, _)| trial).collect();
    libtest_mimic::run(&args, trials).exit_code()
}

fn join<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    parts.collect::<Vec<_>>().join("; ")
}

/// The `main` of a test binary with `harness = false`: each line lists what its tests need,
/// in brackets, then the tests, plain `fn name()`s of the file:
///
/// ```ignore
/// common::tests! {
///     [Harness] single_range_is_mapped_whole, map_single_maps_only_the_caller;
///     [Harness, Tool("make")] make_jobserver_reaches_the_command;
///     [] pure_table_test;
/// }
/// ```
///
/// A test function left out is dead code, which the lint gate refuses.
macro_rules! tests {
    ($( [$($need:expr),* $(,)?] $($test:path),+ $(,)? );* $(;)?) => {
        fn main() -> std::process::ExitCode {
            #[allow(unused_imports)]
            use $crate::common::Need::*;
            let mut cases: Vec<$crate::common::Case> = Vec::new();
            $(
                let needs: &'static [$crate::common::Need] = &[$($need),*];
                $( cases.push((stringify!($test), needs, $test as fn())); )+
            )*
            $crate::common::run_tests(env!("CARGO_CRATE_NAME"), &cases)
        }
    };
}
pub(crate) use tests;

// ---- ids of one's own: slots ----------------------------------------------------------------

/// The lock files of the slots: one directory for the whole machine, so that every test process
/// draws from the same set.
const SLOT_DIR: &str = "/tmp/become-root-test-slots";
const SLOTS: u32 = 4096;
/// Slot n's test user is uid (and gid) UID_BASE + n: far from the 1000s of real users, from the
/// 20000-59999 an older harness used, and from the 100000s that useradd hands out as
/// subordinate ranges.
const UID_BASE: u32 = 2_000_000;
/// Slot n owns the subordinate ids SUB_BASE + n * SUB_BLOCK onwards, SUB_BLOCK of them: its
/// default range and spare ones for tests that write ranges of their own. The last slot ends
/// below 2^31, clear of tools that take ids as signed.
const SUB_BASE: u32 = 1_000_000_000;
pub const SUB_COUNT: u32 = 65536;
const SUB_BLOCK: u32 = 4 * SUB_COUNT;

/// A claim on slot `index`: an exclusive flock(2) on its lock file. The kernel drops the lock
/// with the last descriptor, so a test process that dies (a nextest timeout, SIGKILL) frees its
/// slots too; and flock's locks belong to open files, not processes, so two threads of one
/// process exclude each other as two processes do.
struct Slot {
    index: u32,
    _lock: nix::fcntl::Flock<fs::File>,
}

impl Slot {
    fn uid(&self) -> u32 {
        UID_BASE + self.index
    }
    fn sub_start(&self) -> u32 {
        SUB_BASE + self.index * SUB_BLOCK
    }
    fn owns(&self, id: u32) -> bool {
        id == self.uid() || (self.sub_start()..self.sub_start() + SUB_BLOCK).contains(&id)
    }

    /// The first free slot: its lock is free, and no process of its ids is left, not even a
    /// zombie. A World of a test process that died may have left processes behind: they are
    /// killed. What they and the World before leave as zombies (whose parents are gone) is
    /// there until the machine's init reaps them, and the slot is passed over meanwhile: a
    /// test that lists the test user's processes (pgrep, ps) sees its own only (d18 counted
    /// the janitor of its run and a zombie of the World before, issue 26).
    fn claim() -> Slot {
        let dir = Path::new(SLOT_DIR);
        match fs::create_dir(dir) {
            Ok(()) => chmod(dir, 0o755),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => panic!("{SLOT_DIR}: {e}"),
        }
        // The lock files decide who may kill what: they must be root's.
        let meta = fs::symlink_metadata(dir).unwrap();
        assert!(
            meta.is_dir() && meta.uid() == 0 && meta.mode() & 0o022 == 0,
            "{SLOT_DIR} must be a directory of root's that only root can write to"
        );
        let taken = ids_of_the_machine();
        for index in 0..SLOTS {
            if taken.contains(&(UID_BASE + index)) {
                continue;
            }
            let file = fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o644)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(dir.join(index.to_string()))
                .unwrap_or_else(|e| panic!("{SLOT_DIR}/{index}: {e}"));
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(lock) => {
                    let slot = Slot { index, _lock: lock };
                    // Not even a zombie: pgrep and ps list them as the test user's.
                    if kill_and_wait(&|id| slot.owns(id)).is_empty() {
                        return slot;
                    }
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => continue,
                Err((_, e)) => panic!("flock {SLOT_DIR}/{index}: {e}"),
            }
        }
        panic!("all {SLOTS} test slots in {SLOT_DIR} are taken");
    }
}

/// The uids and gids of the machine's own accounts, which a test user must not take.
fn ids_of_the_machine() -> Vec<u32> {
    let mut ids = Vec::new();
    for (file, fields) in [("/etc/passwd", 2..4), ("/etc/group", 2..3)] {
        for line in fs::read_to_string(file).unwrap_or_default().lines() {
            let parts: Vec<&str> = line.split(':').collect();
            ids.extend(
                parts
                    .get(fields.clone())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|f| f.parse::<u32>().ok()),
            );
        }
    }
    ids
}

/// A process of the machine, as /proc/PID/status shows it.
struct Process {
    pid: i32,
    name: String,
    uid: u32,
    zombie: bool,
    parent: String,
}

impl Process {
    /// Every process of the machine now.
    fn all() -> Vec<Process> {
        let mut found = Vec::new();
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse() else {
                continue;
            };
            let Ok(status) = fs::read_to_string(entry.path().join("status")) else {
                continue;
            };
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_string())
                    .unwrap_or_default()
            };
            let Some(Ok(uid)) = field("Uid:").split_whitespace().next().map(str::parse) else {
                continue;
            };
            found.push(Process {
                pid,
                name: field("Name:"),
                uid,
                zombie: field("State:").starts_with('Z'),
                parent: field("PPid:"),
            });
        }
        found
    }

    /// "PID PPID PGID SID TPGID STATE WCHAN: COMMAND LINE" (/proc/PID/stat, wchan, cmdline).
    fn row(&self) -> String {
        let dir = PathBuf::from(format!("/proc/{}", self.pid));
        let stat = fs::read_to_string(dir.join("stat")).unwrap_or_default();
        // After the command's name in parentheses: state ppid pgrp session tty_nr tpgid.
        let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
        let f: Vec<&str> = after.split(' ').collect();
        let field = |i: usize| f.get(i).copied().unwrap_or("?");
        let wchan = fs::read_to_string(dir.join("wchan")).unwrap_or_default();
        let cmdline = fs::read(dir.join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        format!(
            "{} {} {} {} {} {} {}: {}",
            self.pid,
            field(1),
            field(2),
            field(3),
            field(5),
            field(0),
            if wchan.is_empty() { "-" } else { &wchan },
            if cmdline.is_empty() {
                &self.name
            } else {
                cmdline.trim_end()
            }
        )
    }

    /// "PID: NAME", and for a zombie, whose it is.
    fn describe(&self) -> String {
        match self.zombie {
            false => format!("{}: {}", self.pid, self.name),
            true => format!("{}: {} (a zombie of {})", self.pid, self.name, self.parent),
        }
    }
}

/// The processes (other than zombies) whose real uid `ours` accepts, as "PID: NAME".
fn processes_of(ours: &dyn Fn(u32) -> bool) -> Vec<String> {
    Process::all()
        .iter()
        .filter(|p| ours(p.uid) && !p.zombie)
        .map(Process::describe)
        .collect()
}

/// SIGKILL every process `ours` accepts, until none is left or the [`DEADLINE`] passes; then
/// what is left of them, zombies included: a process whose parent is gone is reaped by the
/// machine's init when that gets to it (2 s later on this project's machine; never, in a
/// container whose pid 1 does not reap).
fn kill_and_wait(ours: &dyn Fn(u32) -> bool) -> Vec<String> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left: Vec<Process> = Process::all().into_iter().filter(|p| ours(p.uid)).collect();
        let running: Vec<&Process> = left.iter().filter(|p| !p.zombie).collect();
        if running.is_empty() || Instant::now() > deadline {
            return left.iter().map(Process::describe).collect();
        }
        for p in running {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---- worlds ---------------------------------------------------------------------------------

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }
    /// Assert success and return stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert!(self.status.success(), "expected success, got {self:#?}");
        &self.stdout
    }
}

/// A test user with its own /etc copies.
pub struct World {
    pub dir: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub name: String,
    pub subuid: String,
    pub subgid: String,
    /// Extra lines for /etc/passwd and /etc/group.
    pub passwd_extra: String,
    pub group_extra: String,
    /// Whether the test user has a passwd entry at all.
    pub in_passwd: bool,
    /// Extra environment for the test user.
    pub env: Vec<(String, String)>,
    /// Supplementary groups the test user runs with (none by default).
    pub groups: Vec<u32>,
    /// Text for /etc/nsswitch.conf, when a test needs its own.
    pub nsswitch: Option<String>,
    /// Propagation of / in the harness's mount namespace: private, or shared as on a
    /// systemd host (where --propagation=slave makes a difference).
    pub propagation: &'static str,
    /// Shell lines run as root inside the harness's namespace before dropping to the user.
    pub root_setup: String,
    /// Give the harness a network namespace of its own (loopback up, an uplink 192.0.2.2/24
    /// on a veth pair, gateway 192.0.2.1), so that "the host's" loopback and resolver are
    /// the test's own.
    pub own_network: bool,
    /// Simple commands run as root in the background inside the harness (servers on its
    /// loopback), killed when the run ends. Each must create the file named by $READY once it
    /// serves (the helpers in tests/helpers do): the run starts when all have.
    pub services: Vec<String>,
    /// A cgroup of the test user's own ([`World::delegate_cgroup`]), removed with the World.
    pub cgroup: Option<PathBuf>,
    /// The umask a login session gives the test user ([`World::login_umask`]), set before any
    /// of its commands run, as pam_umask sets it; None: the test process's own.
    pub umask: Option<u32>,
    /// The slot whose ids these are; dropped last, once nothing of them runs.
    slot: Slot,
}

impl World {
    /// A fresh world with a test user of its own that owns `name:START:65536` in both files,
    /// START being [`World::sub_start`]. Panics, saying why, when the harness cannot run here
    /// (a test registered with [`Need::Harness`] is not run then).
    pub fn new() -> World {
        if let Some(unmet) = Need::Harness.unmet() {
            panic!("the hermetic harness cannot run here: {}", unmet.why);
        }
        let slot = Slot::claim();
        let uid = slot.uid();
        let dir = std::env::temp_dir().join(format!(
            "become-root-test-{}-{}",
            std::process::id(),
            unique()
        ));
        fs::create_dir_all(dir.join("home")).unwrap();
        let name = "tuser".to_string();
        let range = format!("{name}:{}:{SUB_COUNT}\n", slot.sub_start());
        // The World exists (and its Drop removes the directory) before anything else can fail.
        let world = World {
            subuid: range.clone(),
            subgid: range,
            dir,
            uid,
            gid: uid,
            name,
            passwd_extra: String::new(),
            group_extra: String::new(),
            in_passwd: true,
            env: Vec::new(),
            groups: Vec::new(),
            nsswitch: None,
            propagation: "private",
            root_setup: String::new(),
            own_network: false,
            services: Vec::new(),
            cgroup: None,
            umask: None,
            slot,
        };
        chmod(&world.dir, 0o755);
        nix::unistd::chown(&world.home(), Some(uid.into()), Some(uid.into())).unwrap();
        // A copy the test user can execute wherever the build tree lives (/root is 0700).
        copy_executable(Path::new(BIN), &world.bin(), 0o755);
        world
    }

    /// The first id of the test user's default subordinate ranges (the same in subuid and
    /// subgid): inside id 1 is this id outside.
    pub fn sub_start(&self) -> u32 {
        self.slot.sub_start()
    }

    /// The first id of the n-th spare range of this world (n = 1, 2 or 3, [`SUB_COUNT`] ids
    /// each), for a test that writes subordinate ranges of its own.
    pub fn spare_range(&self, n: u32) -> u32 {
        assert!(
            (1..SUB_BLOCK / SUB_COUNT).contains(&n),
            "no spare range {n}"
        );
        self.sub_start() + n * SUB_COUNT
    }

    /// Give the test user the umask its login session would have: Debian 13's pam_umask gives
    /// 002 to a user whose primary group is its own (usergroups), as the test user's is.
    pub fn login_umask(&mut self, mask: u32) {
        self.umask = Some(mask);
    }

    /// A test helper script from tests/helpers, by name.
    pub fn helper(name: &str) -> String {
        format!("{}/tests/helpers/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    /// The readiness wait for scripts: `{until} COMMAND...` polls COMMAND until it succeeds,
    /// failing after [`DEADLINE`] (tests/helpers/wait-until).
    pub fn until() -> String {
        format!(
            "WAIT_UNTIL_SECONDS={} {}",
            DEADLINE.as_secs(),
            World::helper("wait-until")
        )
    }

    /// Path of the copy of become-root the test user runs.
    pub fn bin(&self) -> PathBuf {
        self.dir.join("become-root")
    }

    /// A writable directory of the test user's.
    pub fn home(&self) -> PathBuf {
        self.dir.join("home")
    }

    fn write_etc(&self) -> PathBuf {
        let etc = self.dir.join("etc-files");
        fs::create_dir_all(&etc).unwrap();
        let mut passwd = fs::read_to_string("/etc/passwd").unwrap();
        let mut group = fs::read_to_string("/etc/group").unwrap();
        if self.in_passwd {
            passwd.push_str(&format!(
                "{}:x:{}:{}::{}:/bin/sh\n",
                self.name,
                self.uid,
                self.gid,
                self.home().display()
            ));
            group.push_str(&format!("{}:x:{}:\n", self.name, self.gid));
        }
        passwd.push_str(&self.passwd_extra);
        group.push_str(&self.group_extra);
        fs::write(etc.join("passwd"), passwd).unwrap();
        fs::write(etc.join("group"), group).unwrap();
        fs::write(etc.join("subuid"), &self.subuid).unwrap();
        fs::write(etc.join("subgid"), &self.subgid).unwrap();
        if let Some(ns) = &self.nsswitch {
            fs::write(etc.join("nsswitch.conf"), ns).unwrap();
        }
        etc
    }

    /// The root-side script: overlay /etc with the test files, then become the test user and
    /// run "$@" with a clean environment.
    fn enter_script(&self) -> PathBuf {
        let etc = self.write_etc();
        let d = self.dir.display();
        let mut env = format!(
            "HOME={d}/home USER={n} LOGNAME={n} SHELL=/bin/sh \
             PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin BR={d}/become-root",
            n = self.name
        );
        for (k, v) in &self.env {
            env.push_str(&format!(" {k}={}", shell_quote(v)));
        }
        let network = if self.own_network {
            "ip link set lo up
ip link add uplink0 type veth peer name uplink1
ip addr add 192.0.2.2/24 dev uplink0
ip link set uplink1 up
ip link set uplink0 up
ip route add default via 192.0.2.1"
        } else {
            ""
        };
        // Each service says when it serves by creating its ready file; the run waits for all
        // of them (a server still starting would refuse the test's first connection).
        let mut services = String::new();
        for (i, s) in self.services.iter().enumerate() {
            let ready = self.dir.join(format!("service-{i}.ready"));
            let ready = ready.display();
            services.push_str(&format!(
                "rm -f {ready}\nREADY={ready} {s} & services=\"$services $!\"\n"
            ));
        }
        for i in 0..self.services.len() {
            let ready = self.dir.join(format!("service-{i}.ready"));
            services.push_str(&format!(
                "{} test -e {} || {{ kill $services; exit 1; }}\n",
                World::until(),
                ready.display()
            ));
        }
        // Default signal dispositions too, as in a fresh login: a test binary started in the
        // background of a script inherits SIGINT and SIGQUIT ignored, and the terminal and
        // signal tests would see that instead of what become-root does.
        let groups = if self.groups.is_empty() {
            "--clear-groups".to_string()
        } else {
            let list: Vec<String> = self.groups.iter().map(u32::to_string).collect();
            format!("--groups={}", list.join(","))
        };
        let user = format!(
            "setpriv --reuid={} --regid={} {groups} -- \
             env --default-signal -i {env} \"$@\"",
            self.uid, self.gid
        );
        // With services to stop afterwards the harness waits; without, it execs, so that a
        // death by signal reaches the test as such.
        let launch = if self.services.is_empty() {
            format!("exec {user}")
        } else {
            format!("set +e\n{user}\nstatus=$?\nkill $services 2>/dev/null\nexit $status")
        };
        // Usable copies of the TAP and FUSE devices (0600 on the machine), bound over the
        // real nodes in this namespace only.
        let script = format!(
            r#"set -e
mkdir -p {d}/etc-up {d}/etc-work
mount -t overlay overlay -o lowerdir=/etc,upperdir={d}/etc-up,workdir={d}/etc-work /etc
# Never write to the machine's own /etc: only to the throwaway overlay just mounted.
grep -q " /etc .* - overlay overlay .*upperdir={d}/etc-up" /proc/self/mountinfo || {{
    echo "harness: /etc is not the test overlay; refusing to write to it" >&2; exit 1; }}
for f in {etc}/*; do cat "$f" > "/etc/${{f##*/}}"; done
[ -e {d}/tun ] || mknod -m 666 {d}/tun c 10 200
mount --bind {d}/tun /dev/net/tun
[ -e {d}/fuse ] || mknod -m 666 {d}/fuse c 10 229
mount --bind {d}/fuse /dev/fuse
{network}
{cgroup}
{setup}
services=
{services}
cd {d}/home
{umask}
{launch}
"#,
            etc = etc.display(),
            setup = self.root_setup,
            umask = self
                .umask
                .map_or(String::new(), |m| format!("umask {m:03o}")),
            cgroup = self.cgroup.as_ref().map_or(String::new(), |cg| {
                // The run starts in the test user's own cgroup, which it sees at
                // /sys/fs/cgroup as a user of a systemd host sees its delegated subtree.
                format!(
                    "echo $$ > {cg}/cgroup.procs\nmount --bind {cg} /sys/fs/cgroup",
                    cg = cg.display()
                )
            }),
        );
        let path = self.dir.join("enter.sh");
        fs::write(&path, script).unwrap();
        path
    }

    /// A `Command` that runs `argv` as the test user inside the world.
    pub fn command<S: AsRef<OsStr>>(&self, argv: &[S]) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "--propagation", self.propagation]);
        if self.own_network {
            cmd.arg("-n");
        }
        cmd.args(["--", "/bin/sh"])
            .arg(self.enter_script())
            .args(argv)
            .stdin(Stdio::null())
            .process_group(0);
        cmd
    }

    /// Give the test user a cgroup of its own, as a delegated subtree is (its directory,
    /// cgroup.procs, cgroup.subtree_control and cgroup.threads are the user's): the run
    /// starts in it and sees it at /sys/fs/cgroup. Removed, with whatever is below it, when
    /// the World is dropped. This machine's cgroup2 may offer no controllers.
    pub fn delegate_cgroup(&mut self) -> PathBuf {
        let root = cgroup2_root().expect("a cgroup2 hierarchy (Need::Cgroup2)");
        let dir = root.join(self.dir.file_name().unwrap());
        fs::create_dir(&dir).unwrap();
        for file in [
            "",
            "cgroup.procs",
            "cgroup.subtree_control",
            "cgroup.threads",
        ] {
            let path = dir.join(file);
            std::os::unix::fs::chown(&path, Some(self.uid), Some(self.gid)).unwrap();
        }
        self.cgroup = Some(dir.clone());
        dir
    }

    /// Assert that a run left nothing of the test user's behind the moment it returned: no
    /// process and no cgroup below its own. become-root returns once what it started is gone,
    /// so this looks at once, as `ps` right after it would; only after become-root itself was
    /// killed (SIGKILL), when what it started goes by the kernel's parent-death signal, may a
    /// test wait ([`World::wait_no_leftovers`]).
    #[track_caller]
    pub fn assert_nothing_left(&self) {
        let left = self.leftover_processes();
        assert!(left.is_empty(), "left running: {left:?}");
        assert!(
            self.cgroups_below().is_empty(),
            "left behind: {:?}",
            self.cgroups_below()
        );
    }

    /// The cgroups below the test user's own (what a run left behind).
    pub fn cgroups_below(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        if let Some(dir) = &self.cgroup {
            cgroup_dirs(dir, &mut found);
        }
        found
    }

    /// Run become-root with `args` as the test user.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Out {
        let bin = self.bin();
        let mut argv: Vec<&OsStr> = vec![bin.as_os_str()];
        argv.extend(args.iter().map(|a| a.as_ref()));
        run_watched(self.command(&argv), &|| self.process_table())
    }

    /// Run a shell script as the test user; `$BR` is become-root.
    pub fn sh(&self, script: &str) -> Out {
        run_watched(self.command(&["/bin/sh", "-c", script]), &|| {
            self.process_table()
        })
    }

    /// Processes (other than zombies) whose real uid is the test user's or in this world's
    /// subordinate ids: this world's own, whatever else runs on the machine.
    pub fn leftover_processes(&self) -> Vec<String> {
        processes_of(&|id| self.slot.owns(id))
    }

    /// The processes of this world's ids, with what says where each is stuck: its process
    /// group, session and the terminal's foreground group, state and wait channel (for a run
    /// that timed out).
    pub fn process_table(&self) -> String {
        let mut table = String::from(
            "processes of the test user then (pid ppid pgid sid tpgid state wchan: command):\n",
        );
        for p in Process::all().iter().filter(|p| self.slot.owns(p.uid)) {
            table.push_str(&p.row());
            table.push('\n');
        }
        table
    }

    /// Wait (up to [`DEADLINE`]) until no process of the test user is left, and return those
    /// that are: for after a kill (of become-root, or a signal to the test's own processes),
    /// whose effects the kernel delivers asynchronously. After a run that ended by itself,
    /// [`World::assert_nothing_left`] looks at once.
    pub fn wait_no_leftovers(&self) -> Vec<String> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = self.leftover_processes();
            if left.is_empty() || Instant::now() > deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Whatever a failed test left running, so that the slot is free of it for the next
        // World (the slot's lock goes when this returns).
        let _ = kill_and_wait(&|id| self.slot.owns(id));
        if let Some(cg) = &self.cgroup {
            let mut below = Vec::new();
            cgroup_dirs(cg, &mut below);
            for dir in below.iter().rev().chain([cg]) {
                // Emptied by now (kill_and_wait); a cgroup is removed with rmdir alone.
                let _ = fs::remove_dir(dir);
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
        // The state directory a run without XDG_RUNTIME_DIR makes for its user (session::
        // record's state_dir_for), empty once its sessions are gone: gone with the World.
        let _ = fs::remove_dir(format!("/tmp/become-root-{}", self.uid));
    }
}

/// Give `path` and everything below it to `uid` (and the group of that number).
pub fn chown_tree(path: &Path, uid: u32) {
    let status = Command::new("chown")
        .args(["-R", &format!("{uid}:{uid}")])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A busybox root filesystem at `root` owned by `uid`, with these applets in /bin and the
/// directories a --rootfs run mounts on; /etc/resolv.conf holds `resolv_conf` (a connected
/// network binds its own over it).
pub fn busybox_rootfs(root: &Path, uid: u32, applets: &[&str], resolv_conf: &str) {
    let busybox = which("busybox").expect("declared as needed");
    for dir in ["bin", "etc", "proc", "dev", "sys", "tmp"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    copy_executable(&busybox, &root.join("bin/busybox"), 0o755);
    for applet in applets {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    fs::write(root.join("etc/resolv.conf"), resolv_conf).unwrap();
    chown_tree(root, uid);
}

/// The cgroups below `dir`, parents before children.
fn cgroup_dirs(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.push(entry.path());
            cgroup_dirs(&entry.path(), found);
        }
    }
}

/// Run `cmd` (spawned in its own process group), killing the group after [`TIMEOUT`].
pub fn run_with_timeout(cmd: Command) -> Out {
    run_watched(cmd, &String::new)
}

/// [`run_with_timeout`], saying at a timeout what `describe` says then (before the kill).
fn run_watched(mut cmd: Command, describe: &dyn Fn() -> String) -> Out {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn");
    let pgid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(TIMEOUT) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let state = describe();
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::SIGKILL,
            );
            let out = rx.recv().unwrap().expect("wait");
            panic!(
                "timed out after {TIMEOUT:?}; {state}stdout: {} stderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    Out {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].iter().map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The non-blank lines of a /proc map, with columns normalized: "0 4242 1".
pub fn map_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}
