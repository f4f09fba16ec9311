#!/usr/bin/env python3
"""Derive fixture roots from the captured ones in agent/testdata/roots.

  derive_root.py sysirq SRC DST
      DST gets SRC's /sys plus what a kernel with CONFIG_SPARSE_IRQ shows there:
      sys/kernel/irq/N/{per_cpu_count,actions,chip_name,hwirq} for the network
      devices' IRQs (and the first two other numbered IRQs, which the agent must not
      need), sys/devices/.../msi_irqs/N for each PCI function, and
      devices/system/cpu/possible (= online: every CPU of the capture is online).
      DST/proc is a link to SRC/proc: both ways read the same numbers.

  derive_root.py shrink SRC DST NCPUS
      DST/proc/{interrupts,softirqs,stat,net/softnet_stat} keep the first NCPUS CPU
      columns (rows) of SRC's, for growth measurements (every IRQ row of the capture
      stays, so only the CPU count changes); DST/sys is SRC's with the CPU lists cut to
      NCPUS (one NUMA node) and no kernel/irq tree, DST/proc/{irq,sys} link to SRC's.

The numbers are the capture's, never invented: per_cpu_count is the row of
/proc/interrupts printed the way kernel/irq/irqdesc.c per_cpu_count_show prints it
("%u" per possible CPU joined by ",", then "\\n").
"""

import os
import re
import shutil
import sys


def parse_interrupts(text):
    lines = text.split("\n")
    ncpus = len(lines[0].split())
    rows = []
    for line in lines[1:]:
        if ":" not in line:
            continue
        label, rest = line.split(":", 1)
        label = label.strip()
        if not label.isdigit():
            continue
        toks = rest.split()
        counts = [int(c) for c in toks[:ncpus]]
        tail = rest.split(None, ncpus)[ncpus] if len(toks) > ncpus else ""
        tail_toks = tail.split()
        chip = tail_toks[0] if tail_toks else ""
        hwirq = ""
        actions_from = 1
        if len(tail_toks) > 1 and re.match(r"^\d*(-[a-z]+)?$", tail_toks[1]):
            hwirq = tail_toks[1].split("-")[0]
            actions_from = 2
        actions = [a.strip() for a in " ".join(tail_toks[actions_from:]).split(", ") if a.strip()]
        rows.append((int(label), counts, chip, hwirq, actions))
    return ncpus, rows


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def sysirq(src, dst):
    if os.path.exists(dst):
        shutil.rmtree(dst)
    os.makedirs(dst)
    shutil.copytree(os.path.join(src, "sys"), os.path.join(dst, "sys"), symlinks=True)
    os.symlink(os.path.join("..", os.path.basename(src.rstrip("/")), "proc"), os.path.join(dst, "proc"))
    with open(os.path.join(src, "proc/interrupts")) as f:
        ncpus, rows = parse_interrupts(f.read())
    online = open(os.path.join(src, "sys/devices/system/cpu/online")).read()
    write(os.path.join(dst, "sys/devices/system/cpu/possible"), online)

    # netdev -> PCI function directory, from the class/net links.
    net = os.path.join(dst, "sys/class/net")
    devices = {}
    for name in sorted(os.listdir(net)):
        dev_link = os.path.join(net, name, "device")
        if os.path.lexists(dev_link):
            pci_dir = os.path.realpath(dev_link)
            devices[name] = (os.path.basename(pci_dir), pci_dir)

    keep = set()
    others = 0
    for irq, counts, chip, hwirq, actions in rows:
        owner = None
        for name, (addr, pci_dir) in devices.items():
            if any(re.search(r"(^|-)%s(-|$)" % re.escape(name), a) or addr in a for a in actions):
                owner = pci_dir
        if owner:
            write(os.path.join(owner, "msi_irqs", str(irq)), "msix\n")
            keep.add(irq)
        elif others < 2 and actions:
            keep.add(irq)
            others += 1
    for irq, counts, chip, hwirq, actions in rows:
        if irq not in keep:
            continue
        d = os.path.join(dst, "sys/kernel/irq", str(irq))
        write(os.path.join(d, "per_cpu_count"), ",".join(str(c) for c in counts) + "\n")
        write(os.path.join(d, "actions"), ",".join(actions) + "\n")
        write(os.path.join(d, "chip_name"), chip + "\n")
        write(os.path.join(d, "hwirq"), hwirq + "\n")
    print(f"{dst}: {len(keep)} IRQs of {len(rows)}, {ncpus} CPUs")


def shrink_percpu_table(text, n):
    """Keep the first n CPU columns of /proc/interrupts or /proc/softirqs."""
    lines = text.split("\n")
    hdr = lines[0].split()
    total = len(hdr)
    width_hdr = re.match(r"^(\s*)", lines[0]).group(1)
    out = [width_hdr + "".join("%-11s" % c for c in hdr[:n]).rstrip()]
    for line in lines[1:]:
        if ":" not in line:
            out.append(line)
            continue
        label, rest = line.split(":", 1)
        toks = rest.split()
        counts = []
        for t in toks[:total]:
            if not t.isdigit():
                break
            counts.append(t)
        tail = rest.split(None, len(counts))[len(counts)] if len(toks) > len(counts) else ""
        kept = counts[:n]
        out.append(label + ":" + "".join(" %10s" % c for c in kept) + ("  " + tail if tail else ""))
    return "\n".join(out)


def shrink(src, dst, n):
    n = int(n)
    if os.path.exists(dst):
        shutil.rmtree(dst)
    os.makedirs(os.path.join(dst, "proc"))
    # The devices and their IRQ affinity as they are; the CPU lists cut to n.
    for rel in ["irq", "sys"]:
        if os.path.exists(os.path.join(src, "proc", rel)):
            os.symlink(os.path.abspath(os.path.join(src, "proc", rel)), os.path.join(dst, "proc", rel))
    shutil.copytree(os.path.join(src, "sys"), os.path.join(dst, "sys"), symlinks=True)
    cpu = os.path.join(dst, "sys/devices/system/cpu")
    for f in ["online", "possible"]:
        if os.path.exists(os.path.join(cpu, f)):
            write(os.path.join(cpu, f), "0-%d\n" % (n - 1) if n > 1 else "0\n")
    nodes = os.path.join(dst, "sys/devices/system/node")
    if os.path.isdir(nodes):
        shutil.rmtree(nodes)
        write(os.path.join(nodes, "node0/cpulist"), "0-%d\n" % (n - 1) if n > 1 else "0\n")
    shutil.rmtree(os.path.join(dst, "sys/kernel"), ignore_errors=True)
    for rel in ["proc/interrupts", "proc/softirqs"]:
        p = os.path.join(src, rel)
        if os.path.exists(p):
            write(os.path.join(dst, rel), shrink_percpu_table(open(p).read(), n))
    p = os.path.join(src, "proc/net/softnet_stat")
    if os.path.exists(p):
        write(os.path.join(dst, "proc/net/softnet_stat"), "".join(open(p).readlines()[:n]))
    p = os.path.join(src, "proc/stat")
    if os.path.exists(p):
        keep = []
        for line in open(p):
            m = re.match(r"^cpu(\d+) ", line)
            if m and int(m.group(1)) >= n:
                continue
            keep.append(line)
        write(os.path.join(dst, "proc/stat"), "".join(keep))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "sysirq":
        sysirq(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 5 and sys.argv[1] == "shrink":
        shrink(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
