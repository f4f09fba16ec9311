//! ETHTOOL_MSG_RSS_GET over generic netlink (Linux 6.2+, net/ethtool/rss.c). Not in
//! the `ethtool` crate, so the message is described here on netlink-packet-generic
//! and sent with the shared client ([`crate::sources::genl`]).

use ethtool::EthtoolHeader;
use netlink_packet_core::{
    emit_u32, parse_u32, DecodeError, DefaultNla, Emitable, ErrorContext, Nla, NlaBuffer,
    NlasIterator, Parseable, ParseableParametrized, NLA_F_NESTED,
};
use netlink_packet_generic::{GenlFamily, GenlHeader};

use super::{check_ifname, errno_to_source, hfunc_name, ioctl, RssConfig, RssSource};
use crate::error::{ParseError, SourceError};
use crate::sources::genl::{GenlError, GenlSocket};

/// Generic netlink family name and version (include/uapi/linux/ethtool_netlink.h:
/// ETHTOOL_GENL_NAME, ETHTOOL_GENL_VERSION).
const ETHTOOL_GENL_NAME: &str = "ethtool";
const ETHTOOL_GENL_VERSION: u8 = 1;

/// Message ids (include/uapi/linux/ethtool_netlink_generated.h; RSS_GET follows
/// PSE_SET = 37 in the user->kernel enum, RSS_GET_REPLY follows PSE_GET_REPLY = 37
/// in the kernel->user one; both added in 6.2, commit 7112a04664bf).
pub(super) const ETHTOOL_MSG_RSS_GET: u8 = 38;
const ETHTOOL_MSG_RSS_GET_REPLY: u8 = 38;

/// Attributes of RSS_GET (ethtool_netlink_generated.h, enum ETHTOOL_A_RSS_*).
const ETHTOOL_A_RSS_HEADER: u16 = 1;
const ETHTOOL_A_RSS_CONTEXT: u16 = 2;
const ETHTOOL_A_RSS_HFUNC: u16 = 3;
const ETHTOOL_A_RSS_INDIR: u16 = 4;
const ETHTOOL_A_RSS_HKEY: u16 = 5;
const ETHTOOL_A_RSS_INPUT_XFRM: u16 = 6;

/// One attribute of an RSS_GET request or reply, written the way the `ethtool`
/// crate writes its per-command attributes.
#[derive(Debug, PartialEq, Eq, Clone)]
pub enum EthtoolRssAttr {
    Header(Vec<EthtoolHeader>),
    /// RSS context id; the kernel only echoes it when non-zero (rss.c rss_fill_reply).
    Context(u32),
    /// ETH_RSS_HASH_* bit (u32).
    Hfunc(u32),
    /// Indirection table: u32 queue ids in host byte order.
    Indir(Vec<u32>),
    /// Hash key bytes.
    Hkey(Vec<u8>),
    /// RXH_XFRM_* bits (6.8+).
    InputXfrm(u32),
    Other(DefaultNla),
}

impl Nla for EthtoolRssAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::Header(hdrs) => hdrs.as_slice().buffer_len(),
            Self::Context(_) | Self::Hfunc(_) | Self::InputXfrm(_) => 4,
            Self::Indir(table) => table.len() * 4,
            Self::Hkey(key) => key.len(),
            Self::Other(attr) => attr.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Header(_) => ETHTOOL_A_RSS_HEADER | NLA_F_NESTED,
            Self::Context(_) => ETHTOOL_A_RSS_CONTEXT,
            Self::Hfunc(_) => ETHTOOL_A_RSS_HFUNC,
            Self::Indir(_) => ETHTOOL_A_RSS_INDIR,
            Self::Hkey(_) => ETHTOOL_A_RSS_HKEY,
            Self::InputXfrm(_) => ETHTOOL_A_RSS_INPUT_XFRM,
            Self::Other(attr) => attr.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Header(hdrs) => hdrs.as_slice().emit(buffer),
            Self::Context(v) | Self::Hfunc(v) | Self::InputXfrm(v) => {
                // value_len() sized the buffer to 4 bytes.
                let _ = emit_u32(buffer, *v);
            }
            Self::Indir(table) => {
                for (chunk, q) in buffer.chunks_exact_mut(4).zip(table) {
                    chunk.copy_from_slice(&q.to_ne_bytes());
                }
            }
            Self::Hkey(key) => buffer[..key.len()].copy_from_slice(key),
            Self::Other(attr) => attr.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for EthtoolRssAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let payload = buf.value();
        Ok(match buf.kind() {
            ETHTOOL_A_RSS_HEADER => {
                let mut hdrs = Vec::new();
                for nla in NlasIterator::new(payload) {
                    let nla = nla.context("invalid ETHTOOL_A_RSS_HEADER")?;
                    hdrs.push(EthtoolHeader::parse(&nla).context("invalid ETHTOOL_A_RSS_HEADER")?);
                }
                Self::Header(hdrs)
            }
            ETHTOOL_A_RSS_CONTEXT => {
                Self::Context(parse_u32(payload).context("invalid ETHTOOL_A_RSS_CONTEXT")?)
            }
            ETHTOOL_A_RSS_HFUNC => {
                Self::Hfunc(parse_u32(payload).context("invalid ETHTOOL_A_RSS_HFUNC")?)
            }
            ETHTOOL_A_RSS_INDIR => {
                if !payload.len().is_multiple_of(4) {
                    return Err(DecodeError::from(format!(
                        "ETHTOOL_A_RSS_INDIR is {} bytes, not a whole number of u32",
                        payload.len()
                    )));
                }
                Self::Indir(
                    payload
                        .chunks_exact(4)
                        .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                )
            }
            ETHTOOL_A_RSS_HKEY => Self::Hkey(payload.to_vec()),
            ETHTOOL_A_RSS_INPUT_XFRM => {
                Self::InputXfrm(parse_u32(payload).context("invalid ETHTOOL_A_RSS_INPUT_XFRM")?)
            }
            _ => Self::Other(DefaultNla::parse(buf).context("invalid ETHTOOL_A_RSS_* attribute")?),
        })
    }
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum EthtoolRssCmd {
    Get,
    GetReply,
}

