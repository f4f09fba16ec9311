//! The /proc/net/{tcp,tcp6,udp,udp6} parser: the fallback when sock_diag is not there,
//! and the only way in for captured roots.

use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{ListenSocket, Protocol};
use crate::error::{ParseError, SourceError};
use crate::sources::{read_parsed, HostRoot};

const TCP_STATE_LISTEN: u8 = 0x0A;
const TCP_STATE_CLOSE: u8 = 0x07;

/// Pure: the listeners in one /proc/net/{tcp,tcp6,udp,udp6} file. Rows, as printed by
/// net/ipv4/tcp_ipv4.c `get_tcp4_sock`, net/ipv6/tcp_ipv6.c `get_tcp6_sock`,
/// net/ipv4/udp.c `udp4_format_sock` and net/ipv6/datagram.c
/// `__ip6_dgram_sock_seq_show`:
///
/// ```text
///   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer [drops]
///    0: 0100007F:18EB 00000000:0000 0A 00000000:00000003 00:00000000 00000000   384        0 22376 1 ...
/// ```
///
/// The address is the in-memory `__be32` (four per IPv6 address) printed with `%08X`,
/// so on the little-endian hosts these captures come from 127.0.0.1 reads `0100007F`;
/// the port is `%04X` in host order. For a TCP LISTEN row rx_queue is the accept-queue
/// length (sk_ack_backlog); the backlog limit is not shown. For UDP rx_queue is
/// udp_rqueue_get() and the last column is sk_drops. The header line (first field
/// "sl") and blank lines are skipped. Kept: TCP rows in state 0A (LISTEN); UDP rows in
/// state 07 (unconnected) with a non-zero port.
pub fn parse_proc_net(
    text: &str,
    protocol: Protocol,
    netns: u64,
) -> Result<Vec<ListenSocket>, ParseError> {
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.first() {
            None => continue,
            Some(&"sl") => continue,
            Some(_) => {}
        }
        let err = |msg: String| ParseError::new(line_no, msg);
        if fields.len() < 10 {
            return Err(err(format!(
                "{} fields, need at least 10 (sl .. inode)",
                fields.len()
            )));
        }
        if !fields[0].ends_with(':') {
            return Err(err(format!("slot {:?} does not end in ':'", fields[0])));
        }
        let state = u8::from_str_radix(fields[3], 16)
            .map_err(|e| err(format!("st {:?}: {e}", fields[3])))?;
        let local = parse_hex_endpoint(fields[1]).map_err(err)?;
        let keep = match protocol {
            Protocol::Tcp => state == TCP_STATE_LISTEN,
            Protocol::Udp => state == TCP_STATE_CLOSE && local.port() != 0,
        };
        // Validate the rest of every row, kept or not, so a malformed file is noticed.
        let (_, rx_queue) = fields[4]
            .split_once(':')
            .ok_or_else(|| err(format!("tx_queue:rx_queue {:?}", fields[4])))?;
        let rx_queue = u64::from_str_radix(rx_queue, 16)
            .map_err(|e| err(format!("rx_queue {rx_queue:?}: {e}")))?;
        let uid: u32 = fields[7]
            .parse()
            .map_err(|e| err(format!("uid {:?}: {e}", fields[7])))?;
        let inode: u64 = fields[9]
            .parse()
            .map_err(|e| err(format!("inode {:?}: {e}", fields[9])))?;
        let drops = match (protocol, fields.get(12)) {
            (Protocol::Udp, Some(d)) => Some(
                d.parse::<u64>()
                    .map_err(|e| err(format!("drops {d:?}: {e}")))?,
            ),
            _ => None,
        };
        if keep {
            out.push(ListenSocket {
                netns,
                protocol,
                local,
                inode,
                uid,
                cookie: 0,
                queue_depth: rx_queue,
                backlog_limit: None,
                drops,
                rcvbuf: None,
                rmem_alloc: None,
            });
        }
    }
    Ok(out)
}

/// "0100007F:0277" or 32 hex digits ":PORT" -> socket address (see [`parse_proc_net`]).
fn parse_hex_endpoint(field: &str) -> Result<SocketAddr, String> {
    let (addr, port) = field
        .split_once(':')
        .ok_or_else(|| format!("address {field:?} has no ':'"))?;
    if port.len() != 4 {
        return Err(format!("port {port:?} is not 4 hex digits"));
    }
    let port = u16::from_str_radix(port, 16).map_err(|e| format!("port {port:?}: {e}"))?;
    let word = |i: usize| -> Result<[u8; 4], String> {
        let hex = addr
            .get(i * 8..i * 8 + 8)
            .ok_or_else(|| format!("address {addr:?}"))?;
        let v = u32::from_str_radix(hex, 16).map_err(|e| format!("address {addr:?}: {e}"))?;
        Ok(v.to_le_bytes())
    };
    match addr.len() {
        8 => Ok(SocketAddr::V4(SocketAddrV4::new(word(0)?.into(), port))),
        32 => {
            let mut octets = [0u8; 16];
            for i in 0..4 {
                octets[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Ok(SocketAddr::V6(SocketAddrV6::new(octets.into(), port, 0, 0)))
        }
        n => Err(format!("address {addr:?} has {n} hex digits, want 8 or 32")),
    }
}

/// The listeners in one `net` directory (`PROC/net` or `PROC/PID/net`, which shows the
/// namespace of PID), labelled `netns`. tcp and udp must exist; tcp6 and udp6 are absent
/// when IPv6 is disabled.
pub fn read_proc_net_dir(net_dir: &Path, netns: u64) -> Result<Vec<ListenSocket>, SourceError> {
    let mut out = Vec::new();
    for (file, protocol, required) in [
        ("tcp", Protocol::Tcp, true),
        ("tcp6", Protocol::Tcp, false),
        ("udp", Protocol::Udp, true),
        ("udp6", Protocol::Udp, false),
    ] {
        let path = net_dir.join(file);
        match read_parsed(&path, |text| parse_proc_net(text, protocol, netns)) {
            Ok(found) => out.extend(found),
            Err(e) if !required && e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The /proc/net fallback over a host root: `PROC/net/*`, which shows the namespace of
/// the reading process (its main thread). The namespace label is the inode of
/// `PROC/self/ns/net`, or 0 for a captured root that has none.
pub fn read_proc_net(root: &HostRoot) -> Result<Vec<ListenSocket>, SourceError> {
    let netns = std::fs::metadata(root.proc_path("self/ns/net"))
        .map(|m| m.ino())
        .unwrap_or(0);
    read_proc_net_dir(&root.proc_path("net"), netns)
}
