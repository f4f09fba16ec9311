//! Loading a candidate through the real verifier and wiring it to a replica
//! group, with the contract of docs/shadow.md enforced on the way:
//!
//! - exactly one program, of type sk_reuseport (`SEC("sk_reuseport")` or
//!   `SEC("sk_reuseport/migrate")`);
//! - a BPF_MAP_TYPE_REUSEPORT_SOCKARRAY map named `socks`, u32 key and u32
//!   value, with max_entries >= the replica size; the engine stores replica
//!   socket i at index i;
//! - optional `const volatile __u32 num_socks` (replica size) and
//!   `num_heavy_socks` (sockets reserved for heavy flows), set before load;
//! - optional ARRAY map `weights` (u32 -> u32, index = socket), filled from
//!   the replay options;
//! - optional HASH map `heavy_flows` (struct shadow_flow_key -> u32 socket
//!   index), filled with the trace's heaviest flows.
//!
//! Every failure here rejects the policy, never the replay.

use std::fmt;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use aya::maps::{Array, HashMap as BpfHashMap, Map, MapData, ReusePortSockArray};
use aya::programs::{Program, SkReuseport};
use aya::{Btf, Ebpf, EbpfLoader};

use crate::candidate::Candidate;

/// How many trailing lines of the verifier log a rejection keeps.
const VERIFIER_EXCERPT_LINES: usize = 25;

/// Mirror of `struct shadow_flow_key` (shadow/bpf/shadow_selector.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FlowKey {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    /// Network byte order, as on the wire.
    pub sport_be: u16,
    pub dport_be: u16,
    pub family: u32,
}

// SAFETY: repr(C), only integer fields, no padding (16+16+2+2+4 = 40).
unsafe impl aya::Pod for FlowKey {}

impl FlowKey {
    pub fn new(saddr: std::net::IpAddr, sport: u16, daddr: std::net::IpAddr, dport: u16) -> Self {
        fn bytes(addr: std::net::IpAddr) -> ([u8; 16], u32) {
            let mut out = [0u8; 16];
            match addr {
                std::net::IpAddr::V4(v4) => {
                    out[..4].copy_from_slice(&v4.octets());
                    (out, 4)
                }
                std::net::IpAddr::V6(v6) => (v6.octets(), 6),
            }
        }
        let (saddr, family) = bytes(saddr);
        let (daddr, _) = bytes(daddr);
        Self {
            saddr,
            daddr,
            sport_be: sport.to_be(),
            dport_be: dport.to_be(),
            family,
        }
    }
}

/// What the engine hands a candidate besides the replica sockets.
pub(crate) struct PolicyContext<'a> {
    pub sockets: u32,
    pub weights: Option<&'a [u32]>,
    /// Heavy flows and their dedicated socket index.
    pub heavy_flows: &'a [(FlowKey, u32)],
    /// Sockets reserved for heavy flows (0..heavy_socks).
    pub heavy_socks: u32,
}

/// Why a candidate was rejected.
#[derive(Debug)]
pub(crate) enum CandidateError {
    NotBuilt,
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    Open(String),
    Contract(String),
    Verifier {
        errno: Option<i32>,
        excerpt: String,
    },
    Load(String),
    Attach(String),
}

impl fmt::Display for CandidateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotBuilt => f.write_str(
                "built-in not built: clang was missing when skewscope-shadow was compiled",
            ),
            Self::Read { path, error } => write!(f, "reading {}: {error}", path.display()),
            Self::Open(detail) => write!(f, "opening BPF object: {detail}"),
            Self::Contract(detail) => {
                write!(f, "contract violation: {detail} (see docs/shadow.md)")
            }
            Self::Verifier { errno, excerpt } => {
                write!(f, "verifier rejected the program")?;
                if let Some(errno) = errno {
                    write!(f, " ({})", std::io::Error::from_raw_os_error(*errno))?;
                }
                if excerpt.is_empty() {
                    Ok(())
                } else {
                    write!(f, "; verifier log (last lines):\n{excerpt}")
                }
            }
            Self::Load(detail) => write!(f, "loading program: {detail}"),
            Self::Attach(detail) => write!(f, "attaching to the replica: {detail}"),
        }
    }
}

