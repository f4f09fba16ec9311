//! Which process owns a socket, and its pod/container.
//!
//! A socket's inode (sock_diag `idiag_inode`, /proc/net's inode column) appears as the
//! link target "socket:[INODE]" of every fd that holds it under `PROC/PID/fd`. Walking
//! every fd of every process costs one readlink per fd on the host, so the agent calls
//! [`scan_owners`] only when group membership changes, and the walk stops as soon as
//! every wanted inode is found.
//!
//! The pod and container come from `PROC/PID/cgroup` ([`parse_cgroup`]).
//!
//! The walk goes through the `procfs` crate (`Process::new_with_root` under the
//! [`HostRoot`]'s proc, `Process::fd` / `FDTarget::Socket`, `Process::cgroups`): it
//! opens each /proc/PID once and reads fd, comm and cgroup relative to that handle, so
//! a pid reused mid-walk cannot mix two processes' answers.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use procfs::process::{FDTarget, Process};
use procfs::{FromRead, ProcError, ProcessCGroup, ProcessCGroups};
use serde::Serialize;

use super::HostRoot;

/// The first (lowest-pid) process holding a socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub pid: u32,
    /// `PROC/PID/comm`: the main thread's name, at most 15 bytes.
    pub comm: String,
    /// The process's cgroup path (see [`parse_cgroup`] for which line).
    pub cgroup: Option<String>,
    /// 64-hex container id (containerd, CRI-O, Docker, Podman) from the cgroup path.
    pub container_id: Option<String>,
    /// Kubernetes pod UID from the cgroup path, with dashes.
    pub pod_uid: Option<String>,
}

