//! `skewscope doctor`: what this kernel, these privileges and this root let skewscope
//! observe, and for each probe and source whether it will run or why it is skipped.
//! Exits 0 whatever is missing: a missing capability is a finding, not a failure.

use std::fmt::Write as _;
use std::io::Write as _;

use serde::Serialize;
use skewscope_probes::caps;

use crate::collect::cycle::OWNERS_NEED;
use crate::sources::genl::{self, Family, GenlError};
use crate::sources::{ethtool_rss, qstats, sysfs_net, HostRoot};

pub const DOCTOR_SCHEMA: &str = "skewscope.doctor/v1";

#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    pub schema: &'static str,
    pub kernel: KernelReport,
    /// Kernel features, each available or not, with the kernel's own answer.
    pub checks: Vec<Check>,
    /// Every capability the agent uses, what it enables, and whether it is held.
    pub capabilities: Vec<CapabilityUse>,
    /// What the agent will run with these facts.
    pub plan: Vec<Plan>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CapabilityUse {
    /// "CAP_BPF", ...
    pub name: &'static str,
    /// What the agent loses without it.
    pub enables: &'static str,
    /// In this process's effective set.
    pub held: bool,
}

/// The capabilities the agent uses and the kernel check each one passes. The
/// chart (helm/skewscope) and the systemd unit grant exactly these, NET_ADMIN
/// aside (live shadow replay only).
pub const CAPABILITIES: &[(&str, &str)] = &[
    (
        "CAP_BPF",
        "bpf(2) map and program loads (bpf_capable(), Linux 5.8+; CAP_SYS_ADMIN covers it)",
    ),
    (
        "CAP_PERFMON",
        "attaching tracing programs: raw tracepoints, fentry, kprobes (perfmon_capable(), 5.8+; CAP_SYS_ADMIN covers it)",
    ),
    (
        "CAP_SYS_ADMIN",
        "setns(2) into other network namespaces for sock_diag (every netns)",
    ),
    (
        "CAP_SYS_PTRACE",
        "socket owners: /proc/PID/fd of other users' processes (ptrace_may_access)",
    ),
    (
        "CAP_DAC_READ_SEARCH",
        "socket owners: searching other users' /proc/PID/fd directories (mode 0500)",
    ),
    (
        "CAP_NET_ADMIN",
        "live shadow replay only (`shadow --live`: sockets in its own namespace); not the agent",
    ),
];

#[derive(Debug, Clone, Serialize)]
pub struct KernelReport {
    pub release: String,
    pub btf: bool,
    pub bpffs: Option<String>,
    pub tracefs: Option<String>,
    pub kprobe_pmu: bool,
    pub bpf_stats_enabled: Option<bool>,
    pub effective_capabilities: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub available: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// "probe" or "source".
    pub kind: &'static str,
    pub name: String,
    pub will_run: bool,
    pub why: String,
}

impl From<caps::Capability> for Check {
    fn from(c: caps::Capability) -> Self {
        Check {
            name: c.name,
            available: c.available,
            detail: c.detail,
        }
    }
}

/// The tracepoints each probe needs; a probe runs only if all of them attach.
const PROBE_NEEDS: &[(&str, &[&str])] =
    &[("softirq_time", &["irq:softirq_entry", "irq:softirq_exit"])];

/// Files each procfs/sysfs source reads (relative to the root).
const FILE_SOURCES: &[(&str, &str, bool)] = &[
    ("proc_interrupts", "interrupts", true),
    ("proc_softirqs", "softirqs", true),
    ("proc_stat", "stat", true),
    ("softnet_stat", "net/softnet_stat", true),
    ("irq_affinity", "irq", true),
    ("sysctls", "sys/net/core/netdev_budget", true),
    ("sysfs_net", "class/net", false),
    ("cpu_online", "devices/system/cpu/online", false),
    ("numa_nodes", "devices/system/node", false),
];

