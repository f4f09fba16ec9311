use super::*;
use crate::error::SourceError;

fn fixture(name: &str) -> String {
    let path = format!("{}/testdata/ethtool_S/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parsed(name: &str) -> Vec<(String, u64)> {
    parse_ethtool_s(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// (file, RX queues with packets or bytes, one queue, its rx packets, its rx bytes);
/// values read off the files by hand.
type Expected = (&'static str, usize, u32, Option<u64>, Option<u64>);
const FIXTURES: &[Expected] = &[
    // bnxt_en: ucast + mcast + bcast = 276347403 + 1829492 + 30964.
    (
        "gem-bnxt_en-tab-indented.txt",
        8,
        0,
        Some(278_207_859),
        Some(594_513_300_139),
    ),
    (
        "showmax-bnxt_en-8rings.txt",
        8,
        7,
        Some(18_992_619),
        Some(1_648_464_449),
    ),
    ("gem-gve-arm64-c4a.txt", 2, 1, None, Some(84_369)),
    (
        "gem-i40e-tx_queue_N-64q.txt",
        128,
        5,
        Some(256_996_186),
        Some(112_808_306_281),
    ),
    (
        "gem-i40e-with-comments.txt",
        129,
        3,
        Some(3_804_967_529),
        Some(3_852_280_575_987),
    ),
    ("gem-igb-8q.txt", 8, 1, Some(3_452_345), Some(4_523_452_345)),
    (
        "gem-virtio_net-do-5.15.txt",
        1,
        0,
        Some(1_869_634_984),
        Some(1_975_950_944_041),
    ),
    (
        "gem-virtio_net-yacloud-6.8.txt",
        2,
        1,
        Some(573),
        Some(121_425),
    ),
    (
        "insights-be2net-rxqN-prefix.txt",
        2,
        1,
        Some(5_000_000),
        None,
    ),
    (
        "insights-igb-4q-4space.txt",
        4,
        0,
        Some(912_398),
        Some(92_856_542),
    ),
    (
        "intel-mfd-igb-4q-dotnic.txt",
        4,
        2,
        Some(67_292),
        Some(5_850_192),
    ),
    (
        "mlx5-5.15-xdp-nonzero.txt",
        1,
        0,
        Some(70_812_690),
        Some(4_248_761_400),
    ),
    (
        "mlx5-6.5-xdp-nonzero.txt",
        1,
        0,
        Some(7_282_880),
        Some(436_973_482),
    ),
    (
        "showmax-i40e-2.1-oot.txt",
        48,
        11,
        Some(109_615_275_060),
        Some(74_120_403_144_312),
    ),
    (
        "showmax-i40e-2.8.txt",
        129,
        0,
        Some(3_929_417_099),
        Some(4_034_128_482_410),
    ),
    (
        "showmax-ixgbe-rhel418-txN.packets.txt",
        80,
        39,
        Some(20_230_647_636),
        Some(16_352_129_640_935),
    ),
];

#[test]
fn fixtures_rx_queue_packets() {
    for &(file, n_queues, queue, packets, bytes) in FIXTURES {
        let rx = rx_queue_packets(&parsed(file));
        assert_eq!(rx.len(), n_queues, "{file}: queues");
        let q = rx
            .iter()
            .find(|q| q.queue == queue)
            .unwrap_or_else(|| panic!("{file}: no queue {queue}"));
        assert_eq!(
            (q.rx_packets, q.rx_bytes),
            (packets, bytes),
            "{file}: queue {queue}"
        );
        // Queues are numbered 0..n without gaps in all of these captures.
        let ids: Vec<u32> = rx.iter().map(|q| q.queue).collect();
        assert_eq!(ids, (0..n_queues as u32).collect::<Vec<_>>(), "{file}");
    }
}

#[test]
fn bnxt_sums_cast_classes() {
    let rx = rx_queue_packets(&parsed("showmax-bnxt_en-8rings.txt"));
    // [0]: 19121609 ucast + 8020285 mcast + 24307130 bcast.
    assert_eq!(rx[0].rx_packets, Some(51_449_024));
    assert_eq!(rx[0].rx_bytes, Some(3_992_432_563));
}

#[test]
fn queueless_fixtures() {
    // virtio_net 6.14: per-queue drops/kicks only; packets moved to netdev qstats.
    let virtio = parsed("gem-virtio_net-gcp-6.14-rxN.txt");
    assert_eq!(virtio.len(), 30);
    assert!(rx_queue_packets(&virtio).is_empty());
    let pq = per_queue(&virtio);
    assert_eq!(pq.len(), 20, "rx0/rx1 x 6 + tx0/tx1 x 4");
    assert_eq!(
        pq[0],
        QueueCounter {
            queue: 0,
            direction: Direction::Rx,
            counter: QueueCounterKind::Drops,
            value: 0,
            stat_name: "rx0_drops".into(),
        }
    );
    let tx1_kicks = pq.iter().find(|c| c.stat_name == "tx1_kicks").unwrap();
    assert_eq!(
        (
            tx1_kicks.queue,
            tx1_kicks.direction,
            &tx1_kicks.counter,
            tx1_kicks.value
        ),
        (
            1,
            Direction::Tx,
            &QueueCounterKind::Other("kicks".into()),
            1
        )
    );

    let tg3 = parsed("showmax-tg3-noqueues.txt");
    assert_eq!(tg3.len(), 72);
    assert!(per_queue(&tg3).is_empty(), "{:?}", per_queue(&tg3));

    let small = parsed("node_exporter-eth0-small.txt");
    assert_eq!(small.len(), 16);
    assert!(per_queue(&small).is_empty());
    assert_eq!(small[1], ("rx_packets".to_string(), 1_260_062));
    assert!(small.contains(&("duplicate metric".to_string(), 1)));
    assert!(small.contains(&("port.rx_dropped".to_string(), 12_028)));
}

#[test]
fn tx_queues_and_names_kept() {
    let stats = parsed("gem-i40e-tx_queue_N-64q.txt");
    let tx: Vec<_> = per_queue(&stats)
        .into_iter()
        .filter(|c| c.direction == Direction::Tx && c.counter == QueueCounterKind::Packets)
        .collect();
    assert_eq!(tx.len(), 128);

    let ixgbe = parsed("showmax-ixgbe-rhel418-txN.packets.txt");
    let tx0 = per_queue(&ixgbe)
        .into_iter()
        .find(|c| c.stat_name == "tx-0.packets")
        .unwrap();
    assert_eq!(
        (tx0.queue, tx0.direction, tx0.value),
        (0, Direction::Tx, 17_736_631_688)
    );

    let be2net = parsed("insights-be2net-rxqN-prefix.txt");
    assert_eq!(be2net[1], ("rxq0: rx_drops_no_frags".to_string(), 5000));
    assert_eq!(
        classify("rxq0: rx_drops_no_frags"),
        Some((
            0,
            Direction::Rx,
            QueueCounterKind::Other("drops_no_frags".into())
        ))
    );
}

#[test]
fn classify_naming_zoo() {
    use Direction::*;
    use QueueCounterKind::*;
    type Classified = Option<(u32, Direction, QueueCounterKind)>;
    let cases: &[(&str, Classified)] = &[
        ("rx_queue_12_packets", Some((12, Rx, Packets))),
        ("tx_queue_0_bytes", Some((0, Tx, Bytes))),
        (
            "rx_queue_0_xdp_packets",
            Some((0, Rx, Other("xdp_packets".into()))),
        ),
        ("rx-3.packets", Some((3, Rx, Packets))),
        ("tx-0.tx_bytes", Some((0, Tx, Bytes))),
        ("rx0_packets", Some((0, Rx, Packets))),
        ("rx15_drops", Some((15, Rx, Drops))),
        ("tx3_dropped", Some((3, Tx, Drops))),
        ("[2]: rx_bcast_packets", Some((2, Rx, Packets))),
        ("[2]: tx_ucast_bytes", Some((2, Tx, Bytes))),
        ("[2]: rx_discards", Some((2, Rx, Other("discards".into())))),
        ("rx_packets[7]", Some((7, Rx, Packets))),
        ("tx_bytes[1]", Some((1, Tx, Bytes))),
        ("rxq1: rx_pkts", Some((1, Rx, Packets))),
        ("txq4: tx_bytes", Some((4, Tx, Bytes))),
        ("queue_3_rx_cnt", Some((3, Rx, Packets))),
        ("queue_3_tx_bytes", Some((3, Tx, Bytes))),
        // Device-level or non-queue counters.
        ("rx_packets", None),
        ("rx_65_to_127_bytes_phy", None),
        ("rx_64_or_less_octet_packets", None),
        ("rx_packets_phy", None),
        ("rx_prio0_packets", None),
        ("rx_bytes_cos3", None),
        ("ch0_events", None),
        ("ptp_rx0_packets", None),
        ("port.rx_priority_3_xon", None),
        ("veb.tc_2_rx_packets", None),
        ("[0]: tpa_packets", None),
        ("rx_queue_x_packets", None),
        ("rx_queue_1_", None),
        ("rx-99999999999.packets", None),
        ("rx_bytes[]", None),
        ("", None),
    ];
    for (name, want) in cases {
        assert_eq!(&classify(name), want, "{name:?}");
    }
}

#[test]
fn broken_fixture_names_each_fault() {
    let text = fixture("showmax-i40e-BROKEN.txt");
    let err = parse_ethtool_s(&text).unwrap_err();
    assert_eq!(err.line, 7, "{err}");
    assert!(
        err.msg.contains("\"0.1.1\"") && err.msg.contains("tx_errors"),
        "{err}"
    );

    // With that fixed, the free-text line 12 is next, then the repeated header.
    let text = text.replace("tx_errors: 0.1.1", "tx_errors: 0");
    let err = parse_ethtool_s(&text).unwrap_err();
    assert_eq!(err.line, 12, "{err}");
    assert!(err.msg.contains("whatever is this broken line"), "{err}");

    let text = text.replace("whatever is this broken line, just ignore it", "");
    let err = parse_ethtool_s(&text).unwrap_err();
    assert_eq!(err.line, 13, "{err}");
    assert!(err.msg.contains("repeated"), "{err}");
}

#[test]
fn parse_edge_cases() {
    assert_eq!(parse_ethtool_s("").unwrap(), vec![]);
    assert_eq!(parse_ethtool_s("no stats available\n").unwrap(), vec![]);
    // No header, CRLF, no trailing newline.
    assert_eq!(
        parse_ethtool_s("\trx_queue_0_packets: 5\r\n    x: 18446744073709551615").unwrap(),
        vec![("rx_queue_0_packets".into(), 5), ("x".into(), u64::MAX)]
    );
    assert_eq!(
        parse_ethtool_s("x: 18446744073709551616").unwrap_err().line,
        1
    );
    assert_eq!(parse_ethtool_s("NIC statistics:\n: 5").unwrap_err().line, 2);
    assert_eq!(parse_ethtool_s("a: 1\nb: -1").unwrap_err().line, 2);
    assert_eq!(
        parse_ethtool_s("a: 1\nNIC statistics:").unwrap_err().line,
        2
    );
}

#[test]
fn no_trailing_newline_fixture_keeps_last_value() {
    // gem-virtio_net-do-5.15.txt ends in "tx_queue_0_kicks: 1803255888" with no '\n'.
    let stats = parsed("gem-virtio_net-do-5.15.txt");
    assert_eq!(stats.len(), 13);
    assert_eq!(stats[12], ("tx_queue_0_kicks".to_string(), 1_803_255_888));
}

fn ethtool_cli(args: &[&str]) -> String {
    let out = std::process::Command::new("ethtool")
        .args(args)
        .output()
        .expect("ethtool(8) is needed for the comparison");
    assert!(out.status.success(), "ethtool {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Live: every NIC of this host over the ioctl equals `ethtool -S DEV`: same
/// names in the same order, and each counter read by ethtool(8) lies between two
/// ioctl reads taken before and after it; the driver name is what `ethtool -i`
/// says.
#[test]
fn live_nics_ioctl_match_ethtool_cli() {
    let nics = crate::sources::testns::nic_drivers();
    if !skewscope_test_support::Needs::new("live_nics_ioctl_match_ethtool_cli")
        .tool("ethtool", &["--version"])
        .that(
            !nics.is_empty(),
            "needs a NIC with a driver in /sys/class/net",
        )
        .met()
    {
        return;
    }
    for (dev, _) in &nics {
        let info = ethtool_cli(&["-i", dev]);
        let cli_driver = info
            .lines()
            .find_map(|l| l.strip_prefix("driver: "))
            .map(str::trim);
        let before = match read_ioctl(dev) {
            // No ETH_SS_STATS set: ethtool -S must fail too.
            Err(SourceError::Unsupported { .. }) => {
                let out = std::process::Command::new("ethtool")
                    .args(["-S", dev])
                    .output()
                    .unwrap();
                assert!(
                    !out.status.success(),
                    "{dev}: ioctl unsupported, ethtool -S works"
                );
                continue;
            }
            other => other.unwrap_or_else(|e| panic!("SIOCETHTOOL on {dev}: {e}")),
        };
        let cli = parse_ethtool_s(&ethtool_cli(&["-S", dev])).expect("parse ethtool -S");
        let after = read_ioctl(dev).expect("SIOCETHTOOL");
        assert_eq!(before.driver.as_deref(), cli_driver, "{dev}");
        let names = |s: &[(String, u64)]| s.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&before.stats), names(&cli), "{dev}");
        assert_eq!(names(&after.stats), names(&cli), "{dev}");
        for ((b, c), a) in before.stats.iter().zip(&cli).zip(&after.stats) {
            assert!(
                b.1 <= c.1 && c.1 <= a.1,
                "{dev} {}: {} <= {} <= {}",
                b.0,
                b.1,
                c.1,
                a.1
            );
        }
    }
}

#[test]
fn live_missing_and_statless_devices() {
    assert!(
        read_ioctl("nosuchdev0").unwrap_err().is_not_found(),
        "ENODEV is NotFound"
    );
    assert!(read_ioctl("").unwrap_err().is_not_found());
    assert!(read_ioctl("a_name_too_long_for_ifnamsiz")
        .unwrap_err()
        .is_not_found());
    // lo has no ETH_SS_STATS set (`ethtool -S lo`: "no stats available").
    match read_ioctl("lo") {
        Err(SourceError::Unsupported { what, .. }) => assert!(what.contains("lo")),
        other => panic!("lo: {other:?}"),
    }
}

/// Live: what veth exposes. Its per-queue counters are NAPI-path counters
/// (`rx_queue_N_xdp_packets`), which count only when the receiving end runs NAPI (GRO
/// on) and the skb is eligible: a TSO-capable sender needs `rx-udp-gro-forwarding`
/// on the receiver for UDP (drivers/net/veth.c, veth_skb_is_eligible_for_gro). That
/// setup happens in the test's own namespace. Ground truth: the datagrams sent.
#[test]
fn live_veth_per_queue_counters() {
    use crate::sources::testns::{VethPair, DEV_B, QUEUES};
    let pair = VethPair::new("ethS");
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &pair.ns_b,
            "ethtool",
            "-K",
            DEV_B,
            "gro",
            "on",
            "rx-udp-gro-forwarding",
            "on",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let sent = pair.send_udp(32, 400);
    let stats = VethPair::run_in(&pair.ns_b, || read_ioctl(DEV_B)).expect("veth stats");
    assert_eq!(stats.driver.as_deref(), Some("veth"));
    assert_eq!(stats.stats[0].0, "peer_ifindex");
    // peer_ifindex + 7 per rx queue + 2 per tx queue.
    assert_eq!(
        stats.stats.len(),
        1 + 7 * QUEUES as usize + 2 * QUEUES as usize
    );
    assert!(
        rx_queue_packets(&stats.stats).is_empty(),
        "veth has no rx packets"
    );
    let pq = per_queue(&stats.stats);
    assert_eq!(
        pq.len(),
        stats.stats.len() - 1,
        "all but peer_ifindex are per queue"
    );
    let xdp: Vec<&QueueCounter> = pq
        .iter()
        .filter(|c| {
            c.direction == Direction::Rx
                && c.counter == QueueCounterKind::Other("xdp_packets".into())
        })
        .collect();
    assert_eq!(
        xdp.iter().map(|c| c.queue).collect::<Vec<_>>(),
        (0..QUEUES).collect::<Vec<_>>()
    );
    let total: u64 = xdp.iter().map(|c| c.value).sum();
    // At least our datagrams (plus ARP, maybe IPv6 DAD/RS) and not wildly more.
    assert!(
        total >= sent as u64 && total <= sent as u64 + 50,
        "xdp_packets {total} vs {sent} sent: {xdp:?}"
    );
    let busy = xdp.iter().filter(|c| c.value > 0).count();
    eprintln!(
        "veth {DEV_B} rx_queue_N_xdp_packets: {:?}",
        xdp.iter().map(|c| c.value).collect::<Vec<_>>()
    );
    assert!(busy >= 2, "32 flows should land on several queues: {xdp:?}");
}

proptest::proptest! {
    #[test]
    fn parser_never_panics(text in "\\PC{0,400}") {
        let _ = parse_ethtool_s(&text);
    }

    #[test]
    fn structured_lines_never_panic(
        lines in proptest::collection::vec(
            "[ \\t]{0,3}(\\[[0-9]{0,3}\\]: )?(rx|tx|rxq|queue_)?[-_.a-z0-9\\[\\]:]{0,24}: ?[0-9.]{0,22}",
            0..40,
        )
    ) {
        let text = lines.join("\n");
        if let Ok(stats) = parse_ethtool_s(&text) {
            let _ = per_queue(&stats);
            let _ = rx_queue_packets(&stats);
        }
    }

    #[test]
    fn classify_never_panics(name in "\\PC{0,40}") {
        let _ = classify(&name);
    }
}
