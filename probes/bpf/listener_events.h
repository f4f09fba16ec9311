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

/* Value of `listener_stats`, per CPU. */
struct listener_value {
	__u64 events;       /* sk_data_ready calls on this CPU */
	__u64 last_ns;      /* bpf_ktime_get_ns() of the latest one */
	__u32 reuseport_id; /* sock_reuseport.reuseport_id, if has_group */
	__u32 index;        /* position in socks[], or LISTENER_NO_INDEX */
	__u16 num_socks;    /* sock_reuseport.num_socks, if has_group */
	__u16 port;         /* local port (skc_num), host order */
	__u16 family;       /* AF_INET / AF_INET6 */
	__u8 protocol;      /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 has_group;     /* 1 when sk_reuseport_cb was set */
};

/* Value of the single-slot `listener_config` array. */
struct listener_config {
	__u32 filter_ports; /* 1: only ports present in `watched_ports` */
};

#endif /* __LISTENER_EVENTS_H */
