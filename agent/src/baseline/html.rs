//! The HTML report of a recording or a comparison: one self-contained page (inline CSS and
//! SVG drawn by plotters' SVG backend; no script, no font, no external reference), so it
//! opens from a CI artifact or a mail attachment without a network.

use std::error::Error;
use std::fmt::Write;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::compare::{num, pct, Comparison, PairComparison, Row, Scope, Status, Verdict};
use super::file::{Baseline, DeviceBaseline, GroupBaseline, ShadowBaseline};
use super::stats::Dist;

const WIDTH: u32 = 760;
const HEIGHT: u32 = 250;
const BEFORE: RGBColor = RGBColor(150, 150, 150);
const AFTER: RGBColor = RGBColor(31, 119, 180);
const HOT: RGBColor = RGBColor(214, 39, 40);
const TABLE: RGBColor = RGBColor(255, 160, 60);

type Plot<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type PlotResult = Result<(), Box<dyn Error>>;

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Regime → colour (groups GREEN … RED, devices RSS_BALANCED … RSS_CONTAIN).
fn regime_color(regime: &str) -> RGBColor {
    match regime {
        "GREEN" | "RSS_BALANCED" => RGBColor(46, 160, 67),
        "YELLOW" | "RSS_DRIFT" => RGBColor(230, 190, 0),
        "ORANGE" | "RSS_POLARIZED" => RGBColor(245, 130, 32),
        "RED" | "RSS_CONTAIN" => RGBColor(214, 39, 40),
        _ => RGBColor(180, 180, 180),
    }
}

/// An SVG of `w`×`h` drawn by `draw`; a failed plot becomes a note, never a broken page.
fn svg(w: u32, h: u32, draw: impl FnOnce(&Plot<'_>) -> PlotResult) -> String {
    let mut out = String::new();
    let result = {
        let root = SVGBackend::with_string(&mut out, (w, h)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| Box::new(e) as Box<dyn Error>)
            .and_then(|_| draw(&root))
            .and_then(|_| root.present().map_err(|e| Box::new(e) as Box<dyn Error>))
    };
    match result {
        Ok(()) => format!("<div class=\"plot\">{out}</div>"),
        Err(e) => format!(
            "<p class=\"note\">plot not drawn: {}</p>",
            esc(&e.to_string())
        ),
    }
}

/// One series of bars: a value per category (None: no bar).
struct Bars<'a> {
    name: &'a str,
    color: RGBColor,
    values: Vec<Option<f64>>,
    /// The category drawn in the hot colour: the busiest listener, when it carries more
    /// than 1.2× an even share.
    hot: Option<usize>,
}

/// Grouped bars over `n` categories labelled by `labels`, with an optional reference line
/// (the even share 1/N).
fn bar_chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    labels: &[String],
    series: &[Bars<'_>],
    reference: Option<(&str, f64)>,
) -> String {
    let n = labels.len().max(1);
    let top = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .copied()
        .chain(reference.map(|r| r.1))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    // Head room for the legend above the bars.
    let y_max = if top > 0.0 { top * 1.4 } else { 1.0 };
    svg(WIDTH, HEIGHT, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(58)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..y_max)?;
        let fmt_x = |x: &f64| {
            category_at(*x)
                .and_then(|i| labels.get(i).cloned())
                .unwrap_or_default()
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n.min(24))
            .x_label_formatter(&fmt_x)
            .y_label_formatter(&|y| num(*y))
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()?;
        let k = series.len().max(1) as f64;
        let w = 0.8 / k;
        for (si, s) in series.iter().enumerate() {
            let color = s.color;
            let bars = s.values.iter().enumerate().filter_map(|(i, v)| {
                let v = (*v)?;
                let x0 = i as f64 - 0.4 + si as f64 * w;
                let c = if s.hot == Some(i) { HOT } else { color };
                Some(Rectangle::new([(x0, 0.0), (x0 + w * 0.92, v)], c.filled()))
            });
            chart
                .draw_series(bars)?
                .label(s.name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        if let Some((name, r)) = reference {
            chart
                .draw_series(LineSeries::new(
                    vec![(-0.5, r), (n as f64 - 0.5, r)],
                    BLACK.mix(0.55).stroke_width(1),
                ))?
                .label(name)
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], BLACK.mix(0.55)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 12))
            .draw()?;
        Ok(())
    })
}

