//! Deployment: the agent run the way its users deploy it.
//!
//! - A live root mounted elsewhere (a DaemonSet's /host/proc, /host/sys) runs every live
//!   source; a fixture root still skips them.
//! - The Helm chart (helm/skewscope): `helm lint --strict`; `helm template` for several
//!   values scenarios, every manifest validated against the Kubernetes schemas
//!   (kubernetes-validate, offline) or, for the Prometheus Operator's kinds, structurally;
//!   the agent accepts the rendered config; bad values fail naming the field.
//! - The image (scripts/deploy/Containerfile): built with buildah, it holds the agent and
//!   exactly the libraries it links, no shell, and the agent runs from its root.
//! - The host-sidecar unit (scripts/deploy/skewscope.service): `systemd-analyze verify`
//!   passes, its exposure score stays low, its capabilities are the chart's.
//! - Least privilege, proven: the agent run as the chart runs it (own mount and PID
//!   namespaces, the host's /proc and /sys read-only at host/proc and host/sys, a
//!   read-only root, uid 0 with exactly the chart's capabilities and no_new_privs) sees
//!   everything; with each capability removed, what is lost is what docs/deploy.md says.
//!
//! The privileged tests need root (mount namespaces, eBPF); the chart tests need helm,
//! kubernetes-validate, the image test buildah, the unit test systemd-analyze
//! (scripts/deps.sh installs them). Without them they say why and
//! skip, and fail under SKEWSCOPE_REQUIRE_PRIVILEGED=1.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

const AGENT: &str = env!("CARGO_BIN_EXE_skewscope");

/// The text the collector puts on sources it skips because the root is not live.
const NOT_LIVE: &str = "point away from the running kernel";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .into()
}

/// A fresh directory under the temp dir, removed on drop (unique across the tests
/// running in parallel).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("skewscope-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run a command, returning (exit code, stdout, stderr).
fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// (name, status, error) of every source of a report.
/// The report's sources as (name, status, error), without the opt-in ones a default
/// deployment leaves off (exact selection: `--selection-hook`), which read "skipped".
fn sources(report: &serde_json::Value) -> Vec<(String, String, String)> {
    const OPT_IN: &[&str] = &["ebpf_selection"];
    report["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .filter(|s| {
            !(OPT_IN.contains(&s["name"].as_str().unwrap_or("")) && s["status"] == "skipped")
        })
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
                s["error"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Live-kernel sources: eBPF probes, netlink (ethtool, netdev), sock_diag.
fn is_live_source(name: &str) -> bool {
    name.starts_with("ebpf_")
        || name.starts_with("ethtool_")
        || name == "netdev_qstats"
        || name == "sock_diag"
}

#[test]
fn live_root_mounted_elsewhere_runs_every_live_source() {
    if !common::privileged("live_root_mounted_elsewhere_runs_every_live_source") {
        return;
    }
    // The host's /proc and /sys bind-mounted at T/proc, T/sys in a private mount
    // namespace (as the kubelet mounts hostPath volumes at /host/proc, /host/sys).
    let tmp = TempDir::new("liveroot");
    let (proc, sys) = (tmp.0.join("proc"), tmp.0.join("sys"));
    let script = r#"set -e
mkdir -p "$1/proc" "$1/sys"
mount --rbind /proc "$1/proc"
mount --rbind /sys "$1/sys"
shift
exec "$@""#;
    let (code, out, err) = run(Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(&tmp.0)
        .args([AGENT, "snapshot", "--json", "--duration", "1", "--procfs"])
        .arg(&proc)
        .arg("--sysfs")
        .arg(&sys));
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let sources = sources(&report);
    let live: Vec<_> = sources.iter().filter(|s| is_live_source(&s.0)).collect();
    for probe in [
        "ebpf_softirq_time",
        "ebpf_listener_events",
        "ebpf_rx_queues",
    ] {
        assert!(
            live.iter().any(|s| s.0 == probe),
            "{probe} missing: {sources:?}"
        );
    }
    assert!(live.iter().any(|s| s.0 == "sock_diag"), "{sources:?}");
    assert!(live.iter().any(|s| s.0 == "netdev_qstats"), "{sources:?}");
    for (name, status, error) in &live {
        assert!(
            status == "ok" || status == "unsupported",
            "{name} {status}: {error}"
        );
    }
    assert!(!out.contains(NOT_LIVE), "{out}");
}

#[test]
fn fixture_root_still_skips_live_sources() {
    let root = repo().join("agent/testdata/roots/mlx4-40cpu");
    let (code, out, err) = run(Command::new(AGENT)
        .arg("--procfs")
        .arg(root.join("proc"))
        .arg("--sysfs")
        .arg(root.join("sys"))
        .args(["snapshot", "--json"]));
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let sources = sources(&report);
    let live: Vec<_> = sources.iter().filter(|s| is_live_source(&s.0)).collect();
    assert!(!live.is_empty(), "{sources:?}");
    for (name, status, error) in live {
        assert_eq!(status, "skipped", "{name}");
        assert!(error.contains(NOT_LIVE), "{name}: {error}");
    }
}

/// A tool the test needs, or None after saying why it skips (a failure under
/// SKEWSCOPE_REQUIRE_PRIVILEGED=1, where scripts/deps.sh has installed it).
fn tool(test: &str, name: &str) -> Option<PathBuf> {
    let local = match name {
        "helm" => Some(repo().join("scripts/.tools/node_modules/.bin/helm")),
        "kubernetes-validate" => Some(repo().join("scripts/.venv/bin/kubernetes-validate")),
        "python" => Some(repo().join("scripts/.venv/bin/python")),
        _ => None,
    };
    let found = match local {
        Some(path) => path.exists().then_some(path),
        None => std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.exists())
        }),
    };
    if found.is_none() {
        skewscope_test_support::cannot_run(
            test,
            format!("{name} is missing (scripts/deps.sh installs it)"),
        );
    }
    found
}

