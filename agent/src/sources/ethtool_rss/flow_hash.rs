//! Which header fields a device feeds its RSS hash, per flow type: ETHTOOL_GRXFH over
//! SIOCETHTOOL, what `ethtool -n DEV rx-flow-hash udp4` prints. The Toeplitz entry
//! loads need it: igb and ixgbe hash UDP on addresses only unless told otherwise
//! (sources::toeplitz::driver_rule), and an operator may have told them.
//! The ioctl, not netlink: ETHTOOL_MSG_RSS_GET carries the fields only since 6.17
//! (ETHTOOL_A_RSS_FLOW_HASH), the ioctl on every kernel the agent supports.

use std::collections::BTreeMap;
use std::io;

use crate::error::SourceError;
use crate::sources::ethtool_ioctl::EthtoolIoctl;
use crate::sources::toeplitz::HashFields;

/// include/uapi/linux/ethtool.h.
const ETHTOOL_GRXFH: u32 = 0x0000_0029;
/// Flow types (ethtool.h `TCP_V4_FLOW` …), in the order reported.
const FLOW_TYPES: [(&str, u32); 4] = [
    ("tcp4", 0x01),
    ("udp4", 0x02),
    ("tcp6", 0x05),
    ("udp6", 0x06),
];
/// RXH_* bits and ethtool's letters for them (ethtool(8) `rx-flow-hash … m|v|t|s|d|f|n`).
const RXH_LETTERS: [(u64, char); 7] = [
    (1 << 1, 'm'), // RXH_L2DA
    (1 << 2, 'v'), // RXH_VLAN
    (1 << 3, 't'), // RXH_L3_PROTO
    (1 << 4, 's'), // RXH_IP_SRC
    (1 << 5, 'd'), // RXH_IP_DST
    (1 << 6, 'f'), // RXH_L4_B_0_1
    (1 << 7, 'n'), // RXH_L4_B_2_3
];
const RXH_DISCARD: u64 = 1 << 31;

/// RXH bits per flow type ("tcp4", "udp4", "tcp6", "udp6") the driver answered for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowHash {
    pub fields: BTreeMap<&'static str, u64>,
}

impl FlowHash {
    /// ethtool's letters per flow type: "sd", "sdfn"; "discard" for RXH_DISCARD.
    pub fn letters(&self) -> BTreeMap<&'static str, String> {
        self.fields
            .iter()
            .map(|(&flow, &bits)| (flow, letters(bits)))
            .collect()
    }

    /// The fields of `flow` ("udp4", …) when they are a set the Toeplitz input covers
    /// (addresses, or addresses and both port halves); None otherwise or unknown.
    pub fn hash_fields(&self, flow: &str) -> Option<HashFields> {
        const SD: u64 = (1 << 4) | (1 << 5);
        const FN: u64 = (1 << 6) | (1 << 7);
        match *self.fields.get(flow)? {
            SD => Some(HashFields::Addresses),
            b if b == SD | FN => Some(HashFields::AddressesAndPorts),
            _ => None,
        }
    }
}

pub fn letters(bits: u64) -> String {
    if bits & RXH_DISCARD != 0 {
        return "discard".to_string();
    }
    RXH_LETTERS
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// ETHTOOL_GRXFH for each flow type. A type the driver declines (EOPNOTSUPP, or EINVAL
/// for a type it does not know) is left out; Unsupported when it declines all four.
pub fn read_flow_hash(ifname: &str) -> Result<FlowHash, SourceError> {
    let dev = EthtoolIoctl::open(ifname)?;
    let mut out = FlowHash::default();
    let mut last_err = None;
    for (name, flow_type) in FLOW_TYPES {
        match grxfh(&dev, flow_type) {
            Ok(bits) => {
                out.fields.insert(name, bits);
            }
            Err(e) => last_err = Some(e),
        }
    }
    match last_err {
        Some(e) if out.fields.is_empty() => Err(dev.error(&format!("{ifname}: ETHTOOL_GRXFH"), e)),
        _ => Ok(out),
    }
}

/// One ETHTOOL_GRXFH. net/ethtool/ioctl.c ethtool_get_rxnfc copies only cmd, flow_type
/// and data for this command ("struct ethtool_rxnfc was originally defined for
/// ETHTOOL_{G,S}RXFH with only the cmd, flow_type and data members"), so 16 bytes do.
fn grxfh(dev: &EthtoolIoctl, flow_type: u32) -> io::Result<u64> {
    let mut buf = [0u64; 2];
    buf[0] = request_word(flow_type);
    // SAFETY: a 16-byte, u64-aligned buffer: cmd, flow_type, data, all the kernel
    // reads or writes for ETHTOOL_GRXFH.
    unsafe { dev.call(buf.as_mut_ptr().cast())? };
    Ok(buf[1])
}

/// cmd then flow_type, two u32 in memory order.
fn request_word(flow_type: u32) -> u64 {
    let mut word = [0u8; 8];
    word[..4].copy_from_slice(&ETHTOOL_GRXFH.to_ne_bytes());
    word[4..].copy_from_slice(&flow_type.to_ne_bytes());
    u64::from_ne_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_follow_ethtool() {
        assert_eq!(letters(0x30), "sd");
        assert_eq!(letters(0xf0), "sdfn");
        assert_eq!(letters(0xf8 | 0x2 | 0x4), "mvtsdfn");
        assert_eq!(letters(RXH_DISCARD | 0x30), "discard");
        assert_eq!(letters(0), "");
    }

    #[test]
    fn only_address_and_port_sets_map_to_toeplitz_inputs() {
        let fh = FlowHash {
            fields: BTreeMap::from([
                ("udp4", 0x30),
                ("tcp4", 0xf0),
                ("udp6", 0x70),
                ("tcp6", 0x38),
            ]),
        };
        assert_eq!(fh.hash_fields("udp4"), Some(HashFields::Addresses));
        assert_eq!(fh.hash_fields("tcp4"), Some(HashFields::AddressesAndPorts));
        assert_eq!(
            fh.hash_fields("udp6"),
            None,
            "one port half is not a Toeplitz input we build"
        );
        assert_eq!(fh.hash_fields("tcp6"), None, "L3 protocol in the hash");
        assert_eq!(FlowHash::default().hash_fields("udp4"), None);
    }

    #[test]
    fn the_request_names_the_command_then_the_flow_type() {
        let word = request_word(0x02).to_ne_bytes();
        assert_eq!(
            u32::from_ne_bytes(word[..4].try_into().unwrap()),
            ETHTOOL_GRXFH
        );
        assert_eq!(u32::from_ne_bytes(word[4..].try_into().unwrap()), 0x02);
    }

    /// The live kernel answers for a device that has RSS, or declines cleanly.
    #[test]
    fn live_devices_answer_or_decline() {
        let Ok(entries) = std::fs::read_dir("/sys/class/net") else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            match read_flow_hash(&name) {
                Ok(fh) => assert!(!fh.fields.is_empty(), "{name}"),
                Err(SourceError::Unsupported { .. } | SourceError::NotFound { .. }) => {}
                Err(SourceError::Kernel { msg, .. }) if msg.contains("Operation not permitted") => {
                }
                Err(e) => panic!("{name}: {e}"),
            }
        }
    }
}
