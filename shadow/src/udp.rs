//! UDP replay: crafted datagrams from one raw socket per address family,
//! sent with sendmmsg(2) in batches, read back with recvmmsg(2) from every
//! replica socket. The payload carries the unit index, so the socket that
//! received a datagram is the policy's choice for that flow.
//!
//! A datagram that no replica socket received was either dropped by the
//! policy (SK_DROP: the lookup finds no socket and the namespace's UDP
//! NoPorts counter grows, net/ipv4/udp.c __udp4_lib_rcv) or is still in
//! flight; the namespace's /proc/net/snmp{,6} counters tell which, so a
//! dropping policy costs no waiting.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::error::ShadowError;
use crate::packet::{self, MAX_DATAGRAM};
use crate::plan::{batches, Landing, ReplayOptions, Unit};
use crate::sys;

/// recvmmsg(2) vector length and buffer size per message (a payload is 12
/// bytes; anything longer is not ours).
const RECV_VLEN: usize = 64;
const RECV_BUF: usize = 64;
/// Poll step while waiting for late datagrams.
const POLL_STEP_MS: u16 = 5;

/// The raw sockets that send the crafted datagrams.
pub(crate) struct UdpSender {
    raw4: Option<OwnedFd>,
    raw6: Option<OwnedFd>,
}

impl UdpSender {
    pub fn new(ipv4: bool, ipv6: bool) -> Result<Self, ShadowError> {
        let open = |domain: Domain, name: &str| -> Result<OwnedFd, ShadowError> {
            // IPPROTO_RAW: send-only, IP_HDRINCL implied (raw(7)).
            let socket = Socket::new(domain, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW)))
                .map_err(|e| ShadowError::socket(format!("{name} raw sender socket"), e))?;
            sys::set_buffer_force(&socket, libc::SO_SNDBUFFORCE, 8 << 20)
                .map_err(|e| ShadowError::socket(format!("{name} raw sender SO_SNDBUFFORCE"), e))?;
            Ok(socket.into())
        };
        Ok(Self {
            raw4: if ipv4 {
                Some(open(Domain::IPV4, "IPv4")?)
            } else {
                None
            },
            raw6: if ipv6 {
                Some(open(Domain::IPV6, "IPv6")?)
            } else {
                None
            },
        })
    }
}

/// Sends every unit once through the replica and records where it landed.
pub(crate) fn replay(
    sender: &UdpSender,
    replica: &[OwnedFd],
    units: &[Unit],
    tag: u32,
    opts: &ReplayOptions,
) -> Result<Landing, ShadowError> {
    let mut landing = Landing::new(units.len());
    let baseline = read_counters()?;
    let mut receiver = Receiver::new();
    let mut sent = 0usize;
    let mut received = 0usize;
    let mut lost = 0usize;
    let mut pinned = None;
    let mut out = SendBuffers::new(opts.batch_size);

    for range in batches(units, opts.batch_size) {
        let cpu = units[range.start].cpu;
        if pinned != Some(cpu) {
            sys::pin_thread(cpu)
                .map_err(|e| ShadowError::socket(format!("pinning sender to CPU {cpu}"), e))?;
            pinned = Some(cpu);
        }
        let raw = if units[range.start].daddr.is_ipv4() {
            &sender.raw4
        } else {
            &sender.raw6
        };
        let raw = raw
            .as_ref()
            .expect("a sender exists for every family in the plan");
        out.send(raw, &units[range.clone()], range.start, tag)?;
        sent += range.len();
        received += receiver.drain(replica, tag, &mut landing)?;

        // Late datagrams: settle with the namespace's counters before moving
        // on, waiting only while something is unaccounted for.
        let mut last_progress = Instant::now();
        loop {
            if received + lost >= sent {
                break;
            }
            let now = read_counters()?;
            let errors = now.in_errors.saturating_sub(baseline.in_errors);
            if errors > 0 {
                return Err(ShadowError::Replay(format!(
                    "{errors} datagrams hit receive errors in the replica (UDP InErrors); the shares would be wrong"
                )));
            }
            let dropped = now.no_ports.saturating_sub(baseline.no_ports) as usize;
            if received + dropped + lost >= sent {
                break;
            }
            if last_progress.elapsed() > opts.drain_timeout {
                lost = sent - received - dropped;
                break;
            }
            sys::poll_readable(replica, POLL_STEP_MS)
                .map_err(|e| ShadowError::socket("poll", e))?;
            let got = receiver.drain(replica, tag, &mut landing)?;
            if got > 0 {
                received += got;
                last_progress = Instant::now();
            }
        }
    }
    landing.lost = lost;
    Ok(landing)
}

