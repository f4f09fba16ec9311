# Exact selection (issue 11): the agent with each selection hook forced in turn (fexit,
# then kprobe + kretprobe) while a fresh lab receives the crafted UDP flows and TCP
# connections; checks/selection.py compares per-socket selections and their hashes with
# the lab's counts and the kernel's reciprocal_scale() rule. `--probe-budget off`: the
# counts are the point here, not the duty cycle.
for hook in fexit kprobe; do
    reuseport_lab serve "$ADDR" "$UDP_PORT" "$TCP_PORT" >/tmp/sel_lab.out 2>&1 &
    LAB=$!
    for _ in $(seq 50); do grep -q "lab ready" /tmp/sel_lab.out && break; sleep 0.2; done
    skewscope --log-level info snapshot --json --duration 8 --probe-budget off \
        --selection-hook "$hook" >/tmp/sel.json 2>/tmp/sel.err &
    AGENT=$!
    for _ in $(seq 300); do grep -q "window open" /tmp/sel.err && break; sleep 0.2; done
    say "GO udp"
    # TCP segments answered with a reset (Tcp OutRsts) while the window is open.
    section "selection_${hook}_snmp_before" cat /proc/net/snmp
    section "selection_${hook}_tcp_connect" reuseport_lab connect "$ADDR" "$TCP_PORT" "$TCP_CONNS"
    wait $AGENT
    section "selection_${hook}_snmp_after" cat /proc/net/snmp
    kill -TERM $LAB; wait $LAB
    section "selection_${hook}_lab" cat /tmp/sel_lab.out
    section "selection_${hook}_snapshot" cat /tmp/sel.json
    section "selection_${hook}_log" cat /tmp/sel.err
done

# The probe budget switches the hooks off and on (Hooks::detach/attach; for the kprobe
# pair, closing and reopening perf events of the kprobe PMU): attached half of every
# 1 s period, the kprobe path must count again after each detach.
printf '[probes]\nduty = 0.5\nselection_hook = "kprobe"\n' >/tmp/sel_duty.toml
reuseport_lab serve "$ADDR" "$UDP_PORT" "$TCP_PORT" >/tmp/sel_lab.out 2>&1 &
LAB=$!
for _ in $(seq 50); do grep -q "lab ready" /tmp/sel_lab.out && break; sleep 0.2; done
skewscope --log-level info run --output json --interval 1 --count 7 --config /tmp/sel_duty.toml \
    >/tmp/sel_duty.json 2>/tmp/sel_duty.err &
AGENT=$!
for _ in $(seq 300); do [ "$(wc -l </tmp/sel_duty.json)" -ge 1 ] && break; sleep 0.1; done
say "GO udp"
wait $AGENT
kill -TERM $LAB; wait $LAB
section selection_duty_lab cat /tmp/sel_lab.out
section selection_duty_run cat /tmp/sel_duty.json
section selection_duty_log cat /tmp/sel_duty.err
