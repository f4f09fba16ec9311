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

/// [`to_json_line`] streamed to `out` with its newline, through a small buffer: a report
/// of 50 000 listeners is a 15 MB line, not worth holding (and regrowing) in memory.
pub fn write_json_line(
    report: &crate::report::Report,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::with_capacity(64 * 1024, out);
    serde_json::to_writer(&mut w, report)?;
    w.write_all(b"\n")?;
    w.flush()
}