/// One line of a time series.
struct Line<'a> {
    name: &'a str,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

/// Regime bands behind a series: each cycle's window coloured by the regime at its end.
fn bands<T>(
    points: &[T],
    t: impl Fn(&T) -> f64,
    regime: impl Fn(&T) -> &str,
) -> Vec<(f64, f64, RGBColor)> {
    let mut out = Vec::new();
    let mut prev: Option<f64> = None;
    for p in points {
        let end = t(p);
        let start = prev.unwrap_or_else(|| {
            // The first window: as long as the second, or one second.
            let second = points.get(1).map(&t);
            end - second.map_or(1.0, |s| (s - end).max(0.0))
        });
        out.push((start.max(0.0), end, regime_color(regime(p))));
        prev = Some(end);
    }
    out
}

fn line_chart(
    title: &str,
    y_desc: &str,
    lines: &[Line<'_>],
    bands: &[(f64, f64, RGBColor)],
) -> String {
    let values = lines.iter().flat_map(|l| l.points.iter());
    let (mut y_min, mut y_max, mut x_max) = (0.0f64, 0.0f64, 1.0f64);
    for &(x, y) in values {
        if x.is_finite() && y.is_finite() {
            y_min = y_min.min(y);
            y_max = y_max.max(y);
            x_max = x_max.max(x);
        }
    }
    for &(_, x1, _) in bands {
        x_max = x_max.max(x1);
    }
    if y_max <= y_min {
        y_max = y_min + 1.0;
    }
    let pad = (y_max - y_min) * 0.1;
    let (y0, y1) = (if y_min < 0.0 { y_min - pad } else { 0.0 }, y_max + pad);
    svg(WIDTH, HEIGHT, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(58)
            .build_cartesian_2d(0f64..x_max, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc("seconds since the recording started")
            .y_desc(y_desc)
            .y_label_formatter(&|y| num(*y))
            .draw()?;
        chart.draw_series(
            bands
                .iter()
                .map(|&(a, b, c)| Rectangle::new([(a, y0), (b, y1)], c.mix(0.22).filled())),
        )?;
        for l in lines {
            let color = l.color;
            chart
                .draw_series(LineSeries::new(l.points.clone(), color.stroke_width(2)))?
                .label(l.name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 12))
            .draw()?;
        Ok(())
    })
}

/// Regime timelines, one row per side.
/// A span of the time axis and its regime colour.
type Band = (f64, f64, RGBColor);

fn regime_strips(title: &str, rows: &[(&str, Vec<Band>)]) -> String {
    let x_max = rows
        .iter()
        .flat_map(|(_, b)| b.iter().map(|b| b.1))
        .fold(1.0f64, f64::max);
    let n = rows.len().max(1);
    let names: Vec<String> = rows.iter().map(|(n, _)| n.to_string()).collect();
    svg(WIDTH, 80 + 40 * n as u32, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(40)
            .y_label_area_size(58)
            .build_cartesian_2d(0f64..x_max, -0.5f64..(n as f64 - 0.5))?;
        // The first row on top.
        let fmt_y = |y: &f64| {
            let i = y.round();
            if (y - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
                names.get(n - 1 - i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .y_labels(n)
            .y_label_formatter(&fmt_y)
            .label_style(("sans-serif", 13))
            .x_desc("seconds since the recording started")
            .draw()?;
        for (i, (_, b)) in rows.iter().enumerate() {
            let y = (n - 1 - i) as f64;
            chart
                .draw_series(b.iter().map(|&(a, e, c)| {
                    Rectangle::new([(a, y - 0.35), (e, y + 0.35)], c.filled())
                }))?;
        }
        Ok(())
    })
}

/// Shadow policies beside the kernel default: LSI p50 bars with a p95 whisker.
fn shadow_chart(title: &str, s: &ShadowBaseline) -> String {
    let labels: Vec<String> = s
        .policies
        .iter()
        .map(|p| {
            let mut name = p.policy.clone();
            if name.chars().count() > 22 {
                name = name.chars().take(21).collect::<String>() + "…";
            }
            name
        })
        .collect();
    let p50: Vec<Option<f64>> = s.policies.iter().map(|p| p.lsi.map(|d| d.p50)).collect();
    let p95: Vec<Option<f64>> = s.policies.iter().map(|p| p.lsi.map(|d| d.p95)).collect();
    let n = labels.len().max(1);
    let top = p95.iter().flatten().copied().fold(0.0f64, f64::max);
    let y_max = if top > 0.0 { top * 1.2 } else { 1.0 };
    svg(WIDTH, HEIGHT, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(58)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..y_max)?;
        let fmt_x = |x: &f64| {
            category_at(*x)
                .and_then(|i| labels.get(i).cloned())
                .unwrap_or_default()
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&fmt_x)
            .y_label_formatter(&|y| num(*y))
            .y_desc("predicted LSI (p50, whisker p95)")
            .draw()?;
        chart.draw_series(p50.iter().enumerate().filter_map(|(i, v)| {
            let v = (*v)?;
            let c = if i == 0 { BEFORE } else { AFTER };
            Some(Rectangle::new(
                [(i as f64 - 0.3, 0.0), (i as f64 + 0.3, v)],
                c.filled(),
            ))
        }))?;
        chart.draw_series(p50.iter().zip(&p95).enumerate().filter_map(|(i, (a, b))| {
            let (a, b) = ((*a)?, (*b)?);
            Some(PathElement::new(
                vec![(i as f64, a), (i as f64, b)],
                BLACK.stroke_width(2),
            ))
        }))?;
        Ok(())
    })
}

const STYLE: &str = "
body{font-family:sans-serif;margin:24px;color:#222;max-width:820px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc}
h3{font-size:15px;margin-bottom:4px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}
.fail{color:#b00;font-weight:bold}.pass{color:#070}.na{color:#a60}
.verdict{font-size:20px;font-weight:bold;padding:10px 14px;border-radius:4px;color:#fff}
.promote{background:#2e9f43}.hold{background:#d62728}.inconclusive{background:#e08a00}
.note{color:#666;font-size:13px}.plot{margin:6px 0}
.legend span{display:inline-block;padding:1px 8px;margin-right:6px;color:#fff;border-radius:3px;font-size:12px}
";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n",
        esc(title)
    )
}

fn regime_legend(group: bool) -> String {
    let names: [&str; 4] = if group {
        ["GREEN", "YELLOW", "ORANGE", "RED"]
    } else {
        ["RSS_BALANCED", "RSS_DRIFT", "RSS_POLARIZED", "RSS_CONTAIN"]
    };
    let mut out = String::from("<p class=\"legend\">regime bands: ");
    for n in names {
        let c = regime_color(n);
        let _ = write!(
            out,
            "<span style=\"background:rgb({},{},{})\">{n}</span>",
            c.0, c.1, c.2
        );
    }
    out + "</p>"
}

fn dist_table(rows: &[(&str, Option<&Dist>)]) -> String {
    let mut out = String::from(
        "<table><tr><th>index</th><th>cycles</th><th>p50</th><th>p95</th><th>p99</th><th>max</th></tr>",
    );
    for (name, d) in rows {
        match d {
            Some(d) => {
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(name),
                    d.n,
                    num(d.p50),
                    num(d.p95),
                    num(d.p99),
                    num(d.max)
                );
            }
            None => {
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>0</td><td colspan=\"4\">not measured</td></tr>",
                    esc(name)
                );
            }
        }
    }
    out + "</table>"
}

fn shares_text(shares: &std::collections::BTreeMap<String, f64>) -> String {
    shares
        .iter()
        .map(|(k, v)| format!("{} {:.0}%", esc(k), v * 100.0))
        .collect::<Vec<_>>()
        .join(", ")
}

fn group_title(g: &GroupBaseline) -> String {
    let owners = if g.owners.is_empty() {
        String::new()
    } else {
        format!(" — {}", g.owners.join(", "))
    };
    format!(
        "{} {}:{} (netns {}){owners}",
        g.protocol, g.address, g.port, g.netns
    )
}

/// The busiest listener (shares come busiest first) when it stands out.
fn hot_listener(shares: &[Option<f64>], even: f64) -> Option<usize> {
    shares
        .first()
        .copied()
        .flatten()
        .filter(|&s| s > 1.2 * even)
        .map(|_| 0)
}

fn listener_labels(g: &GroupBaseline) -> Vec<String> {
    g.listeners
        .iter()
        .map(|l| match l.index {
            Some(i) => format!("idx {i}"),
            None => format!("ino {}", l.inode % 100_000),
        })
        .collect()
}

fn group_section(g: &GroupBaseline) -> String {
    let mut out = format!("<h3>{}</h3>", esc(&group_title(g)));
    let _ = write!(
        out,
        "<p class=\"note\">{} cycles, {}–{} listeners, {} membership changes, {} socket drops \
         ({}/s); regimes: {}</p>",
        g.cycles,
        g.listeners_min,
        g.listeners_max,
        g.membership_changes,
        g.drops,
        num(g.drops_per_sec),
        shares_text(&g.regimes)
    );
    let d = &g.indices;
    out += &dist_table(&[
        ("LSI", d.lsi.as_ref()),
        ("HCR1", d.hcr_1.as_ref()),
        ("HCR5", d.hcr_5.as_ref()),
        ("LQD", d.lqd.as_ref()),
        ("BCI", d.bci.as_ref()),
        ("DLG (µs)", d.dlg_us.as_ref()),
        ("ingress age p95 (µs)", d.ingress_age_p95_us.as_ref()),
        ("P_hot", d.p_hot.as_ref()),
    ]);
    if !g.p_hot_deciles.is_empty() {
        let cells: String = g
            .p_hot_deciles
            .iter()
            .map(|s| format!("<td>{:.0}%</td>", s * 100.0))
            .collect();
        let heads: String = (0..10)
            .map(|i| format!("<th>{:.1}</th>", i as f64 / 10.0))
            .collect();
        let _ = write!(
            out,
            "<table><tr><th>P_hot from</th>{heads}</tr><tr><td>time</td>{cells}</tr></table>"
        );
    }
    if !g.listeners.is_empty() {
        let shares: Vec<Option<f64>> = g.listeners.iter().map(|l| Some(l.share)).collect();
        let even = 1.0 / g.listeners.len() as f64;
        out += &bar_chart(
            "per-listener share of events (busiest first)",
            "listener (socks[] index)",
            "share",
            &listener_labels(g),
            &[Bars {
                name: "share",
                color: AFTER,
                hot: hot_listener(&shares, even),
                values: shares,
            }],
            Some(("even share", even)),
        );
    }
    let band = bands(&g.series, |p| p.t_secs, |p| p.regime.as_str());
    let lsi: Vec<(f64, f64)> = g
        .series
        .iter()
        .filter_map(|p| Some((p.t_secs, p.lsi?)))
        .collect();
    out += &line_chart(
        "LSI over time",
        "LSI",
        &[Line {
            name: "LSI",
            color: AFTER,
            points: lsi,
        }],
        &band,
    );
    let age: Vec<(f64, f64)> = g
        .series
        .iter()
        .filter_map(|p| Some((p.t_secs, p.ingress_age_p95_us?)))
        .collect();
    if !age.is_empty() {
        out += &line_chart(
            "ingress age p95 over time",
            "µs",
            &[Line {
                name: "ingress age p95",
                color: AFTER,
                points: age,
            }],
            &band,
        );
    }
    out
}

/// Per-queue packet rates (bars, one per side) with the queue's share of the indirection
/// table on a second axis (orange ticks, of the first side): a queue whose rate stands
/// above its table share is fed by heavy flows, not by the table.
fn queue_chart(title: &str, sides: &[(&str, RGBColor, &DeviceBaseline)]) -> String {
    let Some((_, _, first)) = sides.first() else {
        return String::new();
    };
    let queues: Vec<u32> = first.queues.iter().map(|q| q.queue).collect();
    let rates: Vec<Vec<Option<f64>>> = sides
        .iter()
        .map(|(_, _, d)| {
            queues
                .iter()
                .map(|q| d.queues.iter().find(|x| x.queue == *q)?.mean_rx_pps)
                .collect()
        })
        .collect();
    let table: Vec<Option<f64>> = first.queues.iter().map(|q| q.table_share).collect();
    let top = rates
        .iter()
        .flatten()
        .flatten()
        .copied()
        .fold(0.0f64, f64::max);
    let top_share = table.iter().flatten().copied().fold(0.0f64, f64::max);
    if top <= 0.0 && top_share <= 0.0 {
        return "<p class=\"note\">no per-queue packet counts or RSS table.</p>".into();
    }
    let n = queues.len().max(1);
    let y_max = if top > 0.0 { top * 1.4 } else { 1.0 };
    let share_max = if top_share > 0.0 {
        top_share * 1.4
    } else {
        1.0
    };
    svg(WIDTH, HEIGHT, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(58)
            .right_y_label_area_size(52)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..y_max)?
            .set_secondary_coord(-0.5f64..(n as f64 - 0.5), 0f64..share_max);
        let fmt_x = |x: &f64| {
            category_at(*x)
                .and_then(|i| queues.get(i).map(u32::to_string))
                .unwrap_or_default()
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n.min(24))
            .x_label_formatter(&fmt_x)
            .y_label_formatter(&|y| num(*y))
            .x_desc("RX queue")
            .y_desc("packets/s")
            .draw()?;
        chart
            .configure_secondary_axes()
            .y_label_formatter(&|y| num(*y))
            .y_desc("table share")
            .draw()?;
        let w = 0.8 / sides.len().max(1) as f64;
        for (si, ((name, color, _), values)) in sides.iter().zip(&rates).enumerate() {
            let color = *color;
            chart
                .draw_series(values.iter().enumerate().filter_map(|(i, v)| {
                    let x0 = i as f64 - 0.4 + si as f64 * w;
                    Some(Rectangle::new(
                        [(x0, 0.0), (x0 + w * 0.92, (*v)?)],
                        color.filled(),
                    ))
                }))?
                .label(*name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        if table.iter().any(Option::is_some) {
            chart
                .draw_secondary_series(table.iter().enumerate().filter_map(|(i, s)| {
                    let s = (*s)?;
                    let x = i as f64;
                    Some(PathElement::new(
                        vec![(x - 0.45, s), (x + 0.45, s)],
                        TABLE.stroke_width(3),
                    ))
                }))?
                .label("table share")
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 12, y)], TABLE.stroke_width(3))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 12))
            .draw()?;
        Ok(())
    })
}

