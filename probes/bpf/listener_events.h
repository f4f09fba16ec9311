/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Structures shared between listener_events.bpf.c and its Rust mirror
 * (probes/src/listener_events.rs). Keep both in sync: same field order, all
 * fields naturally aligned, explicit padding, no bool.
 */
#ifndef __LISTENER_EVENTS_H
#define __LISTENER_EVENTS_H

/* sock_reuseport.socks[] slots scanned for the socket's own index. */
#define LISTENER_MAX_SCAN 256
/* `index` when the socket is not in socks[0..min(num_socks, 256)). */
#define LISTENER_NO_INDEX 0xffffffffU

/* Key of `listener_stats`: one socket. */
struct listener_key {
	__u32 netns; /* inode number of the socket's network namespace */
	__u32 pad;
	__u64 inode; /* socket inode (sock_i_ino), as sock_diag's idiag_inode */
};

/* `watched_ports` is a bitmap of local ports: 1024 64-bit words, port p is
 * bit p % 64 of word p / 64. */
#define LISTENER_WATCH_WORDS 1024

/* Value of `listener_stats`, per CPU. Userspace takes the socket facts from
 * the CPU with the latest event: the highest last_jiffies, ties broken by
 * the highest facts_ns. */
struct listener_value {
	__u64 events;       /* sk_data_ready calls on this CPU */
	__u64 last_jiffies; /* bpf_jiffies64() at the latest one (cheap) */
	__u64 facts_ns;     /* bpf_ktime_get_ns() when this CPU last saw the
			     * facts below change (or its first event) */
	__u32 reuseport_id; /* sock_reuseport.reuseport_id, if has_group */
	__u32 index;        /* position in socks[], or LISTENER_NO_INDEX */
	__u16 num_socks;    /* sock_reuseport.num_socks, if has_group */
	__u16 port;         /* local port (skc_num), host order */
	__u16 family;       /* AF_INET / AF_INET6 */
	__u8 protocol;      /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 has_group;     /* 1 when sk_reuseport_cb was set */
};

/* `listener_slots`: a per-CPU direct-mapped cache in front of
 * `listener_stats`, indexed by a hash of the key. A socket is counted in
 * its slot when the slot holds its key or is still free, in the hash
 * otherwise; slots are never reassigned, so each (socket, CPU) is counted
 * in one place. An ARRAY lookup is inlined by the verifier (a few ns
 * against ~40 ns for the hash). */
#define LISTENER_SLOTS 256

struct listener_slot {
	struct listener_key key; /* key.pad is 1 once the slot is claimed */
	struct listener_value value;
};

/* Value of the single-slot `listener_config` array. */
struct listener_config {
	__u32 filter_ports; /* 1: only ports present in `watched_ports` */
};

#endif /* __LISTENER_EVENTS_H */
