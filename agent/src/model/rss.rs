//! Window (between two snapshots, or since boot) → the RSS-polarization part of the report.

use std::collections::{BTreeSet, HashMap};

use super::indices::{self, SpiInputs};
use super::ModelConfig;
use super::Window;
use crate::report::{
    ChannelsReport, CpuReport, DeviceIndices, DeviceReport, HostIndices, HostReport, RssReport,
    RxQueueReport, SoftnetReport,
};
use crate::snapshot::DeviceFacts;
use crate::sources::interrupts::{IrqId, IrqLine};
use crate::sources::irq_map::QueueIrqKind;

pub(super) fn cpu_reports(window: &Window, cfg: &ModelConfig) -> Vec<CpuReport> {
    // The CPU set: /proc/softirqs lists every possible CPU; fall back to other sources.
    let mut cpus: BTreeSet<u32> = BTreeSet::new();
    if let Some(s) = &window.softirqs {
        cpus.extend(&s.cpus);
    }
    if let Some(sn) = &window.softnet {
        cpus.extend(sn.iter().map(|c| c.cpu));
    }
    if cpus.is_empty() {
        if let Some(online) = &window.online_cpus {
            cpus.extend(online);
        }
    }

    let per_cpu = |row: Option<&[u64]>, cpu: u32| -> Option<u64> {
        let s = window.softirqs.as_ref()?;
        let i = s.cpus.iter().position(|&c| c == cpu)?;
        row?.get(i).copied()
    };
    let net_rx = window.softirqs.as_ref().and_then(|s| s.net_rx());
    let net_tx = window.softirqs.as_ref().and_then(|s| s.net_tx());
    let net_rx_total: u64 = net_rx.map(|r| r.iter().sum()).unwrap_or(0);
    let ms_per_tick = 1000 / cfg.user_hz.max(1);

    cpus.into_iter()
        .map(|cpu| {
            let rx = per_cpu(net_rx, cpu);
            CpuReport {
                cpu,
                net_rx_softirqs: rx,
                net_tx_softirqs: per_cpu(net_tx, cpu),
                softirq_time_ms: window
                    .proc_stat
                    .as_ref()
                    .and_then(|p| p.cpus.iter().find(|c| c.cpu == cpu))
                    .map(|c| c.softirq * ms_per_tick),
                net_rx_time_us: window
                    .softirq_time
                    .as_ref()
                    .and_then(|t| t.iter().find(|c| c.cpu == cpu))
                    .map(|c| c.net_rx_ns / 1000),
                softnet: window
                    .softnet
                    .as_ref()
                    .and_then(|s| s.iter().find(|c| c.cpu == cpu))
                    .map(|c| SoftnetReport {
                        processed: c.processed.into(),
                        dropped: c.dropped.into(),
                        time_squeeze: c.time_squeeze.into(),
                        received_rps: c.received_rps.map(u64::from),
                        flow_limit_count: c.flow_limit_count.map(u64::from),
                        backlog_len: c.backlog_len.map(u64::from),
                    }),
                net_rx_share: rx
                    .filter(|_| net_rx_total > 0)
                    .map(|n| n as f64 / net_rx_total as f64),
            }
        })
        .collect()
}

pub(super) fn host_report(window: &Window, cpus: &[CpuReport], cfg: &ModelConfig) -> HostReport {
    let net_rx: Vec<u64> = cpus.iter().filter_map(|c| c.net_rx_softirqs).collect();
    let softnet = cpus.iter().filter_map(|c| c.softnet.as_ref());
    let (mut squeeze, mut dropped, mut processed) = (0, 0, 0);
    for s in softnet {
        squeeze += s.time_squeeze;
        dropped += s.dropped;
        processed += s.processed;
    }
    let spi = indices::spi(
        SpiInputs {
            net_rx_per_cpu: &net_rx,
            time_squeeze: squeeze,
            dropped,
            processed,
        },
        cfg.spi_weights,
    );
    let loads: Vec<f64> = net_rx.iter().map(|&n| n as f64).collect();
    HostReport {
        indices: HostIndices {
            spi,
            net_rx_cpu_qpi: indices::qpi(&loads),
        },
        sysctls: window.sysctls.clone(),
    }
}

