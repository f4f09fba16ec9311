//! Per-CPU NET_RX / NET_TX softirq count and time (bpf/softirq_time.bpf.c).
//!
//! Two raw tracepoint programs on irq:softirq_entry / irq:softirq_exit
//! accumulate into a per-CPU array; `read` returns the totals since `load`.
//! Callers compute rates from deltas between reads.

use aya::maps::{MapData, PerCpuArray};
use aya::Ebpf;

use crate::error::{error_chain_message, ProbeError};
use crate::{cpus, loader, Hooks};

const PROBE: &str = "softirq_time";
const STATS_MAP: &str = "softirq_stats";
/// (program, raw tracepoint) pairs; raw tracepoints are named without category.
const PROGRAMS: [(&str, &str); 2] = [
    ("softirq_exit", "softirq_exit"),
    ("softirq_entry", "softirq_entry"),
];

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/softirq_time.bpf.o"));

/// Mirror of `struct softirq_time_stats` (bpf/softirq_time.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SoftirqTimeStats {
    net_rx_count: u64,
    net_rx_ns: u64,
    net_tx_count: u64,
    net_tx_ns: u64,
}

// SAFETY: repr(C), only u64 fields, no padding; every bit pattern is valid.
unsafe impl aya::Pod for SoftirqTimeStats {}

const _: () = assert!(std::mem::size_of::<SoftirqTimeStats>() == 32);

/// NET_RX / NET_TX softirq totals of one CPU since the probe was loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuSoftirqTime {
    pub cpu: u32,
    /// Completed NET_RX softirq runs.
    pub net_rx_count: u64,
    /// Time spent in them, in nanoseconds.
    pub net_rx_ns: u64,
    /// Completed NET_TX softirq runs.
    pub net_tx_count: u64,
    /// Time spent in them, in nanoseconds.
    pub net_tx_ns: u64,
}

/// The loaded and attached probe. Dropping it detaches both links and frees
/// the programs and maps (nothing is pinned).
pub struct SoftirqTimeProbe {
    stats: PerCpuArray<MapData, SoftirqTimeStats>,
    possible_cpus: Vec<u32>,
    /// The links, until handed out by `take_hooks`.
    hooks: Option<Hooks>,
    // Owns the programs: dropping it (and the hooks) closes the program fds;
    // `stats` holds the last map fd.
    ebpf: Ebpf,
}

impl SoftirqTimeProbe {
    /// Loads the programs through the verifier and attaches them.
    pub fn load() -> Result<Self, ProbeError> {
        let mut ebpf = loader::open_object(PROBE, OBJECT)?;
        let hooks = loader::attach_raw_tracepoints(&mut ebpf, PROBE, &PROGRAMS)?;
        let map = ebpf.take_map(STATS_MAP).ok_or(ProbeError::Missing {
            probe: PROBE,
            kind: "map",
            name: STATS_MAP,
        })?;
        let stats = PerCpuArray::try_from(map).map_err(|err| ProbeError::MapRead {
            probe: PROBE,
            map: STATS_MAP,
            detail: error_chain_message(&err).text,
        })?;
        let possible_cpus = cpus::possible_cpus().map_err(|err| ProbeError::MapRead {
            probe: PROBE,
            map: STATS_MAP,
            detail: format!("reading the possible CPU list: {err}"),
        })?;
        Ok(Self {
            stats,
            possible_cpus,
            hooks: Some(hooks),
            ebpf,
        })
    }

    /// Totals per possible CPU since `load`, in ascending CPU order.
    pub fn read(&self) -> Result<Vec<CpuSoftirqTime>, ProbeError> {
        let values = self.stats.get(&0, 0).map_err(|err| ProbeError::MapRead {
            probe: PROBE,
            map: STATS_MAP,
            detail: error_chain_message(&err).text,
        })?;
        if values.len() != self.possible_cpus.len() {
            return Err(ProbeError::MapRead {
                probe: PROBE,
                map: STATS_MAP,
                detail: format!(
                    "{} per-CPU values for {} possible CPUs",
                    values.len(),
                    self.possible_cpus.len()
                ),
            });
        }
        Ok(self
            .possible_cpus
            .iter()
            .zip(values.iter())
            .map(|(&cpu, stats)| CpuSoftirqTime {
                cpu,
                net_rx_count: stats.net_rx_count,
                net_rx_ns: stats.net_rx_ns,
                net_tx_count: stats.net_tx_count,
                net_tx_ns: stats.net_tx_ns,
            })
            .collect())
    }

    /// Hands the attachment to the caller (to switch it on and off); the
    /// probe keeps reading its maps either way.
    pub fn take_hooks(&mut self) -> Option<Hooks> {
        self.hooks.take()
    }

    /// Run count and time per program (non-zero only while the
    /// administrator enabled kernel.bpf_stats_enabled).
    pub fn program_stats(&self) -> Result<Vec<crate::ProgramStats>, ProbeError> {
        loader::program_stats(&self.ebpf, PROBE)
    }

    /// Kernel ids of the probe's programs, for health reporting and for
    /// checking that nothing outlives the probe.
    pub fn program_ids(&self) -> Result<Vec<u32>, ProbeError> {
        loader::kernel_ids(&self.ebpf, PROBE).map(|(programs, _)| programs)
    }

    /// Kernel ids of the maps the probe's programs use.
    pub fn map_ids(&self) -> Result<Vec<u32>, ProbeError> {
        loader::kernel_ids(&self.ebpf, PROBE).map(|(_, maps)| maps)
    }
}
