use super::*;
use crate::sources::interrupts;
use crate::sources::irq_map::{map_queue_irqs, read_hints};
use proptest::prelude::*;
use std::path::PathBuf;

fn roots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/roots")
}

fn sysirq_root() -> HostRoot {
    let r = roots().join("i40e-1152cpu-sysirq");
    HostRoot::new(r.join("proc"), r.join("sys"))
}

const I40E_PORTS: [&str; 4] = ["enp195s0f1", "enp195s0f2", "enp195s0f3", "eth0"];

#[test]
fn per_cpu_count_parses_one_value_per_possible_cpu() {
    assert_eq!(
        parse_per_cpu_count("0,7,4294967295\n", 3).unwrap(),
        vec![0, 7, 4294967295]
    );
    assert_eq!(parse_per_cpu_count("12\n", 1).unwrap(), vec![12]);
}

#[test]
fn per_cpu_count_cut_at_a_page_is_truncated_not_garbage() {
    // No final newline: scnprintf stopped at PAGE_SIZE mid-number.
    let e = parse_per_cpu_count("1,2,3", 3).unwrap_err();
    assert!(e.msg.starts_with("truncated"), "{}", e.msg);
    // The newline fitted but not every CPU's count.
    let e = parse_per_cpu_count("1,2\n", 3).unwrap_err();
    assert!(e.msg.starts_with("truncated: 2 counts for 3"), "{}", e.msg);
    let e = parse_per_cpu_count("1,2,3,4\n", 3).unwrap_err();
    assert!(e.msg.contains("more than 3"), "{}", e.msg);
    let e = parse_per_cpu_count("1,x,3\n", 3).unwrap_err();
    assert!(e.msg.contains("count 1 \"x\""), "{}", e.msg);
    assert!(parse_per_cpu_count("\n", 2).is_err());
    assert!(parse_per_cpu_count("1,,3\n", 3).is_err());
    assert!(parse_per_cpu_count("1,2,\n", 3).is_err());
    let e = parse_per_cpu_count("1,18446744073709551616,3\n", 3).unwrap_err();
    assert!(
        e.msg.contains("count 1 \"18446744073709551616\""),
        "{}",
        e.msg
    );
    let e = parse_per_cpu_count("1,2,3x\n", 3).unwrap_err();
    assert!(e.msg.contains("count 2 \"3x\""), "{}", e.msg);
    assert_eq!(
        parse_per_cpu_count("18446744073709551615\n", 1).unwrap(),
        vec![u64::MAX]
    );
}

#[test]
fn actions_split_on_bare_commas() {
    assert_eq!(
        parse_actions("i40e-eth0-TxRx-0\n"),
        vec!["i40e-eth0-TxRx-0"]
    );
    assert_eq!(
        parse_actions("PCIe PME,pciehp\n"),
        vec!["PCIe PME", "pciehp"]
    );
    assert!(parse_actions("\n").is_empty());
}

/// The model's input both ways over the same capture: the queue map and every count of
/// every mapped IRQ are equal, and the sysfs way read only the queue IRQs.
#[test]
fn both_ways_give_the_same_queue_irqs_and_counts() {
    let root = sysirq_root();
    assert!(available(&root));
    let proc_ints = interrupts::read(&root).unwrap();
    let (sys_ints, cost) = read_counted(&root, &[]).unwrap();
    assert_eq!(
        sys_ints.cpus, proc_ints.cpus,
        "all 1152 CPUs are online and possible"
    );
    let mut mapped = 0;
    for dev in I40E_PORTS {
        let hints = read_hints(&root, dev);
        assert_eq!(hints.msi_irqs.len(), 96, "{dev}: misc, 94 TxRx, fdir");
        let from_proc = map_queue_irqs(&proc_ints, std::slice::from_ref(&hints));
        let from_sys = map_queue_irqs(&sys_ints, std::slice::from_ref(&hints));
        assert_eq!(from_proc.len(), 94, "{dev}");
        assert_eq!(from_sys, from_proc, "{dev}");
        for q in &from_proc {
            let (a, b) = (proc_ints.get(q.irq).unwrap(), sys_ints.get(q.irq).unwrap());
            assert_eq!(a.counts, b.counts, "IRQ {}", q.irq);
            assert_eq!(a.actions, b.actions, "IRQ {}", q.irq);
        }
        mapped += from_proc.len();
    }
    // Only queue lines: misc and fdir cost an `actions` read, no counts.
    assert_eq!(sys_ints.lines.len(), mapped);
    assert_eq!(cost.files, 1 + 4 * 96 + mapped);
    let proc_bytes = std::fs::metadata(root.proc_path("interrupts"))
        .unwrap()
        .len() as usize;
    assert!(
        cost.bytes * 10 < proc_bytes,
        "{} bytes vs {proc_bytes}",
        cost.bytes
    );
}

