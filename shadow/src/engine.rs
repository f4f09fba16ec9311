//! The replay engine: plans the samples into replay units, runs every
//! policy through a fresh replica group inside a private network namespace
//! on a thread of its own, and turns the landings into a [`ShadowReport`].
//!
//! Flow weights: each distinct flow (4-tuple and send CPU) is replayed
//! exactly once and its whole weight is attributed to the socket it landed
//! on. That is what a connection does under every policy (TCP selects a
//! listener once per connection) and what a UDP flow does under any policy
//! that is a function of the packet and the CPU (default hash, cpu,
//! weighted, isolate-heavy, sport-based). For per-packet random or stateful
//! policies on UDP it is one draw per flow, not one per packet: the result is
//! one sample of the flow-to-socket assignment, with a per-flow granularity
//! that overstates the skew such a policy would show per packet.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::candidate::Candidate;
use crate::error::ShadowError;
use crate::locality;
use crate::netns;
use crate::plan::{Landing, ReplayOptions, Unit, MAX_HEAVY_FLOWS, MAX_SOCKETS};
use crate::policy::{self, FlowKey, PolicyContext};
use crate::rejections;
use crate::replica::{self, FamilyMode};
use crate::report::{fill_skew_reduction, CpuPinning, PolicyResult, ShadowReport, Verdict, SCHEMA};
use crate::sys;
use crate::tcp;
use crate::trace::{FlowSample, Proto};
use crate::udp::{self, UdpSender};

/// Everything the replay thread needs, computed up front (pure).
#[derive(Debug)]
pub(crate) struct Plan {
    pub proto: Proto,
    pub dport: u16,
    pub family: FamilyMode,
    pub units: Vec<Unit>,
    pub pinning: CpuPinning,
    pub heavy: Vec<(FlowKey, u32)>,
    pub heavy_socks: u32,
    pub total_weight: u64,
    pub hcr_top1: f64,
    pub hcr_top5: f64,
}

impl Plan {
    pub fn new(
        flows: &[FlowSample],
        opts: &ReplayOptions,
        cpus: &[usize],
    ) -> Result<Self, ShadowError> {
        let first = flows
            .first()
            .ok_or_else(|| ShadowError::Samples("no flow samples".to_owned()))?;
        if let Some(other) = flows.iter().find(|f| f.group() != first.group()) {
            return Err(ShadowError::Samples(format!(
                "samples of more than one reuseport group ({} and {}); replay each group on its own (split_by_group)",
                first.group(),
                other.group()
            )));
        }
        if cpus.is_empty() {
            return Err(ShadowError::Samples(
                "no CPU available to send from".to_owned(),
            ));
        }
        let any_v4 = flows.iter().any(|f| f.daddr.is_ipv4());
        let any_v6 = flows.iter().any(|f| !f.daddr.is_ipv4());
        let family = match (any_v4, any_v6) {
            (true, false) => FamilyMode::V4,
            (false, true) => FamilyMode::V6Only,
            _ => FamilyMode::DualStack,
        };

        let mut pinning = CpuPinning::default();
        let mut units: Vec<Unit> = Vec::new();
        let mut unit_of: HashMap<(SocketAddr, SocketAddr, usize), usize> = HashMap::new();
        let mut flow_weight: HashMap<(SocketAddr, SocketAddr), (u64, usize)> = HashMap::new();
        let mut total_weight = 0u64;
        for (order, f) in flows.iter().enumerate() {
            let saddr = SocketAddr::new(f.saddr, f.sport);
            let daddr = SocketAddr::new(f.daddr, f.dport);
            let cpu = match f.rx_cpu {
                Some(c) if cpus.contains(&(c as usize)) => {
                    pinning.exact += 1;
                    c as usize
                }
                Some(c) => {
                    pinning.folded += 1;
                    cpus[c as usize % cpus.len()]
                }
                None => {
                    pinning.unknown += 1;
                    cpus[(tuple_hash(saddr, daddr) % cpus.len() as u64) as usize]
                }
            };
            total_weight = total_weight.saturating_add(f.weight);
            let entry = flow_weight.entry((saddr, daddr)).or_insert((0, order));
            entry.0 = entry.0.saturating_add(f.weight);
            match unit_of.get(&(saddr, daddr, cpu)) {
                Some(&i) => {
                    units[i].weight = units[i].weight.saturating_add(f.weight);
                    units[i].samples += 1;
                }
                None => {
                    unit_of.insert((saddr, daddr, cpu), units.len());
                    units.push(Unit {
                        saddr,
                        daddr,
                        cpu,
                        weight: f.weight,
                        samples: 1,
                    });
                }
            }
        }
        // Batches need runs of one CPU and one family; keep trace order within.
        units.sort_by_key(|u| (u.cpu, !u.daddr.is_ipv4()));

        // Heaviest flows by 4-tuple, ties in trace order.
        let mut ranked: Vec<((SocketAddr, SocketAddr), (u64, usize))> =
            flow_weight.into_iter().collect();
        ranked.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.1 .1.cmp(&b.1 .1)));
        let share = |k: usize| {
            if total_weight == 0 {
                0.0
            } else {
                ranked.iter().take(k).map(|r| r.1 .0 as f64).sum::<f64>() / total_weight as f64
            }
        };
        let (hcr_top1, hcr_top5) = (share(1), share(5));
        let heavy_count = opts.heavy_flows.min(MAX_HEAVY_FLOWS).min(ranked.len());
        let heavy_socks = (heavy_count as u32).min(opts.sockets.saturating_sub(1));
        let heavy = if heavy_socks == 0 {
            Vec::new()
        } else {
            ranked
                .iter()
                .take(heavy_count)
                .enumerate()
                .map(|(j, ((s, d), _))| {
                    (
                        FlowKey::new(s.ip(), s.port(), d.ip(), d.port()),
                        j as u32 % heavy_socks,
                    )
                })
                .collect()
        };

        Ok(Self {
            proto: first.proto,
            dport: first.dport,
            family,
            units,
            pinning,
            heavy,
            heavy_socks,
            total_weight,
            hcr_top1,
            hcr_top5,
        })
    }

    fn needs_v4(&self) -> bool {
        self.family != FamilyMode::V6Only
    }

    fn needs_v6(&self) -> bool {
        self.family != FamilyMode::V4
    }
}

