//! What a replay produces: per policy, the weight each replica socket would
//! receive and the skew indices over it (pure).

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::trace::Proto;

/// JSON schema tag of [`ShadowReport`].
pub const SCHEMA: &str = "skewscope.shadow/v1";

/// ε of the LSI denominator (design brief, "Indices").
const LSI_EPSILON: f64 = 1e-9;

/// The result of one replay: one replica group, every policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowReport {
    /// Always [`SCHEMA`].
    pub schema: String,
    pub proto: Proto,
    /// Port of the replica group (the samples' dport).
    pub dport: u16,
    /// Replica group size.
    pub sockets: u32,
    /// Flow samples replayed (trace lines).
    pub flows: usize,
    /// Sum of the samples' weights.
    pub total_weight: u64,
    /// Share of the total weight carried by the heaviest flow, and by the
    /// five heaviest (HCR_1, HCR_5 of the trace; flows keyed by 4-tuple).
    pub hcr_top1: f64,
    pub hcr_top5: f64,
    /// How faithfully the samples' RX CPUs were reproduced.
    pub cpu_pinning: CpuPinning,
    /// Caveats that apply to the whole replay (e.g. the receive path did not
    /// run on the sending CPU, so CPU-dependent policies are not faithful).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// `default` first, then the candidates in the order given.
    pub policies: Vec<PolicyResult>,
}

/// RX-CPU reproduction: a sample is sent from its recorded RX CPU when this
/// host lets the replay run there (`exact`); a CPU this host does not have
/// is folded onto an available one (`folded`: CPU-dependent policies are
/// then not faithful for those flows); a sample without `rx_cpu` is sent
/// from a CPU chosen by a hash of its 4-tuple (`unknown`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuPinning {
    pub exact: usize,
    pub folded: usize,
    pub unknown: usize,
}

/// The verifier's answer for a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Loaded through the verifier and attached to the replica.
    Accepted,
    /// Not replayed: contract violation, verifier refusal, or load/attach
    /// failure (see `error`).
    Rejected,
    /// No program: the kernel default.
    None,
}

/// One policy's predicted distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyResult {
    /// `default`, `builtin:NAME` or the object's path.
    pub policy: String,
    pub verifier: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// One entry per replica socket (empty when rejected).
    pub sockets: Vec<SocketShare>,
    /// std / (mean + 1e-9) over the socket weights (population std).
    pub lsi: Option<f64>,
    /// Largest socket share of the delivered weight.
    pub max_share: Option<f64>,
    /// (LSI_default − LSI_policy) / LSI_default; None when the default is
    /// perfectly balanced (LSI 0) or this policy was rejected.
    pub skew_reduction: Option<f64>,
    /// Flows the policy dropped (SK_DROP: no socket received them) and their
    /// weight; not part of the shares.
    pub dropped_flows: usize,
    pub dropped_weight: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Kernel id the program had while loaded (not serialized: only
    /// meaningful during the replay).
    #[serde(skip)]
    pub program_id: Option<u32>,
    /// Wall time of this policy's replay (not serialized: it varies run to
    /// run; the bench reads it).
    #[serde(skip)]
    pub replay_duration: Duration,
}

/// A replica socket's predicted load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SocketShare {
    pub index: u32,
    /// Sum of the weights of the flows routed to this socket.
    pub weight: u64,
    /// weight / delivered weight of the policy (0 when nothing was delivered).
    pub share: f64,
    /// Number of flow samples routed to this socket.
    pub flows: usize,
}

