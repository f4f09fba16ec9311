//! Prometheus exposition (`--prometheus-listen`, off by default): the same OpenTelemetry
//! metric stream the OTLP exporter sends, in the text format (0.0.4), under exactly the
//! names an OpenTelemetry Collector's Prometheus exporter gives it.
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
//! - attributes become labels with invalid characters replaced by `_`; the scope adds
//!   `otel_scope_name` and `otel_scope_version`; resource attributes go to `target_info`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::catalog::{Instrument, MetricDef};

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

/// The naming section of docs/metrics.md.
pub const NAMING_DOC: &str = "
## Prometheus names

`--prometheus-listen ADDR` (off by default; e.g. `127.0.0.1:9464`) serves `/metrics` in the
Prometheus text format with the names an OpenTelemetry Collector's Prometheus exporter gives
the OTLP stream, so dashboards and alerts work the same on either path. The rules are those
of the OpenTelemetry specification, *Prometheus and OpenMetrics Compatibility*, \"OTLP Metric
points to Prometheus\"
(<https://opentelemetry.io/docs/specs/otel/compatibility/prometheus_and_openmetrics/#otlp-metric-points-to-prometheus>):

| OTLP | Prometheus | example |
|---|---|---|
| `.` and other characters outside `[a-zA-Z0-9:]` | `_` | `skewscope.reuseport.lsi` → `skewscope_reuseport_lsi` |
| unit in curly braces (`{index}`, `{packet}`) | dropped | `skewscope.rss.qpi` `{index}` → `skewscope_rss_qpi` |
| unit `s`, `By` | `_seconds`, `_bytes` (not repeated when the name has it) | `skewscope.rss.haf95` `s` → `skewscope_rss_haf95_seconds` |
| unit `X/s` | `_X_per_second` | `skewscope.rss.queue.packets` `{packet}/s` → `skewscope_rss_queue_packets_per_second` |
| gauge with unit `1` | `_ratio` | `skewscope.cpu.net_rx.share` → `skewscope_cpu_net_rx_share_ratio` |
| monotonic sum (counter) | `_total` | `skewscope.agent.export.failures` → `skewscope_agent_export_failures_total` |
| histogram | `_bucket{le}`, `_sum`, `_count` | `skewscope_agent_cycle_duration_seconds_bucket` |
| attribute `listener.index` | label `listener_index` | |
| instrumentation scope | labels `otel_scope_name=\"skewscope\"`, `otel_scope_version` | |
| resource attributes | one `target_info` gauge (value 1) carrying them | `target_info{host_name=\"node-1\",k8s_node_name=\"node-1\",…}` |

This is why indices carry the unit `{index}` and shares the unit `1`: the Prometheus names
come out as `skewscope_rss_qpi` and `skewscope_cpu_net_rx_share_ratio`, not
`skewscope_rss_qpi_ratio`. The Collector also adds `job` and `instance` labels from
`service.name` and `service.instance.id`; on the direct endpoint the scrape configuration
supplies them.
";

/// Text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn escape_label_value(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.as_str().to_string(),
        other => other.to_string(),
    }
}

fn format_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

fn labels<'a>(
    attrs: impl Iterator<Item = &'a KeyValue>,
    scope: &str,
    extra: Option<(&str, &str)>,
) -> String {
    let mut pairs: Vec<(String, String)> = attrs
        .map(|kv| (label_name(kv.key.as_str()), value_text(&kv.value)))
        .collect();
    if let Some((k, v)) = extra {
        pairs.push((k.to_string(), v.to_string()));
    }
    let mut out = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        escape_label_value(v, &mut out);
        out.push('"');
    }
    if !pairs.is_empty() {
        out.push(',');
    }
    out.push_str(scope);
    out.push('}');
    out
}

trait AsF64: Copy {
    fn as_f64(self) -> f64;
}
impl AsF64 for f64 {
    fn as_f64(self) -> f64 {
        self
    }
}
impl AsF64 for u64 {
    fn as_f64(self) -> f64 {
        self as f64
    }
}
impl AsF64 for i64 {
    fn as_f64(self) -> f64 {
        self as f64
    }
}

