//! Possible-CPU list: per-CPU map values come back in
//! `for_each_possible_cpu()` order (kernel/bpf/arraymap.c
//! bpf_percpu_array_copy), so slot i belongs to the i-th possible CPU, which
//! is CPU i only when the possible mask has no holes.

use std::fs;
use std::io;

const POSSIBLE_CPUS: &str = "/sys/devices/system/cpu/possible";

/// Reads the possible-CPU ids, in ascending order.
pub(crate) fn possible_cpus() -> io::Result<Vec<u32>> {
    parse_cpu_list(&fs::read_to_string(POSSIBLE_CPUS)?)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed cpu list"))
}

/// Parses a kernel cpu list such as "0-3,8-11" or "0".
pub(crate) fn parse_cpu_list(text: &str) -> Option<Vec<u32>> {
    let mut cpus = Vec::new();
    for range in text.trim().split(',') {
        let (start, end): (u32, u32) = match range.split_once('-') {
            Some((start, end)) => (start.parse().ok()?, end.parse().ok()?),
            None => {
                let cpu = range.parse().ok()?;
                (cpu, cpu)
            }
        };
        if end < start {
            return None;
        }
        cpus.extend(start..=end);
    }
    Some(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_and_singletons() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(vec![0, 1]));
        assert_eq!(parse_cpu_list("0"), Some(vec![0]));
        assert_eq!(parse_cpu_list("0-1,4,6-7"), Some(vec![0, 1, 4, 6, 7]));
    }

    #[test]
    fn rejects_malformed_lists() {
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("0-x"), None);
    }
}
