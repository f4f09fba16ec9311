//! One collection cycle: every source is read (each timed, each allowed to fail alone)
//! into a [`Snapshot`]. The model and sinks run after; nothing here knows of them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::probe_budget::{DutyCycler, ProbeSampling};
use crate::error::SourceError;
use crate::snapshot::{
    DeviceFacts, ListenerFacts, QueueCounters, Snapshot, SourceOutcome, SourceStatus,
};
use crate::sources::owners::{self, Owner};
use crate::sources::sock_diag;
use crate::sources::{
    channels, cpus, ethtool_rss, ethtool_stats, interrupts, irq_affinity, irq_map, proc_stat,
    qstats, softirqs, softnet, sys_irq, sysctls, sysfs_net, HostRoot,
};

#[derive(Debug, Clone)]
pub struct CollectOptions {
    pub root: HostRoot,
    /// Captured `ethtool -S`/`ethtool -x` outputs named like a sosreport's
    /// sos_commands/networking (`ethtool_-S_DEV`, `ethtool_-x_DEV`).
    pub ethtool_dir: Option<PathBuf>,
    /// Whether to attach the eBPF probes (live roots only).
    pub probes: bool,
    /// Whether to ask the kernel over netlink and SIOCETHTOOL (live roots only).
    pub netlink: bool,
    /// Only these devices (all multi-queue or bus-backed devices when empty).
    pub devices: Vec<String>,
    /// How the per-packet probes are attached (see probe_budget).
    pub probe_sampling: ProbeSampling,
    /// The duty-cycle period when they are sampled: at most the collection interval,
    /// so every window holds the same attached share.
    pub probe_period: Duration,
    /// Forced hooks and the age sampling rate of the probes.
    pub probe_choices: crate::config::ProbeChoices,
    /// The exact-selection probe's hooks; None: not loaded (opt-in).
    pub selection: Option<skewscope_probes::SelectionChoice>,
}

impl CollectOptions {
    pub fn new(root: HostRoot) -> Self {
        Self {
            root,
            ethtool_dir: None,
            probes: true,
            netlink: true,
            devices: Vec::new(),
            probe_sampling: ProbeSampling::default(),
            probe_period: Duration::from_secs(1),
            probe_choices: Default::default(),
            selection: None,
        }
    }

    /// Live-kernel sources (netlink, ioctl, eBPF) describe the running kernel, so they are
    /// only asked when the roots are the running kernel's own.
    pub fn live_kernel(&self) -> bool {
        self.root.is_live()
    }
}

/// Reads sources cycle after cycle; holds what must outlive a cycle (attached probes,
/// the watched ports, the owner cache).
pub struct Collector {
    opts: CollectOptions,
    softirq_probe: Result<skewscope_probes::SoftirqTimeProbe, String>,
    listener_probe: Result<skewscope_probes::ListenerEventsProbe, String>,
    rx_probe: Result<skewscope_probes::RxProbe, String>,
    selection_probe: Result<skewscope_probes::SelectionProbe, String>,
    /// Switches the per-packet probes on and off under a budget; None while they are
    /// attached all the time.
    duty: Option<DutyCycler>,
    /// (IP protocol, port) of every reuseport group, as last pushed to the probes.
    watched: BTreeSet<(u8, u16)>,
    /// Devices the rx probe counts per RSS table entry, as last pushed to it.
    entry_devices: Vec<skewscope_probes::EntryDevice>,
    /// Owners by socket inode, rescanned only when the set of group members changes.
    owners: std::sync::Arc<HashMap<u64, Owner>>,
    owned_inodes: BTreeSet<u64>,
    /// How the last owner scan fared, reported every cycle that has group members.
    owners_status: Result<(), String>,
}

const SKIPPED_NOT_LIVE: &str = "skipped: --procfs/--sysfs point away from the running kernel";

