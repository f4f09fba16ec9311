//! Window → reuseport groups with their listener indices (LSI, HCR, LQD, BCI,
//! ingress age, DLG, locality). Pure: the history of past windows is passed in.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;

use super::indices;
use super::Window;
use crate::report::{
    FlowReport, GroupIndices, HashCount, ListenerReport, ReuseportGroupReport, SelectionReport,
    TOP_SELECTION_HASHES,
};
use crate::snapshot::ListenerFacts;
use crate::sources::sock_diag::{self, Protocol};

/// Settings of the listener model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ListenerConfig {
    /// The ingress-age p95 a service promises (µs); DLG is measured against it.
    pub ingress_age_target_us: f64,
    /// Flows listed per group.
    pub top_flows: usize,
    /// How far back BCI looks (1 s windows over a rolling minute by default).
    pub bci_window_secs: f64,
    /// Windows needed before BCI is reported.
    pub bci_min_windows: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            ingress_age_target_us: 1000.0,
            top_flows: 10,
            bci_window_secs: 60.0,
            bci_min_windows: 5,
        }
    }
}

/// Identity of a group across cycles.
pub type GroupKey = (u64, Protocol, IpAddr, u16);

/// What the model remembers between windows: BCI samples and membership.
#[derive(Debug, Default, Clone)]
pub struct ListenerHistory {
    groups: HashMap<GroupKey, GroupHistory>,
}

#[derive(Debug, Default, Clone)]
struct GroupHistory {
    /// Each listener's event rates (events/s) in past windows, by socket inode.
    window_rates: HashMap<u64, VecDeque<f64>>,
    members: BTreeSet<u64>,
    membership_changes: u64,
}

