// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * rx: per-RX-queue packet counts, a flow table and ingress-age histograms
 * for watched ports.
 *
 * Raw tracepoints (prototypes as in the 6.18 BTF, btf_trace_<name>):
 * - net:netif_receive_skb, TP_PROTO(struct sk_buff *skb): fires once per skb
 *   entering __netif_receive_skb_core() (net/core/dev.c), after GRO and
 *   after the driver's eth_type_trans() pulled the MAC header. Right after
 *   the tracepoint that function does skb_reset_network_header(), i.e. the
 *   kernel itself takes skb->data as the L3 header here, and so does this
 *   probe (skb->network_header can still be stale at this point).
 * - skb:skb_copy_datagram_iovec, TP_PROTO(const struct sk_buff *skb, int len):
 *   fires in skb_copy_datagram_iter() (net/core/datagram.c), which
 *   tcp_recvmsg() uses. udp_recvmsg()/udpv6_recvmsg() copy linear skbs with
 *   copy_linear_skb() (include/net/udp.h) and never reach it (verified on
 *   6.18: 0 hits for loopback UDP), so it serves TCP only here.
 * - sock:sock_recv_length, TP_PROTO(struct sock *sk, int ret, int flags):
 *   fires at the end of sock_recvmsg() (net/socket.c), on the reading CPU,
 *   after the protocol dequeued the datagram; it serves UDP.
 * - sock:sk_data_ready, TP_PROTO(const struct sock *sk): after a UDP skb is
 *   queued; used only to learn a UDP socket's next skb when its queue was
 *   empty at its last read.
 *
 * UDP read tracking: a UDP socket's queue is FIFO and udp_recvmsg() takes
 * the head of udp_sk(sk)->reader_queue, or of sk_receive_queue when the
 * former is empty (net/ipv4/udp.c __skb_recv_udp). So the head observed at
 * the end of read k is the skb read k+1 returns; `udp_readers` keeps it per
 * socket. With several threads reading one socket concurrently the pairing
 * can slip by one datagram; it resynchronizes at the next read.
 *
 * Only packets to watched (protocol, port) pairs are parsed into flows and
 * timestamped; per-queue counts cover every packet. Sampling (sample_every
 * = N > 1) keeps 1 in N watched packets at random for flows and ages.
 *
 * Per-queue counts live in a per-CPU map. The flow table and histograms are
 * shared maps with atomic adds: their values are large (40-272 bytes) and a
 * per-CPU copy would multiply memory by the number of possible CPUs, while
 * one flow or socket is mostly touched from one CPU at a time.
 */
#include "skewscope_core.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "skewscope_net.h"
#include "skewscope_sock.h"
#include "skewscope_parse.h"
#include "rx.h"

/* include/linux/socket.h */
#define MSG_PEEK 0x2
#define MSG_ERRQUEUE 0x2000

/* 1 = every watched packet; N = 1 in N at random. Set at load time. */
const volatile __u32 sample_every = 1;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct rx_queue_key);
	__type(value, struct rx_queue_value);
} queue_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct rx_watch_key);
	__type(value, __u8);
} watched SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rx_config);
} rx_config SEC(".maps");

/* max_entries is set by the loader (RxConfig::max_flows). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct rx_flow_key);
	__type(value, struct rx_flow_value);
} flows SEC(".maps");

/* Received-but-unread sampled packets; max_entries set by the loader
 * (RxConfig::max_inflight). When full, the oldest entries are evicted. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct rx_ingress);
} ingress SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct rx_age_hist);
} socket_ages SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct rx_queue_key);
	__type(value, struct rx_age_hist);
} queue_ages SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct rx_udp_reader);
} udp_readers SEC(".maps");

/* RX queue recorded by the driver: skb_record_rx_queue() stores queue + 1
 * in queue_mapping and skb_get_rx_queue() subtracts it again; 0 means "not
 * recorded" (skb_rx_queue_recorded(), include/linux/skbuff.h). This is the
 * index RPS uses (get_rps_cpu, net/core/dev.c). Software devices that hand
 * a transmitted skb to a peer (veth without XDP: drivers/net/veth.c
 * veth_xmit -> __dev_forward_skb) leave the sender's TX queue index in
 * queue_mapping, so the kernel -- and this probe -- read TX queue q as RX
 * queue q - 1 and TX queue 0 as "not recorded". */
