//! Regimes, listener estimators and P_hot over finished indices: the observe-only
//! controller states of the field notes. Reported as advice; nothing here acts.

use std::collections::HashMap;

use super::estimator::{EstimatorConfig, ListenerEstimator, ListenerObservation};
use super::hotspot::{self, HotspotConfig, HotspotFeatures};
use super::regime::{
    DeviceInputs, DeviceRegimeMachine, GroupInputs, GroupRegime, GroupRegimeMachine, Regime,
    RegimeConfig,
};
use super::ModelConfig;
use crate::report::{Report, TransitionEvent};

/// Machines and estimators, one per group, device and listener, kept across cycles.
#[derive(Debug, Default, Clone)]
pub struct StateMachines {
    cycle: u64,
    groups: HashMap<String, GroupRegimeMachine>,
    devices: HashMap<String, DeviceRegimeMachine>,
    listeners: HashMap<u64, ListenerEstimator>,
}

/// Settings of the controller-state layer.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StatesConfig {
    pub regime: RegimeConfig,
    pub hotspot: HotspotConfig,
    pub estimator: EstimatorConfig,
    /// The p95 ingress-age budget of hot queues (µs) HAF95 is measured against.
    pub haf95_target_us: f64,
}

/// Fill regimes, P_hot and listener states into `report`, and list this cycle's
/// transitions (also logged with the indices that triggered them).
pub fn apply(report: &mut Report, cfg: &ModelConfig, sm: &mut StateMachines) {
    sm.cycle += 1;
    let cycle = sm.cycle;
    let cycle_secs = report.window_secs.filter(|s| *s > 0.0).unwrap_or(1.0);
    let states = &cfg.states;
    let mut transitions = Vec::new();

    for g in report.reuseport_groups.iter_mut() {
        let volumes: Vec<u64> = g.top_flows.iter().map(|f| f.packets).collect();
        let target = cfg.listener.ingress_age_target_us;
        let dlg_over_target = g
            .indices
            .dlg_us
            .filter(|_| target > 0.0)
            .map(|d| d / target);
        let (lqd_entries, lqd_bytes) = match g.protocol {
            "tcp" => (g.indices.lqd, None),
            _ => (None, g.indices.lqd),
        };
        g.p_hot = hotspot::p_hot(
            &HotspotFeatures {
                lsi: g.indices.lsi,
                hcr_1: g.indices.hcr_1,
                lqd_entries,
                lqd_bytes,
                bci: g.indices.bci,
                dlg_over_target,
                top_flow_entropy: hotspot::top_flow_entropy(&volumes),
            },
            &states.hotspot,
        );
        let key = group_key(g);
        let machine = sm.groups.entry(key.clone()).or_default();
        // listener::group_reports sets LSI exactly when the probe's events were read:
        // without them the group gets no colour rather than a GREEN from zeroes (issue 11:
        // 6.1 guests read GREEN while one socket took 2060 of 4520 datagrams). The machine
        // is left as it was and resumes when events return.
        if g.indices.lsi.is_none() {
            g.regime = GroupRegime::Unknown;
        } else {
            let inputs = GroupInputs {
                lsi: g.indices.lsi,
                hcr_1: g.indices.hcr_1,
                lqd_entries,
                lqd_bytes,
                bci: g.indices.bci,
                dlg_us: g.indices.dlg_us,
                dlg_target_us: target,
                p_hot: g.p_hot,
            };
            if let Some(t) = machine.update(cycle, cycle_secs, &inputs, &states.regime) {
                log::info!("reuseport group {key}: {t}");
                transitions.push(TransitionEvent {
                    scope: "reuseport_group",
                    key,
                    from: t.from.name(),
                    to: t.to.name(),
                    reason: t.reason.clone(),
                });
            }
            g.regime = machine.state();
        }
        g.advice = g.regime.advice();
        g.regime_transitions = machine.transitions_total();

        for l in g.listeners.iter_mut() {
            // Not measured: no rate estimate from a made-up zero.
            let Some(events) = l.events else {
                l.state = None;
                continue;
            };
            let est = sm
                .listeners
                .entry(l.inode)
                .or_insert_with(|| ListenerEstimator::new(&states.estimator));
            l.state = Some(est.update(
                cycle_secs,
                &ListenerObservation {
                    events,
                    queue_depth: l.queue_depth as f64,
                    queue_counts_events: g.protocol == "tcp",
                },
            ));
        }
    }

    let spi = report.host.indices.spi;
    for d in report.devices.iter_mut() {
        let machine = sm.devices.entry(d.name.clone()).or_default();
        // SPI is host-wide: it speaks for a device only when RSS can spread its load, so a
        // single-queue device is never called polarized for the host's CPU skew.
        let inputs = DeviceInputs {
            qpi: d.indices.qpi,
            isi_normalized: d.indices.isi_normalized,
            spi: spi.filter(|_| d.rx_queues.len() > 1),
            haf95_us: d.indices.haf95_us,
            haf95_target_us: states.haf95_target_us,
        };
        if let Some(t) = machine.update(cycle, cycle_secs, &inputs, &states.regime) {
            log::info!("device {}: {t}", d.name);
            transitions.push(TransitionEvent {
                scope: "device",
                key: d.name.clone(),
                from: t.from.name(),
                to: t.to.name(),
                reason: t.reason.clone(),
            });
        }
        d.regime = machine.state();
        d.advice = machine.state().advice();
        d.regime_transitions = machine.transitions_total();
    }

    // Forget listeners that left every group (restarts create new inodes), and groups and
    // devices gone from the report (deleted namespaces, unplugged veths): churn must not
    // grow these maps.
    let live: std::collections::HashSet<u64> = report
        .reuseport_groups
        .iter()
        .flat_map(|g| g.listeners.iter().map(|l| l.inode))
        .collect();
    sm.listeners.retain(|inode, _| live.contains(inode));
    let groups: std::collections::HashSet<String> =
        report.reuseport_groups.iter().map(group_key).collect();
    sm.groups.retain(|k, _| groups.contains(k));
    sm.devices
        .retain(|name, _| report.devices.iter().any(|d| &d.name == name));
    report.transitions = transitions;
}

