//! Channel counts (rx, tx, other, combined and their maxima) of every device, in one
//! ETHTOOL_MSG_CHANNELS_GET dump over ethtool netlink (the `ethtool` crate).
//!
//! Requests go to the network namespace of the calling thread. Observe-only: a GET
//! dump, never CHANNELS_SET.

use futures::StreamExt;
use serde::Serialize;

use ethtool::{EthtoolAttr, EthtoolChannelAttr, EthtoolError, EthtoolHeader, EthtoolMessage};

use crate::error::SourceError;

/// One device's channels. `None` means the driver reports no such kind: the kernel
/// only puts a kind's count and maximum when the maximum is non-zero
/// (net/ethtool/channels.c `channels_fill_reply`), which `ethtool -l` prints as "n/a".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Channels {
    pub rx: Option<u32>,
    pub tx: Option<u32>,
    pub other: Option<u32>,
    pub combined: Option<u32>,
    pub max_rx: Option<u32>,
    pub max_tx: Option<u32>,
    pub max_other: Option<u32>,
    pub max_combined: Option<u32>,
}

impl Channels {
    /// Queues that receive: rx-only plus combined channels.
    pub fn rx_queues(&self) -> Option<u32> {
        match (self.rx, self.combined) {
            (None, None) => None,
            (rx, combined) => Some(rx.unwrap_or(0).saturating_add(combined.unwrap_or(0))),
        }
    }
}

/// Pure: one CHANNELS_GET_REPLY's attributes -> (device name, channels). `None`
/// when the reply names no device (the kernel always does; a reply without one
/// cannot be attributed).
pub fn channels_from_reply(nlas: &[EthtoolAttr]) -> Option<(String, Channels)> {
    let mut name = None;
    let mut ch = Channels::default();
    for nla in nlas {
        let EthtoolAttr::Channel(attr) = nla else {
            continue;
        };
        match attr {
            EthtoolChannelAttr::Header(hdrs) => {
                for h in hdrs {
                    if let EthtoolHeader::DevName(n) = h {
                        name = Some(n.clone());
                    }
                }
            }
            EthtoolChannelAttr::RxCount(v) => ch.rx = Some(*v),
            EthtoolChannelAttr::TxCount(v) => ch.tx = Some(*v),
            EthtoolChannelAttr::OtherCount(v) => ch.other = Some(*v),
            EthtoolChannelAttr::CombinedCount(v) => ch.combined = Some(*v),
            EthtoolChannelAttr::RxMax(v) => ch.max_rx = Some(*v),
            EthtoolChannelAttr::TxMax(v) => ch.max_tx = Some(*v),
            EthtoolChannelAttr::OtherMax(v) => ch.max_other = Some(*v),
            EthtoolChannelAttr::CombinedMax(v) => ch.max_combined = Some(*v),
            _ => {}
        }
    }
    name.map(|n| (n, ch))
}

/// Pure: one CHANNELS_GET_REPLY as the `ethtool` crate decodes it (genetlink header,
/// then attributes) -> (device name, channels); `None` for bytes that do not decode.
pub fn parse_channels_reply(genl: &[u8]) -> Option<(String, Channels)> {
    use netlink_packet_core::ParseableParametrized;
    let header = netlink_packet_generic::GenlHeader::parse(genl).ok()?;
    let msg = EthtoolMessage::parse_with_param(genl.get(4..)?, header).ok()?;
    channels_from_reply(&msg.nlas)
}

const WHAT: &str = "ETHTOOL_MSG_CHANNELS_GET dump";

fn ethtool_error(e: EthtoolError) -> SourceError {
    match e {
        EthtoolError::NetlinkError(msg) => {
            let io = msg.to_io();
            match io.raw_os_error() {
                Some(libc::EOPNOTSUPP) => SourceError::Unsupported {
                    what: WHAT.to_string(),
                    why: io.to_string(),
                },
                _ => SourceError::Kernel {
                    what: WHAT.to_string(),
                    msg: io.to_string(),
                },
            }
        }
        other => SourceError::Kernel {
            what: WHAT.to_string(),
            msg: other.to_string(),
        },
    }
}

/// Channels of every device in the caller's network namespace, in one dump.
/// Devices whose driver has no `get_channels` are left out by the kernel. Must be
/// called inside a tokio runtime with I/O enabled (the connection is spawned on it).
pub async fn read_all() -> Result<Vec<(String, Channels)>, SourceError> {
    let (connection, mut handle, _) =
        ethtool::new_connection().map_err(|e| SourceError::Kernel {
            what: WHAT.to_string(),
            msg: format!("generic netlink socket: {e}"),
        })?;
    let task = tokio::spawn(connection);
    let result = dump(&mut handle).await;
    task.abort();
    result
}

