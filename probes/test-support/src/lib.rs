//! Test-only helpers shared by the tests of `skewscope`, `skewscope-probes`
//! and `skewscope-shadow` (a dev-dependency of each; it knows none of them).
//!
//! - [`Needs`]: the one gate of every test that needs something this host
//!   may lack (root, capabilities, BPF objects, a tool, CPUs). A missing
//!   prerequisite skips the test with the reason on stderr; with
//!   `SKEWSCOPE_REQUIRE_PRIVILEGED=1` (set by `make test` as root, and by CI)
//!   it fails it instead, so a test never passes by skipping where it can run.
//! - [`netns`]: private network namespaces and veth pairs made with
//!   iproute2, removed on drop, and a way to run code inside one.
//! - [`sockets`]: SO_REUSEPORT groups.

pub mod netns;
pub mod sockets;

use std::fmt::Display;
use std::process::Command;

/// The environment variable that turns a skip into a failure when it is `1`.
pub const REQUIRE_PRIVILEGED: &str = "SKEWSCOPE_REQUIRE_PRIVILEGED";

/// Whether skipping is a failure here (`SKEWSCOPE_REQUIRE_PRIVILEGED=1`;
/// unset or any other value, e.g. the empty one `make test` exports for a
/// non-root user, is not).
pub fn skip_is_failure() -> bool {
    std::env::var_os(REQUIRE_PRIVILEGED).is_some_and(|v| v == "1")
}

/// `test` cannot run because of `reason`: says so and returns false, or
/// panics under `SKEWSCOPE_REQUIRE_PRIVILEGED=1`.
pub fn cannot_run(test: &str, reason: impl Display) -> bool {
    if skip_is_failure() {
        panic!("{test}: cannot run: {reason}, and {REQUIRE_PRIVILEGED}=1");
    }
    eprintln!("skipping {test}: {reason}");
    false
}

/// What a test needs, checked in the order given; the first missing thing
/// is the reason. Use as `if !Needs::new("name").root().tool("ip").met() { return; }`.
#[must_use = "call .met() to apply the gate"]
pub struct Needs {
    test: String,
    /// A privilege or setup prerequisite that is missing.
    missing: Option<String>,
    /// A property of the machine the test cannot create (CPU count).
    machine: Option<String>,
}

impl Needs {
    pub fn new(test: &str) -> Self {
        Self {
            test: test.to_owned(),
            missing: None,
            machine: None,
        }
    }

    /// `ok`, or else `reason` is why the test cannot run (a privilege, a
    /// build product, a tool: skip or fail).
    pub fn that(mut self, ok: bool, reason: impl Display) -> Self {
        if !ok && self.missing.is_none() && self.machine.is_none() {
            self.missing = Some(reason.to_string());
        }
        self
    }

    /// Effective uid 0 (netns, setns, sock_diag of every user, eBPF).
    pub fn root(self) -> Self {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        self.that(root, "needs root")
    }

    /// Every capability of one of `sets` in the effective set, e.g.
    /// `&[&["CAP_SYS_ADMIN"], &["CAP_BPF", "CAP_PERFMON"]]`.
    pub fn caps_any_of(self, sets: &[&[&str]]) -> Self {
        let eff = effective_caps();
        let ok = eff.is_some_and(|eff| {
            sets.iter().any(|set| {
                set.iter()
                    .all(|name| cap_bit(name).is_some_and(|bit| eff & (1 << bit) != 0))
            })
        });
        let wanted: Vec<String> = sets.iter().map(|set| set.join(" + ")).collect();
        self.that(ok, format!("needs {} (run as root)", wanted.join(" or ")))
    }

    /// `tool` runs (`tool args...` exits 0), e.g. `("ip", &["-V"])`.
    pub fn tool(self, tool: &str, args: &[&str]) -> Self {
        let runs = Command::new(tool)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success());
        self.that(runs, format!("needs the `{tool}` command"))
    }

    /// At least `n` CPUs this thread may run on. A property of the machine,
    /// not a privilege: it skips with the reason even under
    /// `SKEWSCOPE_REQUIRE_PRIVILEGED=1` (a test cannot make CPUs).
    pub fn cpus(mut self, n: usize) -> Self {
        let have = std::thread::available_parallelism().map_or(1, |p| p.get());
        if have < n && self.missing.is_none() && self.machine.is_none() {
            self.machine = Some(format!(
                "needs {n} CPUs, this machine gives it {have} (a property of the machine, not a privilege: not a failure under {REQUIRE_PRIVILEGED}=1)"
            ));
        }
        self
    }

    /// A kernel with IPv6 (not booted with ipv6.disable=1): a property of the
    /// machine, like [`Needs::cpus`]. IPv6 on lo is the test's own business:
    /// [`netns::Netns::with_ipv6`] switches it on in a namespace of its own.
    pub fn ipv6(mut self) -> Self {
        let has = std::path::Path::new("/proc/sys/net/ipv6").exists();
        if !has && self.missing.is_none() && self.machine.is_none() {
            self.machine = Some(format!(
                "needs a kernel with IPv6, this one has none (ipv6.disable=1?; a property of the machine, not a privilege: not a failure under {REQUIRE_PRIVILEGED}=1)"
            ));
        }
        self
    }

    /// Whether the test can run; false after saying why, or a panic when
    /// a missing privilege is required (see [`cannot_run`]).
    pub fn met(self) -> bool {
        if let Some(reason) = self.missing {
            return cannot_run(&self.test, reason);
        }
        if let Some(reason) = self.machine {
            eprintln!("skipping {}: {reason}", self.test);
            return false;
        }
        true
    }
}

/// The CapEff mask of this process (/proc/self/status).
fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Bit of a capability name (include/uapi/linux/capability.h); only the
/// ones skewscope's tests ask for.
fn cap_bit(name: &str) -> Option<u32> {
    Some(match name {
        "CAP_NET_ADMIN" => 12,
        "CAP_NET_RAW" => 13,
        "CAP_SYS_PTRACE" => 19,
        "CAP_SYS_ADMIN" => 21,
        "CAP_PERFMON" => 38,
        "CAP_BPF" => 39,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_missing_prerequisite_is_the_reason() {
        let needs = Needs::new("t")
            .that(true, "fine")
            .that(false, "first")
            .cpus(usize::MAX)
            .that(false, "second");
        assert_eq!(needs.missing.as_deref(), Some("first"));
        assert_eq!(needs.machine, None);
    }

    #[test]
    fn too_few_cpus_is_a_machine_property() {
        let needs = Needs::new("t").cpus(usize::MAX).that(false, "later");
        assert_eq!(needs.missing, None);
        assert!(needs.machine.unwrap().contains("property of the machine"));
        // A machine property never panics, whatever the environment says.
        assert!(!Needs::new("t").cpus(usize::MAX).met());
        assert!(Needs::new("t").cpus(1).met());
    }

    #[test]
    fn capability_names_map_to_their_bits() {
        assert_eq!(cap_bit("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(cap_bit("CAP_BPF"), Some(39));
        assert_eq!(cap_bit("CAP_NOPE"), None);
        // An unknown name is never satisfied.
        let needs = Needs::new("t").caps_any_of(&[&["CAP_NOPE"]]);
        assert!(needs.missing.unwrap().contains("CAP_NOPE"));
    }
}
