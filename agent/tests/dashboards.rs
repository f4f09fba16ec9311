//! The shipped Prometheus rules and Grafana dashboard (dashboards/) against the agent's
//! metric catalog: `promtool check rules` and `promtool test rules` on the alerts, every
//! dashboard expression through promtool's PromQL parser, the dashboard's structure
//! (titles, `${datasource}`, unique ids, grid positions), and every metric name and label
//! used in a panel, a template variable or an alert checked against the catalog of the
//! built binary (`skewscope metrics`, its `--markdown` form for the attributes). A renamed
//! metric or label fails here. Needs no root. Without promtool the promtool test skips
//! with a reason, unless SKEWSCOPE_REQUIRE_PRIVILEGED=1 (set by `make test`) turns the skip
//! into a failure; the catalog checks need no promtool.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const RULES: &str = "skewscope-alerts.yaml";
const RULE_TESTS: &str = "skewscope-alerts.test.yaml";
const DASHBOARD: &str = "skewscope.json";
/// The runbook every alert links to, relative to the repository root.
const RUNBOOK: &str = "docs/runbook.md";

/// Labels every series can carry besides its catalog attributes: the scrape's (or the
/// Collector's) `job` and `instance`, and the instrumentation scope's labels.
const COMMON_LABELS: [&str; 4] = ["job", "instance", "otel_scope_name", "otel_scope_version"];

fn dashboards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards")
}

fn read(name: &str) -> String {
    let path = dashboards_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

// ------------------------------------------------------------------ the catalog

/// Prometheus metric name -> the Prometheus labels the catalog documents for it.
struct Catalog {
    labels: BTreeMap<String, BTreeSet<String>>,
}

impl Catalog {
    fn has(&self, metric: &str) -> bool {
        self.labels.contains_key(metric)
    }

    /// The labels a selector of `metric` may use: its attributes, the common labels and
    /// `le` on a histogram's buckets.
    fn allowed(&self, metric: &str) -> BTreeSet<String> {
        let mut l = self.labels.get(metric).cloned().unwrap_or_default();
        l.extend(COMMON_LABELS.iter().map(|s| s.to_string()));
        if metric.ends_with("_bucket") {
            l.insert("le".into());
        }
        l
    }
}

fn run_agent(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_skewscope"))
        .args(args)
        .output()
        .expect("run skewscope");
    assert!(
        out.status.success(),
        "skewscope {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Names from `skewscope metrics` (4th column on; a histogram lists its `_bucket`, `_sum`
/// and `_count` there), attributes from `skewscope metrics --markdown` (the generated
/// docs/metrics.md): each row's Prometheus names and OTel attributes, mapped to label
/// names by its Attributes table.
fn catalog() -> Catalog {
    let plain = run_agent(&["metrics"]);
    let mut names = BTreeSet::new();
    for line in plain.lines().filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert!(
            cols.len() >= 4,
            "unexpected `skewscope metrics` line {line:?}"
        );
        names.extend(cols[3..].iter().map(|s| s.to_string()));
    }
    assert!(names.len() > 50, "catalog too small: {names:?}");

    let markdown = run_agent(&["metrics", "--markdown"]);
    let backticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    // `| `counter.source` (Prometheus `counter_source`) | meaning |`
    let mut attr_label: BTreeMap<String, String> = BTreeMap::new();
    for line in markdown.lines() {
        let cells: Vec<&str> = line.split('|').collect();
        if cells.len() == 4 && cells[1].contains("(Prometheus `") {
            let t = backticked(cells[1]);
            attr_label.insert(t[0].clone(), t[1].clone());
        }
    }
    assert!(attr_label.len() > 10, "no Attributes table in --markdown");
    // `| otel | instrument | unit | prometheus | attributes | from | description |`
    let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in markdown.lines().filter(|l| l.starts_with("| `skewscope.")) {
        let cells: Vec<&str> = line.split('|').collect();
        assert!(cells.len() >= 8, "unexpected metric row {line:?}");
        let attrs: BTreeSet<String> = backticked(cells[5])
            .iter()
            .map(|a| {
                attr_label
                    .get(a)
                    .unwrap_or_else(|| panic!("attribute {a} not in the Attributes table"))
                    .clone()
            })
            .collect();
        for name in backticked(cells[4]) {
            labels.insert(name, attrs.clone());
        }
    }
    let documented: BTreeSet<String> = labels.keys().cloned().collect();
    assert_eq!(
        documented, names,
        "`skewscope metrics` and `skewscope metrics --markdown` disagree on the names"
    );
    Catalog { labels }
}

// ------------------------------------------------------------------ a PromQL scanner

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str,
    Num,
    /// A Grafana variable (`$x`, `${x}`).
    Var,
    /// `[...]`: a range or subquery duration.
    Range,
    Punct(char),
    Op(String),
}

fn tokenize(expr: &str) -> Result<Vec<Tok>, String> {
    let c: Vec<char> = expr.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let word = |ch: char| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':';
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '"' || ch == '\'' || ch == '`' {
            i += 1;
            while i < c.len() && c[i] != ch {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            if i >= c.len() {
                return Err(format!("unterminated string in {expr:?}"));
            }
            i += 1;
            toks.push(Tok::Str);
        } else if ch == '$' {
            i += 1;
            if c.get(i) == Some(&'{') {
                while i < c.len() && c[i] != '}' {
                    i += 1;
                }
                i += 1;
            } else {
                while i < c.len() && word(c[i]) {
                    i += 1;
                }
            }
            toks.push(Tok::Var);
        } else if ch == '[' {
            while i < c.len() && c[i] != ']' {
                i += 1;
            }
            if i >= c.len() {
                return Err(format!("unterminated [ in {expr:?}"));
            }
            i += 1;
            toks.push(Tok::Range);
        } else if ch.is_ascii_digit()
            || (ch == '.' && c.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.' || c[i] == '_') {
                i += 1;
            }
            toks.push(Tok::Num);
        } else if ch.is_ascii_alphabetic() || ch == '_' || ch == ':' {
            let start = i;
            while i < c.len() && word(c[i]) {
                i += 1;
            }
            toks.push(Tok::Ident(c[start..i].iter().collect()));
        } else if "(){},".contains(ch) {
            toks.push(Tok::Punct(ch));
            i += 1;
        } else if "=!~<>+-*/%^".contains(ch) {
            let start = i;
            while i < c.len() && "=!~<>".contains(c[i]) && (i == start || c[start] != '-') {
                i += 1;
            }
            if i == start {
                i += 1;
            }
            toks.push(Tok::Op(c[start..i].iter().collect()));
        } else {
            return Err(format!("unexpected {ch:?} in {expr:?}"));
        }
    }
    Ok(toks)
}

