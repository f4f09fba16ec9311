//! `make bench`: what the agent's default probes cost the data path.
//!
//! A UDP flood over loopback inside a private network namespace, into a 4-socket
//! SO_REUSEPORT group with one draining thread per socket, measured in datagrams the
//! group received per second. Each round runs three arms in turn: without the agent;
//! with the agent as it runs by default (`Collector::new` plus one `collect()`, every
//! default probe loaded and the group's port watched, under the default probe budget of
//! 1.5% of a CPU, agent/src/collect/probe_budget.rs); and with the probes attached all the time
//! (`--probe-budget off`, exact counts at any rate). The medians and their ratios to the
//! run without are printed side by side (target: default ratio >= 0.97), with the share
//! of the run the budget kept the probes attached. Every run floods for WARMUP first,
//! untimed, so the budget has judged the rate (it looks at the last second) before the
//! timed part: the figure is the steady state of a long-running agent. Then one more run
//! with the probes attached all the time while BPF run-time stats are on gives each
//! program's own cost: BPF_ENABLE_STATS (bpf(2), Linux 5.8) accounts run time while the
//! returned fd is held, so no sysctl is written.
//!
//! Loopback delivers in the sender's softirq on the sender's CPU, so one pinned sender
//! does the whole send-and-deliver path per datagram (about 1.6 us on a 2-vCPU 6.18 VM)
//! and that CPU is the bottleneck the ratio measures; the readers run on the other CPU
//! and poll while the flood runs (a sleeping reader would make each datagram pay a
//! wakeup whose frequency depends on the readers' own speed). Next to the wall-clock
//! ratio, the sender's CPU time per datagram gives the same ratio unmoved by other
//! processes taking the CPU. A round waits (up to 30 s) while another process holds
//! BPF programs: another agent's probes would run on the runs without ours too.
//!
//! The per-program table is the programs' own run time. Attaching a program to a
//! tracepoint costs ~30-40 ns per datagram before it does anything (measured with an
//! empty tp_btf program on sk_data_ready on that VM), so with five hooks per datagram
//! (softirq entry and exit, sk_data_ready twice, netif_receive_skb) attached all the
//! time the ratio cannot reach 0.97 on this path: 3% of 1.6 us is about one empty hook.
//! That is why the default is a budget, not a cheaper program.
//!
//! Each round also runs the same three arms on the common server shape (issue 14): the
//! group on the host's loopback (127.0.0.1), a sender the scheduler places, and readers
//! blocking in recvmmsg, each table with the budget's measured cost per packet and the
//! probes' share of the busiest CPU (probe_budget.rs's calibration) beside the budget.
//!
//! Root only (netns, eBPF): prints why and exits 0 otherwise. Every loop is bounded:
//! ROUNDS x 2 runs of RUN_SECS, a warm-up and one accounted run. Overrides:
//! SKEWSCOPE_BENCH_ROUNDS (1..=20, default 7), SKEWSCOPE_BENCH_RUN_SECS (1..=10,
//! default 2).

use std::net::UdpSocket;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use skewscope::collect::{CollectOptions, Collector, ProbeSampling};
use skewscope::snapshot::SourceOutcome;
use skewscope::sources::netns::in_netns;
use skewscope::sources::HostRoot;
use skewscope_probes::ProgramStats;

const ADDR: [u8; 4] = [10, 77, 0, 1];
const PORT: u16 = 9400;
/// The server shape's group: on the host's loopback, so the agent sees it as any server.
const HOST_ADDR: [u8; 4] = [127, 0, 0, 1];
const HOST_PORT: u16 = 9401;
const GROUP_SOCKETS: usize = 4;
const SOURCE_PORTS: usize = 32;
const BATCH: usize = 32;
const PAYLOAD_BYTES: usize = 64;
const TARGET_RATIO: f64 = 0.97;
/// Untimed flood before each timed one (see the module comment).
const WARMUP: Duration = Duration::from_millis(1500);
/// How long a round waits for other processes' BPF programs to go away.
const FOREIGN_WAIT: Duration = Duration::from_secs(30);