pub(super) fn device_report(dev: &DeviceFacts, window: &Window, cfg: &ModelConfig) -> DeviceReport {
    let ints = window.interrupts.as_ref();
    let lines_by_irq: HashMap<u32, &IrqLine> = ints
        .map(|i| {
            i.lines
                .iter()
                .filter_map(|l| match l.irq {
                    IrqId::Number(n) => Some((n, l)),
                    IrqId::Named(_) => None,
                })
                .collect()
        })
        .unwrap_or_default();

    // The queue set: sysfs rx queues, queues with an RX-capable IRQ, queues with counters.
    let mut queues: BTreeSet<u32> = dev.sys.rx_queues.iter().map(|q| q.queue).collect();
    queues.extend(
        dev.queue_irqs
            .iter()
            .filter(|q| q.kind != QueueIrqKind::Tx)
            .map(|q| q.queue),
    );
    queues.extend(dev.queue_counters.iter().map(|q| q.queue));

    let ring_count = dev
        .channels
        .as_ref()
        .and_then(|c| c.combined.or(c.rx))
        .or_else(|| dev.rss.as_ref().and_then(|r| r.rx_rings))
        .map(|n| n as usize)
        .unwrap_or(queues.len());
    let table_shares = dev
        .rss
        .as_ref()
        .filter(|r| !r.indirection.is_empty())
        .map(|r| indices::table_shares(&r.indirection, ring_count));

    let rx_queues: Vec<RxQueueReport> = queues
        .iter()
        .map(|&queue| {
            let irqs: Vec<u32> = dev
                .queue_irqs
                .iter()
                .filter(|q| q.queue == queue && q.kind != QueueIrqKind::Tx)
                .map(|q| q.irq)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            // Sum the queue's IRQ lines column by column, then pair columns with CPUs.
            let mut columns: Vec<u64> = Vec::new();
            if let Some(ints) = ints {
                for line in irqs.iter().filter_map(|irq| lines_by_irq.get(irq)) {
                    columns.resize(columns.len().max(line.counts.len()), 0);
                    for (sum, count) in columns.iter_mut().zip(&line.counts) {
                        *sum += count;
                    }
                }
                columns.truncate(ints.cpus.len());
            }
            let irq_count = columns.iter().sum();
            // Only the CPUs that took the queue's interrupts: a few of 1152 columns.
            let irq_cpus: Vec<(u32, u64)> = ints
                .map(|i| {
                    i.cpus
                        .iter()
                        .copied()
                        .zip(columns.iter().copied())
                        .filter(|(_, n)| *n > 0)
                        .collect()
                })
                .unwrap_or_default();
            let affinity = union_of(
                irqs.iter()
                    .filter_map(|i| dev.irq_affinity.get(i))
                    .map(|a| &a.allowed),
            );
            let effective: Option<BTreeSet<u32>> = irqs
                .iter()
                .map(|i| dev.irq_affinity.get(i).and_then(|a| a.effective.clone()))
                .collect::<Option<Vec<_>>>()
                .filter(|v| !v.is_empty())
                .map(|v| v.into_iter().flatten().collect());
            let counters = dev.queue_counters.iter().find(|c| c.queue == queue);
            RxQueueReport {
                queue,
                irqs,
                irq_count,
                irq_cpus,
                affinity,
                effective_affinity: effective.map(|e| e.into_iter().collect()),
                // Set across windows by affinity::AffinityBaselines.
                affinity_baseline: None,
                affinity_drifted: false,
                affinity_changes: 0,
                rps_cpus: dev
                    .sys
                    .rx_queues
                    .iter()
                    .find(|q| q.queue == queue)
                    .map(|q| q.rps_cpus.clone())
                    .unwrap_or_default(),
                rx_packets: counters.and_then(|c| c.rx_packets),
                rx_bytes: counters.and_then(|c| c.rx_bytes),
                source: counters.map(|c| c.source),
                table_share: table_shares
                    .as_ref()
                    .and_then(|s| s.get(queue as usize).copied()),
            }
        })
        .collect();

    let packets: Vec<f64> = rx_queues
        .iter()
        .filter_map(|q| q.rx_packets)
        .map(|p| p as f64)
        .collect();
    let irq_counts: Vec<u64> = rx_queues
        .iter()
        .filter(|q| !q.irqs.is_empty())
        .map(|q| q.irq_count)
        .collect();
    let (isi, isi_normalized) = match indices::isi(&irq_counts) {
        Some((h, n)) => (Some(h), n),
        None => (None, None),
    };

    let measured = dev.rss.as_ref().and_then(|r| entry_packets(dev, r, window));
    let (entries, measured_by) = match measured {
        Some((e, by)) => (Some(e), Some(by)),
        None => (None, None),
    };
    DeviceReport {
        name: dev.sys.name.clone(),
        driver: dev.sys.driver.clone(),
        numa_node: dev.sys.numa_node,
        channels: dev.channels.as_ref().map(|c| ChannelsReport {
            rx: c.rx,
            tx: c.tx,
            combined: c.combined,
        }),
        irq_cpus_off_node: off_node_cpus(dev, &rx_queues, window),
        rss: dev.rss.as_ref().map(|r| RssReport {
            indirection: r.indirection.clone(),
            hfunc: r.hfunc.clone(),
            key_hex: r.key_hex(),
            source: format!("{:?}", r.source).to_lowercase(),
            flow_hash: dev.flow_hash.as_ref().map(|f| f.letters()),
            measured_by,
            entry_packets: entries.clone(),
        }),
        indices: DeviceIndices {
            qpi: indices::qpi(&packets),
            isi,
            isi_normalized,
            table_qpi: table_shares.as_deref().and_then(indices::qpi),
            haf95_us: haf95_us(dev, &rx_queues, window, cfg),
        },
        rss_shadow: rss_shadow_summary(dev, entries.as_deref(), measured_by, ring_count),
        rx_queues,
        regime: Default::default(),
        advice: "",
        regime_transitions: 0,
    }
}