/// Storage of one sendmmsg(2) batch. sendmmsg/recvmmsg stay on libc:
/// socket2 has no batched calls, and nix's MultiHeaders would re-slice
/// these reused buffers on every batch.
struct SendBuffers {
    datagrams: Vec<[u8; MAX_DATAGRAM]>,
    lens: Vec<usize>,
    addrs: Vec<SockAddr>,
}

impl SendBuffers {
    fn new(batch: usize) -> Self {
        Self {
            datagrams: vec![[0u8; MAX_DATAGRAM]; batch],
            lens: vec![0; batch],
            addrs: vec![SockAddr::from(SocketAddr::from(([0, 0, 0, 0], 0))); batch],
        }
    }

    /// Crafts and sends `units` (indices from `first`) on `raw`.
    fn send(
        &mut self,
        raw: &OwnedFd,
        units: &[Unit],
        first: usize,
        tag: u32,
    ) -> Result<(), ShadowError> {
        for (slot, unit) in units.iter().enumerate() {
            let payload = packet::payload(tag, (first + slot) as u32);
            self.lens[slot] = packet::udp_datagram(
                &mut self.datagrams[slot],
                unit.saddr.ip(),
                unit.saddr.port(),
                unit.daddr.ip(),
                unit.daddr.port(),
                &payload,
            );
            // Raw sockets take the destination without a port.
            let mut dest = unit.daddr;
            dest.set_port(0);
            self.addrs[slot] = SockAddr::from(dest);
        }
        let mut iovecs: Vec<libc::iovec> = (0..units.len())
            .map(|slot| libc::iovec {
                iov_base: self.datagrams[slot].as_mut_ptr().cast(),
                iov_len: self.lens[slot],
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = (0..units.len())
            .map(|slot| {
                // SAFETY: all-zero is a valid mmsghdr.
                let mut msg: libc::mmsghdr = unsafe { std::mem::zeroed() };
                // sendmmsg(2) only reads msg_name.
                msg.msg_hdr.msg_name = self.addrs[slot].as_ptr().cast_mut().cast();
                msg.msg_hdr.msg_namelen = self.addrs[slot].len();
                msg.msg_hdr.msg_iov = &mut iovecs[slot];
                msg.msg_hdr.msg_iovlen = 1;
                msg
            })
            .collect();
        let mut done = 0usize;
        // Each round sends at least one datagram or fails: bounded by the batch.
        while done < msgs.len() {
            // SAFETY: msgs[done..] are valid mmsghdrs whose pointers (iovecs,
            // datagrams, addrs) outlive the call.
            let ret = unsafe {
                libc::sendmmsg(
                    raw.as_raw_fd(),
                    msgs[done..].as_mut_ptr(),
                    (msgs.len() - done) as libc::c_uint,
                    0,
                )
            };
            if ret < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(ShadowError::socket("sendmmsg on the raw sender", err));
            }
            if ret == 0 {
                return Err(ShadowError::Replay("sendmmsg sent nothing".to_owned()));
            }
            done += ret as usize;
        }
        Ok(())
    }
}

/// recvmmsg(2) buffers reused across drains.
struct Receiver {
    bufs: Vec<[u8; RECV_BUF]>,
}

impl Receiver {
    fn new() -> Self {
        Self {
            bufs: vec![[0u8; RECV_BUF]; RECV_VLEN],
        }
    }

