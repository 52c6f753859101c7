//! Live ports: `become-root --join=NAME --publish=SPEC` and `--unpublish=SPEC` change the
//! published ports of a running session, through a unix socket of the session's
//! (`NAME.ports` in its state directory, which only its user can enter).
//!
//! The joining become-root binds the host port itself, as a new run does (so a port in use,
//! one below ip_unprivileged_port_start or an address not of this host is its own error,
//! said before anything is sent), and passes the bound socket (SCM_RIGHTS) with the spec:
//! nothing of the session changes unless the whole request succeeds. The session's control
//! thread checks the sender (its uid must be the session's), the socket and the spec, hands the
//! port to the forwarder's event loop (or takes it away: the listener closes, connections
//! already made go on until they end, as a removed rootlesskit port's do), records the ports
//! for --list and --info-fd, and answers.
//!
//! A session whose slirp4netns forwards its ports (`--port-driver=helper`) is served the same
//! way, through slirp4netns's API socket instead of the event loop (the joining become-root's
//! socket is closed first: slirp4netns binds the port itself).
//!
//! Messages, one SEQPACKET message each: `publish SPEC` (with the socket) or `unpublish SPEC`;
//! the answer `ok PORT` (`127.0.0.1:8080->80/tcp`) or `error WHY`.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::mpsc::{Sender, channel};
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, Backlog, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
    SockaddrStorage, UnixAddr, accept4, bind, connect, getsockname, getsockopt, listen, recvmsg,
    sendmsg, setsockopt, socket, sockopt,
};

use super::{Bound, HostSocket};
use crate::net::ports::{self, Proto, Publish};

/// How long either side waits for the other's message.
const PATIENCE: Duration = Duration::from_secs(5);

/// A change asked of the forwarder's event loop, and where its outcome goes.
pub(super) enum Change {
    Add(Bound, Sender<Result<(), String>>),
    Remove(SocketAddr, Proto, Sender<Result<(), String>>),
}

/// What the session gives the forwarder for live ports.
pub struct Control {
    /// The session's listening socket (see [`listen`]).
    pub listener: OwnedFd,
    /// Called with the ports as they are after each change (host address, port inside,
    /// protocol), before the joining become-root hears that it succeeded: the session records
    /// them.
    pub changed: OnChange,
}

/// A published port as shown: host address, port inside, protocol (as --info-fd has them).
pub type PortShown = (String, u16, String);

/// What a change of ports calls.
pub type OnChange = Box<dyn FnMut(&[PortShown]) + Send>;

/// A published port as the session keeps it.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    local: SocketAddr,
    ns_port: u16,
    proto: Proto,
}

impl Entry {
    pub(super) fn of(bound: &Bound) -> Entry {
        Entry {
            local: bound.local,
            ns_port: bound.publish.ns_port,
            proto: bound.publish.proto,
        }
    }

    fn shown(&self) -> String {
        format!("{}->{}/{}", self.local, self.ns_port, self.proto)
    }

    fn parts(&self) -> (String, u16, String) {
        (self.local.to_string(), self.ns_port, self.proto.to_string())
    }
}

/// The session's socket at `path`, listening (a stale one from a killed session of the same
/// name is replaced).
pub fn listen_at(path: &Path) -> nix::Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let _ = std::fs::remove_file(path);
    bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    listen(&fd, Backlog::new(16)?)?;
    Ok(fd)
}

/// Who carries a change out.
pub(super) enum Target {
    /// become-root's forwarder: its event loop, woken through the pipe.
    Forwarder(Sender<Change>, OwnedFd),
    /// slirp4netns (`--port-driver=helper`), through its API socket; the run's network plan
    /// for the checks a new run makes (crate::net::helper_forwards).
    Slirp4netns(std::path::PathBuf, Box<crate::net::NetPlan>),
}

/// Serve the control socket until the process ends: one request at a time, each answered.
pub(super) fn serve(mut control: Control, entries: Vec<Entry>, target: Target) {
    std::thread::spawn(move || {
        let mut entries = entries;
        loop {
            let Ok(conn) = accept4(control.listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) else {
                std::thread::sleep(Duration::from_millis(100)); // EMFILE: wait for one
                continue;
            };
            let conn = crate::sys::own_accepted_fd(conn);
            let answer = match serve_one(&conn, &mut entries, &target) {
                Ok(port) => {
                    let now: Vec<_> = entries.iter().map(Entry::parts).collect();
                    (control.changed)(&now);
                    format!("ok {port}")
                }
                Err(why) => format!("error {why}"),
            };
            let _ = sendmsg::<()>(
                conn.as_raw_fd(),
                &[IoSlice::new(answer.as_bytes())],
                &[],
                MsgFlags::MSG_NOSIGNAL,
                None,
            );
        }
    });
}

