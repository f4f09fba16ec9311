//! Network links over rtnetlink (RTM_GETLINK dump).
//!
//! Devices come and go (hotplug, veth of new pods), so each cycle dumps the list afresh;
//! the dump runs in the calling thread's network namespace.

use std::time::Duration;

use futures::TryStreamExt;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use serde::Serialize;

use crate::error::SourceError;

/// One network device as rtnetlink describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    pub ifindex: u32,
    pub name: String,
    /// IFLA_INFO_KIND: "veth", "bridge", "vlan" ...; None for plain hardware NICs and lo.
    pub kind: Option<String>,
    /// IFF_UP: administratively up.
    pub up: bool,
    pub num_rx_queues: Option<u32>,
    pub num_tx_queues: Option<u32>,
    pub mtu: Option<u32>,
    /// IFLA_MASTER: ifindex of the bridge/bond this device is enslaved to.
    pub master: Option<u32>,
}

/// Bound on one dump, so a wedged netlink socket cannot stall the cycle.
const DUMP_TIMEOUT: Duration = Duration::from_secs(5);

const WHAT: &str = "rtnetlink RTM_GETLINK dump";

/// Pure: the fields we keep from one RTM_NEWLINK message.
pub fn link_from_message(msg: &LinkMessage) -> Link {
    let mut link = Link {
        ifindex: msg.header.index,
        name: String::new(),
        kind: None,
        up: msg.header.flags.contains(LinkFlags::Up),
        num_rx_queues: None,
        num_tx_queues: None,
        mtu: None,
        master: None,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => link.name = name.clone(),
            LinkAttribute::NumRxQueues(n) => link.num_rx_queues = Some(*n),
            LinkAttribute::NumTxQueues(n) => link.num_tx_queues = Some(*n),
            LinkAttribute::Mtu(n) => link.mtu = Some(*n),
            LinkAttribute::Controller(n) => link.master = Some(*n),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.kind = Some(kind.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    link
}

fn kernel_error(msg: impl std::fmt::Display) -> SourceError {
    SourceError::Kernel {
        what: WHAT.into(),
        msg: msg.to_string(),
    }
}

/// Dump all links of the caller's network namespace, sorted by ifindex. Needs a tokio
/// runtime with I/O enabled (the connection task is spawned on it).
pub async fn read_links() -> Result<Vec<Link>, SourceError> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(kernel_error)?;
    let conn_task = tokio::spawn(connection);
    let dump = async {
        handle
            .link()
            .get()
            .execute()
            .map_ok(|msg| link_from_message(&msg))
            .try_collect::<Vec<_>>()
            .await
    };
    let result = tokio::time::timeout(DUMP_TIMEOUT, dump).await;
    conn_task.abort();
    let mut links = result
        .map_err(|_| kernel_error(format!("no reply within {DUMP_TIMEOUT:?}")))?
        .map_err(kernel_error)?;
    links.sort_by_key(|l| l.ifindex);
    Ok(links)
}

fn read_links_here() -> Result<Vec<Link>, SourceError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| kernel_error(format!("tokio runtime: {e}")))?;
    rt.block_on(read_links())
}