/// Build the group reports of one window. A window since boot: counters since the probes
/// attached (no rates, no BCI).
pub fn group_reports(
    window: &Window,
    cfg: &ListenerConfig,
    history: &mut ListenerHistory,
) -> Vec<ReuseportGroupReport> {
    let window_secs = window.secs();
    let Some(facts) = &window.listeners else {
        return Vec::new();
    };
    let events: HashMap<(u64, u64), &skewscope_probes::ListenerEvents> = facts
        .events
        .iter()
        .flatten()
        .map(|e| ((e.netns, e.inode), e))
        .collect();
    let selections = facts.selections.as_ref().map(selection_reports);
    let ages: HashMap<u64, &skewscope_probes::SocketAge> = facts
        .socket_ages
        .iter()
        .flatten()
        .map(|a| (a.inode, a))
        .collect();

    let mut reports = Vec::new();
    let mut seen: BTreeSet<GroupKey> = BTreeSet::new();
    for group in sock_diag::candidate_groups(&facts.sockets) {
        let key: GroupKey = (
            group.netns,
            group.protocol,
            group.local.ip(),
            group.local.port(),
        );
        seen.insert(key);
        let hist = history.groups.entry(key).or_default();

        let listeners: Vec<ListenerReport> = group
            .members
            .iter()
            .map(|m| {
                let ev = events.get(&(m.netns, m.inode));
                let owner = facts.owners.get(&m.inode);
                ListenerReport {
                    inode: m.inode,
                    index: ev.and_then(|e| e.index),
                    pid: owner.map(|o| o.pid),
                    comm: owner.map(|o| o.comm.clone()),
                    container: owner.and_then(|o| o.container_id.clone()),
                    // A socket the probe saw no event for has no map entry: 0. No probe
                    // read at all: not measured.
                    events: facts.events.as_ref().map(|_| ev.map_or(0, |e| e.events)),
                    // Likewise: measured and never chosen is 0, not measured is null.
                    selections: selections
                        .as_ref()
                        .map(|by_socket| by_socket.get(&(m.netns, m.inode)).map_or(0, |(n, _)| *n)),
                    selection: selections
                        .as_ref()
                        .and_then(|by_socket| by_socket.get(&(m.netns, m.inode)))
                        .map(|(_, r)| r.clone()),
                    queue_depth: m.queue_depth,
                    backlog_limit: m.backlog_limit,
                    drops: m.drops,
                    ingress_age_p95_us: ages
                        .get(&m.inode)
                        .and_then(|a| log2_percentile_us(&a.buckets, 95.0)),
                    // A socket with no aged read has no map entry: 0. No map read: null.
                    ingress_age_samples: facts
                        .socket_ages
                        .as_ref()
                        .map(|_| ages.get(&m.inode).map_or(0, |a| a.same_cpu + a.other_cpu)),
                    ingress_age_other_cpu: facts
                        .socket_ages
                        .as_ref()
                        .map(|_| ages.get(&m.inode).map_or(0, |a| a.other_cpu)),
                    state: None,
                }
            })
            .collect();

        // Membership: joins and leaves against the last window (restart windows).
        let members: BTreeSet<u64> = listeners.iter().map(|l| l.inode).collect();
        if !hist.members.is_empty() {
            hist.membership_changes += hist.members.symmetric_difference(&members).count() as u64;
        }
        hist.members = members;

        let probe_seen = facts.events.is_some();
        let secs = window_secs.filter(|s| *s > 0.0);
        let rates: Vec<f64> = listeners
            .iter()
            .map(|l| l.events.unwrap_or(0) as f64 / secs.unwrap_or(1.0))
            .collect();
        let bci = match secs {
            Some(secs) if probe_seen => {
                let keep = (cfg.bci_window_secs / secs).ceil().max(1.0) as usize;
                hist.window_rates
                    .retain(|inode, _| hist.members.contains(inode));
                for (l, rate) in listeners.iter().zip(&rates) {
                    let w = hist.window_rates.entry(l.inode).or_default();
                    w.push_back(*rate);
                    while w.len() > keep {
                        w.pop_front();
                    }
                }
                hist.window_rates
                    .values()
                    .filter_map(|w| bci(w, cfg.bci_min_windows))
                    .reduce(f64::max)
            }
            _ => None,
        };

        let flows = group_flows(facts, &group);
        let volumes: Vec<u64> = flows.iter().map(|f| f.packets).collect();

        let mut merged = Vec::new();
        let (mut same, mut other) = (0u64, 0u64);
        for l in &group.members {
            if let Some(a) = ages.get(&l.inode) {
                merge_buckets(&mut merged, &a.buckets);
                same += a.same_cpu;
                other += a.other_cpu;
            }
        }
        let p95 = log2_percentile_us(&merged, 95.0);
        let depths: Vec<u64> = listeners.iter().map(|l| l.queue_depth).collect();

        reports.push(ReuseportGroupReport {
            netns: group.netns,
            protocol: match group.protocol {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
            },
            address: group.local.ip().to_string(),
            port: group.local.port(),
            reuseport_id: group
                .members
                .iter()
                .find_map(|m| events.get(&(m.netns, m.inode)).and_then(|e| e.reuseport_id)),
            indices: GroupIndices {
                lsi: if probe_seen {
                    indices::lsi(&rates)
                } else {
                    None
                },
                hcr_1: indices::hcr(&volumes, 1),
                hcr_5: indices::hcr(&volumes, 5),
                lqd: indices::lqd(&depths),
                bci,
                ingress_age_p50_us: log2_percentile_us(&merged, 50.0),
                ingress_age_p95_us: p95,
                ingress_age_p99_us: log2_percentile_us(&merged, 99.0),
                dlg_us: p95.map(|p| p - cfg.ingress_age_target_us),
                locality_miss_ratio: (same + other > 0)
                    .then(|| other as f64 / (same + other) as f64),
            },
            top_flows: flows.into_iter().take(cfg.top_flows).collect(),
            regime: Default::default(),
            advice: "",
            p_hot: None,
            regime_transitions: 0,
            listeners,
            membership_changes: hist.membership_changes,
        });
    }
    // Groups gone from this window (their namespace deleted, their service stopped) are
    // forgotten, so churn cannot grow the history.
    history.groups.retain(|k, _| seen.contains(k));
    reports
}

/// Per socket (netns, inode): its selections and how they were made, with its heaviest
/// hashes.
fn selection_reports(
    sel: &skewscope_probes::Selections,
) -> HashMap<(u64, u64), (u64, SelectionReport)> {
    let mut hashes: HashMap<(u64, u64), Vec<HashCount>> = HashMap::new();
    for h in sel.hashes.iter().filter(|h| h.selections > 0) {
        hashes
            .entry((h.netns, h.inode))
            .or_default()
            .push(HashCount {
                hash: h.hash,
                selections: h.selections,
            });
    }
    let hook = sel.hook.map_or("", |h| h.name());
    sel.sockets
        .iter()
        .map(|s| {
            let mut top = hashes.remove(&(s.netns, s.inode)).unwrap_or_default();
            let distinct_hashes = top.len();
            top.sort_by(|a, b| b.selections.cmp(&a.selections).then(a.hash.cmp(&b.hash)));
            top.truncate(TOP_SELECTION_HASHES);
            let report = SelectionReport {
                hook,
                by_hash: s.by_hash,
                fallbacks: s.fallbacks,
                non_syn: s.non_syn,
                hash_index: s.index,
                num_socks: s.num_socks,
                distinct_hashes,
                top_hashes: top,
            };
            ((s.netns, s.inode), (s.selections, report))
        })
        .collect()
}

