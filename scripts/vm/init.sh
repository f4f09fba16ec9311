#!/bin/busybox sh
# /init of the VM e2e guests. Brings up the igb NIC, runs the lab and the agent while the host
# sends crafted frames, and prints every result between @@ markers on the serial console.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t bpf bpf /sys/fs/bpf
mount -t tmpfs tmp /tmp
echo 1 >/proc/sys/kernel/printk
stty -onlcr 2>/dev/null

TAG=$(cat /etc/vm-tag)
ADDR=10.11.0.2
UDP_PORT=7000
TCP_PORT=7100
TCP_CONNS=200

say() { echo "@@ $*"; }
section() { name=$1; shift; echo "@@BEGIN $name"; "$@" 2>&1; echo "@@END $name"; }
dump_file() { echo "@@FILE $1"; cat "$1" 2>&1; echo "@@EOF"; }

for m in $(cat /modules/order); do
    insmod "/modules/$m" || say "insmod $m failed"
done
ip link set lo up
ip link set eth0 up && ip addr add "$ADDR/24" dev eth0
# Wait for the link (igb autonegotiation in QEMU).
for _ in 1 2 3 4 5 6 7 8 9 10; do
    [ "$(cat /sys/class/net/eth0/operstate 2>/dev/null)" = up ] && break
    sleep 1
done
say "kernel $(uname -r) tag $TAG link $(cat /sys/class/net/eth0/operstate)"

section ethtool_i ethtool -i eth0
section ethtool_l ethtool -l eth0
section ethtool_x_before ethtool -x eth0

reuseport_lab serve "$ADDR" "$UDP_PORT" "$TCP_PORT" >/tmp/lab.out 2>&1 &
LAB=$!
for _ in $(seq 50); do grep -q "lab ready" /tmp/lab.out && break; sleep 0.2; done

section doctor skewscope doctor --json

skewscope --log-level info snapshot --json --duration 8 >/tmp/snap.json 2>/tmp/snap.err &
AGENT=$!
for _ in $(seq 300); do grep -q "window open" /tmp/snap.err && break; sleep 0.2; done
ethtool -S eth0 >/tmp/ethtool_S.before
# The host sends the crafted UDP frames when it reads this line.
say "GO udp"
section tcp_connect reuseport_lab connect "$ADDR" "$TCP_PORT" "$TCP_CONNS"
wait $AGENT
say "agent exit $?"
ethtool -S eth0 >/tmp/ethtool_S.after
# One-shot, probes off: the groups exist but no events are measured.
skewscope snapshot --json >/tmp/snap_oneshot.json 2>/dev/null
kill -TERM $LAB; wait $LAB
section lab cat /tmp/lab.out
section snapshot cat /tmp/snap.json
section snapshot_log cat /tmp/snap.err
section snapshot_oneshot cat /tmp/snap_oneshot.json
section ethtool_S_before cat /tmp/ethtool_S.before
section ethtool_S_after cat /tmp/ethtool_S.after
section ethtool_x ethtool -x eth0

# The files the agent reads, for agent/testdata/vm-TAG: a fixture root with sysfs's own
# layout (class/net/eth0 and device/driver are symlinks into /sys/devices).
link() { echo "@@LINK $1 $(readlink "$1")"; }
NETDEV=$(readlink -f /sys/class/net/eth0)
PCIDEV=$(readlink -f /sys/class/net/eth0/device)
echo "@@BEGIN files"
link /sys/class/net/eth0
link "$NETDEV/device"
link "$PCIDEV/driver"
for f in /proc/interrupts /proc/softirqs /proc/net/softnet_stat /proc/stat \
    /proc/sys/net/core/netdev_budget /proc/sys/net/core/netdev_budget_usecs \
    /proc/sys/net/core/netdev_max_backlog /proc/sys/net/core/rps_sock_flow_entries \
    /proc/sys/net/ipv4/tcp_migrate_req /sys/devices/system/cpu/online \
    "$NETDEV/operstate" "$NETDEV/ifindex" "$NETDEV"/queues/*/rps_cpus "$NETDEV"/queues/*/xps_cpus \
    "$PCIDEV/numa_node" "$PCIDEV"/msi_irqs/*; do
    [ -f "$f" ] && dump_file "$f"
done
for d in "$PCIDEV"/msi_irqs/*; do
    irq=${d##*/}
    for f in smp_affinity smp_affinity_list effective_affinity effective_affinity_list; do
        [ -f "/proc/irq/$irq/$f" ] && dump_file "/proc/irq/$irq/$f"
    done
done
echo "@@END files"

# Drill of the RSS playbook ("synthetic hash-skew"): the test, not the agent, reweights the
# indirection table; the same crafted flows are sent again under the new table.
reuseport_lab serve "$ADDR" "$UDP_PORT" "$TCP_PORT" >/tmp/lab2.out 2>&1 &
LAB=$!
for _ in $(seq 50); do grep -q "lab ready" /tmp/lab2.out && break; sleep 0.2; done
section drill_ethtool_X ethtool -X eth0 weight 6 2 0 0
section drill_ethtool_x ethtool -x eth0
skewscope --log-level info snapshot --json --duration 8 >/tmp/drill.json 2>/tmp/drill.err &
AGENT=$!
for _ in $(seq 300); do grep -q "window open" /tmp/drill.err && break; sleep 0.2; done
ethtool -S eth0 >/tmp/drill_S.before
say "GO udp"
wait $AGENT
ethtool -S eth0 >/tmp/drill_S.after
kill -TERM $LAB; wait $LAB
section drill_snapshot cat /tmp/drill.json
section drill_snapshot_log cat /tmp/drill.err
section drill_ethtool_S_before cat /tmp/drill_S.before
section drill_ethtool_S_after cat /tmp/drill_S.after

# Drill: move one igb RX vector's affinity while the agent runs (the test writes it).
IRQ=$(sed -nE 's/^ *([0-9]+):.* eth0-rx-0$/\1/p' /proc/interrupts)
skewscope run --output json --interval 1 --count 6 >/tmp/affinity.json 2>/dev/null &
AGENT=$!
for _ in $(seq 300); do [ "$(wc -l </tmp/affinity.json)" -ge 2 ] && break; sleep 0.1; done
BEFORE=$(wc -l </tmp/affinity.json)
echo 2 >"/proc/irq/$IRQ/smp_affinity"
section affinity_moved echo "irq $IRQ cycles_before $BEFORE affinity $(cat /proc/irq/$IRQ/smp_affinity_list) effective $(cat /proc/irq/$IRQ/effective_affinity_list)"
wait $AGENT
section affinity_run cat /tmp/affinity.json

# Further checks, one file each (scripts/vm/checks/NAME.sh, judged by checks/NAME.py), in
# name order. Each starts and stops what it needs; the helpers above are theirs to use.
for check in /checks/*.sh; do
    [ -f "$check" ] || continue
    say "check ${check##*/}"
    . "$check"
done

say "done"
poweroff -f
