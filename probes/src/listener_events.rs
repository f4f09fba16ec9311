//! Per-socket sk_data_ready counts with SO_REUSEPORT group facts
//! (bpf/listener_events.bpf.c).
//!
//! One tp_btf program on sock:sk_data_ready (Linux 6.3) counts, per
//! socket inode, the wakeups of TCP listeners (one per connection entering
//! the accept queue) and UDP sockets (one per queued datagram on 6.18), and
//! records the socket's reuseport group id, its index in the group and the
//! group size. Sockets are keyed by inode so callers can join with
//! sock_diag's `idiag_inode`.
//!
//! Before 6.3 (no sock:sk_data_ready, commit 40e0b0908142) the same handler
//! runs from fentry on sock_def_readable(), chosen when the tracepoint does
//! not load, else from a kprobe on it (no BPF trampolines: arm64 before 6.0);
//! [`ListenerEventsProbe::hook`] says which one runs and
//! [`ListenerEventsProbe::refused`] why the ones tried before it did not.

use std::collections::BTreeMap;

use aya::maps::{Array, MapData, PerCpuArray, PerCpuHashMap};
use aya::Ebpf;

use crate::error::ProbeError;
use crate::loader::{self, map_read_error, map_write_error};
use crate::stats::ProgramStats;
use crate::Hooks;

const PROBE: &str = "listener_events";
const STATS_MAP: &str = "listener_stats";
const SLOTS_MAP: &str = "listener_slots";
/// LISTENER_SLOTS in bpf/listener_events.h.
const SLOTS: u32 = 256;
const PORTS_MAP: &str = "watched_ports";
const CONFIG_MAP: &str = "listener_config";
const PROGRAM: &str = "sk_data_ready";
const TRACEPOINT: &str = "sk_data_ready";
const FENTRY_PROGRAM: &str = "sk_data_ready_fentry";
const KPROBE_PROGRAM: &str = "sk_data_ready_kprobe";
/// The ->sk_data_ready() of TCP listeners and UDP sockets (sock_init_data()).
const FUNCTION: &str = "sock_def_readable";
/// `listener_value.index` when the socket was not found in the group
/// (LISTENER_NO_INDEX in bpf/listener_events.h).
const NO_INDEX: u32 = u32::MAX;
/// Most ports [`ListenerEventsProbe::set_watched_ports`] accepts.
pub const MAX_WATCHED_PORTS: usize = 1024;
/// LISTENER_WATCH_WORDS in bpf/listener_events.h: 64-bit words of the port
/// bitmap.
const WATCH_WORDS: u32 = 1024;

static OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/listener_events.bpf.o"));

/// Mirror of `struct listener_key` (bpf/listener_events.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ListenerKey {
    netns: u32,
    pad: u32,
    inode: u64,
}

/// Mirror of `struct listener_value` (bpf/listener_events.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ListenerValue {
    events: u64,
    last_jiffies: u64,
    facts_ns: u64,
    reuseport_id: u32,
    index: u32,
    num_socks: u16,
    port: u16,
    family: u16,
    protocol: u8,
    has_group: u8,
}

/// Mirror of `struct listener_slot` (bpf/listener_events.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ListenerSlot {
    key: ListenerKey,
    value: ListenerValue,
}

/// Mirror of `struct listener_config` (bpf/listener_events.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ListenerConfig {
    filter_ports: u32,
}

// SAFETY: repr(C), integer fields only, explicit padding; every bit
// pattern is valid.
unsafe impl aya::Pod for ListenerKey {}
unsafe impl aya::Pod for ListenerValue {}
unsafe impl aya::Pod for ListenerSlot {}
unsafe impl aya::Pod for ListenerConfig {}

const _: () = assert!(std::mem::size_of::<ListenerKey>() == 16);
const _: () = assert!(std::mem::size_of::<ListenerValue>() == 40);
const _: () = assert!(std::mem::size_of::<ListenerSlot>() == 56);
const _: () = assert!(std::mem::size_of::<ListenerConfig>() == 4);

/// sk_data_ready totals of one socket since the probe was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerEvents {
    /// Inode number of the socket's network namespace ("net:[N]").
    pub netns: u64,
    /// Socket inode: fstat(2) st_ino, sock_diag idiag_inode.
    pub inode: u64,
    /// sk_data_ready calls, summed over CPUs.
    pub events: u64,
    /// SO_REUSEPORT group id (sock_reuseport.reuseport_id; 0 is a valid
    /// id), None when the socket is in no group.
    pub reuseport_id: Option<u32>,
    /// The socket's slot in the group at its latest event; None when it is
    /// in no group or beyond the first 256 slots.
    pub index: Option<u32>,
    /// Live sockets in the group at the latest event; None without group.
    pub num_socks: Option<u32>,
    /// Local port, host order.
    pub port: u16,
    /// IPPROTO_TCP (6) or IPPROTO_UDP (17).
    pub protocol: u8,
    /// AF_INET (2) or AF_INET6 (10).
    pub family: u16,
}

