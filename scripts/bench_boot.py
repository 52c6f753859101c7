"""bench_boot: the measuring half of scripts/bench-boot (issue 19): boot a system image to
ready and stop it, with become-root, systemd-nspawn and rootless podman, side by side.

A *system* is one way to boot the image, a *cycle* one boot of it and its stop:
- boot: from the spawn of the command until the image is ready: for `become-root --detach`
  until that command returns (it returns once the image's systemd has sent READY=1); for the
  others until READY=1 reaches the listener below, whose socket the command got as
  NOTIFY_SOCKET (systemd-nspawn --notify-ready=yes and become-root in the foreground send it
  once the image's systemd has, podman --sdnotify=container forwards the container's own);
- stop: from the request until everything is gone: `become-root --stop` and `podman stop`
  until they return; SIGTERM to systemd-nspawn or to become-root in the foreground until it
  has exited (with 0: both halt the image with SIGRTMIN+3).
The image rests SETTLE seconds after it is ready, and the machine SETTLE seconds after a stop,
out of the timing.

An *iteration* runs one cycle of every system, in an order that rotates from one iteration
(and round) to the next; a pair A/B takes its ratio per iteration, from two cycles seconds
apart. A *round* is RUNS iterations; its figure for a pair is the median of those ratios (and
the medians of A and B in ms, for scale). ROUNDS idle rounds, PAUSE seconds apart, give
min / median / max of the round figures; one more round runs beside a busy loop on every CPU
(lib_bench.Burner), reported apart. A benchmark, not a test: nothing fails because of a number.

Commands start through a Spawner, a helper already in their context: the bench user, its
cgroup and mount namespace for become-root and podman; real root, cgroups of its own and the
world's mount namespace for systemd-nspawn.
"""

import argparse
import ctypes
import json
import os
import select
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib_bench import Burner, fmt, load_average, med, say, spread, table, verdict  # noqa: E402

SETTLE = 0.5    # s between a boot's ready and its stop, and after a stop
BOOT_LIMIT = 90  # s to ready (become-root's own wait is 90 s), else the cycle failed
STOP_LIMIT = 60  # s to gone
CLONE_NEWNS = 0x00020000
NAME = "bench-boot"  # the session and container name


class Failed(Exception):
    pass


class Spawner:
    """Starts commands in a context set up once: a mount namespace (an open fd), cgroups
    (cgroup.procs files), a user (uid, gid; no supplementary groups) and an environment, each
    None or empty for "as the measurer". A child of the measurer enters the context, then
    posix_spawns each command it is sent (setsid, stdin /dev/null, stdout and stderr appended
    to a log) and hands back a pidfd: no fork of the measurer and no cgroup migration (slow on
    a busy machine: it waits for RCU) lies in a command's time, whatever its context."""

    live = []  # the measurer's ends of the spawners' sockets

    def __init__(self, env, mntns=None, cgroups=(), user=None):
        self.env, self.user = env, user
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                # Each spawner ends when its socket does: no other may hold it open.
                for sock in Spawner.live + [ours]:
                    sock.close()
                self._enter(mntns, cgroups, user)
                self._serve(theirs)
                status = 0
            finally:
                os._exit(status)
        theirs.close()
        self.sock, self.pid = ours, pid
        Spawner.live.append(ours)

    @staticmethod
    def _enter(mntns, cgroups, user):
        if mntns is not None:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.setns(mntns, CLONE_NEWNS) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            os.chdir("/")
        for procs in cgroups:
            with open(procs, "w") as f:
                f.write("0")
        if user is not None:
            uid, gid = user
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)

    @staticmethod
    def _serve(sock):
        """Requests, one per message: ["spawn", argv, env, log] -> [pid] with its pidfd, or
        [None, why]; ["wait", pid] -> [exit status]. An empty message: the end."""
        while True:
            request = sock.recv(1 << 20)
            if not request:
                return
            op, *args = json.loads(request)
            if op == "wait":
                _, status = os.waitpid(args[0], 0)
                sock.send(json.dumps([os.waitstatus_to_exitcode(status)]).encode())
                continue
            argv, env, log = args
            stdio = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                     (os.POSIX_SPAWN_OPEN, 1, log, os.O_WRONLY | os.O_APPEND, 0),
                     (os.POSIX_SPAWN_DUP2, 1, 2)]
            try:
                pid = os.posix_spawnp(argv[0], argv, env, file_actions=stdio, setsid=True)
            except OSError as e:
                sock.send(json.dumps([None, str(e)]).encode())
                continue
            pidfd = os.pidfd_open(pid)
            socket.send_fds(sock, [json.dumps([pid]).encode()], [pidfd])
            os.close(pidfd)

    def spawn(self, argv, log, env=None):
        """Start argv (its log a file that exists): a Child; Failed if it cannot start."""
        request = ["spawn", argv, dict(self.env, **(env or {})), log]
        self.sock.send(json.dumps(request).encode())
        reply, fds, _, _ = socket.recv_fds(self.sock, 4096, 1)
        pid, *why = json.loads(reply)
        if pid is None:
            raise Failed(f"{argv[0]}: {why[0]}")
        return Child(self, pid, fds[0], argv)

    def run(self, argv, log, limit=STOP_LIMIT):
        """Run argv to its end: (status, ms); status None if it took longer than limit."""
        start = time.perf_counter()
        child = self.spawn(argv, log)
        status = child.wait(limit)
        ms = (time.perf_counter() - start) * 1000
        if status is None:
            child.kill()
        return status, ms

    def close(self):
        Spawner.live.remove(self.sock)
        self.sock.close()
        os.waitpid(self.pid, 0)


