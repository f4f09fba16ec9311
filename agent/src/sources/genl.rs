//! A small blocking generic-netlink client: open a socket ([`super::netlink::open`]),
//! resolve a family (CTRL_CMD_GETFAMILY), send one request and collect its replies (a
//! dump up to NLMSG_DONE, a plain request up to its ACK). Kernel errors keep their
//! extended-ACK message ("no device matches name"). Families describe their messages
//! with netlink-packet-generic's `GenlFamily`; this module knows none of them.
//!
//! Observe-only: the agent sends GET requests and dumps only.

use std::fmt;
use std::io;

use netlink_packet_core::{
    DecodeError, Emitable, NetlinkBuffer, NetlinkMessage, NetlinkPayload, NlaBuffer, NlasIterator,
    ParseableParametrized, NLA_TYPE_MASK, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP,
    NLM_F_REQUEST,
};
use netlink_packet_generic::constants::{CTRL_ATTR_OP_POLICY, CTRL_ATTR_POLICY, GENL_ID_CTRL};
use netlink_packet_generic::ctrl::nlas::{GenlCtrlAttrs, OpAttrs};
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};
use netlink_sys::{protocols::NETLINK_GENERIC, Socket};

use super::netlink::{self, RECV_TIMEOUT};

/// Why a generic-netlink exchange did not produce an answer.
#[derive(Debug)]
pub enum GenlError {
    /// The kernel answered NLMSG_ERROR (or a dump ended in a negative NLMSG_DONE) with
    /// this errno (positive) and, when it gave one, its extended-ACK message.
    Errno { errno: i32, message: Option<String> },
    /// No reply within [`RECV_TIMEOUT`].
    Timeout,
    /// The socket failed.
    Io(io::Error),
    /// A reply that does not decode.
    Decode(String),
}

impl GenlError {
    /// The errno of a kernel refusal.
    pub fn errno(&self) -> Option<i32> {
        match self {
            GenlError::Errno { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

impl fmt::Display for GenlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GenlError::Errno {
                errno,
                message: Some(msg),
            } => write!(f, "{} ({msg})", io::Error::from_raw_os_error(*errno)),
            GenlError::Errno {
                errno,
                message: None,
            } => write!(f, "{}", io::Error::from_raw_os_error(*errno)),
            GenlError::Timeout => write!(f, "no reply within {} s", RECV_TIMEOUT.as_secs()),
            GenlError::Io(e) => write!(f, "{e}"),
            GenlError::Decode(msg) => write!(f, "cannot decode reply: {msg}"),
        }
    }
}

/// A generic-netlink family as the controller describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub id: u16,
    /// Command ids the family offers (CTRL_ATTR_OPS / CTRL_ATTR_OP_ID). genetlink
    /// answers EOPNOTSUPP for an unknown command, which would look like a driver
    /// declining; this list tells the two apart.
    pub ops: Vec<u32>,
}

impl Family {
    pub fn has_op(&self, cmd: u8) -> bool {
        self.ops.contains(&u32::from(cmd))
    }
}

/// A blocking generic netlink socket in the calling thread's network namespace.
pub struct GenlSocket {
    socket: Socket,
    seq: u32,
}

impl GenlSocket {
    pub fn open() -> Result<Self, GenlError> {
        let socket = netlink::open(NETLINK_GENERIC).map_err(|e| GenlError::Io(e.into()))?;
        // Extended ACK carries the kernel's error text; capped ACKs echo only the
        // request's header. Neither is essential, so failures are ignored.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        Ok(Self { socket, seq: 0 })
    }

