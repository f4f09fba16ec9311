//! The sock_diag dumps (NETLINK_SOCK_DIAG, inet_diag): request, datagram decoding
//! (pure) and the dump in one or every network namespace.

use std::mem::size_of;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NlasIterator, Parseable, NLMSG_DONE, NLMSG_ERROR,
    NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::constants::{
    AF_INET, AF_INET6, INET_DIAG_SKMEMINFO, SOCK_DIAG_BY_FAMILY, TCP_CLOSE, TCP_LISTEN,
};
use netlink_packet_sock_diag::inet::{
    ExtensionFlags, InetRequest, InetResponseBuffer, InetResponseHeader, SocketId, StateFlags,
};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_sys::protocols::NETLINK_SOCK_DIAG;

use super::{ListenSocket, Protocol};
use crate::error::SourceError;
use crate::sources::netlink::{is_timeout, RECV_TIMEOUT};
use crate::sources::netns::{current_netns_inode, in_netns, list_netns, NetnsRef};
use crate::sources::HostRoot;

/// The kernel caps a dump datagram at 32 KiB minus skb overhead when the reader's buffer
/// is at least that big (net/netlink/af_netlink.c `netlink_recvmsg`, max_recvmsg_len).
const RECV_BUF_BYTES: usize = 64 * 1024;

/// sock_diag's SK_MEMINFO_* indices (include/uapi/linux/sock_diag.h).
const SK_MEMINFO_RMEM_ALLOC: usize = 0;
const SK_MEMINFO_RCVBUF: usize = 1;
const SK_MEMINFO_DROPS: usize = 8;

fn what(protocol: Protocol, family: u8) -> String {
    let (proto, state) = match protocol {
        Protocol::Tcp => ("TCP", "LISTEN"),
        Protocol::Udp => ("UDP", "unconnected"),
    };
    let fam = if family == AF_INET6 { "IPv6" } else { "IPv4" };
    format!("sock_diag {proto}/{fam} {state} dump")
}

/// Pure: the bytes of one SOCK_DIAG_BY_FAMILY dump request (`inet_diag_req_v2`) for
/// TCP LISTEN or UDP unconnected sockets of one family, asking for SKMEMINFO.
pub fn dump_request(protocol: Protocol, family: u8) -> Vec<u8> {
    let states = match protocol {
        Protocol::Tcp => StateFlags::LISTEN,
        Protocol::Udp => StateFlags::CLOSE,
    };
    let socket_id = if family == AF_INET6 {
        SocketId::new_v6()
    } else {
        SocketId::new_v4()
    };
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = 1;
    let mut packet = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: protocol.ipproto(),
            extensions: ExtensionFlags::SKMEMINFO,
            states,
            socket_id,
        })
        .into(),
    );
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    buf
}

/// Why a dump datagram was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DumpError {
    /// NLMSG_ERROR, or NLMSG_DONE carrying a negative errno.
    Errno(i32),
    /// Bytes that are not a well-formed reply.
    Decode(String),
}