const LABEL_LIST_KEYWORDS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
const KEYWORDS: [&str; 8] = [
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
];
/// Aggregation operators, which may take their `by`/`without` before the argument.
const AGGREGATIONS: [&str; 12] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];

/// A `by (...)`-style clause: keyword, labels, and the token range of the aggregated
/// argument (None: the whole expression, for on/ignoring/group_*).
type Clause = (String, Vec<String>, Option<(usize, usize)>);

/// What one expression uses: metric names (with token positions), the labels matched on
/// each selector, and `by (...)`-style clauses with the token range they apply to.
#[derive(Debug, Default)]
struct Uses {
    metrics: Vec<(usize, String)>,
    matchers: Vec<(String, String)>,
    clauses: Vec<Clause>,
}

fn matching(toks: &[Tok], at: usize, forward: bool) -> Result<usize, String> {
    let (open, close) = (Tok::Punct('('), Tok::Punct(')'));
    let mut depth = 0i32;
    let mut i = at;
    loop {
        if toks[i] == open {
            depth += if forward { 1 } else { -1 };
        } else if toks[i] == close {
            depth += if forward { -1 } else { 1 };
        }
        if depth == 0 {
            return Ok(i);
        }
        if forward {
            i += 1;
            if i >= toks.len() {
                return Err("unbalanced (".into());
            }
        } else {
            if i == 0 {
                return Err("unbalanced )".into());
            }
            i -= 1;
        }
    }
}

