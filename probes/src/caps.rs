//! Capability facts for `skewscope doctor`: what the kernel offers and which
//! probe attach methods work here. Checks return data and print nothing; each
//! loads a trivial program from bpf/caps.bpf.c, tries it, and drops it again
//! (links, programs and maps close with their file descriptors).

use std::fs;
use std::path::{Path, PathBuf};

use aya::programs::{FEntry, KProbe, RawTracePoint, SkReuseport};
use aya::{Btf, Ebpf};

use crate::error::{error_chain_message, program_error_message, ProbeError};
use crate::loader;

const PROBE: &str = "caps";
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/caps.bpf.o"));

const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";
const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe";
/// The function the exact-selection probe wants to trace with kprobes.
const KPROBE_TARGET: &str = "reuseport_select_sock";

/// Every tracepoint ("category:event") the skewscope probes attach to.
pub const PROBE_TRACEPOINTS: &[&str] = &[
    "irq:softirq_entry",
    "irq:softirq_exit",
    "sock:sk_data_ready",
    "net:netif_receive_skb",
    "net:netif_receive_skb_entry",
    "napi:napi_poll",
    "skb:kfree_skb",
    "skb:skb_copy_datagram_iovec",
    "sock:sock_recv_length",
    "tcp:tcp_send_reset",
];

/// One attach method or hook, and whether it works on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    /// "raw_tp/irq:softirq_entry", "fentry/reuseport_select_sock", ...
    pub name: String,
    pub available: bool,
    /// What was tried, and the kernel's answer when it failed.
    pub detail: String,
}

impl Capability {
    fn available(name: String, detail: impl Into<String>) -> Self {
        Self {
            name,
            available: true,
            detail: detail.into(),
        }
    }

    fn unavailable(name: String, detail: impl Into<String>) -> Self {
        Self {
            name,
            available: false,
            detail: detail.into(),
        }
    }
}

/// Static facts about the running kernel and this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelFacts {
    /// `uname -r`.
    pub release: String,
    /// /sys/kernel/btf/vmlinux exists (CONFIG_DEBUG_INFO_BTF): CO-RE works.
    pub btf: bool,
    /// First bpffs mount point, if any.
    pub bpffs: Option<PathBuf>,
    /// First tracefs mount point, if any (raw tracepoints do not need it).
    pub tracefs: Option<PathBuf>,
    /// The kprobe perf PMU exists (CONFIG_KPROBE_EVENTS, Linux 4.17+).
    pub kprobe_pmu: bool,
    /// kernel.bpf_stats_enabled (per-program run time/count accounting);
    /// None when the sysctl is absent (before Linux 5.1).
    pub bpf_stats_enabled: Option<bool>,
    /// Names of the effective capabilities of this process ("CAP_BPF", ...).
    pub effective_caps: Vec<String>,
}

/// Reads the kernel facts. Missing files read as "absent", never as errors.
pub fn kernel_facts() -> KernelFacts {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    KernelFacts {
        release: kernel_release(),
        btf: Path::new(KERNEL_BTF).exists(),
        bpffs: mount_point_of(&mounts, "bpf"),
        tracefs: mount_point_of(&mounts, "tracefs"),
        kprobe_pmu: Path::new(KPROBE_PMU).exists(),
        bpf_stats_enabled: fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .map(|v| v != 0),
        effective_caps: parse_effective_caps(&status),
    }
}

