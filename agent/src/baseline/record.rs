//! Accumulates the reports of a recording into a [`Baseline`]: per group and device the
//! distribution of every index over the cycles, regime time shares, drops, membership
//! changes, per-listener shares, a time series for the report, shadow results and the
//! heaviest flows. Pure: the caller feeds reports and the few host facts it read.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use skewscope_shadow::FlowSample;

use super::file::{
    Baseline, DeviceBaseline, DeviceIndexDists, DevicePoint, Fingerprint, GroupBaseline,
    GroupIndexDists, GroupPoint, HostBaseline, ListenerShare, QueueBaseline, RssShadowBaseline,
    ShadowBaseline, ShadowPolicyBaseline, TcpGuardrails, TraceFlow, BASELINE_SCHEMA,
};
use super::fingerprint;
use super::host::TcpCounters;
use super::stats::{decile_shares, Dist};
use super::view::{DeviceView, GroupView, ReportView, ShadowView};

/// Most flows a baseline keeps (the heaviest), and most it tracks while recording.
pub const MAX_TRACE_FLOWS: usize = 10_000;
const MAX_TRACKED_FLOWS: usize = 4 * MAX_TRACE_FLOWS;

/// What the recording knows before its first report.
#[derive(Debug, Clone, Default)]
pub struct RecordingMeta {
    pub requested_secs: f64,
    pub interval_secs: f64,
    pub started_unix_secs: f64,
    pub host_name: Option<String>,
    pub kernel: Option<String>,
    pub config_hash: Option<String>,
    /// TCP counters when the recording started (None where unreadable).
    pub tcp_at_start: Option<TcpCounters>,
}

/// Netns, protocol, address, port: one group within one recording.
type GroupKey = (u64, String, String, u16);

#[derive(Default)]
pub struct Recorder {
    meta: RecordingMeta,
    cycles: u64,
    elapsed_secs: f64,
    first_fingerprint: Option<Fingerprint>,
    last_fingerprint: Option<Fingerprint>,
    groups: BTreeMap<GroupKey, GroupAcc>,
    devices: BTreeMap<String, DeviceAcc>,
    spi: Vec<f64>,
    net_rx_cpu_qpi: Vec<f64>,
    softnet_dropped: u64,
    time_squeeze: u64,
    shadow: BTreeMap<GroupKey, ShadowAcc>,
    flows: HashMap<FlowKey, FlowSample>,
}

type FlowKey = (
    skewscope_shadow::Proto,
    std::net::IpAddr,
    u16,
    std::net::IpAddr,
    u16,
);

#[derive(Default)]
struct GroupAcc {
    cycles: u64,
    listeners_min: usize,
    listeners_max: usize,
    hcr_1: Vec<f64>,
    hcr_5: Vec<f64>,
    bci: Vec<f64>,
    regimes: BTreeMap<String, u64>,
    membership_changes: u64,
    /// Per listener inode: the drops counter when first and last seen.
    drops: BTreeMap<u64, (u64, u64)>,
    listeners: BTreeMap<u64, ListenerShare>,
    owners: BTreeSet<String>,
    containers: BTreeSet<String>,
    series: Vec<GroupPoint>,
}

#[derive(Default)]
struct DeviceAcc {
    driver: Option<String>,
    cycles: u64,
    isi: Vec<f64>,
    isi_normalized: Vec<f64>,
    table_qpi: Vec<f64>,
    regimes: BTreeMap<String, u64>,
    queues: BTreeMap<u32, QueueAcc>,
    series: Vec<DevicePoint>,
    /// `current` and `balanced`, in that order once seen.
    rss_shadow: Vec<(String, RssShadowAcc)>,
}

#[derive(Default)]
struct RssShadowAcc {
    qpi: Vec<f64>,
    max_share: Vec<f64>,
    entries_moved: Vec<f64>,
}

#[derive(Default)]
struct QueueAcc {
    pps: Vec<f64>,
    irqs_per_sec: Vec<f64>,
    table_share: Option<f64>,
}

#[derive(Default)]
struct ShadowAcc {
    /// When the last counted replay ended, in seconds since the recording started.
    last_end_secs: Option<f64>,
    replays: u64,
    sockets: u32,
    errors: BTreeSet<String>,
    policies: Vec<PolicyAcc>,
}

#[derive(Default)]
struct PolicyAcc {
    policy: String,
    verifier: String,
    error: Option<String>,
    lsi: Vec<f64>,
    max_share: Vec<f64>,
    skew_reduction: Vec<f64>,
}

impl Recorder {
    pub fn new(meta: RecordingMeta) -> Self {
        Self {
            meta,
            ..Default::default()
        }
    }

    pub fn cycles(&self) -> u64 {
        self.cycles
    }

