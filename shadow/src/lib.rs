//! Shadow replay of candidate SO_REUSEPORT selectors.
//!
//! Before anyone attaches an `SO_ATTACH_REUSEPORT_EBPF` selector to a
//! production group, [`replay`] runs the real candidate program over observed
//! flows and predicts the per-socket load it would produce, side by side with
//! the kernel default:
//!
//! - a private network namespace, entered by a thread of the engine's own,
//!   holds a replica group of N sockets with SO_REUSEPORT on the flows' port;
//! - the candidate is loaded through the real verifier and attached to the
//!   replica only; its `socks` REUSEPORT_SOCKARRAY holds replica socket i at
//!   index i;
//! - every flow sample is sent once through the replica with its own source
//!   address and port, from its recorded RX CPU, and the receiving socket is
//!   read back (UDP: crafted datagrams on a raw socket with sendmmsg/recvmmsg;
//!   TCP: connect/accept);
//! - the same replica without a program is the kernel-default counterfactual.
//!
//! Production groups are never touched: nothing is attached, borrowed or
//! sent outside the private namespace. See docs/shadow.md for the candidate
//! contract, the trace format and what the prediction does and does not mean.
//!
//! The crate knows nothing of the agent; [`cli`] is the piece the agent's
//! `skewscope shadow` command calls.

mod candidate;
pub mod cli;
mod engine;
mod error;
mod locality;
mod netns;
mod packet;
mod plan;
mod policy;
mod rejections;
mod replica;
mod report;
mod sys;
mod tcp;
mod trace;
mod udp;

pub use candidate::{Builtin, Candidate};
pub use engine::replay;
pub use error::ShadowError;
pub use plan::{ReplayOptions, MAX_HEAVY_FLOWS, MAX_SOCKETS};
pub use report::{lsi, CpuPinning, PolicyResult, ShadowReport, SocketShare, Verdict, SCHEMA};
pub use trace::{
    parse_line, parse_trace, read_trace, split_by_group, write_trace, FlowSample, GroupKey, Proto,
};

/// Whether the built-in selectors were compiled into this build (false when
/// clang was missing at build time; they are then reported as rejected).
pub fn selectors_built() -> bool {
    !cfg!(skewscope_shadow_no_bpf)
}

/// Why this process cannot replay, if it cannot: the replay needs
/// CAP_SYS_ADMIN (unshare(CLONE_NEWNET)) and CAP_NET_ADMIN (namespace
/// routes, sk_reuseport programs, SO_RCVBUFFORCE); CAP_SYS_ADMIN also covers
/// BPF_PROG_LOAD.
pub fn replay_privileges() -> Result<(), String> {
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_SYS_ADMIN: u32 = 21;
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("reading /proc/self/status: {e}"))?;
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .ok_or("no CapEff line in /proc/self/status")?;
    let missing: Vec<&str> = [
        (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
    ]
    .into_iter()
    .filter(|(bit, _)| eff & (1u64 << bit) == 0)
    .map(|(_, name)| name)
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("missing {} (run as root)", missing.join(" and ")))
    }
}
