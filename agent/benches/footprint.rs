//! `make bench`: resident memory of `skewscope run` as production runs it (default probes,
//! Prometheus on and scraped every 15 s, OTLP export to a collector that accepts and never
//! reads), idle and then for SKEWSCOPE_BENCH_FOOTPRINT_SECS (60..=3600, default 600: the
//! issue's 10 minutes) with the UDP lab (a 4-socket SO_REUSEPORT group taking a bounded
//! flow of datagrams from 16 source ports) plus 1000 SO_REUSEPORT groups of two UDP
//! sockets each, all in a network namespace. Where it goes (smaps: heap, anonymous
//! mappings such as glibc's per-thread malloc arenas and buffers, the binary, libraries).
//! Two agents side by side in the same run: glibc defaults, and MALLOC_ARENA_MAX=2 (the
//! same as mallopt(M_ARENA_MAX, 2)). Target (issue 14): VmRSS <= 40 MiB at the end and at
//! its peak. BPF maps are not in VmRSS (memlock, fdinfo). The groups are counted in the
//! agent's own JSON reports (/metrics holds the first `max_groups`), so the figure is of
//! an agent that reports them all.
//! Needs root (probes, namespaces); otherwise it says why and measures nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Idle time before the load starts.
const IDLE: Duration = Duration::from_secs(30);
/// How long the load runs unless SKEWSCOPE_BENCH_FOOTPRINT_SECS says otherwise.
const LOADED: Duration = Duration::from_secs(600);
/// VmRSS is sampled this often; /metrics is scraped as often as Prometheus's default.
const SAMPLE_EVERY: Duration = Duration::from_secs(60);
const SCRAPE_EVERY: Duration = Duration::from_secs(15);
const GROUPS: usize = 1000;
const LAB_PORT: u16 = 19000;
/// The lab's datagram rate, bounded: the figure is memory, not throughput.
const LAB_PPS: u32 = 2000;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A collector that accepts connections and never reads from them.
fn black_hole() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten().take(10_000) {
            held.push(s);
        }
    });
    port
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Rss by kind of mapping, in KiB: (heap, anon, binary, other files, stack).
fn smaps_breakdown(pid: u32) -> [u64; 5] {
    let mut out = [0u64; 5];
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return out;
    };
    let mut kind = 1;
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            let path = line.split_whitespace().nth(5).unwrap_or("");
            kind = match path {
                "[heap]" => 0,
                "" => 1,
                p if p.starts_with("[stack") => 4,
                p if p.ends_with("/skewscope") => 2,
                p if p.starts_with('[') => 1,
                _ => 3,
            };
        } else if let Some(v) = line.strip_prefix("Rss:") {
            out[kind] += v
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .unwrap_or(0);
        }
    }
    out
}

/// The /metrics body, empty when the agent did not answer.
fn scrape(port: u16) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
    let mut body = Vec::new();
    let _ = s.read_to_end(&mut body);
    String::from_utf8_lossy(&body).into_owned()
}

/// Follows the agent's JSON reports (one a line) and keeps the last one's group count.
fn count_groups(stdout: std::process::ChildStdout) -> Arc<AtomicUsize> {
    let groups = Arc::new(AtomicUsize::new(0));
    let seen = groups.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(report) = serde_json::from_str::<serde_json::Value>(&line) {
                let n = report["reuseport_groups"].as_array().map_or(0, Vec::len);
                seen.store(n, Ordering::Relaxed);
            }
        }
    });
    groups
}

