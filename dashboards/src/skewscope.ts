// The skewscope dashboard: RSS queue polarization per device, host NET_RX softirqs,
// SO_REUSEPORT listener skew, shadow steering and the agent's health. Metric and label
// names are the agent's Prometheus names (docs/metrics.md); agent/tests/dashboards.rs
// checks each against the catalog and agent/tests/prometheus.rs runs every query against
// a real Prometheus scraping the agent. Thresholds are the enter thresholds of
// docs/regimes.md; the runbook (docs/runbook.md) says which panel to read when.

import * as dashboard from "@grafana/grafana-foundation-sdk/dashboard";

import {
  barGaugePanel,
  DATASOURCE,
  DEVICE,
  DEVICE_LABELS,
  GROUP_LABELS,
  heatmapPanel,
  INSTANCE,
  labelValuesVariable,
  PORT,
  row,
  sel,
  share,
  stateTimelinePanel,
  statPanel,
  timeseriesPanel,
} from "./panels";

const DEV = [INSTANCE, DEVICE] as const;
const GRP = [INSTANCE, PORT] as const;
const GROUP_LEGEND = "{{instance}} {{protocol}} {{address}}:{{port}}";
const QUEUE_LEGEND = "{{instance}} {{device}} q{{queue}}";
const LISTENER_LEGEND = "{{instance}} {{protocol}} :{{port}} #{{listener_index}} ino {{listener_inode}}";

/** `max by (labels) ((metric{…,regime="S0"} * 0) or (… * 1) …)`: the regime as a code. */
function regimeCode(metric: string, matchers: readonly string[], labels: string, states: string[]): string {
  const parts = states.map((s, i) => `(${sel(metric, ...matchers, `regime="${s}"`)} * ${i})`);
  return `max by (${labels}) (${parts.join(" or ")})`;
}

const RSS_STATES: [string, string][] = [
  ["RSS_BALANCED", "green"],
  ["RSS_DRIFT", "yellow"],
  ["RSS_POLARIZED", "orange"],
  ["RSS_CONTAIN", "red"],
];
const GROUP_STATES: [string, string][] = [
  ["GREEN", "green"],
  ["YELLOW", "yellow"],
  ["ORANGE", "orange"],
  ["RED", "red"],
];

// ------------------------------------------------------------------ RSS per device

const queuePackets = sel("skewscope_rss_queue_packets_per_second", ...DEV);
const queueInterrupts = sel("skewscope_rss_queue_interrupts_per_second", ...DEV);
const offNode = sel("skewscope_rss_irq_cpus_off_node", ...DEV);
const affinityDrifted = sel("skewscope_rss_queue_affinity_drifted", ...DEV);

const rssRow = row(1, "RSS queue polarization (per device)");

