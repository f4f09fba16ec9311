//! Distributions of an index over the cycles of a recording.

use serde::{Deserialize, Serialize};

/// p50/p95/p99/max of a value over cycles; `n` values (non-finite ones left out).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Dist {
    pub n: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// Which point of a distribution a rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantile {
    P50,
    P95,
    P99,
    Max,
}

impl Quantile {
    pub fn label(self) -> &'static str {
        match self {
            Quantile::P50 => "p50",
            Quantile::P95 => "q95",
            Quantile::P99 => "q99",
            Quantile::Max => "max",
        }
    }
}

impl Dist {
    /// None when no finite value is there.
    pub fn of(values: &[f64]) -> Option<Dist> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Dist {
            n: v.len() as u64,
            p50: percentile_sorted(&v, 50.0),
            p95: percentile_sorted(&v, 95.0),
            p99: percentile_sorted(&v, 99.0),
            max: v[v.len() - 1],
        })
    }

    pub fn get(&self, q: Quantile) -> f64 {
        match q {
            Quantile::P50 => self.p50,
            Quantile::P95 => self.p95,
            Quantile::P99 => self.p99,
            Quantile::Max => self.max,
        }
    }

    /// Whether the points are finite and in order (what a file must hold).
    pub fn is_consistent(&self) -> bool {
        let p = [self.p50, self.p95, self.p99, self.max];
        self.n > 0 && p.iter().all(|x| x.is_finite()) && p.windows(2).all(|w| w[0] <= w[1])
    }
}

/// The `pct`-th percentile of sorted values, linear between the closest ranks (Hyndman &
/// Fan type 7, numpy's default): with few cycles q95 lies between the two largest values
/// instead of jumping to the maximum.
pub fn percentile_sorted(sorted: &[f64], pct: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let rank = pct.clamp(0.0, 100.0) / 100.0 * (n - 1) as f64;
            let lo = rank.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
        }
    }
}

/// Share of the values in each tenth of [0, 1] (the last one closed): how the time of a
/// recording spreads over P_hot deciles. Empty without values.
pub fn decile_shares(values: &[f64]) -> Vec<f64> {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return Vec::new();
    }
    let mut counts = [0u64; 10];
    for x in &v {
        let bin = ((x.clamp(0.0, 1.0) * 10.0).floor() as usize).min(9);
        counts[bin] += 1;
    }
    counts.iter().map(|&c| c as f64 / v.len() as f64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_between_ranks() {
        let v: Vec<f64> = (1..=5).map(f64::from).collect();
        assert_eq!(percentile_sorted(&v, 50.0), 3.0);
        // rank 0.95 × 4 = 3.8: 4 + 0.8 × (5 − 4)
        assert!((percentile_sorted(&v, 95.0) - 4.8).abs() < 1e-12);
        assert!((percentile_sorted(&v, 99.0) - 4.96).abs() < 1e-12);
        assert_eq!(percentile_sorted(&v, 0.0), 1.0);
        assert_eq!(percentile_sorted(&v, 100.0), 5.0);
        assert_eq!(percentile_sorted(&[7.0], 95.0), 7.0);
        assert!(percentile_sorted(&[], 95.0).is_nan());
    }

    #[test]
    fn dist_ignores_non_finite_values_and_orders_the_input() {
        let d = Dist::of(&[5.0, f64::NAN, 1.0, 3.0, f64::INFINITY, 2.0, 4.0]).unwrap();
        assert_eq!(d.n, 5);
        assert_eq!(d.p50, 3.0);
        assert_eq!(d.max, 5.0);
        assert!(d.is_consistent());
        assert_eq!(Dist::of(&[f64::NAN]), None);
        assert_eq!(Dist::of(&[]), None);
        let broken = Dist {
            n: 3,
            p50: 2.0,
            p95: 1.0,
            p99: 3.0,
            max: 4.0,
        };
        assert!(!broken.is_consistent());
    }

    #[test]
    fn decile_shares_bin_p_hot_and_close_the_last_bin() {
        let s = decile_shares(&[0.0, 0.05, 0.15, 0.95, 1.0]);
        assert_eq!(s.len(), 10);
        assert_eq!(s[0], 0.4);
        assert_eq!(s[1], 0.2);
        assert_eq!(s[9], 0.4);
        assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(decile_shares(&[]).is_empty());
    }
}
