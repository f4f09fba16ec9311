//! The collection layer: one cycle reads every source into a
//! [`Snapshot`](crate::snapshot::Snapshot) ([`cycle`]), while the probe budget
//! ([`probe_budget`]) decides how long the per-packet probes stay attached. Nothing here
//! knows of the model or the sinks.

pub mod cycle;
pub mod probe_budget;

pub use cycle::{CollectOptions, Collector};
pub use probe_budget::{DutyCycler, ProbeSampling};
