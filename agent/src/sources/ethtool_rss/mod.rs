//! RSS indirection table, hash key and hash function of a network device.
//!
//! Three ways in, one result type ([`RssConfig`]):
//! - [`read_netlink`] (`netlink.rs`): `ETHTOOL_MSG_RSS_GET` over generic netlink
//!   (Linux 6.2+, net/ethtool/rss.c), on the shared client [`crate::sources::genl`].
//! - [`read_ioctl`] (`ioctl.rs`): `SIOCETHTOOL` with `ETHTOOL_GRSSH` and
//!   `ETHTOOL_GRXRINGS`, for kernels without the netlink command.
//! - [`parse_ethtool_x`] (`text.rs`): the text of `ethtool -x DEV` (sosreport
//!   `ethtool_-x_DEV`) for captured roots.
//!
//! [`read`] picks netlink when the kernel has the command, the ioctl otherwise.
//! [`read_flow_hash`] (`flow_hash.rs`): the fields hashed per flow type (ETHTOOL_GRXFH).
//! Observe-only: every request here is a GET.

mod flow_hash;
mod ioctl;
mod netlink;
mod text;

use std::path::PathBuf;

use serde::Serialize;

use crate::error::SourceError;

pub use flow_hash::{read_flow_hash, FlowHash};
pub use ioctl::read_ioctl;
pub use netlink::{
    family_available, parse_rss_reply, read_netlink, EthtoolRssAttr, EthtoolRssCmd,
    EthtoolRssMessage,
};
pub use text::parse_ethtool_x;

/// Where an [`RssConfig`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RssSource {
    Netlink,
    Ioctl,
    Text,
}

/// One device's RSS configuration (context 0, the one normal traffic uses).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RssConfig {
    /// RX queue of each indirection-table entry. Empty when the device has no
    /// table (ethtool prints "Operation not supported": the driver reports size 0).
    pub indirection: Vec<u32>,
    /// Hash key; `None` when the device has none, or a captured text elided it.
    pub key: Option<Vec<u8>>,
    /// "toeplitz" | "xor" | "crc32" | "unknown(N)"; `None` when not reported.
    pub hfunc: Option<String>,
    /// RX ring count (ETHTOOL_GRXRINGS; the text's "with N RX ring(s)").
    pub rx_rings: Option<u32>,
    pub source: RssSource,
}

impl RssConfig {
    /// The key as ethtool prints it: lower-case hex bytes joined by ':'.
    pub fn key_hex(&self) -> Option<String> {
        self.key.as_ref().map(|key| {
            key.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        })
    }

    /// Share of table entries pointing at each queue `0..queues`. Entries naming a
    /// queue `>= queues` count in the total but in no slot, so the shares then sum
    /// to less than 1. An empty table gives all zeros.
    pub fn queue_shares(&self, queues: usize) -> Vec<f64> {
        let mut counts = vec![0u64; queues];
        for &q in &self.indirection {
            if let Some(slot) = usize::try_from(q).ok().and_then(|q| counts.get_mut(q)) {
                *slot += 1;
            }
        }
        let total = self.indirection.len();
        counts
            .into_iter()
            .map(|c| {
                if total == 0 {
                    0.0
                } else {
                    c as f64 / total as f64
                }
            })
            .collect()
    }
}

/// Name of an `ETH_RSS_HASH_*` value (include/uapi/linux/ethtool.h: bit 0
/// toeplitz, bit 1 xor, bit 2 crc32). The kernel reports exactly one bit; 0 means
/// the driver did not say.
fn hfunc_name(hfunc: u32) -> Option<String> {
    match hfunc {
        0 => None,
        1 => Some("toeplitz".to_string()),
        2 => Some("xor".to_string()),
        4 => Some("crc32".to_string()),
        other => Some(format!("unknown({other})")),
    }
}

/// Netlink when the kernel has ETHTOOL_MSG_RSS_GET, the ioctl otherwise. A
/// driver's "not supported" passes through as [`SourceError::Unsupported`].
pub fn read(ifname: &str) -> Result<RssConfig, SourceError> {
    match netlink::rss_get_netlink(ifname) {
        Ok(config) => Ok(config),
        Err(netlink::NetlinkOutcome::NoCommand(why)) => {
            log::debug!("{ifname}: RSS over netlink unavailable ({why}); using ETHTOOL_GRSSH");
            read_ioctl(ifname)
        }
        Err(netlink::NetlinkOutcome::Failed(e)) => Err(e),
    }
}

/// Interface names are at most IFNAMSIZ-1 bytes (altnames, which netlink also
/// accepts, up to ALTIFNAMSIZ-1) and never contain NUL or '/'.
fn check_ifname(ifname: &str) -> Result<(), SourceError> {
    if ifname.is_empty() || ifname.len() >= 128 || ifname.contains(['\0', '/']) {
        return Err(SourceError::NotFound {
            path: PathBuf::from(ifname),
        });
    }
    Ok(())
}

/// errno of a netlink GET -> SourceError, mapped as the ioctl's are
/// ([`crate::sources::ethtool_ioctl::errno_error`]): EOPNOTSUPP is the driver
/// declining (not a failure), ENODEV the device being gone. `msg` keeps the
/// extended-ACK text.
fn errno_to_source(errno: i32, ifname: &str, what: &str, msg: &str) -> SourceError {
    match errno {
        libc::EOPNOTSUPP => SourceError::Unsupported {
            what: what.to_string(),
            why: msg.to_string(),
        },
        libc::ENODEV => SourceError::NotFound {
            path: PathBuf::from(ifname),
        },
        _ => SourceError::Kernel {
            what: what.to_string(),
            msg: msg.to_string(),
        },
    }
}

#[cfg(test)]
mod tests;
