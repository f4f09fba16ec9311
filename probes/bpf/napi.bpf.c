// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * napi: per-CPU NAPI poll counts, work done, and polls that used their whole
 * budget (the instance is rescheduled: sustained RX pressure).
 *
 * Raw tracepoint napi:napi_poll, TP_PROTO(struct napi_struct *napi,
 * int work, int budget) (include/trace/events/napi.h). net/core/dev.c
 * __napi_poll() fires it after every ->poll() with budget = the instance's
 * weight (64 by default); busy polling fires it too (napi_busy_loop, budget
 * BUSY_POLL_BUDGET). The per-CPU backlog NAPI that drains netif_rx()
 * (process_backlog) is polled through the same __napi_poll(), so loopback
 * traffic shows up under napi_id 0 / no device.
 */
#include "skewscope_core.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "skewscope_sock.h"
#include "napi.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct napi_key);
	__type(value, struct napi_value);
} napi_stats SEC(".maps");

static __always_inline int handle_napi_poll(const struct napi_struct *napi, int work,
					    int budget)
{
	struct napi_value *value, fresh = {};
	struct napi_key key = {};
	struct net_device *dev;

	if (bpf_core_field_exists(napi->napi_id))
		key.napi_id = BPF_CORE_READ(napi, napi_id);
	dev = BPF_CORE_READ(napi, dev);
	if (dev) {
		key.ifindex = BPF_CORE_READ(dev, ifindex);
		key.netns = dev_netns(dev);
	}
	if (work < 0)
		work = 0;

	value = bpf_map_lookup_elem(&napi_stats, &key);
	if (!value) {
		fresh.polls = 1;
		fresh.work_total = work;
		fresh.budget_exhausted = work >= budget;
		bpf_map_update_elem(&napi_stats, &key, &fresh, BPF_NOEXIST);
		return 0;
	}
	value->polls++;
	value->work_total += work;
	if (work >= budget)
		value->budget_exhausted++;
	return 0;
}

SEC("raw_tp/napi_poll")
int BPF_PROG(napi_poll, struct napi_struct *napi, int work, int budget)
{
	return handle_napi_poll(napi, work, budget);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
