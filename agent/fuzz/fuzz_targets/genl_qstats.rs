//! A netdev genetlink qstats-get reply datagram, then each message to queue stats.
#![no_main]
use libfuzzer_sys::fuzz_target;
use skewscope::sources::genl::decode_datagram;
use skewscope::sources::qstats::{queue_stats_from_message, NetdevMessage};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let seq = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]);
    for seq in [seq, 1] {
        if let Ok(batch) = decode_datagram::<NetdevMessage>(&data[4..], seq) {
            for m in &batch.messages {
                let _ = queue_stats_from_message(m);
            }
        }
    }
});
