//! OTLP export: the exporter for the resolved settings (gRPC over tonic, or HTTP/protobuf
//! over a blocking reqwest client; TLS on rustls + ring), wrapped so that every outcome is
//! counted and failures are logged at a limited rate.
//!
//! Nothing here is on the collection cycle's path: the SDK's PeriodicReader calls the
//! exporter from its own thread. A failed batch is dropped, never queued, so a collector
//! that is down, slow or refusing costs bounded memory; the next interval exports the
//! current values again, which is how export resumes when the collector comes back.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
use opentelemetry_otlp::{
    Compression, MetricExporter, Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;

use crate::config::{OtlpCompression, OtlpConfig, OtlpProtocol};

#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    #[error("{path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("OTLP header {name:?}: {msg}")]
    Header { name: String, msg: String },
    #[error("building the OTLP exporter: {0}")]
    Build(String),
}

/// Outcomes of OTLP exports, read by the agent's own metrics.
#[derive(Debug, Default)]
pub struct ExportStats {
    pub successes: AtomicU64,
    pub failures: AtomicU64,
    pub exported_points: AtomicU64,
    pub dropped_points: AtomicU64,
}

/// How often a failing exporter may log (the count of the rest goes with the next line).
pub const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

/// Logs the first failure, then at most one line per [`FAILURE_LOG_EVERY`] (a flapping
/// collector included), and one line when exports resume after a logged failure.
#[derive(Debug, Default)]
struct FailureLog {
    last_logged: Option<Instant>,
    unlogged: u64,
    in_a_row: u64,
    warned_this_streak: bool,
}

impl FailureLog {
    fn failed(&mut self, endpoint: &str, err: &dyn std::fmt::Display) {
        self.in_a_row += 1;
        let due = self
            .last_logged
            .is_none_or(|t| t.elapsed() >= FAILURE_LOG_EVERY);
        if !due {
            self.unlogged += 1;
            return;
        }
        let more = match self.unlogged {
            0 => String::new(),
            n => format!(" ({n} more failures since the last message)"),
        };
        log::warn!(
            "OTLP export to {endpoint} failed: {err}{more}; the data of failed exports is dropped"
        );
        self.last_logged = Some(Instant::now());
        self.unlogged = 0;
        self.warned_this_streak = true;
    }

    fn succeeded(&mut self, endpoint: &str) {
        if self.warned_this_streak {
            log::info!(
                "OTLP export to {endpoint} resumed after {} failed exports",
                self.in_a_row
            );
        }
        self.in_a_row = 0;
        self.warned_this_streak = false;
    }
}

fn data_points(rm: &ResourceMetrics) -> u64 {
    fn count<T>(d: &MetricData<T>) -> usize {
        match d {
            MetricData::Gauge(g) => g.data_points().count(),
            MetricData::Sum(s) => s.data_points().count(),
            MetricData::Histogram(h) => h.data_points().count(),
            MetricData::ExponentialHistogram(h) => h.data_points().count(),
        }
    }
    rm.scope_metrics()
        .flat_map(|sm| sm.metrics())
        .map(|m| match m.data() {
            AggregatedMetrics::F64(d) => count(d),
            AggregatedMetrics::U64(d) => count(d),
            AggregatedMetrics::I64(d) => count(d),
        } as u64)
        .sum()
}

/// The OTLP exporter with its outcomes counted.
#[derive(Debug)]
pub struct CountingExporter<E> {
    inner: E,
    endpoint: String,
    stats: Arc<ExportStats>,
    log: Mutex<FailureLog>,
}

impl<E> CountingExporter<E> {
    pub fn new(inner: E, endpoint: String, stats: Arc<ExportStats>) -> Self {
        Self {
            inner,
            endpoint,
            stats,
            log: Mutex::new(FailureLog::default()),
        }
    }
}

