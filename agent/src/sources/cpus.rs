//! CPU topology from sysfs: online CPUs and the NUMA node of each CPU.

use std::collections::BTreeMap;

use super::HostRoot;
use crate::error::{ParseError, SourceError};

/// Parse a kernel CPU list ("0-3,5,7-8"; lib/bitmap-str.c bitmap_parselist) into CPU numbers.
pub fn parse_cpulist(text: &str) -> Result<Vec<u32>, ParseError> {
    let mut cpus = Vec::new();
    let t = text.trim();
    if t.is_empty() {
        return Ok(cpus);
    }
    for part in t.split(',') {
        let bad = || ParseError::new(1, format!("bad CPU list element {part:?}"));
        let (lo, hi): (u32, u32) = match part.split_once('-') {
            Some((lo, hi)) => (
                lo.parse().map_err(|_| bad())?,
                hi.parse().map_err(|_| bad())?,
            ),
            None => {
                let cpu = part.parse().map_err(|_| bad())?;
                (cpu, cpu)
            }
        };
        // The kernel caps lists at nr_cpu_ids; bound the range so garbage cannot allocate.
        if hi < lo || hi - lo > 65_536 {
            return Err(bad());
        }
        cpus.extend(lo..=hi);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// Online CPUs from devices/system/cpu/online.
pub fn read_online(root: &HostRoot) -> Result<Vec<u32>, SourceError> {
    let path = root.sys_path("devices/system/cpu/online");
    super::read_parsed(&path, parse_cpulist)
}

/// CPU → NUMA node from devices/system/node/nodeN/cpulist. Empty when the root has no
/// node directory (non-NUMA kernels or fixture roots).
pub fn read_numa_nodes(root: &HostRoot) -> Result<BTreeMap<u32, u32>, SourceError> {
    let dir = root.sys_path("devices/system/node");
    let mut map = BTreeMap::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(map),
        Err(e) => return Err(SourceError::io(&dir, e)),
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(node) = name
            .strip_prefix("node")
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let path = entry.path().join("cpulist");
        for cpu in super::read_parsed(&path, parse_cpulist)? {
            map.insert(cpu, node);
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpulists() {
        assert_eq!(
            parse_cpulist("0-3,5,7-8\n").unwrap(),
            vec![0, 1, 2, 3, 5, 7, 8]
        );
        assert_eq!(parse_cpulist("").unwrap(), Vec::<u32>::new());
        assert!(parse_cpulist("3-1").is_err());
        assert!(parse_cpulist("0-4294967295").is_err());
        assert!(parse_cpulist("a").is_err());
    }

    #[test]
    fn live_topology() {
        let root = HostRoot::default();
        let online = read_online(&root).unwrap();
        let n = std::thread::available_parallelism().unwrap().get();
        assert_eq!(online.len(), n);
        let nodes = read_numa_nodes(&root).unwrap();
        assert!(nodes.is_empty() || nodes.len() == n);
    }

    proptest::proptest! {
        #[test]
        fn cpulist_never_panics(s in "[0-9,\\- ]{0,40}|\\PC*") {
            let _ = parse_cpulist(&s);
        }
    }
}
