//! `ethtool -S` text and the per-queue name classifier over what it yields.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(stats) = skewscope::sources::ethtool_stats::parse_ethtool_s(text) {
            let _ = skewscope::sources::ethtool_stats::rx_queue_packets(&stats);
        }
    }
});