/// A private network namespace with lo up and ADDR on it; deleted on drop (also when a
/// panic unwinds through main).
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Result<Self, String> {
        let name = format!("ss-bench-overhead-{}", std::process::id());
        let ns = Netns { name };
        ns.ip(&["netns", "add", &ns.name])?;
        ns.ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        let addr = format!("{}/32", ipv4(ADDR));
        ns.ip(&["-n", &ns.name, "addr", "add", &addr, "dev", "lo"])?;
        Ok(ns)
    }

    fn ip(&self, args: &[&str]) -> Result<(), String> {
        let out = Command::new("ip")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
        if !out.status.success() {
            return Err(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(skewscope::sources::netns::NETNS_RUN_DIR).join(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = self.ip(&["netns", "del", &self.name]) {
            eprintln!("overhead: {e}");
        }
    }
}

fn ipv4(a: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

fn sockaddr(addr: [u8; 4], port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_be_bytes(addr).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn check(rc: libc::c_int, what: &str) {
    assert!(rc >= 0, "{what}: {}", std::io::Error::last_os_error());
}

fn set_int(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: libc::c_int, what: &str) {
    // SAFETY: setsockopt on a socket we own with a c_int option value.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    check(rc, what);
}

fn udp_socket() -> OwnedFd {
    // SAFETY: socket(2) returns a new fd or -1.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check(fd, "socket");
    // SAFETY: fd is a fresh, valid descriptor we own.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn bind_to(fd: &OwnedFd, addr: [u8; 4], port: u16) {
    let sin = sockaddr(addr, port);
    // SAFETY: bind with a valid sockaddr_in and its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sin as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of_val(&sin) as libc::socklen_t,
        )
    };
    check(rc, "bind");
}

/// The group (GROUP_SOCKETS reuseport sockets on ADDR:PORT) and SOURCE_PORTS senders
/// connected to it, all made inside the namespace.
fn make_sockets(ns: &Netns) -> (Vec<UdpSocket>, Vec<UdpSocket>) {
    in_netns(&ns.path(), || make_group(ADDR, PORT)).expect("enter the bench namespace")
}

/// GROUP_SOCKETS reuseport sockets on addr:port and SOURCE_PORTS senders connected to
/// it, in the calling thread's namespace.
fn make_group(addr: [u8; 4], port: u16) -> (Vec<UdpSocket>, Vec<UdpSocket>) {
    {
        let group = (0..GROUP_SOCKETS)
            .map(|_| {
                let fd = udp_socket();
                set_int(&fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1, "SO_REUSEPORT");
                // Room for bursts while a reader is descheduled (root: FORCE ignores
                // net.core.rmem_max, which is left alone).
                set_int(
                    &fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    4 << 20,
                    "SO_RCVBUFFORCE",
                );
                bind_to(&fd, addr, port);
                let socket = UdpSocket::from(fd);
                socket
                    .set_read_timeout(Some(Duration::from_millis(50)))
                    .expect("SO_RCVTIMEO");
                socket
            })
            .collect();
        let senders = (0..SOURCE_PORTS)
            .map(|_| {
                let fd = udp_socket();
                bind_to(&fd, addr, 0);
                let socket = UdpSocket::from(fd);
                socket
                    .connect((ipv4(addr).as_str(), port))
                    .expect("connect sender");
                socket
            })
            .collect();
        (group, senders)
    }
}

fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t with one CPU set, applied to the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let rc = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        check(rc, "sched_setaffinity");
    }
}

