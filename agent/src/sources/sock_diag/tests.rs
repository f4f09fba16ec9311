use super::netlink::dump_error;
use super::*;
use crate::error::SourceError;
use crate::sources::netns::current_netns_inode;
use crate::sources::{read_parsed, HostRoot};
use netlink_packet_core::{NLMSG_DONE, NLMSG_ERROR, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_sock_diag::constants::{
    AF_INET, AF_INET6, INET_DIAG_SKMEMINFO, SOCK_DIAG_BY_FAMILY, TCP_CLOSE, TCP_LISTEN,
};
use netlink_packet_sock_diag::inet::SocketId;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata");

fn fixture(rel: &str, protocol: Protocol) -> Vec<ListenSocket> {
    let path = Path::new(FIXTURES).join(rel);
    read_parsed(&path, |t| parse_proc_net(t, protocol, 7)).unwrap()
}

fn v4(a: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::from(a), port))
}

fn v6(s: &str, port: u16) -> SocketAddr {
    SocketAddr::from((s.parse::<Ipv6Addr>().unwrap(), port))
}

fn proc_socket(
    protocol: Protocol,
    local: SocketAddr,
    inode: u64,
    uid: u32,
    queue_depth: u64,
) -> ListenSocket {
    ListenSocket {
        netns: 7,
        protocol,
        local,
        inode,
        uid,
        cookie: 0,
        queue_depth,
        backlog_limit: None,
        drops: match protocol {
            Protocol::Tcp => None,
            Protocol::Udp => Some(0),
        },
        rcvbuf: None,
        rmem_alloc: None,
    }
}

#[test]
fn proc_tcp_pcp_4_15_listeners() {
    use Protocol::Tcp;
    let got = fixture("proc_net_tcp/pcp-4.15.14.txt", Tcp);
    let any = [0, 0, 0, 0];
    let want = vec![
        proc_socket(Tcp, v4(any, 4330), 62331031, 386, 0),
        proc_socket(Tcp, v4(any, 4331), 62336311, 386, 0),
        proc_socket(Tcp, v4([127, 0, 0, 1], 6379), 22376, 384, 0),
        proc_socket(Tcp, v4([192, 168, 124, 1], 53), 35135, 0, 0),
        proc_socket(Tcp, v4([192, 168, 42, 1], 53), 31636, 0, 0),
        proc_socket(Tcp, v4(any, 22), 25285, 0, 0),
        proc_socket(Tcp, v4([127, 0, 0, 1], 631), 20894192, 0, 0),
        proc_socket(Tcp, v4(any, 44321), 62326083, 0, 0),
        proc_socket(Tcp, v4(any, 44322), 60914971, 0, 0),
    ];
    assert_eq!(got, want);
    assert!(candidate_groups(&got).is_empty());
}

#[test]
fn proc_tcp_hpbl920_listeners() {
    let got = fixture("proc_net_tcp/pcp-hpbl920.txt", Protocol::Tcp);
    let ports: Vec<(SocketAddr, u64, u32)> =
        got.iter().map(|s| (s.local, s.inode, s.uid)).collect();
    let any = [0, 0, 0, 0];
    assert_eq!(
        ports,
        [
            (v4(any, 22), 148562, 0),
            (v4(any, 54998), 131999, 29),
            (v4([127, 0, 0, 1], 631), 147082, 0),
            (v4([127, 0, 0, 1], 25), 149029, 0),
            (v4(any, 44321), 182439, 0),
            (v4(any, 4330), 199364, 497),
            (v4(any, 111), 130910, 0),
        ]
    );
    assert!(candidate_groups(&got).is_empty());
}

/// procfs' synthetic file: two LISTEN rows on 0.0.0.0:22 form a group (they even
/// share inode 2740, which a real kernel never prints twice).
#[test]
fn proc_tcp_procfs_synthetic_duplicate_listeners() {
    use Protocol::Tcp;
    let got = fixture("proc_net_tcp/procfs-synthetic.txt", Tcp);
    assert_eq!(
        got,
        vec![
            proc_socket(Tcp, v4([10, 0, 0, 5], 22), 2740, 0, 1),
            proc_socket(Tcp, v4([0, 0, 0, 0], 22), 2740, 0, 0),
            proc_socket(Tcp, v4([0, 0, 0, 0], 22), 2740, 0, 1),
        ]
    );
    let groups = candidate_groups(&got);
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].local, v4([0, 0, 0, 0], 22));
    assert_eq!(groups[0].members.len(), 2);
}

