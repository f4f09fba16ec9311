//! The Prometheus endpoint (`--prometheus-listen`): what it serves against the metric
//! catalog and the JSON report of the same cycle, and a real Prometheus (Debian's
//! `prometheus`, installed by `make deps`) scraping it and answering queries over its
//! HTTP API. That Prometheus also loads the shipped alert rules (dashboards/) and answers
//! every query of the shipped Grafana dashboard and rules against the agent's real data:
//! no PromQL errors, rules healthy, rate()/increase() only on counters, and data on every
//! panel except an explicit allow-list. Without the prometheus binary that test skips with
//! a reason, unless SKEWSCOPE_REQUIRE_PRIVILEGED=1 (set by `make test`) turns the skip into
//! a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use skewscope::config::Limits;
use skewscope::sinks::catalog::{self, exposed_names, AttrValue, Instrument, Source, CATALOG};
use skewscope::sinks::prom_naming::label_name;

mod common;
use common::{free_port, Agent, ReuseportGroup};

/// The agent with `run --output json --prometheus-listen 127.0.0.1:0` and `args`.
fn spawn_agent(args: &[&str]) -> Agent {
    let all: Vec<&str> = [
        "run",
        "--output",
        "json",
        "--prometheus-listen",
        "127.0.0.1:0",
    ]
    .iter()
    .chain(args)
    .copied()
    .collect();
    Agent::spawn(&all, &[])
}

/// GET `path` from `addr`: (status code, body), None when nothing answers. Bounded by
/// a 10 s read timeout.
fn try_http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    // Prometheus answers HTTP/1.1 chunked; the API bodies are one JSON document.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Some((code, body))
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    try_http_get(addr, path).unwrap_or_else(|| panic!("GET http://{addr}{path} failed"))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The text format: `# HELP`/`# TYPE` per family, then `name{k="v",…} value` lines.
fn parse_exposition(text: &str) -> (BTreeMap<String, (String, String)>, Vec<Sample>) {
    let mut families: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            families.entry(name.into()).or_default().1 = help.replace("\\n", "\n");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').unwrap();
            families.entry(name.into()).or_default().0 = ty.into();
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, mut rest) = match line.find(['{', ' ']) {
            Some(i) => (&line[..i], &line[i..]),
            None => panic!("bad sample line {line:?}"),
        };
        let mut labels = BTreeMap::new();
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices().peekable();
            let mut key = String::new();
            let mut end = 0;
            while let Some((i, c)) = chars.next() {
                match c {
                    '}' => {
                        end = i + 1;
                        break;
                    }
                    ',' => {}
                    '=' => {
                        assert_eq!(chars.next().map(|(_, c)| c), Some('"'));
                        let mut v = String::new();
                        while let Some((_, c)) = chars.next() {
                            match c {
                                '\\' => match chars.next().map(|(_, c)| c) {
                                    Some('n') => v.push('\n'),
                                    Some(c) => v.push(c),
                                    None => {}
                                },
                                '"' => break,
                                c => v.push(c),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), v);
                    }
                    c => key.push(c),
                }
            }
            rest = &r[end..];
        }
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value: rest.trim().parse().unwrap_or_else(|_| panic!("{line}")),
        });
    }
    (families, samples)
}

