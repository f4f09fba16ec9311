//! Sockets for the live tests, built with libc where std has no knob
//! (SO_REUSEPORT). Every loop that waits for the kernel is bounded in time.

#![allow(dead_code)]

use std::io;
use std::net::{SocketAddrV4, TcpListener, UdpSocket};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// An IPv4 socket of `kind` (SOCK_DGRAM/SOCK_STREAM) with SO_REUSEPORT set,
/// bound to `addr` (port 0 picks one).
fn reuseport_socket(kind: libc::c_int, addr: SocketAddrV4) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd: RawFd = unsafe { libc::socket(libc::AF_INET, kind | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // SAFETY: setsockopt with a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: bind with a sockaddr_in of the right size.
    let rc = unsafe {
        libc::bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// `count` UDP sockets in one SO_REUSEPORT group on 127.0.0.1, non-blocking.
pub fn udp_reuseport_group(count: usize) -> Vec<UdpSocket> {
    let first = UdpSocket::from(
        reuseport_socket(libc::SOCK_DGRAM, "127.0.0.1:0".parse().unwrap())
            .expect("first reuseport UDP socket"),
    );
    let addr = match first.local_addr().expect("local addr") {
        std::net::SocketAddr::V4(addr) => addr,
        other => panic!("unexpected address {other}"),
    };
    let mut group = vec![first];
    for _ in 1..count {
        group.push(UdpSocket::from(
            reuseport_socket(libc::SOCK_DGRAM, addr).expect("reuseport UDP socket"),
        ));
    }
    for socket in &group {
        socket.set_nonblocking(true).expect("nonblocking");
    }
    group
}

/// `count` TCP listeners in one SO_REUSEPORT group on 127.0.0.1,
/// non-blocking, backlog 512.
pub fn tcp_reuseport_group(count: usize) -> Vec<TcpListener> {
    let listen = |fd: OwnedFd| {
        // SAFETY: listen(2) on a bound stream socket we own.
        let rc = unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&fd), 512) };
        assert_eq!(rc, 0, "listen: {}", io::Error::last_os_error());
        let listener = TcpListener::from(fd);
        listener.set_nonblocking(true).expect("nonblocking");
        listener
    };
    let first = listen(
        reuseport_socket(libc::SOCK_STREAM, "127.0.0.1:0".parse().unwrap())
            .expect("first reuseport TCP socket"),
    );
    let addr = match first.local_addr().expect("local addr") {
        std::net::SocketAddr::V4(addr) => addr,
        other => panic!("unexpected address {other}"),
    };
    let mut group = vec![first];
    for _ in 1..count {
        group.push(listen(
            reuseport_socket(libc::SOCK_STREAM, addr).expect("reuseport TCP socket"),
        ));
    }
    group
}

/// Reads every datagram the non-blocking `sockets` hold until `expected`
/// have been read in total or `timeout` passes; adds to `counts` per socket.
pub fn drain_udp(sockets: &[UdpSocket], counts: &mut [u64], expected: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 2048];
    loop {
        let mut got_any = false;
        for (socket, count) in sockets.iter().zip(counts.iter_mut()) {
            while socket.recv(&mut buf).is_ok() {
                *count += 1;
                got_any = true;
            }
        }
        if counts.iter().sum::<u64>() >= expected || Instant::now() >= deadline {
            return;
        }
        if !got_any {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
