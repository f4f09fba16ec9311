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
    NLA_F_NESTED, NLM_F_REQUEST,
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
                    if is_section_header(line) {
                        section = Section::Other;
                        continue;
                    }
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
                if payload.len() % 4 != 0 {
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
/// RSS_GET_REPLY. Never panics on arbitrary bytes.
fn parse_rss_reply(genl: &[u8]) -> Result<RssConfig, ParseError> {
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
            let datagram = self.recv_datagram().map_err(NlError::Io)?;
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
                                extack_message(&err.header),
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

/// NLMSGERR_ATTR_MSG (1) from an NLMSG_ERROR payload after the error code. With
/// NETLINK_CAP_ACK the echoed request is only its 16-byte nlmsghdr, and the TLVs
/// follow it (include/uapi/linux/netlink.h, enum nlmsgerr_attrs).
fn extack_message(after_code: &[u8]) -> Option<String> {
    let echoed = netlink_packet_core::NetlinkBuffer::new_checked(after_code).ok()?;
    let echoed_len = (echoed.length() as usize).min(after_code.len());
    // Without CAP_ACK the echoed length covers the whole request; with it, 16.
    let tlvs = after_code.get(echoed_len.max(16).min(after_code.len())..)?;
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

fn rss_get_netlink(ifname: &str) -> Result<RssConfig, NetlinkOutcome> {
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
    let mut config = config_from_reply(&reply.payload);
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

fn ioctl_rx_rings(_ifname: &str) -> Result<u32, SourceError> {
    Err(SourceError::Unsupported {
        what: "ETHTOOL_GRXRINGS".to_string(),
        why: "not yet".to_string(),
    })
}

/// RSS configuration over SIOCETHTOOL ETHTOOL_GRSSH + ETHTOOL_GRXRINGS.
pub fn read_ioctl(ifname: &str) -> Result<RssConfig, SourceError> {
    Err(SourceError::Unsupported {
        what: format!("{ifname}: ETHTOOL_GRSSH"),
        why: "not yet".to_string(),
    })
}
