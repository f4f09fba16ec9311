//! The built-in policies, dropped-flow accounting, and rejected candidates.

mod common;

use common::{can_run_privileged, fixture, sample, spread_trace};
use skewscope_shadow::{replay, Builtin, Candidate, Proto, ReplayOptions, Verdict};

fn allowed_cpus() -> Vec<u32> {
    // Pid 0: this thread.
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
    (0..nix::sched::CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .map(|c| c as u32)
        .collect()
}

#[test]
fn builtin_cpu_follows_the_recorded_rx_cpu() {
    if !can_run_privileged("builtin_cpu_follows_the_recorded_rx_cpu") {
        return;
    }
    let cpus = allowed_cpus();
    for proto in [Proto::Udp, Proto::Tcp] {
        let mut flows = spread_trace(proto, false, 200, 5353);
        for (i, f) in flows.iter_mut().enumerate() {
            f.rx_cpu = Some(cpus[i % cpus.len()]);
        }
        let sockets = 4;
        let mut expected = vec![0u64; sockets];
        for f in &flows {
            expected[f.rx_cpu.unwrap() as usize % sockets] += f.weight;
        }
        let opts = ReplayOptions {
            sockets: sockets as u32,
            ..ReplayOptions::default()
        };
        let report = replay(&flows, &[Candidate::Builtin(Builtin::Cpu)], &opts).unwrap();
        assert_eq!(report.cpu_pinning.exact, flows.len());
        // The locality self-check (SO_INCOMING_CPU) found the premise intact.
        assert!(report.notes.is_empty(), "{:?}", report.notes);
        let cpu = &report.policies[1];
        assert_eq!(
            (cpu.policy.as_str(), cpu.verifier),
            ("builtin:cpu", Verdict::Accepted),
            "{:?}",
            cpu.error
        );
        let got: Vec<u64> = cpu.sockets.iter().map(|s| s.weight).collect();
        assert_eq!(got, expected, "{proto} over CPUs {cpus:?}");
        eprintln!("builtin:cpu {proto} over CPUs {cpus:?}: {got:?}");
    }
}

#[test]
fn builtin_weighted_honours_zero_and_nonzero_weights() {
    if !can_run_privileged("builtin_weighted_honours_zero_and_nonzero_weights") {
        return;
    }
    // Equal-weight flows so the shares estimate the hash-space split.
    let mut flows = spread_trace(Proto::Udp, false, 2000, 8125);
    flows.iter_mut().for_each(|f| f.weight = 1);
    let opts = ReplayOptions {
        sockets: 4,
        weights: Some(vec![1, 0, 0, 3]),
        ..ReplayOptions::default()
    };
    let report = replay(&flows, &[Candidate::Builtin(Builtin::Weighted)], &opts).unwrap();
    let weighted = &report.policies[1];
    assert_eq!(weighted.verifier, Verdict::Accepted, "{:?}", weighted.error);
    let shares: Vec<f64> = weighted.sockets.iter().map(|s| s.share).collect();
    assert_eq!((shares[1], shares[2]), (0.0, 0.0), "{shares:?}");
    // 2000 flows: binomial std of a 0.25 share is ~0.01; allow 5 sigma.
    assert!(
        (shares[0] - 0.25).abs() < 0.05 && (shares[3] - 0.75).abs() < 0.05,
        "{shares:?}"
    );
    eprintln!("builtin:weighted 1,0,0,3: shares {shares:?}");
}

#[test]
fn builtin_isolate_heavy_gives_the_heavy_flows_their_own_sockets() {
    if !can_run_privileged("builtin_isolate_heavy_gives_the_heavy_flows_their_own_sockets") {
        return;
    }
    for proto in [Proto::Udp, Proto::Tcp] {
        let mut flows = spread_trace(proto, false, 400, 443);
        flows.iter_mut().for_each(|f| f.weight = 10);
        flows.push(sample(
            proto,
            "192.0.2.77",
            41000,
            "10.255.0.9",
            443,
            50_000,
        ));
        flows.push(sample(
            proto,
            "192.0.2.78",
            41001,
            "10.255.0.9",
            443,
            40_000,
        ));
        let opts = ReplayOptions {
            sockets: 4,
            heavy_flows: 2,
            ..ReplayOptions::default()
        };
        let report = replay(&flows, &[Candidate::Builtin(Builtin::IsolateHeavy)], &opts).unwrap();
        let isolate = &report.policies[1];
        assert_eq!(isolate.verifier, Verdict::Accepted, "{:?}", isolate.error);
        let got: Vec<(u64, usize)> = isolate
            .sockets
            .iter()
            .map(|s| (s.weight, s.flows))
            .collect();
        assert_eq!(got[0], (50_000, 1), "{proto}: {got:?}");
        assert_eq!(got[1], (40_000, 1), "{proto}: {got:?}");
        assert_eq!(got[2].1 + got[3].1, 400, "{proto}: {got:?}");
        assert!(
            got[2].1 > 100 && got[3].1 > 100,
            "{proto}: light flows hashed over both: {got:?}"
        );
        eprintln!(
            "isolate-heavy {proto}: {got:?}; default max share {:.3}, isolate max share {:.3}",
            report.policies[0].max_share.unwrap(),
            isolate.max_share.unwrap()
        );
    }
}

#[test]
fn builtin_random_delivers_every_flow() {
    if !can_run_privileged("builtin_random_delivers_every_flow") {
        return;
    }
    let flows = spread_trace(Proto::Udp, true, 400, 1234);
    let report = replay(
        &flows,
        &[Candidate::Builtin(Builtin::Random)],
        &ReplayOptions::default(),
    )
    .unwrap();
    let random = &report.policies[1];
    assert_eq!(random.verifier, Verdict::Accepted, "{:?}", random.error);
    assert_eq!(random.sockets.iter().map(|s| s.flows).sum::<usize>(), 400);
    assert!(
        random.sockets.iter().all(|s| s.flows > 50),
        "{:?}",
        random.sockets
    );
}

#[test]
fn dropped_flows_are_accounted_for_udp_and_tcp() {
    if !can_run_privileged("dropped_flows_are_accounted_for_udp_and_tcp") {
        return;
    }
    for proto in [Proto::Udp, Proto::Tcp] {
        let flows = spread_trace(proto, false, 300, 6000);
        let opts = ReplayOptions {
            sockets: 3,
            ..ReplayOptions::default()
        };
        let started = std::time::Instant::now();
        let report = replay(&flows, &[fixture("drop_odd")], &opts).unwrap();
        let elapsed = started.elapsed();
        let drop_odd = &report.policies[1];
        assert_eq!(drop_odd.verifier, Verdict::Accepted, "{:?}", drop_odd.error);
        let mut expected = vec![0u64; 3];
        let (mut dropped_flows, mut dropped_weight) = (0, 0);
        for f in &flows {
            if f.sport % 2 == 1 {
                dropped_flows += 1;
                dropped_weight += f.weight;
            } else {
                expected[(f.sport as usize / 2) % 3] += f.weight;
            }
        }
        let got: Vec<u64> = drop_odd.sockets.iter().map(|s| s.weight).collect();
        assert_eq!(got, expected, "{proto}");
        assert_eq!(
            (drop_odd.dropped_flows, drop_odd.dropped_weight),
            (dropped_flows, dropped_weight),
            "{proto}"
        );
        assert!(drop_odd.notes.is_empty(), "{proto}: {:?}", drop_odd.notes);
        eprintln!(
            "drop_odd {proto}: {got:?}, dropped {dropped_flows} flows; replay {elapsed:?} (default {:?}, drop_odd {:?})",
            report.policies[0].replay_duration, drop_odd.replay_duration
        );
    }
}

#[test]
fn rejected_candidates_are_reported_and_the_others_still_replayed() {
    if !can_run_privileged("rejected_candidates_are_reported_and_the_others_still_replayed") {
        return;
    }
    let flows = spread_trace(Proto::Udp, false, 50, 5000);
    let candidates = [
        fixture("reject_oob"),
        fixture("no_socks"),
        Candidate::Object("/nonexistent/selector.o".into()),
        fixture("sport_mod"),
    ];
    let report = replay(&flows, &candidates, &ReplayOptions::default()).unwrap();
    let names: Vec<&str> = report.policies.iter().map(|p| p.policy.as_str()).collect();
    assert_eq!(names.len(), 5);
    assert_eq!(names[0], "default");

    let oob = &report.policies[1];
    assert_eq!(oob.verifier, Verdict::Rejected);
    let error = oob.error.as_deref().unwrap();
    assert!(
        error.starts_with("verifier rejected the program"),
        "{error}"
    );
    assert!(
        error.contains("invalid access to packet"),
        "verifier log excerpt missing: {error}"
    );
    assert!(oob.sockets.is_empty() && oob.lsi.is_none() && oob.skew_reduction.is_none());
    eprintln!("reject_oob error:\n{error}");

    let no_socks = &report.policies[2];
    assert_eq!(no_socks.verifier, Verdict::Rejected);
    let error = no_socks.error.as_deref().unwrap();
    assert!(
        error.starts_with("contract violation: no map named `socks`") && error.contains("sockets"),
        "{error}"
    );
    eprintln!("no_socks error: {error}");

    let missing = &report.policies[3];
    assert_eq!(missing.verifier, Verdict::Rejected);
    assert!(missing
        .error
        .as_deref()
        .unwrap()
        .contains("/nonexistent/selector.o"));

    let sport_mod = &report.policies[4];
    assert_eq!(sport_mod.verifier, Verdict::Accepted);
    assert_eq!(sport_mod.sockets.iter().map(|s| s.flows).sum::<usize>(), 50);

    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["schema"], "skewscope.shadow/v1");
    assert_eq!(json["policies"][1]["verifier"], "rejected");
    assert_eq!(json["policies"][0]["verifier"], "none");
}

