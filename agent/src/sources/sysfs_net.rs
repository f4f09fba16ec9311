//! /sys/class/net/DEV: queues, RPS/XPS masks, NUMA node, driver, MSI IRQs.
//!
//! Layout per Documentation/ABI/testing/sysfs-class-net and sysfs-class-net-queues.

use std::path::Path;

use serde::Serialize;

use super::HostRoot;
use crate::error::{ParseError, SourceError};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetDevice {
    pub name: String,
    pub ifindex: Option<u32>,
    /// Basename of the `device/driver` link ("ixgbe", "virtio_net"); None for virtual devices.
    pub driver: Option<String>,
    /// `device/numa_node`; the kernel prints -1 when the device has no node.
    pub numa_node: Option<i32>,
    /// True when the netdev has a `device` link (a bus device: PCI, virtio, platform).
    pub has_device: bool,
    pub rx_queues: Vec<RxQueueSys>,
    pub tx_queues: Vec<TxQueueSys>,
    pub operstate: Option<String>,
    /// `statistics/rx_packets`: the device total, for cross-checking per-queue sums.
    pub rx_packets: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RxQueueSys {
    pub queue: u32,
    /// CPUs in `queues/rx-N/rps_cpus`; empty when RPS is off for the queue.
    pub rps_cpus: Vec<u32>,
    pub rps_flow_cnt: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TxQueueSys {
    pub queue: u32,
    /// CPUs in `queues/tx-N/xps_cpus`; None where the file is absent or unreadable
    /// (single-queue devices return ENOENT for xps_cpus, net/core/net-sysfs.c).
    pub xps_cpus: Option<Vec<u32>>,
}

/// Names under /sys/class/net, sorted.
pub fn list_devices(root: &HostRoot) -> Result<Vec<String>, SourceError> {
    let dir = root.sys_path("class/net");
    let entries = std::fs::read_dir(&dir).map_err(|e| SourceError::io(&dir, e))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

/// Read one device's facts. Missing optional files give None; a malformed one is an error
/// naming the file.
pub fn read_device(root: &HostRoot, name: &str) -> Result<NetDevice, SourceError> {
    let base = root.sys_path("class/net").join(name);
    if !base.exists() {
        return Err(SourceError::NotFound { path: base });
    }
    let device = base.join("device");
    let has_device = device.exists();
    let driver = std::fs::read_link(device.join("driver"))
        .ok()
        .and_then(|t| t.file_name().map(|f| f.to_string_lossy().into_owned()));
    let numa_node = optional_parsed(&device.join("numa_node"), parse_int::<i32>)?;
    let ifindex = optional_parsed(&base.join("ifindex"), parse_int::<u32>)?;
    let rx_packets = optional_parsed(&base.join("statistics/rx_packets"), parse_int::<u64>)?;
    let operstate = std::fs::read_to_string(base.join("operstate"))
        .ok()
        .map(|s| s.trim().to_string());

    let mut rx_queues = Vec::new();
    let mut tx_queues = Vec::new();
    for (kind, queue) in queue_dirs(&base.join("queues"))? {
        let qdir = base.join("queues").join(format!("{kind}-{queue}"));
        if kind == "rx" {
            let rps_cpus =
                optional_parsed(&qdir.join("rps_cpus"), parse_cpumask)?.unwrap_or_default();
            let rps_flow_cnt = optional_parsed(&qdir.join("rps_flow_cnt"), parse_int::<u64>)?;
            rx_queues.push(RxQueueSys {
                queue,
                rps_cpus,
                rps_flow_cnt,
            });
        } else {
            let xps_cpus = optional_parsed(&qdir.join("xps_cpus"), parse_cpumask)?;
            tx_queues.push(TxQueueSys { queue, xps_cpus });
        }
    }
    rx_queues.sort_by_key(|q| q.queue);
    tx_queues.sort_by_key(|q| q.queue);

    Ok(NetDevice {
        name: name.to_string(),
        ifindex,
        driver,
        numa_node,
        has_device,
        rx_queues,
        tx_queues,
        operstate,
        rx_packets,
    })
}

/// `rx-N` / `tx-N` entries of a queues directory.
fn queue_dirs(dir: &Path) -> Result<Vec<(&'static str, u32)>, SourceError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(SourceError::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let parsed = name
            .strip_prefix("rx-")
            .map(|n| ("rx", n))
            .or_else(|| name.strip_prefix("tx-").map(|n| ("tx", n)));
        if let Some((kind, n)) = parsed {
            if let Ok(q) = n.parse() {
                out.push((kind, q));
            }
        }
    }
    Ok(out)
}

/// Read and parse a file that may legitimately be absent or unreadable (EINVAL/ENOENT
/// from sysfs attributes a driver does not implement): those give None.
fn optional_parsed<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, ParseError>,
) -> Result<Option<T>, SourceError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text)
            .map(Some)
            .map_err(|e| SourceError::parse(path, e)),
        Err(_) => Ok(None),
    }
}

