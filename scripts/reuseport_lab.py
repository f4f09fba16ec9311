#!/usr/bin/env python3
"""A skewed SO_REUSEPORT UDP server and its clients, for `make lab`.

Runs inside the network namespace scripts/lab.sh makes. The server opens --sockets
sockets on one port with SO_REUSEPORT, one thread each, and counts what every socket
receives; the clients send a few heavy flows and many light ones (each flow a fixed
source port, so the kernel's 4-tuple hash pins it to one socket). Every loop is bounded
by --seconds. At the end it prints the ground truth: datagrams per socket (with each
socket's inode, as skewscope reports it) and the LSI those counts give.
"""
import argparse
import os
import socket
import statistics
import threading
import time


def serve(sock, counts, index, stop):
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            sock.recv(2048)
            counts[index] += 1
        except socket.timeout:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--addr", default="10.77.0.1")
    ap.add_argument("--port", type=int, default=9000)
    ap.add_argument("--sockets", type=int, default=4)
    ap.add_argument("--heavy", type=int, default=3, help="heavy flows")
    ap.add_argument("--light", type=int, default=40, help="light flows")
    ap.add_argument("--pps", type=int, default=2000, help="total datagrams per second")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long to run (bounded)")
    args = ap.parse_args()

    socks, counts, stop = [], [0] * args.sockets, threading.Event()
    for i in range(args.sockets):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind((args.addr, args.port))
        socks.append(s)
        threading.Thread(target=serve, args=(s, counts, i, stop), daemon=True).start()

    # Heavy flows carry 10x the packets of light ones.
    flows = []
    for f in range(args.heavy + args.light):
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.bind((args.addr, 20000 + f))
        flows.append((c, 10 if f < args.heavy else 1))
    schedule = [c for c, w in flows for _ in range(w)]
    interval = 1.0 / max(args.pps, 1)
    deadline = time.monotonic() + args.seconds
    sent, payload = 0, b"x" * 64
    print(f"lab: {args.sockets} sockets on {args.addr}:{args.port}, "
          f"{args.heavy} heavy + {args.light} light flows, {args.pps} pps for {args.seconds}s",
          flush=True)
    try:
        while time.monotonic() < deadline:
            for c in schedule:
                c.sendto(payload, (args.addr, args.port))
                sent += 1
                time.sleep(interval)
                if time.monotonic() >= deadline:
                    break
    except KeyboardInterrupt:
        pass
    time.sleep(0.5)
    stop.set()
    mean = statistics.mean(counts)
    lsi = statistics.pstdev(counts) / (mean + 1e-9)
    for i, (s, n) in enumerate(zip(socks, counts)):
        print(f"socket {i} inode {os.fstat(s.fileno()).st_ino}: {n} datagrams")
    print(f"sent {sent}, LSI from the true counts {lsi:.3f}")


if __name__ == "__main__":
    main()
