# Ingress ages at every packet and the probes' fallbacks, judged by checks/ages.py against
# the lab's counts. Every packet is aged (--age-sample-every 1) and the probes stay attached
# (--probe-budget off), so each socket's aged reads must equal what it read. The test, not
# the agent, turns on the kernel's per-program run counts (kernel.bpf_stats_enabled); each
# agent logs its programs' runs and recursion misses over its window.
#
# Phase 1, three agents on the same traffic, each with its own maps:
#   klisten: per-listener events forced onto the kprobe on sock_def_readable;
#   auto:    what the agent picks on this kernel;
#   tp:      UDP reads forced onto the sock_recv_length/sk_data_ready pair (6.3+), the read
#            side before skb_consume_udp, for its runs per datagram.
# Phase 2, alone: kread, UDP reads and per-listener events both on their kprobes (what a
# kernel without trampolines gets). Alone because a kprobe program is skipped while
# another kprobe program runs on its CPU (trace_call_bpf()'s bpf_prog_active guard,
# kernel/trace/bpf_trace.c): kread's read kprobe would cost klisten events.
ages_phase() { # SECS LAB_OUT RUN:FLAGS...
    secs=$1 lab_out=$2; shift 2
    reuseport_lab serve "$ADDR" "$UDP_PORT" "$TCP_PORT" >"$lab_out" 2>&1 &
    AGES_LAB=$!
    for _ in $(seq 50); do grep -q "lab ready" "$lab_out" && break; sleep 0.2; done
    AGES_PIDS=""
    for spec in "$@"; do
        run=${spec%%:*}
        # shellcheck disable=SC2086
        skewscope --log-level info snapshot --json --duration "$secs" --probe-budget off \
            --age-sample-every 1 $(echo "${spec#*:}" | tr , ' ') \
            >"/tmp/ages_$run.json" 2>"/tmp/ages_$run.err" &
        AGES_PIDS="$AGES_PIDS $!"
    done
    # Traffic once every window is open (kprobe loads are the slowest under TCG).
    for spec in "$@"; do
        for _ in $(seq 400); do grep -q "window open" "/tmp/ages_${spec%%:*}.err" && break; sleep 0.2; done
    done
    say "GO udp"
    reuseport_lab connect "$ADDR" "$TCP_PORT" "$TCP_CONNS" >/dev/null
    # shellcheck disable=SC2086
    wait $AGES_PIDS
    kill -TERM $AGES_LAB; wait $AGES_LAB
}

echo 1 >/proc/sys/kernel/bpf_stats_enabled
# Windows of 25 s: the first agent's opens up to ~12 s before the last one's (TCG).
ages_phase 25 /tmp/ages_lab.out "klisten:--listener-hook,kprobe" "auto:" "tp:--rx-read-hook,tracepoints"
ages_phase 12 /tmp/ages_lab2.out "kread:--listener-hook,kprobe,--rx-read-hook,kprobe"
echo 0 >/proc/sys/kernel/bpf_stats_enabled
section ages_lab cat /tmp/ages_lab.out
section ages_lab2 cat /tmp/ages_lab2.out
for run in klisten auto tp kread; do
    section "ages_$run" cat "/tmp/ages_$run.json"
    section "ages_${run}_log" cat "/tmp/ages_$run.err"
done
