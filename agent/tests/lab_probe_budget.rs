//! The probe budget against ground truth: a steady flood into a 4-socket UDP group, well
//! above a small budget, so the agent duty-cycles its probes. The estimated per-listener
//! events (counted share scaled by the attached share) must match what each socket
//! received over the window, and the indices the true split.
//! Root only (netns, eBPF); every traffic loop is bounded.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

/// The tests here run one at a time: each loads probes or floods loopback, and the
/// others' programs would run on its packets (and show in its process-wide fd counts).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}
use common::{
    agent_window, finish, group, inode_of, lsi, privileged, CountingReaders, Netns, ADDR,
};

#[test]
fn sampled_events_estimate_the_true_split() {
    if !privileged("sampled_events_estimate_the_true_split") {
        return;
    }
    let _serial = one_at_a_time();
    let ns = Netns::new("budget");
    let port = 9150;
    let group_addr: SocketAddr = format!("{ADDR}:{port}").parse().unwrap();
    let servers: Vec<UdpSocket> = ns.udp_group(group_addr, 4);
    // Weights per source port: two heavy flows and 30 light ones, sent in a fixed cycle
    // so the split is the same in every part of the window.
    let mut plan: Vec<(u16, u32)> = vec![(32000, 12), (32001, 6)];
    plan.extend((0..30).map(|i| (32100 + i, 1)));
    let clients: Vec<(UdpSocket, u32)> = ns.enter(|| {
        plan.iter()
            .map(|&(sport, weight)| (UdpSocket::bind((ADDR, sport)).unwrap(), weight))
            .collect()
    });
    let inodes: Vec<u64> = servers.iter().map(inode_of).collect();
    let readers = CountingReaders::start(servers);

    // About 40 kpps: 48 datagrams per cycle, a cycle every 1.2 ms at most.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flood = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                for (socket, weight) in &clients {
                    for _ in 0..*weight {
                        if socket.send_to(b"budget-lab", group_addr).is_ok() {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                std::thread::sleep(Duration::from_micros(1200));
            }
        })
    };
    // Let the flood settle so the budget has judged it before the window opens.
    std::thread::sleep(Duration::from_millis(1500));

    // 0.1% of a CPU at 400 ns per packet: sampling above 2.5 kpps (duty ~8% at the
    // flood's ~32 kpps, still under 50% should a busy machine slow it to 8 kpps).
    let agent = agent_window(&[
        "snapshot",
        "--json",
        "--duration",
        "3",
        "--probe-budget",
        "0.001",
    ]);
    let before = readers.counts();
    let report = finish(agent);
    let after = readers.counts();
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    readers.stop();
    let truth: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let total: u64 = truth.iter().sum();
    let rate = total as f64 / report["window_secs"].as_f64().unwrap();
    assert!(
        rate > 8_000.0,
        "the flood is too slow to test sampling: {rate:.0}/s"
    );

    let sampling = &report["probe_sampling"];
    let share = sampling["attached_share"].as_f64().unwrap();
    assert!(
        share > 0.0 && share < 0.5,
        "probes should be duty-cycled at {rate:.0} pps: {sampling}"
    );

    let g = group(&report, ns.inode(), port);
    let events: Vec<u64> = inodes
        .iter()
        .map(|inode| {
            g["listeners"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["inode"] == *inode)
                .expect("every socket listed")["events"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let estimated: u64 = events.iter().sum();
    eprintln!(
        "truth {truth:?} ({rate:.0} pps), estimated {events:?}, attached {share:.3}, \
         LSI truth {:.4} agent {}",
        lsi(&truth),
        g["indices"]["lsi"]
    );
    let err = (estimated as f64 - total as f64).abs() / total as f64;
    assert!(err < 0.15, "total events {estimated} vs truth {total}");
    for (i, (e, t)) in events.iter().zip(&truth).enumerate() {
        let (es, ts) = (*e as f64 / estimated as f64, *t as f64 / total as f64);
        assert!(
            (es - ts).abs() < 0.03,
            "socket {i}: share {es:.3} vs truth {ts:.3}"
        );
    }
    let got_lsi = g["indices"]["lsi"].as_f64().unwrap();
    assert!(
        (got_lsi - lsi(&truth)).abs() < 0.05,
        "LSI {got_lsi} vs truth {}",
        lsi(&truth)
    );
    assert_eq!(g["top_flows"][0]["sport"], 32000, "heaviest flow found");
}

/// BPF programs and links this process holds (anon_inode fds).
fn own_bpf_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|t| {
                let t = t.to_string_lossy();
                t == "anon_inode:bpf-prog" || t == "anon_inode:bpf_link"
            })
        })
        .count()
}

