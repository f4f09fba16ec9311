//! The replay's private network namespace.
//!
//! [`enter_private_netns`] moves the *calling thread* into a fresh network
//! namespace (unshare(CLONE_NEWNET) only changes the caller's task; other
//! threads of the process keep theirs), so the engine calls it on a thread
//! of its own that ends with the replay. Inside, `lo` is brought up and every
//! address is made local with "AnyIP" routes — `local 0.0.0.0/0 dev lo` and
//! `local ::/0 dev lo` in table `local`, what `ip route add local 0.0.0.0/0
//! dev lo table local` does — so any flow's saddr and daddr are deliverable
//! without adding one address per sample (two netlink messages whatever the
//! trace holds). The namespace dies with its last socket once the thread ends.

use std::io::{self, Read};
use std::mem;
use std::os::fd::AsRawFd;

use nix::net::if_::if_nametoindex;
use nix::sched::{unshare, CloneFlags};
use socket2::{Domain, Protocol, Socket, Type};

use crate::error::ShadowError;

/// Unshares the calling thread's network namespace and prepares it.
pub(crate) fn enter_private_netns(ipv6: bool) -> Result<(), ShadowError> {
    let ns_err =
        |step: &'static str| move |source: io::Error| ShadowError::Namespace { step, source };
    // Affects only the calling thread's nsproxy.
    unshare(CloneFlags::CLONE_NEWNET)
        .map_err(io::Error::from)
        .map_err(ns_err("unshare(CLONE_NEWNET)"))?;
    set_link_up("lo").map_err(ns_err("bringing lo up (SIOCSIFFLAGS)"))?;
    let lo = if_nametoindex("lo")
        .map_err(io::Error::from)
        .map_err(ns_err("if_nametoindex(lo)"))?;
    add_local_default_route(libc::AF_INET, lo)
        .map_err(ns_err("adding route local 0.0.0.0/0 dev lo (RTM_NEWROUTE)"))?;
    if ipv6 {
        add_local_default_route(libc::AF_INET6, lo).map_err(ns_err(
            "adding route local ::/0 dev lo (RTM_NEWROUTE; IPv6 disabled?)",
        ))?;
    }
    Ok(())
}

/// `struct ifreq` with the `ifr_flags` member (include/uapi/linux/if.h);
/// own ioctl: neither socket2 nor nix wraps SIOCGIFFLAGS/SIOCSIFFLAGS.
#[repr(C)]
struct IfreqFlags {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

fn set_link_up(name: &str) -> io::Result<()> {
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    // SAFETY: all-zero is a valid ifreq.
    let mut req: IfreqFlags = unsafe { mem::zeroed() };
    for (dst, src) in req.name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: req is a live ifreq; SIOCGIFFLAGS fills ifr_flags.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    req.flags |= libc::IFF_UP as libc::c_short;
    // SAFETY: as above; SIOCSIFFLAGS reads ifr_flags.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

const NLMSG_HDRLEN: usize = 16;
const RTMSG_LEN: usize = 12;
const RT_TABLE_LOCAL: u8 = 255;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_HOST: u8 = 254;
const RTN_LOCAL: u8 = 2;
const RTA_OIF: u16 = 4;
const RTA_TABLE: u16 = 15;

/// RTM_NEWROUTE `local <any>/0 dev <ifindex> table local` and its ACK,
/// built by hand: two fixed messages do not justify a netlink crate here.
fn add_local_default_route(family: libc::c_int, ifindex: u32) -> io::Result<()> {
    let mut msg = Vec::with_capacity(64);
    // nlmsghdr, length patched below
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&libc::RTM_NEWROUTE.to_ne_bytes());
    let flags =
        (libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // pid
                                                // struct rtmsg
    msg.extend_from_slice(&[
        family as u8,
        0, // dst_len: the whole address space
        0, // src_len
        0, // tos
        RT_TABLE_LOCAL,
        RTPROT_BOOT,
        RT_SCOPE_HOST,
        RTN_LOCAL,
    ]);
    msg.extend_from_slice(&0u32.to_ne_bytes()); // rtm_flags
    debug_assert_eq!(msg.len(), NLMSG_HDRLEN + RTMSG_LEN);
    for (ty, value) in [(RTA_TABLE, u32::from(RT_TABLE_LOCAL)), (RTA_OIF, ifindex)] {
        msg.extend_from_slice(&8u16.to_ne_bytes());
        msg.extend_from_slice(&ty.to_ne_bytes());
        msg.extend_from_slice(&value.to_ne_bytes());
    }
    let len = msg.len() as u32;
    msg[..4].copy_from_slice(&len.to_ne_bytes());

    let sock = Socket::new(
        Domain::from(libc::AF_NETLINK),
        Type::RAW,
        Some(Protocol::from(libc::NETLINK_ROUTE)),
    )?;
    // Without a destination an unconnected netlink socket sends to the
    // kernel (portid 0, net/netlink/af_netlink.c netlink_sendmsg).
    sock.send(&msg)?;
    let mut reply = [0u8; 512];
    let got = (&sock).read(&mut reply)?;
    parse_ack(&reply[..got])
}

/// The NLMSG_ERROR answer to a request with NLM_F_ACK: error 0 is success.
fn parse_ack(reply: &[u8]) -> io::Result<()> {
    if reply.len() < NLMSG_HDRLEN + 4 {
        return Err(io::Error::other("short netlink reply"));
    }
    let ty = u16::from_ne_bytes([reply[4], reply[5]]);
    if ty != libc::NLMSG_ERROR as u16 {
        return Err(io::Error::other(format!(
            "unexpected netlink reply type {ty}"
        )));
    }
    let code = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
    if code == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(-code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_codes() {
        let mut reply = vec![0u8; 36];
        reply[4..6].copy_from_slice(&(libc::NLMSG_ERROR as u16).to_ne_bytes());
        assert!(parse_ack(&reply).is_ok());
        reply[16..20].copy_from_slice(&(-libc::EEXIST).to_ne_bytes());
        assert_eq!(
            parse_ack(&reply).unwrap_err().raw_os_error(),
            Some(libc::EEXIST)
        );
        assert!(parse_ack(&reply[..10]).is_err());
    }
}
