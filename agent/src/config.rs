//! Run settings from three places, resolved once at start:
//! flags > OpenTelemetry environment variables > config file (TOML) > defaults.
//!
//! The environment follows the OpenTelemetry conventions
//! (<https://opentelemetry.io/docs/specs/otel/protocol/exporter/>): a metrics-specific
//! `OTEL_EXPORTER_OTLP_METRICS_*` variable wins over its generic `OTEL_EXPORTER_OTLP_*`
//! twin, timeouts and intervals are milliseconds, headers are `k=v,k2=v2` with
//! percent-encoded values, and an unparsable value is warned about and ignored. Resolution
//! is pure: the environment comes in as a lookup function so tests need not touch the
//! process's. docs/configuration.md documents every key, flag and variable.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::collect::probe_budget::{ProbeSampling, DEFAULT_CPU_BUDGET, DEFAULT_PACKET_COST_NS};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Parse { path: PathBuf, msg: String },
    #[error("{what}: {msg}")]
    Invalid { what: String, msg: String },
}

fn invalid(what: &str, msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        what: what.to_string(),
        msg: msg.into(),
    }
}

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (port 4317 by convention).
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP/HTTP with protobuf bodies (port 4318 by convention).
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

impl OtlpProtocol {
    fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "grpc" => Some(Self::Grpc),
            "http/protobuf" => Some(Self::HttpProtobuf),
            _ => None,
        }
    }
}

/// Compression of export requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtlpCompression {
    None,
    Gzip,
}

impl OtlpCompression {
    fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "none" => Some(Self::None),
            "gzip" => Some(Self::Gzip),
            _ => None,
        }
    }
}

/// The config file (`--config FILE`, TOML). Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Seconds between collections (`--interval`; default 1).
    pub interval_secs: Option<f64>,
    /// OTLP export. Without an endpoint (here, in a flag or in the environment) nothing
    /// is exported.
    #[serde(default)]
    pub otlp: OtlpFile,
    /// The Prometheus endpoint.
    #[serde(default)]
    pub prometheus: PrometheusFile,
    /// Cardinality bounds: how many elements of each report array become series.
    #[serde(default)]
    pub limits: LimitsFile,
    /// Extra OpenTelemetry resource attributes.
    #[serde(default)]
    pub resource: ResourceFile,
    /// Index targets, regime thresholds, P_hot weights (docs/regimes.md).
    #[serde(default)]
    pub model: ModelFile,
    /// Live shadow replay of candidate reuseport selectors (docs/shadow.md).
    #[serde(default)]
    pub shadow: ShadowFile,
    /// The probe budget: how much of a CPU the per-packet probes may take.
    #[serde(default)]
    pub probes: ProbesFile,
}

/// `[probes]`: by default the per-packet probes may take 1.5% of each CPU
/// (agent/src/collect/probe_budget.rs); above that they are duty-cycled.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbesFile {
    /// Fraction of each CPU the per-packet probes may take (default 0.015).
    pub cpu_budget: Option<f64>,
    /// Their cost per received packet, in nanoseconds, until the agent has measured it
    /// (default 400: all default probes on the VM `make bench` ran on); with
    /// `calibrate = false`, the cost used throughout.
    pub packet_cost_ns: Option<f64>,
    /// Measure that cost with the kernel's BPF run-time stats, 200 ms at start and every
    /// minute (default true).
    pub calibrate: Option<bool>,
    /// Attach them for this fraction of every period instead, whatever the load.
    pub duty: Option<f64>,
    /// Attach them all the time: exact counts at any cost (`--probe-budget off`).
    #[serde(default)]
    pub continuous: bool,
    /// Where per-listener events come from: "auto" (default: the first the kernel
    /// accepts of "tp_btf" sock:sk_data_ready, "fentry" and "kprobe" on
    /// sock_def_readable), or one of those only (`--listener-hook`).
    pub listener_hook: Option<String>,
    /// Where UDP reads are aged: "auto" (default: the first the kernel accepts of
    /// "fentry" and "kprobe" on skb_consume_udp, then "tracepoints"
    /// sock:sock_recv_length + sock:sk_data_ready), or one of those only
    /// (`--rx-read-hook`).
    pub rx_read_hook: Option<String>,
    /// Of the packets to watched ports, 1 in N on average is timestamped for ingress
    /// ages (default 16; 1: every one, `--age-sample-every`).
    pub age_sample_every: Option<u32>,
    /// Exact SO_REUSEPORT selections (per-listener `selections` and their hashes):
    /// "off" (default), "auto" (fexit, else kprobe + kretprobe on
    /// reuseport_select_sock), "fexit" or "kprobe" (only that hook). Opt-in: it runs
    /// once per datagram and SYN to a reuseport group (docs/configuration.md).
    pub selection_hook: Option<SelectionHookSetting>,
}

