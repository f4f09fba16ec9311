//! Exact SO_REUSEPORT selections (bpf/selection.bpf.c): per chosen socket, how often
//! reuseport_select_sock() picked it, how often that was the plain hash rule's slot,
//! the NULL returns it was the argument of, and per (socket, hash) pair the count.
//!
//! Two hooks, chosen by what the kernel accepts, never by version: fexit on
//! reuseport_select_sock (BPF trampolines, 5.5+: arguments and return value in one
//! program), else a kprobe + kretprobe pair. [`SelectionHook`] forces one (tests prove
//! each path). When the kernel refuses both, [`SelectionProbe::load`] fails with
//! [`ProbeError::Unavailable`] carrying both reasons. Sockets are keyed by (netns,
//! inode) like [`ListenerEvents`](crate::ListenerEvents), so both join the same
//! listener.

use std::collections::BTreeMap;

use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, PerCpuHashMap};
use aya::Ebpf;

use crate::error::ProbeError;
use crate::loader::{self, map_read_error};
use crate::stats::ProgramStats;
use crate::Hooks;

const PROBE: &str = "selection";
const STATS_MAP: &str = "selection_stats";
const HASHES_MAP: &str = "selection_hashes";
const TOTALS_MAP: &str = "selection_totals";
const FUNCTION: &str = "reuseport_select_sock";
const FEXIT_PROGRAM: &str = "select_fexit";
const KPROBE_PROGRAM: &str = "select_entry";
const KRETPROBE_PROGRAM: &str = "select_return";
/// SELECTION_NO_INDEX in bpf/selection.h.
const NO_INDEX: u32 = u32::MAX;

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/selection.bpf.o"));

/// Mirror of `struct selection_key` (bpf/selection.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SelectionKey {
    netns: u32,
    pad: u32,
    inode: u64,
}

/// Mirror of `struct selection_value` (bpf/selection.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SelectionValue {
    selections: u64,
    by_hash: u64,
    fallbacks: u64,
    non_syn: u64,
    last_ns: u64,
    reuseport_id: u32,
    index: u32,
    num_socks: u16,
    port: u16,
    family: u16,
    protocol: u8,
    has_group: u8,
}

/// Mirror of `struct selection_hash_key` (bpf/selection.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SelectionHashKey {
    netns: u32,
    hash: u32,
    inode: u64,
}

/// Mirror of `struct selection_totals` (bpf/selection.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SelectionTotals {
    unmatched: u64,
    overflow: u64,
}

// SAFETY: repr(C), integer fields only, explicit padding; every bit
// pattern is valid.
unsafe impl aya::Pod for SelectionKey {}
unsafe impl aya::Pod for SelectionValue {}
unsafe impl aya::Pod for SelectionHashKey {}
unsafe impl aya::Pod for SelectionTotals {}

const _: () = assert!(std::mem::size_of::<SelectionKey>() == 16);
const _: () = assert!(std::mem::size_of::<SelectionValue>() == 56);
const _: () = assert!(std::mem::size_of::<SelectionHashKey>() == 16);
const _: () = assert!(std::mem::size_of::<SelectionTotals>() == 16);

/// Which hook counts the selections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectionHook {
    /// fexit on reuseport_select_sock (BPF trampoline, BTF-typed, Linux 5.5+).
    Fexit,
    /// kprobe + kretprobe on reuseport_select_sock (kprobe PMU).
    Kprobe,
}

impl SelectionHook {
    /// "fexit/reuseport_select_sock" or "kprobe+kretprobe/reuseport_select_sock".
    pub fn name(self) -> &'static str {
        match self {
            Self::Fexit => "fexit/reuseport_select_sock",
            Self::Kprobe => "kprobe+kretprobe/reuseport_select_sock",
        }
    }
}

/// Which hooks [`SelectionProbe::load`] may try, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectionChoice {
    /// fexit, else kprobe + kretprobe.
    Auto,
    /// Only this one.
    Only(SelectionHook),
}

