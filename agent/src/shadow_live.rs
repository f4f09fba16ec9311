//! Live shadow replay for `run`: each watched reuseport group's recent flows, replayed on
//! a cadence of their own against the configured candidate selectors, beside the LSI the
//! group actually shows.
//!
//! The run loop feeds every window to [`ShadowWorker::observe`], which merges the
//! window's sampled flows into a per-group accumulator (by 5-tuple; weight = packets).
//! Every `interval` it hands the accumulated flows of each group (the heaviest
//! `max_flows`, plus the group's listener count as the replica size) to one dedicated
//! thread that calls [`skewscope_shadow::replay`] per group. The hand-off never waits: the
//! worker takes a batch only when it is idle; otherwise the batch is dropped and counted
//! (`skipped_handoffs`), so a slow replay never delays a cycle and never piles up work.
//! The worker keeps the latest results behind a mutex; [`ShadowWorker::reports`] reads
//! them for the report of each cycle.
//!
//! Production groups are never touched: the replay runs in a private network namespace
//! (docs/shadow.md, "Production is never touched").

use std::collections::{hash_map::Entry, BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use skewscope_shadow::{Candidate, FlowSample, ReplayOptions, ShadowReport, Verdict};

use crate::config::ShadowConfig;
use crate::model::Window;
use crate::record::shadow_sample;
use crate::report::{ShadowGroupReport, ShadowPolicyReport};
use crate::snapshot::ListenerFacts;
use crate::sources::sock_diag::{self, Protocol};

/// Most groups replayed per hand-off (the heaviest by sampled packets): every group costs
/// one replay per policy.
pub const MAX_GROUPS_PER_HANDOFF: usize = 8;

/// Most flows the accumulator holds over all groups between two hand-offs (the rx probe's
/// flow map holds 65536 by default). Beyond it the lightest are pruned to 3/4 of it.
pub const MAX_ACCUMULATED_FLOWS: usize = 65_536;

/// A reuseport group's identity, as the report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId {
    pub netns: u64,
    pub protocol: Protocol,
    pub address: IpAddr,
    pub port: u16,
}

/// A flow of a group: (saddr, sport, daddr); protocol, namespace and dport are the group's.
type FlowKey = (IpAddr, u16, IpAddr);

#[derive(Debug, Default)]
struct GroupAcc {
    /// Listener count in the latest window.
    sockets: u32,
    /// Weight: the packets of every window so far; CPU and queue: the latest window's.
    flows: HashMap<FlowKey, FlowSample>,
}

/// What one replay gets: a group's flows and its replica size.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupBatch {
    pub group: GroupId,
    pub sockets: u32,
    /// Heaviest first.
    pub flows: Vec<FlowSample>,
}

/// The flows of every group since the last hand-off (pure: no I/O).
#[derive(Debug, Default)]
pub struct FlowAccumulator {
    groups: BTreeMap<GroupId, GroupAcc>,
    entries: usize,
}

impl FlowAccumulator {
    /// Merge one window's flows (packet counts over the window) into the groups they
    /// belong to: the group's namespace, protocol and port, and its address unless it is
    /// a wildcard bind (the model's rule for a group's flows). Groups gone from the window
    /// are forgotten; the others get the window's listener count.
    pub fn add_window(&mut self, facts: &ListenerFacts) {
        let groups = sock_diag::candidate_groups(&facts.sockets);
        let present: Vec<GroupId> = groups
            .iter()
            .map(|g| GroupId {
                netns: g.netns,
                protocol: g.protocol,
                address: g.local.ip(),
                port: g.local.port(),
            })
            .collect();
        self.groups.retain(|id, _| present.contains(id));
        let mut by_port: HashMap<(u64, u8, u16), Vec<GroupId>> = HashMap::new();
        for (id, g) in present.iter().zip(&groups) {
            self.groups.entry(*id).or_default().sockets = g.members.len() as u32;
            by_port
                .entry((id.netns, protocol_number(id.protocol), id.port))
                .or_default()
                .push(*id);
        }
        for f in facts.flows.iter().flatten().filter(|f| f.packets > 0) {
            let Some(ids) = by_port.get(&(f.netns, f.protocol, f.dport)) else {
                continue;
            };
            // Always Some: groups are TCP or UDP, and `by_port` matched the protocol.
            let Some(sample) = shadow_sample(f) else {
                continue;
            };
            for id in ids {
                if !(id.address.is_unspecified() || id.address == f.daddr) {
                    continue;
                }
                let Some(acc) = self.groups.get_mut(id) else {
                    continue;
                };
                match acc.flows.entry((f.saddr, f.sport, f.daddr)) {
                    Entry::Occupied(held) => {
                        let held = held.into_mut();
                        held.weight = held.weight.saturating_add(sample.weight);
                        held.rx_cpu = sample.rx_cpu;
                        held.rx_queue = sample.rx_queue;
                    }
                    Entry::Vacant(new) => {
                        new.insert(sample.clone());
                    }
                }
            }
        }
        self.entries = self.groups.values().map(|g| g.flows.len()).sum();
        if self.entries > MAX_ACCUMULATED_FLOWS {
            self.prune(MAX_ACCUMULATED_FLOWS * 3 / 4);
        }
    }

