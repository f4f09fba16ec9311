// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Test candidate that breaks the contract: a valid sk_reuseport program but
 * no REUSEPORT_SOCKARRAY map named `socks`.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} sockets SEC(".maps");

SEC("sk_reuseport")
int no_socks(struct sk_reuseport_md *md)
{
	__u32 index = 0;

	bpf_sk_select_reuseport(md, &sockets, &index, 0);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