fn device_section(d: &DeviceBaseline) -> String {
    let mut out = format!(
        "<h3>{} ({})</h3>",
        esc(&d.name),
        esc(d.driver.as_deref().unwrap_or("-"))
    );
    let total: f64 = d.queues.iter().filter_map(|q| q.mean_rx_pps).sum();
    let _ = write!(
        out,
        "<p class=\"note\">{} cycles, {} RX queues, {} packets/s; regimes: {}</p>",
        d.cycles,
        d.queues.len(),
        num(total),
        shares_text(&d.regimes)
    );
    let x = &d.indices;
    out += &dist_table(&[
        ("QPI", x.qpi.as_ref()),
        ("ISI", x.isi.as_ref()),
        ("ISI normalized", x.isi_normalized.as_ref()),
        ("table QPI", x.table_qpi.as_ref()),
        ("HAF95 (µs)", x.haf95_us.as_ref()),
    ]);
    out += &queue_chart(
        "per-queue packet rates and shares of the indirection table",
        &[("packets/s", AFTER, d)],
    );
    out += &rss_shadow_table(d);
    let qpi: Vec<(f64, f64)> = d
        .series
        .iter()
        .filter_map(|p| Some((p.t_secs, p.qpi?)))
        .collect();
    if !qpi.is_empty() {
        let band = bands(&d.series, |p| p.t_secs, |p| p.regime.as_str());
        out += &line_chart(
            "QPI over time",
            "QPI",
            &[Line {
                name: "QPI",
                color: AFTER,
                points: qpi,
            }],
            &band,
        );
    }
    out
}

