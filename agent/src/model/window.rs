//! The model's input: counters over an interval. A [`Snapshot`] holds counters as the
//! kernel reports them (since boot); a [`Window`] holds what they grew by over an
//! interval, between two snapshots ([`Window::between`]) or from boot to one
//! ([`Window::since_boot`], the one-shot `snapshot` command). Distinct types, so a
//! since-boot snapshot cannot be taken for deltas nor deltas subtracted again. State
//! (tables, affinity, queue depths) is the later snapshot's.

use std::collections::{BTreeMap, HashMap};

use skewscope_probes::{CpuSoftirqTime, EntryCount, FlowSample, QueueAge, QueueCount, SocketAge};

use crate::counters::{
    counter_delta, counter_delta_u32, delta_columns, delta_histogram, delta_opt, delta_opt_u32,
};
use crate::snapshot::{DeviceFacts, ListenerFacts, ProbeCoverage, Snapshot, SourceStatus};
use crate::sources::{
    interrupts::Interrupts, proc_stat::ProcStat, softirqs::SoftIrqs, softnet::SoftnetCpu,
    sysctls::Sysctls,
};

/// A [`Snapshot`]'s facts with every counter replaced by its growth over the window;
/// built only by [`Window::since_boot`] and [`Window::between`].
#[derive(Debug, Clone)]
pub struct Window {
    /// Length in seconds; None: since boot (counts, no rates).
    secs: Option<f64>,
    pub interrupts: Option<Interrupts>,
    pub softirqs: Option<SoftIrqs>,
    pub proc_stat: Option<ProcStat>,
    pub softnet: Option<Vec<SoftnetCpu>>,
    /// NET_RX/NET_TX softirq time per CPU from the eBPF probe, when attached.
    pub softirq_time: Option<Vec<CpuSoftirqTime>>,
    pub online_cpus: Option<Vec<u32>>,
    /// CPU → NUMA node; empty when unknown.
    pub cpu_nodes: BTreeMap<u32, u32>,
    pub sysctls: Option<Sysctls>,
    pub devices: Vec<DeviceFacts>,
    /// Inode of the agent's own network namespace (the one sysfs devices belong to).
    pub host_netns: Option<u64>,
    pub listeners: Option<ListenerFacts>,
    /// Packets per (netns, ifindex, RX queue) at netif_receive_skb (eBPF).
    pub rx_queue_counts: Option<Vec<QueueCount>>,
    /// Ingress-age histograms per RX queue (eBPF).
    pub rx_queue_ages: Option<Vec<QueueAge>>,
    /// Packets per RSS indirection-table entry from the skb hash (eBPF).
    pub rx_entry_counts: Option<Vec<EntryCount>>,
    /// How long the per-packet probes were attached: during the window (their counts
    /// are already scaled up to the whole window), or since they loaded.
    pub probe_coverage: Option<ProbeCoverage>,
    /// How each source fared in the later snapshot's cycle.
    pub sources: Vec<SourceStatus>,
}

impl Window {
    /// The counters of one snapshot as they stand: a window from boot (and, for the
    /// probes' counts, from their load), with no length to make rates of.
    pub fn since_boot(snap: Snapshot) -> Self {
        Self::of(snap, None)
    }

    /// The window between two snapshots of the same collector: counters become deltas.
    pub fn between(prev: &Snapshot, cur: &Snapshot) -> Self {
        let elapsed = cur.taken_at.saturating_duration_since(prev.taken_at);
        let mut w = Self::of(cur.clone(), Some(elapsed.as_secs_f64()));
        w.subtract(prev);
        if let (Some(p), Some(c)) = (&prev.probe_coverage, &mut w.probe_coverage) {
            c.attached = c.attached.saturating_sub(p.attached);
            let share = c.attached.as_secs_f64() / elapsed.as_secs_f64();
            w.scale_probe_counts(share);
        }
        w
    }

    /// Length in seconds; None for a window since boot.
    pub fn secs(&self) -> Option<f64> {
        self.secs
    }

