// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * listener_events: per-socket sk_data_ready counts for TCP listeners and UDP
 * sockets, with the socket's SO_REUSEPORT group id, its index in the group
 * and the group size at the time of the event.
 *
 * Raw tracepoint sock:sk_data_ready, TP_PROTO(const struct sock *sk)
 * (include/trace/events/sock.h; commit 40e0b0908142 "net/sock: Introduce
 * trace_sk_data_ready()", Linux 6.3). It fires in sock_def_readable() and
 * the other ->sk_data_ready() implementations:
 * - TCP listener: tcp_child_process() wakes the parent once per child that
 *   completes the handshake, i.e. once per connection entering the accept
 *   queue.
 * - UDP: __udp_enqueue_schedule_skb() calls it once per datagram queued
 *   (6.18: once per skb moved from the per-NUMA producer queue into
 *   sk_receive_queue). Some earlier kernels (commit 612b1c0dec5b "udp: avoid
 *   calling sock_def_readable() if possible") called it only when the queue
 *   went from empty to non-empty. tests/listener_events_live.rs checks the
 *   per-datagram behaviour on the running kernel.
 *
 * sk->sk_reuseport_cb is RCU-protected; the tracepoint runs inside the
 * caller's RCU read section and the fields are read with
 * bpf_probe_read_kernel (CO-RE), so a concurrent group change yields a stale
 * or not-found index, never a fault.
 */
#include "skewscope_core.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "skewscope_net.h"
#include "skewscope_sock.h"
#include "listener_events.h"

/* Per socket and CPU. LRU so sockets that are gone age out by themselves. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct listener_key);
	__type(value, struct listener_value);
} listener_stats SEC(".maps");

/* Local ports to watch (host order); used only when filter_ports is 1. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, __u8);
} watched_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct listener_config);
} listener_config SEC(".maps");

static __always_inline int port_watched(__u16 port)
{
	struct listener_config *config;
	__u32 zero = 0;

	config = bpf_map_lookup_elem(&listener_config, &zero);
	if (!config || !config->filter_ports)
		return 1;
	return bpf_map_lookup_elem(&watched_ports, &port) != NULL;
}

/* Position of `sk` in reuse->socks[0..num_socks), bounded by
 * LISTENER_MAX_SCAN (include/net/sock_reuseport.h: live sockets occupy
 * the first num_socks slots; closed TCP listeners kept for migration sit at
 * the end and are not counted in num_socks). */
static __always_inline __u32 reuseport_index(const struct sock_reuseport *reuse,
					     const struct sock *sk, __u16 num_socks)
{
	void *socks = (void *)reuse + bpf_core_field_offset(struct sock_reuseport, socks);
	struct sock *member;
	__u32 i;

#pragma clang loop unroll(disable)
	for (i = 0; i < LISTENER_MAX_SCAN; i++) {
		if (i >= num_socks)
			break;
		if (bpf_probe_read_kernel(&member, sizeof(member),
					  socks + i * sizeof(struct sock *)))
			break;
		if (member == sk)
			return i;
	}
	return LISTENER_NO_INDEX;
}

static __always_inline int handle_data_ready(const struct sock *sk)
{
	struct listener_value *value, fresh = {};
	struct listener_key key = {};
	struct sock_reuseport *reuse;
	__u16 protocol, port;

	protocol = BPF_CORE_READ(sk, sk_protocol);
	if (protocol == IPPROTO_TCP) {
		if (BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_LISTEN)
			return 0;
	} else if (protocol != IPPROTO_UDP) {
		return 0;
	}
	port = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (!port_watched(port))
		return 0;
	key.inode = sock_inode(sk);
	if (!key.inode)
		return 0;
	key.netns = sock_netns(sk);

	value = bpf_map_lookup_elem(&listener_stats, &key);
	if (!value) {
		bpf_map_update_elem(&listener_stats, &key, &fresh, BPF_NOEXIST);
		value = bpf_map_lookup_elem(&listener_stats, &key);
		if (!value)
			return 0;
	}
	value->events++;
	value->last_ns = bpf_ktime_get_ns();
	value->port = port;
	value->protocol = protocol;
	value->family = BPF_CORE_READ(sk, __sk_common.skc_family);

	reuse = BPF_CORE_READ(sk, sk_reuseport_cb);
	if (reuse) {
		__u16 num_socks = BPF_CORE_READ(reuse, num_socks);

		value->has_group = 1;
		value->reuseport_id = BPF_CORE_READ(reuse, reuseport_id);
		value->num_socks = num_socks;
		value->index = reuseport_index(reuse, sk, num_socks);
	} else {
		value->has_group = 0;
		value->reuseport_id = 0;
		value->num_socks = 0;
		value->index = LISTENER_NO_INDEX;
	}
	return 0;
}

SEC("raw_tp/sk_data_ready")
int BPF_PROG(sk_data_ready, const struct sock *sk)
{
	return handle_data_ready(sk);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
