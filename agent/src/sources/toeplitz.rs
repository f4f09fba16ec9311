//! The Toeplitz RSS hash in user space, and the drivers' rule that reduces a hash to an
//! indirection-table entry. Pure: no I/O.
//!
//! The hash is Microsoft's RSS definition ("RSS hashing functions" and "Verifying the RSS
//! hash calculation", learn.microsoft.com/windows-hardware/drivers/network): for each set
//! bit of the input, most significant bit of the first byte first, XOR in the 32 bits of
//! the key that start at that bit's position. The input is the source address, the
//! destination address, then (when the device hashes L4 for the protocol) the source
//! port and the destination port, all in network byte order. The same suite is the
//! 82599 datasheet's §7.1.2.8.3 and DPDK's app/test/test_thash.c; the tests below use it.

use std::net::IpAddr;

/// Which fields of a flow a device hashes for one protocol (ethtool's rx-flow-hash:
/// `s`/`d` addresses, `f`/`n` the L4 port bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashFields {
    /// Source and destination address only (`sd`).
    Addresses,
    /// Addresses and ports (`sdfn`).
    AddressesAndPorts,
}

impl HashFields {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Addresses => "sd",
            Self::AddressesAndPorts => "sdfn",
        }
    }
}

/// The Toeplitz hash of `input` under `key`. A key shorter than input + 4 bytes is read
/// as zero-extended, which is what hardware with a 40-byte key does for IPv6 4-tuples
/// (36 bytes of input need 40 bytes of key exactly).
pub fn hash(key: &[u8], input: &[u8]) -> u32 {
    let key_byte = |i: usize| key.get(i).copied().unwrap_or(0);
    // The 32-bit window of the key starting at the current input bit.
    let mut window = u32::from_be_bytes([key_byte(0), key_byte(1), key_byte(2), key_byte(3)]);
    let mut result = 0u32;
    for (i, &byte) in input.iter().enumerate() {
        let next = key_byte(i + 4);
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                result ^= window;
            }
            window = (window << 1) | u32::from((next >> (7 - bit)) & 1);
        }
    }
    result
}

/// The hash input for a flow: src addr, dst addr, and with `fields` including ports,
/// src port, dst port (network byte order). None when the addresses' families differ.
pub fn flow_input(
    saddr: IpAddr,
    daddr: IpAddr,
    sport: u16,
    dport: u16,
    fields: HashFields,
) -> Option<Vec<u8>> {
    let mut input = Vec::with_capacity(36);
    match (saddr, daddr) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            input.extend(s.octets());
            input.extend(d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            input.extend(s.octets());
            input.extend(d.octets());
        }
        _ => return None,
    }
    if fields == HashFields::AddressesAndPorts {
        input.extend(sport.to_be_bytes());
        input.extend(dport.to_be_bytes());
    }
    Some(input)
}

/// How a driver turns an RSS hash into an indirection-table entry, and what it hashes by
/// default. Only drivers whose rule is cited here are supported; the rest get `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverRule {
    pub driver: &'static str,
    /// Default fields for UDP (TCP is always addresses and ports on these drivers).
    pub udp_fields: HashFields,
}

