//! Command-line interface. Exit codes: 0 success, 1 runtime failure, 2 usage error.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::PossibleValue;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{LimitsFile, OtlpCompression, OtlpProtocol, Overrides};

#[derive(Debug, Parser)]
#[command(
    name = "skewscope",
    version,
    about = "Observe-only agent for SO_REUSEPORT listener skew and RSS queue polarization",
    long_about = "skewscope measures how unevenly a host's NIC RX queues, IRQs and NET_RX softirq \
                  CPUs share the load (QPI, ISI, SPI) and reports it. It only reads: it never \
                  changes ethtool settings, sysctls, IRQ affinity or socket steering.\n\n\
                  Exit codes: 0 success, 1 runtime failure, 2 usage error."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// procfs mount point (a DaemonSet mounts the host's at /host/proc).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/proc",
        env = "SKEWSCOPE_PROCFS"
    )]
    pub procfs: PathBuf,
    /// sysfs mount point (a DaemonSet mounts the host's at /host/sys).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/sys",
        env = "SKEWSCOPE_SYSFS"
    )]
    pub sysfs: PathBuf,
    /// Log filter (error, warn, info, debug, trace; or env_logger syntax).
    #[arg(
        long,
        global = true,
        value_name = "FILTER",
        default_value = "info",
        env = "SKEWSCOPE_LOG"
    )]
    pub log_level: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Collect every interval and print a live table (the default command).
    Run(RunArgs),
    /// Collect once and print indices (since boot, or over --duration).
    Snapshot(SnapshotArgs),
    /// Report what this kernel and these privileges let skewscope observe.
    Doctor(DoctorArgs),
    /// List the exported metrics (names, units, attributes).
    Metrics(MetricsArgs),
    /// Record the observed flows of reuseport groups to a trace for `shadow`.
    Record(RecordArgs),
    /// Replay candidate reuseport selectors over a trace in a private replica.
    Shadow(skewscope_shadow::cli::ShadowArgs),
    /// Predict each RX queue's load under candidate RSS indirection tables from the
    /// packets each table entry carried (the `ethtool -X` commands are printed, never run).
    RssShadow(RssShadowArgs),
    /// Record a baseline before a canary; compare after it (exit 0 promote, 1 hold,
    /// 3 inconclusive, 2 error).
    Baseline(crate::baseline::args::BaselineArgs),
}

