#!/usr/bin/python3
"""Servers and clients that load the port forwarder (tests/network.rs).

  forward-load.py serve ADDRESS ECHO STUCK DEAF LIFETIME
      Listens on three TCP ports of ADDRESS, all before serving any: on ECHO, each connection
      is read to its end (the client's half-close), then answered with "LENGTH SHA256\\n" and
      the bytes echoed back; STUCK accepts connections and never reads them; DEAF never
      accepts (a backlog of 0: the kernel queues one connection and drops later SYNs).
      Stops by itself after LIFETIME seconds.
  forward-load.py clients HOST PORT N SIZE
      Waits until HOST:PORT echoes, then opens N connections at once, sends SIZE bytes of data
      of each connection's own on each, half-closes, and checks each answer is its own.
  forward-load.py stuck HOST ECHO STUCK DEAF
      Fills a connection to STUCK until it blocks, leaves 5 connections to DEAF waiting, then
      checks that a connection to ECHO is answered (within 4 s, less than the provider waits for one connection inside) all the same.
  forward-load.py deaf HOST ECHO DEAF
      Waits until HOST:ECHO echoes, opens 5 connections to DEAF (their connections inside stay
      unfinished), prints "ok" and holds them for 3 s.
  forward-load.py reset HOST ECHO STUCK PID
      Fills a connection to STUCK until it blocks, then resets it (SO_LINGER 0) and checks that
      the forwarder, process PID, closes its side within 5 s: it holds no more descriptors
      than before the connection.
  forward-load.py udp HOST PORT N BURST
      N clients each send BURST datagrams at once (the first before the forwarder has a socket
      inside for the client) and check that every echo (udp-echo.py) comes back to its sender.
  forward-load.py limits HOST STUCK ECHO N CAP IDLE
      Opens N connections from HOST to STUCK and leaves them idle: N - CAP of them must be
      reset long before IDLE seconds (the forwarder's limit per client address), the other
      CAP IDLE seconds after they opened, not sooner (and within 15 s more). Meanwhile a
      connection to ECHO from 127.0.0.2 must be served, and one from 127.0.0.3 that sends a
      byte every half second must outlive IDLE seconds.
Prints "ok ..." and exits 0, or prints what went wrong and exits 1.
"""
import hashlib
import os
import resource
import select
import socket
import struct
import sys
import threading
import time


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def fail(why):
    print(f"forward-load: {why}")
    sys.exit(1)


