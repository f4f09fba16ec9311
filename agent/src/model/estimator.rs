//! Per-listener ingress-state estimator (stage 1 of the reuseport playbook,
//! shared/seeds/reuseport-hash-skew-playbook.txt): smoothed arrival rate, queue depth,
//! service rate and staleness, updated once per cycle.
//!
//! Time is passed in (`dt_secs`), never read. Smoothing is dt-aware, so a 50 ms and a 1 s
//! cycle track the same signal with the same time constant.

use serde::{Deserialize, Serialize};

/// EMA weight of a new sample after `dt_secs` for a time constant `tau_secs`:
/// 1 − exp(−dt/τ). Ten 100 ms steps weigh the same as one 1 s step.
/// 1 when τ ≤ 0 (no smoothing); 0 when dt ≤ 0 or either is not finite.
pub fn ema_alpha(dt_secs: f64, tau_secs: f64) -> f64 {
    if !dt_secs.is_finite() || dt_secs <= 0.0 || tau_secs.is_nan() {
        return 0.0;
    }
    if tau_secs <= 0.0 {
        return 1.0;
    }
    1.0 - (-dt_secs / tau_secs).exp()
}

/// Exponential moving average with a time constant. The first sample initializes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ema {
    pub tau_secs: f64,
    value: Option<f64>,
}

impl Ema {
    pub fn new(tau_secs: f64) -> Self {
        Self {
            tau_secs,
            value: None,
        }
    }

    /// Folds in `z` observed over the last `dt_secs`. A non-finite `z` is ignored.
    pub fn update(&mut self, dt_secs: f64, z: f64) -> Option<f64> {
        if !z.is_finite() {
            return self.value;
        }
        self.value = Some(match self.value {
            None => z,
            Some(x) => x + ema_alpha(dt_secs, self.tau_secs) * (z - x),
        });
        self.value
    }

    pub fn value(&self) -> Option<f64> {
        self.value
    }
}

/// Scalar Kalman filter for a random-walk level observed with noise:
/// x_t = x_{t−dt} + w, w ~ N(0, q_per_sec·dt); z_t = x_t + v, v ~ N(0, r).
/// Its gain adapts: fast while uncertain (start-up), then settles where q·dt and r balance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScalarKalman {
    /// Process-noise variance per second (how fast the true level may wander).
    pub q_per_sec: f64,
    /// Measurement-noise variance.
    pub r: f64,
    x: Option<f64>,
    p: f64,
}

impl ScalarKalman {
    pub fn new(q_per_sec: f64, r: f64) -> Self {
        Self {
            q_per_sec: q_per_sec.max(0.0),
            r: r.max(0.0),
            x: None,
            p: 0.0,
        }
    }

    /// Predicts over `dt_secs`, then corrects with `z`. The first sample initializes the
    /// level (with variance r). A non-finite `z` or dt is ignored.
    pub fn update(&mut self, dt_secs: f64, z: f64) -> Option<f64> {
        if !z.is_finite() || !dt_secs.is_finite() {
            return self.x;
        }
        let Some(x) = self.x else {
            self.x = Some(z);
            self.p = self.r;
            return self.x;
        };
        let p_prior = self.p + self.q_per_sec * dt_secs.max(0.0);
        let denom = p_prior + self.r;
        let k = if denom > 0.0 { p_prior / denom } else { 1.0 };
        let x = x + k * (z - x);
        self.p = (1.0 - k) * p_prior;
        self.x = Some(x);
        self.x
    }

    pub fn value(&self) -> Option<f64> {
        self.x
    }

    /// Current estimate variance.
    pub fn variance(&self) -> f64 {
        self.p
    }
}

/// Estimator settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EstimatorConfig {
    /// EMA time constant for rate, depth and service rate, in seconds. Cycles of 50 ms to
    /// 1 s all use alpha = 1 − exp(−cycle/τ).
    pub tau_secs: f64,
}

impl Default for EstimatorConfig {
    /// 2 s: a few 1 s cycles, or forty 50 ms cycles; long enough to smooth one catch-up
    /// burst, short enough to follow a hotspot building over tens of seconds.
    fn default() -> Self {
        Self { tau_secs: 2.0 }
    }
}

/// One cycle's observation of one listener.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ListenerObservation {
    /// Arrivals during the cycle (sk_data_ready events: connections or datagrams).
    pub events: u64,
    /// Queue depth at the end of the cycle (accept-queue entries or receive-queue bytes).
    pub queue_depth: f64,
    /// Whether `queue_depth` counts the same items as `events` (a TCP accept queue counts
    /// connections; a UDP receive queue counts bytes unless the caller converted it to
    /// datagrams). Only then can the service rate be derived from the queue.
    pub queue_counts_events: bool,
}