#[derive(Debug, Args, Clone)]
pub struct RecordArgs {
    /// How long to record, in seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_interval)]
    pub duration: f64,
    /// Trace file to write (JSON lines); "-" for stdout.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args, Clone, Default)]
pub struct SourceArgs {
    /// Only these network devices (repeatable). Default: every multi-queue or
    /// bus-backed device.
    #[arg(long = "device", value_name = "DEV")]
    pub devices: Vec<String>,
    /// Do not load eBPF probes.
    #[arg(long)]
    pub no_probes: bool,
    /// Fraction of each CPU the per-packet probes may take, e.g. 0.015 (the default, or
    /// `[probes]` in --config); above it they are attached for part of the time and
    /// their counts are estimates. `off`: attached all the time, exact at any cost.
    #[arg(long, value_name = "FRACTION|off")]
    pub probe_budget: Option<crate::config::ProbeBudgetFlag>,
    /// Where per-listener events come from: the first the kernel accepts (auto, the
    /// default, or `[probes] listener_hook`) or this one only.
    #[arg(long, value_name = "auto|tp_btf|fentry|kprobe")]
    pub listener_hook: Option<String>,
    /// Where UDP reads are aged: the first the kernel accepts (auto, the default, or
    /// `[probes] rx_read_hook`) or this one only.
    #[arg(long, value_name = "auto|fentry|kprobe|tracepoints")]
    pub rx_read_hook: Option<String>,
    /// Timestamp 1 in N packets to watched ports for ingress ages (default 16, or
    /// `[probes] age_sample_every`; 1: every one).
    #[arg(long, value_name = "N")]
    pub age_sample_every: Option<u32>,
    /// Count exact SO_REUSEPORT selections and their hashes (per-listener
    /// `selections`): auto (fexit, else kprobe + kretprobe on reuseport_select_sock),
    /// fexit, kprobe, or off [default: off, or `[probes] selection_hook` in --config].
    #[arg(long, value_name = "auto|fexit|kprobe|off")]
    pub selection_hook: Option<crate::config::SelectionHookSetting>,
    /// Read captured `ethtool -S`/`ethtool -x` outputs from DIR (files named like a
    /// sosreport's: ethtool_-S_DEV, ethtool_-x_DEV) instead of asking the kernel.
    #[arg(long, value_name = "DIR")]
    pub ethtool_dir: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Seconds between collections [default: 1, or interval_secs in --config].
    #[arg(long, value_name = "SECS", value_parser = parse_interval)]
    pub interval: Option<f64>,
    /// What to print each cycle.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Stop after this many reports (default: until Ctrl-C / SIGTERM).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Replay each watched reuseport group's recent flows against this candidate selector
    /// (repeatable; replaces `[shadow] candidates` of --config): builtin:cpu,
    /// builtin:random, builtin:weighted, builtin:isolate-heavy, or PATH.o. Reported beside
    /// the kernel default as `shadow` (docs/shadow.md).
    #[arg(long = "shadow-candidate", value_name = "builtin:NAME|PATH.o")]
    pub shadow_candidates: Vec<String>,
    /// Boxed: the export flags would make every [`Command`] as large as `run`.
    #[command(flatten)]
    pub telemetry: Box<TelemetryArgs>,
}

impl Default for RunArgs {
    fn default() -> Self {
        Self {
            interval: None,
            output: OutputFormat::Table,
            count: None,
            sources: SourceArgs::default(),
            shadow_candidates: Vec::new(),
            telemetry: Box::default(),
        }
    }
}

impl RunArgs {
    /// The settings these flags override (config resolution takes them from here).
    pub fn overrides(&self) -> Overrides {
        let t = &self.telemetry;
        Overrides {
            interval_secs: self.interval,
            otlp_endpoint: t.otlp_endpoint.clone(),
            otlp_protocol: t.otlp_protocol,
            otlp_headers: t.otlp_headers.clone(),
            otlp_timeout_secs: t.otlp_timeout_secs,
            otlp_compression: t.otlp_compression,
            otlp_ca_file: t.otlp_ca_file.clone(),
            otlp_client_cert_file: t.otlp_client_cert_file.clone(),
            otlp_client_key_file: t.otlp_client_key_file.clone(),
            export_interval_secs: t.export_interval_secs,
            prometheus_listen: t.prometheus_listen,
            limits: LimitsFile {
                max_cpus: t.max_cpus,
                max_devices: t.max_devices,
                max_queues_per_device: t.max_queues_per_device,
                max_groups: t.max_groups,
                max_listeners_per_group: t.max_listeners_per_group,
                top_flows: t.top_flows,
                max_sources: None,
            },
        }
    }
}

/// Export settings. Each flag overrides the OpenTelemetry environment variable and the
/// config file key of the same meaning (docs/configuration.md).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Export")]
pub struct TelemetryArgs {
    /// Config file (TOML): [otlp], [prometheus], [limits], [resource], [model], [shadow].
    #[arg(long, value_name = "FILE", env = "SKEWSCOPE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Export metrics over OTLP to this collector URL (e.g. http://127.0.0.1:4317 for
    /// gRPC). Also OTEL_EXPORTER_OTLP_(METRICS_)ENDPOINT. None anywhere: no export.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// OTLP transport [default: http/protobuf].
    #[arg(long, value_enum, value_name = "PROTOCOL")]
    pub otlp_protocol: Option<OtlpProtocol>,
    /// Header sent with every export (repeatable), e.g. x-api-key=SECRET.
    #[arg(long = "otlp-header", value_name = "KEY=VALUE")]
    pub otlp_headers: Vec<String>,
    /// Deadline of one export, retries included [default: 10].
    #[arg(long, value_name = "SECS")]
    pub otlp_timeout_secs: Option<f64>,
    /// Compress export requests [default: none].
    #[arg(long, value_enum, value_name = "ALGO")]
    pub otlp_compression: Option<OtlpCompression>,
    /// PEM CA bundle that signs the collector's certificate (https endpoints).
    #[arg(long, value_name = "FILE")]
    pub otlp_ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS.
    #[arg(long, value_name = "FILE")]
    pub otlp_client_cert_file: Option<PathBuf>,
    /// PEM key of --otlp-client-cert-file.
    #[arg(long, value_name = "FILE")]
    pub otlp_client_key_file: Option<PathBuf>,
    /// Seconds between OTLP exports [default: 10]. Also OTEL_METRIC_EXPORT_INTERVAL (ms).
    #[arg(long, value_name = "SECS")]
    pub export_interval_secs: Option<f64>,
    /// Serve Prometheus /metrics on this address (off by default), e.g. 127.0.0.1:9464;
    /// also /healthz and /readyz for Kubernetes probes.
    #[arg(long, value_name = "ADDR")]
    pub prometheus_listen: Option<SocketAddr>,
    /// Most CPUs exported per per-CPU metric [default: 1024].
    #[arg(long, value_name = "N", help_heading = "Cardinality")]
    pub max_cpus: Option<usize>,
    /// Most network devices exported [default: 16].
    #[arg(long, value_name = "N", help_heading = "Cardinality")]
    pub max_devices: Option<usize>,
    /// Most RX queues exported per device [default: 64].
    #[arg(long, value_name = "N", help_heading = "Cardinality")]
    pub max_queues_per_device: Option<usize>,
    /// Most SO_REUSEPORT groups exported [default: 32].
    #[arg(long, value_name = "N", help_heading = "Cardinality")]
    pub max_groups: Option<usize>,
    /// Most listeners exported per group [default: 32].
    #[arg(long, value_name = "N", help_heading = "Cardinality")]
    pub max_listeners_per_group: Option<usize>,
    /// Heaviest flows exported per group [default: 10].
    #[arg(long, value_name = "N", help_heading = "Cardinality")]
    pub top_flows: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A compact table, redrawn each cycle.
    Table,
    /// One JSON report per line.
    Json,
}

#[derive(Debug, Args, Clone)]
pub struct SnapshotArgs {
    /// Print the report as JSON (schema skewscope.snapshot/v1).
    #[arg(long)]
    pub json: bool,
    /// Measure over a window of SECS seconds instead of counters since boot.
    #[arg(long, value_name = "SECS", value_parser = parse_interval)]
    pub duration: Option<f64>,
    /// Config file (TOML): its [model] (e.g. top_flows) and [probes] settings; the
    /// export sections are for `run`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub sources: SourceArgs,
}

#[derive(Debug, Args, Clone)]
pub struct RssShadowArgs {
    /// The device (default: the one device whose report carries entry loads).
    #[arg(long, value_name = "DEV")]
    pub device: Option<String>,
    /// Live: measure over a window of SECS seconds [default: 5].
    #[arg(long, value_name = "SECS", value_parser = parse_interval, conflicts_with = "from")]
    pub duration: Option<f64>,
    /// A candidate table (repeatable; default: equal and balanced): equal,
    /// weight:W0,W1,… (ethtool -X weight), balanced, balanced:numa (only queues whose IRQ
    /// CPUs are on the NIC's NUMA node), or PATH (one queue per entry, or `ethtool -x` text).
    #[arg(
        long = "candidate",
        value_name = "equal|weight:W0,W1,…|balanced|balanced:numa|PATH"
    )]
    pub candidates: Vec<String>,
    /// Print JSON (schema skewscope.rss_shadow/v1).
    #[arg(long)]
    pub json: bool,
    /// Compute from a saved `snapshot --json` / `run --output json` report (the last line
    /// of a JSON-lines file) instead of collecting.
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct MetricsArgs {
    /// Print docs/metrics.md (generated from the metric catalog).
    #[arg(long)]
    pub markdown: bool,
}

