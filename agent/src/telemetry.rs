//! The one place that builds the OpenTelemetry MeterProviders: the resource, an OTLP
//! PeriodicReader (when an endpoint is configured), a manual reader behind the Prometheus
//! endpoint (when `--prometheus-listen` is set), and one instrument per catalog entry.
//! Each reader gets a provider of its own: an observable instrument's callback observes
//! into the measures of every reader of its provider (opentelemetry_sdk 0.33
//! `Observable::observe`), so with one shared provider each OTLP collection left its
//! points in the Prometheus reader's gauges until the next scrape, which then showed
//! series of objects already gone.
//!
//! The run loop hands every finished [`Report`] to [`Telemetry::publish`], which applies
//! the catalog once and swaps the result into a shared slot. Observable callbacks only
//! read that slot: no I/O and no report walking in callbacks, whichever reader collects.
//! The Prometheus endpoint's `/healthz` and `/readyz` read when that slot was last filled.
//! Export I/O runs on the SDK's reader thread and a small runtime owned here, never on
//! the collection cycle's path.

use std::any::Any;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use opentelemetry::metrics::{Histogram, Meter, MeterProvider as _};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, ManualReader, PeriodicReader, Pipeline, SdkMeterProvider, Temporality,
};
use opentelemetry_sdk::resource::{ResourceDetector, TelemetryResourceDetector};
use opentelemetry_sdk::Resource;

use crate::config::{Limit, Limits, TelemetryConfig};
use crate::report::Report;
use crate::sinks::catalog::{self, AgentValue, AttrValue, Instrument, Source};
use crate::sinks::{health, otlp, prometheus};

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error(transparent)]
    Exporter(#[from] otlp::ExporterError),
    #[error("starting the telemetry runtime: {0}")]
    Runtime(std::io::Error),
    #[error("--prometheus-listen {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The catalog applied to one report, as the SDK wants it.
struct Frame {
    /// Per catalog entry: (value, attributes).
    points: Vec<Vec<(f64, Vec<KeyValue>)>>,
    /// When it was published: /healthz and /readyz derive from it.
    published_at: Instant,
}

/// State shared between the run loop (writer) and the instruments' callbacks (readers).
struct Shared {
    frame: RwLock<Option<Arc<Frame>>>,
    /// Replaced by a config reload ([`Telemetry::set_limits`]).
    limits: RwLock<Limits>,
    cycles: AtomicU64,
    /// Per source name; bounded by `limits.max_sources`.
    source_errors: Mutex<BTreeMap<String, u64>>,
    capped: Mutex<BTreeMap<Limit, u64>>,
    export: Arc<otlp::ExportStats>,
    scrapes: Arc<AtomicU64>,
}

fn key_value(key: &'static str, v: &AttrValue) -> KeyValue {
    match v {
        AttrValue::Str(s) => KeyValue::new(key, s.clone()),
        AttrValue::Int(i) => KeyValue::new(key, *i),
        AttrValue::F64(x) => KeyValue::new(key, *x),
        AttrValue::Bool(b) => KeyValue::new(key, *b),
    }
}

/// The manual reader the Prometheus endpoint collects, shared with the provider.
#[derive(Debug, Clone)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline)
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// Host facts for the resource, from uname(2).
fn uname() -> Option<(String, String)> {
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname fills the struct it is given; the fields are NUL-terminated.
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Some((field(&u.nodename), field(&u.release)))
}

/// OpenTelemetry's name for the CPU architecture (semantic conventions `host.arch`).
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "x86",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        other => other,
    }
}

/// The resource: defaults and detected host facts, then the configured attributes
/// (`K8S_*`, config file, OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME) over them.
pub fn resource(configured: &BTreeMap<String, String>) -> Resource {
    let mut attrs: BTreeMap<String, String> = BTreeMap::new();
    attrs.insert("service.name".into(), "skewscope".into());
    attrs.insert("service.version".into(), env!("CARGO_PKG_VERSION").into());
    attrs.insert("os.type".into(), "linux".into());
    attrs.insert("host.arch".into(), host_arch().into());
    if let Some((host, release)) = uname() {
        attrs.insert("host.name".into(), host);
        attrs.insert("os.version".into(), release);
    }
    attrs.extend(configured.iter().map(|(k, v)| (k.clone(), v.clone())));
    let sdk = TelemetryResourceDetector.detect();
    Resource::builder_empty()
        .with_attributes(sdk.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())))
        .with_attributes(attrs.into_iter().map(|(k, v)| KeyValue::new(k, v)))
        .build()
}

/// The running telemetry pipeline. Call [`Telemetry::shutdown`] at exit (outside any
/// async context) to export the last report.
pub struct Telemetry {
    /// One per reader (OTLP, Prometheus), each with its own instruments.
    pipelines: Vec<ReaderPipeline>,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
    prometheus_addr: Option<SocketAddr>,
}

