//! Per-queue packets and bytes from the netdev generic-netlink family (qstats, Linux 6.9+).
//!
//! NETDEV_CMD_QSTATS_GET dumped with NETDEV_A_QSTATS_SCOPE = NETDEV_QSTATS_SCOPE_QUEUE
//! yields one message per (device, queue type, queue) for drivers that implement
//! `netdev_stat_ops` (Documentation/netlink/specs/netdev.yaml, "qstats-get"). Drivers
//! without them are silently left out of the dump. The request is a GET dump: nothing
//! is changed. Numbers below are from include/uapi/linux/netdev.h.

use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, NetlinkHeader, NetlinkMessage, NetlinkPayload, Nla,
    NlasIterator, Parseable, ParseableParametrized, NLA_TYPE_MASK, NLM_F_ACK, NLM_F_DUMP,
    NLM_F_REQUEST,
};
use netlink_packet_generic::ctrl::nlas::{GenlCtrlAttrs, OpAttrs};
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};
use serde::Serialize;

use crate::error::SourceError;

pub const NETDEV_FAMILY_NAME: &str = "netdev";
const NETDEV_FAMILY_VERSION: u8 = 1;
/// enum netdev_cmd: NETDEV_CMD_QSTATS_GET (dump-only op, added in 6.9).
pub const NETDEV_CMD_QSTATS_GET: u8 = 12;

// NETDEV_A_QSTATS_* attribute types.
const A_IFINDEX: u16 = 1;
const A_QUEUE_TYPE: u16 = 2;
const A_QUEUE_ID: u16 = 3;
const A_SCOPE: u16 = 4;
const A_RX_PACKETS: u16 = 8;
const A_RX_BYTES: u16 = 9;
const A_TX_PACKETS: u16 = 10;
const A_TX_BYTES: u16 = 11;
const A_RX_HW_DROPS: u16 = 13;
const A_TX_HW_DROPS: u16 = 24;

/// enum netdev_qstats_scope: NETDEV_QSTATS_SCOPE_QUEUE.
const SCOPE_QUEUE: u64 = 1;
/// enum netdev_queue_type.
const QUEUE_TYPE_RX: u64 = 0;
const QUEUE_TYPE_TX: u64 = 1;

const WHAT: &str = "netdev genetlink qstats-get";
/// Bound on one netlink exchange, so a wedged socket cannot stall the cycle.
const RECV_TIMEOUT: Duration = Duration::from_secs(5);

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

/// One attribute of a netdev message. Every qstats attribute is a u32 or a netlink
/// "uint" (4 or 8 bytes, include/net/netlink.h nla_put_uint), so one variant holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetdevAttr {
    Uint { kind: u16, value: u64 },
    Other(DefaultNla),
}

impl Nla for NetdevAttr {
    fn value_len(&self) -> usize {
        match self {
            // u32 attributes (ifindex) must be exactly 4 bytes; uint ones take 4 or 8.
            NetdevAttr::Uint { value, .. } if *value <= u32::MAX as u64 => 4,
            NetdevAttr::Uint { .. } => 8,
            NetdevAttr::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            NetdevAttr::Uint { kind, .. } => *kind,
            NetdevAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            NetdevAttr::Uint { value, .. } if *value <= u32::MAX as u64 => {
                buffer[..4].copy_from_slice(&(*value as u32).to_ne_bytes())
            }
            NetdevAttr::Uint { value, .. } => buffer[..8].copy_from_slice(&value.to_ne_bytes()),
            NetdevAttr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

/// The generic-netlink payload of the netdev family: command plus flat attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetdevMessage {
    pub cmd: u8,
    pub attrs: Vec<NetdevAttr>,
}

impl GenlFamily for NetdevMessage {
    fn family_name() -> &'static str {
        NETDEV_FAMILY_NAME
    }

    fn command(&self) -> u8 {
        self.cmd
    }

    fn version(&self) -> u8 {
        NETDEV_FAMILY_VERSION
    }
}

impl Emitable for NetdevMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for NetdevMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let mut attrs = Vec::new();
        for nla in NlasIterator::new(buf) {
            let nla = nla?;
            let kind = nla.kind() & NLA_TYPE_MASK;
            let v = nla.value();
            let value = match v.len() {
                4 => Some(u32::from_ne_bytes([v[0], v[1], v[2], v[3]]) as u64),
                8 => Some(u64::from_ne_bytes([
                    v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7],
                ])),
                _ => None,
            };
            attrs.push(match value {
                Some(value) if !nla.nested_flag() => NetdevAttr::Uint { kind, value },
                _ => NetdevAttr::Other(DefaultNla::parse(&nla)?),
            });
        }
        Ok(NetdevMessage {
            cmd: header.cmd,
            attrs,
        })
    }
}

