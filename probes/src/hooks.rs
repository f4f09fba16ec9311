//! The attachment of a probe's loaded programs, kept apart from the probe so
//! that another thread can switch it on and off (the agent's probe budget
//! duty-cycles the per-packet probes) while the probe's maps are read.
//!
//! A [`Hooks`] holds its own duplicate of every program fd, so the programs
//! stay loaded as long as it lives even when the probe is dropped first. Each
//! attachment is a bpf_link made with BPF_RAW_TRACEPOINT_OPEN (Linux 4.17;
//! tp_btf programs name their tracepoint at load, raw_tp programs at attach)
//! and owned by its fd: closing it detaches at once (bpf_link_release() →
//! bpf_link_put_direct(), kernel/bpf/syscall.c), and maps keep their
//! contents across detach and attach. kprobes are the exception: their link is
//! a perf event fd of the kprobe PMU (see [`Target::Kprobe`]), closed the same way.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use aya::programs::ProgramFd;

use crate::error::ProbeError;
use crate::stats::ProgramStats;

/// What BPF_RAW_TRACEPOINT_OPEN is given for one program.
#[derive(Debug)]
pub(crate) enum Target {
    /// A raw_tp program: the tracepoint is named at attach.
    Raw(CString),
    /// A tp_btf program: the tracepoint was fixed at load; the name is for messages.
    Btf(String),
    /// An fentry program: the kernel function was fixed at load (the name is for
    /// messages). BPF_RAW_TRACEPOINT_OPEN without a name attaches it through
    /// its trampoline (bpf_tracing_prog_attach(), Linux 5.5).
    Fentry(String),
    /// An fexit program: attached like fentry, the trampoline runs it after the
    /// function returns.
    Fexit(String),
    /// A kprobe (or, with `retprobe`, kretprobe) program: attached through a
    /// perf event of the kprobe PMU (perf_event_open(2) with PERF_EVENT_IOC_SET_BPF,
    /// Linux 4.17 for the PMU), whose fd is the link: closing it unregisters the
    /// probe (perf_release() → perf_kprobe_destroy(), kernel/trace/trace_event_perf.c).
    Kprobe { function: CString, retprobe: bool },
}

/// One loaded program and, while attached, its link.
#[derive(Debug)]
pub(crate) struct Hook {
    pub(crate) program: &'static str,
    pub(crate) fd: ProgramFd,
    pub(crate) target: Target,
    pub(crate) link: Option<OwnedFd>,
}

impl Hook {
    fn describe_target(&self) -> String {
        match &self.target {
            Target::Raw(name) => format!("raw_tp/{}", name.to_string_lossy()),
            Target::Btf(name) => format!("tp_btf/{name}"),
            Target::Fentry(name) => format!("fentry/{name}"),
            Target::Fexit(name) => format!("fexit/{name}"),
            Target::Kprobe { function, retprobe } => format!(
                "{}/{}",
                if *retprobe { "kretprobe" } else { "kprobe" },
                function.to_string_lossy()
            ),
        }
    }

    fn attach(&mut self, probe: &'static str) -> Result<(), ProbeError> {
        if self.link.is_some() {
            return Ok(());
        }
        if let Target::Kprobe { function, retprobe } = &self.target {
            let link = kprobe_link(&self.fd, function, *retprobe).map_err(|(step, err)| {
                ProbeError::Attach {
                    probe,
                    program: self.program,
                    target: self.describe_target(),
                    errno: err.raw_os_error(),
                    detail: format!("{step}: {}", crate::error::io_error_text(&err)),
                }
            })?;
            self.link = Some(link);
            return Ok(());
        }
        // union bpf_attr's raw_tracepoint member: { __u64 name; __u32 prog_fd; __u32 pad;
        // __u64 cookie; } (include/uapi/linux/bpf.h); bytes past it must be zero.
        const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
        let mut attr = [0u64; 3];
        if let Target::Raw(name) = &self.target {
            attr[0] = name.as_ptr() as u64;
        }
        attr[1] = self.fd.as_fd().as_raw_fd() as u64;
        // SAFETY: bpf(2) reads `attr` (its size given) and the C string it points to,
        // which outlives the call; it returns a new fd or -1.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_RAW_TRACEPOINT_OPEN,
                attr.as_mut_ptr(),
                std::mem::size_of_val(&attr) as libc::c_uint,
            )
        };
        if fd < 0 {
            let err = std::io::Error::last_os_error();
            return Err(ProbeError::Attach {
                probe,
                program: self.program,
                target: self.describe_target(),
                errno: err.raw_os_error(),
                detail: format!("BPF_RAW_TRACEPOINT_OPEN: {err}"),
            });
        }
        // SAFETY: the kernel returned a new link fd that nothing else owns.
        self.link = Some(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) });
        Ok(())
    }
}

