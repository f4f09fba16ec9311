//! Hotspot probability of a reuseport group (stage 2 of
//! shared/seeds/reuseport-hash-skew-playbook.txt): P_hot = σ(wᵀx) over normalized
//! LSI, HCR, LQD, BCI, DLG and top-flow concentration.
//!
//! The default weights are uncalibrated starting points, chosen so a balanced group sits
//! near 0.03 and a group with every index well past its ORANGE threshold near 0.9. Fit
//! them on labelled windows (docs/regimes.md) before reading P_hot as a probability.

use serde::{Deserialize, Serialize};

/// Normalized Shannon entropy of flow volumes, H / ln(n) in [0, 1] over the n flows given:
/// 1 when all carry the same volume, 0 when one carries everything (or n = 1).
/// None when there is no volume at all. Over a top-k list it describes the heaviest flows
/// only, which is where a hotspot lives.
pub fn top_flow_entropy(volumes: &[u64]) -> Option<f64> {
    let total: u64 = volumes.iter().sum();
    if total == 0 {
        return None;
    }
    if volumes.len() < 2 {
        return Some(0.0);
    }
    let total = total as f64;
    let h: f64 = volumes
        .iter()
        .filter(|&&v| v > 0)
        .map(|&v| {
            let p = v as f64 / total;
            -p * p.ln()
        })
        .sum();
    Some((h / (volumes.len() as f64).ln()).clamp(0.0, 1.0))
}

/// Raw features of one group for one cycle; None where the index is unavailable.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HotspotFeatures {
    pub lsi: Option<f64>,
    pub hcr_1: Option<f64>,
    /// LQD of a TCP group: accept-queue entries.
    pub lqd_entries: Option<f64>,
    /// LQD of a UDP group: receive-queue bytes.
    pub lqd_bytes: Option<f64>,
    pub bci: Option<f64>,
    /// DLG as a fraction of the target: p95 / target − 1 (0 at target, > 0 over budget).
    pub dlg_over_target: Option<f64>,
    /// [`top_flow_entropy`] of the group's top flows.
    pub top_flow_entropy: Option<f64>,
}

/// Logistic weights. Every feature is normalized so that larger means hotter, so
/// positive weights are the sane sign for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HotspotWeights {
    pub bias: f64,
    pub lsi: f64,
    pub hcr: f64,
    pub lqd: f64,
    pub bci: f64,
    pub dlg: f64,
    /// Weight of flow concentration, 1 − top-flow entropy.
    pub flow_concentration: f64,
}

impl Default for HotspotWeights {
    /// Uncalibrated: queue debt and the latency gap weigh most (they are the symptoms),
    /// skew and bursts next (the mechanism), concentration least (a cause that is often
    /// harmless on its own).
    fn default() -> Self {
        Self {
            bias: -4.0,
            lsi: 2.0,
            hcr: 1.0,
            lqd: 2.0,
            bci: 1.5,
            dlg: 2.5,
            flow_concentration: 1.0,
        }
    }
}

/// Half-saturation scales: a feature x ≥ 0 maps to x / (x + scale), so it is 0.5 at its
/// scale and approaches 1 far above it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HotspotScales {
    pub lsi: f64,
    pub lqd_entries: f64,
    pub lqd_bytes: f64,
    /// Applied to BCI − 1 (a perfectly smooth listener has BCI = 1).
    pub bci_excess: f64,
    /// Applied to the positive part of DLG / target.
    pub dlg_over_target: f64,
}