fn group_key(g: &crate::report::ReuseportGroupReport) -> String {
    format!("{}/{}/{}:{}", g.netns, g.protocol, g.address, g.port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{GroupIndices, HostIndices, HostReport, ReuseportGroupReport};

    fn group(port: u16, lsi: Option<f64>) -> ReuseportGroupReport {
        ReuseportGroupReport {
            netns: 1,
            protocol: "udp",
            address: "10.11.0.2".into(),
            port,
            reuseport_id: None,
            listeners: Vec::new(),
            top_flows: Vec::new(),
            indices: GroupIndices {
                lsi,
                ..Default::default()
            },
            regime: GroupRegime::default(),
            advice: "",
            p_hot: None,
            regime_transitions: 0,
            membership_changes: 0,
        }
    }

    fn report(groups: Vec<ReuseportGroupReport>) -> Report {
        Report {
            schema: crate::report::SNAPSHOT_SCHEMA,
            window_secs: Some(8.0),
            cpus: Vec::new(),
            devices: Vec::new(),
            reuseport_groups: groups,
            host: HostReport {
                indices: HostIndices::default(),
                sysctls: None,
            },
            transitions: Vec::new(),
            sources: Vec::new(),
            shadow: Vec::new(),
            probe_sampling: None,
        }
    }

    /// A group gone from the report leaves the machines (namespaces come and go).
    #[test]
    fn gone_groups_leave_the_machines() {
        let cfg = ModelConfig::default();
        let mut sm = StateMachines::default();
        apply(
            &mut report(vec![group(7000, Some(0.1)), group(7001, Some(0.1))]),
            &cfg,
            &mut sm,
        );
        assert_eq!(sm.groups.len(), 2);
        apply(&mut report(vec![group(7001, Some(0.1))]), &cfg, &mut sm);
        assert_eq!(
            sm.groups.keys().collect::<Vec<_>>(),
            vec!["1/udp/10.11.0.2:7001"]
        );
    }

    /// The 6.1 guest of issue 11: events unmeasured must not read GREEN, while a group
    /// with events keeps its machine's colour (balanced: GREEN; hot: ORANGE).
    #[test]
    fn a_group_without_measured_events_has_no_colour() {
        let cfg = ModelConfig::default();
        let mut sm = StateMachines::default();
        let mut r = report(vec![
            group(7000, None),
            group(7001, Some(0.0)),
            group(7002, Some(0.95)),
        ]);
        apply(&mut r, &cfg, &mut sm);
        let regimes: Vec<&str> = r.reuseport_groups.iter().map(|g| g.regime.name()).collect();
        assert_eq!(regimes, ["UNKNOWN", "GREEN", "ORANGE"]);
        assert_eq!(r.reuseport_groups[0].advice, GroupRegime::Unknown.advice());
        let json = serde_json::to_value(&r.reuseport_groups[0]).unwrap();
        assert_eq!(json["regime"], "UNKNOWN");
        assert_eq!(
            r.transitions.len(),
            1,
            "only the hot group moved: {:?}",
            r.transitions
        );

        // Events lost after the group went hot: UNKNOWN, not a stale ORANGE; back when
        // they return.
        let mut r = report(vec![group(7002, None)]);
        apply(&mut r, &cfg, &mut sm);
        assert_eq!(r.reuseport_groups[0].regime, GroupRegime::Unknown);
        let mut r = report(vec![group(7002, Some(0.95))]);
        apply(&mut r, &cfg, &mut sm);
        assert_eq!(r.reuseport_groups[0].regime, GroupRegime::Orange);
    }
}
