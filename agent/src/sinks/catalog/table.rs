//! The table: every metric skewscope exports, the attribute sets and the scopes they
//! walk. Adding a metric is one entry here.

use super::types::{
    agent, attr, counter, gauge, key, len, one, AgentValue, Attr, AttrFrom, Instrument, MetricDef,
    Scope, Step,
};
use crate::config::{Limit, MAX_SHADOW_CANDIDATES};

const CPU_ATTRS: &[Attr] = &[attr("cpu", "cpu", "logical CPU number")];
const DEVICE_ATTRS: &[Attr] = &[attr("device", "name", "network interface name")];
const QUEUE_ATTRS: &[Attr] = &[attr("queue", "queue", "RX queue index")];
const GROUP_ATTRS: &[Attr] = &[
    attr("protocol", "protocol", "`udp` or `tcp`"),
    attr("address", "address", "the group's bound address"),
    attr("port", "port", "the group's bound port"),
    attr("netns", "netns", "network namespace inode"),
];
const LISTENER_ATTRS: &[Attr] = &[
    attr("listener.inode", "inode", "socket inode"),
    attr(
        "listener.index",
        "index",
        "position in the group's socks[] (absent until a probe saw it)",
    ),
];
const FLOW_ATTRS: &[Attr] = &[
    Attr {
        name: "flow.rank",
        from: AttrFrom::Rank,
        description: "1 = the heaviest flow of the window",
    },
    attr("flow.peer.address", "saddr", "the flow's source address"),
    attr("flow.peer.port", "sport", "the flow's source port"),
];
const POLICY_ATTRS: &[Attr] = &[attr(
    "policy",
    "policy",
    "replayed selector: `default` (the kernel's hash), `builtin:NAME` or an object's path",
)];
const RSS_POLICY_ATTRS: &[Attr] = &[attr(
    "policy",
    "policy",
    "indirection table: `current`, `equal` or `balanced` (docs/rss-shadow.md)",
)];
const SOURCE_ATTRS: &[Attr] = &[attr("source", "name", "collector source name")];
const PROBE_ATTRS: &[Attr] = &[attr("probe", "name", "eBPF probe source name")];

const DEVICES: Step = Step {
    array: "devices",
    limit: Some(Limit::Devices),
    attrs: DEVICE_ATTRS,
    only: None,
    max_len: None,
};
const GROUPS: Step = Step {
    array: "reuseport_groups",
    limit: Some(Limit::Groups),
    attrs: GROUP_ATTRS,
    only: None,
    max_len: None,
};

pub const HOST: Scope = Scope {
    name: "host",
    steps: &[],
};
pub const CPU: Scope = Scope {
    name: "cpu",
    steps: &[Step {
        array: "cpus",
        limit: Some(Limit::Cpus),
        attrs: CPU_ATTRS,
        only: None,
        max_len: None,
    }],
};
pub const DEVICE: Scope = Scope {
    name: "device",
    steps: &[DEVICES],
};
pub const QUEUE: Scope = Scope {
    name: "queue",
    steps: &[
        DEVICES,
        Step {
            array: "rx_queues",
            limit: Some(Limit::QueuesPerDevice),
            attrs: QUEUE_ATTRS,
            only: None,
            max_len: None,
        },
    ],
};
pub const GROUP: Scope = Scope {
    name: "group",
    steps: &[GROUPS],
};
pub const LISTENER: Scope = Scope {
    name: "listener",
    steps: &[
        GROUPS,
        Step {
            array: "listeners",
            limit: Some(Limit::ListenersPerGroup),
            attrs: LISTENER_ATTRS,
            only: None,
            max_len: None,
        },
    ],
};
pub const FLOW: Scope = Scope {
    name: "flow",
    steps: &[
        GROUPS,
        Step {
            array: "top_flows",
            limit: Some(Limit::TopFlows),
            attrs: FLOW_ATTRS,
            only: None,
            max_len: None,
        },
    ],
};
/// RSS in shadow: per device and table (current, equal, balanced).
pub const RSS_SHADOW: Scope = Scope {
    name: "rss_shadow",
    steps: &[
        DEVICES,
        Step {
            array: "rss_shadow",
            limit: None,
            attrs: RSS_POLICY_ATTRS,
            only: None,
            max_len: Some(3),
        },
    ],
};
/// The live shadow replay: per group (bounded like the groups) and policy (the default
/// and at most [`MAX_SHADOW_CANDIDATES`] candidates).
pub const SHADOW: Scope = Scope {
    name: "shadow",
    steps: &[
        Step {
            array: "shadow",
            limit: Some(Limit::Groups),
            attrs: GROUP_ATTRS,
            only: None,
            max_len: None,
        },
        Step {
            array: "policies",
            limit: None,
            attrs: POLICY_ATTRS,
            only: None,
            max_len: Some(1 + MAX_SHADOW_CANDIDATES),
        },
    ],
};
pub const SOURCE: Scope = Scope {
    name: "source",
    steps: &[Step {
        array: "sources",
        limit: Some(Limit::Sources),
        attrs: SOURCE_ATTRS,
        only: None,
        max_len: None,
    }],
};
pub const PROBE: Scope = Scope {
    name: "probe",
    steps: &[Step {
        array: "sources",
        limit: Some(Limit::Sources),
        attrs: PROBE_ATTRS,
        only: Some(("name", "ebpf_")),
        max_len: None,
    }],
};

