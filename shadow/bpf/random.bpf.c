// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* builtin:random: a uniformly random socket per selection. */
#include "shadow_selector.h"

SEC("sk_reuseport")
int shadow_random(struct sk_reuseport_md *md)
{
	__u32 n = num_socks;

	if (n == 0)
		return SK_PASS;
	return select_index(md, bpf_get_prandom_u32() % n);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
