//! `make bench`: resident memory of `skewscope run` as production runs it (default probes,
//! Prometheus on and scraped, OTLP export to a collector that accepts and never reads),
//! idle and then with 1000 SO_REUSEPORT groups (1000 UDP sockets on distinct ports in a
//! network namespace), and where it goes (smaps: heap, anonymous mappings such as glibc's
//! per-thread malloc arenas and buffers, the binary, libraries). Two arms: glibc defaults,
//! and MALLOC_ARENA_MAX=2 (the same as mallopt(M_ARENA_MAX, 2)). Bounded: about 3 minutes.
//! Target (issue 14): VmRSS <= 40 MiB. BPF maps are not in VmRSS (memlock, fdinfo).
//! Needs root (probes, namespaces); otherwise it says why and measures nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long each phase runs before its VmRSS is taken.
const PHASE: Duration = Duration::from_secs(40);
const GROUPS: usize = 1000;

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

fn scrape(port: u16) -> usize {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
    let mut body = Vec::new();
    let _ = s.read_to_end(&mut body);
    body.len()
}

/// 1000 UDP sockets with SO_REUSEPORT on distinct ports in namespace `ns`, held by a
/// child process until it is killed.
fn groups(ns: &str) -> Option<Killed> {
    let code = format!(
        "import socket,time\nss=[]\nfor i in range({GROUPS}):\n s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEPORT,1)\n s.bind(('0.0.0.0',20000+i))\n ss.append(s)\nprint('ready',flush=True)\ntime.sleep(600)\n"
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

struct Phase {
    name: String,
    rss_kib: u64,
    trend: Vec<u64>,
    threads: u64,
    smaps: [u64; 5],
    metrics_bytes: usize,
}

fn run_phase(name: String, pid: u32, prom: u16) -> Phase {
    let start = Instant::now();
    let mut trend = Vec::new();
    while start.elapsed() < PHASE {
        std::thread::sleep(Duration::from_secs(10).min(PHASE));
        trend.push(status_kib(pid, "VmRSS:").unwrap_or(0) / 1024);
    }
    let metrics_bytes = scrape(prom);
    Phase {
        name,
        rss_kib: status_kib(pid, "VmRSS:").unwrap_or(0),
        trend,
        threads: status_kib(pid, "Threads:").unwrap_or(0),
        smaps: smaps_breakdown(pid),
        metrics_bytes,
    }
}

fn arm(label: &str, arena_max: Option<&str>, ns: &str) -> Vec<Phase> {
    let hole = black_hole();
    let prom = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skewscope"));
    cmd.args(["run", "--output", "json"])
        .arg(format!("--otlp-endpoint=http://127.0.0.1:{hole}"))
        .arg(format!("--prometheus-listen=127.0.0.1:{prom}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(n) = arena_max {
        cmd.env("MALLOC_ARENA_MAX", n);
    }
    let agent = match cmd.spawn() {
        Ok(c) => Killed(c),
        Err(e) => {
            println!("{label}: could not start skewscope: {e}");
            return Vec::new();
        }
    };
    let pid = agent.0.id();
    let mut out = vec![run_phase(format!("{label}, idle"), pid, prom)];
    match groups(ns) {
        Some(_held) => out.push(run_phase(format!("{label}, {GROUPS} groups"), pid, prom)),
        None => println!("{label}: could not open {GROUPS} reuseport sockets in {ns}"),
    }
    out
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
    let mut phases = arm("glibc defaults", None, &ns);
    phases.extend(arm("MALLOC_ARENA_MAX=2", Some("2"), &ns));
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();

    println!(
        "skewscope run: default probes, Prometheus scraped, OTLP to a collector that never reads; {}s per phase; target VmRSS <= 40 MiB",
        PHASE.as_secs()
    );
    println!(
        "{:<34} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9}  {:<16} verdict",
        "phase",
        "VmRSS MiB",
        "heap",
        "anon",
        "binary",
        "libs",
        "stack",
        "threads",
        "metrics B",
        "MiB every 10 s"
    );
    for p in &phases {
        let mib = |k: u64| k as f64 / 1024.0;
        println!(
            "{:<34} {:>9.1} {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>7} {:>9}  {:<16} {}",
            p.name,
            mib(p.rss_kib),
            mib(p.smaps[0]),
            mib(p.smaps[1]),
            mib(p.smaps[2]),
            mib(p.smaps[3]),
            mib(p.smaps[4]),
            p.threads,
            p.metrics_bytes,
            p.trend
                .iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .join(","),
            if p.rss_kib <= 40 * 1024 {
                "ok"
            } else {
                "OVER TARGET"
            }
        );
    }
}
