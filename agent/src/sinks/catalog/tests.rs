//! Tests of the catalog: the table's names and units, its evaluation over real and
//! synthetic reports, and the bounds.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;
use crate::config::{Limit, Limits};

#[test]
fn names_are_unique_and_follow_the_scheme() {
    let mut names: Vec<&str> = CATALOG.iter().map(|d| d.name).collect();
    for n in &names {
        let parts: Vec<&str> = n.split('.').collect();
        assert!(parts.len() >= 3 && parts[0] == "skewscope", "{n}");
        assert!(
            n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_'),
            "{n}"
        );
    }
    names.sort();
    let len = names.len();
    names.dedup();
    assert_eq!(names.len(), len, "duplicate metric names");
}

#[test]
fn every_metric_has_a_description_and_an_ascii_unit() {
    for d in CATALOG {
        assert!(d.description.ends_with('.'), "{}", d.name);
        assert!(d.unit.is_ascii() && d.unit.len() < 64, "{}", d.name);
        // Indices and counts get annotations, ratios "1": never "%" or "ratio".
        assert!(!d.unit.contains('%'), "{}", d.name);
    }
}

fn sample() -> Value {
    json!({
        "schema": "skewscope.snapshot/v1",
        "window_secs": 2.0,
        "cpus": [
            {"cpu": 0, "net_rx_softirqs": 10, "softnet": {"processed": 4, "dropped": 0,
             "time_squeeze": 2, "received_rps": null, "backlog_len": 3},
             "net_rx_share": 0.25, "softirq_time_ms": 500, "net_rx_time_us": null},
            {"cpu": 1, "net_rx_softirqs": 30, "softnet": null, "net_rx_share": 0.75}
        ],
        "devices": [
            {"name": "eth0", "driver": "ixgbe", "numa_node": 0,
             "rx_queues": [
                 {"queue": 0, "irqs": [40], "irq_count": 8, "rx_packets": 100,
                  "rx_bytes": 6400, "source": "netdev_qstats", "table_share": 0.5},
                 {"queue": 1, "irqs": [], "irq_count": 0, "rx_packets": null,
                  "rx_bytes": null, "source": null, "table_share": 0.5}],
             "indices": {"qpi": 1.5, "isi": null}, "irq_cpus_off_node": [3, 4]},
            {"name": "eth1", "rx_queues": [], "indices": {"qpi": 0.0},
             "irq_cpus_off_node": []}
        ],
        "reuseport_groups": [
            {"netns": 4026531840u64, "protocol": "udp", "address": "127.0.0.1",
             "port": 5353, "listeners": [
                 {"inode": 11, "index": 0, "pid": 7, "comm": "dns", "container": null,
                  "events": 90, "queue_depth": 0, "drops": 5},
                 {"inode": 12, "index": null, "events": 10, "queue_depth": 64, "drops": 0}],
             "top_flows": [
                 {"saddr": "10.0.0.1", "sport": 4000, "packets": 80, "bytes": 8000},
                 {"saddr": "10.0.0.2", "sport": 4001, "packets": 20, "bytes": 2000}],
             "indices": {"lsi": 0.8, "ingress_age_p95_us": 250.0},
             "membership_changes": 2}
        ],
        "host": {"indices": {"spi": 0.1, "net_rx_cpu_qpi": 0.5},
                 "sysctls": {"netdev_budget": 300, "netdev_budget_usecs": 2000}},
        "sources": [
            {"name": "proc_interrupts", "ok": true, "status": "ok", "duration_us": 120},
            {"name": "ebpf_softirq_time", "ok": false, "status": "failed",
             "duration_us": 0}
        ]
    })
}

fn points<'a>(e: &'a Evaluation, name: &str) -> &'a [Point] {
    let i = CATALOG.iter().position(|d| d.name == name).unwrap();
    &e.points[i]
}

fn s(v: &str) -> AttrValue {
    AttrValue::Str(v.into())
}

