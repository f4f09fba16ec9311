//! Which driver statistics are per-queue counters: the naming zoo of the common drivers.
//! Pure; fed by the ioctl reader and the text parser alike.

use super::{Direction, QueueCounter, QueueCounterKind, QueuePackets};

/// Parse a queue index: ASCII digits only, no sign, fits u32.
fn queue_index(digits: &str) -> Option<u32> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn direction_prefix(s: &str) -> Option<(Direction, &str)> {
    if let Some(rest) = s.strip_prefix("rx") {
        Some((Direction::Rx, rest))
    } else {
        s.strip_prefix("tx").map(|rest| (Direction::Tx, rest))
    }
}

/// Strip a repeated direction word: i40e 2.1 says "rx-0.rx_packets", be2net
/// "rxq0: rx_pkts", bnxt_en "[0]: rx_ucast_packets".
fn strip_direction_word(direction: Direction, rest: &str) -> &str {
    let word = match direction {
        Direction::Rx => "rx_",
        Direction::Tx => "tx_",
    };
    rest.strip_prefix(word).unwrap_or(rest)
}

fn counter_kind(suffix: &str) -> Option<QueueCounterKind> {
    if suffix.is_empty() {
        return None;
    }
    Some(match suffix {
        "packets" | "pkts" => QueueCounterKind::Packets,
        "bytes" => QueueCounterKind::Bytes,
        "drops" | "dropped" => QueueCounterKind::Drops,
        other => QueueCounterKind::Other(other.to_string()),
    })
}

/// Split "N<sep>rest" into (N, rest).
fn index_then(s: &str, sep: char) -> Option<(u32, &str)> {
    let (digits, rest) = s.split_once(sep)?;
    Some((queue_index(digits)?, rest))
}

