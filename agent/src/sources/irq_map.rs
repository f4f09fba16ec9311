//! Maps IRQ lines to (netdev, RX queue) from sysfs msi_irqs and IRQ-name patterns.
//!
//! Drivers name their queue vectors when they call request_irq(); the name is the action
//! column of /proc/interrupts. Which device an IRQ belongs to is best known from sysfs
//! (`/sys/class/net/DEV/device/msi_irqs/`); which queue it serves only from the name.
//! Name formats, by driver (drivers/net/ethernet/...):
//!
//! | driver | format | example |
//! |---|---|---|
//! | i40e, ice, iavf | `%s-%s-TxRx-%d` (driver, netdev) | `i40e-eth0-TxRx-3` |
//! | ixgbe, igb, igc, bnxt_en | `%s-TxRx-%u`, `%s-rx-%u`, `%s-tx-%u` | `eth0-TxRx-0` |
//! | ena | `%s-Tx-Rx-%d` | `eth0-Tx-Rx-5` |
//! | bnx2x | `%s-fp-%d` | `eth0-fp-2` |
//! | sfc, tg3, older bnxt_en | `%s-%d` | `eth0-0` |
//! | mlx5 | `mlx5_comp%d@pci:%s` | `mlx5_comp3@pci:0000:81:00.0` |
//! | mlx4 | `mlx4-%d@%s`, EQ index from 1 (mlx4/eq.c mlx4_assign_eq) | `mlx4-3@0000:13:00.0` |
//! | virtio_net | `%s-input.%u` / `%s-output.%u` (virtio_pci_common.c vp_request_msix_vectors) | `virtio2-input.0` |
//!
//! Not queues: `nvme0q1` (block), `i40e-0000:c3:00.0:misc`, `i40e-0000:c3:00.0:fdir-TxRx-0`
//! (a netdev name cannot contain ':', net/core/dev.c dev_valid_name), `virtio2-config`.

use std::path::Path;

use serde::Serialize;

use super::interrupts::Interrupts;
use super::HostRoot;

/// What sysfs tells about one netdev, for IRQ attribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct DeviceIrqHints {
    /// Interface name, "eth0".
    pub name: String,
    /// IRQ numbers from /sys/class/net/DEV/device/msi_irqs (for virtio: the PCI parent's).
    pub msi_irqs: Vec<u32>,
    /// Basename of the /sys/class/net/DEV/device link target: "virtio2", "0000:00:03.0".
    pub bus_name: Option<String>,
    /// PCI address of the function behind the netdev, "0000:13:00.0", when known.
    pub pci_addr: Option<String>,
}

/// Which direction a queue vector serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum QueueIrqKind {
    Rx,
    TxRx,
    Tx,
}

/// One queue vector of one netdev.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueIrq {
    pub device: String,
    pub queue: u32,
    pub irq: u32,
    pub kind: QueueIrqKind,
}

/// Who an action name says owns the queue, before looking at the devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ActionOwner {
    /// Everything before the queue suffix: the netdev name, possibly after a driver
    /// prefix ("i40e-eth0" for netdev "eth0").
    Name(String),
    /// The virtio device ("virtio2"), matched against the netdev's device link.
    Virtio(String),
    /// The PCI function ("0000:13:00.0"), matched against the netdev's PCI address.
    Pci(String),
}

/// What an action name alone says: owner, queue number and direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionQueue {
    pub owner: ActionOwner,
    pub queue: u32,
    pub kind: QueueIrqKind,
}

/// Classify one action name by the patterns in the module doc. Pure; knows no devices.
pub fn classify_action(action: &str) -> Option<ActionQueue> {
    let action = action.trim();
    if action.is_empty() {
        return None;
    }
    if let Some(q) = classify_mellanox(action) {
        return Some(q);
    }
    if let Some(q) = classify_virtio(action) {
        return Some(q);
    }
    classify_named(action)
}