/// A fixed duty cycle holds whatever the load: the probes are attached for that share
/// of each window, as the snapshot's coverage says; and dropping the collector stops
/// the cycling thread and releases every program and link.
#[test]
fn fixed_duty_share_and_release_on_drop() {
    use skewscope::collect::{CollectOptions, Collector, ProbeSampling};
    if !privileged("fixed_duty_share_and_release_on_drop") {
        return;
    }
    let _serial = one_at_a_time();
    let before = own_bpf_fds();
    let mut opts = CollectOptions::new(skewscope::sources::HostRoot::default());
    opts.probe_sampling = ProbeSampling::Fixed { duty: 0.3 };
    opts.probe_period = Duration::from_millis(100);
    let mut collector = Collector::new(opts);
    assert!(own_bpf_fds() > before, "probes loaded");
    let first = collector.collect();
    std::thread::sleep(Duration::from_millis(1000));
    let second = collector.collect();
    let (a, b) = (
        first.probe_coverage.unwrap(),
        second.probe_coverage.unwrap(),
    );
    let share = (b.attached - a.attached).as_secs_f64()
        / second.taken_at.duration_since(first.taken_at).as_secs_f64();
    assert!(
        (share - 0.3).abs() < 0.08,
        "attached share {share:.3}, duty 0.3"
    );
    assert_eq!(b.duty, 0.3);
    drop(collector);
    assert_eq!(own_bpf_fds(), before, "programs or links left after drop");
}

fn bpf_stats_enabled() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// BPF_ENABLE_STATS fds this process holds: bpf_enable_runtime_stats() makes them with
/// anon_inode_getfd("bpf-stats", ...) (kernel/bpf/syscall.c).
fn own_stats_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|t| t.to_string_lossy() == "anon_inode:bpf-stats")
        })
        .count()
}

/// Calibration measures the probes under a flood: a cost per packet in a sane range,
/// from run-time stats held for the calibration window only. The sysctl
/// kernel.bpf_stats_enabled shows only what was written to it (bpf_stats_handler()
/// reports its saved value, not the static key a held fd increments), so the fd itself
/// is watched: held during the window, closed after; the sysctl stays 0 throughout.
#[test]
fn calibration_measures_a_sane_cost_and_releases_stats() {
    use skewscope::collect::{CollectOptions, Collector, ProbeSampling};
    if !privileged("calibration_measures_a_sane_cost_and_releases_stats") {
        return;
    }
    let _serial = one_at_a_time();
    if bpf_stats_enabled() != Some(0) {
        eprintln!(
            "skipped: kernel.bpf_stats_enabled is not 0 here (an administrator turned stats on)"
        );
        return;
    }
    let ns = Netns::new("calib");
    let group_addr: SocketAddr = format!("{ADDR}:9151").parse().unwrap();
    let readers = CountingReaders::start(ns.udp_group(group_addr, 2));
    let client: UdpSocket = ns.enter(|| UdpSocket::bind((ADDR, 0)).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                for _ in 0..40 {
                    let _ = client.send_to(b"calibrate", group_addr);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));

    assert_eq!(own_stats_fds(), 0);
    let mut opts = CollectOptions::new(skewscope::sources::HostRoot::default());
    opts.probe_sampling = ProbeSampling::DEFAULT;
    let mut collector = Collector::new(opts);
    // The first calibration starts with the cycling thread: watch through its window.
    let watch_until = Instant::now() + Duration::from_millis(600);
    let mut seen_held = false;
    while Instant::now() < watch_until {
        seen_held |= own_stats_fds() > 0;
        assert_eq!(bpf_stats_enabled(), Some(0));
        std::thread::sleep(Duration::from_millis(5));
    }
    let coverage = collector.collect().probe_coverage.expect("probes managed");
    let held_after = own_stats_fds();
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    let received: u64 = readers.counts().iter().sum();
    readers.stop();
    drop(collector);
    eprintln!(
        "calibrated {:.0} ns per packet (measured: {}), cpu share {:.4}, {received} datagrams",
        coverage.packet_cost_ns, coverage.cost_measured, coverage.cpu_share
    );
    assert!(seen_held, "no stats fd seen during the calibration window");
    assert_eq!(
        held_after, 0,
        "run-time stats fd left open after the window"
    );
    assert_eq!(bpf_stats_enabled(), Some(0));
    assert!(coverage.cost_measured, "no calibration under a flood");
    assert!(
        (10.0..=10_000.0).contains(&coverage.packet_cost_ns),
        "{} ns per packet",
        coverage.packet_cost_ns
    );
}
