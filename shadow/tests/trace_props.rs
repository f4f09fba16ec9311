//! The trace parser never panics, names the failing line, and round-trips
//! whatever it accepts.

use proptest::prelude::*;
use skewscope_shadow::{parse_trace, write_trace, ShadowError};

/// Near-valid lines: every field drawn from valid and invalid values.
fn line() -> impl Strategy<Value = String> {
    let proto = prop_oneof![
        Just("\"udp\""),
        Just("\"tcp\""),
        Just("\"sctp\""),
        Just("7"),
        Just("null")
    ];
    let addr = prop_oneof![
        Just("\"10.0.0.1\"".to_owned()),
        Just("\"2001:db8::1\"".to_owned()),
        Just("\"::ffff:192.0.2.1\"".to_owned()),
        Just("\"224.0.0.1\"".to_owned()),
        Just("\"0.0.0.0\"".to_owned()),
        Just("\"::\"".to_owned()),
        Just("\"255.255.255.255\"".to_owned()),
        any::<[u8; 4]>().prop_map(|o| format!("\"{}.{}.{}.{}\"", o[0], o[1], o[2], o[3])),
        "\"[0-9a-f:.]{0,20}\"".prop_map(|s| s),
        Just("12".to_owned()),
    ];
    let number = prop_oneof![
        any::<u16>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        Just("1e3".to_owned()),
        Just("-0".to_owned()),
        Just("\"5\"".to_owned()),
        Just("null".to_owned()),
    ];
    (
        proto,
        addr.clone(),
        number.clone(),
        addr,
        number.clone(),
        number.clone(),
        proptest::option::of(number),
        any::<bool>(),
    )
        .prop_map(|(proto, saddr, sport, daddr, dport, weight, rx_cpu, extra)| {
            let mut s = format!(
                "{{\"proto\":{proto},\"saddr\":{saddr},\"sport\":{sport},\"daddr\":{daddr},\"dport\":{dport},\"weight\":{weight}"
            );
            if let Some(cpu) = rx_cpu {
                s.push_str(&format!(",\"rx_cpu\":{cpu}"));
            }
            if extra {
                s.push_str(",\"rx_queue\":1");
            }
            s.push('}');
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = parse_trace(&text);
    }

    #[test]
    fn arbitrary_bytes_as_text_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_trace(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn near_valid_traces_parse_or_name_a_line(lines in proptest::collection::vec(line(), 1..8)) {
        let text = lines.join("\n");
        match parse_trace(&text) {
            Ok(samples) => {
                prop_assert_eq!(samples.len(), lines.len());
                let mut out = Vec::new();
                write_trace(&mut out, &samples).unwrap();
                let again = parse_trace(std::str::from_utf8(&out).unwrap()).unwrap();
                prop_assert_eq!(again, samples);
            }
            Err(ShadowError::Trace { line, message }) => {
                prop_assert!(line >= 1 && line <= lines.len());
                prop_assert!(!message.is_empty());
                // Every line before the failing one parses on its own.
                for ok in &lines[..line - 1] {
                    prop_assert!(parse_trace(ok).is_ok());
                }
                prop_assert!(parse_trace(&lines[line - 1]).is_err());
            }
            Err(other) => prop_assert!(false, "unexpected error kind: {other}"),
        }
    }
}