/// Every scope, in evaluation order.
pub const SCOPES: &[&Scope] = &[
    &HOST,
    &CPU,
    &DEVICE,
    &QUEUE,
    &GROUP,
    &LISTENER,
    &FLOW,
    &SHADOW,
    &RSS_SHADOW,
    &SOURCE,
    &PROBE,
];
/// Upper bounds (seconds) of the cycle duration histogram: a cycle is a few ms on a
/// small host and should stay well under the 1 s default interval on a large one.
pub const CYCLE_DURATION_BOUNDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

const QUEUE_COUNTER_SOURCE: &[Attr] = &[attr(
    "counter.source",
    "source",
    "which source fed the counters (netdev_qstats, ethtool_stats, ethtool_text)",
)];
const SOURCE_STATUS: &[Attr] = &[attr(
    "status",
    "status",
    "ok, unsupported, skipped or failed",
)];
const REGIME: &[Attr] = &[attr(
    "regime",
    "regime",
    "the current regime (observe-only)",
)];
const DEVICE_INFO: &[Attr] = &[
    attr(
        "driver",
        "driver",
        "kernel driver (absent for virtual devices)",
    ),
    attr("numa_node", "numa_node", "the device's NUMA node"),
];
const LISTENER_INFO: &[Attr] = &[
    attr("pid", "pid", "owner process id"),
    attr("comm", "comm", "owner process name"),
    attr(
        "container",
        "container",
        "container or pod id from the cgroup path",
    ),
];
const LIMIT_ATTR: &[Attr] = &[attr(
    "limit",
    "limit",
    "the bound that dropped series (max_cpus, max_devices, …)",
)];
const SOURCE_ERROR_ATTR: &[Attr] = &[attr("source", "source", "collector source name")];

