//! `skewscope record`: the flows the rx probe sampled in a window, as a shadow trace.

use skewscope_shadow::{FlowSample, Proto};

use crate::model::Window;

/// Flows with traffic in the window, heaviest first, weighted by packets.
pub fn trace_of(window: &Window) -> Vec<FlowSample> {
    let Some(flows) = window.listeners.as_ref().and_then(|l| l.flows.as_ref()) else {
        return Vec::new();
    };
    let mut samples: Vec<FlowSample> = flows
        .iter()
        .filter(|f| f.packets > 0)
        .filter_map(|f| {
            let proto = match f.protocol as i32 {
                libc::IPPROTO_UDP => Proto::Udp,
                libc::IPPROTO_TCP => Proto::Tcp,
                _ => return None,
            };
            Some(FlowSample {
                proto,
                saddr: f.saddr,
                sport: f.sport,
                daddr: f.daddr,
                dport: f.dport,
                weight: f.packets,
                rx_cpu: Some(f.rx_cpu),
                rx_queue: f.rx_queue,
            })
        })
        .collect();
    samples.sort_by_key(|s| std::cmp::Reverse(s.weight));
    samples
}
