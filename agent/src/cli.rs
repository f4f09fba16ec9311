//! Command-line interface. Exit codes: 0 success, 1 runtime failure, 2 usage error.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Read captured `ethtool -S`/`ethtool -x` outputs from DIR (files named like a
    /// sosreport's: ethtool_-S_DEV, ethtool_-x_DEV) instead of asking the kernel.
    #[arg(long, value_name = "DIR")]
    pub ethtool_dir: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Seconds between collections.
    #[arg(long, value_name = "SECS", default_value_t = 1.0, value_parser = parse_interval)]
    pub interval: f64,
    /// What to print each cycle.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Stop after this many reports (default: until Ctrl-C / SIGTERM).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    #[command(flatten)]
    pub sources: SourceArgs,
}

impl Default for RunArgs {
    fn default() -> Self {
        Self {
            interval: 1.0,
            output: OutputFormat::Table,
            count: None,
            sources: SourceArgs::default(),
        }
    }
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
    #[command(flatten)]
    pub sources: SourceArgs,
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
