// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * rx: per-RX-queue packet counts, a flow table and ingress-age histograms
 * for watched ports.
 *
 * BTF-enabled raw tracepoints (tp_btf: BPF_PROG_TYPE_TRACING attached with
 * BPF_RAW_TRACEPOINT_OPEN; Linux 5.5, commit 9e15db66136a "bpf: Implement
 * accurate raw_tp context access via BTF"): the same hooks as raw
 * tracepoints, but the arguments are BTF-typed, so kernel fields are read
 * with plain loads (see skewscope_sock.h) and bpf_probe_read_kernel() is
 * left for packet bytes and memory outside the typed structs.
 *
 * Tracepoints (prototypes as in the 6.18 BTF, btf_trace_<name>):
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
 *
 * UDP reads, one of three hooks (ReadHook in src/rx.rs, chosen by what the
 * kernel accepts, in this order):
 * - fentry on skb_consume_udp(struct sock *sk, struct sk_buff *skb, int len)
 *   (net/ipv4/udp.c). udp_recvmsg() and udpv6_recvmsg() call it once per
 *   datagram they return, after the copy: `skb_consume_udp(sk, skb, peeking
 *   ? -err : err)`, unchanged from 5.10 through 6.18 (the call sits after
 *   sock_recv_ts_and_drops() up to 6.0, sock_recv_cmsgs() since). A read
 *   that finds the queue empty, or drops a datagram on a checksum error
 *   (csum_copy_err: kfree_skb, no consume), never gets there. With the
 *   socket and the skb in hand the age is one record_read(), with no queue
 *   head to track: the program runs once per datagram read instead of once
 *   per receive call plus once per datagram queued (the tracepoint pair
 *   below). A peek (len < 0: MSG_PEEK leaves the datagram queued for the
 *   real read) is skipped. Its BTF prototype is (sk, skb, len) in the
 *   Debian 5.10, 6.1 and 6.12 kernels and on 6.18.
 * - kprobe on skb_consume_udp, where fentry is refused (no trampolines:
 *   arm64 before 6.0, see listener_events.bpf.c): the same handler with
 *   CO-RE reads (KREAD, skewscope_sock.h).
 * - sock:sock_recv_length, TP_PROTO(struct sock *sk, int ret, int flags)
 *   (Linux 6.3): fires at the end of sock_recvmsg() (net/socket.c), on the
 *   reading CPU, after the protocol dequeued the datagram -- on every
 *   receive call of every socket, empty ones included -- with
 *   sock:sk_data_ready, TP_PROTO(const struct sock *sk), after a UDP skb is
 *   queued, used only to learn a UDP socket's next skb when its queue was
 *   empty at its last read.
 *
 * Tracepoint-pair read tracking: a UDP socket's queue is FIFO and udp_recvmsg() takes
 * the head of udp_sk(sk)->reader_queue, or of sk_receive_queue when the
 * former is empty (net/ipv4/udp.c __skb_recv_udp). So the head observed at
 * the end of read k is the skb read k+1 returns; `udp_reader_slots` (or
 * `udp_readers` when the socket's slot is taken, see rx.h) keeps it per
 * socket. With several threads reading one socket concurrently the pairing
 * can slip by one datagram; it resynchronizes at the next read.
 *
 * Per-queue counts cover every packet. So do the per-RSS-entry counts of
 * the devices the agent lists (entry_devices, see rx.h): the entry is the
 * low bits of the hash the driver stored (rx_hw_hash). Packets to watched (protocol, port)
 * pairs (a bitmap: one inlined ARRAY lookup) are counted into flows, 1 in
 * sample_every at random (default 1: every packet, exact). 1 in
 * age_sample_every of those on average (a per-CPU randomized countdown) is
 * timestamped for ingress ages: a stamp costs a clock read and writes to a
 * shared slot (`ingress`, see rx.h), and age histograms only need a fair
 * sample. The read side pays one bitmap check for sockets of unwatched
 * ports; for watched ones, a reader-slot lookup and one `ingress` slot
 * load that finds no stamp for unsampled packets.
 *
 * Hashing a kernel address needs it as a plain number, which a BTF-typed
 * pointer is not to the verifier: address_of() (UDP reader slots use the
 * socket inode instead).
 *
 * Per-queue counts live in per-CPU maps (a direct-mapped slot array in front
 * of a hash, see rx.h). The flow table and histograms are shared maps with
 * atomic adds: their values are large (32-272 bytes) and a per-CPU copy
 * would multiply memory by the number of possible CPUs, while one flow or
 * socket is mostly touched from one CPU at a time.
 */
#include "skewscope_core.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "skewscope_net.h"
#include "skewscope_sock.h"
#include "skewscope_parse.h"
#include "rx.h"

/*
 * Exchange and compare-and-exchange. BPF_XCHG/BPF_CMPXCHG (and the fetch
 * forms of the atomic adds) need Linux 5.12 (commit 5ffa25502b5a "bpf: Add
 * instructions for atomic_[cmp]xchg"); older verifiers refuse them with
 * "BPF_STX uses reserved fields". rx_compat.bpf.c builds this file with
 * RX_NO_XCHG for those kernels: plain volatile loads and stores in program
 * order. They order the same on x86 (TSO); two CPUs racing for one slot can
 * then both take an ingress stamp (one age counted twice) or both claim a
 * reader slot (the loser's next read is not aged), which costs accuracy of
 * the sampled ages only, never the per-queue or flow counts (plain atomic
 * adds, BPF_XADD, accepted since 4.x).
 */
#ifdef RX_NO_XCHG
#define rx_xchg(ptr, value)                                                       \
	({                                                                        \
		__typeof__(*(ptr)) __old = *(volatile __typeof__(*(ptr)) *)(ptr); \
		*(volatile __typeof__(*(ptr)) *)(ptr) = (value);                  \
		__old;                                                            \
	})
#define rx_cmpxchg(ptr, expected, value)                                          \
	({                                                                        \
		__typeof__(*(ptr)) __old = *(volatile __typeof__(*(ptr)) *)(ptr); \
		if (__old == (expected))                                          \
			*(volatile __typeof__(*(ptr)) *)(ptr) = (value);          \
		__old;                                                            \
	})
#else
#define rx_xchg(ptr, value) __sync_lock_test_and_set(ptr, value)
#define rx_cmpxchg(ptr, expected, value) __sync_val_compare_and_swap(ptr, expected, value)
#endif

/* include/linux/socket.h */
#define MSG_PEEK 0x2
#define MSG_ERRQUEUE 0x2000
/* include/uapi/asm-generic/errno-base.h */
#define EAGAIN 11

/* Set at load time (RxConfig). Flows: 1 = every watched packet, N = 1 in N
 * at random. Ages: 1 in age_sample_every of the packets kept for flows. */
const volatile __u32 sample_every = 1;
const volatile __u32 age_sample_every = 1;
/* Slots of `ingress` minus 1 (a power of two minus 1; RxConfig::max_inflight
 * rounded up). */
const volatile __u32 ingress_mask = 65535;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct rx_queue_key);
	__type(value, struct rx_queue_value);
} queue_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RX_QUEUE_SLOTS);
	__type(key, __u32);
	__type(value, struct rx_queue_slot);
} queue_slots SEC(".maps");

