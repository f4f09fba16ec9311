#!/usr/bin/env python3
"""Boot one guest kernel under QEMU (TCG), feed its igb NIC crafted frames when the guest
asks for them, and collect every @@ section the guest prints on its serial console.

usage: run.py TAG OUT_DIR   (writes OUT_DIR/console.log, OUT_DIR/sections/*, OUT_DIR/files/...)
"""
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import send_frames  # noqa: E402

VM_DIR = os.path.dirname(os.path.abspath(__file__))
GUEST_SECONDS = int(os.environ.get("VM_GUEST_SECONDS", "300"))
UDP_PORT = 7000


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def qemu_command(tag, guest_port, host_port):
    kroot = os.path.join(VM_DIR, ".cache", "kernels", tag, "root", "boot")
    vmlinuz = os.path.join(kroot, next(f for f in os.listdir(kroot) if f.startswith("vmlinuz-")))
    initrd = os.path.join(VM_DIR, ".cache", f"initramfs-{tag}.cpio.gz")
    return [
        "qemu-system-x86_64", "-accel", "tcg", "-M", "q35", "-cpu", "max", "-smp", "4", "-m", "1024",
        "-nographic", "-no-reboot",
        "-kernel", vmlinuz, "-initrd", initrd,
        "-append", "console=ttyS0 quiet loglevel=1 panic=-1 mitigations=off",
        "-netdev", "dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=%d,"
        "remote.type=inet,remote.host=127.0.0.1,remote.port=%d" % (guest_port, host_port),
        "-device", f"igb,netdev=n0,mac={send_frames.GUEST_MAC}",
    ]


def main():
    tag, out = sys.argv[1], sys.argv[2]
    os.makedirs(os.path.join(out, "sections"), exist_ok=True)
    host = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    host.bind(("127.0.0.1", 0))
    guest_port = free_udp_port()
    cmd = qemu_command(tag, guest_port, host.getsockname()[1])
    with open(os.path.join(out, "qemu-command"), "w") as fh:
        fh.write(" ".join(cmd) + "\n")
    log = open(os.path.join(out, "console.log"), "w")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    killer = threading.Timer(GUEST_SECONDS, proc.kill)
    killer.start()
    started = time.monotonic()
    section, lines, files, links, current_file = None, [], {}, {}, None
    senders = []
    for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip("\r\n").replace("\r", "")
        log.write("%7.1f %s\n" % (time.monotonic() - started, line))
        log.flush()
        if line.startswith("@@BEGIN "):
            section, lines = line.split(" ", 1)[1], []
        elif line.startswith("@@END ") and section:
            with open(os.path.join(out, "sections", section), "w") as fh:
                fh.write("\n".join(lines) + ("\n" if lines else ""))
            section = None
        elif section == "files" and line.startswith("@@FILE "):
            current_file = line.split(" ", 1)[1]
            files[current_file] = []
        elif section == "files" and line.startswith("@@LINK "):
            _, path, target = line.split(" ", 2)
            links[path] = target
        elif section == "files" and line == "@@EOF":
            current_file = None
        elif section == "files" and current_file:
            files[current_file].append(line)
        elif section is not None:
            lines.append(line)
        elif line.startswith("@@ GO "):
            # "@@ GO udp" sends send_frames.FLOWS; "@@ GO NAME" the flow set FLOW_SETS[NAME].
            flows = send_frames.FLOW_SETS.get(line[len("@@ GO "):], send_frames.FLOWS)
            t = threading.Thread(
                target=lambda flows=flows: send_frames.send(host, ("127.0.0.1", guest_port), UDP_PORT, flows)
            )
            t.start()
            senders.append(t)
    proc.wait()
    killer.cancel()
    for t in senders:
        t.join()
    for path, content in files.items():
        dest = os.path.join(out, "files", path.lstrip("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "w") as fh:
            fh.write("\n".join(content) + "\n")
    for path, target in links.items():
        dest = os.path.join(out, "files", path.lstrip("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.symlink(target, dest)
    print("guest %s: qemu exit %s after %.0fs" % (tag, proc.returncode, time.monotonic() - started), file=sys.stderr)
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