/// One listener's BCI = p95 / median of its event rate over the kept windows; the group
/// reports its burstiest listener. None until `min_windows` windows were seen.
fn bci(windows: &VecDeque<f64>, min_windows: usize) -> Option<f64> {
    if windows.len() < min_windows {
        return None;
    }
    let rates: Vec<f64> = windows.iter().copied().collect();
    let median = indices::percentile(&rates, 50.0)?;
    let p95 = indices::percentile(&rates, 95.0)?;
    (median > 0.0).then(|| p95 / median)
}

/// The group's flows, heaviest first: sampled packets to the group's port in its
/// namespace, to its address (or any address for a wildcard bind).
fn group_flows(facts: &ListenerFacts, group: &sock_diag::ReuseportCandidate) -> Vec<FlowReport> {
    let proto = match group.protocol {
        Protocol::Tcp => libc::IPPROTO_TCP as u8,
        Protocol::Udp => libc::IPPROTO_UDP as u8,
    };
    let wildcard = group.local.ip().is_unspecified();
    let mut flows: Vec<FlowReport> = facts
        .flows
        .iter()
        .flatten()
        .filter(|f| {
            f.netns == group.netns
                && f.protocol == proto
                && f.dport == group.local.port()
                && (wildcard || f.daddr == group.local.ip())
        })
        .map(|f| FlowReport {
            saddr: f.saddr.to_string(),
            sport: f.sport,
            daddr: f.daddr.to_string(),
            dport: f.dport,
            packets: f.packets,
            bytes: f.bytes,
            rx_cpu: Some(f.rx_cpu),
            rx_queue: f.rx_queue,
            rx_hash: f.rx_hash,
        })
        .filter(|f| f.packets > 0)
        .collect();
    flows.sort_by(|a, b| b.packets.cmp(&a.packets).then(a.sport.cmp(&b.sport)));
    flows
}

pub fn merge_buckets(into: &mut Vec<u64>, from: &[u64]) {
    if into.len() < from.len() {
        into.resize(from.len(), 0);
    }
    for (a, b) in into.iter_mut().zip(from) {
        *a += b;
    }
}

