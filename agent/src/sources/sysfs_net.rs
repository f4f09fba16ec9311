//! /sys/class/net/DEV: queues, RPS/XPS masks, NUMA node, driver, MSI IRQs.
