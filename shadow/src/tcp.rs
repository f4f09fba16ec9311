//! TCP replay: per unit, a non-blocking connect() from a socket bound to the
//! sample's (saddr, sport) to its (daddr, dport); the SYN makes the kernel
//! pick a replica listener (reuseport selection happens on the listener
//! lookup of the SYN, net/ipv4/inet_hashtables.c inet_lhash2_lookup), and
//! accept() on the listeners shows which one got the connection. Both ends
//! close with SO_LINGER 0 (RST), so no TIME_WAIT blocks the 4-tuple for the
//! next policy.
//!
//! A policy that drops the SYN (SK_DROP) makes the lookup find no listener:
//! the kernel answers RST and the client sees ECONNREFUSED.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use socket2::{Domain, SockRef, Socket, Type};

use crate::error::ShadowError;
use crate::plan::{batches, Landing, ReplayOptions, Unit};
use crate::sys;

/// Connections in flight per batch: each holds a client fd until the batch
/// ends, so this bounds the replay's descriptors (RLIMIT_NOFILE is often 1024).
const MAX_TCP_BATCH: usize = 128;
const POLL_STEP_MS: u16 = 5;

pub(crate) fn replay(
    replica: &[OwnedFd],
    units: &[Unit],
    opts: &ReplayOptions,
) -> Result<Landing, ShadowError> {
    let mut landing = Landing::new(units.len());
    let mut pinned = None;
    let mut unsendable: Vec<String> = Vec::new();

    for range in batches(units, opts.batch_size.min(MAX_TCP_BATCH)) {
        let cpu = units[range.start].cpu;
        if pinned != Some(cpu) {
            sys::pin_thread(cpu)
                .map_err(|e| ShadowError::socket(format!("pinning sender to CPU {cpu}"), e))?;
            pinned = Some(cpu);
        }
        // (peer, local address) of the connection as the listener sees it -> unit
        let mut waiting: HashMap<(SocketAddr, IpAddr), usize> = HashMap::new();
        let mut clients: Vec<(usize, OwnedFd)> = Vec::with_capacity(range.len());
        for index in range.clone() {
            let unit = &units[index];
            match open_client(unit) {
                Ok(fd) => {
                    waiting.insert((unit.saddr, unit.daddr.ip()), index);
                    clients.push((index, fd));
                }
                Err(ClientError::Refused) => {}
                Err(ClientError::Setup(step, err)) => {
                    landing.unsendable += 1;
                    if unsendable.len() < 3 {
                        unsendable.push(format!("{} -> {}: {step}: {err}", unit.saddr, unit.daddr));
                    }
                }
            }
        }

        let mut last_progress = Instant::now();
        // Ends when every connection was accepted or refused, or nothing
        // moved for drain_timeout.
        while !waiting.is_empty() {
            let mut progress = false;
            for (socket_index, listener) in replica.iter().enumerate() {
                // Bounded: each round takes one connection off the queue.
                while let Some((conn, peer)) = sys::accept(listener).map_err(|e| {
                    ShadowError::socket(format!("accept on listener {socket_index}"), e)
                })? {
                    let local = sys::local_addr(&conn).ok().flatten();
                    let _ = SockRef::from(&conn).set_linger(Some(Duration::ZERO));
                    drop(conn);
                    if let (Some(peer), Some(local)) = (peer, local) {
                        if let Some(index) = waiting.remove(&(peer, local.ip())) {
                            landing.record(index, socket_index as u32);
                            progress = true;
                        }
                    }
                }
            }
            if waiting.is_empty() {
                break;
            }
            // Refused connections (SK_DROP -> RST).
            for (index, client) in &clients {
                let key = (units[*index].saddr, units[*index].daddr.ip());
                if !waiting.contains_key(&key) {
                    continue;
                }
                let err = SockRef::from(client)
                    .take_error()
                    .ok()
                    .flatten()
                    .and_then(|e| e.raw_os_error());
                if err == Some(libc::ECONNREFUSED) || err == Some(libc::ECONNRESET) {
                    waiting.remove(&key);
                    progress = true;
                }
            }
            if progress {
                last_progress = Instant::now();
                continue;
            }
            if last_progress.elapsed() > opts.drain_timeout {
                landing.lost += waiting.len();
                break;
            }
            sys::poll_readable(replica, POLL_STEP_MS)
                .map_err(|e| ShadowError::socket("poll", e))?;
        }
        drop(clients);
    }
    if landing.unsendable > 0 {
        landing.notes.push(format!(
            "{} flows could not be sent (e.g. {})",
            landing.unsendable,
            unsendable.join("; ")
        ));
    }
    Ok(landing)
}

enum ClientError {
    Refused,
    Setup(&'static str, io::Error),
}

/// A client socket bound to the sample's source, connecting to its group
/// address. IP_FREEBIND/IPV6_FREEBIND allow binding any source address.
fn open_client(unit: &Unit) -> Result<OwnedFd, ClientError> {
    let v4 = unit.saddr.is_ipv4();
    let domain = if v4 { Domain::IPV4 } else { Domain::IPV6 };
    // socket2 adds SOCK_CLOEXEC.
    let socket = Socket::new(domain, Type::STREAM.nonblocking(), None)
        .map_err(|e| ClientError::Setup("socket", e))?;
    socket
        .set_reuse_address(true)
        .map_err(|e| ClientError::Setup("SO_REUSEADDR", e))?;
    if v4 {
        socket
            .set_freebind_v4(true)
            .map_err(|e| ClientError::Setup("IP_FREEBIND", e))?;
    } else {
        socket
            .set_freebind_v6(true)
            .map_err(|e| ClientError::Setup("IPV6_FREEBIND", e))?;
    }
    // SO_LINGER {on, 0}: close() sends RST and leaves no TIME_WAIT behind.
    socket
        .set_linger(Some(Duration::ZERO))
        .map_err(|e| ClientError::Setup("SO_LINGER", e))?;
    socket
        .bind(&unit.saddr.into())
        .map_err(|e| ClientError::Setup("bind (saddr, sport)", e))?;
    match sys::connect_nonblocking(&socket, unit.daddr) {
        Ok(()) => Ok(socket.into()),
        Err(err) if err.raw_os_error() == Some(libc::ECONNREFUSED) => Err(ClientError::Refused),
        Err(err) => Err(ClientError::Setup("connect", err)),
    }
}