    /// Keep the `keep` heaviest flows over all groups.
    fn prune(&mut self, keep: usize) {
        let mut weights: Vec<u64> = self
            .groups
            .values()
            .flat_map(|g| g.flows.values().map(|f| f.weight))
            .collect();
        if weights.len() <= keep || keep == 0 {
            return;
        }
        let (_, threshold, _) = weights.select_nth_unstable_by(keep - 1, |a, b| b.cmp(a));
        let threshold = *threshold;
        let above = weights.iter().filter(|&&w| w > threshold).count();
        let mut ties = keep - above;
        for g in self.groups.values_mut() {
            g.flows.retain(|_, f| {
                if f.weight > threshold {
                    true
                } else if f.weight == threshold && ties > 0 {
                    ties -= 1;
                    true
                } else {
                    false
                }
            });
        }
        self.entries = self.groups.values().map(|g| g.flows.len()).sum();
    }

    /// Flows held over all groups.
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The batches of a hand-off, and an empty accumulator: per group with flows, its
    /// `max_flows` heaviest flows (ties by source port, for determinism); the
    /// [`MAX_GROUPS_PER_HANDOFF`] heaviest groups, in group order.
    pub fn take_batches(&mut self, max_flows: usize) -> Vec<GroupBatch> {
        let mut batches: Vec<(u64, GroupBatch)> = Vec::new();
        for (id, acc) in &mut self.groups {
            if acc.flows.is_empty() || acc.sockets == 0 {
                continue;
            }
            let mut flows: Vec<FlowSample> = acc.flows.drain().map(|(_, f)| f).collect();
            flows.sort_by(|a, b| {
                b.weight
                    .cmp(&a.weight)
                    .then(a.sport.cmp(&b.sport))
                    .then(a.saddr.cmp(&b.saddr))
            });
            flows.truncate(max_flows);
            let total = flows.iter().map(|f| f.weight).sum::<u64>();
            batches.push((
                total,
                GroupBatch {
                    group: *id,
                    sockets: acc.sockets.clamp(1, skewscope_shadow::MAX_SOCKETS),
                    flows,
                },
            ));
        }
        for acc in self.groups.values_mut() {
            acc.flows.clear();
        }
        self.entries = 0;
        batches.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.group.cmp(&b.1.group)));
        batches.truncate(MAX_GROUPS_PER_HANDOFF);
        let mut batches: Vec<GroupBatch> = batches.into_iter().map(|(_, b)| b).collect();
        batches.sort_by_key(|b| b.group);
        batches
    }
}

fn protocol_number(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => libc::IPPROTO_TCP as u8,
        Protocol::Udp => libc::IPPROTO_UDP as u8,
    }
}

/// One group's latest replay, as the worker stores it.
#[derive(Debug, Clone)]
struct GroupResult {
    group: GroupId,
    finished: Instant,
    flows: usize,
    sockets: u32,
    outcome: Result<Vec<ShadowPolicyReport>, String>,
}

type Latest = Arc<Mutex<Vec<GroupResult>>>;

fn lock(latest: &Latest) -> MutexGuard<'_, Vec<GroupResult>> {
    // A panic while holding the lock leaves whole results behind: keep using them.
    latest.lock().unwrap_or_else(|p| p.into_inner())
}