static __always_inline __u32 rx_queue_of(const struct sk_buff *skb)
{
	__u16 mapping = BPF_CORE_READ(skb, queue_mapping);

	return mapping ? (__u32)mapping - 1 : RX_QUEUE_NOT_RECORDED;
}

/* Wire packets behind one skb: a GRO/GSO skb stands for gso_segs of them. */
static __always_inline __u32 skb_segments(const struct sk_buff *skb)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	unsigned int end = BPF_CORE_READ(skb, end);
	struct skb_shared_info *shinfo = (void *)(head + end);
	__u16 segs = BPF_CORE_READ(shinfo, gso_segs);

	return segs ? segs : 1;
}

static __always_inline void count_queue(const struct rx_queue_key *key, __u32 segs,
					__u32 len)
{
	struct rx_queue_value *value, fresh = {};

	value = bpf_map_lookup_elem(&queue_stats, key);
	if (!value) {
		fresh.packets = segs;
		fresh.bytes = len;
		bpf_map_update_elem(&queue_stats, key, &fresh, BPF_NOEXIST);
		return;
	}
	value->packets += segs;
	value->bytes += len;
}

static __always_inline int port_watched(__u8 protocol, __u16 port)
{
	struct rx_watch_key key = { .protocol = protocol, .port = port };

	return bpf_map_lookup_elem(&watched, &key) != NULL;
}

/* Fills the addresses, protocol and ports of `key` from the headers at
 * skb->data (the L3 header at this tracepoint). Returns 0 on success. */
static __always_inline int parse_flow(const struct sk_buff *skb, struct rx_flow_key *key)
{
	unsigned int linear = BPF_CORE_READ(skb, len) - BPF_CORE_READ(skb, data_len);
	struct skewscope_tuple tuple = {};

	if (parse_ip_tuple(BPF_CORE_READ(skb, data), linear, BPF_CORE_READ(skb, protocol),
			   &tuple))
		return -1;
	key->family = tuple.family;
	key->protocol = tuple.protocol;
	__builtin_memcpy(key->saddr, tuple.saddr, 16);
	__builtin_memcpy(key->daddr, tuple.daddr, 16);
	key->sport = tuple.sport;
	key->dport = tuple.dport;
	return 0;
}

static __always_inline void count_flow(const struct rx_flow_key *key, __u32 segs, __u32 len,
				       __u32 cpu, __u32 queue, __u32 ifindex, __u64 now)
{
	struct rx_flow_value *value, fresh = {};

	value = bpf_map_lookup_elem(&flows, key);
	if (!value) {
		fresh.packets = segs;
		fresh.bytes = len;
		fresh.last_ns = now;
		fresh.rx_cpu = cpu;
		fresh.rx_queue = queue;
		fresh.ifindex = ifindex;
		/* A racing insert from another CPU wins; add to it instead. */
		if (!bpf_map_update_elem(&flows, key, &fresh, BPF_NOEXIST))
			return;
		value = bpf_map_lookup_elem(&flows, key);
		if (!value)
			return;
	}
	__sync_fetch_and_add(&value->packets, segs);
	__sync_fetch_and_add(&value->bytes, len);
	value->last_ns = now;
	value->rx_cpu = cpu;
	value->rx_queue = queue;
	value->ifindex = ifindex;
}

