//! Helpers shared by the root-only lab tests: a network namespace of their own,
//! SO_REUSEPORT sockets bound in it, and lookups into the agent's JSON report.
//! Each test binary uses a subset.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use skewscope::sources::netns::in_netns;

/// The address every lab namespace puts on its lo.
pub const ADDR: &str = "10.78.0.1";

/// Whether the tests run as root; otherwise skip with a reason, or fail under
/// SKEWSCOPE_REQUIRE_PRIVILEGED=1.
pub fn privileged() -> bool {
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        std::env::var_os("SKEWSCOPE_REQUIRE_PRIVILEGED").is_none(),
        "SKEWSCOPE_REQUIRE_PRIVILEGED is set but the tests do not run as root"
    );
    eprintln!("skipped: needs root (network namespaces, eBPF)");
    false
}

/// A network namespace with lo up and ADDR on it; deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Self {
        let name = format!("ss-lab-{tag}-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        let ip = |args: &[&str]| {
            let ok = Command::new("ip").args(args).status().unwrap().success();
            assert!(ok, "ip {args:?}");
        };
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &ns.name,
            "addr",
            "add",
            &format!("{ADDR}/32"),
            "dev",
            "lo",
        ]);
        ns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    pub fn inode(&self) -> u64 {
        std::fs::metadata(self.path()).unwrap().ino()
    }

    /// Run `f` inside the namespace (sockets made there stay there).
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_netns(&self.path(), f).unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// An IPv4 socket of `kind` (SOCK_DGRAM, SOCK_STREAM) with SO_REUSEPORT set.
pub fn reuseport_socket(kind: libc::c_int) -> OwnedFd {
    unsafe {
        let fd = libc::socket(libc::AF_INET, kind | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let one: libc::c_int = 1;
        let r = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of_val(&one) as libc::socklen_t,
        );
        assert_eq!(r, 0);
        OwnedFd::from_raw_fd(fd)
    }
}

/// bind(2) an IPv4 address.
pub fn bind(fd: &OwnedFd, addr: SocketAddr) {
    let SocketAddr::V4(v4) = addr else {
        unreachable!()
    };
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*v4.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sin as *const _ as *const libc::sockaddr,
            std::mem::size_of_val(&sin) as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "bind {addr}: {}", std::io::Error::last_os_error());
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