/// Owners of `inodes`: for each, the lowest pid with an fd on it. Processes vanish or
/// refuse inspection (no CAP_SYS_PTRACE) while the walk runs; they are skipped. Inodes
/// no process holds (the socket closed, or held only by a process we may not inspect)
/// are absent from the answer.
pub fn scan_owners(root: &HostRoot, inodes: &HashSet<u64>) -> HashMap<u64, Owner> {
    let mut found: HashMap<u64, Owner> = HashMap::new();
    if inodes.is_empty() {
        return found;
    }
    let entries = match std::fs::read_dir(&root.proc) {
        Ok(entries) => entries,
        Err(e) => {
            log::debug!("{}: {e}", root.proc.display());
            return found;
        }
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    let mut unreadable = 0usize;
    for pid in pids {
        // A process that exited since the listing is NotFound: not an owner, not a fault.
        let opened = Process::new_with_root(root.proc_path(pid.to_string()))
            .and_then(|process| process.fd().map(|fds| (process, fds)));
        let (process, fds) = match opened {
            Ok(opened) => opened,
            Err(ProcError::NotFound(_)) => continue,
            Err(_) => {
                unreadable += 1;
                continue;
            }
        };
        let mut hits: Vec<u64> = Vec::new();
        // An fd closed meanwhile is an Err (or absent): skipped.
        for fd in fds.flatten() {
            if let FDTarget::Socket(ino) = fd.target {
                if inodes.contains(&ino) && !found.contains_key(&ino) {
                    hits.push(ino);
                }
            }
        }
        // One process may hold a socket on several fds (dup, fork). Sorted rather than
        // searched per fd: a server holding 10 000 group sockets made that quadratic.
        hits.sort_unstable();
        hits.dedup();
        if hits.is_empty() {
            continue;
        }
        let Some(comm) = read_comm(&process) else {
            continue; // exited after its fds were read: not an owner any more
        };
        let (cgroup, container_id, pod_uid) = match process.cgroups() {
            Ok(groups) => owner_cgroup(&groups.0),
            Err(_) => (None, None, None),
        };
        let owner = Owner {
            pid,
            comm,
            cgroup,
            container_id,
            pod_uid,
        };
        for ino in hits {
            found.insert(ino, owner.clone());
        }
        if found.len() == inodes.len() {
            break;
        }
    }
    if unreadable > 0 {
        log::debug!("owner scan: fds of {unreadable} processes not readable");
    }
    found
}

/// `PROC/PID/comm` without its newline; None when the process is gone.
fn read_comm(process: &Process) -> Option<String> {
    let mut comm = String::new();
    process
        .open_relative("comm")
        .ok()?
        .read_to_string(&mut comm)
        .ok()?;
    Some(comm.trim_end_matches('\n').to_string())
}

/// Pure: `PROC/PID/cgroup` -> (cgroup path, container id, pod UID).
///
/// Lines are "HIERARCHY-ID:CONTROLLERS:PATH" (cgroup v1) or "0::PATH" (the v2 unified
/// hierarchy); hybrid hosts print both. The path reported is the v2 one unless it is
/// "/", else name=systemd's, else the first other non-root one, else "/".
///
/// Ids are searched in that path first, then in the others:
/// - container: the last segment that is 64 hex digits after removing a ".scope"
///   suffix and a runtime prefix: "cri-containerd-" (containerd's systemd driver),
///   "crio-" / "crio-conmon-" (CRI-O), "docker-" (Docker with systemd), "libpod-"
///   (Podman); cgroupfs drivers use the bare id ("/docker/<id>", "/kubepods/.../<id>").
/// - pod: after a "kubepods" segment, the kubelet's pod cgroup "pod<UID>"
///   (pkg/kubelet/cm/pod_container_manager_linux.go, prefix "pod"); with the systemd
///   driver it becomes "kubepods-<qos>-pod<UID>.slice" and the UID's '-' are escaped
///   to '_' (pkg/kubelet/cm/cgroup_manager_linux.go), which this undoes.
pub fn parse_cgroup(text: &str) -> (Option<String>, Option<String>, Option<String>) {
    match ProcessCGroups::from_read(text.as_bytes()) {
        Ok(groups) => owner_cgroup(&groups.0),
        // The kernel never writes a malformed line; a damaged capture names nothing.
        Err(_) => (None, None, None),
    }
}

/// Pure: [`parse_cgroup`] over the lines as procfs parsed them.
fn owner_cgroup(groups: &[ProcessCGroup]) -> (Option<String>, Option<String>, Option<String>) {
    let mut unified = None;
    let mut systemd = None;
    let mut first_v1 = None;
    let mut all: Vec<&str> = Vec::new();
    for group in groups {
        let path = group.pathname.as_str();
        if path.is_empty() {
            continue;
        }
        all.push(path);
        if group.hierarchy == 0 && group.controllers.is_empty() {
            unified = Some(path);
        } else if group.controllers.iter().any(|c| c == "name=systemd") {
            systemd = Some(path);
        } else if first_v1.is_none() && path != "/" {
            first_v1 = Some(path);
        }
    }
    let chosen = [unified, systemd, first_v1]
        .into_iter()
        .flatten()
        .find(|p| *p != "/")
        .or_else(|| all.first().copied());
    let Some(chosen) = chosen else {
        return (None, None, None);
    };
    let order = || std::iter::once(chosen).chain(all.iter().copied().filter(move |p| *p != chosen));
    let container = order().find_map(container_id_in);
    let pod = order().find_map(pod_uid_in);
    (Some(chosen.to_string()), container, pod)
}

const RUNTIME_PREFIXES: &[&str] = &[
    "cri-containerd-",
    "crio-conmon-",
    "crio-",
    "docker-",
    "libpod-conmon-",
    "libpod-",
    "containerd-",
];

fn container_id_in(path: &str) -> Option<String> {
    path.rsplit('/').find_map(|segment| {
        let s = segment.strip_suffix(".scope").unwrap_or(segment);
        let s = RUNTIME_PREFIXES
            .iter()
            .find_map(|p| s.strip_prefix(p))
            .unwrap_or(s);
        (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_ascii_lowercase())
    })
}

fn pod_uid_in(path: &str) -> Option<String> {
    let mut segments = path.split('/').skip_while(|s| !s.starts_with("kubepods"));
    segments.find_map(|segment| {
        let s = segment.strip_suffix(".slice").unwrap_or(segment);
        let uid = match s.rfind("-pod") {
            Some(i) => &s[i + 4..],
            None => s.strip_prefix("pod")?,
        };
        let valid = !uid.is_empty()
            && uid
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'_');
        valid.then(|| uid.replace('_', "-"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::netns::testutil::privileged;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;

    const CID: &str = "9c1b5e7c4a0f3d2e8b6a1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f";

    #[test]
    fn cgroup_v2_systemd_driver_containerd() {
        // kubelet --cgroup-driver=systemd with containerd (SystemdCgroup = true): the pod
        // slice carries the UID with '_' for '-', the container a cri-containerd scope.
        let text = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/\
             kubepods-burstable-pod1234_5678.slice/cri-containerd-{CID}.scope\n"
        );
        let (path, cid, pod) = parse_cgroup(&text);
        assert_eq!(
            path.as_deref(),
            Some(
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/\
                     kubepods-burstable-pod1234_5678.slice/cri-containerd-{CID}.scope"
                )
                .as_str()
            )
        );
        assert_eq!(cid.as_deref(), Some(CID));
        assert_eq!(pod.as_deref(), Some("1234-5678"));

        // A real-shaped guaranteed pod (no QoS slice) under CRI-O.
        let text = format!(
            "0::/kubepods.slice/kubepods-pod6f1c3a2e_9b8d_4c7a_a1b2_3c4d5e6f7a8b.slice/crio-{CID}.scope"
        );
        let (_, cid, pod) = parse_cgroup(&text);
        assert_eq!(cid.as_deref(), Some(CID));
        assert_eq!(pod.as_deref(), Some("6f1c3a2e-9b8d-4c7a-a1b2-3c4d5e6f7a8b"));
    }

    #[test]
    fn cgroup_v1_cgroupfs_driver() {
        // kubelet --cgroup-driver=cgroupfs: /kubepods/<qos>/pod<UID>/<container id>,
        // the UID with its dashes, on every v1 hierarchy.
        let uid = "0f4a7c3e-2b1d-4e5f-9a8b-7c6d5e4f3a2b";
        let text = format!(
            "12:pids:/kubepods/burstable/pod{uid}/{CID}\n\
             11:memory:/kubepods/burstable/pod{uid}/{CID}\n\
             2:cpu,cpuacct:/kubepods/burstable/pod{uid}/{CID}\n\
             1:name=systemd:/kubepods/burstable/pod{uid}/{CID}\n"
        );
        let (path, cid, pod) = parse_cgroup(&text);
        assert_eq!(path, Some(format!("/kubepods/burstable/pod{uid}/{CID}")));
        assert_eq!(cid.as_deref(), Some(CID));
        assert_eq!(pod.as_deref(), Some(uid));
    }

    #[test]
    fn cgroup_docker_and_plain_hosts() {
        // Docker with the cgroupfs driver, v1.
        let text = format!("4:memory:/docker/{CID}\n1:name=systemd:/docker/{CID}\n");
        assert_eq!(
            parse_cgroup(&text),
            (Some(format!("/docker/{CID}")), Some(CID.to_string()), None)
        );
        // Docker with the systemd driver, v2; upper-case hex is normalized.
        let text = format!("0::/system.slice/docker-{}.scope\n", CID.to_uppercase());
        let (_, cid, pod) = parse_cgroup(&text);
        assert_eq!((cid.as_deref(), pod), (Some(CID), None));
        // A systemd service on the host: a path, no ids.
        assert_eq!(
            parse_cgroup("0::/system.slice/nginx.service\n"),
            (Some("/system.slice/nginx.service".into()), None, None)
        );
        // This VM's hybrid layout: v2 at "/", a 32-hex memory cgroup: no container.
        let text =
            "9:name=systemd:/\n4:memory:/process_api/41c31f120604eaf1220981cdd8dced3a\n0::/\n";
        assert_eq!(
            parse_cgroup(text),
            (
                Some("/process_api/41c31f120604eaf1220981cdd8dced3a".into()),
                None,
                None
            )
        );
        // Everything at the root; nothing at all.
        assert_eq!(parse_cgroup("0::/\n"), (Some("/".into()), None, None));
        assert_eq!(parse_cgroup(""), (None, None, None));
        assert_eq!(parse_cgroup("garbage\n"), (None, None, None));
        // "pod" outside a kubepods hierarchy is not a pod.
        assert_eq!(parse_cgroup("0::/user.slice/pod1234.slice\n").2, None);
    }

    #[test]
    fn cgroup_id_in_a_later_v1_line() {
        // v2 at "/", the ids only on a v1 controller line (hybrid host).
        let text = format!("0::/\n3:cpuset:/kubepods/besteffort/podabc-def/{CID}\n");
        let (path, cid, pod) = parse_cgroup(&text);
        assert_eq!(path, Some(format!("/kubepods/besteffort/podabc-def/{CID}")));
        assert_eq!(cid.as_deref(), Some(CID));
        assert_eq!(pod.as_deref(), Some("abc-def"));
    }

    /// A fake proc tree (symlinks need no real target): lowest pid wins, processes
    /// without the inode or without fds are skipped, cgroup ids are attached.
    #[test]
    fn scan_owners_over_a_fake_root() {
        let dir = std::env::temp_dir().join(format!("skewscope-owners-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let proc = |pid: u32, comm: &str, cgroup: &str, links: &[&str]| {
            let p = dir.join(pid.to_string());
            std::fs::create_dir_all(p.join("fd")).unwrap();
            std::fs::write(p.join("comm"), format!("{comm}\n")).unwrap();
            std::fs::write(p.join("cgroup"), cgroup).unwrap();
            for (i, l) in links.iter().enumerate() {
                std::os::unix::fs::symlink(l, p.join("fd").join(i.to_string())).unwrap();
            }
        };
        let pod_cg = format!("0::/kubepods/burstable/pod11-22/{CID}\n");
        proc(
            300,
            "envoy",
            &pod_cg,
            &[
                "socket:[10]",
                "socket:[20]",
                "pipe:[5]",
                "socket:[]",
                "anon_inode:[eventfd]",
            ],
        );
        proc(
            42,
            "nginx",
            "0::/system.slice/nginx.service\n",
            &["socket:[20]", "/dev/null"],
        );
        proc(1000, "worker", "0::/\n", &["socket:[30]"]);
        proc(7, "idle", "0::/\n", &[]);
        std::fs::create_dir_all(dir.join("self")).unwrap(); // non-numeric: ignored
        let root = HostRoot::new(&dir, "/nonexistent");

        let want: HashSet<u64> = [10, 20, 30, 99].into();
        let got = scan_owners(&root, &want);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(
            got[&20],
            Owner {
                pid: 42,
                comm: "nginx".into(),
                cgroup: Some("/system.slice/nginx.service".into()),
                container_id: None,
                pod_uid: None,
            },
            "lowest pid wins"
        );
        assert_eq!(
            got[&10],
            Owner {
                pid: 300,
                comm: "envoy".into(),
                cgroup: Some(format!("/kubepods/burstable/pod11-22/{CID}")),
                container_id: Some(CID.into()),
                pod_uid: Some("11-22".into()),
            }
        );
        assert_eq!((got[&30].pid, got[&30].comm.as_str()), (1000, "worker"));
        assert!(scan_owners(&root, &HashSet::new()).is_empty());
        assert!(scan_owners(&HostRoot::new("/nonexistent", "/x"), &want).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn socket_ino(fd: &impl AsRawFd) -> u64 {
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        std::fs::metadata(path).unwrap().ino()
    }

    /// Live: this test process's sockets map to its pid and comm.
    #[test]
    fn live_own_sockets_map_to_this_process() {
        if !privileged("live_own_sockets_map_to_this_process", false) {
            return;
        }
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let inodes: HashSet<u64> = [socket_ino(&udp), socket_ino(&tcp)].into();
        let got = scan_owners(&HostRoot::default(), &inodes);
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        let (cgroup, _, _) = parse_cgroup(&std::fs::read_to_string("/proc/self/cgroup").unwrap());
        for ino in &inodes {
            let owner = got
                .get(ino)
                .unwrap_or_else(|| panic!("inode {ino} not found: {got:?}"));
            assert_eq!(owner.pid, std::process::id());
            assert_eq!(owner.comm, comm.trim_end());
            assert_eq!(owner.cgroup, cgroup);
        }
        assert!(comm.starts_with("skewscope"), "test binary comm {comm:?}");
    }

    /// Live: a socket held only by a child process maps to the child.
    #[test]
    fn live_socket_held_by_child_maps_to_child() {
        if !privileged("live_socket_held_by_child_maps_to_child", false) {
            return;
        }
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let ino = socket_ino(&udp);
        let fd = udp.as_raw_fd();
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("30");
        // Hand the socket to the child only: clear FD_CLOEXEC on the child's copy of
        // the fd table (clearing it here would leak it into other tests' children).
        // SAFETY: fcntl is async-signal-safe; `fd` stays open until after spawn.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn sleep");
        drop(udp);
        let got = scan_owners(&HostRoot::default(), &[ino].into());
        let _ = child.kill();
        let _ = child.wait();
        let owner = got
            .get(&ino)
            .unwrap_or_else(|| panic!("inode {ino} not found"));
        assert_eq!((owner.pid, owner.comm.as_str()), (child.id(), "sleep"));
    }
}
