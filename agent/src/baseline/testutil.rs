//! Reports and baselines for the unit tests, written as the documented report JSON.

use serde_json::json;

use super::file::Baseline;
use super::record::{Recorder, RecordingMeta};
use super::view::ReportView;

/// A reuseport group as a report lists it.
pub struct Group<'a> {
    pub netns: u64,
    pub address: &'a str,
    pub port: u16,
    pub comm: &'a str,
    /// Events per listener in the window (the group size is its length).
    pub events: Vec<u64>,
    pub lsi: f64,
    pub drops: u64,
}

impl Default for Group<'_> {
    fn default() -> Self {
        Self {
            netns: 4026531840,
            address: "10.0.0.1",
            port: 9000,
            comm: "server",
            events: vec![100, 100, 100, 100],
            lsi: 0.1,
            drops: 0,
        }
    }
}

/// One report of a 1 s window with `groups` and one device `eth0` (4 queues, `qpi`).
pub fn report(groups: &[Group<'_>], qpi: f64) -> ReportView {
    let groups: Vec<_> = groups
        .iter()
        .map(|g| {
            let listeners: Vec<_> = g
                .events
                .iter()
                .enumerate()
                .map(|(i, &e)| {
                    json!({"inode": 1000 + i as u64 + g.netns % 7 * 100, "index": i, "pid": 42,
                           "comm": g.comm, "container": null, "events": e, "queue_depth": 0,
                           "drops": if i == 0 { g.drops } else { 0 }})
                })
                .collect();
            json!({"netns": g.netns, "protocol": "udp", "address": g.address, "port": g.port,
                   "listeners": listeners,
                   "indices": {"lsi": g.lsi, "hcr_1": 0.2, "hcr_5": 0.5, "lqd": 10.0, "bci": 1.1,
                               "ingress_age_p95_us": 100.0, "dlg_us": -900.0},
                   "regime": if g.lsi > 0.5 { "ORANGE" } else { "GREEN" },
                   "p_hot": g.lsi.min(1.0), "membership_changes": 0})
        })
        .collect();
    let queues: Vec<_> = (0..4)
        .map(|q| {
            json!({"queue": q, "irq_count": 10, "affinity": [q], "effective_affinity": [q],
                   "rx_packets": 1000 * (q + 1), "table_share": 0.25})
        })
        .collect();
    let v = json!({
        "schema": "skewscope.snapshot/v1", "window_secs": 1.0,
        "cpus": [{"cpu": 0, "softnet": {"dropped": 0, "time_squeeze": 1}}],
        "devices": [{"name": "eth0", "driver": "ixgbe", "rx_queues": queues,
                     "rss": {"indirection": [0, 1, 2, 3], "hfunc": "toeplitz", "key_hex": "6d:5a"},
                     "indices": {"qpi": qpi, "isi": 0.3, "haf95_us": 200.0},
                     "regime": "RSS_BALANCED"}],
        "reuseport_groups": groups,
        "host": {"indices": {"spi": 0.1}, "sysctls": {"netdev_budget": 300}},
        "shadow": []
    });
    serde_json::from_value(v).unwrap()
}

/// A baseline of `cycles` reports made by `each(cycle)`.
pub fn baseline(host: &str, cycles: usize, each: impl Fn(usize) -> ReportView) -> Baseline {
    let mut r = Recorder::new(RecordingMeta {
        requested_secs: cycles as f64,
        interval_secs: 1.0,
        host_name: Some(host.into()),
        kernel: Some("6.12.0".into()),
        ..Default::default()
    });
    for i in 0..cycles {
        r.add(&each(i), &[]);
    }
    r.finish(false, None)
}
