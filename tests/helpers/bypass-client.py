#!/usr/bin/python3
"""The client side of the bypass tests, run inside become-root. Each command prints what it
saw, one fact a line:
  sum HOST PORT MB        send MB megabytes (a fixed pseudo-random stream) to a tcp-sha256.py
                          server: "local IP", then "intact" or "corrupt ..."
  udp HOST PORT           (IPv4 or IPv6) a datagram by sendto(2), then one on a connected
                          socket, then one by sendmsg(2), to a udp-echo.py server: "answer
                          ..." each, "local IP" of the connected one, "sent by DEVICE" (the
                          sendmsg socket's)
  many HOST PORT N        N threads connect at once to a tcp-sha256.py server and send
                          nothing: "answers K" (K right answers), "locals IP,..."
  tcp HOST PORT           (IPv4 or IPv6) one connection: "answer ..." and "local IP", or
                          "error ERRNO-NAME"
  udp-after HOST PORT LOHOST LOPORT
                          a datagram to HOST:PORT, then one on the same socket to
                          LOHOST:LOPORT: "answer ..." or "silent"
  listen-after-refused HOST PORT
                          a non-blocking connect to a closed port, then listen(2):
                          "listen ok" or "listen error ERRNO-NAME"
  connect-timeout HOST PORT SECONDS
                          a blocking connect(2) with SO_SNDTIMEO at SECONDS: "connect
                          ERRNO-NAME" (or "connect ok"), then "local IP"
  race HOST PORT LOHOST LOPORT ROUNDS
                          connect(2) to HOST:PORT while another thread rewrites the address
                          to LOHOST:LOPORT and back (sending nothing): "answers A,..."
                          (what answered)"""
import ctypes
import errno
import hashlib
import random
import select
import socket
import struct
import sys
import threading

cmd, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
# An IPv6 HOST (it has a colon) is reached by IPv6 sockets, in the commands that say so.
family = socket.AF_INET6 if ":" in host else socket.AF_INET


def stream(mb):
    rng = random.Random(24)
    for _ in range(mb):
        yield rng.randbytes(1 << 20)


if cmd == "sum":
    s = socket.create_connection((host, port))
    print("local", s.getsockname()[0])
    digest, count = hashlib.sha256(), 0
    for block in stream(int(sys.argv[4])):
        digest.update(block)
        count += len(block)
        s.sendall(block)
    s.shutdown(socket.SHUT_WR)
    answer = s.makefile().readline().split()
    want = [digest.hexdigest(), str(count)]
    print("intact" if answer == want else f"corrupt {answer} != {want}")
elif cmd == "udp":
    u = socket.socket(family, socket.SOCK_DGRAM)
    u.settimeout(10)
    u.sendto(b"one", (host, port))
    print("answer", u.recvfrom(100)[0].decode())
    c = socket.socket(family, socket.SOCK_DGRAM)
    c.settimeout(10)
    c.connect((host, port))
    c.send(b"two")
    print("answer", c.recv(100).decode())
    print("local", c.getsockname()[0])
    m = socket.socket(family, socket.SOCK_DGRAM)
    m.settimeout(10)
    m.sendmsg([b"three"], [], 0, (host, port))
    print("answer", m.recvfrom(100)[0].decode())
    device = m.getsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, 16).rstrip(b"\0")
    print("sent by", device.decode() or "nothing")
elif cmd == "many":
    n, answers, locals_, lock = int(sys.argv[4]), [], set(), threading.Lock()

    def one():
        s = socket.socket()
        s.connect((host, port))
        s.shutdown(socket.SHUT_WR)
        data = s.makefile().readline().strip()
        with lock:
            answers.append(data)
            locals_.add(s.getsockname()[0])

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    nothing = hashlib.sha256().hexdigest() + " 0"
    print("answers", sum(1 for a in answers if a == nothing))
    print("locals", ",".join(sorted(locals_)))
elif cmd == "tcp":
    s = socket.socket(family)
    s.settimeout(10)
    try:
        s.connect((host, port))
        print("answer", s.makefile().readline().strip())
        print("local", s.getsockname()[0])
    except OSError as e:
        print("error", errno.errorcode.get(e.errno, e.errno))
elif cmd == "udp-after":
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(10)
    u.sendto(b"one", (host, port))
    print("answer", u.recvfrom(100)[0].decode())
    u.sendto(b"two", (sys.argv[4], int(sys.argv[5])))
    # What is being shown is an absence: one second is the bound on waiting for it.
    u.settimeout(1)
    try:
        print("answer", u.recvfrom(100)[0].decode())
    except socket.timeout:
        print("silent")
elif cmd == "listen-after-refused":
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect((host, port))
    except BlockingIOError:
        pass
    select.select([], [s], [], 10)
    print("connect", errno.errorcode.get(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), 0))
    try:
        s.listen()
        print("listen ok")
    except OSError as e:
        print("listen error", errno.errorcode.get(e.errno, e.errno))
elif cmd == "connect-timeout":
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(sys.argv[4]), 0))
    try:
        s.connect((host, port))
        print("connect ok")
    except OSError as e:
        print("connect", errno.errorcode.get(e.errno, e.errno))
    print("local", s.getsockname()[0])
elif cmd == "race":
    libc = ctypes.CDLL(None, use_errno=True)
    good = struct.pack("!HH4s8x", 0, port, socket.inet_aton(host))
    bad = struct.pack("!HH4s8x", 0, int(sys.argv[5]), socket.inet_aton(sys.argv[4]))
    family = struct.pack("=H", socket.AF_INET)
    good, bad = family + good[2:], family + bad[2:]
    buf = ctypes.create_string_buffer(good, 16)
    stop = False

    def flip():
        while not stop:
            ctypes.memmove(buf, bad, 16)
            ctypes.memmove(buf, good, 16)

    threading.Thread(target=flip, daemon=True).start()
    answered = set()
    for _ in range(int(sys.argv[6])):
        s = socket.socket()  # blocking, as libc's connect is called on it
        if libc.connect(s.fileno(), buf, 16) == 0:
            s.shutdown(socket.SHUT_WR)
            answered.add(s.makefile().readline().strip())
        s.close()
    stop = True
    print("answers", ",".join(sorted(answered)))