/// Serve a session whose slirp4netns forwards its ports (`--port-driver=helper`), through its
/// API socket at `api`; `forwards` are the ports it forwards already.
pub fn serve_helper(control: Control, plan: &crate::net::NetPlan, api: std::path::PathBuf) {
    let entries = plan
        .forwards
        .iter()
        .map(|p| Entry {
            local: SocketAddr::new(p.host_ip, p.host_port),
            ns_port: p.ns_port,
            proto: p.proto,
        })
        .collect();
    serve(
        control,
        entries,
        Target::Slirp4netns(api, Box::new(plan.clone())),
    );
}

/// One request: read it, check it, have the event loop carry it out. The port changed.
fn serve_one(conn: &OwnedFd, entries: &mut Vec<Entry>, target: &Target) -> Result<String, String> {
    let (text, passed) = read_request(conn, target)?;
    let (verb, spec) = text.split_once(' ').ok_or("a request without a spec")?;
    let asked = ports::parse(spec).map_err(|e| e.to_string())?;
    match (verb, passed) {
        ("publish", Some(socket)) => {
            let bound = adopt(socket, asked)?;
            if let Some(e) = entries
                .iter()
                .find(|e| e.local == bound.local && e.proto == bound.publish.proto)
            {
                return Err(format!("{} is published already ({})", e.local, e.shown()));
            }
            publish(bound, entries, target)
        }
        ("unpublish", None) => match entries.iter().position(|e| unpublishes(&asked, e)) {
            Some(i) => unpublish(i, entries, target),
            None => {
                let ports: Vec<String> = entries.iter().map(Entry::shown).collect();
                Err(format!(
                    "{spec} is not published here (the session's ports: {})",
                    if ports.is_empty() {
                        "none".into()
                    } else {
                        ports.join(", ")
                    }
                ))
            }
        },
        _ => Err(format!("a request not understood: {verb}")),
    }
}

/// A request's text and the socket passed with it, from the session's own user only (the
/// directory is theirs alone, 0700, and a socket passed in is used as a host port of
/// theirs).
fn read_request(conn: &OwnedFd, target: &Target) -> Result<(String, Option<OwnedFd>), String> {
    let peer = getsockopt(conn, sockopt::PeerCredentials).map_err(|e| e.to_string())?;
    if peer.uid() != nix::unistd::getuid().as_raw() {
        return Err("not the session's user".into());
    }
    let timeout = nix::sys::time::TimeVal::new(PATIENCE.as_secs() as i64, 0);
    let _ = setsockopt(conn, sockopt::ReceiveTimeout, &timeout);
    let mut bytes = [0u8; 512];
    let mut iov = [IoSliceMut::new(&mut bytes)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| format!("reading the request: {e}"))?;
    let mut passed = None;
    for c in msg.cmsgs().map_err(|e| e.to_string())? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                let fd = crate::sys::own_received_fd(fd);
                passed.get_or_insert(fd);
            }
        }
    }
    let n = msg.bytes;
    // The joining become-root closes its copy of the socket, then ends its request: a helper
    // that binds the port itself may do so only then (seen: slirp4netns's bind failed while
    // the joiner had not closed its copy yet).
    if matches!(target, Target::Slirp4netns(..)) {
        let mut end = [0u8; 1];
        let mut iov = [IoSliceMut::new(&mut end)];
        match recvmsg::<()>(conn.as_raw_fd(), &mut iov, None, MsgFlags::empty()) {
            Ok(m) if m.bytes == 0 => {}
            _ => return Err("the request did not end".into()),
        }
    }
    let text = std::str::from_utf8(&bytes[..n]).map_err(|_| "a request that is not text")?;
    Ok((text.to_string(), passed))
}

/// Publish `bound` through the target, and record it.
fn publish(bound: Bound, entries: &mut Vec<Entry>, target: &Target) -> Result<String, String> {
    let entry = Entry::of(&bound);
    match target {
        Target::Forwarder(changes, wake) => {
            carry_out(changes, wake, |done| Change::Add(bound, done))?
        }
        Target::Slirp4netns(api, plan) => slirp4netns_add(api, plan, bound)?,
    }
    let shown = entry.shown();
    entries.push(entry);
    Ok(shown)
}

/// Stop publishing entry `i` through the target, and forget it.
fn unpublish(i: usize, entries: &mut Vec<Entry>, target: &Target) -> Result<String, String> {
    let entry = &entries[i];
    match target {
        Target::Forwarder(changes, wake) => {
            let (local, proto) = (entry.local, entry.proto);
            carry_out(changes, wake, |done| Change::Remove(local, proto, done))?
        }
        Target::Slirp4netns(api, _) => slirp4netns_remove(api, entry)?,
    }
    let entry = entries.remove(i);
    Ok(entry.shown())
}