/// pcp 4.15.14 udp: 3 sockets on 0.0.0.0:5353 (mDNS, two uids) and 2 on :67.
#[test]
fn proc_udp_pcp_4_15_groups_of_3_and_2() {
    use Protocol::Udp;
    let got = fixture("proc_net_udp/pcp-4.15.14.txt", Udp);
    assert_eq!(got.len(), 11, "12 rows, the connected (st 01) one dropped");
    assert!(!got.iter().any(|s| s.inode == 55828332));
    let groups = candidate_groups(&got);
    let any = [0, 0, 0, 0];
    assert_eq!(groups.len(), 2, "{groups:#?}");
    assert_eq!(groups[0].local, v4(any, 67));
    assert_eq!(
        groups[0].members,
        vec![
            proc_socket(Udp, v4(any, 67), 31632, 0, 0),
            proc_socket(Udp, v4(any, 67), 35131, 0, 0),
        ]
    );
    assert_eq!((groups[1].netns, groups[1].protocol), (7, Udp));
    assert_eq!(groups[1].local, v4(any, 5353));
    assert_eq!(
        groups[1].members,
        vec![
            proc_socket(Udp, v4(any, 5353), 20892725, 70, 0x30C0),
            proc_socket(Udp, v4(any, 5353), 55377518, 1000, 0x6E40),
            proc_socket(Udp, v4(any, 5353), 55377521, 1000, 0x6E40),
        ]
    );
    // Two sockets on :53 but on different addresses: not a group.
    let dns: Vec<_> = got.iter().filter(|s| s.local.port() == 53).collect();
    assert_eq!(dns.len(), 2);
    let other = got.iter().find(|s| s.inode == 576137).unwrap();
    assert_eq!((other.local, other.queue_depth), (v4(any, 68), 0x2200));
}

/// pcp 4.15.14 udp6: FOUR sockets on [::]:5353 -> one group of 4.
#[test]
fn proc_udp6_pcp_4_15_group_of_4() {
    use Protocol::Udp;
    let got = fixture("proc_net_udp/pcp-4.15.14-udp6.txt", Udp);
    assert_eq!(got.len(), 6);
    assert_eq!(got[0], proc_socket(Udp, v6("::1", 323), 19874, 0, 0));
    assert_eq!(got[1], proc_socket(Udp, v6("::", 46281), 20892728, 70, 0));
    let groups = candidate_groups(&got);
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].local, v6("::", 5353));
    let members: Vec<(u64, u32, u64)> = groups[0]
        .members
        .iter()
        .map(|m| (m.inode, m.uid, m.queue_depth))
        .collect();
    assert_eq!(
        members,
        [
            (20892726, 70, 0x1FC0),
            (55377519, 1000, 0),
            (55377520, 1000, 0),
            (55377522, 1000, 0)
        ]
    );
}

/// Port 123 (NTP) on four IPv6 and three IPv4 addresses: per-address sockets, no
/// group; the IPv6 words decode to a link-local and a global address.
#[test]
fn proc_udp_hpbl920_per_address_sockets_are_not_groups() {
    let udp6 = fixture("proc_net_udp/pcp-hpbl920-udp6.txt", Protocol::Udp);
    let ntp6: Vec<SocketAddr> = udp6
        .iter()
        .filter(|s| s.local.port() == 123)
        .map(|s| s.local)
        .collect();
    assert_eq!(
        ntp6,
        [
            v6("fe80::3aea:a7ff:fe35:d438", 123),
            v6("2620:52:0:10bb:3aea:a7ff:fe35:d438", 123),
            v6("::1", 123),
            v6("::", 123),
        ]
    );
    assert_eq!(udp6.len(), 7);
    assert!(candidate_groups(&udp6).is_empty());
    let udp = fixture("proc_net_udp/pcp-hpbl920.txt", Protocol::Udp);
    assert_eq!(udp.len(), 9);
    assert_eq!(udp[4].local, v4([10, 16, 184, 81], 123));
    assert!(candidate_groups(&udp).is_empty());
}

#[test]
fn proc_udp_procfs_fixtures() {
    // TCP-style rows (st 0A) in a udp file are no unconnected UDP sockets.
    assert!(fixture("proc_net_udp/procfs-synthetic.txt", Protocol::Udp).is_empty());
    let got = fixture("proc_net_udp/procfs-udp6.txt", Protocol::Udp);
    assert_eq!(
        got,
        vec![
            proc_socket(Protocol::Udp, v6("::", 5355), 21040, 981, 0),
            proc_socket(
                Protocol::Udp,
                v6("fe80::56e1:adff:fe7c:6609", 51073),
                11337031,
                1000,
                0
            ),
        ]
    );
}

#[test]
fn proc_broken_fixtures_name_the_line() {
    let path = Path::new(FIXTURES).join("proc_net_tcp/BROKEN-pcp-4.15.14-bad-address.txt");
    let err = read_parsed(&path, |t| parse_proc_net(t, Protocol::Tcp, 0)).unwrap_err();
    assert!(matches!(err, SourceError::Parse { line: 4, .. }), "{err}");
    assert!(err.to_string().contains("7 hex digits"), "{err}");
    let path = Path::new(FIXTURES).join("proc_net_udp/BROKEN-pcp-4.15.14-truncated.txt");
    let err = read_parsed(&path, |t| parse_proc_net(t, Protocol::Udp, 0)).unwrap_err();
    assert!(matches!(err, SourceError::Parse { line: 4, .. }), "{err}");
}

