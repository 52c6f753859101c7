#!/usr/bin/python3
"""A TCP server for the network tests that tells each client who it saw: on ADDRESS:PORT,
answers each connection with "peer IP" (the client's address as the server sees it) and
closes it. Stops by itself after LIFETIME seconds. With $READY set, creates that file once it
serves."""
import os
import socket
import sys

address, port = sys.argv[1], int(sys.argv[2])
lifetime = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
server = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((address, port))
server.listen(16)
if os.environ.get("READY"):
    open(os.environ["READY"], "w").close()
server.settimeout(lifetime)
try:
    while True:
        conn, peer = server.accept()
        conn.sendall(f"peer {peer[0]}\n".encode())
        conn.close()
except socket.timeout:
    pass
