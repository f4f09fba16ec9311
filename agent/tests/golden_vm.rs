//! End-to-end over the fixture roots captured in the VM e2e guests (stock Debian 5.10, 6.1
//! and 6.12 with an emulated igb NIC; agent/testdata/vm-*/README.md): the binary's one-shot
//! snapshot diffed against a golden file, and the facts that must hold whatever the golden
//! says checked against the guest's own captures (`ethtool -x`, `ethtool -S`,
//! /proc/interrupts). UPDATE_GOLDEN=1 rewrites the golden files.

use std::path::{Path, PathBuf};
use std::process::Command;

fn vm_dir(tag: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(format!("vm-{tag}"))
}

/// `skewscope --procfs R/proc --sysfs R/sys snapshot --json --ethtool-dir R/ethtool`.
fn snapshot(root: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_skewscope"))
        .arg("--procfs")
        .arg(root.join("proc"))
        .arg("--sysfs")
        .arg(root.join("sys"))
        .args(["snapshot", "--json", "--ethtool-dir"])
        .arg(root.join("ethtool"))
        .output()
        .expect("run skewscope");
    assert!(
        out.status.success(),
        "skewscope failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)
        .expect("utf-8")
        .replace(&root.display().to_string(), "$ROOT");
    let mut v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    for s in v["sources"].as_array_mut().expect("sources") {
        s["duration_us"] = 0.into();
    }
    v
}

fn check_golden(tag: &str, actual: &serde_json::Value) {
    let path = vm_dir(tag).join("golden.snapshot.json");
    let actual = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 to write it)", path.display()));
    if let Some((i, (e, a))) = expected
        .lines()
        .zip(actual.lines())
        .enumerate()
        .find(|(_, (e, a))| e != a)
    {
        panic!(
            "{} differs at line {}:\n  golden: {e}\n  actual: {a}",
            path.display(),
            i + 1
        );
    }
    assert_eq!(
        expected.lines().count(),
        actual.lines().count(),
        "{}",
        path.display()
    );
}

/// The indirection table of an `ethtool -x` capture ("   8:      0     0 ...").
fn ethtool_table(text: &str) -> Vec<u64> {
    text.lines()
        .take_while(|l| !l.starts_with("RSS hash key"))
        .filter_map(|l| l.split_once(':'))
        .filter(|(index, _)| index.trim().parse::<u32>().is_ok())
        .flat_map(|(_, values)| values.split_whitespace().map(|v| v.parse::<u64>().unwrap()))
        .collect()
}

/// `rx_queue_N_packets` of an `ethtool -S` capture, by queue.
fn ethtool_queue_packets(text: &str) -> Vec<u64> {
    let mut by_queue: Vec<(u64, u64)> = text
        .lines()
        .filter_map(|l| {
            let (name, value) = l.trim().split_once(": ")?;
            let queue = name.strip_prefix("rx_queue_")?.strip_suffix("_packets")?;
            Some((queue.parse().ok()?, value.parse().ok()?))
        })
        .collect();
    by_queue.sort_unstable();
    by_queue.into_iter().map(|(_, n)| n).collect()
}

/// IRQ numbers of the igb RX vectors (`eth0-rx-N`) in /proc/interrupts, by queue.
fn rx_irqs(interrupts: &str) -> Vec<u64> {
    let mut by_queue: Vec<(u64, u64)> = interrupts
        .lines()
        .filter_map(|l| {
            let queue = l.trim_end().rsplit_once("eth0-rx-")?.1.parse().ok()?;
            let irq = l.trim_start().split_once(':')?.0.parse().ok()?;
            Some((queue, irq))
        })
        .collect();
    by_queue.sort_unstable();
    by_queue.into_iter().map(|(_, irq)| irq).collect()
}

fn check_vm(tag: &str) {
    let dir = vm_dir(tag);
    let root = dir.join("root");
    let report = snapshot(&root);
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();

    let eth0 = report["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "eth0")
        .expect("eth0 in the report");
    assert_eq!(eth0["driver"], "igb");
    let table: Vec<u64> = eth0["rss"]["indirection"]
        .as_array()
        .expect("indirection table")
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(table, ethtool_table(&read("ethtool/ethtool_-x_eth0")));
    assert_eq!(table.len(), 128, "igb's 128-entry table");
    let queues = eth0["rx_queues"].as_array().unwrap();
    let packets: Vec<u64> = queues
        .iter()
        .map(|q| q["rx_packets"].as_u64().unwrap())
        .collect();
    assert_eq!(
        packets,
        ethtool_queue_packets(&read("ethtool/ethtool_-S_eth0"))
    );
    assert!(
        packets.iter().sum::<u64>() >= 4520,
        "the e2e's datagrams: {packets:?}"
    );
    let irqs: Vec<u64> = queues
        .iter()
        .map(|q| q["irqs"][0].as_u64().unwrap())
        .collect();
    assert_eq!(irqs, rx_irqs(&read("proc/interrupts")));

    check_golden(tag, &report);
}

#[test]
fn vm_5_10_igb() {
    check_vm("5.10");
}

#[test]
fn vm_6_1_igb() {
    check_vm("6.1");
}

#[test]
fn vm_6_12_igb() {
    check_vm("6.12");
}