/// `current`, `equal` and `balanced` over the window's entry loads; empty without them.
fn rss_shadow_summary(
    dev: &DeviceFacts,
    entries: Option<&[u64]>,
    measured_by: Option<&str>,
    ring_count: usize,
) -> Vec<crate::report::RssShadowSummary> {
    use crate::rss_shadow::{self, CandidateSpec, DeviceInput};
    let (Some(entries), Some(rss), Some(measured_by)) = (entries, dev.rss.as_ref(), measured_by)
    else {
        return Vec::new();
    };
    let highest = rss
        .indirection
        .iter()
        .map(|&q| q as usize + 1)
        .max()
        .unwrap_or(0);
    let input = DeviceInput {
        name: dev.sys.name.clone(),
        table: rss.indirection.clone(),
        entry_packets: entries.to_vec(),
        measured_by: measured_by.into(),
        queues: ring_count.max(highest).max(1),
        numa_local: None,
    };
    let specs = [CandidateSpec::Equal, CandidateSpec::Balanced];
    let Ok(report) = rss_shadow::run(&input, &specs, &mut |p| {
        Err(rss_shadow::RssShadowError::Input(format!(
            "{p}: no files here"
        )))
    }) else {
        return Vec::new();
    };
    report
        .policies
        .iter()
        .map(|p| crate::report::RssShadowSummary {
            policy: p.policy.clone(),
            qpi: p.qpi,
            max_share: p.max_share(),
            entries_moved: p.entries_moved,
        })
        .collect()
}

/// Packets per indirection-table entry over the window, and how they were measured:
/// - "skb_hash": the rx probe counted every packet of the device by the hash its driver
///   stored in the skb, reduced by the driver's rule (collect::cycle lists the devices);
///   used when those counts cover this table and saw packets;
/// - "toeplitz": else, the window's sampled flows received on this device, each hashed
///   with the device's Toeplitz key (sources::toeplitz); only the flows to watched ports.
///
/// None without either: no counts and no flow samples, key, Toeplitz hfunc or driver
/// whose entry rule is cited there.
fn entry_packets(
    dev: &DeviceFacts,
    rss: &crate::sources::ethtool_rss::RssConfig,
    window: &Window,
) -> Option<(Vec<u64>, &'static str)> {
    if let Some(entries) = skb_hash_entries(dev, rss, window) {
        return Some((entries, "skb_hash"));
    }
    toeplitz_entries(dev, rss, window).map(|e| (e, "toeplitz"))
}

/// The probe's per-entry counts of this device, when they were taken under a table of
/// this size and counted packets (a device whose packets carry no driver hash, e.g.
/// RXHASH off or RPS rehashing an L3-typed hash, counts none).
fn skb_hash_entries(
    dev: &DeviceFacts,
    rss: &crate::sources::ethtool_rss::RssConfig,
    window: &Window,
) -> Option<Vec<u64>> {
    let (netns, ifindex) = (window.host_netns?, dev.sys.ifindex?);
    let counts = window.rx_entry_counts.as_ref()?.iter().find(|c| {
        c.device.netns == netns
            && c.device.ifindex == ifindex
            && c.packets.len() == rss.indirection.len()
    })?;
    (counts.packets.iter().sum::<u64>() > 0).then(|| counts.packets.clone())
}