#[test]
fn too_small_socks_map_is_a_contract_violation() {
    if !can_run_privileged("too_small_socks_map_is_a_contract_violation") {
        return;
    }
    let flows = spread_trace(Proto::Udp, false, 10, 5000);
    let opts = ReplayOptions {
        sockets: 65,
        ..ReplayOptions::default()
    };
    let report = replay(&flows, &[fixture("sport_mod")], &opts).unwrap();
    let error = report.policies[1].error.as_deref().unwrap();
    assert!(
        error.contains("max_entries 64 < replica sockets 65"),
        "{error}"
    );
}

#[test]
fn tcp_source_port_equal_to_group_port_is_reported_not_fatal() {
    if !can_run_privileged("tcp_source_port_equal_to_group_port_is_reported_not_fatal") {
        return;
    }
    let mut flows = spread_trace(Proto::Tcp, false, 20, 4000);
    flows.push(sample(
        Proto::Tcp,
        "192.0.2.9",
        4000,
        "10.255.0.9",
        4000,
        1000,
    ));
    let report = replay(&flows, &[], &ReplayOptions::default()).unwrap();
    let default = &report.policies[0];
    assert_eq!((default.dropped_flows, default.dropped_weight), (1, 1000));
    assert_eq!(default.sockets.iter().map(|s| s.flows).sum::<usize>(), 20);
    assert!(
        default
            .notes
            .iter()
            .any(|n| n.contains("1 flows could not be sent") && n.contains("192.0.2.9:4000")),
        "{:?}",
        default.notes
    );
}
