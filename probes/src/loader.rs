//! Shared loading steps for the probes: open an embedded object, load and
//! attach tracepoint programs, and list the kernel ids a probe owns.
//!
//! Tracepoints attach as raw tracepoints (BPF_RAW_TRACEPOINT_OPEN, Linux
//! 4.17): they need no tracefs mount, skip the perf trace-buffer copy of
//! classic tracepoints, and hand the program the TP_PROTO arguments
//! themselves. Verified on the lab kernel (6.18, tracefs unmounted) by
//! tests/softirq_time_live.rs and tests/caps_live.rs. Loading and attaching
//! are separate steps: the attachment is a bpf_link held by a file
//! descriptor in [`Hooks`](crate::Hooks), so dropping it detaches.
//!
//! Two program types use that attachment:
//! - raw_tp (BPF_PROG_TYPE_RAW_TRACEPOINT): pointer arguments are plain
//!   integers, every field is read with bpf_probe_read_kernel (CO-RE).
//! - tp_btf (BPF_PROG_TYPE_TRACING, Linux 5.5, commit 9e15db66136a "bpf:
//!   Implement accurate raw_tp context access via BTF"): loaded against the
//!   tracepoint's `btf_trace_<name>` type in the kernel BTF, so pointer
//!   arguments are typed and fields are read with plain, fault-guarded
//!   loads. A field read costs ~1 ns instead of ~15 ns for the helper call
//!   (bpf_prog_info run time, 6.18 VM); the per-packet probes use it.
//!
//! fentry programs (BPF_PROG_TYPE_TRACING too) attach the same way, with no
//! name: the kernel function was fixed at load. Probes use them where a
//! tracepoint is missing from older kernels.

use aya::maps::{Map, MapError};
use aya::programs::{BtfTracePoint, FEntry, FExit, KProbe, RawTracePoint};
use aya::{Btf, Ebpf, EbpfLoader};
use std::ffi::CString;

use crate::hooks::{Hook, Target};
use crate::stats::ProgramStats;
use crate::Hooks;

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

fn load_error(
    probe: &'static str,
    program: &'static str,
) -> impl Fn(aya::programs::ProgramError) -> ProbeError {
    move |err| {
        let msg = program_error_message(&err);
        ProbeError::Load {
            probe,
            program,
            errno: msg.errno,
            detail: msg.text,
        }
    }
}

fn program_mut<'a>(
    ebpf: &'a mut Ebpf,
    probe: &'static str,
    program: &'static str,
) -> Result<&'a mut aya::programs::Program, ProbeError> {
    ebpf.program_mut(program).ok_or(ProbeError::Missing {
        probe,
        kind: "program",
        name: program,
    })
}

