//! /proc/stat: per-CPU softirq time.
//!
//! Own parser rather than `procfs::KernelStats` (0.18): its `cpu_time` is a Vec without
//! the CPU number, so offline CPUs' gaps (cpu0, cpu2, ...) would shift every later CPU;
//! it drops the "softirq" line; and it fails when ctxt, btime or processes is missing,
//! lines this source does not need.
//!
//! Layout (fs/proc/stat.c show_stat): "cpu" then "cpuN" lines (online CPUs only) with
//! times in USER_HZ ticks: user nice system idle iowait irq softirq steal guest
//! guest_nice. Older kernels print fewer: iowait since 2.5.41, irq/softirq since 2.6.0,
//! steal 2.6.11, guest 2.6.24, guest_nice 2.6.33 (proc(5)); missing columns read as 0.
//! The "softirq" line is the total followed by one total per softirq type (2.6.31+).

use serde::Serialize;

use super::HostRoot;
use crate::error::{ParseError, SourceError};

/// Times of all CPUs together (the "cpu" line), USER_HZ ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
    pub guest: u64,
    pub guest_nice: u64,
}

/// One "cpuN" line, USER_HZ ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CpuStat {
    pub cpu: u32,
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
    pub guest: u64,
    pub guest_nice: u64,
}

impl CpuStat {
    fn new(cpu: u32, t: CpuTimes) -> Self {
        Self {
            cpu,
            user: t.user,
            nice: t.nice,
            system: t.system,
            idle: t.idle,
            iowait: t.iowait,
            irq: t.irq,
            softirq: t.softirq,
            steal: t.steal,
            guest: t.guest,
            guest_nice: t.guest_nice,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcStat {
    pub total: CpuTimes,
    /// Online CPUs, in file order.
    pub cpus: Vec<CpuStat>,
    /// First number of the "softirq" line: softirqs raised since boot, all CPUs.
    pub softirq_total: Option<u64>,
    /// The rest of the "softirq" line: one total per softirq type, in /proc/softirqs row
    /// order (HI, TIMER, NET_TX, NET_RX, ...).
    pub softirq_by_type: Vec<u64>,
}

/// Read and parse `<proc>/stat`.
pub fn read(root: &HostRoot) -> Result<ProcStat, SourceError> {
    super::read_parsed(&root.proc_path("stat"), parse)
}

/// Parse the text of /proc/stat. Lines other than cpu*/softirq are ignored.
pub fn parse(text: &str) -> Result<ProcStat, ParseError> {
    let mut total: Option<CpuTimes> = None;
    let mut cpus = Vec::new();
    let mut softirq_total = None;
    let mut softirq_by_type = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let err = |m: String| ParseError::new(i + 1, m);
        let mut toks = line.split_ascii_whitespace();
        let Some(key) = toks.next() else { continue };
        if key == "cpu" {
            total = Some(parse_times(toks).map_err(|m| err(format!("cpu: {m}")))?);
        } else if let Some(n) = key.strip_prefix("cpu") {
            let cpu: u32 = n
                .parse()
                .map_err(|_| err(format!("bad CPU label {key:?}")))?;
            let t = parse_times(toks).map_err(|m| err(format!("{key}: {m}")))?;
            cpus.push(CpuStat::new(cpu, t));
        } else if key == "softirq" {
            let mut nums = Vec::new();
            for tok in toks {
                nums.push(
                    tok.parse::<u64>()
                        .map_err(|_| err(format!("softirq: {tok:?} is not a number")))?,
                );
            }
            if nums.is_empty() {
                return Err(err("softirq: no total".into()));
            }
            softirq_total = Some(nums[0]);
            softirq_by_type = nums.split_off(1);
        }
    }
    let total = total.ok_or_else(|| ParseError::new(0, "no \"cpu\" line"))?;
    Ok(ProcStat {
        total,
        cpus,
        softirq_total,
        softirq_by_type,
    })
}

fn parse_times<'a>(toks: impl Iterator<Item = &'a str>) -> Result<CpuTimes, String> {
    let mut v = [0u64; 10];
    let mut n = 0;
    for tok in toks {
        let x: u64 = tok
            .parse()
            .map_err(|_| format!("{tok:?} is not a number"))?;
        // Columns a future kernel appends are ignored.
        if let Some(slot) = v.get_mut(n) {
            *slot = x;
        }
        n += 1;
    }
    // 2.4 kernels printed user nice system idle; fewer is a truncated line.
    if n < 4 {
        return Err(format!("{n} time columns, at least 4 expected"));
    }
    Ok(CpuTimes {
        user: v[0],
        nice: v[1],
        system: v[2],
        idle: v[3],
        iowait: v[4],
        irq: v[5],
        softirq: v[6],
        steal: v[7],
        guest: v[8],
        guest_nice: v[9],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIVE: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/proc_stat/live-2cpu-6.18.txt"
    ));
    const OLD: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/proc_stat/doc-2.6-7col.txt"
    ));

    #[test]
    fn live_capture_whole_struct() {
        let got = parse(LIVE).unwrap();
        let want = ProcStat {
            total: CpuTimes {
                user: 44546,
                nice: 0,
                system: 6813,
                idle: 81020,
                iowait: 1317,
                irq: 0,
                softirq: 172,
                steal: 1713,
                guest: 0,
                guest_nice: 0,
            },
            cpus: vec![
                CpuStat {
                    cpu: 0,
                    user: 21309,
                    system: 3026,
                    idle: 42404,
                    iowait: 172,
                    softirq: 72,
                    steal: 822,
                    ..Default::default()
                },
                CpuStat {
                    cpu: 1,
                    user: 23236,
                    system: 3787,
                    idle: 38616,
                    iowait: 1144,
                    softirq: 99,
                    steal: 890,
                    ..Default::default()
                },
            ],
            softirq_total: Some(199813),
            softirq_by_type: vec![0, 28294, 4, 2871, 49273, 0, 79, 51910, 0, 67382],
        };
        assert_eq!(got, want);
    }

    #[test]
    fn old_kernel_seven_columns() {
        let got = parse(OLD).unwrap();
        assert_eq!(got.cpus.len(), 2);
        assert_eq!(
            got.cpus[1],
            CpuStat {
                cpu: 1,
                user: 1123,
                nice: 0,
                system: 849,
                idle: 11313845,
                iowait: 2614,
                irq: 0,
                softirq: 18,
                ..Default::default()
            }
        );
        assert_eq!(got.total.softirq, 456);
        assert_eq!(got.total.steal, 0);
        assert_eq!(got.softirq_total, None);
    }

    #[test]
    fn live_proc_stat_parses() {
        // Every Linux with procfs has /proc/stat: no reason to skip.
        let text = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
        let got = parse(&text).unwrap();
        assert!(!got.cpus.is_empty());
        assert!(got.softirq_total.is_some());
    }

    #[test]
    fn malformed_inputs_name_the_line() {
        let t = LIVE.replacen("cpu1 23236 0 3787", "cpu1 23236 0 37x7", 1);
        let e = parse(&t).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        let t = LIVE.replacen(
            "cpu0 21309 0 3026 42404 172 0 72 822 0 0",
            "cpu0 21309 0",
            1,
        );
        assert_eq!(parse(&t).unwrap_err().line, 2);
        let t = LIVE.replacen("cpu1 ", "cpuX ", 1);
        assert_eq!(parse(&t).unwrap_err().line, 3);
        let t = LIVE.replacen("softirq 199813", "softirq -1", 1);
        assert_eq!(parse(&t).unwrap_err().line, 10);
        assert_eq!(parse("intr 1 2 3\n").unwrap_err().line, 0);
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC*") {
            let _ = parse(&s);
        }

        #[test]
        fn mutated_fixture_never_panics(cut in 0usize..2000, byte in any::<u8>(), at in 0usize..2000) {
            let mut b = LIVE.as_bytes().to_vec();
            b.truncate(cut.max(1).min(b.len()));
            let i = at % b.len();
            b[i] = byte;
            let _ = parse(&String::from_utf8_lossy(&b));
        }
    }
}