class Child:
    """A command a Spawner started: its exit is seen the moment it happens (its pidfd); its
    status comes from the spawner, its parent."""

    def __init__(self, spawner, pid, pidfd, argv):
        self.spawner, self.pid, self.pidfd, self.argv = spawner, pid, pidfd, argv
        self.status = None

    def wait(self, limit):
        """The exit status; None if it is still running after limit seconds."""
        if self.status is None:
            if not select.select([self.pidfd], [], [], limit)[0]:
                return None
            self.spawner.sock.send(json.dumps(["wait", self.pid]).encode())
            self.status = json.loads(self.spawner.sock.recv(4096))[0]
            os.close(self.pidfd)
        return self.status

    def signal(self, signo):
        if self.status is None:
            signal.pidfd_send_signal(self.pidfd, signo)

    def kill(self):
        """SIGKILL to its process group (a session of its own), and reap it."""
        if self.status is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait(None)


class Listener:
    """The service manager's end of sd_notify(3): a datagram socket at PATH, writable by the
    bench user (podman's conmon sends from the user's namespace)."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.sock.setblocking(False)

    def drain(self):
        while True:
            try:
                self.sock.recv(4096)
            except BlockingIOError:
                return

    def wait_ready(self, proc, start, must_live):
        """Wait for READY=1; the time since start in ms. must_live: proc ending first fails."""
        while True:
            left = BOOT_LIMIT - (time.perf_counter() - start)
            if left <= 0:
                raise Failed(f"no READY=1 within {BOOT_LIMIT} s")
            if select.select([self.sock], [], [], min(left, 0.05))[0]:
                ms = (time.perf_counter() - start) * 1000
                message = self.sock.recv(4096).decode(errors="replace")
                if "READY=1" in message.split("\n"):
                    return ms
            status = proc.wait(0)
            if status is not None and (must_live or status != 0):
                raise Failed(f"{proc.argv[0]} exited with {status} before READY=1")

    def close(self):
        self.sock.close()
        os.unlink(self.path)


class System:
    """One way to boot the image; its log collects every command's output."""

    def __init__(self, key, label, ctx, log):
        self.key, self.label, self.ctx, self.log = key, label, ctx, log
        open(log, "ab").close()
        if ctx.user is not None:
            os.chown(log, *ctx.user)  # the spawner opens it as the user
        self.up = False  # booted (or maybe: the boot failed half-way), not stopped yet

    def cycle(self, listener):
        """Boot, rest, stop, rest: (boot ms, stop ms); Failed after cleaning up."""
        try:
            boot = self.boot(listener)
            time.sleep(SETTLE)
            stop = self.stop()
        except Failed:
            self.abandon()
            raise
        time.sleep(SETTLE)
        return boot, stop


