//! Gate for the privileged live tests: they load and attach real BPF
//! programs, which needs CAP_BPF + CAP_PERFMON (Linux 5.8+) or CAP_SYS_ADMIN,
//! and objects built with clang. The gate is the workspace's one
//! ([`skewscope_test_support::Needs`]): without those a test skips with the
//! reason on stderr, and SKEWSCOPE_REQUIRE_PRIVILEGED=1 turns the skip into a
//! failure.

pub mod sockets;

#[allow(unused_imports)] // only the veth tests use it
pub use skewscope_test_support::netns;
use skewscope_test_support::Needs;

use skewscope_probes::probes_built;

/// What every live probe test needs: the BPF objects and the capabilities
/// to load them. Chain more (`.cpus(2)`, `.tool(..)`) before `.met()`.
pub fn needs_probes(test: &str) -> Needs {
    Needs::new(test)
        .that(
            probes_built(),
            "BPF objects not built (clang missing at build time)",
        )
        .caps_any_of(&[&["CAP_SYS_ADMIN"], &["CAP_BPF", "CAP_PERFMON"]])
}

pub fn can_run_privileged(test: &str) -> bool {
    needs_probes(test).met()
}

/// [`can_run_privileged`] for the tests that build namespaces with `ip`.
#[allow(dead_code)]
pub fn can_run_in_netns(test: &str) -> bool {
    needs_probes(test).tool("ip", &["-V"]).met()
}

/// Kernel ids of the programs, links and maps among `program_ids`/`map_ids`
/// that still exist, polled until none is left or 5 s have passed.
/// Program and link ids go at close; maps are released after an RCU grace
/// period (bpf_prog_put -> free_used_maps), hence the polling.
#[allow(dead_code)]
pub fn assert_released(what: &str, program_ids: &[u32], map_ids: &[u32]) {
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let programs: Vec<u32> = aya::programs::loaded_programs()
            .filter_map(Result::ok)
            .map(|p| p.id())
            .filter(|id| program_ids.contains(id))
            .collect();
        let links: Vec<u32> = aya::programs::loaded_links()
            .filter_map(Result::ok)
            .filter(|l| program_ids.contains(&l.program_id()))
            .map(|l| l.id())
            .collect();
        let maps: Vec<u32> = aya::maps::loaded_maps()
            .filter_map(Result::ok)
            .map(|m| m.id())
            .filter(|id| map_ids.contains(id))
            .collect();
        if programs.is_empty() && links.is_empty() && maps.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: left behind after drop: programs {programs:?}, links {links:?}, maps {maps:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Links attached to any of `program_ids` (one per raw_tp attachment).
#[allow(dead_code)]
pub fn links_of(program_ids: &[u32]) -> Vec<u32> {
    aya::programs::loaded_links()
        .filter_map(Result::ok)
        .filter(|l| program_ids.contains(&l.program_id()))
        .map(|l| l.id())
        .collect()
}

/// The socket inode of `fd` (fstat st_ino), as sock_diag reports it.
#[allow(dead_code)]
pub fn socket_inode(fd: &impl std::os::fd::AsRawFd) -> u64 {
    // SAFETY: fstat on a valid fd into a zeroed out-struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::fstat(fd.as_raw_fd(), &mut st) };
    assert_eq!(rc, 0, "fstat: {}", std::io::Error::last_os_error());
    st.st_ino
}

/// Inode of this process's network namespace (/proc/self/ns/net).
#[allow(dead_code)]
pub fn own_netns_inode() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/net")
        .expect("stat /proc/self/ns/net")
        .ino()
}