static __always_inline int handle_receive(struct sk_buff *skb)
{
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	struct rx_queue_key queue_key = {};
	struct rx_flow_key flow_key = {};
	struct rx_ingress stamp = {};
	struct rx_config *config;
	__u32 segs, len, cpu, zero = 0;
	__u64 skb_addr, now;

	queue_key.netns = dev_netns(dev);
	queue_key.ifindex = dev ? BPF_CORE_READ(dev, ifindex) : 0;
	queue_key.queue = rx_queue_of(skb);
	segs = skb_segments(skb);
	len = BPF_CORE_READ(skb, len);
	count_queue(&queue_key, segs, len);

	config = bpf_map_lookup_elem(&rx_config, &zero);
	if (!config || !config->watch_count)
		return 0;
	if (parse_flow(skb, &flow_key))
		return 0;
	if (!port_watched(flow_key.protocol, flow_key.dport))
		return 0;
	if (sample_every > 1 && bpf_get_prandom_u32() % sample_every)
		return 0;

	flow_key.netns = queue_key.netns;
	cpu = bpf_get_smp_processor_id();
	now = bpf_ktime_get_ns();
	count_flow(&flow_key, segs, len, cpu, queue_key.queue, queue_key.ifindex, now);

	if (!config->track_ages)
		return 0;
	stamp.ts_ns = now;
	stamp.rx_cpu = cpu;
	stamp.ifindex = queue_key.ifindex;
	stamp.rx_queue = queue_key.queue;
	stamp.netns = queue_key.netns;
	stamp.dport = flow_key.dport;
	stamp.protocol = flow_key.protocol;
	skb_addr = (__u64)skb;
	bpf_map_update_elem(&ingress, &skb_addr, &stamp, BPF_ANY);
	return 0;
}

/* floor(log2(value)) for value >= 1, 0 for 0; capped at RX_AGE_BUCKETS-1. */
static __always_inline __u32 age_bucket(__u64 value)
{
	__u32 bucket = 0;

	if (value >> 32) { value >>= 32; bucket += 32; }
	if (value >> 16) { value >>= 16; bucket += 16; }
	if (value >> 8) { value >>= 8; bucket += 8; }
	if (value >> 4) { value >>= 4; bucket += 4; }
	if (value >> 2) { value >>= 2; bucket += 2; }
	if (value >> 1) { bucket += 1; }
	return bucket < RX_AGE_BUCKETS ? bucket : RX_AGE_BUCKETS - 1;
}

static __always_inline void add_age(void *map, const void *key, __u32 bucket, int same_cpu)
{
	struct rx_age_hist *hist;

	hist = bpf_map_lookup_elem(map, key);
	if (!hist) {
		/* Large value: start from the zero-filled element, then add.
		 * static const so it lives in .rodata, not on the stack. */
		static const struct rx_age_hist empty;

		bpf_map_update_elem(map, key, &empty, BPF_NOEXIST);
		hist = bpf_map_lookup_elem(map, key);
		if (!hist)
			return;
	}
	if (bucket < RX_AGE_BUCKETS)
		__sync_fetch_and_add(&hist->buckets[bucket], 1);
	if (same_cpu)
		__sync_fetch_and_add(&hist->same_cpu, 1);
	else
		__sync_fetch_and_add(&hist->other_cpu, 1);
}

/* Consumes the ingress stamp of skb address `skb_addr`, if any, and adds its
 * age to the histograms of socket `sk` and of the RX queue. The stamp must
 * match the socket's protocol and local port: skb memory is recycled, so a
 * stale stamp under a reused address is ignored. */
