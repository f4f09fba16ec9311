//! /proc/softirqs: per-CPU softirq counts (NET_RX, NET_TX, ...).
//!
//! Own parser: the `procfs` crate (0.18) has none for /proc/softirqs.
//!
//! Layout (fs/proc/softirqs.c show_softirqs): a header of "CPU%-8d" for each *possible*
//! CPU (for_each_possible_cpu; offline CPUs keep a column, unlike /proc/interrupts), then
//! one row per softirq_to_name[] entry: "%12s:" and " %10u" per CPU. Names change with
//! the kernel: BLOCK_IOPOLL became IRQ_POLL in 4.5.
//!
//! Counts are `unsigned int` (kstat_softirqs_cpu) and wrap at 2^32: take deltas modulo
//! 2^32.

use serde::Serialize;

use super::{percpu_header, HostRoot};
use crate::error::{ParseError, SourceError};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SoftIrqs {
    /// CPU numbers from the header, in column order.
    pub cpus: Vec<u32>,
    pub rows: Vec<SoftIrqRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SoftIrqRow {
    /// "NET_RX", "TIMER", "BLOCK_IOPOLL" ...
    pub name: String,
    /// One per header column.
    pub counts: Vec<u64>,
}

impl SoftIrqs {
    /// Counts of row `name`, one per header column.
    pub fn row(&self, name: &str) -> Option<&[u64]> {
        self.rows
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.counts.as_slice())
    }

    pub fn net_rx(&self) -> Option<&[u64]> {
        self.row("NET_RX")
    }

    pub fn net_tx(&self) -> Option<&[u64]> {
        self.row("NET_TX")
    }

    /// Count of row `name` on CPU `cpu`.
    pub fn count_for_cpu(&self, name: &str, cpu: u32) -> Option<u64> {
        let col = self.cpus.binary_search(&cpu).ok()?;
        self.row(name)?.get(col).copied()
    }
}

/// Read and parse `<proc>/softirqs`.
pub fn read(root: &HostRoot) -> Result<SoftIrqs, SourceError> {
    super::read_parsed(&root.proc_path("softirqs"), parse)
}