    /// CTRL_CMD_GETFAMILY `name`; `None` when the family is not registered (ENOENT).
    pub fn resolve(&mut self, name: &str) -> Result<Option<Family>, GenlError> {
        let request = CheckedCtrl(GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(name.to_string())],
        });
        let replies = match self.request(request, GENL_ID_CTRL, false) {
            Ok(replies) => replies,
            Err(GenlError::Errno {
                errno: libc::ENOENT,
                ..
            }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let replies: Vec<GenlCtrl> = replies.into_iter().map(|r| r.0).collect();
        family_from_replies(&replies).map(Some)
    }

    /// Send one request to `family_id` and collect its replies: up to NLMSG_DONE when
    /// `dump`, else up to the ACK the request asks for.
    pub fn request<F>(
        &mut self,
        payload: F,
        family_id: u16,
        dump: bool,
    ) -> Result<Vec<F>, GenlError>
    where
        F: GenlFamily + Emitable + ParseableParametrized<[u8], GenlHeader> + fmt::Debug,
    {
        self.seq = self.seq.wrapping_add(1);
        let mut genl = GenlMessage::from_payload(payload);
        genl.set_resolved_family_id(family_id);
        let mut msg = NetlinkMessage::from(genl);
        msg.header.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { NLM_F_ACK };
        msg.header.sequence_number = self.seq;
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        self.socket.send(&buf, 0).map_err(GenlError::Io)?;

        let mut out = Vec::new();
        loop {
            let datagram = match self.socket.recv_from_full() {
                Ok((datagram, _)) => datagram,
                Err(e) if netlink::is_timeout(&e) => return Err(GenlError::Timeout),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(GenlError::Io(e)),
            };
            let batch = decode_datagram::<F>(&datagram, self.seq)?;
            out.extend(batch.messages);
            if batch.finished {
                return Ok(out);
            }
        }
    }
}

/// A controller message whose replies are checked before netlink-packet-generic 0.5 parses
/// them: it reads CTRL_ATTR_POLICY's payload, and the attribute inside it, and
/// CTRL_ATTR_OP_POLICY's payload as attributes without checking their lengths
/// (ctrl/nlas/mod.rs `NlaBuffer::new(payload)`, policy.rs, oppolicy.rs), so a length under
/// 4 there panicked (the genl_ctrl fuzz target's first finding). Such a reply is a decode
/// error here instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedCtrl(pub GenlCtrl);

/// Whether every policy attribute among `attrs` holds the nested attributes the crate
/// reads unchecked: one level for OP_POLICY, two for POLICY.
fn policy_attrs_checked(attrs: &[u8]) -> bool {
    NlasIterator::new(attrs).all(|nla| {
        let Ok(nla) = nla else {
            return true; // the crate reports a malformed top-level attribute itself
        };
        let levels = match nla.kind() & NLA_TYPE_MASK {
            CTRL_ATTR_POLICY => 2,
            CTRL_ATTR_OP_POLICY => 1,
            _ => 0,
        };
        let mut value = nla.value();
        for _ in 0..levels {
            match NlaBuffer::new_checked(value) {
                Ok(inner) => value = &value[4..inner.length() as usize],
                Err(_) => return false,
            }
        }
        true
    })
}

impl GenlFamily for CheckedCtrl {
    fn family_name() -> &'static str {
        GenlCtrl::family_name()
    }
    fn family_id(&self) -> u16 {
        self.0.family_id()
    }
    fn command(&self) -> u8 {
        self.0.command()
    }
    fn version(&self) -> u8 {
        self.0.version()
    }
}

