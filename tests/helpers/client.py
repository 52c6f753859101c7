#!/usr/bin/python3
"""A client for the network tests: `client.py tcp|udp HOST PORT [MESSAGE] [--from ADDRESS]`
prints what the server sends back (for UDP, the answer to MESSAGE), connecting from ADDRESS
when given. Retries for a few seconds while the server is still starting; exits 1 with the
error if it never answers."""
import socket
import sys
import time

source = None
if "--from" in sys.argv:
    i = sys.argv.index("--from")
    source = sys.argv[i + 1]
    del sys.argv[i : i + 2]
proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
message = (sys.argv[4] if len(sys.argv) > 4 else "ping").encode()
family = socket.AF_INET6 if ":" in host else socket.AF_INET
deadline = time.time() + 10
while True:
    try:
        if proto == "tcp":
            s = socket.create_connection(
                (host, port), timeout=3, source_address=(source, 0) if source else None
            )
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            if not data:
                raise ConnectionError("closed without a word")
        else:
            s = socket.socket(family, socket.SOCK_DGRAM)
            if source:
                s.bind((source, 0))
            s.settimeout(1)
            s.sendto(message, (host, port))
            data = s.recv(65536)
        sys.stdout.write(data.decode())
        sys.exit(0)
    except (OSError, ConnectionError) as e:
        if time.time() > deadline:
            print(f"client: {e}", file=sys.stderr)
            sys.exit(1)
        time.sleep(0.1)
