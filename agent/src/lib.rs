//! skewscope: an observe-only agent for SO_REUSEPORT listener skew and RSS queue
//! polarization.
//!
//! Data flows one way: `sources` (I/O + pure parsers) fill a [`snapshot::Snapshot`] in
//! one [`collect`] cycle, the `model` (pure) turns a [`model::Window`] of counters (between
//! two snapshots, or one since boot) into a [`report::Report`], and `sinks` only read
//! reports.

pub mod baseline;
pub mod cli;
pub mod collect;
pub mod config;
pub mod counters;
pub mod doctor;
pub mod error;
pub mod model;
pub mod record;
pub mod report;
pub mod rss_shadow;
pub mod shadow_live;
pub mod sinks;
pub mod snapshot;
pub mod sources;
pub mod telemetry;