/// Current vs balanced indirection table (docs/rss-shadow.md): what the balanced table
/// would have done to QPI over the same entry loads, and how many entries it moves.
fn rss_shadow_table(d: &DeviceBaseline) -> String {
    if d.rss_shadow.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<p class=\"note\">RSS in shadow: the measured per-entry loads under the current \
         table and under a balanced one (predicted; `skewscope rss-shadow` prints the \
         table)</p><table><tr><th>table</th><th>cycles</th><th>QPI p50</th><th>QPI p95</th>\
         <th>max share p50</th><th>entries moved p50</th><th>entries moved max</th></tr>",
    );
    for p in &d.rss_shadow {
        let v = |d: Option<Dist>, f: fn(&Dist) -> f64| d.map_or("-".into(), |d| num(f(&d)));
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&p.policy),
            p.cycles,
            v(p.qpi, |d| d.p50),
            v(p.qpi, |d| d.p95),
            v(p.max_share, |d| d.p50),
            v(p.entries_moved, |d| d.p50),
            v(p.entries_moved, |d| d.max),
        );
    }
    out + "</table>"
}

fn shadow_section(b: &Baseline) -> String {
    let mut out = String::new();
    for s in &b.shadow {
        let _ = write!(
            out,
            "<h3>shadow replay: {} {}:{} ({} replays, {} sockets)</h3>",
            esc(&s.protocol),
            esc(&s.address),
            s.port,
            s.replays,
            s.sockets
        );
        for e in &s.errors {
            let _ = write!(out, "<p class=\"note\">replay error: {}</p>", esc(e));
        }
        out += "<table><tr><th>policy</th><th>verifier</th><th>LSI p50</th><th>LSI p95</th>\
                <th>max share p50</th><th>skew reduction p50</th></tr>";
        for p in &s.policies {
            let v = |d: Option<Dist>, f: fn(&Dist) -> f64| d.map_or("-".into(), |d| num(f(&d)));
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&p.policy),
                esc(&p.verifier),
                v(p.lsi, |d| d.p50),
                v(p.lsi, |d| d.p95),
                v(p.max_share, |d| d.p50),
                v(p.skew_reduction, |d| d.p50),
            );
        }
        out += "</table>";
        out += &shadow_chart("candidate policies beside the kernel default (grey)", s);
    }
    out
}

