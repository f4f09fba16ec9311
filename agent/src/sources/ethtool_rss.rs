//! RSS indirection table, hash key and hash function of a network device.
//!
//! Three ways in, one result type ([`RssConfig`]):
//! - [`read_netlink`]: `ETHTOOL_MSG_RSS_GET` over generic netlink (Linux 6.2+,
//!   net/ethtool/rss.c). Not in the `ethtool` crate, so it is built here on
//!   netlink-packet-generic and a blocking `netlink_sys::Socket`.
//! - [`read_ioctl`]: `SIOCETHTOOL` with `ETHTOOL_GRSSH` and `ETHTOOL_GRXRINGS`, for
//!   kernels without the netlink command.
//! - [`parse_ethtool_x`]: the text of `ethtool -x DEV` (sosreport `ethtool_-x_DEV`)
//!   for captured roots.
//!
//! Observe-only: every request here is a GET.

use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

use ethtool::EthtoolHeader;
use netlink_packet_core::{
    emit_u32, parse_u32, DecodeError, DefaultNla, Emitable, ErrorContext, NetlinkHeader,
    NetlinkMessage, NetlinkPayload, Nla, NlaBuffer, NlasIterator, Parseable, ParseableParametrized,
    NLA_F_NESTED, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_REQUEST,
};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};
use serde::Serialize;

use crate::error::{ParseError, SourceError};

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

// ---------------------------------------------------------------------------
// `ethtool -x` text
// ---------------------------------------------------------------------------

const TABLE_HEADER: &str = "RX flow hash indirection table for ";
const NOT_SUPPORTED: &str = "Operation not supported";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Start,
    Table,
    Key,
    Hfunc,
    /// A section this parser does not use (e.g. "RSS input transformation:",
    /// printed by ethtool 6.8+); its lines are skipped.
    Other,
}

/// Parse the text of `ethtool -x DEV` (ethtool.c `do_grxfh` / netlink/rss.c).
///
/// Tolerates what captures do to it: any indentation, unaligned index columns,
/// tables shorter than the ring count suggests, a key elided with "..." (then
/// `key` is `None`: a partial key is no key), "Operation not supported" for the
/// table and/or key, and a missing "RSS hash function:" section.
pub fn parse_ethtool_x(text: &str) -> Result<RssConfig, ParseError> {
    let mut section = Section::Start;
    let mut rx_rings = None;
    let mut indirection: Vec<u32> = Vec::new();
    let mut key = None;
    let mut hfunc = None;
    let mut seen_key_line = false;

    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }

        if let Some(rest) = line.strip_prefix(TABLE_HEADER) {
            if section != Section::Start {
                return Err(ParseError::new(line_no, "second indirection table header"));
            }
            rx_rings = Some(parse_ring_count(rest).ok_or_else(|| {
                ParseError::new(line_no, format!("no 'with N RX ring(s):' in {line:?}"))
            })?);
            section = Section::Table;
            continue;
        }
        if section == Section::Start {
            return Err(ParseError::new(
                line_no,
                format!("expected {TABLE_HEADER:?}..., found {line:?}"),
            ));
        }
        match line {
            "RSS hash key:" => {
                section = Section::Key;
                seen_key_line = false;
                continue;
            }
            "RSS hash function:" => {
                section = Section::Hfunc;
                continue;
            }
            _ => {}
        }

        match section {
            Section::Table => {
                if line == NOT_SUPPORTED {
                    if !indirection.is_empty() {
                        return Err(ParseError::new(
                            line_no,
                            "table rows before 'not supported'",
                        ));
                    }
                    continue;
                }
                if is_section_header(line) {
                    section = Section::Other;
                    continue;
                }
                parse_table_row(line, line_no, &mut indirection)?;
            }
            Section::Key => {
                if seen_key_line {
                    if is_section_header(line) {
                        section = Section::Other;
                        continue;
                    }
                    return Err(ParseError::new(
                        line_no,
                        format!("second key line {line:?}"),
                    ));
                }
                seen_key_line = true;
                if line == NOT_SUPPORTED {
                    continue;
                }
                key = parse_key(line, line_no)?;
            }
            Section::Hfunc => {
                let Some((name, state)) = line.split_once(':') else {
                    return Err(ParseError::new(
                        line_no,
                        format!("expected 'name: on|off', found {line:?}"),
                    ));
                };
                match state.trim() {
                    "on" => {
                        if hfunc.is_none() {
                            hfunc = Some(name.trim().to_string());
                        }
                    }
                    "off" => {}
                    // "Some other section:" (nothing after the colon).
                    "" => section = Section::Other,
                    other => {
                        return Err(ParseError::new(
                            line_no,
                            format!(
                                "hash function {:?} is {other:?}, expected on|off",
                                name.trim()
                            ),
                        ))
                    }
                }
            }
            // Start was rejected above; Other is skipped by design.
            Section::Start | Section::Other => {}
        }
    }

    if section == Section::Start {
        return Err(ParseError::new(0, format!("no {TABLE_HEADER:?}... line")));
    }
    Ok(RssConfig {
        indirection,
        key,
        hfunc,
        rx_rings,
        source: RssSource::Text,
    })
}

/// A header of a section we do not know: "Something else:" (no digits before the
/// colon, nothing after it).
fn is_section_header(line: &str) -> bool {
    line.ends_with(':') && !line.starts_with(|c: char| c.is_ascii_digit())
}

/// "eth0 with 40 RX ring(s):" -> 40.
fn parse_ring_count(rest: &str) -> Option<u32> {
    let (_, after) = rest.rsplit_once(" with ")?;
    let n = after.strip_suffix(" RX ring(s):")?;
    n.trim().parse().ok()
}

/// "  8:      8     9    10 ..." -> appends the values; the index must equal the
/// number of entries so far, so lost rows are caught, not silently skipped.
fn parse_table_row(line: &str, line_no: usize, table: &mut Vec<u32>) -> Result<(), ParseError> {
    let (index, values) = line.split_once(':').ok_or_else(|| {
        ParseError::new(line_no, format!("expected 'N: q q ...', found {line:?}"))
    })?;
    let index: usize = index
        .trim()
        .parse()
        .map_err(|_| ParseError::new(line_no, format!("bad row index {:?}", index.trim())))?;
    if index != table.len() {
        return Err(ParseError::new(
            line_no,
            format!("row index {index} but {} entries so far", table.len()),
        ));
    }
    let before = table.len();
    for value in values.split_whitespace() {
        let q = value
            .parse()
            .map_err(|_| ParseError::new(line_no, format!("bad queue number {value:?}")))?;
        table.push(q);
    }
    if table.len() == before {
        return Err(ParseError::new(
            line_no,
            format!("row {index} has no entries"),
        ));
    }
    Ok(())
}

