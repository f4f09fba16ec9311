//! Replay throughput: flow samples per second through the UDP replica under
//! the kernel default and builtin:cpu (target: >= 100k samples/s), plus a
//! smaller TCP figure. Needs root (private network namespace, BPF); prints
//! why it skips otherwise.
//!
//! `cargo bench -p skewscope-shadow --bench replay` (SHADOW_BENCH_FLOWS
//! overrides the 200k samples).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use skewscope_shadow::{
    replay, replay_privileges, selectors_built, Builtin, Candidate, FlowSample, Proto,
    ReplayOptions,
};

fn trace(proto: Proto, flows: usize, cpus: &[u32]) -> Vec<FlowSample> {
    (0..flows)
        .map(|i| {
            // 50 flows per source address, distinct 4-tuples throughout.
            FlowSample {
                proto,
                saddr: IpAddr::V4(Ipv4Addr::from(0x0a00_0001 + (i / 50) as u32)),
                sport: 10_000 + (i % 50) as u16,
                daddr: IpAddr::V4(Ipv4Addr::new(10, 255, 0, 9)),
                dport: 8125,
                // Zipf-like weights: a few heavy flows, a long tail.
                weight: 1 + 100_000 / (i as u64 + 1),
                rx_cpu: Some(cpus[i % cpus.len()]),
                rx_queue: None,
            }
        })
        .collect()
}

fn allowed_cpus() -> Vec<u32> {
    // SAFETY: zeroed cpu_set_t, pid 0 = this thread.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    assert_eq!(rc, 0);
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .map(|c| c as u32)
        .collect()
}

fn bench(proto: Proto, flows: usize) {
    let cpus = allowed_cpus();
    let samples = trace(proto, flows, &cpus);
    let distinct: std::collections::HashSet<_> =
        samples.iter().map(|f| (f.saddr, f.sport)).collect();
    assert_eq!(
        distinct.len(),
        samples.len(),
        "bench trace must hold distinct flows"
    );
    let opts = ReplayOptions::default();
    let started = Instant::now();
    let report = replay(&samples, &[Candidate::Builtin(Builtin::Cpu)], &opts).expect("replay");
    let wall = started.elapsed();
    println!(
        "shadow replay {proto}: {flows} samples, {} sockets, {} CPUs, wall {:.3}s (incl. namespace, BTF, verifier)",
        opts.sockets,
        cpus.len(),
        wall.as_secs_f64()
    );
    for policy in &report.policies {
        assert!(
            policy.error.is_none(),
            "{}: {:?}",
            policy.policy,
            policy.error
        );
        let secs = policy.replay_duration.as_secs_f64();
        let delivered: usize = policy.sockets.iter().map(|s| s.flows).sum();
        println!(
            "  {:<12} {:>9.0} samples/s  ({:.3}s, {} delivered, {} dropped, LSI {:.3})",
            policy.policy,
            flows as f64 / secs,
            secs,
            delivered,
            policy.dropped_flows,
            policy.lsi.unwrap_or(f64::NAN)
        );
    }
}

fn main() {
    // `cargo test --benches` runs this binary with --bench absent: keep it quick.
    let full = std::env::args().any(|a| a == "--bench");
    let reason = if !selectors_built() {
        Some("BPF objects not built (clang missing at build time)".to_owned())
    } else {
        replay_privileges().err()
    };
    if let Some(reason) = reason {
        println!("skipping shadow replay bench: {reason}");
        return;
    }
    let flows: usize = std::env::var("SHADOW_BENCH_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 200_000 } else { 2_000 });
    bench(Proto::Udp, flows);
    bench(Proto::Tcp, (flows / 10).max(1));
}