/// For each "category:event", whether a raw tracepoint program attaches.
/// Raw tracepoints are looked up by event name only
/// (kernel/trace/bpf_trace.c bpf_get_raw_tracepoint), so the category is
/// informational. One trivial program is loaded once and attached to and
/// detached from each name in turn.
pub fn check_raw_tracepoints(names: &[&str]) -> Vec<Capability> {
    let cap_name = |name: &str| format!("raw_tp/{name}");
    let mut ebpf = match open_caps() {
        Ok(ebpf) => ebpf,
        Err(err) => {
            return names
                .iter()
                .map(|name| Capability::unavailable(cap_name(name), err.to_string()))
                .collect()
        }
    };
    let program = caps_program(&mut ebpf, "caps_raw_tp").and_then(|program: &mut RawTracePoint| {
        program
            .load()
            .map_err(|err| format!("load: {}", program_error_message(&err).text))?;
        Ok(program)
    });
    let program = match program {
        Ok(program) => program,
        Err(detail) => {
            return names
                .iter()
                .map(|name| Capability::unavailable(cap_name(name), detail.clone()))
                .collect()
        }
    };

    names
        .iter()
        .map(|name| {
            let Some(event) = tracepoint_event(name) else {
                return Capability::unavailable(
                    cap_name(name),
                    "malformed tracepoint name: expected \"category:event\"",
                );
            };
            match program.attach(event) {
                Ok(link_id) => {
                    let detail = match program.detach(link_id) {
                        Ok(()) => format!("raw_tp program attached to {event} and detached"),
                        Err(err) => format!(
                            "raw_tp program attached to {event}; detach failed: {}",
                            program_error_message(&err).text
                        ),
                    };
                    Capability::available(cap_name(name), detail)
                }
                Err(err) => {
                    let msg = program_error_message(&err);
                    let hint = if msg.errno == Some(libc::ENOENT) {
                        " (no such tracepoint in this kernel)"
                    } else {
                        ""
                    };
                    Capability::unavailable(
                        cap_name(name),
                        format!("attach to {event}: {}{hint}", msg.text),
                    )
                }
            }
        })
        .collect()
}

/// Whether an fentry (BPF trampoline) program loads and attaches on `func`.
pub fn check_fentry(func: &str) -> Capability {
    let name = format!("fentry/{func}");
    let btf = match Btf::from_sys_fs() {
        Ok(btf) => btf,
        Err(err) => {
            return Capability::unavailable(
                name,
                format!("kernel BTF unavailable: {}", error_chain_message(&err).text),
            )
        }
    };
    let mut ebpf = match open_caps() {
        Ok(ebpf) => ebpf,
        Err(err) => return Capability::unavailable(name, err.to_string()),
    };
    let program: &mut FEntry = match caps_program(&mut ebpf, "caps_fentry") {
        Ok(program) => program,
        Err(detail) => return Capability::unavailable(name, detail),
    };
    if let Err(err) = program.load(func, &btf) {
        return Capability::unavailable(
            name,
            format!("load: {}", program_error_message(&err).text),
        );
    }
    match program.attach() {
        Ok(link_id) => {
            let _ = program.detach(link_id);
            Capability::available(
                name,
                format!("fentry program attached to {func} and detached"),
            )
        }
        Err(err) => Capability::unavailable(
            name,
            format!("attach: {}", program_error_message(&err).text),
        ),
    }
}

/// Whether a kprobe on reuseport_select_sock attaches: reports the kprobe
/// PMU and the outcome of a real attach attempt.
pub fn check_kprobe() -> Capability {
    check_kprobe_on(KPROBE_TARGET)
}

/// Whether a kprobe on kernel function `func` attaches: reports the kprobe
/// PMU and the outcome of a real attach attempt.
pub fn check_kprobe_on(func: &str) -> Capability {
    let name = format!("kprobe/{func}");
    let pmu = if Path::new(KPROBE_PMU).exists() {
        "kprobe PMU present"
    } else {
        "kprobe PMU absent (no /sys/bus/event_source/devices/kprobe: CONFIG_KPROBES/CONFIG_KPROBE_EVENTS not set)"
    };
    let mut ebpf = match open_caps() {
        Ok(ebpf) => ebpf,
        Err(err) => return Capability::unavailable(name, format!("{pmu}; {err}")),
    };
    let program: &mut KProbe = match caps_program(&mut ebpf, "caps_kprobe") {
        Ok(program) => program,
        Err(detail) => return Capability::unavailable(name, format!("{pmu}; {detail}")),
    };
    if let Err(err) = program.load() {
        return Capability::unavailable(
            name,
            format!("{pmu}; load: {}", program_error_message(&err).text),
        );
    }
    match program.attach(func, 0) {
        Ok(link_id) => {
            let _ = program.detach(link_id);
            Capability::available(
                name,
                format!("{pmu}; kprobe program attached to {func} and detached"),
            )
        }
        Err(err) => Capability::unavailable(
            name,
            format!("{pmu}; attach: {}", program_error_message(&err).text),
        ),
    }
}