/// Where the per-listener events come from on this kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerHook {
    /// tp_btf on sock:sk_data_ready (Linux 6.3+).
    Tracepoint,
    /// fentry on sock_def_readable(), the sk_data_ready of TCP listeners and
    /// UDP sockets, where the tracepoint is missing (BTF trampolines, 5.5+).
    FentrySockDefReadable,
    /// A kprobe on sock_def_readable(), where fentry is refused too (BTF but
    /// no trampolines: arm64 before 6.0); CO-RE reads instead of typed loads.
    KprobeSockDefReadable,
}

impl ListenerHook {
    /// In the order `load` tries them.
    pub const ALL: [ListenerHook; 3] = [
        Self::Tracepoint,
        Self::FentrySockDefReadable,
        Self::KprobeSockDefReadable,
    ];

    /// "tp_btf/sk_data_ready", "fentry/sock_def_readable" or
    /// "kprobe/sock_def_readable".
    pub fn name(self) -> &'static str {
        match self {
            Self::Tracepoint => "tp_btf/sk_data_ready",
            Self::FentrySockDefReadable => "fentry/sock_def_readable",
            Self::KprobeSockDefReadable => "kprobe/sock_def_readable",
        }
    }

    /// The short name a configuration forces it by: "tp_btf", "fentry" or
    /// "kprobe".
    pub fn key(self) -> &'static str {
        match self {
            Self::Tracepoint => "tp_btf",
            Self::FentrySockDefReadable => "fentry",
            Self::KprobeSockDefReadable => "kprobe",
        }
    }

    /// The hook of [`ListenerHook::key`] `key`.
    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.key() == key)
    }

    fn program(self) -> &'static str {
        match self {
            Self::Tracepoint => PROGRAM,
            Self::FentrySockDefReadable => FENTRY_PROGRAM,
            Self::KprobeSockDefReadable => KPROBE_PROGRAM,
        }
    }

    fn attach(self, ebpf: &mut Ebpf, btf: &aya::Btf) -> Result<Hooks, ProbeError> {
        let program = self.program();
        let attached = match self {
            Self::Tracepoint => {
                loader::attach_btf_tracepoints(ebpf, btf, PROBE, &[(program, TRACEPOINT)])
            }
            Self::FentrySockDefReadable => {
                loader::attach_fentries(ebpf, btf, PROBE, &[(program, FUNCTION)])
            }
            Self::KprobeSockDefReadable => {
                loader::attach_kprobes(ebpf, PROBE, &[(program, FUNCTION, false)])
            }
        };
        if attached.is_err() {
            loader::unload(ebpf, program);
        }
        attached
    }
}

/// The loaded and attached probe. Dropping it detaches the link and frees
/// the program and maps (nothing is pinned).
pub struct ListenerEventsProbe {
    slots: PerCpuArray<MapData, ListenerSlot>,
    stats: PerCpuHashMap<MapData, ListenerKey, ListenerValue>,
    ports: Array<MapData, u64>,
    /// The port bitmap as last written to `ports`, word by word.
    port_words: Vec<u64>,
    config: Array<MapData, ListenerConfig>,
    /// The link, until handed out by `take_hooks`.
    hooks: Option<Hooks>,
    hook: ListenerHook,
    /// The hooks tried before `hook`, with the kernel's reason for each.
    refused: Vec<(ListenerHook, String)>,
    // Owns the program; see SoftirqTimeProbe.
    ebpf: Ebpf,
}

impl ListenerEventsProbe {
    /// Loads the program through the verifier and attaches it: tp_btf on
    /// sock:sk_data_ready where the kernel has it, else fentry on
    /// sock_def_readable(), else a kprobe on it. Fails, with every reason,
    /// when none loads and attaches.
    pub fn load() -> Result<Self, ProbeError> {
        Self::load_with(None)
    }

