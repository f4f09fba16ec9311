//! Packet drops with reasons and TCP resets sent, for watched ports
//! (bpf/drops.bpf.c: skb:kfree_skb and tcp:tcp_send_reset).
//!
//! Reasons are the kernel's enum values (`enum skb_drop_reason`,
//! `enum sk_rst_reason`); their names are read from the running kernel's
//! BTF at load time, because the numbering changes between versions.

use std::collections::BTreeMap;

use aya::maps::{HashMap, MapData, PerCpuHashMap};
use aya::Ebpf;

use crate::btf_enum;
use crate::error::ProbeError;
use crate::loader::{self, map_read_error, map_write_error};
use crate::stats::ProgramStats;
use crate::Hooks;

const PROBE: &str = "drops";
const WATCHED_MAP: &str = "watched";
const DROPS_MAP: &str = "drop_counts";
const RESETS_MAP: &str = "reset_counts";
const PROGRAMS: [(&str, &str); 2] = [
    ("drops_kfree_skb", "kfree_skb"),
    ("drops_tcp_reset", "tcp_send_reset"),
];
/// DROPS_NO_REASON in bpf/drops.h.
const NO_REASON: u32 = u32::MAX;
/// Capacity of the `watched` map.
pub const MAX_WATCHED_DROPS: usize = 1024;

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/drops.bpf.o"));

/// Mirror of `struct drops_watch_key` (bpf/drops.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DropsWatchKey {
    protocol: u8,
    pad: u8,
    port: u16,
}

/// Mirror of `struct drop_key` (bpf/drops.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DropKey {
    protocol: u8,
    pad: u8,
    port: u16,
    reason: u32,
}

/// Mirror of `struct reset_key` (bpf/drops.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ResetKey {
    port: u16,
    pad: u16,
    reason: u32,
}

// SAFETY: repr(C), integer fields only, explicit padding; every bit
// pattern is valid.
unsafe impl aya::Pod for DropsWatchKey {}
unsafe impl aya::Pod for DropKey {}
unsafe impl aya::Pod for ResetKey {}

const _: () = assert!(std::mem::size_of::<DropsWatchKey>() == 4);
const _: () = assert!(std::mem::size_of::<DropKey>() == 8);
const _: () = assert!(std::mem::size_of::<ResetKey>() == 8);

/// Drops of packets to one watched port for one reason, since load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropCount {
    /// IPPROTO_TCP (6) or IPPROTO_UDP (17).
    pub protocol: u8,
    /// Destination port of the dropped packets.
    pub port: u16,
    /// `enum skb_drop_reason` value; None when the kernel passes no reason
    /// (before 5.17).
    pub reason: Option<u32>,
    /// The reason's name from the kernel's BTF without the
    /// "SKB_DROP_REASON_" prefix ("NO_SOCKET"); None when unknown.
    pub reason_name: Option<String>,
    pub count: u64,
}

/// TCP resets sent from one watched local port for one reason, since load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetCount {
    pub port: u16,
    /// `enum sk_rst_reason` value; None before Linux 6.10.
    pub reason: Option<u32>,
    /// The reason's name from the kernel's BTF without the "SK_RST_REASON_"
    /// prefix ("NO_SOCKET"); None when unknown.
    pub reason_name: Option<String>,
    pub count: u64,
}

/// The loaded and attached probe. Dropping it detaches both links and frees
/// the programs and maps (nothing is pinned).
pub struct DropsProbe {
    watched: HashMap<MapData, DropsWatchKey, u8>,
    drops: PerCpuHashMap<MapData, DropKey, u64>,
    resets: PerCpuHashMap<MapData, ResetKey, u64>,
    drop_reasons: BTreeMap<i64, String>,
    reset_reasons: BTreeMap<i64, String>,
    _hooks: Hooks,
    // Owns the programs; see SoftirqTimeProbe.
    ebpf: Ebpf,
}