const rssPanels = [
  timeseriesPanel({
    id: 2,
    title: "QPI per device",
    description:
      "Queue polarization index: max/mean - 1 of per-RX-queue packet rates (0 = even). Lines at the RSS_DRIFT (0.5) and RSS_POLARIZED (1.0) enter thresholds of docs/regimes.md; alert SkewscopeRssQueuePolarized at >= 1.0 for 5m.",
    w: 12,
    h: 8,
    unit: "none",
    min: 0,
    steps: [
      ["green", null],
      ["orange", 0.5],
      ["red", 1.0],
    ],
    targets: [{ expr: sel("skewscope_rss_qpi", ...DEV), legend: "{{instance}} {{device}}" }],
  }),
  timeseriesPanel({
    id: 3,
    title: "Per-queue packet rate",
    description: "Packets received per second on each RX queue (counter_source says which counters fed it).",
    w: 12,
    h: 8,
    unit: "pps",
    min: 0,
    targets: [{ expr: queuePackets, legend: QUEUE_LEGEND }],
  }),
  heatmapPanel({
    id: 29,
    title: "Per-queue packet rate heatmap",
    description:
      "One row per RX queue, one cell per time step colored by its packets/s: the hot queue is the bright row, and a row that lights up at a deploy or a table change dates the drift. Compare with the two share panels beside it.",
    w: 12,
    h: 8,
    unit: "pps",
    targets: [{ expr: queuePackets, legend: QUEUE_LEGEND }],
  }),
  barGaugePanel({
    id: 30,
    title: "Packet share per queue",
    description:
      "Each RX queue's share of its device's packets now (even = 1/queues). A queue far above its indirection-table share carries heavy flows (hash concentration); one whose share follows an uneven table share is table drift.",
    w: 6,
    h: 8,
    unit: "percentunit",
    min: 0,
    max: 1,
    targets: [{ expr: share(queuePackets, DEVICE_LABELS), legend: QUEUE_LEGEND }],
  }),
  barGaugePanel({
    id: 31,
    title: "Indirection-table share per queue",
    description:
      "Share of the RSS indirection-table entries pointing at each RX queue (ethtool -x; even = 1/queues). Uneven shares are `ethtool -X` weights or drift from a driver reset or a changed channel count; `skewscope snapshot --json` has the table itself.",
    w: 6,
    h: 8,
    unit: "percentunit",
    min: 0,
    max: 1,
    targets: [
      { expr: sel("skewscope_rss_queue_table_share_ratio", ...DEV), legend: QUEUE_LEGEND },
    ],
  }),
  timeseriesPanel({
    id: 4,
    title: "ISI (normalized) and indirection-table QPI",
    description:
      "IRQ skew index normalized 0..1 (RSS_DRIFT 0.1, RSS_POLARIZED 0.25) and the QPI of the RSS indirection table's entry shares.",
    w: 12,
    h: 8,
    unit: "none",
    min: 0,
    targets: [
      { expr: sel("skewscope_rss_isi_normalized", ...DEV), legend: "ISI {{instance}} {{device}}" },
      { expr: sel("skewscope_rss_table_qpi", ...DEV), legend: "table QPI {{instance}} {{device}}" },
    ],
  }),
  timeseriesPanel({
    id: 5,
    title: "HAF95: hot-queue ingress age p95",
    description: "p95 ingress age of packets that arrived on hot queues (eBPF).",
    w: 12,
    h: 8,
    unit: "s",
    min: 0,
    targets: [{ expr: sel("skewscope_rss_haf95_seconds", ...DEV), legend: "{{instance}} {{device}}" }],
  }),
  timeseriesPanel({
    id: 32,
    title: "Per-queue IRQ rate",
    description:
      "Interrupts per second of the IRQ lines serving each RX queue (/proc/interrupts). A queue's IRQs land on the CPUs of its affinity: read them with the per-CPU NET_RX share below.",
    w: 12,
    h: 8,
    unit: "hertz",
    min: 0,
    targets: [{ expr: queueInterrupts, legend: QUEUE_LEGEND }],
  }),
  barGaugePanel({
    id: 33,
    title: "IRQ share per queue",
    description:
      "Each RX queue's share of its device's RX interrupts now (ISI is the sum of their squares). IRQ share far from packet share means interrupt moderation or affinity differ between queues.",
    w: 6,
    h: 8,
    unit: "percentunit",
    min: 0,
    max: 1,
    targets: [{ expr: share(queueInterrupts, DEVICE_LABELS), legend: QUEUE_LEGEND }],
  }),
  timeseriesPanel({
    id: 34,
    title: "IRQ affinity: CPUs off the NUMA node, queues moved",
    description:
      "CPUs serving the device's queue IRQs (effective affinity where the kernel has it) outside the device's NUMA node, how often that count changed in the last hour, and the RX queues whose IRQ affinity differs from the first the agent saw (an affinity rewrite: irqbalance, a deploy, an operator; alert SkewscopeIrqAffinityDrifted after 10m). The CPU lists are in `skewscope snapshot` (rx_queues[].affinity, affinity_baseline).",
    w: 6,
    h: 8,
    unit: "none",
    min: 0,
    steps: [
      ["green", null],
      ["orange", 1],
    ],
    targets: [
      { expr: offNode, legend: "off-node CPUs {{instance}} {{device}}" },
      { expr: `changes(${offNode}[1h])`, legend: "changes in 1h {{instance}} {{device}}" },
      {
        expr: `sum by (instance, device) (${affinityDrifted})`,
        legend: "queues moved {{instance}} {{device}}",
      },
    ],
  }),
  stateTimelinePanel({
    id: 6,
    title: "RSS regime per device",
    description:
      "The device's RSS regime (observe-only, with hysteresis and dwell): RSS_BALANCED, RSS_DRIFT, RSS_POLARIZED, RSS_CONTAIN. See docs/regimes.md.",
    w: 24,
    h: 8,
    states: RSS_STATES,
    targets: [
      {
        expr: regimeCode("skewscope_rss_regime", DEV, DEVICE_LABELS, RSS_STATES.map(([s]) => s)),
        legend: "{{instance}} {{device}}",
      },
    ],
  }),
];

