// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * listener_events: per-socket sk_data_ready counts for TCP listeners and UDP
 * sockets, with the socket's SO_REUSEPORT group id, its index in the group
 * and the group size at the time of the event.
 *
 * BTF-enabled raw tracepoint (tp_btf; Linux 5.5, commit 9e15db66136a "bpf:
 * Implement accurate raw_tp context access via BTF") on sock:sk_data_ready,
 * TP_PROTO(const struct sock *sk) (include/trace/events/sock.h; commit
 * 40e0b0908142 "net/sock: Introduce trace_sk_data_ready()", Linux 6.3). The
 * socket is BTF-typed, so its fields are plain loads (skewscope_sock.h). It
 * fires in sock_def_readable() and the other ->sk_data_ready()
 * implementations:
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
 * Before 6.3 the tracepoint does not exist; the fallback program is an
 * fentry (BPF trampoline, Linux 5.5, commit fec56f5890d9 "bpf: Introduce BPF
 * trampoline") on sock_def_readable(), the function the tracepoint sits in
 * and the ->sk_data_ready() that sock_init_data() gives TCP listeners and
 * UDP sockets: the same calls with the same BTF-typed socket, so the same
 * handler. It misses sockets whose sk_data_ready was replaced (sockmap,
 * kTLS), which the tracepoint in the other implementations would see.
 *
 * Where fentry is refused too, a kprobe on sock_def_readable() sees the
 * same calls. It matters where the kernel has BTF but no BPF trampoline:
 * arm64 before 6.0 (arch/arm64/net/bpf_jit_comp.c got
 * arch_prepare_bpf_trampoline() in commit efc9909fdce0 "bpf, arm64: Add bpf
 * trampoline for arm64" and bpf_arch_text_poke() in b2ad54e1533e, both 6.0;
 * before them the weak defaults in kernel/bpf/trampoline.c and
 * kernel/bpf/core.c return -ENOTSUPP, so fentry attach fails): 5.10 and
 * 5.15 distribution kernels on arm64 servers have BTF and kprobes, not
 * trampolines.
 * A kprobe gets the socket as a plain integer, so the handler reads it
 * with CO-RE bpf_probe_read_kernel() there instead of typed loads (KREAD,
 * skewscope_sock.h): the same logic, a few helper calls dearer per event.
 * The loader picks the program by what the kernel accepts, tp_btf, then
 * fentry, then kprobe (ListenerHook in src/listener_events.rs); a test or
 * the configuration can force one.
 *
 * It fires once per UDP datagram on the receiving softirq's CPU, so the
 * per-event work is kept to loads, three inlined ARRAY lookups (filter and
 * the per-CPU slot cache, see listener_events.h) and bpf_jiffies64(). The socket's index in its group
 * changes only with membership: the index found last on this CPU is kept,
 * checked with one read of socks[index] once per jiffy (and whenever the
 * group size changes), and the group is scanned again only when that slot
 * no longer holds the socket.
 *
 * sk->sk_reuseport_cb is RCU-protected; the tracepoint runs inside the
 * caller's RCU read section and socks[] (a flexible array, outside the
 * typed struct) is read with bpf_probe_read_kernel, so a concurrent group
 * change yields a stale or not-found index, never a fault.
 */
#include "skewscope_core.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "skewscope_net.h"
#include "skewscope_sock.h"
#include "listener_events.h"

/* Per socket and CPU, for sockets whose slot is taken. LRU so sockets that
 * are gone age out by themselves. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct listener_key);
	__type(value, struct listener_value);
} listener_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LISTENER_SLOTS);
	__type(key, __u32);
	__type(value, struct listener_slot);
} listener_slots SEC(".maps");

/* Bitmap of local ports to watch (see listener_events.h); used only when
 * filter_ports is 1. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LISTENER_WATCH_WORDS);
	__type(key, __u32);
	__type(value, __u64);
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
	__u32 zero = 0, word = port / 64;
	__u64 *bits;

	config = bpf_map_lookup_elem(&listener_config, &zero);
	if (!config || !config->filter_ports)
		return 1;
	bits = bpf_map_lookup_elem(&watched_ports, &word);
	return bits && (*bits >> (port % 64)) & 1;
}

/* `value`, with its value hidden from the verifier: a copy through
 * bpf_probe_read_kernel() reads as any u32. The scan below returns one of
 * 257 constants; in the kprobe program (scalar socket pointers) the verifier
 * otherwise follows the rest of the handler once per constant and gives up
 * ("BPF program is too large", 1M instructions, on 6.18). */
static __always_inline __u32 opaque_u32(__u32 value)
{
	__u32 copy = LISTENER_NO_INDEX;

	bpf_probe_read_kernel(&copy, sizeof(copy), &value);
	return copy;
}

/* Position of `sk` in reuse->socks[0..num_socks), bounded by
 * LISTENER_MAX_SCAN (include/net/sock_reuseport.h: live sockets occupy
 * the first num_socks slots; closed TCP listeners kept for migration sit at
 * the end and are not counted in num_socks). */
static __always_inline __u32 reuseport_index(const struct sock_reuseport *reuse,
					     const struct sock *sk, __u16 num_socks)
{
	__u32 i;

#pragma clang loop unroll(disable)
	for (i = 0; i < LISTENER_MAX_SCAN; i++) {
		if (i >= num_socks)
			break;
		if (reuseport_slot(reuse, i) == sk)
			return i;
	}
	return LISTENER_NO_INDEX;
}

/* This CPU's counters of `key`: its listener_slots slot when the slot holds
 * the key or is free (then claimed), else its listener_stats element
 * (created if missing). NULL only when the hash is full and refuses. */
static __always_inline struct listener_value *value_of(const struct listener_key *key)
{
	struct listener_value *value, fresh = {};
	struct listener_slot *slot;
	__u32 index = (key->inode * 0x9E3779B97F4A7C15ULL ^ key->netns) % LISTENER_SLOTS;

	slot = bpf_map_lookup_elem(&listener_slots, &index);
	if (slot) {
		if (!slot->key.pad) {
			slot->key = *key;
			slot->key.pad = 1;
		}
		if (slot->key.inode == key->inode && slot->key.netns == key->netns)
			return &slot->value;
	}
	value = bpf_map_lookup_elem(&listener_stats, key);
	if (value)
		return value;
	bpf_map_update_elem(&listener_stats, key, &fresh, BPF_NOEXIST);
	return bpf_map_lookup_elem(&listener_stats, key);
}

/* One sk_data_ready call on `sk`; `typed`: see KREAD. */
static __always_inline int handle_data_ready(const struct sock *sk, const int typed)
{
	struct listener_value *value;
	struct listener_key key = {};
	struct sock_reuseport *reuse;
	__u32 reuseport_id = 0, index = LISTENER_NO_INDEX;
	__u16 protocol, port, num_socks = 0;
	__u64 now_jiffies;
	__u8 has_group = 0;

	protocol = KREAD(typed, sk, sk_protocol);
	if (protocol == IPPROTO_TCP) {
		if (KREAD(typed, sk, __sk_common.skc_state) != TCP_LISTEN)
			return 0;
	} else if (protocol != IPPROTO_UDP) {
		return 0;
	}
	port = KREAD(typed, sk, __sk_common.skc_num);
	if (!port_watched(port))
		return 0;
	key.inode = sock_inode_of(sk, typed);
	if (!key.inode)
		return 0;
	key.netns = sock_netns_of(sk, typed);

	value = value_of(&key);
	if (!value)
		return 0;

	now_jiffies = bpf_jiffies64();
	reuse = KREAD(typed, sk, sk_reuseport_cb);
	if (reuse) {
		has_group = 1;
		reuseport_id = KREAD(typed, reuse, reuseport_id);
		num_socks = KREAD(typed, reuse, num_socks);
		/* A new element, or one that another CPU created, reads all
		 * zeroes here: value->events == 0 forces the scan. Otherwise
		 * the index is checked at the first event of each jiffy on
		 * this CPU, or at once when the group shrank below it: a
		 * membership change that keeps the group size (one leaves,
		 * one joins: reuseport_detach_sock() moves the last socket
		 * into the hole) is seen within a jiffy. */
		index = value->index;
		if (!value->events || !value->has_group) {
			index = reuseport_index(reuse, sk, num_socks);
			if (!typed)
				index = opaque_u32(index);
		} else if (value->last_jiffies != now_jiffies ||
			   (index != LISTENER_NO_INDEX && index >= num_socks)) {
			if (index >= num_socks || reuseport_slot(reuse, index) != sk) {
				index = reuseport_index(reuse, sk, num_socks);
				if (!typed)
					index = opaque_u32(index);
			}
		}
	}
	if (!value->events || value->has_group != has_group ||
	    value->reuseport_id != reuseport_id || value->index != index ||
	    value->num_socks != num_socks) {
		value->facts_ns = bpf_ktime_get_ns();
		value->has_group = has_group;
		value->reuseport_id = reuseport_id;
		value->index = index;
		value->num_socks = num_socks;
		value->port = port;
		value->protocol = protocol;
		value->family = KREAD(typed, sk, __sk_common.skc_family);
	}
	value->events++;
	value->last_jiffies = now_jiffies;
	return 0;
}

SEC("tp_btf/sk_data_ready")
int BPF_PROG(sk_data_ready, const struct sock *sk)
{
	return handle_data_ready(sk, 1);
}

/* The same events before 6.3 (see the header comment). */
SEC("fentry/sock_def_readable")
int BPF_PROG(sk_data_ready_fentry, struct sock *sk)
{
	return handle_data_ready(sk, 1);
}

/* The same calls where fentry is refused (see the header comment). */
SEC("kprobe/sock_def_readable")
int BPF_KPROBE(sk_data_ready_kprobe, struct sock *sk)
{
	return handle_data_ready(sk, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
