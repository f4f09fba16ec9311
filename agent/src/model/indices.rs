//! The skew indices, as pure functions over numbers. Formulas from the field notes
//! (shared/seeds: rss-queue-polarization-playbook.txt, reuseport-hash-skew-playbook.txt);
//! docs/metrics.md restates each with its edge cases.

/// Guards the LSI denominator (the seeds' ε): a group with no events has LSI 0, not NaN.
pub const EPSILON: f64 = 1e-9;

/// QPI = max_q λ_q / mean_q λ_q − 1 over per-queue packet rates (or counts).
///
/// 0 when all queues carry the same load; Q − 1 when one queue carries everything.
/// None with no queues or no traffic at all (the ratio is undefined, not zero).
pub fn qpi(loads: &[f64]) -> Option<f64> {
    let mean = mean(loads)?;
    if mean <= 0.0 {
        return None;
    }
    let max = loads.iter().cloned().fold(f64::MIN, f64::max);
    Some(max / mean - 1.0)
}

/// ISI = Σ s_q² (Herfindahl) over per-queue shares of the device's RX IRQs, and its
/// normalized form (ISI − 1/Q) / (1 − 1/Q) in [0, 1]. The normalized form is None for a
/// single queue (no concentration is possible) and both are None without any IRQs.
pub fn isi(irq_counts: &[u64]) -> Option<(f64, Option<f64>)> {
    let total: u64 = irq_counts.iter().sum();
    if total == 0 {
        return None;
    }
    let h: f64 = irq_counts
        .iter()
        .map(|&c| {
            let s = c as f64 / total as f64;
            s * s
        })
        .sum();
    let q = irq_counts.len() as f64;
    let normalized =
        (irq_counts.len() > 1).then(|| ((h - 1.0 / q) / (1.0 - 1.0 / q)).clamp(0.0, 1.0));
    Some((h, normalized))
}

/// Share of indirection-table entries pointing at each of `queues` queues. Entries that
/// name a queue ≥ `queues` widen the result so nothing is silently dropped.
pub fn table_shares(indirection: &[u32], queues: usize) -> Vec<f64> {
    let width = indirection
        .iter()
        .map(|&q| q as usize + 1)
        .max()
        .unwrap_or(0)
        .max(queues);
    let mut counts = vec![0u64; width];
    for &q in indirection {
        counts[q as usize] += 1;
    }
    let n = indirection.len().max(1) as f64;
    counts.iter().map(|&c| c as f64 / n).collect()
}

/// Inputs of the Softirq Pressure Index, each summed over CPUs for the window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SpiInputs<'a> {
    /// NET_RX softirq runs per CPU (/proc/softirqs).
    pub net_rx_per_cpu: &'a [u64],
    /// softnet_stat time_squeeze summed over CPUs.
    pub time_squeeze: u64,
    /// softnet_stat dropped summed over CPUs.
    pub dropped: u64,
    /// softnet_stat processed summed over CPUs.
    pub processed: u64,
}

/// Weights of the SPI terms; they sum to 1 so SPI stays in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpiWeights {
    pub skew: f64,
    pub squeeze: f64,
    pub drop: f64,
}

impl Default for SpiWeights {
    /// Uncalibrated starting points: skew is the leading signal, squeezes precede drops.
    fn default() -> Self {
        Self {
            skew: 0.5,
            squeeze: 0.3,
            drop: 0.2,
        }
    }
}

/// SPI = w_skew·skew + w_squeeze·squeeze + w_drop·drop, each term in [0, 1]:
/// - skew = (max_c n_c / mean_c n_c − 1) / (C − 1): NET_RX runs per CPU, 0 when even,
///   1 when one CPU runs them all (0 for a single CPU);
/// - squeeze = time_squeeze / NET_RX runs: net_rx_action() counts at most one squeeze
///   per run (net/core/dev.c), so this is the fraction of runs that ran out of budget;
/// - drop = dropped / (processed + dropped): backlog drops (enqueue_to_backlog).
///
/// None when no NET_RX softirq ran.
pub fn spi(inputs: SpiInputs<'_>, w: SpiWeights) -> Option<f64> {
    let runs: u64 = inputs.net_rx_per_cpu.iter().sum();
    if runs == 0 {
        return None;
    }
    let cpus = inputs.net_rx_per_cpu.len();
    let loads: Vec<f64> = inputs.net_rx_per_cpu.iter().map(|&n| n as f64).collect();
    let skew = if cpus > 1 {
        (qpi(&loads).unwrap_or(0.0) / (cpus as f64 - 1.0)).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let squeeze = (inputs.time_squeeze as f64 / runs as f64).clamp(0.0, 1.0);
    let seen = inputs.processed + inputs.dropped;
    let drop = if seen == 0 {
        0.0
    } else {
        inputs.dropped as f64 / seen as f64
    };
    Some(w.skew * skew + w.squeeze * squeeze + w.drop * drop)
}

/// LSI = std(r) / (mean(r) + ε), population standard deviation over per-listener rates.
pub fn lsi(rates: &[f64]) -> Option<f64> {
    let mean = mean(rates)?;
    let var = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / rates.len() as f64;
    Some(var.sqrt() / (mean + EPSILON))
}

/// HCR_k = share of the top-k flow keys in a group's traffic.
pub fn hcr(flow_volumes: &[u64], k: usize) -> Option<f64> {
    let total: u64 = flow_volumes.iter().sum();
    if total == 0 {
        return None;
    }
    let mut sorted = flow_volumes.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let top: u64 = sorted.iter().take(k).sum();
    Some(top as f64 / total as f64)
}

/// LQD = max_i q_i − median(q) over listener queue depths.
pub fn lqd(depths: &[u64]) -> Option<f64> {
    let values: Vec<f64> = depths.iter().map(|&d| d as f64).collect();
    let max = values.iter().cloned().fold(f64::MIN, f64::max);
    Some(max - percentile(&values, 50.0)?)
}

/// The p-th percentile (0..=100) by linear interpolation between closest ranks.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = (p / 100.0).clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    Some(v[lo] + (v[hi] - v[lo]) * (rank - lo as f64))
}

