//! The recorder's input: a finished report as the documented `skewscope.snapshot/v1` JSON
//! (docs/json.md) reads it. Going through the documented keys rather than the model's
//! types keeps baselines independent of how the agent is built inside, and lets a file
//! of `run --output json` lines be recorded the same way. Only the keys used are here;
//! keys are only ever added to the schema, so unknown ones are ignored.

use serde::Deserialize;

use crate::report::Report;

/// One report, as far as baselines read it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ReportView {
    pub window_secs: Option<f64>,
    pub cpus: Vec<CpuView>,
    pub devices: Vec<DeviceView>,
    pub reuseport_groups: Vec<GroupView>,
    pub host: HostView,
    pub shadow: Vec<ShadowView>,
}

impl ReportView {
    /// The report through its JSON form; None only if the report does not serialize
    /// (it always does: plain data).
    pub fn of(report: &Report) -> Option<Self> {
        serde_json::to_value(report)
            .and_then(serde_json::from_value)
            .ok()
    }

    /// One `run --output json` / `snapshot --json` line.
    pub fn parse(line: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(line)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CpuView {
    pub cpu: u32,
    pub softnet: Option<SoftnetView>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SoftnetView {
    pub dropped: u64,
    pub time_squeeze: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DeviceView {
    pub name: String,
    pub driver: Option<String>,
    pub channels: Option<ChannelsView>,
    pub rx_queues: Vec<QueueView>,
    pub rss: Option<RssView>,
    pub indices: DeviceIndicesView,
    pub regime: String,
    /// The RSS shadow's policies over the cycle's entry loads (docs/rss-shadow.md).
    pub rss_shadow: Vec<RssShadowView>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RssShadowView {
    pub policy: String,
    pub qpi: Option<f64>,
    pub max_share: Option<f64>,
    pub entries_moved: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct ChannelsView {
    pub rx: Option<u32>,
    pub tx: Option<u32>,
    pub combined: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct QueueView {
    pub queue: u32,
    pub irq_count: u64,
    pub affinity: Vec<u32>,
    pub effective_affinity: Option<Vec<u32>>,
    pub rx_packets: Option<u64>,
    pub table_share: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RssView {
    pub indirection: Vec<u32>,
    pub hfunc: Option<String>,
    pub key_hex: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DeviceIndicesView {
    pub qpi: Option<f64>,
    pub isi: Option<f64>,
    pub isi_normalized: Option<f64>,
    pub table_qpi: Option<f64>,
    pub haf95_us: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct GroupView {
    pub netns: u64,
    pub protocol: String,
    pub address: String,
    pub port: u16,
    pub listeners: Vec<ListenerView>,
    pub indices: GroupIndicesView,
    pub regime: String,
    pub p_hot: Option<f64>,
    pub membership_changes: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ListenerView {
    pub inode: u64,
    pub index: Option<u32>,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub container: Option<String>,
    /// null when the listener_events probe did not run: counted as none.
    pub events: Option<u64>,
    pub queue_depth: u64,
    /// SK_MEMINFO_DROPS: a counter since the socket was made, not a window delta.
    pub drops: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct GroupIndicesView {
    pub lsi: Option<f64>,
    pub hcr_1: Option<f64>,
    pub hcr_5: Option<f64>,
    pub lqd: Option<f64>,
    pub bci: Option<f64>,
    pub ingress_age_p95_us: Option<f64>,
    pub dlg_us: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HostView {
    pub indices: HostIndicesView,
    /// Knob name → value (null where the kernel lacks it).
    pub sysctls: Option<std::collections::BTreeMap<String, Option<i64>>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HostIndicesView {
    pub spi: Option<f64>,
    pub net_rx_cpu_qpi: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ShadowView {
    pub netns: u64,
    pub protocol: String,
    pub address: String,
    pub port: u16,
    pub replayed_secs_ago: f64,
    pub flows: usize,
    pub sockets: u32,
    pub error: Option<String>,
    pub policies: Vec<ShadowPolicyView>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ShadowPolicyView {
    pub policy: String,
    pub verifier: String,
    pub error: Option<String>,
    pub lsi: Option<f64>,
    pub max_share: Option<f64>,
    pub skew_reduction: Option<f64>,
}
