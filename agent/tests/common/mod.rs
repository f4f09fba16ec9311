//! Helpers shared by the integration tests: for the root-only labs a network namespace
//! of their own, SO_REUSEPORT sockets bound in it and lookups into the agent's JSON
//! report; for the exporter tests a long-running agent whose output is collected and a
//! loopback reuseport group with traffic. Each test binary uses a subset.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skewscope_test_support::{netns, sockets, Needs};
use socket2::{SockRef, Type};

/// The address every lab namespace puts on its lo.
pub const ADDR: &str = "10.78.0.1";

/// Whether `test` can run: root (network namespaces, eBPF) and iproute2. Otherwise it
/// skips with the reason, or fails under SKEWSCOPE_REQUIRE_PRIVILEGED=1.
pub fn privileged(test: &str) -> bool {
    Needs::new(test).root().tool("ip", &["-V"]).met()
}

/// A lab's network namespace: lo up with ADDR on it; deleted on drop.
pub struct Netns(netns::Netns);

impl std::ops::Deref for Netns {
    type Target = netns::Netns;
    fn deref(&self) -> &netns::Netns {
        &self.0
    }
}

impl Netns {
    pub fn new(tag: &str) -> Self {
        let ns = netns::Netns::new(&format!("lab-{tag}"));
        ns.ip(&["addr", "add", &format!("{ADDR}/32"), "dev", "lo"]);
        Netns(ns)
    }

    /// Run `f` inside the namespace (sockets made there stay there).
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.0.run(f)
    }
}

/// An IPv4 socket of `kind` (SOCK_DGRAM, SOCK_STREAM) with SO_REUSEPORT set.
pub fn reuseport_socket(kind: libc::c_int) -> OwnedFd {
    let any = SocketAddr::from(([0, 0, 0, 0], 0));
    sockets::reuseport_socket(Type::from(kind), any)
        .expect("reuseport socket")
        .into()
}

/// bind(2) an address.
pub fn bind(fd: &impl AsFd, addr: SocketAddr) {
    SockRef::from(fd)
        .bind(&addr.into())
        .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
}

/// connect(2) to an address.
pub fn connect(fd: &impl AsFd, addr: SocketAddr) {
    SockRef::from(fd)
        .connect(&addr.into())
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
}

pub fn inode_of(fd: &impl AsRawFd) -> u64 {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) }, 0);
    st.st_ino
}

