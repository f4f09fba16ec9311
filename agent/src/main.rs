use std::io::Write;
use std::ops::ControlFlow;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use skewscope::cli::{Cli, Command, OutputFormat, RunArgs, SnapshotArgs, SourceArgs};
use skewscope::collect::{CollectOptions, Collector};
use skewscope::config::{self, FileConfig};
use skewscope::model::{self, ModelConfig, Window};
use skewscope::report::Report;
use skewscope::shadow_live::ShadowWorker;
use skewscope::sinks;
use skewscope::snapshot::Snapshot;
use skewscope::sources::HostRoot;
use skewscope::telemetry::Telemetry;

fn main() -> ExitCode {
    pin_malloc_thresholds();
    let cli = Cli::parse();
    env_logger::Builder::new()
        .parse_filters(&cli.global.log_level)
        .format_target(false)
        .init();
    let root = HostRoot::new(&cli.global.procfs, &cli.global.sysfs);
    let result = match cli.command.unwrap_or(Command::Run(RunArgs::default())) {
        Command::Run(args) => run(root, args),
        Command::Snapshot(args) => snapshot(root, args),
        Command::Doctor(args) => skewscope::doctor::main(&root, args.json),
        Command::Metrics(args) => metrics(args),
        Command::Record(args) => record(root, args),
        Command::Shadow(args) => skewscope_shadow::cli::run(&args).and_then(|text| {
            std::io::stdout()
                .write_all(text.as_bytes())
                .context("writing to stdout")
        }),
        Command::RssShadow(args) => return rss_shadow(root, args),
        Command::Baseline(args) => {
            let code = skewscope::baseline::main(&root, args, &mut |live, on_report| {
                baseline_loop(root.clone(), live, on_report)
            });
            return ExitCode::from(code);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("skewscope: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `window_secs`: the collection interval or window; the probes' duty-cycle period is
/// at most that, so every window holds the same attached share.
fn collect_options(
    root: HostRoot,
    args: &SourceArgs,
    probes: &config::ProbesFile,
    window_secs: f64,
) -> anyhow::Result<CollectOptions> {
    let mut opts = CollectOptions::new(root);
    opts.devices = args.devices.clone();
    opts.probes = !args.no_probes;
    opts.ethtool_dir = args.ethtool_dir.clone();
    opts.probe_sampling = config::resolve_probe_sampling(args.probe_budget, probes)?;
    opts.probe_choices = config::resolve_probe_choices(
        &config::ProbeChoiceFlags {
            listener_hook: args.listener_hook.clone(),
            rx_read_hook: args.rx_read_hook.clone(),
            age_sample_every: args.age_sample_every,
        },
        probes,
    )?;
    opts.selection = args
        .selection_hook
        .or(probes.selection_hook)
        .unwrap_or_default()
        .choice();
    opts.probe_period = Duration::from_secs_f64(window_secs.min(1.0));
    Ok(opts)
}

/// Each probe program's runs and run time over a window, logged when the kernel
/// counted any (kernel.bpf_stats_enabled=1 set by the administrator; the agent
/// itself holds run-time stats only for its calibration windows).
fn log_program_runs(
    before: &[(String, skewscope_probes::ProgramStats)],
    after: &[(String, skewscope_probes::ProgramStats)],
) {
    if after.iter().all(|(_, s)| s.run_count == 0) {
        return;
    }
    for (name, stats) in after {
        let (runs0, ns0, missed0) = before
            .iter()
            .find(|(n, _)| n == name)
            .map_or((0, 0, 0), |(_, s)| {
                (s.run_count, s.run_time_ns, s.recursion_misses)
            });
        log::info!(
            "program {name}: {} runs, {} ns, {} missed in the window",
            stats.run_count.saturating_sub(runs0),
            stats.run_time_ns.saturating_sub(ns0),
            stats.recursion_misses.saturating_sub(missed0)
        );
    }
}

/// Observe the flows of every reuseport group for a window and write them as a trace.
fn record(root: HostRoot, args: skewscope::cli::RecordArgs) -> anyhow::Result<()> {
    let mut collector = Collector::new(collect_options(
        root,
        &SourceArgs::default(),
        &config::ProbesFile::default(),
        args.duration,
    )?);
    let first = collector.collect();
    log::info!("window open for {}s", args.duration);
    std::thread::sleep(Duration::from_secs_f64(args.duration));
    let second = collector.collect();
    let samples = skewscope::record::trace_of(&Window::between(&first, &second));
    anyhow::ensure!(
        second.listeners.as_ref().is_some_and(|l| l.flows.is_some()),
        "no flow samples: the rx probe is not running (see `skewscope doctor`)"
    );
    let text = {
        let mut buf = Vec::new();
        skewscope_shadow::write_trace(&mut buf, &samples)?;
        buf
    };
    if args.out.as_os_str() == "-" {
        std::io::stdout().write_all(&text)?;
    } else {
        std::fs::write(&args.out, &text)
            .with_context(|| format!("writing {}", args.out.display()))?;
    }
    log::info!("recorded {} flows", samples.len());
    Ok(())
}

fn snapshot(root: HostRoot, args: SnapshotArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let mut opts = collect_options(
        root,
        &args.sources,
        &file.probes,
        args.duration.unwrap_or(1.0),
    )?;
    // Probes count from the moment they attach: only a window gives them meaning.
    opts.probes &= args.duration.is_some();
    let cfg = file.model_config()?;
    let mut collector = Collector::new(opts);
    let mut state = model::ModelState::default();
    let first = collector.collect();
    let report = match args.duration {
        None => model::build_report(&Window::since_boot(first), &cfg, &mut state),
        Some(secs) => {
            let runs_before = collector.program_stats();
            log::info!("window open for {secs}s");
            std::thread::sleep(Duration::from_secs_f64(secs));
            let second = collector.collect();
            log_program_runs(&runs_before, &collector.program_stats());
            model::build_report(&Window::between(&first, &second), &cfg, &mut state)
        }
    };
    let text = if args.json {
        sinks::to_json_line(&report) + "\n"
    } else {
        sinks::console::render(&report)
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .context("writing the report to stdout")
}

/// `skewscope rss-shadow`: exit 0, 1 when collection fails, 2 on bad input (a table
/// file, weights, or a report without entry loads), naming what is wrong.
fn rss_shadow(root: HostRoot, args: skewscope::cli::RssShadowArgs) -> ExitCode {
    use skewscope::rss_shadow::{self as rs, CandidateSpec, RssShadowError};
    let specs: Result<Vec<CandidateSpec>, RssShadowError> = if args.candidates.is_empty() {
        Ok(vec![CandidateSpec::Equal, CandidateSpec::Balanced])
    } else {
        args.candidates
            .iter()
            .map(|c| CandidateSpec::parse(c))
            .collect()
    };
    let input: anyhow::Result<Result<rs::DeviceInput, RssShadowError>> = match &args.from {
        Some(path) => rss_shadow_report_file(path).map(|(value, origin)| {
            value.and_then(|v| rs::device_input(&v, &origin, args.device.as_deref()))
        }),
        None => rss_shadow_live(root, &args).map(|report| {
            let value = serde_json::to_value(&report).unwrap_or_default();
            rs::device_input(&value, "the live window", args.device.as_deref())
        }),
    };
    let result = input.map(|dev| {
        let dev = dev?;
        rs::run(&dev, &specs?, &mut |path| {
            std::fs::read_to_string(path).map_err(|e| RssShadowError::TableFile {
                path: path.into(),
                msg: e.to_string(),
            })
        })
    });
    let report = match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            eprintln!("skewscope rss-shadow: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("skewscope rss-shadow: {e:#}");
            return ExitCode::from(1);
        }
    };
    let text = if args.json {
        serde_json::to_string(&report).unwrap_or_default() + "\n"
    } else {
        rs::render(&report)
    };
    match std::io::stdout().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(1),
    }
}

/// A saved report: the whole file as one JSON value, else its last non-empty line (a
/// `run --output json` stream). The inner error is bad input (exit 2).
fn rss_shadow_report_file(
    path: &std::path::Path,
) -> anyhow::Result<(
    Result<serde_json::Value, skewscope::rss_shadow::RssShadowError>,
    String,
)> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {origin}"))?;
    let value = serde_json::from_str(&text).or_else(|whole| {
        let last = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        serde_json::from_str(last).map_err(|_| {
            skewscope::rss_shadow::RssShadowError::Input(format!(
                "{origin}: not a JSON report nor JSON lines ({whole})"
            ))
        })
    });
    Ok((value, origin))
}

/// One window of `--duration` seconds with the probes, as `snapshot --duration` takes it.
fn rss_shadow_live(root: HostRoot, args: &skewscope::cli::RssShadowArgs) -> anyhow::Result<Report> {
    let secs = args.duration.unwrap_or(5.0);
    let sources = SourceArgs {
        devices: args.device.iter().cloned().collect(),
        ..SourceArgs::default()
    };
    let opts = collect_options(root, &sources, &config::ProbesFile::default(), secs)?;
    let mut collector = Collector::new(opts);
    let mut state = model::ModelState::default();
    let first = collector.collect();
    log::info!("window open for {secs}s");
    std::thread::sleep(Duration::from_secs_f64(secs));
    let second = collector.collect();
    Ok(model::build_report(
        &Window::between(&first, &second),
        &ModelConfig::new(),
        &mut state,
    ))
}

/// `skewscope metrics`: the catalog, as docs/metrics.md (`--markdown`) or a plain list.
fn metrics(args: skewscope::cli::MetricsArgs) -> anyhow::Result<()> {
    let text = if args.markdown {
        sinks::metrics_doc::markdown()
    } else {
        sinks::catalog::CATALOG
            .iter()
            .map(|d| {
                format!(
                    "{:<48} {:<10} {:<14} {}\n",
                    d.name,
                    d.instrument.label(),
                    if d.unit.is_empty() { "-" } else { d.unit },
                    sinks::catalog::exposed_names(d).join(" ")
                )
            })
            .collect()
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .context("writing to stdout")
}

fn run(root: HostRoot, args: RunArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let file = match &args.telemetry.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let settings = config::resolve(&args.overrides(), &file, &|k| std::env::var(k).ok())?;
    // The bounds' products are the catalog's: checked here, reported as config.
    sinks::catalog::check_series_cap(&settings.telemetry.limits).map_err(|msg| {
        config::ConfigError::Invalid {
            what: "limits".into(),
            msg,
        }
    })?;
    for w in &settings.warnings {
        log::warn!("{w}");
    }
    let shadow_cfg = config::resolve_shadow(&args.shadow_candidates, &file.shadow)?;
    let opts = collect_options(root, &args.sources, &file.probes, settings.interval_secs)?;
    // Built outside the run loop's runtime: it owns its own for export I/O.
    let telemetry = if settings.telemetry.enabled() {
        Some(Telemetry::start(&settings.telemetry)?)
    } else {
        None
    };
    let model_cfg = file.model_config()?;
    let color = std::io::IsTerminal::is_terminal(&std::io::stdout())
        && std::env::var_os("NO_COLOR").is_none();
    let mut reports = 0u64;
    let overrides = args.overrides();
    // SIGHUP: re-read --config; a file that does not resolve is refused whole.
    let mut reload = |current: &ModelConfig| -> Option<ModelConfig> {
        let path = args.telemetry.config.as_ref()?;
        match config::reload(path, &file, &overrides, &|k| std::env::var(k).ok()) {
            Ok(r) => {
                if let Some(t) = &telemetry {
                    t.set_limits(r.limits);
                }
                if !r.needs_restart.is_empty() {
                    log::warn!(
                        "{}: changed {} kept as started: these need a restart",
                        path.display(),
                        r.needs_restart.join(", ")
                    );
                }
                log::info!(
                    "{}: reloaded ([model] {}, [limits] applied)",
                    path.display(),
                    if r.model == *current {
                        "unchanged"
                    } else {
                        "changed"
                    }
                );
                Some(r.model)
            }
            Err(e) => {
                log::error!("reload refused, the running config stays: {e}");
                None
            }
        }
    };
    let result = rt.block_on(run_loop(
        opts,
        settings.interval_secs,
        model_cfg,
        shadow_cfg,
        Some(&mut reload),
        &mut |report, _window, cycle_time| {
            if let Some(t) = &telemetry {
                t.publish(report, cycle_time);
            }
            let mut out = std::io::stdout().lock();
            let written = match args.output {
                OutputFormat::Json => sinks::write_json_line(report, &mut out),
                // Clear the screen and home the cursor for a live view.
                OutputFormat::Table => {
                    let text = format!(
                        "\x1b[2J\x1b[H{}",
                        sinks::console::render_with(report, color)
                    );
                    out.write_all(text.as_bytes()).and_then(|_| out.flush())
                }
            };
            if written.is_err() {
                return ControlFlow::Break(()); // stdout closed (e.g. piped into head): stop quietly
            }
            reports += 1;
            if args.count.is_some_and(|n| reports >= n) {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        },
    ));
    drop(rt);
    if let Some(t) = telemetry {
        t.shutdown(); // exports the last report
    }
    result
}

/// `baseline`'s reports: the loop of `run` with the baseline's collection flags, each
/// report handed over with the flows observed in its window.
fn baseline_loop(
    root: HostRoot,
    live: &skewscope::baseline::args::LiveArgs,
    on_report: &mut skewscope::baseline::OnReport<'_>,
) -> anyhow::Result<()> {
    let file = match &live.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let sources = SourceArgs {
        devices: live.devices.clone(),
        no_probes: live.no_probes,
        probe_budget: live.probe_budget,
        // From `[probes] selection_hook` of --config.
        selection_hook: None,
        ethtool_dir: live.ethtool_dir.clone(),
        // From --config's [probes] (baseline has no flags for them).
        ..SourceArgs::default()
    };
    let shadow_cfg = config::resolve_shadow(&live.shadow_candidates, &file.shadow)?;
    let opts = collect_options(root, &sources, &file.probes, live.interval)?;
    let model_cfg = file.model_config()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(run_loop(
        opts,
        live.interval,
        model_cfg,
        shadow_cfg,
        None,
        &mut |report, window, _| on_report(report, skewscope::record::trace_of(window)),
    ))
}

/// A config reload: given the model settings in force, the new ones (`None`: keep them).
type Reload<'a> = &'a mut dyn FnMut(&ModelConfig) -> Option<ModelConfig>;

/// Collects every `interval_secs` and hands each report (with its window and the cycle's
/// duration) to `on_report` until it breaks, Ctrl-C or SIGTERM. With `reload`, SIGHUP
/// swaps the model settings between cycles; the collector (probes), the previous
/// snapshot (the window) and the model state (regimes, estimators) carry on.
async fn run_loop(
    opts: CollectOptions,
    interval_secs: f64,
    mut cfg: ModelConfig,
    shadow_cfg: config::ShadowConfig,
    mut reload: Option<Reload<'_>>,
    on_report: &mut dyn FnMut(&Report, &Window, Duration) -> ControlFlow<()>,
) -> anyhow::Result<()> {
    // Collection blocks (procfs, netlink, BPF map reads): keep it off the runtime thread.
    let mut collector = tokio::task::spawn_blocking(move || Collector::new(opts)).await?;
    let mut state = model::ModelState::default();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(interval_secs));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    // Registered once, so a Ctrl-C that arrives while a cycle collects is not lost (a
    // fresh ctrl_c() per select only sees signals after it is first polled).
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("installing the SIGINT handler")?;
    // Without a reload SIGHUP keeps its default action (terminate).
    let mut hangup = match reload {
        Some(_) => Some(
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .context("installing the SIGHUP handler")?,
        ),
        None => None,
    };
    let mut previous: Option<Snapshot> = None;
    // Live shadow replay on a thread of its own; the cycle only hands it flows.
    let mut shadow = if shadow_cfg.enabled() {
        log::info!(
            "shadow replay every {:?} against {}",
            shadow_cfg.interval,
            shadow_cfg
                .candidates
                .iter()
                .map(|c| c.policy_name())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Some(
            ShadowWorker::start(&shadow_cfg, std::time::Instant::now())
                .context("starting the shadow replay worker")?,
        )
    } else {
        None
    };
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            Some(()) = async {
                match &mut hangup {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some(new) = reload.as_mut().and_then(|r| r(&cfg)) {
                    cfg = new;
                }
                continue;
            }
        }
        let cycle_start = std::time::Instant::now();
        let (c, snap) = tokio::task::spawn_blocking(move || {
            let snap = collector.collect();
            (collector, snap)
        })
        .await?;
        collector = c;
        if let Some(prev) = &previous {
            let window = Window::between(prev, &snap);
            let mut report = model::build_report(&window, &cfg, &mut state);
            if let Some(worker) = &mut shadow {
                let now = std::time::Instant::now();
                worker.observe(&window, now);
                report.shadow = worker.reports(now);
            }
            if on_report(&report, &window, cycle_start.elapsed()).is_break() {
                break;
            }
        }
        previous = Some(snap);
    }
    Ok(())
}

/// Loading the probes parses the kernel's BTF (~5 MB of /sys/kernel/btf/vmlinux, tens of
/// MB in memory) once per probe. glibc raises its mmap threshold to the size of each large
/// block freed (up to 32 MiB, malloc/malloc.c "dynamic mmap threshold"), so later large
/// blocks land in the heap and ~30 MiB of freed memory stayed resident for the agent's
/// life. Fixed thresholds give large blocks back to the kernel when freed (the footprint
/// bench: RssAnon 39 -> 7 MiB).
fn pin_malloc_thresholds() {
    // SAFETY: mallopt only sets allocator parameters; called before any other thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
    }
}
