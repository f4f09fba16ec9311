//! Production groups are never touched: a production-like reuseport group in
//! the host namespace on 127.0.0.1, with the very 4-tuples the replay sends,
//! receives nothing during the replay, keeps the same distribution before
//! and after it (the kernel default, i.e. no program attached to it), and no
//! sk_reuseport program of the replay stays loaded.

mod common;

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use common::{can_run_privileged, fixture, sample};
use skewscope_shadow::{replay, Builtin, Candidate, Proto, ReplayOptions, Verdict};
use skewscope_test_support::sockets::reuseport_bound;
use socket2::{SockRef, Type};

const SOCKETS: usize = 4;
const FLOWS: usize = 400;

/// A socket of `ty` with SO_REUSEPORT bound to 127.0.0.1:port, non-blocking.
fn reuseport_socket(ty: Type, port: u16) -> OwnedFd {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    reuseport_bound(ty.nonblocking(), addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"))
}

fn udp_group() -> (Vec<UdpSocket>, u16) {
    let first = UdpSocket::from(reuseport_socket(Type::DGRAM, 0));
    let port = first.local_addr().unwrap().port();
    let mut group = vec![first];
    for _ in 1..SOCKETS {
        group.push(UdpSocket::from(reuseport_socket(Type::DGRAM, port)));
    }
    (group, port)
}

fn tcp_group() -> (Vec<TcpListener>, u16) {
    let listen = |fd: OwnedFd| {
        SockRef::from(&fd).listen(128).expect("listen");
        TcpListener::from(fd)
    };
    let first = listen(reuseport_socket(Type::STREAM, 0));
    let port = first.local_addr().unwrap().port();
    let mut group = vec![first];
    for _ in 1..SOCKETS {
        group.push(listen(reuseport_socket(Type::STREAM, port)));
    }
    (group, port)
}

/// Datagrams queued on each socket of the group right now.
fn drain_counts(group: &[UdpSocket]) -> Vec<usize> {
    let mut buf = [0u8; 64];
    group
        .iter()
        .map(|s| {
            let mut n = 0;
            while s.recv(&mut buf).is_ok() {
                n += 1;
            }
            n
        })
        .collect()
}

/// One datagram from every client; returns how many each group socket got.
fn send_round(clients: &[UdpSocket], group: &[UdpSocket], port: u16) -> Vec<usize> {
    for c in clients {
        c.send_to(b"production", (Ipv4Addr::LOCALHOST, port))
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut counts = vec![0; group.len()];
    while counts.iter().sum::<usize>() < clients.len() && Instant::now() < deadline {
        for (c, n) in counts.iter_mut().zip(drain_counts(group)) {
            *c += n;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    counts
}

fn sk_reuseport_program_ids() -> HashSet<u32> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| p.program_type() as u32 == BPF_PROG_TYPE_SK_REUSEPORT)
        .map(|p| p.id())
        .collect()
}

/// include/uapi/linux/bpf.h, enum bpf_prog_type.
const BPF_PROG_TYPE_SK_REUSEPORT: u32 = 21;

#[test]
fn production_group_is_untouched_by_replay() {
    if !can_run_privileged("production_group_is_untouched_by_replay") {
        return;
    }
    let (udp, udp_port) = udp_group();
    let (tcp, tcp_port) = tcp_group();
    let clients: Vec<UdpSocket> = (0..FLOWS)
        .map(|_| UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap())
        .collect();
    let before = send_round(&clients, &udp, udp_port);
    assert_eq!(before.iter().sum::<usize>(), FLOWS, "baseline {before:?}");

    // The replay sends the very same 4-tuples to the same address and port.
    let mut flows: Vec<_> = clients
        .iter()
        .map(|c| {
            let port = c.local_addr().unwrap().port();
            sample(Proto::Udp, "127.0.0.1", port, "127.0.0.1", udp_port, 1)
        })
        .collect();
    let sport_mod_counts = {
        let mut v = vec![0usize; SOCKETS];
        flows
            .iter()
            .for_each(|f| v[f.sport as usize % SOCKETS] += 1);
        v
    };
    // If sport_mod were attached to the production group, the test would see it.
    assert_ne!(
        before, sport_mod_counts,
        "test cannot tell default from sport_mod"
    );

    let candidates = [
        fixture("sport_mod"),
        Candidate::Builtin(Builtin::Cpu),
        fixture("drop_odd"),
    ];
    let opts = ReplayOptions {
        sockets: SOCKETS as u32,
        ..ReplayOptions::default()
    };
    let udp_report = replay(&flows, &candidates, &opts).unwrap();
    flows.iter_mut().for_each(|f| {
        f.proto = Proto::Tcp;
        f.dport = tcp_port;
    });
    let tcp_report = replay(&flows, &candidates, &opts).unwrap();

    for report in [&udp_report, &tcp_report] {
        let got: Vec<usize> = report.policies[1].sockets.iter().map(|s| s.flows).collect();
        assert_eq!(
            got, sport_mod_counts,
            "the replica saw the flows ({})",
            report.proto
        );
        assert!(report.policies[1..]
            .iter()
            .all(|p| p.verifier == Verdict::Accepted));
    }

    // Nothing reached the production sockets during the replays.
    assert_eq!(drain_counts(&udp), vec![0; SOCKETS]);
    for listener in &tcp {
        listener.set_nonblocking(true).unwrap();
        let err = listener.accept().unwrap_err();
        assert_eq!(
            err.kind(),
            io::ErrorKind::WouldBlock,
            "a replay connection reached a production listener"
        );
    }

    // The replay's programs are gone (the group holds its program until an
    // RCU grace period after its last socket closes: poll briefly).
    let ours: HashSet<u32> = [&udp_report, &tcp_report]
        .iter()
        .flat_map(|r| r.policies.iter().filter_map(|p| p.program_id))
        .collect();
    assert_eq!(ours.len(), 6, "program ids of the accepted candidates");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<u32> = sk_reuseport_program_ids()
            .intersection(&ours)
            .copied()
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replay programs still loaded: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Same 4-tuples, same kernel-default distribution: no program attached.
    let after = send_round(&clients, &udp, udp_port);
    assert_eq!(after, before, "production distribution changed");
    let tcp_addr: SocketAddr = (Ipv4Addr::LOCALHOST, tcp_port).into();
    drop(std::net::TcpStream::connect(tcp_addr).expect("production TCP group still accepts"));
    eprintln!(
        "production group: before {before:?}, after {after:?}; replica default {:?}, sport_mod {sport_mod_counts:?}; {} replay programs released",
        udp_report.policies[0].sockets.iter().map(|s| s.flows).collect::<Vec<_>>(),
        ours.len()
    );
}