/// The probes' hooks and age sampling, resolved (`None`: the probe picks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeChoices {
    pub listener_hook: Option<skewscope_probes::ListenerHook>,
    pub rx_read_hook: Option<skewscope_probes::ReadHook>,
    pub age_sample_every: u32,
}

impl Default for ProbeChoices {
    fn default() -> Self {
        Self {
            listener_hook: None,
            rx_read_hook: None,
            age_sample_every: skewscope_probes::RxConfig::default().age_sample_every,
        }
    }
}

/// `[probes] selection_hook` / `--selection-hook`: which hook counts exact reuseport
/// selections, if any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SelectionHookSetting {
    #[default]
    Off,
    Auto,
    Fexit,
    Kprobe,
}

impl SelectionHookSetting {
    /// What the probe is asked to try; None when off.
    pub fn choice(self) -> Option<skewscope_probes::SelectionChoice> {
        use skewscope_probes::{SelectionChoice, SelectionHook};
        match self {
            Self::Off => None,
            Self::Auto => Some(SelectionChoice::Auto),
            Self::Fexit => Some(SelectionChoice::Only(SelectionHook::Fexit)),
            Self::Kprobe => Some(SelectionChoice::Only(SelectionHook::Kprobe)),
        }
    }
}

/// The hook and sampling flags, each winning over `[probes]` when given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProbeChoiceFlags {
    pub listener_hook: Option<String>,
    pub rx_read_hook: Option<String>,
    pub age_sample_every: Option<u32>,
}

/// `--listener-hook`, `--rx-read-hook`, `--age-sample-every`, else `[probes]`.
pub fn resolve_probe_choices(
    flags: &ProbeChoiceFlags,
    file: &ProbesFile,
) -> Result<ProbeChoices, ConfigError> {
    fn hook<T>(
        what: &str,
        value: Option<&str>,
        from_key: impl Fn(&str) -> Option<T>,
        keys: &[&str],
    ) -> Result<Option<T>, ConfigError> {
        match value.map(str::trim) {
            None | Some("auto") => Ok(None),
            Some(key) => from_key(key).map(Some).ok_or_else(|| {
                invalid(
                    what,
                    format!("{key:?} is not one of auto, {}", keys.join(", ")),
                )
            }),
        }
    }
    let (listener_what, listener) = match &flags.listener_hook {
        Some(v) => ("--listener-hook", Some(v.as_str())),
        None => ("probes.listener_hook", file.listener_hook.as_deref()),
    };
    let (read_what, read) = match &flags.rx_read_hook {
        Some(v) => ("--rx-read-hook", Some(v.as_str())),
        None => ("probes.rx_read_hook", file.rx_read_hook.as_deref()),
    };
    let listener_keys: Vec<&str> = skewscope_probes::ListenerHook::ALL
        .iter()
        .map(|h| h.key())
        .collect();
    let read_keys: Vec<&str> = skewscope_probes::ReadHook::ALL
        .iter()
        .map(|h| h.key())
        .collect();
    let age_sample_every = match (flags.age_sample_every, file.age_sample_every) {
        (Some(0), _) => return Err(invalid("--age-sample-every", "must be at least 1")),
        (None, Some(0)) => return Err(invalid("probes.age_sample_every", "must be at least 1")),
        (Some(n), _) | (None, Some(n)) => n,
        (None, None) => ProbeChoices::default().age_sample_every,
    };
    Ok(ProbeChoices {
        listener_hook: hook(
            listener_what,
            listener,
            skewscope_probes::ListenerHook::from_key,
            &listener_keys,
        )?,
        rx_read_hook: hook(
            read_what,
            read,
            skewscope_probes::ReadHook::from_key,
            &read_keys,
        )?,
        age_sample_every,
    })
}

impl std::str::FromStr for SelectionHookSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Self::Off),
            "auto" => Ok(Self::Auto),
            "fexit" => Ok(Self::Fexit),
            "kprobe" => Ok(Self::Kprobe),
            _ => Err(format!("{s:?} is not one of off, auto, fexit, kprobe")),
        }
    }
}

