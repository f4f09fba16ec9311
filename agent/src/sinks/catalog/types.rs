//! The catalog's vocabulary: instruments, attributes, scopes (walks into the report) and
//! metric definitions, with the constructors the table is written in.

use std::fmt::Write;

use crate::config::Limit;
use crate::sinks::prom_naming::{metric_name, OtlpType};

/// How a metric is recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Instrument {
    /// Last value (OTel asynchronous gauge).
    Gauge,
    /// Monotonic cumulative sum (OTel asynchronous counter; Prometheus `_total`).
    Counter,
    /// Explicit-bucket histogram with these upper bounds.
    Histogram(&'static [f64]),
}

impl Instrument {
    pub fn label(self) -> &'static str {
        match self {
            Instrument::Gauge => "gauge",
            Instrument::Counter => "counter",
            Instrument::Histogram(_) => "histogram",
        }
    }
}

/// Where one attribute's value comes from.
#[derive(Debug, Clone, Copy)]
pub enum AttrFrom {
    /// A key (dotted path) of the element.
    Key(&'static str),
    /// The element's 1-based position in its array (the report orders it).
    Rank,
}

#[derive(Debug, Clone, Copy)]
pub struct Attr {
    pub name: &'static str,
    pub from: AttrFrom,
    pub description: &'static str,
}

pub(super) const fn attr(name: &'static str, key: &'static str, description: &'static str) -> Attr {
    Attr {
        name,
        from: AttrFrom::Key(key),
        description,
    }
}

/// One level of the walk into the report: an array, its bound, the attributes each of
/// its elements gives the series below it.
#[derive(Debug)]
pub struct Step {
    pub array: &'static str,
    pub limit: Option<Limit>,
    pub attrs: &'static [Attr],
    /// Keep only elements whose string at this key starts with this prefix.
    pub only: Option<(&'static str, &'static str)>,
    /// A bound the agent itself enforces on the array (not configurable), for arrays
    /// without a `limit`.
    pub max_len: Option<usize>,
}

/// A set of series sharing the same walk: one element per series.
#[derive(Debug)]
pub struct Scope {
    pub name: &'static str,
    pub steps: &'static [Step],
}
/// What a report-fed metric reads from each element of its scope.
#[derive(Debug, Clone, Copy)]
pub enum ValueOf {
    /// A number or bool (1/0) at this key (dotted path); null or absent: no point.
    Key(&'static str),
    /// The length of the array at this key.
    Len(&'static str),
    /// 1 for every element (info-style metrics whose attributes carry the facts).
    One,
}

#[derive(Debug, Clone, Copy)]
pub struct FromReport {
    pub scope: &'static Scope,
    pub value: ValueOf,
    /// Multiply by this (unit conversion, e.g. µs to s).
    pub scale: f64,
    /// Divide by the report's window_secs: a count over the window becomes a rate.
    pub per_second: bool,
    /// Attributes of this metric only, read from the same element.
    pub attrs: &'static [Attr],
    /// Emit only where the array at this key is non-empty.
    pub require: Option<&'static str>,
}

impl FromReport {
    pub(super) const fn new(scope: &'static Scope, value: ValueOf) -> Self {
        Self {
            scope,
            value,
            scale: 1.0,
            per_second: false,
            attrs: &[],
            require: None,
        }
    }
    pub(super) const fn rate(self) -> Self {
        Self {
            per_second: true,
            ..self
        }
    }
    pub(super) const fn scale(self, scale: f64) -> Self {
        Self { scale, ..self }
    }
    pub(super) const fn attrs(self, attrs: &'static [Attr]) -> Self {
        Self { attrs, ..self }
    }
    pub(super) const fn require(self, key: &'static str) -> Self {
        Self {
            require: Some(key),
            ..self
        }
    }
}

pub(super) const fn key(scope: &'static Scope, path: &'static str) -> FromReport {
    FromReport::new(scope, ValueOf::Key(path))
}
pub(super) const fn len(scope: &'static Scope, path: &'static str) -> FromReport {
    FromReport::new(scope, ValueOf::Len(path))
}
pub(super) const fn one(scope: &'static Scope) -> FromReport {
    FromReport::new(scope, ValueOf::One)
}

/// Counters the agent keeps about itself across cycles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentValue {
    Cycles,
    CycleDuration,
    SourceErrors,
    ExportSuccesses,
    ExportFailures,
    ExportedPoints,
    DroppedPoints,
    CardinalityCapped,
    Scrapes,
}

#[derive(Debug, Clone, Copy)]
pub enum Source {
    Report(FromReport),
    Agent {
        value: AgentValue,
        attrs: &'static [Attr],
    },
}

#[derive(Debug)]
pub struct MetricDef {
    pub name: &'static str,
    pub instrument: Instrument,
    pub unit: &'static str,
    pub description: &'static str,
    pub source: Source,
}

pub(super) const fn gauge(
    name: &'static str,
    unit: &'static str,
    description: &'static str,
    from: FromReport,
) -> MetricDef {
    MetricDef {
        name,
        instrument: Instrument::Gauge,
        unit,
        description,
        source: Source::Report(from),
    }
}

pub(super) const fn counter(
    name: &'static str,
    unit: &'static str,
    description: &'static str,
    from: FromReport,
) -> MetricDef {
    MetricDef {
        name,
        instrument: Instrument::Counter,
        unit,
        description,
        source: Source::Report(from),
    }
}

pub(super) const fn agent(
    name: &'static str,
    instrument: Instrument,
    unit: &'static str,
    description: &'static str,
    value: AgentValue,
    attrs: &'static [Attr],
) -> MetricDef {
    MetricDef {
        name,
        instrument,
        unit,
        description,
        source: Source::Agent { value, attrs },
    }
}

fn otlp_type(instrument: Instrument) -> OtlpType {
    match instrument {
        Instrument::Gauge => OtlpType::Gauge,
        Instrument::Counter => OtlpType::MonotonicSum,
        Instrument::Histogram(_) => OtlpType::Histogram,
    }
}

/// The sample names a catalog entry appears under on /metrics.
pub fn exposed_names(def: &MetricDef) -> Vec<String> {
    let base = metric_name(def.name, def.unit, otlp_type(def.instrument));
    match def.instrument {
        Instrument::Histogram(_) => ["_bucket", "_sum", "_count"]
            .iter()
            .map(|s| format!("{base}{s}"))
            .collect(),
        _ => vec![base],
    }
}

/// Every attribute a metric's points may carry.
pub fn attributes(def: &MetricDef) -> Vec<&'static Attr> {
    match &def.source {
        Source::Report(from) => from
            .scope
            .steps
            .iter()
            .flat_map(|s| s.attrs.iter())
            .chain(from.attrs.iter())
            .collect(),
        Source::Agent { attrs, .. } => attrs.iter().collect(),
    }
}

/// Where a report-fed metric's value comes from, in the JSON schema's terms.
pub fn json_source(from: &FromReport) -> String {
    let mut path: String = from
        .scope
        .steps
        .iter()
        .map(|s| format!("{}[].", s.array))
        .collect();
    match from.value {
        ValueOf::Key(k) => path.push_str(k),
        ValueOf::Len(k) => path = format!("len({path}{k})"),
        ValueOf::One => path = format!("1 per {}", path.trim_end_matches('.')),
    }
    if let Some((k, prefix)) = from.scope.steps.last().and_then(|s| s.only) {
        let _ = write!(path, " where {k} starts with {prefix}");
    }
    if from.scale != 1.0 {
        let _ = write!(path, " × {:e}", from.scale);
    }
    if from.per_second {
        path.push_str(" / window_secs");
    }
    path
}
