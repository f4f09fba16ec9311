//! `make bench`: skewscope's cycle against the peer, Debian's prometheus-node-exporter (1.5)
//! with the collectors that read the same files (interrupts, softnet, stat; it has no
//! softirqs collector), over the same fixture roots, growing with the CPU count: 2, 64 and
//! 256 CPUs derived from the 1152-CPU capture by `scripts/derive_root.py shrink` (the first
//! N CPU columns of every row), and the capture itself. node_exporter is scraped once per
//! root (it took 11-13 s on the 1152-CPU root on an idle 2-vCPU VM); skewscope's figure is
//! the p50 of a few cycles (collect + report). Target (issue 14): ratio <= 0.01 on the
//! 1152-CPU capture, where node_exporter's scrape takes seconds; the smaller roots show how
//! both grow (at 2 CPUs both are milliseconds, and a fixed cost dominates either).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use skewscope::collect::{CollectOptions, Collector};
use skewscope::model::{self, ModelConfig, Window};
use skewscope::sources::HostRoot;

const NODE_EXPORTER: &str = "prometheus-node-exporter";
/// One scrape longer than this is reported as over it (a loaded machine).
const SCRAPE_DEADLINE: Duration = Duration::from_secs(240);

struct Scrape {
    time: Duration,
    series: usize,
    bytes: usize,
}

/// Kills the exporter when the bench ends or panics.
struct Exporter(Child);

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

fn scrape_node_exporter(proc_dir: &Path) -> Result<Scrape, String> {
    let port = free_port();
    let child = Command::new(NODE_EXPORTER)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .args([
            "--collector.disable-defaults",
            "--collector.interrupts",
            "--collector.softnet",
            "--collector.stat",
        ])
        .arg(format!("--path.procfs={}", proc_dir.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{NODE_EXPORTER}: {e}"))?;
    let _guard = Exporter(child);
    let addr = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let mut stream = loop {
        match TcpStream::connect(&addr) {
            Ok(s) => break s,
            Err(_) if started.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => return Err(format!("{NODE_EXPORTER} did not listen on {addr}: {e}")),
        }
    };
    stream
        .set_read_timeout(Some(SCRAPE_DEADLINE))
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::with_capacity(1 << 20, stream);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return Err("no HTTP response".into()),
            Ok(_) if line == "\r\n" => break,
            Ok(_) => {}
            Err(e) => return Err(format!("reading the response head: {e}")),
        }
    }
    // Count the body's bytes and sample lines (not '#') without holding ~1 GB.
    let (mut bytes, mut series, mut at_line_start, mut is_sample) = (0, 0, true, false);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return Err(format!("after {bytes} bytes: {e}")),
        };
        bytes += n;
        for &b in &buf[..n] {
            if at_line_start {
                is_sample = b != b'#' && b != b'\n';
                at_line_start = false;
            }
            if b == b'\n' {
                series += usize::from(is_sample);
                at_line_start = true;
            }
        }
    }
    Ok(Scrape {
        time: start.elapsed(),
        series,
        bytes,
    })
}

fn skewscope_cycle_p50(root: &Path, iterations: usize) -> Duration {
    let mut opts = CollectOptions::new(HostRoot::new(root.join("proc"), root.join("sys")));
    opts.probes = false;
    let mut collector = Collector::new(opts);
    let cfg = ModelConfig::new();
    let mut times: Vec<Duration> = (0..iterations + 2)
        .map(|_| {
            let start = Instant::now();
            let s = collector.collect();
            std::hint::black_box(model::build_report(
                &Window::since_boot(s),
                &cfg,
                &mut Default::default(),
            ));
            start.elapsed()
        })
        .skip(2)
        .collect();
    times.sort();
    times[iterations / 2]
}

fn main() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let capture = manifest.join("testdata/roots/i40e-1152cpu");
    let script = manifest.join("../scripts/derive_root.py");
    let scratch = std::env::temp_dir().join(format!("skewscope-peer-{}", std::process::id()));
    let mut roots: Vec<(u32, PathBuf)> = Vec::new();
    for n in [2u32, 64, 256] {
        let dst = scratch.join(format!("{n}cpu"));
        let ok = Command::new("python3")
            .arg(&script)
            .args(["shrink"])
            .arg(&capture)
            .arg(&dst)
            .arg(n.to_string())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            roots.push((n, dst));
        } else {
            eprintln!(
                "peer: could not derive the {n}-CPU root with {}",
                script.display()
            );
        }
    }
    roots.push((1152, capture));

    println!(
        "skewscope cycle vs {NODE_EXPORTER} scrape (interrupts, softnet, stat), same root; target ratio <= 0.01 at 1152 CPUs"
    );
    println!(
        "{:>5} {:>12} {:>10} {:>12} {:>14} {:>9}  verdict",
        "CPUs", "node_exp", "series", "bytes", "skewscope p50", "ratio"
    );
    let have_peer = Command::new(NODE_EXPORTER)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    for (n, root) in &roots {
        let ours = skewscope_cycle_p50(root, if *n >= 1152 { 11 } else { 41 });
        if !have_peer {
            println!(
                "{n:>5} {:>12} {:>10} {:>12} {:>14.3?} {:>9}  (install {NODE_EXPORTER}: scripts/deps.sh)",
                "-", "-", "-", ours, "-"
            );
            continue;
        }
        match scrape_node_exporter(&root.join("proc")) {
            Ok(s) => {
                let ratio = ours.as_secs_f64() / s.time.as_secs_f64();
                println!(
                    "{n:>5} {:>12.3?} {:>10} {:>12} {:>14.3?} {:>9.5}  {}",
                    s.time,
                    s.series,
                    s.bytes,
                    ours,
                    ratio,
                    match (*n >= 1152, ratio <= 0.01) {
                        (false, _) => "-",
                        (true, true) => "ok",
                        (true, false) => "OVER TARGET",
                    }
                );
            }
            Err(e) => println!("{n:>5} {NODE_EXPORTER} failed: {e}; skewscope p50 {ours:.3?}"),
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