/// The probe sampling from `--probe-budget` (a fraction, or "off"), else `[probes]`.
pub fn resolve_probe_sampling(
    flag: Option<ProbeBudgetFlag>,
    file: &ProbesFile,
) -> Result<ProbeSampling, ConfigError> {
    let fraction = |what: &str, v: f64| {
        if v > 0.0 && v <= 1.0 {
            Ok(v)
        } else {
            Err(invalid(what, format!("{v} is outside (0, 1]")))
        }
    };
    let packet_cost_ns = match file.packet_cost_ns {
        Some(ns) if !(ns > 0.0 && ns <= 1e6) => {
            return Err(invalid(
                "probes.packet_cost_ns",
                format!("{ns} is outside (0, 1e6] ns"),
            ))
        }
        Some(ns) => ns,
        None => DEFAULT_PACKET_COST_NS,
    };
    let budget = |cpu_fraction| ProbeSampling::Budget {
        cpu_fraction,
        packet_cost_ns,
        calibrate: file.calibrate.unwrap_or(true),
    };
    match flag {
        Some(ProbeBudgetFlag::Off) => return Ok(ProbeSampling::Continuous),
        Some(ProbeBudgetFlag::Fraction(f)) => return Ok(budget(fraction("--probe-budget", f)?)),
        None => {}
    }
    let set = [
        file.continuous,
        file.duty.is_some(),
        file.cpu_budget.is_some(),
    ];
    if set.iter().filter(|s| **s).count() > 1 {
        return Err(invalid(
            "probes",
            "continuous, duty and cpu_budget exclude each other",
        ));
    }
    if file.continuous {
        Ok(ProbeSampling::Continuous)
    } else if let Some(duty) = file.duty {
        Ok(ProbeSampling::Fixed {
            duty: fraction("probes.duty", duty)?,
        })
    } else {
        Ok(budget(fraction(
            "probes.cpu_budget",
            file.cpu_budget.unwrap_or(DEFAULT_CPU_BUDGET),
        )?))
    }
}

/// `--probe-budget`: a fraction of each CPU, or `off` (probes attached all the time).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProbeBudgetFlag {
    Off,
    Fraction(f64),
}

impl std::str::FromStr for ProbeBudgetFlag {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "off" {
            return Ok(Self::Off);
        }
        match s.parse::<f64>() {
            Ok(v) if v > 0.0 && v <= 1.0 => Ok(Self::Fraction(v)),
            _ => Err(format!(
                "{s:?} is neither a fraction of a CPU in (0, 1] nor \"off\""
            )),
        }
    }
}

/// `[shadow]`: live shadow replay in `run`. Off unless candidates are given.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowFile {
    /// Selectors replayed beside the kernel default: `builtin:NAME` or a path to an ELF
    /// object (`--shadow-candidate` replaces the list). Empty: no live replay (default).
    #[serde(default)]
    pub candidates: Vec<String>,
    /// Seconds between replays of the flows observed since the last one (default 30).
    pub interval_secs: Option<f64>,
    /// Heaviest flows replayed per group (default 5000).
    pub max_flows: Option<usize>,
}

/// Resolved live-replay settings; `candidates` empty means off.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowConfig {
    pub candidates: Vec<skewscope_shadow::Candidate>,
    pub interval: Duration,
    pub max_flows: usize,
}

pub const DEFAULT_SHADOW_INTERVAL_SECS: f64 = 30.0;
pub const DEFAULT_SHADOW_MAX_FLOWS: usize = 5000;
/// Most candidates besides the default: each costs a replay per group per interval, and
/// the `policy` attribute must stay bounded.
pub const MAX_SHADOW_CANDIDATES: usize = 8;
/// The most flows one replay may take: what the live accumulator holds over all groups
/// (`shadow_live::MAX_ACCUMULATED_FLOWS`; the engine replays ~400k UDP samples/s).
pub const MAX_SHADOW_FLOWS: usize = 65_536;

impl ShadowConfig {
    pub fn enabled(&self) -> bool {
        !self.candidates.is_empty()
    }
}

/// `[shadow]` with `--shadow-candidate` flags (which replace the file's list when given),
/// validated: a candidate that does not parse is an error naming it.
pub fn resolve_shadow(flags: &[String], file: &ShadowFile) -> Result<ShadowConfig, ConfigError> {
    let (specs, what) = if flags.is_empty() {
        (&file.candidates[..], "shadow.candidates")
    } else {
        (flags, "--shadow-candidate")
    };
    let mut candidates: Vec<skewscope_shadow::Candidate> = Vec::new();
    for spec in specs {
        let c = spec
            .parse::<skewscope_shadow::Candidate>()
            .map_err(|e| invalid(what, e.to_string()))?;
        if c.is_default() {
            // The default is always replayed, as the reference.
            continue;
        }
        if !candidates.contains(&c) {
            candidates.push(c);
        }
    }
    if candidates.len() > MAX_SHADOW_CANDIDATES {
        return Err(invalid(
            what,
            format!(
                "{} candidates; at most {MAX_SHADOW_CANDIDATES} (each is replayed per group \
                 every interval)",
                candidates.len()
            ),
        ));
    }
    let interval = secs(
        "shadow.interval_secs",
        file.interval_secs.unwrap_or(DEFAULT_SHADOW_INTERVAL_SECS),
    )?;
    let max_flows = file.max_flows.unwrap_or(DEFAULT_SHADOW_MAX_FLOWS);
    if !(1..=MAX_SHADOW_FLOWS).contains(&max_flows) {
        return Err(invalid(
            "shadow.max_flows",
            format!("{max_flows} is outside 1..={MAX_SHADOW_FLOWS}"),
        ));
    }
    Ok(ShadowConfig {
        candidates,
        interval,
        max_flows,
    })
}

