//! Per-RX-queue packet counts, a flow table for watched ports and ingress
//! age (kernel receive to application read) histograms (bpf/rx.bpf.c).
//!
//! - Every packet entering `__netif_receive_skb_core` (tracepoint
//!   net:netif_receive_skb) is counted per (netns, ifindex, RX queue).
//! - Packets to watched (protocol, local port) pairs are parsed (IPv4 with
//!   options, IPv6 through up to 6 extension headers; a fragmented datagram
//!   counts once, by its first fragment; UDP/TCP) into an LRU flow table, sampled 1 in
//!   `sample_every` (default: every packet), and 1 in `age_sample_every` of
//!   those is timestamped (default 1 in 16: ages are a sample).
//! - The timestamp is consumed when the application reads the packet: TCP
//!   through skb:skb_copy_datagram_iovec, UDP (which copies linear skbs
//!   without reaching skb_copy_datagram_iovec) through one of three hooks
//!   ([`ReadHook`], see bpf/rx.bpf.c): fentry on skb_consume_udp(), which
//!   runs once per datagram read; a kprobe on it where fentry is refused;
//!   or sock:sock_recv_length plus sock:sk_data_ready (6.3+), which run on
//!   every receive call and every datagram queued. Ages go into log2
//!   histograms per socket inode and per RX queue, with same-CPU/other-CPU
//!   read counts.
//!
//! The packet side and TCP reads are tp_btf (see loader.rs); per-packet work
//! and its cost are described in bpf/rx.bpf.c.
//!
//! The read-side programs are optional: when none of the UDP hooks or the
//! TCP one attaches, queue and flow counting still runs and
//! [`RxProbe::ages_unavailable`] says why ages are missing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aya::maps::{Array, HashMap, MapData, PerCpuArray, PerCpuHashMap};
use aya::Ebpf;

use crate::error::ProbeError;
use crate::loader::{self, map_read_error, map_write_error};
use crate::stats::ProgramStats;
use crate::Hooks;

const PROBE: &str = "rx";
const QUEUE_MAP: &str = "queue_stats";
const QUEUE_SLOTS_MAP: &str = "queue_slots";
/// RX_QUEUE_SLOTS in bpf/rx.h.
const QUEUE_SLOTS: u32 = 128;
const WATCHED_MAP: &str = "watched";
const ENTRY_DEVICES_MAP: &str = "entry_devices";
const ENTRY_STATS_MAP: &str = "entry_stats";
/// RX_ENTRY_DEVICES in bpf/rx.h: device slots, picked by ifindex modulo this.
pub const MAX_ENTRY_DEVICES: usize = 16;
/// RX_ENTRY_STATS in bpf/rx.h: table entries counted over all listed devices.
pub const MAX_ENTRY_COUNTERS: usize = 4096;
const CONFIG_MAP: &str = "rx_config";
const FLOWS_MAP: &str = "flows";
const INGRESS_MAP: &str = "ingress";
const SOCKET_AGES_MAP: &str = "socket_ages";
const QUEUE_AGES_MAP: &str = "queue_ages";
const SAMPLE_EVERY: &str = "sample_every";
const AGE_SAMPLE_EVERY: &str = "age_sample_every";
const INGRESS_MASK: &str = "ingress_mask";
/// Most `ingress` slots (RxConfig::max_inflight is clamped to it).
const MAX_INGRESS_SLOTS: u32 = 1 << 24;
/// The packet-side program: required.
const RECEIVE: (&str, &str) = ("rx_receive_skb", "netif_receive_skb");
/// TCP reads (tp_btf): with one of the UDP read hooks, the read side.
const TCP_READ: (&str, &str) = ("rx_copy_dgram", "skb_copy_datagram_iovec");
/// UDP reads: fentry/kprobe program and function, or the tracepoint pair.
const CONSUME_FENTRY: (&str, &str) = ("rx_consume_udp", "skb_consume_udp");
const CONSUME_KPROBE: (&str, &str) = ("rx_consume_udp_kprobe", "skb_consume_udp");
const READ_TRACEPOINTS: [(&str, &str); 2] = [
    ("rx_recv_length", "sock_recv_length"),
    ("rx_data_ready", "sk_data_ready"),
];

/// Where the UDP read side of ingress ages runs (bpf/rx.bpf.c).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadHook {
    /// fentry on skb_consume_udp(): once per datagram read (BTF trampolines,
    /// 5.5+).
    FentryConsumeUdp,
    /// A kprobe on skb_consume_udp(), where fentry is refused.
    KprobeConsumeUdp,
    /// tp_btf on sock:sock_recv_length and sock:sk_data_ready (6.3+): on
    /// every receive call, empty ones included, and every datagram queued.
    Tracepoints,
}

impl ReadHook {
    /// In the order `load` tries them.
    pub const ALL: [ReadHook; 3] = [
        Self::FentryConsumeUdp,
        Self::KprobeConsumeUdp,
        Self::Tracepoints,
    ];

