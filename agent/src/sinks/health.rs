//! Liveness and readiness of the collection cycle, served as `/healthz` and `/readyz` on
//! the Prometheus endpoint for Kubernetes probes. Both derive from when reports were
//! published to the sinks; the instants come in as arguments, so the rule is testable and
//! no clock is read here.

use std::time::{Duration, Instant};

/// However short the interval, a cycle is not called stalled before this.
pub const MIN_STALL: Duration = Duration::from_secs(10);

/// How long without a new report before the cycle counts as stalled: three intervals,
/// and at least [`MIN_STALL`].
pub fn stall_after(interval: Duration) -> Duration {
    interval.saturating_mul(3).max(MIN_STALL)
}

/// `/healthz`: Ok while the last report (before the first one: the start) is at most
/// [`stall_after`] old; else a one-line reason.
pub fn liveness(
    now: Instant,
    started: Instant,
    last_report: Option<Instant>,
    interval: Duration,
) -> Result<(), String> {
    let limit = stall_after(interval);
    let (since, what) = match last_report {
        Some(t) => (t, "the last report"),
        None => (started, "the start, and no report yet"),
    };
    let age = now.saturating_duration_since(since);
    if age <= limit {
        Ok(())
    } else {
        Err(format!(
            "collection stalled: {:.1} s since {what} (limit {:.1} s)",
            age.as_secs_f64(),
            limit.as_secs_f64()
        ))
    }
}

/// `/readyz`: Ok once the first report has been published.
pub fn readiness(last_report: Option<Instant>) -> Result<(), String> {
    match last_report {
        Some(_) => Ok(()),
        None => Err("no report published yet".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn stall_limit_is_three_intervals_and_at_least_ten_seconds() {
        assert_eq!(stall_after(SEC), MIN_STALL);
        assert_eq!(stall_after(Duration::from_millis(50)), MIN_STALL);
        assert_eq!(stall_after(5 * SEC), 15 * SEC);
        assert_eq!(stall_after(Duration::MAX), Duration::MAX);
    }

    #[test]
    fn liveness_follows_the_last_report() {
        let t0 = Instant::now();
        let interval = 5 * SEC; // limit 15 s
        let report = Some(t0 + 20 * SEC);
        assert!(liveness(t0 + 20 * SEC, t0, report, interval).is_ok());
        assert!(liveness(t0 + 35 * SEC, t0, report, interval).is_ok());
        let err = liveness(t0 + 36 * SEC, t0, report, interval).unwrap_err();
        assert_eq!(
            err,
            "collection stalled: 16.0 s since the last report (limit 15.0 s)"
        );
        assert!(!err.contains('\n'));
        // A report older than `now` by nothing (or a clock read before it) is fresh.
        assert!(liveness(t0, t0, Some(t0 + SEC), interval).is_ok());
    }

    #[test]
    fn before_the_first_report_the_start_counts() {
        let t0 = Instant::now();
        assert!(liveness(t0 + 10 * SEC, t0, None, SEC).is_ok());
        let err = liveness(t0 + 11 * SEC, t0, None, SEC).unwrap_err();
        assert!(err.contains("no report yet"), "{err}");
        assert_eq!(readiness(None), Err("no report published yet".into()));
        assert_eq!(readiness(Some(t0)), Ok(()));
    }
}
