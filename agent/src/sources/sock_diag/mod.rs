//! Listening sockets, their queues and drops, over sock_diag (NETLINK_SOCK_DIAG,
//! inet_diag; `netlink.rs`), with a /proc/net/{tcp,tcp6,udp,udp6} parser as the
//! fallback and for captured roots (`proc_net.rs`).
//!
//! One `dump_listeners` makes four SOCK_DIAG_BY_FAMILY dumps (TCP and UDP, IPv4 and
//! IPv6) in the *calling thread's* network namespace, asking for INET_DIAG_SKMEMINFO.
//! What the kernel puts in each reply (include/uapi/linux/inet_diag.h `inet_diag_msg`):
//!
//! - TCP LISTEN: `idiag_rqueue` = sk_ack_backlog, the current accept-queue length, and
//!   `idiag_wqueue` = sk_max_ack_backlog, the listen() backlog clamped to somaxconn
//!   (net/ipv4/tcp_diag.c `tcp_diag_get_info`).
//! - UDP: `idiag_rqueue` = udp_rqueue_get() = receive-queue bytes (skb truesize, so
//!   more than the payload), `idiag_wqueue` = sk_wmem_alloc (net/ipv4/udp_diag.c
//!   `udp_diag_get_info`).
//! - INET_DIAG_SKMEMINFO: `u32[SK_MEMINFO_VARS]` indexed by include/uapi/linux/sock_diag.h
//!   (RMEM_ALLOC 0, RCVBUF 1, ..., BACKLOG 7, DROPS 8). BACKLOG and DROPS were appended
//!   later; a kernel that predates them sends a shorter array, and the missing fields
//!   stay `None` (the crate's own `MemInfo` parser would reject the whole attribute).
//! - `idiag_cookie`: sock_gen_cookie() as two host-order u32, low word first
//!   (net/core/sock_diag.c `sock_diag_save_cookie`), the value SO_COOKIE returns.
//!
//! Only unconnected UDP sockets (state TCP_CLOSE) with a bound port are kept: a
//! connected UDP socket (state ESTABLISHED) receives from its one peer only and is not
//! a listener the reuseport selection spreads flows over.
//!
//! Two sockets on one (netns, protocol, address, port) imply SO_REUSEPORT for TCP
//! listeners, and SO_REUSEPORT or SO_REUSEADDR for UDP; [`candidate_groups`] finds them
//! and the eBPF probe confirms membership by reuseport id. Sockets bound to different
//! devices (SO_BINDTODEVICE) on one address are not told apart (except IPv6 link-local
//! addresses, which carry the interface as scope id).

mod netlink;
mod proc_net;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use netlink_packet_sock_diag::constants::{IPPROTO_TCP, IPPROTO_UDP};
use serde::Serialize;

pub use netlink::{
    dump_all_namespaces, dump_listeners, dump_request, listen_socket_from_payload,
    parse_dump_datagram, parse_sockstat_inuse, DumpError,
};
pub use proc_net::{parse_proc_net, read_proc_net, read_proc_net_dir};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    pub(crate) fn ipproto(self) -> u8 {
        match self {
            Protocol::Tcp => IPPROTO_TCP,
            Protocol::Udp => IPPROTO_UDP,
        }
    }
}

/// A TCP socket in LISTEN or an unconnected UDP socket with a bound port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListenSocket {
    /// Inode of the network namespace the socket lives in (see `sources::netns`); 0 when
    /// unknown (a captured root).
    pub netns: u64,
    pub protocol: Protocol,
    pub local: SocketAddr,
    /// Socket inode, as in /proc/PID/fd/N -> "socket:[INODE]".
    pub inode: u64,
    pub uid: u32,
    /// The kernel's socket cookie (SO_COOKIE); 0 when unknown (/proc/net has none).
    pub cookie: u64,
    /// TCP LISTEN: connections waiting in the accept queue. UDP: receive-queue bytes
    /// (truesize of the queued skbs).
    pub queue_depth: u64,
    /// TCP LISTEN: the accept-queue limit (listen backlog clamped to somaxconn). `None`
    /// for UDP and from /proc/net/tcp, which does not show it.
    pub backlog_limit: Option<u64>,
    /// Packets the socket dropped (SK_MEMINFO_DROPS; /proc/net/udp's drops column).
    pub drops: Option<u64>,
    /// SO_RCVBUF as the kernel holds it (sk_rcvbuf, twice the value set).
    pub rcvbuf: Option<u64>,
    /// Receive memory in use (sk_rmem_alloc).
    pub rmem_alloc: Option<u64>,
}

/// Sockets sharing one (netns, protocol, local address and port): a likely
/// SO_REUSEPORT group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReuseportCandidate {
    pub netns: u64,
    pub protocol: Protocol,
    pub local: SocketAddr,
    /// Sorted by inode.
    pub members: Vec<ListenSocket>,
}

/// Pure: group sockets by (netns, protocol, local address and port), keeping groups of
/// two or more; sorted by that key, members by inode.
pub fn candidate_groups(sockets: &[ListenSocket]) -> Vec<ReuseportCandidate> {
    let mut groups: BTreeMap<(u64, Protocol, SocketAddr), Vec<ListenSocket>> = BTreeMap::new();
    for s in sockets {
        groups
            .entry((s.netns, s.protocol, s.local))
            .or_default()
            .push(s.clone());
    }
    groups
        .into_iter()
        .filter(|(_, members)| members.len() > 1)
        .map(|((netns, protocol, local), mut members)| {
            members.sort_by_key(|m| (m.inode, m.cookie));
            ReuseportCandidate {
                netns,
                protocol,
                local,
                members,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
