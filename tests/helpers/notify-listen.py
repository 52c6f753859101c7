#!/usr/bin/env python3
"""A service manager's end of sd_notify(3), for tests: bind a unix datagram socket at PATH
(what a Type=notify unit's NOTIFY_SOCKET names), then print each message received on one line
(newlines as '|'), followed by ' (MARKER exists)' when the file MARKER exists at that moment.
Ends after STOPPING=1 (having made the file HEARD, when given), or after 60 s.

usage: notify-listen.py PATH MARKER [HEARD]
"""
import os
import socket
import sys

path, marker = sys.argv[1], sys.argv[2]
heard = sys.argv[3] if len(sys.argv) > 3 else None
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(60)
try:
    while True:
        message = s.recv(4096).decode().strip().replace("\n", "|")
        seen = " (marker exists)" if os.path.exists(marker) else ""
        print(message + seen, flush=True)
        if "STOPPING=1" in message.split("|"):
            if heard:
                open(heard, "w").close()
            break
except socket.timeout:
    print("no more messages within 60 s", flush=True)
finally:
    os.unlink(path)
