"""lib_bench: the timing loop and the report the scripts/bench-* share (issue 11, item 5).

One figure from one moment hides the spread, so a comparison is measured like this:
- A *pair* is two commands, A and B. One *iteration* runs every pair once, A then B or B then A
  in turn (from one iteration, and one round, to the next), the pairs in an order that
  rotates; the ratio A/B is computed per pair, from two runs a few milliseconds apart, so a
  slow spell of the machine hits both sides of it.
- A *round* is RUNS iterations; its figure for a pair is the median of its per-pair ratios
  (and the medians of A and B, in ms, for scale).
- There are ROUNDS idle rounds, PAUSE seconds apart, so they fall at different moments of a
  shared machine; the report gives min / median / max of the round figures.
- One more round runs with a CPU burner alongside (a busy loop on every CPU), labelled and kept
  out of the idle figures, so that the loaded figure is visible too.

Times are wall clock from posix_spawn to wait4 (stdio on /dev/null, a session of its own, a
30 s timeout), so every command pays the same small spawn cost (`/bin/true` alone shows it).
CPU time is what wait4 reports for the process and the children it waited for (newuidmap and
newgidmap, for the launchers).

Used as a program by bench-startup, bench-join and bench-subid:
    python3 lib_bench.py SPEC RUNS ROUNDS PAUSE LOADED(0|1) [JSON]
SPEC is a file of tab-separated lines:
    cmd   KEY  LABEL  ARGV...     a command (LABEL is what the report calls it)
    pair  KEY_A  KEY_B  TARGET    compare A with B; TARGET is the ratio A/B to meet, or -
    ref   KEY                     time KEY alone (the spawn overhead, for scale)
JSON, if given, receives the round medians: {"idle": [{KEY: ms, ...}, ...], "loaded": {KEY: ms}
or null, "ratios": {"KEY_A/KEY_B": [round figure, ...]}}. Imported by bench-fs, which builds the
same objects itself.

A benchmark, not a test: nothing here fails because of a number.
"""

import os
import select
import signal
import statistics
import sys
import time

_DEVNULL = os.open(os.devnull, os.O_RDWR)  # O_CLOEXEC by default (PEP 446)
_STDIO = [(os.POSIX_SPAWN_DUP2, _DEVNULL, fd) for fd in (0, 1, 2)]


def say(*args):
    print(*args, flush=True)


TIMEOUT = 30  # s: a run taking longer is killed (with its process group) and counted failed


def spawn(argv):
    """Run argv once, in a session of its own: (exit status, wall ms, cpu ms); the status is
    127 if it cannot be spawned, None if it timed out."""
    start = time.perf_counter_ns()
    try:
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=_STDIO, setsid=True)
    except OSError:
        return 127, 0.0, 0.0
    # A pidfd, to wait with a timeout without polling; the same two syscalls for every command.
    pidfd = os.pidfd_open(pid)
    try:
        ready = select.select([pidfd], [], [], TIMEOUT)[0]
    finally:
        os.close(pidfd)
    if not ready:
        os.killpg(pid, signal.SIGKILL)
        os.wait4(pid, 0)
        return None, 0.0, 0.0
    _, status, usage = os.wait4(pid, 0)
    wall = (time.perf_counter_ns() - start) / 1e6
    cpu = (usage.ru_utime + usage.ru_stime) * 1000
    return os.waitstatus_to_exitcode(status), wall, cpu


class Command:
    def __init__(self, key, label, argv, after=None):
        self.key, self.label, self.argv = key, label, list(argv)
        self.after = after  # called after every run (bench-fs: wait for fuse-overlayfs)

    def run(self):
        result = spawn(self.argv)
        if self.after:
            self.after()
        return result


class Pair:
    def __init__(self, a, b, target=None):
        self.a, self.b, self.target = a, b, target

    @property
    def label(self):
        return f"{self.a.label} / {self.b.label}"


class Samples:
    """One round's runs of one pair (or one reference command, with b unused)."""
    def __init__(self):
        self.a, self.b, self.cpu_a, self.cpu_b = [], [], [], []
        self.ratios, self.cpu_ratios = [], []
        self.failed = 0

    def add(self, ra, rb=None):
        if ra[0] != 0 or (rb is not None and rb[0] != 0):
            self.failed += 1
            return
        self.a.append(ra[1])
        self.cpu_a.append(ra[2])
        if rb is None:
            return
        self.b.append(rb[1])
        self.cpu_b.append(rb[2])
        self.ratios.append(ra[1] / rb[1])
        if rb[2] > 0:
            self.cpu_ratios.append(ra[2] / rb[2])


