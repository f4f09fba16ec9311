//! The metric catalog: every metric skewscope exports, defined once.
//!
//! Each entry names one metric `skewscope.<area>.<name>`, its instrument, unit,
//! description and attributes, and where its value comes from: a key of the cycle's JSON
//! report (schema `skewscope.snapshot/v1`, docs/json.md) or the agent's own counters.
//! The OTLP exporter, the Prometheus exposition, docs/metrics.md (`skewscope metrics
//! --markdown`) and the tests all read this table, so adding a metric is one entry.
//!
//! Values are read from the report's JSON form on purpose: its keys are a documented
//! contract that is only ever extended, and the tests compare what a receiver got with
//! the JSON line the agent printed for the same cycle through this same table.
//!
//! Units are chosen for the names an OpenTelemetry Collector's Prometheus exporter
//! derives from them (see [`super::prometheus::metric_name`]): indices carry a
//! curly-brace annotation (`{index}`) that is dropped, shares carry `1` (`_ratio`), rates
//! `{packet}/s` (`_per_second`), durations `s` (`_seconds`).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::Value;

/// How a metric is recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Instrument {
    /// Last value (OTel asynchronous gauge).
    Gauge,
    /// Monotonic cumulative sum (OTel asynchronous counter; Prometheus `_total`).
    Counter,
    /// Explicit-bucket histogram with these upper bounds.
    Histogram(&'static [f64]),
}

impl Instrument {
    pub fn label(self) -> &'static str {
        match self {
            Instrument::Gauge => "gauge",
            Instrument::Counter => "counter",
            Instrument::Histogram(_) => "histogram",
        }
    }
}

/// A bound on how many elements of one report array become series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Limit {
    Cpus,
    Devices,
    QueuesPerDevice,
    Groups,
    ListenersPerGroup,
    TopFlows,
    Sources,
}

impl Limit {
    pub const ALL: [Limit; 7] = [
        Limit::Cpus,
        Limit::Devices,
        Limit::QueuesPerDevice,
        Limit::Groups,
        Limit::ListenersPerGroup,
        Limit::TopFlows,
        Limit::Sources,
    ];

    /// The config key (and `limit` attribute value) of this bound.
    pub fn key(self) -> &'static str {
        match self {
            Limit::Cpus => "max_cpus",
            Limit::Devices => "max_devices",
            Limit::QueuesPerDevice => "max_queues_per_device",
            Limit::Groups => "max_groups",
            Limit::ListenersPerGroup => "max_listeners_per_group",
            Limit::TopFlows => "top_flows",
            Limit::Sources => "max_sources",
        }
    }
}

/// Cardinality bounds: how many elements of each report array are exported. Elements
/// beyond a bound are dropped in report order (the report lists flows heaviest first)
/// and counted in `skewscope.agent.cardinality.capped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_cpus: usize,
    pub max_devices: usize,
    pub max_queues_per_device: usize,
    pub max_groups: usize,
    pub max_listeners_per_group: usize,
    pub top_flows: usize,
    pub max_sources: usize,
}

/// The OpenTelemetry SDK folds series beyond 2000 per metric into one overflow series;
/// the bounds keep every metric below it.
pub const SDK_SERIES_PER_METRIC: usize = 2000;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_cpus: 1024,
            max_devices: 16,
            max_queues_per_device: 64,
            max_groups: 32,
            max_listeners_per_group: 32,
            top_flows: 10,
            max_sources: 128,
        }
    }
}

impl Limits {
    pub fn get(&self, limit: Limit) -> usize {
        match limit {
            Limit::Cpus => self.max_cpus,
            Limit::Devices => self.max_devices,
            Limit::QueuesPerDevice => self.max_queues_per_device,
            Limit::Groups => self.max_groups,
            Limit::ListenersPerGroup => self.max_listeners_per_group,
            Limit::TopFlows => self.top_flows,
            Limit::Sources => self.max_sources,
        }
    }