/// The estimator's view of one listener after a cycle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ListenerState {
    /// Smoothed arrivals per second.
    pub rate_per_sec: f64,
    /// Smoothed queue depth (unit of the observation).
    pub queue_depth: f64,
    /// Smoothed departures per second: arrivals − queue growth, i.e.
    /// (events − (depth_now − depth_before)) / dt, never negative. None until two
    /// observations in event units have been seen.
    pub service_rate_per_sec: Option<f64>,
    /// Seconds since the queue was last observed empty at a cycle boundary (0 when empty
    /// now). Counted from the estimator's first observation, so it is a lower bound on how
    /// long a backlog has persisted: a queue that never drains grows stale.
    pub staleness_secs: f64,
    /// Little's-law wait, smoothed depth / smoothed service rate: how long a newly queued
    /// item waits. None without a service rate, or when nothing is being served.
    pub queue_delay_secs: Option<f64>,
}

/// Tracks one listener across cycles.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerEstimator {
    rate: Ema,
    depth: Ema,
    service: Ema,
    last_depth_events: Option<f64>,
    now_secs: f64,
    last_empty_secs: Option<f64>,
    state: ListenerState,
}

impl ListenerEstimator {
    pub fn new(cfg: &EstimatorConfig) -> Self {
        Self {
            rate: Ema::new(cfg.tau_secs),
            depth: Ema::new(cfg.tau_secs),
            service: Ema::new(cfg.tau_secs),
            last_depth_events: None,
            now_secs: 0.0,
            last_empty_secs: None,
            state: ListenerState::default(),
        }
    }

    /// Folds in one cycle of `dt_secs`. A cycle with dt ≤ 0 (or not finite) is ignored:
    /// there is no rate over no time.
    pub fn update(&mut self, dt_secs: f64, obs: &ListenerObservation) -> ListenerState {
        if !dt_secs.is_finite() || dt_secs <= 0.0 {
            return self.state;
        }
        let first = self.last_empty_secs.is_none();
        if !first {
            self.now_secs += dt_secs;
        }
        let depth = if obs.queue_depth.is_finite() {
            obs.queue_depth.max(0.0)
        } else {
            0.0
        };
        let events = obs.events as f64;

        let rate = self.rate.update(dt_secs, events / dt_secs).unwrap_or(0.0);
        let depth_smoothed = self.depth.update(dt_secs, depth).unwrap_or(0.0);

        let service = if obs.queue_counts_events {
            if let Some(before) = self.last_depth_events {
                let served = (events - (depth - before)).max(0.0) / dt_secs;
                self.service.update(dt_secs, served);
            }
            self.last_depth_events = Some(depth);
            self.service.value()
        } else {
            // Units changed or never matched: a service rate from mixed units would lie.
            self.last_depth_events = None;
            self.service = Ema::new(self.service.tau_secs);
            None
        };

        // Non-empty at the first look counts from there: earlier history is unknown.
        if depth == 0.0 || first {
            self.last_empty_secs = Some(self.now_secs);
        }
        let staleness = if depth == 0.0 {
            0.0
        } else {
            self.now_secs - self.last_empty_secs.unwrap_or(self.now_secs)
        };

        let queue_delay = service.filter(|&s| s > 0.0).map(|s| depth_smoothed / s);

        self.state = ListenerState {
            rate_per_sec: rate,
            queue_depth: depth_smoothed,
            service_rate_per_sec: service,
            staleness_secs: staleness,
            queue_delay_secs: queue_delay,
        };
        self.state
    }

