//! Running slirp4netns or pasta against the namespace process: started from outside, waited
//! for until it says the interface is configured, and never outliving become-root.
//!
//! Lifetime: the helper gets a parent-death SIGKILL (kept across its exec: it is not
//! set-user-ID), so it dies with become-root even on SIGKILL; slirp4netns also watches an exit
//! pipe whose write end only become-root holds. When COMMAND ends become-root stops it and
//! waits until it is gone, before it returns. Its stderr goes to an anonymous memory file that is read only for error messages, so
//! a chatty helper can never block on a full pipe.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::unistd::Pid;

use super::ports::{Proto, Publish};
use super::{Driver, NetError, NetPlan};
use crate::sys;

/// How long a helper may take to configure the interface.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long slirp4netns has to leave on its own once its exit pipe closes.
const STOP_ASKED: Duration = Duration::from_millis(500);

/// A started helper.
pub struct Running {
    program: String,
    child: Child,
    /// Ends when the helper does: waited on beside `ready`, which for pasta is a FIFO that
    /// sees no end of file until pasta has opened it.
    pidfd: OwnedFd,
    ready: File,
    /// slirp4netns leaves when this closes.
    exit: Option<File>,
    stderr: File,
    /// The private directory of slirp4netns's API socket or pasta's pid file, while it
    /// exists.
    api_dir: Option<PathBuf>,
    /// Ports to add through the API once ready (slirp4netns; pasta took them as options).
    forwards: Vec<Publish>,
    /// slirp4netns's API socket stays for the run (a session's live ports, control.rs).
    keep_api: bool,
    /// It ended and was reaped ([`Running::ended`]): its pid may belong to another process.
    gone: bool,
}

/// Start the helper for `plan` against the namespace process `target` and wait until it has
/// configured the interface; a helper that does not get there is stopped.
pub fn start_ready(plan: &NetPlan, target: Pid) -> Result<Running, NetError> {
    let mut helper = start(plan, target)?;
    if let Err(e) = helper.wait_ready() {
        helper.stop();
        return Err(e);
    }
    Ok(helper)
}

/// Start the helper for `plan` against the namespace process `target`: its descriptors and
/// command line (one step per driver), then the process.
pub fn start(plan: &NetPlan, target: Pid) -> Result<Running, NetError> {
    let program = plan.driver.program().to_string();
    let fail = |why: String| NetError::Start {
        program: program.clone(),
        why,
    };
    let (ready_r, ready_w) = pipe().map_err(|e| fail(e.desc().to_string()))?;
    let stderr = sys::memfd(c"helper-stderr").map_err(|e| fail(e.desc().to_string()))?;
    let prepared = match plan.driver {
        Driver::Slirp4netns => slirp4netns(plan, target, (ready_r, ready_w), &fail)?,
        Driver::Pasta => {
            drop((ready_r, ready_w));
            pasta(plan, target, &fail)?
        }
    };
    let Prepared {
        cmd,
        give,
        ready,
        exit,
        api_dir,
    } = prepared;
    let (child, pidfd) = spawn(cmd, give, &stderr, api_dir.as_deref(), &fail)?;
    Ok(Running {
        program,
        child,
        pidfd,
        ready,
        exit,
        stderr,
        api_dir,
        forwards: plan.forwards.clone(),
        keep_api: plan.keep_api && plan.driver == Driver::Slirp4netns,
        gone: false,
    })
}

/// A helper ready to be spawned: its command, the descriptors it gets (at fixed numbers from
/// 3 up; every other one is closed), and the ends become-root keeps.
struct Prepared {
    cmd: Command,
    give: Vec<OwnedFd>,
    ready: File,
    exit: Option<File>,
    api_dir: Option<PathBuf>,
}

fn pipe() -> nix::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
}

/// slirp4netns: it reports readiness on the ready pipe (fd 3) and leaves when its exit pipe
/// (fd 4) closes; an API socket in a private directory when ports are to be added.
fn slirp4netns(
    plan: &NetPlan,
    target: Pid,
    (ready_r, ready_w): (OwnedFd, OwnedFd),
    fail: &dyn Fn(String) -> NetError,
) -> Result<Prepared, NetError> {
    let (exit_r, exit_w) = pipe().map_err(|e| fail(e.desc().to_string()))?;
    let api_dir = if !plan.forwards.is_empty() || plan.keep_api {
        // Its API socket needs a path: a private directory, removed as soon as the
        // forwards are added (see `add_forwards`), or with the helper for a session's
        // live ports.
        let dir =
            private_dir().map_err(|e| fail(format!("a directory for its API socket: {e}")))?;
        Some(dir)
    } else {
        None
    };
    let mut cmd = Command::new(&plan.program);
    cmd.args(slirp4netns_args(
        plan,
        api_dir.as_ref().map(|d| d.join("api.sock")).as_deref(),
        target,
    ));
    Ok(Prepared {
        cmd,
        give: vec![ready_w, exit_r],
        ready: File::from(ready_r),
        exit: Some(File::from(exit_w)),
        api_dir,
    })
}