/// One thread per group socket, reading with recvmmsg until `stop`; `received` counts
/// datagrams per socket. While `flooding`, readers poll without sleeping: a sleeping
/// reader makes every datagram's sk_data_ready pay a wakeup on the sender's CPU, and
/// how often readers sleep then depends on how fast they are -- read-side probe cost
/// would show up as a sender-side *gain*. Otherwise they block (50 ms timeout).
fn start_readers(
    group: Vec<UdpSocket>,
    reader_cpu: Option<usize>,
    stop: &Arc<AtomicBool>,
    flooding: &Arc<AtomicBool>,
    received: &Arc<Vec<AtomicU64>>,
) -> Vec<JoinHandle<()>> {
    group
        .into_iter()
        .enumerate()
        .map(|(i, socket)| {
            let (stop, flooding, received) = (stop.clone(), flooding.clone(), received.clone());
            std::thread::spawn(move || {
                if let Some(cpu) = reader_cpu {
                    pin_to_cpu(cpu);
                }
                let mut bufs = vec![[0u8; PAYLOAD_BYTES]; BATCH];
                let mut iovs: Vec<libc::iovec> = bufs
                    .iter_mut()
                    .map(|b| libc::iovec {
                        iov_base: b.as_mut_ptr() as *mut libc::c_void,
                        iov_len: b.len(),
                    })
                    .collect();
                // SAFETY: an all-zero mmsghdr is valid (no name, no control).
                let mut msgs: Vec<libc::mmsghdr> =
                    (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
                for (msg, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
                    msg.msg_hdr.msg_iov = iov;
                    msg.msg_hdr.msg_iovlen = 1;
                }
                while !stop.load(Ordering::Relaxed) {
                    let flags = if flooding.load(Ordering::Relaxed) {
                        libc::MSG_DONTWAIT
                    } else {
                        libc::MSG_WAITFORONE
                    };
                    // SAFETY: msgs/iovs/bufs outlive the call; SO_RCVTIMEO bounds it.
                    let n = unsafe {
                        libc::recvmmsg(
                            socket.as_raw_fd(),
                            msgs.as_mut_ptr(),
                            BATCH as libc::c_uint,
                            flags,
                            std::ptr::null_mut(),
                        )
                    };
                    if n > 0 {
                        received[i].fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect()
}

/// CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    check(rc, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Floods the group from every sender for `duration` on a thread pinned to
/// `sender_cpu`; returns datagrams sent, the time taken and the sender's CPU
/// time (which, without CONFIG_IRQ_TIME_ACCOUNTING, includes the softirq
/// delivery run on its way out of each send).
fn flood(
    senders: &[UdpSocket],
    sender_cpu: Option<usize>,
    duration: Duration,
) -> (u64, Duration, Duration) {
    std::thread::scope(|s| {
        s.spawn(|| {
            if let Some(cpu) = sender_cpu {
                pin_to_cpu(cpu);
            }
            let payload = [0x5au8; PAYLOAD_BYTES];
            let mut iov = libc::iovec {
                iov_base: payload.as_ptr() as *mut libc::c_void,
                iov_len: payload.len(),
            };
            // SAFETY: an all-zero mmsghdr is valid; connected sockets need no name.
            let mut msgs: Vec<libc::mmsghdr> =
                (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
            for msg in &mut msgs {
                msg.msg_hdr.msg_iov = &mut iov;
                msg.msg_hdr.msg_iovlen = 1;
            }
            let mut sent = 0u64;
            let cpu_start = thread_cpu_time();
            let start = Instant::now();
            'flood: loop {
                for socket in senders {
                    if start.elapsed() >= duration {
                        break 'flood;
                    }
                    // SAFETY: msgs and the iovec they point to outlive the call.
                    let n = unsafe {
                        libc::sendmmsg(
                            socket.as_raw_fd(),
                            msgs.as_mut_ptr(),
                            BATCH as libc::c_uint,
                            0,
                        )
                    };
                    if n > 0 {
                        sent += n as u64;
                    }
                }
            }
            (sent, start.elapsed(), thread_cpu_time() - cpu_start)
        })
        .join()
        .expect("sender thread")
    })
}

struct Run {
    received_pps: f64,
    received: u64,
    sent: u64,
    /// Sender CPU time per datagram sent.
    sender_cpu_ns: f64,
    /// Share of the timed flood the agent's probes were attached (None: no agent, or
    /// probes attached all the time).
    attached_share: Option<f64>,
    /// The budget's cost per packet at the end of the run (ns) and whether measured.
    packet_cost: Option<(f64, bool)>,
    /// The probes' share of the busiest CPU as the budget computes it (cost x rate x duty).
    cpu_share: Option<f64>,
    /// CPU time of the agent's duty-cycle thread (rates, attach, detach, calibration) as a
    /// share of the timed flood: what the agent takes from the bench's busy CPUs itself.
    duty_thread_share: Option<f64>,
}

/// User + system time of this process's thread named `name` (/proc/self/task/*/stat,
/// fields 14 and 15, in clock ticks).
fn thread_cpu(name: &str) -> Option<Duration> {
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
        let (comm, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
        if comm != name {
            continue;
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        return Some(Duration::from_secs_f64(ticks / tick));
    }
    None
}

/// What a run needs: the senders, the readers' counters and switch, the CPU to send on
/// (None: wherever the scheduler puts it), and whether readers poll during the flood.
struct Bench {
    senders: Vec<UdpSocket>,
    received: Arc<Vec<AtomicU64>>,
    flooding: Arc<AtomicBool>,
    sender_cpu: Option<usize>,
    poll: bool,
}

fn measured_run(bench: &Bench, duration: Duration, mut agent: Option<&mut Collector>) -> Run {
    let total = || {
        bench
            .received
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    bench.flooding.store(bench.poll, Ordering::Relaxed);
    // Let readers blocked in recvmmsg time out and start polling.
    std::thread::sleep(Duration::from_millis(100));
    flood(&bench.senders, bench.sender_cpu, WARMUP);
    let first = agent.as_mut().map(|a| a.collect());
    let before = total();
    let duty_before = thread_cpu("probe-duty");
    let (sent, elapsed, cpu) = flood(&bench.senders, bench.sender_cpu, duration);
    let got = total() - before;
    let duty_thread_share = duty_before
        .zip(thread_cpu("probe-duty"))
        .map(|(a, b)| b.saturating_sub(a).as_secs_f64() / elapsed.as_secs_f64());
    let last = agent.map(|a| a.collect());
    let end = last.as_ref().and_then(|b| b.probe_coverage);
    let attached_share = first.zip(last.as_ref()).and_then(|(a, b)| {
        let (ca, cb) = (a.probe_coverage?, b.probe_coverage?);
        let secs = b.taken_at.duration_since(a.taken_at).as_secs_f64();
        Some((cb.attached - ca.attached).as_secs_f64() / secs)
    });
    bench.flooding.store(false, Ordering::Relaxed);
    let secs = elapsed.as_secs_f64();
    // Let the readers drain what is queued so the next run starts empty.
    std::thread::sleep(Duration::from_millis(200));
    Run {
        received_pps: got as f64 / secs,
        received: got,
        sent,
        sender_cpu_ns: cpu.as_nanos() as f64 / sent.max(1) as f64,
        attached_share,
        packet_cost: end.map(|c| (c.packet_cost_ns, c.cost_measured)),
        cpu_share: end.map(|c| c.cpu_share),
        duty_thread_share,
    }
}

/// Other processes holding BPF programs or links (pid and comm): another agent or test
/// with probes attached would run its programs on our datagrams, in the runs without
/// ours too. Read from /proc/PID/fd (anon_inode:bpf-prog, anon_inode:bpf_link).
fn foreign_bpf_holders() -> Vec<String> {
    let own = std::process::id();
    let mut holders = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return holders;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| {
                let target = target.to_string_lossy();
                target == "anon_inode:bpf-prog" || target == "anon_inode:bpf_link"
            })
        });
        if holds {
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            holders.push(format!("{pid} {}", comm.trim()));
        }
    }
    holders
}

/// Waits (at most `limit`) until no other process holds BPF programs; returns those
/// still holding some.
fn wait_for_no_foreign_bpf(limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    loop {
        let holders = foreign_bpf_holders();
        if holders.is_empty() || Instant::now() >= deadline {
            return holders;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The agent as production runs it: every default probe loaded, one cycle collected so
/// every reuseport group's (protocol, port), ours included, is watched.
fn start_agent(sampling: ProbeSampling) -> Collector {
    let mut opts = CollectOptions::new(HostRoot::default());
    opts.probe_sampling = sampling;
    let mut collector = Collector::new(opts);
    let snapshot = collector.collect();
    for source in &snapshot.sources {
        if source.name.starts_with("ebpf_") && source.status != SourceOutcome::Ok {
            eprintln!(
                "overhead: {} {:?}: {}",
                source.name,
                source.status,
                source.error.as_deref().unwrap_or("")
            );
        }
    }
    let watched = snapshot.listeners.as_ref().is_some_and(|l| {
        l.sockets
            .iter()
            .any(|s| s.local.port() == PORT && s.local.ip().to_string() == ipv4(ADDR))
            && l.sockets.iter().any(|s| s.local.port() == HOST_PORT)
    });
    if !watched {
        eprintln!("overhead: the agent did not see both bench groups; a port is not watched");
    }
    collector
}

/// BPF_ENABLE_STATS(BPF_STATS_RUN_TIME): the kernel accounts every program's run count
/// and time while the returned fd is open (Linux 5.8, commit d46edd671a14 "bpf: Sharing
/// bpf runtime stats with BPF_ENABLE_STATS").
fn enable_bpf_stats() -> Result<OwnedFd, std::io::Error> {
    const BPF_ENABLE_STATS: libc::c_long = 32;
    const BPF_STATS_RUN_TIME: u32 = 0;
    // union bpf_attr's enable_stats member, padded like the kernel's check expects
    // (bytes past the member must be zero).
    let mut attr = [0u8; 16];
    attr[..4].copy_from_slice(&BPF_STATS_RUN_TIME.to_ne_bytes());
    // SAFETY: bpf(2) reads `attr` (size given) and returns a new fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_ENABLE_STATS,
            attr.as_mut_ptr(),
            attr.len() as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn env_bounded(name: &str, default: u64, max: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(default, |v| v.clamp(1, max))
}

fn main() {
    // `cargo bench` passes --bench; nothing to parse.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("overhead: skipped: needs root (network namespace, eBPF)");
        return;
    }
    if !skewscope_probes::probes_built() {
        println!("overhead: skipped: BPF objects not built (clang missing at build time)");
        return;
    }
    let rounds = env_bounded("SKEWSCOPE_BENCH_ROUNDS", 7, 20) as usize;
    let run = Duration::from_secs(env_bounded("SKEWSCOPE_BENCH_RUN_SECS", 2, 10));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (sender_cpu, reader_cpu) = if cpus >= 2 { (0, Some(1)) } else { (0, None) };

    let ns = match Netns::new() {
        Ok(ns) => ns,
        Err(e) => {
            println!("overhead: skipped: {e}");
            return;
        }
    };
    let (group, senders) = make_sockets(&ns);
    let stop = Arc::new(AtomicBool::new(false));
    let bench = Bench {
        senders,
        received: Arc::new((0..GROUP_SOCKETS).map(|_| AtomicU64::new(0)).collect()),
        flooding: Arc::new(AtomicBool::new(false)),
        sender_cpu: Some(sender_cpu),
        poll: true,
    };
    let mut readers = start_readers(group, reader_cpu, &stop, &bench.flooding, &bench.received);
    // The common server shape: host loopback, an unpinned sender, readers blocking in
    // recvmmsg (their flag stays false), placed by the scheduler.
    let (host_group, host_senders) = make_group(HOST_ADDR, HOST_PORT);
    let server = Bench {
        senders: host_senders,
        received: Arc::new((0..GROUP_SOCKETS).map(|_| AtomicU64::new(0)).collect()),
        flooding: Arc::new(AtomicBool::new(false)),
        sender_cpu: None,
        poll: false,
    };
    readers.extend(start_readers(
        host_group,
        None,
        &stop,
        &server.flooding,
        &server.received,
    ));

    println!(
        "overhead: {PAYLOAD_BYTES}-byte UDP datagrams from {SOURCE_PORTS} source ports \
         (sendmmsg x{BATCH}) into a {GROUP_SOCKETS}-socket SO_REUSEPORT group, two shapes: \
         [lab] loopback in netns {}, sender on CPU {sender_cpu}, polling readers on {}; \
         [server] host loopback {}:{HOST_PORT}, unpinned sender, readers blocking in \
         recvmmsg. {rounds} rounds of {}s per shape, without / with the agent's default \
         probes; a {:.1}% budget (cost share: the budget's own figure at the end of a run)",
        ns.name,
        reader_cpu.map_or("any CPU".to_owned(), |c| format!("CPU {c}")),
        ipv4(HOST_ADDR),
        run.as_secs(),
        100.0 * skewscope::collect::probe_budget::DEFAULT_CPU_BUDGET,
    );
    measured_run(&bench, Duration::from_millis(500), None); // warm-up
    measured_run(&server, Duration::from_millis(500), None);

    // (label, sampling): the arms with the agent, each beside the run without.
    let arms = [
        ("default (budget)", Some(ProbeSampling::DEFAULT)),
        ("attached all the time", Some(ProbeSampling::Continuous)),
    ];
    let shapes = [("lab", &bench), ("server", &server)];
    let mut runs: Vec<Vec<Vec<Run>>> = shapes
        .iter()
        .map(|_| vec![Vec::new(), Vec::new(), Vec::new()])
        .collect();
    for round in 0..rounds {
        for (shape, (name, b)) in shapes.iter().enumerate() {
            let foreign = wait_for_no_foreign_bpf(FOREIGN_WAIT);
            if !foreign.is_empty() {
                println!("    (other BPF users present, figures disturbed: {foreign:?})");
            }
            let mut line = format!("  round {} {name:<6}:", round + 1);
            let all = std::iter::once(("without", None)).chain(arms);
            for (i, (arm, sampling)) in all.enumerate() {
                let mut agent = sampling.map(start_agent);
                let r = measured_run(b, run, agent.as_mut());
                drop(agent);
                line += &format!(
                    " {arm} {:>7.0} pps ({:>4.0} ns/dgram{}{}{})",
                    r.received_pps,
                    r.sender_cpu_ns,
                    r.attached_share
                        .map_or(String::new(), |s| format!(", attached {:.0}%", 100.0 * s)),
                    r.cpu_share
                        .filter(|_| i == 1)
                        .map_or(String::new(), |s| format!(", cpu {:.2}%", 100.0 * s)),
                    r.duty_thread_share
                        .filter(|_| i == 1)
                        .map_or(String::new(), |s| format!(
                            ", duty thread {:.2}%",
                            100.0 * s
                        ))
                );
                if (r.received as f64) < 0.99 * r.sent as f64 {
                    line += " (readers fell behind)";
                }
                runs[shape][i].push(r);
            }
            println!("{line}");
        }
    }
    for (shape, (name, _)) in shapes.iter().enumerate() {
        print_table(name, &runs[shape], [arms[0].0, arms[1].0]);
    }

    wait_for_no_foreign_bpf(FOREIGN_WAIT);
    per_program_cost(&bench, run);

    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.join().expect("reader thread");
    }
    drop(ns);
}

/// The medians of one shape's arms, each ratio paired with the run without the agent of
/// the same round.
fn print_table(shape: &str, runs: &[Vec<Run>], arms: [&str; 2]) {
    let pps = |runs: &[Run]| median(&runs.iter().map(|r| r.received_pps).collect::<Vec<_>>());
    let cpu = |runs: &[Run]| median(&runs.iter().map(|r| r.sender_cpu_ns).collect::<Vec<_>>());
    // Ratios are paired: each round's arm against the run without it in the same round
    // (seconds apart, so drift in the machine's speed cancels), then the median.
    let paired = |arm: &[Run], f: &dyn Fn(&Run, &Run) -> f64| {
        median(
            &arm.iter()
                .zip(&runs[0])
                .map(|(a, w)| f(a, w))
                .collect::<Vec<_>>(),
        )
    };
    // The spread of the rounds' ratios: on a shared 2-vCPU VM whole runs move by several
    // percent, so the median is given with the range it comes from.
    let range = |arm: &[Run]| {
        let r: Vec<f64> = arm
            .iter()
            .zip(&runs[0])
            .map(|(a, w)| a.received_pps / w.received_pps)
            .collect();
        let lo = r.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{lo:.2}-{hi:.2}")
    };
    println!(
        "{:<26} {:>10} {:>8} {:>10} {:>7} {:>10} {:>9} {:>9} {:>8} {:>9} {:>10} {:>12}",
        format!("[{shape}] overhead (medians)"),
        "pps",
        "ratio",
        "rounds",
        "target",
        "ns/dgram",
        "added ns",
        "cpu ratio",
        "attached",
        "cost ns",
        "cpu share",
        "duty thread"
    );
    for (i, label) in ["without the agent", arms[0], arms[1]].iter().enumerate() {
        let arm = &runs[i];
        let share = median(
            &arm.iter()
                .map(|r| r.attached_share.unwrap_or(1.0))
                .collect::<Vec<_>>(),
        );
        let measured: Vec<f64> = arm
            .iter()
            .filter_map(|r| r.packet_cost.filter(|c| c.1).map(|c| c.0))
            .collect();
        let cpu_shares: Vec<f64> = arm.iter().filter_map(|r| r.cpu_share).collect();
        let duty_thread: Vec<f64> = arm.iter().filter_map(|r| r.duty_thread_share).collect();
        println!(
            "{:<26} {:>10.0} {:>8.3} {:>10} {:>7} {:>10.0} {:>+9.0} {:>9.3} {:>7.0}% {:>9} {:>10} {:>12}",
            label,
            pps(arm),
            paired(arm, &|a, w| a.received_pps / w.received_pps),
            if i == 0 { String::new() } else { range(arm) },
            if i == 1 {
                format!(">={TARGET_RATIO}")
            } else {
                String::new()
            },
            cpu(arm),
            paired(arm, &|a, w| a.sender_cpu_ns - w.sender_cpu_ns),
            // The sender's CPU time per datagram is what the probes add to; unlike
            // wall-clock pps it does not move when another process takes the CPU.
            paired(arm, &|a, w| w.sender_cpu_ns / a.sender_cpu_ns),
            if i == 0 { 0.0 } else { 100.0 * share },
            // Measured only under the budget (the continuous arm never calibrates).
            if i == 1 && !measured.is_empty() {
                format!("{:.0}", median(&measured))
            } else {
                "-".to_owned()
            },
            if i == 1 && !cpu_shares.is_empty() {
                format!("{:.2}%", 100.0 * median(&cpu_shares))
            } else {
                "-".to_owned()
            },
            if i == 1 && !duty_thread.is_empty() {
                format!("{:.2}%", 100.0 * median(&duty_thread))
            } else {
                "-".to_owned()
            },
        );
    }
}

/// Programs that run in the reading thread (on the readers' CPU); every other default
/// program runs in the sender's softirq delivery, on the CPU the ratio measures.
const READER_SIDE: &[&str] = &["rx/rx_recv_length", "rx/rx_copy_dgram"];

/// One more run with the agent while BPF run-time stats are on: runs and ns/run of each
/// attached program, and what that is per datagram received. run_time_ns spans the
/// program only: the tracepoint's dispatch to it (~40-50 ns per attached program on
/// the 6.18 VM this was written on) is not in it, and each run also counts the
/// stats' own two clock reads.
fn per_program_cost(bench: &Bench, run: Duration) {
    let agent = start_agent(ProbeSampling::Continuous);
    let before: Vec<(String, ProgramStats)> = agent.program_stats();
    let stats_fd = match enable_bpf_stats() {
        Ok(fd) => fd,
        Err(e) => {
            println!("per-program cost: unavailable (BPF_ENABLE_STATS: {e})");
            return;
        }
    };
    let probed = measured_run(bench, run, None);
    drop(stats_fd);
    let after = agent.program_stats();
    drop(agent);
    let datagrams = probed.received.max(1) as f64;
    println!(
        "per-program cost (BPF_ENABLE_STATS, one {}s run with the agent, {} datagrams \
         received, {:.0} pps with accounting on)",
        run.as_secs(),
        probed.received,
        probed.received_pps
    );
    println!(
        "  {:<32} {:<8} {:>11} {:>10} {:>8} {:>12}",
        "program", "CPU", "runs", "runs/dgram", "ns/run", "ns/datagram"
    );
    let (mut sender_total, mut reader_total) = (0.0, 0.0);
    for (name, stat) in &after {
        let earlier = before.iter().find(|(n, _)| n == name).map(|(_, s)| s);
        let runs = stat.run_count - earlier.map_or(0, |s| s.run_count);
        let ns = stat.run_time_ns - earlier.map_or(0, |s| s.run_time_ns);
        let per_datagram = ns as f64 / datagrams;
        let reader = READER_SIDE.contains(&name.as_str());
        if reader {
            reader_total += per_datagram;
        } else {
            sender_total += per_datagram;
        }
        let per_run = if runs > 0 {
            format!("{:.0}", ns as f64 / runs as f64)
        } else {
            "-".to_owned()
        };
        println!(
            "  {:<32} {:<8} {:>11} {:>10.2} {:>8} {:>12.1}",
            name,
            if reader { "reader" } else { "sender" },
            runs,
            runs as f64 / datagrams,
            per_run,
            per_datagram
        );
    }
    println!(
        "  {:<32} {:<8} {:>11} {:>10} {:>8} {:>12.1}",
        "total", "sender", "", "", "", sender_total
    );
    println!(
        "  {:<32} {:<8} {:>11} {:>10} {:>8} {:>12.1}",
        "total", "reader", "", "", "", reader_total
    );
    println!(
        "  (readers poll while the flood runs: most reader-side runs are reads that find \
         the queue empty)"
    );
}