/// The run loop's side of the live replay: the accumulator, the hand-off cadence and the
/// channel to the worker thread, which owns the replays.
pub struct ShadowWorker {
    interval: Duration,
    max_flows: usize,
    acc: FlowAccumulator,
    last_handoff: Instant,
    /// None once the worker thread is gone (it panicked): replays stop, the agent goes on.
    tx: Option<SyncSender<Vec<GroupBatch>>>,
    latest: Latest,
    skipped: u64,
}

impl ShadowWorker {
    /// Start the worker thread. The first hand-off comes one `interval` after `now`.
    pub fn start(cfg: &ShadowConfig, now: Instant) -> std::io::Result<Self> {
        // Rendezvous: a batch is taken only by an idle worker, never queued behind a
        // running replay, so no hand-off waits and no work piles up.
        let (tx, rx) = mpsc::sync_channel::<Vec<GroupBatch>>(0);
        let latest: Latest = Arc::default();
        let candidates = cfg.candidates.clone();
        let store = latest.clone();
        std::thread::Builder::new()
            .name("shadow-worker".into())
            .spawn(move || worker(rx, &candidates, &store))?;
        if let Err(why) = skewscope_shadow::replay_privileges() {
            log::warn!("shadow replay: {why}; every replay will fail and say so in the report");
        }
        Ok(Self {
            interval: cfg.interval,
            max_flows: cfg.max_flows,
            acc: FlowAccumulator::default(),
            last_handoff: now,
            tx: Some(tx),
            latest,
            skipped: 0,
        })
    }

    /// Take one window's flows; hand the accumulated ones to the worker when `interval`
    /// has passed since the last hand-off. Never blocks.
    pub fn observe(&mut self, window: &Window, now: Instant) {
        self.observe_listeners(window.listeners.as_ref(), now);
    }

    fn observe_listeners(&mut self, facts: Option<&ListenerFacts>, now: Instant) {
        if let Some(facts) = facts {
            self.acc.add_window(facts);
        }
        if now.duration_since(self.last_handoff) < self.interval {
            return;
        }
        self.last_handoff = now;
        let batches = self.acc.take_batches(self.max_flows);
        if batches.is_empty() {
            // Nothing to replay: the previous results stay (their age says how old).
            return;
        }
        let Some(tx) = &self.tx else {
            return;
        };
        match tx.try_send(batches) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.skipped += 1;
                log::debug!(
                    "shadow replay still running: hand-off skipped ({} so far)",
                    self.skipped
                );
            }
            Err(TrySendError::Disconnected(_)) => {
                log::error!("shadow replay worker stopped; no further replays");
                self.tx = None;
            }
        }
    }

    /// Hand-offs skipped because the worker was busy.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The latest replay of each group, aged to `now`, in group order.
    pub fn reports(&self, now: Instant) -> Vec<ShadowGroupReport> {
        lock(&self.latest)
            .iter()
            .map(|r| {
                let (error, policies) = match &r.outcome {
                    Ok(p) => (None, p.clone()),
                    Err(e) => (Some(e.clone()), Vec::new()),
                };
                ShadowGroupReport {
                    netns: r.group.netns,
                    protocol: match r.group.protocol {
                        Protocol::Tcp => "tcp",
                        Protocol::Udp => "udp",
                    },
                    address: r.group.address.to_string(),
                    port: r.group.port,
                    replayed_secs_ago: now.saturating_duration_since(r.finished).as_secs_f64(),
                    flows: r.flows,
                    sockets: r.sockets,
                    error,
                    policies,
                    skipped_handoffs: self.skipped,
                }
            })
            .collect()
    }
}