impl Collector {
    pub fn new(opts: CollectOptions) -> Self {
        let skip = if !opts.live_kernel() {
            Some(SKIPPED_NOT_LIVE)
        } else if !opts.probes {
            Some("skipped: probes disabled (--no-probes, or a since-boot snapshot)")
        } else {
            None
        };
        // Each probe loads alone: one the kernel refuses leaves the others running.
        fn load<T, E: std::fmt::Display>(
            skip: Option<&str>,
            load: impl FnOnce() -> Result<T, E>,
        ) -> Result<T, String> {
            match skip {
                Some(why) => Err(why.to_string()),
                None => load().map_err(|e| {
                    log::warn!("{e}");
                    e.to_string()
                }),
            }
        }
        let mut softirq_probe = load(skip, skewscope_probes::SoftirqTimeProbe::load);
        let choices = opts.probe_choices;
        let mut listener_probe = load(skip, || {
            skewscope_probes::ListenerEventsProbe::load_with(choices.listener_hook)
        });
        let mut rx_probe = load(skip, || {
            skewscope_probes::RxProbe::load(skewscope_probes::RxConfig {
                age_sample_every: choices.age_sample_every,
                read_hook: choices.rx_read_hook,
                ..skewscope_probes::RxConfig::default()
            })
        });
        let mut selection_probe = selection_probe(skip, opts.selection);
        let mut duty = None;
        if opts.probe_sampling != ProbeSampling::Continuous {
            let hooks: Vec<_> = [
                softirq_probe.as_mut().ok().and_then(|p| p.take_hooks()),
                listener_probe.as_mut().ok().and_then(|p| p.take_hooks()),
                rx_probe.as_mut().ok().and_then(|p| p.take_hooks()),
                selection_probe.as_mut().ok().and_then(|p| p.take_hooks()),
            ]
            .into_iter()
            .flatten()
            .collect();
            if !hooks.is_empty() {
                duty = Some(DutyCycler::start(
                    hooks,
                    opts.probe_sampling,
                    opts.probe_period,
                    opts.root.clone(),
                ));
            }
        }
        Self {
            softirq_probe,
            listener_probe,
            rx_probe,
            selection_probe,
            duty,
            opts,
            watched: BTreeSet::new(),
            entry_devices: Vec::new(),
            owners: Default::default(),
            owned_inodes: BTreeSet::new(),
            owners_status: Ok(()),
        }
    }

    pub fn options(&self) -> &CollectOptions {
        &self.opts
    }

    /// Run count and time of every program of the loaded probes, named
    /// "probe/program"; zero unless BPF run-time stats are on (see
    /// skewscope_probes::ProgramStats). Probes that did not load, or whose
    /// stats cannot be read, are left out.
    pub fn program_stats(&self) -> Vec<(String, skewscope_probes::ProgramStats)> {
        fn named(
            probe: &str,
            stats: Result<Vec<skewscope_probes::ProgramStats>, skewscope_probes::ProbeError>,
        ) -> Vec<(String, skewscope_probes::ProgramStats)> {
            match stats {
                Ok(stats) => stats
                    .into_iter()
                    .map(|s| (format!("{probe}/{}", s.name), s))
                    .collect(),
                Err(e) => {
                    log::debug!("{e}");
                    Vec::new()
                }
            }
        }
        let mut out = Vec::new();
        if let Ok(p) = &self.softirq_probe {
            out.extend(named("softirq_time", p.program_stats()));
        }
        if let Ok(p) = &self.listener_probe {
            out.extend(named("listener_events", p.program_stats()));
        }
        if let Ok(p) = &self.rx_probe {
            out.extend(named("rx", p.program_stats()));
        }
        if let Ok(p) = &self.selection_probe {
            out.extend(named("selection", p.program_stats()));
        }
        out
    }

