//! Sinks only read finished reports.

pub mod catalog;
pub mod console;
pub mod health;
pub mod metrics_doc;
pub mod otlp;
pub mod prom_naming;
pub mod prometheus;

/// One report as one line of JSON (`--output json`, `snapshot --json`).
pub fn to_json_line(report: &crate::report::Report) -> String {
    serde_json::to_string(report).expect("reports contain only serializable data")
}