/* Written by the agent (RxProbe::set_entry_devices), see rx.h. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RX_ENTRY_DEVICES);
	__type(key, __u32);
	__type(value, struct rx_entry_device);
} entry_devices SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RX_ENTRY_STATS);
	__type(key, __u32);
	__type(value, struct rx_queue_value);
} entry_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RX_WATCH_WORDS);
	__type(key, __u32);
	__type(value, __u64);
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

/* Stamps of received-but-unread sampled packets (see rx.h); max_entries
 * set by the loader to ingress_mask + 1. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
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

/* Per-CPU scratch, one element per context: a softirq running
 * rx_receive_skb can interrupt a read-side program (rx_copy_dgram,
 * rx_consume_udp: process context, never each other) between its store and
 * load. */
#define RX_SCRATCH_RECEIVE 0
#define RX_SCRATCH_COPY 1

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct rx_scratch);
} rx_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RX_READER_SLOTS);
	__type(key, __u32);
	__type(value, struct rx_udp_reader_slot);
} udp_reader_slots SEC(".maps");

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
	__u16 mapping = skb->queue_mapping;

	return mapping ? (__u32)mapping - 1 : RX_QUEUE_NOT_RECORDED;
}

/* Wire packets behind one skb: a GRO/GSO skb stands for gso_segs of them.
 * Such an skb is never linear: GRO appends the merged segments as page
 * frags or a frag_list (net/core/gro.c skb_gro_receive*), and GSO payloads
 * from sockets are paged; both count in data_len. So a linear skb is one
 * packet, and skb_shinfo() -- outside the typed struct, one helper call --
 * is only read for non-linear ones. */
