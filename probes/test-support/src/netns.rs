//! Private network namespaces for the live tests, made with iproute2 and
//! deleted on drop (also when the test fails). Names carry the test's pid
//! and a counter, so concurrent tests and runs never collide; traffic stays
//! inside them.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `ip` with `args`, panicking with its stderr on failure.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A named network namespace (/run/netns/NAME) with lo up, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// `skewscope-<tag>-<pid>-<n>` with lo up; IPv6 as the kernel's default
    /// for new namespaces (on unless the host disabled it).
    pub fn new(tag: &str) -> Self {
        Self::create(tag, &[])
    }

    /// Like [`Netns::new`] with IPv6 off before lo comes up, so the only
    /// traffic in it is the test's own IPv4 (no router solicitations, MLD or
    /// DAD).
    pub fn without_ipv6(tag: &str) -> Self {
        Self::create(
            tag,
            &[
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        )
    }

    /// Like [`Netns::new`] with IPv6 switched on for lo (::1), whatever the
    /// host's default for new namespaces is; panics when the kernel has no
    /// IPv6 at all (ipv6.disable=1), which no namespace can change.
    pub fn with_ipv6(tag: &str) -> Self {
        Self::create(
            tag,
            &[
                "net.ipv6.conf.all.disable_ipv6=0",
                "net.ipv6.conf.default.disable_ipv6=0",
                "net.ipv6.conf.lo.disable_ipv6=0",
            ],
        )
    }

    fn create(tag: &str, sysctls: &[&str]) -> Self {
        let name = format!(
            "skewscope-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        let netns = Self { name };
        for key in sysctls {
            netns.sysctl(key);
        }
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    /// /run/netns/NAME.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// The namespace's inode number (what the kernel and the agent report
    /// as its id).
    pub fn inode(&self) -> u64 {
        std::fs::metadata(self.path()).expect("stat netns").ino()
    }

    /// `ip -n NAME ARGS...`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// `ip netns exec NAME CMD...` (sysfs of this namespace mounted),
    /// whatever its exit status.
    pub fn exec(&self, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .output()
            .expect("spawn ip netns exec")
    }

    /// Sets a `net.*` sysctl (per network namespace), `key=value`.
    pub fn sysctl(&self, key_value: &str) {
        ip(&["netns", "exec", &self.name, "sysctl", "-qw", key_value]);
    }

    /// Runs `f` on a thread that joined this namespace (setns(2) moves only
    /// the calling thread); sockets made there belong to it and may be used
    /// from any thread afterwards.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = self.path();
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let file = File::open(&path).expect("open netns");
                    // SAFETY: setns(2) on this thread only, with a valid netns fd.
                    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// A veth pair `a`/`b`, both ends in this namespace, with `queues` RX
    /// and TX queues on each end.
    pub fn add_veth(&self, a: &str, b: &str, queues: u32) {
        let q = queues.to_string();
        self.ip(&[
            "link",
            "add",
            a,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            b,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
        ]);
    }

    /// Sets XPS of `device`'s TX queue `queue` to the CPUs in `cpu_mask`
    /// (sysfs of this namespace, as `ip netns exec` mounts it).
    pub fn set_xps(&self, device: &str, queue: u32, cpu_mask: u64) {
        let path = format!("/sys/class/net/{device}/queues/tx-{queue}/xps_cpus");
        let script = format!("echo {cpu_mask:x} > {path}");
        let out = self.exec(&["sh", "-c", &script]);
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// ifindex of `device` inside this namespace.
    pub fn ifindex(&self, device: &str) -> u32 {
        let device = std::ffi::CString::new(device).expect("device name");
        self.run(move || {
            // SAFETY: NUL-terminated name.
            let index = unsafe { libc::if_nametoindex(device.as_ptr()) };
            assert_ne!(
                index,
                0,
                "if_nametoindex: {}",
                std::io::Error::last_os_error()
            );
            index
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace also destroys the devices inside it.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Two namespaces joined by a veth pair with `queues` TX/RX queues per end:
/// `a`/dev [`VETH_A`] [`ADDR_A`]/24 and `b`/dev [`VETH_B`] [`ADDR_B`]/24,
/// IPv6 off and static neighbour entries, so no ARP or other traffic but the
/// test's crosses the link.
pub struct VethPair {
    pub a: Netns,
    pub b: Netns,
}

pub const VETH_A: &str = "ska";
pub const VETH_B: &str = "skb";
pub const ADDR_A: &str = "10.77.0.1";
pub const ADDR_B: &str = "10.77.0.2";
const MAC_A: &str = "02:5c:00:00:00:01";
const MAC_B: &str = "02:5c:00:00:00:02";

impl VethPair {
    pub fn new(tag: &str, queues: u32) -> Self {
        let a = Netns::without_ipv6(&format!("{tag}-a"));
        let b = Netns::without_ipv6(&format!("{tag}-b"));
        let queues = queues.to_string();
        a.ip(&[
            "link",
            "add",
            VETH_A,
            "address",
            MAC_A,
            "numtxqueues",
            &queues,
            "numrxqueues",
            &queues,
            "type",
            "veth",
            "peer",
            "name",
            VETH_B,
            "address",
            MAC_B,
            "numtxqueues",
            &queues,
            "numrxqueues",
            &queues,
            "netns",
            &b.name,
        ]);
        for (ns, dev, addr, peer_addr, peer_mac) in [
            (&a, VETH_A, ADDR_A, ADDR_B, MAC_B),
            (&b, VETH_B, ADDR_B, ADDR_A, MAC_A),
        ] {
            ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", dev]);
            ns.ip(&[
                "neigh",
                "add",
                peer_addr,
                "lladdr",
                peer_mac,
                "dev",
                dev,
                "nud",
                "permanent",
            ]);
            ns.ip(&["link", "set", dev, "up"]);
        }
        Self { a, b }
    }
}