fn chart() -> PathBuf {
    repo().join("helm/skewscope")
}

/// Multi-document YAML as JSON values (through the venv's PyYAML: the agent's crates
/// have no YAML parser); empty documents dropped.
fn yaml_docs(python: &Path, yaml: &str) -> Vec<Value> {
    let mut child = Command::new(python)
        .args([
            "-c",
            "import sys, json, yaml\n\
             print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d is not None]))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "YAML did not parse:\n{yaml}");
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

struct Helm {
    helm: PathBuf,
    python: PathBuf,
}

impl Helm {
    fn new(test: &str) -> Option<Helm> {
        Some(Helm {
            helm: tool(test, "helm")?,
            python: tool(test, "python")?,
        })
    }

    /// `helm template` with `values` (YAML); (exit code, stdout, stderr).
    fn template_raw(&self, values: &str) -> (i32, String, String) {
        let tmp = TempDir::new("values");
        let file = tmp.0.join("values.yaml");
        std::fs::write(&file, values).unwrap();
        run(Command::new(&self.helm)
            .args(["template", "skewscope", "--namespace", "observability"])
            .arg(chart())
            .arg("--values")
            .arg(&file))
    }

    /// The rendered manifests of `values`.
    fn template(&self, values: &str) -> Vec<Value> {
        let (code, out, err) = self.template_raw(values);
        assert_eq!(code, 0, "helm template failed:\n{err}");
        yaml_docs(&self.python, &out)
    }
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], k: &str) -> &'a Value {
    let found = kind(docs, k);
    assert_eq!(found.len(), 1, "{k}: {docs:?}");
    found[0]
}

/// The capabilities the chart's DaemonSet adds (CAP_ names), in order.
fn capabilities(docs: &[Value]) -> Vec<String> {
    let ds = one(docs, "DaemonSet");
    let sc = &ds["spec"]["template"]["spec"]["containers"][0]["securityContext"];
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    sc["capabilities"]["add"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| format!("CAP_{}", c.as_str().unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

/// Validate every manifest: core kinds against the Kubernetes 1.30 schemas (strict: an
/// unknown field fails), the Prometheus Operator's kinds (no schema there) by shape.
fn validate(test: &str, docs: &[Value]) {
    let Some(validator) = tool(test, "kubernetes-validate") else {
        return;
    };
    let tmp = TempDir::new("manifests");
    for (i, doc) in docs.iter().enumerate() {
        let api = doc["apiVersion"].as_str().unwrap();
        if api.starts_with("monitoring.coreos.com/") {
            validate_operator_kind(doc);
            continue;
        }
        // JSON is YAML.
        let file = tmp.0.join(format!("{i}.yaml"));
        std::fs::write(&file, doc.to_string()).unwrap();
        let (code, out, err) = run(Command::new(&validator)
            .args(["--kubernetes-version", "1.30.0", "--strict"])
            .arg(&file));
        assert_eq!(code, 0, "{} invalid:\n{out}{err}\n{doc:#}", doc["kind"]);
        assert!(out.contains("passed"), "{out}{err}");
    }
}

/// ServiceMonitor, PodMonitor, PrometheusRule: the fields the operator needs, typed.
fn validate_operator_kind(doc: &Value) {
    let spec = &doc["spec"];
    assert!(doc["metadata"]["name"].is_string(), "{doc}");
    match doc["kind"].as_str().unwrap() {
        "ServiceMonitor" | "PodMonitor" => {
            let endpoints = if doc["kind"] == "ServiceMonitor" {
                &spec["endpoints"]
            } else {
                &spec["podMetricsEndpoints"]
            };
            let endpoints = endpoints.as_array().expect("endpoints");
            assert!(!endpoints.is_empty());
            for e in endpoints {
                assert_eq!(e["port"], "metrics", "{e}");
                assert_eq!(e["path"], "/metrics", "{e}");
                let interval = e["interval"].as_str().unwrap();
                assert!(interval.ends_with('s') || interval.ends_with('m'), "{e}");
            }
            assert!(spec["selector"]["matchLabels"].is_object(), "{doc}");
        }
        "PrometheusRule" => {
            for group in spec["groups"].as_array().expect("groups") {
                assert!(group["name"].is_string(), "{group}");
                for rule in group["rules"].as_array().expect("rules") {
                    assert!(rule["alert"].is_string() || rule["record"].is_string());
                    assert!(rule["expr"].is_string(), "{rule}");
                }
            }
        }
        other => panic!("unexpected operator kind {other}"),
    }
}

/// Checks every scenario shares: the agent started the way docs/deploy.md says, its
/// config accepted by the agent itself, labels, probes, mounts.
fn check_common(docs: &[Value]) {
    let ds = one(docs, "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        &args[..7],
        [
            "--procfs",
            "/host/proc",
            "--sysfs",
            "/host/sys",
            "run",
            "--config",
            "/etc/skewscope/skewscope.toml"
        ]
    );
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["hostPID"], false);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(ds["spec"]["updateStrategy"]["type"], "RollingUpdate");
    for env in ["K8S_NODE_NAME", "K8S_POD_NAME", "K8S_NAMESPACE"] {
        assert!(
            c["env"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["name"] == env && e["valueFrom"]["fieldRef"]["fieldPath"].is_string()),
            "{env}"
        );
    }
    // Host mounts: read-only, at the paths the args name.
    let mounts = c["volumeMounts"].as_array().unwrap();
    for path in ["/host/proc", "/host/sys", "/run/netns", "/etc/skewscope"] {
        let m = mounts
            .iter()
            .find(|m| m["mountPath"] == path)
            .unwrap_or_else(|| panic!("{path} not mounted"));
        assert_eq!(m["readOnly"], true, "{path}");
    }
    // Standard labels on everything, and the pods' selector labels on the pods.
    for doc in docs {
        let labels = &doc["metadata"]["labels"];
        for l in [
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/version",
            "app.kubernetes.io/managed-by",
            "helm.sh/chart",
        ] {
            assert!(labels[l].is_string(), "{} lacks {l}", doc["kind"]);
        }
    }
    for (k, v) in ds["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&pod_labels(ds)[k], v);
    }
    // The agent reads the rendered config as the pod would (its own check of every key).
    let toml = one_configmap(docs)["data"]["skewscope.toml"]
        .as_str()
        .unwrap()
        .to_string();
    let tmp = TempDir::new("config");
    let file = tmp.0.join("skewscope.toml");
    std::fs::write(&file, &toml).unwrap();
    let port = common::free_port().to_string();
    let (code, _, err) = run(Command::new(AGENT)
        .args(["run", "--count", "1", "--no-probes", "--output", "json"])
        .args(["--prometheus-listen", &format!("127.0.0.1:{port}")])
        .arg("--config")
        .arg(&file)
        .env("SKEWSCOPE_LOG", "warn"));
    assert_eq!(
        code, 0,
        "the agent refused the chart's config:\n{toml}\n{err}"
    );
}

fn pod_labels(ds: &Value) -> &serde_json::Map<String, Value> {
    ds["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap()
}

/// The agent's ConfigMap (not the dashboards').
fn one_configmap(docs: &[Value]) -> &Value {
    kind(docs, "ConfigMap")
        .into_iter()
        .find(|c| c["data"]["skewscope.toml"].is_string())
        .expect("agent ConfigMap")
}

fn env_value<'a>(ds: &'a Value, name: &str) -> Option<&'a Value> {
    ds["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
}

#[test]
fn chart_lints_strict() {
    let Some(helm) = tool("chart_lints_strict", "helm") else {
        return;
    };
    let (code, out, err) = run(Command::new(helm).args(["lint", "--strict"]).arg(chart()));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 chart(s) failed"), "{out}");
}

#[test]
fn chart_defaults() {
    let Some(helm) = Helm::new("chart_defaults") else {
        return;
    };
    let docs = helm.template("{}");
    validate("chart_defaults", &docs);
    check_common(&docs);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ServiceAccount", "ConfigMap", "DaemonSet"]);
    assert_eq!(
        capabilities(&docs),
        [
            "CAP_BPF",
            "CAP_PERFMON",
            "CAP_SYS_ADMIN",
            "CAP_SYS_PTRACE",
            "CAP_DAC_READ_SEARCH"
        ]
    );
    let ds = one(&docs, "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    // Every node, tainted or not.
    let tolerations = pod["tolerations"].as_array().unwrap();
    for effect in ["NoSchedule", "NoExecute"] {
        assert!(tolerations
            .iter()
            .any(|t| t["operator"] == "Exists" && t["effect"] == effect));
    }
    assert_eq!(
        ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"],
        1
    );
    // No export configured: the listener stays on loopback for the probes only.
    let toml = one_configmap(&docs)["data"]["skewscope.toml"]
        .as_str()
        .unwrap();
    assert!(toml.contains("\"listen\" = \"127.0.0.1:9464\""), "{toml}");
    assert!(!toml.contains("[\"otlp\"]"), "{toml}");
    assert!(env_value(ds, "OTEL_EXPORTER_OTLP_HEADERS").is_none());
    assert_eq!(
        pod["containers"][0]["livenessProbe"]["httpGet"]["host"],
        "127.0.0.1"
    );
}

#[test]
fn chart_otlp_only() {
    let Some(helm) = Helm::new("chart_otlp_only") else {
        return;
    };
    let docs = helm.template(
        "otlp:\n  endpoint: http://127.0.0.1:1\n  protocol: http/protobuf\n  \
         headersSecret: {name: collector-token, key: otlp-headers}\n\
         config:\n  interval_secs: 2.5\n  resource:\n    attributes: \
         {deployment.environment.name: prod}\n  limits: {max_groups: 8}\n",
    );
    validate("chart_otlp_only", &docs);
    check_common(&docs);
    assert!(kind(&docs, "Secret").is_empty(), "the Secret is the user's");
    let toml = one_configmap(&docs)["data"]["skewscope.toml"]
        .as_str()
        .unwrap();
    for line in [
        "\"endpoint\" = \"http://127.0.0.1:1\"",
        "\"protocol\" = \"http/protobuf\"",
        "\"interval_secs\" = 2.5",
        "\"max_groups\" = 8",
        "\"deployment.environment.name\" = \"prod\"",
        "\"listen\" = \"127.0.0.1:9464\"",
    ] {
        assert!(toml.contains(line), "{line} not in\n{toml}");
    }
    assert!(
        !toml.contains("otlp-headers") && !toml.contains("headers"),
        "{toml}"
    );
    let ds = one(&docs, "DaemonSet");
    let headers = env_value(ds, "OTEL_EXPORTER_OTLP_HEADERS").expect("headers env");
    assert_eq!(
        headers["valueFrom"]["secretKeyRef"]["name"],
        "collector-token"
    );
    assert_eq!(headers["valueFrom"]["secretKeyRef"]["key"], "otlp-headers");
}

#[test]
fn chart_prometheus_with_operator_kinds() {
    let Some(helm) = Helm::new("chart_prometheus_with_operator_kinds") else {
        return;
    };
    let docs = helm.template(
        "prometheus:\n  enabled: true\n  port: 9465\n  serviceMonitor: {enabled: true, \
         labels: {release: kube-prometheus}}\n  podMonitor: {enabled: true}\n  \
         rule: {enabled: true}\ngrafana:\n  dashboards: {enabled: true}\n\
         otlp:\n  endpoint: http://127.0.0.1:1\n  headers: {x-api-key: \"a b,c\"}\n",
    );
    validate("chart_prometheus_with_operator_kinds", &docs);
    check_common(&docs);
    let toml = one_configmap(&docs)["data"]["skewscope.toml"]
        .as_str()
        .unwrap();
    assert!(toml.contains("\"listen\" = \"0.0.0.0:9465\""), "{toml}");

    // The ServiceMonitor finds the Service's port, the Service the pods.
    let ds = one(&docs, "DaemonSet");
    let service = one(&docs, "Service");
    let sm = one(&docs, "ServiceMonitor");
    assert_eq!(sm["metadata"]["labels"]["release"], "kube-prometheus");
    assert_eq!(service["spec"]["ports"][0]["name"], "metrics");
    assert_eq!(service["spec"]["ports"][0]["port"], 9465);
    assert_eq!(
        ds["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        9465
    );
    for (k, v) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&pod_labels(ds)[k], v);
    }
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"],
        service["metadata"]["labels"]
            .as_object()
            .map(|l| {
                let sel = service["spec"]["selector"].as_object().unwrap();
                Value::Object(
                    l.iter()
                        .filter(|(k, _)| sel.contains_key(*k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                )
            })
            .unwrap()
    );
    one(&docs, "PodMonitor");

    // The rule's spec is dashboards/skewscope-alerts.yaml, not a copy of it.
    let source = std::fs::read_to_string(repo().join("dashboards/skewscope-alerts.yaml")).unwrap();
    let source = yaml_docs(&helm.python, &source);
    assert_eq!(one(&docs, "PrometheusRule")["spec"], source[0]);

    // Every dashboard, labelled for the Grafana sidecar.
    let dashboards = kind(&docs, "ConfigMap")
        .into_iter()
        .find(|c| c["metadata"]["labels"]["grafana_dashboard"] == "1")
        .expect("dashboards ConfigMap");
    let mut want: Vec<String> = std::fs::read_dir(repo().join("dashboards"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .filter(|n| {
            let text = std::fs::read_to_string(repo().join("dashboards").join(n)).unwrap();
            serde_json::from_str::<Value>(&text).is_ok_and(|d| d.get("panels").is_some())
        })
        .collect();
    want.sort();
    let got: Vec<String> = dashboards["data"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(got, want);
    for name in &want {
        let text = std::fs::read_to_string(repo().join("dashboards").join(name)).unwrap();
        let in_map: Value =
            serde_json::from_str(dashboards["data"][name].as_str().unwrap()).unwrap();
        assert_eq!(
            in_map,
            serde_json::from_str::<Value>(&text).unwrap(),
            "{name}"
        );
    }

    // Headers from values go to a Secret of the chart, percent-encoded, never the config.
    let secret = one(&docs, "Secret");
    assert_eq!(secret["stringData"]["headers"], "x-api-key=a%20b%2Cc");
    assert!(!toml.contains("x-api-key"));
    let headers = env_value(ds, "OTEL_EXPORTER_OTLP_HEADERS").expect("headers env");
    assert_eq!(
        headers["valueFrom"]["secretKeyRef"]["name"],
        secret["metadata"]["name"]
    );
}

#[test]
fn chart_custom_tolerations_and_resources() {
    let Some(helm) = Helm::new("chart_custom_tolerations_and_resources") else {
        return;
    };
    let docs = helm.template(
        "tolerations:\n  - {key: dedicated, operator: Equal, value: gateway, effect: NoSchedule}\n\
         resources:\n  requests: {cpu: 100m, memory: 128Mi}\n  limits: {cpu: '1', memory: 512Mi}\n\
         priorityClassName: system-node-critical\n\
         updateStrategy: {rollingUpdate: {maxUnavailable: 10%}}\n\
         nodeSelector: {kubernetes.io/os: linux}\n\
         capabilities: {sysPtrace: false}\n",
    );
    validate("chart_custom_tolerations_and_resources", &docs);
    check_common(&docs);
    let ds = one(&docs, "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(
        pod["tolerations"],
        serde_json::json!([{"key": "dedicated", "operator": "Equal", "value": "gateway",
                            "effect": "NoSchedule"}])
    );
    assert_eq!(
        pod["containers"][0]["resources"],
        serde_json::json!({"requests": {"cpu": "100m", "memory": "128Mi"},
                           "limits": {"cpu": "1", "memory": "512Mi"}})
    );
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    assert_eq!(pod["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(
        ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"],
        "10%"
    );
    assert!(!capabilities(&docs).contains(&"CAP_SYS_PTRACE".to_string()));
}

#[test]
fn chart_rejects_bad_values_naming_the_field() {
    let Some(helm) = Helm::new("chart_rejects_bad_values_naming_the_field") else {
        return;
    };
    for (values, field) in [
        (
            "config: {probes: {cpu_budget: 2}}",
            "config.probes.cpu_budget",
        ),
        ("otlp: {protocol: http/json}", "otlp.protocol"),
        ("config: {interval_secs: -1}", "config.interval_secs"),
        ("config: {limits: {max_group: 8}}", "max_group"),
        ("prometheus: {port: 0}", "prometheus.port"),
        (
            "config: {shadow: {candidates: [builtin:cpu]}}",
            "capabilities.netAdmin",
        ),
    ] {
        let (code, _, err) = helm.template_raw(values);
        assert_ne!(code, 0, "{values} was accepted");
        assert!(
            err.contains(field),
            "{values}: {field} not named in:\n{err}"
        );
    }
}

#[test]
fn chart_package_holds_the_linked_alerts_and_dashboards() {
    let Some(helm) = tool(
        "chart_package_holds_the_linked_alerts_and_dashboards",
        "helm",
    ) else {
        return;
    };
    let tmp = TempDir::new("package");
    let (code, out, err) = run(Command::new(helm)
        .arg("package")
        .arg(chart())
        .arg("--destination")
        .arg(&tmp.0));
    assert_eq!(code, 0, "{out}{err}");
    let tgz = tmp.0.join("skewscope-0.1.0.tgz");
    let (code, list, err) = run(Command::new("tar").arg("tzvf").arg(&tgz));
    assert_eq!(code, 0, "{err}");
    // Regular files with the linked content (helm follows the link), tests left out.
    let alerts = list
        .lines()
        .find(|l| l.ends_with("skewscope/files/dashboards/skewscope-alerts.yaml"))
        .unwrap_or_else(|| panic!("alerts not packaged:\n{list}"));
    assert!(alerts.starts_with('-'), "{alerts}");
    assert!(
        list.contains("skewscope/files/dashboards/skewscope.json"),
        "{list}"
    );
    assert!(!list.contains(".test.yaml"), "{list}");
}

#[test]
fn image_is_the_agent_and_its_libraries_only() {
    let test = "image_is_the_agent_and_its_libraries_only";
    if !common::privileged(test) {
        return;
    }
    let Some(buildah) = tool(test, "buildah") else {
        return;
    };
    // Private storage (vfs: no overlay mount needed), removed with the temp dir.
    let tmp = TempDir::new("image");
    let flags = format!(
        "--storage-driver vfs --root {0}/root --runroot {0}/run",
        tmp.0.display()
    );
    let b = |args: &[&str]| -> String {
        let (code, out, err) = run(Command::new(&buildah).args(flags.split(' ')).args(args));
        assert_eq!(code, 0, "buildah {args:?}: {err}");
        out.trim().to_string()
    };
    let tag = "localhost/skewscope:deploy-test";
    // The binary under test (the script defaults to target/release/skewscope).
    let (code, out, err) = run(Command::new(repo().join("scripts/deploy/build-image.sh"))
        .arg(tag)
        .env("SKEWSCOPE_BIN", AGENT)
        .env("BUILDAH_FLAGS", &flags));
    assert_eq!(code, 0, "build-image.sh: {out}{err}");

    let inspect: Value = serde_json::from_str(&b(&["inspect", "--type", "image", tag])).unwrap();
    let config = &inspect["OCIv1"]["config"];
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/usr/bin/skewscope"])
    );
    assert_eq!(config["User"], "0:0");
    assert_eq!(
        inspect["OCIv1"]["rootfs"]["diff_ids"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Its files: the agent, what ldd lists for it, the CA bundle; nothing else.
    let container = b(&["from", "--pull-never", tag]);
    let mount = PathBuf::from(b(&["mount", &container]));
    let mut files = Vec::new();
    let mut stack = vec![mount.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else {
                files.push(format!("/{}", path.strip_prefix(&mount).unwrap().display()));
            }
        }
    }
    files.sort();
    let (_, ldd, _) = run(Command::new("ldd").arg(AGENT));
    let mut want: Vec<String> = ldd
        .lines()
        .filter_map(|l| {
            let path = l.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| path.to_string())
        })
        .chain([
            "/usr/bin/skewscope".into(),
            "/etc/ssl/certs/ca-certificates.crt".into(),
        ])
        .collect();
    want.sort();
    assert_eq!(files, want);
    assert!(!files
        .iter()
        .any(|f| f.ends_with("/sh") || f.ends_with("/bash")));

    // It runs from the image's root with only those files (podman cannot run it here).
    let (code, out, err) = run(Command::new("chroot")
        .arg(&mount)
        .args(["/usr/bin/skewscope", "--version"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("skewscope "), "{out}");
    let (code, _, _) = run(Command::new("chroot")
        .arg(&mount)
        .args(["/bin/sh", "-c", "true"]));
    assert_ne!(code, 0, "the image has a shell");

    b(&["umount", &container]);
    b(&["rm", &container]);
    b(&["rmi", "--force", tag]);
}

/// The capabilities a unit line lists (`Key=CAP_A CAP_B`).
fn unit_caps(unit: &str, key: &str) -> Vec<String> {
    let line = unit
        .lines()
        .find(|l| l.starts_with(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key} missing"));
    line[key.len() + 1..]
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn systemd_unit_verifies_with_the_charts_capabilities() {
    let test = "systemd_unit_verifies_with_the_charts_capabilities";
    let Some(analyze) = tool(test, "systemd-analyze") else {
        return;
    };
    let unit = std::fs::read_to_string(repo().join("scripts/deploy/skewscope.service")).unwrap();
    // verify checks ExecStart's binary exists: point it at the binary under test.
    let tmp = TempDir::new("unit");
    let file = tmp.0.join("skewscope.service");
    assert!(unit.contains("ExecStart=/usr/local/bin/skewscope "));
    std::fs::write(&file, unit.replace("/usr/local/bin/skewscope", AGENT)).unwrap();
    let (code, out, err) = run(Command::new(&analyze).arg("verify").arg(&file));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.trim().is_empty(),
        "systemd-analyze verify warned:\n{err}"
    );

    // The sandbox as systemd scores it (0 = locked down, 10 = exposed).
    let (code, out, err) = run(Command::new(&analyze)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&file));
    assert_eq!(code, 0, "{out}{err}");
    let score: f64 = out
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for skewscope.service: ")
                .nth(1)
        })
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no score in:\n{out}"));
    assert!(score <= 3.5, "exposure {score}:\n{out}");

    // The same capabilities as the chart's default pod, bounding and ambient.
    let bounding = unit_caps(&unit, "CapabilityBoundingSet");
    assert_eq!(bounding, unit_caps(&unit, "AmbientCapabilities"));
    if let Some(helm) = Helm::new(test) {
        assert_eq!(bounding, capabilities(&helm.template("{}")));
    }
}

/// A UDP SO_REUSEPORT group of `LISTENERS` sockets in a network namespace of its own,
/// held by a process of another user (nobody), as a service's would be: its owner can
/// only be found through /proc/PID/fd of a process the agent does not own.
struct ForeignGroup {
    netns: common::Netns,
    owner: std::process::Child,
}

const GROUP_PORT: u16 = 9555;
const LISTENERS: usize = 4;

impl ForeignGroup {
    fn start(tag: &str) -> ForeignGroup {
        let netns = common::Netns::new(tag);
        let script = format!(
            r#"
import socket, sys, threading, time
addr = ("{addr}", {port})
socks = []
for _ in range({n}):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(addr)
    socks.append(s)
seen = [0] * len(socks)
def read(k):
    while True:
        socks[k].recv(64)
        seen[k] += 1
for k in range(len(socks)):
    threading.Thread(target=read, args=(k,), daemon=True).start()
# Flows (source ports) are added until every socket has had one: with a fixed
# number, a socket gets none now and then (16 flows miss one of 4 about 4% of runs).
senders = []
while min(seen) == 0 and len(senders) < 4096:
    senders.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    for s in senders:
        s.sendto(b"x" * 32, addr)
    time.sleep(0.002)
print("ready", flush=True)
i = 0
while True:
    senders[i % len(senders)].sendto(b"x" * 32, addr)
    i += 1
    if i % 20 == 0:
        time.sleep(0.01)
"#,
            addr = common::ADDR,
            port = GROUP_PORT,
            n = LISTENERS
        );
        let mut owner = Command::new("ip")
            .args(["netns", "exec", &netns.name])
            .args([
                "setpriv",
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
            ])
            .args(["/usr/bin/python3", "-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(owner.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the group's owner did not start");
        ForeignGroup { netns, owner }
    }

    /// The group in a report, if found.
    fn in_report<'a>(&self, report: &'a Value) -> Option<&'a Value> {
        let inode = self.netns.inode();
        report["reuseport_groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["netns"] == inode && g["port"] == GROUP_PORT)
    }
}

impl Drop for ForeignGroup {
    fn drop(&mut self) {
        let _ = self.owner.kill();
        let _ = self.owner.wait();
    }
}

/// Run the agent as the chart's DaemonSet runs it: a mount namespace where the host's
/// /proc and /sys are bind-mounted read-only (every submount too) at T/host/proc and
/// T/host/sys, then a PID namespace with its own /proc and the root remounted
/// read-only, then uid 0 with no_new_privs and a bounding set of exactly `caps` (so its
/// permitted and effective sets are `caps`, as runc gives a container's root).
/// `args` follow the agent's global --procfs/--sysfs.
fn confined(tmp: &Path, caps: &[String], args: &[&str]) -> Command {
    let bounding = std::iter::once("-all".to_string())
        .chain(
            caps.iter()
                .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase())),
        )
        .collect::<Vec<_>>()
        .join(",");
    let script = r#"set -e
t="$1"; shift
mkdir -p "$t/host/proc" "$t/host/sys"
mount --rbind /proc "$t/host/proc"
mount --rbind /sys "$t/host/sys"
for m in $(findmnt -R -n -l -o TARGET "$t/host/proc") $(findmnt -R -n -l -o TARGET "$t/host/sys"); do
    mount -o remount,bind,ro "$m"
done
exec unshare --pid --fork --mount-proc sh -c 'mount -o remount,bind,ro / && exec "$@"' sh "$@""#;
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
    ])
    .arg(tmp)
    .args(["setpriv", "--no-new-privs", "--inh-caps=-all"])
    .arg(format!("--bounding-set={bounding}"))
    .arg(AGENT)
    .arg("--procfs")
    .arg(tmp.join("host/proc"))
    .arg("--sysfs")
    .arg(tmp.join("host/sys"))
    .args(args)
    .env("SKEWSCOPE_LOG", "warn");
    cmd
}

/// What one confined run saw: the sources that did not run, the group, its owners,
/// the capabilities doctor found.
#[derive(Debug)]
struct Seen {
    not_ok: Vec<(String, String, String)>,
    group_listeners: Option<usize>,
    owners: usize,
    doctor_caps: Vec<String>,
    doctor: Value,
    report: Value,
}

impl Seen {
    /// doctor's `capabilities` entry `name`: whether it says it is held.
    fn doctor_holds(&self, name: &str) -> bool {
        self.doctor["capabilities"]
            .as_array()
            .expect("doctor capabilities")
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("doctor does not list {name}: {}", self.doctor))["held"]
            .as_bool()
            .unwrap()
    }

    /// doctor's plan entry `name`: (will_run, why).
    fn doctor_plan(&self, name: &str) -> (bool, String) {
        let p = self.doctor["plan"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("doctor plans no {name}: {}", self.doctor));
        (
            p["will_run"].as_bool().unwrap(),
            p["why"].as_str().unwrap().to_string(),
        )
    }
}

fn observe(tmp: &Path, caps: &[String], group: &ForeignGroup) -> Seen {
    let (code, out, err) = run(&mut confined(
        tmp,
        caps,
        &["snapshot", "--json", "--duration", "3"],
    ));
    assert_eq!(code, 0, "snapshot with {caps:?} exited {code}:\n{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let (code, out, err) = run(&mut confined(tmp, caps, &["doctor", "--json"]));
    assert_eq!(code, 0, "doctor with {caps:?} exited {code}:\n{err}");
    let doctor: Value = serde_json::from_str(&out).unwrap();
    let doctor_caps = doctor["kernel"]["effective_capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let g = group.in_report(&report);
    let owner_pid = group.owner.id();
    Seen {
        not_ok: sources(&report)
            .into_iter()
            .filter(|s| s.1 != "ok")
            .collect(),
        group_listeners: g.map(|g| g["listeners"].as_array().unwrap().len()),
        owners: g.map_or(0, |g| {
            g["listeners"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|l| l["pid"] == owner_pid && l["comm"] == "python3")
                .count()
        }),
        doctor_caps,
        doctor,
        report,
    }
}

#[test]
fn least_privilege_the_charts_capabilities_suffice_and_each_is_needed() {
    let test = "least_privilege_the_charts_capabilities_suffice_and_each_is_needed";
    if !common::privileged(test) {
        return;
    }
    let Some(helm) = Helm::new(test) else {
        return;
    };
    if tool(test, "setpriv").is_none() || tool(test, "ip").is_none() {
        return;
    }
    // The set the chart's pod gets, read from the rendered DaemonSet: chart and test
    // cannot drift apart.
    let caps = capabilities(&helm.template("{}"));
    assert!(!caps.contains(&"CAP_SYS_RESOURCE".to_string()));
    let group = ForeignGroup::start("deploy-lp");
    let tmp = TempDir::new("confined");
    let tmp = &tmp.0;

    // All of them: everything is seen.
    let all = observe(tmp, &caps, &group);
    eprintln!("with {caps:?}: not ok {:?}", all.not_ok);
    for (name, status, error) in &all.not_ok {
        assert!(
            status == "unsupported" && !name.starts_with("ebpf_") && name != "sock_diag",
            "{name} {status}: {error}"
        );
    }
    let names: Vec<String> = sources(&all.report).into_iter().map(|s| s.0).collect();
    for source in [
        "ebpf_softirq_time",
        "ebpf_listener_events",
        "ebpf_rx_queues",
        "ebpf_rx_flows",
        "sock_diag",
        "softnet_stat",
        "netdev_qstats",
    ] {
        assert!(
            names.iter().any(|n| n == source),
            "{source} not run: {names:?}"
        );
    }
    // Interrupts one way or the other: /sys/kernel/irq where the kernel has it.
    assert!(
        names
            .iter()
            .any(|n| n == "sys_kernel_irq" || n == "proc_interrupts"),
        "no interrupts source: {names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("ethtool_rss/")),
        "{names:?}"
    );
    let g = group
        .in_report(&all.report)
        .expect("the group in its namespace");
    let listeners = g["listeners"].as_array().unwrap();
    assert_eq!(listeners.len(), LISTENERS, "{g}");
    for l in listeners {
        assert!(l["events"].as_f64().unwrap() > 0.0, "no events: {l}");
    }
    assert_eq!(all.owners, LISTENERS, "owners: {g}");
    assert!(!all.report["cpus"].as_array().unwrap().is_empty());
    assert!(all.report["cpus"][0]["softnet"].is_object());
    assert_eq!(all.doctor_caps.len(), caps.len(), "{:?}", all.doctor_caps);
    for cap in &caps {
        assert!(all.doctor_holds(cap), "{cap}: {}", all.doctor);
    }
    assert!(all.doctor_plan("sock_diag (every netns)").0);
    assert!(all.doctor_plan("socket owners").0);
    assert!(all.doctor_plan("listener_events").0);

    // /metrics under the same confinement.
    let port = common::free_port();
    let mut agent = confined(
        tmp,
        &caps,
        &[
            "run",
            "--output",
            "json",
            "--interval",
            "1",
            "--count",
            "4",
            "--prometheus-listen",
            &format!("127.0.0.1:{port}"),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut first = String::new();
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(agent.stdout.take().unwrap());
    lines.read_line(&mut first).unwrap();
    assert!(first.starts_with('{'), "no report: {first}");
    let metrics = http_get(port, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("skewscope_reuseport_lsi{"), "{metrics}");
    std::io::copy(&mut lines, &mut std::io::sink()).unwrap();
    assert!(agent.wait().unwrap().success());

    // Each one removed in turn (and BPF, PERFMON once more without SYS_ADMIN, which
    // covers both in bpf_capable()/perfmon_capable()).
    let without = |removed: &[&str]| -> Vec<String> {
        caps.iter()
            .filter(|c| !removed.contains(&c.as_str()))
            .cloned()
            .collect()
    };
    let failed = |seen: &Seen, name: &str| {
        seen.not_ok
            .iter()
            .find(|s| s.0 == name)
            .map(|s| format!("{} {}", s.1, s.2))
    };
    for cap in caps.clone() {
        let seen = observe(tmp, &without(&[&cap]), &group);
        eprintln!(
            "without {cap}: not ok {:?}; group listeners {:?}; owners {}",
            seen.not_ok, seen.group_listeners, seen.owners
        );
        // doctor names the capability as missing: in the effective set it prints
        // and in its own capability list.
        assert!(
            !seen.doctor_caps.contains(&cap),
            "{cap}: {:?}",
            seen.doctor_caps
        );
        assert!(!seen.doctor_holds(&cap), "{cap}: {}", seen.doctor);
        for other in caps.iter().filter(|c| **c != cap) {
            assert!(seen.doctor_holds(other), "{other} without {cap}");
        }
        let sock_diag_plan = seen.doctor_plan("sock_diag (every netns)");
        let owners_plan = seen.doctor_plan("socket owners");
        match cap.as_str() {
            // Covered by CAP_SYS_ADMIN: nothing lost.
            "CAP_BPF" | "CAP_PERFMON" => {
                assert!(seen.not_ok.iter().all(|s| s.1 == "unsupported"), "{cap}");
                assert_eq!(seen.owners, LISTENERS, "{cap}");
                assert!(sock_diag_plan.0 && owners_plan.0, "{cap}");
            }
            // sock_diag cannot enter other namespaces: the group is not found.
            "CAP_SYS_ADMIN" => {
                let why = failed(&seen, "sock_diag").expect("sock_diag not failed");
                assert!(
                    why.contains("setns") && why.contains("not permitted"),
                    "{why}"
                );
                assert_eq!(seen.group_listeners, None);
                assert!(failed(&seen, "ebpf_listener_events").is_none());
                assert!(!sock_diag_plan.0, "{sock_diag_plan:?}");
                assert!(
                    sock_diag_plan.1.contains("CAP_SYS_ADMIN"),
                    "{sock_diag_plan:?}"
                );
                assert!(owners_plan.0, "{owners_plan:?}");
            }
            // The group and its events are seen, its owners are not, and the
            // report's owners source says why, counting the sockets.
            "CAP_SYS_PTRACE" | "CAP_DAC_READ_SEARCH" => {
                assert_eq!(seen.group_listeners, Some(LISTENERS), "{cap}");
                assert_eq!(seen.owners, 0, "{cap}");
                let owners = failed(&seen, "owners").expect("owners not failed");
                assert!(owners.starts_with("failed owners of "), "{owners}");
                assert!(owners.contains("group sockets not readable"), "{owners}");
                assert!(owners.contains(&format!("missing {cap}")), "{owners}");
                assert!(
                    seen.not_ok
                        .iter()
                        .all(|s| s.1 == "unsupported" || s.0 == "owners"),
                    "{cap}: {:?}",
                    seen.not_ok
                );
                assert!(!owners_plan.0, "{owners_plan:?}");
                assert!(owners_plan.1.contains(&cap), "{owners_plan:?}");
                assert!(sock_diag_plan.0, "{sock_diag_plan:?}");
            }
            other => panic!("no expectation for {other}: add one"),
        }
    }
    for cap in ["CAP_BPF", "CAP_PERFMON"] {
        let seen = observe(tmp, &without(&["CAP_SYS_ADMIN", cap]), &group);
        eprintln!("without CAP_SYS_ADMIN and {cap}: not ok {:?}", seen.not_ok);
        for probe in [
            "ebpf_softirq_time",
            "ebpf_listener_events",
            "ebpf_rx_queues",
        ] {
            let why = failed(&seen, probe).unwrap_or_else(|| panic!("{probe} ran without {cap}"));
            assert!(why.contains("EPERM"), "{probe}: {why}");
        }
    }
}

/// A plain HTTP/1.1 GET on 127.0.0.1:port; the whole response.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn host_sidecar_non_root_with_the_units_ambient_capabilities_sees_everything() {
    let test = "host_sidecar_non_root_with_the_units_ambient_capabilities_sees_everything";
    if !common::privileged(test) || tool(test, "setpriv").is_none() || tool(test, "ip").is_none() {
        return;
    }
    // The unit's set (systemd: DynamicUser, AmbientCapabilities, NoNewPrivileges), for a
    // uid that is neither root nor the group owner's.
    let unit = std::fs::read_to_string(repo().join("scripts/deploy/skewscope.service")).unwrap();
    let caps = unit_caps(&unit, "AmbientCapabilities")
        .iter()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect::<Vec<_>>()
        .join(",");
    let group = ForeignGroup::start("deploy-hs");
    let (code, out, err) = run(Command::new("setpriv")
        .args([
            "--reuid",
            "61000",
            "--regid",
            "61000",
            "--clear-groups",
            "--no-new-privs",
        ])
        .arg(format!("--inh-caps=-all,{caps}"))
        .arg(format!("--ambient-caps=-all,{caps}"))
        .arg(format!("--bounding-set=-all,{caps}"))
        .args([AGENT, "snapshot", "--json", "--duration", "3"])
        .env("SKEWSCOPE_LOG", "warn"));
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    for (name, status, error) in sources(&report) {
        assert!(
            status == "ok" || status == "unsupported",
            "{name} {status}: {error}"
        );
    }
    let g = group.in_report(&report).expect("the group");
    let listeners = g["listeners"].as_array().unwrap();
    assert_eq!(listeners.len(), LISTENERS);
    for l in listeners {
        assert_eq!(l["pid"], group.owner.id(), "{l}");
        assert!(l["events"].as_f64().unwrap() > 0.0, "{l}");
    }
}
