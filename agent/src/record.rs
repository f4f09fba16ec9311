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
        .filter_map(shadow_sample)
        .collect();
    samples.sort_by_key(|s| std::cmp::Reverse(s.weight));
    samples
}

/// A flow the rx probe sampled, as the shadow replay takes it: weighted by its packets,
/// with the CPU and queue of its latest sampled packet. None for a protocol the replay
/// has no socket type for (the probe samples TCP and UDP only).
pub fn shadow_sample(flow: &skewscope_probes::FlowSample) -> Option<FlowSample> {
    let proto = match flow.protocol as i32 {
        libc::IPPROTO_UDP => Proto::Udp,
        libc::IPPROTO_TCP => Proto::Tcp,
        _ => return None,
    };
    Some(FlowSample {
        proto,
        saddr: flow.saddr,
        sport: flow.sport,
        daddr: flow.daddr,
        dport: flow.dport,
        weight: flow.packets,
        rx_cpu: Some(flow.rx_cpu),
        rx_queue: flow.rx_queue,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv6Addr};

    fn flow(protocol: i32, packets: u64) -> skewscope_probes::FlowSample {
        skewscope_probes::FlowSample {
            netns: 1,
            family: libc::AF_INET6 as u16,
            protocol: protocol as u8,
            saddr: IpAddr::V6(Ipv6Addr::LOCALHOST),
            sport: 40000,
            daddr: IpAddr::V6(Ipv6Addr::LOCALHOST),
            dport: 443,
            packets,
            bytes: packets * 1500,
            rx_cpu: 3,
            rx_queue: Some(2),
            ifindex: 1,
            rx_hash: None,
        }
    }

    #[test]
    fn probe_flows_become_samples_weighted_by_packets() {
        let s = shadow_sample(&flow(libc::IPPROTO_TCP, 7)).unwrap();
        assert_eq!(
            s,
            FlowSample {
                proto: Proto::Tcp,
                saddr: IpAddr::V6(Ipv6Addr::LOCALHOST),
                sport: 40000,
                daddr: IpAddr::V6(Ipv6Addr::LOCALHOST),
                dport: 443,
                weight: 7,
                rx_cpu: Some(3),
                rx_queue: Some(2),
            }
        );
        assert_eq!(
            shadow_sample(&flow(libc::IPPROTO_UDP, 1)).unwrap().proto,
            Proto::Udp
        );
        assert_eq!(shadow_sample(&flow(libc::IPPROTO_SCTP, 1)), None);
    }
}
