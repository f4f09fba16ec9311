//! What a replay sends and how it went: the options, the replay units (one
//! per distinct flow and send CPU), their batching and where each landed.
//! Shared by the engine, which plans the units, and the UDP/TCP senders,
//! which send them; it depends on neither.

use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

/// Largest replica group (`SHADOW_MAX_SOCKS` of the built-ins' `socks`).
pub const MAX_SOCKETS: u32 = 256;
/// Most heavy flows a `heavy_flows` map takes (`SHADOW_MAX_HEAVY`).
pub const MAX_HEAVY_FLOWS: usize = 1024;

/// How to replay.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayOptions {
    /// Replica group size N (1..=256).
    pub sockets: u32,
    /// Per-socket weights for a candidate's `weights` map (length N).
    pub weights: Option<Vec<u32>>,
    /// How many of the heaviest flows a `heavy_flows` map receives
    /// (isolate-heavy); they get sockets 0..min(heavy_flows, N-1).
    pub heavy_flows: usize,
    /// Samples per sendmmsg(2) batch (UDP) or connections in flight (TCP,
    /// at most 128).
    pub batch_size: usize,
    /// How long to wait for a sample that neither arrived nor was dropped
    /// before counting it lost.
    pub drain_timeout: Duration,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            sockets: 4,
            weights: None,
            heavy_flows: 1,
            batch_size: 256,
            drain_timeout: Duration::from_millis(200),
        }
    }
}

/// Distinct flows with the same send CPU, merged: what is actually sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unit {
    pub saddr: SocketAddr,
    pub daddr: SocketAddr,
    /// CPU the sender pins itself to.
    pub cpu: usize,
    pub weight: u64,
    pub samples: usize,
}

/// Where each unit landed under one policy.
#[derive(Debug, Default)]
pub(crate) struct Landing {
    pub socket: Vec<Option<u32>>,
    /// Units neither received nor dropped within the drain timeout.
    pub lost: usize,
    /// Units that could not be sent at all (TCP source bind conflicts).
    pub unsendable: usize,
    pub notes: Vec<String>,
}

impl Landing {
    pub fn new(units: usize) -> Self {
        Self {
            socket: vec![None; units],
            ..Self::default()
        }
    }

    /// Records the first landing of a unit; false for unknown or repeated ones.
    pub fn record(&mut self, unit: usize, socket: u32) -> bool {
        match self.socket.get_mut(unit) {
            Some(slot @ None) => {
                *slot = Some(socket);
                true
            }
            _ => false,
        }
    }
}

/// Consecutive runs of units with the same CPU and address family, cut to
/// `batch` units.
pub(crate) fn batches(units: &[Unit], batch: usize) -> Vec<Range<usize>> {
    let batch = batch.max(1);
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=units.len() {
        let cut = i == units.len()
            || i - start == batch
            || units[i].cpu != units[start].cpu
            || units[i].daddr.is_ipv4() != units[start].daddr.is_ipv4();
        if cut {
            out.push(start..i);
            start = i;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_split_on_cpu_family_and_size() {
        let unit = |cpu: usize, v6: bool| Unit {
            saddr: if v6 {
                "[2001:db8::1]:1".parse().unwrap()
            } else {
                "10.0.0.1:1".parse().unwrap()
            },
            daddr: if v6 {
                "[2001:db8::9]:2".parse().unwrap()
            } else {
                "10.0.0.9:2".parse().unwrap()
            },
            cpu,
            weight: 1,
            samples: 1,
        };
        let units = vec![
            unit(0, false),
            unit(0, false),
            unit(0, false),
            unit(0, true),
            unit(1, true),
        ];
        assert_eq!(batches(&units, 2), vec![0..2, 2..3, 3..4, 4..5]);
        assert_eq!(batches(&[], 2), Vec::<Range<usize>>::new());
    }
}