fn scan(expr: &str) -> Result<Uses, String> {
    let toks = tokenize(expr)?;
    let mut uses = Uses::default();
    let mut i = 0;
    let ident_at = |j: usize| match toks.get(j) {
        Some(Tok::Ident(s)) => Some(s.as_str()),
        _ => None,
    };
    while i < toks.len() {
        match &toks[i] {
            Tok::Ident(w) if LABEL_LIST_KEYWORDS.contains(&w.as_str()) => {
                if toks.get(i + 1) != Some(&Tok::Punct('(')) {
                    // group_left without a list
                    i += 1;
                    continue;
                }
                let close = matching(&toks, i + 1, true)?;
                let mut labels = Vec::new();
                for t in &toks[i + 2..close] {
                    match t {
                        Tok::Ident(l) => labels.push(l.clone()),
                        Tok::Punct(',') => {}
                        t => return Err(format!("unexpected {t:?} in {w} (...) of {expr:?}")),
                    }
                }
                let range = if w == "by" || w == "without" {
                    if toks.get(close + 1) == Some(&Tok::Punct('(')) {
                        Some((close + 1, matching(&toks, close + 1, true)?))
                    } else if i > 0 && toks[i - 1] == Tok::Punct(')') {
                        Some((matching(&toks, i - 1, false)?, i - 1))
                    } else {
                        return Err(format!("cannot find the argument of {w} in {expr:?}"));
                    }
                } else {
                    None
                };
                uses.clauses.push((w.clone(), labels, range));
                i = close + 1;
            }
            Tok::Ident(w) if KEYWORDS.contains(&w.as_str()) => i += 1,
            Tok::Ident(_) if toks.get(i + 1) == Some(&Tok::Punct('(')) => i += 1, // function
            Tok::Ident(w)
                if AGGREGATIONS.contains(&w.as_str())
                    && matches!(ident_at(i + 1), Some("by" | "without")) =>
            {
                i += 1
            }
            Tok::Ident(metric) => {
                uses.metrics.push((i, metric.clone()));
                i += 1;
                if toks.get(i) == Some(&Tok::Punct('{')) {
                    i += 1;
                    while toks.get(i) != Some(&Tok::Punct('}')) {
                        let label = ident_at(i)
                            .ok_or_else(|| format!("bad matcher after {metric} in {expr:?}"))?;
                        match (toks.get(i + 1), toks.get(i + 2)) {
                            (Some(Tok::Op(op)), Some(Tok::Str))
                                if ["=", "!=", "=~", "!~"].contains(&op.as_str()) => {}
                            _ => return Err(format!("bad matcher {label} in {expr:?}")),
                        }
                        uses.matchers.push((metric.clone(), label.to_string()));
                        i += 3;
                        if toks.get(i) == Some(&Tok::Punct(',')) {
                            i += 1;
                        }
                        if i >= toks.len() {
                            return Err(format!("unterminated {{ in {expr:?}"));
                        }
                    }
                    i += 1;
                }
            }
            Tok::Punct('{') => return Err(format!("selector without a metric name in {expr:?}")),
            _ => i += 1,
        }
    }
    Ok(uses)
}

/// Every problem of `expr` against the catalog; empty when it is sound.
fn check_expr(cat: &Catalog, expr: &str) -> Vec<String> {
    let uses = match scan(expr) {
        Ok(u) => u,
        Err(e) => return vec![e],
    };
    let mut errs = Vec::new();
    if uses.metrics.is_empty() {
        errs.push(format!("no metric in {expr:?}"));
    }
    for (_, m) in &uses.metrics {
        if !cat.has(m) {
            errs.push(format!("{m} is not a metric of the catalog (in {expr:?})"));
        }
    }
    for (m, l) in &uses.matchers {
        if cat.has(m) && !cat.allowed(m).contains(l) {
            errs.push(format!("{m} has no label {l} (in {expr:?})"));
        }
    }
    for (kw, labels, range) in &uses.clauses {
        let scope: Vec<&String> = uses
            .metrics
            .iter()
            .filter(|(at, _)| range.is_none_or(|(a, b)| *at > a && *at < b))
            .map(|(_, m)| m)
            .collect();
        if scope.is_empty() {
            errs.push(format!("{kw} (...) over no metric in {expr:?}"));
        }
        for l in labels {
            // by/without: every aggregated metric has the label; on/ignoring/group_*:
            // one of the expression's metrics has it.
            let ok = if range.is_some() {
                scope.iter().all(|m| cat.allowed(m).contains(l))
            } else {
                scope.iter().any(|m| cat.allowed(m).contains(l))
            };
            if !ok {
                errs.push(format!(
                    "{kw} ({l}): not a label of {scope:?} (in {expr:?})"
                ));
            }
        }
    }
    errs
}

/// The labels an alert's expression leaves on its result: the `by` list of a top-level
/// aggregation, else every label of its metrics.
fn result_labels(cat: &Catalog, expr: &str) -> BTreeSet<String> {
    let toks = tokenize(expr).unwrap();
    let uses = scan(expr).unwrap();
    if let (Some(Tok::Ident(_)), Some(Tok::Ident(kw))) = (toks.first(), toks.get(1)) {
        if kw == "by" {
            return uses.clauses[0].1.iter().cloned().collect();
        }
    }
    uses.metrics
        .iter()
        .flat_map(|(_, m)| cat.allowed(m))
        .collect()
}

