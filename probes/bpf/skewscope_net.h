/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Wire-format constants and the few packet-header bytes the probes parse.
 * These are protocol formats (RFC 791, RFC 8200, RFC 768, RFC 9293), not
 * kernel structures, so they need no CO-RE; they are declared here instead
 * of pulling the UAPI <linux/ip.h>/<linux/ipv6.h> chain into BPF builds.
 * Multi-byte fields are in network byte order.
 */
#ifndef __SKEWSCOPE_NET_H
#define __SKEWSCOPE_NET_H

#include <linux/types.h>

/* include/uapi/linux/if_ether.h, in network byte order as skb->protocol
 * holds them (BPF targets here are little-endian: bpfel). */
#define ETH_P_IP_BE 0x0008   /* htons(0x0800) */
#define ETH_P_IPV6_BE 0xDD86 /* htons(0x86DD) */

/* include/uapi/linux/in.h */
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17

/* include/linux/socket.h */
#define AF_INET 2
#define AF_INET6 10

/* include/net/tcp_states.h */
#define TCP_LISTEN 10

/* IPv4 header, first 20 bytes (RFC 791). */
struct skewscope_iphdr {
	__u8 version_ihl; /* version << 4 | ihl (32-bit words) */
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off; /* flags (3 bits) | fragment offset (13 bits) */
	__u8 ttl;
	__u8 protocol;
	__be16 check;
	__be32 saddr;
	__be32 daddr;
};

#define IP_OFFSET_MASK_BE 0xFF1F /* htons(0x1FFF) */

/* IPv6 fixed header (RFC 8200). */
struct skewscope_ipv6hdr {
	__be32 version_tc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* IPv6 extension headers that may precede the upper-layer header (RFC 8200
 * section 4; include/net/ipv6.h NEXTHDR_*). All but the fragment header
 * carry their length in hdrlen: 8-octet units not counting the first 8
 * (AH, RFC 4302: 4-octet units minus 2). */
#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH 51
#define NEXTHDR_DEST 60

/* The first 4 bytes of every extension header; for the fragment header the
 * third and fourth are the offset (13 bits, 8-octet units) and flags. */
struct skewscope_ipv6_ext {
	__u8 nexthdr;
	__u8 hdrlen;
	__be16 frag_off;
};

#define IP6_OFFSET_MASK_BE 0xF8FF /* htons(0xFFF8) */

/* The first 4 bytes of a UDP or TCP header: source and destination port. */
struct skewscope_ports {
	__be16 source;
	__be16 dest;
};

static __always_inline __u16 skewscope_ntohs(__be16 value)
{
	return __builtin_bswap16(value);
}

#endif /* __SKEWSCOPE_NET_H */
