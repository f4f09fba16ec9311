//! Per-queue driver statistics: SIOCETHTOOL ETHTOOL_GSTRINGS/GSTATS and the text of
//! `ethtool -S`, with per-driver queue-name patterns.
//!
//! Drivers name their per-queue counters freely (include/uapi/linux/ethtool.h only says the
//! strings are ETH_GSTRING_LEN bytes), so [`classify`] knows the naming zoo of the common
//! drivers; everything else stays a plain device-level counter.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use serde::Serialize;

use crate::error::{ParseError, SourceError};

/// The statistics a driver exposes through ETH_SS_STATS, in driver order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriverStats {
    /// ETHTOOL_GDRVINFO driver name ("virtio_net", "veth", "mlx5_core" ...).
    pub driver: Option<String>,
    pub stats: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Direction {
    Rx,
    Tx,
}

/// What a per-queue counter counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum QueueCounterKind {
    /// Packets; a queue may carry several that add up to its total (bnxt_en counts
    /// unicast, multicast and broadcast separately).
    Packets,
    /// Bytes; summed like [`QueueCounterKind::Packets`].
    Bytes,
    Drops,
    /// Any other per-queue counter, named by the driver's suffix ("kicks", "xdp_packets").
    Other(String),
}

/// One per-queue counter found among a driver's statistics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueCounter {
    pub queue: u32,
    pub direction: Direction,
    pub counter: QueueCounterKind,
    pub value: u64,
    /// The driver's own name for it, e.g. "rx_queue_3_packets".
    pub stat_name: String,
}

/// Receive packets and bytes of one RX queue, as far as the driver reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueuePackets {
    pub queue: u32,
    pub rx_packets: Option<u64>,
    pub rx_bytes: Option<u64>,
}

/// Parse a queue index: ASCII digits only, no sign, fits u32.
fn queue_index(digits: &str) -> Option<u32> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn direction_prefix(s: &str) -> Option<(Direction, &str)> {
    if let Some(rest) = s.strip_prefix("rx") {
        Some((Direction::Rx, rest))
    } else {
        s.strip_prefix("tx").map(|rest| (Direction::Tx, rest))
    }
}

/// Strip a repeated direction word: i40e 2.1 says "rx-0.rx_packets", be2net
/// "rxq0: rx_pkts", bnxt_en "[0]: rx_ucast_packets".
fn strip_direction_word(direction: Direction, rest: &str) -> &str {
    let word = match direction {
        Direction::Rx => "rx_",
        Direction::Tx => "tx_",
    };
    rest.strip_prefix(word).unwrap_or(rest)
}

fn counter_kind(suffix: &str) -> Option<QueueCounterKind> {
    if suffix.is_empty() {
        return None;
    }
    Some(match suffix {
        "packets" | "pkts" => QueueCounterKind::Packets,
        "bytes" => QueueCounterKind::Bytes,
        "drops" | "dropped" => QueueCounterKind::Drops,
        other => QueueCounterKind::Other(other.to_string()),
    })
}

/// Split "N<sep>rest" into (N, rest).
fn index_then(s: &str, sep: char) -> Option<(u32, &str)> {
    let (digits, rest) = s.split_once(sep)?;
    Some((queue_index(digits)?, rest))
}

