// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * builtin:cpu: socket = receiving CPU % num_socks. Over loopback the receive
 * path runs on the sending CPU, so the engine pins its sender to the flow's
 * recorded RX CPU.
 */
#include "shadow_selector.h"

SEC("sk_reuseport")
int shadow_cpu(struct sk_reuseport_md *md)
{
	__u32 n = num_socks;

	if (n == 0)
		return SK_PASS;
	return select_index(md, bpf_get_smp_processor_id() % n);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
