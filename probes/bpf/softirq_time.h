/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Structures shared between softirq_time.bpf.c and its Rust mirror
 * (probes/src/softirq_time.rs). Keep both in sync: same field order, all
 * fields naturally aligned, explicit padding, no bool.
 */
#ifndef __SOFTIRQ_TIME_H
#define __SOFTIRQ_TIME_H

/* Value of the per-CPU `softirq_stats` array (one slot, key 0). */
struct softirq_time_stats {
	__u64 net_rx_count; /* completed NET_RX softirq runs */
	__u64 net_rx_ns;    /* time spent in them, ns */
	__u64 net_tx_count; /* completed NET_TX softirq runs */
	__u64 net_tx_ns;    /* time spent in them, ns */
};

#endif /* __SOFTIRQ_TIME_H */
