//! The small sysfs and procfs text files: CPU lists and masks, /sys/kernel/irq/N/
//! per_cpu_count (the CPU count from the first byte) and actions, /proc/PID/cgroup,
//! /proc/net/sockstat{,6}.
#![no_main]
use libfuzzer_sys::fuzz_target;
use skewscope::sources::{cpus, owners, sock_diag, sys_irq, sysfs_net};

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let _ = cpus::parse_cpulist(text);
    let _ = sysfs_net::parse_cpumask(text);
    let _ = sys_irq::parse_per_cpu_count(text, n as usize * 8);
    let _ = sys_irq::parse_actions(text);
    let _ = owners::parse_cgroup(text);
    let _ = sock_diag::parse_sockstat_inuse(text, "UDP6");
});