static __always_inline __u32 skb_segments(const struct sk_buff *skb)
{
	struct skb_shared_info *shinfo;
	__u16 segs = 0;

	if (!skb->data_len)
		return 1;
	shinfo = (void *)(skb->head + skb->end);
	bpf_probe_read_kernel(&segs, sizeof(segs),
			      (void *)shinfo + bpf_core_field_offset(struct skb_shared_info, gso_segs));
	return segs ? segs : 1;
}

/* Slot of `key` in queue_slots: a multiplicative hash of its fields. */
static __always_inline __u32 rx_queue_slot_of(const struct rx_queue_key *key)
{
	__u32 h = key->netns * 2654435761U ^ key->ifindex * 2246822519U ^
		  key->queue * 3266489917U;

	return (h ^ (h >> 16)) % RX_QUEUE_SLOTS;
}

static __always_inline void count_queue(const struct rx_queue_key *key, __u32 segs,
					__u32 len)
{
	struct rx_queue_value *value, fresh = {};
	struct rx_queue_slot *slot;
	__u32 index = rx_queue_slot_of(key);

	slot = bpf_map_lookup_elem(&queue_slots, &index);
	if (slot) {
		if (!slot->key.pad) {
			slot->key = *key;
			slot->key.pad = 1;
		}
		if (slot->key.netns == key->netns && slot->key.ifindex == key->ifindex &&
		    slot->key.queue == key->queue) {
			slot->value.packets += segs;
			slot->value.bytes += len;
			return;
		}
	}

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

/* The hash the driver stored in the skb from the NIC's receive descriptor
 * (skb_set_hash(), include/linux/skbuff.h: hash set, sw_hash 0), or 0 when
 * there is none: no hash (0) or a software one (sw_hash 1, set by
 * __skb_set_sw_hash when the kernel hashed the packet itself, e.g.
 * get_rps_cpu -> skb_get_hash with RPS on). igb stores its RSS hash with
 * PKT_HASH_TYPE_L3 (igb_main.c igb_rx_hash: skb_set_hash(skb,
 * rx_desc->wb.lower.hi_dword.rss, PKT_HASH_TYPE_L3)), so l4_hash is 0 even
 * for a 4-tuple hash and is not what tells a driver hash apart; nor does
 * skb_get_hash() keep it: with l4_hash and sw_hash both 0 it rehashes in
 * software, so with RPS on an L3-typed NIC hash is gone by this
 * tracepoint (it runs after get_rps_cpu, net/core/dev.c). A NIC hash of
 * exactly 0 (1 in 2^32) is read as none. */
static __always_inline __u32 rx_hw_hash(const struct sk_buff *skb)
{
	if (BPF_CORE_READ_BITFIELD(skb, sw_hash))
		return 0;
	return skb->hash;
}

/* Counts the packet in its device's block of entry_stats when the agent
 * listed the device (rx.h) and the driver stored a hash. */
static __always_inline void count_entry(const struct rx_queue_key *key, __u32 hash, __u32 segs,
					__u32 len)
{
	struct rx_entry_device *device;
	struct rx_queue_value *value;
	__u32 slot = key->ifindex % RX_ENTRY_DEVICES, index;

	device = bpf_map_lookup_elem(&entry_devices, &slot);
	if (!device || !hash || device->netns != key->netns || device->ifindex != key->ifindex)
		return;
	index = device->base + (hash & device->mask);
	value = bpf_map_lookup_elem(&entry_stats, &index);
	if (!value)
		return;
	value->packets += segs;
	value->bytes += len;
}

static __always_inline int port_watched(__u8 protocol, __u16 port)
{
	__u32 word = port / 64;
	__u64 *bits;

	if (protocol == IPPROTO_UDP)
		word += RX_WATCH_WORDS_PER_PROTO;
	else if (protocol != IPPROTO_TCP)
		return 0;
	bits = bpf_map_lookup_elem(&watched, &word);
	return bits && (*bits >> (port % 64)) & 1;
}

/* 1 with probability 1/every: bpf_get_prandom_u32() below 2^32 / every
 * (multiply and shift, no division); always 1 for every = 1. */
static __always_inline int sampled(__u32 every)
{
	if (every <= 1)
		return 1;
	return (((__u64)bpf_get_prandom_u32() * every) >> 32) == 0;
}

/* 1 for one packet in age_sample_every on average, without a random draw
 * per packet: a per-CPU countdown, reloaded at each pick with a uniform
 * draw from [1, 2 * age_sample_every - 1] (mean age_sample_every), so the
 * picks do not lock onto periodic traffic. */
static __always_inline int age_sampled(void)
{
	struct rx_scratch *scratch;
	__u32 index = RX_SCRATCH_RECEIVE;

	if (age_sample_every <= 1)
		return 1;
	scratch = bpf_map_lookup_elem(&rx_scratch, &index);
	if (!scratch)
		return 0;
	if (scratch->age_countdown > 1) {
		scratch->age_countdown -= 1;
		return 0;
	}
	scratch->age_countdown =
		1 + (((__u64)bpf_get_prandom_u32() * (2 * age_sample_every - 1)) >> 32);
	return 1;
}

/* The address `ptr` as a plain number. The verifier allows no arithmetic
 * on a BTF-typed pointer (hashing it), but whatever is loaded from a map
 * value is a number: the pointer takes a trip through this CPU's scratch
 * element `index` (privileged programs may store pointers into maps). 0 on
 * error. */
static __always_inline __u64 address_of(const void *ptr, __u32 index)
{
	struct rx_scratch *scratch;

	scratch = bpf_map_lookup_elem(&rx_scratch, &index);
	if (!scratch)
		return 0;
	scratch->addr = (__u64)ptr;
	return *(volatile __u64 *)&scratch->addr;
}

/* The `ingress` slot of skb address `addr` (sk_buffs are 256-byte slab
 * objects: the low 8 bits carry nothing). */
static __always_inline struct rx_ingress *ingress_slot_of(__u64 addr)
{
	__u32 index = (__u32)(((addr >> 8) * 0x9E3779B97F4A7C15ULL) >> 32) & ingress_mask;

	return bpf_map_lookup_elem(&ingress, &index);
}

/* Fills the addresses, protocol and ports of `key` from the headers at
 * skb->data (the L3 header at this tracepoint). Returns 0 on success. */
static __always_inline int parse_flow(const struct sk_buff *skb, struct rx_flow_key *key)
{
	__be16 proto = skb->protocol;
	struct skewscope_tuple tuple = {};

	if (proto != ETH_P_IP_BE && proto != ETH_P_IPV6_BE)
		return -1;
	if (parse_ip_tuple(skb->data, skb->len - skb->data_len, proto, &tuple))
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
				       __u32 cpu, __u32 queue, __u32 ifindex, __u32 hash)
{
	struct rx_flow_value *value, fresh = {};

	value = bpf_map_lookup_elem(&flows, key);
	if (!value) {
		fresh.packets = segs;
		fresh.bytes = len;
		fresh.rx_cpu = cpu;
		fresh.rx_queue = queue;
		fresh.ifindex = ifindex;
		fresh.hash = hash;
		/* A racing insert from another CPU wins; add to it instead. */
		if (!bpf_map_update_elem(&flows, key, &fresh, BPF_NOEXIST))
			return;
		value = bpf_map_lookup_elem(&flows, key);
		if (!value)
			return;
	}
	__sync_fetch_and_add(&value->packets, segs);
	__sync_fetch_and_add(&value->bytes, len);
	value->rx_cpu = cpu;
	value->rx_queue = queue;
	value->ifindex = ifindex;
	value->hash = hash;
}

static __always_inline int handle_receive(struct sk_buff *skb)
{
	struct net_device *dev = skb->dev;
	struct rx_queue_key queue_key = {};
	struct rx_flow_key flow_key = {};
	struct rx_ingress *stamp;
	struct rx_config *config;
	__u32 segs, len, cpu, hash, zero = 0;
	__u64 skb_addr;
	int kept;

	if (dev) {
		queue_key.netns = dev_netns_btf(dev);
		queue_key.ifindex = dev->ifindex;
	}
	queue_key.queue = rx_queue_of(skb);
	segs = skb_segments(skb);
	len = skb->len;
	count_queue(&queue_key, segs, len);
	hash = rx_hw_hash(skb);
	count_entry(&queue_key, hash, segs, len);

	config = bpf_map_lookup_elem(&rx_config, &zero);
	if (!config || !config->watch_count)
		return 0;
	if (parse_flow(skb, &flow_key))
		return 0;
	if (!port_watched(flow_key.protocol, flow_key.dport))
		return 0;

	flow_key.netns = queue_key.netns;
	cpu = bpf_get_smp_processor_id();
	kept = sampled(sample_every);
	if (kept)
		count_flow(&flow_key, segs, len, cpu, queue_key.queue, queue_key.ifindex, hash);

	if (!config->track_ages || !kept || !age_sampled())
		return 0;
	skb_addr = address_of(skb, RX_SCRATCH_RECEIVE);
	stamp = ingress_slot_of(skb_addr);
	if (!stamp)
		return 0;
	/* Unpublish, fill, publish: the exchange orders the fields before
	 * `skb` for a reader on another CPU (see record_read). */
	stamp->skb = 0;
	barrier();
	stamp->ts_ns = bpf_ktime_get_ns();
	stamp->rx_cpu = cpu;
	stamp->ifindex = queue_key.ifindex;
	stamp->rx_queue = queue_key.queue;
	stamp->netns = queue_key.netns;
	stamp->dport = flow_key.dport;
	stamp->protocol = flow_key.protocol;
	rx_xchg(&stamp->skb, skb_addr);
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
 * age to the histograms of socket `sk` and of the RX queue. The fields are
 * copied first and count only if the compare-and-exchange then takes the
 * stamp (a writer unpublishes a slot before refilling it). The stamp must
 * also match the socket's protocol and local port. */
static __always_inline void record_read(const struct sock *sk, __u64 skb_addr, __u16 protocol,
					const int typed)
{
	struct rx_queue_key queue_key = {};
	struct rx_ingress *slot, stamp;
	__u64 now, inode;
	__u32 bucket;
	int same_cpu;

	slot = ingress_slot_of(skb_addr);
	if (!slot || slot->skb != skb_addr)
		return;
	stamp = *slot;
	if (rx_cmpxchg(&slot->skb, skb_addr, 0) != skb_addr)
		return;
	now = bpf_ktime_get_ns();
	if (stamp.protocol != protocol || stamp.dport != KREAD(typed, sk, __sk_common.skc_num) ||
	    now < stamp.ts_ns)
		return;
	bucket = age_bucket(now - stamp.ts_ns);
	same_cpu = stamp.rx_cpu == bpf_get_smp_processor_id();
	queue_key.netns = stamp.netns;
	queue_key.ifindex = stamp.ifindex;
	queue_key.queue = stamp.rx_queue;

	inode = sock_inode_of(sk, typed);
	if (inode)
		add_age(&socket_ages, &inode, bucket, same_cpu);
	add_age(&queue_ages, &queue_key, bucket, same_cpu);
}

static __always_inline int handle_copy(const struct sk_buff *skb)
{
	struct sock *sk = skb->sk;

	/* UDP is tracked by sock_recv_length (see the header comment). This
	 * fires for every TCP read on the host: leave unwatched ports before
	 * the ingress lookup. */
	if (!sk || sk->sk_protocol != IPPROTO_TCP ||
	    !port_watched(IPPROTO_TCP, sk->__sk_common.skc_num))
		return 0;
	record_read(sk, address_of(skb, RX_SCRATCH_COPY), IPPROTO_TCP, 1);
	return 0;
}

/* The skb the next udp_recvmsg() on `sk` dequeues, or 0 when both queues
 * are empty. reader_queue lies past struct sock (in struct udp_sock), out
 * of reach of typed loads: one helper call reads its next pointer and
 * length together (struct sk_buff_head: next, prev, qlen, lock, unchanged
 * since the queue was introduced; the offsets are still CO-RE relocated). */
static __always_inline __u64 udp_queue_head(const struct sock *sk)
{
	__u64 head[3] = {};
	__u32 next_off = bpf_core_field_offset(struct sk_buff_head, next);
	__u32 qlen_off = bpf_core_field_offset(struct sk_buff_head, qlen);

	if (next_off + sizeof(__u64) <= sizeof(head) && qlen_off + sizeof(__u32) <= sizeof(head) &&
	    !bpf_probe_read_kernel(head, sizeof(head),
				   (void *)sk + bpf_core_field_offset(struct udp_sock, reader_queue)) &&
	    *(__u32 *)((void *)head + qlen_off))
		return *(__u64 *)((void *)head + next_off);
	if (sk->sk_receive_queue.qlen)
		return (__u64)sk->sk_receive_queue.next;
	return 0;
}

static __always_inline int udp_watched(const struct sock *sk)
{
	return sk->sk_protocol == IPPROTO_UDP &&
	       port_watched(IPPROTO_UDP, sk->__sk_common.skc_num);
}

/* The read-tracking state of socket `sk`: its udp_reader_slots slot when
 * it holds or can claim it, else its udp_readers element, if any. */
static __always_inline struct rx_udp_reader *reader_of(const struct sock *sk)
{
	struct rx_udp_reader_slot *slot;
	__u64 owner, sk_addr = (__u64)sk;
	__u32 index;

	/* The slot comes from the socket inode (typed loads): the verifier
	 * allows no arithmetic on the typed sk pointer. Ownership is by
	 * address, as in udp_readers. */
	index = (__u32)(sock_inode_btf(sk) * 0x9E3779B97F4A7C15ULL >> (64 - RX_READER_SLOT_BITS));

	slot = bpf_map_lookup_elem(&udp_reader_slots, &index);
	if (slot) {
		owner = slot->sk;
		if (!owner) {
			owner = rx_cmpxchg(&slot->sk, 0, sk_addr);
			if (!owner)
				owner = sk_addr;
		}
		if (owner == sk_addr)
			return &slot->reader;
	}
	return bpf_map_lookup_elem(&udp_readers, &sk_addr);
}

static __always_inline int handle_recv_length(const struct sock *sk, int ret, int flags)
{
	struct rx_udp_reader *reader, fresh = {};
	__u64 sk_addr = (__u64)sk, read_skb;

	/* -EAGAIN: the queues were empty, so the last read already saw the
	 * head as 0 or sk_data_ready has set it since; nothing to update.
	 * (Event loops end every batch of reads with one such read.) Only a
	 * datagram dropped on a checksum error inside this read would leave a
	 * stale head, whose stamp then fails the port check or ages one read
	 * wrongly. */
	if (!sk || ret == -EAGAIN || (flags & (MSG_PEEK | MSG_ERRQUEUE)) || !udp_watched(sk))
		return 0;
	reader = reader_of(sk);
	read_skb = reader ? reader->next_skb : 0;
	fresh.next_skb = udp_queue_head(sk);
	if (reader && fresh.next_skb) {
		reader->next_skb = fresh.next_skb;
	} else if (reader) {
		/* Seen empty: a datagram queued since may have had its
		 * sk_data_ready find the old, non-zero head and leave. The
		 * exchange (a full barrier) publishes the 0 first, then the
		 * queue is looked at again. */
		rx_xchg(&reader->next_skb, 0);
		fresh.next_skb = udp_queue_head(sk);
		if (fresh.next_skb)
			reader->next_skb = fresh.next_skb;
	} else {
		bpf_map_update_elem(&udp_readers, &sk_addr, &fresh, BPF_ANY);
	}
	/* A failed read returned no datagram. */
	if (ret >= 0 && read_skb)
		record_read(sk, read_skb, IPPROTO_UDP, 1);
	return 0;
}

/* skb_consume_udp(sk, skb, len): `sk` read datagram `skb`; `skb_addr` is
 * its address as a number. Only UDP sockets get here (udp_recvmsg,
 * udpv6_recvmsg). */
static __always_inline int handle_consume_udp(const struct sock *sk, __u64 skb_addr, int len,
					      const int typed)
{
	/* A peek: the datagram stays queued and its real read comes later. */
	if (!sk || len < 0 || !port_watched(IPPROTO_UDP, KREAD(typed, sk, __sk_common.skc_num)))
		return 0;
	record_read(sk, skb_addr, IPPROTO_UDP, typed);
	return 0;
}

static __always_inline int handle_data_ready(const struct sock *sk)
{
	struct rx_udp_reader *reader, fresh = {};
	__u64 sk_addr = (__u64)sk;

	if (!udp_watched(sk))
		return 0;
	reader = reader_of(sk);
	if (reader && reader->next_skb)
		return 0;
	fresh.next_skb = udp_queue_head(sk);
	if (reader)
		reader->next_skb = fresh.next_skb;
	else
		bpf_map_update_elem(&udp_readers, &sk_addr, &fresh, BPF_NOEXIST);
	return 0;
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(rx_receive_skb, struct sk_buff *skb)
{
	return handle_receive(skb);
}

SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(rx_copy_dgram, const struct sk_buff *skb, int len)
{
	return handle_copy(skb);
}

/* UDP reads where the kernel allows trampolines (see the header comment). */
SEC("fentry/skb_consume_udp")
int BPF_PROG(rx_consume_udp, struct sock *sk, struct sk_buff *skb, int len)
{
	return handle_consume_udp(sk, address_of(skb, RX_SCRATCH_COPY), len, 1);
}

/* The same where fentry is refused. */
SEC("kprobe/skb_consume_udp")
int BPF_KPROBE(rx_consume_udp_kprobe, struct sock *sk, struct sk_buff *skb, int len)
{
	return handle_consume_udp(sk, (__u64)skb, len, 0);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(rx_recv_length, struct sock *sk, int ret, int flags)
{
	return handle_recv_length(sk, ret, flags);
}

SEC("tp_btf/sk_data_ready")
int BPF_PROG(rx_data_ready, const struct sock *sk)
{
	return handle_data_ready(sk);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