    /// Series one metric of each scope can reach under these bounds.
    pub fn worst_case_series(&self) -> Vec<(&'static str, usize)> {
        SCOPES
            .iter()
            .map(|s| {
                let n = s
                    .steps
                    .iter()
                    .map(|st| {
                        st.limit
                            .map_or(st.max_len.unwrap_or(usize::MAX), |l| self.get(l))
                    })
                    .fold(1usize, |a, b| a.saturating_mul(b));
                (s.name, n)
            })
            .collect()
    }

    /// Every bound must be at least 1 and keep each metric under the SDK's series cap.
    pub fn validate(&self) -> Result<(), String> {
        for l in Limit::ALL {
            if self.get(l) == 0 {
                return Err(format!("{} must be at least 1", l.key()));
            }
        }
        for (scope, n) in self.worst_case_series() {
            if n > SDK_SERIES_PER_METRIC {
                return Err(format!(
                    "the limits allow {n} series per {scope} metric, above the \
                     {SDK_SERIES_PER_METRIC} an OpenTelemetry SDK keeps per metric"
                ));
            }
        }
        Ok(())
    }
}

/// Where one attribute's value comes from.
#[derive(Debug, Clone, Copy)]
pub enum AttrFrom {
    /// A key (dotted path) of the element.
    Key(&'static str),
    /// The element's 1-based position in its array (the report orders it).
    Rank,
}

#[derive(Debug, Clone, Copy)]
pub struct Attr {
    pub name: &'static str,
    pub from: AttrFrom,
    pub description: &'static str,
}

const fn attr(name: &'static str, key: &'static str, description: &'static str) -> Attr {
    Attr {
        name,
        from: AttrFrom::Key(key),
        description,
    }
}

/// One level of the walk into the report: an array, its bound, the attributes each of
/// its elements gives the series below it.
#[derive(Debug)]
pub struct Step {
    pub array: &'static str,
    pub limit: Option<Limit>,
    pub attrs: &'static [Attr],
    /// Keep only elements whose string at this key starts with this prefix.
    pub only: Option<(&'static str, &'static str)>,
    /// A bound the agent itself enforces on the array (not configurable), for arrays
    /// without a `limit`.
    pub max_len: Option<usize>,
}

/// A set of series sharing the same walk: one element per series.
#[derive(Debug)]
pub struct Scope {
    pub name: &'static str,
    pub steps: &'static [Step],
}

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
/// The live shadow replay: per group (bounded like the groups) and policy (the default
/// and at most [`crate::config::MAX_SHADOW_CANDIDATES`] candidates).
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
            max_len: Some(1 + crate::config::MAX_SHADOW_CANDIDATES),
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
    &HOST, &CPU, &DEVICE, &QUEUE, &GROUP, &LISTENER, &FLOW, &SHADOW, &SOURCE, &PROBE,
];