#[test]
fn read_proc_net_over_a_captured_root() {
    let dir = std::env::temp_dir().join(format!("skewscope-procnet-{}", std::process::id()));
    let net = dir.join("net");
    std::fs::create_dir_all(&net).unwrap();
    let copy = |from: &str, to: &str| {
        std::fs::copy(Path::new(FIXTURES).join(from), net.join(to)).unwrap();
    };
    copy("proc_net_tcp/pcp-4.15.14.txt", "tcp");
    copy("proc_net_udp/pcp-4.15.14.txt", "udp");
    copy("proc_net_udp/pcp-4.15.14-udp6.txt", "udp6");
    // No tcp6 (IPv6 disabled is allowed); no self/ns/net -> netns 0.
    let got = read_proc_net(&HostRoot::new(&dir, "/nonexistent")).unwrap();
    assert_eq!(got.len(), 9 + 11 + 6);
    assert!(got.iter().all(|s| s.netns == 0));
    let groups = candidate_groups(&got);
    let sizes: Vec<(Protocol, SocketAddr, usize)> = groups
        .iter()
        .map(|g| (g.protocol, g.local, g.members.len()))
        .collect();
    assert_eq!(
        sizes,
        [
            (Protocol::Udp, v4([0, 0, 0, 0], 67), 2),
            (Protocol::Udp, v4([0, 0, 0, 0], 5353), 3),
            (Protocol::Udp, v6("::", 5353), 4),
        ]
    );
    std::fs::remove_file(net.join("udp")).unwrap();
    let err = read_proc_net(&HostRoot::new(&dir, "/nonexistent")).unwrap_err();
    assert!(err.is_not_found(), "udp is required: {err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn candidate_groups_key_and_order() {
    let s = |netns, protocol, port, inode| ListenSocket {
        netns,
        protocol,
        local: v4([127, 0, 0, 1], port),
        inode,
        uid: 0,
        cookie: 0,
        queue_depth: 0,
        backlog_limit: None,
        drops: None,
        rcvbuf: None,
        rmem_alloc: None,
    };
    use Protocol::*;
    let sockets = vec![
        s(2, Udp, 53, 9),
        s(1, Udp, 53, 8),
        s(2, Udp, 53, 3),
        s(1, Tcp, 53, 5), // same port, other protocol: separate
        s(1, Udp, 53, 4),
        s(2, Tcp, 80, 1), // alone
    ];
    let groups = candidate_groups(&sockets);
    let shape: Vec<(u64, Protocol, Vec<u64>)> = groups
        .iter()
        .map(|g| {
            (
                g.netns,
                g.protocol,
                g.members.iter().map(|m| m.inode).collect(),
            )
        })
        .collect();
    assert_eq!(shape, [(1, Udp, vec![4, 8]), (2, Udp, vec![3, 9])]);
}

// --- sock_diag pure parts --------------------------------------------------------

fn response_payload(state: u8, port: u16, meminfo: &[u32]) -> Vec<u8> {
    use netlink_packet_core::Emitable;
    use netlink_packet_sock_diag::inet::InetResponseHeader;
    let mut cookie = [0u8; 8];
    cookie[..4].copy_from_slice(&0x0000_1234u32.to_ne_bytes());
    cookie[4..].copy_from_slice(&0x0000_0001u32.to_ne_bytes());
    let header = InetResponseHeader {
        family: AF_INET,
        state,
        timer: None,
        socket_id: SocketId {
            source_port: port,
            destination_port: 0,
            source_address: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
            destination_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            interface_id: 0,
            cookie,
        },
        recv_queue: 5,
        send_queue: 16,
        uid: 1000,
        inode: 4242,
    };
    let mut out = vec![0; header.buffer_len()];
    header.emit(&mut out);
    // INET_DIAG_SKMEMINFO attribute: len, type, u32 values.
    let len = 4 + 4 * meminfo.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&INET_DIAG_SKMEMINFO.to_ne_bytes());
    for v in meminfo {
        out.extend_from_slice(&v.to_ne_bytes());
    }
    out
}

fn nlmsg(kind: u16, payload: &[u8]) -> Vec<u8> {
    let len = 16 + payload.len();
    let mut out = Vec::new();
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&2u16.to_ne_bytes()); // NLM_F_MULTI
    out.extend_from_slice(&1u32.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(payload);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out
}

