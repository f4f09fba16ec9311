# Ingress ages at every packet and the probes' fallbacks, judged by checks/ages.py against
# the lab's counts. Three agents watch the same traffic at once, each with its own maps:
#   kprobe: per-listener events and UDP read ages forced onto their kprobes
#           (--listener-hook kprobe --rx-read-hook kprobe);
#   auto:   what the agent picks on this kernel;
#   tp:     UDP read ages forced onto the sock_recv_length/sk_data_ready pair (6.3+),
#           the read side before skb_consume_udp, for its runs per datagram.
# Every packet is aged (--age-sample-every 1) and the probes stay attached
# (--probe-budget off), so each socket's aged reads must equal what it read.
reuseport_lab serve "$ADDR" "$UDP_PORT" "$TCP_PORT" >/tmp/ages_lab.out 2>&1 &
AGES_LAB=$!
for _ in $(seq 50); do grep -q "lab ready" /tmp/ages_lab.out && break; sleep 0.2; done
# The test, not the agent, turns on the kernel's per-program run counts; each agent logs
# its programs' runs over its window (runs per datagram read). Off again below.
echo 1 >/proc/sys/kernel/bpf_stats_enabled
AGES_PIDS=""
for run in kprobe auto tp; do
    case $run in
        kprobe) hooks="--listener-hook kprobe --rx-read-hook kprobe" ;;
        auto) hooks="" ;;
        tp) hooks="--rx-read-hook tracepoints" ;;
    esac
    # shellcheck disable=SC2086
    skewscope --log-level info snapshot --json --duration 12 --probe-budget off \
        --age-sample-every 1 $hooks >"/tmp/ages_$run.json" 2>"/tmp/ages_$run.err" &
    AGES_PIDS="$AGES_PIDS $!"
done
for run in kprobe auto tp; do
    for _ in $(seq 300); do grep -q "window open" "/tmp/ages_$run.err" && break; sleep 0.2; done
done
say "GO udp"
section ages_tcp_connect reuseport_lab connect "$ADDR" "$TCP_PORT" "$TCP_CONNS"
# shellcheck disable=SC2086
wait $AGES_PIDS
echo 0 >/proc/sys/kernel/bpf_stats_enabled
kill -TERM $AGES_LAB; wait $AGES_LAB
section ages_lab cat /tmp/ages_lab.out
for run in kprobe auto tp; do
    section "ages_$run" cat "/tmp/ages_$run.json"
    section "ages_${run}_log" cat "/tmp/ages_$run.err"
done
