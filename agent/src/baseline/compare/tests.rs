use super::*;
use crate::baseline::testutil::{baseline, report, Group};

fn group(netns: u64, address: &str, port: u16, owners: &[&str]) -> GroupBaseline {
    GroupBaseline {
        protocol: "udp".into(),
        address: address.into(),
        port,
        netns,
        owners: owners.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[test]
fn groups_are_matched_on_what_survives_a_restart_and_a_move() {
    let before = [
        group(1, "10.0.0.1", 53, &["dns"]),
        group(1, "10.0.0.1", 443, &["envoy"]),
        group(1, "0.0.0.0", 8080, &[]),
        group(1, "10.0.0.1", 9000, &["md"]),
    ];
    let after = [
        // Same namespace: nothing restarted.
        group(1, "10.0.0.1", 53, &["dns"]),
        // Restarted pod: new namespace, same address and owner.
        group(7, "10.0.0.1", 443, &["envoy"]),
        // Owners unknown on both sides (no privileges): address and port.
        group(7, "0.0.0.0", 8080, &[]),
        // Another host: another address, same owner and port.
        group(9, "10.9.9.9", 9000, &["md"]),
        // Only after.
        group(9, "10.9.9.9", 7000, &["new"]),
    ];
    let b: Vec<&GroupBaseline> = before.iter().collect();
    let a: Vec<&GroupBaseline> = after.iter().collect();
    let m = match_groups(&b, &a, true);
    assert_eq!(
        m.pairs,
        [
            (0, 0, MatchMethod::SameNetns),
            (1, 1, MatchMethod::Owner),
            (2, 2, MatchMethod::Address),
            (3, 3, MatchMethod::OwnerAnyAddress),
        ]
    );
    assert!(m.unmatched_before.is_empty());
    assert_eq!(m.unmatched_after, [4]);
    // Across hosts the namespace inode means nothing: the same numbers match on owner.
    let m = match_groups(&b, &a, false);
    assert_eq!(m.pairs[0], (0, 0, MatchMethod::Owner));
}

#[test]
fn ambiguous_groups_are_left_unmatched_not_paired_by_chance() {
    // Two groups of one owner on one port (two pods after a restart): no unique pair.
    let before = [group(1, "10.0.0.1", 9000, &["md"])];
    let after = [
        group(7, "10.0.0.1", 9000, &["md"]),
        group(8, "10.0.0.1", 9000, &["md"]),
    ];
    let b: Vec<&GroupBaseline> = before.iter().collect();
    let a: Vec<&GroupBaseline> = after.iter().collect();
    let m = match_groups(&b, &a, true);
    assert!(m.pairs.is_empty(), "{m:?}");
    assert_eq!(m.unmatched_before, [0]);
    // Port only when it is the only such group on each side.
    let after = [group(7, "10.5.5.5", 9000, &["other"])];
    let a: Vec<&GroupBaseline> = after.iter().collect();
    assert_eq!(
        match_groups(&b, &a, false).pairs,
        [(0, 0, MatchMethod::PortOnly)]
    );
}

#[test]
fn tolerance_allows_relative_growth_or_the_floor_whichever_is_larger() {
    assert!((Tolerances::allowed(1.0, 0.1, 0.05) - 1.1).abs() < 1e-12);
    assert!((Tolerances::allowed(0.1, 0.1, 0.05) - 0.15).abs() < 1e-12);
    assert!((Tolerances::allowed(-900.0, 0.1, 50.0) + 810.0).abs() < 1e-9);
    assert!(Tolerances::default().validate().is_ok());
    let bad = Tolerances {
        relative: -0.1,
        ..Default::default()
    };
    assert!(bad.validate().unwrap_err().contains("--tolerance"));
}

/// A baseline of one group whose LSI runs through `lsi` cycle by cycle.
fn with_lsi(host: &str, lsi: &[f64], size: usize) -> Baseline {
    baseline(host, lsi.len(), |i| {
        report(
            &[Group {
                lsi: lsi[i],
                events: vec![100; size],
                ..Default::default()
            }],
            0.2,
        )
    })
}

fn run(before: &Baseline, after: &Baseline) -> Comparison {
    compare(
        before,
        "before.json",
        after,
        "after.json",
        &Tolerances::default(),
        &Scope::default(),
    )
}

#[test]
fn lower_tails_promote() {
    let c = run(
        &with_lsi("a", &[0.8, 0.9, 1.0, 0.9], 4),
        &with_lsi("a", &[0.1, 0.2, 0.1, 0.1], 4),
    );
    assert_eq!(c.verdict, Verdict::Promote, "{}", render_text(&c));
    assert_eq!(c.exit_code, 0);
    let lsi95 = c.groups[0]
        .rows
        .iter()
        .find(|r| r.metric == "LSI" && r.quantile == Some("q95"))
        .unwrap();
    assert_eq!(lsi95.status, Status::Pass);
    assert!(lsi95.after.unwrap() < lsi95.before.unwrap());
    assert_eq!(c.groups[0].match_method, MatchMethod::SameNetns);
}

#[test]
fn a_regressed_tail_holds_and_is_named() {
    let c = run(
        &with_lsi("a", &[0.3, 0.3, 0.4, 0.3], 4),
        &with_lsi("a", &[0.3, 0.3, 0.9, 0.3], 4),
    );
    assert_eq!(c.verdict, Verdict::Hold, "{}", render_text(&c));
    assert_eq!(c.exit_code, 1);
    assert!(!c.regressions.is_empty());
    assert!(
        c.regressions.iter().all(|r| r.contains("LSI")),
        "{:?}",
        c.regressions
    );
    assert!(
        c.regressions[0].contains("udp 10.0.0.1:9000: LSI q95"),
        "{:?}",
        c.regressions
    );
    // Within tolerance: 0.40 → 0.44 is the relative 10%.
    let c = run(
        &with_lsi("a", &[0.3, 0.3, 0.4, 0.3], 4),
        &with_lsi("a", &[0.3, 0.3, 0.43, 0.3], 4),
    );
    assert_eq!(c.verdict, Verdict::Promote, "{}", render_text(&c));
}

#[test]
fn a_changed_group_size_is_inconclusive_whatever_the_numbers() {
    let c = run(&with_lsi("a", &[0.8; 4], 4), &with_lsi("a", &[0.1; 4], 5));
    assert_eq!(c.verdict, Verdict::Inconclusive, "{}", render_text(&c));
    assert_eq!(c.exit_code, 3);
    assert!(
        c.inconclusive
            .iter()
            .any(|r| r.contains("group size 4 → 5")),
        "{:?}",
        c.inconclusive
    );
}

#[test]
fn too_few_cycles_are_inconclusive() {
    let c = run(&with_lsi("a", &[0.8, 0.8], 4), &with_lsi("a", &[0.1; 4], 4));
    assert_eq!(c.verdict, Verdict::Inconclusive);
    assert!(
        c.inconclusive
            .iter()
            .any(|r| r.contains("before: 2 cycles")),
        "{:?}",
        c.inconclusive
    );
}

#[test]
fn device_topology_changes_are_inconclusive_host_and_kernel_are_notes() {
    let before = with_lsi("a", &[0.5; 4], 4);
    let mut after = with_lsi("b", &[0.5; 4], 4);
    after.fingerprint.kernel = Some("6.13.0".into());
    let c = run(&before, &after);
    assert_eq!(c.verdict, Verdict::Promote, "{}", render_text(&c));
    assert!(c.notes.iter().any(|n| n.contains("kernel 6.12.0 → 6.13.0")));
    assert!(c.notes.iter().any(|n| n.contains("hosts differ")));
    // Across hosts the group is matched without its namespace.
    assert_eq!(c.groups[0].match_method, MatchMethod::Owner);

    after.fingerprint.devices[0].table_hash = Some("sha256:other".into());
    after.fingerprint.devices[0].rx_queues = 8;
    let c = run(&before, &after);
    assert_eq!(c.verdict, Verdict::Inconclusive);
    assert!(
        c.inconclusive.iter().any(|r| r == "eth0: RX queues 4 → 8"),
        "{:?}",
        c.inconclusive
    );
    assert!(c
        .inconclusive
        .iter()
        .any(|r| r == "eth0: RSS indirection table changed"));
}

#[test]
fn drops_beyond_the_guardrail_hold() {
    let drops = |per_cycle: u64| {
        baseline("a", 4, move |i| {
            report(
                &[Group {
                    drops: per_cycle * i as u64,
                    ..Default::default()
                }],
                0.2,
            )
        })
    };
    let c = run(&drops(0), &drops(50));
    assert_eq!(c.verdict, Verdict::Hold, "{}", render_text(&c));
    assert!(
        c.regressions[0].contains("socket drops/s"),
        "{:?}",
        c.regressions
    );
    assert!(c.regressions[0].contains("guardrail"));
    // One drop a second is the floor.
    assert_eq!(run(&drops(0), &drops(1)).verdict, Verdict::Promote);
}

#[test]
fn a_qpi_regression_holds_unless_devices_are_left_out() {
    let qpi = |v: f64| baseline("a", 4, move |_| report(&[Group::default()], v));
    let c = run(&qpi(0.2), &qpi(0.9));
    assert_eq!(c.verdict, Verdict::Hold);
    assert!(
        c.regressions.iter().any(|r| r.starts_with("eth0: QPI q95")),
        "{:?}",
        c.regressions
    );
    let scope = Scope {
        ports: vec![],
        only: vec![Part::Groups],
    };
    let c = compare(
        &qpi(0.2),
        "b",
        &qpi(0.9),
        "a",
        &Tolerances::default(),
        &scope,
    );
    assert_eq!(c.verdict, Verdict::Promote, "{}", render_text(&c));
    assert!(c
        .notes
        .iter()
        .any(|n| n == "devices shown, not judged (--only)"));
}

#[test]
fn a_group_gone_after_is_inconclusive_and_port_filters_leave_others_out() {
    let two = baseline("a", 4, |_| {
        report(
            &[
                Group::default(),
                Group {
                    port: 9001,
                    comm: "other",
                    ..Default::default()
                },
            ],
            0.2,
        )
    });
    let one = with_lsi("a", &[0.1; 4], 4);
    let c = run(&two, &one);
    assert_eq!(c.verdict, Verdict::Inconclusive);
    assert!(c.inconclusive[0].contains(":9001"), "{:?}", c.inconclusive);
    let scope = Scope {
        ports: vec![9000],
        only: vec![],
    };
    let c = compare(&two, "b", &one, "a", &Tolerances::default(), &scope);
    assert_eq!(c.verdict, Verdict::Promote, "{}", render_text(&c));
}

#[test]
fn numbers_keep_three_significant_digits() {
    assert_eq!(num(0.249), "0.249");
    assert_eq!(num(0.0015), "0.0015");
    assert_eq!(num(0.08), "0.08");
    assert_eq!(num(-0.0), "0");
    assert_eq!(num(12.345), "12.35");
    assert_eq!(num(443.0), "443");
    assert_eq!(num(-563.5), "-563.5");
    assert_eq!(num(0.0), "0");
    assert_eq!(pct(Some(-0.5)), "-50.0%");
}
