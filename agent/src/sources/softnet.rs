//! /proc/net/softnet_stat: per-CPU backlog counters (9 to 15 columns).
//!
//! Own parser: the `procfs` crate (0.18) has none for /proc/net/softnet_stat.
//!
//! One row per *online* CPU (softnet_get_online skips offline ones), every value "%08x".
//! Columns by kernel (net/core/net-procfs.c softnet_seq_show):
//!
//! | # | field | since |
//! |---|---|---|
//! | 1-3 | processed, dropped, time_squeeze | 2.6 |
//! | 4-8 | zeros (was fastroute) | |
//! | 9 | cpu_collision, now always 0 | |
//! | 10 | received_rps | 2.6.35 (10 columns) |
//! | 11 | flow_limit_count | 3.11 (11 columns) |
//! | 12 | backlog_len (input + process queue) | 5.10 (13 columns) |
//! | 13 | CPU index (`seq->index`, the CPU id) | 5.10 |
//! | 14-15 | input_qlen, process_qlen | 6.x (15 columns; hjr3 fixture from 6.4.7) |
//!
//! Rows with an index column take their CPU from it; others from their position mapped
//! through the online CPU list, else 0..n. Files can mix layouts (procfs' test fixture).
//! The index column is kept as printed even when it repeats: insights-core's RHEL 9 sample
//! ends on a fifth row with index 0. [`duplicate_cpus`] reports such repeats and [`read`]
//! logs them, so they are never silently merged or renumbered.
//!
//! All counters are `unsigned int` and wrap at 2^32: rates must use `wrapping_sub` on the
//! u32 values, never a plain subtraction.

use serde::Serialize;

use super::HostRoot;
use crate::error::{ParseError, SourceError};

/// One CPU's row. Counters wrap at 2^32: take deltas with `u32::wrapping_sub`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SoftnetCpu {
    /// From the index column (13+ columns), else from the row's position.
    pub cpu: u32,
    /// Packets taken off this CPU's backlog / NAPI polls (netif_receive_skb path).
    pub processed: u32,
    /// Packets dropped because the backlog was full (netdev_max_backlog).
    pub dropped: u32,
    /// net_rx_action runs that stopped with work left (budget or time exhausted).
    pub time_squeeze: u32,
    /// RPS IPIs received (10+ columns).
    pub received_rps: Option<u32>,
    /// Packets dropped by the flow limit (11+ columns).
    pub flow_limit_count: Option<u32>,
    /// Packets queued in the backlog when read (13+ columns).
    pub backlog_len: Option<u32>,
    /// input_pkt_queue length when read (15+ columns).
    pub input_qlen: Option<u32>,
    /// process_queue length when read (15+ columns).
    pub process_qlen: Option<u32>,
    /// Number of columns of this row.
    pub columns: usize,
}

/// Read `<proc>/net/softnet_stat`, mapping rows to CPUs through
/// `<sys>/devices/system/cpu/online` when that file exists; repeated CPU indexes are
/// logged.
pub fn read(root: &HostRoot) -> Result<Vec<SoftnetCpu>, SourceError> {
    let rows = read_rows(root)?;
    let dups = duplicate_cpus(&rows);
    if !dups.is_empty() {
        log::warn!(
            "{}: CPU index repeated for CPUs {dups:?}; rows kept as printed",
            root.proc_path("net/softnet_stat").display()
        );
    }
    Ok(rows)
}

/// [`read`] without the log line, for readers that poll it often (the probe budget).
pub fn read_rows(root: &HostRoot) -> Result<Vec<SoftnetCpu>, SourceError> {
    let online_path = root.sys_path("devices/system/cpu/online");
    let online = match super::read_parsed(&online_path, parse_cpulist) {
        Ok(cpus) => Some(cpus),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e),
    };
    let path = root.proc_path("net/softnet_stat");
    super::read_parsed(&path, |t| parse(t, online.as_deref()))
}

/// The kernel CPU-list parser ("0-3,5,7-8"), shared with the other CPU sources.
pub use super::cpus::parse_cpulist;

