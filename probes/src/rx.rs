//! Per-RX-queue packet counts, a flow table for watched ports and ingress
//! age (kernel receive to application read) histograms (bpf/rx.bpf.c).
//!
//! - Every packet entering `__netif_receive_skb_core` (tracepoint
//!   net:netif_receive_skb) is counted per (netns, ifindex, RX queue).
//! - Packets to watched (protocol, local port) pairs are parsed (IPv4/IPv6
//!   without extension headers, UDP/TCP) into an LRU flow table, sampled 1 in
//!   `sample_every`, and timestamped.
//! - The timestamp is consumed when the application reads the packet: TCP
//!   through skb:skb_copy_datagram_iovec, UDP through sock:sock_recv_length
//!   plus sock:sk_data_ready (UDP copies linear skbs without reaching
//!   skb_copy_datagram_iovec; see bpf/rx.bpf.c). Ages go into log2
//!   histograms per socket inode and per RX queue, with same-CPU/other-CPU
//!   read counts.
//!
//! The read-side programs are optional: when one of them does not attach
//! (e.g. kernels without sock:sock_recv_length), queue and flow counting
//! still runs and [`RxProbe::ages_unavailable`] says why ages are missing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aya::maps::{Array, HashMap, MapData, PerCpuHashMap};
use aya::programs::RawTracePoint;
use aya::Ebpf;

use crate::error::{program_error_message, ProbeError};
use crate::loader::{self, map_read_error, map_write_error, ProgramStats};

const PROBE: &str = "rx";
const QUEUE_MAP: &str = "queue_stats";
const WATCHED_MAP: &str = "watched";
const CONFIG_MAP: &str = "rx_config";
const FLOWS_MAP: &str = "flows";
const INGRESS_MAP: &str = "ingress";
const SOCKET_AGES_MAP: &str = "socket_ages";
const QUEUE_AGES_MAP: &str = "queue_ages";
const SAMPLE_EVERY: &str = "sample_every";
/// The packet-side program: required.
const RECEIVE: (&str, &str) = ("rx_receive_skb", "netif_receive_skb");
/// The read-side programs: all or none.
const READ_SIDE: [(&str, &str); 3] = [
    ("rx_copy_dgram", "skb_copy_datagram_iovec"),
    ("rx_recv_length", "sock_recv_length"),
    ("rx_data_ready", "sk_data_ready"),
];
/// RX_QUEUE_NOT_RECORDED in bpf/rx.h.
const QUEUE_NOT_RECORDED: u32 = u32::MAX;
/// Capacity of the `watched` map.
pub const MAX_WATCHED_RX: usize = 1024;
/// Number of log2 ingress-age buckets (RX_AGE_BUCKETS in bpf/rx.h).
pub const AGE_BUCKETS: usize = 32;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rx.bpf.o"));

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

/// Mirror of `struct rx_watch_key` (bpf/rx.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RxWatchKey {
    protocol: u8,
    pad: u8,
    port: u16,
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
    last_ns: u64,
    rx_cpu: u32,
    rx_queue: u32,
    ifindex: u32,
    pad: u32,
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
unsafe impl aya::Pod for RxWatchKey {}
unsafe impl aya::Pod for RxFlowKey {}
unsafe impl aya::Pod for RxFlowValue {}
unsafe impl aya::Pod for RxAgeHist {}
unsafe impl aya::Pod for RxConfigValue {}

const _: () = assert!(std::mem::size_of::<RxQueueKey>() == 16);
const _: () = assert!(std::mem::size_of::<RxQueueValue>() == 16);
const _: () = assert!(std::mem::size_of::<RxWatchKey>() == 4);
const _: () = assert!(std::mem::size_of::<RxFlowKey>() == 44);
const _: () = assert!(std::mem::size_of::<RxFlowValue>() == 40);
const _: () = assert!(std::mem::size_of::<RxAgeHist>() == 272);
const _: () = assert!(std::mem::size_of::<RxConfigValue>() == 8);

/// Load-time settings of [`RxProbe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxConfig {
    /// 1 follows every watched packet (the default: ground truth); N > 1
    /// follows 1 in N at random. Flow counts are then raw sample counts;
    /// multiply by [`RxProbe::sample_every`] to estimate totals.
    pub sample_every: u32,
    /// Flow table capacity (LRU: the least recently seen flows are evicted).
    pub max_flows: u32,
    /// Capacity for received-but-unread watched packets awaiting their read
    /// (LRU: when full, the oldest stamps are evicted and their reads are
    /// not timed).
    pub max_inflight: u32,
}

