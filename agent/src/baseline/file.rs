//! The baseline file: schema `skewscope.baseline/v1` (docs/baseline.md). Keys are only
//! ever added within v1, so a reader ignores keys it does not know and refuses a newer
//! schema version by name. Reading never panics: every failure names the file and the
//! field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::stats::Dist;
use super::view::ChannelsView;

pub const BASELINE_SCHEMA: &str = "skewscope.baseline/v1";
const SCHEMA_PREFIX: &str = "skewscope.baseline/v";
const SCHEMA_VERSION: u64 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub schema: String,
    /// The agent that recorded it (CARGO_PKG_VERSION).
    pub agent_version: String,
    /// Where it was recorded. Not part of the topology: a canary host is compared with
    /// a control host.
    pub host_name: Option<String>,
    pub started_unix_secs: f64,
    /// --duration asked for, and the seconds the recorded cycles cover.
    pub requested_secs: f64,
    pub recorded_secs: f64,
    pub interval_secs: f64,
    /// Reports recorded (one per cycle after the first).
    pub cycles: u64,
    /// Ended early by Ctrl-C / SIGTERM; the file holds what was recorded until then.
    pub interrupted: bool,
    /// The topology at the end of the recording.
    pub fingerprint: Fingerprint,
    /// Topology changes seen during the recording itself (the fingerprint of the first
    /// cycle against the last).
    pub fingerprint_changes: Vec<String>,
    pub groups: Vec<GroupBaseline>,
    pub devices: Vec<DeviceBaseline>,
    pub host: HostBaseline,
    pub shadow: Vec<ShadowBaseline>,
    /// The heaviest observed flows of the recording in the shadow trace format
    /// (docs/shadow.md): `jq -c '.flow_trace[]'` gives a file for `skewscope shadow`.
    pub flow_trace: Vec<TraceFlow>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// /proc/sys/kernel/osrelease.
    pub kernel: Option<String>,
    pub agent_version: String,
    /// "sha256:…" of the --config file's bytes; None without one.
    pub config_hash: Option<String>,
    /// The sysctls reports carry (net.core budget, backlog, RFS, tcp_migrate_req).
    pub sysctls: BTreeMap<String, Option<i64>>,
    pub devices: Vec<DeviceFingerprint>,
    pub groups: Vec<GroupFingerprint>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceFingerprint {
    pub name: String,
    pub driver: Option<String>,
    pub rx_queues: usize,
    pub channels: Option<ChannelsView>,
    /// "sha256:…" of the indirection table (entries as decimal, comma-separated).
    pub table_hash: Option<String>,
    /// "sha256:…" of the hash key as the report spells it (hex bytes).
    pub key_hash: Option<String>,
    pub hfunc: Option<String>,
    /// RX queue → CPUs its IRQs may run on (effective affinity where the kernel has it).
    pub irq_affinity: BTreeMap<u32, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupFingerprint {
    pub protocol: String,
    pub address: String,
    pub port: u16,
    pub netns: u64,
    /// Group size.
    pub listeners: usize,
    /// Owner commands, sorted and deduplicated.
    pub owners: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupBaseline {
    pub protocol: String,
    pub address: String,
    pub port: u16,
    /// Inode of the network namespace: changes when a pod restarts.
    pub netns: u64,
    /// Owner commands (comm), sorted and deduplicated: survives restarts.
    pub owners: Vec<String>,
    /// Containers (from the owners' cgroups): shown, not matched on (ids change on restart).
    pub containers: Vec<String>,
    /// Cycles the group was reported in.
    pub cycles: u64,
    /// Smallest and largest group size seen.
    pub listeners_min: usize,
    pub listeners_max: usize,
    pub indices: GroupIndexDists,
    /// Share of cycles in each regime (GREEN … RED).
    pub regimes: BTreeMap<String, f64>,
    /// Share of cycles with P_hot in [0, 0.1), [0.1, 0.2) … [0.9, 1]; empty without P_hot.
    pub p_hot_deciles: Vec<f64>,
    /// Socket drops (SK_MEMINFO_DROPS) during the recording, over all members.
    pub drops: u64,
    pub drops_per_sec: f64,
    /// Joins and leaves during the recording (restart windows).
    pub membership_changes: u64,
    /// Each listener's share of the group's events over the recording, largest first.
    pub listeners: Vec<ListenerShare>,
    /// One point per cycle, for the report's time series.
    pub series: Vec<GroupPoint>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupIndexDists {
    pub lsi: Option<Dist>,
    pub hcr_1: Option<Dist>,
    pub hcr_5: Option<Dist>,
    pub lqd: Option<Dist>,
    pub bci: Option<Dist>,
    pub dlg_us: Option<Dist>,
    pub ingress_age_p95_us: Option<Dist>,
    pub p_hot: Option<Dist>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListenerShare {
    pub inode: u64,
    /// Position in socks[] when last seen (not stable across restarts).
    pub index: Option<u32>,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub container: Option<String>,
    pub events: u64,
    pub share: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupPoint {
    /// Seconds since the recording started (end of the cycle's window).
    pub t_secs: f64,
    pub lsi: Option<f64>,
    pub lqd: Option<f64>,
    pub dlg_us: Option<f64>,
    pub ingress_age_p95_us: Option<f64>,
    pub p_hot: Option<f64>,
    pub regime: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceBaseline {
    pub name: String,
    pub driver: Option<String>,
    pub cycles: u64,
    pub indices: DeviceIndexDists,
    pub regimes: BTreeMap<String, f64>,
    pub queues: Vec<QueueBaseline>,
    pub series: Vec<DevicePoint>,
    /// The RSS shadow's `current` and `balanced` tables over the cycles that had entry
    /// loads (docs/rss-shadow.md); absent without any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rss_shadow: Vec<RssShadowBaseline>,
}

/// One RSS-shadow policy of a device over a recording.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RssShadowBaseline {
    /// `current` or `balanced`.
    pub policy: String,
    /// Cycles that evaluated it.
    pub cycles: u64,
    /// Predicted QPI (for `current`: the measured one, summed from the entry loads).
    pub qpi: Option<Dist>,
    pub max_share: Option<Dist>,
    /// Entries the policy's table moves against the current one.
    pub entries_moved: Option<Dist>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceIndexDists {
    pub qpi: Option<Dist>,
    pub isi: Option<Dist>,
    pub isi_normalized: Option<Dist>,
    pub table_qpi: Option<Dist>,
    pub haf95_us: Option<Dist>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueBaseline {
    pub queue: u32,
    /// Packets per second over the cycles that counted them.
    pub rx_pps: Option<Dist>,
    pub mean_rx_pps: Option<f64>,
    pub mean_irqs_per_sec: Option<f64>,
    /// Share of the indirection table at the end of the recording.
    pub table_share: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DevicePoint {
    pub t_secs: f64,
    pub qpi: Option<f64>,
    pub haf95_us: Option<f64>,
    pub regime: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostBaseline {
    pub spi: Option<Dist>,
    pub net_rx_cpu_qpi: Option<Dist>,
    /// softnet_stat drops and squeezes over all CPUs during the recording.
    pub softnet_dropped: u64,
    pub softnet_dropped_per_sec: f64,
    pub time_squeeze: u64,
    /// TCP counters of the agent's network namespace over the recording.
    pub tcp: Option<TcpGuardrails>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TcpGuardrails {
    /// Tcp OutRsts (/proc/net/snmp): resets sent.
    pub out_resets: u64,
    pub out_resets_per_sec: f64,
    /// TcpExt ListenDrops (/proc/net/netstat): SYNs or connections dropped at listen.
    pub listen_drops: u64,
    pub listen_drops_per_sec: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShadowBaseline {
    pub protocol: String,
    pub address: String,
    pub port: u16,
    pub netns: u64,
    /// Distinct replays seen (a report repeats the latest one until the next).
    pub replays: u64,
    pub sockets: u32,
    /// Distinct errors of whole replays.
    pub errors: Vec<String>,
    /// `default` first, then the candidates.
    pub policies: Vec<ShadowPolicyBaseline>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShadowPolicyBaseline {
    pub policy: String,
    pub verifier: String,
    pub error: Option<String>,
    pub lsi: Option<Dist>,
    pub max_share: Option<Dist>,
    pub skew_reduction: Option<Dist>,
}

/// One line of a shadow trace (docs/shadow.md); checked with the shadow crate's own
/// parser when read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceFlow {
    pub proto: String,
    pub saddr: String,
    pub sport: u16,
    pub daddr: String,
    pub dport: u16,
    pub weight: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rx_cpu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rx_queue: Option<u32>,
}

impl TraceFlow {
    pub fn of(sample: &skewscope_shadow::FlowSample) -> Self {
        Self {
            proto: sample.proto.to_string(),
            saddr: sample.saddr.to_string(),
            sport: sample.sport,
            daddr: sample.daddr.to_string(),
            dport: sample.dport,
            weight: sample.weight,
            rx_cpu: sample.rx_cpu,
            rx_queue: sample.rx_queue,
        }
    }
}

/// Why a baseline file cannot be used: always the file, and the field where one is known.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: truncated: the JSON ends inside `{field}` ({msg})", path.display())]
    Truncated {
        path: PathBuf,
        field: String,
        msg: String,
    },
    #[error("{}: not JSON: {msg}", path.display())]
    NotJson { path: PathBuf, msg: String },
    #[error("{}: field `schema`: {msg}", path.display())]
    Schema { path: PathBuf, msg: String },
    #[error("{}: field `{field}`: {msg}", path.display())]
    Field {
        path: PathBuf,
        field: String,
        msg: String,
    },
}

/// Reads and checks a baseline file.
pub fn read(path: &Path) -> Result<Baseline, FileError> {
    let bytes = std::fs::read(path).map_err(|source| FileError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse(&bytes, path)
}

/// Parses and checks a baseline; `path` only names it in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Baseline, FileError> {
    let p = || path.to_owned();
    // The schema first: a file of another kind or version gets that answer, not the first
    // field this version happens to miss.
    let value: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) if e.is_eof() => {
            // Where it ends, as a field path: the typed reader walks as far as it can.
            let mut de = serde_json::Deserializer::from_slice(bytes);
            let field = match serde_path_to_error::deserialize::<_, Baseline>(&mut de) {
                Err(pe) => field_name(pe.path()),
                Ok(_) => ".".into(),
            };
            return Err(FileError::Truncated {
                path: p(),
                field,
                msg: e.to_string(),
            });
        }
        Err(e) => {
            return Err(FileError::NotJson {
                path: p(),
                msg: e.to_string(),
            })
        }
    };
    let Some(obj) = value.as_object() else {
        return Err(FileError::NotJson {
            path: p(),
            msg: "the top level is not an object".into(),
        });
    };
    check_schema(obj.get("schema"), obj.get("agent_version"))
        .map_err(|msg| FileError::Schema { path: p(), msg })?;
    let baseline: Baseline =
        serde_path_to_error::deserialize(value).map_err(|e| FileError::Field {
            path: p(),
            field: field_name(e.path()),
            msg: e.inner().to_string(),
        })?;
    check(&baseline).map_err(|(field, msg)| FileError::Field {
        path: p(),
        field,
        msg,
    })?;
    Ok(baseline)
}

fn field_name(path: &serde_path_to_error::Path) -> String {
    let s = path.to_string();
    if s.is_empty() || s == "." {
        "(top level)".into()
    } else {
        s
    }
}

fn check_schema(
    schema: Option<&serde_json::Value>,
    agent_version: Option<&serde_json::Value>,
) -> Result<(), String> {
    let Some(schema) = schema else {
        return Err(format!(
            "missing: not a skewscope baseline (expected {BASELINE_SCHEMA})"
        ));
    };
    let Some(s) = schema.as_str() else {
        return Err(format!(
            "{schema} is not a string (expected {BASELINE_SCHEMA})"
        ));
    };
    if s == BASELINE_SCHEMA {
        return Ok(());
    }
    let newer = s
        .strip_prefix(SCHEMA_PREFIX)
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&v| v > SCHEMA_VERSION);
    if newer.is_some() {
        let by = agent_version
            .and_then(|v| v.as_str())
            .map(|v| format!(" by skewscope {v}"))
            .unwrap_or_default();
        return Err(format!(
            "{s:?} was written{by}, newer than this skewscope {} (reads {BASELINE_SCHEMA}); \
             compare with the newer skewscope",
            env!("CARGO_PKG_VERSION")
        ));
    }
    let hint = if s.starts_with("skewscope.snapshot/") {
        " (a report of `snapshot --json`/`run --output json`; record a baseline with \
         `skewscope baseline record`)"
    } else {
        ""
    };
    Err(format!("{s:?} is not {BASELINE_SCHEMA}{hint}"))
}

/// What typing cannot say: numbers that must be finite, ordered or shares, and flows the
/// shadow trace parser accepts.
fn check(b: &Baseline) -> Result<(), (String, String)> {
    fn dist(field: String, d: &Option<Dist>) -> Result<(), (String, String)> {
        match d {
            Some(d) if !d.is_consistent() => Err((
                field,
                format!(
                    "p50 {} ≤ p95 {} ≤ p99 {} ≤ max {} with n {} > 0 does not hold",
                    d.p50, d.p95, d.p99, d.max, d.n
                ),
            )),
            _ => Ok(()),
        }
    }
    fn share(field: String, x: f64) -> Result<(), (String, String)> {
        if (0.0..=1.0 + 1e-9).contains(&x) {
            Ok(())
        } else {
            Err((field, format!("{x} is not a share in [0, 1]")))
        }
    }
    fn non_negative(field: &str, x: f64) -> Result<(), (String, String)> {
        if x.is_finite() && x >= 0.0 {
            Ok(())
        } else {
            Err((field.into(), format!("{x} is not a finite number ≥ 0")))
        }
    }
    non_negative("recorded_secs", b.recorded_secs)?;
    non_negative("requested_secs", b.requested_secs)?;
    non_negative("interval_secs", b.interval_secs)?;
    for (i, g) in b.groups.iter().enumerate() {
        let f = |name: &str| format!("groups[{i}].{name}");
        let d = &g.indices;
        for (name, v) in [
            ("lsi", &d.lsi),
            ("hcr_1", &d.hcr_1),
            ("hcr_5", &d.hcr_5),
            ("lqd", &d.lqd),
            ("bci", &d.bci),
            ("dlg_us", &d.dlg_us),
            ("ingress_age_p95_us", &d.ingress_age_p95_us),
            ("p_hot", &d.p_hot),
        ] {
            dist(f(&format!("indices.{name}")), v)?;
        }
        for (k, s) in &g.regimes {
            share(f(&format!("regimes.{k}")), *s)?;
        }
        for (j, s) in g.p_hot_deciles.iter().enumerate() {
            share(f(&format!("p_hot_deciles[{j}]")), *s)?;
        }
        for (j, l) in g.listeners.iter().enumerate() {
            share(f(&format!("listeners[{j}].share")), l.share)?;
        }
        non_negative(&f("drops_per_sec"), g.drops_per_sec)?;
    }
    for (i, d) in b.devices.iter().enumerate() {
        let f = |name: &str| format!("devices[{i}].{name}");
        let x = &d.indices;
        for (name, v) in [
            ("qpi", &x.qpi),
            ("isi", &x.isi),
            ("isi_normalized", &x.isi_normalized),
            ("table_qpi", &x.table_qpi),
            ("haf95_us", &x.haf95_us),
        ] {
            dist(f(&format!("indices.{name}")), v)?;
        }
        for (j, q) in d.queues.iter().enumerate() {
            dist(f(&format!("queues[{j}].rx_pps")), &q.rx_pps)?;
            if let Some(s) = q.table_share {
                share(f(&format!("queues[{j}].table_share")), s)?;
            }
        }
    }
    dist("host.spi".into(), &b.host.spi)?;
    dist("host.net_rx_cpu_qpi".into(), &b.host.net_rx_cpu_qpi)?;
    non_negative(
        "host.softnet_dropped_per_sec",
        b.host.softnet_dropped_per_sec,
    )?;
    if let Some(t) = &b.host.tcp {
        non_negative("host.tcp.out_resets_per_sec", t.out_resets_per_sec)?;
        non_negative("host.tcp.listen_drops_per_sec", t.listen_drops_per_sec)?;
    }
    for (i, flow) in b.flow_trace.iter().enumerate() {
        let line =
            serde_json::to_string(flow).map_err(|e| (format!("flow_trace[{i}]"), e.to_string()))?;
        skewscope_shadow::parse_line(&line).map_err(|msg| (format!("flow_trace[{i}]"), msg))?;
    }
    Ok(())
}

/// The file's text: pretty JSON, one trailing newline.
pub fn to_text(b: &Baseline) -> String {
    // Plain data with string keys: serializing cannot fail.
    serde_json::to_string_pretty(b).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests;
