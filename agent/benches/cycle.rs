//! `make bench`: the cost of one full host cycle (collect every source + build the
//! report), over the 1152-CPU fixture root and over this machine's own /proc and /sys,
//! printed side by side, and of the largest single parse in it, the fixture root's
//! 1152-CPU /proc/interrupts. Targets (issue 2): < 50 ms per cycle on the fixture root
//! (so its interrupts parse too), < 1 ms on this machine's procfs and sysfs sources as the
//! agent reads them (listening sockets from sock_diag); issue 14: <= 10 ms p50 on the
//! 1152-CPU root where it has /sys/kernel/irq (only the NIC's IRQs are read).
//! Then the interrupts and the listening sockets read both ways: bytes read and the
//! kernel-side (system) CPU time per read. Without netlink the sockets come from
//! /proc/net/{tcp,tcp6,udp,udp6}, whose seq_file walks every bucket of the established
//! hash whatever the state (net/ipv4/tcp_ipv4.c established_get_first(); 262144 buckets
//! on a 24 GiB machine), while a listening-only inet_diag dump skips that hash
//! (inet_diag_dump_icsk(), net/ipv4/inet_diag.c): that row is the fallback for captured
//! roots and kernels without sock_diag, timed with no target.

use std::path::Path;
use std::time::{Duration, Instant};

use skewscope::collect::{CollectOptions, Collector};
use skewscope::model::{self, ModelConfig, Window};
use skewscope::sources::{interrupts, sock_diag, sys_irq, HostRoot};

struct Figures {
    name: &'static str,
    p50: Duration,
    p95: Duration,
    mean: Duration,
    target: Duration,
}

fn measure(
    name: &'static str,
    opts: CollectOptions,
    iterations: usize,
    target: Duration,
) -> Figures {
    let mut collector = Collector::new(opts);
    let cfg = ModelConfig::new();
    time(name, iterations, target, || {
        let s = collector.collect();
        std::hint::black_box(model::build_report(
            &Window::since_boot(s),
            &cfg,
            &mut Default::default(),
        ));
    })
}

/// p50/p95/mean of `iterations` runs of `run`, after 3 to warm the page cache and the
/// allocator.
fn time(name: &'static str, iterations: usize, target: Duration, mut run: impl FnMut()) -> Figures {
    for _ in 0..3 {
        run();
    }
    let mut times: Vec<Duration> = (0..iterations)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed()
        })
        .collect();
    times.sort();
    let mean = times.iter().sum::<Duration>() / iterations as u32;
    Figures {
        name,
        p50: times[iterations / 2],
        p95: times[iterations * 95 / 100],
        mean,
        target,
    }
}

fn main() {
    let roots = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/roots");
    let fixture = roots.join("i40e-1152cpu");
    let fixture_root = HostRoot::new(fixture.join("proc"), fixture.join("sys"));
    let mut fixture_opts = CollectOptions::new(fixture_root.clone());
    fixture_opts.probes = false;
    let sysirq = roots.join("i40e-1152cpu-sysirq");
    let sysirq_root = HostRoot::new(sysirq.join("proc"), sysirq.join("sys"));
    let mut sysirq_opts = CollectOptions::new(sysirq_root.clone());
    sysirq_opts.probes = false;

    let mut procfs_opts = CollectOptions::new(HostRoot::default());
    procfs_opts.probes = false;

    let mut proc_net_opts = CollectOptions::new(HostRoot::default());
    proc_net_opts.probes = false;
    proc_net_opts.netlink = false;

    let mut full_opts = CollectOptions::new(HostRoot::default());
    full_opts.probes = true;

    let interrupts_1152 = std::fs::read_to_string(fixture.join("proc/interrupts"))
        .expect("fixture root's /proc/interrupts");

    let rows = [
        measure(
            "1152 CPUs, /proc/interrupts way (fallback)",
            fixture_opts,
            40,
            Duration::from_millis(50),
        ),
        measure(
            "1152 CPUs, /sys/kernel/irq way",
            sysirq_opts,
            40,
            Duration::from_millis(10),
        ),
        time(
            "fixture root, 1152 CPUs: /proc/interrupts parse",
            40,
            Duration::from_millis(50),
            || {
                std::hint::black_box(
                    interrupts::parse(std::hint::black_box(&interrupts_1152)).unwrap(),
                );
            },
        ),
        measure(
            "this host, procfs+sysfs sources (+sock_diag)",
            procfs_opts,
            400,
            Duration::from_millis(1),
        ),
        measure(
            "this host, no netlink (sockets from /proc/net)",
            proc_net_opts,
            200,
            Duration::MAX,
        ),
        measure(
            "this host, all sources (+netlink, ioctl, eBPF)",
            full_opts,
            200,
            Duration::from_millis(5),
        ),
    ];
    let base = rows[3].p50.as_secs_f64();
    println!(
        "{:<48} {:>9} {:>9} {:>9} {:>8} {:>8}  verdict",
        "cycle", "p50", "p95", "mean", "target", "x host"
    );
    for r in &rows {
        println!(
            "{:<48} {:>9.3?} {:>9.3?} {:>9.3?} {:>8} {:>7.1}x  {}",
            r.name,
            r.p50,
            r.p95,
            r.mean,
            Target(r.target),
            r.p50.as_secs_f64() / base,
            if r.target == Duration::MAX {
                "-"
            } else if r.p50 <= r.target {
                "ok"
            } else {
                "OVER TARGET"
            }
        );
    }

    println!();
    interrupts_cost(&fixture_root, &sysirq_root);
    println!();
    sockets_cost();
}