// ------------------------------------------------------------------ host NET_RX per CPU

const hostRow = row(7, "Host NET_RX softirqs (per CPU)");

const hostPanels = [
  timeseriesPanel({
    id: 8,
    title: "Host NET_RX CPU QPI and SPI",
    description:
      "NET_RX softirq runs over CPUs: max/mean - 1 (0 = even); SPI (softirq polarization index, RSS_DRIFT 0.2, RSS_POLARIZED 0.4). Alerts SkewscopeHostNetRxCpuSkew (QPI >= 1.0) and SkewscopeHostSoftirqPressure (SPI >= 0.4).",
    w: 12,
    h: 8,
    unit: "none",
    min: 0,
    steps: [
      ["green", null],
      ["red", 1.0],
    ],
    targets: [
      { expr: sel("skewscope_host_net_rx_cpu_qpi", INSTANCE), legend: "NET_RX CPU QPI {{instance}}" },
      { expr: sel("skewscope_host_spi", INSTANCE), legend: "SPI {{instance}}" },
    ],
  }),
  timeseriesPanel({
    id: 9,
    title: "Per-CPU NET_RX share",
    description: "Each CPU's share of the host's NET_RX softirq runs (stacked: sums to 1 per host).",
    w: 12,
    h: 8,
    unit: "percentunit",
    min: 0,
    stacked: true,
    targets: [{ expr: sel("skewscope_cpu_net_rx_share_ratio", INSTANCE), legend: "{{instance}} cpu {{cpu}}" }],
  }),
  timeseriesPanel({
    id: 10,
    title: "Softnet drops and time squeeze per CPU",
    description: "Backlog drops and NET_RX runs that ended with work left, per second (softnet_stat).",
    w: 12,
    h: 8,
    unit: "pps",
    min: 0,
    targets: [
      {
        expr: `${sel("skewscope_cpu_softnet_dropped_per_second", INSTANCE)} > 0`,
        legend: "dropped {{instance}} cpu {{cpu}}",
      },
      {
        expr: `${sel("skewscope_cpu_softnet_time_squeeze_per_second", INSTANCE)} > 0`,
        legend: "squeeze {{instance}} cpu {{cpu}}",
      },
    ],
  }),
  timeseriesPanel({
    id: 11,
    title: "NET_RX softirq utilization per CPU",
    description: "Share of wall time each CPU spent in NET_RX softirq (eBPF).",
    w: 12,
    h: 8,
    unit: "percentunit",
    min: 0,
    targets: [
      { expr: sel("skewscope_cpu_net_rx_utilization_ratio", INSTANCE), legend: "{{instance}} cpu {{cpu}}" },
    ],
  }),
];

