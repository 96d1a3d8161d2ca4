//! The server-limit flags of `serve`, `all`, `demo` and the roles' `--metrics-listen`.

use std::time::Duration;

use clap::Args;

use super::limits::{self, HttpLimits};

#[derive(Debug, Clone, Args)]
pub struct HttpLimitsArgs {
    /// Seconds a client has to send a request's headers, from connecting or from the previous
    /// response: also how long a kept-alive connection may sit idle.
    #[arg(long, env = "IDM_HTTP_HEADER_TIMEOUT_SECS", default_value_t = limits::DEFAULT_HEADER_READ_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub http_header_timeout_secs: u64,
    /// Seconds a client has to send a whole request body once the server reads it (else 408).
    #[arg(long, env = "IDM_HTTP_BODY_TIMEOUT_SECS", default_value_t = limits::DEFAULT_BODY_READ_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub http_body_timeout_secs: u64,
    /// Seconds a response may wait for the client to read any of it before the connection
    /// is closed.
    #[arg(long, env = "IDM_HTTP_SEND_TIMEOUT_SECS", default_value_t = limits::DEFAULT_SEND_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub http_send_timeout_secs: u64,
    /// Connections open at once; more wait in the kernel's accept backlog. Shared by the HTTP
    /// and HTTPS listeners.
    #[arg(long, env = "IDM_HTTP_MAX_CONNECTIONS", default_value_t = limits::DEFAULT_MAX_CONNECTIONS as u32, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub http_max_connections: u32,
    /// Bytes of request line and headers (larger: 431).
    #[arg(long, env = "IDM_HTTP_MAX_HEADER_BYTES", default_value_t = limits::DEFAULT_MAX_HEADER_BYTES as u32, value_parser = clap::value_parser!(u32).range(limits::MIN_HEADER_BYTES as i64..=1024 * 1024))]
    pub http_max_header_bytes: u32,
}

impl HttpLimitsArgs {
    pub fn limits(&self) -> HttpLimits {
        HttpLimits {
            header_read_timeout: Duration::from_secs(self.http_header_timeout_secs),
            body_read_timeout: Duration::from_secs(self.http_body_timeout_secs),
            send_timeout: Duration::from_secs(self.http_send_timeout_secs),
            max_connections: self.http_max_connections as usize,
            max_header_bytes: self.http_max_header_bytes as usize,
        }
    }
}
