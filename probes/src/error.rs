//! The crate's error type and the translation of aya/kernel errors into
//! messages that keep the kernel's errno and verifier log.

use std::error::Error as StdError;
use std::io;

/// Every failure of a probe, named by probe and step. `detail` carries the
/// kernel's answer: the errno (by name) and, for loads, the verifier log.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The BPF object was not compiled: clang was missing when the crate was built.
    #[error("probe {probe} not built: clang missing when skewscope-probes was compiled")]
    NotBuilt { probe: &'static str },

    /// Parsing the embedded object, creating its maps or relocating it
    /// against the kernel's BTF failed.
    #[error("probe {probe}: opening BPF object failed: {detail}")]
    Open { probe: &'static str, detail: String },

    /// The object has no program or map of that name (a build/source mismatch).
    #[error("probe {probe}: {kind} {name} missing from BPF object")]
    Missing {
        probe: &'static str,
        kind: &'static str,
        name: &'static str,
    },

    /// BPF_PROG_LOAD failed (verifier rejection, missing BTF, permissions).
    #[error("probe {probe}: loading program {program} failed: {detail}")]
    Load {
        probe: &'static str,
        program: &'static str,
        errno: Option<i32>,
        detail: String,
    },

    /// The loaded program could not be attached to its hook.
    #[error("probe {probe}: attaching program {program} to {target} failed: {detail}")]
    Attach {
        probe: &'static str,
        program: &'static str,
        target: String,
        errno: Option<i32>,
        detail: String,
    },

    /// Querying the kernel about a loaded object (BPF_OBJ_GET_INFO_BY_FD) failed.
    #[error("probe {probe}: querying {object} info failed: {detail}")]
    Info {
        probe: &'static str,
        object: String,
        detail: String,
    },

    /// Looking up a map (or the CPU list needed to interpret it) failed.
    #[error("probe {probe}: reading map {map} failed: {detail}")]
    MapRead {
        probe: &'static str,
        map: &'static str,
        detail: String,
    },

    /// Updating a map from userspace (e.g. the watched-ports filter) failed.
    #[error("probe {probe}: writing map {map} failed: {detail}")]
    MapWrite {
        probe: &'static str,
        map: &'static str,
        detail: String,
    },

    /// Every hook the probe can use was refused by this kernel (each reason in
    /// `detail`): a fact of the kernel, not a fault of the probe.
    #[error("probe {probe} unavailable on this kernel: {detail}")]
    Unavailable { probe: &'static str, detail: String },

    /// A load-time setting was out of range (e.g. a zero map size).
    #[error("probe {probe}: invalid configuration: {detail}")]
    Config { probe: &'static str, detail: String },
}

impl ProbeError {
    /// The kernel errno behind a load or attach failure, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Load { errno, .. } | Self::Attach { errno, .. } => *errno,
            _ => None,
        }
    }
}

/// A kernel-facing failure flattened to text, with its errno kept apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KernelMessage {
    pub errno: Option<i32>,
    pub text: String,
}

/// Flattens a program error. Load errors keep the verifier log verbatim.
pub(crate) fn program_error_message(err: &aya::programs::ProgramError) -> KernelMessage {
    if let aya::programs::ProgramError::LoadError {
        io_error,
        verifier_log,
    } = err
    {
        let log = verifier_log.to_string();
        let mut text = format!("BPF_PROG_LOAD: {}", io_error_text(io_error));
        if !log.trim().is_empty() {
            text.push_str("; verifier log:\n");
            text.push_str(log.trim_end());
        }
        return KernelMessage {
            errno: io_error.raw_os_error(),
            text,
        };
    }
    error_chain_message(err)
}

/// Flattens any error with its sources ("a: b: c"), naming the first errno found.
pub(crate) fn error_chain_message(err: &(dyn StdError + 'static)) -> KernelMessage {
    let mut errno = None;
    let mut text = String::new();
    let mut next: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(current) = next {
        let part = match current.downcast_ref::<io::Error>() {
            Some(io_error) => {
                errno = errno.or(io_error.raw_os_error());
                io_error_text(io_error)
            }
            None => current.to_string(),
        };
        // Transparent wrappers repeat their source's text; keep it once.
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        next = current.source();
    }
    KernelMessage { errno, text }
}

/// "EPERM: Operation not permitted (os error 1)".
pub(crate) fn io_error_text(err: &io::Error) -> String {
    match err.raw_os_error().and_then(errno_name) {
        Some(name) => format!("{name}: {err}"),
        None => err.to_string(),
    }
}

/// Symbolic names of the errnos BPF load/attach paths return.
pub(crate) fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::E2BIG => "E2BIG",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        // Kernel-internal ENOTSUPP (include/linux/errno.h) leaks out of some
        // BPF paths; libc has no constant for it.
        524 => "ENOTSUPP",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_error_text_names_errno() {
        let err = io::Error::from_raw_os_error(libc::EPERM);
        assert_eq!(
            io_error_text(&err),
            "EPERM: Operation not permitted (os error 1)"
        );
    }

    #[test]
    fn chain_message_keeps_errno_and_dedups_transparent_text() {
        #[derive(Debug, thiserror::Error)]
        #[error("`bpf_raw_tracepoint_open` failed")]
        struct Outer(#[source] io::Error);

        let err = Outer(io::Error::from_raw_os_error(libc::ENOENT));
        let msg = error_chain_message(&err);
        assert_eq!(msg.errno, Some(libc::ENOENT));
        assert_eq!(
            msg.text,
            "`bpf_raw_tracepoint_open` failed: ENOENT: No such file or directory (os error 2)"
        );
    }
}
