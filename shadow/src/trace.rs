//! The flow-trace format: JSON lines, one flow sample per line.
//!
//! ```text
//! {"proto":"udp","saddr":"10.0.0.1","sport":40000,"daddr":"10.0.0.9","dport":53,"weight":1200,"rx_cpu":3,"rx_queue":3}
//! {"proto":"tcp","saddr":"2001:db8::1","sport":51000,"daddr":"2001:db8::9","dport":443,"weight":7}
//! ```
//!
//! `weight` (default 1) is the flow's traffic in any unit the recorder chose
//! (packets, bytes, events); `rx_cpu` and `rx_queue` are optional. Blank lines
//! are skipped; unknown fields are refused so a misspelled field is not
//! silently dropped. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, as a
//! dual-stack socket reports IPv4 peers) are read as IPv4.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::ShadowError;

/// Transport protocol of a flow (and of the replica group replaying it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Udp,
    Tcp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        })
    }
}

/// One observed flow of a reuseport group: its 4-tuple (as the server sees
/// it: `daddr:dport` is the group's address), its weight, and where it was
/// received.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct FlowSample {
    pub proto: Proto,
    pub saddr: IpAddr,
    pub sport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    /// Traffic attributed to the flow (packets, bytes or events).
    pub weight: u64,
    /// CPU that ran the receive path (softirq) for this flow, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_cpu: Option<u32>,
    /// NIC RX queue the flow arrived on, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_queue: Option<u32>,
}

/// A line as written; validated into a [`FlowSample`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TraceLine {
    proto: Proto,
    saddr: String,
    sport: u16,
    daddr: String,
    dport: u16,
    #[serde(default = "default_weight")]
    weight: u64,
    #[serde(default)]
    rx_cpu: Option<u32>,
    #[serde(default)]
    rx_queue: Option<u32>,
}

fn default_weight() -> u64 {
    1
}

/// Parses a whole trace. The first invalid line stops the parse and is
/// named (1-based) in the error.
pub fn parse_trace(text: &str) -> Result<Vec<FlowSample>, ShadowError> {
    let mut samples = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let sample = parse_line(line).map_err(|message| ShadowError::Trace {
            line: index + 1,
            message,
        })?;
        samples.push(sample);
    }
    Ok(samples)
}

/// Parses one JSON line into a validated sample.
pub fn parse_line(line: &str) -> Result<FlowSample, String> {
    let raw: TraceLine = serde_json::from_str(line).map_err(|err| json_message(&err))?;
    let saddr = parse_addr("saddr", &raw.saddr)?;
    let daddr = parse_addr("daddr", &raw.daddr)?;
    if saddr.is_ipv4() != daddr.is_ipv4() {
        return Err(format!(
            "saddr {saddr} and daddr {daddr} are of different address families"
        ));
    }
    if raw.sport == 0 {
        return Err("sport 0 is not a valid source port".to_owned());
    }
    if raw.dport == 0 {
        return Err("dport 0 is not a valid destination port".to_owned());
    }
    Ok(FlowSample {
        proto: raw.proto,
        saddr,
        sport: raw.sport,
        daddr,
        dport: raw.dport,
        weight: raw.weight,
        rx_cpu: raw.rx_cpu,
        rx_queue: raw.rx_queue,
    })
}

/// An address a unicast flow can carry: not unspecified, multicast or the
/// IPv4 broadcast (multicast reaches every socket of a group: nothing to
/// steer).
fn parse_addr(field: &str, text: &str) -> Result<IpAddr, String> {
    let addr: IpAddr = text
        .parse()
        .map_err(|_| format!("{field} {text:?} is not an IPv4 or IPv6 address"))?;
    let addr = addr.to_canonical();
    let broadcast = matches!(addr, IpAddr::V4(v4) if v4.is_broadcast());
    if addr.is_unspecified() || addr.is_multicast() || broadcast {
        return Err(format!(
            "{field} {addr} is not a unicast address (multicast and broadcast flows are not steered)"
        ));
    }
    Ok(addr)
}

