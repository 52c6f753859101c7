//! How COMMAND ended, and the other reports the namespace process (or a pid namespace's
//! init) sends become-root over a pipe, five bytes each.

use std::io::Read;

use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use crate::sys;

/// What happened to COMMAND, sent by a pid namespace's init to become-root over a pipe
/// (become-root cannot wait for a grandchild, and init cannot die of a signal sent by itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Exited(i32),
    Killed(Signal),
    /// Stopped (Ctrl-Z): become-root stops too, so the caller's shell sees a stopped job.
    Stopped(Signal),
    /// Not an ending: the namespace process finished its setup (for `--info-fd`).
    Ready,
    /// Not an ending: a helper the namespace process left running for COMMAND
    /// (fuse-overlayfs), or their warden (launch/warden.rs), by its pid. When COMMAND ends,
    /// its parent-death signal or the warden ends it, and it becomes become-root's child
    /// (become-root is a child subreaper), so become-root can wait for it: a run is over only
    /// once its helpers are gone.
    Helper(i32),
}

impl Ending {
    fn helper(&self) -> Option<Pid> {
        match self {
            Ending::Helper(pid) => Some(Pid::from_raw(*pid)),
            _ => None,
        }
    }

    pub(super) fn from_wait(status: WaitStatus) -> Option<Self> {
        match status {
            WaitStatus::Exited(_, code) => Some(Ending::Exited(code)),
            WaitStatus::Signaled(_, sig, _) => Some(Ending::Killed(sig)),
            WaitStatus::Stopped(_, sig) => Some(Ending::Stopped(sig)),
            _ => None,
        }
    }

    pub fn encode(self) -> [u8; 5] {
        let (kind, value) = match self {
            Ending::Exited(code) => (0u8, code),
            Ending::Killed(sig) => (1u8, sig as i32),
            Ending::Stopped(sig) => (2u8, sig as i32),
            Ending::Ready => (3u8, 0),
            Ending::Helper(pid) => (4u8, pid),
        };
        let mut out = [kind, 0, 0, 0, 0];
        out[1..].copy_from_slice(&value.to_le_bytes());
        out
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<Self> {
        let value = i32::from_le_bytes(bytes.get(1..5)?.try_into().ok()?);
        match bytes[0] {
            0 => Some(Ending::Exited(value)),
            1 => Signal::try_from(value).ok().map(Ending::Killed),
            2 => Signal::try_from(value).ok().map(Ending::Stopped),
            3 => Some(Ending::Ready),
            4 if value > 0 => Some(Ending::Helper(value)),
            _ => None,
        }
    }

    /// How COMMAND ended, in words: `exited 3`, `killed by SIGTERM`.
    pub fn describe(&self) -> String {
        match self {
            Ending::Exited(code) => format!("exited {code}"),
            Ending::Killed(sig) => format!("killed by {}", sig.as_str()),
            Ending::Stopped(sig) => format!("stopped by {}", sig.as_str()),
            Ending::Ready | Ending::Helper(_) => "running".into(),
        }
    }

    /// End become-root the same way.
    pub fn finish(self) -> ! {
        match self {
            Ending::Exited(code) => std::process::exit(code),
            Ending::Killed(sig) | Ending::Stopped(sig) => sys::die_of(sig),
            Ending::Ready | Ending::Helper(_) => std::process::exit(0),
        }
    }
}

/// The reports left in `pipe`, to its end; the helpers they name go to `helpers`.
pub fn read_reports(pipe: &mut std::fs::File, helpers: &mut Vec<Pid>) -> Vec<Ending> {
    let mut rest = Vec::new();
    let _ = pipe.read_to_end(&mut rest);
    let messages: Vec<Ending> = rest.chunks(5).filter_map(Ending::decode).collect();
    helpers.extend(messages.iter().filter_map(Ending::helper));
    messages
}
