//! The replica reuseport group: N sockets of one protocol bound to the
//! wildcard address and the samples' port, inside the private namespace.
//!
//! Wildcard binding lets one group receive every daddr of the trace (all
//! addresses are local there, see netns.rs); programs see bind_inany = 1.
//! Address families: an IPv4-only trace gets AF_INET sockets on 0.0.0.0, an
//! IPv6-only trace AF_INET6 sockets with IPV6_V6ONLY on [::], a mixed trace
//! dual-stack AF_INET6 sockets on [::] (IPv4 flows reach them as on a
//! production dual-stack listener).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;

use socket2::{Domain, Socket, Type};

use crate::error::ShadowError;
use crate::sys;
use crate::trace::Proto;

/// Receive buffer of a UDP replica socket: far more than a batch of tiny
/// datagrams needs (each costs ~1 KiB of truesize), so a socket that gets a
/// whole batch never overflows.
const UDP_RCVBUF_BYTES: libc::c_int = 32 << 20;
/// Listen backlog of a TCP replica socket (>= any batch).
pub(crate) const TCP_BACKLOG: libc::c_int = 4096;

/// Address families of the replica sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FamilyMode {
    V4,
    V6Only,
    DualStack,
}

/// Creates and binds the N sockets (TCP ones listening). Socket i of the
/// result is index i of the candidate's `socks` map.
pub(crate) fn create(
    proto: Proto,
    family: FamilyMode,
    port: u16,
    sockets: u32,
) -> Result<Vec<OwnedFd>, ShadowError> {
    let (domain, wildcard) = match family {
        FamilyMode::V4 => (
            Domain::IPV4,
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
        ),
        FamilyMode::V6Only | FamilyMode::DualStack => (
            Domain::IPV6,
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)),
        ),
    };
    let ty = match proto {
        Proto::Udp => Type::DGRAM,
        Proto::Tcp => Type::STREAM,
    };
    let mut group = Vec::with_capacity(sockets as usize);
    for index in 0..sockets {
        let step = |what: &str| format!("socket {index} ({proto} {wildcard}): {what}");
        // socket2 adds SOCK_CLOEXEC.
        let socket = Socket::new(domain, ty.nonblocking(), None)
            .map_err(|e| ShadowError::socket(step("socket"), e))?;
        socket
            .set_reuse_port(true)
            .map_err(|e| ShadowError::socket(step("SO_REUSEPORT"), e))?;
        if domain == Domain::IPV6 {
            socket
                .set_only_v6(family == FamilyMode::V6Only)
                .map_err(|e| ShadowError::socket(step("IPV6_V6ONLY"), e))?;
        }
        if proto == Proto::Udp {
            // SO_RCVBUFFORCE ignores net.core.rmem_max (CAP_NET_ADMIN, which
            // the replay needs anyway).
            sys::set_buffer_force(&socket, libc::SO_RCVBUFFORCE, UDP_RCVBUF_BYTES)
                .map_err(|e| ShadowError::socket(step("SO_RCVBUFFORCE"), e))?;
        }
        socket
            .bind(&wildcard.into())
            .map_err(|e| ShadowError::socket(step("bind"), e))?;
        if proto == Proto::Tcp {
            socket
                .listen(TCP_BACKLOG)
                .map_err(|e| ShadowError::socket(step("listen"), e))?;
        }
        group.push(socket.into());
    }
    Ok(group)
}