/// The QSTATS_GET dump request: queue scope, optionally one device.
pub fn qstats_request(ifindex: Option<u32>) -> NetdevMessage {
    let mut attrs = vec![NetdevAttr::Uint {
        kind: A_SCOPE,
        value: SCOPE_QUEUE,
    }];
    if let Some(ifindex) = ifindex {
        attrs.push(NetdevAttr::Uint {
            kind: A_IFINDEX,
            value: ifindex as u64,
        });
    }
    NetdevMessage {
        cmd: NETDEV_CMD_QSTATS_GET,
        attrs,
    }
}

/// Pure: one reply message to a [`QueueStats`]. Ok(None) for a queue type this code does
/// not know (a newer kernel's); Err when a reply lacks ifindex, queue type or queue id.
pub fn queue_stats_from_message(msg: &NetdevMessage) -> Result<Option<QueueStats>, String> {
    let get = |kind: u16| {
        msg.attrs.iter().find_map(|a| match a {
            NetdevAttr::Uint { kind: k, value } if *k == kind => Some(*value),
            _ => None,
        })
    };
    let ifindex = get(A_IFINDEX).ok_or("reply without NETDEV_A_QSTATS_IFINDEX")?;
    let queue_type = get(A_QUEUE_TYPE).ok_or("reply without NETDEV_A_QSTATS_QUEUE_TYPE")?;
    let queue = get(A_QUEUE_ID).ok_or("reply without NETDEV_A_QSTATS_QUEUE_ID")?;
    let (ifindex, queue) = match (u32::try_from(ifindex), u32::try_from(queue)) {
        (Ok(i), Ok(q)) => (i, q),
        _ => return Err(format!("ifindex {ifindex} or queue {queue} exceeds u32")),
    };
    let (queue_type, packets, bytes, drops) = match queue_type {
        QUEUE_TYPE_RX => (QueueType::Rx, A_RX_PACKETS, A_RX_BYTES, A_RX_HW_DROPS),
        QUEUE_TYPE_TX => (QueueType::Tx, A_TX_PACKETS, A_TX_BYTES, A_TX_HW_DROPS),
        _ => return Ok(None),
    };
    Ok(Some(QueueStats {
        ifindex,
        queue_type,
        queue,
        packets: get(packets),
        bytes: get(bytes),
        hw_drops: get(drops),
    }))
}

/// How a netlink exchange ended badly.
#[derive(Debug)]
enum NlError {
    /// The kernel answered with this (positive) errno.
    Errno(i32),
    /// Socket-level failure.
    Io(io::Error),
    /// A reply we could not decode.
    Decode(String),
}

/// What one received datagram held.
#[derive(Debug, PartialEq)]
struct Batch<T> {
    messages: Vec<T>,
    /// NLMSG_DONE, or the ACK of a non-dump request, was seen.
    finished: bool,
}

/// Pure: split a datagram into netlink messages. Stops at NLMSG_DONE or an ACK; a
/// negative NLMSG_DONE code (a failing dump) or NLMSG_ERROR code becomes Errno.
fn decode_batch<T>(buf: &[u8], seq: u32) -> Result<Batch<T>, NlError>
where
    T: ParseableParametrized<[u8], GenlHeader> + std::fmt::Debug,
{
    let mut batch = Batch {
        messages: Vec::new(),
        finished: false,
    };
    let mut offset = 0;
    while offset < buf.len() {
        let msg = NetlinkMessage::<GenlMessage<T>>::deserialize(&buf[offset..])
            .map_err(|e| NlError::Decode(format!("at byte {offset}: {e}")))?;
        // deserialize checked 16 <= length <= remaining, so this always advances.
        let len = msg.header.length as usize;
        offset += (len + 3) & !3;
        if msg.header.sequence_number != seq {
            continue;
        }
        match msg.payload {
            NetlinkPayload::InnerMessage(genl) => batch.messages.push(genl.payload),
            NetlinkPayload::Done(done) if done.code < 0 => {
                return Err(NlError::Errno(-done.code));
            }
            NetlinkPayload::Done(_) => {
                batch.finished = true;
                break;
            }
            NetlinkPayload::Error(err) => match err.code {
                Some(code) => return Err(NlError::Errno(code.get().abs())),
                None => {
                    batch.finished = true;
                    break;
                }
            },
            _ => {}
        }
    }
    Ok(batch)
}