/// Pure: the messages of one received datagram. Keeps TCP LISTEN / UDP unconnected
/// sockets of `protocol` in `out`; `Ok(true)` once NLMSG_DONE is seen.
pub fn parse_dump_datagram(
    bytes: &[u8],
    protocol: Protocol,
    netns: u64,
    out: &mut Vec<ListenSocket>,
) -> Result<bool, DumpError> {
    let mut offset = 0;
    while offset < bytes.len() {
        let msg = NetlinkBuffer::new_checked(&bytes[offset..])
            .map_err(|e| DumpError::Decode(format!("at byte {offset}: {e}")))?;
        let payload = msg.payload();
        let errno_in_payload = || {
            payload
                .get(..4)
                .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        };
        match msg.message_type() {
            NLMSG_DONE => {
                return match errno_in_payload() {
                    Some(code) if code < 0 => Err(DumpError::Errno(-code)),
                    _ => Ok(true),
                };
            }
            NLMSG_ERROR => match errno_in_payload() {
                Some(code) if code < 0 => return Err(DumpError::Errno(-code)),
                Some(_) => {} // an ACK
                None => return Err(DumpError::Decode("short NLMSG_ERROR".into())),
            },
            NLMSG_NOOP => {}
            NLMSG_OVERRUN => return Err(DumpError::Decode("NLMSG_OVERRUN".into())),
            SOCK_DIAG_BY_FAMILY => {
                if let Some(s) = listen_socket_from_payload(payload, protocol, netns)
                    .map_err(|e| DumpError::Decode(format!("at byte {offset}: {e}")))?
                {
                    out.push(s);
                }
            }
            other => log::debug!("sock_diag: message type {other} ignored"),
        }
        if msg.flags() & NLM_F_DUMP_INTR != 0 {
            // The table changed under the dump; what we have is still each socket's
            // own consistent state, and the next cycle dumps afresh.
            log::debug!("sock_diag: dump interrupted (NLM_F_DUMP_INTR)");
        }
        // new_checked guarantees length >= 16, so the loop always advances.
        offset += (msg.length() as usize + 3) & !3;
    }
    Ok(false)
}