/// A provider with one reader and the instruments registered on it.
struct ReaderPipeline {
    provider: SdkMeterProvider,
    cycle_duration: Histogram<f64>,
    _instruments: Vec<Box<dyn Any + Send + Sync>>,
}

impl ReaderPipeline {
    fn new(reader: impl MetricReader, resource: Resource, shared: &Arc<Shared>) -> Self {
        let provider = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(reader)
            .build();
        let meter = provider.meter_with_scope(
            InstrumentationScope::builder("skewscope")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        );
        let (instruments, cycle_duration) = register(&meter, shared);
        Self {
            provider,
            cycle_duration,
            _instruments: instruments,
        }
    }
}

impl Telemetry {
    pub fn start(cfg: &TelemetryConfig) -> Result<Self, TelemetryError> {
        let started = Instant::now();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("skewscope-telemetry")
            .enable_all()
            .build()
            .map_err(TelemetryError::Runtime)?;
        let export = Arc::new(otlp::ExportStats::default());
        let shared = Arc::new(Shared {
            frame: RwLock::new(None),
            limits: RwLock::new(cfg.limits),
            cycles: AtomicU64::new(0),
            source_errors: Mutex::new(BTreeMap::new()),
            capped: Mutex::new(Limit::ALL.iter().map(|l| (*l, 0)).collect()),
            export: export.clone(),
            scrapes: Arc::new(AtomicU64::new(0)),
        });

        let resource = resource(&cfg.resource);
        let mut pipelines = Vec::new();
        if let Some(o) = &cfg.otlp {
            let exporter = otlp::build(o, runtime.handle())?;
            let exporter = otlp::CountingExporter::new(exporter, o.endpoint.clone(), export);
            let reader = PeriodicReader::builder(exporter)
                .with_interval(cfg.export_interval)
                .build();
            pipelines.push(ReaderPipeline::new(reader, resource.clone(), &shared));
            log::info!(
                "exporting metrics over OTLP ({:?}) to {} every {:?}",
                o.protocol,
                o.endpoint,
                cfg.export_interval
            );
        }
        let manual = cfg.prometheus_listen.map(|_| {
            Arc::new(
                ManualReader::builder()
                    .with_temporality(Temporality::Cumulative)
                    .build(),
            )
        });
        if let Some(m) = &manual {
            pipelines.push(ReaderPipeline::new(
                SharedReader(m.clone()),
                resource,
                &shared,
            ));
        }

        let mut prometheus_addr = None;
        if let (Some(addr), Some(manual)) = (cfg.prometheus_listen, manual) {
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind(addr))
                .map_err(|source| TelemetryError::Listen { addr, source })?;
            let local = listener.local_addr().unwrap_or(addr);
            let scrape: prometheus::Scrape = Arc::new(move || {
                let mut rm = ResourceMetrics::default();
                manual.collect(&mut rm).map_err(|e| e.to_string())?;
                Ok(prometheus::render(&rm))
            });
            let (live, ready) = (shared.clone(), shared.clone());
            let interval = cfg.interval;
            let endpoints = prometheus::Endpoints {
                scrape,
                healthz: Arc::new(move || {
                    let last = frame(&live).map(|f| f.published_at);
                    health::liveness(Instant::now(), started, last, interval)
                }),
                readyz: Arc::new(move || health::readiness(frame(&ready).map(|f| f.published_at))),
                scrapes: shared.scrapes.clone(),
            };
            runtime.spawn(prometheus::serve(listener, endpoints));
            log::info!(
                "serving Prometheus metrics on http://{local}/metrics (and /healthz, /readyz)"
            );
            prometheus_addr = Some(local);
        }