/// The load in namespace `ns`, held by a child process until it is killed or `secs` pass:
/// GROUPS groups of two UDP sockets with SO_REUSEPORT, and the UDP lab (4 sockets on
/// LAB_PORT, a reader thread each, LAB_PPS datagrams a second from 16 source ports).
fn load(ns: &str, secs: u64) -> Option<Killed> {
    let code = format!(
        r#"
import socket, threading, time
def reuseport(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", port))
    return s
held = [reuseport(20000 + i // 2) for i in range(2 * {GROUPS})]
lab = [reuseport({LAB_PORT}) for _ in range(4)]
def drain(s):
    while True:
        s.recv(2048)
for s in lab:
    threading.Thread(target=drain, args=(s,), daemon=True).start()
senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(16)]
print("ready", flush=True)
end = time.monotonic() + {secs}
i = 0
while time.monotonic() < end:
    for _ in range({LAB_PPS} // 100):
        senders[i % 16].sendto(b"x" * 64, ("127.0.0.1", {LAB_PORT}))
        i += 1
    time.sleep(0.01)
"#
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", &code])
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take()?)
        .read_line(&mut line)
        .ok()?;
    (line.trim() == "ready").then_some(Killed(child))
}

/// One agent under measurement.
struct Arm {
    label: &'static str,
    agent: Killed,
    prom: u16,
    /// VmRSS in KiB, every SAMPLE_EVERY of the load.
    trend: Vec<u64>,
    peak_kib: u64,
    groups: Arc<AtomicUsize>,
    metrics_bytes: usize,
}

impl Arm {
    fn start(label: &'static str, arena_max: Option<&str>) -> Option<Arm> {
        let hole = black_hole();
        let prom = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_skewscope"));
        cmd.args(["run", "--output", "json"])
            .arg(format!("--otlp-endpoint=http://127.0.0.1:{hole}"))
            .arg(format!("--prometheus-listen=127.0.0.1:{prom}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(n) = arena_max {
            cmd.env("MALLOC_ARENA_MAX", n);
        }
        match cmd.spawn() {
            Ok(mut c) => Some(Arm {
                label,
                groups: count_groups(c.stdout.take()?),
                agent: Killed(c),
                prom,
                trend: Vec::new(),
                peak_kib: 0,
                metrics_bytes: 0,
            }),
            Err(e) => {
                println!("{label}: could not start skewscope: {e}");
                None
            }
        }
    }

    fn pid(&self) -> u32 {
        self.agent.0.id()
    }

    fn rss_kib(&self) -> u64 {
        status_kib(self.pid(), "VmRSS:").unwrap_or(0)
    }

    fn scrape(&mut self) {
        self.metrics_bytes = scrape(self.prom).len();
        self.peak_kib = self.peak_kib.max(self.rss_kib());
    }
}

/// SKEWSCOPE_BENCH_FOOTPRINT_SECS, or LOADED.
fn loaded_for() -> Duration {
    match std::env::var("SKEWSCOPE_BENCH_FOOTPRINT_SECS") {
        Ok(v) => match v.parse::<u64>() {
            Ok(n) if (60..=3600).contains(&n) => Duration::from_secs(n),
            _ => {
                println!(
                    "footprint: SKEWSCOPE_BENCH_FOOTPRINT_SECS={v:?} is not 60..=3600; using {}",
                    LOADED.as_secs()
                );
                LOADED
            }
        },
        Err(_) => LOADED,
    }
}

fn main() {
    if unsafe { libc::geteuid() } != 0 {
        println!("footprint: skipped (needs root: probes and a network namespace)");
        return;
    }
    let ns = format!("skewscope-fp-{}", std::process::id());
    if !Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .is_ok_and(|s| s.success())
    {
        println!("footprint: skipped (ip netns add failed)");
        return;
    }
    let _ = Command::new("ip")
        .args(["netns", "exec", &ns, "ip", "link", "set", "lo", "up"])
        .status();
    let loaded = loaded_for();
    println!(
        "footprint: two agents side by side, {}s idle then {}s with the UDP lab ({LAB_PPS} datagrams/s) and {GROUPS} reuseport groups; VmRSS every {}s",
        IDLE.as_secs(),
        loaded.as_secs(),
        SAMPLE_EVERY.as_secs()
    );
    let mut arms: Vec<Arm> = [("glibc defaults", None), ("MALLOC_ARENA_MAX=2", Some("2"))]
        .into_iter()
        .filter_map(|(label, arenas)| Arm::start(label, arenas))
        .collect();
    std::thread::sleep(IDLE);
    let idle: Vec<u64> = arms.iter().map(Arm::rss_kib).collect();
    let idle_smaps: Vec<[u64; 5]> = arms.iter().map(|a| smaps_breakdown(a.pid())).collect();

    let held = load(&ns, loaded.as_secs() + 60);
    if held.is_none() {
        println!("footprint: could not start the lab and {GROUPS} groups in {ns}");
    }
    let start = Instant::now();
    let mut next_sample = SAMPLE_EVERY;
    while start.elapsed() < loaded {
        std::thread::sleep(SCRAPE_EVERY.min(loaded.saturating_sub(start.elapsed())));
        for arm in &mut arms {
            arm.scrape();
        }
        if start.elapsed() >= next_sample {
            for arm in &mut arms {
                arm.trend.push(arm.rss_kib());
            }
            next_sample += SAMPLE_EVERY;
        }
    }
    for arm in &mut arms {
        arm.scrape();
    }
    drop(held);
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();

    println!(
        "skewscope run: default probes, Prometheus scraped, OTLP to a collector that never reads; target VmRSS <= 40 MiB"
    );
    println!(
        "{:<34} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>7}  {:<24} verdict",
        "phase",
        "VmRSS MiB",
        "heap",
        "anon",
        "binary",
        "libs",
        "stack",
        "threads",
        "metrics B",
        "groups",
        "MiB each minute"
    );
    let mib = |k: u64| k as f64 / 1024.0;
    for (i, arm) in arms.iter().enumerate() {
        let smaps = idle_smaps[i];
        println!(
            "{:<34} {:>9.1} {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>7} {:>9} {:>7}  {:<24} {}",
            format!("{}, idle", arm.label),
            mib(idle[i]),
            mib(smaps[0]),
            mib(smaps[1]),
            mib(smaps[2]),
            mib(smaps[3]),
            mib(smaps[4]),
            "-",
            "-",
            "-",
            "",
            verdict(idle[i])
        );
        let now = arm.rss_kib();
        let smaps = smaps_breakdown(arm.pid());
        println!(
            "{:<34} {:>9.1} {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>7} {:>9} {:>7}  {:<24} {}",
            format!("{}, lab + {GROUPS} groups", arm.label),
            mib(now),
            mib(smaps[0]),
            mib(smaps[1]),
            mib(smaps[2]),
            mib(smaps[3]),
            mib(smaps[4]),
            status_kib(arm.pid(), "Threads:").unwrap_or(0),
            arm.metrics_bytes,
            arm.groups.load(Ordering::Relaxed),
            arm.trend
                .iter()
                .map(|k| format!("{:.0}", mib(*k)))
                .collect::<Vec<_>>()
                .join(","),
            if arm.groups.load(Ordering::Relaxed) <= GROUPS {
                format!(
                    "NOT MEASURED: {} groups reported",
                    arm.groups.load(Ordering::Relaxed)
                )
            } else {
                verdict(now.max(arm.peak_kib)).to_string()
            }
        );
        println!(
            "{:<34} {:>9.1}",
            format!("{}, peak", arm.label),
            mib(arm.peak_kib)
        );
    }
}

fn verdict(kib: u64) -> &'static str {
    if kib <= 40 * 1024 {
        "ok"
    } else {
        "OVER TARGET"
    }
}
