//! The Pub/Sub API client: change events (Change Data Capture) over gRPC.

pub mod proto;