/// LSI over socket weights.
pub fn lsi(weights: &[u64]) -> f64 {
    if weights.is_empty() {
        return 0.0;
    }
    let n = weights.len() as f64;
    let mean = weights.iter().map(|&w| w as f64).sum::<f64>() / n;
    let var = weights
        .iter()
        .map(|&w| (w as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    var.sqrt() / (mean + LSI_EPSILON)
}

impl PolicyResult {
    pub(crate) fn rejected(policy: String, error: String) -> Self {
        Self {
            policy,
            verifier: Verdict::Rejected,
            error: Some(error),
            sockets: Vec::new(),
            lsi: None,
            max_share: None,
            skew_reduction: None,
            dropped_flows: 0,
            dropped_weight: 0,
            notes: Vec::new(),
            program_id: None,
            replay_duration: Duration::ZERO,
        }
    }

    /// Builds the shares and indices from per-socket weights and flow counts.
    pub(crate) fn replayed(
        policy: String,
        verifier: Verdict,
        weights: &[u64],
        flows: &[usize],
    ) -> Self {
        let delivered: f64 = weights.iter().map(|&w| w as f64).sum();
        let sockets: Vec<SocketShare> = weights
            .iter()
            .zip(flows)
            .enumerate()
            .map(|(index, (&weight, &flows))| SocketShare {
                index: index as u32,
                weight,
                share: if delivered > 0.0 {
                    weight as f64 / delivered
                } else {
                    0.0
                },
                flows,
            })
            .collect();
        let max_share = sockets.iter().map(|s| s.share).fold(0.0, f64::max);
        Self {
            policy,
            verifier,
            error: None,
            lsi: Some(lsi(weights)),
            max_share: Some(max_share),
            sockets,
            skew_reduction: None,
            dropped_flows: 0,
            dropped_weight: 0,
            notes: Vec::new(),
            program_id: None,
            replay_duration: Duration::ZERO,
        }
    }
}

/// Fills `skew_reduction` of every replayed policy against the default
/// (the first policy).
pub(crate) fn fill_skew_reduction(policies: &mut [PolicyResult]) {
    let Some(default_lsi) = policies.first().and_then(|p| p.lsi) else {
        return;
    };
    for policy in policies.iter_mut() {
        policy.skew_reduction = match policy.lsi {
            Some(lsi) if default_lsi > LSI_EPSILON => Some((default_lsi - lsi) / default_lsi),
            _ => None,
        };
    }
}

impl ShadowReport {
    /// A fixed-width table for terminals.
    pub fn render_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "shadow replay: {} {} flows to port {} (total weight {}, top-1 flow {:.1}%, top-5 {:.1}%), {} replica sockets",
            self.flows,
            self.proto,
            self.dport,
            self.total_weight,
            100.0 * self.hcr_top1,
            100.0 * self.hcr_top5,
            self.sockets
        );
        let pin = self.cpu_pinning;
        if pin.folded > 0 || pin.unknown > 0 {
            let _ = writeln!(
                out,
                "rx cpu: {} exact, {} folded onto available CPUs, {} unknown (hashed)",
                pin.exact, pin.folded, pin.unknown
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        let name_width = self
            .policies
            .iter()
            .map(|p| p.policy.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let _ = writeln!(
            out,
            "{:<name_width$}  {:<8}  {:>7}  {:>9}  {:>9}  {:>7}  shares (%)",
            "policy", "verifier", "LSI", "max share", "reduction", "dropped"
        );
        for p in &self.policies {
            let verdict = match p.verifier {
                Verdict::Accepted => "accepted",
                Verdict::Rejected => "rejected",
                Verdict::None => "none",
            };
            if p.verifier == Verdict::Rejected {
                let _ = writeln!(out, "{:<name_width$}  {verdict:<8}", p.policy);
            } else {
                let fmt_opt = |v: Option<f64>, pct: bool| match v {
                    Some(v) if pct => format!("{:.1}%", 100.0 * v),
                    Some(v) => format!("{v:.3}"),
                    None => "-".to_owned(),
                };
                let shares: Vec<String> = p
                    .sockets
                    .iter()
                    .map(|s| format!("{:.1}", 100.0 * s.share))
                    .collect();
                let _ = writeln!(
                    out,
                    "{:<name_width$}  {verdict:<8}  {:>7}  {:>9}  {:>9}  {:>7}  {}",
                    p.policy,
                    fmt_opt(p.lsi, false),
                    fmt_opt(p.max_share, true),
                    fmt_opt(p.skew_reduction, true),
                    p.dropped_flows,
                    shares.join(" ")
                );
            }
            if let Some(error) = &p.error {
                for line in error.lines() {
                    let _ = writeln!(out, "    {line}");
                }
            }
            for note in &p.notes {
                let _ = writeln!(out, "    note: {note}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsi_of_balanced_and_skewed_groups() {
        assert_eq!(lsi(&[5, 5, 5, 5]), 0.0);
        // mean 2, population std sqrt(((4-2)^2 + 3*(0-2)^2... )/4)
        let v = lsi(&[8, 0, 0, 0]);
        assert!((v - (12f64.sqrt() / 2.0)).abs() < 1e-9, "{v}");
        assert_eq!(lsi(&[0, 0]), 0.0);
        assert_eq!(lsi(&[]), 0.0);
    }

    #[test]
    fn shares_indices_and_reduction() {
        let mut policies = vec![
            PolicyResult::replayed(
                "default".into(),
                Verdict::None,
                &[6, 2, 0, 0],
                &[3, 1, 0, 0],
            ),
            PolicyResult::replayed(
                "builtin:x".into(),
                Verdict::Accepted,
                &[2, 2, 2, 2],
                &[1, 1, 1, 1],
            ),
            PolicyResult::rejected("bad.o".into(), "contract violation".into()),
        ];
        fill_skew_reduction(&mut policies);
        assert_eq!(policies[0].max_share, Some(0.75));
        assert_eq!(policies[0].sockets[1].share, 0.25);
        assert_eq!(policies[0].skew_reduction, Some(0.0));
        assert_eq!(policies[1].skew_reduction, Some(1.0));
        assert_eq!(policies[2].skew_reduction, None);
    }

    #[test]
    fn balanced_default_has_no_reduction() {
        let mut policies = vec![
            PolicyResult::replayed("default".into(), Verdict::None, &[1, 1], &[1, 1]),
            PolicyResult::replayed("b".into(), Verdict::Accepted, &[2, 0], &[2, 0]),
        ];
        fill_skew_reduction(&mut policies);
        assert_eq!(policies[1].skew_reduction, None);
    }

    #[test]
    fn nothing_delivered_gives_zero_shares() {
        let p = PolicyResult::replayed("p".into(), Verdict::Accepted, &[0, 0], &[0, 0]);
        assert_eq!(p.max_share, Some(0.0));
        assert!(p.sockets.iter().all(|s| s.share == 0.0));
    }
}