/// Pure: one `inet_diag_msg` plus attributes -> a socket, or `None` when it is not a
/// TCP LISTEN / unconnected bound UDP socket. Attributes that do not parse are ignored
/// (the header alone is still useful).
pub fn listen_socket_from_payload(
    payload: &[u8],
    protocol: Protocol,
    netns: u64,
) -> Result<Option<ListenSocket>, String> {
    let header_len = size_of::<InetResponseBuffer>();
    let head = payload.get(..header_len).ok_or_else(|| {
        format!(
            "inet_diag_msg of {} bytes, need {header_len}",
            payload.len()
        )
    })?;
    let header = InetResponseHeader::parse(head).map_err(|e| e.to_string())?;
    let id = &header.socket_id;
    let keep = match protocol {
        Protocol::Tcp => header.state == TCP_LISTEN,
        Protocol::Udp => header.state == TCP_CLOSE && id.source_port != 0,
    };
    if !keep {
        return Ok(None);
    }
    let mut meminfo: Vec<u32> = Vec::new();
    for nla in NlasIterator::new(&payload[header_len..]) {
        match nla {
            Ok(nla) if nla.kind() == INET_DIAG_SKMEMINFO => {
                meminfo = nla
                    .value()
                    .chunks_exact(4)
                    .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
            }
            Ok(_) => {}
            Err(e) => {
                log::debug!(
                    "sock_diag: attributes of inode {} cut short: {e}",
                    header.inode
                );
                break;
            }
        }
    }
    let mem = |i: usize| meminfo.get(i).map(|&v| u64::from(v));
    let local = match id.source_address {
        IpAddr::V4(ip) => SocketAddr::V4(SocketAddrV4::new(ip, id.source_port)),
        IpAddr::V6(ip) => {
            // A link-local address means nothing without its interface.
            let scope = if ip.segments()[0] & 0xffc0 == 0xfe80 {
                id.interface_id
            } else {
                0
            };
            SocketAddr::V6(SocketAddrV6::new(ip, id.source_port, 0, scope))
        }
    };
    let c = id.cookie;
    let cookie = u64::from(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        | u64::from(u32::from_ne_bytes([c[4], c[5], c[6], c[7]])) << 32;
    Ok(Some(ListenSocket {
        netns,
        protocol,
        local,
        inode: u64::from(header.inode),
        uid: header.uid,
        cookie,
        queue_depth: u64::from(header.recv_queue),
        backlog_limit: match protocol {
            Protocol::Tcp => Some(u64::from(header.send_queue)),
            Protocol::Udp => None,
        },
        drops: mem(SK_MEMINFO_DROPS),
        rcvbuf: mem(SK_MEMINFO_RCVBUF),
        rmem_alloc: mem(SK_MEMINFO_RMEM_ALLOC),
    }))
}

pub(super) fn dump_error(what: &str, errno: i32) -> SourceError {
    let io = std::io::Error::from_raw_os_error(errno);
    match errno {
        // No inet_diag handler for the protocol (udp_diag not built/loadable), or the
        // family is off (ipv6.disable=1).
        libc::ENOENT | libc::EOPNOTSUPP | libc::EAFNOSUPPORT | libc::EPROTONOSUPPORT => {
            SourceError::Unsupported {
                what: what.to_string(),
                why: io.to_string(),
            }
        }
        _ => SourceError::Kernel {
            what: what.to_string(),
            msg: io.to_string(),
        },
    }
}

fn kernel(what: &str, msg: impl std::fmt::Display) -> SourceError {
    SourceError::Kernel {
        what: what.to_string(),
        msg: msg.to_string(),
    }
}

/// One dump on a fresh NETLINK_SOCK_DIAG socket (in the calling thread's netns).
fn dump_one(
    protocol: Protocol,
    family: u8,
    netns: u64,
    out: &mut Vec<ListenSocket>,
) -> Result<(), SourceError> {
    let what = what(protocol, family);
    let socket = crate::sources::netlink::open(NETLINK_SOCK_DIAG).map_err(|e| {
        match (e.step, e.source.raw_os_error()) {
            ("socket", Some(code @ libc::EPROTONOSUPPORT)) => dump_error(&what, code),
            _ => kernel(&what, e),
        }
    })?;
    socket
        .send(&dump_request(protocol, family), 0)
        .map_err(|e| kernel(&what, format!("send: {e}")))?;

    let mut buf = vec![0u8; RECV_BUF_BYTES];
    loop {
        let n = match socket.recv(&mut &mut buf[..], libc::MSG_TRUNC) {
            Ok(n) => n,
            Err(e) if is_timeout(&e) => {
                return Err(kernel(&what, format!("no reply within {RECV_TIMEOUT:?}")))
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(kernel(&what, format!("recv: {e}"))),
        };
        if n > buf.len() {
            return Err(kernel(
                &what,
                format!("datagram of {n} bytes truncated to {}", buf.len()),
            ));
        }
        match parse_dump_datagram(&buf[..n], protocol, netns, out) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(DumpError::Errno(code)) => return Err(dump_error(&what, code)),
            Err(DumpError::Decode(msg)) => return Err(kernel(&what, msg)),
        }
    }
}

/// Pure: N of the `LABEL: inuse N` line of /proc/net/sockstat or sockstat6 (LABEL "TCP",
/// "UDP", "TCP6", "UDP6"); None when the line is missing or malformed.
pub fn parse_sockstat_inuse(text: &str, label: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(label)?.strip_prefix(": inuse ")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Whether the calling thread's namespace holds no hashed socket of `protocol` and
/// `family`, so its dump can be skipped: each UDP (and TCP listener) dump walks the
/// hash table every namespace shares and costs the kernel a visit of every socket on
/// the host, which with 50 000 sockets in a few namespaces was most of a cycle. The
/// count is the namespace's sock_prot_inuse_get (net/ipv4/proc.c sockstat_seq_show,
/// net/ipv6/proc.c sockstat6_seq_show; 5.10 to 6.18), raised when a socket is hashed:
/// bound (UDP) or listening/connected (TCP), a superset of what the dump keeps. False
/// when unknown (no /proc, IPv6 off): then the dump runs as before.
fn none_in_use(
    protocol: Protocol,
    family: u8,
    sockstat: &Option<String>,
    sockstat6: &Option<String>,
) -> bool {
    let (text, label) = match (protocol, family == AF_INET6) {
        (Protocol::Tcp, false) => (sockstat, "TCP"),
        (Protocol::Udp, false) => (sockstat, "UDP"),
        (Protocol::Tcp, true) => (sockstat6, "TCP6"),
        (Protocol::Udp, true) => (sockstat6, "UDP6"),
    };
    text.as_deref().and_then(|t| parse_sockstat_inuse(t, label)) == Some(0)
}

/// TCP LISTEN and unconnected bound UDP sockets, IPv4 and IPv6, of the calling thread's
/// network namespace, each labelled `netns_inode`; sorted by (protocol, local, inode).
///
/// A dump the kernel does not offer (Unsupported: no udp_diag, IPv6 disabled) is
/// skipped and logged, so TCP is still reported without udp_diag; if every dump is
/// unsupported, that is the error. Any other failure fails the whole call. A dump of a
/// protocol and family the namespace has no socket of is not made ([`none_in_use`]).
pub fn dump_listeners(netns_inode: u64) -> Result<Vec<ListenSocket>, SourceError> {
    let mut out = Vec::new();
    let mut unsupported = None;
    let mut done = 0;
    // thread-self: the namespace of this thread (in_netns moved it), not the process's.
    let sockstat = std::fs::read_to_string("/proc/thread-self/net/sockstat").ok();
    let sockstat6 = std::fs::read_to_string("/proc/thread-self/net/sockstat6").ok();
    for protocol in [Protocol::Tcp, Protocol::Udp] {
        for family in [AF_INET, AF_INET6] {
            if none_in_use(protocol, family, &sockstat, &sockstat6) {
                done += 1;
                continue;
            }
            match dump_one(protocol, family, netns_inode, &mut out) {
                Ok(()) => done += 1,
                Err(e @ SourceError::Unsupported { .. }) => {
                    log::debug!("{e}");
                    unsupported.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
    }
    if done == 0 {
        if let Some(e) = unsupported {
            return Err(e);
        }
    }
    out.sort_by_key(|s| (s.protocol, s.local, s.inode));
    Ok(out)
}

/// [`dump_listeners`] in every network namespace [`list_netns`] finds: the caller's own
/// directly, the others on a thread moved there by [`in_netns`]. One namespace failing
/// is reported with its [`NetnsRef`] and the others go on. A namespace that vanished
/// between listing and entering (its process exited, or the pid now names another
/// namespace) is skipped. When the namespaces cannot be listed at all, the caller's own
/// is still dumped and the listing error is reported against it.
pub fn dump_all_namespaces(root: &HostRoot) -> (Vec<ListenSocket>, Vec<(NetnsRef, SourceError)>) {
    let mut sockets = Vec::new();
    let mut errors = Vec::new();
    let here = current_netns_inode().ok();
    let namespaces = match list_netns(root) {
        Ok(list) => list,
        Err(e) => {
            let me = NetnsRef {
                inode: here.unwrap_or(0),
                path: "/proc/thread-self/ns/net".into(),
                pid: None,
            };
            errors.push((me.clone(), e));
            match dump_listeners(me.inode) {
                Ok(found) => sockets.extend(found),
                Err(e) => errors.push((me, e)),
            }
            return (sockets, errors);
        }
    };
    for ns in namespaces {
        if Some(ns.inode) == here {
            match dump_listeners(ns.inode) {
                Ok(found) => sockets.extend(found),
                Err(e) => errors.push((ns, e)),
            }
            continue;
        }
        let expected = ns.inode;
        let result = in_netns(&ns.path, || match current_netns_inode() {
            // The path now leads elsewhere (pid reused): not the namespace listed.
            Ok(actual) if actual != expected => None,
            Ok(actual) => Some(dump_listeners(actual)),
            Err(e) => Some(Err(SourceError::Kernel {
                what: "netns identity".into(),
                msg: e.to_string(),
            })),
        });
        match result {
            Ok(Some(Ok(found))) => sockets.extend(found),
            Ok(Some(Err(e))) => errors.push((ns, e)),
            Ok(None) => log::debug!("{}: no longer namespace {expected}", ns.path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                log::debug!("{}: vanished: {e}", ns.path.display())
            }
            Err(e) => {
                let path = ns.path.clone();
                errors.push((ns, SourceError::io(path, e)));
            }
        }
    }
    (sockets, errors)
}