/// The report's reuseport group of (netns, port); panics when it is not reported.
pub fn group(report: &serde_json::Value, netns: u64, port: u16) -> &serde_json::Value {
    report["reuseport_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["netns"] == netns && g["port"] == port)
        .unwrap_or_else(|| panic!("group {netns}/{port} not reported: {report}"))
}

/// std / (mean + 1e-9) over counts (population std), as the agent computes LSI.
pub fn lsi(counts: &[u64]) -> f64 {
    let n = counts.len() as f64;
    let mean = counts.iter().sum::<u64>() as f64 / n;
    let var = counts
        .iter()
        .map(|&c| (c as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    var.sqrt() / (mean + 1e-9)
}

impl Netns {
    /// `n` UDP sockets in one SO_REUSEPORT group on `addr`, made inside the namespace.
    pub fn udp_group(&self, addr: SocketAddr, n: usize) -> Vec<std::net::UdpSocket> {
        self.enter(|| (0..n).map(|_| self_udp_member(addr)).collect())
    }

    /// One more member of a UDP reuseport group on `addr` (a restart joining).
    pub fn udp_member(&self, addr: SocketAddr) -> std::net::UdpSocket {
        self.enter(|| self_udp_member(addr))
    }
}

fn self_udp_member(addr: SocketAddr) -> std::net::UdpSocket {
    let fd = reuseport_socket(libc::SOCK_DGRAM);
    bind(&fd, addr);
    std::net::UdpSocket::from(fd)
}

/// One reader thread per socket counting what it receives: the ground truth of a lab.
pub struct CountingReaders {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    counts: std::sync::Arc<Vec<std::sync::atomic::AtomicU64>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl CountingReaders {
    pub fn start(sockets: Vec<std::net::UdpSocket>) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let stop = Arc::new(AtomicBool::new(false));
        let counts: Arc<Vec<AtomicU64>> =
            Arc::new(sockets.iter().map(|_| AtomicU64::new(0)).collect());
        let threads = sockets
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let (stop, counts) = (stop.clone(), counts.clone());
                std::thread::spawn(move || {
                    s.set_read_timeout(Some(std::time::Duration::from_millis(50)))
                        .unwrap();
                    let mut buf = [0u8; 256];
                    while !stop.load(Ordering::Relaxed) {
                        if s.recv(&mut buf).is_ok() {
                            counts[i].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            counts,
            threads,
        }
    }

    /// Datagrams each socket has read so far.
    pub fn counts(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
            .collect()
    }

    /// Stop the readers and return the final counts.
    pub fn stop(mut self) -> Vec<u64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in std::mem::take(&mut self.threads) {
            t.join().unwrap();
        }
        self.counts()
    }
}

/// A free TCP port on 127.0.0.1 (free when asked).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The agent with a clean environment plus `env`.
pub fn agent_command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skewscope"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .args(args);
    cmd
}

/// A long-running agent ([`agent_command`]) whose stdout lines (with the time each
/// arrived) and stderr are collected as they come; killed on drop.
pub struct Agent {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<(Instant, String)>>>,
    pub stderr: Arc<Mutex<String>>,
}

impl Agent {
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Agent {
        let mut child = agent_command(args, env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (out, l) = (child.stdout.take().unwrap(), lines.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                l.lock().unwrap().push((Instant::now(), line));
            }
        });
        let (err, e) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = e.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Agent {
            child,
            lines,
            stderr,
        }
    }

    pub fn line_count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The stdout lines so far as JSON reports (`--output json`).
    pub fn reports(&self) -> Vec<serde_json::Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// At least `n` reports (bounded: 30 s).
    pub fn wait_reports(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.reports();
            if r.len() >= n {
                return r;
            }
            assert!(Instant::now() < deadline, "only {} reports", r.len());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address the agent logged for /metrics (`--prometheus-listen`).
    pub fn prometheus_addr(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let err = self.stderr();
            if let Some(rest) = err.split("serving Prometheus metrics on http://").nth(1) {
                return rest.split("/metrics").next().unwrap().to_string();
            }
            assert!(Instant::now() < deadline, "no Prometheus address in: {err}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then the exit code (bounded).
    pub fn stop(mut self) -> i32 {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the agent did not stop within 15 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP SO_REUSEPORT group of two sockets on 127.0.0.1 (this namespace), fed with
/// datagrams from 16 source ports until dropped, so the listener sources report it and
/// group, listener and flow metrics have data.
pub struct ReuseportGroup {
    pub port: u16,
    stop: Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl ReuseportGroup {
    pub fn start() -> ReuseportGroup {
        use std::sync::atomic::{AtomicBool, Ordering};
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for _ in 0..2 {
            let fd = reuseport_socket(libc::SOCK_DGRAM);
            bind(&fd, addr);
            let sock = std::net::UdpSocket::from(fd);
            sock.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                while !stop.load(Ordering::Relaxed) {
                    let _ = sock.recv(&mut buf);
                }
            }));
        }
        let s = stop.clone();
        threads.push(std::thread::spawn(move || {
            // Many source ports (flows), ~2000 datagrams/s, only to 127.0.0.1.
            let senders: Vec<std::net::UdpSocket> = (0..16)
                .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
                .collect();
            let mut i = 0usize;
            while !s.load(Ordering::Relaxed) {
                let _ = senders[i % senders.len()].send_to(&[0u8; 32], addr);
                i += 1;
                if i.is_multiple_of(20) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }));
        ReuseportGroup {
            port,
            stop,
            threads,
        }
    }
}

impl Drop for ReuseportGroup {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Start the agent and wait until its window is open (it logs that on stderr).
pub fn agent_window(args: &[&str]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_skewscope"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let line = lines
            .next()
            .expect("agent stderr closed before its window opened")
            .unwrap();
        if line.contains("window open") {
            break;
        }
        assert!(Instant::now() < deadline, "window never opened");
    }
    std::thread::spawn(move || lines.for_each(drop));
    child
}

/// Wait for a `snapshot --json` agent to exit successfully; its report.
pub fn finish(mut child: Child) -> serde_json::Value {
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success());
    serde_json::from_str(&out).unwrap()
}