/// [`read_links`] on a private current-thread runtime. Called from inside a tokio runtime
/// it moves to a scoped thread (a runtime cannot block inside another); new threads
/// inherit the caller's network namespace, so the answer is the same.
pub fn read_links_blocking() -> Result<Vec<Link>, SourceError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return read_links_here();
    }
    std::thread::scope(|s| {
        s.spawn(read_links_here)
            .join()
            .unwrap_or_else(|_| Err(kernel_error("link dump thread panicked")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::testns::{VethPair, DEV_A, DEV_B, QUEUES};

    #[test]
    fn link_from_message_keeps_fields() {
        use netlink_packet_route::link::InfoKind;
        let mut msg = LinkMessage::default();
        msg.header.index = 7;
        msg.header.flags = LinkFlags::Up | LinkFlags::Broadcast;
        msg.attributes = vec![
            LinkAttribute::IfName("veth7".into()),
            LinkAttribute::Mtu(1500),
            LinkAttribute::NumRxQueues(4),
            LinkAttribute::NumTxQueues(2),
            LinkAttribute::Controller(3),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]),
        ];
        assert_eq!(
            link_from_message(&msg),
            Link {
                ifindex: 7,
                name: "veth7".into(),
                kind: Some("veth".into()),
                up: true,
                num_rx_queues: Some(4),
                num_tx_queues: Some(2),
                mtu: Some(1500),
                master: Some(3),
            }
        );
        let bare = link_from_message(&LinkMessage::default());
        assert_eq!((bare.up, bare.kind, bare.mtu), (false, None, None));
    }

    /// (name, ifindex, up, mtu, rx queues, tx queues).
    type LinkFacts = (String, u32, bool, Option<u32>, Option<u32>, Option<u32>);

    /// [`LinkFacts`] of every link `ip -j -d link` shows in this namespace,
    /// sorted by name.
    fn ip_json_links() -> Vec<LinkFacts> {
        let out = std::process::Command::new("ip")
            .args(["-j", "-d", "link", "show"])
            .output()
            .expect("run ip -j -d link");
        assert!(out.status.success(), "ip -j -d link failed");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip JSON");
        let u32_of = |v: &serde_json::Value, k: &str| v[k].as_u64().map(|n| n as u32);
        let mut links: Vec<_> = json
            .as_array()
            .expect("array of links")
            .iter()
            .map(|l| {
                let up = l["flags"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|f| f == "UP"));
                (
                    l["ifname"].as_str().expect("ifname").to_string(),
                    u32_of(l, "ifindex").expect("ifindex"),
                    up,
                    u32_of(l, "mtu"),
                    u32_of(l, "num_rx_queues"),
                    u32_of(l, "num_tx_queues"),
                )
            })
            .collect();
        links.sort();
        links
    }

    /// Live: every link of the host's namespace as `ip -j -d link` shows it
    /// (index, up flag, MTU, queue counts), whatever devices this host has.
    #[test]
    fn live_host_links_match_ip() {
        if !skewscope_test_support::Needs::new("live_host_links_match_ip")
            .tool("ip", &["-V"])
            .met()
        {
            return;
        }
        let as_tuples = |links: &[Link]| {
            let mut t: Vec<LinkFacts> = links
                .iter()
                .map(|l| {
                    (
                        l.name.clone(),
                        l.ifindex,
                        l.up,
                        l.mtu,
                        l.num_rx_queues,
                        l.num_tx_queues,
                    )
                })
                .collect();
            t.sort();
            t
        };
        // Links may come and go while other tests run: compare a dump taken
        // between two identical ones.
        let (ours, ip) = (0..5)
            .find_map(|_| {
                let before = as_tuples(&read_links_blocking().expect("RTM_GETLINK dump"));
                let ip = ip_json_links();
                let after = as_tuples(&read_links_blocking().expect("RTM_GETLINK dump"));
                (before == after).then_some((before, ip))
            })
            .expect("the host's links kept changing");
        assert_eq!(ours, ip);
        let lo = ours.iter().find(|l| l.0 == "lo").expect("lo");
        assert_eq!((lo.1, lo.3), (1, Some(65536)));
    }

    /// Live: a veth created with 4 queues in a private namespace reports them, from
    /// both the async API inside a runtime and the blocking one.
    #[test]
    fn live_veth_in_netns() {
        let pair = VethPair::new("links");
        let links = VethPair::run_in(&pair.ns_a, || {
            let blocking = read_links_blocking().expect("dump in netns");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let from_async = rt.block_on(read_links()).expect("async dump in netns");
            // Inside a runtime the blocking variant must not panic.
            let nested = rt
                .block_on(async { read_links_blocking() })
                .expect("nested");
            assert_eq!(blocking, from_async);
            assert_eq!(blocking, nested);
            blocking
        });
        let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            ["lo", DEV_A],
            "fresh namespace: lo and our veth only"
        );
        let veth = &links[1];
        assert_eq!(veth.kind.as_deref(), Some("veth"));
        assert_eq!(veth.num_rx_queues, Some(QUEUES));
        assert_eq!(veth.num_tx_queues, Some(QUEUES));
        assert!(veth.up);
        assert_eq!(veth.mtu, Some(1500));
        assert_eq!(veth.master, None);
        assert_eq!(links[0].ifindex, 1);

        // The peer lives in the other namespace.
        let peer = VethPair::run_in(&pair.ns_b, read_links_blocking).unwrap();
        assert!(peer
            .iter()
            .any(|l| l.name == DEV_B && l.kind.as_deref() == Some("veth")));
        assert!(!peer.iter().any(|l| l.name == DEV_A));
    }
}