impl Emitable for CheckedCtrl {
    fn buffer_len(&self) -> usize {
        self.0.buffer_len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        self.0.emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for CheckedCtrl {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        if !policy_attrs_checked(buf) {
            return Err(DecodeError::from(
                "CTRL_ATTR_POLICY or CTRL_ATTR_OP_POLICY with a malformed nested attribute",
            ));
        }
        GenlCtrl::parse_with_param(buf, header).map(CheckedCtrl)
    }
}

/// Pure: the family id and operations of CTRL_CMD_GETFAMILY replies.
pub fn family_from_replies(replies: &[GenlCtrl]) -> Result<Family, GenlError> {
    let mut id = None;
    let mut ops = Vec::new();
    for attr in replies.iter().flat_map(|r| &r.nlas) {
        match attr {
            GenlCtrlAttrs::FamilyId(v) => id = Some(*v),
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
        Some(id) => Ok(Family { id, ops }),
        None => Err(GenlError::Decode(
            "GETFAMILY reply without CTRL_ATTR_FAMILY_ID".to_string(),
        )),
    }
}

/// Whether the generic netlink family `name` exists in the calling thread's network
/// namespace, and what it offers.
pub fn resolve(name: &str) -> Result<Option<Family>, GenlError> {
    GenlSocket::open()?.resolve(name)
}

/// What one received datagram held.
#[derive(Debug, PartialEq)]
pub struct Batch<F> {
    pub messages: Vec<F>,
    /// NLMSG_DONE, or the ACK of a non-dump request, was seen.
    pub finished: bool,
}

/// Pure: the replies to request `seq` in one datagram. Messages of other sequence
/// numbers are skipped before they are decoded. Stops at NLMSG_DONE or the ACK; an
/// NLMSG_ERROR or a negative NLMSG_DONE becomes [`GenlError::Errno`] with its
/// extended-ACK message. Never panics on arbitrary bytes.
pub fn decode_datagram<F>(buf: &[u8], seq: u32) -> Result<Batch<F>, GenlError>
where
    F: ParseableParametrized<[u8], GenlHeader> + fmt::Debug,
{
    let mut batch = Batch {
        messages: Vec::new(),
        finished: false,
    };
    let mut offset = 0;
    while offset < buf.len() {
        let bytes = &buf[offset..];
        let header = NetlinkBuffer::new_checked(bytes)
            .map_err(|e| GenlError::Decode(format!("at byte {offset}: {e}")))?;
        // new_checked guarantees 16 <= length <= bytes.len(), so the loop advances.
        let len = header.length() as usize;
        let (flags, msg_seq) = (header.flags(), header.sequence_number());
        let this = &bytes[..len];
        offset += (len + 3) & !3;
        if msg_seq != seq {
            continue;
        }
        let msg = NetlinkMessage::<GenlMessage<F>>::deserialize(this)
            .map_err(|e| GenlError::Decode(format!("at byte {}: {e}", offset - len)))?;
        match msg.payload {
            NetlinkPayload::InnerMessage(genl) => batch.messages.push(genl.payload),
            NetlinkPayload::Done(done) if done.code < 0 => {
                // A failed dump's TLVs follow the code directly (netlink_dump_done).
                let message = if flags & NLM_F_ACK_TLVS != 0 {
                    tlv_message(&done.extended_ack)
                } else {
                    None
                };
                return Err(GenlError::Errno {
                    errno: done.code.saturating_neg(),
                    message,
                });
            }
            NetlinkPayload::Done(_) => {
                batch.finished = true;
                break;
            }
            NetlinkPayload::Error(err) => match err.code {
                Some(code) => {
                    return Err(GenlError::Errno {
                        errno: code.get().saturating_abs(),
                        message: extack_message(flags, &err.header),
                    })
                }
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

/// NLMSGERR_ATTR_MSG (1) from an NLMSG_ERROR payload after the error code
/// (include/uapi/linux/netlink.h, enum nlmsgerr_attrs). The TLVs follow the echoed
/// request, which is just its 16-byte nlmsghdr when the error is flagged NLM_F_CAPPED
/// (NETLINK_CAP_ACK) and the whole request otherwise; they are only there when
/// flagged NLM_F_ACK_TLVS.
pub fn extack_message(error_flags: u16, after_code: &[u8]) -> Option<String> {
    if error_flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let echoed_len = if error_flags & NLM_F_CAPPED != 0 {
        16
    } else {
        let echoed = NetlinkBuffer::new_checked(after_code).ok()?;
        (echoed.length() as usize + 3) & !3
    };
    tlv_message(after_code.get(echoed_len..)?)
}

/// The NLMSGERR_ATTR_MSG string among extended-ACK TLVs.
fn tlv_message(tlvs: &[u8]) -> Option<String> {
    for nla in NlasIterator::new(tlvs) {
        let nla = nla.ok()?;
        if nla.kind() == 1 {
            let text = nla.value().split(|&b| b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests;
