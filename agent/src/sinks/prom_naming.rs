//! OpenTelemetry → Prometheus names: metric and label name translation, shared by the
//! metric catalog (the names docs/metrics.md lists) and the /metrics exposition.
//!
//! Naming follows the OpenTelemetry specification "Prometheus and OpenMetrics
//! Compatibility", section "OTLP Metric points to Prometheus"
//! (<https://opentelemetry.io/docs/specs/otel/compatibility/prometheus_and_openmetrics/#otlp-metric-points-to-prometheus>)
//! as the Collector implements it (github.com/prometheus/otlptranslator, `normalizeName`,
//! with suffixes on and UTF-8 off):
//! - the name is split on every character outside `[a-zA-Z0-9:]` and rejoined with `_`;
//! - the unit is appended, mapped to a Prometheus word (`s` → `seconds`, `By` → `bytes`),
//!   unless the name already holds that word; a `/x` part becomes `per_<x>`; a unit in
//!   curly braces (`{index}`, `{packet}`) adds nothing;
//! - a monotonic sum gets `_total`; a gauge with unit `1` gets `_ratio`;
//! - attributes become labels with invalid characters replaced by `_`.
//!
//! A leaf: it knows neither the catalog nor the SDK's data types.

/// The type of an OTLP metric, as far as naming goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpType {
    Gauge,
    MonotonicSum,
    NonMonotonicSum,
    Histogram,
}

// Collector unit words (otlptranslator unitMap / perUnitMap).
fn unit_word(unit: &str) -> &str {
    match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

fn per_unit_word(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

fn valid_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// Replace invalid characters with `_`, collapse runs of `_`, drop a leading `_`.
fn clean_unit(unit: &str) -> String {
    let mut out = String::new();
    for c in unit.chars() {
        let c = if valid_name_char(c) { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    out.trim_start_matches('_').to_string()
}

fn unit_suffixes(unit: &str) -> (String, String) {
    let mut parts = unit.splitn(2, '/');
    let main = parts.next().unwrap_or("").trim();
    let main = if main.is_empty() || main.contains(['{', '}']) {
        String::new()
    } else {
        clean_unit(unit_word(main))
    };
    let per = match parts.next().map(str::trim) {
        Some(p) if !p.is_empty() && !p.contains(['{', '}']) => {
            clean_unit(&format!("per_{}", per_unit_word(p)))
        }
        _ => String::new(),
    };
    (main, per)
}

/// The Prometheus name of an OTLP metric (before `_bucket`/`_sum`/`_count`).
pub fn metric_name(name: &str, unit: &str, kind: OtlpType) -> String {
    let mut tokens: Vec<String> = name
        .split(|c: char| !valid_name_char(c))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let (mut main, mut per) = unit_suffixes(unit);
    if tokens.contains(&main) {
        main.clear();
    }
    if per == "per_" {
        per.clear();
    } else {
        per = per.trim_end_matches('_').to_string();
        if tokens.contains(&per) {
            per.clear();
        }
    }
    if !per.is_empty() {
        main = main.trim_end_matches('_').to_string();
    }
    if !main.is_empty() {
        tokens.push(main);
    }
    if !per.is_empty() {
        tokens.push(per);
    }
    if kind == OtlpType::MonotonicSum {
        tokens.retain(|t| t != "total");
        tokens.push("total".into());
    }
    if unit == "1" && kind == OtlpType::Gauge {
        tokens.retain(|t| t != "ratio");
        tokens.push("ratio".into());
    }
    let joined = tokens.join("_");
    if joined.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{joined}")
    } else {
        joined
    }
}

/// The Prometheus label of an attribute key.
pub fn label_name(key: &str) -> String {
    let mut out = String::new();
    for c in key.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        };
        if c == '_' && out.ends_with('_') && !out.starts_with("__") {
            continue;
        }
        out.push(c);
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names the Collector gives well-known streams (hostmetrics:
    /// system_filesystem_usage_bytes, system_cpu_utilization_ratio,
    /// system_network_io_bytes_total) and the edge cases of otlptranslator's
    /// `normalizeName`/`addUnitTokens` (unit already in the name, `{…}` units, `/s`,
    /// `total`/`ratio` not doubled, leading digit).
    #[test]
    fn names_match_the_collector_translator() {
        let cases = [
            (
                "system.filesystem.usage",
                "By",
                OtlpType::Gauge,
                "system_filesystem_usage_bytes",
            ),
            (
                "system.network.io",
                "By",
                OtlpType::MonotonicSum,
                "system_network_io_bytes_total",
            ),
            (
                "requests.count",
                "1",
                OtlpType::MonotonicSum,
                "requests_count_total",
            ),
            ("memory.usage", "By", OtlpType::Gauge, "memory_usage_bytes"),
            (
                "http.server.duration",
                "s",
                OtlpType::Histogram,
                "http_server_duration_seconds",
            ),
            (
                "active_directory.ds.replication.network.io",
                "By",
                OtlpType::MonotonicSum,
                "active_directory_ds_replication_network_io_bytes_total",
            ),
            (
                "system.cpu.utilization",
                "1",
                OtlpType::Gauge,
                "system_cpu_utilization_ratio",
            ),
            (
                "system.processes.count",
                "{processes}",
                OtlpType::NonMonotonicSum,
                "system_processes_count",
            ),
            (
                "packets",
                "{packet}/s",
                OtlpType::Gauge,
                "packets_per_second",
            ),
            (
                "throughput",
                "By/s",
                OtlpType::Gauge,
                "throughput_bytes_per_second",
            ),
            (
                "bytes.received",
                "By/s",
                OtlpType::Gauge,
                "bytes_received_per_second",
            ),
            ("speed", "m/s", OtlpType::Gauge, "speed_meters_per_second"),
            ("foo.total", "", OtlpType::MonotonicSum, "foo_total"),
            ("foo.ratio", "1", OtlpType::Gauge, "foo_ratio"),
            ("unit.less", "", OtlpType::Gauge, "unit_less"),
            ("a__b", "", OtlpType::Gauge, "a_b"),
            ("0start", "", OtlpType::Gauge, "_0start"),
        ];
        for (name, unit, kind, want) in cases {
            assert_eq!(
                metric_name(name, unit, kind),
                want,
                "{name} {unit} {kind:?}"
            );
        }
    }

    #[test]
    fn labels_are_sanitized() {
        assert_eq!(label_name("listener.index"), "listener_index");
        assert_eq!(label_name("k8s.pod.name"), "k8s_pod_name");
        assert_eq!(label_name("0day"), "key_0day");
        assert_eq!(label_name("a..b"), "a_b");
    }
}
