//! Regime state machines with hysteresis and minimum dwell: a reuseport group is GREEN /
//! YELLOW / ORANGE / RED (shared/seeds/reuseport-hash-skew-playbook.txt), a device is
//! RSS_BALANCED / RSS_DRIFT / RSS_POLARIZED / RSS_CONTAIN
//! (shared/seeds/rss-queue-polarization-playbook.txt). docs/regimes.md explains the rules
//! and the default thresholds.
//!
//! Observe-only: each state carries the seeds' recommended action as advice text; nothing
//! here acts on it. Pure: time arrives as a cycle number and the cycle length in seconds.
//!
//! Rules, the same for both machines (levels 0..=3):
//! - Level 1 and 2 are entered when any of their indices reaches its `enter` threshold,
//!   and held while any reaches its (lower) `exit` threshold: hysteresis. Level 1 is
//!   also held by level 2's exit thresholds (evidence of worse is evidence of bad).
//! - Level 3 (RED, RSS_CONTAIN) needs persistence: level 2 held for `after_*_secs` and
//!   still held, plus a latency-budget breach (DLG / HAF95 over target); it is held while
//!   level 2 holds and the breach stays above its exit threshold.
//! - Up may skip levels (GREEN → ORANGE in one step: a sudden hotspot is reported at
//!   once); down goes one level at a time, so leaving a hotspot is gradual.
//! - Any transition waits until the current state has been held `min_dwell_secs`
//!   (rounded up to whole cycles, at least one). The initial state is an assumption, not
//!   an observation, and owes no dwell.
//! - A missing index (None, NaN) neither enters nor holds a level: it never escalates.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A four-level regime, ordered from calm (rank 0) to worst (rank 3).
pub trait Regime: Copy + Eq + fmt::Debug + 'static {
    /// The levels by rank.
    const LEVELS: [Self; 4];
    /// The JSON and metric label: "GREEN", "RSS_DRIFT", ...
    fn name(self) -> &'static str;
    /// The seeds' recommended action for this state. Advice for whoever reads the
    /// report; skewscope never executes it.
    fn advice(self) -> &'static str;
    /// 0 (calm) ..= 3 (worst): the value of a state gauge.
    fn rank(self) -> usize {
        Self::LEVELS.iter().position(|&l| l == self).unwrap_or(0)
    }
}

/// Regime of one SO_REUSEPORT group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GroupRegime {
    /// BALANCED_INGRESS: low LSI, low LQD, DLG near budget.
    #[default]
    Green,
    /// SKEW_BUILDING: rising HCR/LSI, early DLG drift.
    Yellow,
    /// HOT_LISTENER_ACTIVE: sustained high LQD, BCI spikes, elevated P_hot.
    Orange,
    /// SAFE_DEGRADE: tail-budget breach plus a persistent hotspot.
    Red,
    /// No colour: the group's per-listener events are not measured (no listener_events
    /// probe on this kernel or in this run), and the regime is never read from missing
    /// data. Not a level: a state machine never enters it (model/states.rs sets it).
    Unknown,
}

impl Regime for GroupRegime {
    const LEVELS: [Self; 4] = [Self::Green, Self::Yellow, Self::Orange, Self::Red];

    fn name(self) -> &'static str {
        match self {
            Self::Green => "GREEN",
            Self::Yellow => "YELLOW",
            Self::Orange => "ORANGE",
            Self::Red => "RED",
            Self::Unknown => "UNKNOWN",
        }
    }

    fn advice(self) -> &'static str {
        match self {
            Self::Green => "balanced ingress: normal routing and default passive horizon",
            Self::Yellow => {
                "skew building: shorten passive timeouts, penalize stale-event venues, \
                 prepare an alternative listener map"
            }
            Self::Orange => {
                "hot listener: cap child-order burst size, use conservative participation, \
                 review reuseport steering (SO_ATTACH_REUSEPORT_EBPF), isolate dominant peers"
            }
            Self::Red => {
                "safe-degrade: prioritize completion certainty over passive edge, hard-throttle \
                 burst dispatch, open an incident (ingress topology and CPU/IRQ mapping audit)"
            }
            Self::Unknown => {
                "per-listener events are not measured (see the listener_events source): \
                 no listener regime; `skewscope doctor` says which probe hook this kernel lacks"
            }
        }
    }
}

/// Regime of one network device's RSS queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeviceRegime {
    /// Low QPI/ISI/SPI.
    #[default]
    RssBalanced,
    /// Rising QPI with intermittent softirq skew.
    RssDrift,
    /// Sustained hot-queue concentration, widening HAF95.
    RssPolarized,
    /// Persistent polarization plus deadline risk (HAF95 over target).
    RssContain,
}

impl Regime for DeviceRegime {
    const LEVELS: [Self; 4] = [
        Self::RssBalanced,
        Self::RssDrift,
        Self::RssPolarized,
        Self::RssContain,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::RssBalanced => "RSS_BALANCED",
            Self::RssDrift => "RSS_DRIFT",
            Self::RssPolarized => "RSS_POLARIZED",
            Self::RssContain => "RSS_CONTAIN",
        }
    }

    fn advice(self) -> &'static str {
        match self {
            Self::RssBalanced => "balanced queues: standard pacing and routing",
            Self::RssDrift => {
                "drift: dampen cancel/reprice churn, smooth bursts mildly; check the RSS \
                 indirection table (ethtool -x) for drift"
            }
            Self::RssPolarized => {
                "polarized: stricter burst caps, more conservative passive horizons; flatten \
                 indirection weights, align IRQ affinity with NUMA and thread pinning"
            }
            Self::RssContain => {
                "contain: route urgent flow to cleaner hosts/queues, prioritize completion \
                 certainty over queue capture; audit IRQ affinity and netdev budgets"
            }
        }
    }
}

impl fmt::Display for GroupRegime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for DeviceRegime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One index's thresholds for one level: entered at ≥ `enter`, held while ≥ `exit`.
/// `exit` ≤ `enter`; the gap is the hysteresis band.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub enter: f64,
    pub exit: f64,
}

const fn band(enter: f64, exit: f64) -> Option<Band> {
    Some(Band { enter, exit })
}

/// A threshold set: one optional band per index of its machine; `null` (None) means the
/// index does not count for that level. Each set has its own defaults, so a config that
/// overrides one band keeps the others.
macro_rules! threshold_set {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident = $default:expr,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: Option<Band>,)+
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $($field: $default,)+ }
            }
        }

        impl $name {
            /// (index name, band) for every index of the set.
            pub fn bands(&self) -> Vec<(&'static str, Option<Band>)> {
                vec![$((stringify!($field), self.$field),)+]
            }
        }
    };
}

