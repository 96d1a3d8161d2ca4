//! The HTTP server under every listener: the API's plain and HTTPS listeners and the roles'
//! `--metrics-listen`. hyper's HTTP/1 connection, with limits no client can outlast:
//!
//! - headers of each request must arrive within [`HttpLimits::header_read_timeout`] of the
//!   connection opening or of the previous response (hyper's own timer, which since hyper 1.6
//!   also runs while a kept-alive connection waits: it is the idle timeout too);
//! - a request body must arrive within [`HttpLimits::body_read_timeout`] of the handler
//!   starting to read it ([`body_deadline`]), else 408 and the connection closes;
//! - a write the client does not read for [`HttpLimits::send_timeout`] ends the connection
//!   ([`send_stall`]);
//! - at most [`HttpLimits::max_connections`] connections are open at once ([`cap`]);
//! - shutdown closes idle connections at once and lets requests in flight finish.
//!
//! HTTP/1.1 only: hyper has no header-read timeout for HTTP/2, and HTTP/2 would add crates.

pub mod args;
pub mod body_deadline;
pub mod cap;
mod connection;
pub mod limits;
pub mod send_stall;
mod server;
pub mod transport;

pub use args::HttpLimitsArgs;
pub use cap::ConnectionCap;
pub use limits::HttpLimits;
pub use server::Server;
pub use transport::Transport;
