//! Per-queue packets and bytes from the netdev generic-netlink family (qstats, Linux 6.9+).
//!
//! NETDEV_CMD_QSTATS_GET dumped with NETDEV_A_QSTATS_SCOPE = NETDEV_QSTATS_SCOPE_QUEUE
//! yields one message per (device, queue type, queue) for drivers that implement
//! `netdev_stat_ops` (Documentation/netlink/specs/netdev.yaml, "qstats-get"). Drivers
//! without them are silently left out of the dump. The request is a GET dump: nothing
//! is changed. The messages are in `message.rs`; the exchange is the shared client
//! [`crate::sources::genl`].

mod message;

use std::path::PathBuf;

use serde::Serialize;

use crate::error::SourceError;
use crate::sources::genl::{Family, GenlError, GenlSocket};

pub use message::{
    qstats_request, queue_stats_from_message, NetdevAttr, NetdevMessage, NETDEV_CMD_QSTATS_GET,
    NETDEV_FAMILY_NAME,
};

const WHAT: &str = "netdev genetlink qstats-get";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum QueueType {
    Rx,
    Tx,
}

/// Counters of one queue. `packets`/`bytes`/`hw_drops` are the rx-* attributes for an RX
/// queue and the tx-* ones for a TX queue; None when the driver does not report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    pub ifindex: u32,
    pub queue_type: QueueType,
    pub queue: u32,
    pub packets: Option<u64>,
    pub bytes: Option<u64>,
    pub hw_drops: Option<u64>,
}

fn source_error(what: &str, err: GenlError, ifindex: Option<u32>) -> SourceError {
    match err.errno() {
        Some(libc::EOPNOTSUPP) => SourceError::Unsupported {
            what: what.into(),
            why: "the kernel or driver does not support it (EOPNOTSUPP)".into(),
        },
        Some(libc::ENODEV) => SourceError::NotFound {
            path: PathBuf::from(match ifindex {
                Some(i) => format!("ifindex {i}"),
                None => "netdev".into(),
            }),
        },
        _ => SourceError::Kernel {
            what: what.into(),
            msg: err.to_string(),
        },
    }
}

fn open_and_resolve() -> Result<(GenlSocket, Option<Family>), SourceError> {
    let what = "genetlink CTRL_CMD_GETFAMILY netdev";
    let mut sock = GenlSocket::open().map_err(|e| source_error(what, e, None))?;
    let family = sock
        .resolve(NETDEV_FAMILY_NAME)
        .map_err(|e| source_error(what, e, None))?;
    Ok((sock, family))
}

/// Whether the netdev generic-netlink family is registered (Linux 6.3+). For `doctor`.
pub fn family_available() -> Result<bool, SourceError> {
    Ok(open_and_resolve()?.1.is_some())
}

/// Whether the netdev family offers the qstats-get op (Linux 6.9+), per CTRL_ATTR_OPS.
pub fn supports_qstats() -> Result<bool, SourceError> {
    Ok(open_and_resolve()?
        .1
        .is_some_and(|f| f.has_op(NETDEV_CMD_QSTATS_GET)))
}

/// Dump per-queue stats of every device in the caller's network namespace that has them,
/// or of one device. Sorted by (ifindex, queue type, queue). A device whose driver lacks
/// `netdev_stat_ops` contributes nothing (the kernel skips it), so an empty list is a
/// valid answer; a missing family or op is Unsupported, an unknown ifindex NotFound.
pub fn read_queue_stats(ifindex: Option<u32>) -> Result<Vec<QueueStats>, SourceError> {
    let (mut sock, family) = open_and_resolve()?;
    let Some(family) = family else {
        return Err(SourceError::Unsupported {
            what: WHAT.into(),
            why: "generic netlink family \"netdev\" is not registered (Linux < 6.3)".into(),
        });
    };
    if !family.has_op(NETDEV_CMD_QSTATS_GET) {
        return Err(SourceError::Unsupported {
            what: WHAT.into(),
            why: "the netdev family has no qstats-get op (Linux < 6.9)".into(),
        });
    }
    let replies = sock
        .request(qstats_request(ifindex), family.id, true)
        .map_err(|e| source_error(WHAT, e, ifindex))?;
    let mut stats = Vec::with_capacity(replies.len());
    for reply in &replies {
        match queue_stats_from_message(reply) {
            Ok(Some(s)) => stats.push(s),
            Ok(None) => {}
            Err(msg) => {
                return Err(SourceError::Kernel {
                    what: WHAT.into(),
                    msg,
                })
            }
        }
    }
    stats.sort_by_key(|s| (s.ifindex, s.queue_type, s.queue));
    Ok(stats)
}

#[cfg(test)]
mod tests;