/// The reduction rule of `driver`, or None when it is not one we can cite.
///
/// All four Intel families index the table with the low bits of the hash:
/// - igb (82575/82576/i350/i210): 128-entry RETA indexed by the 7 LSBs of the hash (82576
///   datasheet §7.1.1.7 "RSS", Fig. 7-9; drivers/net/ethernet/intel/igb/igb_main.c
///   `igb_write_rss_indir_tbl` writes IGB_RETA_SIZE = 128 entries). UDP ports are hashed
///   only with IGB_FLAG_RSS_FIELD_IPV4_UDP/IPV6_UDP, off by default (igb_setup_mrqc).
/// - ixgbe (82599/X540/X550): 128 entries (512 on X550) indexed by the low 7 (9) bits
///   (82599 datasheet §7.1.2.8; ixgbe_store_reta); UDP ports only with
///   IXGBE_FLAG2_RSS_FIELD_IPV4_UDP, off by default (ixgbe_setup_mrqc).
/// - i40e and ice: the LUT is indexed by the low bits of the hash (`hash & (lut_size-1)`,
///   i40e_datasheet §7.1.10; ice's `ice_set_rss_lut`), and their default hash-enable sets
///   include UDP ports (i40e_pf_get_default_rss_hena, ice_rss default flow configs).
pub fn driver_rule(driver: &str) -> Option<DriverRule> {
    let udp_fields = match driver {
        "igb" | "igc" | "ixgbe" => HashFields::Addresses,
        "i40e" | "ice" => HashFields::AddressesAndPorts,
        _ => return None,
    };
    let driver = match driver {
        "igb" => "igb",
        "igc" => "igc",
        "ixgbe" => "ixgbe",
        "i40e" => "i40e",
        _ => "ice",
    };
    Some(DriverRule { driver, udp_fields })
}

/// The table entry the low bits of `hash` select in a table of `size` entries; None
/// unless `size` is a power of two (the rule above holds only then).
pub fn entry_of(hash: u32, size: usize) -> Option<usize> {
    (size > 0 && size.is_power_of_two()).then(|| hash as usize & (size - 1))
}

/// The fields hashed per flow type ("tcp4", "udp4", "tcp6", "udp6"); None for a type
/// whose set the Toeplitz input here does not cover (e.g. with the L3 protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowFields {
    pub tcp4: Option<HashFields>,
    pub udp4: Option<HashFields>,
    pub tcp6: Option<HashFields>,
    pub udp6: Option<HashFields>,
}

impl FlowFields {
    /// The driver's defaults: TCP on addresses and ports, UDP as `rule` says.
    pub fn defaults(rule: DriverRule) -> Self {
        let tcp = Some(HashFields::AddressesAndPorts);
        let udp = Some(rule.udp_fields);
        Self {
            tcp4: tcp,
            udp4: udp,
            tcp6: tcp,
            udp6: udp,
        }
    }

    /// The slot of flow type `name` ("udp4", …); None for another name.
    pub fn slot(&mut self, name: &str) -> Option<&mut Option<HashFields>> {
        match name {
            "tcp4" => Some(&mut self.tcp4),
            "udp4" => Some(&mut self.udp4),
            "tcp6" => Some(&mut self.tcp6),
            "udp6" => Some(&mut self.udp6),
            _ => None,
        }
    }

    fn of(&self, protocol: u8, v6: bool) -> Option<HashFields> {
        match (protocol, v6) {
            (17, false) => self.udp4,
            (17, true) => self.udp6,
            (_, false) => self.tcp4,
            (_, true) => self.tcp6,
        }
    }
}

/// One sampled flow as the entry count needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampledFlow {
    pub saddr: IpAddr,
    pub daddr: IpAddr,
    pub sport: u16,
    pub dport: u16,
    /// IPPROTO_TCP (6) or IPPROTO_UDP (17).
    pub protocol: u8,
    pub packets: u64,
}