/// Send the event loop a change, wake it and wait for its outcome.
fn carry_out(
    changes: &Sender<Change>,
    wake: &OwnedFd,
    change: impl FnOnce(Sender<Result<(), String>>) -> Change,
) -> Result<(), String> {
    let (done, outcome) = channel();
    changes
        .send(change(done))
        .map_err(|_| "the forwarder has stopped")?;
    let _ = nix::unistd::write(wake, b"c");
    outcome
        .recv_timeout(PATIENCE)
        .map_err(|_| "the forwarder did not answer".to_string())?
}

/// slirp4netns binds the port itself: the joining become-root's socket (which showed the port
/// free, and chose it for host port 0) closes first, then the checks of a new run's helper
/// driver (crate::net::helper_can_forward), then add_hostfwd.
fn slirp4netns_add(api: &Path, plan: &crate::net::NetPlan, bound: Bound) -> Result<(), String> {
    let publish = Publish {
        host_port: bound.local.port(),
        ..bound.publish
    };
    drop(bound); // the joining become-root closed its copy before it ended its request
    crate::net::helper_can_forward(plan, &publish).map_err(|e| e.to_string())?;
    let request = format!(
        "{{\"execute\": \"add_hostfwd\", \"arguments\": {{\"proto\": \"{}\", \
         \"host_addr\": \"{}\", \"host_port\": {}, \"guest_port\": {}}}}}",
        publish.proto, publish.host_ip, publish.host_port, publish.ns_port
    );
    crate::net::helper::slirp4netns_api(api, &request).map(drop)
}

/// Find the forward's id (list_hostfwd) and remove it.
fn slirp4netns_remove(api: &Path, entry: &Entry) -> Result<(), String> {
    let list = crate::net::helper::slirp4netns_api(api, "{\"execute\": \"list_hostfwd\"}")?;
    let id = hostfwd_id(&list, entry)
        .ok_or_else(|| format!("slirp4netns does not forward {}", entry.shown()))?;
    let request = format!("{{\"execute\": \"remove_hostfwd\", \"arguments\": {{\"id\": {id}}}}}");
    crate::net::helper::slirp4netns_api(api, &request).map(drop)
}

/// The id of `entry` in slirp4netns's list_hostfwd reply: `{"return": {"entries": [{"id": 1,
/// "proto": "tcp", "host_addr": "127.0.0.1", "host_port": 8080, "guest_addr": "10.0.2.100",
/// "guest_port": 80}, ...]}}`. Read by fields, without a JSON library: each entry is one flat
/// object.
fn hostfwd_id(reply: &str, entry: &Entry) -> Option<u64> {
    let field = |object: &str, name: &str| -> Option<String> {
        let at = object.find(&format!("\"{name}\""))? + name.len() + 2;
        let rest = object[at..].trim_start().strip_prefix(':')?.trim_start();
        let value: String = match rest.strip_prefix('"') {
            Some(quoted) => quoted.split('"').next()?.to_string(),
            None => rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
                .collect(),
        };
        Some(value)
    };
    reply.split('{').skip(1).find_map(|object| {
        let object = object.split('}').next()?;
        let matches = field(object, "proto")? == entry.proto.to_string()
            && field(object, "host_addr")? == entry.local.ip().to_string()
            && field(object, "host_port")? == entry.local.port().to_string()
            && field(object, "guest_port")? == entry.ns_port.to_string();
        matches.then(|| field(object, "id")?.parse().ok())?
    })
}

/// Whether `--unpublish=SPEC` names `entry`: the same host address (127.0.0.1 unless given),
/// host port, port inside and protocol.
fn unpublishes(asked: &Publish, entry: &Entry) -> bool {
    asked.host_ip == entry.local.ip()
        && asked.host_port == entry.local.port()
        && asked.ns_port == entry.ns_port
        && asked.proto == entry.proto
}