/// serde_json's message without its "at line 1 column N" suffix, with the
/// column kept (the line is ours).
fn json_message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let bare = match text.rfind(" at line ") {
        Some(pos) => &text[..pos],
        None => text.as_str(),
    };
    if err.column() > 0 {
        format!("{bare} (column {})", err.column())
    } else {
        bare.to_owned()
    }
}

/// Reads and parses a trace file.
pub fn read_trace(path: impl AsRef<Path>) -> Result<Vec<FlowSample>, ShadowError> {
    let path = path.as_ref();
    let text = fs::read_to_string(path).map_err(|source| ShadowError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_trace(&text)
}

/// Writes samples as a trace (one JSON object per line); `parse_trace`
/// reads it back unchanged.
pub fn write_trace(mut w: impl Write, samples: &[FlowSample]) -> Result<(), ShadowError> {
    for sample in samples {
        serde_json::to_writer(&mut w, sample)
            .map_err(|err| ShadowError::Write(std::io::Error::other(err)))?;
        w.write_all(b"\n").map_err(ShadowError::Write)?;
    }
    w.flush().map_err(ShadowError::Write)
}

/// The reuseport group a sample belongs to, as far as a trace can tell:
/// protocol and destination port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    pub proto: Proto,
    pub dport: u16,
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.proto, self.dport)
    }
}

impl FlowSample {
    pub fn group(&self) -> GroupKey {
        GroupKey {
            proto: self.proto,
            dport: self.dport,
        }
    }
}

