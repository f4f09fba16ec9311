//! The verdict of a canary: two baselines side by side, matched across restarts and
//! hosts, judged by the seeds' promotion rules (shared/seeds/reuseport-hash-skew-playbook
//! "Validation protocol", reuseport-ebpf-steering-playbook §7): promote only if the tails
//! (q95, q99) of LSI, LQD, ingress age (DLG + target) and QPI/HAF95 did not regress beyond
//! the tolerances and drops and resets stayed within their guardrails. A topology change
//! or too little data makes the comparison inconclusive, whatever the numbers say.

use serde::Serialize;

use super::file::{Baseline, DeviceBaseline, GroupBaseline};
use super::fingerprint;
pub use super::matching::{match_devices, match_groups, MatchMethod, Matching};
use super::stats::{Dist, Quantile};

pub const COMPARE_SCHEMA: &str = "skewscope.baseline-compare/v1";

/// A part of a baseline the verdict may be restricted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Reuseport groups: LSI, LQD, DLG / ingress age tails, listener drops.
    Groups,
    /// Devices: QPI and HAF95 tails.
    Devices,
    /// Host guardrails: softnet drops, TCP resets and listen drops.
    Host,
}

/// Tolerances of the verdict (docs/baseline.md). A tail regresses when
/// after > before + max(|before| × relative, floor).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tolerances {
    pub relative: f64,
    pub lsi: f64,
    /// LQD of TCP groups: accept-queue connections.
    pub lqd_connections: f64,
    /// LQD of UDP groups: receive-queue bytes (sk_rmem_alloc counts truesize, ~768 bytes
    /// and more per small datagram).
    pub lqd_bytes: f64,
    pub age_us: f64,
    pub qpi: f64,
    pub guardrail_relative: f64,
    pub guardrail_per_sec: f64,
    pub min_cycles: u64,
}

impl Default for Tolerances {
    fn default() -> Self {
        Self {
            relative: 0.10,
            lsi: 0.05,
            lqd_connections: 8.0,
            lqd_bytes: 65536.0,
            age_us: 50.0,
            qpi: 0.05,
            guardrail_relative: 0.10,
            guardrail_per_sec: 1.0,
            min_cycles: 3,
        }
    }
}

impl Tolerances {
    /// Negative or non-finite tolerances are usage errors.
    pub fn validate(&self) -> Result<(), String> {
        let all = [
            ("--tolerance", self.relative),
            ("--lsi-floor", self.lsi),
            ("--lqd-floor", self.lqd_connections),
            ("--lqd-floor-bytes", self.lqd_bytes),
            ("--age-floor-us", self.age_us),
            ("--qpi-floor", self.qpi),
            ("--guardrail-tolerance", self.guardrail_relative),
            ("--guardrail-floor-per-sec", self.guardrail_per_sec),
        ];
        for (flag, v) in all {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{flag} {v}: must be a finite number ≥ 0"));
            }
        }
        Ok(())
    }

    /// The largest `after` that passes for a tail of `before`.
    pub fn allowed(before: f64, relative: f64, floor: f64) -> f64 {
        before + (before.abs() * relative).max(floor)
    }
}

/// What the comparison concludes, and the exit status that says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Promote,
    Hold,
    Inconclusive,
}

impl Verdict {
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Promote => 0,
            Verdict::Hold => 1,
            Verdict::Inconclusive => 3,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Verdict::Promote => "PROMOTE",
            Verdict::Hold => "HOLD",
            Verdict::Inconclusive => "INCONCLUSIVE",
        }
    }
}