/// A candidate that passed the verifier, not yet attached.
pub(crate) struct LoadedPolicy {
    ebpf: Ebpf,
    program: String,
    pub program_id: Option<u32>,
    pub notes: Vec<String>,
}

/// Loads `candidate` (None for the kernel default).
/// `btf` is the kernel's BTF for CO-RE relocations, parsed once per replay.
pub(crate) fn load(
    candidate: &Candidate,
    ctx: &PolicyContext<'_>,
    btf: Option<&Btf>,
) -> Result<Option<LoadedPolicy>, CandidateError> {
    let owned;
    let bytes: &[u8] = match candidate {
        Candidate::Builtin(builtin) => match builtin.object() {
            None => return Ok(None),
            Some([]) => return Err(CandidateError::NotBuilt),
            Some(object) => object,
        },
        Candidate::Object(path) => {
            owned = std::fs::read(path).map_err(|error| CandidateError::Read {
                path: path.clone(),
                error,
            })?;
            &owned
        }
    };

    let mut ebpf = EbpfLoader::new()
        .btf(btf)
        .override_global("num_socks", &ctx.sockets, false)
        .override_global("num_heavy_socks", &ctx.heavy_socks, false)
        .load(bytes)
        .map_err(|err| CandidateError::Open(error_chain(&err)))?;

    let programs: Vec<(String, bool)> = ebpf
        .programs()
        .map(|(name, program)| (name.to_owned(), matches!(program, Program::SkReuseport(_))))
        .collect();
    let program = match programs.as_slice() {
        [(name, true)] => name.clone(),
        [] => {
            return Err(CandidateError::Contract(
                "no program in the object".to_owned(),
            ))
        }
        [(name, false)] => {
            return Err(CandidateError::Contract(format!(
                "program {name} is not of type sk_reuseport (use SEC(\"sk_reuseport\"))"
            )))
        }
        many => {
            let names: Vec<&str> = many.iter().map(|(n, _)| n.as_str()).collect();
            return Err(CandidateError::Contract(format!(
                "expected exactly one sk_reuseport program, found {} ({})",
                many.len(),
                names.join(", ")
            )));
        }
    };
    check_socks_map(&ebpf, ctx.sockets)?;

    let prog: &mut SkReuseport = ebpf
        .program_mut(&program)
        .and_then(|p| p.try_into().ok())
        .expect("checked above: one sk_reuseport program");
    prog.load().map_err(|err| match err {
        aya::programs::ProgramError::LoadError {
            io_error,
            verifier_log,
        } => CandidateError::Verifier {
            errno: io_error.raw_os_error(),
            excerpt: log_excerpt(&verifier_log.to_string()),
        },
        other => CandidateError::Load(error_chain(&other)),
    })?;
    let program_id = prog.info().ok().map(|info| info.id());
    Ok(Some(LoadedPolicy {
        ebpf,
        program,
        program_id,
        notes: Vec::new(),
    }))
}

fn check_socks_map(ebpf: &Ebpf, sockets: u32) -> Result<(), CandidateError> {
    let Some(map) = ebpf.map("socks") else {
        let names: Vec<&str> = ebpf
            .maps()
            .map(|(n, _)| n)
            .filter(|n| !n.starts_with('.'))
            .collect();
        return Err(CandidateError::Contract(format!(
            "no map named `socks` (BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, u32 key, u32 value); maps found: [{}]",
            names.join(", ")
        )));
    };
    let Map::ReusePortSockArray(data) = map else {
        return Err(CandidateError::Contract(
            "map `socks` is not of type BPF_MAP_TYPE_REUSEPORT_SOCKARRAY".to_owned(),
        ));
    };
    let info = data.info().map_err(|err| {
        CandidateError::Load(format!("querying map socks: {}", error_chain(&err)))
    })?;
    if info.key_size() != 4 || info.value_size() != 4 {
        return Err(CandidateError::Contract(format!(
            "map `socks` must have a u32 key and a u32 value (has key {} bytes, value {} bytes)",
            info.key_size(),
            info.value_size()
        )));
    }
    if info.max_entries() < sockets {
        return Err(CandidateError::Contract(format!(
            "map `socks` has max_entries {} < replica sockets {sockets}",
            info.max_entries()
        )));
    }
    Ok(())
}