/// One socket's selections since the probe was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSelections {
    /// Inode number of the socket's network namespace ("net:[N]").
    pub netns: u64,
    /// Socket inode: fstat(2) st_ino, sock_diag idiag_inode.
    pub inode: u64,
    /// reuseport_select_sock() returned this socket, summed over CPUs.
    pub selections: u64,
    /// Of those, the ones where it was socks[reciprocal_scale(hash, num_socks)]:
    /// the kernel's plain hash rule (no BPF selector, no connected socket skipped).
    pub by_hash: u64,
    /// NULL returns with this socket as the argument: no selection, the caller kept
    /// the socket it was scoring.
    pub fallbacks: u64,
    /// Of `selections`, those for a TCP segment other than a SYN: segments that found
    /// no socket in ehash (a lookup racing with a request socket's swap for its child,
    /// or a connection that is gone) and that the listener answers with a reset.
    pub non_syn: u64,
    /// SO_REUSEPORT group id at the latest call; None without a group.
    pub reuseport_id: Option<u32>,
    /// The socket's slot as the hash rule found it (reciprocal_scale(hash,
    /// num_socks)) at its latest by-hash selection.
    pub index: Option<u32>,
    /// Live sockets in the group at the latest call; None without a group.
    pub num_socks: Option<u32>,
    /// Local port, host order.
    pub port: u16,
    /// IPPROTO_TCP (6) or IPPROTO_UDP (17).
    pub protocol: u8,
    /// AF_INET (2) or AF_INET6 (10).
    pub family: u16,
}

/// Selections of one socket by one hash value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HashSelections {
    pub netns: u64,
    pub inode: u64,
    /// The `hash` argument (udp_ehashfn() for UDP, inet_ehashfn() for TCP).
    pub hash: u32,
    pub selections: u64,
}

/// Everything the probe counted, as of one read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selections {
    /// The hook that counted (None only in a default value).
    pub hook: Option<SelectionHook>,
    /// Per socket, sorted by (netns, inode).
    pub sockets: Vec<SocketSelections>,
    /// Per (socket, hash), sorted by (netns, inode, hash). An LRU map: pairs unused
    /// for long give way to new ones (the per-socket totals keep counting).
    pub hashes: Vec<HashSelections>,
    /// kretprobe returns that matched no stashed entry, or chose a socket outside
    /// the argument's group (kprobe path only): not counted.
    pub unmatched: u64,
}

/// The loaded and attached probe. Dropping it detaches and frees everything.
pub struct SelectionProbe {
    stats: PerCpuHashMap<MapData, SelectionKey, SelectionValue>,
    hashes: BpfHashMap<MapData, SelectionHashKey, u64>,
    totals: PerCpuArray<MapData, SelectionTotals>,
    hooks: Option<Hooks>,
    hook: SelectionHook,
    /// Why the hooks tried before `hook` were refused (empty when it was the first).
    refused: Vec<String>,
    // Owns the programs; see SoftirqTimeProbe.
    ebpf: Ebpf,
}

impl SelectionProbe {
    /// Loads and attaches the first hook of `choice` the kernel accepts. Fails with
    /// [`ProbeError::Unavailable`], naming each refusal, when none does (e.g. a kernel
    /// that refuses trampolines and has no kprobe PMU).
    pub fn load(choice: SelectionChoice) -> Result<Self, ProbeError> {
        let hooks: &[SelectionHook] = match choice {
            SelectionChoice::Auto => &[SelectionHook::Fexit, SelectionHook::Kprobe],
            SelectionChoice::Only(SelectionHook::Fexit) => &[SelectionHook::Fexit],
            SelectionChoice::Only(SelectionHook::Kprobe) => &[SelectionHook::Kprobe],
        };
        let mut refused = Vec::new();
        for &hook in hooks {
            match Self::load_with(hook) {
                Ok(mut probe) => {
                    if !refused.is_empty() {
                        log::info!(
                            "probe {PROBE}: selections from {} ({})",
                            hook.name(),
                            refused.join("; ")
                        );
                    }
                    probe.refused = refused;
                    return Ok(probe);
                }
                // Not a kernel refusal: the object itself is unusable.
                Err(err @ (ProbeError::NotBuilt { .. } | ProbeError::Missing { .. })) => {
                    return Err(err)
                }
                Err(err) => refused.push(format!("{}: {err}", hook.name())),
            }
        }
        Err(ProbeError::Unavailable {
            probe: PROBE,
            detail: refused.join("; "),
        })
    }