/// slirp4netns's command line, the descriptors at 3 (ready) and 4 (exit).
fn slirp4netns_args(plan: &NetPlan, api_socket: Option<&Path>, target: Pid) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "--configure".into(),
        format!("--mtu={}", plan.mtu).into(),
        "--ready-fd=3".into(),
        "--exit-fd=4".into(),
    ];
    if !plan.allow_host_loopback {
        args.push("--disable-host-loopback".into());
    }
    // Its own mount namespace without capabilities, and a seccomp filter: a bug in the
    // user-mode TCP/IP stack then reaches less.
    args.extend(["--enable-sandbox".into(), "--enable-seccomp".into()]);
    args.extend(
        plan.addressing
            .helper_args(plan.driver)
            .into_iter()
            .map(Into::into),
    );
    if let Some(socket) = api_socket {
        args.push(format!("--api-socket={}", socket.display()).into());
    }
    args.extend([target.to_string().into(), "tap0".into()]);
    args
}

/// pasta: it writes its pid file once the namespace is configured, and that is its
/// readiness. The file is a FIFO in a private directory, read here, removed as soon as pasta
/// has written. Not a /proc/.../fd path to a pipe: pasta since 2024 closes every descriptor
/// it inherits first (so its own fd 3 names nothing), Debian 12's opens the file only after
/// joining the new user namespace (where ptrace rules deny it another process's
/// /proc/PID/fd), and the AppArmor profile Debian ships for pasta allows pid files under
/// /run/user/UID and /tmp only.
fn pasta(
    plan: &NetPlan,
    target: Pid,
    fail: &dyn Fn(String) -> NetError,
) -> Result<Prepared, NetError> {
    let dir = private_dir().map_err(|e| fail(format!("a directory for its pid file: {e}")))?;
    let fifo = dir.join("pasta.pid");
    let opened = nix::unistd::mkfifo(
        &fifo,
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
    )
    .and_then(|()| {
        nix::fcntl::open(
            &fifo,
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_NONBLOCK
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
    });
    let ready = match opened {
        Ok(fd) => File::from(fd),
        Err(e) => {
            remove_dir(Some(&dir));
            return Err(fail(format!("its pid file {}: {e}", fifo.display())));
        }
    };
    let mut cmd = Command::new(&plan.program);
    cmd.args(pasta_args(plan, &fifo, target));
    Ok(Prepared {
        cmd,
        give: Vec::new(),
        ready,
        exit: None,
        api_dir: Some(dir),
    })
}

/// pasta's command line, its pid file at `pid_file`.
fn pasta_args(plan: &NetPlan, pid_file: &Path, target: Pid) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["--foreground", "--quiet", "--config-net", "--mtu"]
        .map(Into::into)
        .into();
    args.push(plan.mtu.to_string().into());
    // No port is forwarded in either direction unless published: pasta's default (auto)
    // would forward every port bound inside to the host and every port bound on the host
    // into the namespace.
    for (flag, proto) in [("-t", Proto::Tcp), ("-u", Proto::Udp)] {
        let specs: Vec<String> = plan
            .forwards
            .iter()
            .filter(|p| p.proto == proto)
            .map(|p| format!("{}/{}:{}", p.host_ip, p.host_port, p.ns_port))
            .collect();
        args.push(flag.into());
        args.push(if specs.is_empty() {
            "none".into()
        } else {
            specs.join(",").into()
        });
    }
    args.extend(["-T", "none", "-U", "none"].map(Into::into));
    if !plan.allow_host_loopback {
        args.push("--no-map-gw".into());
    }
    args.extend(["--dns-forward", plan.driver.dns_forwarder()].map(Into::into));
    args.extend(
        plan.addressing
            .helper_args(plan.driver)
            .into_iter()
            .map(Into::into),
    );
    args.extend(["--pid".into(), pid_file.into(), target.to_string().into()]);
    args
}