/// `[model]`: what changes the numbers and the regimes, not what is collected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// The ingress-age p95 budget (µs) DLG is measured against (default 1000).
    pub ingress_age_target_us: Option<f64>,
    /// The hot-queue ingress-age p95 budget (µs) for HAF95 and RSS_CONTAIN (default 1000).
    pub haf95_target_us: Option<f64>,
    /// The rolling window of BCI (default 60 s of 1 s windows).
    pub bci_window_secs: Option<f64>,
    /// A queue is hot when it carries this many times the mean queue's packets (1.5).
    pub hot_queue_factor: Option<f64>,
    /// Flows listed per group in the report, heaviest first (default 10).
    pub top_flows: Option<usize>,
    /// Enter/exit thresholds and dwell of the regimes; unset keys keep their defaults.
    pub regimes: Option<crate::model::regime::RegimeConfig>,
    /// P_hot weights and feature scales.
    pub hotspot: Option<crate::model::hotspot::HotspotConfig>,
    /// Listener ingress-state estimator.
    pub estimator: Option<crate::model::estimator::EstimatorConfig>,
}

impl FileConfig {
    /// The model settings: defaults overridden by `[model]`, validated.
    pub fn model_config(&self) -> Result<crate::model::ModelConfig, ConfigError> {
        let m = &self.model;
        let mut cfg = crate::model::ModelConfig::default();
        let positive = |what: &str, v: Option<f64>, into: &mut f64| -> Result<(), ConfigError> {
            match v {
                Some(x) if !(x.is_finite() && x > 0.0) => Err(invalid(
                    &format!("model.{what}"),
                    format!("{x} is not a positive number"),
                )),
                Some(x) => {
                    *into = x;
                    Ok(())
                }
                None => Ok(()),
            }
        };
        positive(
            "ingress_age_target_us",
            m.ingress_age_target_us,
            &mut cfg.listener.ingress_age_target_us,
        )?;
        positive(
            "haf95_target_us",
            m.haf95_target_us,
            &mut cfg.states.haf95_target_us,
        )?;
        positive(
            "bci_window_secs",
            m.bci_window_secs,
            &mut cfg.listener.bci_window_secs,
        )?;
        positive(
            "hot_queue_factor",
            m.hot_queue_factor,
            &mut cfg.hot_queue_factor,
        )?;
        match m.top_flows {
            Some(0) => return Err(invalid("model.top_flows", "0: list at least 1")),
            Some(n) => cfg.listener.top_flows = n,
            None => {}
        }
        if let Some(r) = m.regimes {
            r.validate()
                .map_err(|e| invalid("model.regimes", e.to_string()))?;
            cfg.states.regime = r;
        }
        if let Some(h) = m.hotspot {
            cfg.states.hotspot = h;
        }
        if let Some(e) = m.estimator {
            cfg.states.estimator = e;
        }
        Ok(cfg)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpFile {
    /// Collector URL: `http://collector:4317` (gRPC) or `http://collector:4318` (HTTP,
    /// where `/v1/metrics` is appended unless the URL already ends with it).
    pub endpoint: Option<String>,
    /// `grpc` or `http/protobuf` (default, as the OTLP specification recommends).
    pub protocol: Option<OtlpProtocol>,
    /// Headers sent with every export, e.g. `{ "x-api-key" = "…" }`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Deadline of one export, retries included (default 10).
    pub timeout_secs: Option<f64>,
    /// `gzip` or `none` (default).
    pub compression: Option<OtlpCompression>,
    /// Seconds between exports (default 10).
    pub export_interval_secs: Option<f64>,
    /// PEM file of the CA(s) that sign the collector's certificate (https endpoints).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (needs `client_key_file`).
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
    /// Plaintext for an endpoint given without a scheme (`host:port`); default false (TLS).
    pub insecure: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusFile {
    /// Address to serve `/metrics` (and `/healthz`, `/readyz`) on, e.g.
    /// `127.0.0.1:9464`. Absent: no endpoint.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// CPUs exported per per-CPU metric (default 1024).
    pub max_cpus: Option<usize>,
    /// Network devices exported (default 16).
    pub max_devices: Option<usize>,
    /// RX queues exported per device (default 64).
    pub max_queues_per_device: Option<usize>,
    /// SO_REUSEPORT groups exported (default 32).
    pub max_groups: Option<usize>,
    /// Listeners exported per group (default 32).
    pub max_listeners_per_group: Option<usize>,
    /// Heaviest flows exported per group (default 10).
    pub top_flows: Option<usize>,
    /// Source statuses exported (default 128).
    pub max_sources: Option<usize>,
}

/// A bound on how many elements of one report array become series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Limit {
    Cpus,
    Devices,
    QueuesPerDevice,
    Groups,
    ListenersPerGroup,
    TopFlows,
    Sources,
}

impl Limit {
    pub const ALL: [Limit; 7] = [
        Limit::Cpus,
        Limit::Devices,
        Limit::QueuesPerDevice,
        Limit::Groups,
        Limit::ListenersPerGroup,
        Limit::TopFlows,
        Limit::Sources,
    ];

    /// The config key (and `limit` attribute value) of this bound.
    pub fn key(self) -> &'static str {
        match self {
            Limit::Cpus => "max_cpus",
            Limit::Devices => "max_devices",
            Limit::QueuesPerDevice => "max_queues_per_device",
            Limit::Groups => "max_groups",
            Limit::ListenersPerGroup => "max_listeners_per_group",
            Limit::TopFlows => "top_flows",
            Limit::Sources => "max_sources",
        }
    }
}

/// Cardinality bounds: how many elements of each report array are exported. Elements
/// beyond a bound are dropped in report order (the report lists flows heaviest first)
/// and counted in `skewscope.agent.cardinality.capped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_cpus: usize,
    pub max_devices: usize,
    pub max_queues_per_device: usize,
    pub max_groups: usize,
    pub max_listeners_per_group: usize,
    pub top_flows: usize,
    pub max_sources: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_cpus: 1024,
            max_devices: 16,
            max_queues_per_device: 64,
            max_groups: 32,
            max_listeners_per_group: 32,
            top_flows: 10,
            max_sources: 128,
        }
    }
}