threshold_set! {
    /// YELLOW (skew building): rising HCR/LSI, early DLG drift, P_hot rising.
    YellowThresholds {
        /// Listener Skew Index.
        lsi = band(0.25, 0.15),
        /// Share of the heaviest flow.
        hcr_1 = band(0.5, 0.35),
        /// LQD of a TCP group, accept-queue entries.
        lqd_entries = None,
        /// LQD of a UDP group, receive-queue bytes.
        lqd_bytes = None,
        /// Burst Catch-up Index.
        bci = None,
        /// DLG / target = p95 ingress age / target − 1: −0.2 is p95 at 80 % of budget.
        dlg_over_target = band(-0.2, -0.35),
        /// Hotspot probability.
        p_hot = band(0.5, 0.35),
    }
}

threshold_set! {
    /// ORANGE (hot listener): sustained high LQD, BCI spikes, elevated P_hot.
    OrangeThresholds {
        /// Listener Skew Index.
        lsi = band(0.5, 0.35),
        /// Share of the heaviest flow.
        hcr_1 = None,
        /// LQD of a TCP group, accept-queue entries.
        lqd_entries = band(32.0, 16.0),
        /// LQD of a UDP group, receive-queue bytes.
        lqd_bytes = band(65536.0, 32768.0),
        /// Burst Catch-up Index.
        bci = band(3.0, 2.0),
        /// DLG / target.
        dlg_over_target = None,
        /// Hotspot probability (the seeds switch to strict caps above 0.7).
        p_hot = band(0.7, 0.5),
    }
}

threshold_set! {
    /// RSS_DRIFT: rising QPI with intermittent softirq skew.
    DriftThresholds {
        /// Queue Polarization Index, max/mean − 1 of per-queue packets.
        qpi = band(0.5, 0.3),
        /// Normalized IRQ Herfindahl, 0 (even) .. 1 (one queue).
        isi_normalized = band(0.1, 0.06),
        /// Softirq Pressure Index (host-wide), 0 .. 1.
        spi = band(0.2, 0.12),
        /// HAF95 / target − 1.
        haf95_over_target = None,
    }
}

threshold_set! {
    /// RSS_POLARIZED: sustained hot-queue concentration, widening HAF95.
    PolarizedThresholds {
        /// Queue Polarization Index: the hottest queue carries twice the mean.
        qpi = band(1.0, 0.7),
        /// Normalized IRQ Herfindahl.
        isi_normalized = band(0.25, 0.18),
        /// Softirq Pressure Index.
        spi = band(0.4, 0.3),
        /// HAF95 / target − 1: −0.2 is hot-queue p95 age at 80 % of budget.
        haf95_over_target = band(-0.2, -0.35),
    }
}

/// RED: ORANGE held at least `after_orange_secs` (and still held) plus a tail-budget
/// breach; held while ORANGE holds and the breach stays at or above `dlg_over_target.exit`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedRule {
    pub after_orange_secs: f64,
    /// DLG / target: 0 is p95 ingress age at target; exit −0.1 is back under 90 % of it.
    pub dlg_over_target: Band,
}

impl Default for RedRule {
    fn default() -> Self {
        Self {
            after_orange_secs: 10.0,
            dlg_over_target: Band {
                enter: 0.0,
                exit: -0.1,
            },
        }
    }
}

/// RSS_CONTAIN: RSS_POLARIZED held at least `after_polarized_secs` (and still held) plus a
/// deadline risk, HAF95 at or over its target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContainRule {
    pub after_polarized_secs: f64,
    /// HAF95 / target − 1.
    pub haf95_over_target: Band,
}

impl Default for ContainRule {
    fn default() -> Self {
        Self {
            after_polarized_secs: 10.0,
            haf95_over_target: Band {
                enter: 0.0,
                exit: -0.1,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupRegimeConfig {
    pub yellow: YellowThresholds,
    pub orange: OrangeThresholds,
    pub red: RedRule,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceRegimeConfig {
    pub drift: DriftThresholds,
    pub polarized: PolarizedThresholds,
    pub contain: ContainRule,
}

/// Regime thresholds and timing. Defaults are documented in docs/regimes.md; they are
/// starting points, not calibrated values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegimeConfig {
    /// Minimum time in a state before any transition, in seconds; rounded up to whole
    /// cycles (at least one), so it means the same at 50 ms and 1 s cycles.
    pub min_dwell_secs: f64,
    pub group: GroupRegimeConfig,
    pub device: DeviceRegimeConfig,
}

impl Default for RegimeConfig {
    fn default() -> Self {
        Self {
            min_dwell_secs: 3.0,
            group: GroupRegimeConfig::default(),
            device: DeviceRegimeConfig::default(),
        }
    }
}

/// A config value that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("regime config: {field}: {why}")]
pub struct RegimeConfigError {
    pub field: String,
    pub why: String,
}

/// Whole cycles covering `secs` at `cycle_secs` per cycle, at least one. A cycle length
/// that is not a positive number counts as 1 s.
pub fn secs_to_cycles(secs: f64, cycle_secs: f64) -> u64 {
    let cycle = if cycle_secs.is_finite() && cycle_secs > 0.0 {
        cycle_secs
    } else {
        1.0
    };
    let secs = if secs.is_finite() { secs.max(0.0) } else { 0.0 };
    // The epsilon keeps 3.0 / 0.1 = 30.000000000000004 at 30 cycles.
    ((secs / cycle - 1e-9).ceil().max(1.0)).min(u64::MAX as f64) as u64
}

impl RegimeConfig {
    pub fn min_dwell_cycles(&self, cycle_secs: f64) -> u64 {
        secs_to_cycles(self.min_dwell_secs, cycle_secs)
    }

    /// Every band finite with exit ≤ enter; every duration finite and ≥ 0.
    pub fn validate(&self) -> Result<(), RegimeConfigError> {
        let err = |field: String, why: &str| RegimeConfigError {
            field,
            why: why.to_string(),
        };
        let secs = [
            ("min_dwell_secs", self.min_dwell_secs),
            (
                "group.red.after_orange_secs",
                self.group.red.after_orange_secs,
            ),
            (
                "device.contain.after_polarized_secs",
                self.device.contain.after_polarized_secs,
            ),
        ];
        for (field, v) in secs {
            if !v.is_finite() || v < 0.0 {
                return Err(err(field.to_string(), "must be a finite number ≥ 0"));
            }
        }
        let mut bands: Vec<(String, Band)> = Vec::new();
        let mut add = |prefix: &str, set: Vec<(&'static str, Option<Band>)>| {
            for (name, b) in set {
                if let Some(b) = b {
                    bands.push((format!("{prefix}.{name}"), b));
                }
            }
        };
        add("group.yellow", self.group.yellow.bands());
        add("group.orange", self.group.orange.bands());
        add("device.drift", self.device.drift.bands());
        add("device.polarized", self.device.polarized.bands());
        bands.push((
            "group.red.dlg_over_target".into(),
            self.group.red.dlg_over_target,
        ));
        bands.push((
            "device.contain.haf95_over_target".into(),
            self.device.contain.haf95_over_target,
        ));
        for (field, b) in bands {
            if !b.enter.is_finite() || !b.exit.is_finite() {
                return Err(err(field, "enter and exit must be finite"));
            }
            if b.exit > b.enter {
                return Err(err(field, "exit must not exceed enter (hysteresis)"));
            }
        }
        Ok(())
    }
}

/// Indices of one reuseport group for one cycle.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GroupInputs {
    pub lsi: Option<f64>,
    pub hcr_1: Option<f64>,
    /// LQD of a TCP group (accept-queue entries).
    pub lqd_entries: Option<f64>,
    /// LQD of a UDP group (receive-queue bytes).
    pub lqd_bytes: Option<f64>,
    pub bci: Option<f64>,
    /// p95 ingress age − target, µs.
    pub dlg_us: Option<f64>,
    /// The p95 ingress-age target DLG is measured against, µs.
    pub dlg_target_us: f64,
    pub p_hot: Option<f64>,
}

impl GroupInputs {
    /// DLG / target (p95 / target − 1). None without DLG or without a positive target.
    pub fn dlg_over_target(&self) -> Option<f64> {
        over_target(self.dlg_us, self.dlg_target_us)
    }

    fn value(&self, index: &str) -> Option<f64> {
        match index {
            "lsi" => self.lsi,
            "hcr_1" => self.hcr_1,
            "lqd_entries" => self.lqd_entries,
            "lqd_bytes" => self.lqd_bytes,
            "bci" => self.bci,
            "dlg_over_target" => self.dlg_over_target(),
            "p_hot" => self.p_hot,
            _ => None,
        }
    }
}

/// Indices of one device for one cycle.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DeviceInputs {
    pub qpi: Option<f64>,
    pub isi_normalized: Option<f64>,
    /// Host-wide Softirq Pressure Index.
    pub spi: Option<f64>,
    /// p95 ingress age of packets from hot queues, µs.
    pub haf95_us: Option<f64>,
    /// The target HAF95 is measured against, µs.
    pub haf95_target_us: f64,
}

impl DeviceInputs {
    /// HAF95 / target − 1. None without HAF95 or without a positive target.
    pub fn haf95_over_target(&self) -> Option<f64> {
        over_target(
            self.haf95_us.map(|h| h - self.haf95_target_us),
            self.haf95_target_us,
        )
    }

    fn value(&self, index: &str) -> Option<f64> {
        match index {
            "qpi" => self.qpi,
            "isi_normalized" => self.isi_normalized,
            "spi" => self.spi,
            "haf95_over_target" => self.haf95_over_target(),
            _ => None,
        }
    }
}

fn over_target(gap_us: Option<f64>, target_us: f64) -> Option<f64> {
    if !(target_us.is_finite() && target_us > 0.0) {
        return None;
    }
    gap_us.map(|g| g / target_us).filter(|v| v.is_finite())
}

/// One index's part in a transition: its value and the threshold it was compared with
/// (`≥ threshold` on the way up, `< threshold` on the way down).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Trigger {
    pub index: &'static str,
    pub value: f64,
    pub threshold: f64,
}

/// A regime change: an event to log (with its triggers) and count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition<S> {
    pub from: S,
    pub to: S,
    pub cycle: u64,
    /// Cycles spent in `from`; None when leaving the initial state.
    pub held_cycles: Option<u64>,
    /// Up: the indices at or above their enter thresholds (and, into RED/RSS_CONTAIN, the
    /// persistence and the held level's indices). Down: the present indices, each below
    /// its exit threshold.
    pub triggers: Vec<Trigger>,
    pub reason: String,
}