/// A blocking generic-netlink socket in the calling thread's network namespace.
struct GenlSocket {
    socket: Socket,
    seq: u32,
}

impl GenlSocket {
    fn open() -> Result<Self, NlError> {
        let mut socket = Socket::new(NETLINK_GENERIC).map_err(NlError::Io)?;
        socket.bind_auto().map_err(NlError::Io)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(NlError::Io)?;
        let tv = libc::timeval {
            tv_sec: RECV_TIMEOUT.as_secs() as libc::time_t,
            tv_usec: 0,
        };
        // SAFETY: setsockopt with a valid timeval of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(NlError::Io(io::Error::last_os_error()));
        }
        Ok(Self { socket, seq: 0 })
    }

    /// Send one request (a dump when `dump`) and collect the replies until NLMSG_DONE
    /// or the ACK.
    fn request<T>(&mut self, payload: T, family_id: u16, dump: bool) -> Result<Vec<T>, NlError>
    where
        T: GenlFamily + Emitable + ParseableParametrized<[u8], GenlHeader> + std::fmt::Debug,
    {
        self.seq = self.seq.wrapping_add(1);
        let mut genl = GenlMessage::from_payload(payload);
        genl.set_resolved_family_id(family_id);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { NLM_F_ACK };
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(genl));
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        self.socket.send(&buf, 0).map_err(NlError::Io)?;

        let mut out = Vec::new();
        loop {
            let (datagram, _) = self.socket.recv_from_full().map_err(|e| {
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) {
                    NlError::Decode(format!("no reply within {RECV_TIMEOUT:?}"))
                } else {
                    NlError::Io(e)
                }
            })?;
            let batch = decode_batch::<T>(&datagram, self.seq)?;
            out.extend(batch.messages);
            if batch.finished {
                return Ok(out);
            }
        }
    }
}

/// A resolved generic-netlink family.
#[derive(Debug, Clone, PartialEq)]
struct Family {
    id: u16,
    ops: Vec<u32>,
}