    pub fn state(&self) -> ListenerState {
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn obs(events: u64, depth: f64) -> ListenerObservation {
        ListenerObservation {
            events,
            queue_depth: depth,
            queue_counts_events: true,
        }
    }

    #[test]
    fn alpha_is_dt_aware() {
        // Ten 100 ms steps decay a step as much as one 1 s step.
        let one = 1.0 - ema_alpha(1.0, 2.0);
        let ten = (1.0 - ema_alpha(0.1, 2.0)).powi(10);
        assert!((one - ten).abs() < 1e-12);
        assert_eq!(ema_alpha(0.0, 2.0), 0.0);
        assert_eq!(ema_alpha(1.0, 0.0), 1.0);
        assert_eq!(ema_alpha(f64::NAN, 1.0), 0.0);
    }

    #[test]
    fn ema_step_response_matches_time_constant() {
        // Step 0 → 1: after τ seconds the EMA has covered 1 − 1/e of the step,
        // whatever the cycle length.
        for dt in [0.05, 0.2, 1.0] {
            let mut e = Ema::new(2.0);
            e.update(dt, 0.0);
            let steps = (2.0 / dt).round() as usize;
            let mut v = 0.0;
            for _ in 0..steps {
                v = e.update(dt, 1.0).unwrap();
            }
            assert!((v - (1.0 - (-1.0f64).exp())).abs() < 1e-9, "dt {dt}: {v}");
        }
    }

    #[test]
    fn ema_ignores_non_finite() {
        let mut e = Ema::new(1.0);
        assert_eq!(e.update(1.0, f64::NAN), None);
        assert_eq!(e.update(1.0, 3.0), Some(3.0));
        assert_eq!(e.update(1.0, f64::INFINITY), Some(3.0));
    }

    #[test]
    fn kalman_converges_and_settles() {
        let mut k = ScalarKalman::new(0.01, 1.0);
        for i in 0..500 {
            // Alternating ±1 noise around 10.
            let z = if i % 2 == 0 { 11.0 } else { 9.0 };
            k.update(0.1, z);
        }
        assert!((k.value().unwrap() - 10.0).abs() < 0.2);
        // The variance settles well below the measurement noise.
        assert!(k.variance() < 0.2);
        // Step response: moves toward a new level monotonically.
        let mut prev = k.value().unwrap();
        for _ in 0..2000 {
            let v = k.update(0.1, 20.0).unwrap();
            assert!(v >= prev - 1e-12 && v <= 20.0 + 1e-12);
            prev = v;
        }
        assert!((prev - 20.0).abs() < 0.01);
    }

    #[test]
    fn listener_rate_depth_service() {
        let mut est = ListenerEstimator::new(&EstimatorConfig { tau_secs: 0.0 });
        // No smoothing (τ = 0) shows the raw definitions.
        let s = est.update(0.5, &obs(100, 0.0));
        assert_eq!(s.rate_per_sec, 200.0);
        assert_eq!(s.service_rate_per_sec, None);
        // 100 arrivals, queue grew by 40: 60 served in 0.5 s.
        let s = est.update(0.5, &obs(100, 40.0));
        assert_eq!(s.service_rate_per_sec, Some(120.0));
        assert_eq!(s.queue_depth, 40.0);
        assert!((s.queue_delay_secs.unwrap() - 40.0 / 120.0).abs() < 1e-12);
        // No arrivals, queue drained by 40: 80 served per second.
        let s = est.update(0.5, &obs(0, 0.0));
        assert_eq!(s.service_rate_per_sec, Some(80.0));
        assert_eq!(s.queue_delay_secs, Some(0.0));
    }

    #[test]
    fn service_rate_needs_matching_units() {
        let mut est = ListenerEstimator::new(&EstimatorConfig::default());
        let bytes = ListenerObservation {
            events: 10,
            queue_depth: 4096.0,
            queue_counts_events: false,
        };
        est.update(1.0, &bytes);
        let s = est.update(1.0, &bytes);
        assert_eq!(s.service_rate_per_sec, None);
        assert_eq!(s.queue_delay_secs, None);
        assert!(s.rate_per_sec > 0.0);
    }

    #[test]
    fn staleness_counts_time_since_empty() {
        let mut est = ListenerEstimator::new(&EstimatorConfig::default());
        assert_eq!(est.update(0.1, &obs(5, 3.0)).staleness_secs, 0.0);
        assert!((est.update(0.1, &obs(5, 4.0)).staleness_secs - 0.1).abs() < 1e-12);
        assert!((est.update(0.1, &obs(5, 5.0)).staleness_secs - 0.2).abs() < 1e-12);
        assert_eq!(est.update(0.1, &obs(5, 0.0)).staleness_secs, 0.0);
        assert!((est.update(0.3, &obs(5, 1.0)).staleness_secs - 0.3).abs() < 1e-12);
    }

    #[test]
    fn bad_dt_is_ignored() {
        let mut est = ListenerEstimator::new(&EstimatorConfig::default());
        let s = est.update(1.0, &obs(10, 0.0));
        assert_eq!(est.update(0.0, &obs(1_000_000, 5.0)), s);
        assert_eq!(est.update(f64::NAN, &obs(1_000_000, 5.0)), s);
    }

    proptest! {
        /// A constant input converges to itself for any cycle length in 50 ms–1 s.
        #[test]
        fn converges_to_constant(
            dt in 0.05f64..1.0,
            events_per_sec in 0u32..100_000,
            depth in 0u32..1000,
        ) {
            let cfg = EstimatorConfig::default();
            let mut est = ListenerEstimator::new(&cfg);
            let events = (events_per_sec as f64 * dt).round() as u64;
            // Start far away: a burst, then the steady state.
            est.update(dt, &obs(events * 10 + 1000, 0.0));
            let cycles = (20.0 * cfg.tau_secs / dt).ceil() as usize;
            let mut s = est.state();
            for _ in 0..cycles {
                s = est.update(dt, &obs(events, depth as f64));
            }
            let rate = events as f64 / dt;
            prop_assert!((s.rate_per_sec - rate).abs() <= 1e-6 * rate.max(1.0));
            prop_assert!((s.queue_depth - depth as f64).abs() <= 1e-6 * (depth as f64).max(1.0));
            // Steady queue: everything that arrives is served.
            let served = s.service_rate_per_sec.unwrap();
            prop_assert!((served - rate).abs() <= 1e-6 * rate.max(1.0), "{served} vs {rate}");
            prop_assert!(s.staleness_secs >= 0.0);
        }

        /// The EMA stays within the range of what it has seen.
        #[test]
        fn ema_bounded(dt in 0.01f64..2.0, zs in proptest::collection::vec(-1e6f64..1e6, 1..100)) {
            let mut e = Ema::new(1.0);
            let lo = zs.iter().cloned().fold(f64::MAX, f64::min);
            let hi = zs.iter().cloned().fold(f64::MIN, f64::max);
            for z in &zs {
                let v = e.update(dt, *z).unwrap();
                prop_assert!(v >= lo - 1e-6 && v <= hi + 1e-6);
            }
        }
    }
}
