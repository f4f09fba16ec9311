//! Live shadow replay in `run`: a skewed UDP reuseport group of 4 in a namespace of its
//! own, the agent configured with `[shadow] candidates`, and its reports checked for the
//! group's replay (default and the candidate, verdicts, flows), for a rejected candidate
//! that does not stop the reports, and for the production group receiving every datagram
//! the test sent. Root only; skipped with a reason otherwise, a failure under
//! SKEWSCOPE_REQUIRE_PRIVILEGED=1. Every loop is bounded.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::{group, lsi, privileged, CountingReaders, Netns, ADDR};

const PORT: u16 = 9500;
/// Datagrams per round: the heavy flow, two medium flows, nine light flows.
const HEAVY: u64 = 15;
const MEDIUM: u64 = 3;
const LIGHT_FLOWS: u16 = 9;
const ROUND: u64 = HEAVY + 2 * MEDIUM + LIGHT_FLOWS as u64;

/// Run the agent (`run --output json --interval 0.5 --count COUNT --config CONFIG`) to
/// completion (killed after 90 s): its JSON reports, its stderr and its exit status.
fn run_agent(config_file: &Path, count: usize) -> (Vec<serde_json::Value>, String, ExitStatus) {
    let limit = Duration::from_secs(90);
    let mut child = Command::new(env!("CARGO_BIN_EXE_skewscope"))
        .args(["run", "--output", "json", "--interval", "0.5", "--count"])
        .arg(count.to_string())
        .arg("--config")
        .arg(config_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + limit;
            while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if !done.load(Ordering::Relaxed) {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        })
    };
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let reports: Vec<serde_json::Value> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).expect("a JSON report per line"))
        .collect();
    let status = child.wait().unwrap();
    done.store(true, Ordering::Relaxed);
    watchdog.join().unwrap();
    (reports, errors.join().unwrap(), status)
}

/// The report's shadow entry of (netns, PORT), if any.
fn shadow_of(report: &serde_json::Value, netns: u64) -> Option<&serde_json::Value> {
    report["shadow"]
        .as_array()
        .expect("every report has a shadow array")
        .iter()
        .find(|s| s["netns"] == netns && s["port"] == PORT)
}

fn policy<'a>(entry: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    entry["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["policy"] == name)
        .unwrap_or_else(|| panic!("no policy {name}: {entry}"))
}