class Round:
    def __init__(self, number, kind, load):
        self.number, self.kind, self.load = number, kind, load
        self.pairs, self.refs, self.seconds, self.runs = {}, {}, 0.0, 0


def med(xs):
    return statistics.median(xs) if xs else None


def load_average():
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[0]
    except OSError:
        return "?"


def run_round(pairs, refs, runs, number, kind):
    """RUNS iterations of every pair (order alternating, pairs rotating) and reference."""
    rnd = Round(number, kind, load_average())
    rnd.runs = runs
    rnd.pairs = {p.label: Samples() for p in pairs}
    rnd.refs = {c.label: Samples() for c in refs}
    items = list(pairs) + list(refs)
    started = time.monotonic()
    for i in range(runs):
        shift = i % len(items)
        for item in items[shift:] + items[:shift]:
            if isinstance(item, Pair):
                if (i + number) % 2 == 1:  # A first in round 1's first iteration
                    ra = item.a.run()
                    rb = item.b.run()
                else:
                    rb = item.b.run()
                    ra = item.a.run()
                rnd.pairs[item.label].add(ra, rb)
            else:
                rnd.refs[item.label].add(item.run())
    rnd.seconds = time.monotonic() - started
    return rnd


class Burner:
    """A busy loop on every CPU this process may use, for the loaded round."""
    def __init__(self):
        self.pids = []
        self.cpus = len(os.sched_getaffinity(0))

    def __enter__(self):
        for _ in range(self.cpus):
            self.pids.append(os.posix_spawn(sys.executable,
                                            [sys.executable, "-c", "while True: pass"],
                                            os.environ, file_actions=_STDIO))
        time.sleep(0.5)  # let them get going
        return self

    def __exit__(self, *exc):
        for pid in self.pids:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
        self.pids = []


def fmt(x, spec=".2f", suffix=""):
    return "-" if x is None else f"{x:{spec}}{suffix}"


def print_round(rnd, pairs, refs):
    what = "idle" if rnd.kind == "idle" else f"LOADED: {rnd.kind}"
    say(f"round {rnd.number} ({what}; load average {rnd.load} at its start): "
        f"{rnd.runs} iteration(s) in {rnd.seconds:.1f} s")
    rows = []
    for p in pairs:
        s = rnd.pairs[p.label]
        note = f"({s.failed} of {rnd.runs} pairs failed)" if s.failed else ""
        rows.append([p.label, fmt(med(s.a)), fmt(med(s.b)), fmt(med(s.ratios), ".2f", "x"),
                     fmt(med(s.cpu_ratios), ".2f", "x"), note])
    for c in refs:
        s = rnd.refs[c.label]
        note = f"({s.failed} of {rnd.runs} runs failed)" if s.failed else ""
        rows.append([c.label, fmt(med(s.a)), "", "", "", note])
    table(rows, ["", "A ms", "B ms", "A/B", "cpu A/B", ""])


def spread(xs, spec=".2f", suffix="x"):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    lo, mid, hi = min(xs), statistics.median(xs), max(xs)
    return f"{lo:{spec}} / {mid:{spec}} / {hi:{spec}}{suffix}"


def verdict(target, ratios):
    """Whether the median of the round figures meets the target, and in how many rounds."""
    ratios = [r for r in ratios if r is not None]
    if target is None or not ratios:
        return ""
    overall = "met" if statistics.median(ratios) <= target else "NOT met"
    if len(ratios) == 1:
        return f"<= {target:.2f}x: {overall}"
    met = sum(r <= target for r in ratios)
    return f"<= {target:.2f}x: {overall} ({met} of {len(ratios)} rounds)"


def table(rows, head):
    """Rows of cells as columns: the first left-aligned, the others padded to their widest."""
    rows = [head] + rows
    widths = [max(len(r[i]) if i < len(r) else 0 for r in rows) for i in range(len(head))]
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [c.ljust(w) for c, w in zip(r[1:], widths[1:])]
        say("  " + "  ".join(cells).rstrip())


