// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * drops: packet drops with their reason, and TCP resets sent, for watched
 * (protocol, port) pairs. An empty watch set counts nothing: drops of
 * arbitrary ports would make the maps as large as the port space.
 *
 * Raw tracepoints (prototypes as in the 6.18 BTF):
 * - skb:kfree_skb, TP_PROTO(struct sk_buff *skb, void *location,
 *   enum skb_drop_reason reason, struct sock *rx_sk). `reason` since 5.17,
 *   `rx_sk` since 6.13 (unused here). Since 5.17 freeing without a drop
 *   goes through consume_skb (skb:consume_skb), so every event is a drop.
 * - tcp:tcp_send_reset, TP_PROTO(const struct sock *sk,
 *   const struct sk_buff *skb, const enum sk_rst_reason reason). Before
 *   Linux 6.10 (commit 19822a980e19 "trace: tcp: fully support
 *   trace_tcp_send_reset") it only fired with a socket, so RSTs answering
 *   packets to closed ports (sk == NULL) were not traced, and it had no
 *   `reason`.
 *
 * Arguments a kernel may lack are read only when the matching enum exists in
 * its BTF (bpf_core_type_exists): the branch is then dead code for the
 * verifier and the program still attaches (a raw_tp program must not read
 * past the tracepoint's arguments, kernel/bpf/syscall.c
 * bpf_raw_tp_link_attach max_ctx_offset check).
 */
#include "skewscope_core.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "skewscope_net.h"
#include "skewscope_parse.h"
#include "drops.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct drops_watch_key);
	__type(value, __u8);
} watched SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct drop_key);
	__type(value, __u64);
} drop_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct reset_key);
	__type(value, __u64);
} reset_counts SEC(".maps");

static __always_inline int is_watched(__u8 protocol, __u16 port)
{
	struct drops_watch_key key = { .protocol = protocol, .port = port };

	return bpf_map_lookup_elem(&watched, &key) != NULL;
}

static __always_inline void count(void *map, const void *key)
{
	__u64 *value, one = 1;

	value = bpf_map_lookup_elem(map, key);
	if (value)
		*value += 1;
	else
		bpf_map_update_elem(map, key, &one, BPF_NOEXIST);
}

/* The packet's L3 header is at head + network_header wherever it is
 * dropped after the stack looked at it (__netif_receive_skb_core resets it
 * on receive, the IP output path sets it on transmit); tail bounds the
 * linear bytes. */
static __always_inline int handle_kfree_skb(const struct sk_buff *skb, __u32 reason)
{
	struct skewscope_tuple tuple = {};
	struct drop_key key = {};
	unsigned char *head;
	__u16 network;
	__u32 tail;

	head = BPF_CORE_READ(skb, head);
	network = BPF_CORE_READ(skb, network_header);
	tail = BPF_CORE_READ(skb, tail);
	if (tail <= network)
		return 0;
	if (parse_ip_tuple(head + network, tail - network, BPF_CORE_READ(skb, protocol), &tuple))
		return 0;
	if (!is_watched(tuple.protocol, tuple.dport))
		return 0;
	key.protocol = tuple.protocol;
	key.port = tuple.dport;
	key.reason = reason;
	count(&drop_counts, &key);
	return 0;
}

/* Local port of a reset: the socket's when there is one (full, request or
 * timewait sock: all start with sock_common), else the destination port of
 * the packet being answered (its TCP header at head + transport_header,
 * set by ip_rcv_core/ipv6_rcv before TCP sees it). */
static __always_inline int handle_send_reset(const struct sock *sk, const struct sk_buff *skb,
					     __u32 reason)
{
	struct reset_key key = {};
	__u16 port = 0;

	if (sk) {
		port = BPF_CORE_READ(sk, __sk_common.skc_num);
	} else if (skb) {
		struct skewscope_ports ports;
		unsigned char *head = BPF_CORE_READ(skb, head);
		__u16 transport = BPF_CORE_READ(skb, transport_header);

		if (transport == (__u16)~0U ||
		    bpf_probe_read_kernel(&ports, sizeof(ports), head + transport))
			return 0;
		port = skewscope_ntohs(ports.dest);
	}
	if (!port || !is_watched(IPPROTO_TCP, port))
		return 0;
	key.port = port;
	key.reason = reason;
	count(&reset_counts, &key);
	return 0;
}

SEC("raw_tp/kfree_skb")
int BPF_PROG(drops_kfree_skb, struct sk_buff *skb, void *location)
{
	__u32 reason = DROPS_NO_REASON;

	if (bpf_core_type_exists(enum skb_drop_reason))
		reason = (__u32)ctx[2];
	return handle_kfree_skb(skb, reason);
}

SEC("raw_tp/tcp_send_reset")
int BPF_PROG(drops_tcp_reset, const struct sock *sk, const struct sk_buff *skb)
{
	__u32 reason = DROPS_NO_REASON;

	if (bpf_core_type_exists(enum sk_rst_reason))
		reason = (__u32)ctx[2];
	return handle_send_reset(sk, skb, reason);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