#[test]
fn the_checker_rejects_unknown_metrics_and_labels() {
    let cat = catalog();
    for good in [
        "skewscope_rss_qpi >= 1.0",
        r#"max by (job, instance, device) (skewscope_rss_regime{regime="RED", device=~"$device"} * 2)"#,
        "sum(rate(skewscope_agent_cycle_duration_seconds_bucket[5m])) by (le)",
        "histogram_quantile(0.95, sum by (le) (rate(skewscope_agent_cycle_duration_seconds_bucket[$__rate_interval])))",
        "skewscope_reuseport_listener_queue_depth / on (listener_inode) group_left skewscope_reuseport_listener_backlog_limit",
    ] {
        let errs = check_expr(&cat, good);
        assert!(errs.is_empty(), "{good}: {errs:?}");
    }
    for bad in [
        "skewscope_rss_qpy >= 1.0",
        "skewscope_reuseport_lsi_ratio",
        "skewscope_agent_cycle_duration_seconds",
        r#"skewscope_rss_qpi{queue="1"}"#,
        "sum by (port) (skewscope_rss_qpi)",
        "sum(skewscope_rss_qpi) without (cpu)",
        "sum by (le) (rate(skewscope_agent_cycle_duration_seconds_sum[5m]))",
        "sum by (device) (skewscope_rss_qpi + skewscope_host_spi)",
        r#"{__name__="skewscope_rss_qpi"}"#,
    ] {
        assert!(!check_expr(&cat, bad).is_empty(), "accepted {bad}");
    }
}

// ------------------------------------------------------------------ the rules file

#[derive(Debug, Default)]
struct Alert {
    name: String,
    expr: String,
    has_for: bool,
    severity: Option<String>,
    annotations: BTreeMap<String, String>,
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    if v.len() >= 2
        && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')))
    {
        v[1..v.len() - 1].replace("\\\"", "\"")
    } else {
        v.to_string()
    }
}

/// The alerts of the rules file, read line by line: this file keeps each `expr:` and
/// annotation on one line (promtool checks the YAML itself).
fn alerts() -> Vec<Alert> {
    let text = read(RULES);
    let mut out: Vec<Alert> = Vec::new();
    let mut section = "";
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        if let Some(name) = t.strip_prefix("- alert:") {
            out.push(Alert {
                name: name.trim().to_string(),
                ..Alert::default()
            });
            section = "";
            continue;
        }
        assert!(
            !t.starts_with("- record:"),
            "recording rules are not checked here: {t}"
        );
        let Some(a) = out.last_mut() else { continue };
        if let Some(e) = t.strip_prefix("expr:") {
            let e = e.trim();
            assert!(
                !e.is_empty() && !e.starts_with('|') && !e.starts_with('>'),
                "{}: keep expr on one line",
                a.name
            );
            a.expr = unquote(e);
        } else if t.starts_with("for:") {
            a.has_for = true;
        } else if t == "labels:" || t == "annotations:" {
            section = if t == "labels:" {
                "labels"
            } else {
                "annotations"
            };
        } else if let Some((k, v)) = t.split_once(':') {
            match section {
                "labels" if k == "severity" => a.severity = Some(unquote(v)),
                "annotations" => {
                    a.annotations.insert(k.trim().to_string(), unquote(v));
                }
                _ => {}
            }
        }
    }
    out
}

#[test]
fn alerts_use_catalog_metrics_and_labels() {
    let cat = catalog();
    let alerts = alerts();
    assert!(alerts.len() >= 10, "{alerts:?}");
    let tests = read(RULE_TESTS);
    let test_lines: Vec<&str> = tests.lines().map(str::trim).collect();
    let mut errs = Vec::new();
    let mut used = BTreeSet::new();
    for a in &alerts {
        let n = &a.name;
        errs.extend(
            check_expr(&cat, &a.expr)
                .into_iter()
                .map(|e| format!("{n}: {e}")),
        );
        if let Ok(u) = scan(&a.expr) {
            used.extend(u.metrics.into_iter().map(|(_, m)| m));
        }
        if !a.has_for {
            errs.push(format!("{n}: no for:"));
        }
        match a.severity.as_deref() {
            Some("info" | "warning" | "critical") => {}
            s => errs.push(format!("{n}: severity {s:?}")),
        }
        for key in ["summary", "description", "runbook"] {
            if !a.annotations.contains_key(key) {
                errs.push(format!("{n}: no {key} annotation"));
            }
        }
        // Where the runbook link leads is checked by runbook_links_resolve.
        if !a
            .annotations
            .get("runbook")
            .is_some_and(|r| r.starts_with(&format!("{RUNBOOK}#")))
        {
            errs.push(format!(
                "{n}: runbook does not point at a section of {RUNBOOK}"
            ));
        }
        // {{ $labels.x }} only for labels the expression's result carries.
        if errs.is_empty() {
            let have = result_labels(&cat, &a.expr);
            for (key, text) in &a.annotations {
                for part in text.split("$labels.").skip(1) {
                    let l: String = part
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !have.contains(&l) {
                        errs.push(format!(
                            "{n}: annotation {key} uses $labels.{l}, not in {have:?}"
                        ));
                    }
                }
            }
        }
        // A case where it fires and one where it does not, in the promtool tests.
        let cases: Vec<&str> = test_lines
            .windows(2)
            .filter(|w| w[0] == format!("alertname: {n}"))
            .map(|w| w[1])
            .collect();
        if !cases.contains(&"exp_alerts: []") {
            errs.push(format!("{n}: no promtool case where it stays quiet"));
        }
        if !cases.contains(&"exp_alerts:") {
            errs.push(format!("{n}: no promtool case where it fires"));
        }
    }
    for m in [
        "skewscope_rss_qpi",
        "skewscope_host_net_rx_cpu_qpi",
        "skewscope_reuseport_lsi",
        "skewscope_reuseport_lqd",
        "skewscope_reuseport_regime",
        "skewscope_rss_regime",
        "skewscope_agent_probe_attached",
        "skewscope_agent_source_ok",
        "skewscope_agent_export_failures_total",
    ] {
        if !used.contains(m) {
            errs.push(format!("no alert on {m}"));
        }
    }
    assert!(errs.is_empty(), "{RULES}:\n{}", errs.join("\n"));
}

