// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * caps: trivial programs used only by capability checks (probes/src/caps.rs).
 *
 * Each program does nothing but return; a check loads one through the
 * verifier, tries to attach it where relevant, and drops it again. The
 * attach targets are supplied at run time; the section names only carry the
 * program type (and the default target, for readability).
 */
#include "skewscope_core.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

/* Attached and detached in turn to every tracepoint a probe uses. */
SEC("raw_tp")
int caps_raw_tp(void *ctx)
{
	return 0;
}

/* BPF_PROG_TYPE_TRACING: needs BTF of the target and ftrace trampolines. */
SEC("fentry/reuseport_select_sock")
int BPF_PROG(caps_fentry)
{
	return 0;
}

/* BPF_PROG_TYPE_KPROBE: attach needs the kprobe PMU or kprobe_events. */
SEC("kprobe/reuseport_select_sock")
int caps_kprobe(void *ctx)
{
	return 0;
}

/* Loaded through the verifier only; never attached to any socket group. */
SEC("sk_reuseport")
int caps_reuseport(struct sk_reuseport_md *md)
{
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