fn header(b: &Baseline, source: &str) -> String {
    let fp = &b.fingerprint;
    let mut out = format!(
        "<p>{}: host {}, kernel {}, skewscope {}; {} cycles over {:.1} s of {:.1} s asked{}</p>",
        esc(source),
        esc(b.host_name.as_deref().unwrap_or("-")),
        esc(fp.kernel.as_deref().unwrap_or("-")),
        esc(&b.agent_version),
        b.cycles,
        b.recorded_secs,
        b.requested_secs,
        if b.interrupted { " (interrupted)" } else { "" }
    );
    out += "<table><tr><th>device</th><th>driver</th><th>RX queues</th><th>hash</th>\
            <th>table</th><th>IRQ affinity (queue:cpus)</th></tr>";
    for d in &fp.devices {
        let aff: Vec<String> = d
            .irq_affinity
            .iter()
            .take(8)
            .map(|(q, c)| format!("{q}:{c}"))
            .collect();
        let more = if d.irq_affinity.len() > 8 { " …" } else { "" };
        let short = |h: &Option<String>| {
            h.as_deref()
                .map_or("-".to_string(), |h| h.chars().take(15).collect())
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{more}</td></tr>",
            esc(&d.name),
            esc(d.driver.as_deref().unwrap_or("-")),
            d.rx_queues,
            esc(d.hfunc.as_deref().unwrap_or("-")),
            esc(&short(&d.table_hash)),
            esc(&aff.join(" "))
        );
    }
    out += "</table>";
    for c in &b.fingerprint_changes {
        let _ = write!(
            out,
            "<p class=\"fail\">topology changed during the recording: {}</p>",
            esc(c)
        );
    }
    out
}