impl<S: Regime> fmt::Display for Transition<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> {} at cycle {}: {}",
            self.from.name(),
            self.to.name(),
            self.cycle,
            self.reason
        )
    }
}

/// What the indices say about one level this cycle.
#[derive(Debug, Clone, Default)]
struct LevelCheck {
    /// Some: the level's enter condition holds, with what made it.
    enter: Option<Vec<Trigger>>,
    /// Whether the level's hold (exit) condition holds.
    hold: bool,
    /// Present indices below their exit thresholds (the story of a step down).
    below: Vec<Trigger>,
    /// Indices at or above their exit thresholds (what keeps the level).
    holding: Vec<Trigger>,
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// Any index at or above its enter threshold enters; any at or above its exit holds.
fn any_of(signals: &[(&'static str, Option<f64>, Option<Band>)]) -> LevelCheck {
    let mut enter = Vec::new();
    let mut check = LevelCheck::default();
    for &(index, value, band) in signals {
        let (Some(value), Some(band)) = (finite(value), band) else {
            continue;
        };
        if value >= band.enter {
            enter.push(Trigger {
                index,
                value,
                threshold: band.enter,
            });
        }
        if value >= band.exit {
            check.holding.push(Trigger {
                index,
                value,
                threshold: band.exit,
            });
        } else {
            check.below.push(Trigger {
                index,
                value,
                threshold: band.exit,
            });
        }
    }
    check.hold = !check.holding.is_empty();
    check.enter = (!enter.is_empty()).then_some(enter);
    check
}

/// The top level's inputs: `below_level` held for `persist_cycles` and still held, plus a
/// breach at or above `band.enter`.
struct Persistence<'a> {
    in_below_level: bool,
    held_cycles: Option<u64>,
    persist_cycles: u64,
    persist_name: &'static str,
    below_level: &'a LevelCheck,
    breach_name: &'static str,
    breach: Option<f64>,
    band: Band,
}

fn persistent(p: Persistence<'_>) -> LevelCheck {
    let Persistence {
        in_below_level,
        held_cycles,
        persist_cycles,
        persist_name,
        below_level,
        breach_name,
        breach,
        band,
    } = p;
    let breach = finite(breach);
    let mut check = LevelCheck::default();
    let held = held_cycles.unwrap_or(0);
    // The persistent condition must be more than the breach itself (HAF95 also counts
    // for RSS_POLARIZED): some other index of the level below has to hold it.
    let holding: Vec<Trigger> = below_level
        .holding
        .iter()
        .filter(|t| t.index != breach_name)
        .copied()
        .collect();
    let below_held = !holding.is_empty();
    if in_below_level && held >= persist_cycles && below_held {
        if let Some(b) = breach.filter(|&b| b >= band.enter) {
            let mut t = vec![
                Trigger {
                    index: persist_name,
                    value: held as f64,
                    threshold: persist_cycles as f64,
                },
                Trigger {
                    index: breach_name,
                    value: b,
                    threshold: band.enter,
                },
            ];
            t.extend(holding);
            check.enter = Some(t);
        }
    }
    let breach_held = breach.is_some_and(|b| b >= band.exit);
    check.hold = below_held && breach_held;
    if let Some(b) = breach.filter(|_| !breach_held) {
        check.below.push(Trigger {
            index: breach_name,
            value: b,
            threshold: band.exit,
        });
    }
    if !below_held {
        check.below.extend(
            below_level
                .below
                .iter()
                .filter(|t| t.index != breach_name)
                .copied(),
        );
    }
    check
}

/// A regime state machine. Counts its transitions for a state gauge and a transition
/// counter.
#[derive(Debug, Clone, PartialEq)]
pub struct RegimeMachine<S> {
    state: S,
    /// None while in the initial state.
    entered_at_cycle: Option<u64>,
    last_cycle: Option<u64>,
    counts: [[u64; 4]; 4],
}

pub type GroupRegimeMachine = RegimeMachine<GroupRegime>;
pub type DeviceRegimeMachine = RegimeMachine<DeviceRegime>;

impl<S: Regime> Default for RegimeMachine<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Regime> RegimeMachine<S> {
    /// Starts in the calmest state.
    pub fn new() -> Self {
        Self {
            state: S::LEVELS[0],
            entered_at_cycle: None,
            last_cycle: None,
            counts: [[0; 4]; 4],
        }
    }

    pub fn state(&self) -> S {
        self.state
    }

    /// The cycle of the last transition; None while in the initial state.
    pub fn entered_at_cycle(&self) -> Option<u64> {
        self.entered_at_cycle
    }

    pub fn transitions_total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    pub fn transition_count(&self, from: S, to: S) -> u64 {
        self.counts[from.rank()][to.rank()]
    }

    /// The decision, given each level's check (index = rank; index 0 is unused).
    fn advance(
        &mut self,
        cycle: u64,
        min_dwell_cycles: u64,
        checks: &[LevelCheck; 4],
    ) -> Option<Transition<S>> {
        // A repeated or out-of-order cycle would corrupt dwell: ignore it.
        if self.last_cycle.is_some_and(|last| cycle <= last) {
            return None;
        }
        self.last_cycle = Some(cycle);
        let held = self.entered_at_cycle.map(|e| cycle - e);
        let from = self.state.rank();

        let (to, triggers, reason) =
            if let Some(to) = (from + 1..4).rev().find(|&l| checks[l].enter.is_some()) {
                let triggers = checks[to].enter.clone().unwrap_or_default();
                let list = describe(&triggers, "≥");
                (to, triggers, format!("entered: {list}"))
            } else if from > 0 && !(from..=from.max(2)).any(|l| checks[l].hold) {
                // A level is held by its own exit thresholds or by evidence of a higher
                // any-of level (ORANGE's LQD between exit and enter also holds YELLOW).
                // Below both: cite each index once, against its lower (binding) exit.
                let mut triggers: Vec<Trigger> = Vec::new();
                for t in (from..=from.max(2)).flat_map(|l| checks[l].below.iter()) {
                    match triggers.iter_mut().find(|e| e.index == t.index) {
                        Some(e) if t.threshold < e.threshold => *e = *t,
                        Some(_) => {}
                        None => triggers.push(*t),
                    }
                }
                let list = if triggers.is_empty() {
                    "no index available".to_string()
                } else {
                    describe(&triggers, "<")
                };
                let name = S::LEVELS[from].name();
                (from - 1, triggers, format!("{name} no longer held: {list}"))
            } else {
                return None;
            };

        if held.is_some_and(|h| h < min_dwell_cycles.max(1)) {
            return None;
        }
        let t = Transition {
            from: self.state,
            to: S::LEVELS[to],
            cycle,
            held_cycles: held,
            triggers,
            reason,
        };
        self.counts[from][to] += 1;
        self.state = t.to;
        self.entered_at_cycle = Some(cycle);
        Some(t)
    }

    /// Cycles in the current state at `cycle`; None while in the initial state.
    pub fn held_cycles(&self, cycle: u64) -> Option<u64> {
        self.entered_at_cycle.map(|e| cycle.saturating_sub(e))
    }
}

fn describe(triggers: &[Trigger], op: &str) -> String {
    triggers
        .iter()
        .map(|t| format!("{}={:.4} {op} {}", t.index, t.value, t.threshold))
        .collect::<Vec<_>>()
        .join(", ")
}

fn signals<'a>(
    bands: Vec<(&'static str, Option<Band>)>,
    value: impl Fn(&str) -> Option<f64> + 'a,
) -> Vec<(&'static str, Option<f64>, Option<Band>)> {
    bands
        .into_iter()
        .map(|(name, band)| (name, value(name), band))
        .collect()
}

impl RegimeMachine<GroupRegime> {
    /// Feeds one cycle's indices. `cycle` must increase (repeats are ignored);
    /// `cycle_secs` converts the configured seconds into cycles.
    pub fn update(
        &mut self,
        cycle: u64,
        cycle_secs: f64,
        inputs: &GroupInputs,
        cfg: &RegimeConfig,
    ) -> Option<Transition<GroupRegime>> {
        let g = &cfg.group;
        let yellow = any_of(&signals(g.yellow.bands(), |n| inputs.value(n)));
        let orange = any_of(&signals(g.orange.bands(), |n| inputs.value(n)));
        let red = persistent(Persistence {
            in_below_level: self.state == GroupRegime::Orange,
            held_cycles: self.held_cycles(cycle),
            persist_cycles: secs_to_cycles(g.red.after_orange_secs, cycle_secs),
            persist_name: "cycles_in_orange",
            below_level: &orange,
            breach_name: "dlg_over_target",
            breach: inputs.dlg_over_target(),
            band: g.red.dlg_over_target,
        });
        let checks = [LevelCheck::default(), yellow, orange, red];
        self.advance(cycle, cfg.min_dwell_cycles(cycle_secs), &checks)
    }
}

impl RegimeMachine<DeviceRegime> {
    /// Feeds one cycle's indices. `cycle` must increase (repeats are ignored);
    /// `cycle_secs` converts the configured seconds into cycles.
    pub fn update(
        &mut self,
        cycle: u64,
        cycle_secs: f64,
        inputs: &DeviceInputs,
        cfg: &RegimeConfig,
    ) -> Option<Transition<DeviceRegime>> {
        let d = &cfg.device;
        let drift = any_of(&signals(d.drift.bands(), |n| inputs.value(n)));
        let polarized = any_of(&signals(d.polarized.bands(), |n| inputs.value(n)));
        let contain = persistent(Persistence {
            in_below_level: self.state == DeviceRegime::RssPolarized,
            held_cycles: self.held_cycles(cycle),
            persist_cycles: secs_to_cycles(d.contain.after_polarized_secs, cycle_secs),
            persist_name: "cycles_in_polarized",
            below_level: &polarized,
            breach_name: "haf95_over_target",
            breach: inputs.haf95_over_target(),
            band: d.contain.haf95_over_target,
        });
        let checks = [LevelCheck::default(), drift, polarized, contain];
        self.advance(cycle, cfg.min_dwell_cycles(cycle_secs), &checks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TARGET_US: f64 = 1000.0;

    /// Defaults at 1 s cycles: dwell 3 cycles, RED/CONTAIN persistence 10 cycles.
    fn cfg() -> RegimeConfig {
        RegimeConfig::default()
    }

    fn group(lsi: f64) -> GroupInputs {
        GroupInputs {
            lsi: Some(lsi),
            dlg_target_us: TARGET_US,
            ..Default::default()
        }
    }

    fn device(qpi: f64) -> DeviceInputs {
        DeviceInputs {
            qpi: Some(qpi),
            haf95_target_us: TARGET_US,
            ..Default::default()
        }
    }

    /// Feeds `inputs` for cycles `from..to` and returns the transitions with their cycles.
    fn feed_group(
        m: &mut GroupRegimeMachine,
        cycles: std::ops::Range<u64>,
        inputs: &GroupInputs,
    ) -> Vec<Transition<GroupRegime>> {
        cycles
            .filter_map(|c| m.update(c, 1.0, inputs, &cfg()))
            .collect()
    }

    fn feed_device(
        m: &mut DeviceRegimeMachine,
        cycles: std::ops::Range<u64>,
        inputs: &DeviceInputs,
    ) -> Vec<Transition<DeviceRegime>> {
        cycles
            .filter_map(|c| m.update(c, 1.0, inputs, &cfg()))
            .collect()
    }

    fn hops<S: Regime>(ts: &[Transition<S>]) -> Vec<(S, S, u64)> {
        ts.iter().map(|t| (t.from, t.to, t.cycle)).collect()
    }

    #[test]
    fn levels_serialize_as_names() {
        use GroupRegime::*;
        let json = serde_json::to_string(&[Green, Yellow, Orange, Red]).unwrap();
        assert_eq!(json, r#"["GREEN","YELLOW","ORANGE","RED"]"#);
        let json = serde_json::to_string(&DeviceRegime::LEVELS).unwrap();
        assert_eq!(
            json,
            r#"["RSS_BALANCED","RSS_DRIFT","RSS_POLARIZED","RSS_CONTAIN"]"#
        );
        for l in GroupRegime::LEVELS {
            assert_eq!(
                serde_json::to_string(&l).unwrap(),
                format!("\"{}\"", l.name())
            );
            assert!(!l.advice().is_empty());
        }
        for l in DeviceRegime::LEVELS {
            assert_eq!(
                serde_json::to_string(&l).unwrap(),
                format!("\"{}\"", l.name())
            );
            assert!(!l.advice().is_empty());
        }
        assert_eq!(GroupRegime::Red.rank(), 3);
        assert_eq!(DeviceRegime::RssDrift.rank(), 1);
        assert!(GroupRegime::Orange
            .advice()
            .contains("cap child-order burst size"));
        assert!(GroupRegime::Orange
            .advice()
            .contains("isolate dominant peers"));
    }

    #[test]
    fn default_config_is_valid_and_round_trips() {
        let c = cfg();
        c.validate().unwrap();
        let json = serde_json::to_string(&c).unwrap();
        let back: RegimeConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn config_partial_override_keeps_other_defaults() {
        let c: RegimeConfig = serde_json::from_str(
            r#"{"min_dwell_secs": 1,
                "group": {"orange": {"lsi": {"enter": 0.8, "exit": 0.6}, "bci": null}}}"#,
        )
        .unwrap();
        assert_eq!(c.min_dwell_secs, 1.0);
        assert_eq!(c.group.orange.lsi, band(0.8, 0.6));
        assert_eq!(c.group.orange.bci, None);
        assert_eq!(
            c.group.orange.lqd_entries,
            OrangeThresholds::default().lqd_entries
        );
        assert_eq!(c.group.yellow, YellowThresholds::default());
        assert_eq!(c.device, DeviceRegimeConfig::default());
    }

    #[test]
    fn config_rejects_unknown_and_invalid() {
        assert!(serde_json::from_str::<RegimeConfig>(r#"{"min_dwell": 1}"#).is_err());
        assert!(
            serde_json::from_str::<RegimeConfig>(r#"{"group": {"orange": {"lqd": null}}}"#)
                .is_err()
        );
        let mut c = cfg();
        c.device.polarized.qpi = band(0.5, 0.9);
        let e = c.validate().unwrap_err();
        assert_eq!(e.field, "device.polarized.qpi");
        let mut c = cfg();
        c.min_dwell_secs = f64::NAN;
        assert_eq!(c.validate().unwrap_err().field, "min_dwell_secs");
    }

    #[test]
    fn seconds_become_whole_cycles() {
        assert_eq!(secs_to_cycles(3.0, 1.0), 3);
        assert_eq!(secs_to_cycles(3.0, 0.1), 30);
        assert_eq!(secs_to_cycles(3.0, 0.05), 60);
        assert_eq!(secs_to_cycles(3.0, 0.7), 5);
        assert_eq!(secs_to_cycles(0.0, 1.0), 1);
        assert_eq!(secs_to_cycles(3.0, 0.0), 3);
        assert_eq!(secs_to_cycles(f64::INFINITY, 1.0), 1);
    }

    #[test]
    fn every_band_names_an_input() {
        let g = GroupInputs {
            lsi: Some(1.0),
            hcr_1: Some(1.0),
            lqd_entries: Some(1.0),
            lqd_bytes: Some(1.0),
            bci: Some(1.0),
            dlg_us: Some(1.0),
            dlg_target_us: 1.0,
            p_hot: Some(1.0),
        };
        for (name, _) in YellowThresholds::default().bands() {
            assert!(g.value(name).is_some(), "{name}");
        }
        let d = DeviceInputs {
            qpi: Some(1.0),
            isi_normalized: Some(1.0),
            spi: Some(1.0),
            haf95_us: Some(1.0),
            haf95_target_us: 1.0,
        };
        for (name, _) in DriftThresholds::default().bands() {
            assert!(d.value(name).is_some(), "{name}");
        }
    }

    #[test]
    fn over_target_ratios() {
        let g = GroupInputs {
            dlg_us: Some(-200.0),
            dlg_target_us: 1000.0,
            ..Default::default()
        };
        assert_eq!(g.dlg_over_target(), Some(-0.2));
        let d = DeviceInputs {
            haf95_us: Some(1500.0),
            haf95_target_us: 1000.0,
            ..Default::default()
        };
        assert_eq!(d.haf95_over_target(), Some(0.5));
        let no_target = DeviceInputs {
            haf95_us: Some(1500.0),
            ..Default::default()
        };
        assert_eq!(no_target.haf95_over_target(), None);
    }

    /// GREEN → YELLOW → ORANGE → RED → ORANGE → YELLOW → GREEN, each with its cause.
    #[test]
    fn group_full_cycle_up_and_down() {
        use GroupRegime::*;
        let mut m = GroupRegimeMachine::new();
        // Balanced: nothing happens.
        assert!(feed_group(&mut m, 0..5, &group(0.05)).is_empty());
        // LSI 0.3 ≥ 0.25: YELLOW at once (the initial state owes no dwell).
        let t = feed_group(&mut m, 5..10, &group(0.3));
        assert_eq!(hops(&t), vec![(Green, Yellow, 5)]);
        assert_eq!(t[0].triggers[0].index, "lsi");
        assert_eq!(t[0].held_cycles, None);
        assert!(t[0].reason.contains("lsi=0.3000 ≥ 0.25"), "{}", t[0].reason);
        // LQD 40 ≥ 32 entries: ORANGE.
        let hot = GroupInputs {
            lqd_entries: Some(40.0),
            dlg_us: Some(-300.0),
            ..group(0.3)
        };
        let t = feed_group(&mut m, 10..15, &hot);
        assert_eq!(hops(&t), vec![(Yellow, Orange, 10)]);
        assert_eq!(t[0].held_cycles, Some(5));
        // Over budget (DLG +10 %): RED only after ORANGE has persisted 10 cycles.
        let breach = GroupInputs {
            dlg_us: Some(100.0),
            ..hot
        };
        let t = feed_group(&mut m, 15..30, &breach);
        assert_eq!(hops(&t), vec![(Orange, Red, 20)]);
        let names: Vec<_> = t[0].triggers.iter().map(|t| t.index).collect();
        assert_eq!(names[..2], ["cycles_in_orange", "dlg_over_target"]);
        assert!(names.contains(&"lqd_entries"));
        // Back to 95 % of budget: still above the exit (−0.1), RED holds.
        let near = GroupInputs {
            dlg_us: Some(-50.0),
            ..hot
        };
        assert!(feed_group(&mut m, 30..40, &near).is_empty());
        // Under 90 %: RED → ORANGE.
        let t = feed_group(&mut m, 40..45, &hot);
        assert_eq!(hops(&t), vec![(Red, Orange, 40)]);
        assert_eq!(t[0].triggers[0].index, "dlg_over_target");
        // The queue drains and skew eases into the YELLOW band: ORANGE → YELLOW.
        let easing = GroupInputs {
            lqd_entries: Some(2.0),
            ..group(0.2)
        };
        let t = feed_group(&mut m, 45..50, &easing);
        assert_eq!(hops(&t), vec![(Orange, Yellow, 45)]);
        assert!(t[0].reason.starts_with("ORANGE no longer held"));
        // LSI 0.2 is above YELLOW's exit (0.15): held. 0.1 is below: GREEN.
        let calm = GroupInputs {
            lqd_entries: Some(2.0),
            ..group(0.1)
        };
        let t = feed_group(&mut m, 50..60, &calm);
        assert_eq!(hops(&t), vec![(Yellow, Green, 50)]);
        // Below YELLOW's and ORANGE's exits: cited once, against YELLOW's.
        assert_eq!(
            t[0].reason,
            "YELLOW no longer held: lsi=0.1000 < 0.15, lqd_entries=2.0000 < 16"
        );
        assert_eq!(m.transitions_total(), 6);
        assert_eq!(m.transition_count(Orange, Red), 1);
        assert_eq!(m.transition_count(Yellow, Green), 1);
        assert_eq!(m.state(), Green);
    }

    #[test]
    fn group_escalates_past_yellow_but_red_needs_orange() {
        use GroupRegime::*;
        let mut m = GroupRegimeMachine::new();
        let worst = GroupInputs {
            bci: Some(5.0),
            dlg_us: Some(5000.0),
            ..group(2.0)
        };
        let t = feed_group(&mut m, 0..12, &worst);
        // Straight to ORANGE; RED waits for ten cycles of ORANGE.
        assert_eq!(hops(&t), vec![(Green, Orange, 0), (Orange, Red, 10)]);
        // Steps down one level at a time, each after the dwell.
        let t = feed_group(&mut m, 12..30, &group(0.0));
        assert_eq!(
            hops(&t),
            vec![(Red, Orange, 13), (Orange, Yellow, 16), (Yellow, Green, 19)]
        );
    }

    #[test]
    fn red_leaves_when_hotspot_ends_even_if_budget_is_breached() {
        use GroupRegime::*;
        let mut m = GroupRegimeMachine::new();
        let hot = GroupInputs {
            p_hot: Some(0.9),
            dlg_us: Some(500.0),
            ..group(0.0)
        };
        let t = feed_group(&mut m, 0..11, &hot);
        assert_eq!(hops(&t), vec![(Green, Orange, 0), (Orange, Red, 10)]);
        // Budget still breached but no hotspot (P_hot below ORANGE's exit 0.5): RED goes.
        let cold = GroupInputs {
            p_hot: Some(0.3),
            ..hot
        };
        let t = feed_group(&mut m, 11..14, &cold);
        assert_eq!(hops(&t), vec![(Red, Orange, 13)]);
        assert!(t[0].triggers.iter().any(|t| t.index == "p_hot"));
    }

    #[test]
    fn yellow_held_by_orange_evidence() {
        use GroupRegime::*;
        let mut m = GroupRegimeMachine::new();
        feed_group(&mut m, 0..5, &group(0.3));
        assert_eq!(m.state(), Yellow);
        // LSI is calm, but LQD sits between ORANGE's exit and enter: still YELLOW.
        let debt = GroupInputs {
            lqd_entries: Some(20.0),
            ..group(0.0)
        };
        assert!(feed_group(&mut m, 5..20, &debt).is_empty());
        let t = feed_group(&mut m, 20..25, &group(0.0));
        assert_eq!(hops(&t), vec![(Yellow, Green, 20)]);
    }

    #[test]
    fn dwell_delays_and_hysteresis_holds() {
        use GroupRegime::*;
        let mut m = GroupRegimeMachine::new();
        assert!(m.update(0, 1.0, &group(0.3), &cfg()).is_some());
        // Dropping right away waits for the 3-cycle dwell.
        assert!(m.update(1, 1.0, &group(0.0), &cfg()).is_none());
        assert!(m.update(2, 1.0, &group(0.0), &cfg()).is_none());
        let t = m.update(3, 1.0, &group(0.0), &cfg()).unwrap();
        assert_eq!((t.from, t.to, t.held_cycles), (Yellow, Green, Some(3)));
        // Escalation waits for the dwell too.
        assert!(m.update(4, 1.0, &group(0.6), &cfg()).is_none());
        assert!(m.update(5, 1.0, &group(0.6), &cfg()).is_none());
        assert_eq!(m.update(6, 1.0, &group(0.6), &cfg()).unwrap().to, Orange);
        // Between ORANGE's exit (0.35) and enter (0.5): stays.
        assert!(feed_group(&mut m, 7..50, &group(0.4)).is_empty());
        // Between YELLOW's exit and enter, below ORANGE's: only one step down.
        let t = feed_group(&mut m, 50..100, &group(0.2));
        assert_eq!(hops(&t), vec![(Orange, Yellow, 50)]);
    }

    #[test]
    fn repeated_cycle_is_ignored() {
        let mut m = GroupRegimeMachine::new();
        assert!(m.update(7, 1.0, &group(0.3), &cfg()).is_some());
        assert!(m.update(7, 1.0, &group(0.9), &cfg()).is_none());
        assert!(m.update(3, 1.0, &group(0.9), &cfg()).is_none());
        assert_eq!(m.state(), GroupRegime::Yellow);
    }

    #[test]
    fn missing_indices_step_down_with_reason() {
        let mut m = GroupRegimeMachine::new();
        feed_group(&mut m, 0..3, &group(0.3));
        let t = feed_group(&mut m, 3..6, &GroupInputs::default());
        assert_eq!(t.len(), 1);
        assert!(t[0].triggers.is_empty());
        assert!(
            t[0].reason.contains("no index available"),
            "{}",
            t[0].reason
        );
        assert_eq!(
            t[0].to_string(),
            "YELLOW -> GREEN at cycle 3: YELLOW no longer held: no index available"
        );
    }

    #[test]
    fn same_wall_time_at_any_cycle_length() {
        // One script in seconds, run at 50 ms and at 1 s: transitions land at the same
        // wall time (to within a cycle).
        let script = |t_secs: f64| -> GroupInputs {
            if t_secs < 5.0 {
                group(0.0)
            } else if t_secs < 30.0 {
                GroupInputs {
                    bci: Some(4.0),
                    dlg_us: Some(200.0),
                    ..group(0.0)
                }
            } else {
                group(0.0)
            }
        };
        let run = |cycle_secs: f64| -> Vec<(GroupRegime, f64)> {
            let mut m = GroupRegimeMachine::new();
            let n = (60.0 / cycle_secs).round() as u64;
            (0..n)
                .filter_map(|c| {
                    let t = c as f64 * cycle_secs;
                    m.update(c, cycle_secs, &script(t), &cfg())
                        .map(|tr| (tr.to, t))
                })
                .collect()
        };
        let fast = run(0.05);
        let slow = run(1.0);
        assert_eq!(fast.len(), slow.len());
        assert_eq!(fast.len(), 5, "{fast:?}");
        for ((a, ta), (b, tb)) in fast.iter().zip(&slow) {
            assert_eq!(a, b);
            assert!((ta - tb).abs() <= 1.0, "{a}: {ta} vs {tb}");
        }
    }

    /// RSS_BALANCED → DRIFT → POLARIZED → CONTAIN → POLARIZED → DRIFT → BALANCED.
    #[test]
    fn device_full_cycle_up_and_down() {
        use DeviceRegime::*;
        let mut m = DeviceRegimeMachine::new();
        assert!(feed_device(&mut m, 0..5, &device(0.1)).is_empty());
        // Softirq skew alone: DRIFT.
        let skew = DeviceInputs {
            spi: Some(0.25),
            ..device(0.1)
        };
        let t = feed_device(&mut m, 5..10, &skew);
        assert_eq!(hops(&t), vec![(RssBalanced, RssDrift, 5)]);
        assert_eq!(t[0].triggers[0].index, "spi");
        // Hot queue carries 2.5× the mean: POLARIZED.
        let polar = DeviceInputs {
            isi_normalized: Some(0.3),
            ..device(1.5)
        };
        let t = feed_device(&mut m, 10..15, &polar);
        assert_eq!(hops(&t), vec![(RssDrift, RssPolarized, 10)]);
        // HAF95 over its target: CONTAIN after ten cycles of POLARIZED.
        let late = DeviceInputs {
            haf95_us: Some(1200.0),
            ..polar
        };
        let t = feed_device(&mut m, 15..30, &late);
        assert_eq!(hops(&t), vec![(RssPolarized, RssContain, 20)]);
        assert_eq!(t[0].triggers[1].index, "haf95_over_target");
        // HAF95 at 85 % of target (below the exit, −0.1): back to POLARIZED.
        let better = DeviceInputs {
            haf95_us: Some(850.0),
            ..polar
        };
        let t = feed_device(&mut m, 30..35, &better);
        assert_eq!(hops(&t), vec![(RssContain, RssPolarized, 30)]);
        // Flattened table: QPI 0.4 is in DRIFT's band only.
        let t = feed_device(&mut m, 35..40, &device(0.4));
        assert_eq!(hops(&t), vec![(RssPolarized, RssDrift, 35)]);
        let t = feed_device(&mut m, 40..45, &device(0.1));
        assert_eq!(hops(&t), vec![(RssDrift, RssBalanced, 40)]);
        assert_eq!(m.transitions_total(), 6);
    }

    #[test]
    fn device_skips_to_polarized_and_contain_needs_persistence() {
        use DeviceRegime::*;
        let mut m = DeviceRegimeMachine::new();
        let worst = DeviceInputs {
            haf95_us: Some(3000.0),
            ..device(3.0)
        };
        let t = feed_device(&mut m, 0..5, &worst);
        assert_eq!(hops(&t), vec![(RssBalanced, RssPolarized, 0)]);
        // Without a HAF95 target there is no deadline risk: no CONTAIN, ever.
        let untargeted = DeviceInputs {
            haf95_target_us: 0.0,
            ..worst
        };
        assert!(feed_device(&mut m, 5..50, &untargeted).is_empty());
        let t = feed_device(&mut m, 50..52, &worst);
        assert_eq!(hops(&t), vec![(RssPolarized, RssContain, 50)]);
        // Polarization gone while HAF95 stays high: CONTAIN → POLARIZED (not held),
        // then HAF95 alone (over POLARIZED's exit) holds POLARIZED.
        let t = feed_device(
            &mut m,
            52..80,
            &DeviceInputs {
                qpi: Some(0.0),
                ..worst
            },
        );
        assert_eq!(hops(&t), vec![(RssContain, RssPolarized, 53)]);
    }

    // Property tests.

    fn arb_opt(range: std::ops::Range<f64>) -> impl Strategy<Value = Option<f64>> {
        prop_oneof![1 => Just(None), 4 => range.prop_map(Some)]
    }

    fn arb_group() -> impl Strategy<Value = GroupInputs> {
        (
            arb_opt(0.0..1.5),
            arb_opt(0.0..1.0),
            arb_opt(0.0..80.0),
            arb_opt(-1500.0..1500.0),
            arb_opt(1.0..6.0),
            arb_opt(0.0..1.0),
        )
            .prop_map(|(lsi, hcr_1, lqd, dlg, bci, p_hot)| GroupInputs {
                lsi,
                hcr_1,
                lqd_entries: lqd,
                lqd_bytes: None,
                bci,
                dlg_us: dlg,
                dlg_target_us: TARGET_US,
                p_hot,
            })
    }

    fn arb_device() -> impl Strategy<Value = DeviceInputs> {
        (
            arb_opt(0.0..3.0),
            arb_opt(0.0..1.0),
            arb_opt(0.0..1.0),
            arb_opt(0.0..2500.0),
        )
            .prop_map(|(qpi, isi, spi, haf)| DeviceInputs {
                qpi,
                isi_normalized: isi,
                spi,
                haf95_us: haf,
                haf95_target_us: TARGET_US,
            })
    }

    /// Checks the dwell and the transition bound over one run, returning the transitions.
    fn check_run<S: Regime>(
        transitions: &[Transition<S>],
        cycles: u64,
        dwell: u64,
    ) -> Result<(), TestCaseError> {
        let mut last: Option<u64> = None;
        for t in transitions {
            if let Some(prev) = last {
                prop_assert!(
                    t.cycle - prev >= dwell,
                    "dwell violated: {prev} -> {}",
                    t.cycle
                );
                prop_assert_eq!(t.held_cycles, Some(t.cycle - prev));
            } else {
                prop_assert_eq!(t.held_cycles, None);
            }
            prop_assert!(
                t.to.rank() + 1 >= t.from.rank(),
                "down by more than one level"
            );
            prop_assert_ne!(t.from, t.to);
            last = Some(t.cycle);
        }
        prop_assert!(transitions.len() as u64 <= 1 + (cycles - 1) / dwell);
        Ok(())
    }

    proptest! {
        /// Dwell is never violated and down-steps are single, for arbitrary inputs
        /// (including missing ones) and any dwell and cycle length.
        #[test]
        fn group_dwell_never_violated(
            seq in proptest::collection::vec(arb_group(), 1..400),
            dwell_secs in 0.0f64..8.0,
            cycle_secs in prop_oneof![Just(0.05), Just(0.2), Just(1.0)],
        ) {
            let c = RegimeConfig { min_dwell_secs: dwell_secs, ..cfg() };
            let dwell = c.min_dwell_cycles(cycle_secs);
            let mut m = GroupRegimeMachine::new();
            let ts: Vec<_> = seq.iter().enumerate()
                .filter_map(|(i, x)| m.update(i as u64, cycle_secs, x, &c))
                .collect();
            check_run(&ts, seq.len() as u64, dwell)?;
            for t in &ts {
                // RED is only ever entered from ORANGE.
                if t.to == GroupRegime::Red {
                    prop_assert_eq!(t.from, GroupRegime::Orange);
                }
                // Every trigger is a finite value that was actually present.
                for tr in &t.triggers {
                    prop_assert!(tr.value.is_finite());
                }
            }
        }

        #[test]
        fn device_dwell_never_violated(
            seq in proptest::collection::vec(arb_device(), 1..400),
            dwell_secs in 0.0f64..8.0,
        ) {
            let c = RegimeConfig { min_dwell_secs: dwell_secs, ..cfg() };
            let dwell = c.min_dwell_cycles(1.0);
            let mut m = DeviceRegimeMachine::new();
            let ts: Vec<_> = seq.iter().enumerate()
                .filter_map(|(i, x)| m.update(i as u64, 1.0, x, &c))
                .collect();
            check_run(&ts, seq.len() as u64, dwell)?;
            for t in &ts {
                if t.to == DeviceRegime::RssContain {
                    prop_assert_eq!(t.from, DeviceRegime::RssPolarized);
                }
            }
        }

        /// Noise around a threshold for 1000 cycles: with the default dwell, transitions
        /// stay within cycles / dwell and every state is held at least the dwell.
        #[test]
        fn noise_around_threshold_is_bounded(
            noise in proptest::collection::vec(-1.0f64..1.0, 1000),
            amplitude in 0.0f64..0.2,
            which in 0usize..4,
        ) {
            // LSI around each of its four thresholds.
            let centre = [0.25, 0.15, 0.5, 0.35][which];
            let c = cfg();
            let dwell = c.min_dwell_cycles(1.0);
            let mut m = GroupRegimeMachine::new();
            let ts: Vec<_> = noise.iter().enumerate()
                .filter_map(|(i, n)| m.update(i as u64, 1.0, &group(centre + amplitude * n), &c))
                .collect();
            check_run(&ts, 1000, dwell)?;
            prop_assert!(ts.len() as u64 <= 1000 / dwell);
        }

        /// Hysteresis on its own (dwell = one cycle): noise narrower than the band cannot
        /// make a state flap. Around an enter threshold the state enters at most once and
        /// never leaves; around an exit threshold it leaves at most once and never returns.
        #[test]
        fn hysteresis_without_dwell(
            noise in proptest::collection::vec(-1.0f64..1.0, 1000),
            frac in 0.0f64..0.99,
            at_exit in any::<bool>(),
        ) {
            let c = RegimeConfig { min_dwell_secs: 0.0, ..cfg() };
            let b = c.group.yellow.lsi.unwrap();
            let half_gap = (b.enter - b.exit) * frac;
            let mut m = GroupRegimeMachine::new();
            let mut start = 0;
            if at_exit {
                m.update(0, 1.0, &group(b.enter), &c).unwrap();
                start = 1;
            }
            let centre = if at_exit { b.exit } else { b.enter };
            let ts: Vec<_> = noise.iter().enumerate()
                .filter_map(|(i, n)| {
                    m.update(start + i as u64, 1.0, &group(centre + half_gap * n), &c)
                })
                .collect();
            prop_assert!(ts.len() <= 1, "{:?}", hops(&ts));
        }

        /// All-missing inputs never escalate, from whatever state arbitrary inputs left.
        #[test]
        fn missing_inputs_never_escalate(
            prefix in proptest::collection::vec(arb_group(), 0..60),
            dprefix in proptest::collection::vec(arb_device(), 0..60),
        ) {
            let c = cfg();
            let mut g = GroupRegimeMachine::new();
            for (i, x) in prefix.iter().enumerate() {
                g.update(i as u64, 1.0, x, &c);
            }
            let none = GroupInputs { dlg_target_us: TARGET_US, ..Default::default() };
            for i in prefix.len()..prefix.len() + 50 {
                if let Some(t) = g.update(i as u64, 1.0, &none, &c) {
                    prop_assert!(t.to.rank() < t.from.rank());
                }
            }
            prop_assert_eq!(g.state(), GroupRegime::Green);

            let mut d = DeviceRegimeMachine::new();
            for (i, x) in dprefix.iter().enumerate() {
                d.update(i as u64, 1.0, x, &c);
            }
            let none = DeviceInputs { haf95_target_us: TARGET_US, ..Default::default() };
            for i in dprefix.len()..dprefix.len() + 50 {
                if let Some(t) = d.update(i as u64, 1.0, &none, &c) {
                    prop_assert!(t.to.rank() < t.from.rank());
                }
            }
            prop_assert_eq!(d.state(), DeviceRegime::RssBalanced);
        }

        /// An upward transition cites at least one index, and only indices present in
        /// that cycle's inputs, with their values.
        #[test]
        fn up_triggers_cite_present_indices(seq in proptest::collection::vec(arb_group(), 1..200)) {
            let c = cfg();
            let mut m = GroupRegimeMachine::new();
            for (i, x) in seq.iter().enumerate() {
                if let Some(t) = m.update(i as u64, 1.0, x, &c) {
                    if t.to.rank() > t.from.rank() {
                        prop_assert!(!t.triggers.is_empty());
                        for tr in &t.triggers {
                            if tr.index.starts_with("cycles_in_") { continue; }
                            let v = x.value(tr.index);
                            prop_assert_eq!(v, Some(tr.value), "{}", tr.index);
                        }
                    }
                }
            }
        }
    }
}
