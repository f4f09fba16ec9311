use super::ioctl::{config_from_rxfh, ETHTOOL_GRSSH};
use super::netlink::{rss_get_message, ETHTOOL_MSG_RSS_GET};
use super::*;
use crate::sources::genl::{GenlError, GenlSocket};
use crate::sources::testns::{nic_drivers, privileged, Netns};
use ethtool::EthtoolHeader;
use netlink_packet_core::{Emitable, ParseableParametrized};
use netlink_packet_generic::{GenlFamily, GenlHeader};
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

fn text(indirection: Vec<u32>, key: Option<&str>, hfunc: Option<&str>, rings: u32) -> RssConfig {
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
        vec![0x10, 0x00, 0x01, 0x80, 0x09, 0x00, 0x02, 0x00, b'e', b't', b'h', b'0', 0, 0, 0, 0]
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
fn live_kernel_error_carries_extack_message() {
    if !privileged("live_kernel_error_carries_extack_message") {
        return;
    }
    let mut sock = GenlSocket::open().unwrap();
    let family = sock.resolve("ethtool").unwrap().unwrap();
    match sock.request(EthtoolRssMessage::new_get("nodev-xyz"), family.id, false) {
        Err(GenlError::Errno { errno, message }) => {
            assert_eq!(errno, libc::ENODEV);
            assert_eq!(message.as_deref(), Some("no device matches name"));
        }
        other => panic!("expected ENODEV, got {other:?}"),
    }
    // What read_netlink makes of it: NotFound, not a kernel failure.
    assert!(matches!(
        read_netlink("nodev-xyz"),
        Err(SourceError::NotFound { .. })
    ));
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
    Ok(parse_ethtool_x(&String::from_utf8_lossy(&out.stdout)).expect("parse ethtool -x output"))
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

/// Live on every NIC of this host: RSS_GET, GRSSH and `ethtool -x` agree (a
/// device without get_rxfh is Unsupported in all three), and the raw reply
/// carries INDIR/HKEY exactly when `ethtool -x` prints a table/key (a driver
/// may report table and key size 0, e.g. virtio_net without VIRTIO_NET_F_RSS).
#[test]
fn live_nics_netlink_ioctl_and_cli_agree() {
    let nics = nic_drivers();
    if !privileged("live_nics_netlink_ioctl_and_cli_agree")
        || !skewscope_test_support::Needs::new("live_nics_netlink_ioctl_and_cli_agree")
            .that(
                !nics.is_empty(),
                "needs a NIC with a driver in /sys/class/net",
            )
            .met()
    {
        return;
    }
    assert!(family_available().unwrap());
    for (dev, driver) in &nics {
        let dev = dev.as_str();
        let cli = cli_rss(Command::new("ethtool").args(["-x", dev]));
        let (netlink, ioctl) = (read_netlink(dev), read_ioctl(dev));
        let cli = match cli {
            Ok(cli) => cli,
            Err(stderr) => {
                assert!(
                    stderr.contains("not supported"),
                    "{dev} ({driver}): {stderr}"
                );
                for r in [&netlink, &ioctl] {
                    assert!(
                        matches!(r, Err(SourceError::Unsupported { .. })),
                        "{dev} ({driver}): {r:?}"
                    );
                }
                continue;
            }
        };
        let (netlink, ioctl) = (netlink.unwrap(), ioctl.unwrap());
        assert_eq!(netlink.source, RssSource::Netlink);
        assert_eq!(ioctl.source, RssSource::Ioctl);
        assert_eq!(facts(&netlink), facts(&cli), "{dev} ({driver})");
        assert_eq!(facts(&ioctl), facts(&cli), "{dev} ({driver})");
        assert_eq!(read(dev).unwrap(), netlink);

        let raw = rss_get_message(dev).ok().unwrap();
        let has = |f: fn(&EthtoolRssAttr) -> bool| raw.nlas.iter().any(f);
        assert_eq!(
            has(|a| matches!(a, EthtoolRssAttr::Indir(_))),
            !cli.indirection.is_empty(),
            "{dev} ({driver})"
        );
        assert_eq!(
            has(|a| matches!(a, EthtoolRssAttr::Hkey(_))),
            cli.key.is_some(),
            "{dev} ({driver})"
        );
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
            read_netlink("nosuchdev0"),
            read_ioctl("nosuchdev0"),
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
    // No such device: NotFound (ENODEV), not a kernel failure.
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
