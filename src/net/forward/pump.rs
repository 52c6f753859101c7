//! TCP bytes of one direction of a connection, moved with splice(2) through a pipe, or through
//! a buffer of the process when no descriptor is free for a pipe: the pools of both, the two
//! directions of a connection, and [`pump`], which moves one direction as far as its sockets
//! let it.
//!
//! A connection holds only its two sockets while idle: a direction takes a pipe (two
//! descriptors) or a buffer when bytes come, and gives it back once they are written. A pipe
//! is taken only while the forwarder's descriptors allow one, so that connections never wait
//! for each other's pipes: past that, bytes go through a buffer (a read and a write, one copy
//! more), and forwarding slows down rather than stops.

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice};

use super::{BUFFER_SIZE, IDLE_BUFFERS, IDLE_PIPES, PIPE_SIZE, SPLICE_BUDGET};

/// A pipe for splice, and how much it holds.
pub(super) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    size: usize,
    /// The pool's count of pipes that exist, less this one when it is dropped.
    live: Rc<Cell<usize>>,
}

impl Drop for Pipe {
    fn drop(&mut self) {
        self.live.set(self.live.get() - 1);
    }
}

/// Empty pipes and buffers for reuse: a pipe is created and sized once, not per connection.
#[derive(Default)]
pub(super) struct Pipes {
    pub(super) idle: Vec<Pipe>,
    /// The pipes that exist, idle or holding bytes (two descriptors each).
    live: Rc<Cell<usize>>,
    buffers: Vec<Box<[u8]>>,
}

impl Pipes {
    /// The pipes that exist.
    pub(super) fn live(&self) -> usize {
        self.live.get()
    }

    /// An idle pipe, or a new one if `may_make` (the forwarder's descriptors allow two more);
    /// `None` when there is none or it could not be made.
    fn take(&mut self, may_make: bool) -> Option<Pipe> {
        if let Some(pipe) = self.idle.pop() {
            return Some(pipe);
        }
        if !may_make {
            return None;
        }
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).ok()?;
        // Refused past the user's pipe-user-pages-soft: the pipe keeps its default size.
        let size = fcntl(&write, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE as i32))
            .or_else(|_| fcntl(&write, FcntlArg::F_GETPIPE_SZ))
            .map_or(4096, |n| n as usize);
        self.live.set(self.live.get() + 1);
        Some(Pipe {
            read,
            write,
            size,
            live: Rc::clone(&self.live),
        })
    }

    fn buffer(&mut self) -> Box<[u8]> {
        self.buffers
            .pop()
            .unwrap_or_else(|| vec![0; BUFFER_SIZE].into_boxed_slice())
    }

    /// Take back what a direction held, empty now.
    fn put(&mut self, held: Held) {
        match held {
            Held::Pipe(pipe) if self.idle.len() < IDLE_PIPES => self.idle.push(pipe),
            Held::Buffer { buf, .. } if self.buffers.len() < IDLE_BUFFERS => self.buffers.push(buf),
            _ => {}
        }
    }
}

/// What a direction holds of the bytes read and not yet written.
#[derive(Default)]
enum Held {
    #[default]
    Nothing,
    Pipe(Pipe),
    /// The bytes are `buf[start..start + queued]`.
    Buffer {
        buf: Box<[u8]>,
        start: usize,
    },
}

/// One direction of a TCP connection.
#[derive(Default)]
pub(super) struct Dir {
    held: Held,
    /// Bytes read and not yet written.
    queued: usize,
    /// The last write would have blocked: the destination's EPOLLOUT resumes.
    pub(super) blocked: bool,
    pub(super) state: DirState,
}