    fn of(snap: Snapshot, secs: Option<f64>) -> Self {
        // No `..`: a new snapshot field must be placed here (kept, or left out on purpose).
        let Snapshot {
            taken_at: _,
            interrupts,
            softirqs,
            proc_stat,
            softnet,
            softirq_time,
            online_cpus,
            cpu_nodes,
            sysctls,
            devices,
            host_netns,
            listeners,
            rx_queue_counts,
            rx_queue_ages,
            rx_entry_counts,
            probe_coverage,
            sources,
        } = snap;
        Self {
            secs,
            interrupts,
            softirqs,
            proc_stat,
            softnet,
            softirq_time,
            online_cpus,
            cpu_nodes,
            sysctls,
            devices,
            host_netns,
            listeners,
            rx_queue_counts,
            rx_queue_ages,
            rx_entry_counts,
            probe_coverage,
            sources,
        }
    }

    /// Every counter minus its value in `prev`, matched by CPU, IRQ, socket, flow or
    /// queue; what `prev` lacks counts whole.
    fn subtract(&mut self, prev: &Snapshot) {
        if let (Some(p), Some(c)) = (&prev.interrupts, &mut self.interrupts) {
            for (i, line) in c.lines.iter_mut().enumerate() {
                let before = match p.lines.get(i) {
                    Some(l) if l.irq == line.irq => Some(l),
                    _ => p.lines.iter().find(|l| l.irq == line.irq),
                };
                if let Some(before) = before {
                    delta_columns(&p.cpus, &before.counts, &c.cpus, &mut line.counts);
                }
            }
        }

        if let (Some(p), Some(c)) = (&prev.softirqs, &mut self.softirqs) {
            for row in c.rows.iter_mut() {
                if let Some(before) = p.rows.iter().find(|r| r.name == row.name) {
                    delta_columns(&p.cpus, &before.counts, &c.cpus, &mut row.counts);
                }
            }
        }

        if let (Some(p), Some(c)) = (&prev.proc_stat, &mut self.proc_stat) {
            for cpu in c.cpus.iter_mut() {
                if let Some(before) = p.cpus.iter().find(|b| b.cpu == cpu.cpu) {
                    cpu.softirq = counter_delta(before.softirq, cpu.softirq);
                }
            }
        }

        if let (Some(p), Some(c)) = (&prev.softnet, &mut self.softnet) {
            for cpu in c.iter_mut() {
                if let Some(b) = p.iter().find(|b| b.cpu == cpu.cpu) {
                    cpu.processed = counter_delta_u32(b.processed, cpu.processed);
                    cpu.dropped = counter_delta_u32(b.dropped, cpu.dropped);
                    cpu.time_squeeze = counter_delta_u32(b.time_squeeze, cpu.time_squeeze);
                    cpu.received_rps = delta_opt_u32(b.received_rps, cpu.received_rps);
                    cpu.flow_limit_count = delta_opt_u32(b.flow_limit_count, cpu.flow_limit_count);
                }
            }
        }

        if let (Some(p), Some(c)) = (&prev.softirq_time, &mut self.softirq_time) {
            for cpu in c.iter_mut() {
                if let Some(b) = p.iter().find(|b| b.cpu == cpu.cpu) {
                    cpu.net_rx_count = counter_delta(b.net_rx_count, cpu.net_rx_count);
                    cpu.net_rx_ns = counter_delta(b.net_rx_ns, cpu.net_rx_ns);
                    cpu.net_tx_count = counter_delta(b.net_tx_count, cpu.net_tx_count);
                    cpu.net_tx_ns = counter_delta(b.net_tx_ns, cpu.net_tx_ns);
                }
            }
        }

        if let (Some(p), Some(c)) = (&prev.listeners, &mut self.listeners) {
            if let (Some(pe), Some(ce)) = (&p.events, &mut c.events) {
                let before: HashMap<(u64, u64), u64> =
                    pe.iter().map(|e| ((e.netns, e.inode), e.events)).collect();
                for e in ce.iter_mut() {
                    if let Some(b) = before.get(&(e.netns, e.inode)) {
                        e.events = counter_delta(*b, e.events);
                    }
                }
            }
            if let (Some(ps), Some(cs)) = (&p.selections, &mut c.selections) {
                subtract_selections(ps, cs);
            }
            if let (Some(pf), Some(cf)) = (&p.flows, &mut c.flows) {
                let key =
                    |f: &FlowSample| (f.netns, f.protocol, f.saddr, f.sport, f.daddr, f.dport);
                let before: HashMap<_, (u64, u64)> =
                    pf.iter().map(|f| (key(f), (f.packets, f.bytes))).collect();
                for f in cf.iter_mut() {
                    if let Some((packets, bytes)) = before.get(&key(f)) {
                        f.packets = counter_delta(*packets, f.packets);
                        f.bytes = counter_delta(*bytes, f.bytes);
                    }
                }
            }
            if let (Some(pa), Some(ca)) = (&p.socket_ages, &mut c.socket_ages) {
                let before: HashMap<u64, &SocketAge> = pa.iter().map(|a| (a.inode, a)).collect();
                for a in ca.iter_mut() {
                    if let Some(b) = before.get(&a.inode) {
                        delta_histogram(&b.buckets, &mut a.buckets);
                        a.same_cpu = counter_delta(b.same_cpu, a.same_cpu);
                        a.other_cpu = counter_delta(b.other_cpu, a.other_cpu);
                    }
                }
            }
        }

        if let (Some(p), Some(c)) = (&prev.rx_queue_counts, &mut self.rx_queue_counts) {
            let before: HashMap<_, (u64, u64)> = p
                .iter()
                .map(|q| ((q.netns, q.ifindex, q.queue), (q.packets, q.bytes)))
                .collect();
            for q in c.iter_mut() {
                if let Some((packets, bytes)) = before.get(&(q.netns, q.ifindex, q.queue)) {
                    q.packets = counter_delta(*packets, q.packets);
                    q.bytes = counter_delta(*bytes, q.bytes);
                }
            }
        }
        if let (Some(p), Some(c)) = (&prev.rx_queue_ages, &mut self.rx_queue_ages) {
            let before: HashMap<_, &QueueAge> = p
                .iter()
                .map(|q| ((q.netns, q.ifindex, q.queue), q))
                .collect();
            for q in c.iter_mut() {
                if let Some(b) = before.get(&(q.netns, q.ifindex, q.queue)) {
                    delta_histogram(&b.buckets, &mut q.buckets);
                    q.same_cpu = counter_delta(b.same_cpu, q.same_cpu);
                    q.other_cpu = counter_delta(b.other_cpu, q.other_cpu);
                }
            }
        }

        if let (Some(p), Some(c)) = (&prev.rx_entry_counts, &mut self.rx_entry_counts) {
            // Matched by device and table size: a device listed anew starts from zero.
            for e in c.iter_mut() {
                if let Some(b) = p.iter().find(|b| b.device == e.device) {
                    for (cur, before) in e.packets.iter_mut().zip(&b.packets) {
                        *cur = counter_delta(*before, *cur);
                    }
                    for (cur, before) in e.bytes.iter_mut().zip(&b.bytes) {
                        *cur = counter_delta(*before, *cur);
                    }
                }
            }
        }

        for dev in self.devices.iter_mut() {
            let Some(before) = prev.devices.iter().find(|d| d.sys.name == dev.sys.name) else {
                continue;
            };
            for q in dev.queue_counters.iter_mut() {
                if let Some(b) = before
                    .queue_counters
                    .iter()
                    .find(|b| b.queue == q.queue && b.source == q.source)
                {
                    q.rx_packets = delta_opt(b.rx_packets, q.rx_packets);
                    q.rx_bytes = delta_opt(b.rx_bytes, q.rx_bytes);
                }
            }
        }
    }