fn parse_int<T: std::str::FromStr>(text: &str) -> Result<T, ParseError> {
    let t = text.trim();
    t.parse()
        .map_err(|_| ParseError::new(1, format!("expected an integer, found {t:?}")))
}

/// Parse a sysfs CPU bitmap ("00000000,0000000f": comma-separated 32-bit hex words, most
/// significant first; lib/bitmap-str.c bitmap_print_to_pagebuf) into CPU numbers.
pub fn parse_cpumask(text: &str) -> Result<Vec<u32>, ParseError> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(Vec::new());
    }
    let words: Vec<&str> = t.split(',').collect();
    let mut cpus = Vec::new();
    for (i, word) in words.iter().rev().enumerate() {
        let bits = u32::from_str_radix(word, 16)
            .map_err(|_| ParseError::new(1, format!("bad CPU mask word {word:?}")))?;
        for bit in 0..32u32 {
            if bits & (1 << bit) != 0 {
                cpus.push(i as u32 * 32 + bit);
            }
        }
    }
    cpus.sort_unstable();
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpumask_words_are_most_significant_first() {
        assert_eq!(parse_cpumask("00000000,00000003\n").unwrap(), vec![0, 1]);
        assert_eq!(parse_cpumask("1,80000000").unwrap(), vec![31, 32]);
        assert_eq!(parse_cpumask("0").unwrap(), Vec::<u32>::new());
        assert!(parse_cpumask("zz").is_err());
    }

    /// Live: every device of this host: its driver is the `device/driver` link,
    /// and its RX queues are 0..N as queues/rx-N.
    #[test]
    fn live_devices_have_queues() {
        let root = HostRoot::default();
        let names = list_devices(&root).unwrap();
        assert!(names.iter().any(|n| n == "lo"));
        let lo = read_device(&root, "lo").unwrap();
        assert!(!lo.has_device);
        assert_eq!(lo.ifindex, Some(1));
        for (dev, driver) in crate::sources::testns::nic_drivers() {
            let got = read_device(&root, &dev).unwrap();
            assert!(got.has_device, "{dev}");
            assert_eq!(got.driver.as_deref(), Some(driver.as_str()), "{dev}");
            let rx_dirs = std::fs::read_dir(format!("/sys/class/net/{dev}/queues"))
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                })
                .count();
            let queues: Vec<u32> = got.rx_queues.iter().map(|q| q.queue).collect();
            assert_eq!(queues, (0..rx_dirs as u32).collect::<Vec<_>>(), "{dev}");
        }
    }

    #[test]
    fn missing_device_is_not_found() {
        let err = read_device(&HostRoot::default(), "no-such-dev0").unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn cpumask_never_panics(s in "\\PC*") {
            let _ = parse_cpumask(&s);
        }
    }
}
