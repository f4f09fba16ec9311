//! The flags of `skewscope baseline record|compare` (cli.rs only names the subcommand).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::compare::{Part, Tolerances};
use crate::config::ProbeBudgetFlag;

#[derive(Debug, Args)]
#[command(
    long_about = "Record index distributions and a topology fingerprint before a canary, and \
                  compare a later run with them by the seeds' promotion rules.\n\n\
                  Exit codes: 0 promote (or recorded), 1 hold (a regression), 3 inconclusive \
                  (topology changed or too little data), 2 usage or input error."
)]
pub struct BaselineArgs {
    #[command(subcommand)]
    pub command: BaselineCommand,
}

#[derive(Debug, Subcommand)]
/// Boxed: the flags would make every `skewscope` command as large as these.
pub enum BaselineCommand {
    /// Collect for --duration and write a baseline file (schema skewscope.baseline/v1).
    Record(Box<RecordArgs>),
    /// Compare a baseline with a later one (or a live run): a verdict and its exit code.
    Compare(Box<CompareArgs>),
}

/// How a live recording collects: the same loop and sources as `run`.
#[derive(Debug, Args, Clone)]
pub struct LiveArgs {
    /// Seconds between collections (one cycle each).
    #[arg(long, value_name = "SECS", default_value_t = 1.0, value_parser = parse_secs)]
    pub interval: f64,
    /// Config file (TOML): its [model], [probes] and [shadow] tables apply; its SHA-256
    /// is part of the topology fingerprint.
    #[arg(long, value_name = "FILE", env = "SKEWSCOPE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Replay each group's flows against this candidate selector (repeatable), as
    /// `run --shadow-candidate`; the results are recorded beside the kernel default.
    #[arg(long = "shadow-candidate", value_name = "builtin:NAME|PATH.o")]
    pub shadow_candidates: Vec<String>,
    // The source flags of `run` (cli::SourceArgs), spelled again here so that this module
    // does not import cli, which imports it.
    /// Only these network devices (repeatable). Default: every multi-queue or
    /// bus-backed device.
    #[arg(long = "device", value_name = "DEV")]
    pub devices: Vec<String>,
    /// Do not load eBPF probes (no listener events, flows or ingress ages then).
    #[arg(long)]
    pub no_probes: bool,
    /// Fraction of each CPU the per-packet probes may take (as `run --probe-budget`).
    #[arg(long, value_name = "FRACTION|off")]
    pub probe_budget: Option<ProbeBudgetFlag>,
    /// Read captured `ethtool -S`/`ethtool -x` outputs from DIR (as `run --ethtool-dir`).
    #[arg(long, value_name = "DIR")]
    pub ethtool_dir: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct RecordArgs {
    /// How long to record, in seconds (Ctrl-C ends earlier and still writes the file).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: f64,
    /// Baseline file to write (JSON); "-" for stdout.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Also write a self-contained HTML report of the recording.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    #[command(flatten)]
    pub live: LiveArgs,
}

#[derive(Debug, Args, Clone)]
pub struct CompareArgs {
    /// The baseline recorded before the change.
    #[arg(value_name = "BEFORE")]
    pub before: PathBuf,
    /// The baseline recorded after it (or --live).
    #[arg(
        value_name = "AFTER",
        required_unless_present = "live",
        conflicts_with = "live"
    )]
    pub after: Option<PathBuf>,
    /// Record the AFTER side now, for --duration seconds.
    #[arg(long, requires = "duration")]
    pub live: bool,
    /// Seconds to record with --live.
    #[arg(long, value_name = "SECS", value_parser = parse_secs, requires = "live")]
    pub duration: Option<f64>,
    /// With --live: also write the live recording as a baseline file.
    #[arg(long, value_name = "FILE", requires = "live")]
    pub out: Option<PathBuf>,
    /// Print the comparison as JSON (schema skewscope.baseline-compare/v1).
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML report (before/after overlays).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Only judge reuseport groups on this port (repeatable); the others are left out.
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,
    /// Which parts are judged [default: all of them].
    #[arg(long, value_enum, value_delimiter = ',', value_name = "PART")]
    pub only: Vec<Part>,
    #[command(flatten)]
    pub tolerances: ToleranceArgs,
    #[command(flatten)]
    pub live_args: LiveArgs,
}

/// Tolerances of the verdict. A tail regresses when after > before + max(|before| ×
/// relative, absolute floor): the floor keeps near-zero baselines from failing on noise.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Tolerances")]
pub struct ToleranceArgs {
    /// Relative growth of a tail (q95, q99) allowed before it counts as a regression.
    #[arg(long, value_name = "FRACTION", default_value_t = Tolerances::default().relative)]
    pub tolerance: f64,
    /// Absolute floor for LSI.
    #[arg(long, value_name = "X", default_value_t = Tolerances::default().lsi)]
    pub lsi_floor: f64,
    /// Absolute floor for LQD of TCP groups (accept-queue connections).
    #[arg(long, value_name = "N", default_value_t = Tolerances::default().lqd_connections)]
    pub lqd_floor: f64,
    /// Absolute floor for LQD of UDP groups (receive-queue bytes).
    #[arg(long, value_name = "BYTES", default_value_t = Tolerances::default().lqd_bytes)]
    pub lqd_floor_bytes: f64,
    /// Absolute floor for DLG, ingress age p95 and HAF95, in µs.
    #[arg(long, value_name = "US", default_value_t = Tolerances::default().age_us)]
    pub age_floor_us: f64,
    /// Absolute floor for QPI.
    #[arg(long, value_name = "X", default_value_t = Tolerances::default().qpi)]
    pub qpi_floor: f64,
    /// Relative growth of drop and reset rates allowed (guardrails).
    #[arg(long, value_name = "FRACTION", default_value_t = Tolerances::default().guardrail_relative)]
    pub guardrail_tolerance: f64,
    /// Absolute floor of drop and reset rates, per second.
    #[arg(long, value_name = "PER_SEC", default_value_t = Tolerances::default().guardrail_per_sec)]
    pub guardrail_floor_per_sec: f64,
    /// Fewest cycles a side needs (and a judged index needs values in) to be judged.
    #[arg(long, value_name = "N", default_value_t = Tolerances::default().min_cycles)]
    pub min_cycles: u64,
}

impl ToleranceArgs {
    pub fn tolerances(&self) -> Tolerances {
        Tolerances {
            relative: self.tolerance,
            lsi: self.lsi_floor,
            lqd_connections: self.lqd_floor,
            lqd_bytes: self.lqd_floor_bytes,
            age_us: self.age_floor_us,
            qpi: self.qpi_floor,
            guardrail_relative: self.guardrail_tolerance,
            guardrail_per_sec: self.guardrail_floor_per_sec,
            min_cycles: self.min_cycles,
        }
    }
}

fn parse_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.05..=604_800.0).contains(&v) {
        return Err(format!("{v} is outside 0.05..=604800 seconds"));
    }
    Ok(v)
}