impl LoadedPolicy {
    /// Fills `socks` (and `weights`, `heavy_flows` when present) and
    /// attaches the program to the replica group through socket 0.
    pub fn attach(
        &mut self,
        replica: &[OwnedFd],
        ctx: &PolicyContext<'_>,
    ) -> Result<(), CandidateError> {
        let contract = |what: &str, err: &(dyn std::error::Error + 'static)| {
            CandidateError::Contract(format!("{what}: {}", error_chain(err)))
        };
        {
            let map = self.ebpf.map_mut("socks").expect("checked at load");
            let mut socks: ReusePortSockArray<&mut MapData> =
                map.try_into().map_err(|e| contract("map `socks`", &e))?;
            for (index, socket) in replica.iter().enumerate() {
                socks.set(index as u32, socket, 0).map_err(|e| {
                    CandidateError::Attach(format!(
                        "storing replica socket {index} in `socks`: {}",
                        error_chain(&e)
                    ))
                })?;
            }
        }
        if let Some(map) = self.ebpf.map_mut("weights") {
            let mut weights: Array<&mut MapData, u32> = map
                .try_into()
                .map_err(|e| contract("map `weights` must be an ARRAY of u32", &e))?;
            if weights.len() < ctx.sockets {
                return Err(CandidateError::Contract(format!(
                    "map `weights` has max_entries {} < replica sockets {}",
                    weights.len(),
                    ctx.sockets
                )));
            }
            let values: Vec<u32> = match ctx.weights {
                Some(values) => values.to_vec(),
                None => {
                    self.notes.push(
                        "no weights given: `weights` filled with 1 for every socket".to_owned(),
                    );
                    vec![1; ctx.sockets as usize]
                }
            };
            for (index, value) in values.iter().enumerate() {
                weights
                    .set(index as u32, value, 0)
                    .map_err(|e| contract("writing `weights`", &e))?;
            }
        }
        if let Some(map) = self.ebpf.map_mut("heavy_flows") {
            let mut heavy: BpfHashMap<&mut MapData, FlowKey, u32> =
                map.try_into().map_err(|e| {
                    contract(
                        "map `heavy_flows` must be a HASH of struct shadow_flow_key -> u32",
                        &e,
                    )
                })?;
            for (key, index) in ctx.heavy_flows {
                heavy
                    .insert(key, index, 0)
                    .map_err(|e| contract("writing `heavy_flows`", &e))?;
            }
        }
        let prog: &SkReuseport = self
            .ebpf
            .program(&self.program)
            .and_then(|p| p.try_into().ok())
            .expect("checked at load");
        prog.attach(&replica[0])
            .map_err(|e| CandidateError::Attach(error_chain(&e)))
    }
}

/// The last lines of a verifier log, where the reason is.
fn log_excerpt(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(VERIFIER_EXCERPT_LINES);
    lines[start..].join("\n")
}

/// "a: b: c" over an error and its sources, without repeating transparent
/// wrappers.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = next {
        let part = current.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        next = current.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_key_matches_the_c_layout() {
        assert_eq!(std::mem::size_of::<FlowKey>(), 40);
        let key = FlowKey::new(
            "10.0.0.1".parse().unwrap(),
            0x1234,
            "10.0.0.9".parse().unwrap(),
            53,
        );
        assert_eq!(&key.saddr[..5], &[10, 0, 0, 1, 0]);
        assert_eq!(key.sport_be.to_ne_bytes(), [0x12, 0x34]);
        assert_eq!(key.family, 4);
    }

    #[test]
    fn excerpt_keeps_the_tail() {
        let log: String = (0..100).map(|i| format!("line {i}\n\n")).collect();
        let excerpt = log_excerpt(&log);
        assert_eq!(excerpt.lines().count(), VERIFIER_EXCERPT_LINES);
        assert!(excerpt.ends_with("line 99"));
    }
}
