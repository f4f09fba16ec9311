//! IRQ-affinity drift: each RX queue's smp_affinity against the first one this agent saw
//! (DESIGN: "IRQ affinity: drift vs baseline"). The agent only reads /proc/irq; whoever
//! moved the affinity (irqbalance, an operator, a tuning script) is told, never undone.

use std::collections::HashMap;

use crate::report::DeviceReport;

/// Per (device, queue): the affinity first seen, the last one seen and how often it moved.
#[derive(Debug, Default, Clone)]
pub struct AffinityBaselines {
    queues: HashMap<(String, u32), QueueAffinity>,
}

#[derive(Debug, Clone)]
struct QueueAffinity {
    baseline: Vec<u32>,
    last: Vec<u32>,
    changes: u64,
}

impl AffinityBaselines {
    /// Fills `affinity_baseline`, `affinity_drifted` and `affinity_changes` of every queue
    /// of `devices`, and logs each move once, in the cycle that first sees it. A queue
    /// with no IRQ affinity known (no IRQs matched) has no baseline to drift from.
    pub fn apply(&mut self, devices: &mut [DeviceReport]) {
        for dev in devices.iter_mut() {
            for q in dev.rx_queues.iter_mut().filter(|q| !q.affinity.is_empty()) {
                let seen = self
                    .queues
                    .entry((dev.name.clone(), q.queue))
                    .or_insert_with(|| QueueAffinity {
                        baseline: q.affinity.clone(),
                        last: q.affinity.clone(),
                        changes: 0,
                    });
                if seen.last != q.affinity {
                    log::warn!(
                        "{} rx queue {} (IRQs {:?}): IRQ affinity moved from CPUs {:?} to {:?} \
                         (first seen {:?}); observe-only, not reverted",
                        dev.name,
                        q.queue,
                        q.irqs,
                        seen.last,
                        q.affinity,
                        seen.baseline
                    );
                    seen.changes += 1;
                    seen.last = q.affinity.clone();
                }
                q.affinity_drifted = seen.baseline != q.affinity;
                q.affinity_baseline = Some(seen.baseline.clone());
                q.affinity_changes = seen.changes;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::RxQueueReport;

    fn device(affinity: &[&[u32]]) -> Vec<DeviceReport> {
        let rx_queues = affinity
            .iter()
            .enumerate()
            .map(|(i, a)| RxQueueReport {
                queue: i as u32,
                irqs: vec![25 + i as u32],
                irq_count: 0,
                irq_cpus: Vec::new(),
                affinity: a.to_vec(),
                effective_affinity: None,
                affinity_baseline: None,
                affinity_drifted: false,
                affinity_changes: 0,
                rps_cpus: Vec::new(),
                rx_packets: None,
                rx_bytes: None,
                source: None,
                table_share: None,
            })
            .collect();
        vec![DeviceReport {
            name: "eth0".into(),
            driver: Some("igb".into()),
            numa_node: None,
            channels: None,
            rx_queues,
            rss: None,
            indices: Default::default(),
            regime: Default::default(),
            advice: "",
            regime_transitions: 0,
            irq_cpus_off_node: Vec::new(),
            rss_shadow: Vec::new(),
        }]
    }

    #[test]
    fn a_moved_queue_drifts_from_the_first_affinity_seen_until_it_returns() {
        let mut baselines = AffinityBaselines::default();
        let mut first = device(&[&[0, 1, 2, 3], &[0, 1, 2, 3]]);
        baselines.apply(&mut first);
        assert!(first[0]
            .rx_queues
            .iter()
            .all(|q| !q.affinity_drifted && q.affinity_changes == 0));
        assert_eq!(
            first[0].rx_queues[0].affinity_baseline,
            Some(vec![0, 1, 2, 3])
        );

        let mut moved = device(&[&[1], &[0, 1, 2, 3]]);
        baselines.apply(&mut moved);
        let q0 = &moved[0].rx_queues[0];
        assert!(q0.affinity_drifted);
        assert_eq!(
            (q0.affinity_baseline.clone(), q0.affinity_changes),
            (Some(vec![0, 1, 2, 3]), 1)
        );
        assert!(!moved[0].rx_queues[1].affinity_drifted);

        // Still moved: no new change counted.
        let mut again = device(&[&[1], &[0, 1, 2, 3]]);
        baselines.apply(&mut again);
        assert_eq!(
            (
                again[0].rx_queues[0].affinity_drifted,
                again[0].rx_queues[0].affinity_changes
            ),
            (true, 1)
        );

        // Back where it started: no drift, two changes.
        let mut back = device(&[&[0, 1, 2, 3], &[0, 1, 2, 3]]);
        baselines.apply(&mut back);
        assert_eq!(
            (
                back[0].rx_queues[0].affinity_drifted,
                back[0].rx_queues[0].affinity_changes
            ),
            (false, 2)
        );
    }

    #[test]
    fn a_queue_without_known_affinity_gets_no_baseline() {
        let mut baselines = AffinityBaselines::default();
        let mut devs = device(&[&[]]);
        baselines.apply(&mut devs);
        assert_eq!(devs[0].rx_queues[0].affinity_baseline, None);
        assert!(!devs[0].rx_queues[0].affinity_drifted);
    }
}
