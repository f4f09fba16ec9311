//! Shared helpers of the privileged replay tests.
//!
//! Gate: the replay unshares a network namespace and loads sk_reuseport
//! programs, which needs CAP_SYS_ADMIN + CAP_NET_ADMIN, and BPF objects built
//! with clang. The gate is the workspace's one
//! ([`skewscope_test_support::Needs`]): without those a test skips with the
//! reason on stderr, and SKEWSCOPE_REQUIRE_PRIVILEGED=1 turns the skip into
//! a failure.

#![allow(dead_code)]

use std::net::IpAddr;
use std::path::PathBuf;

use skewscope_shadow::{replay_privileges, selectors_built, Candidate, FlowSample, Proto};
use skewscope_test_support::Needs;

pub fn can_run_privileged(test: &str) -> bool {
    let privileges = replay_privileges();
    Needs::new(test)
        .that(
            selectors_built(),
            "BPF objects not built (clang missing at build time)",
        )
        .that(privileges.is_ok(), privileges.err().unwrap_or_default())
        .met()
}

/// A test candidate compiled by build.rs from tests/bpf/NAME.bpf.c.
pub fn fixture(name: &str) -> Candidate {
    Candidate::Object(PathBuf::from(format!(
        "{}/fixtures/{name}.bpf.o",
        env!("OUT_DIR")
    )))
}

pub fn sample(
    proto: Proto,
    saddr: &str,
    sport: u16,
    daddr: &str,
    dport: u16,
    weight: u64,
) -> FlowSample {
    FlowSample {
        proto,
        saddr: saddr.parse::<IpAddr>().unwrap(),
        sport,
        daddr: daddr.parse::<IpAddr>().unwrap(),
        dport,
        weight,
        rx_cpu: None,
        rx_queue: None,
    }
}

/// `count` flows from distinct sources and ports with weights 1..=count.
pub fn spread_trace(proto: Proto, v6: bool, count: u16, dport: u16) -> Vec<FlowSample> {
    (0..count)
        .map(|i| {
            let (saddr, daddr) = if v6 {
                (
                    format!("2001:db8::{:x}", i % 50 + 1),
                    "2001:db8:ffff::9".to_owned(),
                )
            } else {
                (
                    format!("10.0.{}.{}", i / 200, i % 200 + 1),
                    "10.255.0.9".to_owned(),
                )
            };
            sample(
                proto,
                &saddr,
                20000 + i * 7,
                &daddr,
                dport,
                u64::from(i) + 1,
            )
        })
        .collect()
}