    /// Estimates the per-packet probes' counts for the whole window from the `share` of it
    /// they were attached (probe_budget). Histograms and locality stay as counted: they are
    /// distributions, which sampling in time leaves unbiased. A window with nothing attached
    /// keeps its zeros (its share tells).
    fn scale_probe_counts(&mut self, share: f64) {
        if !(share > 0.0 && share < 0.999) {
            return;
        }
        let scale = |v: &mut u64| *v = (*v as f64 / share).round() as u64;
        for cpu in self.softirq_time.iter_mut().flatten() {
            scale(&mut cpu.net_rx_count);
            scale(&mut cpu.net_rx_ns);
            scale(&mut cpu.net_tx_count);
            scale(&mut cpu.net_tx_ns);
        }
        if let Some(l) = &mut self.listeners {
            for e in l.events.iter_mut().flatten() {
                scale(&mut e.events);
            }
            for f in l.flows.iter_mut().flatten() {
                scale(&mut f.packets);
                scale(&mut f.bytes);
            }
            if let Some(sel) = &mut l.selections {
                for s in sel.sockets.iter_mut() {
                    scale(&mut s.selections);
                    scale(&mut s.by_hash);
                    scale(&mut s.fallbacks);
                    scale(&mut s.non_syn);
                }
                for h in sel.hashes.iter_mut() {
                    scale(&mut h.selections);
                }
            }
        }
        for q in self.rx_queue_counts.iter_mut().flatten() {
            scale(&mut q.packets);
            scale(&mut q.bytes);
        }
        for e in self.rx_entry_counts.iter_mut().flatten() {
            e.packets.iter_mut().for_each(scale);
            e.bytes.iter_mut().for_each(scale);
        }
        for q in self
            .devices
            .iter_mut()
            .flat_map(|d| d.queue_counters.iter_mut())
        {
            if q.source == crate::snapshot::EBPF_QUEUE_SOURCE {
                q.rx_packets.iter_mut().for_each(scale);
                q.rx_bytes.iter_mut().for_each(scale);
            }
        }
    }
}

