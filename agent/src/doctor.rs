//! `skewscope doctor` (in progress).
pub fn main(_root: &crate::sources::HostRoot, _json: bool) -> anyhow::Result<()> { Ok(()) }
