#!/usr/bin/env bash
# Everything the VM e2e needs, through a private apt source list (scripts/vm/apt.sh):
# qemu-system-x86 >= 8 (for -device igb, QEMU 8.0) and busybox-static installed into the
# system, the three stock Debian kernels downloaded and unpacked under .cache/kernels/.
set -euo pipefail
source "$(dirname "$0")/apt.sh"

# Kernel tag -> linux-image-amd64 metapackage suite; the exact image package is resolved
# from the metapackage's Depends on the private lists.
declare -A SUITE=([5.10]=bullseye [6.1]=bookworm [6.12]=bookworm-backports)

qemu_ok() {
    command -v qemu-system-x86_64 >/dev/null || return 1
    local major
    major=$(qemu-system-x86_64 --version | sed -nE 's/.*version ([0-9]+)\..*/\1/p')
    [ "${major:-0}" -ge 8 ]
}

vm_apt_update
if ! qemu_ok || ! dpkg -s busybox-static >/dev/null 2>&1; then
    # Other apt users may hold the dpkg lock for a while: wait for it.
    DEBIAN_FRONTEND=noninteractive vm_apt install -y --no-install-recommends -o DPkg::Lock::Timeout=600 \
        -t bookworm-backports qemu-system-x86 busybox-static >&2
fi
qemu_ok || { echo "vm deps: qemu-system-x86_64 >= 8 is not available" >&2; exit 1; }

# Resolve one kernel tag to its image package name and version.
kernel_pkg() {
    local tag=$1 suite=${SUITE[$1]}
    vm_apt_cache show "linux-image-amd64/$suite" 2>/dev/null \
        | sed -nE 's/^Depends: (linux-image-[^ ]+-amd64) \(= ([^)]+)\).*/\1 \2/p' | head -n1
}

for tag in "${!SUITE[@]}"; do
    dir="$VM_CACHE/kernels/$tag"
    [ -f "$dir/package" ] && continue
    read -r pkg ver < <(kernel_pkg "$tag")
    [ -n "${pkg:-}" ] || { echo "vm deps: no linux-image-amd64 in ${SUITE[$tag]}" >&2; exit 1; }
    (cd "$VM_CACHE/debs" && vm_apt download "$pkg=$ver" >&2)
    deb=$(ls "$VM_CACHE/debs/${pkg}_"*.deb | head -n1)
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    dpkg-deb -x "$deb" "$dir.tmp/root"
    echo "$pkg $ver" >"$dir.tmp/package"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
done