        Ok(Self {
            pipelines,
            shared,
            runtime: Some(runtime),
            prometheus_addr,
        })
    }

    /// Where /metrics is served (the bound address, when port 0 was asked for).
    pub fn prometheus_addr(&self) -> Option<SocketAddr> {
        self.prometheus_addr
    }

    /// Make `report` the one every instrument reads; `cycle` is how long collecting and
    /// modelling it took. Pure computation: never waits on an exporter.
    pub fn publish(&self, report: &Report, cycle: Duration) {
        let limits = *self.shared.limits.read().unwrap_or_else(|p| p.into_inner());
        let eval = catalog::evaluate(&catalog::report_json(report, &limits), &limits);
        let frame = Frame {
            points: eval
                .points
                .iter()
                .map(|pts| {
                    pts.iter()
                        .map(|p| {
                            let attrs = p.attrs.iter().map(|(k, v)| key_value(k, v)).collect();
                            (p.value, attrs)
                        })
                        .collect()
                })
                .collect(),
            published_at: Instant::now(),
        };
        {
            let mut errors = lock(&self.shared.source_errors);
            for s in &report.sources {
                let known = errors.contains_key(&s.name);
                if !known && errors.len() >= limits.max_sources {
                    continue;
                }
                let n = errors.entry(s.name.clone()).or_insert(0);
                if s.status == crate::snapshot::SourceOutcome::Failed {
                    *n += 1;
                }
            }
        }
        {
            let mut capped = lock(&self.shared.capped);
            for (limit, n) in &eval.capped {
                *capped.entry(*limit).or_insert(0) += n;
            }
        }
        self.shared.cycles.fetch_add(1, Ordering::Relaxed);
        for p in &self.pipelines {
            p.cycle_duration.record(cycle.as_secs_f64(), &[]);
        }
        *self.shared.frame.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(frame));
    }

    /// New cardinality bounds (a config reload), applied from the next published report;
    /// series beyond a lowered bound stop being reported then.
    pub fn set_limits(&self, limits: Limits) {
        *self
            .shared
            .limits
            .write()
            .unwrap_or_else(|p| p.into_inner()) = limits;
    }

    /// Export the last report and stop. Bounded: the SDK waits at most 5 s for the final
    /// export, then the runtime gets 1 s to wind down.
    pub fn shutdown(mut self) {
        for p in &self.pipelines {
            if let Err(e) = p.provider.shutdown() {
                log::warn!("telemetry shutdown: {e}");
            }
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn frame(shared: &Shared) -> Option<Arc<Frame>> {
    shared
        .frame
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

/// One instrument per catalog entry.
fn register(
    meter: &Meter,
    shared: &Arc<Shared>,
) -> (Vec<Box<dyn Any + Send + Sync>>, Histogram<f64>) {
    let mut keep: Vec<Box<dyn Any + Send + Sync>> = Vec::new();
    let mut cycle_duration = None;
    for (i, def) in catalog::CATALOG.iter().enumerate() {
        let sh = shared.clone();
        match (&def.source, def.instrument) {
            (Source::Report(_), Instrument::Gauge) => keep.push(Box::new(
                meter
                    .f64_observable_gauge(def.name)
                    .with_unit(def.unit)
                    .with_description(def.description)
                    .with_callback(move |o| {
                        if let Some(f) = frame(&sh) {
                            for (v, attrs) in &f.points[i] {
                                o.observe(*v, attrs);
                            }
                        }
                    })
                    .build(),
            )),
            (Source::Report(_), Instrument::Counter) => keep.push(Box::new(
                meter
                    .f64_observable_counter(def.name)
                    .with_unit(def.unit)
                    .with_description(def.description)
                    .with_callback(move |o| {
                        if let Some(f) = frame(&sh) {
                            for (v, attrs) in &f.points[i] {
                                o.observe(*v, attrs);
                            }
                        }
                    })
                    .build(),
            )),
            (Source::Agent { value, .. }, Instrument::Histogram(bounds)) => {
                debug_assert_eq!(*value, AgentValue::CycleDuration);
                cycle_duration = Some(
                    meter
                        .f64_histogram(def.name)
                        .with_unit(def.unit)
                        .with_description(def.description)
                        .with_boundaries(bounds.to_vec())
                        .build(),
                );
            }
            (Source::Agent { value, .. }, Instrument::Counter) => {
                let value = *value;
                keep.push(Box::new(
                    meter
                        .u64_observable_counter(def.name)
                        .with_unit(def.unit)
                        .with_description(def.description)
                        .with_callback(move |o| observe_agent(&sh, value, o))
                        .build(),
                ));
            }
            (source, instrument) => {
                unreachable!("no instrument for {source:?} as {instrument:?}: extend register()")
            }
        }
    }
    let cycle_duration = cycle_duration.expect("the catalog has the cycle duration histogram");
    (keep, cycle_duration)
}

fn observe_agent(
    sh: &Shared,
    value: AgentValue,
    o: &dyn opentelemetry::metrics::AsyncInstrument<u64>,
) {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    match value {
        AgentValue::Cycles => o.observe(load(&sh.cycles), &[]),
        AgentValue::ExportSuccesses => o.observe(load(&sh.export.successes), &[]),
        AgentValue::ExportFailures => o.observe(load(&sh.export.failures), &[]),
        AgentValue::ExportedPoints => o.observe(load(&sh.export.exported_points), &[]),
        AgentValue::DroppedPoints => o.observe(load(&sh.export.dropped_points), &[]),
        AgentValue::Scrapes => o.observe(load(&sh.scrapes), &[]),
        AgentValue::SourceErrors => {
            for (name, n) in lock(&sh.source_errors).iter() {
                o.observe(*n, &[KeyValue::new("source", name.clone())]);
            }
        }
        AgentValue::CardinalityCapped => {
            for (limit, n) in lock(&sh.capped).iter() {
                o.observe(*n, &[KeyValue::new("limit", limit.key())]);
            }
        }
        AgentValue::CycleDuration => {}
    }
}

#[cfg(test)]
mod tests;
