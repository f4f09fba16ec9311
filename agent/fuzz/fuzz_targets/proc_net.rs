//! /proc/net/{tcp,udp}{,6}: the sock_diag fallback.
#![no_main]
use libfuzzer_sys::fuzz_target;
use skewscope::sources::sock_diag::{parse_proc_net, Protocol};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_proc_net(text, Protocol::Tcp, 1);
        let _ = parse_proc_net(text, Protocol::Udp, 1);
    }
});
