//! The catalog applied to one report (its JSON form): the points of every report-fed
//! metric, what the cardinality bounds left out, and the worst case those bounds allow.

use std::collections::BTreeMap;

use serde_json::Value;

use super::table::{CATALOG, SCOPES};
use super::types::{Attr, AttrFrom, Scope, Source, ValueOf};
use crate::config::{Limit, Limits};
use crate::report::{Report, ReuseportGroupReport};

/// An attribute value, typed as it appears in the report.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    F64(f64),
    Bool(bool),
}

impl AttrValue {
    fn from_json(v: &Value) -> Option<Self> {
        match v {
            Value::String(s) => Some(AttrValue::Str(s.clone())),
            Value::Bool(b) => Some(AttrValue::Bool(*b)),
            Value::Number(n) => n
                .as_i64()
                .map(AttrValue::Int)
                .or_else(|| n.as_u64().map(|u| AttrValue::Int(u as i64)))
                .or_else(|| n.as_f64().map(AttrValue::F64)),
            _ => None,
        }
    }
}

impl std::fmt::Display for AttrValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttrValue::Str(s) => f.write_str(s),
            AttrValue::Int(i) => write!(f, "{i}"),
            AttrValue::F64(x) => write!(f, "{x}"),
            AttrValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// One data point of one report-fed metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub attrs: Vec<(&'static str, AttrValue)>,
    pub value: f64,
}

/// The catalog applied to one report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evaluation {
    /// Points per catalog entry (same index as [`CATALOG`]); empty for agent metrics.
    pub points: Vec<Vec<Point>>,
    /// Elements left out per bound in this report.
    pub capped: BTreeMap<Limit, u64>,
}

/// A dotted path into a JSON object.
fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

struct Element<'a> {
    attrs: Vec<(&'static str, AttrValue)>,
    value: &'a Value,
}

/// Walk one scope: the elements that become series, and how many the last step's bound
/// left out.
fn walk<'a>(report: &'a Value, scope: &Scope, limits: &Limits) -> (Vec<Element<'a>>, u64) {
    let mut current = vec![Element {
        attrs: Vec::new(),
        value: report,
    }];
    let mut dropped = 0;
    for (depth, step) in scope.steps.iter().enumerate() {
        let last = depth + 1 == scope.steps.len();
        let mut next = Vec::new();
        for parent in &current {
            let Some(items) = parent.value.get(step.array).and_then(Value::as_array) else {
                continue;
            };
            let bound = step
                .limit
                .map_or(step.max_len.unwrap_or(usize::MAX), |l| limits.get(l));
            let mut kept = 0usize;
            for (i, item) in items.iter().enumerate() {
                if let Some((k, prefix)) = step.only {
                    if !lookup(item, k)
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.starts_with(prefix))
                    {
                        continue;
                    }
                }
                if kept == bound {
                    if last {
                        dropped += 1;
                    }
                    continue;
                }
                kept += 1;
                let mut attrs = parent.attrs.clone();
                push_attrs(&mut attrs, step.attrs, item, i);
                next.push(Element { attrs, value: item });
            }
        }
        current = next;
    }
    (current, dropped)
}

fn push_attrs(out: &mut Vec<(&'static str, AttrValue)>, attrs: &[Attr], item: &Value, i: usize) {
    for a in attrs {
        let v = match a.from {
            AttrFrom::Key(k) => lookup(item, k).and_then(AttrValue::from_json),
            AttrFrom::Rank => Some(AttrValue::Int(i as i64 + 1)),
        };
        if let Some(v) = v {
            out.push((a.name, v));
        }
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// The report's JSON form as [`evaluate`] reads it, without building what no bound lets
/// through: reuseport groups past `max_groups` and listeners past
/// `max_listeners_per_group` are `null` placeholders, so every array keeps its length and
/// the counts of what the bounds leave out stay exact. `serde_json::to_value` of a whole
/// report of 1000 groups of 50 sockets built (and freed) a tree of 50 000 listeners
/// every cycle, most of the agent's time at that scale.
pub fn report_json(report: &Report, limits: &Limits) -> Value {
    // No `..`: a new report field must be placed here.
    let Report {
        schema,
        window_secs,
        cpus,
        devices,
        reuseport_groups,
        host,
        transitions,
        sources,
        shadow,
        probe_sampling,
    } = report;
    let groups = reuseport_groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            if i < limits.max_groups {
                group_json(g, limits.max_listeners_per_group)
            } else {
                Value::Null
            }
        })
        .collect();
    let mut m = serde_json::Map::new();
    m.insert("schema".into(), json(schema));
    m.insert("window_secs".into(), json(window_secs));
    m.insert("cpus".into(), json(cpus));
    m.insert("devices".into(), json(devices));
    m.insert("reuseport_groups".into(), Value::Array(groups));
    m.insert("host".into(), json(host));
    m.insert("transitions".into(), json(transitions));
    m.insert("sources".into(), json(sources));
    m.insert("shadow".into(), json(shadow));
    m.insert("probe_sampling".into(), json(probe_sampling));
    Value::Object(m)
}

/// A field's JSON; `null` for what cannot be serialized (a non-finite float is `null` in
/// serde_json's own output too).
fn json<T: serde::Serialize + ?Sized>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// One kept group: listeners past `max_listeners` are `null`.
fn group_json(g: &ReuseportGroupReport, max_listeners: usize) -> Value {
    // No `..`: a new group field must be placed here.
    let ReuseportGroupReport {
        netns,
        protocol,
        address,
        port,
        reuseport_id,
        listeners,
        top_flows,
        indices,
        regime,
        advice,
        p_hot,
        regime_transitions,
        membership_changes,
    } = g;
    let listeners = listeners
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if i < max_listeners {
                json(l)
            } else {
                Value::Null
            }
        })
        .collect();
    let mut m = serde_json::Map::new();
    m.insert("netns".into(), json(netns));
    m.insert("protocol".into(), json(protocol));
    m.insert("address".into(), json(address));
    m.insert("port".into(), json(port));
    m.insert("reuseport_id".into(), json(reuseport_id));
    m.insert("listeners".into(), Value::Array(listeners));
    m.insert("top_flows".into(), json(top_flows));
    m.insert("indices".into(), json(indices));
    m.insert("regime".into(), json(regime));
    m.insert("advice".into(), json(advice));
    m.insert("p_hot".into(), json(p_hot));
    m.insert("regime_transitions".into(), json(regime_transitions));
    m.insert("membership_changes".into(), json(membership_changes));
    Value::Object(m)
}

