//! What the kernel counts of a loaded program's runs; a leaf the loader and the
//! hooks both report in.

/// Run-time accounting of one loaded program (bpf_prog_info run_cnt and
/// run_time_ns, Linux 5.1). The kernel only accumulates them while the
/// administrator has `kernel.bpf_stats_enabled=1` (or a BPF_ENABLE_STATS fd
/// is held); otherwise both stay 0. skewscope holds such an fd only during its
/// short calibration windows (the probe budget's cost per packet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramStats {
    /// Program name in the object ("sk_data_ready", ...).
    pub name: String,
    /// Runs counted while stats were enabled.
    pub run_count: u64,
    /// Total run time of those runs, in nanoseconds.
    pub run_time_ns: u64,
    /// Runs the kernel skipped to prevent recursion (bpf_prog_info.recursion_misses,
    /// counted whatever the stats setting): for a kprobe, every hit while another
    /// kprobe-type program ran on the CPU (trace_call_bpf()'s bpf_prog_active guard,
    /// kernel/trace/bpf_trace.c, counted since 6.7); for fentry and tp_btf, re-entries
    /// of the same program. 0 where the kernel has no such field (before 5.12).
    pub recursion_misses: u64,
}

impl ProgramStats {
    /// Mean cost per run in nanoseconds; None before any counted run.
    pub fn ns_per_run(&self) -> Option<u64> {
        (self.run_count > 0).then(|| self.run_time_ns / self.run_count)
    }
}
