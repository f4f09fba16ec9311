use std::io::{Read, Write};
use std::net::TcpStream;

use super::*;
use crate::config::{OtlpCompression, OtlpConfig, OtlpProtocol};
use crate::report::{CpuReport, HostIndices, HostReport, SNAPSHOT_SCHEMA};

fn report(cpus: &[u32]) -> Report {
    Report {
        schema: SNAPSHOT_SCHEMA,
        window_secs: Some(1.0),
        cpus: cpus
            .iter()
            .map(|&cpu| CpuReport {
                cpu,
                net_rx_softirqs: Some(10),
                net_tx_softirqs: None,
                softirq_time_ms: None,
                net_rx_time_us: None,
                softnet: None,
                net_rx_share: Some(1.0 / cpus.len() as f64),
            })
            .collect(),
        devices: Vec::new(),
        reuseport_groups: Vec::new(),
        host: HostReport {
            indices: HostIndices::default(),
            sysctls: None,
        },
        transitions: Vec::new(),
        sources: Vec::new(),
        shadow: Vec::new(),
        probe_sampling: None,
    }
}

fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

fn cpu_series(text: &str, cpu: u32) -> usize {
    let label = format!("cpu=\"{cpu}\"");
    text.lines()
        .filter(|l| l.starts_with("skewscope_cpu_net_rx_share") && l.contains(&label))
        .count()
}

/// With OTLP on, a CPU (any object) gone from the report is gone from the very next
/// scrape, however many OTLP collections ran since the last one.
#[test]
fn a_gone_object_leaves_the_next_scrape_while_otlp_collects() {
    // Nothing listens there: exports fail at once, the reader collects all the same.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}/v1/metrics", closed.local_addr().unwrap());
    drop(closed);
    let cfg = TelemetryConfig {
        interval: Duration::from_secs(1),
        otlp: Some(OtlpConfig {
            protocol: OtlpProtocol::HttpProtobuf,
            endpoint,
            headers: BTreeMap::new(),
            timeout: Duration::from_millis(200),
            compression: OtlpCompression::None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
        }),
        export_interval: Duration::from_millis(50),
        prometheus_listen: Some("127.0.0.1:0".parse().unwrap()),
        limits: Limits::default(),
        resource: BTreeMap::new(),
    };
    let t = Telemetry::start(&cfg).unwrap();
    let addr = t.prometheus_addr().unwrap();
    t.publish(&report(&[0, 1]), Duration::from_millis(1));
    let first = scrape(addr);
    assert_eq!(cpu_series(&first, 1), 1, "{first}");
    // Several OTLP collections of the two-CPU report.
    std::thread::sleep(Duration::from_millis(400));
    t.publish(&report(&[0]), Duration::from_millis(1));
    let next = scrape(addr);
    assert_eq!(cpu_series(&next, 0), 1, "{next}");
    assert_eq!(cpu_series(&next, 1), 0, "CPU 1 is gone: {next}");
    t.shutdown();
}