    /// [`ListenerEventsProbe::load`], or with `Some(hook)` that hook only
    /// (tests, `[probes] listener_hook`): its refusal is the error.
    pub fn load_with(forced: Option<ListenerHook>) -> Result<Self, ProbeError> {
        let btf = loader::kernel_btf(PROBE)?;
        let mut ebpf = loader::open_object_with(PROBE, OBJECT, &btf, &[], &[])?;
        let candidates = match forced {
            Some(hook) => vec![hook],
            None => ListenerHook::ALL.to_vec(),
        };
        let mut refused = Vec::new();
        let mut chosen = None;
        for hook in candidates {
            match hook.attach(&mut ebpf, &btf) {
                Ok(hooks) => {
                    chosen = Some((hooks, hook));
                    break;
                }
                Err(err) => refused.push((hook, err)),
            }
        }
        let Some((hooks, hook)) = chosen else {
            let errno = refused.last().and_then(|(_, err)| err.errno());
            let (last, last_err) = refused.pop().expect("at least one hook was tried");
            if forced.is_some() {
                return Err(last_err);
            }
            let mut why: Vec<String> = refused
                .iter()
                .map(|(hook, err)| format!("{}: {err}", hook.name()))
                .collect();
            why.push(format!("{}: {last_err}", last.name()));
            return Err(ProbeError::Load {
                probe: PROBE,
                program: last.program(),
                errno,
                detail: format!("no hook for sk_data_ready: {}", why.join("; ")),
            });
        };
        let refused: Vec<(ListenerHook, String)> = refused
            .into_iter()
            .map(|(hook, err)| (hook, err.to_string()))
            .collect();
        if !refused.is_empty() {
            let why: Vec<String> = refused
                .iter()
                .map(|(hook, err)| format!("{}: {err}", hook.name()))
                .collect();
            log::info!(
                "probe {PROBE}: per-listener events from {} ({} unavailable: {})",
                hook.name(),
                refused.len(),
                why.join("; ")
            );
        } else if forced.is_some() {
            log::info!(
                "probe {PROBE}: per-listener events from {} (forced)",
                hook.name()
            );
        }
        let slots = loader::take_map(&mut ebpf, PROBE, SLOTS_MAP)?;
        let stats = loader::take_map(&mut ebpf, PROBE, STATS_MAP)?;
        let ports = loader::take_map(&mut ebpf, PROBE, PORTS_MAP)?;
        let config = loader::take_map(&mut ebpf, PROBE, CONFIG_MAP)?;
        Ok(Self {
            slots,
            stats,
            ports,
            port_words: vec![0; WATCH_WORDS as usize],
            config,
            hooks: Some(hooks),
            hook,
            refused,
            ebpf,
        })
    }

    /// The hook the events come from on this kernel.
    pub fn hook(&self) -> ListenerHook {
        self.hook
    }

    /// The hooks tried before [`ListenerEventsProbe::hook`] and why each was
    /// refused (empty when the first one tried attached).
    pub fn refused(&self) -> &[(ListenerHook, String)] {
        &self.refused
    }

    /// Restricts counting to sockets bound to these local ports; an empty
    /// slice counts every TCP listener and UDP socket (the default).
    pub fn set_watched_ports(&mut self, ports: &[u16]) -> Result<(), ProbeError> {
        if ports.len() > MAX_WATCHED_PORTS {
            return Err(ProbeError::Config {
                probe: PROBE,
                detail: format!("{} watched ports, at most {MAX_WATCHED_PORTS}", ports.len()),
            });
        }
        // Turn the filter off while the set changes so no port is missed.
        self.set_filter(false)?;
        let mut words = vec![0u64; self.port_words.len()];
        for &port in ports {
            words[usize::from(port / 64)] |= 1 << (port % 64);
        }
        for (index, (&new, old)) in words.iter().zip(self.port_words.iter_mut()).enumerate() {
            if new != *old {
                self.ports
                    .set(index as u32, new, 0)
                    .map_err(|err| map_write_error(PROBE, PORTS_MAP, &err))?;
                *old = new;
            }
        }
        self.set_filter(!ports.is_empty())
    }

    fn set_filter(&mut self, on: bool) -> Result<(), ProbeError> {
        let config = ListenerConfig {
            filter_ports: u32::from(on),
        };
        self.config
            .set(0, config, 0)
            .map_err(|err| map_write_error(PROBE, CONFIG_MAP, &err))
    }

    /// Totals per socket since `load`, sorted by (netns, inode). Events are
    /// summed over CPUs; the group facts are those of the latest event.
    pub fn read(&self) -> Result<Vec<ListenerEvents>, ProbeError> {
        // Per socket, every CPU's counters: from its slot on CPUs where it
        // holds one, from the hash elsewhere.
        let mut values: BTreeMap<ListenerKey, Vec<ListenerValue>> = BTreeMap::new();
        for index in 0..SLOTS {
            let per_cpu = self
                .slots
                .get(&index, 0)
                .map_err(|err| map_read_error(PROBE, SLOTS_MAP, &err))?;
            for slot in per_cpu.iter().filter(|slot| slot.key.pad != 0) {
                let key = ListenerKey { pad: 0, ..slot.key };
                values.entry(key).or_default().push(slot.value);
            }
        }
        for entry in self.stats.iter() {
            let (key, per_cpu) = entry.map_err(|err| map_read_error(PROBE, STATS_MAP, &err))?;
            values
                .entry(key)
                .or_default()
                .extend(per_cpu.iter().copied());
        }
        Ok(values
            .iter()
            .filter_map(|(key, values)| merge(key, values.iter()))
            .collect())
    }

