//! The Prometheus endpoint (`--prometheus-listen`): what it serves against the metric
//! catalog and the JSON report of the same cycle, and a real Prometheus (Debian's
//! `prometheus`, installed by `make deps`) scraping it and answering queries over its
//! HTTP API. Without the prometheus binary that test skips with a reason, unless
//! SKEWSCOPE_REQUIRE_PRIVILEGED=1 (set by `make test`) turns the skip into a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use skewscope::sinks::catalog::{self, AttrValue, Instrument, Limits, Source, CATALOG};
use skewscope::sinks::prometheus::{exposed_names, label_name};

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

fn prometheus_binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("prometheus"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("SKEWSCOPE_REQUIRE_PRIVILEGED").is_none(),
            "prometheus not installed: run `make deps`"
        );
        eprintln!("skipped: prometheus not installed (run `make deps`)");
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
    fn start(bin: &Path, dir: &Path, target: &str) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: skewscope\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )
        .unwrap();
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
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        Prometheus { child, addr }
    }

    /// An instant query's result vector.
    fn query(&self, promql: &str) -> Vec<Value> {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => {
                    (b as char).to_string()
                }
                b => format!("%{b:02X}"),
            })
            .collect();
        let Some((200, body)) = try_http_get(&self.addr, &format!("/api/v1/query?query={encoded}"))
        else {
            return Vec::new();
        };
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        v["data"]["result"].as_array().cloned().unwrap_or_default()
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
    let agent = spawn_agent(&["--interval", "1"]);
    let prom = Prometheus::start(&bin, &dir, &agent.prometheus_addr());

    // Host-level QPI of NET_RX softirqs across CPUs: loopback traffic raises NET_RX.
    let host_qpi = prom.wait_for("skewscope_host_net_rx_cpu_qpi", Duration::from_secs(60));
    assert!(
        !host_qpi.is_empty(),
        "Prometheus has no skewscope_host_net_rx_cpu_qpi; agent stderr: {}",
        agent.stderr()
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
    drop(group);
}
