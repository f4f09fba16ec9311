/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Minimal CO-RE header for the skewscope probes.
 *
 * Instead of a generated vmlinux.h (~3 MB), this declares only the kernel
 * types and fields the probes actually touch. Every record below is compiled
 * with preserve_access_index, so field accesses become CO-RE relocations that
 * libbpf/aya resolve against the running kernel's BTF (/sys/kernel/btf/vmlinux)
 * at load time: field order and layout here do not need to match any kernel.
 *
 * Rule for additions: add a field only when a probe reads it, and cite the
 * kernel version/commit when the field is renamed or optional (guard such
 * reads with bpf_core_field_exists()).
 */
#ifndef __SKEWSCOPE_CORE_H
#define __SKEWSCOPE_CORE_H

/* UAPI types (__u32, __u64, ...) and program context types
 * (struct bpf_raw_tracepoint_args, struct sk_reuseport_md, enum sk_action).
 */
#include <linux/types.h>
#include <linux/bpf.h>

typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __s64 s64;

/*
 * Softirq vector numbers: an anonymous enum in include/linux/interrupt.h, so
 * there is no named type to relocate with bpf_core_enum_value(). The values
 * have been stable since NET_TX/NET_RX became softirqs (v2.6); both the
 * irq:softirq_entry/exit tracepoints and /proc/softirqs use these indices.
 */
#define HI_SOFTIRQ 0
#define TIMER_SOFTIRQ 1
#define NET_TX_SOFTIRQ 2
#define NET_RX_SOFTIRQ 3
#define NR_SOFTIRQS 10

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

/*
 * Kernel records read with CO-RE go here. The current probes only read
 * scalar tracepoint arguments (softirq vec_nr), so no record is needed yet;
 * opaque forward declarations let programs name pointer arguments without
 * pulling in any layout.
 */
struct sock;
struct sk_buff;

#pragma clang attribute pop

#endif /* __SKEWSCOPE_CORE_H */
