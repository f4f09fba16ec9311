use super::*;
use crate::baseline::compare::{compare, Tolerances};
use crate::baseline::file::ShadowPolicyBaseline;
use crate::baseline::testutil::{baseline, report, Group};

fn skewed(lsi: f64) -> Baseline {
    let mut b = baseline("a", 4, |i| {
        report(
            &[Group {
                lsi: lsi + 0.1 * i as f64,
                events: vec![400, 100, 100, 100],
                comm: "md<feed>",
                ..Default::default()
            }],
            0.3,
        )
    });
    let d = Dist::of(&[lsi, lsi * 1.2]);
    b.shadow.push(ShadowBaseline {
        protocol: "udp".into(),
        address: "10.0.0.1".into(),
        port: 9000,
        netns: 1,
        replays: 2,
        sockets: 4,
        errors: vec![],
        policies: vec![
            ShadowPolicyBaseline {
                policy: "default".into(),
                verifier: "none".into(),
                lsi: d,
                ..Default::default()
            },
            ShadowPolicyBaseline {
                policy: "builtin:isolate-heavy".into(),
                verifier: "accepted".into(),
                lsi: Dist::of(&[0.1, 0.2]),
                ..Default::default()
            },
        ],
    });
    b
}

/// Nothing the page could fetch: no script, no link, no URL but the SVG namespace.
fn assert_self_contained(page: &str) {
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(!page.contains("<script"), "no script");
    assert!(!page.contains("<link"), "no stylesheet link");
    assert!(
        !page.contains("@import") && !page.contains("url("),
        "no CSS fetch"
    );
    let without_ns = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(
        !without_ns.contains("http://") && !without_ns.contains("https://"),
        "no URL"
    );
    assert!(!without_ns.contains("href="), "no reference");
}

#[test]
fn a_recording_page_draws_listeners_series_queues_and_shadow_policies() {
    let page = record_page(&skewed(0.8), "before.json");
    assert_self_contained(&page);
    for want in [
        "per-listener share of events",
        "LSI over time",
        "per-queue packet rates",
        "QPI over time",
        "candidate policies beside the kernel default",
        "builtin:isolate-heavy",
    ] {
        assert!(page.contains(want), "{want}");
    }
    // Owner names are escaped, in the tables and in the plots.
    assert!(page.contains("md&lt;feed&gt;"));
    assert!(!page.contains("md<feed>"));
    assert!(
        page.matches("<svg").count() >= 5,
        "{}",
        page.matches("<svg").count()
    );
    assert!(!page.contains("plot not drawn"));
    // The busiest listener (400 of 700 events, > 1.2 × 1/4) is drawn hot.
    assert!(
        page.contains("#D62728") || page.contains("#d62728"),
        "hot colour"
    );
}

#[test]
fn a_comparison_page_shows_the_verdict_and_overlays() {
    let (before, after) = (skewed(0.8), skewed(1.6));
    let c = compare(
        &before,
        "b.json",
        &after,
        "a.json",
        &Tolerances::default(),
        &Scope::default(),
    );
    let page = compare_page(&c, &before, &after, &Scope::default());
    assert_self_contained(&page);
    assert!(page.contains("class=\"verdict hold\">HOLD (exit 1)"));
    assert!(page.contains("LSI over time, before and after"));
    assert!(page.contains("regime over time"));
    assert!(page.contains("shadow policies before"));
    assert!(!page.contains("plot not drawn"));
}

#[test]
fn html_escaping_covers_markup_and_quotes() {
    assert_eq!(
        esc("<a href=\"x\">&'"),
        "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
    );
}
