//! Sockets for the live tests (SO_REUSEPORT groups from the shared test
//! support). Every loop that waits for the kernel is bounded in time.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use skewscope_test_support::sockets::{reuseport_bound, reuseport_socket};
use socket2::Type;

/// `count` UDP sockets in one SO_REUSEPORT group on 127.0.0.1, non-blocking.
pub fn udp_reuseport_group(count: usize) -> Vec<UdpSocket> {
    let first = UdpSocket::from(
        reuseport_bound(Type::DGRAM, "127.0.0.1:0".parse().unwrap())
            .expect("first reuseport UDP socket"),
    );
    let addr = first.local_addr().expect("local addr");
    let mut group = vec![first];
    for _ in 1..count {
        group.push(UdpSocket::from(
            reuseport_bound(Type::DGRAM, addr).expect("reuseport UDP socket"),
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
    let listen = |addr: SocketAddr| {
        let socket = reuseport_socket(Type::STREAM, addr).expect("reuseport TCP socket");
        socket.bind(&addr.into()).expect("bind");
        socket.listen(512).expect("listen");
        let listener = TcpListener::from(socket);
        listener.set_nonblocking(true).expect("nonblocking");
        listener
    };
    let first = listen("127.0.0.1:0".parse().unwrap());
    let addr = first.local_addr().expect("local addr");
    let mut group = vec![first];
    for _ in 1..count {
        group.push(listen(addr));
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