// ------------------------------------------------------------------ reuseport groups

const listenerEvents = sel("skewscope_reuseport_listener_events_per_second", ...GRP);
const listenerShare = share(listenerEvents, GROUP_LABELS);

const reuseportRow = row(12, "SO_REUSEPORT listener skew (per group)");

const reuseportPanels = [
  timeseriesPanel({
    id: 13,
    title: "LSI per group",
    description:
      "Listener skew index: std/mean of the listeners' event rates (0 = even). YELLOW 0.25, ORANGE 0.5 (docs/regimes.md); alert SkewscopeReuseportListenerSkew at >= 0.5 for 5m.",
    w: 12,
    h: 8,
    unit: "none",
    min: 0,
    steps: [
      ["green", null],
      ["yellow", 0.25],
      ["orange", 0.5],
    ],
    targets: [{ expr: sel("skewscope_reuseport_lsi", ...GRP), legend: GROUP_LEGEND }],
  }),
  barGaugePanel({
    id: 35,
    title: "Per-listener share of the group's events",
    description:
      "Each listener's share of its group's sk_data_ready events now, with the process that owns it (even = 1/listeners): the longest bar is the hot listener. #index is its position in the group's socks[], which changes when members leave.",
    w: 12,
    h: 8,
    unit: "percentunit",
    min: 0,
    max: 1,
    targets: [
      {
        expr: `(${listenerShare}) * on (${GROUP_LABELS}, listener_inode) group_left (pid, comm) ${sel(
          "skewscope_reuseport_listener_info",
          ...GRP,
        )}`,
        legend: "{{instance}} {{protocol}} :{{port}} #{{listener_index}} {{comm}}[{{pid}}]",
      },
    ],
  }),
  heatmapPanel({
    id: 36,
    title: "Per-listener share heatmap",
    description:
      "One row per listener, colored by its share of the group's events over time: a listener that stays bright is a persistent hot spot (heavy flows hashed to it); one that flickers is bursty (see BCI).",
    w: 12,
    h: 8,
    unit: "percentunit",
    targets: [{ expr: listenerShare, legend: LISTENER_LEGEND }],
  }),
  timeseriesPanel({
    id: 17,
    title: "Per-listener event rate",
    description:
      "sk_data_ready events per second per listener: connections ready to accept (TCP) or datagrams (UDP).",
    w: 12,
    h: 8,
    unit: "ops",
    min: 0,
    targets: [{ expr: listenerEvents, legend: LISTENER_LEGEND }],
  }),
  timeseriesPanel({
    id: 14,
    title: "HCR-1 / HCR-5 per group",
    description: "Share of the group's traffic in its top 1 / top 5 flows (YELLOW enter for HCR-1: 0.5).",
    w: 12,
    h: 8,
    unit: "percentunit",
    min: 0,
    max: 1,
    targets: [
      { expr: sel("skewscope_reuseport_hcr_1", ...GRP), legend: `HCR-1 ${GROUP_LEGEND}` },
      { expr: sel("skewscope_reuseport_hcr_5", ...GRP), legend: `HCR-5 ${GROUP_LEGEND}` },
    ],
  }),
  timeseriesPanel({
    id: 15,
    title: "LQD per group",
    description:
      "Listener queue divergence: max - median listener queue depth (TCP: connections, ORANGE 32; UDP: bytes, ORANGE 65536).",
    w: 12,
    h: 8,
    unit: "none",
    min: 0,
    targets: [
      {
        expr: sel("skewscope_reuseport_lqd", ...GRP, 'protocol="tcp"'),
        legend: `${GROUP_LEGEND} (entries)`,
      },
      {
        expr: sel("skewscope_reuseport_lqd", ...GRP, 'protocol="udp"'),
        legend: `${GROUP_LEGEND} (bytes)`,
      },
    ],
  }),
  timeseriesPanel({
    id: 16,
    title: "BCI per group",
    description: "Burst concentration index: p95/median of per-listener events in 1 s windows (ORANGE 3.0).",
    w: 12,
    h: 8,
    unit: "none",
    min: 0,
    steps: [
      ["green", null],
      ["orange", 3.0],
    ],
    targets: [{ expr: sel("skewscope_reuseport_bci", ...GRP), legend: GROUP_LEGEND }],
  }),
  timeseriesPanel({
    id: 18,
    title: "Per-listener queue depth",
    description:
      "Accept-queue length (TCP LISTEN) or receive-queue bytes (UDP), and the TCP accept backlog limit.",
    w: 12,
    h: 8,
    unit: "none",
    min: 0,
    targets: [
      { expr: sel("skewscope_reuseport_listener_queue_depth", ...GRP), legend: LISTENER_LEGEND },
      {
        expr: `max by (${GROUP_LABELS}) (${sel("skewscope_reuseport_listener_backlog_limit", ...GRP)})`,
        legend: "backlog limit {{instance}} {{protocol}} :{{port}}",
      },
    ],
  }),
  timeseriesPanel({
    id: 19,
    title: "Ingress age p95 per group",
    description:
      "p95 ingress age (kernel receive to application read) of the group's packets, and DLG (p95 minus the configured target).",
    w: 12,
    h: 8,
    unit: "s",
    targets: [
      { expr: sel("skewscope_reuseport_ingress_age_p95_seconds", ...GRP), legend: `p95 ${GROUP_LEGEND}` },
      { expr: sel("skewscope_reuseport_dlg_seconds", ...GRP), legend: `DLG ${GROUP_LEGEND}` },
    ],
  }),
  timeseriesPanel({
    id: 20,
    title: "P_hot per group",
    description: "Chance a hot listener is forming (uncalibrated logistic model; YELLOW 0.5, ORANGE 0.7).",
    w: 12,
    h: 8,
    unit: "percentunit",
    min: 0,
    max: 1,
    steps: [
      ["green", null],
      ["yellow", 0.5],
      ["orange", 0.7],
    ],
    targets: [{ expr: sel("skewscope_reuseport_p_hot", ...GRP), legend: GROUP_LEGEND }],
  }),
  stateTimelinePanel({
    id: 21,
    title: "Listener regime per group",
    description:
      "The group's listener regime (observe-only, with hysteresis and dwell): GREEN, YELLOW, ORANGE, RED. See docs/regimes.md.",
    w: 24,
    h: 8,
    states: GROUP_STATES,
    targets: [
      {
        expr: regimeCode("skewscope_reuseport_regime", GRP, GROUP_LABELS, GROUP_STATES.map(([s]) => s)),
        legend: GROUP_LEGEND,
      },
    ],
  }),
];