#[test]
fn evaluates_values_rates_units_and_attributes() {
    let e = evaluate(&sample(), &Limits::default());
    assert_eq!(
        points(&e, "skewscope.rss.qpi"),
        &[
            Point {
                attrs: vec![("device", s("eth0"))],
                value: 1.5
            },
            Point {
                attrs: vec![("device", s("eth1"))],
                value: 0.0
            }
        ]
    );
    // Null is no point.
    assert!(points(&e, "skewscope.rss.isi").is_empty());
    // Counts over a 2 s window become rates; the queue without IRQs has none.
    assert_eq!(
        points(&e, "skewscope.rss.queue.packets"),
        &[Point {
            attrs: vec![
                ("device", s("eth0")),
                ("queue", AttrValue::Int(0)),
                ("counter.source", s("netdev_qstats"))
            ],
            value: 50.0
        }]
    );
    assert_eq!(points(&e, "skewscope.rss.queue.interrupts").len(), 1);
    assert_eq!(points(&e, "skewscope.rss.irq_cpus_off_node")[0].value, 2.0);
    assert_eq!(
        points(&e, "skewscope.cpu.softirq.utilization")[0].value,
        0.25
    );
    assert_eq!(
        points(&e, "skewscope.host.netdev_budget_time")[0].value,
        0.002
    );
    assert_eq!(
        points(&e, "skewscope.reuseport.ingress_age.p95")[0].value,
        0.00025
    );
    let lsi = &points(&e, "skewscope.reuseport.lsi")[0];
    assert_eq!(
        lsi.attrs,
        vec![
            ("protocol", s("udp")),
            ("address", s("127.0.0.1")),
            ("port", AttrValue::Int(5353)),
            ("netns", AttrValue::Int(4026531840)),
        ]
    );
    let flows = points(&e, "skewscope.reuseport.flow.packets");
    assert_eq!(flows.len(), 2);
    assert!(flows[1].attrs.contains(&("flow.rank", AttrValue::Int(2))));
    assert_eq!(flows[1].value, 10.0);
    // Listener index absent while unknown; info metric carries the owner.
    let ev = points(&e, "skewscope.reuseport.listener.events");
    assert!(ev[0].attrs.contains(&("listener.index", AttrValue::Int(0))));
    assert!(!ev[1].attrs.iter().any(|(k, _)| *k == "listener.index"));
    let info = points(&e, "skewscope.reuseport.listener.info");
    assert!(info[0].attrs.contains(&("comm", s("dns"))));
    // Bools are 1/0; probes are the ebpf_ sources only.
    let ok = points(&e, "skewscope.agent.source.ok");
    assert_eq!((ok[0].value, ok[1].value), (1.0, 0.0));
    let probes = points(&e, "skewscope.agent.probe.attached");
    assert_eq!(probes.len(), 1);
    assert_eq!(
        probes[0].attrs,
        vec![("probe", s("ebpf_softirq_time")), ("status", s("failed"))]
    );
    assert!(e.capped.is_empty());
}

#[test]
fn shadow_policies_carry_the_group_and_policy() {
    let report = json!({
        "window_secs": 1.0,
        "shadow": [{
            "netns": 7, "protocol": "udp", "address": "0.0.0.0", "port": 53,
            "replayed_secs_ago": 3.5, "flows": 40, "sockets": 4, "error": null,
            "skipped_handoffs": 0,
            "policies": [
                {"policy": "default", "verifier": "none", "error": null,
                 "lsi": 1.2, "max_share": 0.8, "skew_reduction": 0.0},
                {"policy": "builtin:isolate-heavy", "verifier": "accepted", "error": null,
                 "lsi": 0.3, "max_share": 0.5, "skew_reduction": 0.75},
                {"policy": "/x.o", "verifier": "rejected", "error": "no such file",
                 "lsi": null, "max_share": null, "skew_reduction": null}]
        }]
    });
    assert_eq!(missing_keys(&report), Vec::<String>::new());
    let e = evaluate(&report, &Limits::default());
    let lsi = points(&e, "skewscope.shadow.lsi");
    assert_eq!(lsi.len(), 2, "a rejected policy has no point: {lsi:?}");
    assert_eq!(
        lsi[1],
        Point {
            attrs: vec![
                ("protocol", s("udp")),
                ("address", s("0.0.0.0")),
                ("port", AttrValue::Int(53)),
                ("netns", AttrValue::Int(7)),
                ("policy", s("builtin:isolate-heavy")),
            ],
            value: 0.3
        }
    );
    assert_eq!(points(&e, "skewscope.shadow.max_share")[0].value, 0.8);
    assert_eq!(points(&e, "skewscope.shadow.skew_reduction")[1].value, 0.75);
    let series = worst_case_series(&Limits::default());
    assert!(series.contains(&("shadow", 32 * (1 + crate::config::MAX_SHADOW_CANDIDATES))));
}

