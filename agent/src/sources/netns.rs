//! Network namespaces: which exist, and a way to run code inside one.
//!
//! Namespaces are found from `PROC/*/ns/net` (every process's) plus the bind mounts under
//! /run/netns that `ip netns add` creates (a namespace with no process in it lives on
//! there). A namespace is identified by the inode of its nsfs file, which `stat` (not
//! `lstat`: the proc entry is a magic link) returns and `ip netns identify`, `lsns` and
//! `ss -N` agree on.
//!
//! Netlink and socket requests act in the network namespace of the *thread* that opens
//! the socket, so [`in_netns`] moves a dedicated short-lived thread into the namespace
//! with setns(2) and leaves the caller's thread where it was.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::HostRoot;
use crate::error::SourceError;

/// One network namespace and a handle to enter it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetnsRef {
    /// Inode of the namespace's nsfs file: its identity.
    pub inode: u64,
    /// A file usable with setns(2): `PROC/PID/ns/net` or `/run/netns/NAME`.
    pub path: PathBuf,
    /// The process the path goes through; `None` for a /run/netns bind mount.
    pub pid: Option<u32>,
}

/// Where `ip netns add` bind-mounts named namespaces (iproute2 NETNS_RUN_DIR).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Every network namespace visible through `root`, each once (by inode): the host's own
/// first (`/proc/self/ns/net`, or `PROC/1/ns/net` when `root.proc` is not /proc), then
/// those of processes by ascending pid, then named ones under /run/netns that no
/// process is in, by name.
///
/// Processes vanish while the scan runs (ENOENT/ESRCH): they are skipped silently.
/// Processes whose namespace we may not inspect (EACCES without CAP_SYS_PTRACE) are
/// skipped and logged at debug level. Fails only when the host's own namespace or the
/// process list cannot be read.
pub fn list_netns(root: &HostRoot) -> Result<Vec<NetnsRef>, SourceError> {
    let own = || (PathBuf::from("/proc/self/ns/net"), std::process::id());
    let (mut host_path, mut host_pid) = if root.proc == Path::new("/proc") {
        own()
    } else {
        (root.proc_path("1/ns/net"), 1)
    };
    let host_meta = match std::fs::metadata(&host_path) {
        Ok(meta) => meta,
        // PID 1 of a mounted host procfs can be closed even to CAP_SYS_PTRACE (an init in
        // another user namespace, an LSM). Start from our own namespace then (the host's
        // under hostNetwork); the loop below still lists every process's.
        Err(e) if host_pid == 1 && e.kind() == io::ErrorKind::PermissionDenied => {
            log::debug!(
                "{}: {e}; starting from our own namespace",
                host_path.display()
            );
            (host_path, host_pid) = own();
            std::fs::metadata(&host_path).map_err(|e| SourceError::io(&host_path, e))?
        }
        Err(e) => return Err(SourceError::io(&host_path, e)),
    };
    // Every nsfs file lives on the one nsfs superblock: a /run/netns entry on another
    // device is a stale plain file (a failed or half-removed `ip netns add`), not a
    // namespace.
    let nsfs_dev = host_meta.dev();
    let mut seen = std::collections::HashSet::new();
    seen.insert(host_meta.ino());
    let mut out = vec![NetnsRef {
        inode: host_meta.ino(),
        path: host_path,
        pid: Some(host_pid),
    }];

    let entries = std::fs::read_dir(&root.proc).map_err(|e| SourceError::io(&root.proc, e))?;
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let path = root.proc_path(format!("{pid}/ns/net"));
        match std::fs::metadata(&path) {
            Ok(meta) => {
                if seen.insert(meta.ino()) {
                    out.push(NetnsRef {
                        inode: meta.ino(),
                        path,
                        pid: Some(pid),
                    });
                }
            }
            Err(e) if vanished(&e) => {}
            Err(e) => log::debug!("{}: skipped: {e}", path.display()),
        }
    }

    match std::fs::read_dir(NETNS_RUN_DIR) {
        Ok(entries) => {
            let mut named: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
            named.sort();
            for path in named {
                match std::fs::metadata(&path) {
                    Ok(meta) if meta.dev() == nsfs_dev => {
                        if seen.insert(meta.ino()) {
                            out.push(NetnsRef {
                                inode: meta.ino(),
                                path,
                                pid: None,
                            });
                        }
                    }
                    Ok(_) => log::debug!("{}: not an nsfs file, skipped", path.display()),
                    Err(e) if vanished(&e) => {}
                    Err(e) => log::debug!("{}: skipped: {e}", path.display()),
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => log::debug!("{NETNS_RUN_DIR}: skipped: {e}"),
    }
    Ok(out)
}

/// The process (or namespace) went away between listing and use.
fn vanished(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// Inode of the calling *thread's* network namespace (/proc/thread-self, Linux 3.17;
/// /proc/self would name the main thread's, which differs inside [`in_netns`]).
pub fn current_netns_inode() -> io::Result<u64> {
    match std::fs::metadata("/proc/thread-self/ns/net") {
        Ok(meta) => Ok(meta.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            let path = format!("/proc/self/task/{tid}/ns/net");
            std::fs::metadata(&path)
                .map(|m| m.ino())
                .map_err(|e| named(Path::new(&path), "stat", e))
        }
        Err(e) => Err(named(Path::new("/proc/thread-self/ns/net"), "stat", e)),
    }
}

/// Run `f` on a dedicated short-lived thread that first joins the network namespace
/// `ns` with setns(2, CLONE_NEWNET). The calling thread's namespace is never changed.
/// The namespace file is opened on the calling thread (so a /proc/thread-self path
/// means the caller's). Errors name the path; a panic in `f` is resumed here.
pub fn in_netns<T: Send>(ns: &Path, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    let file = File::open(ns).map_err(|e| named(ns, "open", e))?;
    std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name("skewscope-netns".into())
            .spawn_scoped(s, move || {
                // SAFETY: setns on an fd we own; it changes only this thread, which ends
                // when `f` returns.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    return Err(io::Error::last_os_error());
                }
                drop(file);
                Ok(f())
            })
            .map_err(|e| named(ns, "spawn thread for", e))?;
        match worker.join() {
            Ok(result) => result.map_err(|e| named(ns, "setns", e)),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

fn named(path: &Path, op: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{op} {}: {e}", path.display()))
}

/// Test-only helpers shared by the socket-source tests.
#[cfg(test)]
pub(crate) mod testutil {
    /// Whether a privileged live test can run (root: CAP_NET_ADMIN and CAP_SYS_ADMIN for
    /// netns and setns; `ip` when `needs_ip`), through the workspace's one gate: says why
    /// when it cannot; with SKEWSCOPE_REQUIRE_PRIVILEGED=1 not being able to run is a
    /// failure.
    pub(crate) fn privileged(test: &str, needs_ip: bool) -> bool {
        let needs = skewscope_test_support::Needs::new(test).root();
        if needs_ip {
            needs.tool("ip", &["-V"])
        } else {
            needs
        }
        .met()
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::privileged;
    use super::*;
    use crate::sources::testns::Netns;

    fn stat_ino(path: &str) -> u64 {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .ino()
    }

    /// The host namespace comes first, every entry is unique, and a namespace made
    /// with `ip netns add` (no process inside) is listed through /run/netns.
    #[test]
    fn live_list_includes_host_first_and_named_netns() {
        if !privileged("live_list_includes_host_first_and_named_netns", true) {
            return;
        }
        let ns = Netns::new("nslist");
        let named_path = format!("{NETNS_RUN_DIR}/{}", ns.name);
        let named_ino = stat_ino(&named_path);

        let list = list_netns(&HostRoot::default()).expect("list_netns");
        assert_eq!(list[0].inode, stat_ino("/proc/self/ns/net"));
        assert_eq!(list[0].path, Path::new("/proc/self/ns/net"));
        assert_eq!(list[0].pid, Some(std::process::id()));
        let mut inodes: Vec<u64> = list.iter().map(|n| n.inode).collect();
        inodes.sort_unstable();
        inodes.dedup();
        assert_eq!(inodes.len(), list.len(), "deduplicated by inode: {list:?}");
        let entry = list
            .iter()
            .find(|n| n.inode == named_ino)
            .unwrap_or_else(|| panic!("{named_path} (ino {named_ino}) missing: {list:?}"));
        assert_eq!(entry.path, Path::new(&named_path));
        assert_eq!(entry.pid, None);
    }

    /// in_netns runs on a thread inside the namespace; the caller's stays put.
    #[test]
    fn live_in_netns_switches_only_the_worker_thread() {
        if !privileged("live_in_netns_switches_only_the_worker_thread", true) {
            return;
        }
        let ns = Netns::new("nsenter");
        let path = PathBuf::from(format!("{NETNS_RUN_DIR}/{}", ns.name));
        let before = current_netns_inode().unwrap();
        let inside = in_netns(&path, || current_netns_inode().unwrap()).expect("in_netns");
        assert_eq!(inside, stat_ino(path.to_str().unwrap()));
        assert_ne!(inside, before);
        assert_eq!(current_netns_inode().unwrap(), before, "caller unchanged");
        // A socket made inside belongs to that namespace: SIOCGSKNS (Linux 4.9) hands
        // back its namespace, whose inode must be the one entered.
        let sock = in_netns(&path, || std::net::UdpSocket::bind("0.0.0.0:0"))
            .unwrap()
            .unwrap();
        // SAFETY: ioctl SIOCGSKNS on a socket we own returns a new fd or -1.
        let ns_fd = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCGSKNS) };
        assert!(ns_fd >= 0, "SIOCGSKNS: {}", io::Error::last_os_error());
        // SAFETY: ns_fd was just returned to us and is owned by nothing else.
        let ns_file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(ns_fd) };
        assert_eq!(ns_file.metadata().unwrap().ino(), inside);
    }

    /// linux/sockios.h: get the socket's network namespace as an fd.
    const SIOCGSKNS: libc::c_ulong = 0x894C;

    #[test]
    fn in_netns_errors_name_the_path() {
        let missing = Path::new("/nonexistent/skewscope/netns");
        let err = in_netns(missing, || ()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(
            err.to_string().contains("/nonexistent/skewscope/netns"),
            "{err}"
        );
        // A file that is not a namespace: setns fails with EINVAL, named.
        let err = in_netns(Path::new("/proc/self/status"), || ()).unwrap_err();
        assert!(err.to_string().contains("setns /proc/self/status"), "{err}");
    }

    #[test]
    fn in_netns_resumes_panics() {
        if !privileged("in_netns_resumes_panics", false) {
            return;
        }
        let r = std::panic::catch_unwind(|| {
            in_netns(Path::new("/proc/self/ns/net"), || -> () {
                panic!("boom in netns")
            })
        });
        let panic = r.expect_err("the worker's panic reaches the caller");
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"boom in netns"));
    }

    #[test]
    fn current_netns_inode_matches_proc_self_on_main_namespace() {
        assert_eq!(
            current_netns_inode().unwrap(),
            stat_ino("/proc/self/ns/net")
        );
    }

    /// A captured root without namespace files is an error naming the path, not a panic.
    #[test]
    fn list_netns_on_fixture_root_is_not_found() {
        let root = HostRoot::new("/nonexistent/skewscope/proc", "/nonexistent/sys");
        let err = list_netns(&root).unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert!(err
            .to_string()
            .contains("/nonexistent/skewscope/proc/1/ns/net"));
    }
}
