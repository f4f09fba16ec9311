//! net.core and net.ipv4 sysctls that shape RX processing, read from procfs (never written).

use serde::Serialize;

use super::HostRoot;
use crate::error::SourceError;

/// The sysctls skewscope reports. None where the kernel lacks the knob (e.g.
/// tcp_migrate_req before Linux 5.14) or the root does not hold it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sysctls {
    pub netdev_budget: Option<i64>,
    pub netdev_budget_usecs: Option<i64>,
    pub netdev_max_backlog: Option<i64>,
    pub rps_sock_flow_entries: Option<i64>,
    pub tcp_migrate_req: Option<i64>,
}

/// Paths below /proc/sys, in the order of the fields above.
const KNOBS: [&str; 5] = [
    "net/core/netdev_budget",
    "net/core/netdev_budget_usecs",
    "net/core/netdev_max_backlog",
    "net/core/rps_sock_flow_entries",
    "net/ipv4/tcp_migrate_req",
];

pub fn read(root: &HostRoot) -> Result<Sysctls, SourceError> {
    let mut values = [None; KNOBS.len()];
    for (value, knob) in values.iter_mut().zip(KNOBS) {
        let path = root.proc_path("sys").join(knob);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let t = text.trim();
                *value = Some(t.parse().map_err(|_| SourceError::Parse {
                    path: path.clone(),
                    line: 1,
                    msg: format!("expected an integer, found {t:?}"),
                })?);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(SourceError::io(&path, e)),
        }
    }
    let [netdev_budget, netdev_budget_usecs, netdev_max_backlog, rps_sock_flow_entries, tcp_migrate_req] =
        values;
    Ok(Sysctls {
        netdev_budget,
        netdev_budget_usecs,
        netdev_max_backlog,
        rps_sock_flow_entries,
        tcp_migrate_req,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_sysctls_match_procfs() {
        let s = read(&HostRoot::default()).unwrap();
        let budget: i64 = std::fs::read_to_string("/proc/sys/net/core/netdev_budget")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(s.netdev_budget, Some(budget));
        assert!(s.netdev_max_backlog.unwrap() > 0);
    }

    #[test]
    fn absent_root_gives_none_and_garbage_names_the_file() {
        let dir = std::env::temp_dir().join(format!("skewscope-sysctl-{}", std::process::id()));
        let core = dir.join("sys/net/core");
        std::fs::create_dir_all(&core).unwrap();
        let root = HostRoot::new(&dir, "/nonexistent");
        assert_eq!(read(&root).unwrap(), Sysctls::default());
        std::fs::write(core.join("netdev_budget"), "lots\n").unwrap();
        let err = read(&root).unwrap_err().to_string();
        assert!(err.contains("net/core/netdev_budget:1"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
