//! The model: pure functions from a window of counters to the report. No I/O here.

pub mod affinity;
pub mod estimator;
pub mod hotspot;
pub mod indices;
pub mod listener;
pub mod regime;
pub mod rss;
pub mod states;
pub mod window;

pub use window::Window;

use crate::report::{ProbeSamplingReport, Report, SNAPSHOT_SCHEMA};
use indices::SpiWeights;
use listener::{ListenerConfig, ListenerHistory};

/// Model settings that change numbers, not collection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelConfig {
    pub spi_weights: SpiWeights,
    /// USER_HZ for /proc/stat ticks (sysconf(_SC_CLK_TCK); 100 on every mainstream arch).
    pub user_hz: u64,
    pub listener: ListenerConfig,
    /// A queue is hot (for HAF95) when it carries this many times the mean queue's packets.
    pub hot_queue_factor: f64,
    pub states: states::StatesConfig,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            spi_weights: SpiWeights::default(),
            user_hz: 100,
            listener: ListenerConfig::default(),
            hot_queue_factor: 1.5,
            states: states::StatesConfig {
                haf95_target_us: 1000.0,
                ..Default::default()
            },
        }
    }
}

impl ModelConfig {
    pub fn new() -> Self {
        Self::default()
    }
}

/// What the model carries from one window to the next (BCI windows, membership).
#[derive(Debug, Default, Clone)]
pub struct ModelState {
    pub listeners: ListenerHistory,
    pub machines: states::StateMachines,
    pub affinity: affinity::AffinityBaselines,
}

/// One report from one window: since boot (`window_secs` None) or between two snapshots.
pub fn build_report(window: &Window, cfg: &ModelConfig, state: &mut ModelState) -> Report {
    let window_secs = window.secs();
    let cpus = rss::cpu_reports(window, cfg);
    let mut devices: Vec<_> = window
        .devices
        .iter()
        .map(|d| rss::device_report(d, window, cfg))
        .collect();
    state.affinity.apply(&mut devices);
    let host = rss::host_report(window, &cpus, cfg);
    let reuseport_groups = listener::group_reports(window, &cfg.listener, &mut state.listeners);
    let mut report = Report {
        schema: SNAPSHOT_SCHEMA,
        window_secs,
        cpus,
        devices,
        reuseport_groups,
        host,
        transitions: Vec::new(),
        sources: window.sources.clone(),
        // Attached by `run` from the shadow replay worker; the model never replays.
        shadow: Vec::new(),
        probe_sampling: window.probe_coverage.map(|c| ProbeSamplingReport {
            attached_share: window_secs
                .filter(|s| *s > 0.0)
                .map(|s| (c.attached.as_secs_f64() / s).min(1.0)),
            duty: c.duty,
            packet_cost_ns: c.packet_cost_ns,
            packet_cost_source: if c.cost_measured {
                "measured"
            } else {
                "configured"
            },
            cpu_share: c.cpu_share,
        }),
    };
    states::apply(&mut report, cfg, &mut state.machines);
    report
}
