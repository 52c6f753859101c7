#!/usr/bin/python3
"""A client for the network tests: `client.py tcp|udp HOST PORT [MESSAGE]` prints what the
server sends back (for UDP, the answer to MESSAGE). Retries for a few seconds while the
server is still starting; exits 1 with the error if it never answers."""
import socket
import sys
import time

proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
message = (sys.argv[4] if len(sys.argv) > 4 else "ping").encode()
family = socket.AF_INET6 if ":" in host else socket.AF_INET
deadline = time.time() + 10
while True:
    try:
        if proto == "tcp":
            s = socket.create_connection((host, port), timeout=3)
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
