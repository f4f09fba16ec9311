//! End-to-end: the binary over fixture roots, output diffed against golden files.
//! `make golden` (UPDATE_GOLDEN=1) rewrites them; review the diff before committing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// Run `skewscope --procfs R/proc --sysfs R/sys ARGS` and return stdout.
fn run_on_root(root: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_skewscope"))
        .arg("--procfs")
        .arg(root.join("proc"))
        .arg("--sysfs")
        .arg(root.join("sys"))
        .args(args)
        .output()
        .expect("run skewscope");
    assert!(
        out.status.success(),
        "skewscope {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Durations vary run to run and paths with the checkout: zero and shorten them so the
/// rest can be compared byte for byte.
fn normalize(json: &str, root: &Path) -> String {
    let json = json.replace(&root.display().to_string(), "$ROOT");
    let mut v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    if let Some(sources) = v.get_mut("sources").and_then(|s| s.as_array_mut()) {
        for s in sources {
            s["duration_us"] = 0.into();
        }
    }
    serde_json::to_string_pretty(&v).unwrap() + "\n"
}

fn check_golden(name: &str, actual: &str) {
    let path = testdata().join("golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run `make golden`)", path.display()));
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (e, a))| e != a)
            .take(10)
            .map(|(i, (e, a))| format!("line {}:\n  golden: {e}\n  actual: {a}", i + 1))
            .collect();
        panic!(
            "{} differs from the output ({} vs {} lines); first differences:\n{}\n(run `make golden` if the change is intended)",
            path.display(),
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

#[test]
fn snapshot_json_i40e_1152cpu() {
    let root = testdata().join("roots/i40e-1152cpu");
    let out = run_on_root(&root, &["snapshot", "--json"]);
    assert_eq!(out.lines().count(), 1, "one JSON document on one line");
    check_golden("i40e-1152cpu.snapshot.json", &normalize(&out, &root));
}

#[test]
fn snapshot_table_i40e_1152cpu() {
    let root = testdata().join("roots/i40e-1152cpu");
    let out = run_on_root(&root, &["snapshot", "--device", "eth0"]);
    check_golden("i40e-1152cpu.snapshot.txt", &out);
}

/// The same capture with a /sys/kernel/irq tree: the agent reads only the i40e queue
/// IRQs there, and everything but the source list equals the /proc/interrupts way's golden.
#[test]
fn snapshot_json_i40e_1152cpu_sysirq_equals_the_proc_way() {
    let root = testdata().join("roots/i40e-1152cpu-sysirq");
    let out = normalize(&run_on_root(&root, &["snapshot", "--json"]), &root);
    let mut v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"sys_kernel_irq"), "{names:?}");
    assert!(
        !names.contains(&"proc_interrupts"),
        "no fallback: {names:?}"
    );
    let golden = std::fs::read_to_string(testdata().join("golden/i40e-1152cpu.snapshot.json"));
    let mut proc_way: serde_json::Value = serde_json::from_str(&golden.unwrap()).unwrap();
    v["sources"] = serde_json::Value::Null;
    proc_way["sources"] = serde_json::Value::Null;
    assert!(
        v == proc_way,
        "the sysfs way differs from the /proc/interrupts way"
    );
    assert!(
        v["devices"][3]["rx_queues"][0]["irq_count"]
            .as_u64()
            .unwrap()
            > 0
    );
    check_golden("i40e-1152cpu-sysirq.snapshot.json", &out);
}

#[test]
fn snapshot_json_mlx4_40cpu_with_ethtool_captures() {
    let root = testdata().join("roots/mlx4-40cpu");
    let ethtool = root.join("ethtool");
    let out = run_on_root(
        &root,
        &[
            "snapshot",
            "--json",
            "--ethtool-dir",
            ethtool.to_str().unwrap(),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // Facts read off the captures, independent of the golden file:
    let eth1 = &v["devices"][1];
    assert_eq!(eth1["name"], "eth1");
    assert_eq!(eth1["rx_queues"][0]["source"], "ethtool_text");
    assert_eq!(eth1["rss"]["indirection"].as_array().unwrap().len(), 128);
    assert_eq!(eth1["rss"]["source"], "text");
    let eth0 = &v["devices"][0];
    // mlx4-3@0000:13:00.0 (EQ 3 → queue 2) took 7121963 interrupts.
    assert_eq!(eth0["rx_queues"][2]["irq_count"], 7121963);
    check_golden("mlx4-40cpu.snapshot.json", &normalize(&out, &root));
}

#[test]
fn broken_source_is_reported_and_the_rest_still_produced() {
    // A copy of the mlx4 root whose softnet_stat is truncated mid-line.
    let src = testdata().join("roots/mlx4-40cpu");
    let dir = std::env::temp_dir().join(format!("skewscope-broken-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("proc/net")).unwrap();
    for f in ["interrupts", "softirqs"] {
        std::fs::copy(src.join("proc").join(f), dir.join("proc").join(f)).unwrap();
    }
    let softnet = std::fs::read_to_string(src.join("proc/net/softnet_stat")).unwrap();
    let mut lines: Vec<&str> = softnet.lines().take(3).collect();
    lines.push("0000abcd 00000000 zz");
    std::fs::write(dir.join("proc/net/softnet_stat"), lines.join("\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_skewscope"))
        .args(["--procfs", dir.join("proc").to_str().unwrap()])
        .args(["--sysfs", src.join("sys").to_str().unwrap()])
        .args(["snapshot", "--json"])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.status.success(), "a bad source is not a failed run");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let softnet = v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "softnet_stat")
        .unwrap();
    assert_eq!(softnet["status"], "failed");
    let err = softnet["error"].as_str().unwrap();
    assert!(
        err.contains("proc/net/softnet_stat:4"),
        "names file and line: {err}"
    );
    // Everything else is still there.
    assert_eq!(v["cpus"].as_array().unwrap().len(), 40);
    assert!(v["cpus"][0]["softnet"].is_null());
    assert_eq!(v["devices"][0]["rx_queues"][2]["irq_count"], 7121963);
}

#[test]
fn usage_errors_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_skewscope"))
        .args(["snapshot", "--duration", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    for cmd in [
        &["--help"][..],
        &["run", "--help"],
        &["snapshot", "--help"],
        &["doctor", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_skewscope"))
            .args(cmd)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{cmd:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage:"));
    }
}
