//! skewscope eBPF probes (filled in by the probes work).
