//! An RTM_GETLINK dump datagram: each message decoded as rtnetlink's connection does
//! (NetlinkMessage<RouteNetlinkMessage>), each RTM_NEWLINK to the fields the agent keeps.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netlink_packet_core::{NetlinkBuffer, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use skewscope::sources::links::link_from_message;

fuzz_target!(|data: &[u8]| {
    let mut offset = 0;
    while offset < data.len() {
        let Ok(header) = NetlinkBuffer::new_checked(&data[offset..]) else {
            return;
        };
        let len = header.length() as usize;
        let this = &data[offset..offset + len];
        offset += (len + 3) & !3;
        if let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(this) {
            if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) = msg.payload
            {
                let _ = link_from_message(&link);
            }
        }
    }
});
