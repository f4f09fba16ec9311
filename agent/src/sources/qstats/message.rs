//! The netdev family's qstats messages (include/uapi/linux/netdev.h,
//! Documentation/netlink/specs/netdev.yaml "qstats-get"): the request, the reply's
//! attributes and their decoding. Pure; the exchange is [`crate::sources::genl`].

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, Nla, NlasIterator, Parseable, ParseableParametrized,
    NLA_TYPE_MASK,
};
use netlink_packet_generic::{GenlFamily, GenlHeader};

use super::{QueueStats, QueueType};

pub const NETDEV_FAMILY_NAME: &str = "netdev";
pub(super) const NETDEV_FAMILY_VERSION: u8 = 1;
/// enum netdev_cmd: NETDEV_CMD_QSTATS_GET (dump-only op, added in 6.9).
pub const NETDEV_CMD_QSTATS_GET: u8 = 12;

// NETDEV_A_QSTATS_* attribute types.
pub(super) const A_IFINDEX: u16 = 1;
pub(super) const A_QUEUE_TYPE: u16 = 2;
pub(super) const A_QUEUE_ID: u16 = 3;
pub(super) const A_SCOPE: u16 = 4;
pub(super) const A_RX_PACKETS: u16 = 8;
pub(super) const A_RX_BYTES: u16 = 9;
pub(super) const A_TX_PACKETS: u16 = 10;
pub(super) const A_TX_BYTES: u16 = 11;
pub(super) const A_RX_HW_DROPS: u16 = 13;
pub(super) const A_TX_HW_DROPS: u16 = 24;

/// enum netdev_qstats_scope: NETDEV_QSTATS_SCOPE_QUEUE.
pub(super) const SCOPE_QUEUE: u64 = 1;
/// enum netdev_queue_type.
pub(super) const QUEUE_TYPE_RX: u64 = 0;
pub(super) const QUEUE_TYPE_TX: u64 = 1;

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
