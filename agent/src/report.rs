//! What sinks read: the finished indices and the facts behind them for one window.
//! Serialized as the `skewscope.snapshot/v1` JSON schema (keys documented in docs/json.md).

use serde::Serialize;

use crate::model::estimator::ListenerState;
use crate::model::regime::{DeviceRegime, GroupRegime};
use crate::snapshot::SourceStatus;
use crate::sources::sysctls::Sysctls;

pub const SNAPSHOT_SCHEMA: &str = "skewscope.snapshot/v1";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub schema: &'static str,
    /// None: counters since boot. Some(s): deltas over a window of s seconds.
    pub window_secs: Option<f64>,
    pub cpus: Vec<CpuReport>,
    pub devices: Vec<DeviceReport>,
    pub reuseport_groups: Vec<ReuseportGroupReport>,
    pub host: HostReport,
    /// Regime transitions in this cycle (also logged).
    pub transitions: Vec<TransitionEvent>,
    pub sources: Vec<SourceStatus>,
    /// Shadow replay of each watched group's recent flows against the configured
    /// candidate selectors (`run` with `[shadow] candidates`; empty otherwise). Attached
    /// by the run loop from the replay worker's latest results, not built by the model.
    pub shadow: Vec<ShadowGroupReport>,
    /// How the per-packet probes were attached: null while they run all the time (or
    /// are not loaded), their counts then exact.
    pub probe_sampling: Option<ProbeSamplingReport>,
}

/// The probe budget at work (docs/configuration.md, `[probes]`): above it the per-packet
/// probes are attached for part of each period and their counts (listener events,
/// flows, eBPF queue counts, softirq time) are estimates scaled from that part.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeSamplingReport {
    /// Share of this window the probes were attached (null without a window); 1 = exact.
    pub attached_share: Option<f64>,
    /// The duty cycle in force at the end of the window.
    pub duty: f64,
    /// The probes' cost per received packet the budget works with, in ns.
    pub packet_cost_ns: f64,
    /// "measured" (run-time stats over a calibration window) or "configured" (before
    /// the first calibration, or with `[probes] calibrate = false`).
    pub packet_cost_source: &'static str,
    /// What the probes take of the busiest CPU at the end of the window: cost × its
    /// packet rate × duty; the budget keeps it at or below `cpu_budget`.
    pub cpu_share: f64,
}

/// The latest shadow replay of one reuseport group: the flows observed since the hand-off
/// before it, replayed through a private replica of `sockets` sockets per policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowGroupReport {
    pub netns: u64,
    /// "udp" or "tcp".
    pub protocol: &'static str,
    pub address: String,
    pub port: u16,
    /// Seconds between the end of this replay and this report.
    pub replayed_secs_ago: f64,
    /// Flow samples replayed (the heaviest, up to `[shadow] max_flows`).
    pub flows: usize,
    /// Replica group size: the group's listener count at the hand-off.
    pub sockets: u32,
    /// Why the whole replay failed (no policy results then), e.g. missing privileges.
    pub error: Option<String>,
    /// `default` (the kernel's hash) first, then the candidates in configured order.
    pub policies: Vec<ShadowPolicyReport>,
    /// Hand-offs skipped since the agent started because the replay worker was still
    /// busy (one worker replays every group in turn).
    pub skipped_handoffs: u64,
}

/// One policy's predicted distribution over the replica group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowPolicyReport {
    /// `default`, `builtin:NAME` or the object's path.
    pub policy: String,
    /// "none" (default), "accepted" or "rejected".
    pub verifier: &'static str,
    /// Why the candidate was rejected (contract, load or verifier failure).
    pub error: Option<String>,
    /// Predicted LSI: std/mean of the replica sockets' weights (null when rejected).
    pub lsi: Option<f64>,
    /// Largest socket share of the delivered weight.
    pub max_share: Option<f64>,
    /// (LSI_default − LSI_policy) / LSI_default; null when rejected or the default is even.
    pub skew_reduction: Option<f64>,
}

