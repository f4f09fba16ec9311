//! /proc/interrupts: per-IRQ per-CPU counts, chip, hwirq and action names.
//!
//! Own parser: the `procfs` crate (0.18) has none for /proc/interrupts.
//!
//! Layout (kernel/irq/proc.c show_interrupts, and arch_show_interrupts for the named
//! rows, e.g. arch/x86/kernel/irq.c, arch/arm64/kernel/smp.c, arch/s390/kernel/irq.c):
//!
//! ```text
//!            CPU0       CPU1          <- one "CPU<n>" per *online* CPU (gaps when offline)
//!   24:       12          0  IR-PCI-MSI 512000-edge      ahci[0000:00:1f.2]
//!  NMI:        0          0   Non-maskable interrupts
//!  ERR:        0                      <- single total, not per CPU
//! ```
//!
//! A numbered row is: counts, chip (`irq_print_chip` or `%8s` name), hwirq (when the IRQ
//! has a domain) optionally fused with the flow handler name ("2-edge", old kernels fuse it
//! with the chip: "IO-APIC-edge"), an optional "Level"/"Edge" (GENERIC_IRQ_SHOW_LEVEL,
//! arm64), then the action names joined by ", ". Splitting chip from hwirq from action is
//! heuristic; counts and action names are what the agent relies on.
//!
//! Counts are `unsigned int` in the kernel (kstat_irqs_cpu), so they wrap at 2^32: take
//! deltas modulo 2^32 (`(now as u32).wrapping_sub(prev as u32)`).

use serde::Serialize;

use super::{percpu_header, HostRoot};
use crate::error::{ParseError, SourceError};

/// The parsed file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interrupts {
    /// CPU numbers from the header, in column order. Offline CPUs have no column, so
    /// column index and CPU number differ after the first gap.
    pub cpus: Vec<u32>,
    pub lines: Vec<IrqLine>,
}

/// The row label: an IRQ number or an architecture counter ("NMI", "LOC", "IPI0", "I/O").
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum IrqId {
    Number(u32),
    Named(String),
}

impl std::fmt::Display for IrqId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IrqId::Number(n) => write!(f, "{n}"),
            IrqId::Named(s) => f.write_str(s),
        }
    }
}

/// One row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IrqLine {
    pub irq: IrqId,
    /// One per header column; short rows ("ERR: 0") are padded with 0.
    pub counts: Vec<u64>,
    /// Interrupt chip, e.g. "IR-PCI-MSIX-0000:41:00.0", "IO-APIC", "GICv3", old "IO-APIC-edge".
    pub chip: Option<String>,
    /// The hwirq column as printed, with its trigger when shown: "3-edge", "27 Level".
    pub hwirq: Option<String>,
    /// Action (device) names; several when the line is shared ("PCIe PME", "pciehp").
    pub actions: Vec<String>,
    /// Text after the counts of a named row ("Local timer interrupts", "[EXT] Clock Comparator").
    pub description: Option<String>,
}

impl IrqLine {
    /// Sum over all CPU columns.
    pub fn total(&self) -> u64 {
        self.counts
            .iter()
            .fold(0u64, |acc, c| acc.saturating_add(*c))
    }

    pub fn number(&self) -> Option<u32> {
        match self.irq {
            IrqId::Number(n) => Some(n),
            IrqId::Named(_) => None,
        }
    }
}

impl Interrupts {
    /// Numbered (device) IRQ rows with their number.
    pub fn numbered(&self) -> impl Iterator<Item = (u32, &IrqLine)> {
        self.lines.iter().filter_map(|l| l.number().map(|n| (n, l)))
    }

    /// The row of IRQ `irq`.
    pub fn get(&self, irq: u32) -> Option<&IrqLine> {
        self.lines.iter().find(|l| l.irq == IrqId::Number(irq))
    }

    /// The named row `label` ("NMI", "LOC", "IPI0").
    pub fn named(&self, label: &str) -> Option<&IrqLine> {
        self.lines
            .iter()
            .find(|l| matches!(&l.irq, IrqId::Named(s) if s == label))
    }

    /// Column index of CPU `cpu`, None when the CPU has no column (offline or absent).
    pub fn column_of(&self, cpu: u32) -> Option<usize> {
        // The header is validated to be strictly increasing.
        self.cpus.binary_search(&cpu).ok()
    }