fn label_value(v: &AttrValue) -> String {
    match v {
        AttrValue::Str(s) => s.clone(),
        AttrValue::Int(i) => i.to_string(),
        AttrValue::F64(x) => x.to_string(),
        AttrValue::Bool(b) => b.to_string(),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn metrics_endpoint_serves_the_catalog_under_collector_names() {
    let agent = spawn_agent(&["--interval", "0.5"]);
    let addr = agent.prometheus_addr();
    agent.wait_reports(2);
    let (code, text) = http_get(&addr, "/metrics");
    assert_eq!(code, 200);
    let (families, samples) = parse_exposition(&text);
    fn named<'a>(samples: &'a [Sample], name: &'a str) -> impl Iterator<Item = &'a Sample> {
        samples.iter().filter(move |s| s.name == name)
    }

    // The report this scrape shows: reports are published before they are printed, so
    // wait for the line whose number the cycles counter gives.
    let cycles = named(&samples, "skewscope_agent_cycles_total")
        .next()
        .unwrap()
        .value as usize;
    let reports = agent.wait_reports(cycles);
    let report = &reports[cycles - 1];
    let eval = catalog::evaluate(report, &Limits::default());

    let scope = [
        ("otel_scope_name".to_string(), "skewscope".to_string()),
        (
            "otel_scope_version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
    ];
    let mut compared = 0;
    for (def, expected) in CATALOG.iter().zip(&eval.points) {
        let names = exposed_names(def);
        let family = names[0]
            .strip_suffix("_bucket")
            .unwrap_or(&names[0])
            .to_string();
        let present = families.get(&family);
        if let Source::Agent { .. } = def.source {
            let (ty, help) = present.unwrap_or_else(|| panic!("no family {family}"));
            let want = match def.instrument {
                Instrument::Histogram(_) => "histogram",
                _ => "counter",
            };
            assert_eq!(ty, want, "{family}");
            assert_eq!(help, def.description, "{family}");
            for n in &names {
                assert!(named(&samples, n).next().is_some(), "no sample {n}");
            }
            continue;
        }
        let got: Vec<&Sample> = named(&samples, &names[0]).collect();
        assert_eq!(
            got.len(),
            expected.len(),
            "{}: {} series served, the report gives {}",
            names[0],
            got.len(),
            expected.len()
        );
        if expected.is_empty() {
            continue;
        }
        let (ty, help) = present.unwrap();
        let want = if def.instrument == Instrument::Gauge {
            "gauge"
        } else {
            "counter"
        };
        assert_eq!(ty, want, "{family}");
        assert_eq!(help, def.description, "{family}");
        for p in expected {
            let labels: BTreeMap<String, String> = p
                .attrs
                .iter()
                .map(|(k, v)| (label_name(k), label_value(v)))
                .chain(scope.iter().cloned())
                .collect();
            let s = got
                .iter()
                .find(|s| s.labels == labels)
                .unwrap_or_else(|| panic!("{}: no series {labels:?}", names[0]));
            assert!(close(s.value, p.value), "{}{labels:?}", names[0]);
            compared += 1;
        }
    }
    assert!(compared > 0);

    // Resource attributes on target_info, service.name as job.
    let info = named(&samples, "target_info").next().expect("target_info");
    assert_eq!(info.labels["job"], "skewscope");
    assert_eq!(info.labels["os_type"], "linux");
    assert!(!info.labels.contains_key("otel_scope_name"));

    // Histogram buckets are cumulative and end at +Inf = count.
    let buckets: Vec<&Sample> =
        named(&samples, "skewscope_agent_cycle_duration_seconds_bucket").collect();
    assert!(buckets.windows(2).all(|w| w[0].value <= w[1].value));
    assert_eq!(buckets.last().unwrap().labels["le"], "+Inf");
    let count = named(&samples, "skewscope_agent_cycle_duration_seconds_count")
        .next()
        .unwrap();
    assert_eq!(buckets.last().unwrap().value, count.value);

    let (code, _) = http_get(&addr, "/nope");
    assert_eq!(code, 404);
    let (_, again) = http_get(&addr, "/metrics");
    let (_, samples) = parse_exposition(&again);
    let scrapes = samples
        .iter()
        .find(|s| s.name == "skewscope_agent_prometheus_scrapes_total")
        .unwrap();
    assert!(scrapes.value >= 2.0);
    eprintln!("/metrics: {compared} series equal the JSON report of cycle {cycles}");
}

/// Kubernetes probes: /readyz is 503 until the first report is published, then 200;
/// /healthz is 200 while reports keep coming; other paths answer as before.
#[test]
fn health_endpoints_follow_the_reports() {
    // A 5 s interval: the first report needs two collections, so right after start
    // nothing has been published yet.
    let agent = spawn_agent(&["--interval", "5"]);
    let addr = agent.prometheus_addr();
    let (code, body) = http_get(&addr, "/readyz");
    assert_eq!((code, body.as_str()), (503, "no report published yet\n"));
    // Not stalled yet: the start is less than 10 s ago.
    assert_eq!(http_get(&addr, "/healthz"), (200, "ok\n".to_string()));

    agent.wait_reports(1);
    assert_eq!(http_get(&addr, "/readyz"), (200, "ok\n".to_string()));
    assert_eq!(http_get(&addr, "/healthz"), (200, "ok\n".to_string()));

    assert_eq!(http_get(&addr, "/nope"), (404, "not found\n".to_string()));
    assert_eq!(
        http_get(&addr, "/"),
        (200, "skewscope: metrics at /metrics\n".to_string())
    );
    assert_eq!(http_get(&addr, "/metrics").0, 200);
}

fn prometheus_binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("prometheus"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        skewscope_test_support::cannot_run(
            "prometheus",
            "prometheus not installed (run `make deps`)",
        );
    }
    found
}

struct Prometheus {
    child: Child,
    addr: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Scraping `target` every second and evaluating the shipped alert rules
    /// ([`RULES`]) every second; its log goes to `dir`/prometheus.log.
    fn start(bin: &Path, dir: &Path, target: &str) -> Prometheus {
        let config = dir.join("prometheus.yml");
        let rules = dashboards_file(RULES);
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - '{}'\n\
                 scrape_configs:\n  - job_name: skewscope\n    static_configs:\n      \
                 - targets: ['{target}']\n",
                rules.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        Prometheus { child, addr }
    }

    /// What Prometheus logged (warnings and errors), and whether it has exited.
    fn log(&mut self, dir: &Path) -> String {
        let exited = match self.child.try_wait() {
            Ok(Some(status)) => format!("prometheus exited: {status}\n"),
            _ => String::new(),
        };
        let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
        format!("{exited}{log}")
    }

    /// An instant query's result vector.
    fn query(&self, promql: &str) -> Vec<Value> {
        let Some((200, body)) = try_http_get(
            &self.addr,
            &format!("/api/v1/query?query={}", urlencode(promql)),
        ) else {
            return Vec::new();
        };
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// GET an API path: its `data`, or the error Prometheus gives (status "error").
    fn api(&self, path: &str) -> Result<Value, String> {
        let (code, body) =
            try_http_get(&self.addr, path).ok_or_else(|| format!("no answer to {path}"))?;
        let v: Value =
            serde_json::from_str(&body).map_err(|e| format!("HTTP {code}, {e}: {body}"))?;
        if v["status"] != "success" {
            return Err(format!("HTTP {code}, {}: {}", v["errorType"], v["error"]));
        }
        Ok(v["data"].clone())
    }

    /// An instant query evaluated at `time` (Unix seconds): its result vector, or the
    /// error Prometheus gives (a parse or type error, an unknown function, a result that
    /// is not an instant vector).
    fn query_at(&self, promql: &str, time: f64) -> Result<Vec<Value>, String> {
        let data = self.api(&format!(
            "/api/v1/query?query={}&time={time:.3}",
            urlencode(promql)
        ))?;
        if data["resultType"] != "vector" {
            return Err(format!("result type {}, not vector", data["resultType"]));
        }
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// The values of `label` over the series `selector` matches (Grafana's
    /// `label_values(selector, label)`).
    fn label_values(&self, selector: &str, label: &str) -> Result<BTreeSet<String>, String> {
        let data = self.api(&format!(
            "/api/v1/label/{label}/values?match%5B%5D={}",
            urlencode(selector)
        ))?;
        Ok(data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect())
    }

    fn wait_for(&self, promql: &str, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.query(promql);
            if !r.is_empty() || Instant::now() > deadline {
                return r;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// Percent-encoding for a query parameter.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

// ------------------------------------------------------------------ dashboards/

const RULES: &str = "skewscope-alerts.yaml";
const DASHBOARD: &str = "skewscope.json";

fn dashboards_file(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../dashboards")
        .join(name);
    path.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What Grafana puts for `$__rate_interval` with the test's 1 s scrape interval is 4 s
/// (4 × scrape interval); 10 s keeps two samples in every window on a loaded machine.
const RATE_INTERVAL: &str = "10s";
/// `$__interval`: the scrape interval.
const INTERVAL: &str = "1s";

/// Dashboard targets ("panel title/refId") that may return nothing here, and why: the
/// agent has no such series in this setup (this host's devices, the test's one UDP
/// reuseport group on loopback), or the expression keeps only some values. Every other
/// target must return data; a key that names no target fails the test (keep it current).
const MAY_BE_EMPTY: &[(&str, &str)] = &[
    (
        "QPI per device/A",
        "skewscope_rss_qpi is absent while a device has no RX packets; on the test VM the \
         only RSS device, eth0 (virtio_net, 1 queue), sees no traffic during the test (the \
         test's traffic is on lo, which has no RX queues)",
    ),
    (
        "ISI (normalized) and indirection-table QPI/A",
        "normalized ISI needs interrupts on 2+ RX queues; eth0 has one queue and no IRQs here",
    ),
    (
        "ISI (normalized) and indirection-table QPI/B",
        "table QPI needs an RSS indirection table (ethtool -x); single-queue virtio_net has \
         none",
    ),
    (
        "Indirection-table share per queue/A",
        "table shares need an RSS indirection table (ethtool -x); single-queue virtio_net \
         has none",
    ),
    (
        "Predicted skew reduction per policy/A",
        "null while the default policy's predicted LSI is 0 (nothing to reduce): the test \
         group's 16 flows may split evenly over its 2 sockets under the kernel's hash",
    ),
    (
        "HAF95: hot-queue ingress age p95/A",
        "HAF95 is the ingress age on hot RX queues: none without device QPI (see above)",
    ),
    (
        "Softnet drops and time squeeze per CPU/A",
        "`> 0`: only CPUs with softnet backlog drops, none on an idle test VM",
    ),
    (
        "Softnet drops and time squeeze per CPU/B",
        "`> 0`: only CPUs whose NET_RX ran out of budget (time squeeze), none at ~2000 \
         datagrams/s",
    ),
    (
        "LQD per group/A",
        "protocol=\"tcp\": the test's reuseport group is UDP",
    ),
    (
        "Per-listener queue depth/B",
        "backlog limit exists for TCP listeners only (listen() backlog); the test's group is \
         UDP",
    ),
];

/// (`panel title/refId`, expression) of every dashboard target, panels of collapsed rows
/// included; and the dashboard's templating list.
fn dashboard_targets() -> (Vec<(String, String)>, Vec<Value>) {
    let path = dashboards_file(DASHBOARD);
    let d: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut panels = Vec::new();
    for p in d["panels"].as_array().expect("no panels") {
        panels.push(p);
        panels.extend(p["panels"].as_array().into_iter().flatten());
    }
    let mut targets = Vec::new();
    for p in panels {
        for t in p["targets"].as_array().into_iter().flatten() {
            let key = format!(
                "{}/{}",
                p["title"].as_str().unwrap_or("?"),
                t["refId"].as_str().unwrap_or("?")
            );
            targets.push((key, t["expr"].as_str().unwrap_or_default().to_string()));
        }
    }
    let vars = d["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    (targets, vars)
}

/// The alert names of the rules file (`- alert: Name` lines).
fn rule_file_alerts() -> BTreeSet<String> {
    std::fs::read_to_string(dashboards_file(RULES))
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|n| n.trim().to_string())
        .collect()
}

/// `expr` with the Grafana variables (`$x`, `${x}`) replaced by `vars`' values; an error
/// for a variable `vars` does not have.
fn fill(expr: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = expr.to_string();
    // Longest names first: `$__rate_interval` before `$__interval`.
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for n in names {
        out = out
            .replace(&format!("${{{n}}}"), &vars[n])
            .replace(&format!("${n}"), &vars[n]);
    }
    match out.find('$') {
        Some(i) => Err(format!("unknown variable at {:?} in {expr}", &out[i..])),
        None => Ok(out),
    }
}

/// Each metric `expr` selects, with the function it is the direct argument of ("" at the
/// top level, under an aggregation or a binary operator).
fn metric_uses(expr: &str) -> Vec<(String, String)> {
    let c: Vec<char> = expr.chars().collect();
    let word = |ch: char| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':';
    // The index after the `end` that closes what starts at `i` (strings skipped whole).
    let skip_to = |mut i: usize, end: char| {
        let quoted = end == '"' || end == '\'';
        while i < c.len() && c[i] != end {
            if quoted && c[i] == '\\' {
                i += 1;
            } else if !quoted && (c[i] == '"' || c[i] == '\'') {
                let q = c[i];
                i += 1;
                while i < c.len() && c[i] != q {
                    i += if c[i] == '\\' { 2 } else { 1 };
                }
            }
            i += 1;
        }
        i + 1
    };
    let (mut calls, mut out, mut pending) = (Vec::<String>::new(), Vec::new(), None);
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '{' {
            i = skip_to(i + 1, '}');
        } else if ch == '[' {
            i = skip_to(i + 1, ']');
        } else if ch == '"' || ch == '\'' {
            i = skip_to(i + 1, ch);
        } else if ch.is_ascii_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && word(c[i]) {
                i += 1;
            }
            let w: String = c[start..i].iter().collect();
            let next = c[i..].iter().find(|ch| !ch.is_whitespace());
            if next == Some(&'(') {
                pending = Some(w);
            } else if w.starts_with("skewscope_") {
                out.push((w, calls.last().cloned().unwrap_or_default()));
            }
        } else {
            if ch == '(' {
                calls.push(pending.take().unwrap_or_default());
            } else if ch == ')' {
                calls.pop();
            } else if !ch.is_whitespace() {
                pending = None;
            }
            i += 1;
        }
    }
    out
}

/// Functions whose argument must be a counter (or a histogram's series).
const COUNTER_FUNCTIONS: [&str; 4] = ["rate", "irate", "increase", "resets"];
/// Functions whose argument must be a gauge.
const GAUGE_FUNCTIONS: [&str; 4] = ["delta", "deriv", "predict_linear", "idelta"];

/// Type mistakes PromQL does not reject: rate() of a gauge, a raw counter, delta() of a
/// counter. Types from the catalog, which the /metrics test above checks the served
/// `# TYPE`s against.
fn type_problems(expr: &str) -> Vec<String> {
    let mut errs = Vec::new();
    for (m, f) in metric_uses(expr) {
        let Some(def) = CATALOG.iter().find(|d| exposed_names(d).contains(&m)) else {
            errs.push(format!("{m} is no metric of the catalog"));
            continue;
        };
        let counter = def.instrument != Instrument::Gauge;
        if COUNTER_FUNCTIONS.contains(&f.as_str()) && !counter {
            errs.push(format!("{f}() of the gauge {m}"));
        } else if GAUGE_FUNCTIONS.contains(&f.as_str()) && counter {
            errs.push(format!("{f}() of the counter {m}"));
        } else if counter && !COUNTER_FUNCTIONS.contains(&f.as_str()) {
            errs.push(format!("{m} (a counter) outside rate()/increase()"));
        }
    }
    errs
}

#[test]
fn the_type_check_knows_counters_from_gauges() {
    for good in [
        r#"sum by (job, instance, source) (rate(skewscope_agent_source_errors_total{instance=~"$instance"}[$__rate_interval]))"#,
        "histogram_quantile(0.95, sum by (le) (rate(skewscope_agent_cycle_duration_seconds_bucket[5m])))",
        "increase(skewscope_agent_export_failures_total[10m]) > 0",
        r#"max by (job) ((skewscope_rss_regime{regime="RSS_DRIFT"} * 1) or (skewscope_rss_regime * 0))"#,
        r#"label_replace(skewscope_host_spi, "x", "(a)", "instance", "(.*)")"#,
        "deriv(skewscope_host_spi[5m])",
    ] {
        assert_eq!(type_problems(good), Vec::<String>::new(), "{good}");
    }
    for bad in [
        "rate(skewscope_host_spi[5m])",
        "sum by (instance) (increase(skewscope_reuseport_lsi[5m]))",
        "skewscope_agent_cycles_total",
        "sum(skewscope_agent_cycle_duration_seconds_bucket) by (le)",
        "delta(skewscope_agent_cycles_total[5m])",
        "skewscope_host_spi / skewscope_agent_export_failures_total",
        "skewscope_host_spy",
    ] {
        assert!(!type_problems(bad).is_empty(), "passed {bad}");
    }
}

/// Grafana variable name (without `$`) -> the value put in its place.
type Vars = BTreeMap<String, String>;

/// Runs the dashboard and alert queries against one Prometheus at one evaluation time.
struct QueryCheck<'a> {
    prom: &'a Prometheus,
    time: f64,
    /// Whether every target not in MAY_BE_EMPTY must return data.
    want_data: bool,
    /// The targets that returned nothing (in either variant).
    empty: std::cell::RefCell<BTreeSet<String>>,
}

impl QueryCheck<'_> {
    /// What is wrong with the dashboard target `key`'s `expr` under `vars`: a PromQL
    /// error, a type mistake, or no data where MAY_BE_EMPTY does not allow it.
    fn target(&self, key: &str, expr: &str, vars: &BTreeMap<String, String>) -> Vec<String> {
        let mut errs = type_problems(expr);
        let filled = match fill(expr, vars) {
            Ok(f) => f,
            Err(e) => return vec![e],
        };
        match self.prom.query_at(&filled, self.time) {
            Err(e) => errs.push(format!("query failed: {e}")),
            Ok(r) if r.is_empty() => {
                self.empty.borrow_mut().insert(key.to_string());
                if self.want_data && !MAY_BE_EMPTY.iter().any(|(k, _)| *k == key) {
                    errs.push("no data (not in MAY_BE_EMPTY)".into());
                }
            }
            Ok(_) => {}
        }
        errs.into_iter()
            .map(|e| format!("{key}: {e}\n    {filled}"))
            .collect()
    }

    /// The dashboard's template variables from its own `label_values(selector, label)`
    /// queries (chained: `$instance` in the selectors is the chosen instance): each
    /// variable's values and the one chosen: with `select` None "All" (`.*`, the
    /// variables' allValue); else the value `select` gives (it must be offered), else the
    /// first value offered, else "All".
    fn variables(
        &self,
        defs: &[Value],
        select: Option<&BTreeMap<&str, String>>,
    ) -> Result<(Vars, BTreeMap<String, BTreeSet<String>>), String> {
        let mut chosen: BTreeMap<String, String> = BTreeMap::from([
            ("__rate_interval".into(), RATE_INTERVAL.into()),
            ("__interval".into(), INTERVAL.into()),
        ]);
        let mut offered = BTreeMap::new();
        for v in defs.iter().filter(|v| v["type"] == "query") {
            let name = v["name"].as_str().unwrap_or("?").to_string();
            let q = v["query"]["query"]
                .as_str()
                .or(v["query"].as_str())
                .unwrap_or_default();
            let (selector, label) = q
                .strip_prefix("label_values(")
                .and_then(|r| r.strip_suffix(')'))
                .and_then(|a| a.rsplit_once(','))
                .ok_or_else(|| format!("${name}: not label_values(selector, label): {q}"))?;
            let selector = fill(selector, &chosen).map_err(|e| format!("${name}: {e}"))?;
            let values = self
                .prom
                .label_values(&selector, label.trim())
                .map_err(|e| format!("${name} ({q}): {e}"))?;
            let pick = match select.map(|s| s.get(name.as_str())) {
                None => ".*".to_string(),
                Some(Some(want)) if values.contains(want) => want.clone(),
                Some(Some(want)) => {
                    return Err(format!(
                        "${name} ({selector}) offers {values:?}, not {want}"
                    ))
                }
                Some(None) => values.iter().next().cloned().unwrap_or(".*".into()),
            };
            chosen.insert(name.clone(), pick);
            offered.insert(name, values);
        }
        Ok((chosen, offered))
    }
}

/// Every dashboard target and every alert rule against the real Prometheus, which scrapes
/// the agent (at `instance`) watching the test's reuseport group on `port`: the variables'
/// own queries offer both; every target answers without a PromQL error, with data unless
/// MAY_BE_EMPTY allows none, both for the variables set to "All" and to this instance and
/// port; every rule of the rules file is loaded and evaluates with health "ok", and its
/// expression answers /api/v1/query. `want_data`: check for data at all (the eBPF-fed
/// panels have none without root).
fn check_dashboard_and_rules(prom: &Prometheus, instance: &str, port: u16, want_data: bool) {
    let (targets, defs) = dashboard_targets();
    assert!(
        targets.len() >= 20,
        "only {} dashboard targets",
        targets.len()
    );
    let keys: BTreeSet<&str> = targets.iter().map(|(k, _)| k.as_str()).collect();
    for (k, _) in MAY_BE_EMPTY {
        assert!(
            keys.contains(k),
            "MAY_BE_EMPTY names no dashboard target: {k}"
        );
    }

    // The alert rules: all loaded, all evaluated without error (evaluation_interval 1 s;
    // "unknown" until a rule's first evaluation).
    let want_alerts = rule_file_alerts();
    let deadline = Instant::now() + Duration::from_secs(15);
    let rules: Vec<Value> = loop {
        let data = prom.api("/api/v1/rules").expect("/api/v1/rules");
        let rules: Vec<Value> = data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let failing: Vec<String> = rules
            .iter()
            .filter(|r| r["health"] == "err")
            .map(|r| format!("{}: {}", r["name"], r["lastError"]))
            .collect();
        assert!(failing.is_empty(), "rules failing: {failing:#?}");
        let all_ok = rules.iter().all(|r| r["health"] == "ok");
        if (all_ok && rules.len() == want_alerts.len()) || Instant::now() > deadline {
            break rules;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let loaded: BTreeSet<String> = rules
        .iter()
        .filter(|r| r["type"] == "alerting")
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(loaded, want_alerts, "alerting rules Prometheus loaded");
    assert_eq!(rules.len(), want_alerts.len(), "{rules:#?}");
    for r in &rules {
        assert_eq!(r["health"], "ok", "rule not evaluated healthy: {r:#}");
    }

    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let check = QueryCheck {
        prom,
        time,
        want_data,
        empty: Default::default(),
    };
    let mut errs = Vec::new();
    for r in &rules {
        let q = r["query"].as_str().unwrap_or_default();
        if let Err(e) = prom.query_at(q, time) {
            errs.push(format!("alert {}: {e}\n    {q}", r["name"]));
        }
        errs.extend(
            type_problems(q)
                .into_iter()
                .map(|e| format!("alert {}: {e}\n    {q}", r["name"])),
        );
    }

    // The variables as a viewer leaves them ("All") and set to this agent and the test's
    // group (the reuseport probes see its traffic within a few cycles).
    // (Without the eBPF probes there is no LSI, and no port to choose.)
    let (all, _) = check.variables(&defs, None).unwrap();
    let mut select = BTreeMap::from([("instance", instance.to_string())]);
    if want_data {
        select.insert("port", port.to_string());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let (selected, offered) = loop {
        match check.variables(&defs, Some(&select)) {
            Ok(v) => break v,
            Err(e) => assert!(Instant::now() < deadline, "{e}"),
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let mut checked = 0;
    for vars in [&all, &selected] {
        for (key, expr) in &targets {
            errs.extend(check.target(key, expr, vars));
            checked += 1;
        }
    }
    let empty = check.empty.borrow().clone();

    // The checks catch what they are for: copies of real targets broken on purpose.
    let host_qpi = targets
        .iter()
        .find(|(_, e)| e.contains("skewscope_host_net_rx_cpu_qpi{"))
        .map(|(_, e)| e.clone())
        .expect("a panel of skewscope_host_net_rx_cpu_qpi");
    for (what, broken) in [
        (
            "a misspelt label",
            host_qpi.replace("instance=~", "instanse=~"),
        ),
        (
            "a misspelt metric",
            host_qpi.replace("_cpu_qpi", "_cpu_qpy"),
        ),
        (
            "a syntax error",
            host_qpi.replace("skewscope_", "sum by (instance skewscope_"),
        ),
        (
            "rate() of a gauge",
            format!("rate({host_qpi}[$__rate_interval])"),
        ),
        ("a range vector", format!("{host_qpi}[$__rate_interval]")),
        (
            "a raw counter",
            "skewscope_agent_cycles_total{instance=~\"$instance\"}".to_string(),
        ),
    ] {
        if want_data || !what.starts_with("a misspelt") {
            assert!(
                !check.target("broken copy", &broken, &selected).is_empty(),
                "the check passes {what}: {broken}"
            );
        }
    }

    assert!(
        errs.is_empty(),
        "{DASHBOARD} and {RULES} against the agent at {instance} (test group on port \
         {port}; variables offered {offered:?}):\n{}",
        errs.join("\n")
    );
    let allowed_with_data: Vec<&str> = MAY_BE_EMPTY
        .iter()
        .map(|(k, _)| *k)
        .filter(|k| !empty.contains(*k))
        .collect();
    eprintln!(
        "dashboard: {checked} target queries answered (variables All and {selected:?}); \
         empty: {empty:?} (MAY_BE_EMPTY, yet with data here: {allowed_with_data:?}); {} \
         alert rules loaded and healthy; variables offered {offered:?}",
        rules.len()
    );
}

#[test]
fn a_real_prometheus_scrapes_and_answers_qpi_and_lsi_queries() {
    let Some(bin) = prometheus_binary() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("skewscope-prom-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Removed afterwards unless the test failed (kept to look at).
    struct Cleanup<'a>(&'a Path);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                let _ = std::fs::remove_dir_all(self.0);
            }
        }
    }
    let _cleanup = Cleanup(&dir);
    let group = ReuseportGroup::start();
    // The live shadow replays the test group's flows every 2 s, so the shadow panels
    // have data (docs/shadow.md; replays need root for their private namespace).
    let config = dir.join("skewscope.toml");
    std::fs::write(
        &config,
        "[shadow]\ncandidates = [\"builtin:isolate-heavy\"]\ninterval_secs = 2\n",
    )
    .unwrap();
    let agent = spawn_agent(&["--interval", "1", "--config", config.to_str().unwrap()]);
    let mut prom = Prometheus::start(&bin, &dir, &agent.prometheus_addr());

    // Host-level QPI of NET_RX softirqs across CPUs: loopback traffic raises NET_RX.
    let host_qpi = prom.wait_for("skewscope_host_net_rx_cpu_qpi", Duration::from_secs(60));
    assert!(
        !host_qpi.is_empty(),
        "Prometheus has no skewscope_host_net_rx_cpu_qpi; agent stderr: {}\nprometheus: {}",
        agent.stderr(),
        prom.log(&dir)
    );
    assert_eq!(host_qpi[0]["metric"]["job"], "skewscope");
    let up = prom.query("up{job=\"skewscope\"}");
    assert_eq!(up[0]["value"][1], "1");
    // Counters and histograms arrive under their suffixed names.
    assert!(!prom.query("skewscope_agent_cycles_total").is_empty());
    assert!(!prom
        .query("skewscope_agent_cycle_duration_seconds_bucket{le=\"+Inf\"}")
        .is_empty());

    // Reports from here on are all scraped (earlier ones may predate the first scrape);
    // give the device and group series a few scrapes.
    let first_scraped = agent.reports().len();
    std::thread::sleep(Duration::from_secs(4));
    let reports = agent.reports().split_off(first_scraped);
    let limits = Limits::default();

    // Per-device series: every device of the reports, eth0 included on this machine.
    let devices: Vec<String> = reports.last().unwrap()["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect();
    for d in &devices {
        let q = format!("skewscope_rss_queues{{device=\"{d}\"}}");
        assert!(!prom.query(&q).is_empty(), "{q}");
    }
    // Device QPI (skewscope_rss_qpi): only where a window had packets on the device (an
    // idle device has no QPI, and no series). max_over_time keeps series that went idle.
    // A series Prometheus must have: one the reports carried for 3 cycles in a row (a
    // 1 s scrape of 1 s reports cannot miss all three; a device that saw packets in one
    // window only, or another process's short-lived group, may be missed).
    fn steady(reports: &[Value], keys: impl Fn(&Value) -> Vec<String>) -> BTreeSet<String> {
        let per: Vec<BTreeSet<String>> = reports
            .iter()
            .map(|r| keys(r).into_iter().collect())
            .collect();
        per.windows(3)
            .flat_map(|w| {
                w[0].intersection(&w[1])
                    .filter(|k| w[2].contains(*k))
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect()
    }
    // Device QPI (skewscope_rss_qpi) exists only while a device has packets (an idle
    // device has no QPI, and no series); max_over_time keeps series that went idle.
    let qpi_at = CATALOG
        .iter()
        .position(|d| d.name == "skewscope.rss.qpi")
        .unwrap();
    let qpi_devices = steady(&reports, |r| {
        catalog::evaluate(r, &limits).points[qpi_at]
            .iter()
            .map(|p| label_value(&p.attrs[0].1))
            .collect()
    });
    let qpi = prom.query("max_over_time(skewscope_rss_qpi[5m])");
    for d in &qpi_devices {
        assert!(
            qpi.iter().any(|s| s["metric"]["device"] == d.as_str()),
            "no skewscope_rss_qpi for {d}: {qpi:?}"
        );
    }
    // LSI (skewscope_reuseport_lsi) of the groups the listener sources report, ours
    // included once the probes see its traffic.
    let lsi_groups = steady(&reports, |r| {
        r["reuseport_groups"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|g| !g["indices"]["lsi"].is_null())
            .filter_map(|g| g["port"].as_u64())
            .map(|p| p.to_string())
            .collect()
    });
    let lsi = prom.query("max_over_time(skewscope_reuseport_lsi[5m])");
    for port in &lsi_groups {
        assert!(
            lsi.iter().any(|s| s["metric"]["port"] == port.as_str()),
            "no skewscope_reuseport_lsi for port {port}: {lsi:?}"
        );
    }
    eprintln!(
        "Prometheus: host QPI {}, device QPI series for {:?}, LSI series for ports {:?} \
         (test group on {})",
        host_qpi[0]["value"][1], qpi_devices, lsi_groups, group.port
    );

    // The shipped dashboard and alert rules against this data. Without root the eBPF
    // probes do not attach and the panels they feed are empty: then only errors count.
    let want_data = skewscope_test_support::Needs::new(
        "prometheus: data in the probe-fed panels (without root only errors count)",
    )
    .root()
    .met();
    if want_data {
        // The first replay's results: flows of a few cycles, then one replay.
        let shadow = prom.wait_for(
            &format!("skewscope_shadow_lsi{{port=\"{}\"}}", group.port),
            Duration::from_secs(60),
        );
        assert!(
            !shadow.is_empty(),
            "no skewscope_shadow_lsi for the test group on port {}; agent stderr: {}",
            group.port,
            agent.stderr()
        );
    }
    check_dashboard_and_rules(&prom, &agent.prometheus_addr(), group.port, want_data);
    drop(group);
}
