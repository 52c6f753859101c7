#!/usr/bin/python3
"""A UDP server for the network tests: on ADDRESS:PORT, answers each datagram with
"echo: " and the datagram. Stops by itself after LIFETIME seconds.
With $READY set, creates that file once it serves."""
import os
import socket
import sys

address, port = sys.argv[1], int(sys.argv[2])
lifetime = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
server = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM)
server.bind((address, port))
# Serving from here on: tell the harness, which waits for this file (World::services).
if os.environ.get("READY"):
    open(os.environ["READY"], "w").close()
server.settimeout(lifetime)
try:
    while True:
        data, peer = server.recvfrom(65536)
        server.sendto(b"echo: " + data, peer)
except socket.timeout:
    pass
