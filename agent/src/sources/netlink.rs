//! The one way the agent opens a blocking netlink socket: bound, connected to the
//! kernel (so only its replies arrive), and with a receive timeout (SO_RCVTIMEO, set
//! through socket2) so a wedged socket cannot stall the cycle. Generic netlink
//! ([`super::genl`]) and sock_diag build on it.

use std::fmt;
use std::io;
use std::time::Duration;

use netlink_sys::{Socket, SocketAddr};

/// How long one blocking receive waits for the kernel before giving up.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// Which step of opening the socket failed, and the OS error.
#[derive(Debug)]
pub struct OpenError {
    /// "socket", "bind", "connect" or "SO_RCVTIMEO".
    pub step: &'static str,
    pub source: io::Error,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.source)
    }
}

impl From<OpenError> for io::Error {
    fn from(e: OpenError) -> Self {
        io::Error::new(e.source.kind(), e.to_string())
    }
}

/// A netlink socket of `protocol` (netlink_sys::protocols::NETLINK_*) in the calling
/// thread's network namespace, ready for blocking request/reply exchanges.
pub fn open(protocol: isize) -> Result<Socket, OpenError> {
    let step = |step: &'static str| move |source: io::Error| OpenError { step, source };
    let mut socket = Socket::new(protocol).map_err(step("socket"))?;
    socket.bind_auto().map_err(step("bind"))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(step("connect"))?;
    socket2::SockRef::from(&socket)
        .set_read_timeout(Some(RECV_TIMEOUT))
        .map_err(step("SO_RCVTIMEO"))?;
    Ok(socket)
}

/// True for the errors a receive reports when [`RECV_TIMEOUT`] passed without a reply.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
