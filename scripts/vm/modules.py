#!/usr/bin/env python3
"""Copy kernel modules and everything they depend on into an initramfs, in load order.

The stock .deb ships no modules.dep (depmod runs in its postinst), so dependencies are read
from each module's own .modinfo "depends=" field. Compressed modules (.ko.xz, .ko.zst) are
decompressed on the host, because busybox insmod loads plain ELF only.

usage: modules.py MODULE_ROOT DEST_DIR NAME... ; prints the load order, one file per line.
"""
import lzma
import os
import subprocess
import sys


def index(root):
    found = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            for ext in (".ko", ".ko.xz", ".ko.zst"):
                if f.endswith(ext):
                    name = f[: -len(ext)].replace("-", "_")
                    found[name] = os.path.join(dirpath, f)
    return found


def read_ko(path):
    if path.endswith(".xz"):
        return lzma.decompress(open(path, "rb").read())
    if path.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", path], check=True, capture_output=True).stdout
    return open(path, "rb").read()


def depends(elf):
    # .modinfo strings are NUL-separated "key=value"; depends= lists module names, comma-separated.
    at = elf.find(b"\0depends=")
    if at < 0:
        return []
    end = elf.index(b"\0", at + 1)
    value = elf[at + len(b"\0depends=") : end].decode()
    return [d.replace("-", "_") for d in value.split(",") if d]


def main():
    root, dest, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    known = index(root)
    order, seen = [], set()

    def visit(name):
        name = name.replace("-", "_")
        if name in seen:
            return
        seen.add(name)
        if name not in known:
            # Built into this kernel (=y): nothing to load.
            return
        elf = read_ko(known[name])
        for dep in depends(elf):
            visit(dep)
        out = os.path.join(dest, name + ".ko")
        with open(out, "wb") as fh:
            fh.write(elf)
        order.append(name + ".ko")

    os.makedirs(dest, exist_ok=True)
    for n in names:
        visit(n)
    print("\n".join(order))


if __name__ == "__main__":
    main()
