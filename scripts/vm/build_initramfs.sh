#!/usr/bin/env bash
# build_initramfs.sh TAG AGENT_BIN -> .cache/initramfs-TAG.cpio.gz
# A minimal root for one guest kernel: busybox-static, the igb + diag modules (and what they
# depend on), ethtool with its libraries, the agent with the libraries ldd lists, the lab tools (lab/*.c).
set -euo pipefail
VM_DIR="$(cd "$(dirname "$0")" && pwd)"
TAG=$1 AGENT=$2
KROOT="$VM_DIR/.cache/kernels/$TAG/root"
OUT="$VM_DIR/.cache/initramfs-$TAG.cpio.gz"
STAGE="$VM_DIR/.cache/stage-$TAG"
MODULES=(igb dca i2c-algo-bit inet_diag tcp_diag udp_diag)

rm -rf "$STAGE"
mkdir -p "$STAGE"/{bin,sbin,usr/bin,usr/sbin,lib64,lib/x86_64-linux-gnu,proc,sys,dev,tmp,run,etc,modules}
cp /bin/busybox "$STAGE/bin/busybox"

# Module files in load order (modules.py reads each one's .modinfo depends=).
python3 "$VM_DIR/modules.py" "$KROOT/lib/modules" "$STAGE/modules" "${MODULES[@]}" >"$STAGE/modules/order"

# A binary and the shared libraries ldd lists for it, at the same paths.
copy_with_libs() {
    local bin=$1 dest=$2
    install -D -m 0755 "$bin" "$STAGE$dest"
    ldd "$bin" | grep -oE '/[^ ]+\.so[^ ]*' | while read -r lib; do
        install -D -m 0755 "$(readlink -f "$lib")" "$STAGE$lib"
    done
}
copy_with_libs /usr/sbin/ethtool /usr/sbin/ethtool
strip -o "$STAGE.agent" "$AGENT"
copy_with_libs "$STAGE.agent" /usr/bin/skewscope
rm -f "$STAGE.agent"

for src in "$VM_DIR"/lab/*.c; do
    name=$(basename "$src" .c)
    gcc -static -O2 -Wall -Wextra -Werror -o "$STAGE/usr/bin/$name" "$src"
done
install -m 0755 "$VM_DIR/init.sh" "$STAGE/init"
mkdir -p "$STAGE/checks"
cp "$VM_DIR"/checks/*.sh "$STAGE/checks/" 2>/dev/null || true
echo "$TAG" >"$STAGE/etc/vm-tag"

(cd "$STAGE" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$OUT"
rm -rf "$STAGE"
echo "$OUT"
