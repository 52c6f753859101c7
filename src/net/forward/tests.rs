//! Table tests of the forwarder's encodings, its slab and its deadlines.

use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::socket::{AddressFamily, SockType, setsockopt, sockopt};

use super::SPARES;
use super::provider::{Reply, Request, Wanted, millis_until};
use super::slab::{Key, Slab, Token};
use super::spares::{Spares, connect_now};
use crate::net::ports::Proto;

#[test]
fn requests_round_trip_and_nonsense_is_refused() {
    let rows: &[(Request, &[u8])] = &[
        (
            Request {
                id: 0,
                wanted: Wanted::Connection(Proto::Tcp),
                port: 80,
                client: None,
            },
            &[0, 0, 0, 0, 0, 0, 0, 80],
        ),
        (
            Request {
                id: 0x0403_0201,
                wanted: Wanted::Connection(Proto::Udp),
                port: 0x1451,
                client: None,
            },
            &[1, 2, 3, 4, 1, 0, 0x14, 0x51],
        ),
        (
            Request {
                id: u32::MAX,
                wanted: Wanted::Connection(Proto::Tcp),
                port: u16::MAX,
                client: None,
            },
            &[255, 255, 255, 255, 0, 0, 255, 255],
        ),
        (
            Request {
                id: 9,
                wanted: Wanted::Spare,
                port: 0,
                client: None,
            },
            &[9, 0, 0, 0, 2, 0, 0, 0],
        ),
    ];
    let v4 = Request {
        id: 1,
        wanted: Wanted::Connection(Proto::Tcp),
        port: 80,
        client: Some("192.0.2.3:40000".parse().unwrap()),
    };
    let v4_bytes = [
        1, 0, 0, 0, 0, 0, 0, 80, 4, 0x9c, 0x40, 192, 0, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let v6 = Request {
        client: Some("[2001:db8::3]:1".parse().unwrap()),
        ..v4
    };
    let v6_bytes = [
        1, 0, 0, 0, 0, 0, 0, 80, 6, 0, 1, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3,
    ];
    let rows = [rows, &[(v4, &v4_bytes[..]), (v6, &v6_bytes[..])]].concat();
    for (request, bytes) in &rows {
        assert_eq!(request.encode(), bytes.to_vec(), "{request:?}");
        assert_eq!(Request::decode(bytes), Some(*request), "{bytes:?}");
    }
    let nonsense: &[&[u8]] = &[
        &[],                           // the channel closed
        &[0, 0, 80],                   // the old 3-byte request
        &[0, 0, 0, 0, 3, 0, 0, 80],    // no such request
        &[0, 0, 0, 0, 2, 0, 0, 80],    // a spare names no port
        &[0, 0, 0, 0, 0, 1, 0, 80],    // the padding is not zero
        &[0, 0, 0, 0, 0, 0, 0, 80, 0], // too long
        // a client's address for a UDP socket, or of no family
        &[&[1, 0, 0, 0, 1, 0, 0, 80, 4, 0, 1][..], &[0; 16][..]].concat(),
        &[&[1, 0, 0, 0, 0, 0, 0, 80, 5, 0, 1][..], &[0; 16][..]].concat(),
    ];
    for bytes in nonsense {
        assert_eq!(Request::decode(bytes), None, "{bytes:?}");
    }
}

#[test]
fn replies_round_trip() {
    let rows: &[(Reply, [u8; 8])] = &[
        (Reply { id: 7, errno: 0 }, [7, 0, 0, 0, 0, 0, 0, 0]),
        (
            Reply {
                id: 1,
                errno: nix::libc::ECONNREFUSED,
            },
            [1, 0, 0, 0, 111, 0, 0, 0],
        ),
        (Reply { id: 0, errno: -1 }, [0, 0, 0, 0, 255, 255, 255, 255]),
    ];
    for (reply, bytes) in rows {
        assert_eq!(reply.encode(), *bytes, "{reply:?}");
        assert_eq!(Reply::decode(bytes), Some(*reply), "{bytes:?}");
    }
    assert_eq!(Reply::decode(&[0; 4]), None, "the old 4-byte reply");
    assert_eq!(Reply::decode(&[]), None, "the channel closed");
}

#[test]
fn tokens_round_trip() {
    let key = |index, generation| Key { index, generation };
    let rows = [
        Token::Listener(0),
        Token::Listener(5),
        Token::UdpHost(3),
        Token::Channel,
        Token::Host(key(0, 0)),
        Token::Host(key(0xff_ffff, u32::MAX)),
        Token::Inside(key(12, 1)),
        Token::Flow(key(1, 0x8000_0000)),
    ];
    for token in rows {
        assert_eq!(Token::decode(token.encode()), Some(token), "{token:?}");
    }
    // Host and Inside of one connection differ; no token is 0 (an empty event).
    assert_ne!(
        Token::Host(key(1, 1)).encode(),
        Token::Inside(key(1, 1)).encode()
    );
    assert_eq!(Token::decode(0), None);
}

#[test]
fn a_slab_key_outlives_its_entry_harmlessly() {
    let mut slab = Slab::new();
    let a = slab.insert("a");
    let b = slab.insert("b");
    assert_eq!(slab.remove(a), Some("a"));
    assert_eq!(slab.remove(a), None, "removed once");
    let c = slab.insert("c");
    assert_eq!(c.index, a.index, "the slot is reused");
    assert_ne!(c, a, "under a new generation");
    assert_eq!(slab.get_mut(a), None, "the old key finds nothing");
    assert_eq!(slab.get_mut(c), Some(&mut "c"));
    assert_eq!(slab.get_mut(b), Some(&mut "b"));
    let mut keys: Vec<_> = slab.keys().map(|(k, v)| (k, *v)).collect();
    keys.sort_by_key(|(k, _)| k.index);
    assert_eq!(keys, vec![(c, "c"), (b, "b")]);
}

#[test]
fn accepted_sockets_inherit_tcp_nodelay_from_the_listener() {
    // The forwarder sets TCP_NODELAY once per listener and relies on this (Linux copies
    // the listener's socket into each connection it accepts).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    setsockopt(&listener, sockopt::TcpNoDelay, &true).unwrap();
    let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    assert!(accepted.nodelay().unwrap());
}

#[test]
fn deadlines_round_up_to_the_millisecond() {
    let now = Instant::now();
    let rows: &[(Duration, i32)] = &[
        (Duration::ZERO, 0),
        (Duration::from_micros(1), 1),
        (Duration::from_micros(999), 1),
        (Duration::from_millis(1), 1),
        (Duration::from_micros(1001), 2),
        (Duration::from_secs(60), 60_000),
    ];
    for (ahead, ms) in rows {
        let timeout: i32 = millis_until(now + *ahead, now).into();
        assert_eq!(timeout, *ms, "{ahead:?}");
    }
    let timeout: i32 = millis_until(now, now + Duration::from_secs(1)).into();
    assert_eq!(timeout, 0, "a deadline passed");
}

#[test]
fn a_spare_connects_at_once_or_leaves_the_connection_to_the_provider() {
    use nix::sys::socket::{Backlog, SockFlag, SockaddrIn, bind, listen};
    let spare = || {
        let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
        nix::sys::socket::socket(AddressFamily::Inet, SockType::Stream, flags, None).unwrap()
    };
    // A server that accepts nothing, with room for one connection in its accept queue
    // (backlog 0: Linux queues one). The first is made by the time connect returns; the next
    // SYN is dropped (the queue is full), so that one is left to the provider, which waits.
    let server = spare();
    bind(server.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).unwrap();
    listen(&server, Backlog::new(0).unwrap()).unwrap();
    let addr: SockaddrIn = nix::sys::socket::getsockname(server.as_raw_fd()).unwrap();
    let port = addr.port();
    let first = connect_now(spare(), port, None).expect("connected at once on loopback");
    assert_eq!(first.peer_addr().unwrap().port(), port);
    assert!(
        connect_now(spare(), port, None).is_none(),
        "the accept queue is full"
    );
    drop((first, server));
    // Nothing listens: refused, and left to the provider (which tries ::1 too).
    assert!(connect_now(spare(), port, None).is_none(), "refused");
}

#[test]
fn the_pool_is_refilled_once_half_of_it_is_used() {
    let spare = || {
        let flags = nix::sys::socket::SockFlag::SOCK_CLOEXEC;
        let (family, kind) = (AddressFamily::Inet, SockType::Stream);
        nix::sys::socket::socket(family, kind, flags, None).unwrap()
    };
    let mut spares = Spares::default();
    assert_eq!(spares.wanted(), SPARES, "empty: a full pool is asked for");
    for _ in 0..SPARES {
        spares.asked();
    }
    assert_eq!(spares.wanted(), 0, "all on their way");
    for _ in 0..SPARES {
        spares.arrived(Some(spare()));
    }
    assert_eq!((spares.len(), spares.wanted()), (SPARES, 0));
    for used in 1..=SPARES / 2 {
        assert!(spares.take().is_some());
        let wanted = if used == SPARES / 2 { SPARES / 2 } else { 0 };
        assert_eq!(spares.wanted(), wanted, "{used} used");
    }
    spares.asked();
    spares.arrived(None); // the provider could not make one
    assert_eq!((spares.len(), spares.wanted()), (SPARES / 2, SPARES / 2));
}

#[test]
fn a_direction_moves_its_bytes_through_a_pipe_or_without_one_through_a_buffer() {
    use super::pump::{Dir, DirState, Pipes, Pumped, pump};
    use std::io::{Read, Write};
    // client -> `from` (the forwarder's host side) ... `to` (its inside side) -> server.
    let pair = || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (far, _) = listener.accept().unwrap();
        (near, far)
    };
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    for (may_pipe, pipes_made) in [(true, 1), (false, 0)] {
        let ((mut client, from), (to, mut server)) = (pair(), pair());
        from.set_nonblocking(true).unwrap();
        to.set_nonblocking(true).unwrap();
        let sent = data.clone();
        let writer = std::thread::spawn(move || {
            client.write_all(&sent).unwrap();
            client.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            server.read_to_end(&mut got).unwrap();
            got
        });
        let (mut pipes, mut dir) = (Pipes::default(), Dir::default());
        let deadline = Instant::now() + Duration::from_secs(20);
        while dir.state != DirState::Done {
            match pump(&mut dir, &from, &to, &mut pipes, may_pipe, false) {
                Pumped::Failed => panic!("may_pipe {may_pipe}: failed"),
                Pumped::More => {}
                // Non-blocking sockets: poll them again shortly.
                Pumped::Waiting => std::thread::sleep(Duration::from_millis(1)),
            }
            assert!(Instant::now() < deadline, "may_pipe {may_pipe}: stuck");
        }
        writer.join().unwrap();
        assert_eq!(reader.join().unwrap(), data, "may_pipe {may_pipe}");
        assert_eq!(pipes.live(), pipes_made, "may_pipe {may_pipe}");
    }
}
