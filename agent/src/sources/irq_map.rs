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
    if prefix.is_empty() || prefix.ends_with('-') {
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