/// Parse the text of /proc/net/softnet_stat. `online_cpus` maps row position to CPU for
/// rows without an index column (pre-5.10); without it row k is CPU k.
pub fn parse(text: &str, online_cpus: Option<&[u32]>) -> Result<Vec<SoftnetCpu>, ParseError> {
    let mut out = Vec::new();
    let mut row = 0usize;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |m: String| ParseError::new(i + 1, m);
        let mut v = [0u32; 15];
        let mut columns = 0usize;
        for tok in line.split_ascii_whitespace() {
            let x = parse_hex_u32(tok)
                .ok_or_else(|| err(format!("column {}: {tok:?} is not a hex u32", columns + 1)))?;
            // Columns a future kernel appends are counted but not kept.
            if let Some(slot) = v.get_mut(columns) {
                *slot = x;
            }
            columns += 1;
        }
        match columns {
            0..=8 => return Err(err(format!("{columns} columns, at least 9 expected"))),
            // No kernel printed 12 or 14 columns: a cut-off line.
            12 | 14 => return Err(err(format!("{columns} columns: truncated line"))),
            _ => {}
        }
        let cpu = if columns >= 13 {
            v[12]
        } else {
            match online_cpus {
                Some(online) => *online.get(row).ok_or_else(|| {
                    err(format!(
                        "row {} but only {} online CPUs (hotplug between reads?)",
                        row + 1,
                        online.len()
                    ))
                })?,
                None => u32::try_from(row).map_err(|_| err("too many rows".into()))?,
            }
        };
        let opt = |idx: usize| (columns > idx).then(|| v[idx]);
        out.push(SoftnetCpu {
            cpu,
            processed: v[0],
            dropped: v[1],
            time_squeeze: v[2],
            received_rps: opt(9),
            flow_limit_count: opt(10),
            backlog_len: opt(11),
            input_qlen: opt(13),
            process_qlen: opt(14),
            columns,
        });
        row += 1;
    }
    Ok(out)
}

/// CPUs that appear on more than one row, ascending.
pub fn duplicate_cpus(rows: &[SoftnetCpu]) -> Vec<u32> {
    let mut cpus: Vec<u32> = rows.iter().map(|r| r.cpu).collect();
    cpus.sort_unstable();
    let mut dups: Vec<u32> = cpus
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    dups.dedup();
    dups
}

