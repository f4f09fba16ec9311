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

/* An IPv4 header without options or an IPv6 header, and the ports right
 * after it: what one bpf_probe_read_kernel() fetches in the common case. */
union skewscope_l3_l4 {
	struct {
		struct skewscope_iphdr ip;
		struct skewscope_ports ports;
	} v4;
	struct {
		struct skewscope_ipv6hdr ip6;
		struct skewscope_ports ports;
	} v6;
};

/* Extension headers walked before giving up on an IPv6 packet: hop-by-hop,
 * destination options, routing, fragment and AH cover every chain RFC 8200
 * section 4.1 recommends, with room to spare. */
#define IPV6_EXT_MAX 6

/* Walks the IPv6 extension headers from `*off` (just past the fixed header)
 * with `*nexthdr` the fixed header's next header, leaving both at the
 * upper-layer header. Returns -1 for a chain that is too long, truncated,
 * or a non-first fragment (which carries no ports). */
static __always_inline int skip_ipv6_ext(const unsigned char *l3, unsigned int avail,
					 __u8 *nexthdr, unsigned int *off)
{
	struct skewscope_ipv6_ext ext;
	int i;

	for (i = 0; i < IPV6_EXT_MAX; i++) {
		switch (*nexthdr) {
		case NEXTHDR_HOP:
		case NEXTHDR_ROUTING:
		case NEXTHDR_DEST:
		case NEXTHDR_FRAGMENT:
		case NEXTHDR_AUTH:
			break;
		default:
			return 0;
		}
		if (*off > avail - sizeof(ext) || avail < sizeof(ext) ||
		    bpf_probe_read_kernel(&ext, sizeof(ext), l3 + *off))
			return -1;
		if (*nexthdr == NEXTHDR_FRAGMENT) {
			if (ext.frag_off & IP6_OFFSET_MASK_BE)
				return -1;
			*off += 8;
		} else if (*nexthdr == NEXTHDR_AUTH) {
			*off += ((unsigned int)ext.hdrlen + 2) * 4;
		} else {
			*off += ((unsigned int)ext.hdrlen + 1) * 8;
		}
		*nexthdr = ext.nexthdr;
	}
	return -1;
}

/* Parses the headers at `l3`, of which `avail` bytes are in the linear
 * area, for an skb of protocol `proto` (skb->protocol, network order).
 * Returns 0 for UDP/TCP over IPv4 or IPv6 (the first or only fragment;
 * IPv6 extension headers are walked), -1 otherwise. One
 * bpf_probe_read_kernel() covers the L3 header and the ports in the common
 * case; IPv4 options and IPv6 extension headers cost one more per header. */
static __always_inline int parse_ip_tuple(const unsigned char *l3, unsigned int avail,
					  __be16 proto, struct skewscope_tuple *tuple)
{
	union skewscope_l3_l4 hdr;
	struct skewscope_ports ports;
	unsigned int l4_off;

	if (proto == ETH_P_IP_BE) {
		if (avail < sizeof(hdr.v4) || bpf_probe_read_kernel(&hdr.v4, sizeof(hdr.v4), l3))
			return -1;
		if ((hdr.v4.ip.version_ihl >> 4) != 4 || (hdr.v4.ip.frag_off & IP_OFFSET_MASK_BE))
			return -1;
		l4_off = (hdr.v4.ip.version_ihl & 0x0f) * 4;
		if (l4_off < sizeof(hdr.v4.ip))
			return -1;
		tuple->family = AF_INET;
		tuple->protocol = hdr.v4.ip.protocol;
		__builtin_memcpy(tuple->saddr, &hdr.v4.ip.saddr, 4);
		__builtin_memcpy(tuple->daddr, &hdr.v4.ip.daddr, 4);
		if (l4_off == sizeof(hdr.v4.ip)) {
			ports = hdr.v4.ports;
		} else if (avail < l4_off + sizeof(ports) ||
			   bpf_probe_read_kernel(&ports, sizeof(ports), l3 + l4_off)) {
			return -1;
		}
	} else if (proto == ETH_P_IPV6_BE) {
		if (avail < sizeof(hdr.v6) || bpf_probe_read_kernel(&hdr.v6, sizeof(hdr.v6), l3))
			return -1;
		if ((hdr.v6.ip6.version_tc_flow & 0xf0) != 0x60)
			return -1;
		tuple->family = AF_INET6;
		tuple->protocol = hdr.v6.ip6.nexthdr;
		__builtin_memcpy(tuple->saddr, hdr.v6.ip6.saddr, 16);
		__builtin_memcpy(tuple->daddr, hdr.v6.ip6.daddr, 16);
		if (tuple->protocol == IPPROTO_UDP || tuple->protocol == IPPROTO_TCP) {
			ports = hdr.v6.ports;
		} else {
			l4_off = sizeof(hdr.v6.ip6);
			if (skip_ipv6_ext(l3, avail, &tuple->protocol, &l4_off) ||
			    l4_off > avail - sizeof(ports) ||
			    bpf_probe_read_kernel(&ports, sizeof(ports), l3 + l4_off))
				return -1;
		}
	} else {
		return -1;
	}
	if (tuple->protocol != IPPROTO_UDP && tuple->protocol != IPPROTO_TCP)
		return -1;
	tuple->sport = skewscope_ntohs(ports.source);
	tuple->dport = skewscope_ntohs(ports.dest);
	return 0;
}

#endif /* __SKEWSCOPE_PARSE_H */
