#!/usr/bin/python3
"""A TCP server for the bypass tests: on ADDRESS:PORT, reads each connection to its end and
answers with the SHA-256 of what it read (hex) and the byte count, then closes it. Stops by
itself after LIFETIME seconds. With $READY set, creates that file once it serves."""
import hashlib
import os
import socket
import sys
import threading

address, port = sys.argv[1], int(sys.argv[2])
lifetime = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
server = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((address, port))
server.listen(64)
if os.environ.get("READY"):
    open(os.environ["READY"], "w").close()


def serve(conn):
    digest, count = hashlib.sha256(), 0
    while True:
        data = conn.recv(1 << 20)
        if not data:
            break
        digest.update(data)
        count += len(data)
    conn.sendall(f"{digest.hexdigest()} {count}\n".encode())
    conn.close()


server.settimeout(lifetime)
try:
    while True:
        conn, _ = server.accept()
        conn.settimeout(lifetime)
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
except socket.timeout:
    pass