/// FNV-1a over the 4-tuple: a stable stand-in for RSS when a sample has no
/// RX CPU.
fn tuple_hash(saddr: SocketAddr, daddr: SocketAddr) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for addr in [saddr, daddr] {
        match addr.ip() {
            IpAddr::V4(v4) => feed(&v4.octets()),
            IpAddr::V6(v6) => feed(&v6.octets()),
        }
        feed(&addr.port().to_be_bytes());
    }
    h
}

fn validate(opts: &ReplayOptions) -> Result<(), ShadowError> {
    if opts.sockets == 0 || opts.sockets > MAX_SOCKETS {
        return Err(ShadowError::Options(format!(
            "sockets must be 1..={MAX_SOCKETS}, got {}",
            opts.sockets
        )));
    }
    if let Some(weights) = &opts.weights {
        if weights.len() != opts.sockets as usize {
            return Err(ShadowError::Options(format!(
                "{} weights for {} sockets: give one weight per socket",
                weights.len(),
                opts.sockets
            )));
        }
        if weights.iter().all(|&w| w == 0) {
            return Err(ShadowError::Options("weights are all zero".to_owned()));
        }
    }
    if opts.batch_size == 0 || opts.batch_size > 4096 {
        return Err(ShadowError::Options(format!(
            "batch_size must be 1..=4096, got {}",
            opts.batch_size
        )));
    }
    Ok(())
}

/// Outcome of one policy inside the replay thread.
enum Outcome {
    Rejected(String),
    Replayed {
        verdict: Verdict,
        landing: Landing,
        program_id: Option<u32>,
        notes: Vec<String>,
        duration: Duration,
    },
}