/// Splits a trace that covers several groups into one sample list per group
/// ([`crate::replay`] replays one group at a time).
pub fn split_by_group(samples: &[FlowSample]) -> BTreeMap<GroupKey, Vec<FlowSample>> {
    let mut groups: BTreeMap<GroupKey, Vec<FlowSample>> = BTreeMap::new();
    for sample in samples {
        groups
            .entry(sample.group())
            .or_default()
            .push(sample.clone());
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn parses_v4_and_v6_lines_with_defaults() {
        let text = concat!(
            r#"{"proto":"udp","saddr":"10.0.0.1","sport":40000,"daddr":"10.0.0.9","dport":53,"weight":1200,"rx_cpu":3,"rx_queue":2}"#,
            "\n\r\n",
            r#"{"proto":"tcp","saddr":"2001:db8::1","sport":51000,"daddr":"2001:db8::9","dport":443}"#,
            "\r\n"
        );
        let samples = parse_trace(text).unwrap();
        assert_eq!(
            samples,
            vec![
                FlowSample {
                    proto: Proto::Udp,
                    saddr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                    sport: 40000,
                    daddr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)),
                    dport: 53,
                    weight: 1200,
                    rx_cpu: Some(3),
                    rx_queue: Some(2),
                },
                FlowSample {
                    proto: Proto::Tcp,
                    saddr: "2001:db8::1".parse().unwrap(),
                    sport: 51000,
                    daddr: "2001:db8::9".parse().unwrap(),
                    dport: 443,
                    weight: 1,
                    rx_cpu: None,
                    rx_queue: None,
                },
            ]
        );
    }

    #[test]
    fn v4_mapped_addresses_read_as_v4() {
        let line =
            r#"{"proto":"udp","saddr":"::ffff:10.1.2.3","sport":1,"daddr":"10.0.0.9","dport":53}"#;
        let sample = parse_line(line).unwrap();
        assert_eq!(sample.saddr, IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)));
    }

    #[test]
    fn errors_name_the_line_and_the_problem() {
        let ok = r#"{"proto":"udp","saddr":"10.0.0.1","sport":1,"daddr":"10.0.0.9","dport":53}"#;
        let cases = [
            (
                r#"{"proto":"sctp","saddr":"10.0.0.1","sport":1,"daddr":"10.0.0.9","dport":53}"#,
                "unknown variant `sctp`",
            ),
            (
                r#"{"saddr":"10.0.0.1","sport":1,"daddr":"10.0.0.9","dport":53}"#,
                "missing field `proto`",
            ),
            (
                r#"{"proto":"udp","saddr":"10.0.0.300","sport":1,"daddr":"10.0.0.9","dport":53}"#,
                "saddr \"10.0.0.300\" is not an IPv4 or IPv6 address",
            ),
            (
                r#"{"proto":"udp","saddr":"10.0.0.1","sport":70000,"daddr":"10.0.0.9","dport":53}"#,
                "invalid value: integer `70000`",
            ),
            (
                r#"{"proto":"udp","saddr":"10.0.0.1","sport":1,"daddr":"::1","dport":53}"#,
                "different address families",
            ),
            (
                r#"{"proto":"udp","saddr":"10.0.0.1","sport":1,"daddr":"239.1.1.1","dport":53}"#,
                "daddr 239.1.1.1 is not a unicast address",
            ),
            (
                r#"{"proto":"udp","saddr":"0.0.0.0","sport":1,"daddr":"10.0.0.9","dport":53}"#,
                "saddr 0.0.0.0 is not a unicast address",
            ),
            (
                r#"{"proto":"udp","saddr":"10.0.0.1","sport":0,"daddr":"10.0.0.9","dport":53}"#,
                "sport 0",
            ),
            (
                r#"{"proto":"udp","saddr":"10.0.0.1","sport":1,"daddr":"10.0.0.9","dport":53,"rxcpu":1}"#,
                "unknown field `rxcpu`",
            ),
            (
                r#"{"proto":"udp","saddr":"10.0.0.1","sport":1,"daddr":"10.0.0.9","dport":53,"weight":-1}"#,
                "invalid value: integer `-1`",
            ),
            ("not json", "expected ident (column 2)"),
        ];
        for (bad, expected) in cases {
            let text = format!("{ok}\n\n{bad}\n{ok}\n");
            let err = parse_trace(&text).unwrap_err();
            let message = err.to_string();
            assert!(
                message.starts_with("trace line 3: ") && message.contains(expected),
                "{bad}: got {message:?}, expected line 3 and {expected:?}"
            );
        }
    }

    #[test]
    fn write_then_parse_round_trips() {
        let samples = vec![
            FlowSample {
                proto: Proto::Tcp,
                saddr: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7)),
                sport: 65535,
                daddr: IpAddr::V6(Ipv6Addr::LOCALHOST),
                dport: 8443,
                weight: u64::MAX,
                rx_cpu: None,
                rx_queue: Some(0),
            },
            FlowSample {
                proto: Proto::Udp,
                saddr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                sport: 1,
                daddr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
                dport: 53,
                weight: 0,
                rx_cpu: Some(1),
                rx_queue: None,
            },
        ];
        let mut out = Vec::new();
        write_trace(&mut out, &samples).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            r#"{"proto":"tcp","saddr":"2001:db8::7","sport":65535,"daddr":"::1","dport":8443,"weight":18446744073709551615,"rx_queue":0}"#
        );
        assert_eq!(parse_trace(&text).unwrap(), samples);
    }

    #[test]
    fn splits_by_protocol_and_port() {
        let text = concat!(
            r#"{"proto":"udp","saddr":"10.0.0.1","sport":1,"daddr":"10.0.0.9","dport":53}"#,
            "\n",
            r#"{"proto":"tcp","saddr":"10.0.0.1","sport":1,"daddr":"10.0.0.9","dport":53}"#,
            "\n",
            r#"{"proto":"udp","saddr":"10.0.0.2","sport":1,"daddr":"10.0.0.9","dport":53}"#,
        );
        let groups = split_by_group(&parse_trace(text).unwrap());
        let sizes: Vec<(String, usize)> = groups
            .iter()
            .map(|(k, v)| (k.to_string(), v.len()))
            .collect();
        assert_eq!(
            sizes,
            vec![("udp/53".to_owned(), 2), ("tcp/53".to_owned(), 1)]
        );
    }
}
