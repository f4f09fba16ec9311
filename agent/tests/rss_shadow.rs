//! `skewscope rss-shadow` end to end: saved reports in, predictions out; bad input exits 2
//! naming what is wrong; the live path on a host without an indirection table says so.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn rss_shadow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skewscope"))
        .arg("rss-shadow")
        .args(args)
        .output()
        .expect("run skewscope")
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn window() -> String {
    data("rss_shadow/igb-vm61-window.json")
        .display()
        .to_string()
}

fn packets(policy: &serde_json::Value) -> Vec<u64> {
    policy["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["packets"].as_u64().unwrap())
        .collect()
}

#[test]
fn current_equals_the_measured_queues_and_candidates_follow() {
    let equal4 = data("rss_shadow/table-equal4.txt").display().to_string();
    let out = rss_shadow(&[
        "--from",
        &window(),
        "--json",
        "--candidate",
        "equal",
        "--candidate",
        "weight:6,2,0,0",
        "--candidate",
        "balanced",
        "--candidate",
        &equal4,
    ]);
    let v = json_of(&out);
    assert_eq!(v["schema"], "skewscope.rss_shadow/v1");
    assert_eq!(v["device"], "eth0");
    assert_eq!(v["table_size"], 128);
    assert_eq!(v["queues"], 4);
    assert_eq!(v["measured_by"], "toeplitz");
    let policies = v["policies"].as_array().unwrap();
    let names: Vec<&str> = policies
        .iter()
        .map(|p| p["policy"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "current",
            "equal",
            "weight:6,2,0,0",
            "balanced",
            equal4.as_str()
        ]
    );
    // current: exactly what ethtool -S counted per queue in the guest.
    assert_eq!(packets(&policies[0]), [920, 1600, 800, 1200]);
    assert_eq!(policies[0]["entries_moved"], 0);
    assert_eq!(policies[0]["command"], "ethtool -X eth0 weight 1 1 1 1");
    let qpi0 = policies[0]["qpi"].as_f64().unwrap();
    assert!((qpi0 - (1600.0 / 1130.0 - 1.0)).abs() < 1e-9, "{qpi0}");
    // weight 6 2 0 0: the first 96 entries (queues 0-2 today) on queue 0, the rest on 1.
    assert_eq!(packets(&policies[2]), [920 + 1600 + 800, 1200, 0, 0]);
    assert_eq!(policies[2]["command"], "ethtool -X eth0 weight 3 1 0 0");
    assert_eq!(policies[1]["command"], "ethtool -X eth0 equal 4");
    // The file holding equal 4's table predicts what `equal` does.
    assert_eq!(packets(&policies[4]), packets(&policies[1]));
    assert_eq!(policies[4]["command"], "ethtool -X eth0 equal 4");
    // balanced: no queue hotter than today's hottest, fewer than all entries moved,
    // every packet still somewhere.
    let bal = packets(&policies[3]);
    assert_eq!(bal.iter().sum::<u64>(), 4520);
    assert!(bal.iter().max().unwrap() < &1600, "{bal:?}");
    assert!(policies[3]["qpi"].as_f64().unwrap() < qpi0);
    let moved = policies[3]["entries_moved"].as_u64().unwrap();
    assert!((1..=8).contains(&moved), "{moved}");
    for p in policies {
        let shares: f64 = p["queues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["share"].as_f64().unwrap())
            .sum();
        assert!((shares - 1.0).abs() < 1e-9);
        assert_eq!(p["table"].as_array().unwrap().len(), 128);
    }
}

#[test]
fn text_output_prints_commands_never_runs_them() {
    let out = rss_shadow(&["--from", &window()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("eth0: 128 entries over 4 queues"),
        "{text}"
    );
    assert!(
        text.contains("apply (not run): ethtool -X eth0 equal 4"),
        "{text}"
    );
    assert!(text.contains("\nbalanced  qpi"), "{text}");
}

#[test]
fn json_lines_take_the_last_report() {
    let file = data("rss_shadow/igb-vm61-run.jsonl").display().to_string();
    let v = json_of(&rss_shadow(&["--from", &file, "--json"]));
    assert_eq!(
        packets(&v["policies"][0]),
        [920, 1600, 800, 1200],
        "the last line carries the loads"
    );
}

/// Exit 2 and a message that names `needle`.
fn bad(args: &[&str], needle: &str) {
    let out = rss_shadow(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_input_exits_2_naming_the_problem() {
    let w = window();
    let short = data("rss_shadow/table-4-entries.txt").display().to_string();
    bad(
        &["--from", &w, "--candidate", &short],
        "table-4-entries.txt: 4 entries, the device's table has 128",
    );
    let range = data("rss_shadow/table-queue-out-of-range.txt")
        .display()
        .to_string();
    bad(
        &["--from", &w, "--candidate", &range],
        "entry 127 names queue 4, the device has queues 0..4",
    );
    bad(
        &["--from", &w, "--candidate", "weight:1,1"],
        "2 weights given, eth0 has 4 RX queues",
    );
    bad(&["--from", &w, "--candidate", "weight:1,x"], "weight:1,x");
    bad(
        &["--from", &w, "--candidate", "/nonexistent/t"],
        "/nonexistent/t",
    );
    let no_loads = data("vm-6.1/captured/snapshot.json").display().to_string();
    bad(
        &["--from", &no_loads],
        "no device carries rss.entry_packets (eth0: no entry loads)",
    );
    bad(
        &["--from", &no_loads, "--device", "eth0"],
        "device eth0: no rss.entry_packets",
    );
    bad(&["--from", &w, "--device", "eth9"], "no device \"eth9\"");
    let baseline = data("rss_shadow/baseline-minimal.json")
        .display()
        .to_string();
    bad(
        &["--from", &baseline],
        "a baseline file carries no rss.entry_packets",
    );
    let not_json = data("rss_shadow/table-4-entries.txt").display().to_string();
    bad(&["--from", &not_json], "not a JSON report nor JSON lines");
    bad(
        &["--from", &w, "--candidate", "balanced:numa"],
        "NUMA node or IRQ CPUs unknown",
    );
}

/// The live path on this host: whatever its devices, it either predicts (a device with a
/// Toeplitz key, a supported driver and watched flows) or says why not, with exit 2.
/// On the single-queue virtio guest this runs in, that is "no indirection table".
#[test]
fn live_window_says_why_it_cannot_predict() {
    let out = rss_shadow(&["--duration", "0.2", "--json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["policies"][0]["policy"], "current");
        return;
    }
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no device carries rss.entry_packets") || err.contains("no indirection table"),
        "{err}"
    );
}

/// The model's side: flows received on an ixgbe device with the Microsoft verification
/// key land on the entries their Toeplitz hashes select, the current table sums them into
/// the queues the flows arrived on, and the report carries the shadow summary that `run`
/// exports as skewscope.rss.shadow.*.
#[test]
fn report_measures_entry_loads_with_the_device_key() {
    use skewscope::model::{self, ModelConfig, Window};
    use skewscope::snapshot::{DeviceFacts, ListenerFacts, Snapshot};
    use skewscope::sources::ethtool_rss::{RssConfig, RssSource};
    use skewscope::sources::sysfs_net::NetDevice;

    const KEY: [u8; 40] = [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f,
        0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
        0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ];
    // 128 entries, `equal 4`; the verification flows' TCP hashes end in 0x78, 0xea, 0x4a,
    // 0x7f, 0xa2: entries 120, 106, 74, 127, 34 → queues 0, 2, 2, 3, 2.
    let table: Vec<u32> = (0..128).map(|i| i % 4).collect();
    let flows = [
        ("66.9.149.187:2794", "161.142.100.80:1766", 100u64),
        ("199.92.111.2:14230", "65.69.140.83:4739", 50),
        ("24.19.198.95:12898", "12.22.207.184:38024", 20),
        ("38.27.205.30:48228", "209.142.163.6:2217", 10),
        ("153.39.163.191:44251", "202.188.127.2:1303", 5),
    ];
    let sample = |(src, dst, packets): (&str, &str, u64), ifindex| {
        let s: std::net::SocketAddr = src.parse().unwrap();
        let d: std::net::SocketAddr = dst.parse().unwrap();
        skewscope_probes::FlowSample {
            netns: 1,
            family: 2,
            protocol: 6,
            saddr: s.ip(),
            sport: s.port(),
            daddr: d.ip(),
            dport: d.port(),
            packets,
            bytes: packets * 100,
            rx_cpu: 0,
            rx_queue: None,
            ifindex,
            rx_hash: None,
        }
    };
    let mut samples: Vec<_> = flows.iter().map(|f| sample(*f, 2)).collect();
    samples.push(sample(("10.0.0.1:1", "10.0.0.2:2", 999), 3)); // another device
    let snap = |flows: Vec<skewscope_probes::FlowSample>,
                entries: Option<Vec<skewscope_probes::EntryCount>>| Snapshot {
        taken_at: std::time::Instant::now(),
        interrupts: None,
        softirqs: None,
        proc_stat: None,
        softnet: None,
        softirq_time: None,
        online_cpus: None,
        cpu_nodes: Default::default(),
        sysctls: None,
        devices: vec![DeviceFacts {
            sys: NetDevice {
                name: "eth1".into(),
                ifindex: Some(2),
                driver: Some("ixgbe".into()),
                numa_node: Some(0),
                has_device: true,
                rx_queues: Vec::new(),
                tx_queues: Vec::new(),
                operstate: None,
                rx_packets: None,
            },
            queue_irqs: Vec::new(),
            irq_affinity: Default::default(),
            flow_hash: None,
            rss: Some(RssConfig {
                indirection: table.clone(),
                key: Some(KEY.to_vec()),
                hfunc: Some("toeplitz".into()),
                rx_rings: Some(4),
                source: RssSource::Netlink,
            }),
            channels: None,
            queue_counters: Vec::new(),
        }],
        host_netns: Some(1),
        listeners: Some(ListenerFacts {
            flows: Some(flows),
            ..Default::default()
        }),
        rx_queue_counts: None,
        rx_queue_ages: None,
        rx_entry_counts: entries,
        probe_coverage: None,
        sources: Vec::new(),
    };
    let report = model::build_report(
        &Window::between(&snap(Vec::new(), None), &snap(samples.clone(), None)),
        &ModelConfig::new(),
        &mut Default::default(),
    );
    let v = serde_json::to_value(&report).unwrap();
    let rss = &v["devices"][0]["rss"];
    assert_eq!(rss["measured_by"], "toeplitz");
    let entries: Vec<u64> = serde_json::from_value(rss["entry_packets"].clone()).unwrap();
    assert_eq!(entries.len(), 128);
    for (e, p) in [(120, 100), (106, 50), (74, 20), (127, 10), (34, 5)] {
        assert_eq!(entries[e], p, "entry {e}");
    }
    assert_eq!(
        entries.iter().sum::<u64>(),
        185,
        "the other device's flow is not counted"
    );
    let shadow = v["devices"][0]["rss_shadow"].as_array().unwrap();
    let names: Vec<&str> = shadow
        .iter()
        .map(|p| p["policy"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["current", "equal", "balanced"]);
    // current: queues 0,1,2,3 carry 100, 0, 75, 10: max share 100/185.
    assert!((shadow[0]["max_share"].as_f64().unwrap() - 100.0 / 185.0).abs() < 1e-9);
    assert_eq!(
        shadow[1]["entries_moved"], 0,
        "equal 4 is the current table"
    );
    assert!(shadow[2]["qpi"].as_f64().unwrap() <= shadow[0]["qpi"].as_f64().unwrap());
    // And the catalog exports them per device and policy.
    let e = skewscope::sinks::catalog::evaluate(&v, &Default::default());
    let at = |name: &str| {
        let i = skewscope::sinks::catalog::CATALOG
            .iter()
            .position(|d| d.name == name)
            .unwrap();
        e.points[i].clone()
    };
    assert_eq!(at("skewscope.rss.shadow.qpi").len(), 3);
    let moved = at("skewscope.rss.shadow.entries_moved");
    assert_eq!(moved[1].value, 0.0);
    assert!(moved[1]
        .attrs
        .iter()
        .any(|(k, v)| *k == "policy" && format!("{v:?}").contains("equal")));

    // With the probe's per-entry counts of the device (from the skb hash), those win over
    // the Toeplitz estimate: every packet, not only sampled flows to watched ports. The
    // window is their growth; counts under another table size are not this table's.
    let device = skewscope_probes::EntryDevice {
        netns: 1,
        ifindex: 2,
        table_size: 128,
    };
    let counts = |at: &[(usize, u64)], device: skewscope_probes::EntryDevice| {
        let mut packets = vec![0u64; device.table_size as usize];
        for &(e, p) in at {
            packets[e] = p;
        }
        skewscope_probes::EntryCount {
            device,
            bytes: packets.iter().map(|p| p * 100).collect(),
            packets,
        }
    };
    let before = counts(&[(3, 10), (120, 5)], device);
    let after = counts(&[(3, 40), (120, 5), (127, 7)], device);
    let build = |before, after| {
        let w = Window::between(&snap(Vec::new(), before), &snap(samples.clone(), after));
        serde_json::to_value(model::build_report(
            &w,
            &ModelConfig::new(),
            &mut Default::default(),
        ))
        .unwrap()
    };
    let v = build(Some(vec![before.clone()]), Some(vec![after.clone()]));
    let rss = &v["devices"][0]["rss"];
    assert_eq!(rss["measured_by"], "skb_hash");
    let entries: Vec<u64> = serde_json::from_value(rss["entry_packets"].clone()).unwrap();
    let nonzero: Vec<(usize, u64)> = entries
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, p)| *p > 0)
        .collect();
    assert_eq!(nonzero, [(3, 30), (127, 7)]);
    // current: entry 3 → queue 3, entry 127 → queue 3: one queue carries all.
    let shadow = v["devices"][0]["rss_shadow"].as_array().unwrap();
    assert_eq!(shadow[0]["max_share"].as_f64().unwrap(), 1.0);

    // A window where the device's counts did not grow, or were taken under a table of
    // another size, falls back to the Toeplitz way.
    let v = build(Some(vec![after.clone()]), Some(vec![after.clone()]));
    assert_eq!(v["devices"][0]["rss"]["measured_by"], "toeplitz");
    let other = skewscope_probes::EntryDevice {
        table_size: 64,
        ..device
    };
    let v = build(None, Some(vec![counts(&[(1, 9)], other)]));
    assert_eq!(v["devices"][0]["rss"]["measured_by"], "toeplitz");
}
