/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Structures shared between rx.bpf.c and its Rust mirror (probes/src/rx.rs).
 * Keep both in sync: same field order, all fields naturally aligned,
 * explicit padding, no bool.
 */
#ifndef __RX_H
#define __RX_H

/* `queue` when the skb carries no recorded RX queue (queue_mapping == 0). */
#define RX_QUEUE_NOT_RECORDED 0xffffffffU
/* Log2 histogram buckets of ingress age in nanoseconds: bucket 0 holds
 * [0, 2) ns, bucket i in 1..30 holds [2^i, 2^(i+1)) ns, bucket 31 holds
 * everything from 2^31 ns (~2.1 s) up. */
#define RX_AGE_BUCKETS 32

/* Key of `queue_stats`: one RX queue of one device. */
struct rx_queue_key {
	__u32 netns;   /* inode of the device's network namespace */
	__u32 ifindex; /* skb->dev->ifindex */
	__u32 queue;   /* queue_mapping - 1, or RX_QUEUE_NOT_RECORDED */
	__u32 pad;
};

/* Value of `queue_stats`, per CPU. */
struct rx_queue_value {
	__u64 packets; /* wire packets: skb_shinfo(skb)->gso_segs, at least 1 */
	__u64 bytes;   /* skb->len at the tracepoint (L3 and up) */
};

/* Key of `watched`: a local (destination) port to follow. */
struct rx_watch_key {
	__u8 protocol; /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 pad;
	__u16 port; /* host order */
};

/* Key of `flows`. Addresses in network order; IPv4 uses the first 4 bytes. */
struct rx_flow_key {
	__u32 netns;
	__u16 family; /* AF_INET / AF_INET6 */
	__u8 protocol;
	__u8 pad;
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport; /* host order */
	__u16 dport; /* host order */
};

/* Value of `flows` (shared by all CPUs; counters are added atomically). */
struct rx_flow_value {
	__u64 packets;  /* sampled packets (gso_segs each) */
	__u64 bytes;    /* sampled bytes */
	__u64 last_ns;  /* bpf_ktime_get_ns() of the latest sampled packet */
	__u32 rx_cpu;   /* CPU of the latest sampled packet */
	__u32 rx_queue; /* its RX queue, or RX_QUEUE_NOT_RECORDED */
	__u32 ifindex;  /* its device */
	__u32 pad;
};

/* Value of `ingress`, keyed by the skb's address: where and when a sampled
 * packet to a watched port was received. */
struct rx_ingress {
	__u64 ts_ns; /* bpf_ktime_get_ns() at netif_receive_skb */
	__u32 rx_cpu;
	__u32 ifindex;
	__u32 rx_queue;
	__u32 netns;
	__u16 dport; /* host order; checked against the reading socket */
	__u8 protocol;
	__u8 pad;
	__u32 pad2;
};

/* Value of `socket_ages` (key: socket inode, __u64) and `queue_ages`
 * (key: struct rx_queue_key). Counters are added atomically. */
struct rx_age_hist {
	__u64 buckets[RX_AGE_BUCKETS];
	__u64 same_cpu;  /* read on the CPU that received the packet */
	__u64 other_cpu; /* read on another CPU */
};

/* Value of `udp_readers`, keyed by the struct sock address: the skb the
 * socket's next read will return (0: unknown). */
struct rx_udp_reader {
	__u64 next_skb;
};

/* Value of the single-slot `rx_config` array. */
struct rx_config {
	__u32 watch_count; /* entries in `watched`; 0 skips packet parsing */
	__u32 track_ages;  /* 1 once the read-side programs are attached */
};

#endif /* __RX_H */
