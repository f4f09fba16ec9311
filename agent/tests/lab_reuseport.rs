//! Ground-truth labs: reuseport groups in their own network namespace, traffic whose
//! per-socket split the test counts itself, and the agent's report checked against it.
//! Root only (netns, eBPF); skipped with a reason otherwise, a failure under
//! SKEWSCOPE_REQUIRE_PRIVILEGED=1. Every traffic loop is bounded.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::{
    agent_window, bind, connect, finish, group, inode_of, lsi, privileged, reuseport_socket,
    CountingReaders, Netns, ADDR,
};

#[test]
fn udp_group_events_lsi_and_top_flow_match_ground_truth() {
    if !privileged("udp_group_events_lsi_and_top_flow_match_ground_truth") {
        return;
    }
    let ns = Netns::new("udp");
    let port = 9100;
    let group_addr: SocketAddr = format!("{ADDR}:{port}").parse().unwrap();
    let servers: Vec<UdpSocket> = ns.udp_group(group_addr, 4);
    // Heavy flows 30000 (1500 datagrams) and 30001 (900); 40 light flows of 15 each.
    let mut plan: Vec<(u16, u64)> = vec![(30000, 1500), (30001, 900)];
    plan.extend((0..40).map(|i| (31000 + i, 15)));
    let total: u64 = plan.iter().map(|(_, n)| n).sum();
    let clients: Vec<(UdpSocket, u64)> = ns.enter(|| {
        plan.iter()
            .map(|&(sport, n)| (UdpSocket::bind((ADDR, sport)).unwrap(), n))
            .collect()
    });

    let inodes: Vec<u64> = servers.iter().map(inode_of).collect();
    let readers = CountingReaders::start(servers);

    let agent = agent_window(&["snapshot", "--json", "--duration", "3"]);
    // Interleave flows so no socket queue overflows; bounded by the plan.
    let mut left: Vec<u64> = clients.iter().map(|(_, n)| *n).collect();
    while left.iter().any(|&n| n > 0) {
        for ((c, _), n) in clients.iter().zip(left.iter_mut()) {
            if *n > 0 {
                c.send_to(b"skewscope-lab", group_addr).unwrap();
                *n -= 1;
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let report = finish(agent);
    std::thread::sleep(Duration::from_millis(200));
    let truth = readers.stop();
    assert_eq!(truth.iter().sum::<u64>(), total, "every datagram read");

    let g = group(&report, ns.inode(), port);
    assert_eq!(g["protocol"], "udp");
    assert_eq!(g["address"], ADDR);
    for (inode, want) in inodes.iter().zip(&truth) {
        let l = g["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["inode"] == *inode)
            .expect("every socket listed");
        let got = l["events"].as_u64().unwrap();
        let tolerance = (*want as f64 * 0.01).ceil() as u64;
        assert!(
            got.abs_diff(*want) <= tolerance,
            "inode {inode}: events {got}, truth {want}"
        );
        assert_eq!(l["pid"], std::process::id());
    }
    let want_lsi = lsi(&truth);
    let got_lsi = g["indices"]["lsi"].as_f64().unwrap();
    eprintln!("truth {truth:?} LSI {want_lsi:.4}, agent {got_lsi:.4}");
    assert!(
        (got_lsi - want_lsi).abs() < 0.01,
        "LSI {got_lsi} vs truth {want_lsi}"
    );
    let top = &g["top_flows"][0];
    assert_eq!(top["sport"], 30000);
    assert_eq!(top["packets"], 1500);
    let hcr_1 = g["indices"]["hcr_1"].as_f64().unwrap();
    assert!(
        (hcr_1 - 1500.0 / total as f64).abs() < 0.01,
        "HCR_1 {hcr_1}"
    );
    let idx: std::collections::BTreeSet<u64> = g["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["index"].as_u64().unwrap())
        .collect();
    assert_eq!(
        idx,
        (0..4).collect(),
        "indexes are a permutation of the group"
    );
}

#[test]
fn tcp_group_queue_depth_of_a_stalled_listener() {
    if !privileged("tcp_group_queue_depth_of_a_stalled_listener") {
        return;
    }
    let ns = Netns::new("tcp");
    let port = 9200;
    let addr: SocketAddr = format!("{ADDR}:{port}").parse().unwrap();
    let listeners: Vec<TcpListener> = ns.enter(|| {
        (0..4)
            .map(|_| {
                let fd = reuseport_socket(libc::SOCK_STREAM);
                bind(&fd, addr);
                assert_eq!(unsafe { libc::listen(fd.as_raw_fd(), 128) }, 0);
                TcpListener::from(fd)
            })
            .collect()
    });
    let stalled_inode = inode_of(&listeners[2]);
    // Listeners 0, 1, 3 accept; listener 2 never does.
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let mut keep = Vec::new();
    let mut threads = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        if i == 2 {
            keep.push(l);
            continue;
        }
        let (stop, accepted) = (stop.clone(), accepted.clone());
        l.set_nonblocking(true).unwrap();
        threads.push(std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => {
                        conns.push(c);
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }));
    }
    let connections = 60;
    let clients: Vec<TcpStream> = ns.enter(|| {
        (0..connections)
            .map(|i| {
                let fd = reuseport_socket(libc::SOCK_STREAM);
                bind(&fd, format!("{ADDR}:{}", 40000 + i).parse().unwrap());
                // connect(2) on the bound fd: std cannot bind before connecting.
                connect(&fd, addr);
                TcpStream::from(fd)
            })
            .collect()
    });
    // Wait until the accepting listeners have drained what they got.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = u64::MAX;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let now = accepted.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    let pending = connections - accepted.load(Ordering::Relaxed);
    assert!(
        pending > 0,
        "the hash sent some connections to the stalled listener"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_skewscope"))
        .args(["snapshot", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    stop.store(true, Ordering::Relaxed);
    threads.into_iter().for_each(|t| t.join().unwrap());
    drop(clients);

    let g = group(&report, ns.inode(), port);
    assert_eq!(g["protocol"], "tcp");
    let ls = g["listeners"].as_array().unwrap();
    assert_eq!(ls.len(), 4);
    for l in ls {
        let depth = l["queue_depth"].as_u64().unwrap();
        if l["inode"] == stalled_inode {
            assert_eq!(depth, pending, "stalled listener's accept queue");
            assert_eq!(l["backlog_limit"], 128);
        } else {
            assert_eq!(depth, 0, "accepting listeners keep their queues empty");
        }
    }
    // LQD = max − median = pending − 0.
    assert_eq!(g["indices"]["lqd"].as_f64().unwrap(), pending as f64);
    eprintln!("{connections} connections, {pending} pending on the stalled listener");
}

#[test]
fn membership_change_is_recorded() {
    if !privileged("membership_change_is_recorded") {
        return;
    }
    let ns = Netns::new("member");
    let port = 9300;
    let addr: SocketAddr = format!("{ADDR}:{port}").parse().unwrap();
    let make = || ns.udp_member(addr);
    let mut sockets = vec![make(), make(), make()];
    let mut agent = Command::new(env!("CARGO_BIN_EXE_skewscope"))
        .args([
            "run",
            "--output",
            "json",
            "--interval",
            "0.3",
            "--count",
            "8",
            "--no-probes",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(agent.stdout.take().unwrap()).lines();
    let mut changes = Vec::new();
    for i in 0..8 {
        let line = lines.next().expect("a report per cycle").unwrap();
        let r: serde_json::Value = serde_json::from_str(&line).unwrap();
        let g = group(&r, ns.inode(), port);
        changes.push(g["membership_changes"].as_u64().unwrap());
        if i == 2 {
            // A restart: one member leaves, a new one joins.
            sockets.remove(0);
            sockets.push(make());
        }
    }
    assert!(agent.wait().unwrap().success());
    assert_eq!(changes[0], 0);
    assert_eq!(
        *changes.last().unwrap(),
        2,
        "one leave + one join: {changes:?}"
    );
}

/// Issue 6: the UDP lab driven balanced → skewed → balanced is seen going
/// GREEN → ORANGE/RED → GREEN, within a bounded number of cycles.
#[test]
fn regime_follows_the_lab_from_balanced_to_skewed_and_back() {
    if !privileged("regime_follows_the_lab_from_balanced_to_skewed_and_back") {
        return;
    }
    let ns = Netns::new("regime");
    let port = 9400;
    let group_addr: SocketAddr = format!("{ADDR}:{port}").parse().unwrap();
    let servers: Vec<UdpSocket> = ns.udp_group(group_addr, 4);
    for s in &servers {
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    }
    // Learn which socket each source port hashes to (the kernel's choice is fixed per
    // 4-tuple), then keep two flows per socket.
    let candidates: Vec<UdpSocket> = ns.enter(|| {
        (0..64)
            .map(|i| UdpSocket::bind((ADDR, 32000 + i)).unwrap())
            .collect()
    });
    let mut by_socket: Vec<Vec<UdpSocket>> = (0..4).map(|_| Vec::new()).collect();
    let mut buf = [0u8; 64];
    for c in candidates {
        c.send_to(b"probe", group_addr).unwrap();
        let landed = servers.iter().position(|s| s.recv(&mut buf).is_ok());
        if let Some(i) = landed {
            if by_socket[i].len() < 2 {
                by_socket[i].push(c);
            }
        }
    }
    assert!(
        by_socket.iter().all(|f| f.len() == 2),
        "every socket got two flows"
    );

    let readers = CountingReaders::start(servers);

    let interval = 0.5;
    // BCI looks back 5 s instead of a minute, so a skew episode leaves it within the test.
    let config = std::env::temp_dir().join(format!("skewscope-regime-{}.toml", std::process::id()));
    // This test follows listener skew. On a loaded host the lab's readers fall milliseconds
    // behind, which DLG rightly calls YELLOW: its target is set out of the way here.
    std::fs::write(
        &config,
        "[model]\nbci_window_secs = 5\ningress_age_target_us = 50000\n",
    )
    .unwrap();
    let mut agent = Command::new(env!("CARGO_BIN_EXE_skewscope"))
        .args([
            "run",
            "--output",
            "json",
            "--interval",
            "0.5",
            "--count",
            "70",
        ])
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = agent.stdout.take().unwrap();
    let regimes = std::thread::spawn({
        let netns = ns.inode();
        move || {
            let mut seen = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let r: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
                let g = r["reuseport_groups"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|g| g["netns"] == netns && g["port"] == port)
                    .map(|g| g["regime"].as_str().unwrap().to_string());
                seen.push((Instant::now(), g));
            }
            seen
        }
    });

    // Phases: balanced 5 s, skewed 6 s, balanced 16 s (dwell is 3 s per step down, and
    // the skew leaves BCI's 5 s window first).
    let phase = |secs: f64, heavy: Option<usize>| {
        let end = Instant::now() + Duration::from_secs_f64(secs);
        while Instant::now() < end {
            for (i, flows) in by_socket.iter().enumerate() {
                let n = if heavy == Some(i) { 12 } else { 1 };
                for f in flows {
                    for _ in 0..n {
                        let _ = f.send_to(b"skewscope-lab", group_addr);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(4));
        }
        Instant::now()
    };
    let t0 = Instant::now();
    let skew_at = phase(5.0, None);
    let rebalance_at = phase(6.0, Some(0));
    let _ = phase(16.0, None);
    let _ = std::fs::remove_file(&config);
    let seen = regimes.join().unwrap();
    let _ = agent.kill();
    let _ = agent.wait();
    readers.stop();

    let cycles = |from: Instant, to: Instant| {
        seen.iter()
            .filter(|(t, _)| *t > from && *t <= to)
            .map(|(_, g)| g.clone().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    let balanced = cycles(t0 + Duration::from_secs(2), skew_at);
    assert!(
        balanced.iter().all(|r| r == "GREEN"),
        "balanced phase: {balanced:?}"
    );
    let skewed = cycles(skew_at, rebalance_at);
    // The cycle (1-based) at which the regime got there.
    let hot_after = 1 + skewed
        .iter()
        .position(|r| r == "ORANGE" || r == "RED")
        .unwrap_or_else(|| panic!("never hot while skewed: {skewed:?}"));
    let after = cycles(rebalance_at, Instant::now());
    let green_after = 1 + after
        .iter()
        .position(|r| r == "GREEN")
        .unwrap_or_else(|| panic!("never GREEN again: {after:?}"));
    eprintln!(
        "cycles of {interval}s: hot after {hot_after} cycles of skew, GREEN {green_after} cycles after rebalancing; skewed {skewed:?}; after {after:?}"
    );
    // Up may skip levels (one dwell at most); down is one level per dwell of 3 s.
    assert!(hot_after <= 8, "hot within 8 cycles");
    assert!(green_after <= 32, "GREEN within 32 cycles");
}
