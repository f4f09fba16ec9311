// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * selection: exact SO_REUSEPORT selections. Per chosen socket, how often
 * reuseport_select_sock() (net/core/sock_reuseport.c) picked it, and per
 * (socket, hash) pair how often, with the hash it picked by:
 *
 *   struct sock *reuseport_select_sock(struct sock *sk, u32 hash,
 *                                      struct sk_buff *skb, int hdr_len);
 *
 * Callers (5.10, 6.1, 6.12 alike): the UDP lookup, udp4_lib_lookup2() /
 * udp6_lib_lookup2() through lookup_reuseport() (net/ipv4/udp.c; 6.5+
 * inet_lookup_reuseport(), net/ipv4/inet_hashtables.c), with hash =
 * udp_ehashfn(), once per datagram to a group; and the TCP listener lookup,
 * inet_lhash2_lookup() through lookup_reuseport()/inet_lookup_reuseport(),
 * with hash = inet_ehashfn(), once per segment that reaches the listener
 * hash: a SYN (the handshake's ACK and later segments find the request or
 * established socket in ehash first, __inet_lookup()).
 *
 * Without an attached BPF selector it returns socks[reciprocal_scale(hash,
 * num_socks)], skipping connected (TCP_ESTABLISHED) UDP sockets (5.10:
 * inline in reuseport_select_sock(); 5.14+: reuseport_select_sock_by_hash(),
 * which 6.1+ also steers by SO_INCOMING_CPU). `by_hash` counts the
 * selections that were exactly that slot, so the plain rule can be checked.
 *
 * A TCP segment other than a SYN reaches the listener lookup only when
 * ehash had no socket for it: a lookup racing with inet_ehash_insert()
 * swapping a request socket for its child (delete, then add; fixed upstream
 * in late 2025 by "inet: Avoid ehash lookup race in inet_ehash_insert()"),
 * or a segment for a connection that is gone. The listener then answers
 * with a reset. Such selections are counted in `non_syn` too, from the TCP
 * flags at skb->head + transport_header (set by ip_rcv_core() /
 * ipv6_rcv() before any lookup, so right for netfilter's socket lookups as
 * well as tcp_v4_rcv()'s).
 *
 * NULL means no choice (no sk_reuseport_cb yet, num_socks == 0, or every
 * socket connected); the caller then keeps the socket it was scoring
 * (udp4_lib_lookup2(): `result = result ? : sk`; inet_lhash2_lookup():
 * `result = sk`). That is not a selection: it is counted as a `fallback`
 * of the argument socket, and the delivery shows in listener_events.
 * 5.10..6.x UDP also discards a selection when the group has connected
 * sockets (reuseport_has_conns()) and keeps scoring: there a selection is
 * the kernel's choice, not necessarily the receiver.
 *
 * Two hooks, the same counting (the loader picks by what the kernel takes,
 * src/selection.rs):
 * - fexit (BPF trampoline, 5.5+): arguments and return value in one
 *   program, BTF-typed, so socket fields are plain loads.
 * - kprobe + kretprobe: the entry stashes (sk, hash, skb) on a small per-CPU
 *   stack (the function does not sleep; a call in process context can be
 *   interrupted by a softirq's, which returns first); the return pops it and
 *   reads the chosen socket with CO-RE reads, checking that it belongs to
 *   the argument's group.
 * Observe-only: tracing programs read, the selection is never changed.
 *
 * Cost: once per UDP datagram / TCP SYN to a reuseport group. Per call: a
 * few loads, one bpf_probe_read_kernel() of socks[index] (and, for TCP, of
 * the flags byte), one per-CPU hash update and one LRU hash update with an
 * atomic add.
 */
#include "skewscope_core.h"
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "skewscope_net.h"
#include "skewscope_sock.h"
#include "selection.h"

/* Nested calls on one CPU: a process-context lookup (e.g. udp_diag's
 * __udp4_lib_lookup() with skb == NULL) interrupted by a softirq's. */
#define SELECTION_STASH_DEPTH 4

/* Per socket and CPU. LRU so sockets that are gone age out by themselves. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct selection_key);
	__type(value, struct selection_value);
} selection_stats SEC(".maps");

/* Per (chosen socket, hash): shared, counted with an atomic add (one flow's
 * packets mostly arrive on one CPU). LRU: pairs not seen for a while give
 * way to new ones; the per-socket totals above do not depend on it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct selection_hash_key);
	__type(value, __u64);
} selection_hashes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct selection_totals);
} selection_totals SEC(".maps");

struct selection_call {
	__u64 sk;
	__u64 skb;
	__u32 hash;
	__u32 pad;
};

struct selection_stash {
	__u32 depth;
	__u32 pad;
	struct selection_call calls[SELECTION_STASH_DEPTH];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct selection_stash);
} selection_stash SEC(".maps");

/* One call's facts, filled from typed (fexit) or CO-RE (kretprobe) reads. */
struct call_facts {
	struct selection_key key;
	__u32 reuseport_id;
	__u32 index;
	__u16 num_socks;
	__u16 port;
	__u16 family;
	__u8 protocol;
	__u8 has_group;
	__u8 by_hash;
	__u8 non_syn;
};

/* TCP flags byte (struct tcphdr byte 13: CWR ECE URG ACK PSH RST SYN FIN). */
#define TCP_FLAGS_OFFSET 13
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10

/* Whether a TCP segment whose transport header starts at `th` is anything but
 * a connection request (SYN without ACK). 0 when it cannot be read. */
static __always_inline __u8 tcp_not_syn(const void *th)
{
	__u8 flags = 0;

	if (!th || bpf_probe_read_kernel(&flags, sizeof(flags), th + TCP_FLAGS_OFFSET))
		return 0;
	return (flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN;
}

/* include/linux/kernel.h reciprocal_scale(): the slot the hash picks. */
static __always_inline __u32 reciprocal_scale(__u32 val, __u32 ep_ro)
{
	return (__u32)(((__u64)val * ep_ro) >> 32);
}

static __always_inline struct selection_value *stats_of(const struct selection_key *key)
{
	struct selection_value *value, fresh = {};

	value = bpf_map_lookup_elem(&selection_stats, key);
	if (value)
		return value;
	bpf_map_update_elem(&selection_stats, key, &fresh, BPF_NOEXIST);
	return bpf_map_lookup_elem(&selection_stats, key);
}

static __always_inline void count_hash(const struct call_facts *f, __u32 hash)
{
	struct selection_hash_key key = {
		.netns = f->key.netns,
		.hash = hash,
		.inode = f->key.inode,
	};
	__u64 one = 1, *count;

	count = bpf_map_lookup_elem(&selection_hashes, &key);
	if (count) {
		__sync_fetch_and_add(count, 1);
		return;
	}
	/* Another CPU may create it between the lookup and here (EEXIST):
	 * then add to its element. */
	if (bpf_map_update_elem(&selection_hashes, &key, &one, BPF_NOEXIST)) {
		count = bpf_map_lookup_elem(&selection_hashes, &key);
		if (count)
			__sync_fetch_and_add(count, 1);
	}
}

/* `chosen` NULL-ness decides: a selection of f's socket, or a fallback of it. */
static __always_inline void record(const struct call_facts *f, __u32 hash, int selected)
{
	struct selection_value *value;

	if (!f->key.inode)
		return;
	value = stats_of(&f->key);
	if (!value)
		return;
	if (selected) {
		value->selections++;
		if (f->non_syn)
			value->non_syn++;
		if (f->by_hash) {
			value->by_hash++;
			value->index = f->index;
		} else if (!value->by_hash) {
			value->index = SELECTION_NO_INDEX;
		}
	} else {
		value->fallbacks++;
		if (!value->by_hash)
			value->index = SELECTION_NO_INDEX;
	}
	value->last_ns = bpf_ktime_get_ns();
	value->reuseport_id = f->reuseport_id;
	value->num_socks = f->num_socks;
	value->port = f->port;
	value->family = f->family;
	value->protocol = f->protocol;
	value->has_group = f->has_group;
	if (selected)
		count_hash(f, hash);
}

/* The group facts of `reuse` (the argument's group) and whether `chosen`
 * is the slot the plain hash rule picks. */
static __always_inline void group_facts(struct call_facts *f, const struct sock_reuseport *reuse,
					__u16 num_socks, __u32 reuseport_id, __u32 hash,
					const struct sock *chosen)
{
	f->has_group = 1;
	f->reuseport_id = reuseport_id;
	f->num_socks = num_socks;
	f->index = SELECTION_NO_INDEX;
	if (chosen && num_socks) {
		__u32 index = reciprocal_scale(hash, num_socks);

		if (reuseport_slot(reuse, index) == chosen) {
			f->index = index;
			f->by_hash = 1;
		}
	}
}

/* fexit: BTF-typed pointers, plain loads. */
static __always_inline int on_fexit(const struct sock *sk, __u32 hash, const struct sk_buff *skb,
				    const struct sock *chosen)
{
	const struct sock *subject = chosen ? chosen : sk;
	struct sock_reuseport *reuse;
	struct call_facts f = {};

	f.key.inode = sock_inode_btf(subject);
	if (!f.key.inode)
		return 0;
	f.key.netns = sock_netns_btf(subject);
	f.port = subject->__sk_common.skc_num;
	f.family = subject->__sk_common.skc_family;
	f.protocol = subject->sk_protocol;
	if (chosen && skb && f.protocol == IPPROTO_TCP)
		f.non_syn = tcp_not_syn(skb->head + skb->transport_header);
	reuse = sk->sk_reuseport_cb;
	if (reuse)
		group_facts(&f, reuse, reuse->num_socks, reuse->reuseport_id, hash, chosen);
	record(&f, hash, chosen != NULL);
	return 0;
}

SEC("fexit/reuseport_select_sock")
int BPF_PROG(select_fexit, struct sock *sk, u32 hash, struct sk_buff *skb, int hdr_len,
	     struct sock *chosen)
{
	return on_fexit(sk, hash, skb, chosen);
}

static __always_inline struct selection_totals *totals(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&selection_totals, &zero);
}

SEC("kprobe/reuseport_select_sock")
int BPF_KPROBE(select_entry, struct sock *sk, __u32 hash, struct sk_buff *skb)
{
	struct selection_stash *stash;
	struct selection_totals *t;
	__u32 zero = 0, depth;

	stash = bpf_map_lookup_elem(&selection_stash, &zero);
	if (!stash)
		return 0;
	depth = stash->depth;
	if (depth >= SELECTION_STASH_DEPTH) {
		/* Only returns the kretprobe missed leave entries behind:
		 * drop them. */
		t = totals();
		if (t)
			t->overflow += depth;
		depth = 0;
	}
	stash->calls[depth & (SELECTION_STASH_DEPTH - 1)].sk = (__u64)sk;
	stash->calls[depth & (SELECTION_STASH_DEPTH - 1)].skb = (__u64)skb;
	stash->calls[depth & (SELECTION_STASH_DEPTH - 1)].hash = hash;
	stash->depth = depth + 1;
	return 0;
}

SEC("kretprobe/reuseport_select_sock")
int BPF_KRETPROBE(select_return, struct sock *chosen)
{
	struct sock_reuseport *reuse, *chosen_reuse;
	const struct sock *sk, *subject;
	const struct sk_buff *skb;
	struct selection_stash *stash;
	struct selection_totals *t;
	struct call_facts f = {};
	__u32 zero = 0, depth, hash;

	stash = bpf_map_lookup_elem(&selection_stash, &zero);
	if (!stash)
		return 0;
	depth = stash->depth;
	if (!depth || depth > SELECTION_STASH_DEPTH) {
		stash->depth = 0;
		goto unmatched;
	}
	depth--;
	stash->depth = depth;
	sk = (const struct sock *)stash->calls[depth & (SELECTION_STASH_DEPTH - 1)].sk;
	hash = stash->calls[depth & (SELECTION_STASH_DEPTH - 1)].hash;
	skb = (const struct sk_buff *)stash->calls[depth & (SELECTION_STASH_DEPTH - 1)].skb;

	reuse = BPF_CORE_READ(sk, sk_reuseport_cb);
	if (chosen) {
		/* A chosen socket is a member of the argument's group. */
		chosen_reuse = BPF_CORE_READ(chosen, sk_reuseport_cb);
		if (!reuse || chosen_reuse != reuse)
			goto unmatched;
	}
	subject = chosen ? chosen : sk;
	f.key.inode = sock_inode(subject);
	if (!f.key.inode)
		return 0;
	f.key.netns = sock_netns(subject);
	f.port = BPF_CORE_READ(subject, __sk_common.skc_num);
	f.family = BPF_CORE_READ(subject, __sk_common.skc_family);
	f.protocol = BPF_CORE_READ(subject, sk_protocol);
	if (chosen && skb && f.protocol == IPPROTO_TCP)
		f.non_syn = tcp_not_syn(BPF_CORE_READ(skb, head) +
					BPF_CORE_READ(skb, transport_header));
	if (reuse)
		group_facts(&f, reuse, BPF_CORE_READ(reuse, num_socks),
			    BPF_CORE_READ(reuse, reuseport_id), hash, chosen);
	record(&f, hash, chosen != NULL);
	return 0;

unmatched:
	t = totals();
	if (t)
		t->unmatched++;
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