fn render_data<T: AsF64>(
    out: &mut String,
    name: &str,
    unit: &str,
    help: &str,
    scope: &str,
    data: &MetricData<T>,
) {
    let kind = match data {
        MetricData::Gauge(_) => OtlpType::Gauge,
        MetricData::Sum(s) if s.is_monotonic() => OtlpType::MonotonicSum,
        MetricData::Sum(_) => OtlpType::NonMonotonicSum,
        MetricData::Histogram(_) => OtlpType::Histogram,
        // Exponential histograms have no text-format form; skewscope records none.
        MetricData::ExponentialHistogram(_) => return,
    };
    let prom = metric_name(name, unit, kind);
    let type_word = match kind {
        OtlpType::Gauge | OtlpType::NonMonotonicSum => "gauge",
        OtlpType::MonotonicSum => "counter",
        OtlpType::Histogram => "histogram",
    };
    let _ = writeln!(out, "# HELP {prom} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {prom} {type_word}");
    match data {
        MetricData::Gauge(g) => {
            for p in g.data_points() {
                let _ = writeln!(
                    out,
                    "{prom}{} {}",
                    labels(p.attributes(), scope, None),
                    format_f64(p.value().as_f64())
                );
            }
        }
        MetricData::Sum(s) => {
            for p in s.data_points() {
                let _ = writeln!(
                    out,
                    "{prom}{} {}",
                    labels(p.attributes(), scope, None),
                    format_f64(p.value().as_f64())
                );
            }
        }
        MetricData::Histogram(h) => {
            for p in h.data_points() {
                let mut cumulative = 0u64;
                let counts: Vec<u64> = p.bucket_counts().collect();
                for (i, bound) in p.bounds().enumerate() {
                    cumulative += counts.get(i).copied().unwrap_or(0);
                    let le = format_f64(bound);
                    let _ = writeln!(
                        out,
                        "{prom}_bucket{} {cumulative}",
                        labels(p.attributes(), scope, Some(("le", &le)))
                    );
                }
                let _ = writeln!(
                    out,
                    "{prom}_bucket{} {}",
                    labels(p.attributes(), scope, Some(("le", "+Inf"))),
                    p.count()
                );
                let l = labels(p.attributes(), scope, None);
                let _ = writeln!(out, "{prom}_sum{l} {}", format_f64(p.sum().as_f64()));
                let _ = writeln!(out, "{prom}_count{l} {}", p.count());
            }
        }
        MetricData::ExponentialHistogram(_) => {}
    }
}

/// Render one collection in the text format, with `target_info` for the resource.
pub fn render(rm: &ResourceMetrics) -> String {
    let mut out = String::new();
    let mut resource: Vec<KeyValue> = rm
        .resource()
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "service.name" | "service.namespace" | "service.instance.id"
            )
        })
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    resource.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
    let job = rm
        .resource()
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .map(|v| v.to_string())
        .unwrap_or_default();
    out.push_str("# HELP target_info Target metadata\n# TYPE target_info gauge\n");
    let mut l = labels(resource.iter(), "", Some(("job", &job)));
    // No scope labels on target_info: drop the trailing separator left for them.
    l = l.replace(",}", "}");
    let _ = writeln!(out, "target_info{l} 1");

    for sm in rm.scope_metrics() {
        let mut scope = String::from("otel_scope_name=\"");
        escape_label_value(sm.scope().name(), &mut scope);
        scope.push_str("\",otel_scope_version=\"");
        escape_label_value(sm.scope().version().unwrap_or(""), &mut scope);
        scope.push('"');
        for m in sm.metrics() {
            let (name, unit, help) = (m.name(), m.unit(), m.description());
            match m.data() {
                AggregatedMetrics::F64(d) => render_data(&mut out, name, unit, help, &scope, d),
                AggregatedMetrics::U64(d) => render_data(&mut out, name, unit, help, &scope, d),
                AggregatedMetrics::I64(d) => render_data(&mut out, name, unit, help, &scope, d),
            }
        }
    }
    out
}