/// "6d:5a:..." -> bytes; `None` when elided ("9a:b0:...:6a:ec").
fn parse_key(line: &str, line_no: usize) -> Result<Option<Vec<u8>>, ParseError> {
    let mut key = Vec::new();
    for part in line.split(':') {
        if part.contains("...") || part.contains('\u{2026}') {
            return Ok(None);
        }
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseError::new(line_no, format!("bad key byte {part:?}")));
        }
        let byte = u8::from_str_radix(part, 16)
            .map_err(|_| ParseError::new(line_no, format!("bad key byte {part:?}")))?;
        key.push(byte);
    }
    Ok(Some(key))
}

// ---------------------------------------------------------------------------
// ETHTOOL_MSG_RSS_GET over generic netlink
// ---------------------------------------------------------------------------

/// Generic netlink family name and version (include/uapi/linux/ethtool_netlink.h:
/// ETHTOOL_GENL_NAME, ETHTOOL_GENL_VERSION).
const ETHTOOL_GENL_NAME: &str = "ethtool";
const ETHTOOL_GENL_VERSION: u8 = 1;

/// Message ids (include/uapi/linux/ethtool_netlink_generated.h; RSS_GET follows
/// PSE_SET = 37 in the user->kernel enum, RSS_GET_REPLY follows PSE_GET_REPLY = 37
/// in the kernel->user one; both added in 6.2, commit 7112a04664bf).
const ETHTOOL_MSG_RSS_GET: u8 = 38;
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

/// Why a netlink request did not produce an answer.
#[derive(Debug)]
enum NlError {
    /// The kernel answered NLMSG_ERROR with this errno (positive) and, when
    /// extended ACK is on, its message.
    Errno(i32, Option<String>),
    Io(io::Error),
    Decode(String),
}

impl NlError {
    fn describe(&self) -> String {
        match self {
            NlError::Errno(errno, Some(msg)) => {
                format!("{} ({msg})", io::Error::from_raw_os_error(*errno))
            }
            NlError::Errno(errno, None) => io::Error::from_raw_os_error(*errno).to_string(),
            NlError::Io(e) => e.to_string(),
            NlError::Decode(msg) => format!("cannot decode reply: {msg}"),
        }
    }
}

/// How long a blocking request waits for the kernel before giving up.
const NETLINK_TIMEOUT: Duration = Duration::from_secs(5);

/// A blocking generic netlink socket bound in the calling thread's network
/// namespace.
struct GenlSocket {
    socket: Socket,
    seq: u32,
}

impl GenlSocket {
    fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_GENERIC)?;
        socket.bind_auto()?;
        // Error messages from the kernel ("no device matches name") are worth
        // having; neither option is essential, so failures are ignored.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        set_recv_timeout(socket.as_raw_fd(), NETLINK_TIMEOUT)?;
        Ok(Self { socket, seq: 0 })
    }

    /// Send one non-dump GET and return the single reply.
    fn get<F>(&mut self, payload: GenlMessage<F>) -> Result<GenlMessage<F>, NlError>
    where
        F: GenlFamily + Emitable + ParseableParametrized<[u8], GenlHeader> + std::fmt::Debug,
    {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut msg = NetlinkMessage::from(payload);
        msg.header.flags = NLM_F_REQUEST;
        msg.header.sequence_number = seq;
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        self.socket
            .send_to(&buf, &SocketAddr::new(0, 0), 0)
            .map_err(NlError::Io)?;

        loop {
            let datagram = self.recv_datagram().map_err(|e| {
                if e.kind() == io::ErrorKind::WouldBlock {
                    NlError::Io(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no reply within {} s", NETLINK_TIMEOUT.as_secs()),
                    ))
                } else {
                    NlError::Io(e)
                }
            })?;
            let mut offset = 0;
            while offset < datagram.len() {
                let bytes = &datagram[offset..];
                let header = NetlinkHeader::parse(
                    &netlink_packet_core::NetlinkBuffer::new_checked(bytes)
                        .map_err(|e| NlError::Decode(e.to_string()))?,
                )
                .map_err(|e| NlError::Decode(e.to_string()))?;
                let len = header.length as usize;
                if len < 16 || len > bytes.len() {
                    return Err(NlError::Decode(format!("netlink message length {len}")));
                }
                offset += (len + 3) & !3;
                if header.sequence_number != seq {
                    continue;
                }
                let parsed = NetlinkMessage::<GenlMessage<F>>::deserialize(&bytes[..len])
                    .map_err(|e| NlError::Decode(e.to_string()))?;
                match parsed.payload {
                    NetlinkPayload::InnerMessage(reply) => return Ok(reply),
                    NetlinkPayload::Error(err) => {
                        return Err(match err.code {
                            Some(code) => NlError::Errno(
                                code.get().saturating_abs(),
                                extack_message(parsed.header.flags, &err.header),
                            ),
                            None => NlError::Decode("ACK without a reply".to_string()),
                        })
                    }
                    _ => continue,
                }
            }
        }
    }

    /// Read one whole datagram, sized with MSG_PEEK|MSG_TRUNC first.
    fn recv_datagram(&self) -> io::Result<Vec<u8>> {
        let mut probe = [0u8; 1];
        // SAFETY: recv into a 1-byte stack buffer we own; MSG_TRUNC makes it
        // return the datagram's full length without consuming it.
        let len = unsafe {
            libc::recv(
                self.socket.as_raw_fd(),
                probe.as_mut_ptr().cast(),
                probe.len(),
                libc::MSG_PEEK | libc::MSG_TRUNC,
            )
        };
        if len < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf: Vec<u8> = Vec::with_capacity(len as usize);
        self.socket.recv(&mut buf, 0)?;
        Ok(buf)
    }
}

