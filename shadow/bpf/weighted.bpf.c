// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * builtin:weighted: socket i takes a weights[i] / sum(weights) share of the
 * flow hash space. The kernel's 4-tuple hash (md->hash) picks the point, so a
 * flow always lands on the same socket.
 */
#include "shadow_selector.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SHADOW_MAX_SOCKS);
	__type(key, __u32);
	__type(value, __u32);
} weights SEC(".maps");

SEC("sk_reuseport")
int shadow_weighted(struct sk_reuseport_md *md)
{
	__u32 n = num_socks;
	__u64 total = 0;
	__u64 point;
	__u32 i;

	if (n == 0 || n > SHADOW_MAX_SOCKS)
		return SK_PASS;
	for (i = 0; i < SHADOW_MAX_SOCKS && i < n; i++) {
		__u32 key = i;
		__u32 *w = bpf_map_lookup_elem(&weights, &key);

		if (w)
			total += *w;
	}
	if (total == 0)
		return SK_PASS;
	point = md->hash % total;
	for (i = 0; i < SHADOW_MAX_SOCKS && i < n; i++) {
		__u32 key = i;
		__u32 *w = bpf_map_lookup_elem(&weights, &key);

		if (!w)
			continue;
		if (point < *w)
			return select_index(md, i);
		point -= *w;
	}
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