pub fn gather(root: &HostRoot) -> DoctorReport {
    let facts = caps::kernel_facts();
    let live = root.is_live();

    let mut checks: Vec<Check> = caps::check_raw_tracepoints(caps::PROBE_TRACEPOINTS)
        .into_iter()
        .map(Check::from)
        .collect();
    let fentry = Check::from(caps::check_fentry("reuseport_select_sock"));
    let kprobe = Check::from(caps::check_kprobe());
    checks.push(fentry.clone());
    checks.push(kprobe.clone());
    // The fallbacks of per-listener events and of UDP read ages, each tried with a
    // trivial program (the probes try them in order and stop at the first that works).
    for func in ["sock_def_readable", "skb_consume_udp"] {
        checks.push(caps::check_fentry(func).into());
        checks.push(caps::check_kprobe_on(func).into());
    }
    checks.push(caps::check_sk_reuseport_load().into());
    // One CTRL_CMD_GETFAMILY per family, over the sources' own genetlink client.
    checks.push(family_check(
        "genl/ethtool",
        "ethtool",
        &genl::resolve("ethtool"),
    ));
    let netdev = genl::resolve(qstats::NETDEV_FAMILY_NAME);
    checks.push(family_check(
        "genl/netdev",
        qstats::NETDEV_FAMILY_NAME,
        &netdev,
    ));
    checks.push(match &netdev {
        Ok(Some(family)) if family.has_op(qstats::NETDEV_CMD_QSTATS_GET) => check(
            "genl/netdev qstats-get",
            true,
            "the netdev family has qstats-get (Linux 6.9+)",
        ),
        Ok(_) => check(
            "genl/netdev qstats-get",
            false,
            "the netdev family lacks qstats-get (before Linux 6.9)",
        ),
        Err(e) => check(
            "genl/netdev qstats-get",
            false,
            &format!("CTRL_CMD_GETFAMILY {}: {e}", qstats::NETDEV_FAMILY_NAME),
        ),
    });
    if live {
        for dev in devices(root) {
            checks.push(match ethtool_rss::read(&dev) {
                Ok(rss) => check(
                    &format!("ethtool RSS_GET {dev}"),
                    true,
                    &format!(
                        "{} indirection entries, key {} bytes, hfunc {} (via {:?})",
                        rss.indirection.len(),
                        rss.key.as_ref().map_or(0, |k| k.len()),
                        rss.hfunc.as_deref().unwrap_or("?"),
                        rss.source
                    ),
                ),
                Err(e) => check(&format!("ethtool RSS_GET {dev}"), false, &e.to_string()),
            });
            let ifindex = sysfs_net::read_device(root, &dev)
                .ok()
                .and_then(|d| d.ifindex);
            checks.push(match qstats::read_queue_stats(ifindex) {
                Ok(q) if q.iter().any(|s| s.packets.is_some()) => check(
                    &format!("netdev qstats {dev}"),
                    true,
                    &format!("{} queue entries with packet counters", q.len()),
                ),
                Ok(_) => check(
                    &format!("netdev qstats {dev}"),
                    false,
                    "the driver reports no per-queue qstats",
                ),
                Err(e) => check(&format!("netdev qstats {dev}"), false, &e.to_string()),
            });
        }
    }

    let held = |cap: &str| facts.effective_caps.iter().any(|c| c == cap);
    let capabilities: Vec<CapabilityUse> = CAPABILITIES
        .iter()
        .map(|&(name, enables)| CapabilityUse {
            name,
            enables,
            held: held(name),
        })
        .collect();

    let mut plan = Vec::new();
    for (probe, needs) in PROBE_NEEDS {
        let missing: Vec<&Check> = checks
            .iter()
            .filter(|c| needs.iter().any(|n| c.name.ends_with(n)) && !c.available)
            .collect();
        let (will_run, why) = if !live {
            (
                false,
                "alternate --procfs/--sysfs root: probes watch the running kernel".to_string(),
            )
        } else if !skewscope_probes::probes_built() {
            (
                false,
                "built without clang: no BPF objects embedded".to_string(),
            )
        } else if let Some(c) = missing.first() {
            (false, format!("{}: {}", c.name, c.detail))
        } else {
            (true, format!("raw tracepoints {} attach", needs.join(", ")))
        };
        plan.push(Plan {
            kind: "probe",
            name: probe.to_string(),
            will_run,
            why,
        });
    }
    plan.push(selection_plan(live));
    plan.push(listener_events_plan(live));
    plan.push(rx_plan(live));

    for (name, rel, in_proc) in FILE_SOURCES {
        let path = if *in_proc {
            root.proc_path(rel)
        } else {
            root.sys_path(rel)
        };
        let ok = path.exists();
        plan.push(Plan {
            kind: "source",
            name: name.to_string(),
            will_run: ok,
            why: if ok {
                format!("{} present", path.display())
            } else {
                format!("{} absent", path.display())
            },
        });
    }
    for name in [
        "netdev_qstats",
        "ethtool_rss",
        "ethtool_stats",
        "ethtool_channels",
    ] {
        plan.push(Plan {
            kind: "source",
            name: name.into(),
            will_run: live,
            why: if live {
                "asked per device each cycle; unsupported devices are reported as such".into()
            } else {
                "skipped: --procfs/--sysfs point away from the running kernel".into()
            },
        });
    }

    let (will_run, why) = if !live {
        (false, NOT_LIVE.to_string())
    } else if held("CAP_SYS_ADMIN") {
        (
            true,
            "setns(2) into every network namespace (CAP_SYS_ADMIN held)".to_string(),
        )
    } else {
        (
            false,
            "setns needs CAP_SYS_ADMIN: only this namespace's sockets are seen".to_string(),
        )
    };
    plan.push(Plan {
        kind: "source",
        name: "sock_diag (every netns)".into(),
        will_run,
        why,
    });
    let missing: Vec<&str> = ["CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"]
        .into_iter()
        .filter(|c| !held(c))
        .collect();
    let (will_run, why) = if !live {
        (false, NOT_LIVE.to_string())
    } else if missing.is_empty() {
        (
            true,
            "/proc/PID/fd of every process (CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH held)"
                .to_string(),
        )
    } else {
        (
            false,
            format!(
                "{OWNERS_NEED} (missing {}): owners of other users' sockets are null",
                missing.join(", ")
            ),
        )
    };
    plan.push(Plan {
        kind: "source",
        name: "socket owners".into(),
        will_run,
        why,
    });

    DoctorReport {
        schema: DOCTOR_SCHEMA,
        kernel: KernelReport {
            release: facts.release,
            btf: facts.btf,
            bpffs: facts.bpffs.map(|p| p.display().to_string()),
            tracefs: facts.tracefs.map(|p| p.display().to_string()),
            kprobe_pmu: facts.kprobe_pmu,
            bpf_stats_enabled: facts.bpf_stats_enabled,
            effective_capabilities: facts.effective_caps,
        },
        checks,
        capabilities,
        plan,
    }
}

