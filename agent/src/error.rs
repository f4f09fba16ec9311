//! The agent library's error type. Every variant names what failed and where.

use std::path::PathBuf;

/// A pure parser's complaint: which line (1-based; 0 when the whole input is at fault)
/// and what was wrong. Readers attach the path and turn it into [`SourceError::Parse`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {msg}")]
pub struct ParseError {
    pub line: usize,
    pub msg: String,
}

impl ParseError {
    pub fn new(line: usize, msg: impl Into<String>) -> Self {
        Self {
            line,
            msg: msg.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file or device does not exist (an absent source, not a fault).
    #[error("{}: not found", path.display())]
    NotFound { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {msg}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    /// The kernel, driver or host root does not offer this source.
    #[error("{what}: unsupported: {why}")]
    Unsupported { what: String, why: String },
    /// A netlink or ioctl request failed.
    #[error("{what}: {msg}")]
    Kernel { what: String, msg: String },
}

impl SourceError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            SourceError::NotFound { path }
        } else {
            SourceError::Io { path, source }
        }
    }

    pub fn parse(path: impl Into<PathBuf>, err: ParseError) -> Self {
        SourceError::Parse {
            path: path.into(),
            line: err.line,
            msg: err.msg,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, SourceError::NotFound { .. })
    }
}
