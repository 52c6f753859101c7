#!/usr/bin/python3
"""A TCP server for the network tests: on ADDRESS:PORT, answers each connection with
"hello from ADDRESS" and closes it. Stops by itself after LIFETIME seconds.
With $READY set, creates that file once it serves."""
import os
import socket
import sys

address, port = sys.argv[1], int(sys.argv[2])
lifetime = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
server = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((address, port))
server.listen(16)
# Serving from here on: tell the harness, which waits for this file (World::services).
if os.environ.get("READY"):
    open(os.environ["READY"], "w").close()
server.settimeout(lifetime)
try:
    while True:
        conn, _ = server.accept()
        conn.sendall(f"hello from {address}\n".encode())
        conn.close()
except socket.timeout:
    pass
