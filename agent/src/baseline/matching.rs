//! Pairing the groups and devices of two baselines: by what survives a restart (owner,
//! address, port) and a move to another host (owner, port), never by chance.

use serde::Serialize;

use super::file::{DeviceBaseline, GroupBaseline};

/// How a group or device of one side was paired with one of the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchMethod {
    /// Same host and network namespace, protocol, address and port.
    SameNetns,
    /// Protocol, address, port and owner commands (a restart: the namespace changed).
    Owner,
    /// Protocol, port and owner commands; the address differs (another host).
    OwnerAnyAddress,
    /// Protocol, address and port; owners differ or are unknown.
    Address,
    /// Protocol and port, the only such group on each side.
    PortOnly,
    /// Devices: the same name.
    DeviceName,
    /// Devices: driver and RX queue count, the only such device on each side.
    DeviceDriver,
}

impl MatchMethod {
    pub fn describe(self) -> &'static str {
        match self {
            MatchMethod::SameNetns => "same host and netns, protocol, address, port",
            MatchMethod::Owner => {
                "protocol, address, port, owner (netns differs: restart or other host)"
            }
            MatchMethod::OwnerAnyAddress => "protocol, port, owner (address differs)",
            MatchMethod::Address => "protocol, address, port (owners differ or unknown)",
            MatchMethod::PortOnly => "protocol, port (the only such group on each side)",
            MatchMethod::DeviceName => "device name",
            MatchMethod::DeviceDriver => "driver and RX queue count (name differs)",
        }
    }
}

/// Pairs of (before index, after index, method); the rest unmatched on either side.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matching {
    pub pairs: Vec<(usize, usize, MatchMethod)>,
    pub unmatched_before: Vec<usize>,
    pub unmatched_after: Vec<usize>,
}

/// Pairs groups by what survives a restart and a move to another host, strictest first.
/// At each level a pair is made only when each side is the other's only candidate, so an
/// ambiguous group is never paired by chance.
pub fn match_groups(
    before: &[&GroupBaseline],
    after: &[&GroupBaseline],
    same_host: bool,
) -> Matching {
    type Rule = fn(&GroupBaseline, &GroupBaseline, bool) -> bool;
    let rules: [(MatchMethod, Rule); 5] = [
        (MatchMethod::SameNetns, |b, a, same_host| {
            same_host
                && b.netns == a.netns
                && b.protocol == a.protocol
                && b.address == a.address
                && b.port == a.port
        }),
        (MatchMethod::Owner, |b, a, _| {
            b.protocol == a.protocol
                && b.address == a.address
                && b.port == a.port
                && !b.owners.is_empty()
                && b.owners == a.owners
        }),
        (MatchMethod::OwnerAnyAddress, |b, a, _| {
            b.protocol == a.protocol
                && b.port == a.port
                && !b.owners.is_empty()
                && b.owners == a.owners
        }),
        (MatchMethod::Address, |b, a, _| {
            b.protocol == a.protocol && b.address == a.address && b.port == a.port
        }),
        (MatchMethod::PortOnly, |b, a, _| {
            b.protocol == a.protocol && b.port == a.port
        }),
    ];
    let rules: Vec<PairRule<'_>> = rules
        .into_iter()
        .map(|(m, rule)| {
            let f: Box<dyn Fn(usize, usize) -> bool> =
                Box::new(move |i, j| rule(before[i], after[j], same_host));
            (m, f)
        })
        .collect();
    pair_up(before.len(), after.len(), &rules)
}

/// Devices by name, then by driver and queue count.
pub fn match_devices(before: &[&DeviceBaseline], after: &[&DeviceBaseline]) -> Matching {
    let queues = |d: &DeviceBaseline| d.queues.len();
    let rules: Vec<PairRule<'_>> = vec![
        (
            MatchMethod::DeviceName,
            Box::new(|i: usize, j: usize| before[i].name == after[j].name),
        ),
        (
            MatchMethod::DeviceDriver,
            Box::new(move |i: usize, j: usize| {
                before[i].driver.is_some()
                    && before[i].driver == after[j].driver
                    && queues(before[i]) == queues(after[j])
            }),
        ),
    ];
    pair_up(before.len(), after.len(), &rules)
}

type PairRule<'a> = (MatchMethod, Box<dyn Fn(usize, usize) -> bool + 'a>);

fn pair_up(nb: usize, na: usize, rules: &[PairRule<'_>]) -> Matching {
    let mut b_free: Vec<bool> = vec![true; nb];
    let mut a_free: Vec<bool> = vec![true; na];
    let mut pairs = Vec::new();
    for (method, rule) in rules {
        let mut found = Vec::new();
        for i in (0..nb).filter(|&i| b_free[i]) {
            let cands: Vec<usize> = (0..na).filter(|&j| a_free[j] && rule(i, j)).collect();
            if let [j] = cands[..] {
                let rivals = (0..nb).filter(|&k| b_free[k] && rule(k, j)).count();
                if rivals == 1 {
                    found.push((i, j));
                }
            }
        }
        for (i, j) in found {
            b_free[i] = false;
            a_free[j] = false;
            pairs.push((i, j, *method));
        }
    }
    pairs.sort_by_key(|&(i, j, _)| (i, j));
    Matching {
        pairs,
        unmatched_before: (0..nb).filter(|&i| b_free[i]).collect(),
        unmatched_after: (0..na).filter(|&j| a_free[j]).collect(),
    }
}