fn parse_queue(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A PCI address "dddd:bb:dd.f" (domain optional).
fn looks_like_pci_addr(s: &str) -> bool {
    let (head, func) = match s.rsplit_once('.') {
        Some(x) => x,
        None => return false,
    };
    if func.is_empty() || !func.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let parts: Vec<&str> = head.split(':').collect();
    (parts.len() == 2 || parts.len() == 3)
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn classify_mellanox(action: &str) -> Option<ActionQueue> {
    // mlx5: "mlx5_comp%d@pci:%s" (mlx5/core/pci_irq.c); channel i uses comp vector i.
    if let Some(rest) = action.strip_prefix("mlx5_comp") {
        let (n, pci) = rest.split_once("@pci:")?;
        let queue = parse_queue(n)?;
        return looks_like_pci_addr(pci).then(|| ActionQueue {
            owner: ActionOwner::Pci(pci.to_string()),
            queue,
            kind: QueueIrqKind::TxRx,
        });
    }
    // mlx4: "mlx4-%d@%s" with the EQ index; EQ 0 is "mlx4-async@pci:..", so completion
    // vector (= ring) i is EQ i+1 (MLX4_EQ_TO_CQ_VECTOR).
    if let Some(rest) = action.strip_prefix("mlx4-") {
        let (n, pci) = rest.split_once('@')?;
        let eq = parse_queue(n)?;
        if eq == 0 || !looks_like_pci_addr(pci) {
            return None;
        }
        return Some(ActionQueue {
            owner: ActionOwner::Pci(pci.to_string()),
            queue: eq - 1,
            kind: QueueIrqKind::TxRx,
        });
    }
    None
}

fn classify_virtio(action: &str) -> Option<ActionQueue> {
    // "virtio%u-input.%u" / "virtio%u-output.%u" (virtio_net.c names its vqs input.N /
    // output.N; virtio_pci prefixes the virtio device name).
    let (dev, vq) = action.split_once('-')?;
    let num = dev.strip_prefix("virtio")?;
    parse_queue(num)?;
    let (kind, n) = if let Some(n) = vq.strip_prefix("input.") {
        (QueueIrqKind::Rx, n)
    } else if let Some(n) = vq.strip_prefix("output.") {
        (QueueIrqKind::Tx, n)
    } else {
        return None;
    };
    Some(ActionQueue {
        owner: ActionOwner::Virtio(dev.to_string()),
        queue: parse_queue(n)?,
        kind,
    })
}

fn classify_named(action: &str) -> Option<ActionQueue> {
    let (head, n) = action.rsplit_once('-')?;
    let queue = parse_queue(n)?;
    // Suffixes longest first: "-Tx-Rx-N" must win over "-Rx-N".
    const SUFFIXES: &[(&str, QueueIrqKind)] = &[
        ("-tx-rx", QueueIrqKind::TxRx),
        ("-txrx", QueueIrqKind::TxRx),
        ("-rxtx", QueueIrqKind::TxRx),
        ("-fp", QueueIrqKind::TxRx),
        ("-rx", QueueIrqKind::Rx),
        ("-tx", QueueIrqKind::Tx),
    ];
    let lower = head.to_ascii_lowercase();
    let (prefix, kind) = SUFFIXES
        .iter()
        .find(|(s, _)| lower.ends_with(s) && lower.len() > s.len())
        .map(|(s, k)| (&head[..head.len() - s.len()], *k))
        // "eth0-3": bnxt_en/sfc/tg3 style, one combined vector per channel.
        .unwrap_or((head, QueueIrqKind::TxRx));
    if prefix.is_empty() || prefix.starts_with('-') || prefix.ends_with('-') {
        return None;
    }
    // The netdev part is what follows the last '-' of a driver prefix, or all of it;
    // a netdev name never contains ':' or whitespace (dev_valid_name), so
    // "i40e-0000:c3:00.0:fdir" is not a netdev.
    let last = prefix.rsplit('-').next().unwrap_or(prefix);
    if last.contains(':') || prefix.chars().any(char::is_whitespace) {
        return None;
    }
    Some(ActionQueue {
        owner: ActionOwner::Name(prefix.to_string()),
        queue,
        kind,
    })
}

impl ActionOwner {
    /// Whether this owner designates `dev`.
    fn matches(&self, dev: &DeviceIrqHints) -> bool {
        match self {
            ActionOwner::Name(p) => name_matches(p, &dev.name),
            ActionOwner::Virtio(v) => dev.bus_name.as_deref() == Some(v.as_str()),
            ActionOwner::Pci(a) => dev.pci_addr.as_deref() == Some(a.as_str()),
        }
    }
}

/// "eth0" matches "eth0" and "i40e-eth0", not "veth0" nor "eth0-x".
fn name_matches(prefix: &str, dev: &str) -> bool {
    if dev.is_empty() {
        return false;
    }
    prefix == dev
        || (prefix.len() > dev.len()
            && prefix.ends_with(dev)
            && prefix.as_bytes()[prefix.len() - dev.len() - 1] == b'-')
}

/// Map numbered IRQ lines to queues of `devices`.
///
/// The device comes from msi_irqs when some device lists the IRQ (names can be stale
/// after a rename; a name owner among those devices narrows the choice, e.g. two mlx4
/// ports sharing one PCI function both list every vector). Otherwise the name owner
/// decides, among devices that have no msi_irqs listing (a device whose listing lacks
/// the IRQ does not own it). The queue number always comes from the name.
pub fn map_queue_irqs(interrupts: &Interrupts, devices: &[DeviceIrqHints]) -> Vec<QueueIrq> {
    let mut out = Vec::new();
    for (irq, line) in interrupts.numbered() {
        // Shared lines: the first action that looks like a queue speaks for the line.
        let Some(aq) = line.actions.iter().find_map(|a| classify_action(a)) else {
            continue;
        };
        let listed: Vec<&DeviceIrqHints> = devices
            .iter()
            .filter(|d| d.msi_irqs.contains(&irq))
            .collect();
        let owners: Vec<&DeviceIrqHints> = if listed.is_empty() {
            let named: Vec<&DeviceIrqHints> = devices
                .iter()
                .filter(|d| d.msi_irqs.is_empty() && aq.owner.matches(d))
                .collect();
            longest_name_matches(&aq.owner, named)
        } else {
            let by_name: Vec<&DeviceIrqHints> = listed
                .iter()
                .copied()
                .filter(|d| aq.owner.matches(d))
                .collect();
            if by_name.is_empty() {
                listed
            } else {
                longest_name_matches(&aq.owner, by_name)
            }
        };
        for d in owners {
            out.push(QueueIrq {
                device: d.name.clone(),
                queue: aq.queue,
                irq,
                kind: aq.kind,
            });
        }
    }
    out.sort_by(|a, b| {
        (&a.device, a.queue, a.kind, a.irq).cmp(&(&b.device, b.queue, b.kind, b.irq))
    });
    out
}

/// When "i40e-my-eth0" matches both "eth0" and "my-eth0", keep the longest.
fn longest_name_matches<'a>(
    owner: &ActionOwner,
    cands: Vec<&'a DeviceIrqHints>,
) -> Vec<&'a DeviceIrqHints> {
    if !matches!(owner, ActionOwner::Name(_)) {
        return cands;
    }
    let best = cands.iter().map(|d| d.name.len()).max().unwrap_or(0);
    cands.into_iter().filter(|d| d.name.len() == best).collect()
}