// ------------------------------------------------------------------ shadow steering

const shadowRow = row(37, "Shadow steering (per group and policy)");

const shadowPanels = [
  timeseriesPanel({
    id: 38,
    title: "Shadow LSI per policy vs actual LSI",
    description:
      "Predicted LSI of each group's recent flows under each replayed policy (`default` = the kernel's hash on the same flows), beside the LSI the group shows. Shown for groups the live shadow replays (`[shadow] candidates`, docs/shadow.md). A policy far below `default` is worth a canary; `default` far from actual means the replayed flows miss part of the traffic.",
    w: 12,
    h: 8,
    unit: "none",
    min: 0,
    steps: [
      ["green", null],
      ["yellow", 0.25],
      ["orange", 0.5],
    ],
    targets: [
      {
        expr: sel("skewscope_shadow_lsi", ...GRP),
        legend: `shadow {{policy}} ${GROUP_LEGEND}`,
      },
      {
        expr: `${sel("skewscope_reuseport_lsi", ...GRP)} and on (${GROUP_LABELS}) ${sel(
          "skewscope_shadow_lsi",
          ...GRP,
        )}`,
        legend: `actual ${GROUP_LEGEND}`,
      },
    ],
  }),
  barGaugePanel({
    id: 39,
    title: "Predicted skew reduction per policy",
    description:
      "(LSI_default - LSI_policy) / LSI_default of the latest replay: above 0 the policy spreads the same flows more evenly than the kernel's hash, below 0 it is worse. `default` is 0 by definition; absent while the default's predicted LSI is 0 (nothing to reduce).",
    w: 6,
    h: 8,
    unit: "percentunit",
    min: -1,
    max: 1,
    steps: [
      ["red", null],
      ["yellow", 0],
      ["green", 0.2],
    ],
    targets: [
      {
        expr: sel("skewscope_shadow_skew_reduction_ratio", ...GRP),
        legend: "{{policy}} {{instance}} :{{port}}",
      },
    ],
  }),
  barGaugePanel({
    id: 40,
    title: "Predicted max socket share per policy",
    description:
      "Largest share of the group's recent traffic one socket would get under each policy (even = 1/listeners): the hot listener each policy would leave.",
    w: 6,
    h: 8,
    unit: "percentunit",
    min: 0,
    max: 1,
    targets: [
      {
        expr: sel("skewscope_shadow_max_share_ratio", ...GRP),
        legend: "{{policy}} {{instance}} :{{port}}",
      },
    ],
  }),
];

