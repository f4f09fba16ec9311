// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * builtin:isolate-heavy: the heaviest flows of the trace get dedicated
 * sockets 0..num_heavy_socks-1 (the engine fills `heavy_flows` with their
 * 4-tuples and socket indices); every other flow is spread by the kernel's
 * 4-tuple hash (md->hash) over the remaining sockets.
 */
#include "shadow_selector.h"

/* Set by the engine: how many sockets are reserved for heavy flows. */
const volatile __u32 num_heavy_socks = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHADOW_MAX_HEAVY);
	__type(key, struct shadow_flow_key);
	__type(value, __u32);
} heavy_flows SEC(".maps");

SEC("sk_reuseport")
int shadow_isolate_heavy(struct sk_reuseport_md *md)
{
	struct shadow_flow_key key = {};
	__u32 n = num_socks;
	__u32 heavy = num_heavy_socks;
	__u32 *index;

	if (n == 0)
		return SK_PASS;
	if (load_flow_key(md, &key) == 0) {
		index = bpf_map_lookup_elem(&heavy_flows, &key);
		if (index)
			return select_index(md, *index);
	}
	if (heavy >= n)
		return select_index(md, md->hash % n);
	return select_index(md, heavy + md->hash % (n - heavy));
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
