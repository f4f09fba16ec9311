//! Typed raw facts of one collection cycle. Counters are as the kernel reports them
//! (since boot); the model reads them through a `model::Window` (between two snapshots,
//! or since boot). No I/O, no export types.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::Serialize;
use skewscope_probes::{EntryCount, FlowSample, ListenerEvents, QueueAge, QueueCount, SocketAge};

use crate::sources::{
    channels::Channels,
    ethtool_rss::{FlowHash, RssConfig},
    interrupts::Interrupts,
    irq_affinity::IrqAffinity,
    irq_map::QueueIrq,
    owners::Owner,
    proc_stat::ProcStat,
    sock_diag::ListenSocket,
    softirqs::SoftIrqs,
    softnet::SoftnetCpu,
    sysctls::Sysctls,
    sysfs_net::NetDevice,
};

#[derive(Debug, Clone)]
pub struct Snapshot {
    /// When collection of this snapshot started (monotonic).
    pub taken_at: Instant,
    pub interrupts: Option<Interrupts>,
    pub softirqs: Option<SoftIrqs>,
    pub proc_stat: Option<ProcStat>,
    pub softnet: Option<Vec<SoftnetCpu>>,
    /// NET_RX/NET_TX softirq time per CPU from the eBPF probe, when attached.
    pub softirq_time: Option<Vec<skewscope_probes::CpuSoftirqTime>>,
    pub online_cpus: Option<Vec<u32>>,
    /// CPU → NUMA node; empty when unknown.
    pub cpu_nodes: BTreeMap<u32, u32>,
    pub sysctls: Option<Sysctls>,
    pub devices: Vec<DeviceFacts>,
    /// Inode of the agent's own network namespace (the one sysfs devices belong to).
    pub host_netns: Option<u64>,
    /// Listening sockets and what the listener probes saw of them.
    pub listeners: Option<ListenerFacts>,
    /// Packets per (netns, ifindex, RX queue) at netif_receive_skb (eBPF).
    pub rx_queue_counts: Option<Vec<QueueCount>>,
    /// Ingress-age histograms per RX queue (eBPF).
    pub rx_queue_ages: Option<Vec<QueueAge>>,
    /// Packets per RSS indirection-table entry of the devices the rx probe counts them
    /// for, from the hash the driver stored in each skb (eBPF).
    pub rx_entry_counts: Option<Vec<EntryCount>>,
    /// How long the per-packet probes were attached (None: all the time, or not
    /// loaded). Their counts in a window cover that share of it only.
    pub probe_coverage: Option<ProbeCoverage>,
    pub sources: Vec<SourceStatus>,
}

/// How long the per-packet probes were attached, as of one reading (the probe budget
/// keeps it; the model's window scales their counts by it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeCoverage {
    /// Total time attached since the probes were loaded (in a window: during it).
    pub attached: Duration,
    /// The duty cycle in force (1: attached all the time).
    pub duty: f64,
    /// The probes' cost per received packet the budget works with, in ns.
    pub packet_cost_ns: f64,
    /// Whether that cost was measured here (run-time stats), not configured.
    pub cost_measured: bool,
    /// What the probes take of the busiest CPU: cost × its packet rate × duty.
    pub cpu_share: f64,
}

/// Listening sockets (sock_diag, every namespace) and the probes' view of them.
#[derive(Debug, Clone, Default)]
pub struct ListenerFacts {
    pub sockets: Vec<ListenSocket>,
    /// Owner process by socket inode (scanned when group membership changes), shared
    /// with the collector's cache: 50 000 sockets' owners are not copied every cycle.
    pub owners: std::sync::Arc<HashMap<u64, Owner>>,
    /// sk_data_ready events per socket; None when the probe is not running.
    pub events: Option<Vec<ListenerEvents>>,
    /// Exact reuseport selections per socket and hash; None when the (opt-in) selection
    /// probe is not running.
    pub selections: Option<skewscope_probes::Selections>,
    /// Sampled flows to watched ports; None when the probe is not running.
    pub flows: Option<Vec<FlowSample>>,
    /// Ingress-age histograms and locality per receiving socket.
    pub socket_ages: Option<Vec<SocketAge>>,
}

/// Everything known about one network device in this cycle.
#[derive(Debug, Clone)]
pub struct DeviceFacts {
    pub sys: NetDevice,
    pub queue_irqs: Vec<QueueIrq>,
    pub irq_affinity: BTreeMap<u32, IrqAffinity>,
    pub rss: Option<RssConfig>,
    /// Fields hashed per flow type (ETHTOOL_GRXFH); None off a live kernel or when the
    /// driver declines.
    pub flow_hash: Option<FlowHash>,
    pub channels: Option<Channels>,
    /// Per-RX-queue counters from the best source that had them.
    pub queue_counters: Vec<QueueCounters>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueCounters {
    pub queue: u32,
    pub rx_packets: Option<u64>,
    pub rx_bytes: Option<u64>,
    /// Which source fed these numbers: "netdev_qstats", "ethtool_stats", "ethtool_text",
    /// "ebpf" (netif_receive_skb).
    pub source: &'static str,
}

/// [`QueueCounters::source`] of counts from the rx probe's netif_receive_skb hook.
pub const EBPF_QUEUE_SOURCE: &str = "ebpf";

/// How one source fared in a cycle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceStatus {
    pub name: String,
    /// status == ok, for consumers that only need a yes or no.
    pub ok: bool,
    pub status: SourceOutcome,
    /// The error (failed) or the reason (skipped, unsupported).
    pub error: Option<String>,
    pub duration_us: u64,
    /// The kernel hook an eBPF source's numbers come from, where the probe
    /// chose one among several ("fentry/skb_consume_udp", ...); absent
    /// elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceOutcome {
    Ok,
    /// The kernel, driver or root does not offer it: not a fault.
    Unsupported,
    /// Not attempted (e.g. live-kernel sources under an alternate root).
    Skipped,
    Failed,
}

impl SourceStatus {
    pub fn new(name: &str, status: SourceOutcome, error: Option<String>, duration_us: u64) -> Self {
        Self {
            name: name.to_string(),
            ok: status == SourceOutcome::Ok,
            status,
            error,
            duration_us,
            hook: None,
        }
    }
}
