//! The probe budget: how much of a CPU the per-packet probes may take.
//!
//! The per-packet probes (listener_events, rx, softirq_time) run on the CPU that
//! receives each packet. Their cost per packet is about constant for a workload (~400 ns with all of them on the
//! 2-vCPU 6.18 VM `make bench` runs on, of which ~40 ns per attached program is the
//! tracepoint's dispatch before the program does anything), so what they take of a CPU
//! grows with its packet rate: ~0.4% at 10 kpps, ~20% at 500 kpps. Sampling *inside* a
//! program cannot help, as the dispatch is paid anyway; what can is attaching them for
//! only part of the time, as the kernel itself bounds perf sampling to
//! kernel.perf_cpu_time_max_percent.
//!
//! So a [`DutyCycler`] thread watches every CPU's packet rate (/proc/net/softnet_stat
//! `processed`, which __netif_receive_skb_core() counts once per packet, the same
//! packets the netif_receive_skb hook sees) and keeps the probes attached while
//! `rate × packet cost` fits the budget on every CPU. Above it they are attached for the
//! first `duty × period` of each period only, with `duty = budget / (rate × cost)`.
//! Counts are then scaled by the time the probes were attached ([`ProbeCoverage`] in the
//! snapshot, applied by the model's window): events, flows and queue counts become
//! estimates, exact again as soon as the rate falls back. Rates are judged over the last second, so a
//! short burst does not start sampling.
//!
//! The cost is measured where the probes run, not assumed: [`calibrate`] holds a
//! BPF_ENABLE_STATS fd for [`CALIBRATION_WINDOW`] at start and every
//! [`CALIBRATION_EVERY`] and divides the programs' run time (plus the dispatch the stats
//! cannot see) by the packets softnet counted meanwhile; the configured cost serves
//! until then.

use std::collections::VecDeque;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use skewscope_probes::Hooks;

use crate::counters::counter_delta_u32;
use crate::snapshot::ProbeCoverage;
use crate::sources::{softnet, HostRoot};

/// How the per-packet probes are attached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProbeSampling {
    /// Attached all the time: every count exact, at any cost.
    Continuous,
    /// Attached for this fraction (0, 1] of every period, whatever the load.
    Fixed { duty: f64 },
    /// Attached all the time while `rate × packet_cost_ns` stays within `cpu_fraction` of
    /// each CPU; duty-cycled above that.
    Budget {
        cpu_fraction: f64,
        packet_cost_ns: f64,
        /// Measure the cost ([`calibrate`]) and use that instead of `packet_cost_ns`,
        /// which then serves only until the first measurement.
        calibrate: bool,
    },
}

/// 1.5% of a CPU: half the 3% overhead target, leaving the other half for what the
/// budget does not see (attach and detach, the read-side hooks on the readers' CPUs,
/// a slower machine than the cost below was measured on).
pub const DEFAULT_CPU_BUDGET: f64 = 0.015;
/// The per-packet cost of every default probe, as `make bench` measured it on the
/// 2-vCPU 6.18 VM (370-385 ns), rounded up: used until the first calibration.
pub const DEFAULT_PACKET_COST_NS: f64 = 400.0;

/// How long a calibration keeps run-time stats on, and how often it runs once it has
/// measured (and how soon it retries while too few packets arrived to measure).
pub const CALIBRATION_WINDOW: Duration = Duration::from_millis(200);
pub const CALIBRATION_EVERY: Duration = Duration::from_secs(60);
const CALIBRATION_RETRY: Duration = Duration::from_secs(5);
/// Fewer packets than this in a window measure the idle readers' polling more than the
/// packets: keep the cost in force.
const CALIBRATION_MIN_PACKETS: u64 = 500;
/// The tracepoint's dispatch per program run, which run-time stats do not see: they time
/// only the program (__bpf_prog_run(), include/linux/filter.h), not the static call and
/// __bpf_trace_run() around it (~40 ns per hook on the 6.18 VM, `make bench`).
pub const DISPATCH_NS_PER_RUN: f64 = 40.0;

impl ProbeSampling {
    pub const DEFAULT: ProbeSampling = ProbeSampling::Budget {
        cpu_fraction: DEFAULT_CPU_BUDGET,
        packet_cost_ns: DEFAULT_PACKET_COST_NS,
        calibrate: true,
    };
    /// The least fraction of a period the probes stay attached, so rates stay measured.
    pub const MIN_DUTY: f64 = 0.01;
}