/// Whether an sk_reuseport program passes the verifier. The program is only
/// loaded, never attached to any socket or reuseport group.
pub fn check_sk_reuseport_load() -> Capability {
    let name = "sk_reuseport".to_owned();
    let mut ebpf = match open_caps() {
        Ok(ebpf) => ebpf,
        Err(err) => return Capability::unavailable(name, err.to_string()),
    };
    let program: &mut SkReuseport = match caps_program(&mut ebpf, "caps_reuseport") {
        Ok(program) => program,
        Err(detail) => return Capability::unavailable(name, detail),
    };
    match program.load() {
        Ok(()) => Capability::available(
            name,
            "sk_reuseport program loaded (not attached) and unloaded",
        ),
        Err(err) => {
            Capability::unavailable(name, format!("load: {}", program_error_message(&err).text))
        }
    }
}

/// Whether the verifier accepts the atomic exchange instructions (BPF_XCHG,
/// BPF_CMPXCHG and the BPF_FETCH forms: Linux 5.12, commit 5ffa25502b5a "bpf:
/// Add instructions for atomic_[cmp]xchg"). Loads a five-instruction socket
/// filter that exchanges a stack slot: EINVAL ("BPF_STX uses reserved
/// fields" / "BPF_XADD uses reserved fields") means refused. Err when the
/// load fails for another reason (no CAP_BPF, seccomp, ...), which says
/// nothing about the instruction set.
pub fn atomic_exchange_supported() -> Result<bool, String> {
    // struct bpf_insn: code, dst_reg:4 | src_reg:4 << 4, off, imm
    // (include/uapi/linux/bpf.h).
    fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
        let mut bytes = [0u8; 8];
        bytes[0] = code;
        bytes[1] = dst | (src << 4);
        bytes[2..4].copy_from_slice(&off.to_le_bytes());
        bytes[4..8].copy_from_slice(&imm.to_le_bytes());
        u64::from_le_bytes(bytes)
    }
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_PROG_TYPE_SOCKET_FILTER: u64 = 1;
    // BPF_ALU64|BPF_MOV|BPF_K, BPF_STX|BPF_MEM|BPF_DW, BPF_STX|BPF_ATOMIC|BPF_DW,
    // BPF_JMP|BPF_EXIT; imm BPF_XCHG = 0xe0 | BPF_FETCH.
    let insns = [
        insn(0xb7, 1, 0, 0, 0),
        insn(0x7b, 10, 1, -8, 0),
        insn(0xdb, 10, 1, -8, 0xe1),
        insn(0xb7, 0, 0, 0, 0),
        insn(0x95, 0, 0, 0, 0),
    ];
    let license = b"GPL\0";
    // union bpf_attr, BPF_PROG_LOAD: prog_type u32, insn_cnt u32, insns u64,
    // license u64, then fields left zero (the kernel requires zeroes past
    // what it knows).
    let mut attr = [0u64; 16];
    attr[0] = BPF_PROG_TYPE_SOCKET_FILTER | ((insns.len() as u64) << 32);
    attr[1] = insns.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    // SAFETY: bpf(2) reads `attr` (its size given) and the instructions and
    // license it points to, which outlive the call; it returns an fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr) as libc::c_uint,
        )
    };
    if fd >= 0 {
        // SAFETY: the fd was just returned by the kernel and is owned here.
        unsafe { libc::close(fd as libc::c_int) };
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINVAL) => Ok(false),
        _ => Err(format!("BPF_PROG_LOAD of the exchange check: {err}")),
    }
}

fn open_caps() -> Result<Ebpf, ProbeError> {
    loader::open_object(PROBE, OBJECT)
}

/// A program of the caps object, converted to its aya type.
fn caps_program<'a, T>(ebpf: &'a mut Ebpf, program: &str) -> Result<&'a mut T, String>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(program)
        .ok_or_else(|| format!("program {program} missing from the caps object"))?
        .try_into()
        .map_err(|err| format!("program {program}: {}", program_error_message(&err).text))
}