    /// Reads every queued datagram of every replica socket; returns how many
    /// units got their landing recorded.
    fn drain(
        &mut self,
        replica: &[OwnedFd],
        tag: u32,
        landing: &mut Landing,
    ) -> Result<usize, ShadowError> {
        let mut recorded = 0;
        for (socket_index, fd) in replica.iter().enumerate() {
            loop {
                let mut iovecs: Vec<libc::iovec> = self
                    .bufs
                    .iter_mut()
                    .map(|buf| libc::iovec {
                        iov_base: buf.as_mut_ptr().cast(),
                        iov_len: RECV_BUF,
                    })
                    .collect();
                let mut msgs: Vec<libc::mmsghdr> = iovecs
                    .iter_mut()
                    .map(|iov| {
                        // SAFETY: all-zero is a valid mmsghdr.
                        let mut msg: libc::mmsghdr = unsafe { std::mem::zeroed() };
                        msg.msg_hdr.msg_iov = iov;
                        msg.msg_hdr.msg_iovlen = 1;
                        msg
                    })
                    .collect();
                // SAFETY: msgs are valid mmsghdrs pointing into self.bufs.
                let ret = unsafe {
                    libc::recvmmsg(
                        fd.as_raw_fd(),
                        msgs.as_mut_ptr(),
                        RECV_VLEN as libc::c_uint,
                        libc::MSG_DONTWAIT,
                        std::ptr::null_mut(),
                    )
                };
                if ret < 0 {
                    let err = io::Error::last_os_error();
                    match err.kind() {
                        io::ErrorKind::WouldBlock => break,
                        io::ErrorKind::Interrupted => continue,
                        _ => {
                            return Err(ShadowError::socket(
                                format!("recvmmsg on socket {socket_index}"),
                                err,
                            ))
                        }
                    }
                }
                let got = ret as usize;
                for (msg, buf) in msgs.iter().zip(&self.bufs).take(got) {
                    let len = (msg.msg_len as usize).min(RECV_BUF);
                    if let Some(unit) = packet::parse_payload(&buf[..len], tag) {
                        if landing.record(unit as usize, socket_index as u32) {
                            recorded += 1;
                        }
                    }
                }
                if got < RECV_VLEN {
                    break;
                }
            }
        }
        Ok(recorded)
    }
}

/// The private namespace's UDP drop counters (IPv4 + IPv6).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct UdpCounters {
    /// Datagrams no socket took (incl. SK_DROP by a reuseport program).
    no_ports: u64,
    /// Receive errors (buffer overflow, checksum).
    in_errors: u64,
}

/// /proc/thread-self/net is the calling thread's namespace: the replay's.
fn read_counters() -> Result<UdpCounters, ShadowError> {
    let read = |path: &str| std::fs::read_to_string(path);
    let v4 = read("/proc/thread-self/net/snmp")
        .map_err(|e| ShadowError::socket("reading /proc/thread-self/net/snmp", e))?;
    let mut counters = parse_snmp(&v4)
        .ok_or_else(|| ShadowError::Replay("no Udp: lines in /proc/net/snmp".to_owned()))?;
    // snmp6 is absent when IPv6 is disabled.
    if let Ok(v6) = read("/proc/thread-self/net/snmp6") {
        let c6 = parse_snmp6(&v6);
        counters.no_ports += c6.no_ports;
        counters.in_errors += c6.in_errors;
    }
    Ok(counters)
}

/// The `Udp:` header/value line pair of /proc/net/snmp
/// (net/ipv4/proc.c, snmp_seq_show_tcp_udp).
fn parse_snmp(text: &str) -> Option<UdpCounters> {
    let mut lines = text.lines().filter(|l| l.starts_with("Udp: "));
    let header: Vec<&str> = lines.next()?.split_whitespace().collect();
    let values: Vec<&str> = lines.next()?.split_whitespace().collect();
    let field = |name: &str| -> Option<u64> {
        let pos = header.iter().position(|h| *h == name)?;
        values.get(pos)?.parse().ok()
    };
    Some(UdpCounters {
        no_ports: field("NoPorts")?,
        in_errors: field("InErrors")?,
    })
}

/// `Udp6NoPorts` / `Udp6InErrors` of /proc/net/snmp6 (net/ipv6/proc.c).
fn parse_snmp6(text: &str) -> UdpCounters {
    let mut counters = UdpCounters::default();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(name), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        let value = value.parse().unwrap_or(0);
        match name {
            "Udp6NoPorts" => counters.no_ports = value,
            "Udp6InErrors" => counters.in_errors = value,
            _ => {}
        }
    }
    counters
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_snmp_udp_lines() {
        // Captured from /proc/net/snmp on Linux 6.18 (Ip/Icmp lines elided).
        let text = "Tcp: RtoAlgorithm RtoMin\nTcp: 1 200\n\
            Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n\
            Udp: 1207 17 3 1210 2 0 1 0 0\n\
            UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n\
            UdpLite: 0 0 0 0 0 0 0 0 0\n";
        assert_eq!(
            parse_snmp(text),
            Some(UdpCounters {
                no_ports: 17,
                in_errors: 3
            })
        );
        assert_eq!(parse_snmp("Ip: 1 2\n"), None);
    }

    #[test]
    fn parses_snmp6_udp_lines() {
        let text = "Udp6InDatagrams                 \t5\nUdp6NoPorts                     \t9\nUdp6InErrors                    \t1\nUdpLite6NoPorts 4\n";
        assert_eq!(
            parse_snmp6(text),
            UdpCounters {
                no_ports: 9,
                in_errors: 1
            }
        );
    }
}
