//! /proc/net/softnet_stat, with and without the online CPU list (9..15 columns).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = skewscope::sources::softnet::parse(text, None);
        let _ = skewscope::sources::softnet::parse(text, Some(&[0, 1, 3, 7, 1151]));
        let _ = skewscope::sources::cpus::parse_cpulist(text);
        let _ = skewscope::sources::sysfs_net::parse_cpumask(text);
    }
});
