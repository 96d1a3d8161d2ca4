//! The Pub/Sub API (gRPC) for `UserChangeEvent`.

pub mod proto;