    pub fn collect(&mut self) -> Snapshot {
        let taken_at = Instant::now();
        let root = &self.opts.root;
        let live = self.opts.live_kernel() && self.opts.netlink;
        let mut s = Sources::default();

        let interrupts = self.read_interrupts(&mut s);
        let softirqs = s.attempt("proc_softirqs", || softirqs::read(root));
        let proc_stat = s.attempt("proc_stat", || proc_stat::read(root));
        let softnet = s.attempt("softnet_stat", || softnet::read(root));
        let online_cpus = s.attempt("cpu_online", || cpus::read_online(root));
        let cpu_nodes = s
            .attempt("numa_nodes", || cpus::read_numa_nodes(root))
            .unwrap_or_default();
        let sysctls = s.attempt("sysctls", || sysctls::read(root));

        let softirq_time = probe_read(&mut s, "ebpf_softirq_time", &self.softirq_probe, |p| {
            p.read()
        });

        let qstats = if live {
            s.attempt("netdev_qstats", || qstats::read_queue_stats(None))
        } else {
            s.skip("netdev_qstats");
            None
        };
        let channels: BTreeMap<String, channels::Channels> = if live {
            s.attempt("ethtool_channels", channels::read_all_blocking)
                .unwrap_or_default()
                .into_iter()
                .collect()
        } else {
            s.skip("ethtool_channels");
            BTreeMap::new()
        };

        let host_netns = crate::sources::netns::current_netns_inode()
            .ok()
            .filter(|_| live);
        let rx_queue_counts = probe_read(&mut s, "ebpf_rx_queues", &self.rx_probe, |p| {
            p.read_queues()
        });
        let names = s
            .attempt("sysfs_net", || sysfs_net::list_devices(root))
            .unwrap_or_default();
        let mut devices = Vec::new();
        for name in names {
            if !self.opts.devices.is_empty() && !self.opts.devices.contains(&name) {
                continue;
            }
            let Some(sys) = s.attempt(&format!("sysfs_net/{name}"), || {
                sysfs_net::read_device(root, &name)
            }) else {
                continue;
            };
            if self.opts.devices.is_empty() && !sys.has_device && sys.rx_queues.len() < 2 {
                continue; // loopback, tunnels, single-queue virtual devices
            }
            let mut dev = self.device_facts(
                &mut s,
                sys,
                interrupts.as_ref(),
                qstats.as_deref(),
                &channels,
            );
            if dev.queue_counters.iter().all(|q| q.rx_packets.is_none()) {
                if let (Some(counts), Some(ifindex), Some(netns)) =
                    (&rx_queue_counts, dev.sys.ifindex, host_netns)
                {
                    dev.queue_counters = ebpf_queue_counters(counts, netns, ifindex);
                }
            }
            devices.push(dev);
        }
        let rx_entry_counts = self.entry_counts(&mut s, &devices, host_netns);

        let listeners = self.listener_facts(&mut s);
        let rx_queue_ages = ages_read(&mut s, "ebpf_rx_queue_ages", &self.rx_probe, |p| {
            p.read_queue_ages()
        });
        let probe_coverage = self.duty.as_ref().map(|d| d.coverage().reading(taken_at));

        Snapshot {
            host_netns,
            listeners,
            rx_queue_counts,
            rx_queue_ages,
            rx_entry_counts,
            probe_coverage,
            taken_at,
            interrupts,
            softirqs,
            proc_stat,
            softnet,
            softirq_time,
            online_cpus,
            cpu_nodes,
            sysctls,
            devices,
            sources: s.statuses,
        }
    }

    /// Lists the devices whose packets the rx probe should count per RSS table entry
    /// (when they changed), then reads the counts. A device qualifies with a table whose
    /// size is a power of two and a driver whose hash-to-entry rule is cited
    /// (sources::toeplitz::driver_rule: the low bits of the hash); the hash itself is
    /// whatever the NIC computed, so the hash function does not matter here.
    fn entry_counts(
        &mut self,
        s: &mut Sources,
        devices: &[DeviceFacts],
        host_netns: Option<u64>,
    ) -> Option<Vec<skewscope_probes::EntryCount>> {
        let wanted: Vec<skewscope_probes::EntryDevice> = devices
            .iter()
            .filter_map(|d| {
                let size = d.rss.as_ref()?.indirection.len();
                crate::sources::toeplitz::driver_rule(d.sys.driver.as_deref()?)?;
                crate::sources::toeplitz::entry_of(0, size)?;
                Some(skewscope_probes::EntryDevice {
                    netns: host_netns?,
                    ifindex: d.sys.ifindex?,
                    table_size: u32::try_from(size).ok()?,
                })
            })
            .collect();
        if wanted != self.entry_devices {
            if let Ok(p) = &mut self.rx_probe {
                match p.set_entry_devices(&wanted) {
                    Ok(left_out) => {
                        if !left_out.is_empty() {
                            log::warn!(
                                "rx probe: no per-entry RSS counts for {left_out:?} (slot taken or no room)"
                            );
                        }
                        self.entry_devices = wanted;
                    }
                    // Tried again next cycle.
                    Err(e) => log::warn!("{e}"),
                }
            }
        }
        // Recorded only while the probe runs: its absence is ebpf_rx_queues' to report.
        let probe = self.rx_probe.as_ref().ok()?;
        probe_read(s, "ebpf_rx_entries", &Ok(probe), |p| p.read_entries())
    }

