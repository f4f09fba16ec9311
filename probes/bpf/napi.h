/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Structures shared between napi.bpf.c and its Rust mirror
 * (probes/src/napi.rs). Keep both in sync: same field order, all fields
 * naturally aligned, explicit padding, no bool.
 */
#ifndef __NAPI_H
#define __NAPI_H

/* Key of `napi_stats`: one NAPI instance. The per-CPU backlog NAPI of
 * netif_rx() (loopback, veth without XDP/GRO, RPS) has no device and no id:
 * napi_id 0, ifindex 0, netns 0. */
struct napi_key {
	__u32 napi_id; /* napi->napi_id; 0 when not hashed */
	__u32 ifindex; /* napi->dev->ifindex; 0 without device */
	__u32 netns;   /* inode of napi->dev's network namespace; 0 without */
	__u32 pad;
};

/* Value of `napi_stats`, per CPU. */
struct napi_value {
	__u64 polls;            /* napi_poll events */
	__u64 work_total;       /* sum of `work` (packets handled) */
	__u64 budget_exhausted; /* polls with work >= budget: NAPI repolls */
};

#endif /* __NAPI_H */