impl<E: PushMetricExporter> PushMetricExporter for CountingExporter<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let points = data_points(metrics);
        let result = self.inner.export(metrics).await;
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        match &result {
            Ok(()) => {
                self.stats.successes.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .exported_points
                    .fetch_add(points, Ordering::Relaxed);
                log.succeeded(&self.endpoint);
            }
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .dropped_points
                    .fetch_add(points, Ordering::Relaxed);
                log.failed(&self.endpoint, e);
            }
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, ExporterError> {
    std::fs::read(path).map_err(|source| ExporterError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn header_map(headers: &BTreeMap<String, String>) -> Result<http::HeaderMap, ExporterError> {
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        let bad = |msg: String| ExporterError::Header {
            name: k.clone(),
            msg,
        };
        let name = http::HeaderName::from_str(k).map_err(|e| bad(e.to_string()))?;
        let value = http::HeaderValue::from_str(v).map_err(|e| bad(e.to_string()))?;
        map.insert(name, value);
    }
    Ok(map)
}

/// The HTTP client with our resolved headers set last, so they win over the exporter
/// library's own reading of OTEL_EXPORTER_OTLP_HEADERS (flags > environment > file).
#[derive(Debug)]
struct FixedHeaders {
    inner: reqwest::blocking::Client,
    headers: http::HeaderMap,
}

#[async_trait::async_trait]
impl HttpClient for FixedHeaders {
    async fn send_bytes(&self, mut request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        for (k, v) in &self.headers {
            request.headers_mut().insert(k.clone(), v.clone());
        }
        self.inner.send_bytes(request).await
    }
}

/// Build the exporter for `cfg`. gRPC channels are created inside `runtime`, whose
/// worker threads drive their I/O for the process's lifetime.
pub fn build(
    cfg: &OtlpConfig,
    runtime: &tokio::runtime::Handle,
) -> Result<MetricExporter, ExporterError> {
    let build_err = |e: opentelemetry_otlp::ExporterBuildError| ExporterError::Build(e.to_string());
    let headers = header_map(&cfg.headers)?;
    let ca = cfg.ca_file.as_deref().map(read).transpose()?;
    let identity = match (&cfg.client_cert_file, &cfg.client_key_file) {
        (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
        _ => None,
    };
    let https = cfg.endpoint.starts_with("https://");
    match cfg.protocol {
        OtlpProtocol::Grpc => {
            let _entered = runtime.enter();
            let mut b = MetricExporter::builder()
                .with_tonic()
                .with_endpoint(cfg.endpoint.clone())
                .with_timeout(cfg.timeout)
                .with_temporality(Temporality::Cumulative);
            if cfg.compression == OtlpCompression::Gzip {
                b = b.with_compression(Compression::Gzip);
            }
            if https {
                let mut tls = ClientTlsConfig::new();
                tls = match &ca {
                    Some(pem) => tls.ca_certificate(Certificate::from_pem(pem)),
                    None => tls.with_native_roots(),
                };
                if let Some((cert, key)) = &identity {
                    tls = tls.identity(Identity::from_pem(cert, key));
                }
                b = b.with_tls_config(tls);
            }
            let metadata: Vec<(
                tonic::metadata::MetadataKey<tonic::metadata::Ascii>,
                tonic::metadata::AsciiMetadataValue,
            )> = cfg
                .headers
                .iter()
                .map(|(k, v)| {
                    let bad = |msg: String| ExporterError::Header {
                        name: k.clone(),
                        msg,
                    };
                    Ok((
                        k.parse()
                            .map_err(|e: tonic::metadata::errors::InvalidMetadataKey| {
                                bad(e.to_string())
                            })?,
                        v.parse()
                            .map_err(|e: tonic::metadata::errors::InvalidMetadataValue| {
                                bad(e.to_string())
                            })?,
                    ))
                })
                .collect::<Result<_, ExporterError>>()?;
            // Applied after the library's own OTEL_EXPORTER_OTLP_HEADERS, so ours win.
            b = b.with_interceptor(move |mut req: tonic::Request<()>| {
                for (k, v) in &metadata {
                    req.metadata_mut().insert(k.clone(), v.clone());
                }
                Ok(req)
            });
            b.build().map_err(build_err)
        }
        OtlpProtocol::HttpProtobuf => {
            // A process-wide crypto provider for reqwest's rustls (built without one so
            // that ring, already needed by tonic, is the only one). Fails harmlessly if
            // one is installed.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let timeout = cfg.timeout;
            // reqwest's blocking client owns a runtime: build it off any async context.
            let client = std::thread::spawn(move || {
                let mut b = reqwest::blocking::Client::builder().timeout(timeout);
                if let Some(pem) = ca {
                    b = b.tls_certs_only([reqwest::Certificate::from_pem(&pem)?]);
                }
                if let Some((mut cert, key)) = identity {
                    cert.push(b'\n');
                    cert.extend_from_slice(&key);
                    b = b.identity(reqwest::Identity::from_pem(&cert)?);
                }
                b.build()
            })
            .join()
            .map_err(|_| ExporterError::Build("the HTTP client builder panicked".into()))?
            .map_err(|e| ExporterError::Build(format!("HTTP client: {e}")))?;
            let mut b = MetricExporter::builder()
                .with_http()
                .with_http_client(FixedHeaders {
                    inner: client,
                    headers,
                })
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(cfg.endpoint.clone())
                .with_timeout(cfg.timeout)
                .with_temporality(Temporality::Cumulative);
            if cfg.compression == OtlpCompression::Gzip {
                b = b.with_compression(Compression::Gzip);
            }
            b.build().map_err(build_err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_log_once_per_period_and_resumption_once() {
        let mut l = FailureLog::default();
        l.failed("x", &"down");
        assert!(l.last_logged.is_some());
        for _ in 0..100 {
            l.failed("x", &"down");
        }
        assert_eq!((l.in_a_row, l.unlogged), (101, 100));
        l.succeeded("x");
        assert_eq!(l.in_a_row, 0);
        // A flapping collector stays rate limited: the next failure is not logged.
        l.failed("x", &"down");
        assert!(!l.warned_this_streak);
        assert_eq!(l.unlogged, 101);
    }

    #[test]
    fn bad_headers_are_named() {
        let h = BTreeMap::from([("bad header".to_string(), "v".to_string())]);
        assert!(header_map(&h)
            .unwrap_err()
            .to_string()
            .contains("bad header"));
    }
}
