// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * softirq_time: per-CPU count and time of NET_RX and NET_TX softirq runs.
 *
 * Attached as raw tracepoints (BPF_PROG_TYPE_RAW_TRACEPOINT) to
 * irq:softirq_entry and irq:softirq_exit, whose TP_PROTO is
 * (unsigned int vec_nr) (include/trace/events/irq.h). Raw tracepoints need
 * no tracefs and skip the perf trace buffer copy of classic tracepoints.
 *
 * kernel/softirq.c handle_softirqs() does kstat_incr_softirqs_this_cpu()
 * right before trace_softirq_entry(), so net_rx_count counts the same runs
 * as the NET_RX row of /proc/softirqs (minus a run in flight at attach).
 *
 * Softirq vectors never nest on one CPU (handle_softirqs runs them one after
 * the other with softirqs disabled), so one start slot per (CPU, vector) in a
 * per-CPU array is enough and no atomics are needed.
 */
#include "skewscope_core.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "softirq_time.h"

/* Start timestamp of the softirq run in progress, per CPU, keyed by vec_nr. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NR_SOFTIRQS);
	__type(key, u32);
	__type(value, u64);
} softirq_start SEC(".maps");

/* Totals per CPU; userspace reads key 0 and computes deltas. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct softirq_time_stats);
} softirq_stats SEC(".maps");

static __always_inline int is_net_softirq(unsigned int vec_nr)
{
	return vec_nr == NET_RX_SOFTIRQ || vec_nr == NET_TX_SOFTIRQ;
}

static __always_inline int handle_entry(unsigned int vec_nr)
{
	u32 key = vec_nr;
	u64 *start_ns;

	if (!is_net_softirq(vec_nr))
		return 0;
	start_ns = bpf_map_lookup_elem(&softirq_start, &key);
	if (!start_ns)
		return 0;
	*start_ns = bpf_ktime_get_ns();
	return 0;
}

static __always_inline int handle_exit(unsigned int vec_nr)
{
	struct softirq_time_stats *stats;
	u32 key = vec_nr, zero = 0;
	u64 *start_ns, delta_ns;

	if (!is_net_softirq(vec_nr))
		return 0;
	start_ns = bpf_map_lookup_elem(&softirq_start, &key);
	/* No start seen: the run began before the entry program attached. */
	if (!start_ns || *start_ns == 0)
		return 0;
	delta_ns = bpf_ktime_get_ns() - *start_ns;
	*start_ns = 0;

	stats = bpf_map_lookup_elem(&softirq_stats, &zero);
	if (!stats)
		return 0;
	if (vec_nr == NET_RX_SOFTIRQ) {
		stats->net_rx_count++;
		stats->net_rx_ns += delta_ns;
	} else {
		stats->net_tx_count++;
		stats->net_tx_ns += delta_ns;
	}
	return 0;
}

SEC("raw_tp/softirq_entry")
int BPF_PROG(softirq_entry, unsigned int vec_nr)
{
	return handle_entry(vec_nr);
}

SEC("raw_tp/softirq_exit")
int BPF_PROG(softirq_exit, unsigned int vec_nr)
{
	return handle_exit(vec_nr);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