#[derive(Default, PartialEq, Eq)]
pub(super) enum DirState {
    #[default]
    Open,
    /// The source ended; its end is passed on once the pipe is empty.
    Ending,
    /// The end is passed on (shutdown(SHUT_WR) of the destination).
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Way {
    /// Client to server.
    Up,
    /// Server to client.
    Down,
}

impl Way {
    pub(super) fn other(self) -> Way {
        match self {
            Way::Up => Way::Down,
            Way::Down => Way::Up,
        }
    }
}

pub(super) struct Conn {
    pub(super) host: TcpStream,
    pub(super) inside: TcpStream,
    pub(super) up: Dir,
    pub(super) down: Dir,
    /// The client's address, as the per-client limit counts it.
    pub(super) client: std::net::IpAddr,
    /// When bytes last moved, or either socket had news: the idle timeout counts from here.
    pub(super) last: Instant,
}

impl Conn {
    pub(super) fn dir(&mut self, way: Way) -> (&mut Dir, &TcpStream, &TcpStream) {
        match way {
            Way::Up => (&mut self.up, &self.host, &self.inside),
            Way::Down => (&mut self.down, &self.inside, &self.host),
        }
    }
}

/// What a turn of [`pump`] left.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Pumped {
    /// Waiting for an event (or finished).
    Waiting,
    /// Its budget is spent: run again after the others.
    More,
    /// A socket failed (reset, or gone): the connection is over.
    Failed,
}

/// Move bytes of one direction until a socket would block, the direction ends, or its budget
/// is spent. Both sockets are non-blocking and edge-triggered, so "would block" is what brings
/// the next event. `may_pipe`: a new pipe may be made (else an idle one, or a buffer).
///
/// `last`: the other direction is over, so the connection closes when this one ends, and
/// close(2) passes the end on (a FIN: both receive queues are empty by then).
pub(super) fn pump(
    dir: &mut Dir,
    from: &TcpStream,
    to: &TcpStream,
    pipes: &mut Pipes,
    may_pipe: bool,
    last: bool,
) -> Pumped {
    // SPLICE_F_MORE (a cork hint) cost a fifth of the throughput in measurements here.
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    let mut budget = SPLICE_BUDGET;
    loop {
        match write_held(dir, to, flags) {
            Ok(true) => {}
            Ok(false) => {
                dir.blocked = true;
                return Pumped::Waiting;
            }
            Err(()) => return Pumped::Failed,
        }
        dir.blocked = false;
        pipes.put(std::mem::take(&mut dir.held));
        match dir.state {
            DirState::Open => {}
            DirState::Ending => {
                // Half-close passed on: the server sees the client's end, or the other way.
                if !last {
                    let _ = to.shutdown(std::net::Shutdown::Write);
                }
                dir.state = DirState::Done;
                return Pumped::Waiting;
            }
            DirState::Done => return Pumped::Waiting,
        }
        if budget == 0 {
            return Pumped::More;
        }
        budget -= 1;
        let (read, held) = match pipes.take(may_pipe) {
            Some(pipe) => (
                splice(from, None, &pipe.write, None, pipe.size, flags),
                Held::Pipe(pipe),
            ),
            None => {
                let mut buf = pipes.buffer();
                let read = (&*from).read(&mut buf).map_err(|e| io_errno(&e));
                (read, Held::Buffer { buf, start: 0 })
            }
        };
        match read {
            Ok(0) => {
                dir.state = DirState::Ending;
                pipes.put(held);
            }
            Ok(n) => {
                dir.queued = n;
                dir.held = held;
            }
            Err(Errno::EINTR) => pipes.put(held),
            Err(Errno::EAGAIN) => {
                pipes.put(held);
                return Pumped::Waiting;
            }
            Err(_) => return Pumped::Failed,
        }
    }
}

/// Write what `dir` holds to `to`: Ok(true) once all of it is written, Ok(false) when `to`
/// would block first, Err when it failed.
fn write_held(dir: &mut Dir, to: &TcpStream, flags: SpliceFFlags) -> Result<bool, ()> {
    while dir.queued > 0 {
        let written = match &mut dir.held {
            Held::Pipe(pipe) => splice(&pipe.read, None, to, None, dir.queued, flags),
            Held::Buffer { buf, start } => (&*to)
                .write(&buf[*start..*start + dir.queued])
                .map_err(|e| io_errno(&e)),
            Held::Nothing => return Ok(true),
        };
        match written {
            Ok(0) => return Err(()),
            Ok(n) => {
                dir.queued -= n;
                if let Held::Buffer { start, .. } = &mut dir.held {
                    *start += n;
                }
            }
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => return Ok(false),
            Err(_) => return Err(()),
        }
    }
    Ok(true)
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(nix::libc::EIO))
}