impl Limits {
    pub fn get(&self, limit: Limit) -> usize {
        match limit {
            Limit::Cpus => self.max_cpus,
            Limit::Devices => self.max_devices,
            Limit::QueuesPerDevice => self.max_queues_per_device,
            Limit::Groups => self.max_groups,
            Limit::ListenersPerGroup => self.max_listeners_per_group,
            Limit::TopFlows => self.top_flows,
            Limit::Sources => self.max_sources,
        }
    }

    /// Every bound must be at least 1. The sinks check the products of the bounds
    /// against the OpenTelemetry SDK's series cap (`sinks::catalog::check_series_cap`).
    pub fn validate(&self) -> Result<(), String> {
        for l in Limit::ALL {
            if self.get(l) == 0 {
                return Err(format!("{} must be at least 1", l.key()));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceFile {
    /// Attributes added to the resource, e.g. `{ "deployment.environment.name" = "prod" }`.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

impl FileConfig {
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }
}

/// Resolved OTLP exporter settings.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    pub protocol: OtlpProtocol,
    /// The URL requests go to (HTTP: with its `/v1/metrics` path).
    pub endpoint: String,
    /// Lower-case names.
    pub headers: BTreeMap<String, String>,
    pub timeout: Duration,
    pub compression: OtlpCompression,
    pub ca_file: Option<PathBuf>,
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
}

/// Everything the telemetry module needs.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// The collection interval: `/healthz` calls the cycle stalled after three of them.
    pub interval: Duration,
    pub otlp: Option<OtlpConfig>,
    pub export_interval: Duration,
    pub prometheus_listen: Option<SocketAddr>,
    pub limits: Limits,
    /// Resource attributes from the file, `K8S_*`, `OTEL_RESOURCE_ATTRIBUTES` and
    /// `OTEL_SERVICE_NAME`, highest precedence last applied (see [`resource_attributes`]).
    pub resource: BTreeMap<String, String>,
}

impl TelemetryConfig {
    /// Whether anything is exported at all.
    pub fn enabled(&self) -> bool {
        self.otlp.is_some() || self.prometheus_listen.is_some()
    }
}

/// The resolved run settings and what was ignored on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub interval_secs: f64,
    pub telemetry: TelemetryConfig,
    /// Unparsable environment values that were ignored (to be logged).
    pub warnings: Vec<String>,
}

pub const DEFAULT_INTERVAL_SECS: f64 = 1.0;
pub const DEFAULT_EXPORT_INTERVAL: Duration = Duration::from_secs(10);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The Kubernetes downward-API variables the Helm chart sets, and the resource attribute
/// each becomes.
pub const K8S_ENV: [(&str, &str); 3] = [
    ("K8S_NODE_NAME", "k8s.node.name"),
    ("K8S_POD_NAME", "k8s.pod.name"),
    ("K8S_NAMESPACE", "k8s.namespace.name"),
];

struct EnvReader<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
    warnings: Vec<String>,
}

