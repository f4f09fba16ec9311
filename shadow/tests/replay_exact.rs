//! Ground truth: a deterministic candidate (socket = source port % N,
//! tests/bpf/sport_mod.bpf.c) must give exactly the weights computed here,
//! for UDP and TCP, IPv4 and IPv6, and after a group size change.

mod common;

use common::{can_run_privileged, fixture, spread_trace};
use skewscope_shadow::{replay, FlowSample, Proto, ReplayOptions, ShadowReport, Verdict};

fn expected_sport_mod(flows: &[FlowSample], sockets: u32) -> Vec<u64> {
    let mut weights = vec![0u64; sockets as usize];
    for f in flows {
        weights[(u32::from(f.sport) % sockets) as usize] += f.weight;
    }
    weights
}

fn run(flows: &[FlowSample], sockets: u32) -> ShadowReport {
    let opts = ReplayOptions {
        sockets,
        ..ReplayOptions::default()
    };
    replay(flows, &[fixture("sport_mod")], &opts).expect("replay")
}

fn check(test: &str, proto: Proto, v6: bool, sockets: u32) {
    let flows = spread_trace(proto, v6, 300, 8053);
    let report = run(&flows, sockets);
    let total: u64 = flows.iter().map(|f| f.weight).sum();
    assert_eq!(report.policies.len(), 2);

    let default = &report.policies[0];
    assert_eq!(
        (default.policy.as_str(), default.verifier),
        ("default", Verdict::None)
    );
    assert_eq!(default.dropped_flows, 0, "{test}: {default:?}");
    assert_eq!(default.sockets.iter().map(|s| s.weight).sum::<u64>(), total);
    assert_eq!(
        default.sockets.iter().map(|s| s.flows).sum::<usize>(),
        flows.len()
    );

    let candidate = &report.policies[1];
    assert_eq!(
        candidate.verifier,
        Verdict::Accepted,
        "{test}: {:?}",
        candidate.error
    );
    let got: Vec<u64> = candidate.sockets.iter().map(|s| s.weight).collect();
    assert_eq!(got, expected_sport_mod(&flows, sockets), "{test}");
    assert_eq!(candidate.dropped_flows, 0);
    eprintln!(
        "{test}: default {:?} lsi {:.4}; sport_mod {:?} lsi {:.4} reduction {:?}; default {:?}, sport_mod {:?}",
        default.sockets.iter().map(|s| s.weight).collect::<Vec<_>>(),
        default.lsi.unwrap(),
        got,
        candidate.lsi.unwrap(),
        candidate.skew_reduction,
        default.replay_duration,
        candidate.replay_duration,
    );
}

#[test]
fn sport_mod_udp_ipv4_gives_exact_weights() {
    if can_run_privileged("sport_mod_udp_ipv4_gives_exact_weights") {
        check("udp/ipv4", Proto::Udp, false, 4);
    }
}

#[test]
fn sport_mod_udp_ipv6_gives_exact_weights() {
    if can_run_privileged("sport_mod_udp_ipv6_gives_exact_weights") {
        check("udp/ipv6", Proto::Udp, true, 4);
    }
}

#[test]
fn sport_mod_tcp_ipv4_gives_exact_weights() {
    if can_run_privileged("sport_mod_tcp_ipv4_gives_exact_weights") {
        check("tcp/ipv4", Proto::Tcp, false, 4);
    }
}

#[test]
fn sport_mod_tcp_ipv6_gives_exact_weights() {
    if can_run_privileged("sport_mod_tcp_ipv6_gives_exact_weights") {
        check("tcp/ipv6", Proto::Tcp, true, 4);
    }
}

#[test]
fn group_size_change_between_replays_4_then_6() {
    if !can_run_privileged("group_size_change_between_replays_4_then_6") {
        return;
    }
    let flows = spread_trace(Proto::Udp, false, 240, 9000);
    for sockets in [4, 6] {
        let report = run(&flows, sockets);
        assert_eq!(report.sockets, sockets);
        for policy in &report.policies {
            assert_eq!(policy.sockets.len(), sockets as usize, "{}", policy.policy);
        }
        let got: Vec<u64> = report.policies[1]
            .sockets
            .iter()
            .map(|s| s.weight)
            .collect();
        assert_eq!(
            got,
            expected_sport_mod(&flows, sockets),
            "{sockets} sockets"
        );
        eprintln!("{sockets} sockets: sport_mod {got:?}");
    }
}

#[test]
fn sport_mod_dual_stack_trace_gives_exact_weights() {
    if !can_run_privileged("sport_mod_dual_stack_trace_gives_exact_weights") {
        return;
    }
    for proto in [Proto::Udp, Proto::Tcp] {
        let mut flows = spread_trace(proto, false, 100, 7000);
        flows.extend(
            spread_trace(proto, true, 100, 7000)
                .into_iter()
                .map(|mut f| {
                    f.sport += 1;
                    f
                }),
        );
        let report = run(&flows, 5);
        let got: Vec<u64> = report.policies[1]
            .sockets
            .iter()
            .map(|s| s.weight)
            .collect();
        assert_eq!(got, expected_sport_mod(&flows, 5), "{proto}");
        assert_eq!(report.policies[0].dropped_flows, 0);
    }
}
