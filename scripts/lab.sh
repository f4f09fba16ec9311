#!/usr/bin/env bash
# `make lab`: a skewed SO_REUSEPORT UDP group in its own network namespace, so that
# `make run` in another terminal shows real listener skew. Bounded: LAB_SECONDS (60).
# Only the namespace's own addresses carry traffic; the namespace is removed on exit.
set -euo pipefail
ns=skewscope-lab
secs=${LAB_SECONDS:-60}
cleanup() { ip netns del "$ns" 2>/dev/null || true; }
trap cleanup EXIT
cleanup
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" addr add 10.77.0.1/32 dev lo
echo "lab: namespace $ns; in another terminal: make run"
ip netns exec "$ns" python3 "$(dirname "$0")/reuseport_lab.py" --seconds "$secs" "$@"
