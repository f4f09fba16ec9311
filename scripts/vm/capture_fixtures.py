#!/usr/bin/env python3
"""Copy one guest run (scripts/vm/.cache/out/TAG) into agent/testdata/vm-TAG with provenance.

usage: capture_fixtures.py TAG
Writes root/ (a --procfs/--sysfs/--ethtool-dir fixture root with sysfs's own symlinks),
captured/ (what the guest printed: doctor, the agent's windowed snapshot, the lab counts,
ethtool -i/-l/-x/-S) and README.md naming the kernel package, qemu version and command.
"""
import json
import os
import re
import shutil
import subprocess
import sys

VM_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(VM_DIR))

CAPTURED = {
    "doctor": "doctor.json",
    "snapshot": "snapshot.json",
    "snapshot_log": "snapshot.log",
    "snapshot_oneshot": "snapshot_oneshot.json",
    "lab": "lab.txt",
    "tcp_connect": "tcp_connect.txt",
    "ethtool_i": "ethtool_-i_eth0.txt",
    "ethtool_l": "ethtool_-l_eth0.txt",
    "ethtool_x_before": "ethtool_-x_eth0.before.txt",
    "ethtool_S_before": "ethtool_-S_eth0.before.txt",
}


def main():
    tag = sys.argv[1]
    out = os.path.join(VM_DIR, ".cache", "out", tag)
    dest = os.path.join(REPO, "agent", "testdata", f"vm-{tag}")
    if not os.path.isdir(os.path.join(out, "files")):
        sys.exit(f"no guest run in {out}: run scripts/vm/run.sh {tag} first")
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(os.path.join(out, "files"), os.path.join(dest, "root"), symlinks=True)
    ethtool = os.path.join(dest, "root", "ethtool")
    os.makedirs(ethtool)
    # sosreport names, as --ethtool-dir reads them.
    shutil.copy(os.path.join(out, "sections", "ethtool_S_after"), os.path.join(ethtool, "ethtool_-S_eth0"))
    shutil.copy(os.path.join(out, "sections", "ethtool_x"), os.path.join(ethtool, "ethtool_-x_eth0"))
    os.makedirs(os.path.join(dest, "captured"))
    for section, name in CAPTURED.items():
        src = os.path.join(out, "sections", section)
        if os.path.exists(src):
            text = open(src).read()
            if name.endswith(".json") and text.strip():
                text = json.dumps(json.loads(text), indent=2) + "\n"
            open(os.path.join(dest, "captured", name), "w").write(text)

    package = open(os.path.join(VM_DIR, ".cache", "kernels", tag, "package")).read().strip()
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    command = open(os.path.join(out, "qemu-command")).read().strip()
    command = command.replace(VM_DIR, "scripts/vm")
    command = re.sub(r"port=\d+", "port=PORT", command)
    kernel_line = next((l for l in open(os.path.join(out, "console.log")) if "@@ kernel" in l), "").split("@@ ", 1)[-1].strip()
    with open(os.path.join(dest, "README.md"), "w") as fh:
        fh.write(f"""# Fixture: stock Debian {tag} guest with an emulated igb (Intel 82576) NIC

Captured by `scripts/vm/run.sh {tag}` then `scripts/vm/capture_fixtures.py {tag}`: real files of a
real kernel, read inside the guest after the VM e2e's traffic (4520 crafted UDP datagrams in 8
flows from the host, 200 TCP connections made inside the guest).

- Kernel: Debian package `{package.split()[0]}` version `{package.split()[1]}` (amd64),
  from Debian's archive (deb.debian.org) through a private apt source list; guest says `{kernel_line}`.
- QEMU: {qemu} (Debian bookworm-backports `qemu-system-x86`), TCG.
- Command (ports of the dgram netdev vary per run):

      {command}

- Licence: kernel output, no creative content; Debian packages are free software.

Layout:
- `root/`: a `--procfs root/proc --sysfs root/sys --ethtool-dir root/ethtool` fixture root.
  `proc/interrupts`, `proc/softirqs`, `proc/net/softnet_stat`, `proc/stat`, the net.core sysctls
  and `proc/irq/N/*affinity*` of the igb vectors; in `sys/`, the igb device as sysfs lays it out
  (`class/net/eth0` and `device`, `driver` are the guest's own symlinks), its `msi_irqs/`,
  `numa_node`, queue `rps_cpus`/`xps_cpus`, `operstate`, `ifindex`, `devices/system/cpu/online`.
  `ethtool/ethtool_-S_eth0` and `ethtool_-x_eth0`: `ethtool -S` / `ethtool -x` after the traffic.
- `captured/`: what the guest printed: `skewscope doctor --json`, the agent's
  `snapshot --json --duration 8` taken while the traffic flowed (and its log), a one-shot
  `snapshot --json` (no probes), the lab's per-socket counts (ground truth), `ethtool -i/-l`,
  and `ethtool -x/-S` before the traffic.
""")
    print(dest)


if __name__ == "__main__":
    main()