/// Classify one statistics name as a per-queue counter: queue index, direction and kind.
/// Pure; returns None for device-level counters and anything unrecognised.
///
/// Patterns, with the drivers that print them:
/// - `rx_queue_N_packets`: igb, ixgbe, i40e and ice in-tree, hv_netvsc, veth,
///   virtio_net up to 6.8 (`rx_queue_0_xdp_packets` is XDP-only, kept as Other).
/// - `rx-N.packets` (ixgbe on RHEL 4.18, i40e out-of-tree 2.8) and `rx-N.rx_packets`
///   (i40e out-of-tree 2.1, sfc).
/// - `rxN_packets`: mlx4/mlx5 per channel. virtio_net also uses `rxN_*` after its 2024
///   stats rework (6.8 printed `rx_queue_N_*`; 6.14 and 6.18 print `rxN_drops`, `rxN_kicks`)
///   but no longer has per-queue packets/bytes here: those moved to netdev qstats.
///   mlx5's `chN_*` channel event counters and `ptp_rxN_*` are not RX queues.
/// - `[N]: rx_ucast_packets` (bnxt_en per ring; ucast + mcast + bcast make the total).
/// - `rx_packets[N]` / `rx_bytes[N]` (gve).
/// - `rxqN: rx_pkts` (be2net).
/// - `queue_N_rx_cnt` / `queue_N_rx_bytes` (ena: "cnt" counts packets).
pub fn classify(stat_name: &str) -> Option<(u32, Direction, QueueCounterKind)> {
    let name = stat_name.trim();

    // bnxt_en: "[N]: rx_ucast_packets" (bnxt_ethtool.c prefixes ring stats with "[%d]: ").
    if let Some(rest) = name.strip_prefix('[') {
        let (queue, rest) = index_then(rest, ']')?;
        let rest = rest.strip_prefix(':')?.trim_start();
        let (direction, suffix) = direction_prefix(rest)?;
        let suffix = suffix.strip_prefix('_')?;
        let kind = match suffix {
            "ucast_packets" | "mcast_packets" | "bcast_packets" => QueueCounterKind::Packets,
            "ucast_bytes" | "mcast_bytes" | "bcast_bytes" => QueueCounterKind::Bytes,
            other => counter_kind(other)?,
        };
        return Some((queue, direction, kind));
    }

    // ena: "queue_N_rx_cnt" (ena_ethtool.c "queue_%u_%s_%s").
    if let Some(rest) = name.strip_prefix("queue_") {
        let (queue, rest) = index_then(rest, '_')?;
        let (direction, suffix) = direction_prefix(rest)?;
        let suffix = suffix.strip_prefix('_')?;
        let kind = match suffix {
            "cnt" => QueueCounterKind::Packets,
            other => counter_kind(other)?,
        };
        return Some((queue, direction, kind));
    }

    let (direction, rest) = direction_prefix(name)?;

    // gve: "rx_bytes[N]" (gve_ethtool.c "rx_bytes[%u]").
    if let Some(body) = rest.strip_suffix(']') {
        let (counter, digits) = body.rsplit_once('[')?;
        let queue = queue_index(digits)?;
        let counter = counter.strip_prefix('_')?;
        return Some((queue, direction, counter_kind(counter)?));
    }

    // "rx_queue_N_packets".
    if let Some(rest) = rest.strip_prefix("_queue_") {
        let (queue, suffix) = index_then(rest, '_')?;
        return Some((queue, direction, counter_kind(suffix)?));
    }

    // "rx-N.packets" / "rx-N.rx_packets".
    if let Some(rest) = rest.strip_prefix('-') {
        let (queue, suffix) = index_then(rest, '.')?;
        let suffix = strip_direction_word(direction, suffix);
        return Some((queue, direction, counter_kind(suffix)?));
    }

    // be2net: "rxqN: rx_pkts" (be_ethtool.c "rxq%d: %s").
    if let Some(rest) = rest.strip_prefix('q') {
        let (queue, suffix) = index_then(rest, ':')?;
        let suffix = strip_direction_word(direction, suffix.trim_start());
        return Some((queue, direction, counter_kind(suffix)?));
    }

    // mlx5 / virtio_net: "rxN_packets"; "rx_65_to_127_bytes_phy" has '_' first, so no.
    let (queue, suffix) = index_then(rest, '_')?;
    Some((queue, direction, counter_kind(suffix)?))
}

/// All per-queue counters among `stats`, in input order.
pub fn per_queue(stats: &[(String, u64)]) -> Vec<QueueCounter> {
    stats
        .iter()
        .filter_map(|(name, value)| {
            let (queue, direction, counter) = classify(name)?;
            Some(QueueCounter {
                queue,
                direction,
                counter,
                value: *value,
                stat_name: name.clone(),
            })
        })
        .collect()
}

/// Receive packets and bytes per RX queue, sorted by queue. Only queues with a packets or
/// bytes counter appear: virtio_net since 6.9 has only `rxN_drops` etc. here (its packet
/// counts moved to netdev qstats), so it yields nothing. A repeated stat name counts once.
pub fn rx_queue_packets(stats: &[(String, u64)]) -> Vec<QueuePackets> {
    use std::collections::{BTreeMap, HashSet};

    let mut seen: HashSet<&str> = HashSet::new();
    let mut queues: BTreeMap<u32, QueuePackets> = BTreeMap::new();
    for (name, value) in stats {
        if !seen.insert(name.as_str()) {
            continue;
        }
        let Some((queue, Direction::Rx, kind)) = classify(name) else {
            continue;
        };
        if !matches!(kind, QueueCounterKind::Packets | QueueCounterKind::Bytes) {
            continue;
        }
        let entry = queues.entry(queue).or_insert(QueuePackets {
            queue,
            rx_packets: None,
            rx_bytes: None,
        });
        let field = if kind == QueueCounterKind::Packets {
            &mut entry.rx_packets
        } else {
            &mut entry.rx_bytes
        };
        *field = Some(field.unwrap_or(0).saturating_add(*value));
    }
    queues.into_values().collect()
}