    fn load_with(hook: SelectionHook) -> Result<Self, ProbeError> {
        let (mut ebpf, hooks) = match hook {
            SelectionHook::Fexit => {
                let btf = loader::kernel_btf(PROBE)?;
                let mut ebpf = loader::open_object_with(PROBE, OBJECT, &btf, &[], &[])?;
                let hooks =
                    loader::attach_fexits(&mut ebpf, &btf, PROBE, &[(FEXIT_PROGRAM, FUNCTION)])?;
                (ebpf, hooks)
            }
            SelectionHook::Kprobe => {
                // CO-RE relocations need the kernel BTF here too.
                let btf = loader::kernel_btf(PROBE)?;
                let mut ebpf = loader::open_object_with(PROBE, OBJECT, &btf, &[], &[])?;
                let hooks = loader::attach_kprobes(
                    &mut ebpf,
                    PROBE,
                    &[
                        (KPROBE_PROGRAM, FUNCTION, false),
                        (KRETPROBE_PROGRAM, FUNCTION, true),
                    ],
                )?;
                (ebpf, hooks)
            }
        };
        let stats = loader::take_map(&mut ebpf, PROBE, STATS_MAP)?;
        let hashes = loader::take_map(&mut ebpf, PROBE, HASHES_MAP)?;
        let totals = loader::take_map(&mut ebpf, PROBE, TOTALS_MAP)?;
        Ok(Self {
            stats,
            hashes,
            totals,
            hooks: Some(hooks),
            hook,
            refused: Vec::new(),
            ebpf,
        })
    }

    /// The hook that counts on this kernel.
    pub fn hook(&self) -> SelectionHook {
        self.hook
    }

    /// Why the hooks preferred to [`Self::hook`] were refused.
    pub fn refused(&self) -> &[String] {
        &self.refused
    }

    /// Totals since `load`.
    pub fn read(&self) -> Result<Selections, ProbeError> {
        let mut per_socket: BTreeMap<SelectionKey, Vec<SelectionValue>> = BTreeMap::new();
        for entry in self.stats.iter() {
            let (key, per_cpu) = entry.map_err(|err| map_read_error(PROBE, STATS_MAP, &err))?;
            per_socket
                .entry(key)
                .or_default()
                .extend(per_cpu.iter().copied());
        }
        let mut hashes = Vec::new();
        for entry in self.hashes.iter() {
            let (key, count) = entry.map_err(|err| map_read_error(PROBE, HASHES_MAP, &err))?;
            if count > 0 {
                hashes.push(hash_selections(&key, count));
            }
        }
        hashes.sort();
        let totals = self
            .totals
            .get(&0, 0)
            .map_err(|err| map_read_error(PROBE, TOTALS_MAP, &err))?;
        Ok(Selections {
            hook: Some(self.hook),
            sockets: per_socket
                .iter()
                .filter_map(|(key, values)| merge(key, values.iter()))
                .collect(),
            hashes,
            unmatched: totals.iter().map(|t| t.unmatched).sum(),
        })
    }

    /// Hands the attachment to the caller (to switch it on and off); the probe keeps
    /// reading its maps either way.
    pub fn take_hooks(&mut self) -> Option<Hooks> {
        self.hooks.take()
    }

    /// Run count and time of the programs (non-zero only while run-time stats are on).
    pub fn program_stats(&self) -> Result<Vec<ProgramStats>, ProbeError> {
        loader::program_stats(&self.ebpf, PROBE)
    }
}

fn hash_selections(key: &SelectionHashKey, selections: u64) -> HashSelections {
    HashSelections {
        netns: u64::from(key.netns),
        inode: key.inode,
        hash: key.hash,
        selections,
    }
}

/// Sums one socket's per-CPU values; the facts come from the CPU with the latest
/// call, the index from the latest CPU that saw a by-hash selection. None when no CPU
/// counted anything.
fn merge<'a>(
    key: &SelectionKey,
    per_cpu: impl Iterator<Item = &'a SelectionValue>,
) -> Option<SocketSelections> {
    let (mut selections, mut by_hash, mut fallbacks, mut non_syn) = (0u64, 0u64, 0u64, 0u64);
    let mut latest: Option<&SelectionValue> = None;
    let mut indexed: Option<&SelectionValue> = None;
    for value in per_cpu {
        if value.selections == 0 && value.fallbacks == 0 {
            continue;
        }
        selections += value.selections;
        by_hash += value.by_hash;
        fallbacks += value.fallbacks;
        non_syn += value.non_syn;
        if latest.is_none_or(|l| value.last_ns > l.last_ns) {
            latest = Some(value);
        }
        if value.by_hash > 0
            && value.index != NO_INDEX
            && indexed.is_none_or(|l| value.last_ns > l.last_ns)
        {
            indexed = Some(value);
        }
    }
    let latest = latest?;
    let group = latest.has_group != 0;
    Some(SocketSelections {
        netns: u64::from(key.netns),
        inode: key.inode,
        selections,
        by_hash,
        fallbacks,
        non_syn,
        reuseport_id: group.then_some(latest.reuseport_id),
        index: indexed.map(|v| v.index),
        num_socks: group.then_some(u32::from(latest.num_socks)),
        port: latest.port,
        protocol: latest.protocol,
        family: latest.family,
    })
}

