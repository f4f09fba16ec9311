//! skewscope eBPF probes: C programs under `bpf/` (CO-RE against the running
//! kernel's BTF), their `#[repr(C)]` mirrors, the aya loader, and capability
//! probing for `skewscope doctor`.
//!
//! - [`SoftirqTimeProbe`]: per-CPU NET_RX / NET_TX softirq count and time
//!   (irq:softirq_entry / irq:softirq_exit).
//! - [`ListenerEventsProbe`]: per-socket sk_data_ready counts of TCP
//!   listeners and UDP sockets with their SO_REUSEPORT group id, index and
//!   size (sock:sk_data_ready, else fentry or kprobe on sock_def_readable()).
//! - [`RxProbe`]: per-RX-queue packet counts, a flow table for watched
//!   ports and ingress-age histograms per socket and RX queue
//!   (net:netif_receive_skb, skb:skb_copy_datagram_iovec, and for UDP reads
//!   fentry or kprobe on skb_consume_udp() or sock:sock_recv_length with
//!   sock:sk_data_ready).
//! - [`NapiProbe`]: per-CPU NAPI polls, work and budget exhaustion per NAPI
//!   instance (napi:napi_poll).
//! - [`DropsProbe`]: drops with their reason and TCP resets sent, for
//!   watched ports (skb:kfree_skb, tcp:tcp_send_reset).
//! - [`SelectionProbe`]: exact SO_REUSEPORT selections per socket and hash
//!   (fexit, else kprobe + kretprobe, on reuseport_select_sock; opt-in in the
//!   agent).
//! - [`caps`]: kernel facts and which attach methods work on this host.
//!
//! All tracepoint programs attach as raw tracepoints (no tracefs needed; see
//! `loader.rs`); the per-packet ones ([`ListenerEventsProbe`], [`RxProbe`])
//! as BTF-enabled ones (tp_btf), whose typed arguments make field reads
//! plain loads. Every probe aggregates in the kernel and is read by
//! polling; nothing is streamed per event. Counters are per-CPU maps (the
//! hot ones behind a direct-mapped slot array, whose lookup the verifier
//! inlines), except the rx flow table and age histograms (large values:
//! shared maps with atomic adds, see bpf/rx.bpf.c). Each probe is its own
//! BPF object, loads and fails independently, owns its kernel objects and
//! releases them on drop; nothing is pinned. [`ProgramStats`]
//! (`program_stats()` on every probe) reports the kernel's run count/time
//! per program while run-time stats are on (kernel.bpf_stats_enabled, or a
//! held BPF_ENABLE_STATS fd, [`enable_run_time_stats`]); the agent holds one
//! only for its probe budget's short calibration windows.
//!
//! The objects are compiled by build.rs. When clang was missing at build
//! time, [`probes_built`] is false and every load fails with
//! [`ProbeError::NotBuilt`].

mod btf_enum;
pub mod caps;
mod cpus;
mod drops;
mod error;
mod hooks;
mod listener_events;
mod loader;
mod napi;
mod rx;
mod selection;
mod softirq_time;
mod stats;

pub use caps::{
    check_fentry, check_kprobe, check_kprobe_on, check_raw_tracepoints, check_sk_reuseport_load,
    kernel_facts, Capability, KernelFacts, PROBE_TRACEPOINTS,
};
pub use drops::{DropCount, DropsProbe, ResetCount, MAX_WATCHED_DROPS};
pub use error::ProbeError;
pub use hooks::{enable_run_time_stats, Hooks};
pub use listener_events::{ListenerEvents, ListenerEventsProbe, ListenerHook, MAX_WATCHED_PORTS};
pub use napi::{NapiProbe, NapiStats};
pub use rx::{
    log2_bucket_bounds_ns, EntryCount, EntryDevice, FlowSample, QueueAge, QueueCount, ReadHook,
    RxConfig, RxProbe, SocketAge, AGE_BUCKETS, MAX_ENTRY_COUNTERS, MAX_ENTRY_DEVICES,
    MAX_WATCHED_RX,
};
pub use selection::{
    reciprocal_scale, HashSelections, SelectionChoice, SelectionHook, SelectionProbe, Selections,
    SocketSelections,
};
pub use softirq_time::{CpuSoftirqTime, SoftirqTimeProbe};
pub use stats::ProgramStats;

/// Whether the BPF objects were compiled into this build (false when clang
/// was missing at build time).
pub fn probes_built() -> bool {
    !cfg!(skewscope_no_bpf)
}
