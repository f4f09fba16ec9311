#!/usr/bin/env bash
# `make fuzz`: every cargo-fuzz target of agent/fuzz for FUZZ_SECONDS (default 30) each,
# seeded from the real fixtures in agent/testdata and agent/fuzz/seeds. A crash, a leak
# past -rss_limit_mb or one allocation past -malloc_limit_mb (a hostile length field) fails
# the run; the input is kept under agent/fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-30}
TOOLCHAIN=${FUZZ_TOOLCHAIN:-nightly}
if ! cargo "+$TOOLCHAIN" fuzz --version >/dev/null 2>&1; then
    echo "fuzz: needs cargo-fuzz on a nightly toolchain:" >&2
    echo "  rustup toolchain install nightly && cargo install cargo-fuzz --version 0.12.0 --locked" >&2
    exit 2
fi
FUZZ=agent/fuzz
T=agent/testdata
declare -A SEEDS=(
    [proc_interrupts]="$T/proc_interrupts $T/roots/*/proc/interrupts"
    [proc_softirqs]="$T/proc_softirqs $T/roots/*/proc/softirqs"
    [proc_softnet]="$T/softnet_stat $T/roots/*/proc/net/softnet_stat"
    [proc_stat]="$T/proc_stat $T/roots/*/proc/stat"
    [proc_net]="$T/proc_net_tcp $T/proc_net_udp"
    [ethtool_x]="$T/ethtool_x"
    [ethtool_s]="$T/ethtool_S"
    [sock_diag]="$FUZZ/seeds/sock_diag"
    [genl_qstats]="$FUZZ/seeds/genl_qstats"
    [rss_get]="$FUZZ/seeds/rss_get"
    [config]="$FUZZ/seeds/config"
    [trace]="$FUZZ/seeds/trace"
    [baseline]="$FUZZ/seeds/baseline"
    [channels]="$FUZZ/seeds/channels"
    [genl_ctrl]="$FUZZ/seeds/genl_ctrl"
    [rtnl_link]="$FUZZ/seeds/rtnl_link"
    [sysfs_text]="$FUZZ/seeds/sysfs_text"
)
TARGETS=${FUZZ_TARGETS:-"proc_interrupts proc_softirqs proc_softnet proc_stat proc_net ethtool_x ethtool_s sock_diag genl_qstats rss_get config trace baseline channels genl_ctrl rtnl_link sysfs_text"}
cargo "+$TOOLCHAIN" fuzz build --fuzz-dir "$FUZZ" -O
summary=()
failed=0
for t in $TARGETS; do
    corpus="$FUZZ/corpus/$t"
    mkdir -p "$corpus"
    # shellcheck disable=SC2086 # globs in the seed list
    for s in ${SEEDS[$t]}; do
        [ -e "$s" ] || continue
        if [ -d "$s" ]; then
            find "$s" -maxdepth 1 -type f ! -name README.md -exec cp -t "$corpus" {} +
        else
            cp "$s" "$corpus/$(echo "$s" | tr / _)"
        fi
    done
    log="$FUZZ/artifacts/$t.log"
    mkdir -p "$FUZZ/artifacts/$t"
    echo "fuzz: $t for ${SECONDS_EACH}s ($(find "$corpus" -type f | wc -l) inputs in the corpus)"
    if cargo "+$TOOLCHAIN" fuzz run --fuzz-dir "$FUZZ" -O "$t" "$corpus" -- \
        -max_total_time="$SECONDS_EACH" -rss_limit_mb=1024 -malloc_limit_mb=256 \
        -timeout=10 -max_len=1048576 -print_final_stats=1 >"$log" 2>&1; then
        verdict=ok
    else
        verdict=FAILED
        failed=1
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    summary+=("$(printf '%-16s %-6s execs %-10s cov %-6s ft %-6s corpus %s' "$t" "$verdict" \
        "${execs:-?}" "${cov:-?}" "${ft:-?}" "$(find "$corpus" -type f | wc -l)")")
    [ "$verdict" = ok ] || tail -30 "$log"
done
printf '%s\n' "${summary[@]}"
exit $failed