impl EnvReader<'_> {
    /// The metrics-specific variable, else the generic one (non-empty values only).
    fn otlp(&self, suffix: &str) -> Option<(String, String)> {
        [
            format!("OTEL_EXPORTER_OTLP_METRICS_{suffix}"),
            format!("OTEL_EXPORTER_OTLP_{suffix}"),
        ]
        .into_iter()
        .find_map(|name| {
            (self.get)(&name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (name, v))
        })
    }

    fn var(&self, name: &str) -> Option<String> {
        (self.get)(name).filter(|v| !v.trim().is_empty())
    }

    fn parsed<T>(
        &mut self,
        found: Option<(String, String)>,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let (name, value) = found?;
        let parsed = parse(&value);
        if parsed.is_none() {
            self.warnings
                .push(format!("ignoring {name}={value:?}: not a valid value"));
        }
        parsed
    }

    fn millis(&mut self, found: Option<(String, String)>) -> Option<Duration> {
        self.parsed(found, |v| v.trim().parse::<u64>().ok().filter(|ms| *ms > 0))
            .map(Duration::from_millis)
    }
}

fn secs(what: &str, v: f64) -> Result<Duration, ConfigError> {
    if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
        return Err(invalid(what, format!("{v} is outside (0, 86400] seconds")));
    }
    Ok(Duration::from_secs_f64(v))
}

/// `k1=v1,k2=v2` with percent-encoded values (W3C baggage format, as OTEL_*_HEADERS and
/// OTEL_RESOURCE_ATTRIBUTES use).
pub fn parse_key_values(s: &str) -> Option<Vec<(String, String)>> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let k = k.trim();
            if k.is_empty() {
                return None;
            }
            Some((k.to_string(), percent_decode(v.trim())?))
        })
        .collect()
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The endpoint URL for `protocol`. `signal_specific`: an OTEL_EXPORTER_OTLP_METRICS_
/// ENDPOINT, used as is; otherwise a base URL that gets `/v1/metrics` for HTTP.
fn endpoint_url(
    raw: &str,
    protocol: OtlpProtocol,
    signal_specific: bool,
    insecure: bool,
) -> Result<String, ConfigError> {
    let raw = raw.trim();
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else if insecure {
        format!("http://{raw}")
    } else {
        format!("https://{raw}")
    };
    let (scheme, rest) = with_scheme.split_once("://").unwrap_or(("", ""));
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.starts_with('/') {
        return Err(invalid(
            "OTLP endpoint",
            format!("{raw:?} is not an http:// or https:// URL with a host"),
        ));
    }
    if protocol == OtlpProtocol::Grpc || signal_specific {
        return Ok(with_scheme);
    }
    if with_scheme.trim_end_matches('/').ends_with("/v1/metrics") {
        return Ok(with_scheme);
    }
    Ok(format!("{}/v1/metrics", with_scheme.trim_end_matches('/')))
}

/// What the command line sets: each field, when given, wins over the environment and the
/// file. `cli.rs` builds it from its flags; this module knows nothing of the CLI.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// Seconds between collections (`--interval`).
    pub interval_secs: Option<f64>,
    pub otlp_endpoint: Option<String>,
    pub otlp_protocol: Option<OtlpProtocol>,
    /// `KEY=VALUE` pairs (`--otlp-header`, repeatable).
    pub otlp_headers: Vec<String>,
    pub otlp_timeout_secs: Option<f64>,
    pub otlp_compression: Option<OtlpCompression>,
    pub otlp_ca_file: Option<PathBuf>,
    pub otlp_client_cert_file: Option<PathBuf>,
    pub otlp_client_key_file: Option<PathBuf>,
    pub export_interval_secs: Option<f64>,
    pub prometheus_listen: Option<SocketAddr>,
    /// Cardinality bounds (`--max-cpus`, …; `max_sources` has no flag).
    pub limits: LimitsFile,
}

