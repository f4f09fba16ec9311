//! /sys/kernel/irq/N: per-CPU counts and action names of the network devices' IRQs only,
//! instead of having the kernel format every IRQ on every CPU in /proc/interrupts (13 MB
//! on a 1152-CPU host, where the model needs a few hundred rows).
//!
//! kernel/irq/irqdesc.c (since 4.11, ecb3f394c5db "genirq: Expose interrupt information
//! through sysfs"; only with CONFIG_SPARSE_IRQ and CONFIG_SYSFS):
//! - `per_cpu_count`: `"%u"` per *possible* CPU (for_each_possible_cpu) joined by ",",
//!   then "\n". It is written into one page (scnprintf / sysfs_emit_at up to PAGE_SIZE),
//!   so on a host with many CPUs and large counts it can be cut short: fewer values than
//!   possible CPUs, or no final newline, means truncated and the caller falls back.
//! - `actions`: the action names joined by "," (no space, unlike /proc/interrupts' ", ").
//!
//! `chip_name` and `hwirq` are not read: nothing downstream of irq_map uses them, and each
//! file costs an open, a read and a close per IRQ per cycle.

use std::path::Path;

use super::interrupts::{clip, Interrupts, IrqId, IrqLine};
use super::{cpus, irq_map, sysfs_net, HostRoot};
use crate::error::{ParseError, SourceError};

/// Below this many possible CPUs /proc/interrupts is a few KB, one read cheaper than the
/// two files per queue IRQ (and every IRQ's `actions` when a device has no msi_irqs).
pub const MIN_CPUS: usize = 64;

/// Whether the root has the /sys/kernel/irq tree (fixture roots, sosreports and kernels
/// without CONFIG_SPARSE_IRQ do not).
pub fn available(root: &HostRoot) -> bool {
    root.sys_path("kernel/irq").is_dir()
}

/// Whether to read this way: the tree exists and the host has at least [`MIN_CPUS`]
/// possible CPUs, where /proc/interrupts grows large (IRQs x CPUs numbers).
pub fn preferred(root: &HostRoot) -> bool {
    available(root)
        && root
            .read_sys("devices/system/cpu/possible")
            .ok()
            .and_then(|t| cpus::parse_cpulist(&t).ok())
            .is_some_and(|c| c.len() >= MIN_CPUS)
}

/// What one read cost: files opened and bytes the kernel formatted for us.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCost {
    pub files: usize,
    pub bytes: usize,
}

/// Read the IRQ rows of the network devices of `root` (all of them when `only` is empty),
/// shaped like /proc/interrupts with one column per possible CPU.
pub fn read(root: &HostRoot, only: &[String]) -> Result<Interrupts, SourceError> {
    read_counted(root, only).map(|(ints, _)| ints)
}

