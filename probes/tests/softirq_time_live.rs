//! Privileged live tests of the softirq_time probe: it really loads and
//! attaches on the running kernel (raw tracepoints irq:softirq_entry/exit,
//! Linux 4.17+) and is checked against /proc/softirqs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::UdpSocket;
use std::thread;
use std::time::{Duration, Instant};

use skewscope_probes::{CpuSoftirqTime, SoftirqTimeProbe};

const DATAGRAMS: usize = 20_000;

/// NET_RX column per CPU id from /proc/softirqs (header "CPU0 CPU1 ...",
/// row "NET_RX: n0 n1 ...").
fn proc_net_rx() -> BTreeMap<u32, u64> {
    let text = fs::read_to_string("/proc/softirqs").expect("read /proc/softirqs");
    let mut lines = text.lines();
    let cpus: Vec<u32> = lines
        .next()
        .expect("header line")
        .split_whitespace()
        .map(|c| c.trim_start_matches("CPU").parse().expect("CPU id"))
        .collect();
    let row = lines
        .find_map(|l| l.trim_start().strip_prefix("NET_RX:"))
        .expect("NET_RX row");
    let counts: Vec<u64> = row
        .split_whitespace()
        .map(|n| n.parse().expect("count"))
        .collect();
    assert_eq!(cpus.len(), counts.len(), "malformed /proc/softirqs");
    cpus.into_iter().zip(counts).collect()
}

fn probe_net_rx(stats: &[CpuSoftirqTime]) -> BTreeMap<u32, (u64, u64)> {
    stats
        .iter()
        .map(|s| (s.cpu, (s.net_rx_count, s.net_rx_ns)))
        .collect()
}

/// Sends DATAGRAMS small datagrams over loopback; each one goes through
/// netif_rx -> NET_RX softirq on the sending CPU. A bounded loop.
fn loopback_udp_burst() {
    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind receiver");
    rx.set_nonblocking(true).expect("nonblocking");
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    tx.connect(rx.local_addr().expect("receiver addr"))
        .expect("connect");
    let payload = [0x5au8; 64];
    let mut buf = [0u8; 128];
    for i in 0..DATAGRAMS {
        tx.send(&payload).expect("send datagram");
        if i % 64 == 63 {
            while rx.recv(&mut buf).is_ok() {}
        }
    }
    while rx.recv(&mut buf).is_ok() {}
}

#[test]
fn net_rx_count_matches_proc_softirqs() {
    if !common::can_run_privileged("net_rx_count_matches_proc_softirqs") {
        return;
    }
    let probe = SoftirqTimeProbe::load().expect("load softirq_time");

    // Probe window encloses the /proc window: p0, s0 ... s1, p1.
    let probe_before = probe_net_rx(&probe.read().expect("read probe"));
    let proc_before = proc_net_rx();
    loopback_udp_burst();
    let proc_after = proc_net_rx();
    let probe_after = probe_net_rx(&probe.read().expect("read probe"));

    let mut proc_total = 0;
    let mut probe_total = 0;
    let mut ns_total = 0;
    for (cpu, proc_now) in &proc_after {
        let proc_delta = proc_now - proc_before[cpu];
        let (count_now, ns_now) = probe_after[cpu];
        let (count_then, ns_then) = probe_before[cpu];
        let probe_delta = count_now - count_then;
        let ns_delta = ns_now - ns_then;
        eprintln!(
            "cpu{cpu}: /proc/softirqs NET_RX delta {proc_delta}, probe delta {probe_delta}, \
             probe time {ns_delta} ns"
        );
        let tolerance = (proc_delta / 50).max(5);
        assert!(
            probe_delta.abs_diff(proc_delta) <= tolerance,
            "cpu{cpu}: probe NET_RX delta {probe_delta} vs /proc/softirqs {proc_delta} \
             (tolerance {tolerance})"
        );
        if probe_delta > 0 {
            assert!(ns_delta > 0, "cpu{cpu}: {probe_delta} runs but 0 ns");
        }
        proc_total += proc_delta;
        probe_total += probe_delta;
        ns_total += ns_delta;
    }
    eprintln!(
        "total: /proc/softirqs NET_RX delta {proc_total}, probe delta {probe_total}, \
         probe time {ns_total} ns for {DATAGRAMS} datagrams"
    );
    // The burst must actually have produced NET_RX runs for the check to mean anything.
    assert!(
        proc_total >= (DATAGRAMS / 10) as u64,
        "only {proc_total} NET_RX runs for {DATAGRAMS} loopback datagrams"
    );
    assert!(ns_total > 0, "NET_RX time not measured");
}

#[test]
fn read_covers_every_cpu_of_proc_softirqs() {
    if !common::can_run_privileged("read_covers_every_cpu_of_proc_softirqs") {
        return;
    }
    let probe = SoftirqTimeProbe::load().expect("load softirq_time");
    let cpus: BTreeSet<u32> = probe
        .read()
        .expect("read probe")
        .iter()
        .map(|s| s.cpu)
        .collect();
    // /proc/softirqs lists the possible CPUs (fs/proc/softirqs.c), as does read().
    let proc_cpus: BTreeSet<u32> = proc_net_rx().into_keys().collect();
    assert_eq!(cpus, proc_cpus);
}

fn our_program_ids(wanted: &[u32]) -> Vec<u32> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .map(|p| p.id())
        .filter(|id| wanted.contains(id))
        .collect()
}

fn links_of(program_ids: &[u32]) -> Vec<u32> {
    aya::programs::loaded_links()
        .filter_map(Result::ok)
        .filter(|l| program_ids.contains(&l.program_id()))
        .map(|l| l.id())
        .collect()
}

fn our_map_ids(wanted: &[u32]) -> Vec<u32> {
    aya::maps::loaded_maps()
        .filter_map(Result::ok)
        .map(|m| m.id())
        .filter(|id| wanted.contains(id))
        .collect()
}

#[test]
fn drop_leaves_no_programs_links_or_maps() {
    if !common::can_run_privileged("drop_leaves_no_programs_links_or_maps") {
        return;
    }
    let probe = SoftirqTimeProbe::load().expect("load softirq_time");
    let program_ids = probe.program_ids().expect("program ids");
    let map_ids = probe.map_ids().expect("map ids");
    assert_eq!(program_ids.len(), 2, "entry + exit programs");
    assert_eq!(
        map_ids.len(),
        2,
        "softirq_start + softirq_stats (no .rodata/.bss)"
    );
    // Seen by the kernel's id walk (BPF_*_GET_NEXT_ID) while loaded.
    assert_eq!(our_program_ids(&program_ids), program_ids);
    assert_eq!(
        links_of(&program_ids).len(),
        2,
        "one raw_tp link per program"
    );
    assert_eq!(our_map_ids(&map_ids), map_ids);

    drop(probe);

    // Program and link ids go at close; maps are released after an RCU grace
    // period (bpf_prog_put -> free_used_maps), so poll briefly.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = (
            our_program_ids(&program_ids),
            links_of(&program_ids),
            our_map_ids(&map_ids),
        );
        if left.0.is_empty() && left.1.is_empty() && left.2.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind after drop: programs {:?}, links {:?}, maps {:?}",
            left.0,
            left.1,
            left.2
        );
        thread::sleep(Duration::from_millis(20));
    }
}