// ------------------------------------------------------------------ the dashboard

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).expect("dashboards/skewscope.json is not JSON")
}

/// Every panel, nested ones (collapsed rows) included.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("no panels") {
        out.push(p);
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner.iter());
        }
    }
    out
}

/// (where, expression) of every panel target.
fn panel_exprs(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?");
            let r = t["refId"].as_str().unwrap_or("?");
            let expr = t["expr"].as_str().unwrap_or_default().to_string();
            out.push((format!("panel {title:?} {r}"), expr));
        }
    }
    out
}

#[test]
fn dashboard_structure() {
    let d = dashboard();
    let mut errs = Vec::new();
    let schema = d["schemaVersion"].as_u64().unwrap_or(0);
    // 42: the Grafana Foundation SDK's dashboard schema (Grafana 12).
    if !(36..=42).contains(&schema) {
        errs.push(format!("schemaVersion {schema}"));
    }
    let vars = d["templating"]["list"].as_array().expect("no templating");
    let var = |name: &str| vars.iter().find(|v| v["name"] == name);
    match var("datasource") {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
        v => errs.push(format!("no Prometheus datasource variable: {v:?}")),
    }
    for name in ["instance", "device", "port"] {
        match var(name) {
            Some(v) if v["datasource"]["uid"] == "${datasource}" => {}
            v => errs.push(format!("template variable {name}: {v:?}")),
        }
    }
    let mut ids = BTreeSet::new();
    let mut cells: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for p in panels(&d) {
        let title = p["title"].as_str().unwrap_or_default();
        if title.trim().is_empty() {
            errs.push(format!("panel without a title: id {}", p["id"]));
        }
        match p["id"].as_u64() {
            Some(id) if ids.insert(id) => {}
            id => errs.push(format!("{title:?}: id {id:?} missing or repeated")),
        }
        if p["datasource"]["uid"] != "${datasource}" || p["datasource"]["type"] != "prometheus" {
            errs.push(format!("{title:?}: datasource {}", p["datasource"]));
        }
        let g = &p["gridPos"];
        let (Some(h), Some(w), Some(x), Some(y)) = (
            g["h"].as_u64(),
            g["w"].as_u64(),
            g["x"].as_u64(),
            g["y"].as_u64(),
        ) else {
            errs.push(format!("{title:?}: gridPos {g}"));
            continue;
        };
        if w == 0 || h == 0 || x + w > 24 {
            errs.push(format!("{title:?}: gridPos {g}"));
        }
        for cx in x..x + w {
            for cy in y..y + h {
                if let Some(other) = cells.insert((cx, cy), title.to_string()) {
                    errs.push(format!("{title:?} overlaps {other:?}"));
                }
            }
        }
        if p["type"] == "row" {
            continue;
        }
        let targets = p["targets"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        if targets.is_empty() {
            errs.push(format!("{title:?}: no targets"));
        }
        for t in targets {
            if t["expr"].as_str().is_none_or(|e| e.trim().is_empty()) {
                errs.push(format!("{title:?}: target without expr"));
            }
            if t["datasource"]["uid"] != "${datasource}" {
                errs.push(format!("{title:?}: target datasource {}", t["datasource"]));
            }
        }
    }
    errs.dedup();
    assert!(errs.is_empty(), "{DASHBOARD}:\n{}", errs.join("\n"));
}

#[test]
fn dashboard_uses_catalog_metrics_and_labels() {
    let cat = catalog();
    let d = dashboard();
    let mut errs = Vec::new();
    let mut used = BTreeSet::new();
    for (at, expr) in panel_exprs(&d) {
        errs.extend(
            check_expr(&cat, &expr)
                .into_iter()
                .map(|e| format!("{at}: {e}")),
        );
        if let Ok(u) = scan(&expr) {
            used.extend(u.metrics.into_iter().map(|(_, m)| m));
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if v["type"] != "query" {
            continue;
        }
        let name = v["name"].as_str().unwrap_or("?");
        let q = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .unwrap_or_default();
        let Some(args) = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
        else {
            errs.extend(
                check_expr(&cat, q)
                    .into_iter()
                    .map(|e| format!("${name}: {e}")),
            );
            continue;
        };
        let Some((selector, label)) = args.rsplit_once(',') else {
            errs.push(format!("${name}: label_values without a metric: {q}"));
            continue;
        };
        errs.extend(
            check_expr(&cat, selector)
                .into_iter()
                .map(|e| format!("${name}: {e}")),
        );
        if let Ok(u) = scan(selector) {
            for (_, m) in &u.metrics {
                if cat.has(m) && !cat.allowed(m).contains(label.trim()) {
                    errs.push(format!("${name}: {m} has no label {}", label.trim()));
                }
            }
        }
    }
    for m in [
        "skewscope_rss_qpi",
        "skewscope_rss_queue_packets_per_second",
        "skewscope_host_net_rx_cpu_qpi",
        "skewscope_cpu_net_rx_share_ratio",
        "skewscope_reuseport_lsi",
        "skewscope_reuseport_hcr_1",
        "skewscope_reuseport_lqd",
        "skewscope_reuseport_bci",
        "skewscope_reuseport_listener_events_per_second",
        "skewscope_reuseport_listener_queue_depth",
        "skewscope_reuseport_ingress_age_p95_seconds",
        "skewscope_reuseport_regime",
        "skewscope_rss_regime",
        "skewscope_agent_probe_attached_share_ratio",
        "skewscope_agent_source_ok",
        "skewscope_agent_export_failures_total",
    ] {
        if !used.contains(m) {
            errs.push(format!("no panel shows {m}"));
        }
    }
    assert!(errs.is_empty(), "{DASHBOARD}:\n{}", errs.join("\n"));
}

// ------------------------------------------------------------------ promtool

fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        skewscope_test_support::cannot_run("promtool", "promtool not installed (run `make deps`)");
    }
    found
}

