//! skewscope (integration in progress).
pub mod error;
pub mod sources;
pub mod model {
    pub mod indices;
}
