//! What a baseline reads itself, beside the reports: the kernel release, the host name
//! and the TCP reset/listen-drop counters of the agent's network namespace (reports do
//! not carry them). Readers do I/O only; the parsers are pure.

use std::path::Path;

use crate::sources::HostRoot;

/// `Tcp: OutRsts` and `TcpExt: ListenDrops`, counters since boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpCounters {
    pub out_resets: u64,
    pub listen_drops: u64,
}

/// /proc/sys/kernel/osrelease, trimmed.
pub fn kernel_release(root: &HostRoot) -> Option<String> {
    let text = std::fs::read_to_string(root.proc_path("sys/kernel/osrelease")).ok()?;
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// /proc/sys/kernel/hostname (the UTS namespace of the agent, as `hostname` prints).
pub fn host_name(root: &HostRoot) -> Option<String> {
    let text = std::fs::read_to_string(root.proc_path("sys/kernel/hostname")).ok()?;
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// The TCP counters from /proc/net/snmp and /proc/net/netstat; None when either is
/// missing or unreadable (a fixture root without them).
pub fn tcp_counters(root: &HostRoot) -> Option<TcpCounters> {
    let snmp = std::fs::read_to_string(root.proc_path("net/snmp")).ok()?;
    let netstat = std::fs::read_to_string(root.proc_path("net/netstat")).ok()?;
    Some(TcpCounters {
        out_resets: counter(&snmp, "Tcp", "OutRsts")?,
        listen_drops: counter(&netstat, "TcpExt", "ListenDrops")?,
    })
}

/// One counter of /proc/net/snmp or /proc/net/netstat: each protocol is a header line
/// `Proto: Name1 Name2 …` followed by a value line `Proto: v1 v2 …` (net/ipv4/proc.c,
/// snmp_seq_show_tcp_udp() and netstat_seq_show()). Values that do not parse as u64 (Tcp
/// MaxConn is -1) are not counters: None.
pub fn counter(text: &str, proto: &str, name: &str) -> Option<u64> {
    let prefix = format!("{proto}:");
    let mut lines = text.lines().filter(|l| {
        l.split_whitespace()
            .next()
            .is_some_and(|first| first == prefix)
    });
    while let (Some(header), Some(values)) = (lines.next(), lines.next()) {
        let names = header.split_whitespace().skip(1);
        let mut vals = values.split_whitespace().skip(1);
        for n in names {
            let v = vals.next();
            if n == name {
                return v.and_then(|v| v.parse().ok());
            }
        }
    }
    None
}

/// "sha256:<hex>" of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The config file's hash; an unreadable file was already refused by the loop.
pub fn config_hash(path: Option<&Path>) -> Option<String> {
    path.and_then(|p| std::fs::read(p).ok()).map(|b| sha256(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Trimmed from this VM's /proc/net/snmp and /proc/net/netstat (Linux 6.12).
    const SNMP: &str = "\
Ip: Forwarding DefaultTTL InReceives
Ip: 2 64 25607
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
Tcp: 1 200 120000 -1 68 8 0 31 0 19919 10828 0 0 69 0
Udp: InDatagrams NoPorts
Udp: 10 2
";
    const NETSTAT: &str = "\
TcpExt: SyncookiesSent ListenOverflows ListenDrops
TcpExt: 0 3 5
IpExt: InNoRoutes
IpExt: 0
";

    #[test]
    fn counters_are_read_by_name_from_header_and_value_lines() {
        assert_eq!(counter(SNMP, "Tcp", "OutRsts"), Some(69));
        assert_eq!(counter(SNMP, "Tcp", "ActiveOpens"), Some(68));
        assert_eq!(counter(SNMP, "Tcp", "MaxConn"), None, "-1 is not a counter");
        assert_eq!(counter(SNMP, "Udp", "NoPorts"), Some(2));
        assert_eq!(counter(NETSTAT, "TcpExt", "ListenDrops"), Some(5));
        assert_eq!(counter(NETSTAT, "TcpExt", "Missing"), None);
        assert_eq!(counter(SNMP, "Sctp", "OutRsts"), None);
        // A header without its value line (a truncated file).
        assert_eq!(counter("Tcp: OutRsts\n", "Tcp", "OutRsts"), None);
        assert_eq!(counter("Tcp: OutRsts\nTcp:\n", "Tcp", "OutRsts"), None);
    }

    #[test]
    fn sha256_is_the_standard_digest() {
        assert_eq!(
            sha256(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