impl Default for ProbeSampling {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The duty cycle for the busiest CPU's packet rate at `packet_cost_ns` per packet (the
/// measured cost, or the configured one): 1 while it fits the budget.
pub fn duty_for(sampling: ProbeSampling, max_cpu_pps: f64, packet_cost_ns: f64) -> f64 {
    match sampling {
        ProbeSampling::Continuous => 1.0,
        ProbeSampling::Fixed { duty } => duty.clamp(ProbeSampling::MIN_DUTY, 1.0),
        ProbeSampling::Budget { cpu_fraction, .. } => {
            let cost = max_cpu_pps * packet_cost_ns * 1e-9;
            if !cost.is_finite() || cost <= cpu_fraction {
                1.0
            } else {
                (cpu_fraction / cost).clamp(ProbeSampling::MIN_DUTY, 1.0)
            }
        }
    }
}

/// One calibration's counts: what the probes' programs ran and what softnet saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// Runs of every per-packet program in the window.
    pub runs: u64,
    /// Their run time (bpf_prog_info.run_time_ns), in ns.
    pub run_time_ns: u64,
    /// Packets processed by every CPU in the same window (softnet_stat).
    pub packets: u64,
}

impl Calibration {
    /// Cost per received packet in ns: run time plus the dispatch stats cannot see,
    /// over the packets; None when too few packets came to tell.
    pub fn packet_cost_ns(&self) -> Option<f64> {
        if self.packets < CALIBRATION_MIN_PACKETS {
            return None;
        }
        let ns = self.run_time_ns as f64 + self.runs as f64 * DISPATCH_NS_PER_RUN;
        Some(ns / self.packets as f64)
    }
}

#[derive(Debug)]
struct CoverageState {
    attached: Duration,
    since: Option<Instant>,
    duty: f64,
    packet_cost_ns: f64,
    measured: bool,
    max_cpu_pps: f64,
}

/// Shared between the cycler thread (writer) and the collector (reader).
#[derive(Debug)]
pub struct Coverage(Mutex<CoverageState>);

