//! The hermetic harness of DESIGN.md: tests run as root, become-root is for users who are not.
//!
//! Each [`World`] is a temporary directory with test copies of passwd, group, subuid and
//! subgid. A run enters a private mount namespace (`unshare -m --propagation private`), lays
//! a throwaway overlay over /etc holding those copies, drops to the test user with
//! `setpriv --reuid --regid --clear-groups`, and runs the command there. newuidmap reads the
//! test files, so every subid case can be tested; nothing on the machine changes (the overlay
//! and the namespace vanish with the run).
//!
//! A test that cannot run this way (not root) prints why and passes as skipped, unless
//! `BECOME_ROOT_MUST_WORK=1`, which turns every skip into a failure.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_become-root");

/// How long one run may take before the harness kills it (and the test fails).
pub const TIMEOUT: Duration = Duration::from_secs(60);

pub fn must_work() -> bool {
    std::env::var_os("BECOME_ROOT_MUST_WORK").is_some_and(|v| v == "1")
}

/// Skip the calling test with a printed reason, or fail it under BECOME_ROOT_MUST_WORK=1.
pub fn skip(why: &str) {
    if must_work() {
        panic!("cannot run (BECOME_ROOT_MUST_WORK=1 forbids skipping): {why}");
    }
    eprintln!("SKIPPED: {why}");
}

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
    /// Commands run as root in the background inside the harness (servers on its loopback),
    /// killed when the run ends.
    pub services: Vec<String>,
}

impl World {
    /// A fresh world with a test user that owns `name:100000:65536` in both files, or None
    /// (with the reason printed) when the harness cannot run here.
    pub fn new() -> Option<World> {
        if !nix::unistd::Uid::effective().is_root() {
            skip("the hermetic harness needs root to build its mount namespace and test user");
            return None;
        }
        for tool in ["unshare", "setpriv", "newuidmap", "newgidmap"] {
            if which(tool).is_none() {
                skip(&format!(
                    "{tool} is not installed (Debian: util-linux, uidmap)"
                ));
                return None;
            }
        }
        // A uid of its own per test process, so that a test can look for processes left
        // behind by its user without seeing another test's.
        let pid = std::process::id();
        let uid = 20000 + pid % 40000;
        let dir = std::env::temp_dir().join(format!("become-root-test-{pid}-{}", unique()));
        fs::create_dir_all(dir.join("home")).unwrap();
        let name = "tuser".to_string();
        // The World exists (and its Drop removes the directory) before anything else can fail.
        let world = World {
            subuid: format!("{name}:100000:65536\n"),
            subgid: format!("{name}:100000:65536\n"),
            dir,
            uid,
            gid: uid,
            name,
            passwd_extra: String::new(),
            group_extra: String::new(),
            in_passwd: true,
            env: Vec::new(),
            nsswitch: None,
            propagation: "private",
            root_setup: String::new(),
            own_network: false,
            services: Vec::new(),
        };
        fs::set_permissions(&world.dir, fs::Permissions::from_mode(0o755)).unwrap();
        nix::unistd::chown(&world.home(), Some(uid.into()), Some(uid.into())).unwrap();
        // A copy the test user can execute wherever the build tree lives (/root is 0700).
        fs::copy(BIN, world.bin()).unwrap();
        Some(world)
    }

    /// A test helper script from tests/helpers, by name.
    pub fn helper(name: &str) -> String {
        format!("{}/tests/helpers/{name}", env!("CARGO_MANIFEST_DIR"))
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
        let services: String = self
            .services
            .iter()
            .map(|s| format!("{s} & services=\"$services $!\"\n"))
            .collect();
        let user = format!(
            "setpriv --reuid={} --regid={} --clear-groups -- env -i {env} \"$@\"",
            self.uid, self.gid
        );
        // With services to stop afterwards the harness waits; without, it execs, so that a
        // death by signal reaches the test as such.
        let launch = if self.services.is_empty() {
            format!("exec {user}")
        } else {
            format!(
                "sleep 0.3\nset +e\n{user}\nstatus=$?\nkill $services 2>/dev/null\nexit $status"
            )
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
{setup}
services=
{services}
cd {d}/home
{launch}
"#,
            etc = etc.display(),
            setup = self.root_setup,
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

    /// Run become-root with `args` as the test user.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Out {
        let bin = self.bin();
        let mut argv: Vec<&OsStr> = vec![bin.as_os_str()];
        argv.extend(args.iter().map(|a| a.as_ref()));
        run_with_timeout(self.command(&argv))
    }

    /// Run a shell script as the test user; `$BR` is become-root.
    pub fn sh(&self, script: &str) -> Out {
        run_with_timeout(self.command(&["/bin/sh", "-c", script]))
    }

    /// Processes (other than zombies) whose real uid is the test user's or in its ranges.
    pub fn leftover_processes(&self) -> Vec<String> {
        let mut found = Vec::new();
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(status) = fs::read_to_string(entry.path().join("status")) else {
                continue;
            };
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_string())
            };
            let uid: Option<u32> =
                field("Uid:").and_then(|v| v.split_whitespace().next().map(|s| s.parse().unwrap()));
            let is_ours = uid.is_some_and(|u| u == self.uid || (100000..165536).contains(&u));
            let zombie = field("State:").is_some_and(|s| s.starts_with('Z'));
            if is_ours && !zombie {
                found.push(format!(
                    "{}: {}",
                    entry.file_name().to_string_lossy(),
                    field("Name:").unwrap_or_default()
                ));
            }
        }
        found
    }

    /// Wait (a little) until no process of the test user is left, and return those that are.
    pub fn wait_no_leftovers(&self) -> Vec<String> {
        for _ in 0..100 {
            let left = self.leftover_processes();
            if left.is_empty() {
                return left;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.leftover_processes()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Run `cmd` (spawned in its own process group), killing the group after [`TIMEOUT`].
pub fn run_with_timeout(mut cmd: Command) -> Out {
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
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::SIGKILL,
            );
            let out = rx.recv().unwrap().expect("wait");
            panic!(
                "timed out after {TIMEOUT:?}; stdout: {} stderr: {}",
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
