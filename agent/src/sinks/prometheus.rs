//! Prometheus exposition (`--prometheus-listen`, off by default): the same OpenTelemetry
//! metric stream the OTLP exporter sends, in the text format (0.0.4), under exactly the
//! names an OpenTelemetry Collector's Prometheus exporter gives it (`prom_naming`). The
//! scope adds `otel_scope_name` and `otel_scope_version`; resource attributes go to
//! `target_info`.

use std::convert::Infallible;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use tokio::net::TcpListener;

use super::prom_naming::{label_name, metric_name, OtlpType};

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
// Our own rendering, not an exporter crate's: it matches the OpenTelemetry Collector's
// prometheus exporter translation, so names are identical whichever path a user takes.
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
/// A health check: Ok, or a one-line reason (answered with 503).
pub type Check = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// What the endpoint serves.
#[derive(Clone)]
pub struct Endpoints {
    /// `/metrics`.
    pub scrape: Scrape,
    /// `/healthz`: the collection cycle is alive (sinks::health::liveness).
    pub healthz: Check,
    /// `/readyz`: the first report has been published (sinks::health::readiness).
    pub readyz: Check,
    /// Requests served on `/metrics`.
    pub scrapes: Arc<AtomicU64>,
}

/// Concurrent connections served; more are closed at once (memory stays bounded).
const MAX_CONNECTIONS: usize = 8;
/// A request head larger than this is refused (431); hyper's smallest read buffer.
const MAX_REQUEST_BYTES: usize = 8192;
/// A client that has not sent its request head by then is disconnected.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serve `/metrics`, `/healthz` and `/readyz` until the runtime shuts down: HTTP/1.1 on
/// hyper, one request per connection.
pub async fn serve(listener: TcpListener, endpoints: Endpoints) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut http = http1::Builder::new();
    // The response head as before hyper: Content-Type, Content-Length, Connection: close.
    http.keep_alive(false)
        .title_case_headers(true)
        .auto_date_header(false)
        .max_buf_size(MAX_REQUEST_BYTES)
        .timer(TokioTimer::new())
        .header_read_timeout(REQUEST_TIMEOUT);
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
        let endpoints = endpoints.clone();
        let service = service_fn(move |req| respond(req, endpoints.clone()));
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = connection.await {
                log::debug!("prometheus: {e}");
            }
        });
    }
}

async fn respond(
    req: Request<Incoming>,
    endpoints: Endpoints,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let plain = "text/plain";
    let check = |check: &Check| match check() {
        Ok(()) => (StatusCode::OK, plain, "ok\n".to_string()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, plain, why + "\n"),
    };
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => {
            endpoints.scrapes.fetch_add(1, Ordering::Relaxed);
            let scrape = endpoints.scrape.clone();
            match tokio::task::spawn_blocking(move || scrape()).await {
                Ok(Ok(text)) => (StatusCode::OK, CONTENT_TYPE, text),
                Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, plain, e + "\n"),
                Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, plain, e.to_string()),
            }
        }
        (&Method::GET | &Method::HEAD, "/healthz") => check(&endpoints.healthz),
        (&Method::GET | &Method::HEAD, "/readyz") => check(&endpoints.readyz),
        (&Method::GET | &Method::HEAD, "/") => (
            StatusCode::OK,
            plain,
            "skewscope: metrics at /metrics\n".to_string(),
        ),
        (&Method::GET | &Method::HEAD, _) => {
            (StatusCode::NOT_FOUND, plain, "not found\n".to_string())
        }
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            plain,
            "method not allowed\n".to_string(),
        ),
    };
    // HEAD: the length of the body GET would get, and no body (hyper sends none).
    let length = body.len();
    let body = if req.method() == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(body)
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let kv = [KeyValue::new("comm", "a\"b\\c\nd")];
        assert_eq!(
            labels(kv.iter(), "s=\"x\"", None),
            "{comm=\"a\\\"b\\\\c\\nd\",s=\"x\"}"
        );
    }
}