const NOT_LIVE: &str = "skipped: --procfs/--sysfs point away from the running kernel";

/// Which hook per-listener events get here, found the way the agent finds it:
/// by loading the probe (tp_btf sock:sk_data_ready, Linux 6.3+, else fentry,
/// else a kprobe on sock_def_readable), with why the ones tried first were
/// refused; dropping it detaches.
fn listener_events_plan(live: bool) -> Plan {
    let (will_run, why) = if !live {
        (false, NOT_LIVE.to_string())
    } else if !skewscope_probes::probes_built() {
        (false, "built without clang: no BPF objects embedded".into())
    } else {
        match skewscope_probes::ListenerEventsProbe::load() {
            Ok(p) => (
                true,
                format!(
                    "per-listener events from {}{}",
                    p.hook().name(),
                    refusals(p.refused().iter().map(|(h, e)| (h.name(), e.as_str())))
                ),
            ),
            Err(e) => (false, e.to_string()),
        }
    };
    Plan {
        kind: "probe",
        name: "listener_events".into(),
        will_run,
        why,
    }
}

/// " (refused: A: why; B: why)", or "" when nothing was refused.
fn refusals<'a>(refused: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let parts: Vec<String> = refused
        .map(|(hook, why)| format!("{hook}: {why}"))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" (refused: {})", parts.join("; "))
    }
}

