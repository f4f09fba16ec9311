//! Human-readable tables of a report, for `run` and `snapshot`. Fits 80 columns.

use std::fmt::Write;

use crate::model::regime::{GroupRegime, Regime};
use crate::report::{DeviceReport, Report, ReuseportGroupReport, ShadowGroupReport};

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

/// Render for a terminal: `color` adds ANSI colours to regimes (off for pipes and
/// NO_COLOR).
pub fn render(report: &Report) -> String {
    render_with(report, false)
}

pub fn render_with(report: &Report, color: bool) -> String {
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
    if let Some(share) = report
        .probe_sampling
        .as_ref()
        .and_then(|p| p.attached_share)
        .filter(|s| *s < 0.999)
    {
        // Say so before any number the probes feed: those are estimates now.
        let _ = writeln!(
            out,
            "  probes attached {:.0}% of the window (probe budget): eBPF counts are estimates",
            share * 100.0
        );
    }
    for dev in &report.devices {
        render_device(&mut out, dev, w, color);
    }
    let same_group = |s: &ShadowGroupReport, g: &ReuseportGroupReport| {
        (s.netns, s.protocol, s.address.as_str(), s.port)
            == (g.netns, g.protocol, g.address.as_str(), g.port)
    };
    for g in &report.reuseport_groups {
        render_group(&mut out, g, w, color);
        // The shadow replay right under the group it predicts for, beside its actual LSI.
        for s in report.shadow.iter().filter(|s| same_group(s, g)) {
            render_shadow(&mut out, s);
        }
    }
    for s in &report.shadow {
        if !report.reuseport_groups.iter().any(|g| same_group(s, g)) {
            let _ = writeln!(
                out,
                "\nreuseport {} {}:{}  netns {}  (gone)",
                s.protocol, s.address, s.port, s.netns
            );
            render_shadow(&mut out, s);
        }
    }
    for t in &report.transitions {
        let _ = writeln!(
            out,
            "\n  transition {} {}: {} -> {}",
            t.scope, t.key, t.from, t.to
        );
    }

    // The busiest CPUs first; a 1152-CPU host must still fit a screen.
    let mut cpus: Vec<&crate::report::CpuReport> = report.cpus.iter().collect();
    cpus.sort_by_key(|c| std::cmp::Reverse(c.net_rx_softirqs.unwrap_or(0)));
    let _ = writeln!(
        out,
        "\n  CPU     NET_RX  share   processed    dropped   squeezed"
    );
    for cpu in cpus.iter().take(MAX_ROWS) {
        let sn = cpu.softnet.as_ref();
        let _ = writeln!(
            out,
            "  {:>3}  {:>9}  {:>5}  {:>10}  {:>9}  {:>9}",
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

fn render_device(out: &mut String, dev: &DeviceReport, w: Option<f64>, color: bool) {
    let i = &dev.indices;
    let _ = writeln!(
        out,
        "\n{} ({}, {} RX queue{})  {}",
        dev.name,
        dev.driver.as_deref().unwrap_or("virtual"),
        dev.rx_queues.len(),
        if dev.rx_queues.len() == 1 { "" } else { "s" },
        paint(dev.regime.name(), Some(dev.regime.rank()), color),
    );
    let _ = writeln!(
        out,
        "  QPI {}  ISI {} (norm {})  table QPI {}  HAF95 {}",
        fmt_index(i.qpi),
        fmt_index(i.isi),
        fmt_index(i.isi_normalized),
        fmt_index(i.table_qpi),
        fmt_us(i.haf95_us),
    );
    if dev.regime.rank() > 0 {
        wrap(out, "  advice: ", dev.advice);
    }
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

fn render_group(out: &mut String, g: &ReuseportGroupReport, w: Option<f64>, color: bool) {
    let i = &g.indices;
    let _ = writeln!(
        out,
        "\nreuseport {} {}:{}  netns {}  {}  P_hot {}",
        g.protocol,
        g.address,
        g.port,
        g.netns,
        paint(g.regime.name(), group_rank(g.regime), color),
        fmt_index(g.p_hot),
    );
    let _ = writeln!(
        out,
        "  LSI {}  HCR1 {}  HCR5 {}  LQD {}  BCI {}",
        fmt_index(i.lsi),
        fmt_index(i.hcr_1),
        fmt_index(i.hcr_5),
        i.lqd.map(human).unwrap_or_else(|| "-".into()),
        fmt_index(i.bci),
    );
    let _ = writeln!(
        out,
        "  age p50/p95/p99 {}/{}/{}  DLG {}  off-CPU reads {}",
        fmt_us(i.ingress_age_p50_us),
        fmt_us(i.ingress_age_p95_us),
        fmt_us(i.ingress_age_p99_us),
        fmt_us(i.dlg_us),
        i.locality_miss_ratio
            .map(|r| format!("{:.0}%", r * 100.0))
            .unwrap_or_else(|| "-".into()),
    );
    // UNKNOWN is not calm: its advice line is the reason the regime is missing.
    if g.regime.rank() > 0 || g.regime == GroupRegime::Unknown {
        wrap(out, "  advice: ", g.advice);
    }
    let _ = writeln!(
        out,
        "  idx  inode       events   queue  drops  age p95  owner"
    );
    for l in g.listeners.iter().take(MAX_ROWS) {
        let owner = match (l.pid, &l.comm) {
            (Some(pid), Some(comm)) => format!("{pid}/{comm}"),
            (Some(pid), None) => pid.to_string(),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "  {:>3}  {:<10} {:>7}  {:>6}  {:>5}  {:>7}  {}",
            l.index.map(|x| x.to_string()).unwrap_or_else(|| "-".into()),
            l.inode,
            fmt_count(l.events, w),
            human(l.queue_depth as f64),
            l.drops
                .map(|d| human(d as f64))
                .unwrap_or_else(|| "-".into()),
            fmt_us(l.ingress_age_p95_us),
            owner,
        );
    }
    if g.listeners.len() > MAX_ROWS {
        let _ = writeln!(out, "  … {} more listeners", g.listeners.len() - MAX_ROWS);
    }
    let flows: Vec<String> = g
        .top_flows
        .iter()
        .take(3)
        .map(|f| format!("{}:{} {}", f.saddr, f.sport, fmt_count(Some(f.packets), w)))
        .collect();
    if !flows.is_empty() {
        wrap(out, "  top flows: ", &flows.join(", "));
    }
}

/// One group's latest shadow replay: every policy's predicted LSI and its reduction
/// against the default, wrapped at 80 columns.
fn render_shadow(out: &mut String, s: &ShadowGroupReport) {
    let prefix = format!("  shadow ({:.0}s ago): ", s.replayed_secs_ago);
    if let Some(e) = &s.error {
        wrap(out, &prefix, &format!("replay failed: {e}"));
        return;
    }
    let parts: Vec<String> = s
        .policies
        .iter()
        .map(|p| match (p.lsi, p.skew_reduction) {
            _ if p.verifier == "rejected" => format!("{} rejected", p.policy),
            (Some(lsi), Some(r)) if p.policy != "default" => {
                // −z% is a reduction of the skew, +z% an increase.
                let pct = -r * 100.0;
                let sign = if pct < 0.0 { '−' } else { '+' };
                format!("{} LSI {lsi:.3} ({sign}{:.0}%)", p.policy, pct.abs())
            }
            (lsi, _) => format!("{} LSI {}", p.policy, fmt_index(lsi)),
        })
        .collect();
    // A policy's words stay together on one line where they fit.
    let text = parts
        .iter()
        .map(|p| p.replace(' ', KEEP))
        .collect::<Vec<_>>()
        .join(" | ");
    let mut wrapped = String::new();
    wrap(&mut wrapped, &prefix, &text);
    out.push_str(&wrapped.replace(KEEP, " "));
    for p in s.policies.iter().filter(|p| p.verifier == "rejected") {
        // The first line only: a verifier refusal carries the log's tail.
        let error = p.error.as_deref().unwrap_or("rejected");
        let first: String = error
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect();
        wrap(out, &format!("    {}: ", p.policy), &first);
    }
}

/// Stands for a space that `wrap` must not break at (not whitespace to `split_whitespace`).
const KEEP: &str = "\u{1}";

fn fmt_us(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(us) if us.abs() >= 1000.0 => format!("{:.1}ms", us / 1000.0),
        Some(us) => format!("{us:.0}us"),
    }
}

/// A regime name, coloured by rank when asked (green, yellow, orange, red); no
/// rank (UNKNOWN: not measured) is dim, never green.
fn paint(name: &str, rank: Option<usize>, color: bool) -> String {
    if !color {
        return format!("[{name}]");
    }
    let Some(rank) = rank else {
        return format!("\x1b[2m[{name}]\x1b[0m");
    };
    let code = ["32", "33", "38;5;208", "31"][rank.min(3)];
    format!("\x1b[1;{code}m[{name}]\x1b[0m")
}

/// A group's rank for colour; None for UNKNOWN, which is no level.
fn group_rank(regime: GroupRegime) -> Option<usize> {
    (regime != GroupRegime::Unknown).then(|| regime.rank())
}

/// Write `text` after `prefix`, wrapped at 80 columns with a hanging indent.
fn wrap(out: &mut String, prefix: &str, text: &str) {
    let indent = " ".repeat(prefix.chars().count());
    let mut line = prefix.to_string();
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.chars().count() + 1 + word.chars().count() > 80 {
            let _ = writeln!(out, "{line}");
            line = indent.clone();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    let _ = writeln!(out, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ShadowPolicyReport;

    fn policy(
        name: &str,
        verifier: &'static str,
        lsi: Option<f64>,
        r: Option<f64>,
    ) -> ShadowPolicyReport {
        ShadowPolicyReport {
            policy: name.into(),
            verifier,
            error: (verifier == "rejected")
                .then(|| "reading /x/bad.o: No such file or directory (os error 2)\nmore".into()),
            lsi,
            max_share: lsi.map(|_| 0.5),
            skew_reduction: r,
        }
    }

    /// UNKNOWN (events not measured) is dim, never green, says why, and its
    /// listeners' events read "-", not 0.
    #[test]
    fn unknown_group_is_dim_with_its_reason_and_no_event_counts() {
        use crate::report::{GroupIndices, ListenerReport};
        let g = ReuseportGroupReport {
            netns: 1,
            protocol: "udp",
            address: "10.0.0.1".into(),
            port: 53,
            reuseport_id: None,
            listeners: vec![ListenerReport {
                inode: 4242,
                index: None,
                pid: None,
                comm: None,
                container: None,
                events: None,
                selections: None,
                selection: None,
                queue_depth: 0,
                backlog_limit: None,
                drops: None,
                ingress_age_p95_us: None,
                ingress_age_samples: None,
                ingress_age_other_cpu: None,
                state: None,
            }],
            top_flows: Vec::new(),
            indices: GroupIndices::default(),
            regime: GroupRegime::Unknown,
            advice: GroupRegime::Unknown.advice(),
            p_hot: None,
            regime_transitions: 0,
            membership_changes: 0,
        };
        let mut out = String::new();
        render_group(&mut out, &g, Some(2.0), true);
        assert!(out.contains("\x1b[2m[UNKNOWN]\x1b[0m"), "{out}");
        assert!(!out.contains("\x1b[1;32m"), "UNKNOWN painted green: {out}");
        assert!(
            out.contains("advice: per-listener events are not measured"),
            "{out}"
        );
        let row = out.lines().find(|l| l.contains("4242")).unwrap();
        assert_eq!(row.split_whitespace().nth(2), Some("-"), "{row}");
        let mut plain = String::new();
        render_group(&mut plain, &g, Some(2.0), false);
        assert!(
            plain.contains("[UNKNOWN]") && !plain.contains('\x1b'),
            "{plain}"
        );
    }

    #[test]
    fn shadow_block_wraps_at_80_columns_between_policies() {
        let s = ShadowGroupReport {
            netns: 1,
            protocol: "udp",
            address: "10.0.0.1".into(),
            port: 53,
            replayed_secs_ago: 4.2,
            flows: 40,
            sockets: 4,
            error: None,
            policies: vec![
                policy("default", "none", Some(1.2), Some(0.0)),
                policy("builtin:isolate-heavy", "accepted", Some(0.3), Some(0.75)),
                policy("builtin:cpu", "accepted", Some(1.5), Some(-0.25)),
                policy("builtin:weighted", "accepted", Some(1.2), Some(0.0)),
                policy("/x/bad.o", "rejected", None, None),
            ],
            skipped_handoffs: 0,
        };
        let mut out = String::new();
        render_shadow(&mut out, &s);
        assert!(
            out.starts_with(
                "  shadow (4s ago): default LSI 1.200 | builtin:isolate-heavy LSI 0.300 (−75%)"
            ),
            "{out}"
        );
        assert!(out.contains("builtin:cpu LSI 1.500 (+25%)"), "{out}");
        assert!(out.contains("/x/bad.o rejected"), "{out}");
        assert!(
            out.contains("    /x/bad.o: reading /x/bad.o: No such file"),
            "{out}"
        );
        assert!(!out.contains("more"), "first line of the error only: {out}");
        for line in out.lines() {
            assert!(line.chars().count() <= 80, "{line:?}");
            assert!(!line.contains('\u{1}'));
        }
        let failed = ShadowGroupReport {
            error: Some("private network namespace: unshare: Operation not permitted".into()),
            policies: Vec::new(),
            ..s
        };
        let mut out = String::new();
        render_shadow(&mut out, &failed);
        assert!(
            out.contains("replay failed: private network namespace"),
            "{out}"
        );
    }
}