/// Resolve overrides (flags), environment and file into settings.
pub fn resolve(
    overrides: &Overrides,
    file: &FileConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    let mut e = EnvReader {
        get: env,
        warnings: Vec::new(),
    };

    let interval_secs = overrides
        .interval_secs
        .or(file.interval_secs)
        .unwrap_or(DEFAULT_INTERVAL_SECS);
    if !(0.05..=86_400.0).contains(&interval_secs) {
        return Err(invalid(
            "interval_secs",
            format!("{interval_secs} is outside 0.05..=86400 seconds"),
        ));
    }

    let otlp = resolve_otlp(overrides, &file.otlp, &mut e)?;

    let export_env = e
        .var("OTEL_METRIC_EXPORT_INTERVAL")
        .map(|v| ("OTEL_METRIC_EXPORT_INTERVAL".to_string(), v));
    let export_interval = match overrides.export_interval_secs {
        Some(s) => secs("--export-interval-secs", s)?,
        None => match e.millis(export_env) {
            Some(d) => d,
            None => match file.otlp.export_interval_secs {
                Some(s) => secs("otlp.export_interval_secs", s)?,
                None => DEFAULT_EXPORT_INTERVAL,
            },
        },
    };

    let (o, f) = (&overrides.limits, &file.limits);
    let d = Limits::default();
    let limits = Limits {
        max_cpus: o.max_cpus.or(f.max_cpus).unwrap_or(d.max_cpus),
        max_devices: o.max_devices.or(f.max_devices).unwrap_or(d.max_devices),
        max_queues_per_device: o
            .max_queues_per_device
            .or(f.max_queues_per_device)
            .unwrap_or(d.max_queues_per_device),
        max_groups: o.max_groups.or(f.max_groups).unwrap_or(d.max_groups),
        max_listeners_per_group: o
            .max_listeners_per_group
            .or(f.max_listeners_per_group)
            .unwrap_or(d.max_listeners_per_group),
        top_flows: o.top_flows.or(f.top_flows).unwrap_or(d.top_flows),
        max_sources: o.max_sources.or(f.max_sources).unwrap_or(d.max_sources),
    };
    limits.validate().map_err(|m| invalid("limits", m))?;

    let resource = resource_attributes(&file.resource.attributes, &mut e);

    Ok(Settings {
        interval_secs,
        telemetry: TelemetryConfig {
            interval: Duration::from_secs_f64(interval_secs),
            otlp,
            export_interval,
            prometheus_listen: overrides.prometheus_listen.or(file.prometheus.listen),
            limits,
            resource,
        },
        warnings: e.warnings,
    })
}

/// What a reload (SIGHUP) applies: the settings that only change how a report is built
/// or exported, never what is collected or where it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Reloaded {
    /// `[model]`: targets, regime thresholds and dwell, P_hot weights, estimator. The
    /// regime state machines keep their state; new thresholds apply from the next cycle.
    pub model: crate::model::ModelConfig,
    /// `[limits]` (flags still win over the file).
    pub limits: Limits,
    /// Keys whose new value needs a restart: the old one stays in force.
    pub needs_restart: Vec<&'static str>,
}

/// Re-reads the config file at `path` for a running agent whose settings were resolved
/// from `running` (the file it started with) and `overrides`. `Err` names the file and
/// the key; the caller then keeps the config it has.
pub fn reload(
    path: &Path,
    running: &FileConfig,
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Reloaded, ConfigError> {
    let in_file = |e: ConfigError| match e {
        ConfigError::Invalid { what, msg } => ConfigError::Parse {
            path: path.to_path_buf(),
            msg: format!("{what}: {msg}"),
        },
        other => other,
    };
    let new = FileConfig::load(path)?;
    let settings = resolve(overrides, &new, env).map_err(in_file)?;
    crate::sinks::catalog::check_series_cap(&settings.telemetry.limits)
        .map_err(|msg| invalid("limits", msg))
        .map_err(in_file)?;
    let model = new.model_config().map_err(in_file)?;
    // Validated even though they do not reload: a file that could not start the agent
    // is refused as a whole.
    let probes = resolve_probe_sampling(None, &new.probes).map_err(in_file)?;
    let choices =
        resolve_probe_choices(&ProbeChoiceFlags::default(), &new.probes).map_err(in_file)?;
    let shadow = resolve_shadow(&[], &new.shadow).map_err(in_file)?;

    let old = resolve(overrides, running, env)?;
    let (o, n) = (&old.telemetry, &settings.telemetry);
    let mut needs_restart = Vec::new();
    let mut differs = |key: &'static str, changed: bool| {
        if changed {
            needs_restart.push(key);
        }
    };
    differs("interval_secs", old.interval_secs != settings.interval_secs);
    differs(
        "otlp",
        o.otlp != n.otlp || o.export_interval != n.export_interval,
    );
    differs(
        "prometheus.listen",
        o.prometheus_listen != n.prometheus_listen,
    );
    differs("resource", o.resource != n.resource);
    differs(
        "probes",
        resolve_probe_sampling(None, &running.probes).ok() != Some(probes)
            || resolve_probe_choices(&ProbeChoiceFlags::default(), &running.probes).ok()
                != Some(choices),
    );
    differs(
        "shadow",
        resolve_shadow(&[], &running.shadow).ok() != Some(shadow),
    );
    Ok(Reloaded {
        model,
        limits: n.limits,
        needs_restart,
    })
}