/// The page of one recording.
pub fn record_page(b: &Baseline, source: &str) -> String {
    let mut body = format!("<h1>skewscope baseline: {}</h1>", esc(source));
    body += &header(b, source);
    body += "<h2>reuseport groups</h2>";
    if b.groups.is_empty() {
        body += "<p class=\"note\">no reuseport group was seen.</p>";
    } else {
        body += &regime_legend(true);
    }
    for g in &b.groups {
        body += &group_section(g);
    }
    body += "<h2>devices</h2>";
    if !b.devices.is_empty() {
        body += &regime_legend(false);
    }
    for d in &b.devices {
        body += &device_section(d);
    }
    if !b.shadow.is_empty() {
        body += "<h2>shadow policies</h2>";
        body += &shadow_section(b);
    }
    body += &host_section(b);
    page(&format!("skewscope baseline {source}"), &body)
}

fn host_section(b: &Baseline) -> String {
    let h = &b.host;
    let mut out = String::from("<h2>host</h2>");
    let _ = write!(
        out,
        "<p>softnet drops {} ({}/s), time squeezes {}",
        h.softnet_dropped,
        num(h.softnet_dropped_per_sec),
        h.time_squeeze
    );
    if let Some(t) = &h.tcp {
        let _ = write!(
            out,
            "; TCP resets sent {} ({}/s), listen drops {} ({}/s)",
            t.out_resets,
            num(t.out_resets_per_sec),
            t.listen_drops,
            num(t.listen_drops_per_sec)
        );
    }
    out += "</p>";
    out += &dist_table(&[
        ("SPI", h.spi.as_ref()),
        ("NET_RX CPU QPI", h.net_rx_cpu_qpi.as_ref()),
    ]);
    let _ = write!(
        out,
        "<p class=\"note\">{} flows in the trace.</p>",
        b.flow_trace.len()
    );
    out
}