fn assert_ok(what: &str, out: Output) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    eprintln!("{what}:\n{text}");
}

#[test]
fn promtool_checks_and_tests_the_rules() {
    let Some(promtool) = promtool() else { return };
    let dir = dashboards_dir();
    let run = |args: &[&str]| {
        Command::new(&promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("run promtool")
    };
    assert_ok(
        &format!("promtool check rules {RULES}"),
        run(&["check", "rules", RULES]),
    );
    assert_ok(
        &format!("promtool test rules {RULE_TESTS}"),
        run(&["test", "rules", RULE_TESTS]),
    );

    // Every dashboard expression through promtool's PromQL parser, as a recording rule
    // with the Grafana variables filled in.
    let mut rules = String::from("groups:\n  - name: dashboard-exprs\n    rules:\n");
    for (i, (at, expr)) in panel_exprs(&dashboard()).into_iter().enumerate() {
        let filled = expr
            .replace("$__rate_interval", "5m")
            .replace("$instance", ".*")
            .replace("$device", ".*")
            .replace("$port", ".*");
        assert!(!filled.contains('$'), "{at}: unknown variable in {expr}");
        rules.push_str(&format!(
            "      # {at}\n      - record: dashboard:expr_{i}\n        expr: {}\n",
            serde_json::to_string(&filled).unwrap()
        ));
    }
    let tmp = std::env::temp_dir().join(format!(
        "skewscope-dashboard-exprs-{}.yaml",
        std::process::id()
    ));
    std::fs::write(&tmp, &rules).unwrap();
    let out = Command::new(&promtool)
        .args(["check", "rules"])
        .arg(&tmp)
        .output()
        .expect("run promtool");
    let _ = std::fs::remove_file(&tmp);
    assert_ok("promtool check rules (dashboard expressions)", out);
}

// ------------------------------------------------------------------ the runbook

/// GitHub's anchor of a heading (what github-slugger does to the rendered text): lower
/// case, every character that is not a letter, digit, `-`, `_` or space removed, each
/// space a `-`; inline code and link markup are rendered away first.
fn github_anchor(heading: &str) -> String {
    // `[text](url)` renders as text.
    let mut text = String::new();
    let mut rest = heading;
    while let Some(open) = rest.find('[') {
        let Some((label, after)) = rest[open + 1..].split_once("](") else {
            break;
        };
        let Some(close) = after.find(')') else { break };
        text.push_str(&rest[..open]);
        text.push_str(label);
        rest = &after[close + 1..];
    }
    text.push_str(rest);
    text.trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings (ATX `#` headings outside code fences),
/// repeated ones numbered `-1`, `-2`, … as GitHub does.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if fenced || !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = github_anchor(&line[hashes..]);
        let n = seen.entry(base.clone()).or_insert(0);
        out.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

#[test]
fn github_anchors_are_computed_like_github() {
    for (heading, anchor) in [
        (
            "Reuseport imbalance: the 30-minute runbook",
            "reuseport-imbalance-the-30-minute-runbook",
        ),
        (
            "Step 3: RPS/RFS where queues are fewer than CPUs",
            "step-3-rpsrfs-where-queues-are-fewer-than-cpus",
        ),
        ("SkewscopeRssQueuePolarized", "skewscoperssqueuepolarized"),
        ("The `skewscope doctor` plan", "the-skewscope-doctor-plan"),
        ("See [regimes](regimes.md) — rule 6", "see-regimes--rule-6"),
        ("net_rx_share (per CPU)", "net_rx_share-per-cpu"),
    ] {
        assert_eq!(github_anchor(heading), anchor, "{heading}");
    }
    let a = anchors("# A\n## B b\n```\n# not a heading\n```\n## B b\n#nope\n");
    assert_eq!(
        a,
        BTreeSet::from(["a".into(), "b-b".into(), "b-b-1".into()]),
        "{a:?}"
    );
}

/// Every alert's `runbook` annotation and every in-page link of docs/runbook.md lead to a
/// heading that exists there (GitHub-style anchors).
#[test]
fn runbook_links_resolve() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(RUNBOOK);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let have = anchors(&text);
    let missing = |links: Vec<(String, String)>| -> Vec<String> {
        links
            .into_iter()
            .filter(|(_, anchor)| !have.contains(anchor))
            .map(|(from, anchor)| format!("{from}: no section #{anchor} in {RUNBOOK}"))
            .collect()
    };

    let alerts = alerts();
    assert!(alerts.len() >= 10);
    let mut errs = missing(
        alerts
            .iter()
            .map(|a| {
                let r = a.annotations.get("runbook").cloned().unwrap_or_default();
                let anchor = r
                    .strip_prefix(&format!("{RUNBOOK}#"))
                    .unwrap_or("(no anchor)")
                    .to_string();
                (format!("alert {}", a.name), anchor)
            })
            .collect(),
    );
    // `](#anchor)` links inside the runbook.
    let internal: Vec<(String, String)> = text
        .split("](#")
        .skip(1)
        .map(|s| {
            let anchor = s.split(')').next().unwrap_or_default().to_string();
            ("runbook link".into(), anchor)
        })
        .collect();
    assert!(internal.len() > 10, "{internal:?}");
    errs.extend(missing(internal));
    // The check can fail: a made-up anchor is reported.
    assert_eq!(
        missing(vec![("probe".into(), "no-such-section".into())]).len(),
        1
    );
    assert!(errs.is_empty(), "{}", errs.join("\n"));
    eprintln!(
        "{} alerts link to existing sections of {RUNBOOK} ({} headings)",
        alerts.len(),
        have.len()
    );
}

// ------------------------------------------------------------------ dashboards as code

/// `node` and `npm` on PATH, else skip (a failure under SKEWSCOPE_REQUIRE_PRIVILEGED=1,
/// as `make test` sets: `make deps` installs them).
fn npm() -> Option<PathBuf> {
    let find = |name: &str| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .find(|p| p.is_file())
        })
    };
    let found = find("node").and(find("npm"));
    if found.is_none() {
        skewscope_test_support::cannot_run(
            "dashboards as code",
            "node/npm not installed (run `make deps`)",
        );
    }
    found
}