#[test]
fn device_filter_reads_only_that_device() {
    let (ints, _) = read_counted(&sysirq_root(), &["eth0".to_string()]).unwrap();
    assert_eq!(ints.lines.len(), 94);
    assert!(ints
        .lines
        .iter()
        .all(|l| l.actions[0].starts_with("i40e-eth0-TxRx-")));
}

/// A scratch root: one netdev `eth7` on PCI function 0000:01:00.0, IRQs 30 (a queue), 31
/// (not a network IRQ) and 32 (a queue of no device here), 2 possible CPUs.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str, msi: bool, count_30: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("skewscope-sysirq-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let sys = dir.join("sys");
        let pci = sys.join("devices/pci0000:00/0000:01:00.0");
        std::fs::create_dir_all(pci.join("net/eth7")).unwrap();
        std::fs::create_dir_all(sys.join("class/net")).unwrap();
        std::os::unix::fs::symlink("../../../0000:01:00.0", pci.join("net/eth7/device")).unwrap();
        std::os::unix::fs::symlink(
            "../../devices/pci0000:00/0000:01:00.0/net/eth7",
            sys.join("class/net/eth7"),
        )
        .unwrap();
        if msi {
            std::fs::create_dir_all(pci.join("msi_irqs")).unwrap();
            std::fs::write(pci.join("msi_irqs/30"), "msix\n").unwrap();
        }
        std::fs::create_dir_all(sys.join("devices/system/cpu")).unwrap();
        std::fs::write(sys.join("devices/system/cpu/possible"), "0-1\n").unwrap();
        for (irq, actions, counts) in [
            (30, "eth7-TxRx-0", count_30),
            (31, "ahci[0000:00:1f.2]", "5,5\n"),
            (32, "eth9-TxRx-0", "1,1\n"),
        ] {
            let d = sys.join(format!("kernel/irq/{irq}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("actions"), format!("{actions}\n")).unwrap();
            std::fs::write(d.join("per_cpu_count"), counts).unwrap();
        }
        std::fs::create_dir_all(dir.join("proc")).unwrap();
        Self(dir)
    }

    fn root(&self) -> HostRoot {
        HostRoot::new(self.0.join("proc"), self.0.join("sys"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn msi_listing_decides_which_irqs_are_read() {
    let s = Scratch::new("msi", true, "3,4\n");
    let (ints, cost) = read_counted(&s.root(), &[]).unwrap();
    assert_eq!(ints.cpus, vec![0, 1]);
    assert_eq!(ints.lines.len(), 1);
    assert_eq!(ints.lines[0].irq, IrqId::Number(30));
    assert_eq!(ints.lines[0].counts, vec![3, 4]);
    assert_eq!(
        cost.files, 3,
        "possible, actions and per_cpu_count of IRQ 30"
    );
}

#[test]
fn without_msi_irqs_every_action_is_looked_at() {
    let s = Scratch::new("names", false, "3,4\n");
    let ints = read(&s.root(), &[]).unwrap();
    // Queue-looking lines are kept, as irq_map would see them in /proc/interrupts; the
    // ahci line is not read further.
    let irqs: Vec<_> = ints.lines.iter().map(|l| l.number().unwrap()).collect();
    assert_eq!(irqs, vec![30, 32]);
    let hints = read_hints(&s.root(), "eth7");
    let q = map_queue_irqs(&ints, std::slice::from_ref(&hints));
    assert_eq!(q.len(), 1);
    assert_eq!((q[0].irq, q[0].queue), (30, 0));
}

#[test]
fn a_page_cut_short_is_unsupported_so_the_cycle_falls_back() {
    let s = Scratch::new("cut", true, "3");
    match read(&s.root(), &[]) {
        Err(SourceError::Unsupported { what, why }) => {
            assert!(what.ends_with("kernel/irq/30/per_cpu_count"), "{what}");
            assert!(why.starts_with("truncated"), "{why}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn roots_without_the_tree_or_with_few_cpus_are_not_offered() {
    let r = roots().join("i40e-1152cpu");
    let no_tree = HostRoot::new(r.join("proc"), r.join("sys"));
    assert!(!available(&no_tree) && !preferred(&no_tree));
    assert!(preferred(&sysirq_root()), "1152 possible CPUs");
    let small = Scratch::new("small", true, "3,4\n");
    assert!(available(&small.root()));
    assert!(
        !preferred(&small.root()),
        "2 possible CPUs: /proc/interrupts is small"
    );
}

proptest! {
    #[test]
    fn per_cpu_count_never_panics(s in "[0-9,\n]{0,40}", n in 0usize..8) {
        let _ = parse_per_cpu_count(&s, n);
    }
}