    /// Count of `line` on CPU `cpu`.
    pub fn count_for_cpu(&self, line: &IrqLine, cpu: u32) -> Option<u64> {
        self.column_of(cpu)
            .and_then(|c| line.counts.get(c).copied())
    }

    /// (CPU number, count) pairs of `line`.
    pub fn per_cpu<'a>(&'a self, line: &'a IrqLine) -> impl Iterator<Item = (u32, u64)> + 'a {
        self.cpus.iter().copied().zip(line.counts.iter().copied())
    }
}

/// Read and parse `<proc>/interrupts`.
pub fn read(root: &HostRoot) -> Result<Interrupts, SourceError> {
    super::read_parsed(&root.proc_path("interrupts"), parse)
}

/// Parse the text of /proc/interrupts.
pub fn parse(text: &str) -> Result<Interrupts, ParseError> {
    let mut lines = text.lines().enumerate();
    let cpus = percpu_header::take(&mut lines)?;
    let mut out = Vec::new();
    for (i, line) in lines {
        // procfs fixtures carry a blank line between MIS and PIN; arm64 ends on spaces.
        if line.trim().is_empty() {
            continue;
        }
        out.push(parse_row(line, cpus.len()).map_err(|m| ParseError::new(i + 1, m))?);
    }
    Ok(Interrupts { cpus, lines: out })
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Next whitespace-separated token at or after `pos`: (start, end).
fn next_token(bytes: &[u8], mut pos: usize) -> Option<(usize, usize)> {
    while pos < bytes.len() && is_blank(bytes[pos]) {
        pos += 1;
    }
    if pos >= bytes.len() {
        return None;
    }
    let start = pos;
    while pos < bytes.len() && !is_blank(bytes[pos]) {
        pos += 1;
    }
    Some((start, pos))
}

fn parse_row(line: &str, ncpus: usize) -> Result<IrqLine, String> {
    let s = line.trim_start();
    let colon = s
        .find(':')
        .ok_or_else(|| format!("no ':' after the row label in {:?}", clip(s)))?;
    let label = &s[..colon];
    if label.is_empty() || label.bytes().any(is_blank) {
        return Err(format!("bad row label {:?}", clip(label)));
    }
    let irq = if label.bytes().all(|b| b.is_ascii_digit()) {
        IrqId::Number(
            label
                .parse()
                .map_err(|_| format!("IRQ number {label:?} out of range"))?,
        )
    } else {
        IrqId::Named(label.to_string())
    };

    let rest = &s[colon + 1..];
    let bytes = rest.as_bytes();
    let mut counts = Vec::with_capacity(ncpus);
    let mut pos = 0;
    // The token that stopped the count scan early, if any.
    let mut stopper: Option<&str> = None;
    // One pass per count: skip blanks, then accumulate digits (the 1152-CPU file has
    // 1.2 M of them, so no per-token allocation or second scan).
    while counts.len() < ncpus {
        while pos < bytes.len() && is_blank(bytes[pos]) {
            pos += 1;
        }
        if pos >= bytes.len() {
            break;
        }
        let start = pos;
        let mut v: u64 = 0;
        let mut ok = true;
        while pos < bytes.len() && !is_blank(bytes[pos]) {
            let d = bytes[pos].wrapping_sub(b'0');
            if d > 9 {
                ok = false;
            } else if ok {
                match v.checked_mul(10).and_then(|x| x.checked_add(u64::from(d))) {
                    Some(x) => v = x,
                    None => ok = false,
                }
            }
            pos += 1;
        }
        if !ok {
            stopper = Some(&rest[start..pos]);
            pos = start;
            break;
        }
        counts.push(v);
    }
    if counts.len() < ncpus {
        match (&irq, stopper) {
            // Named totals such as "ERR: 0" and "MIS: 0" have a single value.
            (IrqId::Named(_), None) => {}
            // Numbered rows always carry one count per online CPU.
            (IrqId::Number(_), _) => {
                let next = stopper.map(|t| format!(", then {:?}", clip(t)));
                return Err(format!(
                    "IRQ {irq}: {} per-CPU counts, header has {ncpus} CPUs{}",
                    counts.len(),
                    next.unwrap_or_default()
                ));
            }
            (IrqId::Named(_), Some(t)) => {
                return Err(format!(
                    "{irq}: {:?} after {} of {ncpus} counts is not a number",
                    clip(t),
                    counts.len()
                ))
            }
        }
    }
    counts.resize(ncpus, 0);
    let tail = rest[pos..].trim();

    let mut out = IrqLine {
        irq,
        counts,
        chip: None,
        hwirq: None,
        actions: Vec::new(),
        description: None,
    };
    match out.irq {
        IrqId::Named(_) => {
            if !tail.is_empty() {
                out.description = Some(tail.to_string());
            }
        }
        IrqId::Number(_) => {
            let (chip, hwirq, actions) = split_tail(tail);
            out.chip = chip;
            out.hwirq = hwirq;
            out.actions = actions;
        }
    }
    Ok(out)
}

/// Split what follows the counts of a numbered row into chip, hwirq and actions.
fn split_tail(tail: &str) -> (Option<String>, Option<String>, Vec<String>) {
    let bytes = tail.as_bytes();
    let Some((c0, c1)) = next_token(bytes, 0) else {
        return (None, None, Vec::new());
    };
    let chip = Some(tail[c0..c1].to_string());
    let mut pos = c1;
    let mut hwirq: Option<String> = None;
    if let Some((h0, h1)) = next_token(bytes, pos) {
        if is_hwirq(&tail[h0..h1]) {
            let mut hw = tail[h0..h1].to_string();
            pos = h1;
            // GENERIC_IRQ_SHOW_LEVEL prints " %-8s" Level/Edge, maybe followed by
            // "-<handler>" (kernel/irq/proc.c show_interrupts).
            if let Some((l0, l1)) = next_token(bytes, pos) {
                let lvl = &tail[l0..l1];
                if lvl == "Level" || lvl == "Edge" {
                    hw.push(' ');
                    hw.push_str(lvl);
                    pos = l1;
                    if let Some((d0, d1)) = next_token(bytes, pos) {
                        if is_handler(&tail[d0..d1]) {
                            hw.push(' ');
                            hw.push_str(&tail[d0..d1]);
                            pos = d1;
                        }
                    }
                }
            }
            hwirq = Some(hw);
        }
    }
    let actions = split_actions(tail[pos..].trim());
    (chip, hwirq, actions)
}

/// "512000", "2-edge", "9-fasteoi", or a bare "-edge" (no domain, handler name only).
fn is_hwirq(tok: &str) -> bool {
    let digits = tok.bytes().take_while(u8::is_ascii_digit).count();
    let rest = &tok[digits..];
    if digits == 0 {
        return is_handler(rest);
    }
    rest.is_empty() || is_handler(rest)
}

/// "-edge", "-level", "-fasteoi", "-simple", "-percpu" ...
fn is_handler(tok: &str) -> bool {
    match tok.strip_prefix('-') {
        Some(name) => !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphabetic()),
        None => false,
    }
}