async fn dump(handle: &mut ethtool::EthtoolHandle) -> Result<Vec<(String, Channels)>, SourceError> {
    // Resolve the family first so "no ethtool netlink" (ENOENT: kernel < 5.6 or
    // CONFIG_ETHTOOL_NETLINK=n) is told apart from a failed request.
    if let Err(e) = handle.handle.resolve_family::<EthtoolMessage>().await {
        return Err(match e {
            genetlink::GenetlinkError::NetlinkError(io)
                if io.raw_os_error() == Some(libc::ENOENT) =>
            {
                SourceError::Unsupported {
                    what: WHAT.to_string(),
                    why: "generic netlink family \"ethtool\" not registered".to_string(),
                }
            }
            other => SourceError::Kernel {
                what: WHAT.to_string(),
                msg: format!("resolving family \"ethtool\": {other}"),
            },
        });
    }

    let mut stream = handle
        .channel()
        .get(None)
        .execute()
        .await
        .map_err(ethtool_error)?;
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        let msg = item.map_err(ethtool_error)?;
        match channels_from_reply(&msg.payload.nlas) {
            Some(entry) => out.push(entry),
            None => log::debug!("{WHAT}: reply without a device name skipped"),
        }
    }
    Ok(out)
}

/// [`read_all`] on a fresh current-thread runtime, for blocking callers. Requests
/// go to the calling thread's network namespace.
pub fn read_all_blocking() -> Result<Vec<(String, Channels)>, SourceError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| SourceError::Kernel {
            what: WHAT.to_string(),
            msg: format!("tokio runtime: {e}"),
        })?;
    runtime.block_on(read_all())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::testns::{privileged, Netns};
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::process::Command;

    /// A CHANNELS_GET_REPLY (genl header + attributes) as net/ethtool/channels.c
    /// builds it for a veth with 4 RX/TX queues: header nest {DEV_INDEX 7,
    /// DEV_NAME "va"}, RX_MAX 4, TX_MAX 4, RX_COUNT 4, TX_COUNT 4.
    const VETH_REPLY: &[u8] = &[
        18, 1, 0, 0, // cmd CHANNELS_GET_REPLY (18), version 1
        0x14, 0x00, 0x01, 0x80, // ETHTOOL_A_CHANNELS_HEADER | NLA_F_NESTED, len 20
        0x08, 0x00, 0x01, 0x00, 7, 0, 0, 0, // DEV_INDEX 7
        0x07, 0x00, 0x02, 0x00, b'v', b'a', 0, 0, // DEV_NAME "va\0" + pad
        0x08, 0x00, 0x02, 0x00, 4, 0, 0, 0, // RX_MAX 4
        0x08, 0x00, 0x03, 0x00, 4, 0, 0, 0, // TX_MAX 4
        0x08, 0x00, 0x06, 0x00, 4, 0, 0, 0, // RX_COUNT 4
        0x08, 0x00, 0x07, 0x00, 4, 0, 0, 0, // TX_COUNT 4
    ];

    fn parse_reply(genl: &[u8]) -> Option<(String, Channels)> {
        parse_channels_reply(genl)
    }

    #[test]
    fn reply_bytes_to_channels() {
        assert_eq!(
            parse_reply(VETH_REPLY),
            Some((
                "va".to_string(),
                Channels {
                    rx: Some(4),
                    tx: Some(4),
                    max_rx: Some(4),
                    max_tx: Some(4),
                    ..Channels::default()
                }
            ))
        );
    }

    #[test]
    fn combined_only_reply() {
        // As virtio_net answers: only COMBINED_MAX and COMBINED_COUNT.
        let nlas = vec![
            EthtoolAttr::Channel(EthtoolChannelAttr::Header(vec![
                EthtoolHeader::DevIndex(4),
                EthtoolHeader::DevName("eth0".to_string()),
            ])),
            EthtoolAttr::Channel(EthtoolChannelAttr::CombinedMax(1)),
            EthtoolAttr::Channel(EthtoolChannelAttr::CombinedCount(1)),
        ];
        let (name, ch) = channels_from_reply(&nlas).unwrap();
        assert_eq!(name, "eth0");
        assert_eq!(
            ch,
            Channels {
                combined: Some(1),
                max_combined: Some(1),
                ..Channels::default()
            }
        );
        assert_eq!(ch.rx_queues(), Some(1));
    }

    #[test]
    fn reply_without_name_is_dropped() {
        let nlas = vec![EthtoolAttr::Channel(EthtoolChannelAttr::RxCount(3))];
        assert_eq!(channels_from_reply(&nlas), None);
    }

    #[test]
    fn rx_queues_adds_rx_and_combined() {
        let ch = Channels {
            rx: Some(2),
            combined: Some(6),
            ..Channels::default()
        };
        assert_eq!(ch.rx_queues(), Some(8));
        assert_eq!(Channels::default().rx_queues(), None);
    }

    proptest! {
        #[test]
        fn arbitrary_reply_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_reply(&bytes);
        }

        #[test]
        fn mutated_reply_never_panics(pos in 0usize..VETH_REPLY.len(), byte in any::<u8>(), cut in 0usize..=VETH_REPLY.len()) {
            let mut bytes = VETH_REPLY.to_vec();
            bytes[pos] = byte;
            bytes.truncate(cut);
            let _ = parse_reply(&bytes);
        }
    }

    /// Test-only reader of `ethtool -l DEV` output: "n/a" -> None.
    fn parse_ethtool_l(text: &str) -> Channels {
        let mut ch = Channels::default();
        let mut current = false;
        for line in text.lines() {
            let line = line.trim();
            match line {
                "Pre-set maximums:" => current = false,
                "Current hardware settings:" => current = true,
                _ => {
                    let Some((key, value)) = line.split_once(':') else {
                        continue;
                    };
                    let value = value.trim();
                    if value.is_empty() {
                        continue; // "Channel parameters for DEV:"
                    }
                    let value = if value == "n/a" {
                        None
                    } else {
                        Some(value.parse::<u32>().expect("ethtool -l value"))
                    };
                    let slot = match (key, current) {
                        ("RX", false) => &mut ch.max_rx,
                        ("TX", false) => &mut ch.max_tx,
                        ("Other", false) => &mut ch.max_other,
                        ("Combined", false) => &mut ch.max_combined,
                        ("RX", true) => &mut ch.rx,
                        ("TX", true) => &mut ch.tx,
                        ("Other", true) => &mut ch.other,
                        ("Combined", true) => &mut ch.combined,
                        _ => continue,
                    };
                    *slot = value;
                }
            }
        }
        ch
    }

    #[test]
    fn ethtool_l_text_reader() {
        let text = "Channel parameters for eth0:\nPre-set maximums:\nRX:\t\tn/a\nTX:\t\tn/a\nOther:\t\tn/a\nCombined:\t1\nCurrent hardware settings:\nRX:\t\tn/a\nTX:\t\tn/a\nOther:\t\tn/a\nCombined:\t1\n";
        assert_eq!(
            parse_ethtool_l(text),
            Channels {
                combined: Some(1),
                max_combined: Some(1),
                ..Channels::default()
            }
        );
    }

    fn cli_channels(cmd: &mut Command) -> Channels {
        let out = cmd.output().expect("run ethtool -l");
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse_ethtool_l(&String::from_utf8_lossy(&out.stdout))
    }

    /// Live: the host's namespace; every device the dump returns matches
    /// `ethtool -l` on it, and eth0 (virtio_net, one queue pair) has combined 1.
    #[test]
    fn live_host_dump_matches_ethtool_cli() {
        if !privileged("live_host_dump_matches_ethtool_cli") {
            return;
        }
        let all: BTreeMap<String, Channels> = read_all_blocking().unwrap().into_iter().collect();
        for (name, ch) in &all {
            let cli = cli_channels(Command::new("ethtool").args(["-l", name]));
            assert_eq!(ch, &cli, "{name}: netlink vs ethtool -l");
        }
        // lo has no get_channels; the kernel leaves it out of the dump.
        assert!(!all.contains_key("lo"));
    }

    /// Live: a veth pair with 4 RX/TX queues in a fresh namespace. The dump must
    /// run inside it (netlink is per namespace) and see exactly va and vb.
    #[test]
    fn live_veth_in_netns() {
        if !privileged("live_veth_in_netns") {
            return;
        }
        let ns = Netns::new("ch");
        ns.add_veth("va", "vb", 4);
        let all: BTreeMap<String, Channels> = ns
            .run(|| read_all_blocking().unwrap())
            .into_iter()
            .collect();
        let expected = Channels {
            rx: Some(4),
            tx: Some(4),
            max_rx: Some(4),
            max_tx: Some(4),
            ..Channels::default()
        };
        assert_eq!(
            all.keys().map(String::as_str).collect::<Vec<_>>(),
            vec!["va", "vb"]
        );
        assert_eq!(all["va"], expected);
        assert_eq!(all["vb"], expected);
        for dev in ["va", "vb"] {
            let out = ns.exec(&["ethtool", "-l", dev]);
            assert!(out.status.success());
            assert_eq!(
                parse_ethtool_l(&String::from_utf8_lossy(&out.stdout)),
                all[dev]
            );
        }
        // The host's dump does not see the namespace's devices.
        let host = read_all_blocking().unwrap();
        assert!(!host.iter().any(|(name, _)| name == "va" || name == "vb"));
    }

    /// Live: the async entry point on a caller-provided runtime.
    #[tokio::test]
    async fn live_read_all_async() {
        if !privileged("live_read_all_async") {
            return;
        }
        let all = read_all().await.unwrap();
        let blocking = tokio::task::spawn_blocking(read_all_blocking)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(all, blocking);
    }
}