/// Which hook exact selections get here, found the way the agent finds it: each hook
/// of the selection probe is loaded and attached on its own (fexit, then kprobe +
/// kretprobe) and dropped again, so the plan names the one `auto` takes and what the
/// kernel answered for the other.
fn selection_plan(live: bool) -> Plan {
    use skewscope_probes::{SelectionChoice, SelectionHook, SelectionProbe};
    let (will_run, why) = if !live {
        (false, NOT_LIVE.to_string())
    } else if !skewscope_probes::probes_built() {
        (false, "built without clang: no BPF objects embedded".into())
    } else {
        let outcomes: Vec<(SelectionHook, Result<(), String>)> =
            [SelectionHook::Fexit, SelectionHook::Kprobe]
                .into_iter()
                .map(|hook| {
                    let outcome = SelectionProbe::load(SelectionChoice::Only(hook))
                        .map(drop)
                        .map_err(|e| match e {
                            // "probe selection unavailable on this kernel: HOOK: why"
                            skewscope_probes::ProbeError::Unavailable { detail, .. } => detail,
                            e => format!("{}: {e}", hook.name()),
                        });
                    (hook, outcome)
                })
                .collect();
        selection_why(&outcomes)
    };
    Plan {
        kind: "probe",
        name: "selection (exact reuseport choice and hash)".into(),
        will_run,
        why,
    }
}

/// The plan's verdict from each hook's own load: the first that attached is the one
/// `auto` takes; the others are named with the kernel's answer.
fn selection_why(
    outcomes: &[(skewscope_probes::SelectionHook, Result<(), String>)],
) -> (bool, String) {
    let chosen = outcomes.iter().find(|(_, o)| o.is_ok()).map(|(h, _)| *h);
    let others: Vec<String> = outcomes
        .iter()
        .filter(|(h, _)| Some(*h) != chosen)
        .map(|(h, o)| match o {
            Ok(()) => format!("{} attaches too", h.name()),
            Err(why) => format!("refused: {why}"),
        })
        .collect();
    match chosen {
        Some(hook) => (
            true,
            format!(
                "opt-in (--selection-hook): auto uses {}; {}",
                hook.name(),
                others.join("; ")
            ),
        ),
        None => (false, others.join("; ")),
    }
}

/// Which rx object loads here (rx.bpf.o, or rx_compat.bpf.o where the verifier
/// refuses BPF_XCHG/BPF_CMPXCHG: before 5.12, commit 5ffa25502b5a) and where UDP
/// reads are aged, found by loading the probe.
fn rx_plan(live: bool) -> Plan {
    let (will_run, why) = if !live {
        (false, NOT_LIVE.to_string())
    } else if !skewscope_probes::probes_built() {
        (false, "built without clang: no BPF objects embedded".into())
    } else {
        let object = match skewscope_probes::caps::atomic_exchange_supported() {
            Ok(true) => Ok("rx.bpf.o (the verifier takes BPF_XCHG/BPF_CMPXCHG)"),
            Ok(false) => {
                Ok("rx_compat.bpf.o (the verifier refuses BPF_XCHG/BPF_CMPXCHG: before 5.12)")
            }
            Err(e) => Err(format!("a test BPF load failed: {e}")),
        };
        match (
            object,
            skewscope_probes::RxProbe::load(skewscope_probes::RxConfig::default()),
        ) {
            (Err(e), _) => (false, e),
            (Ok(_), Err(e)) => (false, e.to_string()),
            (Ok(object), Ok(p)) => {
                let refused = refusals(
                    p.read_hooks_refused()
                        .iter()
                        .map(|(h, e)| (h.name(), e.as_str())),
                );
                let ages = match p.read_hook() {
                    Some(hook) => format!("UDP read ages from {hook}{refused}", hook = hook.name()),
                    None => format!(
                        "no ingress ages: {}",
                        p.ages_unavailable()
                            .map_or(String::new(), |e| e.to_string())
                    ),
                };
                (true, format!("{object}; {ages}"))
            }
        }
    };
    Plan {
        kind: "probe",
        name: "rx (queues, flows, ages)".into(),
        will_run,
        why,
    }
}