/// Spawn the prepared helper with `give` at 3 up and its stderr in `stderr`, and open its
/// pidfd; on failure nothing of it is left (nor its private directory).
fn spawn(
    mut cmd: Command,
    give: Vec<OwnedFd>,
    stderr: &File,
    api_dir: Option<&Path>,
    fail: &dyn Fn(String) -> NetError,
) -> Result<(Child, OwnedFd), NetError> {
    let stderr_fd = stderr.try_clone().map_err(|e| fail(e.to_string()))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr_fd);
    sys::hand_fds_to_helper(&mut cmd, give.iter().map(|fd| fd.as_raw_fd()).collect());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            remove_dir(api_dir);
            return Err(fail(e.to_string()));
        }
    };
    drop(give);
    match sys::pidfd_open(Pid::from_raw(child.id() as i32)) {
        Ok(pidfd) => Ok((child, pidfd)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            remove_dir(api_dir);
            Err(fail(format!("pidfd_open: {e}")))
        }
    }
}

/// A fresh directory only the caller can enter: under $XDG_RUNTIME_DIR (per user, on a
/// tmpfs) when set, else under /tmp with an unpredictable name.
fn private_dir() -> nix::Result<PathBuf> {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_dir())
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    nix::unistd::mkdtemp(&base.join("become-root.XXXXXX"))
}

/// Remove a private directory of [`private_dir`] and what a helper made in it.
fn remove_dir(dir: Option<&Path>) {
    if let Some(dir) = dir {
        for name in ["api.sock", "pasta.pid"] {
            let _ = std::fs::remove_file(dir.join(name));
        }
        let _ = std::fs::remove_dir(dir);
    }
}

impl Running {
    /// Wait until the helper reports the interface configured, or fail with its stderr.
    pub fn wait_ready(&mut self) -> Result<(), NetError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let stderr = self.stderr_text();
                self.kill();
                return Err(NetError::NotReady {
                    program: self.program.clone(),
                    seconds: READY_TIMEOUT.as_secs(),
                    stderr,
                });
            }
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [
                PollFd::new(self.ready.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) | Err(nix::Error::EINTR) => continue,
                Ok(_) => break,
                Err(e) => {
                    return Err(NetError::Start {
                        program: self.program.clone(),
                        why: e.to_string(),
                    });
                }
            }
        }
        // A word on the pipe is readiness, even from a helper that ended right after it.
        let mut byte = [0u8; 1];
        let mut fds = [PollFd::new(self.ready.as_fd(), PollFlags::POLLIN)];
        if matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1))
            && matches!(self.ready.read(&mut byte), Ok(1))
        {
            return self.add_forwards();
        }
        // End of file, or the helper ended, without a word: it died.
        let status = self
            .child
            .wait()
            .map(|s| s.to_string())
            .unwrap_or_else(|e| e.to_string());
        Err(NetError::Failed {
            program: self.program.clone(),
            status,
            stderr: self.stderr_text(),
        })
    }

    /// slirp4netns: add each forward through the API socket, then remove the socket and its
    /// directory at once (nothing else needs them; a run killed in these few milliseconds is
    /// the only way they could stay behind). pasta: remove its pid file's directory.
    fn add_forwards(&mut self) -> Result<(), NetError> {
        let Some(dir) = self.api_dir.take() else {
            return Ok(());
        };
        let keep = |this: &mut Self, dir: PathBuf| match this.keep_api {
            true => this.api_dir = Some(dir),
            false => remove_dir(Some(&dir)),
        };
        if self.forwards.is_empty() || self.program == Driver::Pasta.program() {
            keep(self, dir);
            return Ok(());
        }
        let result = self.forwards.iter().try_for_each(|p| {
            let request = format!(
                "{{\"execute\": \"add_hostfwd\", \"arguments\": {{\"proto\": \"{}\", \
                 \"host_addr\": \"{}\", \"host_port\": {}, \"guest_port\": {}}}}}",
                p.proto, p.host_ip, p.host_port, p.ns_port
            );
            slirp4netns_api(&dir.join("api.sock"), &request).map(drop)
        });
        keep(self, dir);
        result.map_err(|why| {
            self.kill();
            NetError::Start {
                program: self.program.clone(),
                why,
            }
        })
    }

    /// slirp4netns's API socket, kept for a session's live ports.
    pub fn api_socket(&self) -> Option<PathBuf> {
        self.api_dir
            .as_ref()
            .filter(|_| self.keep_api)
            .map(|d| d.join("api.sock"))
    }

    fn stderr_text(&mut self) -> String {
        let mut text = String::new();
        let _ = self.stderr.rewind();
        let _ = self.stderr.read_to_string(&mut text);
        text
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// If the helper has ended since it was ready, how (once: the next call says nothing).
    /// The namespace then has no network, but COMMAND runs on; the caller must hear of it.
    pub fn ended(&mut self) -> Option<String> {
        if self.gone {
            return None;
        }
        let status = self.child.try_wait().ok()??;
        self.gone = true;
        use std::os::unix::process::ExitStatusExt;
        let how = match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(sig)) => format!("was killed by signal {sig}"),
            _ => status.to_string(),
        };
        Some(format!("{} {how}", self.program))
    }

    /// End the helper and wait until it is gone: only then are its ports (the helper port
    /// driver's) free for the next run, and no helper outlives become-root's return. The wait
    /// costs what closing the TAP device costs the kernel (it unregisters it and waits for an
    /// RCU grace period, about 20 ms here). slirp4netns is asked first (its exit pipe closes)
    /// and killed if it has not gone within `STOP_ASKED`.
    pub fn stop(mut self) {
        remove_dir(self.api_dir.take().as_deref());
        if self.gone {
            return;
        }
        if self.exit.take().is_some() {
            let mut fds = [PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN)];
            let ms = u16::try_from(STOP_ASKED.as_millis()).unwrap_or(u16::MAX);
            let _ = poll(&mut fds, PollTimeout::from(ms));
        }
        self.kill();
    }
}

