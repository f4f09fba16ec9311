//! RSS in shadow: per-entry loads of a device's indirection table, measured under the
//! current table, give the exact per-queue load of any other table (docs/rss-shadow.md).
//! Pure: the CLI edge reads files and collects; this module only computes.
//!
//! load(q) = Σ entry_packets[e] over the entries e with table[e] = q. Candidates:
//! `current`, `equal`, `weight:W0,W1,…` (ethtool's weight fill), a table file, and
//! `balanced` (optionally `balanced:numa`, on the NIC's NUMA node's queues only).
//! Each gets per-queue load and shares, QPI, entries moved vs current and the
//! `ethtool -X` command that would apply it — printed, never run.

pub mod tables;

use serde::Serialize;
use serde_json::Value;

use crate::model::indices;

pub const RSS_SHADOW_SCHEMA: &str = "skewscope.rss_shadow/v1";

/// Everything that can be wrong with the input; each names what and where.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RssShadowError {
    #[error("{0}")]
    Input(String),
    #[error("device {device}: {why}")]
    Device { device: String, why: String },
    #[error("table file {path}: {msg}")]
    TableFile { path: String, msg: String },
    #[error("weights: {0}")]
    Weights(String),
    #[error("candidate {spec:?}: {why}")]
    Candidate { spec: String, why: String },
}

/// A candidate as given on the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum CandidateSpec {
    Equal,
    Weight(Vec<u32>),
    Balanced,
    /// Balanced over the queues whose IRQ CPUs are all on the device's NUMA node.
    BalancedNuma,
    /// A table file (its text is read at the CLI edge).
    File(String),
}

impl CandidateSpec {
    /// `equal`, `weight:W0,W1,…`, `balanced`, `balanced:numa`, or a path.
    pub fn parse(spec: &str) -> Result<Self, RssShadowError> {
        Ok(match spec {
            "equal" => Self::Equal,
            "balanced" => Self::Balanced,
            "balanced:numa" => Self::BalancedNuma,
            "current" => {
                return Err(RssShadowError::Candidate {
                    spec: spec.into(),
                    why: "`current` is always reported first; no need to ask".into(),
                })
            }
            _ => match spec.strip_prefix("weight:") {
                Some(list) => Self::Weight(
                    list.split(',')
                        .map(|w| w.trim().parse::<u32>())
                        .collect::<Result<_, _>>()
                        .map_err(|_| RssShadowError::Candidate {
                            spec: spec.into(),
                            why: "weights are comma-separated non-negative integers".into(),
                        })?,
                ),
                None => Self::File(spec.to_string()),
            },
        })
    }

