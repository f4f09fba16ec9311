//! /proc/irq/N/smp_affinity_list and effective_affinity_list (read only; never written).

use serde::Serialize;

use super::cpus::parse_cpulist;
use super::HostRoot;
use crate::error::SourceError;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IrqAffinity {
    pub irq: u32,
    /// CPUs the IRQ may be delivered to (smp_affinity_list).
    pub allowed: Vec<u32>,
    /// CPUs the interrupt controller actually targets (effective_affinity_list, Linux
    /// 4.15+, kernel/irq/proc.c); None where the kernel or chip does not provide it.
    pub effective: Option<Vec<u32>>,
}

pub fn read(root: &HostRoot, irq: u32) -> Result<IrqAffinity, SourceError> {
    let dir = root.proc_path("irq").join(irq.to_string());
    let allowed = super::read_parsed(&dir.join("smp_affinity_list"), parse_cpulist)?;
    let effective = match super::read_parsed(&dir.join("effective_affinity_list"), parse_cpulist) {
        Ok(cpus) => Some(cpus),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e),
    };
    Ok(IrqAffinity {
        irq,
        allowed,
        effective,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_irq_affinity_is_within_online_cpus() {
        let root = HostRoot::default();
        let online = super::super::cpus::read_online(&root).unwrap();
        // Any numbered IRQ directory will do; pick the first.
        let first = std::fs::read_dir("/proc/irq")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .min()
            .expect("a numbered IRQ");
        let aff = read(&root, first).unwrap();
        assert!(!aff.allowed.is_empty());
        if let Some(eff) = &aff.effective {
            assert!(eff.iter().all(|c| online.contains(c)), "{aff:?}");
        }
    }

    #[test]
    fn missing_irq_is_not_found() {
        let err = read(&HostRoot::default(), 999_999).unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }
}
