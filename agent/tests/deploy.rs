//! Deployment: the agent run the way its users deploy it.
//!
//! - A live root mounted elsewhere (a DaemonSet's /host/proc, /host/sys) runs every live
//!   source; a fixture root still skips them.
//!
//! The privileged tests need root (mount namespaces, eBPF); without it they say why and
//! skip, and fail under SKEWSCOPE_REQUIRE_PRIVILEGED=1.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const AGENT: &str = env!("CARGO_BIN_EXE_skewscope");

/// The text the collector puts on sources it skips because the root is not live.
const NOT_LIVE: &str = "point away from the running kernel";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .into()
}

/// A fresh directory under the temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("skewscope-{tag}-{}", std::process::id()));
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
fn sources(report: &serde_json::Value) -> Vec<(String, String, String)> {
    report["sources"]
        .as_array()
        .expect("sources")
        .iter()
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
    if !common::privileged() {
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
        assert_ne!(status, "skipped", "{name}: {error}");
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