    /// "fentry/skb_consume_udp", "kprobe/skb_consume_udp" or
    /// "tp_btf/sock_recv_length+sk_data_ready".
    pub fn name(self) -> &'static str {
        match self {
            Self::FentryConsumeUdp => "fentry/skb_consume_udp",
            Self::KprobeConsumeUdp => "kprobe/skb_consume_udp",
            Self::Tracepoints => "tp_btf/sock_recv_length+sk_data_ready",
        }
    }

    /// The short name a configuration forces it by: "fentry", "kprobe" or
    /// "tracepoints".
    pub fn key(self) -> &'static str {
        match self {
            Self::FentryConsumeUdp => "fentry",
            Self::KprobeConsumeUdp => "kprobe",
            Self::Tracepoints => "tracepoints",
        }
    }

    /// The hook of [`ReadHook::key`] `key`.
    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.key() == key)
    }

    fn programs(self) -> Vec<&'static str> {
        match self {
            Self::FentryConsumeUdp => vec![CONSUME_FENTRY.0],
            Self::KprobeConsumeUdp => vec![CONSUME_KPROBE.0],
            Self::Tracepoints => READ_TRACEPOINTS.iter().map(|(p, _)| *p).collect(),
        }
    }

    fn attach(self, ebpf: &mut Ebpf, btf: &aya::Btf) -> Result<Hooks, ProbeError> {
        let attached = match self {
            Self::FentryConsumeUdp => loader::attach_fentries(ebpf, btf, PROBE, &[CONSUME_FENTRY]),
            Self::KprobeConsumeUdp => {
                let (program, function) = CONSUME_KPROBE;
                loader::attach_kprobes(ebpf, PROBE, &[(program, function, false)])
            }
            Self::Tracepoints => {
                loader::attach_btf_tracepoints(ebpf, btf, PROBE, &READ_TRACEPOINTS)
            }
        };
        if attached.is_err() {
            for program in self.programs() {
                loader::unload(ebpf, program);
            }
        }
        attached
    }
}
/// RX_QUEUE_NOT_RECORDED in bpf/rx.h.
const QUEUE_NOT_RECORDED: u32 = u32::MAX;
/// Most (protocol, port) pairs [`RxProbe::set_watched`] accepts.
pub const MAX_WATCHED_RX: usize = 1024;
/// RX_WATCH_WORDS_PER_PROTO in bpf/rx.h: 64-bit words of the port bitmap
/// per protocol (TCP first, then UDP).
const WATCH_WORDS_PER_PROTO: u32 = 1024;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
/// Number of log2 ingress-age buckets (RX_AGE_BUCKETS in bpf/rx.h).
pub const AGE_BUCKETS: usize = 32;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rx.bpf.o"));
/// rx.bpf.c without the exchange instructions, for kernels before 5.12
/// (bpf/rx_compat.bpf.c).
static COMPAT_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rx_compat.bpf.o"));

/// Mirror of `struct rx_queue_key` (bpf/rx.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RxQueueKey {
    netns: u32,
    ifindex: u32,
    queue: u32,
    pad: u32,
}

/// Mirror of `struct rx_queue_value` (bpf/rx.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RxQueueValue {
    packets: u64,
    bytes: u64,
}

/// Mirror of `struct rx_queue_slot` (bpf/rx.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RxQueueSlot {
    key: RxQueueKey,
    value: RxQueueValue,
}

/// Mirror of `struct rx_flow_key` (bpf/rx.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RxFlowKey {
    netns: u32,
    family: u16,
    protocol: u8,
    pad: u8,
    saddr: [u8; 16],
    daddr: [u8; 16],
    sport: u16,
    dport: u16,
}

/// Mirror of `struct rx_flow_value` (bpf/rx.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RxFlowValue {
    packets: u64,
    bytes: u64,
    rx_cpu: u32,
    rx_queue: u32,
    ifindex: u32,
    hash: u32,
}

/// Mirror of `struct rx_entry_device` (bpf/rx.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RxEntryDevice {
    netns: u32,
    ifindex: u32,
    base: u32,
    mask: u32,
}

/// Mirror of `struct rx_age_hist` (bpf/rx.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RxAgeHist {
    buckets: [u64; AGE_BUCKETS],
    same_cpu: u64,
    other_cpu: u64,
}

/// Mirror of `struct rx_config` (bpf/rx.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RxConfigValue {
    watch_count: u32,
    track_ages: u32,
}

// SAFETY: repr(C), integer fields only, explicit padding; every bit
// pattern is valid.
unsafe impl aya::Pod for RxQueueKey {}
unsafe impl aya::Pod for RxQueueValue {}
unsafe impl aya::Pod for RxQueueSlot {}
unsafe impl aya::Pod for RxFlowKey {}
unsafe impl aya::Pod for RxFlowValue {}
unsafe impl aya::Pod for RxAgeHist {}
unsafe impl aya::Pod for RxEntryDevice {}
unsafe impl aya::Pod for RxConfigValue {}

const _: () = assert!(std::mem::size_of::<RxQueueKey>() == 16);
const _: () = assert!(std::mem::size_of::<RxQueueValue>() == 16);
const _: () = assert!(std::mem::size_of::<RxQueueSlot>() == 32);
const _: () = assert!(std::mem::size_of::<RxFlowKey>() == 44);
const _: () = assert!(std::mem::size_of::<RxFlowValue>() == 32);
const _: () = assert!(std::mem::size_of::<RxAgeHist>() == 272);
const _: () = assert!(std::mem::size_of::<RxEntryDevice>() == 16);
const _: () = assert!(std::mem::size_of::<RxConfigValue>() == 8);

/// Load-time settings of [`RxProbe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxConfig {
    /// 1 follows every watched packet (the default: ground truth); N > 1
    /// follows 1 in N at random. Flow counts are then raw sample counts;
    /// multiply by [`RxProbe::sample_every`] to estimate totals.
    pub sample_every: u32,
    /// Of the packets followed for flows, 1 in N at random is timestamped
    /// for ingress ages (1: every one). Ages feed percentiles and
    /// same/other-CPU shares, which a random sample estimates without
    /// bias, while each stamp costs a clock read and atomic updates of
    /// shared memory (bpf/rx.bpf.c). The pick is a randomized per-CPU
    /// countdown, 1 in N on average. Default 16.
    pub age_sample_every: u32,
    /// Flow table capacity (LRU: the least recently seen flows are evicted).
    pub max_flows: u32,
    /// Slots for the stamps of received-but-unread sampled packets, rounded
    /// up to a power of two (at most 2^24). Slots are picked by a hash of
    /// the skb address: a stamp whose slot a newer one takes before the
    /// read goes untimed, so this should stay well above the sampled
    /// packets queued at any time.
    pub max_inflight: u32,
    /// The UDP read hook: None tries them in [`ReadHook::ALL`] order;
    /// Some(hook) uses that one only (tests, `[probes] rx_read_hook`).
    pub read_hook: Option<ReadHook>,
}

impl Default for RxConfig {
    fn default() -> Self {
        Self {
            sample_every: 1,
            age_sample_every: 16,
            max_flows: 65_536,
            max_inflight: 65_536,
            read_hook: None,
        }
    }
}

