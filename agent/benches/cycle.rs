//! `make bench`: the cost of one full host cycle (collect every source + build the
//! report), over the 1152-CPU fixture root and over this machine's own /proc and /sys,
//! printed side by side, and of the largest single parse in it, the fixture root's
//! 1152-CPU /proc/interrupts. Targets (issue 2): < 50 ms per cycle on the fixture root
//! (so its interrupts parse too), < 1 ms on this machine's procfs sources.

use std::path::Path;
use std::time::{Duration, Instant};

use skewscope::collect::{CollectOptions, Collector};
use skewscope::model::{self, ModelConfig, Window};
use skewscope::sources::{interrupts, HostRoot};

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
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/roots/i40e-1152cpu");
    let mut fixture_opts =
        CollectOptions::new(HostRoot::new(fixture.join("proc"), fixture.join("sys")));
    fixture_opts.probes = false;

    let mut procfs_opts = CollectOptions::new(HostRoot::default());
    procfs_opts.probes = false;
    procfs_opts.netlink = false;

    let mut full_opts = CollectOptions::new(HostRoot::default());
    full_opts.probes = true;

    let interrupts_1152 = std::fs::read_to_string(fixture.join("proc/interrupts"))
        .expect("fixture root's /proc/interrupts");

    let rows = [
        measure(
            "fixture root, 1152 CPUs (procfs+sysfs)",
            fixture_opts,
            40,
            Duration::from_millis(50),
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
            "this host, procfs+sysfs sources",
            procfs_opts,
            400,
            Duration::from_millis(1),
        ),
        measure(
            "this host, all sources (+netlink, ioctl, eBPF)",
            full_opts,
            200,
            Duration::from_millis(5),
        ),
    ];
    let base = rows[2].p50.as_secs_f64();
    println!(
        "{:<48} {:>9} {:>9} {:>9} {:>8} {:>8}  verdict",
        "cycle", "p50", "p95", "mean", "target", "x host"
    );
    for r in &rows {
        println!(
            "{:<48} {:>9.3?} {:>9.3?} {:>9.3?} {:>8?} {:>7.1}x  {}",
            r.name,
            r.p50,
            r.p95,
            r.mean,
            r.target,
            r.p50.as_secs_f64() / base,
            if r.p50 <= r.target {
                "ok"
            } else {
                "OVER TARGET"
            }
        );
    }
}
