//! Sources: one module per kernel source. Each offers a `read` that does the I/O over a
//! [`HostRoot`] and a pure `parse` over text or bytes. Sources know nothing of the model
//! or of sinks.
//!
//! Shared plumbing, used by every source that needs it rather than copied: [`netlink`]
//! opens blocking netlink sockets, [`genl`] is the generic-netlink client (family
//! lookup, requests, extended-ACK errors), [`ethtool_ioctl`] issues SIOCETHTOOL. The big
//! sources are folders split along their ways in (text, netlink, ioctl) with their tests
//! in a sibling `tests.rs`.

pub mod channels;
pub mod cpus;
pub mod ethtool_ioctl;
pub mod ethtool_rss;
pub mod ethtool_stats;
pub mod genl;
pub mod interrupts;
pub mod irq_affinity;
pub mod irq_map;
pub mod links;
pub mod netlink;
pub mod netns;
pub mod owners;
mod percpu_header;
pub mod proc_stat;
pub mod qstats;
pub mod sock_diag;
pub mod softirqs;
pub mod softnet;
pub mod sys_irq;
pub mod sysctls;
pub mod sysfs_net;
#[cfg(test)]
pub(crate) mod testns;
pub mod toeplitz;

use std::path::{Path, PathBuf};

use crate::error::{ParseError, SourceError};

/// Where the host's procfs and sysfs are mounted. DaemonSets mount the host's at
/// /host/proc and /host/sys; tests point these at fixture trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoot {
    pub proc: PathBuf,
    pub sys: PathBuf,
}

impl Default for HostRoot {
    fn default() -> Self {
        Self {
            proc: PathBuf::from("/proc"),
            sys: PathBuf::from("/sys"),
        }
    }
}

impl HostRoot {
    pub fn new(proc: impl Into<PathBuf>, sys: impl Into<PathBuf>) -> Self {
        Self {
            proc: proc.into(),
            sys: sys.into(),
        }
    }

    /// True when the roots are the running kernel's own: only then do live-kernel
    /// sources (netlink, ioctl, eBPF) describe the same host as the files. That is
    /// /proc and /sys, or any other mount of them (a DaemonSet's /host/proc, /host/sys):
    /// `proc` must be a procfs and `sys` a sysfs by statfs(2) f_type, which a copied
    /// tree (fixture, sosreport) never is and which can only be this kernel's (neither
    /// can be mounted from another kernel); and the boot_id read through `proc` must
    /// equal the one of our own /proc (the random id of this boot, the same in every
    /// namespace), so a procfs that is readable but not answering as this boot never
    /// passes.
    pub fn is_live(&self) -> bool {
        if self.proc == Path::new("/proc") && self.sys == Path::new("/sys") {
            return true;
        }
        const BOOT_ID: &str = "sys/kernel/random/boot_id";
        let boot_id = |proc: &Path| std::fs::read_to_string(proc.join(BOOT_ID)).ok();
        #[allow(clippy::unnecessary_cast)]
        let (procfs, sysfs) = (libc::PROC_SUPER_MAGIC as i64, libc::SYSFS_MAGIC as i64);
        fs_magic(&self.proc) == Some(procfs)
            && fs_magic(&self.sys) == Some(sysfs)
            && boot_id(&self.proc).is_some_and(|id| Some(id) == boot_id(Path::new("/proc")))
    }

    pub fn proc_path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.proc.join(rel)
    }

    pub fn sys_path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.sys.join(rel)
    }

    /// Read a whole file below the procfs root.
    pub fn read_proc(&self, rel: impl AsRef<Path>) -> Result<String, SourceError> {
        read_text(&self.proc_path(rel))
    }

    /// Read a whole file below the sysfs root.
    pub fn read_sys(&self, rel: impl AsRef<Path>) -> Result<String, SourceError> {
        read_text(&self.sys_path(rel))
    }
}

/// statfs(2) f_type of the filesystem holding `path`; None when it cannot be asked.
/// (Widened to i64: f_type and the magic constants have different types per libc.)
#[allow(clippy::unnecessary_cast)]
fn fs_magic(path: &Path) -> Option<i64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: a NUL-terminated path and a zeroed statfs the kernel fills.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statfs(c_path.as_ptr(), &mut st) } == 0).then_some(st.f_type as i64)
}

/// Read a text file; the error names the path.
pub fn read_text(path: &Path) -> Result<String, SourceError> {
    std::fs::read_to_string(path).map_err(|e| SourceError::io(path, e))
}

/// Read a file and hand it to a pure parser, naming the path in any error.
pub fn read_parsed<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, ParseError>,
) -> Result<T, SourceError> {
    let text = read_text(path)?;
    parse(&text).map_err(|e| SourceError::parse(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_roots_are_recognised_by_filesystem_and_boot_id() {
        assert!(HostRoot::default().is_live());
        // Another path to the same mounts (as /host/proc is in a pod) is live too.
        assert!(HostRoot::new("/proc/self/..", "/sys/kernel/..").is_live());
        // A copied tree is not, even holding this boot's boot_id (a sosreport of this
        // host taken during this boot).
        let dir = std::env::temp_dir().join(format!("skewscope-live-{}", std::process::id()));
        let random = dir.join("proc/sys/kernel/random");
        std::fs::create_dir_all(&random).unwrap();
        std::fs::create_dir_all(dir.join("sys/class/net")).unwrap();
        let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
        std::fs::write(random.join("boot_id"), id).unwrap();
        let copy = HostRoot::new(dir.join("proc"), dir.join("sys"));
        assert!(!copy.is_live());
        // Live proc with a copied sys (or the other way round) is not live either.
        assert!(!HostRoot::new("/proc", dir.join("sys")).is_live());
        assert!(!HostRoot::new(dir.join("proc"), "/sys").is_live());
        assert!(!HostRoot::new("/sys", "/proc").is_live());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
