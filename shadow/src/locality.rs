//! Self-check of the CPU premise: over loopback the receive path (and so
//! the reuseport selection and a program's bpf_get_smp_processor_id()) runs
//! on the sending CPU. RPS on `lo` (e.g. a host-wide
//! net.core.rps_default_mask, Linux 6.2+) would break it, so before
//! replaying, one datagram is sent from every CPU the replay will use and
//! the receiving socket's SO_INCOMING_CPU (Linux 3.19, the CPU that last
//! handled a packet for it) is compared with the sender's.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use socket2::SockRef;

use crate::error::ShadowError;
use crate::sys;

/// Returns one note per CPU whose datagram was received elsewhere (empty
/// when the premise holds). Must run inside the private namespace.
pub(crate) fn check(cpus: &[usize]) -> Result<Vec<String>, ShadowError> {
    let err = |step: &str| {
        let step = format!("CPU locality check: {step}");
        move |e| ShadowError::socket(step, e)
    };
    let probe = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(err("bind probe"))?;
    probe
        .set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(err("probe timeout"))?;
    let target: SocketAddr = probe.local_addr().map_err(err("probe address"))?;
    let sender = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(err("bind sender"))?;
    // UDP updates sk_incoming_cpu for connected sockets only
    // (net/ipv4/udp.c __udp_queue_rcv_skb).
    probe
        .connect(sender.local_addr().map_err(err("sender address"))?)
        .map_err(err("connect probe"))?;
    let mut notes = Vec::new();
    let mut buf = [0u8; 8];
    for &cpu in cpus {
        sys::pin_thread(cpu).map_err(err(&format!("pinning to CPU {cpu}")))?;
        sender.send_to(&[1], target).map_err(err("send"))?;
        probe.recv(&mut buf).map_err(err("receive (500 ms)"))?;
        // socket2 widens the c_int to usize; narrowed back, -1 (no packet yet) stays -1.
        let incoming = SockRef::from(&probe)
            .cpu_affinity()
            .map_err(err("SO_INCOMING_CPU"))? as libc::c_int;
        if usize::try_from(incoming).ok() != Some(cpu) {
            notes.push(format!(
                "sent from CPU {cpu} but received on CPU {incoming} (RPS on lo?): CPU-dependent policies such as builtin:cpu are not faithful in this replay"
            ));
        }
    }
    Ok(notes)
}