/// Packets and bytes received on one RX queue since the probe was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueCount {
    /// Inode of the device's network namespace.
    pub netns: u64,
    pub ifindex: u32,
    /// The RX queue as the kernel reads it (skb_get_rx_queue, the index
    /// RPS uses): what the driver recorded with skb_record_rx_queue; None
    /// when nothing was recorded (loopback, drivers that do not record).
    /// veth records nothing and carries the peer's TX queue q over, which
    /// reads as Some(q - 1), or None for q = 0.
    pub queue: Option<u32>,
    /// Wire packets (a GRO/GSO skb counts as its gso_segs).
    pub packets: u64,
    /// skb->len at netif_receive_skb: L3 header and up, no MAC header.
    pub bytes: u64,
}

/// One flow to a watched port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowSample {
    /// Inode of the receiving device's network namespace.
    pub netns: u64,
    /// AF_INET (2) or AF_INET6 (10).
    pub family: u16,
    /// IPPROTO_TCP (6) or IPPROTO_UDP (17).
    pub protocol: u8,
    pub saddr: IpAddr,
    pub sport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    /// Sampled packets (see [`RxConfig::sample_every`]).
    pub packets: u64,
    /// Sampled bytes, skb->len at netif_receive_skb.
    pub bytes: u64,
    /// CPU that received the latest sampled packet.
    pub rx_cpu: u32,
    /// RX queue of the latest sampled packet, when recorded.
    pub rx_queue: Option<u32>,
    /// Device of the latest sampled packet.
    pub ifindex: u32,
    /// The hash the driver stored in that packet's skb (the NIC's RSS hash),
    /// None when it carried none or only a software hash.
    pub rx_hash: Option<u32>,
}

/// A device whose packets are counted per RSS indirection-table entry
/// ([`RxProbe::set_entry_devices`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EntryDevice {
    /// Inode of the device's network namespace.
    pub netns: u64,
    pub ifindex: u32,
    /// Entries of its indirection table, a power of two: a packet counts in
    /// entry `hash & (table_size - 1)`, the low bits of the hash its driver
    /// stored in the skb.
    pub table_size: u32,
}

/// Packets and bytes per indirection-table entry of one listed device since
/// it was listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryCount {
    pub device: EntryDevice,
    /// One count per entry (`device.table_size` of them); wire packets as in
    /// [`QueueCount::packets`].
    pub packets: Vec<u64>,
    pub bytes: Vec<u64>,
}

/// Ingress ages of the packets one socket read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketAge {
    /// Socket inode (fstat st_ino, sock_diag idiag_inode).
    pub inode: u64,
    /// Log2 histogram; bucket bounds from [`log2_bucket_bounds_ns`].
    pub buckets: Vec<u64>,
    /// Reads on the CPU that received the packet.
    pub same_cpu: u64,
    /// Reads on another CPU.
    pub other_cpu: u64,
}

/// Ingress ages of the packets received on one RX queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueAge {
    /// Inode of the device's network namespace.
    pub netns: u64,
    pub ifindex: u32,
    pub queue: Option<u32>,
    /// Log2 histogram; bucket bounds from [`log2_bucket_bounds_ns`].
    pub buckets: Vec<u64>,
    /// Reads on the CPU that received the packet.
    pub same_cpu: u64,
    /// Reads on another CPU.
    pub other_cpu: u64,
}

/// Bounds `[low, high)` in nanoseconds of ingress-age bucket `index`:
/// bucket 0 is [0, 2), bucket i (1..=30) is [2^i, 2^(i+1)), and the last
/// bucket (31) is open-ended, [2^31, u64::MAX] (2^31 ns is about 2.1 s).
/// Indexes past the last bucket return the last bucket's bounds.
pub fn log2_bucket_bounds_ns(index: usize) -> (u64, u64) {
    let index = index.min(AGE_BUCKETS - 1);
    match index {
        0 => (0, 2),
        i if i == AGE_BUCKETS - 1 => (1 << i, u64::MAX),
        i => (1 << i, 1 << (i + 1)),
    }
}

/// The loaded and attached probe. Dropping it detaches every link and frees
/// the programs and maps (nothing is pinned).
pub struct RxProbe {
    queue_slots: PerCpuArray<MapData, RxQueueSlot>,
    queues: PerCpuHashMap<MapData, RxQueueKey, RxQueueValue>,
    entry_devices: Array<MapData, RxEntryDevice>,
    entry_stats: PerCpuArray<MapData, RxQueueValue>,
    /// The listed devices with their first element in entry_stats.
    entry_layout: Vec<(EntryDevice, u32)>,
    watched: Array<MapData, u64>,
    /// The port bitmap as last written to `watched`, word by word.
    watched_words: Vec<u64>,
    config: Array<MapData, RxConfigValue>,
    flows: HashMap<MapData, RxFlowKey, RxFlowValue>,
    socket_ages: HashMap<MapData, u64, RxAgeHist>,
    queue_ages: HashMap<MapData, RxQueueKey, RxAgeHist>,
    sample_every: u32,
    age_sample_every: u32,
    track_ages: bool,
    ages_unavailable: Option<ProbeError>,
    read_hook: Option<ReadHook>,
    /// The UDP read hooks tried before `read_hook`, with the kernel's reason.
    read_hooks_refused: Vec<(ReadHook, String)>,
    /// The links, until handed out by `take_hooks`.
    hooks: Option<Hooks>,
    // Owns the programs; see SoftirqTimeProbe.
    ebpf: Ebpf,
}

