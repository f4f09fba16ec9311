//! /proc/stat: per-CPU softirq time.
