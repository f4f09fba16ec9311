//! Live capability checks on the running kernel. Expectations that depend on
//! the kernel are tied to an independent oracle where one exists (capget(2),
//! the kprobe PMU directory, statfs magic). fentry has none: kernels and
//! lockdowns differ (this lab's refuses BPF trampolines with EPERM), so either
//! outcome passes as long as the detail names it; SKEWSCOPE_EXPECT_FENTRY=1
//! or =0 pins the outcome where it is known (e.g. a VM guest of a kernel matrix).

mod common;

use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use skewscope_probes::{
    check_fentry, check_kprobe, check_raw_tracepoints, check_sk_reuseport_load, kernel_facts,
    PROBE_TRACEPOINTS,
};

/// Effective capability mask from capget(2) (_LINUX_CAPABILITY_VERSION_3).
fn capget_effective() -> u64 {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: header and a 2-element data array as capget(2) v3 requires.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    assert_eq!(rc, 0, "capget: {}", std::io::Error::last_os_error());
    u64::from(data[0].effective) | (u64::from(data[1].effective) << 32)
}

fn statfs_magic(path: &Path) -> i64 {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid NUL-terminated path and a zeroed out-struct.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statfs(c_path.as_ptr(), &mut buf) }, 0);
    buf.f_type as i64
}

/// Polls until no loaded program carries `name` (program ids are released
/// at close, but give the kernel a moment).
fn assert_no_program_named(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = aya::programs::loaded_programs()
            .filter_map(Result::ok)
            .filter(|p| p.name_as_str() == Some(name))
            .count();
        if left == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{left} program(s) named {name} left behind"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kernel_facts_match_independent_sources() {
    let facts = kernel_facts();
    let uname = Command::new("uname").arg("-r").output().expect("uname -r");
    assert_eq!(facts.release, String::from_utf8_lossy(&uname.stdout).trim());
    // skewscope's CO-RE probes need CONFIG_DEBUG_INFO_BTF; the lab has it.
    assert!(facts.btf, "no /sys/kernel/btf/vmlinux");

    let mask = capget_effective();
    assert_eq!(facts.effective_caps.len() as u32, mask.count_ones());
    let has = |name: &str| facts.effective_caps.iter().any(|c| c == name);
    assert_eq!(has("CAP_BPF"), mask & (1 << 39) != 0);
    assert_eq!(has("CAP_NET_ADMIN"), mask & (1 << 12) != 0);
    assert_eq!(has("CAP_SYS_ADMIN"), mask & (1 << 21) != 0);

    assert_eq!(
        facts.kprobe_pmu,
        Path::new("/sys/bus/event_source/devices/kprobe/type").exists()
    );
    if let Some(bpffs) = &facts.bpffs {
        assert_eq!(
            statfs_magic(bpffs),
            0xcafe_4a11,
            "BPF_FS_MAGIC at {bpffs:?}"
        );
    }
    if let Some(tracefs) = &facts.tracefs {
        assert_eq!(
            statfs_magic(tracefs),
            0x7472_6163,
            "TRACEFS_MAGIC at {tracefs:?}"
        );
    }
    assert_eq!(
        facts.bpf_stats_enabled.is_some(),
        Path::new("/proc/sys/kernel/bpf_stats_enabled").exists()
    );
}

#[test]
fn raw_tracepoints_used_by_probes_attach() {
    if !common::can_run_privileged("raw_tracepoints_used_by_probes_attach") {
        return;
    }
    let caps = check_raw_tracepoints(PROBE_TRACEPOINTS);
    assert_eq!(caps.len(), PROBE_TRACEPOINTS.len());
    for (cap, name) in caps.iter().zip(PROBE_TRACEPOINTS) {
        assert_eq!(cap.name, format!("raw_tp/{name}"));
        assert!(cap.available, "{}: {}", cap.name, cap.detail);
    }
    assert_no_program_named("caps_raw_tp");
}

#[test]
fn unknown_raw_tracepoint_is_unavailable_with_reason() {
    if !common::can_run_privileged("unknown_raw_tracepoint_is_unavailable_with_reason") {
        return;
    }
    let caps = check_raw_tracepoints(&[
        "irq:skewscope_no_such_tracepoint",
        "irq:softirq_entry",
        "irq:",
    ]);
    assert!(!caps[0].available);
    assert!(caps[0].detail.contains("ENOENT"), "{}", caps[0].detail);
    // A bad name does not poison the others.
    assert!(caps[1].available, "{}", caps[1].detail);
    assert!(!caps[2].available);
    assert!(caps[2].detail.contains("malformed"), "{}", caps[2].detail);
}

/// Whether `detail` names a kernel error the way the probes render one: an
/// errno name such as EPERM, ENOTSUPP or EINVAL.
fn names_an_errno(detail: &str) -> bool {
    detail
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| {
            word.len() >= 4 && word.starts_with('E') && word.chars().all(|c| c.is_ascii_uppercase())
        })
}

#[test]
fn fentry_outcome_is_named() {
    if !common::can_run_privileged("fentry_outcome_is_named") {
        return;
    }
    let cap = check_fentry("reuseport_select_sock");
    assert_eq!(cap.name, "fentry/reuseport_select_sock");
    match std::env::var("SKEWSCOPE_EXPECT_FENTRY").as_deref() {
        Ok("1") => assert!(cap.available, "{}", cap.detail),
        Ok("0") => assert!(!cap.available, "{}", cap.detail),
        _ => {}
    }
    if cap.available {
        assert!(
            cap.detail.contains("attached to reuseport_select_sock"),
            "{}",
            cap.detail
        );
    } else if !cap.detail.starts_with("kernel BTF unavailable") {
        // Refused at load or attach: which step, and the kernel's reason.
        assert!(
            cap.detail.starts_with("load: ") || cap.detail.starts_with("attach: "),
            "{}",
            cap.detail
        );
        assert!(names_an_errno(&cap.detail), "{}", cap.detail);
    }
    eprintln!("fentry/reuseport_select_sock here: {}", cap.detail);
    assert_no_program_named("caps_fentry");
}

#[test]
fn fentry_on_unknown_function_names_it() {
    if !common::can_run_privileged("fentry_on_unknown_function_names_it") {
        return;
    }
    let cap = check_fentry("skewscope_no_such_function");
    assert!(!cap.available);
    assert!(
        cap.detail.contains("skewscope_no_such_function"),
        "{}",
        cap.detail
    );
}

#[test]
fn kprobe_unavailable_without_kprobe_pmu() {
    if !common::can_run_privileged("kprobe_unavailable_without_kprobe_pmu") {
        return;
    }
    let cap = check_kprobe();
    assert_eq!(cap.name, "kprobe/reuseport_select_sock");
    if Path::new("/sys/bus/event_source/devices/kprobe").exists() {
        // A kernel with kprobes: the check must at least have got to attach.
        assert!(
            cap.available || cap.detail.contains("attach"),
            "{}",
            cap.detail
        );
    } else {
        assert!(!cap.available, "{}", cap.detail);
        assert!(cap.detail.contains("PMU absent"), "{}", cap.detail);
    }
    assert_no_program_named("caps_kprobe");
}

#[test]
fn sk_reuseport_loads_and_leaves_nothing() {
    if !common::can_run_privileged("sk_reuseport_loads_and_leaves_nothing") {
        return;
    }
    let cap = check_sk_reuseport_load();
    assert_eq!(cap.name, "sk_reuseport");
    assert!(cap.available, "{}", cap.detail);
    assert_no_program_named("caps_reuseport");
}