/// Percentile (µs) of a log2 histogram of nanoseconds, interpolating linearly inside the
/// bucket that holds the rank (bucket i spans the probe's documented bounds).
pub fn log2_percentile_us(buckets: &[u64], p: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (p / 100.0).clamp(0.0, 1.0) * total as f64;
    let mut seen = 0.0;
    for (i, &n) in buckets.iter().enumerate() {
        if n == 0 {
            continue;
        }
        if seen + n as f64 >= rank {
            let (lo, hi) = skewscope_probes::log2_bucket_bounds_ns(i);
            // The last bucket is open-ended: read it as one more doubling.
            let hi = if hi == u64::MAX {
                lo.saturating_mul(2)
            } else {
                hi
            };
            let frac = ((rank - seen) / n as f64).clamp(0.0, 1.0);
            return Some((lo as f64 + (hi - lo) as f64 * frac) / 1000.0);
        }
        seen += n as f64;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{ListenerFacts, Snapshot};
    use crate::sources::sock_diag::{ListenSocket, Protocol};
    use std::time::{Duration, Instant};

    fn socket(inode: u64) -> ListenSocket {
        ListenSocket {
            netns: 1,
            protocol: Protocol::Udp,
            local: "10.0.0.1:53".parse().unwrap(),
            inode,
            uid: 0,
            cookie: 0,
            queue_depth: 0,
            backlog_limit: None,
            drops: None,
            rcvbuf: None,
            rmem_alloc: None,
        }
    }

    fn snapshot(
        taken_at: Instant,
        events: Option<Vec<skewscope_probes::ListenerEvents>>,
    ) -> Snapshot {
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
                sockets: vec![socket(7), socket(8)],
                events,
                ..Default::default()
            }),
            rx_queue_counts: None,
            rx_queue_ages: None,
            rx_entry_counts: None,
            probe_coverage: None,
            sources: Vec::new(),
        }
    }

    fn events(inode: u64, n: u64) -> skewscope_probes::ListenerEvents {
        skewscope_probes::ListenerEvents {
            netns: 1,
            inode,
            events: n,
            reuseport_id: Some(0),
            index: Some(0),
            num_socks: Some(2),
            port: 53,
            protocol: 17,
            family: 2,
        }
    }

    fn listener_events(
        prev: Option<Vec<skewscope_probes::ListenerEvents>>,
        cur: Option<Vec<skewscope_probes::ListenerEvents>>,
    ) -> (Vec<Option<u64>>, Option<f64>) {
        let t0 = Instant::now();
        let w = Window::between(
            &snapshot(t0, prev),
            &snapshot(t0 + Duration::from_secs(2), cur),
        );
        let groups = group_reports(
            &w,
            &ListenerConfig::default(),
            &mut ListenerHistory::default(),
        );
        assert_eq!(groups.len(), 1);
        let g = &groups[0];
        (
            g.listeners.iter().map(|l| l.events).collect(),
            g.indices.lsi,
        )
    }

    fn selections_of(
        sel: Option<skewscope_probes::Selections>,
    ) -> Vec<(Option<u64>, Option<SelectionReport>)> {
        let mut snap = snapshot(Instant::now(), None);
        snap.listeners.as_mut().unwrap().selections = sel;
        let groups = group_reports(
            &Window::since_boot(snap),
            &ListenerConfig::default(),
            &mut ListenerHistory::default(),
        );
        groups[0]
            .listeners
            .iter()
            .map(|l| (l.selections, l.selection.clone()))
            .collect()
    }

    #[test]
    fn selections_join_by_socket_with_their_heaviest_hashes() {
        use skewscope_probes::{HashSelections, SelectionHook, Selections, SocketSelections};
        // Not measured: null, no details.
        assert_eq!(selections_of(None), vec![(None, None), (None, None)]);
        let hash = |hash, selections| HashSelections {
            netns: 1,
            inode: 7,
            hash,
            selections,
        };
        let mut hashes: Vec<HashSelections> = (0..40).map(|h| hash(h, 1)).collect();
        hashes.push(hash(0xffff_0000, 9));
        let sel = Selections {
            hook: Some(SelectionHook::Kprobe),
            sockets: vec![SocketSelections {
                netns: 1,
                inode: 7,
                selections: 49,
                by_hash: 49,
                fallbacks: 0,
                non_syn: 0,
                reuseport_id: Some(2),
                index: Some(1),
                num_socks: Some(2),
                port: 53,
                protocol: 17,
                family: 2,
            }],
            hashes,
            unmatched: 0,
        };
        let got = selections_of(Some(sel));
        // Socket 8 was never chosen: measured, 0.
        assert_eq!((got[1].0, got[1].1.is_none()), (Some(0), true));
        let (n, report) = &got[0];
        let report = report.as_ref().unwrap();
        assert_eq!(*n, Some(49));
        assert_eq!(report.hook, "kprobe+kretprobe/reuseport_select_sock");
        assert_eq!((report.hash_index, report.num_socks), (Some(1), Some(2)));
        assert_eq!(report.distinct_hashes, 41);
        assert_eq!(report.top_hashes.len(), TOP_SELECTION_HASHES);
        assert_eq!(
            report.top_hashes[0],
            HashCount {
                hash: 0xffff_0000,
                selections: 9
            }
        );
        // Ties by hash value.
        assert_eq!(report.top_hashes[1].hash, 0);
    }

    /// A group gone from the window leaves the history (namespaces come and go).
    #[test]
    fn gone_groups_leave_the_history() {
        let t0 = Instant::now();
        let mut history = ListenerHistory::default();
        let at = |secs: u64, port: u16| {
            let mut s = snapshot(t0 + Duration::from_secs(secs), None);
            for l in &mut s.listeners.as_mut().unwrap().sockets {
                l.local.set_port(port);
            }
            s
        };
        let (a, b, c) = (at(0, 53), at(1, 53), at(2, 54));
        let cfg = ListenerConfig::default();
        group_reports(&Window::between(&a, &b), &cfg, &mut history);
        assert_eq!(history.groups.len(), 1);
        let groups = group_reports(&Window::between(&b, &c), &cfg, &mut history);
        assert_eq!(groups[0].port, 54);
        assert_eq!(
            history.groups.keys().map(|k| k.3).collect::<Vec<_>>(),
            vec![54]
        );
    }

    /// Not measured is null, not 0: the 6.1 guest of issue 11 read 0 events on
    /// every listener while one socket took 2060 of 4520 datagrams.
    #[test]
    fn events_are_null_without_the_probe_and_zero_only_when_measured() {
        assert_eq!(listener_events(None, None), (vec![None, None], None));
        // The probe ran: a socket without a map entry had no event.
        let (ev, lsi) = listener_events(Some(vec![events(7, 10)]), Some(vec![events(7, 30)]));
        assert_eq!(ev, vec![Some(20), Some(0)]);
        assert!(lsi.is_some());
    }
}
