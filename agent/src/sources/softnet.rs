//! /proc/net/softnet_stat: per-CPU backlog counters (9 to 15 columns).
