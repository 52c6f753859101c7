//! become-root's fuse helper: the process that starts fuse-overlayfs out of COMMAND's reach
//! (fuse.rs says why), and the messages the namespace process exchanges with it.
//!
//! become-root forks it before the namespace process sets up: it makes a user namespace of
//! its own, become-root writes that namespace's maps (the run's maps, with newuidmap and
//! newgidmap, from the parent namespace), and it becomes root there. It then serves one
//! socket (SOCK_SEQPACKET): for each request it starts fuse-overlayfs, chrooted to the root
//! directory the namespace process sent, serving the /dev/fuse descriptor sent with it; asked
//! why a mount did not come up, it answers with fuse-overlayfs's end and standard error. When
//! the namespace process closes its end (it holds nothing of become-root's once COMMAND runs),
//! the helper waits for its fuse-overlayfs processes, which end when the run's mount
//! namespace goes (the kernel aborts a FUSE connection whose mount is gone), and exits.

use std::io::{IoSlice, IoSliceMut, Read, Seek, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};
use nix::unistd::Pid;

use crate::error::Error;
use crate::sys::{self, Forked};

/// How long a fuse-overlayfs that failed may take to end by itself before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// The largest message: a request names the program and the options (paths of the layers).
const MAX_MESSAGE: usize = 64 * 1024;

/// The two ends of the channel between the namespace process and the helper (the first is
/// the namespace process's), close-on-exec.
pub fn channel() -> nix::Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
}

/// fuse-overlayfs, started to serve the FUSE connection `fuse` (mounted already), with its
/// standard error in memory.
pub(super) struct Running {
    child: Child,
    stderr: std::fs::File,
}

/// Start `program -f -o OPTIONS /dev/fd/3` with `fuse` as descriptor 3 (libfuse 3.3 and later
/// serve a connection the parent mounted when the mount point is /dev/fd/N), as a child with
/// a parent-death signal, chrooted to `root` (the program too is looked up there).
pub(super) fn spawn(
    program: &Path,
    options: &str,
    fuse: &OwnedFd,
    root: &OwnedFd,
) -> std::io::Result<Running> {
    let stderr = sys::memfd(c"fuse-overlayfs-stderr").map_err(std::io::Error::from)?;
    let mut cmd = Command::new(program);
    cmd.args(["-f", "-o", options, "/dev/fd/3"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr.try_clone()?);
    // The root first: renumbering the connection to 3 may overwrite the root's descriptor.
    sys::chroot_before_exec(&mut cmd, root.as_raw_fd());
    sys::hand_fds_to_helper(&mut cmd, vec![fuse.as_raw_fd()]);
    let child = cmd.spawn()?;
    Ok(Running { child, stderr })
}

impl Running {
    pub(super) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// How it ended, and what it said: waited for up to [`EXIT_GRACE`] (a failed mount comes
    /// with its exit), else killed.
    pub(super) fn ended(mut self) -> (String, String) {
        let deadline = Instant::now() + EXIT_GRACE;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status.to_string(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break "killed, as it did not answer".to_string();
                }
                Err(e) => break e.to_string(),
            }
        };
        let mut text = String::new();
        let _ = self.stderr.rewind();
        let _ = self.stderr.read_to_string(&mut text);
        (status, text.trim().to_string())
    }
}

/// Ask the helper to start `program` with `options` on the FUSE connection `fuse`, chrooted
/// to `root` (the namespace process's root directory); returns once fuse-overlayfs runs.
pub(super) fn ask_start(
    channel: &OwnedFd,
    program: &Path,
    options: &str,
    fuse: &OwnedFd,
    root: &OwnedFd,
) -> Result<(), Error> {
    let mut request = b"start\0".to_vec();
    request.extend(program.as_os_str().as_bytes());
    request.push(0);
    request.extend(options.as_bytes());
    let answer = ask(channel, &request, &[fuse.as_raw_fd(), root.as_raw_fd()])?;
    match answer.split_once('\0') {
        None if answer == "ok" => Ok(()),
        Some(("error", why)) => Err(Error::new("starting fuse-overlayfs", why.to_string())),
        _ => Err(Error::new(
            "become-root's fuse helper",
            format!("answered {answer:?}"),
        )),
    }
}

/// Ask the helper how the fuse-overlayfs it started last ended (it is made to, if it has
/// not): its status and its standard error.
pub(super) fn ask_why(channel: &OwnedFd) -> Result<(String, String), Error> {
    let answer = ask(channel, b"why", &[])?;
    let (status, stderr) = answer.split_once('\0').unwrap_or((&answer, ""));
    Ok((status.to_string(), stderr.to_string()))
}

/// Send `request` with `fds` and return the answer.
fn ask(channel: &OwnedFd, request: &[u8], fds: &[RawFd]) -> Result<String, Error> {
    let fail = |e: nix::Error| Error::sys("asking become-root's fuse helper", e);
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    sendmsg::<()>(
        channel.as_raw_fd(),
        &[IoSlice::new(request)],
        cmsgs,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(fail)?;
    let (answer, _) = receive(channel).map_err(fail)?;
    if answer.is_empty() {
        return Err(Error::new(
            "become-root's fuse helper",
            "ended before it answered",
        ));
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// One message and the descriptors that came with it (empty at the end of the channel).
fn receive(channel: &OwnedFd) -> nix::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut space = nix::cmsg_space!([RawFd; 2]);
    let (n, fds) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = loop {
            match recvmsg::<()>(
                channel.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(nix::Error::EINTR) => continue,
                done => break done?,
            }
        };
        let mut fds = Vec::new();
        for cmsg in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(received) = cmsg {
                fds.extend(received.into_iter().map(sys::own_received_fd));
            }
        }
        (msg.bytes, fds)
    };
    buf.truncate(n);
    Ok((buf, fds))
}

