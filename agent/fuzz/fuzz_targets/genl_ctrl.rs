//! A CTRL_CMD_GETFAMILY reply datagram (how the agent finds the ethtool and netdev
//! families) to a family id and its operations.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netlink_packet_generic::ctrl::GenlCtrl;
use skewscope::sources::genl::{decode_datagram, family_from_replies, CheckedCtrl};

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = decode_datagram::<CheckedCtrl>(data, 1) {
        let replies: Vec<GenlCtrl> = batch.messages.into_iter().map(|m| m.0).collect();
        let _ = family_from_replies(&replies);
    }
});
