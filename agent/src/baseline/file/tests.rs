use super::*;
use crate::baseline::testutil::{baseline, report, Group};

fn sample() -> Baseline {
    baseline("a", 3, |_| report(&[Group::default()], 0.2))
}

fn err(text: &str) -> String {
    parse(text.as_bytes(), Path::new("b.json"))
        .unwrap_err()
        .to_string()
}

#[test]
fn a_written_baseline_reads_back_unchanged() {
    let b = sample();
    let text = to_text(&b);
    assert_eq!(parse(text.as_bytes(), Path::new("b.json")).unwrap(), b);
}

#[test]
fn unknown_keys_of_a_later_v1_are_ignored() {
    let mut v = serde_json::to_value(sample()).unwrap();
    v["added_later"] = 1.into();
    v["groups"][0]["added_later"] = "x".into();
    assert!(parse(v.to_string().as_bytes(), Path::new("b.json")).is_ok());
}

#[test]
fn a_truncated_file_names_the_file_and_where_it_ends() {
    let text = to_text(&sample());
    let cut = text.find("\"listeners\": [").unwrap() + 40;
    let e = err(&text[..cut]);
    assert!(
        e.starts_with("b.json: truncated: the JSON ends inside `groups[0].listeners"),
        "{e}"
    );
    assert!(e.contains("EOF while parsing"), "{e}");
}

#[test]
fn garbage_is_not_json() {
    let e = err("\u{1}\u{2}garbage");
    assert!(e.starts_with("b.json: not JSON: "), "{e}");
    let e = err("[1, 2]");
    assert_eq!(e, "b.json: not JSON: the top level is not an object");
}

#[test]
fn another_schema_or_none_is_refused_by_name() {
    let e = err(r#"{"schema":"skewscope.snapshot/v1","cpus":[]}"#);
    assert!(
        e.starts_with(
            "b.json: field `schema`: \"skewscope.snapshot/v1\" is not skewscope.baseline/v1"
        ),
        "{e}"
    );
    assert!(e.contains("snapshot --json"), "{e}");
    let e = err(r#"{"cycles":3}"#);
    assert_eq!(
        e,
        "b.json: field `schema`: missing: not a skewscope baseline (expected skewscope.baseline/v1)"
    );
    let e = err(r#"{"schema":7}"#);
    assert!(
        e.starts_with("b.json: field `schema`: 7 is not a string"),
        "{e}"
    );
}

#[test]
fn a_newer_version_is_refused_with_who_wrote_it() {
    let mut v = serde_json::to_value(sample()).unwrap();
    v["schema"] = "skewscope.baseline/v2".into();
    v["agent_version"] = "9.0.0".into();
    let e = err(&v.to_string());
    assert!(
        e.starts_with("b.json: field `schema`: \"skewscope.baseline/v2\" was written by skewscope 9.0.0, newer than this skewscope"),
        "{e}"
    );
}

#[test]
fn a_field_of_the_wrong_type_is_named_by_its_path() {
    let mut v = serde_json::to_value(sample()).unwrap();
    v["groups"][0]["cycles"] = "many".into();
    let e = err(&v.to_string());
    assert!(
        e.starts_with("b.json: field `groups[0].cycles`: invalid type: string \"many\""),
        "{e}"
    );
    let mut v = serde_json::to_value(sample()).unwrap();
    v.as_object_mut().unwrap().remove("fingerprint");
    let e = err(&v.to_string());
    assert!(e.contains("missing field `fingerprint`"), "{e}");
}

#[test]
fn numbers_typing_cannot_check_are_checked() {
    let mut v = serde_json::to_value(sample()).unwrap();
    v["groups"][0]["indices"]["lsi"]["p95"] = 9.0.into();
    let e = err(&v.to_string());
    assert!(
        e.starts_with("b.json: field `groups[0].indices.lsi`: p50"),
        "{e}"
    );
    let mut v = serde_json::to_value(sample()).unwrap();
    v["groups"][0]["regimes"]["GREEN"] = 3.0.into();
    assert!(err(&v.to_string()).contains("field `groups[0].regimes.GREEN`: 3 is not a share"));
    let mut v = serde_json::to_value(sample()).unwrap();
    v["recorded_secs"] = (-1.0).into();
    assert!(err(&v.to_string()).contains("field `recorded_secs`"));
}

#[test]
fn flows_are_checked_by_the_shadow_trace_parser() {
    let mut v = serde_json::to_value(sample()).unwrap();
    v["flow_trace"] = serde_json::json!([
        {"proto":"udp","saddr":"10.0.0.2","sport":1000,"daddr":"10.0.0.1","dport":9000,"weight":3},
        {"proto":"udp","saddr":"224.0.0.1","sport":1000,"daddr":"10.0.0.1","dport":9000,"weight":3}
    ]);
    let e = err(&v.to_string());
    assert!(
        e.starts_with("b.json: field `flow_trace[1]`: saddr 224.0.0.1 is not a unicast"),
        "{e}"
    );
}
