//! Crafted UDP datagrams for the raw sender (pure).
//!
//! A raw IPPROTO_RAW socket sends the IP header as given (IP_HDRINCL is
//! implied; IPv6 since Linux 4.5, commit 715f504b1189 "ipv6: add
//! IPV6_HDRINCL option for raw sockets"), which is how a sample's source
//! address and port reach the replica unchanged. The payload names the
//! sample so the receiving socket can be matched back to it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Payload: magic, replay tag, unit index (all big endian).
pub(crate) const PAYLOAD_LEN: usize = 12;
const MAGIC: u32 = 0x534b_5348; // "SKSH"
const IPPROTO_UDP: u8 = 17;
const UDP_HDR_LEN: usize = 8;
pub(crate) const IPV4_HDR_LEN: usize = 20;
pub(crate) const IPV6_HDR_LEN: usize = 40;
/// Longest datagram this module builds.
pub(crate) const MAX_DATAGRAM: usize = IPV6_HDR_LEN + UDP_HDR_LEN + PAYLOAD_LEN;

pub(crate) fn payload(tag: u32, index: u32) -> [u8; PAYLOAD_LEN] {
    let mut p = [0u8; PAYLOAD_LEN];
    p[..4].copy_from_slice(&MAGIC.to_be_bytes());
    p[4..8].copy_from_slice(&tag.to_be_bytes());
    p[8..].copy_from_slice(&index.to_be_bytes());
    p
}

/// The unit index of a received payload carrying `tag`, if it is ours.
pub(crate) fn parse_payload(data: &[u8], tag: u32) -> Option<u32> {
    if data.len() != PAYLOAD_LEN {
        return None;
    }
    let word = |i: usize| u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
    (word(0) == MAGIC && word(4) == tag).then(|| word(8))
}

/// Writes IP header + UDP header + payload into `out`; returns the length.
/// `saddr` and `daddr` must be of the same family.
pub(crate) fn udp_datagram(
    out: &mut [u8; MAX_DATAGRAM],
    saddr: IpAddr,
    sport: u16,
    daddr: IpAddr,
    dport: u16,
    payload: &[u8; PAYLOAD_LEN],
) -> usize {
    let udp_len = (UDP_HDR_LEN + PAYLOAD_LEN) as u16;
    let (ip_len, pseudo) = match (saddr, daddr) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (
            ipv4_header(&mut out[..IPV4_HDR_LEN], s, d, udp_len),
            pseudo_v4(s, d, udp_len),
        ),
        (IpAddr::V6(s), IpAddr::V6(d)) => (
            ipv6_header(&mut out[..IPV6_HDR_LEN], s, d, udp_len),
            pseudo_v6(s, d, udp_len),
        ),
        _ => unreachable!("trace parsing refuses mixed address families"),
    };
    let udp = &mut out[ip_len..ip_len + UDP_HDR_LEN + PAYLOAD_LEN];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&dport.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    udp[8..].copy_from_slice(payload);
    let mut csum = finish(sum(udp, pseudo));
    // RFC 768: a computed 0 is sent as all ones (0 means "no checksum").
    if csum == 0 {
        csum = 0xffff;
    }
    udp[6..8].copy_from_slice(&csum.to_be_bytes());
    ip_len + udp.len()
}

fn ipv4_header(h: &mut [u8], saddr: Ipv4Addr, daddr: Ipv4Addr, udp_len: u16) -> usize {
    h[0] = 0x45; // version 4, IHL 5
    h[1] = 0;
    h[2..4].copy_from_slice(&((IPV4_HDR_LEN as u16) + udp_len).to_be_bytes());
    h[4..6].copy_from_slice(&[0, 0]); // id: filled in by the kernel when 0
    h[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
    h[8] = 64;
    h[9] = IPPROTO_UDP;
    h[10..12].copy_from_slice(&[0, 0]);
    h[12..16].copy_from_slice(&saddr.octets());
    h[16..20].copy_from_slice(&daddr.octets());
    // raw(7): the kernel always fills in the IPv4 header checksum; computing
    // it anyway keeps the bytes valid on their own.
    let csum = finish(sum(&h[..IPV4_HDR_LEN], 0));
    h[10..12].copy_from_slice(&csum.to_be_bytes());
    IPV4_HDR_LEN
}

fn ipv6_header(h: &mut [u8], saddr: Ipv6Addr, daddr: Ipv6Addr, udp_len: u16) -> usize {
    h[0..4].copy_from_slice(&0x6000_0000u32.to_be_bytes());
    h[4..6].copy_from_slice(&udp_len.to_be_bytes());
    h[6] = IPPROTO_UDP;
    h[7] = 64;
    h[8..24].copy_from_slice(&saddr.octets());
    h[24..40].copy_from_slice(&daddr.octets());
    IPV6_HDR_LEN
}

fn pseudo_v4(s: Ipv4Addr, d: Ipv4Addr, udp_len: u16) -> u32 {
    let mut acc = sum(&s.octets(), 0);
    acc = sum(&d.octets(), acc);
    acc + u32::from(IPPROTO_UDP) + u32::from(udp_len)
}

fn pseudo_v6(s: Ipv6Addr, d: Ipv6Addr, udp_len: u16) -> u32 {
    let mut acc = sum(&s.octets(), 0);
    acc = sum(&d.octets(), acc);
    acc + u32::from(IPPROTO_UDP) + u32::from(udp_len)
}

/// One's-complement sum of 16-bit big-endian words (RFC 1071), unfolded.
fn sum(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for word in &mut chunks {
        acc += u32::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn finish(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A correct checksum makes the one's-complement sum over the covered
    /// bytes (with pseudo header) 0xffff.
    fn verifies(bytes: &[u8], pseudo: u32) -> bool {
        finish(sum(bytes, pseudo)) == 0
    }

    #[test]
    fn ipv4_datagram_layout_and_checksums() {
        let mut buf = [0u8; MAX_DATAGRAM];
        let s = Ipv4Addr::new(10, 0, 0, 1);
        let d = Ipv4Addr::new(10, 0, 0, 9);
        let len = udp_datagram(&mut buf, s.into(), 40000, d.into(), 53, &payload(7, 42));
        assert_eq!(len, 40);
        let pkt = &buf[..len];
        assert_eq!(&pkt[..4], &[0x45, 0, 0, 40]);
        assert_eq!(pkt[9], 17);
        assert!(verifies(&pkt[..20], 0));
        assert_eq!(&pkt[20..24], &[0x9c, 0x40, 0, 53]);
        assert!(verifies(&pkt[20..], pseudo_v4(s, d, 20)));
        assert_eq!(parse_payload(&pkt[28..], 7), Some(42));
        assert_eq!(parse_payload(&pkt[28..], 8), None);
    }

    #[test]
    fn ipv6_datagram_layout_and_checksum() {
        let mut buf = [0u8; MAX_DATAGRAM];
        let s: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d: Ipv6Addr = "2001:db8::9".parse().unwrap();
        let len = udp_datagram(&mut buf, s.into(), 1, d.into(), 443, &payload(1, u32::MAX));
        assert_eq!(len, 60);
        assert_eq!(buf[0] >> 4, 6);
        assert_eq!(&buf[4..7], &[0, 20, 17]);
        assert!(verifies(&buf[40..60], pseudo_v6(s, d, 20)));
        assert_eq!(parse_payload(&buf[48..60], 1), Some(u32::MAX));
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example words.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(sum(&data, 0)), !0xddf2);
    }
}
