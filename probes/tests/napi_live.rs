//! Privileged live tests of the napi probe (raw tracepoint napi:napi_poll)
//! against ground truth: packets pushed through the loopback backlog NAPI
//! and through a veth pair's own NAPI instances.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::netns::{VethPair, ADDR_A, ADDR_B, VETH_A, VETH_B};
use common::sockets::drain_udp;
use skewscope_probes::{NapiProbe, NapiStats};

const PAYLOAD: &[u8] = b"skewscope-napi";

fn sum_work(rows: &[NapiStats], pick: impl Fn(&NapiStats) -> bool) -> (u64, u64, u64) {
    rows.iter()
        .filter(|r| pick(r))
        .fold((0, 0, 0), |(p, w, e), r| {
            (p + r.polls, w + r.work_total, e + r.budget_exhausted)
        })
}

/// Loopback transmit ends in netif_rx() -> enqueue_to_backlog(); the
/// per-CPU backlog NAPI (process_backlog) is polled via __napi_poll(), which
/// fires napi_poll with no device and napi_id 0.
#[test]
fn loopback_traffic_is_polled_by_the_backlog_napi() {
    if !common::can_run_privileged("loopback_traffic_is_polled_by_the_backlog_napi") {
        return;
    }
    const DATAGRAMS: u64 = 200;
    let probe = NapiProbe::load().expect("load napi");
    let before = sum_work(&probe.read().expect("read"), |r| {
        r.ifindex == 0 && r.napi_id == 0
    });
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind");
    receiver.set_nonblocking(true).expect("nonblocking");
    let to = receiver.local_addr().expect("addr");
    let client = UdpSocket::bind("127.0.0.1:0").expect("client");
    let mut read = [0u64];
    for sent in 1..=DATAGRAMS {
        client.send_to(PAYLOAD, to).expect("send");
        drain_udp(
            std::slice::from_ref(&receiver),
            &mut read,
            sent,
            Duration::from_secs(5),
        );
    }
    assert_eq!(read[0], DATAGRAMS);
    let rows = probe.read().expect("read");
    let after = sum_work(&rows, |r| r.ifindex == 0 && r.napi_id == 0);
    let (polls, work, exhausted) = (after.0 - before.0, after.1 - before.1, after.2 - before.2);
    eprintln!(
        "backlog napi: {polls} polls, {work} packets, {exhausted} budget-exhausted for \
         {DATAGRAMS} loopback datagrams"
    );
    assert!(work >= DATAGRAMS, "backlog work {work} < {DATAGRAMS}");
    assert!(polls >= 1 && polls <= work);
    assert!(exhausted <= polls);
    assert!(rows.iter().all(|r| r.ifindex != 0 || r.netns == 0));
}

/// With GRO on the receiving end (and TSO off on the sender, so every skb is
/// eligible: drivers/net/veth.c veth_skb_is_eligible_for_gro), veth_xmit
/// queues skbs to the peer's per-queue ring and its own NAPI instance
/// (veth_poll) hands them to the stack: work == datagrams, exactly.
#[test]
fn veth_napi_work_equals_datagrams_sent() {
    if !common::can_run_in_netns("veth_napi_work_equals_datagrams_sent") {
        return;
    }
    const DATAGRAMS: u64 = 300;
    let pair = VethPair::new("napi", 2);
    for (ns, dev, args) in [
        (&pair.b, VETH_B, ["gro", "on"]),
        (&pair.a, VETH_A, ["tso", "off"]),
    ] {
        let dev = dev.to_owned();
        ns.run(move || {
            let status = std::process::Command::new("ethtool")
                .arg("-K")
                .arg(&dev)
                .args(args)
                .status()
                .expect("run ethtool");
            assert!(status.success(), "ethtool -K {dev} {args:?}");
        });
    }
    let netns_b = pair.b.inode();
    let ifindex_b = pair.b.ifindex(VETH_B);
    let receiver = pair.b.run(|| {
        let socket = UdpSocket::bind((ADDR_B, 0)).expect("bind receiver in b");
        socket.set_nonblocking(true).expect("nonblocking");
        socket
    });
    let to = receiver.local_addr().expect("addr");
    let client = pair
        .a
        .run(|| UdpSocket::bind((ADDR_A, 0)).expect("bind client in a"));

    let probe = NapiProbe::load().expect("load napi");
    let mut read = [0u64];
    for sent in 1..=DATAGRAMS {
        client.send_to(PAYLOAD, to).expect("send");
        if sent.is_multiple_of(16) {
            drain_udp(
                std::slice::from_ref(&receiver),
                &mut read,
                sent,
                Duration::from_secs(5),
            );
        }
    }
    drain_udp(
        std::slice::from_ref(&receiver),
        &mut read,
        DATAGRAMS,
        Duration::from_secs(5),
    );
    assert_eq!(read[0], DATAGRAMS);
    let rows = probe.read().expect("read");
    let veth_rows: Vec<&NapiStats> = rows
        .iter()
        .filter(|r| r.netns == netns_b && r.ifindex == ifindex_b)
        .collect();
    eprintln!("veth {VETH_B} napi rows: {veth_rows:#?}");
    let (polls, work, exhausted) =
        sum_work(&rows, |r| r.netns == netns_b && r.ifindex == ifindex_b);
    eprintln!("veth napi: {polls} polls, {work} packets, {exhausted} budget-exhausted for {DATAGRAMS} datagrams");
    assert_eq!(work, DATAGRAMS);
    assert!(polls >= 1);
    assert!(
        veth_rows.iter().all(|r| r.napi_id != 0),
        "veth NAPI is hashed"
    );
    drop(probe);
    drop(pair);
}

#[test]
fn drop_leaves_no_programs_links_or_maps() {
    if !common::can_run_privileged("napi drop_leaves_no_programs_links_or_maps") {
        return;
    }
    let probe = NapiProbe::load().expect("load napi");
    let program_ids = probe.program_ids().expect("program ids");
    let map_ids = probe.map_ids().expect("map ids");
    assert_eq!(program_ids.len(), 1);
    assert_eq!(map_ids.len(), 1, "napi_stats");
    assert_eq!(common::links_of(&program_ids).len(), 1);
    drop(probe);
    common::assert_released("napi", &program_ids, &map_ids);
}