fn config(tag: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "skewscope-shadow-{tag}-{}.toml",
        std::process::id()
    ));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn run_replays_the_group_live_and_reports_rejected_candidates() {
    if !privileged("run_replays_the_group_live_and_reports_rejected_candidates") {
        return;
    }
    let ns = Netns::new("shadow");
    let group_addr: SocketAddr = format!("{ADDR}:{PORT}").parse().unwrap();
    let servers: Vec<UdpSocket> = ns.udp_group(group_addr, 4);
    // One heavy flow (half the traffic), two medium, nine light: (sport, datagrams/round).
    let mut plan: Vec<(u16, u64)> = vec![(30000, HEAVY), (30001, MEDIUM), (30002, MEDIUM)];
    plan.extend((0..LIGHT_FLOWS).map(|i| (31000 + i, 1)));
    let clients: Vec<(UdpSocket, u64)> = ns.enter(|| {
        plan.iter()
            .map(|&(sport, n)| (UdpSocket::bind((ADDR, sport)).unwrap(), n))
            .collect()
    });

    let readers = CountingReaders::start(servers);

    // Rounds of 30 datagrams every 10 ms (~3k/s) until told to stop, at most 120 s.
    let stop_traffic = Arc::new(AtomicBool::new(false));
    let traffic = {
        let stop = stop_traffic.clone();
        std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(120);
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                for (c, n) in &clients {
                    for _ in 0..*n {
                        c.send_to(b"skewscope-shadow-lab", group_addr).unwrap();
                        sent += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            sent
        })
    };

    let netns = ns.inode();
    // Run 1: the built-in candidate, replayed every 2 s.
    let cfg = config(
        "ok",
        "[shadow]\ncandidates = [\"builtin:isolate-heavy\"]\ninterval_secs = 2\n",
    );
    let count = 20;
    let (reports, stderr, status) = run_agent(&cfg, count);
    let _ = std::fs::remove_file(&cfg);
    assert!(status.success(), "agent failed: {stderr}");
    assert_eq!(reports.len(), count, "{stderr}");
    let with_shadow: Vec<(usize, &serde_json::Value)> = reports
        .iter()
        .enumerate()
        .filter_map(|(i, r)| shadow_of(r, netns).map(|s| (i, s)))
        .collect();
    let (first, _) = *with_shadow.first().unwrap_or_else(|| {
        panic!("no report carries the group's shadow replay; stderr:\n{stderr}")
    });
    let (last, entry) = *with_shadow.last().unwrap();
    assert_eq!(
        last,
        count - 1,
        "every report after the first replay carries it"
    );
    assert_eq!(entry["protocol"], "udp");
    assert_eq!(entry["address"], ADDR);
    assert_eq!(entry["sockets"], 4, "replica size = listener count");
    assert!(entry["error"].is_null(), "{entry}");
    let flows = entry["flows"].as_u64().unwrap();
    assert!(
        flows > 0 && flows <= plan.len() as u64,
        "flows replayed: {flows}"
    );
    let names: Vec<&str> = entry["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["policy"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "builtin:isolate-heavy"]);
    let default = policy(entry, "default");
    let isolate = policy(entry, "builtin:isolate-heavy");
    assert_eq!(default["verifier"], "none");
    assert_eq!(isolate["verifier"], "accepted", "{isolate}");
    let ago = entry["replayed_secs_ago"].as_f64().unwrap();
    assert!((0.0..10.0).contains(&ago), "replayed {ago}s ago");
    // isolate-heavy puts the heavy flow alone on socket 0: the largest share is the
    // heavy flow's share of the traffic (half), whatever the hash does with the rest.
    let heavy_share = HEAVY as f64 / ROUND as f64;
    let isolate_max = isolate["max_share"].as_f64().unwrap();
    assert!(
        (isolate_max - heavy_share).abs() < 0.08,
        "isolate-heavy max share {isolate_max} vs heavy flow {heavy_share}"
    );
    let default_lsi = default["lsi"].as_f64().unwrap();
    let isolate_lsi = isolate["lsi"].as_f64().unwrap();
    let reduction = isolate["skew_reduction"].as_f64();
    let actual_lsi = group(&reports[last], netns, PORT)["indices"]["lsi"].as_f64();
    let catalog_points =
        skewscope::sinks::catalog::evaluate(&reports[last], &skewscope::config::Limits::default());
    let exported = skewscope::sinks::catalog::CATALOG
        .iter()
        .zip(&catalog_points.points)
        .filter(|(d, _)| d.name.starts_with("skewscope.shadow."))
        .map(|(_, p)| p.len())
        .sum::<usize>();
    assert!(exported >= 6, "3 shadow metrics × 2 policies: {exported}");
    eprintln!(
        "first shadow in report {} of {count}; {flows} flows on 4 sockets, replayed {ago:.1}s \
         before the last report; actual LSI {actual_lsi:?}; default LSI {default_lsi:.3} max \
         share {:.3}; isolate-heavy LSI {isolate_lsi:.3} max share {isolate_max:.3} \
         (skew_reduction {reduction:?}; heavy flow {heavy_share:.2})",
        first + 1,
        default["max_share"].as_f64().unwrap(),
    );

    // Run 2: a candidate that does not exist is rejected and the reports go on.
    let missing = format!("/nonexistent/skewscope-shadow-{}.bpf.o", std::process::id());
    let cfg = config(
        "bad",
        &format!(
            "[shadow]\ncandidates = [\"builtin:isolate-heavy\", \"{missing}\"]\n\
             interval_secs = 2\n"
        ),
    );
    let count = 14;
    let (reports, stderr, status) = run_agent(&cfg, count);
    let _ = std::fs::remove_file(&cfg);
    assert!(status.success(), "agent failed: {stderr}");
    assert_eq!(reports.len(), count, "the reports go on: {stderr}");
    let rejected_at = reports
        .iter()
        .position(|r| shadow_of(r, netns).is_some())
        .unwrap_or_else(|| panic!("no shadow replay in run 2; stderr:\n{stderr}"));
    assert!(rejected_at < count - 1, "reports after the rejection");
    let entry = shadow_of(&reports[count - 1], netns).unwrap();
    let bad = policy(entry, &missing);
    assert_eq!(bad["verifier"], "rejected", "{bad}");
    let error = bad["error"].as_str().unwrap();
    assert!(error.contains("No such file"), "{error}");
    assert!(bad["lsi"].is_null());
    assert_eq!(
        policy(entry, "builtin:isolate-heavy")["verifier"],
        "accepted"
    );
    assert_eq!(policy(entry, "default")["verifier"], "none");
    eprintln!(
        "run 2: {missing} rejected from report {}: {error}",
        rejected_at + 1
    );

    // The production group received every datagram sent, through both runs' replays.
    stop_traffic.store(true, Ordering::Relaxed);
    let sent = traffic.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while readers.counts().iter().sum::<u64>() < sent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let truth = readers.stop();
    eprintln!(
        "production group: sent {sent}, received {truth:?} (LSI {:.3})",
        lsi(&truth)
    );
    assert_eq!(
        truth.iter().sum::<u64>(),
        sent,
        "every datagram reached the group"
    );
}