/// What a report-fed metric reads from each element of its scope.
#[derive(Debug, Clone, Copy)]
pub enum ValueOf {
    /// A number or bool (1/0) at this key (dotted path); null or absent: no point.
    Key(&'static str),
    /// The length of the array at this key.
    Len(&'static str),
    /// 1 for every element (info-style metrics whose attributes carry the facts).
    One,
}

#[derive(Debug, Clone, Copy)]
pub struct FromReport {
    pub scope: &'static Scope,
    pub value: ValueOf,
    /// Multiply by this (unit conversion, e.g. µs to s).
    pub scale: f64,
    /// Divide by the report's window_secs: a count over the window becomes a rate.
    pub per_second: bool,
    /// Attributes of this metric only, read from the same element.
    pub attrs: &'static [Attr],
    /// Emit only where the array at this key is non-empty.
    pub require: Option<&'static str>,
}

impl FromReport {
    const fn new(scope: &'static Scope, value: ValueOf) -> Self {
        Self {
            scope,
            value,
            scale: 1.0,
            per_second: false,
            attrs: &[],
            require: None,
        }
    }
    const fn rate(self) -> Self {
        Self {
            per_second: true,
            ..self
        }
    }
    const fn scale(self, scale: f64) -> Self {
        Self { scale, ..self }
    }
    const fn attrs(self, attrs: &'static [Attr]) -> Self {
        Self { attrs, ..self }
    }
    const fn require(self, key: &'static str) -> Self {
        Self {
            require: Some(key),
            ..self
        }
    }
}

const fn key(scope: &'static Scope, path: &'static str) -> FromReport {
    FromReport::new(scope, ValueOf::Key(path))
}
const fn len(scope: &'static Scope, path: &'static str) -> FromReport {
    FromReport::new(scope, ValueOf::Len(path))
}
const fn one(scope: &'static Scope) -> FromReport {
    FromReport::new(scope, ValueOf::One)
}

/// Counters the agent keeps about itself across cycles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentValue {
    Cycles,
    CycleDuration,
    SourceErrors,
    ExportSuccesses,
    ExportFailures,
    ExportedPoints,
    DroppedPoints,
    CardinalityCapped,
    Scrapes,
}

#[derive(Debug, Clone, Copy)]
pub enum Source {
    Report(FromReport),
    Agent {
        value: AgentValue,
        attrs: &'static [Attr],
    },
}

#[derive(Debug)]
pub struct MetricDef {
    pub name: &'static str,
    pub instrument: Instrument,
    pub unit: &'static str,
    pub description: &'static str,
    pub source: Source,
}

const fn gauge(
    name: &'static str,
    unit: &'static str,
    description: &'static str,
    from: FromReport,
) -> MetricDef {
    MetricDef {
        name,
        instrument: Instrument::Gauge,
        unit,
        description,
        source: Source::Report(from),
    }
}

const fn counter(
    name: &'static str,
    unit: &'static str,
    description: &'static str,
    from: FromReport,
) -> MetricDef {
    MetricDef {
        name,
        instrument: Instrument::Counter,
        unit,
        description,
        source: Source::Report(from),
    }
}

const fn agent(
    name: &'static str,
    instrument: Instrument,
    unit: &'static str,
    description: &'static str,
    value: AgentValue,
    attrs: &'static [Attr],
) -> MetricDef {
    MetricDef {
        name,
        instrument,
        unit,
        description,
        source: Source::Agent { value, attrs },
    }
}

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
         hysteresis and dwell. Observe-only: reported, never acted on.",
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

/// An attribute value, typed as it appears in the report.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    F64(f64),
    Bool(bool),
}

impl AttrValue {
    fn from_json(v: &Value) -> Option<Self> {
        match v {
            Value::String(s) => Some(AttrValue::Str(s.clone())),
            Value::Bool(b) => Some(AttrValue::Bool(*b)),
            Value::Number(n) => n
                .as_i64()
                .map(AttrValue::Int)
                .or_else(|| n.as_u64().map(|u| AttrValue::Int(u as i64)))
                .or_else(|| n.as_f64().map(AttrValue::F64)),
            _ => None,
        }
    }
}

impl std::fmt::Display for AttrValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttrValue::Str(s) => f.write_str(s),
            AttrValue::Int(i) => write!(f, "{i}"),
            AttrValue::F64(x) => write!(f, "{x}"),
            AttrValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// One data point of one report-fed metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub attrs: Vec<(&'static str, AttrValue)>,
    pub value: f64,
}

/// The catalog applied to one report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evaluation {
    /// Points per catalog entry (same index as [`CATALOG`]); empty for agent metrics.
    pub points: Vec<Vec<Point>>,
    /// Elements left out per bound in this report.
    pub capped: BTreeMap<Limit, u64>,
}

/// A dotted path into a JSON object.
fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

struct Element<'a> {
    attrs: Vec<(&'static str, AttrValue)>,
    value: &'a Value,
}

