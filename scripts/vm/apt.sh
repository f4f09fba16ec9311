#!/usr/bin/env bash
# A private apt for the VM e2e: its own sources, state and cache under scripts/vm/.cache,
# so the machine's own /etc/apt stays untouched. Source it, then call vm_apt / vm_apt_cache.
VM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VM_CACHE="$VM_DIR/.cache"
VM_APT="$VM_CACHE/apt"

# The mirror host the machine's own sources use (never an invented one).
vm_mirror_host() {
    local host
    host=$(grep -rhoE 'https?://[a-z0-9.-]+/debian\b' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
        | grep -v security | head -n1)
    echo "${host:-http://deb.debian.org/debian}"
}

vm_apt_setup() {
    mkdir -p "$VM_APT/etc/sources.list.d" "$VM_APT/etc/preferences.d" "$VM_APT/state/lists/partial" \
        "$VM_APT/cache/archives/partial" "$VM_CACHE/debs"
    local mirror
    mirror=$(vm_mirror_host)
    cat >"$VM_APT/etc/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bullseye main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm-backports main
SRC
    cat >"$VM_APT/apt.conf" <<CONF
Dir::Etc::SourceList "$VM_APT/etc/sources.list";
Dir::Etc::SourceParts "$VM_APT/etc/sources.list.d";
Dir::Etc::Preferences "$VM_APT/etc/preferences";
Dir::Etc::PreferencesParts "$VM_APT/etc/preferences.d";
Dir::State "$VM_APT/state";
Dir::State::status "/var/lib/dpkg/status";
Dir::Cache "$VM_APT/cache";
APT::Architecture "amd64";
Acquire::Languages "none";
CONF
}

vm_apt() { APT_CONFIG="$VM_APT/apt.conf" apt-get -q -o APT::Sandbox::User=root "$@"; }
vm_apt_cache() { APT_CONFIG="$VM_APT/apt.conf" apt-cache "$@"; }

# Refresh the private lists at most once a day.
vm_apt_update() {
    vm_apt_setup
    local stamp="$VM_APT/state/updated"
    if [ -z "$(find "$stamp" -mmin -1440 2>/dev/null)" ]; then
        vm_apt update >&2 && touch "$stamp"
    fi
}