fn resolve_otlp(
    overrides: &Overrides,
    file: &OtlpFile,
    e: &mut EnvReader,
) -> Result<Option<OtlpConfig>, ConfigError> {
    if e.var("OTEL_SDK_DISABLED")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        return Ok(None);
    }
    let env_specific = e.var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT");
    let env_generic = e.var("OTEL_EXPORTER_OTLP_ENDPOINT");
    let (raw, signal_specific) = match (
        &overrides.otlp_endpoint,
        env_specific,
        env_generic,
        &file.endpoint,
    ) {
        (Some(f), ..) => (f.clone(), false),
        (None, Some(v), ..) => (v, true),
        (None, None, Some(v), _) => (v, false),
        (None, None, None, Some(f)) => (f.clone(), false),
        (None, None, None, None) => return Ok(None),
    };

    let protocol_env = e.otlp("PROTOCOL");
    let protocol = match overrides.otlp_protocol {
        Some(p) => p,
        None => e
            .parsed(protocol_env, OtlpProtocol::parse)
            .or(file.protocol)
            .unwrap_or(OtlpProtocol::HttpProtobuf),
    };

    let insecure_env = e.otlp("INSECURE");
    let insecure = e
        .parsed(insecure_env, |v| {
            match v.trim().to_ascii_lowercase().as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            }
        })
        .or(file.insecure)
        .unwrap_or(false);
    let endpoint = endpoint_url(&raw, protocol, signal_specific, insecure)?;

    let mut headers: BTreeMap<String, String> = file
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    let headers_env = e.otlp("HEADERS");
    if let Some(kvs) = e.parsed(headers_env, parse_key_values) {
        headers.extend(kvs.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)));
    }
    for h in &overrides.otlp_headers {
        let (k, v) = h
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| invalid("--otlp-header", format!("{h:?} is not KEY=VALUE")))?;
        headers.insert(k.trim().to_ascii_lowercase(), v.to_string());
    }

    let timeout_env = e.otlp("TIMEOUT");
    let timeout = match overrides.otlp_timeout_secs {
        Some(s) => secs("--otlp-timeout-secs", s)?,
        None => match e.millis(timeout_env) {
            Some(d) => d,
            None => match file.timeout_secs {
                Some(s) => secs("otlp.timeout_secs", s)?,
                None => DEFAULT_TIMEOUT,
            },
        },
    };

    let compression_env = e.otlp("COMPRESSION");
    let compression = match overrides.otlp_compression {
        Some(c) => c,
        None => e
            .parsed(compression_env, OtlpCompression::parse)
            .or(file.compression)
            .unwrap_or(OtlpCompression::None),
    };

    let path_of = |flag: &Option<PathBuf>, env_suffix: &str, file: &Option<PathBuf>| {
        flag.clone()
            .or_else(|| e.otlp(env_suffix).map(|(_, v)| PathBuf::from(v)))
            .or_else(|| file.clone())
    };
    let ca_file = path_of(&overrides.otlp_ca_file, "CERTIFICATE", &file.ca_file);
    let client_cert_file = path_of(
        &overrides.otlp_client_cert_file,
        "CLIENT_CERTIFICATE",
        &file.client_cert_file,
    );
    let client_key_file = path_of(
        &overrides.otlp_client_key_file,
        "CLIENT_KEY",
        &file.client_key_file,
    );
    if client_cert_file.is_some() != client_key_file.is_some() {
        return Err(invalid(
            "OTLP client certificate",
            "a client certificate and its key go together",
        ));
    }
    let tls_given = ca_file.is_some() || client_cert_file.is_some();
    if tls_given && endpoint.starts_with("http://") {
        return Err(invalid(
            "OTLP TLS",
            format!("TLS files are set but the endpoint {endpoint} is plaintext (use https://)"),
        ));
    }

    Ok(Some(OtlpConfig {
        protocol,
        endpoint,
        headers,
        timeout,
        compression,
        ca_file,
        client_cert_file,
        client_key_file,
    }))
}

/// Resource attributes that come from configuration, in increasing precedence: `K8S_*`
/// variables (the Helm chart sets them from the downward API), the config file's
/// `[resource.attributes]`, `OTEL_RESOURCE_ATTRIBUTES`, then `OTEL_SERVICE_NAME` for
/// `service.name`. The telemetry module puts detected host facts and defaults under them.
fn resource_attributes(
    file: &BTreeMap<String, String>,
    e: &mut EnvReader,
) -> BTreeMap<String, String> {
    let mut attrs = BTreeMap::new();
    for (var, key) in K8S_ENV {
        if let Some(v) = e.var(var) {
            attrs.insert(key.to_string(), v.trim().to_string());
        }
    }
    attrs.extend(file.iter().map(|(k, v)| (k.clone(), v.clone())));
    let env_attrs = e
        .var("OTEL_RESOURCE_ATTRIBUTES")
        .map(|v| ("OTEL_RESOURCE_ATTRIBUTES".to_string(), v));
    if let Some(kvs) = e.parsed(env_attrs, parse_key_values) {
        attrs.extend(kvs);
    }
    if let Some(name) = e.var("OTEL_SERVICE_NAME") {
        attrs.insert("service.name".into(), name.trim().to_string());
    }
    attrs
}

#[cfg(test)]
mod tests;