static __always_inline void record_read(const struct sock *sk, __u64 skb_addr, __u16 protocol)
{
	struct rx_queue_key queue_key = {};
	struct rx_ingress *stamp;
	__u64 now, inode;
	__u32 bucket;
	int same_cpu;

	stamp = bpf_map_lookup_elem(&ingress, &skb_addr);
	if (!stamp)
		return;
	now = bpf_ktime_get_ns();
	if (stamp->protocol != protocol ||
	    stamp->dport != BPF_CORE_READ(sk, __sk_common.skc_num) || now < stamp->ts_ns) {
		bpf_map_delete_elem(&ingress, &skb_addr);
		return;
	}
	bucket = age_bucket(now - stamp->ts_ns);
	same_cpu = stamp->rx_cpu == bpf_get_smp_processor_id();
	queue_key.netns = stamp->netns;
	queue_key.ifindex = stamp->ifindex;
	queue_key.queue = stamp->rx_queue;
	bpf_map_delete_elem(&ingress, &skb_addr);

	inode = sock_inode(sk);
	if (inode)
		add_age(&socket_ages, &inode, bucket, same_cpu);
	add_age(&queue_ages, &queue_key, bucket, same_cpu);
}

static __always_inline int handle_copy(const struct sk_buff *skb)
{
	struct sock *sk = BPF_CORE_READ(skb, sk);

	/* UDP is tracked by sock_recv_length (see the header comment). */
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	record_read(sk, (__u64)skb, IPPROTO_TCP);
	return 0;
}

/* The skb the next udp_recvmsg() on `sk` dequeues, or 0 when both queues
 * are empty. */
static __always_inline __u64 udp_queue_head(const struct sock *sk)
{
	const struct udp_sock *up = (const void *)sk;

	if (BPF_CORE_READ(up, reader_queue.qlen))
		return (__u64)BPF_CORE_READ(up, reader_queue.next);
	if (BPF_CORE_READ(sk, sk_receive_queue.qlen))
		return (__u64)BPF_CORE_READ(sk, sk_receive_queue.next);
	return 0;
}

static __always_inline int udp_watched(const struct sock *sk)
{
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_UDP)
		return 0;
	return port_watched(IPPROTO_UDP, BPF_CORE_READ(sk, __sk_common.skc_num));
}

static __always_inline int handle_recv_length(const struct sock *sk, int ret, int flags)
{
	struct rx_udp_reader *reader, fresh = {};
	__u64 sk_addr = (__u64)sk, read_skb;

	if (!sk || (flags & (MSG_PEEK | MSG_ERRQUEUE)) || !udp_watched(sk))
		return 0;
	reader = bpf_map_lookup_elem(&udp_readers, &sk_addr);
	read_skb = reader ? reader->next_skb : 0;
	fresh.next_skb = udp_queue_head(sk);
	if (reader)
		reader->next_skb = fresh.next_skb;
	else
		bpf_map_update_elem(&udp_readers, &sk_addr, &fresh, BPF_ANY);
	/* A failed read returned no datagram. */
	if (ret >= 0 && read_skb)
		record_read(sk, read_skb, IPPROTO_UDP);
	return 0;
}

static __always_inline int handle_data_ready(const struct sock *sk)
{
	struct rx_udp_reader *reader, fresh = {};
	__u64 sk_addr = (__u64)sk;

	if (!udp_watched(sk))
		return 0;
	reader = bpf_map_lookup_elem(&udp_readers, &sk_addr);
	if (reader && reader->next_skb)
		return 0;
	fresh.next_skb = udp_queue_head(sk);
	if (reader)
		reader->next_skb = fresh.next_skb;
	else
		bpf_map_update_elem(&udp_readers, &sk_addr, &fresh, BPF_NOEXIST);
	return 0;
}

SEC("raw_tp/netif_receive_skb")
int BPF_PROG(rx_receive_skb, struct sk_buff *skb)
{
	return handle_receive(skb);
}

SEC("raw_tp/skb_copy_datagram_iovec")
int BPF_PROG(rx_copy_dgram, const struct sk_buff *skb, int len)
{
	return handle_copy(skb);
}

SEC("raw_tp/sock_recv_length")
int BPF_PROG(rx_recv_length, struct sock *sk, int ret, int flags)
{
	return handle_recv_length(sk, ret, flags);
}

SEC("raw_tp/sk_data_ready")
int BPF_PROG(rx_data_ready, const struct sock *sk)
{
	return handle_data_ready(sk);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