/// Classify one statistics name as a per-queue counter: queue index, direction and kind.
/// Pure; returns None for device-level counters and anything unrecognised.
///
/// Patterns, with the drivers that print them:
/// - `rx_queue_N_packets`: igb, ixgbe, i40e and ice in-tree, hv_netvsc, veth,
///   virtio_net up to 6.8 (`rx_queue_0_xdp_packets` is XDP-only, kept as Other).
/// - `rx-N.packets` (ixgbe on RHEL 4.18, i40e out-of-tree 2.8) and `rx-N.rx_packets`
///   (i40e out-of-tree 2.1, sfc).
/// - `rxN_packets`: mlx4/mlx5 per channel. virtio_net also uses `rxN_*` after its 2024
///   stats rework (6.8 printed `rx_queue_N_*`; 6.14 and 6.18 print `rxN_drops`, `rxN_kicks`)
///   but no longer has per-queue packets/bytes here: those moved to netdev qstats.
///   mlx5's `chN_*` channel event counters and `ptp_rxN_*` are not RX queues.
/// - `[N]: rx_ucast_packets` (bnxt_en per ring; ucast + mcast + bcast make the total).
/// - `rx_packets[N]` / `rx_bytes[N]` (gve).
/// - `rxqN: rx_pkts` (be2net).
/// - `queue_N_rx_cnt` / `queue_N_rx_bytes` (ena: "cnt" counts packets).
pub fn classify(stat_name: &str) -> Option<(u32, Direction, QueueCounterKind)> {
    let name = stat_name.trim();

    // bnxt_en: "[N]: rx_ucast_packets" (bnxt_ethtool.c prefixes ring stats with "[%d]: ").
    if let Some(rest) = name.strip_prefix('[') {
        let (queue, rest) = index_then(rest, ']')?;
        let rest = rest.strip_prefix(':')?.trim_start();
        let (direction, suffix) = direction_prefix(rest)?;
        let suffix = suffix.strip_prefix('_')?;
        let kind = match suffix {
            "ucast_packets" | "mcast_packets" | "bcast_packets" => QueueCounterKind::Packets,
            "ucast_bytes" | "mcast_bytes" | "bcast_bytes" => QueueCounterKind::Bytes,
            other => counter_kind(other)?,
        };
        return Some((queue, direction, kind));
    }

    // ena: "queue_N_rx_cnt" (ena_ethtool.c "queue_%u_%s_%s").
    if let Some(rest) = name.strip_prefix("queue_") {
        let (queue, rest) = index_then(rest, '_')?;
        let (direction, suffix) = direction_prefix(rest)?;
        let suffix = suffix.strip_prefix('_')?;
        let kind = match suffix {
            "cnt" => QueueCounterKind::Packets,
            other => counter_kind(other)?,
        };
        return Some((queue, direction, kind));
    }

    let (direction, rest) = direction_prefix(name)?;

    // gve: "rx_bytes[N]" (gve_ethtool.c "rx_bytes[%u]").
    if let Some(body) = rest.strip_suffix(']') {
        let (counter, digits) = body.rsplit_once('[')?;
        let queue = queue_index(digits)?;
        let counter = counter.strip_prefix('_')?;
        return Some((queue, direction, counter_kind(counter)?));
    }

    // "rx_queue_N_packets".
    if let Some(rest) = rest.strip_prefix("_queue_") {
        let (queue, suffix) = index_then(rest, '_')?;
        return Some((queue, direction, counter_kind(suffix)?));
    }

    // "rx-N.packets" / "rx-N.rx_packets".
    if let Some(rest) = rest.strip_prefix('-') {
        let (queue, suffix) = index_then(rest, '.')?;
        let suffix = strip_direction_word(direction, suffix);
        return Some((queue, direction, counter_kind(suffix)?));
    }

    // be2net: "rxqN: rx_pkts" (be_ethtool.c "rxq%d: %s").
    if let Some(rest) = rest.strip_prefix('q') {
        let (queue, suffix) = index_then(rest, ':')?;
        let suffix = strip_direction_word(direction, suffix.trim_start());
        return Some((queue, direction, counter_kind(suffix)?));
    }

    // mlx5 / virtio_net: "rxN_packets"; "rx_65_to_127_bytes_phy" has '_' first, so no.
    let (queue, suffix) = index_then(rest, '_')?;
    Some((queue, direction, counter_kind(suffix)?))
}

/// All per-queue counters among `stats`, in input order.
pub fn per_queue(stats: &[(String, u64)]) -> Vec<QueueCounter> {
    stats
        .iter()
        .filter_map(|(name, value)| {
            let (queue, direction, counter) = classify(name)?;
            Some(QueueCounter {
                queue,
                direction,
                counter,
                value: *value,
                stat_name: name.clone(),
            })
        })
        .collect()
}