/// Read the hints of netdev `dev` from sysfs. Missing pieces stay empty: a virtual
/// device has no `device` link, older kernels or INTx devices have no msi_irqs.
pub fn read_hints(root: &HostRoot, dev: &str) -> DeviceIrqHints {
    let dev_link = root.sys_path(format!("class/net/{dev}/device"));
    // The link is relative ("../../../virtio2"); resolve it to see the parent directory.
    let target = std::fs::canonicalize(&dev_link)
        .or_else(|_| std::fs::read_link(&dev_link))
        .ok();
    let bus_name = target
        .as_deref()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned());
    let parent_name = target
        .as_deref()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned());
    let pci_addr = match (&bus_name, &parent_name) {
        (Some(b), _) if looks_like_pci_addr(b) => Some(b.clone()),
        // virtio: .../0000:00:03.0/virtio2 — the PCI function is the parent.
        (Some(b), Some(p)) if b.starts_with("virtio") && looks_like_pci_addr(p) => Some(p.clone()),
        _ => None,
    };
    let mut msi_irqs = list_irqs(&dev_link.join("msi_irqs"));
    if msi_irqs.is_empty() && pci_addr.is_some() && bus_name != pci_addr {
        // The virtio device itself has no msi_irqs; its PCI transport does.
        msi_irqs = list_irqs(&dev_link.join("../msi_irqs"));
    }
    DeviceIrqHints {
        name: dev.to_string(),
        msi_irqs,
        bus_name,
        pci_addr,
    }
}

