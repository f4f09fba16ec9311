// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * rx for kernels before 5.12, whose verifier refuses the atomic exchange
 * instructions ("BPF_STX uses reserved fields"): the same programs and maps,
 * built at the default ISA without BPF_XCHG/BPF_CMPXCHG (see RX_NO_XCHG in
 * rx.bpf.c). src/rx.rs loads it when the kernel refuses an exchange
 * (caps::atomic_exchange_supported).
 */
#define RX_NO_XCHG 1
#include "rx.bpf.c"