/// One line of a side-by-side table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// "LSI", "LQD", "ingress age p95 (µs)", "drops/s", …
    pub metric: String,
    /// Which point of the distribution over cycles (null for rates over the recording).
    pub quantile: Option<&'static str>,
    pub before: Option<f64>,
    pub after: Option<f64>,
    /// (after − before) / |before|; null when before is 0 or either is missing.
    pub change: Option<f64>,
    /// The largest after that passes (judged rows only).
    pub allowed: Option<f64>,
    pub status: Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    /// Judged but not measured on one side (or too few cycles): inconclusive.
    Missing,
    /// Shown, not judged.
    Info,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::Missing => "n/a",
            Status::Info => "",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairComparison {
    pub before: String,
    pub after: String,
    pub match_method: MatchMethod,
    /// The method in words.
    pub matched_on: &'static str,
    /// Whether its rows count for the verdict (--only, --port).
    pub judged: bool,
    /// What changed in its topology (each makes the verdict inconclusive).
    pub topology_changes: Vec<String>,
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SideSummary {
    pub source: String,
    pub host_name: Option<String>,
    pub cycles: u64,
    pub recorded_secs: f64,
    pub interrupted: bool,
    pub agent_version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub schema: &'static str,
    pub verdict: Verdict,
    pub exit_code: u8,
    /// Each regression, named: what, which tail, before → after, allowed.
    pub regressions: Vec<String>,
    /// Why the comparison cannot be trusted: topology changes, too little data.
    pub inconclusive: Vec<String>,
    /// Differences said but not counted: kernel, sysctls, agent, config, host name,
    /// groups only on the after side, parts left out.
    pub notes: Vec<String>,
    pub before: SideSummary,
    pub after: SideSummary,
    pub tolerances: Tolerances,
    pub groups: Vec<PairComparison>,
    pub devices: Vec<PairComparison>,
    pub host: Vec<Row>,
}

/// What a comparison is restricted to (flags).
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only groups on these ports (all when empty).
    pub ports: Vec<u16>,
    /// Judged parts (all when empty).
    pub only: Vec<Part>,
}

impl Scope {
    fn judges(&self, part: Part) -> bool {
        self.only.is_empty() || self.only.contains(&part)
    }
}

pub fn group_label(g: &GroupBaseline) -> String {
    let owners = if g.owners.is_empty() {
        String::new()
    } else {
        format!(" ({})", g.owners.join(","))
    };
    format!(
        "{} {}:{} netns {}{owners}",
        g.protocol, g.address, g.port, g.netns
    )
}

fn device_label(d: &DeviceBaseline) -> String {
    format!(
        "{} ({}, {} RX queue{})",
        d.name,
        d.driver.as_deref().unwrap_or("-"),
        d.queues.len(),
        if d.queues.len() == 1 { "" } else { "s" }
    )
}

struct Judge<'a> {
    tol: &'a Tolerances,
    regressions: Vec<String>,
    inconclusive: Vec<String>,
}

impl Judge<'_> {
    /// Rows for one index: p50 shown, q95 and q99 judged when `judged` and the index was
    /// measured before (an index never measured before has nothing to be held to).
    #[allow(clippy::too_many_arguments)]
    fn tails(
        &mut self,
        rows: &mut Vec<Row>,
        who: &str,
        metric: &str,
        before: Option<&Dist>,
        after: Option<&Dist>,
        floor: f64,
        judged: bool,
    ) {
        rows.push(info_row(metric, Some(Quantile::P50), before, after));
        let min = self.tol.min_cycles;
        let cycles = |d: Option<&Dist>| d.map_or(0, |d| d.n);
        let status = match (judged, before, after) {
            (false, ..) | (true, None, _) => Status::Info,
            (true, Some(b), _) if b.n < min => {
                self.inconclusive.push(format!(
                    "{who}: {metric} measured in {} cycles before (--min-cycles {min})",
                    b.n
                ));
                Status::Missing
            }
            (true, Some(_), a) if cycles(a) < min => {
                self.inconclusive.push(format!(
                    "{who}: {metric} measured before but in {} cycles after (--min-cycles {min})",
                    cycles(a)
                ));
                Status::Missing
            }
            (true, Some(_), _) => Status::Pass,
        };
        for q in [Quantile::P95, Quantile::P99] {
            let b = before.map(|d| d.get(q));
            let a = after.map(|d| d.get(q));
            let mut row = Row {
                metric: metric.to_string(),
                quantile: Some(q.label()),
                before: b,
                after: a,
                change: change(b, a),
                allowed: None,
                status,
            };
            if let (Status::Pass, Some(bv), Some(av)) = (status, b, a) {
                let allowed = Tolerances::allowed(bv, self.tol.relative, floor);
                row.allowed = Some(allowed);
                if av > allowed {
                    row.status = Status::Fail;
                    self.regressions.push(format!(
                        "{who}: {metric} {} {} → {} ({}; allowed ≤ {})",
                        q.label(),
                        num(bv),
                        num(av),
                        pct(change(Some(bv), Some(av))),
                        num(allowed)
                    ));
                }
            }
            rows.push(row);
        }
    }

    /// A rate over the whole recording judged as a guardrail.
    fn guardrail(
        &mut self,
        rows: &mut Vec<Row>,
        who: &str,
        metric: &str,
        before: Option<f64>,
        after: Option<f64>,
        judged: bool,
    ) {
        let mut row = Row {
            metric: metric.to_string(),
            quantile: None,
            before,
            after,
            change: change(before, after),
            allowed: None,
            status: Status::Info,
        };
        if judged {
            if let (Some(b), Some(a)) = (before, after) {
                let allowed =
                    Tolerances::allowed(b, self.tol.guardrail_relative, self.tol.guardrail_per_sec);
                row.allowed = Some(allowed);
                if a > allowed {
                    row.status = Status::Fail;
                    self.regressions.push(format!(
                        "{who}: {metric} {} → {} (guardrail; allowed ≤ {})",
                        num(b),
                        num(a),
                        num(allowed)
                    ));
                } else {
                    row.status = Status::Pass;
                }
            }
        }
        rows.push(row);
    }
}

