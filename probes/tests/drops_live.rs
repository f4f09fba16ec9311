//! Privileged live tests of the drops probe (raw tracepoints skb:kfree_skb
//! and tcp:tcp_send_reset) against ground truth: datagrams and connection
//! attempts sent to ports nobody listens on.

mod common;

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use common::netns::Netns;
use skewscope_probes::{DropCount, DropsProbe, ResetCount};

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// A loopback port that was just free (bound, then released).
fn closed_udp_addr(bind: &str) -> SocketAddr {
    UdpSocket::bind(bind)
        .expect("bind")
        .local_addr()
        .expect("addr")
}

fn closed_tcp_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
}

fn drops_for(drops: &[DropCount], protocol: u8, port: u16) -> Vec<&DropCount> {
    drops
        .iter()
        .filter(|d| d.protocol == protocol && d.port == port)
        .collect()
}

/// __udp4_lib_rcv()/__udp6_lib_rcv() find no socket, answer with ICMP port
/// unreachable and free the skb with SKB_DROP_REASON_NO_SOCKET.
#[test]
fn udp_to_closed_port_counts_no_socket_drops() {
    if !common::needs_probes("udp_to_closed_port_counts_no_socket_drops")
        .tool("ip", &["-V"])
        .ipv6()
        .met()
    {
        return;
    }
    const DATAGRAMS_V4: u64 = 50;
    const DATAGRAMS_V6: u64 = 20;
    // A namespace of its own with IPv6 on lo, whatever the host's lo has.
    let ns = Netns::with_ipv6("drops");
    let (closed, closed6, unwatched, client, client6) = ns.run(|| {
        (
            closed_udp_addr("127.0.0.1:0"),
            closed_udp_addr("[::1]:0"),
            closed_udp_addr("127.0.0.1:0"),
            UdpSocket::bind("127.0.0.1:0").expect("client"),
            UdpSocket::bind("[::1]:0").expect("client v6"),
        )
    });
    let mut probe = DropsProbe::load().expect("load drops");
    probe
        .set_watched(&[(IPPROTO_UDP, closed.port()), (IPPROTO_UDP, closed6.port())])
        .expect("watch");

    // Unconnected senders: the ICMP errors coming back are not reported to
    // them, so every send succeeds.
    for _ in 0..DATAGRAMS_V4 {
        client.send_to(b"nobody home", closed).expect("send");
    }
    for _ in 0..5 {
        client.send_to(b"not watched", unwatched).expect("send");
    }
    for _ in 0..DATAGRAMS_V6 {
        client6.send_to(b"nobody home", closed6).expect("send");
    }

    let drops = probe.read_drops().expect("read drops");
    eprintln!("drops: {drops:#?}");
    for (addr, sent) in [(closed, DATAGRAMS_V4), (closed6, DATAGRAMS_V6)] {
        let rows = drops_for(&drops, IPPROTO_UDP, addr.port());
        assert_eq!(rows.len(), 1, "one reason for {addr}: {rows:?}");
        assert_eq!(rows[0].count, sent, "drops to {addr}");
        assert_eq!(rows[0].reason_name.as_deref(), Some("NO_SOCKET"));
        assert!(rows[0].reason.is_some());
    }
    assert!(drops_for(&drops, IPPROTO_UDP, unwatched.port()).is_empty());
    assert!(probe.read_resets().expect("read resets").is_empty());
}

/// tcp_v4_rcv() finds no socket for a SYN: it answers with a RST
/// (tcp_v4_send_reset(NULL, skb, SK_RST_REASON_NO_SOCKET), traced with a
/// NULL sk since 6.10) and drops the SYN with SKB_DROP_REASON_NO_SOCKET.
#[test]
fn tcp_connect_to_closed_port_counts_resets_and_drops() {
    if !common::can_run_privileged("tcp_connect_to_closed_port_counts_resets_and_drops") {
        return;
    }
    const ATTEMPTS: u64 = 10;
    let closed = closed_tcp_addr();
    let mut probe = DropsProbe::load().expect("load drops");
    probe
        .set_watched(&[(IPPROTO_TCP, closed.port())])
        .expect("watch");
    for _ in 0..ATTEMPTS {
        let err = TcpStream::connect_timeout(&closed, Duration::from_secs(5))
            .expect_err("nobody listens");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    }
    let resets = probe.read_resets().expect("read resets");
    eprintln!("resets: {resets:#?}");
    let rows: Vec<&ResetCount> = resets.iter().filter(|r| r.port == closed.port()).collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].count, ATTEMPTS);
    assert_eq!(rows[0].reason_name.as_deref(), Some("NO_SOCKET"));

    let drops = probe.read_drops().expect("read drops");
    eprintln!("drops: {drops:#?}");
    let rows = drops_for(&drops, IPPROTO_TCP, closed.port());
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].count, ATTEMPTS, "one dropped SYN per attempt");
    assert_eq!(rows[0].reason_name.as_deref(), Some("NO_SOCKET"));
}

#[test]
fn nothing_is_counted_without_watched_ports() {
    if !common::can_run_privileged("nothing_is_counted_without_watched_ports") {
        return;
    }
    let closed = closed_udp_addr("127.0.0.1:0");
    let probe = DropsProbe::load().expect("load drops");
    let client = UdpSocket::bind("127.0.0.1:0").expect("client");
    for _ in 0..10 {
        client.send_to(b"x", closed).expect("send");
    }
    assert!(probe.read_drops().expect("drops").is_empty());
}

#[test]
fn drop_leaves_no_programs_links_or_maps() {
    if !common::can_run_privileged("drops drop_leaves_no_programs_links_or_maps") {
        return;
    }
    let probe = DropsProbe::load().expect("load drops");
    let program_ids = probe.program_ids().expect("program ids");
    let map_ids = probe.map_ids().expect("map ids");
    assert_eq!(program_ids.len(), 2);
    assert_eq!(map_ids.len(), 3, "watched + drop_counts + reset_counts");
    assert_eq!(common::links_of(&program_ids).len(), 2);
    drop(probe);
    common::assert_released("drops", &program_ids, &map_ids);
}