#[test]
fn rates_need_a_window() {
    let mut r = sample();
    r["window_secs"] = Value::Null;
    let e = evaluate(&r, &Limits::default());
    assert!(points(&e, "skewscope.rss.queue.packets").is_empty());
    assert_eq!(points(&e, "skewscope.rss.qpi").len(), 2);
}

#[test]
fn bounds_cap_series_and_count_what_they_leave_out() {
    let limits = Limits {
        max_devices: 1,
        top_flows: 1,
        max_queues_per_device: 1,
        ..Limits::default()
    };
    let e = evaluate(&sample(), &limits);
    assert_eq!(points(&e, "skewscope.rss.qpi").len(), 1);
    assert_eq!(points(&e, "skewscope.reuseport.flow.packets").len(), 1);
    assert_eq!(
        e.capped,
        BTreeMap::from([
            (Limit::Devices, 1),
            (Limit::QueuesPerDevice, 1),
            (Limit::TopFlows, 1)
        ])
    );
}

#[test]
fn a_1152_cpu_host_stays_under_the_bounds() {
    // A real 1152-CPU, 4-device capture (agent/testdata/roots/i40e-1152cpu).
    let text = include_str!("../../../testdata/golden/i40e-1152cpu.snapshot.json");
    let report: Value = serde_json::from_str(text).unwrap();
    let t = std::time::Instant::now();
    let e = evaluate(&report, &Limits::default());
    eprintln!("catalog over a 1152-CPU report: {:?}", t.elapsed());
    assert_eq!(e.capped.get(&Limit::Cpus), Some(&128));
    assert_eq!(e.capped.get(&Limit::QueuesPerDevice), Some(&120)); // 4 devices × (94 − 64)
    for (def, pts) in CATALOG.iter().zip(&e.points) {
        assert!(pts.len() <= SDK_SERIES_PER_METRIC, "{}", def.name);
    }
    assert_eq!(points(&e, "skewscope.cpu.net_rx.share").len(), 1024);
}

#[test]
fn limits_that_overflow_the_sdk_cap_are_refused() {
    assert!(check_series_cap(&Limits::default()).is_ok());
    let l = Limits {
        max_devices: 64,
        max_queues_per_device: 64,
        ..Limits::default()
    };
    assert!(check_series_cap(&l).unwrap_err().contains("queue"));
}

/// Every key the catalog reads exists in a real report (scope attributes included).
#[test]
fn every_key_exists_in_a_real_report() {
    let text = include_str!("../../../testdata/golden/i40e-1152cpu.snapshot.json");
    let report: Value = serde_json::from_str(text).unwrap();
    assert_eq!(missing_keys(&report), Vec::<String>::new());
    let mut renamed = report.clone();
    renamed["devices"][0]["indices"]
        .as_object_mut()
        .unwrap()
        .remove("qpi");
    assert_eq!(
        missing_keys(&renamed),
        ["skewscope.rss.qpi: no key indices.qpi in a device element"]
    );
}