/// IRQ numbers named by the entries of an msi_irqs directory; empty when absent.
fn list_irqs(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut irqs: Vec<u32> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    irqs.sort_unstable();
    irqs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::interrupts;
    use proptest::prelude::*;
    use QueueIrqKind::{Rx, Tx, TxRx};

    fn ints(name: &str) -> Interrupts {
        let path = format!(
            "{}/testdata/proc_interrupts/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        interrupts::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn dev(name: &str) -> DeviceIrqHints {
        DeviceIrqHints {
            name: name.into(),
            ..Default::default()
        }
    }

    fn q(device: &str, queue: u32, irq: u32, kind: QueueIrqKind) -> QueueIrq {
        QueueIrq {
            device: device.into(),
            queue,
            irq,
            kind,
        }
    }

    fn aq(owner: ActionOwner, queue: u32, kind: QueueIrqKind) -> Option<ActionQueue> {
        Some(ActionQueue { owner, queue, kind })
    }

    fn name(s: &str) -> ActionOwner {
        ActionOwner::Name(s.into())
    }

    #[test]
    fn classify_known_patterns() {
        assert_eq!(
            classify_action("i40e-eth0-TxRx-3"),
            aq(name("i40e-eth0"), 3, TxRx)
        );
        assert_eq!(
            classify_action("ens3f0np0-TxRx-0"),
            aq(name("ens3f0np0"), 0, TxRx)
        );
        assert_eq!(classify_action("eth0-TxRx-0"), aq(name("eth0"), 0, TxRx));
        assert_eq!(classify_action("eth0-rx-2"), aq(name("eth0"), 2, Rx));
        assert_eq!(classify_action("eth0-tx-2"), aq(name("eth0"), 2, Tx));
        assert_eq!(classify_action("eth0-Tx-Rx-5"), aq(name("eth0"), 5, TxRx));
        assert_eq!(classify_action("eth0-fp-1"), aq(name("eth0"), 1, TxRx));
        assert_eq!(classify_action("eth0-0"), aq(name("eth0"), 0, TxRx));
        assert_eq!(classify_action("fdir-TxRx-0"), aq(name("fdir"), 0, TxRx));
        assert_eq!(
            classify_action("mlx4-3@0000:13:00.0"),
            aq(ActionOwner::Pci("0000:13:00.0".into()), 2, TxRx)
        );
        assert_eq!(
            classify_action("mlx5_comp7@pci:0002:00:00.0"),
            aq(ActionOwner::Pci("0002:00:00.0".into()), 7, TxRx)
        );
        assert_eq!(
            classify_action("virtio2-input.0"),
            aq(ActionOwner::Virtio("virtio2".into()), 0, Rx)
        );
        assert_eq!(
            classify_action("virtio0-output.3"),
            aq(ActionOwner::Virtio("virtio0".into()), 3, Tx)
        );
    }

    #[test]
    fn classify_rejects_non_queues() {
        for a in [
            "",
            "nvme0q1",
            "nvme0q0",
            "i40e-0000:c3:00.0:misc",
            "i40e-0000:41:00.0:fdir-TxRx-0",
            "virtio2-config",
            "virtio5-req.0",
            "virtio3-rx",
            "virtio0-input.x",
            "mlx4-async@pci:0000:13:00.0",
            "mlx4-0@0000:13:00.0",
            "mlx4-3@nothing",
            "mlx5_async@pci:0002:00:00.0",
            "mlx5_comp3@pci:zz",
            "ena-mgmnt@pci:0000:00:05.0",
            "eth0",
            "eno2",
            "lpfc:3",
            "AMD-Vi0-Evt",
            "mpt3sas0-msix0",
            "ahci[0000:00:1f.2]",
            "-TxRx-1",
            "eth0-rx-",
            "eth0--1",
            "rmi4-00.fn34",
        ] {
            assert_eq!(classify_action(a), None, "{a:?}");
        }
    }

    #[test]
    fn i40e_1152_cpu_host_by_name() {
        let got = map_queue_irqs(
            &ints("pcp-1152cpu-x86_64-i40e.txt"),
            &[dev("eth0"), dev("enp195s0f1"), dev("fdir")],
        );
        let eth0: Vec<&QueueIrq> = got.iter().filter(|q| q.device == "eth0").collect();
        assert_eq!(eth0.len(), 94);
        for (i, e) in eth0.iter().enumerate() {
            assert_eq!(**e, q("eth0", i as u32, 679 + i as u32, TxRx));
        }
        assert_eq!(got.iter().filter(|q| q.device == "enp195s0f1").count(), 94);
        // "i40e-0000:c3:00.0:fdir-TxRx-N" is not a queue of a netdev named "fdir".
        assert_eq!(got.iter().filter(|q| q.device == "fdir").count(), 0);
        assert_eq!(got.len(), 188);
    }

    #[test]
    fn bare_fdir_name_needs_that_netdev() {
        let text = "CPU0\n 5: 1 PCI-MSI 1-edge fdir-TxRx-0\n 6: 1 PCI-MSI 2-edge eth0-TxRx-0\n";
        let i = interrupts::parse(text).unwrap();
        assert_eq!(
            map_queue_irqs(&i, &[dev("eth0")]),
            vec![q("eth0", 0, 6, TxRx)]
        );
        assert_eq!(
            map_queue_irqs(&i, &[dev("eth0"), dev("fdir")]),
            vec![q("eth0", 0, 6, TxRx), q("fdir", 0, 5, TxRx)]
        );
    }

    #[test]
    fn ena_aarch64() {
        let got = map_queue_irqs(&ints("node_exporter-aarch64-ena-8cpu.txt"), &[dev("eth0")]);
        let want: Vec<QueueIrq> = (0..8).map(|i| q("eth0", i, 58 + i, TxRx)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn mlx4_by_pci_address() {
        let ens = DeviceIrqHints {
            pci_addr: Some("0000:13:00.0".into()),
            bus_name: Some("0000:13:00.0".into()),
            ..dev("ens2")
        };
        let got = map_queue_irqs(&ints("pcp-40cpu-mlx4-ioat.txt"), &[ens, dev("eno1")]);
        let mlx: Vec<&QueueIrq> = got.iter().filter(|q| q.device == "ens2").collect();
        assert_eq!(mlx.len(), 80);
        assert_eq!(*mlx[0], q("ens2", 0, 81, TxRx));
        assert_eq!(*mlx[79], q("ens2", 79, 160, TxRx));
        let eno1: Vec<&QueueIrq> = got.iter().filter(|q| q.device == "eno1").collect();
        assert_eq!(eno1.len(), 40);
        assert_eq!(*eno1[0], q("eno1", 0, 169, TxRx));
    }

    #[test]
    fn mlx5_s390x_by_pci_address() {
        let d = DeviceIrqHints {
            pci_addr: Some("0002:00:00.0".into()),
            ..dev("enP2p0s0")
        };
        let got = map_queue_irqs(&ints("pcp-s390x-16cpu.txt"), &[d]);
        let want: Vec<QueueIrq> = (0..9).map(|i| q("enP2p0s0", i, 4 + i, TxRx)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn virtio_by_bus_name() {
        let d = DeviceIrqHints {
            bus_name: Some("virtio0".into()),
            ..dev("eth0")
        };
        let got = map_queue_irqs(
            &ints("FILTERED-allandeng-16cpu-virtio-4q.txt"),
            std::slice::from_ref(&d),
        );
        let rx: Vec<(u32, u32)> = got
            .iter()
            .filter(|q| q.kind == Rx)
            .map(|q| (q.queue, q.irq))
            .collect();
        assert_eq!(rx, vec![(0, 45), (1, 47), (2, 49), (3, 51)]);
        assert_eq!(got.iter().filter(|q| q.kind == Tx).count(), 4);

        let got = map_queue_irqs(&ints("procfs-x86-virtio-4cpu.txt"), &[d]);
        assert_eq!(got, vec![q("eth0", 0, 36, Rx), q("eth0", 0, 37, Tx)]);
        // Another virtio device's queues are not eth0's.
        let other = DeviceIrqHints {
            bus_name: Some("virtio1".into()),
            ..dev("eth1")
        };
        assert!(map_queue_irqs(&ints("procfs-x86-virtio-4cpu.txt"), &[other]).is_empty());
    }

    #[test]
    fn msi_irqs_decide_the_device() {
        let i = ints("node_exporter-aarch64-ena-8cpu.txt");
        // Renamed after the vectors were named: msi_irqs still tie them to the device.
        let renamed = DeviceIrqHints {
            msi_irqs: (57..=65).collect(),
            ..dev("ens5")
        };
        let got = map_queue_irqs(&i, &[renamed.clone(), dev("eth0")]);
        assert_eq!(got.len(), 8);
        assert!(got.iter().all(|q| q.device == "ens5"));
        assert_eq!(got[3], q("ens5", 3, 61, TxRx));
        // A device whose msi_irqs lack the IRQ does not get it by name.
        let elsewhere = DeviceIrqHints {
            msi_irqs: vec![1000],
            ..dev("eth0")
        };
        assert!(map_queue_irqs(&i, &[elsewhere]).is_empty());
        // Partial listing: listed IRQs go to the lister, the rest by name to devices
        // without a listing.
        let partial = DeviceIrqHints {
            msi_irqs: vec![58, 59],
            ..dev("ens5")
        };
        let got = map_queue_irqs(&i, &[partial, dev("eth0")]);
        assert_eq!(got.iter().filter(|q| q.device == "ens5").count(), 2);
        assert_eq!(got.iter().filter(|q| q.device == "eth0").count(), 6);
    }

    #[test]
    fn longest_netdev_name_wins() {
        let text = "CPU0\n 5: 1 PCI-MSI 1-edge i40e-my-eth0-TxRx-0\n";
        let i = interrupts::parse(text).unwrap();
        assert_eq!(
            map_queue_irqs(&i, &[dev("eth0"), dev("my-eth0"), dev("veth0")]),
            vec![q("my-eth0", 0, 5, TxRx)]
        );
    }

    #[cfg(unix)]
    #[test]
    fn read_hints_from_a_sysfs_tree() {
        use std::os::unix::fs::symlink;
        let base = std::env::temp_dir().join(format!("skewscope-irqmap-{}", std::process::id()));
        let sys = base.join("sys");
        let pci = sys.join("devices/pci0000:00/0000:00:03.0");
        std::fs::create_dir_all(pci.join("virtio2/net/eth0")).unwrap();
        std::fs::create_dir_all(pci.join("msi_irqs")).unwrap();
        for irq in ["39", "37", "38"] {
            std::fs::write(pci.join("msi_irqs").join(irq), "msix\n").unwrap();
        }
        let nic = sys.join("devices/pci0000:00/0000:13:00.0");
        std::fs::create_dir_all(nic.join("msi_irqs")).unwrap();
        std::fs::write(nic.join("msi_irqs/81"), "msix\n").unwrap();
        std::fs::create_dir_all(sys.join("class/net/ens2")).unwrap();
        std::fs::create_dir_all(sys.join("class/net/eth0")).unwrap();
        std::fs::create_dir_all(sys.join("class/net/lo")).unwrap();
        symlink(
            "../../../devices/pci0000:00/0000:00:03.0/virtio2",
            sys.join("class/net/eth0/device"),
        )
        .unwrap();
        symlink(
            "../../../devices/pci0000:00/0000:13:00.0",
            sys.join("class/net/ens2/device"),
        )
        .unwrap();
        let root = HostRoot::new(base.join("proc"), &sys);

        assert_eq!(
            read_hints(&root, "eth0"),
            DeviceIrqHints {
                name: "eth0".into(),
                msi_irqs: vec![37, 38, 39],
                bus_name: Some("virtio2".into()),
                pci_addr: Some("0000:00:03.0".into()),
            }
        );
        assert_eq!(
            read_hints(&root, "ens2"),
            DeviceIrqHints {
                name: "ens2".into(),
                msi_irqs: vec![81],
                bus_name: Some("0000:13:00.0".into()),
                pci_addr: Some("0000:13:00.0".into()),
            }
        );
        assert_eq!(read_hints(&root, "lo"), dev("lo"));
        assert_eq!(read_hints(&root, "absent"), dev("absent"));
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// Live: the queue IRQs found for every NIC of this host (those with MSI
    /// vectors in sysfs) are among its own vectors, name a queue it has, and
    /// their /proc/interrupts action classifies back to that queue.
    #[test]
    fn live_host_nics() {
        let root = HostRoot::default();
        let hints: Vec<DeviceIrqHints> = crate::sources::testns::nic_drivers()
            .iter()
            .map(|(dev, _)| read_hints(&root, dev))
            .filter(|h| !h.msi_irqs.is_empty())
            .collect();
        if !skewscope_test_support::Needs::new("live_host_nics")
            .that(!hints.is_empty(), "needs a NIC with MSI vectors")
            .met()
        {
            return;
        }
        // /proc/interrupts exists on every Linux with procfs.
        let i = interrupts::read(&root).expect("/proc/interrupts");
        let got = map_queue_irqs(&i, &hints);
        for q in &got {
            let h = hints.iter().find(|h| h.name == q.device).unwrap();
            assert!(h.msi_irqs.contains(&q.irq), "{q:?} not in {h:?}");
            let queues = std::fs::read_dir(format!("/sys/class/net/{}/queues", q.device))
                .unwrap()
                .count() as u32;
            assert!(q.queue < queues, "{q:?}: {queues} queue dirs");
            let line = i.get(q.irq).unwrap();
            assert!(
                line.actions
                    .iter()
                    .filter_map(|a| classify_action(a))
                    .any(|aq| aq.queue == q.queue && aq.kind == q.kind),
                "{q:?}: {line:?}"
            );
        }
        // A NIC whose own vectors carry queue-style names gets queues mapped.
        for h in &hints {
            let named = h.msi_irqs.iter().any(|irq| {
                i.get(*irq)
                    .is_some_and(|l| l.actions.iter().any(|a| classify_action(a).is_some()))
            });
            assert_eq!(
                named,
                got.iter().any(|q| q.device == h.name),
                "{h:?}: {got:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn classify_never_panics(s in "\\PC*") {
            let _ = classify_action(&s);
        }

        #[test]
        fn classify_structured_never_panics(s in "[a-z0-9@:._-]{0,12}(-(TxRx|Tx-Rx|rx|tx|fp|input\\.|output\\.))?-?[0-9]{0,12}") {
            let _ = classify_action(&s);
        }

        #[test]
        fn map_never_panics(actions in proptest::collection::vec("[a-z0-9@:.-]{0,16}", 0..6),
                            names in proptest::collection::vec("[a-z0-9-]{0,6}", 0..4),
                            msi in proptest::collection::vec(0u32..8, 0..4)) {
            let mut text = String::from("CPU0\n");
            for (n, a) in actions.iter().enumerate() {
                text.push_str(&format!("{n}: 1 PCI-MSI {n}-edge {a}\n"));
            }
            let i = interrupts::parse(&text).unwrap();
            let devs: Vec<DeviceIrqHints> = names
                .iter()
                .map(|n| DeviceIrqHints { name: n.clone(), msi_irqs: msi.clone(), ..Default::default() })
                .collect();
            let _ = map_queue_irqs(&i, &devs);
        }
    }
}
