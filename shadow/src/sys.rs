//! Thin, checked wrappers over the socket and scheduler system calls the
//! engine needs (libc; no other crate exposes SO_RCVBUFFORCE, IP_FREEBIND,
//! sendmmsg/recvmmsg on raw sockets and per-thread affinity together).

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// socket(2) with SOCK_CLOEXEC added.
pub(crate) fn socket(
    domain: libc::c_int,
    ty: libc::c_int,
    proto: libc::c_int,
) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; a non-negative return is a fresh fd we own.
    let fd = cvt(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) })?;
    // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn set_int_opt(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: optval points to a live c_int of the given length.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

pub(crate) fn get_int_opt(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: optval/optlen point to a live c_int and its length.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// SO_LINGER {on, 0}: close() sends RST and leaves no TIME_WAIT behind.
pub(crate) fn set_linger_zero(fd: &impl AsRawFd) -> io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: optval points to a live struct linger of the given length.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// A socket address in kernel layout.
#[derive(Clone, Copy)]
pub(crate) struct RawSockAddr {
    pub storage: libc::sockaddr_storage,
    pub len: libc::socklen_t,
}

impl RawSockAddr {
    pub fn new(addr: SocketAddr) -> Self {
        // SAFETY: all-zero is a valid sockaddr_storage.
        let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let len = match addr {
            SocketAddr::V4(v4) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: v4.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(v4.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe {
                    std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin)
                };
                mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(v6) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: v6.port().to_be(),
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr {
                        s6_addr: v6.ip().octets(),
                    },
                    sin6_scope_id: 0,
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                unsafe {
                    std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6)
                };
                mem::size_of::<libc::sockaddr_in6>()
            }
        };
        Self {
            storage,
            len: len as libc::socklen_t,
        }
    }

    pub fn empty() -> Self {
        Self {
            // SAFETY: all-zero is a valid sockaddr_storage.
            storage: unsafe { mem::zeroed() },
            len: mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }

    pub fn as_ptr(&self) -> *const libc::sockaddr {
        (&self.storage as *const libc::sockaddr_storage).cast()
    }

    pub fn as_mut_ptr(&mut self) -> *mut libc::sockaddr {
        (&mut self.storage as *mut libc::sockaddr_storage).cast()
    }

    /// The address, with IPv4-mapped IPv6 addresses turned into IPv4.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self.storage.ss_family as libc::c_int {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a sockaddr_in.
                let sin: libc::sockaddr_in = unsafe { std::ptr::read(self.as_ptr().cast()) };
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Some(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says the storage holds a sockaddr_in6.
                let sin6: libc::sockaddr_in6 = unsafe { std::ptr::read(self.as_ptr().cast()) };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                let port = u16::from_be(sin6.sin6_port);
                Some(match IpAddr::V6(ip).to_canonical() {
                    IpAddr::V4(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
                    IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, port, 0, 0)),
                })
            }
            _ => None,
        }
    }
}

pub(crate) fn bind(fd: &impl AsRawFd, addr: SocketAddr) -> io::Result<()> {
    let raw = RawSockAddr::new(addr);
    // SAFETY: raw holds a valid sockaddr of length raw.len.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), raw.as_ptr(), raw.len) }).map(drop)
}

pub(crate) fn listen(fd: &impl AsRawFd, backlog: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall on a valid fd.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) }).map(drop)
}

/// connect(2) on a non-blocking socket: Ok(()) when the handshake started
/// or finished.
pub(crate) fn connect_nonblocking(fd: &impl AsRawFd, addr: SocketAddr) -> io::Result<()> {
    let raw = RawSockAddr::new(addr);
    // SAFETY: raw holds a valid sockaddr of length raw.len.
    match cvt(unsafe { libc::connect(fd.as_raw_fd(), raw.as_ptr(), raw.len) }) {
        Ok(_) => Ok(()),
        Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => Ok(()),
        Err(err) => Err(err),
    }
}

/// accept4(2) non-blocking: Ok(None) when the queue is empty.
pub(crate) fn accept(fd: &impl AsRawFd) -> io::Result<Option<(OwnedFd, Option<SocketAddr>)>> {
    let mut peer = RawSockAddr::empty();
    // SAFETY: peer provides a sockaddr_storage and its length.
    let ret = unsafe {
        libc::accept4(
            fd.as_raw_fd(),
            peer.as_mut_ptr(),
            &mut peer.len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    match cvt(ret) {
        // SAFETY: accept4 returned a fresh fd we own.
        Ok(new_fd) => Ok(Some((
            unsafe { OwnedFd::from_raw_fd(new_fd) },
            peer.socket_addr(),
        ))),
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(err) => Err(err),
    }
}

pub(crate) fn local_addr(fd: &impl AsRawFd) -> io::Result<Option<SocketAddr>> {
    let mut addr = RawSockAddr::empty();
    // SAFETY: addr provides a sockaddr_storage and its length.
    cvt(unsafe { libc::getsockname(fd.as_raw_fd(), addr.as_mut_ptr(), &mut addr.len) })?;
    Ok(addr.socket_addr())
}

/// The CPUs the calling thread may run on.
pub(crate) fn thread_affinity() -> io::Result<Vec<usize>> {
    // SAFETY: all-zero is an empty cpu_set_t.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; set is a live cpu_set_t.
    cvt(unsafe { libc::sched_getaffinity(0, mem::size_of::<libc::cpu_set_t>(), &mut set) })?;
    let max = 8 * mem::size_of::<libc::cpu_set_t>();
    // SAFETY: CPU_ISSET reads within the set for cpu < CPU_SETSIZE.
    Ok((0..max)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Restricts the calling thread to `cpu`; the kernel migrates it before the
/// call returns (sched_setaffinity(2)).
pub(crate) fn pin_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: all-zero is an empty cpu_set_t.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    // SAFETY: CPU_SET writes within the set for cpu < CPU_SETSIZE (callers
    // only pass CPUs from thread_affinity()).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; set is a live cpu_set_t.
    cvt(unsafe { libc::sched_setaffinity(0, mem::size_of::<libc::cpu_set_t>(), &set) }).map(drop)
}

/// poll(2) over `fds` for `events`; returns how many fds are ready.
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<usize> {
    // SAFETY: fds is a live slice of pollfd of the given length.
    let ret = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    match cvt(ret) {
        Ok(n) => Ok(n as usize),
        Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(err) => Err(err),
    }
}

pub(crate) fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}