    /// IRQ rows: only the network devices' from /sys/kernel/irq where the root has that
    /// tree and enough CPUs for /proc/interrupts to be large, else all of
    /// /proc/interrupts. The source status names the way taken; a failed sysfs read (e.g.
    /// a per_cpu_count cut at one page) is reported and falls back.
    fn read_interrupts(&self, s: &mut Sources) -> Option<interrupts::Interrupts> {
        let root = &self.opts.root;
        if sys_irq::preferred(root) {
            if let Some(ints) =
                s.attempt("sys_kernel_irq", || sys_irq::read(root, &self.opts.devices))
            {
                return Some(ints);
            }
        }
        s.attempt("proc_interrupts", || interrupts::read(root))
    }

    /// Listening sockets in every namespace, their owners, and the listener probes' maps.
    fn listener_facts(&mut self, s: &mut Sources) -> Option<ListenerFacts> {
        let root = &self.opts.root;
        let sockets = if self.opts.live_kernel() && self.opts.netlink {
            let start = Instant::now();
            let (sockets, failures) = sock_diag::dump_all_namespaces(root);
            let us = start.elapsed().as_micros() as u64;
            // One namespace failing is reported; the others' sockets still count.
            let errors: Vec<String> = failures
                .iter()
                .map(|(ns, e)| format!("{}: {e}", ns.path.display()))
                .collect();
            s.record(
                "sock_diag",
                if errors.is_empty() {
                    Ok(())
                } else {
                    Err(errors.join("; "))
                },
                us,
            );
            sockets
        } else {
            s.attempt("proc_net_sockets", || sock_diag::read_proc_net(root))?
        };

        let groups = sock_diag::candidate_groups(&sockets);
        let watched: BTreeSet<(u8, u16)> = groups
            .iter()
            .map(|g| {
                let proto = match g.protocol {
                    sock_diag::Protocol::Tcp => libc::IPPROTO_TCP as u8,
                    sock_diag::Protocol::Udp => libc::IPPROTO_UDP as u8,
                };
                (proto, g.local.port())
            })
            .collect();
        if watched != self.watched {
            let pairs: Vec<(u8, u16)> = watched.iter().copied().collect();
            let ports: Vec<u16> = pairs
                .iter()
                .map(|(_, p)| *p)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            if let Ok(p) = &mut self.listener_probe {
                if let Err(e) = p.set_watched_ports(&ports) {
                    log::warn!("{e}");
                }
            }
            if let Ok(p) = &mut self.rx_probe {
                if let Err(e) = p.set_watched(&pairs) {
                    log::warn!("{e}");
                }
            }
            self.watched = watched;
        }

        let members: BTreeSet<u64> = groups
            .iter()
            .flat_map(|g| g.members.iter().map(|m| m.inode))
            .collect();
        if members != self.owned_inodes {
            let start = Instant::now();
            let wanted: HashSet<u64> = members.iter().copied().collect();
            self.owners = std::sync::Arc::new(owners::scan_owners(root, &wanted));
            let unowned = members
                .iter()
                .filter(|i| !self.owners.contains_key(i))
                .count();
            let effective = if unowned > 0 && self.opts.live_kernel() {
                skewscope_probes::kernel_facts().effective_caps
            } else {
                Vec::new()
            };
            self.owners_status =
                owners_outcome(unowned, members.len(), self.opts.live_kernel(), &effective);
            s.record(
                "owners",
                self.owners_status.clone(),
                start.elapsed().as_micros() as u64,
            );
            self.owned_inodes = members;
        } else if !members.is_empty() {
            // The cached scan still describes these sockets: say how it fared.
            s.record("owners", self.owners_status.clone(), 0);
        }

        Some(ListenerFacts {
            sockets,
            owners: self.owners.clone(),
            events: {
                let events = probe_read(s, "ebpf_listener_events", &self.listener_probe, |p| {
                    p.read()
                });
                if let Ok(p) = &self.listener_probe {
                    s.set_hook(p.hook().name());
                }
                events
            },
            selections: probe_read(s, "ebpf_selection", &self.selection_probe, |p| p.read()),
            flows: probe_read(s, "ebpf_rx_flows", &self.rx_probe, |p| p.read_flows()),
            socket_ages: ages_read(s, "ebpf_rx_socket_ages", &self.rx_probe, |p| {
                p.read_socket_ages()
            }),
        })
    }

