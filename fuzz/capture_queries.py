#!/usr/bin/env python3
"""Captures real queries from dig (UDP and TCP) as seeds for the packet
fuzz target: `python3 fuzz/capture_queries.py fuzz/seeds/packet`.
Listens on 127.0.0.1 only and answers nothing (dig times out after 1 s
once, with +tries=1)."""
import os
import socket
import subprocess
import sys
import threading

out = sys.argv[1] if len(sys.argv) > 1 else "fuzz/seeds/packet"
os.makedirs(out, exist_ok=True)

udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", 0))
port = udp.getsockname()[1]
tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("127.0.0.1", port))
tcp.listen(8)

QUERIES = [
    ["www.example.test", "A"],
    ["www.example.test", "AAAA"],
    ["www.example.test", "A", "+subnet=193.0.6.0/24"],
    ["www.example.test", "AAAA", "+subnet=2001:67c:2e8::/48"],
    ["www.example.test", "A", "+subnet=0.0.0.0/0"],
    ["sticky.example.test", "A", "+subnet=203.0.113.0/24"],
    ["ll.example.test", "A", "+subnet=1.2.3.0/24"],
    ["fast.example.test", "AAAA"],
    ["example.test", "SOA"],
    ["example.test", "NS", "+norecurse"],
    ["example.test", "ANY"],
    ["example.test", "MX", "+dnssec"],
    ["example.test", "TXT", "+nsid"],
    ["example.test", "CAA", "+cookie"],
    ["nx.example.test", "A", "+noedns"],
    ["WwW.ExAmPlE.TeSt", "A"],
    ["app.example.test", "A"],
    ["version.bind", "TXT", "-c", "CH"],
    ["example.test", "TYPE65280"],
    ["example.test", "A", "+edns=1"],
    ["example.test", "A", "+bufsize=512"],
    ["example.test", "A", "+bufsize=65535", "+padding=128"],
    ["a." * 60 + "example.test", "A"],
    ["www.example.test", "A", "+tcp", "+keepalive"],
    ["example.test", "AXFR"],
    ["example.test", "IXFR=1"],
    ["www.example.test", "A", "+opcode=notify"],
    ["www.example.test", "A", "+ednsopt=65001:deadbeef"],
]

captured = []


def serve_udp():
    while True:
        try:
            data, _ = udp.recvfrom(65535)
        except OSError:
            return
        captured.append(data)


def serve_tcp():
    while True:
        try:
            c, _ = tcp.accept()
        except OSError:
            return
        c.settimeout(1)
        try:
            n = int.from_bytes(c.recv(2), "big")
            buf = b""
            while len(buf) < n:
                more = c.recv(n - len(buf))
                if not more:
                    break
                buf += more
            captured.append(buf)
        except OSError:
            pass
        c.close()


threading.Thread(target=serve_udp, daemon=True).start()
threading.Thread(target=serve_tcp, daemon=True).start()
for q in QUERIES:
    subprocess.run(
        ["dig", "@127.0.0.1", "-p", str(port), "+tries=1", "+time=1", *q],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
for i, data in enumerate(captured):
    with open(os.path.join(out, f"dig-{i:02}.bin"), "wb") as f:
        f.write(data)
print(f"{len(captured)} queries captured into {out}")
