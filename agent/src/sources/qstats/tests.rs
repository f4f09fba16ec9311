use super::message::*;
use super::*;
use crate::sources::ethtool_stats;
use crate::sources::genl::decode_datagram as decode_batch;
use crate::sources::testns::{VethPair, DEV_B};
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, ParseableParametrized, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_generic::{GenlHeader, GenlMessage};

fn nlmsg(seq: u32, flags: u16, payload: NetlinkPayload<GenlMessage<NetdevMessage>>) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.sequence_number = seq;
    header.flags = flags;
    let mut msg = NetlinkMessage::new(header, payload);
    msg.finalize();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

fn reply(attrs: Vec<NetdevAttr>) -> NetlinkPayload<GenlMessage<NetdevMessage>> {
    let mut genl = GenlMessage::from_payload(NetdevMessage {
        cmd: NETDEV_CMD_QSTATS_GET,
        attrs,
    });
    genl.set_resolved_family_id(0x1b);
    NetlinkPayload::InnerMessage(genl)
}

fn uint(kind: u16, value: u64) -> NetdevAttr {
    NetdevAttr::Uint { kind, value }
}

fn done(code: i32) -> Vec<u8> {
    // nlmsghdr (16) + int error code; NLMSG_DONE = 3.
    let mut b = Vec::new();
    b.extend_from_slice(&20u32.to_ne_bytes());
    b.extend_from_slice(&3u16.to_ne_bytes());
    b.extend_from_slice(&2u16.to_ne_bytes()); // NLM_F_MULTI
    b.extend_from_slice(&7u32.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(&code.to_ne_bytes());
    b
}

#[test]
fn request_bytes_match_the_uapi_layout() {
    let mut genl = GenlMessage::from_payload(qstats_request(Some(4)));
    genl.set_resolved_family_id(0x1b);
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = 9;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(genl));
    msg.finalize();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);
    let mut want = Vec::new();
    want.extend_from_slice(&36u32.to_ne_bytes()); // nlmsg_len
    want.extend_from_slice(&0x1bu16.to_ne_bytes()); // family id
    want.extend_from_slice(&0x301u16.to_ne_bytes()); // NLM_F_REQUEST | NLM_F_DUMP
    want.extend_from_slice(&9u32.to_ne_bytes());
    want.extend_from_slice(&0u32.to_ne_bytes());
    want.extend_from_slice(&[12, 1, 0, 0]); // cmd QSTATS_GET, version 1
    want.extend_from_slice(&8u16.to_ne_bytes()); // nla_len
    want.extend_from_slice(&4u16.to_ne_bytes()); // NETDEV_A_QSTATS_SCOPE
    want.extend_from_slice(&1u32.to_ne_bytes()); // NETDEV_QSTATS_SCOPE_QUEUE
    want.extend_from_slice(&8u16.to_ne_bytes());
    want.extend_from_slice(&1u16.to_ne_bytes()); // NETDEV_A_QSTATS_IFINDEX
    want.extend_from_slice(&4u32.to_ne_bytes());
    assert_eq!(buf, want);
}

#[test]
fn decodes_a_dump_datagram() {
    let mut datagram = nlmsg(
        7,
        2,
        reply(vec![
            uint(A_IFINDEX, 4),
            uint(A_QUEUE_TYPE, QUEUE_TYPE_RX),
            uint(A_QUEUE_ID, 3),
            uint(A_RX_PACKETS, 5_000_000_000), // > u32: sent as 8 bytes
            uint(A_RX_BYTES, 1234),
            uint(A_RX_HW_DROPS, 2),
            uint(A_RX_CSUM_UNNECESSARY_FOR_TEST, 9),
        ]),
    );
    datagram.extend(nlmsg(
        7,
        2,
        reply(vec![
            uint(A_IFINDEX, 4),
            uint(A_QUEUE_TYPE, QUEUE_TYPE_TX),
            uint(A_QUEUE_ID, 0),
            uint(A_TX_PACKETS, 10),
            // An rx counter on a tx queue must not be taken for tx.
            uint(A_RX_PACKETS, 99),
        ]),
    ));
    // A stray message of another sequence is ignored.
    datagram.extend(nlmsg(6, 2, reply(vec![uint(A_IFINDEX, 1)])));
    datagram.extend(done(0));
    let batch = decode_batch::<NetdevMessage>(&datagram, 7).unwrap();
    assert!(batch.finished);
    let stats: Vec<QueueStats> = batch
        .messages
        .iter()
        .map(|m| queue_stats_from_message(m).unwrap().unwrap())
        .collect();
    assert_eq!(
        stats,
        vec![
            QueueStats {
                ifindex: 4,
                queue_type: QueueType::Rx,
                queue: 3,
                packets: Some(5_000_000_000),
                bytes: Some(1234),
                hw_drops: Some(2),
            },
            QueueStats {
                ifindex: 4,
                queue_type: QueueType::Tx,
                queue: 0,
                packets: Some(10),
                bytes: None,
                hw_drops: None,
            },
        ]
    );
}

