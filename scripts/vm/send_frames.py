#!/usr/bin/env python3
"""Crafted Ethernet/IPv4/UDP frames for the guest's igb NIC through a QEMU dgram netdev.

QEMU's `-netdev dgram` carries one raw Ethernet frame per UDP datagram, so writing a frame to
the netdev's local address puts it on the guest NIC's wire. Every flow's packet count is
chosen here, which makes it the ground truth the VM e2e compares against.
"""
import socket
import struct
import time

GUEST_MAC = "52:54:00:11:00:02"
HOST_MAC = "52:54:00:11:00:01"
GUEST_ADDR = "10.11.0.2"

# (source address, source port, packets): distinct source addresses, because igb hashes UDP
# on addresses only by default (no RSS_FIELD_IPV4_UDP), and one heavy flow so a listener
# gets a known hot share. 4520 datagrams in all.
FLOWS = [
    ("10.11.1.1", 40001, 1200),
    ("10.11.1.2", 40002, 800),
    ("10.11.1.3", 40003, 600),
    ("10.11.1.4", 40004, 500),
    ("10.11.1.5", 40005, 400),
    ("10.11.1.6", 40006, 400),
    ("10.11.1.7", 40007, 320),
    ("10.11.1.8", 40008, 300),
]



def rss_flows(count=64, seed=15):
    """checks/rss_shadow: `count` flows from distinct source addresses spread over
    10.12.0.0/14 (the igb UDP hash takes addresses only, so each flow lands on its own
    hash, and the varied address bits let the check solve for the Toeplitz key), with
    uneven counts: a few heavy flows, the rest 3..69 packets. 3140 datagrams in all."""
    state, flows = seed, []
    for i in range(count):
        state = (state * 1103515245 + 12345) % 2**31  # a fixed LCG: the same flows every run
        addr = "10.%d.%d.%d" % (12 + (state >> 24) % 4, (state >> 16) % 256, 1 + (state >> 8) % 254)
        packets = [400, 250, 180, 120][i] if i < 4 else 3 + (i * 37) % 67
        flows.append((addr, 41000 + i, packets))
    return flows


RSS_FLOWS = rss_flows()

# Further named flow sets for checks/*.sh ("@@ GO NAME"); "udp" is FLOWS.
FLOW_SETS = {"udp": FLOWS, "rss": RSS_FLOWS}


def mac(text):
    return bytes(int(b, 16) for b in text.split(":"))


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(src, sport, dst, dport, payload):
    saddr, daddr = socket.inet_aton(src), socket.inet_aton(dst)
    udp_len = 8 + len(payload)
    pseudo = saddr + daddr + struct.pack("!BBH", 0, 17, udp_len)
    udp = struct.pack("!HHHH", sport, dport, udp_len, 0) + payload
    csum = checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17, 0, saddr, daddr)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return mac(GUEST_MAC) + mac(HOST_MAC) + b"\x08\x00" + ip + udp


def schedule(flows):
    """Flows interleaved by weight (smooth weighted round robin), so every flow spans the run."""
    weight = [n for _, _, n in flows]
    credit = [0] * len(flows)
    total = sum(weight)
    for _ in range(total):
        for i, w in enumerate(weight):
            credit[i] += w
        i = max(range(len(flows)), key=lambda j: credit[j])
        credit[i] -= total
        yield i


def send(sock, target, dport, flows=FLOWS, pps=1500):
    frames = [udp_frame(src, sport, GUEST_ADDR, dport, (b"skewscope-vm %d " % i).ljust(32, b".")) for i, (src, sport, _) in enumerate(flows)]
    gap = 1.0 / pps
    start = time.monotonic()
    for k, i in enumerate(schedule(flows)):
        sock.sendto(frames[i], target)
        delay = start + (k + 1) * gap - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return {f"{src}:{sport}": n for src, sport, n in flows}
