//! skewscope: an observe-only agent for SO_REUSEPORT listener skew and RSS queue
//! polarization.
//!
//! Data flows one way: `sources` (I/O + pure parsers) fill a [`snapshot::Snapshot`] in
//! one [`cycle`], the `model` (pure) turns snapshots into a [`report::Report`], and
//! `sinks` only read reports.

pub mod baseline;
pub mod cli;
pub mod config;
pub mod cycle;
pub mod doctor;
pub mod error;
pub mod model;
pub mod probe_budget;
pub mod record;
pub mod report;
pub mod shadow_live;
pub mod sinks;
pub mod snapshot;
pub mod sources;
pub mod telemetry;
