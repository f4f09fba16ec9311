use std::net::IpAddr;

use skewscope_shadow::{FlowSample, Proto};

use super::*;
use crate::baseline::testutil::{report, Group};

fn meta() -> RecordingMeta {
    RecordingMeta {
        requested_secs: 3.0,
        interval_secs: 1.0,
        tcp_at_start: Some(TcpCounters {
            out_resets: 10,
            listen_drops: 1,
        }),
        ..Default::default()
    }
}

#[test]
fn a_real_report_fills_devices_queues_and_the_fingerprint() {
    // A report of the agent over the mlx4 fixture root (golden file), as one 1 s window.
    let text = include_str!("../../../testdata/golden/mlx4-40cpu.snapshot.json");
    let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
    v["window_secs"] = 1.0.into();
    let view: ReportView = serde_json::from_value(v).unwrap();
    let mut r = Recorder::new(meta());
    r.add(&view, &[]);
    r.add(&view, &[]);
    let b = r.finish(false, None);
    assert_eq!(b.cycles, 2);
    assert_eq!(b.recorded_secs, 2.0);
    let names: Vec<&str> = b.devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["eth0", "eth1"]);
    let eth1 = &b.fingerprint.devices[1];
    assert_eq!(eth1.driver.as_deref(), Some("ixgbe"));
    assert_eq!(eth1.rx_queues, 80);
    assert!(eth1.table_hash.as_deref().unwrap().starts_with("sha256:"));
    assert_eq!(b.devices[1].queues.len(), 80);
    assert_eq!(b.devices[1].cycles, 2);
    assert!(b.fingerprint_changes.is_empty());
    assert_eq!(b.host.tcp, None, "no counters at the end: no guardrail");
}

#[test]
fn reports_without_a_window_are_not_cycles() {
    let mut since_boot = report(&[Group::default()], 0.2);
    since_boot.window_secs = None;
    let mut r = Recorder::new(meta());
    r.add(&since_boot, &[]);
    assert_eq!(r.cycles(), 0);
    let b = r.finish(true, None);
    assert!(b.groups.is_empty());
    assert!(b.interrupted);
}

#[test]
fn distributions_shares_drops_and_guardrails_over_cycles() {
    let mut r = Recorder::new(meta());
    for (i, lsi) in [0.2, 0.4, 0.9].into_iter().enumerate() {
        r.add(
            &report(
                &[Group {
                    lsi,
                    events: vec![60, 20, 10, 10],
                    drops: 5 + 2 * i as u64,
                    ..Default::default()
                }],
                0.1 * (i + 1) as f64,
            ),
            &[],
        );
    }
    let b = r.finish(
        false,
        Some(TcpCounters {
            out_resets: 16,
            listen_drops: 1,
        }),
    );
    let g = &b.groups[0];
    assert_eq!(g.cycles, 3);
    let lsi = g.indices.lsi.unwrap();
    assert_eq!((lsi.n, lsi.p50, lsi.max), (3, 0.4, 0.9));
    // rank 0.95 × 2 = 1.9: 0.4 + 0.9 × 0.5
    assert!((lsi.p95 - 0.85).abs() < 1e-12);
    assert_eq!(g.drops, 4, "the drops counter went 5 → 9");
    assert!((g.drops_per_sec - 4.0 / 3.0).abs() < 1e-12);
    assert_eq!(g.listeners[0].events, 180);
    assert!((g.listeners[0].share - 0.6).abs() < 1e-12);
    assert_eq!(g.listeners.len(), 4);
    assert_eq!(g.regimes["GREEN"], 2.0 / 3.0);
    assert_eq!(g.regimes["ORANGE"], 1.0 / 3.0);
    assert_eq!(g.p_hot_deciles[2], 1.0 / 3.0);
    assert_eq!(g.p_hot_deciles[9], 1.0 / 3.0);
    assert_eq!(g.series.len(), 3);
    assert_eq!(g.series[2].t_secs, 3.0);
    assert_eq!(g.owners, ["server"]);
    let d = &b.devices[0];
    let qpi = d.indices.qpi.unwrap();
    assert!((qpi.max - 0.3).abs() < 1e-12);
    // Queue 3 counted 4000 packets in each 1 s window.
    assert_eq!(d.queues[3].mean_rx_pps, Some(4000.0));
    assert_eq!(d.queues[3].table_share, Some(0.25));
    let tcp = b.host.tcp.unwrap();
    assert_eq!(tcp.out_resets, 6);
    assert!((tcp.out_resets_per_sec - 2.0).abs() < 1e-12);
    assert_eq!(b.host.time_squeeze, 3);
}

#[test]
fn a_group_size_change_during_the_recording_is_a_fingerprint_change() {
    let mut r = Recorder::new(meta());
    r.add(&report(&[Group::default()], 0.2), &[]);
    r.add(
        &report(
            &[Group {
                events: vec![1; 5],
                ..Default::default()
            }],
            0.2,
        ),
        &[],
    );
    let b = r.finish(false, None);
    assert_eq!(b.groups[0].listeners_min, 4);
    assert_eq!(b.groups[0].listeners_max, 5);
    assert_eq!(
        b.fingerprint_changes,
        ["udp 10.0.0.1:9000 (netns 4026531840): group size 4 → 5"]
    );
}

