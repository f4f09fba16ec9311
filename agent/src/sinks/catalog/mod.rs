//! The metric catalog: every metric skewscope exports, defined once.
//!
//! Each entry names one metric `skewscope.<area>.<name>`, its instrument, unit,
//! description and attributes, and where its value comes from: a key of the cycle's JSON
//! report (schema `skewscope.snapshot/v1`, docs/json.md) or the agent's own counters.
//! The OTLP exporter, the Prometheus exposition, docs/metrics.md (`skewscope metrics
//! --markdown`) and the tests all read this table, so adding a metric is one entry.
//!
//! Values are read from the report's JSON form on purpose: its keys are a documented
//! contract that is only ever extended, and the tests compare what a receiver got with
//! the JSON line the agent printed for the same cycle through this same table.
//!
//! Units are chosen for the names an OpenTelemetry Collector's Prometheus exporter
//! derives from them (see [`super::prom_naming::metric_name`]): indices carry a
//! curly-brace annotation (`{index}`) that is dropped, shares carry `1` (`_ratio`), rates
//! `{packet}/s` (`_per_second`), durations `s` (`_seconds`).
//!
//! `types` is the vocabulary, `table` the entries, `eval` their application to a report.

mod eval;
mod table;
mod types;

pub use eval::{
    check_series_cap, evaluate, missing_keys, report_json, worst_case_series, AttrValue,
    Evaluation, Point, SDK_SERIES_PER_METRIC,
};
pub use table::{
    CATALOG, CPU, CYCLE_DURATION_BOUNDS, DEVICE, FLOW, GROUP, HOST, LISTENER, PROBE, QUEUE,
    RSS_SHADOW, SCOPES, SHADOW, SOURCE,
};
pub use types::{
    attributes, exposed_names, json_source, AgentValue, Attr, AttrFrom, FromReport, Instrument,
    MetricDef, Scope, Source, Step, ValueOf,
};

#[cfg(test)]
mod tests;
