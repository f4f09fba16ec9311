// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Test candidate the verifier must refuse: it reads packet data without
 * checking it against data_end ("invalid access to packet").
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} socks SEC(".maps");

SEC("sk_reuseport")
int reject_oob(struct sk_reuseport_md *md)
{
	__u8 *data = (__u8 *)(long)md->data;
	__u32 index = data[100];

	bpf_sk_select_reuseport(md, &socks, &index, 0);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
