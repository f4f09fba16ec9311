//! ETHTOOL_MSG_RSS_GET: a whole reply datagram and a bare genetlink payload.
#![no_main]
use libfuzzer_sys::fuzz_target;
use skewscope::sources::ethtool_rss::{parse_rss_reply, EthtoolRssMessage};
use skewscope::sources::genl::decode_datagram;

fuzz_target!(|data: &[u8]| {
    let _ = parse_rss_reply(data);
    let _ = decode_datagram::<EthtoolRssMessage>(data, 1);
});
