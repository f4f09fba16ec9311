//! Gate for the privileged live tests: they load and attach real BPF
//! programs, which needs CAP_BPF + CAP_PERFMON (Linux 5.8+) or CAP_SYS_ADMIN,
//! and objects built with clang. Without those they skip with the reason on
//! stderr, unless SKEWSCOPE_REQUIRE_PRIVILEGED=1 (set it wherever they can
//! run, e.g. CI as root) turns the skip into a failure.

pub mod netns;
pub mod sockets;

use skewscope_probes::{kernel_facts, probes_built};

pub fn can_run_privileged(test: &str) -> bool {
    let caps = kernel_facts().effective_caps;
    let has = |name: &str| caps.iter().any(|c| c == name);
    let reason = if !probes_built() {
        Some("BPF objects not built (clang missing at build time)")
    } else if !(has("CAP_SYS_ADMIN") || (has("CAP_BPF") && has("CAP_PERFMON"))) {
        Some("needs CAP_BPF + CAP_PERFMON or CAP_SYS_ADMIN (run as root)")
    } else {
        None
    };
    let Some(reason) = reason else {
        return true;
    };
    if std::env::var_os("SKEWSCOPE_REQUIRE_PRIVILEGED").is_some_and(|v| v == "1") {
        panic!("{test}: {reason}, and SKEWSCOPE_REQUIRE_PRIVILEGED=1");
    }
    eprintln!("skipping {test}: {reason}");
    false
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