/// Produces the exposition text on demand (collects the SDK's manual reader).
pub type Scrape = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// Concurrent connections served; more are closed at once (memory stays bounded).
const MAX_CONNECTIONS: usize = 8;
/// A request head larger than this is refused.
const MAX_REQUEST_BYTES: usize = 8192;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serve `/metrics` until the runtime shuts down.
pub async fn serve(listener: TcpListener, scrape: Scrape, scrapes: Arc<AtomicU64>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                log::debug!("prometheus: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue; // dropped: closes the connection
        };
        let (scrape, scrapes) = (scrape.clone(), scrapes.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = handle(stream, scrape, scrapes).await {
                log::debug!("prometheus: {e}");
            }
        });
    }
}

async fn handle(
    mut stream: TcpStream,
    scrape: Scrape,
    scrapes: Arc<AtomicU64>,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let read_head = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await?;
            if n == 0 || head.len() + n > MAX_REQUEST_BYTES {
                return Err(std::io::Error::other("short or oversized request"));
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok(())
    };
    tokio::time::timeout(REQUEST_TIMEOUT, read_head)
        .await
        .map_err(|_| std::io::Error::other("request timed out"))??;
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            scrapes.fetch_add(1, Ordering::Relaxed);
            match tokio::task::spawn_blocking(move || scrape()).await {
                Ok(Ok(text)) => ("200 OK", CONTENT_TYPE, text),
                Ok(Err(e)) => ("503 Service Unavailable", "text/plain", e + "\n"),
                Err(e) => ("500 Internal Server Error", "text/plain", e.to_string()),
            }
        }
        ("GET" | "HEAD", "/") => (
            "200 OK",
            "text/plain",
            "skewscope: metrics at /metrics\n".to_string(),
        ),
        ("GET" | "HEAD", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n".to_string(),
        ),
    };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes()).await?;
    if method != "HEAD" {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
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
    fn catalog_names_are_the_intended_ones() {
        use super::super::catalog::CATALOG;
        let find = |n: &str| exposed_names(CATALOG.iter().find(|d| d.name == n).unwrap());
        assert_eq!(find("skewscope.rss.qpi"), ["skewscope_rss_qpi"]);
        assert_eq!(find("skewscope.reuseport.lsi"), ["skewscope_reuseport_lsi"]);
        assert_eq!(
            find("skewscope.reuseport.hcr_1"),
            ["skewscope_reuseport_hcr_1"]
        );
        assert_eq!(
            find("skewscope.cpu.net_rx.share"),
            ["skewscope_cpu_net_rx_share_ratio"]
        );
        assert_eq!(
            find("skewscope.rss.queue.bytes"),
            ["skewscope_rss_queue_bytes_per_second"]
        );
        assert_eq!(
            find("skewscope.agent.export.failures"),
            ["skewscope_agent_export_failures_total"]
        );
        assert_eq!(
            find("skewscope.agent.cycle.duration")[0],
            "skewscope_agent_cycle_duration_seconds_bucket"
        );
        // No two catalog entries may collide on Prometheus.
        let mut all: Vec<String> = CATALOG.iter().flat_map(exposed_names).collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
    }

    #[test]
    fn labels_are_sanitized() {
        assert_eq!(label_name("listener.index"), "listener_index");
        assert_eq!(label_name("k8s.pod.name"), "k8s_pod_name");
        assert_eq!(label_name("0day"), "key_0day");
        assert_eq!(label_name("a..b"), "a_b");
    }

    #[test]
    fn label_values_are_escaped() {
        let kv = [KeyValue::new("comm", "a\"b\\c\nd")];
        assert_eq!(
            labels(kv.iter(), "s=\"x\"", None),
            "{comm=\"a\\\"b\\\\c\\nd\",s=\"x\"}"
        );
    }
}