#[test]
fn catalog_names_are_the_intended_ones() {
    let find = |n: &str| exposed_names(CATALOG.iter().find(|d| d.name == n).unwrap());
    assert_eq!(find("skewscope.rss.qpi"), ["skewscope_rss_qpi"]);
    assert_eq!(find("skewscope.reuseport.lsi"), ["skewscope_reuseport_lsi"]);
    assert_eq!(
        find("skewscope.reuseport.hcr_1"),
        ["skewscope_reuseport_hcr_1"]
    );
    assert_eq!(
        find("skewscope.cpu.net_rx.share"),
        ["skewscope_cpu_net_rx_share_ratio"]
    );
    assert_eq!(
        find("skewscope.rss.queue.bytes"),
        ["skewscope_rss_queue_bytes_per_second"]
    );
    assert_eq!(
        find("skewscope.agent.export.failures"),
        ["skewscope_agent_export_failures_total"]
    );
    assert_eq!(
        find("skewscope.agent.cycle.duration")[0],
        "skewscope_agent_cycle_duration_seconds_bucket"
    );
    // No two catalog entries may collide on Prometheus.
    let mut all: Vec<String> = CATALOG.iter().flat_map(exposed_names).collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n);
}

fn many_groups(groups: usize, listeners: usize) -> crate::report::Report {
    use crate::report::*;
    let group = |g: usize| ReuseportGroupReport {
        netns: 4026532000 + g as u64 % 3,
        protocol: if g.is_multiple_of(2) { "udp" } else { "tcp" },
        address: "10.0.0.1".into(),
        port: 7000 + g as u16,
        reuseport_id: Some(g as u32),
        listeners: (0..listeners)
            .map(|l| ListenerReport {
                inode: (g * 1000 + l) as u64,
                index: Some(l as u32),
                pid: Some(100),
                comm: Some("srv".into()),
                container: None,
                events: Some((g + l) as u64),
                selections: None,
                selection: None,
                queue_depth: l as u64,
                backlog_limit: None,
                drops: Some(1),
                ingress_age_p95_us: Some(12.5),
                ingress_age_samples: None,
                ingress_age_other_cpu: None,
                state: None,
            })
            .collect(),
        top_flows: vec![FlowReport {
            saddr: "10.0.0.2".into(),
            sport: 40000,
            daddr: "10.0.0.1".into(),
            dport: 7000 + g as u16,
            packets: 9,
            bytes: 900,
            rx_cpu: Some(1),
            rx_queue: None,
            rx_hash: None,
        }],
        indices: GroupIndices {
            lsi: Some(0.5),
            ..Default::default()
        },
        regime: Default::default(),
        advice: "",
        p_hot: Some(0.1),
        regime_transitions: 2,
        membership_changes: 3,
    };
    Report {
        schema: SNAPSHOT_SCHEMA,
        window_secs: Some(1.0),
        cpus: Vec::new(),
        devices: Vec::new(),
        reuseport_groups: (0..groups).map(group).collect(),
        host: HostReport {
            indices: HostIndices::default(),
            sysctls: None,
        },
        transitions: Vec::new(),
        sources: Vec::new(),
        shadow: Vec::new(),
        probe_sampling: None,
    }
}

/// The trimmed JSON form evaluates exactly as the whole report's: same points, same
/// counts of what the bounds leave out; without bounds it is the whole JSON.
#[test]
fn report_json_evaluates_as_the_whole_report() {
    let report = many_groups(40, 40);
    let whole = serde_json::to_value(&report).unwrap();
    let unbounded = Limits {
        max_groups: usize::MAX,
        max_listeners_per_group: usize::MAX,
        ..Limits::default()
    };
    assert_eq!(report_json(&report, &unbounded), whole);
    let small = Limits {
        max_groups: 3,
        max_listeners_per_group: 2,
        ..Limits::default()
    };
    for limits in [Limits::default(), small] {
        let trimmed = evaluate(&report_json(&report, &limits), &limits);
        assert_eq!(trimmed, evaluate(&whole, &limits));
        assert!(trimmed.capped.contains_key(&Limit::ListenersPerGroup));
    }
}