fn mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    Some(values.iter().sum::<f64>() / values.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn qpi_even_and_polarized() {
        assert_eq!(qpi(&[5.0, 5.0, 5.0, 5.0]), Some(0.0));
        assert!(close(qpi(&[8.0, 0.0, 0.0, 0.0]).unwrap(), 3.0));
        assert_eq!(qpi(&[0.0, 0.0]), None);
        assert_eq!(qpi(&[]), None);
    }

    #[test]
    fn isi_herfindahl() {
        let (h, n) = isi(&[10, 10, 10, 10]).unwrap();
        assert!(close(h, 0.25) && close(n.unwrap(), 0.0));
        let (h, n) = isi(&[40, 0, 0, 0]).unwrap();
        assert!(close(h, 1.0) && close(n.unwrap(), 1.0));
        let (h, n) = isi(&[7]).unwrap();
        assert!(close(h, 1.0) && n.is_none());
        assert_eq!(isi(&[0, 0]), None);
    }

    #[test]
    fn table_shares_count_entries() {
        // `ethtool -X equal 4` on 16 rings: 4 queues share 128 entries.
        let table: Vec<u32> = (0..128).map(|i| i % 4).collect();
        let shares = table_shares(&table, 16);
        assert_eq!(shares.len(), 16);
        assert!(close(shares[0], 0.25) && close(shares[15], 0.0));
        let loads: Vec<f64> = shares.clone();
        assert!(close(qpi(&loads).unwrap(), 3.0));
        // An entry beyond the ring count widens rather than panics.
        assert_eq!(table_shares(&[0, 5], 2).len(), 6);
    }

    #[test]
    fn spi_terms() {
        let w = SpiWeights::default();
        let even = SpiInputs {
            net_rx_per_cpu: &[100, 100],
            ..Default::default()
        };
        assert_eq!(spi(even, w), Some(0.0));
        let one_cpu_all_squeezed = SpiInputs {
            net_rx_per_cpu: &[100, 0],
            time_squeeze: 100,
            dropped: 10,
            processed: 10,
        };
        assert!(close(
            spi(one_cpu_all_squeezed, w).unwrap(),
            0.5 + 0.3 + 0.1
        ));
        assert_eq!(spi(SpiInputs::default(), w), None);
    }

    #[test]
    fn lsi_population_std() {
        // rates 1,1,1,5: mean 2, population std sqrt(3).
        assert!(close(
            lsi(&[1.0, 1.0, 1.0, 5.0]).unwrap(),
            3f64.sqrt() / (2.0 + EPSILON)
        ));
        assert_eq!(lsi(&[0.0, 0.0]), Some(0.0));
    }

    #[test]
    fn hcr_lqd_percentile() {
        assert!(close(hcr(&[1, 6, 3], 1).unwrap(), 0.6));
        assert!(close(hcr(&[1, 6, 3], 5).unwrap(), 1.0));
        assert!(close(lqd(&[0, 2, 10, 1]).unwrap(), 10.0 - 1.5));
        assert!(close(
            percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 95.0).unwrap(),
            4.8
        ));
    }

    proptest::proptest! {
        #[test]
        fn qpi_bounds(loads in proptest::collection::vec(0u32..1_000_000, 1..64)) {
            let f: Vec<f64> = loads.iter().map(|&x| x as f64).collect();
            if let Some(q) = qpi(&f) {
                proptest::prop_assert!(q >= -1e-9 && q <= f.len() as f64 - 1.0 + 1e-9);
            }
        }

        #[test]
        fn isi_bounds(counts in proptest::collection::vec(0u64..1_000_000, 1..64)) {
            if let Some((h, n)) = isi(&counts) {
                proptest::prop_assert!(h >= 1.0 / counts.len() as f64 - 1e-9 && h <= 1.0 + 1e-9);
                if let Some(n) = n { proptest::prop_assert!((0.0..=1.0).contains(&n)); }
            }
        }
    }
}
