//! Candidate policies: the built-ins shipped in `shadow/bpf/` and user ELF
//! objects that follow the contract of docs/shadow.md.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::ShadowError;

static CPU_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/cpu.bpf.o"));
static RANDOM_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/random.bpf.o"));
static WEIGHTED_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/weighted.bpf.o"));
static ISOLATE_HEAVY_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/isolate_heavy.bpf.o"));

/// A policy shipped with skewscope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// No program: the kernel's own 4-tuple hash (the counterfactual).
    Default,
    /// `bpf_get_smp_processor_id() % num_socks`.
    Cpu,
    /// `bpf_get_prandom_u32() % num_socks`.
    Random,
    /// The flow hash split over sockets by the `weights` map.
    Weighted,
    /// The trace's heaviest flows on dedicated sockets, the rest hashed over
    /// the others.
    IsolateHeavy,
}

impl Builtin {
    pub const ALL: [Builtin; 5] = [
        Builtin::Default,
        Builtin::Cpu,
        Builtin::Random,
        Builtin::Weighted,
        Builtin::IsolateHeavy,
    ];

    /// The name after `builtin:`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Cpu => "cpu",
            Self::Random => "random",
            Self::Weighted => "weighted",
            Self::IsolateHeavy => "isolate-heavy",
        }
    }

    /// The embedded ELF object; `None` for the kernel default. Empty when
    /// clang was missing at build time.
    pub(crate) fn object(self) -> Option<&'static [u8]> {
        match self {
            Self::Default => None,
            Self::Cpu => Some(CPU_OBJECT),
            Self::Random => Some(RANDOM_OBJECT),
            Self::Weighted => Some(WEIGHTED_OBJECT),
            Self::IsolateHeavy => Some(ISOLATE_HEAVY_OBJECT),
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// A policy to replay: a built-in or an ELF object file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Candidate {
    Builtin(Builtin),
    Object(PathBuf),
}

impl Candidate {
    /// The name a report uses: `default`, `builtin:NAME`, or the path.
    pub fn policy_name(&self) -> String {
        match self {
            Self::Builtin(Builtin::Default) => "default".to_owned(),
            Self::Builtin(builtin) => format!("builtin:{}", builtin.name()),
            Self::Object(path) => path.display().to_string(),
        }
    }

    pub fn is_default(&self) -> bool {
        matches!(self, Self::Builtin(Builtin::Default))
    }
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.policy_name())
    }
}

/// `default`, `builtin:NAME` (cpu, random, weighted, isolate-heavy,
/// default), or a path to an ELF object.
impl FromStr for Candidate {
    type Err = ShadowError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let err = |message: String| ShadowError::Candidate {
            spec: spec.to_owned(),
            message,
        };
        let names = || {
            Builtin::ALL
                .iter()
                .map(|b| format!("builtin:{}", b.name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if spec.trim().is_empty() {
            return Err(err("empty candidate".to_owned()));
        }
        if spec == "default" {
            return Ok(Self::Builtin(Builtin::Default));
        }
        if let Some(name) = spec.strip_prefix("builtin:") {
            return Builtin::from_name(name)
                .map(Self::Builtin)
                .ok_or_else(|| err(format!("no such built-in; known: {}", names())));
        }
        if let Some(builtin) = Builtin::from_name(spec) {
            return Err(err(format!(
                "ambiguous: write builtin:{} for the built-in or ./{spec} for a file",
                builtin.name()
            )));
        }
        Ok(Self::Object(PathBuf::from(spec)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_builtins_default_and_paths() {
        let cases = [
            ("default", Candidate::Builtin(Builtin::Default)),
            ("builtin:default", Candidate::Builtin(Builtin::Default)),
            ("builtin:cpu", Candidate::Builtin(Builtin::Cpu)),
            ("builtin:random", Candidate::Builtin(Builtin::Random)),
            ("builtin:weighted", Candidate::Builtin(Builtin::Weighted)),
            (
                "builtin:isolate-heavy",
                Candidate::Builtin(Builtin::IsolateHeavy),
            ),
            ("path/x.o", Candidate::Object(PathBuf::from("path/x.o"))),
            ("./cpu", Candidate::Object(PathBuf::from("./cpu"))),
        ];
        for (spec, expected) in cases {
            let parsed: Candidate = spec.parse().unwrap();
            assert_eq!(parsed, expected, "{spec}");
        }
    }

    #[test]
    fn policy_names_round_trip() {
        for spec in ["default", "builtin:cpu", "builtin:isolate-heavy", "a/b.o"] {
            let parsed: Candidate = spec.parse().unwrap();
            assert_eq!(parsed.policy_name(), spec);
            assert_eq!(parsed.to_string().parse::<Candidate>().unwrap(), parsed);
        }
    }

    #[test]
    fn rejects_unknown_and_ambiguous_names() {
        let err = "builtin:least"
            .parse::<Candidate>()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no such built-in") && err.contains("builtin:cpu"),
            "{err}"
        );
        let err = "cpu".parse::<Candidate>().unwrap_err().to_string();
        assert!(err.contains("write builtin:cpu"), "{err}");
        assert!("".parse::<Candidate>().is_err());
    }
}