fn toeplitz_entries(
    dev: &DeviceFacts,
    rss: &crate::sources::ethtool_rss::RssConfig,
    window: &Window,
) -> Option<Vec<u64>> {
    use crate::sources::toeplitz;
    if rss.hfunc.as_deref() != Some("toeplitz") || rss.indirection.is_empty() {
        return None;
    }
    let key = rss.key.as_deref().filter(|k| !k.is_empty())?;
    let rule = toeplitz::driver_rule(dev.sys.driver.as_deref()?)?;
    // What the device reports it hashes (ETHTOOL_GRXFH) over the driver's defaults.
    let mut fields = toeplitz::FlowFields::defaults(rule);
    if let Some(reported) = &dev.flow_hash {
        for &flow in reported.fields.keys() {
            if let Some(slot) = fields.slot(flow) {
                *slot = reported.hash_fields(flow);
            }
        }
    }
    let (netns, ifindex) = (window.host_netns?, dev.sys.ifindex?);
    let flows = window.listeners.as_ref()?.flows.as_ref()?;
    toeplitz::entry_packets(
        flows
            .iter()
            .filter(|f| f.netns == netns && f.ifindex == ifindex)
            .map(|f| toeplitz::SampledFlow {
                saddr: f.saddr,
                daddr: f.daddr,
                sport: f.sport,
                dport: f.dport,
                protocol: f.protocol,
                packets: f.packets,
            }),
        key,
        rss.indirection.len(),
        &fields,
    )
}

/// The CPUs of several CPU lists, ascending and once each. Kernel lists come sorted, so
/// the common case (one IRQ per queue) is a copy: 1152-CPU masks made a set per queue
/// the costliest part of a big host's report.
fn union_of<'a>(lists: impl Iterator<Item = &'a Vec<u32>>) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    for list in lists {
        out.extend_from_slice(list);
    }
    if !out.is_sorted() {
        out.sort_unstable();
    }
    out.dedup();
    out
}

/// CPUs targeted by the device's queue IRQs (effective affinity where known) that belong
/// to another NUMA node than the device: their packets cross the interconnect.
fn off_node_cpus(dev: &DeviceFacts, queues: &[RxQueueReport], window: &Window) -> Vec<u32> {
    let Some(node) = dev.sys.numa_node.filter(|n| *n >= 0) else {
        return Vec::new();
    };
    let cpus: BTreeSet<u32> = queues
        .iter()
        .flat_map(|q| {
            q.effective_affinity
                .as_ref()
                .unwrap_or(&q.affinity)
                .iter()
                .copied()
        })
        .collect();
    cpus.into_iter()
        .filter(|cpu| window.cpu_nodes.get(cpu).is_some_and(|n| *n as i32 != node))
        .collect()
}

/// HAF95: p95 ingress age (µs) over the packets of hot queues, a hot queue being one whose
/// packet count is at least `hot_queue_factor` × the mean over the device's queues.
fn haf95_us(
    dev: &DeviceFacts,
    queues: &[RxQueueReport],
    window: &Window,
    cfg: &ModelConfig,
) -> Option<f64> {
    let ages = window.rx_queue_ages.as_ref()?;
    let (netns, ifindex) = (window.host_netns?, dev.sys.ifindex?);
    let packets: Vec<(u32, u64)> = queues
        .iter()
        .filter_map(|q| Some((q.queue, q.rx_packets?)))
        .collect();
    let total: u64 = packets.iter().map(|(_, p)| p).sum();
    if packets.is_empty() || total == 0 {
        return None;
    }
    let mean = total as f64 / packets.len() as f64;
    let hot: Vec<u32> = packets
        .iter()
        .filter(|(_, p)| *p as f64 >= cfg.hot_queue_factor * mean)
        .map(|(q, _)| *q)
        .collect();
    let mut merged = Vec::new();
    for a in ages.iter().filter(|a| {
        a.netns == netns && a.ifindex == ifindex && a.queue.is_some_and(|q| hot.contains(&q))
    }) {
        super::listener::merge_buckets(&mut merged, &a.buckets);
    }
    super::listener::log2_percentile_us(&merged, 95.0)
}