    fn name(&self) -> String {
        match self {
            Self::Equal => "equal".into(),
            Self::Weight(w) => format!(
                "weight:{}",
                w.iter()
                    .map(|w| w.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Self::Balanced => "balanced".into(),
            Self::BalancedNuma => "balanced:numa".into(),
            Self::File(p) => p.clone(),
        }
    }
}

/// One device's measured entry loads and what the candidates need to know of it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInput {
    pub name: String,
    /// The table the loads were measured under.
    pub table: Vec<u32>,
    pub entry_packets: Vec<u64>,
    pub measured_by: String,
    /// RX rings (channels, else the queues listed, at least the table's highest + 1).
    pub queues: usize,
    /// Per queue: its IRQ CPUs all on the device's NUMA node. None when the node or the
    /// CPUs are unknown.
    pub numa_local: Option<Vec<bool>>,
}

/// The devices of a `skewscope.snapshot/v1` report (a `snapshot --json` or a
/// `run --output json` line), by name, with whether they carry entry loads.
pub fn devices_of_report(report: &Value, origin: &str) -> Result<Vec<Value>, RssShadowError> {
    match report.get("schema").and_then(Value::as_str) {
        Some(crate::report::SNAPSHOT_SCHEMA) => {}
        Some("skewscope.baseline/v1") => {
            return Err(RssShadowError::Input(format!(
                "{origin}: a baseline file carries no rss.entry_packets (baselines keep \
                 index distributions, not per-entry loads); give a `snapshot --json \
                 --duration SECS` or `run --output json` line instead"
            )))
        }
        Some(other) => {
            return Err(RssShadowError::Input(format!(
                "{origin}: schema {other:?} is not a skewscope.snapshot/v1 report"
            )))
        }
        None => {
            return Err(RssShadowError::Input(format!(
                "{origin}: no \"schema\" key: not a skewscope report"
            )))
        }
    }
    Ok(report
        .get("devices")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

/// The report's one device with entry loads (or the named one), as a [`DeviceInput`].
pub fn device_input(
    report: &Value,
    origin: &str,
    device: Option<&str>,
) -> Result<DeviceInput, RssShadowError> {
    let devices = devices_of_report(report, origin)?;
    let name_of = |d: &Value| {
        d.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let has_loads = |d: &Value| d.pointer("/rss/entry_packets").is_some_and(Value::is_array);
    let dev = match device {
        Some(name) => devices.iter().find(|d| name_of(d) == name).ok_or_else(|| {
            RssShadowError::Input(format!(
                "{origin}: no device {name:?} (devices: {})",
                list(devices.iter().map(name_of))
            ))
        })?,
        None => {
            let with: Vec<&Value> = devices.iter().filter(|d| has_loads(d)).collect();
            match with.as_slice() {
                [one] => *one,
                [] => {
                    return Err(RssShadowError::Input(format!(
                        "{origin}: no device carries rss.entry_packets ({}); entry loads \
                         come from a window (`snapshot --duration`, `run`) with flow \
                         samples on a device with a Toeplitz key and table",
                        describe_devices(&devices)
                    )))
                }
                many => {
                    return Err(RssShadowError::Input(format!(
                        "{origin}: several devices carry entry loads ({}); pick one with --device",
                        list(many.iter().map(|d| name_of(d)))
                    )))
                }
            }
        }
    };
    parse_device(dev, &name_of(dev))
}

fn list(names: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = names.collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn describe_devices(devices: &[Value]) -> String {
    if devices.is_empty() {
        return "no devices".into();
    }
    devices
        .iter()
        .map(|d| {
            let name = d.get("name").and_then(Value::as_str).unwrap_or("?");
            let why = match d.get("rss") {
                None | Some(Value::Null) => "no indirection table",
                Some(r)
                    if r.get("indirection")
                        .and_then(Value::as_array)
                        .is_none_or(|t| t.is_empty()) =>
                {
                    "no indirection table"
                }
                Some(_) => "no entry loads",
            };
            format!("{name}: {why}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn parse_device(dev: &Value, name: &str) -> Result<DeviceInput, RssShadowError> {
    let err = |why: String| RssShadowError::Device {
        device: name.to_string(),
        why,
    };
    let rss = dev
        .get("rss")
        .filter(|r| !r.is_null())
        .ok_or_else(|| err("no indirection table (the driver reports none: ethtool -x says \"Operation not supported\")".into()))?;
    let table = u32_array(rss.get("indirection"))
        .ok_or_else(|| err("rss.indirection is not a list of queue numbers".into()))?;
    if table.is_empty() {
        return Err(err("no indirection table (the driver reports none)".into()));
    }
    let entry_packets = match rss.get("entry_packets") {
        None | Some(Value::Null) => {
            return Err(err("no rss.entry_packets: this report has no per-entry loads (needs a window with flow samples, a Toeplitz key and a supported driver; docs/rss-shadow.md)".into()))
        }
        v => u64_array(v).ok_or_else(|| err("rss.entry_packets is not a list of counts".into()))?,
    };
    if entry_packets.len() != table.len() {
        return Err(err(format!(
            "rss.entry_packets has {} entries, rss.indirection {}",
            entry_packets.len(),
            table.len()
        )));
    }
    let measured_by = rss
        .get("measured_by")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_string();
    let channels = dev.get("channels");
    let rings = ["combined", "rx"]
        .iter()
        .find_map(|k| channels.and_then(|c| c.get(k)).and_then(Value::as_u64))
        .map(|n| n as usize);
    let listed = dev
        .get("rx_queues")
        .and_then(Value::as_array)
        .map(|q| q.len())
        .unwrap_or(0);
    let highest = table.iter().map(|&q| q as usize + 1).max().unwrap_or(0);
    let queues = rings.unwrap_or(listed).max(highest).max(1);
    Ok(DeviceInput {
        name: name.to_string(),
        numa_local: numa_local(dev, queues),
        table,
        entry_packets,
        measured_by,
        queues,
    })
}

/// Queues whose IRQ CPUs (effective affinity where known) are all on the device's node:
/// none of them in the report's `irq_cpus_off_node`.
fn numa_local(dev: &Value, queues: usize) -> Option<Vec<bool>> {
    let node = dev.get("numa_node").and_then(Value::as_i64)?;
    if node < 0 {
        return None;
    }
    let off = u32_array(dev.get("irq_cpus_off_node"))?;
    let rx = dev.get("rx_queues").and_then(Value::as_array)?;
    let mut local = vec![false; queues];
    for q in rx {
        let Some(i) = q.get("queue").and_then(Value::as_u64).map(|i| i as usize) else {
            continue;
        };
        let cpus = u32_array(q.get("effective_affinity"))
            .or_else(|| u32_array(q.get("affinity")))
            .unwrap_or_default();
        if let Some(slot) = local.get_mut(i) {
            *slot = !cpus.is_empty() && cpus.iter().all(|c| !off.contains(c));
        }
    }
    Some(local)
}

fn u32_array(v: Option<&Value>) -> Option<Vec<u32>> {
    v?.as_array()?
        .iter()
        .map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok()))
        .collect()
}

fn u64_array(v: Option<&Value>) -> Option<Vec<u64>> {
    v?.as_array()?.iter().map(Value::as_u64).collect()
}

/// The `--json` output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RssShadowReport {
    pub schema: &'static str,
    pub device: String,
    pub table_size: usize,
    pub queues: usize,
    pub measured_by: String,
    /// `current` first, then the candidates in the order given.
    pub policies: Vec<PolicyResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyResult {
    pub policy: String,
    pub table: Vec<u32>,
    pub queues: Vec<QueueLoad>,
    pub qpi: Option<f64>,
    pub entries_moved: usize,
    /// `ethtool -X DEV …` that applies this table, printed never run; null when ethtool
    /// has no fill that gives it (see [`tables::ethtool_args`]).
    pub command: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueLoad {
    pub queue: u32,
    pub packets: u64,
    /// Of the device's measured entry packets; null when there were none.
    pub share: Option<f64>,
}

impl PolicyResult {
    /// The hottest queue's share.
    pub fn max_share(&self) -> Option<f64> {
        self.queues
            .iter()
            .filter_map(|q| q.share)
            .max_by(|a, b| a.total_cmp(b))
    }
}

/// A candidate resolved to its table. `file_text` gives the contents of a `File` spec.
pub fn candidate_table(
    dev: &DeviceInput,
    spec: &CandidateSpec,
    file_text: Option<&str>,
) -> Result<Vec<u32>, RssShadowError> {
    let size = dev.table.len();
    match spec {
        CandidateSpec::Equal => Ok(tables::equal_fill(size, dev.queues)),
        CandidateSpec::Weight(w) => {
            if w.len() != dev.queues {
                return Err(RssShadowError::Weights(format!(
                    "{} weights given, {} has {} RX queues (one weight per queue)",
                    w.len(),
                    dev.name,
                    dev.queues
                )));
            }
            tables::weight_fill(size, w)
        }
        CandidateSpec::Balanced => Ok(tables::balanced(
            &dev.table,
            &dev.entry_packets,
            dev.queues,
            &vec![true; dev.queues],
        )),
        CandidateSpec::BalancedNuma => {
            let local = dev
                .numa_local
                .as_ref()
                .ok_or_else(|| RssShadowError::Candidate {
                    spec: spec.name(),
                    why: format!("{}: NUMA node or IRQ CPUs unknown", dev.name),
                })?;
            if !local.iter().any(|l| *l) {
                return Err(RssShadowError::Candidate {
                    spec: spec.name(),
                    why: format!(
                        "{}: no queue has all its IRQ CPUs on the device's node",
                        dev.name
                    ),
                });
            }
            Ok(tables::balanced(
                &dev.table,
                &dev.entry_packets,
                dev.queues,
                local,
            ))
        }
        CandidateSpec::File(path) => {
            let text = file_text.ok_or_else(|| RssShadowError::TableFile {
                path: path.clone(),
                msg: "not read".into(),
            })?;
            tables::parse_table_file(text, path, size, dev.queues)
        }
    }
}

/// `current` and each candidate (with its table) evaluated over the device's entry loads.
pub fn evaluate(dev: &DeviceInput, candidates: &[(String, Vec<u32>)]) -> RssShadowReport {
    let total: u64 = dev.entry_packets.iter().sum();
    let one = |policy: String, table: &[u32]| {
        let loads = tables::queue_loads(table, &dev.entry_packets, dev.queues);
        let as_f: Vec<f64> = loads.iter().map(|&p| p as f64).collect();
        PolicyResult {
            policy,
            table: table.to_vec(),
            queues: loads
                .iter()
                .enumerate()
                .map(|(q, &packets)| QueueLoad {
                    queue: q as u32,
                    packets,
                    share: (total > 0).then(|| packets as f64 / total as f64),
                })
                .collect(),
            qpi: indices::qpi(&as_f),
            entries_moved: table.iter().zip(&dev.table).filter(|(a, b)| a != b).count(),
            command: tables::ethtool_args(table, dev.queues)
                .map(|args| format!("ethtool -X {} {args}", dev.name)),
        }
    };
    let mut policies = vec![one("current".into(), &dev.table)];
    for (name, table) in candidates {
        policies.push(one(name.clone(), table));
    }
    RssShadowReport {
        schema: RSS_SHADOW_SCHEMA,
        device: dev.name.clone(),
        table_size: dev.table.len(),
        queues: dev.queues,
        measured_by: dev.measured_by.clone(),
        policies,
    }
}

/// Resolve every spec and evaluate; `read_file` gives a table file's text.
pub fn run(
    dev: &DeviceInput,
    specs: &[CandidateSpec],
    read_file: &mut dyn FnMut(&str) -> Result<String, RssShadowError>,
) -> Result<RssShadowReport, RssShadowError> {
    let mut candidates = Vec::new();
    for spec in specs {
        let text = match spec {
            CandidateSpec::File(path) => Some(read_file(path)?),
            _ => None,
        };
        candidates.push((spec.name(), candidate_table(dev, spec, text.as_deref())?));
    }
    Ok(evaluate(dev, &candidates))
}

/// The human-readable table.
pub fn render(r: &RssShadowReport) -> String {
    let mut out = format!(
        "{}: {} entries over {} queues, entry loads measured by {}\n",
        r.device, r.table_size, r.queues, r.measured_by
    );
    for p in &r.policies {
        out += &format!(
            "\n{}  qpi {}  max share {}  entries moved {}\n",
            p.policy,
            p.qpi.map_or("-".into(), |q| format!("{q:.3}")),
            p.max_share()
                .map_or("-".into(), |s| format!("{:.1}%", s * 100.0)),
            p.entries_moved
        );
        for q in &p.queues {
            out += &format!(
                "  queue {:>3}  {:>12} packets  {:>6}\n",
                q.queue,
                q.packets,
                q.share.map_or("-".into(), |s| format!("{:.1}%", s * 100.0))
            );
        }
        out += &match &p.command {
            Some(c) => format!("  apply (not run): {c}\n"),
            None => "  apply: no ethtool command gives this table (ethtool -X takes only equal/weight fills, never a table entry by entry); its entries are in --json\n".into(),
        };
    }
    out
}

#[cfg(test)]
mod tests;
