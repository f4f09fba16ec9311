//! The topology fingerprint of a recording and the differences that invalidate a
//! comparison: driver, queue count, channels, indirection table, hash key and function,
//! IRQ affinity, group size. Kernel, sysctls, agent version and config are differences
//! worth saying but do not invalidate it; host names never are (canary vs control).

use std::collections::{BTreeMap, BTreeSet};

use super::file::{DeviceFingerprint, Fingerprint, GroupFingerprint};
use super::host::sha256;
use super::view::{DeviceView, GroupView, ReportView};

/// The fingerprint of one report, plus what the baseline read itself.
pub fn of_report(
    view: &ReportView,
    kernel: Option<String>,
    config_hash: Option<String>,
) -> Fingerprint {
    Fingerprint {
        kernel,
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        config_hash,
        sysctls: view.host.sysctls.clone().unwrap_or_default(),
        devices: view.devices.iter().map(device).collect(),
        groups: view.reuseport_groups.iter().map(group).collect(),
    }
}

fn device(d: &DeviceView) -> DeviceFingerprint {
    let rss = d.rss.as_ref();
    DeviceFingerprint {
        name: d.name.clone(),
        driver: d.driver.clone(),
        rx_queues: d.rx_queues.len(),
        channels: d.channels.clone(),
        table_hash: rss.filter(|r| !r.indirection.is_empty()).map(|r| {
            let text: Vec<String> = r.indirection.iter().map(u32::to_string).collect();
            sha256(text.join(",").as_bytes())
        }),
        key_hash: rss
            .and_then(|r| r.key_hex.as_deref())
            .map(|k| sha256(k.as_bytes())),
        hfunc: rss.and_then(|r| r.hfunc.clone()),
        irq_affinity: d
            .rx_queues
            .iter()
            .filter(|q| !q.affinity.is_empty() || q.effective_affinity.is_some())
            .map(|q| {
                let cpus = q.effective_affinity.as_ref().unwrap_or(&q.affinity);
                (q.queue, cpu_list(cpus))
            })
            .collect(),
    }
}

