//! Rough per-datagram cost of the probes, measured from userspace without
//! touching kernel.bpf_stats_enabled: times a loopback UDP ping (send one
//! datagram, read it) with no probe loaded, with every probe loaded and
//! watching the port, and with none again. Needs root. A manual aid; on a
//! busy or small machine the numbers are noisy, so it alternates five runs
//! of each and compares the fastest (least disturbed) ones.
//!
//! cargo run --release -p skewscope-probes --example overhead [datagrams] [probe]
//!
//! `probe` is one of listener_events, rx, rx-unwatched (queue counts only),
//! napi, drops, softirq_time, or all (the default).

use std::net::UdpSocket;
use std::time::Instant;

use skewscope_probes::{
    DropsProbe, ListenerEventsProbe, NapiProbe, RxConfig, RxProbe, SoftirqTimeProbe,
};

const IPPROTO_UDP: u8 = 17;

/// Nanoseconds per send + recv of one small datagram over loopback.
fn ping_ns(receiver: &UdpSocket, sender: &UdpSocket, datagrams: u32) -> f64 {
    let to = receiver.local_addr().expect("addr");
    let mut buf = [0u8; 64];
    let start = Instant::now();
    for _ in 0..datagrams {
        sender.send_to(b"overhead", to).expect("send");
        receiver.recv(&mut buf).expect("recv");
    }
    start.elapsed().as_nanos() as f64 / f64::from(datagrams)
}

/// Loads the selected probes, watching `port`; dropping the result unloads.
fn load(which: &str, port: u16) -> Vec<Box<dyn std::any::Any>> {
    let all = which == "all";
    let mut loaded: Vec<Box<dyn std::any::Any>> = Vec::new();
    if all || which == "listener_events" {
        let mut probe = ListenerEventsProbe::load().expect("listener_events");
        probe.set_watched_ports(&[port]).expect("watch");
        loaded.push(Box::new(probe));
    }
    if which == "rx-unwatched" {
        loaded.push(Box::new(RxProbe::load(RxConfig::default()).expect("rx")));
    }
    if all || which == "rx" {
        let mut probe = RxProbe::load(RxConfig::default()).expect("rx");
        probe.set_watched(&[(IPPROTO_UDP, port)]).expect("watch");
        loaded.push(Box::new(probe));
    }
    if all || which == "napi" {
        loaded.push(Box::new(NapiProbe::load().expect("napi")));
    }
    if all || which == "drops" {
        let mut probe = DropsProbe::load().expect("drops");
        probe.set_watched(&[(IPPROTO_UDP, port)]).expect("watch");
        loaded.push(Box::new(probe));
    }
    if all || which == "softirq_time" {
        loaded.push(Box::new(SoftirqTimeProbe::load().expect("softirq_time")));
    }
    assert!(!loaded.is_empty(), "unknown probe {which}");
    loaded
}

fn main() {
    let datagrams: u32 = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("datagram count"))
        .unwrap_or(100_000);
    let which = std::env::args().nth(2).unwrap_or_else(|| "all".to_owned());
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let sender = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = receiver.local_addr().expect("addr").port();
    ping_ns(&receiver, &sender, datagrams / 10); // warm up

    let mut without = Vec::new();
    let mut with = Vec::new();
    for _round in 0..5 {
        without.push(ping_ns(&receiver, &sender, datagrams));

        let loaded = load(&which, port);
        with.push(ping_ns(&receiver, &sender, datagrams));
        drop(loaded);
    }
    without.push(ping_ns(&receiver, &sender, datagrams));
    let fastest = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (base, probed) = (fastest(&without), fastest(&with));
    println!("datagrams per run: {datagrams}");
    println!("no probes:  {without:.0?} ns/datagram, fastest {base:.0}");
    println!("{which}: {with:.0?} ns/datagram, fastest {probed:.0}");
    println!(
        "probe cost: {:.0} ns per datagram ({:+.1}%)",
        probed - base,
        (probed - base) / base * 100.0
    );
}