/// "%08x": up to 8 hex digits, nothing else (no sign, no 0x).
fn parse_hex_u32(tok: &str) -> Option<u32> {
    if tok.is_empty() || tok.len() > 8 || !tok.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(tok, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/softnet_stat/");

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{DIR}{name}")).unwrap()
    }

    fn parsed(name: &str) -> Vec<SoftnetCpu> {
        parse(&fixture(name), None).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn cpus(rows: &[SoftnetCpu]) -> Vec<u32> {
        rows.iter().map(|r| r.cpu).collect()
    }

    fn row(cpu: u32, processed: u32, dropped: u32, squeeze: u32, columns: usize) -> SoftnetCpu {
        SoftnetCpu {
            cpu,
            processed,
            dropped,
            time_squeeze: squeeze,
            received_rps: None,
            flow_limit_count: None,
            backlog_len: None,
            input_qlen: None,
            process_qlen: None,
            columns,
        }
    }

    #[test]
    fn every_fixture_parses() {
        let mut n = 0;
        for entry in std::fs::read_dir(DIR).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "txt") {
                continue;
            }
            let rows = parse(&std::fs::read_to_string(&path).unwrap(), None)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!rows.is_empty(), "{}", path.display());
            n += 1;
        }
        assert_eq!(n, 16);
    }

    #[test]
    fn fifteen_columns_6_4_whole_struct() {
        let got = parsed("hjr3-6.4.7-15col.txt");
        let full = |cpu, processed, squeeze| SoftnetCpu {
            received_rps: Some(0),
            flow_limit_count: Some(0),
            backlog_len: Some(0),
            input_qlen: Some(0),
            process_qlen: Some(0),
            ..row(cpu, processed, 0, squeeze, 15)
        };
        assert_eq!(
            got,
            vec![full(0, 0x0078_b644, 0x3d), full(1, 0x006d_1ebe, 0x4f)]
        );
    }

    #[test]
    fn thirteen_columns_5_10_whole_struct() {
        let got = parsed("hjr3-5.10.47-13col.txt");
        let r = |cpu, processed, squeeze| SoftnetCpu {
            received_rps: Some(0),
            flow_limit_count: Some(0),
            backlog_len: Some(0),
            ..row(cpu, processed, 0, squeeze, 13)
        };
        assert_eq!(got, vec![r(0, 0x0006_7f83, 0x383), r(1, 0x6c62, 0xc1)]);
    }

    #[test]
    fn old_layouts() {
        assert_eq!(
            parsed("insights-rhel5-9col.txt"),
            vec![row(0, 0x6dca_d223, 0, 1, 9)]
        );
        let got = parsed("insights-rhel67-10col-wrapped-squeeze.txt");
        assert_eq!(got[1].time_squeeze, 0xf003_eca7);
        assert_eq!(got[1].dropped, 0xee);
        assert_eq!(got[1].received_rps, Some(1));
        assert_eq!(got[1].flow_limit_count, None);
        let got = parsed("insights-rhel8-11col.txt");
        assert_eq!(
            got,
            vec![SoftnetCpu {
                received_rps: Some(2),
                flow_limit_count: Some(1),
                ..row(0, 0x0002_2be3, 0xfe, 0x12, 11)
            }]
        );
        let got = parsed("pcp-480cpu-10col-hpbl920.txt");
        assert_eq!(cpus(&got), (0..480).collect::<Vec<u32>>());
        assert_eq!(got[1].processed, 0x21b1);
    }

    #[test]
    fn index_column_gap_is_the_cpu() {
        let got = parsed("sysstat-root4-13col-gap.txt");
        assert_eq!(cpus(&got), vec![0, 1, 2, 3, 4, 5, 7, 8]);
        assert_eq!(got[1].backlog_len, Some(0x0a));
        assert_eq!(got[6].processed, 0x4958);
        // The index column wins over the online list.
        let got = parse(&fixture("sysstat-root4-13col-gap.txt"), Some(&[0, 1])).unwrap();
        assert_eq!(got[7].cpu, 8);
    }

    #[test]
    fn rhel9_repeated_index_is_kept_and_reported() {
        let got = parsed("insights-rhel9-13col.txt");
        assert_eq!(cpus(&got), vec![0, 1, 2, 3, 0]);
        assert_eq!(duplicate_cpus(&got), vec![0]);
        assert_eq!(got[4].processed, 0x01a3_5c9d);
        assert_eq!(got[4].dropped, 0x0002_db94);
        assert_eq!(
            duplicate_cpus(&parsed("pcp-40cpu-13col.txt")),
            Vec::<u32>::new()
        );
    }

    #[test]
    fn mixed_columns_use_index_or_position() {
        let text = fixture("procfs-mixed-9to13col.txt");
        let got = parse(&text, None).unwrap();
        assert_eq!(
            got.iter().map(|r| r.columns).collect::<Vec<_>>(),
            vec![13, 13, 11, 9, 10]
        );
        assert_eq!(cpus(&got), vec![0, 1, 2, 3, 4]);
        assert_eq!(got[2].time_squeeze, 0xf000_0769);
        assert_eq!(got[3].received_rps, None);
        let got = parse(&text, Some(&[0, 1, 2, 5, 9])).unwrap();
        assert_eq!(cpus(&got), vec![0, 1, 2, 5, 9]);
    }

    #[test]
    fn online_list_maps_positions_and_must_cover_rows() {
        let text = fixture("sysstat-root6-11col-10cpu.txt");
        let online: Vec<u32> = vec![0, 1, 2, 3, 4, 5, 7, 8, 9, 10];
        let got = parse(&text, Some(&online)).unwrap();
        assert_eq!(cpus(&got), online);
        let e = parse(&text, Some(&online[..9])).unwrap_err();
        assert_eq!(e.line, 10, "{e}");
    }

    #[test]
    fn read_maps_through_sysfs_online() {
        let dir = std::env::temp_dir().join(format!("skewscope-softnet-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("proc/net")).unwrap();
        std::fs::create_dir_all(dir.join("sys/devices/system/cpu")).unwrap();
        std::fs::write(
            dir.join("proc/net/softnet_stat"),
            fixture("hjr3-3.11-11col.txt"),
        )
        .unwrap();
        let root = HostRoot::new(dir.join("proc"), dir.join("sys"));
        assert_eq!(cpus(&read(&root).unwrap()), (0..8).collect::<Vec<u32>>());
        std::fs::write(dir.join("sys/devices/system/cpu/online"), "0-5,7-8\n").unwrap();
        assert_eq!(cpus(&read(&root).unwrap()), vec![0, 1, 2, 3, 4, 5, 7, 8]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(read(&root).unwrap_err().is_not_found());
    }

    #[test]
    fn live_softnet_stat_parses() {
        // This kernel's format must parse: only an absent file (no procfs here) skips.
        let rows = match read(&HostRoot::default()) {
            Ok(rows) => rows,
            Err(e) if e.is_not_found() => {
                skewscope_test_support::cannot_run("live_softnet_stat_parses", e);
                return;
            }
            Err(e) => panic!("this kernel's /proc/net/softnet_stat: {e}"),
        };
        assert!(!rows.is_empty());
        assert!(duplicate_cpus(&rows).is_empty());
    }

    #[test]
    fn malformed_inputs_name_the_line() {
        let good = fixture("pcp-8cpu-13col.txt");
        let lines: Vec<&str> = good.lines().collect();
        let with = |n: usize, repl: &str| {
            let mut l = lines.clone();
            l[n] = repl;
            l.join("\n")
        };
        // Truncated to 8, 12 and 14 columns.
        let cut =
            |n: usize, cols: usize| lines[n].split(' ').take(cols).collect::<Vec<_>>().join(" ");
        assert_eq!(parse(&with(2, &cut(2, 8)), None).unwrap_err().line, 3);
        assert_eq!(parse(&with(4, &cut(4, 12)), None).unwrap_err().line, 5);
        let six = fixture("hjr3-6.4.7-15col.txt");
        let l2 = six.lines().nth(1).unwrap();
        let fourteen = l2.split(' ').take(14).collect::<Vec<_>>().join(" ");
        let t = format!("{}\n{fourteen}\n", six.lines().next().unwrap());
        let e = parse(&t, None).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.msg.contains("truncated"), "{e}");
        // Garbage and over-long numbers.
        let t = good.replacen("0000e918", "0000g918", 1);
        let e = parse(&t, None).unwrap_err();
        assert_eq!(
            (e.line, e.msg.as_str()),
            (2, "column 1: \"0000g918\" is not a hex u32")
        );
        let t = good.replacen("0000e918", "10000e918", 1);
        assert_eq!(parse(&t, None).unwrap_err().line, 2);
        let t = good.replacen("0000e918", "+000e918", 1);
        assert_eq!(parse(&t, None).unwrap_err().line, 2);
        assert_eq!(parse("", None).unwrap(), vec![]);
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC*", online in proptest::option::of(proptest::collection::vec(any::<u32>(), 0..4))) {
            let _ = parse(&s, online.as_deref());
        }

        #[test]
        fn hex_rows_never_panic(s in "([0-9a-f]{1,9}[ \t]{1,2}){0,17}(\n([0-9a-f]{8} ){0,16})*") {
            let _ = parse(&s, None);
        }

        #[test]
        fn mutated_fixture_never_panics(cut in 0usize..1200, byte in any::<u8>(), at in 0usize..1200) {
            let mut b = fixture("procfs-mixed-9to13col.txt").into_bytes();
            b.truncate(cut.max(1).min(b.len()));
            let i = at % b.len();
            b[i] = byte;
            let _ = parse(&String::from_utf8_lossy(&b), Some(&[0, 1, 2]));
        }
    }
}
