#!/usr/bin/python3
"""A stand-in DNS resolver for the network tests: answers every A query with 10.9.8.7.

Runs as root inside the test harness's own network namespace, on ADDRESS:53 (UDP), and
stops by itself after LIFETIME seconds. With $READY set, creates that file once it serves.
"""
import os
import socket
import sys

address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.53"
lifetime = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((address, 53))
# Serving from here on: tell the harness, which waits for this file (World::services).
if os.environ.get("READY"):
    open(os.environ["READY"], "w").close()
sock.settimeout(lifetime)
try:
    while True:
        query, peer = sock.recvfrom(512)
        if len(query) < 12:
            continue
        # Header: same id, flags "response, recursion available", one question, one answer.
        header = query[:2] + b"\x81\x80" + query[4:6] + b"\x00\x01\x00\x00\x00\x00"
        end = 12
        while end < len(query) and query[end] != 0:
            end += query[end] + 1
        question = query[12 : end + 5]
        answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes([10, 9, 8, 7])
        sock.sendto(header + question + answer, peer)
except socket.timeout:
    pass