/// The selection probe's counters minus their values in `prev`, per socket and per
/// (socket, hash); what `prev` lacks counts whole (a pair the LRU map dropped and
/// created again restarts, so its delta is what it counted since).
fn subtract_selections(
    prev: &skewscope_probes::Selections,
    cur: &mut skewscope_probes::Selections,
) {
    let before: HashMap<(u64, u64), &skewscope_probes::SocketSelections> = prev
        .sockets
        .iter()
        .map(|s| ((s.netns, s.inode), s))
        .collect();
    for s in cur.sockets.iter_mut() {
        if let Some(b) = before.get(&(s.netns, s.inode)) {
            s.selections = counter_delta(b.selections, s.selections);
            s.by_hash = counter_delta(b.by_hash, s.by_hash);
            s.fallbacks = counter_delta(b.fallbacks, s.fallbacks);
            s.non_syn = counter_delta(b.non_syn, s.non_syn);
        }
    }
    let before: HashMap<(u64, u64, u32), u64> = prev
        .hashes
        .iter()
        .map(|h| ((h.netns, h.inode, h.hash), h.selections))
        .collect();
    for h in cur.hashes.iter_mut() {
        if let Some(b) = before.get(&(h.netns, h.inode, h.hash)) {
            h.selections = counter_delta(*b, h.selections);
        }
    }
    cur.unmatched = counter_delta(prev.unmatched, cur.unmatched);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(taken_at: std::time::Instant, attached_ms: u64, events: u64) -> Snapshot {
        Snapshot {
            taken_at,
            interrupts: None,
            softirqs: None,
            proc_stat: None,
            softnet: None,
            softirq_time: None,
            online_cpus: None,
            cpu_nodes: Default::default(),
            sysctls: None,
            devices: Vec::new(),
            host_netns: None,
            listeners: Some(ListenerFacts {
                events: Some(vec![skewscope_probes::ListenerEvents {
                    netns: 1,
                    inode: 7,
                    events,
                    reuseport_id: Some(0),
                    index: Some(0),
                    num_socks: Some(2),
                    port: 53,
                    protocol: 17,
                    family: 2,
                }]),
                ..Default::default()
            }),
            rx_queue_counts: None,
            rx_queue_ages: None,
            rx_entry_counts: None,
            probe_coverage: Some(ProbeCoverage {
                attached: std::time::Duration::from_millis(attached_ms),
                duty: 0.25,
                packet_cost_ns: 400.0,
                cost_measured: false,
                cpu_share: 0.001,
            }),
            sources: Vec::new(),
        }
    }

    #[test]
    fn probe_counts_scale_by_the_attached_share() {
        let t0 = std::time::Instant::now();
        let t1 = t0 + std::time::Duration::from_secs(2);
        let events = |w: &Window| w.listeners.as_ref().unwrap().events.as_ref().unwrap()[0].events;
        // Attached 500 ms of 2 s: 100 counted events estimate 400.
        let w = Window::between(&snapshot(t0, 1000, 50), &snapshot(t1, 1500, 150));
        assert_eq!(w.probe_coverage.unwrap().attached.as_millis(), 500);
        assert_eq!(events(&w), 400);
        // Attached all the window: exact, untouched.
        let w = Window::between(&snapshot(t0, 1000, 50), &snapshot(t1, 3000, 150));
        assert_eq!(events(&w), 100);
        assert_eq!(w.secs(), Some(2.0));
        // Never attached: nothing to scale, the zero share says so.
        let w = Window::between(&snapshot(t0, 1000, 50), &snapshot(t1, 1000, 50));
        assert_eq!(events(&w), 0);
        assert!(w.probe_coverage.unwrap().attached.is_zero());
    }

    #[test]
    fn entry_counts_become_deltas_per_device_and_scale_with_the_share() {
        let t0 = std::time::Instant::now();
        let t1 = t0 + std::time::Duration::from_secs(2);
        let device = |table_size| skewscope_probes::EntryDevice {
            netns: 1,
            ifindex: 2,
            table_size,
        };
        let counts = |table_size, packets: Vec<u64>| EntryCount {
            device: device(table_size),
            bytes: packets.iter().map(|p| p * 64).collect(),
            packets,
        };
        let with = |at, attached_ms, entries| Snapshot {
            rx_entry_counts: Some(entries),
            ..snapshot(at, attached_ms, 0)
        };
        // Attached 1 s of 2: the growth 4, 0, 10, 2 estimates 8, 0, 20, 4.
        let w = Window::between(
            &with(t0, 1000, vec![counts(4, vec![1, 5, 0, 3])]),
            &with(t1, 2000, vec![counts(4, vec![5, 5, 10, 5])]),
        );
        let e = &w.rx_entry_counts.as_ref().unwrap()[0];
        assert_eq!(e.packets, [8, 0, 20, 4]);
        assert_eq!(e.bytes, [512, 0, 1280, 256]);
        // Listed anew under another table size: counted since then, whole.
        let w = Window::between(
            &with(t0, 1000, vec![counts(4, vec![1, 5, 0, 3])]),
            &with(t1, 3000, vec![counts(2, vec![7, 1])]),
        );
        assert_eq!(w.rx_entry_counts.as_ref().unwrap()[0].packets, [7, 1]);
    }

    #[test]
    fn selections_become_deltas_per_socket_and_hash_and_scale_with_coverage() {
        use skewscope_probes::{HashSelections, Selections, SocketSelections};
        let sel = |selections, hashes: &[(u32, u64)]| Selections {
            hook: None,
            sockets: vec![SocketSelections {
                netns: 1,
                inode: 7,
                selections,
                by_hash: selections,
                fallbacks: 1,
                non_syn: 0,
                reuseport_id: Some(0),
                index: Some(0),
                num_socks: Some(2),
                port: 53,
                protocol: 17,
                family: 2,
            }],
            hashes: hashes
                .iter()
                .map(|&(hash, selections)| HashSelections {
                    netns: 1,
                    inode: 7,
                    hash,
                    selections,
                })
                .collect(),
            unmatched: 0,
        };
        let t0 = std::time::Instant::now();
        let t1 = t0 + std::time::Duration::from_secs(2);
        let (mut a, mut b) = (snapshot(t0, 1000, 0), snapshot(t1, 3000, 0));
        a.listeners.as_mut().unwrap().selections = Some(sel(10, &[(5, 4), (6, 6)]));
        // Hash 6's pair was dropped by the LRU and made again (2 since); 9 is new.
        b.listeners.as_mut().unwrap().selections = Some(sel(25, &[(5, 10), (6, 2), (9, 3)]));
        let w = Window::between(&a, &b);
        let got = w.listeners.as_ref().unwrap().selections.clone().unwrap();
        assert_eq!(
            (got.sockets[0].selections, got.sockets[0].fallbacks),
            (15, 0)
        );
        let hashes: Vec<(u32, u64)> = got.hashes.iter().map(|h| (h.hash, h.selections)).collect();
        assert_eq!(hashes, vec![(5, 6), (6, 2), (9, 3)]);
        // Attached half the window: estimates for the whole of it.
        let b = {
            let mut b = b;
            b.probe_coverage.as_mut().unwrap().attached = std::time::Duration::from_millis(2000);
            b
        };
        let w = Window::between(&a, &b);
        let got = w.listeners.as_ref().unwrap().selections.clone().unwrap();
        assert_eq!(got.sockets[0].selections, 30);
        assert_eq!(got.hashes[0].selections, 12);
    }

    #[test]
    fn since_boot_keeps_the_counters_and_has_no_length() {
        let w = Window::since_boot(snapshot(std::time::Instant::now(), 1000, 150));
        assert_eq!(w.secs(), None);
        let events = w.listeners.as_ref().unwrap().events.as_ref().unwrap()[0].events;
        assert_eq!(events, 150, "counted since the probes loaded, not scaled");
        assert_eq!(w.probe_coverage.unwrap().attached.as_millis(), 1000);
    }
}