/// Walk one scope: the elements that become series, and how many the last step's bound
/// left out.
fn walk<'a>(report: &'a Value, scope: &Scope, limits: &Limits) -> (Vec<Element<'a>>, u64) {
    let mut current = vec![Element {
        attrs: Vec::new(),
        value: report,
    }];
    let mut dropped = 0;
    for (depth, step) in scope.steps.iter().enumerate() {
        let last = depth + 1 == scope.steps.len();
        let mut next = Vec::new();
        for parent in &current {
            let Some(items) = parent.value.get(step.array).and_then(Value::as_array) else {
                continue;
            };
            let bound = step
                .limit
                .map_or(step.max_len.unwrap_or(usize::MAX), |l| limits.get(l));
            let mut kept = 0usize;
            for (i, item) in items.iter().enumerate() {
                if let Some((k, prefix)) = step.only {
                    if !lookup(item, k)
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.starts_with(prefix))
                    {
                        continue;
                    }
                }
                if kept == bound {
                    if last {
                        dropped += 1;
                    }
                    continue;
                }
                kept += 1;
                let mut attrs = parent.attrs.clone();
                push_attrs(&mut attrs, step.attrs, item, i);
                next.push(Element { attrs, value: item });
            }
        }
        current = next;
    }
    (current, dropped)
}