/// One request to slirp4netns's API, and its "return" part; its "error" or a failure to ask
/// as the reason.
pub fn slirp4netns_api(socket: &Path, request: &str) -> Result<String, String> {
    let reply = api_call(socket, request).map_err(|e| format!("its API socket: {e}"))?;
    // add_hostfwd answers {"return": {"id": N}}, list_hostfwd {"entries": [...]} (1.2): only
    // an "error" is one.
    if reply.contains("\"error\"") || reply.trim().is_empty() {
        let what = request.split('"').nth(3).unwrap_or("request");
        return Err(format!("slirp4netns's {what}: {}", reply.trim()));
    }
    Ok(reply)
}

/// One request to slirp4netns's API: write it, read the reply until the socket closes.
fn api_call(socket: &Path, request: &str) -> std::io::Result<String> {
    use std::io::Write;
    let mut stream = std::os::unix::net::UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(request.as_bytes())?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::path::{Path, PathBuf};

    use nix::unistd::Pid;

    use super::{pasta_args, slirp4netns_args};
    use crate::net::addressing::Addressing;
    use crate::net::ports::parse;
    use crate::net::{Driver, NetPlan};

    fn plan(driver: Driver, loopback: bool, cidr: Option<&str>, forwards: &[&str]) -> NetPlan {
        NetPlan {
            driver,
            program: PathBuf::from("/usr/bin/helper"),
            from_env: None,
            mtu: 65520,
            allow_host_loopback: loopback,
            addressing: Addressing::from_options(cidr, false, &[]).unwrap(),
            forwards: forwards.iter().map(|s| parse(s).unwrap()).collect(),
            keep_api: false,
            fallback: None,
            bypass: false,
        }
    }

    fn words(args: Vec<OsString>) -> String {
        let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into()).collect();
        args.join(" ")
    }

    #[test]
    fn slirp4netns_command_lines() {
        let pid = Pid::from_raw(42);
        let sock = Path::new("/run/d/api.sock");
        for (plan, api, want) in [
            (
                plan(Driver::Slirp4netns, false, None, &[]),
                None,
                "--configure --mtu=65520 --ready-fd=3 --exit-fd=4 --disable-host-loopback \
                 --enable-sandbox --enable-seccomp 42 tap0",
            ),
            (
                plan(Driver::Slirp4netns, true, Some("10.42.0.0/24"), &[]),
                Some(sock),
                "--configure --mtu=65520 --ready-fd=3 --exit-fd=4 --enable-sandbox \
                 --enable-seccomp --cidr=10.42.0.0/24 --api-socket=/run/d/api.sock 42 tap0",
            ),
        ] {
            assert_eq!(words(slirp4netns_args(&plan, api, pid)), want);
        }
    }

    #[test]
    fn pasta_command_lines_forward_only_what_is_published() {
        let pid = Pid::from_raw(42);
        let fifo = Path::new("/run/d/pasta.pid");
        let dns = Driver::Pasta.dns_forwarder();
        for (plan, want) in [
            (
                plan(Driver::Pasta, false, None, &[]),
                format!(
                    "--foreground --quiet --config-net --mtu 65520 -t none -u none -T none \
                     -U none --no-map-gw --dns-forward {dns} --pid /run/d/pasta.pid 42"
                ),
            ),
            (
                plan(
                    Driver::Pasta,
                    true,
                    None,
                    &["8080:80", "5353:53/udp", "8443:443"],
                ),
                format!(
                    "--foreground --quiet --config-net --mtu 65520 \
                     -t 127.0.0.1/8080:80,127.0.0.1/8443:443 -u 127.0.0.1/5353:53 -T none \
                     -U none --dns-forward {dns} --pid /run/d/pasta.pid 42"
                ),
            ),
        ] {
            assert_eq!(words(pasta_args(&plan, fifo, pid)), want);
        }
    }
}