/// Fork the helper, serving `channel`. It makes its user namespace at once; `write_maps`
/// (called here, in the parent namespace) writes the run's maps for it, and then it sets
/// its ids to 0 where 0 is mapped (`root`: uid, gid), as the namespace process does.
pub fn start_helper(
    channel: OwnedFd,
    root: (bool, bool),
    write_maps: impl FnOnce(Pid) -> Result<(), Error>,
) -> Result<Pid, Error> {
    let pipe = || {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map(|(r, w)| (std::fs::File::from(r), std::fs::File::from(w)))
            .map_err(|e| Error::sys("pipe", e))
    };
    let (made_r, made_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    let parent = nix::unistd::getpid();
    match sys::fork_process().map_err(|e| Error::sys("fork", e))? {
        Forked::Child => {
            drop((made_r, go_w));
            helper_main(parent, channel, made_w, go_r, root)
        }
        Forked::Parent(pid) => {
            drop((made_w, go_r, channel));
            let mut made = made_r;
            let mut byte = [0u8; 1];
            if !matches!(made.read(&mut byte), Ok(1)) {
                let _ = nix::sys::wait::waitpid(pid, None);
                return Err(Error::new(
                    "starting become-root's fuse helper",
                    "it could not make its user namespace",
                )
                .with_hint(
                    "see user_namespaces(7): the number of user namespaces may be limited",
                ));
            }
            let started = write_maps(pid).and_then(|()| {
                (&go_w).write_all(b"1").map_err(|e| {
                    Error::sys("starting become-root's fuse helper", sys::io_errno(&e))
                })
            });
            if let Err(e) = started {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(pid, None);
                return Err(e);
            }
            Ok(pid)
        }
    }
}

/// The helper, from fork to exit.
fn helper_main(
    parent: Pid,
    channel: OwnedFd,
    mut made: std::fs::File,
    mut go: std::fs::File,
    (uid, gid): (bool, bool),
) -> ! {
    use nix::sys::signal::Signal;
    // Dies with become-root (checked against the race of become-root dying first); the
    // fuse-overlayfs processes it starts die with it in turn.
    if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err() || nix::unistd::getppid() != parent
    {
        sys::exit_now(1);
    }
    // A user namespace of its own, a sibling of the run's: root inside the run has no
    // capability over it, so the kernel refuses to let it read this process's (or its
    // children's) /proc/PID/fd, root or cwd (cap_ptrace_access_check).
    if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).is_err()
        || made.write_all(b"1").is_err()
    {
        sys::exit_now(1);
    }
    let mut byte = [0u8; 1];
    if !matches!(go.read(&mut byte), Ok(1)) {
        sys::exit_now(1);
    }
    let zero = (nix::unistd::Uid::from_raw(0), nix::unistd::Gid::from_raw(0));
    if (gid && nix::unistd::setresgid(zero.1, zero.1, zero.1).is_err())
        || (uid && nix::unistd::setresuid(zero.0, zero.0, zero.0).is_err())
    {
        sys::exit_now(1);
    }
    // Nothing of become-root's but the channel (the pipes' owners never run again).
    sys::keep_only_fd(channel.as_raw_fd());
    serve(&channel)
}

/// Serve requests until the namespace process closes its end, then wait for every
/// fuse-overlayfs started and exit.
fn serve(channel: &OwnedFd) -> ! {
    let mut running: Vec<Running> = Vec::new();
    loop {
        let Ok((message, mut fds)) = receive(channel) else {
            break;
        };
        let answer = if message.is_empty() {
            break;
        } else if message == b"why" {
            match running.pop() {
                Some(last) => {
                    let (status, stderr) = last.ended();
                    format!("{status}\0{stderr}")
                }
                None => "unknown\0no fuse-overlayfs was started".to_string(),
            }
        } else if let (Some(rest), 2) = (message.strip_prefix(b"start\0"), fds.len()) {
            let root = fds.pop().expect("two descriptors");
            let fuse = fds.pop().expect("two descriptors");
            let mut parts = rest.splitn(2, |&b| b == 0);
            let program = PathBuf::from(std::ffi::OsStr::from_bytes(parts.next().unwrap_or(b"")));
            let options = String::from_utf8_lossy(parts.next().unwrap_or(b"")).into_owned();
            match spawn(&program, &options, &fuse, &root) {
                Ok(started) => {
                    running.push(started);
                    "ok".to_string()
                }
                Err(e) => format!("error\0cannot start {}: {e}", program.display()),
            }
        } else {
            "error\0a request it does not know".to_string()
        };
        if sendmsg::<()>(
            channel.as_raw_fd(),
            &[IoSlice::new(answer.as_bytes())],
            &[],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .is_err()
        {
            break;
        }
    }
    for mut started in running {
        let _ = started.child.wait();
    }
    sys::exit_now(0)
}