/// Receive packets and bytes per RX queue, sorted by queue. Only queues with a packets or
/// bytes counter appear: virtio_net since 6.9 has only `rxN_drops` etc. here (its packet
/// counts moved to netdev qstats), so it yields nothing. A repeated stat name counts once.
pub fn rx_queue_packets(stats: &[(String, u64)]) -> Vec<QueuePackets> {
    use std::collections::{BTreeMap, HashSet};

    let mut seen: HashSet<&str> = HashSet::new();
    let mut queues: BTreeMap<u32, QueuePackets> = BTreeMap::new();
    for (name, value) in stats {
        if !seen.insert(name.as_str()) {
            continue;
        }
        let Some((queue, Direction::Rx, kind)) = classify(name) else {
            continue;
        };
        if !matches!(kind, QueueCounterKind::Packets | QueueCounterKind::Bytes) {
            continue;
        }
        let entry = queues.entry(queue).or_insert(QueuePackets {
            queue,
            rx_packets: None,
            rx_bytes: None,
        });
        let field = if kind == QueueCounterKind::Packets {
            &mut entry.rx_packets
        } else {
            &mut entry.rx_bytes
        };
        *field = Some(field.unwrap_or(0).saturating_add(*value));
    }
    queues.into_values().collect()
}

const HEADER: &str = "NIC statistics:";

/// Parse the text of `ethtool -S DEV` (sosreport `ethtool_-S_DEV`): an optional
/// "NIC statistics:" header, then one `name: value` per line. Names may contain spaces
/// and colons (bnxt_en "[0]: rx_ucast_packets", be2net "rxq0: rx_pkts"), so the value is
/// what follows the last colon. '#' comment lines and blank lines are skipped; ethtool's
/// "no stats available" (lo, dummy) gives an empty list.
pub fn parse_ethtool_s(text: &str) -> Result<Vec<(String, u64)>, ParseError> {
    let mut stats = Vec::new();
    let mut header_seen = false;
    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == HEADER {
            if header_seen || !stats.is_empty() {
                return Err(ParseError::new(
                    line_no,
                    format!("repeated '{HEADER}' header (two outputs concatenated?)"),
                ));
            }
            header_seen = true;
            continue;
        }
        if line == "no stats available" && stats.is_empty() {
            continue;
        }
        let Some((name, value)) = line.rsplit_once(':') else {
            return Err(ParseError::new(
                line_no,
                format!("expected 'name: value', found {line:?}"),
            ));
        };
        let name = name.trim_end();
        let value = value.trim();
        if name.is_empty() {
            return Err(ParseError::new(line_no, "statistic without a name"));
        }
        let value: u64 = value.parse().map_err(|_| {
            ParseError::new(
                line_no,
                format!("value {value:?} of {name:?} is not an unsigned integer"),
            )
        })?;
        stats.push((name.to_string(), value));
    }
    Ok(stats)
}

// --- SIOCETHTOOL reader -------------------------------------------------------------
// Numbers from include/uapi/linux/sockios.h and include/uapi/linux/ethtool.h. All four
// commands are GETs: ethtool's ioctl dispatcher (net/ethtool/ioctl.c) lets them run
// without CAP_NET_ADMIN precisely because they change nothing.

const SIOCETHTOOL: libc::c_ulong = 0x8946;
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

/// struct ifreq: IFNAMSIZ name, then a union whose largest member is 24 bytes on LP64.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

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

struct EthtoolIoctl<'a> {
    fd: OwnedFd,
    ifname: &'a str,
}