impl RxProbe {
    /// Loads and attaches the programs. netif_receive_skb must attach; the
    /// read-side programs are attached all or none (see
    /// [`RxProbe::ages_unavailable`]).
    pub fn load(config: RxConfig) -> Result<Self, ProbeError> {
        for (name, value) in [
            ("sample_every", config.sample_every),
            ("age_sample_every", config.age_sample_every),
            ("max_flows", config.max_flows),
            ("max_inflight", config.max_inflight),
        ] {
            if value == 0 {
                return Err(ProbeError::Config {
                    probe: PROBE,
                    detail: format!("{name} must be at least 1"),
                });
            }
        }
        let ingress_slots = config
            .max_inflight
            .min(MAX_INGRESS_SLOTS)
            .next_power_of_two();
        let btf = loader::kernel_btf(PROBE)?;
        // Chosen by what the verifier accepts, not by version: an Err from
        // the check (e.g. no privilege) keeps the default object, whose load
        // then reports the real reason.
        let object = match crate::caps::atomic_exchange_supported() {
            Ok(false) => {
                log::info!(
                    "probe {PROBE}: the verifier refuses BPF_XCHG/BPF_CMPXCHG (before 5.12): \
                     loading rx_compat (plain stores for the age stamps)"
                );
                COMPAT_OBJECT
            }
            _ => OBJECT,
        };
        let mut ebpf = loader::open_object_with(
            PROBE,
            object,
            &btf,
            &[
                (SAMPLE_EVERY, config.sample_every),
                (AGE_SAMPLE_EVERY, config.age_sample_every),
                (INGRESS_MASK, ingress_slots - 1),
            ],
            &[(FLOWS_MAP, config.max_flows), (INGRESS_MAP, ingress_slots)],
        )?;
        let mut hooks = loader::attach_btf_tracepoints(&mut ebpf, &btf, PROBE, &[RECEIVE])?;
        // The read side all or none (a UDP hook and the TCP one): without it
        // there are no ages, the rest runs.
        let (read_side, read_hooks_refused) = attach_read_side(&mut ebpf, &btf, config.read_hook);
        let (ages_unavailable, read_hook) = match read_side {
            Ok((read_side, read_hook)) => {
                hooks.extend(read_side);
                (None, Some(read_hook))
            }
            Err(err) => (Some(err), None),
        };

        let mut probe = Self {
            queue_slots: loader::take_map(&mut ebpf, PROBE, QUEUE_SLOTS_MAP)?,
            queues: loader::take_map(&mut ebpf, PROBE, QUEUE_MAP)?,
            entry_devices: loader::take_map(&mut ebpf, PROBE, ENTRY_DEVICES_MAP)?,
            entry_stats: loader::take_map(&mut ebpf, PROBE, ENTRY_STATS_MAP)?,
            entry_layout: Vec::new(),
            watched: loader::take_map(&mut ebpf, PROBE, WATCHED_MAP)?,
            watched_words: vec![0; 2 * WATCH_WORDS_PER_PROTO as usize],
            config: loader::take_map(&mut ebpf, PROBE, CONFIG_MAP)?,
            flows: loader::take_map(&mut ebpf, PROBE, FLOWS_MAP)?,
            socket_ages: loader::take_map(&mut ebpf, PROBE, SOCKET_AGES_MAP)?,
            queue_ages: loader::take_map(&mut ebpf, PROBE, QUEUE_AGES_MAP)?,
            sample_every: config.sample_every,
            age_sample_every: config.age_sample_every,
            track_ages: ages_unavailable.is_none(),
            ages_unavailable,
            read_hook,
            read_hooks_refused,
            hooks: Some(hooks),
            ebpf,
        };
        probe.write_config(0)?;
        Ok(probe)
    }

    /// The sampling rate the probe was loaded with (1 = every packet).
    pub fn sample_every(&self) -> u32 {
        self.sample_every
    }

    /// The ingress-age sampling rate among followed packets (1 = every one).
    pub fn age_sample_every(&self) -> u32 {
        self.age_sample_every
    }

    /// Why ingress ages are not tracked, when a read-side program failed to
    /// load or attach; None when they are.
    pub fn ages_unavailable(&self) -> Option<&ProbeError> {
        self.ages_unavailable.as_ref()
    }

    /// The hook UDP reads are aged from; None when ages are unavailable.
    pub fn read_hook(&self) -> Option<ReadHook> {
        self.read_hook
    }

    /// The UDP read hooks tried before [`RxProbe::read_hook`] (all of them
    /// tried when none attached) and why each was refused.
    pub fn read_hooks_refused(&self) -> &[(ReadHook, String)] {
        &self.read_hooks_refused
    }

    /// Replaces the set of watched (protocol, local port) pairs: protocol is
    /// IPPROTO_TCP (6) or IPPROTO_UDP (17). Flows and ages are only kept for
    /// packets to these; an empty set turns packet parsing off.
    pub fn set_watched(&mut self, watched: &[(u8, u16)]) -> Result<(), ProbeError> {
        if watched.len() > MAX_WATCHED_RX {
            return Err(ProbeError::Config {
                probe: PROBE,
                detail: format!("{} watched ports, at most {MAX_WATCHED_RX}", watched.len()),
            });
        }
        let (words, count) = port_bitmap(watched)?;
        // Ports leaving the set are cleared first, then new ones set, so a
        // port in both the old and the new set is never dropped.
        for clear_pass in [true, false] {
            for (index, (&new, old)) in words.iter().zip(self.watched_words.iter_mut()).enumerate()
            {
                let next = if clear_pass { new & *old } else { new };
                if next != *old {
                    self.watched
                        .set(index as u32, next, 0)
                        .map_err(|err| map_write_error(PROBE, WATCHED_MAP, &err))?;
                    *old = next;
                }
            }
        }
        self.write_config(count)
    }

    fn write_config(&mut self, watch_count: u32) -> Result<(), ProbeError> {
        let value = RxConfigValue {
            watch_count,
            track_ages: u32::from(self.track_ages),
        };
        self.config
            .set(0, value, 0)
            .map_err(|err| map_write_error(PROBE, CONFIG_MAP, &err))
    }

    /// Packets and bytes per (netns, ifindex, RX queue) since `load`, summed
    /// over CPUs and over the slot cache and the hash (a key sits in one of
    /// them per CPU), sorted by key.
    pub fn read_queues(&self) -> Result<Vec<QueueCount>, ProbeError> {
        let mut slots = Vec::new();
        for index in 0..QUEUE_SLOTS {
            let per_cpu = self
                .queue_slots
                .get(&index, 0)
                .map_err(|err| map_read_error(PROBE, QUEUE_SLOTS_MAP, &err))?;
            slots.extend(per_cpu.iter().copied());
        }
        let mut hashed = Vec::new();
        for entry in self.queues.iter() {
            let (key, per_cpu) = entry.map_err(|err| map_read_error(PROBE, QUEUE_MAP, &err))?;
            hashed.extend(per_cpu.iter().map(|value| (key, *value)));
        }
        Ok(queue_totals(&slots, &hashed))
    }

