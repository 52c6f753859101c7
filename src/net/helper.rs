//! Running slirp4netns or pasta against the namespace process: started from outside, waited
//! for until it says the interface is configured, and never outliving become-root.
//!
//! Lifetime: the helper gets a parent-death SIGKILL (kept across its exec: it is not
//! set-user-ID), so it dies with become-root even on SIGKILL; slirp4netns also watches an exit
//! pipe whose write end only become-root holds. become-root kills and reaps it when COMMAND
//! ends. Its stderr goes to an anonymous memory file that is read only for error messages, so
//! a chatty helper can never block on a full pipe.

use std::fs::File;
use std::io::{Read, Seek};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::unistd::Pid;

use super::{Driver, NetError, NetPlan};
use crate::sys;

/// How long a helper may take to configure the interface.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A started helper.
pub struct Running {
    program: String,
    child: Child,
    ready: File,
    /// slirp4netns leaves when this closes.
    exit: Option<File>,
    stderr: File,
}

/// Start the helper for `plan` against the namespace process `target`.
pub fn start(plan: &NetPlan, target: Pid) -> Result<Running, NetError> {
    let program = plan.driver.program().to_string();
    let fail = |why: String| NetError::Start {
        program: program.clone(),
        why,
    };
    let pipe =
        || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| fail(e.desc().to_string()));
    let (ready_r, ready_w) = pipe()?;
    let stderr = sys::memfd(c"helper-stderr").map_err(|e| fail(e.desc().to_string()))?;
    // Descriptors the helper gets, at fixed numbers from 3 up; every other one is closed.
    let mut give: Vec<OwnedFd> = vec![ready_w];
    let mut exit = None;
    let mut cmd = Command::new(&plan.program);
    match plan.driver {
        Driver::Slirp4netns => {
            let (exit_r, exit_w) = pipe()?;
            give.push(exit_r);
            exit = Some(File::from(exit_w));
            cmd.args([
                "--configure",
                &format!("--mtu={}", plan.mtu),
                "--ready-fd=3",
                "--exit-fd=4",
            ]);
            if !plan.allow_host_loopback {
                cmd.arg("--disable-host-loopback");
            }
            // Its own mount namespace without capabilities, and a seccomp filter: a bug in
            // the user-mode TCP/IP stack then reaches less.
            cmd.args(["--enable-sandbox", "--enable-seccomp"]);
            cmd.arg(target.to_string()).arg("tap0");
        }
        Driver::Pasta => {
            cmd.args([
                "--foreground",
                "--quiet",
                "--config-net",
                "--mtu",
                &plan.mtu.to_string(),
            ]);
            // No port is forwarded in either direction unless published: pasta's default
            // (auto) would forward every port bound inside to the host and every port bound
            // on the host into the namespace.
            cmd.args(["-t", "none", "-u", "none", "-T", "none", "-U", "none"]);
            if !plan.allow_host_loopback {
                cmd.arg("--no-map-gw");
            }
            cmd.args(["--dns-forward", plan.driver.dns_forwarder()]);
            // pasta writes its pid file once the namespace is configured: that is its
            // readiness, delivered into our pipe.
            cmd.args(["--pid", "/proc/self/fd/3"]);
            cmd.arg(target.to_string());
        }
    }
    let stderr_fd = stderr.try_clone().map_err(|e| fail(e.to_string()))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr_fd);
    sys::hand_fds_to_helper(&mut cmd, give.iter().map(|fd| fd.as_raw_fd()).collect());
    let child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
    drop(give);
    Ok(Running {
        program,
        child,
        ready: File::from(ready_r),
        exit,
        stderr,
    })
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
            let mut fds = [PollFd::new(self.ready.as_fd(), PollFlags::POLLIN)];
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
        let mut byte = [0u8; 1];
        if matches!(self.ready.read(&mut byte), Ok(1)) {
            return Ok(());
        }
        // End of file without a word: the helper died.
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

    /// End the helper. Once SIGKILL is delivered it runs no more code, so become-root does
    /// not wait: closing the TAP device makes the kernel unregister it and wait for an RCU
    /// grace period (about 20 ms here, measured), which would only delay COMMAND's caller. The
    /// dying process is reaped by whoever inherits it.
    pub fn stop(mut self) {
        drop(self.exit.take());
        let _ = self.child.kill();
    }
}