impl Coverage {
    fn new(attached_at: Option<Instant>, packet_cost_ns: f64) -> Self {
        Self(Mutex::new(CoverageState {
            attached: Duration::ZERO,
            since: attached_at,
            duty: 1.0,
            packet_cost_ns,
            measured: false,
            max_cpu_pps: 0.0,
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CoverageState> {
        // A panic elsewhere cannot leave the two fields inconsistent: keep going.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn reading(&self, now: Instant) -> ProbeCoverage {
        let s = self.state();
        let open = s
            .since
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        ProbeCoverage {
            attached: s.attached + open,
            duty: s.duty,
            packet_cost_ns: s.packet_cost_ns,
            cost_measured: s.measured,
            cpu_share: (s.packet_cost_ns * 1e-9 * s.max_cpu_pps * s.duty).min(1.0),
        }
    }

    fn attached(&self, at: Instant) {
        let mut s = self.state();
        if s.since.is_none() {
            s.since = Some(at);
        }
    }

    fn detached(&self, at: Instant) {
        let mut s = self.state();
        if let Some(since) = s.since.take() {
            s.attached += at.saturating_duration_since(since);
        }
    }

    fn set_duty(&self, duty: f64, max_cpu_pps: f64) {
        let mut s = self.state();
        s.duty = duty;
        s.max_cpu_pps = max_cpu_pps;
    }

    fn set_measured_cost(&self, packet_cost_ns: f64) {
        let mut s = self.state();
        s.packet_cost_ns = packet_cost_ns;
        s.measured = true;
    }
}

/// The busiest CPU's packet rate over about the last second, from softnet_stat samples.
#[derive(Debug, Default)]
struct PacketRate {
    samples: VecDeque<(Instant, Vec<(u32, u32)>)>,
}

impl PacketRate {
    const SPAN: Duration = Duration::from_secs(1);

    fn add(&mut self, at: Instant, rows: &[softnet::SoftnetCpu]) {
        self.samples
            .push_back((at, rows.iter().map(|r| (r.cpu, r.processed)).collect()));
        // Keep one sample at least SPAN old as the base.
        while self.samples.len() > 2 && at.duration_since(self.samples[1].0) >= Self::SPAN {
            self.samples.pop_front();
        }
    }

    /// Whether the samples span a whole second yet.
    fn is_full(&self) -> bool {
        match (self.samples.front(), self.samples.back()) {
            (Some((t0, _)), Some((t1, _))) => t1.duration_since(*t0) >= Self::SPAN,
            _ => false,
        }
    }

    /// Packets per second of the busiest CPU, over max(span, 1 s): a burst shorter than
    /// a second is spread over the second.
    fn max_cpu_pps(&self) -> f64 {
        let (Some((t0, first)), Some((t1, last))) = (self.samples.front(), self.samples.back())
        else {
            return 0.0;
        };
        let secs = t1.duration_since(*t0).max(Self::SPAN).as_secs_f64();
        last.iter()
            .filter_map(|(cpu, now)| {
                let (_, before) = first.iter().find(|(c, _)| c == cpu)?;
                Some(counter_delta_u32(*before, *now) as f64 / secs)
            })
            .fold(0.0, f64::max)
    }
}

/// Switches the per-packet probes' hooks on and off on its own thread; dropping it stops
/// the thread and detaches them.
pub struct DutyCycler {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    coverage: Arc<Coverage>,
}

/// How often the rate is checked while the probes are attached all the time.
const TICK: Duration = Duration::from_millis(100);

impl DutyCycler {
    /// Takes over `hooks` (attached as the probes left them) and starts cycling.
    pub fn start(
        hooks: Vec<Hooks>,
        sampling: ProbeSampling,
        period: Duration,
        root: HostRoot,
    ) -> Self {
        let attached = hooks.iter().all(Hooks::is_attached);
        let cost = match sampling {
            ProbeSampling::Budget { packet_cost_ns, .. } => packet_cost_ns,
            _ => DEFAULT_PACKET_COST_NS,
        };
        let coverage = Arc::new(Coverage::new(attached.then(Instant::now), cost));
        let (stop, stopped) = mpsc::channel::<()>();
        let shared = coverage.clone();
        let period = period.max(Duration::from_millis(10));
        let thread = std::thread::Builder::new()
            .name("probe-duty".into())
            .spawn(move || cycle_probes(hooks, sampling, period, &root, &shared, &stopped))
            .expect("spawning the probe duty-cycle thread");
        Self {
            stop: Some(stop),
            thread: Some(thread),
            coverage,
        }
    }

    pub fn coverage(&self) -> &Arc<Coverage> {
        &self.coverage
    }
}

impl Drop for DutyCycler {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                log::error!("the probe duty-cycle thread panicked");
            }
        }
    }
}

/// The cycling thread: decide the duty from the rates, attach, wait, detach, wait; until
/// told to stop, then detach.
fn cycle_probes(
    hooks: Vec<Hooks>,
    sampling: ProbeSampling,
    period: Duration,
    root: &HostRoot,
    coverage: &Coverage,
    stopped: &mpsc::Receiver<()>,
) {
    let mut cycle = Cycle {
        hooks,
        coverage,
        failed: false,
    };
    let mut rate = PacketRate::default();
    let mut warned = false;
    let calibrating = matches!(
        sampling,
        ProbeSampling::Budget {
            calibrate: true,
            ..
        }
    );
    let mut next_calibration = Instant::now();
    let mut calibration_warned = false;
    loop {
        if calibrating && Instant::now() >= next_calibration {
            cycle.set(true);
            match calibrate(&cycle.hooks, root, stopped) {
                Ok(None) => break,
                Ok(Some(c)) => match c.packet_cost_ns() {
                    Some(ns) => {
                        log::debug!("probe budget: {c:?}: {ns:.0} ns per packet");
                        coverage.set_measured_cost(ns);
                        next_calibration = Instant::now() + CALIBRATION_EVERY;
                    }
                    None => next_calibration = Instant::now() + CALIBRATION_RETRY,
                },
                Err(e) => {
                    if !calibration_warned {
                        log::warn!("probe budget: calibration: {e}; using the configured cost");
                        calibration_warned = true;
                    }
                    next_calibration = Instant::now() + CALIBRATION_EVERY;
                }
            }
        }
        let start = Instant::now();
        match softnet::read_rows(root) {
            Ok(rows) => rate.add(start, &rows),
            // No new sample: the duty stays what the last rates gave (1,
            // attached all the time, before any).
            Err(e) if !warned => {
                log::warn!("probe budget: {e}; packet rates unknown");
                warned = true;
            }
            Err(e) => log::debug!("probe budget: {e}"),
        }
        let pps = rate.max_cpu_pps();
        let cost = coverage.state().packet_cost_ns;
        let duty = duty_for(sampling, pps, cost);
        coverage.set_duty(duty, pps);
        cycle.set(true);
        if duty >= 1.0 {
            if wait(stopped, start + TICK) {
                break;
            }
            continue;
        }
        // Until a second of samples is in, the rate is a lower bound:
        // decide again after a tick rather than a period.
        let this_period = if rate.is_full() { period } else { TICK };
        if wait(stopped, start + this_period.mul_f64(duty)) {
            break;
        }
        cycle.set(false);
        if wait(stopped, start + this_period) {
            break;
        }
    }
    cycle.set(false);
}

/// Measures the attached programs for [`CALIBRATION_WINDOW`] with run-time stats on,
/// releasing them after; None when told to stop meanwhile.
pub fn calibrate(
    hooks: &[Hooks],
    root: &HostRoot,
    stopped: &mpsc::Receiver<()>,
) -> Result<Option<Calibration>, String> {
    let runs = |hooks: &[Hooks]| -> Result<(u64, u64), String> {
        let mut sum = (0u64, 0u64);
        for h in hooks {
            for p in h.program_stats().map_err(|e| e.to_string())? {
                sum.0 = sum.0.wrapping_add(p.run_count);
                sum.1 = sum.1.wrapping_add(p.run_time_ns);
            }
        }
        Ok(sum)
    };
    let packets = |root: &HostRoot| -> Result<Vec<(u32, u32)>, String> {
        let rows = softnet::read_rows(root).map_err(|e| e.to_string())?;
        Ok(rows.iter().map(|r| (r.cpu, r.processed)).collect())
    };
    // Dropped at return: stats stay on for the window only.
    let _stats = skewscope_probes::enable_run_time_stats().map_err(|e| e.to_string())?;
    let (runs0, time0) = runs(hooks)?;
    let packets0 = packets(root)?;
    if wait(stopped, Instant::now() + CALIBRATION_WINDOW) {
        return Ok(None);
    }
    let (runs1, time1) = runs(hooks)?;
    let packets1 = packets(root)?;
    let packets = packets1
        .iter()
        .filter_map(|(cpu, now)| {
            let (_, before) = packets0.iter().find(|(c, _)| c == cpu)?;
            Some(u64::from(counter_delta_u32(*before, *now)))
        })
        .sum();
    Ok(Some(Calibration {
        runs: runs1.saturating_sub(runs0),
        run_time_ns: time1.saturating_sub(time0),
        packets,
    }))
}

/// Sleeps until `deadline`; true when told to stop (or the agent is gone).
fn wait(stopped: &mpsc::Receiver<()>, deadline: Instant) -> bool {
    let left = deadline.saturating_duration_since(Instant::now());
    !matches!(stopped.recv_timeout(left), Err(RecvTimeoutError::Timeout))
}

struct Cycle<'a> {
    hooks: Vec<Hooks>,
    coverage: &'a Coverage,
    /// An attach failed: logged once, retried every period.
    failed: bool,
}

