//! SO_REUSEPORT sockets (std has no knob for it), through socket2.

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use socket2::{Domain, Socket, Type};

/// A socket of `ty` (`Type::DGRAM`, `Type::STREAM`) for `addr`'s family
/// with SO_REUSEPORT set (and SOCK_CLOEXEC), not yet bound.
pub fn reuseport_socket(ty: Type, addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, None)?;
    socket.set_reuse_port(true)?;
    Ok(socket)
}

/// [`reuseport_socket`] bound to `addr` (port 0 picks one).
pub fn reuseport_bound(ty: Type, addr: SocketAddr) -> io::Result<OwnedFd> {
    let socket = reuseport_socket(ty, addr)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}
