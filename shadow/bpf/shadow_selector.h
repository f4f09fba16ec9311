/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Shared pieces of the built-in shadow selectors (docs/shadow.md, "Candidate
 * contract"): the `socks` REUSEPORT_SOCKARRAY the engine fills with the
 * replica sockets 0..num_socks-1, the `num_socks` tunable, and the flow key
 * of the `heavy_flows` map.
 *
 * sk_reuseport programs (BPF_PROG_TYPE_SK_REUSEPORT, Linux 4.19, commit
 * 2dbb9b9e6df6 "bpf: Introduce BPF_PROG_TYPE_SK_REUSEPORT") see the packet
 * from the L4 header on (md->data); bpf_skb_load_bytes() offsets are relative
 * to it, bpf_skb_load_bytes_relative(.., BPF_HDR_START_NET) to the IP header.
 *
 * Returning SK_PASS without a successful bpf_sk_select_reuseport() makes the
 * kernel fall back to its own hash (net/core/sock_reuseport.c,
 * reuseport_select_sock: "no bpf or invalid bpf result: fall back to hash").
 */
#ifndef __SHADOW_SELECTOR_H
#define __SHADOW_SELECTOR_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Upper bound of a replica group; the engine refuses larger groups. */
#define SHADOW_MAX_SOCKS 256
/* Upper bound of the heavy-flow table. */
#define SHADOW_MAX_HEAVY 1024

#define SHADOW_ETH_P_IP 0x0800
#define SHADOW_ETH_P_IPV6 0x86DD

/*
 * Key of `heavy_flows`, filled by the engine (shadow/src/policy.rs mirrors
 * it). IPv4 addresses use the first 4 bytes of saddr/daddr, the rest is zero.
 * Ports are in network byte order, as on the wire.
 */
struct shadow_flow_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u32 family; /* 4 or 6 */
};

/* Set by the engine to the replica group size before load. */
const volatile __u32 num_socks = 0;

struct {
	__uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
	__uint(max_entries, SHADOW_MAX_SOCKS);
	__type(key, __u32);
	__type(value, __u32);
} socks SEC(".maps");

/* Selects socket `index` of `socks`; on failure the kernel hash decides. */
static __always_inline int select_index(struct sk_reuseport_md *md, __u32 index)
{
	bpf_sk_select_reuseport(md, &socks, &index, 0);
	return SK_PASS;
}

/* Fills `key` from the packet; returns 0 on success. */
static __always_inline int load_flow_key(struct sk_reuseport_md *md,
					 struct shadow_flow_key *key)
{
	__be16 ports[2];

	if (bpf_skb_load_bytes(md, 0, ports, sizeof(ports)))
		return -1;
	key->sport = ports[0];
	key->dport = ports[1];
	if (md->eth_protocol == bpf_htons(SHADOW_ETH_P_IP)) {
		key->family = 4;
		/* struct iphdr: saddr at 12, daddr at 16 */
		if (bpf_skb_load_bytes_relative(md, 12, key->saddr, 4, BPF_HDR_START_NET))
			return -1;
		if (bpf_skb_load_bytes_relative(md, 16, key->daddr, 4, BPF_HDR_START_NET))
			return -1;
		return 0;
	}
	if (md->eth_protocol == bpf_htons(SHADOW_ETH_P_IPV6)) {
		key->family = 6;
		/* struct ipv6hdr: saddr at 8, daddr at 24 */
		if (bpf_skb_load_bytes_relative(md, 8, key->saddr, 16, BPF_HDR_START_NET))
			return -1;
		if (bpf_skb_load_bytes_relative(md, 24, key->daddr, 16, BPF_HDR_START_NET))
			return -1;
		return 0;
	}
	return -1;
}

#endif /* __SHADOW_SELECTOR_H */
