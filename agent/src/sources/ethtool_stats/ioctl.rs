//! Driver statistics over SIOCETHTOOL, as `ethtool -S` reads them. The ioctl itself is
//! [`crate::sources::ethtool_ioctl`]; this module owns the commands and their buffers.
//! Numbers from include/uapi/linux/ethtool.h. All four commands are GETs: ethtool's
//! ioctl dispatcher (net/ethtool/ioctl.c) lets them run without CAP_NET_ADMIN
//! precisely because they change nothing.

use std::io;

use super::DriverStats;
use crate::error::SourceError;
use crate::sources::ethtool_ioctl::EthtoolIoctl;

const ETHTOOL_GDRVINFO: u32 = 0x03;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSTATS: u32 = 0x1d;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETH_SS_STATS: u32 = 1;
const ETH_GSTRING_LEN: usize = 32;
/// struct ethtool_gstrings { cmd, string_set, len } before the strings.
const GSTRINGS_HDR: usize = 12;
/// struct ethtool_stats { cmd, n_stats } before the u64 values.
const GSTATS_HDR: usize = 8;
/// No driver comes near this; it only bounds the allocation if a count is garbage.
const MAX_STATS: usize = 1 << 20;
/// Retries when the statistics count changes between calls (channels reconfigured).
const ATTEMPTS: usize = 3;

/// struct ethtool_drvinfo (include/uapi/linux/ethtool.h).
#[repr(C)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

/// struct ethtool_sset_info with room for the one set asked for.
#[repr(C)]
struct EthtoolSsetInfo {
    cmd: u32,
    reserved: u32,
    sset_mask: u64,
    data: [u32; 1],
}

/// A buffer the kernel may write to, followed by an inaccessible guard page.
/// ETHTOOL_GSTRINGS and ETHTOOL_GSTATS write as many entries as the driver has *now*,
/// whatever length userspace passed (net/ethtool/ioctl.c, ethtool_get_strings and
/// ethtool_get_stats), so a channel-count change between our calls would overrun a heap
/// buffer. Past the guard page copy_to_user stops with EFAULT instead, and we retry.
struct GuardedBuf {
    ptr: *mut u8,
    /// Usable bytes (the rest of the last page is slack).
    len: usize,
    map_len: usize,
}

impl GuardedBuf {
    fn new(len: usize) -> io::Result<Self> {
        // SAFETY: sysconf has no memory-safety preconditions.
        let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
            p if p > 0 => p as usize,
            _ => 4096,
        };
        let data_len = len.div_ceil(page).max(1) * page;
        let map_len = data_len + page;
        // SAFETY: anonymous private mapping, no address hint; checked for MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let buf = GuardedBuf {
            ptr: ptr as *mut u8,
            len,
            map_len,
        };
        // SAFETY: the range is the last page of the mapping just created.
        let rc = unsafe {
            libc::mprotect(
                buf.ptr.add(data_len) as *mut libc::c_void,
                page,
                libc::PROT_NONE,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(buf)
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: ptr..ptr+len lies in the readable part of our live mapping.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for GuardedBuf {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping created in new().
        unsafe {
            libc::munmap(self.ptr as *mut libc::c_void, self.map_len);
        }
    }
}

fn read_u32(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_ne_bytes(b)
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// One device's SIOCETHTOOL handle with the statistics commands on it.
struct StatsIoctl<'a> {
    dev: EthtoolIoctl<'a>,
    ifname: &'a str,
}

impl<'a> StatsIoctl<'a> {
    fn open(ifname: &'a str) -> Result<Self, SourceError> {
        let dev = EthtoolIoctl::open(ifname)?;
        Ok(Self { dev, ifname })
    }

    fn error(&self, cmd_name: &str, err: io::Error) -> SourceError {
        self.dev
            .error(&format!("{}: SIOCETHTOOL {cmd_name}", self.ifname), err)
    }

    /// # Safety
    /// As [`EthtoolIoctl::call`].
    unsafe fn call(&self, cmd_name: &str, data: *mut libc::c_void) -> Result<(), SourceError> {
        // SAFETY: passed on from the caller.
        unsafe { self.dev.call(data) }.map_err(|e| self.error(cmd_name, e))
    }

    /// Like `call`, but Ok(false) when the kernel hit the guard page (EFAULT): the count
    /// grew since we sized the buffer.
    fn call_guarded(&self, cmd_name: &str, buf: &mut GuardedBuf) -> Result<bool, SourceError> {
        // SAFETY: the buffer is ours and guard-paged: the kernel's writes past its
        // length fault (EFAULT) instead of overrunning.
        match unsafe { self.dev.call(buf.ptr as *mut libc::c_void) } {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EFAULT) => Ok(false),
            Err(e) => Err(self.error(cmd_name, e)),
        }
    }

    fn drvinfo(&self) -> Result<EthtoolDrvinfo, SourceError> {
        // SAFETY: all-zero is a valid EthtoolDrvinfo (integers and byte arrays).
        let mut info: EthtoolDrvinfo = unsafe { std::mem::zeroed() };
        info.cmd = ETHTOOL_GDRVINFO;
        // SAFETY: a whole struct ethtool_drvinfo, which is what the command writes.
        unsafe { self.call("ETHTOOL_GDRVINFO", &mut info as *mut _ as *mut libc::c_void)? };
        Ok(info)
    }

    /// Number of ETH_SS_STATS strings, or None when the driver has no such set.
    fn stats_count(&self) -> Result<Option<usize>, SourceError> {
        let mut info = EthtoolSsetInfo {
            cmd: ETHTOOL_GSSET_INFO,
            reserved: 0,
            sset_mask: 1 << ETH_SS_STATS,
            data: [0],
        };
        // SAFETY: the header plus room for the one set asked for, all the kernel writes.
        unsafe {
            self.call(
                "ETHTOOL_GSSET_INFO",
                &mut info as *mut _ as *mut libc::c_void,
            )?
        };
        // The kernel clears the mask bits of sets the driver does not have.
        if info.sset_mask & (1 << ETH_SS_STATS) == 0 {
            return Ok(None);
        }
        Ok(Some(info.data[0] as usize))
    }

    /// The names, as many as the kernel returned (may differ from `n` if things changed).
    fn strings(&self, n: usize) -> Result<Option<Vec<String>>, SourceError> {
        let mut buf = guarded(self.ifname, GSTRINGS_HDR + n * ETH_GSTRING_LEN)?;
        let b = buf.bytes_mut();
        b[0..4].copy_from_slice(&ETHTOOL_GSTRINGS.to_ne_bytes());
        b[4..8].copy_from_slice(&ETH_SS_STATS.to_ne_bytes());
        b[8..12].copy_from_slice(&(n as u32).to_ne_bytes());
        if !self.call_guarded("ETHTOOL_GSTRINGS", &mut buf)? {
            return Ok(None);
        }
        let b = buf.bytes();
        let len = read_u32(b, 8) as usize;
        if len != n {
            return Ok(None);
        }
        let names = b[GSTRINGS_HDR..GSTRINGS_HDR + n * ETH_GSTRING_LEN]
            .chunks_exact(ETH_GSTRING_LEN)
            .map(c_string)
            .collect();
        Ok(Some(names))
    }

    fn values(&self, n: usize) -> Result<Option<Vec<u64>>, SourceError> {
        let mut buf = guarded(self.ifname, GSTATS_HDR + n * 8)?;
        let b = buf.bytes_mut();
        b[0..4].copy_from_slice(&ETHTOOL_GSTATS.to_ne_bytes());
        b[4..8].copy_from_slice(&(n as u32).to_ne_bytes());
        if !self.call_guarded("ETHTOOL_GSTATS", &mut buf)? {
            return Ok(None);
        }
        let b = buf.bytes();
        if read_u32(b, 4) as usize != n {
            return Ok(None);
        }
        let values = b[GSTATS_HDR..GSTATS_HDR + n * 8]
            .chunks_exact(8)
            .map(|c| {
                let mut v = [0u8; 8];
                v.copy_from_slice(c);
                u64::from_ne_bytes(v)
            })
            .collect();
        Ok(Some(values))
    }
}

