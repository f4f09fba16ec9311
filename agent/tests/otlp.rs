//! OTLP export against a real receiver: scripts/otlp_receiver.py decodes every request
//! with the official OTLP protobuf bindings and grpcio (installed by `make deps` into
//! scripts/.venv) and records it as a JSON line. The agent runs as a user runs it.
//!
//! The comparison is generic over the metric catalog: for every report-fed metric, the
//! received name, unit, description, type, attributes and values must equal the catalog
//! applied to the JSON report the agent printed for the same cycle, so a new catalog entry
//! is covered without touching these tests. The last JSON line and the export made at
//! shutdown describe the same cycle.
//!
//! Without the venv the tests skip with a reason, unless SKEWSCOPE_REQUIRE_PRIVILEGED=1
//! (set by `make test`, which installs it) turns the skip into a failure.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use skewscope::config::Limits;
use skewscope::sinks::catalog::{self, AttrValue, Instrument, Source, CATALOG};

mod common;
use common::{agent_command, free_port, Agent, ReuseportGroup};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The receiver's interpreter, or None (skip) when the venv is missing.
fn receiver_python() -> Option<PathBuf> {
    let py = repo().join("scripts/.venv/bin/python");
    let ok = Command::new(&py)
        .args([
            "-c",
            "import grpc, opentelemetry.proto.collector.metrics.v1.metrics_service_pb2_grpc",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(py);
    }
    skewscope_test_support::cannot_run(
        "otlp",
        "scripts/.venv lacks grpcio/opentelemetry-proto (run `make deps`)",
    );
    None
}

/// A directory of its own per test, removed afterwards unless the test failed (kept to
/// look at).
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("skewscope-otlp-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// A running scripts/otlp_receiver.py; killed on drop.
struct Receiver {
    child: Child,
    out: PathBuf,
    grpc_port: u16,
    http_port: Option<u16>,
}

impl Receiver {
    fn start(py: &Path, dir: &Path, args: &[&str]) -> Receiver {
        let out = dir.join(format!("received-{}.jsonl", free_port()));
        let mut child = Command::new(py)
            .arg(repo().join("scripts/otlp_receiver.py"))
            .arg("--out")
            .arg(&out)
            .args(args)
            .env("GRPC_VERBOSITY", "ERROR")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the OTLP receiver");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the receiver did not start within 30 s");
        let ready: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("receiver said {line:?}: {e}"));
        Receiver {
            child,
            out,
            grpc_port: ready["grpc_port"].as_u64().unwrap() as u16,
            http_port: ready["http_port"].as_u64().map(|p| p as u16),
        }
    }

    fn exports(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        // Complete lines only: the receiver may be writing the next one as we read.
        let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
        complete
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("export line {l:?}: {e}")))
            .collect()
    }

    /// Wait until at least `n` exports arrived.
    fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.exports();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run to completion (bounded); stdout lines and stderr.
fn run_agent(args: &[&str], env: &[(&str, &str)], timeout: Duration) -> (Vec<String>, String) {
    let mut child = agent_command(args, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("skewscope {args:?} still running after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "skewscope {args:?}: {stderr}");
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    (lines, stderr)
}

/// The flags of an export over gRPC to `endpoint` every `export_interval` s with an
/// export timeout of `timeout` s.
fn grpc_export_args<'a>(
    endpoint: &'a str,
    export_interval: &'a str,
    timeout: &'a str,
) -> [&'a str; 8] {
    [
        "--otlp-protocol",
        "grpc",
        "--otlp-endpoint",
        endpoint,
        "--export-interval-secs",
        export_interval,
        "--otlp-timeout-secs",
        timeout,
    ]
}

/// A long-running agent (`run --interval 0.2 --output json`) exporting over gRPC to the
/// receiver on `port` ([`grpc_export_args`]) and serving /metrics on a port of its own.
fn grpc_agent(port: &str, export_interval: &str, timeout: &str) -> Agent {
    let endpoint = format!("http://127.0.0.1:{port}");
    let args = [
        &["run", "--interval", "0.2", "--output", "json"][..],
        &grpc_export_args(&endpoint, export_interval, timeout),
        &["--prometheus-listen", "127.0.0.1:0"],
    ]
    .concat();
    Agent::spawn(&args, &[])
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// One unlabeled sample from the agent's /metrics.
fn scrape_value(addr: &str, name: &str) -> Option<f64> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.lines().find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let bare = series.split('{').next()?;
        (bare == name).then(|| value.parse().ok())?
    })
}

fn all_metrics(export: &Value) -> Vec<&Value> {
    export["resource_metrics"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rm| rm["scope_metrics"].as_array().unwrap())
        .flat_map(|sm| sm["metrics"].as_array().unwrap())
        .collect()
}