// ------------------------------------------------------------------ the agent

const agentRow = row(22, "Agent health");

const agentPanels = [
  statPanel({
    id: 23,
    title: "Probe attached share",
    description:
      "Share of the window the per-packet eBPF probes were attached; below 1 the probe budget duty-cycles them and their counts are estimates (absent while they run all the time).",
    w: 6,
    h: 6,
    unit: "percentunit",
    min: 0,
    max: 1,
    steps: [
      ["red", null],
      ["orange", 0.1],
      ["green", 0.5],
    ],
    targets: [{ expr: sel("skewscope_agent_probe_attached_share_ratio", INSTANCE), legend: "{{instance}}" }],
  }),
  statPanel({
    id: 24,
    title: "eBPF probes attached",
    description:
      "Per probe: 1 when attached and read this cycle; status says why not (ok, unsupported, skipped, failed).",
    w: 18,
    h: 6,
    unit: "none",
    steps: [
      ["red", null],
      ["green", 1],
    ],
    states: [
      ["not attached", "red"],
      ["attached", "green"],
    ],
    targets: [
      { expr: sel("skewscope_agent_probe_attached", INSTANCE), legend: "{{instance}} {{probe}} ({{status}})" },
    ],
  }),
  stateTimelinePanel({
    id: 25,
    title: "Source health",
    description: "1 when the source delivered this cycle, else 0; status says why not.",
    w: 12,
    h: 10,
    states: [
      ["not ok", "red"],
      ["ok", "green"],
    ],
    targets: [
      { expr: sel("skewscope_agent_source_ok", INSTANCE), legend: "{{instance}} {{source}} ({{status}})" },
    ],
  }),
  timeseriesPanel({
    id: 26,
    title: "Source errors and duration",
    description: "Cycles per second in which a source failed, and the time each source took.",
    w: 12,
    h: 10,
    unit: "none",
    targets: [
      {
        expr: `sum by (job, instance, source) (rate(${sel(
          "skewscope_agent_source_errors_total",
          INSTANCE,
        )}[$__rate_interval]))`,
        legend: "errors/s {{instance}} {{source}}",
      },
      {
        expr: sel("skewscope_agent_source_duration_seconds", INSTANCE),
        legend: "duration {{instance}} {{source}}",
      },
    ],
  }),
  timeseriesPanel({
    id: 27,
    title: "OTLP exports",
    description:
      "Exports per second the receiver accepted or that failed, and data points lost with failed exports (never queued). Alert SkewscopeOtlpExportFailing on any failure in 10m.",
    w: 12,
    h: 8,
    unit: "ops",
    min: 0,
    targets: [
      {
        expr: `rate(${sel("skewscope_agent_export_successes_total", INSTANCE)}[$__rate_interval])`,
        legend: "successes/s {{instance}}",
      },
      {
        expr: `rate(${sel("skewscope_agent_export_failures_total", INSTANCE)}[$__rate_interval])`,
        legend: "failures/s {{instance}}",
      },
      {
        expr: `rate(${sel("skewscope_agent_export_dropped_points_total", INSTANCE)}[$__rate_interval])`,
        legend: "dropped points/s {{instance}}",
      },
    ],
  }),
  timeseriesPanel({
    id: 28,
    title: "Cycle duration and cardinality caps",
    description: "p95 time of one collection cycle (histogram) and series left out by a cardinality bound.",
    w: 12,
    h: 8,
    unit: "s",
    min: 0,
    targets: [
      {
        expr: `histogram_quantile(0.95, sum by (job, instance, le) (rate(${sel(
          "skewscope_agent_cycle_duration_seconds_bucket",
          INSTANCE,
        )}[$__rate_interval])))`,
        legend: "cycle p95 {{instance}}",
      },
      {
        expr: `sum by (job, instance, limit) (rate(${sel(
          "skewscope_agent_cardinality_capped_total",
          INSTANCE,
        )}[$__rate_interval]))`,
        legend: "capped/s {{instance}} {{limit}}",
      },
    ],
  }),
];

