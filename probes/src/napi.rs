//! Per-CPU NAPI poll pressure (bpf/napi.bpf.c): polls, packets handled and
//! polls that used their whole budget, per NAPI instance (napi:napi_poll).

use aya::maps::{MapData, PerCpuHashMap};
use aya::Ebpf;

use crate::cpus;
use crate::error::ProbeError;
use crate::loader::{self, map_read_error};
use crate::stats::ProgramStats;
use crate::Hooks;

const PROBE: &str = "napi";
const STATS_MAP: &str = "napi_stats";
const PROGRAM: &str = "napi_poll";
const TRACEPOINT: &str = "napi_poll";

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/napi.bpf.o"));

/// Mirror of `struct napi_key` (bpf/napi.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct NapiKey {
    napi_id: u32,
    ifindex: u32,
    netns: u32,
    pad: u32,
}

/// Mirror of `struct napi_value` (bpf/napi.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct NapiValue {
    polls: u64,
    work_total: u64,
    budget_exhausted: u64,
}

// SAFETY: repr(C), integer fields only, explicit padding; every bit
// pattern is valid.
unsafe impl aya::Pod for NapiKey {}
unsafe impl aya::Pod for NapiValue {}

const _: () = assert!(std::mem::size_of::<NapiKey>() == 16);
const _: () = assert!(std::mem::size_of::<NapiValue>() == 24);

/// NAPI totals of one instance on one CPU since the probe was loaded.
/// The per-CPU backlog of netif_rx() (loopback, veth without NAPI, RPS) is
/// napi_id 0, ifindex 0, netns 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NapiStats {
    /// napi->napi_id (the id SO_INCOMING_NAPI_ID reports); 0 when unhashed.
    pub napi_id: u32,
    /// Device of the instance; 0 without device.
    pub ifindex: u32,
    /// Inode of the device's network namespace; 0 without device.
    pub netns: u64,
    /// CPU that ran the polls.
    pub cpu: u32,
    pub polls: u64,
    /// Packets handled, summed over polls.
    pub work_total: u64,
    /// Polls that did `work >= budget` (the instance stays scheduled).
    pub budget_exhausted: u64,
}

/// The loaded and attached probe. Dropping it detaches the link and frees
/// the program and map (nothing is pinned).
pub struct NapiProbe {
    stats: PerCpuHashMap<MapData, NapiKey, NapiValue>,
    possible_cpus: Vec<u32>,
    _hooks: Hooks,
    // Owns the program; see SoftirqTimeProbe.
    ebpf: Ebpf,
}

impl NapiProbe {
    /// Loads the program through the verifier and attaches it.
    pub fn load() -> Result<Self, ProbeError> {
        let mut ebpf = loader::open_object(PROBE, OBJECT)?;
        let hooks = loader::attach_raw_tracepoints(&mut ebpf, PROBE, &[(PROGRAM, TRACEPOINT)])?;
        let stats = loader::take_map(&mut ebpf, PROBE, STATS_MAP)?;
        let possible_cpus = cpus::possible_cpus().map_err(|err| ProbeError::MapRead {
            probe: PROBE,
            map: STATS_MAP,
            detail: format!("reading the possible CPU list: {err}"),
        })?;
        Ok(Self {
            stats,
            possible_cpus,
            _hooks: hooks,
            ebpf,
        })
    }

    /// One row per (instance, CPU) that polled since `load`, sorted by
    /// (netns, ifindex, napi_id, cpu).
    pub fn read(&self) -> Result<Vec<NapiStats>, ProbeError> {
        let mut rows = Vec::new();
        for entry in self.stats.iter() {
            let (key, per_cpu) = entry.map_err(|err| map_read_error(PROBE, STATS_MAP, &err))?;
            if per_cpu.len() != self.possible_cpus.len() {
                return Err(ProbeError::MapRead {
                    probe: PROBE,
                    map: STATS_MAP,
                    detail: format!(
                        "{} per-CPU values for {} possible CPUs",
                        per_cpu.len(),
                        self.possible_cpus.len()
                    ),
                });
            }
            for (&cpu, value) in self.possible_cpus.iter().zip(per_cpu.iter()) {
                if value.polls == 0 {
                    continue;
                }
                rows.push(NapiStats {
                    napi_id: key.napi_id,
                    ifindex: key.ifindex,
                    netns: u64::from(key.netns),
                    cpu,
                    polls: value.polls,
                    work_total: value.work_total,
                    budget_exhausted: value.budget_exhausted,
                });
            }
        }
        rows.sort_by_key(|r| (r.netns, r.ifindex, r.napi_id, r.cpu));
        Ok(rows)
    }

    /// Run count and time of the program (non-zero only while the
    /// administrator enabled kernel.bpf_stats_enabled).
    pub fn program_stats(&self) -> Result<Vec<ProgramStats>, ProbeError> {
        loader::program_stats(&self.ebpf, PROBE)
    }

    /// Kernel ids of the probe's programs.
    pub fn program_ids(&self) -> Result<Vec<u32>, ProbeError> {
        loader::kernel_ids(&self.ebpf, PROBE).map(|(programs, _)| programs)
    }

    /// Kernel ids of the maps the probe's programs use.
    pub fn map_ids(&self) -> Result<Vec<u32>, ProbeError> {
        loader::kernel_ids(&self.ebpf, PROBE).map(|(_, maps)| maps)
    }
}
