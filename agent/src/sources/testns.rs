//! Test-only helpers of the live netlink/ioctl tests of sources: the privilege
//! gate, the host's NICs, and [`VethPair`], two namespaces joined by a
//! multi-queue veth pair whose traffic the test controls. Single namespaces are
//! the test-support crate's [`Netns`]. Netlink sockets and ioctls act in the
//! namespace of the thread that opens them, so both run code on a thread moved
//! there with setns(2).

use std::fs::File;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub(crate) use skewscope_test_support::netns::Netns;

/// Whether privileged live tests can run here (root, `ip` and `ethtool`
/// present), through the workspace's one gate: says why when they cannot;
/// with SKEWSCOPE_REQUIRE_PRIVILEGED=1 not being able to run is a failure.
pub(crate) fn privileged(test: &str) -> bool {
    skewscope_test_support::Needs::new(test)
        .root()
        .tool("ip", &["-V"])
        .tool("ethtool", &["--version"])
        .met()
}

/// Devices of this namespace backed by a driver (/sys/class/net/X/device/driver),
/// i.e. NICs rather than virtual devices, with that driver's name, by name.
pub(crate) fn nic_drivers() -> Vec<(String, String)> {
    let mut nics: Vec<(String, String)> = std::fs::read_dir("/sys/class/net")
        .expect("/sys/class/net")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let link = std::fs::read_link(format!("/sys/class/net/{name}/device/driver")).ok()?;
            Some((name, link.file_name()?.to_str()?.to_string()))
        })
        .collect();
    nics.sort();
    nics
}

pub(crate) const QUEUES: u32 = 4;
/// Device names; not "a"/"b": iproute2 6.1 reads a bare "a" as "address".
pub(crate) const DEV_A: &str = "ssveth0";
pub(crate) const DEV_B: &str = "ssveth1";
pub(crate) const ADDR_A: &str = "10.211.0.1";
pub(crate) const ADDR_B: &str = "10.211.0.2";

static SEQ: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip(8)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two fresh, uniquely named namespaces `ns_a` and `ns_b` joined by a veth pair
/// (DEV_A in ns_a, DEV_B in ns_b, QUEUES rx and tx queues each). Traffic from ns_a to
/// ADDR_B crosses the pair (within one namespace it would take lo). Both namespaces
/// are deleted on drop, also when the test panics.
pub(crate) struct VethPair {
    pub ns_a: String,
    pub ns_b: String,
}

impl VethPair {
    pub(crate) fn new(tag: &str) -> Self {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let base = format!("skewscope-{tag}-{}-{n}", std::process::id());
        // Guard first, so a failure below still cleans up what exists.
        let pair = VethPair {
            ns_a: format!("{base}-a"),
            ns_b: format!("{base}-b"),
        };
        ip(&["netns", "add", &pair.ns_a]);
        ip(&["netns", "add", &pair.ns_b]);
        let q = QUEUES.to_string();
        #[rustfmt::skip]
        ip(&["-n", &pair.ns_a, "link", "add", "name", DEV_A,
            "numrxqueues", &q, "numtxqueues", &q, "type", "veth",
            "peer", "name", DEV_B, "numrxqueues", &q, "numtxqueues", &q,
            "netns", &pair.ns_b]);
        ip(&[
            "-n",
            &pair.ns_a,
            "addr",
            "add",
            &format!("{ADDR_A}/24"),
            "dev",
            DEV_A,
        ]);
        ip(&[
            "-n",
            &pair.ns_b,
            "addr",
            "add",
            &format!("{ADDR_B}/24"),
            "dev",
            DEV_B,
        ]);
        for (ns, dev) in [(&pair.ns_a, DEV_A), (&pair.ns_b, DEV_B), (&pair.ns_a, "lo")] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        pair
    }

    /// Run `f` on a new thread that has joined namespace `ns` (netlink sockets and
    /// ioctls act in the namespace of the thread that opens them).
    pub(crate) fn run_in<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/var/run/netns/{ns}");
        let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        std::thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: setns on a valid netns fd; affects only this thread, which
                // ends when `f` returns.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Send `count` UDP datagrams from ns_a to ADDR_B over `flows` source ports, so
    /// the flow hash spreads them over the queues. Returns the number sent.
    pub(crate) fn send_udp(&self, flows: u16, count: u32) -> u32 {
        Self::run_in(&self.ns_a, || {
            let socks: Vec<UdpSocket> = (0..flows.max(1))
                .map(|_| UdpSocket::bind((ADDR_A, 0)).expect("bind in test netns"))
                .collect();
            // The first datagram waits for ARP; give it time before the burst.
            socks[0].send_to(b"warmup", (ADDR_B, 9)).expect("send");
            std::thread::sleep(Duration::from_millis(200));
            let mut sent = 1;
            for i in 1..count {
                let sock = &socks[i as usize % socks.len()];
                if sock.send_to(&[0u8; 64], (ADDR_B, 9)).is_ok() {
                    sent += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
            sent
        })
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting a namespace destroys its veth end and with it the peer.
        for ns in [&self.ns_a, &self.ns_b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
