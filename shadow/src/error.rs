//! The crate's error type. A candidate that fails to load is not an error of
//! the replay: it is reported as a rejected policy ([`crate::PolicyResult`]).

use std::io;
use std::path::PathBuf;

/// Every failure that stops a replay or a trace read.
#[derive(Debug, thiserror::Error)]
pub enum ShadowError {
    /// A trace line that is not a valid flow sample (1-based line number).
    #[error("trace line {line}: {message}")]
    Trace { line: usize, message: String },

    /// Reading or writing a trace file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Writing a trace to a stream failed.
    #[error("writing trace: {0}")]
    Write(#[source] io::Error),

    /// A `--candidate` that names no built-in and no object file.
    #[error("candidate {spec:?}: {message}")]
    Candidate { spec: String, message: String },

    /// Replay options that cannot describe a replica group.
    #[error("replay options: {0}")]
    Options(String),

    /// The samples cannot be replayed through one replica group.
    #[error("trace: {0}")]
    Samples(String),

    /// Creating or configuring the private network namespace failed
    /// (needs CAP_SYS_ADMIN for unshare(CLONE_NEWNET) and CAP_NET_ADMIN).
    #[error("private network namespace: {step}: {source}")]
    Namespace {
        step: &'static str,
        #[source]
        source: io::Error,
    },

    /// A socket operation of the replica or of the sender failed.
    #[error("replica {step}: {source}")]
    Socket {
        step: String,
        #[source]
        source: io::Error,
    },

    /// The replay could not account for every sample (e.g. receive buffer
    /// overflow in the replica).
    #[error("replay: {0}")]
    Replay(String),
}

impl ShadowError {
    pub(crate) fn socket(step: impl Into<String>, source: io::Error) -> Self {
        Self::Socket {
            step: step.into(),
            source,
        }
    }
}