/// Owner commands of a group's listeners, sorted and deduplicated.
pub fn owners(g: &GroupView) -> Vec<String> {
    g.listeners
        .iter()
        .filter_map(|l| l.comm.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn group(g: &GroupView) -> GroupFingerprint {
    GroupFingerprint {
        protocol: g.protocol.clone(),
        address: g.address.clone(),
        port: g.port,
        netns: g.netns,
        listeners: g.listeners.len(),
        owners: owners(g),
    }
}

/// "0-3,8,10-11" (the kernel's cpulist format).
pub fn cpu_list(cpus: &[u32]) -> String {
    let mut v = cpus.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let start = v[i];
        let mut end = start;
        while i + 1 < v.len() && v[i + 1] == end + 1 {
            i += 1;
            end = v[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

/// What differs between two fingerprints of one device and invalidates a comparison.
pub fn device_changes(before: &DeviceFingerprint, after: &DeviceFingerprint) -> Vec<String> {
    let mut out = Vec::new();
    let name = if before.name == after.name {
        before.name.clone()
    } else {
        format!("{}/{}", before.name, after.name)
    };
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    if before.driver != after.driver {
        out.push(format!(
            "{name}: driver {} → {}",
            opt(&before.driver),
            opt(&after.driver)
        ));
    }
    if before.rx_queues != after.rx_queues {
        out.push(format!(
            "{name}: RX queues {} → {}",
            before.rx_queues, after.rx_queues
        ));
    }
    if before.channels != after.channels && before.channels.is_some() && after.channels.is_some() {
        out.push(format!(
            "{name}: channels {} → {}",
            channels(&before.channels),
            channels(&after.channels)
        ));
    }
    if before.table_hash != after.table_hash {
        out.push(format!("{name}: RSS indirection table changed"));
    }
    if before.key_hash != after.key_hash {
        out.push(format!("{name}: RSS hash key changed"));
    }
    if before.hfunc != after.hfunc {
        out.push(format!(
            "{name}: RSS hash function {} → {}",
            opt(&before.hfunc),
            opt(&after.hfunc)
        ));
    }
    if before.irq_affinity != after.irq_affinity {
        let queues: Vec<String> = before
            .irq_affinity
            .keys()
            .chain(after.irq_affinity.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|q| before.irq_affinity.get(q) != after.irq_affinity.get(q))
            .map(|q| {
                format!(
                    "queue {q} {} → {}",
                    before.irq_affinity.get(q).map_or("-", String::as_str),
                    after.irq_affinity.get(q).map_or("-", String::as_str)
                )
            })
            .collect();
        out.push(format!("{name}: IRQ affinity {}", queues.join(", ")));
    }
    out
}

fn channels(c: &Option<super::view::ChannelsView>) -> String {
    let Some(c) = c else { return "-".into() };
    let n = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
    format!("rx {} tx {} combined {}", n(c.rx), n(c.tx), n(c.combined))
}

/// Differences of the recording's surroundings that are said but do not invalidate it.
pub fn notes(before: &Fingerprint, after: &Fingerprint) -> Vec<String> {
    let mut out = Vec::new();
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    if before.kernel != after.kernel {
        out.push(format!(
            "kernel {} → {}",
            opt(&before.kernel),
            opt(&after.kernel)
        ));
    }
    if before.agent_version != after.agent_version {
        out.push(format!(
            "agent {} → {}",
            before.agent_version, after.agent_version
        ));
    }
    if before.config_hash != after.config_hash {
        out.push("config file differs (config_hash)".into());
    }
    let knobs: BTreeSet<&String> = before.sysctls.keys().chain(after.sysctls.keys()).collect();
    for k in knobs {
        let (b, a) = (before.sysctls.get(k), after.sysctls.get(k));
        if b != a {
            let v = |x: Option<&Option<i64>>| {
                x.copied()
                    .flatten()
                    .map_or("-".to_string(), |v| v.to_string())
            };
            out.push(format!("sysctl {k} {} → {}", v(b), v(a)));
        }
    }
    out
}

/// Topology changes between the first and the last report of one recording (one host:
/// devices by name, groups by namespace, protocol, address and port).
pub fn changes_during(first: &Fingerprint, last: &Fingerprint) -> Vec<String> {
    let mut out = Vec::new();
    let last_devices: BTreeMap<&str, &DeviceFingerprint> =
        last.devices.iter().map(|d| (d.name.as_str(), d)).collect();
    for d in &first.devices {
        if let Some(l) = last_devices.get(d.name.as_str()) {
            out.extend(device_changes(d, l));
        }
    }
    let key = |g: &GroupFingerprint| (g.netns, g.protocol.clone(), g.address.clone(), g.port);
    let last_groups: BTreeMap<_, &GroupFingerprint> =
        last.groups.iter().map(|g| (key(g), g)).collect();
    for g in &first.groups {
        if let Some(l) = last_groups.get(&key(g)) {
            if l.listeners != g.listeners {
                out.push(format!(
                    "{} {}:{} (netns {}): group size {} → {}",
                    g.protocol, g.address, g.port, g.netns, g.listeners, l.listeners
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_collapse_runs() {
        assert_eq!(cpu_list(&[3, 0, 1, 2, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(cpu_list(&[5]), "5");
        assert_eq!(cpu_list(&[]), "");
        assert_eq!(cpu_list(&[1, 1, 2]), "1-2");
    }

    fn dev() -> DeviceFingerprint {
        DeviceFingerprint {
            name: "eth0".into(),
            driver: Some("ixgbe".into()),
            rx_queues: 8,
            channels: None,
            table_hash: Some("sha256:a".into()),
            key_hash: Some("sha256:k".into()),
            hfunc: Some("toeplitz".into()),
            irq_affinity: [(0, "0".into()), (1, "1".into())].into(),
        }
    }

    #[test]
    fn device_changes_name_each_invalidating_difference() {
        assert!(device_changes(&dev(), &dev()).is_empty());
        let mut after = dev();
        after.driver = Some("i40e".into());
        after.rx_queues = 4;
        after.table_hash = Some("sha256:b".into());
        after.irq_affinity.insert(1, "2".into());
        let c = device_changes(&dev(), &after);
        assert_eq!(
            c,
            [
                "eth0: driver ixgbe → i40e",
                "eth0: RX queues 8 → 4",
                "eth0: RSS indirection table changed",
                "eth0: IRQ affinity queue 1 1 → 2",
            ]
        );
    }

    #[test]
    fn kernel_and_sysctls_are_notes_not_changes() {
        let before = Fingerprint {
            kernel: Some("6.1.0".into()),
            agent_version: "0.1.0".into(),
            sysctls: [("netdev_budget".into(), Some(300))].into(),
            ..Default::default()
        };
        let mut after = before.clone();
        after.kernel = Some("6.12.0".into());
        after.sysctls.insert("netdev_budget".into(), Some(600));
        assert_eq!(
            notes(&before, &after),
            ["kernel 6.1.0 → 6.12.0", "sysctl netdev_budget 300 → 600"]
        );
    }
}