// ------------------------------------------------------------------ the dashboard

export function skewscopeDashboard(): dashboard.Dashboard {
  const b = new dashboard.DashboardBuilder("skewscope: listener skew and RSS polarization")
    .uid("skewscope-overview")
    .description(
      "SO_REUSEPORT listener skew (LSI, per-listener shares, HCR, LQD, BCI, ingress age, regimes), RSS queue polarization (QPI, per-queue rate heatmap, packet vs indirection-table shares, IRQ shares and affinity, regimes), host NET_RX softirq skew, shadow steering (predicted LSI per policy vs actual) and the agent's health. Metrics: docs/metrics.md; thresholds: docs/regimes.md; what to do: docs/runbook.md.",
    )
    .tags(["skewscope", "network", "reuseport", "rss"])
    .editable()
    .tooltip(dashboard.DashboardCursorSync.Crosshair)
    .time({ from: "now-1h", to: "now" })
    .refresh("30s")
    .timezone("browser")
    .withVariable(
      new dashboard.DatasourceVariableBuilder("datasource")
        .label("Data source")
        .type("prometheus")
        .hide(dashboard.VariableHide.DontHide)
        .regex(""),
    )
    .withVariable(
      labelValuesVariable("instance", "Instance (host)", "skewscope_agent_cycles_total", "instance"),
    )
    .withVariable(
      labelValuesVariable("device", "Device", sel("skewscope_rss_queues", INSTANCE), "device"),
    )
    .withVariable(
      labelValuesVariable("port", "Reuseport group (port)", sel("skewscope_reuseport_lsi", INSTANCE), "port"),
    );
  const sections: [dashboard.RowBuilder, { build(): dashboard.Panel }[]][] = [
    [rssRow, rssPanels],
    [hostRow, hostPanels],
    [reuseportRow, reuseportPanels],
    [shadowRow, shadowPanels],
    [agentRow, agentPanels],
  ];
  for (const [r, panels] of sections) {
    b.withRow(r);
    for (const p of panels) b.withPanel(p);
  }
  const d = b.build();
  // Every panel and target reads the dashboard's data source variable.
  for (const p of d.panels ?? []) {
    if (p.type !== "row" && p.datasource?.uid !== DATASOURCE.uid) {
      throw new Error(`panel ${p.title ?? "?"} has no \${datasource}`);
    }
  }
  return d;
}