/// The worker thread: one batch of groups at a time, one replay per group; the results of
/// a batch replace the previous ones when the batch is done.
fn worker(rx: Receiver<Vec<GroupBatch>>, candidates: &[Candidate], latest: &Latest) {
    let mut last_errors: HashMap<GroupId, String> = HashMap::new();
    while let Ok(batches) = rx.recv() {
        let mut results = Vec::with_capacity(batches.len());
        for batch in batches {
            let opts = ReplayOptions {
                sockets: batch.sockets,
                ..ReplayOptions::default()
            };
            let started = Instant::now();
            let outcome = skewscope_shadow::replay(&batch.flows, candidates, &opts)
                .map(|report| policy_reports(&report))
                .map_err(|e| e.to_string());
            match &outcome {
                Ok(policies) => {
                    last_errors.remove(&batch.group);
                    log::debug!(
                        "shadow replay of {}/{:?}/{}:{} ({} flows, {} sockets) in {:?}: {}",
                        batch.group.netns,
                        batch.group.protocol,
                        batch.group.address,
                        batch.group.port,
                        batch.flows.len(),
                        batch.sockets,
                        started.elapsed(),
                        policies
                            .iter()
                            .map(|p| format!("{} LSI {:?}", p.policy, p.lsi))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                Err(e) => {
                    // Once per group and distinct error: the next replays would repeat it.
                    if last_errors.get(&batch.group) != Some(e) {
                        log::warn!(
                            "shadow replay of {}/{:?}/{}:{} failed: {e}",
                            batch.group.netns,
                            batch.group.protocol,
                            batch.group.address,
                            batch.group.port
                        );
                        last_errors.insert(batch.group, e.clone());
                    }
                }
            }
            results.push(GroupResult {
                group: batch.group,
                finished: Instant::now(),
                flows: batch.flows.len(),
                sockets: batch.sockets,
                outcome,
            });
        }
        *lock(latest) = results;
    }
}

/// The report's view of a replay: per policy the verdict and the indices.
pub fn policy_reports(report: &ShadowReport) -> Vec<ShadowPolicyReport> {
    report
        .policies
        .iter()
        .map(|p| ShadowPolicyReport {
            policy: p.policy.clone(),
            verifier: match p.verifier {
                Verdict::Accepted => "accepted",
                Verdict::Rejected => "rejected",
                Verdict::None => "none",
            },
            error: p.error.clone(),
            lsi: p.lsi,
            max_share: p.max_share,
            skew_reduction: p.skew_reduction,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use skewscope_shadow::Proto;
    use std::net::{Ipv4Addr, SocketAddr};

    use crate::sources::sock_diag::ListenSocket;

    const NS: u64 = 4026532000;

    fn socket(inode: u64, local: &str, protocol: Protocol) -> ListenSocket {
        ListenSocket {
            netns: NS,
            protocol,
            local: local.parse::<SocketAddr>().unwrap(),
            inode,
            uid: 0,
            cookie: inode,
            queue_depth: 0,
            backlog_limit: None,
            drops: None,
            rcvbuf: None,
            rmem_alloc: None,
        }
    }

    fn flow(sport: u16, daddr: [u8; 4], dport: u16, packets: u64) -> skewscope_probes::FlowSample {
        skewscope_probes::FlowSample {
            netns: NS,
            family: libc::AF_INET as u16,
            protocol: libc::IPPROTO_UDP as u8,
            saddr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            sport,
            daddr: IpAddr::V4(Ipv4Addr::from(daddr)),
            dport,
            packets,
            bytes: packets * 100,
            rx_cpu: (sport % 2) as u32,
            rx_queue: None,
            ifindex: 1,
            rx_hash: None,
        }
    }

    fn facts(flows: Vec<skewscope_probes::FlowSample>) -> ListenerFacts {
        ListenerFacts {
            sockets: vec![
                socket(1, "10.0.0.1:53", Protocol::Udp),
                socket(2, "10.0.0.1:53", Protocol::Udp),
                socket(3, "10.0.0.1:53", Protocol::Udp),
                socket(4, "0.0.0.0:8000", Protocol::Udp),
                socket(5, "0.0.0.0:8000", Protocol::Udp),
                // A single socket is no group.
                socket(6, "10.0.0.1:9999", Protocol::Udp),
            ],
            flows: Some(flows),
            ..ListenerFacts::default()
        }
    }

    #[test]
    fn windows_merge_by_five_tuple_into_their_groups() {
        let mut acc = FlowAccumulator::default();
        acc.add_window(&facts(vec![
            flow(4000, [10, 0, 0, 1], 53, 10),
            flow(4001, [10, 0, 0, 1], 53, 3),
            flow(4000, [10, 0, 0, 9], 53, 50), // another address: not the group's
            flow(5000, [10, 0, 0, 7], 8000, 4), // wildcard group: any address
            flow(6000, [10, 0, 0, 1], 9999, 8), // no group
            flow(4002, [10, 0, 0, 1], 53, 0),  // nothing in the window
        ]));
        acc.add_window(&facts(vec![
            flow(4000, [10, 0, 0, 1], 53, 5),
            flow(4003, [10, 0, 0, 1], 53, 1),
        ]));
        assert_eq!(acc.len(), 4);
        let batches = acc.take_batches(10);
        assert!(acc.is_empty());
        assert_eq!(batches.len(), 2);
        // In group order: the wildcard (0.0.0.0) sorts first.
        let (wild, dns) = (&batches[0], &batches[1]);
        assert_eq!(dns.group.port, 53);
        assert_eq!(dns.sockets, 3);
        let got: Vec<(u16, u64)> = dns.flows.iter().map(|f| (f.sport, f.weight)).collect();
        assert_eq!(got, [(4000, 15), (4001, 3), (4003, 1)]);
        assert!(dns
            .flows
            .iter()
            .all(|f| f.dport == 53 && f.proto == Proto::Udp));
        assert_eq!(dns.flows[0].rx_cpu, Some(0));
        assert_eq!(
            (wild.group.port, wild.sockets, wild.flows.len()),
            (8000, 2, 1)
        );
        // Nothing new: nothing to hand off.
        acc.add_window(&facts(Vec::new()));
        assert!(acc.take_batches(10).is_empty());
    }

    #[test]
    fn the_heaviest_flows_are_kept() {
        let mut acc = FlowAccumulator::default();
        acc.add_window(&facts(
            (0..100)
                .map(|i| flow(1000 + i, [10, 0, 0, 1], 53, i as u64 + 1))
                .collect(),
        ));
        let batches = acc.take_batches(5);
        let got: Vec<u64> = batches[0].flows.iter().map(|f| f.weight).collect();
        assert_eq!(got, [100, 99, 98, 97, 96]);
    }

    #[test]
    fn pruning_keeps_the_heaviest_and_the_bound() {
        let mut acc = FlowAccumulator::default();
        // Ties at the threshold: exactly `keep` remain.
        acc.add_window(&facts(
            (0..50)
                .map(|i| flow(1000 + i, [10, 0, 0, 1], 53, 1 + (i as u64 % 3)))
                .collect(),
        ));
        acc.prune(10);
        assert_eq!(acc.len(), 10);
        let batches = acc.take_batches(100);
        assert!(batches[0].flows.iter().all(|f| f.weight >= 2));
    }

    #[test]
    fn groups_that_vanish_are_forgotten() {
        let mut acc = FlowAccumulator::default();
        acc.add_window(&facts(vec![flow(4000, [10, 0, 0, 1], 53, 10)]));
        let gone = ListenerFacts {
            sockets: Vec::new(),
            flows: Some(Vec::new()),
            ..ListenerFacts::default()
        };
        acc.add_window(&gone);
        assert!(acc.take_batches(10).is_empty());
    }

    #[test]
    fn a_busy_worker_skips_the_hand_off_and_reports_stay() {
        let cfg = ShadowConfig {
            candidates: vec!["builtin:cpu".parse().unwrap()],
            interval: Duration::from_secs(1),
            max_flows: 10,
        };
        let t0 = Instant::now();
        // A worker whose thread never receives: every hand-off is skipped.
        let (tx, _rx) = mpsc::sync_channel::<Vec<GroupBatch>>(0);
        let mut w = ShadowWorker {
            interval: cfg.interval,
            max_flows: cfg.max_flows,
            acc: FlowAccumulator::default(),
            last_handoff: t0,
            tx: Some(tx),
            latest: Arc::default(),
            skipped: 0,
        };
        let window = facts(vec![flow(4000, [10, 0, 0, 1], 53, 10)]);
        w.observe_listeners(Some(&window), t0 + Duration::from_millis(500));
        assert_eq!(w.skipped(), 0, "not yet due");
        w.observe_listeners(Some(&window), t0 + Duration::from_millis(1500));
        assert_eq!(w.skipped(), 1);
        // Results are read, aged, without the worker.
        lock(&w.latest).push(GroupResult {
            group: GroupId {
                netns: NS,
                protocol: Protocol::Udp,
                address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                port: 53,
            },
            finished: t0,
            flows: 1,
            sockets: 3,
            outcome: Err("no privileges".into()),
        });
        let r = w.reports(t0 + Duration::from_secs(2));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].replayed_secs_ago, 2.0);
        assert_eq!(r[0].error.as_deref(), Some("no privileges"));
        assert_eq!(r[0].skipped_handoffs, 1);
        assert_eq!((r[0].protocol, r[0].address.as_str()), ("udp", "10.0.0.1"));
    }
}
