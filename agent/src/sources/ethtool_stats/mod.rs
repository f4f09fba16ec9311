//! Per-queue driver statistics: SIOCETHTOOL ETHTOOL_GSTRINGS/GSTATS (`ioctl.rs`) and the
//! text of `ethtool -S` (`text.rs`), with per-driver queue-name patterns
//! (`queue_names.rs`).
//!
//! Drivers name their per-queue counters freely (include/uapi/linux/ethtool.h only says the
//! strings are ETH_GSTRING_LEN bytes), so [`classify`] knows the naming zoo of the common
//! drivers; everything else stays a plain device-level counter.

mod ioctl;
mod queue_names;
mod text;

use serde::Serialize;

pub use ioctl::read_ioctl;
pub use queue_names::{classify, per_queue, rx_queue_packets};
pub use text::parse_ethtool_s;

/// The statistics a driver exposes through ETH_SS_STATS, in driver order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriverStats {
    /// ETHTOOL_GDRVINFO driver name ("virtio_net", "veth", "mlx5_core" ...).
    pub driver: Option<String>,
    pub stats: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Direction {
    Rx,
    Tx,
}

/// What a per-queue counter counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum QueueCounterKind {
    /// Packets; a queue may carry several that add up to its total (bnxt_en counts
    /// unicast, multicast and broadcast separately).
    Packets,
    /// Bytes; summed like [`QueueCounterKind::Packets`].
    Bytes,
    Drops,
    /// Any other per-queue counter, named by the driver's suffix ("kicks", "xdp_packets").
    Other(String),
}

/// One per-queue counter found among a driver's statistics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueCounter {
    pub queue: u32,
    pub direction: Direction,
    pub counter: QueueCounterKind,
    pub value: u64,
    /// The driver's own name for it, e.g. "rx_queue_3_packets".
    pub stat_name: String,
}

/// Receive packets and bytes of one RX queue, as far as the driver reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueuePackets {
    pub queue: u32,
    pub rx_packets: Option<u64>,
    pub rx_bytes: Option<u64>,
}

#[cfg(test)]
mod tests;