impl Default for RxConfig {
    fn default() -> Self {
        Self {
            sample_every: 1,
            max_flows: 65_536,
            max_inflight: 65_536,
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
    queues: PerCpuHashMap<MapData, RxQueueKey, RxQueueValue>,
    watched: HashMap<MapData, RxWatchKey, u8>,
    config: Array<MapData, RxConfigValue>,
    flows: HashMap<MapData, RxFlowKey, RxFlowValue>,
    socket_ages: HashMap<MapData, u64, RxAgeHist>,
    queue_ages: HashMap<MapData, RxQueueKey, RxAgeHist>,
    sample_every: u32,
    track_ages: bool,
    ages_unavailable: Option<ProbeError>,
    // Owns the programs and their raw_tp links; see SoftirqTimeProbe.
    ebpf: Ebpf,
}

impl RxProbe {
    /// Loads and attaches the programs. netif_receive_skb must attach; the
    /// read-side programs are attached all or none (see
    /// [`RxProbe::ages_unavailable`]).
    pub fn load(config: RxConfig) -> Result<Self, ProbeError> {
        for (name, value) in [
            ("sample_every", config.sample_every),
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
        let mut ebpf = loader::open_object_with(
            PROBE,
            OBJECT,
            &[(SAMPLE_EVERY, config.sample_every)],
            &[
                (FLOWS_MAP, config.max_flows),
                (INGRESS_MAP, config.max_inflight),
            ],
        )?;
        loader::attach_raw_tracepoint(&mut ebpf, PROBE, RECEIVE.0, RECEIVE.1)?;
        let ages_unavailable = attach_read_side(&mut ebpf).err();

        let mut probe = Self {
            queues: loader::take_map(&mut ebpf, PROBE, QUEUE_MAP)?,
            watched: loader::take_map(&mut ebpf, PROBE, WATCHED_MAP)?,
            config: loader::take_map(&mut ebpf, PROBE, CONFIG_MAP)?,
            flows: loader::take_map(&mut ebpf, PROBE, FLOWS_MAP)?,
            socket_ages: loader::take_map(&mut ebpf, PROBE, SOCKET_AGES_MAP)?,
            queue_ages: loader::take_map(&mut ebpf, PROBE, QUEUE_AGES_MAP)?,
            sample_every: config.sample_every,
            track_ages: ages_unavailable.is_none(),
            ages_unavailable,
            ebpf,
        };
        probe.write_config(0)?;
        Ok(probe)
    }

    /// The sampling rate the probe was loaded with (1 = every packet).
    pub fn sample_every(&self) -> u32 {
        self.sample_every
    }

    /// Why ingress ages are not tracked, when a read-side program failed to
    /// load or attach; None when they are.
    pub fn ages_unavailable(&self) -> Option<&ProbeError> {
        self.ages_unavailable.as_ref()
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
        let wanted: Vec<RxWatchKey> = watched
            .iter()
            .map(|&(protocol, port)| RxWatchKey {
                protocol,
                pad: 0,
                port,
            })
            .collect();
        let stale: Vec<RxWatchKey> = self
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
        let count = u32::try_from(wanted.len()).unwrap_or(u32::MAX);
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
    /// over CPUs, sorted by key.
    pub fn read_queues(&self) -> Result<Vec<QueueCount>, ProbeError> {
        let mut queues = Vec::new();
        for entry in self.queues.iter() {
            let (key, per_cpu) = entry.map_err(|err| map_read_error(PROBE, QUEUE_MAP, &err))?;
            let (packets, bytes) = per_cpu
                .iter()
                .fold((0u64, 0u64), |(p, b), v| (p + v.packets, b + v.bytes));
            queues.push((key, packets, bytes));
        }
        queues.sort_by_key(|(key, _, _)| *key);
        Ok(queues
            .into_iter()
            .map(|(key, packets, bytes)| QueueCount {
                netns: u64::from(key.netns),
                ifindex: key.ifindex,
                queue: queue_of(key.queue),
                packets,
                bytes,
            })
            .collect())
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

/// Attaches the read-side programs; on the first failure unloads those
/// already attached (unloading detaches) and returns the error.
fn attach_read_side(ebpf: &mut Ebpf) -> Result<(), ProbeError> {
    for (index, (program, tracepoint)) in READ_SIDE.iter().enumerate() {
        if let Err(err) = loader::attach_raw_tracepoint(ebpf, PROBE, program, tracepoint) {
            for (attached, _) in &READ_SIDE[..=index] {
                if let Some(program) = ebpf.program_mut(attached) {
                    let raw_tp: Result<&mut RawTracePoint, _> = program.try_into();
                    if let Ok(raw_tp) = raw_tp {
                        if let Err(unload_err) = raw_tp.unload() {
                            log::debug!(
                                "rx: unloading {attached}: {}",
                                program_error_message(&unload_err).text
                            );
                        }
                    }
                }
            }
            return Err(err);
        }
    }
    Ok(())
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
                ..value
            },
        )
        .unwrap();
        assert_eq!(flow.saddr, "fd00::2".parse::<IpAddr>().unwrap());
        assert_eq!(flow.rx_queue, Some(3));

        key.family = 99;
        assert_eq!(flow_sample(&key, &value), None);
    }
}