/// A row's target, or "-" for a row timed without one.
struct Target(Duration);

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Duration::MAX => f.pad("-"),
            t => f.pad(&format!("{t:?}")),
        }
    }
}

/// System and user CPU time per read of this host's listening sockets, both ways (see
/// the module comment for why /proc/net costs what it does).
fn sockets_cost() {
    let live = HostRoot::default();
    println!(
        "{:<48} {:>12} {:>12} {:>12}",
        "listening sockets read", "sockets", "sys/read", "user/read"
    );
    let found = sock_diag::read_proc_net(&live)
        .map(|s| s.len())
        .unwrap_or(0);
    let (sys, user) = cpu_per_call(200, || {
        std::hint::black_box(sock_diag::read_proc_net(&live).ok());
    });
    println!(
        "{:<48} {found:>12} {sys:>12.1?} {user:>12.1?}",
        "this host, /proc/net/{tcp,tcp6,udp,udp6}"
    );
    let found = sock_diag::dump_all_namespaces(&live).0.len();
    let (sys, user) = cpu_per_call(200, || {
        std::hint::black_box(sock_diag::dump_all_namespaces(&live));
    });
    println!(
        "{:<48} {found:>12} {sys:>12.1?} {user:>12.1?}",
        "this host, sock_diag (every namespace)"
    );
}

/// Bytes read and system CPU time per interrupts read, both ways, on the fixture roots
/// (page-cache reads) and on this host (the kernel formats every file it is asked for).
fn interrupts_cost(fixture: &HostRoot, sysirq: &HostRoot) {
    let live = HostRoot::default();
    println!(
        "{:<48} {:>12} {:>7} {:>12} {:>12}",
        "interrupts read", "bytes", "files", "sys/read", "user/read"
    );
    let proc_row = |name: &str, root: &HostRoot, n: usize| {
        let bytes = root.read_proc("interrupts").map(|t| t.len()).unwrap_or(0);
        let (sys, user) = cpu_per_call(n, || {
            std::hint::black_box(interrupts::read(root).ok());
        });
        println!("{name:<48} {bytes:>12} {:>7} {sys:>12.1?} {user:>12.1?}", 1);
    };
    let sys_row = |name: &str, root: &HostRoot, n: usize| match sys_irq::read_counted(root, &[]) {
        Ok((_, cost)) => {
            let (sys, user) = cpu_per_call(n, || {
                std::hint::black_box(sys_irq::read(root, &[]).ok());
            });
            println!(
                "{name:<48} {:>12} {:>7} {sys:>12.1?} {user:>12.1?}",
                cost.bytes, cost.files
            );
        }
        Err(e) => println!("{name:<48} unavailable: {e}"),
    };
    proc_row("1152-CPU root, /proc/interrupts", fixture, 40);
    sys_row("1152-CPU root, /sys/kernel/irq (NIC IRQs)", sysirq, 200);
    proc_row("this host, /proc/interrupts", &live, 2000);
    sys_row("this host, /sys/kernel/irq (NIC IRQs)", &live, 2000);
}

/// System and user CPU time of this thread per call of `f` (getrusage RUSAGE_THREAD
/// around `n` calls: the kernel accounts in ticks, so many calls are averaged).
fn cpu_per_call(n: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    fn usage() -> (Duration, Duration) {
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: ru is a valid rusage for the kernel to fill.
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        (tv(ru.ru_stime), tv(ru.ru_utime))
    }
    let (s0, u0) = usage();
    for _ in 0..n {
        f();
    }
    let (s1, u1) = usage();
    (
        s1.saturating_sub(s0) / n as u32,
        u1.saturating_sub(u0) / n as u32,
    )
}