class Detached(System):
    """A client that boots in the background and another that stops: become-root --detach and
    --stop (ready when the first returns), podman run -d and stop (ready at READY=1, then rm)."""

    def __init__(self, key, label, ctx, log, boot, stop, notify=False, remove=None):
        super().__init__(key, label, ctx, log)
        self.boot_argv, self.stop_argv, self.notify, self.remove = boot, stop, notify, remove

    def boot(self, listener):
        listener.drain()
        self.up = True
        start = time.perf_counter()
        proc = self.ctx.spawn(self.boot_argv, self.log,
                              {"NOTIFY_SOCKET": listener.path} if self.notify else None)
        if self.notify:
            ms = listener.wait_ready(proc, start, must_live=False)
            status = proc.wait(BOOT_LIMIT)  # podman run -d has returned long before
        else:
            status = proc.wait(BOOT_LIMIT)
            ms = (time.perf_counter() - start) * 1000
        if status is None:
            proc.kill()
            raise Failed(f"{self.boot_argv[0]} did not return within {BOOT_LIMIT} s")
        if status != 0:
            raise Failed(f"{' '.join(self.boot_argv[:2])}... exited with {status}")
        return ms

    def stop(self):
        status, ms = self.ctx.run(self.stop_argv, self.log)
        if status != 0:
            raise Failed(f"{' '.join(self.stop_argv)} exited with {status}")
        if self.remove:
            status, _ = self.ctx.run(self.remove, self.log)
            if status != 0:
                raise Failed(f"{' '.join(self.remove)} exited with {status}")
        self.up = False
        return ms

    def abandon(self):
        if not self.up:
            return
        self.ctx.run(self.stop_argv, self.log)
        if self.remove:
            self.ctx.run(self.remove[:-1] + ["-f", self.remove[-1]], self.log)
        self.up = False


class Foreground(System):
    """A supervisor that runs until SIGTERM halts the image: systemd-nspawn, become-root
    without --detach; ready at READY=1 on NOTIFY_SOCKET."""

    def __init__(self, key, label, ctx, log, argv):
        super().__init__(key, label, ctx, log)
        self.argv, self.proc = argv, None

    def boot(self, listener):
        listener.drain()
        start = time.perf_counter()
        self.proc = self.ctx.spawn(self.argv, self.log, {"NOTIFY_SOCKET": listener.path})
        return listener.wait_ready(self.proc, start, must_live=True)

    def stop(self):
        start = time.perf_counter()
        self.proc.signal(signal.SIGTERM)
        status = self.proc.wait(STOP_LIMIT)
        ms = (time.perf_counter() - start) * 1000
        if status is None:
            raise Failed(f"{self.argv[0]} still running {STOP_LIMIT} s after SIGTERM")
        self.proc = None
        if status != 0:
            raise Failed(f"{self.argv[0]} exited with {status} after SIGTERM")
        return ms

    def abandon(self):
        if self.proc is None:
            return
        if self.proc.wait(0) is None:
            self.proc.signal(signal.SIGTERM)
            if self.proc.wait(STOP_LIMIT) is None:
                self.proc.kill()
        self.proc = None


class Pair:
    def __init__(self, a, b, target):
        self.a, self.b, self.target = a, b, target

    def label(self, phase):
        return f"{phase}: {self.a.label} / {self.b.label}"


PHASES = ("boot", "stop")


class Round:
    def __init__(self, number, kind):
        self.number, self.kind, self.load = number, kind, load_average()
        self.results = {}  # key -> [(boot, stop) or None per iteration]
        self.seconds = 0.0

    def ms(self, key, phase):
        i = PHASES.index(phase)
        return [r[i] for r in self.results.get(key, []) if r is not None]

    def ratios(self, pair, phase):
        i = PHASES.index(phase)
        return [a[i] / b[i] for a, b in zip(self.results[pair.a.key], self.results[pair.b.key])
                if a is not None and b is not None]

    def failed(self, key):
        return sum(r is None for r in self.results.get(key, []))


def run_round(systems, runs, number, kind, listener, failures):
    rnd = Round(number, kind)
    rnd.results = {s.key: [] for s in systems}
    started = time.monotonic()
    for i in range(runs):
        shift = (i + number) % len(systems)
        for s in systems[shift:] + systems[:shift]:
            try:
                rnd.results[s.key].append(s.cycle(listener))
            except Failed as e:
                rnd.results[s.key].append(None)
                failures.append(f"round {number}, {s.label}: {e}")
    rnd.seconds = time.monotonic() - started
    return rnd


def rows_of(rnd, pairs):
    rows = []
    for p in pairs:
        for phase in PHASES:
            failed = rnd.failed(p.a.key) + rnd.failed(p.b.key)
            rows.append([p.label(phase), fmt(med(rnd.ms(p.a.key, phase)), ".0f"),
                         fmt(med(rnd.ms(p.b.key, phase)), ".0f"),
                         fmt(med(rnd.ratios(p, phase)), ".2f", "x"),
                         f"({failed} failed cycles)" if failed else ""])
    return rows