    fn device_facts(
        &self,
        s: &mut Sources,
        sys: sysfs_net::NetDevice,
        interrupts: Option<&interrupts::Interrupts>,
        qstats: Option<&[qstats::QueueStats]>,
        channels: &BTreeMap<String, channels::Channels>,
    ) -> DeviceFacts {
        let root = &self.opts.root;
        let live = self.opts.live_kernel() && self.opts.netlink;
        let name = sys.name.clone();

        let queue_irqs = match interrupts {
            Some(ints) => {
                let hints = irq_map::read_hints(root, &name);
                irq_map::map_queue_irqs(ints, std::slice::from_ref(&hints))
            }
            None => Vec::new(),
        };
        let mut irq_affinity = BTreeMap::new();
        for irq in queue_irqs.iter().map(|q| q.irq) {
            if let Ok(aff) = irq_affinity::read(root, irq) {
                irq_affinity.insert(irq, aff);
            }
        }

        let mut queue_counters = Vec::new();
        let mut rss = None;
        let mut flow_hash = None;
        if live {
            rss = s.attempt(&format!("ethtool_rss/{name}"), || ethtool_rss::read(&name));
            if rss.as_ref().is_some_and(|r| !r.indirection.is_empty()) {
                flow_hash = s.attempt(&format!("ethtool_flow_hash/{name}"), || {
                    ethtool_rss::read_flow_hash(&name)
                });
            }
            if let (Some(all), Some(ifindex)) = (qstats, sys.ifindex) {
                queue_counters = all
                    .iter()
                    .filter(|q| q.ifindex == ifindex && q.queue_type == qstats::QueueType::Rx)
                    .map(|q| QueueCounters {
                        queue: q.queue,
                        rx_packets: q.packets,
                        rx_bytes: q.bytes,
                        source: "netdev_qstats",
                    })
                    .collect();
            }
            if queue_counters.iter().all(|q| q.rx_packets.is_none()) {
                if let Some(stats) = s.attempt(&format!("ethtool_stats/{name}"), || {
                    ethtool_stats::read_ioctl(&name)
                }) {
                    queue_counters = from_driver_stats(&stats.stats, "ethtool_stats");
                }
            }
        } else if let Some(dir) = &self.opts.ethtool_dir {
            let x = dir.join(format!("ethtool_-x_{name}"));
            if x.exists() {
                rss = s.attempt(&format!("ethtool_rss/{name}"), || {
                    crate::sources::read_parsed(&x, ethtool_rss::parse_ethtool_x)
                });
            }
            let stats_path = dir.join(format!("ethtool_-S_{name}"));
            if stats_path.exists() {
                if let Some(stats) = s.attempt(&format!("ethtool_stats/{name}"), || {
                    crate::sources::read_parsed(&stats_path, ethtool_stats::parse_ethtool_s)
                }) {
                    queue_counters = from_driver_stats(&stats, "ethtool_text");
                }
            }
        }

        DeviceFacts {
            channels: channels.get(&name).cloned(),
            sys,
            queue_irqs,
            irq_affinity,
            rss,
            flow_hash,
            queue_counters,
        }
    }
}

