//! Gate for the privileged live tests: they load and attach real BPF
//! programs, which needs CAP_BPF + CAP_PERFMON (Linux 5.8+) or CAP_SYS_ADMIN,
//! and objects built with clang. Without those they skip with the reason on
//! stderr, unless SKEWSCOPE_REQUIRE_PRIVILEGED=1 (set it wherever they can
//! run, e.g. CI as root) turns the skip into a failure.

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