/// NETDEV_A_QSTATS_RX_CSUM_UNNECESSARY: a counter this module does not keep.
const A_RX_CSUM_UNNECESSARY_FOR_TEST: u16 = 15;

#[test]
fn errors_and_incomplete_replies() {
    // A dump that fails ends in NLMSG_DONE with a negative errno.
    assert!(matches!(
        decode_batch::<NetdevMessage>(&done(-libc::EOPNOTSUPP), 7),
        Err(GenlError::Errno {
            errno: libc::EOPNOTSUPP,
            message: None
        })
    ));
    // Truncated: length field larger than the datagram.
    let mut cut = done(0);
    cut.truncate(18);
    assert!(matches!(
        decode_batch::<NetdevMessage>(&cut, 7),
        Err(GenlError::Decode(_))
    ));
    // No DONE yet: not finished, the caller reads on.
    let partial = nlmsg(7, 2, reply(vec![uint(A_IFINDEX, 1)]));
    assert!(!decode_batch::<NetdevMessage>(&partial, 7).unwrap().finished);

    let no_type = NetdevMessage {
        cmd: NETDEV_CMD_QSTATS_GET,
        attrs: vec![uint(A_IFINDEX, 1), uint(A_QUEUE_ID, 0)],
    };
    assert!(queue_stats_from_message(&no_type)
        .unwrap_err()
        .contains("QUEUE_TYPE"));
    let future_type = NetdevMessage {
        cmd: NETDEV_CMD_QSTATS_GET,
        attrs: vec![
            uint(A_IFINDEX, 1),
            uint(A_QUEUE_TYPE, 7),
            uint(A_QUEUE_ID, 0),
        ],
    };
    assert_eq!(queue_stats_from_message(&future_type), Ok(None));
    let huge = NetdevMessage {
        cmd: NETDEV_CMD_QSTATS_GET,
        attrs: vec![
            uint(A_IFINDEX, 1 << 40),
            uint(A_QUEUE_TYPE, 0),
            uint(A_QUEUE_ID, 0),
        ],
    };
    assert!(queue_stats_from_message(&huge).is_err());
}

#[test]
fn odd_sized_and_nested_attributes_are_kept_raw() {
    // nla_len 7 (3-byte value, padded to 8), then a nested attribute.
    let mut attrs = Vec::new();
    attrs.extend_from_slice(&7u16.to_ne_bytes());
    attrs.extend_from_slice(&30u16.to_ne_bytes());
    attrs.extend_from_slice(&[1, 2, 3, 0]);
    attrs.extend_from_slice(&8u16.to_ne_bytes());
    attrs.extend_from_slice(&(31u16 | 0x8000).to_ne_bytes());
    attrs.extend_from_slice(&5u32.to_ne_bytes());
    let msg = NetdevMessage::parse_with_param(
        &attrs,
        GenlHeader {
            cmd: NETDEV_CMD_QSTATS_GET,
            version: 1,
        },
    )
    .unwrap();
    assert_eq!(msg.attrs.len(), 2);
    assert!(msg.attrs.iter().all(|a| matches!(a, NetdevAttr::Other(_))));
}

proptest::proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
        let _ = decode_batch::<NetdevMessage>(&bytes, 0);
        let _ = NetdevMessage::parse_with_param(&bytes, GenlHeader { cmd: 12, version: 1 });
    }

    #[test]
    fn decode_never_panics_behind_a_valid_header(
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        seq in 0u32..3,
    ) {
        let mut buf = Vec::new();
        buf.extend_from_slice(&((16 + 4 + body.len()) as u32).to_ne_bytes());
        buf.extend_from_slice(&0x1bu16.to_ne_bytes());
        buf.extend_from_slice(&2u16.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&[12, 1, 0, 0]);
        buf.extend_from_slice(&body);
        if let Ok(batch) = decode_batch::<NetdevMessage>(&buf, 1) {
            for m in &batch.messages {
                let _ = queue_stats_from_message(m);
            }
        }
    }
}

fn sysfs_u64(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .parse()
        .unwrap()
}

/// Live (Linux 6.18): the family and its qstats-get op are there.
#[test]
fn live_family_and_op() {
    assert!(family_available().unwrap());
    assert!(supports_qstats().unwrap());
}

/// Name of the device with `ifindex` in this namespace (sysfs).
fn sysfs_name(ifindex: u32) -> String {
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|n| sysfs_u64(&format!("/sys/class/net/{n}/ifindex")) == u64::from(ifindex))
        .unwrap_or_else(|| panic!("no device with ifindex {ifindex}"))
}

