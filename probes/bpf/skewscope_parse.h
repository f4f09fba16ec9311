/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Parsing of the IPv4/IPv6 + UDP/TCP headers at a known L3 position, shared
 * by the probes. Include after skewscope_net.h and <bpf/bpf_helpers.h>.
 */
#ifndef __SKEWSCOPE_PARSE_H
#define __SKEWSCOPE_PARSE_H

/* Addresses in network order (IPv4 in the first 4 bytes), ports host order. */
struct skewscope_tuple {
	__u16 family; /* AF_INET / AF_INET6 */
	__u8 protocol;
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
};

/* Parses the headers at `l3`, of which `avail` bytes are in the linear
 * area, for an skb of protocol `proto` (skb->protocol, network order).
 * Returns 0 for UDP/TCP over IPv4 (first or only fragment) or IPv6 without
 * extension headers, -1 otherwise. All reads are bpf_probe_read_kernel. */
static __always_inline int parse_ip_tuple(const unsigned char *l3, unsigned int avail,
					  __be16 proto, struct skewscope_tuple *tuple)
{
	struct skewscope_ports ports;
	unsigned int l4_off;

	if (proto == ETH_P_IP_BE) {
		struct skewscope_iphdr ip;

		if (avail < sizeof(ip) || bpf_probe_read_kernel(&ip, sizeof(ip), l3))
			return -1;
		if ((ip.version_ihl >> 4) != 4 || (ip.frag_off & IP_OFFSET_MASK_BE))
			return -1;
		l4_off = (ip.version_ihl & 0x0f) * 4;
		if (l4_off < sizeof(ip))
			return -1;
		tuple->family = AF_INET;
		tuple->protocol = ip.protocol;
		__builtin_memcpy(tuple->saddr, &ip.saddr, 4);
		__builtin_memcpy(tuple->daddr, &ip.daddr, 4);
	} else if (proto == ETH_P_IPV6_BE) {
		struct skewscope_ipv6hdr ip6;

		if (avail < sizeof(ip6) || bpf_probe_read_kernel(&ip6, sizeof(ip6), l3))
			return -1;
		if ((ip6.version_tc_flow & 0xf0) != 0x60)
			return -1;
		l4_off = sizeof(ip6);
		tuple->family = AF_INET6;
		tuple->protocol = ip6.nexthdr;
		__builtin_memcpy(tuple->saddr, ip6.saddr, 16);
		__builtin_memcpy(tuple->daddr, ip6.daddr, 16);
	} else {
		return -1;
	}
	if (tuple->protocol != IPPROTO_UDP && tuple->protocol != IPPROTO_TCP)
		return -1;
	if (avail < l4_off + sizeof(ports) ||
	    bpf_probe_read_kernel(&ports, sizeof(ports), l3 + l4_off))
		return -1;
	tuple->sport = skewscope_ntohs(ports.source);
	tuple->dport = skewscope_ntohs(ports.dest);
	return 0;
}

#endif /* __SKEWSCOPE_PARSE_H */