    /// Replaces the devices counted per RSS indirection-table entry. A device
    /// already listed with the same table size keeps its counts; the others
    /// start from zero. Returns the devices left out: a table size that is not
    /// a power of two, a second device in the same slot (ifindex modulo
    /// [`MAX_ENTRY_DEVICES`]), or no room left among [`MAX_ENTRY_COUNTERS`].
    pub fn set_entry_devices(
        &mut self,
        devices: &[EntryDevice],
    ) -> Result<Vec<EntryDevice>, ProbeError> {
        let (layout, left_out) = entry_layout(&self.entry_layout, devices);
        // Slots whose device leaves or changes are cleared first, so a packet
        // never counts into a block that is being handed to another device.
        let slots = |l: &[(EntryDevice, u32)]| -> Vec<Option<RxEntryDevice>> {
            let mut slots = vec![None; MAX_ENTRY_DEVICES];
            for &(d, base) in l {
                slots[entry_slot(d.ifindex)] = Some(RxEntryDevice {
                    netns: d.netns as u32,
                    ifindex: d.ifindex,
                    base,
                    mask: d.table_size - 1,
                });
            }
            slots
        };
        let (old, new) = (slots(&self.entry_layout), slots(&layout));
        for (slot, (before, after)) in old.iter().zip(&new).enumerate() {
            if before.is_some() && before != after {
                self.entry_devices
                    .set(slot as u32, RxEntryDevice::default(), 0)
                    .map_err(|err| map_write_error(PROBE, ENTRY_DEVICES_MAP, &err))?;
            }
        }
        let kept: Vec<EntryDevice> = self
            .entry_layout
            .iter()
            .filter(|e| layout.contains(e))
            .map(|(d, _)| *d)
            .collect();
        // PerCpuValues must hold one value per possible CPU.
        let cpus = aya::util::nr_cpus()
            .map_err(|(_, err)| map_write_error(PROBE, ENTRY_STATS_MAP, &err))?;
        for &(d, base) in layout.iter().filter(|(d, _)| !kept.contains(d)) {
            for index in base..base + d.table_size {
                let zeros = aya::maps::PerCpuValues::try_from(vec![RxQueueValue::default(); cpus])
                    .map_err(|err| map_write_error(PROBE, ENTRY_STATS_MAP, &err))?;
                self.entry_stats
                    .set(index, zeros, 0)
                    .map_err(|err| map_write_error(PROBE, ENTRY_STATS_MAP, &err))?;
            }
        }
        for (slot, (before, after)) in old.iter().zip(&new).enumerate() {
            if let Some(after) = after.filter(|a| Some(*a) != *before) {
                self.entry_devices
                    .set(slot as u32, after, 0)
                    .map_err(|err| map_write_error(PROBE, ENTRY_DEVICES_MAP, &err))?;
            }
        }
        self.entry_layout = layout;
        Ok(left_out)
    }

    /// Packets and bytes per table entry of each listed device, summed over
    /// CPUs, in the order the devices were listed.
    pub fn read_entries(&self) -> Result<Vec<EntryCount>, ProbeError> {
        let mut out = Vec::with_capacity(self.entry_layout.len());
        for &(device, base) in &self.entry_layout {
            let mut values = Vec::with_capacity(device.table_size as usize);
            for index in base..base + device.table_size {
                let per_cpu = self
                    .entry_stats
                    .get(&index, 0)
                    .map_err(|err| map_read_error(PROBE, ENTRY_STATS_MAP, &err))?;
                values.push(per_cpu.iter().copied().collect::<Vec<_>>());
            }
            out.push(entry_count(device, &values));
        }
        Ok(out)
    }

    /// Every flow in the table, most packets first.
    pub fn read_flows(&self) -> Result<Vec<FlowSample>, ProbeError> {
        let mut flows = Vec::new();
        for entry in self.flows.iter() {
            let (key, value) = entry.map_err(|err| map_read_error(PROBE, FLOWS_MAP, &err))?;
            if let Some(flow) = flow_sample(&key, &value) {
                flows.push(flow);
            }
        }
        flows.sort_by(|a, b| {
            b.packets
                .cmp(&a.packets)
                .then((a.sport, a.dport).cmp(&(b.sport, b.dport)))
        });
        Ok(flows)
    }

    /// Ingress-age histograms per reading socket, sorted by inode.
    pub fn read_socket_ages(&self) -> Result<Vec<SocketAge>, ProbeError> {
        let mut ages = Vec::new();
        for entry in self.socket_ages.iter() {
            let (inode, hist) =
                entry.map_err(|err| map_read_error(PROBE, SOCKET_AGES_MAP, &err))?;
            ages.push(SocketAge {
                inode,
                buckets: hist.buckets.to_vec(),
                same_cpu: hist.same_cpu,
                other_cpu: hist.other_cpu,
            });
        }
        ages.sort_by_key(|a| a.inode);
        Ok(ages)
    }