/// The socket the joining become-root bound for `asked`, checked to be what the spec says: a
/// listening TCP socket or a UDP one, bound to the spec's address (and port, unless 0).
fn adopt(socket: OwnedFd, asked: Publish) -> Result<Bound, String> {
    let kind = getsockopt(&socket, sockopt::SockType).map_err(|e| e.to_string())?;
    let local: SockaddrStorage = getsockname(socket.as_raw_fd()).map_err(|e| e.to_string())?;
    let local = match (local.as_sockaddr_in(), local.as_sockaddr_in6()) {
        (Some(v4), _) => SocketAddr::from(std::net::SocketAddrV4::from(*v4)),
        (_, Some(v6)) => SocketAddr::from(std::net::SocketAddrV6::from(*v6)),
        _ => return Err("the socket passed is not an IP socket".into()),
    };
    if local.ip() != asked.host_ip || (asked.host_port != 0 && local.port() != asked.host_port) {
        return Err(format!(
            "the socket passed is bound to {local}, not as asked"
        ));
    }
    let socket = match (asked.proto, kind) {
        (Proto::Tcp, SockType::Stream)
            if getsockopt(&socket, sockopt::AcceptConn).unwrap_or(false) =>
        {
            HostSocket::Tcp(TcpListener::from(socket))
        }
        (Proto::Udp, SockType::Datagram) => HostSocket::Udp(UdpSocket::from(socket)),
        _ => return Err(format!("the socket passed is not a {} one", asked.proto)),
    };
    Ok(Bound {
        publish: asked,
        local,
        socket,
    })
}

// ---- the joining side -----------------------------------------------------------------------

/// Ask the session at `path` to publish `spec` (with `socket`, bound for it) or, without
/// one, to unpublish it. The port as the session shows it, or why not. `socket` is closed
/// here once sent, before the request ends (shutdown): the session's copy is then the only
/// one (a helper that binds the port itself needs it free).
pub fn ask(
    path: &Path,
    verb: &str,
    spec: &Publish,
    socket: Option<OwnedFd>,
) -> io::Result<Result<String, String>> {
    let fd = socket_for_asking()?;
    connect(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    let timeout = nix::sys::time::TimeVal::new(2 * PATIENCE.as_secs() as i64, 0);
    setsockopt(&fd, sockopt::ReceiveTimeout, &timeout)?;
    let text = format!("{verb} {spec}");
    let fds: Vec<RawFd> = socket.iter().map(|s| s.as_raw_fd()).collect();
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    sendmsg::<()>(
        fd.as_raw_fd(),
        &[IoSlice::new(text.as_bytes())],
        cmsgs,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    // Then the end of the request: the session knows from it that this copy is closed.
    drop(socket);
    nix::sys::socket::shutdown(fd.as_raw_fd(), nix::sys::socket::Shutdown::Write)?;
    let mut bytes = [0u8; 2048];
    let mut iov = [IoSliceMut::new(&mut bytes)];
    let n = recvmsg::<()>(fd.as_raw_fd(), &mut iov, None, MsgFlags::empty())?.bytes;
    let answer = String::from_utf8_lossy(&bytes[..n]).to_string();
    Ok(match answer.split_once(' ') {
        Some(("ok", port)) => Ok(port.to_string()),
        Some(("error", why)) => Err(why.to_string()),
        _ => Err(format!("an answer not understood: {answer:?}")),
    })
}

fn socket_for_asking() -> nix::Result<OwnedFd> {
    socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::{Entry, hostfwd_id, unpublishes};
    use crate::net::ports::{self, Proto};

    #[test]
    fn unpublish_names_the_host_address_port_inside_and_protocol() {
        let entry = Entry {
            local: "127.0.0.1:8080".parse().unwrap(),
            ns_port: 80,
            proto: Proto::Tcp,
        };
        assert_eq!(entry.shown(), "127.0.0.1:8080->80/tcp");
        for (spec, yes) in [
            ("8080:80", true),
            ("127.0.0.1:8080:80/tcp", true),
            ("8080:81", false),
            ("8081:80", false),
            ("8080:80/udp", false),
            ("[::1]:8080:80", false),
        ] {
            let asked = ports::parse(spec).unwrap();
            assert_eq!(unpublishes(&asked, &entry), yes, "{spec}");
        }
    }

    #[test]
    fn slirp4netns_forwards_are_found_by_their_fields() {
        let reply = r#"{"return": {"entries": [{"id": 3, "proto": "tcp", "host_addr": "127.0.0.1", "host_port": 8081, "guest_addr": "10.0.2.100", "guest_port": 80}, {"id": 7, "proto": "tcp", "host_addr": "127.0.0.1", "host_port": 8080, "guest_addr": "10.0.2.100", "guest_port": 80}]}}"#;
        let entry = |port: u16, proto| Entry {
            local: SocketAddr::new("127.0.0.1".parse().unwrap(), port),
            ns_port: 80,
            proto,
        };
        assert_eq!(hostfwd_id(reply, &entry(8080, Proto::Tcp)), Some(7));
        assert_eq!(hostfwd_id(reply, &entry(8081, Proto::Tcp)), Some(3));
        assert_eq!(hostfwd_id(reply, &entry(8080, Proto::Udp)), None);
        assert_eq!(hostfwd_id(reply, &entry(8082, Proto::Tcp)), None);
    }
}