fn check(name: &str, available: bool, detail: &str) -> Check {
    Check {
        name: name.to_string(),
        available,
        detail: detail.to_string(),
    }
}

fn family_check(name: &str, family: &str, r: &Result<Option<Family>, GenlError>) -> Check {
    match r {
        Ok(Some(_)) => check(name, true, "generic netlink family registered"),
        Ok(None) => check(name, false, "generic netlink family not registered"),
        Err(e) => check(name, false, &format!("CTRL_CMD_GETFAMILY {family}: {e}")),
    }
}

/// Devices doctor asks about: bus-backed or multi-queue, as the collector selects them.
fn devices(root: &HostRoot) -> Vec<String> {
    sysfs_net::list_devices(root)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| {
            sysfs_net::read_device(root, n)
                .map(|d| d.has_device || d.rx_queues.len() > 1)
                .unwrap_or(false)
        })
        .collect()
}

pub fn render(r: &DoctorReport) -> String {
    let mut out = String::new();
    let k = &r.kernel;
    let _ = writeln!(
        out,
        "kernel {}  BTF {}  kprobe PMU {}",
        k.release,
        yes(k.btf),
        yes(k.kprobe_pmu)
    );
    let _ = writeln!(
        out,
        "bpffs {}  tracefs {}  bpf_stats_enabled {}",
        k.bpffs.as_deref().unwrap_or("not mounted"),
        k.tracefs.as_deref().unwrap_or("not mounted"),
        k.bpf_stats_enabled.map_or("?", yes)
    );
    let _ = writeln!(out, "\ncapabilities (effective set)");
    for c in &r.capabilities {
        let _ = writeln!(
            out,
            "  [{}] {:<20} {:<4} {}",
            mark(c.held),
            c.name,
            yes(c.held),
            c.enables
        );
    }
    let _ = writeln!(out, "\nchecks");
    for c in &r.checks {
        let _ = writeln!(out, "  [{}] {:<36} {}", mark(c.available), c.name, c.detail);
    }
    let _ = writeln!(out, "\nplan");
    for p in &r.plan {
        let verdict = if p.will_run { "will run" } else { "skipped" };
        let _ = writeln!(
            out,
            "  [{}] {} {:<28} {verdict}: {}",
            mark(p.will_run),
            p.kind,
            p.name,
            p.why
        );
    }
    out
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn mark(b: bool) -> char {
    if b {
        '+'
    } else {
        '-'
    }
}

pub fn main(root: &HostRoot, json: bool) -> anyhow::Result<()> {
    let report = gather(root);
    let text = if json {
        serde_json::to_string(&report)? + "\n"
    } else {
        render(&report)
    };
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use skewscope_probes::SelectionHook::{Fexit, Kprobe};

    #[test]
    fn selection_plan_names_the_hook_auto_takes_and_the_refusals() {
        let (run, why) = selection_why(&[(Fexit, Ok(())), (Kprobe, Ok(()))]);
        assert!(run);
        assert_eq!(
            why,
            "opt-in (--selection-hook): auto uses fexit/reuseport_select_sock; \
             kprobe+kretprobe/reuseport_select_sock attaches too"
        );
        let fexit_refused = "fexit/reuseport_select_sock: probe selection: attaching ... EPERM";
        let (run, why) = selection_why(&[(Fexit, Err(fexit_refused.into())), (Kprobe, Ok(()))]);
        assert!(run);
        assert!(
            why.ends_with(&format!(
                "auto uses kprobe+kretprobe/reuseport_select_sock; refused: {fexit_refused}"
            )),
            "{why}"
        );
        let (run, why) = selection_why(&[
            (Fexit, Err(fexit_refused.into())),
            (
                Kprobe,
                Err("kprobe+kretprobe/reuseport_select_sock: kprobe PMU absent".into()),
            ),
        ]);
        assert!(!run);
        assert_eq!(
            why,
            format!(
                "refused: {fexit_refused}; refused: \
                 kprobe+kretprobe/reuseport_select_sock: kprobe PMU absent"
            )
        );
    }
}