def print_round(rnd, pairs, runs):
    what = "idle" if rnd.kind == "idle" else f"LOADED: {rnd.kind}"
    say(f"round {rnd.number} ({what}; load average {rnd.load} at its start): {runs} "
        f"cycle(s) of each system in {rnd.seconds:.0f} s")
    table(rows_of(rnd, pairs), ["", "A ms", "B ms", "A/B", ""])


def summary(idle, loaded, pairs):
    say(f"summary over {len(idle)} idle round(s): min / median / max of the round figures")
    rows = []
    for p in pairs:
        for phase in PHASES:
            ratios = [med(r.ratios(p, phase)) for r in idle]
            rows.append([p.label(phase), spread(ratios),
                         spread([med(r.ms(p.a.key, phase)) for r in idle], ".0f", ""),
                         spread([med(r.ms(p.b.key, phase)) for r in idle], ".0f", ""),
                         verdict(p.target, ratios)])
    table(rows, ["", "A/B", "A ms", "B ms", "target"])
    if loaded is None:
        return
    say()
    say(f"loaded round ({loaded.kind}, load average {loaded.load} at its start), apart from "
        "the idle figures")
    targets = [verdict(p.target, [med(loaded.ratios(p, ph))]) for p in pairs for ph in PHASES]
    table([row[:4] + [target] for row, target in zip(rows_of(loaded, pairs), targets)],
          ["", "A ms", "B ms", "A/B", "target"])


