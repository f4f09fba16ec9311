//! `skewscope baseline record|compare`: the observe-only baseline before a canary and the
//! verdict after it (shared/seeds/reuseport-ebpf-steering-playbook.txt §7,
//! reuseport-hash-skew-playbook.txt "Validation protocol"; docs/baseline.md).
//!
//! The input is the finished [`Report`] of each cycle, as `run` produces it: the binary
//! hands its run loop in as a [`LiveLoop`], so recording adds no second way to collect.
//! Reports are read through their documented JSON keys ([`view`]), then accumulated
//! ([`record`]) into a schema-versioned file ([`file`]); [`matching`] pairs the groups and
//! devices of two files, [`compare`] judges them; [`html`] draws the report.

pub mod args;
pub mod compare;
pub mod file;
pub mod fingerprint;
pub mod host;
pub mod html;
pub mod matching;
mod progress;
pub mod record;
pub mod stats;
pub mod view;

#[cfg(test)]
mod testutil;

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;

use anyhow::Context;
use skewscope_shadow::FlowSample;

use crate::report::Report;
use crate::sources::HostRoot;
use args::{BaselineArgs, BaselineCommand, CompareArgs, LiveArgs, RecordArgs};
use file::Baseline;
use record::{Recorder, RecordingMeta};
use view::ReportView;

/// Exit status of a usage or input error (the verdicts' are [`compare::Verdict::exit_code`]:
/// 0 promote, 1 hold, 3 inconclusive). Every failure of a baseline command exits 2, so 1
/// always means "hold" to a rollout gate.
pub const EXIT_ERROR: u8 = 2;

/// What the loop hands over each cycle: the report and the flows observed in its window.
pub type OnReport<'a> = dyn FnMut(&Report, Vec<FlowSample>) -> ControlFlow<()> + 'a;

/// The run loop of `run` with the collection settings of [`LiveArgs`]: it calls the
/// callback once per report until the callback breaks or Ctrl-C / SIGTERM arrives, then
/// returns.
pub type LiveLoop<'a> = dyn FnMut(&LiveArgs, &mut OnReport<'_>) -> anyhow::Result<()> + 'a;

/// Runs a baseline command; its exit status.
pub fn main(root: &HostRoot, args: BaselineArgs, live: &mut LiveLoop<'_>) -> u8 {
    let result = match args.command {
        BaselineCommand::Record(a) => record_command(root, &a, live).map(|()| 0),
        BaselineCommand::Compare(a) => compare_command(root, &a, live),
    };
    result.unwrap_or_else(|e| {
        eprintln!("skewscope: {e:#}");
        EXIT_ERROR
    })
}

fn record_command(
    root: &HostRoot,
    args: &RecordArgs,
    live: &mut LiveLoop<'_>,
) -> anyhow::Result<()> {
    let baseline = record_live(root, &args.live, args.duration, live)?;
    write_baseline(&baseline, &args.out)?;
    if let Some(html) = &args.html {
        let name = args.out.display().to_string();
        write_file(html, html::record_page(&baseline, &name).as_bytes())?;
    }
    Ok(())
}

/// Records for `duration_secs` (or until Ctrl-C) through the run loop.
pub fn record_live(
    root: &HostRoot,
    live_args: &LiveArgs,
    duration_secs: f64,
    live: &mut LiveLoop<'_>,
) -> anyhow::Result<Baseline> {
    let meta = RecordingMeta {
        requested_secs: duration_secs,
        interval_secs: live_args.interval,
        started_unix_secs: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
        host_name: host::host_name(root),
        kernel: host::kernel_release(root),
        config_hash: host::config_hash(live_args.config.as_deref()),
        tcp_at_start: host::tcp_counters(root),
    };
    let mut recorder = Recorder::new(meta);
    let mut progress = progress::Progress::start(duration_secs);
    let mut done = false;
    // The last window may end a little before the duration (ticks are not exact): a
    // quarter interval short counts as complete.
    let enough = duration_secs - 0.25 * live_args.interval;
    let result = live(live_args, &mut |report, flows| {
        if let Some(view) = ReportView::of(report) {
            recorder.add(&view, &flows);
        }
        progress.update(
            recorder.elapsed_secs(),
            recorder.cycles(),
            recorder.group_count(),
            recorder.device_count(),
        );
        if recorder.elapsed_secs() >= enough {
            done = true;
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    progress.finish(recorder.elapsed_secs(), recorder.cycles());
    result?;
    let interrupted = !done;
    if interrupted {
        eprintln!(
            "skewscope: interrupted after {:.1} of {duration_secs:.1} s: the baseline keeps the \
             {} cycles recorded and says \"interrupted\": true",
            recorder.elapsed_secs(),
            recorder.cycles()
        );
    }
    Ok(recorder.finish(interrupted, host::tcp_counters(root)))
}

fn compare_command(
    root: &HostRoot,
    args: &CompareArgs,
    live: &mut LiveLoop<'_>,
) -> anyhow::Result<u8> {
    let tol = args.tolerances.tolerances();
    tol.validate().map_err(anyhow::Error::msg)?;
    let before = file::read(&args.before)?;
    let before_source = args.before.display().to_string();
    let (after, after_source) = match (&args.after, args.duration) {
        (Some(path), _) => (file::read(path)?, path.display().to_string()),
        (None, Some(secs)) => {
            let b = record_live(root, &args.live_args, secs, live)?;
            if let Some(out) = &args.out {
                write_baseline(&b, out)?;
            }
            (b, "live".to_string())
        }
        // clap requires AFTER or --live --duration.
        (None, None) => anyhow::bail!("AFTER or --live --duration SECS is required"),
    };
    let scope = compare::Scope {
        ports: args.ports.clone(),
        only: args.only.clone(),
    };
    let c = compare::compare(&before, &before_source, &after, &after_source, &tol, &scope);
    let text = if args.json {
        serde_json::to_string_pretty(&c).context("serializing the comparison")? + "\n"
    } else {
        compare::render_text(&c)
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .context("writing to stdout")?;
    if let Some(html) = &args.html {
        write_file(
            html,
            html::compare_page(&c, &before, &after, &scope).as_bytes(),
        )?;
    }
    Ok(c.exit_code)
}

fn write_baseline(b: &Baseline, out: &Path) -> anyhow::Result<()> {
    let text = file::to_text(b);
    if out.as_os_str() == "-" {
        std::io::stdout()
            .write_all(text.as_bytes())
            .context("writing the baseline to stdout")
    } else {
        write_file(out, text.as_bytes())?;
        log::info!(
            "wrote {} ({} cycles, {} groups, {} devices)",
            out.display(),
            b.cycles,
            b.groups.len(),
            b.devices.len()
        );
        Ok(())
    }
}

/// Writes through a temporary sibling and a rename, so an interrupted write never leaves
/// a truncated file where a baseline was.
fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "baseline".into());
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| {
        let _ = std::fs::remove_file(&tmp);
        format!("writing {}", path.display())
    })
}