impl Cycle<'_> {
    fn set(&mut self, on: bool) {
        if on {
            let mut ok = true;
            for hooks in self.hooks.iter_mut() {
                if let Err(e) = hooks.attach() {
                    ok = false;
                    if !self.failed {
                        log::warn!("probe budget: attaching {}: {e}", hooks.probe());
                    }
                }
            }
            self.failed = !ok;
            self.coverage.attached(Instant::now());
        } else {
            self.coverage.detached(Instant::now());
            for hooks in self.hooks.iter_mut() {
                hooks.detach();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duty_fits_the_budget() {
        let b = ProbeSampling::DEFAULT;
        assert_eq!(duty_for(b, 0.0, 400.0), 1.0);
        assert_eq!(
            duty_for(b, 37_000.0, 400.0),
            1.0,
            "37 kpps x 400 ns = 1.48%: fits"
        );
        assert!(
            duty_for(b, 37_000.0, 1000.0) < 0.5,
            "37 kpps x 1 us = 3.7%: sampled"
        );
        let d = duty_for(b, 500_000.0, 400.0);
        assert!(
            (d - 0.075).abs() < 1e-12,
            "500 kpps x 400 ns = 20% -> 7.5%: {d}"
        );
        assert_eq!(duty_for(b, 1e12, 400.0), ProbeSampling::MIN_DUTY);
        assert_eq!(duty_for(b, f64::NAN, 400.0), 1.0);
        assert_eq!(duty_for(ProbeSampling::Continuous, 1e9, 400.0), 1.0);
        assert_eq!(
            duty_for(ProbeSampling::Fixed { duty: 0.25 }, 0.0, 400.0),
            0.25
        );
        assert_eq!(
            duty_for(ProbeSampling::Fixed { duty: 0.0 }, 0.0, 400.0),
            ProbeSampling::MIN_DUTY
        );
    }

    fn rows(counts: &[(u32, u32)]) -> Vec<softnet::SoftnetCpu> {
        counts
            .iter()
            .map(|&(cpu, processed)| softnet::SoftnetCpu {
                cpu,
                processed,
                dropped: 0,
                time_squeeze: 0,
                received_rps: None,
                flow_limit_count: None,
                backlog_len: None,
                input_qlen: None,
                process_qlen: None,
                columns: 15,
            })
            .collect()
    }

    #[test]
    fn rate_is_the_busiest_cpu_over_at_least_a_second() {
        let t0 = Instant::now();
        let mut r = PacketRate::default();
        r.add(t0, &rows(&[(0, 100), (1, u32::MAX - 99)]));
        assert_eq!(r.max_cpu_pps(), 0.0);
        // A 3000-packet burst within 100 ms counts as 3000/s, not 30000/s; CPU 1
        // wrapped (100 packets).
        r.add(t0 + Duration::from_millis(100), &rows(&[(0, 3100), (1, 0)]));
        assert_eq!(r.max_cpu_pps(), 3000.0);
        r.add(
            t0 + Duration::from_millis(200),
            &rows(&[(0, 3100), (1, 100)]),
        );
        assert_eq!(r.max_cpu_pps(), 3000.0, "CPU 1: 200 packets");
        // Samples go while the one after them is a second old: the base is now the
        // 0.2 s one, and CPU 1 took 199,900 packets from there to 2.1 s.
        r.add(
            t0 + Duration::from_millis(2100),
            &rows(&[(0, 3100), (1, 200_000)]),
        );
        assert_eq!(r.samples.len(), 2);
        let expected = 199_900.0 / 1.9;
        assert!(
            (r.max_cpu_pps() - expected).abs() < 1e-6,
            "{}",
            r.max_cpu_pps()
        );
        // Older samples go once a newer one is a second old.
        r.add(
            t0 + Duration::from_secs(3),
            &rows(&[(0, 3100), (1, 300_000)]),
        );
        r.add(
            t0 + Duration::from_secs(4),
            &rows(&[(0, 3100), (1, 300_000)]),
        );
        assert!(r.samples.len() <= 3);
        assert_eq!(r.max_cpu_pps(), 0.0);
    }

    #[test]
    fn calibration_cost_counts_dispatch_and_needs_packets() {
        let c = Calibration {
            runs: 2_000,
            run_time_ns: 200_000,
            packets: 1_000,
        };
        // (200 us + 2000 runs x 40 ns) / 1000 packets.
        assert_eq!(c.packet_cost_ns(), Some(280.0));
        let idle = Calibration {
            packets: CALIBRATION_MIN_PACKETS - 1,
            ..c
        };
        assert_eq!(idle.packet_cost_ns(), None, "too few packets to tell");
    }

    #[test]
    fn coverage_reports_the_measured_cost_and_share() {
        let t0 = Instant::now();
        let c = Coverage::new(Some(t0), 400.0);
        c.set_duty(0.5, 100_000.0);
        let r = c.reading(t0);
        assert!(!r.cost_measured);
        assert!(
            (r.cpu_share - 0.02).abs() < 1e-12,
            "400 ns x 100 kpps x 0.5"
        );
        c.set_measured_cost(800.0);
        let r = c.reading(t0);
        assert!(r.cost_measured);
        assert_eq!(r.packet_cost_ns, 800.0);
        assert!((r.cpu_share - 0.04).abs() < 1e-12);
    }

    #[test]
    fn coverage_accumulates_attached_time() {
        let t0 = Instant::now();
        let c = Coverage::new(Some(t0), 400.0);
        assert_eq!(c.reading(t0 + Duration::from_secs(1)).attached.as_secs(), 1);
        c.detached(t0 + Duration::from_secs(2));
        c.detached(t0 + Duration::from_secs(3));
        assert_eq!(c.reading(t0 + Duration::from_secs(5)).attached.as_secs(), 2);
        c.attached(t0 + Duration::from_secs(6));
        c.attached(t0 + Duration::from_secs(7));
        assert_eq!(c.reading(t0 + Duration::from_secs(8)).attached.as_secs(), 4);
    }
}