def summary(idle, loaded, pairs, refs):
    """min / median / max of every round figure across the idle rounds; the loaded round apart."""
    say(f"summary over {len(idle)} idle round(s): min / median / max of the round figures")
    rows = []
    for p in pairs:
        ss = [r.pairs[p.label] for r in idle]
        ratios = [med(s.ratios) for s in ss]
        rows.append([p.label, spread(ratios), spread([med(s.a) for s in ss], ".2f", ""),
                     spread([med(s.b) for s in ss], ".2f", ""),
                     spread([med(s.cpu_ratios) for s in ss]), verdict(p.target, ratios)])
    for c in refs:
        ss = [r.refs[c.label] for r in idle]
        rows.append([c.label, "", spread([med(s.a) for s in ss], ".2f", "")])
    table(rows, ["", "A/B", "A ms", "B ms", "cpu A/B", "target"])
    if loaded is None:
        return
    say()
    say(f"loaded round ({loaded.kind}), apart from the idle figures")
    rows = []
    for p in pairs:
        s = loaded.pairs[p.label]
        r = med(s.ratios)
        rows.append([p.label, fmt(r, ".2f", "x"), fmt(med(s.a)), fmt(med(s.b)),
                     fmt(med(s.cpu_ratios), ".2f", "x"), verdict(p.target, [r])])
    for c in refs:
        rows.append([c.label, "", fmt(med(loaded.refs[c.label].a))])
    table(rows, ["", "A/B", "A ms", "B ms", "cpu A/B", "target"])


def measure(pairs, refs, runs, rounds, pause, loaded=True):
    """The idle rounds, PAUSE s apart, then the loaded round; each printed as it ends, then the
    summary. Returns (idle rounds, loaded round or None)."""
    idle = []
    say(f"{rounds} idle round(s) of {runs} iteration(s), {pause:g} s apart"
        + (", then one round with a CPU burner" if loaded else "") + "; per iteration every pair"
        " runs A and B back to back, which goes first alternating")
    say()
    for n in range(1, rounds + 1):
        if n > 1 and pause > 0:
            time.sleep(pause)
        rnd = run_round(pairs, refs, runs, n, "idle")
        print_round(rnd, pairs, refs)
        idle.append(rnd)
        say()
    loaded_round = None
    if loaded:
        if pause > 0:
            time.sleep(pause)
        with Burner() as burner:
            kind = f"a busy loop on each of {burner.cpus} CPUs alongside"
            loaded_round = run_round(pairs, refs, runs, rounds + 1, kind)
        print_round(loaded_round, pairs, refs)
        say()
    summary(idle, loaded_round, pairs, refs)
    return idle, loaded_round


def read_spec(path):
    commands, pairs, refs = {}, [], []
    with open(path) as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if fields[0] == "cmd":
                commands[fields[1]] = Command(fields[1], fields[2], fields[3:])
            elif fields[0] == "pair":
                target = None if fields[3] == "-" else float(fields[3])
                pairs.append(Pair(commands[fields[1]], commands[fields[2]], target))
            elif fields[0] == "ref":
                refs.append(commands[fields[1]])
            elif fields[0]:
                sys.exit(f"lib_bench: {path}: unknown line {fields[0]!r}")
    return pairs, refs


def round_medians(rnd, pairs, refs):
    """{command key: its median ms in the round} (from the first pair a command is in)."""
    out = {}
    for p in pairs:
        s = rnd.pairs[p.label]
        out.setdefault(p.a.key, med(s.a))
        out.setdefault(p.b.key, med(s.b))
    for c in refs:
        out.setdefault(c.key, med(rnd.refs[c.label].a))
    return out


def main(argv):
    if len(argv) not in (6, 7):
        sys.exit("usage: lib_bench.py SPEC RUNS ROUNDS PAUSE LOADED [JSON]")
    pairs, refs = read_spec(argv[1])
    if not pairs and not refs:
        say("nothing to measure (every command was left out above)")
        return
    idle, loaded = measure(pairs, refs, int(argv[2]), int(argv[3]), float(argv[4]),
                           argv[5] == "1")
    if len(argv) == 7:
        import json
        with open(argv[6], "w") as f:
            json.dump({
                "idle": [round_medians(r, pairs, refs) for r in idle],
                "loaded": loaded and round_medians(loaded, pairs, refs),
                "ratios": {f"{p.a.key}/{p.b.key}": [med(r.pairs[p.label].ratios) for r in idle]
                           for p in pairs},
            }, f)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except KeyboardInterrupt:
        sys.exit(130)