/// A regime change of a group or a device, with the indices that caused it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransitionEvent {
    /// "reuseport_group" or "device".
    pub scope: &'static str,
    /// "netns/proto/address:port" for groups, the device name for devices.
    pub key: String,
    pub from: &'static str,
    pub to: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuReport {
    pub cpu: u32,
    pub net_rx_softirqs: Option<u64>,
    pub net_tx_softirqs: Option<u64>,
    /// Time in all softirqs, /proc/stat (USER_HZ ticks converted to ms).
    pub softirq_time_ms: Option<u64>,
    /// NET_RX softirq time measured by the eBPF probe.
    pub net_rx_time_us: Option<u64>,
    pub softnet: Option<SoftnetReport>,
    /// Share of the host's NET_RX softirq runs on this CPU.
    pub net_rx_share: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SoftnetReport {
    pub processed: u64,
    pub dropped: u64,
    pub time_squeeze: u64,
    pub received_rps: Option<u64>,
    pub flow_limit_count: Option<u64>,
    pub backlog_len: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceReport {
    pub name: String,
    pub driver: Option<String>,
    pub numa_node: Option<i32>,
    pub channels: Option<ChannelsReport>,
    pub rx_queues: Vec<RxQueueReport>,
    pub rss: Option<RssReport>,
    pub indices: DeviceIndices,
    /// RSS_BALANCED … RSS_CONTAIN, with hysteresis and dwell (observe-only).
    pub regime: DeviceRegime,
    /// The field notes' recommended action for the regime: advice, never executed.
    pub advice: &'static str,
    pub regime_transitions: u64,
    /// CPUs that serve this device's queue IRQs but sit outside its NUMA node.
    pub irq_cpus_off_node: Vec<u32>,
    /// RSS in shadow over this window's entry loads (`current`, `equal`, `balanced`);
    /// absent without `rss.entry_packets` (docs/rss-shadow.md).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rss_shadow: Vec<RssShadowSummary>,
}

/// One table's prediction over the window's entry loads (the `rss-shadow` command
/// gives the full per-queue detail).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RssShadowSummary {
    /// `current`, `equal` or `balanced`.
    pub policy: String,
    pub qpi: Option<f64>,
    pub max_share: Option<f64>,
    /// Entries whose queue differs from the current table.
    pub entries_moved: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelsReport {
    pub rx: Option<u32>,
    pub tx: Option<u32>,
    pub combined: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RxQueueReport {
    pub queue: u32,
    pub irqs: Vec<u32>,
    /// The IRQ lines' total over all CPUs (summed over the queue's IRQs).
    pub irq_count: u64,
    /// IRQ count per CPU that served any, as [cpu, count] pairs.
    pub irq_cpus: Vec<(u32, u64)>,
    /// smp_affinity_list of the queue's IRQs (union).
    pub affinity: Vec<u32>,
    /// effective_affinity_list of the queue's IRQs (union), where the kernel has it.
    pub effective_affinity: Option<Vec<u32>>,
    /// The `affinity` this agent saw first for the queue (null while no IRQ is known).
    pub affinity_baseline: Option<Vec<u32>>,
    /// `affinity` differs from `affinity_baseline`: the IRQs were moved since (by
    /// irqbalance, an operator, a script); reported, never reverted.
    pub affinity_drifted: bool,
    /// Times the queue's affinity changed since the agent started.
    pub affinity_changes: u64,
    pub rps_cpus: Vec<u32>,
    pub rx_packets: Option<u64>,
    pub rx_bytes: Option<u64>,
    /// Which source fed rx_packets/rx_bytes.
    pub source: Option<&'static str>,
    /// Share of the RSS indirection table pointing at this queue.
    pub table_share: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RssReport {
    pub indirection: Vec<u32>,
    pub hfunc: Option<String>,
    pub key_hex: Option<String>,
    pub source: String,
    /// Fields hashed per flow type as ethtool's letters (`ethtool -n DEV rx-flow-hash
    /// udp4`: "sd" addresses, "sdfn" and ports); absent when the driver declines or off
    /// a live kernel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_hash: Option<std::collections::BTreeMap<&'static str, String>>,
    /// Packets per table entry over the window, measured under `indirection`
    /// (docs/rss-shadow.md); absent when not measured. One number per entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry_packets: Option<Vec<u64>>,
    /// How `entry_packets` were measured: "toeplitz" (the device key over sampled flows)
    /// or "skb_hash"; absent with them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_by: Option<&'static str>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeviceIndices {
    pub qpi: Option<f64>,
    pub isi: Option<f64>,
    pub isi_normalized: Option<f64>,
    pub table_qpi: Option<f64>,
    /// p95 ingress age (µs) of packets that arrived on hot queues (eBPF).
    pub haf95_us: Option<f64>,
}

/// One SO_REUSEPORT group: sockets of one protocol bound to one address and port in one
/// network namespace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReuseportGroupReport {
    /// Inode of the network namespace (as `stat -L /proc/PID/ns/net` shows).
    pub netns: u64,
    /// "udp" or "tcp".
    pub protocol: &'static str,
    pub address: String,
    pub port: u16,
    /// sk->sk_reuseport_cb->reuseport_id, when a probe has seen a member.
    pub reuseport_id: Option<u32>,
    pub listeners: Vec<ListenerReport>,
    /// Heaviest flows first.
    pub top_flows: Vec<FlowReport>,
    pub indices: GroupIndices,
    /// GREEN … RED, with hysteresis and dwell (observe-only).
    pub regime: GroupRegime,
    /// The field notes' recommended action for the regime: advice, never executed.
    pub advice: &'static str,
    /// σ(wᵀx) over normalized LSI, HCR, LQD, BCI, DLG and top-flow concentration.
    pub p_hot: Option<f64>,
    pub regime_transitions: u64,
    /// Joins and leaves since the agent started (restart windows).
    pub membership_changes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListenerReport {
    pub inode: u64,
    /// Position in the group's socks[] (not stable across restarts).
    pub index: Option<u32>,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// Container or pod from the owner's cgroup path, where present.
    pub container: Option<String>,
    /// sk_data_ready events: a connection ready to accept (TCP) or a datagram (UDP).
    /// None when the listener_events probe did not run this window (not attached on
    /// this kernel, --no-probes, or not read): not measured is not 0; the `sources`
    /// entry `ebpf_listener_events` says why and the group's regime is UNKNOWN.
    pub events: Option<u64>,
    /// Times reuseport_select_sock() chose this socket: one per UDP datagram or TCP SYN
    /// the kernel steered here (the opt-in selection probe, `--selection-hook`). None
    /// when that probe did not run this window; the `sources` entry `ebpf_selection`
    /// says why.
    pub selections: Option<u64>,
    /// How those selections were made, when measured (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selection: Option<SelectionReport>,
    /// Accept-queue length (TCP LISTEN) or receive-queue bytes (UDP).
    pub queue_depth: u64,
    /// Accept backlog limit (TCP LISTEN).
    pub backlog_limit: Option<u64>,
    /// SK_MEMINFO_DROPS.
    pub drops: Option<u64>,
    pub ingress_age_p95_us: Option<f64>,
    /// Reads of this socket whose packet had an ingress stamp (1 in
    /// `age_sample_every` sampled, `[probes]`): the histogram's count. Null when ages
    /// were not measured (the rx probe's read side did not run).
    pub ingress_age_samples: Option<u64>,
    /// Of those, reads on another CPU than the one that received the packet.
    pub ingress_age_other_cpu: Option<u64>,
    /// Smoothed ingress state (rate, queue depth, service rate, staleness).
    pub state: Option<ListenerState>,
}

/// One listener's selections in the window, from reuseport_select_sock()'s arguments
/// and return value (docs/json.md).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SelectionReport {
    /// The hook that counted: "fexit/reuseport_select_sock" or
    /// "kprobe+kretprobe/reuseport_select_sock".
    pub hook: &'static str,
    /// Selections where this socket was socks[reciprocal_scale(hash, num_socks)]: the
    /// kernel's plain hash rule (no BPF selector, no connected socket skipped).
    pub by_hash: u64,
    /// Calls that returned NULL with this socket as the argument: no selection; the
    /// caller kept this socket (its delivery shows in `events`).
    pub fallbacks: u64,
    /// Of the selections, those for a TCP segment other than a SYN: a segment that found
    /// no socket in ehash (a lookup racing with the swap of a request socket for its
    /// child, or a connection that is gone); the listener answers it with a reset. The
    /// connections steered here are `selections` − `non_syn`.
    pub non_syn: u64,
    /// The slot the hash rule found this socket in at its latest by-hash selection.
    pub hash_index: Option<u32>,
    /// Live sockets in the group at the latest call.
    pub num_socks: Option<u32>,
    /// Distinct selection hashes that chose this socket in the window.
    pub distinct_hashes: usize,
    /// The hashes that chose it most (udp_ehashfn()/inet_ehashfn() values), heaviest
    /// first, at most [`TOP_SELECTION_HASHES`].
    pub top_hashes: Vec<HashCount>,
}

/// Most hashes listed per listener.
pub const TOP_SELECTION_HASHES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HashCount {
    pub hash: u32,
    pub selections: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowReport {
    pub saddr: String,
    pub sport: u16,
    pub daddr: String,
    pub dport: u16,
    pub packets: u64,
    pub bytes: u64,
    pub rx_cpu: Option<u32>,
    pub rx_queue: Option<u32>,
    /// The hash the driver stored in the latest sampled packet's skb: the NIC's RSS
    /// hash (its low bits picked `rx_queue` through the indirection table); absent
    /// when the packet carried none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_hash: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GroupIndices {
    pub lsi: Option<f64>,
    pub hcr_1: Option<f64>,
    pub hcr_5: Option<f64>,
    pub lqd: Option<f64>,
    pub bci: Option<f64>,
    pub ingress_age_p50_us: Option<f64>,
    pub ingress_age_p95_us: Option<f64>,
    pub ingress_age_p99_us: Option<f64>,
    /// p95 ingress age − the configured target (µs).
    pub dlg_us: Option<f64>,
    /// Share of packets read on another CPU than the one that received them.
    pub locality_miss_ratio: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostReport {
    pub indices: HostIndices,
    pub sysctls: Option<Sysctls>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HostIndices {
    pub spi: Option<f64>,
    /// max/mean − 1 of NET_RX softirq runs over CPUs.
    pub net_rx_cpu_qpi: Option<f64>,
}
