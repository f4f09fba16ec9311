//! /proc/softirqs: per-CPU softirq counts (NET_RX, NET_TX, ...).
