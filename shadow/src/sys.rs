//! The socket and scheduler calls of the engine that need more than one
//! crate call: socket2 for sockets and their options, nix for affinity and
//! poll(2); the only raw setsockopt left is SO_{RCV,SND}BUFFORCE, which
//! neither crate exposes.

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sched::CpuSet;
use nix::unistd::Pid;
use socket2::{SockAddr, SockRef};

/// SO_RCVBUFFORCE / SO_SNDBUFFORCE (`option`): the buffer size without the
/// net.core.{r,w}mem_max cap (CAP_NET_ADMIN).
pub(crate) fn set_buffer_force(
    fd: &impl AsRawFd,
    option: libc::c_int,
    bytes: libc::c_int,
) -> io::Result<()> {
    // SAFETY: optval points to a live c_int of the given length.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&bytes as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// connect(2) on a non-blocking socket: Ok(()) when the handshake started
/// or finished.
pub(crate) fn connect_nonblocking(fd: &impl AsFd, addr: SocketAddr) -> io::Result<()> {
    match SockRef::from(fd).connect(&SockAddr::from(addr)) {
        Ok(()) => Ok(()),
        Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => Ok(()),
        Err(err) => Err(err),
    }
}

/// accept4(2) non-blocking: Ok(None) when the queue is empty. The peer has
/// IPv4-mapped IPv6 addresses turned into IPv4.
pub(crate) fn accept(fd: &impl AsFd) -> io::Result<Option<(OwnedFd, Option<SocketAddr>)>> {
    match SockRef::from(fd).accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) {
        Ok((conn, peer)) => Ok(Some((conn.into(), canonical(&peer)))),
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(err) => Err(err),
    }
}

/// getsockname(2), with IPv4-mapped IPv6 addresses turned into IPv4.
pub(crate) fn local_addr(fd: &impl AsFd) -> io::Result<Option<SocketAddr>> {
    Ok(canonical(&SockRef::from(fd).local_addr()?))
}

fn canonical(addr: &SockAddr) -> Option<SocketAddr> {
    let addr = addr.as_socket()?;
    Some(SocketAddr::new(addr.ip().to_canonical(), addr.port()))
}

/// The CPUs the calling thread may run on.
pub(crate) fn thread_affinity() -> io::Result<Vec<usize>> {
    // Pid 0 is the calling thread.
    let set = nix::sched::sched_getaffinity(Pid::from_raw(0))?;
    Ok((0..CpuSet::count())
        .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
        .collect())
}

/// Restricts the calling thread to `cpu`; the kernel migrates it before the
/// call returns (sched_setaffinity(2)).
pub(crate) fn pin_thread(cpu: usize) -> io::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(Pid::from_raw(0), &set)?;
    Ok(())
}

/// Waits up to `timeout_ms` until one of `fds` is readable; an interrupted
/// wait counts as a timeout.
pub(crate) fn poll_readable(fds: &[OwnedFd], timeout_ms: u16) -> io::Result<()> {
    let mut polls: Vec<PollFd> = fds
        .iter()
        .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
        .collect();
    match nix::poll::poll(&mut polls, PollTimeout::from(timeout_ms)) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
        Err(err) => Err(err.into()),
    }
}
