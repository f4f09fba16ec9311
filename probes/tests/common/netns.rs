//! Private network namespaces for the live tests, made with iproute2 and
//! removed on drop. Names carry the test's pid and a tag so concurrent runs
//! never collide. Traffic stays between these namespaces.

#![allow(dead_code)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

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

/// A named network namespace (/run/netns/NAME), deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `skewscope-<pid>-<tag>` with lo up and IPv6 off, so the only
    /// IPv4 traffic in it is the test's own (no router solicitations,
    /// MLD or DAD).
    pub fn new(tag: &str) -> Self {
        let name = format!("skewscope-{}-{tag}", std::process::id());
        ip(&["netns", "add", &name]);
        let netns = Self { name };
        for key in [
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ] {
            // net.* sysctls are per network namespace.
            ip(&["netns", "exec", &netns.name, "sysctl", "-qw", key]);
        }
        ip(&["-n", &netns.name, "link", "set", "lo", "up"]);
        netns
    }

    /// The namespace's inode number (what the probes report as netns).
    pub fn inode(&self) -> u64 {
        std::fs::metadata(format!("/run/netns/{}", self.name))
            .expect("stat netns")
            .ino()
    }

    /// Runs `f` on a thread that joined this namespace; sockets created there
    /// belong to it and may be used from any thread afterwards.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = File::open(&path).expect("open netns");
            // SAFETY: setns(2) on this thread only, with a valid netns fd.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("netns thread")
    }

    /// Sets XPS of `device`'s TX queue `queue` to the CPUs in `cpu_mask`
    /// (sysfs of this namespace, as `ip netns exec` mounts it).
    pub fn set_xps(&self, device: &str, queue: u32, cpu_mask: u64) {
        let path = format!("/sys/class/net/{device}/queues/tx-{queue}/xps_cpus");
        let script = format!("echo {cpu_mask:x} > {path}");
        ip(&["netns", "exec", &self.name, "sh", "-c", &script]);
    }

    /// ifindex of `device` inside this namespace.
    pub fn ifindex(&self, device: &str) -> u32 {
        let device = std::ffi::CString::new(device).unwrap();
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
/// `a`/dev "ska" 10.77.0.1/24 and `b`/dev "skb" 10.77.0.2/24, with static
/// neighbour entries so no ARP crosses the link.
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
        let a = Netns::new(&format!("{tag}-a"));
        let b = Netns::new(&format!("{tag}-b"));
        let queues = queues.to_string();
        ip(&[
            "-n",
            &a.name,
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
            ip(&[
                "-n",
                &ns.name,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                dev,
            ]);
            ip(&[
                "-n",
                &ns.name,
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
            ip(&["-n", &ns.name, "link", "set", dev, "up"]);
        }
        Self { a, b }
    }
}