#[test]
fn dump_request_is_an_inet_diag_req_v2() {
    let req = dump_request(Protocol::Tcp, AF_INET6);
    assert_eq!(req.len(), 16 + 56);
    assert_eq!(u32::from_ne_bytes(req[0..4].try_into().unwrap()), 72);
    assert_eq!(
        u16::from_ne_bytes(req[4..6].try_into().unwrap()),
        SOCK_DIAG_BY_FAMILY
    );
    assert_eq!(
        u16::from_ne_bytes(req[6..8].try_into().unwrap()),
        NLM_F_REQUEST | NLM_F_DUMP
    );
    // sdiag_family, sdiag_protocol, idiag_ext, pad, idiag_states
    assert_eq!(
        &req[16..20],
        &[AF_INET6, IPPROTO_TCP, 1 << (INET_DIAG_SKMEMINFO - 1), 0]
    );
    assert_eq!(
        u32::from_ne_bytes(req[20..24].try_into().unwrap()),
        1 << TCP_LISTEN
    );
    let req = dump_request(Protocol::Udp, AF_INET);
    assert_eq!(&req[16..18], &[AF_INET, IPPROTO_UDP]);
    assert_eq!(
        u32::from_ne_bytes(req[20..24].try_into().unwrap()),
        1 << TCP_CLOSE
    );
}

/// /proc/net/sockstat and sockstat6 of this VM (Linux 6.18).
#[test]
fn sockstat_inuse_counts() {
    let v4 = "sockets: used 27\nTCP: inuse 1 orphan 0 tw 0 alloc 1 mem 0\n\
              UDP: inuse 0 mem 179\nUDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 0\n";
    let v6 = "TCP6: inuse 0\nUDP6: inuse 12\nUDPLITE6: inuse 0\nRAW6: inuse 0\n\
              FRAG6: inuse 0 memory 0\n";
    assert_eq!(parse_sockstat_inuse(v4, "TCP"), Some(1));
    assert_eq!(parse_sockstat_inuse(v4, "UDP"), Some(0));
    assert_eq!(parse_sockstat_inuse(v6, "UDP6"), Some(12));
    assert_eq!(parse_sockstat_inuse(v6, "TCP6"), Some(0));
    // "UDP" is not "UDPLITE"; absent or malformed lines are unknown, not zero.
    assert_eq!(parse_sockstat_inuse("UDPLITE: inuse 0\n", "UDP"), None);
    assert_eq!(parse_sockstat_inuse(v4, "TCP6"), None);
    assert_eq!(parse_sockstat_inuse("UDP: inuse x\n", "UDP"), None);
}

#[test]
fn datagram_with_listener_meminfo_and_done() {
    let mut datagram = nlmsg(
        SOCK_DIAG_BY_FAMILY,
        &response_payload(TCP_LISTEN, 8080, &[100, 212992, 0, 0, 0, 0, 0, 0, 3]),
    );
    // A non-LISTEN socket the kernel would not send with our filter: ignored.
    datagram.extend(nlmsg(SOCK_DIAG_BY_FAMILY, &response_payload(1, 8081, &[])));
    datagram.extend(nlmsg(NLMSG_DONE, &0i32.to_ne_bytes()));
    let mut out = Vec::new();
    assert_eq!(
        parse_dump_datagram(&datagram, Protocol::Tcp, 99, &mut out),
        Ok(true)
    );
    assert_eq!(
        out,
        vec![ListenSocket {
            netns: 99,
            protocol: Protocol::Tcp,
            local: v4([127, 0, 0, 1], 8080),
            inode: 4242,
            uid: 1000,
            cookie: 0x1_0000_1234,
            queue_depth: 5,
            backlog_limit: Some(16),
            drops: Some(3),
            rcvbuf: Some(212992),
            rmem_alloc: Some(100),
        }]
    );
}

#[test]
fn datagram_short_meminfo_udp_and_errors() {
    // An old kernel's 7-field SKMEMINFO (no BACKLOG, no DROPS).
    let datagram = nlmsg(
        SOCK_DIAG_BY_FAMILY,
        &response_payload(TCP_CLOSE, 53, &[768, 4608, 0, 0, 0, 0, 0]),
    );
    let mut out = Vec::new();
    assert_eq!(
        parse_dump_datagram(&datagram, Protocol::Udp, 1, &mut out),
        Ok(false)
    );
    assert_eq!(out.len(), 1);
    let s = &out[0];
    assert_eq!(
        (s.backlog_limit, s.drops, s.rcvbuf, s.rmem_alloc),
        (None, None, Some(4608), Some(768))
    );
    // Unbound UDP (port 0) is not a listener.
    let datagram = nlmsg(SOCK_DIAG_BY_FAMILY, &response_payload(TCP_CLOSE, 0, &[]));
    let mut out = Vec::new();
    parse_dump_datagram(&datagram, Protocol::Udp, 1, &mut out).unwrap();
    assert!(out.is_empty());

    let err = nlmsg(NLMSG_ERROR, &(-libc::ENOENT).to_ne_bytes());
    assert_eq!(
        parse_dump_datagram(&err, Protocol::Udp, 1, &mut Vec::new()),
        Err(DumpError::Errno(libc::ENOENT))
    );
    let done_err = nlmsg(NLMSG_DONE, &(-libc::EINTR).to_ne_bytes());
    assert_eq!(
        parse_dump_datagram(&done_err, Protocol::Udp, 1, &mut Vec::new()),
        Err(DumpError::Errno(libc::EINTR))
    );
    let truncated = &nlmsg(SOCK_DIAG_BY_FAMILY, &response_payload(TCP_LISTEN, 1, &[]))[..40];
    assert!(matches!(
        parse_dump_datagram(truncated, Protocol::Tcp, 1, &mut Vec::new()),
        Err(DumpError::Decode(_))
    ));
    assert!(matches!(
        dump_error("x", libc::ENOENT),
        SourceError::Unsupported { .. }
    ));
    assert!(matches!(
        dump_error("x", libc::EPERM),
        SourceError::Kernel { .. }
    ));
}