/// Live: every device of this host with netdev_stat_ops (virtio_net since about
/// 6.10, mlx5, bnxt, ...). Its queues are the ones sysfs lists (queues/rx-N,
/// tx-N) and their sums stay within the device totals sysfs shows after the dump
/// (dev_get_stats also counts the driver's base stats of queues no longer active,
/// so a sum may be smaller); where `ethtool -S` has per-queue packets too, they
/// agree. lo has no stat_ops and never appears.
#[test]
fn live_devices_match_sysfs() {
    let all = read_queue_stats(None).expect("qstats dump");
    let mut ifindexes: Vec<u32> = all.iter().map(|q| q.ifindex).collect();
    ifindexes.dedup();
    if !skewscope_test_support::Needs::new("live_devices_match_sysfs")
        .that(!ifindexes.is_empty(), "needs a device with netdev qstats")
        .met()
    {
        return;
    }
    assert!(all.iter().all(|q| q.ifindex != 1), "lo has no qstats");
    let within = |name: &str, v: Option<u64>, lo: u64, hi: u64| {
        let v = v.unwrap_or_else(|| panic!("{name} missing"));
        assert!(lo <= v && v <= hi, "{name}: {lo} <= {v} <= {hi}");
    };
    for ifindex in ifindexes {
        let dev = sysfs_name(ifindex);
        let ethtool_before = ethtool_stats::read_ioctl(&dev).ok();
        let queues = read_queue_stats(Some(ifindex)).expect("qstats dump of one device");
        let ethtool_after = ethtool_stats::read_ioctl(&dev).ok();
        let after: [u64; 4] = ["rx_packets", "rx_bytes", "tx_packets", "tx_bytes"]
            .map(|f| sysfs_u64(&format!("/sys/class/net/{dev}/statistics/{f}")));
        assert!(queues.iter().all(|q| q.ifindex == ifindex));

        let mut from_sysfs: Vec<(QueueType, u32)> =
            std::fs::read_dir(format!("/sys/class/net/{dev}/queues"))
                .unwrap()
                .filter_map(|e| {
                    let name = e.ok()?.file_name().into_string().ok()?;
                    let (kind, n) = name.split_once('-')?;
                    let kind = match kind {
                        "rx" => QueueType::Rx,
                        "tx" => QueueType::Tx,
                        _ => return None,
                    };
                    Some((kind, n.parse().ok()?))
                })
                .collect();
        from_sysfs.sort();
        let mut kinds: Vec<(QueueType, u32)> =
            queues.iter().map(|q| (q.queue_type, q.queue)).collect();
        kinds.sort();
        assert_eq!(kinds, from_sysfs, "{dev}: qstats queues vs sysfs queues/");

        let sum = |t: QueueType, f: fn(&QueueStats) -> Option<u64>| {
            queues
                .iter()
                .filter(|q| q.queue_type == t)
                .map(|q| f(q).unwrap_or(0))
                .sum::<u64>()
        };
        within(
            &format!("{dev} rx packets"),
            Some(sum(QueueType::Rx, |q| q.packets)),
            0,
            after[0],
        );
        within(
            &format!("{dev} rx bytes"),
            Some(sum(QueueType::Rx, |q| q.bytes)),
            0,
            after[1],
        );
        within(
            &format!("{dev} tx packets"),
            Some(sum(QueueType::Tx, |q| q.packets)),
            0,
            after[2],
        );
        within(
            &format!("{dev} tx bytes"),
            Some(sum(QueueType::Tx, |q| q.bytes)),
            0,
            after[3],
        );

        // ethtool -S per-queue packets, where this driver prints them.
        let (Some(eb), Some(ea)) = (ethtool_before, ethtool_after) else {
            continue;
        };
        let eth_rx_before = ethtool_stats::rx_queue_packets(&eb.stats);
        let eth_rx_after = ethtool_stats::rx_queue_packets(&ea.stats);
        for (b, a) in eth_rx_before.iter().zip(&eth_rx_after) {
            let rx = queues
                .iter()
                .find(|q| q.queue_type == QueueType::Rx && q.queue == b.queue);
            if let (Some(rx), Some(lo), Some(hi)) = (rx, b.rx_packets, a.rx_packets) {
                within(
                    &format!("{dev} ethtool vs qstats rx packets"),
                    rx.packets,
                    lo,
                    hi,
                );
            }
        }
    }
}

#[test]
fn live_unknown_ifindex_is_not_found() {
    // ifindex values are allocated upwards from 1; this one does not exist here.
    let err = read_queue_stats(Some(0x7fff_fff0)).unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
}

/// Live: veth has no netdev_stat_ops on 6.18: the namespace-wide dump is empty and a
/// dump filtered to the veth is refused with EOPNOTSUPP.
#[test]
fn live_veth_has_no_qstats() {
    let pair = VethPair::new("qstats");
    pair.send_udp(8, 100);
    let (all, one, links) = VethPair::run_in(&pair.ns_b, || {
        let links = crate::sources::links::read_links_blocking().unwrap();
        let veth = links.iter().find(|l| l.name == DEV_B).unwrap().ifindex;
        (read_queue_stats(None), read_queue_stats(Some(veth)), links)
    });
    assert_eq!(all.unwrap(), vec![], "links there: {links:?}");
    assert!(
        matches!(one, Err(SourceError::Unsupported { .. })),
        "{one:?}"
    );
}
