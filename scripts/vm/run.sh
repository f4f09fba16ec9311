#!/usr/bin/env bash
# run.sh KERNEL [KERNEL...]: boot each stock Debian guest (5.10, 6.1, 6.12) under QEMU TCG
# with an igb NIC, run the agent against ground truth, print one verdict line per check.
# Exit non-zero if any check of any kernel fails. Results: scripts/vm/.cache/out/KERNEL/.
set -euo pipefail
VM_DIR="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$VM_DIR/../.." && pwd)"
[ $# -ge 1 ] || { echo "usage: $0 KERNEL... (5.10 6.1 6.12)" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || echo "vm: not root; the guests do not need it, the installs in deps.sh do" >&2

"$VM_DIR/deps.sh"
(cd "$REPO" && cargo build --release --bin skewscope >&2)
status=0
tally="$(mktemp)"
trap 'rm -f "$tally"' EXIT
for tag in "$@"; do
    [ -d "$VM_DIR/.cache/kernels/$tag" ] || { echo "vm $tag boot: FAIL no such kernel (5.10, 6.1, 6.12)" | tee -a "$tally"; status=1; continue; }
    out="$VM_DIR/.cache/out/$tag"
    rm -rf "$out"
    "$VM_DIR/build_initramfs.sh" "$tag" "${CARGO_TARGET_DIR:-$REPO/target}/release/skewscope" >/dev/null
    if ! python3 "$VM_DIR/run.py" "$tag" "$out"; then
        echo "vm $tag boot: FAIL guest did not power off cleanly (see $out/console.log)" | tee -a "$tally"
        status=1
    fi
    python3 "$VM_DIR/verdict.py" "$tag" "$out" | tee -a "$tally" || status=1
done
# One closing line a test runner's reader understands.
passed=$(grep -c ': PASS' "$tally" || true)
failed=$(grep -c ': FAIL' "$tally" || true)
echo "vm-e2e: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || status=1
exit $status