/// Packets per table entry: each flow's packets added to the entry its Toeplitz hash
/// selects under `key`, hashed over the `fields` of its flow type. None when the table
/// size has no low-bits rule (not a power of two), or a flow's type is hashed over
/// fields this input does not cover (its entry would be a guess).
pub fn entry_packets(
    flows: impl IntoIterator<Item = SampledFlow>,
    key: &[u8],
    table_size: usize,
    fields: &FlowFields,
) -> Option<Vec<u64>> {
    entry_of(0, table_size)?;
    let mut entries = vec![0u64; table_size];
    for f in flows {
        let fields = fields.of(f.protocol, f.saddr.is_ipv6())?;
        let Some(input) = flow_input(f.saddr, f.daddr, f.sport, f.dport, fields) else {
            continue;
        };
        if let Some(e) = entry_of(hash(key, &input), table_size) {
            entries[e] += f.packets;
        }
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verification key of the Microsoft RSS page (also the 82599 datasheet's and
    /// DPDK test_thash.c's `default_rss_key`).
    const KEY: [u8; 40] = [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f,
        0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
        0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ];

    /// (destination, source, hash of addresses only, hash with ports), as the Microsoft
    /// page lists them ("Verifying the RSS Hash Calculation", IPv4 and IPv6 tables).
    const V4: [(&str, &str, u32, u32); 5] = [
        (
            "161.142.100.80:1766",
            "66.9.149.187:2794",
            0x323e8fc2,
            0x51ccc178,
        ),
        (
            "65.69.140.83:4739",
            "199.92.111.2:14230",
            0xd718262a,
            0xc626b0ea,
        ),
        (
            "12.22.207.184:38024",
            "24.19.198.95:12898",
            0xd2d0a5de,
            0x5c2b394a,
        ),
        (
            "209.142.163.6:2217",
            "38.27.205.30:48228",
            0x82989176,
            0xafc7327f,
        ),
        (
            "202.188.127.2:1303",
            "153.39.163.191:44251",
            0x5d1809c5,
            0x10e828a2,
        ),
    ];
    const V6: [(&str, &str, u32, u32); 3] = [
        (
            "[3ffe:2501:200:3::1]:1766",
            "[3ffe:2501:200:1fff::7]:2794",
            0x2cc18cd5,
            0x40207d3d,
        ),
        (
            "[ff02::1]:4739",
            "[3ffe:501:8::260:97ff:fe40:efab]:14230",
            0x0f0c461c,
            0xdde51bbf,
        ),
        (
            "[fe80::200:f8ff:fe21:67cf]:38024",
            "[3ffe:1900:4545:3:200:f8ff:fe21:67cf]:44251",
            0x4b61e985,
            0x02d1feef,
        ),
    ];

    #[test]
    fn microsoft_verification_suite() {
        for (dst, src, l3, l4) in V4.iter().chain(V6.iter()) {
            let d: std::net::SocketAddr = dst.parse().unwrap();
            let s: std::net::SocketAddr = src.parse().unwrap();
            let only = flow_input(s.ip(), d.ip(), s.port(), d.port(), HashFields::Addresses);
            assert_eq!(hash(&KEY, &only.unwrap()), *l3, "{src} -> {dst} (sd)");
            let all = flow_input(
                s.ip(),
                d.ip(),
                s.port(),
                d.port(),
                HashFields::AddressesAndPorts,
            );
            assert_eq!(hash(&KEY, &all.unwrap()), *l4, "{src} -> {dst} (sdfn)");
        }
    }

    /// Real NIC hashes: the 6.1 VM guest (Debian 6.1 kernel, QEMU 10.0.2's emulated 82576,
    /// `-device igb`) of scripts/vm/checks/rss_shadow. The key is the guest's
    /// netdev_rss_key, which igb_setup_mrqc writes to RSSRK (read from /proc/kcore, since
    /// igb gives ethtool no key); the hashes are the skb hashes igb stored for UDP flows
    /// from these sources to 10.11.0.2 (rx probe flow records); UDP hashes addresses only.
    #[test]
    fn igb_guest_skb_hashes() {
        const KEY: &str =
            "65080cfcdb0832e2cc2f730ece8ecccc92cfb2bdd7406a6798ce563cfc06d56b29813f8926a33731";
        let key: Vec<u8> = (0..KEY.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&KEY[i..i + 2], 16).unwrap())
            .collect();
        let daddr: IpAddr = "10.11.0.2".parse().unwrap();
        for (saddr, skb_hash) in [
            ("10.14.158.115", 0x74b1575a),
            ("10.15.99.215", 0x8932989e),
            ("10.14.98.181", 0xcd394d15),
            ("10.12.198.65", 0xe52ad2ae),
            ("10.13.50.164", 0x3d3b20e4),
            ("10.15.132.152", 0x85253e6b),
            ("10.12.69.195", 0x62944b39),
            ("10.12.245.33", 0xfabe1074),
        ] {
            let saddr: IpAddr = saddr.parse().unwrap();
            let rule = driver_rule("igb").unwrap();
            let input = flow_input(saddr, daddr, 41000, 7000, rule.udp_fields).unwrap();
            assert_eq!(hash(&key, &input), skb_hash, "{saddr}");
        }
    }

    #[test]
    fn entries_take_the_low_bits() {
        assert_eq!(entry_of(0x51ccc178, 128), Some(0x78));
        assert_eq!(entry_of(0x51ccc178, 512), Some(0x178));
        assert_eq!(entry_of(7, 1), Some(0));
        assert_eq!(entry_of(7, 0), None);
        assert_eq!(entry_of(7, 96), None, "not a power of two: no cited rule");
        assert!(driver_rule("igb").is_some_and(|r| r.udp_fields == HashFields::Addresses));
        assert!(driver_rule("ice").is_some_and(|r| r.udp_fields == HashFields::AddressesAndPorts));
        assert_eq!(driver_rule("virtio_net"), None);
        assert_eq!(driver_rule("mlx5_core"), None);
    }

    #[test]
    fn flows_add_up_on_their_entries() {
        let rule = driver_rule("ixgbe").unwrap();
        let flow = |src: &str, dst: &str, protocol, packets| {
            let s: std::net::SocketAddr = src.parse().unwrap();
            let d: std::net::SocketAddr = dst.parse().unwrap();
            SampledFlow {
                saddr: s.ip(),
                daddr: d.ip(),
                sport: s.port(),
                dport: d.port(),
                protocol,
                packets,
            }
        };
        let flows = [
            // TCP hashes the 4-tuple: 0x51ccc178 → entry 0x78 of 128.
            flow("66.9.149.187:2794", "161.142.100.80:1766", 6, 10),
            // UDP on ixgbe hashes addresses only: 0x323e8fc2 → entry 0x42.
            flow("66.9.149.187:2794", "161.142.100.80:1766", 17, 3),
            flow("66.9.149.187:9", "161.142.100.80:1766", 17, 4),
        ];
        let fields = FlowFields::defaults(rule);
        let e = entry_packets(flows, &KEY, 128, &fields).unwrap();
        assert_eq!(e[0x78], 10);
        assert_eq!(e[0x42], 7, "UDP ports are not hashed by ixgbe's default");
        assert_eq!(e.iter().sum::<u64>(), 17);
        assert_eq!(entry_packets(flows, &KEY, 96, &fields), None);

        // `ethtool -N DEV rx-flow-hash udp4 sdfn`: UDP ports are hashed too, so the two
        // UDP flows land apart; the 4-tuple vector of TCP is the UDP one now (0x78).
        let mut sdfn = fields;
        *sdfn.slot("udp4").unwrap() = Some(HashFields::AddressesAndPorts);
        let e = entry_packets(flows, &KEY, 128, &sdfn).unwrap();
        assert_eq!(e[0x78], 13);
        assert_eq!(e[0x42], 0);
        // A set we cannot build the input of: no entry loads rather than wrong ones.
        let mut unknown = fields;
        *unknown.slot("udp4").unwrap() = None;
        assert_eq!(entry_packets(flows, &KEY, 128, &unknown), None);
    }

    #[test]
    fn mixed_families_have_no_input() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(flow_input(v4, v6, 1, 2, HashFields::Addresses), None);
        assert_eq!(hash(&KEY, &[]), 0);
        // A short key reads as zero-extended rather than panicking.
        assert_eq!(hash(&[0xff], &[0x80]), 0xff00_0000);
    }
}
