//! `skewscope shadow`: the command-line edge of the replay. The agent embeds
//! [`ShadowArgs`] as a subcommand and prints what [`run`] returns.

use std::path::PathBuf;

use anyhow::{bail, Context};

use crate::candidate::Candidate;
use crate::engine::replay;
use crate::plan::ReplayOptions;
use crate::trace::{read_trace, split_by_group};

/// Replay candidate reuseport selectors over a flow trace in a private
/// network namespace and compare them with the kernel default.
#[derive(Debug, Clone, clap::Args)]
pub struct ShadowArgs {
    /// Flow trace: JSON lines, one flow sample per line (docs/shadow.md).
    #[arg(long, value_name = "FILE")]
    pub trace: PathBuf,

    /// Policy to replay besides the kernel default: builtin:cpu,
    /// builtin:random, builtin:weighted, builtin:isolate-heavy, or the path
    /// of an ELF object following the candidate contract. Repeatable.
    #[arg(long = "candidate", value_name = "builtin:NAME|PATH.o")]
    pub candidates: Vec<Candidate>,

    /// Replica group size (sockets in the reuseport group).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub sockets: u32,

    /// Print the report as JSON (schema skewscope.shadow/v1) instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Per-socket weights for candidates with a `weights` map (one per socket).
    #[arg(long, value_delimiter = ',', value_name = "a,b,c,d")]
    pub weights: Option<Vec<u32>>,

    /// How many of the heaviest flows get dedicated sockets (isolate-heavy).
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub heavy_flows: usize,

    /// Replay only this group of a trace that holds several (e.g. udp/53).
    #[arg(long, value_name = "PROTO/PORT")]
    pub group: Option<String>,
}

/// Runs the replay and renders the report (JSON or table).
pub fn run(args: &ShadowArgs) -> anyhow::Result<String> {
    let flows = read_trace(&args.trace)
        .with_context(|| format!("reading trace {}", args.trace.display()))?;
    let groups = split_by_group(&flows);
    let flows = match (&args.group, groups.len()) {
        (_, 0) => bail!("trace {} holds no flow samples", args.trace.display()),
        (None, 1) => flows,
        (None, _) => {
            let names: Vec<String> = groups.keys().map(ToString::to_string).collect();
            bail!(
                "trace {} holds several reuseport groups ({}); pick one with --group",
                args.trace.display(),
                names.join(", ")
            )
        }
        (Some(wanted), _) => match groups.iter().find(|(key, _)| key.to_string() == *wanted) {
            Some((_, samples)) => samples.clone(),
            None => {
                let names: Vec<String> = groups.keys().map(ToString::to_string).collect();
                bail!(
                    "no group {wanted} in the trace (groups: {})",
                    names.join(", ")
                )
            }
        },
    };
    let opts = ReplayOptions {
        sockets: args.sockets,
        weights: args.weights.clone(),
        heavy_flows: args.heavy_flows,
        ..ReplayOptions::default()
    };
    let report = replay(&flows, &args.candidates, &opts).context("shadow replay")?;
    if args.json {
        let mut text = serde_json::to_string_pretty(&report)?;
        text.push('\n');
        Ok(text)
    } else {
        Ok(report.render_table())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: ShadowArgs,
    }

    #[test]
    fn parses_the_documented_flags() {
        let w = Wrapper::try_parse_from([
            "x",
            "--trace",
            "t.jsonl",
            "--candidate",
            "builtin:cpu",
            "--candidate",
            "sel/x.o",
            "--sockets",
            "6",
            "--json",
            "--weights",
            "1,2,3,4,5,6",
        ])
        .unwrap();
        assert_eq!(w.args.trace, PathBuf::from("t.jsonl"));
        assert_eq!(
            w.args.candidates,
            vec![
                Candidate::Builtin(crate::Builtin::Cpu),
                Candidate::Object(PathBuf::from("sel/x.o"))
            ]
        );
        assert_eq!(w.args.sockets, 6);
        assert!(w.args.json);
        assert_eq!(w.args.weights, Some(vec![1, 2, 3, 4, 5, 6]));
        let defaults = Wrapper::try_parse_from(["x", "--trace", "t"]).unwrap().args;
        assert_eq!(
            (defaults.sockets, defaults.json, defaults.heavy_flows),
            (4, false, 1)
        );
        assert!(
            Wrapper::try_parse_from(["x", "--trace", "t", "--candidate", "builtin:nope"]).is_err()
        );
    }

    #[test]
    fn trace_errors_reach_the_caller() {
        let dir = std::env::temp_dir().join(format!("skewscope-shadow-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.jsonl");
        std::fs::write(&path, "{\"proto\":\"udp\"}\n").unwrap();
        let args = Wrapper::try_parse_from(["x", "--trace", path.to_str().unwrap()])
            .unwrap()
            .args;
        let err = format!("{:#}", run(&args).unwrap_err());
        assert!(err.contains("trace line 1: missing field"), "{err}");

        let mixed = dir.join("mixed.jsonl");
        std::fs::write(
            &mixed,
            concat!(
                r#"{"proto":"udp","saddr":"10.0.0.1","sport":1,"daddr":"10.0.0.9","dport":53}"#,
                "\n",
                r#"{"proto":"tcp","saddr":"10.0.0.1","sport":1,"daddr":"10.0.0.9","dport":80}"#,
                "\n"
            ),
        )
        .unwrap();
        let args = Wrapper::try_parse_from(["x", "--trace", mixed.to_str().unwrap()])
            .unwrap()
            .args;
        let err = format!("{:#}", run(&args).unwrap_err());
        assert!(
            err.contains("udp/53, tcp/80") && err.contains("--group"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