impl DropsProbe {
    /// Loads and attaches both programs. Nothing is counted until
    /// [`DropsProbe::set_watched`] names ports.
    pub fn load() -> Result<Self, ProbeError> {
        let mut ebpf = loader::open_object(PROBE, OBJECT)?;
        let hooks = loader::attach_raw_tracepoints(&mut ebpf, PROBE, &PROGRAMS)?;
        // Names are a convenience: without BTF the numbers still count.
        let names = |name: &str, prefix: &str| -> BTreeMap<i64, String> {
            match btf_enum::kernel_enum(name) {
                Ok(values) => values
                    .into_iter()
                    .map(|(value, n)| (value, n.strip_prefix(prefix).unwrap_or(&n).to_owned()))
                    .collect(),
                Err(err) => {
                    log::debug!("drops: reading enum {name} from BTF: {err}");
                    BTreeMap::new()
                }
            }
        };
        Ok(Self {
            watched: loader::take_map(&mut ebpf, PROBE, WATCHED_MAP)?,
            drops: loader::take_map(&mut ebpf, PROBE, DROPS_MAP)?,
            resets: loader::take_map(&mut ebpf, PROBE, RESETS_MAP)?,
            drop_reasons: names("skb_drop_reason", "SKB_DROP_REASON_"),
            reset_reasons: names("sk_rst_reason", "SK_RST_REASON_"),
            _hooks: hooks,
            ebpf,
        })
    }

    /// Replaces the watched (protocol, port) pairs: protocol IPPROTO_TCP (6)
    /// or IPPROTO_UDP (17). Resets are counted for watched TCP ports.
    pub fn set_watched(&mut self, watched: &[(u8, u16)]) -> Result<(), ProbeError> {
        if watched.len() > MAX_WATCHED_DROPS {
            return Err(ProbeError::Config {
                probe: PROBE,
                detail: format!(
                    "{} watched ports, at most {MAX_WATCHED_DROPS}",
                    watched.len()
                ),
            });
        }
        let wanted: Vec<DropsWatchKey> = watched
            .iter()
            .map(|&(protocol, port)| DropsWatchKey {
                protocol,
                pad: 0,
                port,
            })
            .collect();
        let stale: Vec<DropsWatchKey> = self
            .watched
            .keys()
            .filter_map(Result::ok)
            .filter(|key| !wanted.contains(key))
            .collect();
        for key in stale {
            self.watched
                .remove(&key)
                .map_err(|err| map_write_error(PROBE, WATCHED_MAP, &err))?;
        }
        for key in &wanted {
            self.watched
                .insert(key, 1, 0)
                .map_err(|err| map_write_error(PROBE, WATCHED_MAP, &err))?;
        }
        Ok(())
    }

    /// Drop counts per (protocol, port, reason) since `load`, summed over
    /// CPUs, sorted by (protocol, port, reason).
    pub fn read_drops(&self) -> Result<Vec<DropCount>, ProbeError> {
        let mut drops = Vec::new();
        for entry in self.drops.iter() {
            let (key, per_cpu) = entry.map_err(|err| map_read_error(PROBE, DROPS_MAP, &err))?;
            let reason = (key.reason != NO_REASON).then_some(key.reason);
            drops.push(DropCount {
                protocol: key.protocol,
                port: key.port,
                reason,
                reason_name: reason_name(&self.drop_reasons, reason),
                count: per_cpu.iter().sum(),
            });
        }
        drops.sort_by_key(|d| (d.protocol, d.port, d.reason));
        Ok(drops)
    }

    /// Reset counts per (local port, reason) since `load`, summed over
    /// CPUs, sorted by (port, reason).
    pub fn read_resets(&self) -> Result<Vec<ResetCount>, ProbeError> {
        let mut resets = Vec::new();
        for entry in self.resets.iter() {
            let (key, per_cpu) = entry.map_err(|err| map_read_error(PROBE, RESETS_MAP, &err))?;
            let reason = (key.reason != NO_REASON).then_some(key.reason);
            resets.push(ResetCount {
                port: key.port,
                reason,
                reason_name: reason_name(&self.reset_reasons, reason),
                count: per_cpu.iter().sum(),
            });
        }
        resets.sort_by_key(|r| (r.port, r.reason));
        Ok(resets)
    }

    /// Run count and time per program (non-zero only while the
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

fn reason_name(names: &BTreeMap<i64, String>, reason: Option<u32>) -> Option<String> {
    names.get(&i64::from(reason?)).cloned()
}