fn metric<'a>(export: &'a Value, name: &str) -> Option<&'a Value> {
    all_metrics(export).into_iter().find(|m| m["name"] == name)
}

fn attr_json(v: &AttrValue) -> Value {
    match v {
        AttrValue::Str(s) => json!(s),
        AttrValue::Int(i) => json!(i),
        AttrValue::F64(x) => json!(x),
        AttrValue::Bool(b) => json!(b),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// The value of an attribute-less counter in an export.
fn counter(export: &Value, name: &str) -> u64 {
    metric(export, name).unwrap_or_else(|| panic!("no {name}"))["points"][0]["value"]
        .as_u64()
        .unwrap()
}

/// Everything the export says must equal the catalog applied to `reports` (the last is
/// the cycle the export describes). Returns (metrics, points) compared.
fn assert_export_matches(export: &Value, reports: &[Value], limits: &Limits) -> (usize, usize) {
    let report = reports.last().expect("at least one report");
    assert_eq!(
        catalog::missing_keys(report),
        Vec::<String>::new(),
        "the catalog reads keys the report lacks"
    );
    let eval = catalog::evaluate(report, limits);
    let (mut metrics, mut points) = (0, 0);
    for (def, expected) in CATALOG.iter().zip(&eval.points) {
        let got = metric(export, def.name);
        if let Some(m) = got {
            assert_eq!(m["unit"], def.unit, "{}", def.name);
            assert_eq!(m["description"], def.description, "{}", def.name);
            let (ty, monotonic) = match def.instrument {
                Instrument::Gauge => ("gauge", Value::Null),
                Instrument::Counter => ("sum", json!(true)),
                Instrument::Histogram(_) => ("histogram", Value::Null),
            };
            assert_eq!(m["type"], ty, "{}", def.name);
            assert_eq!(m["monotonic"], monotonic, "{}", def.name);
            if ty != "gauge" {
                assert_eq!(m["temporality"], "cumulative", "{}", def.name);
            }
        }
        let Source::Report(_) = def.source else {
            assert!(got.is_some(), "agent metric {} not exported", def.name);
            continue;
        };
        let received: Vec<&Value> = got
            .map(|m| m["points"].as_array().unwrap().iter().collect())
            .unwrap_or_default();
        assert_eq!(
            received.len(),
            expected.len(),
            "{}: {} points received, the report gives {}",
            def.name,
            received.len(),
            expected.len()
        );
        for want in expected {
            let attrs: serde_json::Map<String, Value> = want
                .attrs
                .iter()
                .map(|(k, v)| (k.to_string(), attr_json(v)))
                .collect();
            let attrs = Value::Object(attrs);
            let p = received
                .iter()
                .find(|p| p["attributes"] == attrs)
                .unwrap_or_else(|| panic!("{}: no point with {attrs}", def.name));
            let v = p["value"].as_f64().unwrap();
            assert!(
                close(v, want.value),
                "{}{attrs}: received {v}, report gives {}",
                def.name,
                want.value
            );
            points += 1;
        }
        metrics += usize::from(!expected.is_empty());
    }

    // The agent's own counters against what the printed reports imply.
    assert_eq!(
        counter(export, "skewscope.agent.cycles"),
        reports.len() as u64
    );
    let hist = &metric(export, "skewscope.agent.cycle.duration").unwrap()["points"][0];
    assert_eq!(hist["count"], reports.len() as u64);
    let errors = &metric(export, "skewscope.agent.source.errors").unwrap()["points"];
    for p in errors.as_array().unwrap() {
        let name = &p["attributes"]["source"];
        let failed = reports
            .iter()
            .filter(|r| {
                r["sources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| &s["name"] == name && s["status"] == "failed")
            })
            .count();
        assert_eq!(p["value"], failed as u64, "source errors of {name}");
    }
    let capped = &metric(export, "skewscope.agent.cardinality.capped").unwrap()["points"];
    for p in capped.as_array().unwrap() {
        let limit = p["attributes"]["limit"].as_str().unwrap();
        let want: u64 = reports
            .iter()
            .map(|r| {
                let e = catalog::evaluate(r, limits);
                e.capped
                    .iter()
                    .filter(|(l, _)| l.key() == limit)
                    .map(|(_, n)| *n)
                    .sum::<u64>()
            })
            .sum();
        assert_eq!(p["value"], want, "capped by {limit}");
    }
    (metrics, points)
}

fn parse_reports(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A live device must be among the compared series (eth0 on the test machine).
fn assert_live_device(export: &Value, report: &Value) {
    let devices: Vec<&str> = report["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert!(!devices.is_empty(), "the report has no device");
    if Path::new("/sys/class/net/eth0").exists() {
        assert!(devices.contains(&"eth0"), "eth0 not reported: {devices:?}");
    }
    let info = metric(export, "skewscope.device.info").expect("device info exported");
    for d in devices {
        assert!(
            info["points"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["attributes"]["device"] == d),
            "{d} not exported"
        );
    }
}

#[test]
fn grpc_export_equals_the_json_report_of_the_same_cycle() {
    let Some(py) = receiver_python() else { return };
    let dir = scratch("grpc");
    let rx = Receiver::start(&py, &dir, &[]);
    // A reuseport group with traffic: group, listener and flow series are compared too
    // where the listener sources report it.
    let group = ReuseportGroup::start();
    // Settings from a config file, one overridden by a flag.
    let config = dir.join("skewscope.toml");
    std::fs::write(
        &config,
        format!(
            "[otlp]\nendpoint = \"http://127.0.0.1:{}\"\nprotocol = \"grpc\"\n\
             export_interval_secs = 3600\nheaders = {{ \"x-from-file\" = \"file\", \"x-over\" = \"file\" }}\n\
             [limits]\nmax_cpus = 1\n[resource]\nattributes = {{ \"team\" = \"netperf\" }}\n",
            rx.grpc_port
        ),
    )
    .unwrap();
    let (lines, stderr) = run_agent(
        &[
            "run",
            "--interval",
            "0.5",
            "--count",
            "3",
            "--output",
            "json",
            "--config",
            config.to_str().unwrap(),
            "--otlp-header",
            "x-over=flag",
        ],
        &[
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-over=env,x-from-env=env"),
            ("K8S_NODE_NAME", "node-a"),
            ("K8S_POD_NAME", "skewscope-x1"),
            ("K8S_NAMESPACE", "observability"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=ci"),
        ],
        Duration::from_secs(60),
    );
    let reports = parse_reports(&lines);
    assert_eq!(reports.len(), 3);
    // The export interval is an hour: the one export is the one made at shutdown.
    let exports = rx.wait_for(1, Duration::from_secs(10));
    assert_eq!(exports.len(), 1, "{stderr}");
    let export = &exports[0];
    assert_eq!(export["transport"], "grpc");
    let headers = &export["headers"];
    assert_eq!(headers["x-from-file"], "file");
    assert_eq!(headers["x-from-env"], "env");
    assert_eq!(headers["x-over"], "flag", "flags beat the environment");

    let resource = &export["resource_metrics"][0]["resource"];
    assert_eq!(resource["service.name"], "skewscope");
    assert_eq!(resource["service.version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(resource["k8s.node.name"], "node-a");
    assert_eq!(resource["k8s.pod.name"], "skewscope-x1");
    assert_eq!(resource["k8s.namespace.name"], "observability");
    assert_eq!(resource["deployment.environment.name"], "ci");
    assert_eq!(resource["team"], "netperf");
    assert_eq!(resource["os.type"], "linux");
    let uname = Command::new("uname").arg("-r").output().unwrap();
    assert_eq!(
        resource["os.version"],
        String::from_utf8_lossy(&uname.stdout).trim()
    );
    let host = Command::new("uname").arg("-n").output().unwrap();
    assert_eq!(
        resource["host.name"],
        String::from_utf8_lossy(&host.stdout).trim()
    );
    let scope = &export["resource_metrics"][0]["scope_metrics"][0]["scope"];
    assert_eq!(scope["name"], "skewscope");

    let limits = Limits {
        max_cpus: 1,
        ..Limits::default()
    };
    let (metrics, points) = assert_export_matches(export, &reports, &limits);
    assert_live_device(export, reports.last().unwrap());
    // max_cpus = 1: one CPU exported, the others counted as capped.
    let cpus = reports[0]["cpus"].as_array().unwrap().len() as u64;
    let share = metric(export, "skewscope.cpu.net_rx.softirqs").unwrap();
    assert_eq!(share["points"].as_array().unwrap().len(), 1);
    let capped = metric(export, "skewscope.agent.cardinality.capped").unwrap();
    let by_cpus = capped["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["attributes"]["limit"] == "max_cpus")
        .unwrap();
    assert_eq!(by_cpus["value"], 3 * (cpus - 1));
    assert_eq!(counter(export, "skewscope.agent.export.failures"), 0);
    let ours = reports.last().unwrap()["reuseport_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["port"] == group.port)
        .map(|g| g["listeners"].as_array().unwrap().len());
    eprintln!(
        "gRPC: {metrics} report-fed metrics, {points} points equal the JSON report \
         (test reuseport group: {ours:?} listeners reported)"
    );
}

#[test]
fn http_protobuf_export_from_otel_environment_equals_the_json_report() {
    let Some(py) = receiver_python() else { return };
    let dir = scratch("http");
    let rx = Receiver::start(&py, &dir, &["--http-port", "0"]);
    let endpoint = format!("http://127.0.0.1:{}", rx.http_port.unwrap());
    let (lines, stderr) = run_agent(
        &[
            "run",
            "--interval",
            "0.5",
            "--count",
            "2",
            "--output",
            "json",
        ],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s%3Dcret"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "3600000"),
            ("OTEL_SERVICE_NAME", "skewscope-canary"),
        ],
        Duration::from_secs(60),
    );
    let reports = parse_reports(&lines);
    let exports = rx.wait_for(1, Duration::from_secs(10));
    assert_eq!(exports.len(), 1, "{stderr}");
    let export = &exports[0];
    assert_eq!(export["transport"], "http");
    assert_eq!(export["headers"]["content-encoding"], "gzip");
    assert_eq!(export["headers"]["x-api-key"], "s=cret");
    assert_eq!(
        export["resource_metrics"][0]["resource"]["service.name"],
        "skewscope-canary"
    );
    let (metrics, points) = assert_export_matches(export, &reports, &Limits::default());
    assert_live_device(export, reports.last().unwrap());
    eprintln!("HTTP: {metrics} report-fed metrics, {points} points equal the JSON report");
}

/// A CA, and a server and a client certificate it signs, made with openssl(1).
fn make_certs(dir: &Path) -> bool {
    let have = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        return skewscope_test_support::cannot_run("otlp TLS", "openssl(1) missing");
    }
    let sh = format!(
        r#"set -e
cd '{d}'
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -keyout ca.key -out ca.pem -subj /CN=skewscope-test-ca \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
for who in server client; do
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout $who.key -out $who.csr -subj /CN=$who
done
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
printf 'extendedKeyUsage=clientAuth\n' > client.ext
for who in server client; do
  openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
    -out $who.pem -extfile $who.ext
done
"#,
        d = dir.display()
    );
    let out = Command::new("sh").arg("-c").arg(sh).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

#[test]
fn grpc_over_mutual_tls() {
    let Some(py) = receiver_python() else { return };
    let dir = scratch("tls");
    if !make_certs(&dir) {
        return;
    }
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let rx = Receiver::start(
        &py,
        &dir,
        &[
            "--tls-cert",
            &p("server.pem"),
            "--tls-key",
            &p("server.key"),
            "--tls-client-ca",
            &p("ca.pem"),
        ],
    );
    let endpoint = format!("https://127.0.0.1:{}", rx.grpc_port);
    let base = [
        &[
            "run",
            "--interval",
            "0.3",
            "--count",
            "1",
            "--output",
            "json",
        ][..],
        &grpc_export_args(&endpoint, "3600", "3"),
    ]
    .concat();
    // Without a client certificate the server refuses the handshake: nothing arrives,
    // the failure is logged, the run still succeeds.
    let mut args = base.to_vec();
    let ca = p("ca.pem");
    args.extend(["--otlp-ca-file", &ca]);
    let (_, stderr) = run_agent(&args, &[], Duration::from_secs(60));
    assert!(rx.exports().is_empty());
    assert!(stderr.contains("OTLP export to"), "{stderr}");

    // CA and client certificate from the OTel variables.
    let (cert, key) = (p("client.pem"), p("client.key"));
    let (lines, stderr) = run_agent(
        &base,
        &[
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &cert),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &key),
        ],
        Duration::from_secs(60),
    );
    let exports = rx.wait_for(1, Duration::from_secs(10));
    assert_eq!(exports.len(), 1, "{stderr}");
    assert_export_matches(&exports[0], &parse_reports(&lines), &Limits::default());
}

#[test]
fn collector_killed_and_restarted_export_resumes_memory_stays_bounded() {
    let Some(py) = receiver_python() else { return };
    let dir = scratch("restart");
    let port = free_port().to_string();
    let mut rx = Receiver::start(&py, &dir, &["--grpc-port", &port]);
    let mut agent = grpc_agent(&port, "0.5", "1");
    let prom = agent.prometheus_addr();
    assert!(
        rx.wait_for(2, Duration::from_secs(20)).len() >= 2,
        "{}",
        agent.stderr()
    );
    let pid = agent.child.id();
    let mut rss = vec![vm_rss_kib(pid)];
    const OUTAGES: usize = 6;
    let mut failures = 0.0;
    for i in 0..OUTAGES {
        drop(rx); // SIGKILL: the collector dies mid-run
        let lines_before = agent.line_count();
        std::thread::sleep(Duration::from_millis(2500));
        assert!(agent.alive(), "the agent died: {}", agent.stderr());
        let cycles = agent.line_count() - lines_before;
        assert!(cycles >= 6, "only {cycles} reports in 2.5 s of outage");
        let now = scrape_value(&prom, "skewscope_agent_export_failures_total").unwrap();
        assert!(now > failures, "outage {i}: failures stayed at {now}");
        failures = now;

        rx = Receiver::start(&py, &dir, &["--grpc-port", &port]);
        let back = rx.wait_for(1, Duration::from_secs(15));
        assert!(!back.is_empty(), "outage {i}: export did not resume");
        rss.push(vm_rss_kib(pid));
    }
    let last = rx.wait_for(2, Duration::from_secs(10)).pop().unwrap();
    let exported_failures = counter(&last, "skewscope.agent.export.failures");
    assert!(exported_failures >= OUTAGES as u64, "{exported_failures}");
    assert!(counter(&last, "skewscope.agent.export.dropped_points") > 0);
    assert!(counter(&last, "skewscope.agent.export.successes") > OUTAGES as u64);

    // Failures are logged at a limited rate: one warning, one line when export resumed.
    let stderr = agent.stderr();
    // Only the exporter's lines: probe fallbacks log their refusals with "failed:" too.
    let export_lines = || stderr.lines().filter(|l| l.contains("OTLP export"));
    let warned = export_lines().filter(|l| l.contains("failed:")).count();
    let resumed = export_lines()
        .filter(|l| l.contains("resumed after"))
        .count();
    assert!(
        warned <= 2 && resumed <= 2,
        "{exported_failures} failures logged {warned}+{resumed} times:\n{stderr}"
    );

    // Memory: no growth with the outages beyond allocator noise.
    let growth = rss.last().unwrap().saturating_sub(rss[1]);
    eprintln!(
        "VmRSS (KiB) after start and after each of {OUTAGES} collector restarts: {rss:?}; \
         growth since the first restart {growth} KiB; {exported_failures} failed exports"
    );
    assert!(growth < 4096, "VmRSS grew {growth} KiB: {rss:?}");
    assert_eq!(agent.stop(), 0);
}

#[test]
fn slow_or_refusing_collector_never_stalls_the_cycle() {
    let Some(py) = receiver_python() else { return };
    let dir = scratch("slow");
    let port = free_port().to_string();
    // Answers 5 s late: past the agent's 0.5 s export timeout.
    let slow = Receiver::start(&py, &dir, &["--grpc-port", &port, "--delay-secs", "5"]);
    let agent = grpc_agent(&port, "0.3", "0.5");
    let prom = agent.prometheus_addr();
    let window = |agent: &Agent, secs: f64| {
        let start = agent.line_count();
        std::thread::sleep(Duration::from_secs_f64(secs));
        let lines = agent.lines.lock().unwrap();
        let times: Vec<Instant> = lines[start..].iter().map(|(t, _)| *t).collect();
        let max_gap = times
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or(Duration::MAX);
        (times.len(), max_gap)
    };
    let (n, gap) = window(&agent, 4.0);
    // 20 cycles expected. A cycle that waited on the 5 s export would allow at most one
    // report here; the bound leaves room for a loaded 2-core machine (8 seen under load).
    assert!(n >= 6, "{n} reports in 4 s with a slow collector");
    assert!(gap < Duration::from_secs(1), "a cycle waited {gap:?}");
    let slow_failures = scrape_value(&prom, "skewscope_agent_export_failures_total").unwrap();
    assert!(slow_failures >= 2.0, "{slow_failures}");
    drop(slow);

    // Refuses every export with UNAVAILABLE.
    let refusing = Receiver::start(
        &py,
        &dir,
        &["--grpc-port", &port, "--fail-with", "UNAVAILABLE"],
    );
    let (n, gap) = window(&agent, 3.0);
    assert!(n >= 5, "{n} reports in 3 s with a refusing collector");
    assert!(gap < Duration::from_secs(1), "a cycle waited {gap:?}");
    let refused = scrape_value(&prom, "skewscope_agent_export_failures_total").unwrap();
    assert!(
        refused >= slow_failures + 2.0,
        "{slow_failures} -> {refused}"
    );
    assert!(refusing.exports().is_empty());
    eprintln!(
        "slow collector: {slow_failures} failed exports; refusing: {} more; cycles kept their pace",
        refused - slow_failures
    );
    assert_eq!(agent.stop(), 0);
}