/// NLMSGERR_ATTR_MSG (1) from an NLMSG_ERROR payload after the error code
/// (include/uapi/linux/netlink.h, enum nlmsgerr_attrs). The TLVs follow the echoed
/// request, which is just its 16-byte nlmsghdr when the error is flagged
/// NLM_F_CAPPED (NETLINK_CAP_ACK) and the whole request otherwise; they are only
/// there when flagged NLM_F_ACK_TLVS.
fn extack_message(error_flags: u16, after_code: &[u8]) -> Option<String> {
    if error_flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let echoed_len = if error_flags & NLM_F_CAPPED != 0 {
        16
    } else {
        let echoed = netlink_packet_core::NetlinkBuffer::new_checked(after_code).ok()?;
        (echoed.length() as usize + 3) & !3
    };
    let tlvs = after_code.get(echoed_len..)?;
    for nla in NlasIterator::new(tlvs) {
        let nla = nla.ok()?;
        if nla.kind() == 1 {
            let text = nla.value().split(|&b| b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
    }
    None
}

fn set_recv_timeout(fd: libc::c_int, timeout: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: passes a pointer to a local timeval and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The "ethtool" family as the controller describes it.
struct EthtoolFamily {
    id: u16,
    /// Command ids the family offers (CTRL_ATTR_OPS / CTRL_ATTR_OP_ID).
    ops: Vec<u32>,
}

/// CTRL_CMD_GETFAMILY "ethtool"; `None` when the family is not registered
/// (ENOENT: kernel < 5.6 or CONFIG_ETHTOOL_NETLINK=n).
fn resolve_family(sock: &mut GenlSocket) -> Result<Option<EthtoolFamily>, NlError> {
    let request = GenlMessage::from_payload(GenlCtrl {
        cmd: GenlCtrlCmd::GetFamily,
        nlas: vec![GenlCtrlAttrs::FamilyName(ETHTOOL_GENL_NAME.to_string())],
    });
    let reply = match sock.get(request) {
        Ok(reply) => reply,
        Err(NlError::Errno(errno, _)) if errno == libc::ENOENT => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut id = None;
    let mut ops = Vec::new();
    for nla in reply.payload.nlas {
        match nla {
            GenlCtrlAttrs::FamilyId(v) => id = Some(v),
            GenlCtrlAttrs::Ops(list) => {
                for op in list {
                    for attr in op {
                        if let netlink_packet_generic::ctrl::nlas::OpAttrs::Id(v) = attr {
                            ops.push(v);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    match id {
        Some(id) => Ok(Some(EthtoolFamily { id, ops })),
        None => Err(NlError::Decode(
            "GETFAMILY reply without CTRL_ATTR_FAMILY_ID".to_string(),
        )),
    }
}

/// Whether the generic netlink family "ethtool" exists in this network namespace
/// (for `doctor`).
pub fn family_available() -> Result<bool, SourceError> {
    let mut sock = GenlSocket::open().map_err(|e| SourceError::Kernel {
        what: "generic netlink socket".to_string(),
        msg: e.to_string(),
    })?;
    resolve_family(&mut sock)
        .map(|f| f.is_some())
        .map_err(|e| SourceError::Kernel {
            what: "CTRL_CMD_GETFAMILY ethtool".to_string(),
            msg: e.describe(),
        })
}

/// Why [`read_netlink`] could not answer: the transport is missing (fall back to
/// the ioctl) or the request itself failed.
enum NetlinkOutcome {
    NoCommand(String),
    Failed(SourceError),
}

/// Send RSS_GET for `ifname` and return the reply as the kernel sent it.
fn rss_get_message(ifname: &str) -> Result<EthtoolRssMessage, NetlinkOutcome> {
    check_ifname(ifname).map_err(NetlinkOutcome::Failed)?;
    let mut sock = GenlSocket::open().map_err(|e| {
        NetlinkOutcome::NoCommand(format!("cannot open generic netlink socket: {e}"))
    })?;
    let family = resolve_family(&mut sock).map_err(|e| {
        NetlinkOutcome::Failed(SourceError::Kernel {
            what: "CTRL_CMD_GETFAMILY ethtool".to_string(),
            msg: e.describe(),
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
    if !family.ops.contains(&u32::from(ETHTOOL_MSG_RSS_GET)) {
        return Err(NetlinkOutcome::NoCommand(
            "ethtool family has no ETHTOOL_MSG_RSS_GET (kernel < 6.2)".to_string(),
        ));
    }

    let mut request = GenlMessage::from_payload(EthtoolRssMessage::new_get(ifname));
    request.set_resolved_family_id(family.id);
    let what = format!("{ifname}: ETHTOOL_MSG_RSS_GET");
    let reply = sock.get(request).map_err(|e| {
        NetlinkOutcome::Failed(match e {
            NlError::Errno(errno, _) => errno_to_source(errno, ifname, &what, &e.describe()),
            other => SourceError::Kernel {
                what: what.clone(),
                msg: other.describe(),
            },
        })
    })?;
    Ok(reply.payload)
}

fn rss_get_netlink(ifname: &str) -> Result<RssConfig, NetlinkOutcome> {
    let reply = rss_get_message(ifname)?;
    let mut config = config_from_reply(&reply);
    // ethtool(8) also takes the ring count from ETHTOOL_GRXRINGS in netlink mode;
    // RSS_GET does not carry it.
    config.rx_rings = ioctl_rx_rings(ifname).ok();
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

/// Netlink when the kernel has ETHTOOL_MSG_RSS_GET, the ioctl otherwise. A
/// driver's "not supported" passes through as [`SourceError::Unsupported`].
pub fn read(ifname: &str) -> Result<RssConfig, SourceError> {
    match rss_get_netlink(ifname) {
        Ok(config) => Ok(config),
        Err(NetlinkOutcome::NoCommand(why)) => {
            log::debug!("{ifname}: RSS over netlink unavailable ({why}); using ETHTOOL_GRSSH");
            read_ioctl(ifname)
        }
        Err(NetlinkOutcome::Failed(e)) => Err(e),
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

/// errno of a GET -> SourceError: EOPNOTSUPP is the driver declining (not a
/// failure), ENODEV the device being gone.
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

// ---------------------------------------------------------------------------
// SIOCETHTOOL ioctl
// ---------------------------------------------------------------------------

/// SIOCETHTOOL commands (include/uapi/linux/ethtool.h). Both are GETs.
const ETHTOOL_GRXRINGS: u32 = 0x0000_002d;
const ETHTOOL_GRSSH: u32 = 0x0000_0046;

/// `struct ifreq` with the `ifr_data` member of its union: 16-byte name, then
/// the union (24 bytes on 64-bit, the size of `struct ifmap`). Padded so the
/// kernel's copy of `sizeof(struct ifreq)` stays inside it.
#[repr(C)]
struct IfreqData {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 24],
}

/// An AF_INET datagram socket: the handle SIOCETHTOOL is issued on (like ethtool(8)).
fn ioctl_socket() -> io::Result<std::os::fd::OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned by the OwnedFd right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor nobody else owns.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

/// Issue one SIOCETHTOOL with `data` as the command buffer. The caller keeps
/// `data` alive and large enough for what the command writes back.
fn ethtool_ioctl(
    fd: &std::os::fd::OwnedFd,
    ifname: &str,
    data: *mut libc::c_void,
) -> io::Result<()> {
    let mut ifr = IfreqData {
        name: [0; libc::IFNAMSIZ],
        data,
        _pad: [0; 24],
    };
    // check_ifname_ioctl guarantees len < IFNAMSIZ, so the name stays NUL-terminated.
    for (dst, src) in ifr.name.iter_mut().zip(ifname.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: ifr is a valid ifreq-shaped buffer whose data pointer the caller
    // vouches for; SIOCETHTOOL only reads/writes within those two.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::SIOCETHTOOL as _,
            &mut ifr as *mut IfreqData,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// SIOCETHTOOL names must fit `ifr_name` (IFNAMSIZ including the NUL).
fn check_ifname_ioctl(ifname: &str) -> Result<(), SourceError> {
    check_ifname(ifname)?;
    if ifname.len() >= libc::IFNAMSIZ {
        return Err(SourceError::NotFound {
            path: PathBuf::from(ifname),
        });
    }
    Ok(())
}

fn ioctl_error(e: io::Error, ifname: &str, what: &str) -> SourceError {
    match e.raw_os_error() {
        Some(errno) => errno_to_source(errno, ifname, what, &e.to_string()),
        None => SourceError::Kernel {
            what: what.to_string(),
            msg: e.to_string(),
        },
    }
}

/// ETHTOOL_GRXRINGS: `struct ethtool_rxnfc` is 192 bytes on x86_64 (cmd,
/// flow_type, u64 data, 168-byte ethtool_rx_flow_spec, rule_cnt); the kernel
/// copies the whole struct both ways (net/ethtool/ioctl.c ethtool_get_rxrings), so
/// the buffer is a zeroed, u64-aligned 256 bytes.
fn ioctl_rx_rings(ifname: &str) -> Result<u32, SourceError> {
    check_ifname_ioctl(ifname)?;
    let what = format!("{ifname}: ETHTOOL_GRXRINGS");
    let fd = ioctl_socket().map_err(|e| SourceError::Kernel {
        what: what.clone(),
        msg: format!("socket: {e}"),
    })?;
    grxrings(&fd, ifname).map_err(|e| ioctl_error(e, ifname, &what))
}

fn grxrings(fd: &std::os::fd::OwnedFd, ifname: &str) -> io::Result<u32> {
    let mut rxnfc = [0u64; 32];
    let mut first = [0u8; 8];
    first[..4].copy_from_slice(&ETHTOOL_GRXRINGS.to_ne_bytes());
    rxnfc[0] = u64::from_ne_bytes(first);
    ethtool_ioctl(fd, ifname, rxnfc.as_mut_ptr().cast())?;
    // `data` is the u64 at offset 8.
    u32::try_from(rxnfc[1])
        .map_err(|_| io::Error::other(format!("ring count {} out of range", rxnfc[1])))
}

/// `struct ethtool_rxfh` up to `rss_config[]`: cmd, rss_context, indir_size,
/// key_size (u32 each), hfunc (u8), input_xfrm/rsvd8 (3 bytes), rsvd32 — 24 bytes,
/// 6 u32 words.
const RXFH_HEADER_WORDS: usize = 6;
/// Sanity bounds on sizes a driver reports, so a bogus answer cannot make us
/// allocate gigabytes (real tables are <= a few thousand entries, keys <= 256 B).
const MAX_INDIR_SIZE: u32 = 1 << 16;
const MAX_KEY_SIZE: u32 = 1 << 12;

/// One ETHTOOL_GRSSH with the given user buffer sizes; returns the header words
/// and the whole buffer.
fn grssh(
    fd: &std::os::fd::OwnedFd,
    ifname: &str,
    indir_size: u32,
    key_size: u32,
) -> io::Result<Vec<u32>> {
    let words = RXFH_HEADER_WORDS + indir_size as usize + (key_size as usize).div_ceil(4);
    // A u32 Vec keeps the flexible array u32-aligned as the kernel expects.
    let mut buf = vec![0u32; words];
    buf[0] = ETHTOOL_GRSSH;
    buf[1] = 0; // rss_context 0: the default context
    buf[2] = indir_size;
    buf[3] = key_size;
    ethtool_ioctl(fd, ifname, buf.as_mut_ptr().cast())?;
    Ok(buf)
}

/// RSS configuration over SIOCETHTOOL: ETHTOOL_GRSSH twice (sizes, then data; see
/// the `struct ethtool_rxfh` comment in include/uapi/linux/ethtool.h) and
/// ETHTOOL_GRXRINGS for the ring count, as ethtool(8) `-x` does.
pub fn read_ioctl(ifname: &str) -> Result<RssConfig, SourceError> {
    check_ifname_ioctl(ifname)?;
    let what = format!("{ifname}: ETHTOOL_GRSSH");
    let fd = ioctl_socket().map_err(|e| SourceError::Kernel {
        what: what.clone(),
        msg: format!("socket: {e}"),
    })?;

    // The table can be resized between the two calls (ethtool -L); the kernel
    // then answers EINVAL to the second, and one retry picks up the new sizes.
    let mut attempt = 0;
    let buf = loop {
        attempt += 1;
        let sizes = grssh(&fd, ifname, 0, 0).map_err(|e| ioctl_error(e, ifname, &what))?;
        let (indir_size, key_size) = (sizes[2], sizes[3]);
        if indir_size > MAX_INDIR_SIZE || key_size > MAX_KEY_SIZE {
            return Err(SourceError::Kernel {
                what,
                msg: format!("implausible sizes: indir_size {indir_size}, key_size {key_size}"),
            });
        }
        if indir_size == 0 && key_size == 0 {
            break sizes;
        }
        match grssh(&fd, ifname, indir_size, key_size) {
            Ok(buf) => break buf,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && attempt < 3 => continue,
            Err(e) => return Err(ioctl_error(e, ifname, &what)),
        }
    };

    let mut config = config_from_rxfh(&buf);
    config.rx_rings = match grxrings(&fd, ifname) {
        Ok(n) => Some(n),
        Err(e) => {
            log::debug!("{ifname}: ETHTOOL_GRXRINGS: {e}");
            None
        }
    };
    Ok(config)
}

/// Pure: a filled `struct ethtool_rxfh` (as u32 words) -> [`RssConfig`]. Sizes
/// beyond the buffer are clamped, never trusted for indexing.
fn config_from_rxfh(buf: &[u32]) -> RssConfig {
    let word = |i: usize| buf.get(i).copied().unwrap_or(0);
    let indir_size = word(2) as usize;
    let key_size = word(3) as usize;
    // hfunc is the first byte of word 4 in memory order.
    let hfunc = word(4).to_ne_bytes()[0];
    let body = buf.get(RXFH_HEADER_WORDS..).unwrap_or(&[]);
    let indirection: Vec<u32> = body.iter().take(indir_size).copied().collect();
    let key_bytes: Vec<u8> = body
        .iter()
        .skip(indir_size)
        .flat_map(|w| w.to_ne_bytes())
        .take(key_size)
        .collect();
    RssConfig {
        indirection,
        key: (!key_bytes.is_empty()).then_some(key_bytes),
        hfunc: hfunc_name(u32::from(hfunc)),
        rx_rings: None,
        source: RssSource::Ioctl,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::channels::test_netns::{privileged, Netns};
    use proptest::prelude::*;
    use std::process::Command;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/ethtool_x");

    fn fixture(name: &str) -> String {
        let path = format!("{FIXTURES}/{name}");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn parse_fixture(name: &str) -> RssConfig {
        parse_ethtool_x(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn key_from(hex: &str) -> Vec<u8> {
        hex.split(':')
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    /// The 40-byte key ixgbe and many others default to (rxtxcpu fixtures).
    const IXGBE_KEY: &str = "6d:5a:56:da:25:5b:0e:c2:41:67:25:3d:43:a3:8f:b0:d0:ca:2b:cb:ae:7b:30:b4:77:cb:2d:a3:80:30:f2:0c:6a:42:b7:3b:be:ac:01:fa";

    fn text(
        indirection: Vec<u32>,
        key: Option<&str>,
        hfunc: Option<&str>,
        rings: u32,
    ) -> RssConfig {
        RssConfig {
            indirection,
            key: key.map(key_from),
            hfunc: hfunc.map(str::to_string),
            rx_rings: Some(rings),
            source: RssSource::Text,
        }
    }

    #[test]
    fn mlx5_xor_with_elided_key() {
        assert_eq!(
            parse_fixture("arthurchiao-mlx5-40rings-xor-elided-key.txt"),
            text((0..128).map(|i| i % 40).collect(), None, Some("xor"), 40)
        );
    }

    #[test]
    fn compact_rows_without_indent() {
        assert_eq!(
            parse_fixture("arthurchiao-packagecloud-compact.txt"),
            text((0..32).map(|i| i % 2).collect(), None, None, 2)
        );
    }

    #[test]
    fn enetc_64_entries_full_key() {
        let key = "0d:1f:cb:76:88:82:dd:ea:70:c9:ef:53:3e:f3:bf:60:5c:79:60:09:32:ff:88:fa:aa:39:63:31:ef:ad:31:e4:ac:57:ec:d2:09:4d:9a:01";
        let got = parse_fixture("enetc-2rings-64entries.txt");
        assert_eq!(
            got,
            text(
                (0..64).map(|i| i % 2).collect(),
                Some(key),
                Some("toeplitz"),
                2
            )
        );
        assert_eq!(got.key.as_ref().map(Vec::len), Some(40));
        assert_eq!(got.key_hex().as_deref(), Some(key));
    }

    #[test]
    fn ice_truncated_table_mixed_indent() {
        // Header says 72 rings; only 96 entries were kept by the test author.
        assert_eq!(
            parse_fixture("intel-mfd-ice-72rings-truncated.txt"),
            text(
                (0..96).map(|i| i % 72).collect(),
                None,
                Some("toeplitz"),
                72
            )
        );
    }

    #[test]
    fn igb_blocks_unaligned_index_key_unsupported() {
        assert_eq!(
            parse_fixture("intel-mfd-igb-enp2s0-4rings-blocked.txt"),
            text(
                (0..128).map(|i| i / 32).collect(),
                None,
                Some("toeplitz"),
                4
            )
        );
    }

    #[test]
    fn ixgbe_63_rings_uses_16() {
        let got = parse_fixture("ixgbe-82599-63rings-unaligned.txt");
        assert_eq!(
            got,
            text((0..128).map(|i| i % 16).collect(), None, None, 63)
        );
        let shares = got.queue_shares(63);
        assert_eq!(shares.len(), 63);
        assert!(shares[..16].iter().all(|&s| s == 8.0 / 128.0));
        assert!(shares[16..].iter().all(|&s| s == 0.0));
    }

    #[test]
    fn ixgbe_after_combined_10() {
        assert_eq!(
            parse_fixture("rxtxcpu-ixgbe-10rings-after-L.txt"),
            text(
                (0..128).map(|i| i % 10).collect(),
                Some(IXGBE_KEY),
                None,
                10
            )
        );
    }

    #[test]
    fn ixgbe_16_default() {
        let got = parse_fixture("rxtxcpu-ixgbe-16rings-default.txt");
        assert_eq!(
            got,
            text(
                (0..128).map(|i| i % 16).collect(),
                Some(IXGBE_KEY),
                None,
                16
            )
        );
        assert_eq!(got.key_hex().as_deref(), Some(IXGBE_KEY));
        assert_eq!(got.queue_shares(16), vec![1.0 / 16.0; 16]);
    }

    #[test]
    fn ixgbe_equal_4() {
        let got = parse_fixture("rxtxcpu-ixgbe-16rings-equal4.txt");
        assert_eq!(
            got,
            text((0..128).map(|i| i % 4).collect(), Some(IXGBE_KEY), None, 16)
        );
        let mut expected = vec![0.25; 4];
        expected.extend(vec![0.0; 12]);
        assert_eq!(got.queue_shares(16), expected);
    }

    #[test]
    fn ixgbe_weight_7_1() {
        // ethtool -X weight 7 1 7 1 ...: each 16-entry run is 14 x even, 2 x odd.
        let table = (0..128u32)
            .map(|i| {
                if i % 16 < 14 {
                    2 * (i / 16)
                } else {
                    2 * (i / 16) + 1
                }
            })
            .collect();
        let got = parse_fixture("rxtxcpu-ixgbe-16rings-weight7-1.txt");
        assert_eq!(got, text(table, Some(IXGBE_KEY), None, 16));
        let shares = got.queue_shares(16);
        assert_eq!(shares[0], 14.0 / 128.0);
        assert_eq!(shares[1], 2.0 / 128.0);
    }

    #[test]
    fn ixgbe_custom_key() {
        let key = ["6d:5a"; 20].join(":");
        let got = parse_fixture("rxtxcpu-ixgbe-custom-key.txt");
        assert_eq!(
            got,
            text((0..128).map(|i| i % 16).collect(), Some(&key), None, 16)
        );
        assert_eq!(got.key_hex(), Some(key));
    }

    #[test]
    fn virtio_table_and_key_unsupported() {
        let got = parse_fixture("virtio-1ring-operation-not-supported.txt");
        assert_eq!(got, text(vec![], None, Some("toeplitz"), 1));
        assert_eq!(got.queue_shares(1), vec![0.0]);
        assert_eq!(got.key_hex(), None);
    }

    #[test]
    fn two_rings_halves_key_unsupported() {
        let got = parse_fixture("zhuizhu-enp68s0-2rings-key-unsupported.txt");
        assert_eq!(
            got,
            text(
                (0..128).map(|i| i / 64).collect(),
                None,
                Some("toeplitz"),
                2
            )
        );
        assert_eq!(got.queue_shares(2), vec![0.5, 0.5]);
    }

    #[test]
    fn two_rings_weight_6_2() {
        let got = parse_fixture("zhuizhu-enp68s0-2rings-weight6-2.txt");
        assert_eq!(
            got,
            text(
                (0..128).map(|i| u32::from(i >= 96)).collect(),
                None,
                Some("toeplitz"),
                2
            )
        );
        assert_eq!(got.queue_shares(2), vec![0.75, 0.25]);
        // A table naming queues beyond `queues` counts in the total only.
        assert_eq!(got.queue_shares(1), vec![0.75]);
    }

    #[test]
    fn every_fixture_parses_and_full_keys_print_back() {
        let mut names: Vec<_> = std::fs::read_dir(FIXTURES)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".txt"))
            .collect();
        names.sort();
        assert_eq!(names.len(), 14);
        for name in names {
            let raw = fixture(&name);
            let got = parse_ethtool_x(&raw).unwrap_or_else(|e| panic!("{name}: {e}"));
            // key_hex reproduces the key line exactly, byte for byte.
            if let Some(hex) = got.key_hex() {
                assert!(raw.lines().any(|l| l == hex), "{name}: {hex}");
            }
        }
    }

    #[test]
    fn newer_ethtool_sections_are_tolerated() {
        // ethtool 6.8+ adds "RSS input transformation:" after the hash functions.
        let raw = "RX flow hash indirection table for eth1 with 2 RX ring(s):\n    0:      0     1     0     1\nRSS hash key:\n6d:5a\nRSS hash function:\n    toeplitz: off\n    xor: off\n    crc32: on\nRSS input transformation:\n    symmetric-xor: on\n";
        assert_eq!(
            parse_ethtool_x(raw).unwrap(),
            text(vec![0, 1, 0, 1], Some("6d:5a"), Some("crc32"), 2)
        );
    }

    #[test]
    fn malformed_inputs_name_the_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 0, "no \"RX flow hash"),
            ("Cannot get RX ring count: Operation not supported\n", 1, "expected"),
            ("RX flow hash indirection table for eth0 with x RX ring(s):\n", 1, "RX ring(s)"),
            ("RX flow hash indirection table for eth0 with 2 RX ring(s):\n0: 0 1\n4: 0 1\n", 3, "row index 4 but 2 entries"),
            ("RX flow hash indirection table for eth0 with 2 RX ring(s):\n0: 0 x\n", 2, "bad queue number \"x\""),
            ("RX flow hash indirection table for eth0 with 2 RX ring(s):\n0:\n", 2, "no entries"),
            ("RX flow hash indirection table for eth0 with 2 RX ring(s):\nRSS hash key:\n6d:zz\n", 3, "bad key byte \"zz\""),
            ("RX flow hash indirection table for eth0 with 2 RX ring(s):\nRSS hash key:\n6d\n6d\n", 4, "second key line"),
            ("RX flow hash indirection table for eth0 with 2 RX ring(s):\nRSS hash function:\n    xor: maybe\n", 3, "expected on|off"),
            ("RX flow hash indirection table for eth0 with 2 RX ring(s):\nRX flow hash indirection table for eth0 with 2 RX ring(s):\n", 2, "second indirection table"),
        ];
        for (input, line, needle) in cases {
            let err = parse_ethtool_x(input).expect_err(input);
            assert_eq!(err.line, *line, "{input:?}: {err}");
            assert!(err.msg.contains(needle), "{input:?}: {err}");
        }
    }

    #[test]
    fn key_hex_and_shares_edge_cases() {
        let mut c = text(vec![], None, None, 0);
        assert_eq!(c.key_hex(), None);
        assert_eq!(c.queue_shares(0), Vec::<f64>::new());
        c.key = Some(vec![0x00, 0xab, 0xff]);
        assert_eq!(c.key_hex().as_deref(), Some("00:ab:ff"));
        c.indirection = vec![u32::MAX, 0];
        assert_eq!(c.queue_shares(2), vec![0.5, 0.0]);
    }

    #[test]
    fn hfunc_names() {
        assert_eq!(hfunc_name(0), None);
        assert_eq!(hfunc_name(1).as_deref(), Some("toeplitz"));
        assert_eq!(hfunc_name(2).as_deref(), Some("xor"));
        assert_eq!(hfunc_name(4).as_deref(), Some("crc32"));
        assert_eq!(hfunc_name(8).as_deref(), Some("unknown(8)"));
    }

    // --- netlink encoding ---

    /// An RSS_GET_REPLY (genl header + attributes) laid out as rss.c builds it:
    /// header nest {DEV_INDEX 9, DEV_NAME "eth1"}, INDIR [0,1,0,1], HFUNC 1
    /// (toeplitz), HKEY 6d:5a:56:da:25 (padded to 4).
    fn reply_bytes() -> Vec<u8> {
        let mut b = vec![38, 1, 0, 0]; // cmd RSS_GET_REPLY, version 1
        b.extend([0x18, 0x00, 0x01, 0x80]); // ETHTOOL_A_RSS_HEADER | NESTED, len 24
        b.extend([0x08, 0x00, 0x01, 0x00, 9, 0, 0, 0]); // DEV_INDEX 9
        b.extend([0x09, 0x00, 0x02, 0x00, b'e', b't', b'h', b'1', 0, 0, 0, 0]); // DEV_NAME
        b.extend([0x14, 0x00, 0x04, 0x00]); // INDIR, len 20
        for q in [0u32, 1, 0, 1] {
            b.extend(q.to_ne_bytes());
        }
        b.extend([0x08, 0x00, 0x03, 0x00]); // HFUNC
        b.extend(1u32.to_ne_bytes());
        b.extend([
            0x09, 0x00, 0x05, 0x00, 0x6d, 0x5a, 0x56, 0xda, 0x25, 0, 0, 0,
        ]); // HKEY
        b
    }

    #[test]
    fn reply_bytes_to_config() {
        assert_eq!(
            parse_rss_reply(&reply_bytes()).unwrap(),
            RssConfig {
                indirection: vec![0, 1, 0, 1],
                key: Some(vec![0x6d, 0x5a, 0x56, 0xda, 0x25]),
                hfunc: Some("toeplitz".to_string()),
                rx_rings: None,
                source: RssSource::Netlink,
            }
        );
    }

    #[test]
    fn reply_without_indir_or_key_is_an_empty_table() {
        // What virtio_net without VIRTIO_NET_F_RSS answers on 6.18: header and
        // HFUNC only (plus FLOW_HASH, attribute 8, which we skip).
        let mut b = vec![38, 1, 0, 0];
        b.extend([0x08, 0x00, 0x03, 0x00]);
        b.extend(1u32.to_ne_bytes());
        b.extend([0x0c, 0x00, 0x08, 0x80, 0x08, 0x00, 0x01, 0x00, 0, 0, 0, 0]);
        assert_eq!(
            parse_rss_reply(&b).unwrap(),
            RssConfig {
                indirection: vec![],
                key: None,
                hfunc: Some("toeplitz".to_string()),
                rx_rings: None,
                source: RssSource::Netlink,
            }
        );
    }

    #[test]
    fn malformed_replies_are_errors() {
        let mut odd = vec![38, 1, 0, 0, 0x07, 0x00, 0x04, 0x00, 1, 0, 0, 0];
        assert!(parse_rss_reply(&odd)
            .unwrap_err()
            .msg
            .contains("not a whole number of u32"));
        odd[0] = 37; // another command id
        assert!(parse_rss_reply(&odd)
            .unwrap_err()
            .msg
            .contains("unexpected ethtool command 37"));
        assert!(parse_rss_reply(&[38, 1]).is_err());
    }

    #[test]
    fn request_bytes() {
        // RSS_GET for "eth0": header nest with DEV_NAME only, as the ethtool
        // crate encodes its per-device GETs.
        let msg = EthtoolRssMessage::new_get("eth0");
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        assert_eq!(
            buf,
            vec![
                0x10, 0x00, 0x01, 0x80, 0x09, 0x00, 0x02, 0x00, b'e', b't', b'h', b'0', 0, 0, 0, 0
            ]
        );
        assert_eq!(msg.command(), ETHTOOL_MSG_RSS_GET);
        assert_eq!(msg.version(), 1);
    }

    #[test]
    fn attrs_round_trip() {
        let msg = EthtoolRssMessage {
            cmd: EthtoolRssCmd::GetReply,
            nlas: vec![
                EthtoolRssAttr::Header(vec![
                    EthtoolHeader::DevIndex(3),
                    EthtoolHeader::DevName("ens1f0".into()),
                ]),
                EthtoolRssAttr::Context(0),
                EthtoolRssAttr::Hfunc(2),
                EthtoolRssAttr::Indir((0..128).map(|i| i % 7).collect()),
                EthtoolRssAttr::Hkey(key_from(IXGBE_KEY)),
                EthtoolRssAttr::InputXfrm(1),
            ],
        };
        let mut buf = vec![38, 1, 0, 0];
        buf.resize(4 + msg.buffer_len(), 0);
        msg.emit(&mut buf[4..]);
        let header = GenlHeader::parse(&buf).unwrap();
        assert_eq!(
            EthtoolRssMessage::parse_with_param(&buf[4..], header).unwrap(),
            msg
        );
        let config = parse_rss_reply(&buf).unwrap();
        assert_eq!(config.hfunc.as_deref(), Some("xor"));
        assert_eq!(config.key_hex().as_deref(), Some(IXGBE_KEY));
        assert_eq!(config.indirection.len(), 128);
    }

    #[test]
    fn extack_message_after_capped_and_full_echo() {
        let tlv = [
            0x0d, 0x00, 0x01, 0x00, b'n', b'o', b' ', b'd', b'e', b'v', 0, 0, 0, 0, 0, 0,
        ];
        // Capped: the 16-byte header only (its length field still says 36).
        let mut capped = vec![36, 0, 0, 0, 0x1c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        capped.extend(tlv);
        assert_eq!(
            extack_message(NLM_F_ACK_TLVS | NLM_F_CAPPED, &capped).as_deref(),
            Some("no dev")
        );
        // Not capped: the whole 20-byte request, then the TLVs.
        let mut full = vec![
            20, 0, 0, 0, 0x1c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 38, 1, 0, 0,
        ];
        full.extend(tlv);
        assert_eq!(
            extack_message(NLM_F_ACK_TLVS, &full).as_deref(),
            Some("no dev")
        );
        // No TLV flag, no message; garbage never panics.
        assert_eq!(extack_message(0, &full), None);
        assert_eq!(extack_message(NLM_F_ACK_TLVS, &[1, 2, 3]), None);
    }

    #[test]
    fn live_kernel_error_carries_extack_message() {
        if !privileged("live_kernel_error_carries_extack_message") {
            return;
        }
        let mut sock = GenlSocket::open().unwrap();
        let family = resolve_family(&mut sock).unwrap().unwrap();
        let mut request = GenlMessage::from_payload(EthtoolRssMessage::new_get("nodev-xyz"));
        request.set_resolved_family_id(family.id);
        match sock.get(request) {
            Err(NlError::Errno(errno, msg)) => {
                assert_eq!(errno, libc::ENODEV);
                assert_eq!(msg.as_deref(), Some("no device matches name"));
            }
            other => panic!("expected ENODEV, got {other:?}"),
        }
    }

    #[test]
    fn rxfh_buffer_to_config() {
        // struct ethtool_rxfh after the second GRSSH: 4 entries, 5-byte key, toeplitz.
        let mut buf = vec![ETHTOOL_GRSSH, 0, 4, 5, u32::from_ne_bytes([1, 0, 0, 0]), 0];
        buf.extend([3, 2, 1, 0]);
        buf.push(u32::from_ne_bytes([0x6d, 0x5a, 0x56, 0xda]));
        buf.push(u32::from_ne_bytes([0x25, 0, 0, 0]));
        assert_eq!(
            config_from_rxfh(&buf),
            RssConfig {
                indirection: vec![3, 2, 1, 0],
                key: Some(vec![0x6d, 0x5a, 0x56, 0xda, 0x25]),
                hfunc: Some("toeplitz".to_string()),
                rx_rings: None,
                source: RssSource::Ioctl,
            }
        );
        // Sizes only (first call on a device without a table).
        let sizes = vec![ETHTOOL_GRSSH, 0, 0, 0, 1, 0];
        assert_eq!(config_from_rxfh(&sizes).indirection, Vec::<u32>::new());
        assert_eq!(config_from_rxfh(&sizes).key, None);
    }

    fn mutate(text: &str, ops: &[(usize, u8, u8)]) -> String {
        let mut bytes = text.as_bytes().to_vec();
        for &(pos, op, byte) in ops {
            if bytes.is_empty() {
                break;
            }
            let pos = pos % bytes.len();
            match op % 4 {
                0 => {
                    bytes.remove(pos);
                }
                1 => bytes.insert(pos, byte),
                2 => bytes[pos] = byte,
                _ => bytes.truncate(pos),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    const FIXTURE_NAMES: [&str; 14] = [
        "arthurchiao-mlx5-40rings-xor-elided-key.txt",
        "arthurchiao-packagecloud-compact.txt",
        "enetc-2rings-64entries.txt",
        "intel-mfd-ice-72rings-truncated.txt",
        "intel-mfd-igb-enp2s0-4rings-blocked.txt",
        "ixgbe-82599-63rings-unaligned.txt",
        "rxtxcpu-ixgbe-10rings-after-L.txt",
        "rxtxcpu-ixgbe-16rings-default.txt",
        "rxtxcpu-ixgbe-16rings-equal4.txt",
        "rxtxcpu-ixgbe-16rings-weight7-1.txt",
        "rxtxcpu-ixgbe-custom-key.txt",
        "virtio-1ring-operation-not-supported.txt",
        "zhuizhu-enp68s0-2rings-key-unsupported.txt",
        "zhuizhu-enp68s0-2rings-weight6-2.txt",
    ];

    proptest! {
        #[test]
        fn text_parser_never_panics_on_arbitrary_input(s in "\\PC*") {
            let _ = parse_ethtool_x(&s);
        }

        #[test]
        fn text_parser_never_panics_on_mutated_fixtures(
            which in 0usize..14,
            ops in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8),
        ) {
            let input = mutate(&fixture(FIXTURE_NAMES[which]), &ops);
            if let Ok(c) = parse_ethtool_x(&input) {
                let _ = c.queue_shares(16);
                let _ = c.key_hex();
            }
        }

        #[test]
        fn reply_parser_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_rss_reply(&bytes);
        }

        #[test]
        fn reply_parser_never_panics_on_mutated_reply(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            cut in any::<usize>(),
        ) {
            let mut bytes = reply_bytes();
            for (pos, byte) in edits {
                let i = pos % bytes.len();
                bytes[i] = byte;
            }
            bytes.truncate(cut % (bytes.len() + 1));
            let _ = parse_rss_reply(&bytes);
        }

        #[test]
        fn rxfh_decoder_never_panics(words in proptest::collection::vec(any::<u32>(), 0..64)) {
            let _ = config_from_rxfh(&words);
        }
    }

    // --- live ---

    fn cli_rss(cmd: &mut Command) -> Result<RssConfig, String> {
        let out = cmd.output().expect("run ethtool -x");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(
            parse_ethtool_x(&String::from_utf8_lossy(&out.stdout))
                .expect("parse ethtool -x output"),
        )
    }

    /// The fields all three sources share (not `source`).
    fn facts(c: &RssConfig) -> (Vec<u32>, Option<Vec<u8>>, Option<String>, Option<u32>) {
        (
            c.indirection.clone(),
            c.key.clone(),
            c.hfunc.clone(),
            c.rx_rings,
        )
    }

    /// Live on eth0 (virtio_net here): RSS_GET, GRSSH and `ethtool -x` agree.
    /// Without VIRTIO_NET_F_RSS the driver reports table and key size 0, so all
    /// three say: no table, no key, toeplitz.
    #[test]
    fn live_eth0_netlink_ioctl_and_cli_agree() {
        if !privileged("live_eth0_netlink_ioctl_and_cli_agree") {
            return;
        }
        if !std::path::Path::new("/sys/class/net/eth0").exists() {
            eprintln!("live_eth0_netlink_ioctl_and_cli_agree: skipped: no eth0");
            return;
        }
        assert!(family_available().unwrap());
        let netlink = read_netlink("eth0").unwrap();
        let ioctl = read_ioctl("eth0").unwrap();
        let cli = cli_rss(Command::new("ethtool").args(["-x", "eth0"])).unwrap();
        assert_eq!(netlink.source, RssSource::Netlink);
        assert_eq!(ioctl.source, RssSource::Ioctl);
        assert_eq!(facts(&netlink), facts(&cli));
        assert_eq!(facts(&ioctl), facts(&cli));
        assert_eq!(read("eth0").unwrap(), netlink);

        // The raw reply: a table-less device gets no INDIR/HKEY attribute at all.
        let raw = rss_get_message("eth0").ok().unwrap();
        let has = |f: fn(&EthtoolRssAttr) -> bool| raw.nlas.iter().any(f);
        assert_eq!(
            has(|a| matches!(a, EthtoolRssAttr::Indir(_))),
            !cli.indirection.is_empty()
        );
        assert_eq!(
            has(|a| matches!(a, EthtoolRssAttr::Hkey(_))),
            cli.key.is_some()
        );
        let driver = std::fs::read_link("/sys/class/net/eth0/device/driver")
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        if driver.as_deref() == Some("virtio_net") && cli.indirection.is_empty() {
            assert_eq!(
                facts(&netlink),
                (vec![], None, Some("toeplitz".to_string()), Some(1))
            );
            assert!(raw.nlas.contains(&EthtoolRssAttr::Hfunc(1)));
        }
    }

    /// Live: a veth pair in a fresh namespace. veth has no get_rxfh, so RSS_GET
    /// and GRSSH both answer EOPNOTSUPP -> Unsupported (not a failure), and
    /// `ethtool -x` fails with "Operation not supported" too.
    #[test]
    fn live_veth_is_unsupported_everywhere() {
        if !privileged("live_veth_is_unsupported_everywhere") {
            return;
        }
        let ns = Netns::new("rss");
        ns.add_veth("va", "vb", 4);
        let (netlink, ioctl, both, missing_nl, missing_io, family) = ns.run(|| {
            (
                read_netlink("va"),
                read_ioctl("va"),
                read("va"),
                read_netlink("eth0"),
                read_ioctl("eth0"),
                family_available(),
            )
        });
        for (name, result) in [("netlink", &netlink), ("ioctl", &ioctl), ("read", &both)] {
            match result {
                Err(SourceError::Unsupported { what, why }) => {
                    assert!(what.starts_with("va: "), "{name}: {what}");
                    assert!(why.contains("Operation not supported"), "{name}: {why}");
                }
                other => panic!("{name}: expected Unsupported, got {other:?}"),
            }
        }
        // The namespace has no eth0: NotFound (ENODEV), not a kernel failure.
        assert!(
            matches!(missing_nl, Err(SourceError::NotFound { .. })),
            "{missing_nl:?}"
        );
        assert!(
            matches!(missing_io, Err(SourceError::NotFound { .. })),
            "{missing_io:?}"
        );
        assert!(family.unwrap());

        let out = ns.exec(&["ethtool", "-x", "va"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("Operation not supported"));
    }

    #[test]
    fn bad_names_are_not_found_without_asking_the_kernel() {
        for name in ["", "a/b", "nul\0", &"x".repeat(200)] {
            assert!(
                matches!(read_netlink(name), Err(SourceError::NotFound { .. })),
                "{name:?}"
            );
            assert!(
                matches!(read_ioctl(name), Err(SourceError::NotFound { .. })),
                "{name:?}"
            );
        }
        // Fits netlink's ALTIFNAMSIZ but not ifr_name.
        let long = "y".repeat(20);
        assert!(matches!(
            read_ioctl(&long),
            Err(SourceError::NotFound { .. })
        ));
    }
}
