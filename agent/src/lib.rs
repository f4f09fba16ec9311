//! skewscope: an observe-only agent for SO_REUSEPORT listener skew and RSS queue
//! polarization.
//!
//! Data flows one way: `sources` (I/O + pure parsers) build a [`snapshot::Snapshot`],
//! the `model` (pure) turns snapshots into a [`report::Report`], and `sinks` only read
//! reports.

pub mod error;
pub mod sources;