/// The slot the kernel's hash rule picks: reciprocal_scale(hash, num_socks)
/// (include/linux/kernel.h, used by reuseport_select_sock()).
pub fn reciprocal_scale(hash: u32, num_socks: u32) -> u32 {
    ((u64::from(hash) * u64::from(num_socks)) >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(selections: u64, by_hash: u64, last_ns: u64, index: u32) -> SelectionValue {
        SelectionValue {
            selections,
            by_hash,
            fallbacks: 0,
            non_syn: 0,
            last_ns,
            reuseport_id: 3,
            index,
            num_socks: 4,
            port: 7000,
            family: 2,
            protocol: 17,
            has_group: 1,
        }
    }

    #[test]
    fn merge_sums_cpus_and_takes_the_latest_facts() {
        let key = SelectionKey {
            netns: 4026531840,
            pad: 0,
            inode: 42,
        };
        let mut fallback_only = value(0, 0, 50, NO_INDEX);
        fallback_only.fallbacks = 2;
        fallback_only.num_socks = 5;
        let mut tcp_race = value(5, 4, 40, 2);
        tcp_race.non_syn = 1;
        let values = [
            value(10, 10, 30, 2),
            value(0, 0, 0, 0), // a CPU that never counted
            tcp_race,
            fallback_only,
        ];
        let merged = merge(&key, values.iter()).unwrap();
        assert_eq!(
            merged,
            SocketSelections {
                netns: 4026531840,
                inode: 42,
                selections: 15,
                by_hash: 14,
                fallbacks: 2,
                non_syn: 1,
                reuseport_id: Some(3),
                // From the latest CPU with a by-hash selection, not the fallback's.
                index: Some(2),
                // From the latest call.
                num_socks: Some(5),
                port: 7000,
                protocol: 17,
                family: 2,
            }
        );
    }

    #[test]
    fn merge_without_group_or_by_hash_selection_has_no_index() {
        let key = SelectionKey::default();
        let mut no_group = value(1, 0, 5, NO_INDEX);
        no_group.has_group = 0;
        let merged = merge(&key, [no_group].iter()).unwrap();
        assert_eq!(
            (merged.reuseport_id, merged.index, merged.num_socks),
            (None, None, None)
        );
        // A BPF selector chose it: counted, but no slot by the hash rule.
        let merged = merge(&key, [value(3, 0, 5, NO_INDEX)].iter()).unwrap();
        assert_eq!(
            (merged.selections, merged.by_hash, merged.index),
            (3, 0, None)
        );
        assert_eq!(merge(&key, [value(0, 0, 0, 0)].iter()), None);
    }

    #[test]
    fn reciprocal_scale_matches_the_kernel() {
        // (u64)hash * n >> 32: the top of the 32-bit range maps to the last slot.
        assert_eq!(reciprocal_scale(0, 4), 0);
        assert_eq!(reciprocal_scale(0x3fff_ffff, 4), 0);
        assert_eq!(reciprocal_scale(0x4000_0000, 4), 1);
        assert_eq!(reciprocal_scale(0xbfff_ffff, 4), 2);
        assert_eq!(reciprocal_scale(u32::MAX, 4), 3);
        assert_eq!(reciprocal_scale(u32::MAX, 1), 0);
        assert_eq!(reciprocal_scale(u32::MAX, 0), 0);
    }

    #[test]
    fn object_loads_before_5_12() {
        if !crate::probes_built() {
            return;
        }
        // The hash counts are atomic adds; BPF_FETCH forms (imm != 0) are refused
        // before 5.12 and the 5.10 guests must load this object.
        let ops = crate::rx::tests::atomic_ops(OBJECT);
        assert!(
            !ops.is_empty(),
            "selection.bpf.o counts hashes with atomic adds"
        );
        assert!(ops.iter().all(|&imm| imm == 0), "{ops:x?}");
    }

    #[test]
    fn hash_keys_decode_into_wide_ids() {
        let key = SelectionHashKey {
            netns: 4026531993,
            hash: 0xdead_beef,
            inode: 1 << 40,
        };
        assert_eq!(
            hash_selections(&key, 9),
            HashSelections {
                netns: 4026531993,
                inode: 1 << 40,
                hash: 0xdead_beef,
                selections: 9,
            }
        );
    }
}