fn push_attrs(out: &mut Vec<(&'static str, AttrValue)>, attrs: &[Attr], item: &Value, i: usize) {
    for a in attrs {
        let v = match a.from {
            AttrFrom::Key(k) => lookup(item, k).and_then(AttrValue::from_json),
            AttrFrom::Rank => Some(AttrValue::Int(i as i64 + 1)),
        };
        if let Some(v) = v {
            out.push((a.name, v));
        }
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// Apply the catalog to one report (its JSON form): every report-fed point, and what the
/// bounds left out.
pub fn evaluate(report: &Value, limits: &Limits) -> Evaluation {
    let window = report
        .get("window_secs")
        .and_then(Value::as_f64)
        .filter(|s| *s > 0.0);
    let mut capped = BTreeMap::new();
    let walked: Vec<(&str, Vec<Element>)> = SCOPES
        .iter()
        .map(|scope| {
            let (elements, dropped) = walk(report, scope, limits);
            if let Some(limit) = scope.steps.last().and_then(|s| s.limit) {
                let c = capped.entry(limit).or_insert(0);
                *c = (*c).max(dropped);
            }
            (scope.name, elements)
        })
        .collect();
    capped.retain(|_, n| *n > 0);

    let points = CATALOG
        .iter()
        .map(|def| {
            let Source::Report(from) = &def.source else {
                return Vec::new();
            };
            let Some((_, elements)) = walked.iter().find(|(n, _)| *n == from.scope.name) else {
                return Vec::new();
            };
            let divisor = match (from.per_second, window) {
                (false, _) => 1.0,
                (true, Some(w)) => w,
                (true, None) => return Vec::new(),
            };
            elements
                .iter()
                .filter(|e| {
                    from.require.is_none_or(|k| {
                        lookup(e.value, k)
                            .and_then(Value::as_array)
                            .is_some_and(|a| !a.is_empty())
                    })
                })
                .filter_map(|e| {
                    let raw = match from.value {
                        ValueOf::Key(k) => number(lookup(e.value, k)?)?,
                        ValueOf::Len(k) => lookup(e.value, k)?.as_array()?.len() as f64,
                        ValueOf::One => 1.0,
                    };
                    let mut attrs = e.attrs.clone();
                    push_attrs(&mut attrs, from.attrs, e.value, 0);
                    Some(Point {
                        attrs,
                        value: raw * from.scale / divisor,
                    })
                })
                .collect()
        })
        .collect();
    Evaluation { points, capped }
}

/// Keys the catalog reads that a report lacks although it has the object holding them:
/// a renamed report field (the JSON schema is only ever extended). Empty when the
/// catalog and the report agree.
pub fn missing_keys(report: &Value) -> Vec<String> {
    let unlimited = Limits {
        max_cpus: usize::MAX,
        max_devices: usize::MAX,
        max_queues_per_device: usize::MAX,
        max_groups: usize::MAX,
        max_listeners_per_group: usize::MAX,
        top_flows: usize::MAX,
        max_sources: usize::MAX,
    };
    let mut missing = Vec::new();
    for def in CATALOG {
        let Source::Report(from) = &def.source else {
            continue;
        };
        let (elements, _) = walk(report, from.scope, &unlimited);
        let keys = match from.value {
            ValueOf::Key(k) | ValueOf::Len(k) => vec![k],
            ValueOf::One => vec![],
        };
        let attr_keys = from.attrs.iter().filter_map(|a| match a.from {
            AttrFrom::Key(k) => Some(k),
            AttrFrom::Rank => None,
        });
        for key in keys.into_iter().chain(attr_keys) {
            // Keys below an optional object (softnet, sysctls) need that object present.
            let parent = key.rsplit_once('.').map(|(p, _)| p);
            for e in &elements {
                let has_parent =
                    parent.is_none_or(|p| lookup(e.value, p).is_some_and(|v| !v.is_null()));
                if has_parent && lookup(e.value, key).is_none() {
                    missing.push(format!(
                        "{}: no key {key} in a {} element",
                        def.name, from.scope.name
                    ));
                    break;
                }
            }
        }
    }
    missing
}

/// Every attribute a metric's points may carry.
pub fn attributes(def: &MetricDef) -> Vec<&'static Attr> {
    match &def.source {
        Source::Report(from) => from
            .scope
            .steps
            .iter()
            .flat_map(|s| s.attrs.iter())
            .chain(from.attrs.iter())
            .collect(),
        Source::Agent { attrs, .. } => attrs.iter().collect(),
    }
}

/// Where a report-fed metric's value comes from, in the JSON schema's terms.
pub fn json_source(from: &FromReport) -> String {
    let mut path: String = from
        .scope
        .steps
        .iter()
        .map(|s| format!("{}[].", s.array))
        .collect();
    match from.value {
        ValueOf::Key(k) => path.push_str(k),
        ValueOf::Len(k) => path = format!("len({path}{k})"),
        ValueOf::One => path = format!("1 per {}", path.trim_end_matches('.')),
    }
    if let Some((k, prefix)) = from.scope.steps.last().and_then(|s| s.only) {
        let _ = write!(path, " where {k} starts with {prefix}");
    }
    if from.scale != 1.0 {
        let _ = write!(path, " × {:e}", from.scale);
    }
    if from.per_second {
        path.push_str(" / window_secs");
    }
    path
}

/// docs/metrics.md, generated from the catalog (`skewscope metrics --markdown`).
pub fn markdown() -> String {
    let mut out = String::new();
    out.push_str(
        "<!-- Generated by `skewscope metrics --markdown` from agent/src/sinks/catalog.rs; \
         do not edit. A test fails when it is stale. -->\n\
         # Metrics\n\n\
         Every metric skewscope exports over OTLP and on the optional Prometheus endpoint. \
         OTLP names are `skewscope.<area>.<name>`; the Prometheus column is the name an \
         OpenTelemetry Collector's Prometheus exporter gives the same stream, and exactly \
         what `--prometheus-listen` serves (see \"Prometheus names\" below).\n\n\
         Report-fed metrics read the cycle's finished report: the *from* column is the key \
         of the JSON report (docs/json.md) they come from. Rates are a window's count \
         divided by its length. A null in the report is no data point, not a zero.\n\n",
    );
    let areas = [
        ("host", "Host"),
        ("cpu", "Per CPU"),
        ("device", "Per device (RSS)"),
        ("rss", "Per device (RSS)"),
        ("reuseport", "Per SO_REUSEPORT group, listener and flow"),
        ("shadow", "Live shadow replay, per group and policy"),
        ("agent", "The agent itself"),
    ];
    let mut last_title = "";
    for def in CATALOG {
        let area = def.name.split('.').nth(1).unwrap_or("");
        let title = areas
            .iter()
            .find(|(a, _)| *a == area)
            .map_or("Other", |(_, t)| *t);
        if title != last_title {
            let _ = write!(
                out,
                "\n## {title}\n\n| OTLP name | instrument | unit | Prometheus | attributes | from | description |\n|---|---|---|---|---|---|---|\n"
            );
            last_title = title;
        }
        let attrs: Vec<String> = attributes(def)
            .iter()
            .map(|a| format!("`{}`", a.name))
            .collect();
        let from = match &def.source {
            Source::Report(f) => format!("`{}`", json_source(f)),
            Source::Agent { .. } => "agent".to_string(),
        };
        let prom = super::prometheus::exposed_names(def);
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} | {} |",
            def.name,
            def.instrument.label(),
            if def.unit.is_empty() {
                "(none)".to_string()
            } else {
                format!("`{}`", def.unit)
            },
            prom.iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join("<br>"),
            attrs.join(" "),
            from,
            def.description.replace('|', "\\|")
        );
    }

    out.push_str("\n## Attributes\n\n| attribute | meaning |\n|---|---|\n");
    let mut seen: Vec<&str> = Vec::new();
    for def in CATALOG {
        for a in attributes(def) {
            if !seen.contains(&a.name) {
                seen.push(a.name);
                let _ = writeln!(
                    out,
                    "| `{}` (Prometheus `{}`) | {} |",
                    a.name,
                    super::prometheus::label_name(a.name),
                    a.description
                );
            }
        }
    }

    let d = Limits::default();
    out.push_str(
        "\n## Cardinality\n\n\
         Each report array is bounded before it becomes series; what a bound leaves out is \
         counted in `skewscope.agent.cardinality.capped{limit}` (per cycle, summed). \
         Elements are kept in report order (flows heaviest first). Set the bounds in the \
         `[limits]` table of the config file or with the flags of the same name \
         (`--max-cpus`, …; `max_sources` only in the file; docs/configuration.md).\n\n| bound | default |\n|---|---|\n",
    );
    for l in Limit::ALL {
        let _ = writeln!(out, "| `{}` | {} |", l.key(), d.get(l));
    }
    let _ = write!(
        out,
        "\nThe product of the bounds along a scope (e.g. `max_devices` × \
         `max_queues_per_device`) must stay at or below {SDK_SERIES_PER_METRIC}, the series an \
         OpenTelemetry SDK keeps per metric before folding the rest into one overflow series; \
         the agent refuses a configuration that exceeds it.\n"
    );

    out.push_str(super::prometheus::NAMING_DOC);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let series = Limits::default().worst_case_series();
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
        let text = include_str!("../../testdata/golden/i40e-1152cpu.snapshot.json");
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
        assert!(Limits::default().validate().is_ok());
        let l = Limits {
            max_devices: 64,
            max_queues_per_device: 64,
            ..Limits::default()
        };
        assert!(l.validate().unwrap_err().contains("queue"));
        let l = Limits {
            top_flows: 0,
            ..Limits::default()
        };
        assert!(l.validate().unwrap_err().contains("top_flows"));
    }

    /// Every key the catalog reads exists in a real report (scope attributes included).
    #[test]
    fn every_key_exists_in_a_real_report() {
        let text = include_str!("../../testdata/golden/i40e-1152cpu.snapshot.json");
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

    /// docs/metrics.md is generated from this table; regenerate it when this fails.
    #[test]
    fn metrics_doc_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md");
        let doc = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            doc == markdown(),
            "docs/metrics.md is stale: run `cargo run -p skewscope -- metrics --markdown > docs/metrics.md`"
        );
    }
}