fn guarded(ifname: &str, len: usize) -> Result<GuardedBuf, SourceError> {
    GuardedBuf::new(len).map_err(|e| SourceError::Kernel {
        what: format!("{ifname}: buffer for SIOCETHTOOL"),
        msg: e.to_string(),
    })
}

/// Read a device's driver statistics over SIOCETHTOOL, as `ethtool -S` does:
/// ETHTOOL_GDRVINFO (driver name, n_stats), ETHTOOL_GSSET_INFO for the current count,
/// then ETHTOOL_GSTRINGS(ETH_SS_STATS) and ETHTOOL_GSTATS. Runs in the calling thread's
/// network namespace. ENODEV gives NotFound; a driver without statistics Unsupported;
/// a driver whose count is zero an empty list.
pub fn read_ioctl(ifname: &str) -> Result<DriverStats, SourceError> {
    let dev = StatsIoctl::open(ifname)?;
    let (driver, drvinfo_n_stats) = match dev.drvinfo() {
        Ok(info) => {
            let name = c_string(&info.driver);
            (
                (!name.is_empty()).then_some(name),
                Some(info.n_stats as usize),
            )
        }
        Err(SourceError::Unsupported { .. }) => (None, None),
        Err(e) => return Err(e),
    };
    for _ in 0..ATTEMPTS {
        let n = match dev.stats_count() {
            Ok(Some(n)) => n,
            Ok(None) => {
                return Err(SourceError::Unsupported {
                    what: format!("{ifname}: SIOCETHTOOL ETH_SS_STATS"),
                    why: "the driver has no statistics string set".into(),
                })
            }
            // ETHTOOL_GSSET_INFO is younger (2.6.33) than n_stats in drvinfo.
            Err(SourceError::Unsupported { .. }) if drvinfo_n_stats.is_some() => {
                drvinfo_n_stats.unwrap_or(0)
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(DriverStats {
                driver,
                stats: Vec::new(),
            });
        }
        if n > MAX_STATS {
            return Err(SourceError::Kernel {
                what: format!("{ifname}: SIOCETHTOOL ETHTOOL_GSSET_INFO"),
                msg: format!("implausible statistics count {n}"),
            });
        }
        let Some(names) = dev.strings(n)? else {
            continue;
        };
        let Some(values) = dev.values(n)? else {
            continue;
        };
        return Ok(DriverStats {
            driver,
            stats: names.into_iter().zip(values).collect(),
        });
    }
    Err(SourceError::Kernel {
        what: format!("{ifname}: SIOCETHTOOL ETHTOOL_GSTRINGS/GSTATS"),
        msg: format!("statistics count kept changing over {ATTEMPTS} attempts"),
    })
}