/// [`read`], also returning what it read.
pub fn read_counted(
    root: &HostRoot,
    only: &[String],
) -> Result<(Interrupts, ReadCost), SourceError> {
    let mut cost = ReadCost::default();
    let possible_path = root.sys_path("devices/system/cpu/possible");
    let possible = read_file(&possible_path, &mut cost)?;
    let cpus = cpus::parse_cpulist(&possible).map_err(|e| SourceError::parse(&possible_path, e))?;
    if cpus.is_empty() {
        return Err(SourceError::Unsupported {
            what: possible_path.display().to_string(),
            why: "no possible CPUs listed".into(),
        });
    }

    let (mut irqs, scan_all) = device_irqs(root, only)?;
    let irq_dir = root.sys_path("kernel/irq");
    if scan_all {
        // A device without an msi_irqs listing (INTx, some virtual buses): only the
        // action names can tell its IRQs, as irq_map does with /proc/interrupts.
        irqs = list_irq_dirs(&irq_dir)?;
    }
    let mut lines = Vec::with_capacity(irqs.len());
    for irq in irqs {
        let dir = irq_dir.join(irq.to_string());
        // Actions first: a line no queue pattern claims (misc, fdir) needs no counts.
        let actions = match read_file(&dir.join("actions"), &mut cost) {
            Ok(a) => parse_actions(&a),
            // Freed between the listing and the read.
            Err(SourceError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        if !actions
            .iter()
            .any(|a| irq_map::classify_action(a).is_some())
        {
            continue;
        }
        let counts = read_counts(&dir, cpus.len(), &mut cost)?;
        lines.push(row(irq, counts, actions));
    }
    lines.sort_by_key(|l| l.number());
    Ok((Interrupts { cpus, lines }, cost))
}

/// The IRQs listed in msi_irqs by the netdevs that have a bus device, and whether some
/// such device lists none (so every IRQ's actions must be looked at). Virtual devices
/// without a `device` link own no IRQ.
fn device_irqs(root: &HostRoot, only: &[String]) -> Result<(Vec<u32>, bool), SourceError> {
    let mut irqs = Vec::new();
    let mut scan_all = false;
    for name in sysfs_net::list_devices(root)? {
        if !only.is_empty() && !only.contains(&name) {
            continue;
        }
        if !root.sys_path(format!("class/net/{name}/device")).exists() {
            continue;
        }
        let hints = irq_map::read_hints(root, &name);
        if hints.msi_irqs.is_empty() {
            scan_all = true;
        }
        irqs.extend(hints.msi_irqs);
    }
    irqs.sort_unstable();
    irqs.dedup();
    Ok((irqs, scan_all))
}

fn list_irq_dirs(dir: &Path) -> Result<Vec<u32>, SourceError> {
    let entries = std::fs::read_dir(dir).map_err(|e| SourceError::io(dir, e))?;
    let mut irqs: Vec<u32> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    irqs.sort_unstable();
    Ok(irqs)
}

fn read_counts(dir: &Path, ncpus: usize, cost: &mut ReadCost) -> Result<Vec<u64>, SourceError> {
    let path = dir.join("per_cpu_count");
    let text = read_file(&path, cost)?;
    parse_per_cpu_count(&text, ncpus).map_err(|e| {
        if e.msg.contains("truncated") {
            SourceError::Unsupported {
                what: path.display().to_string(),
                why: e.msg,
            }
        } else {
            SourceError::parse(&path, e)
        }
    })
}

fn row(irq: u32, counts: Vec<u64>, actions: Vec<String>) -> IrqLine {
    IrqLine {
        irq: IrqId::Number(irq),
        counts,
        chip: None,
        hwirq: None,
        actions,
        description: None,
    }
}

fn read_file(path: &Path, cost: &mut ReadCost) -> Result<String, SourceError> {
    let text = super::read_text(path)?;
    cost.files += 1;
    cost.bytes += text.len();
    Ok(text)
}

/// Parse `per_cpu_count`: exactly `ncpus` comma-separated counts and a final newline.
pub fn parse_per_cpu_count(text: &str, ncpus: usize) -> Result<Vec<u64>, ParseError> {
    let Some(body) = text.strip_suffix('\n') else {
        return Err(ParseError::new(
            1,
            format!(
                "truncated: no final newline after {} bytes (one page holds the line)",
                text.len()
            ),
        ));
    };
    let mut counts = Vec::with_capacity(ncpus);
    if !body.is_empty() {
        // One pass over the bytes (1152 counts per IRQ, a few hundred IRQs per cycle):
        // str::split(',') compares each separator through memcmp, which took most of
        // the 1152-CPU cycle (`make bench`).
        let bytes = body.as_bytes();
        let bad = |i: usize, start: usize| {
            let end = bytes[start..]
                .iter()
                .position(|&b| b == b',')
                .map_or(bytes.len(), |n| start + n);
            ParseError::new(
                1,
                format!(
                    "count {i} {:?} is not a number",
                    clip(&String::from_utf8_lossy(&bytes[start..end]))
                ),
            )
        };
        let (mut value, mut digits, mut start) = (0u64, 0usize, 0usize);
        // The end of the line closes the last count as a comma closes the others.
        for (at, b) in bytes.iter().copied().chain([b',']).enumerate() {
            if b == b',' {
                if digits == 0 {
                    return Err(bad(counts.len(), start));
                }
                if counts.len() >= ncpus {
                    return Err(ParseError::new(
                        1,
                        format!("more than {ncpus} counts for {ncpus} possible CPUs"),
                    ));
                }
                counts.push(value);
                (value, digits, start) = (0, 0, at + 1);
                continue;
            }
            let d = b.wrapping_sub(b'0');
            digits += 1;
            value = match value
                .checked_mul(10)
                .and_then(|x| x.checked_add(u64::from(d)))
            {
                Some(v) if d <= 9 && digits <= 20 => v,
                _ => return Err(bad(counts.len(), start)),
            };
        }
    }
    if counts.len() != ncpus {
        return Err(ParseError::new(
            1,
            format!(
                "truncated: {} counts for {ncpus} possible CPUs",
                counts.len()
            ),
        ));
    }
    Ok(counts)
}

/// Parse `actions`: names joined by ",". An IRQ without a handler has an empty line.
pub fn parse_actions(text: &str) -> Vec<String> {
    text.trim_end_matches('\n')
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests;