/// The kprobe PMU (CONFIG_KPROBE_EVENTS): its perf type and the config bit that makes a
/// probe a return probe (format/retprobe reads "config:0").
const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe";

/// Opens a kprobe (or kretprobe) perf event on `function` for every CPU and runs the
/// program `fd` on it; the returned perf event fd is the attachment.
fn kprobe_link(
    fd: &ProgramFd,
    function: &CString,
    retprobe: bool,
) -> Result<OwnedFd, (&'static str, std::io::Error)> {
    let pmu_type = std::fs::read_to_string(format!("{KPROBE_PMU}/type"))
        .map_err(|e| ("kprobe PMU absent (CONFIG_KPROBE_EVENTS)", e))?;
    let pmu_type: u32 = pmu_type.trim().parse().map_err(|_| {
        (
            "kprobe PMU type",
            std::io::Error::from(std::io::ErrorKind::InvalidData),
        )
    })?;
    let mut config = 0u64;
    if retprobe {
        let format = std::fs::read_to_string(format!("{KPROBE_PMU}/format/retprobe"))
            .map_err(|e| ("kprobe PMU format/retprobe", e))?;
        config = 1u64
            << parse_config_bit(&format).ok_or((
                "kprobe PMU format/retprobe",
                std::io::Error::from(std::io::ErrorKind::InvalidData),
            ))?;
    }
    // struct perf_event_attr (include/uapi/linux/perf_event.h) up to config2:
    // PERF_ATTR_SIZE_VER5 (112 bytes), which every kernel with the kprobe PMU takes.
    // type u32 @0, size u32 @4, config @8, sample_period @16, sample_type @24,
    // read_format @32, flags @40, wakeup_events u32 @48, bp_type u32 @52,
    // kprobe_func (config1) @56, probe_offset (config2) @64.
    let mut attr = [0u64; 14];
    attr[0] = u64::from(pmu_type) | (112u64 << 32);
    attr[1] = config;
    attr[7] = function.as_ptr() as u64;
    const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
    // SAFETY: perf_event_open(2) reads `attr` (its size inside) and the C string it
    // points to, which outlive the call; pid -1 with cpu 0 is every task on every CPU
    // for a kprobe event (the program runs wherever the probe hits).
    let perf_fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            -1 as libc::c_int,
            0 as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if perf_fd < 0 {
        return Err(("perf_event_open", std::io::Error::last_os_error()));
    }
    // SAFETY: the kernel returned a new fd that nothing else owns.
    let perf_fd = unsafe { OwnedFd::from_raw_fd(perf_fd as libc::c_int) };
    // _IOW('$', 8, __u32) and _IO('$', 0) (include/uapi/linux/perf_event.h).
    const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;
    const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
    // SAFETY: ioctls on an owned perf fd with integer arguments.
    if unsafe {
        libc::ioctl(
            perf_fd.as_raw_fd(),
            PERF_EVENT_IOC_SET_BPF as _,
            fd.as_fd().as_raw_fd(),
        )
    } < 0
    {
        return Err(("PERF_EVENT_IOC_SET_BPF", std::io::Error::last_os_error()));
    }
    // SAFETY: as above.
    if unsafe { libc::ioctl(perf_fd.as_raw_fd(), PERF_EVENT_IOC_ENABLE as _, 0) } < 0 {
        return Err(("PERF_EVENT_IOC_ENABLE", std::io::Error::last_os_error()));
    }
    Ok(perf_fd)
}

/// The bit of "config:N" (a PMU format file).
pub(crate) fn parse_config_bit(format: &str) -> Option<u32> {
    format
        .trim()
        .strip_prefix("config:")?
        .parse()
        .ok()
        .filter(|bit| *bit < 64)
}

/// The programs of one probe and their links; dropping it detaches them and
/// releases its references to the programs.
#[derive(Debug)]
pub struct Hooks {
    probe: &'static str,
    hooks: Vec<Hook>,
}

impl Hooks {
    pub(crate) fn new(probe: &'static str) -> Self {
        Self {
            probe,
            hooks: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, hook: Hook) {
        self.hooks.push(hook);
    }

    /// Moves `other`'s programs into this set.
    pub(crate) fn extend(&mut self, other: Hooks) {
        self.hooks.extend(other.hooks);
    }

    /// The probe these programs belong to.
    pub fn probe(&self) -> &'static str {
        self.probe
    }