impl Default for HotspotScales {
    /// Each scale sits at the ORANGE entry threshold of its index (docs/regimes.md), or for
    /// DLG at 50 % over budget.
    fn default() -> Self {
        Self {
            lsi: 0.5,
            lqd_entries: 32.0,
            lqd_bytes: 65536.0,
            bci_excess: 2.0,
            dlg_over_target: 0.5,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HotspotConfig {
    pub weights: HotspotWeights,
    pub scales: HotspotScales,
}

/// The features mapped to [0, 1], larger = hotter; None where the input is missing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct NormalizedFeatures {
    pub lsi: Option<f64>,
    pub hcr: Option<f64>,
    pub lqd: Option<f64>,
    pub bci: Option<f64>,
    pub dlg: Option<f64>,
    pub flow_concentration: Option<f64>,
}

fn saturate(x: Option<f64>, scale: f64) -> Option<f64> {
    let x = x.filter(|v| v.is_finite())?.max(0.0);
    if scale <= 0.0 || !scale.is_finite() {
        return Some(if x > 0.0 { 1.0 } else { 0.0 });
    }
    Some(x / (x + scale))
}

fn unit(x: Option<f64>) -> Option<f64> {
    x.filter(|v| v.is_finite()).map(|v| v.clamp(0.0, 1.0))
}

/// Normalization of each feature:
/// - lsi: LSI / (LSI + s_lsi);
/// - hcr: HCR_1 clamped to [0, 1];
/// - lqd: LQD / (LQD + s), s = s_lqd_entries (TCP) or s_lqd_bytes (UDP); negative LQD
///   (cannot happen: max ≥ median) counts as 0. When both are given, the larger counts;
/// - bci: (BCI − 1)⁺ / ((BCI − 1)⁺ + s_bci);
/// - dlg: (DLG/target)⁺ / ((DLG/target)⁺ + s_dlg): under budget is 0, only overage counts;
/// - flow_concentration: 1 − top-flow entropy.
pub fn normalize(f: &HotspotFeatures, s: &HotspotScales) -> NormalizedFeatures {
    let lqd = match (
        saturate(f.lqd_entries, s.lqd_entries),
        saturate(f.lqd_bytes, s.lqd_bytes),
    ) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    NormalizedFeatures {
        lsi: saturate(f.lsi, s.lsi),
        hcr: unit(f.hcr_1),
        lqd,
        bci: saturate(f.bci.map(|b| b - 1.0), s.bci_excess),
        dlg: saturate(f.dlg_over_target, s.dlg_over_target),
        flow_concentration: unit(f.top_flow_entropy).map(|h| 1.0 - h),
    }
}

pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// P_hot = σ(bias + Σ w_i·x_i) over the normalized features. A missing feature contributes
/// nothing (as if it were 0, "no evidence of heat"), so a missing index never raises
/// P_hot. None when every feature is missing: σ(bias) alone would be a made-up number.
pub fn p_hot(f: &HotspotFeatures, cfg: &HotspotConfig) -> Option<f64> {
    let n = normalize(f, &cfg.scales);
    let w = &cfg.weights;
    let terms = [
        (n.lsi, w.lsi),
        (n.hcr, w.hcr),
        (n.lqd, w.lqd),
        (n.bci, w.bci),
        (n.dlg, w.dlg),
        (n.flow_concentration, w.flow_concentration),
    ];
    if terms.iter().all(|(x, _)| x.is_none()) {
        return None;
    }
    let z = w.bias
        + terms
            .iter()
            .filter_map(|(x, w)| x.map(|x| x * w))
            .sum::<f64>();
    Some(sigmoid(z))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn entropy_edges() {
        assert_eq!(top_flow_entropy(&[]), None);
        assert_eq!(top_flow_entropy(&[0, 0]), None);
        assert_eq!(top_flow_entropy(&[42]), Some(0.0));
        assert!(close(top_flow_entropy(&[5, 5, 5, 5]).unwrap(), 1.0));
        assert!(close(top_flow_entropy(&[9, 0, 0]).unwrap(), 0.0));
        // Two flows at 3:1: H = −(¾ ln ¾ + ¼ ln ¼) / ln 2 ≈ 0.811.
        let h = top_flow_entropy(&[3, 1]).unwrap();
        assert!((h - 0.811_278_124_459).abs() < 1e-9, "{h}");
    }

    #[test]
    fn balanced_and_hot_groups() {
        let cfg = HotspotConfig::default();
        let balanced = HotspotFeatures {
            lsi: Some(0.05),
            hcr_1: Some(0.1),
            lqd_entries: Some(0.0),
            bci: Some(1.2),
            dlg_over_target: Some(-0.5),
            top_flow_entropy: Some(0.95),
            ..Default::default()
        };
        let hot = HotspotFeatures {
            lsi: Some(1.0),
            hcr_1: Some(0.6),
            lqd_entries: Some(200.0),
            bci: Some(6.0),
            dlg_over_target: Some(1.0),
            top_flow_entropy: Some(0.4),
            ..Default::default()
        };
        let pb = p_hot(&balanced, &cfg).unwrap();
        let ph = p_hot(&hot, &cfg).unwrap();
        assert!(pb < 0.05, "{pb}");
        assert!(ph > 0.85, "{ph}");
        assert_eq!(p_hot(&HotspotFeatures::default(), &cfg), None);
    }

    #[test]
    fn normalization_points() {
        let s = HotspotScales::default();
        let n = normalize(
            &HotspotFeatures {
                lsi: Some(0.5),
                hcr_1: Some(1.5),
                lqd_bytes: Some(65536.0),
                bci: Some(0.5),
                dlg_over_target: Some(-0.2),
                top_flow_entropy: Some(0.25),
                ..Default::default()
            },
            &s,
        );
        assert_eq!(n.lsi, Some(0.5));
        assert_eq!(n.hcr, Some(1.0));
        assert_eq!(n.lqd, Some(0.5));
        assert_eq!(n.bci, Some(0.0));
        assert_eq!(n.dlg, Some(0.0));
        assert_eq!(n.flow_concentration, Some(0.75));
        assert_eq!(
            normalize(
                &HotspotFeatures {
                    lsi: Some(f64::NAN),
                    ..Default::default()
                },
                &s
            )
            .lsi,
            None
        );
    }

    #[test]
    fn weights_deserialize_with_defaults() {
        let cfg: HotspotConfig = serde_json::from_str(r#"{"weights":{"bias":-3.0}}"#).unwrap();
        assert_eq!(cfg.weights.bias, -3.0);
        assert_eq!(cfg.weights.lsi, HotspotWeights::default().lsi);
        assert!(serde_json::from_str::<HotspotConfig>(r#"{"weights":{"lsj":1}}"#).is_err());
    }

    fn opt(x: f64, present: bool) -> Option<f64> {
        present.then_some(x)
    }

    proptest! {
        #[test]
        fn entropy_in_unit_interval(v in proptest::collection::vec(0u64..1_000_000, 0..64)) {
            if let Some(h) = top_flow_entropy(&v) {
                prop_assert!((0.0..=1.0).contains(&h));
            } else {
                prop_assert!(v.iter().all(|&x| x == 0));
            }
        }

        /// Raising any one index never lowers P_hot under the default (positive) weights,
        /// and filling in a missing index never lowers it either.
        #[test]
        fn p_hot_monotone(
            base in proptest::array::uniform7(0.0f64..10.0),
            present in proptest::array::uniform7(any::<bool>()),
            which in 0usize..7,
            bump in 0.0f64..10.0,
        ) {
            let cfg = HotspotConfig::default();
            let make = |b: &[f64; 7], p: &[bool; 7]| HotspotFeatures {
                lsi: opt(b[0], p[0]),
                hcr_1: opt(b[1] / 10.0, p[1]),
                lqd_entries: opt(b[2] * 10.0, p[2]),
                lqd_bytes: opt(b[3] * 10_000.0, p[3]),
                bci: opt(b[4], p[4]),
                dlg_over_target: opt(b[5] - 2.0, p[5]),
                // Entropy is the one feature that lowers heat as it grows.
                top_flow_entropy: opt(1.0 - b[6] / 10.0, p[6]),
            };
            let before = p_hot(&make(&base, &present), &cfg);
            let mut raised = base;
            raised[which] += bump;
            if which == 1 { raised[1] = raised[1].min(10.0); }
            if which == 6 { raised[6] = raised[6].min(10.0); }
            let after = p_hot(&make(&raised, &present), &cfg);
            if let (Some(b), Some(a)) = (before, after) {
                prop_assert!(a >= b - 1e-12, "{which}: {b} -> {a}");
                prop_assert!((0.0..=1.0).contains(&a));
            }
            let mut more = present;
            more[which] = true;
            let filled = p_hot(&make(&base, &more), &cfg).unwrap();
            if let Some(b) = before {
                prop_assert!(filled >= b - 1e-12);
            }
        }
    }
}
