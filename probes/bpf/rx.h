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

/* `queue_slots`: a per-CPU direct-mapped cache in front of `queue_stats`,
 * which every packet on the host goes through. A key is counted in slot
 * rx_queue_slot_of(key) when that slot holds it or is still free, and in
 * the queue_stats hash otherwise; a slot is never reassigned, so each key
 * is counted in exactly one place per CPU. An ARRAY lookup is inlined by
 * the verifier (a few ns against ~40 ns for the hash lookup). */
#define RX_QUEUE_SLOTS 128

struct rx_queue_slot {
	struct rx_queue_key key; /* key.pad is 1 once the slot is claimed */
	struct rx_queue_value value;
};

/* `watched` is a bitmap of local (destination) ports to follow, one bit per
 * (protocol, port): 64-bit words, TCP ports in words [0, 1024), UDP ports
 * in [1024, 2048); port p is bit p % 64 of word base + p / 64. An ARRAY
 * lookup is inlined by the verifier, so the check costs a few loads. */
#define RX_WATCH_WORDS_PER_PROTO 1024
#define RX_WATCH_WORDS (2 * RX_WATCH_WORDS_PER_PROTO)

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
	__u32 rx_cpu;   /* CPU of the latest sampled packet */
	__u32 rx_queue; /* its RX queue, or RX_QUEUE_NOT_RECORDED */
	__u32 ifindex;  /* its device */
	__u32 hash;     /* its skb->hash when the driver stored one (sw_hash 0),
			 * else 0 (see rx_hw_hash in rx.bpf.c) */
};

/* Element of `ingress`, a direct-mapped ARRAY of stamps indexed by a hash
 * of the skb address (ingress_slot_of() in rx.bpf.c): where and when a
 * sampled packet to a watched port was received. A stamp is published by
 * writing `skb` last and consumed by compare-and-exchanging it back to 0; a
 * newer stamp in the same slot replaces an unread one (whose read then goes
 * untimed). A stamp whose packet was dropped unread stays until a newer
 * stamp takes its slot: if its (recycled) address comes back on an
 * unsampled packet to the same port before that, that packet's read is
 * aged from the old stamp. Clearing such stamps on every watched packet
 * costs a random access into this array per packet (~40-75 ns measured),
 * so it is not done; the LRU table this replaced had the same gap. */
struct rx_ingress {
	__u64 skb;   /* skb address; 0: free */
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

/* Value of the per-CPU `rx_scratch` array (one element per program). */
struct rx_scratch {
	__u64 addr;          /* a kernel address turned into a plain number */
	__u32 age_countdown; /* rx_receive_skb: packets left until the next stamp */
	__u32 pad;
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

/* `udp_reader_slots`: a shared direct-mapped cache in front of
 * `udp_readers`, indexed by a hash of the struct sock address. A socket
 * keeps its state in its slot when it holds the slot or claims it while
 * free (compare-and-exchange on `sk`), in the udp_readers hash otherwise;
 * slots are never reassigned. Only sockets of watched ports get here. */
#define RX_READER_SLOT_BITS 10
#define RX_READER_SLOTS (1 << RX_READER_SLOT_BITS)

struct rx_udp_reader_slot {
	__u64 sk; /* owner's struct sock address; 0: free */
	struct rx_udp_reader reader;
};

/* Per-entry RSS counts. `entry_devices` is an ARRAY of RX_ENTRY_DEVICES
 * slots the agent fills, slot ifindex % RX_ENTRY_DEVICES per device: a
 * packet received on a listed device with a driver-stored hash counts in
 * element base + (hash & mask) of the per-CPU ARRAY `entry_stats` (mask =
 * table size - 1: the low bits of the hash pick the entry on the drivers
 * the agent lists, see agent/src/sources/toeplitz.rs). Other devices pay
 * one inlined ARRAY lookup. */
#define RX_ENTRY_DEVICES 16
#define RX_ENTRY_STATS 4096

struct rx_entry_device {
	__u32 netns;   /* 0: free slot */
	__u32 ifindex;
	__u32 base;    /* first element of the device's block in entry_stats */
	__u32 mask;    /* table size - 1; base + mask < RX_ENTRY_STATS */
};

/* Value of the single-slot `rx_config` array. */
struct rx_config {
	__u32 watch_count; /* entries in `watched`; 0 skips packet parsing */
	__u32 track_ages;  /* 1 once the read-side programs are attached */
};

#endif /* __RX_H */