#[derive(Debug, Args, Clone)]
pub struct DoctorArgs {
    /// Print the capability report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_interval(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.05..=86_400.0).contains(&v) {
        return Err(format!("{v} is outside 0.05..=86400 seconds"));
    }
    Ok(v)
}

// The flag values of config's enums: spelled here so config knows nothing of clap.
impl ValueEnum for OtlpProtocol {
    fn value_variants<'a>() -> &'a [Self] {
        &[Self::Grpc, Self::HttpProtobuf]
    }
    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Self::Grpc => PossibleValue::new("grpc").help("OTLP/gRPC (port 4317 by convention)"),
            Self::HttpProtobuf => PossibleValue::new("http/protobuf")
                .help("OTLP/HTTP with protobuf bodies (port 4318 by convention)"),
        })
    }
}

impl ValueEnum for OtlpCompression {
    fn value_variants<'a>() -> &'a [Self] {
        &[Self::None, Self::Gzip]
    }
    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(match self {
            Self::None => "none",
            Self::Gzip => "gzip",
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_flags_become_config_overrides() {
        let cli = Cli::try_parse_from([
            "skewscope",
            "run",
            "--interval",
            "2",
            "--otlp-protocol",
            "http/protobuf",
            "--otlp-compression",
            "gzip",
            "--otlp-header",
            "a=b",
            "--max-cpus",
            "4",
            "--prometheus-listen",
            "127.0.0.1:9464",
        ])
        .unwrap();
        let Some(Command::Run(args)) = cli.command else {
            panic!("not run");
        };
        let o = args.overrides();
        assert_eq!(o.interval_secs, Some(2.0));
        assert_eq!(o.otlp_protocol, Some(OtlpProtocol::HttpProtobuf));
        assert_eq!(o.otlp_compression, Some(OtlpCompression::Gzip));
        assert_eq!(o.otlp_headers, ["a=b"]);
        assert_eq!(o.limits.max_cpus, Some(4));
        assert_eq!(o.limits.max_sources, None);
        assert_eq!(o.prometheus_listen, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(RunArgs::default().overrides(), Overrides::default());
        assert!(Cli::try_parse_from(["skewscope", "run", "--otlp-protocol", "http"]).is_err());
    }
}
