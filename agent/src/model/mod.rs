//! The model: pure functions from snapshots to the report. No I/O here.

pub mod indices;
pub mod rss;
pub mod window;

pub use rss::{build_report, ModelConfig};
pub use window::window;