/// Replays `flows` (one reuseport group) through a replica of
/// `opts.sockets` sockets under the kernel default and every candidate.
/// The default always comes first (listed again, it is not repeated); a
/// candidate that fails to load is reported as rejected. Needs
/// CAP_SYS_ADMIN (network namespace), CAP_NET_ADMIN and CAP_BPF.
pub fn replay(
    flows: &[FlowSample],
    candidates: &[Candidate],
    opts: &ReplayOptions,
) -> Result<ShadowReport, ShadowError> {
    validate(opts)?;
    let cpus = sys::thread_affinity().map_err(|e| ShadowError::socket("sched_getaffinity", e))?;
    let plan = Plan::new(flows, opts, &cpus)?;

    let mut policies: Vec<Candidate> = vec![Candidate::Builtin(crate::Builtin::Default)];
    for candidate in candidates {
        if !policies.contains(candidate) {
            policies.push(candidate.clone());
        }
    }

    // A thread of our own: it alone enters the private namespace and gets
    // pinned to CPUs; the caller's thread is never changed.
    let (outcomes, notes) = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("shadow-replay".to_owned())
            .spawn_scoped(scope, || run_policies(&plan, &policies, opts))
            .map_err(|e| ShadowError::socket("spawning the replay thread", e))?
            .join()
            .map_err(|_| ShadowError::Replay("replay thread panicked".to_owned()))?
    })?;

    let mut results = Vec::with_capacity(outcomes.len());
    for (candidate, outcome) in policies.iter().zip(outcomes) {
        results.push(match outcome {
            Outcome::Rejected(error) => PolicyResult::rejected(candidate.policy_name(), error),
            Outcome::Replayed {
                verdict,
                landing,
                program_id,
                mut notes,
                duration,
            } => {
                let n = opts.sockets as usize;
                let mut weights = vec![0u64; n];
                let mut counts = vec![0usize; n];
                let (mut dropped_flows, mut dropped_weight) = (0usize, 0u64);
                for (unit, socket) in plan.units.iter().zip(&landing.socket) {
                    match socket {
                        Some(s) if (*s as usize) < n => {
                            weights[*s as usize] = weights[*s as usize].saturating_add(unit.weight);
                            counts[*s as usize] += unit.samples;
                        }
                        _ => {
                            dropped_flows += unit.samples;
                            dropped_weight = dropped_weight.saturating_add(unit.weight);
                        }
                    }
                }
                if landing.lost > 0 {
                    notes.push(format!(
                        "{} flows neither reached a socket nor were dropped by the policy within {:?}; counted as dropped",
                        landing.lost, opts.drain_timeout
                    ));
                }
                notes.extend(landing.notes);
                let mut result = PolicyResult::replayed(candidate.policy_name(), verdict, &weights, &counts);
                result.dropped_flows = dropped_flows;
                result.dropped_weight = dropped_weight;
                result.notes = notes;
                result.program_id = program_id;
                result.replay_duration = duration;
                result
            }
        });
    }
    fill_skew_reduction(&mut results);

    Ok(ShadowReport {
        schema: SCHEMA.to_owned(),
        proto: plan.proto,
        dport: plan.dport,
        sockets: opts.sockets,
        flows: flows.len(),
        total_weight: plan.total_weight,
        hcr_top1: plan.hcr_top1,
        hcr_top5: plan.hcr_top5,
        cpu_pinning: plan.pinning,
        notes,
        policies: results,
    })
}

