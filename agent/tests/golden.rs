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

/// Durations vary run to run; zero them so the rest can be compared byte for byte.
fn normalize(json: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(json).expect("valid JSON");
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
    check_golden("i40e-1152cpu.snapshot.json", &normalize(&out));
}

#[test]
fn snapshot_table_i40e_1152cpu() {
    let root = testdata().join("roots/i40e-1152cpu");
    let out = run_on_root(&root, &["snapshot", "--device", "eth0"]);
    check_golden("i40e-1152cpu.snapshot.txt", &out);
}
