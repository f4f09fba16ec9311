//! Progress of a recording on stderr: a bar on a terminal, plain lines otherwise (CI
//! logs, pipes), at most one every few seconds.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    total_secs: f64,
    bar: Option<ProgressBar>,
    last_line: Option<Instant>,
    line_every: Duration,
    /// Cycles in the last plain line.
    printed_cycles: u64,
}

impl Progress {
    pub fn start(total_secs: f64) -> Self {
        eprintln!(
            "skewscope: recording for {total_secs:.1} s (Ctrl-C stops early and keeps what was \
             recorded)"
        );
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(
                Some((total_secs * 10.0).ceil() as u64),
                ProgressDrawTarget::stderr(),
            );
            if let Ok(style) = ProgressStyle::with_template("{bar:30.cyan/blue} {msg}") {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Self {
            total_secs,
            bar,
            last_line: None,
            printed_cycles: 0,
            line_every: Duration::from_secs_f64((total_secs / 10.0).clamp(1.0, 30.0)),
        }
    }

    pub fn update(&mut self, recorded_secs: f64, cycles: u64, groups: usize, devices: usize) {
        let what = format!(
            "{recorded_secs:.1}/{:.1} s: {cycles} cycles, {groups} group{}, {devices} device{}",
            self.total_secs,
            if groups == 1 { "" } else { "s" },
            if devices == 1 { "" } else { "s" }
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position((recorded_secs * 10.0) as u64);
                bar.set_message(what);
            }
            None => {
                let due = self
                    .last_line
                    .is_none_or(|t| t.elapsed() >= self.line_every);
                if due {
                    self.last_line = Some(Instant::now());
                    self.printed_cycles = cycles;
                    eprintln!("skewscope: recorded {what}");
                }
            }
        }
    }

    /// Clears the bar; without one, says where the recording ended.
    pub fn finish(&self, recorded_secs: f64, cycles: u64) {
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None if cycles != self.printed_cycles || cycles == 0 => eprintln!(
                "skewscope: recorded {recorded_secs:.1}/{:.1} s: {cycles} cycles",
                self.total_secs
            ),
            None => {}
        }
    }
}
