//! Shared loading steps for the probes: open an embedded object, load and
//! attach raw tracepoint programs, and list the kernel ids a probe owns.
//!
//! Tracepoints attach as raw tracepoints (BPF_PROG_TYPE_RAW_TRACEPOINT,
//! BPF_RAW_TRACEPOINT_OPEN, Linux 4.17): they need no tracefs mount, skip the
//! perf trace-buffer copy of classic tracepoints, and hand the program the
//! TP_PROTO arguments themselves (read with CO-RE when they are pointers).
//! Verified on the lab kernel (6.18, tracefs unmounted) by
//! tests/softirq_time_live.rs and tests/caps_live.rs. The attachment is a
//! bpf_link held by a file descriptor, so dropping it detaches.

use aya::maps::{Map, MapError};
use aya::programs::RawTracePoint;
use aya::{Ebpf, EbpfLoader};

use crate::error::{error_chain_message, program_error_message, ProbeError};

/// Parses an embedded object and creates its maps. Fails with `NotBuilt`
/// when build.rs had no clang and left the object empty.
pub(crate) fn open_object(probe: &'static str, object: &[u8]) -> Result<Ebpf, ProbeError> {
    if !crate::probes_built() || object.is_empty() {
        return Err(ProbeError::NotBuilt { probe });
    }
    Ebpf::load(object).map_err(|err| ProbeError::Open {
        probe,
        detail: error_chain_message(&err).text,
    })
}

/// Loads `program` and attaches it to the raw tracepoint `tracepoint`
/// (the event name without its category, e.g. "softirq_entry").
/// The link stays owned by the program inside `ebpf`.
pub(crate) fn attach_raw_tracepoint(
    ebpf: &mut Ebpf,
    probe: &'static str,
    program: &'static str,
    tracepoint: &str,
) -> Result<(), ProbeError> {
    let raw_tp: &mut RawTracePoint = ebpf
        .program_mut(program)
        .ok_or(ProbeError::Missing {
            probe,
            kind: "program",
            name: program,
        })?
        .try_into()
        .map_err(|err| {
            let msg = program_error_message(&err);
            ProbeError::Load {
                probe,
                program,
                errno: msg.errno,
                detail: msg.text,
            }
        })?;
    raw_tp.load().map_err(|err| {
        let msg = program_error_message(&err);
        ProbeError::Load {
            probe,
            program,
            errno: msg.errno,
            detail: msg.text,
        }
    })?;
    raw_tp.attach(tracepoint).map_err(|err| {
        let msg = program_error_message(&err);
        ProbeError::Attach {
            probe,
            program,
            target: format!("raw_tp/{tracepoint}"),
            errno: msg.errno,
            detail: msg.text,
        }
    })?;
    Ok(())
}

/// Kernel ids of the loaded programs of `ebpf` and of the maps they use.
pub(crate) fn kernel_ids(
    ebpf: &Ebpf,
    probe: &'static str,
) -> Result<(Vec<u32>, Vec<u32>), ProbeError> {
    let mut program_ids = Vec::new();
    let mut map_ids = Vec::new();
    for (name, program) in ebpf.programs() {
        let map_err = |err: aya::programs::ProgramError| ProbeError::Info {
            probe,
            object: format!("program {name}"),
            detail: program_error_message(&err).text,
        };
        let info = match program.info() {
            Ok(info) => info,
            // Not loaded (e.g. a capability check program left unloaded).
            Err(aya::programs::ProgramError::NotLoaded) => continue,
            Err(err) => return Err(map_err(err)),
        };
        program_ids.push(info.id());
        map_ids.extend(info.map_ids().map_err(map_err)?.unwrap_or_default());
    }
    program_ids.sort_unstable();
    map_ids.sort_unstable();
    map_ids.dedup();
    Ok((program_ids, map_ids))
}

/// Opens an embedded object with load-time settings: `globals` overrides
/// `const volatile` variables (.rodata), `max_entries` resizes maps before
/// they are created.
pub(crate) fn open_object_with(
    probe: &'static str,
    object: &[u8],
    globals: &[(&str, u32)],
    max_entries: &[(&str, u32)],
) -> Result<Ebpf, ProbeError> {
    if !crate::probes_built() || object.is_empty() {
        return Err(ProbeError::NotBuilt { probe });
    }
    let mut loader = EbpfLoader::new();
    for (name, value) in globals {
        loader.override_global(name, value, true);
    }
    for (name, size) in max_entries {
        loader.map_max_entries(name, *size);
    }
    loader.load(object).map_err(|err| ProbeError::Open {
        probe,
        detail: error_chain_message(&err).text,
    })
}

/// Takes map `name` out of `ebpf` as the typed map `T`.
pub(crate) fn take_map<T>(
    ebpf: &mut Ebpf,
    probe: &'static str,
    name: &'static str,
) -> Result<T, ProbeError>
where
    T: TryFrom<Map, Error = MapError>,
{
    let map = ebpf.take_map(name).ok_or(ProbeError::Missing {
        probe,
        kind: "map",
        name,
    })?;
    T::try_from(map).map_err(|err| ProbeError::MapRead {
        probe,
        map: name,
        detail: error_chain_message(&err).text,
    })
}

/// A map read failure of `probe`.
pub(crate) fn map_read_error(
    probe: &'static str,
    map: &'static str,
    err: &(dyn std::error::Error + 'static),
) -> ProbeError {
    ProbeError::MapRead {
        probe,
        map,
        detail: error_chain_message(err).text,
    }
}

/// A map write failure of `probe`.
pub(crate) fn map_write_error(
    probe: &'static str,
    map: &'static str,
    err: &(dyn std::error::Error + 'static),
) -> ProbeError {
    ProbeError::MapWrite {
        probe,
        map,
        detail: error_chain_message(err).text,
    }
}

/// Run-time accounting of one loaded program (bpf_prog_info run_cnt and
/// run_time_ns, Linux 5.1). The kernel only accumulates them while the
/// administrator has `kernel.bpf_stats_enabled=1` (or a BPF_ENABLE_STATS fd
/// is held); otherwise both stay 0. skewscope never turns that on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramStats {
    /// Program name in the object ("sk_data_ready", ...).
    pub name: String,
    /// Runs counted while stats were enabled.
    pub run_count: u64,
    /// Total run time of those runs, in nanoseconds.
    pub run_time_ns: u64,
}

impl ProgramStats {
    /// Mean cost per run in nanoseconds; None before any counted run.
    pub fn ns_per_run(&self) -> Option<u64> {
        (self.run_count > 0).then(|| self.run_time_ns / self.run_count)
    }
}

/// Run count and time of every loaded program of `ebpf`, by program name.
pub(crate) fn program_stats(
    ebpf: &Ebpf,
    probe: &'static str,
) -> Result<Vec<ProgramStats>, ProbeError> {
    let mut stats = Vec::new();
    for (name, program) in ebpf.programs() {
        let info = match program.info() {
            Ok(info) => info,
            Err(aya::programs::ProgramError::NotLoaded) => continue,
            Err(err) => {
                return Err(ProbeError::Info {
                    probe,
                    object: format!("program {name}"),
                    detail: program_error_message(&err).text,
                })
            }
        };
        stats.push(ProgramStats {
            name: name.to_owned(),
            run_count: info.run_count(),
            run_time_ns: u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
        });
    }
    stats.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(stats)
}