/// The exact-selection probe, when asked for (opt-in). A kernel that refuses every hook
/// it may use makes it skipped, with each reason: a fact of the kernel, not a failure.
fn selection_probe(
    skip: Option<&str>,
    choice: Option<skewscope_probes::SelectionChoice>,
) -> Result<skewscope_probes::SelectionProbe, String> {
    if let Some(why) = skip {
        return Err(why.to_string());
    }
    let Some(choice) = choice else {
        return Err(SELECTION_OFF.to_string());
    };
    match skewscope_probes::SelectionProbe::load(choice) {
        Ok(p) => {
            log::info!(
                "probe selection: exact reuseport selections from {}",
                p.hook().name()
            );
            Ok(p)
        }
        Err(e @ skewscope_probes::ProbeError::Unavailable { .. }) => {
            log::warn!("{e}");
            Err(format!("skipped: {e}"))
        }
        Err(e) => {
            log::warn!("{e}");
            Err(e.to_string())
        }
    }
}

/// The `ebpf_selection` source's reason while the probe is not asked for.
pub const SELECTION_OFF: &str = "skipped: exact selection is opt-in (--selection-hook \
     auto|fexit|kprobe, or [probes] selection_hook)";

/// Read a probe's map, recording the outcome under `name`; a probe that did not load is
/// reported with the reason it did not.
fn probe_read<P, T>(
    s: &mut Sources,
    name: &str,
    probe: &Result<P, String>,
    read: impl FnOnce(&P) -> Result<T, skewscope_probes::ProbeError>,
) -> Option<T> {
    match probe {
        Ok(p) => s.attempt(name, || {
            read(p).map_err(|e| SourceError::Kernel {
                what: name.to_string(),
                msg: e.to_string(),
            })
        }),
        Err(why) => {
            s.record(name, Err(why.clone()), 0);
            None
        }
    }
}

/// [`probe_read`] for the rx probe's age maps: `unsupported` with the reason when its
/// read side did not attach (no UDP read hook the kernel accepts), else the map, with
/// the UDP read hook it came from as the status's hook.
fn ages_read<T>(
    s: &mut Sources,
    name: &str,
    probe: &Result<skewscope_probes::RxProbe, String>,
    read: impl FnOnce(&skewscope_probes::RxProbe) -> Result<T, skewscope_probes::ProbeError>,
) -> Option<T> {
    if let Ok(p) = probe {
        if let Some(why) = p.ages_unavailable() {
            s.statuses.push(SourceStatus::new(
                name,
                SourceOutcome::Unsupported,
                Some(why.to_string()),
                0,
            ));
            return None;
        }
    }
    let value = probe_read(s, name, probe, read);
    if let Ok(p) = probe {
        if let Some(hook) = p.read_hook() {
            s.set_hook(hook.name());
        }
    }
    value
}

/// Per-queue packets seen at netif_receive_skb, for drivers without qstats or per-queue
/// ethtool statistics (veth, virtual and older drivers).
fn ebpf_queue_counters(
    counts: &[skewscope_probes::QueueCount],
    netns: u64,
    ifindex: u32,
) -> Vec<QueueCounters> {
    let mut out: Vec<QueueCounters> = counts
        .iter()
        .filter(|c| c.netns == netns && c.ifindex == ifindex)
        .filter_map(|c| {
            Some(QueueCounters {
                queue: c.queue?,
                rx_packets: Some(c.packets),
                rx_bytes: Some(c.bytes),
                source: crate::snapshot::EBPF_QUEUE_SOURCE,
            })
        })
        .collect();
    out.sort_by_key(|q| q.queue);
    out
}

fn from_driver_stats(stats: &[(String, u64)], source: &'static str) -> Vec<QueueCounters> {
    ethtool_stats::rx_queue_packets(stats)
        .into_iter()
        .map(|q| QueueCounters {
            queue: q.queue,
            rx_packets: q.rx_packets,
            rx_bytes: q.rx_bytes,
            source,
        })
        .collect()
}