/// "irq:softirq_entry" -> "softirq_entry"; a bare event name is accepted.
fn tracepoint_event(name: &str) -> Option<&str> {
    let event = name.rsplit_once(':').map_or(name, |(_, event)| event);
    (!event.is_empty()).then_some(event)
}

fn kernel_release() -> String {
    if let Ok(release) = fs::read_to_string("/proc/sys/kernel/osrelease") {
        return release.trim().to_owned();
    }
    // SAFETY: uname fills a caller-provided struct of fixed-size arrays.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut uts) } != 0 {
        return String::new();
    }
    // SAFETY: the kernel NUL-terminates utsname fields.
    unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// The mount point of the first mount of filesystem type `fstype` in
/// /proc/self/mounts text (fields: device, mount point, type, ...).
fn mount_point_of(mounts: &str, fstype: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_device, mount_point, kind) = (fields.next()?, fields.next()?, fields.next()?);
        (kind == fstype).then(|| PathBuf::from(unescape_mount_path(mount_point)))
    })
}

/// Undoes the octal escapes (`\040` for space, ...) of fs/proc_namespace.c
/// mangle().
fn unescape_mount_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|digits| bytes[i] == b'\\' && digits.iter().all(|b| (b'0'..=b'7').contains(b)))
            .map(|digits| {
                digits
                    .iter()
                    .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'))
            })
            .and_then(|value| u8::try_from(value).ok());
        match octal {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Capability names by bit number (include/uapi/linux/capability.h, up to
/// CAP_CHECKPOINT_RESTORE = 40, Linux 5.9).
const CAP_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Decodes the CapEff hex mask of /proc/self/status into capability names,
/// in bit order; unknown bits read as "CAP_<bit>".
fn parse_effective_caps(status: &str) -> Vec<String> {
    let Some(mask) = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
    else {
        return Vec::new();
    };
    (0..64u32)
        .filter(|bit| mask & (1u64 << bit) != 0)
        .map(|bit| match CAP_NAMES.get(bit as usize) {
            Some(name) => (*name).to_owned(),
            None => format!("CAP_{bit}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_cap_eff_mask() {
        // CapEff of this lab's root shell: everything up to bit 40 except
        // CAP_SYS_RESOURCE (bit 24).
        let status = "Name:\tcat\nCapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\n";
        let caps = parse_effective_caps(status);
        assert_eq!(caps.len(), 40);
        assert!(caps.iter().any(|c| c == "CAP_BPF"));
        assert!(caps.iter().any(|c| c == "CAP_PERFMON"));
        assert!(!caps.iter().any(|c| c == "CAP_SYS_RESOURCE"));
        assert_eq!(caps[0], "CAP_CHOWN");
    }

    #[test]
    fn decodes_unknown_cap_bits_and_missing_line() {
        let status = "CapEff:\t0000060000001000\n";
        assert_eq!(
            parse_effective_caps(status),
            vec!["CAP_NET_ADMIN", "CAP_41", "CAP_42"]
        );
        assert!(parse_effective_caps("Name:\tx\n").is_empty());
        assert!(parse_effective_caps("CapEff:\tzz\n").is_empty());
    }

    #[test]
    fn finds_mount_points_by_type() {
        let mounts = "sysfs /sys sysfs rw 0 0\n\
                      bpf /sys/fs/bpf bpf rw,relatime 0 0\n\
                      nodev /mnt/my\\040tracing tracefs rw 0 0\n";
        assert_eq!(
            mount_point_of(mounts, "bpf"),
            Some(PathBuf::from("/sys/fs/bpf"))
        );
        assert_eq!(
            mount_point_of(mounts, "tracefs"),
            Some(PathBuf::from("/mnt/my tracing"))
        );
        assert_eq!(mount_point_of(mounts, "debugfs"), None);
    }

    #[test]
    fn splits_tracepoint_names() {
        assert_eq!(tracepoint_event("irq:softirq_entry"), Some("softirq_entry"));
        assert_eq!(tracepoint_event("softirq_entry"), Some("softirq_entry"));
        assert_eq!(tracepoint_event("irq:"), None);
    }
}
