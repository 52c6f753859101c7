#!/usr/bin/env python3
"""Run a command on a terminal of its own, as a person at a terminal would.

usage: on-a-terminal.py [-s ROWSxCOLS] [-w MARKER (-t TEXT | -r ROWSxCOLS)]... -- COMMAND [ARG]...

COMMAND starts in a new session whose controlling terminal is a fresh pty (as a login shell
or an ssh session gets one). Each -w/-t pair waits until MARKER has appeared in what the
terminal showed since the pair before, then types TEXT (backslash escapes as in Python
strings: \\n, \\x1d for Ctrl-]). -r ROWSxCOLS resizes the terminal at that point instead of
typing; -s ROWSxCOLS is the size it starts with (24x80). Nothing is typed otherwise.
Everything the terminal showed goes to stdout, and the exit status is COMMAND's (128+N when
a signal killed it). A marker that never appears within 60 s is an error (status 1) naming
it.
"""
import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time

WAIT = 60.0


def main():
    args = sys.argv[1:]
    steps = []
    size = (24, 80)
    while args and args[0] != "--":
        flag, value = args[0], args[1]
        args = args[2:]
        if flag == "-w":
            steps.append(["wait", value])
        elif flag == "-t":
            steps.append(["type", value.encode().decode("unicode_escape").encode("latin-1")])
        elif flag == "-r":
            rows, cols = value.split("x")
            steps.append(["resize", (int(rows), int(cols))])
        elif flag == "-s":
            rows, cols = value.split("x")
            size = (int(rows), int(cols))
        else:
            sys.exit(f"on-a-terminal: unknown option {flag}")
    command = args[1:]
    pid, master = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    shown = b""
    seen_from = 0
    deadline = None
    while True:
        while steps and steps[0][0] != "wait":
            kind, value = steps.pop(0)
            if kind == "type":
                os.write(master, value)
            else:
                fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", value[0], value[1], 0, 0))
        if steps and deadline is None:
            deadline = time.monotonic() + WAIT
        if steps:
            marker = steps[0][1].encode()
            at = shown.find(marker, seen_from)
            if at >= 0:
                seen_from = at + len(marker)
                steps.pop(0)
                deadline = None
                continue
            if time.monotonic() > deadline:
                sys.stdout.buffer.write(shown)
                sys.exit(f"on-a-terminal: {marker!r} never appeared")
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""
            if not data:
                break
            shown += data
    _, status = os.waitpid(pid, 0)
    sys.stdout.buffer.write(shown)
    sys.stdout.flush()
    if os.WIFSIGNALED(status):
        sys.exit(128 + os.WTERMSIG(status))
    sys.exit(os.WEXITSTATUS(status))


if __name__ == "__main__":
    main()