/// Rows measured on neither side say nothing: left out.
fn measured(r: &Row) -> bool {
    r.before.is_some() || r.after.is_some()
}

fn info_row(metric: &str, q: Option<Quantile>, before: Option<&Dist>, after: Option<&Dist>) -> Row {
    let q_ = q.unwrap_or(Quantile::P50);
    let b = before.map(|d| d.get(q_));
    let a = after.map(|d| d.get(q_));
    Row {
        metric: metric.to_string(),
        quantile: Some(q_.label()),
        before: b,
        after: a,
        change: change(b, a),
        allowed: None,
        status: Status::Info,
    }
}

fn change(before: Option<f64>, after: Option<f64>) -> Option<f64> {
    match (before, after) {
        (Some(b), Some(a)) if b != 0.0 => Some((a - b) / b.abs()),
        _ => None,
    }
}

/// About three significant digits, never an exponent for the values indices take.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    if x == 0.0 {
        return "0".into(); // not "-0"
    }
    let a = x.abs();
    if a >= 1000.0 || (x == x.trunc() && a < 1e15) {
        format!("{x:.0}")
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        // 0.249 → 3 decimals, 0.0015 → 5: three significant digits below 1, trailing
        // zeros dropped.
        let decimals = ((-a.log10().floor()) as usize + 2).min(9);
        let s = format!("{x:.decimals$}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

pub fn pct(c: Option<f64>) -> String {
    c.map_or("-".to_string(), |c| format!("{:+.1}%", c * 100.0))
}

/// Compares two baselines. `before_source`/`after_source` name them in the output.
pub fn compare(
    before: &Baseline,
    before_source: &str,
    after: &Baseline,
    after_source: &str,
    tol: &Tolerances,
    scope: &Scope,
) -> Comparison {
    let mut judge = Judge {
        tol,
        regressions: Vec::new(),
        inconclusive: Vec::new(),
    };
    let mut notes = fingerprint::notes(&before.fingerprint, &after.fingerprint);
    if before.host_name != after.host_name {
        notes.push(format!(
            "hosts differ ({} → {}): a canary/control comparison, groups matched without netns",
            before.host_name.as_deref().unwrap_or("-"),
            after.host_name.as_deref().unwrap_or("-")
        ));
    }
    for (side, b) in [("before", before), ("after", after)] {
        for c in &b.fingerprint_changes {
            judge.inconclusive.push(format!(
                "{side}: topology changed during the recording: {c}"
            ));
        }
        if b.cycles < tol.min_cycles {
            judge.inconclusive.push(format!(
                "{side}: {} cycles recorded (--min-cycles {})",
                b.cycles, tol.min_cycles
            ));
        }
        if b.interrupted {
            notes.push(format!(
                "{side}: interrupted after {:.1} of {:.1} s",
                b.recorded_secs, b.requested_secs
            ));
        }
    }

    // Groups.
    let in_scope = |g: &&GroupBaseline| scope.ports.is_empty() || scope.ports.contains(&g.port);
    let bg: Vec<&GroupBaseline> = before.groups.iter().filter(in_scope).collect();
    let ag: Vec<&GroupBaseline> = after.groups.iter().filter(in_scope).collect();
    let same_host = before.host_name.is_some() && before.host_name == after.host_name;
    let m = match_groups(&bg, &ag, same_host);
    let judge_groups = scope.judges(Part::Groups);
    let mut groups = Vec::new();
    for &(i, j, method) in &m.pairs {
        let (b, a) = (bg[i], ag[j]);
        let who = format!("{} {}:{}", b.protocol, b.address, b.port);
        let mut topology = Vec::new();
        if b.listeners_max != a.listeners_max {
            topology.push(format!(
                "{who}: group size {} → {}",
                b.listeners_max, a.listeners_max
            ));
        }
        judge.inconclusive.extend(topology.iter().cloned());
        let mut rows = Vec::new();
        let (x, y) = (&b.indices, &a.indices);
        judge.tails(
            &mut rows,
            &who,
            "LSI",
            x.lsi.as_ref(),
            y.lsi.as_ref(),
            tol.lsi,
            judge_groups,
        );
        judge.tails(
            &mut rows,
            &who,
            "LQD",
            x.lqd.as_ref(),
            y.lqd.as_ref(),
            if b.protocol == "tcp" {
                tol.lqd_connections
            } else {
                tol.lqd_bytes
            },
            judge_groups,
        );
        judge.tails(
            &mut rows,
            &who,
            "ingress age p95 (µs)",
            x.ingress_age_p95_us.as_ref(),
            y.ingress_age_p95_us.as_ref(),
            tol.age_us,
            judge_groups,
        );
        for (name, b, a) in [
            ("DLG (µs)", &x.dlg_us, &y.dlg_us),
            ("HCR1", &x.hcr_1, &y.hcr_1),
            ("HCR5", &x.hcr_5, &y.hcr_5),
            ("BCI", &x.bci, &y.bci),
            ("P_hot", &x.p_hot, &y.p_hot),
        ] {
            rows.push(info_row(name, Some(Quantile::P95), b.as_ref(), a.as_ref()));
        }
        let hot = |g: &GroupBaseline| {
            1.0 - g
                .regimes
                .get("GREEN")
                .copied()
                .unwrap_or(if g.regimes.is_empty() { 1.0 } else { 0.0 })
        };
        rows.push(Row {
            metric: "time out of GREEN".into(),
            quantile: None,
            before: Some(hot(b)),
            after: Some(hot(a)),
            change: change(Some(hot(b)), Some(hot(a))),
            allowed: None,
            status: Status::Info,
        });
        judge.guardrail(
            &mut rows,
            &who,
            "socket drops/s",
            Some(b.drops_per_sec),
            Some(a.drops_per_sec),
            judge_groups,
        );
        rows.push(Row {
            metric: "membership changes".into(),
            quantile: None,
            before: Some(b.membership_changes as f64),
            after: Some(a.membership_changes as f64),
            change: None,
            allowed: None,
            status: Status::Info,
        });
        rows.retain(measured);
        groups.push(PairComparison {
            before: group_label(b),
            after: group_label(a),
            match_method: method,
            matched_on: method.describe(),
            judged: judge_groups,
            topology_changes: topology,
            rows,
        });
    }
    for &i in &m.unmatched_before {
        let g = bg[i];
        if g.cycles < tol.min_cycles {
            notes.push(format!(
                "{}: only {} cycles before, not compared",
                group_label(g),
                g.cycles
            ));
        } else {
            judge.inconclusive.push(format!(
                "{}: no matching group after (group gone, or ambiguous)",
                group_label(g)
            ));
        }
    }
    for &j in &m.unmatched_after {
        notes.push(format!("{}: only after (new group)", group_label(ag[j])));
    }
    if bg.is_empty() && judge_groups && !scope.ports.is_empty() {
        judge.inconclusive.push(format!(
            "no reuseport group on port {:?} before",
            scope.ports
        ));
    }

    // Devices (their topology always counts: it shapes the groups' traffic too).
    let bd: Vec<&DeviceBaseline> = before.devices.iter().collect();
    let ad: Vec<&DeviceBaseline> = after.devices.iter().collect();
    let dm = match_devices(&bd, &ad);
    let judge_devices = scope.judges(Part::Devices);
    let fp_of = |b: &Baseline, name: &str| {
        b.fingerprint
            .devices
            .iter()
            .find(|d| d.name == name)
            .cloned()
    };
    let mut devices = Vec::new();
    for &(i, j, method) in &dm.pairs {
        let (b, a) = (bd[i], ad[j]);
        let who = b.name.clone();
        let topology = match (fp_of(before, &b.name), fp_of(after, &a.name)) {
            (Some(x), Some(y)) => fingerprint::device_changes(&x, &y),
            _ => Vec::new(),
        };
        judge.inconclusive.extend(topology.iter().cloned());
        let mut rows = Vec::new();
        let (x, y) = (&b.indices, &a.indices);
        judge.tails(
            &mut rows,
            &who,
            "QPI",
            x.qpi.as_ref(),
            y.qpi.as_ref(),
            tol.qpi,
            judge_devices,
        );
        judge.tails(
            &mut rows,
            &who,
            "HAF95 (µs)",
            x.haf95_us.as_ref(),
            y.haf95_us.as_ref(),
            tol.age_us,
            judge_devices,
        );
        for (name, b, a) in [
            ("ISI", &x.isi, &y.isi),
            ("ISI normalized", &x.isi_normalized, &y.isi_normalized),
            ("table QPI", &x.table_qpi, &y.table_qpi),
        ] {
            rows.push(info_row(name, Some(Quantile::P95), b.as_ref(), a.as_ref()));
        }
        rows.retain(measured);
        devices.push(PairComparison {
            before: device_label(b),
            after: device_label(a),
            match_method: method,
            matched_on: method.describe(),
            judged: judge_devices,
            topology_changes: topology,
            rows,
        });
    }
    for &i in &dm.unmatched_before {
        judge
            .inconclusive
            .push(format!("device {}: not found after", device_label(bd[i])));
    }
    for &j in &dm.unmatched_after {
        notes.push(format!("device {}: only after", device_label(ad[j])));
    }

    // Host guardrails.
    let judge_host = scope.judges(Part::Host);
    let mut host = Vec::new();
    judge.guardrail(
        &mut host,
        "host",
        "softnet drops/s",
        Some(before.host.softnet_dropped_per_sec),
        Some(after.host.softnet_dropped_per_sec),
        judge_host,
    );
    let tcp = |b: &Baseline, f: fn(&super::file::TcpGuardrails) -> f64| b.host.tcp.as_ref().map(f);
    judge.guardrail(
        &mut host,
        "host",
        "TCP resets sent/s",
        tcp(before, |t| t.out_resets_per_sec),
        tcp(after, |t| t.out_resets_per_sec),
        judge_host,
    );
    judge.guardrail(
        &mut host,
        "host",
        "TCP listen drops/s",
        tcp(before, |t| t.listen_drops_per_sec),
        tcp(after, |t| t.listen_drops_per_sec),
        judge_host,
    );
    host.push(info_row(
        "SPI",
        Some(Quantile::P95),
        before.host.spi.as_ref(),
        after.host.spi.as_ref(),
    ));
    host.push(info_row(
        "NET_RX CPU QPI",
        Some(Quantile::P95),
        before.host.net_rx_cpu_qpi.as_ref(),
        after.host.net_rx_cpu_qpi.as_ref(),
    ));

    host.retain(measured);
    let judged_anything = (judge_groups && !groups.is_empty())
        || (judge_devices && !devices.is_empty())
        || judge_host;
    if !judged_anything {
        judge.inconclusive.push("nothing to compare".into());
    }
    for part in [Part::Groups, Part::Devices, Part::Host] {
        if !scope.judges(part) {
            notes.push(format!("{part:?} shown, not judged (--only)").to_lowercase());
        }
    }
    // One line per reason, in order.
    let mut seen = std::collections::BTreeSet::new();
    judge.inconclusive.retain(|r| seen.insert(r.clone()));

    let verdict = if !judge.inconclusive.is_empty() {
        Verdict::Inconclusive
    } else if !judge.regressions.is_empty() {
        Verdict::Hold
    } else {
        Verdict::Promote
    };
    let side = |b: &Baseline, source: &str| SideSummary {
        source: source.to_string(),
        host_name: b.host_name.clone(),
        cycles: b.cycles,
        recorded_secs: b.recorded_secs,
        interrupted: b.interrupted,
        agent_version: b.agent_version.clone(),
    };
    Comparison {
        schema: COMPARE_SCHEMA,
        verdict,
        exit_code: verdict.exit_code(),
        regressions: judge.regressions,
        inconclusive: judge.inconclusive,
        notes,
        before: side(before, before_source),
        after: side(after, after_source),
        tolerances: *tol,
        groups,
        devices,
        host,
    }
}

/// The comparison as a table for a terminal or a CI log.
pub fn render_text(c: &Comparison) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "verdict: {} (exit {})", c.verdict.label(), c.exit_code);
    for (name, s) in [("before", &c.before), ("after", &c.after)] {
        let _ = writeln!(
            out,
            "  {name:<6} {}: host {}, {} cycles over {:.1} s{}",
            s.source,
            s.host_name.as_deref().unwrap_or("-"),
            s.cycles,
            s.recorded_secs,
            if s.interrupted { " (interrupted)" } else { "" }
        );
    }
    let list = |out: &mut String, title: &str, items: &[String]| {
        if !items.is_empty() {
            let _ = writeln!(out, "{title}:");
            for i in items {
                let _ = writeln!(out, "  - {i}");
            }
        }
    };
    list(&mut out, "regressions (hold)", &c.regressions);
    list(&mut out, "inconclusive", &c.inconclusive);
    list(&mut out, "notes", &c.notes);
    let table = |out: &mut String, rows: &[Row]| {
        if rows.is_empty() {
            let _ = writeln!(out, "  (nothing measured on either side)");
            return;
        }
        let _ = writeln!(
            out,
            "  {:<24} {:>5} {:>11} {:>11} {:>9}  pass",
            "index", "", "before", "after", "change"
        );
        for r in rows {
            let v = |x: Option<f64>| x.map_or("-".to_string(), num);
            let _ = writeln!(
                out,
                "  {:<24} {:>5} {:>11} {:>11} {:>9}  {}",
                r.metric,
                r.quantile.unwrap_or(""),
                v(r.before),
                v(r.after),
                pct(r.change),
                r.status.label()
            );
        }
    };
    for (kind, pairs) in [("group", &c.groups), ("device", &c.devices)] {
        for p in pairs.iter() {
            let _ = writeln!(out);
            let _ = writeln!(out, "{kind} {}", p.before);
            if p.after != p.before {
                let _ = writeln!(out, "  after: {}", p.after);
            }
            let _ = writeln!(
                out,
                "  matched on {}{}",
                p.matched_on,
                if p.judged { "" } else { "; not judged" }
            );
            for t in &p.topology_changes {
                let _ = writeln!(out, "  topology changed: {t}");
            }
            table(&mut out, &p.rows);
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "host");
    table(&mut out, &c.host);
    out
}

/// Groups of the after side by the before side's label, for the report's overlays.
pub fn paired_groups<'a>(
    before: &'a Baseline,
    after: &'a Baseline,
    scope: &Scope,
) -> Vec<(&'a GroupBaseline, &'a GroupBaseline, MatchMethod)> {
    let in_scope = |g: &&GroupBaseline| scope.ports.is_empty() || scope.ports.contains(&g.port);
    let bg: Vec<&GroupBaseline> = before.groups.iter().filter(in_scope).collect();
    let ag: Vec<&GroupBaseline> = after.groups.iter().filter(in_scope).collect();
    let same_host = before.host_name.is_some() && before.host_name == after.host_name;
    match_groups(&bg, &ag, same_host)
        .pairs
        .into_iter()
        .map(|(i, j, m)| (bg[i], ag[j], m))
        .collect()
}

/// Devices of both sides paired as the comparison pairs them.
pub fn paired_devices<'a>(
    before: &'a Baseline,
    after: &'a Baseline,
) -> Vec<(&'a DeviceBaseline, &'a DeviceBaseline)> {
    let bd: Vec<&DeviceBaseline> = before.devices.iter().collect();
    let ad: Vec<&DeviceBaseline> = after.devices.iter().collect();
    match_devices(&bd, &ad)
        .pairs
        .into_iter()
        .map(|(i, j, _)| (bd[i], ad[j]))
        .collect()
}

#[cfg(test)]
mod tests;
