//! Privileged live tests of the selection probe (fexit, else kprobe + kretprobe, on
//! reuseport_select_sock). Which hook the running kernel takes has independent oracles:
//! caps' fentry check (the same BPF trampolines fexit uses) and the kprobe PMU with a
//! real kprobe attach. Where a hook attaches, its counts are checked against what each
//! socket of a UDP SO_REUSEPORT group received and each recorded hash against the
//! kernel's rule (reciprocal_scale(hash, num_socks) is the socket's slot, the order the
//! group was bound in). Where none does (this lab's 6.18: trampolines refused with
//! EPERM, kprobes compiled out), the probe must say so with both reasons.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::sockets::{drain_udp, udp_reuseport_group};
use skewscope_probes::{
    check_fentry, check_kprobe, reciprocal_scale, ProbeError, SelectionChoice, SelectionHook,
    SelectionProbe,
};

const GROUP: usize = 4;
const CLIENTS: usize = 32;
const ROUNDS: usize = 4;

fn expected(hook: SelectionHook) -> bool {
    match hook {
        SelectionHook::Fexit => check_fentry("reuseport_select_sock").available,
        SelectionHook::Kprobe => check_kprobe().available,
    }
}

/// Sends CLIENTS × ROUNDS datagrams to a fresh group and checks the probe's
/// per-socket selections and hashes against the sockets' receive counts.
fn assert_exact(probe: &SelectionProbe) {
    let group = udp_reuseport_group(GROUP);
    let addr = group[0].local_addr().expect("group addr");
    let inodes: Vec<u64> = group.iter().map(common::socket_inode).collect();
    let clients: Vec<UdpSocket> = (0..CLIENTS)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind client"))
        .collect();
    let mut received = vec![0u64; GROUP];
    let mut sent = 0u64;
    for _ in 0..ROUNDS {
        for client in &clients {
            client.send_to(b"skewscope", addr).expect("send");
            sent += 1;
        }
        drain_udp(&group, &mut received, sent, Duration::from_secs(5));
    }
    assert_eq!(received.iter().sum::<u64>(), sent, "every datagram read");

    let read = probe.read().expect("read selections");
    let selections: Vec<u64> = inodes
        .iter()
        .map(|inode| {
            read.sockets
                .iter()
                .find(|s| s.inode == *inode)
                .map_or(0, |s| s.selections)
        })
        .collect();
    assert_eq!(
        selections,
        received,
        "selections per socket via {}",
        probe.hook().name()
    );
    for (slot, inode) in inodes.iter().enumerate() {
        let Some(s) = read.sockets.iter().find(|s| s.inode == *inode) else {
            continue;
        };
        assert_eq!(s.by_hash, s.selections, "no selector: every choice by hash");
        assert_eq!(s.non_syn, 0, "UDP has no TCP segments");
        assert_eq!(s.index, Some(slot as u32), "slot of socket {inode}");
        assert_eq!(s.num_socks, Some(GROUP as u32));
        let hashes: Vec<_> = read.hashes.iter().filter(|h| h.inode == *inode).collect();
        assert_eq!(
            hashes.iter().map(|h| h.selections).sum::<u64>(),
            s.selections,
            "hash counts add up to the socket's selections"
        );
        for h in hashes {
            assert_eq!(
                reciprocal_scale(h.hash, GROUP as u32),
                slot as u32,
                "hash {:#x} picks slot {slot}",
                h.hash
            );
        }
    }
    assert_eq!(read.unmatched, 0);
}

#[test]
fn each_hook_counts_exactly_or_is_refused_with_its_reason() {
    if !common::can_run_privileged("each_hook_counts_exactly_or_is_refused_with_its_reason") {
        return;
    }
    for hook in [SelectionHook::Fexit, SelectionHook::Kprobe] {
        match (
            SelectionProbe::load(SelectionChoice::Only(hook)),
            expected(hook),
        ) {
            (Ok(probe), true) => {
                assert_eq!(probe.hook(), hook);
                assert_exact(&probe);
            }
            (Err(ProbeError::Unavailable { detail, .. }), false) => {
                assert!(detail.starts_with(hook.name()), "{detail}");
            }
            (Ok(_), false) => panic!("{} attached though caps says refused", hook.name()),
            (Err(e), _) => panic!("{}: {e}", hook.name()),
        }
    }
}

#[test]
fn auto_takes_fexit_first_else_kprobe_else_reports_both_refusals() {
    if !common::can_run_privileged("auto_takes_fexit_first_else_kprobe_else_reports_both_refusals")
    {
        return;
    }
    let (fexit, kprobe) = (
        expected(SelectionHook::Fexit),
        expected(SelectionHook::Kprobe),
    );
    match SelectionProbe::load(SelectionChoice::Auto) {
        Ok(probe) if fexit => {
            assert_eq!(probe.hook(), SelectionHook::Fexit);
            assert!(probe.refused().is_empty());
        }
        Ok(probe) if kprobe => {
            assert_eq!(probe.hook(), SelectionHook::Kprobe);
            assert!(
                probe.refused()[0].starts_with("fexit/"),
                "{:?}",
                probe.refused()
            );
        }
        Ok(probe) => panic!("{} attached though caps says refused", probe.hook().name()),
        Err(ProbeError::Unavailable { detail, .. }) => {
            assert!(
                !fexit && !kprobe,
                "refused though caps says it attaches: {detail}"
            );
            // Both reasons, in the order tried.
            let (first, second) = detail
                .split_once("; kprobe+kretprobe/reuseport_select_sock: ")
                .unwrap_or_else(|| panic!("no kprobe reason: {detail}"));
            assert!(
                first.starts_with("fexit/reuseport_select_sock: "),
                "{detail}"
            );
            assert!(!second.is_empty());
        }
        Err(e) => panic!("{e}"),
    }
}