/// Ask nlctrl for the netdev family. Ok(None) when it is not registered (ENOENT).
fn resolve_netdev(sock: &mut GenlSocket) -> Result<Option<Family>, NlError> {
    let req = GenlCtrl {
        cmd: GenlCtrlCmd::GetFamily,
        nlas: vec![GenlCtrlAttrs::FamilyName(NETDEV_FAMILY_NAME.into())],
    };
    let replies = match sock.request(req, 0, false) {
        Ok(r) => r,
        Err(NlError::Errno(libc::ENOENT)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut id = None;
    let mut ops = Vec::new();
    for attr in replies.iter().flat_map(|r| &r.nlas) {
        match attr {
            GenlCtrlAttrs::FamilyId(i) => id = Some(*i),
            GenlCtrlAttrs::Ops(list) => {
                for op in list.iter().flatten() {
                    if let OpAttrs::Id(op_id) = op {
                        ops.push(*op_id);
                    }
                }
            }
            _ => {}
        }
    }
    match id {
        Some(id) => Ok(Some(Family { id, ops })),
        None => Err(NlError::Decode(
            "CTRL_CMD_GETFAMILY reply without a family id".into(),
        )),
    }
}

fn source_error(what: &str, err: NlError, ifindex: Option<u32>) -> SourceError {
    match err {
        NlError::Errno(libc::EOPNOTSUPP) => SourceError::Unsupported {
            what: what.into(),
            why: "the kernel or driver does not support it (EOPNOTSUPP)".into(),
        },
        NlError::Errno(libc::ENODEV) => SourceError::NotFound {
            path: PathBuf::from(match ifindex {
                Some(i) => format!("ifindex {i}"),
                None => "netdev".into(),
            }),
        },
        NlError::Errno(errno) => SourceError::Kernel {
            what: what.into(),
            msg: io::Error::from_raw_os_error(errno).to_string(),
        },
        NlError::Io(e) => SourceError::Kernel {
            what: what.into(),
            msg: e.to_string(),
        },
        NlError::Decode(msg) => SourceError::Kernel {
            what: what.into(),
            msg,
        },
    }
}

fn open_and_resolve() -> Result<(GenlSocket, Option<Family>), SourceError> {
    let what = "genetlink CTRL_CMD_GETFAMILY netdev";
    let mut sock = GenlSocket::open().map_err(|e| source_error(what, e, None))?;
    let family = resolve_netdev(&mut sock).map_err(|e| source_error(what, e, None))?;
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
        .is_some_and(|f| f.ops.contains(&(NETDEV_CMD_QSTATS_GET as u32))))
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
    if !family.ops.contains(&(NETDEV_CMD_QSTATS_GET as u32)) {
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
mod tests {
    use super::*;
    use crate::sources::ethtool_stats;
    use crate::sources::links::testns::{VethPair, DEV_B};

    fn nlmsg(seq: u32, flags: u16, payload: NetlinkPayload<GenlMessage<NetdevMessage>>) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.sequence_number = seq;
        header.flags = flags;
        let mut msg = NetlinkMessage::new(header, payload);
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        buf
    }

    fn reply(attrs: Vec<NetdevAttr>) -> NetlinkPayload<GenlMessage<NetdevMessage>> {
        let mut genl = GenlMessage::from_payload(NetdevMessage {
            cmd: NETDEV_CMD_QSTATS_GET,
            attrs,
        });
        genl.set_resolved_family_id(0x1b);
        NetlinkPayload::InnerMessage(genl)
    }

    fn uint(kind: u16, value: u64) -> NetdevAttr {
        NetdevAttr::Uint { kind, value }
    }

    fn done(code: i32) -> Vec<u8> {
        // nlmsghdr (16) + int error code; NLMSG_DONE = 3.
        let mut b = Vec::new();
        b.extend_from_slice(&20u32.to_ne_bytes());
        b.extend_from_slice(&3u16.to_ne_bytes());
        b.extend_from_slice(&2u16.to_ne_bytes()); // NLM_F_MULTI
        b.extend_from_slice(&7u32.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&code.to_ne_bytes());
        b
    }

    #[test]
    fn request_bytes_match_the_uapi_layout() {
        let mut genl = GenlMessage::from_payload(qstats_request(Some(4)));
        genl.set_resolved_family_id(0x1b);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = 9;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(genl));
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        let mut want = Vec::new();
        want.extend_from_slice(&36u32.to_ne_bytes()); // nlmsg_len
        want.extend_from_slice(&0x1bu16.to_ne_bytes()); // family id
        want.extend_from_slice(&0x301u16.to_ne_bytes()); // NLM_F_REQUEST | NLM_F_DUMP
        want.extend_from_slice(&9u32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        want.extend_from_slice(&[12, 1, 0, 0]); // cmd QSTATS_GET, version 1
        want.extend_from_slice(&8u16.to_ne_bytes()); // nla_len
        want.extend_from_slice(&4u16.to_ne_bytes()); // NETDEV_A_QSTATS_SCOPE
        want.extend_from_slice(&1u32.to_ne_bytes()); // NETDEV_QSTATS_SCOPE_QUEUE
        want.extend_from_slice(&8u16.to_ne_bytes());
        want.extend_from_slice(&1u16.to_ne_bytes()); // NETDEV_A_QSTATS_IFINDEX
        want.extend_from_slice(&4u32.to_ne_bytes());
        assert_eq!(buf, want);
    }

    #[test]
    fn decodes_a_dump_datagram() {
        let mut datagram = nlmsg(
            7,
            2,
            reply(vec![
                uint(A_IFINDEX, 4),
                uint(A_QUEUE_TYPE, QUEUE_TYPE_RX),
                uint(A_QUEUE_ID, 3),
                uint(A_RX_PACKETS, 5_000_000_000), // > u32: sent as 8 bytes
                uint(A_RX_BYTES, 1234),
                uint(A_RX_HW_DROPS, 2),
                uint(A_RX_CSUM_UNNECESSARY_FOR_TEST, 9),
            ]),
        );
        datagram.extend(nlmsg(
            7,
            2,
            reply(vec![
                uint(A_IFINDEX, 4),
                uint(A_QUEUE_TYPE, QUEUE_TYPE_TX),
                uint(A_QUEUE_ID, 0),
                uint(A_TX_PACKETS, 10),
                // An rx counter on a tx queue must not be taken for tx.
                uint(A_RX_PACKETS, 99),
            ]),
        ));
        // A stray message of another sequence is ignored.
        datagram.extend(nlmsg(6, 2, reply(vec![uint(A_IFINDEX, 1)])));
        datagram.extend(done(0));
        let batch = decode_batch::<NetdevMessage>(&datagram, 7).unwrap();
        assert!(batch.finished);
        let stats: Vec<QueueStats> = batch
            .messages
            .iter()
            .map(|m| queue_stats_from_message(m).unwrap().unwrap())
            .collect();
        assert_eq!(
            stats,
            vec![
                QueueStats {
                    ifindex: 4,
                    queue_type: QueueType::Rx,
                    queue: 3,
                    packets: Some(5_000_000_000),
                    bytes: Some(1234),
                    hw_drops: Some(2),
                },
                QueueStats {
                    ifindex: 4,
                    queue_type: QueueType::Tx,
                    queue: 0,
                    packets: Some(10),
                    bytes: None,
                    hw_drops: None,
                },
            ]
        );
    }

    /// NETDEV_A_QSTATS_RX_CSUM_UNNECESSARY: a counter this module does not keep.
    const A_RX_CSUM_UNNECESSARY_FOR_TEST: u16 = 15;

    #[test]
    fn errors_and_incomplete_replies() {
        // A dump that fails ends in NLMSG_DONE with a negative errno.
        assert!(matches!(
            decode_batch::<NetdevMessage>(&done(-libc::EOPNOTSUPP), 7),
            Err(NlError::Errno(libc::EOPNOTSUPP))
        ));
        // Truncated: length field larger than the datagram.
        let mut cut = done(0);
        cut.truncate(18);
        assert!(matches!(
            decode_batch::<NetdevMessage>(&cut, 7),
            Err(NlError::Decode(_))
        ));
        // No DONE yet: not finished, the caller reads on.
        let partial = nlmsg(7, 2, reply(vec![uint(A_IFINDEX, 1)]));
        assert!(!decode_batch::<NetdevMessage>(&partial, 7).unwrap().finished);

        let no_type = NetdevMessage {
            cmd: NETDEV_CMD_QSTATS_GET,
            attrs: vec![uint(A_IFINDEX, 1), uint(A_QUEUE_ID, 0)],
        };
        assert!(queue_stats_from_message(&no_type)
            .unwrap_err()
            .contains("QUEUE_TYPE"));
        let future_type = NetdevMessage {
            cmd: NETDEV_CMD_QSTATS_GET,
            attrs: vec![
                uint(A_IFINDEX, 1),
                uint(A_QUEUE_TYPE, 7),
                uint(A_QUEUE_ID, 0),
            ],
        };
        assert_eq!(queue_stats_from_message(&future_type), Ok(None));
        let huge = NetdevMessage {
            cmd: NETDEV_CMD_QSTATS_GET,
            attrs: vec![
                uint(A_IFINDEX, 1 << 40),
                uint(A_QUEUE_TYPE, 0),
                uint(A_QUEUE_ID, 0),
            ],
        };
        assert!(queue_stats_from_message(&huge).is_err());
    }

    #[test]
    fn odd_sized_and_nested_attributes_are_kept_raw() {
        // nla_len 7 (3-byte value, padded to 8), then a nested attribute.
        let mut attrs = Vec::new();
        attrs.extend_from_slice(&7u16.to_ne_bytes());
        attrs.extend_from_slice(&30u16.to_ne_bytes());
        attrs.extend_from_slice(&[1, 2, 3, 0]);
        attrs.extend_from_slice(&8u16.to_ne_bytes());
        attrs.extend_from_slice(&(31u16 | 0x8000).to_ne_bytes());
        attrs.extend_from_slice(&5u32.to_ne_bytes());
        let msg = NetdevMessage::parse_with_param(
            &attrs,
            GenlHeader {
                cmd: NETDEV_CMD_QSTATS_GET,
                version: 1,
            },
        )
        .unwrap();
        assert_eq!(msg.attrs.len(), 2);
        assert!(msg.attrs.iter().all(|a| matches!(a, NetdevAttr::Other(_))));
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = decode_batch::<NetdevMessage>(&bytes, 0);
            let _ = NetdevMessage::parse_with_param(&bytes, GenlHeader { cmd: 12, version: 1 });
        }

        #[test]
        fn decode_never_panics_behind_a_valid_header(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            seq in 0u32..3,
        ) {
            let mut buf = Vec::new();
            buf.extend_from_slice(&((16 + 4 + body.len()) as u32).to_ne_bytes());
            buf.extend_from_slice(&0x1bu16.to_ne_bytes());
            buf.extend_from_slice(&2u16.to_ne_bytes());
            buf.extend_from_slice(&seq.to_ne_bytes());
            buf.extend_from_slice(&0u32.to_ne_bytes());
            buf.extend_from_slice(&[12, 1, 0, 0]);
            buf.extend_from_slice(&body);
            if let Ok(batch) = decode_batch::<NetdevMessage>(&buf, 1) {
                for m in &batch.messages {
                    let _ = queue_stats_from_message(m);
                }
            }
        }
    }

    fn sysfs_u64(path: &str) -> u64 {
        std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Live (Linux 6.18): the family and its qstats-get op are there.
    #[test]
    fn live_family_and_op() {
        assert!(family_available().unwrap());
        assert!(supports_qstats().unwrap());
    }

    /// Live: virtio_net implements netdev_stat_ops (since about 6.10). eth0 has one queue pair, so its
    /// queue 0 counters lie between two reads of the device totals in sysfs taken around
    /// the dump; where `ethtool -S` has per-queue packets too, they agree the same way.
    #[test]
    fn live_eth0_matches_sysfs_totals() {
        let ifindex = sysfs_u64("/sys/class/net/eth0/ifindex") as u32;
        let dir = "/sys/class/net/eth0/statistics";
        let totals = || {
            ["rx_packets", "rx_bytes", "tx_packets", "tx_bytes"]
                .map(|f| sysfs_u64(&format!("{dir}/{f}")))
        };
        let before = totals();
        let ethtool_before = ethtool_stats::read_ioctl("eth0").unwrap();
        let queues = read_queue_stats(Some(ifindex)).expect("qstats dump for eth0");
        let all = read_queue_stats(None).expect("qstats dump");
        let ethtool_after = ethtool_stats::read_ioctl("eth0").unwrap();
        let after = totals();

        let kinds: Vec<(QueueType, u32)> = queues.iter().map(|q| (q.queue_type, q.queue)).collect();
        assert_eq!(kinds, [(QueueType::Rx, 0), (QueueType::Tx, 0)]);
        let (rx, tx) = (&queues[0], &queues[1]);
        assert!(queues.iter().all(|q| q.ifindex == ifindex));
        let within = |name: &str, v: Option<u64>, lo: u64, hi: u64| {
            let v = v.unwrap_or_else(|| panic!("{name} missing"));
            assert!(lo <= v && v <= hi, "{name}: {lo} <= {v} <= {hi}");
        };
        within("rx packets", rx.packets, before[0], after[0]);
        within("rx bytes", rx.bytes, before[1], after[1]);
        within("tx packets", tx.packets, before[2], after[2]);
        within("tx bytes", tx.bytes, before[3], after[3]);
        assert!(rx.packets.unwrap() > 0, "eth0 carried traffic");

        // The unfiltered dump holds eth0's queues too, and only devices with stat_ops:
        // lo and ifb have none.
        let eth0_all: Vec<_> = all.iter().filter(|q| q.ifindex == ifindex).collect();
        assert_eq!(eth0_all.len(), 2);
        assert!(all.iter().all(|q| q.ifindex != 1), "lo has no qstats");

        // ethtool -S per-queue packets, if this kernel's virtio_net still prints them.
        let eth_rx_before = ethtool_stats::rx_queue_packets(&ethtool_before.stats);
        let eth_rx_after = ethtool_stats::rx_queue_packets(&ethtool_after.stats);
        for (b, a) in eth_rx_before.iter().zip(&eth_rx_after) {
            if let (Some(lo), Some(hi)) = (b.rx_packets, a.rx_packets) {
                within("ethtool vs qstats rx packets", rx.packets, lo, hi);
            }
        }
        eprintln!("eth0 qstats {queues:?}; ethtool -S per-queue rx packets: {eth_rx_before:?}");
    }

    #[test]
    fn live_unknown_ifindex_is_not_found() {
        // ifindex values are allocated upwards from 1; this one does not exist here.
        let err = read_queue_stats(Some(0x7fff_fff0)).unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
    }

    /// Live: veth has no netdev_stat_ops on 6.18: the namespace-wide dump is empty and a
    /// dump filtered to the veth is refused with EOPNOTSUPP.
    #[test]
    fn live_veth_has_no_qstats() {
        let pair = VethPair::new("qstats");
        pair.send_udp(8, 100);
        let (all, one, links) = VethPair::run_in(&pair.ns_b, || {
            let links = crate::sources::links::read_links_blocking().unwrap();
            let veth = links.iter().find(|l| l.name == DEV_B).unwrap().ifindex;
            (read_queue_stats(None), read_queue_stats(Some(veth)), links)
        });
        assert_eq!(all.unwrap(), vec![], "links there: {links:?}");
        assert!(
            matches!(one, Err(SourceError::Unsupported { .. })),
            "{one:?}"
        );
    }
}
