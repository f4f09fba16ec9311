//! `cli::run` end to end over the fixture trace, and the docs example.

mod common;

use std::path::PathBuf;

use clap::Parser;
use common::{can_run_privileged, fixture};
use skewscope_shadow::cli::{run, ShadowArgs};
use skewscope_shadow::{read_trace, Candidate, ShadowReport, Verdict};

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    args: ShadowArgs,
}

fn fixture_trace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/skewed_udp53.jsonl")
}

fn sport_mod_path() -> String {
    match fixture("sport_mod") {
        Candidate::Object(path) => path.display().to_string(),
        Candidate::Builtin(_) => unreachable!(),
    }
}

#[test]
fn cli_json_report_over_the_fixture_trace() {
    if !can_run_privileged("cli_json_report_over_the_fixture_trace") {
        return;
    }
    let trace = fixture_trace();
    let sport_mod = sport_mod_path();
    let args = Wrapper::parse_from([
        "shadow",
        "--trace",
        trace.to_str().unwrap(),
        "--candidate",
        "builtin:isolate-heavy",
        "--candidate",
        &sport_mod,
        "--candidate",
        "builtin:weighted",
        "--weights",
        "1,1,1,1",
        "--json",
    ])
    .args;
    let text = run(&args).unwrap();
    let report: ShadowReport = serde_json::from_str(&text).unwrap();
    assert_eq!(report.schema, "skewscope.shadow/v1");
    assert_eq!(
        (
            report.flows,
            report.total_weight,
            report.sockets,
            report.dport
        ),
        (40, 118_590, 4, 53)
    );
    let names: Vec<&str> = report.policies.iter().map(|p| p.policy.as_str()).collect();
    assert_eq!(
        names,
        [
            "default",
            "builtin:isolate-heavy",
            sport_mod.as_str(),
            "builtin:weighted"
        ]
    );
    assert!(
        report
            .policies
            .iter()
            .all(|p| p.verifier != Verdict::Rejected),
        "{text}"
    );

    // sport_mod: exact, from the trace itself.
    let flows = read_trace(&trace).unwrap();
    let mut expected = [0u64; 4];
    flows
        .iter()
        .for_each(|f| expected[f.sport as usize % 4] += f.weight);
    let got: Vec<u64> = report.policies[2]
        .sockets
        .iter()
        .map(|s| s.weight)
        .collect();
    assert_eq!(got, expected);

    // isolate-heavy: the elephant alone on socket 0.
    let isolate = &report.policies[1].sockets;
    assert_eq!((isolate[0].weight, isolate[0].flows), (90_000, 1));
    assert!((report.hcr_top1 - 90_000.0 / 118_590.0).abs() < 1e-12);
    let pin = report.cpu_pinning;
    assert_eq!((pin.exact + pin.folded, pin.unknown), (28, 12));
    eprintln!("{text}");
}

#[test]
fn cli_table_names_every_policy() {
    if !can_run_privileged("cli_table_names_every_policy") {
        return;
    }
    let trace = fixture_trace();
    let args = Wrapper::parse_from([
        "shadow",
        "--trace",
        trace.to_str().unwrap(),
        "--candidate",
        "builtin:cpu",
        "--candidate",
        "/nonexistent.o",
        "--sockets",
        "6",
    ])
    .args;
    let table = run(&args).unwrap();
    eprintln!("{table}");
    assert!(
        table.starts_with("shadow replay: 40 udp flows to port 53"),
        "{table}"
    );
    assert!(table.contains("12 unknown (hashed)"), "{table}");
    for needle in [
        "\ndefault ",
        "\nbuiltin:cpu ",
        "\n/nonexistent.o ",
        "rejected",
        "reading /nonexistent.o",
    ] {
        assert!(table.contains(needle), "{needle:?} missing:\n{table}");
    }
}

/// docs/shadow.md shows tests/bpf/sport_mod.bpf.c verbatim, so the example
/// users copy is the one these tests load.
#[test]
fn docs_example_is_the_tested_candidate() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(root.join("tests/bpf/sport_mod.bpf.c")).unwrap();
    let docs = std::fs::read_to_string(root.join("../docs/shadow.md")).unwrap();
    assert!(
        docs.contains(&source),
        "docs/shadow.md must embed tests/bpf/sport_mod.bpf.c verbatim"
    );
}
