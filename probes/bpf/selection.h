/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Structures shared between selection.bpf.c and its Rust mirror
 * (probes/src/selection.rs). Keep both in sync: same field order, all
 * fields naturally aligned, explicit padding, no bool.
 */
#ifndef __SELECTION_H
#define __SELECTION_H

/* `index` when no selection of the socket followed the plain hash rule. */
#define SELECTION_NO_INDEX 0xffffffffU

/* Key of `selection_stats`: one socket, as listener_events keys it (so
 * both join the same listener of the report). */
struct selection_key {
	__u32 netns; /* inode number of the socket's network namespace */
	__u32 pad;
	__u64 inode; /* socket inode (sock_i_ino), as sock_diag's idiag_inode */
};

/* Value of `selection_stats`, per CPU. Userspace takes the socket facts
 * from the CPU with the latest call (highest last_ns). */
struct selection_value {
	__u64 selections; /* reuseport_select_sock() returned this socket */
	__u64 by_hash;    /* ... and it was socks[reciprocal_scale(hash, num_socks)] */
	__u64 fallbacks;  /* it returned NULL with this socket as the argument */
	__u64 non_syn;    /* selections for a TCP segment other than a SYN (see
			   * selection.bpf.c), included in `selections` */
	__u64 last_ns;    /* bpf_ktime_get_ns() at the latest of these calls */
	__u32 reuseport_id; /* sock_reuseport.reuseport_id, if has_group */
	__u32 index;      /* reciprocal_scale(hash, num_socks) of the latest
			   * by-hash selection, or SELECTION_NO_INDEX */
	__u16 num_socks;  /* sock_reuseport.num_socks at the latest call */
	__u16 port;       /* local port (skc_num), host order */
	__u16 family;     /* AF_INET / AF_INET6 */
	__u8 protocol;    /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 has_group;   /* 1 when the argument's sk_reuseport_cb was set */
};

/* Key of `selection_hashes`: one (chosen socket, selection hash) pair. */
struct selection_hash_key {
	__u32 netns;
	__u32 hash; /* the `hash` argument: udp_ehashfn() / inet_ehashfn() */
	__u64 inode;
};

/* Value of the single-slot per-CPU `selection_totals` array. */
struct selection_totals {
	/* kretprobe returns without a matching entry on this CPU (an entry
	 * the kprobe missed, or a result outside the argument's group) */
	__u64 unmatched;
	/* entries dropped because the per-CPU stash was full (returns that
	 * the kretprobe missed) */
	__u64 overflow;
};

#endif /* __SELECTION_H */
