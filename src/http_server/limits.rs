//! What one client may take from a listener: time to send its headers and its body, and a
//! share of the connections.

use std::time::Duration;

/// Limits of every listener. The defaults suit a server facing the internet directly; tests
/// shorten them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time for a request's headers, counted from the connection opening or from the end of
    /// the previous response: so also how long a kept-alive connection may sit idle.
    /// 10 s: a real client sends its headers in one round trip; browsers reopen idle
    /// connections without the user noticing.
    pub header_read_timeout: Duration,
    /// Time for a whole request body, counted from the handler's first read. 30 s: a body is
    /// at most 1 MiB, which even a slow link sends in a few seconds.
    pub body_read_timeout: Duration,
    /// Time a response write may wait for the client to read (between two writes that make
    /// progress). 30 s: a client reading nothing for that long is gone or hostile.
    pub send_timeout: Duration,
    /// Connections open at once, shared by the listeners one [`super::ConnectionCap`] serves.
    /// 512: below the common 1024 open-files limit, with room left for the database pool,
    /// the broker and files; the API's concurrency is bounded by the pool anyway.
    pub max_connections: usize,
    /// Bytes of request line and headers; more is answered 431. 64 KiB: room for a long
    /// `_queryFilter` in the URL (a 60,000-character literal must pass), a sixth of hyper's
    /// default buffer, so at most 32 MiB of header buffers at the default connection cap.
    pub max_header_bytes: usize,
}

pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// hyper refuses a read buffer below 8 KiB.
pub const MIN_HEADER_BYTES: usize = 8 * 1024;

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }
}
