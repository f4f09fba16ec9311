//! One sock_diag dump datagram (netlink headers + inet_diag_msg + attributes).
#![no_main]
use libfuzzer_sys::fuzz_target;
use skewscope::sources::sock_diag::{parse_dump_datagram, Protocol};

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let _ = parse_dump_datagram(data, Protocol::Tcp, 1, &mut out);
    out.clear();
    let _ = parse_dump_datagram(data, Protocol::Udp, 1, &mut out);
});
