// TEMPORARY calibration experiment; deleted before handing back.
use aya::programs::{BtfTracePoint, RawTracePoint};
use aya::{Btf, Ebpf};
use std::net::UdpSocket;
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

fn main() {
    let data = std::fs::read("/tmp/calib/calib.bpf.o").unwrap();
    let btf = Btf::from_sys_fs().unwrap();
    let mut ebpf = Ebpf::load(&data).unwrap();
    let names: Vec<String> = ebpf.programs().map(|(n, _)| n.to_owned()).collect();
    for n in &names {
        let p = ebpf.program_mut(n).unwrap();
        if n.starts_with("c_raw") || n == "c_coreread4" {
            let p: &mut RawTracePoint = p.try_into().unwrap();
            p.load().unwrap();
            p.attach("netif_receive_skb").unwrap();
        } else {
            let p: &mut BtfTracePoint = p.try_into().unwrap();
            if let Err(e) = p.load("netif_receive_skb", &btf) {
                panic!("{n}: {e:?}");
            }
            p.attach().unwrap();
        }
    }
    let mut attr = [0u8; 16];
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 32, attr.as_mut_ptr(), 16) };
    assert!(fd >= 0);
    let _fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_nonblocking(true).unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    tx.connect(rx.local_addr().unwrap()).unwrap();
    let mut buf = [0u8; 64];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        for _ in 0..64 {
            tx.send(&buf[..32]).unwrap();
            n += 1;
        }
        while rx.recv(&mut buf).is_ok() {}
    }
    println!("{n} datagrams");
    let mut rows = Vec::new();
    for (name, p) in ebpf.programs() {
        let info = p.info().unwrap();
        rows.push((
            name.to_owned(),
            info.run_count(),
            info.run_time().as_nanos() as u64,
        ));
    }
    rows.sort();
    for (name, runs, ns) in rows {
        println!(
            "{name:<14} runs {runs:>8} ns/run {:>6.1}",
            ns as f64 / runs.max(1) as f64
        );
    }
}