def read_all(conn):
    chunks = []
    while True:
        chunk = conn.recv(1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def more_files():
    """Raise the soft limit of open files to the hard one: a server or client of thousands of
    connections needs more than the usual 1024."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def serve(address, echo, stuck, deaf, lifetime):
    more_files()
    def listener(port, backlog):
        s = socket.socket(family(address))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((address, port))
        s.listen(backlog)
        return s

    echo_s, stuck_s, deaf_s = listener(echo, 512), listener(stuck, 16), listener(deaf, 0)
    held = []

    def answer(conn):
        with conn:
            data = read_all(conn)
            conn.sendall(f"{len(data)} {hashlib.sha256(data).hexdigest()}\n".encode() + data)

    def serve_echo():
        while True:
            conn, _ = echo_s.accept()
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    def serve_stuck():
        while True:
            held.append(stuck_s.accept()[0])

    for target in (serve_echo, serve_stuck):
        threading.Thread(target=target, daemon=True).start()
    time.sleep(lifetime)
    deaf_s.close()


def expect_echo(conn, data, sent=False):
    """Send `data` (unless `sent` already), half-close, and check the echo server's answer:
    None, or what is wrong."""
    if not sent:
        conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)
    reply = read_all(conn)
    head, _, body = reply.partition(b"\n")
    want = f"{len(data)} {hashlib.sha256(data).hexdigest()}".encode()
    if head != want:
        return f"header {head[:80]!r}, not {want!r}"
    if body != data:
        return f"{len(body)} bytes echoed, not the {len(data)} sent"
    return None


def wait_serving(host, port):
    deadline = time.time() + 10
    while True:
        try:
            with socket.create_connection((host, port), timeout=3) as conn:
                if expect_echo(conn, b"probe") is None:
                    return
        except OSError:
            pass
        if time.time() > deadline:
            fail(f"{host}:{port} never echoed")
        time.sleep(0.1)


def clients(host, port, n, size):
    wait_serving(host, port)
    conns = [socket.create_connection((host, port), timeout=20) for _ in range(n)]
    problems = []

    def run(i, conn):
        data = (f"connection {i}:".encode() + os.urandom(16).hex().encode()) * (size // 48 + 1)
        try:
            with conn:
                why = expect_echo(conn, data[:size])
        except OSError as e:
            why = str(e)
        if why:
            problems.append(f"connection {i}: {why}")

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if problems:
        fail(f"{len(problems)} of {n} wrong: {problems[0]}")
    print(f"ok {n}")


def stuck(host, echo, stuck_port, deaf):
    wait_serving(host, echo)
    full = socket.create_connection((host, stuck_port), timeout=5)
    sent = fill(full)
    if sent == 0:
        fail("nothing could be sent to the stuck server")
    waiting = [socket.create_connection((host, deaf), timeout=5) for _ in range(5)]
    started = time.time()
    try:
        with socket.create_connection((host, echo), timeout=4) as conn:
            why = expect_echo(conn, b"still served")
    except OSError as e:
        why = str(e)
    if why:
        fail(f"with a stuck and a deaf server, the echo failed: {why}")
    print(f"ok answered in {time.time() - started:.1f} s after {sent} bytes stuck")
    full.close()
    for conn in waiting:
        conn.close()


def deaf(host, echo, deaf_port):
    wait_serving(host, echo)
    waiting = [socket.create_connection((host, deaf_port), timeout=5) for _ in range(5)]
    print("ok", flush=True)
    time.sleep(3)
    for conn in waiting:
        conn.close()


def fill(conn):
    """Send until nothing more is taken for a second; the bytes sent."""
    conn.setblocking(False)
    sent, last = 0, time.time()
    while time.time() - last < 1:
        try:
            sent += conn.send(b"x" * (1 << 16))
            last = time.time()
        except BlockingIOError:
            time.sleep(0.01)
    return sent


def reset(host, echo, stuck_port, pid):
    def held():
        return len(os.listdir(f"/proc/{pid}/fd"))

    wait_serving(host, echo)
    time.sleep(0.2)  # the probe's connection is closed on both sides
    before = held()
    conn = socket.create_connection((host, stuck_port), timeout=5)
    if fill(conn) == 0:
        fail("nothing could be sent to the stuck server")
    during = held()
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    deadline = time.time() + 5
    while held() > before:
        if time.time() > deadline:
            fail(f"the forwarder still holds {held()} descriptors ({during} with the "
                 f"connection, {before} before it) 5 s after the client's reset")
        time.sleep(0.05)
    print("ok")


def udp(host, port, n, burst):
    socks = [socket.socket(family(host), socket.SOCK_DGRAM) for _ in range(n)]
    # Wait until the server inside answers at all.
    deadline = time.time() + 10
    probe = socket.socket(family(host), socket.SOCK_DGRAM)
    probe.settimeout(0.5)
    while True:
        probe.sendto(b"probe", (host, port))
        try:
            if probe.recv(65536) == b"echo: probe":
                break
        except OSError:
            pass
        if time.time() > deadline:
            fail("the UDP server never answered")
    for i, s in enumerate(socks):
        for j in range(burst):
            s.sendto(f"{i}/{j}".encode(), (host, port))
    for i, s in enumerate(socks):
        s.settimeout(5)
        got = set()
        try:
            while len(got) < burst:
                reply = s.recv(65536).decode()
                owner, _, j = reply.removeprefix("echo: ").partition("/")
                if owner != str(i):
                    fail(f"client {i} got {reply!r}, another client's echo")
                got.add(j)
        except OSError as e:
            fail(f"client {i}: {len(got)} of {burst} echoes, then {e}")
    print(f"ok {n}x{burst}")


def limits(host, stuck_port, echo, n, cap, idle):
    more_files()
    wait_serving(host, echo)
    conns, opened, reset = {}, {}, 0
    for i in range(n):
        try:
            conns[i] = socket.create_connection((host, stuck_port), timeout=3)
            opened[i] = time.time()
        except ConnectionResetError:
            reset += 1  # reset before connect(2) returned
        except OSError as e:
            fail(f"connection {i + 1} of {n} from {host}: {e}: the port is held")
    try:
        with socket.create_connection((host, echo), timeout=5,
                                      source_address=("127.0.0.2", 0)) as conn:
            why = expect_echo(conn, b"from another address")
    except OSError as e:
        why = str(e)
    if why:
        fail(f"with {host} at its limit, 127.0.0.2 was not served: {why}")
    # Every connection must end: reset by the limit (long before the idle timeout), or reset
    # when idle for the timeout, not sooner; meanwhile one kept busy stays.
    busy = socket.create_connection((host, echo), timeout=5, source_address=("127.0.0.3", 0))
    busy_since, sent = time.time(), b""
    poller = select.poll()
    by_fd = {}
    for i, conn in conns.items():
        poller.register(conn, select.POLLIN)
        by_fd[conn.fileno()] = i
    deadline = time.time() + idle + 15
    idle_closed = 0
    while by_fd:
        if time.time() > deadline:
            fail(f"{len(by_fd)} connections still open {idle + 15} s after")
        busy.sendall(b"x")
        sent += b"x"
        for fd, _ in poller.poll(500):
            poller.unregister(fd)
            after = time.time() - opened[by_fd.pop(fd)]
            if after < idle - 0.5:
                reset += 1
            else:
                idle_closed += 1
    if reset != n - cap:
        fail(f"{reset} of {n} connections from {host} were reset before the idle timeout, "
             f"not {n - cap}")
    while time.time() - busy_since < idle + 1:
        busy.sendall(b"x")
        sent += b"x"
        time.sleep(0.5)
    why = expect_echo(busy, sent, sent=True)
    if why:
        fail(f"the busy connection, open {time.time() - busy_since:.0f} s: {why}")
    print(f"ok {idle_closed} of {n} held, then reset when idle; a busy one kept")


command, args = sys.argv[1], sys.argv[2:]
if command == "serve":
    serve(args[0], int(args[1]), int(args[2]), int(args[3]), float(args[4]))
elif command == "clients":
    clients(args[0], int(args[1]), int(args[2]), int(args[3]))
elif command == "stuck":
    stuck(args[0], int(args[1]), int(args[2]), int(args[3]))
elif command == "deaf":
    deaf(args[0], int(args[1]), int(args[2]))
elif command == "reset":
    reset(args[0], int(args[1]), int(args[2]), int(args[3]))
elif command == "udp":
    udp(args[0], int(args[1]), int(args[2]), int(args[3]))
elif command == "limits":
    limits(args[0], int(args[1]), int(args[2]), int(args[3]), int(args[4]), float(args[5]))
else:
    fail(f"unknown command {command}")
