# Ground truth of the RSS shadow (docs/rss-shadow.md, issue 15), judged by rss_shadow.py.
# Three windows of the same "rss" flows (send_frames.RSS_FLOWS: 64 source addresses, uneven
# counts) with ethtool -S around each: under the table in force, then under the `balanced`
# table the agent predicted from the first window (applied here by rss_table: ethtool -X
# has no per-entry syntax), then under a `weight:` candidate applied with the ethtool -X
# command the agent printed. The test changes the table, never the agent; the table is
# restored at the end. The device's key is read from the kernel (kernel_bytes) for the
# hash check.
RSS_CFG=/tmp/rss_shadow.toml
printf '[model]\ntop_flows = 128\n' >"$RSS_CFG"

rss_window() {
    skewscope --log-level info snapshot --config "$RSS_CFG" --json --duration 6 >"/tmp/$1.json" 2>"/tmp/$1.err" &
    rss_agent=$!
    for _ in $(seq 300); do grep -q "window open" "/tmp/$1.err" && break; sleep 0.2; done
    ethtool -S eth0 >"/tmp/$1.S_before"
    say "GO rss"
    wait $rss_agent
    ethtool -S eth0 >"/tmp/$1.S_after"
    section "$1_x" ethtool -x eth0
    section "$1_snapshot" cat "/tmp/$1.json"
    section "$1_log" cat "/tmp/$1.err"
    section "$1_S_before" cat "/tmp/$1.S_before"
    section "$1_S_after" cat "/tmp/$1.S_after"
}

# The entries of `ethtool -x DEV` on one line.
rss_entries() { ethtool -x eth0 | awk '/^ *[0-9]+:/ { for (i = 2; i <= NF; i++) printf "%s ", $i }'; }
# Field $2 of the Nth policy of an rss-shadow JSON line: its table, or its command.
rss_policy_table() { tr -d '\n' <"$1" | awk -v n="$2" '{ split($0, p, "\"table\":\\["); split(p[n + 1], t, "]"); gsub(",", " ", t[1]); print t[1] }'; }
rss_policy_command() { tr -d '\n' <"$1" | awk -v n="$2" '{ split($0, p, "\"command\":"); split(p[n + 1], c, "\""); print c[2] }'; }

# igb's key: netdev_rss_key, which igb_setup_mrqc copies into RSSRK; ethtool reports none.
section rss_key kernel_bytes netdev_rss_key 40
RSS_RESTORE=$(rss_entries)
reuseport_lab serve "$ADDR" "$UDP_PORT" "$TCP_PORT" >/tmp/lab_rss.out 2>&1 &
RSS_LAB=$!
for _ in $(seq 50); do grep -q "lab ready" /tmp/lab_rss.out && break; sleep 0.2; done

rss_window rss_measure
skewscope rss-shadow --from /tmp/rss_measure.json --device eth0 --candidate balanced \
    --candidate weight:1,2,3,2 --json >/tmp/rss_prediction.json 2>&1
section rss_prediction cat /tmp/rss_prediction.json

# Policies: 1 current, 2 balanced, 3 weight:1,2,3,2.
section rss_apply_balanced rss_table eth0 $(rss_policy_table /tmp/rss_prediction.json 2)
rss_window rss_balanced
RSS_WEIGHT_CMD=$(rss_policy_command /tmp/rss_prediction.json 3)
section rss_apply_weight sh -c "echo \"$RSS_WEIGHT_CMD\"; $RSS_WEIGHT_CMD"
rss_window rss_weight

kill -TERM $RSS_LAB; wait $RSS_LAB
section rss_restore rss_table eth0 $RSS_RESTORE