    /// Seconds the recorded windows cover.
    pub fn elapsed_secs(&self) -> f64 {
        self.elapsed_secs
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// One report of a window, and the flows observed in it. Reports without a window
    /// (counters since boot) say nothing about a period and are ignored.
    pub fn add(&mut self, report: &ReportView, flows: &[FlowSample]) {
        let Some(secs) = report.window_secs.filter(|s| s.is_finite() && *s > 0.0) else {
            return;
        };
        self.cycles += 1;
        self.elapsed_secs += secs;
        let t = self.elapsed_secs;
        let fp = fingerprint::of_report(
            report,
            self.meta.kernel.clone(),
            self.meta.config_hash.clone(),
        );
        if self.first_fingerprint.is_none() {
            self.first_fingerprint = Some(fp.clone());
        }
        self.last_fingerprint = Some(fp);

        for g in &report.reuseport_groups {
            self.add_group(g, t);
        }
        for d in &report.devices {
            self.add_device(d, secs, t);
        }
        self.spi.extend(report.host.indices.spi);
        self.net_rx_cpu_qpi
            .extend(report.host.indices.net_rx_cpu_qpi);
        for c in &report.cpus {
            if let Some(s) = &c.softnet {
                self.softnet_dropped += s.dropped;
                self.time_squeeze += s.time_squeeze;
            }
        }
        for s in &report.shadow {
            self.add_shadow(s, t);
        }
        for f in flows {
            let key = (f.proto, f.saddr, f.sport, f.daddr, f.dport);
            let e = self.flows.entry(key).or_insert_with(|| FlowSample {
                weight: 0,
                ..f.clone()
            });
            e.weight += f.weight;
            e.rx_cpu = f.rx_cpu.or(e.rx_cpu);
            e.rx_queue = f.rx_queue.or(e.rx_queue);
        }
        if self.flows.len() > MAX_TRACKED_FLOWS {
            // Keep the heaviest: a long recording of many short flows stays bounded.
            let mut v: Vec<_> = self.flows.drain().collect();
            v.sort_by_key(|(_, f)| std::cmp::Reverse(f.weight));
            v.truncate(MAX_TRACE_FLOWS);
            self.flows = v.into_iter().collect();
        }
    }

    fn add_group(&mut self, g: &GroupView, t: f64) {
        let key = (g.netns, g.protocol.clone(), g.address.clone(), g.port);
        let acc = self.groups.entry(key).or_default();
        let n = g.listeners.len();
        if acc.cycles == 0 {
            acc.listeners_min = n;
        }
        acc.cycles += 1;
        acc.listeners_min = acc.listeners_min.min(n);
        acc.listeners_max = acc.listeners_max.max(n);
        let x = &g.indices;
        acc.hcr_1.extend(x.hcr_1);
        acc.hcr_5.extend(x.hcr_5);
        acc.bci.extend(x.bci);
        *acc.regimes.entry(g.regime.clone()).or_default() += 1;
        // Joins and leaves since the agent started: the recording's own loop started it.
        acc.membership_changes = acc.membership_changes.max(g.membership_changes);
        for l in &g.listeners {
            if let Some(d) = l.drops {
                acc.drops
                    .entry(l.inode)
                    .and_modify(|(_, last)| *last = d)
                    .or_insert((d, d));
            }
            let share = acc.listeners.entry(l.inode).or_default();
            share.inode = l.inode;
            share.events += l.events.unwrap_or(0);
            share.index = l.index.or(share.index);
            share.pid = l.pid.or(share.pid);
            if l.comm.is_some() {
                share.comm = l.comm.clone();
            }
            if l.container.is_some() {
                share.container = l.container.clone();
            }
            acc.owners.extend(l.comm.clone());
            acc.containers.extend(l.container.clone());
        }
        acc.series.push(GroupPoint {
            t_secs: t,
            lsi: x.lsi,
            lqd: x.lqd,
            dlg_us: x.dlg_us,
            ingress_age_p95_us: x.ingress_age_p95_us,
            p_hot: g.p_hot,
            regime: g.regime.clone(),
        });
    }

    fn add_device(&mut self, d: &DeviceView, secs: f64, t: f64) {
        let acc = self.devices.entry(d.name.clone()).or_default();
        acc.cycles += 1;
        acc.driver = d.driver.clone().or(acc.driver.take());
        let x = &d.indices;
        acc.isi.extend(x.isi);
        acc.isi_normalized.extend(x.isi_normalized);
        acc.table_qpi.extend(x.table_qpi);
        *acc.regimes.entry(d.regime.clone()).or_default() += 1;
        for q in &d.rx_queues {
            let qa = acc.queues.entry(q.queue).or_default();
            qa.pps.extend(q.rx_packets.map(|p| p as f64 / secs));
            qa.irqs_per_sec.push(q.irq_count as f64 / secs);
            qa.table_share = q.table_share.or(qa.table_share);
        }
        for p in d
            .rss_shadow
            .iter()
            .filter(|p| p.policy == "current" || p.policy == "balanced")
        {
            let at = match acc
                .rss_shadow
                .iter()
                .position(|(name, _)| *name == p.policy)
            {
                Some(at) => at,
                None => {
                    acc.rss_shadow
                        .push((p.policy.clone(), RssShadowAcc::default()));
                    acc.rss_shadow.len() - 1
                }
            };
            let sa = &mut acc.rss_shadow[at].1;
            sa.qpi.extend(p.qpi);
            sa.max_share.extend(p.max_share);
            sa.entries_moved.push(p.entries_moved as f64);
        }
        acc.series.push(DevicePoint {
            t_secs: t,
            qpi: x.qpi,
            haf95_us: x.haf95_us,
            regime: d.regime.clone(),
        });
    }

    fn add_shadow(&mut self, s: &ShadowView, t: f64) {
        let key = (s.netns, s.protocol.clone(), s.address.clone(), s.port);
        let acc = self.shadow.entry(key).or_default();
        // A report repeats the latest replay until the next one: count each once.
        let end = t - s.replayed_secs_ago;
        if acc.last_end_secs.is_some_and(|last| end <= last + 1e-3) {
            return;
        }
        acc.last_end_secs = Some(end);
        acc.replays += 1;
        acc.sockets = s.sockets;
        acc.errors.extend(s.error.clone());
        for p in &s.policies {
            let i = match acc.policies.iter().position(|a| a.policy == p.policy) {
                Some(i) => i,
                None => {
                    acc.policies.push(PolicyAcc {
                        policy: p.policy.clone(),
                        ..Default::default()
                    });
                    acc.policies.len() - 1
                }
            };
            let a = &mut acc.policies[i];
            a.verifier = p.verifier.clone();
            a.error = p.error.clone().or(a.error.take());
            a.lsi.extend(p.lsi);
            a.max_share.extend(p.max_share);
            a.skew_reduction.extend(p.skew_reduction);
        }
    }

    /// The baseline; `tcp_at_end` are the TCP counters read when the loop ended.
    pub fn finish(self, interrupted: bool, tcp_at_end: Option<TcpCounters>) -> Baseline {
        let secs = self.elapsed_secs;
        let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let shares = |counts: &BTreeMap<String, u64>| -> BTreeMap<String, f64> {
            let total: u64 = counts.values().sum();
            counts
                .iter()
                .map(|(k, &n)| (k.clone(), n as f64 / total.max(1) as f64))
                .collect()
        };
        let fingerprint_changes = match (&self.first_fingerprint, &self.last_fingerprint) {
            (Some(a), Some(b)) => fingerprint::changes_during(a, b),
            _ => Vec::new(),
        };
        let groups = self
            .groups
            .into_iter()
            .map(|((netns, protocol, address, port), acc)| {
                let series_of = |f: fn(&GroupPoint) -> Option<f64>| {
                    let v: Vec<f64> = acc.series.iter().filter_map(f).collect();
                    v
                };
                let p_hot = series_of(|p| p.p_hot);
                let drops: u64 = acc.drops.values().map(|(f, l)| l.saturating_sub(*f)).sum();
                let total_events: u64 = acc.listeners.values().map(|l| l.events).sum();
                let mut listeners: Vec<ListenerShare> = acc
                    .listeners
                    .into_values()
                    .map(|mut l| {
                        l.share = if total_events > 0 {
                            l.events as f64 / total_events as f64
                        } else {
                            0.0
                        };
                        l
                    })
                    .collect();
                listeners.sort_by(|a, b| b.events.cmp(&a.events).then(a.inode.cmp(&b.inode)));
                GroupBaseline {
                    protocol,
                    address,
                    port,
                    netns,
                    owners: acc.owners.into_iter().collect(),
                    containers: acc.containers.into_iter().collect(),
                    cycles: acc.cycles,
                    listeners_min: acc.listeners_min,
                    listeners_max: acc.listeners_max,
                    indices: GroupIndexDists {
                        lsi: Dist::of(&series_of(|p| p.lsi)),
                        hcr_1: Dist::of(&acc.hcr_1),
                        hcr_5: Dist::of(&acc.hcr_5),
                        lqd: Dist::of(&series_of(|p| p.lqd)),
                        bci: Dist::of(&acc.bci),
                        dlg_us: Dist::of(&series_of(|p| p.dlg_us)),
                        ingress_age_p95_us: Dist::of(&series_of(|p| p.ingress_age_p95_us)),
                        p_hot: Dist::of(&p_hot),
                    },
                    regimes: shares(&acc.regimes),
                    p_hot_deciles: decile_shares(&p_hot),
                    drops,
                    drops_per_sec: per_sec(drops),
                    membership_changes: acc.membership_changes,
                    listeners,
                    series: acc.series,
                }
            })
            .collect();
        let devices = self
            .devices
            .into_iter()
            .map(|(name, acc)| {
                let series_of = |f: fn(&DevicePoint) -> Option<f64>| {
                    let v: Vec<f64> = acc.series.iter().filter_map(f).collect();
                    v
                };
                DeviceBaseline {
                    name,
                    driver: acc.driver,
                    cycles: acc.cycles,
                    indices: DeviceIndexDists {
                        qpi: Dist::of(&series_of(|p| p.qpi)),
                        isi: Dist::of(&acc.isi),
                        isi_normalized: Dist::of(&acc.isi_normalized),
                        table_qpi: Dist::of(&acc.table_qpi),
                        haf95_us: Dist::of(&series_of(|p| p.haf95_us)),
                    },
                    regimes: shares(&acc.regimes),
                    queues: acc
                        .queues
                        .into_iter()
                        .map(|(queue, q)| QueueBaseline {
                            queue,
                            mean_rx_pps: mean(&q.pps),
                            rx_pps: Dist::of(&q.pps),
                            mean_irqs_per_sec: mean(&q.irqs_per_sec),
                            table_share: q.table_share,
                        })
                        .collect(),
                    series: acc.series,
                    rss_shadow: acc
                        .rss_shadow
                        .into_iter()
                        .map(|(policy, s)| RssShadowBaseline {
                            policy,
                            cycles: s.entries_moved.len() as u64,
                            qpi: Dist::of(&s.qpi),
                            max_share: Dist::of(&s.max_share),
                            entries_moved: Dist::of(&s.entries_moved),
                        })
                        .collect(),
                }
            })
            .collect();
        let tcp = match (self.meta.tcp_at_start, tcp_at_end) {
            (Some(a), Some(b)) => {
                let out_resets = b.out_resets.saturating_sub(a.out_resets);
                let listen_drops = b.listen_drops.saturating_sub(a.listen_drops);
                Some(TcpGuardrails {
                    out_resets,
                    out_resets_per_sec: per_sec(out_resets),
                    listen_drops,
                    listen_drops_per_sec: per_sec(listen_drops),
                })
            }
            _ => None,
        };
        let shadow = self
            .shadow
            .into_iter()
            .map(|((netns, protocol, address, port), acc)| ShadowBaseline {
                protocol,
                address,
                port,
                netns,
                replays: acc.replays,
                sockets: acc.sockets,
                errors: acc.errors.into_iter().collect(),
                policies: acc
                    .policies
                    .into_iter()
                    .map(|p| ShadowPolicyBaseline {
                        lsi: Dist::of(&p.lsi),
                        max_share: Dist::of(&p.max_share),
                        skew_reduction: Dist::of(&p.skew_reduction),
                        policy: p.policy,
                        verifier: p.verifier,
                        error: p.error,
                    })
                    .collect(),
            })
            .collect();
        let mut flows: Vec<FlowSample> = self.flows.into_values().collect();
        flows.sort_by(|a, b| {
            b.weight
                .cmp(&a.weight)
                .then((a.dport, a.sport).cmp(&(b.dport, b.sport)))
        });
        flows.truncate(MAX_TRACE_FLOWS);
        let fingerprint = self.last_fingerprint.unwrap_or_else(|| Fingerprint {
            kernel: self.meta.kernel.clone(),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            config_hash: self.meta.config_hash.clone(),
            ..Default::default()
        });
        Baseline {
            schema: BASELINE_SCHEMA.to_string(),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            host_name: self.meta.host_name,
            started_unix_secs: self.meta.started_unix_secs,
            requested_secs: self.meta.requested_secs,
            recorded_secs: secs,
            interval_secs: self.meta.interval_secs,
            cycles: self.cycles,
            interrupted,
            fingerprint,
            fingerprint_changes,
            groups,
            devices,
            host: HostBaseline {
                spi: Dist::of(&self.spi),
                net_rx_cpu_qpi: Dist::of(&self.net_rx_cpu_qpi),
                softnet_dropped: self.softnet_dropped,
                softnet_dropped_per_sec: per_sec(self.softnet_dropped),
                time_squeeze: self.time_squeeze,
                tcp,
            },
            shadow,
            flow_trace: flows.iter().map(TraceFlow::of).collect(),
        }
    }
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

#[cfg(test)]
mod tests;