def port_answers(port):
    """Whether something accepts a TCP connection at 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def check(systems, listener, ports):
    """One cycle of each system; those that fail are left out, with the end of their log."""
    say("each system once (a cycle: boot to ready, stop):")
    kept = []
    for s in systems:
        pos = os.path.getsize(s.log)
        try:
            boot = s.boot(listener)
            note = ""
            if s.key in ports:
                answers = port_answers(ports[s.key])
                note = f"; 127.0.0.1:{ports[s.key]} {'accepts' if answers else 'refuses'} " \
                       "connections"
            time.sleep(SETTLE)
            stop = s.stop()
            time.sleep(SETTLE)
        except Failed as e:
            s.abandon()
            say(f"  {s.label:<34} left out: {e}")
            with open(s.log, "rb") as f:
                f.seek(pos)
                for line in f.read().decode(errors="replace").strip().splitlines()[-5:]:
                    say(f"      {line}")
            continue
        say(f"  {s.label:<34} ok: ready in {boot:.0f} ms, gone in {stop:.0f} ms{note}")
        kept.append(s)
    return kept


def build(a, spawners):
    """The systems the arguments ask for, and their published ports; their spawners go to
    spawners."""
    user_env = dict(kv.split("=", 1) for kv in a.user_env) if a.user_env else dict(os.environ)
    user = (a.uid, a.uid) if a.uid is not None else None
    as_user = Spawner(user_env, cgroups=a.user_cgroup, user=user)
    spawners.append(as_user)
    as_root = None
    if a.nspawn_root:
        # Not inherited by what the spawners start (bash opened it for this program alone).
        os.set_inheritable(a.nspawn_mntns, False)
        as_root = Spawner(dict(os.environ), mntns=a.nspawn_mntns, cgroups=a.nspawn_cgroup)
        spawners.append(as_root)
    logs = os.path.join(a.dir, "logs")
    os.makedirs(logs, exist_ok=True)
    ports, systems = {}, []
    for publish in ([False, True] if a.publish else [False]):
        tag = "-p" if publish else ""

        def add(cls, key, label, ctx, *argvs, **kw):
            systems.append(cls(key + tag, f"{label} {tag}".strip(), ctx,
                               os.path.join(logs, key + tag + ".log"), *argvs, **kw))

        def pub(key, spelling):  # the option that publishes a port chosen now
            if not publish:
                return []
            ports[key + tag] = free_port()
            return [spelling.format(ports[key + tag])]

        if a.become_root:
            br, rootfs = a.become_root, f"--rootfs={a.image}"
            add(Detached, "br", "become-root --detach", as_user,
                [br, f"--name={NAME}", "--detach", "--boot", rootfs]
                + pub("br", "--publish=127.0.0.1:{}:80"), [br, f"--stop={NAME}"])
            add(Foreground, "br-fg", "become-root (foreground)", as_user,
                [br, "--boot", rootfs] + pub("br-fg", "--publish=127.0.0.1:{}:80"))
        if as_root:
            net = ["--network-veth"] if publish else ["--private-network"]
            add(Foreground, "nspawn", "systemd-nspawn", as_root,
                ["systemd-nspawn", "--register=no", "--keep-unit", "--notify-ready=yes",
                 "--console=read-only", "-D", a.nspawn_root, "-b"] + net
                + pub("nspawn", "--port=tcp:{}:80"))
        if a.podman_image:
            podman = ["podman"] + a.podman_option
            net = pub("podman", "--publish=127.0.0.1:{}:80") or ["--network=none"]
            add(Detached, "podman", "podman run -d", as_user,
                podman + ["run", "-d", f"--name={NAME}", "--systemd=always",
                          "--sdnotify=container"] + net + [a.podman_image, "/sbin/init"],
                podman + ["stop", NAME], notify=True, remove=podman + ["rm", NAME])
    return systems, ports


def free_port():
    """A TCP port of 127.0.0.1 that nothing holds now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pairs_of(systems):
    by_key = {s.key: s for s in systems}
    pairs = []
    for sfx in ("", "-p"):
        for a, b, target in (("br", "nspawn", 1.0), ("br-fg", "nspawn", 1.0),
                             ("br", "podman", None)):
            if a + sfx in by_key and b + sfx in by_key:
                pairs.append(Pair(by_key[a + sfx], by_key[b + sfx], target))
    return pairs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, kind in (("runs", int), ("rounds", int), ("pause", float), ("loaded", int),
                       ("publish", int)):
        ap.add_argument(f"--{name}", type=kind, required=True)
    ap.add_argument("--dir", required=True, help="where the logs and the listener go")
    ap.add_argument("--become-root", help="the binary; its image is --image")
    ap.add_argument("--image", help="the unpacked image, the user's")
    ap.add_argument("--uid", type=int, help="run become-root and podman as this uid (and gid)")
    ap.add_argument("--user-env", action="append", help="KEY=VALUE of the user's environment")
    ap.add_argument("--user-cgroup", action="append", default=[], help="cgroup.procs to enter")
    ap.add_argument("--nspawn-root", help="the unpacked image, root's")
    ap.add_argument("--nspawn-mntns", type=int, help="an open fd of nspawn's mount namespace")
    ap.add_argument("--nspawn-cgroup", action="append", default=[], help="cgroup.procs files")
    ap.add_argument("--podman-image")
    ap.add_argument("--podman-option", action="append", default=[])
    ap.add_argument("--json", help="write every cycle's figures there")
    a = ap.parse_args()

    spawners, everything, listener = [], [], None
    try:
        systems, ports = build(a, spawners)
        everything = list(systems)
        listener = Listener(os.path.join(a.dir, "notify"))
        measure(a, systems, ports, listener)
    finally:
        for s in everything:
            s.abandon()
        for spawner in spawners:
            spawner.close()
        if listener:
            listener.close()


def measure(a, systems, ports, listener):
    """Check every system, then the rounds; print them, the summary, the failures."""
    systems = check(systems, listener, ports)
    pairs = pairs_of(systems)
    say()
    if not pairs:
        say("nothing to compare (a side of every pair was left out above)")
        return
    say(f"{a.rounds} idle round(s) of {a.runs} cycle(s) of each system, {a.pause:g} s apart"
        + (", then one round with a CPU burner" if a.loaded else "")
        + "; the systems' order rotates")
    say()
    failures, idle = [], []
    for n in range(1, a.rounds + 1):
        if n > 1 and a.pause > 0:
            time.sleep(a.pause)
        rnd = run_round(systems, a.runs, n, "idle", listener, failures)
        print_round(rnd, pairs, a.runs)
        idle.append(rnd)
        say()
    loaded = None
    if a.loaded:
        if a.pause > 0:
            time.sleep(a.pause)
        with Burner() as burner:
            kind = f"a busy loop on each of {burner.cpus} CPUs alongside"
            loaded = run_round(systems, a.runs, a.rounds + 1, kind, listener, failures)
        print_round(loaded, pairs, a.runs)
        say()
    summary(idle, loaded, pairs)
    if failures:
        say()
        say(f"{len(failures)} failed cycle(s) (left out of the figures):")
        for f in failures:
            say(f"  {f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump([{"kind": r.kind, "load": r.load, "cycles": r.results}
                       for r in idle + ([loaded] if loaded else [])], f)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
