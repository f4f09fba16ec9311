/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Structures shared between drops.bpf.c and its Rust mirror
 * (probes/src/drops.rs). Keep both in sync: same field order, all fields
 * naturally aligned, explicit padding, no bool.
 */
#ifndef __DROPS_H
#define __DROPS_H

/* `reason` when the kernel passes none (kfree_skb before 5.17,
 * tcp_send_reset before 6.10). */
#define DROPS_NO_REASON 0xffffffffU

/* Key of `watched`: a (protocol, port) pair to count. */
struct drops_watch_key {
	__u8 protocol; /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 pad;
	__u16 port; /* host order */
};

/* Key of `drop_counts` (value: per-CPU __u64 count). */
struct drop_key {
	__u8 protocol;
	__u8 pad;
	__u16 port;   /* destination port of the dropped packet, host order */
	__u32 reason; /* enum skb_drop_reason, or DROPS_NO_REASON */
};

/* Key of `reset_counts` (value: per-CPU __u64 count). */
struct reset_key {
	__u16 port; /* local port the RST is sent from, host order */
	__u16 pad;
	__u32 reason; /* enum sk_rst_reason, or DROPS_NO_REASON */
};

#endif /* __DROPS_H */
