//! Human-readable tables of a report, for `run` and `snapshot`. Fits 80 columns.

use std::fmt::Write;

use crate::report::{DeviceReport, Report};

/// Rows per table: the busiest ones, so a large host fits a terminal.
const MAX_ROWS: usize = 16;

fn fmt_index(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into())
}

/// A count, or a rate when the report covers a window.
fn fmt_count(n: Option<u64>, window: Option<f64>) -> String {
    match (n, window) {
        (None, _) => "-".into(),
        (Some(n), Some(secs)) if secs > 0.0 => human(n as f64 / secs) + "/s",
        (Some(n), _) => human(n as f64),
    }
}

fn human(x: f64) -> String {
    match x {
        x if x >= 1e9 => format!("{:.1}G", x / 1e9),
        x if x >= 1e6 => format!("{:.1}M", x / 1e6),
        x if x >= 1e4 => format!("{:.1}k", x / 1e3),
        x if x.fract() == 0.0 => format!("{x:.0}"),
        x => format!("{x:.1}"),
    }
}

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let w = report.window_secs;
    let span = match w {
        Some(s) => format!("over the last {s:.1}s"),
        None => "since boot".to_string(),
    };
    let _ = writeln!(
        out,
        "skewscope  {span}  SPI {}  NET_RX CPU skew {}",
        fmt_index(report.host.indices.spi),
        fmt_index(report.host.indices.net_rx_cpu_qpi)
    );
    for dev in &report.devices {
        render_device(&mut out, dev, w);
    }

    // The busiest CPUs first; a 1152-CPU host must still fit a screen.
    let mut cpus: Vec<&crate::report::CpuReport> = report.cpus.iter().collect();
    cpus.sort_by_key(|c| std::cmp::Reverse(c.net_rx_softirqs.unwrap_or(0)));
    let _ = writeln!(out, "\n  CPU  NET_RX  share  processed  dropped  squeezed");
    for cpu in cpus.iter().take(MAX_ROWS) {
        let sn = cpu.softnet.as_ref();
        let _ = writeln!(
            out,
            "  {:>3}  {:>6}  {:>5}  {:>9}  {:>7}  {:>8}",
            cpu.cpu,
            fmt_count(cpu.net_rx_softirqs, w),
            cpu.net_rx_share
                .map(|s| format!("{:.0}%", s * 100.0))
                .unwrap_or_else(|| "-".into()),
            fmt_count(sn.map(|s| s.processed), w),
            fmt_count(sn.map(|s| s.dropped), w),
            fmt_count(sn.map(|s| s.time_squeeze), w),
        );
    }
    if cpus.len() > MAX_ROWS {
        let _ = writeln!(out, "  … {} quieter CPUs", cpus.len() - MAX_ROWS);
    }
    let failed: Vec<String> = report
        .sources
        .iter()
        .filter(|s| s.status == crate::snapshot::SourceOutcome::Failed)
        .map(|s| format!("{}: {}", s.name, s.error.as_deref().unwrap_or("?")))
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(out, "\n  failed sources:");
        for f in failed {
            let _ = writeln!(out, "    {f}");
        }
    }
    out
}

fn render_device(out: &mut String, dev: &DeviceReport, w: Option<f64>) {
    let i = &dev.indices;
    let _ = writeln!(
        out,
        "\n{} ({})  queues {}  QPI {}  ISI {} (norm {})  table QPI {}",
        dev.name,
        dev.driver.as_deref().unwrap_or("virtual"),
        dev.rx_queues.len(),
        fmt_index(i.qpi),
        fmt_index(i.isi),
        fmt_index(i.isi_normalized),
        fmt_index(i.table_qpi),
    );
    if !dev.irq_cpus_off_node.is_empty() {
        let _ = writeln!(
            out,
            "  IRQ CPUs off the device's NUMA node: {:?}",
            dev.irq_cpus_off_node
        );
    }
    let _ = writeln!(out, "  queue  packets      IRQs  table  irq cpus");
    // The busiest queues first (packets, else IRQs).
    let mut queues: Vec<&crate::report::RxQueueReport> = dev.rx_queues.iter().collect();
    queues.sort_by_key(|q| std::cmp::Reverse((q.rx_packets.unwrap_or(0), q.irq_count)));
    for q in queues.iter().take(MAX_ROWS) {
        let cpus: Vec<String> = q
            .irq_cpus
            .iter()
            .take(4)
            .map(|(c, _)| c.to_string())
            .collect();
        let more = if q.irq_cpus.len() > 4 { ",…" } else { "" };
        let _ = writeln!(
            out,
            "  {:>5}  {:>9}  {:>8}  {:>5}  {}{}",
            q.queue,
            fmt_count(q.rx_packets, w),
            if q.irqs.is_empty() {
                "-".to_string()
            } else {
                fmt_count(Some(q.irq_count), w)
            },
            q.table_share
                .map(|s| format!("{:.0}%", s * 100.0))
                .unwrap_or_else(|| "-".into()),
            cpus.join(","),
            more
        );
    }
    if queues.len() > MAX_ROWS {
        let _ = writeln!(out, "  … {} quieter queues", queues.len() - MAX_ROWS);
    }
}