impl<'a> EthtoolIoctl<'a> {
    fn open(ifname: &'a str) -> Result<Self, SourceError> {
        if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ || ifname.contains('\0') {
            return Err(SourceError::NotFound {
                path: PathBuf::from(ifname),
            });
        }
        // Any socket of the caller's network namespace will do; ethtool(8) tries AF_INET
        // first and falls back to generic netlink for kernels built without IPv4.
        let mut fd = -1;
        for (domain, ty, proto) in [
            (libc::AF_INET, libc::SOCK_DGRAM, 0),
            (libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_GENERIC),
        ] {
            // SAFETY: plain socket(2) call; the result is checked.
            fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
            if fd >= 0 {
                break;
            }
        }
        if fd < 0 {
            return Err(SourceError::Kernel {
                what: format!("{ifname}: socket for SIOCETHTOOL"),
                msg: io::Error::last_os_error().to_string(),
            });
        }
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd, ifname })
    }

    /// Issue SIOCETHTOOL with `data` as the command buffer.
    fn call_raw(&self, data: *mut libc::c_void) -> io::Result<()> {
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            data,
            _pad: [0; 16],
        };
        req.name[..self.ifname.len()].copy_from_slice(self.ifname.as_bytes());
        // SAFETY: req is a valid ifreq whose data points at a buffer the caller sized for
        // the command (guard-paged where the kernel chooses the length).
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), SIOCETHTOOL as _, &mut req) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn error(&self, cmd_name: &str, err: io::Error) -> SourceError {
        let what = format!("{}: SIOCETHTOOL {cmd_name}", self.ifname);
        match err.raw_os_error() {
            Some(libc::ENODEV) => SourceError::NotFound {
                path: PathBuf::from(self.ifname),
            },
            Some(libc::EOPNOTSUPP) => SourceError::Unsupported {
                what,
                why: "the driver does not implement it (EOPNOTSUPP)".into(),
            },
            _ => SourceError::Kernel {
                what,
                msg: err.to_string(),
            },
        }
    }

    fn call(&self, cmd_name: &str, data: *mut libc::c_void) -> Result<(), SourceError> {
        self.call_raw(data).map_err(|e| self.error(cmd_name, e))
    }

    /// Like `call`, but Ok(false) when the kernel hit the guard page (EFAULT): the count
    /// grew since we sized the buffer.
    fn call_guarded(&self, cmd_name: &str, buf: &mut GuardedBuf) -> Result<bool, SourceError> {
        match self.call_raw(buf.ptr as *mut libc::c_void) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EFAULT) => Ok(false),
            Err(e) => Err(self.error(cmd_name, e)),
        }
    }

    fn drvinfo(&self) -> Result<EthtoolDrvinfo, SourceError> {
        // SAFETY: all-zero is a valid EthtoolDrvinfo (integers and byte arrays).
        let mut info: EthtoolDrvinfo = unsafe { std::mem::zeroed() };
        info.cmd = ETHTOOL_GDRVINFO;
        self.call("ETHTOOL_GDRVINFO", &mut info as *mut _ as *mut libc::c_void)?;
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
        self.call(
            "ETHTOOL_GSSET_INFO",
            &mut info as *mut _ as *mut libc::c_void,
        )?;
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
    let dev = EthtoolIoctl::open(ifname)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/testdata/ethtool_S/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn parsed(name: &str) -> Vec<(String, u64)> {
        parse_ethtool_s(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// (file, RX queues with packets or bytes, one queue, its rx packets, its rx bytes);
    /// values read off the files by hand.
    type Expected = (&'static str, usize, u32, Option<u64>, Option<u64>);
    const FIXTURES: &[Expected] = &[
        // bnxt_en: ucast + mcast + bcast = 276347403 + 1829492 + 30964.
        (
            "gem-bnxt_en-tab-indented.txt",
            8,
            0,
            Some(278_207_859),
            Some(594_513_300_139),
        ),
        (
            "showmax-bnxt_en-8rings.txt",
            8,
            7,
            Some(18_992_619),
            Some(1_648_464_449),
        ),
        ("gem-gve-arm64-c4a.txt", 2, 1, None, Some(84_369)),
        (
            "gem-i40e-tx_queue_N-64q.txt",
            128,
            5,
            Some(256_996_186),
            Some(112_808_306_281),
        ),
        (
            "gem-i40e-with-comments.txt",
            129,
            3,
            Some(3_804_967_529),
            Some(3_852_280_575_987),
        ),
        ("gem-igb-8q.txt", 8, 1, Some(3_452_345), Some(4_523_452_345)),
        (
            "gem-virtio_net-do-5.15.txt",
            1,
            0,
            Some(1_869_634_984),
            Some(1_975_950_944_041),
        ),
        (
            "gem-virtio_net-yacloud-6.8.txt",
            2,
            1,
            Some(573),
            Some(121_425),
        ),
        (
            "insights-be2net-rxqN-prefix.txt",
            2,
            1,
            Some(5_000_000),
            None,
        ),
        (
            "insights-igb-4q-4space.txt",
            4,
            0,
            Some(912_398),
            Some(92_856_542),
        ),
        (
            "intel-mfd-igb-4q-dotnic.txt",
            4,
            2,
            Some(67_292),
            Some(5_850_192),
        ),
        (
            "mlx5-5.15-xdp-nonzero.txt",
            1,
            0,
            Some(70_812_690),
            Some(4_248_761_400),
        ),
        (
            "mlx5-6.5-xdp-nonzero.txt",
            1,
            0,
            Some(7_282_880),
            Some(436_973_482),
        ),
        (
            "showmax-i40e-2.1-oot.txt",
            48,
            11,
            Some(109_615_275_060),
            Some(74_120_403_144_312),
        ),
        (
            "showmax-i40e-2.8.txt",
            129,
            0,
            Some(3_929_417_099),
            Some(4_034_128_482_410),
        ),
        (
            "showmax-ixgbe-rhel418-txN.packets.txt",
            80,
            39,
            Some(20_230_647_636),
            Some(16_352_129_640_935),
        ),
    ];

    #[test]
    fn fixtures_rx_queue_packets() {
        for &(file, n_queues, queue, packets, bytes) in FIXTURES {
            let rx = rx_queue_packets(&parsed(file));
            assert_eq!(rx.len(), n_queues, "{file}: queues");
            let q = rx
                .iter()
                .find(|q| q.queue == queue)
                .unwrap_or_else(|| panic!("{file}: no queue {queue}"));
            assert_eq!(
                (q.rx_packets, q.rx_bytes),
                (packets, bytes),
                "{file}: queue {queue}"
            );
            // Queues are numbered 0..n without gaps in all of these captures.
            let ids: Vec<u32> = rx.iter().map(|q| q.queue).collect();
            assert_eq!(ids, (0..n_queues as u32).collect::<Vec<_>>(), "{file}");
        }
    }

    #[test]
    fn bnxt_sums_cast_classes() {
        let rx = rx_queue_packets(&parsed("showmax-bnxt_en-8rings.txt"));
        // [0]: 19121609 ucast + 8020285 mcast + 24307130 bcast.
        assert_eq!(rx[0].rx_packets, Some(51_449_024));
        assert_eq!(rx[0].rx_bytes, Some(3_992_432_563));
    }

    #[test]
    fn queueless_fixtures() {
        // virtio_net 6.14: per-queue drops/kicks only; packets moved to netdev qstats.
        let virtio = parsed("gem-virtio_net-gcp-6.14-rxN.txt");
        assert_eq!(virtio.len(), 30);
        assert!(rx_queue_packets(&virtio).is_empty());
        let pq = per_queue(&virtio);
        assert_eq!(pq.len(), 20, "rx0/rx1 x 6 + tx0/tx1 x 4");
        assert_eq!(
            pq[0],
            QueueCounter {
                queue: 0,
                direction: Direction::Rx,
                counter: QueueCounterKind::Drops,
                value: 0,
                stat_name: "rx0_drops".into(),
            }
        );
        let tx1_kicks = pq.iter().find(|c| c.stat_name == "tx1_kicks").unwrap();
        assert_eq!(
            (
                tx1_kicks.queue,
                tx1_kicks.direction,
                &tx1_kicks.counter,
                tx1_kicks.value
            ),
            (
                1,
                Direction::Tx,
                &QueueCounterKind::Other("kicks".into()),
                1
            )
        );

        let tg3 = parsed("showmax-tg3-noqueues.txt");
        assert_eq!(tg3.len(), 72);
        assert!(per_queue(&tg3).is_empty(), "{:?}", per_queue(&tg3));

        let small = parsed("node_exporter-eth0-small.txt");
        assert_eq!(small.len(), 16);
        assert!(per_queue(&small).is_empty());
        assert_eq!(small[1], ("rx_packets".to_string(), 1_260_062));
        assert!(small.contains(&("duplicate metric".to_string(), 1)));
        assert!(small.contains(&("port.rx_dropped".to_string(), 12_028)));
    }

    #[test]
    fn tx_queues_and_names_kept() {
        let stats = parsed("gem-i40e-tx_queue_N-64q.txt");
        let tx: Vec<_> = per_queue(&stats)
            .into_iter()
            .filter(|c| c.direction == Direction::Tx && c.counter == QueueCounterKind::Packets)
            .collect();
        assert_eq!(tx.len(), 128);

        let ixgbe = parsed("showmax-ixgbe-rhel418-txN.packets.txt");
        let tx0 = per_queue(&ixgbe)
            .into_iter()
            .find(|c| c.stat_name == "tx-0.packets")
            .unwrap();
        assert_eq!(
            (tx0.queue, tx0.direction, tx0.value),
            (0, Direction::Tx, 17_736_631_688)
        );

        let be2net = parsed("insights-be2net-rxqN-prefix.txt");
        assert_eq!(be2net[1], ("rxq0: rx_drops_no_frags".to_string(), 5000));
        assert_eq!(
            classify("rxq0: rx_drops_no_frags"),
            Some((
                0,
                Direction::Rx,
                QueueCounterKind::Other("drops_no_frags".into())
            ))
        );
    }

    #[test]
    fn classify_naming_zoo() {
        use Direction::*;
        use QueueCounterKind::*;
        type Classified = Option<(u32, Direction, QueueCounterKind)>;
        let cases: &[(&str, Classified)] = &[
            ("rx_queue_12_packets", Some((12, Rx, Packets))),
            ("tx_queue_0_bytes", Some((0, Tx, Bytes))),
            (
                "rx_queue_0_xdp_packets",
                Some((0, Rx, Other("xdp_packets".into()))),
            ),
            ("rx-3.packets", Some((3, Rx, Packets))),
            ("tx-0.tx_bytes", Some((0, Tx, Bytes))),
            ("rx0_packets", Some((0, Rx, Packets))),
            ("rx15_drops", Some((15, Rx, Drops))),
            ("tx3_dropped", Some((3, Tx, Drops))),
            ("[2]: rx_bcast_packets", Some((2, Rx, Packets))),
            ("[2]: tx_ucast_bytes", Some((2, Tx, Bytes))),
            ("[2]: rx_discards", Some((2, Rx, Other("discards".into())))),
            ("rx_packets[7]", Some((7, Rx, Packets))),
            ("tx_bytes[1]", Some((1, Tx, Bytes))),
            ("rxq1: rx_pkts", Some((1, Rx, Packets))),
            ("txq4: tx_bytes", Some((4, Tx, Bytes))),
            ("queue_3_rx_cnt", Some((3, Rx, Packets))),
            ("queue_3_tx_bytes", Some((3, Tx, Bytes))),
            // Device-level or non-queue counters.
            ("rx_packets", None),
            ("rx_65_to_127_bytes_phy", None),
            ("rx_64_or_less_octet_packets", None),
            ("rx_packets_phy", None),
            ("rx_prio0_packets", None),
            ("rx_bytes_cos3", None),
            ("ch0_events", None),
            ("ptp_rx0_packets", None),
            ("port.rx_priority_3_xon", None),
            ("veb.tc_2_rx_packets", None),
            ("[0]: tpa_packets", None),
            ("rx_queue_x_packets", None),
            ("rx_queue_1_", None),
            ("rx-99999999999.packets", None),
            ("rx_bytes[]", None),
            ("", None),
        ];
        for (name, want) in cases {
            assert_eq!(&classify(name), want, "{name:?}");
        }
    }

    #[test]
    fn broken_fixture_names_each_fault() {
        let text = fixture("showmax-i40e-BROKEN.txt");
        let err = parse_ethtool_s(&text).unwrap_err();
        assert_eq!(err.line, 7, "{err}");
        assert!(
            err.msg.contains("\"0.1.1\"") && err.msg.contains("tx_errors"),
            "{err}"
        );

        // With that fixed, the free-text line 12 is next, then the repeated header.
        let text = text.replace("tx_errors: 0.1.1", "tx_errors: 0");
        let err = parse_ethtool_s(&text).unwrap_err();
        assert_eq!(err.line, 12, "{err}");
        assert!(err.msg.contains("whatever is this broken line"), "{err}");

        let text = text.replace("whatever is this broken line, just ignore it", "");
        let err = parse_ethtool_s(&text).unwrap_err();
        assert_eq!(err.line, 13, "{err}");
        assert!(err.msg.contains("repeated"), "{err}");
    }

    #[test]
    fn parse_edge_cases() {
        assert_eq!(parse_ethtool_s("").unwrap(), vec![]);
        assert_eq!(parse_ethtool_s("no stats available\n").unwrap(), vec![]);
        // No header, CRLF, no trailing newline.
        assert_eq!(
            parse_ethtool_s("\trx_queue_0_packets: 5\r\n    x: 18446744073709551615").unwrap(),
            vec![("rx_queue_0_packets".into(), 5), ("x".into(), u64::MAX)]
        );
        assert_eq!(
            parse_ethtool_s("x: 18446744073709551616").unwrap_err().line,
            1
        );
        assert_eq!(parse_ethtool_s("NIC statistics:\n: 5").unwrap_err().line, 2);
        assert_eq!(parse_ethtool_s("a: 1\nb: -1").unwrap_err().line, 2);
        assert_eq!(
            parse_ethtool_s("a: 1\nNIC statistics:").unwrap_err().line,
            2
        );
    }

    #[test]
    fn no_trailing_newline_fixture_keeps_last_value() {
        // gem-virtio_net-do-5.15.txt ends in "tx_queue_0_kicks: 1803255888" with no '\n'.
        let stats = parsed("gem-virtio_net-do-5.15.txt");
        assert_eq!(stats.len(), 13);
        assert_eq!(stats[12], ("tx_queue_0_kicks".to_string(), 1_803_255_888));
    }

    fn ethtool_cli(args: &[&str]) -> String {
        let out = std::process::Command::new("ethtool")
            .args(args)
            .output()
            .expect("ethtool(8) is needed for the comparison");
        assert!(out.status.success(), "ethtool {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Live: eth0 (virtio_net, Linux 6.18) over the ioctl equals `ethtool -S eth0`: same
    /// names in the same order, and each counter read by ethtool(8) lies between two
    /// ioctl reads taken before and after it.
    #[test]
    fn live_eth0_ioctl_matches_ethtool_cli() {
        let before = read_ioctl("eth0").expect("SIOCETHTOOL on eth0");
        let cli = parse_ethtool_s(&ethtool_cli(&["-S", "eth0"])).expect("parse ethtool -S");
        let after = read_ioctl("eth0").expect("SIOCETHTOOL on eth0");
        assert_eq!(before.driver.as_deref(), Some("virtio_net"));
        let names = |s: &[(String, u64)]| s.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&before.stats), names(&cli));
        assert_eq!(names(&after.stats), names(&cli));
        for ((b, c), a) in before.stats.iter().zip(&cli).zip(&after.stats) {
            assert!(
                b.1 <= c.1 && c.1 <= a.1,
                "{}: {} <= {} <= {}",
                b.0,
                b.1,
                c.1,
                a.1
            );
        }
        // 6.18 virtio_net: rxN_/txN_ names, no per-queue packets (they are in qstats).
        for name in [
            "rx_drops",
            "rx0_drops",
            "rx0_kicks",
            "tx0_kicks",
            "tx0_tx_timeouts",
        ] {
            assert!(names(&before.stats).iter().any(|n| n == name), "{name}");
        }
        assert!(rx_queue_packets(&before.stats).is_empty());
        let pq = per_queue(&before.stats);
        assert!(!pq.is_empty());
        assert!(pq.iter().all(|c| c.queue == 0), "one queue: {pq:?}");
    }

    #[test]
    fn live_missing_and_statless_devices() {
        assert!(
            read_ioctl("nosuchdev0").unwrap_err().is_not_found(),
            "ENODEV is NotFound"
        );
        assert!(read_ioctl("").unwrap_err().is_not_found());
        assert!(read_ioctl("a_name_too_long_for_ifnamsiz")
            .unwrap_err()
            .is_not_found());
        // lo has no ETH_SS_STATS set (`ethtool -S lo`: "no stats available").
        match read_ioctl("lo") {
            Err(SourceError::Unsupported { what, .. }) => assert!(what.contains("lo")),
            other => panic!("lo: {other:?}"),
        }
    }

    /// Live: what veth exposes. Its per-queue counters are NAPI-path counters
    /// (`rx_queue_N_xdp_packets`), which count only when the receiving end runs NAPI (GRO
    /// on) and the skb is eligible: a TSO-capable sender needs `rx-udp-gro-forwarding`
    /// on the receiver for UDP (drivers/net/veth.c, veth_skb_is_eligible_for_gro). That
    /// setup happens in the test's own namespace. Ground truth: the datagrams sent.
    #[test]
    fn live_veth_per_queue_counters() {
        use crate::sources::links::testns::{VethPair, DEV_B, QUEUES};
        let pair = VethPair::new("ethS");
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &pair.ns_b,
                "ethtool",
                "-K",
                DEV_B,
                "gro",
                "on",
                "rx-udp-gro-forwarding",
                "on",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let sent = pair.send_udp(32, 400);
        let stats = VethPair::run_in(&pair.ns_b, || read_ioctl(DEV_B)).expect("veth stats");
        assert_eq!(stats.driver.as_deref(), Some("veth"));
        assert_eq!(stats.stats[0].0, "peer_ifindex");
        // peer_ifindex + 7 per rx queue + 2 per tx queue.
        assert_eq!(
            stats.stats.len(),
            1 + 7 * QUEUES as usize + 2 * QUEUES as usize
        );
        assert!(
            rx_queue_packets(&stats.stats).is_empty(),
            "veth has no rx packets"
        );
        let pq = per_queue(&stats.stats);
        assert_eq!(
            pq.len(),
            stats.stats.len() - 1,
            "all but peer_ifindex are per queue"
        );
        let xdp: Vec<&QueueCounter> = pq
            .iter()
            .filter(|c| {
                c.direction == Direction::Rx
                    && c.counter == QueueCounterKind::Other("xdp_packets".into())
            })
            .collect();
        assert_eq!(
            xdp.iter().map(|c| c.queue).collect::<Vec<_>>(),
            (0..QUEUES).collect::<Vec<_>>()
        );
        let total: u64 = xdp.iter().map(|c| c.value).sum();
        // At least our datagrams (plus ARP, maybe IPv6 DAD/RS) and not wildly more.
        assert!(
            total >= sent as u64 && total <= sent as u64 + 50,
            "xdp_packets {total} vs {sent} sent: {xdp:?}"
        );
        let busy = xdp.iter().filter(|c| c.value > 0).count();
        eprintln!(
            "veth {DEV_B} rx_queue_N_xdp_packets: {:?}",
            xdp.iter().map(|c| c.value).collect::<Vec<_>>()
        );
        assert!(busy >= 2, "32 flows should land on several queues: {xdp:?}");
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(text in "\\PC{0,400}") {
            let _ = parse_ethtool_s(&text);
        }

        #[test]
        fn structured_lines_never_panic(
            lines in proptest::collection::vec(
                "[ \\t]{0,3}(\\[[0-9]{0,3}\\]: )?(rx|tx|rxq|queue_)?[-_.a-z0-9\\[\\]:]{0,24}: ?[0-9.]{0,22}",
                0..40,
            )
        ) {
            let text = lines.join("\n");
            if let Ok(stats) = parse_ethtool_s(&text) {
                let _ = per_queue(&stats);
                let _ = rx_queue_packets(&stats);
            }
        }

        #[test]
        fn classify_never_panics(name in "\\PC{0,40}") {
            let _ = classify(&name);
        }
    }
}
