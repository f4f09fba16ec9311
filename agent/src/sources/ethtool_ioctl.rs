//! SIOCETHTOOL, the one place the agent issues it: the socket it goes through, the
//! `struct ifreq` carrying the command buffer, the call and its errno. Which commands
//! and buffers is the caller's business (ethtool_rss: ETHTOOL_GRSSH/GRXRINGS,
//! ethtool_stats: GDRVINFO/GSSET_INFO/GSTRINGS/GSTATS). Observe-only: callers issue
//! ETHTOOL_G* commands, which net/ethtool/ioctl.c runs without CAP_NET_ADMIN because
//! they change nothing.

use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use socket2::{Domain, Protocol, Socket, Type};

use crate::error::SourceError;

/// A socket to issue SIOCETHTOOL on for one device, in the calling thread's network
/// namespace.
pub struct EthtoolIoctl<'a> {
    socket: Socket,
    ifname: &'a str,
}

impl<'a> EthtoolIoctl<'a> {
    /// NotFound for a name no device can have (SIOCETHTOOL names must fit `ifr_name`,
    /// IFNAMSIZ including the NUL); Kernel when no socket can be opened.
    pub fn open(ifname: &'a str) -> Result<Self, SourceError> {
        check_ifname(ifname)?;
        // Any socket of the namespace will do; ethtool(8) tries AF_INET first and falls
        // back to generic netlink for kernels built without IPv4.
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, None)
            .or_else(|_| {
                Socket::new(
                    Domain::from(libc::AF_NETLINK),
                    Type::RAW,
                    Some(Protocol::from(libc::NETLINK_GENERIC)),
                )
            })
            .map_err(|e| SourceError::Kernel {
                what: format!("{ifname}: socket for SIOCETHTOOL"),
                msg: e.to_string(),
            })?;
        Ok(Self { socket, ifname })
    }

    /// Issue SIOCETHTOOL with `data` as the command buffer (its first u32 the
    /// ETHTOOL_* command).
    ///
    /// # Safety
    /// `data` must point at a live buffer laid out as the command's struct and large
    /// enough for everything the kernel writes back for that command.
    // Kept on libc: SIOCETHTOOL is not an _IOC-encoded number and its argument is an
    // ifreq holding the real pointer, so nix's ioctl macros would wrap this same call.
    pub unsafe fn call(&self, data: *mut libc::c_void) -> io::Result<()> {
        // SAFETY: all-zero is a valid ifreq (a byte array and a union of plain data).
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        // check_ifname guarantees len < IFNAMSIZ, so the name stays NUL-terminated.
        for (dst, src) in ifr.ifr_name.iter_mut().zip(self.ifname.bytes()) {
            *dst = src as libc::c_char;
        }
        ifr.ifr_ifru.ifru_data = data.cast();
        // SAFETY: ifr is a valid ifreq whose data pointer the caller vouches for; the
        // kernel reads/writes only within those two.
        let rc = unsafe {
            libc::ioctl(
                self.socket.as_raw_fd(),
                libc::SIOCETHTOOL as _,
                &mut ifr as *mut libc::ifreq,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// errno of a command named by `what` -> [`SourceError`]: see [`errno_error`].
    pub fn error(&self, what: &str, err: io::Error) -> SourceError {
        errno_error(self.ifname, what, err)
    }
}

/// A failed GET on device `ifname` -> [`SourceError`]: EOPNOTSUPP is the driver
/// declining (Unsupported, not a failure), ENODEV the device being gone (NotFound).
pub fn errno_error(ifname: &str, what: &str, err: io::Error) -> SourceError {
    match err.raw_os_error() {
        Some(libc::EOPNOTSUPP) => SourceError::Unsupported {
            what: what.to_string(),
            why: err.to_string(),
        },
        Some(libc::ENODEV) => SourceError::NotFound {
            path: PathBuf::from(ifname),
        },
        _ => SourceError::Kernel {
            what: what.to_string(),
            msg: err.to_string(),
        },
    }
}

/// Interface names are 1..IFNAMSIZ-1 bytes and never contain NUL or '/'.
pub fn check_ifname(ifname: &str) -> Result<(), SourceError> {
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ || ifname.contains(['\0', '/']) {
        return Err(SourceError::NotFound {
            path: PathBuf::from(ifname),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_are_not_found_without_a_syscall() {
        for name in ["", "a/b", "nul\0", "sixteen-bytes-xx", &"x".repeat(200)] {
            assert!(
                matches!(EthtoolIoctl::open(name), Err(SourceError::NotFound { .. })),
                "{name:?}"
            );
        }
        assert!(check_ifname("fifteen-bytes-x").is_ok());
    }

    #[test]
    fn errno_mapping() {
        let e = |n| io::Error::from_raw_os_error(n);
        assert!(matches!(
            errno_error("x", "x: GET", e(libc::ENODEV)),
            SourceError::NotFound { .. }
        ));
        match errno_error("x", "x: GET", e(libc::EOPNOTSUPP)) {
            SourceError::Unsupported { what, why } => {
                assert_eq!(what, "x: GET");
                assert!(why.contains("Operation not supported"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            errno_error("x", "x: GET", e(libc::EPERM)),
            SourceError::Kernel { .. }
        ));
    }

    /// Live, unprivileged: ETHTOOL_GDRVINFO reaches the kernel. lo has no
    /// get_drvinfo and no parent device, so it may answer EOPNOTSUPP (net/ethtool/
    /// ioctl.c ethtool_get_drvinfo); a missing device answers ENODEV.
    #[test]
    fn live_get_reaches_the_kernel() {
        let dev = EthtoolIoctl::open("lo").unwrap();
        // struct ethtool_drvinfo is 196 bytes; 256 leaves room.
        let mut buf = [0u32; 64];
        buf[0] = 0x03; // ETHTOOL_GDRVINFO
                       // SAFETY: a 256-byte u32-aligned buffer holds struct ethtool_drvinfo.
        let r = unsafe { dev.call(buf.as_mut_ptr().cast()) };
        assert!(
            r.is_ok() || r.as_ref().unwrap_err().raw_os_error() == Some(libc::EOPNOTSUPP),
            "{r:?}"
        );
        let err = EthtoolIoctl::open("nodev-xyz").map(|d| {
            // SAFETY: as above.
            unsafe { d.call(buf.as_mut_ptr().cast()) }
        });
        let err = err.unwrap().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENODEV));
    }
}