fn flow(sport: u16, weight: u64) -> FlowSample {
    FlowSample {
        proto: Proto::Udp,
        saddr: IpAddr::from([10, 0, 0, 2]),
        sport,
        daddr: IpAddr::from([10, 0, 0, 1]),
        dport: 9000,
        weight,
        rx_cpu: Some(1),
        rx_queue: None,
    }
}

#[test]
fn flows_add_up_across_cycles_heaviest_first() {
    let mut r = Recorder::new(meta());
    let one = report(&[Group::default()], 0.2);
    r.add(&one, &[flow(1000, 5), flow(1001, 7)]);
    r.add(&one, &[flow(1000, 5)]);
    let b = r.finish(false, None);
    let got: Vec<(u16, u64)> = b.flow_trace.iter().map(|f| (f.sport, f.weight)).collect();
    assert_eq!(got, [(1000, 10), (1001, 7)]);
    assert_eq!(b.flow_trace[0].proto, "udp");
    // Each line is a valid shadow trace line.
    let line = serde_json::to_string(&b.flow_trace[0]).unwrap();
    assert_eq!(skewscope_shadow::parse_line(&line).unwrap(), flow(1000, 10));
}

#[test]
fn a_shadow_replay_repeated_by_later_reports_counts_once() {
    let shadow = |ago: f64, lsi: f64| {
        let mut v = report(&[], 0.2);
        v.shadow = vec![ShadowView {
            netns: 1,
            protocol: "udp".into(),
            address: "10.0.0.1".into(),
            port: 9000,
            replayed_secs_ago: ago,
            flows: 10,
            sockets: 4,
            error: None,
            policies: vec![
                super::super::view::ShadowPolicyView {
                    policy: "default".into(),
                    verifier: "none".into(),
                    lsi: Some(lsi),
                    ..Default::default()
                },
                super::super::view::ShadowPolicyView {
                    policy: "builtin:cpu".into(),
                    verifier: "accepted".into(),
                    lsi: Some(lsi / 2.0),
                    ..Default::default()
                },
            ],
        }];
        v
    };
    let mut r = Recorder::new(meta());
    r.add(&shadow(0.2, 0.8), &[]); // replay ended at 0.8 s
    r.add(&shadow(1.2, 0.8), &[]); // the same replay, a second older
    r.add(&shadow(0.1, 0.6), &[]); // a new one, ended at 2.9 s
    let b = r.finish(false, None);
    let s = &b.shadow[0];
    assert_eq!(s.replays, 2);
    assert_eq!(s.policies.len(), 2);
    assert_eq!(s.policies[0].policy, "default");
    assert_eq!(s.policies[0].lsi.unwrap().n, 2);
    assert_eq!(s.policies[1].lsi.unwrap().max, 0.4);
}

#[test]
fn rss_shadow_current_and_balanced_are_kept_per_device() {
    let mut r = Recorder::new(meta());
    for (cycle, (current, balanced, moved)) in
        [(2.0, 0.5, 9u64), (3.0, 0.25, 11)].into_iter().enumerate()
    {
        let mut view = report(&[Group::default()], 0.2);
        if cycle == 1 {
            // A cycle without entry loads counts for nothing here.
            r.add(&view, &[]);
        }
        let policy = |name: &str, qpi: f64, moved: u64| crate::baseline::view::RssShadowView {
            policy: name.into(),
            qpi: Some(qpi),
            max_share: Some((qpi + 1.0) / 4.0),
            entries_moved: moved,
        };
        view.devices[0].rss_shadow = vec![
            policy("current", current, 0),
            policy("equal", 1.0, 3),
            policy("balanced", balanced, moved),
        ];
        r.add(&view, &[]);
    }
    let b = r.finish(false, None);
    let shadow = &b.devices[0].rss_shadow;
    let names: Vec<&str> = shadow.iter().map(|p| p.policy.as_str()).collect();
    assert_eq!(names, ["current", "balanced"], "equal is not kept");
    assert_eq!(b.devices[0].cycles, 3);
    assert_eq!(shadow[0].cycles, 2);
    assert_eq!(shadow[0].qpi.unwrap().max, 3.0);
    assert_eq!(shadow[1].qpi.unwrap().max, 0.5);
    assert_eq!(shadow[1].entries_moved.unwrap().max, 11.0);
    // The file keeps it, and an old file without it still reads.
    let text = serde_json::to_string(&b.devices[0]).unwrap();
    assert!(text.contains("\"rss_shadow\""));
    let empty = serde_json::to_string(&DeviceBaseline::default()).unwrap();
    assert!(!empty.contains("rss_shadow"), "{empty}");
    let back: DeviceBaseline = serde_json::from_str(&empty).unwrap();
    assert!(back.rss_shadow.is_empty());
    let page = crate::baseline::html::record_page(&b, "b.json");
    assert!(
        page.contains("RSS in shadow"),
        "the device section shows current vs balanced"
    );
    assert!(page.contains("<td>balanced</td><td>2</td>"));
}