/// Body of the replay thread: the policies' outcomes and notes on the replay
/// as a whole.
fn run_policies(
    plan: &Plan,
    policies: &[Candidate],
    opts: &ReplayOptions,
) -> Result<(Vec<Outcome>, Vec<String>), ShadowError> {
    netns::enter_private_netns(plan.needs_v6())?;
    let sender = match plan.proto {
        Proto::Udp => Some(UdpSender::new(plan.needs_v4(), plan.needs_v6())?),
        Proto::Tcp => None,
    };
    let ctx = PolicyContext {
        sockets: opts.sockets,
        weights: opts.weights.as_deref(),
        heavy_flows: &plan.heavy,
        heavy_socks: plan.heavy_socks,
    };
    // Parsing the kernel's BTF takes a while: once for all candidates.
    let btf = aya::Btf::from_sys_fs().ok();
    let mut send_cpus: Vec<usize> = plan.units.iter().map(|u| u.cpu).collect();
    send_cpus.dedup();
    let locality = locality::check(&send_cpus)?;
    let mut outcomes = Vec::with_capacity(policies.len());
    for (seq, candidate) in policies.iter().enumerate() {
        let mut loaded = match policy::load(candidate, &ctx, btf.as_ref()) {
            Ok(loaded) => loaded,
            Err(err) => {
                rejections::log_rejection(candidate, &err);
                outcomes.push(Outcome::Rejected(err.to_string()));
                continue;
            }
        };
        let group = replica::create(plan.proto, plan.family, plan.dport, opts.sockets)?;
        let verdict = match loaded.as_mut() {
            None => Verdict::None,
            Some(program) => match program.attach(&group, &ctx) {
                Ok(()) => Verdict::Accepted,
                Err(err) => {
                    rejections::log_rejection(candidate, &err);
                    outcomes.push(Outcome::Rejected(err.to_string()));
                    continue;
                }
            },
        };
        let started = Instant::now();
        let tag = seq as u32 + 1;
        let landing = match (&sender, plan.proto) {
            (Some(sender), Proto::Udp) => udp::replay(sender, &group, &plan.units, tag, opts)?,
            _ => tcp::replay(&group, &plan.units, opts)?,
        };
        let duration = started.elapsed();
        // Closing the group releases the program's last reference from the
        // replica; dropping the object closes our fds to it.
        drop(group);
        let (program_id, notes) = match loaded {
            Some(program) => (program.program_id, program.notes.clone()),
            None => (None, Vec::new()),
        };
        outcomes.push(Outcome::Replayed {
            verdict,
            landing,
            program_id,
            notes,
            duration,
        });
    }
    Ok((outcomes, locality))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::parse_trace;

    fn trace(lines: &[&str]) -> Vec<FlowSample> {
        parse_trace(&lines.join("\n")).unwrap()
    }

    #[test]
    fn merges_flows_pins_cpus_and_ranks_heavy_flows() {
        let flows = trace(&[
            r#"{"proto":"udp","saddr":"10.0.0.1","sport":1000,"daddr":"10.0.0.9","dport":53,"weight":5,"rx_cpu":1}"#,
            r#"{"proto":"udp","saddr":"10.0.0.2","sport":1000,"daddr":"10.0.0.9","dport":53,"weight":50,"rx_cpu":0}"#,
            r#"{"proto":"udp","saddr":"10.0.0.1","sport":1000,"daddr":"10.0.0.9","dport":53,"weight":7,"rx_cpu":1}"#,
            r#"{"proto":"udp","saddr":"10.0.0.3","sport":1000,"daddr":"10.0.0.9","dport":53,"weight":1,"rx_cpu":9}"#,
            r#"{"proto":"udp","saddr":"10.0.0.4","sport":1000,"daddr":"10.0.0.9","dport":53,"weight":1}"#,
        ]);
        let opts = ReplayOptions {
            heavy_flows: 2,
            ..ReplayOptions::default()
        };
        let plan = Plan::new(&flows, &opts, &[0, 1]).unwrap();
        assert_eq!(plan.family, FamilyMode::V4);
        assert_eq!(plan.units.len(), 4);
        assert_eq!(plan.units.iter().map(|u| u.samples).sum::<usize>(), 5);
        let merged = plan
            .units
            .iter()
            .find(|u| u.saddr.ip().to_string() == "10.0.0.1")
            .unwrap();
        assert_eq!((merged.weight, merged.samples, merged.cpu), (12, 2, 1));
        let folded = plan
            .units
            .iter()
            .find(|u| u.saddr.ip().to_string() == "10.0.0.3")
            .unwrap();
        assert_eq!(folded.cpu, 1); // 9 % 2 CPUs
        assert_eq!(
            plan.pinning,
            CpuPinning {
                exact: 3,
                folded: 1,
                unknown: 1
            }
        );
        assert!(plan.units.windows(2).all(|w| w[0].cpu <= w[1].cpu));
        assert_eq!(plan.total_weight, 64);
        assert!((plan.hcr_top1 - 50.0 / 64.0).abs() < 1e-12);
        assert_eq!(plan.heavy_socks, 2);
        assert_eq!(
            plan.heavy[0].0,
            FlowKey::new(
                "10.0.0.2".parse().unwrap(),
                1000,
                "10.0.0.9".parse().unwrap(),
                53
            )
        );
        assert_eq!(plan.heavy[0].1, 0);
        assert_eq!(plan.heavy[1].1, 1);
    }

    #[test]
    fn refuses_mixed_groups_and_bad_options() {
        let flows = trace(&[
            r#"{"proto":"udp","saddr":"10.0.0.1","sport":1,"daddr":"10.0.0.9","dport":53}"#,
            r#"{"proto":"tcp","saddr":"10.0.0.1","sport":1,"daddr":"10.0.0.9","dport":53}"#,
        ]);
        let err = Plan::new(&flows, &ReplayOptions::default(), &[0])
            .unwrap_err()
            .to_string();
        assert!(err.contains("udp/53 and tcp/53"), "{err}");
        assert!(Plan::new(&[], &ReplayOptions::default(), &[0]).is_err());
        for bad in [
            ReplayOptions {
                sockets: 0,
                ..ReplayOptions::default()
            },
            ReplayOptions {
                sockets: 257,
                ..ReplayOptions::default()
            },
            ReplayOptions {
                weights: Some(vec![1, 2]),
                ..ReplayOptions::default()
            },
            ReplayOptions {
                weights: Some(vec![0; 4]),
                ..ReplayOptions::default()
            },
            ReplayOptions {
                batch_size: 0,
                ..ReplayOptions::default()
            },
        ] {
            assert!(validate(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mixed_families_use_a_dual_stack_replica() {
        let flows = trace(&[
            r#"{"proto":"tcp","saddr":"10.0.0.1","sport":1,"daddr":"10.0.0.9","dport":80}"#,
            r#"{"proto":"tcp","saddr":"2001:db8::1","sport":1,"daddr":"2001:db8::9","dport":80}"#,
        ]);
        let plan = Plan::new(&flows, &ReplayOptions::default(), &[0]).unwrap();
        assert_eq!(plan.family, FamilyMode::DualStack);
    }
}
