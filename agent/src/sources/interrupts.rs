//! /proc/interrupts: per-IRQ per-CPU counts, chip, hwirq and action names.