// --- live (privileged) ------------------------------------------------------------

mod live {
    use super::*;
    use crate::sources::netns::in_netns;
    use crate::sources::netns::testutil::privileged;
    use crate::sources::netns::NETNS_RUN_DIR;
    use crate::sources::testns::Netns;
    use std::collections::BTreeSet;
    use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
    use std::os::fd::{FromRawFd, OwnedFd, RawFd};
    use std::time::Duration;
    use std::time::Instant;

    const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

    fn check(rc: libc::c_int, what: &str) {
        assert!(rc >= 0, "{what}: {}", std::io::Error::last_os_error());
    }

    /// An IPv4 socket of `kind` with SO_REUSEPORT set before bind(ip, port).
    fn reuseport_socket(kind: libc::c_int, ip: Ipv4Addr, port: u16) -> OwnedFd {
        // SAFETY: plain socket syscalls on an fd we own; sockaddr_in sized as passed.
        unsafe {
            let fd = libc::socket(libc::AF_INET, kind | libc::SOCK_CLOEXEC, 0);
            check(fd, "socket");
            let fd = OwnedFd::from_raw_fd(fd);
            let one: libc::c_int = 1;
            check(
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_REUSEPORT,
                    (&one as *const libc::c_int).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                ),
                "SO_REUSEPORT",
            );
            let mut sa: libc::sockaddr_in = std::mem::zeroed();
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_port = port.to_be();
            sa.sin_addr.s_addr = u32::from_ne_bytes(ip.octets());
            check(
                libc::bind(
                    fd.as_raw_fd(),
                    (&sa as *const libc::sockaddr_in).cast(),
                    size_of::<libc::sockaddr_in>() as libc::socklen_t,
                ),
                "bind",
            );
            fd
        }
    }

    fn local_port(fd: RawFd) -> u16 {
        // SAFETY: getsockname into a sockaddr_in of the size passed.
        unsafe {
            let mut sa: libc::sockaddr_in = std::mem::zeroed();
            let mut len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            check(
                libc::getsockname(fd, (&mut sa as *mut libc::sockaddr_in).cast(), &mut len),
                "getsockname",
            );
            u16::from_be(sa.sin_port)
        }
    }

    fn inode(fd: RawFd) -> u64 {
        // SAFETY: fstat into a zeroed stat.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            check(libc::fstat(fd, &mut st), "fstat");
            st.st_ino
        }
    }

    fn sockopt_u64(fd: RawFd, opt: libc::c_int) -> u64 {
        let mut v: u64 = 0;
        let mut len = size_of::<u64>() as libc::socklen_t;
        // SAFETY: getsockopt into a u64 of the size passed (SO_COOKIE is u64, int
        // options fill the low bytes on little-endian and report len 4).
        check(
            unsafe {
                libc::getsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    opt,
                    (&mut v as *mut u64).cast(),
                    &mut len,
                )
            },
            "getsockopt",
        );
        if len == 4 {
            u64::from(v as u32)
        } else {
            v
        }
    }

    /// `n` sockets of `kind` sharing 127.0.0.1:PORT via SO_REUSEPORT (PORT picked
    /// by the first bind); TCP ones listen with `backlog`.
    fn group(kind: libc::c_int, n: usize, backlog: libc::c_int) -> (u16, Vec<OwnedFd>) {
        let first = reuseport_socket(kind, LOOPBACK, 0);
        let port = local_port(first.as_raw_fd());
        let mut fds = vec![first];
        for _ in 1..n {
            fds.push(reuseport_socket(kind, LOOPBACK, port));
        }
        if kind == libc::SOCK_STREAM {
            for fd in &fds {
                // SAFETY: listen on a bound TCP socket we own.
                check(unsafe { libc::listen(fd.as_raw_fd(), backlog) }, "listen");
            }
        }
        (port, fds)
    }

    fn here() -> u64 {
        current_netns_inode().unwrap()
    }

    fn mine(sockets: &[ListenSocket], protocol: Protocol, port: u16) -> Vec<ListenSocket> {
        sockets
            .iter()
            .filter(|s| s.protocol == protocol && s.local == SocketAddr::from((LOOPBACK, port)))
            .cloned()
            .collect()
    }

    fn inodes(fds: &[OwnedFd]) -> BTreeSet<u64> {
        fds.iter().map(|fd| inode(fd.as_raw_fd())).collect()
    }

    fn somaxconn() -> u64 {
        std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Poll the dump (bounded: 100 x 20 ms) until `done` holds for the socket `ino`.
    fn poll_socket(ino: u64, done: impl Fn(&ListenSocket) -> bool) -> ListenSocket {
        let start = Instant::now();
        loop {
            let all = dump_listeners(here()).expect("dump_listeners");
            let s = all
                .into_iter()
                .find(|s| s.inode == ino)
                .expect("socket in dump");
            if done(&s) || start.elapsed() > Duration::from_secs(2) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A UDP group of 4 and a TCP listener group of 3 on 127.0.0.1: found exactly,
    /// with fstat inodes, SO_COOKIE cookies, SO_RCVBUF, our uid; two candidates.
    #[test]
    fn live_reuseport_groups_udp4_tcp3() {
        if !privileged("live_reuseport_groups_udp4_tcp3", false) {
            return;
        }
        let (udp_port, udp) = group(libc::SOCK_DGRAM, 4, 0);
        let (tcp_port, tcp) = group(libc::SOCK_STREAM, 3, 128);
        let netns = here();
        let all = dump_listeners(netns).expect("dump_listeners");
        let found_udp = mine(&all, Protocol::Udp, udp_port);
        let found_tcp = mine(&all, Protocol::Tcp, tcp_port);
        let ino_set = |v: &[ListenSocket]| v.iter().map(|s| s.inode).collect::<BTreeSet<_>>();
        assert_eq!(ino_set(&found_udp), inodes(&udp));
        assert_eq!(ino_set(&found_tcp), inodes(&tcp));
        assert_eq!((found_udp.len(), found_tcp.len()), (4, 3));
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        for fd in udp.iter().chain(&tcp) {
            let fd = fd.as_raw_fd();
            let s = all.iter().find(|s| s.inode == inode(fd)).unwrap();
            assert_eq!(s.cookie, sockopt_u64(fd, libc::SO_COOKIE), "cookie {s:?}");
            assert_eq!(s.rcvbuf, Some(sockopt_u64(fd, libc::SO_RCVBUF)), "{s:?}");
            assert_eq!(
                (s.netns, s.uid, s.queue_depth, s.drops),
                (netns, uid, 0, Some(0))
            );
        }
        for s in &found_tcp {
            assert_eq!(s.backlog_limit, Some(128.min(somaxconn())));
        }
        for s in &found_udp {
            assert_eq!(s.backlog_limit, None);
        }

        let mut both = found_tcp.clone();
        both.extend(found_udp.clone());
        let groups = candidate_groups(&both);
        let shape: Vec<(Protocol, u16, usize)> = groups
            .iter()
            .map(|g| (g.protocol, g.local.port(), g.members.len()))
            .collect();
        assert_eq!(
            shape,
            [(Protocol::Tcp, tcp_port, 3), (Protocol::Udp, udp_port, 4)]
        );
        // The same two groups come out of the whole namespace's dump.
        let everything = candidate_groups(&all);
        for g in &groups {
            assert!(everything.contains(g), "{g:?}");
        }
        eprintln!(
            "live_reuseport_groups_udp4_tcp3: udp :{udp_port} x4 inodes {:?}, tcp :{tcp_port} x3 inodes {:?}",
            inodes(&udp),
            inodes(&tcp)
        );
    }

    /// A listener with backlog 16 that never accepts; 5 clients connect: the accept
    /// queue holds 5, the limit is 16, and /proc/net/tcp agrees.
    #[test]
    fn live_tcp_accept_queue_depth() {
        if !privileged("live_tcp_accept_queue_depth", false) {
            return;
        }
        let (port, fds) = group(libc::SOCK_STREAM, 1, 16);
        let ino = inode(fds[0].as_raw_fd());
        let clients: Vec<TcpStream> = (0..5)
            .map(|_| TcpStream::connect((LOOPBACK, port)).expect("connect"))
            .collect();
        let s = poll_socket(ino, |s| s.queue_depth == 5);
        assert_eq!(s.queue_depth, 5, "{s:?}");
        assert_eq!(s.backlog_limit, Some(16));
        let proc = read_proc_net(&HostRoot::default()).expect("/proc/net");
        let p = proc
            .iter()
            .find(|p| p.inode == ino)
            .expect("listener in /proc/net/tcp");
        assert_eq!((p.queue_depth, p.local, p.netns), (5, s.local, s.netns));
        eprintln!(
            "live_tcp_accept_queue_depth: queue_depth={} backlog_limit={:?} (proc {})",
            s.queue_depth, s.backlog_limit, p.queue_depth
        );
        drop(clients);
    }

    /// 3 unread datagrams of 100 bytes: receive queue >= 300 bytes (truesize), equal
    /// to SKMEMINFO's rmem_alloc and to /proc/net/udp's rx_queue.
    #[test]
    fn live_udp_receive_queue_bytes() {
        if !privileged("live_udp_receive_queue_bytes", false) {
            return;
        }
        let rx = UdpSocket::bind((LOOPBACK, 0)).unwrap();
        let tx = UdpSocket::bind((LOOPBACK, 0)).unwrap();
        for _ in 0..3 {
            tx.send_to(&[7u8; 100], rx.local_addr().unwrap()).unwrap();
        }
        let ino = inode(rx.as_raw_fd());
        let s = poll_socket(ino, |s| s.queue_depth >= 300);
        assert!(s.queue_depth >= 300, "{s:?}");
        assert_eq!(
            s.rmem_alloc,
            Some(s.queue_depth),
            "nothing read: no forward deficit"
        );
        assert_eq!(s.drops, Some(0));
        let proc = read_proc_net(&HostRoot::default()).unwrap();
        let p = proc.iter().find(|p| p.inode == ino).unwrap();
        assert_eq!((p.queue_depth, p.drops), (s.queue_depth, Some(0)));
        eprintln!(
            "live_udp_receive_queue_bytes: 3 x 100 B -> queue_depth={} rmem_alloc={:?}",
            s.queue_depth, s.rmem_alloc
        );
    }

    /// A tiny SO_RCVBUF flooded with 200 datagrams of 1000 bytes: drops > 0 and
    /// drops + datagrams still queued == 200 (loopback loses nothing else); the
    /// /proc/net/udp drops column agrees.
    #[test]
    fn live_udp_drops_counted() {
        if !privileged("live_udp_drops_counted", false) {
            return;
        }
        const SENT: u64 = 200;
        let rx = UdpSocket::bind((LOOPBACK, 0)).unwrap();
        let small: libc::c_int = 1; // clamped up to SOCK_MIN_RCVBUF
                                    // SAFETY: setsockopt with an int of the size passed.
        check(
            unsafe {
                libc::setsockopt(
                    rx.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUF,
                    (&small as *const libc::c_int).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            },
            "SO_RCVBUF",
        );
        let tx = UdpSocket::bind((LOOPBACK, 0)).unwrap();
        for _ in 0..SENT {
            tx.send_to(&[1u8; 1000], rx.local_addr().unwrap()).unwrap();
        }
        let ino = inode(rx.as_raw_fd());
        let s = poll_socket(ino, |s| s.drops.unwrap_or(0) > 0);
        let proc = read_proc_net(&HostRoot::default()).unwrap();
        let p_drops = proc.iter().find(|p| p.inode == ino).unwrap().drops;
        rx.set_nonblocking(true).unwrap();
        let mut queued = 0u64;
        let mut buf = [0u8; 2048];
        while queued < SENT && rx.recv(&mut buf).is_ok() {
            queued += 1;
        }
        let drops = s.drops.expect("SKMEMINFO drops");
        assert!(drops > 0, "{s:?}");
        assert_eq!(drops + queued, SENT, "drops {drops} + queued {queued}");
        assert_eq!(p_drops, Some(drops));
        assert_eq!(s.rcvbuf, Some(sockopt_u64(rx.as_raw_fd(), libc::SO_RCVBUF)));
        eprintln!(
            "live_udp_drops_counted: sent {SENT}, drops={drops}, queued={queued}, rcvbuf={:?}",
            s.rcvbuf
        );
    }

    /// A UDP group of 3 inside another namespace (ip netns add) and a UDP group of 2
    /// in the host's: dump_all_namespaces finds both, each labelled with its
    /// namespace's inode. The namespace is deleted on drop, also on failure.
    #[test]
    fn live_dump_all_namespaces_finds_other_netns_group() {
        if !privileged("live_dump_all_namespaces_finds_other_netns_group", true) {
            return;
        }
        let ns = Netns::new("sockdiag");
        ns.ip(&["link", "set", "lo", "up"]);
        let ns_path = Path::new(NETNS_RUN_DIR).join(&ns.name);
        let ns_ino = std::fs::metadata(&ns_path).unwrap().ino();
        let (ns_port, ns_fds) =
            in_netns(&ns_path, || group(libc::SOCK_DGRAM, 3, 0)).expect("in_netns");
        let (host_port, host_fds) = group(libc::SOCK_DGRAM, 2, 0);
        let host_ino = here();

        let (sockets, errors) = dump_all_namespaces(&HostRoot::default());
        for (r, e) in &errors {
            assert!(
                r.inode != ns_ino && r.inode != host_ino,
                "our namespaces failed: {r:?}: {e}"
            );
        }
        let groups = candidate_groups(&sockets);
        let in_ns: Vec<&ReuseportCandidate> = groups
            .iter()
            .filter(|g| g.netns == ns_ino && g.local.port() == ns_port)
            .collect();
        assert_eq!(in_ns.len(), 1, "{groups:#?}");
        let got: BTreeSet<u64> = in_ns[0].members.iter().map(|m| m.inode).collect();
        assert_eq!(got, inodes(&ns_fds));
        let on_host: Vec<&ReuseportCandidate> = groups
            .iter()
            .filter(|g| g.netns == host_ino && g.local.port() == host_port)
            .collect();
        assert_eq!(on_host.len(), 1);
        let got: BTreeSet<u64> = on_host[0].members.iter().map(|m| m.inode).collect();
        assert_eq!(got, inodes(&host_fds));
        // The fresh namespace holds nothing else.
        let others: Vec<&ListenSocket> = sockets
            .iter()
            .filter(|s| s.netns == ns_ino && s.local.port() != ns_port)
            .collect();
        assert!(others.is_empty(), "{others:?}");
        eprintln!(
            "live_dump_all_namespaces_finds_other_netns_group: netns {ns_ino} :{ns_port} x3, host {host_ino} :{host_port} x2, {} sockets in all, {} namespace errors",
            sockets.len(),
            errors.len()
        );
        drop(ns_fds);
    }

    /// The test process's own sockets come back from a plain std bind too (no
    /// SO_REUSEPORT): the dump is not limited to groups. Made in a namespace of
    /// the test's own with IPv6 on lo, whatever the host's loopback has.
    #[test]
    fn live_dump_includes_plain_listeners_ipv6() {
        if !privileged("live_dump_includes_plain_listeners_ipv6", true)
            || !skewscope_test_support::Needs::new("live_dump_includes_plain_listeners_ipv6")
                .ipv6()
                .met()
        {
            return;
        }
        let ns = skewscope_test_support::netns::Netns::with_ipv6("sockdiag6");
        ns.run(|| {
            let tcp6 = TcpListener::bind("[::1]:0").expect("bind [::1] in a netns with IPv6 on lo");
            let udp6 = UdpSocket::bind("[::1]:0").unwrap();
            let all = dump_listeners(here()).unwrap();
            let t = all
                .iter()
                .find(|s| s.inode == inode(tcp6.as_raw_fd()))
                .expect("tcp6");
            assert_eq!(
                (t.protocol, t.local),
                (Protocol::Tcp, tcp6.local_addr().unwrap())
            );
            let u = all
                .iter()
                .find(|s| s.inode == inode(udp6.as_raw_fd()))
                .expect("udp6");
            assert_eq!(
                (u.protocol, u.local),
                (Protocol::Udp, udp6.local_addr().unwrap())
            );
            // A connected UDP socket is left out.
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            c.connect("127.0.0.1:9").unwrap();
            let all = dump_listeners(here()).unwrap();
            assert!(!all.iter().any(|s| s.inode == inode(c.as_raw_fd())));
        });
    }
}

proptest! {
    #[test]
    fn parse_proc_net_never_panics(text in "\\PC{0,400}") {
        let _ = parse_proc_net(&text, Protocol::Tcp, 0);
        let _ = parse_proc_net(&text, Protocol::Udp, 0);
    }

    #[test]
    fn parse_proc_net_row_shaped_never_panics(
        rows in proptest::collection::vec(
            "[ 0-9]{1,5}: [0-9A-Fa-f]{0,33}:[0-9A-F]{0,5} [0-9A-F:]{0,13} [0-9A-F]{1,3} [0-9A-F]{0,9}:[0-9A-F]{0,9} [0-9:A-F]{0,11} [0-9A-F]{0,8} +[0-9]{0,11} +[0-9-]{0,3} [0-9]{0,21} [0-9]{0,3} [0-9a-f]{0,16} ?[0-9-]{0,21}",
            0..6,
        )
    ) {
        let text = rows.join("\n");
        for p in [Protocol::Tcp, Protocol::Udp] {
            if let Ok(found) = parse_proc_net(&text, p, 0) {
                prop_assert!(found.len() <= rows.len());
                let _ = candidate_groups(&found);
            }
        }
    }

    #[test]
    fn parse_dump_datagram_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_dump_datagram(&bytes, Protocol::Tcp, 0, &mut Vec::new());
        let _ = parse_dump_datagram(&bytes, Protocol::Udp, 0, &mut Vec::new());
    }

    #[test]
    fn parse_dump_datagram_mutated_replies_never_panic(
        cut in 0usize..140, flip in 0usize..140, value in any::<u8>()
    ) {
        let mut datagram = nlmsg(
            SOCK_DIAG_BY_FAMILY,
            &response_payload(TCP_LISTEN, 80, &[1, 2, 3, 4, 5, 6, 7, 8, 9]),
        );
        datagram.extend(nlmsg(NLMSG_DONE, &0i32.to_ne_bytes()));
        let n = datagram.len();
        datagram[flip % n] = value;
        datagram.truncate(n - cut.min(n));
        let _ = parse_dump_datagram(&datagram, Protocol::Tcp, 0, &mut Vec::new());
    }
}