    /// Attaches every program not attached yet: all or none (on a failure
    /// those attached by this call are detached again).
    pub fn attach(&mut self) -> Result<(), ProbeError> {
        let was: Vec<bool> = self.hooks.iter().map(|h| h.link.is_some()).collect();
        for index in 0..self.hooks.len() {
            if let Err(err) = self.hooks[index].attach(self.probe) {
                for (hook, was_attached) in self.hooks.iter_mut().zip(&was) {
                    if !was_attached {
                        hook.link = None;
                    }
                }
                return Err(err);
            }
        }
        Ok(())
    }

    /// Detaches every program; they stay loaded and their maps keep counting
    /// from where they were once attached again.
    pub fn detach(&mut self) {
        for hook in &mut self.hooks {
            hook.link = None;
        }
    }

    /// Whether every program is attached (false for an empty set).
    pub fn is_attached(&self) -> bool {
        !self.hooks.is_empty() && self.hooks.iter().all(|h| h.link.is_some())
    }

    /// The programs' names, in load order.
    pub fn programs(&self) -> Vec<&'static str> {
        self.hooks.iter().map(|h| h.program).collect()
    }
}

/// BPF_ENABLE_STATS(BPF_STATS_RUN_TIME): while the returned fd is open the kernel
/// accounts every program's run count and time (Linux 5.8, commit d46edd671a14 "bpf:
/// Sharing bpf runtime stats with BPF_ENABLE_STATS"); closing it turns them off again
/// unless another holder or kernel.bpf_stats_enabled keeps them on. Hold it only for a
/// short window: while on, every program run pays two sched_clock() reads.
pub fn enable_run_time_stats() -> Result<OwnedFd, ProbeError> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(|err| ProbeError::Info {
        probe: "run_time_stats",
        object: "BPF_ENABLE_STATS".into(),
        detail: err.io_error.to_string(),
    })
}

impl Hooks {
    /// Run count and time of each program (bpf_prog_info.run_cnt/run_time_ns, counted
    /// only while run-time stats are on), in load order.
    pub fn program_stats(&self) -> Result<Vec<ProgramStats>, ProbeError> {
        self.hooks
            .iter()
            .map(|hook| {
                let mut stats = run_stats(&hook.fd).map_err(|err| ProbeError::Info {
                    probe: self.probe,
                    object: format!("program {}", hook.program),
                    detail: format!("BPF_OBJ_GET_INFO_BY_FD: {err}"),
                })?;
                stats.name = hook.program.to_owned();
                Ok(stats)
            })
            .collect()
    }
}

/// Run count, run time and recursion misses of one program (unnamed). struct
/// bpf_prog_info has run_time_ns at byte 192 and run_cnt at 200 (include/uapi/linux/bpf.h,
/// Linux 5.1, commit 5f8f8b93aeb8), recursion_misses at 208 (5.12, commit 9ed9e9ba2337
/// "bpf: Count the number of times recursion was prevented"); the kernel fills min(info_len,
/// its size) bytes and writes back the length it used.
pub(crate) fn run_stats(fd: &ProgramFd) -> std::io::Result<ProgramStats> {
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    const RUN_TIME_NS: usize = 192 / 8;
    const RUN_CNT: usize = 200 / 8;
    const RECURSION_MISSES: usize = 208 / 8;
    let mut info = [0u64; RECURSION_MISSES + 1];
    // union bpf_attr's info member: { __u32 bpf_fd; __u32 info_len; __u64 info; }.
    let mut attr = [0u32; 4];
    attr[0] = fd.as_fd().as_raw_fd() as u32;
    attr[1] = std::mem::size_of_val(&info) as u32;
    let ptr = (info.as_mut_ptr() as u64).to_ne_bytes();
    attr[2] = u32::from_ne_bytes(ptr[..4].try_into().unwrap_or_default());
    attr[3] = u32::from_ne_bytes(ptr[4..].try_into().unwrap_or_default());
    // SAFETY: bpf(2) reads `attr` (its size given) and writes at most info_len bytes
    // into `info`, which outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr) as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let filled = attr[1] as usize;
    if filled < (RUN_CNT + 1) * 8 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "bpf_prog_info has no run_cnt (Linux < 5.1)",
        ));
    }
    Ok(ProgramStats {
        name: String::new(),
        run_count: info[RUN_CNT],
        run_time_ns: info[RUN_TIME_NS],
        recursion_misses: if filled > RECURSION_MISSES * 8 {
            info[RECURSION_MISSES]
        } else {
            0
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pmu_format_bits() {
        // /sys/bus/event_source/devices/kprobe/format/retprobe on x86_64.
        assert_eq!(parse_config_bit("config:0\n"), Some(0));
        assert_eq!(parse_config_bit("config:63"), Some(63));
        assert_eq!(parse_config_bit("config:64"), None);
        assert_eq!(parse_config_bit("config1:0"), None);
        assert_eq!(parse_config_bit("config:0-3"), None);
        assert_eq!(parse_config_bit(""), None);
    }
}