fn rows_table(rows: &[Row]) -> String {
    if rows.is_empty() {
        return "<p class=\"note\">nothing measured on either side.</p>".into();
    }
    let mut out = String::from(
        "<table><tr><th>index</th><th></th><th>before</th><th>after</th><th>change</th>\
         <th>allowed</th><th>pass</th></tr>",
    );
    for r in rows {
        let v = |x: Option<f64>| x.map_or("-".to_string(), num);
        let class = match r.status {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Missing => "na",
            Status::Info => "",
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"{class}\">{}</td></tr>",
            esc(&r.metric),
            r.quantile.unwrap_or(""),
            v(r.before),
            v(r.after),
            pct(r.change),
            v(r.allowed),
            r.status.label()
        );
    }
    out + "</table>"
}

fn pair_head(p: &PairComparison) -> String {
    let mut out = format!("<h3>{}</h3>", esc(&p.before));
    if p.after != p.before {
        let _ = write!(out, "<p class=\"note\">after: {}</p>", esc(&p.after));
    }
    let _ = write!(
        out,
        "<p class=\"note\">matched on {}{}</p>",
        esc(p.matched_on),
        if p.judged { "" } else { "; shown, not judged" }
    );
    for t in &p.topology_changes {
        let _ = write!(out, "<p class=\"fail\">topology changed: {}</p>", esc(t));
    }
    out
}

