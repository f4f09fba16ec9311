//! /proc/irq/N/smp_affinity_list and effective_affinity_list.