fn split_actions(s: &str) -> Vec<String> {
    if s.is_empty() {
        return Vec::new();
    }
    s.split(", ")
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect()
}

/// At most 40 characters of `s`, for error messages (sys_irq's too).
pub(super) fn clip(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/proc_interrupts/");

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{DIR}{name}")).unwrap()
    }

    fn parsed(name: &str) -> Interrupts {
        parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn line(
        chip: Option<&str>,
        hwirq: Option<&str>,
        actions: &[&str],
    ) -> (Option<String>, Option<String>, Vec<String>) {
        (
            chip.map(str::to_string),
            hwirq.map(str::to_string),
            actions.iter().map(|s| s.to_string()).collect(),
        )
    }

    fn parts(l: &IrqLine) -> (Option<String>, Option<String>, Vec<String>) {
        (l.chip.clone(), l.hwirq.clone(), l.actions.clone())
    }

    #[test]
    fn every_fixture_parses_with_full_rows() {
        let mut n = 0;
        for entry in std::fs::read_dir(DIR).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "txt") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let got = parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!got.lines.is_empty(), "{}", path.display());
            for l in &got.lines {
                assert_eq!(
                    l.counts.len(),
                    got.cpus.len(),
                    "{} {}",
                    path.display(),
                    l.irq
                );
            }
            n += 1;
        }
        assert_eq!(n, 16);
    }

    #[test]
    fn single_cpu_old_ioapic_whole_struct() {
        let got = parsed("insights-1cpu-old-ioapic-hyp.txt");
        let num = |n: u32, c: u64, chip: &str, action: &str| IrqLine {
            irq: IrqId::Number(n),
            counts: vec![c],
            chip: Some(chip.into()),
            hwirq: None,
            actions: vec![action.into()],
            description: None,
        };
        let named = |s: &str, c: u64, d: Option<&str>| IrqLine {
            irq: IrqId::Named(s.into()),
            counts: vec![c],
            chip: None,
            hwirq: None,
            actions: vec![],
            description: d.map(str::to_string),
        };
        let want = Interrupts {
            cpus: vec![0],
            lines: vec![
                num(0, 45, "IO-APIC-edge", "timer"),
                num(1, 3, "IO-APIC-edge", "i8042"),
                num(6, 3, "IO-APIC-edge", "floppy"),
                num(7, 0, "IO-APIC-edge", "parport0"),
                num(8, 1, "IO-APIC-edge", "rtc0"),
                num(9, 0, "IO-APIC-fasteoi", "acpi"),
                named("HYP", 0, Some("Hypervisor callback interrupts")),
                named("ERR", 0, None),
                named("MIS", 0, None),
            ],
        };
        assert_eq!(got, want);
    }

    #[test]
    fn s390x_two_cpu_whole_struct() {
        let got = parsed("pcp-s390x-2cpu.txt");
        let want = Interrupts {
            cpus: vec![0, 1],
            lines: vec![
                IrqLine {
                    irq: IrqId::Named("EXT".into()),
                    counts: vec![31903, 57022],
                    chip: None,
                    hwirq: None,
                    actions: vec![],
                    description: None,
                },
                IrqLine {
                    irq: IrqId::Named("I/O".into()),
                    counts: vec![6989, 33457],
                    chip: None,
                    hwirq: None,
                    actions: vec![],
                    description: None,
                },
            ],
        };
        assert_eq!(got, want);
    }

    #[test]
    fn pcp_1152_cpus_i40e() {
        let got = parsed("pcp-1152cpu-x86_64-i40e.txt");
        assert_eq!(got.cpus, (0..1152).collect::<Vec<u32>>());
        assert_eq!(got.numbered().count(), 1034);
        assert_eq!(got.lines.len(), 1056);
        let l = got.get(682).unwrap();
        assert_eq!(
            parts(l),
            line(
                Some("IR-PCI-MSI"),
                Some("102236164-edge"),
                &["i40e-eth0-TxRx-3"]
            )
        );
        assert_eq!(l.total(), 13050);
        assert_eq!(got.count_for_cpu(l, 3), Some(13050));
        assert_eq!(got.count_for_cpu(l, 4), Some(0));
        let eth0_queues = got
            .numbered()
            .filter(|(_, l)| l.actions.iter().any(|a| a.starts_with("i40e-eth0-TxRx-")))
            .count();
        assert_eq!(eth0_queues, 94);
        let loc = got.named("LOC").unwrap();
        assert_eq!(loc.total(), 509_807_994);
        assert_eq!(loc.counts[0], 6_342_723);
        assert_eq!(loc.counts[1151], 425_311);
        assert_eq!(loc.description.as_deref(), Some("Local timer interrupts"));
        // "PCIe PME" is one action name containing a space.
        assert_eq!(got.get(24).unwrap().actions, vec!["PCIe PME".to_string()]);
    }

    #[test]
    fn offline_cpu_gap_maps_columns_to_cpu_numbers() {
        let got = parsed("sysstat-root3-offline-cpu6.txt");
        assert_eq!(got.cpus, vec![0, 1, 2, 3, 4, 5, 7]);
        let l = got.get(33).unwrap();
        assert_eq!(l.counts, vec![0, 0, 0, 54232, 0, 0, 0]);
        assert_eq!(
            parts(l),
            line(Some("PCI-MSI"), Some("3145728-edge"), &["enp6s0"])
        );
        assert_eq!(got.column_of(6), None);
        assert_eq!(got.column_of(7), Some(6));
        assert_eq!(got.count_for_cpu(l, 3), Some(54232));
        assert_eq!(got.count_for_cpu(l, 6), None);
    }

    #[test]
    fn firedancer_missing_cpu10_and_shared_names() {
        let got = parsed("firedancer-amd-63cpu-i40e.txt");
        assert_eq!(got.cpus.len(), 63);
        assert!(!got.cpus.contains(&10));
        assert_eq!(got.cpus[10], 11);
        let l = got.get(57).unwrap();
        assert_eq!(
            parts(l),
            line(
                Some("IR-PCI-MSI-0000:c0:03.1"),
                Some("0-edge"),
                &["PCIe PME", "pciehp", "PCIe bwctrl"]
            )
        );
        let q0 = got.get(96).unwrap();
        assert_eq!(
            parts(q0),
            line(
                Some("IR-PCI-MSIX-0000:41:00.0"),
                Some("1-edge"),
                &["i40e-ens3f0np0-TxRx-0"]
            )
        );
        // Column 13 is CPU14 because CPU10 has no column.
        assert_eq!(q0.counts[13], 2_432_444);
        assert_eq!(got.count_for_cpu(q0, 14), Some(2_432_444));
        assert_eq!(got.count_for_cpu(q0, 58), Some(3_192_699));
        assert_eq!(
            got.get(160).unwrap().actions,
            vec!["i40e-0000:41:00.0:fdir-TxRx-0"]
        );
        assert!(got.named("NMI").is_some(), "leading-space NMI row");
    }

    #[test]
    fn aarch64_gic_its_and_ipi_without_space() {
        let got = parsed("node_exporter-aarch64-ena-8cpu.txt");
        assert_eq!(got.cpus, (0..8).collect::<Vec<u32>>());
        let ipi0 = got.named("IPI0").unwrap();
        assert_eq!(ipi0.counts[0], 2_768_808_080);
        assert_eq!(ipi0.counts[7], 2_154_252_810);
        assert_eq!(ipi0.description.as_deref(), Some("Rescheduling interrupts"));
        let timer = got.get(10).unwrap();
        assert_eq!(
            parts(timer),
            line(Some("GICv3"), Some("27 Level"), &["arch_timer"])
        );
        let q0 = got.get(58).unwrap();
        assert_eq!(
            parts(q0),
            line(Some("ITS-MSI"), Some("81921 Edge"), &["eth0-Tx-Rx-0"])
        );
        assert_eq!(q0.counts, vec![0, 0, 1_195_697_946, 437, 0, 0, 0, 0]);
        let acpi = got.get(50).unwrap();
        assert_eq!(
            parts(acpi),
            line(Some("ARMH0061:00"), Some("3 Edge"), &["ACPI:Event"])
        );
        let err = got.named("Err").unwrap();
        assert_eq!(err.counts, vec![0; 8]);
        assert_eq!(got.lines.last().unwrap().irq, IrqId::Named("Err".into()));
    }

    #[test]
    fn s390x_classes_and_chip_without_hwirq() {
        let got = parsed("pcp-s390x-16cpu.txt");
        assert_eq!(got.cpus.len(), 16);
        assert_eq!(got.named("EXT").unwrap().counts[0], 30368);
        assert_eq!(got.named("I/O").unwrap().counts[15], 377);
        let l = got.get(3).unwrap();
        assert_eq!(
            parts(l),
            line(Some("PCI-MSI"), None, &["mlx5_async@pci:0002:00:00.0"])
        );
        // A PCI address as action must not be taken for a hwirq.
        assert_eq!(
            parts(got.get(23).unwrap()),
            line(Some("PCI-MSI"), None, &["0000:00:00.0"])
        );
        assert_eq!(
            got.named("CLK").unwrap().description.as_deref(),
            Some("[EXT] Clock Comparator")
        );
        assert_eq!(
            got.named("C15").unwrap().description.as_deref(),
            Some("[I/O] 3215")
        );
        assert_eq!(got.named("RST").unwrap().total(), 15);
    }

    #[test]
    fn empty_action_and_chip_variants() {
        let got = parsed("insights-8cpu-empty-name.txt");
        assert_eq!(
            parts(got.get(30).unwrap()),
            line(Some("IR-PCI-MSI"), Some("524288-edge"), &[])
        );
        assert_eq!(got.get(30).unwrap().total(), 190);
        let got = parsed("pcp-8cpu-laptop-leading-space-ipi.txt");
        assert_eq!(
            parts(got.get(137).unwrap()),
            line(Some("dummy"), Some("44"), &["rmi4_smbus"])
        );
        assert_eq!(
            parts(got.get(138).unwrap()),
            line(Some("rmi4"), Some("0"), &["rmi4-00.fn34"])
        );
        assert_eq!(
            got.get(16).unwrap().actions,
            vec!["i2c_designware.0", "idma64.0", "i801_smbus"]
        );
        assert_eq!(got.named("NMI").unwrap().counts[0], 2466);
        let got = parsed("pcp-i686-1cpu.txt");
        assert_eq!(got.cpus, vec![0]);
        assert_eq!(
            parts(got.get(11).unwrap()),
            line(
                Some("IO-APIC"),
                Some("11-fasteoi"),
                &["uhci_hcd:usb1", "ens3"]
            )
        );
        let got = parsed("node_exporter-x86-laptop-4cpu.txt");
        assert_eq!(
            parts(got.get(16).unwrap()),
            line(Some("IR-IO-APIC-fasteoi"), None, &["ehci_hcd:usb1", "mmc0"])
        );
    }

    #[test]
    fn virtio_guest_with_blank_line() {
        let got = parsed("procfs-x86-virtio-4cpu.txt");
        let l = got.get(36).unwrap();
        assert_eq!(l.counts, vec![0, 335, 37, 0]);
        assert_eq!(
            parts(l),
            line(Some("PCI-MSI"), Some("16385-edge"), &["virtio0-input.0"])
        );
        assert!(
            got.named("PIW").is_some(),
            "rows after the blank line are kept"
        );
        let got = parsed("FILTERED-allandeng-16cpu-virtio-4q.txt");
        assert_eq!(got.cpus.len(), 16);
        let l = got.get(51).unwrap();
        assert_eq!(
            parts(l),
            line(Some("PCI-MSI-edge"), None, &["virtio0-input.3"])
        );
        assert_eq!(got.count_for_cpu(l, 3), Some(119_909_943));
    }

    #[test]
    fn live_proc_interrupts_parses() {
        // The build machine's own file: a format check against a current kernel.
        // Every Linux with procfs has /proc/interrupts: no reason to skip.
        let text = std::fs::read_to_string("/proc/interrupts").expect("/proc/interrupts");
        let got = parse(&text).unwrap();
        let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|s| crate::sources::cpus::parse_cpulist(&s).ok());
        if let Some(online) = online {
            assert_eq!(got.cpus, online);
        }
        assert!(got.numbered().count() > 0);
    }

    fn err_line(text: &str) -> usize {
        parse(text).unwrap_err().line
    }

    #[test]
    fn malformed_inputs_name_the_line() {
        let good = fixture("procfs-x86-virtio-4cpu.txt");
        // Truncated numbered row.
        let t = good.replacen(
            " 36:          0        335         37          0",
            " 36:          0        335",
            1,
        );
        let e = parse(&t).unwrap_err();
        assert_eq!(e.line, 21, "{e}");
        assert_eq!(
            e.msg,
            "IRQ 36: 2 per-CPU counts, header has 4 CPUs, then \"PCI-MSI\""
        );
        // Garbage number.
        let t = good.replacen("LOC:      10196", "LOC:      1x196", 1);
        let e = parse(&t).unwrap_err();
        assert_eq!(
            (e.line, e.msg.as_str()),
            (31, "LOC: \"1x196\" after 0 of 4 counts is not a number")
        );
        let t = good.replacen(
            " 36:          0        335",
            " 36:          0        3x5",
            1,
        );
        assert_eq!(err_line(&t), 21);
        // Missing colon.
        let t = good.replacen(" 4:          0       1443", " 4           0       1443", 1);
        assert_eq!(err_line(&t), 4);
        // Bad header.
        assert_eq!(err_line("  CPU0 CPUx\n 1: 0 0 X\n"), 1);
        assert_eq!(err_line("CPU1 CPU0\n"), 1);
        assert_eq!(err_line(""), 0);
        assert_eq!(err_line("\n\n  \n"), 0);
        // IRQ number overflow.
        assert_eq!(err_line("CPU0\n99999999999: 1 X y\n"), 2);
        // Count overflow.
        assert_eq!(err_line("CPU0\n1: 99999999999999999999999 X y\n"), 2);
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC*") {
            let _ = parse(&s);
        }

        #[test]
        fn structured_noise_never_panics(s in "(CPU[0-9]{1,3}[ \t]{1,3}){0,4}\n([ A-Z0-9/]{0,5}:[ 0-9a-z,\\-]{0,40}\n){0,6}") {
            let _ = parse(&s);
        }

        #[test]
        fn mutated_fixture_never_panics(cut in 0usize..4000, byte in any::<u8>(), at in 0usize..4000) {
            let mut b = fixture("node_exporter-aarch64-ena-8cpu.txt").into_bytes();
            b.truncate(cut.max(1).min(b.len()));
            if !b.is_empty() {
                let i = at % b.len();
                b[i] = byte;
            }
            let s = String::from_utf8_lossy(&b);
            let _ = parse(&s);
        }
    }
}
