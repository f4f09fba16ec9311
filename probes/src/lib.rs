//! skewscope eBPF probes: C programs under `bpf/` (CO-RE against the running
//! kernel's BTF), their `#[repr(C)]` mirrors, the aya loader, and capability
//! probing for `skewscope doctor`.
//!
//! - [`SoftirqTimeProbe`]: per-CPU NET_RX / NET_TX softirq count and time
//!   (irq:softirq_entry / irq:softirq_exit).
//! - [`caps`]: kernel facts and which attach methods work on this host.
//!
//! All tracepoint programs attach as raw tracepoints (no tracefs needed; see
//! `loader.rs`). Every probe aggregates in per-CPU maps and is read by
//! polling; nothing is streamed per event. Each probe owns its kernel objects
//! and releases them on drop; nothing is pinned.
//!
//! The objects are compiled by build.rs. When clang was missing at build
//! time, [`probes_built`] is false and every load fails with
//! [`ProbeError::NotBuilt`].

pub mod caps;
mod cpus;
mod error;
mod loader;
mod softirq_time;

pub use caps::{
    check_fentry, check_kprobe, check_raw_tracepoints, check_sk_reuseport_load, kernel_facts,
    Capability, KernelFacts, PROBE_TRACEPOINTS,
};
pub use error::ProbeError;
pub use softirq_time::{CpuSoftirqTime, SoftirqTimeProbe};

/// Whether the BPF objects were compiled into this build (false when clang
/// was missing at build time).
pub fn probes_built() -> bool {
    !cfg!(skewscope_no_bpf)
}
