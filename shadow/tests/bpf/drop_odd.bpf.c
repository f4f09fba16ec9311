// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Test candidate: drops every flow with an odd source port (SK_DROP), sends
 * the others to socket (sport / 2) % num_socks. Checks the engine's
 * accounting of dropped flows.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

const volatile __u32 num_socks = 0;

struct {
	__uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} socks SEC(".maps");

SEC("sk_reuseport")
int drop_odd(struct sk_reuseport_md *md)
{
	__be16 sport;
	__u32 port, index;

	if (num_socks == 0)
		return SK_PASS;
	if (bpf_skb_load_bytes(md, 0, &sport, sizeof(sport)))
		return SK_PASS;
	port = bpf_ntohs(sport);
	if (port & 1)
		return SK_DROP;
	index = (port / 2) % num_socks;
	bpf_sk_select_reuseport(md, &socks, &index, 0);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