/// Every metric skewscope exports.
pub static CATALOG: &[MetricDef] = &[
    // Host.
    gauge(
        "skewscope.host.spi",
        "{index}",
        "Softirq polarization index (SPI): weighted NET_RX softirq skew across CPUs plus \
         softnet time_squeeze and drop growth.",
        key(&HOST, "host.indices.spi"),
    ),
    gauge(
        "skewscope.host.net_rx_cpu_qpi",
        "{index}",
        "NET_RX softirq runs over CPUs: max/mean − 1 (0 = even).",
        key(&HOST, "host.indices.net_rx_cpu_qpi"),
    ),
    gauge(
        "skewscope.host.netdev_budget",
        "{packet}",
        "net.core.netdev_budget: packets one NET_RX softirq run may process.",
        key(&HOST, "host.sysctls.netdev_budget"),
    ),
    gauge(
        "skewscope.host.netdev_budget_time",
        "s",
        "net.core.netdev_budget_usecs: time one NET_RX softirq run may take.",
        key(&HOST, "host.sysctls.netdev_budget_usecs").scale(1e-6),
    ),
    gauge(
        "skewscope.host.netdev_max_backlog",
        "{packet}",
        "net.core.netdev_max_backlog: per-CPU backlog queue length.",
        key(&HOST, "host.sysctls.netdev_max_backlog"),
    ),
    gauge(
        "skewscope.host.rps_sock_flow_entries",
        "{entry}",
        "net.core.rps_sock_flow_entries (0: RFS off).",
        key(&HOST, "host.sysctls.rps_sock_flow_entries"),
    ),
    gauge(
        "skewscope.host.tcp_migrate_req",
        "",
        "net.ipv4.tcp_migrate_req: 1 when requests migrate to another listener of a \
         reuseport group on close (Linux 5.14+).",
        key(&HOST, "host.sysctls.tcp_migrate_req"),
    ),
    // Per CPU.
    gauge(
        "skewscope.cpu.net_rx.softirqs",
        "{softirq}/s",
        "NET_RX softirq runs per second on this CPU (/proc/softirqs).",
        key(&CPU, "net_rx_softirqs").rate(),
    ),
    gauge(
        "skewscope.cpu.net_rx.share",
        "1",
        "This CPU's share of the host's NET_RX softirq runs.",
        key(&CPU, "net_rx_share"),
    ),
    gauge(
        "skewscope.cpu.net_rx.utilization",
        "1",
        "Share of wall time this CPU spent in NET_RX softirq (eBPF irq:softirq_entry/exit).",
        key(&CPU, "net_rx_time_us").scale(1e-6).rate(),
    ),
    gauge(
        "skewscope.cpu.softirq.utilization",
        "1",
        "Share of wall time this CPU spent in all softirqs (/proc/stat).",
        key(&CPU, "softirq_time_ms").scale(1e-3).rate(),
    ),
    gauge(
        "skewscope.cpu.softnet.processed",
        "{packet}/s",
        "Packets processed per second by this CPU's backlog (softnet_stat).",
        key(&CPU, "softnet.processed").rate(),
    ),
    gauge(
        "skewscope.cpu.softnet.dropped",
        "{packet}/s",
        "Packets dropped per second: backlog full (softnet_stat).",
        key(&CPU, "softnet.dropped").rate(),
    ),
    gauge(
        "skewscope.cpu.softnet.time_squeeze",
        "{event}/s",
        "NET_RX runs per second that ended with work left (budget or time; softnet_stat).",
        key(&CPU, "softnet.time_squeeze").rate(),
    ),
    gauge(
        "skewscope.cpu.softnet.received_rps",
        "{ipi}/s",
        "RPS inter-processor interrupts received per second (softnet_stat).",
        key(&CPU, "softnet.received_rps").rate(),
    ),
    gauge(
        "skewscope.cpu.softnet.flow_limit",
        "{packet}/s",
        "Packets dropped per second by the RPS flow limit (softnet_stat).",
        key(&CPU, "softnet.flow_limit_count").rate(),
    ),
    gauge(
        "skewscope.cpu.softnet.backlog",
        "{packet}",
        "Packets waiting in this CPU's input and process queues (softnet_stat, Linux 5.10+).",
        key(&CPU, "softnet.backlog_len"),
    ),
    // Per device (RSS).
    gauge(
        "skewscope.device.info",
        "",
        "1 per watched device; the attributes carry its driver and NUMA node.",
        one(&DEVICE).attrs(DEVICE_INFO),
    ),
    gauge(
        "skewscope.rss.qpi",
        "{index}",
        "Queue polarization index (QPI): max/mean − 1 of per-RX-queue packet rates \
         (0 = even; absent while the device is idle).",
        key(&DEVICE, "indices.qpi"),
    ),
    gauge(
        "skewscope.rss.isi",
        "{index}",
        "IRQ skew index (ISI): Herfindahl sum of the RX queues' shares of the device's IRQs.",
        key(&DEVICE, "indices.isi"),
    ),
    gauge(
        "skewscope.rss.isi_normalized",
        "{index}",
        "ISI normalized to 0 (even) .. 1 (one queue takes every IRQ).",
        key(&DEVICE, "indices.isi_normalized"),
    ),
    gauge(
        "skewscope.rss.table_qpi",
        "{index}",
        "QPI of the RSS indirection table: max/mean − 1 of the queues' shares of entries.",
        key(&DEVICE, "indices.table_qpi"),
    ),
    gauge(
        "skewscope.rss.haf95",
        "s",
        "HAF95: p95 ingress age of packets that arrived on hot queues (eBPF).",
        key(&DEVICE, "indices.haf95_us").scale(1e-6),
    ),
    gauge(
        "skewscope.rss.queues",
        "{queue}",
        "RX queues of the device.",
        len(&DEVICE, "rx_queues"),
    ),
    gauge(
        "skewscope.rss.irq_cpus_off_node",
        "{cpu}",
        "CPUs serving the device's queue IRQs outside its NUMA node.",
        len(&DEVICE, "irq_cpus_off_node"),
    ),
    gauge(
        "skewscope.rss.regime",
        "",
        "1 per device; `regime` is its RSS regime (RSS_BALANCED, RSS_DRIFT, RSS_POLARIZED, \
         RSS_CONTAIN), with hysteresis and dwell. Observe-only: reported, never acted on.",
        one(&DEVICE).attrs(REGIME),
    ),
    counter(
        "skewscope.rss.regime_transitions",
        "{transition}",
        "RSS regime changes of the device since the agent started.",
        key(&DEVICE, "regime_transitions"),
    ),
    // Per RX queue.
    gauge(
        "skewscope.rss.queue.packets",
        "{packet}/s",
        "Packets received per second on this RX queue.",
        key(&QUEUE, "rx_packets").rate().attrs(QUEUE_COUNTER_SOURCE),
    ),
    gauge(
        "skewscope.rss.queue.bytes",
        "By/s",
        "Bytes received per second on this RX queue.",
        key(&QUEUE, "rx_bytes").rate().attrs(QUEUE_COUNTER_SOURCE),
    ),
    gauge(
        "skewscope.rss.queue.interrupts",
        "{interrupt}/s",
        "Interrupts per second of the IRQ lines serving this RX queue.",
        key(&QUEUE, "irq_count").rate().require("irqs"),
    ),
    gauge(
        "skewscope.rss.queue.table_share",
        "1",
        "Share of the RSS indirection table entries pointing at this queue.",
        key(&QUEUE, "table_share"),
    ),
    gauge(
        "skewscope.rss.queue.affinity_drifted",
        "",
        "1 when the queue's IRQ affinity differs from the first one the agent saw (moved \
         since; reported, never reverted), else 0.",
        key(&QUEUE, "affinity_drifted").require("irqs"),
    ),
    counter(
        "skewscope.rss.queue.affinity_changes",
        "{change}",
        "Changes of the queue's IRQ affinity since the agent started.",
        key(&QUEUE, "affinity_changes").require("irqs"),
    ),
    // Per SO_REUSEPORT group.
    gauge(
        "skewscope.reuseport.lsi",
        "{index}",
        "Listener skew index (LSI): std/mean of the listeners' event rates (0 = even).",
        key(&GROUP, "indices.lsi"),
    ),
    gauge(
        "skewscope.reuseport.hcr_1",
        "{index}",
        "Heavy-flow concentration (HCR-1): share of the group's traffic in its top flow.",
        key(&GROUP, "indices.hcr_1"),
    ),
    gauge(
        "skewscope.reuseport.hcr_5",
        "{index}",
        "Heavy-flow concentration (HCR-5): share of the group's traffic in its top 5 flows.",
        key(&GROUP, "indices.hcr_5"),
    ),
    gauge(
        "skewscope.reuseport.lqd",
        "{index}",
        "Listener queue divergence (LQD): max − median of the listeners' queue depths \
         (TCP: connections, UDP: bytes).",
        key(&GROUP, "indices.lqd"),
    ),
    gauge(
        "skewscope.reuseport.bci",
        "{index}",
        "Burst concentration index (BCI): p95 / median of per-listener events in 1 s windows.",
        key(&GROUP, "indices.bci"),
    ),
    gauge(
        "skewscope.reuseport.ingress_age.p50",
        "s",
        "Median ingress age (kernel receive to application read) of the group's packets.",
        key(&GROUP, "indices.ingress_age_p50_us").scale(1e-6),
    ),
    gauge(
        "skewscope.reuseport.ingress_age.p95",
        "s",
        "p95 ingress age (kernel receive to application read) of the group's packets.",
        key(&GROUP, "indices.ingress_age_p95_us").scale(1e-6),
    ),
    gauge(
        "skewscope.reuseport.ingress_age.p99",
        "s",
        "p99 ingress age (kernel receive to application read) of the group's packets.",
        key(&GROUP, "indices.ingress_age_p99_us").scale(1e-6),
    ),
    gauge(
        "skewscope.reuseport.dlg",
        "s",
        "Delivery lag (DLG): p95 ingress age minus the configured target.",
        key(&GROUP, "indices.dlg_us").scale(1e-6),
    ),
    gauge(
        "skewscope.reuseport.locality_miss",
        "1",
        "Share of packets read on another CPU than the one that received them.",
        key(&GROUP, "indices.locality_miss_ratio"),
    ),
    gauge(
        "skewscope.reuseport.listeners",
        "{listener}",
        "Sockets in the group.",
        len(&GROUP, "listeners"),
    ),
    counter(
        "skewscope.reuseport.membership_changes",
        "{change}",
        "Listener joins and leaves since the agent started (restart windows).",
        key(&GROUP, "membership_changes"),
    ),
    gauge(
        "skewscope.reuseport.regime",
        "",
        "1 per group; `regime` is its listener regime (GREEN, YELLOW, ORANGE, RED), with \
         hysteresis and dwell, or UNKNOWN while its per-listener events are not measured \
         (the listener_events probe did not run). Observe-only: reported, never acted on.",
        one(&GROUP).attrs(REGIME),
    ),
    counter(
        "skewscope.reuseport.regime_transitions",
        "{transition}",
        "Listener regime changes of the group since the agent started.",
        key(&GROUP, "regime_transitions"),
    ),
    gauge(
        "skewscope.reuseport.p_hot",
        "{probability}",
        "P_hot: σ(wᵀx) over normalized LSI, HCR, LQD, BCI, DLG and top-flow concentration; \
         the chance a hot listener is forming.",
        key(&GROUP, "p_hot"),
    ),
    // Per listener.
    gauge(
        "skewscope.reuseport.listener.info",
        "",
        "1 per listener; the attributes carry its owner process and container.",
        one(&LISTENER).attrs(LISTENER_INFO),
    ),
    gauge(
        "skewscope.reuseport.listener.events",
        "{event}/s",
        "sk_data_ready events per second: connections ready to accept (TCP) or datagrams \
         (UDP).",
        key(&LISTENER, "events").rate(),
    ),
    gauge(
        "skewscope.reuseport.listener.selections",
        "{selection}/s",
        "reuseport_select_sock() choices of this socket per second: datagrams (UDP) and \
         SYNs (TCP) the kernel steered to it. Only with the opt-in selection probe \
         (--selection-hook).",
        key(&LISTENER, "selections").rate(),
    ),
    gauge(
        "skewscope.reuseport.listener.queue_depth",
        "{depth}",
        "Accept-queue length (TCP LISTEN) or receive-queue bytes (UDP).",
        key(&LISTENER, "queue_depth"),
    ),
    gauge(
        "skewscope.reuseport.listener.backlog_limit",
        "{connection}",
        "Accept backlog limit (TCP LISTEN).",
        key(&LISTENER, "backlog_limit"),
    ),
    counter(
        "skewscope.reuseport.listener.drops",
        "{packet}",
        "Packets the socket dropped since it was created (SK_MEMINFO_DROPS).",
        key(&LISTENER, "drops"),
    ),
    gauge(
        "skewscope.reuseport.listener.ingress_age.p95",
        "s",
        "p95 ingress age of the listener's packets.",
        key(&LISTENER, "ingress_age_p95_us").scale(1e-6),
    ),
    gauge(
        "skewscope.reuseport.listener.service_rate",
        "{event}/s",
        "Smoothed departures per second: arrivals minus queue growth.",
        key(&LISTENER, "state.service_rate_per_sec"),
    ),
    gauge(
        "skewscope.reuseport.listener.queue_delay",
        "s",
        "Little's-law wait of a newly queued item: smoothed depth / smoothed service rate.",
        key(&LISTENER, "state.queue_delay_secs"),
    ),
    gauge(
        "skewscope.reuseport.listener.staleness",
        "s",
        "Time since the listener's queue was last seen empty (a lower bound).",
        key(&LISTENER, "state.staleness_secs"),
    ),
    // Top flows per group.
    gauge(
        "skewscope.reuseport.flow.packets",
        "{packet}/s",
        "Packets per second of one of the group's heaviest flows (sampled).",
        key(&FLOW, "packets").rate(),
    ),
    gauge(
        "skewscope.reuseport.flow.bytes",
        "By/s",
        "Bytes per second of one of the group's heaviest flows (sampled).",
        key(&FLOW, "bytes").rate(),
    ),
    // RSS in shadow, per device and indirection table.
    gauge(
        "skewscope.rss.shadow.qpi",
        "{index}",
        "Predicted QPI of the device's queues under the table, from the window's packets \
         per indirection-table entry (`current`: the table in force).",
        key(&RSS_SHADOW, "qpi"),
    ),
    gauge(
        "skewscope.rss.shadow.max_share",
        "1",
        "Predicted share of the window's entry packets on the hottest queue under the table.",
        key(&RSS_SHADOW, "max_share"),
    ),
    gauge(
        "skewscope.rss.shadow.entries_moved",
        "{entry}",
        "Indirection-table entries the table moves to another queue than the current table.",
        key(&RSS_SHADOW, "entries_moved"),
    ),
    // Live shadow replay, per group and policy.
    gauge(
        "skewscope.shadow.lsi",
        "{index}",
        "Predicted LSI of the group's recent flows under the policy, replayed through a \
         private replica of the group (`default`: the kernel's hash); beside \
         skewscope.reuseport.lsi, the LSI the group shows.",
        key(&SHADOW, "lsi"),
    ),
    gauge(
        "skewscope.shadow.max_share",
        "1",
        "Predicted largest share of the group's recent traffic on one socket under the \
         policy.",
        key(&SHADOW, "max_share"),
    ),
    gauge(
        "skewscope.shadow.skew_reduction",
        "1",
        "Predicted skew reduction of the policy against the default: (LSI_default − \
         LSI_policy) / LSI_default (negative: more skewed).",
        key(&SHADOW, "skew_reduction"),
    ),
    // The agent itself.
    gauge(
        "skewscope.agent.source.ok",
        "",
        "1 when the source delivered this cycle, else 0; `status` says why not.",
        key(&SOURCE, "ok").attrs(SOURCE_STATUS),
    ),
    gauge(
        "skewscope.agent.source.duration",
        "s",
        "Time the source took this cycle.",
        key(&SOURCE, "duration_us").scale(1e-6),
    ),
    gauge(
        "skewscope.agent.probe.attached_share",
        "1",
        "Share of the window the per-packet probes were attached; below 1 the probe \
         budget duty-cycles them and their counts are estimates (absent while they run \
         all the time).",
        key(&HOST, "probe_sampling.attached_share"),
    ),
    gauge(
        "skewscope.agent.probe.packet_cost",
        "s",
        "The per-packet probes' cost per received packet the probe budget works with: \
         measured with BPF run-time stats over a 200 ms window every minute (the \
         configured value until then).",
        key(&HOST, "probe_sampling.packet_cost_ns").scale(1e-9),
    ),
    gauge(
        "skewscope.agent.probe.cpu_share",
        "1",
        "Share of the busiest CPU the per-packet probes take: packet cost × its packet \
         rate × duty; the probe budget keeps it at or below probes.cpu_budget.",
        key(&HOST, "probe_sampling.cpu_share"),
    ),
    gauge(
        "skewscope.agent.probe.attached",
        "",
        "1 when the eBPF probe is attached and was read this cycle, else 0.",
        key(&PROBE, "ok").attrs(SOURCE_STATUS),
    ),
    agent(
        "skewscope.agent.source.errors",
        Instrument::Counter,
        "{error}",
        "Cycles in which the source failed.",
        AgentValue::SourceErrors,
        SOURCE_ERROR_ATTR,
    ),
    agent(
        "skewscope.agent.cycles",
        Instrument::Counter,
        "{cycle}",
        "Reports built (collection cycles that completed a window).",
        AgentValue::Cycles,
        &[],
    ),
    agent(
        "skewscope.agent.cycle.duration",
        Instrument::Histogram(CYCLE_DURATION_BOUNDS),
        "s",
        "Time one collection cycle took (sources and model).",
        AgentValue::CycleDuration,
        &[],
    ),
    agent(
        "skewscope.agent.export.successes",
        Instrument::Counter,
        "{export}",
        "OTLP exports the receiver accepted.",
        AgentValue::ExportSuccesses,
        &[],
    ),
    agent(
        "skewscope.agent.export.failures",
        Instrument::Counter,
        "{export}",
        "OTLP exports that failed (receiver down, slow past the timeout, or refusing).",
        AgentValue::ExportFailures,
        &[],
    ),
    agent(
        "skewscope.agent.export.data_points",
        Instrument::Counter,
        "{data_point}",
        "Data points in OTLP exports the receiver accepted.",
        AgentValue::ExportedPoints,
        &[],
    ),
    agent(
        "skewscope.agent.export.dropped_points",
        Instrument::Counter,
        "{data_point}",
        "Data points lost with failed OTLP exports (never queued: memory stays bounded).",
        AgentValue::DroppedPoints,
        &[],
    ),
    agent(
        "skewscope.agent.cardinality.capped",
        Instrument::Counter,
        "{series}",
        "Series left out because a cardinality bound was reached, summed over cycles.",
        AgentValue::CardinalityCapped,
        LIMIT_ATTR,
    ),
    agent(
        "skewscope.agent.prometheus.scrapes",
        Instrument::Counter,
        "{scrape}",
        "Requests served on the Prometheus /metrics endpoint.",
        AgentValue::Scrapes,
        &[],
    ),
];
