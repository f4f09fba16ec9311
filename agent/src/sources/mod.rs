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
pub mod sysctls;
pub mod sysfs_net;
#[cfg(test)]
pub(crate) mod testns;

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
    /// sources (netlink, ioctl, eBPF) describe the same host as the files.
    pub fn is_live(&self) -> bool {
        self.proc == Path::new("/proc") && self.sys == Path::new("/sys")
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