/// Why owners cannot be read without a capability; doctor's plan says the same.
pub const OWNERS_NEED: &str =
    "/proc/PID/fd of other users needs CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH";

/// How an owner scan fared: `unowned` of `members` group sockets got no owner.
/// On the running kernel without CAP_SYS_PTRACE or CAP_DAC_READ_SEARCH the
/// /proc/PID/fd of other users' processes cannot be read (proc_fd_access_allowed,
/// fs/proc/base.c; the directory is mode 0500): a failure naming the loss. Else
/// an unowned socket closed or is held by no process: not a fault.
fn owners_outcome(
    unowned: usize,
    members: usize,
    live: bool,
    effective_caps: &[String],
) -> Result<(), String> {
    let missing: Vec<&str> = ["CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"]
        .into_iter()
        .filter(|c| !effective_caps.iter().any(|e| e == c))
        .collect();
    if unowned == 0 || !live || missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "owners of {unowned} of {members} group sockets not readable: {} (missing {})",
        OWNERS_NEED,
        missing.join(", ")
    ))
}

/// Runs sources and records how each fared.
#[derive(Default)]
struct Sources {
    statuses: Vec<SourceStatus>,
}

impl Sources {
    fn attempt<T>(
        &mut self,
        name: &str,
        read: impl FnOnce() -> Result<T, SourceError>,
    ) -> Option<T> {
        let start = Instant::now();
        let result = read();
        let duration_us = start.elapsed().as_micros() as u64;
        match result {
            Ok(v) => {
                self.record(name, Ok(()), duration_us);
                Some(v)
            }
            Err(e) => {
                log::debug!("source {name}: {e}");
                let outcome = match &e {
                    SourceError::Unsupported { .. } | SourceError::NotFound { .. } => {
                        SourceOutcome::Unsupported
                    }
                    _ => SourceOutcome::Failed,
                };
                self.statuses.push(SourceStatus::new(
                    name,
                    outcome,
                    Some(e.to_string()),
                    duration_us,
                ));
                None
            }
        }
    }

    /// Names the hook the last recorded source's numbers came from.
    fn set_hook(&mut self, hook: &str) {
        if let Some(last) = self.statuses.last_mut() {
            last.hook = Some(hook.to_string());
        }
    }

    fn skip(&mut self, name: &str) {
        self.record(name, Err(SKIPPED_NOT_LIVE.to_string()), 0);
    }

    /// Ok, or an error text starting with "skipped" (skipped) or anything else (failed).
    fn record(&mut self, name: &str, result: Result<(), String>, duration_us: u64) {
        let (status, error) = match result {
            Ok(()) => (SourceOutcome::Ok, None),
            Err(e) if e.starts_with("skipped") => (SourceOutcome::Skipped, Some(e)),
            Err(e) => (SourceOutcome::Failed, Some(e)),
        };
        self.statuses
            .push(SourceStatus::new(name, status, error, duration_us));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn owners_denied_names_the_missing_capability_and_the_count() {
        let why = owners_outcome(3, 4, true, &caps(&["CAP_BPF", "CAP_SYS_PTRACE"])).unwrap_err();
        assert_eq!(
            why,
            "owners of 3 of 4 group sockets not readable: /proc/PID/fd of other users \
             needs CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH (missing CAP_DAC_READ_SEARCH)"
        );
        // A failure, not a skip: it does not start with "skipped".
        assert!(!why.starts_with("skipped"));
    }

    #[test]
    fn owners_ok_when_all_found_or_capabilities_held_or_not_live() {
        let all = caps(&["CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"]);
        assert_eq!(owners_outcome(0, 4, true, &[]), Ok(()));
        // Held: an unowned socket closed meanwhile.
        assert_eq!(owners_outcome(1, 4, true, &all), Ok(()));
        // A captured root: this process's capabilities say nothing about it.
        assert_eq!(owners_outcome(4, 4, false, &[]), Ok(()));
    }
}