/// Parse the text of /proc/softirqs.
pub fn parse(text: &str) -> Result<SoftIrqs, ParseError> {
    let mut lines = text.lines().enumerate();
    let cpus = percpu_header::take(&mut lines)?;
    let mut rows = Vec::with_capacity(10);
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let err = |m: String| ParseError::new(i + 1, m);
        let (name, rest) = line
            .split_once(':')
            .ok_or_else(|| err("no ':' after the softirq name".into()))?;
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(err(format!("bad softirq name {name:?}")));
        }
        let mut counts = Vec::with_capacity(cpus.len());
        for tok in rest.split_ascii_whitespace() {
            let v: u64 = tok
                .parse()
                .map_err(|_| err(format!("{name}: count {tok:?} is not a number")))?;
            counts.push(v);
        }
        if counts.len() != cpus.len() {
            return Err(err(format!(
                "{name}: {} counts, header has {} CPUs",
                counts.len(),
                cpus.len()
            )));
        }
        rows.push(SoftIrqRow {
            name: name.to_string(),
            counts,
        });
    }
    if rows.is_empty() {
        return Err(ParseError::new(0, "no softirq rows"));
    }
    Ok(SoftIrqs { cpus, rows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/proc_softirqs/");

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{DIR}{name}")).unwrap()
    }

    fn parsed(name: &str) -> SoftIrqs {
        parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn every_fixture_parses() {
        let mut n = 0;
        for entry in std::fs::read_dir(DIR).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "txt") {
                continue;
            }
            let got = parse(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(got.rows.len(), 10, "{}", path.display());
            assert!(got.net_rx().is_some() && got.net_tx().is_some());
            n += 1;
        }
        assert_eq!(n, 11);
    }

    #[test]
    fn procfs_two_cpus_whole_struct() {
        let got = parsed("procfs-2cpu.txt");
        let row = |name: &str, a: u64, b: u64| SoftIrqRow {
            name: name.into(),
            counts: vec![a, b],
        };
        let want = SoftIrqs {
            cpus: vec![0, 1],
            rows: vec![
                row("HI", 3, 0),
                row("TIMER", 2776180, 247490),
                row("NET_TX", 2419, 772),
                row("NET_RX", 55919, 28694),
                row("BLOCK", 174915, 262755),
                row("IRQ_POLL", 0, 0),
                row("TASKLET", 209, 75),
                row("SCHED", 2278692, 815209),
                row("HRTIMER", 1281, 220),
                row("RCU", 605871, 532783),
            ],
        };
        assert_eq!(got, want);
    }

    #[test]
    fn many_cpus_gaps_and_old_names() {
        let got = parsed("pcp-1152cpu-x86_64.txt");
        assert_eq!(got.cpus, (0..1152).collect::<Vec<u32>>());
        assert_eq!(&got.net_rx().unwrap()[..5], &[50, 43, 53, 61, 310]);
        assert_eq!(got.count_for_cpu("NET_RX", 10), Some(2109));

        let got = parsed("firedancer-amd-63cpu.txt");
        assert_eq!(got.cpus.len(), 63);
        assert!(!got.cpus.contains(&10));
        assert_eq!(got.count_for_cpu("NET_RX", 2), Some(12_970_156));
        // Column 10 is CPU11 because CPU10 has no column.
        assert_eq!(got.net_rx().unwrap()[10], 1_468_535);
        assert_eq!(got.count_for_cpu("NET_RX", 11), Some(1_468_535));
        assert_eq!(got.count_for_cpu("NET_RX", 10), None);

        let got = parsed("arthurchiao-packagecloud-4cpu-block_iopoll.txt");
        assert_eq!(got.row("BLOCK_IOPOLL"), Some(&[0u64, 0, 0, 0][..]));
        assert_eq!(
            got.net_rx().unwrap(),
            &[1671622615, 1257853535, 2088429526, 2674732223]
        );
        assert_eq!(got.row("RCU").unwrap()[1], 4_231_862_865);

        let got = parsed("pcp-i686-1cpu.txt");
        assert_eq!(got.cpus, vec![0]);
        assert_eq!(got.net_rx(), Some(&[2315415u64][..]));
    }

    #[test]
    fn live_proc_softirqs_parses() {
        // /proc/softirqs exists on every kernel since 2.6.31: no reason to skip.
        let text = std::fs::read_to_string("/proc/softirqs").expect("/proc/softirqs");
        let got = parse(&text).unwrap();
        assert!(got.net_rx().is_some());
    }

    #[test]
    fn malformed_inputs_name_the_line() {
        let good = fixture("node_exporter.txt");
        let t = good.replacen("43066     104508", "43066", 1);
        let e = parse(&t).unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        assert!(e.msg.contains("NET_RX: 1 counts"), "{e}");
        let t = good.replacen("2301", "23x1", 1);
        assert_eq!(parse(&t).unwrap_err().line, 4);
        let t = good.replacen("BLOCK:", "BLOCK ", 1);
        assert_eq!(parse(&t).unwrap_err().line, 6);
        assert_eq!(parse("").unwrap_err().line, 0);
        assert_eq!(parse("CPU0 CPU0\n").unwrap_err().line, 1);
        assert_eq!(parse("   CPU0\n").unwrap_err().line, 0);
        assert_eq!(
            parse("   CPU0\nHI: 99999999999999999999999\n")
                .unwrap_err()
                .line,
            2
        );
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC*") {
            let _ = parse(&s);
        }

        #[test]
        fn mutated_fixture_never_panics(cut in 0usize..800, byte in any::<u8>(), at in 0usize..800) {
            let mut b = fixture("node_exporter.txt").into_bytes();
            b.truncate(cut.max(1).min(b.len()));
            let i = at % b.len();
            b[i] = byte;
            let _ = parse(&String::from_utf8_lossy(&b));
        }
    }
}
