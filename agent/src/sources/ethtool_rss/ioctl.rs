//! RSS over SIOCETHTOOL (ETHTOOL_GRSSH, ETHTOOL_GRXRINGS), for kernels without
//! ETHTOOL_MSG_RSS_GET. The ioctl itself is [`crate::sources::ethtool_ioctl`].

use std::io;

use super::{hfunc_name, RssConfig, RssSource};
use crate::error::SourceError;
use crate::sources::ethtool_ioctl::EthtoolIoctl;

/// SIOCETHTOOL commands (include/uapi/linux/ethtool.h). Both are GETs.
const ETHTOOL_GRXRINGS: u32 = 0x0000_002d;
pub(super) const ETHTOOL_GRSSH: u32 = 0x0000_0046;

/// ETHTOOL_GRXRINGS on its own (the ring count RSS_GET does not carry).
pub(super) fn rx_rings(ifname: &str) -> Result<u32, SourceError> {
    let dev = EthtoolIoctl::open(ifname)?;
    grxrings(&dev).map_err(|e| dev.error(&format!("{ifname}: ETHTOOL_GRXRINGS"), e))
}

/// ETHTOOL_GRXRINGS: `struct ethtool_rxnfc` is 192 bytes on x86_64 (cmd,
/// flow_type, u64 data, 168-byte ethtool_rx_flow_spec, rule_cnt); the kernel
/// copies the whole struct both ways (net/ethtool/ioctl.c ethtool_get_rxrings), so
/// the buffer is a zeroed, u64-aligned 256 bytes.
fn grxrings(dev: &EthtoolIoctl) -> io::Result<u32> {
    let mut rxnfc = [0u64; 32];
    let mut first = [0u8; 8];
    first[..4].copy_from_slice(&ETHTOOL_GRXRINGS.to_ne_bytes());
    rxnfc[0] = u64::from_ne_bytes(first);
    // SAFETY: a 256-byte, u64-aligned buffer holds struct ethtool_rxnfc.
    unsafe { dev.call(rxnfc.as_mut_ptr().cast())? };
    // `data` is the u64 at offset 8.
    u32::try_from(rxnfc[1])
        .map_err(|_| io::Error::other(format!("ring count {} out of range", rxnfc[1])))
}

/// `struct ethtool_rxfh` up to `rss_config[]`: cmd, rss_context, indir_size,
/// key_size (u32 each), hfunc (u8), input_xfrm/rsvd8 (3 bytes), rsvd32 — 24 bytes,
/// 6 u32 words.
const RXFH_HEADER_WORDS: usize = 6;
/// Sanity bounds on sizes a driver reports, so a bogus answer cannot make us
/// allocate gigabytes (real tables are <= a few thousand entries, keys <= 256 B).
const MAX_INDIR_SIZE: u32 = 1 << 16;
const MAX_KEY_SIZE: u32 = 1 << 12;

/// One ETHTOOL_GRSSH with the given user buffer sizes; returns the header words
/// and the whole buffer.
fn grssh(dev: &EthtoolIoctl, indir_size: u32, key_size: u32) -> io::Result<Vec<u32>> {
    let words = RXFH_HEADER_WORDS + indir_size as usize + (key_size as usize).div_ceil(4);
    // A u32 Vec keeps the flexible array u32-aligned as the kernel expects.
    let mut buf = vec![0u32; words];
    buf[0] = ETHTOOL_GRSSH;
    buf[1] = 0; // rss_context 0: the default context
    buf[2] = indir_size;
    buf[3] = key_size;
    // SAFETY: the buffer holds the header and the indir_size + key_size the kernel
    // is told; it writes no more (ethtool_get_rxfh checks the user sizes).
    unsafe { dev.call(buf.as_mut_ptr().cast())? };
    Ok(buf)
}

/// RSS configuration over SIOCETHTOOL: ETHTOOL_GRSSH twice (sizes, then data; see
/// the `struct ethtool_rxfh` comment in include/uapi/linux/ethtool.h) and
/// ETHTOOL_GRXRINGS for the ring count, as ethtool(8) `-x` does.
pub fn read_ioctl(ifname: &str) -> Result<RssConfig, SourceError> {
    let dev = EthtoolIoctl::open(ifname)?;
    let what = format!("{ifname}: ETHTOOL_GRSSH");

    // The table can be resized between the two calls (ethtool -L); the kernel
    // then answers EINVAL to the second, and one retry picks up the new sizes.
    let mut attempt = 0;
    let buf = loop {
        attempt += 1;
        let sizes = grssh(&dev, 0, 0).map_err(|e| dev.error(&what, e))?;
        let (indir_size, key_size) = (sizes[2], sizes[3]);
        if indir_size > MAX_INDIR_SIZE || key_size > MAX_KEY_SIZE {
            return Err(SourceError::Kernel {
                what,
                msg: format!("implausible sizes: indir_size {indir_size}, key_size {key_size}"),
            });
        }
        if indir_size == 0 && key_size == 0 {
            break sizes;
        }
        match grssh(&dev, indir_size, key_size) {
            Ok(buf) => break buf,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && attempt < 3 => continue,
            Err(e) => return Err(dev.error(&what, e)),
        }
    };

    let mut config = config_from_rxfh(&buf);
    config.rx_rings = match grxrings(&dev) {
        Ok(n) => Some(n),
        Err(e) => {
            log::debug!("{ifname}: ETHTOOL_GRXRINGS: {e}");
            None
        }
    };
    Ok(config)
}

/// Pure: a filled `struct ethtool_rxfh` (as u32 words) -> [`RssConfig`]. Sizes
/// beyond the buffer are clamped, never trusted for indexing.
pub(super) fn config_from_rxfh(buf: &[u32]) -> RssConfig {
    let word = |i: usize| buf.get(i).copied().unwrap_or(0);
    let indir_size = word(2) as usize;
    let key_size = word(3) as usize;
    // hfunc is the first byte of word 4 in memory order.
    let hfunc = word(4).to_ne_bytes()[0];
    let body = buf.get(RXFH_HEADER_WORDS..).unwrap_or(&[]);
    let indirection: Vec<u32> = body.iter().take(indir_size).copied().collect();
    let key_bytes: Vec<u8> = body
        .iter()
        .skip(indir_size)
        .flat_map(|w| w.to_ne_bytes())
        .take(key_size)
        .collect();
    RssConfig {
        indirection,
        key: (!key_bytes.is_empty()).then_some(key_bytes),
        hfunc: hfunc_name(u32::from(hfunc)),
        rx_rings: None,
        source: RssSource::Ioctl,
    }
}
