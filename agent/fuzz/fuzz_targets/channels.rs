//! ETHTOOL_MSG_CHANNELS_GET: a whole dump datagram (as the `ethtool` crate's connection
//! decodes it) and a bare genetlink payload, each reply to channel counts.
#![no_main]
use libfuzzer_sys::fuzz_target;
use skewscope::sources::channels::{channels_from_reply, parse_channels_reply};
use skewscope::sources::genl::decode_datagram;

fuzz_target!(|data: &[u8]| {
    let _ = parse_channels_reply(data);
    if let Ok(batch) = decode_datagram::<ethtool::EthtoolMessage>(data, 1) {
        for m in &batch.messages {
            let _ = channels_from_reply(&m.nlas);
        }
    }
});
