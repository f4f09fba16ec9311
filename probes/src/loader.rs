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

use aya::programs::RawTracePoint;
use aya::Ebpf;

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