/// Apply the catalog to one report (its JSON form): every report-fed point, and what the
/// bounds left out.
pub fn evaluate(report: &Value, limits: &Limits) -> Evaluation {
    let window = report
        .get("window_secs")
        .and_then(Value::as_f64)
        .filter(|s| *s > 0.0);
    let mut capped = BTreeMap::new();
    let walked: Vec<(&str, Vec<Element>)> = SCOPES
        .iter()
        .map(|scope| {
            let (elements, dropped) = walk(report, scope, limits);
            if let Some(limit) = scope.steps.last().and_then(|s| s.limit) {
                let c = capped.entry(limit).or_insert(0);
                *c = (*c).max(dropped);
            }
            (scope.name, elements)
        })
        .collect();
    capped.retain(|_, n| *n > 0);

    let points = CATALOG
        .iter()
        .map(|def| {
            let Source::Report(from) = &def.source else {
                return Vec::new();
            };
            let Some((_, elements)) = walked.iter().find(|(n, _)| *n == from.scope.name) else {
                return Vec::new();
            };
            let divisor = match (from.per_second, window) {
                (false, _) => 1.0,
                (true, Some(w)) => w,
                (true, None) => return Vec::new(),
            };
            elements
                .iter()
                .filter(|e| {
                    from.require.is_none_or(|k| {
                        lookup(e.value, k)
                            .and_then(Value::as_array)
                            .is_some_and(|a| !a.is_empty())
                    })
                })
                .filter_map(|e| {
                    let raw = match from.value {
                        ValueOf::Key(k) => number(lookup(e.value, k)?)?,
                        ValueOf::Len(k) => lookup(e.value, k)?.as_array()?.len() as f64,
                        ValueOf::One => 1.0,
                    };
                    let mut attrs = e.attrs.clone();
                    push_attrs(&mut attrs, from.attrs, e.value, 0);
                    Some(Point {
                        attrs,
                        value: raw * from.scale / divisor,
                    })
                })
                .collect()
        })
        .collect();
    Evaluation { points, capped }
}

/// Keys the catalog reads that a report lacks although it has the object holding them:
/// a renamed report field (the JSON schema is only ever extended). Empty when the
/// catalog and the report agree.
pub fn missing_keys(report: &Value) -> Vec<String> {
    let unlimited = Limits {
        max_cpus: usize::MAX,
        max_devices: usize::MAX,
        max_queues_per_device: usize::MAX,
        max_groups: usize::MAX,
        max_listeners_per_group: usize::MAX,
        top_flows: usize::MAX,
        max_sources: usize::MAX,
    };
    let mut missing = Vec::new();
    for def in CATALOG {
        let Source::Report(from) = &def.source else {
            continue;
        };
        let (elements, _) = walk(report, from.scope, &unlimited);
        let keys = match from.value {
            ValueOf::Key(k) | ValueOf::Len(k) => vec![k],
            ValueOf::One => vec![],
        };
        let attr_keys = from.attrs.iter().filter_map(|a| match a.from {
            AttrFrom::Key(k) => Some(k),
            AttrFrom::Rank => None,
        });
        for key in keys.into_iter().chain(attr_keys) {
            // Keys below an optional object (softnet, sysctls) need that object present.
            let parent = key.rsplit_once('.').map(|(p, _)| p);
            for e in &elements {
                let has_parent =
                    parent.is_none_or(|p| lookup(e.value, p).is_some_and(|v| !v.is_null()));
                if has_parent && lookup(e.value, key).is_none() {
                    missing.push(format!(
                        "{}: no key {key} in a {} element",
                        def.name, from.scope.name
                    ));
                    break;
                }
            }
        }
    }
    missing
}

/// The OpenTelemetry SDK folds series beyond 2000 per metric into one overflow series;
/// the bounds keep every metric below it.
pub const SDK_SERIES_PER_METRIC: usize = 2000;

/// Series one metric of each scope can reach under these bounds.
pub fn worst_case_series(limits: &Limits) -> Vec<(&'static str, usize)> {
    SCOPES
        .iter()
        .map(|s| {
            let n = s
                .steps
                .iter()
                .map(|st| {
                    st.limit
                        .map_or(st.max_len.unwrap_or(usize::MAX), |l| limits.get(l))
                })
                .fold(1usize, |a, b| a.saturating_mul(b));
            (s.name, n)
        })
        .collect()
}

/// The bounds must keep each metric under the SDK's series cap (the products along a
/// scope are the table's, so the check lives here, not in config).
pub fn check_series_cap(limits: &Limits) -> Result<(), String> {
    for (scope, n) in worst_case_series(limits) {
        if n > SDK_SERIES_PER_METRIC {
            return Err(format!(
                "the limits allow {n} series per {scope} metric, above the \
                 {SDK_SERIES_PER_METRIC} an OpenTelemetry SDK keeps per metric"
            ));
        }
    }
    Ok(())
}