/// Loads raw_tp programs, each for its raw tracepoint (the event name without
/// its category, e.g. "softirq_entry"), and attaches them all or none.
pub(crate) fn attach_raw_tracepoints(
    ebpf: &mut Ebpf,
    probe: &'static str,
    programs: &[(&'static str, &str)],
) -> Result<Hooks, ProbeError> {
    let mut hooks = Hooks::new(probe);
    for (program, tracepoint) in programs {
        hooks.push(raw_tracepoint_hook(ebpf, probe, program, tracepoint)?);
    }
    hooks.attach()?;
    Ok(hooks)
}

/// Loads tp_btf programs, each against its tracepoint's BTF type, and
/// attaches them all or none.
pub(crate) fn attach_btf_tracepoints(
    ebpf: &mut Ebpf,
    btf: &Btf,
    probe: &'static str,
    programs: &[(&'static str, &str)],
) -> Result<Hooks, ProbeError> {
    let mut hooks = Hooks::new(probe);
    for (program, tracepoint) in programs {
        hooks.push(btf_tracepoint_hook(ebpf, btf, probe, program, tracepoint)?);
    }
    hooks.attach()?;
    Ok(hooks)
}

/// Loads fentry programs, each against its kernel function's BTF, and
/// attaches them all or none.
pub(crate) fn attach_fentries(
    ebpf: &mut Ebpf,
    btf: &Btf,
    probe: &'static str,
    programs: &[(&'static str, &str)],
) -> Result<Hooks, ProbeError> {
    let mut hooks = Hooks::new(probe);
    for (program, function) in programs {
        let fentry: &mut FEntry = program_mut(ebpf, probe, program)?
            .try_into()
            .map_err(load_error(probe, program))?;
        fentry
            .load(function, btf)
            .map_err(load_error(probe, program))?;
        hooks.push(hook(
            probe,
            program,
            fentry.fd(),
            Target::Fentry((*function).to_owned()),
        )?);
    }
    hooks.attach()?;
    Ok(hooks)
}

/// Loads fexit programs, each against its kernel function's BTF, and attaches
/// them all or none.
pub(crate) fn attach_fexits(
    ebpf: &mut Ebpf,
    btf: &Btf,
    probe: &'static str,
    programs: &[(&'static str, &str)],
) -> Result<Hooks, ProbeError> {
    let mut hooks = Hooks::new(probe);
    for (program, function) in programs {
        let fexit: &mut FExit = program_mut(ebpf, probe, program)?
            .try_into()
            .map_err(load_error(probe, program))?;
        fexit
            .load(function, btf)
            .map_err(load_error(probe, program))?;
        hooks.push(hook(
            probe,
            program,
            fexit.fd(),
            Target::Fexit((*function).to_owned()),
        )?);
    }
    hooks.attach()?;
    Ok(hooks)
}

/// Loads kprobe programs (`retprobe`: kretprobe), each for its kernel function, and
/// attaches them all or none through the kprobe PMU.
pub(crate) fn attach_kprobes(
    ebpf: &mut Ebpf,
    probe: &'static str,
    programs: &[(&'static str, &str, bool)],
) -> Result<Hooks, ProbeError> {
    let mut hooks = Hooks::new(probe);
    for (program, function, retprobe) in programs {
        let kprobe: &mut KProbe = program_mut(ebpf, probe, program)?
            .try_into()
            .map_err(load_error(probe, program))?;
        kprobe.load().map_err(load_error(probe, program))?;
        let target = CString::new(*function).map_err(|_| ProbeError::Config {
            probe,
            detail: format!("function name {function:?} has a NUL byte"),
        })?;
        hooks.push(hook(
            probe,
            program,
            kprobe.fd(),
            Target::Kprobe {
                function: target,
                retprobe: *retprobe,
            },
        )?);
    }
    hooks.attach()?;
    Ok(hooks)
}

/// Unloads program `name` of `ebpf` if it is loaded (a fallback the kernel
/// refused at attach): it would otherwise stay loaded, unused, with the
/// object.
pub(crate) fn unload(ebpf: &mut Ebpf, name: &str) {
    use aya::programs::Program;
    // Nothing to do for one that never loaded.
    let _ = match ebpf.program_mut(name) {
        Some(Program::KProbe(p)) => p.unload(),
        Some(Program::FEntry(p)) => p.unload(),
        Some(Program::FExit(p)) => p.unload(),
        Some(Program::BtfTracePoint(p)) => p.unload(),
        _ => Ok(()),
    };
}

fn raw_tracepoint_hook(
    ebpf: &mut Ebpf,
    probe: &'static str,
    program: &'static str,
    tracepoint: &str,
) -> Result<Hook, ProbeError> {
    let raw_tp: &mut RawTracePoint = program_mut(ebpf, probe, program)?
        .try_into()
        .map_err(load_error(probe, program))?;
    raw_tp.load().map_err(load_error(probe, program))?;
    let target = CString::new(tracepoint).map_err(|_| ProbeError::Config {
        probe,
        detail: format!("tracepoint name {tracepoint:?} has a NUL byte"),
    })?;
    hook(probe, program, raw_tp.fd(), Target::Raw(target))
}

fn btf_tracepoint_hook(
    ebpf: &mut Ebpf,
    btf: &Btf,
    probe: &'static str,
    program: &'static str,
    tracepoint: &str,
) -> Result<Hook, ProbeError> {
    let tp_btf: &mut BtfTracePoint = program_mut(ebpf, probe, program)?
        .try_into()
        .map_err(load_error(probe, program))?;
    tp_btf
        .load(tracepoint, btf)
        .map_err(load_error(probe, program))?;
    hook(
        probe,
        program,
        tp_btf.fd(),
        Target::Btf(tracepoint.to_owned()),
    )
}

fn hook(
    probe: &'static str,
    program: &'static str,
    fd: Result<&aya::programs::ProgramFd, aya::programs::ProgramError>,
    target: Target,
) -> Result<Hook, ProbeError> {
    let fd = fd
        .map_err(load_error(probe, program))?
        .try_clone()
        .map_err(|err| ProbeError::Load {
            probe,
            program,
            errno: err.raw_os_error(),
            detail: format!("duplicating the program fd: {err}"),
        })?;
    Ok(Hook {
        program,
        fd,
        target,
        link: None,
    })
}

/// The running kernel's BTF (/sys/kernel/btf/vmlinux): CO-RE relocations
/// and the attach types of tp_btf programs.
pub(crate) fn kernel_btf(probe: &'static str) -> Result<Btf, ProbeError> {
    Btf::from_sys_fs().map_err(|err| ProbeError::Open {
        probe,
        detail: format!(
            "reading the kernel BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF): {}",
            error_chain_message(&err).text
        ),
    })
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

/// Opens an embedded object, relocated against `btf`, with load-time
/// settings: `globals` overrides `const volatile` variables (.rodata),
/// `max_entries` resizes maps before they are created.
pub(crate) fn open_object_with(
    probe: &'static str,
    object: &[u8],
    btf: &Btf,
    globals: &[(&str, u32)],
    max_entries: &[(&str, u32)],
) -> Result<Ebpf, ProbeError> {
    if !crate::probes_built() || object.is_empty() {
        return Err(ProbeError::NotBuilt { probe });
    }
    let mut loader = EbpfLoader::new();
    loader.btf(Some(btf));
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

/// Run count, time and recursion misses of every loaded program of `ebpf`, by
/// program name.
pub(crate) fn program_stats(
    ebpf: &Ebpf,
    probe: &'static str,
) -> Result<Vec<ProgramStats>, ProbeError> {
    let mut stats = Vec::new();
    for (name, program) in ebpf.programs() {
        let fd = match program.fd() {
            Ok(fd) => fd,
            // Not loaded (a fallback the kernel refused, or one never needed).
            Err(aya::programs::ProgramError::NotLoaded) => continue,
            Err(err) => {
                return Err(ProbeError::Info {
                    probe,
                    object: format!("program {name}"),
                    detail: program_error_message(&err).text,
                })
            }
        };
        let mut program_stats = crate::hooks::run_stats(fd).map_err(|err| ProbeError::Info {
            probe,
            object: format!("program {name}"),
            detail: format!("BPF_OBJ_GET_INFO_BY_FD: {err}"),
        })?;
        program_stats.name = name.to_owned();
        stats.push(program_stats);
    }
    stats.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(stats)
}
