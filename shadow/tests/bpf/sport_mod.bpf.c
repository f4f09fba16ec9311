// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Test candidate (also the minimal example of docs/shadow.md): socket =
 * source port % num_socks. Deterministic, so a replay must give exactly the
 * weights the test computes by hand.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Set by the engine to the replica group size. */
const volatile __u32 num_socks = 0;

/* Filled by the engine: index i -> replica socket i. */
struct {
	__uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} socks SEC(".maps");

SEC("sk_reuseport")
int sport_mod(struct sk_reuseport_md *md)
{
	__be16 sport;
	__u32 index;

	if (num_socks == 0)
		return SK_PASS;
	/* Offset 0 is the start of the TCP/UDP header: the source port. */
	if (bpf_skb_load_bytes(md, 0, &sport, sizeof(sport)))
		return SK_PASS;
	index = bpf_ntohs(sport) % num_socks;
	bpf_sk_select_reuseport(md, &socks, &index, 0);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