    /// Ingress-age histograms per RX queue, sorted by (netns, ifindex, queue).
    pub fn read_queue_ages(&self) -> Result<Vec<QueueAge>, ProbeError> {
        let mut ages = Vec::new();
        for entry in self.queue_ages.iter() {
            let (key, hist) = entry.map_err(|err| map_read_error(PROBE, QUEUE_AGES_MAP, &err))?;
            ages.push((key, hist));
        }
        ages.sort_by_key(|(key, _)| *key);
        Ok(ages
            .into_iter()
            .map(|(key, hist)| QueueAge {
                netns: u64::from(key.netns),
                ifindex: key.ifindex,
                queue: queue_of(key.queue),
                buckets: hist.buckets.to_vec(),
                same_cpu: hist.same_cpu,
                other_cpu: hist.other_cpu,
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
    pub fn program_stats(&self) -> Result<Vec<ProgramStats>, ProbeError> {
        loader::program_stats(&self.ebpf, PROBE)
    }

    /// Kernel ids of the probe's loaded programs.
    pub fn program_ids(&self) -> Result<Vec<u32>, ProbeError> {
        loader::kernel_ids(&self.ebpf, PROBE).map(|(programs, _)| programs)
    }

    /// Kernel ids of the maps the probe's programs use.
    pub fn map_ids(&self) -> Result<Vec<u32>, ProbeError> {
        loader::kernel_ids(&self.ebpf, PROBE).map(|(_, maps)| maps)
    }
}

/// Attaches a UDP read hook (`forced`, or the first of [`ReadHook::ALL`] the
/// kernel accepts) and the TCP one; with the UDP hooks refused on the way.
#[allow(clippy::type_complexity)]
fn attach_read_side(
    ebpf: &mut Ebpf,
    btf: &aya::Btf,
    forced: Option<ReadHook>,
) -> (
    Result<(Hooks, ReadHook), ProbeError>,
    Vec<(ReadHook, String)>,
) {
    let candidates = match forced {
        Some(hook) => vec![hook],
        None => ReadHook::ALL.to_vec(),
    };
    let mut refused = Vec::new();
    let mut last_err = None;
    for hook in candidates {
        match hook.attach(ebpf, btf) {
            Ok(mut udp) => {
                return match loader::attach_btf_tracepoints(ebpf, btf, PROBE, &[TCP_READ]) {
                    Ok(tcp) => {
                        udp.extend(tcp);
                        if !refused.is_empty() || forced.is_some() {
                            let why: Vec<String> = refused
                                .iter()
                                .map(|(hook, err): &(ReadHook, String)| {
                                    format!("{}: {err}", hook.name())
                                })
                                .collect();
                            log::info!(
                                "probe {PROBE}: UDP reads aged from {}{}",
                                hook.name(),
                                if forced.is_some() {
                                    " (forced)".to_owned()
                                } else {
                                    format!(" ({})", why.join("; "))
                                }
                            );
                        }
                        (Ok((udp, hook)), refused)
                    }
                    Err(err) => (Err(err), refused),
                };
            }
            Err(err) => {
                refused.push((hook, err.to_string()));
                last_err = Some(err);
            }
        }
    }
    let err = last_err.expect("at least one read hook was tried");
    let err = if refused.len() > 1 {
        let why: Vec<String> = refused
            .iter()
            .map(|(hook, err)| format!("{}: {err}", hook.name()))
            .collect();
        ProbeError::Load {
            probe: PROBE,
            program: "rx_consume_udp",
            errno: err.errno(),
            detail: format!("no UDP read hook: {}", why.join("; ")),
        }
    } else {
        err
    };
    (Err(err), refused)
}

/// Sums per-CPU queue counters from the slot cache (claimed slots only) and
/// the hash by (netns, ifindex, queue), sorted by key.
fn queue_totals(slots: &[RxQueueSlot], hashed: &[(RxQueueKey, RxQueueValue)]) -> Vec<QueueCount> {
    let mut totals: std::collections::BTreeMap<RxQueueKey, (u64, u64)> =
        std::collections::BTreeMap::new();
    let claimed = slots
        .iter()
        .filter(|slot| slot.key.pad != 0)
        .map(|slot| (RxQueueKey { pad: 0, ..slot.key }, slot.value));
    for (key, value) in claimed.chain(hashed.iter().copied()) {
        let total = totals.entry(key).or_default();
        total.0 += value.packets;
        total.1 += value.bytes;
    }
    totals
        .into_iter()
        .filter(|(_, (packets, _))| *packets > 0)
        .map(|(key, (packets, bytes))| QueueCount {
            netns: u64::from(key.netns),
            ifindex: key.ifindex,
            queue: queue_of(key.queue),
            packets,
            bytes,
        })
        .collect()
}

/// The `watched` bitmap for `watched` (protocol, port) pairs, and how many
/// distinct pairs it holds.
fn port_bitmap(watched: &[(u8, u16)]) -> Result<(Vec<u64>, u32), ProbeError> {
    let mut words = vec![0u64; 2 * WATCH_WORDS_PER_PROTO as usize];
    for &(protocol, port) in watched {
        let base = match protocol {
            IPPROTO_TCP => 0,
            IPPROTO_UDP => WATCH_WORDS_PER_PROTO,
            other => {
                return Err(ProbeError::Config {
                    probe: PROBE,
                    detail: format!("watched protocol {other}: only TCP (6) and UDP (17)"),
                })
            }
        };
        words[(base + u32::from(port) / 64) as usize] |= 1 << (port % 64);
    }
    let count = words.iter().map(|w| w.count_ones()).sum();
    Ok((words, count))
}

/// The entry_devices slot of a device (RX_ENTRY_DEVICES in bpf/rx.h).
fn entry_slot(ifindex: u32) -> usize {
    ifindex as usize % MAX_ENTRY_DEVICES
}

/// Blocks of entry_stats for `wanted` devices: one that `current` already
/// places with the same table size keeps its block, the others take the
/// lowest free range. Returns the layout and the devices left out (see
/// [`RxProbe::set_entry_devices`]).
fn entry_layout(
    current: &[(EntryDevice, u32)],
    wanted: &[EntryDevice],
) -> (Vec<(EntryDevice, u32)>, Vec<EntryDevice>) {
    let mut layout: Vec<(EntryDevice, u32)> = Vec::new();
    let mut left_out = Vec::new();
    let mut slots = [false; MAX_ENTRY_DEVICES];
    let mut admissible = Vec::new();
    for &d in wanted {
        let size_ok = d.table_size > 0
            && d.table_size.is_power_of_two()
            && d.table_size as usize <= MAX_ENTRY_COUNTERS
            && d.netns <= u64::from(u32::MAX);
        if !size_ok || slots[entry_slot(d.ifindex)] {
            left_out.push(d);
            continue;
        }
        slots[entry_slot(d.ifindex)] = true;
        admissible.push(d);
    }
    let (kept, fresh): (Vec<EntryDevice>, Vec<EntryDevice>) = admissible
        .into_iter()
        .partition(|d| current.iter().any(|(c, _)| c == d));
    for d in kept {
        let base = current
            .iter()
            .find(|(c, _)| *c == d)
            .map(|(_, b)| *b)
            .unwrap_or(0);
        layout.push((d, base));
    }
    for d in fresh {
        // Lowest base where [base, base + size) overlaps no placed block.
        let mut blocks: Vec<(u32, u32)> = layout
            .iter()
            .map(|(p, b)| (*b, *b + p.table_size))
            .collect();
        blocks.sort_unstable();
        let mut base = 0u32;
        for (start, end) in blocks {
            if base + d.table_size <= start {
                break;
            }
            base = base.max(end);
        }
        if (base + d.table_size) as usize <= MAX_ENTRY_COUNTERS {
            layout.push((d, base));
        } else {
            left_out.push(d);
        }
    }
    // In the order asked for.
    layout.sort_by_key(|(d, _)| wanted.iter().position(|w| w == d));
    (layout, left_out)
}

/// Sums one device's per-CPU entry counters (`per_entry[e]` holds entry e's
/// value on each CPU).
fn entry_count(device: EntryDevice, per_entry: &[Vec<RxQueueValue>]) -> EntryCount {
    let (packets, bytes) = per_entry
        .iter()
        .map(|cpus| {
            cpus.iter()
                .fold((0u64, 0u64), |(p, b), v| (p + v.packets, b + v.bytes))
        })
        .unzip();
    EntryCount {
        device,
        packets,
        bytes,
    }
}

fn queue_of(raw: u32) -> Option<u32> {
    (raw != QUEUE_NOT_RECORDED).then_some(raw)
}

/// Converts one flow-table entry; None for an unknown address family.
fn flow_sample(key: &RxFlowKey, value: &RxFlowValue) -> Option<FlowSample> {
    let address = |bytes: &[u8; 16]| -> Option<IpAddr> {
        match key.family {
            AF_INET => Some(IpAddr::V4(Ipv4Addr::new(
                bytes[0], bytes[1], bytes[2], bytes[3],
            ))),
            AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(*bytes))),
            _ => None,
        }
    };
    Some(FlowSample {
        netns: u64::from(key.netns),
        family: key.family,
        protocol: key.protocol,
        saddr: address(&key.saddr)?,
        sport: key.sport,
        daddr: address(&key.daddr)?,
        dport: key.dport,
        packets: value.packets,
        bytes: value.bytes,
        rx_cpu: value.rx_cpu,
        rx_queue: queue_of(value.rx_queue),
        ifindex: value.ifindex,
        rx_hash: (value.hash != 0).then_some(value.hash),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The `imm` of every BPF_STX|BPF_ATOMIC instruction (W or DW) in the
    /// executable sections of a little-endian ELF64 BPF object.
    /// The imm of every BPF_STX|BPF_ATOMIC instruction of an object's code sections.
    pub(crate) fn atomic_ops(object: &[u8]) -> Vec<i32> {
        let u16_at = |o: usize| u16::from_le_bytes([object[o], object[o + 1]]) as usize;
        let u64_at = |o: usize| u64::from_le_bytes(object[o..o + 8].try_into().unwrap()) as usize;
        let (shoff, shentsize, shnum) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c));
        let mut ops = Vec::new();
        for index in 0..shnum {
            let header = shoff + index * shentsize;
            const SHF_EXECINSTR: usize = 0x4;
            if u64_at(header + 8) & SHF_EXECINSTR == 0 {
                continue;
            }
            let (offset, size) = (u64_at(header + 0x18), u64_at(header + 0x20));
            for insn in object[offset..offset + size].chunks_exact(8) {
                // BPF_STX|BPF_ATOMIC|BPF_W = 0xc3, |BPF_DW = 0xdb.
                if insn[0] == 0xc3 || insn[0] == 0xdb {
                    ops.push(i32::from_le_bytes(insn[4..8].try_into().unwrap()));
                }
            }
        }
        ops
    }

    #[test]
    fn compat_object_has_only_plain_atomic_adds() {
        if !crate::probes_built() {
            return;
        }
        let default_ops = atomic_ops(OBJECT);
        let compat_ops = atomic_ops(COMPAT_OBJECT);
        // imm 0 is BPF_ADD without BPF_FETCH: the XADD every kernel accepts.
        assert!(
            default_ops.iter().any(|&imm| imm != 0),
            "rx.bpf.o uses exchanges (xchg 0xe1, cmpxchg 0xf1): {default_ops:x?}"
        );
        assert!(
            !compat_ops.is_empty(),
            "rx_compat.bpf.o still counts with atomic adds"
        );
        assert!(
            compat_ops.iter().all(|&imm| imm == 0),
            "rx_compat.bpf.o must load before 5.12: {compat_ops:x?}"
        );
    }

    #[test]
    fn bucket_bounds_cover_u64_without_gaps() {
        assert_eq!(log2_bucket_bounds_ns(0), (0, 2));
        assert_eq!(log2_bucket_bounds_ns(1), (2, 4));
        assert_eq!(log2_bucket_bounds_ns(10), (1024, 2048));
        assert_eq!(log2_bucket_bounds_ns(31), (1 << 31, u64::MAX));
        assert_eq!(log2_bucket_bounds_ns(99), (1 << 31, u64::MAX));
        for i in 1..AGE_BUCKETS {
            assert_eq!(log2_bucket_bounds_ns(i - 1).1, log2_bucket_bounds_ns(i).0);
        }
    }

    #[test]
    fn port_bitmap_sets_one_bit_per_pair_and_rejects_other_protocols() {
        let (words, count) =
            port_bitmap(&[(6, 80), (17, 53), (17, 53), (17, 65535), (6, 0)]).expect("bitmap");
        assert_eq!(count, 4, "duplicates count once");
        assert_eq!(words.len(), 2048);
        assert_eq!(words[1], 1 << 16, "tcp 80: word 1, bit 16");
        assert_eq!(words[0], 1, "tcp 0");
        assert_eq!(words[1024], 1 << 53, "udp 53");
        assert_eq!(words[2047], 1 << 63, "udp 65535");
        assert_eq!(words.iter().map(|w| w.count_ones()).sum::<u32>(), 4);
        assert!(port_bitmap(&[(1, 7)]).is_err());
        assert_eq!(port_bitmap(&[]).expect("empty").1, 0);
    }

    #[test]
    fn queue_totals_add_slots_and_hash_per_key() {
        let key = |ifindex, queue| RxQueueKey {
            netns: 7,
            ifindex,
            queue,
            pad: 0,
        };
        let value = |packets, bytes| RxQueueValue { packets, bytes };
        let slot = |key: RxQueueKey, packets, bytes| RxQueueSlot {
            key: RxQueueKey { pad: 1, ..key },
            value: value(packets, bytes),
        };
        // CPU 0 holds (2, 0) in a slot; CPU 1 had its slot taken and
        // counted (2, 0) in the hash; an unclaimed slot is ignored.
        let slots = [
            slot(key(2, 0), 10, 1000),
            RxQueueSlot::default(),
            slot(key(1, QUEUE_NOT_RECORDED), 3, 300),
        ];
        let hashed = [
            (key(2, 0), value(5, 500)),
            (key(2, 0), value(0, 0)),
            (key(3, 1), value(1, 60)),
        ];
        let totals = queue_totals(&slots, &hashed);
        let rows: Vec<(u32, Option<u32>, u64, u64)> = totals
            .iter()
            .map(|q| (q.ifindex, q.queue, q.packets, q.bytes))
            .collect();
        assert_eq!(
            rows,
            [
                (1, None, 3, 300),
                (2, Some(0), 15, 1500),
                (3, Some(1), 1, 60)
            ]
        );
        assert!(totals.iter().all(|q| q.netns == 7));
    }

    fn device(ifindex: u32, table_size: u32) -> EntryDevice {
        EntryDevice {
            netns: 4026531840,
            ifindex,
            table_size,
        }
    }

    #[test]
    fn entry_layout_packs_blocks_and_keeps_unchanged_devices() {
        let (layout, left_out) = entry_layout(&[], &[device(2, 128), device(3, 512)]);
        assert_eq!(layout, [(device(2, 128), 0), (device(3, 512), 128)]);
        assert!(left_out.is_empty());
        // Device 2 goes, 3 stays where it is, 4 fills the hole before it, 5
        // goes after it, 20 collides with 4 (20 % 16 = 4), 18 takes 2's slot
        // and the rest of the hole.
        let (next, left_out) = entry_layout(
            &layout,
            &[
                device(4, 64),
                device(3, 512),
                device(5, 2048),
                device(20, 64),
                device(18, 64),
            ],
        );
        assert_eq!(
            next,
            [
                (device(4, 64), 0),
                (device(3, 512), 128),
                (device(5, 2048), 640),
                (device(18, 64), 64)
            ]
        );
        assert_eq!(left_out, [device(20, 64)]);
    }

    #[test]
    fn entry_layout_leaves_out_what_it_cannot_place() {
        let (layout, left_out) = entry_layout(
            &[],
            &[
                device(1, 96),   // not a power of two
                device(2, 0),    // empty
                device(3, 2048), // fits at 0
                device(19, 64),  // slot 3 taken by 3
                device(4, 2048), // fits at 2048, filling the array
                device(5, 64),   // no room left
            ],
        );
        assert_eq!(layout, [(device(3, 2048), 0), (device(4, 2048), 2048)]);
        assert_eq!(
            left_out,
            [device(1, 96), device(2, 0), device(19, 64), device(5, 64)]
        );
        // A changed table size is a new device: it moves, its old block is freed.
        let (layout, _) = entry_layout(&layout, &[device(4, 2048), device(3, 128)]);
        assert_eq!(layout, [(device(4, 2048), 2048), (device(3, 128), 0)]);
    }

    #[test]
    fn entry_count_sums_cpus_per_entry() {
        let v = |packets, bytes| RxQueueValue { packets, bytes };
        let counts = entry_count(
            device(2, 4),
            &[
                vec![v(1, 100), v(2, 200)],
                vec![v(0, 0), v(0, 0)],
                vec![v(5, 60), v(0, 0)],
                vec![v(0, 0), v(7, 70)],
            ],
        );
        assert_eq!(counts.packets, [3, 0, 5, 7]);
        assert_eq!(counts.bytes, [300, 0, 60, 70]);
        assert_eq!(counts.device, device(2, 4));
    }

    #[test]
    fn flow_sample_decodes_both_families() {
        let mut key = RxFlowKey {
            netns: 4026531840,
            family: AF_INET,
            protocol: 17,
            sport: 40000,
            dport: 53,
            ..RxFlowKey::default()
        };
        key.saddr[..4].copy_from_slice(&[127, 0, 0, 2]);
        key.daddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        let value = RxFlowValue {
            packets: 5,
            bytes: 500,
            rx_cpu: 1,
            rx_queue: QUEUE_NOT_RECORDED,
            ifindex: 1,
            ..RxFlowValue::default()
        };
        let flow = flow_sample(&key, &value).unwrap();
        assert_eq!(flow.rx_hash, None, "hash 0: the skb carried no driver hash");
        assert_eq!(flow.saddr, "127.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(flow.daddr, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(flow.rx_queue, None);
        assert_eq!(
            (flow.packets, flow.bytes, flow.sport, flow.dport),
            (5, 500, 40000, 53)
        );

        key.family = AF_INET6;
        key.saddr = "fd00::2".parse::<Ipv6Addr>().unwrap().octets();
        key.daddr = "fd00::1".parse::<Ipv6Addr>().unwrap().octets();
        let flow = flow_sample(
            &key,
            &RxFlowValue {
                rx_queue: 3,
                hash: 0x51ccc178,
                ..value
            },
        )
        .unwrap();
        assert_eq!(flow.rx_hash, Some(0x51ccc178));
        assert_eq!(flow.saddr, "fd00::2".parse::<IpAddr>().unwrap());
        assert_eq!(flow.rx_queue, Some(3));

        key.family = 99;
        assert_eq!(flow_sample(&key, &value), None);
    }
}