/// The page of a comparison: verdict, side-by-side tables and before/after overlays.
pub fn compare_page(c: &Comparison, before: &Baseline, after: &Baseline, scope: &Scope) -> String {
    let class = match c.verdict {
        Verdict::Promote => "promote",
        Verdict::Hold => "hold",
        Verdict::Inconclusive => "inconclusive",
    };
    let mut body = format!(
        "<h1>skewscope baseline comparison</h1><p class=\"verdict {class}\">{} (exit {})</p>",
        c.verdict.label(),
        c.exit_code
    );
    let list = |title: &str, items: &[String], class: &str| {
        if items.is_empty() {
            return String::new();
        }
        let mut out = format!("<h3>{title}</h3><ul>");
        for i in items {
            let _ = write!(out, "<li class=\"{class}\">{}</li>", esc(i));
        }
        out + "</ul>"
    };
    body += &list("regressions", &c.regressions, "fail");
    body += &list("inconclusive", &c.inconclusive, "na");
    body += &list("notes", &c.notes, "note");
    body += "<h2>before</h2>";
    body += &header(before, &c.before.source);
    body += "<h2>after</h2>";
    body += &header(after, &c.after.source);

    body += "<h2>reuseport groups</h2>";
    let pairs = super::compare::paired_groups(before, after, scope);
    for (p, (b, a, _)) in c.groups.iter().zip(&pairs) {
        body += &pair_head(p);
        body += &rows_table(&p.rows);
        let n = b.listeners.len().max(a.listeners.len());
        let labels: Vec<String> = (1..=n).map(|i| format!("#{i}")).collect();
        let share = |g: &GroupBaseline| -> Vec<Option<f64>> {
            (0..n)
                .map(|i| g.listeners.get(i).map(|l| l.share))
                .collect()
        };
        body += &bar_chart(
            "per-listener share of events, busiest first: before (grey) and after",
            "listener rank",
            "share",
            &labels,
            &[
                Bars {
                    name: "before",
                    color: BEFORE,
                    values: share(b),
                    hot: None,
                },
                Bars {
                    name: "after",
                    color: AFTER,
                    hot: hot_listener(&share(a), 1.0 / n.max(1) as f64),
                    values: share(a),
                },
            ],
            (n > 0).then(|| ("even share", 1.0 / n as f64)),
        );
        let lsi = |g: &GroupBaseline| -> Vec<(f64, f64)> {
            g.series
                .iter()
                .filter_map(|p| Some((p.t_secs, p.lsi?)))
                .collect()
        };
        body += &line_chart(
            "LSI over time, before and after",
            "LSI",
            &[
                Line {
                    name: "before",
                    color: BEFORE,
                    points: lsi(b),
                },
                Line {
                    name: "after",
                    color: AFTER,
                    points: lsi(a),
                },
            ],
            &[],
        );
        body += &regime_strips(
            "regime over time",
            &[
                (
                    "before",
                    bands(&b.series, |p| p.t_secs, |p| p.regime.as_str()),
                ),
                (
                    "after",
                    bands(&a.series, |p| p.t_secs, |p| p.regime.as_str()),
                ),
            ],
        );
    }
    if c.groups.is_empty() {
        body += "<p class=\"note\">no group matched.</p>";
    } else {
        body += &regime_legend(true);
    }

    body += "<h2>devices</h2>";
    let dpairs = super::compare::paired_devices(before, after);
    for (p, (b, a)) in c.devices.iter().zip(&dpairs) {
        body += &pair_head(p);
        body += &rows_table(&p.rows);
        body += &queue_chart(
            "per-queue packet rates before and after, and table shares (before)",
            &[("before", BEFORE, b), ("after", AFTER, a)],
        );
        let qpi = |d: &DeviceBaseline| -> Vec<(f64, f64)> {
            d.series
                .iter()
                .filter_map(|p| Some((p.t_secs, p.qpi?)))
                .collect()
        };
        if !qpi(b).is_empty() || !qpi(a).is_empty() {
            body += &line_chart(
                "QPI over time, before and after",
                "QPI",
                &[
                    Line {
                        name: "before",
                        color: BEFORE,
                        points: qpi(b),
                    },
                    Line {
                        name: "after",
                        color: AFTER,
                        points: qpi(a),
                    },
                ],
                &[],
            );
        }
    }
    body += "<h2>host guardrails</h2>";
    body += &rows_table(&c.host);
    if !before.shadow.is_empty() || !after.shadow.is_empty() {
        body += "<h2>shadow policies before</h2>";
        body += &shadow_section(before);
        body += "<h2>shadow policies after</h2>";
        body += &shadow_section(after);
    }
    page("skewscope baseline comparison", &body)
}

/// The category a bar chart's x value stands on: bars sit at whole numbers 0, 1, …; tick
/// values between them label nothing.
fn category_at(x: f64) -> Option<usize> {
    let i = x.round();
    ((x - i).abs() < 1e-6 && i >= 0.0).then_some(i as usize)
}

#[cfg(test)]
mod tests;
