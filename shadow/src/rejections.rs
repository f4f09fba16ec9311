//! Rate limit of the "shadow policy … rejected" warning.
//!
//! A process may replay the same candidates over and over (the agent's live
//! shadow replay does so every interval), and a candidate the verifier rejects
//! is rejected again each time. Its warning is logged the first time, again
//! when the error text changes, and otherwise at most once per [`WARN_EVERY`]
//! (saying how many rejections went unwarned); the repeats in between are
//! logged at debug level. The reports carry every rejection regardless.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::candidate::Candidate;

/// Shortest time between two warnings of the same rejection.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(600);

/// The rejections this process has logged, by candidate.
static LOG: Mutex<Option<Rejections>> = Mutex::new(None);

/// Logs that `candidate` was rejected with `err`: a warning, or a debug line for
/// a repeat (see the module documentation).
pub(crate) fn log_rejection(candidate: &Candidate, err: &dyn Display) {
    let error = err.to_string();
    let decision = LOG
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(Rejections::default)
        .record(candidate, &error, Instant::now());
    match decision {
        Log::Warn { unwarned: 0 } => {
            log::warn!("shadow policy {candidate} rejected: {error}");
        }
        Log::Warn { unwarned } => log::warn!(
            "shadow policy {candidate} rejected: {error} \
             ({unwarned} more times since its last warning)"
        ),
        Log::Debug => log::debug!("shadow policy {candidate} rejected again: {error}"),
    }
}

/// How one rejection is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Log {
    /// A warning; `unwarned` same rejections were logged at debug level since
    /// the candidate's last warning.
    Warn { unwarned: u64 },
    /// A repeat within [`WARN_EVERY`] of the last warning.
    Debug,
}

/// The last warning per candidate.
#[derive(Debug, Default)]
pub(crate) struct Rejections {
    last: HashMap<Candidate, Warned>,
}

#[derive(Debug)]
struct Warned {
    error: String,
    at: Instant,
    unwarned: u64,
}

impl Rejections {
    /// Records a rejection of `candidate` with `error` at `now` and says how to
    /// log it: a warning the first time, when the error text changed, or when
    /// the last warning is [`WARN_EVERY`] old; debug otherwise.
    pub(crate) fn record(&mut self, candidate: &Candidate, error: &str, now: Instant) -> Log {
        match self.last.get_mut(candidate) {
            Some(last) if last.error == error => {
                if now.saturating_duration_since(last.at) < WARN_EVERY {
                    last.unwarned += 1;
                    return Log::Debug;
                }
                last.at = now;
                Log::Warn {
                    unwarned: std::mem::take(&mut last.unwarned),
                }
            }
            _ => {
                let warned = Warned {
                    error: error.to_owned(),
                    at: now,
                    unwarned: 0,
                };
                self.last.insert(candidate.clone(), warned);
                Log::Warn { unwarned: 0 }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    use crate::candidate::Builtin;

    #[test]
    fn warns_first_on_change_and_every_ten_minutes_per_candidate() {
        let bad = Candidate::Object(PathBuf::from("/x/bad.o"));
        let other = Candidate::Builtin(Builtin::Cpu);
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let mut r = Rejections::default();
        const WARN: Log = Log::Warn { unwarned: 0 };

        assert_eq!(r.record(&bad, "verifier: E1", at(0)), WARN);
        // Every interval after: debug only.
        for s in 1..=10 {
            assert_eq!(r.record(&bad, "verifier: E1", at(s)), Log::Debug, "{s} s");
        }
        // Another candidate is warned on its own.
        assert_eq!(r.record(&other, "verifier: E1", at(5)), WARN);
        // A new error text is warned at once and restarts the period.
        assert_eq!(r.record(&bad, "verifier: E2", at(20)), WARN);
        assert_eq!(r.record(&bad, "verifier: E2", at(21)), Log::Debug);
        assert_eq!(r.record(&bad, "verifier: E2", at(20 + 599)), Log::Debug);
        // Ten minutes after the last warning: warned again, with the count.
        let again = r.record(&bad, "verifier: E2", at(20 + 600));
        assert_eq!(again, Log::Warn { unwarned: 2 });
        assert_eq!(r.record(&bad, "verifier: E2", at(20 + 601)), Log::Debug);
        let again = r.record(&bad, "verifier: E2", at(20 + 1200));
        assert_eq!(again, Log::Warn { unwarned: 1 });
        // Back to the first error: a change again.
        assert_eq!(r.record(&bad, "verifier: E1", at(20 + 1201)), WARN);
    }

    /// A logger keeping every record (level and text).
    struct Capture(Mutex<Vec<(log::Level, String)>>);

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, record: &log::Record) {
            self.0
                .lock()
                .unwrap()
                .push((record.level(), record.args().to_string()));
        }
        fn flush(&self) {}
    }

    static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

    #[test]
    fn repeated_rejections_of_a_candidate_warn_once() {
        // The only logger of this test binary.
        log::set_logger(&CAPTURE).expect("no other logger in the unit tests");
        log::set_max_level(log::LevelFilter::Trace);
        let candidate = Candidate::Object(PathBuf::from("/tmp/repeated-rejection-test.o"));
        for _ in 0..5 {
            log_rejection(
                &candidate,
                &"verifier rejected the program: R1 invalid mem access",
            );
        }
        let lines: Vec<(log::Level, String)> = CAPTURE
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, text)| text.contains("/tmp/repeated-rejection-test.o"))
            .cloned()
            .collect();
        let warnings = lines.iter().filter(|(l, _)| *l == log::Level::Warn).count();
        let debugs = lines
            .iter()
            .filter(|(l, _)| *l == log::Level::Debug)
            .count();
        assert_eq!((warnings, debugs), (1, 4), "{lines:?}");
        assert_eq!(
            lines[0].1,
            "shadow policy /tmp/repeated-rejection-test.o rejected: \
             verifier rejected the program: R1 invalid mem access"
        );
    }
}