/// An ETHTOOL_MSG_RSS_GET request or its reply: the payload of a `GenlMessage`.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct EthtoolRssMessage {
    pub cmd: EthtoolRssCmd,
    pub nlas: Vec<EthtoolRssAttr>,
}

impl EthtoolRssMessage {
    /// RSS_GET for one device by name, context 0.
    pub fn new_get(ifname: &str) -> Self {
        Self {
            cmd: EthtoolRssCmd::Get,
            nlas: vec![EthtoolRssAttr::Header(vec![EthtoolHeader::DevName(
                ifname.to_string(),
            )])],
        }
    }
}

impl GenlFamily for EthtoolRssMessage {
    fn family_name() -> &'static str {
        ETHTOOL_GENL_NAME
    }

    fn version(&self) -> u8 {
        ETHTOOL_GENL_VERSION
    }

    fn command(&self) -> u8 {
        match self.cmd {
            EthtoolRssCmd::Get => ETHTOOL_MSG_RSS_GET,
            EthtoolRssCmd::GetReply => ETHTOOL_MSG_RSS_GET_REPLY,
        }
    }
}

impl Emitable for EthtoolRssMessage {
    fn buffer_len(&self) -> usize {
        self.nlas.as_slice().buffer_len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        self.nlas.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for EthtoolRssMessage {
    fn parse_with_param(buffer: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        // Request and reply share id 38; a message read back is always a reply.
        if header.cmd != ETHTOOL_MSG_RSS_GET_REPLY {
            return Err(DecodeError::from(format!(
                "unexpected ethtool command {} (want RSS_GET_REPLY {})",
                header.cmd, ETHTOOL_MSG_RSS_GET_REPLY
            )));
        }
        let mut nlas = Vec::new();
        for nla in NlasIterator::new(buffer) {
            let nla = nla.context("invalid RSS_GET_REPLY attribute")?;
            nlas.push(EthtoolRssAttr::parse(&nla)?);
        }
        Ok(Self {
            cmd: EthtoolRssCmd::GetReply,
            nlas,
        })
    }
}

/// Pure: an RSS_GET_REPLY's attributes -> [`RssConfig`] (`rx_rings` is not part
/// of the reply). A missing INDIR/HKEY means size 0 (rss.c only puts them when
/// the driver reports a size), i.e. "Operation not supported" in ethtool(8).
fn config_from_reply(msg: &EthtoolRssMessage) -> RssConfig {
    let mut config = RssConfig {
        indirection: Vec::new(),
        key: None,
        hfunc: None,
        rx_rings: None,
        source: RssSource::Netlink,
    };
    for nla in &msg.nlas {
        match nla {
            EthtoolRssAttr::Indir(table) => config.indirection = table.clone(),
            EthtoolRssAttr::Hkey(key) if !key.is_empty() => config.key = Some(key.clone()),
            EthtoolRssAttr::Hfunc(h) => config.hfunc = hfunc_name(*h),
            _ => {}
        }
    }
    config
}

/// Pure: parse the generic netlink part (genl header + attributes) of an
/// RSS_GET_REPLY, e.g. a recorded one. Never panics on arbitrary bytes.
pub fn parse_rss_reply(genl: &[u8]) -> Result<RssConfig, ParseError> {
    let header = GenlHeader::parse(genl).map_err(|e| ParseError::new(0, e.to_string()))?;
    let msg = EthtoolRssMessage::parse_with_param(&genl[4..], header)
        .map_err(|e| ParseError::new(0, e.to_string()))?;
    Ok(config_from_reply(&msg))
}

/// Whether the generic netlink family "ethtool" exists in this network namespace
/// (for `doctor`).
pub fn family_available() -> Result<bool, SourceError> {
    let mut sock = GenlSocket::open().map_err(|e| SourceError::Kernel {
        what: "generic netlink socket".to_string(),
        msg: e.to_string(),
    })?;
    sock.resolve(ETHTOOL_GENL_NAME)
        .map(|f| f.is_some())
        .map_err(|e| SourceError::Kernel {
            what: "CTRL_CMD_GETFAMILY ethtool".to_string(),
            msg: e.to_string(),
        })
}

/// Why [`read_netlink`] could not answer: the transport is missing (fall back to
/// the ioctl) or the request itself failed.
pub(super) enum NetlinkOutcome {
    NoCommand(String),
    Failed(SourceError),
}

/// Send RSS_GET for `ifname` and return the reply as the kernel sent it.
pub(super) fn rss_get_message(ifname: &str) -> Result<EthtoolRssMessage, NetlinkOutcome> {
    check_ifname(ifname).map_err(NetlinkOutcome::Failed)?;
    let mut sock = GenlSocket::open().map_err(|e| {
        NetlinkOutcome::NoCommand(format!("cannot open generic netlink socket: {e}"))
    })?;
    let family = sock.resolve(ETHTOOL_GENL_NAME).map_err(|e| {
        NetlinkOutcome::Failed(SourceError::Kernel {
            what: "CTRL_CMD_GETFAMILY ethtool".to_string(),
            msg: e.to_string(),
        })
    })?;
    let Some(family) = family else {
        return Err(NetlinkOutcome::NoCommand(
            "generic netlink family \"ethtool\" not registered (kernel < 5.6 or CONFIG_ETHTOOL_NETLINK=n)"
                .to_string(),
        ));
    };
    // genetlink answers EOPNOTSUPP for an unknown command too, which would look
    // like a driver without RSS; the op list tells the two apart.
    if !family.has_op(ETHTOOL_MSG_RSS_GET) {
        return Err(NetlinkOutcome::NoCommand(
            "ethtool family has no ETHTOOL_MSG_RSS_GET (kernel < 6.2)".to_string(),
        ));
    }

    let what = format!("{ifname}: ETHTOOL_MSG_RSS_GET");
    let failed = |e: GenlError| {
        NetlinkOutcome::Failed(match e.errno() {
            Some(errno) => errno_to_source(errno, ifname, &what, &e.to_string()),
            None => SourceError::Kernel {
                what: what.clone(),
                msg: e.to_string(),
            },
        })
    };
    let mut replies = sock
        .request(EthtoolRssMessage::new_get(ifname), family.id, false)
        .map_err(failed)?;
    match replies.len() {
        1 => Ok(replies.remove(0)),
        n => Err(NetlinkOutcome::Failed(SourceError::Kernel {
            what: what.clone(),
            msg: format!("{n} replies to one RSS_GET"),
        })),
    }
}

pub(super) fn rss_get_netlink(ifname: &str) -> Result<RssConfig, NetlinkOutcome> {
    let reply = rss_get_message(ifname)?;
    let mut config = config_from_reply(&reply);
    // ethtool(8) also takes the ring count from ETHTOOL_GRXRINGS in netlink mode;
    // RSS_GET does not carry it.
    config.rx_rings = ioctl::rx_rings(ifname).ok();
    Ok(config)
}

/// RSS configuration over ETHTOOL_MSG_RSS_GET (Linux 6.2+), plus the ring count
/// from ETHTOOL_GRXRINGS. Unsupported when the driver has no RSS (EOPNOTSUPP) or
/// the kernel has no such command; NotFound when there is no such device.
pub fn read_netlink(ifname: &str) -> Result<RssConfig, SourceError> {
    rss_get_netlink(ifname).map_err(|outcome| match outcome {
        NetlinkOutcome::NoCommand(why) => SourceError::Unsupported {
            what: format!("{ifname}: ETHTOOL_MSG_RSS_GET"),
            why,
        },
        NetlinkOutcome::Failed(e) => e,
    })
}