    /// Hands the attachment to the caller (to switch it on and off); the
    /// probe keeps reading its maps either way.
    pub fn take_hooks(&mut self) -> Option<Hooks> {
        self.hooks.take()
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

/// Sums one socket's per-CPU values; the socket facts come from the CPU
/// with the latest event (highest jiffies; within one jiffy, the CPU that
/// saw the facts change last). None when no CPU saw an event.
fn merge<'a>(
    key: &ListenerKey,
    per_cpu: impl Iterator<Item = &'a ListenerValue>,
) -> Option<ListenerEvents> {
    let mut events = 0u64;
    let mut latest: Option<&ListenerValue> = None;
    for value in per_cpu {
        if value.events == 0 {
            continue;
        }
        events += value.events;
        if latest
            .is_none_or(|l| (value.last_jiffies, value.facts_ns) > (l.last_jiffies, l.facts_ns))
        {
            latest = Some(value);
        }
    }
    let latest = latest?;
    let group = latest.has_group != 0;
    Some(ListenerEvents {
        netns: u64::from(key.netns),
        inode: key.inode,
        events,
        reuseport_id: group.then_some(latest.reuseport_id),
        index: (group && latest.index != NO_INDEX).then_some(latest.index),
        num_socks: group.then_some(u32::from(latest.num_socks)),
        port: latest.port,
        protocol: latest.protocol,
        family: latest.family,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(events: u64, last_jiffies: u64, index: u32, has_group: u8) -> ListenerValue {
        ListenerValue {
            events,
            last_jiffies,
            facts_ns: 0,
            reuseport_id: 7,
            index,
            num_socks: 4,
            port: 5353,
            family: 2,
            protocol: 17,
            has_group,
        }
    }

    #[test]
    fn merge_sums_events_and_takes_latest_facts() {
        let key = ListenerKey {
            netns: 4026531840,
            pad: 0,
            inode: 99,
        };
        let values = [value(3, 10, 1, 1), value(0, 0, 0, 0), value(2, 20, 2, 1)];
        let merged = merge(&key, values.iter()).unwrap();
        assert_eq!(
            merged,
            ListenerEvents {
                netns: 4026531840,
                inode: 99,
                events: 5,
                reuseport_id: Some(7),
                index: Some(2),
                num_socks: Some(4),
                port: 5353,
                protocol: 17,
                family: 2,
            }
        );
    }

    #[test]
    fn merge_breaks_same_jiffy_ties_by_the_latest_facts_change() {
        let key = ListenerKey::default();
        // Both CPUs' latest events fell in jiffy 20; CPU 1 saw the group
        // change (index 3) after CPU 0 last saw it (index 1).
        let mut older = value(4, 20, 1, 1);
        older.facts_ns = 1_000;
        let mut newer = value(1, 20, 3, 1);
        newer.facts_ns = 2_000;
        let merged = merge(&key, [newer, older].iter()).unwrap();
        assert_eq!((merged.events, merged.index), (5, Some(3)));
        let merged = merge(&key, [older, newer].iter()).unwrap();
        assert_eq!(merged.index, Some(3));
        // A later jiffy wins over a later facts change.
        let mut latest = value(1, 21, 1, 1);
        latest.facts_ns = 500;
        let merged = merge(&key, [newer, latest].iter()).unwrap();
        assert_eq!(merged.index, Some(1));
    }

    #[test]
    fn merge_maps_missing_group_and_index_to_none() {
        let key = ListenerKey::default();
        let no_group = merge(&key, [value(1, 5, NO_INDEX, 0)].iter()).unwrap();
        assert_eq!(no_group.reuseport_id, None);
        assert_eq!(no_group.index, None);
        assert_eq!(no_group.num_socks, None);
        let not_found = merge(&key, [value(1, 5, NO_INDEX, 1)].iter()).unwrap();
        assert_eq!(not_found.reuseport_id, Some(7));
        assert_eq!(not_found.index, None);
        assert_eq!(merge(&key, [value(0, 0, 0, 0)].iter()), None);
    }
}