fn run_in(dir: &Path, program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {} {args:?}: {e}", program.display()))
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The dashboards are code (dashboards/src/*.ts, Grafana Foundation SDK builders): `npm
/// ci` installs the pinned SDK and TypeScript from package-lock.json, `tsc --noEmit`
/// checks every field and enum against the SDK's types (strict), and the generator's
/// output equals the committed JSON byte for byte, in both directions (no committed
/// dashboard the builders do not produce). Then tsc is shown to reject what it must: a
/// plain string where the SDK wants an enum, a misspelt builder method, a wrong type.
#[test]
fn committed_dashboards_are_what_the_builders_produce() {
    let Some(npm) = npm() else { return };
    let dir = dashboards_dir();
    assert_ok(
        "npm ci",
        run_in(
            &dir,
            &npm,
            &["ci", "--prefer-offline", "--no-audit", "--no-fund"],
        ),
    );
    let tsc = dir.join("node_modules/.bin/tsc");
    assert_ok(
        "tsc -p . --noEmit",
        run_in(&dir, &tsc, &["-p", ".", "--noEmit"]),
    );

    let out =
        TempDir(std::env::temp_dir().join(format!("skewscope-dashboards-{}", std::process::id())));
    let out_arg = out.0.to_str().unwrap().to_string();
    assert_ok(
        "npm run build",
        run_in(
            &dir,
            &npm,
            &["run", "--silent", "build", "--", "--out", &out_arg],
        ),
    );
    let json_names = |d: &Path| -> BTreeSet<String> {
        std::fs::read_dir(d)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| {
                n.ends_with(".json") && !n.starts_with("package") && !n.starts_with("tsconfig")
            })
            .collect()
    };
    let built = json_names(&out.0);
    assert!(built.contains(DASHBOARD), "the generator wrote {built:?}");
    assert_eq!(
        json_names(&dir),
        built,
        "dashboards/*.json and what the generator writes differ: every dashboard is built \
         from dashboards/src (run `npm run build` in dashboards/)"
    );
    let mut errs = Vec::new();
    for name in &built {
        let want = std::fs::read_to_string(out.0.join(name)).unwrap();
        let have = read(name);
        if want != have {
            let (i, (w, h)) = want
                .lines()
                .zip(have.lines())
                .enumerate()
                .find(|(_, (w, h))| w != h)
                .unwrap_or((
                    want.lines().count().min(have.lines().count()),
                    ("(end)", "(end)"),
                ));
            errs.push(format!(
                "dashboards/{name} is not what dashboards/src builds (run `npm run build` in \
                 dashboards/); first difference at line {}:\n  built:     {w}\n  committed: {h}",
                i + 1
            ));
        }
    }
    assert!(errs.is_empty(), "{}", errs.join("\n"));

    // tsc rejects what does not fit the SDK's types: each line below is one error.
    let neg = TempDir(dir.join(format!(".tsc-negative-{}", std::process::id())));
    std::fs::create_dir_all(&neg.0).unwrap();
    let bad = [
        (
            "an enum given as a plain string",
            "new common.VizLegendOptionsBuilder().displayMode(\"table\");",
        ),
        (
            "a misspelt builder method",
            "new timeseries.PanelBuilder().lineWidht(1);",
        ),
        (
            "a number given as a string",
            "new timeseries.PanelBuilder().fillOpacity(\"10\");",
        ),
        (
            "a value mapping without its type",
            "new timeseries.PanelBuilder().mappings([{ options: {} }]);",
        ),
    ];
    let header = "import * as common from \"@grafana/grafana-foundation-sdk/common\";\n\
                  import * as timeseries from \"@grafana/grafana-foundation-sdk/timeseries\";\n";
    let mut src = String::from(header);
    for (_, line) in &bad {
        src.push_str(line);
        src.push('\n');
    }
    std::fs::write(neg.0.join("bad.ts"), src).unwrap();
    std::fs::write(
        neg.0.join("tsconfig.json"),
        "{\"extends\": \"../tsconfig.json\", \"compilerOptions\": {\"rootDir\": \".\", \
         \"noEmit\": true}, \"include\": [\"bad.ts\"]}\n",
    )
    .unwrap();
    let res = run_in(&neg.0, &tsc, &["-p", "."]);
    let text = String::from_utf8_lossy(&res.stdout).to_string();
    assert!(!res.status.success(), "tsc accepted:\n{text}");
    let header_lines = header.lines().count();
    for (i, (what, line)) in bad.iter().enumerate() {
        let at = format!("bad.ts({},", header_lines + i + 1);
        assert!(
            text.lines()
                .any(|l| l.starts_with(&at) && l.contains("error TS")),
            "tsc does not reject {what} ({line}):\n{text}"
        );
    }
    eprintln!(
        "dashboards: {built:?} equal what dashboards/src builds; tsc rejects {} broken \
         builder uses",
        bad.len()
    );
}
